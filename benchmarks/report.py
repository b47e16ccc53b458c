"""Turn the benchmark JSON files into ``REPORT.md`` (markdown tables) and ``downstream.png``.

Reads every ``*.json`` in ``--results`` (default ``benchmarks/results``) that one of the
benchmark scripts wrote, and skips the ones that are missing:

* ``downstream_v3_<dataset>_<budget>.json`` (``benchmarks/downstream.py``, protocol v3): the
  baselines, the controls and the synthetic arms on top of the best baseline, as paired
  differences with 95% intervals, and the one-row-per-cell matrix the README quotes;
* ``downstream_v2_<dataset>_<budget>.json`` (protocol v2, made at commit 46e1800): every arm's accuracy,
  ΔAcc and the oracle gain as paired differences with 95% intervals, plus a forest plot of them
  (``downstream.png``, needs matplotlib); protocol v1 files live in ``results/v1/``; the v3 cells get
  their own forest plot, every arm against B (``downstream_v3.png``);
* ``convergence_<dataset>_<budget>.json`` (``benchmarks/convergence.py``): the classifier budget;
* ``family_quality*.json`` (``benchmarks/family_quality.py``): class consistency and diversity;
* ``cgan_regularisers_<dataset>_<budget>.json`` (``benchmarks/cgan_regularisers.py``): the
  validation sweep of ``cgan``'s regularisers and the setting it chose;
* ``time_to_grid_<dataset>_<budget>.json`` (``benchmarks/time_to_grid.py``): training time to a
  converged sample grid per family;
* ``ddpm_coverage_<dataset>_<budget>.json`` (``benchmarks/ddpm_coverage.py``): class consistency,
  CAS, diversity and novelty of samples by training step and guidance scale;
* ``throughput.json`` (``benchmarks/throughput.py``): training / sampling speed, peak memory;
* ``mixing_overhead.json`` and ``pool_fill_rate.json``: the cost of ``SyntheticMix`` and
  ``SyntheticPool``.

Every table names the file it came from, the machine and the git commit, so the README can
quote it as is::

    .venv/bin/python benchmarks/report.py
    .venv/bin/python benchmarks/report.py --results /tmp/results --out /tmp/results/REPORT.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from augmentgen._io import atomic_path, atomic_write_bytes
from augmentgen.metrics import paired_difference

RESULTS = Path(__file__).resolve().parent / "results"


# --- formatting helpers


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def mean_std_pct(stats: dict | None, signed: bool = False) -> str:
    """``{"mean", "std", "n"}`` (fractions) as "mean ± std" in percent."""
    if not stats or stats.get("mean") is None:
        return "–"
    sign = "+" if signed else ""
    return f"{100 * stats['mean']:{sign}.1f} ± {100 * (stats.get('std') or 0.0):.1f}"


def num(value: float | None, fmt: str = ",.1f") -> str:
    return "–" if value is None else format(value, fmt)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def describe_machine(machine: str | dict | None) -> str:
    """The scripts write the machine either as one string or as a dict of fields."""
    if machine is None:
        return "unknown machine"
    if isinstance(machine, str):
        return machine
    parts = [machine.get("platform") or machine.get("processor")]
    if machine.get("cpu_count"):
        parts.append(f"{machine['cpu_count']} CPUs")
    if machine.get("torch_threads"):
        parts.append(f"torch threads {machine['torch_threads']}")
    if machine.get("device"):
        parts.append(f"device {machine['device']}" + (f" ({machine['gpu']})" if machine.get("gpu") else ""))
    return ", ".join(p for p in parts if p)


def provenance(name: str, payload: dict) -> str:
    """The line under every table: source file, machine, commits and CPUs of its seeds' arms
    (where recorded), versions, command."""
    records = [record for row in payload.get("per_seed", [])
               for record in (row, *(row.get("arms") or {}).values()) if isinstance(record, dict)]
    # git_commits: a record resumed across commits (validation_leak.py) lists them all.
    commits = sorted({c for r in records for c in (r.get("git_commits") or [r.get("git_commit")]) if c})
    commit = payload.get("git_commit") or (", ".join(c[:12] for c in commits) if commits else None)
    torch_version = payload.get("torch") or payload.get("torch_version")  # the scripts differ in the key
    bits = [f"Source: `{name}`", f"machine: {describe_machine(payload.get('machine'))}",
            f"commit: `{commit if ',' in commit else commit[:12]}`" if commit else "commit: unknown"]
    cpus = sorted({r["cpu"] for r in records if r.get("cpu")})
    if cpus:  # recorded per arm since 2026-12-06; a figure moves between CPUs (benchmarks/README.md)
        bits.append(f"arms measured on {'; '.join(cpus)}")
    if torch_version:
        bits.append(f"torch {torch_version}")
    if payload.get("augmentgen"):
        bits.append(f"augmentgen {payload['augmentgen']}")
    line = "_" + "; ".join(bits) + "._"
    for command in payload.get("commands") or ([payload["command"]] if payload.get("command") else []):
        line += f"\n\n_Command:_ `{command}`"
    return line


# --- one section per benchmark


def budget_label(d: dict) -> str:
    budget = str(d.get("budget", "?"))
    if budget.startswith("lt"):
        return f"long-tailed, imbalance {budget[2:]}"
    if budget.endswith("pc"):
        return f"{budget[:-2]} per class"
    return "all training images" if budget == "all" else budget


def cell_label(d: dict, sep: str = " ") -> str:
    """``fashion-mnist 50 per class``, with the classifier's width where it is not the protocol's 16."""
    width = d.get("clf_width", 16)
    return f"{d.get('dataset', '?')}{sep}{budget_label(d)}" + (f", ResNet-8 width {width}" if width != 16 else "")


def family_cells(d: dict, family: str) -> list[dict]:
    """The cells one family has in a downstream file, one per seed that measured it."""
    return [row["families"][family] for row in d.get("per_seed", []) if family in row.get("families", {})]


def interval_pct(stats: dict | None) -> str:
    """A paired difference (``augmentgen.metrics.paired_difference``) as "+1.2 [−0.3, +2.7] (4/5)"."""
    if not stats or stats.get("mean") is None:
        return "–"
    text = f"{100 * stats['mean']:+.1f}"
    if stats.get("ci95"):
        low, high = stats["ci95"]
        text += f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return text + f" ({stats['n_positive']}/{stats['n']})"


def ratio_text(stats: dict | None) -> str:
    return "–" if not stats or stats.get("mean") is None else f"{stats['mean']:.2f}"


def downstream_overview(files: dict[str, dict]) -> str:
    """One row per cell and family: classic arm, oracle gain, ΔAcc with its interval, coverage."""
    header = ["Dataset", "Budget", "Real + classic", "Oracle gain", "Family", "ΔAcc", "Oracle share", "CAS",
              "Diversity (pixels / features)", "Novelty (pixels)", "Seeds"]
    rows = []
    for d in files.values():
        s = d.get("summary", {})
        first = [d.get("dataset", "?"), budget_label(d), mean_std_pct(s.get("real_classic")),
                 interval_pct(s.get("oracle_gain"))]
        for i, family in enumerate(f for f in d.get("families", []) if s.get(f)):
            f = s[family]
            share = f.get("oracle_share")
            rows.append((first if i == 0 else [""] * len(first)) + [
                f"`{family}`", interval_pct(f.get("delta")), "–" if share is None else f"{100 * share:.0f}%",
                mean_std_pct(f.get("cas")),
                f"{ratio_text(f.get('diversity_pixels'))} / {ratio_text(f.get('diversity_features'))}",
                ratio_text(f.get("novelty_pixels")), str(f["delta"]["n"])])
    return "\n\n".join([
        "### Downstream overview (protocol v2)",
        "Test accuracy in percent, mean ± std over seeds. ΔAcc = (real + classic + synthetic rows appended) − "
        "(real + classic), and oracle gain = (real + classic on twice the real images) − (real + classic), in "
        "points: mean of the paired per-seed differences, [95% t interval], (seeds > 0 / seeds). Oracle "
        "share = mean ΔAcc / mean oracle gain. CAS: trained on synthetic data only. Diversity: median "
        "pairwise distance within a class of samples ÷ of held-out real images (1 = as diverse as real "
        "data); novelty: distance to the nearest training image of the class, samples ÷ held-out real "
        "images (0 = copies). Medians over classes, means over seeds.",
        table(header, rows),
    ])


def convergence_section(files: dict[str, dict]) -> str:
    """The classic arm's accuracy against its budget, and the budget chosen per cell."""
    header = ["Dataset", "Budget", "Epochs (steps)", "Held-out accuracy", "Test accuracy", "Chosen", "Seeds"]
    rows = []
    for d in files.values():
        steps = {r["epochs"]: r["steps"] for r in d.get("rows", [])}
        # A sweep under way holds means of the budgets measured so far only.
        tried = [e for e in d.get("epochs_tried", []) if str(e) in d.get("mean_heldout", {})]
        rows.append([
            d.get("dataset", "?"), budget_label(d),
            ", ".join(f"{e:g} ({steps.get(e, '?')})" for e in tried),
            ", ".join(pct(d["mean_heldout"][str(e)], 2) for e in tried),
            ", ".join(pct(d["mean_test"][str(e)], 2) for e in tried),
            ("under way" if not d.get("complete", True) else
             f"{d['chosen_epochs']:g}" + ("" if d.get("converged", True) else " (not converged)")),
            ", ".join(map(str, d.get("seeds", []))),
        ])
    return "\n\n".join([
        "### Classifier budget: convergence of the real + classic arm",
        "Accuracy in percent at each budget (epochs of the real subset), mean over the seeds shown. The "
        "budget chosen is the smallest one whose doubling adds less than 0.3 points on held-out real "
        "training images outside the subset; the test accuracy is shown, never used.",
        table(header, rows),
    ])


