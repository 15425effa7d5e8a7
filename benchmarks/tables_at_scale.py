"""Tables larger than memory: every engine and algorithm on a generated 4,000,000 x 20 table.

Usage:  python benchmarks/tables_at_scale.py [--rows 4000000] [--data-dir DIR] [--cap-mb 1536]
            [--predict-cap-mb 768] [--algorithms gradient_boosting,...] [--skip references,scaling,...]

Makes (once, in ``--data-dir``) a table of float32 features with a nonlinear binary target,
as one Parquet file (row groups of 250,000 rows) and as 8 parts, plus prefixes of 250,000 and
1,000,000 rows. Each measured command runs in a fresh process, under a memory cgroup of
``--cap-mb`` (all its processes, Dask workers included) when ``../shared/tools/capped`` is
there and we are root; otherwise uncapped, with the peaks read from each process's VmHWM.
It prints, one line per run: wall seconds, the client's peak (VmHWM), each Dask worker's peak,
the cgroup's peak (``memory.max_usage_in_bytes``: anonymous memory plus page cache) and its
largest anonymous memory, and the test ROC AUC. Then:

1. every engine and algorithm on 4M rows (out of core on the one file, Dask on the 8 parts);
2. the memory engine at 250k and 1M rows, and the scaled engines' AUC against it at 1M (the same
   model: ``MEMORY_PARAMS`` are XGBoost's ``PARAMS`` in HistGradientBoosting's names);
3. out-of-core gradient boosting at 250k, 1M and 4M rows: how its memory grows with the rows;
4. the same work done directly with XGBoost (external memory; xgboost.dask) and dask-ml
   (Incremental SGD, and the alternatives for Dask's linear models: dask-ml's
   LogisticRegression, XGBoost's gblinear, which XGBoost refuses on Dask), with time and peak
   ratios. The references do what keras_bigml's run does: the same rounds, max_bin, split and
   reading, and a scoring pass over the training and the test rows (keras_bigml's report scores
   both); keras_bigml's run also writes its plots, model and report. Wall time is printed with the
   CPU time of the whole process tree (Dask workers included), which other work on a shared
   machine disturbs much less than the wall time;
5. the histogram ROC AUC of the reports against the exact AUC of the same predictions;
6. ``predict`` of all 4M rows out of core under ``--predict-cap-mb``.

Runs share a machine: ``OMP_WAIT_POLICY=PASSIVE`` is set for every child (OpenMP threads that
spin while waiting for busy cores slow XGBoost down many times); it applies to the references
alike, so the ratios compare like with like.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPPED = os.path.join(os.path.dirname(REPO_ROOT), "shared", "tools", "capped")
ROW_GROUP = 250_000
FEATURES = 20
SEED = 0
PARAMS = {"n_estimators": 100, "max_depth": 6, "learning_rate": 0.3}  # XGBoost's defaults, 100 rounds
# The same model for scikit-learn's HistGradientBoosting (the memory engine): 100 rounds at 0.3, trees of
# depth 6 with no leaf limit, no early stopping (its own default holds out a tenth above 10,000 rows).
MEMORY_PARAMS = {"max_iter": 100, "learning_rate": 0.3, "max_depth": 6, "max_leaf_nodes": None,
                 "early_stopping": False}
TIMEOUT = 3600  # seconds per measured run; set with --timeout
ALGORITHMS = ("gradient_boosting", "random_forest", "decision_tree", "logistic_regression", "svm")


# ---------------------------------------------------------------- data

def make_chunk(index, rows, seed=SEED):
    """Rows ``index * ROW_GROUP ...`` of the table (the same rows whatever the table's size)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, index])
    X = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    logit = (3 * X[:, 0] - 2 * X[:, 1] + 2 * X[:, 2] + 1.5 * X[:, 3] - X[:, 4] + 2 * X[:, 5] * X[:, 6]
             + 2 * np.sin(2 * X[:, 7]) + 1.5 * (X[:, 8] ** 2 - 1) + 2 * np.abs(X[:, 9]) - 1.6)
    y = (rng.random(rows) < 1 / (1 + np.exp(-np.clip(2.5 * logit, -50, 50)))).astype(np.int8)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(FEATURES)]).assign(target=y)


