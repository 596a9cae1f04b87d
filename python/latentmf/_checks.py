"""Argument checks shared by the Python API; the binding checks again, these give nicer messages."""

from __future__ import annotations

import math
import operator
from typing import Any


def as_threads(threads: Any) -> int:
    """The binding's thread argument: 0 for None (all cores), else an integer >= 1."""
    if threads is None:
        return 0
    try:
        count = operator.index(threads)
    except TypeError:
        raise TypeError(f"threads must be an integer or None, got {type(threads).__name__}") from None
    if count < 1:
        raise ValueError(f"threads must be >= 1 (or None for all cores), got {count}")
    return count


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
