import numpy as np
import pytest
from PIL import Image

from keras_bigml.callbacks import ImageGridCallback, TimeLimit
from keras_bigml.data import load_images
from keras_bigml.generative import VAE

TINY = dict(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)


def compiled_vae():
    vae = VAE(**TINY, seed=0)
    vae.compile(optimizer="adam")
    return vae


@pytest.mark.large
def test_image_grid_every_second_epoch_from_fixed_latents(tmp_path):
    vae = compiled_vae()
    callback = ImageGridCallback(str(tmp_path), num_images=4, every=2)
    vae.fit(load_images(limit=32), epochs=4, verbose=0, callbacks=[callback])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_002.png", "epoch_004.png"]
    # Without training in between, the same latents give the same picture again.
    before = np.asarray(Image.open(tmp_path / "epoch_004.png"))
    callback.on_epoch_end(3)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "epoch_004.png")), before)
    vae.fit(load_images(limit=32), epochs=1, verbose=0)
    callback.on_epoch_end(3)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "epoch_004.png")), before)


@pytest.mark.large
def test_time_limit_stops_training_early():
    vae = compiled_vae()
    history = vae.fit(load_images(limit=32), epochs=50, verbose=0, callbacks=[TimeLimit(0.5)])
    assert 1 <= len(history.history["loss"]) < 50


@pytest.mark.large
def test_tensorboard_logs_losses_and_sample_grids_that_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    from keras_bigml.workflows.generative import ImageSource, TrainingOptions, train_vae

    train_vae(tmp_path / "run", ImageSource("digits", limit=32),
              TrainingOptions(epochs=2, batch_size=16, seed=0, tensorboard=True, verbose=0),
              latent_dim=2, filters=(8,), hidden_units=16)
    runs = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "run" / "tensorboard"))
    runs.Reload()
    tags = runs.Runs()
    assert {"epoch_loss", "epoch_kl_loss", "epoch_reconstruction_loss"} <= set(tags["train"]["tensors"])
    assert tags["samples"]["tensors"] == ["samples"]
    grids = runs.Tensors("samples", "samples")
    assert [event.step for event in grids] == [1, 2]
    losses = runs.Tensors("train", "epoch_loss")
    assert len(losses) == 2
