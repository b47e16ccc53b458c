import augmentgen


def test_every_public_name_resolves_and_has_a_docstring():
    for name in augmentgen.__all__:
        obj = getattr(augmentgen, name)
        assert obj.__doc__, name


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute"):
        augmentgen.no_such_thing  # noqa: B018


def test_the_public_api_is_what_it_was():
    """A snapshot: adding or removing a public name is a decision (update this list and CHANGELOG)."""
    assert sorted(augmentgen.__all__) == [
        "AugmentgenError", "CheckpointError", "ConditionalGenerator", "ConfigError", "DataError",
        "GeneratorSource", "LabelledImages", "PixelMixSource", "PoolSource", "RealRowSource", "SyntheticMix", "SyntheticPool", "TeacherLabels",
        "Trainer", "TrainingConfig", "TrainingDivergedError", "UnknownFamilyError", "VariationSource",
        "augment_loader", "available_models", "build_config", "evaluate_generator", "from_pretrained",
        "list_pretrained", "load_data", "push_to_hub", "save_pretrained", "synthesize", "synthesize_iterable",
        "synthesize_variations", "train", "weighted_cross_entropy", "write_samples", "write_shards",
        "write_variation_shards",
    ]


def test_import_leaves_the_slow_optional_imports_for_first_use():
    """``import augmentgen`` (and so every CLI call, ``--help`` included) does not import
    torchvision (which pulls in torch._dynamo, seconds here), albumentations or datasets; the
    transforms that need them still resolve from ``augmentgen.transforms``."""
    import subprocess
    import sys

    code = ("import sys, augmentgen, augmentgen.transforms as t; "
            "print(sorted(m for m in ('torchvision', 'albumentations', 'datasets', 'torch._dynamo') if m in sys.modules)); "
            "t.ReplaceWithSynthetic, t.SyntheticDataset; print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
    import augmentgen.transforms as transforms

    assert {"ReplaceWithSynthetic", "SyntheticDataset", "AlbumentationsReplaceWithSynthetic"} <= set(dir(transforms))
