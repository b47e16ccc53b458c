"""The hub methods every generator has (attached by augmentgen.hub), and the layering they keep."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import augmentgen
from augmentgen.errors import CheckpointError, ConfigError
from augmentgen.hub import PretrainedMixin
from augmentgen.models import ConditionalGenerator, available_models
from augmentgen.models.registry import generator_class
from tests.hub.conftest import tiny_generator
from tests.hub.test_hub_remote import FakeApi

BASE = Path(augmentgen.__file__).parent / "models" / "base.py"
UPPER_LAYERS = ("hub", "training", "mixing", "metrics", "families", "api", "cli")


def test_the_interface_module_imports_no_layer_above_it():
    imported = set()
    for node in ast.walk(ast.parse(BASE.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    above = sorted(m for m in imported
                   if m.lstrip(".").removeprefix("augmentgen.").split(".")[0] in UPPER_LAYERS)
    assert above == [], above


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_family_has_the_hub_methods(name):
    cls = type(tiny_generator(name))
    for method in ("save_pretrained", "push_to_hub", "from_pretrained"):
        assert getattr(cls, method).__doc__, method
        assert getattr(cls, method).__qualname__.startswith("PretrainedMixin."), method


def test_generator_methods_follow_the_hub_mixin_conventions(tmp_path):
    generator = tiny_generator()
    generator.save_pretrained(tmp_path, grid=False)
    loaded = type(generator).from_pretrained(tmp_path, device="cpu")
    assert type(loaded) is type(generator) and loaded.config == generator.config
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), loaded.state_dict().values()))
    assert (tmp_path / "README.md").exists()
    # The base class loads any family.
    assert type(ConditionalGenerator.from_pretrained(tmp_path)) is type(generator)


def test_from_pretrained_on_another_family_is_a_clear_error(tmp_path):
    tiny_generator("cgan").save_pretrained(tmp_path, grid=False)
    other = generator_class("aae")
    with pytest.raises(ConfigError, match=f"not a {other.__name__}; use augmentgen.from_pretrained"):
        other.from_pretrained(tmp_path)


def test_push_to_hub_method_uploads_the_generator():
    api = FakeApi()
    assert tiny_generator().push_to_hub("me/tiny", api=api, dataset="mnist") == "commit-info"
    assert sorted(api.uploaded) == ["README.md", "config.json", "model.safetensors", "samples.png"]
    assert 'from_pretrained("me/tiny")' in api.uploaded["README.md"].decode()


def test_the_mixin_is_what_the_generator_exposes():
    assert ConditionalGenerator.save_pretrained is PretrainedMixin.save_pretrained
    assert ConditionalGenerator.push_to_hub is PretrainedMixin.push_to_hub
    assert vars(ConditionalGenerator)["from_pretrained"] is vars(PretrainedMixin)["from_pretrained"]


def test_the_hub_methods_are_declared_on_the_interface_for_type_checkers():
    """models/base.py declares (under TYPE_CHECKING) exactly the methods the hub attaches."""
    import ast
    import inspect

    from augmentgen.hub.mixin import HUB_METHODS
    from augmentgen.models import base

    tree = ast.parse(inspect.getsource(base))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ConditionalGenerator")
    block = next(n for n in cls.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    assert {f.name for f in block.body if isinstance(f, ast.FunctionDef)} == set(HUB_METHODS)
    for name in HUB_METHODS:  # and at run time they are the hub's
        assert getattr(base.ConditionalGenerator, name).__qualname__.startswith("PretrainedMixin.")


def test_save_pretrained_method_takes_overwrite_like_the_function(tmp_path):
    tiny_generator(seed=0).save_pretrained(tmp_path, grid=False)
    with pytest.raises(CheckpointError, match="already holds another model.*overwrite=True"):
        tiny_generator(seed=1).save_pretrained(tmp_path, grid=False)
    tiny_generator(seed=1).save_pretrained(tmp_path, grid=False, overwrite=True)
    loaded = type(tiny_generator()).from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(tiny_generator(seed=1).state_dict().values(),
                                                 loaded.state_dict().values()))