def downstream_cost(files: dict[str, dict]) -> str:
    """What each part of the suite cost to measure: the seconds every row and cell recorded."""
    header = ["Dataset", "Budget", "Real arms", "Per family", "Total", "Machine"]
    rows, total = [], 0.0
    for d in files.values():
        real = sum(r.get("real_arms_seconds") or 0 for r in d.get("per_seed", []))
        families = {f: sum(c.get("cell_seconds") or 0 for c in family_cells(d, f)) for f in d.get("families", [])}
        cost = real + sum(families.values())
        total += cost
        rows.append([d.get("dataset", "?"), budget_label(d), f"{real / 60:.0f} min",
                     ", ".join(f"`{f}` {s / 60:.0f}" for f, s in families.items() if s) + " min",
                     f"{cost / 60:.0f} min", describe_machine(d.get("machine"))])
    return "\n\n".join([
        "### What the downstream suite costs",
        "Compute time recorded in the files (all seeds; a family's time covers its generator, the ratio "
        "selection, arm b, CAS and the coverage figures). Parts that ran side by side share the CPU, so "
        f"these are upper bounds for one part alone. Sum over all files: {total / 3600:.1f} h.",
        table(header, rows),
    ])


def downstream_section(name: str, d: dict) -> str:
    summary = d.get("summary", {})
    long_tailed = bool(d.get("long_tailed"))
    header = ["Arm", "Test accuracy (%)", "Paired difference vs real + classic (pts)"]
    if long_tailed:
        header.append("Rarest-5 (%, or its difference)")
    header.append("Seeds")

    def row(arm: str, acc: dict | None, delta: dict | None = None, rarest: str = "–") -> list[str]:
        cells = [arm, mean_std_pct(acc), interval_pct(delta)]
        if long_tailed:
            cells.append(rarest)
        return cells + [str((acc or {}).get("n", 0))]

    rows = [row("(a) real + classic augmentation", summary.get("real_classic"),
                rarest=mean_std_pct(summary.get("rarest5_real_classic"))),
            row("(d) real, no augmentation", summary.get("real_noaug")),
            row("(e) oracle: real + classic, twice the real images", summary.get("oracle_classic"),
                summary.get("oracle_gain"))]
    for family in d.get("families", []):
        f = summary.get(family)
        if not f:
            continue
        rows.append(row(f"(b) real + classic + synthetic (`{family}`)", f.get("acc_mixed"), f.get("delta"),
                        interval_pct(f.get("rarest5_delta"))))
        if f.get("delta_vs_control"):
            rows.append(row(f"(b) `{family}` vs the teacher's soft labels on real rows only",
                            f.get("acc_mixed"), f.get("delta_vs_control")))
            rows.append(row(f"control: teacher soft labels on real rows (`{family}`)", None,
                            f.get("teacher_control_gain")))
        if (f.get("cas") or {}).get("mean") is not None:
            rows.append(row(f"(c) synthetic only, CAS (`{family}`)", f.get("cas")))
    per_seed = d.get("per_seed", [])
    steps = sorted({(r.get("steps_real"), r.get("steps_oracle")) for r in per_seed})
    commits = {family: sorted({c.get("git_commit") or "unknown" for c in family_cells(d, family)})
               for family in d.get("families", [])}
    notes = [
        f"Generators: {d.get('gen_steps')} steps, batch {d.get('gen_batch_size')}. Classifier: "
        f"{d.get('classifier', 'ReferenceClassifier')}, {d.get('clf_epochs'):g} epochs of its real data "
        f"(steps real / oracle: {', '.join(f'{a} / {b}' for a, b in steps)}), batch {d.get('clf_batch_size')} "
        f"real rows. {d.get('mixing')}. Test set {d.get('n_test')} images; seeds {d.get('seeds')}.",
        f"Append ratio chosen per seed on a validation split from {d.get('ratios_tried')}: "
        + ", ".join(f"`{f}` {(summary.get(f) or {}).get('ratios_chosen')}" for f in d.get("families", [])) + ".",
        "Generator training time (s, mean): "
        + ", ".join(f"`{f}` {num(((summary.get(f) or {}).get('gen_train_seconds') or {}).get('mean'))}"
                    for f in d.get("families", [])) + ".",
        "Measured at commit " + ", ".join(f"`{f}` " + "/".join(f"`{c[:7]}`" for c in cs)
                                          for f, cs in commits.items() if cs) + ".",
    ]
    return "\n\n".join([
        f"### Downstream accuracy: {d.get('dataset', '?')}, {budget_label(d)}",
        "Accuracy in percent, mean ± std over seeds; differences are paired per seed: mean [95% t "
        "interval] (seeds > 0 / seeds).",
        table(header, rows), " ".join(notes), provenance(name, d),
    ])


