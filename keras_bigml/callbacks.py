"""Keras callbacks for generative training."""

import os
import time

import keras
import numpy as np

from keras_bigml.plotting import save_image_grid


class ImageGridCallback(keras.callbacks.Callback):
    """Save a grid of generated images after every ``every`` epochs.

    The same latent vectors are decoded each time, so the grids show how one set
    of samples evolves. Works with any model that has ``latent_dim`` and
    ``generate(n, labels=None, z=None)``, and with translation models
    (``translation_examples(images_a, images_b)``) given ``examples``.

    Parameters
    ----------
    directory : str
        Where ``epoch_001.png``, ``epoch_002.png``, ... are written.
    num_images : int
    every : int
    seed : int
    examples : (array, array), optional
        Images of domain A and B whose translations each grid shows, one row each.

    Examples
    --------
    >>> import tempfile
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.generative import VAE
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> vae.compile(optimizer="adam")
    >>> out = tempfile.mkdtemp()
    >>> _ = vae.fit(load_images("digits", limit=32), epochs=2, verbose=0,
    ...             callbacks=[ImageGridCallback(out, num_images=9)])
    >>> sorted(os.listdir(out))
    ['epoch_001.png', 'epoch_002.png']
    """

    def __init__(self, directory, num_images=64, every=1, seed=0, examples=None):
        super().__init__()
        self.directory = directory
        self.num_images = num_images
        self.every = every
        self.seed = seed
        self.examples = examples
        self._z = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        path = os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png")
        if self.examples is not None:
            save_image_grid(self.model.translation_examples(*self.examples), path, ncols=6)
            return
        if self._z is None:
            rng = np.random.default_rng(self.seed)
            self._z = rng.standard_normal((self.num_images, self.model.latent_dim)).astype("float32")
        save_image_grid(self.model.generate(z=self._z), path)


class TimeLimit(keras.callbacks.Callback):
    """Stop training before an epoch would end past ``seconds`` of wall time.

    The next epoch is assumed to last as long as the slowest one so far.

    >>> TimeLimit(60).seconds
    60
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self._start = None
        self._epoch_start = None
        self._slowest_epoch = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self._slowest_epoch = max(self._slowest_epoch, now - self._epoch_start)
        if now - self._start + self._slowest_epoch > self.seconds:
            self.model.stop_training = True
