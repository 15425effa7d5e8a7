"""SavedModel export with named serving signatures, written atomically.

Each model describes its signatures in ``serving_functions()``: a dict from
signature name to ``(function, input_signature)``. Signatures take and return
float32 NHWC images in [0, 1], float32 latent vectors and int32 labels, so a
client with TensorFlow alone can call them. The first signature also serves as
``serving_default``.

>>> import tempfile, os
>>> from keras_bigml.generative import VAE
>>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
>>> path = export_saved_model(vae, os.path.join(tempfile.mkdtemp(), "vae"))
>>> import tensorflow as tf
>>> sorted(tf.saved_model.load(path).signatures)
['decode', 'encode', 'reconstruct', 'serving_default']
"""

import os

import keras
import tensorflow as tf

from keras_bigml.files import atomic_path


def export_saved_model(model, path):
    """Write ``model``'s serving signatures as a TF SavedModel at ``path``; return ``path``.

    An existing export at ``path`` is replaced only once the new one is complete.
    """
    if not hasattr(model, "serving_functions"):
        raise TypeError(f"{type(model).__name__} has no serving_functions(); cannot export it.")
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, input_signature) in model.serving_functions().items():
        archive.add_endpoint(name=name, fn=function, input_signature=input_signature)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path


def load_saved_model(path):
    """Load an exported SavedModel with TensorFlow, naming the problem when ``path`` is not one.

    >>> import tempfile
    >>> load_saved_model(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    OSError: ... holds no SavedModel (no saved_model.pb): export one with keras_bigml.export.export_saved_model.
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise OSError(f"{path} holds no SavedModel (no saved_model.pb): export one with "
                      "keras_bigml.export.export_saved_model.")
    try:
        return tf.saved_model.load(path)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(f"{path} is a damaged SavedModel ({first_line}).") from None
