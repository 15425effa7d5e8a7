"""Keras callbacks for generative training."""

import json
import math
import os
import time
from typing import TYPE_CHECKING

import keras

from keras_bigml.errors import TrainingDivergedError
from keras_bigml.files import atomic_path
from keras_bigml.generative.sampling import latent_vectors, sample_labels
from keras_bigml.plotting import save_image_grid

if TYPE_CHECKING:
    import tensorflow as tf

    from keras_bigml.generative.base import GenerativeModel


class ImageGridCallback(keras.callbacks.Callback):
    """Save a grid of generated images after every ``every`` epochs.

    Works with every `keras_bigml.generative.base.GenerativeModel` through its
    ``sample_grid``: the same latent vectors are decoded each time, so the grids
    show how one set of samples evolves; translation models show the
    translations of ``examples`` (from ``model.grid_examples(dataset)``).

    Parameters
    ----------
    directory : str
        Where ``epoch_001.png``, ``epoch_002.png``, ... are written.
    num_images : int
    every : int
    seed : int
    examples : (array, array), optional
        Images of domain A and B whose translations each grid shows, one row each.

    Examples
    --------
    >>> import tempfile
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.generative import VAE
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> vae.compile(optimizer="adam")
    >>> out = tempfile.mkdtemp()
    >>> _ = vae.fit(load_images("digits", limit=32), epochs=2, verbose=0,
    ...             callbacks=[ImageGridCallback(out, num_images=9)])
    >>> sorted(os.listdir(out))
    ['epoch_001.png', 'epoch_002.png']
    """

    def __init__(self, directory, num_images=64, every=1, seed=0, examples=None):
        super().__init__()
        self.directory = directory
        self.num_images = num_images
        self.every = every
        self.seed = seed
        self.examples = examples

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every:
            return
        path = os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png")
        images, columns = self.model.sample_grid(self.examples, num_images=self.num_images, seed=self.seed)
        save_image_grid(images, path, ncols=columns)


class RunProgress(keras.callbacks.Callback):
    """Record in the run's ``run.json`` how many epochs are done, after each epoch.

    >>> import tempfile
    >>> from keras_bigml.runs import RunDirectory
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> with run.open("vae", {}):
    ...     RunProgress(run).on_epoch_end(0, {"loss": 1.5})
    >>> run.info["epochs_done"], run.info["last_logs"]
    (1, {'loss': 1.5})
    """

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.run.update(epochs_done=epoch + 1, last_logs={name: float(value) for name, value in (logs or {}).items()})


class TimeLimit(keras.callbacks.Callback):
    """Stop training before an epoch would end past ``seconds`` of wall time.

    The next epoch is assumed to last as long as the slowest one so far.

    >>> TimeLimit(60).seconds
    60
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self._start = None
        self._epoch_start = None
        self._slowest_epoch = 0.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self._slowest_epoch = max(self._slowest_epoch, now - self._epoch_start)
        if now - self._start + self._slowest_epoch > self.seconds:
            self.model.stop_training = True


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with `TrainingDivergedError` as soon as a logged value is NaN or infinite.

    It raises instead of setting ``stop_training``: the epoch then never ends, so
    `keras.callbacks.BackupAndRestore` and checkpoint callbacks keep the last good
    epoch instead of saving broken weights.

    Parameters
    ----------
    hint : str
        Appended to the message, e.g. where the last good checkpoint is.

    Examples
    --------
    >>> callback = StopOnNonFiniteLoss()
    >>> callback.on_epoch_begin(2)
    >>> callback.on_train_batch_end(6, {"d_loss": 0.7, "g_loss": float("nan")})
    Traceback (most recent call last):
    ...
    keras_bigml.errors.TrainingDivergedError: Training stopped at epoch 3, batch 7: g_loss is nan.
    """

    def __init__(self, hint=""):
        super().__init__()
        self.hint = hint
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            if not math.isfinite(float(value)):
                raise TrainingDivergedError(
                    f"Training stopped at epoch {self._epoch + 1}, batch {batch + 1}: "
                    f"{name} is {float(value)}.{' ' + self.hint if self.hint else ''}"
                )


