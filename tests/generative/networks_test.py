import numpy as np
import pytest

from keras_bigml.distribute import get_strategy
from keras_bigml.generative.networks import (
    BatchNormalization,
    LeakyReLU,
    MaskedConv2D,
    SpectralConv2D,
    SpectralDense,
    check_image_shape,
    conv_encoder,
    deconv_decoder,
    pixelcnn_head,
    spectrally_normalized,
    swish,
)


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (16, 16, 3), (32, 24, 3)])
def test_encoder_and_decoder_mirror_each_other(image_shape):
    encoder = conv_encoder(image_shape, (8, 16), 32, 10)
    decoder = deconv_decoder(5, image_shape, (8, 16), 32)
    assert encoder.output.shape == (None, 10)
    assert decoder.output.shape == (None, *image_shape)
    images = decoder.predict(np.zeros((2, 5), np.float32), verbose=0)
    assert encoder.predict(images, verbose=0).shape == (2, 10)


def test_conditional_networks_take_labels_that_change_the_output():
    decoder = deconv_decoder(3, (8, 8, 1), (8,), 16, num_classes=4)
    z = np.zeros((2, 3), np.float32)
    out = decoder.predict([z, np.array([0, 3])], verbose=0)
    assert not np.allclose(out[0], out[1])
    encoder = conv_encoder((8, 8, 1), (8,), 16, 6, num_classes=4)
    assert encoder.predict([np.zeros((2, 8, 8, 1)), np.array([1, 2])], verbose=0).shape == (2, 6)


def test_outputs_stay_float32_under_mixed_precision(mixed_bfloat16):
    assert conv_encoder((8, 8, 1), (8,), 16, 4).output.dtype == "float32"
    assert deconv_decoder(2, (8, 8, 1), (8,), 16).output.dtype == "float32"


@pytest.mark.parametrize("compiled", [None, "graph", "xla"])
def test_swish_takes_its_gradient_in_float32_and_leaves_the_float32_forward_pass_alone(compiled):
    import keras
    import tensorflow as tf

    values = tf.cast(tf.cast(np.linspace(-6, 6, 101), tf.bfloat16), tf.float32).numpy()  # exact in bfloat16

    def value_and_gradient(function, dtype):
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x)
            return y, tape.gradient(y, x)

        if compiled:
            run = tf.function(run, jit_compile=compiled == "xla")
        y, gradient = run(tf.constant(values, dtype))
        return y.numpy().astype(np.float32), gradient.numpy().astype(np.float32)

    exact, exact_gradient = value_and_gradient(tf.nn.silu, tf.float64)
    errors = {}
    for dtype in (tf.bfloat16, tf.float16):
        ours, ours_gradient = value_and_gradient(swish, dtype)
        theirs, theirs_gradient = value_and_gradient(tf.nn.silu, dtype)
        # The forward pass is tf.nn.silu's (XLA may fuse it differently from the eager kernel, so
        # within a few steps); the gradient, rounded once from float32, is within half a step of exact.
        step = 2**-8 if dtype == tf.bfloat16 else 2**-11
        np.testing.assert_allclose(ours, theirs, rtol=4 * step, atol=1e-6)
        np.testing.assert_allclose(ours_gradient, exact_gradient, rtol=step, atol=1e-6)
        errors[dtype] = [np.abs(gradient - exact_gradient).sum() for gradient in (ours_gradient, theirs_gradient)]
    assert errors[tf.bfloat16][0] < errors[tf.bfloat16][1]  # closer to exact than TensorFlow's bfloat16 gradient
    assert errors[tf.float16][0] <= errors[tf.float16][1]
    keras_float32 = value_and_gradient(keras.activations.swish, tf.float32)
    ours_float32 = value_and_gradient(swish, tf.float32)
    # The forward pass is tf.nn.silu's; a graph may or may not fuse it into oneDNN's swish kernel,
    # whose sigmoid differs from Eigen's by a few float32 rounding steps.
    np.testing.assert_allclose(ours_float32[0], keras_float32[0], rtol=1e-6, atol=0)
    # The fused float32 gradient is within float32 rounding of exact, as TensorFlow's own is.
    np.testing.assert_allclose(ours_float32[1], exact_gradient, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(keras_float32[1], exact_gradient, rtol=2e-5, atol=2e-6)
    assert swish(keras.Input((3,))).shape == (None, 3)
    wide = tf.constant(np.linspace(-6, 6, 101), tf.float64)
    gradients = []
    for function in (swish, tf.nn.silu):
        with tf.GradientTape() as tape:
            tape.watch(wide)
            y = function(wide)
        gradients.append(tape.gradient(y, wide).numpy())
    np.testing.assert_array_equal(*gradients)  # float64 is not narrowed to float32


def test_swish_gradient_is_one_xla_compiled_call():
    import tensorflow as tf

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = swish(x)
        return tape.gradient(y, x)

    graph = gradient.get_concrete_function(tf.TensorSpec((4, 3), tf.float32)).graph
    compiled = [op for op in graph.get_operations()
                if op.type in ("PartitionedCall", "StatefulPartitionedCall")
                and op.node_def.attr["_XlaMustCompile"].b]
    assert len(compiled) == 1
    # The forward pass's sigmoid only: TensorFlow's own gradient would add a second one.
    assert [op.type for op in graph.get_operations()].count("Sigmoid") == 1


def test_networks_save_their_swish_by_name(tmp_path):
    import keras

    encoder = conv_encoder((8, 8, 1), (8,), 16, 4)
    assert encoder.layers[1].get_config()["activation"]["config"] == "keras_bigml>swish"
    encoder.save(tmp_path / "encoder.keras")
    restored = keras.saving.load_model(tmp_path / "encoder.keras", safe_mode=True)
    assert restored.layers[1].activation is swish
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), encoder.predict(images, verbose=0))


