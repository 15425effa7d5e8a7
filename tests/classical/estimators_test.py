import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import check_estimator

from keras_bigml.classical import TabularPreprocessor, algorithm_names, make_model
from keras_bigml.data.tables import load_table


def mixed_frame(n=120, seed=0):
    rng = np.random.default_rng(seed)
    size = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = ((size > 0) ^ (colour == "red")).astype(int)
    size[::7] = np.nan
    colour = colour.astype(object)
    colour[::11] = None
    return pd.DataFrame({"size": size, "colour": colour, "noise": rng.normal(size=n)}), pd.Series(y)


def test_tabular_preprocessor_passes_sklearn_conformance():
    check_estimator(TabularPreprocessor())


def test_tabular_preprocessor_imputes_scales_and_encodes():
    X, _ = mixed_frame()
    prepared = TabularPreprocessor().fit(X)
    out = prepared.transform(X)
    assert not np.isnan(out).any()
    assert list(prepared.get_feature_names_out()) == [
        "size", "noise", "colour_blue", "colour_green", "colour_red"]
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0, atol=1e-9)
    unseen = X.head(2).assign(colour=["purple", "red"])
    assert prepared.transform(unseen)[0, 2:].sum() == 0.0


@pytest.mark.parametrize("columns", [["size", "colour", "noise"], ["size", "noise"]])
def test_all_missing_column_is_named(columns):
    X, _ = mixed_frame()
    with pytest.raises(ValueError, match="no values at all: size"):
        TabularPreprocessor().fit(X[columns].assign(size=np.nan))


def smooth_regression(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.uniform(size=(n, 3)), columns=["a", "b", "c"])
    return X, 3 * X["a"] + 2 * X["b"] ** 2 + rng.normal(scale=0.1, size=n)


@pytest.mark.large
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_algorithm_learns_its_task(task):
    X, y = load_table("breast_cancer") if task == "classification" else smooth_regression()
    for name in algorithm_names(task):
        model = make_model(name, task, random_state=0)
        assert isinstance(model, Pipeline)
        score = cross_val_score(model, X, y, cv=3).mean()
        assert score > (0.85 if task == "classification" else 0.8), (name, score)


def test_mixed_types_with_missing_values_are_learned():
    X, y = mixed_frame(400)
    model = make_model("gradient_boosting", random_state=0).fit(X[:300], y[:300])
    assert model.score(X[300:], y[300:]) > 0.85
    assert model.predict_proba(X[:3]).shape == (3, 2)


def test_pipeline_matches_hand_built_scikit_learn():
    X, y = load_table("wine")
    ours = make_model("svm", random_state=0).fit(X, y)
    plain = Pipeline([("scale", StandardScaler()), ("svc", SVC())]).fit(X, y)
    np.testing.assert_array_equal(ours.predict(X), plain.predict(X))
    np.testing.assert_allclose(ours.decision_function(X), plain.decision_function(X))


def test_params_clone_and_grid_search_work_as_in_scikit_learn():
    X, y = load_table("iris")
    model = make_model("random_forest", n_estimators=10, random_state=0)
    assert model.get_params()["model__n_estimators"] == 10
    model.set_params(model__n_estimators=5, prepare__impute="median")
    copy = clone(model)
    assert copy.get_params()["model__n_estimators"] == 5 and copy is not model
    search = GridSearchCV(model, {"model__max_depth": [1, 3]}, cv=3).fit(X, y)
    assert search.best_params_ == {"model__max_depth": 3}
    assert isinstance(search.best_estimator_.named_steps["model"], RandomForestClassifier)


def test_feature_selection_keeps_k_features():
    X, y = load_table("breast_cancer")
    model = make_model("logistic_regression", select_features=5).fit(X, y)
    assert model.named_steps["model"].coef_.shape == (1, 5)


def test_bad_names_and_parameters_list_the_choices():
    with pytest.raises(ValueError, match="Unknown algorithm 'forest'.*random_forest"):
        make_model("forest")
    with pytest.raises(ValueError, match="Unknown task 'ranking'"):
        make_model("svm", "ranking")
    with pytest.raises(ValueError, match="does not do regression.*linear_regression"):
        make_model("logistic_regression", "regression")
    with pytest.raises(ValueError, match="Unknown parameter 'trees'.*n_estimators"):
        make_model("random_forest", trees=10)


def test_numeric_imputer_passes_conformance_and_fills_by_hand():
    from keras_bigml.classical.estimators import NumericImputer

    check_estimator(NumericImputer())
    X = np.array([[1.0, np.nan, np.nan], [3.0, 4.0, np.nan], [8.0, 6.0, np.nan]])
    np.testing.assert_allclose(NumericImputer().fit(X).statistics_, [4.0, 5.0, 0.0])
    np.testing.assert_allclose(NumericImputer("median").fit(X).statistics_, [3.0, 5.0, 0.0])
    out = NumericImputer().fit(X).transform(np.array([[np.nan, 1.0, np.nan]]))
    np.testing.assert_allclose(out, [[4.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="strategy must be 'mean' or 'median'"):
        NumericImputer("mode").fit(X)