def family_quality_section(name: str, d: dict) -> str:
    real_spread = d.get("real_subset_within_class_spread")
    header = ["Family", "Class consistency (%)", "Min per-class (%)", "`vary` consistency (%)",
              "Within-class spread", "Spread / real", "Training (s)"]
    rows = []
    for family, f in d.get("families", {}).items():
        spread = f.get("within_class_spread")
        ratio = spread / real_spread if spread is not None and real_spread else None
        rows.append([f"`{family}`", pct(f.get("class_consistency")), pct(f.get("min_class_consistency")),
                     pct(f.get("vary_class_consistency")), num(spread, ".3f"), num(ratio, ".2f"),
                     num(f.get("train_seconds"))])
    classifier = d.get("classifier", {})
    notes = (f"Generators trained on {d.get('data')} for {d.get('steps')} steps, batch {d.get('batch_size')}. "
             f"Judge: {classifier.get('model')} trained on the {classifier.get('trained_on')} "
             f"({classifier.get('steps')} steps, test accuracy {pct(classifier.get('test_accuracy'))}%); "
             f"it calls {pct(d.get('real_subset_consistency'))}% of the real subset correctly. "
             f"Within-class spread: mean per-pixel std within a class, in [-1, 1] units; the real subset's "
             f"is {num(real_spread, '.3f')}.")
    overrides = "".join(f" --set {o}" for o in d.get("overrides", []))
    title = f"### Class consistency and diversity per family ({d.get('steps')} steps{overrides})"
    return "\n\n".join([title, table(header, rows), notes,
                        provenance(name, d)])


def cgan_regularisers_section(name: str, d: dict) -> str:
    """The validation sweep of ``cgan``'s regularisers: medians over seeds per setting, the choice marked."""
    chosen, floor = d.get("chosen", {}), d.get("min_agreement", 0.9)
    header = ["Setting (`downstream.py` source)", "Seeds", "Diversity ratio", "Novelty ratio",
              "Teacher agreement (%)", "Choice"]
    rows = []
    for spec, e in d.get("settings", {}).items():
        agreement = e.get("teacher_agreement")
        choice = ("**chosen**" if spec == chosen.get("spec") else
                  "eligible" if agreement is not None and agreement >= floor else "–")
        rows.append([f"`{spec}`", str(len(e.get("seeds") or [])), num(e.get("diversity_ratio"), ".2f"),
                     num(e.get("novelty_ratio"), ".2f"), pct(agreement), choice])
    teachers = ", ".join(f"seed {seed}: {pct(t.get('val_accuracy'))}%" for seed, t in d.get("teachers", {}).items())
    notes = (f"`cgan` trained {d.get('gen_steps')} steps on the fit part (80%) of the subset; medians over seeds of "
             f"{d.get('rows_per_class')} free samples per class: diversity against held-out real images, novelty "
             f"against the fit images, agreement of a real + classic teacher trained on the fit part (its validation "
             f"accuracy: {teachers or '–'}). Rule: {d.get('rule')}. Chosen: `{chosen.get('spec')}` "
             f"({chosen.get('note')}).")
    title = f"### `cgan` regularisers on validation: {d.get('dataset')}, {budget_label(d)}"
    return "\n\n".join([title, table(header, rows), notes, provenance(name, {**d, "per_seed": d.get("runs", [])})])


def time_to_grid_section(name: str, d: dict) -> str:
    """Training time to a converged sample grid, per family (``benchmarks/time_to_grid.py``)."""
    header = ["Family", "Steps trained", "Converged at step", "Training (s) to it", "Best score",
              "Best: consistency / diversity / novelty / realness", "Wall (s)", "Grids"]
    rows = [[f"`{family}`", str(f.get("steps")), str(f.get("converged_step")) if f.get("converged") else "not converged",
             num(f.get("converged_train_seconds")), num(f.get("best_score"), ".3f"), _score_terms(f),
             num(f.get("wall_seconds")),
             ", ".join(f"[{kind}]({path})" for kind, path in (f.get("grids") or {}).items()) or "–"]
            for family, f in d.get("families", {}).items()]
    notes = (f"{d.get('dataset')}, {budget_label(d)}, seed {d.get('seed')}; a snapshot every {d.get('snapshot_every')} "
             f"steps scored by {d.get('score')}; converged: the first snapshot within {100 * d.get('tolerance', 0):.0f}% "
             "of the run's best score, confirmed by a later one. Training seconds exclude the scoring.")
    title = f"### Training time to a converged sample grid: {d.get('dataset')}, {budget_label(d)}"
    return "\n\n".join([title, table(header, rows), notes,
                         provenance(name, {**d, "per_seed": list(d.get("families", {}).values())})])


def _score_terms(family: dict) -> str:
    """The terms of the best snapshot's score (those the file records; older files lack novelty)."""
    snapshots = family.get("snapshots") or []
    if not snapshots:
        return "–"
    best = max(snapshots, key=lambda r: r.get("score", float("-inf")))
    terms = ("class_consistency", "diversity", "novelty", "realness")
    return " / ".join(num(best.get(t), ".2f") for t in terms)


def ddpm_coverage_section(name: str, d: dict) -> str:
    """Consistency, CAS, diversity and novelty of samples by training step and guidance scale
    (``benchmarks/ddpm_coverage.py``)."""
    header = ["Family", "Step", "Guidance", "Training (s)", "Class consistency (%)", "CAS (%)",
              "Diversity (pixels / features)", "Novelty (pixels / features)"]
    rows = []
    for family, f in d.get("families", {}).items():
        for r in f.get("records", []):
            scale = r.get("guidance_scale")
            rows.append([f"`{family}`", str(r.get("step")), "–" if scale is None else f"{scale:g}",
                         num(r.get("train_seconds")), pct(r.get("class_consistency")), pct(r.get("cas")),
                         f"{num(r.get('diversity_pixels'), '.2f')} / {num(r.get('diversity_features'), '.2f')}",
                         f"{num(r.get('novelty_pixels'), '.2f')} / {num(r.get('novelty_features'), '.2f')}"])
    notes = (f"{d.get('dataset')}, {budget_label(d)}, seed {d.get('seed')}: {d.get('per_class')} samples per class "
             f"and setting. Reference: {d.get('reference')}. Consistency: the share the reference classifier calls "
             "their class; CAS: a classifier trained on the samples alone, tested on the held-out images; "
             "diversity and novelty: medians over classes of the ratios to held-out real images (1 = as spread / "
             "as new as real images; novelty well below 1 = near copies of the training images).")
    title = f"### Sample coverage by training length and guidance: {d.get('dataset')}, {budget_label(d)}"
    convergence = " ".join(snapshot_convergence_text(family, f) for family, f in d.get("families", {}).items()
                           if f.get("snapshots"))
    return "\n\n".join([title, table(header, rows), notes + (" " + convergence if convergence else ""),
                         provenance(name, {**d, "per_seed": list(d.get("families", {}).values())})])


