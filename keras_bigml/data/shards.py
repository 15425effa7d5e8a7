"""Image shards: TFRecord files with a manifest, for images larger than memory and several workers.

A shard directory holds ``manifest.json`` and, for each split, shards named
``SPLIT-00000-of-00016.tfrecord``. Each record is a ``tf.train.Example`` with

- ``image``: the pixels, raw uint8 bytes in HWC order (small images) or PNG or
  JPEG bytes (large ones);
- ``index``: the image's position in its source split (as read);
- ``label``: the class index, for labelled sources.

Records are written in a seeded shuffled order (never class by class) into at
least 16 shards per split (and 4 per worker named in ``TF_CONFIG``), so that
readers can shuffle the shard order, interleave shards in parallel, and split
them between workers by file. The manifest records the format version, the
source, the image shape, dtype and encoding, the class names, and each shard's
name, record count, size and SHA-256 checksum; readers check sizes and
checksums before reading and name a damaged shard.

``load_images(DIR)`` reads a shard directory (see :func:`open_shards`);
:func:`write_shards` writes one from any source ``load_images`` reads.
"""

import concurrent.futures
import hashlib
import json
import math
import numbers
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf

from keras_bigml.data import images as _images
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.files import atomic_path, process_alive

FORMAT = "keras_bigml.image_shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ENCODINGS = ("raw", "png", "jpeg")
MIN_SHARDS = 16
SHARDS_PER_WORKER = 4
# Images of up to 64x64 pixels are stored raw: parsed a batch at a time they
# read several times faster than decoding PNGs, at a few kilobytes each.
RAW_MAX_PIXELS = 64 * 64
JPEG_QUALITY = 95
_PROGRESS_FILE = "writing.json"
_INTERLEAVED_SHARDS = 16


def is_shard_directory(path: str | os.PathLike) -> bool:
    """Return whether ``path`` is a directory holding a shard ``manifest.json``.

    >>> is_shard_directory(".")
    False
    """
    return os.path.isfile(os.path.join(os.fspath(path), MANIFEST))


def read_manifest(directory: str | os.PathLike) -> dict:
    """Return the checked manifest of a shard directory.

    Raises
    ------
    DataError
        When the manifest is unreadable, of another format or a newer version,
        or names files outside the directory.
    """
    path = os.path.join(os.fspath(directory), MANIFEST)
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable shard manifest ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a keras_bigml shard manifest (no \"format\": \"{FORMAT}\").")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(
            f"{path} has shard format version {version!r}; this keras_bigml reads versions up to "
            f"{FORMAT_VERSION}: upgrade keras_bigml or write the shards again."
        )
    try:
        shape, encoding, splits = manifest["image_shape"], manifest["encoding"], manifest["splits"]
        names = [shard["name"] for split in splits.values() for shard in split["shards"]]
        counts = [shard["records"] for split in splits.values() for shard in split["shards"]]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(f"{path} lacks a required field ({error!r}).") from None
    sizes_ok = isinstance(shape, list) and len(shape) == 3 and all(
        isinstance(n, int) and 0 < n <= _images.MAX_IMAGE_SIDE for n in shape)
    if encoding not in ENCODINGS or not sizes_ok or shape[2] not in (1, 3):
        raise DataError(
            f"{path} describes images of shape {shape!r} encoded as {encoding!r}; "
            f"expected [height, width, 1 or 3] and one of {', '.join(ENCODINGS)}."
        )
    for name, count in zip(names, counts, strict=True):
        # The manifest is data from elsewhere: it may only name files beside it.
        if not isinstance(name, str) or os.path.basename(name) != name or not name.endswith(".tfrecord"):
            raise DataError(
                f"{path} names the shard {name!r}; shard names must be plain .tfrecord file names."
            )
        if not isinstance(count, int) or count < 0:
            raise DataError(f"{path} gives shard {name} the record count {count!r}.")
    return manifest


