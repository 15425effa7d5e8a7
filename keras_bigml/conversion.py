"""Convert exported models to LiteRT and ONNX, and check each copy against its original.

- `to_litert`: a SavedModel's signatures, all of them, into one ``.tflite`` file
  with one signature runner per signature (``interpreter.get_signature_runner("decode")``
  as ``saved_model.signatures["decode"]``). One file, because that is LiteRT's own
  form for a model with several entry points: the weights travel once and a
  client opens one model, as with the SavedModel.
- `to_onnx`: a SavedModel through tf2onnx, one ``SIGNATURE.onnx`` per signature in
  a folder (an ONNX model is one graph); or a fitted scikit-learn pipeline through
  skl2onnx (XGBoost models in it through onnxmltools) into one ``.onnx`` file.

Every conversion is run before it is written: on a few random inputs per
signature (images uniform in [0, 1], latent vectors standard normal, labels 0
and 1) or on rows of a table for pipelines, the copy's outputs are compared with
the original's, and the largest absolute difference of each output is returned.
A copy that differs by more than ``tolerance`` times ``max(1, largest |output|)``
is not written (`keras_bigml.errors.ModelFileError`). The default tolerance,
1e-5, is what float32 arithmetic in another order keeps to: measured differences
are 1e-7 to 1e-6 for the generative models and for classifiers' probabilities.

ONNX names values uniquely, so an output named like an input (``reconstruct``'s
and CycleGAN's ``images``) is called ``images_out`` in the ONNX file.

A combination that cannot convert (a missing converter package, an estimator
skl2onnx has no converter for, an op LiteRT lacks) raises
`keras_bigml.errors.ConfigError` with one sentence.
"""

import contextlib
import copy
import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from keras_bigml.errors import ConfigError, ModelFileError
from keras_bigml.files import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.base import BaseEstimator

TOLERANCE = 1e-5
ONNX_OPSET = 17
ONNX_ML_OPSET = 3  # the ai.onnx.ml tree ensembles skl2onnx writes and onnxruntime runs
CHECK_BATCHES = 3
CHECK_BATCH_SIZE = 4
CHECK_ROWS = 256
OUTPUT_SUFFIX = "_out"
MISSING_CATEGORY = ""  # ONNX string tensors hold no NaN: a client marks a missing category with ""


@dataclass
class ConversionResult:
    """What a conversion wrote and how closely the copy matches the original.

    ``differences`` maps each signature (``"model"`` for a pipeline) to the
    largest absolute difference of each of its outputs; for a classifier's
    ``label`` output it is the share of rows whose label differs (rows on a
    tie may flip in float32 while the probabilities agree).
    """

    format: str
    path: str
    files: dict = field(default_factory=dict)
    differences: dict = field(default_factory=dict)
    tolerance: float = TOLERANCE
    checked_on: str = ""
    runtime: str | None = None

    @property
    def max_difference(self) -> float | None:
        """The largest difference over all outputs but labels (None when nothing was checked)."""
        values = [value for outputs in self.differences.values()
                  for name, value in outputs.items() if name != "label"]
        return max(values) if values else None


