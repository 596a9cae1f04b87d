"""The stratified block grid of DESIGN.md: its structure, and results that do not depend on threads."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf

from conftest import random_biases, random_factors, random_ratings

# Every test here runs once per kernel level this CPU supports: determinism holds at each level.
pytestmark = pytest.mark.usefixtures("isa")


def _groups(ratings, blocks, seed):
    grid = ratings.native_grid("float64", blocks, seed, 0)
    return grid.user_groups(), grid.item_groups(), grid


@pytest.mark.parametrize("blocks", [1, 2, 5, 8])
def test_groups_are_balanced_and_seeded(rng, blocks):
    ratings = random_ratings(rng, 101, 37, 600)
    user_groups, item_groups, grid = _groups(ratings, blocks, seed=3)
    for groups, n in ((user_groups, 101), (item_groups, 37)):
        sizes = np.bincount(groups, minlength=blocks)
        assert sizes.sum() == n
        assert sizes.max() - sizes.min() <= 1
    assert grid.block_sizes().sum() == len(ratings)
    again, _, _ = _groups(latentmf.Ratings(ratings.users, ratings.items, ratings.values, 101, 37), blocks, 3)
    np.testing.assert_array_equal(user_groups, again)
    other, _, _ = _groups(ratings, blocks, seed=4)
    assert blocks == 1 or not np.array_equal(user_groups, other)


@pytest.mark.parametrize("blocks", [1, 3, 8])
@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_visiting_order_runs_disjoint_blocks_sub_epoch_by_sub_epoch(rng, blocks, epoch):
    ratings = random_ratings(rng, 60, 45, 900)
    user_groups, item_groups, grid = _groups(ratings, blocks, seed=11)
    order = latentmf.sgd_order(ratings, blocks=blocks, seed=11, epoch=epoch)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(ratings)))
    p = user_groups[ratings.users[order]]
    q = item_groups[ratings.items[order]]
    shift = (q - p) % blocks
    # each sub-epoch (one shift) is one contiguous stretch of the order ...
    stretches = shift[np.r_[True, shift[1:] != shift[:-1]]]
    assert len(stretches) == len(set(stretches.tolist()))
    # ... in which the blocks (p, p + shift) come in order of p, each block in one piece,
    # so that no two blocks of a sub-epoch share a user group or an item group
    for s in stretches:
        in_stretch = p[shift == s]
        assert np.all(np.diff(in_stretch) >= 0)
    # and inside a block at most 4 users (the SGD lanes) are under way at any time, each user's
    # ratings in their input order
    block = p * blocks + q
    for b in np.unique(block):
        positions = order[block == b]
        users = ratings.users[positions]
        first = {u: i for i, u in reversed(list(enumerate(users.tolist())))}
        last = {u: i for i, u in enumerate(users.tolist())}
        under_way = [sum(first[u] <= i <= last[u] for u in first) for i in range(len(users))]
        assert max(under_way) <= 4
        for u in first:
            assert np.all(np.diff(positions[users == u]) > 0)


@pytest.mark.parametrize("blocks", [1, 2])
def test_large_grid_holds_every_rating_in_its_row(rng, blocks):
    # About 2^18 ratings per block: the grid's sort splits each block's users into several
    # buckets (see row_sort.hpp), which the small grids of the other tests never do.
    n_users, n_items = 6000, 300
    ratings = random_ratings(rng, n_users, n_items, 2**18 * blocks**2, value_dtype=np.float32)
    grid = ratings.native_grid("float32", blocks, 3, 2)
    np.testing.assert_array_equal(grid.user_counts(), np.bincount(ratings.users, minlength=n_users))
    np.testing.assert_array_equal(grid.item_counts(), np.bincount(ratings.items, minlength=n_items))
    order = latentmf.sgd_order(ratings, blocks=blocks, seed=3, epoch=0)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(ratings)))
    # Inside each block the rows open in increasing user index (lanes take them in turn) and
    # each user's ratings keep their input order.
    user_groups, item_groups = grid.user_groups(), grid.item_groups()
    block = user_groups[ratings.users[order]] * blocks + item_groups[ratings.items[order]]
    for b in np.unique(block):
        positions = order[block == b]
        users = ratings.users[positions]
        _, first = np.unique(users, return_index=True)
        assert np.all(np.diff(users[np.sort(first)]) > 0)
        by_user = np.lexsort((np.arange(len(users)), users))
        assert np.all(np.diff(positions[by_user])[np.diff(users[by_user]) == 0] > 0)
    # The grid's epoch updates exactly the ratings the order names, with the same arithmetic.
    U, V = random_factors(rng, n_users, n_items, 32, np.float32, scale=0.1)
    accumulators = (np.ones((n_users, 2), np.float32), np.ones((n_items, 2), np.float32))
    grid_arrays = (U.copy(), V.copy(), accumulators[0].copy(), accumulators[1].copy())
    latentmf.sgd_epoch(ratings, grid_arrays[0], grid_arrays[1], 0.05, 0.05, threads=2,
                       adagrad=grid_arrays[2:], blocks=blocks, seed=3, epoch=0)
    latentmf.sgd_epoch(ratings, U, V, 0.05, 0.05, order=order, adagrad=accumulators)
    for a, b in zip(grid_arrays, (U, V) + accumulators):
        np.testing.assert_array_equal(a, b)


def test_sub_epoch_order_changes_with_epoch(rng):
    ratings = random_ratings(rng, 40, 40, 500)
    orders = {tuple(latentmf.sgd_order(ratings, blocks=8, seed=1, epoch=e)) for e in range(4)}
    assert len(orders) > 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_biases", [False, True])
def test_grid_epoch_is_bit_identical_across_thread_counts(rng, dtype, with_biases):
    # 3 blocks per side and 150k ratings: every sub-epoch has 50k, enough for the kernel to use
    # more than one thread (it keeps at least 20k ratings per thread).
    ratings = random_ratings(rng, 600, 500, 150_000, value_dtype=dtype)
    U, V = random_factors(rng, 600, 500, 16, dtype)
    results = []
    for threads in (1, 2, 3):
        biases = (3.0, np.zeros(600, dtype), np.zeros(500, dtype)) if with_biases else None
        U_t, V_t = U.copy(), V.copy()
        for epoch in range(3):
            latentmf.sgd_epoch(ratings, U_t, V_t, 0.02, 0.05, threads=threads, biases=biases, blocks=3,
                               epoch=epoch)
        results.append((U_t, V_t) + (() if biases is None else biases[1:]))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# 80 ratings per item: the item gradients come from partials of the user pass; 2 per item: from
# a pass over the items.
@pytest.mark.parametrize("n_items", [500, 20000])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("with_biases", [False, True])
def test_gradients_are_bit_identical_across_thread_counts(rng, n_items, threads, with_biases):
    ratings = random_ratings(rng, 3000, n_items, 40000, value_dtype=np.float32)
    U, V = random_factors(rng, 3000, n_items, 8, np.float32)
    biases = random_biases(rng, 3000, n_items, np.float32) if with_biases else None
    one = latentmf.gradients(ratings, U, V, 0.1, biases=biases, threads=1)
    many = latentmf.gradients(ratings, U, V, 0.1, biases=biases, threads=threads)
    assert len(one) == len(many) == (4 if with_biases else 2)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
    assert (latentmf.loss(ratings, U, V, 0.1, biases=biases, threads=1)
            == latentmf.loss(ratings, U, V, 0.1, biases=biases, threads=threads))


def test_dense_gradients_are_bit_identical_across_thread_counts(rng):
    U, V = random_factors(rng, 300, 200, 6, np.float32)
    R = rng.uniform(1, 5, size=(300, 200)).astype(np.float32)
    R[rng.random(R.shape) < 0.7] = np.nan
    one = latentmf.gradients_dense(R, U, V, threads=1)
    two = latentmf.gradients_dense(R, U, V, threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