def test_image_shape_checks_name_the_problem():
    with pytest.raises(ValueError, match="multiples of 4"):
        check_image_shape((10, 12, 1), 2)
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        check_image_shape((28, 28), 1)


@pytest.mark.parametrize("image_shape", [(28, 28, 1), (32, 32, 3), (12, 12, 3)])
def test_dcgan_networks_for_square_sizes_that_are_multiples_of_four(image_shape):
    from keras_bigml.generative.networks import dcgan_discriminator, dcgan_generator

    generator = dcgan_generator(8, image_shape, (16, 8))
    discriminator = dcgan_discriminator(image_shape, (8, 16))
    images = generator.predict(np.random.default_rng(0).standard_normal((2, 8)), verbose=0)
    assert images.shape == (2, *image_shape) and np.abs(images).max() <= 1.0
    assert discriminator.predict(images, verbose=0).shape == (2, 1)


def test_dcgan_critic_has_no_batch_norm_and_generator_syncs_it():
    import keras

    from keras_bigml.generative.networks import dcgan_discriminator, dcgan_generator

    critic = dcgan_discriminator((8, 8, 1), (8,), num_classes=3)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)
    layers = dcgan_generator(4, (8, 8, 1), (8,)).layers
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.synchronized and isinstance(layer, BatchNormalization) for layer in norms)


def _normalize_with_gradients(layer, x, training=True):
    """The layer's output on ``x`` and the gradients of a weighted sum of it by ``x`` and the weights."""
    import tensorflow as tf

    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(5).normal(size=x.shape), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x, training=training)
        objective = tf.reduce_sum(tf.cast(outputs, tf.float32) * weights)
    gradients = tape.gradient(objective, [x, *layer.trainable_weights])
    return outputs.numpy(), [gradient.numpy() for gradient in gradients]


