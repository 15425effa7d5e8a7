import keras
import numpy as np
import pytest

from keras_bigml.generative.schedules import LinearDecay


def test_constant_then_linear_to_zero_and_serializable():
    schedule = LinearDecay(1e-3, constant_steps=10, decay_steps=20)
    rates = [float(schedule(step)) for step in (0, 10, 15, 30, 31)]
    np.testing.assert_allclose(rates, [1e-3, 1e-3, 7.5e-4, 0.0, 0.0], atol=1e-9)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored.get_config() == schedule.get_config()


def test_bad_steps_are_named():
    with pytest.raises(ValueError, match="decay_steps >= 1"):
        LinearDecay(1e-3, constant_steps=10, decay_steps=0)
