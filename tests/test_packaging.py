"""pyproject.toml in the form the build backend it names reads without warnings."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_license_is_an_spdx_expression_for_a_setuptools_that_reads_it():
    """A ``{text = ...}`` table is deprecated since setuptools 77: every install (`make run`) warned."""
    data = tomllib.loads(PYPROJECT.read_text())
    assert data["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in data["build-system"]["requires"]
