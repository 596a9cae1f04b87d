"""Kernels per instruction-set level: what build_info() says, choosing a level (select_isa and the
LATENTMF_ISA environment variable), and results at every level the CPU supports."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import latentmf
from latentmf import _core, _isa

from conftest import DEFAULT_ISA, SUPPORTED_ISAS, random_ratings

INFO = latentmf.build_info()


def _import_with(value):
    """`import latentmf` in a fresh interpreter with LATENTMF_ISA=value; (returncode, stdout, stderr)."""
    env = dict(os.environ, LATENTMF_ISA=value)
    code = "import latentmf; print(latentmf.build_info()['isa'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout.strip(), result.stderr


def test_build_info_names_the_levels_compiled_supported_and_chosen():
    compiled, supported = INFO["isa_levels"], INFO["isa_levels_supported"]
    assert compiled[0] == "generic" and supported[0] == "generic"
    assert set(supported) <= set(compiled) <= set(_isa.LEVELS)
    assert compiled == sorted(compiled, key=_isa.LEVELS.index)
    assert INFO["isa"] in supported
    if not os.environ.get(_isa.ENVIRONMENT_VARIABLE):
        assert INFO["isa"] == supported[-1]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or "msvc" in INFO["compiler"],
                    reason="AVX2 and AVX-512 kernels are compiled by GCC and Clang for x86-64 only")
def test_x86_64_builds_carry_avx2_and_avx512_kernels():
    assert INFO["isa_levels"] == ["generic", "avx2", "avx512"]


def test_select_isa_switches_levels_and_refuses_unknown_ones():
    try:
        for level in SUPPORTED_ISAS:
            _core.select_isa(level)
            assert latentmf.build_info()["isa"] == level
        with pytest.raises(ValueError, match="unknown or not compiled instruction-set level 'sse9'"):
            _core.select_isa("sse9")
        assert latentmf.build_info()["isa"] == SUPPORTED_ISAS[-1]
    finally:
        _core.select_isa(DEFAULT_ISA)


def test_the_environment_variable_caps_the_level_at_import():
    for level in SUPPORTED_ISAS:
        returncode, out, err = _import_with(level)
        assert (returncode, out) == (0, level), err
    returncode, out, err = _import_with(" AVX2 " if "avx2" in SUPPORTED_ISAS else "Generic")
    assert returncode == 0 and out in ("avx2", "generic"), err


def test_an_unknown_level_in_the_environment_fails_the_import_with_the_choices():
    returncode, _, err = _import_with("avx3")
    assert returncode != 0
    assert "LATENTMF_ISA='avx3' is not an instruction-set level; use one of generic, avx2, avx512" in err


class TestChoose:
    """The policy of LATENTMF_ISA, for builds and CPUs other than this one."""

    ALL = ["generic", "avx2", "avx512"]

    def test_unset_or_empty_keeps_the_default(self):
        assert _isa.choose(None, self.ALL, self.ALL) == (None, None)
        assert _isa.choose("  ", self.ALL, self.ALL) == (None, None)

    def test_a_supported_level_is_taken_whatever_its_case(self):
        assert _isa.choose("AVX2", self.ALL, self.ALL) == ("avx2", None)
        assert _isa.choose("generic", self.ALL, ["generic"]) == ("generic", None)

    def test_a_level_the_cpu_lacks_warns_and_takes_the_best_below(self):
        chosen, warning = _isa.choose("avx512", self.ALL, ["generic", "avx2"])
        assert chosen == "avx2" and "this CPU cannot run it" in warning and "using avx2" in warning

    def test_a_level_the_build_lacks_warns_and_takes_generic(self):
        chosen, warning = _isa.choose("avx2", ["generic"], ["generic"])
        assert chosen == "generic" and "this build of latentmf has no such level" in warning

    def test_a_typo_is_an_error(self):
        with pytest.raises(ValueError, match="LATENTMF_ISA='avx-2' is not an instruction-set level"):
            _isa.choose("avx-2", self.ALL, self.ALL)


@pytest.mark.parametrize("level", SUPPORTED_ISAS)
@pytest.mark.parametrize("n_factors", [7, 16, 32])
@pytest.mark.parametrize("biases", [False, True])
def test_top_n_at_every_level_matches_brute_force(rng, level, n_factors, biases):
    ratings = random_ratings(rng, 60, 150, 2000)
    model = latentmf.MatrixFactorization(n_factors, epochs=2, biases=biases, dtype="float64", seed=1)
    model.fit(ratings)
    scores = model.U @ model.V.T
    if biases:
        scores += model.global_mean_ + model.user_bias_[:, None] + model.item_bias_[None, :]
    scores[ratings.users, ratings.items] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    try:
        _core.select_isa(level)
        items, top = model.recommend_all(k=10)
    finally:
        _core.select_isa(DEFAULT_ISA)
    np.testing.assert_array_equal(items, expected)
    np.testing.assert_allclose(top, np.take_along_axis(scores, expected, axis=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("level", SUPPORTED_ISAS)
def test_fit_is_bit_identical_across_threads_at_every_level(rng, level):
    ratings = random_ratings(rng, 200, 120, 5000, value_dtype=np.float32)
    try:
        _core.select_isa(level)
        fits = [latentmf.MatrixFactorization(16, epochs=3, threads=t, seed=3).fit(ratings) for t in (1, 2)]
    finally:
        _core.select_isa(DEFAULT_ISA)
    np.testing.assert_array_equal(fits[0].U, fits[1].U)
    np.testing.assert_array_equal(fits[0].V, fits[1].V)
    np.testing.assert_array_equal(fits[0].user_bias_, fits[1].user_bias_)


def test_levels_agree_to_rounding(rng):
    ratings = random_ratings(rng, 200, 120, 5000)
    results = {}
    try:
        for level in SUPPORTED_ISAS:
            _core.select_isa(level)
            results[level] = latentmf.MatrixFactorization(32, epochs=2, dtype="float64", seed=3).fit(ratings)
    finally:
        _core.select_isa(DEFAULT_ISA)
    first = results[SUPPORTED_ISAS[0]]
    for model in results.values():
        np.testing.assert_allclose(model.U, first.U, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.V, first.V, rtol=1e-9, atol=1e-12)
