import argparse
import json
import subprocess
import sys
import warnings

import pytest

from augmentgen.cli import main
from augmentgen.errors import CheckpointError, ConfigError
from augmentgen.hub import load_generator


def test_train_then_sample_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--family", "cgan", "--data", "fashion-mnist-small", "--per-class", "4",
                 "--out", str(out), "--steps", "3", "--batch-size", "8", "--sample-every", "0",
                 "--set", "generator_width=8", "--set", "discriminator_width=8", "--seed", "1"])
    assert code == 0
    assert f"weights: {out / 'model.safetensors'}" in capsys.readouterr().out
    generator = load_generator(out)
    assert generator.config.generator_width == 8 and generator.class_names[1] == "Trouser"
    assert json.loads((out / "training.json").read_text())["training_config"]["seed"] == 1

    assert main(["sample", "--model", str(out), "--per-class", "3", "--out", str(tmp_path / "g.png")]) == 0
    from PIL import Image

    width, height = Image.open(tmp_path / "g.png").size
    assert height > width  # 10 rows (classes) of 3 images


def test_resume_without_steps_continues_to_the_runs_own_steps(tmp_path):
    """Not to the default 2000: the resume continues the run that was stopped."""
    import shutil

    out = tmp_path / "run"
    base = ["train", "--data", "fashion-mnist-small", "--per-class", "2", "--out", str(out), "--batch-size", "6",
            "--sample-every", "0", "--checkpoint-every", "2", "--set", "generator_width=8",
            "--set", "discriminator_width=8"]
    assert main([*base, "--steps", "4"]) == 0
    for name in ("model.safetensors", "training.json", "config.json", "samples.png"):  # as if killed after step 2
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "checkpoints" / "step-0000004")
    assert main([*base, "--resume"]) == 0
    assert json.loads((out / "training.json").read_text())["steps"] == 4


def test_sample_formats_and_eval_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "fashion-mnist-small", "--per-class", "4", "--out", str(out),
                 "--steps", "2", "--batch-size", "8", "--sample-every", "0",
                 "--set", "generator_width=8", "--set", "discriminator_width=8"]) == 0
    assert main(["sample", "--model", str(out), "--per-class", "3", "--format", "npz",
                 "--out", str(tmp_path / "s.npz")]) == 0
    from augmentgen import load_data

    samples = load_data(tmp_path / "s.npz")
    assert samples.class_counts == [3] * 10 and samples.class_names[0] == "T-shirt/top"
    assert main(["sample", "--model", str(out), "--per-class", "2", "--format", "imagefolder",
                 "--out", str(tmp_path / "folder")]) == 0
    assert len(list((tmp_path / "folder").glob("*/*.png"))) == 20
    capsys.readouterr()

    assert main(["eval", "--model", str(out), "--data", "fashion-mnist-small", "--per-class", "6",
                 "--steps", "3", "--synthetic-per-class", "4", "--device", "cpu", "--repeats", "2",
                 "--ratios", "0,0.5"]) == 0
    printed = capsys.readouterr().out
    assert "B + synthetic vs B (accuracy" in printed and "CAS" in printed and "Trouser" in printed
    assert "real, no augmentation" in printed
    # The start-up summary says what will be trained, before any of it is.
    summary = printed[:printed.index("feature extractor:")]
    assert "baselines:     classic, mixup-cutmix (up to 4 more classifier runs than --baselines none: 18 " \
           "instead of 14)" in summary
    assert "controls:      real-rows, pixel-mix (as many rows a step without a generator" in summary
    assert "synthetic:     plain at ratios 0,0.5" in summary  # a cgan makes no rows from real images
    assert "classifiers:   up to 18 runs of 3 steps each" in summary and "2 paired seeds, 0 to 1" in summary
    assert "sampling:      40 synthetic images once (4 per class) for consistency, CAS, distances and coverage; " \
           "the synthetic arms sample their rows at every training step" in summary
    report = json.loads((out / "eval.json").read_text())
    assert report["n_train"] == 60 and report["n_test"] == 1000
    down = report["downstream"]
    assert down["baselines"] == ["classic", "mixup-cutmix"] and report["baselines_requested"] == "strong"
    assert down["best_baseline"] == max(down["baseline_selection"], key=down["baseline_selection"].get)
    assert down["delta"] == down["score_mixed"] - down["score_best_baseline"] and down["metric"] == "accuracy"
    assert down["acc_best_baseline"] is not None and down["delta_vs_classic"] is not None
    assert report["extractor"]["name"] and (out / "eval.png").stat().st_size > 0
    seeds = report["downstream_seeds"]
    assert seeds["seeds"] == [0, 1] and "over 2 paired seeds" in printed and len(seeds["best_baseline"]) == 2
    assert report["verdict"] == seeds["verdict"] and f"verdict: {report['verdict']}" in printed
    assert report["decision"] in ("mix", "do not mix", "undecided")
    assert report["classifier_runs"] <= 18
    assert set(report["downstream"]["ratio_selection"]) == {"0.0", "0.5"}  # JSON keys
    # --baselines none: the comparison with classic augmentation alone, as before the baselines
    # (with --bank-per-image: the synthetic arms draw from banks filled once, counted at start-up)
    assert main(["eval", "--model", str(out), "--data", "fashion-mnist-small", "--per-class", "6", "--steps", "2",
                 "--synthetic-per-class", "2", "--device", "cpu", "--ratios", "0.5", "--baselines", "none",
                 "--bank-per-image", "1", "--out", str(tmp_path / "plain")]) == 0
    printed, err = capsys.readouterr()
    assert "baselines:     classic\n" in printed
    assert "sampling:      20 synthetic images once (2 per class) for consistency, CAS, distances and coverage; " \
           "up to 1 bank for the synthetic arms" in printed  # free samples: validation draws the final bank's head
    assert f"kept in {tmp_path / 'plain' / 'eval.checkpoint.banks'} until their seed is saved" in printed
    assert "sampled" in err  # the bar of the images made, beside the classifiers'
    assert json.loads((tmp_path / "plain" / "eval.json").read_text())["bank_per_image"] == 1
    assert not (tmp_path / "plain" / "eval.checkpoint.banks").exists()  # the seed was saved: its banks went
    plain = json.loads((tmp_path / "plain" / "eval.json").read_text())["downstream"]
    assert plain["baselines"] == ["classic"] and plain["baseline_selection"] is None
    assert plain["delta"] == plain["acc_mixed"] - plain["acc_real_classic"]
    # A folder of images has no test split: refuse rather than test on the training images.
    assert main(["eval", "--model", str(out), "--data", str(tmp_path / "folder"), "--out", str(tmp_path / "e")]) == 2
    assert "--test-data" in capsys.readouterr().err
    # The model folder holds the first report now: a second eval there is refused before any work.
    assert main(["eval", "--model", str(out), "--data", "fashion-mnist-small"]) == 2
    assert "already holds an evaluation (eval.json, eval.png, eval.checkpoint.json: its finished seeds)" \
        in capsys.readouterr().err


