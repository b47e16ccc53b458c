"""The campaign's results files: a cell's JSON resumes, merges from another lane and keeps its provenance.

The figures in the README come from these files, so the bookkeeping that writes them is tested like
the library (no classifier trains here).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import downstream  # noqa: E402  (benchmarks/ is not a package: its scripts import each other by name)
import merge_results  # noqa: E402
import report  # noqa: E402

PROTOCOL = {"benchmark": "downstream", "protocol_version": 3, "dataset": "fashion-mnist", "budget": "50pc",
            "long_tailed": False, "appended_ratio": 0.5, "selection_folds": 1}
MACHINE = {"platform": "lane-machine", "cpu_count": 2}


def _row(seed: int, counts=(50, 50)) -> dict:
    return {"seed": seed, "class_counts": list(counts), "best_baseline": "a"}


def _arm(acc: float) -> dict:
    return {"acc": acc, "git_commit": "abc", "cpu": "test CPU"}


def _write_lane_file(path: Path, arms: dict[int, dict[str, float]], machine=MACHINE) -> None:
    file = downstream.ResultsFile(path, PROTOCOL, fresh=True)
    file.add_run(sorted(arms), ["cgan:free"], "python benchmarks/downstream.py --seeds ...")
    file.results.update({"machine": machine, "torch": "2.x", "augmentgen": "0.1.0", "n_test": 100})
    for seed, accs in arms.items():
        file.put_row(_row(seed), save=False)
        for key, acc in accs.items():
            file.put_cell(seed, key, _arm(acc), save=False)
    file.save()


def test_a_resumed_file_keeps_the_machine_of_the_run_that_wrote_it(tmp_path):
    path = tmp_path / "cell.json"
    _write_lane_file(path, {0: {"a": 0.80, "e": 0.84}})
    resumed = downstream.ResultsFile(path, PROTOCOL, fresh=False)
    resumed.save()  # e.g. a run killed before its first arm: the file must not forget where it was measured
    saved = json.loads(path.read_text())
    assert saved["machine"] == MACHINE and saved["torch"] == "2.x" and saved["n_test"] == 100


def test_a_merge_adds_the_missing_arms_and_recomputes_the_summary(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    _write_lane_file(ours, {0: {"a": 0.80, "e": 0.84}})
    _write_lane_file(theirs, {0: {"a": 0.80, "e": 0.84, "cgan:free": 0.79}, 1: {"a": 0.78, "e": 0.83}})
    lines = merge_results.merge(theirs, ours)
    merged = json.loads(ours.read_text())
    assert sorted(merged["seeds"]) == [0, 1]
    assert merged["per_seed"][0]["arms"]["cgan:free"]["acc"] == 0.79
    assert sum(line.startswith("added") for line in lines) == 3  # seed 0's cgan, seed 1's a and e
    # The summary is recomputed: the oracle gain is now over two seeds, (0.04 + 0.05) / 2 (fractions).
    assert merged["summary"]["oracle_gain"]["n"] == 2
    assert merged["summary"]["oracle_gain"]["mean"] == pytest.approx(0.045)


def test_a_merge_keeps_our_figure_where_the_two_files_differ_and_says_so(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    _write_lane_file(ours, {0: {"a": 0.80}})
    _write_lane_file(theirs, {0: {"a": 0.81}})
    lines = merge_results.merge(theirs, ours)
    assert json.loads(ours.read_text())["per_seed"][0]["arms"]["a"]["acc"] == 0.80
    assert any(line.startswith("differs") and "kept 0.8" in line for line in lines)


def test_a_merge_takes_the_validation_a_lane_added_to_an_arm_and_nothing_else(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    _write_lane_file(ours, {0: {"a": 0.80, "ddpm:free@bank": 0.82}, 1: {"a": 0.70, "ddpm:free@bank": 0.72}})
    _write_lane_file(theirs, {0: {"a": 0.80, "ddpm:free@bank": 0.82}, 1: {"a": 0.70, "ddpm:free@bank": 0.73}})
    lane = json.loads(theirs.read_text())
    added = {"method_selection": {"plain": 0.75}, "validation_added": {"git_commit": "new"}}
    for row in lane["per_seed"]:
        row["arms"]["ddpm:free@bank"].update(added)
    theirs.write_text(json.dumps(lane))
    lines = merge_results.merge(theirs, ours)
    merged = {r["seed"]: r["arms"]["ddpm:free@bank"] for r in json.loads(ours.read_text())["per_seed"]}
    assert merged[0] == {**_arm(0.82), **added}  # the same arm, with its validation
    assert merged[1] == _arm(0.72)  # another figure: ours kept, theirs not taken
    assert "added seed 0 ddpm:free@bank: its validation (downstream.py --validate-measured)" in lines
    assert any(line.startswith("differs") and "seed 1" in line for line in lines)
    # A lane that found its generator was not the measured one: its refusal is merged, so no lane tries again.
    _write_lane_file(ours, {0: {"a": 0.80, "cgan:free": 0.79}})
    _write_lane_file(theirs, {0: {"a": 0.80, "cgan:free": 0.79}})
    lane = json.loads(theirs.read_text())
    lane["per_seed"][0]["arms"]["cgan:free"]["validation_refused"] = {"reason": "other rows"}
    theirs.write_text(json.dumps(lane))
    assert merge_results.merge(theirs, ours) == [
        "added seed 0 cgan:free: why no validation could be added (downstream.py --validate-measured)"]
    assert json.loads(ours.read_text())["per_seed"][0]["arms"]["cgan:free"]["validation_refused"] == {
        "reason": "other rows"}


def test_a_merge_restores_the_provenance_a_target_lacks(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    _write_lane_file(ours, {0: {"a": 0.80}})
    stripped = json.loads(ours.read_text())
    for key in downstream.PROVENANCE_FIELDS:  # as merges before 2026-12-06 left main's files
        stripped.pop(key)
    ours.write_text(json.dumps(stripped))
    _write_lane_file(theirs, {0: {"a": 0.80, "cgan:free": 0.79}}, machine={"platform": "other", "cpu_count": 2})
    merge_results.merge(theirs, ours)
    merged = json.loads(ours.read_text())
    assert merged["machine"]["platform"] == "other" and merged["n_test"] == 100


def test_a_merge_never_mixes_two_subsets(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    _write_lane_file(ours, {0: {"a": 0.80}})
    other = downstream.ResultsFile(theirs, PROTOCOL, fresh=True)
    other.add_run([0], ["cgan:free"], "cmd")
    other.put_row(_row(0, counts=(49, 51)), save=False)
    other.put_cell(0, "cgan:free", _arm(0.79))
    before = ours.read_text()
    with pytest.raises(SystemExit, match="not the same subset"):
        merge_results.merge(theirs, ours)
    assert ours.read_text() == before


def test_a_merge_refuses_a_file_of_another_protocol(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    _write_lane_file(ours, {0: {"a": 0.80}})
    other = downstream.ResultsFile(theirs, {**PROTOCOL, "appended_ratio": 1.0}, fresh=True)
    other.add_run([0], ["cgan:free"], "cmd")
    other.put_row(_row(0))
    with pytest.raises(SystemExit, match="another protocol"):
        merge_results.merge(theirs, ours)


def _guard_row(seed: int, b_val: float, arm_val: dict | None, b_acc: float, arm_acc: float) -> dict:
    arm = {"acc": arm_acc, "mode": "vary", **({"mode_selection": arm_val} if arm_val is not None else {})}
    return {"seed": seed, "best_baseline": "f", "baseline_selection": {"a": 0.5, "f": b_val},
            "arms": {"a": {"acc": 0.5}, "f": {"acc": b_acc}, "aae:variation": arm}}


def test_the_guarded_arm_mixes_only_where_validation_beats_b():
    rows = [_guard_row(0, 0.70, {"vary": 0.72, "interpolate": None}, 0.80, 0.82),  # mixes: +2 points
            _guard_row(1, 0.70, {"vary": 0.70, "interpolate": 0.65}, 0.80, 0.70),  # a tie keeps B: 0, not -10
            _guard_row(2, 0.70, {"vary": 0.60}, 0.80, 0.75)]  # keeps B: 0, not -5
    summary = downstream.summarise({"per_seed": rows, "long_tailed": False})["aae:variation"]
    assert summary["guard_mixed"] == [True, False, False]
    guarded = summary["guarded_vs_best_baseline"]
    assert guarded["mean"] == pytest.approx(2 / 3 / 100) and guarded["n"] == 3 and guarded["n_positive"] == 1
    # The arm itself, forced on at every seed, lost on average.
    assert summary["vs_best_baseline"]["mean"] == pytest.approx((2 - 10 - 5) / 3 / 100)


def test_an_arm_without_validation_scores_has_no_guarded_figure():
    rows = [_guard_row(0, 0.70, {"vary": 0.72}, 0.80, 0.82), _guard_row(1, 0.70, None, 0.80, 0.70)]
    summary = downstream.summarise({"per_seed": rows, "long_tailed": False})["aae:variation"]
    assert "guarded_vs_best_baseline" not in summary  # never over the seeds that happen to have a score


def test_the_cell_table_shows_the_guarded_figure_and_the_seeds_it_mixed():
    rows = [_guard_row(0, 0.70, {"vary": 0.72}, 0.80, 0.82), _guard_row(1, 0.70, {"vary": 0.60}, 0.80, 0.75)]
    d = {**PROTOCOL, "per_seed": rows}
    d["summary"] = downstream.summarise(d)
    text = report.downstream_v3_section("cell.json", d)
    header = next(line for line in text.splitlines() if line.startswith("| Arm"))
    assert "Mixed where validation beats B" in header
    arm_line = next(line for line in text.splitlines() if "`aae`" in line)
    assert "+1.0 [" in arm_line and "(1/2), 1/2" in arm_line  # +2 and 0 points: mixed at one seed of two


def test_the_cell_notes_say_which_method_a_seed_left_out_of_its_choice():
    """A candidate with no score (its filtered bank's teacher accepted no image of a class) is named
    with its seeds, so a reader does not take the choice for one among every method."""
    key = "ddpm:free@bank+filter+weighted"
    rows = []
    for seed, selection in ((0, {"plain": 0.80, "filter": None, "weighted": 0.79}),
                            (1, {"plain": 0.78, "filter": 0.81, "weighted": 0.77}),
                            (2, {"plain": 0.75, "filter": None, "weighted": 0.76})):
        chosen = max((m for m in selection if selection[m] is not None), key=selection.get)
        rows.append({"seed": seed, "best_baseline": "a", "baseline_selection": {"a": 0.7},
                     "arms": {"a": {"acc": 0.7}, key: {"acc": 0.72, "method": chosen, "method_selection": selection}}})
    d = {**PROTOCOL, "per_seed": rows}
    d["summary"] = downstream.summarise(d)
    assert d["summary"][key]["methods_chosen"] == ["plain", "filter", "weighted"]
    assert d["summary"][key]["methods_left_out"] == {"filter": [0, 2]}
    text = report.downstream_v3_section("cell.json", d)
    assert ("['plain', 'filter', 'weighted'] (left out of the choice: filter at seeds 0, 2, where its teacher "
            "accepted no image of some class of the bank).") in text
    for row in rows:
        row["arms"][key]["method_selection"]["filter"] = 0.5
    assert "methods_left_out" not in downstream.summarise(d)[key]


def test_the_guard_overview_gives_the_worst_seed_guarded_and_forced():
    rows = [_guard_row(0, 0.70, {"vary": 0.72}, 0.80, 0.79),  # mixed and lost 1 point
            _guard_row(1, 0.70, {"vary": 0.60}, 0.80, 0.74)]  # kept B where mixing would lose 6
    d = {**PROTOCOL, "per_seed": rows}
    d["summary"] = downstream.summarise(d)
    text = report.guard_overview({"cell.json": d})
    assert "over the 1 arms that record it (2 seed-arms): worst seed -1.00 points" in text
    assert "mixed regardless reach -6.00" in text
    assert report.guard_overview({"cell.json": {**d, "summary": downstream.summarise(
        {"per_seed": [_guard_row(0, 0.7, None, 0.8, 0.7)], "long_tailed": False})}}) == ""


def test_the_report_lists_the_arms_with_fewer_seeds_than_their_commands_asked_for(tmp_path):
    path = tmp_path / "downstream_v3_fashion-mnist_50pc.json"
    _write_lane_file(path, {0: {"a": 0.80, "e": 0.84, "cgan:free": 0.79, "aae:free": 0.8},
                            1: {"a": 0.78, "e": 0.83}, 2: {"a": 0.79, "e": 0.83}})
    d = json.loads(path.read_text())
    d["commands"] = ["python benchmarks/downstream.py --sources cgan:free,'cgan[a=1,b=2]:free' --seeds 0,1,2",
                     "python benchmarks/downstream.py --sources aae:free --seeds 0"]  # one seed by design
    text = report.downstream_v3_under_way({path.name: d})
    lines = [line for line in text.splitlines() if line.startswith("| ") and "Cell" not in line]
    assert len(lines) == 2, text
    assert "`cgan` free samples |" in lines[0] and "| 1 of 3 | 0 | 1, 2 |" in lines[0]
    assert "`cgan[a=1,b=2]`" in lines[1] and "| 0 of 3 | none | 0, 1, 2 |" in lines[1]
    for seed in (1, 2):
        d["per_seed"][seed]["arms"]["cgan:free"] = d["per_seed"][seed]["arms"]["cgan[a=1,b=2]:free"] = _arm(0.8)
    d["per_seed"][0]["arms"]["cgan[a=1,b=2]:free"] = _arm(0.8)
    assert report.downstream_v3_under_way({path.name: d}) == ""


def test_the_report_reads_each_generator_against_the_cgan_over_the_seeds_both_measured(tmp_path):
    path = tmp_path / "downstream_v3_fashion-mnist_50pc.json"
    _write_lane_file(path, {0: {"a": 0.80, "cgan:free": 0.79, "ddpm:free@bank": 0.82, "aae:free": 0.80},
                            1: {"a": 0.78, "cgan:free": 0.77, "ddpm:free@bank": 0.78},
                            2: {"a": 0.79, "ddpm:free@bank": 0.90}})  # no cgan at seed 2: not paired
    d = json.loads(path.read_text())
    text = report.downstream_v3_against_reference({path.name: d})
    lines = [line for line in text.splitlines() if line.startswith("| ") and "Cell" not in line]
    # ddpm - cgan at seeds 0 and 1: +3 and +1 points; the aae shares one seed, too few to pair
    assert len(lines) == 1 and "`ddpm` free samples" in lines[0] and "| +2.0 [-10.7, +14.7] (2/2) |" in lines[0], text
    d["per_seed"][1]["arms"].pop("cgan:free")
    assert report.downstream_v3_against_reference({path.name: d}) == ""


def test_the_report_lists_the_seeds_whose_arm_has_no_validation_score_yet(tmp_path):
    path = tmp_path / "downstream_v3_fashion-mnist_50pc.json"
    _write_lane_file(path, {0: {"a": 0.80, "ddpm:free@bank": 0.82, "cgan:free": 0.79},
                            1: {"a": 0.78, "ddpm:free@bank": 0.80, "cgan:free": 0.77}})
    d = json.loads(path.read_text())
    d["per_seed"][1]["arms"]["ddpm:free@bank"]["method_selection"] = {"plain": 0.7}
    for seed in (0, 1):
        d["per_seed"][seed]["arms"]["cgan:free"]["method_selection"] = {"plain": 0.7}
    d["summary"] = downstream.summarise(d)
    text = report.downstream_v3_validation_to_add({path.name: d})
    lines = [line for line in text.splitlines() if line.startswith("| ") and "Cell" not in line]
    assert len(lines) == 1 and "`ddpm` free samples, from a bank made once | 0 |" in lines[0], text
    assert "--validate-measured" in text
    # A seed whose generator trained again was not the measured one: named with why, not "to add".
    d["per_seed"][0]["arms"]["ddpm:free@bank"]["validation_refused"] = {
        "git_commit": "new", "reason": "the generator trained now makes other rows: diversity_pixels 0.9 where "
                                       "the arm's rows had 0.8"}
    text = report.downstream_v3_validation_to_add({path.name: d})
    assert not [line for line in text.splitlines() if line.startswith("| ")], text
    assert ("- fashion-mnist 50 per class, B + `ddpm` free samples, from a bank made once, seed 0: the generator "
            "trained now makes other rows: diversity_pixels 0.9 where the arm's rows had 0.8") in text.splitlines()
    del d["per_seed"][0]["arms"]["ddpm:free@bank"]["validation_refused"]
    d["per_seed"][0]["arms"]["ddpm:free@bank"]["mode_selection"] = {"vary@0.5": 0.7}
    assert report.downstream_v3_validation_to_add({path.name: d}) == ""


def test_each_validation_run_prints_a_line_and_the_choice_gets_their_mean(capsys):
    """Selection is most of a seed's time: a lane's log shows each split's run as it ends."""
    from types import SimpleNamespace

    scores = iter([0.5, 0.7, 0.9])
    arms = SimpleNamespace(seed=3, splits=[("fit0", "val0"), ("fit1", "val1"), ("fit2", "val2")],
                           train=lambda fit, **options: (fit, options), score_val=lambda model, val: next(scores))
    kept = []
    mean = downstream.Arms.validate(arms, lambda fit, i: {"split": i}, keep=kept, label="variation vary+soft")
    assert mean == pytest.approx(0.7)
    assert kept == [("fit0", {"split": 0}), ("fit1", {"split": 1}), ("fit2", {"split": 2})]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "seed 3 validation variation vary+soft split 1/3: 0.5000", "seed 3 validation variation vary+soft split 2/3: 0.7000",
        "seed 3 validation variation vary+soft split 3/3: 0.9000"]


