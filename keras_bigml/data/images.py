"""Image pipelines: one function turns any supported source into a `tf.data.Dataset`.

Sources
-------
- ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (offline default).
- ``"tfds:NAME"``: a TensorFlow Datasets name, e.g. ``"tfds:mnist"`` or
  ``"tfds:cycle_gan/horse2zebra"`` (downloaded on first use, or read from ``data_dir``).
- a ``.npz`` path with the ``keras.datasets`` keys ``x_train, y_train, x_test, y_test``.
- an image folder: images directly inside it (no labels) or in one sub-folder per
  class (labels in sorted folder order); a ``SPLIT`` sub-folder is used when present.
- a shard directory written by :func:`keras_bigml.data.shards.write_shards`
  (recognised by its ``manifest.json``).
- numpy arrays: ``images`` or ``(images, labels)``.

Every image comes out float32, NHWC, in ``value_range`` (default ``[0, 1]``).
Shuffle buffers and caches hold what the source stores (uint8 pixels, array
indices or a shard's encoded records), never float32 images: the conversion to
float, resizing and channel conversion happen a batch at a time.
"""

import dataclasses
import json
import numbers
import os
import socket
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_bigml.errors import ConfigError, DataError, DownloadUnavailableError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
BUILTIN_IMAGE_SETS = ("digits",)
FOLDER_SPLITS = ("train", "test", "validation")
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
# Larger sides are typing mistakes, not images: one float32 RGB image would take 3 GiB.
MAX_IMAGE_SIDE = 16_384

_DIGITS_TRAIN_FRACTION = 0.8


