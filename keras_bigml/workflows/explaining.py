"""Explain a run: what drives a classical model's predictions, what a generative model has learned.

Writes under ``RUN/explain/`` (or ``out_dir``) one PNG per method and
``explain.json`` with the rankings and what they were measured on. Classical
runs (``model.skops``, or a scaled engine's ``model.json``) load without
TensorFlow; generative runs (``model.keras``) and image classifiers load with
Keras's safe mode.
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_bigml.errors import ConfigError, DataError, ModelFileError
from keras_bigml.evaluation import explain as explanations
from keras_bigml.files import atomic_path

if TYPE_CHECKING:
    import keras

CLASSICAL_METHODS = ("permutation", "pdp", "shap")
GENERATIVE_METHODS = ("traversal", "gradcam")
CLASSICAL_MODEL_FILES = ("model.skops", "model.json", "model.joblib", "model.pkl")
PLOT_FILES = {"permutation": "permutation_importance.png", "pdp": "partial_dependence.png",
              "shap": "shap_summary.png", "traversal": "latent_traversal.png", "gradcam": "grad_cam.png"}
TITLES = {"permutation": "Permutation importance on held-out rows",
          "shap": "Mean absolute SHAP value"}
# train_classical's defaults, for runs whose report does not record their split.
SPLIT_DEFAULTS = {"test_size": 0.25, "random_state": 0}
REPORT_KEYS = {"ROC AUC": "roc_auc", "accuracy": "accuracy", "R^2": "r2"}
SHAP_ROWS = 500
PERMUTATION_EXPLAINER_ROWS = 100
TRAVERSAL_DIMENSIONS = 8
GRAD_CAM_IMAGES = 8


@dataclass
class ExplainResult:
    """What `explain` found and wrote: rankings by method (classical runs), files, skipped methods."""

    kind: str
    rankings: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


def explain(run_dir: str | os.PathLike, source: str | os.PathLike | pd.DataFrame | None = None,
            method: str | Sequence[str] | None = None, out_dir: str | os.PathLike | None = None, *,
            target: str | None = None, classifier: "str | os.PathLike | keras.Model | None" = None, top: int = 4,
            max_rows: int = 2000, allow_pickle: bool = False, allow_unsafe: bool = False,
            random_state: int = 0) -> ExplainResult:
    """Explain the model of a run and write the plots and ``explain.json``.

    Parameters
    ----------
    run_dir : str or path
        A classical run (``model.skops`` or ``model.json``), a generative run
        (``model.keras``), or a ``.keras`` image classifier.
    source : str, path or DataFrame, optional
        Classical runs: the table to explain on (required). When it has as many
        rows as the run was trained and tested on, the run's held-out rows are
        taken again (same split and seed); any other table is used as it is.
        Generative runs: images for the VAE's active dimensions and for Grad-CAM
        of a classifier run.
    method : str or list of str, optional
        Classical: ``permutation``, ``pdp``, ``shap`` (default all three).
        Generative: ``traversal``, ``gradcam`` (default: those that apply).
    out_dir : str or path, optional
        Default ``RUN/explain``; then the run's ``report.html`` is rewritten with the explanations.
    target : str, optional
        The target column, when the run does not record it.
    classifier : str, path or keras.Model, optional
        A Keras image classifier for Grad-CAM of a generative run's samples.
    top : int
        Partial dependence plots for this many of the most important columns.
    max_rows : int
        Rows used for permutation importance and partial dependence (a seeded
        sample when there are more); SHAP explains at most 500 of them (100 with
        the model-agnostic explainer).
    allow_pickle, allow_unsafe : bool
        Opt in to loading joblib/pickle models, or ``.keras`` files with Python code.
    random_state : int

    Returns
    -------
    ExplainResult

    Examples
    --------
    >>> import tempfile
    >>> from keras_bigml.workflows.classical import train_classical
    >>> run = tempfile.mkdtemp()
    >>> _ = train_classical("decision_tree", "iris", run)
    >>> result = explain(run, "iris", method="permutation")
    >>> result.rankings["permutation"].top(1), sorted(result.paths)
    (['petal width (cm)'], ['json', 'permutation', 'report'])
    """
    run_dir = os.fspath(run_dir)
    methods = _methods(method)
    if max_rows < 10 or top < 1:
        raise ConfigError(f"max_rows must be at least 10 and top at least 1, got {max_rows} and {top}.")
    model_file = _classical_model_file(run_dir)
    home = os.path.dirname(run_dir) if run_dir.lower().endswith(".keras") else run_dir
    out_dir = os.path.join(home, "explain") if out_dir is None else os.fspath(out_dir)
    if model_file is not None:
        result = _explain_classical(run_dir, model_file, source, methods, out_dir, target, top, max_rows,
                                    allow_pickle, random_state)
    elif run_dir.lower().endswith(".keras") or os.path.isfile(os.path.join(run_dir, "model.keras")):
        result = _explain_generative(run_dir, source, methods, out_dir, classifier, allow_unsafe,
                                     random_state)
    else:
        raise ModelFileError(f"No model in {run_dir}: expected {', '.join(CLASSICAL_MODEL_FILES)} or "
                             "model.keras (train one with 'keras-bigml classical' or 'keras-bigml train').")
    plots = {name: os.path.basename(path) for name, path in result.paths.items()}
    result.paths["json"] = os.path.join(out_dir, "explain.json")
    with atomic_path(result.paths["json"]) as tmp, open(tmp, "w") as file:
        json.dump({**result.details, "plots": plots, "skipped": result.skipped}, file, indent=1)
    if os.path.isdir(home) and os.path.abspath(out_dir) == os.path.abspath(os.path.join(home, "explain")):
        from keras_bigml.reports import write_report

        result.paths["report"] = write_report(home)  # the run's page shows the explanations too
    return result


def _methods(method):
    if method is None:
        return None
    methods = [method] if isinstance(method, str) else list(method)
    unknown = [m for m in methods if m not in CLASSICAL_METHODS + GENERATIVE_METHODS]
    if unknown or not methods:
        raise ConfigError(f"Unknown explanation method {', '.join(map(repr, unknown)) or '(none)'}: use "
                          f"{', '.join(CLASSICAL_METHODS)} for classical runs, "
                          f"{', '.join(GENERATIVE_METHODS)} for generative ones.")
    return methods


def _classical_model_file(run_dir):
    if not os.path.isdir(run_dir):
        if os.path.exists(run_dir) or run_dir.lower().endswith(".keras"):
            return None
        raise ModelFileError(f"No run directory at {run_dir}.")
    for name in CLASSICAL_MODEL_FILES:
        if os.path.isfile(os.path.join(run_dir, name)):
            return os.path.join(run_dir, name)
    return None


# Classical runs ---------------------------------------------------------------------------------

def _explain_classical(run_dir, model_file, source, methods, out_dir, target, top, max_rows, allow_pickle,
                       random_state):
    from threadpoolctl import threadpool_limits

    from keras_bigml.data.tables import infer_task, load_table

    wrong = [m for m in methods or () if m not in CLASSICAL_METHODS]
    if wrong:
        raise ConfigError(f"{run_dir} is a classical run: explain it with {', '.join(CLASSICAL_METHODS)}, "
                          f"not {', '.join(wrong)}.")
    if source is None:
        raise ConfigError(f"Explaining {run_dir} needs the table to explain on: pass source (--data SOURCE).")
    model = _load_classical(model_file, allow_pickle)
    report = _read_json(run_dir, "report.json")
    info = _read_json(run_dir, "run.json")  # arguments and seed of the run, when it records them
    arguments = info.get("arguments", {})
    target = target or arguments.get("target") or report.get("target") or getattr(model, "target", None)
    split = _split_of(report, info)
    if report.get("engine", "memory") != "memory" and isinstance(source, (str, os.PathLike)):
        X, y, rows = _partitioned_rows(source, target, split, report, max_rows, random_state)
        task = report.get("task") or getattr(model, "task", None) or infer_task(y)
    else:
        X, y = load_table(source, target)
        task = report.get("task") or getattr(model, "task", None) or infer_task(y)
        X, y, rows = _rows_to_explain(X, y, task, split["random_state"], report, max_rows, random_state)
    methods = methods or list(CLASSICAL_METHODS)
    result = ExplainResult("classical")
    score_name, score = explanations.held_out_score(model, X, y, task)
    reported = report.get("test", {}).get(REPORT_KEYS[score_name])
    if reported is not None and rows["held_out"] and not rows["sampled"]:
        # The run's own test score again is the proof that these are its held-out rows (the
        # scaled engines' ROC AUC comes from score histograms, within the error they report).
        tolerance = report.get("roc_auc_max_error", {}).get("test", 0.0) if score_name == "ROC AUC" else 0.0
        rows["same_score_as_the_run_report"] = bool(abs(reported - score) <= tolerance + 1e-9)
    result.details = {"kind": "classical", "run": run_dir, "model": os.path.basename(model_file),
                      "source": os.fspath(source) if isinstance(source, (str, os.PathLike))
                      else type(source).__name__,
                      "target": str(y.name), "task": task, "rows": rows, "score": {score_name: score},
                      "methods": {}}
    # Explanations make many small predictions: OpenMP start-up and thread oversubscription
    # cost more than they gain there (30 HistGradientBoosting predictions of 200 rows: 9.7 s with
    # the default threads, 1.9 s with one, on this project's shared 2-core machines).
    with threadpool_limits(1):
        if "permutation" in methods:
            ranking = explanations.permutation_ranking(model, X, y, task, random_state=random_state)
            _add_ranking(result, ranking, out_dir)
        if "pdp" in methods:
            ranking = explanations.partial_dependence_ranking(model, X, task)
            leading = result.rankings.get("permutation", ranking).top(top)
            result.rankings["pdp"] = ranking
            result.paths["pdp"] = explanations.save_partial_dependence_plot(
                model, X, leading, task, os.path.join(out_dir, PLOT_FILES["pdp"]), random_state)
            result.details["methods"]["pdp"] = {**ranking.to_dict(), "plotted": leading}
        if "shap" in methods:
            _add_shap(result, model, X, out_dir, random_state)
    return result


def _split_of(report, info):
    """How the run split its rows: from run.json (arguments, seed) or report.json, else train_classical's
    defaults; the held-out count and the test score check the result."""
    from keras_bigml.classical.engines import VALIDATION_SHARE

    arguments = info.get("arguments", {})
    test_size = report.get("test_size", arguments.get("test_size", SPLIT_DEFAULTS["test_size"]))
    tuned = bool(report.get("tuning") or arguments.get("tune"))
    return {"test_size": test_size, "validation_size": VALIDATION_SHARE * (1 - test_size) if tuned else 0.0,
            "random_state": report.get("random_state", info.get("seed", SPLIT_DEFAULTS["random_state"]))}


def _load_classical(path, allow_pickle):
    if path.endswith("model.json"):
        from keras_bigml.classical.scaled import load_table_model

        return load_table_model(path)
    from keras_bigml.classical.persist import load_model

    return load_model(path, allow_pickle=allow_pickle)


def _read_json(run_dir, name):
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{path} is not readable JSON ({error}).") from None
    return data if isinstance(data, dict) else {}


def _rows_to_explain(X, y, task, seed, report, max_rows, random_state):
    """The run's held-out rows when ``X`` is the table it was split from (in memory), else all rows."""
    from sklearn.model_selection import train_test_split

    train_rows, test_rows = report.get("train_rows"), report.get("test_rows")
    held_out = bool(train_rows and test_rows and train_rows + test_rows == len(X))
    rows = {"table_rows": len(X), "held_out": held_out}
    if held_out:
        # train_classical's split: the same sizes and seed give the same rows.
        _, X, _, y = train_test_split(X, y, test_size=test_rows, random_state=seed,
                                      stratify=y if task == "classification" else None)
        rows["chosen"] = f"the run's {test_rows} held-out rows (split again with seed {seed})"
    else:
        rows["chosen"] = "all rows (not the table the run was split from)"
    rows["sampled"] = len(X) > max_rows
    if rows["sampled"]:
        keep = np.sort(np.random.default_rng(random_state).choice(len(X), max_rows, replace=False))
        X, y = X.iloc[keep], y.iloc[keep]
        rows["chosen"] += f", a sample of {max_rows}"
    return _checked_rows(X, y, rows)