def test_a_killed_arm_reads_its_finished_validation_runs_back_from_the_journal(tmp_path, monkeypatch):
    """A lane killed mid-arm lost every validation run of the arm (two hours and more for a ddpm
    variation arm); run again, it trains only the splits its journal lacks and gets the scores an
    uninterrupted run gets. Another seed, setting or candidate reads nothing."""
    from types import SimpleNamespace

    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path))
    cell, args = _tiny_cell_and_args()
    options = lambda fit, i: downstream.baseline_options("f", 3)  # noqa: E731
    key = "cgan:free on (a): free plain"
    whole = downstream.Arms(cell, None, 0, SimpleNamespace(**vars(args), no_validation_journal=True)).validate(
        options, journal_key=key)
    assert not (tmp_path / "validation-scores").exists()  # off: nothing written

    killed = downstream.Arms(cell, None, 0, args)
    real_train, trained = killed.train, []

    def train_then_die(fit, **kw):
        if trained:
            raise KeyboardInterrupt  # the session's stop, in the second split's run
        trained.append(fit)
        return real_train(fit, **kw)
    killed.train = train_then_die
    with pytest.raises(KeyboardInterrupt):
        killed.validate(options, journal_key=key)

    again = downstream.Arms(cell, None, 0, args)
    real_train, trained = again.train, []
    again.train = lambda fit, **kw: trained.append(fit) or real_train(fit, **kw)
    assert again.validate(options, journal_key=key) == pytest.approx(whole, abs=0)
    assert [len(fit) for fit in trained] == [12, 12]  # splits 2 and 3 only
    assert again.journal.get(key.replace("plain", "filter"), 0) is None  # another candidate
    assert downstream.Arms(cell, None, 1, args).journal.get(key, 0) is None  # another seed
    assert downstream.Arms(cell, None, 0, SimpleNamespace(**{**vars(args), "ratio": 1.0})).journal.get(key, 0) is None
    zoo = tmp_path / "zoo"  # retrained zoo weights: an init_from arm's rows change, so do its scores
    zoo.mkdir()
    (zoo / "model.safetensors").write_bytes(b"weights")
    monkeypatch.setenv("AUGMENTGEN_PRETRAINED_DIR", str(zoo))
    downstream.Arms(cell, None, 0, args).journal.put(key, 0, 0.5)
    assert downstream.Arms(cell, None, 0, args).journal.get(key, 0) == 0.5
    (zoo / "model.safetensors").write_bytes(b"retrained")
    assert downstream.Arms(cell, None, 0, args).journal.get(key, 0) is None


