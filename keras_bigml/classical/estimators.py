"""scikit-learn pipelines by algorithm name: preparation steps plus the estimator.

``make_model("random_forest", task="classification")`` returns a plain
`sklearn.pipeline.Pipeline`, so everything scikit-learn offers keeps working:
``fit/predict/predict_proba/score``, ``get_params/set_params``, ``clone``,
``GridSearchCV``. Its steps are ``prepare`` (a :class:`TabularPreprocessor`),
optionally ``select`` (feature selection) and ``model``.
"""

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import ensemble, linear_model, svm, tree
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import SelectKBest, f_classif, f_regression
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from keras_bigml.errors import ConfigError, DataError

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


class NumericImputer(TransformerMixin, BaseEstimator):
    """Fill missing numbers with each column's mean or median (numpy-fast SimpleImputer).

    A column with no values at all is filled with 0. Data without missing values
    passes through with one check, which keeps pipelines of fast models fast.

    >>> NumericImputer().fit_transform(np.array([[1.0, np.nan], [3.0, 4.0]]))
    array([[1., 4.],
           [3., 4.]])
    """

    def __init__(self, strategy="mean"):
        self.strategy = strategy

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> "NumericImputer":
        if self.strategy not in ("mean", "median"):
            raise ConfigError(f"strategy must be 'mean' or 'median', got {self.strategy!r}.")
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        missing = np.isnan(X)
        if not missing.any():
            self.statistics_ = X.mean(axis=0) if self.strategy == "mean" else np.median(X, axis=0)
            return self
        reduce = np.nanmean if self.strategy == "mean" else np.nanmedian
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns: NaN, then 0
            self.statistics_ = np.nan_to_num(reduce(X, axis=0), nan=0.0)
        return self

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "statistics_")
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        missing = np.isnan(X)
        return np.where(missing, self.statistics_, X) if missing.any() else X

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


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

    def fit(self, X: pd.DataFrame | np.ndarray, y: object = None) -> "TabularPreprocessor":
        self.fit_transform(X)
        return self

    def fit_transform(self, X: pd.DataFrame | np.ndarray, y: object = None) -> np.ndarray:
        transformer, data = self._unfitted_transformer(X)
        if self.categorical_columns_:
            output = transformer.fit_transform(data)
        else:  # the steps one by one: Pipeline's own checks cost more than fast models' fits
            output = data
            for _, step in transformer.steps:
                output = step.fit_transform(output)
        self.transformer_ = transformer
        return output

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        if self.categorical_columns_:
            return self.transformer_.transform(X)
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, ensure_all_finite="allow-nan", skip_check_array=True, reset=False)
            X = X.to_numpy(dtype=np.float64)
        else:
            X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        for _, step in self.transformer_.steps:
            X = step.transform(X)
        return X

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        if self.categorical_columns_:
            names = [name.split("__", 1)[1] for name in self.transformer_.get_feature_names_out()]
        else:
            names = self.transformer_.get_feature_names_out(getattr(self, "feature_names_in_", None))
        return np.asarray(names, dtype=object)

    def _unfitted_transformer(self, X):
        """Check ``X``, record its columns, and return (transformer, the data it is fitted on).

        All-numeric input goes through imputation and scaling on a float array;
        a ColumnTransformer (slower) is used only when there are categories.
        """
        if self.impute not in ("mean", "median", "most_frequent"):
            raise ConfigError(
                f"impute must be 'mean', 'median' or 'most_frequent', got {self.impute!r}."
            )
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, ensure_all_finite="allow-nan", skip_check_array=True)
            numeric_flags = [_is_numeric(dtype) for dtype in X.dtypes]
            numeric = [c for c, flag in zip(X.columns, numeric_flags, strict=True) if flag]
            categorical = [c for c, flag in zip(X.columns, numeric_flags, strict=True) if not flag]
            data = X if categorical else X.to_numpy(dtype=np.float64)
            empty = X[numeric].isna().all().to_numpy() if categorical else np.isnan(data).all(axis=0)
            all_missing = [str(c) for c, is_empty in zip(numeric, empty, strict=True) if is_empty]
        else:
            data = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
            numeric, categorical = list(range(data.shape[1])), []
            all_missing = [str(c) for c in np.flatnonzero(np.isnan(data).all(axis=0))]
        if all_missing:
            raise DataError(f"Columns with no values at all: {', '.join(all_missing)}; drop them.")
        self.numeric_columns_, self.categorical_columns_ = numeric, categorical
        if self.impute == "most_frequent":
            numeric_steps = [("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True))]
        else:
            numeric_steps = [("impute", NumericImputer(strategy=self.impute))]
        if self.scale:
            numeric_steps.append(("scale", StandardScaler()))
        if not categorical:
            return Pipeline(numeric_steps), data
        encode = Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(
                handle_unknown="infrequent_if_exist", max_categories=self.max_categories,
                sparse_output=False,
            )),
        ])
        parts = [("numeric", Pipeline(numeric_steps), numeric), ("categorical", encode, categorical)]
        return ColumnTransformer(parts, sparse_threshold=0.0), data

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def make_model(
    algorithm: str,
    task: str = "classification",
    *,
    impute: str = "mean",
    scale: bool | None = None,
    select_features: int | None = None,
    random_state: int | None = None,
    n_jobs: int | None = None,
    **params: object,
) -> Pipeline:
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
        raise ConfigError(
            f"Unknown parameter {', '.join(map(repr, unknown))} for {algorithm} "
            f"({estimator_class.__name__}); valid parameters: {', '.join(valid)}."
        )
    steps = [("prepare", TabularPreprocessor(impute=impute, scale=needs_scaling if scale is None else scale))]
    if select_features is not None:
        score = f_classif if task == "classification" else f_regression
        steps.append(("select", SelectKBest(score, k=select_features)))
    steps.append(("model", estimator_class(**params)))
    return Pipeline(steps)


def algorithm_names(task: str | None = None) -> list[str]:
    """Names of the algorithms (for one task, when given).

    >>> algorithm_names("regression")
    ['linear_regression', 'svm', 'decision_tree', 'random_forest', 'gradient_boosting']
    """
    index = {None: None, "classification": 0, "regression": 1}[task]
    return [name for name, entry in ALGORITHMS.items() if index is None or entry[index] is not None]


def _estimator_class(algorithm, task):
    check_algorithm(algorithm, task)
    classifier, regressor, needs_scaling, seeded = ALGORITHMS[algorithm]
    return classifier if task == "classification" else regressor, needs_scaling, seeded


def check_algorithm(algorithm: str, task: str) -> None:
    """Refuse an unknown algorithm or task, or an algorithm that does not do the task.

    >>> check_algorithm("logistic_regression", "regression")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ConfigError: logistic_regression does not do regression; algorithms for ...
    """
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"Unknown algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}.")
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}: use one of {', '.join(TASKS)}.")
    if ALGORITHMS[algorithm][0 if task == "classification" else 1] is None:
        raise ConfigError(
            f"{algorithm} does not do {task}; algorithms for {task}: "
            f"{', '.join(algorithm_names(task))}."
        )


def _is_numeric(dtype):
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
