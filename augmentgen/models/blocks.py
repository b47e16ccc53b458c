"""Layers shared by several families. Kept small on purpose: a family copies a helper rather
than growing an abstraction here.

:class:`ProjectionDiscriminator` is here, not in the ``cgan`` module, because the ``aegan``
family uses it too and families never import one another.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """(start size, number of 2x upsamplings) that reach ``image_size``: 7->28, 8->32, 8->64."""
    n_up = 3 if image_size == 64 else 2
    return image_size // 2**n_up, n_up


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift come from the class (de Vries et al. 2017)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gamma = self.scale(labels)[:, :, None, None]  # (b, c, 1, 1)
        beta = self.shift(labels)[:, :, None, None]
        return self.norm(x) * gamma + beta


def sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    return spectral_norm(nn.Conv2d(in_ch, out_ch, kernel, stride, padding))


def sn_linear(in_features: int, out_features: int) -> nn.Module:
    return spectral_norm(nn.Linear(in_features, out_features))


class ConvEncoder(nn.Module):
    """Strided conv stack mapping (B, C, H, W) to a flat feature vector (B, features).

    28 px: 28 -> 14 -> 7; 32 px: 32 -> 16 -> 8; 64 px: 64 -> 32 -> 16 -> 8.
    """

    def __init__(self, in_channels: int, image_size: int, width: int, *, spectral: bool = False,
                 norm: bool = True):
        super().__init__()
        start, n_down = upsampling_plan(image_size)
        conv = sn_conv if spectral else (lambda i, o, k, s=1, p=0: nn.Conv2d(i, o, k, s, p))
        layers: list[nn.Module] = [conv(in_channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(n_down):
            layers.append(conv(ch, ch * 2, 4, 2, 1))
            if norm and not spectral:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.2))
            ch *= 2
        self.net = nn.Sequential(*layers)
        self.out_channels = ch
        self.out_size = start
        self.features = ch * start * start

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(1)  # (b, ch * s * s)


class ConditionalDecoder(nn.Module):
    """Maps a code (B, latent_dim) and labels (B,) to images (B, C, H, W) in [-1, 1].

    The class enters through conditional batch norm in every block and through a class
    embedding concatenated to the code, so both global layout and local texture see it.
    """

    def __init__(self, latent_dim: int, num_classes: int, in_channels: int, image_size: int,
                 width: int, embed_dim: int = 32):
        super().__init__()
        start, n_up = upsampling_plan(image_size)
        top = width * 2**n_up
        self.start, self.top = start, top
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.project = nn.Linear(latent_dim + embed_dim, top * start * start)
        self.norms = nn.ModuleList()
        self.convs = nn.ModuleList()
        ch = top
        for _ in range(n_up):
            self.norms.append(ConditionalBatchNorm2d(ch, num_classes))
            self.convs.append(nn.Conv2d(ch, ch // 2, 3, 1, 1))
            ch //= 2
        self.out_norm = ConditionalBatchNorm2d(ch, num_classes)
        self.to_image = nn.Conv2d(ch, in_channels, 3, 1, 1)

    def forward(self, code: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([code, self.embed(labels)], dim=1))
        h = h.view(-1, self.top, self.start, self.start)  # (b, top, s, s)
        for norm, conv in zip(self.norms, self.convs):
            h = torch.relu(norm(h, labels))
            h = conv(nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = torch.relu(self.out_norm(h, labels))
        return torch.tanh(self.to_image(h))  # (b, c, H, W)


class ProjectionDiscriminator(nn.Module):
    """Spectral-norm conv discriminator with projection conditioning and a class head.

    Built from any config with ``in_channels``, ``image_size``, ``discriminator_width`` and
    ``num_classes``. ``forward`` returns (realness logits (B,), class logits (B, num_classes)).
    """

    def __init__(self, config):
        super().__init__()
        self.features = ConvEncoder(
            config.in_channels, config.image_size, config.discriminator_width, spectral=True
        )
        ch = self.features.out_channels
        self.realness = sn_linear(ch, 1)
        self.projection = spectral_norm(nn.Embedding(config.num_classes, ch))
        self.classifier = nn.Linear(ch, config.num_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = images.shape[0]
        h = self.features.net(images).sum(dim=(2, 3))  # (b, ch): global sum pooling
        realness = self.realness(h).view(b) + (self.projection(labels) * h).sum(dim=1)
        return realness, self.classifier(h)
