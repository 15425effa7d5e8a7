"""A training run's outputs on disk: model, SavedModel, sample grid, history.

Layout of a run directory ``DIR``::

    DIR/model.keras      the model with its optimizer state (keras.saving.load_model)
    DIR/saved_model/     TF SavedModel with serving signatures
    DIR/samples.png      a grid of generated (or translated) images
    DIR/history.json     the metrics of every epoch
    DIR/grids/           one sample grid per epoch
    DIR/backup/          while training: the last finished epoch's state, for resuming
"""

import json
import os
import shutil

import keras
import numpy as np

from keras_bigml.callbacks import HistoryFile, ImageGridCallback, StopOnNonFiniteLoss
from keras_bigml.export import export_saved_model
from keras_bigml.files import atomic_path
from keras_bigml.plotting import save_image_grid


def fit_and_save(model, dataset, out_dir, epochs, verbose="auto", callbacks=(), resume=False):
    """Fit a compiled generative model and write the run directory; return the paths.

    While it trains, ``DIR/backup/`` holds the state at the end of the last epoch
    (weights, all optimizers' state, random-number state, CycleGAN image pools)
    and ``DIR/history.json`` the metrics so far. After a killed process,
    ``resume=True`` continues from that epoch; the files of the finished run
    are written only at the end. A NaN or infinite loss stops training with
    `keras_bigml.errors.TrainingDivergedError` and leaves the backup of the last
    good epoch in place.

    Example:

    >>> import tempfile
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.generative import VAE
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> vae.compile(optimizer="adam")
    >>> paths = fit_and_save(vae, load_images("digits", limit=32), tempfile.mkdtemp(), 1, verbose=0)
    >>> sorted(paths)
    ['history', 'model', 'samples', 'saved_model']
    """
    backup_dir = os.path.join(out_dir, "backup")
    if resume and not os.path.isdir(backup_dir):
        raise FileNotFoundError(f"Nothing to resume: {backup_dir} does not exist (the run finished or never started).")
    if not resume and os.path.isdir(backup_dir):
        shutil.rmtree(backup_dir)
    examples = None if hasattr(model, "generate") else example_pairs(dataset)
    history = HistoryFile(os.path.join(out_dir, "history.json"))
    safety = [
        StopOnNonFiniteLoss(hint=f"The last good epoch is saved in {backup_dir}: resume with a lower learning rate."),
        keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True),
        history,
    ]
    grids = ImageGridCallback(os.path.join(out_dir, "grids"), examples=examples)
    # The dataset shuffles itself; shuffle=False only silences Keras's warning.
    model.fit(dataset, epochs=epochs, verbose=verbose, callbacks=[*safety, grids, *callbacks], shuffle=False)
    return save_run(model, history.history, out_dir, examples=examples)


def example_pairs(dataset, count=8):
    """The first ``count`` images of each domain from a dataset of ``(images_a, images_b)`` batches."""
    images_a, images_b = [], []
    for batch_a, batch_b in dataset:
        images_a.extend(batch_a.numpy())
        images_b.extend(batch_b.numpy())
        if len(images_a) >= count:
            break
    return np.stack(images_a[:count]), np.stack(images_b[:count])


def save_run(model, history, out_dir, num_samples=64, examples=None):
    """Write model, SavedModel, sample grid and history into ``out_dir``; return the paths.

    The grid shows ``num_samples`` generated images, or for translation models the
    translations of ``examples`` (``(images_a, images_b)``).
    """
    paths = {
        "model": os.path.join(out_dir, "model.keras"),
        "saved_model": os.path.join(out_dir, "saved_model"),
        "samples": os.path.join(out_dir, "samples.png"),
        "history": os.path.join(out_dir, "history.json"),
    }
    with atomic_path(paths["model"], suffix=".keras") as tmp:
        model.save(tmp)
    export_saved_model(model, paths["saved_model"])
    if examples is None:
        save_image_grid(model.generate(num_samples), paths["samples"])
    else:
        save_image_grid(model.translation_examples(*examples), paths["samples"], ncols=6)
    with atomic_path(paths["history"]) as tmp, open(tmp, "w") as file:
        json.dump({key: [float(v) for v in values] for key, values in history.items()}, file, indent=1)
    return paths


def load_run_model(run_dir):
    """Load ``run_dir/model.keras`` (or a ``.keras`` path) with a clear error when missing."""
    import keras_bigml.generative  # noqa: F401  registers the models, layers and schedules

    path = run_dir if str(run_dir).endswith(".keras") else os.path.join(run_dir, "model.keras")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No trained model at {path}: train one with 'keras-bigml train'.")
    try:
        return keras.saving.load_model(path)
    except Exception as error:
        raise ValueError(f"{path} is not a readable Keras model file ({error}).") from None
