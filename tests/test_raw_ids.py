"""A model fitted on raw ids answers in raw ids; unknown ids; similar items; fold-in of new users."""

from __future__ import annotations

import numpy as np
import pytest

import latentmf
from latentmf import Ratings

from conftest import random_ratings


def _raw_ratings(rng, n_users=40, n_items=30, n_ratings=600):
    """Ratings with string users ("u<index>") and sparse integer items (1000 + 7 * index)."""
    dense = random_ratings(rng, n_users, n_items, n_ratings)
    users = np.array([f"u{n:03d}" for n in range(n_users)])[dense.users]
    items = 1000 + 7 * dense.items.astype(np.int64)
    return Ratings.from_ids(users, items, dense.values), dense


@pytest.fixture
def fitted(rng):
    raw, dense = _raw_ratings(rng)
    params = dict(factors=4, epochs=5, dtype="float64", unknown="error")
    return latentmf.MatrixFactorization(**params).fit(raw), latentmf.MatrixFactorization(**params).fit(dense), dense


class TestRawIds:
    def test_the_model_keeps_the_maps_of_its_training_data(self, fitted):
        model, _, _ = fitted
        assert model.user_ids_.ids[3] == "u003" and model.item_ids_.ids[2] == 1014

    def test_predict_takes_raw_ids_and_matches_the_dense_model(self, fitted):
        model, dense_model, _ = fitted
        np.testing.assert_array_equal(model.U, dense_model.U)
        np.testing.assert_array_equal(model.predict(["u005", "u000"], [1007, 1203]),
                                      dense_model.predict([5, 0], [1, 29]))
        np.testing.assert_array_equal(model.predict(np.array([["u005", 1007]], dtype=object)),
                                      dense_model.predict([5], [1]))

    def test_recommend_returns_raw_item_ids(self, fitted):
        model, dense_model, _ = fitted
        items, scores = model.recommend("u007", k=5)
        dense_items, dense_scores = dense_model.recommend(7, k=5)
        assert items.tolist() == (1000 + 7 * dense_items).tolist()
        np.testing.assert_array_equal(scores, dense_scores)

    def test_recommend_all_maps_rows_and_masks_short_rows(self, fitted):
        model, dense_model, dense = fitted
        items, scores = model.recommend_all(["u002", "u010"], k=40)
        dense_items, dense_scores = dense_model.recommend_all([2, 10], k=40)
        np.testing.assert_array_equal(scores.mask, dense_scores.mask)
        np.testing.assert_array_equal(scores.compressed(), dense_scores.compressed())
        padded = dense_items.mask
        assert padded.any() and (items.mask == padded).all()
        np.testing.assert_array_equal(items.compressed(), 1000 + 7 * dense_items.compressed())
        for row, user in enumerate(["u002", "u010"]):
            single_items, single_scores = model.recommend(user, k=40)
            np.testing.assert_array_equal(items[row].compressed(), single_items)
            np.testing.assert_array_equal(scores[row].compressed(), single_scores)
        everyone = model.recommend_all(k=3)[0]
        assert everyone.shape == (40, 3) and model.recommend_all([], k=3)[0].shape == (0, 3)

    def test_string_item_ids_are_masked_where_a_row_is_short(self, rng):
        ratings = Ratings.from_ids([1, 1, 2], ["a", "b", "a"], [4.0, 3.0, 2.0])
        model = latentmf.MatrixFactorization(factors=2, epochs=2).fit(ratings)
        items, scores = model.recommend_all([1, 2], k=2)
        assert items.mask[0].all() and scores.mask[0].all()
        assert items[1].compressed().tolist() == ["b"] and items.mask[1].tolist() == [False, True]
        assert model.recommend(1).__len__() == 2 and len(model.recommend(1)[0]) == 0

    def test_an_item_whose_raw_id_is_minus_one_is_never_taken_for_padding(self):
        """recommend_all used to pad short rows with item -1, a real id here, and the metrics then
        dropped the real item -1 as padding."""
        ratings = Ratings.from_ids([10, 10, 20, 20, 30], [-1, 5, 5, 9, -1], [5.0, 3.0, 4.0, 2.0, 1.0])
        model = latentmf.MatrixFactorization(factors=2, epochs=3, seed=1).fit(ratings)
        items, scores = model.recommend_all([20], k=3)
        assert items[0].compressed().tolist() == [-1] and items.mask[0].tolist() == [False, True, True]
        assert np.isfinite(scores[0].compressed()).all()
        held_out = Ratings.from_ids([20], [-1], [4.0], ids_from=model)
        assert latentmf.metrics.precision_at_k((items, scores), held_out, k=1, users=[20]) == 1.0
        assert latentmf.metrics.coverage((items, scores), model.n_items_) == 1 / 3

    def test_unknown_ids_are_errors_that_name_them(self, fitted):
        model, dense_model, _ = fitted
        with pytest.raises(ValueError, match=r"users\[1\] = 'nobody' is not among the users of the training data"):
            model.predict(["u001", "nobody"], [1007, 1007])
        with pytest.raises(ValueError, match=r"user = 'nobody' is not among the users.*unknown='mean'"):
            model.recommend("nobody")
        with pytest.raises(ValueError, match=r"items\[0\] = 5 is not among the items"):
            model.predict(["u001"], [5])
        with pytest.raises(TypeError, match="users must hold strings"):
            model.predict([1], [1007])
        with pytest.raises(ValueError, match=r"users\[0\] = 40 is outside \[0, n_users=40\)"):
            dense_model.predict([40], [0])
        with pytest.raises(TypeError, match="user must be a single id"):
            model.recommend(["u001", "u002"])
        for call in (lambda: model.recommend_all(k=0), lambda: model.similar_items(1007, k=0),
                     lambda: model.recommend_for(model.fold_in([1007], [4.0]), k=0)):
            with pytest.raises(ValueError, match="k must be >= 1"):
                call()
        with pytest.raises(ValueError, match="users must be one id or a 1-dimensional array"):
            model.recommend_all([["u001"]])

    def test_by_default_predict_answers_unknown_ids_with_a_warning_and_recommend_refuses(self, fitted):
        model, _, _ = fitted
        model.set_params(unknown="warn")
        with pytest.warns(latentmf.UnknownIdWarning, match="2 of 3 pairs have a user or item the model was not "
                                                            "trained on"):
            predictions = model.predict(["u001", "nobody", "u001"], [1007, 1007, 5])
        model.set_params(unknown="mean")
        np.testing.assert_array_equal(predictions, model.predict(["u001", "nobody", "u001"], [1007, 1007, 5]))
        model.set_params(unknown="warn")
        with pytest.raises(latentmf.UnknownIdError, match="'nobody' is not among the users") as caught:
            model.recommend("nobody")
        assert "unknown='mean'" in caught.value.hint and caught.value.problem == (
            "user = 'nobody' is not among the users of the training data")
        with pytest.raises(ValueError, match="items\\[0\\] = 5 is not among the items"):
            model.fold_in([5], [4.0])

    def test_the_mean_policy_predicts_from_the_mean_and_known_biases(self, fitted):
        model, _, dense = fitted
        model.set_params(unknown="mean")
        known = model.predict(["u001"], [1007])
        predictions = model.predict(["u001", "nobody", "u001", "nobody"], [1007, 1007, 5, 5])
        assert predictions[0] == known[0]
        assert predictions[1] == pytest.approx(model.mean_rating_ + model.item_bias_[1])
        assert predictions[2] == pytest.approx(model.mean_rating_ + model.user_bias_[1])
        assert predictions[3] == pytest.approx(dense.mean)

    def test_the_mean_policy_recommends_by_item_bias_to_unknown_users(self, fitted):
        model, _, _ = fitted
        model.set_params(unknown="mean")
        items, scores = model.recommend("nobody", k=4)
        best = np.argsort(-model.item_bias_, kind="stable")[:4]
        assert items.tolist() == model.item_ids_.ids[best].tolist()
        np.testing.assert_allclose(scores, model.predict(["nobody"] * 4, items), rtol=1e-12)
        rows, _ = model.recommend_all(["u001", "nobody", "u002"], k=4)
        assert rows[1].tolist() == items.tolist()
        assert rows[0].tolist() == model.recommend("u001", k=4)[0].tolist()

    def test_the_mean_policy_without_biases_predicts_the_mean_rating(self, rng):
        ratings = random_ratings(rng, 10, 8, 40)
        model = latentmf.MatrixFactorization(factors=2, epochs=2, biases=False, unknown="mean").fit(ratings)
        assert model.predict([10], [0])[0] == pytest.approx(ratings.mean, rel=1e-6)
        assert model.recommend(99, k=2)[1] == pytest.approx([ratings.mean] * 2, rel=1e-6)


