"""A run directory: one consistent set of a training run's files, never lost, never mixed.

Layout of a run directory ``DIR``::

    DIR/run.json         arguments, package versions, seed, status (running, finished, failed)
    DIR/run.lock         while a process writes the run: its process id
    DIR/model.keras      the model with its optimizer state (keras.saving.load_model)
    DIR/saved_model/     TF SavedModel with serving signatures
    DIR/samples.png      a grid of generated (or translated) images
    DIR/history.json     the metrics of every epoch
    DIR/grids/           one sample grid per epoch
    DIR/report.html      one self-contained page of all of the above (keras_bigml.reports)
    DIR/backup/          the last finished epoch's state, kept until the final set is written

Rules (`RunDirectory.open`): a finished run is not replaced unless asked
(``overwrite``); an unfinished one is continued (``resume``) or replaced, never
silently mixed; a resumed run must be asked for with the arguments it was started
with; one process at a time writes a directory (a lock left by a dead process is
taken over with a warning). Every file is written to a temporary name and renamed.

This module imports TensorFlow only inside the functions that train or load Keras
models, so classical runs use `RunDirectory` without it.
"""

import contextlib
import importlib.metadata
import json
import os
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keras_bigml.checks import positive_int
from keras_bigml.errors import ConfigError, ModelFileError, RunError, UntrustedFileError
from keras_bigml.files import atomic_path, process_alive

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from keras_bigml.generative.base import GenerativeModel

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
BACKUP_DIR = "backup"
STATUSES = ("running", "finished", "failed")
VERSIONED_PACKAGES = ("keras_bigml", "keras", "tensorflow", "numpy", "scikit-learn", "xgboost", "dask")


class RunDirectory:
    """The files of one run, its status in ``run.json`` and its lock.

    >>> import tempfile
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> with run.open("vae", {"latent_dim": 2}):
    ...     run.info["status"]
    'running'
    >>> run.info["status"], run.info["arguments"]
    ('finished', {'latent_dim': 2})
    >>> with run.open("vae", {"latent_dim": 2}):
    ...     pass
    Traceback (most recent call last):
    ...
    keras_bigml.errors.RunError: ... holds a finished vae run: pass overwrite (--overwrite) to replace it, ...
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def info(self) -> dict | None:
        """The contents of ``run.json``, or None when the directory holds no run."""
        path = self.file(RUN_FILE)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as file:
                info = json.load(file)
        except (OSError, ValueError) as error:
            raise RunError(f"{path} is damaged ({error}); move it away to start a new run there.") from None
        if not isinstance(info, dict) or info.get("status") not in STATUSES:
            raise RunError(f"{path} is not a keras_bigml run file (no valid status).")
        return info

    @contextlib.contextmanager
    def open(self, kind: str, arguments: Mapping, *, resume: bool = False, overwrite: bool = False,
             seed: int | None = None, restartable: bool = False) -> Iterator["RunDirectory"]:
        """Lock the directory, check it may be written as asked, mark it running; finished at the end.

        On an exception (or Ctrl-C) the run is marked failed with the error, and
        whatever was saved (backup, history) stays for ``resume``. Runs that
        cannot be resumed (``restartable``, e.g. a classical fit) start again
        over an unfinished run of theirs.
        """
        if resume and overwrite:
            raise ConfigError("Pass either resume (--resume) or overwrite (--overwrite), not both.")
        arguments = _plain(dict(arguments))
        # A run refused or failed before it wrote anything leaves no directory behind.
        created = not os.path.isdir(self.path)
        fresh = created or not os.listdir(self.path)
        try:
            with self.lock():
                info = self.info
                if restartable and info is not None and info["status"] != "finished" and info["kind"] == kind:
                    overwrite = True
                self._check(kind, arguments, resume, overwrite)
                if overwrite:
                    self._clear()
                info = (self.info if resume else None) or {}
                self._write({
                    **info, "kind": kind, "arguments": arguments, "seed": seed, "status": "running",
                    "command": info.get("command", sys.argv), "versions": _versions(),
                    "started": info.get("started", _now()), "resumed": resume, "error": None,
                })
                try:
                    yield self
                except BaseException as error:
                    self.update(status="failed", error=f"{type(error).__name__}: {error}".strip(": "))
                    raise
                self.update(status="finished", finished=_now())
        except BaseException:
            if fresh and os.path.isdir(self.path) and set(os.listdir(self.path)) <= {RUN_FILE}:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.file(RUN_FILE))
                if created:
                    os.rmdir(self.path)
            raise

    def update(self, **fields: object) -> None:
        """Rewrite ``run.json`` with ``fields`` changed (atomically)."""
        self._write({**(self.info or {}), **_plain(fields)})

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``run.lock`` (this process's id) while writing the run."""
        os.makedirs(self.path, exist_ok=True)
        path = self.file(LOCK_FILE)
        owner = (os.getpid(), socket.gethostname())
        while True:
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _read_lock(path)
                if holder is not None and process_alive(*holder):
                    raise RunError(
                        f"{self.path} is in use by process {holder[0]} on {holder[1]}: wait for it to end, "
                        "or write to another directory."
                    ) from None
                warnings.warn(f"Taking over {path}, left by process {holder[0] if holder else '?'} that "
                              "is no longer running.", stacklevel=3)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                continue
            with os.fdopen(descriptor, "w") as file:
                file.write(f"{owner[0]}@{owner[1]}")
            break
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                if _read_lock(path) == owner:
                    os.remove(path)

    def _check(self, kind, arguments, resume, overwrite):
        info = self.info
        has_backup = os.path.isdir(self.file(BACKUP_DIR))
        if resume:
            if info is None or (info["status"] != "finished" and not has_backup and
                                not os.path.isfile(self.file("model.keras"))):
                raise RunError(f"Nothing to resume in {self.path}: no unfinished run with a backup there.")
            if info["status"] == "finished":
                raise RunError(f"{self.path} holds a finished {info['kind']} run: nothing to resume.")
            differences = _differences({"kind": info["kind"], **info["arguments"]}, {"kind": kind, **arguments})
            if differences:
                raise RunError(f"Cannot resume {self.path} with other arguments than it was started with: "
                               f"{differences}. Resume with the same arguments, or pass --overwrite.")
            return
        if overwrite:
            return
        if info is not None:
            if info["status"] == "finished":
                raise RunError(f"{self.path} holds a finished {info['kind']} run: pass overwrite (--overwrite) "
                               "to replace it, or write to another directory.")
            raise RunError(f"{self.path} holds an unfinished {info['kind']} run ({info['status']}): pass resume "
                           "(--resume) to continue it or overwrite (--overwrite) to start again.")
        leftovers = sorted(set(os.listdir(self.path)) - {LOCK_FILE})
        if leftovers:
            raise RunError(f"{self.path} is not empty ({', '.join(leftovers[:5])}) and holds no run: "
                           "write to a new directory, or pass overwrite (--overwrite) to clear it.")

    def _clear(self):
        for name in os.listdir(self.path):
            if name == LOCK_FILE:
                continue
            target = self.file(name)
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            else:
                os.remove(target)

    def _write(self, info):
        with atomic_path(self.file(RUN_FILE)) as tmp, open(tmp, "w") as file:
            json.dump(info, file, indent=1)


