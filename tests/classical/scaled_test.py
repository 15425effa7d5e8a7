import json

import numpy as np
import pandas as pd
import pytest

from keras_bigml.classical.scaled import (
    Preprocessing,
    TableModel,
    TableStats,
    epochs_for,
    load_table_model,
    sgd_learner,
    xgboost_settings,
)
from keras_bigml.errors import ConfigError, DataError, ModelFileError


def mixed(n=300, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(5, 2, n), "b": rng.integers(0, 10, n), "flag": rng.random(n) < 0.3,
        "colour": rng.choice(["red", "green", "blue"], n), "t": rng.choice(["yes", "no"], n),
    })
    frame.loc[::7, "a"] = np.nan
    frame.loc[::11, "colour"] = None
    return frame


def test_merged_statistics_equal_one_pass():
    frame = mixed()
    train = np.random.default_rng(1).random(len(frame)) < 0.7
    whole = TableStats(frame.iloc[:0], "t")
    whole.update(frame, train, "t")
    merged = TableStats(frame.iloc[:0], "t")
    for index in np.array_split(np.arange(len(frame)), 4):
        piece = TableStats(frame.iloc[:0], "t")
        piece.update(frame.iloc[index], train[index], "t")
        merged.merge(piece)
    assert merged.numeric == ["a", "b", "flag"] and merged.categorical == ["colour"]
    np.testing.assert_allclose(merged.mean_, whole.mean_)
    np.testing.assert_allclose(merged.m2, whole.m2)
    rows = frame[train]
    np.testing.assert_allclose(merged.mean_, rows[["a", "b", "flag"]].astype(float).mean())
    np.testing.assert_allclose(merged.m2 / merged.count, rows[["a", "b", "flag"]].astype(float).var(ddof=0))
    assert merged.categories == whole.categories and merged.classes() == ["no", "yes"]
    assert merged.infer_task() == "classification" and merged.train_rows == train.sum()


def test_preprocessing_matches_scikit_learn_for_linear_models():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = mixed()
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, np.ones(len(frame), bool), "t")
    ours = Preprocessing.from_stats(stats, scale=True).transform(frame)
    numeric = ["a", "b", "flag"]
    reference = ColumnTransformer([
        ("n", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
        ("c", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["colour"]),
    ])
    plain = frame.assign(flag=frame["flag"].astype(float), colour=frame["colour"].fillna("?"))
    expected = reference.fit(plain).transform(plain)
    # scikit-learn's categories are sorted and include "?" for missing; ours by frequency, missing = zeros.
    order = [Preprocessing.from_stats(stats, True).feature_names_out.index(f"colour_{c}")
             for c in ("blue", "green", "red")]
    np.testing.assert_allclose(ours[:, :3], expected[:, :3], atol=1e-5)
    np.testing.assert_allclose(ours[:, order], expected[:, 4:], atol=0)
    trees = Preprocessing.from_stats(stats, scale=False).transform(frame)
    assert np.isnan(trees[::7, 0]).all()  # XGBoost learns where missing values go


def test_statistics_checks_name_columns_and_classes():
    frame = mixed().assign(empty=np.nan)
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, np.ones(len(frame), bool), "t")
    with pytest.raises(DataError, match="columns with no values at all: empty"):
        stats.check("classification", "parts/")
    frame = mixed().assign(t="only")
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, np.ones(len(frame), bool), "t")
    with pytest.raises(DataError, match="has one class \\('only' in all 300 rows\\)"):
        stats.check("classification", "parts/")
    frame = mixed()
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, (frame["t"] == "yes").to_numpy(), "t")
    with pytest.raises(DataError, match="Class 'no' .* none among the training rows"):
        stats.check("classification", "parts/")
    frame = mixed().assign(a=np.inf)
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, np.ones(len(frame), bool), "t")
    with pytest.raises(DataError, match="infinite values in columns a"):
        stats.check("classification", "parts/")
    with pytest.raises(DataError, match="non-numeric values in the numeric columns a"):
        TableStats(mixed().iloc[:0], "t").update(mixed().assign(a="x"), np.ones(300, bool), "part 3")