@pytest.mark.parametrize("shape", [(16, 6), (4, 5, 3, 6)])
@pytest.mark.parametrize("options", [{"synchronized": True}, {"center": False, "scale": False, "momentum": 0.5}])
def test_fused_batch_norm_matches_keras_in_training_and_inference(shape, options):
    import keras

    x = np.random.default_rng(0).normal(3.0, 2.0, size=shape).astype("float32")
    fused, plain = BatchNormalization(**options), keras.layers.BatchNormalization(**options)
    for layer in (fused, plain):
        layer.build(shape)
        if layer.scale:  # weights away from 1 and 0, so that a dropped scale or offset shows
            layer.gamma.assign(np.linspace(0.5, 2.0, shape[-1]))
            layer.beta.assign(np.linspace(-1.0, 1.0, shape[-1]))
    for step in range(3):
        batch = x * (step + 1)
        (fused_out, fused_grads), (plain_out, plain_grads) = (
            _normalize_with_gradients(layer, batch) for layer in (fused, plain))
        np.testing.assert_allclose(fused_out, plain_out, rtol=1e-4, atol=1e-4)
        for fused_grad, plain_grad in zip(fused_grads, plain_grads, strict=True):
            np.testing.assert_allclose(fused_grad, plain_grad, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-4)
    assert np.abs(fused.moving_variance.numpy() - 1.0).min() > 0.1  # the averages moved
    (fused_out, fused_grads), (plain_out, plain_grads) = (
        _normalize_with_gradients(layer, x, training=False) for layer in (fused, plain))
    np.testing.assert_allclose(fused_out, plain_out, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused_grads[0], plain_grads[0], rtol=1e-4, atol=1e-5)


def test_fused_batch_norm_under_mixed_precision_keeps_the_dtypes(mixed_bfloat16):
    import keras

    x = np.random.default_rng(1).normal(size=(32, 4, 4, 8)).astype("float32")
    fused, plain = BatchNormalization(), keras.layers.BatchNormalization()
    (fused_out, fused_grads), (plain_out, plain_grads) = (
        _normalize_with_gradients(layer, x) for layer in (fused, plain))
    assert fused_out.dtype == plain_out.dtype and str(fused_out.dtype) == "bfloat16"
    assert fused.moving_mean.dtype == "float32" and fused.gamma.dtype == "float32"
    np.testing.assert_allclose(fused_out.astype("float32"), plain_out.astype("float32"), atol=0.05)
    for fused_grad, plain_grad in zip(fused_grads[1:], plain_grads[1:]):  # gamma and beta, float32
        np.testing.assert_allclose(fused_grad, plain_grad, rtol=0.02, atol=0.05)


def test_synchronized_fused_batch_norm_takes_global_statistics_on_two_replicas(cpu_devices):
    import tensorflow as tf

    x = np.random.default_rng(2).normal(size=(8, 3)).astype("float32")
    x[4:] += 5.0  # the replicas' halves differ: local statistics would give other outputs
    strategy = get_strategy("mirrored", cpu_devices)  # one per process: the tests share it
    with strategy.scope():
        layer = BatchNormalization(synchronized=True)
        layer.build(x.shape)
    halves = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(np.split(x, 2)[context.replica_id_in_sync_group]))
    outputs = strategy.run(tf.function(lambda batch: layer(batch, training=True)), args=(halves,))
    together = np.concatenate([tensor.numpy() for tensor in strategy.experimental_local_results(outputs)])
    single = BatchNormalization(synchronized=True)
    np.testing.assert_allclose(together, single(x, training=True).numpy(), rtol=1e-4, atol=1e-4)


def test_fused_batch_norm_round_trips(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), BatchNormalization(momentum=0.9, synchronized=True)])
    model(np.random.default_rng(3).normal(size=(8, 4)).astype("float32"), training=True)
    model.save(tmp_path / "bn.keras")
    loaded = keras.saving.load_model(tmp_path / "bn.keras")
    layer = loaded.layers[0]
    assert type(layer) is BatchNormalization and layer.momentum == 0.9 and layer.synchronized
    np.testing.assert_array_equal(layer.moving_mean.numpy(), model.layers[0].moving_mean.numpy())


