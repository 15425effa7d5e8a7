"""Network builders: functional Keras models made from `keras.Input`, so they are built."""

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from keras_bigml.errors import ConfigError

KERNEL = 3


def check_image_shape(image_shape: Sequence[int], downsamplings: int) -> None:
    """Validate ``(height, width, channels)`` for a network that halves the size ``downsamplings`` times."""
    if len(image_shape) != 3 or not all(isinstance(d, int) and d > 0 for d in image_shape):
        raise ConfigError(f"image_shape must be (height, width, channels), got {image_shape!r}.")
    step = 2**downsamplings
    if image_shape[0] % step or image_shape[1] % step:
        raise ConfigError(
            f"image_shape {tuple(image_shape)}: height and width must be multiples of {step} "
            f"for {downsamplings} stride-2 layers; resize the images or use fewer stride-2 layers."
        )


@keras.saving.register_keras_serializable(package="keras_bigml")
def swish(x):
    """``x * sigmoid(x)`` (Keras's ``"swish"``), whose gradient is one fused XLA kernel computed in float32.

    TensorFlow differentiates ``tf.nn.silu`` with six element-wise ops, each a pass
    over memory; in the VAE they took 16% of the float32 step's op time on an Intel
    Xeon, and in bfloat16 Eigen runs them element by element. Here the gradient is
    one XLA-compiled function (a single loop over ``x`` and the upstream gradient,
    2.6x faster than the six ops on the VAE's tensors); the rest of the step stays
    on TensorFlow's oneDNN kernels, which XLA's own convolutions do not match on CPU.
    Bfloat16 and float16 inputs are widened to float32 inside it and the result cast
    back once. The forward pass is ``tf.nn.silu``'s; float64 inputs take ``tf.nn.silu``
    whole, gradient too, and symbolic inputs (``keras.Input``) ``keras.ops.silu``.

    >>> x = tf.constant([-1.0, 0.0, 2.0], tf.bfloat16)
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = swish(x)
    >>> [float(v) for v in tape.gradient(y, x)]
    [0.072265625, 0.5, 1.09375]
    """
    if isinstance(x, keras.KerasTensor):
        return keras.ops.silu(x)
    x = tf.convert_to_tensor(x)
    return tf.nn.silu(x) if x.dtype == tf.float64 else _swish_with_fused_gradient(x)


@tf.custom_gradient
def _swish_with_fused_gradient(x):
    return tf.nn.silu(x), lambda upstream: _swish_gradient(x, upstream)


# reduce_retracing relaxes dimensions to unknown, so new batch sizes reuse a trace (a trace per
# rank, dtype and device); XLA compiles each concrete shape once as it meets it.
@tf.function(jit_compile=True, reduce_retracing=True)
def _swish_gradient(x, upstream):
    # Computed in the backward pass from x alone, as TensorFlow's own swish gradient does, so no
    # float32 temporaries are kept alive from the forward pass.
    wide = tf.cast(x, tf.float32)
    sigmoid = tf.sigmoid(wide)
    return tf.cast(tf.cast(upstream, tf.float32) * sigmoid * (1.0 + wide * (1.0 - sigmoid)), x.dtype)


def conv_encoder(image_shape: Sequence[int], filters: Sequence[int], hidden_units: int, output_units: int,
                 num_classes: int | None = None, name: str = "encoder") -> keras.Model:
    """Strided convolutions, then dense layers to ``output_units`` float32 outputs.

    With ``num_classes`` the model takes ``[images, labels]`` and sees the one-hot
    label beside the image features.

    >>> encoder = conv_encoder((8, 8, 1), (16, 32), 64, 4)
    >>> encoder.output.shape
    (None, 4)
    """
    check_image_shape(image_shape, len(filters))
    images = keras.Input(image_shape, name="images")
    x = images
    for width in filters:
        x = layers.Conv2D(width, KERNEL, strides=2, padding="same", activation=swish)(x)
    x = layers.Flatten()(x)
    inputs = [images]
    if num_classes:
        x = _condition_on_labels(x, inputs, num_classes)
    x = layers.Dense(hidden_units, activation=swish)(x)
    outputs = layers.Dense(output_units, dtype="float32")(x)
    return keras.Model(inputs if num_classes else images, outputs, name=name)


