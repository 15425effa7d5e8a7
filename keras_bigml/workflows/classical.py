"""Train and report a classical model in one call: load, split, (tune), train, evaluate, save."""

import contextlib
import json
import os
from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import train_test_split

from keras_bigml.classical.cluster import dask_backend
from keras_bigml.classical.estimators import check_algorithm, make_model
from keras_bigml.classical.persist import save_model
from keras_bigml.classical.tuning import METHODS as TUNE_METHODS
from keras_bigml.classical.tuning import tune
from keras_bigml.data.tables import BUILTIN_TABLES, check_target, check_test_size, infer_task, load_table
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.evaluation.classical import classification_report, regression_report, save_report_plots
from keras_bigml.files import atomic_path

TUNE_FOLDS = 5


@dataclass
class ClassicalResult:
    """What `train_classical` measured and wrote."""

    report: dict
    paths: dict = field(default_factory=dict)
    model: object = None


def train_classical(algorithm, source, out_dir, *, target=None, task=None, tune_method=None,
                  test_size=0.25, random_state=0, dask=None):
    """Train ``algorithm`` on a table and write report, plots and model to ``out_dir``.

    Parameters
    ----------
    algorithm : str
    source : str or DataFrame
        A bundled set name, a CSV/Parquet path, or a DataFrame (see ``load_table``).
    target : str, optional
        The target column (bundled sets know theirs).
    task : {"classification", "regression"}, optional
        Inferred from the target when not given.
    tune_method : {"grid", "random", "halving"}, optional
        Search hyper-parameters on the training split first.
    test_size : float
        Share of rows held out for the report (stratified for classification).
    dask : str or True, optional
        Run parallel work on Dask: a scheduler address, or True for a local cluster.

    Returns
    -------
    ClassicalResult
        ``report`` (the metrics), ``paths`` (files written) and the fitted ``model``.

    Examples
    --------
    >>> import tempfile
    >>> result = train_classical("decision_tree", "iris", tempfile.mkdtemp())
    >>> result.report["task"], result.report["test"]["accuracy"] > 0.85
    ('classification', True)
    """
    check_test_size(test_size)
    if task is not None:
        check_algorithm(algorithm, task)
    if tune_method is not None and tune_method not in TUNE_METHODS:
        raise ConfigError(f"Unknown search method {tune_method!r}: use one of {', '.join(TUNE_METHODS)}.")
    X, y = load_table(source, target)
    if task is None:
        builtin = isinstance(source, str) and source in BUILTIN_TABLES
        task = BUILTIN_TABLES[source][1] if builtin else infer_task(y)
    check_algorithm(algorithm, task)
    name = "the DataFrame" if isinstance(source, pd.DataFrame) else os.fspath(source)
    check_target(y, task, test_size, name)
    stratify = y if task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=stratify
    )
    if tune_method and task == "classification" and y_train.value_counts().min() < TUNE_FOLDS:
        counts = y_train.value_counts()
        raise DataError(
            f"Class {counts.index[-1]!r} has {counts.iloc[-1]} training rows; tuning's {TUNE_FOLDS}-fold "
            "cross-validation needs at least that many per class: tune on more data or without that class."
        )
    parallel = dask_backend(None if dask is True else dask) if dask else contextlib.nullcontext()
    n_jobs = -1 if dask else None
    report = {"algorithm": algorithm, "task": task, "train_rows": len(X_train), "test_rows": len(X_test)}
    paths = {}
    with parallel:
        if tune_method:
            result = tune(algorithm, X_train, y_train, task=task, method=tune_method, cv=TUNE_FOLDS,
                          n_jobs=n_jobs, random_state=random_state)
            model = result.best_model
            report["tuning"] = {"method": tune_method, "best_params": _plain(result.best_params),
                                "best_cv_score": result.best_score}
            paths["tuning"] = os.path.join(out_dir, "tuning.csv")
            with atomic_path(paths["tuning"]) as tmp:
                result.results.to_csv(tmp, index=False)
        else:
            model = make_model(algorithm, task, random_state=random_state, n_jobs=n_jobs)
            model.fit(X_train, y_train)
    evaluate = classification_report if task == "classification" else regression_report
    report["train"] = evaluate(model, X_train, y_train)
    report["test"] = evaluate(model, X_test, y_test)
    paths.update(save_report_plots(model, X_test, y_test, task, out_dir, random_state))
    paths["model"] = save_model(model, os.path.join(out_dir, "model.skops"))
    paths["report"] = os.path.join(out_dir, "report.json")
    with atomic_path(paths["report"]) as tmp, open(tmp, "w") as file:
        json.dump(report, file, indent=1)
    return ClassicalResult(report, paths, model)


def _plain(params):
    return {key: value.item() if hasattr(value, "item") else value for key, value in params.items()}
