"""Variational autoencoder (Kingma & Welling, 2014) as a subclassed Keras model."""

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_bigml.distribute import global_mean, replica_normal, step_logs
from keras_bigml.errors import ConfigError
from keras_bigml.generative import losses
from keras_bigml.generative.base import LatentGenerativeModel, ServingFunctions
from keras_bigml.generative.networks import conv_encoder, deconv_decoder, pixelcnn_head
from keras_bigml.generative.optimizers import resolve_optimizer
from keras_bigml.generative.sampling import prior_inputs, unpack_batch
from keras_bigml.generative.seeding import SavedSeedState

LIKELIHOODS = ("bernoulli", "gaussian")


@keras.saving.register_keras_serializable(package="keras_bigml")
class VAE(SavedSeedState, LatentGenerativeModel):
    """Convolutional VAE with the reparameterization trick and an analytic KL term.

    Images are float32 NHWC in [0, 1]. ``fit`` takes batches of images, or of
    ``(images, labels)`` for a class-conditional VAE (``num_classes`` set).

    Parameters
    ----------
    image_shape : (int, int, int)
        Height, width, channels; height and width multiples of ``2**len(filters)``.
    latent_dim : int
    filters : tuple of int
        Convolution widths of the encoder (mirrored in the decoder).
    hidden_units : int
        Width of the dense layer between convolutions and latent space.
    likelihood : {"bernoulli", "gaussian"}
        Pixel model: Bernoulli logits (binary or binarized images), or a Gaussian
        with a learned scale (continuous images).
    beta : float
        Weight of the KL term (beta-VAE); 1 gives the ELBO.
    pixelcnn_layers : int
        0 (the default) decodes every pixel independently given z. Above 0 (Bernoulli
        likelihood only), a PixelCNN head of that many masked convolutions, as wide as
        ``filters[0]``, models each pixel given z and the pixels before it in raster order
        (PixelVAE, Gulrajani et al., 2017): a tighter likelihood, evaluated in one pass;
        ``decode`` and ``generate`` then sample pixel by pixel (height x width passes of
        the head) and return each pixel's probability given the pixels sampled before it.
        ``generate(n)`` draws fresh pixel noise for every image; ``decode``, ``call`` and
        ``generate(z=...)`` use one fixed noise image, seeded by ``seed``, so that a ``z``
        always decodes to the same image, in the exported signatures too.
    importance_samples : int
        Posterior samples per image in training and evaluation. 1 trains on the
        ELBO (with the KL term in closed form); k > 1 trains on the tighter
        importance-weighted bound of IWAE (Burda et al., 2016),
        ``log mean_k p(x, z_k) / q(z_k | x)``, whose ``loss`` is its negative;
        ``reconstruction_loss`` and ``kl_loss`` are then the k samples' averages,
        which sum to the negative ELBO. Each step decodes k times as many images.
    num_classes : int, optional
        Condition encoder and decoder on integer labels.
    seed : int, optional
        Seed of the model's noise (reproducible runs).

    Examples
    --------
    >>> from keras_bigml.data import load_images
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
    >>> vae.compile(optimizer="adam")
    >>> history = vae.fit(load_images("digits", limit=64, batch_size=32), epochs=1, verbose=0)
    >>> sorted(history.history)
    ['kl_loss', 'loss', 'reconstruction_loss']
    >>> vae.generate(4).shape
    (4, 8, 8, 1)
    """

    kind = "vae"

    def __init__(
        self,
        image_shape=(28, 28, 1),
        latent_dim=16,
        filters=(32, 64),
        hidden_units=256,
        likelihood="bernoulli",
        beta=1.0,
        importance_samples=1,
        num_classes=None,
        seed=None,
        pixelcnn_layers=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"Unknown likelihood {likelihood!r}: use one of {', '.join(LIKELIHOODS)}.")
        if latent_dim < 1:
            raise ConfigError(f"latent_dim must be positive, got {latent_dim}.")
        if beta < 0:
            raise ConfigError(f"beta must be non-negative, got {beta}.")
        if importance_samples < 1:
            raise ConfigError(f"importance_samples must be at least 1, got {importance_samples}.")
        if importance_samples > 1 and beta != 1:
            raise ConfigError(f"importance_samples={importance_samples} trains on the IWAE bound of log p(x), "
                              f"which has no KL weight: use beta=1 (got {beta}).")
        if pixelcnn_layers < 0:
            raise ConfigError(f"pixelcnn_layers must be 0 or more, got {pixelcnn_layers}.")
        if pixelcnn_layers and likelihood != "bernoulli":
            raise ConfigError(f"pixelcnn_layers={pixelcnn_layers} models binary pixels: "
                              f"use likelihood='bernoulli' (got {likelihood!r}).")
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.filters = tuple(filters)
        self.hidden_units = hidden_units
        self.likelihood = likelihood
        self.beta = beta
        self.importance_samples = int(importance_samples)
        self.num_classes = num_classes
        self.seed = seed
        self.pixelcnn_layers = int(pixelcnn_layers)

        self.encoder = conv_encoder(
            self.image_shape, self.filters, hidden_units, 2 * latent_dim, num_classes
        )
        head_units = self.filters[0] if self.pixelcnn_layers else None
        self.decoder = deconv_decoder(
            latent_dim, self.image_shape, self.filters, hidden_units, num_classes, output_channels=head_units
        )
        self.pixel_head = (
            pixelcnn_head(self.image_shape, head_units, self.pixelcnn_layers) if self.pixelcnn_layers else None
        )
        if likelihood == "gaussian":
            self.log_scale = self.add_weight(
                shape=(), initializer="zeros", dtype="float32", name="log_scale"
            )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.built = True

    def compile(self, optimizer: keras.optimizers.Optimizer | str = "rmsprop", **kwargs: Any) -> None:
        """`keras.Model.compile`, then the optimizer's slots for every weight.

        ``optimizer="adam"`` gives a `FusedAdam` (Keras's Adam in one kernel per
        weight). The slots are built here rather than inside the first
        ``train_step``, so that ``fit`` traces the step once instead of twice
        (Keras builds an unbuilt optimizer in a throwaway trace).
        """
        super().compile(optimizer=resolve_optimizer(optimizer), **kwargs)
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config: dict) -> None:
        # Keras skips compiling a loaded model whose class overrides compile, unless it says how.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def networks(self) -> dict[str, keras.Model]:
        networks = {"encoder": self.encoder, "decoder": self.decoder}
        if self.pixel_head is not None:
            networks["pixel_head"] = self.pixel_head
        return networks

    def network_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        return {"vae": self.optimizer}

    def test_metrics(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """The negative ELBO on ``dataset`` (nats per image), as ``test_negative_elbo``, and
        with ``importance_samples`` > 1 the negative IWAE bound, ``test_negative_iwae_bound``."""
        result = self.evaluate(dataset, verbose=0, return_dict=True)
        metrics = {"test_negative_elbo": float(result["reconstruction_loss"] + result["kl_loss"])}
        if self.importance_samples > 1:
            metrics["test_negative_iwae_bound"] = float(result["loss"])
        return metrics

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def encode(self, images: tf.Tensor | np.ndarray, labels: tf.Tensor | np.ndarray | None = None,
               training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Return the posterior's ``(mean, log_var)``, float32, each ``(batch, latent_dim)``."""
        params = self.encoder(self._with_labels(images, labels), training=training)
        mean, log_var = tf.split(tf.cast(params, tf.float32), 2, axis=-1)
        return mean, log_var

    def decode(self, z: tf.Tensor | np.ndarray, labels: tf.Tensor | np.ndarray | None = None,
               pixel_noise: tf.Tensor | None = None) -> tf.Tensor:
        """Decode latent vectors to images in [0, 1]: the likelihood's mean, or with a PixelCNN
        head each pixel's probability given the pixels sampled before it, drawn as
        ``pixel_noise < probability`` (uniform noise, one image or one per row; by default
        the model's fixed noise image)."""
        output = self._decoder_output(z, labels)
        if self.pixel_head is None:
            return tf.clip_by_value(tf.sigmoid(output), 0.0, 1.0)
        if pixel_noise is None:  # a constant, which LiteRT converts (it has no random ops)
            pixel_noise = np.random.default_rng(self.seed or 0).random((1, *self.image_shape), "float32")
        return self._sample_pixels(output, tf.convert_to_tensor(pixel_noise, tf.float32))

    def call(self, inputs: tf.Tensor | Sequence[tf.Tensor], training: bool = False) -> tf.Tensor:
        """Reconstruct images from the posterior mean; ``inputs`` may be ``(images, labels)``."""
        images, labels = unpack_batch(inputs, self.num_classes, "VAE")
        mean, _ = self.encode(images, labels, training=training)
        return self.decode(mean, labels)

    def generate(self, n: int | None = None, labels: int | Sequence[int] | np.ndarray | None = None,
                 z: np.ndarray | None = None) -> np.ndarray:
        """Sample images from the prior, as a numpy array in [0, 1].

        A conditional VAE cycles through the classes when ``labels`` is None, and
        repeats ``labels`` when fewer than ``n`` are given. A given ``z`` decodes as in
        ``decode``; drawn ones get fresh pixel noise from a PixelCNN head.
        """
        pixel_noise = None
        drawn = z is None
        z, labels = prior_inputs(n, labels, z, self.latent_dim, self.num_classes, self.seed_generator)
        if self.pixel_head is not None and drawn:
            pixel_noise = keras.random.uniform((len(z), *self.image_shape), seed=self.seed_generator)
        return keras.ops.convert_to_numpy(self.decode(z, labels, pixel_noise))

    def train_step(self, data: tf.Tensor | tuple) -> dict[str, tf.Tensor]:
        images, labels = unpack_batch(data, self.num_classes, "VAE", self.image_shape)
        with tf.GradientTape() as tape:
            loss, reconstruction, kl = self._per_example_losses(images, labels, training=True)
            scaled_loss = self.optimizer.scale_loss(global_mean(loss))
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._update_trackers(loss, reconstruction, kl)

    def test_step(self, data: tf.Tensor | tuple) -> dict[str, tf.Tensor]:
        images, labels = unpack_batch(data, self.num_classes, "VAE", self.image_shape)
        return self._update_trackers(*self._per_example_losses(images, labels, training=False))

    def log_likelihood(self, images: "np.ndarray | tf.data.Dataset", labels: np.ndarray | None = None,
                       num_samples: int = 100, batch_size: int = 100, seed: int = 0) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per example, in nats.

        Uses ``num_samples`` draws from the encoder as proposal (Burda et al.,
        2016); the estimate is a lower bound that tightens as ``num_samples``
        grows, and equals the ELBO's expectation for ``num_samples=1``.

        Parameters
        ----------
        images : array or tf.data.Dataset
            Images in [0, 1] (binary for the Bernoulli likelihood), or a dataset of
            image batches (or ``(images, labels)`` batches).
        labels : array, optional
            Class labels for a conditional VAE.

        Returns
        -------
        numpy.ndarray of shape (num_examples,)
        """
        chunk = max(1, min(num_samples, 50_000 // batch_size))
        results = []
        calls = 0
        for batch_images, batch_labels in _batches(images, labels, batch_size):
            log_weights = []
            for start in range(0, num_samples, chunk):
                draws = min(chunk, num_samples - start)
                # A seed tensor per call keeps one trace for every call and seed.
                noise_seed = tf.constant([seed, calls], tf.int32)
                calls += 1
                log_weights.append(
                    self._log_importance_weights(batch_images, batch_labels, draws, noise_seed)
                )
            log_weights = tf.concat(log_weights, axis=0)
            estimate = tf.reduce_logsumexp(log_weights, axis=0) - math.log(num_samples)
            results.append(estimate.numpy())
        return np.concatenate(results)

    def serving_functions(self) -> ServingFunctions:
        """Signatures for `keras_bigml.export`: encode, decode and reconstruct."""
        images = tf.TensorSpec((None, *self.image_shape), tf.float32, name="images")
        z = tf.TensorSpec((None, self.latent_dim), tf.float32, name="z")
        labels = [tf.TensorSpec((None,), tf.int32, name="labels")] if self.num_classes else []

        def encode(images, labels=None):
            mean, log_var = self.encode(images, labels)
            return {"mean": mean, "log_var": log_var}

        def decode(z, labels=None):
            return {"images": self.decode(z, labels)}

        def reconstruct(images, labels=None):
            return {"images": self((images, labels))}

        return {
            "reconstruct": (reconstruct, [images, *labels]),
            "encode": (encode, [images, *labels]),
            "decode": (decode, [z, *labels]),
        }

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            image_shape=list(self.image_shape),
            latent_dim=self.latent_dim,
            filters=list(self.filters),
            hidden_units=self.hidden_units,
            likelihood=self.likelihood,
            beta=self.beta,
            importance_samples=self.importance_samples,
            num_classes=self.num_classes,
            seed=self.seed,
            pixelcnn_layers=self.pixelcnn_layers,
        )
        return config

    def _per_example_losses(self, images, labels, training):
        """Return per-example (loss, negative reconstruction log-likelihood, KL), float32."""
        batch = tf.shape(images)[0]
        if self.importance_samples == 1:
            mean, log_var = self.encode(images, labels, training=training)
            noise = replica_normal(batch, (self.latent_dim,), self.seed_generator)
            z = mean + tf.exp(0.5 * log_var) * noise
            reconstruction = -self._reconstruction_log_likelihood(images, z, labels, training)
            kl = losses.kl_divergence_normal(mean, log_var)
            return reconstruction + self.beta * kl, reconstruction, kl
        # Noise per example (batch first), so replicas slice it like the one-sample case.
        noise = replica_normal(batch, (self.importance_samples, self.latent_dim), self.seed_generator)
        log_px_z, log_prior_ratio = self._log_weight_terms(
            images, labels, tf.transpose(noise, (1, 0, 2)), training
        )
        bound = tf.reduce_logsumexp(log_px_z + log_prior_ratio, axis=0) - math.log(self.importance_samples)
        return -bound, -tf.reduce_mean(log_px_z, axis=0), -tf.reduce_mean(log_prior_ratio, axis=0)

    def _reconstruction_log_likelihood(self, images, z, labels, training=False):
        output = self._decoder_output(z, labels, training)
        if self.pixel_head is not None:
            output = tf.cast(self.pixel_head([images, output], training=training), tf.float32)
        if self.likelihood == "bernoulli":
            return losses.bernoulli_log_likelihood(images, output)
        return losses.gaussian_log_likelihood(images, tf.sigmoid(output), self.log_scale)

    @tf.function(reduce_retracing=True)
    def _log_importance_weights(self, images, labels, draws, noise_seed):
        """log p(x, z_s) - log q(z_s | x) for ``draws`` samples: shape (draws, batch)."""
        noise = tf.random.stateless_normal((draws, tf.shape(images)[0], self.latent_dim), seed=noise_seed)
        log_px_z, log_prior_ratio = self._log_weight_terms(images, labels, noise)
        return log_px_z + log_prior_ratio

    def _log_weight_terms(self, images, labels, noise, training=False):
        """log p(x | z_s) and log p(z_s) - log q(z_s | x) for ``z_s`` drawn with ``noise`` of
        shape (draws, batch, latent_dim): each of shape (draws, batch)."""
        mean, log_var = self.encode(images, labels, training=training)
        draws = tf.shape(noise)[0]
        flat_z = tf.reshape(mean + tf.exp(0.5 * log_var) * noise, (-1, self.latent_dim))
        repeat = lambda t: tf.reshape(tf.repeat(t[None], draws, axis=0), (-1, *t.shape[1:]))
        flat_labels = None if labels is None else repeat(labels)
        log_px_z = self._reconstruction_log_likelihood(repeat(images), flat_z, flat_labels, training)
        log_pz = losses.normal_log_density(flat_z, tf.zeros_like(flat_z), tf.zeros_like(flat_z))
        log_qz = losses.normal_log_density(flat_z, repeat(mean), repeat(log_var))
        shape = (draws, tf.shape(images)[0])
        return tf.reshape(log_px_z, shape), tf.reshape(log_pz - log_qz, shape)

    @tf.function(reduce_retracing=True)
    def _sample_pixels(self, features, uniforms):
        """Ancestral sampling through the PixelCNN head in raster order: one pass of the head
        per pixel, each pixel drawn as ``uniforms < p`` (``uniforms`` of one image or one per
        row of ``features``); returns the probabilities p."""
        height, width = self.image_shape[:2]
        positions = height * width

        def draw_pixel(index, images, probabilities):
            at_index = tf.reshape(tf.one_hot(index, positions), (1, height, width, 1))
            pixel = tf.sigmoid(tf.cast(self.pixel_head([images, features]), tf.float32))
            drawn = tf.cast(uniforms < pixel, tf.float32)
            return index + 1, images + at_index * drawn, probabilities + at_index * pixel

        zeros = tf.zeros(tf.concat([tf.shape(features)[:1], self.image_shape], axis=0))
        _, _, probabilities = tf.while_loop(
            lambda index, *_: index < positions, draw_pixel, (tf.constant(0), zeros, zeros)
        )
        return probabilities

    def _decoder_output(self, z, labels, training=False):
        return tf.cast(self.decoder(self._with_labels(z, labels), training=training), tf.float32)

    def _update_trackers(self, loss, reconstruction, kl):
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return step_logs({metric.name: metric.result() for metric in self.metrics})

    def _with_labels(self, inputs, labels):
        if not self.num_classes:
            return inputs
        if labels is None:
            raise ConfigError(f"This VAE is conditional (num_classes={self.num_classes}): pass labels.")
        return [tf.convert_to_tensor(inputs), tf.cast(labels, tf.int32)]


def _batches(images, labels, batch_size):
    """Yield (images, labels-or-None) batches from arrays or a dataset."""
    if isinstance(images, tf.data.Dataset):
        for batch in images:
            if isinstance(batch, (tuple, list)):
                yield tf.convert_to_tensor(batch[0]), tf.convert_to_tensor(batch[1])
            else:
                yield tf.convert_to_tensor(batch), None
        return
    images = np.asarray(images, dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch_labels = None if labels is None else tf.constant(labels[start : start + batch_size], tf.int32)
        yield tf.constant(images[start : start + batch_size]), batch_labels
