"""Who is using one model at the moment: one thread training it, or any number reading it."""

from __future__ import annotations

import _thread
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar


class Guard:
    """One thread training a model (fit, partial_fit), or any number of threads reading it
    (predict, recommend, save, ...).

    A call that conflicts with one under way in another thread raises RuntimeError at once: it
    never waits (so it cannot deadlock), and a training never runs beside another training or a
    reader of the factors it is changing. The thread that is training may read its own model
    (a callback may predict, recommend or save); it may not start a second training inside the
    first.
    """

    def __init__(self) -> None:
        # _thread rather than threading: the same lock, without 2 ms of import on `import latentmf`.
        self._lock = _thread.allocate_lock()
        self._trainer: tuple[int, str] | None = None  # (thread, method)
        self._readers: dict[int, list[str]] = {}  # thread -> the methods it is in

    @contextmanager
    def training(self, method: str) -> Iterator[None]:
        me = _thread.get_ident()
        with self._lock:
            if self._trainer is not None:
                thread, other = self._trainer
                where = "this thread (a callback cannot start another training)" if thread == me else "another thread"
                raise RuntimeError(f"{method}: this model is already being trained by {other} in {where}; one model "
                                   "trains in one thread at a time (use one model per thread, or wait for "
                                   f"{other} to return)")
            if self._readers:
                other = next(iter(self._readers.values()))[0]
                raise RuntimeError(f"{method}: this model is in use by {other} in another thread; it cannot be "
                                   f"trained until {other} returns (use one model per thread, or wait)")
            self._trainer = (me, method)
        try:
            yield
        finally:
            with self._lock:
                self._trainer = None

    @contextmanager
    def reading(self, method: str) -> Iterator[None]:
        me = _thread.get_ident()
        with self._lock:
            if self._trainer is not None and self._trainer[0] != me:
                raise RuntimeError(f"{method}: this model is being trained by {self._trainer[1]} in another thread, "
                                   f"which is changing its factors; call {method} after {self._trainer[1]} returns "
                                   "(or on another model)")
            self._readers.setdefault(me, []).append(method)
        try:
            yield
        finally:
            with self._lock:
                methods = self._readers[me]
                methods.pop()
                if not methods:
                    del self._readers[me]


class Guarded:
    """A class whose instances have a Guard, made on first use (so that __init__ only stores
    hyper-parameters, and unpickled or cloned objects get their own)."""

    def _guard(self) -> Guard:
        guard = self.__dict__.get("_use")
        if guard is None:
            guard = self.__dict__.setdefault("_use", Guard())
        return guard


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _guarded(mode: str) -> Callable[[_Method], _Method]:
    def mark(method: _Method) -> _Method:
        @functools.wraps(method)
        def guarded(self: Guarded, *args: Any, **kwargs: Any) -> Any:
            with getattr(self._guard(), mode)(method.__name__):
                return method(self, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return mark


#: Marks a method that changes the model: it runs in one thread at a time, with no reader.
trains = _guarded("training")
#: Marks a method that reads the learned state: any number at once, but not beside a training.
reads = _guarded("reading")
