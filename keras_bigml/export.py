"""SavedModel export with named serving signatures, written atomically, and a loader that checks first.

Each model describes its signatures in ``serving_functions()``: a dict from
signature name to ``(function, input_signature)``. Signatures take and return
float32 NHWC images in [0, 1], float32 latent vectors and int32 labels, so a
client with TensorFlow alone can call them. The first signature also serves as
``serving_default``. A model trained under a mixed precision policy is exported
as a float32 copy with the same weights: its graph then has no bfloat16 or
float16 ops, which LiteRT and ONNX do not convert and which CPUs without
native bfloat16 run several times slower.

A SavedModel is a program: TensorFlow runs its initializers while loading it and
its signatures when they are called. `load_saved_model` therefore reads the
graph first, without running it, and refuses one that uses an op from
`UNSAFE_OPS` (as ``saved_model_cli scan`` does) unless the caller opts in.

>>> import tempfile, os
>>> from keras_bigml.generative import VAE
>>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
>>> path = export_saved_model(vae, os.path.join(tempfile.mkdtemp(), "vae"))
>>> scan_saved_model(path)
[]
>>> sorted(load_saved_model(path).signatures)
['decode', 'encode', 'reconstruct', 'serving_default']
"""

import os
from collections import defaultdict
from typing import TYPE_CHECKING

import keras
import tensorflow as tf
from google.protobuf.message import DecodeError, Message
from tensorflow.core.protobuf import saved_model_pb2

from keras_bigml.errors import ConfigError, ModelFileError, UntrustedFileError
from keras_bigml.files import atomic_path

if TYPE_CHECKING:
    from keras_bigml.generative.base import GenerativeModel

# TensorFlow's own `saved_model_cli scan` denylist is {WriteFile, ReadFile, PrintV2}
# (`_OP_DENYLIST` in tensorflow/python/tools/saved_model_cli.py). These are that set and the other
# ops registered in TensorFlow 2.21 with the same kind of effect: none is needed to serve a generator.
UNSAFE_OPS = frozenset({
    # Files: read, write, list, memory-map, or set the file systems' configuration.
    "ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset",
    "ImmutableConst", "FileSystemSetConfiguration", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "GenerateVocabRemapping", "LoadAndRemapMatrix", "RecordInput",
    # Protocol buffer codecs whose descriptor_source may name a file on disk.
    "DecodeProtoV2", "EncodeProto",
    # Printing: PrintV2's output_stream may be "file://..." and writes that file.
    "Print", "PrintV2",
    # Python functions (whatever the process registered under the token the graph names).
    "PyFunc", "PyFuncStateless", "EagerPyFunc",
    # Queue-based file readers.
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
    "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader",
    # Datasets that read, write or cache files or databases, or run a graph hidden in a string.
    "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
    "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "LoadDataset", "SaveDataset",
    "SaveDatasetV2", "DistributedSave", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
    "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader", "SnapshotNestedDatasetReader",
    "SnapshotChunkDataset", "ListSnapshotChunksDataset", "CacheDataset", "CacheDatasetV2", "DatasetFromGraph",
    # Summary and event files.
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
    "WriteRawProtoSummary", "ImportEvent", "StatsAggregatorSetSummaryWriter",
    # Debugger and calibration dumps (file:// or grpc:// targets).
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DumpTensor", "CalibrationStatisticsSaver",
    # Remote procedure calls: code that runs in another process, or a server for other processes.
    "RpcClient", "RpcCall", "RpcServer", "RpcServerRegister", "RpcServerStart",
    # Checkpoint files: normal only in the saver's own functions (see _SAVER_OPS).
    "SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints", "RestoreV2", "Restore", "RestoreSlice",
    "DTensorRestoreV2",
})

# Every SavedModel has a save and a restore function (a subgraph in TensorFlow 1's), named by
# its saver_def: TF1 loaders and TensorFlow Serving run the restore one with the export's own
# variables path, and the save one runs only when someone saves the graph again. Their checkpoint
# ops are accepted there, as long as nothing else in the SavedModel can make those parts run.
# Anywhere else (an initializer, a signature) they write, rename, delete or read any checkpoint.
_SAVER_OPS = {
    "save_tensor_name": frozenset({"SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints"}),
    "restore_op_name": frozenset({"RestoreV2", "Restore", "RestoreSlice"}),
}


