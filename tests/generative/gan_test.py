import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from keras_bigml.data import load_images
from keras_bigml.generative import GAN

TINY = dict(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,))


def digits(labels=False, limit=64, batch_size=16):
    return load_images("digits", labels=labels, limit=limit, batch_size=batch_size, seed=0)


@pytest.mark.large
@pytest.mark.parametrize("loss", ["bce", "lsgan", "hinge", "wgan-gp"])
def test_every_loss_trains_both_networks_and_logs_its_trackers(loss):
    gan = GAN(**TINY, discriminator_steps=2, seed=0)
    gan.compile(loss=loss)
    g_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    d_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    history = gan.fit(digits(), epochs=1, verbose=0).history
    expected = {"d_loss", "g_loss"} | ({"gradient_penalty"} if loss == "wgan-gp" else set())
    assert set(history) == expected and all(np.isfinite(v[0]) for v in history.values())
    assert int(gan.d_optimizer.iterations) == 2 * int(gan.g_optimizer.iterations) == 8
    assert all(not np.array_equal(a, b.numpy()) for a, b in zip(g_before, gan.generator.trainable_weights))
    # Hinge at initialization gives the output bias equal and opposite pushes from
    # real and fake examples, so only the kernels are certain to move.
    d_moved = [not np.array_equal(a, b.numpy()) for a, b in zip(d_before, gan.discriminator.trainable_weights)]
    assert sum(d_moved) >= len(d_moved) - 1


def test_evaluate_leaves_weights_alone():
    gan = GAN(**TINY, seed=0)
    gan.compile()
    before = [w.numpy().copy() for w in gan.weights]
    result = gan.evaluate(digits(), verbose=0, return_dict=True)
    assert set(result) == {"d_loss", "g_loss"}
    for a, b in zip(before, gan.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_moving_average_follows_the_generator_and_serves_samples():
    gan = GAN(**TINY, ema_decay=0.5, seed=0)
    gan.compile()
    z = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    gan.fit(digits(), epochs=2, verbose=0)
    raw = gan(z, training=True).numpy()
    averaged = gan.generate(z=z)
    assert not np.allclose(raw, averaged)
    weights = [w.numpy() for w in gan.generator.trainable_weights]
    averages = [w.numpy() for w in gan.ema_weights]
    assert all(np.abs(a - w).max() < np.abs(w).max() + 1e-6 for a, w in zip(averages, weights))
    no_average = GAN(**TINY, ema_decay=None, seed=0)
    np.testing.assert_allclose(no_average.generate(z=z), no_average(z, training=True), atol=1e-6)


def _scale_kernels(variables, factor):
    for variable in variables:
        if len(variable.shape) > 1:
            variable.assign(variable * factor)


def test_moving_average_measures_batch_norm_statistics_of_its_own_outputs():
    gan = GAN(**TINY, ema_decay=0.5, seed=0)
    gan.compile()
    gan.fit(digits(), epochs=1, verbose=0)
    # An average far from the generator: the generator's statistics no longer describe it.
    _scale_kernels(gan.ema_weights, 3.0)
    gan.ema_decay = 1.0 - 1e-7  # keep the average still while its statistics settle
    for _ in range(400):  # batch-norm momentum 0.99: 0.99**400 < 0.02 of the old value is left
        gan._update_average(None, 256)
    z = np.random.default_rng(1).standard_normal((2048, 4)).astype("float32")
    weights = [v.value for v in gan.ema_weights]
    batch_statistics, _ = gan.generator.stateless_call(
        weights, [v.value for v in gan.ema_statistics], z, training=True
    )
    with_generators, _ = gan.generator.stateless_call(
        weights, [v.value for v in gan.generator.non_trainable_variables], z, training=False
    )
    own = np.abs(gan.generate(z=z) * 2 - 1 - keras.ops.convert_to_numpy(batch_statistics)).mean()
    borrowed = np.abs(keras.ops.convert_to_numpy(with_generators - batch_statistics)).mean()
    assert own < 0.05 < borrowed


def test_file_without_average_statistics_samples_as_before_and_fit_starts_them(tmp_path):
    gan = GAN(**TINY, ema_decay=0.5, seed=0)
    gan.compile()
    gan.fit(digits(), epochs=1, verbose=0)
    gan.save_weights(tmp_path / "new.weights.h5")
    # The layout of a file saved before the average had statistics of its own.
    with h5py.File(tmp_path / "new.weights.h5", "r+") as file:
        own = file["vars"]
        for index in range(len(gan.ema_weights), len(gan.ema_weights) + len(gan.ema_statistics)):
            del own[str(index)]
    old_style = GAN(**TINY, ema_decay=0.5, seed=0)
    old_style.compile()
    old_style.load_weights(tmp_path / "new.weights.h5")
    z = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    weights = [v.value for v in gan.ema_weights]
    as_before, _ = gan.generator.stateless_call(
        weights, [v.value for v in gan.generator.non_trainable_variables], z, training=False
    )
    np.testing.assert_allclose(old_style.generate(z=z), (np.asarray(as_before) + 1) / 2, atol=1e-6)
    at_start = {}
    record = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: at_start.update(
        average=[v.numpy() for v in old_style.ema_statistics],
        generator=[v.numpy() for v in old_style.generator.non_trainable_variables]))
    old_style.fit(digits(), epochs=1, verbose=0, callbacks=[record])
    # The file's generator statistics are trained ones; the average's start from them, not from
    # the fresh model's initial values.
    for average, generator in zip(at_start["average"], at_start["generator"]):
        np.testing.assert_array_equal(average, generator)
    assert not old_style._statistics_from_generator


