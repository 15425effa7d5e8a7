import numpy as np
import pytest

from keras_bigml.bridges.quality import STATISTICS, SampleQuality, image_statistics
from keras_bigml.data import load_images


def digits(limit=300):
    return next(iter(load_images("digits", batch_size=limit, shuffle=False))).numpy()


def test_statistics_by_hand():
    image = np.zeros((1, 2, 2, 1))
    image[0, 0, 0, 0] = 1.0
    row = dict(zip(STATISTICS, image_statistics(image)[0]))
    assert row["mean"] == 0.25 and row["max"] == 1.0 and row["min"] == 0.0
    assert row["bright_fraction"] == 0.25 and row["dark_fraction"] == 0.75
    assert row["edge_energy"] == pytest.approx(0.5 + 0.5)   # mean |dy| + mean |dx|
    assert row["histogram_entropy"] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))


def test_statistics_model_flags_broken_samples_and_passes_real_ones():
    real = digits()
    rng = np.random.default_rng(0)
    broken = np.clip(rng.normal(0.5, 0.3, real.shape), 0, 1)  # noise, as from a collapsed generator
    quality = SampleQuality(random_state=0).fit(real[:200], broken[:200])
    assert quality.flag(broken[200:]).mean() > 0.9
    assert quality.flag(real[200:]).mean() < 0.1


def test_classifier_method_scores_by_confidence():
    class Fixed:
        def predict(self, images, batch_size, verbose):
            return np.array([[0.9, 0.1], [0.5, 0.5]])

    quality = SampleQuality(method="classifier", classifier=Fixed(), threshold=0.6)
    np.testing.assert_allclose(quality.score(np.zeros((2, 4, 4, 1))), [0.9, 0.5])
    assert quality.flag(np.zeros((2, 4, 4, 1))).tolist() == [False, True]


def test_classifier_method_with_labels_scores_the_asked_for_class():
    class Fixed:
        def predict(self, images, batch_size, verbose):
            return np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])

    quality = SampleQuality(method="classifier", classifier=Fixed(), threshold=0.6)
    images = np.zeros((3, 4, 4, 1))
    np.testing.assert_allclose(quality.score(images, labels=[1, 1, 0]), [0.1, 0.7, 0.2])
    assert quality.flag(images, labels=[0, 1, 0]).tolist() == [False, False, True]


def test_misuse_is_named():
    with pytest.raises(ValueError, match="Unknown method"):
        SampleQuality(method="vibes")
    with pytest.raises(ValueError, match="needs classifier="):
        SampleQuality(method="classifier")
    with pytest.raises(ValueError, match="Call fit"):
        SampleQuality().score(np.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="labels= needs method='classifier'"):
        SampleQuality().score(np.zeros((1, 4, 4, 1)), labels=[0])
