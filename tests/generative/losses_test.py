import math

import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.generative import losses


def test_kl_divergence_matches_the_closed_form_by_hand():
    mean, log_var = np.array([[1.0, -2.0]]), np.array([[0.0, math.log(4.0)]])
    # 0.5 * sum(var + mean^2 - 1 - log var) = 0.5 * ((1 + 1 - 1 - 0) + (4 + 4 - 1 - log 4))
    expected = 0.5 * (1.0 + 7.0 - math.log(4.0))
    assert float(losses.kl_divergence_normal(mean, log_var)[0]) == pytest.approx(expected, rel=1e-6)


def test_bernoulli_log_likelihood_by_hand():
    targets = np.array([[1.0, 0.0, 1.0]])
    logits = np.array([[2.0, -1.0, 0.0]])
    probs = 1 / (1 + np.exp(-logits))
    expected = np.sum(targets * np.log(probs) + (1 - targets) * np.log(1 - probs))
    assert float(losses.bernoulli_log_likelihood(targets, logits)[0]) == pytest.approx(expected, rel=1e-6)


def test_gaussian_log_likelihood_by_hand():
    targets, mean, log_scale = np.array([[0.5, 1.0]]), np.array([[0.0, 1.0]]), math.log(0.5)
    sigma = 0.5
    expected = sum(
        -0.5 * ((t - m) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        for t, m in zip(targets[0], mean[0])
    )
    assert float(losses.gaussian_log_likelihood(targets, mean, log_scale)[0]) == pytest.approx(expected)


def test_normal_log_density_by_hand_and_per_example_shape():
    x = np.array([[1.0], [0.0]])
    mean, log_var = np.zeros((2, 1)), np.full((2, 1), math.log(4.0))
    values = losses.normal_log_density(x, mean, log_var).numpy()
    expected = [-0.5 * (math.log(2 * math.pi) + math.log(4.0) + v**2 / 4.0) for v in (1.0, 0.0)]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_losses_sum_images_per_example_in_float32():
    targets = tf.ones((3, 4, 4, 1), tf.bfloat16)
    values = losses.bernoulli_log_likelihood(targets, tf.zeros((3, 4, 4, 1), tf.bfloat16))
    assert values.dtype == tf.float32 and values.shape == (3,)
    np.testing.assert_allclose(values, 16 * math.log(0.5), rtol=1e-6)


def test_patch_logits_are_scored_per_patch_then_averaged_per_example():
    real = tf.constant([[[[2.0], [0.0]], [[1.0], [1.0]]]])  # one example, 2x2 patches
    fake = tf.constant([[[[0.5], [-1.0]], [[0.0], [2.0]]]])
    np.testing.assert_allclose(
        losses.discriminator_loss("lsgan", real, fake), [0.5 * (np.mean([1, 1, 0, 0]) + np.mean([0.25, 1, 0, 4]))])
    np.testing.assert_allclose(losses.generator_loss("lsgan", fake), [np.mean([0.25, 4, 1, 1])])
    np.testing.assert_allclose(
        losses.discriminator_loss("hinge", real, fake), [np.mean([0, 1, 0, 0]) + np.mean([1.5, 0, 1, 3])])
    np.testing.assert_allclose(losses.mean_absolute_error(real, fake), [np.mean([1.5, 1, 1, 1])])
