"""Ratings from raw ids, data frames, SciPy sparse and dense matrices; IdMap; the three splits."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from latentmf import IdMap, Ratings

TABLE = {
    "user": ["ann", "bob", "ann", "cy", "bob", "cy", "ann"],
    "item": [30, 10, 20, 10, 30, 20, 10],
    "rating": [4.0, 3.0, 5.0, 2.0, 1.0, 4.5, 3.5],
    "time": [5, 1, 2, 9, 4, 3, 7],
}


def _check_table_ratings(ratings):
    assert (ratings.n_users, ratings.n_items) == (3, 3)
    assert ratings.user_ids.ids.tolist() == ["ann", "bob", "cy"]
    assert ratings.item_ids.ids.tolist() == [10, 20, 30]
    assert ratings.user_ids.to_ids(ratings.users).tolist() == TABLE["user"]
    assert ratings.item_ids.to_ids(ratings.items).tolist() == TABLE["item"]
    np.testing.assert_array_equal(ratings.values, TABLE["rating"])


class TestIdMap:
    def test_encode_maps_raw_ids_to_sorted_dense_indices_and_back(self):
        raw = np.array([70, 5, 70, 1000, 5, 5])
        indices, ids = IdMap.encode(raw)
        assert ids.ids.tolist() == [5, 70, 1000] and ids.kind == "int"
        assert indices.tolist() == [1, 0, 1, 2, 0, 0] and indices.dtype == np.int32
        np.testing.assert_array_equal(ids.to_ids(indices), raw)
        assert ids.to_index([1000, 5]).tolist() == [2, 0]

    def test_dense_integer_ids_need_no_map(self):
        indices, ids = IdMap.encode([2, 0, 1, 1])
        assert ids is None and indices.tolist() == [2, 0, 1, 1]
        # 1-based or with a gap, they are raw ids again
        assert IdMap.encode([1, 2, 3])[1].ids.tolist() == [1, 2, 3]
        assert IdMap.encode([0, 2])[1] is not None

    def test_strings_are_kept_as_fixed_width_unicode(self):
        indices, ids = IdMap.encode(np.array(["b", "a", "ccc", "a"], dtype=object))
        assert ids.ids.dtype.kind == "U" and ids.kind == "str"
        assert indices.tolist() == [1, 0, 2, 0]
        assert ids.to_index(["ccc", "zz"], unknown="ignore").tolist() == [2, -1]

    def test_unknown_and_mistyped_ids_are_errors_not_index_errors(self):
        _, ids = IdMap.encode(["x", "y"])
        with pytest.raises(ValueError, match=r"users\[1\] = 'q' is not a known id"):
            ids.to_index(["x", "q"], "users")
        with pytest.raises(TypeError, match="users must hold strings"):
            ids.to_index([1], "users")
        with pytest.raises(TypeError, match="integers or strings"):
            IdMap.encode([1.0, 2.0], "users")
        with pytest.raises(TypeError, match="NoneType"):
            IdMap.encode(np.array(["a", None], dtype=object), "users")
        with pytest.raises(ValueError, match="sorted"):
            IdMap([3, 1])

    def test_equality_pickling_and_read_only_ids(self):
        _, ids = IdMap.encode(["b", "a"])
        again = pickle.loads(pickle.dumps(ids))
        assert again == ids and again is not ids and again != IdMap([1, 2])
        with pytest.raises(ValueError):
            ids.ids[0] = "z"


class TestConstructors:
    def test_from_ids(self):
        _check_table_ratings(Ratings.from_ids(TABLE["user"], TABLE["item"], TABLE["rating"]))

    def test_from_a_mapping_of_columns_with_timestamps(self):
        ratings = Ratings.from_dataframe(TABLE, timestamp="time")
        _check_table_ratings(ratings)
        np.testing.assert_array_equal(ratings.timestamps, TABLE["time"])

    def test_from_pandas(self):
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame(TABLE).rename(columns={"user": "userId"})
        _check_table_ratings(Ratings.from_dataframe(frame, user="userId"))

    def test_from_polars(self):
        pl = pytest.importorskip("polars")
        _check_table_ratings(Ratings.from_dataframe(pl.DataFrame(TABLE), timestamp="time"))

    def test_from_an_arrow_table(self):
        pa = pytest.importorskip("pyarrow", exc_type=ImportError)
        _check_table_ratings(Ratings.from_dataframe(pa.table(TABLE)))

    def test_a_missing_column_is_named(self):
        with pytest.raises(ValueError, match=r"rating='stars' is not a column of df \(columns: user, item"):
            Ratings.from_dataframe(TABLE, rating="stars")
        with pytest.raises(TypeError, match="df must be a pandas or polars DataFrame"):
            Ratings.from_dataframe([1, 2, 3])

    def test_missing_ids_in_pandas_are_refused(self):
        pd = pytest.importorskip("pandas")
        frame = pd.DataFrame({"user": [1, None, 3], "item": [1, 2, 3], "rating": [1.0, 2.0, 3.0]})
        with pytest.raises(TypeError, match="users must hold integers or strings.*missing"):
            Ratings.from_dataframe(frame)

    def test_ids_from_reuses_the_maps_of_the_training_set(self):
        train = Ratings.from_ids(TABLE["user"], TABLE["item"], TABLE["rating"])
        test = Ratings.from_ids(["cy", "ann"], [30, 30], [1.0, 2.0], ids_from=train)
        assert test.user_ids is train.user_ids and (test.n_users, test.n_items) == (3, 3)
        assert test.users.tolist() == [2, 0] and test.items.tolist() == [2, 2]
        with pytest.raises(ValueError, match=r"users\[0\] = 'dan' is not a known id"):
            Ratings.from_ids(["dan"], [30], [1.0], ids_from=train)
        with pytest.raises(TypeError, match="ids_from must be"):
            Ratings.from_ids(["ann"], [30], [1.0], ids_from="train")

    @pytest.mark.parametrize("form", ["coo", "csr", "csc"])
    def test_from_scipy(self, form):
        sparse = pytest.importorskip("scipy.sparse")
        dense = np.array([[0.0, 4.0, 0.0], [1.0, 0.0, 2.5], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
        ratings = Ratings.from_scipy(sparse.coo_array(dense).asformat(form))
        assert (ratings.n_users, ratings.n_items) == (4, 3) and len(ratings) == 4
        rebuilt = np.zeros((4, 3))
        rebuilt[ratings.users, ratings.items] = ratings.values
        np.testing.assert_array_equal(rebuilt, dense)

    def test_from_scipy_sums_duplicates_without_touching_the_input(self):
        sparse = pytest.importorskip("scipy.sparse")
        matrix = sparse.coo_matrix(([1.0, 2.0, 5.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
        ratings = Ratings.from_scipy(matrix)
        assert sorted(zip(ratings.users.tolist(), ratings.items.tolist(), ratings.values.tolist())) == [
            (0, 1, 3.0), (1, 0, 5.0)]
        assert matrix.nnz == 3
        with pytest.raises(TypeError, match="sparse must be a SciPy sparse"):
            Ratings.from_scipy(np.eye(2))

    def test_from_dense_with_nan_or_mask(self):
        R = np.array([[np.nan, 4.0], [2.0, np.nan], [np.nan, np.nan]], dtype=np.float32)
        ratings = Ratings.from_dense(R)
        assert (ratings.n_users, ratings.n_items) == (3, 2) and ratings.values.dtype == np.float32
        assert list(zip(ratings.users.tolist(), ratings.items.tolist(), ratings.values.tolist())) == [
            (0, 1, 4.0), (1, 0, 2.0)]
        masked = Ratings.from_dense(np.nan_to_num(R), mask=~np.isnan(R))
        np.testing.assert_array_equal(masked.values, ratings.values)
        with pytest.raises(ValueError, match="mask must have R's shape"):
            Ratings.from_dense(R, mask=np.ones((2, 2), dtype=bool))
        with pytest.raises(ValueError, match=r"values\[0\] = nan"):
            Ratings.from_dense(R, mask=np.ones(R.shape, dtype=bool))

    def test_bad_constructor_arguments(self):
        with pytest.raises(ValueError, match="n_users=5 but user_ids maps 3 ids"):
            Ratings([0, 1], [0, 1], [1.0, 2.0], n_users=5, user_ids=IdMap([1, 2, 3]))
        with pytest.raises(ValueError, match="timestamps must have one entry per rating"):
            Ratings([0, 1], [0, 1], [1.0, 2.0], timestamps=[1])
        with pytest.raises(TypeError, match="timestamps must hold numbers"):
            Ratings([0, 1], [0, 1], [1.0, 2.0], timestamps=["a", "b"])


def _pairs(ratings):
    return set(zip(ratings.users.tolist(), ratings.items.tolist()))


class TestSplits:
    @pytest.fixture
    def ratings(self, rng):
        users = np.repeat(np.arange(20), np.arange(1, 21))  # user n has n + 1 ratings
        items = np.concatenate([rng.permutation(30)[:n + 1] for n in range(20)])
        times = rng.permutation(len(users))
        return Ratings.from_ids(users + 100, items, rng.uniform(1, 5, len(users)), timestamps=times)

    def test_parts_keep_maps_sizes_and_timestamps(self, ratings):
        for train, test in (ratings.split(0.3), ratings.split_by_user(0.3), ratings.split_by_time(2)):
            assert len(train) + len(test) == len(ratings) and not _pairs(train) & _pairs(test)
            assert train.user_ids is ratings.user_ids and test.n_users == ratings.n_users
            assert len(test.timestamps) == len(test)

    def test_split_by_user_holds_out_a_share_of_every_user(self, ratings):
        train, test = ratings.split_by_user(0.5, seed=3)
        counts = np.bincount(ratings.users, minlength=20)
        held = np.bincount(test.users, minlength=20)
        np.testing.assert_array_equal(held, np.minimum(np.rint(0.5 * counts), counts - 1))
        assert np.bincount(train.users, minlength=20).min() >= 1
        np.testing.assert_array_equal(ratings.split_by_user(0.5, seed=3)[1].items, test.items)
        assert not np.array_equal(ratings.split_by_user(0.5, seed=4)[1].items, test.items)
        np.testing.assert_array_equal(np.bincount(ratings.split_by_user(3)[1].users, minlength=20),
                                      np.minimum(3, counts - 1))

    def test_split_by_time_leaves_out_each_users_latest(self, ratings):
        train, test = ratings.split_by_time(2)
        for user in range(20):
            times = np.sort(ratings.timestamps[ratings.users == user])
            expected = times[-2:] if len(times) > 2 else times[1:]
            assert sorted(test.timestamps[test.users == user].tolist()) == sorted(expected.tolist())
            if len(times) > 2:
                assert train.timestamps[train.users == user].max() < expected.min()

    def test_split_by_time_orders_equal_times_by_position(self):
        ratings = Ratings([0, 0, 0], [0, 1, 2], [1.0, 2.0, 3.0], timestamps=[5, 5, 1])
        assert ratings.split_by_time(1)[1].items.tolist() == [1]

    def test_bad_split_arguments(self, ratings):
        with pytest.raises(ValueError, match="split_by_time needs timestamps"):
            Ratings([0, 0], [0, 1], [1.0, 2.0]).split_by_time()
        with pytest.raises(ValueError, match="test_size must be in"):
            ratings.split_by_user(1.5)
        with pytest.raises(ValueError, match="puts no rating in the test set"):
            Ratings([0, 1], [0, 1], [1.0, 2.0]).split_by_user(1)