def test_a_gan_saved_with_keras_layers_loads_into_ours(tmp_path, monkeypatch):
    from keras_bigml.generative import networks

    with monkeypatch.context() as patched:  # the networks of releases before our layers
        patched.setattr(networks, "BatchNormalization", keras.layers.BatchNormalization)
        patched.setattr(networks, "LeakyReLU", keras.layers.LeakyReLU)
        before = GAN(**TINY, seed=0)
        before.compile()
        before.fit(digits(), epochs=1, verbose=0)
        before.save(tmp_path / "before.keras")
    assert not any(isinstance(layer, networks.BatchNormalization) for layer in before.generator.layers)
    loaded = keras.saving.load_model(tmp_path / "before.keras")
    fused = [layer for layer in loaded.generator.layers if isinstance(layer, networks.BatchNormalization)]
    assert fused and fused[0].moving_mean.numpy().any()  # trained statistics, not fresh zeros
    z = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    np.testing.assert_allclose(loaded.generate(z=z), before.generate(z=z), atol=1e-5)
    assert not any(isinstance(layer, networks.LeakyReLU) for layer in before.discriminator.layers)
    assert any(isinstance(layer, networks.LeakyReLU) for layer in loaded.discriminator.layers)
    images = np.random.default_rng(1).uniform(-1, 1, (4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded.discriminator(images), before.discriminator(images), atol=1e-6)


@pytest.mark.large
def test_gan_and_cyclegan_training_steps_keep_grappler_fusions(tmp_path):
    """Keras's LeakyReLU made grappler's remapper fail on the whole step of the GAN and the
    CycleGAN (TensorFlow 2.21 with oneDNN): its gradient reads the BiasAdd that the remapper
    fuses away, and so did WGAN-GP's second derivative through our layer until its output was
    held constant there. The error is logged from C++, so a fresh process with TensorFlow's
    logging on shows it."""
    script = tmp_path / "train.py"
    script.write_text(
        "import numpy as np\n"
        "import tensorflow as tf\n"
        "from keras_bigml.generative import GAN, CycleGAN\n"
        "for loss in ('bce', 'wgan-gp'):  # the critic's second derivative too\n"
        "    gan = GAN((8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8, 8), seed=0)\n"
        "    gan.compile(loss=loss)\n"
        "    gan.fit(np.zeros((64, 8, 8, 1), 'float32'), batch_size=16, epochs=1, verbose=0)\n"
        "cyclegan = CycleGAN((8, 8, 1), (8, 8, 1), generator_filters=4, discriminator_filters=4,\n"
        "                    residual_blocks=1, discriminator_layers=1, seed=0)\n"
        "cyclegan.compile()\n"
        "images = np.zeros((16, 8, 8, 1), 'float32')\n"
        "cyclegan.fit(tf.data.Dataset.from_tensor_slices((images, images)).batch(8), epochs=1, verbose=0)\n"
        "print('trained')\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"})
    assert "trained" in result.stdout, result.stderr[-2000:]
    assert "remapper failed" not in result.stderr


