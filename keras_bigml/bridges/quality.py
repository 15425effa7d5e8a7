"""Predicting the quality of generated images, one image at a time.

:class:`SampleQuality` scores each generated image and flags failed samples,
either with a classical model (random forest by default) fitted on simple image
statistics to tell real images from generated ones, or with a digit/domain
classifier's confidence.
"""

import numpy as np

from keras_bigml.errors import ConfigError

STATISTICS = (
    "mean", "std", "min", "max", "bright_fraction", "dark_fraction", "edge_energy", "histogram_entropy",
)


def image_statistics(images: np.ndarray) -> np.ndarray:
    """Per-image statistics of images in [0, 1]: one row of ``STATISTICS`` per image.

    >>> image_statistics(np.zeros((2, 4, 4, 1))).shape
    (2, 8)
    """
    images = np.asarray(images, np.float64)
    flat = images.reshape(len(images), -1)
    dy = np.abs(np.diff(images, axis=1)).reshape(len(images), -1).mean(axis=1)
    dx = np.abs(np.diff(images, axis=2)).reshape(len(images), -1).mean(axis=1)
    bins = np.stack([np.histogram(row, bins=8, range=(0.0, 1.0))[0] for row in flat]) / flat.shape[1]
    entropy = -np.sum(bins * np.log(np.where(bins > 0, bins, 1.0)), axis=1)  # empty bins add 0
    return np.column_stack([
        flat.mean(axis=1), flat.std(axis=1), flat.min(axis=1), flat.max(axis=1),
        (flat > 0.5).mean(axis=1), (flat < 0.1).mean(axis=1), dx + dy, entropy,
    ])


class SampleQuality:
    """Score generated images from 0 (failed) to 1 (looks real) and flag the failures.

    Parameters
    ----------
    method : {"statistics", "classifier"}
        ``statistics``: a classical model on :func:`image_statistics` learns real
        (1) versus generated (0); the score is its probability of "real".
        ``classifier``: the highest class probability of ``classifier``, or,
        when ``score`` and ``flag`` get the labels a conditional generator was
        asked for, the probability of each image's own label (a sample the
        classifier reads as another digit then fails).
    algorithm : str
        `keras_bigml.classical.make_model` name for ``statistics``.
    classifier : keras.Model, optional
        For ``classifier``: a model that outputs class probabilities.
    threshold : float
        Images scoring below it are flagged.
    random_state : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = rng.random((60, 8, 8, 1)) * (rng.random((60, 1, 1, 1)) > 0.3)
    >>> noise = rng.random((60, 8, 8, 1)) * 0.2
    >>> quality = SampleQuality(random_state=0).fit(real, noise)
    >>> bool(quality.score(real[:5]).mean() > quality.score(noise[:5]).mean())
    True
    >>> quality.flag(noise[:3]).tolist()
    [True, True, True]
    """

    def __init__(self, method="statistics", algorithm="random_forest", classifier=None, threshold=0.5,
                 random_state=None):
        if method not in ("statistics", "classifier"):
            raise ConfigError(f"Unknown method {method!r}: use 'statistics' or 'classifier'.")
        if method == "classifier" and classifier is None:
            raise ConfigError("method='classifier' needs classifier=, a Keras model giving class probabilities.")
        self.method = method
        self.algorithm = algorithm
        self.classifier = classifier
        self.threshold = threshold
        self.random_state = random_state
        self.model_ = None

    def fit(self, real_images: np.ndarray, generated_images: np.ndarray) -> "SampleQuality":
        """Learn real versus generated from image statistics (nothing to learn for ``classifier``)."""
        if self.method == "statistics":
            from keras_bigml.classical import make_model

            features = np.concatenate([image_statistics(real_images), image_statistics(generated_images)])
            labels = np.concatenate([np.ones(len(real_images), int), np.zeros(len(generated_images), int)])
            self.model_ = make_model(self.algorithm, "classification", random_state=self.random_state)
            self.model_.fit(features, labels)
        return self

    def score(self, images: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """One score in [0, 1] per image; higher means more like a good sample.

        ``labels`` (``classifier`` only): the class each image should show.
        """
        if self.method == "classifier":
            probabilities = self.classifier.predict(np.asarray(images, np.float32), batch_size=500, verbose=0)
            if labels is None:
                return probabilities.max(axis=1)
            return probabilities[np.arange(len(probabilities)), np.asarray(labels, int)]
        if labels is not None:
            raise ConfigError("labels= needs method='classifier': image statistics do not know the classes.")
        if self.model_ is None:
            raise ConfigError("Call fit(real_images, generated_images) before scoring.")
        return self.model_.predict_proba(image_statistics(images))[:, 1]

    def flag(self, images: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """True for each image whose score is below ``threshold``."""
        return self.score(images, labels) < self.threshold