@pytest.mark.parametrize("slope", [0.2, 0.0])
@pytest.mark.parametrize("compiled", [False, True])
def test_leaky_relu_matches_keras_values_and_gradients(slope, compiled):
    import keras
    import tensorflow as tf

    x = tf.constant(np.concatenate([np.linspace(-3, 3, 61), [0.0, -1e-30, 1e-30]]).astype("float32"))

    def value_and_gradient(layer):
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            return y, tape.gradient(y, x, output_gradients=tf.range(1.0, 1.0 + x.shape[0]))

        y, gradient = (tf.function(run) if compiled else run)(x)
        return y.numpy(), gradient.numpy()

    ours, theirs = value_and_gradient(LeakyReLU(slope)), value_and_gradient(keras.layers.LeakyReLU(slope))
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_leaky_relu_second_order_gradient_matches_keras():
    """A WGAN-GP critic differentiates the norm of its input gradient by its weights."""
    import keras
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(4).normal(size=(5, 3)).astype("float32"))
    kernel = np.random.default_rng(5).normal(size=(3, 4)).astype("float32")

    def penalty_gradient(layer):
        weights = tf.Variable(kernel)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                scores = tf.reduce_sum(layer(tf.matmul(x, weights)) * tf.range(1.0, 5.0))
            penalty = tf.reduce_sum(tf.square(inner.gradient(scores, x)))
        return outer.gradient(penalty, weights).numpy()

    ours = penalty_gradient(LeakyReLU(0.2))
    np.testing.assert_allclose(ours, penalty_gradient(keras.layers.LeakyReLU(0.2)), rtol=1e-6, atol=1e-6)
    assert np.abs(ours).min() > 0


def test_leaky_relu_round_trips_by_name(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), LeakyReLU(0.3)])
    model.save(tmp_path / "leaky.keras")
    loaded = keras.saving.load_model(tmp_path / "leaky.keras", safe_mode=True)
    assert type(loaded.layers[0]) is LeakyReLU and loaded.layers[0].negative_slope == 0.3
    assert isinstance(loaded.layers[0], keras.layers.LeakyReLU)


def test_projection_discriminator_scores_depend_on_the_label():
    from keras_bigml.generative.networks import dcgan_discriminator

    critic = dcgan_discriminator((8, 8, 1), (8,), num_classes=3)
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    first = critic.predict([images, np.array([0, 0])], verbose=0)
    second = critic.predict([images, np.array([2, 2])], verbose=0)
    assert not np.allclose(first, second)


def test_conditional_batch_norm_gives_each_class_its_own_scale_and_offset():
    import keras

    from keras_bigml.generative.networks import dcgan_generator

    def class_tables(generator):
        return [layer for layer in generator.layers
                if isinstance(layer, keras.layers.Dense) and layer.kernel.shape[0] == 3]

    assert not class_tables(dcgan_generator(4, (8, 8, 1), (8, 4), num_classes=3))
    generator = dcgan_generator(4, (8, 8, 1), (8, 4), num_classes=3, conditional_batch_norm=True)
    tables = class_tables(generator)
    assert len(tables) == 4  # a scale and an offset table for each of the two batch normalizations
    inputs = [np.random.default_rng(0).standard_normal((3, 4)).astype("float32"), np.array([0, 1, 2])]
    before = generator.predict(inputs, verbose=0)
    for table in tables:
        table.kernel.assign(table.kernel.numpy() + np.array([[0.0], [0.5], [0.0]], "float32"))
    after = generator.predict(inputs, verbose=0)
    np.testing.assert_allclose(after[[0, 2]], before[[0, 2]], atol=1e-6)
    assert not np.allclose(after[1], before[1], atol=1e-3)


def test_pixelcnn_head_sees_only_the_pixels_before_each_pixel():
    # Three layers reach past one 7x7 window, so a leak anywhere in the stack would show.
    head = pixelcnn_head((8, 8, 2), units=4, num_layers=3)
    rng = np.random.default_rng(0)
    images = (rng.random((1, 8, 8, 2)) > 0.5).astype("float32")
    features = rng.normal(size=(1, 8, 8, 4)).astype("float32")
    logits = head.predict([images, features], verbose=0)
    for row, column in [(0, 0), (3, 5), (7, 7)]:
        changed = images.copy()
        changed[0, row, column] = 1.0 - changed[0, row, column]
        difference = np.abs(head.predict([changed, features], verbose=0) - logits)[0].max(axis=-1)
        raster = np.arange(64).reshape(8, 8)
        position = raster[row, column]
        assert difference[raster <= position].max() == 0.0   # itself and every pixel before it
        if position < 63:
            assert difference[raster == position + 1].max() > 0.0   # the next pixel sees it


