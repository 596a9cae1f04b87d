"""README.md's commands are the ones that CI runs, and its Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import latentmf

from conftest import ML100K

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_test_command_readme_gives():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = next(line for line in ci_lines if "pytest" in line)
    assert test_command in (ROOT / "README.md").read_text().splitlines()


def test_the_python_examples_run(tmp_path, monkeypatch, capsys):
    """Every ```python block, in order and in one namespace, beside a link to MovieLens 100k."""
    pytest.importorskip("pandas")
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    (tmp_path / "ml-100k").symlink_to(ML100K)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "model.npz").exists()
    assert namespace["same"].recommend(196, k=5)[0].tolist() == namespace["items"].tolist()
    assert isinstance(namespace["same"], latentmf.ImplicitMatrixFactorization)
    assert "ndcg@10" in capsys.readouterr().out