def fitted_models(frame, task):
    import xgboost

    target = "t" if task == "classification" else "a"
    frame = frame.dropna(subset=[target])
    stats = TableStats(frame.iloc[:0], target)
    stats.update(frame, np.ones(len(frame), bool), "t")
    classes = stats.classes() if task == "classification" else None
    models = []
    for kind in ("xgboost", "sgd"):
        prep = Preprocessing.from_stats(stats, scale=kind == "sgd")
        X = prep.transform(frame)
        y = (pd.Categorical(frame[target], categories=classes).codes if classes else frame[target].to_numpy())
        if kind == "xgboost":
            params, rounds = xgboost_settings("gradient_boosting", task, len(classes or []), X.shape[1],
                                              {"n_estimators": 5})
            estimator = xgboost.train({**params, "nthread": 1}, xgboost.DMatrix(X, y), rounds)
        else:
            algorithm = "logistic_regression" if task == "classification" else "linear_regression"
            estimator = sgd_learner(algorithm, task)
            estimator.partial_fit(X, y, **({"classes": np.arange(2)} if classes else {}))
        models.append(TableModel("gradient_boosting" if kind == "xgboost" else algorithm, task, "out_of_core",
                                 target, prep, classes, estimator, {"n_estimators": 5}))
    return frame, models


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_saved_models_load_back_and_predict_the_same(tmp_path, task):
    frame, models = fitted_models(mixed(), task)
    for index, model in enumerate(models):
        model.save(tmp_path / str(index))
        loaded = load_table_model(tmp_path / str(index))
        np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
        if task == "classification":
            assert set(loaded.predict(frame)) <= {"yes", "no"}
            np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))
        assert loaded.params == {"n_estimators": 5} and loaded.engine == "out_of_core"
    config = json.loads((tmp_path / "0" / "model.json").read_text())
    assert config["kind"] == "xgboost" and (tmp_path / "0" / "model.ubj").exists()
    assert not list(tmp_path.glob("*/*.pkl")) and not list(tmp_path.glob("*/*.skops"))


def test_hinge_models_have_decisions_but_no_probabilities():
    frame = mixed()
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, np.ones(len(frame), bool), "t")
    prep = Preprocessing.from_stats(stats, scale=True)
    learner = sgd_learner("svm", "classification")
    learner.partial_fit(prep.transform(frame), (frame["t"] == "yes").astype(int), classes=[0, 1])
    model = TableModel("svm", "classification", "out_of_core", "t", prep, ["no", "yes"], learner)
    assert not hasattr(model, "predict_proba") and model.decision_function(frame).shape == (300,)


def test_damaged_and_foreign_model_files_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="No saved model at"):
        load_table_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="is not a keras_bigml model file"):
        load_table_model(tmp_path)
    (tmp_path / "model.json").write_text('{"hello": 1}')
    with pytest.raises(ModelFileError, match="is not a keras_bigml table model"):
        load_table_model(tmp_path)
    _, models = fitted_models(mixed(), "classification")
    models[0].save(tmp_path / "m")
    (tmp_path / "m" / "model.ubj").unlink()
    with pytest.raises(ModelFileError, match="names the booster .*model.ubj, which is missing"):
        load_table_model(tmp_path / "m")
    (tmp_path / "m" / "model.ubj").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="is a damaged table model"):
        load_table_model(tmp_path / "m")


def test_parameters_are_checked():
    with pytest.raises(ConfigError, match="Unknown parameter 'trees' for gradient_boosting on XGBoost"):
        xgboost_settings("gradient_boosting", "classification", 2, 4, {"trees": 3})
    with pytest.raises(ConfigError, match="Unknown parameter 'C' for svm \\(SGD\\)"):
        sgd_learner("svm", "classification", {"C": 1.0})
    params, rounds = xgboost_settings("decision_tree", "regression", 0, 4)
    assert rounds == 1 and params["num_parallel_tree"] == 1 and params["objective"] == "reg:squarederror"
    params, _ = xgboost_settings("gradient_boosting", "classification", 3, 4)
    assert params["objective"] == "multi:softprob" and params["num_class"] == 3
    with pytest.raises(ConfigError, match="epochs must be"):
        epochs_for(10, 0)


