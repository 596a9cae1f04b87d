"""The schedule of a distributed fit, without dask: who owns which group, where the item groups go,
how a group's rows travel, and what that moves. Importing this module imports no dask."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import _core


class Plan:
    """Owners and moves of the block grid with B blocks on W workers.

    Worker w owns the user groups p with ``p * W // B == w`` (contiguous ranges: a shift that changes
    by one then moves few item groups); in sub-epoch s of epoch t it runs the blocks
    (p, (p + shift_s) mod B) of its groups, so item group q is updated by the owner of
    (q - shift_s) mod B.
    """

    def __init__(self, blocks: int, n_workers: int, seed: int, epochs: int) -> None:
        self.blocks, self.n_workers, self.seed, self.epochs = blocks, n_workers, seed, epochs
        self.owner = [p * n_workers // blocks for p in range(blocks)]
        self.groups = [[p for p in range(blocks) if self.owner[p] == w] for w in range(n_workers)]
        self._shifts = [list(_core.sub_epoch_shifts(blocks, seed, t)) for t in range(epochs)]

    def shift(self, epoch: int, sub_epoch: int) -> int:
        return self._shifts[epoch][sub_epoch]

    def item_group(self, p: int, epoch: int, sub_epoch: int) -> int:
        return (p + self.shift(epoch, sub_epoch)) % self.blocks

    def holder(self, q: int, epoch: int, sub_epoch: int) -> int:
        """The worker that updates item group q in that sub-epoch."""
        return self.owner[(q - self.shift(epoch, sub_epoch)) % self.blocks]

    def consumers(self, q: int, epoch: int, sub_epoch: int, evaluate: bool) -> set[int]:
        """The workers that read item group q's state made in (epoch, sub_epoch)."""
        B = self.blocks
        if sub_epoch + 1 < B:
            return {self.holder(q, epoch, sub_epoch + 1)}
        readers = set(range(self.n_workers)) if evaluate else set()
        if epoch + 1 < self.epochs:
            readers.add(self.holder(q, epoch + 1, 0))
        return readers

    def moved_groups(self, epoch: int, evaluate: bool) -> list[tuple[int, int]]:
        """(item group, copies sent to other workers) for the states made in `epoch`."""
        moves = []
        for s in range(self.blocks):
            for q in range(self.blocks):
                copies = len(self.consumers(q, epoch, s, evaluate) - {self.holder(q, epoch, s)})
                if copies:
                    moves.append((q, copies))
        return moves


class StateLayout:
    """How the rows of one user or item group travel between workers as one array, the native
    latentmf::GroupState: n rows of F factors, then n biases (with biases), then n x 2 AdaGrad
    accumulators (with AdaGrad). Its size comes from the native group_state_size, so the two
    cannot disagree."""

    def __init__(self, factors: int, biases: bool, adagrad: bool) -> None:
        self.factors, self.biases, self.adagrad = factors, biases, adagrad
        self.width = _core.group_state_size(1, factors, biases, adagrad)

    def length(self, rows: int) -> int:
        return _core.group_state_size(rows, self.factors, self.biases, self.adagrad)

    def rows(self, state: np.ndarray) -> int:
        return len(state) // self.width

    def factors_of(self, state: np.ndarray) -> np.ndarray:
        n = self.rows(state)
        return state[:n * self.factors].reshape(n, self.factors)

    def bias_of(self, state: np.ndarray) -> np.ndarray | None:
        n = self.rows(state)
        return state[n * self.factors:n * (self.factors + 1)] if self.biases else None

    def accumulators_of(self, state: np.ndarray) -> np.ndarray | None:
        n = self.rows(state)
        return state[len(state) - 2 * n:].reshape(n, 2) if self.adagrad else None

    def pack(self, factors: np.ndarray, bias: np.ndarray | None, accumulators: np.ndarray | None,
             rows: np.ndarray) -> np.ndarray:
        """The state of `rows` of a model's arrays, in a new array starting on a 64-byte boundary."""
        state = aligned_empty(self.length(len(rows)), factors.dtype)
        self.factors_of(state)[...] = factors[rows]
        for part, source in ((self.bias_of(state), bias), (self.accumulators_of(state), accumulators)):
            if part is not None:
                part[...] = source[rows]  # type: ignore[index]
        return state

    def unpack(self, state: np.ndarray, rows: np.ndarray, factors: np.ndarray, bias: np.ndarray | None,
               accumulators: np.ndarray | None) -> None:
        """Writes a group's state back into `rows` of a model's arrays."""
        factors[rows] = self.factors_of(state)
        for part, target in ((self.bias_of(state), bias), (self.accumulators_of(state), accumulators)):
            if part is not None:
                target[rows] = part  # type: ignore[index]


def aligned_empty(length: int, dtype: np.dtype) -> np.ndarray:
    """A new 1-D array starting on a 64-byte boundary (rows of U and V then straddle as few cache
    lines as in the model's own memory)."""
    nbytes = length * np.dtype(dtype).itemsize
    buffer = np.empty(nbytes + 64, dtype=np.uint8)
    offset = -buffer.ctypes.data % 64
    return buffer[offset:offset + nbytes].view(dtype)


def aligned_copy(array: np.ndarray) -> np.ndarray:
    copy = aligned_empty(len(array), array.dtype)
    copy[...] = array
    return copy


def predicted_v_bytes(plan: Plan, item_group_sizes: Sequence[int], layout: StateLayout, itemsize: int,
                      evaluate: bool) -> list[int]:
    """Bytes of item-group states sent between workers, per epoch, as the schedule says."""
    return [sum(copies * layout.length(int(item_group_sizes[q])) * itemsize for q, copies in
                plan.moved_groups(t, evaluate)) for t in range(plan.epochs)]