def test_two_lanes_writing_one_seeds_journal_keep_each_others_scores(tmp_path, monkeypatch):
    """Two lanes of one commit running other arms of the same cell and seed share the journal file:
    each write keeps what the other wrote since it was read."""
    from validation_journal import ValidationJournal

    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path))
    context = {"dataset": "fashion-mnist", "budget": "lt100", "seed": 1}
    ddpm_lane, cgan_lane = ValidationJournal(context), ValidationJournal(context)
    ddpm_lane.put("ddpm:variation@bank: vary 0.3", 0, 0.61)
    cgan_lane.put("cgan:free+filter: filter", 0, 0.58)
    ddpm_lane.put("ddpm:variation@bank: vary 0.3", 1, 0.63)
    again = ValidationJournal(context)
    assert (again.get("ddpm:variation@bank: vary 0.3", 0), again.get("ddpm:variation@bank: vary 0.3", 1),
            again.get("cgan:free+filter: filter", 0)) == (0.61, 0.63, 0.58)


def _tiny_cell_and_args():
    """A 3-class cell of 6 images a class and the downstream arguments of a seconds-long run."""
    from types import SimpleNamespace

    import protocol

    from tests.conftest import make_images

    cell = protocol.Cell("fashion-mnist", "50pc", make_images(n_per_class=6, num_classes=3), None, None)
    return cell, SimpleNamespace(dataset="fashion-mnist", budget="50pc", epochs=1.0, min_steps=2, clf_batch_size=8,
                                 clf_width=4, ratio=0.5, gen_steps=2, bank_per_image=1, selection_folds=3, sources=[])


def test_a_resumed_choice_of_b_reads_its_scores_and_trains_a_teacher_fold_only_when_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(tmp_path))
    cell, args = _tiny_cell_and_args()

    def choosing(arms):
        arms.baselines, arms.needs_teacher = ["a"], True
        return arms
    first = choosing(downstream.Arms(cell, None, 0, args))
    chosen = first.choose_baseline()
    resumed = choosing(downstream.Arms(cell, None, 0, args))
    real_train, trained = resumed.train, []
    resumed.train = lambda fit, **kw: trained.append(fit) or real_train(fit, **kw)
    assert resumed.choose_baseline() == chosen and trained == []
    teacher = resumed.fold_teacher("a", 1)
    assert len(trained) == 1
    for a, b in zip(teacher.state_dict().values(), first.fold_models["a"][1].state_dict().values()):
        assert torch.equal(a, b)


def test_the_leak_check_scores_each_split_with_its_own_clean_and_size_matched_generators(monkeypatch):
    """leaked: the subset's generator on every split; clean: split i's, trained on its fit part;
    matched: split i's, trained on as many images with the validation images among them."""
    from types import SimpleNamespace

    import validation_leak

    trained = []
    monkeypatch.setattr(validation_leak, "train_generator",
                        lambda family, data, **kw: trained.append((family, data, kw["seed"])) or f"gen({data})")
    monkeypatch.setattr(validation_leak, "size_matched", lambda fit, val, seed: f"{fit}-{val}+{val}")
    used = []

    def validate(options, label="", journal_key=None):
        used.append((label, [options(fit, i)["synthetic_mix"] for i, (fit, _) in enumerate(arms.splits)]))
        return {"leaked": 0.8, "clean": 0.7, "matched": 0.78}[label.split()[-1]]

    arms = SimpleNamespace(seed=4, k=10, gen_steps=600, splits=[("fit0", "val0"), ("fit1", "val1")], generator_cache=False,
                           train_generator=lambda family, options: ("gen(subset)", 1.0), validate=validate,
                           candidate_mix=lambda gen, kind, bank, candidate, fit, teacher: (gen, candidate, fit))
    got = validation_leak.measure(arms, "aae:variation", "a", 0.75, {"mode": "vary"})
    assert trained == [("aae", "fit0", 4), ("aae", "fit1", 4), ("aae", "fit0-val0+val0", 4),
                       ("aae", "fit1-val1+val1", 4)]
    c = ({"mode": "vary"}, "plain")
    assert used == [("aae:variation leaked", [("gen(subset)", c, "fit0"), ("gen(subset)", c, "fit1")]),
                    ("aae:variation clean", [("gen(fit0)", c, "fit0"), ("gen(fit1)", c, "fit1")]),
                    ("aae:variation matched", [("gen(fit0-val0+val0)", c, "fit0"), ("gen(fit1-val1+val1)", c, "fit1")])]
    assert (got["leaked"], got["clean"], got["matched"]) == (0.8, 0.7, 0.78)
    assert (got["mixes_leaked"], got["mixes_clean"], got["mixes_matched"]) == (True, False, True)
    # A resumed record keeps its scores and measures only what it lacks.
    used.clear()
    again = validation_leak.measure(arms, "aae:variation", "a", 0.75, {"mode": "vary"},
                                    done={"leaked": 0.81, "clean": 0.7, "mixes_leaked": True, "mixes_clean": False,
                                          "seconds": 10.0})
    assert [label for label, _ in used] == ["aae:variation matched"]
    assert (again["leaked"], again["matched"]) == (0.81, 0.78) and again["seconds"] >= 10.0
    # With the cache on, each fold generator is handed over with its training seconds, which
    # decide whether the campaign folder keeps it.
    handed = []
    monkeypatch.setattr(validation_leak, "entry_key", lambda family, options, steps, seed, data, train_fn: data)
    monkeypatch.setattr(validation_leak, "cached_generator",
                        lambda key, train, cell: handed.append((key, *train())) or handed[-1][1:])
    arms.generator_cache, arms.cell = True, SimpleNamespace(dataset="fashion-mnist", budget="10pc")
    validation_leak.measure(arms, "aae:variation", "a", 0.75, {"mode": "vary"})
    assert [key for key, *_ in handed] == ["fit0", "fit1", "fit0-val0+val0", "fit1-val1+val1"]
    assert all(isinstance(seconds, float) and seconds >= 0 for _, _, seconds, _ in handed)
    # With which validation images B got right, each generator's lead is read in standard errors
    # and the library's guard decides on it: 10 images, the leaked rows win 4 and lose none (z = 2),
    # the clean ones win 2 and lose 1 (z = 0.58): the guard mixes only with the leaked generator.
    b_right = "0000" + "1" * 6
    arms.correct = {"leak aae:variation leaked on (a)": "1" * 10, "leak aae:variation clean on (a)": "1100" + "0" + "1" * 5}
    arms.val_labels, arms.cell.long_tailed = "0" * 10, False
    got = validation_leak.measure(arms, "aae:variation", "a", 0.75, {"mode": "vary"}, b_correct=b_right)
    assert got["z_leaked"] == pytest.approx(2.0) and got["z_mixes_leaked"]
    assert got["z_clean"] == pytest.approx(1 / 3**0.5) and not got["z_mixes_clean"]
    assert "z_matched" not in got  # its images were not recorded: no figure rather than a wrong one
    assert "z_leaked" not in validation_leak.measure(arms, "aae:variation", "a", 0.75, {"mode": "vary"})


