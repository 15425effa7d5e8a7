import json

import numpy as np
import pandas as pd
import pytest

from keras_bigml.classical.scaled import load_table_model
from keras_bigml.data.tables import PartitionedTable
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.workflows.classical import train_classical

FAST = {"n_threads": 1, "progress": False}  # one XGBoost thread: 2 busy cores slow OpenMP 10x


@pytest.fixture(autouse=True)
def one_thread():
    """scikit-learn's OpenMP too (HistGradientBoosting), for the in-memory references."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def table(n=6000, seed=0, task="classification"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    colour = rng.choice(["red", "green", "blue"], n)
    signal = 3 * X[:, 0] - 2 * X[:, 1] + 2 * X[:, 2] * X[:, 3] + 2 * np.sin(2 * X[:, 4]) + (colour == "red")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(colour=colour)
    frame.loc[::13, "x1"] = np.nan
    if task == "regression":
        return frame.assign(target=signal + rng.normal(size=n))
    if task == "multiclass":
        return frame.assign(target=np.digitize(signal + rng.normal(size=n), [-2.0, 0.0, 2.0]))
    return frame.assign(target=(rng.random(n) < 1 / (1 + np.exp(-2.5 * signal))).astype(int))


def write_parts(folder, frame, parts=4, **options):
    folder.mkdir(parents=True, exist_ok=True)
    for i, piece in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[piece].to_parquet(folder / f"part-{i:05d}.parquet", **options)
    return folder


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return write_parts(tmp_path_factory.mktemp("table") / "parts", table(), row_group_size=700)


def same_split_in_memory(source, algorithm, task="classification", params=None, test_size=0.25, seed=0):
    """The memory engine's pipeline trained and scored on exactly the rows the scaled engines use."""
    from keras_bigml.classical import make_model
    from keras_bigml.data.tables import RowSplit, open_table
    from keras_bigml.evaluation.classical import classification_report, regression_report

    table, split = open_table(source), RowSplit(test_size, seed=seed)
    frames, test = [], []
    for part in table.parts:
        for block, start, frame in table.batches(part):
            frames.append(frame)
            test.append(split.masks(split.draws(block, start, len(frame)))["test"])
    frame, test = pd.concat(frames, ignore_index=True), np.concatenate(test)
    X, y = frame.drop(columns="target"), frame["target"]
    model = make_model(algorithm, task, random_state=seed, **(params or {})).fit(X[~test], y[~test])
    evaluate = classification_report if task == "classification" else regression_report
    return evaluate(model, X[test], y[test])


@pytest.fixture(scope="module")
def in_memory(parts):
    cache = {}

    def score(algorithm):
        if algorithm not in cache:
            cache[algorithm] = same_split_in_memory(parts, algorithm)
        return cache[algorithm]

    return score


# (algorithm, metric, tolerance, in-memory algorithm to compare with). The forest is XGBoost's,
# with trees stopped at depth 10 (scikit-learn's grow to purity); the SVM is linear here, so it
# is compared with the in-memory linear model, not with the kernel SVM.
CASES = [
    ("gradient_boosting", "roc_auc", 0.01, "gradient_boosting"),
    ("random_forest", "roc_auc", 0.03, "random_forest"),
    ("decision_tree", "accuracy", 0.03, "decision_tree"),
    ("logistic_regression", "roc_auc", 0.005, "logistic_regression"),
    ("svm", "roc_auc", 0.01, "logistic_regression"),
]


@pytest.mark.parametrize("algorithm, metric, tolerance, reference", CASES)
def test_every_algorithm_scores_like_in_memory(parts, in_memory, tmp_path, algorithm, metric, tolerance,
                                              reference):
    result = train_classical(algorithm, parts, tmp_path, target="target", engine="out_of_core", **FAST)
    report = json.loads((tmp_path / "report.json").read_text())
    expected = in_memory(reference)
    assert set(report["test"]) == set(expected)
    assert report["test"][metric] == pytest.approx(expected[metric], abs=tolerance)
    assert report["engine"] == "out_of_core" and report["partitions"] == 4 and report["rows"] == 6000
    assert report["train_rows"] + report["test_rows"] == 6000
    assert abs(report["test_rows"] / 6000 - 0.25) < 0.03
    # A tree's few distinct scores share bins, so the bound (not the error: ties count half in
    # both) is large for it alone.
    assert report["roc_auc_max_error"]["test"] < (0.05 if algorithm == "decision_tree" else 1e-3)
    assert report["client_peak_mb"] > 0
    assert {"model", "report", "confusion_matrix", "roc_curve", "feature_importance"} <= set(result.paths)
    loaded = load_table_model(tmp_path)
    frame = table(300, seed=9)
    np.testing.assert_array_equal(loaded.predict(frame), result.model.predict(frame))


