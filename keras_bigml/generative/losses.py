"""Per-example losses and log densities shared by the generative models.

Every function returns one float32 value per example (summed over pixels or
latent dimensions, or averaged over a discriminator's patches); reducing over the batch is the caller's job, done with
`keras_bigml.distribute.global_mean` so that it is correct under any strategy.
"""

import math
from typing import TYPE_CHECKING

import tensorflow as tf

from keras_bigml.errors import ConfigError

if TYPE_CHECKING:
    import keras

_LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_example(values):
    return tf.reduce_sum(_per_example_rows(values), axis=1)


def _mean_per_example(values):
    return tf.reduce_mean(_per_example_rows(values), axis=1)


def _per_example_rows(values):
    values = tf.cast(values, tf.float32)
    return tf.reshape(values, [tf.shape(values)[0], -1])


def kl_divergence_normal(mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, in closed form.

    >>> float(kl_divergence_normal(tf.zeros([1, 3]), tf.zeros([1, 3]))[0])
    0.0
    """
    mean, log_var = tf.cast(mean, tf.float32), tf.cast(log_var, tf.float32)
    return 0.5 * _sum_per_example(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var)


def bernoulli_log_likelihood(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """log p(targets | logits) per example for pixel-wise Bernoulli outputs.

    >>> round(float(bernoulli_log_likelihood(tf.ones([1, 2]), tf.zeros([1, 2]))[0]), 4)
    -1.3863
    """
    targets, logits = tf.cast(targets, tf.float32), tf.cast(logits, tf.float32)
    return -_sum_per_example(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    )


def gaussian_log_likelihood(targets: tf.Tensor, mean: tf.Tensor, log_scale: tf.Tensor) -> tf.Tensor:
    """log N(targets; mean, exp(log_scale)^2) per example, summed over pixels.

    >>> round(float(gaussian_log_likelihood(tf.zeros([1, 1]), tf.zeros([1, 1]), 0.0)[0]), 4)
    -0.9189
    """
    targets, mean = tf.cast(targets, tf.float32), tf.cast(mean, tf.float32)
    log_scale = tf.cast(log_scale, tf.float32)
    z = (targets - mean) * tf.exp(-log_scale)
    return _sum_per_example(-0.5 * tf.square(z) - log_scale - 0.5 * _LOG_2PI)


def normal_log_density(x: tf.Tensor, mean: tf.Tensor, log_var: tf.Tensor) -> tf.Tensor:
    """log N(x; mean, diag(exp(log_var))) per example (use zeros for the prior).

    >>> round(float(normal_log_density(tf.zeros([1, 1]), tf.zeros([1, 1]), tf.zeros([1, 1]))[0]), 4)
    -0.9189
    """
    x, mean, log_var = (tf.cast(t, tf.float32) for t in (x, mean, log_var))
    return _sum_per_example(-0.5 * (_LOG_2PI + log_var + tf.square(x - mean) * tf.exp(-log_var)))


GAN_LOSSES = ("bce", "lsgan", "hinge", "wgan-gp")


def discriminator_loss(kind: str, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Per-example discriminator (critic) loss for real and fake logits.

    ``bce``: -log D(x) - log(1 - D(G(z))); ``lsgan``: least squares with targets 1
    and 0, halved (as in CycleGAN); ``hinge``: max(0, 1 - D(x)) + max(0, 1 + D(G(z)));
    ``wgan-gp``: D(G(z)) - D(x) (add :func:`gradient_penalty`). Logits of shape
    ``(batch, 1)`` or per patch ``(batch, height, width, 1)``: patches are averaged.

    >>> [round(float(v), 4) for v in discriminator_loss("hinge", tf.constant([[2.0]]), tf.constant([[0.5]]))]
    [1.5]
    """
    real, fake = _per_example_rows(real_logits), _per_example_rows(fake_logits)
    if kind == "bce":
        return _mean_per_example(tf.nn.softplus(-real)) + _mean_per_example(tf.nn.softplus(fake))
    if kind == "lsgan":
        return 0.5 * (_mean_per_example(tf.square(real - 1.0)) + _mean_per_example(tf.square(fake)))
    if kind == "hinge":
        return _mean_per_example(tf.nn.relu(1.0 - real)) + _mean_per_example(tf.nn.relu(1.0 + fake))
    if kind == "wgan-gp":
        return _mean_per_example(fake) - _mean_per_example(real)
    raise ConfigError(f"Unknown GAN loss {kind!r}: use one of {', '.join(GAN_LOSSES)}.")


def generator_loss(kind: str, fake_logits: tf.Tensor) -> tf.Tensor:
    """Per-example generator loss (non-saturating for ``bce``; (D(G(z)) - 1)^2 for
    ``lsgan``), averaged over patches.

    >>> round(float(generator_loss("bce", tf.constant([[0.0]]))[0]), 4)
    0.6931
    """
    fake = _per_example_rows(fake_logits)
    if kind == "bce":
        return _mean_per_example(tf.nn.softplus(-fake))
    if kind == "lsgan":
        return _mean_per_example(tf.square(fake - 1.0))
    if kind in ("hinge", "wgan-gp"):
        return _mean_per_example(-fake)
    raise ConfigError(f"Unknown GAN loss {kind!r}: use one of {', '.join(GAN_LOSSES)}.")


def mean_absolute_error(targets: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
    """Per-example mean absolute difference (the L1 cycle and identity losses).

    >>> mean_absolute_error(tf.zeros((2, 2, 2, 1)), tf.fill((2, 2, 2, 1), -0.5)).numpy().tolist()
    [0.5, 0.5]
    """
    return _mean_per_example(tf.abs(tf.cast(targets, tf.float32) - tf.cast(outputs, tf.float32)))


def gradient_penalty(critic: "keras.Model", real: tf.Tensor, fake: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Per-example WGAN-GP penalty (||grad critic(x_hat)|| - 1)^2 (Gulrajani et al., 2017).

    ``x_hat = alpha * real + (1 - alpha) * fake`` with ``alpha`` drawn from U(0, 1)
    per example; a small epsilon inside the square root keeps the gradient of the
    norm finite where the critic's gradient vanishes.
    """
    real, fake = tf.cast(real, tf.float32), tf.cast(fake, tf.float32)
    alpha = tf.reshape(tf.cast(alpha, tf.float32), [-1] + [1] * (len(real.shape) - 1))
    mixed = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = tf.cast(critic(mixed), tf.float32)
    gradients = tape.gradient(scores, mixed)
    norm = tf.sqrt(_sum_per_example(tf.square(gradients)) + 1e-12)
    return tf.square(norm - 1.0)


def semantic_consistency(source_probabilities: tf.Tensor, translated_probabilities: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of a classifier's reading of a translation against its
    reading of the source image (CyCADA's semantic consistency, Hoffman et al., 2018).

    The label is the source image's most probable class, held fixed (no gradient
    flows into it).

    >>> source = tf.constant([[0.1, 0.9], [0.8, 0.2]])
    >>> [round(float(v), 4) for v in semantic_consistency(source, tf.constant([[0.5, 0.5], [0.8, 0.2]]))]
    [0.6931, 0.2231]
    """
    labels = tf.stop_gradient(tf.argmax(source_probabilities, axis=-1))
    translated = tf.cast(translated_probabilities, tf.float32)
    return -tf.math.log(tf.maximum(tf.gather(translated, labels, batch_dims=1), 1e-7))