def forest_data(task, n=3000, seed=0):
    """A small table with a nonlinear target, its statistics and its encoded labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    signal = X[:, 0] + X[:, 1] * X[:, 2]
    targets = {"binary": (signal > 0.5).astype(int), "classes": np.digitize(signal, [-0.5, 0.7]),
               "regression": signal + 3}
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(t=targets[task])
    stats = TableStats(frame.iloc[:0], "t")
    stats.update(frame, np.ones(n, bool), "t")
    classes = None if task == "regression" else stats.classes()
    return X, targets[task].astype(np.float32), stats, classes


OBJECTIVES = {"binary": ("classification", 2), "classes": ("classification", 3), "regression": ("regression", 0)}


@pytest.mark.parametrize("task", list(OBJECTIVES))
def test_forest_rounds_grow_the_forest_of_one_round(task, monkeypatch):
    """Without row or column sampling a forest's trees do not depend on their rounds: rounds of 2 trees
    fitted to the gradients at the intercept predict what XGBoost's one round of 6 trees predicts, from
    the intercept XGBoost estimates."""
    import xgboost

    from keras_bigml.classical import scaled

    X, y, stats, classes = forest_data(task)
    params, rounds = xgboost_settings("random_forest", *OBJECTIVES[task], 5,
                                      {"n_estimators": 6, "max_depth": 4, "subsample": 1.0,
                                       "colsample_bynode": 1.0})
    assert rounds == 1 and params["num_parallel_tree"] == 6
    data = xgboost.DMatrix(X, y)
    whole = xgboost.train({**params, "nthread": 1}, data, 1)
    monkeypatch.setattr(scaled, "FOREST_ROUND_MEMORY", 4 * len(y) * 2)  # 2 trees a round
    settings, rounds, objective = scaled.forest_rounds(params, stats, classes)
    assert (settings["num_parallel_tree"], rounds) == (2, 3)
    forest = xgboost.train({**settings, "nthread": 1}, data, rounds, obj=objective)
    estimated = json.loads(whole.save_config())["learner"]["learner_model_param"]["base_score"]
    ours = json.loads(forest.save_config())["learner"]["learner_model_param"]["base_score"]
    np.testing.assert_allclose(json.loads(ours.replace("E", "e")), json.loads(estimated.replace("E", "e")),
                               rtol=1e-5)
    np.testing.assert_allclose(forest.inplace_predict(X), whole.inplace_predict(X), atol=1e-5)
    assert forest.num_boosted_rounds() == 3


def test_forest_intercept_with_a_positive_class_weight_is_xgboosts():
    import xgboost

    from keras_bigml.classical.scaled import forest_rounds

    X, y, stats, classes = forest_data("binary")
    params, _ = xgboost_settings("random_forest", "classification", 2, 5, {"scale_pos_weight": 3.0})
    whole = xgboost.train({**params, "num_parallel_tree": 1, "nthread": 1}, xgboost.DMatrix(X, y), 1)
    estimated = json.loads(whole.save_config())["learner"]["learner_model_param"]["base_score"]
    settings, _, objective = forest_rounds(params, stats, classes)
    np.testing.assert_allclose(settings["base_score"], json.loads(estimated.replace("E", "e")), rtol=1e-5)
    grad, hess = objective(None, xgboost.DMatrix(X, y))
    np.testing.assert_allclose(hess[y == 1], 3 * hess[y == 0][0])
    with pytest.raises(ConfigError, match="scale_pos_weight weighs the positive class"):
        forest_rounds({**xgboost_settings("random_forest", "regression", 0, 5)[0], "scale_pos_weight": 2.0},
                      forest_data("regression")[2], None)


def test_forest_rounds_hold_a_bounded_number_of_trees():
    from keras_bigml.classical.scaled import FOREST_ROUND_MEMORY, forest_rounds

    _, _, stats, classes = forest_data("binary")
    params, _ = xgboost_settings("random_forest", "classification", 2, 5)
    for rows, trees, expected in [(3000, 100, (100, 1)), (3_000_000, 100, (5, 20)), (3_000_000, 7, (1, 7)),
                                  (10**9, 100, (1, 100))]:
        stats.train_rows = rows
        settings, rounds, _ = forest_rounds({**params, "num_parallel_tree": trees}, stats, classes)
        assert (settings["num_parallel_tree"], rounds) == expected
        assert settings["num_parallel_tree"] * 4 * rows <= max(FOREST_ROUND_MEMORY, 4 * rows)
        assert settings["learning_rate"] == pytest.approx(1.0 / rounds)


def test_a_forest_saved_in_groups_by_0_2_predicts_as_one_forest(tmp_path):
    """keras_bigml 0.2.0 saved large forests as groups of trees (model-0.ubj, ...): they still load."""
    import xgboost

    X, y, _, _ = forest_data("binary")
    data = xgboost.DMatrix(X, y)
    params = {"objective": "binary:logistic", "max_depth": 4, "learning_rate": 1.0, "reg_lambda": 1e-5,
              "nthread": 1, "base_score": 0.5, "num_parallel_tree": 7}
    whole = xgboost.train(params, data, 1)
    groups = [xgboost.train({**params, "num_parallel_tree": size}, data, 1) for size in (3, 2, 2)]
    prep = Preprocessing([f"x{i}" for i in range(5)], {})
    model = TableModel("random_forest", "classification", "dask", "t", prep, [0, 1], groups)
    frame = pd.DataFrame(X, columns=prep.columns)
    np.testing.assert_allclose(model.predict_proba(frame)[:, 1], whole.inplace_predict(X), atol=1e-6)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.ubj")) == ["model-0.ubj", "model-1.ubj", "model-2.ubj"]
    np.testing.assert_allclose(load_table_model(tmp_path).predict_proba(frame), model.predict_proba(frame))
    assert model.feature_importance()[1][0] > 0
