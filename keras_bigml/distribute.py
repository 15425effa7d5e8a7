"""Distribution strategies by name, simulated CPU replicas, replica-aware noise.

Example:

>>> strategy = get_strategy("default")
>>> strategy.num_replicas_in_sync
1
"""

import json
import os
from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from keras_bigml.errors import ConfigError

STRATEGY_NAMES = ("auto", "default", "mirrored", "multiworker")
_STRATEGIES = {}


def get_strategy(name: str = "auto", devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Return a `tf.distribute.Strategy` chosen by name.

    Parameters
    ----------
    name : str
        ``"auto"``: multi-worker when ``TF_CONFIG`` names several workers, mirrored
        when this machine has two or more GPUs, else the default strategy.
        ``"default"``: no distribution. ``"mirrored"``: all local GPUs, or the
        given ``devices`` (e.g. logical CPUs from :func:`split_cpu`).
        ``"multiworker"``: `MultiWorkerMirroredStrategy` configured by ``TF_CONFIG``.
    devices : list of str, optional
        Devices for ``"mirrored"``.

    Asking twice for the same configuration returns the same strategy.
    """
    if name not in STRATEGY_NAMES:
        raise ConfigError(f"Unknown strategy {name!r}: use one of {', '.join(STRATEGY_NAMES)}.")
    if name == "auto":
        if _tf_config_workers() > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    # One strategy per configuration and process: TensorFlow's collective ops
    # mix up the instance keys of several live strategies and then fail.
    key = (name, tuple(devices or ()))
    if key not in _STRATEGIES:
        if name == "mirrored":
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices)
        else:
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[key]


def split_cpu(num_devices: int) -> list[str]:
    """Split the physical CPU into ``num_devices`` logical devices; return their names.

    Must run before TensorFlow initializes its devices (before any op runs), so
    call it first thing in a test session or script.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != num_devices:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
            )
        except RuntimeError:
            raise RuntimeError(
                f"split_cpu({num_devices}) must run before TensorFlow initializes its "
                "devices; call it before building any model or tensor."
            ) from None
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def replica_normal(batch_size: int, shape: Sequence[int], seed: "keras.random.SeedGenerator | int | None",
                   dtype: str = "float32") -> tf.Tensor:
    """Standard normal noise of shape ``(batch_size, *shape)`` for this replica's batch.

    Each replica draws the noise of the whole global batch from the shared seed
    and keeps its own slice, so that N replicas see exactly the noise one replica
    would see for the same global batch, and no two replicas share samples.
    """
    return _replica_slice(keras.random.normal, batch_size, shape, seed, dtype)


def replica_uniform(batch_size: int, shape: Sequence[int], seed: "keras.random.SeedGenerator | int | None",
                    dtype: str = "float32") -> tf.Tensor:
    """Uniform noise in [0, 1), sliced per replica like :func:`replica_normal`."""
    return _replica_slice(keras.random.uniform, batch_size, shape, seed, dtype)


def _replica_slice(draw, batch_size, shape, seed, dtype):
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return draw((batch_size, *shape), seed=seed, dtype=dtype)
    noise = draw((batch_size * replicas, *shape), seed=seed, dtype=dtype)
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * batch_size
    return noise[start : start + batch_size]


def global_mean(per_example_loss: tf.Tensor) -> tf.Tensor:
    """Mean of per-example losses over the global batch (correct under any strategy).

    Gradients are summed across replicas, so each replica divides its sum by the
    global batch size; with one replica this is the plain mean.
    """
    per_example_loss = tf.cast(per_example_loss, tf.float32)
    return tf.nn.compute_average_loss(per_example_loss)


def step_logs(logs: Mapping[str, tf.Tensor]) -> Mapping[str, tf.Tensor]:
    """Return a ``train_step``/``test_step`` result in a form Keras reduces under any strategy.

    Keras 3 reduces step results over several workers with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails for scalars
    (tensorflow/tensorflow#72388). There each value gets a leading axis of
    length 1, which that reduction removes again; elsewhere ``logs`` is unchanged.
    """
    strategy = tf.distribute.get_strategy()
    if not tf.distribute.has_strategy() or len(strategy.extended.worker_devices) >= strategy.num_replicas_in_sync:
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def _tf_config_workers():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    return len(config.get("cluster", {}).get("worker", []))