def open_shards(directory: str | os.PathLike, options: "_images._ReadOptions") -> "_images._Opened":
    """The records of a shard directory, ready for `load_images` to batch, parse and decode.

    The chosen split's shards are checked (present, sizes and SHA-256 as in the
    manifest), shuffled in order each epoch (seeded), read interleaved in
    parallel, then shuffled through a buffer of encoded records. Records are
    parsed a batch at a time with ``tf.io.parse_example``. Several workers split
    the shards between them by file (``AutoShardPolicy.FILE``), or by record
    when there are fewer shards than workers.
    """
    directory = os.fspath(directory)
    manifest = read_manifest(directory)
    splits = manifest["splits"]
    names = list(splits) if options.split == "all" else [options.split]
    unknown = [name for name in names if name not in splits]
    if unknown:
        raise DataError(
            f"The shards in {directory} have no split {unknown[0]!r}; they hold {', '.join(splits)}"
            f"{' (or all)' if len(splits) > 1 else ''}."
        )
    shards = [shard for name in names for shard in splits[name]["shards"]]
    shards = _usable_shards(directory, shards, options.skip_bad_files)
    if options.limit is not None:
        shards = _first_records(shards, options.limit)
    shards = [shard for shard in shards if shard["records"]]
    total = sum(shard["records"] for shard in shards)
    if not total:
        raise DataError(f"The {options.split!r} split of the shards in {directory} holds no records.")
    paths = [os.path.join(directory, shard["name"]) for shard in shards]
    counts = np.array([shard["records"] for shard in shards], np.int64)
    files = tf.data.Dataset.from_tensor_slices((paths, counts))
    if options.shuffle and not options.cache:
        files = files.shuffle(len(paths), seed=options.seed, reshuffle_each_iteration=True)
    records = files.interleave(
        lambda path, count: tf.data.TFRecordDataset(path).take(count),
        cycle_length=min(len(paths), _INTERLEAVED_SHARDS), num_parallel_calls=tf.data.AUTOTUNE,
    )
    records = records.apply(tf.data.experimental.assert_cardinality(total))
    records = _images._cached_and_shuffled(records, options)
    has_labels = bool(manifest.get("labels"))
    # By file when every worker gets a shard (FILE refuses fewer files than workers), else by record.
    policy = (tf.data.experimental.AutoShardPolicy.FILE if len(paths) >= _images.worker_count()
              else tf.data.experimental.AutoShardPolicy.DATA)
    decode = record_decoder(manifest, options.labels and has_labels)
    return _images._Opened(records, decode, has_labels, policy)


def record_decoder(manifest: Mapping,
                   labels: bool) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor | None]]:
    """A function from one serialized record, or a batch, to ``(uint8 images, int32 labels or None)``."""
    height, width, channels = manifest["image_shape"]
    encoding = manifest["encoding"]
    features = {"image": tf.io.FixedLenFeature([], tf.string)}
    if labels:
        features["label"] = tf.io.FixedLenFeature([], tf.int64)
    image_spec = tf.TensorSpec((height, width, channels), tf.uint8)

    def decode_one(data):
        decode = tf.io.decode_png if encoding == "png" else tf.io.decode_jpeg
        return tf.ensure_shape(decode(data, channels=channels), image_spec.shape)

    def decode(serialized):
        single = serialized.shape.rank == 0
        parsed = tf.io.parse_example(tf.reshape(serialized, [-1]), features)
        if encoding == "raw":
            images = tf.reshape(tf.io.decode_raw(parsed["image"], tf.uint8), (-1, height, width, channels))
        else:
            images = tf.map_fn(decode_one, parsed["image"], fn_output_signature=image_spec)
        found = tf.cast(parsed["label"], tf.int32) if labels else None
        if single:
            return images[0], None if found is None else found[0]
        return images, found

    return decode