def make_tables(folder, rows, parts=8):
    """One file of ``rows`` rows, the same rows in ``parts`` files, and 250k and 1M prefixes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder, exist_ok=True)
    paths = {"one": os.path.join(folder, f"t{rows}.parquet"), "parts": os.path.join(folder, f"t{rows}-parts")}
    for size in (250_000, 1_000_000):
        if size < rows:
            paths[size] = os.path.join(folder, f"t{size}.parquet")
    done = os.path.join(folder, f".done-{rows}")
    if os.path.exists(done):
        return paths
    os.makedirs(paths["parts"], exist_ok=True)
    groups = -(-rows // ROW_GROUP)
    per_part = -(-groups // parts)
    writers = {"one": None, 250_000: None, 1_000_000: None}
    part_writer = None
    for index in range(groups):
        chunk = pa.Table.from_pandas(make_chunk(index, min(ROW_GROUP, rows - index * ROW_GROUP)),
                                     preserve_index=False)
        for key in writers:
            if key in paths and (key == "one" or index * ROW_GROUP < key):
                writers[key] = writers[key] or pq.ParquetWriter(paths[key], chunk.schema)
                writers[key].write_table(chunk, row_group_size=ROW_GROUP)
        if index % per_part == 0:
            if part_writer is not None:
                part_writer.close()
            name = os.path.join(paths["parts"], f"part-{index // per_part:05d}.parquet")
            part_writer = pq.ParquetWriter(name, chunk.schema)
        part_writer.write_table(chunk, row_group_size=ROW_GROUP)
    part_writer.close()
    for writer in writers.values():
        if writer is not None:
            writer.close()
    open(done, "w").close()
    return paths


# ---------------------------------------------------------------- child jobs (one per process)

def child(job):
    """Run one measured job in this process; print its result as one JSON line."""
    start = time.perf_counter()
    result = JOBS[job["kind"]](job)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["client_hwm_mb"] = vm_hwm_mb()
    print("RESULT " + json.dumps(result), flush=True)


def job_train(job):
    from keras_bigml.workflows.classical import train_classical

    result = train_classical(job["algorithm"], job["source"], job["out"], target="target",
                             engine=job["engine"], params=job.get("params"), progress=False)
    report = result.report
    return {"auc": report["test"].get("roc_auc"), "test_rows": report["test_rows"],
            "workers_mb": report.get("worker_peak_mb", {}), "auc_bound": report.get("roc_auc_max_error", {})}


def job_predict(job):
    from keras_bigml.workflows.predicting import predict

    result = predict(job["run"], job["source"], job["out"], engine="out_of_core", overwrite=True,
                     progress=False)
    return {"rows": result.rows, "parts": len(result.parts)}


def lean_batches(path, columns=None):
    """``(file index, row group, batch)`` of a Parquet file or folder, read as the library reads them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(os.path.join(path, f) for f in os.listdir(path)) if os.path.isdir(path) else [path]
    for file_index, name in enumerate(files):
        with pq.ParquetFile(name, pre_buffer=False) as file:
            for group in range(file.metadata.num_row_groups):
                for batch in file.iter_batches(batch_size=65_536, row_groups=[group], columns=columns):
                    frame = batch.to_pandas()
                    del batch
                    pa.default_memory_pool().release_unused()
                    yield file_index, group, frame


class SplitDraws:
    """The same per-row draws as keras_bigml.data.tables.RowSplit (PCG64 per row group), written out."""

    def __init__(self):
        self.position = {}

    def test_mask(self, file_index, group, rows, test_size=0.25):
        import numpy as np

        start = self.position.get((file_index, group), 0)
        generator = np.random.Generator(np.random.PCG64([SEED, file_index, group]))
        generator.bit_generator.advance(start)
        self.position[(file_index, group)] = start + rows
        return generator.random(rows) < test_size


def job_direct_extmem(job):
    """XGBoost's external memory, with the library's lean reading and split, nothing else."""
    import shutil

    import numpy as np
    import xgboost

    features = [f"x{i}" for i in range(FEATURES)]

    class Batches(xgboost.DataIter):
        def __init__(self, cache):
            self.batches = None
            super().__init__(cache_prefix=cache, release_data=True)

        def reset(self):
            self.batches, self.split = None, SplitDraws()

        def next(self, input_data):
            if self.batches is None:
                self.batches, self.split = lean_batches(job["source"]), SplitDraws()
            for file_index, group, frame in self.batches:
                train = ~self.split.test_mask(file_index, group, len(frame))
                input_data(data=frame[features].to_numpy(np.float32)[train],
                           label=frame["target"].to_numpy(np.float32)[train])
                return True
            return False

    cache = tempfile.mkdtemp()
    matrix = xgboost.ExtMemQuantileDMatrix(Batches(os.path.join(cache, "train")), max_bin=256)
    booster = xgboost.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
                             "learning_rate": 0.3, "seed": SEED}, matrix, 100)
    del matrix
    shutil.rmtree(cache, ignore_errors=True)
    return {"auc": exact_test_auc(job["source"], lambda X: booster.inplace_predict(X), train_too=True)}


