"""Pictures people look at: image grids (more plots join as the package grows)."""

import math

import numpy as np

from keras_bigml.files import atomic_path


def image_grid(images, ncols=None, padding=1):
    """Tile images (N, H, W, C) in [0, 1] into one (rows*H, cols*W, C) array.

    >>> image_grid(np.ones((5, 2, 2, 1)), ncols=3).shape
    (5, 8, 1)
    """
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"image_grid needs a non-empty (N, H, W, C) array, got shape {images.shape}.")
    n, height, width, channels = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = np.ones(
        (nrows * (height + padding) - padding, ncols * (width + padding) - padding, channels),
        dtype=np.float32,
    )
    for index, image in enumerate(images):
        row, col = divmod(index, ncols)
        top, left = row * (height + padding), col * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_image_grid(images, path, ncols=None, scale=4):
    """Save images in [0, 1] as one PNG grid (atomically); return the path.

    ``scale`` enlarges each pixel so small images stay visible.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, ncols)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    with atomic_path(path, suffix=".png") as tmp:
        if grid.shape[-1] == 1:
            plt.imsave(tmp, grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            plt.imsave(tmp, grid)
    return path