def write_shards(source: str | os.PathLike | np.ndarray | tuple[np.ndarray, np.ndarray], out_dir: str | os.PathLike,
                 *, splits: list[str] | None = None, image_size: int | tuple[int, int] | None = None,
                 channels: int | None = None, encoding: str | None = None, num_shards: int | None = None,
                 shard_size_mb: float = 100, seed: int = 0, skip_bad_files: bool = False, overwrite: bool = False,
                 data_dir: str | None = None, progress: bool = True) -> dict:
    """Write any source `load_images` reads as TFRecord shards with a manifest; return the manifest.

    Parameters
    ----------
    source : str, path or arrays
        A folder (class sub-folders give labels), ``.npz``, ``"digits"``,
        ``"tfds:NAME"``, another shard directory, or ``images`` /
        ``(images, labels)`` arrays.
    out_dir : str or path
        The shard directory to create. It is written beside itself under a
        temporary name and renamed when complete, so an interrupted run leaves
        no half-written directory (a new run removes what a killed one left).
    splits : list of str, optional
        Splits to write; default all the source has (``train`` and ``test`` of a
        ``.npz`` or digits, a folder's ``train``/``test``/``validation``
        sub-folders or the folder itself as ``train``, every TFDS split).
    image_size : int or (int, int), optional
        Resize to this size; default the source's (a folder's first image's).
    channels : {1, 3}, optional
        Default the source's.
    encoding : {"raw", "png", "jpeg"}, optional
        Default ``"raw"`` for images of up to 64x64 pixels, else ``"jpeg"`` for
        folders of JPEG files and ``"png"`` for the rest. Files whose format and
        size already match are stored as they are, without re-encoding.
    num_shards : int, optional
        Shards per split. Default: enough for ``shard_size_mb`` each, at least
        16 and 4 per worker in ``TF_CONFIG``, at most one per record.
    shard_size_mb : float
        Target shard size in megabytes (10^6 bytes).
    seed : int
        Seed of the order records are written in.
    skip_bad_files : bool
        Skip unreadable image files with a `SkippedFilesWarning` (the manifest
        counts them) instead of refusing with a `DataError` that names the first.
    overwrite : bool
        Replace an existing shard directory (never a directory of other files).
    data_dir : str, optional
        TFDS data directory.
    progress : bool
        Show a progress bar per split.

    Returns
    -------
    dict
        The manifest, as written to ``out_dir/manifest.json``.

    Examples
    --------
    >>> import tempfile
    >>> manifest = write_shards("digits", tempfile.mkdtemp() + "/digits", progress=False)
    >>> manifest["encoding"], manifest["image_shape"], manifest["splits"]["train"]["records"]
    ('raw', [8, 8, 1], 1437)
    >>> len(manifest["splits"]["train"]["shards"])
    16
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    image_size = _images._normalize_size(image_size)
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    if encoding is not None and encoding not in ENCODINGS:
        raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}.")
    _images._check_count("num_shards", num_shards, allow_none=True)
    if (isinstance(shard_size_mb, bool) or not isinstance(shard_size_mb, numbers.Real)
            or not math.isfinite(shard_size_mb) or shard_size_mb <= 0):
        raise ConfigError(f"shard_size_mb must be a positive number of megabytes, got {shard_size_mb!r}.")
    _check_out_dir(source, out_dir, overwrite)
    reader = _SourceReader(source, image_size, channels, seed, data_dir)
    names = reader.splits() if splits is None else list(splits)
    if not names:
        raise DataError(f"{_describe(source)} has no splits to write.")
    _remove_abandoned_writes(out_dir)
    started = time.time()
    with atomic_path(out_dir) as tmp:
        _start_writing(tmp)
        written, shape, chosen, labelled = {}, None, None, None
        for name in names:
            stream = reader.open(name, skip_bad_files)
            if shape is not None and stream.image_shape != shape:
                raise DataError(
                    f"Split {name!r} of {_describe(source)} has images of shape {stream.image_shape}, "
                    f"split {names[0]!r} {shape}: pass image_size= and channels= to write one shape."
                )
            if labelled is not None and stream.has_labels != labelled:
                raise DataError(
                    f"Split {name!r} of {_describe(source)} {'has' if stream.has_labels else 'lacks'} labels "
                    f"and split {names[0]!r} does not: write them separately (splits=[...])."
                )
            shape, labelled = stream.image_shape, stream.has_labels
            chosen = chosen or encoding or _default_encoding(shape, stream.native_format)
            written[name] = _write_split(stream, tmp, chosen, num_shards, shard_size_mb, progress)
        manifest = _manifest(_describe(source), shape, chosen, reader.has_labels, reader.class_names,
                             reader.num_classes, written, seed=seed, seconds=time.time() - started)
        _finish_writing(tmp, manifest)
    return manifest


class ShardWriter:
    """Write images a batch at a time as one split of shards, e.g. generated or translated images.

    The number of images need not be known in advance: records go to the
    shards in turn. Everything is written under a temporary name beside
    ``out_dir`` and renamed when the ``with`` block ends without an error (an
    error or interruption leaves no ``out_dir``).

    Parameters
    ----------
    out_dir : str or path
    image_shape : (height, width, channels)
    split : str
    encoding : {"raw", "png", "jpeg"}, optional
        Default: raw up to 64x64 pixels, else PNG.
    num_shards : int
    class_names : list of str, optional
        Names of the label values, for the manifest.
    source : str
        What the images are, for the manifest (e.g. the run that generated them).
    overwrite : bool
        Replace an existing shard directory (never a directory of other files).

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/samples"
    >>> with ShardWriter(out, (8, 8, 1), num_shards=4) as writer:
    ...     for _ in range(3):
    ...         writer.write(np.random.default_rng(0).random((10, 8, 8, 1)), labels=np.arange(10) % 2)
    >>> manifest = read_manifest(out)
    >>> manifest["splits"]["train"]["records"], len(manifest["splits"]["train"]["shards"]), manifest["labels"]
    (30, 4, True)
    """

    def __init__(self, out_dir, image_shape, *, split="train", encoding=None, num_shards=MIN_SHARDS,
                 class_names=None, source="generated", overwrite=False):
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        shape = tuple(image_shape)
        if len(shape) != 3 or shape[2] not in (1, 3):
            raise ConfigError(f"image_shape must be (height, width, 1 or 3), got {image_shape!r}.")
        self.image_shape = (*_images._normalize_size(shape[:2]), int(shape[2]))
        if encoding is not None and encoding not in ENCODINGS:
            raise ConfigError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}.")
        self.encoding = encoding or _default_encoding(self.image_shape, "png")
        _images._check_count("num_shards", num_shards)
        self.num_shards = int(num_shards)
        if not isinstance(split, str) or not split or os.path.basename(split) != split:
            raise ConfigError(f"split must be a plain name such as 'train', got {split!r}.")
        self.split, self.class_names, self.source = split, class_names, source
        _check_out_dir(None, self.out_dir, overwrite)
        self._atomic = self._tmp = None
        self._writers, self._counts, self._labels, self._written = [], [], None, 0

    def __enter__(self):
        _remove_abandoned_writes(self.out_dir)
        self._atomic = atomic_path(self.out_dir)
        self._tmp = self._atomic.__enter__()
        _start_writing(self._tmp)
        self._names = [f"{self.split}-{k:05d}-of-{self.num_shards:05d}.tfrecord"
                       for k in range(self.num_shards)]
        self._writers = [tf.io.TFRecordWriter(os.path.join(self._tmp, name)) for name in self._names]
        self._counts = [0] * self.num_shards
        return self

    def write(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Add a batch: uint8 (0..255) or float (0..1) images shaped ``(n, h, w[, c])``, and their labels."""
        if self._tmp is None:
            raise ConfigError("ShardWriter.write works inside its with block only.")
        images = _images._validated_images(np.asarray(images), "ShardWriter.write")
        if tuple(images.shape[1:]) != self.image_shape:
            raise DataError(
                f"ShardWriter for images of shape {self.image_shape} got a batch of {images.shape}."
            )
        if self._labels is None:
            self._labels = labels is not None
            self._record = _RecordTemplate(self._labels)
        if (labels is not None) != self._labels:
            raise DataError("Give labels with every batch or with none (the first batch "
                            f"{'had' if self._labels else 'had none'}).")
        if labels is not None:
            labels = _images._validated_labels(labels, len(images), "ShardWriter.write")
        pixels = _as_uint8(tf.constant(images), self.image_shape[:2], self.image_shape[2])
        payloads = pixels.numpy() if self.encoding == "raw" else tf.map_fn(
            lambda image: _encode(image, self.encoding), pixels, fn_output_signature=tf.string).numpy()
        for offset, payload in enumerate(payloads):
            shard = self._written % self.num_shards
            label = None if labels is None else labels[offset]
            self._writers[shard].write(self._record.serialize(payload, self._written, label))
            self._counts[shard] += 1
            self._written += 1

    def __exit__(self, kind, error, traceback):
        for writer in self._writers:
            writer.close()
        if kind is None:
            try:
                self._finish()
            except BaseException as failure:  # the temporary directory goes, the error stays
                self._atomic.__exit__(type(failure), failure, failure.__traceback__)
                raise
        return self._atomic.__exit__(kind, error, traceback)

    def _finish(self):
        if not self._written:
            raise DataError(f"ShardWriter for {self.out_dir} was given no images.")
        counts = zip(self._names, self._counts, strict=True)
        shards = [_shard_entry(self._tmp, name, count) for name, count in counts]
        split = {"records": self._written, "skipped_files": 0, "shards": shards}
        self.manifest = _manifest(self.source, self.image_shape, self.encoding, bool(self._labels),
                                  self.class_names, None, {self.split: split})
        _finish_writing(self._tmp, self.manifest)


