import numpy as np
import pytest

from keras_bigml.bridges.latent_map import LatentMap
from keras_bigml.generative import VAE


def test_two_dimensional_latents_are_the_coordinates_and_the_grid_spans_them(tmp_path):
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
    images = np.random.default_rng(0).random((30, 8, 8, 1)).astype("float32")
    latent_map = LatentMap(vae, batch_size=7).fit(images)
    np.testing.assert_allclose(latent_map.coordinates_, np.asarray(vae.encode(images)[0]), atol=1e-6)
    x_min, x_max, y_min, y_max = latent_map.extent()
    grid = latent_map.decoded_grid(3)
    # Top-left of the grid decodes (x_min, y_max); bottom-right (x_max, y_min).
    np.testing.assert_allclose(grid[0], vae.decode(np.array([[x_min, y_max]], "float32"))[0], atol=1e-6)
    np.testing.assert_allclose(grid[-1], vae.decode(np.array([[x_max, y_min]], "float32"))[0], atol=1e-6)
    assert latent_map.save(str(tmp_path / "map.png"), grid_size=3) == str(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000


def test_larger_latents_are_projected_and_conditional_vaes_refused():
    vae = VAE(image_shape=(8, 8, 1), latent_dim=5, filters=(8,), hidden_units=16, seed=0)
    images = np.random.default_rng(1).random((40, 8, 8, 1)).astype("float32")
    latent_map = LatentMap(vae).fit(images, labels=np.arange(40) % 4)
    assert latent_map.coordinates_.shape == (40, 2)
    assert abs(latent_map.coordinates_.mean(axis=0)).max() < 1e-6  # PCA centres the plane
    with pytest.raises(ValueError, match="unconditional VAE"):
        LatentMap(VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, num_classes=3))
    with pytest.raises(ValueError, match="at least 2 images"):
        latent_map.fit(images[:1])
