import json

import numpy as np
import pandas as pd
import pytest

from keras_bigml.errors import ConfigError, DataError
from keras_bigml.workflows.classical import train_classical


def table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return pd.DataFrame(X, columns=["a", "b", "c"]).assign(target=(X[:, 0] + X[:, 1] > 0).astype(int))


def test_trains_reports_and_saves(tmp_path):
    result = train_classical("logistic_regression", table(), tmp_path, target="target")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == result.report and report["test"]["accuracy"] > 0.9
    assert report["train_rows"] == 150 and report["test_rows"] == 50
    assert {"model", "report", "confusion_matrix", "roc_curve", "feature_importance"} <= set(result.paths)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(algorithm="forest"), ConfigError, "Unknown algorithm 'forest'"),
    (dict(task="ranking"), ConfigError, "Unknown task 'ranking'"),
    (dict(algorithm="logistic_regression", task="regression"), ConfigError, "does not do regression"),
    (dict(test_size=0), ConfigError, "test_size must be a share of the rows between 0 and 1, got 0"),
    (dict(test_size=1.0), ConfigError, "test_size must be a share"),
    (dict(tune_method="bayes"), ConfigError, "Search method 'bayes' is not available on the memory engine"),
    (dict(target="price"), DataError, "no target column 'price'; its columns are a, b, c, target"),
    (dict(data=table().assign(target=1)), DataError, "has one class \\(1 in all 200 rows\\)"),
    (dict(data=table().assign(target=[0, 1] * 99 + [2, 3])), DataError, "Class 2 .* has only 1 row"),
    (dict(data=table().iloc[:0]), DataError, "has no rows"),
    (dict(data=table().assign(d=np.nan)), DataError, "no values at all: d"),
    (dict(data=table().assign(d=np.inf)), DataError, "infinite values in columns d"),
    (dict(data=table(8), test_size=0.1), ConfigError, "each side needs a row of each of the 2 classes"),
    (dict(data=table(12), tune_method="grid"), DataError, "5-fold cross-validation needs at least"),
])
def test_bad_input_is_refused_with_one_sentence(tmp_path, kwargs, error, message):
    args = {"algorithm": "decision_tree", "data": table(), "target": "target", **kwargs}
    with pytest.raises(error, match=message) as caught:
        train_classical(args.pop("algorithm"), args.pop("data"), tmp_path, **args)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "report.json").exists()


def test_a_csv_header_repeating_the_target_does_not_train(tmp_path):
    path = tmp_path / "dup.csv"
    table().assign(copy=lambda t: t["target"]).rename(columns={"copy": "target"}).to_csv(path, index=False)
    with pytest.raises(DataError, match="repeats the column name 'target'"):
        train_classical("random_forest", path, tmp_path / "run", target="target")
    assert not (tmp_path / "run").exists()
