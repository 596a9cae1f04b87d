"""The installed distribution's metadata agrees with the package: one version, and what a user
reads on PyPI (Python versions, license, extras)."""

from __future__ import annotations

from importlib import metadata

import latentmf


def test_the_version_is_single_sourced():
    # pyproject.toml reads it from python/latentmf/_version.py, which the package imports.
    assert metadata.version("latentmf") == latentmf.__version__


def test_python_license_and_the_only_required_dependency():
    meta = metadata.metadata("latentmf")
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["License-Expression"] == "MIT"
    required = [r for r in metadata.requires("latentmf") or [] if "extra ==" not in r]
    assert [r.split(">")[0].split("=")[0].strip() for r in required] == ["numpy"]


def test_the_extras_readme_names_exist_and_all_gathers_them():
    meta = metadata.metadata("latentmf")
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"pandas", "scipy", "dask", "plot", "progress", "test", "all"} <= extras
    everything = [r for r in metadata.requires("latentmf") or [] if 'extra == "all"' in r]
    assert len(everything) == 1
    for extra in ("pandas", "scipy", "dask", "plot", "progress"):
        assert extra in everything[0].split(";")[0]
