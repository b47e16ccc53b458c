"""The distribution's metadata: what `pip install` and PyPI read from pyproject.toml."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the package supports 3.10, where it is absent

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_licence_file_the_wheel_lists_exists():
    # setuptools fails the build on a license-files pattern that matches nothing
    files = _project()["project"]["license-files"]
    assert files, "the wheel ships no licence text"
    for pattern in files:
        assert list(ROOT.glob(pattern)), f"license-files names {pattern!r}, which is not in the checkout"


def test_licence_expression_covers_the_code_and_the_embedded_images():
    expression = _project()["project"]["license"]
    assert isinstance(expression, str), "a PEP 639 SPDX expression, not the deprecated table"
    assert "Apache-2.0" in expression and "MIT" in expression
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    assert "MIT License" in (ROOT / "augmentgen/data/embedded/LICENSE").read_text()[:200]


def test_build_backend_reads_the_licence_expression():
    # setuptools reads PEP 639 `license = "<SPDX>"` and `license-files` from version 77 on
    requires = _project()["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in requires), requires