def exact_test_auc(source, score, train_too=False):
    """The exact ROC AUC of ``score`` on the test rows (their scores only are kept: 8 bytes a row).

    ``train_too`` also scores the training rows (and computes their AUC), the work keras_bigml's
    reports do in their one scoring pass: a reference does it too, so that the time ratio compares
    the same work.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    features = [f"x{i}" for i in range(FEATURES)]
    split, labels, scores, train_labels, train_scores = SplitDraws(), [], [], [], []
    for file_index, group, frame in lean_batches(source):
        test = split.test_mask(file_index, group, len(frame))
        values = frame[features].to_numpy(np.float32)
        target = frame["target"].to_numpy()
        if train_too:
            predicted = score(values)
            train_labels.append(target[~test])
            train_scores.append(predicted[~test])
        else:
            predicted = np.empty(len(values))
            predicted[test] = score(values[test])
        labels.append(target[test])
        scores.append(predicted[test])
    if train_too:
        roc_auc_score(np.concatenate(train_labels), np.concatenate(train_scores))
    return float(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))


def local_cluster():
    """A LocalCluster set up as the library's own (2 single-thread workers, memory limits that fit)."""
    import dask
    from distributed import Client, LocalCluster

    from keras_bigml.classical.dask_engine import MEMORY_CONFIG, worker_memory_limit

    workers = max(1, min(4, os.cpu_count() or 1))
    with dask.config.set(MEMORY_CONFIG):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=worker_memory_limit(workers))
    return cluster, Client(cluster)


def dask_parts(folder):
    """X, y, test mask per partition: one partition per file, read on the workers."""
    import dask.dataframe as dd
    import pandas as pd

    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))

    def read(args):
        index, path = args
        split, frames = SplitDraws(), []
        for _, group, frame in lean_batches(path):
            frames.append(frame.assign(test=split.test_mask(index, group, len(frame))))
        return pd.concat(frames, ignore_index=True)

    return dd.from_map(read, list(enumerate(files)))


def on_dask_parts(job, train_and_score):
    """Run ``train_and_score(client, train, test, features) -> (train scores, test scores)`` on a fresh
    local cluster over the job's parts; return the test AUC and each worker's peak memory.

    The train rows are scored too (and their AUC computed), as keras_bigml's reports do."""
    from sklearn.metrics import roc_auc_score

    cluster, client = local_cluster()
    frame = dask_parts(job["source"])
    features = [f"x{i}" for i in range(FEATURES)]
    train, test = frame[~frame["test"]], frame[frame["test"]]
    train_scores, scores = train_and_score(client, train, test, features)
    roc_auc_score(train["target"].compute(), train_scores)
    auc = float(roc_auc_score(test["target"].compute(), scores))
    workers = {k: round(v, 1) for k, v in client.run(lambda: vm_hwm_mb()).items()}
    client.close()
    cluster.close()
    return {"auc": auc, "workers_mb": workers}


def dask_arrays(frame, features):
    """Features and target of a Dask frame as Dask arrays with known chunk sizes."""
    lengths = frame.map_partitions(len).compute().tolist()
    return frame[features].to_dask_array(lengths=lengths), frame["target"].to_dask_array(lengths=lengths)


def job_direct_xgboost_dask(job):
    import xgboost.dask

    def train_and_score(client, train, test, features):
        matrix = xgboost.dask.DaskQuantileDMatrix(client, train[features], train["target"], max_bin=256)
        params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "learning_rate": 0.3,
                  "seed": SEED}
        output = xgboost.dask.train(client, params, matrix, 100)
        del matrix
        return [xgboost.dask.inplace_predict(client, output["booster"], rows[features]).compute()
                for rows in (train, test)]

    return on_dask_parts(job, train_and_score)


