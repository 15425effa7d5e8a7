"""One switch for where a classical model trains: in memory, out of core, or on Dask.

| algorithm | ``"memory"`` | ``"out_of_core"`` | ``"dask"`` |
| --- | --- | --- | --- |
| gradient_boosting | HistGradientBoosting | XGBoost external memory | ``xgboost.dask`` |
| random_forest | scikit-learn forest | XGBoost's forest, external memory | XGBoost's forest on Dask |
| decision_tree | scikit-learn tree | one XGBoost tree, external memory | one XGBoost tree on Dask |
| logistic, linear regression | scikit-learn | SGD ``partial_fit`` over batches | ``Incremental`` SGD |
| svm | kernel SVC / SVR | linear SVM: SGD, hinge loss | ``Incremental`` SGD, hinge loss |

`train_scaled` runs the scaled engines' common sequence: a statistics pass,
checks, preprocessing, (a search), training, and one scoring pass that fills the
train and test reports.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats as distributions

from keras_bigml.classical.estimators import check_algorithm
from keras_bigml.classical.scaled import (
    KERNEL_SVM_NOTE,
    LINEAR_ALGORITHMS,
    TREE_ALGORITHMS,
    Preprocessing,
    TableModel,
    epochs_for,
    forest_rounds,
    sgd_learner,
    xgboost_settings,
)
from keras_bigml.errors import ConfigError
from keras_bigml.files import plain_value

if TYPE_CHECKING:
    from keras_bigml.classical.dask_engine import DaskEngine
    from keras_bigml.classical.out_of_core import OutOfCoreEngine

ENGINES = ("memory", "out_of_core", "dask")
SCALED_TUNE_METHODS = ("grid", "random")
EARLY_STOPPING_ROUNDS = 10
VALIDATION_SHARE = 0.2  # of the non-test rows, when tuning

TREE_GRIDS = {
    "gradient_boosting": {"max_depth": [4, 6, 8], "learning_rate": [0.1, 0.3]},
    "random_forest": {"max_depth": [6, 8, 10], "colsample_bynode": [0.5, 0.8]},
    "decision_tree": {"max_depth": [4, 6, 8, 10], "min_child_weight": [1, 10]},
}
TREE_DISTRIBUTIONS = {
    "gradient_boosting": {"max_depth": distributions.randint(3, 11),
                          "learning_rate": distributions.loguniform(0.03, 0.5),
                          "min_child_weight": distributions.loguniform(1, 50),
                          "subsample": distributions.uniform(0.6, 0.4)},
    "random_forest": {"max_depth": distributions.randint(4, 13),
                      "colsample_bynode": distributions.uniform(0.3, 0.7),
                      "subsample": distributions.uniform(0.5, 0.4)},
    "decision_tree": {"max_depth": distributions.randint(3, 13),
                      "min_child_weight": distributions.loguniform(1, 50)},
}
LINEAR_GRID = {"alpha": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]}
LINEAR_DISTRIBUTIONS = {"alpha": distributions.loguniform(1e-7, 1e-1)}


@dataclass
class ScaledFit:
    """What `train_scaled` produced."""

    model: TableModel
    reports: dict
    stats: object
    tuning: dict | None = None
    tuning_results: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)


def check_engine(engine: str, algorithm: str, task: str | None) -> None:
    """Refuse an unknown engine, or an algorithm an engine does not run.

    >>> check_engine("spark", "svm", "classification")
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ConfigError: Unknown engine 'spark': use one of memory, out_of_core, dask.
    """
    if engine not in ENGINES:
        raise ConfigError(f"Unknown engine {engine!r}: use one of {', '.join(ENGINES)}.")
    if engine != "memory" and algorithm not in TREE_ALGORITHMS + LINEAR_ALGORITHMS:
        raise ConfigError(
            f"Unknown algorithm {algorithm!r} for the {engine} engine: use one of "
            f"{', '.join(TREE_ALGORITHMS + LINEAR_ALGORITHMS)}."
        )


def train_scaled(engine: "OutOfCoreEngine | DaskEngine", algorithm: str, task: str | None, *,
                 params: dict | None = None, tune_method: str | None = None, n_iter: int = 8,
                 epochs: int | str = "auto", seed: int = 0, name: str = "the table") -> ScaledFit:
    """Train ``algorithm`` with an `OutOfCoreEngine` or `DaskEngine`; return a `ScaledFit`.

    ``task=None`` infers it from the target's values as `infer_task` does. Tuning
    (``"grid"`` or ``"random"``, ``n_iter`` candidates) trains each candidate on
    the training rows without the validation rows, with early stopping on those
    for boosting, and keeps the candidate with the best validation accuracy
    (classification) or R^2 (regression).
    """
    if tune_method is not None and tune_method not in SCALED_TUNE_METHODS:
        raise ConfigError(
            f"Search method {tune_method!r} is for the memory engine; the {engine.name} engine tunes with "
            f"{' or '.join(SCALED_TUNE_METHODS)} (candidates scored on a validation split)."
        )
    stats = engine.stats()
    task = task or stats.infer_task()
    check_algorithm(algorithm, task)
    stats.check(task, name)
    classes = stats.classes() if task == "classification" else None
    trees = algorithm in TREE_ALGORITHMS
    prep = Preprocessing.from_stats(stats, scale=not trees)
    candidates = _candidates(algorithm, params, tune_method, n_iter, seed)
    tuning = tuning_results = None
    validation = tune_method is not None
    if trees:
        width = len(prep.feature_names_out)
        jobs = []  # (params, rounds, objective): a forest's rounds fit the gradients at the intercept
        for p in candidates:
            booster, rounds = xgboost_settings(algorithm, task, len(classes or []), width, p, seed=seed)
            jobs.append(forest_rounds(booster, stats, classes) if algorithm == "random_forest"
                        else (booster, rounds, None))
        boosting = algorithm == "gradient_boosting"  # only boosting stops early on the validation rows
        estimators, seconds = engine.fit_trees(jobs, prep, classes, validation=validation and boosting,
                                               early_stopping_rounds=EARLY_STOPPING_ROUNDS if boosting else None)
    else:
        learners = [sgd_learner(algorithm, task, p, seed) for p in candidates]
        passes = epochs_for(stats.train_rows, epochs)
        estimators, seconds = engine.fit_linear(learners, prep, classes, passes, seed)
    if algorithm == "gradient_boosting":  # the rounds early stopping kept
        candidates = [{**p, "n_estimators": e.num_boosted_rounds()}
                      for p, e in zip(candidates, estimators, strict=True)]
    models = [TableModel(algorithm, task, engine.name, stats.target, prep, classes, estimator, p)
              for estimator, p in zip(estimators, candidates, strict=True)]
    probabilities = models[0].kind == "xgboost" or models[0].estimator.loss == "log_loss"
    if validation:
        scores = [_score(report["validation"].report(), task)
                  for report in engine.score(models, ["validation"], probabilities)]
        best = int(np.nanargmax(scores))
        tuning_results = _tuning_table(candidates, scores, seconds, models)
        tuning = {"method": tune_method, "best_params": plain_value(models[best].params),
                  "best_cv_score": float(scores[best]), "scored_on": "validation split"}
        models = [models[best]]
    (reports,) = engine.score(models, ["train", "test"], probabilities)
    info = engine.info()
    if algorithm == "svm":
        info["note"] = KERNEL_SVM_NOTE
    return ScaledFit(models[0], reports, stats, tuning, tuning_results, info)


def _candidates(algorithm, params, tune_method, n_iter, seed):
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    params = dict(params or {})
    if tune_method is None:
        return [params]
    trees = algorithm in TREE_ALGORITHMS
    if tune_method == "grid":
        space = ParameterGrid(TREE_GRIDS[algorithm] if trees else LINEAR_GRID)
    else:
        space = ParameterSampler(TREE_DISTRIBUTIONS[algorithm] if trees else LINEAR_DISTRIBUTIONS, n_iter,
                                 random_state=seed)
    return [{**params, **plain_value(candidate)} for candidate in space]


def _score(report, task):
    return report["accuracy"] if task == "classification" else report["r2"]


def _tuning_table(candidates, scores, seconds, models):
    results = pd.DataFrame({
        "mean_test_score": scores, "std_test_score": np.nan, "mean_fit_time": seconds,
        "params": [plain_value(model.params) for model in models],
    })
    results.insert(0, "rank_test_score", results["mean_test_score"].rank(ascending=False, method="min")
                   .astype(int))
    return results.sort_values("rank_test_score").reset_index(drop=True)