def _manifest(source, image_shape, encoding, has_labels, class_names, num_classes, splits, seed=None,
              seconds=None):
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "created_by": f"keras_bigml {_package_version()}",
        "image_shape": list(image_shape),
        "dtype": "uint8",
        "encoding": encoding,
        "labels": has_labels,
        "class_names": class_names,
        "num_classes": len(class_names) if class_names else num_classes,
        "features": {"image": "bytes", "index": "int64", "label": "int64" if has_labels else None},
        "seed": seed,
        "seconds": None if seconds is None else round(seconds, 3),
        "splits": splits,
    }


def _start_writing(tmp):
    """Mark a temporary shard directory as being written by this process (see `_remove_abandoned_writes`)."""
    os.makedirs(tmp)
    with open(os.path.join(tmp, _PROGRESS_FILE), "w") as file:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, file)


def _finish_writing(tmp, manifest):
    with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as file:
        json.dump(manifest, file, indent=1)
    os.remove(os.path.join(tmp, _PROGRESS_FILE))


def _shard_entry(directory, name, count):
    path = os.path.join(directory, name)
    if not os.path.exists(path):  # every record meant for it was unreadable
        open(path, "wb").close()
    return {"name": name, "records": count, "bytes": os.path.getsize(path), "sha256": _sha256(path)}


