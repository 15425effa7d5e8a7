"""Random-number state that is saved with a model, so a resumed run draws what an
uninterrupted one would."""

import keras

SEED_STATE_KEY = "seed_generator_state"


class SavedSeedState:
    """Mixin for a Keras layer or model with a ``seed_generator``: its state is
    written by ``save_weights``/``save`` (and so by `keras.callbacks.BackupAndRestore`)
    and read back by ``load_weights``/``load_model``. Keras itself saves only the
    layer's own variables, not a seed generator's.

    >>> class Noise(SavedSeedState, keras.layers.Layer):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.seed_generator = keras.random.SeedGenerator(0)
    >>> store, layer = {}, Noise()
    >>> _ = keras.random.normal((1,), seed=layer.seed_generator)
    >>> layer.save_own_variables(store)
    >>> fresh = Noise()
    >>> fresh.load_own_variables(store)
    >>> fresh.seed_generator.state.numpy().tolist() == layer.seed_generator.state.numpy().tolist()
    True
    """

    def save_own_variables(self, store: dict) -> None:
        super().save_own_variables(store)
        store[SEED_STATE_KEY] = keras.ops.convert_to_numpy(self.seed_generator.state.value)

    def load_own_variables(self, store: dict) -> None:
        keys = list(store.keys())
        if SEED_STATE_KEY in keys:
            self.seed_generator.state.assign(store[SEED_STATE_KEY][...])
        super().load_own_variables({key: store[key] for key in keys if key != SEED_STATE_KEY})
