"""Stratified SGD on a Dask cluster that reproduces local training bit for bit.

`fit(model, data, client)` trains a `MatrixFactorization` on the workers of a
`distributed.Client` over the same B x B block grid as local training (docs/model.md):

- worker w owns the user groups p with ``p * W // B == w``: their ratings (as a grid shard with
  local indices) and their rows of U (with the biases and AdaGrad accumulators), which never move;
- in sub-epoch s of epoch t, the worker runs the blocks (p, (p + shift_s) mod B) of its groups in
  one native call on all its threads; the item groups q = p + shift_s come from the tasks that
  last updated them, so the rows of V move from worker to worker, one group at a time;
- the schedule is a graph of tasks, each depending only on the tasks that produced its inputs
  (no barrier per sub-epoch); every task is pinned to the worker that owns its user groups.

Each block runs the same native `sgd_block` on the same ratings in the same order, with U and V
rows that hold the same bits, so U, V and the biases equal those of `model.fit` on the same data
(with the same hyper-parameters, seed and B) exactly, for any number of workers from 1 to B. The
per-epoch history (loss, train RMSE) is computed from per-block sums added in the local order and
equals local training's too.

`latentmf.dask.fit(model, data, client)` is ``model.fit(backend=DaskBackend(data, client))``: the
model's own epoch loop drives the epochs (history, callbacks, divergence, Ctrl-C).

The package's modules: `plan` (the schedule and the layout of a group's state; imports no dask),
`report` (DaskFitReport; no dask), `inputs` (reading the ratings into partitions), `tasks` (what
runs on the workers) and `driver` (the back-end). `import latentmf.dask` imports dask and
distributed only when `fit`, `DaskBackend` or `WorkerLostError` is first used; `import latentmf`
never does.
"""

from __future__ import annotations

from typing import Any

from .report import DaskFitReport

__all__ = ["DaskBackend", "DaskFitReport", "WorkerLostError", "fit"]

_DRIVER_NAMES = ("DaskBackend", "WorkerLostError", "fit")


def __getattr__(name: str) -> Any:
    if name in _DRIVER_NAMES:
        try:
            from . import driver
        except ImportError as error:  # pragma: no cover - exercised only without the extra
            raise ImportError("latentmf.dask needs dask and distributed: pip install 'latentmf[dask]'") from error
        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
