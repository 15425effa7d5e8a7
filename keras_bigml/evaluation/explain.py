"""Explanations: which inputs drive a model's predictions, and what a generative model has learned.

Tables (any fitted scikit-learn pipeline or estimator, or the scaled engines'
``TableModel``), each giving a :class:`FeatureRanking` and a plot:

- :func:`permutation_ranking`: how much a held-out score drops when one input
  column is shuffled (`sklearn.inspection.permutation_importance`).
- :func:`partial_dependence_ranking` and :func:`save_partial_dependence_plot`:
  the average prediction as one column sweeps its range (partial dependence),
  with one line per row (ICE), from `sklearn.inspection`; a column's score is
  the range of its curve.
- :func:`shap_values` and :func:`save_shap_summary`: SHAP values per row and
  input column. XGBoost models use XGBoost's own exact contributions
  (``pred_contribs=True``); other models need the optional ``shap`` package
  (``pip install 'keras_bigml[explain]'``): TreeSHAP (path-dependent, exact) for
  scikit-learn's trees, forests and boosting, the linear explainer for linear
  models, and the model-agnostic permutation explainer for the rest (SVMs; it
  costs ``2 * columns + 1`` predictions of ``background`` rows per explained row).
  Values computed on encoded features (one-hot columns) are summed back to the
  input column they came from, which SHAP's additivity allows.

Generative models and image classifiers (these import TensorFlow):

- :func:`latent_traversal`: images decoded while one latent dimension sweeps a
  range and the others stay fixed; :func:`active_dimensions` orders a VAE's
  dimensions by their KL divergence on real images.
- :func:`grad_cam`: Grad-CAM heat maps (Selvaraju et al. 2017) of a Keras
  classifier: the last spatial layer's activations weighted by the spatially
  averaged gradients of the class score (the pre-softmax logit when the last
  layer is a softmax or sigmoid Dense layer, which does not saturate).
"""

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils import Bunch
from sklearn.utils.metaestimators import available_if

from keras_bigml.errors import ConfigError, DataError
from keras_bigml.plotting import new_figure, save_figure

if TYPE_CHECKING:
    import keras

    from keras_bigml.generative.base import GenerativeModel
    from keras_bigml.generative.vae import VAE

SHAP_EXTRA = "pip install 'keras_bigml[explain]'"


@dataclass
class FeatureRanking:
    """Input columns ordered from the most to the least important by one method.

    ``scores`` are the method's measure (mean score drop, curve range, mean
    absolute SHAP value); ``spread`` their standard deviation where there is one.
    """

    method: str
    measure: str
    features: list
    scores: np.ndarray
    spread: np.ndarray | None = None

    def __post_init__(self):
        order = np.argsort(-np.asarray(self.scores, dtype=np.float64), kind="stable")
        self.features = [str(self.features[i]) for i in order]
        self.scores = np.asarray(self.scores, dtype=np.float64)[order]
        if self.spread is not None:
            self.spread = np.asarray(self.spread, dtype=np.float64)[order]

    def top(self, count: int) -> list[str]:
        """The ``count`` most important features."""
        return self.features[:count]

    def to_dict(self) -> dict:
        rows = []
        for index, name in enumerate(self.features):
            row = {"feature": name, "score": float(self.scores[index])}
            if self.spread is not None:
                row["spread"] = float(self.spread[index])
            rows.append(row)
        return {"method": self.method, "measure": self.measure, "ranking": rows}


@dataclass
class ShapValues:
    """SHAP values of ``data``'s rows: ``values[i, j]`` is column ``features[j]``'s share of row i's score."""

    values: np.ndarray
    features: list
    data: pd.DataFrame
    explainer: str
    output: str

    def ranking(self) -> FeatureRanking:
        return FeatureRanking("shap", "mean |SHAP value|", self.features, np.abs(self.values).mean(axis=0))


# Scores and rankings ------------------------------------------------------------------------------

