"""README.md's commands are the ones that CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_test_command_readme_gives():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = next(line for line in ci_lines if "pytest" in line)
    assert test_command in (ROOT / "README.md").read_text().splitlines()
