import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augmentgen._config import parse_overrides
from augmentgen.errors import ConfigError
from augmentgen.families.gan import CGANConfig
from augmentgen.models import build_config, config_from_dict, config_to_dict
from augmentgen.training import TrainingConfig


def test_json_round_trip_keeps_types():
    config = build_config("cgan", num_classes=5, class_names=list("abcde"), betas=[0.5, 0.99])
    again = config_from_dict(json.loads(json.dumps(config_to_dict(config))))
    assert again == config and isinstance(again.betas, tuple)


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert CGANConfig.from_dict({"learning_rate": 1}).learning_rate == 1.0
    with pytest.raises(ConfigError, match="integer"):
        CGANConfig.from_dict({"latent_dim": True})


def test_overrides_parse_json_values_and_reject_unknown_keys():
    assert parse_overrides(CGANConfig, ["loss=bce", "latent-dim=32", "betas=[0.5, 0.9]"]) == {
        "loss": "bce", "latent_dim": 32, "betas": [0.5, 0.9]}
    with pytest.raises(ConfigError, match="no field"):
        parse_overrides(CGANConfig, ["nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(CGANConfig, ["loss"])


def test_config_without_family_is_refused():
    with pytest.raises(ConfigError, match="family"):
        config_from_dict({"num_classes": 3})


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=5)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(CGANConfig)] + ["junk"]), json_values, max_size=6))
def test_fuzzed_model_configs_raise_only_config_errors(values):
    try:
        CGANConfig.from_dict(values)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([f.name for f in dataclasses.fields(TrainingConfig)]), json_values, max_size=6))
def test_fuzzed_training_configs_raise_only_config_errors(values):
    try:
        TrainingConfig.from_dict(values)
    except ConfigError:
        pass


# ---------------------------------------------------------------- issue 28: values checked at construction
@pytest.mark.parametrize("family", ["cgan", "aae", "vae", "ae", "aegan"])
@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", float("nan"), r"learning_rate must be a finite number > 0 \(default"),
    ("learning_rate", float("inf"), r"learning_rate must be a finite number > 0"),
    ("discriminator_lr_scale", 0.0, r"discriminator_lr_scale must be a finite number > 0"),
    ("betas", [0.5, 1.0], r"betas must be two Adam betas in \[0, 1\)"),
    ("betas", [-0.1, 0.9], r"betas must be two Adam betas in \[0, 1\)"),
    ("adversarial_weight", float("nan"), r"adversarial_weight must be a finite number >= 0"),
    ("latent_dim", 2**64, r"latent_dim=18446744073709551616 is too large"),
])
def test_every_family_refuses_non_finite_and_out_of_range_values(family, field, value, message):
    from augmentgen.models import generator_class

    cls = generator_class(build_config(family).family).config_class
    if field not in cls.field_names():
        pytest.skip(f"{family} has no {field}")
    with pytest.raises(ConfigError, match=message):
        build_config(family, **{field: value})
    with pytest.raises(ConfigError, match=message):  # constructed directly, not through from_dict
        cls(**{field: tuple(value) if isinstance(value, list) else value})


def test_overflowing_values_are_config_errors_not_overflow_errors():
    huge = 10**400  # what JSON gives for `--set learning_rate=1000...0`
    with pytest.raises(ConfigError, match="learning_rate must be a finite number within"):
        CGANConfig.from_dict({"learning_rate": huge})
    with pytest.raises(ConfigError, match="learning_rate must be a finite number > 0"):
        CGANConfig.from_dict(parse_overrides(CGANConfig, ["learning_rate=1e400"]))  # JSON reads it as inf


@pytest.mark.parametrize("field, value", [("ema_decay", float("nan")), ("transfer_lr_scale", float("inf")),
                                          ("steps", 2**70)])
def test_training_config_refuses_non_finite_and_overflowing_values(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**{field: value})


def test_a_family_error_is_not_wrapped_twice():
    with pytest.raises(ConfigError) as info:
        CGANConfig.from_dict({"learning_rate": float("nan")})
    assert str(info.value).startswith("CGANConfig.learning_rate must be")


# ------------------------------------------------- a family config built directly checks types as from_dict does
def _config_class(name: str):
    from augmentgen.models import generator_class

    return generator_class(build_config(name).family).config_class


@pytest.mark.parametrize("name", sorted(__import__("augmentgen").available_models()))
def test_every_registered_default_config_round_trips_to_the_same_json(name):
    config = build_config(name)
    text = json.dumps(config_to_dict(config), sort_keys=True)
    again = config_from_dict(json.loads(text))
    direct = type(config)(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
    assert json.dumps(config_to_dict(again), sort_keys=True) == text
    assert json.dumps(config_to_dict(direct), sort_keys=True) == text and direct == config


@pytest.mark.parametrize("family", ["cgan", "ddpm", "aae", "vae", "ae", "aegan"])
@pytest.mark.parametrize("field, value, message", [
    ("latent_dim", "8", r"latent_dim must be an integer, got '8'"),
    ("latent_dim", 8.0, r"latent_dim must be an integer, got 8.0"),
    ("num_classes", 2.0, r"num_classes must be an integer, got 2.0"),
    ("in_channels", True, r"in_channels must be an integer, got True"),
    ("learning_rate", "1e-3", r"learning_rate must be a number, got '1e-3'"),
    ("class_names", "abcdefghij", r"class_names must be a list, got str 'abcdefghij'"),
    ("loss", "hingee", r"loss must be one of \['hinge', 'bce'.*\], got 'hingee'"),
    ("betas", "0,0.9", r"betas must be a list, got str '0,0.9'"),
    ("diffaugment", None, r"diffaugment must be a string, got None"),
])
def test_a_family_config_built_directly_checks_types_as_from_dict_does(family, field, value, message):
    cls = _config_class(family)
    if field not in cls.field_names():
        pytest.skip(f"{family} has no {field}")
    with pytest.raises(ConfigError, match=message):
        cls.from_dict({field: value})
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{message}"):
        cls(**{field: value})


def test_a_valid_value_built_directly_is_kept_as_given():
    config = CGANConfig(learning_rate=1, betas=[0.5, 0.9])  # as TrainingConfig: checked, not converted
    assert config.learning_rate == 1 and config.betas == [0.5, 0.9]


def test_an_override_set_twice_takes_the_last_value_and_says_so():
    with pytest.warns(UserWarning, match=r"latent_dim is set twice \(latent_dim=16, then latent_dim=8\); using "
                                         r"the last, latent_dim=8"):
        assert parse_overrides(CGANConfig, ["latent_dim=16", "latent-dim=8"]) == {"latent_dim": 8}


def test_an_unknown_override_names_the_close_field_or_the_option_it_belongs_to():
    with pytest.raises(ConfigError, match=r"no field 'latnet_dim'; did you mean 'latent_dim'\? known fields"):
        parse_overrides(CGANConfig, ["latnet_dim=16"])
    with pytest.raises(ConfigError, match=r"steps is not a CGANConfig field but an option of its own: pass --steps 5"):
        parse_overrides(CGANConfig, ["steps=5"], elsewhere={"steps": "--steps"})
