"""The out-of-core engine: one machine, a table larger than its memory.

Trees train with XGBoost's external memory: an `xgboost.DataIter` reads the
table batch by batch (Parquet row groups, CSV chunks), joined into pages of
`PAGE_BYTES`, into an ``ExtMemQuantileDMatrix``, which keeps quantized pages in
cache files on disk and reads them back per boosting round. Linear models
(logistic and linear regression, linear SVM) train with scikit-learn's SGD
``partial_fit`` over the same batches, after a streaming pass that computes the
imputation and scaling statistics. Memory stays bounded by a page (plus XGBoost's
few numbers per row for gradients and predictions), not by the table.
"""

import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

import numpy as np
import xgboost
from tqdm.auto import tqdm

from keras_bigml.classical.scaled import (
    ForestGradients,
    Preprocessing,
    TableModel,
    TableStats,
    encode_labels,
    release_memory,
)
from keras_bigml.data.tables import BATCH_ROWS
from keras_bigml.evaluation.classical import PartitionReport

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.linear_model import SGDClassifier, SGDRegressor

# XGBoost's external memory keeps, per page, row partitions that grow with the tree's nodes: one tree
# of depth 10 on 3M rows held 343 MB in 64 pages of 47k rows, 203 in 12, 145 in 4. Batches are joined
# into pages of PAGE_BYTES (their features; the page and its pieces are in memory while it is added):
# on the 4M-row benchmark table (3M training rows, 20 features) the random forest's largest anonymous
# memory fell from 828 MB (one page a 65,536-row batch, 4 MB) to 669 MB (8 pages of 32 MB), its time
# from 152 to 104 s; the model is the same.
PAGE_BYTES = 32 << 20