def held_out_score(model: BaseEstimator, X: pd.DataFrame, y: pd.Series | np.ndarray, task: str) -> tuple[str, float]:
    """The score the rankings are measured with: ROC AUC when the model gives class scores, else
    accuracy (classification); R^2 (regression). Returns ``(name, value)``."""
    name, scorer = _scorer(model, task, y)
    return name, float(scorer(model, X, y))


def _scorer(model, task, y):
    from sklearn import metrics

    if task == "regression":
        return "R^2", lambda est, X, y: metrics.r2_score(y, est.predict(X))
    classes = list(_classes(model, y))
    ranks = hasattr(model, "predict_proba") or (hasattr(model, "decision_function") and len(classes) == 2)
    if not ranks:
        return "accuracy", lambda est, X, y: metrics.accuracy_score(y, est.predict(X))

    def roc_auc(est, X, y):
        scores = _class_scores(est, X)
        if len(classes) == 2:
            return metrics.roc_auc_score(np.asarray(y) == classes[1], scores[:, -1])
        return metrics.roc_auc_score(y, scores, multi_class="ovr", labels=classes)

    return "ROC AUC", roc_auc


def permutation_ranking(model: BaseEstimator, X: pd.DataFrame, y: pd.Series | np.ndarray, task: str,
                        n_repeats: int = 5, random_state: int = 0) -> FeatureRanking:
    """Rank ``X``'s columns by the drop of the held-out score when each is shuffled.

    ``X, y`` should be rows the model was not trained on. The score is
    :func:`held_out_score`'s.

    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("iris")
    >>> model = make_model("decision_tree", random_state=0).fit(X[::2], y[::2])
    >>> permutation_ranking(model, X[1::2], y[1::2], "classification").top(1)
    ['petal width (cm)']
    """
    from sklearn.inspection import permutation_importance

    _check_rows(X, y)
    name, scorer = _scorer(model, task, y)
    result = permutation_importance(_inspectable(model, task), X, y, scoring=scorer, n_repeats=n_repeats,
                                    random_state=random_state)
    return FeatureRanking("permutation", f"drop of held-out {name}", list(X.columns), result.importances_mean,
                          result.importances_std)


def partial_dependence(model: BaseEstimator, X: pd.DataFrame, feature: str, task: str, grid_resolution: int = 20,
                       percentiles: tuple[float, float] = (0.05, 0.95)) -> Bunch:
    """Partial dependence and ICE curves of one column, as `sklearn.inspection.partial_dependence`'s
    brute method gives them: ``Bunch(grid_values=[grid], average=(outputs, grid),
    individual=(outputs, rows, grid))``.

    The outputs are the positive class's probability (two classes), every class's
    (several), or the predicted value. Computed with one prediction call over
    all rows at all grid values, where scikit-learn calls the model once per grid
    value: small calls are slow for pipelines with a column transformer and for
    multi-threaded boosting.
    """
    X = _floats_for_grid(X)
    column = X[feature]
    values = column.dropna()
    if len(values) == 0:
        raise DataError(f"Column {feature!r} has no values to draw a partial dependence of.")
    if feature in _categorical_columns(X):
        grid = np.asarray(sorted(values.unique(), key=str), dtype=object)
    else:
        from scipy.stats.mstats import mquantiles

        numbers = values.to_numpy(dtype=np.float64)
        unique = np.unique(numbers)
        low, high = mquantiles(numbers, prob=percentiles)  # scikit-learn's grid
        few = len(unique) < grid_resolution or low == high
        grid = unique if few else np.linspace(low, high, grid_resolution)
    rows = len(X)
    swept = pd.concat([X] * len(grid), ignore_index=True)
    swept[feature] = np.repeat(grid, rows)
    outputs = _responses(_inspectable(model, task), swept, task)  # (grid * rows, outputs)
    individual = outputs.reshape(len(grid), rows, -1).transpose(2, 1, 0)
    return Bunch(grid_values=[grid], average=individual.mean(axis=1), individual=individual)


