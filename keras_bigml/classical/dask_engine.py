"""The Dask engine: partitions stay on the workers of a Dask cluster, local or remote.

Each file (or group of Parquet row groups) is one partition, read on a worker by
``dask.dataframe.from_map`` so that features and labels keep the same
partitions. Trees train with ``xgboost.dask`` on a ``DaskQuantileDMatrix`` (the
functional API that ``DaskXGBClassifier`` and ``DaskXGBRFClassifier`` wrap;
the forest is XGBoost's random forest). Linear models train with dask-ml's
``Incremental`` wrapper around scikit-learn's SGD learners: it hands the
learner from partition to partition, so only one partition is needed at a time
and the model is the same as the out-of-core engine's (chosen over dask-ml's
``LogisticRegression`` and XGBoost's ``gblinear``, which both hold the whole
table in the workers' memory; see benchmarks/tables_at_scale.py).
Statistics and reports are computed per partition on the workers and merged
there: the client receives only counts, models and small samples.

Faults end in `keras_bigml.errors.EngineError` with one line: an unreachable
scheduler, a worker lost during training (killed, or out of memory).
"""

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from keras_bigml.classical.out_of_core import _best_rounds, _labels, score_batch
from keras_bigml.classical.scaled import (
    ForestGradients,
    Preprocessing,
    TableModel,
    TableStats,
    peak_memory_mb,
    release_memory,
)
from keras_bigml.errors import EngineError
from keras_bigml.evaluation.classical import PartitionReport

if TYPE_CHECKING:
    import xgboost
    from sklearn.linear_model import SGDClassifier, SGDRegressor

MERGE_FAN_IN = 16
WATCH_SECONDS = 1.0
# Seconds one XGBoost collective operation (an allreduce of a round's histograms) may wait for
# the other workers before it fails; without it a lost peer leaves the others waiting.
COLLECTIVE_TIMEOUT = 600
# The nanny restarts a worker above this share of its memory limit; pausing and
# spilling stay off: a paused worker in xgboost.dask never resumes (the job hangs).
# pyarrow reads with the system allocator (glibc, whose freed memory the nanny's
# MALLOC_TRIM_THRESHOLD_ returns): its default mimalloc pool kept 108 MB per worker after
# the statistics pass over the 4M-row benchmark table (289 MB anonymous memory against 181).
MEMORY_CONFIG = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": 0.95,
    "distributed.nanny.pre-spawn-environ.ARROW_DEFAULT_MEMORY_POOL": "system",
}


def machine_memory() -> int:
    """Bytes this process may use: the machine's memory, or its memory cgroup's limit when lower.

    Reads the cgroup this process is in (v1 or v2), which Dask's own estimate
    (the root cgroup's files) misses when a command runs in a child cgroup.
    """
    import distributed.system

    limit = distributed.system.MEMORY_LIMIT
    for candidate in memory_cgroup_files("memory.limit_in_bytes", "memory.max"):
        try:
            with open(candidate) as file:
                value = file.read().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < limit:
            limit = int(value)
    return limit


