"""What the out-of-core and Dask engines share: statistics passes, preprocessing, models, files.

A partitioned table is never gathered into one process. Its statistics (counts,
sums, categories, classes) are computed batch by batch or partition by partition
(`TableStats`, mergeable), turned into a `Preprocessing` (imputation means,
scaling, one-hot categories), and saved with the model. A `TableModel` pairs that
preprocessing with the fitted estimator (an XGBoost booster, or a scikit-learn
SGD learner) and offers ``predict`` / ``predict_proba`` / ``decision_function`` on
DataFrames of the raw columns, like a scikit-learn pipeline.

Models are saved as ``model.json`` (preprocessing, classes, parameters; a linear
learner's coefficients) beside the booster in XGBoost's own UBJSON format
(``model.ubj``): loading them runs no code from the files (no pickle).
"""

import json
import math
import os
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_bigml.errors import ConfigError, DataError, ModelFileError
from keras_bigml.files import atomic_path, plain_value

if TYPE_CHECKING:
    import xgboost
    from sklearn.linear_model import SGDClassifier, SGDRegressor

TREE_ALGORITHMS = ("gradient_boosting", "random_forest", "decision_tree")
LINEAR_ALGORITHMS = ("logistic_regression", "linear_regression", "svm")
MAX_CLASSES = 1000
# Bytes of XGBoost's per-tree row positions while one round of a forest trains (see `forest_rounds`).
FOREST_ROUND_MEMORY = 64 << 20
POSITION_BYTES = 4  # XGBoost's node position of each row, for each tree of the round
CLASS_EPSILON = 1e-6  # XGBoost adds it to class shares before their log (softmax intercept)
MAX_DISTINCT = 10_000
MODEL_FORMAT = "keras_bigml.table_model"
MODEL_VERSION = 1
KERNEL_SVM_NOTE = (
    "a kernel SVM needs all pairs of rows and does not scale past memory: the out_of_core and dask "
    "engines train a linear SVM (hinge loss, scikit-learn's SGD)"
)

# XGBoost settings per tree algorithm. The forest is XGBoost's random forest (one round
# of parallel trees, as XGBRFClassifier / DaskXGBRFClassifier) with scikit-learn's
# sqrt(features) per split; its trees stop at depth 10 (scikit-learn's grow to purity,
# which costs too much at scale; measured AUC 0.929 at depth 10, 0.939 at 12, 0.952 for
# scikit-learn's forest, 100k rows of the benchmark table). The tree is one unshrunk round.
TREE_DEFAULTS = {
    "gradient_boosting": {"n_estimators": 100, "max_depth": 6, "learning_rate": 0.3},
    "random_forest": {"n_estimators": 100, "max_depth": 10, "learning_rate": 1.0, "subsample": 0.8,
                      "colsample_bynode": "sqrt", "reg_lambda": 1e-5},
    "decision_tree": {"max_depth": 8, "learning_rate": 1.0, "reg_lambda": 1e-5},
}
XGBOOST_PARAMS = ("max_depth", "learning_rate", "subsample", "colsample_bynode", "colsample_bytree",
                  "reg_lambda", "reg_alpha", "min_child_weight", "gamma", "max_bin", "max_leaves",
                  "grow_policy", "scale_pos_weight")
SGD_PARAMS = ("alpha", "l1_ratio", "penalty", "learning_rate", "eta0", "power_t", "epsilon", "average")


def xgboost_settings(algorithm: str, task: str, num_classes: int, num_features: int,
                     params: dict | None = None, seed: int = 0) -> tuple[dict, int]:
    """``(booster params, rounds)`` for a tree algorithm; ``params`` override the defaults.

    >>> params, rounds = xgboost_settings("random_forest", "classification", 2, num_features=16)
    >>> rounds, params["num_parallel_tree"], params["objective"], params["colsample_bynode"]
    (1, 100, 'binary:logistic', 0.25)
    """
    settings = {**TREE_DEFAULTS[algorithm], **(params or {})}
    if settings.get("colsample_bynode") == "sqrt":
        settings["colsample_bynode"] = min(1.0, math.sqrt(num_features) / num_features)
    unknown = sorted(set(settings) - set(XGBOOST_PARAMS) - {"n_estimators"})
    if unknown:
        raise ConfigError(
            f"Unknown parameter {', '.join(map(repr, unknown))} for {algorithm} on XGBoost; "
            f"valid parameters: n_estimators, {', '.join(XGBOOST_PARAMS)}."
        )
    n_estimators = int(settings.pop("n_estimators", 1))
    booster = {"tree_method": "hist", "seed": seed, **settings, **_objective(task, num_classes)}
    if algorithm == "gradient_boosting":
        return booster, n_estimators
    booster["num_parallel_tree"] = n_estimators if algorithm == "random_forest" else 1
    return booster, 1


