"""Save and load fitted pipelines: skops (safe, inspectable) or joblib (anything)."""

import os

import joblib

from keras_bigml.files import atomic_path

TRUSTED_MODULE_PREFIXES = ("sklearn.", "keras_bigml.")
TRUSTED_TYPES = ("numpy.dtype",)


def save_model(model, path):
    """Save a fitted model atomically: ``.skops`` with skops, anything else with joblib.

    >>> import tempfile, os
    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("iris")
    >>> path = save_model(make_model("decision_tree").fit(X, y), os.path.join(tempfile.mkdtemp(), "m.skops"))
    >>> load_model(path).score(X, y)
    1.0
    """
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        if path.endswith(".skops"):
            import skops.io

            skops.io.dump(model, tmp)
        else:
            joblib.dump(model, tmp)
    return path


def load_model(path, trusted=None):
    """Load a model saved by :func:`save_model`.

    skops files load only types from scikit-learn and keras_bigml (and the types
    skops trusts itself), plus those named in ``trusted``; joblib files run code when loaded, so load
    only your own.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No saved model at {path}.")
    try:
        if path.endswith(".skops"):
            import skops.io

            untrusted = skops.io.get_untrusted_types(file=path)
            allowed = [t for t in untrusted if t.startswith(TRUSTED_MODULE_PREFIXES) or t in TRUSTED_TYPES]
            allowed += list(trusted or [])
            refused = sorted(set(untrusted) - set(allowed))
            if refused:
                raise ValueError(f"{path} holds types that are not trusted: {', '.join(refused)}; "
                                 "pass them in trusted= if you trust the file.")
            return skops.io.load(path, trusted=allowed)
        return joblib.load(path)
    except ValueError:
        raise
    except Exception as error:
        raise ValueError(f"{path} is not a saved model ({type(error).__name__}: {error}).") from None
