"""CUDA checks of the trainer's fast path (issue 17), skipped without a CUDA device.

``bash benchmarks/gpu.sh`` runs them (``pytest -m gpu tests/``, which also takes the mixer's) with the
GPU throughput benchmark. Each trains tiny models for a few steps: seconds on a GPU, but for
the compilation of the compile tests.
"""

from __future__ import annotations

import math

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from augmentgen.hub import load_generator
from augmentgen.models import build_config, build_generator, step_class
from augmentgen.training import Trainer, TrainingConfig
from augmentgen.training.trainer import GeneratorEMA
from tests.conftest import TINY_GAN, make_images

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    # Accelerate keeps one process-wide state whose mixed precision cannot change once set.
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _fit(tmp_path, **training):
    data = make_images(n_per_class=8)
    config = build_config("cgan", num_classes=data.num_classes, class_names=data.class_names, diffaugment="",
                          **TINY_GAN)
    values = {"steps": 3, "batch_size": 8, "checkpoint_every": 0, "sample_every": 0, "log_every": 1,
              "seed": 0, **training}
    trainer = Trainer(config, TrainingConfig(**values), tmp_path)
    return trainer, trainer.fit(data)


def test_bf16_training_keeps_fp32_weights_losses_and_saved_tensors(tmp_path):
    trainer, generator = _fit(tmp_path, mixed_precision="bf16")
    assert trainer.accelerator.device.type == "cuda" and trainer.accelerator.mixed_precision == "bf16"
    assert all(math.isfinite(v) for h in trainer.history for v in h.values())
    for module in (generator, trainer.step.plain_discriminator):
        assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert {p.dtype for p in trainer.ema.module.parameters()} == {torch.float32}
    loaded = load_generator(tmp_path)
    assert {t.dtype for t in loaded.state_dict().values() if t.is_floating_point()} == {torch.float32}
    labels = torch.arange(16, device="cuda") % 3
    fp32 = generator.sample(labels, generator=torch.Generator("cuda").manual_seed(0))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = generator.sample(labels, generator=torch.Generator("cuda").manual_seed(0))
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), fp32, rtol=0, atol=5e-2)


def _assert_trained_alike(reference_trainer, reference, trainer, generator, atol):
    for old, new in zip(reference_trainer.history, trainer.history, strict=True):
        assert {k: v for k, v in new.items() if k.endswith("loss")} == pytest.approx(
            {k: v for k, v in old.items() if k.endswith("loss")}, rel=1e-3, abs=1e-4)
    for (name, a), b in zip(reference.state_dict().items(), generator.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=atol, msg=name)


def test_compile_equals_eager(tmp_path):
    # TF32 would make the two differ by more than kernel fusion does.
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        eager_trainer, eager = _fit(tmp_path / "eager", channels_last=False)
        trainer, compiled = _fit(tmp_path / "compiled", channels_last=False, compile=True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert type(trainer.step.generator).__name__ == "OptimizedModule"
    _assert_trained_alike(eager_trainer, eager, trainer, compiled, atol=2e-3)


def test_all_speed_options_together_train_and_save(tmp_path):
    # The benchmark's "fast" arm: bf16 + compile + channels_last + fused Adam.
    trainer, generator = _fit(tmp_path, mixed_precision="bf16", compile=True, channels_last=True,
                              optimizer_kernel="fused")
    assert all(math.isfinite(v) for h in trainer.history for v in h.values())
    assert all(group["fused"] for opt in trainer.step.optimizers() for group in opt.param_groups)
    assert all(t.is_contiguous() for t in generator.state_dict().values())
    assert load_generator(tmp_path).num_classes == 3


@pytest.mark.parametrize("family", ["cgan", "wgan-gp", "aae", "aegan", "vae"])
def test_a_step_and_the_ema_update_never_wait_for_the_device(family):
    # Every host sync raises under this debug mode: the step and the EMA update must queue work only.
    torch.manual_seed(0)
    tiny = TINY_GAN if family in ("cgan", "wgan-gp") else {"encoder_width": 8, "decoder_width": 8}
    config = build_config(family, num_classes=3, **tiny)
    step = step_class(config.family)(build_generator(config), Accelerator())
    step.prepare()
    plain = step.accelerator.unwrap_model(step.generator)
    ema = GeneratorEMA(plain, 0.999)
    images = torch.rand(8, 1, 28, 28, device="cuda") * 2 - 1
    labels = torch.arange(8, device="cuda") % 3
    step(images, labels)  # first step: optimizer state, lazy initialisation
    ema.update(plain)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            losses = step(images, labels)
            ema.update(plain)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v) for v in losses.values())
