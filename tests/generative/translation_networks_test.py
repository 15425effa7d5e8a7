import keras
import numpy as np
import pytest

from keras_bigml.generative.translation_networks import (
    ReflectionPadding2D,
    patchgan_discriminator,
    resnet_generator,
    unet_generator,
)


def test_reflection_padding_mirrors_without_the_edge_and_serializes():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    padded = ReflectionPadding2D(2)(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(padded[2:6, 2:6], x[0, :, :, 0])
    np.testing.assert_array_equal(padded[0, 2:6], x[0, 2, :, 0])
    model = keras.Sequential([keras.Input((4, 4, 1)), ReflectionPadding2D(1)])
    restored = keras.Sequential.from_config(model.get_config())
    assert restored.output_shape == (None, 6, 6, 1)


def test_resnet_generator_has_the_papers_layout():
    generator = resnet_generator((64, 64, 3), 3, filters=8, residual_blocks=2)
    convs = [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv2D)
             and not isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [c.kernel_size for c in convs] == [(7, 7), (3, 3), (3, 3)] + [(3, 3)] * 4 + [(7, 7)]
    assert [c.filters for c in convs] == [8, 16, 32] + [32] * 4 + [3]
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms and all(n.groups == n.output.shape[-1] and not n.center and not n.scale for n in norms)
    out = generator(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32"))
    assert out.shape == (2, 64, 64, 3) and np.abs(out).max() <= 1.0


def test_default_depths_follow_the_image_size():
    blocks = lambda size: sum(isinstance(layer, keras.layers.Add)
                              for layer in resnet_generator((size, size, 1), 1, filters=2).layers)
    assert (blocks(28), blocks(128)) == (3, 6)
    downs = lambda size: sum(type(layer) is keras.layers.Conv2D
                             for layer in unet_generator((size, size, 1), 1, filters=2).layers)
    assert (downs(28), downs(16), downs(256)) == (2, 4, 8)


def test_patchgan_scores_patches_with_a_70_pixel_field():
    discriminator = patchgan_discriminator((256, 256, 3), filters=4)
    assert discriminator.output_shape == (None, 32, 32, 1)
    assert discriminator.layers[-1].dtype_policy.name == "float32"


def test_sizes_that_do_not_divide_are_named():
    with pytest.raises(ValueError, match="multiples of 4"):
        resnet_generator((30, 30, 1), 1)
    with pytest.raises(ValueError, match="even image sizes"):
        unet_generator((15, 15, 1), 1)
