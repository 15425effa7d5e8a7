import numpy as np
import pytest

from keras_bigml.bridges import SampleQuality
from keras_bigml.bridges.augmentation import augmentation_gain, generated_examples, pseudo_labels
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


class HalfWrong:
    """A conditional 'generator' whose images show the asked-for class only where z[0] > 0.

    An image of class c is filled with c / 10; the wrong ones show class c + 1.
    """

    num_classes, latent_dim = 4, 2

    def generate(self, z, labels):
        shown = np.where(z[:, 0] > 0, labels, (labels + 1) % self.num_classes)
        return np.broadcast_to((shown / 10.0)[:, None, None, None], (len(z), 4, 4, 1)).copy()


class PixelReader:
    """A 'classifier' that reads HalfWrong's images exactly (one-hot probabilities)."""

    def predict(self, images, batch_size, verbose):
        return np.eye(HalfWrong.num_classes)[np.rint(images.mean(axis=(1, 2, 3)) * 10).astype(int)]


def test_quality_filter_keeps_only_images_the_judge_reads_as_their_label():
    judge = SampleQuality(method="classifier", classifier=PixelReader(), threshold=0.5)
    images, labels = generated_examples(HalfWrong(), per_class=5, seed=0, quality=judge)
    np.testing.assert_array_equal(np.rint(images.mean(axis=(1, 2, 3)) * 10), labels)
    assert np.bincount(labels).tolist() == [5, 5, 5, 5]  # 15 draws per class, about half of them pass
    unfiltered_images, unfiltered_labels = generated_examples(HalfWrong(), per_class=5, seed=0)
    assert (np.rint(unfiltered_images.mean(axis=(1, 2, 3)) * 10) != unfiltered_labels).any()
    few, few_labels = generated_examples(HalfWrong(), per_class=5, seed=0, quality=judge, draws_per_image=1)
    assert len(few) < 20 and (np.rint(few.mean(axis=(1, 2, 3)) * 10) == few_labels).all()


def test_real_only_cnn_takes_as_many_steps_as_the_augmented_one(monkeypatch):
    import keras_bigml.evaluation.generative as generative

    trained = []

    class Constant:
        def predict(self, images, batch_size, verbose):
            return np.eye(10)[np.zeros(len(images), int)]

    def fake_train_classifier(images, labels, epochs, seed, augment):
        trained.append((len(images), epochs, augment))
        return Constant()

    monkeypatch.setattr(generative, "train_classifier", fake_train_classifier)
    train = arrays("train", 50)
    result = augmentation_gain(train, arrays("test", 20), Copier(*arrays("train")), per_class=10, epochs=4,
                               augment=True)
    assert trained == [(50, 12, True), (150, 4, True)]  # 50 images x 12 epochs = 150 x 4
    assert result["real_epochs"] == 12


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
    with pytest.raises(ValueError, match="augment=True moves images for the CNN"):
        augmentation_gain(arrays("train", 10), arrays("test", 10), Copier(*arrays("train")), classifier="svm",
                          augment=True)
    with pytest.raises(ValueError, match="draws_per_image must be at least 1"):
        generated_examples(HalfWrong(), per_class=2, draws_per_image=0)


def test_pseudo_labels_keep_the_images_the_classifier_is_sure_of():
    images = np.broadcast_to((np.arange(8) % 4 / 10.0)[:, None, None, None], (8, 4, 4, 1)).copy()
    images[[1, 6]] += 0.04   # off the classes' levels: PixelReader still reads them, less sure

    class UnsureReader(PixelReader):
        def predict(self, images, batch_size, verbose):
            sure = np.abs(images.mean(axis=(1, 2, 3)) * 10 - np.rint(images.mean(axis=(1, 2, 3)) * 10)) < 0.1
            return np.where(sure[:, None], super().predict(images, batch_size, verbose), 0.6 * np.eye(4)[0] + 0.1)

    kept, labels = pseudo_labels(UnsureReader(), images, min_confidence=0.9)
    assert kept.tolist() == [0, 2, 3, 4, 5, 7]
    assert labels.dtype == np.int32 and labels.tolist() == [0, 2, 3, 0, 1, 3]
    assert len(pseudo_labels(UnsureReader(), images, min_confidence=0.5)[0]) == 8
    with pytest.raises(ValueError, match="min_confidence must be in"):
        pseudo_labels(UnsureReader(), images, min_confidence=1.5)