def to_litert(saved_model_dir: str | os.PathLike, out_path: str | os.PathLike,
              signature_keys: list[str] | None = None, *, tolerance: float = TOLERANCE,
              seed: int = 0, allow_unsafe_ops: bool = False) -> ConversionResult:
    """Convert a SavedModel's signatures (all by default) into one LiteRT ``.tflite`` file.

    Parameters
    ----------
    saved_model_dir : path
        A SavedModel written by `keras_bigml.export.export_saved_model`.
    out_path : path
        The ``.tflite`` file to write (atomically, and only once it is checked).
    signature_keys : list of str, optional
        The signatures to convert; by default every one but ``serving_default``
        (a copy of the first).
    tolerance : float
        Largest accepted difference, relative to ``max(1, largest |output|)``.
    seed : int
        Seed of the random check inputs.
    allow_unsafe_ops : bool
        Convert a SavedModel whose graph touches files or runs Python (see
        `keras_bigml.export.load_saved_model`): only for a trusted source.

    Returns
    -------
    ConversionResult

    Examples
    --------
    >>> import os, tempfile
    >>> from keras_bigml.export import export_saved_model
    >>> from keras_bigml.generative import VAE
    >>> folder = tempfile.mkdtemp()
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> saved = export_saved_model(vae, os.path.join(folder, "vae"))
    >>> result = to_litert(saved, os.path.join(folder, "vae.tflite"))
    >>> sorted(result.differences), result.max_difference < 1e-5
    (['decode', 'encode', 'reconstruct'], True)
    """
    import tensorflow as tf

    loaded, keys = _signatures(saved_model_dir, signature_keys, allow_unsafe_ops)
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model_dir), signature_keys=keys)
    try:
        content = converter.convert()
    except Exception as error:
        raise ConfigError(f"{saved_model_dir} cannot be converted to LiteRT "
                          f"({_first_line(error)}).") from None
    interpreter, runtime = _litert_interpreter(content)
    runners = {name: interpreter.get_signature_runner(name) for name in keys}
    differences = {name: _compare_signature(loaded.signatures[name], runners[name], tolerance, seed,
                                            f"The LiteRT copy of {saved_model_dir}'s {name!r}")
                   for name in keys}
    out_path = os.fspath(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as file:
        file.write(content)
    return ConversionResult("litert", out_path, dict.fromkeys(keys, out_path), differences, tolerance,
                            _random_inputs_note(), runtime)


def to_onnx(source: "str | os.PathLike | BaseEstimator", out_path: str | os.PathLike, *,
            signature_keys: list[str] | None = None, rows: "pd.DataFrame | np.ndarray | None" = None,
            opset: int = ONNX_OPSET, tolerance: float = TOLERANCE,
            seed: int = 0, allow_unsafe_ops: bool = False) -> ConversionResult:
    """Convert a SavedModel (through tf2onnx) or a fitted scikit-learn model (skl2onnx) to ONNX.

    Parameters
    ----------
    source : path or estimator
        A SavedModel directory, or a fitted scikit-learn estimator or pipeline
        (such as `keras_bigml.classical.make_model` returns).
    out_path : path
        For a SavedModel a folder, written with one ``SIGNATURE.onnx`` per
        signature; for an estimator the ``.onnx`` file.
    signature_keys : list of str, optional
        SavedModel signatures to convert (default: all but ``serving_default``).
    rows : DataFrame or array, optional
        Rows of the estimator's input table for the check (at most 256 are used).
        Without them an estimator's copy is written unchecked.
    opset : int
        The ONNX operator set.
    tolerance : float
        Largest accepted difference, relative to ``max(1, largest |output|)``.
    seed : int
        Seed of the random check inputs (SavedModels) or of the row sample.
    allow_unsafe_ops : bool
        As for `to_litert`.

    Returns
    -------
    ConversionResult
        ``runtime`` is None (and nothing was compared) when onnxruntime is not installed.

    Examples
    --------
    >>> import os, tempfile, pytest
    >>> _ = pytest.importorskip("skl2onnx")
    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("iris")
    >>> model = make_model("logistic_regression").fit(X, y)
    >>> result = to_onnx(model, os.path.join(tempfile.mkdtemp(), "iris.onnx"), rows=X)
    >>> result.differences["model"]["probabilities"] < 1e-5
    True
    """
    if isinstance(source, (str, os.PathLike)):
        return _saved_model_to_onnx(source, out_path, signature_keys, opset, tolerance, seed,
                                    allow_unsafe_ops)
    if signature_keys is not None:
        raise ConfigError("signature_keys are for SavedModels; a scikit-learn model converts as one graph.")
    return _estimator_to_onnx(source, out_path, rows, opset, tolerance, seed)


def compare_saved_models(candidate_dir: str | os.PathLike, reference_dir: str | os.PathLike,
                         signature_keys: list[str] | None = None, *, tolerance: float = TOLERANCE,
                         seed: int = 0, allow_unsafe_ops: bool = False) -> dict:
    """Largest difference per signature and output of one SavedModel from another, on random inputs.

    Raises `keras_bigml.errors.ModelFileError` when a signature of ``reference_dir``
    is missing from ``candidate_dir`` or differs by more than ``tolerance``.

    >>> import os, tempfile
    >>> from keras_bigml.export import export_saved_model
    >>> from keras_bigml.generative import GAN
    >>> gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,))
    >>> path = export_saved_model(gan, os.path.join(tempfile.mkdtemp(), "gan"))
    >>> compare_saved_models(path, path)
    {'generate': {'images': 0.0}}
    """
    reference, keys = _signatures(reference_dir, signature_keys, allow_unsafe_ops)
    candidate, _ = _signatures(candidate_dir, None, allow_unsafe_ops)
    differences = {}
    for name in keys:
        if name not in candidate.signatures:
            raise ModelFileError(f"{candidate_dir} lacks the signature {name!r} that {reference_dir} has.")
        differences[name] = _compare_signature(reference.signatures[name],
                                               _tensorflow_runner(candidate.signatures[name]),
                                               tolerance, seed, f"{candidate_dir}'s {name!r}")
    return differences


def _tensorflow_runner(signature):
    def run(**inputs):
        return {name: value.numpy() for name, value in signature(**inputs).items()}

    return run


def random_inputs(input_specs: dict, batch_size: int, rng: np.random.Generator) -> dict:
    """Random inputs for a signature's ``{name: tf.TensorSpec}``, as numpy arrays.

    Float inputs of rank 3 and more are images, uniform in [0, 1]; other float
    inputs are latent vectors, standard normal; integer inputs are labels, 0 or 1
    (every conditional model has at least two classes).

    >>> import tensorflow as tf
    >>> specs = {"z": tf.TensorSpec((None, 3), tf.float32), "labels": tf.TensorSpec((None,), tf.int32)}
    >>> {name: value.shape for name, value in random_inputs(specs, 2, np.random.default_rng(0)).items()}
    {'z': (2, 3), 'labels': (2,)}
    """
    inputs = {}
    for name, spec in input_specs.items():
        shape = [batch_size if size is None else size for size in spec.shape]
        if spec.dtype.is_integer:
            inputs[name] = rng.integers(0, 2, shape).astype(spec.dtype.as_numpy_dtype)
        elif len(shape) >= 3:
            inputs[name] = rng.random(shape, dtype=np.float32)
        else:
            inputs[name] = rng.standard_normal(shape, dtype=np.float32)
    return inputs


def _signatures(saved_model_dir, signature_keys, allow_unsafe_ops):
    """The loaded SavedModel (scanned for unsafe ops first: the converters load it too) and its signatures."""
    from keras_bigml.export import load_saved_model

    loaded = load_saved_model(saved_model_dir, allow_unsafe_ops=allow_unsafe_ops)
    available = [name for name in loaded.signatures if name != "serving_default"] or list(loaded.signatures)
    if signature_keys is None:
        return loaded, available
    unknown = [name for name in signature_keys if name not in loaded.signatures]
    if unknown or not signature_keys:
        asked = ", ".join(map(repr, unknown)) or "(none given)"
        raise ConfigError(f"{saved_model_dir} has no signature {asked}; its signatures: "
                          f"{', '.join(available)}.")
    return loaded, list(signature_keys)


def _compare_signature(reference, run, tolerance, seed, what):
    """Largest difference per output of ``run(**inputs)`` from the SavedModel signature ``reference``."""
    rng = np.random.default_rng(seed)
    specs = reference.structured_input_signature[1]
    largest = {}
    for _ in range(CHECK_BATCHES):
        inputs = random_inputs(specs, CHECK_BATCH_SIZE, rng)
        expected = {name: value.numpy() for name, value in reference(**inputs).items()}
        actual = run(**inputs)
        for name, value in expected.items():
            largest[name] = max(largest.get(name, 0.0), _difference(value, actual[name], what, name))
    _judge(largest, {name: np.abs(value).max() for name, value in expected.items()}, tolerance, what)
    return largest


def _difference(expected, actual, what, name):
    actual = np.asarray(actual)
    if actual.size != expected.size:
        raise ModelFileError(f"{what} returns {name} of shape {actual.shape}, the original {expected.shape}.")
    return float(np.abs(actual.reshape(expected.shape).astype(np.float64) - expected).max())


def _judge(differences, scales, tolerance, what):
    for name, difference in differences.items():
        if name == "label":
            continue
        allowed = tolerance * max(1.0, float(scales[name]))
        if not difference <= allowed:  # also refuses NaN
            raise ModelFileError(f"{what} differs from the original by {difference:.3g} in {name!r} "
                                 f"(allowed {allowed:.3g}): not written.")


def _random_inputs_note():
    return (f"{CHECK_BATCHES} random batches of {CHECK_BATCH_SIZE} per signature "
            "(images uniform in [0, 1], latent vectors standard normal, labels 0 and 1)")


def _litert_interpreter(content):
    """An interpreter for ``content``: LiteRT's own package when installed, else TensorFlow's copy."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_content=content), f"ai_edge_litert {_version('ai-edge-litert')}"
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():
            # TensorFlow's interpreter warns that it moved to ai_edge_litert; it still runs the same kernels.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated",
                                    category=UserWarning)
            return tf.lite.Interpreter(model_content=content), f"tf.lite.Interpreter {tf.__version__}"


def _saved_model_to_onnx(saved_model_dir, out_dir, signature_keys, opset, tolerance, seed, allow_unsafe_ops):
    _require("tf2onnx", "ONNX export of SavedModels")
    import tf2onnx.convert
    import tf2onnx.tf_loader

    loaded, keys = _signatures(saved_model_dir, signature_keys, allow_unsafe_ops)
    protos = {}
    for name in keys:
        # tf2onnx's own command line does these two steps: freeze the signature, then convert the graph.
        try:
            graph_def, inputs, outputs, renames = tf2onnx.tf_loader.from_saved_model(
                os.fspath(saved_model_dir), None, None, tag="serve", signatures=[name],
                return_tensors_to_rename=True)
            input_names = {renames[tensor] for tensor in inputs}
            renames = {tensor: value + OUTPUT_SUFFIX if tensor in outputs and value in input_names else value
                       for tensor, value in renames.items()}
            with _quiet_tf2onnx():
                protos[name], _ = tf2onnx.convert.from_graph_def(graph_def, input_names=inputs,
                                                                 output_names=outputs, opset=opset,
                                                                 tensors_to_rename=renames)
        except Exception as error:
            raise ConfigError(f"Signature {name!r} of {saved_model_dir} cannot be converted to ONNX "
                              f"({_first_line(error)}).") from None
    session_type, runtime = _onnxruntime()
    differences = {}
    if session_type is not None:
        for name, proto in protos.items():
            session = session_type(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            differences[name] = _compare_signature(
                loaded.signatures[name], _onnx_runner(session), tolerance, seed,
                f"The ONNX copy of {saved_model_dir}'s {name!r}")
    out_dir = os.fspath(out_dir)
    with atomic_path(out_dir) as tmp:
        os.makedirs(tmp)
        for name, proto in protos.items():
            with open(os.path.join(tmp, f"{name}.onnx"), "wb") as file:
                file.write(proto.SerializeToString())
    files = {name: os.path.join(out_dir, f"{name}.onnx") for name in keys}
    note = _random_inputs_note() if session_type is not None else "not checked: onnxruntime is not installed"
    return ConversionResult("onnx", out_dir, files, differences, tolerance, note, runtime)


def _onnx_runner(session):
    names = [output.name for output in session.get_outputs()]

    def run(**inputs):
        values = session.run(None, inputs)
        return {name.removesuffix(OUTPUT_SUFFIX): value for name, value in zip(names, values, strict=True)}

    return run


@contextlib.contextmanager
def _quiet_tf2onnx():
    """tf2onnx logs each graph rewrite at INFO level; keep its warnings and errors only."""
    import logging

    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _estimator_to_onnx(model, out_path, rows, opset, tolerance, seed):
    _require("skl2onnx", "ONNX export of scikit-learn models")
    from skl2onnx import convert_sklearn
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except Exception:
        raise ConfigError(f"{_capitalized(_describe(model))} is not fitted: fit it before converting it to "
                          "ONNX.") from None
    plain = _plain_pipeline(model)
    initial_types = _initial_types(model)
    final = plain.steps[-1][1] if hasattr(plain, "steps") else plain
    _register_xgboost(plain)
    options = {id(final): {"zipmap": False}} if is_classifier(final) else None
    custom_converters, custom_shapes = _custom_converters()
    try:
        with warnings.catch_warnings():
            # SVC's probA_/probB_ are deprecated in scikit-learn 1.9; skl2onnx still reads them.
            warnings.simplefilter("ignore", FutureWarning)
            proto = convert_sklearn(plain, initial_types=initial_types, options=options,
                                    target_opset={"": opset, "ai.onnx.ml": ONNX_ML_OPSET},
                                    custom_conversion_functions=custom_converters,
                                    custom_shape_calculators=custom_shapes)
    except Exception as error:
        raise ConfigError(f"{_capitalized(_describe(model))} cannot be converted to ONNX "
                          f"({_first_line(error)}).") from None
    session_type, runtime = _onnxruntime()
    differences, note = {}, "not checked: onnxruntime is not installed"
    if session_type is not None and rows is None:
        note = "not checked: no rows of the input table were given"
    elif session_type is not None:
        sample = _sample_rows(rows, seed)
        session = session_type(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        differences["model"] = _compare_estimator(model, session, sample, tolerance, initial_types)
        note = f"{len(sample)} rows of the input table"
    out_path = os.fspath(out_path)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as file:
        file.write(proto.SerializeToString())
    return ConversionResult("onnx", out_path, {"model": out_path}, differences, tolerance, note, runtime)


def _plain_pipeline(model):
    """The model with keras_bigml's `TabularPreprocessor` replaced by the fitted scikit-learn steps inside it.

    skl2onnx converts those steps (imputation, scaling, one-hot encoding) and a
    ColumnTransformer's per-column inputs itself; only `NumericImputer` needs a
    converter of ours.
    """
    from sklearn.pipeline import Pipeline

    from keras_bigml.classical.estimators import TabularPreprocessor

    if not isinstance(model, Pipeline):
        return model
    steps = [(name, step.transformer_ if isinstance(step, TabularPreprocessor) else step)
             for name, step in model.steps]
    return Pipeline(steps)


def _initial_types(model):
    """ONNX inputs: one float matrix ``X``, or one column each when a preprocessor saw categories."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    first = model.steps[0][1] if hasattr(model, "steps") else model
    categorical = getattr(first, "categorical_columns_", None)
    if categorical:
        types = [(str(column), FloatTensorType([None, 1])) for column in first.numeric_columns_]
        types += [(str(column), StringTensorType([None, 1])) for column in categorical]
        order = [str(column) for column in first.feature_names_in_]
        return sorted(types, key=lambda item: order.index(item[0]))
    return [("X", FloatTensorType([None, model.n_features_in_]))]


def _onnx_feeds(rows, initial_types):
    """Rows as the ONNX inputs: float32 matrix ``X``, or one (n, 1) array per column."""
    import pandas as pd

    if len(initial_types) == 1 and initial_types[0][0] == "X":
        values = rows.to_numpy(dtype=np.float32) if isinstance(rows, pd.DataFrame) else rows
        return {"X": np.asarray(values, dtype=np.float32)}
    feeds = {}
    for name, onnx_type in initial_types:
        column = rows[name].to_numpy()
        if type(onnx_type).__name__ == "StringTensorType":
            feeds[name] = np.where(pd.isna(column), MISSING_CATEGORY, column.astype(str)).reshape(-1, 1)
        else:
            feeds[name] = column.astype(np.float32).reshape(-1, 1)
    return feeds


def _compare_estimator(model, session, rows, tolerance, initial_types):
    from sklearn.base import is_classifier

    outputs = dict(zip([output.name for output in session.get_outputs()],
                       session.run(None, _onnx_feeds(rows, initial_types)), strict=True))
    what = f"The ONNX copy of {_describe(model)}"
    if not is_classifier(model):
        expected = np.asarray(model.predict(rows), dtype=np.float64)
        differences = {"variable": _difference(expected, outputs["variable"], what, "variable")}
        _judge(differences, {"variable": np.abs(expected).max()}, tolerance, what)
        return differences
    label = np.asarray(outputs["label"]).ravel()
    differences = {"label": float(np.mean(label != np.asarray(model.predict(rows)).ravel()))}
    if hasattr(model, "predict_proba"):
        expected = np.asarray(model.predict_proba(rows), dtype=np.float64)
    else:  # skl2onnx's scores: the decision function per class; for two classes (decision, -decision)
        decision = np.asarray(model.decision_function(rows), dtype=np.float64)
        expected = np.column_stack([decision, -decision]) if decision.ndim == 1 else decision
    differences["probabilities"] = _difference(expected, outputs["probabilities"], what, "probabilities")
    _judge(differences, {"probabilities": np.abs(expected).max()}, tolerance, what)
    return differences


def _sample_rows(rows, seed):
    import pandas as pd

    count = len(rows)
    if count <= CHECK_ROWS:
        return rows
    chosen = np.sort(np.random.default_rng(seed).choice(count, CHECK_ROWS, replace=False))
    return rows.iloc[chosen] if isinstance(rows, pd.DataFrame) else np.asarray(rows)[chosen]


def _custom_converters():
    """Converters for keras_bigml's `NumericImputer`, string imputers and HistGradientBoosting.

    A SimpleImputer of categories was fitted with NaN for missing, which string
    tensors cannot hold; its copy takes the empty string instead. skl2onnx 1.20
    marks leaf nodes of HistGradientBoosting trees with a Python ``False`` in an
    integer attribute, which protobuf 7.34 and later refuse; the wrapped converter
    is skl2onnx's own, its attributes cast to int.
    """
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer

    from keras_bigml.classical.estimators import NumericImputer

    converters = {
        NumericImputer: _convert_numeric_imputer,
        SimpleImputer: _convert_simple_imputer,
        HistGradientBoostingClassifier: _without_bool_attributes(convert_sklearn_random_forest_classifier),
        HistGradientBoostingRegressor: _without_bool_attributes(
            convert_sklearn_random_forest_regressor_converter),
    }
    return converters, {NumericImputer: _numeric_imputer_shape}


def _numeric_imputer_shape(operator):
    source = operator.inputs[0]
    operator.outputs[0].type = type(source.type)([source.get_first_dimension(),
                                                  len(operator.raw_operator.statistics_)])


def _convert_numeric_imputer(scope, operator, container):
    """Missing values (NaN) replaced by the fitted column statistics: ``Where(IsNaN(X), statistics, X)``.

    ONNX's ``Imputer`` op would do it too, but onnxruntime runs it for float32 only.
    """
    from skl2onnx.algebra.onnx_ops import OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import guess_numpy_type

    version = container.target_opset
    source = operator.inputs[0]
    statistics = operator.raw_operator.statistics_.astype(guess_numpy_type(source.type))
    filled = OnnxWhere(OnnxIsNaN(source, op_version=version), statistics, source, op_version=version,
                       output_names=operator.outputs[:1])
    filled.add_to(scope, container)


def _convert_simple_imputer(scope, operator, container):
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    if isinstance(operator.inputs[0].type, StringTensorType) and not isinstance(imputer.missing_values, str):
        operator.raw_operator = copy.copy(imputer)
        operator.raw_operator.missing_values = MISSING_CATEGORY
    convert_sklearn_imputer(scope, operator, container)


def _without_bool_attributes(converter):
    def convert(scope, operator, container):
        add_node = container.add_node

        def add_node_with_ints(*args, **attributes):
            return add_node(*args, **{key: _ints(value) for key, value in attributes.items()})

        container.add_node = add_node_with_ints
        try:
            converter(scope, operator, container)
        finally:
            del container.add_node

    return convert


def _ints(value):
    if isinstance(value, list) and any(isinstance(item, bool) for item in value):
        return [int(item) for item in value]
    return value


def _register_xgboost(model):
    """Register onnxmltools' XGBoost converters with skl2onnx when the model holds an XGBoost estimator."""
    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    if not any(type(step).__module__.startswith("xgboost") for step in steps):
        return
    _require("onnxmltools", "ONNX export of XGBoost models")
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    # Registered globally (not per call), since skl2onnx reads a classifier's allowed options from there.
    update_registered_converter(
        XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes, convert_xgboost,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    update_registered_converter(
        XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None, None
    return onnxruntime.InferenceSession, f"onnxruntime {onnxruntime.__version__}"


def _require(module, purpose):
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs the {module} package: "
                          "pip install 'keras_bigml[export]'.") from None


def _describe(model):
    if hasattr(model, "steps"):
        return f"the pipeline of {type(model.steps[-1][1]).__name__}"
    return f"the {type(model).__name__}"


def _capitalized(text):
    return text[:1].upper() + text[1:]


def _version(distribution):
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(distribution)
    return "?"


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