def test_batches_stay_bounded_and_no_pass_holds_the_table(parts, tmp_path, monkeypatch):
    largest = []
    batches = PartitionedTable.batches

    def counted(self, part, columns=None, batch_rows=None):
        for block, start, frame in batches(self, part, columns, batch_rows):
            largest.append(len(frame))
            yield block, start, frame

    monkeypatch.setattr(PartitionedTable, "batches", counted)
    for algorithm in ("gradient_boosting", "logistic_regression"):
        params = {"n_estimators": 5} if algorithm == "gradient_boosting" else None
        train_classical(algorithm, parts, tmp_path / algorithm, target="target", engine="out_of_core",
                        batch_rows=500, params=params, **FAST)
    assert len(largest) > 50 and max(largest) <= 500


# 30 boosting rounds at rate 0.3 on both sides; for noisy regression XGBoost also gets
# HistGradientBoosting's regularization (leaves of 20 rows or more, hence smaller trees).
BOOSTING = {"max_iter": 30, "learning_rate": 0.3}


@pytest.mark.parametrize("task, algorithm, metric, xgboost_params", [
    ("regression", "gradient_boosting", "r2", {"n_estimators": 30, "min_child_weight": 20, "max_depth": 5}),
    ("regression", "linear_regression", "r2", None),
    ("regression", "svm", "r2", None),
    ("multiclass", "gradient_boosting", "accuracy", {"n_estimators": 30}),
    ("multiclass", "logistic_regression", "accuracy", None),
])
def test_regression_and_several_classes(tmp_path, task, algorithm, metric, xgboost_params):
    folder = write_parts(tmp_path / "parts", table(3000, seed=1, task=task), parts=3)
    kind = "regression" if task == "regression" else "classification"
    memory = same_split_in_memory(folder, "linear_regression" if algorithm == "svm" else algorithm, kind,
                                  BOOSTING if algorithm == "gradient_boosting" else None)
    scaled = train_classical(algorithm, folder, tmp_path / "s", target="target", engine="out_of_core",
                             params=xgboost_params, **FAST).report
    assert scaled["task"] == kind and set(scaled["test"]) == set(memory)
    assert scaled["test"][metric] == pytest.approx(memory[metric], abs=0.02)
    if task == "regression":
        assert (tmp_path / "s" / "predicted_vs_true.png").exists()
    else:
        assert scaled["test"]["classes"] == [0, 1, 2, 3] and "roc_auc" in scaled["test"]


def test_one_file_by_row_groups_and_csv_parts(tmp_path):
    frame = table(3000, seed=2)
    frame.to_parquet(tmp_path / "one.parquet", row_group_size=1000)
    folder = tmp_path / "csv"
    folder.mkdir()
    for i in range(3):
        frame.iloc[i * 1000:(i + 1) * 1000].to_csv(folder / f"part-{i}.csv", index=False)
    reports = [train_classical("decision_tree", source, tmp_path / str(batch_rows), target="target",
                               engine="out_of_core", batch_rows=batch_rows, **FAST).report
               for source, batch_rows in ((tmp_path / "one.parquet", 1000), (tmp_path / "one.parquet", 300),
                                          (folder, 250))]
    assert [report["partitions"] for report in reports] == [3, 3, 3]
    # The split and the model depend on the rows, not on how they are batched.
    assert reports[0]["test_rows"] == reports[1]["test_rows"]
    assert reports[0]["test"] == reports[1]["test"]
    assert reports[2]["test"]["accuracy"] == pytest.approx(reports[0]["test"]["accuracy"], abs=0.05)


def test_tuning_searches_on_a_validation_split(parts, tmp_path):
    result = train_classical("gradient_boosting", parts, tmp_path, target="target", engine="out_of_core",
                             tune_method="random", n_iter=3, params={"n_estimators": 30}, **FAST)
    tuning = result.report["tuning"]
    results = pd.read_csv(tmp_path / "tuning.csv")
    assert len(results) == 3 and results["rank_test_score"].iloc[0] == 1
    assert tuning["best_cv_score"] == pytest.approx(results["mean_test_score"].max())
    assert tuning["best_params"]["n_estimators"] <= 30 and "max_depth" in tuning["best_params"]
    # A fifth of the training rows scored the candidates and are not in the final training rows.
    assert 0.55 < result.report["train_rows"] / 6000 < 0.65
    linear = train_classical("svm", parts, tmp_path / "svm", target="target", engine="out_of_core",
                             tune_method="grid", **FAST)
    assert len(pd.read_csv(tmp_path / "svm" / "tuning.csv")) == 5
    assert "alpha" in linear.report["tuning"]["best_params"]


