import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_bigml.cli import main


@pytest.mark.large
def test_train_vae_writes_the_run_and_generate_draws_a_grid(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "vae", "--data", "digits", "--epochs", "2", "--limit", "64",
                 "--batch-size", "16", "--latent-dim", "2", "--filters", "8",
                 "--hidden-units", "16", "--seed", "0", "--out", str(out)])
    assert code == 0
    assert sorted(os.listdir(out)) == ["grids", "history.json", "model.keras", "report.html", "run.json", "samples.png",
                                       "saved_model"]
    assert len(json.load(open(out / "history.json"))["loss"]) == 2
    assert "samples.png" in capsys.readouterr().out
    grid = tmp_path / "grid.png"
    assert main(["generate", str(out), "--n", "9", "--out", str(grid)]) == 0
    first = np.asarray(Image.open(grid))
    assert main(["generate", str(out), "--n", "9", "--out", str(grid)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(grid)), first)
    assert main(["generate", str(out), "--n", "9", "--seed", "1", "--out", str(grid)]) == 0
    assert not np.array_equal(np.asarray(Image.open(grid)), first)


@pytest.mark.large
def test_conditional_training_counts_the_classes(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "vae", "--conditional", "--epochs", "1", "--limit", "64", "--latent-dim", "2",
                 "--filters", "8", "--hidden-units", "16", "--out", str(out)]) == 0
    grid = tmp_path / "sevens.png"
    assert main(["generate", str(out), "--n", "4", "--labels", "7", "--out", str(grid)]) == 0
    shards = tmp_path / "sevens"
    assert main(["generate", str(out), "--n", "12", "--labels", "7", "--format", "shards", "--out", str(shards)]) == 0
    from keras_bigml.data import load_images

    images, labels = next(iter(load_images(str(shards), labels=True, batch_size=64)))
    assert images.shape == (12, 8, 8, 1) and set(labels.numpy().tolist()) == {7}
    from keras_bigml.runs import load_run_model

    assert load_run_model(str(out)).num_classes == 10
    given = tmp_path / "given"
    assert main(["train", "cgan", "--num-classes", "12", "--epochs", "1", "--limit", "32", "--latent-dim", "2",
                 "--generator-filters", "8", "--discriminator-filters", "8", "--conditional-batch-norm",
                 "--spectral-norm", "--out", str(given)]) == 0
    given_model = load_run_model(str(given))
    assert given_model.num_classes == 12 and given_model.conditional_batch_norm and given_model.spectral_norm


@pytest.mark.large
def test_pixelcnn_vae_trains_exports_and_generates(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "vae", "--binarize", "--pixelcnn-layers", "2", "--epochs", "1", "--limit", "64",
                 "--image-size", "8", "--latent-dim", "2", "--filters", "8", "--hidden-units", "16",
                 "--out", str(out)]) == 0
    from keras_bigml.runs import load_run_model

    assert load_run_model(str(out)).pixelcnn_layers == 2
    import tensorflow as tf

    exported = tf.saved_model.load(str(out / "saved_model"))
    images = exported.signatures["decode"](z=tf.zeros((3, 2)))["images"].numpy()
    assert images.shape == (3, 8, 8, 1) and 0 <= images.min() and images.max() <= 1
    grid = tmp_path / "grid.png"
    assert main(["generate", str(out), "--n", "4", "--out", str(grid)]) == 0 and grid.exists()
    # LiteRT has no random ops: decode's fixed pixel noise must be a constant for it to convert.
    assert main(["export", str(out), "--format", "litert"]) == 0


