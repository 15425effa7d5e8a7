"""Score a table of any size with a trained classical run, part by part, into Parquet parts.

Each input part (a file, or a group of row groups of one large Parquet file)
becomes one output part, ``part-00000.parquet`` and so on in the order of the
input, holding the ``keep`` columns passed through (IDs, say), ``prediction``,
and for classifiers with probabilities one ``probability_<class>`` column per
class. Runs trained by any engine score with any engine: the saved model is a
scikit-learn pipeline (``model.skops``, memory engine) or a keras_bigml table
model (``model.json`` with XGBoost's own ``model.ubj``).
"""

import glob
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from keras_bigml.classical.scaled import peak_memory_mb
from keras_bigml.data.tables import BATCH_ROWS, Part, PartitionedTable, open_table
from keras_bigml.errors import ConfigError, DataError, ModelFileError, RunError
from keras_bigml.files import atomic_path

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

PREDICT_ENGINES = ("memory", "out_of_core", "dask")


@dataclass
class PredictResult:
    """What `predict` wrote: ``(input part, output part)`` pairs, rows, and the output's columns."""

    out_dir: str
    parts: list = field(default_factory=list)
    rows: int = 0
    columns: list = field(default_factory=list)
    seconds: float = 0.0
    client_peak_mb: float | None = None


def predict(run_dir: str | os.PathLike, source: str | os.PathLike, out_dir: str | os.PathLike, *,
            engine: str = "memory", dask_address: str | None = None, keep: Sequence[str] = (),
            batch_rows: int = BATCH_ROWS, n_workers: int | None = None, overwrite: bool = False,
            progress: bool = True, trusted: Sequence[str] | None = None) -> PredictResult:
    """Write predictions for every row of ``source`` to Parquet parts in ``out_dir``.

    Parameters
    ----------
    run_dir : str or path
        A run directory written by `train_classical` (or its ``model.json`` /
        ``model.skops``).
    source : str or path
        A Parquet or CSV file, a directory of parts, or a glob (see `open_table`);
        it needs the model's feature columns (the target is not needed).
    out_dir : str or path
        Where the parts go. Parts already there are replaced only with ``overwrite``.
    engine : {"memory", "out_of_core", "dask"}
        ``"memory"`` reads one whole input part at a time, ``"out_of_core"`` one
        batch of ``batch_rows`` rows (memory bounded by the batch, not the part),
        ``"dask"`` scores the parts on the workers, which write the output parts
        themselves (``out_dir`` must be reachable from every worker).
    dask_address : str, optional
        A running scheduler; without it a local cluster starts.
    keep : list of str
        Columns copied to the output beside the predictions (IDs, keys).
    trusted : list of str, optional
        Extra type names to trust when loading a ``model.skops`` (see
        `keras_bigml.classical.persist.load_model`).

    Returns
    -------
    PredictResult

    Examples
    --------
    >>> import os, tempfile
    >>> from keras_bigml.data.tables import load_table
    >>> from keras_bigml.workflows.classical import train_classical
    >>> folder = tempfile.mkdtemp()
    >>> X, y = load_table("iris")
    >>> X.assign(id=range(150)).to_parquet(os.path.join(folder, "flowers.parquet"))
    >>> run = train_classical("decision_tree", "iris", os.path.join(folder, "run")).paths["model"]
    >>> result = predict(os.path.dirname(run), os.path.join(folder, "flowers.parquet"),
    ...                  os.path.join(folder, "out"), keep=["id"], progress=False)
    >>> result.rows, result.columns[:2]
    (150, ['id', 'prediction'])
    """
    if engine not in PREDICT_ENGINES:
        raise ConfigError(f"Unknown engine {engine!r}: use one of {', '.join(PREDICT_ENGINES)}.")
    if isinstance(keep, str):
        keep = [keep]
    keep = list(keep or [])
    start = time.perf_counter()
    model, features, classes = load_run_model(run_dir, trusted)
    table = open_table(source)
    missing = [c for c in list(features) + keep if c not in table.columns]
    if missing:
        raise DataError(
            f"{table.source} lacks the columns {', '.join(missing)} (the model's features and the kept "
            f"ones); its columns are {', '.join(table.columns[:20])}."
        )
    out_dir = os.fspath(out_dir)
    existing = sorted(glob.glob(os.path.join(out_dir, "part-*.parquet")))
    if existing and not overwrite:
        raise RunError(f"{out_dir} already holds predictions ({os.path.basename(existing[0])} ...); "
                       "choose another folder or pass overwrite=True (--overwrite).")
    os.makedirs(out_dir, exist_ok=True)
    outputs = [os.path.join(out_dir, f"part-{part.index:05d}.parquet") for part in table.parts]
    columns = list(dict.fromkeys(list(features) + keep))
    job = (model, columns, keep, classes)
    if engine == "dask":
        rows = _predict_on_dask(table, outputs, job, dask_address, n_workers, progress)
    else:
        rows = 0
        with tqdm(total=table.rows, unit=" rows", desc="predict", disable=not progress) as bar:
            rows_per_batch = None if engine == "memory" else batch_rows
            for part, output in zip(table.parts, outputs, strict=True):
                rows += predict_part(part, table, output, job, rows_per_batch, bar)
    for stale in sorted(set(existing) - set(outputs)):
        os.remove(stale)
    names = keep + ["prediction"]
    if _has_probabilities(model, classes):
        names += _probability_names(classes)
    pairs = [(part.path, output) for part, output in zip(table.parts, outputs, strict=True)]
    return PredictResult(out_dir, pairs, rows, names, time.perf_counter() - start, peak_memory_mb())