class TestSimilarItems:
    def test_similar_items_ranks_by_cosine_of_the_item_factors(self, fitted):
        model, _, _ = fitted
        items, similarities = model.similar_items(1007, k=5)
        V = model.V
        cosine = V @ V[1] / (np.linalg.norm(V, axis=1) * np.linalg.norm(V[1]))
        cosine[1] = -np.inf
        best = np.argsort(-cosine, kind="stable")[:5]
        assert items.tolist() == model.item_ids_.ids[best].tolist()
        np.testing.assert_allclose(similarities, cosine[best], rtol=1e-12)
        assert 1007 not in items.tolist()

    def test_an_unknown_item_is_always_an_error(self, fitted):
        model, _, _ = fitted
        model.set_params(unknown="mean")
        with pytest.raises(ValueError, match="item = 3 is not among the items of the training data$"):
            model.similar_items(3)


class TestFoldIn:
    def test_fold_in_solves_the_regularized_least_squares(self, fitted):
        model, _, _ = fitted
        items, values = [1007, 1014, 1021, 1070, 1105], np.array([5.0, 3.0, 4.0, 1.0, 2.0])
        factors, bias = model.fold_in(items, values)
        # The gradient of 1/2 sum [(r - mu - b - c_m - u.v_m)^2 + lambda (|u|^2 + b^2)] vanishes there.
        rows = model.item_ids_.to_index(items)
        V, c = model.V[rows], model.item_bias_[rows]
        errors = values - (model.global_mean_ + bias + c + V @ factors)
        lam, n = model.settings_["regularization"], len(values)
        np.testing.assert_allclose(-V.T @ errors + lam * n * factors, 0, atol=1e-10)
        assert -errors.sum() + lam * n * bias == pytest.approx(0, abs=1e-10)

    def test_fold_in_of_a_model_without_biases(self, rng):
        ratings = random_ratings(rng, 20, 12, 150)
        model = latentmf.MatrixFactorization(factors=3, epochs=3, biases=False, dtype="float64").fit(ratings)
        folded = model.fold_in([0, 3], [4.0, 2.0])
        assert folded.bias == 0.0 and folded.factors.shape == (3,)
        V = model.V[[0, 3]]
        gram = V.T @ V + model.settings_["regularization"] * 2 * np.eye(3)
        np.testing.assert_allclose(folded.factors, np.linalg.solve(gram, V.T @ [4.0, 2.0]), rtol=1e-10)

    def test_recommend_and_predict_for_a_folded_in_user(self, fitted):
        model, _, _ = fitted
        folded = model.fold_in([1007, 1014], [5.0, 1.0])
        items, scores = model.recommend_for(folded, k=4, exclude=[1007, 1014, 99])
        assert 1007 not in items.tolist() and 1014 not in items.tolist()
        expected = model.global_mean_ + folded.bias + model.item_bias_ + model.V @ folded.factors
        order = [m for m in np.argsort(-expected, kind="stable") if m not in (1, 2)][:4]
        assert items.tolist() == model.item_ids_.ids[order].tolist()
        np.testing.assert_allclose(model.predict_for(folded, items), scores, rtol=1e-12)
        np.testing.assert_allclose(scores, expected[order], rtol=1e-12)

    def test_no_ratings_give_zero_factors_and_unknown_items_follow_the_policy(self, fitted):
        model, _, _ = fitted
        empty = model.fold_in([], [])
        assert not empty.factors.any() and empty.bias == 0.0
        with pytest.raises(ValueError, match=r"items\[1\] = 3 is not among the items"):
            model.fold_in([1007, 3], [4.0, 4.0])
        model.set_params(unknown="mean")
        skipped = model.fold_in([1007, 3], [4.0, 4.0])
        np.testing.assert_array_equal(skipped.factors, model.fold_in([1007], [4.0]).factors)

    def test_bad_fold_in_arguments(self, fitted):
        model, _, _ = fitted
        U = model.U.copy()
        with pytest.raises(ValueError, match="same length"):
            model.fold_in([1007], [4.0, 5.0])
        with pytest.raises(ValueError, match="values must be finite"):
            model.fold_in([1007], [np.nan])
        with pytest.raises(TypeError, match="user must be the"):
            model.recommend_for(np.zeros(4))
        with pytest.raises(ValueError, match="with 4 factors"):
            model.recommend_for((np.zeros(3), 0.0))
        np.testing.assert_array_equal(model.U, U)