def snapshot_convergence_text(family: str, f: dict) -> str:
    """A family's snapshot scores in a line: how far it trained, its best score and whether it
    converged (``time_to_grid.converged_at``), or that the run is under way."""
    last = f["snapshots"][-1]
    text = (f"`{family}`: {len(f['snapshots'])} snapshots scored to step {last['step']} ({num(last['train_seconds'])} s "
            f"of training), best score {f.get('best_score'):.4f}; ")
    if f.get("partial"):
        return text + f"under way to step {f.get('steps')}" + (
            f", resumed at steps {', '.join(map(str, f['resumed_at_steps']))}." if f.get("resumed_at_steps") else ".")
    if f.get("converged"):
        return text + f"converged at step {f['converged_step']} ({num(f['converged_train_seconds'])} s of training)."
    return text + "not converged."


def throughput_section(name: str, d: dict) -> str:
    out = []
    training = d.get("training")
    if training:
        runs = training.get("runs", {})
        rows = [
            ["augmentgen `Trainer`", num(training.get("ours_images_per_s_median")),
             ", ".join(num(r["images_per_s"]) for r in runs.get("ours", []))],
            ["plain eager fp32 loop", num(training.get("plain_images_per_s_median")),
             ", ".join(num(r["images_per_s"]) for r in runs.get("plain", []))],
            ["ratio ours / plain", num(training.get("ratio_ours_over_plain"), ".3f"), ""],
        ]
        out += ["### Training throughput (`cgan`)",
                table(["Loop", "Images/s (median)", "Runs (images/s)"], rows),
                f"{training.get('model')}; {training.get('data')}; device {training.get('device')}. "
                f"{training.get('timing')} Ours includes: {'; '.join(training.get('ours_includes', []))}. "
                f"Plain loop: {training.get('plain_loop')}."]
    sampling = d.get("sampling")
    if sampling:
        figures = sampling.get("figures", {})
        variants = [v for v in ("cpu", "cuda", "cuda_bf16") if any(v in f for f in figures.values())]
        rows = [[f"`{model}`", *(num((f.get(v) or {}).get("images_per_s_median"), ",.0f") for v in variants)]
                for model, f in figures.items()]
        labels = {"cpu": "CPU fp32", "cuda": "CUDA fp32", "cuda_bf16": "CUDA bf16 autocast"}
        out += ["### Sampling throughput (images/s)",
                table(["Model", *(labels[v] for v in variants)], rows), sampling.get("timing", "")]
    memory = d.get("peak_memory")
    if memory:
        figures = memory.get("figures", {})
        has_cuda = any("cuda_max_allocated_mib" in f for f in figures.values())
        header = ["Measurement", "What", "Peak RSS above imports (MiB)"] + (["CUDA max allocated (MiB)"] if has_cuda else [])
        rows = []
        for key, f in figures.items():
            if "error" in f:
                rows.append([f"`{key}`", f"failed: {f['error']}", "–"] + (["–"] if has_cuda else []))
                continue
            rows.append([f"`{key}`", f.get("what", ""), num(f.get("peak_rss_above_imports_mib"), ",.0f")]
                        + ([num(f.get("cuda_max_allocated_mib"), ",.0f")] if has_cuda else []))
        out += ["### Peak memory", table(header, rows), memory.get("method", "")]
    if not out:
        return ""
    return "\n\n".join([*out, provenance(name, d)])


def mixing_overhead_section(name: str, d: dict) -> str:
    f, s = d.get("figures", {}), d.get("settings", {})
    rows = [
        ["training step without mixing (s, median)", num(f.get("baseline_step_s_median"), ".4f")],
        ["training step with `SyntheticMix` (s, median)", num(f.get("mixed_step_s_median"), ".4f")],
        ["`SyntheticMix` call alone (s, median)", num(f.get("mix_call_s_median"), ".4f")],
        ["overhead (%)", num(f.get("overhead_percent"), "+.1f")],
        ["synthetic rows per step", str(f.get("synthetic_rows_per_step", "–"))],
    ]
    settings = (f"{d.get('description', '')}. Device {s.get('device')}, batch {s.get('batch_size')}, "
                f"ratio {s.get('ratio')}, {s.get('steps')} timed steps after {s.get('warmup')} warm-up, "
                f"bf16 {s.get('bf16')}, channels_last {s.get('channels_last')}.")
    return "\n\n".join(["### `SyntheticMix` overhead", table(["", "Value"], rows), settings, provenance(name, d)])


def classifier_speed_section(name: str, d: dict) -> str:
    rows = [[shape, num(r["seconds_per_step"].get("nchw"), ".4f"), num(r["seconds_per_step"].get("channels_last"), ".4f"),
             f"{r.get('speedup_nchw_over_channels_last')}x"] for shape, r in d.get("results", {}).items()]
    s, load = d.get("settings", {}), d.get("load_average_1m", {})
    settings = (f"One AdamW training step (forward, cross-entropy, backward) of the reference classifier, batch "
                f"{s.get('batch_size')}; median over {s.get('repeats')} rounds of {s.get('steps_per_round')} steps, "
                f"the layouts alternating; load average {load.get('before')} before, {load.get('after')} after.")
    return "\n\n".join(["### Reference classifier: channels_last vs NCHW",
                        table(["Shape", "NCHW (s/step)", "channels_last (s/step)", "Speed-up"], rows),
                        settings, provenance(name, d)])


def pool_fill_rate_section(name: str, d: dict) -> str:
    rows = [[f"`cgan` {config}", str(f.get("images")), num(f.get("refresh_s_median"), ".3f"),
             num(f.get("images_per_s"), ",.0f"), num(f.get("bank_mib"), ".1f")]
            for config, f in d.get("figures", {}).items()]
    s = d.get("settings", {})
    settings = (f"`SyntheticPool.refresh()` (sample, convert to uint8, write the shared bank), median of "
                f"{s.get('repeats')} refreshes; device {s.get('device')}, per class {s.get('per_class')}, "
                f"batch {s.get('batch_size')}.")
    return "\n\n".join(["### `SyntheticPool` fill rate",
                        table(["Generator", "Images", "Refresh (s)", "Images/s", "Bank (MiB)"], rows),
                        settings, provenance(name, d)])