def test_bad_requests_name_the_problem(parts, tmp_path):
    with pytest.raises(ConfigError, match="reads tables from files"):
        train_classical("gradient_boosting", table(100), tmp_path, target="target", engine="out_of_core")
    with pytest.raises(ConfigError, match="Unknown engine 'spark'"):
        train_classical("gradient_boosting", parts, tmp_path, target="target", engine="spark")
    with pytest.raises(ConfigError, match="'halving' is not available on the out_of_core engine"):
        train_classical("gradient_boosting", parts, tmp_path, target="target", engine="out_of_core",
                        tune_method="halving")
    with pytest.raises(DataError, match="has no target column 'price'; its columns are x0, x1"):
        train_classical("gradient_boosting", parts, tmp_path, target="price", engine="out_of_core")
    with pytest.raises(ConfigError, match="logistic_regression does not do regression"):
        train_classical("logistic_regression", parts, tmp_path, target="x0", engine="out_of_core", **FAST)
    with pytest.raises(ConfigError, match="Unknown parameter 'trees'"):
        train_classical("gradient_boosting", parts, tmp_path, target="target", engine="out_of_core",
                        params={"trees": 3}, **FAST)
    assert not (tmp_path / "report.json").exists()


def test_a_part_lost_during_training_is_named(tmp_path, monkeypatch):
    folder = write_parts(tmp_path / "parts", table(2000), parts=4)
    from keras_bigml.classical.out_of_core import OutOfCoreEngine

    stats = OutOfCoreEngine.stats

    def then_lose_a_part(self):
        result = stats(self)
        (folder / "part-00002.parquet").unlink()
        return result

    monkeypatch.setattr(OutOfCoreEngine, "stats", then_lose_a_part)
    with pytest.raises(DataError, match="Cannot read part .*part-00002.parquet"):
        train_classical("gradient_boosting", folder, tmp_path / "run", target="target", engine="out_of_core",
                        **FAST)
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_large_forest_trains_in_rounds_of_trees(parts, tmp_path, monkeypatch):
    """Rounds of 10 trees make one booster that scores as the forest grown in one round."""
    import keras_bigml.classical.scaled as scaled

    whole = train_classical("random_forest", parts, tmp_path / "whole", target="target", engine="out_of_core",
                            params={"n_estimators": 30}, **FAST)
    assert whole.model.boosters[0].num_boosted_rounds() == 1
    train_rows = whole.report["train_rows"]
    monkeypatch.setattr(scaled, "FOREST_ROUND_MEMORY", 4 * train_rows * 10)  # 10 trees a round
    result = train_classical("random_forest", parts, tmp_path / "rounds", target="target", engine="out_of_core",
                             params={"n_estimators": 30}, **FAST)
    (booster,) = result.model.boosters
    assert booster.num_boosted_rounds() == 3 and len(booster.get_dump()) == 30
    assert sorted(p.name for p in (tmp_path / "rounds").glob("*.ubj")) == ["model.ubj"]
    assert result.report["test"]["roc_auc"] == pytest.approx(whole.report["test"]["roc_auc"], abs=0.01)
    assert result.report["test"]["roc_auc"] > 0.9


def test_batches_are_joined_into_pages_of_bounded_size(parts, tmp_path):
    from keras_bigml.classical.out_of_core import OutOfCoreEngine, _Batches
    from keras_bigml.classical.scaled import Preprocessing
    from keras_bigml.data.tables import RowSplit, open_table

    width = 5 + 3  # five numbers and the three colours, one-hot
    sizes = {}
    for page_rows in (1, 1500, 10**6):
        engine = OutOfCoreEngine(open_table(parts), "target", RowSplit(0.25), batch_rows=500, progress=False,
                                 page_bytes=page_rows * width * 4)
        stats = engine.stats()
        prep = Preprocessing.from_stats(stats, scale=False)
        pages = _Batches(engine, prep.columns + ["target"], "train", prep, stats.classes(), str(tmp_path / "c"))
        sizes[page_rows] = seen = []
        while pages.next(lambda data, label, seen=seen: seen.append(len(data))):
            pass
        assert sum(sizes[page_rows]) == stats.train_rows
    # One page a batch: each part's row groups of 700, 700 and 100 rows in batches of at most 500.
    assert len(sizes[1]) == 4 * 5 and max(sizes[1]) <= 500
    assert len(sizes[1500]) < len(sizes[1]) and max(sizes[1500]) < 1500 + 500
    assert len(sizes[10**6]) == 1