def test_the_size_matched_data_holds_the_validation_images_and_as_many_of_each_class_as_the_fit_part():
    import torch
    import validation_leak

    from augmentgen.data import LabelledImages

    labels = torch.tensor([0] * 8 + [1] * 4)
    fit = LabelledImages(torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 1, 2, 2).clone(), labels)
    val = LabelledImages(torch.full((3, 1, 2, 2), 200, dtype=torch.uint8), torch.tensor([0, 0, 1]))
    matched = validation_leak.size_matched(fit, val, seed=0)
    assert matched.class_counts == fit.class_counts
    assert int((matched.images == 200).all(dim=3).all(dim=2).all(dim=1).sum()) == 3  # every validation image
    kept = [int(v) for v in matched.images[:, 0, 0, 0] if v != 200]
    assert len(set(kept)) == 9 and set(kept) < set(range(12))
    assert sum(v < 8 for v in kept) == 6 and sum(v >= 8 for v in kept) == 3  # fit less 2 of class 0, 1 of class 1
    assert kept == [int(v) for v in validation_leak.size_matched(fit, val, seed=0).images[:9, 0, 0, 0]]  # seeded


def test_the_leak_summary_pairs_the_seeds_and_counts_the_guards_flips():
    import validation_leak

    def row(seed, leaked, clean, matched, b):
        return {"seed": seed, "sources": {"cgan:free": {"leaked": leaked, "clean": clean, "matched": matched, "b": b,
                                                        "mixes_leaked": leaked > b, "mixes_clean": clean > b}}}
    rows = [row(0, 0.80, 0.70, 0.78, 0.75), row(1, 0.72, 0.70, 0.70, 0.71), row(2, 0.60, 0.62, 0.61, 0.65)]
    got = validation_leak.summarise(rows)["cgan:free"]
    assert got["leak"]["differences"] == pytest.approx([0.08, 0.0, -0.01])
    assert got["size"]["differences"] == pytest.approx([0.02, 0.02, -0.01])
    assert got["total"]["n_positive"] == 2 and got["total"]["mean"] == pytest.approx(0.1 / 3)
    assert got["clean_vs_b"]["differences"] == pytest.approx([-0.05, -0.01, -0.03])
    assert got["guard_flips"] == 2 and got["seeds"] == [0, 1, 2]
    del rows[0]["sources"]["cgan:free"]["matched"]  # a seed measured before the size-matched generator
    assert validation_leak.summarise(rows)["cgan:free"]["leak"]["n"] == 2
    assert got["z_guard_seeds"] == 0 and got["z_guard_flips"] == 0  # measured before the images were kept
    rows[1]["sources"]["cgan:free"].update(z_mixes_leaked=True, z_mixes_clean=False)
    rows[2]["sources"]["cgan:free"].update(z_mixes_leaked=False, z_mixes_clean=False)
    got = validation_leak.summarise(rows)["cgan:free"]
    assert (got["z_guard_flips"], got["z_guard_seeds"]) == (1, 2)


def test_the_leak_check_measures_a_fixed_candidate_and_finds_the_cells_own_score_of_it():
    import validation_leak

    assert validation_leak.candidate_for("variation", "vary") == {"mode": "vary"}
    assert validation_leak.candidate_for("variation", "vary@0.5") == {"mode": "vary", "strength": 0.5}
    assert validation_leak.candidate_for("free", "vary") is None
    arm = {"mode": "interpolate", "mode_selection": {"vary": 0.93, "interpolate": 0.95, "vary@0.5": 0.9}}
    assert validation_leak.recorded_score(arm, {"mode": "vary"}) == 0.93  # not the chosen mode's 0.95
    assert validation_leak.recorded_score(arm, {"mode": "vary", "strength": 0.5}) == 0.9
    assert validation_leak.recorded_score({"method_selection": {"plain": 0.8, "filter": 0.9}}, None) == 0.8
    assert validation_leak.recorded_score({"acc": 0.8}, None) is None
    assert validation_leak.recorded_score(None, {"mode": "vary"}) is None


def test_the_report_gives_the_leak_table_in_points_with_the_seeds_commits():
    import validation_leak

    row = {"seed": 0, "sources": {"aae:variation": {"leaked": 0.79, "clean": 0.77, "matched": 0.78, "b": 0.77,
                                                   "mixes_leaked": True, "mixes_clean": False,
                                                   "git_commit": "abcdef1234567890", "cpu": "CPU X"}}}
    rows = [row, {**row, "seed": 1}]
    d = {"dataset": "fashion-mnist", "budget": "50pc", "mode": "vary", "gen_steps": 600, "selection_folds": 1,
         "per_seed": rows, "summary": validation_leak.summarise(rows), "commands": ["python x.py"]}
    text = report.validation_leak_section("validation_leak_fashion-mnist_50pc.json", d)
    assert "| `aae:variation` | 2 | +1.0 [+1.0, +1.0] (2/2) | +1.0 [+1.0, +1.0] (2/2) | +2.0 [+2.0, +2.0] (2/2) |" in text
    assert "| +2.0 [+2.0, +2.0] (2/2) | +0.0 [+0.0, +0.0] (0/2) | 2/2 |" in text  # vs B; the guard flipped twice
    assert "commit: `abcdef123456`" in text and "CPU X" in text and "`python x.py`" in text
    assert "Guard flips (z > 1)" not in text  # no seed recorded which images each got right
    rows[1] = {**row, "seed": 1, "sources": {"aae:variation": {**row["sources"]["aae:variation"],
                                                               "z_mixes_leaked": False, "z_mixes_clean": False}}}
    text = report.validation_leak_section("x.json", {**d, "per_seed": rows, "summary": validation_leak.summarise(rows)})
    assert "| Guard flips | Guard flips (z > 1) |" in text and "| 2/2 | 0/1 |" in text
    assert "with the guard `augmentgen eval` applies (a lead of more than 1 standard error" in text


def test_a_resumed_leak_record_keeps_the_commits_of_its_earlier_scores_and_the_report_lists_them(monkeypatch):
    import validation_leak

    monkeypatch.setattr(validation_leak, "git_commit", lambda: "bbbbbbbbbbbbbbbb")
    assert validation_leak.provenance_of(None) == {"git_commit": "bbbbbbbbbbbbbbbb", "git_commits": ["bbbbbbbbbbbbbbbb"]}
    resumed = validation_leak.provenance_of({"leaked": 0.8, "git_commit": "aaaaaaaaaaaaaaaa"})
    assert resumed["git_commits"] == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
    line = report.provenance("x.json", {"per_seed": [{"seed": 0, "arms": {"aae:variation": resumed}}]})
    assert "commit: `aaaaaaaaaaaa, bbbbbbbbbbbb`" in line


def test_the_cache_key_follows_the_training_code_not_the_data_loading_code(tmp_path, monkeypatch):
    """A clearer refusal in data/sources.py once discarded every cached generator of the campaign;
    what the loaders decide is the data, whose sha256 the key holds. The batch order (labelled.py),
    a family's module and the benchmark's own training function do decide the weights."""

    import generator_cache

    package = tmp_path / "augmentgen"
    shutil.copytree(generator_cache.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__", "embedded"))
    monkeypatch.setattr(generator_cache, "PACKAGE", package)
    sha = lambda family="cgan", fn=downstream.train_generator: generator_cache.training_code_sha256(fn, family)  # noqa: E731
    before, ddpm_before = sha(), sha("ddpm")
    for loader in ("data/sources.py", "data/subsets.py", "data/fingerprints.py", "families/ddpm.py"):
        (package / loader).write_text((package / loader).read_text() + "\n# a clearer refusal\n")
    assert sha() == before  # another family's module does not decide the cgan's weights either
    assert sha("ddpm") != ddpm_before
    for decides in ("data/labelled.py", "families/gan.py", "models/blocks.py", "_seeds.py"):
        edited = package / decides
        text = edited.read_text()
        edited.write_text(text + "\n# changed\n")
        assert sha() != before, decides
        edited.write_text(text)
    assert sha(fn=downstream.parse_source) != before
    (package / "hub/card.py").write_text((package / "hub/card.py").read_text() + "\n# another card\n")
    assert sha() == before  # the hub loads the weights init_from starts from; nothing else
    assert generator_cache.training_code_sha256(downstream.train_generator, "cgan", pretrained=True) != before


def test_the_cache_key_holds_the_weights_init_from_starts_from(tmp_path):
    import generator_cache

    from augmentgen.hub.serialization import save_generator
    from tests.conftest import make_images

    data = make_images(n_per_class=4, num_classes=3)
    start = downstream.train_generator("cgan", data, steps=1, seed=0, options={"generator_width": 8,
                                                                              "discriminator_width": 8})
    save_generator(start, tmp_path / "start")
    key = generator_cache.entry_key("cgan", {"init_from": str(tmp_path / "start")}, 2, 0, data,
                                    train_fn=downstream.train_generator)
    assert key["init_weights_sha256"] == hashlib.sha256((tmp_path / "start/model.safetensors").read_bytes()).hexdigest()
    assert generator_cache.entry_key("cgan", {}, 2, 0, data, train_fn=downstream.train_generator)[
        "init_weights_sha256"] is None
    shipped = generator_cache.init_weights_sha256({"init_from": "augmentgen/cgan-fashion-mnist"})
    assert len(shipped) == 64


def test_a_cached_generator_is_the_trained_one_and_is_found_only_by_its_whole_key(tmp_path, monkeypatch):
    import generator_cache

    from tests.conftest import make_images

    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(tmp_path))
    data = make_images(n_per_class=4, num_classes=3)
    options = {"generator_width": 8, "discriminator_width": 8, "latent_dim": 8}
    trained = []

    def train():
        trained.append(1)
        generator = downstream.train_generator("cgan", data, steps=2, seed=0, options=options)
        return generator, 1.5, {"init_source": None}

    key = generator_cache.entry_key("cgan", options, 2, 0, data, train_fn=downstream.train_generator)
    first, seconds, provenance = generator_cache.cached_generator(key, train)
    again, seconds_again, provenance_again = generator_cache.cached_generator(key, train)
    assert len(trained) == 1 and seconds_again == seconds == 1.5 and "generator_cache" not in provenance
    assert provenance_again["generator_cache"]["train_seconds"] == 1.5
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(first.sample([0, 1, 2], generator=torch.Generator().manual_seed(3)),
                       again.sample([0, 1, 2], generator=torch.Generator().manual_seed(3)))
    # another seed, other data or other training code: trained again
    generator_cache.cached_generator(generator_cache.entry_key("cgan", options, 2, 1, data,
                                                               train_fn=downstream.train_generator), train)
    generator_cache.cached_generator({**key, "data_sha256": "0" * 64}, train)
    generator_cache.cached_generator({**key, "training_code_sha256": "1" * 64}, train)
    assert len(trained) == 4
    generator_cache.cached_generator(key, train, enabled=False)
    assert len(trained) == 5


