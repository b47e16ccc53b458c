"""Bad training options refused up front, the same way whichever path builds the config."""

import json
import re
import warnings
from pathlib import Path

import pytest

import augmentgen
from augmentgen.errors import ConfigError
from augmentgen.mixing import write_variation_shards
from augmentgen.training import TrainingConfig
from augmentgen.training.config import parse_duration


# ------------------------------------------------------ the constructor checks types as from_dict does
@pytest.mark.parametrize("field, value, message", [
    ("steps", "100", "TrainingConfig.steps must be an integer, got '100'"),
    ("steps", 2.5, "TrainingConfig.steps must be an integer, got 2.5"),
    ("batch_size", "64", "TrainingConfig.batch_size must be an integer, got '64'"),
    ("snapshot_every", "10", "TrainingConfig.snapshot_every must be an integer, got '10'"),
    ("snapshot_every", 2.5, "TrainingConfig.snapshot_every must be an integer, got 2.5"),
    ("seed", "0", "TrainingConfig.seed must be an integer, got '0'"),
    ("ema_decay", "0.99", "TrainingConfig.ema_decay must be a number, got '0.99'"),
    ("ema_decay", None, "TrainingConfig.ema_decay must be a number, got None"),
    ("init_from", 5, "TrainingConfig.init_from must be a string, got 5"),
    ("compile", 1, "TrainingConfig.compile must be true or false, got 1"),
    ("mixed_precision", "fp32", "TrainingConfig.mixed_precision must be one of ['no', 'bf16', 'fp16'], got 'fp32'"),
])
def test_constructor_and_from_dict_refuse_a_wrong_type_with_the_same_error(field, value, message):
    with pytest.raises(ConfigError) as direct:
        TrainingConfig(**{field: value})
    with pytest.raises(ConfigError) as loaded:
        TrainingConfig.from_dict({field: value})
    assert str(direct.value) == str(loaded.value) == message


def test_init_from_takes_a_path_and_stores_its_str(tmp_path):
    source = tmp_path / "runs" / "cgan"
    direct = TrainingConfig(init_from=source, transfer_lr_scale=0.5)
    loaded = TrainingConfig.from_dict({"init_from": source, "transfer_lr_scale": 0.5})
    assert direct.init_from == loaded.init_from == str(source) and type(direct.init_from) is str
    assert direct == loaded == TrainingConfig(init_from=str(source), transfer_lr_scale=0.5)
    assert json.loads(direct.to_json())["init_from"] == str(source)
    with pytest.raises(ConfigError, match="got an empty string"):
        TrainingConfig(init_from=Path(" "))


def test_valid_values_are_stored_as_given_and_round_trip():
    config = TrainingConfig(steps=100, batch_size=8, seed=3, ema_decay=0, transfer_lr_scale=1, time_budget="20m",
                            log_with="tensorboard", init_from=None, compile=True, select_snapshot="best")
    assert type(config.steps) is int and config.steps == 100
    assert type(config.ema_decay) is int and type(config.transfer_lr_scale) is int  # kept as given, as before
    assert config.time_budget == 1200.0
    assert TrainingConfig.from_dict(json.loads(config.to_json())) == config
    assert TrainingConfig.from_dict({"ema_decay": 0}).ema_decay == 0.0  # from_dict still makes it a float
    assert TrainingConfig().to_dict() == TrainingConfig.from_dict({}).to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert TrainingConfig(samples_per_class=4).grid_per_class == 4
        with pytest.raises(ConfigError, match="grid_per_class must be an integer, got '4'"):
            TrainingConfig(samples_per_class="4")


