"""Best snapshot, not last (issue 29, part 3): TrainingConfig(snapshot_every=N, select_snapshot=...)."""

import functools
import json

import pytest
import torch

from augmentgen.data import LabelledImages
from augmentgen.errors import ConfigError
from augmentgen.families.gan import GANStep
from augmentgen.hub import load_generator
from augmentgen.models import build_config, step_class
from augmentgen.training import Trainer, TrainingConfig, snapshots
from tests.conftest import TINY_GAN, make_images
from tests.families.test_conformance import TINY

FAMILIES = ["cgan", "wgan-gp", "aae", "ae", "vae", "aegan", "ddpm"]
#: The default scorer with a shorter classifier fit, so that the tests stay fast.
QUICK_SCORE = functools.partial(snapshots.TrainingDataScore, classifier_steps=40)


def tiny_config(data, family="cgan"):
    values = TINY_GAN if family == "cgan" else TINY[family][0]
    return build_config(family, num_classes=data.num_classes, class_names=data.class_names, **values)


def tiny_training(**overrides):
    values = dict(steps=6, batch_size=8, checkpoint_every=0, sample_every=0, grid_per_class=2, log_every=3,
                  seed=0)
    return TrainingConfig(**{**values, **overrides})


def summary(folder):
    return json.loads((folder / "training.json").read_text())


def test_defaults_keep_todays_behaviour(tmp_path):
    config = TrainingConfig()
    assert config.snapshot_every == 0 and config.select_snapshot == "last"
    data = make_images()
    trainer = Trainer(tiny_config(data), tiny_training(), tmp_path)
    trainer.fit(data)
    assert trainer.snapshots is None and "snapshots" not in summary(tmp_path)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="select_snapshot"):
        TrainingConfig.from_dict({"select_snapshot": "first"})
    with pytest.raises(ConfigError, match="snapshot_every must be >= 0"):
        TrainingConfig(snapshot_every=-1)
    data = make_images()
    batches = [(data.images[:8], data.labels[:8])]
    with pytest.raises(ConfigError, match="LabelledImages"):
        Trainer(tiny_config(data), tiny_training(select_snapshot="best"), tmp_path).fit(batches)


