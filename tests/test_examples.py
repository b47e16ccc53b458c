"""Every example runs end to end on the embedded dataset (the CI check that the docs work)."""

from __future__ import annotations

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
    assert "protocol v3" in result.stdout and "protocol v2" in result.stdout
    # The benchmark lines read the generator's rows against the rows made without one, too.
    assert "vs as many same-class pixel MixUp rows" in " ".join(result.stdout.split())
    # The demo's own choice trains the controls beside a chosen method, or says none was chosen.
    assert "(control: PixelMixSource, no generator)" in result.stdout or "B + synthetic: no synthetic rows" in result.stdout
