import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_bigml.cli import main


def test_train_vae_writes_the_run_and_generate_draws_a_grid(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "vae", "--data", "digits", "--epochs", "2", "--limit", "64",
                 "--batch-size", "16", "--latent-dim", "2", "--filters", "8",
                 "--hidden-units", "16", "--seed", "0", "--out", str(out)])
    assert code == 0
    assert sorted(os.listdir(out)) == ["grids", "history.json", "model.keras", "samples.png", "saved_model"]
    assert len(json.load(open(out / "history.json"))["loss"]) == 2
    assert "samples.png" in capsys.readouterr().out
    grid = tmp_path / "grid.png"
    assert main(["generate", str(out), "--n", "9", "--out", str(grid)]) == 0
    first = np.asarray(Image.open(grid))
    assert main(["generate", str(out), "--n", "9", "--out", str(grid)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(grid)), first)
    assert main(["generate", str(out), "--n", "9", "--seed", "1", "--out", str(grid)]) == 0
    assert not np.array_equal(np.asarray(Image.open(grid)), first)


def test_conditional_training_counts_the_classes(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "vae", "--conditional", "--epochs", "1", "--limit", "64", "--latent-dim", "2",
                 "--filters", "8", "--hidden-units", "16", "--out", str(out)]) == 0
    grid = tmp_path / "sevens.png"
    assert main(["generate", str(out), "--n", "4", "--labels", "7", "--out", str(grid)]) == 0
    from keras_bigml.runs import load_run_model

    assert load_run_model(str(out)).num_classes == 10
    given = tmp_path / "given"
    assert main(["train", "cgan", "--num-classes", "12", "--epochs", "1", "--limit", "32", "--latent-dim", "2",
                 "--generator-filters", "8", "--discriminator-filters", "8", "--out", str(given)]) == 0
    assert load_run_model(str(given)).num_classes == 12