def test_errors_are_one_line_messages_with_exit_code_2(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "mnist", "--ratios", "0,half"]) == 2
    assert "--ratios" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "mnist", "--methods", "plain,sharpen"]) == 2
    assert "--methods" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "mnist", "--methods", "vary:strong"]) == 2
    assert "only vary takes a strength" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "mnist", "--bank-per-image", "-1"]) == 2
    assert "--bank-per-image must be at least 0 (synthetic rows per real image in each bank; 0 samples them at " \
        "every step)" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no data at" in capsys.readouterr().err
    assert main(["train", "--set", "no_such_field=1", "--out", str(tmp_path / "o")]) == 2
    assert "no field" in capsys.readouterr().err
    # a value the user set is named by the flag they typed, not the config field behind it
    assert main(["train", "--data", "fashion-mnist-small", "--ema-decay", "2", "--out", str(tmp_path / "o")]) == 2
    assert "error: --ema-decay must be in [0, 1), got 2.0" in capsys.readouterr().err
    assert main(["train", "--data", "fashion-mnist-small", "--set", "lecam_weight=-1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "error: --set lecam_weight must be a finite number >= 0, got -1.0" in capsys.readouterr().err
    assert main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err or "model.safetensors" in err


def test_eval_refuses_an_unknown_baseline_before_loading_anything(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "fashion-mnist-small",
                 "--baselines", "classic,mixup"]) == 2
    err = capsys.readouterr().err
    assert err == ("augmentgen: error: --baselines takes strong, none, or comma-separated names from classic, "
                   "mixup-cutmix, balanced-sampling, logit-adjustment; got 'classic,mixup'\n")
    result = subprocess.run([sys.executable, "-m", "augmentgen", "eval", "--model", str(tmp_path / "none"),
                             "--data", "fashion-mnist-small", "--baselines", "best"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--baselines" in result.stderr


def test_python_dash_m_lists_models():
    result = subprocess.run([sys.executable, "-m", "augmentgen", "models"], capture_output=True, text=True,
                            check=True)
    assert "cgan" in result.stdout and "wgan-gp" in result.stdout


@pytest.mark.parametrize("model", ["cgan", "wgan-gp", "aae", "vae", "aegan", "ae"])
def test_every_family_trains_saves_loads_and_samples_from_the_cli(model, tmp_path, capsys):
    from augmentgen.models import build_config

    out = tmp_path / model
    widths = [f"{name}=8" for name in type(build_config(model)).field_names() if name.endswith("_width")]
    args = ["train", "--family", model, "--data", "fashion-mnist-small", "--per-class", "3", "--out", str(out),
            "--steps", "2", "--batch-size", "6", "--sample-every", "0", "--grid-per-class", "2"]
    for item in widths:
        args += ["--set", item]
    assert main(args) == 0
    generator = load_generator(out)
    assert generator.family == ("cgan" if model == "wgan-gp" else model)
    assert main(["sample", "--model", str(out), "--per-class", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0


def test_sample_temperature_flag_takes_a_float_or_one_per_class(tmp_path, capsys):
    import torch

    from augmentgen import load_data
    from augmentgen.hub import save_generator
    from augmentgen.models import build_config, build_generator

    torch.manual_seed(0)
    generator = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8))
    save_generator(generator, tmp_path / "model")
    model = ["sample", "--model", str(tmp_path / "model"), "--per-class", "3", "--format", "npz"]

    def images(name, *flags):
        assert main([*model, "--out", str(tmp_path / name), *flags]) == 0
        return load_data(tmp_path / name).images.view(3, 3, 1, 28, 28)

    default, one = images("d.npz"), images("one.npz", "--temperature", "1")
    assert torch.equal(default, one)
    cold = images("cold.npz", "--temperature", "0")
    assert "temperature 0" in capsys.readouterr().out
    assert all(torch.equal(cold[k, i], cold[k, 0]) for k in range(3) for i in range(3))
    mixed = images("mixed.npz", "--temperature", "1,0,2")
    assert torch.equal(mixed[0], default[0]) and torch.equal(mixed[1], cold[1])
    assert not torch.equal(mixed[2], default[2])
    assert main(["sample", "--model", str(tmp_path / "model"), "--per-class", "2", "--temperature", "0.5",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    capsys.readouterr()
    for bad, message in [("warm", "--temperature takes"), ("1,,2", "--temperature takes"),
                         ("1,1", "2 values but this generator has 3 classes"), ("-1", ">= 0")]:
        assert main([*model, "--out", str(tmp_path / "bad.npz"), "--temperature", bad]) == 2
        assert message in capsys.readouterr().err, bad
    assert not (tmp_path / "bad.npz").exists()


def test_train_init_from_a_saved_generator_from_the_command_line(tmp_path, capsys):
    import torch

    from augmentgen.hub import save_pretrained
    from augmentgen.models import build_config, build_generator

    torch.manual_seed(5)
    source = tmp_path / "source"  # 3 classes: fashion-mnist-small's 10 get fresh class tables
    save_pretrained(build_generator(build_config("cgan", num_classes=3, generator_width=8, discriminator_width=8,
                                                 latent_dim=16)), source, grid=False)
    out = tmp_path / "run"
    args = ["train", "--family", "cgan", "--data", "fashion-mnist-small", "--per-class", "2", "--out", str(out),
            "--steps", "2", "--batch-size", "6", "--sample-every", "0", "--grid-per-class", "2",
            "--set", "generator_width=8", "--set", "discriminator_width=8", "--set", "latent_dim=16",
            "--init-from", str(source), "--transfer-lr-scale", "0.5"]
    assert main(args) == 0
    assert f"from:    {source} (" in capsys.readouterr().out
    summary = json.loads((out / "training.json").read_text())
    assert summary["steps"] == 2 and summary["training_config"]["transfer_lr_scale"] == 0.5
    assert summary["init_from"]["id"] == str(source) and len(summary["init_from"]["sha256"]) == 64
    assert "decoder.embed.weight" in summary["init_from"]["reinitialised"]
    assert "decoder.project.weight" in summary["init_from"]["copied"]
    assert load_generator(out).num_classes == 10

    assert main(["train", "--family", "aae", "--data", "fashion-mnist-small", "--per-class", "2",
                 "--out", str(tmp_path / "aae"), "--steps", "2", "--init-from", str(source)]) == 2
    assert "--family cgan" in capsys.readouterr().err
    assert not (tmp_path / "aae" / "model.safetensors").exists()


# ---------------------------------------------------------------- issue 28: work never lost or mixed up
TINY = ["--set", "generator_width=8", "--set", "discriminator_width=8", "--set", "latent_dim=16"]


def tiny_train(out, *extra):
    return ["train", "--data", "fashion-mnist-small", "--per-class", "2", "--out", str(out), "--steps", "2",
            "--batch-size", "6", "--sample-every", "0", "--grid-per-class", "2", "--checkpoint-every", "0",
            *TINY, *extra]


def test_a_finished_run_is_never_overwritten_silently(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_train(out)) == 0
    (out / "eval.json").write_text("{}")
    (out / "eval.checkpoint.json").write_text("{}")  # the old model's finished eval seeds go with it
    before = (out / "model.safetensors").read_bytes()
    aae = ["train", "--family", "aae", "--data", "fashion-mnist-small", "--per-class", "2", "--out", str(out),
           "--steps", "2", "--batch-size", "6", "--sample-every", "0", "--set", "encoder_width=8",
           "--set", "decoder_width=8"]
    capsys.readouterr()
    assert main(aae) == 2
    err = capsys.readouterr().err
    assert err.startswith("augmentgen: error: ") and err.count("\n") == 1
    assert "already holds a trained model" in err and "--overwrite" in err and "--resume" in err
    # in this command's words only: no train() argument names
    assert "Pass --overwrite to start over" in err and "or choose another --out" in err
    assert "overwrite=True" not in err and "resume=True" not in err and "output_dir" not in err
    assert (out / "model.safetensors").read_bytes() == before
    assert main([*aae, "--overwrite"]) == 0
    assert load_generator(out).family == "aae" and not (out / "eval.json").exists()
    assert not (out / "eval.checkpoint.json").exists()


def test_out_that_is_a_file_is_refused_before_loading_anything(tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("x")
    assert main(tiny_train(file)) == 2
    assert f"augmentgen: error: --out {file} is an existing file" in capsys.readouterr().err
    # eval: before the model is even loaded (it does not exist), so before hours of compute
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "fashion-mnist-small", "--out", str(file)]) == 2
    assert "--out" in capsys.readouterr().err


def test_resume_refusals_name_the_difference_and_the_fix(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_train(out, "--checkpoint-every", "1")) == 0
    capsys.readouterr()
    assert main(tiny_train(out, "--checkpoint-every", "1", "--resume", "--steps", "1")) == 2
    assert "already at step 2" in capsys.readouterr().err
    assert main(tiny_train(out, "--checkpoint-every", "1", "--resume", "--steps", "3", "--set", "loss=bce")) == 2
    err = capsys.readouterr().err
    assert "loss is 'hinge' there but 'bce' now. Nothing was changed. To resume, rerun with --set loss=hinge" in err
    assert main(tiny_train(out, "--checkpoint-every", "1", "--resume", "--steps", "3", "--per-class", "3")) == 2
    assert "the data's fingerprint is" in capsys.readouterr().err
    assert main(tiny_train(out, "--checkpoint-every", "1", "--resume", "--steps", "3")) == 0
    assert json.loads((out / "training.json").read_text())["steps"] == 3


def test_start_up_summary_and_the_demo_data_notice(tmp_path, capsys):
    args = tiny_train(tmp_path / "run")
    del args[1:3]  # no --data
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "no --data given" in captured.err and "DEMO" in captured.err
    for line in ("data:       fashion-mnist-small:train", "DEMO set", "examples:   20",
                 "classes:    10: T-shirt/top, Trouser,", "image size: 28x28, 1 channel", "batch size: 6 per process",
                 "steps:      2", "device:     cpu", f"output:     {tmp_path / 'run'}"):
        assert line in captured.out, line


def test_training_json_records_a_command_the_user_can_rerun(tmp_path):
    out = tmp_path / "my run"
    assert main(tiny_train(out)) == 0
    command = json.loads((out / "training.json").read_text())["command"]
    assert command.startswith("augmentgen train --data fashion-mnist-small") and f"'{out}'" in command


def test_a_folder_of_split_folders_is_refused_with_the_split_to_pass(tmp_path, capsys):
    for split in ("train", "val"):
        (tmp_path / "data" / split / "cat").mkdir(parents=True)
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "split folders ['train', 'val']" in err and f"--data {tmp_path / 'data' / 'train'}" in err
    assert not (tmp_path / "run").exists()


def test_an_out_inside_the_data_folder_is_refused_before_training(tmp_path, capsys):
    # Once, the run's samples.png and checkpoints/ went into the user's ImageFolder, which then read
    # them as a class ("images in data have different sizes" at its next load).
    assert main(["sample", "--model", "augmentgen/cgan-fashion-mnist", "--per-class", "2", "--format",
                 "imagefolder", "--out", str(tmp_path / "data")]) == 0
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*"))
    for out, where in ((tmp_path / "data", "is the data folder"), (tmp_path / "data" / "run", "is inside the data")):
        assert main(["train", "--data", str(tmp_path / "data"), "--out", str(out), "--steps", "2"]) == 2
        err = capsys.readouterr().err
        assert where in err and "Nothing was changed. Choose an --out outside it" in err and "Traceback" not in err
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*")) == before


def test_an_eval_report_inside_a_data_folder_is_refused_before_loading(tmp_path, capsys):
    # eval --out data/sub wrote eval.json and eval.png into a new folder of the user's ImageFolder:
    # a class "sub" with one image at its next load.
    for name in ("train", "test"):
        (tmp_path / name / "a").mkdir(parents=True)
    for out, option in ((tmp_path / "train" / "sub", "(--data)"), (tmp_path / "test", "(--test-data)")):
        assert main(["eval", "--model", str(tmp_path / "none"), "--data", str(tmp_path / "train"),
                     "--test-data", str(tmp_path / "test"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert option in err and "the report (eval.json, eval.png) would be written among your images" in err
        assert "Traceback" not in err and not out.joinpath("eval.json").exists()
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["a"]


def test_abbreviations_are_off_and_version_and_defaults_are_shown(capsys):
    from augmentgen import __version__
    from augmentgen.cli import build_parser

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--chan", "3"])  # once an abbreviation of --channels-last
    assert exit_info.value.code == 2
    parser = build_parser()
    args = parser.parse_args(["train", "--channels", "3"])
    assert args.channels == 3 and args.channels_last is True
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"augmentgen {__version__}"
    choices = parser._subparsers._group_actions[0].choices
    for name, sub in choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest not in ("help",) and action.help != argparse.SUPPRESS:
                assert "default:" in sub.formatter_class("x")._get_help_string(action), (name, action.dest)
    text = choices["train"].format_help()
    assert "(default: 2000;" in text and "only parses arguments" not in parser.format_help()


def test_data_loading_options_reach_load_data(tmp_path):
    import numpy as np

    from tests.conftest import make_images

    data = make_images(n_per_class=4)  # grayscale
    np.savez(tmp_path / "gray.npz", images=data.images.numpy(), labels=data.labels.numpy(),
             classes=np.array(data.class_names))
    out = tmp_path / "rgb"
    args = tiny_train(out, "--channels", "3")
    args[args.index("--data") + 1] = str(tmp_path / "gray.npz")
    assert main(args) == 0
    assert load_generator(out).config.in_channels == 3


def test_unavailable_device_logger_and_oversized_widths_are_clear_errors(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["sample", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "g.png"),
                 "--device", "cuda"]) == 2
    assert "no CUDA GPU is available" in capsys.readouterr().err
    monkeypatch.setattr("augmentgen.training.config.importlib.util.find_spec", lambda name: None)
    assert main([*tiny_train(tmp_path / "logged"), "--log-with", "wandb"]) == 2
    assert "pip install wandb" in capsys.readouterr().err
    assert not (tmp_path / "logged").exists()
    assert main([*tiny_train(tmp_path / "wide"), "--set", f"generator_width={2**40}"]) == 2
    err = capsys.readouterr().err
    assert "could not allocate" in err and "generator_width=1099511627776" in err and "--set=generator_width=32" in err
    assert main([*tiny_train(tmp_path / "inf"), "--set", "learning_rate=1e400"]) == 2
    assert "learning_rate must be a finite number > 0" in capsys.readouterr().err


def test_ctrl_c_saves_a_checkpoint_prints_the_resume_command_and_exits_130(tmp_path, capsys, monkeypatch,
                                                                          sigint_delivered):
    import os
    import signal

    from augmentgen.families.gan import GANStep

    original, calls = GANStep.__call__, {"n": 0}

    def step(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", step)
    out = tmp_path / "run"
    args = [*tiny_train(out, "--overwrite"), "--steps", "4"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 2" in err and "Traceback" not in err
    resume = err.split("to continue the run: ")[1].strip()
    assert resume.startswith("augmentgen train") and resume.endswith("--resume") and "--overwrite" not in resume
    monkeypatch.setattr(GANStep, "__call__", original)
    import shlex

    assert main(shlex.split(resume)[1:]) == 0
    assert json.loads((out / "training.json").read_text())["steps"] == 4


# ---------------------------------------------------------------- names users can guess: sample formats
def tiny_saved_model(path):
    import torch

    from augmentgen.hub import save_generator
    from augmentgen.models import build_config, build_generator

    torch.manual_seed(0)
    save_generator(build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8)), path)
    return path


#: sha256 of the grid `augmentgen sample --per-class 3` wrote from tiny_saved_model before its
#: branch went through write_samples (recorded with the code of that time).
GRID_SHA256 = {(): "b5fa1d356e7d4386c78cb8562434b4e65ef0fc31b68c5251745660d83b12bdcc",
               ("--temperature", "0.5", "--seed", "3"): "b790187269c8a43e6d76d3f8e68a8bbd8cd74d8056df7571d09878309dc9fb32"}


def test_sample_grid_writes_the_same_png_as_before(tmp_path, capsys):
    import hashlib

    import torch

    from augmentgen._images import save_sample_grid

    model = tiny_saved_model(tmp_path / "model")
    generator = load_generator(model)
    for flags, digest in GRID_SHA256.items():
        out = tmp_path / f"grid{len(flags)}.png"
        assert main(["sample", "--model", str(model), "--per-class", "3", "--out", str(out), *flags]) == 0
        # what the CLI's own grid branch did: sample_per_class, then the grid writer
        seed = int(flags[flags.index("--seed") + 1]) if "--seed" in flags else 0
        temperature = float(flags[flags.index("--temperature") + 1]) if "--temperature" in flags else 1.0
        images, _ = generator.sample_per_class(3, generator=torch.Generator().manual_seed(seed), temperature=temperature)
        old = save_sample_grid(images, 3, tmp_path / "old.png")
        assert out.read_bytes() == old.read_bytes()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert "3 rows x 3, temperature 0.5" in capsys.readouterr().out
    # the CLI's refusals stay: a folder as --out, an existing grid without --overwrite
    assert main(["sample", "--model", str(model), "--out", str(tmp_path)]) == 2
    assert "is a folder, but --format grid writes one PNG file" in capsys.readouterr().err
    before = (tmp_path / "grid0.png").read_bytes()
    assert main(["sample", "--model", str(model), "--per-class", "2", "--out", str(tmp_path / "grid0.png")]) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert (tmp_path / "grid0.png").read_bytes() == before
    assert main(["sample", "--model", str(model), "--per-class", "2", "--out", str(tmp_path / "grid0.png"),
                 "--overwrite"]) == 0
    assert (tmp_path / "grid0.png").read_bytes() != before


def test_sample_format_hf_writes_a_save_to_disk_folder_and_parquet_writes_shards(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    from augmentgen import load_data

    model = tiny_saved_model(tmp_path / "model")
    assert main(["sample", "--model", str(model), "--per-class", "2", "--format", "hf",
                 "--out", str(tmp_path / "hf")]) == 0
    printed = capsys.readouterr().out
    assert "(hf: 2 images x 3 classes)" in printed and "datasets.load_from_disk(" in printed
    saved = datasets.load_from_disk(str(tmp_path / "hf"))
    assert len(saved) == 6 and saved.features["label"].names == ["0", "1", "2"]
    assert not list((tmp_path / "hf").rglob("*.parquet"))
    assert load_data(tmp_path / "hf").class_counts == [2, 2, 2]
    # an earlier hf export is only replaced with --overwrite
    assert main(["sample", "--model", str(model), "--format", "hf", "--out", str(tmp_path / "hf")]) == 2
    assert "pass --overwrite to replace an earlier export" in capsys.readouterr().err
    assert main(["sample", "--model", str(model), "--per-class", "1", "--format", "hf", "--overwrite",
                 "--out", str(tmp_path / "hf")]) == 0
    assert len(datasets.load_from_disk(str(tmp_path / "hf"))) == 3

    assert main(["sample", "--model", str(model), "--per-class", "2", "--format", "parquet", "--shard-size", "1",
                 "--out", str(tmp_path / "bank")]) == 0
    printed = capsys.readouterr().out
    assert "(parquet: 6 images of 3 classes in 6 shards;" in printed and "load_dataset('parquet'" in printed
    assert len(list((tmp_path / "bank" / "data").glob("*.parquet"))) == 6
    bank = datasets.load_dataset("parquet", data_dir=str(tmp_path / "bank"), split="train")
    assert sorted(bank["label"]) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(FileNotFoundError):
        datasets.load_from_disk(str(tmp_path / "bank"))


def test_sample_help_names_each_format_for_what_it_writes():
    from augmentgen.cli import build_parser

    sample = build_parser()._subparsers._group_actions[0].choices["sample"]
    text = " ".join(sample.format_help().split())
    assert "hf: a Hugging Face dataset folder written by save_to_disk" in text
    assert "parquet: Parquet shards for datasets.load_dataset('parquet', data_dir=OUT), resumable" in text
    assert "--shard-size SHARD_SIZE parquet only: images per Parquet shard" in text
    assert "--batch-size BATCH_SIZE images per forward pass" in text


def test_sample_refuses_shard_size_without_parquet_and_passes_batch_size_on(tmp_path, capsys, monkeypatch):
    import augmentgen.mixing

    model, out = tiny_saved_model(tmp_path / "model"), tmp_path / "grid.png"
    assert main(["sample", "--model", str(model), "--shard-size", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--shard-size applies to --format parquet only (--format grid writes one PNG image)" in err
    assert "Traceback" not in err and not out.exists()
    write_samples, seen = augmentgen.mixing.write_samples, []

    def recorded(*args, **kwargs):
        seen.append(kwargs["batch_size"])
        return write_samples(*args, **kwargs)

    monkeypatch.setattr(augmentgen.mixing, "write_samples", recorded)
    assert main(["sample", "--model", str(model), "--per-class", "2", "--batch-size", "4", "--out", str(out)]) == 0
    assert seen == [4] and out.is_file()


def test_a_model_whose_classes_carry_other_names_than_the_data_is_named_in_a_warning():
    from types import SimpleNamespace

    from augmentgen.cli.checks import _check_data_fits

    generator = SimpleNamespace(num_classes=3, image_shape=(1, 28, 28), class_names=["0", "1", "2"])
    same = SimpleNamespace(num_classes=3, image_shape=(1, 28, 28), class_names=["0", "1", "2"])
    other = SimpleNamespace(num_classes=3, image_shape=(1, 28, 28), class_names=["0", "cat", "dog"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_data_fits(generator, "m", {"--data d": same})
    with pytest.warns(UserWarning, match=r"names its classes otherwise than --data d \(1: '1' vs 'cat'; 2: '2' vs "
                                         r"'dog'\); its class i is taken as the data's class i"):
        _check_data_fits(generator, "m", {"--data d": other})


def test_sample_prints_a_start_up_summary_and_a_bar_for_every_format(tmp_path, capsys, request, monkeypatch):
    pytest.importorskip("datasets")
    bars = request.getfixturevalue("bars")  # after datasets' import, which subclasses tqdm
    import torch

    from augmentgen.hub import save_generator
    from augmentgen.models import build_config, build_generator

    monkeypatch.delenv("RANK", raising=False)
    torch.manual_seed(0)
    model = tmp_path / "ddpm"
    save_generator(build_generator(build_config("ddpm", num_classes=3, unet_width=8, channel_multipliers=[1, 2],
                                                sampling_steps=3)), model)
    writes = {"grid": "one PNG image", "imagefolder": "a folder of PNG images", "npz": "an .npz file",
              "hf": "a Hugging Face dataset folder", "parquet": "a folder of Parquet shards"}
    for format, what in writes.items():
        out = tmp_path / (f"{format}.png" if format == "grid" else f"{format}.npz" if format == "npz" else format)
        assert main(["sample", "--model", str(model), "--per-class", "2", "--format", format, "--out", str(out)]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first == (f"augmentgen sample: 2 images x 3 classes (6 images) from the ddpm generator {model}, "
                         f"written as {what} to {out}" + (" in shards of up to 4096" if format == "parquet" else ""))
        # shown even when stderr is not a terminal, as the parquet bar always was; moved step by step
        assert not bars[-1].disable and bars[-1].total == 6 and bars[-1].n == 6 and len(bars[-1].updates) > 1


def test_named_as_flags_renames_only_the_names_the_user_set():
    from augmentgen.cli.checks import named_as_flags
    from augmentgen.errors import ConfigError, UnknownFamilyError

    def raised(message, leading, phrases=None):
        with pytest.raises(ConfigError) as info, named_as_flags(leading, phrases):
            raise UnknownFamilyError(message)
        assert type(info.value) is UnknownFamilyError  # the subclass survives for callers that catch it
        return str(info.value)

    assert raised("steps must be at least 1, got 0", {"steps": "--steps"}) == "--steps must be at least 1, got 0"
    assert raised("seed must be >= 0, got -1; like seed=0", {"seed": "--seed"}) == "--seed must be >= 0, got -1; like --seed 0"
    assert raised("lecam_weight must be >= 0; use lecam_weight=0 to disable", {"lecam_weight": "--set lecam_weight"}) \
        == "--set lecam_weight must be >= 0; use --set lecam_weight=0 to disable"
    assert raised("lecam_weight must be >= 0; pass --set lecam_weight=0", {"lecam_weight": "--set lecam_weight"}) \
        == "--set lecam_weight must be >= 0; pass --set lecam_weight=0"  # already in the command's words
    assert raised("CGANConfig.lecam_weight must be >= 0", {"lecam_weight": "--set lecam_weight"}) == \
        "--set lecam_weight must be >= 0"
    # a value the user did not set (a resumed run's) keeps its own name; a name inside a sentence too
    assert raised("steps must be at least 1, got 0", {}) == "steps must be at least 1, got 0"
    assert raised("the run's steps must be at least 1", {"steps": "--steps"}) == "the run's steps must be at least 1"
    assert raised("stepsize must be positive", {"steps": "--steps"}) == "stepsize must be positive"
    assert raised("pass overwrite=True to replace it", {}, {"overwrite=True": "--overwrite"}) == \
        "pass --overwrite to replace it"


def test_the_run_folder_refusals_read_in_the_train_commands_flags(tmp_path):
    """train() names its arguments; `augmentgen train` maps each phrase of the run folder's refusals."""
    from augmentgen.cli.checks import named_as_flags
    from augmentgen.cli.train import RUN_FOLDER_FLAGS
    from augmentgen.training.run_folder import check_run_folder

    def refusal(out, leading=None, **options):
        with pytest.raises((ConfigError, CheckpointError)) as info, named_as_flags(leading or {}, RUN_FOLDER_FLAGS):
            check_run_folder(out, steps=2, **{"resume": False, "overwrite": False, **options})
        return str(info.value)

    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert refusal(tmp_path).endswith("Pass --overwrite to start over, clearing that folder's previous outputs, "
                                      "--resume to continue its run, or choose another --out")
    assert "without --resume to start a new run, adding --overwrite" in refusal(tmp_path, resume=True)
    assert "trained without checkpoints (--checkpoint-every 0)" in refusal(tmp_path, resume=True)
    assert "contradict each other: --resume continues" in refusal(tmp_path, resume=True, overwrite=True)
    assert refusal(tmp_path / "model.safetensors" / "run", {"output_dir": "--out"}).startswith("--out ")
    for text in (refusal(tmp_path), refusal(tmp_path, resume=True)):
        assert "=True" not in text and "output_dir" not in text and "checkpoint_every" not in text


def test_eval_summary_says_when_no_ratio_mixes_synthetic_rows():
    from augmentgen.cli.evaluate import _synthetic_line

    # --ratios 0 alone trains the baselines and no synthetic arm: the start-up summary says so.
    assert _synthetic_line("0", ["plain"], 1.0).startswith("none: --ratios 0 tries no synthetic rows")
    assert _synthetic_line("0,0.0", ["plain"], 1.0).startswith("none:")
    assert _synthetic_line("0,0.5", ["plain", "vary"], 1.0) == (
        "plain, vary at ratios 0,0.5 on top of the best baseline (ratio 0: do not mix; mixed only on a lead of "
        "more than 1 standard error on validation)")
    assert _synthetic_line("0,0.5", ["plain"], 0.0).endswith("(ratio 0: do not mix; mixed on any lead on validation)")
    # Without a ratio 0 there is nothing to fall back to: the summary says the best is mixed regardless.
    assert "no ratio 0: the best is mixed whatever validation says" in _synthetic_line("0.5,1", ["plain"], 1.0)


def test_a_killed_eval_keeps_its_finished_seeds_and_resumes(tmp_path, capsys, monkeypatch):
    import shlex

    from tests.metrics.fakes import interrupt_downstream_at

    model = tmp_path / "run"
    assert main(tiny_train(model)) == 0
    out = tmp_path / "eval"
    args = ["eval", "--model", str(model), "--data", "fashion-mnist-small", "--per-class", "6", "--steps", "2",
            "--synthetic-per-class", "2", "--device", "cpu", "--ratios", "0,0.5", "--baselines", "none",
            "--controls", "none", "--repeats", "2", "--out", str(out)]
    interrupt_downstream_at(monkeypatch, seed=1)
    capsys.readouterr()
    assert main(args) == 130
    printed, err = capsys.readouterr()
    assert "checkpoint:    every finished seed kept in" in printed and "Traceback" not in err
    assert f"the finished seeds are kept in {out / 'eval.checkpoint.json'}" in err
    resume = err.split("to continue the evaluation: ")[1].strip()
    assert resume.startswith("augmentgen eval") and resume.endswith("--resume")
    monkeypatch.undo()

    # Run again as it was: refused, as the finished seed is the user's work.
    assert main(args) == 2
    assert "already holds an evaluation (eval.checkpoint.json: its finished seeds); nothing was computed. Pass " \
        "--resume to continue it" in capsys.readouterr().err
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert "pass one of them" in capsys.readouterr().err
    assert main(shlex.split(resume)[1:]) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint:    seeds 0 read from {out / 'eval.checkpoint.json'}, not trained again" in printed
    report = json.loads((out / "eval.json").read_text())
    assert report["resumed_seeds"] == [0] and report["downstream_seeds"]["seeds"] == [0, 1]
    # --resume where no evaluation started says so; --overwrite starts over.
    assert main([*args[:-1], str(tmp_path / "other"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    (out / "eval.checkpoint.banks").mkdir()  # a killed seed's banks: --overwrite starts over without them
    (out / "eval.checkpoint.banks" / "seed0-0123.safetensors").write_bytes(b"stale")
    assert main([*args, "--overwrite"]) == 0
    assert json.loads((out / "eval.json").read_text())["resumed_seeds"] == []
    assert not (out / "eval.checkpoint.banks").exists()