def test_conditional_gan_needs_labels_and_generates_per_class():
    gan = GAN(**TINY, num_classes=10, seed=0)
    gan.compile()
    gan.fit(digits(labels=True), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"conditional.*\(images, labels\)"):
        gan.fit(digits(), epochs=1, verbose=0)
    z = np.zeros((2, 4), np.float32)
    assert not np.allclose(gan.generate(z=z, labels=0), gan.generate(z=z, labels=9))
    assert gan.generate(5).shape == (5, 8, 8, 1)


def test_conditional_batch_norm_round_trips_and_files_saved_before_it_load_without_it(tmp_path):
    gan = GAN(**TINY, num_classes=3, conditional_batch_norm=True, seed=0)
    gan.compile()
    assert gan.generator.count_params() > GAN(**TINY, num_classes=3).generator.count_params()
    gan.save(tmp_path / "cbn.keras")
    loaded = keras.saving.load_model(tmp_path / "cbn.keras")
    z = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    assert loaded.conditional_batch_norm
    np.testing.assert_array_equal(loaded.generate(z=z, labels=[0, 1, 2]), gan.generate(z=z, labels=[0, 1, 2]))
    config = gan.get_config()
    del config["conditional_batch_norm"]  # as written before the option existed
    assert not GAN.from_config(config).conditional_batch_norm


def test_spectral_norm_round_trips_and_files_saved_before_it_load_without_it(tmp_path):
    from keras_bigml.generative.networks import SpectralConv2D

    gan = GAN(**TINY, num_classes=10, spectral_norm=True, seed=0)
    gan.compile()
    assert any(isinstance(layer, SpectralConv2D) for layer in gan.discriminator.layers)
    vectors = [v for v in gan.discriminator.non_trainable_variables if "singular_vector" in v.path]
    before = [v.numpy().copy() for v in vectors]
    gan.fit(digits(labels=True, limit=16), epochs=1, verbose=0)  # training calls refine the estimates
    assert len(vectors) == 3 and all(not np.array_equal(a, v.numpy()) for a, v in zip(before, vectors))
    assert not any(isinstance(layer, SpectralConv2D) for layer in GAN(**TINY).discriminator.layers)
    gan.save(tmp_path / "sn.keras")
    loaded = keras.saving.load_model(tmp_path / "sn.keras")
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    assert loaded.spectral_norm
    np.testing.assert_array_equal(loaded.discriminator([images, np.array([0, 9])]),
                                  gan.discriminator([images, np.array([0, 9])]))
    config = gan.get_config()
    del config["spectral_norm"]  # as written before the option existed
    assert not GAN.from_config(config).spectral_norm


def test_seeded_noise_is_reproducible():
    first, second = GAN(**TINY, seed=3), GAN(**TINY, seed=3)
    second.set_weights(first.get_weights())
    np.testing.assert_array_equal(first.generate(4), second.generate(4))


@pytest.mark.large
def test_save_and_load_keep_both_optimizers(tmp_path):
    gan = GAN(**TINY, num_classes=10, seed=0)
    gan.compile(loss="hinge", d_optimizer=keras.optimizers.Adam(3e-4), g_optimizer=keras.optimizers.RMSprop(1e-4))
    gan.fit(digits(labels=True), epochs=1, verbose=0)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    assert loaded.get_config() == gan.get_config() and loaded.loss_kind == "hinge"
    assert isinstance(loaded.g_optimizer, keras.optimizers.RMSprop)
    for mine, theirs in ((gan.d_optimizer, loaded.d_optimizer), (gan.g_optimizer, loaded.g_optimizer)):
        assert len(mine.variables) == len(theirs.variables) > 1
        for a, b in zip(mine.variables, theirs.variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(gan.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded.fit(digits(labels=True), epochs=1, verbose=0)
    assert int(loaded.g_optimizer.iterations) == 8


def test_user_supplied_networks_round_trip(tmp_path):
    generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Reshape((4, 4, 1))])
    discriminator = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    gan = GAN(image_shape=(4, 4, 1), latent_dim=3, generator=generator, discriminator=discriminator)
    gan.compile()
    gan.fit(load_images("digits", image_size=4, limit=32), epochs=1, verbose=0)
    gan.save(tmp_path / "custom.keras")
    loaded = keras.saving.load_model(tmp_path / "custom.keras")
    z = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(loaded.generate(z=z), gan.generate(z=z), atol=1e-6)