def load_run_model(run_dir: str | os.PathLike,
                   trusted: Sequence[str] | None = None) -> "tuple[BaseEstimator, list[str], list | None]":
    """``(model, feature columns, classes or None)`` of a run directory or model file."""
    from keras_bigml.classical.scaled import load_table_model

    path = os.fspath(run_dir)
    if os.path.isdir(path):
        candidates = [os.path.join(path, name) for name in ("model.json", "model.skops")]
        found = [candidate for candidate in candidates if os.path.isfile(candidate)]
        if not found:
            raise ModelFileError(
                f"{path} holds no model.json or model.skops: is it a classical run directory?"
            )
        path = found[0]
    if path.lower().endswith(".json"):
        model = load_table_model(path)
        return model, model.columns, None if model.classes_ is None else list(model.classes_)
    from keras_bigml.classical.persist import load_model

    model = load_model(path, trusted=trusted)
    features = getattr(model, "feature_names_in_", None)
    if features is None:
        raise ModelFileError(f"{path} holds a model that was not trained on named columns; "
                             "predict needs one trained on a table.")
    classes = getattr(model, "classes_", None)
    return model, [str(f) for f in features], None if classes is None else list(classes)


def predict_part(part: Part, table: PartitionedTable, output: str | os.PathLike, job: tuple,
                 batch_rows: int | None = None, bar: tqdm | None = None) -> int:
    """Score one input part into one output Parquet file (atomically); return its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    model, columns, keep, classes = job
    batches = ((frame for _, _, frame in table.batches(part, columns, batch_rows)) if batch_rows
               else iter([table.read(part, columns)]))
    rows, writer = 0, None
    with atomic_path(output, suffix=".parquet") as tmp:
        try:
            for frame in batches:
                scored = score_frame(model, frame, keep, classes, part.path)
                batch = pa.Table.from_pandas(scored, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, batch.schema)
                writer.write_table(batch)
                rows += len(frame)
                if bar is not None:
                    bar.update(len(frame))
            if writer is None:  # an empty part still gets its (empty) output part
                empty = score_frame(model, table.meta[columns], keep, classes, part.path)
                pq.write_table(pa.Table.from_pandas(empty, preserve_index=False), tmp)
        finally:
            if writer is not None:
                writer.close()
    return rows


def score_frame(model: "BaseEstimator", frame: pd.DataFrame, keep: Sequence[str], classes: Sequence | None,
                where: str = "the table") -> pd.DataFrame:
    """``keep`` columns, ``prediction`` and ``probability_<class>`` columns for one batch."""
    out = frame[keep].reset_index(drop=True) if keep else pd.DataFrame(index=range(len(frame)))
    features = frame.drop(columns=[c for c in keep if c not in _features(model)])
    if len(frame) == 0:
        out["prediction"] = pd.Series(dtype=_prediction_dtype(classes))
        if _has_probabilities(model, classes):
            for name in _probability_names(classes):
                out[name] = pd.Series(dtype=np.float64)
        return out
    try:
        if hasattr(model, "scores") and classes is not None:  # a TableModel: transform once
            matrix = model.transform(features, where)
            scores = model.scores(matrix)
            out["prediction"] = np.asarray(classes, dtype=object)[np.argmax(scores, axis=1)]
            probabilities = scores if _has_probabilities(model, classes) else None
        else:
            out["prediction"] = model.predict(features)
            probabilities = model.predict_proba(features) if _has_probabilities(model, classes) else None
    except ValueError as error:
        raise DataError(f"Cannot score {where} ({' '.join(str(error).split())[:200]}).") from None
    if probabilities is not None:
        for name, values in zip(_probability_names(classes), np.asarray(probabilities).T, strict=True):
            out[name] = values
    out["prediction"] = _plain_column(out["prediction"])
    return out


def _features(model):
    if hasattr(model, "columns"):
        return model.columns
    return [str(f) for f in getattr(model, "feature_names_in_", [])]


def _has_probabilities(model, classes):
    return classes is not None and hasattr(model, "predict_proba")


def _probability_names(classes):
    return [f"probability_{c}" for c in classes]


def _prediction_dtype(classes):
    if classes is None:
        return np.float64
    values = pd.Series(classes)
    return values.dtype


def _plain_column(values):
    """Labels as their own type (not Python objects), so Parquet stores ints as ints."""
    return pd.Series(values.tolist(), index=values.index) if values.dtype == object else values


def _predict_on_dask(table, outputs, job, address, n_workers, progress):
    from distributed import as_completed

    from keras_bigml.classical.dask_engine import DaskEngine

    engine = DaskEngine(table, None, None, address=address, n_workers=n_workers, progress=progress)
    try:
        model = engine.client.scatter(job, broadcast=True)
        futures = engine.client.map(predict_part, table.parts, [table] * len(outputs), outputs,
                                    [model] * len(outputs), pure=False)
        rows = 0
        with tqdm(total=len(futures), unit=" parts", desc="predict (dask)", disable=not progress) as bar:
            try:
                for future in as_completed(futures):
                    rows += future.result()
                    bar.update(1)
            except Exception as error:
                raise engine.fault(error, "scoring") from None
        return rows
    finally:
        engine.close()
