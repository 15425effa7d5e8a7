"""Generated images as extra training data: train a classifier with and without them.

A conditional generator (a `keras_bigml.generative.GAN` or `VAE` with
``num_classes``) draws labelled images; :func:`augmentation_gain` fits the same
classifier on the real images alone and on real plus generated ones, and
reports both test accuracies. :func:`pseudo_labels` labels unlabelled images
with a classifier, so that the generator can learn from more than the few
labelled ones.
"""

from typing import TYPE_CHECKING

import numpy as np

from keras_bigml.errors import ConfigError

if TYPE_CHECKING:
    from keras_bigml.bridges.quality import SampleQuality
    from keras_bigml.generative.base import GenerativeModel

CLASSIFIERS = ("cnn", "logistic_regression", "svm", "random_forest", "gradient_boosting")


def generated_examples(generator: "GenerativeModel", per_class: int, seed: int = 0,
                       quality: "SampleQuality | None" = None,
                       draws_per_image: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``per_class`` labelled images of every class from a conditional generator.

    With ``quality`` (a :class:`~keras_bigml.bridges.SampleQuality`), it draws
    ``draws_per_image * per_class`` images per class, drops those it flags
    (given the labels asked for, so a ``classifier`` judge drops digits it reads
    as another class) and keeps the first ``per_class`` of each class that
    pass; a class may then come back with fewer.

    Returns ``(images, labels)``: float32 images in [0, 1] and int32 labels.

    >>> from keras_bigml.generative import GAN
    >>> gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,),
    ...           discriminator_filters=(8,), num_classes=3, seed=0)
    >>> images, labels = generated_examples(gan, per_class=2)
    >>> images.shape, labels.tolist()
    ((6, 8, 8, 1), [0, 0, 1, 1, 2, 2])
    """
    if not getattr(generator, "num_classes", None):
        raise ConfigError(
            f"{type(generator).__name__} is not conditional: build it with num_classes to draw labelled images."
        )
    if draws_per_image < 1:
        raise ConfigError(f"draws_per_image must be at least 1, got {draws_per_image}.")
    draws = per_class if quality is None else per_class * draws_per_image
    labels = np.repeat(np.arange(generator.num_classes, dtype=np.int32), draws)
    z = np.random.default_rng(seed).standard_normal((len(labels), generator.latent_dim)).astype(np.float32)
    images = generator.generate(z=z, labels=labels).astype(np.float32)
    if quality is None:
        return images, labels
    passed = ~quality.flag(images, labels)
    keep = np.concatenate([np.flatnonzero(passed & (labels == c))[:per_class] for c in range(generator.num_classes)])
    return images[keep], labels[keep]


def pseudo_labels(classifier, images: np.ndarray, min_confidence: float = 0.99,
                  batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Label unlabelled images with ``classifier``, keeping those it reads with ``min_confidence``.

    The usual way to train a conditional generator when only a few images have
    labels (self-training): a classifier fitted on the labelled ones labels the
    rest, and the generator learns from both. ``classifier`` is any model with
    Keras's ``predict(images, batch_size=, verbose=)`` returning class
    probabilities, e.g. `keras_bigml.evaluation.train_classifier`'s CNN.

    Returns ``(indices, labels)``: the positions in ``images`` of the kept ones,
    and their labels (int32).

    >>> class Brightness:  # reads an image's class from its mean brightness
    ...     def predict(self, images, batch_size, verbose):
    ...         bright = images.mean(axis=(1, 2, 3))
    ...         return np.stack([1 - bright, bright], axis=1)
    >>> images = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.0, 0.5, 1.0)])
    >>> kept, labels = pseudo_labels(Brightness(), images, min_confidence=0.9)
    >>> kept.tolist(), labels.tolist()
    ([0, 2], [0, 1])
    """
    if not 0 <= min_confidence <= 1:
        raise ConfigError(f"min_confidence must be in [0, 1], got {min_confidence}.")
    probabilities = np.asarray(classifier.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0))
    kept = np.flatnonzero(probabilities.max(axis=1) >= min_confidence)
    return kept, probabilities[kept].argmax(axis=1).astype(np.int32)