def export_saved_model(model: keras.Model, path: str | os.PathLike) -> str | os.PathLike:
    """Write ``model``'s serving signatures as a TF SavedModel at ``path``; return ``path``.

    An existing export at ``path`` is replaced only once the new one is complete.
    """
    from keras_bigml.generative.base import GenerativeModel

    if not isinstance(model, GenerativeModel):
        raise ConfigError(f"A {type(model).__name__} is not a keras_bigml generative model (GAN, VAE, CycleGAN); "
                          "export_saved_model exports their serving signatures.")
    model = float32_copy(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, input_signature) in model.serving_functions().items():
        archive.add_endpoint(name=name, fn=function, input_signature=input_signature)
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        # Serving needs no gradients: without them the export holds no training-only functions
        # (swish's gradient is an XLA-compiled function that serving never calls).
        archive.write_out(tmp, options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
                          verbose=False)
    return path


def float32_copy(model: "GenerativeModel") -> "GenerativeModel":
    """``model`` itself when every layer computes in float32, else the same model rebuilt from its
    config under the float32 policy with its weights (mixed policies keep float32 weights).

    >>> from keras_bigml.generative import VAE
    >>> keras.mixed_precision.set_global_policy("mixed_bfloat16")
    >>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
    >>> keras.mixed_precision.set_global_policy("float32")
    >>> copy = float32_copy(vae)
    >>> vae.encoder.layers[1].compute_dtype, copy.encoder.layers[1].compute_dtype
    ('bfloat16', 'float32')
    >>> float32_copy(copy) is copy
    True
    """
    # _flatten_layers: every nested layer (Keras has no public recursive list).
    if all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers()):
        return model
    config = _float32_policies(model.get_config())
    config.pop("dtype", None)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = type(model).from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.copy_state_from(model)
    return copy


