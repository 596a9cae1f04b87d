"""`import latentmf` stays light: NumPy only, none of the optional extras."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ["pandas", "scipy", "sklearn", "matplotlib", "tqdm", "pyarrow", "polars", "joblib"]


def test_import_latentmf_imports_no_optional_dependency():
    code = (
        "import sys, latentmf, latentmf.metrics, latentmf.datasets; "
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_fitting_and_recommending_need_no_optional_dependency():
    code = (
        "import sys, numpy as np, latentmf; "
        "r = latentmf.Ratings.from_ids(['a', 'b', 'a'], [10, 20, 20], [4.0, 3.0, 5.0]); "
        "m = latentmf.MatrixFactorization(factors=2, epochs=2).fit(r); m.recommend('b'); m.predict(['a'], [10]); "
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
