"""Training over chunks when a table outgrows memory (``partial_fit``)."""

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from keras_bigml.errors import ConfigError, DataError

if TYPE_CHECKING:
    import tensorflow as tf

STREAMING_ALGORITHMS = {
    ("logistic_regression", "classification"): lambda seed: SGDClassifier(loss="log_loss", random_state=seed),
    ("svm", "classification"): lambda seed: SGDClassifier(loss="hinge", random_state=seed),
    ("linear_regression", "regression"): lambda seed: SGDRegressor(random_state=seed),
    ("svm", "regression"): lambda seed: SGDRegressor(loss="epsilon_insensitive", random_state=seed),
}


def streaming_model(algorithm: str, task: str = "classification", random_state: int | None = None) -> BaseEstimator:
    """An incremental estimator (with ``partial_fit``) for an algorithm name.

    >>> streaming_model("logistic_regression").loss
    'log_loss'
    """
    try:
        return STREAMING_ALGORITHMS[(algorithm, task)](random_state)
    except KeyError:
        choices = ", ".join(f"{a} ({t})" for a, t in STREAMING_ALGORITHMS)
        raise ConfigError(f"No streaming version of {algorithm} for {task}: use one of {choices}, "
                         "or pass an estimator with partial_fit.") from None


def fit_streaming(model: str | BaseEstimator, chunks: "Iterable | Callable[[], Iterable] | tf.data.Dataset", *,
                  task: str = "classification", classes: Sequence | None = None, epochs: int = 1,
                  random_state: int | None = None, progress: bool = True) -> Pipeline:
    """Fit an incremental learner chunk by chunk; return a fitted scikit-learn Pipeline.

    Each chunk updates a running standardization (missing values count as the
    running mean) and then the learner's ``partial_fit``; only one chunk is in
    memory at a time.

    Parameters
    ----------
    model : str or estimator
        An algorithm name (see :func:`streaming_model`) or any estimator with
        ``partial_fit`` (e.g. ``SGDClassifier``, ``MultinomialNB``).
    chunks : iterable, callable or tf.data.Dataset
        ``(X, y)`` chunks, e.g. ``iter_table_chunks(path, target)``; for more than
        one epoch pass a callable that returns a fresh iterator, or a dataset.
    classes : array-like
        Every class label, required for classification (a chunk may miss some).
    epochs : int
    progress : bool
        Show a progress bar counting rows.

    Returns
    -------
    sklearn.pipeline.Pipeline with steps ``scale``, ``impute``, ``model``.

    Examples
    --------
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("breast_cancer")
    >>> chunks = [(X[i:i + 100], y[i:i + 100]) for i in range(0, len(X), 100)]
    >>> model = fit_streaming("logistic_regression", chunks, classes=[0, 1], random_state=0,
    ...                       progress=False)
    >>> model.score(X, y) > 0.9
    True
    """
    learner = streaming_model(model, task, random_state) if isinstance(model, str) else clone(model)
    if not hasattr(learner, "partial_fit"):
        raise ConfigError(f"{type(learner).__name__} cannot learn incrementally (it has no partial_fit).")
    if is_classifier(learner) and classes is None:
        raise ConfigError("Streaming classification needs classes=: every label (a chunk may miss some).")
    if epochs > 1 and not (callable(chunks) or _is_dataset(chunks) or isinstance(chunks, (list, tuple))):
        raise ConfigError("For several epochs pass chunks as a callable, a list or a tf.data.Dataset.")
    scaler = StandardScaler()
    extra = {"classes": np.asarray(classes)} if is_classifier(learner) else {}
    rows = 0
    with tqdm(unit=" rows", disable=not progress, desc="fit_streaming") as bar:
        for _ in range(epochs):
            for X, y in _iterate(chunks):
                X, y = _as_arrays(X, y)
                scaler.partial_fit(X)
                learner.partial_fit(np.nan_to_num(scaler.transform(X), nan=0.0), y, **extra)
                rows += len(X)
                bar.update(len(X))
    if rows == 0:
        raise DataError("fit_streaming got no data: the chunks were empty.")
    # Missing values were the running mean, i.e. 0 after scaling: the same at predict time.
    impute = SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True)
    impute.fit(np.zeros((1, scaler.n_features_in_)))
    return Pipeline([("scale", scaler), ("impute", impute), ("model", learner)])


def _iterate(chunks):
    if callable(chunks):
        return chunks()
    if _is_dataset(chunks):
        return chunks.as_numpy_iterator()
    return chunks


def _is_dataset(chunks):
    # Checked without importing TensorFlow: a tf.data.Dataset means it is loaded.
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(chunks, tf.data.Dataset)


def _as_arrays(X, y):
    if isinstance(X, pd.DataFrame):
        non_numeric = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if non_numeric:
            raise DataError(f"Streaming needs numeric columns; encode these first: {', '.join(non_numeric)}.")
        return X, np.asarray(y).ravel()  # keeps the column names for predict-time checks
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"Each chunk's features must be 2-D (rows, columns), got shape {X.shape}.")
    return X, np.asarray(y).ravel()
