import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.data import load_images
from keras_bigml.errors import ConfigError, ModelFileError, RunError, UntrustedFileError
from keras_bigml.generative import VAE
from keras_bigml.runs import LOCK_FILE, RunDirectory, fit_and_save, load_keras_file, load_run_model


@pytest.mark.large
def test_fit_and_save_writes_a_complete_run_directory(tmp_path):
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
    vae.compile(optimizer="adam")
    paths = fit_and_save(vae, load_images(limit=64), str(tmp_path), epochs=2, verbose=0)
    history = json.load(open(paths["history"]))
    assert len(history["loss"]) == 2 and set(history) == {"loss", "reconstruction_loss", "kl_loss"}
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert "decode" in tf.saved_model.load(paths["saved_model"]).signatures
    reloaded = load_run_model(str(tmp_path))
    assert int(reloaded.optimizer.iterations) == int(vae.optimizer.iterations)


def test_load_run_model_errors(tmp_path):
    with pytest.raises(ModelFileError, match="No trained model"):
        load_run_model(str(tmp_path))
    (tmp_path / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="not a readable Keras model"):
        load_run_model(str(tmp_path))


def test_a_keras_file_with_a_lambda_layer_is_refused_unless_allowed(tmp_path):
    marker = tmp_path / "marker"
    inputs = keras.Input((2,))
    # Loading this model unsafely deserializes and runs the lambda, which creates the marker file.
    code = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    model = keras.Model(inputs, keras.layers.Lambda(eval(code))(inputs))
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran the lambda once
    with pytest.raises(UntrustedFileError, match=r"lambda.keras holds Python code.*--allow-unsafe-deserialization"):
        load_keras_file(tmp_path / "lambda.keras")
    assert not marker.exists()
    loaded = load_keras_file(tmp_path / "lambda.keras", allow_unsafe=True)
    loaded(np.zeros((1, 2), np.float32))
    assert marker.exists()


RESUMABLE_RUN = """
import json, os, signal, sys
import keras
from keras_bigml.data import load_images, pair_unpaired
from keras_bigml.generative import CycleGAN, GAN, VAE
from keras_bigml.generative.schedules import LinearDecay
from keras_bigml.runs import fit_and_save

kind, out, mode = sys.argv[1:4]
keras.utils.set_random_seed(0)
# Unshuffled data: a resumed process then meets the batches an uninterrupted one would.
if kind == "cyclegan":
    side = lambda split: load_images("digits", split=split, batch_size=None, image_size=8, limit=32, shuffle=False)
    data = pair_unpaired(side("train"), side("test"), batch_size=8)
    model = CycleGAN((8, 8, 1), (8, 8, 1), generator_filters=4, discriminator_filters=4, residual_blocks=1,
                     discriminator_layers=1, pool_size=6, seed=0)
    model.compile(learning_rate=LinearDecay(1e-3, 8, 8))
    optimizers = list(model.optimizers.values())
else:
    data = load_images("digits", limit=64, batch_size=16, shuffle=False)
    if kind == "gan":
        model = GAN((8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,), ema_decay=0.9, seed=0)
        model.compile()
        optimizers = [model.d_optimizer, model.g_optimizer]
    else:
        model = VAE((8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
        model.compile(optimizer="adam")
        optimizers = [model.optimizer]


class KillMidEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):  # once per call of several steps, before the epoch ends
        if self.epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)


class KillAfterLastEpoch(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        os.kill(os.getpid(), signal.SIGKILL)


killers = {"kill": [KillMidEpoch()], "kill_at_end": [KillAfterLastEpoch()]}
fit_and_save(model, data, out, epochs=4, verbose=0, callbacks=killers.get(mode, []), resume=mode == "resume",
             arguments={"kind": kind})
print(json.dumps([int(optimizer.iterations) for optimizer in optimizers]))
"""


