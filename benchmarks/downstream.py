"""Does synthetic data help, against what a user would do anyway? The downstream protocol (v3).

A cell is a dataset and a budget of real images (``protocol.CELLS``). For every seed (it draws
the real subset and seeds every generator and classifier, so the arms of a seed are paired),
the same classifier (``augmentgen.metrics.ReferenceClassifier``), budgeted in epochs of its own
real training data (``convergence.py`` chooses the budget on held-out training images), batches
of 128 real rows:

1. **Baselines, no generator.** (a) real + classic augmentation; (f) arm a + torchvision v2
   ``MixUp``/``CutMix`` (a random choice per batch, torchvision's default α = 1); on long-tailed
   cells also (g) class-balanced resampling and (h) the logit-adjusted loss (Menon et al. 2021,
   τ = 1); (e) the oracle: arm a on twice the real images (all of a class's images where the data
   hold fewer, down to ``protocol.ORACLE_LEAST`` times the subset). The **best baseline** B is chosen on a
   validation split carved from the subset (20% of each class; mean per-class accuracy on
   long-tailed cells), never on the test set. Where one split leaves too few images to choose on
   (10 per class leave 2), the choice averages stratified folds that score every image once
   (``protocol.SELECTION_FOLDS``, recorded as ``selection_folds``).
2. **Controls on top of B**, ``round(ratio x 128)`` rows *appended* to every batch (equal real
   exposure: the same real rows in the same order, augmented the same way): (r) copies of real
   rows of the batch, re-augmented (more rows per step, no generator); (p) same-class pixel
   MixUp of two real rows at the weights ``interpolate`` uses (whenever a variation source runs).
3. **Synthetic arms on top of B**, the same number of appended rows: ``<family>:free`` (the
   generator's samples of the batch's classes) or ``<family>:variation`` (``VariationSource``:
   rows made from the batch's real rows; the mode, ``vary`` / ``interpolate`` / ``extrapolate``,
   chosen on the validation split, or for a generator without a code to mix (``ddpm``) the
   ``vary`` strength). Each generator trains on the subset only (``--gen-steps``, 600 by default,
   recorded in the arm). A suffix ``@bank`` (``ddpm:variation@bank``) draws the rows from a bank
   made once (``SyntheticPool``; ``SyntheticPool.from_variations`` of the arm's own training
   images, ``--bank-per-image`` rows per image of the largest class) instead of at every step:
   what makes a slow generator affordable, and a different method, so a different arm (a free
   arm's validation folds draw from the head of its bank, ``SyntheticPool.head``: free samples do
   not depend on the fold). Options
   in brackets set fields of the family's config (``cgan[diversity_weight=0.1,lecam_weight=0.3]:free``,
   values read like the CLI's ``--set``): a different generator, so a different arm, recorded
   under its spec with its ``family_options`` (``cgan_regularisers.py`` picks these two on
   validation). The options may also start the generator from a pretrained one, the CLI's
   ``--init-from`` (``cgan[init_from=augmentgen/cgan-mnist]:free``: fine-tuned from the MNIST zoo
   model; ``freeze_discriminator_layers`` and ``transfer_lr_scale`` too); the arm records the
   weights' sha256 and what was copied (``init_source``). Options equal to the defaults are
   dropped from the spec. A suffix of methods of ``augmentgen.metrics.MIXING_METHODS``
   (``cgan:free+filter+soft+weighted``; ``--methods plain,filter,soft,weighted`` adds them to
   every source of a run) makes them candidates beside plain: a different arm, so its seeds add
   to the cell's file beside the plain arm's, on the same baselines (the teacher of ``filter`` /
   ``soft``: B's classifier on the same training data; ``weighted``, no teacher, gives the
   appended rows half a real row's loss weight, ``train_classifier``'s ``synthetic_weight``).
   The arm chooses (variation setting x method) on validation (``filter`` only for free samples:
   rows made from real rows keep their row's label), and a seed where an arm chose ``soft`` adds
   the control (t), B with the same teacher's soft targets on its real rows and no synthetic rows.
   An arm added to a seed whose baselines were measured in an earlier run (another commit, or the
   same commit on another machine) also records B trained again in its own run (``b_rerun_acc``),
   and is read against it too (``vs_b_rerun``, with ``b_drift``: how far B's figure moved between
   the runs).
4. **Paired statistics** over seeds: ΔAcc of each synthetic arm against B, against (r) and
   against (a), the oracle gain e − a, as means of per-seed differences with a 95% t interval
   and the number of positive seeds; oracle share = ΔAcc vs B / oracle gain; an arm that chose
   ``soft`` against (t), over those seeds. Long-tailed cells add per-class accuracy and the mean
   of the five rarest classes for every arm.

Writes ``benchmarks/results/downstream_v3_<dataset>_<budget>.json`` after every arm. A run adds
to an existing file of the same protocol (seeds and arms there are kept and skipped), so a cell
can be extended, resumed after a kill, or filled by two lanes at once (saves take a file lock
and merge). The v2 files (``downstream_v2_*``, arms a-e only, made by this script at commit
46e1800) are kept as they are and never averaged with v3 figures.

    OMP_NUM_THREADS=1 python benchmarks/downstream.py --dataset fashion-mnist --budget 50pc \
        --sources 'aae:variation,cgan:free,cgan[diversity_weight=0.1]:free' --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from generator_cache import (
    bank_key,
    cached_bank,
    cached_generator,
    cell_name,
    data_sha256,
    entry_key,
    training_dir,
)
from harness import RESULTS, cpu_identity, git_commit, locked, machine, write_json
from protocol import CELLS, SELECTION_FOLDS, Cell, draw_cell, load_split
from validation_journal import ValidationJournal

import augmentgen
from augmentgen._config import parse_overrides
from augmentgen.data import LabelledImages
from augmentgen.errors import AugmentgenError, ConfigError, DataError
from augmentgen.metrics import (
    baselines,
    classifier_steps,
    diversity_ratio,
    evaluate_accuracy,
    novelty_ratio,
    oracle_share,
    paired_difference,
    paired_gain_z,
    per_class_accuracy,
    predict,
    train_classifier,
    validation_folds,
    validation_split,
)
from augmentgen.metrics.scores import (
    DEFAULT_MIN_VALIDATION_Z,
    MIXING_METHODS,
    method_options,
    split_method_options,
)
from augmentgen.metrics.splits import beats, best_candidate
from augmentgen.mixing import (
    PixelMixSource,
    RealRowSource,
    SyntheticMix,
    SyntheticPool,
    TeacherLabels,
    VariationSource,
)
from augmentgen.mixing.shard_manifest import generator_sha256
from augmentgen.models import build_config
from augmentgen.models.encoder import EncoderGenerator
from augmentgen.training import Trainer, TrainingConfig
from augmentgen.training.checkpoint import checkpoint_dirs, checkpoint_step

PROTOCOL_VERSION = 3
VARIATION_MODES = ("vary", "interpolate", "extrapolate")
#: ``vary`` strengths tried on validation for a generator with ``vary`` but no code to mix (``ddpm``).
VARY_STRENGTHS = (0.3, 0.5, 0.7)
#: Generator settings an arm records itself (two runs may differ there, never within one arm).
ARM_SETTINGS = ("gen_steps", "bank_per_image")
#: Protocol fields added after files were written, and the value those older files used.
PROTOCOL_DEFAULTS = {"selection_folds": 1}
#: How an arm may use its rows (``MIXING_METHODS``): plain always, the others where its spec
#: names them (``cgan:free+filter+soft``, or ``--methods`` for every source of a run).
METHODS = ("plain", "filter", "soft", "weighted")
#: The methods that need a teacher (B's classifier); ``weighted`` is a loss weight, no teacher.
TEACHER_METHODS = ("filter", "soft")
#: How closely a generator trained again must reproduce an arm's recorded pixel diversity and
#: novelty for ``--validate-measured`` to take it for the measured one, for arms that recorded no
#: ``generator_sha256`` (the same rows give the same figures up to float rounding; the same
#: generator's rows drawn another way already differ by about 1e-3, so it is refused too).
SAME_ROWS_REL_TOL = 1e-4
#: Config fields a source's options may not set: the cell sets them (its classes and image shape).
CELL_FIELDS = ("num_classes", "class_names", "image_size", "in_channels")
#: Training fields a source's options may set besides the family's config: fine-tuning from a
#: pretrained generator (``cgan[init_from=cgan-mnist]:free``), the CLI's ``--init-from``.
TRANSFER_FIELDS = ("init_from", "freeze_discriminator_layers", "transfer_lr_scale")
#: ``family[field=value,...]:kind[@bank][+method...]``; the options may hold brackets themselves
#: (``betas=[0.0,0.9]``).
SOURCE_SPEC = re.compile(r"(?P<family>[\w.-]+)(?:\[(?P<options>.*)\])?:(?P<kind>free|variation)(?P<bank>@bank)?"
                         r"(?P<methods>(?:\+\w+)*)")
BASELINE_NAMES = {"a": "classic", "f": "classic + MixUp/CutMix", "g": "classic + class-balanced resampling",
                  "h": "classic + logit-adjusted loss (tau 1)"}


def baseline_options(name: str, num_classes: int) -> dict:
    """``train_classifier`` options of a non-generative arm, by its letter (the library's baselines)."""
    return baselines.baseline_options(baselines.BENCHMARK_LETTERS[name], num_classes)


# --------------------------------------------------------------------------- summaries
def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def rarest_accuracy(per_class: list[float], counts: list[int], k: int = 5) -> float:
    rarest = sorted(range(len(counts)), key=lambda c: counts[c])[:k]
    return statistics.fmean(per_class[c] for c in rarest)


def _paired(rows: list[dict], treated, control) -> dict | None:
    """Paired difference over the rows that have both arms (missing arms are left out, never filled)."""
    pairs = [(treated(r), control(r)) for r in rows]
    pairs = [(t, c) for t, c in pairs if t is not None and c is not None]
    if not pairs:
        return None
    return paired_difference([t for t, _ in pairs], [c for _, c in pairs])


def summarise(results: dict) -> dict:
    """Per-arm means and the paired differences the README's matrix reads."""
    rows, lt = results["per_seed"], results["long_tailed"]
    acc = lambda key: (lambda r: r["arms"].get(key, {}).get("acc"))  # noqa: E731
    rare = lambda key: (lambda r: r["arms"].get(key, {}).get("rarest5"))  # noqa: E731
    best = lambda r: r["arms"].get(r.get("best_baseline"), {}).get("acc")  # noqa: E731
    arms = sorted({key for r in rows for key in r["arms"]})
    summary = {"arms": {key: mean_std([acc(key)(r) for r in rows]) for key in arms},
               "best_baseline_chosen": [r.get("best_baseline") for r in rows],
               "best_baseline": mean_std([best(r) for r in rows]),
               "oracle_gain": _paired(rows, acc("e"), acc("a"))}
    gain = (summary["oracle_gain"] or {}).get("mean")
    for key in arms:
        if key in ("a", "e"):
            continue
        entry = {"vs_best_baseline": _paired(rows, acc(key), best), "vs_a": _paired(rows, acc(key), acc("a"))}
        if ":" in key or key == "p":
            entry["vs_r"] = _paired(rows, acc(key), acc("r"))
        if ":" in key:  # a synthetic arm: against the strongest control too, and its rows' coverage
            entry["vs_p"] = _paired(rows, acc(key), acc("p"))
            if ":variation" in key:
                entry["modes_chosen"] = [r["arms"][key]["mode"] for r in rows if key in r["arms"]]
            covered = [r["arms"][key]["coverage"] for r in rows if (r["arms"].get(key) or {}).get("coverage")]
            entry["coverage"] = {name: mean_std([c[name] for c in covered if name in c])
                                 for name in ("diversity_pixels", "novelty_pixels", "cas_heldout")} if covered else None
            entry.update(method_summary(rows, key, acc))
            entry.update(guard_summary(rows, key, acc, best))
            entry.update(z_guard_summary(rows, key, acc, best, lt))
        entry.update(rerun_summary(rows, key, acc, best))  # a synthetic arm or (t), added in a later run
        delta = (entry["vs_best_baseline"] or {}).get("mean")
        entry["oracle_share"] = oracle_share(delta, gain) if delta is not None and gain else None
        if lt:
            entry["rarest5_vs_best_baseline"] = _paired(
                rows, rare(key), lambda r: r["arms"].get(r.get("best_baseline"), {}).get("rarest5"))
        summary[key] = entry
    return summary


def rerun_summary(rows: list[dict], key: str, acc, best) -> dict:
    """For an arm added to seeds whose B was measured in an earlier run (another commit, or the same
    on another machine): ``vs_b_rerun``, the arm against B trained again in its own run, and
    ``b_drift``, how far B's figure moved between the two runs (float rounding alone, which differs
    between CPUs, can move a trained network's accuracy). Empty otherwise."""
    rerun = lambda r: r["arms"].get(key, {}).get("b_rerun_acc")  # noqa: E731
    if not any(rerun(r) is not None for r in rows):
        return {}
    return {"vs_b_rerun": _paired(rows, acc(key), rerun), "b_drift": _paired(rows, rerun, best)}


def validation_says_mix(row: dict, key: str) -> bool | None:
    """Whether the arm's best validation score beat B's (ties: no), as ``augmentgen eval`` decides
    against B; None where the arm recorded no score (a lone candidate measured before 2026-12-06,
    or one drawn from a bank before 2026-12-07 and not validated since: ``--validate-measured``)."""
    arm = row["arms"].get(key) or {}
    scores = [v for v in (arm.get("mode_selection") or arm.get("method_selection") or {}).values() if v is not None]
    baseline = (row.get("baseline_selection") or {}).get(row.get("best_baseline"))
    if not scores or baseline is None:
        return None
    return beats(max(scores), baseline)


def guard_summary(rows: list[dict], key: str, acc, best) -> dict:
    """``guarded_vs_best_baseline``: what a user gets who mixes the arm's rows only where validation
    says they beat B, and keeps B elsewhere (per seed, the arm's accuracy or B's), against B; and
    ``guard_mixed``, that decision per seed. Read from the validation scores the arm and B already
    recorded on the same splits: nothing trains again and the test set decides nothing. Where the
    arm joined a seed in a later run, B's score is the earlier run's. Empty for an arm that
    recorded no score (``validation_says_mix``)."""
    measured = [r for r in rows if key in r["arms"]]
    said = {r["seed"]: validation_says_mix(r, key) for r in measured}
    if not said or None in said.values():
        return {}
    guarded = lambda r: acc(key)(r) if said[r["seed"]] else best(r)  # noqa: E731
    return {"guarded_vs_best_baseline": _paired(measured, guarded, best), "guard_mixed": list(said.values())}


def z_guard_says_mix(row: dict, key: str, long_tailed: bool) -> bool | None:
    """Whether the arm's chosen candidate beat B on the validation images by more than
    ``DEFAULT_MIN_VALIDATION_Z`` standard errors (``paired_gain_z``, the guard ``augmentgen eval``
    applies since 2026-12-07: McNemar's z, class-weighted on long-tailed cells), read from which
    images each got right over the splits; None where the arm did not record them (arms measured
    before that, or with one candidate from a bank and not validated since)."""
    arm = row["arms"].get(key) or {}
    mine, b, labels = (arm.get(k) for k in ("validation_correct", "baseline_validation_correct", "validation_labels"))
    if not (mine and b and labels):
        return None
    return beats(recorded_gain_z(mine, b, labels, long_tailed), DEFAULT_MIN_VALIDATION_Z)


def recorded_gain_z(correct: str, baseline_correct: str, labels: str, long_tailed: bool) -> float:
    """``paired_gain_z`` of two recorded ``"0110..."`` strings (``images_right``) over the images
    whose classes ``labels`` gives a digit each, class-weighted on long-tailed cells (their score)."""
    return paired_gain_z([c == "1" for c in correct], [c == "1" for c in baseline_correct],
                         [int(c) for c in labels] if long_tailed else None)["z"]


def z_guard_summary(rows: list[dict], key: str, acc, best, long_tailed: bool) -> dict:
    """``z_guarded_vs_best_baseline``: as ``guard_summary``, with the library's guard (mixed only on
    a lead of more than ``DEFAULT_MIN_VALIDATION_Z`` standard errors), over the seeds that recorded
    which validation images the arm and B got right; ``z_guard_mixed``: per such seed, whether it
    mixed. Empty where no seed recorded them."""
    said = {r["seed"]: z_guard_says_mix(r, key, long_tailed) for r in rows if key in r["arms"]}
    measured = [r for r in rows if said.get(r["seed"]) is not None]
    if not measured:
        return {}
    guarded = lambda r: acc(key)(r) if said[r["seed"]] else best(r)  # noqa: E731
    return {"z_guarded_vs_best_baseline": _paired(measured, guarded, best),
            "z_guard_mixed": {str(r["seed"]): said[r["seed"]] for r in measured},
            "z_guard_min": DEFAULT_MIN_VALIDATION_Z}


def method_summary(rows: list[dict], key: str, acc) -> dict:
    """``methods_chosen`` of a synthetic arm whose method was chosen on validation, and ``vs_t``:
    the arm against the teacher control (t) over the seeds where it chose ``soft`` (soft labels
    alone can help, so only the gain over (t) is the synthetic rows' own). Empty for files
    without methods, which stay as they were."""
    chosen = [r["arms"][key].get("method") for r in rows if key in r["arms"]]
    if not any(chosen):
        return {}
    soft = [r for r in rows if (r["arms"].get(key) or {}).get("method") == "soft"]
    # A candidate scored None was left out of the choice: its filtered bank's teacher accepted no
    # image of some class (validate_candidate), which a reader of the choice needs to know.
    left_out: dict[str, list[int]] = {}
    for r in rows:
        for method, score in ((r["arms"].get(key) or {}).get("method_selection") or {}).items():
            if score is None:
                left_out.setdefault(method, []).append(r["seed"])
    return {"methods_chosen": chosen, **({"vs_t": _paired(soft, acc(key), acc("t"))} if soft else {}),
            **({"methods_left_out": left_out} if left_out else {})}


# --------------------------------------------------------------------------- arms
class Arms:
    """Trains and scores the arms of one seed with the cell's shared classifier settings."""

    def __init__(self, cell: Cell, test, seed: int, args):
        self.cell, self.test, self.seed = cell, test, seed
        self.k = cell.subset.num_classes
        self.common = dict(epochs=args.epochs, min_steps=args.min_steps, batch_size=args.clf_batch_size,
                           width=args.clf_width, num_classes=self.k)
        self.batch_size, self.ratio, self.gen_steps = args.clf_batch_size, args.ratio, args.gen_steps
        self.bank_per_image = args.bank_per_image
        self.generator_cache = not getattr(args, "no_generator_cache", False)
        # Scores of finished validation runs, read back when a killed arm runs again.
        self.journal = ValidationJournal(
            {"dataset": cell.dataset, "budget": cell.budget, "subset_sha256": data_sha256(cell.subset),
             "seed": seed, "protocol": protocol_of(args), "gen_steps": args.gen_steps,
             "bank_per_image": args.bank_per_image}, enabled=not getattr(args, "no_validation_journal", False))
        # (fit, val) pairs a choice is scored on: one 20% split, or stratified folds on tiny cells.
        self.splits = (validation_folds(cell.subset, args.selection_folds, seed=seed) if args.selection_folds > 1
                       else [validation_split(cell.subset, 0.2, seed=seed)])
        # Which validation images each choice run got right ("0110...", the splits' images in
        # order), by journal key, and those images' classes (a digit each: the cells have 10
        # classes): what the guard's paired test reads.
        self.correct: dict[str, str | None] = {}
        self.val_labels = "".join(map(str, torch.cat([val.labels for _, val in self.splits]).tolist()))
        self.baselines = ["a", "f", "g", "h"] if cell.long_tailed else ["a", "f"]
        # Keep B's fold classifiers from the choice of B where an arm of this run needs a teacher.
        self.needs_teacher = any(m in TEACHER_METHODS for spec in args.sources for m in parse_source(spec)[4])
        # B's classifiers, the teacher of filter / soft: per baseline, one per split's fit part
        # (None until trained) and one on the whole subset; trained once per seed, as the same
        # seeded run gives the same model, and reused by every candidate and arm.
        self.fold_models: dict[str, list] = {}
        self.subset_models: dict[str, torch.nn.Module] = {}
        self.b_rerun_acc: dict[str, float] = {}  # B trained again for a resumed seed: its test figure
        # Generators by (family, options), for the same reason: ``ddpm:free@bank`` and
        # ``ddpm:variation@bank`` draw from one model (training it twice cost most of an hour a seed on a CPU).
        self.generators: dict[str, tuple] = {}
        # Each generator's bank of free samples for the whole subset (by the generator's id), made
        # once: free samples do not depend on the validation fold (the generator is the seed's
        # one), so a fold's bank is its head, cut to the fold's size, and validating an @bank
        # free arm costs its classifiers, not a bank a fold (over an hour a seed for a ddpm).
        self.free_banks: dict[int, SyntheticPool] = {}
        # What keeps a generator and its bank on disk (generator_cache.py): each generator's
        # cache key (by its id) and each bank's provenance (``bank_cache`` when read back).
        self.generator_keys: dict[int, dict] = {}
        self.bank_provenance: dict[int, dict] = {}

    def train(self, data, **kw):
        return train_classifier(data, seed=self.seed, augment="classic", **self.common, **kw)

    def score_val(self, model, val) -> float:
        """Validation score: accuracy, or mean per-class accuracy on long-tailed cells (whose
        validation split is as imbalanced as the subset)."""
        if self.cell.long_tailed:
            return statistics.fmean(per_class_accuracy(model, val, num_classes=self.k))
        return evaluate_accuracy(model, val)

    def validate(self, options, keep: list | None = None, label: str = "", journal_key: str | None = None) -> float:
        """The mean validation score over the splits of a choice: ``options(fit, i)`` are the
        ``train_classifier`` options of the candidate trained on ``fit``, the fit part of split
        ``i``; ``keep`` collects the classifiers, one per split. A line per split run (``label``
        names the choice), as selection is most of a seed's time. With ``journal_key`` (what
        names the run within the seed: the arm, B and the candidate), each score is kept in the
        journal and a split already scored there is read, not trained again (``keep`` then gets
        None for it: ``fold_teacher`` trains that classifier if a method needs it), and so is
        which validation images each run got right: ``self.correct[journal_key]``, the splits in
        order, what the guard's paired test reads."""
        scores, correct = [], []
        for i, (fit, val) in enumerate(self.splits):
            t0 = time.perf_counter()
            kept = None if journal_key is None else self.journal.get(journal_key, i)
            model = None if kept is not None else self.train(fit, **options(fit, i))
            scores.append(kept if kept is not None else self.score_val(model, val))
            if journal_key is not None:  # the runs a choice reads, and the guard with them
                correct.append(self.journal.get_correct(journal_key, i) if kept is not None else images_right(model, val))
            if keep is not None:
                keep.append(model)
            if kept is None and journal_key is not None:
                self.journal.put(journal_key, i, scores[-1], correct[-1])
            print(f"seed {self.seed} validation {label} split {i + 1}/{len(self.splits)}: {scores[-1]:.4f}, "
                  + ("from the journal of a killed run" if kept is not None else f"{time.perf_counter() - t0:.0f} s"),
                  flush=True)
        if journal_key is not None:
            self.correct[journal_key] = None if None in correct else "".join(correct)
        return statistics.fmean(scores)

    def test_arm(self, model, t0: float, **extra) -> dict:
        """Test accuracy (the test set's one use), per class, and the rare-five mean."""
        correct = (predict(model, self.test.images).cpu() == self.test.labels).double()  # one pass
        hits = torch.zeros(self.k, dtype=torch.float64).index_add_(0, self.test.labels, correct)
        per_class = (hits / torch.bincount(self.test.labels, minlength=self.k).double()).tolist()
        arm = {"acc": float(correct.mean()), "per_class": per_class, **extra,
               "seconds": round(time.perf_counter() - t0, 1)}
        if self.cell.long_tailed:
            arm["rarest5"] = rarest_accuracy(per_class, self.cell.subset.class_counts)
        return arm

    def choose_baseline(self) -> tuple[str, dict]:
        """The best non-generative arm on the validation split, and every candidate's score."""
        models = {b: [] for b in self.baselines}
        scores = {b: self.validate(lambda fit, i, b=b: baseline_options(b, self.k), keep=models[b], label=f"({b})",
                                   journal_key=f"baseline ({b})") for b in self.baselines}
        best = best_candidate(self.baselines, scores.__getitem__)  # ties: the earlier (simpler) arm
        if self.needs_teacher:  # B on every fit part: the candidates' teachers
            self.fold_models[best] = models[best]
        return best, scores

    def baseline_correct(self, best: str) -> str | None:
        """Which validation images B got right over the splits: from the choice of B in this run, or,
        for a seed whose B was chosen in an earlier run, B validated again (the same seeded
        classifiers, kept as the teachers where a method needs them)."""
        key = f"baseline ({best})"
        if key not in self.correct:
            models = []
            self.validate(lambda fit, i: baseline_options(best, self.k), keep=models,
                          label=f"({best}) again, for the guard", journal_key=key)
            if self.needs_teacher and best not in self.fold_models:
                self.fold_models[best] = models
        return self.correct[key]

    def guard_record(self, spec: str, kind: str, best: str, chosen) -> dict:
        """What the library's guard reads of an arm (``z_guard_says_mix``): which validation images its
        chosen candidate and B got right, and their classes; empty where either is unknown."""
        mine = self.correct.get(candidate_key(spec, kind, best, chosen))
        b = None if mine is None else self.baseline_correct(best)
        if mine is None or b is None:
            return {}
        return {"validation_correct": mine, "baseline_validation_correct": b, "validation_labels": self.val_labels}

    def baseline_arm(self, name: str) -> dict:
        t0 = time.perf_counter()
        data = self.cell.oracle if name == "e" else self.cell.subset
        model = self.train(data, **baseline_options("a" if name == "e" else name, self.k))
        if name != "e":  # B's model is the teacher of the final filter / soft arms and of (t)
            self.subset_models[name] = model
        # The oracle's counts: twice the subset's, or fewer where the data hold fewer (protocol.ORACLE_LEAST).
        counts = {"class_counts": data.class_counts} if name == "e" else {}
        return self.test_arm(model, t0, steps=self.steps(data), **counts)

    def fold_teacher(self, best: str, i: int):
        """B's classifier on the fit part of split ``i`` (from ``choose_baseline``, or trained now
        when this run resumed a seed whose baselines were chosen before, or read that split's
        score from the journal)."""
        models = self.fold_models.setdefault(best, [None] * len(self.splits))
        if models[i] is None:
            models[i] = self.train(self.splits[i][0], **baseline_options(best, self.k))
        return models[i]

    def subset_teacher(self, best: str, record: dict | None = None):
        """B's classifier on the whole subset: arm B's model, or trained now for a resumed seed.
        ``record`` gets ``b_rerun_acc`` when it is trained now: arm B again, in this run, against
        which an arm added to a seed measured in an earlier run is read too (a figure moves between
        commits and CPUs by float rounding); never used for a choice."""
        if best not in self.subset_models:
            self.subset_models[best] = self.train(self.cell.subset, **baseline_options(best, self.k))
            self.b_rerun_acc[best] = self.test_arm(self.subset_models[best], time.perf_counter())["acc"]  # as arm B
        if record is not None and best in self.b_rerun_acc:
            record["b_rerun_acc"] = self.b_rerun_acc[best]
        return self.subset_models[best]

    def steps(self, data) -> int:
        return classifier_steps(len(data), self.batch_size, epochs=self.common["epochs"],
                                min_steps=self.common["min_steps"])

    def mixer(self, source, seed_offset: int = 0, **options) -> SyntheticMix:
        """The arms' ``SyntheticMix`` of ``source``; ``options``: a teacher method's (``teacher=...``)."""
        balance = "inverse-frequency" if self.cell.long_tailed else None
        return SyntheticMix(source, self.ratio, mode="append", balance=balance, seed=self.seed + seed_offset,
                            **options)

    def mixed_arm(self, best: str, mix, **options) -> dict:
        """Arm B with ``mix`` rewriting each batch (appended rows, or (t)'s soft targets), on the
        whole subset, scored on the test set; ``options``: a method's ``train_classifier`` options
        (``weighted``'s ``synthetic_weight``)."""
        t0 = time.perf_counter()
        model = self.train(self.cell.subset, synthetic_mix=mix, **baseline_options(best, self.k), **options)
        return self.test_arm(model, t0)

    def control(self, key: str, best: str) -> dict:
        """(r), (p) or (t) on top of B; (t): B's own soft targets on its real rows, no synthetic rows."""
        if key == "t":
            soft, rerun = method_options("soft"), {}
            teacher = self.subset_teacher(best, rerun)
            return {**self.mixed_arm(best, TeacherLabels(teacher, soft["label_temperature"],
                                                         soft["soft_label_weight"], self.k)), **rerun}
        shape, names = self.cell.subset.image_shape, self.cell.subset.class_names
        source = (RealRowSource(self.k, shape, class_names=names) if key == "r"
                  else PixelMixSource(self.k, shape, class_names=names))
        return self.mixed_arm(best, self.mixer(source))

    def train_generator(self, family: str, options: dict | None = None, provenance: dict | None = None):
        """The seed's generator of ``family`` with ``options``: trained on the subset once, then
        shared by every arm that names it (a seeded run gives the same model). Returns it and
        the seconds its training took; ``provenance`` gets ``generator_shared`` when an earlier
        arm trained it."""
        key = json.dumps([family, options or {}], sort_keys=True, default=str)
        if key in self.generators and provenance is not None:
            provenance["generator_shared"] = True
        if key not in self.generators:
            cache_key = entry_key(family, options or {}, self.gen_steps, self.seed, self.cell.subset,
                                  train_fn=train_generator)

            def train():
                t0, trained = time.perf_counter(), {}
                generator = train_generator(family, self.cell.subset, steps=self.gen_steps, seed=self.seed,
                                            options=options, provenance=trained,
                                            run_dir=training_dir(cache_key) if self.generator_cache else None)
                # A training resumed after a kill took its earlier parts too: the trainer's clock counts them.
                return generator, trained.get("loop_seconds", round(time.perf_counter() - t0, 1)), trained

            self.generators[key] = cached_generator(cache_key, train, enabled=self.generator_cache,
                                                    cell=cell_name(self.cell.dataset, self.cell.budget))
            self.generator_keys[id(self.generators[key][0])] = cache_key
        generator, seconds, trained = self.generators[key]
        if provenance is not None:
            provenance.update(trained)
        return generator, seconds

    def rows_from(self, generator, kind: str, candidate: dict | None, data, bank: bool,
                  pool_filter: dict | None = None):
        """What an arm draws from: the generator (free) or a variation source, made per step, or,
        with ``bank``, a bank built once from ``data`` (the arm's own training images, so a
        validation run never sees rows made from the validation images); ``pool_filter``
        (``teacher``, ``filter_threshold``): the images of the bank of free samples that this
        data's teacher accepts (``SyntheticPool.filtered``: nothing is sampled again)."""
        if kind == "free":
            if not bank:
                return generator
            rows = self.free_bank(generator).head(self.bank_per_image * max(data.class_counts))
            return rows.filtered(**pool_filter) if pool_filter else rows
        source = VariationSource(generator, **candidate)
        if not bank:
            return source
        return SyntheticPool.from_variations(source, data.images, data.labels, per_image=self.bank_per_image,
                                             seed=self.seed, progress=False)

    def free_bank(self, generator) -> SyntheticPool:
        """``generator``'s bank of free samples sized for the whole subset (``bank_per_image`` rows
        per image of its largest class), made on first use; the final arm draws from all of it,
        a validation fold from its head (``SyntheticPool.head``). Kept on disk by its generator's
        key (``cached_bank``; a ``ddpm``'s takes over half an hour to sample here), so a killed
        seed's next run reads it back."""
        if id(generator) not in self.free_banks:
            per_class = self.bank_per_image * max(self.cell.subset.class_counts)
            def fill():
                return SyntheticPool(generator, per_class=per_class, seed=self.seed, batch_size=256)
            generator_key = self.generator_keys.get(id(generator))
            if generator_key is None:  # a generator trained outside train_generator: nothing to key it by
                bank, provenance = fill(), {}
            else:
                bank, provenance = cached_bank(bank_key(generator_key, per_class=per_class, seed=self.seed,
                                                        batch_size=256), fill, enabled=self.generator_cache,
                                               cell=cell_name(self.cell.dataset, self.cell.budget))
            self.free_banks[id(generator)], self.bank_provenance[id(generator)] = bank, provenance
        return self.free_banks[id(generator)]

    def variation_candidates(self, generator) -> list[dict]:
        """The variation settings chosen among on validation: the three modes where the generator
        has a code to mix (an encoder family), else ``vary`` at a few strengths (SDEdit of ``ddpm``)."""
        if isinstance(generator, EncoderGenerator):
            return [{"mode": m} for m in VARIATION_MODES]
        return [{"mode": "vary", "strength": s} for s in VARY_STRENGTHS]

    def candidates(self, generator, kind: str, methods: list[str]) -> list[tuple[dict | None, str]]:
        """(variation setting, method) pairs chosen among on validation, method by method in the
        order of ``methods`` (the arm's, plain first), so ties go to plain and then the earlier
        setting."""
        settings = self.variation_candidates(generator) if kind == "variation" else [None]
        return [(setting, method) for method in methods for setting in settings]

    def candidate_mix(self, generator, kind: str, bank: bool, candidate: tuple[dict | None, str], data,
                      teacher) -> SyntheticMix:
        """The mixer of ``candidate`` trained on ``data``, with ``teacher`` (B's classifier on
        ``data``) where its method needs one. A bank is filtered once when it fills (``SyntheticMix``
        filters only rows made in the step); soft labels are the mixer's in every case. The
        method's ``train_classifier`` options go beside the mixer (``split_method_options``)."""
        setting, method = candidate
        options = {**split_method_options(method)[0], "teacher": teacher} if method in TEACHER_METHODS else {}
        if method == "filter" and bank:
            return self.mixer(self.rows_from(generator, kind, setting, data, bank, pool_filter=options))
        return self.mixer(self.rows_from(generator, kind, setting, data, bank), **options)

    def validate_candidate(self, spec: str, generator, kind: str, bank: bool, best: str, candidate) -> float | None:
        """``candidate``'s mean validation score on top of B; None (never chosen) where a filtered
        bank's teacher accepted no sample of some class (``SyntheticPool`` refuses to fill).
        ``spec``: the arm's source, which names its runs in the journal."""
        def options(fit, i):
            teacher = self.fold_teacher(best, i) if candidate[1] in TEACHER_METHODS else None
            return {"synthetic_mix": self.candidate_mix(generator, kind, bank, candidate, fit, teacher),
                    **baseline_options(best, self.k), **split_method_options(candidate[1])[1]}
        label = f"{kind} {_candidate_label(candidate)}"
        try:
            return self.validate(options, label=label, journal_key=candidate_key(spec, kind, best, candidate))
        except DataError as exc:
            print(f"seed {self.seed} {label}: left out ({exc})", file=sys.stderr)
            return None

    def choose(self, spec: str, generator, kind: str, bank: bool, best: str, methods: list[str]) -> tuple:
        """(the chosen candidate, what the arm records of the choice): every candidate scored on
        validation, the best chosen (ties to the first, the first where none was scored), its record
        (``choice_record``) and which validation images it and B got right (``guard_record``). A
        lone candidate is scored too, so that the guarded figures (mixed only where validation beats
        B: ``guard_summary``, ``z_guard_summary``) exist for every arm."""
        candidates = self.candidates(generator, kind, methods)
        selection = [self.validate_candidate(spec, generator, kind, bank, best, c) for c in candidates]
        scored = [i for i, v in enumerate(selection) if v is not None]
        chosen = candidates[best_candidate(scored, selection.__getitem__)] if scored else candidates[0]
        return chosen, {**self.choice_record(kind, chosen, candidates, selection, methods),
                        **self.guard_record(spec, kind, best, chosen)}

    def source_arm(self, spec: str, best: str) -> dict:
        """``family:free`` or ``family:variation`` (``@bank``: from an offline bank; ``family[...]``:
        with config options) on top of B; the variation setting and the method (``--methods``)
        chosen on validation (``choose``)."""
        family, kind, bank, options, methods = parse_source(spec)
        t0 = time.perf_counter()
        provenance = {}
        generator, train_seconds = self.train_generator(family, options, provenance)
        settings = {"gen_steps": self.gen_steps, "gen_train_seconds": train_seconds,
                    # which generator made the rows: what --validate-measured checks a generator against
                    "generator_sha256": generator_sha256(generator),
                    **({"bank_per_image": self.bank_per_image} if bank else {}),
                    **({"family_options": options} if options else {}), **provenance}
        chosen, choice = self.choose(spec, generator, kind, bank, best, methods)
        setting, method = chosen
        # B in this run: the teacher where the method needs one, and, for a seed whose B was
        # measured in an earlier run, the figure the arm is read against as well (b_rerun_acc).
        teacher = self.subset_teacher(best, settings)
        teacher = teacher if method in TEACHER_METHODS else None
        arm = self.mixed_arm(best, self.candidate_mix(generator, kind, bank, chosen, self.cell.subset, teacher),
                             **split_method_options(method)[1])
        kept_bank = self.bank_provenance.get(id(generator), {}) if kind == "free" and bank else {}
        return {**arm, **choice, **settings, **kept_bank,
                "coverage": self.row_coverage(generator, setting, teacher if method == "filter" else None),
                "seconds": round(time.perf_counter() - t0, 1)}

    def added_validation(self, spec: str, best: str, provenance: dict, measured: dict) -> dict:
        """The validation record of an arm measured without one (a lone ``@bank`` candidate, before
        its bank could be cut per fold): its candidate's scores and which validation images it and B
        got right, as ``source_arm`` records them, and ``validation_added`` (``provenance`` and the
        seconds). Its test figures stay as measured: nothing here reads the test set.

        Only for the generator ``measured`` (the arm's record) was made with: one trained again from
        other code or on another CPU may make other rows, whose validation would be paired with test
        figures they did not make. Where its weights' sha256 (or, for an arm that recorded none, its
        rows' pixel diversity and novelty) differ from the arm's (``same_generator``), nothing is
        validated: ``validation_refused`` says why."""
        t0 = time.perf_counter()
        family, kind, bank, options, methods = parse_source(spec)
        generator, _ = self.train_generator(family, options)
        differs = self.same_generator(generator, bank, measured)
        if differs is not None:
            return {"validation_refused": {**provenance, "reason": differs}}
        _, choice = self.choose(spec, generator, kind, bank, best, methods)
        return {**choice, "validation_added": {**provenance, "seconds": round(time.perf_counter() - t0, 1)}}

    def same_generator(self, generator, bank: bool, measured: dict) -> str | None:
        """None where ``generator`` is the one the arm ``measured`` was made with, else why not: its
        weights' sha256 where the arm recorded one (arms measured from 2026-12-07 on), else its
        plain rows' pixel diversity and novelty (its bank's head for an ``@bank`` arm) against the
        arm's ``coverage``, to ``SAME_ROWS_REL_TOL``. The second also refuses the measured generator
        where its rows are drawn otherwise than they were (conservative)."""
        if "generator_sha256" in measured:
            now = generator_sha256(generator)
            return None if now == measured["generator_sha256"] else (
                f"the generator trained now has other weights (sha256 {now[:12]}, the arm's {measured['generator_sha256'][:12]})")
        recorded = measured.get("coverage")
        if not recorded or "diversity_pixels" not in recorded:
            return "the arm recorded no coverage of its rows to check the generator trained now against"
        if bank:
            self.free_bank(generator)
        now = self.row_coverage(generator, None, cas=False)
        if now is None:  # no held-out images to measure its rows against
            return "the cell holds no held-out images to measure the rows of the generator trained now"
        differ = [f"{name} {now[name]:.6f} where the arm's rows had {recorded[name]:.6f}"
                  for name in ("diversity_pixels", "novelty_pixels")
                  if not math.isclose(now[name], recorded[name], rel_tol=SAME_ROWS_REL_TOL)]
        return None if not differ else "the generator trained now makes other rows: " + ", ".join(differ)

    def choice_record(self, kind: str, chosen, candidates: list, selection: list | None, methods: list[str]) -> dict:
        """What an arm records of its choice: the variation ``mode`` (and ``strength``), the
        ``method`` (only where the arm has methods besides plain, so plain arms stay as they were),
        and every candidate's validation score: ``mode_selection`` (``vary``, ``vary+soft``) for a
        variation arm, ``method_selection`` for a free one."""
        setting, method = chosen
        record = {} if setting is None else {
            "mode": setting["mode"], **({"strength": setting["strength"]} if "strength" in setting else {})}
        if methods != ["plain"]:
            record["method"] = method
        if selection is not None:
            name = "mode_selection" if kind == "variation" else "method_selection"
            record[name] = {_candidate_label(c): v for c, v in zip(candidates, selection)}
        return record

    def row_coverage(self, generator, candidate: dict | None, teacher=None, rows_per_class: int = 100, *,
                     cas: bool = True) -> dict | None:
        """Pixel-space diversity and novelty ratios of the arm's rows (medians over classes):
        free samples (kept by ``teacher``'s filter where the arm filters; an ``@bank`` arm's are
        the head of its bank, which an arm draws from, so a slow sampler samples nothing more), or
        variations of the subset's images (``rows_per_class`` of the largest class), against the
        held-out real images (``metrics.coverage``; 1 = like new real data), and their CAS
        (``cas_heldout``: the protocol's classifier trained on those rows alone, accuracy on the
        held-out images, since 2026-12-07)."""
        held, subset = self.cell.heldout, self.cell.subset
        if held is None:
            return None
        if candidate is None and id(generator) in self.free_banks:
            bank = self.free_banks[id(generator)]
            try:  # filtered whole, so that a class keeps rows_per_class distinct images where it can
                bank = bank if teacher is None else bank.filtered(teacher, method_options("filter")["filter_threshold"])
            except DataError:  # the teacher accepted no image of a class: no rows to measure
                return None
            bank = bank.head(min(rows_per_class, bank.per_class))
        elif candidate is None:
            kept = {} if teacher is None else {**method_options("filter"), "teacher": teacher}
            try:
                bank = SyntheticPool(generator, per_class=rows_per_class, seed=self.seed, batch_size=256, **kept)
            except DataError:  # the teacher accepted no sample of a class: no rows to measure
                return None
        else:
            per_image = max(1, -(-rows_per_class // max(subset.class_counts)))
            bank = SyntheticPool.from_variations(VariationSource(generator, **candidate), subset.images,
                                                 subset.labels, per_image=per_image, seed=self.seed,
                                                 progress=False)
        # Distinct rows only: a class a filter left short repeats its images, which are no new spread.
        rows = torch.cat([bank.images[c, :n] for c, n in enumerate(bank.distinct_counts.tolist())])
        labels = torch.arange(bank.num_classes).repeat_interleave(bank.distinct_counts)
        common = dict(num_classes=self.k, seed=self.seed)
        diversity = diversity_ratio(rows, labels, held.images, held.labels, **common)
        novelty = novelty_ratio(rows, labels, subset.images, subset.labels, held.images, held.labels, **common)
        # CAS: the protocol's classifier trained on these rows alone, accuracy on the held-out images
        # (the training split's, never the test set's): whether the rows teach their classes.
        coverage = {"diversity_pixels": diversity["median"], "novelty_pixels": novelty["median"],
                    "rows_per_class": bank.per_class, "space": "pixels"}
        if cas:
            coverage["cas_heldout"] = evaluate_accuracy(self.train(LabelledImages(rows, labels, subset.class_names)),
                                                        held)
        return coverage


def images_right(model, data) -> str:
    """``"0110..."``: which of ``data``'s images ``model`` gets right, in order (one pass)."""
    return "".join("1" if c else "0" for c in (predict(model, data.images).cpu() == data.labels).tolist())


def candidate_key(spec: str, kind: str, best: str, candidate: tuple[dict | None, str]) -> str:
    """What names a candidate's validation runs in the journal and ``Arms.correct``: the arm, B, the candidate."""
    return f"{spec} on ({best}): {kind} {_candidate_label(candidate)}"


def _label(candidate: dict) -> str:
    """``vary`` or ``vary@0.5``: how a variation candidate is named in the file."""
    return candidate["mode"] + (f"@{candidate['strength']:g}" if "strength" in candidate else "")


def _candidate_label(candidate: tuple[dict | None, str]) -> str:
    """``vary`` (plain), ``vary@0.5+soft``, or a free arm's method (``filter``): a (setting,
    method) candidate's name in the file."""
    setting, method = candidate
    if setting is None:
        return method
    return _label(setting) + ("" if method == "plain" else f"+{method}")


def train_generator(family: str, data, *, steps: int, seed: int, options: dict | None = None,
                    provenance: dict | None = None, run_dir: Path | None = None):
    """The protocol's generator: ``family`` (its config with ``options`` applied; the
    ``TRANSFER_FIELDS`` among them start it from a pretrained generator) trained on ``data``
    only, batch 64, seeded, no sample grids, in eval mode. ``provenance``, when given, receives
    ``init_source``: the pretrained weights' id, sha256 and what was copied.

    With ``run_dir`` (a folder of this training's own, ``generator_cache.training_dir``) it
    checkpoints there every twentieth of its steps and resumes from the newest checkpoint a
    killed lane left, so a kill loses at most that much of an hour's ``ddpm``; resuming is exact,
    so the weights are an uninterrupted run's. ``provenance`` then receives ``resumed_at_step``
    and ``loop_seconds`` (the trainer's clock over every part), and the folder is removed once
    the model is trained. Without it, no checkpoints, in a temporary folder."""
    options = options or {}
    transfer = {k: v for k, v in options.items() if k in TRANSFER_FIELDS}
    model = {k: v for k, v in options.items() if k not in TRANSFER_FIELDS}
    config = build_config(family, **model, num_classes=data.num_classes, class_names=data.class_names,
                          image_size=data.image_shape[1], in_channels=data.image_shape[0])
    training = TrainingConfig(steps=steps, batch_size=64, seed=seed,
                              checkpoint_every=0 if run_dir is None else max(1, steps // 20),
                              sample_every=0, log_every=max(1, steps // 10), **transfer)
    if run_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(config, training, tmp)
            generator = trainer.fit(data).eval()
    else:
        done = checkpoint_dirs(run_dir)
        trainer = Trainer(config, training, run_dir)
        # A kill before the first checkpoint leaves only a start: that is cleared and trained anew.
        generator = trainer.fit(data, resume=bool(done), overwrite=not done).eval()
        if provenance is not None and done:
            provenance.update(resumed_at_step=checkpoint_step(done[-1]),
                              loop_seconds=round(trainer.progress.train_seconds, 1))
        shutil.rmtree(run_dir)
    if provenance is not None and trainer.init_source is not None:
        provenance["init_source"] = {k: trainer.init_source[k] for k in
                                     ("id", "sha256", "same_classes", "copied", "reinitialised", "skipped", "frozen")}
    return generator


def parse_source(spec: str) -> tuple[str, str, bool, dict, list[str]]:
    """``family[field=value,...]:kind[@bank][+method...]`` -> (family, kind, bank, options, methods).

    ``options`` are the config fields the spec sets that differ from the family's defaults, with
    the config's own values (validated by ``build_config``, so ``1`` becomes ``1.0`` for a float
    field), sorted by name; ``methods`` the candidates chosen among on validation, ``plain`` first
    (:func:`canonical_methods`): :func:`format_source` of them is the arm's key. A ``ValueError``
    says what is wrong, naming the field and the family's fields."""
    match = SOURCE_SPEC.fullmatch(spec.strip())
    if match is None:
        raise ValueError(f"source {spec!r} is not <family>:free or <family>:variation (optionally "
                         "<family>[field=value,...], a suffix @bank and methods +filter, +soft, +weighted)")
    family, kind, bank = match["family"], match["kind"], match["bank"] is not None
    try:
        methods = canonical_methods(",".join(["plain", *match["methods"].split("+")]))
    except ValueError as exc:
        raise ValueError(f"source {spec!r}: methods {exc}") from None
    if kind == "variation" and "filter" in methods:
        raise ValueError(f"source {spec!r}: filter is for free samples only (a row made from a real row keeps "
                         "that row's label); drop +filter")
    try:  # an unknown family fails here, before any arm runs; the message lists the known ones
        defaults = build_config(family).to_dict()
    except ConfigError as exc:
        raise ValueError(f"source {spec!r}: {exc}") from None
    options = family_options(family, match["options"], defaults) if match["options"] is not None else {}
    return family, kind, bank, options, methods


def family_options(family: str, text: str, defaults: dict) -> dict:
    """The options of ``family[text]`` that differ from the defaults, as the configs hold them:
    fields of the family's config (``defaults``) and the ``TRANSFER_FIELDS`` of its training;
    read like the CLI's ``--set`` (``parse_overrides``: JSON when it parses)."""
    pairs = split_top_level(text)
    names = [pair.partition("=")[0].strip().replace("-", "_") for pair in pairs]
    taken = [name for name in names if name in CELL_FIELDS]
    if taken:
        raise ValueError(f"{family}[{text}]: {taken} are the cell's (its classes and image shape), not the spec's")
    transfer = [pair for pair, name in zip(pairs, names) if name in TRANSFER_FIELDS]
    try:
        values = parse_overrides(type(build_config(family)), [p for p in pairs if p not in transfer])
        config = build_config(family, **values).to_dict()  # validated: the message names the field
        options = {key: config[key] for key in values if config[key] != defaults[key]}
        options.update(transfer_options(family, transfer))
    except AugmentgenError as exc:  # a bad field or value, or an init_from that does not load
        raise ValueError(f"{family}[{text}]: {exc}") from None
    return dict(sorted(options.items()))


def transfer_options(family: str, pairs: list[str]) -> dict:
    """The ``TRANSFER_FIELDS`` of a spec that differ from ``TrainingConfig``'s defaults, validated
    by it (``transfer_lr_scale`` needs ``init_from``); ``init_from`` must name a generator of
    ``family`` that loads here (a folder or the zoo), so a wrong name stops the run at once."""
    values = parse_overrides(TrainingConfig, pairs)
    config, defaults = TrainingConfig(steps=1, **values).to_dict(), TrainingConfig(steps=1).to_dict()
    if config["init_from"] is not None:
        from augmentgen.hub import from_pretrained

        source = from_pretrained(config["init_from"])
        if source.family != family:
            raise ConfigError(f"init_from={config['init_from']!r} is a {source.family!r} generator; weights "
                              f"only transfer within a family: name a {family!r} model")
    return {key: config[key] for key in values if config[key] != defaults[key]}


def format_source(family: str, kind: str, bank: bool = False, options: dict | None = None,
                  methods: list[str] | tuple[str, ...] = ("plain",)) -> str:
    """The spec :func:`parse_source` reads back: ``cgan[diversity_weight=0.1,lecam_weight=0.3]:free``,
    ``cgan:free+filter+soft`` (plain, always a candidate, is left out of the suffix)."""
    pairs = ",".join(f"{k}={_spec_value(v)}" for k, v in sorted((options or {}).items()))
    suffix = "".join(f"+{m}" for m in methods if m != "plain")
    return f"{family}{f'[{pairs}]' if pairs else ''}:{kind}{'@bank' if bank else ''}{suffix}"


def _spec_value(value) -> str:
    """A value as a spec writes it: JSON, but a plain name (``cgan-mnist``) without quotes, as
    ``parse_overrides`` reads it back the same."""
    if isinstance(value, str) and re.fullmatch(r"[\w./-]+", value):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, separators=(",", ":"))


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """``text`` split at the ``sep`` outside brackets and double quotes (``a=[1,2],b="x,y"``: two)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"' and text[i - 1:i] != "\\":
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        elif char == sep and not quoted and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()]


# --------------------------------------------------------------------------- the results file
#: A file's record of the last run that wrote it, beside the per-arm commit and CPU.
PROVENANCE_FIELDS = ("machine", "torch", "augmentgen", "n_test")


class ResultsFile:
    """The cell's JSON: protocol check, merge with what other lanes wrote, atomic locked saves."""

    def __init__(self, path: Path, protocol: dict, fresh: bool):
        self.path, self.merge_disk = path, not fresh
        self.results = {**protocol, "seeds": [], "sources": [], "commands": [], "per_seed": [], "summary": {}}
        if path.exists() and not fresh:
            previous = json.loads(path.read_text())
            if previous.get("methods", ["plain"]) != ["plain"]:
                raise SystemExit(f"{path} was written when --methods was a protocol field (methods "
                                 f"{previous['methods']}, recorded under the plain arms' keys): its arms cannot be "
                                 "told from plain ones by this version; pass --out for a new file")
            # Files written before a field existed lack it: compare them at the value they used.
            fields = [*protocol, *(k for k in PROTOCOL_DEFAULTS if k not in protocol)]
            recorded = {k: previous.get(k, PROTOCOL_DEFAULTS.get(k)) for k in fields}
            current = {k: protocol.get(k, PROTOCOL_DEFAULTS.get(k)) for k in fields}
            changed = {k: (recorded[k], current[k]) for k in fields if recorded[k] != current[k]}
            if changed:
                raise SystemExit(f"{path} holds another protocol ({changed}); pass --fresh or --out")
            self.results.update({k: previous[k] for k in ("seeds", "sources", "per_seed", "commands")})
            # The last run's machine and versions stay until a run replaces them (a merge has none of
            # its own); each arm also records its commit and CPU.
            self.results.update({k: previous[k] for k in PROVENANCE_FIELDS if k in previous})
            if "gen_steps" in previous:  # files from before the steps were recorded per arm
                self.results["gen_steps"] = previous["gen_steps"]
        self.rows = {row["seed"]: row for row in self.results["per_seed"]}
        self.measured: list[tuple[int, str | None]] = []  # (seed, None): the row; (seed, key): an arm

    def add_run(self, seeds: list[int], sources: list[str], command: str) -> None:
        r = self.results
        r["seeds"] = sorted(set(r["seeds"]) | set(seeds))
        r["sources"] = list(dict.fromkeys(r["sources"] + sources))
        r["commands"].append(command)

    def put_row(self, row: dict, save: bool = True) -> None:
        self.rows[row["seed"]] = {**row, "arms": {}}
        self.measured.append((row["seed"], None))
        if save:
            self.save()

    def put_cell(self, seed: int, key: str, arm: dict, save: bool = True) -> None:
        self.rows[seed]["arms"][key] = arm
        self.measured.append((seed, key))
        if save:
            self.save()

    def _merge_from_disk(self) -> None:
        disk = json.loads(self.path.read_text())
        disk_rows = {row["seed"]: row for row in disk["per_seed"]}
        for seed, family in self.measured:
            mine = self.rows[seed]
            if family is None:
                disk_rows[seed] = {**mine, "arms": {**disk_rows.get(seed, {}).get("arms", {}), **mine["arms"]}}
            else:
                disk_rows.setdefault(seed, {**mine, "arms": {}})["arms"][family] = mine["arms"][family]
        self.rows = disk_rows
        r = self.results
        r["seeds"] = sorted(set(disk["seeds"]) | set(r["seeds"]))
        r["sources"] = list(dict.fromkeys(disk["sources"] + r["sources"]))
        r["commands"] = list(dict.fromkeys(disk.get("commands", []) + r["commands"]))

    def save(self) -> None:
        with locked(self.path):
            if self.merge_disk and self.path.exists():
                self._merge_from_disk()
            self.merge_disk, self.measured = True, []
            self.results["per_seed"] = sorted(self.rows.values(), key=lambda r: r["seed"])
            self.results["summary"] = summarise(self.results)
            write_json(self.path, self.results)


# --------------------------------------------------------------------------- main
def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(CELLS))
    p.add_argument("--budget", default="50pc", help="10pc, 50pc, 200pc (CIFAR-10) or lt100")
    p.add_argument("--sources", default="aae:variation",
                   help="synthetic arms, each <family>:free or <family>:variation, comma-separated; a "
                        "suffix @bank draws the rows from an offline bank (SyntheticPool) built once; "
                        "<family>[field=value,...] sets fields of the family's config, e.g. "
                        "'cgan[diversity_weight=0.1,lecam_weight=0.3]:free' (quote it for the shell; a "
                        "different arm, recorded under the spec with options equal to the defaults dropped)")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=float,
                   help="classifier budget in epochs of the real data (default: the cell's convergence file)")
    p.add_argument("--min-steps", type=int, default=100)
    p.add_argument("--clf-width", type=int, default=16, help="ResNet-8 width (64: the stronger classifier)")
    p.add_argument("--clf-batch-size", type=int, default=128)
    p.add_argument("--gen-steps", type=int, default=600, help="generator training steps (recorded per arm)")
    p.add_argument("--bank-per-image", type=int, default=4,
                   help="@bank arms: rows per real image of the largest class (recorded per arm)")
    p.add_argument("--ratio", type=float, default=0.5, help="appended rows per real row, every appended arm")
    p.add_argument("--methods", default="plain",
                   help="how the synthetic arms of this run may use their rows, chosen on validation with their "
                        "variation setting: plain, filter (teacher filter, free samples only: dropped for "
                        "variation arms), soft (teacher soft labels; adds the control t), weighted (the appended "
                        "rows count half a real row in the loss, train_classifier's synthetic_weight; no "
                        "teacher), comma-separated; the teacher is B's classifier on the same data. Another set "
                        "is another arm: --methods plain,soft on cgan:free runs the arm cgan:free+soft (a source "
                        "may name its methods itself that way)")
    p.add_argument("--selection-folds", type=int,
                   help="validation folds every choice averages (default: protocol.SELECTION_FOLDS of the "
                        "budget; 1 = one 20%% split)")
    p.add_argument("--out", help="JSON path (default: results/downstream_v3_<dataset>_<budget>[_w<width>].json)")
    p.add_argument("--fresh", action="store_true", help="overwrite the JSON instead of adding to it")
    p.add_argument("--no-generator-cache", action="store_true",
                   help="train every generator, never reading one a killed run of the same code, subset, seed and "
                        "settings saved (generator_cache.py)")
    p.add_argument("--validate-measured", action="store_true",
                   help="for the --sources arms the file already holds without a validation score (a lone @bank "
                        "candidate measured before 2026-12-07), run their validation and add it, with B's images "
                        "for the guard; their test figures stay as measured. Only for the generator the arm was "
                        "measured with (its weights' sha256, or where the arm recorded none its rows' pixel diversity "
                        "and novelty): else the arm records validation_refused and why")
    p.add_argument("--no-validation-journal", action="store_true",
                   help="train every validation run of an arm, never reading the scores a killed run of the same code, "
                        "subset, seed and settings kept (validation_journal.py)")
    args = p.parse_args()
    if args.budget not in CELLS[args.dataset]:
        p.error(f"{args.dataset} has the budgets {CELLS[args.dataset]}, not {args.budget!r}")
    try:
        args.methods = canonical_methods(args.methods)
    except ValueError as exc:
        p.error(f"--methods: {exc}")
    try:
        args.sources = canonical_sources(args.sources, args.methods)
    except ValueError as exc:
        p.error(f"--sources: {exc}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.epochs is None:
        try:
            args.epochs = convergence_epochs(args.dataset, args.budget)
        except ValueError as exc:
            p.error(str(exc))
    if args.selection_folds is None:
        args.selection_folds = SELECTION_FOLDS.get(args.budget, 1)
    return args


def canonical_sources(text: str, methods: list[str] | None = None) -> list[str]:
    """The specs of ``--sources`` as arm keys (:func:`format_source` of :func:`parse_source`), in
    order, each once; ``methods`` (``--methods``) join every spec's own (``filter`` only a free
    arm's); a spec recorded under another spelling is said on stderr."""
    keys = []
    for spec in (s.strip() for s in split_top_level(text)):  # commas inside [...] belong to the options
        family, kind, bank, options, own = parse_source(spec)
        extra = [m for m in methods or [] if not (m == "filter" and kind == "variation")]
        key = format_source(family, kind, bank, options, canonical_methods(",".join([*own, *extra])))
        if key != spec:
            print(f"downstream.py: source {spec} is recorded as {key}", file=sys.stderr)
        keys.append(key)
    return list(dict.fromkeys(keys))


def canonical_methods(text: str) -> list[str]:
    """The names of ``--methods``, each once, in the order of ``MIXING_METHODS`` (plain first:
    validation ties go to the earlier), so the same set is always recorded the same way."""
    names = {m.strip() for m in text.split(",") if m.strip()}
    unknown = sorted(names - set(METHODS))
    if unknown or not names:
        raise ValueError(f"{unknown or text!r}: choose from {', '.join(METHODS)}")
    return [m for m in MIXING_METHODS if m in names]


def convergence_epochs(dataset: str, budget: str) -> float:
    """The classifier budget ``convergence.py`` chose for the cell; a ``ValueError`` says what to run."""
    convergence = RESULTS / f"convergence_{dataset}_{budget}.json"
    if not convergence.exists():
        raise ValueError(f"no --epochs and no {convergence.name}: run benchmarks/convergence.py --dataset "
                         f"{dataset} --budget {budget} first, or pass --epochs")
    sweep = json.loads(convergence.read_text())
    if not sweep.get("complete", True):
        raise ValueError(f"{convergence.name} is a sweep still under way: finish it (rerun convergence.py, it "
                         "resumes) or pass --epochs")
    return float(sweep["chosen_epochs"])


def protocol_of(args) -> dict:
    return {
        "benchmark": "downstream", "protocol_version": PROTOCOL_VERSION,
        "dataset": args.dataset, "budget": args.budget, "long_tailed": args.budget.startswith("lt"),
        "classifier": f"augmentgen.metrics.ReferenceClassifier (ResNet-8, width {args.clf_width}), "
                      "AdamW lr 3e-3, one-cycle, label smoothing 0.1",
        "clf_epochs": args.epochs, "clf_min_steps": args.min_steps, "clf_width": args.clf_width,
        "clf_batch_size": args.clf_batch_size, "gen_batch_size": 64,
        "appended_ratio": args.ratio, "baselines": BASELINE_NAMES, "selection_folds": args.selection_folds,
        "mixing": "SyntheticMix(mode='append'), equal real exposure; sources on top of the best baseline",
    }


def run_seed(file: ResultsFile, arms: Arms, args, provenance: dict) -> None:
    """Every arm of one seed that the file does not hold yet, saved one by one, each with its
    ``provenance`` (the commit and the CPU it was measured on)."""
    seed = arms.seed
    row = file.rows.get(seed)
    if row is not None and row["class_counts"] != arms.cell.subset.class_counts:
        raise SystemExit(f"seed {seed}: the file's subset has counts {row['class_counts']}, this run drew "
                         f"{arms.cell.subset.class_counts}; the data or the draw changed, pass --fresh")
    if row is None:
        t0 = time.perf_counter()
        best, selection = arms.choose_baseline()
        file.put_row({"seed": seed, "class_counts": arms.cell.subset.class_counts, "best_baseline": best,
                      "baseline_selection": selection, "selection_seconds": round(time.perf_counter() - t0, 1),
                      "n_real": len(arms.cell.subset), **provenance})
        row = file.rows[seed]
        scores = ", ".join(f"{k} {v:.3f}" for k, v in selection.items())
        print(f"seed {seed}: B = ({best}) on validation ({scores}), {row['selection_seconds']} s", flush=True)
    best = row["best_baseline"]
    wanted = arms.baselines + (["e"] if arms.cell.oracle is not None else []) + ["r"]
    wanted += ["p"] if any(":variation" in s for s in args.sources) else []
    for key in wanted + args.sources + ["t"]:
        # (t) once per seed where some arm, of this run or another lane's, chose soft labels
        # (file.rows holds them all; row is the seed's row as this run found it).
        now = file.rows[seed]["arms"]
        if key == "t" and ("t" in now or not any(a.get("method") == "soft" for a in now.values())):
            continue
        if key in row["arms"]:
            measured = row["arms"][key]
            if getattr(args, "validate_measured", False) and ":" in key and not validation_settled(measured):
                added = arms.added_validation(key, best, provenance, measured)
                file.put_cell(seed, key, {**measured, **added})
                said = (f"validation added ({added['validation_added']['seconds']} s)" if "validation_added" in added
                        else f"no validation added: {added['validation_refused']['reason']}")
                print(f"seed {seed} {key}: {said}", flush=True)
            continue
        if ":" in key:
            check_arm_settings(file, key, {"gen_steps": args.gen_steps, "bank_per_image": args.bank_per_image})
        if key in arms.baselines or key == "e":
            arm = arms.baseline_arm(key)
        elif key in ("r", "p", "t"):
            arm = arms.control(key, best)
        else:
            arm = arms.source_arm(key, best)
        file.put_cell(seed, key, {**arm, **provenance})
        chosen = ", ".join(arm[k] for k in ("mode", "method") if k in arm)
        print(f"seed {seed} {key}: {arm['acc']:.4f}{f' ({chosen})' if chosen else ''}, {arm['seconds']} s", flush=True)


def has_validation(arm: dict) -> bool:
    """Whether a synthetic arm recorded its candidates' validation scores."""
    return "method_selection" in arm or "mode_selection" in arm


def validation_settled(arm: dict) -> bool:
    """Whether an arm has its validation scores, or the record of why none can be added
    (``validation_refused``: the generator trained again was not the measured one)."""
    return has_validation(arm) or "validation_refused" in arm


def check_arm_settings(file: ResultsFile, key: str, settings: dict) -> None:
    """Refuse to add a seed to an arm measured with other generator settings in other seeds."""
    bank = "@bank" in key
    for row in file.rows.values():
        arm = row["arms"].get(key)
        if arm is None:
            continue
        for name in ARM_SETTINGS:
            if name == "bank_per_image" and not bank:
                continue
            recorded = arm.get(name, file.results.get(name))
            if recorded != settings[name]:
                flag = "--" + name.replace("_", "-")
                raise SystemExit(f"arm {key} of seed {row['seed']} was measured with {name}={recorded}; "
                                 f"pass {flag} {recorded} to add seeds to it (or --out for another file)")


def main() -> None:
    args = parse_args()
    suffix = "" if args.clf_width == 16 else f"_w{args.clf_width}"
    out = Path(args.out or RESULTS / f"downstream_v3_{args.dataset}_{args.budget}{suffix}.json")
    file = ResultsFile(out, protocol_of(args), args.fresh)
    command = (f"python benchmarks/downstream.py --dataset {args.dataset} --budget {args.budget} "
               f"--sources {shlex.quote(','.join(args.sources))} --seeds {','.join(map(str, args.seeds))} --epochs {args.epochs} "
               f"--min-steps {args.min_steps} --clf-width {args.clf_width} --clf-batch-size {args.clf_batch_size} "
               f"--gen-steps {args.gen_steps} --bank-per-image {args.bank_per_image} --ratio {args.ratio} "
               f"--selection-folds {args.selection_folds}"  # the sources carry their methods
               + (" --validate-measured" if args.validate_measured else ""))
    file.add_run(args.seeds, args.sources, command)
    file.results.update({"machine": machine(), "torch": torch.__version__, "augmentgen": augmentgen.__version__})
    provenance = {"git_commit": git_commit(), "cpu": cpu_identity()}
    full, test = load_split(args.dataset), load_split(args.dataset, "test")
    file.results["n_test"] = len(test)
    for seed in args.seeds:
        cell = draw_cell(full, args.dataset, args.budget, seed)
        run_seed(file, Arms(cell, test, seed, args), args, provenance)
    print(json.dumps(file.results["summary"], indent=2))


if __name__ == "__main__":
    main()
