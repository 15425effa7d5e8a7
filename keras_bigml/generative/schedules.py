"""Learning-rate schedules of the generative models."""

import keras

from keras_bigml.errors import ConfigError


@keras.saving.register_keras_serializable(package="keras_bigml")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant for ``constant_steps``, then linearly down to zero over ``decay_steps``
    (CycleGAN: 100 epochs constant, 100 epochs of decay).

    >>> schedule = LinearDecay(2e-4, constant_steps=100, decay_steps=100)
    >>> [round(float(schedule(step)), 6) for step in (0, 100, 150, 200, 300)]
    [0.0002, 0.0002, 0.0001, 0.0, 0.0]
    """

    def __init__(self, initial_learning_rate, constant_steps, decay_steps):
        if constant_steps < 0 or decay_steps < 1:
            raise ConfigError(
                f"constant_steps must be >= 0 and decay_steps >= 1, got {constant_steps} and {decay_steps}."
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        progress = keras.ops.clip((step - self.constant_steps) / self.decay_steps, 0.0, 1.0)
        return self.initial_learning_rate * (1.0 - progress)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
        }
