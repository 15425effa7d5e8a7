"""Exporting runs: every format of a generative run, ONNX of a classical one, one line for the rest."""

import os
import shutil

import numpy as np
import pytest

from keras_bigml.data import load_images
from keras_bigml.errors import ConfigError, ModelFileError, RunError
from keras_bigml.generative import VAE
from keras_bigml.runs import RunDirectory, fit_and_save
from keras_bigml.workflows.classical import train_classical
from keras_bigml.workflows.export import ExportResult, export_run

TOLERANCE = 1e-5  # float32 rounding in another order; measured 1e-8 to 1e-6


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("vae"))
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    vae.compile(optimizer="adam")
    fit_and_save(vae, load_images("digits", limit=32), run, 1, verbose=0)
    return run


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("tree"))
    train_classical("decision_tree", "iris", run)
    return run


@pytest.mark.large
def test_litert_and_onnx_of_a_generative_run(vae_run, tmp_path):
    litert = export_run(vae_run, "litert", tmp_path / "vae.tflite")
    assert isinstance(litert, ExportResult) and litert.run_kind == "generative" and litert.format == "litert"
    assert set(litert.differences) == {"encode", "decode", "reconstruct"}
    assert litert.max_difference < TOLERANCE and (tmp_path / "vae.tflite").is_file()
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    onnx = export_run(vae_run, "onnx", signature_keys=["decode"])
    assert onnx.path == os.path.join(vae_run, "onnx") and os.listdir(onnx.path) == ["decode.onnx"]
    assert list(onnx.differences) == ["decode"] and onnx.max_difference < TOLERANCE


def test_savedmodel_is_written_afresh_and_compared(vae_run, tmp_path):
    result = export_run(vae_run, "savedmodel", tmp_path / "served")
    assert result.checked_on.startswith("written from model.keras; compared with the run's SavedModel")
    assert set(result.differences) == {"encode", "decode", "reconstruct"}
    # The same weights through the same graph: the new export computes what the run's does.
    assert result.max_difference < TOLERANCE
    assert (tmp_path / "served" / "saved_model.pb").is_file()


def test_savedmodel_copied_when_the_run_has_no_keras_model(vae_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(vae_run, run)
    os.remove(run / "model.keras")
    result = export_run(run, "savedmodel", tmp_path / "copy")
    assert result.checked_on.startswith("copied from the run")
    assert result.max_difference == 0.0
    with pytest.raises(ConfigError, match="has no model.keras to write its SavedModel afresh from"):
        export_run(run, "savedmodel")


def test_onnx_of_a_classical_run(classical_run):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from keras_bigml.classical.persist import load_model
    from keras_bigml.data.tables import load_table

    result = export_run(classical_run, "onnx", data="iris")
    assert result.run_kind == "classical" and result.path == os.path.join(classical_run, "model.onnx")
    assert result.checked_on == "150 rows of the input table"
    assert result.differences["model"]["probabilities"] < TOLERANCE
    X, _ = load_table("iris")
    session = onnxruntime.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"X": X.to_numpy(np.float32)})[1]
    model = load_model(os.path.join(classical_run, "model.skops"))
    np.testing.assert_allclose(probabilities, model.predict_proba(X), atol=TOLERANCE)


def test_classical_check_rows_come_from_run_json(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    run = RunDirectory(tmp_path / "run")
    train_classical("logistic_regression", "wine", run.path)  # records data and target in run.json
    result = export_run(run.path, "onnx", tmp_path / "wine.onnx")
    assert result.checked_on == "178 rows of the input table"
    assert result.differences["model"]["probabilities"] < TOLERANCE


def test_classical_without_rows_is_written_unchecked(classical_run, tmp_path):
    pytest.importorskip("skl2onnx")
    run = shutil.copytree(classical_run, tmp_path / "run")
    info = RunDirectory(run).info
    RunDirectory(run).update(arguments={**info["arguments"], "data": None})
    result = export_run(run, "onnx", tmp_path / "tree.onnx")
    assert result.differences == {} and "not checked" in result.checked_on
    assert (tmp_path / "tree.onnx").stat().st_size > 0


@pytest.mark.parametrize("format", ["litert", "savedmodel"])
def test_classical_run_to_litert_or_savedmodel_is_one_line(classical_run, format):
    with pytest.raises(ConfigError) as error:
        export_run(classical_run, format)
    assert str(error.value) == (f"{classical_run} is a classical run (model.skops): it exports to ONNX only "
                                f"(--format onnx), not {format}.")


def test_bad_runs_and_formats(tmp_path, classical_run):
    with pytest.raises(ConfigError, match="Unknown export format 'tflite': use one of savedmodel, litert"):
        export_run(classical_run, "tflite")
    with pytest.raises(ModelFileError, match="No run directory at"):
        export_run(tmp_path / "nowhere", "onnx")
    with pytest.raises(ModelFileError, match="holds no model to export"):
        export_run(tmp_path, "litert")
    run = RunDirectory(tmp_path / "running")
    with run.open("vae", {}), pytest.raises(RunError, match="is running: export it once it has finished"):
        export_run(run.path, "litert")
