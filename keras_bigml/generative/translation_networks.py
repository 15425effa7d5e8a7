"""Networks for image-to-image translation (Zhu et al., 2017; Isola et al., 2017).

- :func:`resnet_generator`: reflection-padded 7x7 convolution, stride-2
  downsamplings, residual blocks, transposed-convolution upsamplings, tanh.
- :func:`unet_generator`: encoder-decoder with skip connections.
- :func:`patchgan_discriminator`: a fully convolutional critic that scores
  overlapping patches (70x70 with the default three stride-2 layers).

All use instance normalization without affine parameters, as the original
CycleGAN code does, and float32 outputs.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
from keras import layers

from keras_bigml.errors import ConfigError
from keras_bigml.generative.networks import LeakyReLU, check_image_shape

if TYPE_CHECKING:
    import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_bigml")
class ReflectionPadding2D(layers.Layer):
    """Pad height and width by mirroring the border (no new edge values).

    >>> import numpy as np
    >>> x = np.arange(9, dtype="float32").reshape(1, 3, 3, 1)
    >>> ReflectionPadding2D(1)(x)[0, 1, :, 0].numpy().tolist()
    [1.0, 0.0, 1.0, 2.0, 1.0]
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs: "tf.Tensor") -> "tf.Tensor":
        p = self.padding
        return keras.ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        batch, height, width, channels = input_shape
        grow = lambda size: None if size is None else size + 2 * self.padding
        return batch, grow(height), grow(width), channels

    def get_config(self) -> dict:
        return {**super().get_config(), "padding": self.padding}


def instance_norm() -> layers.GroupNormalization:
    """Instance normalization (one group per channel), no learned scale or offset."""
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False)


def default_residual_blocks(image_size: int) -> int:
    """Residual blocks of the ResNet generator: 9 from 256 pixels, 6 from 128 (the
    paper's choices), 3 for smaller images.

    >>> default_residual_blocks(256), default_residual_blocks(128), default_residual_blocks(28)
    (9, 6, 3)
    """
    return 9 if image_size >= 256 else 6 if image_size >= 128 else 3


def resnet_generator(
    input_shape: Sequence[int], output_channels: int, filters: int = 64, downsamplings: int = 2,
    residual_blocks: int | None = None, name: str = "generator"
) -> keras.Model:
    """CycleGAN's ResNet generator: c7s1-f, d2f, d4f, R4f x n, u2f, uf, c7s1-out (tanh).

    Height and width must be multiples of ``2**downsamplings``. ``residual_blocks``
    defaults to :func:`default_residual_blocks` of the image height.

    >>> generator = resnet_generator((28, 28, 1), 3, filters=8)
    >>> generator.output.shape
    (None, 28, 28, 3)
    """
    check_image_shape(input_shape, downsamplings)
    if residual_blocks is None:
        residual_blocks = default_residual_blocks(input_shape[0])
    images = keras.Input(input_shape, name="images")
    x = _conv_norm_relu(ReflectionPadding2D(3)(images), filters, 7, padding="valid")
    for level in range(1, downsamplings + 1):
        x = _conv_norm_relu(x, filters * 2**level, 3, strides=2)
    width = filters * 2**downsamplings
    for _ in range(residual_blocks):
        x = _residual_block(x, width)
    for level in reversed(range(downsamplings)):
        x = layers.Conv2DTranspose(filters * 2**level, 3, strides=2, padding="same")(x)
        x = layers.ReLU()(instance_norm()(x))
    x = layers.Conv2D(output_channels, 7, padding="valid")(ReflectionPadding2D(3)(x))
    outputs = layers.Activation("tanh", dtype="float32")(x)
    return keras.Model(images, outputs, name=name)


def unet_generator(input_shape: Sequence[int], output_channels: int, filters: int = 64, depth: int | None = None,
                   name: str = "generator") -> keras.Model:
    """U-Net generator (pix2pix): stride-2 convolutions down, transposed convolutions
    up, each upsampling joined with the encoder features of the same size.

    ``depth`` (number of downsamplings) defaults to as many halvings as the size
    allows, at most 8 (256 pixels down to 1).

    >>> unet_generator((16, 16, 3), 1, filters=8).output.shape
    (None, 16, 16, 1)
    """
    if depth is None:
        depth = min(8, _halvings(input_shape[0]), _halvings(input_shape[1]))
    if depth < 1:
        raise ConfigError(f"A U-Net needs even image sizes to downsample; got {tuple(input_shape)}.")
    check_image_shape(input_shape, depth)
    images = keras.Input(input_shape, name="images")
    x, skips = images, []
    for level in range(depth):
        x = layers.Conv2D(filters * 2 ** min(level, 3), 4, strides=2, padding="same")(x)
        if 0 < level < depth - 1:
            x = instance_norm()(x)
        x = LeakyReLU(0.2)(x)
        skips.append(x)
    for level in reversed(range(depth - 1)):
        x = layers.Conv2DTranspose(filters * 2 ** min(level, 3), 4, strides=2, padding="same")(x)
        x = layers.ReLU()(instance_norm()(x))
        x = layers.Concatenate()([x, skips[level]])
    x = layers.Conv2DTranspose(output_channels, 4, strides=2, padding="same")(x)
    outputs = layers.Activation("tanh", dtype="float32")(x)
    return keras.Model(images, outputs, name=name)


def patchgan_discriminator(input_shape: Sequence[int], filters: int = 64, layers_count: int = 3,
                           name: str = "discriminator") -> keras.Model:
    """PatchGAN critic: C64-C128-C256 (stride 2), C512 (stride 1), then one float32
    logit per patch. No normalization on the first layer.

    >>> patchgan_discriminator((32, 32, 3), filters=8).output.shape
    (None, 4, 4, 1)
    """
    check_image_shape(input_shape, layers_count)
    images = keras.Input(input_shape, name="images")
    x = LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(images))
    for level in range(1, layers_count + 1):
        strides = 2 if level < layers_count else 1
        x = layers.Conv2D(filters * 2 ** min(level, 3), 4, strides=strides, padding="same")(x)
        x = LeakyReLU(0.2)(instance_norm()(x))
    outputs = layers.Conv2D(1, 4, padding="same", dtype="float32")(x)
    return keras.Model(images, outputs, name=name)


def _conv_norm_relu(x, filters, kernel, strides=1, padding="same"):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding)(x)
    return layers.ReLU()(instance_norm()(x))


def _residual_block(x, filters):
    y = _conv_norm_relu(ReflectionPadding2D(1)(x), filters, 3, padding="valid")
    y = instance_norm()(layers.Conv2D(filters, 3, padding="valid")(ReflectionPadding2D(1)(y)))
    return layers.Add()([x, y])


def _halvings(size):
    count = 0
    while size % 2 == 0 and size > 1:
        size //= 2
        count += 1
    return count