class _Killed(BaseException):
    """The lane's process dies here (a session's stop: no Ctrl-C, so no checkpoint of its own)."""


def test_a_generator_training_killed_midway_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, monkeypatch):
    """An hour's ddpm killed at a session's stop used to start again from step 0: with a run
    folder it checkpoints every twentieth of its steps and the next lane resumes, to the weights
    an uninterrupted training makes."""
    import generator_cache

    from augmentgen.families.gan import GANStep
    from tests.conftest import make_images

    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(tmp_path / "cache"))
    data = make_images(n_per_class=4, num_classes=3)
    options = {"generator_width": 8, "discriminator_width": 8, "latent_dim": 8}
    straight = downstream.train_generator("cgan", data, steps=40, seed=0, options=options)
    key = generator_cache.entry_key("cgan", options, 40, 0, data, train_fn=downstream.train_generator)
    run_dir = generator_cache.training_dir(key)
    assert run_dir.parent == tmp_path / "cache" / "training" and run_dir.name == generator_cache.key_name(key)

    original = GANStep.__call__

    def killed_at(step):
        calls = {"n": 0}

        def train_step(self, *args):
            calls["n"] += 1
            if calls["n"] == step:
                raise _Killed
            return original(self, *args)
        return train_step

    monkeypatch.setattr(GANStep, "__call__", killed_at(1))  # before its first checkpoint: a start, trained anew
    with pytest.raises(_Killed):
        downstream.train_generator("cgan", data, steps=40, seed=0, options=options, run_dir=run_dir)
    assert run_dir.is_dir() and not (run_dir / "checkpoints").exists()
    monkeypatch.setattr(GANStep, "__call__", killed_at(7))
    with pytest.raises(_Killed):
        downstream.train_generator("cgan", data, steps=40, seed=0, options=options, run_dir=run_dir)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-0000004", "step-0000006"]
    resumed_steps = {"n": 0}

    def counted(self, *args):
        resumed_steps["n"] += 1
        return original(self, *args)

    monkeypatch.setattr(GANStep, "__call__", counted)
    provenance = {}
    resumed = downstream.train_generator("cgan", data, steps=40, seed=0, options=options, provenance=provenance,
                                         run_dir=run_dir)
    assert provenance["resumed_at_step"] == 6 and provenance["loop_seconds"] > 0
    assert resumed_steps["n"] == 34  # from the checkpoint of step 6 on: none of its steps trained again
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert not run_dir.exists()  # trained: its checkpoints go


def test_a_generator_slow_to_train_is_kept_in_the_committed_campaign_folder(tmp_path, monkeypatch):
    """The machine starts empty every session, so a generator that took an hour (a long-tailed
    ddpm) is kept where the repository holds it and read back from there in the next session;
    one quick to train again stays in the user cache."""
    import generator_cache

    from tests.conftest import make_images

    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path / "campaign"))
    data = make_images(n_per_class=4, num_classes=3)
    options = {"generator_width": 8, "discriminator_width": 8, "latent_dim": 8}
    trained = []

    def train_taking(seconds):
        def train():
            trained.append(seconds)
            return downstream.train_generator("cgan", data, steps=2, seed=0, options=options), seconds, {}
        return train

    slow = generator_cache.entry_key("cgan", options, 2, 0, data, train_fn=downstream.train_generator)
    quick = {**slow, "seed": 1}
    generator_cache.cached_generator(slow, train_taking(generator_cache.KEEP_IN_CAMPAIGN_SECONDS),
                                     cell="fashion-mnist lt100")
    generator_cache.cached_generator(quick, train_taking(60.0), cell="fashion-mnist lt100")
    name = generator_cache.key_name
    assert (tmp_path / "campaign" / "generators" / name(slow) / "entry.json").is_file()
    assert not (tmp_path / "cache" / name(slow)).exists()
    assert (tmp_path / "cache" / name(quick) / "entry.json").is_file()
    assert not (tmp_path / "campaign" / "generators" / name(quick)).exists()
    shutil.rmtree(tmp_path / "cache")  # the next session: only the repository's folder is left
    _, seconds, provenance = generator_cache.cached_generator(slow, train_taking(1.0))
    assert seconds == generator_cache.KEEP_IN_CAMPAIGN_SECONDS and "generator_cache" in provenance
    generator_cache.cached_generator(quick, train_taking(60.0))
    assert trained == [generator_cache.KEEP_IN_CAMPAIGN_SECONDS, 60.0, 60.0]


def _pool_of(per_class: int, seed: int = 0):
    """A bank of ``per_class`` random uint8 images a class (3 classes, 1 x 4 x 4)."""
    from augmentgen.mixing import SyntheticPool

    images = torch.randint(0, 256, (3 * per_class, 1, 4, 4), generator=torch.Generator().manual_seed(seed))
    return SyntheticPool.from_images(images.to(torch.uint8), torch.arange(3).repeat_interleave(per_class))


def test_a_bank_slow_to_sample_is_kept_and_read_back_only_by_its_whole_key(tmp_path, monkeypatch):
    """A long-tailed ``ddpm``'s bank took over half an hour to sample, and a lane killed before its
    seed was done sampled it again in the next session: it is kept beside the generator."""
    import generator_cache

    from tests.conftest import make_images

    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path / "campaign"))
    data = make_images(n_per_class=4, num_classes=3)
    generator = generator_cache.entry_key("cgan", {}, 2, 0, data, train_fn=downstream.train_generator)
    key = generator_cache.bank_key(generator, per_class=2, seed=0, batch_size=256)
    fills = []

    def fill(seed=0):
        fills.append(seed)
        return _pool_of(2, seed)

    first, provenance = generator_cache.cached_bank(key, fill)
    again, provenance_again = generator_cache.cached_bank(key, fill)
    assert fills == [0] and provenance == {} and "fill_seconds" in provenance_again["bank_cache"]
    assert torch.equal(again.images, first.images) and again.class_names == first.class_names
    assert (tmp_path / "cache" / "banks" / generator_cache.key_name(key) / "bank.safetensors").is_file()
    # Another seed, size, generator or sampling code: sampled again; off: not read.
    for other in ({**key, "seed": 1}, {**key, "per_class": 3}, {**key, "generator": {**generator, "seed": 1}},
                  {**key, "sampling_code_sha256": "0" * 64}):
        generator_cache.cached_bank(other, fill)
    generator_cache.cached_bank(key, fill, enabled=False)
    assert len(fills) == 6
    # One slow to fill goes where the repository keeps it.
    monkeypatch.setattr(generator_cache, "KEEP_IN_CAMPAIGN_SECONDS", 0.0)
    slow = {**key, "seed": 2}
    generator_cache.cached_bank(slow, fill, cell="fashion-mnist lt100")
    entry = tmp_path / "campaign" / "banks" / generator_cache.key_name(slow) / "entry.json"
    assert json.loads(entry.read_text())["cell"] == "fashion-mnist lt100"


def test_an_arms_free_bank_is_read_back_by_the_next_run_of_its_seed(tmp_path, monkeypatch):
    import generator_cache

    monkeypatch.setenv("AUGMENTGEN_BENCH_CACHE", str(tmp_path / "cache"))
    arms, generator = _bank_arms(tmp_path, monkeypatch)
    key = generator_cache.entry_key("cgan", {}, 2, 0, arms.cell.subset, train_fn=downstream.train_generator)
    arms.generator_keys[id(generator)] = key
    made = arms.free_bank(generator)
    assert arms.bank_provenance[id(generator)] == {}
    again, _ = _bank_arms(tmp_path, monkeypatch)
    again.generator_keys[id(generator)] = key
    monkeypatch.setattr(generator, "sample", lambda *a, **kw: pytest.fail("sampled again"))
    read = again.free_bank(generator)
    assert torch.equal(read.images, made.images) and read.per_class == made.per_class == 6
    assert "bank_cache" in again.bank_provenance[id(generator)]


