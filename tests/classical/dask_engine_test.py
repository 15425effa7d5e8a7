"""The Dask engine on one LocalCluster of two worker processes shared by the module."""

import os
import pickle
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from keras_bigml.data.tables import PartitionedTable
from keras_bigml.errors import EngineError
from keras_bigml.workflows.classical import train_classical

QUIET = {"progress": False, "n_threads": 1, "epochs": 5}  # 5 SGD passes: enough at 4,500 rows


def table(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    colour = rng.choice(["red", "green", "blue"], n)
    signal_ = 3 * X[:, 0] - 2 * X[:, 1] + 2 * X[:, 2] * X[:, 3] + 2 * np.sin(2 * X[:, 4]) + (colour == "red")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(colour=colour)
    frame.loc[::13, "x1"] = np.nan
    return frame.assign(target=(rng.random(n) < 1 / (1 + np.exp(-2.5 * signal_))).astype(int))


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table") / "parts"
    folder.mkdir()
    frame = table()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[rows].to_parquet(folder / f"part-{i:05d}.parquet", row_group_size=700)
    return folder


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(2)
        yield cluster


@pytest.fixture(autouse=True)
def one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def out_of_core(parts, tmp_path_factory):
    cache = {}

    def report(algorithm):
        if algorithm not in cache:
            out = tmp_path_factory.mktemp(f"ooc-{algorithm}")
            cache[algorithm] = train_classical(algorithm, parts, out, target="target", engine="out_of_core",
                                               **QUIET).report
        return cache[algorithm]

    return report


@pytest.mark.parametrize("algorithm, metric, tolerance", [
    ("gradient_boosting", "roc_auc", 0.01),
    pytest.param("random_forest", "roc_auc", 0.01, marks=pytest.mark.large),
    pytest.param("decision_tree", "accuracy", 0.03, marks=pytest.mark.large),
    ("logistic_regression", "roc_auc", 0.005),
    pytest.param("svm", "roc_auc", 0.01, marks=pytest.mark.large),
])
def test_every_algorithm_matches_the_out_of_core_engine(cluster, parts, out_of_core, tmp_path, algorithm,
                                                       metric, tolerance):
    """Same split, same preprocessing: the engines differ only in how the library distributes the work
    (out of core is in turn checked against in-memory scikit-learn in out_of_core_test.py)."""
    result = train_classical(algorithm, parts, tmp_path, target="target", engine="dask",
                             dask_address=cluster.scheduler_address, **QUIET)
    report, expected = result.report, out_of_core(algorithm)
    assert set(report["test"]) == set(expected["test"]) and set(expected) <= set(report)
    assert report["test_rows"] == expected["test_rows"]
    assert report["test"][metric] == pytest.approx(expected["test"][metric], abs=tolerance)
    assert report["engine"] == "dask" and report["partitions"] == 4 and report["workers"] == 2
    assert len(report["worker_peak_mb"]) == 2 and min(report["worker_peak_mb"].values()) > 0
    assert (tmp_path / "model.json").exists() and (tmp_path / "roc_curve.png").exists()
    assert cluster.status.name == "running"


def test_the_client_reads_no_rows_and_receives_less_than_a_partition(cluster, parts, tmp_path, monkeypatch):
    """Each thing the client gets back (statistics, reports, models) is smaller than one partition, and all
    of them together (two trainings) less than half the table."""
    import xgboost
    from distributed import Client

    client_batches = []
    batches = PartitionedTable.batches

    def watched(self, *args, **kwargs):
        client_batches.append(args)
        return batches(self, *args, **kwargs)

    received = []
    gather = Client._gather

    async def measured(self, *args, **kwargs):
        result = await gather(self, *args, **kwargs)
        received.append(result)
        return result

    monkeypatch.setattr(PartitionedTable, "batches", watched)
    monkeypatch.setattr(Client, "_gather", measured)
    for algorithm in ("gradient_boosting", "logistic_regression"):
        train_classical(algorithm, parts, tmp_path / algorithm, target="target", engine="dask",
                        dask_address=cluster.scheduler_address, **QUIET)
    assert client_batches == []

    def data_bytes(value):
        if isinstance(value, xgboost.Booster):
            return 0  # the model itself
        if isinstance(value, (list, tuple)):
            return sum(data_bytes(v) for v in value)
        if isinstance(value, dict):
            return sum(data_bytes(v) for v in value.values())
        return len(pickle.dumps(value))

    one_partition = pd.read_parquet(parts / "part-00000.parquet").memory_usage(deep=True).sum()
    assert len(received) > 4
    sizes = [data_bytes(value) for value in received]
    assert max(sizes) < one_partition and sum(sizes) < 4 * one_partition / 2


def test_tuning_with_early_stopping_on_a_validation_split(cluster, parts, tmp_path):
    result = train_classical("gradient_boosting", parts, tmp_path, target="target", engine="dask",
                             dask_address=cluster.scheduler_address, tune_method="random", n_iter=2,
                             params={"n_estimators": 40}, **QUIET)
    results = pd.read_csv(tmp_path / "tuning.csv")
    assert len(results) == 2 and result.report["tuning"]["scored_on"] == "validation split"
    assert result.report["test"]["roc_auc"] > 0.9


@pytest.mark.parametrize("task, metric", [("classes", "accuracy"), ("regression", "r2")])
def test_a_forest_trains_in_rounds_on_the_workers(cluster, tmp_path, monkeypatch, task, metric):
    """The rounds' objective (gradients at the intercept) runs on the workers, for several classes and for
    regression too, and scores as the out-of-core engine's forest."""
    from keras_bigml.classical import scaled

    frame = table(3000, seed=3)
    signal_ = frame["x0"] + frame["x2"] * frame["x3"]
    frame = frame.assign(target=np.digitize(signal_, [-1.0, 0.0, 1.0]) if task == "classes" else signal_)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet")
    monkeypatch.setattr(scaled, "FOREST_ROUND_MEMORY", 4 * 3000 * 5)  # at most 5 trees a round
    results = {engine: train_classical("random_forest", folder, tmp_path / engine, target="target", engine=engine,
                                       params={"n_estimators": 20}, **QUIET,
                                       **({"dask_address": cluster.scheduler_address} if engine == "dask" else {}))
               for engine in ("dask", "out_of_core")}
    (booster,) = results["dask"].model.boosters
    assert booster.num_boosted_rounds() == 4 and len(booster.get_dump()) == 20 * (4 if task == "classes" else 1)
    scores = {engine: result.report["test"][metric] for engine, result in results.items()}
    assert scores["dask"] == pytest.approx(scores["out_of_core"], abs=0.03) and scores["dask"] > 0.5


def test_the_training_watch_is_not_fooled_by_the_clients_cached_identity(cluster, parts, tmp_path,
                                                                         monkeypatch):
    """The client's periodic refresh of its scheduler identity (totals, no workers) can land while the watch
    reads it: that must not end the training as if every worker had left."""
    from distributed import Client

    from keras_bigml.classical import dask_engine

    scheduler_info = Client.scheduler_info
    calls = []

    def refreshed_meanwhile(self, *args, **kwargs):  # what a read right after a periodic refresh sees
        calls.append(1)
        return scheduler_info(self, *args, **kwargs) if len(calls) == 1 else {"workers": {}}

    monkeypatch.setattr(Client, "scheduler_info", refreshed_meanwhile)
    monkeypatch.setattr(dask_engine, "WATCH_SECONDS", 0.01)
    result = train_classical("gradient_boosting", parts, tmp_path, target="target", engine="dask",
                             dask_address=cluster.scheduler_address, params={"n_estimators": 30}, **QUIET)
    assert result.report["test"]["roc_auc"] > 0.9


def test_the_same_model_scores_again_right_away(cluster, parts, tmp_path):
    """Tuning scores the best candidate again right after the search scored it: the second upload of the
    same model must not share its key with the first, whose release would then delete it on the workers."""
    from keras_bigml.classical.dask_engine import DaskEngine
    from keras_bigml.data.tables import RowSplit, open_table

    model = train_classical("gradient_boosting", parts, tmp_path, target="target", engine="dask",
                            dask_address=cluster.scheduler_address, params={"n_estimators": 5}, **QUIET).model
    engine = DaskEngine(open_table(parts), "target", RowSplit(), address=cluster.scheduler_address,
                        progress=False)
    try:
        scores = [engine.score([model], ["test"], True)[0]["test"].report()["roc_auc"] for _ in range(8)]
    finally:
        engine.close()
    assert len(set(scores)) == 1


def test_an_unreachable_scheduler_is_one_line():
    from keras_bigml.classical.dask_engine import DaskEngine

    with pytest.raises(EngineError, match="Cannot reach the Dask scheduler at tcp://127.0.0.1:9 .*leave the "
                                          "address out for a local cluster"):
        DaskEngine(None, "target", None, address="tcp://127.0.0.1:9", connect_timeout="2s")


def test_machine_memory_is_at_most_what_dask_sees():
    import distributed.system

    from keras_bigml.classical.dask_engine import machine_memory

    assert 0 < machine_memory() <= distributed.system.MEMORY_LIMIT


def test_a_worker_killed_during_training_is_one_line_and_nothing_is_written(cluster, parts, tmp_path):
    from distributed import Client

    with Client(cluster.scheduler_address) as client:  # the caller's own client, as in a notebook
        pids = list(client.run(os.getpid).values())

        def kill_when_training():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                # xgboost.dask's training tasks (one per worker) are named fn-<id>.
                tasks = list(cluster.scheduler.tasks.items())
                if sum(str(key).startswith("fn-") and task.state == "processing" for key, task in tasks) == 2:
                    time.sleep(0.5)
                    os.kill(pids[0], signal.SIGKILL)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_training)
        killer.start()
        try:
            lost = "A Dask worker .* during training .*the run is not finished: run the same command again"
            with pytest.raises(EngineError, match=lost) as caught:
                train_classical("gradient_boosting", parts, tmp_path, target="target", engine="dask",
                                dask_address=cluster.scheduler_address, params={"n_estimators": 5000},
                                **QUIET)
        finally:
            killer.join()
        assert "\n" not in str(caught.value)
        assert not (tmp_path / "report.json").exists() and not (tmp_path / "model.json").exists()
        client.wait_for_workers(2, timeout=60)  # the nanny restarts it
    # The same command again (fewer rounds, to be quick) finishes. It runs on a local cluster of its
    # own: on the shared one, XGBoost's collective waited for the restarted worker under heavy load.
    train_classical("gradient_boosting", parts, tmp_path, target="target", engine="dask",
                    params={"n_estimators": 10}, **QUIET)
    assert (tmp_path / "report.json").exists()