def fit_and_save(model: "GenerativeModel", dataset: "tf.data.Dataset", out_dir: str | os.PathLike, epochs: int,
                 verbose: int | str = "auto", callbacks: "Sequence[keras.callbacks.Callback]" = (),
                 resume: bool = False, overwrite: bool = False, arguments: Mapping | None = None,
                 seed: int | None = None, record: Mapping | None = None) -> dict[str, str]:
    """Fit a compiled `keras_bigml.generative.base.GenerativeModel` and write its run directory.

    While it trains, ``DIR/backup/`` holds the state at the end of the last epoch
    (weights, all optimizers' state, random-number state, CycleGAN image pools)
    and ``DIR/history.json`` the metrics so far. The backup stays until the final
    set (model, SavedModel, samples, history) is written, so ``resume=True``
    finishes a run stopped at any moment, even between its last epoch and the
    save. ``arguments`` (what the run was made with) go into ``run.json``; a
    resume must repeat them. ``record`` adds fields to ``run.json`` (what was
    decided at the start, such as the precision). A NaN or infinite loss stops training with
    `keras_bigml.errors.TrainingDivergedError` and leaves the backup of the last
    good epoch in place. Returns the paths written.

    Example:

    >>> import tempfile
    >>> from keras_bigml.data import load_images
    >>> from keras_bigml.generative import VAE
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> vae.compile(optimizer="adam")
    >>> paths = fit_and_save(vae, load_images("digits", limit=32), tempfile.mkdtemp(), 1, verbose=0)
    >>> sorted(paths)
    ['history', 'model', 'report', 'run', 'samples', 'saved_model']
    """
    import keras

    from keras_bigml.callbacks import HistoryFile, ImageGridCallback, RunProgress, StopOnNonFiniteLoss

    positive_int("epochs", epochs)
    run = RunDirectory(out_dir)
    backup_dir = run.file(BACKUP_DIR)
    with run.open(model.kind, arguments or {}, resume=resume, overwrite=overwrite, seed=seed):
        if resume:
            _check_backup(backup_dir)
        if record:
            run.update(**record)
        examples = model.grid_examples(dataset)
        history = HistoryFile(run.file("history.json"))
        safety = [
            StopOnNonFiniteLoss(hint=f"The last good epoch is saved in {backup_dir}: resume with a lower "
                                "learning rate."),
            # The backup is deleted here only after the whole set is written, not at the end of fit.
            keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=False),
            history,
            RunProgress(run),
        ]
        grids = ImageGridCallback(run.file("grids"), examples=examples)
        # The dataset shuffles itself; shuffle=False only silences Keras's warning.
        model.fit(dataset, epochs=epochs, verbose=verbose, callbacks=[*safety, grids, *callbacks], shuffle=False)
        paths = save_run(model, history.history, out_dir, examples=examples)
        paths["run"] = run.file(RUN_FILE)
    shutil.rmtree(backup_dir, ignore_errors=True)
    from keras_bigml.reports import write_report

    paths["report"] = write_report(out_dir)
    return paths