def test_the_campaign_folder_lists_its_entries_and_removes_a_finished_cells_only_when_told(tmp_path, monkeypatch, capsys):
    import campaign
    import generator_cache
    from validation_journal import ValidationJournal

    from tests.conftest import make_images

    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path))
    data = make_images(n_per_class=4, num_classes=3)
    options = {"generator_width": 8, "discriminator_width": 8, "latent_dim": 8}
    slow = generator_cache.entry_key("cgan", options, 2, 0, data, train_fn=downstream.train_generator)
    generator_cache.cached_generator(
        slow, lambda: (downstream.train_generator("cgan", data, steps=2, seed=0, options=options), 1000.0, {}),
        cell="fashion-mnist lt100")
    for budget, seed in (("lt100", 1), ("50pc", 0)):
        ValidationJournal({"dataset": "fashion-mnist", "budget": budget, "seed": seed}).put("baseline (a)", 0, 0.5)
    monkeypatch.setattr(generator_cache, "KEEP_IN_CAMPAIGN_SECONDS", 0.0)  # every bank is slow to fill
    bank = generator_cache.bank_key(slow, per_class=2, seed=0, batch_size=256)
    generator_cache.cached_bank(bank, lambda: _pool_of(2), cell="fashion-mnist lt100")
    capsys.readouterr()  # the training's summary
    campaign.main([])
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 5 and listed[-1].startswith("4 entries")
    assert any("cgan seed 0, 2 steps, 1000 s to train" in line for line in listed)
    assert any("bank of cgan seed 0, 2 a class" in line for line in listed)
    campaign.main(["--remove", "fashion-mnist", "lt100"])  # a dry run
    assert "pass --yes" in capsys.readouterr().out and len(campaign.entries(tmp_path)) == 4
    campaign.main(["--remove", "fashion-mnist", "lt100", "--yes"])
    assert [e.cell for e in campaign.entries(tmp_path)] == ["fashion-mnist 50pc"]
    with pytest.raises(SystemExit, match="no entry of the cell 'mnist 10pc'"):
        campaign.main(["--remove", "mnist", "10pc"])


def test_the_coverage_sweep_names_and_builds_a_ddpm_with_config_options(monkeypatch):
    """``ddpm_coverage.py --ddpm 'ddpm[...]'`` measures a ddpm with other settings (a learning rate,
    Min-SNR weighting) in an entry of its own, named canonically."""
    import argparse
    from types import SimpleNamespace

    import ddpm_coverage

    parser = argparse.ArgumentParser()
    assert ddpm_coverage.ddpm_name(parser, "ddpm") == "ddpm"
    assert ddpm_coverage.ddpm_name(parser, "ddpm[min_snr_gamma=5,learning_rate=1e-3]") == \
        "ddpm[learning_rate=0.001,min_snr_gamma=5.0]"
    assert ddpm_coverage.ddpm_name(parser, "ddpm[learning_rate=2e-4]") == "ddpm"  # the default: the same entry
    for bad in ("cgan", "ddpm[init_from=augmentgen/cgan-mnist]", "ddpm[learning_rat=1]"):
        with pytest.raises(SystemExit):
            ddpm_coverage.ddpm_name(parser, bad)

    built = []

    class Trainer:
        def __init__(self, config, training, out, snapshot_scorer):
            built.append(config)
            raise KeyboardInterrupt  # the config is all this test reads

    monkeypatch.setattr(ddpm_coverage, "Trainer", Trainer)
    from tests.conftest import make_images
    cell = SimpleNamespace(subset=make_images(n_per_class=2, num_classes=3))
    with pytest.raises(KeyboardInterrupt):
        ddpm_coverage.measure_family("ddpm[learning_rate=0.001,min_snr_gamma=5.0]", 4, 2, [1.0], cell, None,
                                     SimpleNamespace(seed=0), out=None)
    assert (built[0].learning_rate, built[0].min_snr_gamma, built[0].num_classes) == (0.001, 5.0, 3)


def test_two_coverage_lanes_keep_each_others_entries_and_refuse_another_subset(tmp_path):
    """Two ``ddpm_coverage.py`` runs of other ``--ddpm`` settings share one file: each save keeps
    the entries the other wrote since (its own older copies of them included), and a run under
    other settings (another seed's subset) is refused rather than mixed in."""
    from types import SimpleNamespace

    import ddpm_coverage

    out = tmp_path / "coverage.json"
    args = SimpleNamespace(dataset="fashion-mnist", budget="50pc", seed=0, per_class=30, epochs=100.0)
    assert ddpm_coverage.existing_results(out, args) is None
    header = {"dataset": "fashion-mnist", "budget": "50pc", "seed": 0, "per_class": 30, "classifier_epochs": 100.0}
    lane_a, lane_b = {**header, "families": {}}, {**header, "families": {}}
    ddpm_coverage.save_family(out, lane_a, "ddpm[min_snr_gamma=5.0]", {"partial": True, "records": [1]})
    ddpm_coverage.save_family(out, lane_b, "ddpm[learning_rate=0.001]", {"partial": True, "records": [2]})
    ddpm_coverage.save_family(out, lane_b, "ddpm[learning_rate=0.001]", {"records": [2, 3]})
    ddpm_coverage.save_family(out, lane_a, "ddpm[min_snr_gamma=5.0]", {"records": [1, 4]})
    families = json.loads(out.read_text())["families"]
    assert families == {"ddpm[min_snr_gamma=5.0]": {"records": [1, 4]}, "ddpm[learning_rate=0.001]": {"records": [2, 3]}}
    assert ddpm_coverage.existing_results(out, args)["families"] == families
    with pytest.raises(SystemExit, match="other settings.*'seed': \\(0, 1\\).*--out"):
        ddpm_coverage.existing_results(out, SimpleNamespace(**{**vars(args), "seed": 1}))


def test_a_coverage_run_killed_mid_training_resumes_from_its_run_folder_with_an_uninterrupted_runs_figures(
        tmp_path, monkeypatch):
    """``ddpm_coverage.py --run-dir``: a run killed after scoring a snapshot but before its
    checkpoint resumes from the checkpoint before, scores that snapshot again and ends with the
    snapshots, scores and grids of a run never killed (a training longer than a session)."""
    from types import SimpleNamespace

    import ddpm_coverage
    import time_to_grid

    class WeightScore:  # the snapshot score as a function of the weights: equal runs score alike
        def __init__(self, data, *, seed, device):
            pass

        def __call__(self, generator):
            with torch.no_grad():
                return {"score": float(sum(p.double().abs().sum() for p in generator.parameters()))}

    monkeypatch.setattr(time_to_grid, "TrainingDataScore", WeightScore)
    monkeypatch.setattr(ddpm_coverage, "samples_at", lambda *a: None)
    monkeypatch.setattr(ddpm_coverage, "coverage_figures", lambda *a: {"cas": 0.5})
    from tests.conftest import make_images
    cell = SimpleNamespace(subset=make_images(n_per_class=4, num_classes=3))
    args = SimpleNamespace(seed=0, device="cpu", per_class=2, tolerance=0.05)

    def run(out, run_dir=None, partial=None, kill_at=None, saved=None):
        def progress(entry):
            if saved is not None:
                saved.update(entry)  # what the results file holds
            if entry["snapshots"][-1]["step"] == kill_at:
                raise RuntimeError("killed")  # after the entry's save, before the trainer's checkpoint
        return ddpm_coverage.measure_family("cgan", 6, 2, [1.0], cell, None, args, out=out, progress=progress,
                                            run_dir=run_dir, partial=partial)

    whole = run(tmp_path / "whole.json")
    out, run_dir, saved = tmp_path / "killed.json", tmp_path / "run", {}
    with pytest.raises(RuntimeError, match="killed"):
        run(out, run_dir=run_dir, kill_at=4, saved=saved)
    assert [s["step"] for s in saved["snapshots"]] == [2, 4]  # step 4 scored, its checkpoint never written
    resumed = run(out, run_dir=run_dir, partial=saved)
    assert resumed["resumed_at_steps"] == [2]
    assert [s["step"] for s in resumed["snapshots"]] == [2, 4, 6]
    assert [s["score"] for s in resumed["snapshots"]] == [s["score"] for s in whole["snapshots"]]
    assert [r["step"] for r in resumed["records"]] == [2, 4, 6]
    assert (tmp_path / resumed["grids"]["path"]).read_bytes() == (tmp_path / whole["grids"]["path"]).read_bytes()
    with pytest.raises(SystemExit, match="not one run's"):  # a run folder without the entry it goes with
        ddpm_coverage.measure_family("cgan", 8, 2, [1.0], cell, None, args, out=out, run_dir=run_dir, partial=None)


def test_a_coverage_run_folder_inside_the_repository_is_refused(monkeypatch, capsys):
    """Its checkpoints hold Accelerate's pickled states: they belong in the user cache, not in git."""
    import ddpm_coverage

    monkeypatch.setattr(sys, "argv", ["ddpm_coverage.py", "--run-dir", str(ddpm_coverage.RESULTS / "run")])
    with pytest.raises(SystemExit) as exit_info:
        ddpm_coverage.main()
    assert exit_info.value.code == 2 and "inside the repository" in capsys.readouterr().err


