import numpy as np
import pandas as pd
import pytest

from keras_bigml.data.tables import PartitionedTable
from keras_bigml.errors import ConfigError, DataError, ModelFileError, RunError
from keras_bigml.workflows.classical import train_classical
from keras_bigml.workflows.predicting import predict


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(colour=rng.choice(["red", "blue"], n))
    return frame.assign(target=np.where(X[:, 0] + X[:, 1] * X[:, 2] > 0, "yes", "no"))


def write_parts(folder, frame, parts):
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", row_group_size=300)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    parts = write_parts(root / "train", table(3000), 3)
    scaled = train_classical("gradient_boosting", parts, root / "scaled", target="target",
                             engine="out_of_core", params={"n_estimators": 20}, n_threads=1, progress=False)
    memory = train_classical("logistic_regression", parts, root / "memory", target="target")
    new = table(2000, seed=1).drop(columns="target").assign(id=np.arange(2000) + 10_000)
    return {"scaled": scaled, "memory": memory, "new": new, "parts": write_parts(root / "new", new, 4)}


@pytest.mark.parametrize("run", ["scaled", "memory"])
def test_one_output_part_per_input_part_with_every_row(runs, tmp_path, run):
    trained = runs[run]
    run_dir = trained.paths["report"].rsplit("/", 1)[0]
    result = predict(run_dir, runs["parts"], tmp_path / "out", keep=["id"], progress=False)
    names = [output.rsplit("/", 1)[1] for _, output in result.parts]
    assert names == [f"part-{i:05d}.parquet" for i in range(4)]
    out = pd.concat([pd.read_parquet(output) for _, output in result.parts], ignore_index=True)
    assert result.rows == len(out) == 2000 and list(out.columns) == result.columns
    assert result.columns == ["id", "prediction", "probability_no", "probability_yes"]
    np.testing.assert_array_equal(out["id"], runs["new"]["id"])
    features = runs["new"].drop(columns="id")
    np.testing.assert_array_equal(out["prediction"], trained.model.predict(features))
    probabilities = out[["probability_no", "probability_yes"]]
    np.testing.assert_allclose(probabilities, trained.model.predict_proba(features))
    for (source, output), rows in zip(result.parts, [500] * 4, strict=True):
        assert len(pd.read_parquet(output)) == rows and source.endswith(".parquet")


def test_out_of_core_reads_one_batch_at_a_time_and_writes_the_same(runs, tmp_path, monkeypatch):
    run_dir = runs["scaled"].paths["report"].rsplit("/", 1)[0]
    whole = predict(run_dir, runs["parts"], tmp_path / "whole", keep=["id"], progress=False)
    largest = []
    batches = PartitionedTable.batches

    def counted(self, part, columns=None, batch_rows=None):
        for block, start, frame in batches(self, part, columns, batch_rows):
            largest.append(len(frame))
            yield block, start, frame

    monkeypatch.setattr(PartitionedTable, "batches", counted)
    streamed = predict(run_dir, runs["parts"], tmp_path / "streamed", engine="out_of_core", batch_rows=128,
                       keep=["id"], progress=False)
    assert max(largest) <= 128 and sum(largest) == 2000
    for (_, a), (_, b) in zip(whole.parts, streamed.parts, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))


def test_regression_runs_write_only_predictions(tmp_path):
    frame = table(1200).assign(target=lambda t: 2 * t["a"] + t["b"])
    parts = write_parts(tmp_path / "parts", frame, 2)
    run = train_classical("linear_regression", parts, tmp_path / "run", target="target", engine="out_of_core",
                          progress=False)
    result = predict(tmp_path / "run", parts, tmp_path / "out", engine="out_of_core", progress=False)
    out = pd.concat([pd.read_parquet(p) for _, p in result.parts])
    assert result.columns == ["prediction"] and list(out.columns) == ["prediction"]
    # float32 arithmetic: predictions near zero differ in the last bits
    np.testing.assert_allclose(out["prediction"], run.model.predict(frame), rtol=1e-6, atol=1e-6)


def test_bad_requests_are_one_line(runs, tmp_path):
    run_dir = runs["scaled"].paths["report"].rsplit("/", 1)[0]
    with pytest.raises(ConfigError, match="Unknown engine 'gpu'"):
        predict(run_dir, runs["parts"], tmp_path / "o", engine="gpu")
    with pytest.raises(ModelFileError, match="holds no model.json or model.skops"):
        predict(tmp_path, runs["parts"], tmp_path / "o")
    with pytest.raises(DataError, match="lacks the columns row_key"):
        predict(run_dir, runs["parts"], tmp_path / "o", keep=["row_key"], progress=False)
    other = write_parts(tmp_path / "other", runs["new"].drop(columns="colour"), 2)
    with pytest.raises(DataError, match="lacks the columns colour"):
        predict(run_dir, other, tmp_path / "o", progress=False)
    predict(run_dir, runs["parts"], tmp_path / "o", progress=False)
    with pytest.raises(RunError, match=r"already holds predictions \(part-00000.parquet ...\); .*overwrite"):
        predict(run_dir, runs["parts"], tmp_path / "o", progress=False)
    two = write_parts(tmp_path / "two", runs["new"], 2)
    result = predict(run_dir, two, tmp_path / "o", overwrite=True, progress=False)
    assert sorted(p.name for p in (tmp_path / "o").glob("part-*.parquet")) == ["part-00000.parquet",
                                                                              "part-00001.parquet"]
    assert result.rows == 2000


@pytest.mark.large
def test_dask_workers_write_the_parts(runs, tmp_path):
    from distributed import LocalCluster

    run_dir = runs["scaled"].paths["report"].rsplit("/", 1)[0]
    local = predict(run_dir, runs["parts"], tmp_path / "local", keep=["id"], progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = predict(run_dir, runs["parts"], tmp_path / "dask", engine="dask", keep=["id"],
                         dask_address=cluster.scheduler_address, progress=False)
    assert remote.rows == 2000
    for (_, a), (_, b) in zip(local.parts, remote.parts, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
