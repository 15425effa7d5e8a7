"""A VAE's latent space as a picture of a large dataset.

:class:`LatentMap` encodes every image to its posterior mean (in batches), keeps
two coordinates (PCA when the latent space has more than two dimensions), and
decodes a grid of points over that plane, so one figure shows where each class
lives and what the model draws there.
"""

import os

import numpy as np

from keras_bigml.errors import ConfigError, DataError
from keras_bigml.plotting import save_latent_map


class LatentMap:
    """Encode a dataset with an unconditional VAE and draw it in two dimensions.

    Parameters
    ----------
    vae : keras_bigml.generative.VAE
    batch_size : int

    Examples
    --------
    >>> import os, tempfile
    >>> from keras_bigml.generative import VAE
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=3, filters=(8,), hidden_units=16, seed=0)
    >>> images = np.random.default_rng(0).random((50, 8, 8, 1)).astype("float32")
    >>> latent_map = LatentMap(vae).fit(images, labels=np.arange(50) % 5)
    >>> latent_map.coordinates_.shape, latent_map.decoded_grid(4).shape
    ((50, 2), (16, 8, 8, 1))
    >>> os.path.basename(latent_map.save(os.path.join(tempfile.mkdtemp(), "map.png"), grid_size=4))
    'map.png'
    """

    def __init__(self, vae, batch_size=1000):
        if getattr(vae, "num_classes", None):
            raise ConfigError("A latent map needs an unconditional VAE (this one takes labels).")
        self.vae = vae
        self.batch_size = batch_size
        self.projection_ = None

    def fit(self, images: np.ndarray, labels: np.ndarray | None = None) -> "LatentMap":
        """Encode ``images`` (posterior means) and keep their 2-D coordinates."""
        from tqdm.auto import tqdm

        images = np.asarray(images, np.float32)
        if len(images) < 2:
            raise DataError(f"A latent map needs at least 2 images, got {len(images)}.")
        means = [
            np.asarray(self.vae.encode(images[i : i + self.batch_size])[0])
            for i in tqdm(range(0, len(images), self.batch_size), desc="encoding", leave=False,
                          disable=len(images) <= self.batch_size)
        ]
        latent = np.concatenate(means)
        if latent.shape[1] > 2:
            from sklearn.decomposition import PCA

            self.projection_ = PCA(n_components=2, random_state=0).fit(latent)
            self.coordinates_ = self.projection_.transform(latent)
        else:
            self.coordinates_ = latent
        self.labels_ = None if labels is None else np.asarray(labels)
        return self

    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)``: the 1st to 99th percentile of the coordinates."""
        low, high = np.percentile(self.coordinates_, [1, 99], axis=0)
        return low[0], high[0], low[1], high[1]

    def decoded_grid(self, size: int = 15) -> np.ndarray:
        """Decode ``size x size`` points spread over :meth:`extent`, top row first."""
        x_min, x_max, y_min, y_max = self.extent()
        xs, ys = np.linspace(x_min, x_max, size), np.linspace(y_max, y_min, size)
        plane = np.array([[x, y] for y in ys for x in xs])
        z = self.projection_.inverse_transform(plane) if self.projection_ is not None else plane
        return np.asarray(self.vae.decode(z.astype(np.float32)))

    def save(self, path: str | os.PathLike, grid_size: int = 15) -> str | os.PathLike:
        """Write the scatter of the dataset beside the decoded grid as one PNG; return ``path``."""
        return save_latent_map(self.coordinates_, self.labels_, self.decoded_grid(grid_size), grid_size,
                               self.extent(), path)