def _partitioned_rows(source, target, split, report, max_rows, random_state):
    """Rows of a table the out_of_core or dask engine trained on, read part by part: the run's
    held-out rows (its seeded per-row split, `keras_bigml.data.tables.RowSplit`) when their count
    is the run's, else all rows; a uniform sample of at most ``max_rows`` either way."""
    from keras_bigml.data.tables import RowSplit, open_table, split_target

    table = open_table(source)
    row_split = RowSplit(split["test_size"], split["validation_size"], split["random_state"])
    frame, seen, total = _sample_rows(table, max_rows, random_state, row_split)
    rows = {"table_rows": total, "held_out": seen == report.get("test_rows")}
    if rows["held_out"]:
        rows["chosen"] = (f"the run's {seen} held-out rows (the engine's seeded per-row split, "
                          f"seed {split['random_state']})")
    else:
        frame, seen, _ = _sample_rows(table, max_rows, random_state)
        rows["chosen"] = "all rows (not the table the run was split from)"
    rows["sampled"] = seen > max_rows
    if rows["sampled"]:
        rows["chosen"] += f", a sample of {max_rows}"
    X, y = split_target(frame, target, os.fspath(source))
    return _checked_rows(X, y, rows)


def _sample_rows(table, size, seed, row_split=None):
    """A uniform sample of ``size`` rows (the test rows of ``row_split`` only, when given) in one pass
    that holds at most a batch and the sample; returns (rows in reading order, rows eligible, rows read)."""
    keys = np.random.default_rng(seed)
    kept, kept_keys, seen, total = [], np.empty(0), 0, 0
    for part in table.parts:
        for block, start, frame in table.batches(part):
            total += len(frame)
            if row_split is not None:
                frame = frame[row_split.masks(row_split.draws(block, start, len(frame)))["test"]]
            seen += len(frame)
            kept.append(frame.assign(_order=np.arange(seen - len(frame), seen)))
            kept_keys = np.concatenate([kept_keys, keys.random(len(frame))])
            if len(kept_keys) > 2 * size:  # keep the smallest keys: a uniform sample
                best = np.argsort(kept_keys, kind="stable")[:size]
                kept, kept_keys = [pd.concat(kept, ignore_index=True).iloc[best]], kept_keys[best]
    if not kept:
        raise DataError(f"{table.source} has no rows to explain.")
    best = np.argsort(kept_keys, kind="stable")[:size]
    sample = pd.concat(kept, ignore_index=True).iloc[best].sort_values("_order")
    return sample.drop(columns="_order").reset_index(drop=True), seen, total


