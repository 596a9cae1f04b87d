"""What one distributed fit did (no dask needed to read it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class DaskFitReport:
    """What one distributed fit did (`model.fit_report_`).

    V bytes are the bytes of item-group states (rows of V, with item biases and AdaGrad
    accumulators when used) that moved between workers, by the epoch that produced them:
    `v_bytes_predicted` from the schedule, `v_bytes_measured` from the workers' transfer logs.
    `u_bytes_moved` and `other_bytes_moved` count transfers of user-group states and of ratings
    (and anything else of the fit) between workers after set-up: both must be 0.
    """

    blocks: int
    workers: list[str]
    user_groups: dict[str, list[int]]
    n_ratings: int
    block_ratings: np.ndarray
    v_bytes_predicted: list[int] = field(default_factory=list)
    v_bytes_measured: list[int] = field(default_factory=list)
    u_bytes_moved: int = 0
    other_bytes_moved: int = 0
    setup_bytes: int = 0
    result_bytes: int = 0
    setup_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    compute_seconds: float = 0.0
    worker_threads: int = 0
    restarts: int = 0
    #: False when a worker's transfer log was full at a read: v_bytes_measured may then miss some.
    transfer_log_complete: bool = True

    @property
    def ratings_per_block(self) -> tuple[int, float, int]:
        """(min, mean, max) ratings of the B x B blocks."""
        b = self.block_ratings
        return int(b.min()), float(b.mean()), int(b.max())

    @property
    def utilization(self) -> float:
        """Compute seconds (in the training tasks) over training wall seconds times the workers' threads."""
        capacity = self.wall_seconds * max(self.worker_threads, 1)
        return self.compute_seconds / capacity if capacity > 0 else math.nan

    def __str__(self) -> str:
        low, mean, high = self.ratings_per_block
        epochs = len(self.epoch_seconds)
        per_epoch = self.wall_seconds / epochs if epochs else math.nan
        predicted = np.mean(self.v_bytes_predicted) if self.v_bytes_predicted else 0.0
        measured = np.mean(self.v_bytes_measured) if self.v_bytes_measured else 0.0
        return "\n".join([
            f"B = {self.blocks}, {len(self.workers)} workers ({self.worker_threads} threads), "
            f"{self.n_ratings} ratings",
            f"ratings per block: min {low}, mean {mean:.1f}, max {high}",
            f"V bytes moved per epoch: predicted {predicted:,.0f}, measured {measured:,.0f}",
            f"U bytes moved: {self.u_bytes_moved}, other bytes moved after set-up: {self.other_bytes_moved}",
            f"set-up {self.setup_seconds:.3f} s, {self.setup_bytes:,} bytes; result {self.result_bytes:,} bytes",
            f"training wall {self.wall_seconds:.3f} s ({per_epoch:.3f} s per epoch), "
            f"compute {self.compute_seconds:.3f} s (utilization {self.utilization:.0%} of the workers' threads)",
        ])