def validation_leak_section(name: str, d: dict) -> str:
    """``validation_leak.py``: a candidate's validation score with rows from generators that did and
    did not see the validation images, in points, per source."""
    rows = []
    with_z = any(got.get("z_guard_seeds") for got in d.get("summary", {}).values())
    for spec, got in d.get("summary", {}).items():
        rows.append([f"`{spec}`", str(len(got.get("seeds", []))), interval_pct(got.get("leak")),
                     interval_pct(got.get("size")), interval_pct(got.get("total")), interval_pct(got.get("leaked_vs_b")),
                     interval_pct(got.get("clean_vs_b")), f"{got.get('guard_flips')}/{len(got.get('seeds', []))}"]
                    + ([f"{got['z_guard_flips']}/{got['z_guard_seeds']}" if got.get("z_guard_seeds") else "–"]
                       if with_z else []))
    notes = (f"Validation score (plain method, candidate `{d.get('mode')}` for variation rows, B as the cell chose it) "
             f"of B + rows from three generators per split: the protocol's, trained on the whole subset "
             f"(*leaked*), one on the split's fit part only (*clean*), one on as many images with the validation "
             f"images among them (*matched*); {d.get('gen_steps')} generator steps, {d.get('selection_folds')} "
             f"split(s), points of validation {'mean per-class accuracy' if str(d.get('budget')).startswith('lt') else 'accuracy'}. "
             "Guard flips: seeds where \"mix where validation beats B\" decides otherwise with the clean generator"
             + ("; with the guard `augmentgen eval` applies (a lead of more than 1 standard error over the same "
                "validation images), over the seeds that record which images each got right" if with_z else "")
             + ". No test image is read.")
    by_source = {**d, "per_seed": [{**row, "arms": row.get("sources", {})} for row in d.get("per_seed", [])]}
    header = ["Source", "Seeds", "Seen − unseen, same size", "Leaked − matched (size)", "Leaked − clean",
              "Leaked vs B", "Clean vs B", "Guard flips"] + (["Guard flips (z > 1)"] if with_z else [])
    return "\n\n".join([f"### Does the generator's sight of the validation images inflate its rows' validation score? "
                         f"({d.get('dataset')}, {budget_label(d)})", table(header, rows), notes,
                         provenance(name, by_source)])


SECTIONS = {  # file-name pattern -> section
    "family_quality*.json": family_quality_section,
    "cgan_regularisers_*.json": cgan_regularisers_section,
    "time_to_grid_*.json": time_to_grid_section,
    "ddpm_coverage_*.json": ddpm_coverage_section,
    "throughput.json": throughput_section,
    "mixing_overhead.json": mixing_overhead_section,
    "pool_fill_rate.json": pool_fill_rate_section,
    "classifier_speed.json": classifier_speed_section,
    "validation_leak_*.json": validation_leak_section,
}


# --- plot


def plot_downstream(files: dict[str, dict], path: Path) -> Path | None:
    """The protocol-v2 forest plot: ΔAcc with its 95% interval per cell and family, the oracle gain beside it."""
    entries = []  # (label, paired stats, is_oracle)
    for d in files.values():
        s = d.get("summary", {})
        cell = f"{d.get('dataset', '?')} {d.get('budget', '?')}"
        if s.get("oracle_gain"):
            entries.append((f"{cell}: oracle (2x real)", s["oracle_gain"], True))
        entries += [(f"{cell}: {f}", s[f]["delta"], False) for f in d.get("families", []) if s.get(f)]
    return forest_plot(entries, path, "difference in test accuracy vs real + classic (points), mean and 95% t interval")


def plot_downstream_v3(files: dict[str, dict], path: Path) -> Path | None:
    """The protocol-v3 forest plot, every cell: each synthetic arm and control against the best baseline B
    of its seed, and the oracle (twice the real images) against (a)."""
    entries = []
    for d in files.values():
        s = d.get("summary", {})
        cell = cell_label(d)
        if s.get("oracle_gain"):
            entries.append((f"{cell}: oracle, 2x real (vs a)", s["oracle_gain"], True))
        for key in [k for k in ("r", "p") if s.get(k, {}).get("vs_best_baseline")]:
            entries.append((f"{cell}: ({key}) {'copies of real rows' if key == 'r' else 'pixel MixUp'}, no generator",
                            s[key]["vs_best_baseline"], True))
        entries += [(f"{cell}: {key}", s[key]["vs_best_baseline"], False) for key in v3_synthetic_keys(d)
                    if s.get(key, {}).get("vs_best_baseline")]
    entries = [(f"{label} ({stats['n']} seed{'s' * (stats['n'] > 1)})", stats, grey) for label, stats, grey in entries]
    return forest_plot(entries, path, "vs the best baseline B (points): mean, 95% t interval; grey: no generator")


