import pytest

from keras_bigml.classical.tuning import GRIDS, tune
from keras_bigml.data.tables import load_table


@pytest.mark.parametrize("method", ["grid", "random", "halving"])
def test_each_method_returns_a_fitted_best_pipeline_and_ranked_results(method):
    X, y = load_table("wine")
    result = tune("logistic_regression", X, y, method=method, cv=3, n_iter=6)
    assert result.results["rank_test_score"].iloc[0] == 1
    assert result.best_score == pytest.approx(result.results["mean_test_score"].max())
    assert result.best_model.score(X, y) > 0.95
    if method == "grid":
        assert len(result.results) == len(GRIDS["logistic_regression"]["model__C"])
    if method == "random":
        assert len(result.results) == 6
    if method == "halving":
        assert result.results["n_resources"].nunique() > 1


def test_regression_with_a_custom_space_and_scoring():
    X, y = load_table("diabetes")
    result = tune("decision_tree", X, y, task="regression", space={"model__max_depth": [1, 3]},
                  cv=3, scoring="neg_mean_absolute_error")
    assert result.best_params == {"model__max_depth": 3}
    assert result.best_score < 0


def test_unknown_method():
    X, y = load_table("iris")
    with pytest.raises(ValueError, match="Unknown search method 'bayes'"):
        tune("svm", X, y, method="bayes")
