"""Which instruction-set level of the native kernels runs.

The extension holds the hot kernels compiled for several levels (see `build_info()["isa_levels"]`)
and runs the best one this CPU supports. The environment variable LATENTMF_ISA, read once at
import, caps the level: `LATENTMF_ISA=generic` runs the x86-64 baseline (or NEON) kernels on any
machine, `LATENTMF_ISA=avx2` runs AVX2 even where AVX-512 is there. Results are bit-identical for
any thread count at one level; between levels they agree to rounding (vector widths and FMA
change the order of the sums).

- A name that is no level at all (a typo) raises ValueError naming the levels: silently running
  another level than asked would defeat the point of asking.
- A known level that this build lacks or this CPU cannot run gives a RuntimeWarning, and the best
  level below it runs: the variable is a ceiling, and the machine is lower than it.
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

from . import _core

#: The name of the environment variable that caps the level.
ENVIRONMENT_VARIABLE = "LATENTMF_ISA"
#: Every level any build of latentmf may have, lowest first (each build has a subset of them).
LEVELS = ("generic", "avx2", "avx512")


def choose(requested: str | None, compiled: Sequence[str],
           supported: Sequence[str]) -> tuple[str | None, str | None]:
    """(level to select or None to keep the default, warning or None) for LATENTMF_ISA=requested.

    `compiled` are the levels in this build and `supported` those this CPU runs, lowest first."""
    name = (requested or "").strip().lower()
    if not name:
        return None, None
    if name not in LEVELS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={requested!r} is not an instruction-set level; use one of "
                         f"{', '.join(LEVELS)} (this build has {', '.join(compiled)}; this CPU runs "
                         f"{', '.join(supported)}), or unset it to use the best this CPU runs")
    if name in supported:
        return name, None
    below = [level for level in supported if LEVELS.index(level) < LEVELS.index(name)]
    chosen = below[-1] if below else "generic"
    why = "this build of latentmf has no such level" if name not in compiled else "this CPU cannot run it"
    return chosen, (f"{ENVIRONMENT_VARIABLE}={requested!r}: {why} (this build has {', '.join(compiled)}; "
                    f"this CPU runs {', '.join(supported)}); using {chosen}")


def apply_environment() -> None:
    """Selects the level LATENTMF_ISA asks for, if it is set (called once, at import)."""
    info = _core.build_info()
    chosen, warning = choose(os.environ.get(ENVIRONMENT_VARIABLE), info["isa_levels"],
                             info["isa_levels_supported"])
    if warning:
        warnings.warn(warning, RuntimeWarning, stacklevel=2)
    if chosen is not None:
        _core.select_isa(chosen)
