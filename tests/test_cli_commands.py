"""The train, evaluate, predict and recommend commands, run as a user would: files in, ids out."""

from __future__ import annotations

import builtins
import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

import latentmf
from latentmf import _tables, cli
from latentmf.cli import main

from conftest import ML100K, random_ratings


@pytest.fixture
def ratings_csv(tmp_path, rng):
    """A CSV of ratings with string user ids and sparse integer item ids, and its Ratings."""
    dense = random_ratings(rng, 40, 30, 800)
    path = tmp_path / "ratings.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        for n, (u, i, r) in enumerate(zip(dense.users, dense.items, dense.values)):
            writer.writerow([f"user{u}", 100 + 3 * int(i), round(float(r), 1), 1000 + n])
    return path


def _run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _train(capsys, tmp_path, data, *extra):
    model = tmp_path / "model.npz"
    code, out, err = _run(capsys, "train", data, "-o", model, "--factors", 4, "--epochs", 3, "--no-progress",
                          *extra)
    assert code == 0, err
    return model, out


def test_train_prints_each_epoch_and_writes_a_model_with_the_files_ids(capsys, tmp_path, ratings_csv):
    model_path, out = _train(capsys, tmp_path, ratings_csv, "--split", "user", "--test-size", 0.2)
    lines = out.splitlines()
    assert lines[0].startswith("Training a MatrixFactorization on") and "holding out" in lines[0]
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["1/3", "2/3", "3/3"]
    assert all("validation RMSE" in line for line in lines if line.startswith("epoch"))
    model = latentmf.load(model_path)
    assert model.user_ids_.kind == "str" and model.item_ids_.ids[0] == 100


def test_a_learning_rate_for_a_solver_without_one_is_refused(capsys, tmp_path, ratings_csv):
    for solver in ("als", "gibbs"):
        code, _, err = _run(capsys, "train", ratings_csv, "--solver", solver, "--learning-rate", 0.1,
                            "-o", tmp_path / "m.npz")
        assert code == 2 and f"--solver {solver} takes no --learning-rate (it is for adagrad, sgd, gd)" in err
    assert not (tmp_path / "m.npz").exists()
    model_path, _ = _train(capsys, tmp_path, ratings_csv, "--solver", "sgd", "--learning-rate", 0.02)
    assert latentmf.load(model_path).settings_["learning_rate"] == 0.02


def test_als_takes_its_spectral_start_and_no_other_solver_does(capsys, tmp_path, ratings_csv):
    model_path, _ = _train(capsys, tmp_path, ratings_csv, "--solver", "als", "--init", "spectral", "--factors", 2)
    assert latentmf.load(model_path).settings_["init"] == "spectral"
    code, _, err = _run(capsys, "train", ratings_csv, "--init", "spectral", "-o", tmp_path / "m.npz")
    assert code == 2 and "--init is for --solver als" in err