def forest_rounds(params: dict, stats: "TableStats", classes: list | None,
                  ) -> tuple[dict, int, "ForestGradients"]:
    """XGBoost's random forest of ``params["num_parallel_tree"]`` trees, as boosting rounds of fewer trees.

    Returns ``(booster params, rounds, objective)`` for ``xgboost.train(params, data, rounds,
    obj=objective)`` (or ``xgboost.dask.train``): each round grows ``num_parallel_tree`` of the
    trees, all fitted to the gradients at the intercept (`ForestGradients`) instead of the current
    margin, and the learning rate is divided by the rounds, so the booster is the forest that one
    round of all the trees would grow (the same trees without sampling; see the tests).

    Why rounds: while a round trains, XGBoost keeps a node position (`POSITION_BYTES`) per row for
    every tree of the round; one round of 100 trees on 3M rows would keep 1.2 GB. The rest of what
    training holds does not depend on the trees per round (measured on 1.5M in-memory rows at depth
    10: 127 MB for one tree, then 4.2-5.4 bytes per row per tree; on the 4M-row benchmark 4.1): the
    histograms (16 bytes x 256 bins x 20 features per node, 84 MB for the 1,023 split nodes of a
    depth-10 tree), about 48 bytes per row (gradients, their sampled copy, row partitions) and, for
    external memory, about 3 MB per page at depth 10. So rounds hold at most
    `FOREST_ROUND_MEMORY` of positions: 5 trees a round at 3M training rows. Rounds cost little: the
    data is quantized once; each round adds one prediction of its own trees.

    >>> frame = pd.DataFrame({"x": [0.0] * 4, "t": [0, 1, 1, 1]})
    >>> stats = TableStats(frame.iloc[:0], "t")
    >>> stats.update(frame, np.ones(4, bool), "rows")
    >>> stats.train_rows = 3_000_000  # as if
    >>> params, rounds, objective = forest_rounds(
    ...     {"num_parallel_tree": 100, "learning_rate": 1.0, "objective": "binary:logistic"}, stats, [0, 1])
    >>> params["num_parallel_tree"], rounds, params["learning_rate"], params["base_score"]
    (5, 20, 0.05, 0.75)
    """
    trees = params["num_parallel_tree"]
    most = max(1, FOREST_ROUND_MEMORY // (POSITION_BYTES * max(stats.train_rows, 1)))
    rounds = next(r for r in range(-(-trees // most), trees + 1) if trees % r == 0)  # equal rounds
    objective = ForestGradients.at_intercept(params["objective"], stats, classes,
                                             params.get("scale_pos_weight", 1.0))
    settings = {**params, "num_parallel_tree": trees // rounds,
                "learning_rate": params.get("learning_rate", 1.0) / rounds, "base_score": objective.base_score}
    return settings, rounds, objective


class ForestGradients:
    """An XGBoost objective whose gradients stay those at the intercept: its rounds grow one forest.

    XGBoost's own random forest is one round of parallel trees fitted to the gradients at the
    intercept (the base score XGBoost estimates from the labels). Rounds that boost would fit each
    round to what the earlier ones left; with these gradients every round fits the same targets, so
    the rounds' trees are trees of one forest. The formulas are XGBoost's (logistic, softmax,
    squared error), with its ``scale_pos_weight`` for binary labels.

    Parameters
    ----------
    objective : str
        ``"binary:logistic"``, ``"multi:softprob"`` or ``"reg:squarederror"``.
    intercept : float or list of float
        The probability of class 1, the class probabilities, or the mean target.
    scale_pos_weight : float
        The weight of class 1's rows (binary labels only).

    >>> import xgboost
    >>> data = xgboost.DMatrix(np.zeros((4, 1)), label=[0, 1, 1, 1])
    >>> grad, hess = ForestGradients("binary:logistic", 0.75)(None, data)
    >>> grad.tolist(), hess.tolist()
    ([0.75, -0.25, -0.25, -0.25], [0.1875, 0.1875, 0.1875, 0.1875])
    """

    OBJECTIVES = ("binary:logistic", "multi:softprob", "reg:squarederror")

    def __init__(self, objective: str, intercept: float | list[float], scale_pos_weight: float = 1.0):
        if objective not in self.OBJECTIVES:
            raise ConfigError(f"A forest trains with one of {', '.join(self.OBJECTIVES)}, not {objective!r}.")
        if scale_pos_weight != 1.0 and objective != "binary:logistic":
            raise ConfigError("scale_pos_weight weighs the positive class of binary classification; "
                              f"leave it out for {objective}.")
        self.objective = objective
        self.intercept = intercept
        self.scale_pos_weight = float(scale_pos_weight)

    @classmethod
    def at_intercept(cls, objective: str, stats: "TableStats", classes: list | None,
                     scale_pos_weight: float = 1.0) -> "ForestGradients":
        """The intercept XGBoost would estimate from the training rows' labels (counted in ``stats``)."""
        if objective == "reg:squarederror":
            return cls(objective, stats.train_target_sum / max(stats.train_rows, 1), scale_pos_weight)
        counts = {plain_value(label): count for label, count in stats.train_labels.items()}
        shares = np.array([counts.get(label, 0) for label in classes], dtype=np.float64)
        shares /= max(shares.sum(), 1)
        if objective == "multi:softprob":
            return cls(objective, shares.tolist(), scale_pos_weight)
        if scale_pos_weight == 1.0:
            return cls(objective, float(shares[1]), scale_pos_weight)
        # With scale_pos_weight XGBoost takes one Newton step from a zero margin, weighted.
        positive, negative = shares[1] * scale_pos_weight, shares[0]
        margin = 2 * (positive - negative) / (positive + negative)
        return cls(objective, float(1 / (1 + np.exp(-margin))), scale_pos_weight)

    @property
    def base_score(self) -> float | str:
        """The intercept as XGBoost's ``base_score`` parameter (for classes, centred log-probabilities)."""
        if self.objective != "multi:softprob":
            return self.intercept
        logs = np.log(np.asarray(self.intercept) + CLASS_EPSILON)
        return "[" + ",".join(repr(float(v)) for v in logs - logs.mean()) + "]"

    def __call__(self, predt: np.ndarray, dtrain: "xgboost.DMatrix") -> tuple[np.ndarray, np.ndarray]:
        y = dtrain.get_label()
        if self.objective == "reg:squarederror":
            return (self.intercept - y).astype(np.float32), np.ones_like(y, dtype=np.float32)
        if self.objective == "binary:logistic":
            p = np.float32(self.intercept)
            weight = np.where(y == 1, np.float32(self.scale_pos_weight), np.float32(1))
            return (p - y) * weight, np.maximum(p * (1 - p), np.float32(1e-16)) * weight
        p = np.asarray(self.intercept) + CLASS_EPSILON  # the softmax of base_score
        p = (p / p.sum()).astype(np.float32)
        grad = np.tile(p, (len(y), 1))
        grad[np.arange(len(y)), y.astype(np.int64)] -= 1
        hess = np.tile(np.maximum(2 * p * (1 - p), np.float32(1e-16)), (len(y), 1))
        return grad, hess


def _objective(task, num_classes):
    if task == "regression":
        return {"objective": "reg:squarederror"}
    if num_classes == 2:
        return {"objective": "binary:logistic"}
    return {"objective": "multi:softprob", "num_class": num_classes}


def sgd_learner(algorithm: str, task: str, params: dict | None = None,
                seed: int = 0) -> "SGDClassifier | SGDRegressor":
    """The scikit-learn SGD learner (with ``partial_fit``) for a linear algorithm.

    >>> sgd_learner("svm", "classification").loss
    'hinge'
    """
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    losses = {
        ("logistic_regression", "classification"): "log_loss",
        ("svm", "classification"): "hinge",
        ("linear_regression", "regression"): "squared_error",
        ("svm", "regression"): "epsilon_insensitive",
    }
    settings = dict(params or {})
    unknown = sorted(set(settings) - set(SGD_PARAMS))
    if unknown:
        raise ConfigError(
            f"Unknown parameter {', '.join(map(repr, unknown))} for {algorithm} (SGD); "
            f"valid parameters: {', '.join(SGD_PARAMS)}."
        )
    loss = losses[(algorithm, task)]
    # Averaged SGD: within 1e-4 of LogisticRegression's test AUC at 6k and 300k rows,
    # where plain SGD was 0.008 below at 300k.
    settings.setdefault("average", True)
    if task == "classification":
        return SGDClassifier(loss=loss, random_state=seed, **settings)
    return SGDRegressor(loss=loss, random_state=seed, **settings)


class TableStats:
    """Statistics of a table gathered batch by batch; partial results merge.

    Feature statistics (means, variances, category counts) come from the training
    rows only; checks (empty and infinite columns, missing targets) and the class
    list from every row.

    >>> frame = pd.DataFrame({"a": [1.0, 2.0, np.nan], "c": ["x", "y", "x"], "t": [0, 1, 1]})
    >>> stats = TableStats(frame.iloc[:0], target="t")
    >>> stats.update(frame, np.array([True, True, False]), "part 0")
    >>> stats.rows, stats.train_rows, stats.mean("a"), stats.classes()
    (3, 2, 1.5, [0, 1])
    """

    def __init__(self, meta, target):
        self.target = target
        self.features = [str(c) for c in meta.columns if c != target]
        self.numeric = [c for c in self.features if _is_numeric(meta[c].dtype)]
        self.categorical = [c for c in self.features if c not in self.numeric]
        self.rows = 0
        self.train_rows = 0
        self.parts = 0
        self.part_train_rows = {}  # part index -> training rows, filled by the engines
        n = len(self.numeric)
        self.present = np.zeros(len(self.features), dtype=np.int64)
        self.infinite = np.zeros(n, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int64)
        self.mean_ = np.zeros(n)
        self.m2 = np.zeros(n)
        self.categories = {c: Counter() for c in self.categorical}
        self.target_missing = 0
        self.target_infinite = 0
        self.target_numeric = True
        self.target_integral = True
        self.train_target_sum = 0.0  # of numeric targets
        self.labels = Counter()
        self.train_labels = Counter()
        self.labels_overflow = False

    def update(self, frame: pd.DataFrame, train: np.ndarray, where: str) -> None:
        """Add one batch; ``train`` marks its training rows, ``where`` names it in errors."""
        features = frame[self.features]
        self.rows += len(frame)
        self.train_rows += int(train.sum())
        self.present += features.notna().sum().to_numpy()
        if self.numeric:
            values = _numeric_values(features[self.numeric], where)
            infinite = np.isinf(values)
            self.infinite += infinite.sum(axis=0)
            if infinite.any():  # refused by check(); kept out of the moments meanwhile
                values = np.where(infinite, np.nan, values)
            self._add_moments(values[train])
        for column in self.categorical:
            counts = self.categories[column]
            counts.update(features.loc[train, column].dropna().astype(str).value_counts().to_dict())
            if len(counts) > MAX_DISTINCT:
                self.categories[column] = Counter(dict(counts.most_common(MAX_DISTINCT // 2)))
        self._add_target(frame[self.target], train)

    def _add_moments(self, values):
        finite = np.isfinite(values)
        count = finite.sum(axis=0)
        filled = np.where(finite, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), 0.0)
            m2 = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0)
        self._merge_moments(count, mean, m2)

    def _merge_moments(self, count, mean, m2):
        # Chan et al.'s pairwise update: stable for large counts.
        total = self.count + count
        delta = mean - self.mean_
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
        self.mean_ = self.mean_ + delta * share
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * share
        self.count = total

    def _add_target(self, y, train):
        missing = y.isna()
        self.target_missing += int(missing.sum())
        if _is_numeric(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype):
            values = y.to_numpy(dtype=np.float64, na_value=np.nan)
            self.target_infinite += int(np.isinf(values).sum())
            finite = np.isfinite(values)
            self.target_integral &= bool(np.all(np.mod(values[finite], 1) == 0))
            self.train_target_sum += float(values[finite & train].sum())
        else:
            self.target_numeric = False
        if not self.labels_overflow:
            self.labels.update(y[~missing].value_counts().to_dict())
            self.train_labels.update(y[train & ~missing.to_numpy()].value_counts().to_dict())
            if len(self.labels) > MAX_CLASSES:
                self.labels_overflow = True
                self.labels.clear()
                self.train_labels.clear()

    def merge(self, other: "TableStats") -> "TableStats":
        """Add another partition's statistics; return self."""
        self.rows += other.rows
        self.train_rows += other.train_rows
        self.parts += other.parts
        self.part_train_rows.update(other.part_train_rows)
        self.present += other.present
        self.infinite += other.infinite
        self._merge_moments(other.count, other.mean_, other.m2)
        for column, counts in other.categories.items():
            self.categories[column].update(counts)
        self.target_missing += other.target_missing
        self.target_infinite += other.target_infinite
        self.target_numeric &= other.target_numeric
        self.target_integral &= other.target_integral
        self.train_target_sum += other.train_target_sum
        if self.labels_overflow or other.labels_overflow or len(self.labels | other.labels) > MAX_CLASSES:
            self.labels_overflow = True
            self.labels.clear()
            self.train_labels.clear()
        else:
            self.labels.update(other.labels)
            self.train_labels.update(other.train_labels)
        return self

    def mean(self, column: str) -> float:
        return float(self.mean_[self.numeric.index(column)])

    def classes(self) -> list:
        """The sorted class labels seen in any row."""
        return sorted(plain_value(label) for label in self.labels)

    def infer_task(self) -> str:
        """As `keras_bigml.data.tables.infer_task`, from the counts."""
        if not self.target_numeric:
            return "classification"
        if self.labels_overflow or not self.target_integral:
            return "regression"
        return "classification" if len(self.labels) <= max(20, self.rows // 50) else "regression"

    def check(self, task: str, name: str) -> None:
        """Refuse what cannot be learned, with one sentence naming the columns or classes."""
        if self.rows == 0:
            raise DataError(f"{name} has no rows.")
        if self.train_rows == 0:
            raise DataError(f"{name} has no training rows after the split; lower test_size.")
        empty = [c for c, n in zip(self.features, self.present, strict=True) if n == 0]
        if empty:
            raise DataError(f"{name} has columns with no values at all: {', '.join(empty)}; drop them.")
        infinite = [c for c, n in zip(self.numeric, self.infinite, strict=True) if n]
        if infinite:
            raise DataError(
                f"{name} has infinite values in columns {', '.join(infinite)}; replace them (e.g. by NaN) "
                "or drop them."
            )
        if self.target_missing:
            raise DataError(
                f"The target column {self.target!r} of {name} has {self.target_missing} missing values; "
                "drop those rows first."
            )
        if self.target_infinite:
            raise DataError(
                f"The target column {self.target!r} of {name} has infinite values; drop those rows."
            )
        if task == "regression":
            if not self.target_numeric:
                raise DataError(
                    f"The target {self.target!r} of {name} is not numeric; regression needs numbers: "
                    "use task='classification'."
                )
            return
        if self.labels_overflow:
            raise DataError(
                f"The target {self.target!r} of {name} has more than {MAX_CLASSES} distinct values; "
                "classification needs fewer classes: use task='regression'."
            )
        if len(self.labels) < 2:
            (label, count), = self.labels.items()
            raise DataError(
                f"The target {self.target!r} of {name} has one class ({plain_value(label)!r} in all {count} "
                "rows); classification needs at least two."
            )
        untrained = [label for label in self.labels if self.train_labels[label] == 0]
        if untrained:
            label = untrained[0]
            raise DataError(
                f"Class {plain_value(label)!r} of the target {self.target!r} of {name} has {self.labels[label]} "
                "rows and none among the training rows; drop or merge it, or lower test_size."
            )


class Preprocessing:
    """Turn raw batches into float32 matrices: one-hot categories, optional imputation and scaling.

    Trees keep missing numbers as NaN (XGBoost learns where they go); linear
    models get the training mean and standardization. Categories keep the
    ``max_categories`` most frequent values of each column (others encode as all
    zeros, like scikit-learn's ``handle_unknown="ignore"``).

    >>> frame = pd.DataFrame({"a": [1.0, 3.0, np.nan], "c": ["x", "y", "x"], "t": [0, 1, 1]})
    >>> stats = TableStats(frame.iloc[:0], "t")
    >>> stats.update(frame, np.ones(3, bool), "t")
    >>> prep = Preprocessing.from_stats(stats, scale=True)
    >>> prep.feature_names_out
    ['a', 'c_x', 'c_y']
    >>> prep.transform(frame).astype(float).round(2).tolist()
    [[-1.22, 1.0, 0.0], [1.22, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """

    def __init__(self, numeric, categories, means=None, scales=None):
        self.numeric = list(numeric)
        self.categories = {column: list(values) for column, values in categories.items()}
        self.means = None if means is None else np.asarray(means, dtype=np.float64)
        self.scales = None if scales is None else np.asarray(scales, dtype=np.float64)

    @classmethod
    def from_stats(cls, stats: TableStats, scale: bool, max_categories: int = 20) -> "Preprocessing":
        categories = {
            column: [value for value, _ in stats.categories[column].most_common(max_categories)]
            for column in stats.categorical
        }
        if not scale:
            return cls(stats.numeric, categories)
        # The spread after imputation (missing values at the mean), as scikit-learn's imputer then scaler.
        std = np.sqrt(stats.m2 / max(stats.train_rows, 1))
        return cls(stats.numeric, categories, stats.mean_, np.where(std > 0, std, 1.0))

    @property
    def columns(self) -> list[str]:
        """The raw columns a batch must have."""
        return self.numeric + list(self.categories)

    @property
    def feature_names_out(self) -> list[str]:
        return self.numeric + [f"{c}_{v}" for c, values in self.categories.items() for v in values]

    def transform(self, frame: pd.DataFrame, where: str = "the table") -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"{where} lacks the model's columns {', '.join(missing)}.")
        out = np.empty((len(frame), len(self.feature_names_out)), dtype=np.float32)
        numeric = _numeric_values(frame[self.numeric], where) if self.numeric else np.empty((len(frame), 0))
        if self.means is not None:
            numeric = np.where(np.isnan(numeric), self.means, numeric)
            numeric = (numeric - self.means) / self.scales
        out[:, : len(self.numeric)] = numeric
        index = len(self.numeric)
        for column, values in self.categories.items():
            text = frame[column].astype("string")
            for value in values:
                out[:, index] = text.eq(value).fillna(False).to_numpy(dtype=np.float32)
                index += 1
        return out

    def to_config(self) -> dict:
        return {
            "numeric": self.numeric, "categories": self.categories,
            "means": None if self.means is None else self.means.tolist(),
            "scales": None if self.scales is None else self.scales.tolist(),
        }

    @classmethod
    def from_config(cls, config: dict) -> "Preprocessing":
        return cls(config["numeric"], config["categories"], config["means"], config["scales"])


class TableModel:
    """A fitted scaled-engine model: preprocessing plus an XGBoost booster or an SGD learner.

    Behaves like a scikit-learn classifier or regressor on DataFrames of the
    raw columns (``predict``, ``predict_proba`` when the loss gives
    probabilities, ``decision_function``, ``classes_``), batch by batch, so it
    scores tables of any size a batch at a time. Save with :meth:`save`, load
    with :func:`load_table_model`.
    """

    def __init__(self, algorithm, task, engine, target, preprocessing, classes, estimator, params=None):
        self.algorithm = algorithm
        self.task = task
        self.engine = engine
        self.target = target
        self.preprocessing = preprocessing
        self.classes_ = None if classes is None else np.asarray(classes, dtype=object)
        self.estimator = estimator
        self.params = dict(params or {})

    @property
    def kind(self) -> str:
        return "sgd" if hasattr(self.estimator, "partial_fit") else "xgboost"

    @property
    def boosters(self) -> "list[xgboost.Booster]":
        """The XGBoost boosters: one, or (forests saved by keras_bigml 0.2.0) groups of one forest's trees."""
        return self.estimator if isinstance(self.estimator, list) else [self.estimator]

    @property
    def booster_files(self) -> list[str]:
        """The file names `save` gives the boosters: ``model.ubj``, or ``model-0.ubj``... for groups of trees."""
        count = len(self.boosters)
        return ["model.ubj"] if count == 1 else [f"model-{i}.ubj" for i in range(count)]

    @property
    def columns(self) -> list[str]:
        return self.preprocessing.columns

    def __getattr__(self, name):
        # predict_proba exists only where the loss gives probabilities (not hinge).
        if name == "predict_proba" and self._has_probabilities():
            return self._predict_proba
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def _has_probabilities(self):
        if self.task != "classification":
            return False
        return self.kind == "xgboost" or self.estimator.loss == "log_loss"

    def transform(self, frame: pd.DataFrame, where: str = "the table") -> np.ndarray:
        return self.preprocessing.transform(frame, where)

    def _raw(self, matrix):
        if self.kind == "sgd":
            if self.task == "regression":
                return self.estimator.predict(matrix)
            return self.estimator.decision_function(matrix)
        if len(self.boosters) == 1:
            return self.estimator.inplace_predict(matrix)
        # A forest in groups (as 0.2.0 trained large ones): XGBoost's forest output is the mean of its
        # trees, so the whole forest's margin is the groups' margins averaged by their trees, then the link.
        margins = [booster.inplace_predict(matrix, predict_type="margin") for booster in self.boosters]
        margin = np.average(margins, axis=0, weights=[_parallel_trees(b) for b in self.boosters])
        if self.task == "regression":
            return margin
        if margin.ndim == 1:
            return 1.0 / (1.0 + np.exp(-margin))
        margin = np.exp(margin - margin.max(axis=1, keepdims=True))
        return margin / margin.sum(axis=1, keepdims=True)

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """Per-class scores of a transformed matrix: probabilities, or a decision for hinge SVMs."""
        if self.kind == "xgboost":
            values = np.asarray(self._raw(matrix), dtype=np.float64)
            return np.column_stack([1 - values, values]) if values.ndim == 1 else values
        if self.estimator.loss == "log_loss":
            return self.estimator.predict_proba(matrix)
        decision = np.asarray(self.estimator.decision_function(matrix), dtype=np.float64)
        return np.column_stack([-decision, decision]) if decision.ndim == 1 else decision

    def predict_codes(self, matrix: np.ndarray) -> np.ndarray:
        """Encoded predictions (class indices, or values for regression) of a transformed matrix."""
        if self.task == "regression":
            return np.asarray(self._raw(matrix), dtype=np.float64)
        return np.argmax(self.scores(matrix), axis=1)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        codes = self.predict_codes(self.transform(frame))
        return codes if self.task == "regression" else self.classes_[codes]

    def _predict_proba(self, frame):
        return self.scores(self.transform(frame))

    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("decision_function is for classifiers")
        scores = self.scores(self.transform(frame))
        return scores[:, 1] if scores.shape[1] == 2 else scores

    def feature_importance(self) -> tuple[list[str], np.ndarray]:
        """``(names, importances)``: XGBoost's total gain per feature, or a linear model's mean |coef|."""
        names = self.preprocessing.feature_names_out
        if self.kind == "sgd":
            return names, np.abs(np.atleast_2d(self.estimator.coef_)).mean(axis=0)
        gains = [booster.get_score(importance_type="total_gain") for booster in self.boosters]
        return names, np.array([sum(gain.get(f"f{i}", 0.0) for gain in gains) for i in range(len(names))])

    def save(self, out_dir: str | os.PathLike) -> str:
        """Write ``model.json`` (and ``model.ubj``, or ``model-0.ubj``... for a forest in groups) atomically.

        Returns the path of ``model.json``.
        """
        os.makedirs(out_dir, exist_ok=True)
        config = {
            "format": MODEL_FORMAT, "version": MODEL_VERSION, "algorithm": self.algorithm,
            "task": self.task, "engine": self.engine, "target": self.target,
            "classes": None if self.classes_ is None else [plain_value(c) for c in self.classes_],
            "preprocessing": self.preprocessing.to_config(), "params": self.params, "kind": self.kind,
        }
        if self.kind == "xgboost":
            config["boosters"] = self.booster_files
            for name, booster in zip(config["boosters"], self.boosters, strict=True):
                with atomic_path(os.path.join(out_dir, name), suffix=".ubj") as tmp:
                    booster.save_model(tmp)
        else:
            config["sgd"] = _sgd_config(self.estimator)
        path = os.path.join(out_dir, "model.json")
        with atomic_path(path) as tmp, open(tmp, "w") as file:
            json.dump(config, file, indent=1)
        return path


def load_table_model(path: str | os.PathLike) -> TableModel:
    """Load a `TableModel` from ``model.json`` (or its run directory); no code runs from the files.

    Raises `keras_bigml.errors.ModelFileError` for a missing, damaged or foreign file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.json")
    if not os.path.isfile(path):
        raise ModelFileError(f"No saved model at {path}.")
    try:
        with open(path) as file:
            config = json.load(file)
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{path} is not a keras_bigml model file ({error}).") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a keras_bigml table model (no format {MODEL_FORMAT!r}).")
    if config.get("version") != MODEL_VERSION:
        raise ModelFileError(f"{path} is a table model of version {config.get('version')}; "
                             f"this keras_bigml reads version {MODEL_VERSION}.")
    try:
        if config["kind"] == "xgboost":
            import xgboost

            boosters = []
            for name in config["boosters"]:
                booster_path = os.path.join(os.path.dirname(path), os.path.basename(name))
                if not os.path.isfile(booster_path):
                    raise ModelFileError(f"{path} names the booster {booster_path}, which is missing.")
                boosters.append(xgboost.Booster())
                boosters[-1].load_model(booster_path)
            estimator = boosters[0] if len(boosters) == 1 else boosters
        else:
            estimator = _sgd_from_config(config["sgd"], config["task"])
        return TableModel(
            config["algorithm"], config["task"], config["engine"], config["target"],
            Preprocessing.from_config(config["preprocessing"]), config["classes"], estimator,
            config["params"],
        )
    except ModelFileError:
        raise
    except Exception as error:  # a damaged file: any of KeyError, TypeError, XGBoostError
        raise ModelFileError(f"{path} is a damaged table model ({type(error).__name__}: {error}).") from None


def _parallel_trees(booster):
    config = json.loads(booster.save_config())
    return int(config["learner"]["gradient_booster"]["gbtree_model_param"]["num_parallel_tree"])


def _sgd_config(learner):
    return {
        "class": type(learner).__name__, "params": _json_params(learner.get_params()),
        "coef": np.asarray(learner.coef_).tolist(), "intercept": np.asarray(learner.intercept_).tolist(),
        "dtypes": [str(np.asarray(learner.coef_).dtype), str(np.asarray(learner.intercept_).dtype)],
        "classes": None if not hasattr(learner, "classes_") else np.asarray(learner.classes_).tolist(),
        "t": float(learner.t_),
    }


def _sgd_from_config(config, task):
    """Rebuild a fitted SGD learner from its coefficients (scikit-learn predicts with them as usual)."""
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    classes = {"SGDClassifier": SGDClassifier, "SGDRegressor": SGDRegressor}
    learner = classes[config["class"]](**config["params"])
    coef_dtype, intercept_dtype = (np.dtype(name) for name in config["dtypes"])
    if not {coef_dtype, intercept_dtype} <= {np.dtype(np.float32), np.dtype(np.float64)}:
        raise ValueError(f"coefficients of dtypes {config['dtypes']}")
    learner.coef_ = np.asarray(config["coef"], dtype=coef_dtype)
    learner.intercept_ = np.asarray(config["intercept"], dtype=intercept_dtype)
    learner.t_ = config["t"]
    learner.n_features_in_ = learner.coef_.shape[-1]
    if config["classes"] is not None:
        learner.classes_ = np.asarray(config["classes"])
    return learner


def _json_params(params):
    return {key: value for key, value in params.items()
            if value is None or isinstance(value, (bool, int, float, str))}


def encode_labels(y: pd.Series | np.ndarray, classes: list) -> np.ndarray:
    """Class indices of labels ``y`` (every label must be in ``classes``)."""
    codes = pd.Categorical(y, categories=classes).codes
    return codes.astype(np.int32)


def _numeric_values(frame, where):
    try:
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        bad = [str(c) for c in frame.columns if not _is_numeric(frame[c].dtype)]
        bad = bad or [str(c) for c in frame.columns]
        raise DataError(f"{where} has non-numeric values in the numeric columns {', '.join(bad)}.") from None


def _is_numeric(dtype):
    """Numbers and booleans (as 0 and 1) are numeric features; strings and categories are not."""
    return pd.api.types.is_numeric_dtype(dtype)



def release_memory() -> None:
    """Return the memory this process has freed to the OS: glibc's ``malloc_trim`` (nothing elsewhere).

    XGBoost frees what a training round holds, but glibc keeps most freed memory in its heaps (and
    in the arenas of XGBoost's threads) unless asked: measured after a depth-10 round of 10 trees on
    1.5M rows, 87 MB stayed resident, 14 MB after ``malloc_trim``.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def peak_memory_mb() -> float | None:
    """This process's peak resident memory so far (MB), or None where the OS does not say."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def epochs_for(rows: int, epochs: int | str = "auto") -> int:
    """SGD passes: ``"auto"`` makes enough passes to see about 300,000 rows (1 to 20).

    >>> epochs_for(3_000_000), epochs_for(10_000)
    (1, 20)
    """
    if epochs == "auto":
        return int(min(20, max(1, math.ceil(300_000 / max(rows, 1)))))
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a whole number of passes, at least 1, or 'auto', got {epochs!r}.")
    return epochs
