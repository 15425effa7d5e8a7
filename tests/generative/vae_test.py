import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.data import load_images
from keras_bigml.generative import VAE

TINY = dict(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)


def digits(labels=False, limit=128, batch_size=32):
    return load_images("digits", labels=labels, limit=limit, batch_size=batch_size, seed=0)


@pytest.mark.large
def test_training_lowers_the_loss_and_logs_every_tracker():
    vae = VAE(**TINY, seed=1)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(digits(limit=None), epochs=3, verbose=0).history
    assert sorted(history) == ["kl_loss", "loss", "reconstruction_loss"]
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    np.testing.assert_allclose(
        history["loss"], np.add(history["reconstruction_loss"], history["kl_loss"]), rtol=1e-5
    )


def test_evaluate_reports_losses_without_changing_weights():
    vae = VAE(**TINY, seed=1)
    vae.compile(optimizer="adam")
    before = [w.numpy().copy() for w in vae.trainable_weights]
    result = vae.evaluate(digits(), verbose=0, return_dict=True)
    assert set(result) == {"loss", "reconstruction_loss", "kl_loss"} and result["loss"] > 0
    for old, new in zip(before, vae.trainable_weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_beta_weights_the_kl_term_in_the_loss():
    vae = VAE(**TINY, beta=4.0, seed=1)
    vae.compile(optimizer="adam")
    result = vae.evaluate(digits(), verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(result["reconstruction_loss"] + 4 * result["kl_loss"], rel=1e-5)
    # The ELBO itself has no KL weight; the trackers keep test_metrics' own evaluation.
    elbo = vae.test_metrics(digits())["test_negative_elbo"]
    assert elbo == pytest.approx(float(vae.reconstruction_tracker.result() + vae.kl_tracker.result()), rel=1e-6)
    assert elbo != pytest.approx(float(vae.loss_tracker.result()), rel=1e-6)


def test_call_reconstructs_and_generate_samples_in_unit_range():
    vae = VAE(**TINY)
    images = next(iter(digits()))
    reconstruction = vae(images)
    assert reconstruction.shape == images.shape and reconstruction.dtype == tf.float32
    samples = vae.generate(5)
    assert samples.shape == (5, 8, 8, 1) and samples.min() >= 0 and samples.max() <= 1
    with pytest.raises(ValueError, match="needs n"):
        vae.generate()


def test_conditional_vae_needs_labels_and_decodes_per_class():
    vae = VAE(**TINY, num_classes=10, seed=0)
    vae.compile(optimizer="adam")
    vae.fit(digits(labels=True), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"conditional.*\(images, labels\)"):
        vae.fit(digits(), epochs=1, verbose=0)
    z = np.zeros((2, 2), np.float32)
    zeros, sevens = vae.generate(z=z, labels=0), vae.generate(z=z, labels=7)
    assert not np.allclose(zeros, sevens)
    np.testing.assert_allclose(vae.generate(z=z[:1], labels=[7]), sevens[:1], atol=1e-6)
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        vae.generate(2, labels=10)


def test_gaussian_likelihood_learns_its_scale():
    vae = VAE(**TINY, likelihood="gaussian", seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = float(vae.log_scale)
    vae.fit(digits(), epochs=2, verbose=0)
    assert float(vae.log_scale) < before


@pytest.mark.large
def test_save_and_load_keep_config_weights_and_optimizer_state(tmp_path):
    vae = VAE(**TINY, num_classes=10, likelihood="gaussian", beta=0.5, seed=4)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(digits(labels=True), epochs=1, verbose=0)
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert isinstance(loaded, VAE) and loaded.get_config() == vae.get_config()
    assert int(loaded.optimizer.iterations) == int(vae.optimizer.iterations) == 4
    for a, b in zip(vae.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(vae.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded.fit(digits(labels=True), epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 8


@pytest.mark.large
def test_importance_weighted_bound_is_tighter_than_the_elbo():
    vae = VAE(**TINY, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.fit(digits(limit=256), epochs=3, verbose=0)
    images = next(iter(load_images("digits", split="test", limit=64, batch_size=64, binarize=True, seed=0))).numpy()
    # 50 draws per image make the single-sample estimates precise to about 0.1 nats.
    repeated = np.repeat(images, 50, axis=0)
    elbo = -vae.evaluate(repeated, batch_size=640, verbose=0, return_dict=True)["loss"]
    single = vae.log_likelihood(repeated, num_samples=1, seed=1)
    many = vae.log_likelihood(images, num_samples=200, batch_size=16, seed=1)
    assert single.shape == (3200,) and many.shape == (64,)
    # One importance sample estimates the ELBO; more samples tighten the bound.
    assert single.mean() == pytest.approx(elbo, abs=0.3)
    assert many.mean() > elbo + 0.05
    assert np.all(many < 0)
    np.testing.assert_array_equal(many, vae.log_likelihood(images, num_samples=200, batch_size=16, seed=1))


@pytest.mark.large
def test_importance_samples_train_on_the_iwae_bound():
    vae = VAE(**TINY, importance_samples=5, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = vae.fit(digits(limit=256), epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    images = next(iter(load_images("digits", split="test", limit=64, batch_size=64, binarize=True, seed=0))).numpy()
    repeated = np.repeat(images, 50, axis=0)
    result = vae.evaluate(repeated, batch_size=640, verbose=0, return_dict=True)
    # The loss is the negative 5-sample bound, which log_likelihood estimates with 5 samples;
    # the average of the 5 samples' terms is the negative ELBO, a looser bound.
    five = vae.log_likelihood(repeated, num_samples=5, seed=1)
    assert -result["loss"] == pytest.approx(five.mean(), abs=0.3)
    assert result["loss"] < result["reconstruction_loss"] + result["kl_loss"] - 0.1
    metrics = vae.test_metrics(tf.data.Dataset.from_tensor_slices(repeated).batch(640))
    assert metrics["test_negative_iwae_bound"] < metrics["test_negative_elbo"]


def test_log_likelihood_accepts_a_dataset_with_labels():
    vae = VAE(**TINY, num_classes=10)
    values = vae.log_likelihood(digits(labels=True, limit=10), num_samples=4)
    assert values.shape == (10,) and np.all(np.isfinite(values))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(likelihood="poisson"), "Unknown likelihood 'poisson'"),
        (dict(image_shape=(9, 9, 1)), "multiples of 2"),
        (dict(latent_dim=0), "latent_dim must be positive"),
        (dict(beta=-1), "beta must be non-negative"),
        (dict(importance_samples=0), "importance_samples must be at least 1"),
        (dict(importance_samples=2, beta=2.0), "no KL weight: use beta=1"),
        (dict(pixelcnn_layers=-1), "pixelcnn_layers must be 0 or more"),
        (dict(pixelcnn_layers=1, likelihood="gaussian"), "use likelihood='bernoulli'"),
    ],
)
def test_bad_configuration_is_named(options, message):
    with pytest.raises(ValueError, match=message):
        VAE(**{**TINY, **options})


def test_log_likelihood_traces_once_across_calls_and_seeds():
    vae = VAE(**TINY)
    images = (np.random.default_rng(0).random((40, 8, 8, 1)) > 0.5).astype("float32")
    for seed in range(4):
        vae.log_likelihood(images, num_samples=20, batch_size=20, seed=seed)
    assert vae._log_importance_weights.experimental_get_tracing_count() == 1
    assert not np.array_equal(vae.log_likelihood(images, num_samples=5, seed=0),
                              vae.log_likelihood(images, num_samples=5, seed=1))


def test_fit_traces_the_train_step_once(monkeypatch):
    """compile builds the optimizer's slots, so fit need not trace a throwaway step to build them."""
    traces = []
    train_step = VAE.train_step

    def counted(self, data):
        traces.append(1)  # Python runs only while tracing
        return train_step(self, data)

    monkeypatch.setattr(VAE, "train_step", counted)
    vae = VAE(**TINY)
    vae.compile(optimizer="adam")
    assert len(vae.optimizer.variables) == 2 + 2 * len(vae.trainable_variables)  # iterations, rate, m and v
    vae.fit(digits(limit=64), epochs=2, verbose=0)
    assert len(traces) == 1


def test_images_of_the_wrong_shape_are_named():
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"VAE takes images of shape \(8, 8, 1\), got \(16, 16, 3\)"):
        vae.fit(load_images("digits", image_size=16, channels=3, limit=16), epochs=1, verbose=0)


def test_pixelcnn_head_samples_each_pixel_from_the_pixels_drawn_before_it():
    vae = VAE(**TINY, pixelcnn_layers=2, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    vae.fit(digits(), epochs=1, verbose=0)
    features = vae._decoder_output(np.random.default_rng(0).normal(size=(6, 2)).astype("float32"), None)
    uniforms = tf.random.stateless_uniform((6, 8, 8, 1), seed=(0, 1))
    probabilities = vae._sample_pixels(features, uniforms).numpy()
    drawn = (uniforms.numpy() < probabilities).astype("float32")
    # Each returned probability is the head's reading of the drawn image at that pixel, which
    # holds only if every pixel was drawn from the pixels drawn before it.
    expected = tf.sigmoid(vae.pixel_head([tf.constant(drawn), features])).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert 0 < drawn.mean() < 1 and len(np.unique(probabilities)) > 100


def test_pixelcnn_head_trains_saves_and_scores_with_the_head(tmp_path):
    vae = VAE(**TINY, pixelcnn_layers=1, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(digits(), epochs=2, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert sorted(vae.networks()) == ["decoder", "encoder", "pixel_head"]
    images = next(iter(load_images("digits", split="test", limit=16, batch_size=16, binarize=True, seed=0))).numpy()
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert loaded.get_config()["pixelcnn_layers"] == 1
    expected = vae.log_likelihood(images, num_samples=8)
    np.testing.assert_array_equal(loaded.log_likelihood(images, num_samples=8), expected)
    # The head's weights count in the likelihood: zeroing them changes it.
    for weight in loaded.pixel_head.weights:
        weight.assign(tf.zeros_like(weight))
    assert not np.allclose(loaded.log_likelihood(images, num_samples=8), expected)
    samples = vae.generate(4)
    assert samples.shape == (4, 8, 8, 1) and samples.min() >= 0 and samples.max() <= 1


def test_pixelcnn_decode_is_fixed_per_z_and_generate_draws_fresh_pixels(monkeypatch):
    vae = VAE(**TINY, pixelcnn_layers=1, seed=0)
    z = np.random.default_rng(0).normal(size=(5, 2)).astype("float32")
    decoded = vae.decode(z).numpy()
    np.testing.assert_array_equal(vae.decode(z).numpy(), decoded)
    np.testing.assert_allclose(vae.decode(z[3:4]).numpy(), decoded[3:4], atol=1e-6)
    np.testing.assert_array_equal(vae.generate(z=z), decoded)
    # Drawn latents: the same z twice still gives new pixels.
    monkeypatch.setattr("keras_bigml.generative.vae.prior_inputs", lambda *args: (z, None))
    first, second = vae.generate(5), vae.generate(5)
    assert not np.allclose(first, second) and not np.allclose(first, decoded)