def forest_plot(entries: list[tuple[str, dict, bool]], path: Path, xlabel: str) -> Path | None:
    """One row per ``(label, paired stats, grey)``: the mean and its interval (blue above 0, red below,
    dark grey across it or with one seed, no interval; grey rows are references: the oracle and the controls)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not entries:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(entries) + 1.2))
    for y, (_, stats, reference) in enumerate(reversed(entries)):
        mean = 100 * stats["mean"]
        low, high = (100 * v for v in stats["ci95"]) if stats.get("ci95") else (mean, mean)
        color = ("#9e9e9e" if reference else "#555555" if not stats.get("ci95") else
                 "#1f77b4" if low > 0 else "#d62728" if high < 0 else "#555555")
        ax.plot([low, high], [y, y], color=color, linewidth=2)
        ax.plot([mean], [y], "s" if reference else "o", color=color)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(entries)), [label for label, _, _ in reversed(entries)], fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


# --- main


# --- protocol v3: baselines, controls and sources on top of the best baseline

V3_ARM_NAMES = {"a": "(a) real + classic", "f": "(f) + MixUp/CutMix", "g": "(g) + class-balanced resampling",
                "h": "(h) + logit-adjusted loss", "e": "(e) oracle: twice the real images",
                "r": "(r) B + copies of real rows (control)", "p": "(p) B + same-class pixel MixUp (control)",
                "t": "(t) B + its own soft labels on real rows, no synthetic rows (control)"}


def v3_arm_name(key: str) -> str:
    if key in V3_ARM_NAMES:
        return V3_ARM_NAMES[key]
    family, _, kind = key.rpartition(":")  # options may hold a ":" themselves
    kind, *methods = kind.split("+")
    kind, _, where = kind.partition("@")
    rows = "rows made from real rows" if kind == "variation" else "free samples"
    chosen = f", method chosen among plain, {', '.join(methods)}" if methods else ""
    return f"B + `{family}` {rows}{', from a bank made once' if where == 'bank' else ''}{chosen}"


def v3_synthetic_keys(d: dict) -> list[str]:
    return [k for k in d.get("summary", {}).get("arms", {}) if ":" in k]


def best_synthetic_arm(d: dict) -> str | None:
    """A cell's best synthetic arm: the highest mean ΔAcc vs B among its synthetic arms measured on
    the most seeds (a one-seed arm's mean is a demo, and picking the highest of unequally measured
    arms would favour the least measured one). None where the cell has no synthetic arm."""
    s = d.get("summary", {})
    keys = v3_synthetic_keys(d)
    if not keys:
        return None
    most = max(s["arms"][k]["n"] for k in keys)
    return max((k for k in keys if s["arms"][k]["n"] == most),
               key=lambda k: ((s[k].get("vs_best_baseline") or {}).get("mean") or -1))


#: The column of the guarded figure (``downstream.guard_summary``), in the matrix and the cell tables.
GUARD_COLUMN = "Mixed where validation beats B: vs B (seeds mixed)"


def downstream_v3_matrix(files: dict[str, dict]) -> str:
    """One row per cell: the best baseline, the best synthetic arm and its paired differences
    against B and the two controls that add as many rows without a generator (the README's matrix)."""
    header = ["Cell", "Best baseline B (chosen per seed)", "Best synthetic arm", "ΔAcc vs B", "ΔAcc vs (r)",
              "ΔAcc vs (p)", GUARD_COLUMN, "Oracle gain", "Oracle share",
              "Seeds"]
    rows = []
    for d in files.values():
        best = best_synthetic_arm(d)
        if best is None:
            continue
        s = d["summary"]
        e = s[best]
        share = e.get("oracle_share")
        chosen = ", ".join(sorted(set(x for x in s.get("best_baseline_chosen", []) if x)))
        rows.append([cell_label(d), f"{mean_std_pct(s.get('best_baseline'))} ({chosen})",
                     v3_arm_name(best), interval_pct(e.get("vs_best_baseline")), interval_pct(e.get("vs_r")),
                     interval_pct(e.get("vs_p")), guard_text(e), interval_pct(s.get("oracle_gain")),
                     "–" if share is None else f"{100 * share:.0f}%", str(s["arms"][best]["n"])])
    if not rows:
        return ""
    overview = guard_overview(files)
    return ("## The answer per cell (protocol v3)\n\n" + table(header, rows)
            + "\n\nB: the best non-generative arm of each seed, chosen on the validation split; (r) B + copies of "
            "real rows, (p) B + same-class pixel MixUp: as many rows, no generator. Differences are paired per "
            "seed, mean [95% t interval] (positive seeds / seeds), in points; \"mixed where validation beats B\": the "
            "arm at the seeds where its validation score beat B's, B elsewhere (what a user who follows "
            "validation gets). The best synthetic arm is the one "
            "with the highest mean ΔAcc vs B among the cell's synthetic arms measured on the most seeds (arms "
            "with fewer seeds are not compared with it); every arm is in the cell's table below."
            + (f"\n\n{overview}" if overview else ""))


def seeds_asked(d: dict) -> dict[str, list[int]]:
    """Per synthetic arm, the seeds the recorded commands asked it for (``--sources`` and
    ``--seeds`` of each command that names it): an arm run on three seeds by design is complete."""
    from downstream import split_top_level  # the parser's own splitter (commas inside [...] and "...")

    asked: dict[str, set[int]] = {}
    for command in d.get("commands", []):
        words = shlex.split(command)
        value = {flag: words[i + 1] for i, flag in enumerate(words[:-1]) if flag in ("--sources", "--seeds")}
        if "--sources" not in value or "--seeds" not in value:
            continue
        seeds = {int(seed) for seed in value["--seeds"].split(",")}
        for key in (spec.strip() for spec in split_top_level(value["--sources"])):
            asked.setdefault(key, set()).update(seeds)
    return {key: sorted(seeds) for key, seeds in asked.items()}


def downstream_v3_under_way(files: dict[str, dict]) -> str:
    """The synthetic arms measured on fewer seeds than their commands asked for: a campaign's
    progress, read from the files (the docs point here rather than counting seeds by hand)."""
    rows = []
    for name, d in files.items():
        for key, asked in seeds_asked(d).items():
            seeds = sorted(r["seed"] for r in d.get("per_seed", []) if key in r.get("arms", {}))
            missing = [seed for seed in asked if seed not in seeds]
            if missing:
                rows.append([cell_label(d), v3_arm_name(key), f"{len(asked) - len(missing)} of {len(asked)}",
                             ", ".join(map(str, seeds)) or "none", ", ".join(map(str, missing)), f"`{name}`"])
    if not rows:
        return ""
    return ("### Under way: arms measured on fewer seeds than their commands asked for\n\n"
            + table(["Cell", "Arm", "Seeds", "Measured", "To run", "File"], rows)
            + "\n\nNo difference of these arms is quoted in the docs before its seeds are in; one seed is a demo.")


#: The synthetic arm every v3 cell has (the protocol's first generator): each other synthetic arm is
#: also read against it, seed by seed, to say whether a generator beats the one the suite began with.
REFERENCE_ARM = "cgan:free"


def downstream_v3_against_reference(files: dict[str, dict]) -> str:
    """Each synthetic arm against :data:`REFERENCE_ARM` over the seeds both measured: a paired
    difference of their test accuracies (same subset, B, classifier initialisation and batch order
    per seed), where they share at least two seeds."""
    rows = []
    for d in files.values():
        for key in v3_synthetic_keys(d):
            pairs = [(r["arms"][key]["acc"], r["arms"][REFERENCE_ARM]["acc"]) for r in d.get("per_seed", [])
                     if key != REFERENCE_ARM and key in r.get("arms", {}) and REFERENCE_ARM in r.get("arms", {})]
            if len(pairs) >= 2:
                stats = paired_difference([a for a, _ in pairs], [c for _, c in pairs])
                rows.append([cell_label(d), v3_arm_name(key), interval_pct(stats)])
    if not rows:
        return ""
    return (f"### Each synthetic arm against `{REFERENCE_ARM}`, seed by seed\n\n"
            + table(["Cell", "Arm", f"vs B + `{REFERENCE_ARM}` (seeds both measured)"], rows)
            + "\n\nPaired by seed like every figure here: the same real subset, B, classifier initialisation and "
              "batch order; only the synthetic rows differ.")


def downstream_v3_validation_to_add(files: dict[str, dict]) -> str:
    """The synthetic arms with seeds that recorded no validation score (a lone candidate measured
    before it was scored, or from a bank before 2026-12-07): their guarded figures wait for them,
    which ``downstream.py --validate-measured`` adds without touching their test figures."""
    from downstream import validation_settled

    rows, refused = [], []
    for name, d in files.items():
        for key in v3_synthetic_keys(d):
            arms = [(r["seed"], r["arms"][key]) for r in d.get("per_seed", []) if key in r.get("arms", {})]
            lacking = [seed for seed, arm in arms if not validation_settled(arm)]
            if lacking:
                rows.append([cell_label(d), v3_arm_name(key), ", ".join(map(str, lacking)), f"`{name}`"])
            refused += [f"{cell_label(d)}, {v3_arm_name(key)}, seed {seed}: {arm['validation_refused']['reason']}"
                        for seed, arm in arms if "validation_refused" in arm]
    if not rows and not refused:
        return ""
    text = "### Validation to add: arms with seeds that recorded no validation score\n\n"
    if rows:
        text += (table(["Cell", "Arm", "Seeds without one", "File"], rows)
                 + "\n\nTheir guarded figures (\"mixed where validation beats B\" and under the library's guard) wait "
                   "for these seeds: `downstream.py` with the arm's recorded command and `--validate-measured` adds "
                   "them, validating the arm's candidate on the seed's splits; its test figures stay as measured. It "
                   "does so only where the generator trained again is the one the arm recorded (its weights' sha256, or "
                   "for an arm measured before it recorded one, its rows' pixel diversity and novelty): a validation "
                   "of other rows says nothing of the measured test figures.")
    if refused:
        text += ("\n\n" if rows else "") + ("Validation that cannot be added, the generator trained again not being the "
                                             "one measured (these seeds have no guarded figure):\n\n"
                                             + "\n".join(f"- {line}" for line in refused))
    return text


def guard_overview(files: dict[str, dict]) -> str:
    """One sentence over every arm of every cell that records the guarded figure: its worst seed,
    against the worst seed of the same arms mixed regardless (the README's "never made worse")."""
    guarded, forced, arms = [], [], 0
    for d in files.values():
        for key in v3_synthetic_keys(d):
            e = d["summary"].get(key, {})
            if e.get("guard_mixed") and e.get("guarded_vs_best_baseline"):
                arms += 1
                guarded += e["guarded_vs_best_baseline"]["differences"]
                forced += e["vs_best_baseline"]["differences"]
    if not arms:
        return ""
    return (f"Mixed only where validation beats B, over the {arms} arms that record it ({len(guarded)} "
            f"seed-arms): worst seed {100 * min(guarded):+.2f} points against B, where the same arms mixed "
            f"regardless reach {100 * min(forced):+.2f}." + z_guard_overview(files))


def z_guard_overview(files: dict[str, dict]) -> str:
    """The same over the seed-arms that record which validation images the arm and B got right,
    with the library's guard (a lead of more than ``z_guard_min`` standard errors); "" before any."""
    guarded, forced, mixed, z = [], [], 0, None
    for d in files.values():
        for key in v3_synthetic_keys(d):
            e = d["summary"].get(key, {})
            if not e.get("z_guarded_vs_best_baseline"):
                continue
            seeds = e["z_guard_mixed"]
            z, mixed = e["z_guard_min"], mixed + sum(seeds.values())
            guarded += e["z_guarded_vs_best_baseline"]["differences"]
            forced += [r["arms"][key]["acc"] - r["arms"][r["best_baseline"]]["acc"]
                       for r in d["per_seed"] if str(r["seed"]) in seeds]
    if not guarded:
        return ""
    return (f" With the guard `augmentgen eval` applies (mixed only on a lead of more than {z:g} standard error"
            f"{'s' * (z != 1)} over the same validation images), over the {len(guarded)} seed-arms that record "
            f"each image: mixed at {mixed}, worst seed {100 * min(guarded):+.2f} points against B, where the same "
            f"seed-arms mixed regardless reach {100 * min(forced):+.2f}.")


def left_out_text(left_out: dict[str, list[int]] | None) -> str:
    """The methods a seed left out of its choice, and why (the only reason a candidate has no score)."""
    if not left_out:
        return ""
    which = "; ".join(f"{method} at seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
                      for method, seeds in left_out.items())
    return (f" (left out of the choice: {which}, where its teacher accepted no image of some class of the "
            "bank)")


def downstream_v3_section(name: str, d: dict) -> str:
    s, lt = d.get("summary", {}), d.get("long_tailed")
    arms = s.get("arms", {})
    header = ["Arm", "Test accuracy (%)", "vs best baseline B", "vs (r)", "vs (p)", "vs (a)", "Oracle share"]
    # Only files where some arm chose soft labels have (t); the others keep their columns.
    with_t = any(s.get(k, {}).get("vs_t") for k in v3_synthetic_keys(d))
    header += ["vs (t), soft seeds"] if with_t else []
    with_guard = any(s.get(k, {}).get("guarded_vs_best_baseline") for k in v3_synthetic_keys(d))
    header += [GUARD_COLUMN] if with_guard else []
    header += ["Rare five vs B"] if lt else []
    header += ["Diversity / novelty (pixels)"]
    rows = []
    for key in sorted(arms, key=lambda k: (":" in k, k not in V3_ARM_NAMES, list(V3_ARM_NAMES).index(k)
                                           if k in V3_ARM_NAMES else 0, k)):
        e = s.get(key, {})
        share = e.get("oracle_share")
        row = [v3_arm_name(key), mean_std_pct(arms[key]), interval_pct(e.get("vs_best_baseline")),
               interval_pct(e.get("vs_r")), interval_pct(e.get("vs_p")), interval_pct(e.get("vs_a")),
               "–" if share is None else f"{100 * share:.0f}%"]
        if with_t:
            row.append(interval_pct(e.get("vs_t")))
        if with_guard:
            row.append(guard_text(e))
        if lt:
            row.append(interval_pct(e.get("rarest5_vs_best_baseline")))
        row.append(coverage_text(e.get("coverage")))
        rows.append(row)
    modes = {k: s[k].get("modes_chosen") for k in v3_synthetic_keys(d) if s.get(k, {}).get("modes_chosen")}
    notes = [f"Best baseline chosen on validation per seed: {s.get('best_baseline_chosen')}; "
             f"oracle gain (e − a): {interval_pct(s.get('oracle_gain'))}{oracle_size_text(d)}."]
    notes += [f"`{k}` modes chosen on validation per seed: {v}." for k, v in modes.items()]
    methods = {k: s[k]["methods_chosen"] for k in v3_synthetic_keys(d) if s.get(k, {}).get("methods_chosen")}
    notes += [f"`{k}` methods chosen on validation per seed (plain; filter, soft: the teacher's filter or soft "
              f"labels, the teacher being B's classifier on the same data; weighted: synthetic rows at loss "
              f"weight 0.5): {v}{left_out_text(s[k].get('methods_left_out'))}." for k, v in methods.items()]
    reruns = {k: s[k] for k in [*v3_synthetic_keys(d), "t"] if s.get(k, {}).get("vs_b_rerun")}
    notes += [f"`{k}` was added to seeds whose B was measured in an earlier run (another commit or machine): "
              f"against B trained again in its own run {interval_pct(e['vs_b_rerun'])}, B having moved "
              f"{interval_pct(e.get('b_drift'))} between the runs." for k, e in reruns.items()]
    if with_guard:
        notes += ["Mixed where validation beats B: per seed, the arm where its best validation score beat B's "
                  "(the choice `augmentgen eval` made until 2026-12-07, here between B and the arm's ratio; it now "
                  "also asks for a lead of more than one standard error), B itself elsewhere, "
                  "read from the scores both recorded on the same split; nothing trains again. \"–\": an arm that recorded no validation "
                  "score (one candidate, measured before 2026-12-06, or from a bank before 2026-12-07 and not validated since)."]
    notes += [f"`{k}` with the guard `augmentgen eval` applies (mixed only on a validation lead of more than "
              f"{s[k]['z_guard_min']:g} standard error{'s' * (s[k]['z_guard_min'] != 1)}, McNemar's z over the "
              f"validation images{', class-weighted' if lt else ''}), over the seeds that record each image: vs B "
              f"{interval_pct(s[k]['z_guarded_vs_best_baseline'])}, mixed at "
              f"{sum(s[k]['z_guard_mixed'].values())} of {len(s[k]['z_guard_mixed'])}."
              for k in v3_synthetic_keys(d) if s.get(k, {}).get("z_guarded_vs_best_baseline")]
    if with_t:
        notes += ["vs (t): over the seeds where the arm chose soft labels, against B with the same teacher's soft "
                  "labels on its real rows and no synthetic rows, so the gain is the synthetic rows' own."]
    notes += ["Diversity / novelty: pixel-space ratios of an arm's rows against held-out real images "
              "(diversity: within-class spread; novelty: distance to the nearest training image; 1 = like new "
              "real images, novelty well below 1 = near copies), mean over the seeds measured (n); CAS, where "
              "recorded (arms measured from 2026-12-07): the same classifier trained on those rows alone, "
              "accuracy on the held-out images (m seeds)."]
    return (f"### {cell_label(d, ', ')} (protocol v3, appended ratio {d.get('appended_ratio')})\n\n"
            + table(header, rows) + "\n\n" + " ".join(notes) + "\n\n" + provenance(name, d))


def oracle_size_text(d: dict) -> str:
    """Where the data hold fewer than twice the subset of a class, how large the oracle is."""
    ratios = [e / n for row in d.get("per_seed", []) if "class_counts" in row["arms"].get("e", {})
              for e, n in zip(row["arms"]["e"]["class_counts"], row["class_counts"])]
    if not ratios or min(ratios) >= 2:
        return ""
    return (f" (the oracle holds {min(ratios):.2f}x to {max(ratios):.2f}x the subset's images per class, "
            "all the data hold where a class has fewer than twice the subset)")


def guard_text(entry: dict) -> str:
    """``+0.4 [-0.2, +1.0] (3/5), 4/5``: the guarded arm against B, then the seeds where it mixed."""
    mixed = entry.get("guard_mixed")
    if not mixed:
        return "–"
    return f"{interval_pct(entry.get('guarded_vs_best_baseline'))}, {sum(mixed)}/{len(mixed)}"


def coverage_text(coverage: dict | None) -> str:
    """``0.97 / 0.65 (n)``: mean diversity and novelty ratios of an arm's rows over the seeds measured,
    then ``; CAS 61.2% (m)`` where seeds recorded it."""
    if not coverage or not coverage["diversity_pixels"]["n"]:
        return "–"
    d, n = coverage["diversity_pixels"], coverage["novelty_pixels"]
    cas = coverage.get("cas_heldout") or {}
    cas_text = f"; CAS {100 * cas['mean']:.1f}% ({cas['n']})" if cas.get("n") else ""
    return f"{d['mean']:.2f} / {n['mean']:.2f} ({d['n']}){cas_text}"


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"skipping {path}: {exc}", file=sys.stderr)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS), help="folder of the benchmark JSON files")
    parser.add_argument("--out", help="markdown file to write (default: <results>/REPORT.md); "
                                      "downstream.png goes next to it")
    args = parser.parse_args()
    results = Path(args.results)
    out = Path(args.out) if args.out else results / "REPORT.md"

    v3 = {p.name: d for p in sorted(results.glob("downstream_v3_*.json")) if (d := load(p)) is not None}
    downstream = {p.name: d for p in sorted(results.glob("downstream_v2_*.json")) if (d := load(p)) is not None}
    convergence = {p.name: d for p in sorted(results.glob("convergence_*.json")) if (d := load(p)) is not None}
    sections = [downstream_section(name, d) for name, d in downstream.items()]
    if downstream:
        sections[:0] = [downstream_overview(downstream), downstream_cost(downstream)]
    if convergence:
        sections.insert(1 if downstream else 0, convergence_section(convergence))
    plot = plot_downstream(downstream, out.parent / "downstream.png") if downstream else None
    if plot is not None:
        sections.insert(0, f"![ΔAcc and oracle gain per cell, mean and 95% interval over paired seeds]({plot.name})")
    if v3:
        sections[:0] = [text for text in [downstream_v3_matrix(v3), downstream_v3_under_way(v3),
                                          downstream_v3_validation_to_add(v3), downstream_v3_against_reference(v3),
                                          *(downstream_v3_section(n, d) for n, d in v3.items())] if text]
        plot_v3 = plot_downstream_v3(v3, out.parent / "downstream_v3.png")
        if plot_v3 is not None:
            sections.insert(1, f"![Every protocol-v3 cell: each arm against the best baseline B, mean and 95% "
                               f"interval over paired seeds]({plot_v3.name})")
    known = set(downstream) | set(convergence) | set(v3)
    for pattern, section in SECTIONS.items():
        for path in sorted(results.glob(pattern)):
            known.add(path.name)
            if (d := load(path)) is not None and (text := section(path.name, d)):
                sections.append(text)
    unknown = sorted(p.name for p in results.glob("*.json") if p.name not in known)

    # A path inside the repository is shown relative to it, so the report reads the same on any clone.
    repo = RESULTS.parent.parent
    shown = results.resolve().relative_to(repo) if results.resolve().is_relative_to(repo) else results
    lines = ["# augmentgen benchmark results", "",
             f"Generated by `{shlex.join(['python', 'benchmarks/report.py', *sys.argv[1:]])}` from the JSON "
             f"files in `{shown}`; the benchmark scripts in `benchmarks/` write them.", ""]
    if not sections:
        lines.append("No benchmark results found.")
    lines.append("\n\n".join(sections))
    if unknown:
        lines += ["", "Files not reported (unknown format): " + ", ".join(f"`{n}`" for n in unknown)]
    atomic_write_bytes(out, ("\n".join(lines).rstrip() + "\n").encode())
    print(f"wrote {out}" + (f" and {plot}" if plot else "") + (" and downstream_v3.png" if v3 else ""))


if __name__ == "__main__":
    main()
