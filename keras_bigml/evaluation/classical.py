"""Reports for fitted classifiers and regressors, as dictionaries and as PNG plots."""

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn import metrics
from sklearn.base import BaseEstimator
from sklearn.inspection import permutation_importance

from keras_bigml import plotting
from keras_bigml.errors import DataError
from keras_bigml.files import atomic_path, plain_value

if TYPE_CHECKING:
    import pandas as pd


def classification_report(model: BaseEstimator, X: "pd.DataFrame | np.ndarray", y: "pd.Series | np.ndarray") -> dict:
    """Accuracy, per-class precision/recall/F1, confusion matrix and ROC AUC.

    ROC AUC (one-vs-rest, macro-averaged for several classes) is included when
    the model gives probabilities, or a decision function for two classes.

    Examples
    --------
    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("breast_cancer")
    >>> report = classification_report(make_model("logistic_regression").fit(X, y), X, y)
    >>> sorted(report)
    ['accuracy', 'classes', 'confusion_matrix', 'per_class', 'roc_auc']
    >>> report["accuracy"] > 0.95
    True
    """
    predicted = model.predict(X)
    classes = _classes(model, y)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y, predicted, labels=classes, zero_division=0
    )
    report = {
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "classes": [plain_value(c) for c in classes],
        "per_class": {
            str(plain_value(c)): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": metrics.confusion_matrix(y, predicted, labels=classes).tolist(),
    }
    scores = class_scores(model, X, len(classes))
    if scores is not None:
        if len(classes) == 2:
            report["roc_auc"] = float(metrics.roc_auc_score(y, scores[:, 1]))
        else:
            report["roc_auc"] = float(metrics.roc_auc_score(y, scores, multi_class="ovr", labels=classes))
    return report


def class_scores(model: BaseEstimator, X: "pd.DataFrame | np.ndarray", num_classes: int) -> np.ndarray | None:
    """Per-class scores for ROC analysis, shape (n, num_classes), or None.

    Probabilities when the model has them; for two classes a decision function
    serves too (ROC needs only the ranking). Multi-class decision values are not
    probabilities, so they give no ROC AUC.
    """
    if num_classes < 2:
        return None
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    if hasattr(model, "decision_function") and num_classes == 2:
        decision = np.asarray(model.decision_function(X), dtype=float)
        return np.column_stack([-decision, decision])
    return None


def regression_report(model: BaseEstimator, X: "pd.DataFrame | np.ndarray", y: "pd.Series | np.ndarray") -> dict:
    """R^2, mean absolute error and root mean squared error.

    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("diabetes")
    >>> sorted(regression_report(make_model("linear_regression", "regression").fit(X, y), X, y))
    ['mae', 'r2', 'rmse']
    """
    predicted = model.predict(X)
    return {
        "r2": float(metrics.r2_score(y, predicted)),
        "mae": float(metrics.mean_absolute_error(y, predicted)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
    }


def save_report_plots(model: BaseEstimator, X: "pd.DataFrame | np.ndarray", y: "pd.Series | np.ndarray", task: str,
                      out_dir: str | os.PathLike, random_state: int = 0) -> dict[str, str | os.PathLike]:
    """Write the plots a reader looks at; return their paths by name.

    Classification: confusion matrix, ROC curve (when probabilities exist).
    Regression: predicted versus true. Both: feature importance (the model's
    own, else permutation importance on ``X, y``).
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    if task == "classification":
        report = classification_report(model, X, y)
        paths["confusion_matrix"] = plotting.save_confusion_matrix(
            report["confusion_matrix"], report["classes"], os.path.join(out_dir, "confusion_matrix.png")
        )
        if "roc_auc" in report:
            classes = _classes(model, y)
            paths["roc_curve"] = plotting.save_roc_curve(
                y, class_scores(model, X, len(classes)), classes, os.path.join(out_dir, "roc_curve.png")
            )
    else:
        paths["predicted_vs_true"] = plotting.save_predicted_vs_true(
            y, model.predict(X), os.path.join(out_dir, "predicted_vs_true.png")
        )
    names, importances = feature_importance(model, X, y, random_state)
    paths["feature_importance"] = plotting.save_feature_importance(
        names, importances, os.path.join(out_dir, "feature_importance.png")
    )
    return paths


def feature_importance(model: BaseEstimator, X: "pd.DataFrame | np.ndarray", y: "pd.Series | np.ndarray",
                       random_state: int = 0) -> tuple[list[str], np.ndarray]:
    """Return ``(feature names, importances)``: the model's own when it has them.

    Pipelines report importances for the features their last step sees (after
    encoding and selection); otherwise permutation importance over the inputs.
    """
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    own = getattr(estimator, "feature_importances_", None)
    if own is None and getattr(estimator, "coef_", None) is not None:
        own = np.abs(np.atleast_2d(estimator.coef_)).mean(axis=0)
    if own is not None and hasattr(model, "steps"):
        names = model[:-1].get_feature_names_out()
        return [str(n) for n in names], np.asarray(own, dtype=float)
    result = permutation_importance(model, X, y, n_repeats=5, random_state=random_state)
    names = list(X.columns) if hasattr(X, "columns") else [f"x{i}" for i in range(np.shape(X)[1])]
    return [str(n) for n in names], result.importances_mean


def _classes(model, y):
    classes = getattr(model, "classes_", None)
    return list(classes) if classes is not None else sorted(np.unique(y))



ROC_BINS = 1 << 14


class PartitionReport:
    """The statistics of `classification_report` / `regression_report`, gathered batch by batch.

    Each partition (or batch) adds counts: a confusion matrix, and for ROC AUC a
    histogram of each class's score among its rows and among the others (``bins``
    equal-width bins of the probability; hinge-loss decision values go through the
    logistic function first, which keeps their order). Partial reports from
    different partitions or workers :meth:`merge`, so a table's report never needs
    its rows in one place. The AUC from histograms counts a positive and a negative
    row in the same bin as half a correctly ordered pair; ``roc_auc_max_error`` is the
    largest difference this can make to the exact AUC (at most half the share of
    such pairs). Regression: running mean, variance and error sums (merged with
    Chan et al.'s formulas), and a uniform sample of up to ``sample`` rows for the plot.

    >>> report = PartitionReport("classification", classes=[0, 1])
    >>> report.update(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]),
    ...               np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]))
    >>> result = report.report()
    >>> result["accuracy"], result["confusion_matrix"], result["roc_auc"]
    (0.75, [[1, 1], [0, 2]], 1.0)
    """

    def __init__(self, task, classes=None, *, probabilities=True, bins=ROC_BINS, sample=2000, seed=0):
        self.task = task
        self.classes = None if classes is None else list(classes)
        self.probabilities = probabilities
        self.bins = bins
        self.sample_size = sample
        self.seed = seed
        self.rows = 0
        if task == "classification":
            k = len(self.classes)
            self.confusion = np.zeros((k, k), dtype=np.int64)
            self.histograms = np.zeros((1 if k == 2 else k, 2, bins), dtype=np.int64)
            self.has_scores = False
        else:
            self.mean = 0.0
            self.m2 = 0.0  # sum of squared deviations of the true values from their mean
            self.squared_error = 0.0
            self.absolute_error = 0.0
            self.kept = np.empty((0, 3))  # (random key, true, predicted)

    def update(self, y: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None = None) -> None:
        """Add rows: class indices (or values for regression) and, optionally, per-class scores."""
        y = np.asarray(y)
        predicted = np.asarray(predicted)
        if len(y) == 0:
            return
        self.rows += len(y)
        if self.task == "regression":
            self._update_regression(y.astype(np.float64), predicted.astype(np.float64))
            return
        k = len(self.classes)
        self.confusion += np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)
        if scores is not None and (self.probabilities or k == 2):
            self.has_scores = True
            scores = np.asarray(scores, dtype=np.float64)
            if not self.probabilities:
                scores = 1.0 / (1.0 + np.exp(-np.clip(scores, -700, 700)))
            shown = [1] if k == 2 else range(k)
            for row, cls in enumerate(shown):
                where = (np.clip(scores[:, cls], 0.0, 1.0) * self.bins).astype(np.int64)
                where = np.minimum(where, self.bins - 1)
                positive = y == cls
                self.histograms[row, 1] += np.bincount(where[positive], minlength=self.bins)
                self.histograms[row, 0] += np.bincount(where[~positive], minlength=self.bins)

    def _update_regression(self, y, predicted):
        n, mean = len(y), y.mean()
        self._merge_moments(n, mean, ((y - mean) ** 2).sum())
        errors = predicted - y
        self.squared_error += float((errors ** 2).sum())
        self.absolute_error += float(np.abs(errors).sum())
        keys = np.random.default_rng([self.seed, self.rows]).random(n)
        self._keep(np.column_stack([keys, y, predicted]))

    def _merge_moments(self, n, mean, m2):
        # self.rows already counts the n new rows.
        before = self.rows - n
        delta = mean - self.mean
        self.mean += delta * n / self.rows
        self.m2 += m2 + delta ** 2 * before * n / self.rows

    def _keep(self, rows):
        # The rows with the smallest random keys: a uniform sample without replacement.
        rows = np.concatenate([self.kept, rows])
        self.kept = rows[np.argsort(rows[:, 0])[: self.sample_size]]

    def __getstate__(self):
        # Sent between Dask workers and to the client: only the histograms' filled bins.
        state = dict(self.__dict__)
        if "histograms" in state:
            histograms = state.pop("histograms")
            filled = np.flatnonzero(histograms)
            counts = histograms.ravel()[filled]
            # Positions as offsets from the previous filled bin: small numbers in small dtypes.
            offsets = np.diff(filled, prepend=0)
            state["histograms_sparse"] = (histograms.shape, _compact(offsets), _compact(counts))
        return state

    def __setstate__(self, state):
        if "histograms_sparse" in state:
            shape, offsets, counts = state.pop("histograms_sparse")
            histograms = np.zeros(shape, dtype=np.int64)
            histograms.ravel()[np.cumsum(offsets, dtype=np.int64)] = counts
            state["histograms"] = histograms
        self.__dict__.update(state)

    def merge(self, other: "PartitionReport") -> "PartitionReport":
        """Add another partial report of the same task and classes; return self."""
        if other.rows == 0:
            return self
        self.rows += other.rows
        if self.task == "classification":
            self.confusion += other.confusion
            self.histograms += other.histograms
            self.has_scores |= other.has_scores
        else:
            self._merge_moments(other.rows, other.mean, other.m2)
            self.squared_error += other.squared_error
            self.absolute_error += other.absolute_error
            self._keep(other.kept)
        return self

    def report(self) -> dict:
        """The same keys as `classification_report` / `regression_report`."""
        if self.rows == 0:
            raise DataError("The report has no rows: every row fell outside this share of the split.")
        if self.task == "regression":
            return {
                "r2": float(1 - self.squared_error / self.m2) if self.m2 > 0 else float("nan"),
                "mae": self.absolute_error / self.rows,
                "rmse": float(np.sqrt(self.squared_error / self.rows)),
            }
        matrix = self.confusion
        true_counts, predicted_counts, correct = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(predicted_counts > 0, correct / np.maximum(predicted_counts, 1), 0.0)
            recall = np.where(true_counts > 0, correct / np.maximum(true_counts, 1), 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        report = {
            "accuracy": float(correct.sum() / matrix.sum()),
            "classes": [plain_value(c) for c in self.classes],
            "per_class": {
                str(plain_value(c)): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                for c, p, r, f, s in zip(self.classes, precision, recall, f1, true_counts, strict=True)
            },
            "confusion_matrix": matrix.tolist(),
        }
        aucs = self._aucs()
        if aucs is not None:
            report["roc_auc"] = float(np.mean([auc for auc, _ in aucs]))
        return report

    def roc_auc_max_error(self) -> float | None:
        """The largest difference between the reported ROC AUC and the exact one, or None."""
        aucs = self._aucs()
        return None if aucs is None else float(np.mean([error for _, error in aucs]))

    def _aucs(self):
        if self.task != "classification" or not self.has_scores:
            return None
        results = []
        for negative, positive in self.histograms:
            pairs = negative.sum() * positive.sum()
            if pairs == 0:
                return None  # a class absent from these rows: no ROC AUC, as with scikit-learn
            below = np.cumsum(negative) - negative
            auc = (positive * (below + 0.5 * negative)).sum() / pairs
            results.append((float(auc), float(0.5 * (positive * negative).sum() / pairs)))
        return results

    def roc_curves(self) -> dict:
        """``{class: (false positive rates, true positive rates, auc)}`` from the histograms."""
        shown = self.classes[1:] if len(self.classes) == 2 else self.classes
        curves = {}
        aucs = self._aucs() or []
        for cls, (negative, positive), (auc, _) in zip(shown, self.histograms, aucs, strict=False):
            fpr = np.concatenate([[0.0], np.cumsum(negative[::-1]) / negative.sum()])
            tpr = np.concatenate([[0.0], np.cumsum(positive[::-1]) / positive.sum()])
            curves[plain_value(cls)] = (fpr, tpr, auc)
        return curves

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """``(true, predicted)`` of the uniform sample of regression rows."""
        return self.kept[:, 1], self.kept[:, 2]


def _compact(values):
    """Non-negative integers in the smallest unsigned dtype that holds them."""
    largest = int(values.max()) if len(values) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return values.astype(dtype)
    return values.astype(np.uint64)


def save_partition_report_plots(report: "PartitionReport", importances: tuple[Sequence[str], Sequence[float]],
                                out_dir: str | os.PathLike) -> dict[str, str | os.PathLike]:
    """The plots of `save_report_plots`, drawn from a `PartitionReport` and ``(names, importances)``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    if report.task == "classification":
        paths["confusion_matrix"] = plotting.save_confusion_matrix(
            report.confusion, report.classes, os.path.join(out_dir, "confusion_matrix.png")
        )
        curves = report.roc_curves()
        if curves:
            paths["roc_curve"] = _save_roc_curves(curves, os.path.join(out_dir, "roc_curve.png"))
    else:
        y_true, y_predicted = report.sample()
        paths["predicted_vs_true"] = plotting.save_predicted_vs_true(
            y_true, y_predicted, os.path.join(out_dir, "predicted_vs_true.png")
        )
    names, values = importances
    paths["feature_importance"] = plotting.save_feature_importance(
        names, values, os.path.join(out_dir, "feature_importance.png")
    )
    return paths


def _save_roc_curves(curves, path):
    """ROC curves given as points (plotting.save_roc_curve needs every row's score)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 5))
    axes = figure.subplots()
    for cls, (fpr, tpr, auc) in curves.items():
        axes.plot(fpr, tpr, label=f"{cls} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100)
    return path
