import augmentgen


def test_every_public_name_resolves_and_has_a_docstring():
    for name in augmentgen.__all__:
        obj = getattr(augmentgen, name)
        assert obj.__doc__, name


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute"):
        augmentgen.no_such_thing  # noqa: B018
