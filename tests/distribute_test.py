import numpy as np
import pytest
import tensorflow as tf
import keras

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
