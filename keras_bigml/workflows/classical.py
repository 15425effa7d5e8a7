"""Train and report a classical model in one call: load, split, (tune), train, evaluate, save.

One switch, ``engine``, picks where: ``"memory"`` (pandas + scikit-learn, the
default), ``"out_of_core"`` (one machine, a table larger than its memory) or
``"dask"`` (partitions on a Dask cluster). The algorithm names, the report's keys
and the run directory's files are the same for all three; see
`keras_bigml.classical.engines` for which library runs which algorithm.
"""

import json
import os
from dataclasses import dataclass, field

import pandas as pd
from sklearn.model_selection import train_test_split

from keras_bigml.classical.engines import ENGINES, VALIDATION_SHARE, check_engine
from keras_bigml.classical.estimators import check_algorithm, make_model
from keras_bigml.classical.persist import save_model
from keras_bigml.classical.scaled import peak_memory_mb
from keras_bigml.classical.tuning import METHODS as TUNE_METHODS
from keras_bigml.classical.tuning import tune
from keras_bigml.data.tables import (
    BATCH_ROWS,
    BUILTIN_TABLES,
    RowSplit,
    check_target,
    check_test_size,
    infer_task,
    load_table,
    open_table,
)
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.evaluation.classical import (
    classification_report,
    regression_report,
    save_partition_report_plots,
    save_report_plots,
)
from keras_bigml.evaluation.profile import profile_table
from keras_bigml.files import atomic_path, plain_value
from keras_bigml.reports import write_report
from keras_bigml.runs import RUN_FILE, RunDirectory

TUNE_FOLDS = 5

# The name of the target column in the frame the profile checks: one no feature has.
TARGET_COLUMN = "__target__"


@dataclass
class ClassicalResult:
    """What `train_classical` measured and wrote."""

    report: dict
    paths: dict = field(default_factory=dict)
    model: object = None


def train_classical(algorithm: str, source: str | os.PathLike | pd.DataFrame, out_dir: str | os.PathLike, *,
                    target: str | None = None, task: str | None = None, tune_method: str | None = None,
                    test_size: float = 0.25, random_state: int = 0, engine: str = "memory",
                    dask_address: str | None = None, params: dict | None = None, n_iter: int = 8,
                    epochs: int | str = "auto", batch_rows: int = BATCH_ROWS, n_workers: int | None = None,
                    n_threads: int | None = None, progress: bool = True, dask: str | bool | None = None,
                    overwrite: bool = False) -> ClassicalResult:
    """Train ``algorithm`` on a table and write report, plots and model to ``out_dir``.

    Parameters
    ----------
    algorithm : str
        ``linear_regression``, ``logistic_regression``, ``svm``, ``decision_tree``,
        ``random_forest`` or ``gradient_boosting``.
    source : str or path or DataFrame
        A bundled set name, a CSV/Parquet file, a directory of parts or a glob, or a
        DataFrame (see ``load_table``). The out_of_core and dask engines read files.
    target : str, optional
        The target column (bundled sets know theirs).
    task : {"classification", "regression"}, optional
        Inferred from the target when not given.
    tune_method : str, optional
        Search hyper-parameters first. Memory: ``"grid"``, ``"random"`` or
        ``"halving"`` with 5-fold cross-validation. Out of core and Dask: ``"grid"``
        or ``"random"`` (``n_iter`` candidates) scored on a validation split (a fifth
        of the training rows), boosting with early stopping on it.
    test_size : float
        Share of rows held out for the report. In memory a stratified split; out of
        core and on Dask each row is held out with this probability, drawn from
        ``random_state`` and the row's place in its file (`RowSplit`), so no shuffle.
    random_state : int
        Seed of the split and of the algorithms.
    engine : {"memory", "out_of_core", "dask"}
    dask_address : str, optional
        With ``engine="dask"``: a running scheduler (``"tcp://host:8786"``); without
        it a local cluster starts whose workers share this machine's memory.
    params : dict, optional
        The algorithm's own parameters (scikit-learn's in memory; XGBoost's or
        SGD's on the other engines, e.g. ``{"n_estimators": 200, "max_depth": 8}``).
    n_iter, epochs, batch_rows, n_workers, n_threads, progress
        Candidates of a random search; SGD passes (``"auto"``: about 300,000 rows
        seen); rows per batch read out of core; local Dask workers; XGBoost threads
        out of core (default: every core; 1 on a machine shared with other work, where
        OpenMP threads waiting for busy cores slow XGBoost down ten times); progress bars.
    dask : str or True, optional
        Older spelling of ``engine="dask"`` (with ``dask_address`` when a string).

    Returns
    -------
    ClassicalResult
        ``report`` (the metrics), ``paths`` (files written) and the fitted ``model``.

    Raises
    ------
    ConfigError, DataError
        Bad parameters, or a table that cannot be learned (one sentence each).
    EngineError
        The Dask cluster failed (unreachable, a worker lost): nothing is marked finished.

    Examples
    --------
    >>> import tempfile
    >>> result = train_classical("decision_tree", "iris", tempfile.mkdtemp())
    >>> result.report["task"], result.report["test"]["accuracy"] > 0.85
    ('classification', True)
    """
    if dask is not None and dask is not False:
        engine, dask_address = "dask", (None if dask is True else dask)
    check_test_size(test_size)
    check_engine(engine, algorithm, task)
    if task is not None:
        check_algorithm(algorithm, task)
    allowed = TUNE_METHODS if engine == "memory" else ("grid", "random")
    if tune_method is not None and tune_method not in allowed:
        raise ConfigError(
            f"Search method {tune_method!r} is not available on the {engine} engine: "
            f"use one of {', '.join(allowed)}."
        )
    arguments = {"algorithm": algorithm, "data": "a DataFrame" if isinstance(source, pd.DataFrame) else source,
                 "target": target, "task": task, "tune": tune_method, "test_size": test_size,
                 "engine": engine, "params": params}
    with RunDirectory(out_dir).open("classical", arguments, overwrite=overwrite, seed=random_state,
                                    restartable=True):
        if engine == "memory":
            result = _train_in_memory(algorithm, source, out_dir, target, task, tune_method, test_size,
                                      random_state, params)
        else:
            result = _train_scaled(algorithm, source, out_dir, target, task, tune_method, test_size,
                                   random_state, engine, dask_address, params, n_iter, epochs, batch_rows,
                                   n_workers, n_threads, progress)
        result.paths["run"] = os.path.join(out_dir, RUN_FILE)
    result.paths["html"] = write_report(out_dir)
    return result