def job_direct_incremental(job):
    """dask-ml's Incremental around averaged SGD, standardized with dask-ml's StandardScaler."""
    import numpy as np
    from dask_ml.preprocessing import StandardScaler
    from dask_ml.wrappers import Incremental
    from sklearn.linear_model import SGDClassifier

    def train_and_score(client, train, test, features):
        X, y = dask_arrays(train, features)
        scaler = StandardScaler().fit(X)
        model = Incremental(SGDClassifier(loss="log_loss", average=True, random_state=SEED),
                            shuffle_blocks=True, random_state=SEED)
        model.fit(scaler.transform(X), y, classes=np.array([0, 1]))
        return [model.predict_proba(scaler.transform(dask_arrays(rows, features)[0]))[:, 1].compute()
                for rows in (train, test)]

    return on_dask_parts(job, train_and_score)


def job_alternative_lbfgs(job):
    """dask-ml's LogisticRegression (lbfgs) on standardized persisted partitions."""
    from dask_ml.linear_model import LogisticRegression
    from dask_ml.preprocessing import StandardScaler

    def train_and_score(client, train, test, features):
        X, y = dask_arrays(train, features)
        scaler = StandardScaler().fit(X)
        model = LogisticRegression(solver="lbfgs", max_iter=100)
        model.fit(scaler.transform(X).persist(), y.persist())
        # dask-ml's predict_proba gives both classes' columns
        return [model.predict_proba(scaler.transform(dask_arrays(rows, features)[0]))[:, 1].compute()
                for rows in (train, test)]

    return on_dask_parts(job, train_and_score)


def job_alternative_gblinear(job):
    """XGBoost's linear booster on Dask, or the reason it does not run there (XGBoost 3.x refuses
    ``gblinear`` in distributed training)."""
    import xgboost.dask

    def train_and_score(client, train, test, features):
        matrix = xgboost.dask.DaskDMatrix(client, train[features], train["target"])
        output = xgboost.dask.train(client, {"objective": "binary:logistic", "booster": "gblinear",
                                             "updater": "coord_descent", "learning_rate": 0.5}, matrix, 50)
        del matrix
        return [xgboost.dask.inplace_predict(client, output["booster"], rows[features]).compute()
                for rows in (train, test)]

    try:
        return on_dask_parts(job, train_and_score)
    except NotImplementedError as error:  # measured: this library cannot run it, not a failure
        return {"not_available": str(error)}


def job_exact_auc(job):
    """The exact test AUC of a saved run's model, beside its report's histogram AUC."""
    import pandas as pd

    from keras_bigml.classical.scaled import load_table_model

    model = load_table_model(job["run"])
    with open(os.path.join(job["run"], "report.json")) as file:
        report = json.load(file)

    def score(X):
        return model.scores(model.transform(pd.DataFrame(X, columns=model.columns)))[:, 1]

    exact = exact_test_auc(job["source"], score)
    return {"auc": exact, "report_auc": report["test"]["roc_auc"],
            "bound": report["roc_auc_max_error"]["test"]}


JOBS = {"train": job_train, "predict": job_predict, "direct_extmem": job_direct_extmem,
        "direct_xgboost_dask": job_direct_xgboost_dask, "direct_incremental": job_direct_incremental,
        "alternative_lbfgs": job_alternative_lbfgs, "alternative_gblinear": job_alternative_gblinear,
        "exact_auc": job_exact_auc}


def vm_hwm_mb():
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- parent: run, measure, print

def can_cap():
    return os.path.exists(CAPPED) and hasattr(os, "geteuid") and os.geteuid() == 0 and os.access(
        "/sys/fs/cgroup/memory", os.W_OK)


def run(job, cap_mb, label, timeout=None):
    """Run ``job`` in a fresh process (capped when possible); return its measurements."""
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(job)]
    capped = cap_mb and can_cap()
    if capped:
        command = [CAPPED, str(cap_mb)] + command
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    start, cpu_before = time.perf_counter(), children_cpu_s()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout or TIMEOUT)
    except subprocess.TimeoutExpired as expired:
        done = subprocess.CompletedProcess(command, -9, expired.stdout or "",
                                           f"timed out after {expired.timeout:.0f} s (error)")
    result = {"label": label, "exit": done.returncode, "outer_s": round(time.perf_counter() - start, 1),
              "cpu_s": round(children_cpu_s() - cpu_before, 1)}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT "):]))
    for line in done.stderr.splitlines():
        if line.startswith("peak_mb="):
            result.update({key: float(value) for key, value in (item.split("=") for item in line.split())})
    if "auc" not in result and "rows" not in result and "not_available" not in result:
        lines = [line for line in done.stderr.splitlines()
                 if line.strip() and not line.startswith("peak_mb=")]
        errors = [line for line in lines if "Error" in line or "error" in line] or lines
        result["error"] = errors[-1] if errors else f"exit status {done.returncode}"
    print(describe(result, cap_mb if capped else None), flush=True)
    return result


