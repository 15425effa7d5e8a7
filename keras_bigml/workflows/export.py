"""Export a finished run as a SavedModel, a LiteRT file or ONNX, checked against the run's own model.

Generative runs (``DIR/saved_model``) export to all three formats; classical
runs (``DIR/model.skops``) to ONNX. Without ``out`` the export goes into the
run: ``DIR/saved_model`` (rewritten from ``DIR/model.keras``), ``DIR/model.tflite``,
``DIR/onnx/SIGNATURE.onnx`` or, for classical runs, ``DIR/model.onnx``.
Classical runs import no TensorFlow.
"""

import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keras_bigml.conversion import TOLERANCE, ConversionResult, compare_saved_models, to_litert, to_onnx
from keras_bigml.errors import ConfigError, ModelFileError, RunError
from keras_bigml.files import atomic_path
from keras_bigml.runs import RunDirectory

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("savedmodel", "litert", "onnx")
DEFAULT_OUT = {"savedmodel": "saved_model", "litert": "model.tflite", "onnx": "onnx"}
CLASSICAL_MODEL = "model.skops"


@dataclass
class ExportResult(ConversionResult):
    """What `export_run` wrote and how closely it matches the run (see `ConversionResult`).

    ``run_kind`` is ``"generative"`` or ``"classical"``.
    """

    run_kind: str = ""


def export_run(run_dir: str | os.PathLike, format: str = "savedmodel",
               out: str | os.PathLike | None = None, *, data: "str | os.PathLike | pd.DataFrame | None" = None,
               target: str | None = None, signature_keys: list[str] | None = None, tolerance: float = TOLERANCE,
               allow_unsafe: bool = False, allow_unsafe_ops: bool = False) -> ExportResult:
    """Export the model of ``run_dir`` in ``format`` to ``out`` and check it against the run's model.

    Parameters
    ----------
    run_dir : path
        A finished run directory.
    format : {"savedmodel", "litert", "onnx"}
        ``savedmodel`` writes the SavedModel afresh from ``model.keras`` (or
        copies the run's when it has none) and compares it with the run's.
    out : path, optional
        Where to write; by default inside the run (see the module's docstring).
    data : str or DataFrame, optional
        Classical runs: the table whose rows check the ONNX copy (a source for
        `keras_bigml.data.tables.load_table`); by default the run's own
        ``data`` argument in ``run.json``. Without either the copy is unchecked.
    target : str, optional
        The target column of ``data`` (bundled tables know theirs).
    signature_keys : list of str, optional
        Generative runs: the signatures to export (default: all).
    tolerance : float
        Largest accepted difference, relative to ``max(1, largest |output|)``.
    allow_unsafe : bool
        Load a ``model.keras`` that holds Python code (``savedmodel`` only).
    allow_unsafe_ops : bool
        Read a SavedModel whose graph touches files or runs Python (see
        `keras_bigml.export.load_saved_model`).

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> import tempfile
    >>> from keras_bigml.workflows.classical import train_classical
    >>> run = tempfile.mkdtemp()
    >>> _ = train_classical("decision_tree", "iris", run)
    >>> export_run(run, "litert")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ConfigError: ... is a classical run (model.skops): it exports to ONNX only ...
    """
    run_dir = os.fspath(run_dir)
    if format not in FORMATS:
        raise ConfigError(f"Unknown export format {format!r}: use one of {', '.join(FORMATS)}.")
    if not os.path.isdir(run_dir):
        raise ModelFileError(f"No run directory at {run_dir}.")
    info = RunDirectory(run_dir).info
    if info is not None and info["status"] != "finished":
        raise RunError(f"The run in {run_dir} is {info['status']}: export it once it has finished.")
    arguments = (info or {}).get("arguments") or {}
    if os.path.isfile(os.path.join(run_dir, CLASSICAL_MODEL)):
        if format != "onnx":
            raise ConfigError(f"{run_dir} is a classical run ({CLASSICAL_MODEL}): it exports to ONNX only "
                              f"(--format onnx), not {format}.")
        if signature_keys is not None:
            raise ConfigError("signature_keys are for generative runs; a classical model exports as one "
                              "graph.")
        out = os.fspath(out) if out is not None else os.path.join(run_dir, "model.onnx")
        if data is None:  # the run's own table, as run.json recorded it
            data, target = arguments.get("data"), arguments.get("target")
        result = _export_classical(run_dir, out, data, target, tolerance)
        return ExportResult(**vars(result), run_kind="classical")
    saved_model = os.path.join(run_dir, "saved_model")
    has_keras_model = os.path.isfile(os.path.join(run_dir, "model.keras"))
    if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")) and not has_keras_model:
        raise ModelFileError(f"{run_dir} holds no model to export (no {CLASSICAL_MODEL}, saved_model/ or "
                             "model.keras): train one first.")
    out = os.fspath(out) if out is not None else os.path.join(run_dir, DEFAULT_OUT[format])
    if format == "savedmodel":
        result = _export_saved_model(run_dir, saved_model, out, has_keras_model, signature_keys, tolerance,
                                     allow_unsafe, allow_unsafe_ops)
    elif format == "litert":
        result = to_litert(saved_model, out, signature_keys, tolerance=tolerance,
                           allow_unsafe_ops=allow_unsafe_ops)
    else:
        result = to_onnx(saved_model, out, signature_keys=signature_keys, tolerance=tolerance,
                         allow_unsafe_ops=allow_unsafe_ops)
    return ExportResult(**vars(result), run_kind="generative")


def _export_saved_model(run_dir, saved_model, out, has_keras_model, signature_keys, tolerance, allow_unsafe,
                        allow_unsafe_ops):
    """Write the SavedModel afresh from model.keras (or copy it), compared with the run's before it lands."""
    has_saved_model = os.path.isfile(os.path.join(saved_model, "saved_model.pb"))
    same_place = os.path.abspath(out) == os.path.abspath(saved_model)
    if not has_keras_model and same_place:
        raise ConfigError(f"{run_dir} has no model.keras to write its SavedModel afresh from: pass another "
                          "out to copy it.")
    with atomic_path(out) as tmp:
        if has_keras_model:
            from keras_bigml.export import export_saved_model
            from keras_bigml.runs import load_run_model

            export_saved_model(load_run_model(run_dir, allow_unsafe=allow_unsafe), tmp)
            how = "written from model.keras"
        else:
            shutil.copytree(saved_model, tmp)
            how = "copied from the run"
        if has_saved_model:
            differences = compare_saved_models(tmp, saved_model, signature_keys, tolerance=tolerance,
                                               allow_unsafe_ops=allow_unsafe_ops)
            note = f"{how}; compared with the run's SavedModel on random inputs"
        else:
            differences, note = {}, f"{how}; not compared: the run had no SavedModel"
    files = dict.fromkeys(differences, out)
    return ConversionResult("savedmodel", out, files, differences, tolerance, note, "tensorflow")


def _export_classical(run_dir, out, data, target, tolerance):
    from keras_bigml.classical.persist import load_model

    model = load_model(os.path.join(run_dir, CLASSICAL_MODEL))
    rows = None
    if data is not None:
        from keras_bigml.data.tables import load_table

        rows, _ = load_table(data, target)
    return to_onnx(model, out, rows=rows, tolerance=tolerance)
