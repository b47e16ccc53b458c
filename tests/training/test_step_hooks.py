"""What the trainer asks a family's :class:`TrainingStep` instead of switching on the family.

The step's hooks (``check_training_options``, ``freezable_blocks``, ``compilable_modules``,
``trained_generator``) have defaults, so a new family writes ``prepare`` and ``__call__`` only;
the built-in families declare what differs. The trainer's source names no family's attribute.
"""

import ast
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from torch import nn

import augmentgen.training
from augmentgen.errors import ConfigError
from augmentgen.models import (
    ConditionalGenerator,
    GeneratorConfig,
    TrainingStep,
    build_config,
    build_generator,
    step_class,
)
from augmentgen.models import registry as registry_module
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import make_images
from tests.families.test_conformance import TINY


@dataclasses.dataclass
class ToyConfig(GeneratorConfig):
    """A linear generator: the least a family can be."""

    latent_dim: int = 4


class ToyGenerator(ConditionalGenerator):
    """One linear layer from noise and a one-hot class to pixels."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.net = nn.Linear(config.latent_dim + config.num_classes, math.prod(config.image_shape))

    def generate(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        code = torch.cat([noise, nn.functional.one_hot(labels, self.num_classes).to(noise.dtype)], dim=1)
        return torch.tanh(self.net(code)).view(-1, *self.image_shape)

    def forward(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.generate(labels, noise)


class ToyStep(TrainingStep):
    """Only what the contract requires: ``prepare`` and ``__call__``."""

    def prepare(self) -> None:
        opt = torch.optim.Adam(self.generator.parameters(), lr=self.config.learning_rate)
        self.generator, self.opt = self.accelerator.prepare(self.generator, opt)

    def __call__(self, real_images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        noise = torch.randn(len(labels), self.config.latent_dim, device=real_images.device)
        loss = (self.generator(labels, noise) - real_images).square().mean()
        self.opt.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.opt.step()
        return {"loss": loss.detach()}


@pytest.fixture
def toy_family(monkeypatch):
    """``toy`` registered for this test only."""
    monkeypatch.setattr(ToyConfig, "family", "toy")
    monkeypatch.setitem(registry_module._FAMILIES, "toy", ToyGenerator)
    monkeypatch.setitem(registry_module._STEPS, "toy", ToyStep)
    return "toy"


def test_a_family_with_only_prepare_and_call_trains_with_the_defaults(tmp_path, toy_family):
    data = make_images(n_per_class=4)
    config = ToyConfig(num_classes=3, class_names=data.class_names)
    training = TrainingConfig(steps=4, batch_size=6, checkpoint_every=2, sample_every=0, grid_per_class=2,
                              log_every=1, seed=0, optimizer_kernel="foreach", select_snapshot="best")
    trainer = Trainer(config, training, tmp_path)
    generator = trainer.fit(data)
    step = trainer.step
    assert step.compilable_modules() == {"generator": step.generator}
    plain = step.trained_generator()  # the unwrapped module, the one the EMA follows
    assert type(plain) is ToyGenerator and plain.state_dict().keys() == trainer.ema.module.state_dict().keys()
    assert type(generator) is ToyGenerator and (tmp_path / "model.safetensors").is_file()
    assert ToyStep.freezable_blocks(generator) is None
    ToyStep.check_training_options(config, TrainingConfig(compile=True))  # accepts everything


@pytest.mark.parametrize("name", sorted(TINY))
def test_each_family_declares_what_the_trainer_needs(name):
    config = build_config(name, num_classes=3, **TINY[name][0])
    generator = build_generator(config)
    cls = step_class(config.family)
    step = cls(generator, Accelerator(cpu=True))
    step.prepare()
    adversarial = name in ("cgan", "wgan-gp", "aae", "aegan")
    assert list(step.compilable_modules()) == (["generator", "discriminator"] if adversarial else ["generator"])
    assert step.trained_generator() is generator
    blocks = cls.freezable_blocks(generator)
    encoder = name in ("aae", "ae", "aegan", "vae")
    assert (blocks is not None) == encoder
    if encoder:  # the encoder's conv stack: 3 blocks at 28 px, each starting with a Conv2d's weight
        assert [block[0][0] for block in blocks] == [f"encoder.features.net.{i}.weight" for i in (0, 2, 4)]
        with pytest.raises(ConfigError, match="compile=True cannot train with contractive_weight > 0"):
            cls.check_training_options(config.replace(contractive_weight=0.1), TrainingConfig(compile=True))
        cls.check_training_options(config.replace(contractive_weight=0.1), TrainingConfig(compile=False))
    cls.check_training_options(config, TrainingConfig(compile=True))


#: Names that belong to some family's step or config, not to the shared loop.
FAMILY_NAMES = {"generator", "discriminator", "plain_generator", "plain_discriminator", "encoder",
                "contractive_weight", "g_opt", "d_opt", "ae_opt"}


@pytest.mark.parametrize("module", ["trainer", "speed"])
def test_the_trainer_names_no_family_attribute(module):
    source = Path(augmentgen.training.__file__).with_name(f"{module}.py").read_text()
    used = {node.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)}
    used |= {node.value for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not used & FAMILY_NAMES