class DaskEngine:
    """Passes over a `PartitionedTable` on a Dask cluster: one partition per part, read on the workers.

    Parameters
    ----------
    table, target, split
        As for `OutOfCoreEngine`.
    address : str, optional
        A running scheduler (``"tcp://host:8786"``). Without it a ``LocalCluster`` of
        ``n_workers`` processes (one thread each) starts, with memory limits that fit
        this machine or this process's memory cgroup (`worker_memory_limit`), and stops
        when the engine closes.
    n_workers : int, optional
        Size of the local cluster (default: the number of cores, at most 4).
    progress : bool
    connect_timeout : str
        How long to try reaching the scheduler.
    """

    name = "dask"

    def __init__(self, table, target, split, *, address=None, n_workers=None, progress=True,
                 connect_timeout="20s"):
        import dask
        from distributed import Client, LocalCluster

        self.table = table
        self.target = target
        self.split = split
        self.progress = progress
        self.cluster = None
        self._oom_kills = oom_kills()
        if address is None:
            n_workers = n_workers or max(1, min(4, os.cpu_count() or 1))
            with dask.config.set(MEMORY_CONFIG):
                self.cluster = LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    memory_limit=worker_memory_limit(n_workers), silence_logs=logging.CRITICAL,
                )
            address = self.cluster
        try:
            self.client = Client(address, timeout=connect_timeout)
        except OSError as error:
            if self.cluster is not None:
                self.cluster.close()
            raise EngineError(
                f"Cannot reach the Dask scheduler at {address} ({_short(error)}); check the address and that "
                "the scheduler runs, or leave the address out for a local cluster."
            ) from None
        # Libraries that look up "the" client (xgboost.dask, dask-ml) must find this one, also
        # inside a caller's `with Client(...)`: another client's blocking calls on this client's
        # event loop would deadlock.
        self._current = self.client.as_current()
        self._current.__enter__()

    def close(self) -> None:
        self._current.__exit__(None, None, None)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def info(self) -> dict:
        peaks = self.client.run(_worker_peak_mb)
        return {"partitions": len(self.table.parts), "workers": len(peaks),
                "worker_peak_mb": {address: round(mb, 1) for address, mb in sorted(peaks.items())}}

    def _map(self, function, desc, *args, merge=None):
        """Run ``function(part, *args)`` for every part on the workers.

        With ``merge``, partial results are merged on the workers (a tree of
        ``merge`` tasks) and only the final one comes back; without, the list of
        (small) results.
        """
        parts = self.table.parts
        with tqdm(total=len(parts), unit=" parts", desc=desc, leave=False, disable=not self.progress) as bar:
            futures = self.client.map(function, parts, *[[arg] * len(parts) for arg in args], pure=False)
            for future in futures:
                future.add_done_callback(lambda _: bar.update(1))
            try:
                if merge is None:
                    return self.client.gather(futures)
                while len(futures) > 1:
                    futures = [self.client.submit(merge, *futures[i: i + MERGE_FAN_IN], pure=False)
                               for i in range(0, len(futures), MERGE_FAN_IN)]
                return futures[0].result()
            except Exception as error:
                raise self.fault(error, desc) from None

    def stats(self) -> TableStats:
        stats = self._map(_part_stats, "statistics", self.table, self.target, self.split, merge=_merge_stats)
        stats.parts = len(self.table.parts)
        self.part_train_rows = stats.part_train_rows  # the blocks' lengths for dask-ml
        return stats

    def _share_frame(self, share, prep, classes, parts=None):
        import dask.dataframe as dd

        names = [f"f{i}" for i in range(len(prep.feature_names_out))]
        meta = pd.DataFrame({name: np.zeros(0, np.float32) for name in names + ["__label__"]})
        frame = dd.from_map(_part_rows, parts or self.table.parts, table=self.table, target=self.target,
                            split=self.split, share=share, prep=prep, classes=classes, names=names,
                            meta=meta, enforce_metadata=False, label=f"read-{share}")
        return frame[names], frame["__label__"]

    def fit_trees(self, candidates: list[tuple[dict, int, ForestGradients | None]], prep: Preprocessing,
                  classes: list | None, *, validation: bool = False, early_stopping_rounds: int | None = None,
                  ) -> "tuple[list[xgboost.Booster], list[float]]":
        """Train one booster per ``(params, rounds, objective)`` candidate with ``xgboost.dask``.

        ``objective`` is None for XGBoost's own, or a forest's `ForestGradients` (it runs on the workers).
        After each training the workers hand the memory it freed back to the OS (`release_memory`).
        """
        import xgboost.dask

        X, y = self._share_frame("train", prep, classes)
        try:
            max_bin = candidates[0][0].get("max_bin", 256)
            train = xgboost.dask.DaskQuantileDMatrix(self.client, X, y, max_bin=max_bin)
            evals = []
            if validation:
                Xv, yv = self._share_frame("validation", prep, classes)
                evals = [(xgboost.dask.DaskQuantileDMatrix(self.client, Xv, yv, max_bin=max_bin, ref=train),
                          "validation")]
            boosters, seconds = [], []
            for params, rounds, objective in candidates:
                start = time.perf_counter()
                with tqdm(total=1, desc="xgboost.dask", leave=False, disable=not self.progress) as bar:
                    output = self._watched(
                        xgboost.dask.train, self.client, params, train, rounds, evals=evals, obj=objective,
                        early_stopping_rounds=early_stopping_rounds if evals else None, verbose_eval=False,
                        coll_cfg=xgboost.collective.Config(timeout=COLLECTIVE_TIMEOUT),
                    )
                    bar.update(1)
                booster = _best_rounds(output["booster"])
                booster.feature_names = None  # scored later from plain arrays
                boosters.append(booster)
                del output
                self.client.run(release_memory)
                seconds.append(time.perf_counter() - start)
            return boosters, seconds
        except EngineError:
            raise
        except Exception as error:
            raise self.fault(error, "training") from None

    def _watched(self, function, *args, **kwargs):
        """Run ``function`` while watching the workers: xgboost.dask pins its training tasks to
        workers, so when one is lost the job would wait for it forever (a restarted worker has
        another address). A lost worker ends the call with `EngineError` instead."""
        workers = self._workers()
        outcome = {}

        def run():
            try:
                with self.client.as_current():  # a new thread starts without the caller's context
                    outcome["result"] = function(*args, **kwargs)
            except BaseException as error:  # handed to the caller's thread
                outcome["error"] = error

        def check_workers():
            try:
                now = self._workers()
            except Exception:  # the scheduler itself is gone
                now = set()
            if not workers <= now:
                lost = ", ".join(sorted(workers - now))
                raise EngineError(describe_lost_worker("training", f"worker {lost} left", self._nanny_logs(),
                                                       self._killed_for_memory()))

        thread = threading.Thread(target=run, name="keras_bigml-dask-train", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(WATCH_SECONDS)
            if thread.is_alive():
                check_workers()
        if "error" in outcome:
            # The survivors' collective calls fail as soon as a peer goes: say which went.
            time.sleep(2 * WATCH_SECONDS)  # the scheduler notices a lost worker within a heartbeat
            check_workers()
            raise outcome["error"]
        return outcome["result"]

    def _workers(self):
        """The scheduler's workers, asked afresh. Not `Client.scheduler_info`: it returns the client's cached
        identity, which a periodic refresh of totals only (no workers) overwrites every few seconds; when
        one landed between its update and its return, the watch took every worker for lost."""
        return set(self.client.sync(self.client.scheduler.identity, n_workers=-1)["workers"])

    def fit_linear(self, learners: "list[SGDClassifier | SGDRegressor]", prep: Preprocessing,
                   classes: list | None, epochs: int, seed: int = 0,
                   ) -> "tuple[list[SGDClassifier | SGDRegressor], list[float]]":
        from dask_ml.wrappers import Incremental

        counts = [self.part_train_rows[part.index] for part in self.table.parts]
        # Incremental hands each block to partial_fit, which refuses empty ones.
        parts = [part for part, count in zip(self.table.parts, counts, strict=True) if count]
        lengths = [count for count in counts if count]
        X, y = self._share_frame("train", prep, classes, parts)
        X = X.to_dask_array(lengths=lengths)
        y = y.to_dask_array(lengths=lengths)
        if classes is not None:
            y = y.astype(np.int32)
        extra = {} if classes is None else {"classes": np.arange(len(classes))}
        fitted, seconds = [], []
        try:
            for learner in learners:
                start = time.perf_counter()
                wrapper = Incremental(learner, shuffle_blocks=True, random_state=seed)
                for _ in tqdm(range(epochs), desc="dask-ml Incremental SGD", unit=" epochs", leave=False,
                              disable=not self.progress):
                    wrapper.partial_fit(X, y, **extra)
                fitted.append(wrapper.estimator_)
                seconds.append(time.perf_counter() - start)
        except Exception as error:
            raise self.fault(error, "training") from None
        return fitted, seconds

    def score(self, models: list[TableModel], shares: list[str],
              probabilities: bool) -> list[dict[str, PartitionReport]]:
        # A fresh key each time: with the default (the data's hash) scoring the same model again right
        # away reused the key that the first upload's release was deleting on the workers.
        models_future = self.client.scatter(models, broadcast=True, hash=False)
        return self._map(_part_reports, "scoring", self.table, self.target, self.split, models_future,
                         tuple(shares), probabilities, merge=_merge_reports)

    def fault(self, error: BaseException, what: str) -> BaseException:
        """Translate a cluster failure into one line; other errors (e.g. DataError) pass unchanged."""
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        from keras_bigml.errors import KerasBigMLError

        if isinstance(error, KerasBigMLError):
            return error
        text = _short(error)
        markers = ("allreduce", "allgather", "broadcast", "ring ", "poll error", "socket", "connection reset",
                   "worker")
        lost = isinstance(error, (KilledWorker, CommClosedError)) or any(m in text.lower() for m in markers)
        if not lost:
            return error
        return EngineError(describe_lost_worker(what, text, self._nanny_logs(), self._killed_for_memory()))

    def _killed_for_memory(self):
        """Whether the kernel killed a process of this memory cgroup for memory since the engine started
        (local clusters only: a remote cluster's workers are in other cgroups)."""
        if self.cluster is None or self._oom_kills is None:
            return False
        return (oom_kills() or 0) > self._oom_kills

    def _nanny_logs(self):
        try:
            logs = self.client.get_worker_logs(nanny=True)
        except Exception:  # the cluster may be gone too
            return ""
        return "\n".join(message for entries in logs.values() for _, message in entries)


def describe_lost_worker(what: str, error_text: str, nanny_logs: str = "",
                         out_of_memory: bool = False) -> str:
    """One line for a worker lost during ``what``, from the error, the nannies' logs, and whether
    the kernel killed a process for memory meanwhile (``out_of_memory``, see `oom_kills`).

    >>> describe_lost_worker("training", "Ring Allreduce failed",
    ...                      "Worker tcp://127.0.0.1:4 (pid=9) exceeded 95% memory budget. Restarting...")
    ... # doctest: +ELLIPSIS
    'A Dask worker ran out of memory during training (exceeded 95% memory budget); ...'
    """
    advice = ("the run is not finished: give the workers more memory, or use more workers or more, smaller "
              "partitions, then run the command again.")
    if "memory budget" in nanny_logs or "MemoryError" in error_text:
        return f"A Dask worker ran out of memory during {what} (exceeded 95% memory budget); {advice}"
    if out_of_memory:
        return (f"A Dask worker was killed by the kernel for lack of memory during {what} ({error_text}); "
                f"{advice}")
    killed = "killed by signal" in nanny_logs
    how = "was killed (by a signal: often the kernel's out-of-memory killer)" if killed else "was lost"
    return (
        f"A Dask worker {how} during {what} ({error_text}); the run is not finished: run the same command "
        "again, and if workers run out of memory give them more, or the table more partitions."
    )


def oom_kills() -> int | None:
    """Processes the kernel has killed for memory in this process's memory cgroup, or None if unknown."""
    for candidate in memory_cgroup_files("memory.oom_control", "memory.events"):
        try:
            with open(candidate) as file:
                for entry in file:
                    name, _, value = entry.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def memory_cgroup_files(v1_name: str, v2_name: str) -> list[str]:
    """Paths of this process's memory cgroup file: ``v1_name`` under cgroup v1's memory controller,
    ``v2_name`` under cgroup v2 (none when ``/proc/self/cgroup`` cannot be read)."""
    try:
        with open("/proc/self/cgroup") as file:
            lines = file.read().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            paths.append(f"/sys/fs/cgroup/memory{path}/{v1_name}")
        elif controllers == "":
            paths.append(f"/sys/fs/cgroup{path}/{v2_name}")
    return paths


def worker_memory_limit(n_workers: int) -> int:
    """Each local worker's memory limit: what this machine (or its memory cgroup) has.

    Not an equal share: a worker's resident memory counts the library pages it maps
    (about 150 MB with xgboost.dask), which the kernel shares and can drop, and the
    workers' loads differ from the client's. Measured on the 4M-row benchmark under a
    1.5 GiB cgroup: with shares of 768 MB the nanny restarted a worker at 730 MB, while
    without that the job finished with 710 MB per worker and 1341 MB for everything. So
    the nanny stops only a worker that alone nears the machine's memory; beyond that the
    kernel's out-of-memory killer stops one, and `describe_lost_worker` says so.
    """
    return max(machine_memory(), 256 << 20)


def _short(error):
    """The first lines of an error's message, on one line (XGBoost's carry a native stack trace)."""
    text = str(error).split("Stack trace:")[0]
    return (" ".join(text.split()) or type(error).__name__)[:200]


def _worker_peak_mb():
    return peak_memory_mb()


def _merge_stats(first, *others):
    for other in others:
        first.merge(other)
    return first


def _merge_reports(first, *others):
    """Merge lists (one per model) of ``{share: PartitionReport}``."""
    for other in others:
        for mine, theirs in zip(first, other, strict=True):
            for share, report in mine.items():
                report.merge(theirs[share])
    return first


def _part_stats(part, table, target, split):
    stats = TableStats(table.meta, target)
    for block, start, frame in table.batches(part):
        stats.update(frame, split.masks(split.draws(block, start, len(frame)))["train"], part.path)
    stats.part_train_rows[part.index] = stats.train_rows
    return stats


def _part_rows(part, table, target, split, share, prep, classes, names):
    """One partition's rows of ``share``, transformed: float32 features f0..fn and ``__label__``.

    Parquet parts are filled batch by batch into one array of the exact size (the split
    needs only the row groups' sizes): no concatenation, whose second copy of the partition
    is what pushes a worker over its memory at scale. CSV parts (sizes unknown) are joined.
    """
    batches = table.batches(part, prep.columns + [target])
    if part.rows is None:
        frames = [frame[split.masks(split.draws(block, start, len(frame)))[share]]
                  for block, start, frame in batches]
        frame = pd.concat(frames, ignore_index=True) if frames else table.meta
        values, labels = prep.transform(frame, part.path), _labels(frame[target], classes)
    else:
        size = sum(int(split.masks(split.draws(block, 0, block.rows))[share].sum()) for block in part.blocks)
        values = np.empty((size, len(names)), dtype=np.float32)
        labels = np.empty(size, dtype=np.float32)
        rows = 0
        for block, start, frame in batches:
            frame = frame[split.masks(split.draws(block, start, len(frame)))[share]]
            values[rows:rows + len(frame)] = prep.transform(frame, part.path)
            labels[rows:rows + len(frame)] = _labels(frame[target], classes)
            rows += len(frame)
    data = pd.DataFrame(values, columns=names, copy=False)
    data["__label__"] = np.asarray(labels, dtype=np.float32)
    return data


def _part_reports(part, table, target, split, models, shares, probabilities):
    task = models[0].task
    classes = None if models[0].classes_ is None else list(models[0].classes_)
    reports = [{share: PartitionReport(task, classes, probabilities=probabilities) for share in shares}
               for _ in models]
    for block, start, frame in table.batches(part, models[0].columns + [target]):
        masks = split.masks(split.draws(block, start, len(frame)))
        wanted = np.zeros(len(frame), dtype=bool)
        for share in shares:
            wanted |= masks[share]
        if wanted.any():
            score_batch(models, frame[wanted], {s: masks[s][wanted] for s in shares}, target, reports)
    return reports
