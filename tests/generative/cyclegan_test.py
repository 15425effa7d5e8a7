import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.data import load_images, pair_unpaired
from keras_bigml.generative import CycleGAN
from keras_bigml.generative.schedules import LinearDecay

TINY = dict(generator_filters=4, discriminator_filters=4, residual_blocks=1, discriminator_layers=1)
NETWORKS = ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")


def pairs(channels_b=1, size=8, limit=32, batch_size=8):
    a = load_images("digits", batch_size=None, limit=limit, image_size=size, seed=0)
    b = load_images("digits", split="test", batch_size=None, limit=limit // 2, image_size=size,
                    channels=channels_b, seed=1)
    return pair_unpaired(a, b, batch_size=batch_size)


def weights_of(model, name):
    return [w.numpy().copy() for w in getattr(model, name).trainable_weights]


@pytest.mark.large
def test_one_epoch_trains_all_four_networks_with_their_own_optimizers():
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, seed=0)
    model.compile()
    before = {name: weights_of(model, name) for name in NETWORKS}
    history = model.fit(pairs(), epochs=1, verbose=0).history
    assert set(history) == {"g_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss"}
    assert all(np.isfinite(values[0]) for values in history.values())
    assert history["identity_loss"][0] > 0
    for name in NETWORKS:
        assert int(model.optimizers[name].iterations) == 4
        moved = [not np.array_equal(a, b) for a, b in zip(before[name], weights_of(model, name))]
        assert all(moved), name


ADVERSARIAL_BY_HAND = {
    "lsgan": lambda logits: np.square(logits - 1).mean(axis=(1, 2, 3)),
    "bce": lambda logits: np.log1p(np.exp(-logits)).mean(axis=(1, 2, 3)),
}


@pytest.mark.parametrize("loss", sorted(ADVERSARIAL_BY_HAND))
def test_generator_loss_is_adversarial_plus_weighted_cycle_and_identity(loss):
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, cycle_weight=7.0, identity_weight=0.25, seed=0)
    model.compile(loss=loss)
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.uniform(-1, 1, (3, 8, 8, 1)), tf.float32) for _ in range(2))
    fake_b, fake_a = model.generator_ab(a), model.generator_ba(b)
    values = model._generator_losses(a, b, fake_a, fake_b, training=False)
    total, cycle, identity = values["g_loss"], values["cycle_loss"], values["identity_loss"]
    by_hand_cycle = (np.abs(a - model.generator_ba(fake_b)).mean(axis=(1, 2, 3))
                     + np.abs(b - model.generator_ab(fake_a)).mean(axis=(1, 2, 3)))
    by_hand_identity = (np.abs(b - model.generator_ab(b)).mean(axis=(1, 2, 3))
                        + np.abs(a - model.generator_ba(a)).mean(axis=(1, 2, 3)))
    adversarial = (ADVERSARIAL_BY_HAND[loss](model.discriminator_b(fake_b).numpy())
                   + ADVERSARIAL_BY_HAND[loss](model.discriminator_a(fake_a).numpy()))
    np.testing.assert_allclose(cycle, by_hand_cycle, rtol=1e-5)
    np.testing.assert_allclose(identity, by_hand_identity, rtol=1e-5)
    np.testing.assert_allclose(total, adversarial + 7.0 * (by_hand_cycle + 0.25 * by_hand_identity), rtol=1e-5)


@pytest.mark.large
def test_domains_with_different_channels_translate_both_ways_without_identity_loss():
    model = CycleGAN((8, 8, 1), (8, 8, 3), **TINY, seed=0)
    assert model.identity_weight == 0.0
    model.compile()
    history = model.fit(pairs(channels_b=3), epochs=1, verbose=0).history
    assert history["identity_loss"] == [0.0]
    gray = np.random.default_rng(0).random((5, 8, 8, 1), np.float32)
    colour = model.translate(gray, "a2b")
    assert colour.shape == (5, 8, 8, 3) and colour.min() >= 0 and colour.max() <= 1
    np.testing.assert_allclose(model(gray), colour, atol=1e-6)
    assert model.translate(colour, "b2a").shape == (5, 8, 8, 1)
    assert model.translation_examples(gray[:2], colour[:2]).shape == (12, 8, 8, 3)


@pytest.mark.parametrize("generator", ["resnet", "unet"])
def test_generators_take_digit_sizes(generator):
    for size in (16, 28):
        model = CycleGAN((size, size, 1), (size, size, 3), generator=generator, **TINY, seed=0)
        assert model.translate(np.zeros((2, size, size, 1)), "a2b").shape == (2, size, size, 3)
        assert model.translate(np.zeros((1, size, size, 3)), "b2a").shape == (1, size, size, 1)


@pytest.mark.large
def test_unet_cyclegan_trains():
    model = CycleGAN((16, 16, 1), (16, 16, 1), generator="unet", **TINY, seed=0)
    model.compile()
    before = weights_of(model, "generator_ab")
    history = model.fit(pairs(size=16, limit=16), epochs=1, verbose=0).history
    assert np.isfinite(history["g_loss"][0])
    assert all(not np.array_equal(a, b) for a, b in zip(before, weights_of(model, "generator_ab")))


@pytest.mark.large
def test_evaluate_leaves_weights_and_pools_alone():
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, seed=0)
    model.compile()
    before = [w.numpy().copy() for w in model.weights]
    result = model.evaluate(pairs(), verbose=0, return_dict=True)
    assert result["cycle_loss"] > 0
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_learning_rate_schedule_drives_the_default_optimizers():
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, seed=0)
    model.compile(learning_rate=LinearDecay(1e-3, constant_steps=4, decay_steps=4))
    for optimizer in model.optimizers.values():
        rates = []
        for step in (0, 4, 6, 8):
            optimizer.iterations.assign(step)
            rates.append(float(optimizer.learning_rate))
        np.testing.assert_allclose(rates, [1e-3, 1e-3, 5e-4, 0.0], atol=1e-9)


