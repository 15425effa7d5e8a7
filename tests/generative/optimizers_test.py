import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.distribute import get_strategy
from keras_bigml.generative.optimizers import FusedAdam, network_optimizer, resolve_optimizer


def test_default_given_and_loss_scaled_optimizers():
    float32, float16 = keras.DTypePolicy("float32"), keras.DTypePolicy("mixed_float16")
    assert isinstance(network_optimizer(None, lambda: keras.optimizers.Adam(0.1), float32), keras.optimizers.Adam)
    assert isinstance(network_optimizer("rmsprop", None, float32), keras.optimizers.RMSprop)
    assert isinstance(network_optimizer("adam", None, float32), FusedAdam)
    scaled = network_optimizer(keras.optimizers.SGD(), None, float16)
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
    assert network_optimizer(scaled, None, float16) is scaled


def test_resolve_optimizer_keeps_objects_and_other_names():
    given = keras.optimizers.Adam(0.1)
    assert resolve_optimizer(given) is given
    assert type(resolve_optimizer("adamw")) is keras.optimizers.AdamW
    assert isinstance(resolve_optimizer("ADAM"), FusedAdam)


def _train(optimizer, gradients, initial):
    """Apply ``gradients`` one step each inside a tf.function; return the variable and the optimizer."""
    variable = keras.Variable(initial)
    optimizer.build([variable])
    step = tf.function(lambda gradient: optimizer.apply([gradient], [variable]))
    for gradient in gradients:
        step(tf.constant(gradient))
    return variable.numpy(), optimizer


@pytest.mark.parametrize("settings", [
    {"learning_rate": 1e-3},
    {"learning_rate": 2e-4, "beta_1": 0.5},
    {"learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9, "epsilon": 1e-3},
])
def test_fused_adam_follows_keras_adam_step_by_step(settings):
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(64, 33)).astype("float32")
    gradients = [rng.normal(scale=10.0 ** rng.uniform(-4, 1), size=initial.shape).astype("float32")
                 for _ in range(12)]
    fused, fused_optimizer = _train(FusedAdam(**settings), gradients, initial)
    plain, plain_optimizer = _train(keras.optimizers.Adam(**settings), gradients, initial)
    assert np.abs(fused - initial).max() > 1e-5  # the weights moved
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-7)
    # TensorFlow's kernel takes 1 - beta_2 in float32 (1 - float32(0.999) is 0.999987e-3), Keras in
    # float64: the second moments differ by 1.3e-5 relative, the weights far less.
    for fused_slot, plain_slot in zip(fused_optimizer.variables, plain_optimizer.variables):
        plain_slot = plain_slot.numpy()
        np.testing.assert_allclose(fused_slot.numpy(), plain_slot, rtol=3e-5, atol=1e-5 * np.abs(plain_slot).max())
    assert int(fused_optimizer.iterations.numpy()) == len(gradients)


def test_learning_rate_schedule_and_amsgrad():
    rng = np.random.default_rng(1)
    initial = rng.normal(size=(10,)).astype("float32")
    gradients = [rng.normal(size=(10,)).astype("float32") for _ in range(6)]
    schedule = lambda: keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    fused, _ = _train(FusedAdam(schedule()), gradients, initial)
    plain, _ = _train(keras.optimizers.Adam(schedule()), gradients, initial)
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-7)
    fused, _ = _train(FusedAdam(0.1, amsgrad=True), gradients, initial)
    plain, _ = _train(keras.optimizers.Adam(0.1, amsgrad=True), gradients, initial)
    np.testing.assert_allclose(fused, plain, rtol=1e-6)


def test_sparse_gradients_of_an_embedding():
    def trained(optimizer):
        keras.utils.set_random_seed(0)
        embedding = keras.layers.Embedding(5, 3)
        embedding.build((None,))
        optimizer.build(embedding.trainable_variables)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(embedding(tf.constant([1, 3, 3])) ** 2)
            gradients = tape.gradient(loss, embedding.trainable_variables)
            assert isinstance(gradients[0], tf.IndexedSlices)
            optimizer.apply(gradients, embedding.trainable_variables)
        return embedding.embeddings.numpy()

    np.testing.assert_allclose(trained(FusedAdam(0.1)), trained(keras.optimizers.Adam(0.1)), rtol=1e-6)


def test_two_replicas_update_like_one(cpu_devices):
    rng = np.random.default_rng(2)
    initial = rng.normal(size=(8, 4)).astype("float32")
    per_replica = [rng.normal(size=(8, 4)).astype("float32") for _ in range(2)]
    strategy = get_strategy("mirrored", cpu_devices)  # one per process: the tests share it
    with strategy.scope():
        variable = keras.Variable(initial)
        optimizer = FusedAdam(0.01)
        optimizer.build([variable])

    @tf.function
    def step():
        def replica_step():
            index = tf.distribute.get_replica_context().replica_id_in_sync_group
            gradient = tf.gather(tf.constant(np.stack(per_replica)), index)
            optimizer.apply([gradient], [variable])
        strategy.run(replica_step)

    for _ in range(3):
        step()
    expected, _ = _train(keras.optimizers.Adam(0.01), [per_replica[0] + per_replica[1]] * 3, initial)
    copies = variable.value.values
    assert len(copies) == 2
    for copy in copies:
        np.testing.assert_allclose(copy.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_saved_with_its_slots(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=FusedAdam(0.05, beta_1=0.5), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is FusedAdam
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
