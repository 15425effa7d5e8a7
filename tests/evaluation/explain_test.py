import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import partial_dependence as sklearn_partial_dependence
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from keras_bigml.classical import make_model
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.evaluation.explain import (
    FeatureRanking,
    active_dimensions,
    grad_cam,
    latent_traversal,
    partial_dependence,
    partial_dependence_ranking,
    permutation_ranking,
    save_grad_cam,
    save_partial_dependence_plot,
    save_ranking_plot,
    save_shap_summary,
    shap_values,
)


def driven_table(rows=500, seed=0, task="classification"):
    """'driver' decides the target; 'helper' adds a little; the rest is noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "noise": rng.normal(size=rows), "helper": rng.normal(size=rows), "driver": rng.normal(size=rows),
        "colour": rng.choice(["red", "green", "blue"], rows), "visits": rng.poisson(3, rows),
    })
    signal = 2.5 * X["driver"] + 0.4 * X["helper"] + rng.normal(scale=0.4, size=rows)
    y = (signal > 0).astype(int) if task == "classification" else signal
    return X.iloc[:350], y.iloc[:350], X.iloc[350:], y.iloc[350:]


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(1):  # many small predictions: much faster on a busy machine
        yield


@pytest.mark.large
@pytest.mark.parametrize("algorithm", ["logistic_regression", "random_forest", "gradient_boosting"])
def test_the_driving_feature_ranks_first_by_every_method(algorithm, tmp_path):
    pytest.importorskip("shap")
    X, y, X_test, y_test = driven_table()
    model = make_model(algorithm, random_state=0).fit(X, y)
    by_permutation = permutation_ranking(model, X_test, y_test, "classification")
    by_pdp = partial_dependence_ranking(model, X_test, "classification")
    shap = shap_values(model, X_test)
    for ranking in (by_permutation, by_pdp, shap.ranking()):
        assert ranking.top(1) == ["driver"], (ranking.method, ranking.features)
        assert ranking.scores[0] > 3 * ranking.scores[2]
    assert shap.values.shape == (len(X_test), 5) and shap.features == list(X.columns)
    paths = [save_ranking_plot(by_permutation, tmp_path / "p.png"),
             save_shap_summary(shap, tmp_path / "s.png"),
             save_partial_dependence_plot(model, X_test, ["driver", "colour"], "classification",
                                          tmp_path / "d.png")]
    assert all(path.stat().st_size > 5000 for path in paths)


def test_regression_and_several_classes():
    pytest.importorskip("shap")
    X, y, X_test, y_test = driven_table(task="regression")
    model = make_model("linear_regression", "regression").fit(X, y)
    assert permutation_ranking(model, X_test, y_test, "regression").top(2) == ["driver", "helper"]
    assert partial_dependence_ranking(model, X_test, "regression").top(2) == ["driver", "helper"]
    assert shap_values(model, X_test).ranking().top(2) == ["driver", "helper"]
    X, y, X_test, y_test = driven_table()
    grades = [pd.cut(X["driver"], [-9, -0.6, 0.6, 9], labels=["low", "mid", "high"]).astype(str)
              for X in (X, X_test)]
    model = make_model("random_forest", random_state=0, n_estimators=50).fit(X, grades[0])
    assert permutation_ranking(model, X_test, grades[1], "classification").top(1) == ["driver"]
    assert partial_dependence_ranking(model, X_test, "classification").top(1) == ["driver"]
    shap = shap_values(model, X_test)
    assert shap.ranking().top(1) == ["driver"] and shap.values.shape == (len(X_test), 5)


def test_partial_dependence_is_scikit_learns_brute_method_in_one_call():
    X, y, X_test, _ = driven_table()
    model = make_model("gradient_boosting", random_state=0).fit(X, y)
    X_test = X_test.astype({"visits": np.float64})
    for feature, categorical in (("driver", None), ("visits", None), ("colour", ["colour"])):
        ours = partial_dependence(model, X_test, feature, "classification")
        theirs = sklearn_partial_dependence(model, X_test, [feature], kind="both", grid_resolution=20,
                                            categorical_features=categorical, method="brute")
        assert list(ours.grid_values[0]) == list(theirs["grid_values"][0])
        np.testing.assert_allclose(ours.average, theirs["average"], rtol=1e-12)
        np.testing.assert_allclose(ours.individual, theirs["individual"], rtol=1e-12)


def test_xgboost_contributions_need_no_shap_package(monkeypatch):
    xgboost = pytest.importorskip("xgboost")
    X, y, X_test, _ = driven_table()
    X, X_test = X.drop(columns="colour"), X_test.drop(columns="colour")
    model = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=30, max_depth=3)).fit(X, y)
    monkeypatch.setitem(sys.modules, "shap", None)  # as if not installed
    shap = shap_values(model, X_test)
    assert shap.explainer == "xgboost" and shap.ranking().top(1) == ["driver"]
    booster = model[-1].get_booster()
    margin = booster.predict(xgboost.DMatrix(model[0].transform(X_test)), output_margin=True)
    bias = margin - shap.values.sum(axis=1)
    np.testing.assert_allclose(bias, bias[0], atol=1e-4)  # contributions add up to the margin


def test_other_models_need_the_shap_extra(monkeypatch):
    X, y, X_test, _ = driven_table()
    model = make_model("decision_tree", random_state=0).fit(X, y)
    monkeypatch.setitem(sys.modules, "shap", None)
    with pytest.raises(ImportError, match=r"DecisionTreeClassifier need the shap package: pip install "):
        shap_values(model, X_test)


class PlainModel:
    """A model outside scikit-learn, shaped like the scaled engines' TableModel."""

    classes_ = np.array([0, 1])

    def __init__(self, estimator, columns):
        self.estimator, self.columns = estimator, columns

    def transform(self, frame):
        return frame[self.columns].to_numpy(dtype=np.float64)

    def predict_proba(self, frame):
        return self.estimator.predict_proba(self.transform(frame))

    def predict(self, frame):
        return self.estimator.predict(self.transform(frame))