def digit_classifier(size=8, classes=3):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((size, size, 1))
    outputs = keras.layers.Dense(classes, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.large
def test_semantic_consistency_adds_the_classifiers_disagreement_to_the_generator_loss():
    classifier = digit_classifier()
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, semantic_classifier=classifier, semantic_weight=3.0, seed=0)
    plain = CycleGAN.from_config({**model.get_config(), "semantic_classifier": None})
    for name in NETWORKS:
        getattr(plain, name).set_weights(getattr(model, name).get_weights())
    for m in (model, plain):
        m.compile()
    rng = np.random.default_rng(0)
    a, b = (tf.constant(rng.uniform(-1, 1, (4, 8, 8, 1)), tf.float32) for _ in range(2))
    fake_b, fake_a = model.generator_ab(a), model.generator_ba(b)
    values = model._generator_losses(a, b, fake_a, fake_b, training=False)
    read = lambda images: classifier((images + 1.0) / 2.0).numpy()
    by_hand = sum(
        -np.log(read(translated)[np.arange(4), read(source).argmax(axis=1)])
        for source, translated in ((a, fake_b), (b, fake_a))
    )
    np.testing.assert_allclose(values["semantic_loss"], by_hand, rtol=1e-5)
    without = plain._generator_losses(a, b, fake_a, fake_b, training=False)["g_loss"]
    np.testing.assert_allclose(values["g_loss"], without + 3.0 * by_hand, rtol=1e-5)


@pytest.mark.large
def test_semantic_classifier_stays_frozen_and_is_saved_with_the_model(tmp_path):
    classifier = digit_classifier()
    frozen = [w.copy() for w in classifier.get_weights()]
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, semantic_classifier=classifier, seed=0)
    trained = {id(v) for v in model.trainable_weights}
    assert not any(id(v) in trained for v in classifier.weights)
    model.compile()
    history = model.fit(pairs(), epochs=1, verbose=0).history
    assert np.isfinite(history["semantic_loss"][0]) and history["semantic_loss"][0] > 0
    for before, after in zip(frozen, classifier.get_weights()):
        np.testing.assert_array_equal(before, after)
    model.save(tmp_path / "semantic.keras")
    loaded = keras.saving.load_model(tmp_path / "semantic.keras")
    images = np.random.default_rng(1).random((3, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(loaded.semantic_classifier(images), classifier(images), atol=1e-6)
    np.testing.assert_allclose(loaded.translate(images), model.translate(images), atol=1e-6)
    with pytest.raises(ValueError, match="semantic_classifier reads both domains"):
        CycleGAN((8, 8, 1), (8, 8, 3), **TINY, semantic_classifier=classifier)


def test_bad_configuration_and_batches_are_named():
    with pytest.raises(ValueError, match="image sizes differ: A is 8x8, B is 16x16"):
        CycleGAN((8, 8, 1), (16, 16, 1))
    with pytest.raises(ValueError, match="identity_weight=0.5 needs the same channels"):
        CycleGAN((8, 8, 1), (8, 8, 3), identity_weight=0.5)
    with pytest.raises(ValueError, match="Unknown generator 'vgg'"):
        CycleGAN((8, 8, 1), (8, 8, 1), generator="vgg")
    model = CycleGAN((8, 8, 1), (8, 8, 1), **TINY)
    with pytest.raises(ValueError, match="Unknown CycleGAN loss 'hinge'"):
        model.compile(loss="hinge")
    model.compile()
    with pytest.raises(ValueError, match=r"batches \(images_a, images_b\)"):
        model.fit(load_images("digits", image_size=8, limit=16), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"domain B takes images of shape \(8, 8, 1\), got \(8, 8, 3\)"):
        model.fit(pairs(channels_b=3), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"a2b takes images of shape \(8, 8, 1\)"):
        model.translate(np.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="Unknown direction 'up'"):
        model.translate(np.zeros((1, 8, 8, 1)), direction="up")
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="optimizer of its own"):
        model.compile(generator_ab_optimizer=shared, generator_ba_optimizer=shared)


def test_photo_sized_defaults_build_the_papers_networks():
    model = CycleGAN(generator_filters=4, discriminator_filters=4, seed=0)  # 256x256 RGB by default
    blocks = sum(isinstance(layer, keras.layers.Add) for layer in model.generator_ab.layers)
    assert blocks == 9 and model.discriminator_a.output_shape == (None, 32, 32, 1)
    photo = np.random.default_rng(0).random((1, 256, 256, 3)).astype("float32")
    assert model.translate(photo).shape == (1, 256, 256, 3)


def test_a_cyclegan_saved_with_keras_leaky_relu_loads_into_ours(tmp_path, monkeypatch):
    from keras_bigml.generative import networks, translation_networks

    with monkeypatch.context() as patched:  # the networks of releases before our layer
        patched.setattr(translation_networks, "LeakyReLU", keras.layers.LeakyReLU)
        before = CycleGAN((8, 8, 1), (8, 8, 1), **TINY, seed=0)
        before.save(tmp_path / "before.keras")
    assert not any(isinstance(layer, networks.LeakyReLU) for layer in before.discriminator_a.layers)
    loaded = keras.saving.load_model(tmp_path / "before.keras")
    assert any(isinstance(layer, networks.LeakyReLU) for layer in loaded.discriminator_a.layers)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 1)).astype("float32")
    for name in ("discriminator_a", "generator_ab"):
        np.testing.assert_allclose(getattr(loaded, name)(images), getattr(before, name)(images), atol=1e-6)