class OutOfCoreEngine:
    """Passes over a `PartitionedTable` in this process, one batch in memory at a time.

    Parameters
    ----------
    table : keras_bigml.data.tables.PartitionedTable
    target : str
    split : keras_bigml.data.tables.RowSplit
    batch_rows : int
        Rows per batch (a Parquet row group larger than this is read in pieces).
    nthread : int, optional
        XGBoost threads (default: all cores).
    cache_dir : str, optional
        Where XGBoost writes its external-memory pages (default: the temporary folder).
    progress : bool
        One progress bar per pass.
    page_bytes : int
        Bytes of float32 features in each page of XGBoost's external memory: batches are joined
        up to it (`PAGE_BYTES`).
    """

    name = "out_of_core"

    def __init__(self, table, target, split, *, batch_rows=BATCH_ROWS, nthread=None, cache_dir=None,
                 progress=True, page_bytes=None):
        self.table = table
        self.target = target
        self.split = split
        self.batch_rows = batch_rows
        self.page_bytes = page_bytes or PAGE_BYTES
        self.nthread = nthread or available_cores()
        self.cache_dir = cache_dir
        self.progress = progress
        self.largest_batch = 0

    def close(self) -> None:
        pass

    def info(self) -> dict:
        return {"partitions": len(self.table.parts)}

    def _batches(self, columns, share=None, desc=None):
        """Yield ``(frame, masks)`` for every batch; with ``share``, only that share's rows."""
        with tqdm(total=self.table.rows, unit=" rows", desc=desc, disable=not (self.progress and desc),
                  leave=False) as bar:
            for part in self.table.parts:
                for block, start, frame in self.table.batches(part, columns, self.batch_rows):
                    self.largest_batch = max(self.largest_batch, len(frame))
                    masks = self.split.masks(self.split.draws(block, start, len(frame)))
                    bar.update(len(frame))
                    if share is None:
                        yield part, frame, masks
                    elif masks[share].any():
                        yield part, frame[masks[share]], masks
                    del frame

    def stats(self) -> TableStats:
        stats = TableStats(self.table.meta, self.target)
        for part, frame, masks in self._batches(None, desc="statistics"):
            stats.update(frame, masks["train"], part.path)
        stats.parts = len(self.table.parts)
        return stats

    def fit_trees(self, candidates: list[tuple[dict, int, ForestGradients | None]], prep: Preprocessing,
                  classes: list | None, *, validation: bool = False, early_stopping_rounds: int | None = None,
                  ) -> tuple[list[xgboost.Booster], list[float]]:
        """Train one booster per ``(params, rounds, objective)`` candidate on one external-memory matrix.

        ``objective`` is None for XGBoost's own, or a forest's `ForestGradients`.
        """
        cache = tempfile.mkdtemp(prefix="keras_bigml-xgboost-", dir=self.cache_dir)
        train = evals = None
        try:
            columns = prep.columns + [self.target]
            max_bin = candidates[0][0].get("max_bin", 256)
            train = xgboost.ExtMemQuantileDMatrix(
                _Batches(self, columns, "train", prep, classes, os.path.join(cache, "train")),
                max_bin=max_bin, nthread=self.nthread,
            )
            evals = []
            if validation:
                evals = [(xgboost.ExtMemQuantileDMatrix(
                    _Batches(self, columns, "validation", prep, classes, os.path.join(cache, "validation")),
                    max_bin=max_bin, nthread=self.nthread, ref=train,
                ), "validation")]
            boosters, seconds = [], []
            for params, rounds, objective in candidates:
                start = time.perf_counter()
                with tqdm(total=rounds, unit=" rounds", desc="xgboost (external memory)", leave=False,
                          disable=not self.progress) as bar:
                    booster = xgboost.train(
                        {**params, "nthread": self.nthread}, train, rounds, evals=evals, obj=objective,
                        early_stopping_rounds=early_stopping_rounds if evals else None,
                        verbose_eval=False, callbacks=[_RoundBar(bar)],
                    )
                # Release what training keeps (row partitions, histograms, the prediction cache), so
                # that candidates do not add up, and hand it back to the OS for the scoring pass.
                boosters.append(_best_rounds(booster.reset()))
                release_memory()
                seconds.append(time.perf_counter() - start)
            return boosters, seconds
        finally:
            del train, evals  # XGBoost removes its page files when the matrices go
            release_memory()
            shutil.rmtree(cache, ignore_errors=True)

    def fit_linear(self, learners: "list[SGDClassifier | SGDRegressor]", prep: Preprocessing,
                   classes: list | None, epochs: int, seed: int = 0,
                   ) -> "tuple[list[SGDClassifier | SGDRegressor], list[float]]":
        """Train each SGD learner by ``partial_fit`` over the training batches, all in the same passes."""
        columns = prep.columns + [self.target]
        extra = {} if classes is None else {"classes": np.arange(len(classes))}
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        for epoch in range(epochs):
            for _, frame, _ in self._batches(columns, "train", desc=f"SGD epoch {epoch + 1}/{epochs}"):
                X = prep.transform(frame)
                y = _labels(frame[self.target], classes)
                order = rng.permutation(len(X))  # rows of a file are often sorted: shuffle each batch
                for learner in learners:
                    learner.partial_fit(X[order], y[order], **extra)
        seconds = (time.perf_counter() - start) / max(len(learners), 1)
        return learners, [seconds] * len(learners)

    def score(self, models: list[TableModel], shares: list[str],
              probabilities: bool) -> list[dict[str, PartitionReport]]:
        """A `PartitionReport` per model and share, from one pass over the rows."""
        task = models[0].task
        classes = None if models[0].classes_ is None else list(models[0].classes_)
        reports = [{share: PartitionReport(task, classes, probabilities=probabilities) for share in shares}
                   for _ in models]
        columns = models[0].columns + [self.target]
        for _, frame, masks in self._batches(columns, desc="scoring"):
            wanted = np.zeros(len(frame), dtype=bool)
            for share in shares:
                wanted |= masks[share]
            if not wanted.any():
                continue
            score_batch(models, frame[wanted], {s: masks[s][wanted] for s in shares}, self.target, reports)
        return reports


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def score_batch(models: list[TableModel], frame: "pd.DataFrame", masks: dict[str, np.ndarray], target: str,
                reports: list[dict[str, PartitionReport]]) -> None:
    """Add one batch's rows to each model's reports (shared by the engines)."""
    model = models[0]
    X = model.transform(frame)
    y = _labels(frame[target], None if model.classes_ is None else list(model.classes_))
    for model, model_reports in zip(models, reports, strict=True):
        if model.task == "classification":
            scores = model.scores(X)
            predicted = np.argmax(scores, axis=1)
        else:
            scores, predicted = None, model.predict_codes(X)
        for share, report in model_reports.items():
            mask = masks[share]
            report.update(y[mask], predicted[mask], None if scores is None else scores[mask])


def _labels(y, classes):
    if classes is None:
        return y.to_numpy(dtype=np.float64)
    return encode_labels(y, classes)


class _Batches(xgboost.DataIter):
    """The batches of one share of the rows, as XGBoost's external memory reads them (several passes)."""

    def __init__(self, engine, columns, share, prep, classes, cache_prefix):
        self._engine, self._columns, self._share = engine, columns, share
        self._prep, self._classes = prep, classes
        self._batches = None
        super().__init__(cache_prefix=cache_prefix, release_data=True)

    def reset(self):
        self._batches = None

    def next(self, input_data):
        if self._batches is None:
            self._batches = self._engine._batches(self._columns, self._share)
        data, labels, size = [], [], 0
        while size < self._engine.page_bytes:  # one XGBoost page: batches joined up to page_bytes
            batch = next(self._batches, None)
            if batch is None:
                break
            _, frame, _ = batch
            data.append(self._prep.transform(frame))
            labels.append(_labels(frame[self._engine.target], self._classes).astype(np.float32))
            size += data[-1].nbytes
        if not data:
            return False
        input_data(data=_joined(data), label=_joined(labels))
        return True


def _joined(arrays):
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _best_rounds(booster):
    """The booster cut to its best round when early stopping chose one."""
    best = booster.attr("best_iteration")
    if best is None or int(best) + 1 >= booster.num_boosted_rounds():
        return booster
    return booster[: int(best) + 1]


class _RoundBar(xgboost.callback.TrainingCallback):
    """Advances a progress bar after each boosting round."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def after_iteration(self, model, epoch, evals_log):
        self.bar.update(1)
        return False
