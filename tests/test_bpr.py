"""Bayesian personalized ranking on the block grid: the grid and its per-epoch item groups, the
triples of a sub-epoch, determinism over threads and over splits of the epochs, the reference
itself, the model's own behaviour, and bad input. The native sub-epoch against its reference twin
is in test_parity.py; the model contract in test_estimators.py."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf
from latentmf import _core, reference

from conftest import random_ratings

# Determinism and the grid's structure hold at every kernel level.
pytestmark = pytest.mark.usefixtures("isa")


def _grid(ratings, blocks, seed, epoch):
    offsets, items = ratings.summed().items_by_user()
    grid = _core.BprGrid(offsets, items, ratings.n_items, blocks, seed)
    grid.bucket(epoch, 0)
    return grid


def _epoch_triples(ratings, blocks, seed, epoch):
    """The triples of every sub-epoch of one epoch, and the sub-epoch of each."""
    parts = [latentmf.bpr_triples(ratings, epoch=epoch, sub_epoch=s, blocks=blocks, seed=seed) for s in range(blocks)]
    sub_epochs = np.concatenate([np.full(len(part[0]), s) for s, part in enumerate(parts)])
    return [np.concatenate(column) for column in zip(*parts)], sub_epochs


@pytest.fixture(scope="module")
def interactions():
    return random_ratings(np.random.default_rng(3), 70, 50, 900)


class TestGrid:
    @pytest.mark.parametrize("blocks", [1, 3, 8])
    def test_item_groups_are_balanced_and_drawn_anew_every_epoch(self, interactions, blocks):
        grid = _grid(interactions, blocks, seed=4, epoch=0)
        users, first = grid.user_groups(), grid.item_groups()
        for groups, n in ((users, 70), (first, 50)):
            sizes = np.bincount(groups, minlength=blocks)
            assert sizes.sum() == n and sizes.max() - sizes.min() <= 1
        assert grid.block_sizes().sum() == len(interactions)
        grid.bucket(1, 0)
        np.testing.assert_array_equal(grid.user_groups(), users)  # the user side never moves
        assert blocks == 1 or not np.array_equal(grid.item_groups(), first)
        assert grid.block_sizes().sum() == len(interactions)
        grid.bucket(0, 2)
        np.testing.assert_array_equal(grid.item_groups(), first)  # a function of (seed, epoch) alone

    def test_the_blocks_hold_the_positives_of_their_groups(self, interactions):
        grid = _grid(interactions, 4, seed=2, epoch=3)
        p = grid.user_groups()[interactions.users]
        q = grid.item_groups()[interactions.items]
        expected = np.zeros((4, 4), dtype=np.int64)
        np.add.at(expected, (p, q), 1)
        np.testing.assert_array_equal(grid.block_sizes(), expected)

    def test_repeated_pairs_are_one_positive(self):
        pairs = latentmf.Ratings(np.array([0, 0, 1, 0]), np.array([2, 2, 1, 0]), np.ones(4), 2, 3)
        triples, _ = _epoch_triples(pairs, 1, 0, 0)
        assert sorted(zip(triples[0].tolist(), triples[1].tolist())) == [(0, 0), (0, 2), (1, 1)]


class TestTriples:
    @pytest.mark.parametrize("blocks, epoch", [(1, 0), (3, 2), (8, 5)])
    def test_an_epoch_contrasts_each_positive_once_with_an_item_of_its_group(self, interactions, blocks, epoch):
        (users, positives, negatives), sub_epochs = _epoch_triples(interactions, blocks, 6, epoch)
        grid = _grid(interactions, blocks, 6, epoch)
        user_groups, item_groups = grid.user_groups(), grid.item_groups()
        pairs = set(zip(interactions.users.tolist(), interactions.items.tolist()))
        seen = list(zip(users.tolist(), positives.tolist()))
        assert set(seen) <= pairs and len(set(seen)) == len(seen)
        # a positive is left out only when all its draws met the user's positives: rare here
        assert len(seen) >= 0.97 * len(pairs)
        assert not any((n, j) in pairs for n, j in zip(users.tolist(), negatives.tolist()))
        np.testing.assert_array_equal(item_groups[negatives], item_groups[positives])
        # each sub-epoch runs blocks that share no user group and no item group
        for s in range(blocks):
            inside = sub_epochs == s
            shift = (item_groups[positives[inside]] - user_groups[users[inside]]) % blocks
            assert len(np.unique(shift)) <= 1

    def test_across_epochs_items_meet_items_of_every_group(self, interactions):
        blocks = 4
        first_groups = _grid(interactions, blocks, 1, 0).item_groups()
        met = set()
        for epoch in range(6):
            (_, positives, negatives), _ = _epoch_triples(interactions, blocks, 1, epoch)
            met |= set(zip(first_groups[positives].tolist(), first_groups[negatives].tolist()))
        # with one fixed partition only the diagonal (same group) would ever be met
        assert met == {(a, b) for a in range(blocks) for b in range(blocks)}

    def test_the_same_arguments_give_the_same_triples(self, interactions):
        one = latentmf.bpr_triples(interactions, epoch=1, sub_epoch=2, blocks=3, seed=9)
        two = latentmf.bpr_triples(interactions, epoch=1, sub_epoch=2, blocks=3, seed=9)
        other = latentmf.bpr_triples(interactions, epoch=2, sub_epoch=2, blocks=3, seed=9)
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(one[2], other[2][:len(one[2])])


class TestDeterminism:
    @pytest.fixture(scope="class")
    @staticmethod
    def many():
        """Enough positives per sub-epoch (75,000) for three threads to share each."""
        return random_ratings(np.random.default_rng(8), 3000, 2000, 300_000)

    @pytest.mark.parametrize("biases, dtype", [(True, "float32"), (False, "float64")])
    def test_the_same_bits_for_one_two_and_three_threads(self, many, biases, dtype):
        fits = [latentmf.BayesianPersonalizedRanking(16, epochs=2, blocks=4, biases=biases, dtype=dtype,
                                                     threads=threads).fit(many) for threads in (1, 2, 3)]
        for other in fits[1:]:
            np.testing.assert_array_equal(fits[0].U, other.U)
            np.testing.assert_array_equal(fits[0].V, other.V)
            if biases:
                np.testing.assert_array_equal(fits[0].item_bias_, other.item_bias_)
            np.testing.assert_array_equal(fits[0].history_["loss"], other.history_["loss"])

    def test_epochs_split_between_fit_and_partial_fit_give_the_same_model(self, interactions):
        whole = latentmf.BayesianPersonalizedRanking(8, epochs=5, blocks=3).fit(interactions)
        parts = latentmf.BayesianPersonalizedRanking(8, epochs=1, blocks=3).fit(interactions)
        parts.partial_fit(epochs=3).partial_fit(interactions, epochs=1)
        for name in ("U", "V", "item_bias_"):
            np.testing.assert_array_equal(getattr(whole, name), getattr(parts, name))
        np.testing.assert_array_equal(whole.history_["loss"], parts.history_["loss"])


class TestReference:
    def test_one_step_by_hand(self):
        U = np.array([[1.0, 0.0]])
        V = np.array([[0.5, 0.0], [0.0, 1.0]])
        bias = np.array([0.0, np.log(2.0) - 0.5])
        loss = reference.bpr_sub_epoch(([0], [0], [1]), U, V, 0.1, 0.2, item_bias=bias)
        # x = 1 * 0.5 - (log 2 - 0.5) = 1 - log 2 ... chosen so that sigma(-x) is simple:
        x = 0.5 - (np.log(2.0) - 0.5)
        g = 1.0 / (1.0 + np.exp(x))
        squares = 1.0 + 0.25 + 1.0 + (np.log(2.0) - 0.5) ** 2
        assert loss == pytest.approx(np.log1p(np.exp(-x)) + 0.1 * squares, rel=1e-14)
        np.testing.assert_allclose(U, [[1.0 + 0.1 * (g * 0.5 - 0.2), 0.1 * (-g)]], rtol=1e-14)
        np.testing.assert_allclose(V, [[0.5 + 0.1 * (g - 0.1), 0.0], [-0.1 * g, 1.0 - 0.02]], rtol=1e-14)
        np.testing.assert_allclose(bias, [0.1 * g, (np.log(2.0) - 0.5) * 0.98 - 0.1 * g], rtol=1e-14)

    def test_the_step_is_minus_eta_times_the_gradient_of_the_triples_loss(self, rng):
        U, V = rng.standard_normal((1, 5)), rng.standard_normal((3, 5))
        bias = rng.standard_normal(3)
        eta, lam = 1e-3, 0.3

        def loss(parameters):
            u, a, b, bi, bj = parameters[:5], parameters[5:10], parameters[10:15], parameters[15], parameters[16]
            x = u @ (a - b) + bi - bj
            return np.log1p(np.exp(-x)) + lam / 2 * (u @ u + a @ a + b @ b + bi**2 + bj**2)

        before = np.concatenate([U[0], V[2], V[0], bias[2:3], bias[0:1]])
        reference.bpr_sub_epoch(([0], [2], [0]), U, V, eta, lam, item_bias=bias)
        after = np.concatenate([U[0], V[2], V[0], bias[2:3], bias[0:1]])
        h = 1e-6
        gradient = np.array([(loss(before + h * e) - loss(before - h * e)) / (2 * h) for e in np.eye(17)])
        np.testing.assert_allclose((after - before) / -eta, gradient, rtol=1e-6, atol=1e-8)

    def test_extreme_scores_neither_overflow_nor_lose_the_loss(self):
        U = np.array([[1e4]])
        V = np.array([[-1.0], [1.0]])
        loss = reference.bpr_sub_epoch(([0], [0], [1]), U, V, 1e-9, 0.0)
        assert loss == pytest.approx(2e4)
        native = latentmf.bpr_sub_epoch((np.array([0]), np.array([0]), np.ones(1)), np.array([[1e4]]),
                                        np.array([[-1.0], [1.0]]), 1e-9, blocks=1)
        assert native == pytest.approx(2e4)


class TestModel:
    def test_it_learns_to_rank_held_out_interactions(self):
        """Five communities of users, each choosing 15 of the 40 items of its own cluster: the
        held-out items are those of the user's cluster, which only the factors can tell."""
        rng = np.random.default_rng(0)
        community = rng.integers(0, 5, 300)
        items = np.concatenate([rng.choice(np.arange(c, 200, 5), 15, replace=False) for c in community])
        data = latentmf.Ratings(np.repeat(np.arange(300), 15), items, np.ones(len(items)), 300, 200)
        train, test = data.split_by_user(0.2, seed=0)
        model = latentmf.BayesianPersonalizedRanking(8, epochs=20).fit(train, validation=test)
        ndcg = model.history_["validation_ndcg"]
        assert ndcg[-1] > ndcg[0] + 0.1
        assert model.history_["loss"][-1] < model.history_["loss"][0]

    @pytest.mark.parametrize("biases", [False, True])
    def test_fold_in_is_the_least_squares_fit_of_the_items(self, interactions, biases):
        model = latentmf.BayesianPersonalizedRanking(6, epochs=3, biases=biases, dtype="float64").fit(interactions)
        items = np.array([3, 7, 11])
        user = model.fold_in(items)
        V, n_items = model.V, model.n_items_
        target = np.zeros(n_items)
        target[items] = 1.0
        if biases:  # the user's offset is one more column, which ranking ignores
            V = np.column_stack([V, np.ones(n_items)])
            target -= model.item_bias_
        solution = np.linalg.solve(V.T @ V + model.regularization * np.eye(V.shape[1]), V.T @ target)
        np.testing.assert_allclose(user.factors, solution[:6], rtol=1e-8, atol=1e-10)
        assert user.bias == 0.0

    def test_a_model_with_item_biases_ranks_by_them_too(self, interactions):
        model = latentmf.BayesianPersonalizedRanking(4, epochs=3).fit(interactions)
        scores = model.U[5] @ model.V.T + model.item_bias_
        np.testing.assert_allclose(model.predict(np.full(50, 5), np.arange(50)), scores, rtol=1e-5, atol=1e-6)
        items, _ = model.recommend(5, k=50, exclude_seen=False)
        np.testing.assert_array_equal(items, np.argsort(-scores, kind="stable"))

    def test_a_diverging_step_is_rolled_back(self, interactions):
        model = latentmf.BayesianPersonalizedRanking(4, epochs=2, learning_rate=1e30, init_std=1e10)
        with pytest.raises(FloatingPointError, match="learning_rate"):
            model.fit(interactions)


