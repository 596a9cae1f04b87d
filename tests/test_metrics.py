"""Each metric against a plain-Python loop over users of its textbook definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

import latentmf
from latentmf import Ratings, metrics

from conftest import random_ratings


def _relevant_sets(ratings, threshold=None):
    sets = {}
    for user, item, value in zip(ratings.users.tolist(), ratings.items.tolist(), ratings.values.tolist()):
        if threshold is None or value >= threshold:
            sets.setdefault(user, set()).add(item)
    return sets


def _lists(items, users, seen=None, k=None):
    """Each user's list as Python ints, padding (-1) dropped, seen items removed, cut to k."""
    lists = {}
    for row, user in zip(items.tolist(), users):
        kept = [m for m in row if m >= 0 and (seen is None or m not in seen.get(user, set()))]
        lists[user] = kept[:k]
    return lists


def _plain(name, lists, relevant, k):
    """The textbook definitions, one user at a time, averaged over users with a relevant item."""
    values = []
    for user, ranked in lists.items():
        truth = relevant.get(user, set())
        if not truth:
            continue
        hits = [m in truth for m in ranked[:k]]
        if name == "precision":
            values.append(sum(hits) / k)
        elif name == "recall":
            values.append(sum(hits) / len(truth))
        elif name == "ndcg":
            dcg = sum(1 / math.log2(j + 2) for j, hit in enumerate(hits) if hit)
            ideal = sum(1 / math.log2(j + 2) for j in range(min(len(truth), k)))
            values.append(dcg / ideal)
        else:
            total, found = 0.0, 0
            for j, hit in enumerate(hits):
                if hit:
                    found += 1
                    total += found / (j + 1)
            values.append(total / min(len(truth), k))
    return sum(values) / len(values)


METRICS = {"precision": metrics.precision_at_k, "recall": metrics.recall_at_k, "ndcg": metrics.ndcg_at_k,
           "map": metrics.map_at_k}


@pytest.fixture
def problem(rng):
    test = random_ratings(rng, 50, 40, 400)
    train = random_ratings(rng, 50, 40, 600)
    items = np.stack([rng.permutation(40)[:15] for _ in range(50)]).astype(np.int64)
    items[rng.random(items.shape) < 0.1] = -1  # some padding
    return items, test, train


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_ranking_metrics_match_the_definitions(problem, name, k):
    items, test, _ = problem
    users = list(range(50))
    expected = _plain(name, _lists(items, users), _relevant_sets(test), k)
    assert METRICS[name](items, test, k) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_threshold_exclude_and_users(problem, name):
    items, test, train = problem
    users = np.arange(49, 19, -1)  # rows for some users, in another order
    rows = items[:30]
    lists = _lists(rows, users.tolist(), seen=_relevant_sets(train))
    expected = _plain(name, lists, _relevant_sets(test, threshold=3.0), 5)
    got = METRICS[name](rows, test, 5, users=users, threshold=3.0, exclude=train)
    assert got == pytest.approx(expected, rel=1e-12)


def test_scores_mark_padding_and_raw_ids_are_mapped(rng):
    dense = random_ratings(rng, 20, 15, 120)
    ratings = Ratings.from_ids(np.array([f"u{n}" for n in range(20)])[dense.users], dense.items * 3 + 1,
                               dense.values)
    model = latentmf.MatrixFactorization(factors=3, epochs=3, dtype="float64").fit(ratings)
    dense_model = latentmf.MatrixFactorization(factors=3, epochs=3, dtype="float64").fit(dense)
    raw_lists = model.recommend_all(k=8)
    dense_lists = dense_model.recommend_all(k=8)
    for metric in METRICS.values():
        assert metric(raw_lists, ratings, 8) == metric(dense_lists, dense, 8)
        assert metric(raw_lists[0], ratings, 8) == metric(dense_lists[0], dense, 8)


