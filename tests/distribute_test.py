import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.distribute import get_strategy, global_mean, replica_normal, replica_uniform, split_cpu


def test_strategies_by_name(cpu_devices, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert get_strategy("default").num_replicas_in_sync == 1
    assert get_strategy("auto").num_replicas_in_sync == 1
    mirrored = get_strategy("mirrored", devices=cpu_devices)
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == 2


def test_unknown_strategy_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'.*auto, default, mirrored, multiworker"):
        get_strategy("gpu")


def test_split_cpu_after_initialization_says_when_to_call_it(cpu_devices):
    assert split_cpu(2) == cpu_devices
    with pytest.raises(RuntimeError, match="before TensorFlow initializes"):
        split_cpu(3)


@pytest.mark.parametrize("draw", [replica_normal, replica_uniform])
def test_replica_noise_gives_two_replicas_the_single_replica_noise(cpu_devices, draw):
    single = draw(6, (3,), keras.random.SeedGenerator(7)).numpy()
    strategy = get_strategy("mirrored", devices=cpu_devices)
    with strategy.scope():
        seed = keras.random.SeedGenerator(7)
    per_replica = strategy.run(tf.function(lambda: draw(3, (3,), seed)))
    halves = [t.numpy() for t in strategy.experimental_local_results(per_replica)]
    np.testing.assert_allclose(np.concatenate(halves), single)
    assert not np.allclose(halves[0], halves[1])


def test_global_mean_divides_by_the_global_batch(cpu_devices):
    strategy = get_strategy("mirrored", devices=cpu_devices)
    per_replica = strategy.run(tf.function(lambda: global_mean(tf.constant([1.0, 3.0]))))
    assert [float(t) for t in strategy.experimental_local_results(per_replica)] == [1.0, 1.0]
    assert float(global_mean(tf.constant([1.0, 3.0]))) == 2.0


def test_the_same_configuration_returns_the_same_strategy(cpu_devices):
    assert get_strategy("mirrored", cpu_devices) is get_strategy("mirrored", list(cpu_devices))


MULTIWORKER_RUN = """
import hashlib, json, os, sys
import keras, numpy as np, tensorflow as tf
from keras_bigml.data import load_images
from keras_bigml.distribute import get_strategy
from keras_bigml.generative import GAN, VAE

strategy = get_strategy("auto")
result = {"replicas": strategy.num_replicas_in_sync,
          "multiworker": isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)}
for kind in ("vae", "gan"):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        if kind == "vae":
            model = VAE((8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
            model.compile(optimizer="adam")
        else:
            model = GAN((8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,), seed=0)
            model.compile()
    before = np.concatenate([w.numpy().ravel() for w in model.trainable_weights])
    history = model.fit(load_images("digits", limit=64, batch_size=16, shuffle=False, drop_remainder=True),
                        epochs=2, verbose=0).history
    after = np.concatenate([w.numpy().ravel() for w in model.trainable_weights])
    result[kind] = {"moved": float(np.abs(after - before).max()), "finite": bool(np.isfinite(after).all()),
                    "digest": hashlib.sha256(after.round(5).tobytes()).hexdigest(),
                    "history": {k: [float(x) for x in v] for k, v in history.items()}}
print(json.dumps(result))
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.large
def test_two_worker_processes_train_the_vae_and_gan_in_sync(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(MULTIWORKER_RUN)
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        processes.append(subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env))
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    results = [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]
    for result in results:
        assert result["multiworker"] and result["replicas"] == 2
        for kind in ("vae", "gan"):
            assert result[kind]["finite"] and result[kind]["moved"] > 1e-3
    for kind in ("vae", "gan"):
        # Synchronous training: both workers hold the same weights and report the same global losses.
        assert results[0][kind]["digest"] == results[1][kind]["digest"]
        assert results[0][kind]["history"] == results[1][kind]["history"]
