import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

from keras_bigml.errors import ConfigError, ModelFileError
from keras_bigml.workflows.classical import train_classical
from keras_bigml.workflows.explaining import ExplainResult, explain


def driven_csv(path, rows=400, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"noise": rng.normal(size=rows), "helper": rng.normal(size=rows),
                          "driver": rng.normal(size=rows), "colour": rng.choice(["red", "blue"], rows)})
    signal = 2.5 * frame["driver"] + 0.4 * frame["helper"] + rng.normal(scale=0.4, size=rows)
    frame["y"] = (signal > 0).astype(int)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("classical")
    data = driven_csv(root / "table.csv")
    # explain finds the seed and the target in run.json
    train_classical("logistic_regression", data, root / "run", target="y", random_state=3)
    return root / "run", data


@pytest.mark.large
def test_a_classical_run_is_explained_on_its_held_out_rows(classical_run):
    pytest.importorskip("shap")
    run, data = classical_run
    result = explain(run, data)  # the target comes from run.json
    assert isinstance(result, ExplainResult) and result.kind == "classical" and result.skipped == {}
    for method in ("permutation", "pdp", "shap"):
        assert result.rankings[method].top(1) == ["driver"], method
        assert os.path.getsize(result.paths[method]) > 5000
    assert os.path.dirname(result.paths["json"]) == str(run / "explain")
    page = open(result.paths["report"], encoding="utf-8").read()
    assert "Explanations" in page and "permutation_importance" in page.replace(" ", "_").lower()
    saved = json.load(open(result.paths["json"]))
    assert saved["rows"]["held_out"] and saved["rows"]["used"] == 100
    assert saved["rows"]["same_score_as_the_run_report"]  # the very rows the run was tested on
    assert saved["methods"]["permutation"]["ranking"][0]["feature"] == "driver"
    assert saved["methods"]["pdp"]["plotted"][0] == "driver"
    assert saved["methods"]["shap"]["explainer"] == "linear"
    assert saved["plots"] == {"permutation": "permutation_importance.png", "pdp": "partial_dependence.png",
                              "shap": "shap_summary.png"}


def test_new_rows_are_used_as_they_are_and_shap_is_skipped_without_its_package(classical_run, tmp_path,
                                                                              monkeypatch):
    run, _ = classical_run
    fresh = driven_csv(tmp_path / "fresh.csv", rows=150, seed=7)
    monkeypatch.setitem(sys.modules, "shap", None)  # as if not installed
    result = explain(run, fresh, target="y", out_dir=tmp_path / "out", method=["shap", "permutation"])
    assert "pip install 'keras_bigml[explain]'" in result.skipped["shap"]
    assert result.rankings["permutation"].top(1) == ["driver"]
    assert sorted(result.paths) == ["json", "permutation"]
    saved = json.load(open(tmp_path / "out" / "explain.json"))
    assert not saved["rows"]["held_out"] and saved["rows"]["used"] == 150 and "shap" in saved["skipped"]


@pytest.mark.large
def test_a_run_of_the_out_of_core_engine_is_explained_on_its_held_out_rows(tmp_path):
    pytest.importorskip("xgboost")
    data = driven_csv(tmp_path / "table.csv")
    train_classical("gradient_boosting", data, tmp_path / "run", target="y", engine="out_of_core",
                    test_size=0.3, random_state=5, progress=False)
    result = explain(tmp_path / "run", data)  # the model records its target
    for method in ("permutation", "pdp", "shap"):
        assert result.rankings[method].top(1) == ["driver"], method
    rows = result.details["rows"]
    assert rows["held_out"] and rows["same_score_as_the_run_report"] and rows["table_rows"] == 400
    assert result.details["methods"]["shap"]["explainer"] == "xgboost"  # the booster's own contributions


def test_bad_requests_get_one_clear_error(classical_run, tmp_path):
    run, data = classical_run
    with pytest.raises(ConfigError, match="Unknown explanation method 'lime'"):
        explain(run, data, method="lime")
    with pytest.raises(ConfigError, match="is a classical run: explain it with permutation, pdp, shap"):
        explain(run, data, method="traversal")
    with pytest.raises(ConfigError, match="needs the table to explain on"):
        explain(run)
    with pytest.raises(ModelFileError, match="No run directory"):
        explain(tmp_path / "nowhere", data)
    with pytest.raises(ModelFileError, match="No model in"):
        explain(tmp_path, data)


@pytest.fixture(scope="module")
def generative_run(tmp_path_factory):
    from keras_bigml.data import load_images
    from keras_bigml.evaluation.generative import train_classifier
    from keras_bigml.generative import VAE

    root = tmp_path_factory.mktemp("generative")
    vae = VAE(image_shape=(8, 8, 1), latent_dim=3, filters=(8,), hidden_units=16, seed=0)
    vae.compile(optimizer="adam")
    vae.fit(load_images("digits", limit=64, batch_size=32), epochs=1, verbose=0)
    os.makedirs(root / "vae")
    vae.save(root / "vae" / "model.keras")
    images, labels = next(iter(load_images("digits", labels=True, batch_size=500)))
    classifier = train_classifier(images.numpy(), labels.numpy(), epochs=1)
    classifier.save(root / "digits.keras")
    return root / "vae", root / "digits.keras"


@pytest.mark.large
def test_a_vae_run_gets_latent_traversals_and_grad_cam_with_a_classifier(generative_run, tmp_path):
    run, classifier = generative_run
    result = explain(run, "digits")
    assert result.kind == "generative" and sorted(result.paths) == ["json", "report", "traversal"]
    assert "classifier" in result.skipped["gradcam"]
    traversal = result.details["methods"]["traversal"]
    assert sorted(traversal["dimensions"]) == [0, 1, 2]
    assert traversal["kl"] == sorted(traversal["kl"], reverse=True)
    from PIL import Image

    width, height = Image.open(result.paths["traversal"]).size
    assert (width, height) == (4 * (9 * 9 - 1), 4 * (3 * 9 - 1))  # 3 rows of 9 images of 8 pixels
    result = explain(run, method="gradcam", classifier=classifier, out_dir=tmp_path)
    saved = json.load(open(tmp_path / "explain.json"))
    assert saved["methods"]["gradcam"]["images"] == "generated images"
    assert len(saved["methods"]["gradcam"]["predicted"]) == 8 and os.path.isfile(result.paths["gradcam"])


def test_an_image_classifier_gets_grad_cam_on_its_data(generative_run, tmp_path):
    _, classifier = generative_run
    result = explain(classifier, "digits", out_dir=tmp_path)
    assert sorted(result.paths) == ["gradcam", "json"]
    assert result.details["methods"]["gradcam"]["images"] == "images of the data"
    with pytest.raises(ConfigError, match="no latent space to traverse"):
        explain(classifier, "digits", method="traversal", out_dir=tmp_path)