def deconv_decoder(latent_dim: int, image_shape: Sequence[int], filters: Sequence[int], hidden_units: int,
                   num_classes: int | None = None, output_channels: int | None = None,
                   name: str = "decoder") -> keras.Model:
    """Dense layers, then transposed convolutions up to ``image_shape`` float32 outputs.

    ``filters`` lists the widths from the image side, as for the encoder, so the
    same tuple gives mirrored networks. ``output_channels`` replaces the image's
    channels as the width of the output (feature maps for `pixelcnn_head`).

    >>> decoder = deconv_decoder(4, (8, 8, 1), (16, 32), 64)
    >>> decoder.output.shape
    (None, 8, 8, 1)
    """
    check_image_shape(image_shape, len(filters))
    height, width, channels = image_shape
    step = 2 ** len(filters)
    inputs, x = _latent_inputs(latent_dim, num_classes)
    x = layers.Dense(hidden_units, activation=swish)(x)
    x = layers.Dense((height // step) * (width // step) * filters[-1], activation=swish)(x)
    x = layers.Reshape((height // step, width // step, filters[-1]))(x)
    for units in reversed(filters[:-1]):
        x = layers.Conv2DTranspose(units, KERNEL, strides=2, padding="same", activation=swish)(x)
    outputs = layers.Conv2DTranspose(output_channels or channels, KERNEL, strides=2, padding="same",
                                     dtype="float32")(x)
    return keras.Model(inputs if num_classes else inputs[0], outputs, name=name)


@keras.saving.register_keras_serializable(package="keras_bigml")
class MaskedConv2D(layers.Conv2D):
    """A "same"-padded convolution that sees only the pixels before each pixel in raster order
    (PixelCNN, van den Oord et al., 2016).

    Mask ``"A"`` also hides the pixel itself (the first layer, on the image);
    ``"B"`` lets it through (later layers, whose features at a pixel depend only on
    the pixels before it). All channels of a pixel share its mask, so the
    channels of one pixel are independent given the pixels before it.

    >>> layer = MaskedConv2D(1, 3, mask_type="A", kernel_initializer="ones", use_bias=False)
    >>> image = np.zeros((1, 3, 3, 1), "float32"); image[0, 1, 1, 0] = 1.0
    >>> layer(image)[0, :, :, 0].numpy().tolist()   # only the pixels after the centre see it
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, filters: int, kernel_size: int, mask_type: str = "B", **kwargs):
        if mask_type not in ("A", "B"):
            raise ConfigError(f"mask_type must be 'A' or 'B', got {mask_type!r}.")
        if kernel_size % 2 != 1:
            raise ConfigError(f"A masked convolution needs an odd kernel_size, got {kernel_size}.")
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        self.mask_type = mask_type
        centre = kernel_size // 2
        mask = np.ones((kernel_size, kernel_size, 1, 1), "float32")
        mask[centre, centre + (mask_type == "B"):] = 0.0
        mask[centre + 1:] = 0.0
        self.mask = mask

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * keras.ops.cast(self.mask, kernel.dtype))

    def get_config(self) -> dict:
        config = super().get_config()
        config["mask_type"] = self.mask_type
        config["kernel_size"] = self.kernel_size[0]
        config.pop("padding")
        return config


def spectrally_normalized(kernel: tf.Tensor, singular_vector: keras.Variable, training: bool) -> tf.Tensor:
    """``kernel`` divided by an estimate of its largest singular value (Miyato et al., 2018).

    The kernel is read as a matrix of ``kernel.shape[-1]`` columns. One power
    iteration from ``singular_vector`` (a float32 ``(1, columns)`` weight)
    refines the estimate; under ``training`` the refined vector is stored, so
    the estimate follows the weights as they train. The vectors are held
    constant in the gradient, which flows through the division as in the paper.
    """
    matrix = keras.ops.reshape(keras.ops.cast(kernel, "float32"), (-1, kernel.shape[-1]))
    right = keras.ops.stop_gradient(keras.ops.normalize(keras.ops.matmul(singular_vector, keras.ops.transpose(matrix))))
    left = keras.ops.stop_gradient(keras.ops.normalize(keras.ops.matmul(right, matrix)))
    if training:
        singular_vector.assign(left)
    sigma = keras.ops.sum(keras.ops.matmul(right, matrix) * left)
    return kernel / keras.ops.cast(sigma, kernel.dtype)


class _SpectralNorm:
    """Adds the singular vector of :func:`spectrally_normalized` to a layer with a ``kernel``."""

    def build(self, input_shape):
        super().build(input_shape)
        columns = self.kernel.shape[-1]
        self.singular_vector = self.add_weight(
            shape=(1, columns), initializer=keras.initializers.RandomNormal(), trainable=False, autocast=False,
            aggregation="mean", name="singular_vector")  # "mean": every replica computes the same vector

    # Keras's Conv2D and Dense save their kernel and bias by position; the vector follows by name.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.built:
            store["singular_vector"] = self.singular_vector.numpy()

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self.singular_vector.assign(store["singular_vector"])


@keras.saving.register_keras_serializable(package="keras_bigml")
class SpectralConv2D(_SpectralNorm, layers.Conv2D):
    """`keras.layers.Conv2D` whose kernel is spectrally normalized in every call.

    Unlike `keras.layers.SpectralNormalization`, which overwrites the trained
    kernel with the normalized one, the trained weights stay as they are and the
    division is part of the model, as in SN-GAN. Channels-last only.

    >>> wide = keras.initializers.RandomNormal(stddev=1.0, seed=0)
    >>> layer = SpectralConv2D(4, 3, padding="same", kernel_initializer=wide)
    >>> images = tf.random.normal((2, 8, 8, 3), seed=0)
    >>> for _ in range(30):  # power iterations converge in training
    ...     _ = layer(images, training=True)
    >>> matrix = layer.kernel.numpy().reshape(-1, 4)
    >>> normalized = spectrally_normalized(layer.kernel, layer.singular_vector, False).numpy().reshape(-1, 4)
    >>> round(float(np.linalg.norm(normalized, 2)), 3), bool(np.linalg.norm(matrix, 2) > 2)
    (1.0, True)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ConfigError(f"SpectralConv2D takes channels-last images, got data_format={self.data_format!r}.")

    def call(self, inputs, training=False):
        outputs = self.convolution_op(inputs, spectrally_normalized(self.kernel, self.singular_vector, training))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)


@keras.saving.register_keras_serializable(package="keras_bigml")
class SpectralDense(_SpectralNorm, layers.Dense):
    """`keras.layers.Dense` whose kernel is spectrally normalized in every call (see `SpectralConv2D`)."""

    def call(self, inputs, training=False):
        outputs = keras.ops.matmul(inputs, spectrally_normalized(self.kernel, self.singular_vector, training))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)


@keras.saving.register_keras_serializable(package="keras_bigml")
class BatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel where it can be.

    Keras normalizes with about a dozen element-wise operations and reductions
    (and, when ``synchronized``, a tensor of ones the size of the input to count
    the examples), in float32 even under a mixed policy; TensorFlow's
    ``FusedBatchNormV3`` computes the statistics and the normalization in one
    kernel, and its gradient in one more, in the input's own dtype with float32
    statistics. In the GAN of `benchmarks/throughput.py` under mixed_bfloat16,
    Keras's batch normalization took 26% of the training step's operation time,
    and this layer made the step 1.29x faster (2,558 to 3,302 images/s; Intel
    Xeon with AMX, 2 cores). The weights, configuration, moving averages (of the
    biased batch variance, as Keras keeps them) and results are Keras's, within
    rounding.

    The fused kernel serves inputs of rank 2 or 4 normalized over the last
    axis. A ``synchronized`` layer under a strategy of several replicas, a mask
    and ``renorm`` take Keras's own computation, so synchronized statistics stay
    those of the global batch. The class keeps Keras's name, which Keras's files
    use to find a network's layers: networks saved with Keras's layer load with
    this one.

    >>> layer = BatchNormalization(momentum=0.5)
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]], "float32")
    >>> layer(x, training=True).numpy().round(3).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> layer.moving_mean.numpy().tolist(), layer.moving_variance.numpy().tolist()
    ([1.0, 10.0], [1.0, 50.5])
    """

    def call(self, inputs, training=None, mask=None):
        training = bool(training and self.trainable)
        if not self._fusable(inputs, mask, training):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        images = inputs if len(inputs.shape) == 4 else tf.reshape(inputs, (-1, 1, 1, channels))
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones((channels,))
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros((channels,))
        mean, variance = (tf.constant([], tf.float32),) * 2 if training else (self.moving_mean, self.moving_variance)
        outputs, batch_mean, batch_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=tf.cast(images, self.compute_dtype), scale=scale, offset=offset, mean=mean, variance=variance,
            epsilon=self.epsilon, data_format="NHWC", is_training=training)
        if training:
            # The kernel returns the variance with Bessel's correction; Keras averages the biased one.
            count = tf.cast(tf.size(images) // channels, tf.float32)
            batch_variance = batch_variance * (count - 1.0) / count
            self.moving_mean.assign(self.moving_mean * self.momentum + batch_mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + batch_variance * (1.0 - self.momentum))
        return tf.reshape(outputs, tf.shape(inputs))

    def _fusable(self, inputs, mask, training):
        replicas = tf.distribute.get_replica_context()
        several = replicas is not None and replicas.num_replicas_in_sync > 1
        return (mask is None and not self.renorm and not (self.synchronized and several and training)
                and len(inputs.shape) in (2, 4) and self.axis in (-1, len(inputs.shape) - 1)
                and self.compute_dtype in ("float32", "bfloat16", "float16") and self.epsilon >= 1.001e-5)


@keras.saving.register_keras_serializable(package="keras_bigml")
class LeakyReLU(layers.LeakyReLU):
    """`keras.layers.LeakyReLU` whose gradient is computed from its output instead of its input.

    TensorFlow differentiates ``LeakyRelu`` from its input, the output of the
    convolution's ``BiasAdd``. Grappler's remapper fuses convolution, bias and
    activation into one oneDNN kernel, which removes that ``BiasAdd``, and then
    fails on the whole training step ("remapper failed: ... fanout ... exist for
    missing node ...BiasAdd") and leaves every fusion of the step undone. With a
    slope of at least 0 (which Keras requires) an output is positive exactly
    where its input is, so the output gives the same gradient and leaves the
    ``BiasAdd`` free to fuse. The DCGAN discriminator and the CycleGAN's networks
    use it; GANs and CycleGANs saved with Keras's layer rebuild their default
    networks from their configuration, so they load with this one.

    >>> x = tf.constant([-2.0, 0.0, 3.0])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = LeakyReLU(0.2)(x)
    >>> [round(float(v), 3) for v in y], [round(float(v), 3) for v in tape.gradient(y, x)]
    ([-0.4, 0.0, 3.0], [0.2, 0.2, 1.0])
    """

    def call(self, inputs):
        slope = self.negative_slope

        @tf.custom_gradient
        def leaky_relu(x):
            y = tf.nn.leaky_relu(x, alpha=slope)
            # The output only tells where the slope changes: held constant, so that a second
            # derivative (WGAN-GP's penalty) does not differentiate the forward op from its input.
            return y, lambda upstream: tf.raw_ops.LeakyReluGrad(
                gradients=upstream, features=tf.stop_gradient(y), alpha=slope)

        return leaky_relu(tf.convert_to_tensor(inputs))


def pixelcnn_head(image_shape: Sequence[int], units: int, num_layers: int, name: str = "pixel_head") -> keras.Model:
    """An autoregressive likelihood head: Bernoulli logits of each pixel from the pixels before
    it and a decoder's features at it (the decoder of PixelVAE, Gulrajani et al., 2017).

    Takes ``[images, features]``, ``features`` of shape ``(height, width, units)``; a 7x7
    mask-A convolution on the images, then ``num_layers - 1`` residual 3x3 mask-B ones.

    >>> head = pixelcnn_head((8, 8, 1), units=16, num_layers=2)
    >>> head.output.shape
    (None, 8, 8, 1)
    """
    if num_layers < 1:
        raise ConfigError(f"A PixelCNN head needs at least one layer, got {num_layers}.")
    height, width, channels = image_shape
    images = keras.Input(tuple(image_shape), name="images")
    features = keras.Input((height, width, units), name="features")
    x = layers.Add()([MaskedConv2D(units, 7, mask_type="A")(images), features])
    for _ in range(num_layers - 1):
        x = layers.Add()([x, MaskedConv2D(units, KERNEL, mask_type="B")(layers.Activation(swish)(x))])
    x = layers.Activation(swish)(x)
    logits = layers.Conv2D(channels, 1, dtype="float32")(x)
    return keras.Model([images, features], logits, name=name)


def one_hot(labels: keras.KerasTensor, num_classes: int, dtype: str = "float32") -> keras.KerasTensor:
    """One-hot encode integer labels inside a functional model."""
    return keras.ops.one_hot(keras.ops.cast(labels, "int32"), num_classes, dtype=dtype)


def _latent_inputs(latent_dim, num_classes):
    """The ``z`` input (and ``labels`` when conditional): return (inputs, the joined tensor)."""
    z = keras.Input((latent_dim,), name="z")
    inputs = [z]
    return inputs, _condition_on_labels(z, inputs, num_classes) if num_classes else z


def _condition_on_labels(features, inputs, num_classes):
    """Add an int32 ``labels`` input to ``inputs``; return ``features`` joined with its one-hot."""
    labels = keras.Input((), dtype="int32", name="labels")
    inputs.append(labels)
    return layers.Concatenate()([features, one_hot(labels, num_classes, features.dtype)])


def dcgan_generator(latent_dim: int, image_shape: Sequence[int], filters: Sequence[int] = (128, 64),
                    num_classes: int | None = None, conditional_batch_norm: bool = False,
                    name: str = "generator") -> keras.Model:
    """DCGAN generator: dense projection, then stride-2 transposed convolutions to tanh images.

    Each entry of ``filters`` doubles the size, the last layer doubling once more
    to the image channels: height and width must be multiples of
    ``2**len(filters)``. Batch normalization is synchronized across replicas, so
    one and several replicas compute the same statistics for one global batch.
    With ``num_classes`` the model takes ``[z, labels]``; ``conditional_batch_norm``
    then also gives every batch normalization a scale and offset per class
    (de Vries et al., 2017; the generator of Miyato & Koyama, 2018), starting at
    1 and 0, instead of one shared pair.

    >>> generator = dcgan_generator(16, (28, 28, 1), (32, 16))
    >>> generator.output.shape
    (None, 28, 28, 1)
    """
    check_image_shape(image_shape, len(filters))
    height, width, channels = image_shape
    step = 2 ** len(filters)
    inputs, x = _latent_inputs(latent_dim, num_classes)
    classes = one_hot(inputs[1], num_classes, x.dtype) if num_classes and conditional_batch_norm else None
    x = layers.Dense((height // step) * (width // step) * filters[0], use_bias=False)(x)
    x = _batch_norm(x, classes)
    x = layers.ReLU()(x)
    x = layers.Reshape((height // step, width // step, filters[0]))(x)
    for units in filters[1:]:
        x = layers.Conv2DTranspose(units, 4, strides=2, padding="same", use_bias=False)(x)
        x = _batch_norm(x, classes)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same")(x)
    outputs = layers.Activation("tanh", dtype="float32")(x)
    return keras.Model(inputs if num_classes else inputs[0], outputs, name=name)


def _batch_norm(x, classes=None):
    """Synchronized batch normalization; with ``classes`` (one-hot), its scale and offset per class."""
    if classes is None:
        return BatchNormalization(synchronized=True)(x)
    x = BatchNormalization(synchronized=True, center=False, scale=False)(x)
    # Bias-free Dense layers on the one-hot label are tables of a row per class, with dense gradients.
    broadcast = (1,) * (len(x.shape) - 2) + (x.shape[-1],)
    scale = layers.Dense(x.shape[-1], use_bias=False, kernel_initializer="ones")(classes)
    offset = layers.Dense(x.shape[-1], use_bias=False, kernel_initializer="zeros")(classes)
    x = layers.Multiply()([x, layers.Reshape(broadcast)(scale)])
    return layers.Add()([x, layers.Reshape(broadcast)(offset)])


def dcgan_discriminator(image_shape: Sequence[int], filters: Sequence[int] = (64, 128), num_classes: int | None = None,
                        spectral_norm: bool = False, name: str = "discriminator") -> keras.Model:
    """DCGAN discriminator (critic): stride-2 convolutions with leaky ReLU, one float32 logit.

    No batch normalization, so it also serves as a WGAN-GP critic (the penalty is
    per example). With ``num_classes`` it takes ``[images, labels]`` and adds a
    projection term <embed(label), features> (Miyato & Koyama, 2018), which makes
    the generator respect the requested class. ``spectral_norm`` divides every
    kernel, the label embedding's too, by its largest singular value (SN-GAN).

    >>> discriminator = dcgan_discriminator((28, 28, 1), (16, 32), num_classes=10)
    >>> discriminator.output.shape
    (None, 1)
    """
    check_image_shape(image_shape, len(filters))
    images = keras.Input(image_shape, name="images")
    x = images
    convolution, dense = (SpectralConv2D, SpectralDense) if spectral_norm else (layers.Conv2D, layers.Dense)
    for units in filters:
        x = convolution(units, 4, strides=2, padding="same")(x)
        x = LeakyReLU(0.2)(x)
    features = layers.Flatten()(x)
    logits = dense(1, dtype="float32")(features)
    if not num_classes:
        return keras.Model(images, logits, name=name)
    labels = keras.Input((), dtype="int32", name="labels")
    # A bias-free Dense on the one-hot label is an embedding with dense gradients
    # (sparse ones cannot be all-gathered when replicas differ in row count).
    embedded = dense(features.shape[-1], use_bias=False)(one_hot(labels, num_classes, features.dtype))
    projection = layers.Dot(axes=1, dtype="float32")([embedded, features])
    logits = layers.Add(dtype="float32")([logits, projection])
    return keras.Model([images, labels], logits, name=name)
