"""OMP_NUM_THREADS within what the OpenMP runtime can start, set before the extension loads.

LLVM's OpenMP runtime (libomp, what clang builds link) sizes its thread tables from
OMP_NUM_THREADS when it starts, and for an absurd value (say 100000000) it aborts the whole
process with "Out of heap memory" at the first OpenMP call: no exception, nothing to catch. latentmf
runs at most one thread per processor anyway (`threads` beyond them are reduced to them), so at
import it reduces every OMP_NUM_THREADS entry above the processors this process may use to that
count. Other values, and values that are not a list of counts, are left as they are.
"""

from __future__ import annotations

import os
import re
from typing import MutableMapping

VARIABLE = "OMP_NUM_THREADS"


def processors() -> int:
    """The processors this process may run on (its affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def bounded(value: str, limit: int) -> str | None:
    """`value` ("n" or "n,m,...", one count per nesting level) with counts above `limit` reduced to
    it, or None when nothing needs to change (or `value` is not such a list)."""
    entries = [entry.strip() for entry in value.split(",")]
    if not all(re.fullmatch(r"[0-9]+", entry) for entry in entries):
        return None
    counts = [int(entry) for entry in entries]
    if all(count <= limit for count in counts):
        return None
    return ",".join(str(min(count, limit)) for count in counts)


def bound_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Reduces OMP_NUM_THREADS in `environ` to the processors, if it asks for more."""
    value = environ.get(VARIABLE)
    if value is None:
        return
    replacement = bounded(value, processors())
    if replacement is not None:
        environ[VARIABLE] = replacement
