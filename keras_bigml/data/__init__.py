"""Data sources: image pipelines (TensorFlow) and tables (pandas).

Names load on first use, so table users do not import TensorFlow.
"""

import importlib

_EXPORTS = {
    "find_dataset": "images",
    "load_images": "images",
    "network_available": "images",
    "pair_unpaired": "images",
    "iter_table_chunks": "tables",
    "load_table": "tables",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_bigml.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"keras_bigml.data.{_EXPORTS[name]}"), name)