def _checked_rows(X, y, rows):
    if len(X) < 2:
        raise DataError(f"Explanations need at least 2 rows; {rows['chosen']} leave {len(X)}.")
    rows["used"] = len(X)
    return X, y, rows


def _add_ranking(result, ranking, out_dir, title=None):
    result.rankings[ranking.method] = ranking
    path = os.path.join(out_dir, PLOT_FILES[ranking.method])
    result.paths[ranking.method] = explanations.save_ranking_plot(ranking, path, title=title or
                                                                  TITLES.get(ranking.method))
    result.details["methods"][ranking.method] = ranking.to_dict()


def _add_shap(result, model, X, out_dir, random_state):
    rows = X
    if len(rows) > SHAP_ROWS:
        rows = X.iloc[np.sort(np.random.default_rng(random_state).choice(len(X), SHAP_ROWS, replace=False))]
    try:
        values = explanations.shap_values(model, rows, background=X, random_state=random_state)
        if values.explainer == "permutation" and len(rows) > PERMUTATION_EXPLAINER_ROWS:
            values = explanations.shap_values(model, rows.iloc[:PERMUTATION_EXPLAINER_ROWS], background=X,
                                              random_state=random_state)
    except ImportError as error:
        result.skipped["shap"] = str(error)
        return
    ranking = values.ranking()
    result.rankings["shap"] = ranking
    result.paths["shap"] = explanations.save_shap_summary(values, os.path.join(out_dir, PLOT_FILES["shap"]))
    result.details["methods"]["shap"] = {**ranking.to_dict(), "explainer": values.explainer,
                                         "output": values.output, "rows": len(values.values)}


