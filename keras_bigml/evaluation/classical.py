"""Reports for fitted classifiers and regressors, as dictionaries and as PNG plots."""

import os

import numpy as np
from sklearn import metrics
from sklearn.inspection import permutation_importance

from keras_bigml import plotting


def classification_report(model, X, y):
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
        "classes": [_plain(c) for c in classes],
        "per_class": {
            str(_plain(c)): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(classes, precision, recall, f1, support)
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


def class_scores(model, X, num_classes):
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


def regression_report(model, X, y):
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


def save_report_plots(model, X, y, task, out_dir, random_state=0):
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


def feature_importance(model, X, y, random_state=0):
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


def _plain(value):
    return value.item() if hasattr(value, "item") else value