def _write_split(stream, out_dir, encoding, num_shards, shard_size_mb, progress):
    """Write one split's shards; return its manifest entry."""
    from tqdm.auto import tqdm

    elements = stream.encoded(encoding)
    if num_shards is None:
        # Encoded sizes are estimated from the first records; raw sizes are exact.
        sample = [len(_payload(element[2])) for element in elements.take(64).as_numpy_iterator()]
        estimate = (np.mean(sample) + 40) * stream.count if sample else 0
        num_shards = max(MIN_SHARDS, SHARDS_PER_WORKER * _images.worker_count(),
                         math.ceil(estimate / (shard_size_mb * 1e6)))
    num_shards = max(1, min(num_shards, stream.count))
    names = [f"{stream.name}-{k:05d}-of-{num_shards:05d}.tfrecord" for k in range(num_shards)]
    counts = [0] * num_shards
    record = _RecordTemplate(stream.has_labels)
    writer, current, expected, skipped = None, -1, 0, []
    bar = tqdm(total=stream.count, desc=f"sharding {stream.name}", unit="img", disable=not progress)
    try:
        # Batches cross from TensorFlow to Python: one element at a time costs far more than writing it.
        for positions, indices, payloads, labels in elements.batch(256).as_numpy_iterator():
            for position, index, payload, label in zip(positions, indices, payloads, labels, strict=True):
                if position != expected:
                    skipped += stream.unreadable(range(expected, position))
                expected = position + 1
                # A source may hold more than it announced (TFDS split sizes): the last shard takes the rest.
                shard = min(position * num_shards // stream.count, num_shards - 1)
                if shard != current:
                    if writer is not None:
                        writer.close()
                    writer, current = tf.io.TFRecordWriter(os.path.join(out_dir, names[shard])), shard
                writer.write(record.serialize(payload, index, label))
                counts[shard] += 1
            bar.update(expected - bar.n)
        if expected < stream.count and stream.paths is not None:
            skipped += stream.unreadable(range(expected, stream.count))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} unreadable image file{'s' if len(skipped) > 1 else ''} of "
            f"{stream.count} in split {stream.name!r} (the first: {skipped[0]}).",
            _images.SkippedFilesWarning,
            stacklevel=3,
        )
    if not sum(counts):
        raise DataError(f"Split {stream.name!r} of {stream.where} has no readable images.")
    shards = [_shard_entry(out_dir, name, count) for name, count in zip(names, counts, strict=True)]
    return {"records": sum(counts), "skipped_files": len(skipped), "shards": shards}


class _RecordTemplate:
    """Serializes records through one reused ``tf.train.Example`` (5x faster than building one each)."""

    def __init__(self, labels):
        self.example = tf.train.Example()
        feature = self.example.features.feature
        self.image = feature["image"].bytes_list.value
        self.index = feature["index"].int64_list.value
        self.image.append(b"")
        self.index.append(0)
        self.label = None
        if labels:
            self.label = feature["label"].int64_list.value
            self.label.append(0)

    def serialize(self, payload, index, label):
        self.image[0] = _payload(payload)
        self.index[0] = int(index)
        if self.label is not None:
            self.label[0] = int(label)
        return self.example.SerializeToString()


def _payload(value):
    """Encoded bytes as they are; a uint8 image as its raw HWC bytes."""
    return value if isinstance(value, bytes) else np.ascontiguousarray(value).tobytes()