def test_last_records_scores_without_changing_the_trained_weights(tmp_path):
    """Scoring draws no random numbers from the training's streams: the weights are those of a
    run without snapshots, and the scores of every snapshot are recorded."""
    data = make_images()
    plain = Trainer(tiny_config(data), tiny_training(), tmp_path / "plain").fit(data)
    scored = Trainer(tiny_config(data), tiny_training(snapshot_every=2), tmp_path / "scored",
                     snapshot_scorer=QUICK_SCORE).fit(data)
    for (name, a), b in zip(plain.state_dict().items(), scored.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    record = summary(tmp_path / "scored")["snapshots"]
    assert record["select"] == "last" and record["kept_step"] == 6
    assert [r["step"] for r in record["records"]] == [2, 4, 6]
    assert all({"score", "class_consistency", "diversity"} <= set(r) for r in record["records"])


def test_selection_reads_the_training_images_only(tmp_path, monkeypatch):
    """Every data object that reaches the scoring (the scorer's construction, its classifier,
    the loaders of the snapshots' ``finish``) is the training set, never a held-out one."""
    train, held_out = make_images(seed=0), make_images(seed=1)
    seen: list = []

    def spy(function):
        def wrapper(*args, **kwargs):
            seen.extend(a for a in [*args, *kwargs.values()] if isinstance(a, (LabelledImages, torch.Tensor)))
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(snapshots, "fit_reference_classifier", spy(snapshots.fit_reference_classifier))
    original_loader = LabelledImages.loader

    def loader(self, *args, **kwargs):
        seen.append(self)
        return original_loader(self, *args, **kwargs)

    monkeypatch.setattr(LabelledImages, "loader", loader)
    factory_calls = []

    def factory(data):
        factory_calls.append(data)
        return QUICK_SCORE(data)

    Trainer(tiny_config(train), tiny_training(select_snapshot="best", snapshot_every=2), tmp_path,
            snapshot_scorer=factory).fit(train)
    assert factory_calls == [train] and factory_calls[0] is train
    data_seen = [d for d in seen if isinstance(d, LabelledImages)]
    assert data_seen and all(d is train for d in data_seen)
    assert all(d is not held_out for d in seen)
    assert len(summary(tmp_path)["snapshots"]["records"]) == 3


def test_best_keeps_the_earlier_snapshot_when_later_ones_are_destroyed(tmp_path, monkeypatch):
    """After step 4 the step zeroes the generator's weights (every sample the same): those
    snapshots score 0 on within-class diversity, and the run saves step 4's weights."""
    data = make_images(n_per_class=16)
    original, at_step_4 = GANStep.__call__, {}

    def destroy_after_step_4(self, *args):
        losses = original(self, *args)
        plain = self.accelerator.unwrap_model(self.generator)
        calls = at_step_4.setdefault("calls", 0) + 1
        at_step_4["calls"] = calls
        if calls == 4:
            at_step_4["weights"] = {k: v.detach().clone() for k, v in plain.state_dict().items()}
        elif calls > 4:
            with torch.no_grad():
                for p in plain.parameters():
                    p.zero_()
        return losses

    monkeypatch.setattr(GANStep, "__call__", destroy_after_step_4)
    training = tiny_training(steps=8, ema_decay=0.0, select_snapshot="best", snapshot_every=2)
    generator = Trainer(tiny_config(data), training, tmp_path, snapshot_scorer=QUICK_SCORE).fit(data)
    record = summary(tmp_path)["snapshots"]
    scores = {r["step"]: r["score"] for r in record["records"]}
    assert record["kept_step"] == 4, scores
    assert scores[6] == scores[8] == 0.0 < scores[4]
    saved = load_generator(tmp_path)
    for name, value in at_step_4["weights"].items():
        torch.testing.assert_close(saved.state_dict()[name], value, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(generator.state_dict()[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_saves_the_best_snapshot(tmp_path, family):
    """A scorer that prefers the first snapshot: every family saves that snapshot's weights
    (after its ``finish``, as the run would have saved them at that step)."""
    data = make_images(n_per_class=4)
    first: dict = {}

    def prefer_the_first(train_data):
        def score(generator):
            if not first:
                first.update({k: v.detach().clone() for k, v in generator.state_dict().items()})
                return {"score": 1.0}
            return {"score": 0.0}
        return score

    training = tiny_training(select_snapshot="best", snapshot_every=2)
    Trainer(tiny_config(data, family), training, tmp_path, snapshot_scorer=prefer_the_first).fit(data)
    record = summary(tmp_path)["snapshots"]
    assert record["kept_step"] == 2 and [r["step"] for r in record["records"]] == [2, 4, 6]
    saved = load_generator(tmp_path).state_dict()
    for name, value in first.items():
        torch.testing.assert_close(saved[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_best_without_snapshot_every_takes_ten_spread_over_the_run(tmp_path):
    data = make_images()
    calls = []
    Trainer(tiny_config(data), tiny_training(steps=20, select_snapshot="best"), tmp_path,
            snapshot_scorer=lambda d: lambda g: calls.append(1) or {"score": 0.5}).fit(data)
    record = summary(tmp_path)["snapshots"]
    assert record["every"] == 2 and [r["step"] for r in record["records"]] == list(range(2, 21, 2))
    assert record["kept_step"] == 20  # ties go to the later snapshot


class Interrupt(Exception):
    pass


def test_resume_keeps_the_snapshots_and_the_best_weights(tmp_path, monkeypatch):
    data = make_images()
    training = tiny_training(steps=8, checkpoint_every=2, select_snapshot="best", snapshot_every=2)
    scores = iter([0.2, 0.9, 0.1, 0.3] * 2)  # the same sequence in both runs: step 4 is best

    def scorer(_data):
        return lambda generator: {"score": next(scores)}

    full = Trainer(tiny_config(data), training, tmp_path / "full", snapshot_scorer=scorer).fit(data)
    scores = iter([0.2, 0.9, 0.1, 0.3])
    original, calls = GANStep.__call__, {"n": 0}

    def crash_at_step_7(self, *args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise Interrupt
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", crash_at_step_7)
    with pytest.raises(Interrupt):
        Trainer(tiny_config(data), training, tmp_path / "cut", snapshot_scorer=scorer).fit(data)
    monkeypatch.setattr(GANStep, "__call__", original)
    scores = iter([0.3])  # only step 8 is scored again
    resumed = Trainer(tiny_config(data), training, tmp_path / "cut", snapshot_scorer=scorer).fit(data, resume=True)
    assert summary(tmp_path / "cut")["snapshots"]["kept_step"] == 4
    assert summary(tmp_path / "cut")["snapshots"]["records"] == summary(tmp_path / "full")["snapshots"]["records"]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with pytest.raises(ConfigError, match="select_snapshot is 'best' there but 'last' now"):
        Trainer(tiny_config(data), tiny_training(steps=10, checkpoint_every=2, snapshot_every=2),
                tmp_path / "cut").fit(data, resume=True)


def test_scorer_must_return_a_score(tmp_path):
    data = make_images()
    with pytest.raises(ConfigError, match="'score'"):
        Trainer(tiny_config(data), tiny_training(snapshot_every=3), tmp_path,
                snapshot_scorer=lambda d: lambda g: {"quality": 1.0}).fit(data)


def test_the_default_score_punishes_a_collapsed_generator():
    data = make_images(n_per_class=16)
    score = QUICK_SCORE(data)
    generator = build_config("cgan", num_classes=3, class_names=data.class_names, **TINY_GAN)
    from augmentgen.models import build_generator

    model = build_generator(generator)
    assert score(model)["diversity"] > 0
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    collapsed = score(model)
    assert collapsed["diversity"] == 0.0 and collapsed["score"] == 0.0
    assert step_class("cgan") is GANStep


def test_the_default_score_punishes_blurred_samples_that_a_small_classifier_still_recognises():
    """Realness: the Fréchet distance on the score's classifier features, against two halves of the
    training images. Sharp real images score 1; the same images blurred score far less."""
    from tests.metrics.fakes import RealImagesGenerator

    data = make_images(n_per_class=32, seed=0)
    score = QUICK_SCORE(data)
    data = make_images(n_per_class=32, seed=1)  # new images of the same classes, not copies

    class Blurred(RealImagesGenerator):
        def generate(self, labels, noise):
            kernel = torch.full((1, 1, 5, 5), 1 / 25)
            images = super().generate(labels, noise)
            return torch.nn.functional.conv2d(images, kernel.to(images), padding=2)

    sharp, blurred = score(RealImagesGenerator(data)), score(Blurred(data))
    assert sharp["realness"] == 1.0 and sharp["frechet_distance"] <= score.real_distance
    assert blurred["realness"] < 0.5 * sharp["realness"]
    assert blurred["score"] < 0.5 * sharp["score"]
    assert snapshots.frechet_distance(torch.zeros(1, 4), torch.zeros(3, 4)) != snapshots.frechet_distance(
        torch.zeros(1, 4), torch.zeros(3, 4))  # NaN: one row has no covariance
    torch.testing.assert_close(snapshots.frechet_distance(torch.eye(4), torch.eye(4)), 0.0, atol=1e-9, rtol=0)


def test_the_default_score_punishes_copies_of_the_training_images():
    """Novelty: a generator that returns its training images (memorised) scores 0, however real
    they look; new images of the same classes score about 1, and half-copies in between."""
    from tests.metrics.fakes import RealImagesGenerator

    train, new = make_images(n_per_class=32, seed=0), make_images(n_per_class=32, seed=1)
    score = QUICK_SCORE(train)
    copies, fresh = score(RealImagesGenerator(train)), score(RealImagesGenerator(new))
    assert copies["novelty"] == 0.0 and copies["score"] == 0.0
    assert copies["realness"] == 1.0 and copies["class_consistency"] == 1.0  # the other terms cannot tell
    assert fresh["novelty"] > 0.95 and fresh["score"] > 0.9
    halfway = LabelledImages((train.images.float() + new.images.float()).div(2).round().to(torch.uint8),
                             train.labels, train.class_names)
    assert 0.2 < score(RealImagesGenerator(halfway))["novelty"] < 0.8


def test_class_nearest_distance_skips_each_images_own_entry():
    images = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [9.0, 9.0]]).view(4, 1, 1, 2)
    labels = torch.tensor([0, 0, 0, 1])
    itself = snapshots.class_nearest_distance(images, labels, images, labels, 2)
    assert itself[0] == 1.0 and itself[1].isnan()  # lower median of (1, 1, sqrt(18)); one image of class 1
    queries = torch.tensor([[0.0, 0.0], [9.0, 9.0], [9.0, 10.0]]).view(3, 1, 1, 2)
    other = snapshots.class_nearest_distance(queries, torch.tensor([0, 1, 1]), images, labels, 2)
    assert other.tolist() == [0.0, 0.0]  # the lower median of (0, 1) for class 1