class HistoryFile(keras.callbacks.Callback):
    """Keep every epoch's logs in a JSON file, rewritten (atomically) after each epoch.

    A run resumed at epoch ``k`` (`keras.callbacks.BackupAndRestore`) keeps the
    first ``k`` stored epochs and appends to them, so the file always holds the
    whole run's history.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "history.json")
    >>> history = HistoryFile(path)
    >>> history.on_train_begin(); history.on_epoch_begin(0)
    >>> history.on_epoch_end(0, {"loss": 2.0})
    >>> resumed = HistoryFile(path)
    >>> resumed.on_train_begin(); resumed.on_epoch_begin(1)
    >>> resumed.on_epoch_end(1, {"loss": 1.5})
    >>> json.load(open(path))
    {'loss': [2.0, 1.5]}
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.history = {}
        self._first_epoch = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first_epoch = None
        self.history = {}
        if os.path.isfile(self.path):
            with open(self.path) as file:
                self.history = json.load(file)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch
            self.history = {name: values[:epoch] for name, values in self.history.items()}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        with atomic_path(self.path) as tmp, open(tmp, "w") as file:
            json.dump(self.history, file, indent=1)


class GeneratorMetrics(keras.callbacks.Callback):
    """Add sample-quality metrics to the epoch logs (and so to ``History``) while a GAN or VAE trains.

    Every ``every`` epochs the model generates ``num_samples`` images from fixed
    latent vectors (cycling through the classes when conditional) and
    ``classifier`` judges them against ``real_images``: ``frechet_distance``,
    ``classifier_score`` and, for conditional models, ``label_agreement``.

    Examples
    --------
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.evaluation import train_classifier
    >>> from keras_bigml.generative import GAN
    >>> images, labels = next(iter(load_images("digits", labels=True, batch_size=300)))
    >>> classifier = train_classifier(images.numpy(), labels.numpy(), epochs=1)
    >>> gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,),
    ...           discriminator_filters=(8,), num_classes=10, seed=0)
    >>> gan.compile()
    >>> history = gan.fit(load_images("digits", labels=True, limit=64), epochs=1, verbose=0,
    ...                   callbacks=[GeneratorMetrics(classifier, images.numpy(), num_samples=100)])
    >>> sorted(history.history)
    ['classifier_score', 'd_loss', 'frechet_distance', 'g_loss', 'label_agreement']
    """

    def __init__(self, classifier, real_images, every=1, num_samples=1000, seed=0):
        super().__init__()
        self.classifier = classifier
        self.real_images = real_images
        self.every = every
        self.num_samples = num_samples
        self.seed = seed
        self._real_features = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from keras_bigml.evaluation.generative import (
            classifier_outputs,
            classifier_score,
            frechet_distance,
            label_agreement,
        )

        if logs is None or (epoch + 1) % self.every:
            return
        if self._real_features is None:
            self._real_features = classifier_outputs(self.classifier, self.real_images)[0]
        labels = sample_labels(self.num_samples, None, self.model.num_classes)
        z = latent_vectors(self.num_samples, self.model.latent_dim, self.seed)
        images = self.model.generate(z=z, labels=labels)
        features, probabilities = classifier_outputs(self.classifier, images)
        logs["frechet_distance"] = frechet_distance(features, self._real_features)
        logs["classifier_score"] = classifier_score(probabilities)
        if labels is not None:
            logs["label_agreement"] = label_agreement(probabilities, labels)


class SampleGridSummary(keras.callbacks.Callback):
    """Write each epoch's sample grid to TensorBoard as an image (``tf.summary.image``).

    The grid comes from the model's ``sample_grid`` (fixed latent vectors, or the
    translations of ``examples``), so TensorBoard's slider shows one set of
    samples improving.

    >>> import tempfile
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.generative import VAE
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> vae.compile(optimizer="adam")
    >>> logs = tempfile.mkdtemp()
    >>> _ = vae.fit(load_images("digits", limit=32), epochs=1, verbose=0, callbacks=[SampleGridSummary(logs)])
    >>> len(os.listdir(logs))
    1
    """

    def __init__(self, log_dir, examples=None, num_images=36, seed=0):
        super().__init__()
        self.log_dir = log_dir
        self.examples = examples
        self.num_images = num_images
        self.seed = seed
        self._writer = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import tensorflow as tf

        from keras_bigml.plotting import image_grid

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        images, columns = self.model.sample_grid(self.examples, num_images=self.num_images, seed=self.seed)
        with self._writer.as_default():
            tf.summary.image("samples", image_grid(images, columns)[None], step=epoch + 1)
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def tensorboard_callbacks(log_dir: str | os.PathLike, dataset: "tf.data.Dataset",
                          model: "GenerativeModel") -> list[keras.callbacks.Callback]:
    """Keras's `TensorBoard` (losses and metrics per epoch under ``log_dir/train``) and the
    sample grids (``log_dir/samples``) for a generative model trained on ``dataset``."""
    return [
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        SampleGridSummary(os.path.join(log_dir, "samples"), examples=model.grid_examples(dataset)),
    ]
