"""The schedule of a distributed fit, tested without dask: owners, item-group moves, the packed
state of a group and the bytes the schedule predicts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from latentmf import _core
from latentmf.dask.plan import Plan, StateLayout, aligned_copy, predicted_v_bytes


def test_importing_the_plan_imports_no_dask():
    code = ("import sys, latentmf.dask.plan, latentmf.dask.report; "
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("blocks, workers", [(1, 1), (4, 2), (5, 3), (8, 8), (7, 2)])
def test_every_group_has_one_owner_and_each_sub_epoch_a_permutation(blocks, workers):
    plan = Plan(blocks, workers, seed=3, epochs=3)
    assert sorted(p for groups in plan.groups for p in groups) == list(range(blocks))
    assert all(groups for groups in plan.groups)  # every worker owns a user group
    for t in range(3):
        for s in range(blocks):
            items = [plan.item_group(p, t, s) for p in range(blocks)]
            assert sorted(items) == list(range(blocks))  # the sub-epoch's blocks share no item group
            for p, q in enumerate(items):
                assert plan.holder(q, t, s) == plan.owner[p]


def test_consumers_are_the_next_holder_and_with_evaluation_every_worker():
    plan = Plan(4, 2, seed=1, epochs=2)
    assert plan.consumers(0, 0, 0, evaluate=False) == {plan.holder(0, 0, 1)}
    assert plan.consumers(0, 0, 3, evaluate=False) == {plan.holder(0, 1, 0)}
    assert plan.consumers(0, 1, 3, evaluate=False) == set()
    assert plan.consumers(0, 1, 3, evaluate=True) == {0, 1}


@pytest.mark.parametrize("biases, adagrad", [(False, False), (True, False), (False, True), (True, True)])
def test_a_group_state_packs_and_unpacks_its_rows(rng, biases, adagrad):
    layout = StateLayout(5, biases, adagrad)
    assert layout.length(7) == _core.group_state_size(7, 5, biases, adagrad) == 7 * layout.width
    U = rng.standard_normal((12, 5)).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32) if biases else None
    accumulators = rng.uniform(1, 2, (12, 2)).astype(np.float32) if adagrad else None
    rows = np.array([1, 4, 5, 9, 10, 11, 0])
    state = layout.pack(U, bias, accumulators, rows)
    assert state.ctypes.data % 64 == 0 and len(state) == layout.length(len(rows))
    np.testing.assert_array_equal(layout.factors_of(state), U[rows])
    if biases:
        np.testing.assert_array_equal(layout.bias_of(state), bias[rows])
    if adagrad:
        np.testing.assert_array_equal(layout.accumulators_of(state), accumulators[rows])
    targets = [np.zeros_like(U), None if bias is None else np.zeros_like(bias),
               None if accumulators is None else np.zeros_like(accumulators)]
    layout.unpack(state, rows, *targets)
    np.testing.assert_array_equal(targets[0][rows], U[rows])
    assert aligned_copy(state).ctypes.data % 64 == 0


def test_predicted_bytes_follow_the_moves():
    plan = Plan(3, 3, seed=3, epochs=2)
    layout = StateLayout(16, True, True)
    sizes = [10, 11, 12]
    predicted = predicted_v_bytes(plan, sizes, layout, 4, evaluate=False)
    expected = [sum(copies * layout.length(sizes[q]) * 4 for q, copies in plan.moved_groups(t, False))
                for t in range(2)]
    assert predicted == expected and all(value > 0 for value in predicted)
