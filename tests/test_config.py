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