def children_cpu_s():
    """CPU seconds (user + system) of the finished child processes and all their descendants: Dask
    workers included, and robust to other work on a shared machine, unlike wall time."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def describe(result, cap_mb):
    workers = result.get("workers_mb") or {}
    parts = [f"{result['label']:52s}"]
    if "not_available" in result:
        return "  ".join(parts + [f"not available: {result['not_available']}"])
    if "error" in result:
        killed = result.get("oom_kills", 0) or result["exit"] == 137
        parts.append(f"FAILED ({'killed for memory' if killed else result['error'][:150]})")
    parts.append(f"wall {result.get('wall_s', result['outer_s']):7.1f} s  cpu {result['cpu_s']:6.1f} s")
    parts.append(f"client {result.get('client_hwm_mb', float('nan')):6.0f} MB")
    if workers:
        parts.append("workers " + "/".join(f"{mb:.0f}" for mb in workers.values()) + " MB")
    if cap_mb:
        parts.append(f"cgroup peak {result.get('peak_mb', float('nan')):5.0f} "
                     f"anon {result.get('anon_max_mb', 0):5.0f} "
                     f"cache {result.get('cache_max_mb', 0):5.0f} MB "
                     f"(cap {cap_mb})")
    if result.get("auc") is not None:
        parts.append(f"AUC {result['auc']:.4f}")
    if "rows" in result:
        parts.append(f"{result['rows']} rows in {result['parts']} parts")
    return "  ".join(parts)


def machine():
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name") and model in ("", "unknown CPU", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    shown = " ".join(shown) or "none of avx2/avx512"
    return f"CPU: {model}, {cores} cores, flags {shown}; load average {load:.1f}"


def versions():
    from importlib.metadata import version

    names = ("xgboost", "dask", "distributed", "dask-ml", "pyarrow", "scikit-learn", "pandas", "numpy")
    return ", ".join(f"{name} {version(name)}" for name in names)


def main():
    global TIMEOUT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--data-dir",
                        default=os.path.join(tempfile.gettempdir(), "keras_bigml-tables-at-scale"))
    parser.add_argument("--cap-mb", type=int, default=1536)
    parser.add_argument("--predict-cap-mb", type=int, default=768)
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--timeout", type=int, default=TIMEOUT, help="seconds per run (default: %(default)s)")
    parser.add_argument("--skip", default="", help="comma-separated: engines, memory, scaling, references, "
                        "alternatives, exact, predict")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    skip = set(filter(None, args.skip.split(",")))
    TIMEOUT = args.timeout
    print(machine())
    print(versions())
    print("memory cap:", f"{args.cap_mb} MB via {CAPPED}" if can_cap() else
          "none (needs root and ../shared/tools/capped); peaks from VmHWM")
    paths = make_tables(args.data_dir, args.rows)
    print(f"table: {args.rows} rows x {FEATURES} float32 + binary target; {paths['one']} "
          f"({os.path.getsize(paths['one']) / 2**20:.0f} MB), {paths['parts']} (8 parts)")
    out = tempfile.mkdtemp(prefix="tables-at-scale-")
    algorithms = args.algorithms.split(",")
    results = {}

    def train(engine, algorithm, source, label, params=None, cap=args.cap_mb):
        job = {"kind": "train", "algorithm": algorithm, "source": source, "engine": engine,
               "out": os.path.join(out, label.replace(" ", "_").replace("/", "_")), "params": params}
        results[label] = run(job, cap, label)
        results[label]["out"] = job["out"]
        return results[label]

    if "engines" not in skip:
        print(f"\n== 1. every engine and algorithm, {args.rows} rows (test: a quarter of the rows, seeded)")
        for algorithm in algorithms:
            params = PARAMS if algorithm == "gradient_boosting" else None
            train("out_of_core", algorithm, paths["one"], f"out_of_core {algorithm}", params)
            train("dask", algorithm, paths["parts"], f"dask {algorithm}", params)
    sizes = [size for size in (250_000, 1_000_000) if size in paths]
    if "memory" not in skip:
        print("\n== 2. the memory engine where it survives, and the scaled engines beside it at 1M rows")
        for size in sizes:
            label = f"memory gradient_boosting {size}"
            train("memory", "gradient_boosting", paths[size], label, MEMORY_PARAMS)
        if 1_000_000 in paths:
            for engine in ("out_of_core", "dask"):
                label = f"{engine} gradient_boosting 1000000"
                row = train(engine, "gradient_boosting", paths[1_000_000], label, PARAMS)
                memory = results.get("memory gradient_boosting 1000000", {})
                if row.get("auc") and memory.get("auc"):
                    print(f"   {engine} AUC - memory AUC at 1M rows: {row['auc'] - memory['auc']:+.4f}"
                          " (target: within 0.003)")
    if "scaling" not in skip:
        print("\n== 3. out-of-core memory against rows (gradient boosting)")
        peaks = {}
        for size in sizes + [args.rows]:
            label = "out_of_core gradient_boosting" + (f" {size}" if size != args.rows else "")
            peaks[size] = results.get(label) or train("out_of_core", "gradient_boosting",
                                                      paths.get(size, paths["one"]), label, PARAMS)
        first, last = peaks[min(peaks)], peaks[max(peaks)]
        if last.get("anon_max_mb") and first.get("anon_max_mb"):
            print(f"   {max(peaks) // min(peaks)}x the rows: anonymous memory x"
                  f"{last['anon_max_mb'] / first['anon_max_mb']:.2f}, VmHWM x"
                  f"{last['client_hwm_mb'] / first['client_hwm_mb']:.2f} (target: at most 2x)")
    if "references" not in skip:
        print("\n== 4. the libraries directly, same data and parameters; ratios keras_bigml / direct")
        pairs = [("direct_extmem", paths["one"], "out_of_core gradient_boosting", "XGBoost external memory"),
                 ("direct_xgboost_dask", paths["parts"], "dask gradient_boosting", "xgboost.dask"),
                 ("direct_incremental", paths["parts"], "dask logistic_regression",
                  "dask-ml Incremental SGD")]
        for kind, source, ours, label in pairs:
            direct = run({"kind": kind, "source": source}, args.cap_mb, f"direct: {label}")
            mine = results.get(ours)
            if mine and "error" not in mine and "error" not in direct:
                peak = "peak_mb" if "peak_mb" in mine and "peak_mb" in direct else "client_hwm_mb"
                print(f"   {ours}: time x{mine['wall_s'] / direct['wall_s']:.2f} "
                      f"(CPU time x{mine['cpu_s'] / direct['cpu_s']:.2f}), "
                      f"peak ({peak}) x{mine[peak] / direct[peak]:.2f}, "
                      f"AUC {mine['auc'] - direct['auc']:+.4f} (target: at most 1.2x)")
    if "alternatives" not in skip:
        print("\n== 4b. the alternatives for Dask's linear models (why Incremental SGD)")
        for kind, label in (("alternative_lbfgs", "dask-ml LogisticRegression (lbfgs)"),
                            ("alternative_gblinear", "xgboost.dask gblinear")):
            run({"kind": kind, "source": paths["parts"]}, args.cap_mb, f"alternative: {label}")
    if "exact" not in skip:
        print("\n== 5. histogram ROC AUC of the reports against the exact AUC")
        for label in ("out_of_core gradient_boosting", "dask gradient_boosting"):
            if label in results and "error" not in results[label]:
                source = paths["one"] if label.startswith("out_of_core") else paths["parts"]
                exact = run({"kind": "exact_auc", "run": results[label]["out"], "source": source}, None,
                            f"exact AUC of {label}")
                if "auc" in exact:
                    print(f"   report {exact['report_auc']:.6f}, exact {exact['auc']:.6f}, error "
                          f"{abs(exact['report_auc'] - exact['auc']):.2e}, stated bound {exact['bound']:.2e}"
                          " (target: at most 0.001)")
    if "predict" not in skip and "out_of_core gradient_boosting" in results:
        print(f"\n== 6. predict every row out of core, under {args.predict_cap_mb} MB")
        job = {"kind": "predict", "run": results["out_of_core gradient_boosting"]["out"],
               "source": paths["parts"], "out": os.path.join(out, "predictions")}
        run(job, args.predict_cap_mb, f"predict {args.rows} rows out of core")
    print(f"\noutputs in {out}")


if __name__ == "__main__":
    main()