def _responses(estimator, X, task):
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=np.float64).reshape(len(X), -1)
    scores = _class_scores(estimator, X)
    return scores[:, 1:] if scores.shape[1] == 2 else scores


def partial_dependence_ranking(model: BaseEstimator, X: pd.DataFrame, task: str, features: Sequence[str] | None = None,
                               grid_resolution: int = 20) -> FeatureRanking:
    """Rank columns by the range of their partial dependence curve: its largest minus its smallest
    average prediction (for several classes, the largest range among the classes' curves).

    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("diabetes")
    >>> model = make_model("linear_regression", "regression").fit(X, y)
    >>> partial_dependence_ranking(model, X, "regression").top(2)
    ['s1', 's5']
    """
    features = list(X.columns) if features is None else list(features)
    ranges = []
    for feature in features:
        curve = partial_dependence(model, X, feature, task, grid_resolution)["average"]
        ranges.append(float(np.max(curve.max(axis=-1) - curve.min(axis=-1))))
    return FeatureRanking("pdp", "range of the partial dependence", features, ranges)


def shap_values(model: BaseEstimator, X: pd.DataFrame, background: pd.DataFrame | None = None,
                max_background: int = 50, random_state: int = 0) -> ShapValues:
    """SHAP values of ``X``'s rows per input column (see the module's notes on explainers).

    ``background`` (rows, default ``X``) is what the linear and permutation
    explainers compare with; at most ``max_background`` of its rows are used.
    Raises ``ImportError`` naming the extra when a model needs ``shap`` and it
    is not installed.
    """
    transform, estimator, input_columns = _encoded_view(model, X)
    encoded = np.asarray(transform(X), dtype=np.float64)
    booster = _xgboost_booster(estimator)
    if booster is not None:
        import xgboost

        contributions = booster.predict(xgboost.DMatrix(encoded), pred_contribs=True)
        if contributions.ndim == 3:  # several classes: (rows, classes, features + bias)
            values = np.moveaxis(contributions[:, :, :-1], 1, 2)
        else:
            values = contributions[:, :-1]
        explainer, output = "xgboost", "margin (log-odds for classes)"
    else:
        try:
            import shap
        except ImportError:
            raise ImportError(f"SHAP values for {type(estimator).__name__} need the shap package: "
                              f"{SHAP_EXTRA}.") from None
        values, explainer, output = _shap_package_values(shap, estimator, encoded, background, transform,
                                                         max_background, random_state)
    values = _one_output(values, model, X)
    columns = list(X.columns)
    position = {column: index for index, column in enumerate(columns)}
    per_column = np.zeros((len(X), len(columns)))
    for j, column in enumerate(input_columns):
        per_column[:, position[column]] += values[:, j]
    return ShapValues(per_column, [str(c) for c in columns], X, explainer, output)


def _shap_package_values(shap, estimator, encoded, background, transform, max_background, random_state):
    from sklearn import ensemble, tree

    trees = (tree.DecisionTreeClassifier, tree.DecisionTreeRegressor, ensemble.RandomForestClassifier,
             ensemble.RandomForestRegressor, ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor,
             ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor,
             ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor)
    if isinstance(estimator, trees):
        # Path-dependent TreeSHAP needs no background and is exact; with a background
        # (interventional) shap 0.51 fails its additivity check on HistGradientBoosting.
        explanation = shap.TreeExplainer(estimator)(encoded)
        boosting = (ensemble.GradientBoostingClassifier, ensemble.HistGradientBoostingClassifier)
        output = ("log-odds" if isinstance(estimator, boosting) else
                  "probability" if hasattr(estimator, "predict_proba") else "prediction")
        return explanation.values, "tree", output
    reference = encoded if background is None else np.asarray(transform(background), dtype=np.float64)
    rng = np.random.default_rng(random_state)
    if len(reference) > max_background:
        reference = reference[np.sort(rng.choice(len(reference), max_background, replace=False))]
    if type(estimator).__module__.startswith("sklearn.linear_model"):
        explanation = shap.LinearExplainer(estimator, reference)(encoded)
        return explanation.values, "linear", "margin (log-odds for classes)"
    if hasattr(estimator, "predict_proba"):
        predict, output = estimator.predict_proba, "probability"
    elif hasattr(estimator, "decision_function"):
        predict, output = estimator.decision_function, "decision function"
    else:
        predict, output = estimator.predict, "prediction"
    masker = shap.maskers.Independent(reference, max_samples=len(reference))
    explainer = shap.explainers.Permutation(predict, masker, seed=random_state)
    explanation = explainer(encoded, max_evals=2 * encoded.shape[1] + 1, silent=True)
    return explanation.values, "permutation", output


