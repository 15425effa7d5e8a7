"""Per-example losses and log densities shared by the generative models.

Every function returns one float32 value per example (summed over pixels or
latent dimensions); reducing over the batch is the caller's job, done with
`keras_bigml.distribute.global_mean` so that it is correct under any strategy.
"""

import math

import tensorflow as tf

_LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_example(values):
    values = tf.cast(values, tf.float32)
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def kl_divergence_normal(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example, in closed form.

    >>> float(kl_divergence_normal(tf.zeros([1, 3]), tf.zeros([1, 3]))[0])
    0.0
    """
    mean, log_var = tf.cast(mean, tf.float32), tf.cast(log_var, tf.float32)
    return 0.5 * _sum_per_example(tf.exp(log_var) + tf.square(mean) - 1.0 - log_var)


def bernoulli_log_likelihood(targets, logits):
    """log p(targets | logits) per example for pixel-wise Bernoulli outputs.

    >>> round(float(bernoulli_log_likelihood(tf.ones([1, 2]), tf.zeros([1, 2]))[0]), 4)
    -1.3863
    """
    targets, logits = tf.cast(targets, tf.float32), tf.cast(logits, tf.float32)
    return -_sum_per_example(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    )


def gaussian_log_likelihood(targets, mean, log_scale):
    """log N(targets; mean, exp(log_scale)^2) per example, summed over pixels.

    >>> round(float(gaussian_log_likelihood(tf.zeros([1, 1]), tf.zeros([1, 1]), 0.0)[0]), 4)
    -0.9189
    """
    targets, mean = tf.cast(targets, tf.float32), tf.cast(mean, tf.float32)
    log_scale = tf.cast(log_scale, tf.float32)
    z = (targets - mean) * tf.exp(-log_scale)
    return _sum_per_example(-0.5 * tf.square(z) - log_scale - 0.5 * _LOG_2PI)


def normal_log_density(x, mean, log_var):
    """log N(x; mean, diag(exp(log_var))) per example (use zeros for the prior).

    >>> round(float(normal_log_density(tf.zeros([1, 1]), tf.zeros([1, 1]), tf.zeros([1, 1]))[0]), 4)
    -0.9189
    """
    x, mean, log_var = (tf.cast(t, tf.float32) for t in (x, mean, log_var))
    return _sum_per_example(-0.5 * (_LOG_2PI + log_var + tf.square(x - mean) * tf.exp(-log_var)))