class _SourceReader:
    """Reads a source's splits as uint8 images in a seeded shuffled order, for writing."""

    def __init__(self, source, image_size, channels, seed, data_dir):
        self.source, self.image_size, self.channels = source, image_size, channels
        self.seed, self.data_dir = seed, data_dir
        self.has_labels, self.class_names, self.num_classes = False, None, None
        self.kind = self._kind()

    def _kind(self):
        source = self.source
        if isinstance(source, (np.ndarray, tuple, list)):
            return "arrays"
        if not isinstance(source, (str, os.PathLike)):
            raise DataError(f"Unsupported image source of type {type(source).__name__}.")
        source = os.fspath(source)
        if source.startswith("tfds:"):
            return "tfds"
        if source == "digits" or source.endswith(".npz"):
            if source.endswith(".npz") and not os.path.isfile(source):
                raise DataError(f"No such file: {source}")
            return "arrays"
        if os.path.isdir(source):
            return "shards" if is_shard_directory(source) else "folder"
        raise DataError(f"No such file or folder: {source}" if os.sep in source or "." in source else
                        f"Unknown image dataset {source!r}.")

    def splits(self):
        source = self.source
        if self.kind == "arrays":
            if isinstance(source, (np.ndarray, tuple, list)):
                return ["train"]
            if source == "digits":
                return ["train", "test"]
            with np.load(source, allow_pickle=False) as archive:
                return sorted({key[2:] for key in archive.files if key.startswith("x_")},
                              key=lambda name: (name != "train", name))
        if self.kind == "folder":
            found = [name for name in _images.FOLDER_SPLITS if os.path.isdir(os.path.join(source, name))]
            return found or ["train"]
        if self.kind == "shards":
            return list(read_manifest(source)["splits"])
        builder, _, _ = _images._tfds_builder(self.source[len("tfds:"):], self.data_dir)
        return list(builder.info.splits)

    def open(self, split, skip_bad_files):
        return getattr(self, f"_open_{self.kind}")(split, skip_bad_files)

    def _open_arrays(self, split, skip_bad_files):
        source = self.source
        if isinstance(source, (np.ndarray, tuple, list)):
            images, labels = source if isinstance(source, (tuple, list)) else (source, None)
            where = "the given arrays"
        elif source == "digits":
            (images, labels), where = _images._digits(split), "digits"
        else:
            (images, labels), where = _images._npz(os.fspath(source), split), os.fspath(source)
        images = _images._validated_images(np.asarray(images), where)
        if labels is not None:
            labels = _images._validated_labels(labels, len(images), where)
            self._saw_labels(labels)
        order = np.random.default_rng(self.seed).permutation(len(images))
        table = tf.constant(images)
        label_table = tf.constant(np.zeros(len(images), np.int32) if labels is None else labels)
        size, channels = self._target(images.shape[1:3], images.shape[3])

        def gather(positions):
            index = tf.gather(order, positions)
            image = _as_uint8(tf.gather(table, index), size, channels)
            return positions, index, image, tf.gather(label_table, index)

        elements = tf.data.Dataset.range(len(images)).batch(1024).map(gather, num_parallel_calls=4).unbatch()
        return _SplitStream(split, len(images), (*size, channels), _encoder(elements), where,
                            labels is not None)

    def _open_folder(self, split, skip_bad_files):
        folder, paths, labels, class_names = _images._folder_files(os.fspath(self.source), split)
        if labels is not None:
            self._saw_labels(labels, class_names)
        order = np.random.default_rng(self.seed).permutation(len(paths))
        first = _first_readable_shape(paths, folder)
        size, channels = self._target(first[:2], first[2])
        ordered_labels = np.zeros(len(paths), np.int32) if labels is None else labels[order]
        extensions = np.char.lower(np.array([os.path.splitext(p)[1] for p in paths[order]]))
        native = "jpeg" if np.isin(extensions, [".jpg", ".jpeg"]).mean() > 0.5 else "png"

        def decode(position, index, path, label, extension, encoding):
            data = tf.io.read_file(path)
            image = tf.io.decode_image(data, channels=channels, expand_animations=False)
            image.set_shape([None, None, channels])
            same_size = tf.reduce_all(tf.shape(image)[:2] == size)
            image = tf.cond(same_size, lambda: tf.ensure_shape(image, (*size, channels)),
                            lambda: _images._resized_uint8(image, size))
            if encoding == "raw":
                return position, index, image, label
            # Files already in the chosen format and size are kept byte for byte.
            suffixes = (".png",) if encoding == "png" else (".jpg", ".jpeg")
            keep = tf.logical_and(same_size, tf.reduce_any(tf.equal(extension, suffixes)))
            payload = tf.cond(keep, lambda: data, lambda: _encode(image, encoding))
            return position, index, payload, label

        def encoded(encoding):
            slices = (np.arange(len(paths)), order, paths[order], ordered_labels, extensions)
            return (
                tf.data.Dataset.from_tensor_slices(slices)
                .map(lambda *e: decode(*e, encoding), num_parallel_calls=tf.data.AUTOTUNE)
                .ignore_errors()
            )

        return _SplitStream(split, len(paths), (*size, channels), encoded, folder, labels is not None,
                            native_format=native, paths=paths[order], skip_bad_files=skip_bad_files)

    def _open_shards(self, split, skip_bad_files):
        directory = os.fspath(self.source)
        manifest = read_manifest(directory)
        self.has_labels = self.has_labels or bool(manifest.get("labels"))
        self.class_names = self.class_names or manifest.get("class_names")
        self.num_classes = self.num_classes or manifest.get("num_classes")
        options = _images._ReadOptions(split=split, labels=bool(manifest.get("labels")), shuffle=False,
                                       skip_bad_files=skip_bad_files)
        opened = open_shards(directory, options)
        height, width, source_channels = manifest["image_shape"]
        size, channels = self._target((height, width), source_channels)
        count = int(opened.elements.cardinality())  # without the shards skipped as damaged

        def decode(serialized):
            images, labels = opened.decode(serialized)
            labels = tf.zeros(tf.shape(images)[:1], tf.int32) if labels is None else labels
            return _as_uint8(images, size, channels), labels

        elements = (
            opened.elements.batch(1024).map(decode).unbatch()
            .shuffle(10_000, seed=self.seed).enumerate()
            .map(lambda position, image_label: (position, position, *image_label))
        )
        return _SplitStream(split, count, (*size, channels), _encoder(elements), directory,
                            bool(manifest.get("labels")))

    def _open_tfds(self, split, skip_bad_files):
        import tensorflow_datasets as tfds

        name = self.source[len("tfds:"):]
        builder, image_key, has_labels = _images._tfds_builder(name, self.data_dir)
        try:
            records = builder.as_dataset(split=split, shuffle_files=True,
                                         read_config=tfds.ReadConfig(shuffle_seed=self.seed))
        except (ValueError, KeyError) as error:
            raise DataError(f"TFDS dataset {name!r} has no split {split!r} ({error}).") from None
        if has_labels:
            self.has_labels = True
            label_names = getattr(builder.info.features["label"], "names", None)
            self.class_names = self.class_names or label_names
        height, width, source_channels = builder.info.features[image_key].shape
        if (height is None or width is None) and self.image_size is None:
            raise DataError(f"TFDS dataset {name!r} holds images of different sizes: pass image_size=.")
        size, channels = self._target((height, width), source_channels)

        def pick(record):
            image = tf.cast(record[image_key], tf.uint8)
            if height is None or width is None:
                image = _images._resized_uint8(image, size)
            label = tf.cast(record["label"], tf.int32) if has_labels else tf.constant(0, tf.int32)
            return _as_uint8(image, size, channels), label

        # TFDS prepared its files shuffled; the buffer mixes the files read at once.
        elements = (
            records.map(pick, num_parallel_calls=tf.data.AUTOTUNE).shuffle(10_000, seed=self.seed).enumerate()
            .map(lambda position, image_label: (position, position, *image_label))
        )
        count = int(records.cardinality())
        if count < 0:
            count = builder.info.splits[split].num_examples
        return _SplitStream(split, count, (*size, channels), _encoder(elements), f"tfds:{name}", has_labels)

    def _target(self, source_size, source_channels):
        size = self.image_size or tuple(int(n) for n in source_size)
        channels = self.channels or (1 if source_channels == 1 else 3)
        return size, channels

    def _saw_labels(self, labels, class_names=None):
        self.has_labels = True
        if class_names:
            self.class_names = list(class_names)
        elif len(labels):
            self.num_classes = max(self.num_classes or 0, int(labels.max()) + 1)