# ------------------------------------------------------------------ a bare number after a unit
@pytest.mark.parametrize("text, message", [
    ("1h30", "time_budget='1h30' is ambiguous: write '1h30m' (90 minutes) or '1h30s'"),
    ("1h 30", "time_budget='1h 30' is ambiguous: write '1h30m' (90 minutes) or '1h30s'"),
    ("2m30", "time_budget='2m30' is ambiguous: write '2m30s' (150 seconds)"),
    ("1h30m15", "time_budget='1h30m15' is ambiguous: write '1h30m15s' (5415 seconds)"),
])
def test_a_bare_number_after_a_unit_is_refused_as_ambiguous(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_duration(text, "time_budget")
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainingConfig(time_budget=text)


def test_a_bare_number_alone_is_still_seconds_and_a_number_after_seconds_is_refused():
    assert parse_duration("90") == parse_duration("90s") == 90.0
    assert parse_duration("1h30m") == 5400.0 and parse_duration("1h30s") == 3630.0
    with pytest.raises(ConfigError, match="'90s', '20m'.*'1h30m'"):
        parse_duration("30s15", "time_budget")


# ------------------------------------------------------------------ train()'s arguments
def test_train_refuses_a_model_config_that_is_not_a_dict(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(
            "model_config must be a dict of model settings, e.g. {'loss': 'bce'}, got the str 'loss=bce'")):
        augmentgen.train("cgan", "fashion-mnist-small", tmp_path / "out", model_config="loss=bce", steps=1)
    assert not (tmp_path / "out").exists()


def test_train_refuses_output_dir_none(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("output_dir must be a folder path (a str or os.PathLike), got None; pass the run's folder")):
        augmentgen.train("cgan", "fashion-mnist-small", output_dir=None, steps=1)


def test_train_says_a_model_setting_belongs_in_model_config(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as info:
        augmentgen.train("cgan", "fashion-mnist-small", out, learning_rate=1e-3)
    assert str(info.value) == ("learning_rate is a cgan model setting, not a training one: pass "
                               "model_config={'learning_rate': 0.001}")
    with pytest.raises(ConfigError, match=re.escape(
            "pass model_config={'loss': 'bce', 'learning_rate': 0.001}")):  # merged with the one given
        augmentgen.train("cgan", "fashion-mnist-small", out, model_config={"loss": "bce"}, learning_rate=1e-3)
    with pytest.raises(ConfigError, match=re.escape("TrainingConfig has no field(s) ['stepz']; known fields")):
        augmentgen.train("cgan", "fashion-mnist-small", out, stepz=3)  # not a model setting either: as before
    assert not out.exists()


def test_write_variation_shards_refuses_out_none():
    with pytest.raises(ConfigError, match=re.escape("out must be a folder path (a str or os.PathLike), got None; pass the "
                                                    "folder the Parquet shards go in")):
        write_variation_shards(None, None, None, None)


def test_log_with_all_and_no_tracker_installed_is_refused(monkeypatch):
    """Accelerate only warns, then logs nothing, for the whole run."""
    import importlib.util

    from augmentgen.training.config import check_tracker_installed

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ConfigError, match=r"log_with='all' logs to every installed tracker, but none of .* is "
                                          r"installed; pip install tensorboard"):
        check_tracker_installed("all")


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_training_seed_numpy_cannot_take_is_refused_before_training(seed):
    # accelerate's set_seed seeds numpy's global generator, which ended in a traceback for 2**32
    with pytest.raises(ConfigError, match=r"seed must be an int >= 0 .*2\*\*32 - 1"):
        TrainingConfig(seed=seed)


def test_rollback_without_checkpoints_is_refused_before_training():
    # It could never roll back: the divergence would stop the run with an error anyway, later.
    with pytest.raises(ConfigError, match=r"on_divergence='rollback' goes back to the last checkpoint, but "
                                          r"checkpoint_every=0 writes none; set checkpoint_every"):
        TrainingConfig(on_divergence="rollback", checkpoint_every=0)
    assert TrainingConfig(on_divergence="rollback", checkpoint_every=10).checkpoint_every == 10


@pytest.mark.parametrize("precision, device, shown", [
    ("fp16", "cpu", "device:     cpu, full precision (fp16 acts on GPUs only; bf16 acts on the CPU)"),
    ("bf16", "cpu", "device:     cpu, bf16 mixed precision"),
    ("fp16", "cuda:0", "device:     cuda:0, fp16 mixed precision"),
])
def test_the_summary_says_what_precision_the_run_really_uses(precision, device, shown, tmp_path, capsys):
    from types import SimpleNamespace

    import torch

    from augmentgen.models import build_config
    from augmentgen.training.report import print_summary

    accelerator = SimpleNamespace(is_main_process=True, num_processes=1, mixed_precision=precision,
                                  device=torch.device(device))
    print_summary(build_config("cgan", num_classes=2), TrainingConfig(mixed_precision=precision), accelerator,
                  data=None, described={"source": "mine", "examples": 4}, steps="2", resumed_at=None,
                  output_dir=tmp_path)
    assert shown in capsys.readouterr().out