def save_run(model: "GenerativeModel", history: Mapping[str, Sequence[float]], out_dir: str | os.PathLike,
             num_samples: int = 64, examples: Any = None) -> dict[str, str]:
    """Write model, SavedModel, sample grid and history into ``out_dir``; return the paths.

    The grid comes from the model's `sample_grid` (``num_samples`` generated
    images, or for translation models the translations of ``examples``).
    """
    from keras_bigml.export import export_saved_model
    from keras_bigml.plotting import save_image_grid

    paths = {
        "model": os.path.join(out_dir, "model.keras"),
        "saved_model": os.path.join(out_dir, "saved_model"),
        "samples": os.path.join(out_dir, "samples.png"),
        "history": os.path.join(out_dir, "history.json"),
    }
    with atomic_path(paths["model"], suffix=".keras") as tmp:
        model.save(tmp)
    export_saved_model(model, paths["saved_model"])
    images, columns = model.sample_grid(examples, num_images=num_samples)
    save_image_grid(images, paths["samples"], ncols=columns)
    with atomic_path(paths["history"]) as tmp, open(tmp, "w") as file:
        json.dump({key: [float(v) for v in values] for key, values in history.items()}, file, indent=1)
    return paths


def load_keras_file(path: str | os.PathLike, allow_unsafe: bool = False, what: str = "model") -> "keras.Model":
    """Load a ``.keras`` file with Keras's safe mode on unless ``allow_unsafe`` (it runs Lambda code).

    >>> load_keras_file("missing.keras")
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ModelFileError: No model file at missing.keras.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"No {what} file at {path}.")
    import keras

    import keras_bigml.generative  # noqa: F401  registers the models, layers and schedules

    try:
        return keras.saving.load_model(path, safe_mode=not allow_unsafe)
    except Exception as error:
        message = str(error)
        if "safe_mode" in message or "unsafe" in message.lower():
            raise UntrustedFileError(
                f"{path} holds Python code (e.g. a Lambda layer) that would run when loaded: refused; "
                "pass allow_unsafe=True (--allow-unsafe-deserialization) if you trust the file."
            ) from None
        first_line = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        raise ModelFileError(f"{path} is not a readable Keras {what} file ({first_line}).") from None


def load_run_model(run_dir: str | os.PathLike, allow_unsafe: bool = False) -> "keras.Model":
    """Load ``run_dir/model.keras`` (or a ``.keras`` path), safely, with a clear error when missing."""
    run_dir = os.fspath(run_dir)
    path = run_dir if run_dir.lower().endswith(".keras") else os.path.join(run_dir, "model.keras")
    if not os.path.isfile(path):
        info = RunDirectory(run_dir).info if os.path.isdir(run_dir) else None
        if info is not None and info["status"] != "finished":
            raise ModelFileError(f"The run in {run_dir} is {info['status']} and has no model yet: "
                                 "finish it with --resume.")
        raise ModelFileError(f"No trained model at {path}: train one with 'keras-bigml train'.")
    return load_keras_file(path, allow_unsafe=allow_unsafe)


def _check_backup(backup_dir):
    """A backup with weights but without Keras's epoch record would restart the epoch count."""
    if os.path.isdir(backup_dir) and not os.path.isfile(os.path.join(backup_dir, "training_metadata.json")):
        raise RunError(f"{backup_dir} is incomplete (training_metadata.json is missing), so the epoch to go on "
                       "from is unknown: pass --overwrite to start the run again.")


def _differences(before, now):
    """The arguments that differ; one added since the run started matches while it is off (0, False,
    None): new options default to off, so runs of an earlier version resume."""
    keys = sorted(set(before) | set(now))
    return "; ".join(f"{key} was {before.get(key)!r}, now {now.get(key)!r}" for key in keys
                     if before.get(key) != now.get(key) and (key in before or now.get(key)))


def _plain(value):
    """JSON-ready: tuples to lists, paths to strings (so a comparison after reading run.json holds)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _versions():
    versions = {}
    for package in VERSIONED_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def _read_lock(path):
    try:
        with open(path) as file:
            pid, _, host = file.read().strip().partition("@")
        return int(pid), host
    except (OSError, ValueError):
        return None


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