def test_masked_convolution_saves_its_mask_type(tmp_path):
    layer = MaskedConv2D(3, 5, mask_type="A")
    restored = MaskedConv2D.from_config(layer.get_config())
    assert restored.mask_type == "A" and restored.kernel_size == (5, 5) and restored.padding == "same"
    np.testing.assert_array_equal(restored.mask, layer.mask)
    assert layer.mask[2, 2].sum() == 0 and layer.mask[2, 1].sum() == 1 and layer.mask[3].sum() == 0


@pytest.mark.parametrize(
    "options, message",
    [(dict(mask_type="C"), "mask_type must be 'A' or 'B'"), (dict(kernel_size=4), "odd kernel_size")],
)
def test_masked_convolution_names_bad_settings(options, message):
    with pytest.raises(ValueError, match=message):
        MaskedConv2D(**{"filters": 2, "kernel_size": 3, **options})


def converged(layer, inputs, iterations=50):
    for _ in range(iterations):
        layer(inputs, training=True)
    return layer


@pytest.mark.parametrize("layer, inputs", [
    (lambda: SpectralConv2D(3, 3, padding="same"), np.ones((2, 6, 6, 2), "float32")),
    (lambda: SpectralDense(4), np.ones((2, 5), "float32")),
])
def test_spectral_layers_divide_by_the_largest_singular_value_and_leave_the_trained_kernel_alone(layer, inputs):
    import keras

    layer = layer()
    layer(inputs)
    layer.kernel.assign(3.0 * layer.kernel.numpy())
    kernel = layer.kernel.numpy()
    vector = converged(layer, inputs).singular_vector.numpy()
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)  # keras.layers.SpectralNormalization rewrites it
    matrix = kernel.reshape(-1, kernel.shape[-1])
    largest = np.linalg.norm(matrix, 2)
    assert largest > 1.5
    normalized = spectrally_normalized(layer.kernel, layer.singular_vector, False).numpy()
    np.testing.assert_allclose(normalized, kernel / largest, rtol=1e-4)
    layer(inputs, training=False)
    np.testing.assert_array_equal(layer.singular_vector.numpy(), vector)  # inference leaves the vector
    plain = (keras.layers.Conv2D(3, 3, padding="same") if isinstance(layer, SpectralConv2D)
             else keras.layers.Dense(4))
    plain(inputs)
    plain.set_weights([normalized, layer.bias.numpy()])
    np.testing.assert_allclose(layer(inputs), plain(inputs), rtol=1e-5, atol=1e-6)


def test_spectral_gradient_flows_through_the_division():
    import tensorflow as tf

    layer = converged(SpectralDense(3, use_bias=False), np.ones((1, 4), "float32"))
    inputs = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(inputs, training=False)))
    gradient = tape.gradient(loss, layer.kernel).numpy()
    # The output does not change when the kernel is scaled, so the gradient is orthogonal to it
    # (Euler); with the singular value held constant it would not be.
    assert abs(np.sum(gradient * layer.kernel.numpy())) < 1e-4 * np.linalg.norm(gradient)
    assert np.linalg.norm(gradient) > 1e-3


def test_spectral_layers_round_trip_and_keep_float32_vectors_under_mixed_precision(tmp_path, mixed_bfloat16):
    import keras

    from keras_bigml.generative.networks import dcgan_discriminator

    critic = dcgan_discriminator((8, 8, 1), (8, 16), num_classes=3, spectral_norm=True)
    normalized = [layer for layer in critic.layers if isinstance(layer, (SpectralConv2D, SpectralDense))]
    assert len(normalized) == 4  # two convolutions, the logit and the label embedding
    assert not any(type(layer) in (keras.layers.Conv2D, keras.layers.Dense) for layer in critic.layers)
    assert all(layer.singular_vector.dtype == "float32" for layer in normalized)
    inputs = [np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32"), np.array([0, 2])]
    critic(inputs, training=True)
    assert critic.output.dtype == "float32"
    critic.save(tmp_path / "critic.keras")
    loaded = keras.saving.load_model(tmp_path / "critic.keras")
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), critic.predict(inputs, verbose=0))


def test_spectral_convolution_refuses_channels_first():
    with pytest.raises(ValueError, match="SpectralConv2D takes channels-last images"):
        SpectralConv2D(2, 3, data_format="channels_first")