# Generative runs and image classifiers ----------------------------------------------------------

def _explain_generative(run_dir, source, methods, out_dir, classifier, allow_unsafe, random_state):
    from keras_bigml.generative.base import LatentGenerativeModel, TranslationModel
    from keras_bigml.runs import load_keras_file, load_run_model

    wrong = [m for m in methods or () if m not in GENERATIVE_METHODS]
    if wrong:
        raise ConfigError(f"{run_dir} holds a Keras model: explain it with {', '.join(GENERATIVE_METHODS)}, "
                          f"not {', '.join(wrong)}.")
    model = load_run_model(run_dir, allow_unsafe=allow_unsafe)
    if isinstance(classifier, (str, os.PathLike)):
        classifier = load_keras_file(classifier, allow_unsafe=allow_unsafe, what="classifier")
    latent, translation = isinstance(model, LatentGenerativeModel), isinstance(model, TranslationModel)
    if not latent and not translation:
        classifier = model  # the run is itself an image classifier
    result = ExplainResult("generative")
    result.details = {"kind": "generative", "run": run_dir, "model": type(model).__name__, "methods": {}}
    wanted = methods or [m for m, applies in (("traversal", latent), ("gradcam", classifier is not None))
                         if applies]
    if "traversal" in wanted:
        if not latent:
            raise ConfigError(f"{run_dir} holds a {type(model).__name__}, which has no latent space to "
                              "traverse.")
        _add_traversal(result, model, source, out_dir, random_state)
    if "gradcam" in wanted:
        if classifier is None:
            raise ConfigError("Grad-CAM of a generative run needs an image classifier: pass classifier "
                              "(--classifier FILE.keras).")
        _add_grad_cam(result, model, classifier, source, latent, translation, out_dir, random_state)
    if methods is None and classifier is None:
        result.skipped["gradcam"] = "needs an image classifier (classifier=, --classifier FILE.keras)"
    return result


