"""Workflows: each function does one job end to end and returns what it measured.

The command line, the notebooks and scripts all call these; nothing here
prints except progress bars. Names load on first use, so the classical
workflows do not import TensorFlow.
"""

from keras_bigml.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ClassicalResult": "classical",
    "train_classical": "classical",
})
