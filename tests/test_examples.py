"""Every example runs end to end on the embedded dataset (the CI check that the docs work)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script,args,expected", [
    ("plain_pytorch_loop.py", [], "synthetic images seen: 224"),  # 7 batches x 32 rows
    ("albumentations_pipeline.py", ["--num-workers", "2"], "test accuracy:"),
    ("hf_datasets_pipeline.py", [], "rows: 700 (200 synthetic)"),
    ("variations.py", ["--gen-steps", "5"], "rows made from real rows: 224"),  # 7 batches x 32 rows
    ("variations.py", ["--control"], "source=RealRowSource"),
    ("variation_bank.py", ["--gen-steps", "5", "--per-image", "1"], "real images behind the bank: 500 of 500"),
    # 50 down to 5 per class: the rows go to the classes furthest below the commonest (none to it)
    ("long_tailed.py", ["--gen-steps", "5"], "rows made per class: [0, 3, 7, 9, 10, 13, 12, 13, 14, 15]"),
    ("long_tailed.py", ["--source", "pixel-mix"], "source=PixelMixSource"),
])
def test_example_runs(script, args, expected):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
           "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--epochs", "1", *args],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
    assert "test accuracy:" in result.stdout


def test_demo_prints_a_verdict_and_the_benchmark_figures(tmp_path):
    """`make demo` at a tiny budget: the validation choice runs, the verdict is printed as a
    one-seed demo, and the benchmark figures come from the committed results files."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, str(EXAMPLES / "demo.py"), "--gen-steps", "3", "--gen-time", "30s",
                             "--epochs", "1", "--min-steps", "5", "--methods", "plain", "--out", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verdict: " in result.stdout
    # The suite's answer: a line per cell (the README's matrix), its best arm against B, against the
    # rows made without a generator and the oracle, with its seeds.
    text = " ".join(result.stdout.split())
    assert "what the benchmark suite measured, per cell" in text
    assert "fashion-mnist 50 per class (" in text and "twice the real images" in text
    # The demo's own choice trains the controls beside a chosen method, or says none was chosen.
    assert "(control: PixelMixSource, no generator)" in result.stdout or "B + synthetic: no synthetic rows" in result.stdout
    # The demo's report is `augmentgen eval`'s strict JSON, written in one piece (no temporary left beside it).
    report = json.loads((tmp_path / "demo" / "demo_gain.json").read_text())
    assert report["verdict"] and not list((tmp_path / "demo").glob(".demo_gain.json.*"))


def _difference(mean, n, positive):
    return {"mean": mean, "ci95": None if n == 1 else [mean - 0.01, mean + 0.01], "n": n, "n_positive": positive}


def test_the_demo_gives_each_cells_best_arm_among_the_most_measured(tmp_path):
    """One line per cell, as the README's matrix: the best arm among those with the most seeds (a
    one-seed arm with a higher mean is not picked), read against the controls and the oracle, and
    a cell short of its planned seeds says it is under way."""
    import json

    sys.path.insert(0, str(EXAMPLES))
    from demo import benchmark_lines

    results = tmp_path  # any folder: the demo reads report.py from the repository
    summary = {"arms": {"aae:variation": {"n": 5}, "cgan:free": {"n": 5}, "cgan:free+soft": {"n": 1}},
               "aae:variation": {"vs_best_baseline": _difference(0.004, 5, 4), "vs_r": _difference(0.002, 5, 3),
                                 "vs_p": _difference(-0.003, 5, 2)},
               "cgan:free": {"vs_best_baseline": _difference(-0.004, 5, 1)},
               "cgan:free+soft": {"vs_best_baseline": _difference(0.02, 1, 1)},
               "oracle_gain": _difference(0.037, 5, 5)}
    cell = {"protocol_version": 3, "dataset": "fashion-mnist", "budget": "50pc", "seeds": [0, 1, 2, 3, 4],
            "summary": summary}
    (results / "downstream_v3_fashion-mnist_50pc.json").write_text(json.dumps(cell))
    guarded = {**summary["aae:variation"], "guarded_vs_best_baseline": _difference(0.002, 5, 3),
               "guard_mixed": [True, True, False, True, False], "z_guarded_vs_best_baseline": _difference(0.001, 2, 1),
               "z_guard_mixed": {"5": True, "6": False}, "z_guard_min": 1.0}
    short = {**cell, "budget": "lt100", "seeds": list(range(7)), "summary": {**summary, "aae:variation": guarded}}
    (results / "downstream_v3_fashion-mnist_lt100.json").write_text(json.dumps(short))
    lines = [" ".join(line.split()) for line in benchmark_lines(results)]  # each cell's wrapped line, unwrapped
    assert lines[1] == ("fashion-mnist 50 per class (5 of 5 seeds): B + aae rows made from real rows: vs the best "
                        "baseline B +0.4 [-0.6, +1.4] pts, 4/5 seeds > 0; vs as many copies of real rows (no "
                        "generator) +0.2 [-0.8, +1.2] pts, 3/5 seeds > 0; vs as many same-class pixel MixUp rows "
                        "(no generator) -0.3 [-1.3, +0.7] pts, 2/5 seeds > 0; twice the real images (the oracle) "
                        "+3.7 [+2.7, +4.7] pts, 5/5 seeds > 0")
    assert lines[2].startswith("fashion-mnist long-tailed, imbalance 100 (5 of 7 seeds: UNDER WAY, a demo until "
                               "its seeds land): B + aae rows")
    # Where the cell holds the guarded figure, the line says what following validation gave.
    assert ("mixed only where validation beats B +0.2 [-0.8, +1.2] pts, 3/5 seeds > 0 (mixed at 3 of 5 seeds)"
            in lines[2])
    assert "mixed only where" not in lines[1]
    # and, over the seeds that record each validation image, what the guard eval applies now gave.
    assert ("mixed only on a validation lead of more than 1 standard error +0.1 [-0.9, +1.1] pts, 1/2 seeds > 0 "
            "(mixed at 1 of 2 seeds that record it)") in lines[2]
    assert "standard error" not in lines[1]
