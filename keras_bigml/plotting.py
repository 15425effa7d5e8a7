"""Pictures people look at: image grids, confusion matrices, ROC curves, importances, latent maps."""

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from keras_bigml.errors import DataError
from keras_bigml.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def image_grid(images: np.ndarray, ncols: int | None = None, padding: int = 1) -> np.ndarray:
    """Tile images (N, H, W, C) in [0, 1] into one (rows*H, cols*W, C) array.

    >>> image_grid(np.ones((5, 2, 2, 1)), ncols=3).shape
    (5, 8, 1)
    """
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or len(images) == 0:
        raise DataError(f"image_grid needs a non-empty (N, H, W, C) array, got shape {images.shape}.")
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


def save_image_grid(images: np.ndarray, path: str | os.PathLike, ncols: int | None = None,
                    scale: int = 4) -> str | os.PathLike:
    """Save images in [0, 1] as one PNG grid (atomically); return the path.

    ``scale`` enlarges each pixel so small images stay visible.
    """
    from matplotlib.image import imsave

    grid = image_grid(images, ncols)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    with atomic_path(path, suffix=".png") as tmp:
        if grid.shape[-1] == 1:
            imsave(tmp, grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            imsave(tmp, grid)
    return path


def save_confusion_matrix(matrix: np.ndarray, classes: Sequence, path: str | os.PathLike) -> str | os.PathLike:
    """Confusion matrix heat map with counts (rows: true class, columns: predicted)."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = new_figure((size, size))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=45)
    ax.set_yticks(ticks, [str(c) for c in classes])
    for (row, col), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        ax.text(col, row, str(count), ha="center", va="center", color="white" if dark else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return save_figure(fig, path)


def save_roc_curve(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence,
                   path: str | os.PathLike) -> str | os.PathLike:
    """ROC curve per class (one-vs-rest) with its area under the curve."""
    from sklearn.metrics import auc, roc_curve

    fig, ax = new_figure((5, 5))
    y_true = np.asarray(y_true)
    shown = classes[1:] if len(classes) == 2 else classes
    for cls in shown:
        index = list(classes).index(cls)
        fpr, tpr, _ = roc_curve(y_true == cls, probabilities[:, index])
        ax.plot(fpr, tpr, label=f"{cls} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(fig, path)


def save_predicted_vs_true(y_true: np.ndarray, y_predicted: np.ndarray, path: str | os.PathLike) -> str | os.PathLike:
    """Scatter of predictions against true values, with the identity line."""
    fig, ax = new_figure((5, 5))
    ax.scatter(y_true, y_predicted, s=8, alpha=0.6)
    low = min(np.min(y_true), np.min(y_predicted))
    high = max(np.max(y_true), np.max(y_predicted))
    ax.plot([low, high], [low, high], "k--", linewidth=0.8)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    return save_figure(fig, path)


def save_feature_importance(names: Sequence[str], importances: Sequence[float], path: str | os.PathLike,
                            top: int = 20) -> str | os.PathLike:
    """Horizontal bars of the ``top`` most important features."""
    order = np.argsort(importances)[::-1][:top][::-1]
    fig, ax = new_figure((6, 0.3 * len(order) + 1.5))
    ax.barh([str(names[i]) for i in order], np.asarray(importances)[order])
    ax.set_xlabel("importance")
    return save_figure(fig, path)


def save_latent_map(coordinates: np.ndarray, labels: np.ndarray | None, grid_images: np.ndarray, grid_size: int,
                    extent: tuple[float, float, float, float], path: str | os.PathLike) -> str | os.PathLike:
    """Two panels: the dataset's 2-D coordinates coloured by label, and images decoded on a
    ``grid_size x grid_size`` grid over ``extent`` (x_min, x_max, y_min, y_max)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6))
    scatter_axes, grid_axes = fig.subplots(1, 2)
    coordinates = np.asarray(coordinates)
    if labels is None:
        scatter_axes.scatter(coordinates[:, 0], coordinates[:, 1], s=2, alpha=0.5)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            chosen = labels == value
            scatter_axes.scatter(coordinates[chosen, 0], coordinates[chosen, 1], s=2, alpha=0.6, label=str(value))
        scatter_axes.legend(markerscale=5, fontsize="small", loc="best")
    scatter_axes.set_xlim(extent[0], extent[1])
    scatter_axes.set_ylim(extent[2], extent[3])
    scatter_axes.set_title(f"{len(coordinates)} images in the latent plane")
    grid = image_grid(grid_images, ncols=grid_size, padding=0)
    grid_axes.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", extent=extent, aspect="auto")
    grid_axes.set_title("decoded over the same plane")
    return save_figure(fig, path)


def new_figure(figsize: tuple[float, float]) -> "tuple[Figure, Axes]":
    """A figure outside pyplot: no global state, no backend switch (notebooks keep theirs)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def save_figure(fig: "Figure", path: str | os.PathLike) -> str | os.PathLike:
    """Lay out ``fig`` and write it as a PNG at ``path`` atomically; return the path."""
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    return path