class _SplitStream:
    """One split to write.

    ``encoded(encoding)`` gives ``(position, source index, uint8 image or
    encoded bytes, label)`` in writing order; positions missing from it are
    files that did not decode (folders only: ``paths`` names them).
    """

    def __init__(self, name, count, image_shape, encoded, where, has_labels, native_format="png",
                 paths=None, skip_bad_files=False):
        self.name, self.count, self.image_shape = name, int(count), tuple(int(n) for n in image_shape)
        self.encoded, self.where, self.has_labels = encoded, where, has_labels
        self.native_format, self.paths, self.skip_bad_files = native_format, paths, skip_bad_files

    def unreadable(self, positions):
        """Names of the files at ``positions`` that did not decode; refuses them unless skipping."""
        names = [str(self.paths[p]) for p in positions]
        if names and not self.skip_bad_files:
            reason = _images._decode_failure(names[0])
            raise DataError(
                f"{names[0]} is not a readable image ({reason}): remove it, or pass skip_bad_files=True "
                "(--skip-bad-files) to skip unreadable files."
            )
        return names


def _encoder(elements):
    """``encoded(encoding)`` for a stream of ``(position, index, uint8 image, label)``."""

    def encoded(encoding):
        if encoding == "raw":
            return elements
        def encode(position, index, image, label):
            return position, index, _encode(image, encoding), label

        return elements.map(encode, num_parallel_calls=tf.data.AUTOTUNE)

    return encoded


def _as_uint8(images, size, channels):
    """uint8 images (or one) resized and converted as asked; untouched when they already match."""
    if images.dtype == tf.uint8 and tuple(images.shape[-3:]) == (*size, channels):
        return images
    floats = tf.cast(images, tf.float32) / 255.0 if images.dtype == tf.uint8 else images
    floats = _images._resize_and_convert(floats, size, channels)
    return tf.cast(tf.round(tf.clip_by_value(floats, 0.0, 1.0) * 255.0), tf.uint8)


