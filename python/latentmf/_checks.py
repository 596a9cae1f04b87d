"""Argument checks shared by the Python API; the binding checks again, these give nicer messages."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

#: The largest thread count passed to the binding (a C int); the native code then runs at most one
#: thread per processor.
_MAX_THREADS = 2**31 - 1

#: Seeds are unsigned 64-bit integers in the native code.
MAX_SEED = 2**64 - 1


def as_threads(threads: Any) -> int:
    """The binding's thread argument: 0 for None (all cores), else an integer >= 1.

    More threads than the machine has processors are reduced to one per processor by the native
    code (results never depend on the count)."""
    if threads is None:
        return 0
    if isinstance(threads, bool):
        raise TypeError("threads must be an integer or None, got bool")
    try:
        count = operator.index(threads)
    except TypeError:
        raise TypeError(f"threads must be an integer or None, got {type(threads).__name__}") from None
    if count < 1:
        raise ValueError(f"threads must be >= 1 (or None for all cores), got {count}")
    return min(count, _MAX_THREADS)


def as_integer(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if number < minimum or (maximum is not None and number > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be >= {minimum}{upper}, got {number}")
    return number


def as_real(value: Any, name: str, minimum: float, *, strict: bool = False) -> float:
    """A finite float >= minimum (> minimum when strict)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got bool")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum}, got {value}")
    return number


def check_representable(value: float, name: str, dtype: str, *, positive: bool = False) -> None:
    """`value` must stay finite (and, when `positive`, above 0) in `dtype`, the precision the model
    computes in: 1e300 is inf in float32, 1e-50 is 0."""
    with np.errstate(over="ignore", under="ignore"):
        converted = np.dtype(dtype).type(value)
    if not np.isfinite(converted) or (positive and converted <= 0):
        shown = "inf" if not np.isfinite(converted) else "0"
        raise ValueError(f"{name}={value!r} is {shown} in {dtype}, the model's dtype: give a value that {dtype} "
                         "can hold")


def physical_memory() -> int:
    """Bytes of physical memory of this machine (0 when unknown), as the native code sees it."""
    from . import _core

    return int(_core.physical_memory())


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise MemoryError (latentmf._core.AllocationError) before allocating when `what`, needing
    `nbytes`, would not fit in physical memory (with overcommit, such an allocation may appear to
    succeed, and the process is killed when the memory is used)."""
    from . import _core

    limit = physical_memory()
    if limit and nbytes > limit:
        raise _core.AllocationError(f"{what} need {nbytes / 2**20:.1f} MiB, more than the {limit / 2**20:.1f} MiB "
                                    f"of physical memory{hint}")
