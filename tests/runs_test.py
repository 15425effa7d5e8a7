import json

import keras
import pytest
import tensorflow as tf

from keras_bigml.data import load_images
from keras_bigml.generative import VAE
from keras_bigml.runs import example_pairs, fit_and_save, load_run_model


def test_fit_and_save_writes_a_complete_run_directory(tmp_path):
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
    vae.compile(optimizer="adam")
    paths = fit_and_save(vae, load_images(limit=64), str(tmp_path), epochs=2, verbose=0)
    history = json.load(open(paths["history"]))
    assert len(history["loss"]) == 2 and set(history) == {"loss", "reconstruction_loss", "kl_loss"}
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert "decode" in tf.saved_model.load(paths["saved_model"]).signatures
    reloaded = load_run_model(str(tmp_path))
    assert int(reloaded.optimizer.iterations) == int(vae.optimizer.iterations)


def test_load_run_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No trained model"):
        load_run_model(str(tmp_path))
    (tmp_path / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable Keras model"):
        load_run_model(str(tmp_path))


def test_example_pairs_takes_the_first_images_of_each_domain():
    a = tf.reshape(tf.range(10, dtype=tf.float32), (10, 1, 1, 1))
    pairs = tf.data.Dataset.from_tensor_slices((a, -a)).batch(3)
    images_a, images_b = example_pairs(pairs, count=4)
    assert images_a.ravel().tolist() == [0, 1, 2, 3] and images_b.ravel().tolist() == [0, -1, -2, -3]
