"""scikit-learn pipelines by algorithm name: preparation steps plus the estimator.

``make_model("random_forest", task="classification")`` returns a plain
`sklearn.pipeline.Pipeline`, so everything scikit-learn offers keeps working:
``fit/predict/predict_proba/score``, ``get_params/set_params``, ``clone``,
``GridSearchCV``. Its steps are ``prepare`` (a :class:`TabularPreprocessor`),
optionally ``select`` (feature selection) and ``model``.
"""

import numpy as np
import pandas as pd
from sklearn import ensemble, linear_model, svm, tree
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectKBest, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

TASKS = ("classification", "regression")

# name -> (classifier class, regressor class, needs scaling, accepts random_state)
ALGORITHMS = {
    "linear_regression": (None, linear_model.LinearRegression, True, False),
    "logistic_regression": (linear_model.LogisticRegression, None, True, True),
    "svm": (svm.SVC, svm.SVR, True, False),
    "decision_tree": (tree.DecisionTreeClassifier, tree.DecisionTreeRegressor, False, True),
    "random_forest": (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, False, True),
    "gradient_boosting": (
        ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor, False, True,
    ),
}


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Impute missing values, scale numbers and one-hot encode categories.

    Numeric columns get ``impute`` (mean, median, ...) and, when ``scale`` is
    true, standardization; other columns (strings, categories, booleans of a
    DataFrame) get their most frequent value and a one-hot encoding that ignores
    unseen categories. Plain arrays are treated as all numeric.

    Parameters
    ----------
    impute : {"mean", "median", "most_frequent"}
    scale : bool
    max_categories : int or None
        Keep at most this many categories per column (the rest share one column).

    Examples
    --------
    >>> frame = pd.DataFrame({"size": [1.0, None, 3.0], "colour": ["red", "blue", None]})
    >>> TabularPreprocessor().fit_transform(frame).shape
    (3, 3)
    """

    def __init__(self, impute="mean", scale=True, max_categories=20):
        self.impute = impute
        self.scale = scale
        self.max_categories = max_categories

    def fit(self, X, y=None):
        if self.impute not in ("mean", "median", "most_frequent"):
            raise ValueError(
                f"impute must be 'mean', 'median' or 'most_frequent', got {self.impute!r}."
            )
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            self.n_features_in_ = X.shape[1]
            numeric = [c for c in X.columns if _is_numeric(X[c])]
            categorical = [c for c in X.columns if c not in numeric]
            all_missing = [str(c) for c in numeric if X[c].isna().all()]
            if all_missing:
                raise ValueError(f"Columns with no values at all: {', '.join(all_missing)}; drop them.")
        else:
            X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
            if np.isnan(X).all(axis=0).any():
                columns = np.flatnonzero(np.isnan(X).all(axis=0))
                raise ValueError(f"Columns with no values at all: {', '.join(map(str, columns))}; drop them.")
            numeric, categorical = list(range(X.shape[1])), []
        self.numeric_columns_, self.categorical_columns_ = numeric, categorical
        self.transformer_ = self._column_transformer(numeric, categorical).fit(X)
        return self

    def transform(self, X):
        check_is_fitted(self, "transformer_")
        if not isinstance(X, pd.DataFrame):
            X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        return self.transformer_.transform(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "transformer_")
        return np.asarray(
            [name.split("__", 1)[1] for name in self.transformer_.get_feature_names_out()],
            dtype=object,
        )

    def _column_transformer(self, numeric, categorical):
        numeric_steps = [("impute", SimpleImputer(strategy=self.impute, keep_empty_features=True))]
        if self.scale:
            numeric_steps.append(("scale", StandardScaler()))
        parts = [("numeric", Pipeline(numeric_steps), numeric)]
        if categorical:
            encode = Pipeline([
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(
                    handle_unknown="infrequent_if_exist", max_categories=self.max_categories,
                    sparse_output=False,
                )),
            ])
            parts.append(("categorical", encode, categorical))
        return ColumnTransformer(parts, sparse_threshold=0.0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def make_model(
    algorithm,
    task="classification",
    *,
    impute="mean",
    scale=None,
    select_features=None,
    random_state=None,
    n_jobs=None,
    **params,
):
    """Build a scikit-learn pipeline for ``algorithm`` and ``task``.

    Parameters
    ----------
    algorithm : str
        One of ``linear_regression``, ``logistic_regression``, ``svm``,
        ``decision_tree``, ``random_forest``, ``gradient_boosting``.
    task : {"classification", "regression"}
    impute : str
        Strategy for missing numbers (``mean``, ``median``, ``most_frequent``).
    scale : bool, optional
        Standardize numeric features; by default only for algorithms that need it
        (linear models and SVMs).
    select_features : int, optional
        Keep the ``k`` features with the best univariate F-score.
    random_state : int, optional
        Seed of randomized algorithms.
    n_jobs : int, optional
        Parallel jobs for estimators that have them (forests); others ignore it.
        Inside ``keras_bigml.classical.cluster.dask_backend`` they run on Dask.
    **params
        Parameters of the estimator itself (e.g. ``n_estimators=200``).

    Returns
    -------
    sklearn.pipeline.Pipeline

    Examples
    --------
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("iris")
    >>> model = make_model("random_forest", n_estimators=20, random_state=0).fit(X, y)
    >>> round(model.score(X, y), 2)
    1.0
    >>> list(model.named_steps)
    ['prepare', 'model']
    """
    estimator_class, needs_scaling, seeded = _estimator_class(algorithm, task)
    if seeded and random_state is not None:
        params.setdefault("random_state", random_state)
    valid = sorted(estimator_class().get_params())
    if n_jobs is not None and "n_jobs" in valid:
        params.setdefault("n_jobs", n_jobs)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"Unknown parameter {', '.join(map(repr, unknown))} for {algorithm} "
            f"({estimator_class.__name__}); valid parameters: {', '.join(valid)}."
        )
    steps = [("prepare", TabularPreprocessor(impute=impute, scale=needs_scaling if scale is None else scale))]
    if select_features is not None:
        score = f_classif if task == "classification" else f_regression
        steps.append(("select", SelectKBest(score, k=select_features)))
    steps.append(("model", estimator_class(**params)))
    return Pipeline(steps)


def algorithm_names(task=None):
    """Names of the algorithms (for one task, when given).

    >>> algorithm_names("regression")
    ['linear_regression', 'svm', 'decision_tree', 'random_forest', 'gradient_boosting']
    """
    index = {None: None, "classification": 0, "regression": 1}[task]
    return [name for name, entry in ALGORITHMS.items() if index is None or entry[index] is not None]


def _estimator_class(algorithm, task):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}.")
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: use one of {', '.join(TASKS)}.")
    classifier, regressor, needs_scaling, seeded = ALGORITHMS[algorithm]
    estimator_class = classifier if task == "classification" else regressor
    if estimator_class is None:
        raise ValueError(
            f"{algorithm} does not do {task}; algorithms for {task}: "
            f"{', '.join(algorithm_names(task))}."
        )
    return estimator_class, needs_scaling, seeded


def _is_numeric(column):
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
