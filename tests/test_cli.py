import json
import subprocess
import sys

import pytest

from augmentgen.cli import main
from augmentgen.hub import load_generator


def test_train_then_sample_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "cgan", "--data", "fashion-mnist-small", "--per-class", "4",
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
                 "--steps", "3", "--samples-per-class", "4", "--device", "cpu", "--repeats", "2",
                 "--ratios", "0,0.5"]) == 0
    printed = capsys.readouterr().out
    assert "downstream gain" in printed and "CAS" in printed and "Trouser" in printed
    assert "real, no augmentation" in printed
    report = json.loads((out / "eval.json").read_text())
    assert report["n_train"] == 60 and report["n_test"] == 1000
    assert report["downstream"]["delta"] == report["downstream"]["acc_mixed"] - report["downstream"]["acc_real_classic"]
    assert report["extractor"]["name"] and (out / "eval.png").stat().st_size > 0
    assert report["downstream_seeds"]["seeds"] == [0, 1] and "over 2 paired seeds" in printed
    assert set(report["downstream"]["ratio_selection"]) == {"0.0", "0.5"}  # JSON keys
    # A folder of images has no test split: refuse rather than test on the training images.
    assert main(["eval", "--model", str(out), "--data", str(tmp_path / "folder")]) == 2
    assert "--test-data" in capsys.readouterr().err


def test_errors_are_one_line_messages_with_exit_code_2(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "mnist", "--ratios", "0,half"]) == 2
    assert "--ratios" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "none"), "--data", "mnist", "--methods", "plain,sharpen"]) == 2
    assert "--methods" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no data at" in capsys.readouterr().err
    assert main(["train", "--set", "no_such_field=1", "--out", str(tmp_path / "o")]) == 2
    assert "no field" in capsys.readouterr().err
    assert main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err or "model.safetensors" in err


def test_python_dash_m_lists_models():
    result = subprocess.run([sys.executable, "-m", "augmentgen", "models"], capture_output=True, text=True,
                            check=True)
    assert "cgan" in result.stdout and "wgan-gp" in result.stdout


@pytest.mark.parametrize("model", ["cgan", "wgan-gp", "aae", "vae", "aegan", "ae"])
def test_every_family_trains_saves_loads_and_samples_from_the_cli(model, tmp_path, capsys):
    from augmentgen.models import build_config

    out = tmp_path / model
    widths = [f"{name}=8" for name in type(build_config(model)).field_names() if name.endswith("_width")]
    args = ["train", "--model", model, "--data", "fashion-mnist-small", "--per-class", "3", "--out", str(out),
            "--steps", "2", "--batch-size", "6", "--sample-every", "0", "--samples-per-class", "2"]
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
    args = ["train", "--model", "cgan", "--data", "fashion-mnist-small", "--per-class", "2", "--out", str(out),
            "--steps", "2", "--batch-size", "6", "--sample-every", "0", "--samples-per-class", "2",
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

    assert main(["train", "--model", "aae", "--data", "fashion-mnist-small", "--per-class", "2",
                 "--out", str(tmp_path / "aae"), "--steps", "2", "--init-from", str(source)]) == 2
    assert "--model cgan" in capsys.readouterr().err
    assert not (tmp_path / "aae" / "model.safetensors").exists()