def test_rmse_and_mae():
    truth, predicted = [1.0, 2.0, 4.0], [1.5, 2.0, 2.0]
    assert metrics.rmse(truth, predicted) == pytest.approx(math.sqrt((0.25 + 0 + 4) / 3))
    assert metrics.mae(truth, predicted) == pytest.approx((0.5 + 0 + 2) / 3)
    with pytest.raises(ValueError, match="same length|one length"):
        metrics.rmse([1.0], [1.0, 2.0])


def test_coverage():
    items = np.array([[0, 1, -1], [1, 2, -1]])
    assert metrics.coverage(items, 10) == 0.3
    scores = np.array([[1.0, 1.0, np.nan], [1.0, np.nan, np.nan]])
    assert metrics.coverage((items, scores), 4) == 0.5
    # strings are ids, whatever they are; masked entries are padding
    assert metrics.coverage(np.array([["a", ""], ["b", "a"]]), 4) == 0.75
    assert metrics.coverage(np.ma.MaskedArray([["a", ""], ["b", "a"]], mask=[[0, 1], [0, 0]]), 4) == 0.5
    # in a masked array, only the mask marks padding: -1 may be a real raw id
    assert metrics.coverage(np.ma.MaskedArray(items, mask=[[0, 0, 1], [0, 0, 0]]), 10) == 0.4


def test_bad_metric_arguments(problem):
    items, test, train = problem
    with pytest.raises(ValueError, match="k must be >= 1"):
        metrics.ndcg_at_k(items, test, 0)
    with pytest.raises(ValueError, match="recommended must be 2-dimensional"):
        metrics.ndcg_at_k(items[0], test)
    with pytest.raises(ValueError, match="users must name the user of each of the 50 rows"):
        metrics.ndcg_at_k(items, test, users=[1, 2])
    with pytest.raises(TypeError, match="relevant must be a latentmf.Ratings"):
        metrics.ndcg_at_k(items, (test.users, test.items, test.values))
    with pytest.raises(ValueError, match="no user of recommended has a relevant item"):
        metrics.precision_at_k(items, test, threshold=100.0)
    with pytest.raises(ValueError, match="exclude must use the ids of relevant"):
        metrics.precision_at_k(items, test, exclude=Ratings.from_ids(["a"], [1], [1.0]))


def test_evaluate_on_movielens(movielens_u1):
    train, test = movielens_u1
    model = latentmf.MatrixFactorization(epochs=5).fit(train)
    report = metrics.evaluate(model, test, k=10, threshold=4.0)
    assert set(report) == {"rmse", "mae", "precision@10", "recall@10", "ndcg@10", "map@10", "coverage"}
    assert report["rmse"] == pytest.approx(metrics.rmse(test.values, model.predict(test.users, test.items)))
    assert 0.85 < report["rmse"] < 1.1 and 0 < report["mae"] < report["rmse"]
    assert all(0 <= report[key] <= 1 for key in ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage"))
    # the model's lists beat random lists of unseen items
    rng = np.random.default_rng(0)
    random_lists = np.stack([rng.permutation(test.n_items)[:50] for _ in range(test.n_users)])
    assert report["ndcg@10"] > metrics.ndcg_at_k(random_lists, test, 10, threshold=4.0, exclude=train)


def test_evaluate_an_implicit_model_on_movielens(movielens_u1):
    """Ranking metrics only (its scores are not ratings); relevant = every held-out interaction."""
    train, test = movielens_u1
    model = latentmf.ImplicitMatrixFactorization().fit(train)
    report = metrics.evaluate(model, test, k=10)
    assert set(report) == {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage"}
    users = np.unique(test.users)
    lists = model.recommend_all(users, k=10)
    assert report["ndcg@10"] == metrics.ndcg_at_k(lists, test, 10, users=users)
    # with its defaults, far above the most popular unseen items, which a rating model's lists fell below
    popular = np.argsort(-np.bincount(train.items, minlength=train.n_items), kind="stable")
    popular_lists = np.tile(popular, (len(users), 1))
    assert report["ndcg@10"] > metrics.ndcg_at_k(popular_lists, test, 10, users=users, exclude=train) + 0.05
