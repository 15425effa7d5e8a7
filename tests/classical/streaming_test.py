import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from sklearn.ensemble import RandomForestClassifier
from sklearn.naive_bayes import GaussianNB

from keras_bigml.classical.streaming import fit_streaming, streaming_model
from keras_bigml.data.tables import iter_table_chunks, load_table


def breast_cancer_csv(tmp_path):
    X, y = load_table("breast_cancer")
    path = tmp_path / "bc.csv"
    X.assign(target=y).to_csv(path, index=False)
    return path, X, y


def test_streams_a_csv_in_chunks_to_a_good_classifier(tmp_path):
    path, X, y = breast_cancer_csv(tmp_path)
    model = fit_streaming("logistic_regression", lambda: iter_table_chunks(path, "target", chunk_rows=64),
                          classes=[0, 1], epochs=3, random_state=0, progress=False)
    assert model.score(X, y) > 0.95
    assert list(model.named_steps) == ["scale", "impute", "model"]


def test_one_pass_over_chunks_equals_partial_fit_by_hand():
    X, y = load_table("breast_cancer")
    chunks = [(X[i:i + 100], y[i:i + 100]) for i in range(0, len(X), 100)]
    model = fit_streaming("svm", chunks, classes=[0, 1], random_state=0, progress=False)
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    scaler, learner = StandardScaler(), SGDClassifier(loss="hinge", random_state=0)
    for Xc, yc in chunks:
        scaler.partial_fit(Xc)
        learner.partial_fit(scaler.transform(Xc), yc, classes=[0, 1])
    np.testing.assert_allclose(model.named_steps["model"].coef_, learner.coef_)


def test_regression_from_a_tf_dataset_with_missing_values():
    X, y = load_table("diabetes")
    values = X.to_numpy().copy()
    values[::9, 2] = np.nan
    dataset = tf.data.Dataset.from_tensor_slices((values, y.to_numpy())).batch(50)
    model = fit_streaming("linear_regression", dataset, task="regression", epochs=20,
                          random_state=0, progress=False)
    assert model.score(values, y) > 0.4


def test_any_partial_fit_estimator_works():
    X, y = load_table("iris")
    model = fit_streaming(GaussianNB(), [(X, y)], classes=[0, 1, 2], progress=False)
    assert model.score(X, y) > 0.9


def test_bad_streaming_input_is_named():
    X, y = load_table("iris")
    with pytest.raises(ValueError, match="needs classes="):
        fit_streaming("logistic_regression", [(X, y)], progress=False)
    with pytest.raises(ValueError, match="no partial_fit"):
        fit_streaming(RandomForestClassifier(), [(X, y)], classes=[0, 1, 2], progress=False)
    with pytest.raises(ValueError, match="No streaming version of decision_tree"):
        streaming_model("decision_tree")
    with pytest.raises(ValueError, match="encode these first: colour"):
        fit_streaming("logistic_regression", [(pd.DataFrame({"colour": ["a"]}), [0])], classes=[0, 1],
                      progress=False)
    with pytest.raises(ValueError, match="several epochs"):
        fit_streaming("logistic_regression", iter([(X, y)]), classes=[0, 1, 2], epochs=2, progress=False)
    with pytest.raises(ValueError, match="no data"):
        fit_streaming("logistic_regression", [], classes=[0, 1], progress=False)
