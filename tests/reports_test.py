"""report.html: the sections a run's files call for, self-contained, and rendered in a real browser."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from keras_bigml.errors import DataError
from keras_bigml.reports import learning_curves_png, write_report
from keras_bigml.runs import RunDirectory
from keras_bigml.workflows.classical import train_classical

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None,
                                    reason="chromium is not installed (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("iris_tree"))
    train_classical("decision_tree", "iris", run)
    return run


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    from keras_bigml.data import load_images
    from keras_bigml.generative import VAE
    from keras_bigml.runs import fit_and_save

    run = str(tmp_path_factory.mktemp("digits_vae"))
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    vae.compile(optimizer="adam")
    fit_and_save(vae, load_images("digits", limit=64), run, 2, verbose=0,
                 arguments={"latent_dim": 2, "epochs": 2}, seed=3)
    return run


def read(path):
    with open(path, encoding="utf-8") as file:
        return file.read()


def section_titles(page):
    return re.findall(r"<h2>([^<]+)", page)


def copy_run(run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return str(target)


def assert_self_contained(page):
    # Every image and link is inline: the page opens offline as one file, and needs no script.
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,)', page) == []
    assert "<script" not in page and "<link" not in page and "@import" not in page


def test_classical_run_sections(classical_run, tmp_path):
    run = copy_run(classical_run, tmp_path)
    page = read(write_report(run))
    assert section_titles(page) == ["Model evaluation", "Configuration"]
    assert "Test accuracy" in page and "Test ROC AUC" in page and "Per class (test)" in page
    for caption in ("Confusion matrix (test)", "ROC curve (test)", "Feature importance"):
        assert f"<figcaption>{caption}</figcaption>" in page
    assert page.count("data:image/png;base64,") == 3
    report = json.loads(read(os.path.join(run, "report.json")))
    assert f"{100 * report['test']['accuracy']:.1f}%" in page
    assert "decision_tree · classification" in page
    assert_self_contained(page)


def test_regression_run(tmp_path):
    train_classical("linear_regression", "diabetes", tmp_path)
    page = read(write_report(tmp_path))
    assert "Test R²" in page and "Test RMSE" in page and "Predicted vs true (test)" in page
    assert "Per class" not in page and "Confusion matrix" not in page


@pytest.mark.large
def test_generative_run_sections(vae_run, tmp_path):
    run = copy_run(vae_run, tmp_path)
    with open(os.path.join(run, "metrics.json"), "w") as file:
        json.dump({"frechet_distance": 2.5, "real_frechet_distance": 0.4, "classifier_score": 7.25,
                   "test_negative_elbo": 31.5}, file)
    page = read(write_report(run))
    assert section_titles(page) == ["Generator metrics", "Learning curves", "Samples", "Configuration"]
    assert 'class="status status-finished">finished' in page and "seed 3" in page and "2 epochs" in page
    assert "Fréchet distance" in page and "real vs real 0.4" in page and "7.25" in page
    assert "<figcaption>epoch 1</figcaption>" in page and "<figcaption>epoch 2</figcaption>" in page
    assert "Samples from the final model" in page and "latent_dim" in page
    info = RunDirectory(run).info
    assert f"tensorflow <b>{info['versions']['tensorflow']}</b>" in page
    # Learning curves, samples and two epoch grids.
    assert page.count("data:image/png;base64,") == 4
    assert_self_contained(page)


def test_profile_warnings_and_explanations(classical_run, tmp_path):
    run = copy_run(classical_run, tmp_path)
    with open(os.path.join(run, "profile.json"), "w") as file:
        json.dump({"rows": 150, "warnings": [
            "petal width: leak: alone it predicts the target (held-out ROC AUC 0.99)",
            "id: constant: one value in all rows", "rows 3, 9: duplicate rows", "note with <b>markup</b>",
        ]}, file)
    os.makedirs(os.path.join(run, "explain"))
    shutil.copy(os.path.join(run, "feature_importance.png"),
                os.path.join(run, "explain", "pdp_petal_width.png"))
    with open(os.path.join(run, "explain", "explain.json"), "w") as file:
        json.dump({"method": "permutation", "importances": {"petal width": 0.42, "sepal width": 0.01},
                   "top_features": ["petal width"]}, file)
    page = read(write_report(run))
    assert section_titles(page)[:3] == ["Data quality", "Model evaluation", "Explanations"]
    assert '<span class="tag tag-leak">leak</span>' in page and '<span class="tag tag-constant">' in page
    assert '<span class="tag tag-duplicate">' in page and "4 warnings" in page
    assert "&lt;b&gt;markup&lt;/b&gt;" in page and "<b>markup" not in page
    assert "PDP petal width" in page and "0.42" in page and "permutation" in page
    assert page.count("data:image/png;base64,") == 4


def test_failed_run_shows_its_error(tmp_path):
    run = RunDirectory(tmp_path)
    with pytest.raises(RuntimeError), run.open("gan", {"epochs": 3}):
        (tmp_path / "history.json").write_text('{"g_loss": [1.0]}')
        raise RuntimeError("out of memory in epoch 2")
    page = read(write_report(tmp_path))
    assert 'class="status status-failed">failed' in page
    assert "RuntimeError: out of memory in epoch 2" in page and "no results yet" not in page


def test_rewritten_atomically_and_empty_run(tmp_path):
    page = read(write_report(tmp_path))
    assert "This run directory holds no results yet." in page
    write_report(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["report.html"]
    with pytest.raises(DataError, match="No run directory at"):
        write_report(tmp_path / "missing")


@pytest.mark.large
def test_a_few_epoch_grids(vae_run, tmp_path):
    run = copy_run(vae_run, tmp_path)
    grid = os.path.join(run, "grids", "epoch_001.png")
    for epoch in range(3, 11):
        shutil.copy(grid, os.path.join(run, "grids", f"epoch_{epoch:03d}.png"))
    page = read(write_report(run))
    assert re.findall(r"<figcaption>epoch (\d+)</figcaption>", page) == ["1", "4", "7", "10"]


def test_learning_curves_png():
    history = {"d_loss": [1.0, 0.8], "g_loss": [2.0, 1.5], "val_g_loss": [2.2, 1.9], "accuracy": [0.5, 0.6],
               "kl": [0.1, 0.2]}
    import io

    image = Image.open(io.BytesIO(learning_curves_png(history)))
    two_rows = image.size
    image = Image.open(io.BytesIO(learning_curves_png({"loss": [1.0, 0.5]})))
    assert two_rows[1] == 2 * image.size[1] and two_rows[0] == 3 * image.size[0]


def screenshot(page, tmp_path):
    """The page as headless Chromium draws it, an (H, W, 3) array."""
    out = tmp_path / "screenshot.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={out}",
               "--window-size=1200,2000", f"file://{os.path.abspath(page)}"]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert out.is_file(), "chromium wrote no screenshot"
    return np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)


def assert_rendered(pixels):
    assert pixels.shape == (2000, 1200, 3)
    assert pixels.std() > 30
    not_white = (pixels < 235).any(axis=2)
    assert 0.1 < not_white.mean() < 0.9
    # The style sheet applied: a dark header band above the light page.
    assert pixels[:60].mean() < 90 and pixels[300:].mean() > 180


@pytest.mark.large
@needs_chromium
def test_classical_report_renders_in_chromium(classical_run, tmp_path):
    pixels = screenshot(write_report(copy_run(classical_run, tmp_path)), tmp_path)
    assert_rendered(pixels)
    # The confusion matrix's dark blue cells are drawn: the images load from their data URIs.
    blue = (pixels[..., 2] > 90) & (pixels[..., 0] < 40) & (pixels[..., 1] < 80)
    assert blue[200:].sum() > 2000


@pytest.mark.large
@needs_chromium
def test_generative_report_renders_in_chromium(vae_run, tmp_path):
    assert_rendered(screenshot(write_report(copy_run(vae_run, tmp_path)), tmp_path))
