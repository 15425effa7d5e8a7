"""Lazy package exports: a name's module is imported on first use.

Lets ``keras_bigml.data`` and ``keras_bigml.evaluation`` offer table and
scikit-learn helpers without importing TensorFlow.
"""

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], list[str]]:
    """Return ``(__getattr__, __all__)`` for a package whose names live in submodules.

    ``exports`` maps each public name to its submodule's short name.
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__, sorted(exports)
