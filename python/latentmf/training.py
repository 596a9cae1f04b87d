"""The epoch loop that every factor model trains with, whatever its solver or where it runs.

A solver supplies a `Trainer`: it runs one epoch on the model's native arrays and says how the
training went (the loss and the other training entries of the history). The loop adds what every
model shares: the epoch numbering over the model's whole training, validation after each epoch,
the history, callbacks, early stopping, progress output, and the failure contract:

- an epoch whose loss is not finite is rolled back (the trainer restores the copy it made before
  the epoch) and FloatingPointError is raised: the model keeps its last finite epoch;
- Ctrl-C (KeyboardInterrupt) rolls back the epoch under way and is re-raised: the model keeps
  its last finished epoch, with the history to match.

Each finished epoch is committed as a new `FittedState` in one call, so the factors and the
history an estimator holds always describe the same epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .state import FittedState

#: A callback: callback(model, record) after every epoch; returning True stops training.
Callback = Callable[[Any, dict[str, float]], Any]


class StateLost(Exception):
    """Raised by a trainer whose state is gone (a cluster that lost the workers holding it): the
    model goes back to what it was before the call that trained it."""


class Trainer:
    """One solver's training of one native model, as the epoch loop drives it.

    `arrays` are the native arrays an epoch changes, in place: the loop's fall-back copies are of
    those. A trainer whose state lives elsewhere (a cluster) overrides checkpoint, restore,
    snapshot and finish.
    """

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.arrays = list(arrays)
        self._fallback: list[np.ndarray] | None = None

    def run_epoch(self, epoch: int) -> dict[str, float]:
        """Run epoch `epoch` (counted over the model's whole training) and return the record's
        training entries, "loss" first; a loss that is not finite means the epoch diverged."""
        raise NotImplementedError

    def diverged(self, entries: dict[str, float]) -> bool:
        """Whether the epoch that gave `entries` diverged (its loss is not finite)."""
        return not math.isfinite(entries["loss"])

    def divergence_message(self, epoch: int, loss: float, last: int | None) -> str:
        """What FloatingPointError says, once the arrays are back where the epoch started (`last`:
        the model's last finished epoch, None before the first)."""
        kept = "none: the initial factors" if last is None else last
        return f"training diverged in epoch {epoch}: the loss became {loss}; the model keeps the last finite epoch ({kept})"

    def snapshot(self) -> Any:
        """A copy of the arrays, for early stopping's best epoch."""
        return [array.copy() for array in self.arrays]

    def checkpoint(self) -> Any:
        """The arrays as they are now, for an epoch to fall back on: copied into the same buffers
        each time (a fresh copy of a large U every epoch cost more in page faults than in copying)."""
        if self._fallback is None:
            self._fallback = self.snapshot()
        else:
            for saved, array in zip(self._fallback, self.arrays):
                np.copyto(saved, array)
        return self._fallback

    def restore(self, saved: Any) -> None:
        for target, copy in zip(self.arrays, saved):
            np.copyto(target, copy)

    def finish(self) -> dict[str, Any]:
        """Called once when training ends, whatever the reason: the arrays must then hold the
        state. Returns changes to the fitted state beyond the arrays (FittedState fields)."""
        return {}


@dataclass
class Plan:
    """What one call of fit or partial_fit asks of the loop."""

    epochs: int
    history_keys: tuple[str, ...]
    #: The validation entries of a record, given the model after an epoch (None: no validation;
    #: its entries are NaN).
    validate: Callable[[], dict[str, float]] | None = None
    callbacks: list[Callback] = field(default_factory=list)
    #: Early stopping: (patience, key of the validation entry, True when larger is better).
    early_stopping: tuple[int, str, bool] | None = None
    verbose: bool = False
    progress: bool = False


def run(state: FittedState, trainer: Trainer, plan: Plan, model: Any,
        commit: Callable[[FittedState], None]) -> None:
    """`plan.epochs` epochs after those `state` has run; each finished epoch is committed."""
    first = state.epochs_run
    best: tuple[int, float, Any] | None = None
    reporter = Reporter(first, first + plan.epochs, plan.verbose, plan.progress)
    try:
        for epoch in range(first, first + plan.epochs):
            finished = state.history["epoch"]
            record = _epoch(trainer, epoch, plan, last=int(finished[-1]) if finished else None)
            state = state.with_epoch(record)
            commit(state)
            reporter.report(record)
            stop = False
            if plan.early_stopping is not None:
                patience, key, larger_is_better = plan.early_stopping
                value = record[key] if larger_is_better else -record[key]
                if best is None or value > best[1]:
                    best = (epoch, value, trainer.snapshot())
                stop = epoch - best[0] >= patience
            # Every callback sees every epoch, even when an earlier one asks to stop.
            stop = any([callback(model, record) is True for callback in plan.callbacks]) or stop
            if stop:
                break
    finally:
        reporter.close()
        changes = trainer.finish()
        if changes:
            state = state.replace(**changes)
            commit(state)
    if best is not None:
        trainer.restore(best[2])
        commit(state.replace(best_epoch=best[0]))


def _epoch(trainer: Trainer, epoch: int, plan: Plan, last: int | None) -> dict[str, float]:
    """One epoch and its record; or, if it fails, none: the arrays go back to the copy taken before
    it, so that they always match the committed history."""
    start = time.perf_counter()
    saved = trainer.checkpoint()
    try:
        entries = trainer.run_epoch(epoch)
        if trainer.diverged(entries):
            trainer.restore(saved)
            raise FloatingPointError(trainer.divergence_message(epoch, entries["loss"], last))
        validation = plan.validate() if plan.validate is not None else {}
    except KeyboardInterrupt:
        trainer.restore(saved)
        raise
    record = {"epoch": epoch, **entries, **validation, "seconds": time.perf_counter() - start}
    return {key: record.get(key, math.nan) for key in plan.history_keys}


#: How the reporter labels the entries of a record.
LABELS = {"loss": "loss", "train_rmse": "train RMSE", "validation_rmse": "validation RMSE"}


class Reporter:
    """Per-epoch output: a tqdm bar (progress with tqdm installed) and one line per epoch (verbose,
    or progress without tqdm)."""

    def __init__(self, first: int, end: int, verbose: bool, progress: bool) -> None:
        self.end = end
        self.bar = None
        self.lines = verbose
        if progress:
            try:
                from tqdm import tqdm
            except ImportError:
                self.lines = True
            else:
                self.bar = tqdm(total=end - first, unit="epoch", desc="fit", dynamic_ncols=True)

    def report(self, record: dict[str, float]) -> None:
        shown = {key: value for key, value in record.items()
                 if key not in ("epoch", "seconds") and not math.isnan(value)}
        if self.lines:
            entries = "  ".join(f"{LABELS.get(key, key)} {_number(value)}" for key, value in shown.items())
            line = f"epoch {record['epoch'] + 1:3d}/{self.end}  {entries}  {record['seconds']:.2f}s"
            if self.bar is not None:
                self.bar.write(line)
            else:
                print(line, flush=True)
        if self.bar is not None:
            self.bar.set_postfix({key: _number(value) for key, value in shown.items() if key != "loss"},
                                 refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.6g}"
