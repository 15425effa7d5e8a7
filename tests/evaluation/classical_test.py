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
