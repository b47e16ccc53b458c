"""Fake generators with known behaviour, for testing the metrics."""

from __future__ import annotations

import math

import torch
from torch import nn

from augmentgen.data import LabelledImages
from augmentgen.models.base import ConditionalGenerator, GeneratorConfig


class RealImagesGenerator(ConditionalGenerator):
    """Returns real images of class ``(label + shift) % K``: ``shift=0`` is a perfect generator,
    ``shift=1`` always draws the wrong class, ``collapsed=True`` returns one fixed image per class."""

    def __init__(self, data: LabelledImages, *, shift: int = 0, collapsed: bool = False):
        c, h, _ = data.image_shape
        super().__init__(GeneratorConfig(num_classes=data.num_classes, image_size=h, in_channels=c,
                                         latent_dim=1, class_names=data.class_names))
        order = data.labels.argsort()
        self.register_buffer("bank", data.to_float()[order])
        counts = torch.bincount(data.labels, minlength=data.num_classes)
        self.register_buffer("counts", counts)
        self.register_buffer("starts", torch.cumsum(counts, 0) - counts)
        self.shift, self.collapsed = shift, collapsed
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the module a device

    def generate(self, labels, noise):
        source = (labels + self.shift) % self.num_classes
        uniform = 0.5 * (1 + torch.erf(noise[:, 0] / math.sqrt(2)))  # N(0, 1) -> U(0, 1)
        offset = torch.zeros_like(source) if self.collapsed else (
            uniform * self.counts[source]).long().minimum(self.counts[source] - 1)
        return self.bank[self.starts[source] + offset]