class TestBadInput:
    @pytest.fixture
    def problem(self, interactions, rng):
        grid = _grid(interactions, 3, 0, epoch=2)
        U = rng.standard_normal((70, 4))
        V = rng.standard_normal((50, 4))
        return grid, U, V, rng.standard_normal(50)

    @pytest.mark.parametrize("change, match", [
        ({"epoch": 1}, "arranged for epoch 2, not for epoch 1"),
        ({"sub_epoch": 3}, "sub_epoch must be in"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"regularization": -1.0}, "regularization"),
        ({"U": np.zeros((69, 4))}, "U has 69 rows"),
        ({"V": np.zeros((50, 3))}, "same number of columns"),
        ({"item_bias": np.zeros(49)}, "item_bias has length 49"),
    ])
    def test_bad_arguments_raise_naming_them_and_change_nothing(self, problem, change, match):
        grid, U, V, bias = problem
        arguments = {"U": U, "V": V, "item_bias": bias, "learning_rate": 0.1, "regularization": 0.1, "epoch": 2,
                     "sub_epoch": 0, **change}
        before = [array.copy() for array in (U, V, bias)]
        with pytest.raises(ValueError, match=match):
            _core.bpr_sub_epoch(grid, threads=0, **arguments)
        for array, copy in zip((U, V, bias), before):
            np.testing.assert_array_equal(array, copy)

    def test_a_read_only_or_float32_array_is_refused(self, problem):
        grid, U, V, bias = problem
        V.flags.writeable = False
        with pytest.raises(ValueError, match="V must be writeable"):
            _core.bpr_sub_epoch(grid, U, V, bias, 0.1, 0.1, 2, 0, 0)
        with pytest.raises(TypeError, match="item_bias must have dtype float64"):
            _core.bpr_sub_epoch(grid, U, V.copy(), bias.astype(np.float32), 0.1, 0.1, 2, 0, 0)

    @pytest.mark.parametrize("offsets, items, match", [
        ([0, 2, 3], [1, 0, 2], "items\\[1\\] = 0 of user 0 does not follow"),
        ([0, 2, 3], [1, 1, 2], "sorted and distinct"),
        ([0, 2, 3], [1, 5, 2], "items\\[1\\] = 5 is outside \\[0, n_items=4\\)"),
        ([0, 3, 2, 3], [1, 2, 3], "must not decrease"),
        ([0, 5, 3], [1, 2, 3], "offsets\\[1\\] = 5 exceeds the number of items, 3"),
        ([0, 1, 2], [1, 2, 3], "must be the number of items, 3"),
        ([1, 2, 3], [1, 2, 3], "offsets\\[0\\] must be 0"),
    ])
    def test_bad_positives_are_refused(self, offsets, items, match):
        with pytest.raises(ValueError, match=match):
            _core.BprGrid(np.array(offsets, dtype=np.int64), np.array(items, dtype=np.int32), 4, 2, 0)

    def test_bad_blocks(self):
        with pytest.raises(ValueError, match="blocks must be in \\[1, 1024\\]"):
            _core.BprGrid(np.array([0, 1], dtype=np.int64), np.array([0], dtype=np.int32), 4, 0, 0)
        with pytest.raises(ValueError, match="blocks"):
            latentmf.BayesianPersonalizedRanking(blocks=0).fit((np.array([0]), np.array([0])))
