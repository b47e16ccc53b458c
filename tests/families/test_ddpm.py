"""What is specific to the ``ddpm`` family; the shared checks are in test_conformance.py."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

import augmentgen
from augmentgen.errors import ConfigError, DataError
from augmentgen.families.ddpm import DDPMGenerator
from augmentgen.hub import load_generator
from augmentgen.models import build_config, build_generator, step_class
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import make_images

TINY = {"num_classes": 3, "unet_width": 8, "channel_multipliers": [1, 2], "sampling_steps": 3, "learning_rate": 1e-3}
LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_generator(seed: int = 0, **values) -> DDPMGenerator:
    torch.manual_seed(seed)
    return build_generator(build_config("ddpm", **{**TINY, **values})).eval()


def tiny_step(seed: int = 0, **values):
    step = step_class("ddpm")(tiny_generator(seed, **values).train(), Accelerator(cpu=True))
    step.prepare()
    return step


def fixed_batch():
    data = make_images(n_per_class=6, num_classes=3)
    return data.to_float(), data.labels


@pytest.fixture(scope="module")
def trained() -> DDPMGenerator:
    """The tiny model after 30 steps on the fixed batch: a denoiser, if a rough one."""
    step = tiny_step()
    images, labels = fixed_batch()
    for _ in range(30):
        step(images, labels)
    return step.plain_generator.eval()


def test_importing_augmentgen_does_not_import_diffusers():
    # diffusers takes seconds to import; only building a ddpm model may pay for it.
    code = "import sys, augmentgen; assert 'ddpm' in augmentgen.available_models(); " \
           "assert 'diffusers' not in sys.modules, 'diffusers imported at package import'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_config_validation_and_the_preset():
    large = build_config("ddpm-large")
    assert large.block_out_channels == (64, 128, 256, 256) and large.attention_levels == (2, 3)
    with pytest.raises(ConfigError, match="norm_num_groups"):
        build_config("ddpm", unet_width=12)
    with pytest.raises(ConfigError, match="channel_multipliers"):
        build_config("ddpm", channel_multipliers=[])
    with pytest.raises(ConfigError, match="attention_levels"):
        build_config("ddpm", attention_levels=[3])
    with pytest.raises(ConfigError, match="label_dropout > 0"):
        build_config("ddpm", label_dropout=0.0)  # the default guidance needs the unconditional model
    assert build_config("ddpm", label_dropout=0.0, guidance_scale=1.0).guidance_scale == 1.0
    with pytest.raises(ConfigError, match="prediction_type"):
        build_config("ddpm", prediction_type="sample")
    with pytest.raises(ConfigError, match="sampling_steps"):
        tiny_generator().sample([0], sampling_steps=0)


def test_four_levels_pad_28_to_32_and_crop_back():
    generator = tiny_generator(channel_multipliers=[1, 1, 2, 2])
    assert generator.pad == (2, 2) and generator.unet.config.sample_size == 32
    assert generator.sample([0, 1], generator=seeded()).shape == (2, 1, 28, 28)
    x = torch.randn(2, 1, 28, 28)
    assert generator(x, torch.tensor([10, 900]), torch.tensor([0, 3])).shape == x.shape  # 3: "no class"


def test_seeded_sampling_is_deterministic_and_temperature_scales_the_start():
    generator = tiny_generator()
    first = generator.sample(LABELS, generator=seeded(1))
    assert torch.equal(first, generator.sample(LABELS, generator=seeded(1)))
    assert not torch.allclose(first, generator.sample(LABELS, generator=seeded(2)))
    # Temperature 0: every sample of a class starts from zero noise, so they are one image (up to
    # float rounding: with several threads, rows of one batch may take different kernel paths).
    cold = generator.sample(torch.zeros(3, dtype=torch.long), generator=seeded(1), temperature=0.0)
    assert torch.allclose(cold[0], cold[1], atol=2e-3) and torch.allclose(cold[0], cold[2], atol=2e-3)


def test_guidance_scale_changes_samples_and_one_is_the_plain_conditional_model():
    generator = tiny_generator()
    samples = {w: generator.sample(LABELS, generator=seeded(), guidance_scale=w) for w in (0.0, 1.0, 3.0)}
    assert (samples[0.0] - samples[3.0]).abs().mean() > 1e-3
    assert (samples[1.0] - samples[3.0]).abs().mean() > 1e-3
    # w = 0 is the unconditional model: the label no longer matters.
    unconditional = [generator.sample(torch.full((4,), k), generator=seeded(), guidance_scale=0.0) for k in (0, 2)]
    assert torch.equal(unconditional[0], unconditional[1])
    # The per-call option is the config's value, and it does not leak into later calls.
    assert torch.equal(samples[1.0], tiny_generator(guidance_scale=1.0).sample(LABELS, generator=seeded()))
    assert torch.equal(generator.sample(LABELS, generator=seeded()),
                       generator.sample(LABELS, generator=seeded(), guidance_scale=2.0))
    images, labels = generator.sample_per_class(2, generator=seeded(), guidance_scale=0.0)
    assert torch.equal(images, generator.sample(labels, generator=seeded(), guidance_scale=0.0))
    # The same options for code that calls sample without them (mixers, the shard writer).
    with generator.sampling_options(guidance_scale=0.0):
        assert torch.equal(generator.sample(LABELS, generator=seeded()), samples[0.0])
        assert torch.equal(generator.sample(LABELS, generator=seeded(), guidance_scale=3.0), samples[3.0])
    assert not torch.equal(generator.sample(LABELS, generator=seeded()), samples[0.0])  # the block ended


def test_guidance_is_one_batched_forward_per_solver_step():
    generator = tiny_generator(sampling_steps=4)
    batches = []
    handle = generator.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        generator.sample(LABELS, generator=seeded(), guidance_scale=2.0)
        generator.sample(LABELS, generator=seeded(), guidance_scale=1.0)
    finally:
        handle.remove()
    assert batches == [12] * 4 + [6] * 4


def test_label_dropout_feeds_the_null_class_at_the_rate_configured():
    images, labels = fixed_batch()
    images, labels = images.repeat(8, 1, 1, 1), labels.repeat(8)  # 144 rows: a rate can be read
    for rate in (0.0, 0.5):
        step = tiny_step(label_dropout=rate, guidance_scale=1.0 if rate == 0 else 2.0)
        seen = []
        step.plain_generator.unet.register_forward_pre_hook(
            lambda module, args, kwargs, seen=seen: seen.append(kwargs["class_labels"].clone()), with_kwargs=True)
        step(images, labels)
        null = seen[0] == step.plain_generator.null_label
        kept = ~null
        assert torch.equal(seen[0][kept], labels[kept])  # the others keep their class
        if rate == 0:
            assert not null.any()
        else:
            assert 0.3 < null.float().mean() < 0.7


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_both_objectives_train_and_sample(prediction_type):
    step = tiny_step(prediction_type=prediction_type)
    assert step.scheduler.config.prediction_type == prediction_type
    assert step.plain_generator.sampler().config.prediction_type == prediction_type
    images, labels = fixed_batch()
    losses = [float(step(images, labels)["diffusion_loss"]) for _ in range(25)]
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    samples = step.plain_generator.sample(LABELS, generator=seeded())
    assert torch.isfinite(samples).all() and samples.abs().max() <= 1


def test_the_objectives_differ():
    # Same seed, same draws: only the target differs (noise vs velocity), so the first loss does.
    images, labels = fixed_batch()
    eps, v = (float(tiny_step(seed=3, prediction_type=p)(images, labels)["diffusion_loss"])
              for p in ("epsilon", "v_prediction"))
    assert eps != v


def test_min_snr_weights_follow_the_paper_and_a_large_gamma_is_the_plain_loss():
    from augmentgen.families.ddpm import min_snr_weights

    alphas = torch.tensor([0.999, 0.9, 0.5, 0.01])  # SNR 999, 9, 1, 1/99
    eps = min_snr_weights(alphas, 5.0, "epsilon")
    v = min_snr_weights(alphas, 5.0, "v_prediction")
    assert torch.allclose(eps, torch.tensor([5 / 999, 5 / 9, 1.0, 1.0]), rtol=1e-3)  # 0.999 in float32
    assert torch.allclose(v, torch.tensor([5 / 1000, 5 / 10, 1 / 2, (1 / 99) / (1 / 99 + 1)]), rtol=1e-3)
    # The nearly clean timesteps weigh least, the noisiest fully (epsilon).
    images, labels = fixed_batch()
    plain = float(tiny_step(seed=3)(images, labels)["diffusion_loss"])
    assert float(tiny_step(seed=3, min_snr_gamma=1e9)(images, labels)["diffusion_loss"]) == pytest.approx(plain)
    weighted = float(tiny_step(seed=3, min_snr_gamma=5.0)(images, labels)["diffusion_loss"])
    assert weighted < plain  # same draws; the low-noise images' losses are scaled down
    with pytest.raises(ConfigError, match="min_snr_gamma must be a finite number >= 0"):
        build_config("ddpm", min_snr_gamma=-1)


def test_vary_is_sdedit_from_the_input_at_small_strength_to_a_free_sample_at_one(trained):
    generator = trained
    images, labels = fixed_batch()
    x, y = images[:6], labels[:6]
    assert torch.equal(generator.vary(x, y, 0.0), x)
    near = generator.vary(x, y, 0.05, generator=seeded())
    far = generator.vary(x, y, 0.9, generator=seeded())
    assert (near - x).abs().mean() < 0.1 and (near - x).abs().mean() < 0.5 * (far - x).abs().mean()
    # Strength 1 starts from the same noise draw as sample: the same images, bit for bit.
    assert torch.equal(generator.vary(x, y, 1.0, generator=seeded(4)), generator.sample(y, generator=seeded(4)))
    assert torch.equal(generator.vary(x, y, 0.5, generator=seeded(5)), generator.vary(x, y, 0.5, generator=seeded(5)))
    uint8 = ((x + 1) * 127.5).round().to(torch.uint8)
    assert generator.vary(uint8, y, 0.3, generator=seeded()).shape == x.shape
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(DataError, match="strength"):
            generator.vary(x, y, bad)
    with pytest.raises(DataError, match="labels"):
        generator.vary(x, y[:3], 0.5)


def test_numpy_sampling_options_are_taken_and_bad_vary_options_named():
    # np.float32(2) was "guidance_scale must be a finite number >= 0", np.int64(2) "sampling_steps must be an
    # integer >= 1"; vary's batch_size=0 and generator=3 failed inside torch
    generator = tiny_generator()
    images, labels = fixed_batch()
    expected = generator.sample([0, 1], generator=seeded(), guidance_scale=2.0, sampling_steps=2)
    got = generator.sample([0, 1], generator=seeded(), guidance_scale=np.float32(2), sampling_steps=np.int64(2))
    assert torch.equal(got, expected)
    with pytest.raises(ConfigError, match=r"^batch_size must be a positive int, got 0$"):
        generator.vary(images[:2], labels[:2], 0.5, batch_size=0)
    with pytest.raises(ConfigError, match=r"^generator must be a torch.Generator or None, got the int 3; for a seed"):
        generator.vary(images[:2], labels[:2], 0.5, generator=3)


def test_a_variation_source_refuses_a_ddpm_strength_above_one_when_built():
    # VariationSource(ddpm, strength=2) was accepted and failed at the first rows (a bank, a mixer's first step)
    from augmentgen.mixing import VariationSource

    with pytest.raises(ConfigError, match=r"^strength must be in \[0, 1\] for ddpm \(the fraction of the noise chain "
                                          r"each image is noised through; 1 is a free sample of its class\), got 2$"):
        VariationSource(tiny_generator(), "vary", strength=2)
    assert VariationSource(tiny_generator(), "vary", strength=np.float32(1)).strength == 1.0


@pytest.mark.parametrize("argv, message", [
    (["sample", "--variations-of", "fashion-mnist-small", "--format", "parquet", "--strength", "2"],
     "--strength must be in [0, 1] for ddpm"),
    (["eval", "--data", "fashion-mnist-small", "--methods", "plain,vary:2"],
     "--methods vary:2: strength must be in [0, 1] for ddpm"),
])
def test_the_command_line_refuses_a_ddpm_strength_above_one_before_the_data_loads(argv, message, tmp_path, capsys):
    # sample --variations-of printed its plan and failed at the first batch; eval failed once its data loaded
    from augmentgen.cli import main

    augmentgen.save_pretrained(tiny_generator(), tmp_path / "model")
    assert main([*argv[:1], "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out"), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"augmentgen: error: {message}") and len(err.splitlines()) == 1, err


def test_sampling_timesteps_follow_the_strength():
    generator = tiny_generator()
    full = generator.sampling_timesteps(1.0, 25)
    assert len(full) == 25 and full[0] > 990 and list(full) == sorted(full, reverse=True)
    half = generator.sampling_timesteps(0.5, 25)
    assert len(half) == 13 and abs(half[0] - full[0] / 2) <= 1
    assert len(generator.sampling_timesteps(1e-4, 25)) == 1  # never an empty run


def test_the_trainer_trains_it_with_ema_and_the_saved_model_loads(tmp_path):
    config = build_config("ddpm", **TINY)
    trainer = Trainer(config, TrainingConfig(steps=4, batch_size=9, log_every=2, checkpoint_every=2,
                                             sample_every=0, grid_per_class=2), tmp_path)
    generator = trainer.fit(make_images(n_per_class=6, num_classes=3))
    assert trainer.ema is not None and generator is trainer.ema.module
    assert [row["step"] for row in trainer.history] == [2, 4] and "diffusion_loss" in trainer.history[0]
    loaded = load_generator(tmp_path)
    assert isinstance(loaded, DDPMGenerator) and loaded.config == config
    assert torch.equal(loaded.sample(LABELS, generator=seeded()), generator.sample(LABELS, generator=seeded()))
    assert (tmp_path / "samples.png").exists()


#: The run the kill test trains, the same from the command line and from Python.
KILL_RUN = {"steps": 12, "checkpoint_every": 4, "batch_size": 8, "log_every": 4, "sample_every": 0,
            "grid_per_class": 1, "seed": 0}


@contextlib.contextmanager
def one_thread():
    """This process computes as the killed one does (``OMP_NUM_THREADS=1``): the same float arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_a_run_killed_after_its_first_checkpoint_resumes_bit_identically_on_cpu(tmp_path):
    """``augmentgen train --model ddpm`` killed (SIGKILL) after its step-4 checkpoint, mid-run,
    loses everything in memory (the global RNG, the data order, the noise and timesteps drawn
    so far); resumed from its folder, it ends with the weights of a run never interrupted."""
    data = make_images(n_per_class=6, num_classes=3)  # 18 images: the resumed run crosses an epoch
    data_file = tmp_path / "tiny.npz"
    np.savez(data_file, images=data.images.numpy(), labels=data.labels.numpy(), classes=np.array(data.class_names))
    model_config = {k: v for k, v in TINY.items() if k != "num_classes"}  # the data's
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in KILL_RUN.items()]
    flags += [f"--set={k}={json.dumps(v)}" for k, v in model_config.items()]
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    log = tmp_path / "killed.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "augmentgen", "train", "--family", "ddpm", "--data",
                                    str(data_file), "--out", str(killed), *flags],
                                   env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    outcome: dict = {}

    def kill_after_the_first_checkpoint():
        first = killed / "checkpoints" / "step-0000004"  # renamed into place once complete
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None and not first.is_dir():
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        outcome["returncode"] = process.wait()

    killer = threading.Thread(target=kill_after_the_first_checkpoint, daemon=True)
    killer.start()
    with one_thread():  # the uninterrupted run, meanwhile, in this process
        straight = augmentgen.train("ddpm", str(data_file), tmp_path / "straight", model_config=model_config,
                                    **KILL_RUN)
    killer.join(timeout=300)
    assert outcome.get("returncode") == -signal.SIGKILL, log.read_text()[-3000:]
    survivors = sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert "step-0000004" <= survivors[-1] < "step-0000012", f"killed too late: {survivors}"

    with one_thread():
        resumed = augmentgen.train("ddpm", str(data_file), killed, model_config=model_config, resume=True,
                                   **KILL_RUN)
    assert json.loads((killed / "training.json").read_text())["steps"] == 12
    saved = load_file(killed / "model.safetensors")
    assert saved.keys() == straight.state_dict().keys()
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]) and torch.equal(tensor, saved[name]), name