def run_training(tmp_path, kind, out, mode):
    script = tmp_path / "run.py"
    script.write_text(RESUMABLE_RUN)
    return subprocess.run([sys.executable, str(script), kind, str(out), mode], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.large
@pytest.mark.parametrize("kind", ["vae", "gan", "cyclegan"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, kind):
    plain = run_training(tmp_path, kind, tmp_path / "plain", "plain")
    assert plain.returncode == 0, plain.stderr[-2000:]
    killed = run_training(tmp_path, kind, tmp_path / "resumed", "kill")
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "resumed" / "backup").is_dir() and not (tmp_path / "resumed" / "model.keras").exists()
    assert RunDirectory(tmp_path / "resumed").info["status"] == "running"
    assert len(json.load(open(tmp_path / "resumed" / "history.json"))["loss" if kind == "vae" else "g_loss"]) == 2
    resumed = run_training(tmp_path, kind, tmp_path / "resumed", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.splitlines()[-1]) == json.loads(plain.stdout.splitlines()[-1])
    histories = [json.load(open(tmp_path / name / "history.json")) for name in ("plain", "resumed")]
    assert histories[0].keys() == histories[1].keys()
    for name, values in histories[0].items():
        assert len(values) == len(histories[1][name]) == 4
        np.testing.assert_allclose(values, histories[1][name], rtol=1e-4, err_msg=name)
    models = [load_run_model(str(tmp_path / name)) for name in ("plain", "resumed")]
    for a, b in zip(models[0].weights, models[1].weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)
    assert not (tmp_path / "resumed" / "backup").exists()
    assert RunDirectory(tmp_path / "resumed").info["status"] == "finished"


@pytest.mark.large
def test_run_killed_between_its_last_epoch_and_the_save_is_finished_by_resume(tmp_path):
    plain = run_training(tmp_path, "vae", tmp_path / "plain", "plain")
    assert plain.returncode == 0, plain.stderr[-2000:]
    killed = run_training(tmp_path, "vae", tmp_path / "run", "kill_at_end")
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "run"
    assert not (run / "model.keras").exists() and (run / "backup").is_dir() and (run / LOCK_FILE).exists()
    resumed = run_training(tmp_path, "vae", run, "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Taking over" in resumed.stderr
    assert {"model.keras", "saved_model", "samples.png", "history.json", "run.json", "grids"} <= set(os.listdir(run))
    assert not (run / "backup").exists() and not (run / LOCK_FILE).exists()
    assert json.loads(resumed.stdout.splitlines()[-1]) == json.loads(plain.stdout.splitlines()[-1])
    for a, b in zip(load_run_model(tmp_path / "plain").weights, load_run_model(run).weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def tiny_vae(latent_dim=2):
    vae = VAE(image_shape=(8, 8, 1), latent_dim=latent_dim, filters=(8,), hidden_units=16, seed=0)
    vae.compile(optimizer="adam")
    return vae


def test_resume_without_a_backup_is_refused(tmp_path):
    with pytest.raises(RunError, match="Nothing to resume"):
        fit_and_save(tiny_vae(), load_images(limit=16), str(tmp_path), epochs=1, verbose=0, resume=True)


@pytest.mark.large
def test_a_finished_run_is_not_overwritten_without_asking(tmp_path):
    data = load_images(limit=16)
    fit_and_save(tiny_vae(), data, str(tmp_path), epochs=1, verbose=0, arguments={"latent_dim": 2})
    before = (tmp_path / "model.keras").read_bytes()
    with pytest.raises(RunError, match="holds a finished vae run: pass overwrite"):
        fit_and_save(tiny_vae(), data, str(tmp_path), epochs=1, verbose=0)
    with pytest.raises(RunError, match="finished vae run: nothing to resume"):
        fit_and_save(tiny_vae(), data, str(tmp_path), epochs=1, verbose=0, resume=True)
    assert (tmp_path / "model.keras").read_bytes() == before
    (tmp_path / "grids" / "stale.png").write_bytes(b"old")
    fit_and_save(tiny_vae(3), data, str(tmp_path), epochs=1, verbose=0, overwrite=True, arguments={"latent_dim": 3})
    assert load_run_model(tmp_path).latent_dim == 3 and not (tmp_path / "grids" / "stale.png").exists()
    assert RunDirectory(tmp_path).info["arguments"] == {"latent_dim": 3}
    with pytest.raises(ConfigError, match="either resume"):
        fit_and_save(tiny_vae(), data, str(tmp_path), epochs=1, verbose=0, resume=True, overwrite=True)


def test_a_directory_with_other_files_is_not_taken_for_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match=r"is not empty \(notes.txt\) and holds no run"):
        fit_and_save(tiny_vae(), load_images(limit=16), str(tmp_path), epochs=1, verbose=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_resume_with_other_arguments_is_refused_and_names_the_difference(tmp_path):
    run = RunDirectory(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt), run.open("vae", {"latent_dim": 2}):
        raise KeyboardInterrupt
    assert not (tmp_path / "run").exists()  # stopped before it wrote anything: nothing left behind
    with pytest.raises(KeyboardInterrupt), run.open("vae", {"latent_dim": 2, "learning_rate": 0.001}):
        (tmp_path / "run" / "history.json").write_text("{}")
        raise KeyboardInterrupt
    assert run.info["status"] == "failed" and run.info["error"] == "KeyboardInterrupt"
    tmp_path = tmp_path / "run"
    (tmp_path / "backup").mkdir()
    with pytest.raises(RunError, match=r"latent_dim was 2, now 16; learning_rate was 0.001, now 0.01"), \
            run.open("vae", {"latent_dim": 16, "learning_rate": 0.01}, resume=True):
        pass
    # An option added since the run started matches while it is off, and is named when it is on.
    with pytest.raises(RunError, match=r"^Cannot resume .*: pixelcnn_layers was None, now 1\. "):
        with run.open("vae", {"latent_dim": 2, "learning_rate": 0.001, "pixelcnn_layers": 1}, resume=True):
            pass
    with pytest.raises(KeyboardInterrupt), run.open("vae", {"latent_dim": 2, "learning_rate": 0.001,
                                                            "pixelcnn_layers": 0}, resume=True):
        raise KeyboardInterrupt
    with pytest.raises(RunError, match="kind was 'vae', now 'gan'"), run.open("gan", {"latent_dim": 2,
                                                                                   "learning_rate": 0.001},
                                                                              resume=True):
        pass


@pytest.mark.large
def test_a_backup_without_its_epoch_record_is_not_resumed(tmp_path):
    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_and_save(tiny_vae(), load_images(limit=16), str(tmp_path), epochs=2, verbose=0, callbacks=[Stop()])
    os.remove(tmp_path / "backup" / "training_metadata.json")
    with pytest.raises(RunError, match="training_metadata.json is missing.*--overwrite"):
        fit_and_save(tiny_vae(), load_images(limit=16), str(tmp_path), epochs=2, verbose=0, resume=True)


def test_a_second_process_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    import socket

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(f"{sleeper.pid}@{socket.gethostname()}")
        with pytest.raises(RunError, match=f"in use by process {sleeper.pid}"), RunDirectory(tmp_path).lock():
            pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.warns(UserWarning, match=f"Taking over .*left by process {sleeper.pid}"):
        with RunDirectory(tmp_path).lock():
            assert (tmp_path / LOCK_FILE).read_text().startswith(f"{os.getpid()}@")
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.large
def test_non_finite_loss_stops_training_and_keeps_the_last_good_epoch(tmp_path):
    from keras_bigml.errors import TrainingDivergedError

    def tiny_vae():
        vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        return vae

    class BlowUpAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.good_weights = [w.numpy().copy() for w in self.model.weights]
            self.model.optimizer.learning_rate.assign(1e30)

    blow_up, data = BlowUpAfterFirstEpoch(), load_images(limit=64, batch_size=16, shuffle=False)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, batch \d+: \w*loss is (nan|inf).*last good epoch"):
        fit_and_save(tiny_vae(), data, str(tmp_path), epochs=3, verbose=0, callbacks=[blow_up])
    assert not (tmp_path / "model.keras").exists()
    assert RunDirectory(tmp_path).info["status"] == "failed"
    assert "TrainingDivergedError" in RunDirectory(tmp_path).info["error"]
    # Resuming a 1-epoch run restores the backup and trains no further: the good weights.
    restored = tiny_vae()
    fit_and_save(restored, data, str(tmp_path), epochs=1, verbose=0, resume=True)
    for good, weight in zip(blow_up.good_weights, restored.weights):
        np.testing.assert_array_equal(good, weight.numpy())
    assert float(restored.optimizer.learning_rate) == pytest.approx(1e-3)


def test_crash_while_saving_keeps_the_previous_model_file(tmp_path, monkeypatch):
    from keras_bigml.runs import save_run

    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
    vae.compile(optimizer="adam")
    paths = save_run(vae, {"loss": [1.0]}, str(tmp_path))
    before = open(paths["model"], "rb").read()

    def write_half_then_crash(self, filepath, **kwargs):
        open(filepath, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", write_half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_run(vae, {"loss": [0.5]}, str(tmp_path))
    assert open(paths["model"], "rb").read() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "model.keras", "samples.png", "saved_model"]
    assert json.load(open(paths["history"])) == {"loss": [1.0]}