def test_quickstart_runs_offline_with_few_epochs(tmp_path, capsys):
    assert main(["quickstart", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "vae" / "saved_model" / "saved_model.pb").exists()
    assert (tmp_path / "random_forest" / "report.json").exists()
    assert (tmp_path / "cgan" / "samples.png").exists()
    assert "Wrote" in capsys.readouterr().out


def test_bad_input_gives_one_clear_line(tmp_path, capsys):
    assert main(["train", "vae", "--data", "no_such_set", "--out", str(tmp_path)]) == 1
    assert "Unknown image dataset 'no_such_set'" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing")]) == 1
    assert "No trained model" in capsys.readouterr().err
    assert main(["train", "vae", "--limit", "16", "--resume", "--out", str(tmp_path / "fresh")]) == 1
    assert "Nothing to resume" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["quickstart"], ["train"], ["train", "vae"], ["train", "gan"], ["train", "cgan"], ["train", "wgan-gp"], ["train", "cyclegan"], ["generate"], ["translate"], ["evaluate"], ["classical"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: keras-bigml" in capsys.readouterr().out


def test_console_script_is_installed():
    result = subprocess.run(["keras-bigml", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "quickstart" in result.stdout


def test_classical_writes_report_plots_and_model(tmp_path, capsys):
    out = tmp_path / "forest"
    assert main(["classical", "--algo", "random_forest", "--data", "wine", "--out", str(out)]) == 0
    report = json.load(open(out / "report.json"))
    assert report["task"] == "classification" and report["test"]["accuracy"] > 0.9
    assert {"confusion_matrix.png", "roc_curve.png", "feature_importance.png", "model.skops"} <= set(os.listdir(out))
    assert "accuracy" in capsys.readouterr().out


def test_classical_tunes_a_regressor_from_a_csv(tmp_path):
    from keras_bigml.data.tables import load_table

    X, y = load_table("diabetes")
    X.assign(progression=y).to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "tree"
    assert main(["classical", "--algo", "decision_tree", "--data", str(tmp_path / "d.csv"),
                 "--target", "progression", "--tune", "random", "--out", str(out)]) == 0
    report = json.load(open(out / "report.json"))
    assert report["task"] == "regression" and report["tuning"]["method"] == "random"
    assert (out / "tuning.csv").exists() and (out / "predicted_vs_true.png").exists()


def test_classical_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["classical", "--algo", "forest", "--out", str(tmp_path)])
    assert "invalid choice: 'forest'" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    assert main(["classical", "--algo", "svm", "--data", str(tmp_path / "t.csv"), "--target", "c",
                 "--out", str(tmp_path / "o")]) == 1
    assert "no target column 'c'" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["gan", "cgan", "wgan-gp"])
def test_train_each_gan_and_generate(tmp_path, model):
    out = tmp_path / model
    assert main(["train", model, "--epochs", "1", "--limit", "64", "--batch-size", "16", "--latent-dim", "4",
                 "--generator-filters", "8", "--discriminator-filters", "8", "--seed", "0",
                 "--out", str(out)]) == 0
    history = json.load(open(out / "history.json"))
    assert {"d_loss", "g_loss"} <= set(history)
    assert ("gradient_penalty" in history) == (model == "wgan-gp")
    from keras_bigml.runs import load_run_model

    gan = load_run_model(str(out))
    assert gan.num_classes == (10 if model == "cgan" else None)
    assert gan.loss_kind == ("wgan-gp" if model == "wgan-gp" else "bce")
    assert main(["generate", str(out), "--n", "4", "--labels", "3", "--out", str(tmp_path / "g.png")]) == 0


def test_train_cyclegan_then_translate(tmp_path, capsys):
    import tensorflow as tf
    from matplotlib.image import imread

    from keras_bigml.runs import load_run_model

    out = tmp_path / "run"
    assert main(["train", "cyclegan", "--data-a", "digits", "--data-b", "digits", "--split-b", "test",
                 "--channels-b", "3", "--image-size", "8", "--limit", "16", "--batch-size", "8", "--epochs", "2", "--jitter",
                 "--generator-filters", "4", "--discriminator-filters", "4", "--residual-blocks", "1",
                 "--discriminator-layers", "1", "--seed", "0", "--out", str(out)]) == 0
    history = json.load(open(out / "history.json"))
    assert len(history["cycle_loss"]) == 2 and history["identity_loss"] == [0.0, 0.0]
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert sorted(tf.saved_model.load(str(out / "saved_model")).signatures) == ["a_to_b", "b_to_a", "serving_default"]
    model = load_run_model(str(out))
    assert model.image_shape_b == (8, 8, 3)
    # 2 epochs of 2 steps, the second half decaying: the learning rate has reached zero.
    assert float(model.optimizers["generator_ab"].learning_rate) == 0.0
    translated = tmp_path / "translated"
    assert main(["translate", str(out), "--direction", "b2a", "--input", "digits", "--limit", "5",
                 "--out", str(translated)]) == 0
    assert "Translated 5 images (b2a)" in capsys.readouterr().out
    assert sorted(p.name for p in translated.iterdir()) == [f"{i:05d}.png" for i in range(5)] + ["grid.png"]
    assert imread(translated / "00000.png").shape[:2] == (8, 8)
    assert main(["translate", str(tmp_path / "nothing"), "--input", "digits", "--out", str(translated)]) == 1
    assert "No trained model" in capsys.readouterr().err


def test_train_cyclegan_with_a_semantic_classifier(tmp_path, capsys):
    import keras

    inputs = keras.Input((8, 8, 1))
    classifier = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(inputs)))
    classifier.save(tmp_path / "digits.keras")
    common = ["train", "cyclegan", "--data-a", "digits", "--data-b", "digits", "--split-b", "test",
              "--limit", "16", "--batch-size", "8", "--epochs", "1", "--generator-filters", "4",
              "--discriminator-filters", "4", "--residual-blocks", "1", "--discriminator-layers", "1", "--seed", "0"]
    assert main([*common, "--semantic-classifier", str(tmp_path / "digits.keras"), "--semantic-weight", "2",
                 "--out", str(tmp_path / "run")]) == 0
    history = json.load(open(tmp_path / "run" / "history.json"))
    assert history["semantic_loss"][0] > 0
    assert main([*common, "--semantic-classifier", str(tmp_path / "none.keras"), "--out", str(tmp_path / "bad")]) == 1
    assert "No classifier file at" in capsys.readouterr().err


def test_evaluate_prints_and_saves_generator_metrics(tmp_path, capsys):
    out = tmp_path / "cgan"
    assert main(["train", "cgan", "--epochs", "1", "--limit", "64", "--batch-size", "16", "--latent-dim", "4",
                 "--generator-filters", "8", "--discriminator-filters", "8", "--seed", "0", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--data", "digits", "--n", "200", "--classifier-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    metrics = json.load(open(out / "metrics.json"))
    assert {"frechet_distance", "real_frechet_distance", "label_agreement", "classifier_score"} <= set(metrics)
    assert f"{metrics['frechet_distance']:.4f}" in printed
    vae = tmp_path / "vae"
    assert main(["train", "vae", "--epochs", "1", "--limit", "64", "--latent-dim", "2", "--out", str(vae)]) == 0
    assert main(["evaluate", str(vae), "--data", "digits", "--n", "100", "--limit", "300",
                 "--classifier-epochs", "1"]) == 0
    assert json.load(open(vae / "metrics.json"))["test_negative_elbo"] > 0