def test_models_outside_scikit_learn_are_explained_too():
    X, y, X_test, y_test = driven_table()
    columns = ["noise", "helper", "driver", "visits"]
    model = PlainModel(make_model("logistic_regression").fit(X[columns].to_numpy(), y), columns)
    assert permutation_ranking(model, X_test, y_test, "classification").top(1) == ["driver"]
    assert partial_dependence_ranking(model, X_test[columns], "classification").top(1) == ["driver"]


def test_feature_ranking_orders_and_reports():
    ranking = FeatureRanking("permutation", "drop", ["a", "b", "c"], [0.1, 0.5, 0.2], [0.01, 0.02, 0.03])
    assert ranking.top(2) == ["b", "c"]
    assert ranking.to_dict()["ranking"][0] == {"feature": "b", "score": 0.5, "spread": 0.02}
    with pytest.raises(DataError, match="2 rows and 3 targets"):
        permutation_ranking(None, pd.DataFrame({"a": [1, 2]}), [0, 1, 0], "classification")


# Generative models and image classifiers --------------------------------------------------------

def test_latent_traversal_varies_one_dimension_only():
    from keras_bigml.generative import GAN, VAE

    vae = VAE(image_shape=(8, 8, 1), latent_dim=3, filters=(8,), hidden_units=16, seed=0)
    base = np.array([0.3, -0.2, 0.5], np.float32)
    images, codes = latent_traversal(vae, [1, 2], values=np.linspace(-2, 2, 5), base=base)
    assert images.shape == (2, 5, 8, 8, 1) and codes.shape == (2, 5, 3)
    for row, dimension in enumerate([1, 2]):
        others = [d for d in range(3) if d != dimension]
        assert np.all(codes[row][:, others] == base[others])  # the others stay fixed
        np.testing.assert_allclose(codes[row, :, dimension], np.linspace(-2, 2, 5))
        assert np.abs(np.diff(images[row], axis=0)).max() > 1e-4  # the images change along the row
        np.testing.assert_allclose(images[row], vae.generate(z=codes[row]), atol=1e-6)
    gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
              num_classes=3)
    images, codes = latent_traversal(gan, [0], labels=2)
    assert images.shape == (1, 9, 8, 8, 1)
    with pytest.raises(ConfigError, match=r"Latent dimensions must be in 0\.\.3, got \[4\]"):
        latent_traversal(gan, [4])