def _float32_policies(config):
    """``config`` with every serialized mixed dtype policy (of networks passed in, e.g. ``generator=``)
    replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name")).startswith("mixed"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(item) for item in config]
    return config


def scan_saved_model(path: str | os.PathLike) -> list[str]:
    """Name the `UNSAFE_OPS` that the SavedModel at ``path`` uses, without loading or running it.

    Like TensorFlow's ``saved_model_cli scan``, this reads ``saved_model.pb`` and looks at the
    nodes of every MetaGraph; unlike it, also at every function of the function library (where
    TensorFlow 2 keeps its initializers and signatures, whether a graph node calls them or not).

    Returns
    -------
    list of str
        Sorted, one entry per op and place, e.g. ``"WriteFile in function __inference__initializer_11"``
        or ``"PrintV2 in graph node print"``; empty when the SavedModel uses none.

    Raises
    ------
    ModelFileError
        When ``path`` holds no ``saved_model.pb`` or it does not parse.

    >>> import tempfile
    >>> class Shout(tf.Module):
    ...     @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
    ...     def shout(self, x):
    ...         tf.print("x =", x)
    ...         return x
    >>> path = tempfile.mkdtemp()
    >>> tf.saved_model.save(Shout(), path)
    >>> scan_saved_model(path)
    ['PrintV2 in function __inference_shout_...']
    """
    path = os.fspath(path)
    saved_model = _read_saved_model(path)
    found = set()
    for meta_graph in saved_model.meta_graphs:
        accepted = _saver_scopes(meta_graph)
        for node in meta_graph.graph_def.node:
            if node.op in UNSAFE_OPS and node.op not in accepted.get(("node", node.name), ()):
                found.add(f"{node.op} in graph node {node.name}")
        for function in meta_graph.graph_def.library.function:
            name = function.signature.name
            for node in function.node_def:
                if node.op in UNSAFE_OPS and node.op not in accepted.get(("function", name), ()):
                    found.add(f"{node.op} in function {name}")
    return sorted(found)


def load_saved_model(path: str | os.PathLike, allow_unsafe_ops: bool = False) -> object:
    """Load a SavedModel with TensorFlow once `scan_saved_model` finds no unsafe op in it.

    Parameters
    ----------
    path : str or os.PathLike
        The directory `export_saved_model` wrote (it holds ``saved_model.pb``).
    allow_unsafe_ops : bool, default False
        Load even a SavedModel whose graph touches files, runs Python, prints or calls other
        processes (TensorFlow runs its initializers while loading it): only for a trusted source.

    Raises
    ------
    UntrustedFileError
        When the SavedModel uses an op of `UNSAFE_OPS` and ``allow_unsafe_ops`` is False.
    ModelFileError
        When ``path`` holds no SavedModel or a damaged one.

    >>> import tempfile
    >>> load_saved_model(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ModelFileError: ... holds no SavedModel (no saved_model.pb): export one with ...
    """
    path = os.fspath(path)
    unsafe = scan_saved_model(path)
    if unsafe and not allow_unsafe_ops:
        raise UntrustedFileError(
            f"{path} is a SavedModel whose graph touches files, runs Python, prints or calls other "
            f"processes ({', '.join(unsafe)}), which TensorFlow does while loading or serving it; load it "
            "only if you trust its source, with allow_unsafe_ops=True (CLI --allow-unsafe-ops).")
    try:
        return tf.saved_model.load(path)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"{path} is a damaged SavedModel ({first_line}).") from None


def _read_saved_model(path):
    """Parse ``path``/saved_model.pb (protocol buffer parsing runs nothing from the file)."""
    file = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(file):
        missing = "no saved_model.pb" if os.path.isdir(path) else "no such directory"
        raise ModelFileError(f"{path} holds no SavedModel ({missing}): export one with "
                             "keras_bigml.export.export_saved_model.")
    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(file, "rb") as stream:
            saved_model.ParseFromString(stream.read())
    except (OSError, DecodeError) as error:
        raise ModelFileError(f"{path} is a damaged SavedModel (saved_model.pb: {error}).") from None
    if not saved_model.meta_graphs:
        raise ModelFileError(f"{path} is a damaged SavedModel (saved_model.pb holds no MetaGraph).")
    return saved_model


def _saver_scopes(meta_graph):
    """Map each graph node and function private to the saver's save or restore part to its ops.

    A part is what its saver_def root reaches through node inputs and function calls, less
    whatever something outside it also reaches (another node or function, a signature, a
    collection, the object graph), since that could make it run at load time.
    """
    graph = meta_graph.graph_def
    functions = {function.signature.name for function in graph.library.function}
    runs = defaultdict(set)
    for node in graph.node:
        runs["node", node.name] = {("node", _node_name(name)) for name in node.input}
        runs["node", node.name] |= {("function", name) for name in _called_functions(node, functions)}
    for function in graph.library.function:
        runs["function", function.signature.name] = {
            ("function", name) for node in function.node_def for name in _called_functions(node, functions)}
    run_by = defaultdict(set)
    for unit, targets in runs.items():
        for target in targets:
            run_by[target].add(unit)
    named_outside = set(_strings(meta_graph.object_graph_def)) | {
        gradient.gradient_func for gradient in graph.library.gradient}
    for message in [*meta_graph.signature_def.values(), *meta_graph.collection_def.values()]:
        named_outside.update(_strings(message))
    outside = {("node", _node_name(name)) for name in named_outside} | {
        ("function", name) for name in named_outside}

    accepted = defaultdict(frozenset)
    for field, ops in _SAVER_OPS.items():
        root = ("node", _node_name(getattr(meta_graph.saver_def, field)))
        if root not in runs:
            continue
        part, todo = {root}, [root]
        while todo:
            for target in runs[todo.pop()] - part:
                part.add(target)
                todo.append(target)
        private = None
        while private != part:
            private = part
            part = {unit for unit in private if unit not in outside and run_by[unit] <= private}
        for unit in part:
            accepted[unit] |= ops
    return accepted


def _node_name(tensor_name):
    """``"^init"``, ``"call:0"`` and ``"call"`` all name the node ``"call"``."""
    return tensor_name.lstrip("^").split(":")[0]


def _called_functions(node, functions):
    """Names of the library functions that ``node`` calls: as its op, or in any function attribute."""
    if node.op in functions:
        yield node.op
    pending = list(node.attr.values())
    while pending:
        value = pending.pop()
        for call in [value.func] if value.HasField("func") else value.list.func:
            yield call.name
            pending.extend(call.attr.values())


def _strings(message):
    """Every string field anywhere inside the protocol buffer ``message`` (map keys included)."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = [part for entry in value.items() for part in entry]
        elif isinstance(value, (str, Message)):
            value = [value]
        elif field.type not in (field.TYPE_STRING, field.TYPE_MESSAGE):
            continue
        for item in value:
            if isinstance(item, str):
                yield item
            elif isinstance(item, Message):
                yield from _strings(item)