def _encode(image, encoding):
    if encoding == "png":
        return tf.io.encode_png(image)
    return tf.io.encode_jpeg(image, quality=JPEG_QUALITY)


def _default_encoding(image_shape, native_format):
    height, width, _ = image_shape
    return "raw" if height * width <= RAW_MAX_PIXELS else native_format


def _first_readable_shape(paths, where):
    for path in paths:
        try:
            return tuple(tf.io.decode_image(tf.io.read_file(path), expand_animations=False).shape)
        except tf.errors.OpError:
            continue
    raise DataError(f"None of the {len(paths)} image files in {where} can be read.")


def _usable_shards(directory, shards, skip_bad_files):
    """The shards whose files match the manifest; refuses a damaged one unless skipping it."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        problems = list(pool.map(lambda shard: _damage(directory, shard), shards))
    damaged = [(shard, why) for shard, why in zip(shards, problems, strict=True) if why]
    if not damaged:
        return shards
    shard, why = damaged[0]
    path = os.path.join(directory, shard["name"])
    if not skip_bad_files:
        others = f" (and {len(damaged) - 1} more damaged shards)" if len(damaged) > 1 else ""
        raise DataError(
            f"Shard {path} is damaged ({why}){others}: write the shards again, or pass skip_bad_files=True "
            f"(--skip-bad-files) to read the others without its {shard['records']:,} records."
        )
    lost = sum(shard["records"] for shard, _ in damaged)
    total = sum(shard["records"] for shard in shards)
    warnings.warn(
        f"Skipped {len(damaged)} damaged shard{'s' if len(damaged) > 1 else ''} of {len(shards)} in "
        f"{directory} (the first: {shard['name']}, {why}): {lost:,} of {total:,} records lost.",
        _images.SkippedFilesWarning,
        stacklevel=5,
    )
    return [shard for shard, why in zip(shards, problems, strict=True) if not why]


def _damage(directory, shard):
    """Why a shard's file does not match the manifest, or None."""
    path = os.path.join(directory, shard["name"])
    if not os.path.isfile(path):
        return "missing"
    size, expected = os.path.getsize(path), shard.get("bytes")
    if size != expected:
        cut = "truncated: " if isinstance(expected, int) and size < expected else ""
        return f"{cut}{size:,} bytes where the manifest says {expected!r}"
    if _sha256(path) != shard.get("sha256"):
        return "its SHA-256 checksum differs from the manifest's"
    return None


def _first_records(shards, limit):
    """Shards (in name order) cut to hold the first ``limit`` records."""
    kept, left = [], limit
    for shard in shards:
        if left <= 0:
            break
        kept.append({**shard, "records": min(shard["records"], left)})
        left -= shard["records"]
    return kept


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_out_dir(source, out_dir, overwrite):
    if isinstance(source, (str, os.PathLike)) and os.path.abspath(os.fspath(source)) == out_dir:
        raise ConfigError(f"The output directory {out_dir} is the source itself: write the shards elsewhere.")
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise ConfigError(f"{out_dir} is a file, not a directory for shards.")
    if is_shard_directory(out_dir):
        if not overwrite:
            raise ConfigError(
                f"{out_dir} already holds shards: pass overwrite=True (--overwrite) to replace them."
            )
        return
    # Only shards are ever replaced: overwrite=True on a wrong directory must not delete it.
    if os.listdir(out_dir):
        raise ConfigError(
            f"{out_dir} exists and holds other files than shards: choose a new or empty output directory."
        )


def _remove_abandoned_writes(out_dir):
    """Remove the temporary copies of ``out_dir`` that killed writers on this host left beside it."""
    parent, name = os.path.split(out_dir)
    if not os.path.isdir(parent):
        return
    for entry in os.scandir(parent):
        progress = os.path.join(entry.path, name, _PROGRESS_FILE)
        if not (entry.name.startswith(".tmp-") and entry.is_dir() and os.path.isfile(progress)):
            continue
        try:
            with open(progress) as file:
                writer = json.load(file)
        except (OSError, ValueError):
            continue
        if writer.get("host") == socket.gethostname() and not process_alive(writer.get("pid")):
            shutil.rmtree(entry.path, ignore_errors=True)
            warnings.warn(f"Removed {entry.path}, left by an interrupted shard writer (process "
                          f"{writer.get('pid')}); writing {out_dir} from the start.", stacklevel=3)


def _describe(source):
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "arrays"


def _package_version():
    from keras_bigml import __version__

    return __version__