def test_active_dimensions_are_ordered_by_kl():
    from keras_bigml.generative import VAE

    vae = VAE(image_shape=(8, 8, 1), latent_dim=4, filters=(8,), hidden_units=16, seed=0)
    images = np.random.default_rng(0).uniform(size=(32, 8, 8, 1)).astype(np.float32)
    dimensions, kl = active_dimensions(vae, images)
    assert sorted(dimensions) == [0, 1, 2, 3] and np.all(np.diff(kl) <= 0) and np.all(kl >= 0)


def squares_and_bars(count, seed):
    """Class 1 has a bright 4x4 square (the evidence); every image has a bright 1x6 bar (a distractor)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 0.3, (count, 16, 16, 1)).astype(np.float32)
    labels = rng.integers(0, 2, count)
    squares = []
    for image, label in zip(images, labels, strict=True):
        while True:
            row, col = rng.integers(0, 12, 2)
            bar_row, bar_col = rng.integers(0, 16), rng.integers(0, 10)
            if not (row - 1 <= bar_row <= row + 4 and bar_col - 1 <= col + 4 and col - 1 <= bar_col + 6):
                break
        image[bar_row, bar_col:bar_col + 6, 0] = 1.0
        if label:
            image[row:row + 4, col:col + 4, 0] = 1.0
        squares.append((row, col, bar_row, bar_col))
    return images, labels, squares


@pytest.fixture(scope="module")
def square_classifier():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.GlobalMaxPooling2D(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels, _ = squares_and_bars(400, seed=0)
    model.fit(images, labels, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.mark.large
def test_grad_cam_is_hot_where_the_evidence_is(square_classifier, tmp_path):
    images, labels, squares = squares_and_bars(120, seed=1)
    assert square_classifier.evaluate(images, labels, verbose=0)[1] > 0.95
    chosen = labels == 1
    heat = grad_cam(square_classifier, images[chosen])
    assert heat.shape == (chosen.sum(), 16, 16) and heat.min() >= 0 and np.allclose(heat.max(axis=(1, 2)), 1)
    hits, margins = 0, []
    for heatmap, (row, col, bar_row, bar_col) in zip(heat, np.asarray(squares)[chosen], strict=True):
        peak_row, peak_col = np.unravel_index(heatmap.argmax(), heatmap.shape)
        hits += row - 1 <= peak_row <= row + 4 and col - 1 <= peak_col <= col + 4
        on_bar = heatmap[bar_row, bar_col:bar_col + 6].mean()
        margins.append(heatmap[row:row + 4, col:col + 4].mean() / on_bar)
    assert hits >= 0.95 * chosen.sum()
    assert np.median(margins) > 2  # the square, not the equally bright bar (raw brightness would give 1)
    heat = grad_cam(square_classifier, images[:4], class_index=1)
    path = save_grad_cam(images[:4], heat, tmp_path / "g.png")
    assert path.stat().st_size > 500


def test_grad_cam_refuses_what_it_cannot_explain(square_classifier):
    import keras

    with pytest.raises(DataError, match=r"shape \(N, height, width, channels\), got \(16, 16\)"):
        grad_cam(square_classifier, np.zeros((16, 16)))
    flat = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ConfigError, match="no layer with a spatial"):
        grad_cam(flat, np.zeros((1, 2, 2, 1)))