def test_out_of_memory_is_named_from_the_nanny_logs():
    from keras_bigml.classical.dask_engine import describe_lost_worker

    line = describe_lost_worker("training", "KilledWorker: ...",
                                "Worker tcp://127.0.0.1:1 (pid=5) exceeded 95% memory budget. Restarting...")
    assert line.startswith("A Dask worker ran out of memory during training")
    assert "give the workers more memory, or use more workers or more, smaller partitions" in line
    killed = describe_lost_worker("scoring", "CommClosedError", "Worker process 77 was killed by signal 9")
    assert "was killed (by a signal: often the kernel's out-of-memory killer) during scoring" in killed
    kernel = describe_lost_worker("training", "worker tcp://127.0.0.1:5 left", "", out_of_memory=True)
    assert kernel.startswith("A Dask worker was killed by the kernel for lack of memory during training")


def test_oom_kills_are_read_from_this_process_cgroup(tmp_path, monkeypatch):
    import builtins

    from keras_bigml.classical import dask_engine

    (tmp_path / "memory" / "job").mkdir(parents=True)
    oom_control = tmp_path / "memory" / "job" / "memory.oom_control"
    oom_control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    files = {"/proc/self/cgroup": "12:cpu,cpuacct:/other\n7:memory:/job\n"}
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path in files:
            import io

            return io.StringIO(files[path])
        if str(path).startswith("/sys/fs/cgroup/"):
            return real_open(str(path).replace("/sys/fs/cgroup", str(tmp_path)), *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    assert dask_engine.oom_kills() == 3
    files["/proc/self/cgroup"] = "0::/job\n"  # cgroup v2: memory.events
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "memory.events").write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    assert dask_engine.oom_kills() == 1
    files["/proc/self/cgroup"] = "0::/missing\n"
    assert dask_engine.oom_kills() is None


def test_the_engines_local_cluster_reads_parquet_with_the_system_allocator(parts):
    """pyarrow's default mimalloc pool keeps freed batches: the engine's own workers use the system one."""
    from keras_bigml.classical.dask_engine import DaskEngine
    from keras_bigml.data.tables import RowSplit, open_table

    engine = DaskEngine(open_table(parts), "target", RowSplit(), n_workers=1, progress=False)
    try:
        import pyarrow as pa

        pools = engine.client.run(lambda: pa.default_memory_pool().backend_name)
        assert list(pools.values()) == ["system"]
    finally:
        engine.close()
