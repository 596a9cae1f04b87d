"""Data sets: a MovieLens-shaped synthetic generator that needs no download."""

from __future__ import annotations

import numpy as np

from ._checks import as_integer, as_real
from .data import Ratings


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """np.unique by sort and mask (np.unique is many times slower on large int64 arrays)."""
    keys = np.sort(keys)
    keep = np.empty(keys.size, dtype=bool)
    keep[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def synthetic(
    n_users: int = 6040,
    n_items: int = 3706,
    n_ratings: int = 1_000_000,
    *,
    rank: int = 16,
    noise: float = 0.5,
    seed: int = 0,
) -> Ratings:
    """MovieLens-shaped ratings drawn from a known low-rank model, built in memory.

    r = clip(round(3.6 + b_n + c_m + x_n . y_m + noise * N(0, 1)), 1, 5) as float32 stars, with
    b ~ N(0, 0.35^2), c ~ N(0, 0.45^2) and x, y of `rank` factors scaled so that x . y has standard
    deviation 0.9. Which pairs are rated follows MovieLens' skew: item popularity falls off as a
    power law (Zipf, exponent 0.9) and user activity is log-normal (sigma 1). Pairs are distinct;
    user and item indices are shuffled so that popularity does not follow the index. The
    defaults have the shape of MovieLens 1M. The same seed gives the same ratings.
    """
    n_users = as_integer(n_users, "n_users", 1)
    n_items = as_integer(n_items, "n_items", 1)
    n_ratings = as_integer(n_ratings, "n_ratings", 1)
    if n_ratings > 0.5 * n_users * n_items:
        raise ValueError(f"n_ratings={n_ratings} is more than half of the n_users * n_items = "
                         f"{n_users * n_items} possible pairs")
    rank = as_integer(rank, "rank", 1)
    noise = as_real(noise, "noise", 0.0)
    rng = np.random.default_rng(as_integer(seed, "seed", 0))

    item_weight = np.arange(1, n_items + 1, dtype=np.float64) ** -0.9
    item_p = rng.permutation(item_weight / item_weight.sum())
    user_weight = rng.lognormal(0.0, 1.0, size=n_users)
    user_p = user_weight / user_weight.sum()
    keys = np.empty(0, dtype=np.int64)
    while keys.size < n_ratings:
        draw = int(1.25 * (n_ratings - keys.size)) + 1000
        users = rng.choice(n_users, size=draw, p=user_p)
        items = rng.choice(n_items, size=draw, p=item_p)
        fresh = _sorted_unique(np.concatenate([keys, users.astype(np.int64) * n_items + items]))
        if fresh.size - keys.size < 0.01 * draw:
            # The busiest users have rated every popular item: fill up with uniform pairs.
            uniform = rng.integers(0, n_users * n_items, size=2 * (n_ratings - keys.size) + 1000)
            fresh = _sorted_unique(np.concatenate([fresh, uniform]))
        keys = fresh
    keys = rng.permutation(keys)[:n_ratings]
    users, items = keys // n_items, keys % n_items

    scale = (0.9**2 / rank) ** 0.25
    x = rng.normal(0.0, scale, size=(n_users, rank))
    y = rng.normal(0.0, scale, size=(n_items, rank))
    user_bias = rng.normal(0.0, 0.35, size=n_users)
    item_bias = rng.normal(0.0, 0.45, size=n_items)
    values = np.empty(n_ratings, dtype=np.float32)
    chunk = 1 << 20
    for start in range(0, n_ratings, chunk):
        u, i = users[start:start + chunk], items[start:start + chunk]
        r = 3.6 + user_bias[u] + item_bias[i] + np.einsum("ij,ij->i", x[u], y[i])
        r += rng.normal(0.0, noise, size=u.size)
        values[start:start + chunk] = np.clip(np.rint(r), 1, 5)
    return Ratings(users.astype(np.int32), items.astype(np.int32), values, n_users, n_items)