def _one_output(values, model, X):
    """(rows, features): the positive class of two, or each row's predicted class of several."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        return values
    if values.shape[-1] == 2:
        return values[:, :, 1]
    predicted = np.argmax(_class_scores(model, X), axis=1)
    return values[np.arange(len(values)), :, predicted]


# Plots --------------------------------------------------------------------------------------------

def save_ranking_plot(ranking: FeatureRanking, path: str | os.PathLike, top: int = 20,
                      title: str | None = None) -> str | os.PathLike:
    """Horizontal bars of a ranking's ``top`` features (with their spread as error bars)."""
    count = min(top, len(ranking.features))
    fig, ax = new_figure((6.5, 0.32 * count + 1.6))
    positions = np.arange(count)[::-1]
    spread = None if ranking.spread is None else ranking.spread[:count]
    ax.barh(positions, ranking.scores[:count], xerr=spread, color="#3e7bfa", ecolor="#52606d", capsize=2)
    ax.set_yticks(positions, ranking.features[:count])
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel(ranking.measure)
    ax.set_title(title or f"{ranking.method}: the {count} most important columns")
    return save_figure(fig, path)


def save_partial_dependence_plot(model: BaseEstimator, X: pd.DataFrame, features: Sequence[str], task: str,
                                 path: str | os.PathLike, random_state: int = 0,
                                 ice_rows: int = 50) -> str | os.PathLike:
    """Partial dependence (thick line) and ICE curves (``ice_rows`` rows, thin lines) of ``features``,
    drawn by `sklearn.inspection.PartialDependenceDisplay` from :func:`partial_dependence`'s curves.

    For several classes the curves are those of the most frequently predicted class.
    """
    from matplotlib.figure import Figure
    from scipy.stats.mstats import mquantiles
    from sklearn.inspection import PartialDependenceDisplay

    X = _floats_for_grid(X)
    features = list(features)
    names = [str(c) for c in X.columns]
    categorical = set(_categorical_columns(X))
    results = [partial_dependence(model, X, feature, task) for feature in features]
    target_idx, label = 0, "predicted value" if task == "regression" else "probability of the positive class"
    if results[0]["average"].shape[0] > 1:
        estimator = _inspectable(model, task)
        counts = pd.Series(estimator.predict(X)).value_counts()
        target_idx = list(estimator.classes_).index(counts.index[0])
        label = f"probability of class {counts.index[0]}"
    indices = [list(X.columns).index(feature) for feature in features]
    deciles = {i: mquantiles(X.iloc[:, i].dropna().to_numpy(dtype=np.float64), prob=np.arange(0.1, 1.0, 0.1))
               for i, feature in zip(indices, features, strict=True) if feature not in categorical}
    # ICE lines are drawn for numeric columns only (scikit-learn's rule); categories get bars.
    kinds = ["average" if feature in categorical else "both" for feature in features]
    columns = min(3, len(features))
    rows = math.ceil(len(features) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for unused in axes[len(features):]:
        unused.set_visible(False)
    display = PartialDependenceDisplay(
        results, features=[(i,) for i in indices], feature_names=names, target_idx=target_idx,
        deciles=deciles, kind=kinds, subsample=min(ice_rows, len(X)), random_state=random_state,
        is_categorical=[(feature in categorical,) for feature in features],
    )
    display.plot(ax=axes[:len(features)], ice_lines_kw={"alpha": 0.25, "linewidth": 0.6},
                 pd_line_kw={"color": "#c62828", "linewidth": 2.2})
    fig.suptitle(f"Partial dependence and ICE ({label})")
    return save_figure(fig, path)


def save_shap_summary(shap: ShapValues, path: str | os.PathLike, top: int = 15) -> str | os.PathLike:
    """SHAP summary: one row of dots per column (most important on top), each dot a row of the table,
    placed at its SHAP value and coloured by the column's value (blue low, red high; grey for
    categories and missing values)."""
    ranking = shap.ranking()
    names = ranking.top(top)
    fig, ax = new_figure((7, 0.38 * len(names) + 1.6))
    from matplotlib import colormaps

    colours = colormaps["coolwarm"].with_extremes(bad="#9aa5b1")
    rng = np.random.default_rng(0)
    coloured = None
    for row, name in enumerate(reversed(names)):
        index = shap.features.index(name)
        values = shap.values[:, index]
        column = shap.data.iloc[:, index]
        jitter = rng.uniform(-0.28, 0.28, len(values))
        if _is_number(column):  # missing values in grey
            coloured = ax.scatter(values, row + jitter, c=column.rank(pct=True).to_numpy(), cmap=colours,
                                  vmin=0, vmax=1, s=9, alpha=0.8, linewidths=0, plotnonfinite=True)
        else:
            ax.scatter(values, row + jitter, color="#9aa5b1", s=9, alpha=0.8, linewidths=0)
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlabel(f"SHAP value ({shap.output})")
    ax.set_title(f"SHAP values ({shap.explainer} explainer), {len(shap.values)} rows")
    if coloured is not None:
        fig.colorbar(coloured, ax=ax, ticks=[0, 1], fraction=0.04).ax.set_yticklabels(["low", "high"])
    return save_figure(fig, path)


# Generative models and image classifiers ---------------------------------------------------------

def latent_traversal(model: "GenerativeModel", dimensions: Sequence[int], values: Sequence[float] | None = None,
                     base: np.ndarray | None = None, labels: int | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of a latent model while each of ``dimensions`` sweeps ``values``, the others fixed.

    Parameters
    ----------
    model : a latent generative model (``generate(z=..., labels=...)``, ``latent_dim``)
    dimensions : list of int
    values : array-like, optional
        Values the swept dimension takes (default: 9 from -3 to 3, in prior standard deviations).
    base : array-like of shape (latent_dim,), optional
        The fixed latent vector (default: one draw from the standard normal prior, seeded).
    labels : int, optional
        The class of a conditional model (default 0).

    Returns
    -------
    images : ndarray (len(dimensions), len(values), height, width, channels)
    codes : ndarray (len(dimensions), len(values), latent_dim)
        The latent vectors decoded: row ``i`` differs from ``base`` in dimension ``dimensions[i]`` only.
    """
    latent_dim = int(model.latent_dim)
    dimensions = [int(d) for d in dimensions]
    bad = [d for d in dimensions if not 0 <= d < latent_dim]
    if bad or not dimensions:
        raise ConfigError(f"Latent dimensions must be in 0..{latent_dim - 1}, got {dimensions}.")
    values = np.linspace(-3.0, 3.0, 9) if values is None else np.asarray(values, dtype=np.float32).ravel()
    if base is None:
        base = np.random.default_rng(seed).standard_normal(latent_dim)
    base = np.asarray(base, dtype=np.float32).reshape(latent_dim)
    codes = np.tile(base, (len(dimensions), len(values), 1)).astype(np.float32)
    for row, dimension in enumerate(dimensions):
        codes[row, :, dimension] = values
    flat = codes.reshape(-1, latent_dim)
    if getattr(model, "num_classes", None):
        labels = np.full(len(flat), 0 if labels is None else int(labels), dtype=np.int32)
    else:
        labels = None
    images = np.asarray(model.generate(z=flat, labels=labels))
    return images.reshape(len(dimensions), len(values), *images.shape[1:]), codes


def active_dimensions(vae: "VAE", images: np.ndarray, count: int | None = None,
                      labels: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
    """A VAE's latent dimensions from the most to the least used: mean KL divergence of the posterior
    from the prior on ``images``; returns ``(dimensions, kl)``, both ordered."""
    mean, log_var = vae.encode(np.asarray(images, np.float32), labels)
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    kl = 0.5 * (np.exp(log_var) + mean**2 - 1.0 - log_var).mean(axis=0)
    order = np.argsort(-kl, kind="stable")[:count]
    return [int(d) for d in order], kl[order]


def grad_cam(classifier: "keras.Model", images: np.ndarray, class_index: int | Sequence[int] | None = None,
             layer: str | None = None) -> np.ndarray:
    """Grad-CAM heat maps, shape (N, height, width) in [0, 1], one per image.

    ``class_index`` (an int, or one per image) is the class to explain, by
    default each image's predicted class; ``layer`` names the spatial layer
    (default: the last layer with a 4-D output).

    Raises `keras_bigml.errors.ConfigError` for a model without a functional
    graph (a subclassed model) or without a spatial layer.
    """
    import keras
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise DataError(f"grad_cam needs images of shape (N, height, width, channels), got {images.shape}.")
    if not getattr(classifier, "inputs", None):
        raise ConfigError(f"Grad-CAM needs a functional or Sequential Keras model; {classifier.name} is "
                          "subclassed (no layer graph).")
    spatial = classifier.get_layer(layer) if layer else _last_spatial_layer(classifier)
    last = classifier.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    from_logits = isinstance(last, keras.layers.Dense) and activation in ("softmax", "sigmoid")
    head = last.input if from_logits else classifier.output
    probe = keras.Model(classifier.inputs, [spatial.output, head])
    with tf.GradientTape() as tape:
        maps, scores = probe(tf.convert_to_tensor(images), training=False)
        if from_logits:
            scores = tf.matmul(scores, last.kernel) + (last.bias if last.use_bias else 0.0)
        scores = tf.cast(scores, tf.float32)
        if class_index is None:
            chosen = tf.argmax(scores, axis=-1, output_type=tf.int32)
        else:
            chosen = tf.broadcast_to(tf.constant(class_index, tf.int32), [len(images)])
        score = tf.gather(scores, chosen, axis=1, batch_dims=1)
    gradients = tape.gradient(score, maps)
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("bhwc,bc->bhw", tf.cast(maps, tf.float32), weights))
    cam = tf.image.resize(cam[..., tf.newaxis], images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), 0.0)


def _last_spatial_layer(classifier):
    for candidate in reversed(classifier.layers):
        if type(candidate).__name__ != "InputLayer" and len(candidate.output.shape) == 4:
            return candidate
    raise ConfigError(f"{classifier.name} has no layer with a spatial (4-D) output for Grad-CAM.")


def save_grad_cam(images: np.ndarray, heatmaps: np.ndarray, path: str | os.PathLike,
                  alpha: float = 0.5) -> str | os.PathLike:
    """Each image beside its heat map laid over it (jet colours), in a grid of pairs."""
    from matplotlib import colormaps

    from keras_bigml.plotting import save_image_grid

    images = np.clip(np.asarray(images, np.float32), 0, 1)
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images[..., :3]
    heat = colormaps["jet"](np.asarray(heatmaps))[..., :3].astype(np.float32)
    overlays = (1 - alpha) * rgb + alpha * heat
    pairs = np.stack([rgb, overlays], axis=1).reshape(-1, *rgb.shape[1:])
    return save_image_grid(pairs, path, ncols=2 * min(4, len(images)))


# Helpers ------------------------------------------------------------------------------------------

class _FittedModel(BaseEstimator):
    """A fitted model that is not a scikit-learn estimator (e.g. a ``TableModel``), as scikit-learn's
    inspection tools expect one: fitted, a classifier or a regressor, never refitted."""

    def __init__(self, model=None, task="classification"):
        self.model = model
        self.task = task

    def __sklearn_is_fitted__(self):
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier" if self.task == "classification" else "regressor"
        return tags

    @property
    def classes_(self):
        return self.model.classes_

    def fit(self, X, y=None):  # scikit-learn's checks look for it
        raise ConfigError("This wraps a model that is already fitted; it is not fitted again.")

    def predict(self, X):
        return self.model.predict(X)

    @available_if(lambda self: hasattr(self.model, "predict_proba"))
    def predict_proba(self, X):
        return self.model.predict_proba(X)

    @available_if(lambda self: hasattr(self.model, "decision_function"))
    def decision_function(self, X):
        return self.model.decision_function(X)


def _inspectable(model, task):
    return model if isinstance(model, BaseEstimator) else _FittedModel(model, task)


def _encoded_view(model, X):
    """(transform, final estimator, the input column of each encoded feature)."""
    columns = [str(c) for c in X.columns]
    if hasattr(model, "steps"):  # a scikit-learn Pipeline
        prefix, estimator = model[:-1], model.steps[-1][1]
        names = [str(n) for n in prefix.get_feature_names_out()] if len(prefix) else columns
        transform = prefix.transform if len(prefix) else (lambda data: data)
    elif hasattr(model, "preprocessing") and hasattr(model, "estimator"):  # the scaled engines' TableModel
        estimator, transform = model.estimator, model.transform
        names = list(model.preprocessing.feature_names_out)
    else:
        return (lambda data: data), model, list(X.columns)
    return transform, estimator, [_input_column(name, X.columns) for name in names]


def _input_column(name, columns):
    """The input column an encoded feature comes from: itself, or the longest ``column_`` prefix (one-hot)."""
    for column in columns:
        if str(column) == name:
            return column
    prefixes = [c for c in columns if name.startswith(f"{c}_")]
    if not prefixes:
        raise DataError(f"Cannot tell which input column the model's feature {name!r} comes from.")
    return max(prefixes, key=lambda c: len(str(c)))


def _xgboost_booster(estimator):
    module = type(estimator).__module__
    if not module.startswith("xgboost"):
        return None
    return estimator if type(estimator).__name__ == "Booster" else estimator.get_booster()


def _class_scores(model, X):
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X), dtype=np.float64)
    decision = np.asarray(model.decision_function(X), dtype=np.float64)
    return np.column_stack([-decision, decision]) if decision.ndim == 1 else decision


def _classes(model, y):
    classes = getattr(model, "classes_", None)
    return np.asarray(classes) if classes is not None else np.unique(y)


def _categorical_columns(X):
    return [c for c in X.columns if not _is_number(X[c])]


def _is_number(column):
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _floats_for_grid(X):
    """Integer columns as floats: partial dependence puts grid values between the integers."""
    integers = [c for c in X.columns if _is_number(X[c]) and pd.api.types.is_integer_dtype(X[c])]
    return X.astype(dict.fromkeys(integers, np.float64)) if integers else X


def _check_rows(X, y):
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"Explanations need the input columns as a DataFrame, got {type(X).__name__}.")
    if len(X) == 0 or len(X) != len(y):
        raise DataError(f"Explanations need rows with their targets: got {len(X)} rows and {len(y)} targets.")
