import numpy as np
import pytest
from PIL import Image

from keras_bigml.plotting import image_grid, save_image_grid


def test_image_grid_places_images_row_by_row_with_white_padding():
    images = np.stack([np.full((2, 2, 1), v) for v in (0.0, 0.25, 0.5)])
    grid = image_grid(images, ncols=2)
    assert grid.shape == (5, 5, 1)
    assert grid[0, 0, 0] == 0.0 and grid[0, 3, 0] == 0.25 and grid[3, 0, 0] == 0.5
    assert grid[2, 0, 0] == 1.0 and grid[3, 3, 0] == 1.0


def test_save_image_grid_writes_a_scaled_png(tmp_path):
    path = save_image_grid(np.random.rand(4, 3, 3, 3), tmp_path / "g.png", scale=2)
    with Image.open(path) as image:
        assert image.size == (14, 14)


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        image_grid(np.zeros((0, 2, 2, 1)))


def test_classical_plots_write_pngs(tmp_path):
    from keras_bigml.plotting import (
        save_confusion_matrix,
        save_feature_importance,
        save_predicted_vs_true,
        save_roc_curve,
    )

    paths = [
        save_confusion_matrix([[3, 1], [0, 4]], ["a", "b"], tmp_path / "cm.png"),
        save_roc_curve(np.array([0, 1, 1, 0]), np.array([[0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.6, 0.4]]),
                       [0, 1], tmp_path / "roc.png"),
        save_predicted_vs_true([1.0, 2.0, 3.0], [1.1, 1.9, 3.2], tmp_path / "pvt.png"),
        save_feature_importance(["x", "y", "z"], [0.2, 0.5, 0.3], tmp_path / "fi.png"),
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
