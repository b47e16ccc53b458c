"""Every registered model resumes bit-identically: interrupted mid-run, then resumed, it ends with
the weights, EMA and optimizer state an uninterrupted run ends with.

In-process (a step that raises, as a crash would), so it is cheap enough to run for every family;
``tests/training/test_processes.py`` and ``tests/families/test_ddpm.py`` kill real processes.
"""

import pytest
import torch

from augmentgen.models import available_models, build_config, step_class
from augmentgen.training import Trainer, TrainingConfig
from tests.conftest import make_images
from tests.families.test_conformance import TINY


class Crash(Exception):
    pass


def tiny_run(name, data, out):
    config = build_config(name, num_classes=data.num_classes, class_names=data.class_names, **TINY[name][0])
    training = TrainingConfig(steps=6, batch_size=8, checkpoint_every=2, sample_every=0, grid_per_class=2,
                              log_every=1, seed=0)
    return Trainer(config, training, out)


def optimizer_tensors(trainer) -> list[torch.Tensor]:
    return [t for opt in trainer.step.optimizers() for s in opt.state_dict()["state"].values()
            for t in s.values() if isinstance(t, torch.Tensor)]


@pytest.mark.parametrize("name", sorted(available_models()))
def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(name, tmp_path, monkeypatch):
    assert name in TINY, f"add {name!r} to TINY in tests/families/test_conformance.py"
    data = make_images(n_per_class=8)
    full_trainer = tiny_run(name, data, tmp_path / "full")
    full = full_trainer.fit(data)

    cls, calls = step_class(build_config(name).family), {"n": 0}
    original = cls.__call__

    def crash_in_step_5(self, *args):  # after the step-4 checkpoint, mid-way to the next
        calls["n"] += 1
        if calls["n"] == 5:
            raise Crash
        return original(self, *args)

    monkeypatch.setattr(cls, "__call__", crash_in_step_5)
    with pytest.raises(Crash):
        tiny_run(name, data, tmp_path / "cut").fit(data)
    monkeypatch.setattr(cls, "__call__", original)
    assert not (tmp_path / "cut" / "model.safetensors").exists()

    resumed_trainer = tiny_run(name, data, tmp_path / "cut")
    resumed = resumed_trainer.fit(data, resume=True)
    assert [h["step"] for h in resumed_trainer.history] == [1, 2, 3, 4, 5, 6]  # steps 1-4 from the checkpoint
    for (key, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    for key, a in full_trainer.step.trained_generator().state_dict().items():  # the raw weights too
        assert torch.equal(a, resumed_trainer.step.trained_generator().state_dict()[key]), key
    for a, b in zip(optimizer_tensors(full_trainer), optimizer_tensors(resumed_trainer), strict=True):
        assert torch.equal(a, b)
    # The same losses at every logged step (the speed differs): the history survives the resume.
    assert full_trainer.history == [{**h, "images_per_second": full_trainer.history[i]["images_per_second"]}
                                    for i, h in enumerate(resumed_trainer.history)]