@pytest.mark.large
def test_quickstart_runs_offline_with_few_epochs(tmp_path, capsys):
    assert main(["quickstart", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "vae" / "saved_model" / "saved_model.pb").exists()
    assert (tmp_path / "random_forest" / "report.json").exists()
    assert (tmp_path / "cgan" / "samples.png").exists()
    out = capsys.readouterr().out
    assert "Wrote the VAE run:" in out and "Wrote the random forest run:" in out
    assert str(tmp_path / "random_forest" / "report.html") in out


@pytest.mark.large
def test_bad_input_gives_one_clear_line(tmp_path, capsys):
    assert main(["train", "vae", "--data", "no_such_set", "--out", str(tmp_path)]) == 1
    assert "Unknown image dataset 'no_such_set'" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing")]) == 1
    assert "No trained model" in capsys.readouterr().err
    assert main(["train", "vae", "--limit", "16", "--resume", "--out", str(tmp_path / "fresh")]) == 1
    assert "Nothing to resume" in capsys.readouterr().err


TINY_VAE = ["--limit", "32", "--batch-size", "16", "--latent-dim", "2", "--filters", "8", "--hidden-units", "16"]
TINY_CYCLEGAN = ["--data-a", "digits", "--data-b", "digits", "--split-b", "test", "--limit", "8", "--batch-size", "4",
                 "--generator-filters", "4", "--discriminator-filters", "4", "--residual-blocks", "1",
                 "--discriminator-layers", "1"]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Files that must be refused, made once for the error-path tests."""
    root = tmp_path_factory.mktemp("bad")
    images = np.zeros((20, 8, 8), np.uint8)
    np.savez(root / "stray_label.npz", x_train=images, y_train=np.r_[np.arange(19) % 10, 2_000_000],
             x_test=images, y_test=np.zeros(20, np.int64))
    np.savez(root / "objects.npz", x_train=np.array([{"a": 1}] * 2, dtype=object), y_train=np.zeros(2),
             x_test=images, y_test=np.zeros(20))
    (root / "folder").mkdir()
    for index in range(3):
        Image.fromarray(np.full((8, 8), index * 60, np.uint8)).save(root / "folder" / f"{index}.png")
    (root / "folder" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "one_class.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},1\n" for i in range(40)))
    (root / "twice.csv").write_text("a,y,y\n" + "".join(f"{i},{i % 2},{i % 2}\n" for i in range(40)))
    (root / "empty.csv").write_text("")
    (root / "plain.csv").write_text("a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40)))
    import keras

    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 1.0)(inputs)).save(root / "lambda.keras")
    return root


@pytest.fixture(scope="module")
def trained_runs(bad_files):
    """Tiny trained VAE and CycleGAN runs beside the bad files, for the cases that refuse misuse of a run."""
    assert main(["train", "vae", *TINY_VAE, "--epochs", "1", "--out", str(bad_files / "vae")]) == 0
    assert main(["train", "cyclegan", *TINY_CYCLEGAN, "--epochs", "1", "--out", str(bad_files / "cyclegan")]) == 0
    return bad_files


ERROR_CASES = {
    "zero epochs": (["train", "vae", "--epochs", "0", "--out", "{root}/x"],
                    2, "epochs must be a whole number of at least 1, got 0"),
    "negative epochs": (["train", "gan", "--epochs", "-1", "--out", "{root}/x"], 2, "got -1"),
    "zero batch size": (["train", "vae", "--batch-size", "0", "--out", "{root}/x"], 2, "batch_size must be"),
    "zero latent size": (["train", "vae", "--latent-dim", "0", "--out", "{root}/x"], 2, "latent_dim must be"),
    "zero image size": (["train", "vae", "--image-size", "0", "--out", "{root}/x"], 2, "image_size"),
    "zero importance samples": (["train", "vae", "--importance-samples", "0", "--out", "{root}/x"],
                                2, "importance_samples must be"),
    "weighted iwae": (["train", "vae", "--importance-samples", "2", "--beta", "2", "--epochs", "1", "--limit", "16",
                       "--out", "{root}/x"], 2, "use beta=1"),
    "zero limit": (["train", "vae", "--limit", "0", "--out", "{root}/x"], 2, "limit"),
    "negative learning rate": (["train", "vae", "--learning-rate", "-1", "--out", "{root}/x"],
                               2, "learning_rate must be"),
    "bad channels": (["train", "vae", "--channels", "2", "--out", "{root}/x"], 2, "invalid choice: 2"),
    "bad widths": (["train", "vae", "--filters", "a,b", "--out", "{root}/x"], 2, "comma-separated integers"),
    "unknown dataset": (["train", "vae", "--data", "no_such_set", "--out", "{root}/x"], 1, "no_such_set"),
    "missing npz": (["train", "vae", "--data", "{root}/missing.npz", "--out", "{root}/x"], 1, "missing.npz"),
    "object array npz": (["train", "vae", "--data", "{root}/objects.npz", "--out", "{root}/x"], 1, "objects.npz"),
    "stray label": (["train", "cgan", "--data", "{root}/stray_label.npz", "--out", "{root}/x"], 1, "2000000"),
    "too few classes": (["train", "cgan", "--num-classes", "5", "--epochs", "1", "--out", "{root}/x"],
                        2, "num_classes"),
    "one class": (["train", "cgan", "--num-classes", "1", "--out", "{root}/x"], 2, "num_classes must be"),
    "classes unconditional": (["train", "vae", "--num-classes", "10", "--out", "{root}/x"], 2, "--conditional"),
    "corrupt image": (["train", "vae", "--data", "{root}/folder", "--out", "{root}/x"], 1, "broken.png"),
    "resume nothing": (["train", "vae", "--resume", "--out", "{root}/fresh"], 1, "Nothing to resume"),
    "resume and overwrite": (["train", "vae", "--resume", "--overwrite", "--out", "{root}/vae"], 2, "either resume"),
    "finished run": (["train", "vae", *TINY_VAE, "--out", "{root}/vae"], 1, "finished vae run: pass overwrite"),
    "finished run resumed": (["train", "vae", *TINY_VAE, "--resume", "--out", "{root}/vae"], 1, "nothing to resume"),
    "decay longer than run": (["train", "cyclegan", *TINY_CYCLEGAN, "--epochs", "2", "--decay-epochs", "5",
                               "--out", "{root}/x"], 2, "decay_epochs (5) cannot exceed epochs (2)"),
    "lambda classifier": (["train", "cyclegan", *TINY_CYCLEGAN, "--semantic-classifier", "{root}/lambda.keras",
                           "--out", "{root}/x"], 1, "--allow-unsafe-deserialization"),
    "generate missing": (["generate", "{root}/nothing"], 1, "No trained model"),
    "generate none": (["generate", "{root}/vae", "--n", "0", "--out", "{root}/g.png"], 2, "n must be"),
    "generate from cyclegan": (["generate", "{root}/cyclegan", "--out", "{root}/g.png"],
                               2, "use 'keras-bigml translate'"),
    "translate with vae": (["translate", "{root}/vae", "--input", "digits", "--out", "{root}/t"],
                           2, "nothing to translate"),
    "evaluate cyclegan": (["evaluate", "{root}/cyclegan", "--data", "digits"], 2, "evaluate judges"),
    "unknown algorithm": (["classical", "--algo", "forest", "--out", "{root}/c"], 2, "forest"),
    "missing table": (["classical", "--algo", "svm", "--data", "{root}/missing.csv", "--out", "{root}/c"],
                      1, "missing.csv"),
    "missing target": (["classical", "--algo", "svm", "--data", "{root}/plain.csv", "--target", "c",
                        "--out", "{root}/c"],
                       1, "'c'"),
    "test size": (["classical", "--algo", "svm", "--test-size", "1.5", "--out", "{root}/c"], 2, "test_size"),
    "one-class target": (["classical", "--algo", "random_forest", "--data", "{root}/one_class.csv", "--target", "y",
                          "--out", "{root}/c"], 1, "one class"),
    "target named twice": (["classical", "--algo", "svm", "--data", "{root}/twice.csv", "--target", "y",
                            "--out", "{root}/c"], 1, "y"),
    "empty table": (["classical", "--algo", "svm", "--data", "{root}/empty.csv", "--target", "y", "--out", "{root}/c"],
                    1, "empty.csv"),
    "missing --out": (["train", "vae"], 2, "required: --out"),
    "unknown flag": (["train", "vae", "--out", "{root}/x", "--no-such-flag"], 2, "unrecognized arguments"),
}


# Cases about a trained run need the runs: training them is what costs (large).
NEEDS_RUNS = {case for case, (argv, _, _) in ERROR_CASES.items()
              if any(part.startswith(("{root}/vae", "{root}/cyclegan")) for part in argv)}


@pytest.mark.parametrize("case", [pytest.param(case, marks=[pytest.mark.large] if case in NEEDS_RUNS else [])
                                  for case in ERROR_CASES])
def test_every_refusal_is_one_line_without_a_traceback(case, bad_files, request, capsys):
    argv, status, words = ERROR_CASES[case]
    root = request.getfixturevalue("trained_runs") if case in NEEDS_RUNS else bad_files
    argv = [part.format(root=root) for part in argv]
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("keras-bigml") and words.lower() in lines[0].lower(), lines[0]


@pytest.mark.large
def test_the_command_line_is_quiet_and_shows_no_traceback(tmp_path):
    quiet = subprocess.run(["keras-bigml", "train", "vae", "--data", "digits", *TINY_VAE, "--epochs", "1",
                            "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                           env={key: value for key, value in os.environ.items() if not key.startswith("TF_")})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    refused = subprocess.run(["keras-bigml", "train", "vae", "--epochs", "0", "--out", str(tmp_path / "x")],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    verbose = subprocess.run(["keras-bigml", "train", "vae", "--data", "no_such_set", "--out", str(tmp_path / "y"),
                              "--verbose"], capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


@pytest.mark.large
def test_the_cli_and_classical_commands_do_not_import_tensorflow(tmp_path):
    code = ("import sys\n"
            "from keras_bigml.cli import main\n"
            f"status = main(['classical', '--algo', 'decision_tree', '--data', 'iris', '--out', {str(tmp_path)!r}])\n"
            "print(status, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.splitlines()[-1] == "0 False", result.stderr[-2000:]
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c", "import keras_bigml.cli"],
                             capture_output=True, text=True, timeout=300)
    assert "tensorflow" not in imports.stderr and "keras_bigml.cli" in imports.stderr


@pytest.mark.large
def test_resume_with_another_latent_size_names_the_difference(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "vae", *TINY_VAE, "--epochs", "1", "--out", out]) == 0
    os.remove(os.path.join(out, "run.json"))
    assert main(["train", "vae", *TINY_VAE, "--epochs", "1", "--out", out]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["train", "vae", *TINY_VAE, "--epochs", "1", "--overwrite", "--out", out]) == 0
    from keras_bigml.runs import RunDirectory

    RunDirectory(out).update(status="failed")
    os.makedirs(os.path.join(out, "backup"))
    assert main(["train", "vae", *TINY_VAE[:-4], "--latent-dim", "3", "--filters", "8", "--resume", "--out", out]) == 1
    assert "latent_dim was 2, now 3" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    [], ["quickstart"], ["train"], ["train", "vae"], ["train", "gan"], ["train", "cgan"], ["train", "wgan-gp"],
    ["train", "cyclegan"], ["generate"], ["translate"], ["evaluate"], ["classical"], ["export"], ["profile"],
    ["explain"], ["shard"], ["predict"]])
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
    assert main(["classical", "--algo", "forest", "--out", str(tmp_path / "forest")]) == 2
    assert "forest" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n")
    assert main(["classical", "--algo", "svm", "--data", str(tmp_path / "t.csv"), "--target", "c",
                 "--out", str(tmp_path / "o")]) == 1
    assert "no target column 'c'" in capsys.readouterr().err


@pytest.mark.large
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


@pytest.mark.large
def test_train_cyclegan_then_translate(tmp_path, capsys):
    import tensorflow as tf
    from matplotlib.image import imread

    from keras_bigml.runs import load_run_model

    out = tmp_path / "run"
    assert main(["train", "cyclegan", "--data-a", "digits", "--data-b", "digits", "--split-b", "test",
                 "--channels-b", "3", "--image-size", "8", "--limit", "16", "--batch-size", "8", "--epochs", "2",
                 "--jitter",
                 "--generator-filters", "4", "--discriminator-filters", "4", "--residual-blocks", "1",
                 "--discriminator-layers", "1", "--seed", "0", "--out", str(out)]) == 0
    history = json.load(open(out / "history.json"))
    assert len(history["cycle_loss"]) == 2 and history["identity_loss"] == [0.0, 0.0]
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert sorted(tf.saved_model.load(str(out / "saved_model")).signatures) == ["a_to_b", "b_to_a", "serving_default"]
    model = load_run_model(str(out))
    assert model.image_shape_b == (8, 8, 3)
    # 2 epochs of 2 steps, the second half decaying: the learning rate has reached zero.
    assert float(model.network_optimizers()["generator_ab"].learning_rate) == 0.0
    translated = tmp_path / "translated"
    assert main(["translate", str(out), "--direction", "b2a", "--input", "digits", "--limit", "5",
                 "--out", str(translated)]) == 0
    assert "Translated 5 images (b2a)" in capsys.readouterr().out
    assert sorted(p.name for p in translated.iterdir()) == [f"{i:05d}.png" for i in range(5)] + ["grid.png"]
    assert imread(translated / "00000.png").shape[:2] == (8, 8)
    assert main(["translate", str(tmp_path / "nothing"), "--input", "digits", "--out", str(translated)]) == 1
    assert "No trained model" in capsys.readouterr().err


@pytest.mark.large
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
    # CyCADA's teacher trained on domain A's labels in the same command, frozen and saved with the model.
    assert main([*common, "--semantic-labels", "--semantic-epochs", "1", "--out", str(tmp_path / "taught")]) == 0
    from keras_bigml.runs import load_run_model

    taught = load_run_model(tmp_path / "taught")
    assert taught.semantic_classifier is not None and not taught.semantic_classifier.trainable
    assert taught.semantic_classifier.output.shape[-1] == 10
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in taught.semantic_classifier.layers)
    assert main([*common, "--semantic-labels", "--semantic-epochs", "1", "--semantic-architecture", "vgg",
                 "--out", str(tmp_path / "vgg")]) == 0
    vgg = load_run_model(tmp_path / "vgg").semantic_classifier
    assert not vgg.trainable and any(isinstance(layer, keras.layers.BatchNormalization) for layer in vgg.layers)
    assert json.load(open(tmp_path / "taught" / "history.json"))["semantic_loss"][0] > 0
    assert main([*common, "--semantic-labels", "--semantic-classifier", str(tmp_path / "digits.keras"),
                 "--out", str(tmp_path / "both")]) == 2


@pytest.mark.large
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


def test_profile_explain_and_export_a_classical_run(tmp_path, capsys):
    rows = np.random.default_rng(0).normal(size=(300, 3))
    table = tmp_path / "t.csv"
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["a", "b", "c"]).assign(constant=1.0)
    frame["y"] = (frame["a"] > 0).astype(int)
    frame["leak"] = frame["y"] * 2.0
    frame.to_csv(table, index=False)
    assert main(["profile", "--data", str(table), "--target", "y", "--out", str(tmp_path / "profile")]) == 0
    printed = capsys.readouterr().out
    assert "leak" in printed and "'leak'" in printed and "constant" in printed
    run = tmp_path / "forest"
    assert main(["classical", "--algo", "random_forest", "--data", str(table), "--target", "y",
                 "--out", str(run)]) == 0
    assert main(["explain", str(run), "--data", str(table), "--target", "y", "--method", "permutation"]) == 0
    ranked = capsys.readouterr().out.split("permutation: ")[1].split("\n")[0].split(", ")
    assert set(ranked[:2]) <= {"a", "leak"} and (run / "explain" / "explain.json").exists()
    frame.drop(columns="y").assign(id=range(300)).to_parquet(tmp_path / "new.parquet")
    assert main(["predict", str(run), "--data", str(tmp_path / "new.parquet"), "--keep", "id", "--out-of-core",
                 "--out", str(tmp_path / "scores")]) == 0
    assert "Scored 300 rows (out_of_core) into 1 parts" in capsys.readouterr().out


@pytest.mark.large
def test_shard_then_train_from_the_shards(tmp_path, capsys):
    assert main(["shard", "digits", "--out", str(tmp_path / "shards"), "--num-shards", "4"]) == 0
    assert "train: 1437 images in 4 shards" in capsys.readouterr().out
    assert main(["train", "vae", "--data", str(tmp_path / "shards"), *TINY_VAE, "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 0
