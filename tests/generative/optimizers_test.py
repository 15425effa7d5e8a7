import keras

from keras_bigml.generative.optimizers import network_optimizer


def test_default_given_and_loss_scaled_optimizers():
    float32, float16 = keras.DTypePolicy("float32"), keras.DTypePolicy("mixed_float16")
    assert isinstance(network_optimizer(None, lambda: keras.optimizers.Adam(0.1), float32), keras.optimizers.Adam)
    assert isinstance(network_optimizer("rmsprop", None, float32), keras.optimizers.RMSprop)
    scaled = network_optimizer(keras.optimizers.SGD(), None, float16)
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
    assert network_optimizer(scaled, None, float16) is scaled
