import numpy as np
import pytest

from keras_bigml.errors import ConfigError, DataError
from keras_bigml.generative.sampling import latent_vectors, per_class_labels, sample_labels, unpack_batch


def test_sample_labels_cycle_repeat_and_check_range():
    assert sample_labels(4, None, None) is None
    assert sample_labels(7, None, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert sample_labels(5, [4, 2], 5).tolist() == [4, 2, 4, 2, 4]
    assert sample_labels(2, 1, 3).dtype.name == "int32"
    with pytest.raises(ConfigError, match=r"labels must lie in 0..2 for this model, got -1..-1"):
        sample_labels(2, [-1], 3)
    with pytest.raises(ConfigError, match=r"got 0..12"):
        sample_labels(2, [0, 12], 10)


def test_latent_vectors_are_seeded_standard_normal_and_labels_come_per_class():
    z = latent_vectors(4000, 2, seed=3)
    assert z.dtype == np.float32 and abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    np.testing.assert_array_equal(z, latent_vectors(4000, 2, seed=3))
    assert not np.array_equal(z, latent_vectors(4000, 2, seed=4))
    assert per_class_labels(3, 2).tolist() == [0, 0, 0, 1, 1, 1]


def test_unpack_batch():
    assert unpack_batch("images", None, "GAN") == ("images", None)
    assert unpack_batch(("images", "labels"), None, "GAN") == ("images", None)
    assert unpack_batch(("images", "labels"), 10, "GAN") == ("images", "labels")
    with pytest.raises(DataError, match=r"This VAE is conditional \(num_classes=3\)"):
        unpack_batch("images", 3, "VAE")


def test_prior_inputs_draw_or_pass_latents():
    import keras
    import numpy as np

    from keras_bigml.generative.sampling import prior_inputs

    z, labels = prior_inputs(4, None, None, 3, None, keras.random.SeedGenerator(0))
    assert tuple(z.shape) == (4, 3) and labels is None
    given = np.ones((2, 3), np.float32)
    z, labels = prior_inputs(None, 5, given, 3, 10, None)
    assert z is given and labels.tolist() == [5, 5]
    with pytest.raises(ConfigError, match="needs n"):
        prior_inputs(None, None, None, 3, None, None)
    with pytest.raises(ConfigError, match="at least one image, got n=0"):
        prior_inputs(0, None, None, 3, None, None)