def augmentation_gain(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], generator: "GenerativeModel",
    per_class: int = 1000, classifier: str = "cnn", epochs: int = 10, seed: int = 0,
    quality: "SampleQuality | None" = None, augment: bool = False,
) -> dict:
    """Test accuracy of ``classifier`` trained on ``train`` alone and on ``train`` plus generated images.

    The CNN trained on the real images alone takes as many optimizer steps as
    the one trained on real plus generated images: it runs ``epochs`` times
    (real + generated) / real epochs over its smaller set. With equal epochs
    instead, the real-only CNN would stop undertrained and the gain would look
    larger than it is (on 100 MNIST digits per class: 93.4% after 20 epochs,
    95.7% after the 220 that match 20 epochs with 1,000 generated per class).

    Parameters
    ----------
    train, test : (images, labels)
        Real labelled images in [0, 1].
    generator : conditional GAN or VAE
    per_class : int
        Generated images per class.
    classifier : {"cnn", "logistic_regression", "svm", "random_forest", "gradient_boosting"}
        ``cnn`` is `keras_bigml.evaluation.train_classifier`; the others are
        `keras_bigml.classical.make_model` pipelines on the flattened pixels.
    epochs : int
        Training epochs of the CNN over real plus generated images.
    seed : int
    quality : SampleQuality, optional
        Drops the generated images it flags (see :func:`generated_examples`),
        e.g. ``SampleQuality(method="classifier", classifier=judge,
        threshold=0.99)`` with a judge trained on the real images.
    augment : bool
        Train both CNNs with `train_classifier`'s random rotations, shifts and
        zooms, to see what generated images add beyond classical augmentation.

    Returns
    -------
    dict with ``real``, ``real_and_generated`` (accuracies), ``real_images``,
    ``generated_images`` and the CNN's ``real_epochs`` (None for the other
    classifiers).

    Examples
    --------
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.generative import GAN
    >>> def arrays(split):
    ...     images, labels = next(iter(load_images("digits", split=split, labels=True, batch_size=400)))
    ...     return images.numpy(), labels.numpy()
    >>> gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,),
    ...           discriminator_filters=(8,), num_classes=10, seed=0)
    >>> result = augmentation_gain(arrays("train"), arrays("test"), gan, per_class=5,
    ...                            classifier="logistic_regression")
    >>> sorted(result), result["generated_images"]
    (['generated_images', 'real', 'real_and_generated', 'real_epochs', 'real_images'], 50)
    """
    if classifier not in CLASSIFIERS:
        raise ConfigError(f"Unknown classifier {classifier!r}: use one of {', '.join(CLASSIFIERS)}.")
    if augment and classifier != "cnn":
        raise ConfigError(f"augment=True moves images for the CNN; {classifier!r} reads flattened pixels.")
    real_images, real_labels = (np.asarray(a) for a in train)
    test_images, test_labels = (np.asarray(a) for a in test)
    fake_images, fake_labels = generated_examples(generator, per_class, seed, quality=quality)
    mixed = (np.concatenate([real_images, fake_images]), np.concatenate([real_labels, fake_labels]))
    real_epochs = round(epochs * len(mixed[0]) / len(real_images)) if classifier == "cnn" else None
    test = (test_images, test_labels)
    return {
        "real": _accuracy(classifier, (real_images, real_labels), test, real_epochs, seed, augment),
        "real_and_generated": _accuracy(classifier, mixed, test, epochs, seed, augment),
        "real_images": len(real_images),
        "generated_images": len(fake_images),
        "real_epochs": real_epochs,
    }


def _accuracy(classifier, train, test, epochs, seed, augment):
    (images, labels), (test_images, test_labels) = train, test
    if classifier == "cnn":
        from keras_bigml.evaluation.generative import train_classifier

        model = train_classifier(images, labels, epochs=epochs, seed=seed, augment=augment)
        predicted = model.predict(np.asarray(test_images, np.float32), batch_size=500, verbose=0).argmax(axis=1)
        return float(np.mean(predicted == test_labels))
    from keras_bigml.classical import make_model

    flat = lambda batch: np.asarray(batch, np.float32).reshape(len(batch), -1)
    model = make_model(classifier, "classification", random_state=seed).fit(flat(images), labels)
    return float(model.score(flat(test_images), test_labels))
