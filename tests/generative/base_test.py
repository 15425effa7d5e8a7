import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.errors import ConfigError
from keras_bigml.generative import GAN, VAE, CycleGAN
from keras_bigml.generative.base import GenerativeModel, LatentGenerativeModel, TranslationModel

TINY_CYCLEGAN = dict(generator_filters=4, discriminator_filters=4, residual_blocks=1, discriminator_layers=1)


def test_the_contract_cannot_be_instantiated_without_its_methods():
    class Incomplete(LatentGenerativeModel):
        kind = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_each_model_declares_its_networks_and_their_optimizers():
    gan = GAN((8, 8, 1), latent_dim=2, generator_filters=(4,), discriminator_filters=(4,))
    gan.compile()
    assert gan.kind == "gan" and isinstance(gan, LatentGenerativeModel)
    assert gan.networks() == {"generator": gan.generator, "discriminator": gan.discriminator}
    assert gan.network_optimizers() == {"generator": gan.g_optimizer, "discriminator": gan.d_optimizer}
    cyclegan = CycleGAN((8, 8, 1), (8, 8, 1), **TINY_CYCLEGAN)
    cyclegan.compile()
    assert cyclegan.kind == "cyclegan" and isinstance(cyclegan, TranslationModel)
    assert sorted(cyclegan.networks()) == sorted(cyclegan.network_optimizers()) == [
        "discriminator_a", "discriminator_b", "generator_ab", "generator_ba"]
    assert len({id(opt) for opt in cyclegan.network_optimizers().values()}) == 4


def test_latent_grids_reuse_their_latent_vectors_for_one_seed():
    vae = VAE((8, 8, 1), latent_dim=2, filters=(4,), hidden_units=8)
    first, columns = vae.sample_grid(num_images=6, seed=1)
    assert first.shape == (6, 8, 8, 1) and columns is None
    np.testing.assert_array_equal(vae.sample_grid(num_images=6, seed=1)[0], first)
    assert not np.array_equal(vae.sample_grid(num_images=6, seed=2)[0], first)
    assert vae.grid_examples(None) is None and isinstance(vae, GenerativeModel)


def test_translation_grids_take_the_first_images_of_each_domain():
    a = tf.reshape(tf.range(10, dtype=tf.float32), (10, 1, 1, 1)) / 10
    pairs = tf.data.Dataset.from_tensor_slices((a, 1 - a)).batch(3)
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY_CYCLEGAN)
    images_a, images_b = model.grid_examples(pairs, count=4)
    assert images_a.ravel().tolist() == pytest.approx([0, 0.1, 0.2, 0.3])
    assert images_b.ravel().tolist() == pytest.approx([1, 0.9, 0.8, 0.7])
    examples = (np.zeros((2, 8, 8, 1), np.float32), np.ones((2, 8, 8, 1), np.float32))
    grid, columns = model.sample_grid(examples)
    assert grid.shape == (12, 8, 8, 1) and columns == 6
    with pytest.raises(ConfigError, match="needs example images"):
        model.sample_grid(None)
    with pytest.raises(ConfigError, match="Unknown direction 'up'"):
        model.input_shape_of("up")


def test_fit_and_evaluate_hand_keras_datasets_with_autotuning_off_unless_they_choose(monkeypatch):
    seen = []
    monkeypatch.setattr(keras.Model, "fit",
                        lambda self, x=None, **kwargs: seen.append((x, kwargs.get("validation_data"))))
    monkeypatch.setattr(keras.Model, "evaluate", lambda self, x=None, **kwargs: seen.append((x, None)))
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    chosen = tf.data.Options()
    chosen.autotune.enabled = True
    user_choice = tf.data.Dataset.range(2).with_options(chosen)
    vae.fit(tf.data.Dataset.range(2), validation_data=user_choice, epochs=1)
    vae.evaluate(tf.data.Dataset.range(2))
    arrays = np.zeros((2, 8, 8, 1), np.float32)
    vae.fit(arrays)
    (trained, validation), (evaluated, _), (array_input, _) = seen
    assert trained.options().autotune.enabled is False and evaluated.options().autotune.enabled is False
    assert validation is user_choice and array_input is arrays


def _tiny_vae(**compile_options):
    vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
    vae.compile(optimizer="adam", **compile_options)
    return vae


def test_fit_runs_several_steps_per_call_and_never_more_steps_than_asked():
    images = tf.data.Dataset.from_tensor_slices(np.random.default_rng(0).random((60, 8, 8, 1), "float32"))
    vae = _tiny_vae()
    assert vae.steps_per_execution == GenerativeModel.STEPS_PER_EXECUTION == 16
    vae.fit(images.batch(3), epochs=1, verbose=0)  # 20 batches: one call of 16, one of 4
    assert int(vae.optimizer.iterations) == 20 and vae.steps_per_execution == 16
    vae.fit(images.repeat().batch(3), steps_per_epoch=40, epochs=2, verbose=0)
    assert int(vae.optimizer.iterations) == 20 + 80 and vae.steps_per_execution == 8
    vae.fit(images.repeat().batch(3), steps_per_epoch=12, epochs=1, verbose=0)
    assert int(vae.optimizer.iterations) == 112 and vae.steps_per_execution == 4
    vae.evaluate(images.repeat().batch(3), steps=6, verbose=0)
    assert vae.steps_per_execution == 2
    vae.fit(images.repeat().batch(3), steps_per_epoch=4, validation_data=images.repeat().batch(3),
            validation_steps=3, epochs=1, verbose=0)
    assert vae.steps_per_execution == 1 and int(vae.optimizer.iterations) == 116


def test_a_given_steps_per_execution_is_kept_and_the_automatic_one_survives_saving(tmp_path):
    images = tf.data.Dataset.from_tensor_slices(np.zeros((12, 8, 8, 1), "float32")).repeat().batch(3)
    given = _tiny_vae(steps_per_execution=2)
    given.fit(images, steps_per_epoch=4, epochs=1, verbose=0)
    assert given.steps_per_execution == 2 and given.get_compile_config()["steps_per_execution"] == 2
    automatic = _tiny_vae()
    assert automatic.get_compile_config()["steps_per_execution"] is None
    automatic.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    assert loaded.automatic_steps_per_execution and loaded.steps_per_execution == 16
    gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,))
    gan.compile()
    assert gan.steps_per_execution == 16


def test_several_replicas_train_one_step_per_call(cpu_devices):
    from keras_bigml.distribute import get_strategy

    with get_strategy("mirrored", cpu_devices).scope():
        vae = _tiny_vae()
    assert vae.automatic_steps_per_execution and vae.steps_per_execution == 1