def _add_traversal(result, model, source, out_dir, random_state):
    from keras_bigml.plotting import save_image_grid

    count = min(TRAVERSAL_DIMENSIONS, model.latent_dim)
    if hasattr(model, "encode") and source is not None:  # a VAE: order by what the data uses
        conditional = bool(model.num_classes)
        images, labels = _images(source, model.image_shape, 1000, random_state, labels=conditional)
        dimensions, kl = explanations.active_dimensions(model, images, count, labels)
        details = {"order": "by mean KL divergence on the data (nats)", "kl": [float(v) for v in kl]}
    else:
        dimensions = list(range(count))
        details = {"order": "the first dimensions"}
    images, codes = explanations.latent_traversal(model, dimensions, seed=random_state)
    path = os.path.join(out_dir, PLOT_FILES["traversal"])
    result.paths["traversal"] = save_image_grid(images.reshape(-1, *images.shape[2:]), path,
                                                ncols=images.shape[1])
    result.details["methods"]["traversal"] = {
        "dimensions": dimensions, "values": [float(v) for v in codes[0, :, dimensions[0]]],
        "label": 0 if model.num_classes else None, **details,
        "rows": "one latent dimension per row, swept left to right; the others fixed (a seeded prior draw)",
    }


def _add_grad_cam(result, model, classifier, source, latent, translation, out_dir, random_state):
    if latent:
        labels = np.arange(GRAD_CAM_IMAGES) % model.num_classes if model.num_classes else None
        images = model.generate(z=np.random.default_rng(random_state).standard_normal(
            (GRAD_CAM_IMAGES, model.latent_dim)).astype(np.float32), labels=labels)
        shown = "generated images"
    else:
        if source is None:
            raise ConfigError("Grad-CAM of a classifier or a translation run needs images: pass source "
                              "(--data SOURCE).")
        shape = model.image_shape_a if translation else tuple(classifier.inputs[0].shape[1:])
        images, _ = _images(source, shape, GRAD_CAM_IMAGES, random_state)
        if translation:
            images = model.translate(images, "a2b")
        shown = "translations a2b of the data" if translation else "images of the data"
    heatmaps = explanations.grad_cam(classifier, images)
    scores = np.asarray(classifier.predict(images, verbose=0))
    path = os.path.join(out_dir, PLOT_FILES["gradcam"])
    result.paths["gradcam"] = explanations.save_grad_cam(images, heatmaps, path)
    result.details["methods"]["gradcam"] = {
        "images": shown, "classifier": classifier.name,
        "predicted": [int(c) for c in np.argmax(scores, axis=-1)],
        "layout": "each image, then its heat map for the predicted class",
    }


def _images(source, image_shape, count, seed, labels=False):
    """``count`` images of ``source`` at ``image_shape`` (with their labels, or None)."""
    from keras_bigml.data import load_images

    height, width, channels = image_shape
    batch = next(iter(load_images(source, image_size=(height, width), channels=channels, labels=labels,
                                  batch_size=count, seed=seed)))
    images, labels = batch if labels else (batch, None)
    return images.numpy(), None if labels is None else labels.numpy()
