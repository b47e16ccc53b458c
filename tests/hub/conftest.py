"""Fixtures of the hub tests: tiny generators of every family, saved folders, a local test hub."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from augmentgen.hub import save_pretrained
from augmentgen.models import build_config, build_generator
from tests.hub.local_hub import LocalHub


def tiny_generator(name: str = "cgan", *, num_classes: int = 3, seed: int = 0):
    """A generator of model ``name`` with 8-channel widths, its weights and buffers perturbed.

    Perturbing every floating tensor (buffers such as fitted priors included) makes a round trip
    that silently dropped something fail: a freshly built model would not match.
    """
    config_class = type(build_config(name))
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    wanted = {"num_classes": num_classes, "latent_dim": 8, "class_names": [f"c{i}" for i in range(num_classes)]}
    wanted.update({n: 8 for n in fields if n.endswith("_width")})
    config = build_config(name, **{k: v for k, v in wanted.items() if k in config_class.field_names()})
    torch.manual_seed(seed)
    generator = build_generator(config).eval()
    with torch.no_grad():
        for tensor in generator.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.01 * torch.randn_like(tensor))
    return generator


@pytest.fixture
def saved_generator(tmp_path):
    """(generator, folder) for a tiny cGAN saved with save_pretrained (card and grid included)."""
    generator = tiny_generator("cgan")
    folder = save_pretrained(generator, tmp_path / "saved", dataset="synthetic",
                             metrics={"class_consistency": 0.5}, description="a tiny test generator")
    return generator, folder


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """A hub on 127.0.0.1 with huggingface_hub pointed at it, online, and a fresh cache.

    ``huggingface_hub`` was imported before this fixture runs, so the endpoint is patched in
    its constants (what ``HF_ENDPOINT`` sets at import time) rather than in the environment.
    """
    from huggingface_hub import constants

    hub = LocalHub()
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    yield hub
    hub.close()


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """huggingface_hub in offline mode with an empty cache (the tests' default is offline too)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path / "hf-cache"
