import numpy as np
import pytest

from keras_bigml.bridges.augmentation import augmentation_gain, generated_examples
from keras_bigml.data import load_images
from keras_bigml.generative import GAN, VAE


def arrays(split, limit=None):
    images, labels = next(iter(load_images("digits", split=split, labels=True, batch_size=2000,
                                           shuffle=False, limit=limit)))
    return images.numpy(), labels.numpy()


class Copier:
    """A 'generator' that returns real images of the requested class: augmentation must then help."""

    num_classes, latent_dim = 10, 2

    def __init__(self, images, labels):
        self.by_class = [images[labels == c] for c in range(10)]

    def generate(self, z, labels):
        picks = np.random.default_rng(0).integers(0, 10_000, len(labels))
        return np.stack([self.by_class[c][i % len(self.by_class[c])] for c, i in zip(labels, picks)])


def test_generated_examples_are_balanced_and_reproducible():
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, num_classes=4, seed=0)
    images, labels = generated_examples(vae, per_class=3, seed=5)
    assert images.shape == (12, 8, 8, 1) and images.dtype == np.float32
    assert np.bincount(labels).tolist() == [3, 3, 3, 3]
    np.testing.assert_array_equal(images, generated_examples(vae, per_class=3, seed=5)[0])


@pytest.mark.large
def test_more_real_looking_data_raises_the_accuracy_of_a_starved_classifier():
    train, test = arrays("train"), arrays("test")
    scarce = (train[0][:30], train[1][:30])
    result = augmentation_gain(scarce, test, Copier(*train), per_class=50, classifier="logistic_regression")
    assert result["real_images"] == 30 and result["generated_images"] == 500
    assert result["real_and_generated"] > result["real"] + 0.1


def test_unconditional_generator_and_unknown_classifier_are_refused():
    gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,))
    with pytest.raises(ValueError, match="not conditional"):
        generated_examples(gan, per_class=2)
    with pytest.raises(ValueError, match="Unknown classifier 'knn'"):
        augmentation_gain(arrays("train", 10), arrays("test", 10), Copier(*arrays("train")), classifier="knn")
