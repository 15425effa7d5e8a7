"""Sampling from the prior and choosing labels, in one place, plus the batch checks of ``fit``.

Every caller that draws latent vectors or labels for a generator (``generate``,
the epoch grids, generator metrics, augmentation, the workflows) uses these.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np

from keras_bigml.errors import ConfigError, DataError

if TYPE_CHECKING:
    import tensorflow as tf


def latent_vectors(n: int, latent_dim: int, seed: int | None = 0) -> np.ndarray:
    """``n`` standard normal latent vectors, float32, from a numpy generator seeded with ``seed``.

    >>> latent_vectors(2, 3).shape, latent_vectors(2, 3).dtype.name
    ((2, 3), 'float32')
    >>> bool((latent_vectors(2, 3, seed=1) == latent_vectors(2, 3, seed=1)).all())
    True
    """
    return np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)


def per_class_labels(per_class: int, num_classes: int) -> np.ndarray:
    """``per_class`` labels of each class in turn, int32: ``0, 0, ..., 1, 1, ...``.

    >>> per_class_labels(2, 3).tolist()
    [0, 0, 1, 1, 2, 2]
    """
    return np.repeat(np.arange(num_classes, dtype=np.int32), per_class)


def sample_labels(n: int, labels: int | Sequence[int] | np.ndarray | None,
                  num_classes: int | None) -> np.ndarray | None:
    """Labels for ``n`` samples: None for unconditional models, else int32.

    Cycles through the classes when ``labels`` is None and repeats the given
    labels when fewer than ``n`` are given.

    >>> sample_labels(5, None, 3).tolist(), sample_labels(3, [7], 10).tolist()
    ([0, 1, 2, 0, 1], [7, 7, 7])
    """
    if not num_classes:
        return None
    if labels is None:
        return np.arange(n, dtype=np.int32) % num_classes
    labels = np.resize(np.asarray(labels, dtype=np.int32), n)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"labels must lie in 0..{num_classes - 1} for this model, got "
                          f"{labels.min()}..{labels.max()}.")
    return labels


def unpack_batch(data: "tf.Tensor | tuple | list", num_classes: int | None, model_name: str,
                 image_shape: Sequence[int] | None = None) -> "tuple[tf.Tensor, tf.Tensor | None]":
    """Split a ``fit`` batch into ``(images, labels)``; labels are None for unconditional models.

    A conditional model (``num_classes`` set) must get ``(images, labels)``
    batches; with ``image_shape`` the images' known dimensions must match it.

    >>> unpack_batch(("x", "y"), None, "VAE")
    ('x', None)
    """
    if isinstance(data, (tuple, list)):
        images, labels = data[0], data[1] if len(data) > 1 else None
    else:
        images, labels = data, None
    if image_shape is not None:
        check_image_batch(images, image_shape, model_name)
    if not num_classes:
        return images, None
    if labels is None:
        raise DataError(
            f"This {model_name} is conditional (num_classes={num_classes}): feed "
            "(images, labels) batches, e.g. load_images(..., labels=True)."
        )
    return images, labels


def check_image_batch(images: "tf.Tensor", image_shape: Sequence[int], model_name: str) -> None:
    """Raise a DataError naming both shapes when a batch's images do not fit ``image_shape``.

    >>> check_image_batch(np.zeros((2, 16, 16, 1)), (28, 28, 1), "GAN")
    Traceback (most recent call last):
    ...
    keras_bigml.errors.DataError: This GAN takes images of shape (28, 28, 1), got (16, 16, 1): load them with ...
    """
    shape = tuple(images.shape[1:])
    if len(shape) != len(image_shape) or any(
        got is not None and got != want for got, want in zip(shape, image_shape)
    ):
        raise DataError(
            f"This {model_name} takes images of shape {tuple(image_shape)}, got {shape}: load them "
            f"with image_size={image_shape[0]} and channels={image_shape[-1]}."
        )


def prior_inputs(n: int | None, labels: int | Sequence[int] | np.ndarray | None, z: np.ndarray | None, latent_dim: int,
                 num_classes: int | None,
                 seed_generator: keras.random.SeedGenerator) -> "tuple[np.ndarray | tf.Tensor, np.ndarray | None]":
    """Return ``(z, labels)`` for ``generate``: given ``z`` or ``n`` standard normal draws.

    >>> z, labels = prior_inputs(3, None, None, 2, 10, keras.random.SeedGenerator(0))
    >>> tuple(z.shape), labels.tolist()
    ((3, 2), [0, 1, 2])
    """
    if z is None:
        if n is not None and n < 1:
            raise ConfigError(f"generate needs at least one image, got n={n}.")
        if n is None:
            raise ConfigError("generate needs n (how many images) or z (latent vectors).")
        z = keras.random.normal((n, latent_dim), seed=seed_generator)
    return z, sample_labels(len(z), labels, num_classes)
