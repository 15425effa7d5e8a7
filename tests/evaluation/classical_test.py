import pickle

import numpy as np
import pytest
from PIL import Image

from keras_bigml.classical import make_model
from keras_bigml.data.tables import load_table
from keras_bigml.evaluation.classical import (
    classification_report,
    feature_importance,
    regression_report,
    save_report_plots,
)


class FixedClassifier:
    classes_ = np.array([0, 1])

    def predict(self, X):
        return np.array([0, 1, 1, 1])

    def predict_proba(self, X):
        return np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])


def test_classification_report_by_hand():
    report = classification_report(FixedClassifier(), np.zeros((4, 1)), np.array([0, 0, 1, 1]))
    assert report["accuracy"] == 0.75
    assert report["confusion_matrix"] == [[1, 1], [0, 2]]
    assert report["per_class"]["1"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["roc_auc"] == 1.0


def test_regression_report_by_hand():
    class Fixed:
        def predict(self, X):
            return np.array([1.0, 2.0, 5.0])

    report = regression_report(Fixed(), None, np.array([1.0, 3.0, 3.0]))
    assert report["mae"] == pytest.approx(1.0)
    assert report["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert report["r2"] == pytest.approx(1 - 5 / (8 / 3))


def test_multiclass_svm_without_probabilities_has_no_roc_but_binary_does():
    X, y = load_table("wine")
    assert "roc_auc" not in classification_report(make_model("svm").fit(X, y), X, y)
    X, y = load_table("breast_cancer")
    assert classification_report(make_model("svm").fit(X, y), X, y)["roc_auc"] > 0.95


@pytest.mark.parametrize("task, data, algorithm, expected", [
    ("classification", "wine", "random_forest", {"confusion_matrix", "roc_curve", "feature_importance"}),
    ("regression", "diabetes", "svm", {"predicted_vs_true", "feature_importance"}),
])
def test_report_plots_are_written_as_png(tmp_path, task, data, algorithm, expected):
    X, y = load_table(data)
    model = make_model(algorithm, task, random_state=0).fit(X, y)
    paths = save_report_plots(model, X, y, task, tmp_path)
    assert set(paths) == expected
    for path in paths.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 200


def test_feature_importance_own_or_permutation():
    X, y = load_table("breast_cancer")
    forest = make_model("random_forest", n_estimators=20, random_state=0).fit(X, y)
    names, values = feature_importance(forest, X, y)
    assert len(names) == 30 and values.sum() == pytest.approx(1.0)
    names, values = feature_importance(make_model("svm").fit(X, y), X, y)
    assert names == list(X.columns) and values.max() > 0


def merged_report(task, classes, y, predicted, scores=None, pieces=5, **options):
    from keras_bigml.evaluation.classical import PartitionReport

    reports = []
    for index in np.array_split(np.arange(len(y)), pieces):
        report = PartitionReport(task, classes, **options)
        report.update(y[index], predicted[index], None if scores is None else scores[index])
        reports.append(pickle.loads(pickle.dumps(report)))  # as Dask ships them
    first = reports[0]
    for other in reports[1:]:
        first.merge(other)
    return first


@pytest.mark.parametrize("num_classes", [2, 4])
def test_partition_report_matches_scikit_learn(num_classes):
    rng = np.random.default_rng(0)
    y = rng.integers(0, num_classes, 20_000)
    scores = rng.dirichlet(np.ones(num_classes), len(y))
    scores[np.arange(len(y)), y] += rng.uniform(0, 0.6, len(y))
    scores /= scores.sum(axis=1, keepdims=True)
    predicted = scores.argmax(axis=1)
    merged = merged_report("classification", list(range(num_classes)), y, predicted, scores)
    ours = merged.report()

    class Fixed:
        classes_ = np.arange(num_classes)

        def predict(self, X):
            return predicted

        def predict_proba(self, X):
            return scores

    exact = classification_report(Fixed(), None, y)
    assert set(ours) == set(exact)
    assert ours["confusion_matrix"] == exact["confusion_matrix"] and ours["accuracy"] == exact["accuracy"]
    for cls, values in exact["per_class"].items():
        assert ours["per_class"][cls] == pytest.approx(values)
    bound = merged.roc_auc_max_error()
    assert 0 < bound < 1e-3
    assert abs(ours["roc_auc"] - exact["roc_auc"]) <= bound


def test_partition_report_auc_error_bound_holds_with_coarse_bins():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    p = np.clip(0.5 * y + rng.uniform(0, 0.6, 5000), 0, 1)
    scores = np.column_stack([1 - p, p])
    from sklearn.metrics import roc_auc_score

    merged = merged_report("classification", [0, 1], y, (p > 0.5).astype(int), scores, bins=16)
    error = abs(merged.report()["roc_auc"] - roc_auc_score(y, p))
    assert 1e-3 < error <= merged.roc_auc_max_error()


def test_hinge_decisions_rank_like_probabilities_and_multiclass_decisions_give_no_auc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 4000)
    decision = 3 * (y - 0.5) + rng.normal(size=4000)
    scores = np.column_stack([-decision, decision])
    predicted = (decision > 0).astype(int)
    merged = merged_report("classification", [0, 1], y, predicted, scores, probabilities=False)
    assert merged.report()["roc_auc"] == pytest.approx(roc_auc_score(y, decision), abs=1e-3)
    three = merged_report("classification", [0, 1, 2], y, y, np.zeros((4000, 3)), probabilities=False)
    assert "roc_auc" not in three.report()


def test_partition_report_regression_matches_scikit_learn_and_keeps_a_sample():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 9000)
    predicted = y + rng.normal(0, 1, 9000)

    class Fixed:
        def predict(self, X):
            return predicted

    merged = merged_report("regression", None, y, predicted, pieces=7, sample=500)
    assert merged.report() == pytest.approx(regression_report(Fixed(), None, y))
    true, guessed = merged.sample()
    assert len(true) == 500 and np.isin(true, y).all()
    assert abs(np.mean(true) - 10) < 0.5  # uniform over the pieces, not only the first


def test_partition_report_plots(tmp_path):
    from keras_bigml.evaluation.classical import save_partition_report_plots

    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 600)
    scores = rng.dirichlet(np.ones(3), 600)
    report = merged_report("classification", ["a", "b", "c"], y, scores.argmax(axis=1), scores)
    paths = save_partition_report_plots(report, (["f0", "f1"], np.array([0.2, 0.8])), tmp_path)
    assert set(paths) == {"confusion_matrix", "roc_curve", "feature_importance"}
    regression = merged_report("regression", None, rng.normal(size=600), rng.normal(size=600))
    paths = save_partition_report_plots(regression, (["f0"], np.array([1.0])), tmp_path / "r")
    assert set(paths) == {"predicted_vs_true", "feature_importance"}
    for path in paths.values():
        with Image.open(path) as image:
            assert image.format == "PNG"