def test_the_report_says_whether_a_coverage_run_converged_or_is_under_way():
    snapshots = [{"step": 1000, "score": 0.01, "train_seconds": 500.0}, {"step": 2000, "score": 0.02, "train_seconds": 990.4}]
    partial = {"steps": 30000, "snapshots": snapshots, "best_score": 0.02, "partial": True, "resumed_at_steps": [1000]}
    assert report.snapshot_convergence_text("ddpm", partial) == (
        "`ddpm`: 2 snapshots scored to step 2000 (990.4 s of training), best score 0.0200; under way to step 30000, "
        "resumed at steps 1000.")
    done = {**partial, "partial": False, "converged": True, "converged_step": 1000, "converged_train_seconds": 500.0}
    assert report.snapshot_convergence_text("ddpm", done).endswith("converged at step 1000 (500.0 s of training).")
    assert report.snapshot_convergence_text("ddpm", {**done, "converged": False}).endswith("not converged.")


def test_the_guard_keeps_b_where_the_rows_tie_with_it_up_to_float_noise():
    """MNIST 10/class seed 0: B 0.9299999833, the cgan's rows 0.9299999952 on validation, both 93 of
    100 images; read as "beats B", the guarded figure mixed and lost 1.37 points there."""
    row = {"best_baseline": "a", "baseline_selection": {"a": 0.9299999833106994},
           "arms": {"cgan:free": {"method_selection": {"plain": 0.9299999952316285}}}}
    assert downstream.validation_says_mix(row, "cgan:free") is False
    row["arms"]["cgan:free"]["method_selection"]["plain"] = 0.94
    assert downstream.validation_says_mix(row, "cgan:free") is True


def _z_row(seed: int, won: int, lost: int, b_acc: float, arm_acc: float, labels: str | None = None) -> dict:
    """A seed whose arm got ``won`` validation images right that B got wrong and ``lost`` the other way,
    out of 20 (``labels``: their classes)."""
    mine = "1" * won + "0" * lost + "1" * (10 - won - lost) + "0" * 10
    b = "0" * won + "1" * lost + "1" * (10 - won - lost) + "0" * 10
    arm = {"acc": arm_acc, "validation_correct": mine, "baseline_validation_correct": b,
           "validation_labels": labels or "0" * 10 + "1" * 10}
    return {"seed": seed, "best_baseline": "a", "baseline_selection": {"a": 0.5},
            "arms": {"a": {"acc": b_acc}, "cgan:free": arm}}


def test_the_library_guard_mixes_only_on_a_validation_lead_of_more_than_one_standard_error():
    """MNIST 10/class seed 4 mixed on 95 of 100 validation images against B's 94 and lost 1.89 points:
    three won and two lost (the fewest its folds allow) is z = 0.45, which the guard `augmentgen eval`
    now applies keeps at B."""
    rows = [_z_row(0, won=3, lost=2, b_acc=0.95, arm_acc=0.93),  # z 0.45: B kept, 0 not -2
            _z_row(1, won=4, lost=0, b_acc=0.90, arm_acc=0.91),  # z 2: mixed, +1
            _z_row(2, won=1, lost=0, b_acc=0.90, arm_acc=0.80)]  # z 1, not more: B kept, 0 not -10
    assert [downstream.z_guard_says_mix(r, "cgan:free", False) for r in rows] == [False, True, False]
    summary = downstream.summarise({"per_seed": rows, "long_tailed": False})["cgan:free"]
    assert summary["z_guard_mixed"] == {"0": False, "1": True, "2": False} and summary["z_guard_min"] == 1.0
    assert summary["z_guarded_vs_best_baseline"]["differences"] == pytest.approx([0.0, 0.01, 0.0])
    # The old guard (any lead of the mean score) has no score to read here; the new one stands alone.
    assert "guarded_vs_best_baseline" not in summary
    # Long-tailed cells weigh each image by its class: the lone class-1 image counts half the score.
    lt = _z_row(3, won=1, lost=0, b_acc=0.9, arm_acc=0.9, labels="1" + "0" * 19)
    assert downstream.z_guard_says_mix(lt, "cgan:free", True) is False  # one image still z = 1
    lt["arms"]["cgan:free"]["baseline_validation_correct"] = "00" + lt["arms"]["cgan:free"]["baseline_validation_correct"][2:]
    assert downstream.z_guard_says_mix(lt, "cgan:free", True) is True  # won 2 (one rare), lost 0: z 1.05
    # An arm measured before the images were recorded has no such figure.
    old = _z_row(4, 3, 0, 0.9, 0.9)
    del old["arms"]["cgan:free"]["baseline_validation_correct"]
    assert downstream.z_guard_says_mix(old, "cgan:free", False) is None
    assert "z_guarded_vs_best_baseline" not in downstream.summarise({"per_seed": [old], "long_tailed": False})[
        "cgan:free"]


def test_the_report_gives_the_library_guards_figure_beside_the_old_one():
    rows = [_z_row(0, won=3, lost=2, b_acc=0.95, arm_acc=0.93), _z_row(1, won=4, lost=0, b_acc=0.90, arm_acc=0.91)]
    d = {**PROTOCOL, "per_seed": rows}
    d["summary"] = downstream.summarise(d)
    text = report.downstream_v3_section("cell.json", d)
    assert ("`cgan:free` with the guard `augmentgen eval` applies (mixed only on a validation lead of more than 1 "
            "standard error, McNemar's z over the validation images), over the seeds that record each image: vs B "
            "+0.5 [") in text and "mixed at 1 of 2." in text
    overview = report.z_guard_overview({"cell.json": d})
    assert overview == (" With the guard `augmentgen eval` applies (mixed only on a lead of more than 1 standard "
                        "error over the same validation images), over the 2 seed-arms that record each image: "
                        "mixed at 1, worst seed +0.00 points against B, where the same seed-arms mixed regardless "
                        "reach -2.00.")


def test_a_validation_run_keeps_which_images_it_got_right_and_reads_them_back(tmp_path, monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path))
    cell, args = _tiny_cell_and_args()
    options = lambda fit, i: downstream.baseline_options("a", 3)  # noqa: E731
    first = downstream.Arms(cell, None, 0, args)
    models = []
    first.validate(options, keep=models, journal_key="baseline (a)")
    right = first.correct["baseline (a)"]
    vals = [val for _, val in first.splits]
    assert right == "".join(downstream.images_right(m, v) for m, v in zip(models, vals))
    assert len(right) == len(first.val_labels) == len(cell.subset)  # 3 folds: every image validates once
    assert first.val_labels == "".join(str(c) for v in vals for c in v.labels.tolist())
    again = downstream.Arms(cell, None, 0, args)
    again.train = lambda fit, **kw: pytest.fail("read from the journal, not trained")
    again.validate(options, journal_key="baseline (a)")
    assert again.correct["baseline (a)"] == right
    assert again.baseline_correct("a") == right  # B of this run: no second validation
    # A seed whose B was chosen in an earlier run validates B again, once, for the guard.
    fresh = downstream.Arms(cell, None, 0, SimpleNamespace(**vars(args), no_validation_journal=True))
    assert fresh.baseline_correct("a") == right and "baseline (a)" in fresh.correct
    key = downstream.candidate_key("cgan:free", "free", "a", (None, "plain"))
    assert fresh.guard_record("cgan:free", "free", "a", (None, "plain")) == {}  # the candidate was not validated
    fresh.correct[key] = "1" * len(right)
    assert fresh.guard_record("cgan:free", "free", "a", (None, "plain")) == {
        "validation_correct": "1" * len(right), "baseline_validation_correct": right,
        "validation_labels": fresh.val_labels}


def test_the_leak_check_keeps_bs_images_and_validates_b_again_only_for_a_seed_recorded_without_them():
    from types import SimpleNamespace

    import validation_leak

    runs = []

    def validate(options, label="", journal_key=None):
        runs.append(journal_key)
        arms.correct[journal_key] = "0110"
        return 0.5

    arms = SimpleNamespace(k=10, correct={}, validate=validate)
    old = {"b": 0.7}  # a seed recorded before B's images were kept: its score stays as recorded
    assert validation_leak.b_score(arms, old, "a") == (0.7, "0110") and old == {"b": 0.7, "b_correct": "0110"}
    assert validation_leak.b_score(arms, old, "a") == (0.7, "0110") and runs == ["baseline (a)"]  # once
    new = {}
    assert validation_leak.b_score(arms, new, "f") == (0.5, "0110") and runs[-1] == "baseline (f)"


def _bank_arms(tmp_path, monkeypatch, **extra):
    """A tiny cell's Arms whose ``cgan`` is an untrained tiny one (no generator training), and that generator."""
    from types import SimpleNamespace

    from augmentgen.models import build_config, build_generator
    from tests.conftest import make_images

    monkeypatch.setenv("AUGMENTGEN_BENCH_CAMPAIGN", str(tmp_path))
    cell, args = _tiny_cell_and_args()
    torch.manual_seed(0)
    generator = build_generator(build_config("cgan", num_classes=3, generator_width=8, latent_dim=8)).eval()
    arms = downstream.Arms(cell, make_images(n_per_class=4, num_classes=3, seed=1), 0,
                           SimpleNamespace(**vars(args), **extra))
    monkeypatch.setattr(arms, "train_generator", lambda family, options=None, provenance=None: (generator, 0.0))
    return arms, generator


