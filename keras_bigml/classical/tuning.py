"""Hyper-parameter search with sensible default spaces per algorithm."""

from dataclasses import dataclass

import pandas as pd
from scipy import stats
from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (registers the class)
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, RandomizedSearchCV

from keras_bigml.classical.estimators import make_model
from keras_bigml.errors import ConfigError

METHODS = ("grid", "random", "halving")

# Grids for grid and successive-halving search; random search samples the
# distributions below where an algorithm has them, else the grid.
GRIDS = {
    "linear_regression": {"model__fit_intercept": [True, False]},
    "logistic_regression": {"model__C": [0.01, 0.1, 1.0, 10.0, 100.0]},
    "svm": {"model__C": [0.1, 1.0, 10.0, 100.0], "model__gamma": ["scale", 0.01, 0.1]},
    "decision_tree": {"model__max_depth": [3, 5, 10, None], "model__min_samples_leaf": [1, 5, 20]},
    "random_forest": {"model__max_features": ["sqrt", 0.5, 1.0], "model__min_samples_leaf": [1, 3, 10]},
    "gradient_boosting": {"model__learning_rate": [0.03, 0.1, 0.3], "model__max_leaf_nodes": [15, 31, 63]},
}
DISTRIBUTIONS = {
    "logistic_regression": {"model__C": stats.loguniform(1e-3, 1e3)},
    "svm": {"model__C": stats.loguniform(1e-2, 1e3), "model__gamma": stats.loguniform(1e-4, 1.0)},
    "decision_tree": {
        "model__max_depth": stats.randint(2, 20), "model__min_samples_leaf": stats.randint(1, 30),
    },
    "random_forest": {
        "model__max_features": stats.uniform(0.1, 0.9), "model__min_samples_leaf": stats.randint(1, 20),
    },
    "gradient_boosting": {
        "model__learning_rate": stats.loguniform(0.01, 0.5), "model__max_leaf_nodes": stats.randint(8, 128),
    },
}


@dataclass
class TuningResult:
    """What a search found: the refitted best pipeline and every candidate's scores."""

    best_model: object
    best_params: dict
    best_score: float
    results: pd.DataFrame


def tune(
    algorithm: str,
    X: pd.DataFrame,
    y: pd.Series,
    task: str = "classification",
    method: str = "grid",
    space: dict | None = None,
    cv: int = 5,
    scoring: str | None = None,
    n_iter: int = 20,
    n_jobs: int | None = None,
    random_state: int = 0,
    **model_options: object,
) -> TuningResult:
    """Search hyper-parameters of ``make_model(algorithm, task)`` by cross-validation.

    Parameters
    ----------
    algorithm : str
    X, y : features and target
    task : {"classification", "regression"}
    method : {"grid", "random", "halving"}
        Exhaustive grid, random sampling (``n_iter`` candidates), or successive
        halving (many candidates on little data, the best ones on more).
    space : dict, optional
        Parameter grid or distributions, names prefixed ``model__`` (or
        ``prepare__`` / ``select__``); defaults to the algorithm's.
    cv, scoring, n_jobs
        As in scikit-learn's searches. Inside ``keras_bigml.classical.cluster.dask_backend``
        the candidates run on the Dask cluster.
    **model_options
        Passed to :func:`make_model` (e.g. ``select_features=10``).

    Returns
    -------
    TuningResult

    Examples
    --------
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("iris")
    >>> result = tune("decision_tree", X, y, cv=3, random_state=0)
    >>> len(result.results), sorted(result.best_params)
    (12, ['model__max_depth', 'model__min_samples_leaf'])
    """
    if method not in METHODS:
        raise ConfigError(f"Unknown search method {method!r}: use one of {', '.join(METHODS)}.")
    model = make_model(algorithm, task, random_state=random_state, **model_options)
    if space is None:
        space = DISTRIBUTIONS.get(algorithm, GRIDS[algorithm]) if method == "random" else GRIDS[algorithm]
    common = dict(cv=cv, scoring=scoring, n_jobs=n_jobs, refit=True)
    if method == "grid":
        search = GridSearchCV(model, space, **common)
    elif method == "random":
        search = RandomizedSearchCV(model, space, n_iter=n_iter, random_state=random_state, **common)
    else:
        del common["refit"]
        search = HalvingGridSearchCV(model, space, random_state=random_state, **common)
    search.fit(X, y)
    columns = ["rank_test_score", "mean_test_score", "std_test_score", "mean_fit_time", "params"]
    results = pd.DataFrame(search.cv_results_)
    if method == "halving":
        columns = ["iter", "n_resources", *columns]
    results = results[columns].sort_values(columns[columns.index("rank_test_score")]).reset_index(drop=True)
    return TuningResult(search.best_estimator_, search.best_params_, float(search.best_score_), results)
