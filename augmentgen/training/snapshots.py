"""Best snapshot, not last: score the generator a run would save, on its training images only.

With ``TrainingConfig(snapshot_every=N)`` the trainer scores a snapshot of the generator it
would save (the EMA one, after the family's ``finish``, on a copy) every ``N`` steps and at the
last step; with ``select_snapshot="best"`` it saves the best-scoring one instead of the last.

The default score, :class:`TrainingDataScore`, reads nothing but the training images the run
is fitted on, so selecting a snapshot can never leak test data into the model:

- **class consistency**: the share of each class's samples that a small classifier, trained on
  the training images at the start of the run, assigns to that class (a generator that draws
  the wrong class, or noise, scores low);
- **within-class diversity**: the median pairwise pixel distance among a class's samples over
  the same median among that class's training images, capped at 1 (a collapsed class, every
  sample alike, scores 0; more spread than the real images earns nothing more);
- **realness**: the Fréchet distance between the classifier's features of the samples and of
  the training images, against the same distance between two random halves of the training
  images: ``min(1, FD(half, half) / FD(samples, training))``. Samples as close to the training
  images as the training images are to each other score 1; blurred or noisy ones score far less
  (a small classifier recognises a blurred garment about as often as a sharp one, so class
  consistency alone cannot tell them apart: on Fashion-MNIST, the `cgan`'s blurry grid at step
  250 scored as high as its sharp grid at step 3000 before this term);
- **novelty**: the median distance of a class's samples to their nearest training image of the
  class, over the median distance of a training image to its nearest *other* one, capped at 1
  (copies of training images score 0: a model that memorises its few hundred images, as
  diffusion models can, is not kept for its sharp, real-looking copies; new draws score about 1).

The score is the product of consistency, diversity and novelty averaged over the classes, times
realness. Spreads, nearest distances and realness are measured on at most 256 training images
per class (all of them on the few-hundred-image sets where memorising is a risk). The score
lives here rather than in :mod:`augmentgen.metrics` because the trainer may not import the
measures (they are siblings in one layer); the measures'
:class:`~augmentgen.metrics.ReferenceClassifier` is the larger evaluation-grade network. Any ``factory(train_data) -> scorer`` can replace it
(``Trainer(snapshot_scorer=...)``), where ``scorer(generator)`` returns a dict with a
``"score"`` (higher is better) and any other numbers to record.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from .._distances import gaussian_frechet_distance as frechet_distance
from .._distances import median_pairwise_distance, nearest_distances
from .._images import to_signed_unit
from ..data.labelled import LabelledImages
from ..errors import ConfigError
from ..models.base import ConditionalGenerator
from .devices import rng_kept

#: Images drawn per class for each score: 32, fewer with many classes (about 1024 in all).
MAX_SAMPLES_PER_CLASS = 32
#: Real images per class that enter the real-data spread.
MAX_REAL_PER_CLASS = 256
#: TrainingConfig fields a resume must repeat besides ``run_folder.RESUME_FIELDS``: they decide
#: what the checkpoints hold (the snapshot selector's state).
SNAPSHOT_FIELDS = ("snapshot_every", "select_snapshot")
#: ``factory(train_data) -> scorer``; ``scorer(generator)`` returns a dict with a ``"score"``.
SnapshotScorerFactory = Callable[[LabelledImages], Callable[[ConditionalGenerator], dict]]


def samples_per_class(num_classes: int) -> int:
    """How many images of each class a snapshot's score draws."""
    return max(8, min(MAX_SAMPLES_PER_CLASS, 1024 // max(num_classes, 1)))


class SnapshotClassifier(nn.Module):
    """A small CNN classifier of training images: two strided convolutions, pooled, then linear."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of images (B, C, H, W) in [-1, 1]."""
        return self.head(self.features(images))


def fit_reference_classifier(train_data: LabelledImages, *, seed: int = 0, steps: int = 1000, batch_size: int = 64,
                             device: torch.device | str = "cpu") -> SnapshotClassifier:
    """Train :class:`SnapshotClassifier` on ``train_data`` (seeded; the global RNG is left as it was)."""
    device = torch.device(device)
    images, labels = train_data.images, train_data.labels
    rng = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = SnapshotClassifier(train_data.num_classes, images.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        index = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=rng)
        batch = to_signed_unit(images[index].to(device))
        loss = F.cross_entropy(model(batch), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def class_spread(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Median pairwise Euclidean distance among each class's images (num_classes,); NaN for a
    class with fewer than 2. ``images`` float in [-1, 1] (N, C, H, W)."""
    flat, labels = images.flatten(1).float(), labels.to(images.device)
    out = torch.full((num_classes,), math.nan, device=flat.device)
    for c in range(num_classes):
        rows = flat[labels == c]
        if len(rows) >= 2:
            out[c] = median_pairwise_distance(rows)
    return out


def class_nearest_distance(images: torch.Tensor, labels: torch.Tensor, bank: torch.Tensor,
                           bank_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Median distance of each class's images to their nearest bank image of that class
    (num_classes,). With ``images`` the bank itself, each image's own entry is skipped (the
    distance to the nearest *other* image). NaN for a class with no image, or with fewer than
    2 bank images when the bank is searched against itself."""
    flat, labels = images.flatten(1).float(), labels.to(images.device)
    bank_flat, bank_labels = bank.flatten(1).float(), bank_labels.to(bank.device)
    itself = images is bank
    out = torch.full((num_classes,), math.nan, device=flat.device)
    for c in range(num_classes):
        rows, bank_rows = flat[labels == c], bank_flat[bank_labels == c]
        if len(rows) >= 1 and len(bank_rows) >= (2 if itself else 1):
            queries = bank_rows if itself else rows
            out[c] = nearest_distances(queries, bank_rows, leave_one_out=itself).median()
    return out


class TrainingDataScore:
    """Score generator snapshots against the training images only (see the module docstring).

    Args:
        train_data: the run's training images; the only data this object ever reads.
        seed: seeds the classifier, the real-image subset and the samples' noise.
        device: where the classifier and the distances run (the generator's device).
        classifier_steps: optimisation steps of the classifier (batches of 64; 1000 steps take about
            4 s on one CPU core and call 69% of held-out Fashion-MNIST images right after training
            on 500 images, where 200 steps of 32 called 40%).
    """

    def __init__(self, train_data: LabelledImages, *, seed: int = 0, device: torch.device | str = "cpu",
                 classifier_steps: int = 1000):
        self.num_classes, self.seed = train_data.num_classes, seed
        self.classifier = fit_reference_classifier(train_data, seed=seed, steps=classifier_steps, device=device)
        subset = _per_class_subset(train_data.labels, self.num_classes, MAX_REAL_PER_CLASS, seed)
        real = to_signed_unit(train_data.images[subset].to(device))
        self.real, self.real_labels = real, train_data.labels[subset].to(device)
        self.real_spread = class_spread(real, self.real_labels, self.num_classes)
        # How far a training image lies from its nearest other one: what a new draw would show.
        self.real_nearest = class_nearest_distance(real, self.real_labels, real, self.real_labels, self.num_classes)
        with torch.no_grad():
            self.real_features = self.classifier.features(real).double()
        # The distance two halves of the training images keep from each other: how far "real" is.
        halves = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed)).to(device)
        middle = len(real) // 2
        self.real_distance = frechet_distance(self.real_features[halves[:middle]], self.real_features[halves[middle:]])

    @torch.no_grad()
    def __call__(self, generator: ConditionalGenerator) -> dict[str, float]:
        """``{"score", "class_consistency", "diversity", "novelty", "realness", "frechet_distance"}`` of
        ``generator``'s samples (means over classes; the distance on the classifier's features)."""
        noise = torch.Generator(device=generator.device).manual_seed(self.seed)
        images, labels = generator.sample_per_class(samples_per_class(self.num_classes), generator=noise)
        device = next(self.classifier.parameters()).device
        images, labels = images.to(device), labels.to(device)
        predicted = self.classifier(images).argmax(dim=1)
        hits = torch.zeros(self.num_classes, device=device).index_add_(0, labels, (predicted == labels).float())
        consistency = hits / torch.bincount(labels, minlength=self.num_classes).clamp(min=1)
        ratio = class_spread(images, labels, self.num_classes) / self.real_spread
        # A class whose real images cannot give a spread (fewer than 2) is judged on consistency alone.
        diversity = torch.nan_to_num(ratio, nan=1.0, posinf=1.0).clamp(max=1.0)
        nearest = class_nearest_distance(images, labels, self.real, self.real_labels, self.num_classes)
        novelty = torch.nan_to_num(nearest / self.real_nearest, nan=1.0, posinf=1.0).clamp(max=1.0)
        distance = frechet_distance(self.classifier.features(images).double(), self.real_features)
        # Too few training images to fit two halves (NaN): judged on consistency and diversity alone.
        realness = 1.0 if math.isnan(self.real_distance) else min(1.0, (self.real_distance + 1e-6) / (distance + 1e-6))
        score = (consistency * diversity * novelty).mean() * realness
        return {"score": float(score), "class_consistency": float(consistency.mean()),
                "diversity": float(diversity.mean()), "novelty": float(novelty.mean()), "realness": realness,
                "frechet_distance": distance}


def _per_class_subset(labels: torch.Tensor, num_classes: int, cap: int, seed: int) -> torch.Tensor:
    """Indices of at most ``cap`` rows of each class, a seeded random subset."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    keep = [order[labels[order] == c][:cap] for c in range(num_classes)]
    return torch.cat(keep)


class SnapshotSelector:
    """The scores of every snapshot, and a CPU copy of the weights of the one to keep.

    Registered with Accelerate's checkpointing, so a resumed run remembers its earlier
    snapshots and the best one's weights as of the checkpoint it resumes from.

    Args:
        select: ``"best"`` (keep the highest score; a tie goes to the later snapshot, which
            trained longer) or ``"last"`` (record the scores, keep the end of training).
    """

    def __init__(self, select: str):
        self.select = select
        self.records: list[dict] = []
        self.kept_step: int | None = None
        self.kept_weights: dict[str, torch.Tensor] | None = None

    def offer(self, step: int, scores: dict[str, float], generator: nn.Module) -> bool:
        """Record snapshot ``step``; keep a copy of ``generator``'s weights if it is the best yet."""
        self.records.append({"step": step, **scores})
        score = scores["score"]
        best = max((r["score"] for r in self.records[:-1] if not math.isnan(r["score"])), default=-math.inf)
        keep = self.select == "last" or (not math.isnan(score) and score >= best) or self.kept_step is None
        if keep:
            self.kept_step = step
            if self.select == "best":
                self.kept_weights = {k: v.detach().to("cpu", copy=True).contiguous()
                                     for k, v in generator.state_dict().items()}
        return keep

    def has(self, step: int) -> bool:
        """Whether snapshot ``step`` was scored already."""
        return any(r["step"] == step for r in self.records)

    def state_dict(self) -> dict:
        """The records and the kept weights, for Accelerate's checkpoint."""
        return {"records": self.records, "kept_step": self.kept_step, "kept_weights": self.kept_weights}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.records, self.kept_step = list(state["records"]), state["kept_step"]
        self.kept_weights = state["kept_weights"]

    def restore_best(self, generator: nn.Module, last_step: int) -> None:
        """With ``select="best"``, load the kept weights into ``generator`` (trained to
        ``last_step``) unless the kept snapshot is that last step."""
        if self.select == "best" and self.kept_weights is not None and self.kept_step != last_step:
            generator.load_state_dict(self.kept_weights)

    def summary(self, every: int, last_step: int) -> dict:
        """What ``training.json`` records: every snapshot's scores and the one saved."""
        kept = self.kept_step if self.select == "best" else last_step
        return {"select": self.select, "every": every, "kept_step": kept,
                "scored_on": "the training images only", "records": self.records}


# ---------------------------------------------------------------------- what the trainer calls
def snapshots_on(config) -> bool:
    """Whether ``config`` (a :class:`~augmentgen.training.TrainingConfig`) takes snapshots."""
    return config.snapshot_every > 0 or config.select_snapshot == "best"


def check_snapshot_data(config, data) -> None:
    """Snapshots are scored against the training images: refuse data that does not hold them."""
    if snapshots_on(config) and not isinstance(data, LabelledImages):
        raise ConfigError(
            "snapshot_every / select_snapshot='best' score snapshots against the training images, which needs "
            f"the data as LabelledImages (augmentgen.load_data(...)), not a {type(data).__name__}; pass it "
            "that way, or train without snapshots (snapshot_every=0, select_snapshot='last')"
        )


def check_snapshot_resume(config, saved: dict, output_dir: Path) -> None:
    """Refuse to resume with other snapshot settings than the manifest ``saved`` records: they
    decide what the checkpoints hold."""
    old = {"snapshot_every": 0, "select_snapshot": "last", **(saved.get("training") or {})}
    differ = [(k, old[k], getattr(config, k)) for k in SNAPSHOT_FIELDS if old[k] != getattr(config, k)]
    if differ:
        what = "; ".join(f"{k} is {a!r} there but {b!r} now" for k, a, b in differ)
        fix = " ".join(f"--{k.replace('_', '-')} {a}" for k, a, _ in differ)
        raise ConfigError(f"cannot resume {output_dir}: {what}. Nothing was changed. To resume, rerun "
                          f"with {fix} (the same names in Python); to start a new run pass overwrite=True or "
                          "another output_dir")


def snapshot_interval(config, last_step: int | None) -> int:
    """``snapshot_every``; for ``select_snapshot="best"`` without it, a tenth of a run that ends
    at ``last_step`` (0 while the run's length is unknown, ``None``)."""
    if config.snapshot_every or not snapshots_on(config):
        return config.snapshot_every
    return 0 if last_step is None else max(1, last_step // 10)


def build_scorer(factory: SnapshotScorerFactory | None, data: LabelledImages, *, seed: int,
                 device: torch.device) -> Callable[[ConditionalGenerator], dict]:
    """``factory(data)``, by default :class:`TrainingDataScore` (which trains its classifier on
    ``data`` here), drawing no random number from the training's streams: the run draws the
    same random numbers with and without snapshots."""
    factory = factory or functools.partial(TrainingDataScore, seed=seed, device=device)
    with rng_kept(device):
        return factory(data)


def score_snapshot(score: Callable[[], dict], accelerator: Accelerator) -> dict[str, float]:
    """``score()`` (a scorer called on a finished copy of the generator, the copy made inside)
    as floats, checked, and the same numbers on every process (averaged). Draws no random
    number from the training's streams."""
    with rng_kept(accelerator.device):
        scores = score()
    if not isinstance(scores, dict) or "score" not in scores:
        raise ConfigError(f"a snapshot scorer must return a dict with a 'score', got {scores!r}")
    scores = {k: float(v) for k, v in scores.items()}
    if accelerator.num_processes > 1:
        averaged = accelerator.reduce(torch.tensor(list(scores.values()), device=accelerator.device),
                                      reduction="mean")
        scores = dict(zip(scores, averaged.tolist()))
    return scores
