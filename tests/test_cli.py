"""The command line: `latentmf demo` and `latentmf info`, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "latentmf", *args], capture_output=True, text=True, timeout=300)


def test_demo_trains_and_recommends():
    result = _run("demo", "--users", "500", "--items", "200", "--ratings", "20000", "--epochs", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("epoch ") == 3 and "validation RMSE" in out
    assert "Held-out RMSE" in out and "Top 5 items for user 0:" in out


def test_info_prints_build_information():
    result = _run("info")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert {"version", "openmp", "compiler", "eigen_version", "instruction_sets", "float_types"} <= set(info)
    assert info["float_types"] == ["float32", "float64"]


def test_bad_arguments_give_a_message_not_a_traceback():
    result = _run("demo", "--ratings", "0")
    assert result.returncode == 2
    assert "n_ratings must be >= 1" in result.stderr and "Traceback" not in result.stderr
    assert _run("nonsense").returncode == 2