def test_recommend_and_predict_speak_the_files_ids(capsys, tmp_path, ratings_csv):
    model_path, _ = _train(capsys, tmp_path, ratings_csv)
    model = latentmf.load(model_path)
    code, out, _ = _run(capsys, "recommend", model_path, "--user", "user3", "--user", "user7", "-k", 4)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 8 and rows[0]["user"] == "user3" and rows[0]["rank"] == "1"
    items, scores = model.recommend("user3", k=4)
    assert [int(r["item"]) for r in rows[:4]] == items.tolist()
    np.testing.assert_allclose([float(r["score"]) for r in rows[:4]], scores, rtol=1e-6)

    code, out, _ = _run(capsys, "predict", model_path, "--user", "user3", "--item", 103, "--item", 106,
                        "--format", "json")
    records = json.loads(out)
    assert code == 0 and [r["item"] for r in records] == [103, 106] and records[0]["user"] == "user3"
    np.testing.assert_allclose([r["prediction"] for r in records], model.predict(["user3"] * 2, [103, 106]),
                               rtol=1e-6)

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("user3\t103\nuser5\t109\n")
    output = tmp_path / "predictions.csv"
    assert _run(capsys, "predict", model_path, pairs, "--no-header", "-o", output)[0] == 0
    rows = list(csv.DictReader(open(output)))
    assert [(r["user"], r["item"]) for r in rows] == [("user3", "103"), ("user5", "109")]

    code, out, _ = _run(capsys, "recommend", model_path, "--all", "-k", 2, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2 * model.n_users_


def test_evaluate_reports_every_metric(capsys, tmp_path, ratings_csv):
    model_path, _ = _train(capsys, tmp_path, ratings_csv, "--split", "random", "--seed", 5)
    code, out, err = _run(capsys, "evaluate", model_path, ratings_csv, "--split", "random", "--seed", 5,
                          "--format", "json", "-k", 5)
    assert code == 0, err
    report = json.loads(out)
    model = latentmf.load(model_path)
    test = latentmf.Ratings.from_dataframe(_tables.read_table(str(ratings_csv)), "userId", "movieId",
                                           timestamp="timestamp").split(0.2, seed=5)[1]
    assert report == pytest.approx(latentmf.metrics.evaluate(model, test, k=5))
    code, out, _ = _run(capsys, "evaluate", model_path, ratings_csv, "--split", "random", "--seed", 6)
    assert code == 0 and out.startswith("metric,value\nrmse,")


def test_early_stopping_and_time_split(capsys, tmp_path, ratings_csv):
    # A step large enough to overfit within a few epochs; at AdaGrad's default lambda (0.03) it diverges.
    _, out = _train(capsys, tmp_path, ratings_csv, "--split", "time", "--epochs", 30, "--early-stopping", 1,
                    "--learning-rate", 0.5, "--regularization", 0.07)
    assert "Kept epoch" in out


def test_plot_writes_a_png(capsys, tmp_path, ratings_csv):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curve.png"
    _, out = _train(capsys, tmp_path, ratings_csv, "--split", "random", "--plot", plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "learning curves" in out


@pytest.mark.parametrize("split, measure", [("user", "NDCG@10"), ("none", "loss")])
def test_a_ranking_model_plots_its_ndcg_or_its_loss(capsys, tmp_path, ratings_csv, split, measure):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curve.png"
    code, _, err = _run(capsys, "train", ratings_csv, "--model", "bpr", "-o", tmp_path / "bpr.npz", "--factors", 4,
                        "--epochs", 2, "--no-progress", "--split", split, "--plot", plot)
    assert code == 0, err
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli._curves(latentmf.load(tmp_path / "bpr.npz").history_)[0] == measure


def _hide(monkeypatch, *modules):
    real_import = builtins.__import__

    def hidden(name, *args, **kwargs):
        if name.split(".")[0] in modules:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", hidden)


def test_plot_without_matplotlib_says_what_to_install(capsys, tmp_path, ratings_csv, monkeypatch):
    _hide(monkeypatch, "matplotlib")
    code, _, err = _run(capsys, "train", ratings_csv, "-o", tmp_path / "m.npz", "--epochs", 1, "--no-progress",
                        "--plot", tmp_path / "c.png")
    assert code == 2 and "--plot needs matplotlib: pip install 'latentmf[plot]'" in err


def test_the_csv_module_reads_what_pandas_reads(tmp_path, ratings_csv, monkeypatch):
    pytest.importorskip("pandas")
    with_pandas = _tables.read_table(str(ratings_csv))
    _hide(monkeypatch, "pandas")
    without = _tables.read_table(str(ratings_csv))
    assert list(with_pandas) == list(without)
    for name in without:
        np.testing.assert_array_equal(with_pandas[name], without[name])
        assert with_pandas[name].dtype.kind == without[name].dtype.kind or name == "userId"


def test_parquet_input(capsys, tmp_path, ratings_csv):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow", exc_type=ImportError)
    parquet = tmp_path / "ratings.parquet"
    pd.read_csv(ratings_csv).to_parquet(parquet)
    model_path, _ = _train(capsys, tmp_path, parquet)
    assert latentmf.load(model_path).n_users_ == 40


def test_a_named_dataset(capsys, tmp_path):
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens 100k not found at {ML100K}")
    model_path = tmp_path / "model.npz"
    code, out, err = _run(capsys, "train", "--dataset", "ml-100k", "--data-dir", ML100K.parent, "--split", "time",
                          "--epochs", 2, "--no-progress", "-o", model_path)
    assert code == 0, err
    assert "943 users and 1682 items, holding out 943" in out
    code, out, _ = _run(capsys, "evaluate", model_path, "--dataset", "ml-100k", "--data-dir", ML100K.parent,
                        "--split", "time")
    assert code == 0 and "ndcg@10" in out
    code, out, _ = _run(capsys, "recommend", model_path, "--user", 196, "-k", 3)
    assert code == 0 and out.splitlines()[1].startswith("196,1,")


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "recommend"])
def test_every_command_has_help_a_new_user_can_follow(command):
    result = subprocess.run([sys.executable, "-m", "latentmf", command, "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: latentmf {command}")
    assert "--format" in result.stdout or command == "train"
    assert "examples:" in subprocess.run([sys.executable, "-m", "latentmf", "--help"], capture_output=True,
                                         text=True, timeout=120).stdout


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly():
    """`latentmf info | head -3` printed "error: [Errno 32] Broken pipe" and exited with 2."""
    child = subprocess.Popen([sys.executable, "-m", "latentmf", "info"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()  # before the child writes: its first write finds no reader
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 0 and err == ""


def test_an_unknown_user_names_the_command_line_option(capsys, tmp_path, ratings_csv):
    model_path, _ = _train(capsys, tmp_path, ratings_csv)
    code, _, err = _run(capsys, "recommend", model_path, "--user", "user999999", "--unknown", "error")
    assert code == 2
    assert err.strip() == ("latentmf recommend: error: users[0] = 'user999999' is not among the users of the "
                           "training data (--unknown mean answers unknown ids from the mean rating and biases)")
    code, out, err = _run(capsys, "recommend", model_path, "--user", "user999999", "--unknown", "mean", "-k", 2)
    assert code == 0 and len(out.splitlines()) == 3


def test_by_default_predict_answers_an_unknown_item_with_a_note(capsys, tmp_path, ratings_csv):
    model_path, _ = _train(capsys, tmp_path, ratings_csv, "--unknown", "warn")
    code, out, err = _run(capsys, "predict", model_path, "--user", "user1", "--item", "100", "--item", "99999")
    assert code == 0 and len(out.splitlines()) == 3
    assert err.strip() == ("latentmf predict: note: 1 of 2 pairs have a user or item the model was not trained on: "
                           "predicted from the mean rating and the known biases (unknown='mean' silences this, "
                           "unknown='error' refuses them)")


def test_a_rating_that_is_not_a_number_is_named_with_its_line(capsys, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\n1,2,4\n1,3,abc\n2,2,5\n")
    code, _, err = _run(capsys, "train", path, "-o", tmp_path / "m.npz", "--epochs", 1)
    assert code == 2 and err.strip() == f"latentmf train: error: {path}, line 3: the rating 'abc' is not a number"


def test_saving_into_a_missing_folder_names_the_folder(capsys, tmp_path, ratings_csv):
    target = tmp_path / "missing" / "m.npz"
    code, _, err = _run(capsys, "train", ratings_csv, "-o", target, "--epochs", 1, "--no-progress")
    assert code == 2
    assert err.strip().endswith(f"no such directory to save the model in: '{tmp_path / 'missing'}'")
    assert not (tmp_path / "missing").exists()


def _without_ratings(ratings_csv, plays):
    """The table of ratings_csv without its rating column, written to `plays`."""
    with open(ratings_csv) as source, open(plays, "w") as target:
        for line in source:
            user, item, _, stamp = line.rstrip("\n").split(",")
            target.write(f"{user},{item},{stamp}\n")
    return plays


def test_an_implicit_model_from_a_table_without_ratings(capsys, tmp_path, ratings_csv):
    plays = _without_ratings(ratings_csv, tmp_path / "plays.csv")
    model_path = tmp_path / "implicit.npz"
    code, out, err = _run(capsys, "train", plays, "--model", "implicit", "-o", model_path, "--factors", 4,
                          "--epochs", 2, "--no-progress", "--split", "user")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Training a ImplicitMatrixFactorization")
    model = latentmf.load(model_path)
    assert isinstance(model, latentmf.ImplicitMatrixFactorization) and model.user_ids_.kind == "str"
    code, out, _ = _run(capsys, "evaluate", model_path, plays, "--split", "user", "--format", "json")
    assert code == 0 and set(json.loads(out)) == {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage"}
    code, out, _ = _run(capsys, "recommend", model_path, "--user", "user3", "-k", 3)
    assert code == 0 and len(out.splitlines()) == 4
    code, _, err = _run(capsys, "train", plays, "-o", tmp_path / "r.npz")
    assert code == 2 and "has no rating column" in err
    code, _, err = _run(capsys, "train", ratings_csv, "--model", "implicit", "--solver", "sgd", "-o", model_path)
    assert code == 2 and "--model implicit takes no --solver" in err
    code, _, err = _run(capsys, "train", ratings_csv, "--model", "implicit", "--init", "spectral", "-o", model_path)
    assert code == 2 and "--model implicit takes no --solver, --learning-rate, --no-biases or --init" in err


def test_a_bpr_model_from_a_table_without_ratings(capsys, tmp_path, ratings_csv):
    plays = _without_ratings(ratings_csv, tmp_path / "plays.csv")
    model_path = tmp_path / "bpr.npz"
    code, out, err = _run(capsys, "train", plays, "--model", "bpr", "-o", model_path, "--factors", 4,
                          "--epochs", 2, "--learning-rate", 0.02, "--no-biases", "--no-progress", "--split", "user")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Training a BayesianPersonalizedRanking")
    model = latentmf.load(model_path)
    assert isinstance(model, latentmf.BayesianPersonalizedRanking) and model.learning_rate == 0.02
    assert not model.biases and model.history_["epoch"] == [0, 1]
    code, out, _ = _run(capsys, "evaluate", model_path, plays, "--split", "user", "--format", "json")
    assert code == 0 and set(json.loads(out)) == {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage"}
    code, out, _ = _run(capsys, "recommend", model_path, "--user", "user3", "-k", 3)
    assert code == 0 and len(out.splitlines()) == 4
    code, _, err = _run(capsys, "train", plays, "--model", "bpr", "--alpha", 1, "-o", model_path)
    assert code == 2 and "--model bpr takes no --solver, --alpha or --init" in err