def test_a_free_bank_is_sampled_once_and_each_validation_fold_draws_its_head(tmp_path, monkeypatch):
    """Validating a lone ``ddpm:free@bank`` candidate used to fill a bank a fold (over an hour a seed
    on this CPU), so it was never scored. Free samples do not depend on the fold: one bank for the
    subset, and each fold's rows are its first ``bank_per_image * largest class`` images a class."""
    arms, generator = _bank_arms(tmp_path, monkeypatch)
    made = []
    real_pool = downstream.SyntheticPool
    monkeypatch.setattr(downstream, "SyntheticPool", lambda *a, **kw: made.append(kw) or real_pool(*a, **kw))
    whole = arms.rows_from(generator, "free", None, arms.cell.subset, True)
    for fit, _ in arms.splits:
        fold = arms.rows_from(generator, "free", None, fit, True)
        assert fold.per_class == max(fit.class_counts) < whole.per_class == 6
        assert torch.equal(fold.images, whole.images[:, :fold.per_class])
    assert len(made) == 1 and made[0]["per_class"] == 6
    # The bank is the one a fresh pool of the subset's size and the seed would hold: the final arm's rows are unchanged.
    assert torch.equal(whole.images, real_pool(generator, per_class=6, seed=0, batch_size=256).images)


def test_a_bank_arms_filter_keeps_what_each_folds_teacher_accepts_of_the_one_bank(tmp_path, monkeypatch):
    """``ddpm:free@bank+filter`` used to fill a teacher-filtered bank a fold and one for the final
    arm (several banks of a slow sampler a seed). The filter now keeps the images of the one bank
    of free samples (its fold's head) that the fold's teacher accepts: nothing is sampled again."""
    import dataclasses

    from tests.conftest import make_images
    from tests.metrics.fakes import SquareTeacher

    arms, generator = _bank_arms(tmp_path, monkeypatch)
    sampled, real_sample = [], generator.sample
    monkeypatch.setattr(generator, "sample", lambda labels, **kw: sampled.append(len(labels)) or real_sample(labels, **kw))
    whole = arms.free_bank(generator)
    fills = len(sampled)
    teacher = SquareTeacher(scale=0.0)  # p = 1/3 for every class: a 0.3 threshold keeps all, 0.5 none
    for fit, _ in arms.splits:
        kept = arms.rows_from(generator, "free", None, fit, True, pool_filter={"teacher": teacher,
                                                                                "filter_threshold": 0.3})
        assert torch.equal(kept.images, whole.images[:, :max(fit.class_counts)])
        assert kept.filter_threshold == 0.3 and kept.candidate_counts.tolist() == [max(fit.class_counts)] * 3
        with pytest.raises(downstream.DataError, match="accepted no image"):
            arms.rows_from(generator, "free", None, fit, True, pool_filter={"teacher": teacher, "filter_threshold": 0.5})
    assert len(sampled) == fills  # the folds sampled nothing
    arms.cell = dataclasses.replace(arms.cell, heldout=make_images(n_per_class=5, num_classes=3, seed=2))
    coverage = arms.row_coverage(generator, None, rows_per_class=4)
    # CAS: a classifier trained on the arm's rows alone, accuracy on the held-out images.
    assert coverage["rows_per_class"] == 4 and 0 <= coverage["cas_heldout"] <= 1
    assert arms.row_coverage(generator, None, teacher=teacher, rows_per_class=4) is None  # at 0.5 it keeps none
    assert len(sampled) == fills  # the arm's own rows: the bank's head


def test_a_lone_free_bank_arm_records_its_validation_and_the_guards_images(tmp_path, monkeypatch):
    arms, generator = _bank_arms(tmp_path, monkeypatch)
    arm = arms.source_arm("cgan:free@bank", "a")
    assert set(arm["method_selection"]) == {"plain"} and 0 <= arm["method_selection"]["plain"] <= 1
    n = len(arms.cell.subset)
    assert len(arm["validation_correct"]) == len(arm["baseline_validation_correct"]) == len(arm["validation_labels"]) == n
    assert 0 <= arm["acc"] <= 1 and "validation_added" not in arm
    from augmentgen.mixing.shard_manifest import generator_sha256

    assert arm["generator_sha256"] == generator_sha256(generator)  # what --validate-measured checks against


def test_validate_measured_adds_a_validation_only_for_the_measured_generator_and_keeps_its_figures(
        tmp_path, monkeypatch):
    import dataclasses
    from types import SimpleNamespace

    from tests.conftest import make_images

    arms, generator = _bank_arms(tmp_path, monkeypatch, validate_measured=True)
    arms.baselines = ["a"]
    arms.cell = dataclasses.replace(arms.cell, heldout=make_images(n_per_class=5, num_classes=3, seed=2))
    arms.free_bank(generator)
    rows = arms.row_coverage(generator, None)  # what the arm recorded of its rows when it was measured

    def measured_file(name, coverage):
        file = downstream.ResultsFile(tmp_path / name, PROTOCOL, fresh=True)
        file.put_row({"seed": 0, "class_counts": arms.cell.subset.class_counts, "best_baseline": "a",
                      "baseline_selection": {"a": 0.6}, "selection_seconds": 1.0, "n_real": 18}, save=False)
        measured = {"acc": 0.4321, "per_class": [0.4, 0.4, 0.5], "seconds": 9.0, "git_commit": "old",
                    "coverage": coverage}
        for key, arm in {"a": {"acc": 0.5}, "r": {"acc": 0.5}, "cgan:free@bank": measured}.items():
            file.put_cell(0, key, arm, save=False)
        return file, measured

    file, measured = measured_file("cell.json", rows)
    args = SimpleNamespace(sources=["cgan:free@bank"], validate_measured=True, gen_steps=2, bank_per_image=1)
    downstream.run_seed(file, arms, args, {"git_commit": "new", "cpu": "here"})
    arm = json.loads((tmp_path / "cell.json").read_text())["per_seed"][0]["arms"]["cgan:free@bank"]
    assert {k: arm[k] for k in measured} == measured  # its test figures as measured
    assert set(arm["method_selection"]) == {"plain"} and len(arm["validation_correct"]) == 18
    assert arm["validation_added"]["git_commit"] == "new" and arm["validation_added"]["seconds"] >= 0
    # Run again: the arm has its validation, nothing is added or trained.
    real_validate, arms.validate = arms.validate, lambda *a, **kw: pytest.fail("validated twice, or another generator")
    downstream.run_seed(downstream.ResultsFile(tmp_path / "cell.json", PROTOCOL, fresh=False), arms, args, {})

    # A generator trained again that makes other rows (other code, another CPU) is not the measured
    # one: its validation would pair with test figures it did not make. Refused, and said why.
    for name, coverage in (("other.json", {**rows, "diversity_pixels": rows["diversity_pixels"] * 1.01}),
                           ("older.json", None)):
        file, measured = measured_file(name, coverage)
        downstream.run_seed(file, arms, args, {"git_commit": "new", "cpu": "here"})
        arm = json.loads((tmp_path / name).read_text())["per_seed"][0]["arms"]["cgan:free@bank"]
        assert {k: arm[k] for k in measured} == measured and not downstream.has_validation(arm)
        assert "validation_added" not in arm and arm["validation_refused"]["git_commit"] == "new"
        reason = ("the generator trained now makes other rows: diversity_pixels" if coverage
                  else "the arm recorded no coverage of its rows")
        assert arm["validation_refused"]["reason"].startswith(reason)
    # An arm measured from 2026-12-07 on records its generator's weights: the exact check, before any rows.
    from augmentgen.mixing.shard_manifest import generator_sha256

    for name, sha, validated in (("same.json", generator_sha256(generator), True), ("another.json", "0" * 64, False)):
        file, measured = measured_file(name, None)
        file.put_cell(0, "cgan:free@bank", {**measured, "generator_sha256": sha}, save=False)
        if validated:
            arms.validate = real_validate
        downstream.run_seed(file, arms, args, {"git_commit": "new"})
        arm = json.loads((tmp_path / name).read_text())["per_seed"][0]["arms"]["cgan:free@bank"]
        assert downstream.has_validation(arm) == validated, name
        if not validated:
            assert arm["validation_refused"]["reason"].startswith("the generator trained now has other weights")
        arms.validate = lambda *a, **kw: pytest.fail("validated another generator")
    # Not tried again: the refusal stands (trained again, the generator would be the same one).
    arms.train_generator = lambda *a, **kw: pytest.fail("trained again")
    downstream.run_seed(downstream.ResultsFile(tmp_path / "other.json", PROTOCOL, fresh=False), arms, args, {})


def test_the_coverage_column_gives_cas_where_seeds_recorded_it():
    import report

    old = {"diversity_pixels": {"mean": 0.93, "n": 5}, "novelty_pixels": {"mean": 1.18, "n": 5}}
    assert report.coverage_text(old) == "0.93 / 1.18 (5)"
    assert report.coverage_text({**old, "cas_heldout": {"mean": None, "std": None, "n": 0}}) == "0.93 / 1.18 (5)"
    assert report.coverage_text({**old, "cas_heldout": {"mean": 0.6075, "n": 2}}) == "0.93 / 1.18 (5); CAS 60.8% (2)"
    assert report.coverage_text(None) == "–"