@pytest.mark.parametrize("options, message", [
    (dict(discriminator_steps=0), "discriminator_steps must be at least 1"),
    (dict(ema_decay=1.5), "ema_decay must lie in"),
    (dict(image_shape=(10, 10, 1), generator_filters=(8, 8)), "multiples of 4"),
])
def test_bad_configuration_is_named(options, message):
    with pytest.raises(ValueError, match=message):
        GAN(**{**TINY, **options})


def test_bad_compile_and_fit_before_compile():
    gan = GAN(**TINY)
    with pytest.raises(ValueError, match="must call `compile"):
        gan.fit(digits(), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Unknown GAN loss 'wasserstein'"):
        gan.compile(loss="wasserstein")
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="optimizer each"):
        gan.compile(d_optimizer=shared, g_optimizer=shared)


def test_images_of_the_wrong_shape_are_named():
    gan = GAN(**TINY, seed=0)
    gan.compile()
    with pytest.raises(ValueError, match=r"GAN takes images of shape \(8, 8, 1\), got \(16, 16, 1\)"):
        gan.fit(load_images("digits", image_size=16, limit=16), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"got \(8, 8, 3\): load them with image_size=8 and channels=1"):
        gan.fit(load_images("digits", channels=3, limit=16), epochs=1, verbose=0)


def seeded_run():
    keras.utils.set_random_seed(0)
    gan = GAN(**TINY, num_classes=10, seed=0)
    gan.compile()
    gan.fit(load_images("digits", labels=True, limit=64, batch_size=16, seed=0), epochs=2, verbose=0)
    return [w.numpy() for w in gan.weights]


@pytest.mark.large
def test_two_seeded_runs_give_identical_weights():
    first, second = seeded_run(), seeded_run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.large
def test_wgan_gp_interpolates_with_a_fresh_uniform_alpha_per_example(monkeypatch):
    """The critic's gradient is penalized at alpha_i * real_i + (1 - alpha_i) * fake_i, one alpha_i ~ U(0, 1)
    per example (one alpha per batch is a known bug elsewhere), drawn again for each discriminator step."""
    import tensorflow as tf
    from scipy import stats

    from keras_bigml.generative import losses

    penalty = losses.gradient_penalty
    alphas = []

    def recording_penalty(critic, real, fake, alpha):
        # Runs inside the traced train_step: hand the drawn values out to Python.
        tf.numpy_function(lambda values: alphas.append(values.copy()) or np.float32(0), [alpha], tf.float32)
        return penalty(critic, real, fake, alpha)

    monkeypatch.setattr(losses, "gradient_penalty", recording_penalty)
    gan = GAN(**TINY, discriminator_steps=2, seed=0)
    gan.compile(loss="wgan-gp")
    gan.fit(digits(limit=512, batch_size=512), epochs=1, verbose=0)
    assert len(alphas) == 2 and all(alpha.shape == (512,) for alpha in alphas)
    for alpha in alphas:
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        assert len(np.unique(alpha)) == 512
        assert stats.kstest(alpha, "uniform").pvalue > 0.001
    assert not np.allclose(alphas[0], alphas[1])


def test_copy_state_from_takes_the_weights_and_which_statistics_the_average_samples_with():
    source, target = GAN(**TINY, seed=0), GAN(**TINY, seed=1)
    source._statistics_from_generator = True   # as loaded from a file saved without them
    target.copy_state_from(source)
    assert target._statistics_from_generator
    for ours, theirs in zip(target.weights, source.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    z = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_array_equal(target.generate(z=z), source.generate(z=z))
