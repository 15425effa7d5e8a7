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


def test_gradient_penalty_of_a_linear_critic_is_the_closed_form_everywhere():
    """critic(x) = <w, x> has gradient w at every point: the penalty is (||w|| - 1)^2 whatever alpha."""
    rng = np.random.default_rng(0)
    real, fake = (tf.constant(rng.normal(size=(5, 4, 4, 1)), tf.float32) for _ in range(2))
    for scale in (0.5, 1.0, 3.0):
        w = rng.normal(size=(1, 4, 4, 1))
        w = tf.constant(scale * w / np.linalg.norm(w), tf.float32)  # ||w|| = scale
        critic = lambda images, w=w: tf.reduce_sum(images * w, axis=[1, 2, 3])[:, None]
        penalty = losses.gradient_penalty(critic, real, fake, tf.constant(rng.uniform(size=5), tf.float32))
        assert penalty.shape == (5,) and penalty.dtype == tf.float32
        np.testing.assert_allclose(penalty, np.full(5, (scale - 1.0) ** 2), atol=1e-5)


def test_gradient_penalty_of_a_quadratic_critic_is_taken_at_each_examples_own_interpolate():
    """critic(x) = 0.5 <c, x^2> has gradient c * x: the penalty depends on where each x_hat lies."""
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(6, 3, 3, 2)), rng.normal(size=(6, 3, 3, 2))
    c = rng.uniform(0.5, 2.0, size=(1, 3, 3, 2))
    alpha = np.array([0.0, 1.0, 0.1, 0.5, 0.75, 0.9])
    critic = lambda images: 0.5 * tf.reduce_sum(tf.constant(c, tf.float32) * images**2, axis=[1, 2, 3])
    penalty = losses.gradient_penalty(critic, tf.constant(real, tf.float32), tf.constant(fake, tf.float32),
                                      tf.constant(alpha, tf.float32)).numpy()

    def closed_form(weights):
        mixed = weights[:, None, None, None] * real + (1.0 - weights[:, None, None, None]) * fake
        return (np.linalg.norm((c * mixed).reshape(6, -1), axis=1) - 1.0) ** 2

    np.testing.assert_allclose(penalty, closed_form(alpha), rtol=1e-4)
    # alpha 0 and 1 put x_hat on the fake and the real example; one alpha for the batch would be another number.
    np.testing.assert_allclose(penalty[:2], [closed_form(np.zeros(6))[0], closed_form(np.ones(6))[1]], rtol=1e-4)
    assert not np.allclose(penalty, closed_form(np.full(6, alpha.mean())), rtol=1e-2)
