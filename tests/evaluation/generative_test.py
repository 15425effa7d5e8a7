import math

import numpy as np
import pytest

from keras_bigml.data import load_images
from keras_bigml.evaluation.generative import (
    classifier_outputs,
    classifier_score,
    frechet_distance,
    kernel_distance,
    label_agreement,
    train_classifier,
)


def test_frechet_distance_by_hand_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * [2.0, 1.0] + [1.0, -1.0]
    # |mu|^2 = 2; trace term: (1 + 4 - 2*2) + (1 + 1 - 2*1) = 1
    assert frechet_distance(a, b) == pytest.approx(3.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kernel_distance_by_hand_on_tiny_sets():
    x = np.array([[0.0], [1.0]])
    y = np.array([[2.0], [3.0]])
    k = lambda p, q: (p * q + 1.0) ** 3
    expected = (2 * k(0, 1)) / 2 + (2 * k(2, 3)) / 2 - 2 * np.mean([k(a, b) for a in (0, 1) for b in (2, 3)])
    assert kernel_distance(x, y, subsets=1, subset_size=2) == pytest.approx(expected)


def test_classifier_score_by_hand():
    assert classifier_score(np.full((5, 3), 1 / 3)) == pytest.approx(1.0)
    probabilities = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    marginal = probabilities.mean(0)
    kl = [sum(p * math.log(p / m) for p, m in zip(row, marginal) if p > 0) for row in probabilities]
    assert classifier_score(probabilities) == pytest.approx(math.exp(np.mean(kl)), rel=1e-6)


def test_label_agreement_by_hand():
    assert label_agreement(np.eye(3)[[0, 1, 2, 2]], [0, 1, 2, 0]) == 0.75


def test_real_versus_real_is_far_below_real_versus_noise():
    images, labels = next(iter(load_images("digits", labels=True, batch_size=2000, shuffle=False)))
    images, labels = images.numpy(), labels.numpy()
    classifier = train_classifier(images[:1000], labels[:1000], epochs=8, batch_size=64)
    real_a, probabilities = classifier_outputs(classifier, images[:700])
    real_b, _ = classifier_outputs(classifier, images[700:1400])
    noise, _ = classifier_outputs(classifier, np.random.default_rng(0).random(images[:700].shape))
    assert frechet_distance(real_a, real_b) * 10 < frechet_distance(real_a, noise)
    assert kernel_distance(real_a, real_b, subset_size=300) * 10 < kernel_distance(real_a, noise, subset_size=300)
    assert label_agreement(probabilities, labels[:700]) > 0.9
    assert classifier_score(probabilities) > 5


def test_feature_sets_must_match():
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least two samples"):
        kernel_distance(np.zeros((1, 2)), np.zeros((5, 2)))


def test_generator_report_of_a_copying_generator_matches_real_data():
    from keras_bigml.data import load_images
    from keras_bigml.evaluation import generator_report

    images, labels = next(iter(load_images("digits", split="all", labels=True, batch_size=2000, shuffle=False)))
    images, labels = images.numpy(), labels.numpy()
    classifier = train_classifier(images[:1000], labels[:1000], epochs=20)

    class Copier:  # "generates" held-out real images of the requested class
        num_classes, latent_dim = 10, 2

        def generate(self, z, labels):
            pool = [images[1400:][labels_all == c] for c in range(10)]
            return np.stack([pool[c][i % len(pool[c])] for i, c in enumerate(labels)])

    labels_all = labels[1400:]
    report = generator_report(Copier(), classifier, images[:700], images[700:1400], num_samples=390)
    assert report["label_agreement"] > 0.8
    assert report["frechet_distance"] < 3 * report["real_frechet_distance"] + 1.0
    assert abs(report["classifier_score"] - report["real_classifier_score"]) < 1.5


def test_inception_features_for_small_grayscale_images_and_missing_weights(tmp_path):
    from keras_bigml.evaluation import inception_classifier

    model = inception_classifier(None, (16, 16, 1))
    features, probabilities = classifier_outputs(model, np.random.default_rng(0).random((2, 16, 16, 1)))
    assert features.shape == (2, 2048) and probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    with pytest.raises(FileNotFoundError, match="No Inception-v3 weights"):
        inception_classifier(str(tmp_path / "missing.h5"))
