"""Optimizers of models that train several networks, each with its own optimizer."""

from collections.abc import Callable

import keras


def network_optimizer(identifier: keras.optimizers.Optimizer | str | dict | None,
                      default: Callable[[], keras.optimizers.Optimizer] | None,
                      dtype_policy: keras.DTypePolicy) -> keras.optimizers.Optimizer:
    """Return the optimizer for one network: ``identifier`` resolved by Keras, or
    ``default()`` when it is None; wrapped in a LossScaleOptimizer under
    ``mixed_float16`` (Keras does this itself only for ``compile(optimizer=...)``).

    >>> network_optimizer("sgd", None, keras.DTypePolicy("mixed_float16")).__class__.__name__
    'LossScaleOptimizer'
    """
    optimizer = default() if identifier is None else keras.optimizers.get(identifier)
    if dtype_policy.name == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