def load_images(
    source: str | os.PathLike | np.ndarray | tuple[np.ndarray, ...] = "digits",
    *,
    split: str = "train",
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    labels: bool = False,
    batch_size: int | None = 64,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    cache: bool | str = False,
    binarize: bool = False,
    limit: int | None = None,
    drop_remainder: bool = False,
    data_dir: str | None = None,
    skip_bad_files: bool = False,
) -> tf.data.Dataset:
    """Build a shuffled, batched, prefetched dataset of float images.

    Parameters
    ----------
    source : str, path or array or tuple of arrays
        Where the images come from (see the module docstring).
    split : str
        ``"train"`` or ``"test"`` (``.npz``, digits, folders, shards), any TFDS
        split (``"trainA"`` for CycleGAN sets), or ``"all"`` for digits, ``.npz``
        and shards.
    image_size : int or (int, int), optional
        Resize to this height and width (antialiased). Default: keep the size
        (for folders: the first image's size).
    channels : int, optional
        1 (grayscale) or 3 (RGB); converted when the source differs.
    value_range : (float, float)
        Output pixel range, e.g. ``(-1, 1)`` for a tanh generator.
    labels : bool
        Yield ``(images, labels)`` with int32 labels instead of images alone.
    batch_size : int or None
        ``None`` yields single images (for :func:`pair_unpaired`).
    shuffle, shuffle_buffer, seed
        A new order every epoch; ``seed`` makes the orders reproducible (with
        several workers in ``TF_CONFIG`` the default is 0, so that all workers
        draw the same orders when they split records between them). Arrays
        shuffle their whole index list, folders their whole file list, shards
        the order of their shards and then a buffer of ``shuffle_buffer``
        records; TFDS sets their files and then the buffer.
    cache : bool or str
        Cache what the source reads (decoded uint8 images of a folder or TFDS
        set, a shard's encoded records) in memory (``True``) or in a file (a
        path). In-memory sources never need it. A cached folder is read in one
        fixed shuffled order, reshuffled each epoch by the buffer.
    binarize : bool
        Dynamic binarization: each pixel becomes 1 with probability equal to its
        intensity, drawn anew each epoch (for Bernoulli VAEs).
    limit : int, optional
        Use only ``limit`` examples: the first ones of arrays, ``.npz``, TFDS
        splits and shards; a fixed random choice of a folder's files (its first
        files would all be one class).
    drop_remainder : bool
        Drop the last incomplete batch.
    data_dir : str, optional
        TFDS data directory holding a prepared copy.
    skip_bad_files : bool
        Skip image files that cannot be decoded and damaged shards, with a
        :class:`SkippedFilesWarning` saying how many (and how many records were
        lost), instead of refusing them with a :class:`DataError` naming the
        first one.

    Returns
    -------
    tf.data.Dataset

    Examples
    --------
    >>> ds = load_images("digits", image_size=16, batch_size=32, seed=0)
    >>> tuple(next(iter(ds)).shape)
    (32, 16, 16, 1)
    >>> ds = load_images("digits", labels=True, batch_size=8, value_range=(-1, 1))
    >>> images, y = next(iter(ds))
    >>> float(images.numpy().min()) >= -1.0, y.dtype.name
    (True, 'int32')
    """
    image_size = _normalize_size(image_size)
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    low, high = _check_value_range(value_range)
    _check_count("batch_size", batch_size, allow_none=True)
    _check_count("limit", limit, allow_none=True)
    _check_count("shuffle_buffer", shuffle_buffer)
    if seed is None and worker_count() > 1:
        # Workers that split records (not files) between them must all draw the same orders.
        seed = 0
    options = _ReadOptions(
        split=split, image_size=image_size, channels=channels, labels=bool(labels), limit=limit,
        shuffle=bool(shuffle), shuffle_buffer=shuffle_buffer, seed=seed, cache=cache, data_dir=data_dir,
        skip_bad_files=bool(skip_bad_files),
    )
    opened = _open(source, options)
    if labels and not opened.has_labels:
        raise DataError(f"labels=True, but the source {_describe(source)} has no labels.")

    def finish(images, noise_seed):
        if images.dtype == tf.uint8:
            images = tf.cast(images, tf.float32) / 255.0
        images = _resize_and_convert(images, image_size, channels)
        if binarize:
            noise = tf.random.stateless_uniform(tf.shape(images), seed=tf.stack([noise_seed, 0]))
            images = tf.cast(noise < images, tf.float32)
        if (low, high) != (0.0, 1.0):
            images = images * (high - low) + low
        return images

    def convert(elements, noise_seed):
        images, element_labels = opened.decode(elements)
        images = finish(images, noise_seed)
        return (images, element_labels) if labels else images

    dataset = opened.elements
    if batch_size is not None:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    policy = opened.auto_shard_policy
    if binarize:
        # A fresh seed per batch and per epoch: stateful random ops in a map would
        # replay the same noise every epoch once a global seed is set. Workers
        # cannot split this random stream by file, so they split records.
        noise_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, noise_seeds))
        dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
        if policy == tf.data.experimental.AutoShardPolicy.FILE:
            policy = tf.data.experimental.AutoShardPolicy.DATA
    else:
        # tf.data spreads (image, label) elements over the function's arguments.
        dataset = dataset.map(lambda *elements: convert(elements if len(elements) > 1 else elements[0], None),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if policy is not None:
        distribute = tf.data.Options()
        distribute.experimental_distribute.auto_shard_policy = policy
        dataset = dataset.with_options(distribute)
    return dataset.prefetch(tf.data.AUTOTUNE)


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with tf.data's autotuning off, unless its options already set it.

    Training on a 2-core CPU, about half of the ``fit`` calls of a GAN or VAE
    ran at 0.6x speed while tf.data's autotuning was on: the training threads
    stopped running side by side (1.1-1.2 cores busy instead of 1.8), with any
    input pipeline, even ``Dataset.from_tensors(batch).repeat()``, and with any
    autotuning budget or algorithm. With it off, none of 44 calls did (Intel
    Xeon with AMX, TensorFlow 2.21; ``benchmarks/throughput.py`` shows it).
    Parallel maps keep their parallelism: with autotuning off,
    ``num_parallel_calls=AUTOTUNE`` runs one call per core. A dataset whose
    options say ``autotune.enabled`` either way is returned as it is.

    >>> without_autotuning(tf.data.Dataset.range(3)).options().autotune.enabled
    False
    >>> tuned = tf.data.Options()
    >>> tuned.autotune.enabled = True
    >>> without_autotuning(tf.data.Dataset.range(3).with_options(tuned)).options().autotune.enabled
    True
    """
    if dataset.options().autotune.enabled is not None:
        return dataset
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


@dataclasses.dataclass(frozen=True)
class _ReadOptions:
    """What `load_images` asks of a source; shared with the shard reader."""

    split: str = "train"
    image_size: tuple | None = None
    channels: int | None = None
    labels: bool = False
    limit: int | None = None
    shuffle: bool = True
    shuffle_buffer: int = 10_000
    seed: int | None = None
    cache: bool | str = False
    data_dir: str | None = None
    skip_bad_files: bool = False


@dataclasses.dataclass
class _Opened:
    """A source ready to batch.

    ``elements`` is limited, cached and shuffled already and holds what buffers
    should hold (uint8 images, indices into arrays, encoded records);
    ``decode`` turns one element or a batch of them into ``(images, labels)``,
    images uint8 (float32 for float arrays) and labels int32 or None when not
    asked for. ``auto_shard_policy`` tells several workers how to split the
    data, when the source knows better than TensorFlow's default.
    """

    elements: tf.data.Dataset
    decode: Callable
    has_labels: bool
    auto_shard_policy: tf.data.experimental.AutoShardPolicy | None = None


def _cached_and_shuffled(elements, options):
    if options.cache:
        elements = elements.cache("" if options.cache is True else os.fspath(options.cache))
    if options.shuffle:
        elements = elements.shuffle(options.shuffle_buffer, seed=options.seed, reshuffle_each_iteration=True)
    return elements


def _pairs(elements):
    """A decode for elements that are ``(image, label)`` already, or images alone."""
    return (elements[0], elements[1]) if isinstance(elements, tuple) else (elements, None)


class SkippedFilesWarning(UserWarning):
    """Unreadable files or shards were skipped because ``skip_bad_files=True``; the message says how many."""


def count_classes(dataset_or_labels: tf.data.Dataset | np.ndarray | Sequence[int],
                  num_classes: int | None = None) -> int:
    """Return the number of classes of integer labels ``0..K-1``, refusing labels that cannot be classes.

    One pass over the labels: a ``tf.data.Dataset`` of ``(images, labels)``
    (batched or not) or of labels alone, or any array-like of labels.

    Parameters
    ----------
    dataset_or_labels : tf.data.Dataset or array-like
    num_classes : int, optional
        The class count the caller wants; it must cover the largest label.
        Without it the count is the largest label + 1, which must not leave most
        classes unused (a stray label of 2,000,000 among digits is refused, not
        made into a 2,000,001-class model).

    Returns
    -------
    int

    Raises
    ------
    DataError
        For negative, non-integer or missing labels, or labels far from ``0..K-1``.
    ConfigError
        When ``num_classes`` is not a whole number of at least 1 or is smaller
        than the largest label + 1.

    Examples
    --------
    >>> count_classes([0, 2, 1, 2])
    3
    >>> count_classes([0, 1, 3], num_classes=10)
    10
    >>> count_classes(load_images("digits", labels=True, batch_size=500))
    10
    >>> count_classes([0, 1, 2_000_000])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_bigml.errors.DataError: The labels hold 3 distinct values but the largest is 2000000, ...
    """
    if num_classes is not None:
        _check_count("num_classes", num_classes)
    distinct = np.zeros(0, np.int64)
    for chunk in _label_chunks(dataset_or_labels):
        distinct = np.union1d(distinct, _integer_labels(chunk))
    if not len(distinct):
        raise DataError("There are no labels to count classes from.")
    if distinct[0] < 0:
        raise DataError(f"Labels must be class indices 0..K-1, found the negative label {int(distinct[0])}.")
    needed = int(distinct[-1]) + 1
    if num_classes is not None:
        if num_classes < needed:
            raise ConfigError(
                f"num_classes={num_classes} is smaller than the data's largest label + 1 ({needed}): "
                f"pass num_classes of at least {needed}, or fix the labels."
            )
        return int(num_classes)
    # More than half of 0..max unused: not classes 0..K-1 but a stray or a code.
    if needed > 2 * len(distinct):
        raise DataError(
            f"The labels hold {len(distinct)} distinct values but the largest is {needed - 1}, "
            f"so {needed - len(distinct)} of the {needed} classes 0..{needed - 1} would never occur: "
            "labels must be class indices 0..K-1 (pass num_classes if classes are missing from this data)."
        )
    return needed


def _label_chunks(dataset_or_labels):
    """The labels in chunks of numpy arrays, from a dataset or an array-like."""
    if not isinstance(dataset_or_labels, tf.data.Dataset):
        yield np.asarray(dataset_or_labels)
        return
    spec = dataset_or_labels.element_spec
    if isinstance(spec, tuple):
        if len(spec) < 2:
            raise DataError("count_classes takes a dataset of (images, labels) or of labels alone.")
        dataset_or_labels = dataset_or_labels.map(lambda images, labels, *rest: labels)
        spec = spec[1]
    if not (spec.dtype.is_integer or spec.dtype.is_floating):
        raise DataError(f"Labels must be integers, got a dataset of {spec.dtype.name} labels.")
    yield from dataset_or_labels.as_numpy_iterator()


def _integer_labels(labels):
    labels = np.ravel(labels)
    if labels.dtype == np.bool_ or not (np.issubdtype(labels.dtype, np.integer)
                                        or np.issubdtype(labels.dtype, np.floating)):
        raise DataError(f"Labels must be integers, got labels of dtype {labels.dtype}.")
    if np.issubdtype(labels.dtype, np.floating):
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            raise DataError(f"Labels must be integers, found the label {labels[~whole][0].item()!r}.")
    return np.unique(labels).astype(np.int64)


def random_jitter(dataset: tf.data.Dataset, enlarge: float = 286 / 256, flip: bool = True,
                  seed: int | None = None) -> tf.data.Dataset:
    """CycleGAN's jitter on a dataset of single images: enlarge, random crop back, random flip.

    Each image is resized to ``enlarge`` times its size (286 for 256 pixels, as
    in the paper), cropped back to its size at a random place, and mirrored left
    to right with probability 1/2; new draws every epoch.

    >>> ds = load_images("digits", batch_size=None, image_size=16, limit=4, shuffle=False)
    >>> [tuple(image.shape) for image in random_jitter(ds, seed=0)][:2]
    [(16, 16, 1), (16, 16, 1)]
    """
    if isinstance(dataset.element_spec, tuple) or dataset.element_spec.shape.rank != 3:
        raise DataError("random_jitter takes a dataset of single images (load_images(..., batch_size=None)).")
    height, width, channels = dataset.element_spec.shape
    if height is None or width is None:
        raise DataError("random_jitter needs images of one known size: load them with image_size=.")
    big = (int(round(height * enlarge)), int(round(width * enlarge)))

    def jitter(image, draw_seed):
        seeds = tf.random.experimental.stateless_split(tf.stack([draw_seed, 0]), 2)
        image = tf.image.resize(image, big)
        image = tf.image.stateless_random_crop(image, (height, width, channels), seed=seeds[0])
        return tf.image.stateless_random_flip_left_right(image, seed=seeds[1]) if flip else image

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((dataset, draws)).map(jitter, num_parallel_calls=tf.data.AUTOTUNE)


def frame_digits(images: np.ndarray, size: int = 28, box: int = 20, threshold: float = 0.1) -> np.ndarray:
    """Frame digit images the way MNIST's were made, for classifiers trained on MNIST.

    Each image's ink bounding box (pixels above ``threshold``) is scaled, keeping
    its aspect ratio, to fit a ``box`` x ``box`` square, and placed in a
    ``size`` x ``size`` canvas so that its centre of mass falls at pixel
    coordinates (size/2, size/2), where MNIST's centres of mass are (shifted by
    whole pixels, as MNIST was). Digits that fill their frame, such as USPS's,
    come out sized and placed like MNIST's.

    Parameters
    ----------
    images : array of shape (n, height, width, channels)
        Light ink on a dark background, values in [0, 1].
    size, box : int
    threshold : float
        Ink level that counts for the bounding box.

    Returns
    -------
    numpy.ndarray of shape (n, size, size, channels), float32.

    Examples
    --------
    >>> import numpy as np
    >>> bar = np.zeros((1, 16, 16, 1), "float32")
    >>> bar[0, :, 6:10] = 1.0                  # a 16x4 stroke filling the height
    >>> framed = frame_digits(bar)
    >>> ink = framed[0, ..., 0] > 0.25         # now 20 rows high, 5 wide plus soft edges, centred
    >>> np.flatnonzero(ink.any(axis=1))[[0, -1]].tolist(), np.flatnonzero(ink.any(axis=0))[[0, -1]].tolist()
    ([4, 23], [11, 16])
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or not len(images):
        raise DataError(f"frame_digits takes a batch of NHWC images, got an array of shape {images.shape}.")
    if not 0 < box <= size:
        raise DataError(f"box must be between 1 and size ({size}), got {box}.")
    ink = images.mean(axis=-1)
    has_ink = ink > threshold
    if not has_ink.any(axis=(1, 2)).all():
        blank = int(np.flatnonzero(~has_ink.any(axis=(1, 2)))[0])
        raise DataError(f"Image {blank} has no pixel above threshold={threshold}: nothing to frame.")
    height, width = ink.shape[1:]
    rows, cols = has_ink.any(axis=2), has_ink.any(axis=1)
    top, bottom = rows.argmax(axis=1), height - 1 - rows[:, ::-1].argmax(axis=1)
    left, right = cols.argmax(axis=1), width - 1 - cols[:, ::-1].argmax(axis=1)
    # A square around the bounding box, sampled at box x box points; outside is 0.
    half_side = (np.maximum(bottom - top, right - left) + 1) / 2.0
    scale = box / (2.0 * half_side)
    centre_y, centre_x = (top + bottom) / 2.0, (left + right) / 2.0
    span = half_side - 0.5 / scale
    squares = np.stack([centre_y - span, centre_x - span, centre_y + span, centre_x + span], axis=1)
    # Sampled from the images with a border of zeros, so edge pixels blend into the background.
    squares = (squares + 1.0) / np.array([height + 1, width + 1, height + 1, width + 1])
    bordered = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    boxes = squares.astype(np.float32)
    digits = tf.image.crop_and_resize(bordered, boxes, np.arange(len(images)), (box, box))
    margin = size - box
    sides = (margin // 2, margin - margin // 2)
    canvas = np.pad(digits.numpy(), ((0, 0), sides, sides, (0, 0)))
    # Move the centre of mass to the centre, by whole pixels.
    mass = canvas.mean(axis=-1)
    total = mass.sum(axis=(1, 2))
    grid = np.arange(size)
    shift_y = np.rint(size / 2.0 - (mass.sum(axis=2) @ grid) / total).astype(int)  # MNIST's centre: 14.0
    shift_x = np.rint(size / 2.0 - (mass.sum(axis=1) @ grid) / total).astype(int)
    framed = np.zeros_like(canvas)
    for i, (dy, dx) in enumerate(zip(shift_y, shift_x, strict=True)):
        framed[i] = _shifted(canvas[i], dy, dx)
    return np.clip(framed, 0.0, 1.0)


def pair_unpaired(dataset_a: tf.data.Dataset, dataset_b: tf.data.Dataset, *, batch_size: int = 1,
                  steps: int | None = None) -> tf.data.Dataset:
    """Zip two unpaired, unbatched image sets into batches of ``(image_a, image_b)``.

    An epoch lasts as long as the larger set; the smaller one repeats (and
    reshuffles, when it was built with ``shuffle=True``). Datasets that yield
    ``(image, label)`` contribute their images only.

    Parameters
    ----------
    dataset_a, dataset_b : tf.data.Dataset
        Unbatched sets, e.g. from ``load_images(..., batch_size=None)``.
    batch_size : int
    steps : int, optional
        Images per epoch from each side; needed when a set's size is unknown.

    Examples
    --------
    >>> a = load_images("digits", batch_size=None, limit=30)
    >>> b = load_images("digits", split="test", batch_size=None, image_size=16, limit=50)
    >>> pairs = pair_unpaired(a, b, batch_size=10)
    >>> len(list(pairs))
    5
    >>> [tuple(t.shape) for t in next(iter(pairs))]
    [(10, 8, 8, 1), (10, 16, 16, 1)]
    """
    sides = []
    for name, dataset in (("dataset_a", dataset_a), ("dataset_b", dataset_b)):
        if isinstance(dataset.element_spec, tuple):
            dataset = dataset.map(lambda image, *label: image)
        if dataset.element_spec.shape.rank != 3:
            raise DataError(
                f"{name} must yield single HWC images (build it with batch_size=None), "
                f"got elements of shape {dataset.element_spec.shape}."
            )
        sides.append(dataset)
    if steps is None:
        sizes = [int(d.cardinality()) for d in sides]
        if min(sizes) == 0:
            raise DataError("pair_unpaired got an empty dataset.")
        if min(sizes) < 0:
            raise DataError("A dataset's size is unknown: pass steps= to pair_unpaired.")
        steps = max(sizes)
    pairs = tf.data.Dataset.zip(tuple(d.repeat() for d in sides)).take(steps)
    return pairs.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def find_dataset(filename: str, env_var: str = "KERAS_BIGML_DATASETS") -> str | None:
    """Return the path of ``filename`` in the folders listed in ``$KERAS_BIGML_DATASETS``.

    The variable holds folders separated by ``os.pathsep``; returns None when the
    file is in none of them, so callers can skip cleanly.

    >>> find_dataset("no-such-file.npz") is None
    True
    """
    for folder in os.environ.get(env_var, "").split(os.pathsep):
        path = os.path.join(folder, filename)
        if folder and os.path.isfile(path):
            return path
    return None


def worker_count() -> int:
    """The number of workers (chief included) that ``TF_CONFIG`` names; 1 without it.

    >>> import os
    >>> worker_count() if "TF_CONFIG" not in os.environ else 1
    1
    """
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
        return max(1, sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")))
    except (ValueError, AttributeError, TypeError):
        return 1


def network_available(address: tuple[str, int] = TFDS_DOWNLOAD_HOST, timeout: float = 3.0) -> bool:
    """Return whether a TCP connection to ``address`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _open(source, options):
    """Dispatch on the kind of source; returns an `_Opened`."""
    if isinstance(source, (np.ndarray, tuple, list)):
        images, labels = source if isinstance(source, (tuple, list)) else (source, None)
        return _from_arrays(images, labels, "the given arrays", options)
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"Unsupported image source of type {type(source).__name__}: pass a name, "
            "a path or numpy arrays."
        )
    source = os.fspath(source)
    if source.startswith("tfds:"):
        return _from_tfds(source[len("tfds:"):], options)
    if source == "digits":
        images, labels = _digits(options.split)
        return _from_arrays(images, labels, "digits", options)
    if source.endswith(".npz"):
        images, labels = _npz(source, options.split)
        return _from_arrays(images, labels, source, options)
    if os.path.isdir(source):
        from keras_bigml.data import shards

        if shards.is_shard_directory(source):
            return shards.open_shards(source, options)
        return _from_folder(source, options)
    if os.path.exists(source):
        raise DataError(f"{source} is neither a .npz file nor an image folder.")
    if os.sep in source or "." in os.path.basename(source):
        raise DataError(f"No such file or folder: {source}")
    raise DataError(
        f"Unknown image dataset {source!r}: use one of {', '.join(BUILTIN_IMAGE_SETS)}, "
        "'tfds:NAME', a .npz path, an image folder, a shard directory or numpy arrays."
    )


def _from_arrays(images, labels, name, options):
    images = _validated_images(np.asarray(images), name)
    if labels is not None:
        labels = _validated_labels(labels, len(images), name)
    if options.limit is not None:
        images = images[: options.limit]
        labels = None if labels is None else labels[: options.limit]
    image_table = tf.constant(images)
    label_table = tf.constant(labels) if labels is not None and options.labels else None
    indices = tf.data.Dataset.range(len(images))
    if options.shuffle:
        # The whole index list, reshuffled each epoch: batches are uniform draws
        # whatever the order of the arrays, and the buffer holds 8 bytes per image.
        indices = indices.shuffle(len(images), seed=options.seed, reshuffle_each_iteration=True)

    def decode(index):
        return tf.gather(image_table, index), None if label_table is None else tf.gather(label_table, index)

    return _Opened(indices, decode, labels is not None)


def _validated_labels(labels, count, name):
    labels = np.asarray(labels)
    if labels.shape != (count,):
        raise DataError(
            f"{name}: expected one label per image ({count}), got labels of shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{name}: labels must be integers, got dtype {labels.dtype}.")
    return labels.astype(np.int32)


def _validated_images(images, name):
    """Check an image array and return it NHWC: uint8 for integer and bool images, else float32 in [0, 1]."""
    if images.size == 0:
        raise DataError(f"{name} contains no images.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{name}: expected images shaped (N, H, W) or (N, H, W, C) with C in 1, 3, 4; "
            f"got {images.shape}."
        )
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(images.dtype, np.integer):
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise DataError(f"{name}: integer images must lie in [0, 255], found [{low}, {high}].")
        return images.astype(np.uint8, copy=False)
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{name}: images must be numeric, got dtype {images.dtype}.")
    if not np.all(np.isfinite(images)):
        raise DataError(f"{name}: images contain NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise DataError(
            f"{name}: float images must lie in [0, 1], found [{low:g}, {high:g}] "
            "(pass uint8 for 0..255)."
        )
    return images.astype(np.float32, copy=False)


def _resized_uint8(image, image_size):
    """Resize one uint8 image (antialiased), rounding back to uint8 so that buffers stay small."""
    resized = tf.image.resize(image, image_size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def _resize_and_convert(images, image_size, channels):
    """Resize (antialiased) and convert channels; works on HWC or NHWC float tensors."""
    if image_size is not None and tuple(images.shape[-3:-1]) != image_size:
        images = tf.clip_by_value(tf.image.resize(images, image_size, antialias=True), 0.0, 1.0)
    source_channels = images.shape[-1]
    if source_channels == 4:
        images = images[..., :3]
        source_channels = 3
    if channels == 1 and source_channels == 3:
        images = tf.image.rgb_to_grayscale(images)
    elif channels == 3 and source_channels == 1:
        images = tf.image.grayscale_to_rgb(images)
    return images


def _digits(split):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(images))
    n_train = int(len(images) * _DIGITS_TRAIN_FRACTION)
    parts = {"train": order[:n_train], "test": order[n_train:], "all": np.arange(len(images))}
    if split not in parts:
        raise DataError(f"Unknown split {split!r} for digits: use one of {', '.join(parts)}.")
    return images[parts[split]], bunch.target[parts[split]]


def _npz(path, split):
    if not os.path.isfile(path):
        raise DataError(f"No such file: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is not a readable .npz archive ({error}).") from None
    with archive:
        keys = set(archive.files)
        splits = ("train", "test") if split == "all" else (split,)
        missing = [f"x_{s}" for s in splits if f"x_{s}" not in keys]
        if missing:
            raise DataError(
                f"{path} has no array {missing[0]!r} for split {split!r}; it holds "
                f"{', '.join(sorted(keys))} (expected the keras.datasets keys "
                "x_train, y_train, x_test, y_test)."
            )
        has_labels = all(f"y_{s}" in keys for s in splits)
        images = np.concatenate([_npz_array(archive, path, f"x_{s}") for s in splits])
        labels = np.concatenate([_npz_array(archive, path, f"y_{s}") for s in splits]) if has_labels else None
    return images, labels


def _npz_array(archive, path, key):
    """``archive[key]``, refusing object arrays: unpickling them could run any code."""
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise DataError(f"{path}: array {key!r} cannot be read ({error}).") from None
        raise DataError(
            f"{path}: array {key!r} holds Python objects, which load only by unpickling (that can run "
            "any code); keras_bigml reads numeric arrays only: save the images as a uint8 or float array."
        ) from None


def _from_folder(folder, options):
    folder, paths, labels, _ = _folder_files(folder, options.split)
    readable, shapes = _readable_images(paths, skip_bad_files=options.skip_bad_files, where=folder)
    if options.limit is not None and options.limit < len(readable):
        # A fixed random choice: the first files in folder order would be one class.
        chosen = np.sort(np.random.default_rng(0).permutation(len(readable))[: options.limit])
        readable, shapes = readable[chosen], shapes[chosen]
    paths = paths[readable]
    labels = None if labels is None else labels[readable]
    image_size = options.image_size or tuple(int(n) for n in shapes[0][:2])
    channels = options.channels or (1 if shapes[0][-1] == 1 else 3)
    same_size = bool(np.all(shapes[:, :2] == image_size))

    def decode_file(path, *label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        if same_size:
            image = tf.ensure_shape(image, (*image_size, channels))
        else:
            image.set_shape([None, None, channels])
            image = _resized_uint8(image, image_size)
        return (image, *label) if label else image

    want_labels = labels is not None and options.labels
    files = tf.data.Dataset.from_tensor_slices((paths, labels) if want_labels else paths)
    if options.shuffle:
        # The file list itself, so batches are mixed whatever the buffer size (a
        # buffer smaller than a class folder gives batches of a few classes).
        # Cached, one fixed shuffled order is kept and the buffer reshuffles it.
        files = files.shuffle(len(paths), seed=options.seed, reshuffle_each_iteration=not options.cache)
    images = files.map(decode_file, num_parallel_calls=tf.data.AUTOTUNE)
    if options.cache:
        images = _cached_and_shuffled(images, options)
    return _Opened(images, _pairs, labels is not None)


def _folder_files(folder, split):
    """``(folder used, image paths, labels or None, class names or None)`` of an image folder.

    Images directly in the folder are unlabelled; otherwise each sub-folder
    holding images is a class, in sorted order. A ``split`` sub-folder is used
    when there is one; its class indices then count the class folders of every
    split (``train``, ``test``, ``validation``), so that a class missing from
    one split does not shift the labels of the others.
    """
    root, in_split = folder, os.path.isdir(os.path.join(folder, split))
    if in_split:
        folder = os.path.join(folder, split)
    paths = sorted(_image_files(folder, recursive=False))
    class_names = _class_folders(folder)
    labels = None
    if not paths and class_names:
        if in_split:
            splits = [os.path.join(root, name) for name in {split, *FOLDER_SPLITS}]
            found = [_class_folders(path) for path in splits if os.path.isdir(path)]
            class_names = sorted(set().union(*found))
        labels = []
        for index, class_name in enumerate(class_names):
            class_folder = os.path.join(folder, class_name)
            found = sorted(_image_files(class_folder, recursive=True)) if os.path.isdir(class_folder) else []
            paths += found
            labels += [index] * len(found)
    if not paths:
        raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}.")
    labels = None if labels is None else np.asarray(labels, np.int32)
    return folder, np.asarray(paths), labels, class_names if labels is not None else None


def _class_folders(folder):
    """Sorted names of the sub-folders of ``folder`` that hold images."""
    return sorted(
        entry.name for entry in os.scandir(folder)
        if entry.is_dir() and _image_files(entry.path, recursive=True)
    )


def _readable_images(paths, *, skip_bad_files, where):
    """Decode every file once, in parallel; return the readable files' indices and (h, w, c) shapes.

    A file that does not decode is refused with a DataError naming it, or
    skipped with a SkippedFilesWarning that says how many were.
    """
    def shape(index, path):
        return index, tf.shape(tf.io.decode_image(tf.io.read_file(path), expand_animations=False))

    checked = (
        tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
        .map(shape, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(4096)
    )
    indices, shapes = [], []
    for batch_indices, batch_shapes in checked.as_numpy_iterator():
        indices.append(batch_indices)
        shapes.append(batch_shapes)
    indices = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    shapes = np.concatenate(shapes) if shapes else np.zeros((0, 3), np.int32)
    order = np.argsort(indices)
    indices, shapes = indices[order], shapes[order]
    bad = np.setdiff1d(np.arange(len(paths)), indices)
    if not len(bad):
        return indices, shapes
    first = paths[bad[0]]
    reason = _decode_failure(first)
    if not len(indices):
        raise DataError(
            f"None of the {len(paths)} image files in {where} can be read; the first, {first}: {reason}."
        )
    if not skip_bad_files:
        others = f" (and {len(bad) - 1} more files in {where})" if len(bad) > 1 else ""
        raise DataError(
            f"{first} is not a readable image ({reason}){others}: remove it, or pass skip_bad_files=True "
            "(--skip-bad-files) to skip unreadable files."
        )
    warnings.warn(
        f"Skipped {len(bad)} unreadable image file{'s' if len(bad) > 1 else ''} of {len(paths)} in {where} "
        f"(the first: {first}, {reason}).",
        SkippedFilesWarning,
        stacklevel=4,
    )
    return indices, shapes


def _decode_failure(path):
    """Why ``path`` does not decode, in a few words from TensorFlow's message."""
    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except tf.errors.OpError as error:
        return _op_error_reason(error)
    return "it could not be decoded"


def _op_error_reason(error):
    """A TensorFlow error's message without its function-node prefix and op suffix."""
    message = str(getattr(error, "message", error)).strip().splitlines()[0]
    message = message.split("}}")[-1].split(" [Op:")[0].strip()
    return message.rstrip(".") or type(error).__name__


def _image_files(folder, recursive):
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not recursive:
            break
    return found


def _from_tfds(name, options):
    import tensorflow_datasets as tfds

    builder, image_key, has_labels = _tfds_builder(name, options.data_dir)
    split = options.split if options.limit is None else f"{options.split}[:{options.limit}]"
    try:
        records = builder.as_dataset(
            split=split, shuffle_files=options.shuffle, read_config=tfds.ReadConfig(shuffle_seed=options.seed)
        )
    except (ValueError, KeyError) as error:
        raise DataError(f"TFDS dataset {name!r} has no split {options.split!r} ({error}).") from None
    shape = tuple(builder.info.features[image_key].shape)
    varying = None in shape[:2]
    if varying and options.image_size is None:
        raise DataError(f"TFDS dataset {name!r} holds images of different sizes: pass image_size=.")
    want_labels = has_labels and options.labels

    def pick(record):
        image = tf.cast(record[image_key], tf.uint8)
        if varying:
            image = _resized_uint8(image, options.image_size)
        return (image, tf.cast(record["label"], tf.int32)) if want_labels else image

    images = _cached_and_shuffled(records.map(pick, num_parallel_calls=tf.data.AUTOTUNE), options)
    return _Opened(images, _pairs, has_labels)


def _tfds_builder(name, data_dir):
    """``(prepared builder, image feature name, has labels)``, downloading only when online."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"Unknown TFDS dataset {name!r}.") from None
    if not builder.is_prepared():
        if not network_available():
            raise DownloadUnavailableError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and needs a "
                "download, but the network is unreachable: pass data_dir= with a prepared "
                "copy, or a .npz path or image folder instead."
            )
        builder.download_and_prepare()
    features = builder.info.features
    image_key = next((key for key in ("image", "img") if key in features), None)
    if image_key is None:
        raise DataError(f"TFDS dataset {name!r} has no 'image' feature.")
    return builder, image_key, "label" in features


def _normalize_size(image_size):
    if image_size is None:
        return None
    size = (image_size,) * 2 if isinstance(image_size, numbers.Integral) else tuple(np.ravel(image_size))
    if len(size) != 2 or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and 1 <= s <= MAX_IMAGE_SIDE for s in size
    ):
        raise ConfigError(
            f"image_size must be an int or (height, width) between 1 and {MAX_IMAGE_SIDE}, "
            f"got {image_size!r}."
        )
    return int(size[0]), int(size[1])


def _check_value_range(value_range):
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ConfigError(f"value_range must be two numbers (low, high), got {value_range!r}.") from None
    if not low < high or not np.isfinite([low, high]).all():
        raise ConfigError(f"value_range must be (low, high) with finite low < high, got {value_range!r}.")
    return low, high


def _check_count(name, value, allow_none=False):
    """Refuse a count that is not a whole number of at least 1 (bools and floats included)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}.")


def _shifted(image, dy, dx):
    """``image`` moved down ``dy`` and right ``dx`` pixels, zeros coming in."""
    height, width = image.shape[:2]
    out = np.zeros_like(image)
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = (
        image[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
    )
    return out


def _describe(source):
    return repr(source) if isinstance(source, (str, os.PathLike)) else "(arrays)"
