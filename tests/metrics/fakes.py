"""Fakes with known behaviour, shared by the metrics and mixing tests: generators that return real
images (of their class, the wrong class, or one image per class) and a teacher that tells the
classes of ``tests.conftest.make_images`` apart."""

from __future__ import annotations

import math

import torch
from torch import nn

from augmentgen.data import LabelledImages
from augmentgen.models.base import ConditionalGenerator, GeneratorConfig


class RealImagesGenerator(ConditionalGenerator):
    """Returns real images of class ``(label + shift) % K``: ``shift=0`` is a perfect generator,
    ``shift=1`` always draws the wrong class, ``collapsed=True`` returns one fixed image per class."""

    def __init__(self, data: LabelledImages, *, shift: int = 0, collapsed: bool = False, latent_dim: int = 1):
        c, h, _ = data.image_shape
        super().__init__(GeneratorConfig(num_classes=data.num_classes, image_size=h, in_channels=c,
                                         latent_dim=latent_dim, class_names=data.class_names))
        order = data.labels.argsort()
        self.register_buffer("bank", data.to_float()[order])
        counts = torch.bincount(data.labels, minlength=data.num_classes)
        self.register_buffer("counts", counts)
        self.register_buffer("starts", torch.cumsum(counts, 0) - counts)
        self.shift, self.collapsed = shift, collapsed
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def _real(self, source: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """A real image of each class in ``source``, picked by ``uniform`` in [0, 1)."""
        offset = torch.zeros_like(source) if self.collapsed else (
            uniform * self.counts[source]).long().minimum(self.counts[source] - 1)
        return self.bank[self.starts[source] + offset]

    def generate(self, labels, noise):
        source = (labels + self.shift) % self.num_classes
        uniform = 0.5 * (1 + torch.erf(noise[:, 0] / math.sqrt(2)))  # N(0, 1) -> U(0, 1)
        return self._real(source, uniform)


class WrongClassGenerator(RealImagesGenerator):
    """Real images; a sample of class c shows class c+1 with probability ``wrong[c]`` (the second
    noise dimension decides)."""

    def __init__(self, data: LabelledImages, wrong):
        super().__init__(data, latent_dim=2)
        self.register_buffer("wrong", torch.tensor(wrong, dtype=torch.float32))

    def generate(self, labels, noise):
        uniform = 0.5 * (1 + torch.erf(noise / math.sqrt(2)))  # N(0, 1) -> U(0, 1)
        source = torch.where(uniform[:, 1] < self.wrong[labels], (labels + 1) % self.num_classes, labels)
        return self._real(source, uniform[:, 0])


class SquareTeacher(nn.Module):
    """Logits = ``scale`` x the mean of each class's band of rows (where make_images puts class c's
    bright square). At scale 3 an image of class c gets p(c) ~ 0.93 and p(other) ~ 0.035, so a
    threshold of 0.5 accepts exactly the images that show the row's class. The dropout would make
    the logits random if the teacher ever ran in train mode."""

    def __init__(self, scale: float = 3.0, num_classes: int = 3, size: int = 28):
        super().__init__()
        self.scale, self.num_classes, self.step = scale, num_classes, size // num_classes
        self.dropout = nn.Dropout(0.9)
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        rows = images.float().mean(dim=(1, 3))[:, : self.num_classes * self.step]
        bands = rows.view(len(images), self.num_classes, self.step).mean(-1)
        return self.dropout(self.scale * bands) + self.anchor


class FakeBar:
    """The part of tqdm that downstream_gain and evaluate_generator use; records the postfixes (the phases)."""

    def __init__(self, total):
        self.total, self.n, self.postfix = total, 0, []

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, text, refresh=True):
        self.postfix.append(text)

    def refresh(self):
        pass


def interrupt_downstream_at(monkeypatch, seed: int) -> None:
    """Make ``evaluate_generator``'s downstream gain at ``seed`` raise KeyboardInterrupt (a kill
    mid-evaluation); ``monkeypatch.undo()`` or the test's end restores it."""
    import augmentgen.metrics.report as report_module

    original = report_module.downstream_gain

    def killed(*args, **kwargs):
        if kwargs["seed"] == seed:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(report_module, "downstream_gain", killed)