def _train_in_memory(algorithm, source, out_dir, target, task, tune_method, test_size, random_state, params):
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
    report = {"algorithm": algorithm, "task": task, "train_rows": len(X_train), "test_rows": len(X_test),
              "profile_warnings": profile_table(X.assign(**{TARGET_COLUMN: y}), TARGET_COLUMN).warnings}
    paths = {}
    if tune_method:
        result = tune(algorithm, X_train, y_train, task=task, method=tune_method, cv=TUNE_FOLDS,
                      random_state=random_state, **(params or {}))
        model = result.best_model
        report["tuning"] = {"method": tune_method, "best_params": plain_value(result.best_params),
                            "best_cv_score": result.best_score}
        paths["tuning"] = _write_csv(result.results, os.path.join(out_dir, "tuning.csv"))
    else:
        model = make_model(algorithm, task, random_state=random_state, **(params or {}))
        model.fit(X_train, y_train)
    evaluate = classification_report if task == "classification" else regression_report
    report["train"] = evaluate(model, X_train, y_train)
    report["test"] = evaluate(model, X_test, y_test)
    in_files = not isinstance(source, pd.DataFrame) and os.fspath(source) not in BUILTIN_TABLES
    files = len(open_table(source).files) if in_files else 1
    report.update(engine="memory", partitions=files, rows=len(X), client_peak_mb=peak_memory_mb())
    paths.update(save_report_plots(model, X_test, y_test, task, out_dir, random_state))
    paths["model"] = save_model(model, os.path.join(out_dir, "model.skops"))
    paths["report"] = _write_report(report, out_dir)
    return ClassicalResult(report, paths, model)


def _train_scaled(algorithm, source, out_dir, target, task, tune_method, test_size, random_state, engine,
                  dask_address, params, n_iter, epochs, batch_rows, n_workers, n_threads, progress):
    if isinstance(source, pd.DataFrame) or os.fspath(source) in BUILTIN_TABLES:
        raise ConfigError(
            f"The {engine} engine reads tables from files: write the table to Parquet first "
            "(DataFrame.to_parquet), or use engine='memory'."
        )
    source = os.fspath(source)
    table = open_table(source)
    if target is None:
        raise DataError(f"Name the target column of {source}: one of {', '.join(table.columns[:20])}.")
    if target not in table.columns:
        raise DataError(f"{source} has no target column {target!r}; its columns are "
                        f"{', '.join(table.columns[:20])}{', ...' if len(table.columns) > 20 else ''}.")
    split = RowSplit(test_size, VALIDATION_SHARE * (1 - test_size) if tune_method else 0.0, random_state)
    try:
        from keras_bigml.classical.engines import train_scaled

        if engine == "out_of_core":
            from keras_bigml.classical.out_of_core import OutOfCoreEngine

            runner = OutOfCoreEngine(table, target, split, batch_rows=batch_rows, nthread=n_threads,
                                     progress=progress)
        else:
            from keras_bigml.classical.dask_engine import DaskEngine

            runner = DaskEngine(table, target, split, address=dask_address, n_workers=n_workers,
                                progress=progress)
    except ImportError as error:
        raise ConfigError(
            f"The {engine} engine needs {error.name}: pip install 'keras_bigml[scale]'."
        ) from None
    try:
        fit = train_scaled(runner, algorithm, task, params=params, tune_method=tune_method, n_iter=n_iter,
                           epochs=epochs, seed=random_state, name=source)
    finally:
        runner.close()
    train, test = fit.reports["train"], fit.reports["test"]
    report = {"algorithm": algorithm, "task": fit.model.task, "train_rows": train.rows,
              "test_rows": test.rows, "train": train.report(), "test": test.report()}
    paths = {}
    if fit.tuning is not None:
        report["tuning"] = fit.tuning
        paths["tuning"] = _write_csv(fit.tuning_results, os.path.join(out_dir, "tuning.csv"))
    report.update(engine=engine, rows=fit.stats.rows, client_peak_mb=peak_memory_mb(), **fit.info)
    if "roc_auc" in report["test"]:
        report["roc_auc_max_error"] = {"train": train.roc_auc_max_error(), "test": test.roc_auc_max_error()}
    paths.update(save_partition_report_plots(test, fit.model.feature_importance(), out_dir))
    paths["model"] = fit.model.save(out_dir)
    if fit.model.kind == "xgboost":
        boosters = fit.model.booster_files
        for i, name in enumerate(boosters):
            paths["booster" if len(boosters) == 1 else f"booster {i}"] = os.path.join(out_dir, name)
    paths["report"] = _write_report(report, out_dir)
    return ClassicalResult(report, paths, fit.model)


def _write_csv(frame, path):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _write_report(report, out_dir):
    path = os.path.join(out_dir, "report.json")
    with atomic_path(path) as tmp, open(tmp, "w") as file:
        json.dump(report, file, indent=1)
    return path



__all__ = ["ENGINES", "ClassicalResult", "train_classical"]
