import os
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_bigml.data import (
    find_dataset,
    frame_digits,
    load_images,
    network_available,
    pair_unpaired,
    without_autotuning,
)
from keras_bigml.data import images as images_module
from keras_bigml.data.images import SkippedFilesWarning, count_classes
from keras_bigml.errors import ConfigError, DataError, DownloadUnavailableError


def first_batch(dataset):
    return next(iter(dataset))


def write_npz(path, n_train=20, n_test=10, size=6):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        y_train=rng.integers(0, 3, n_train, dtype=np.uint8),
        x_test=rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
        y_test=rng.integers(0, 3, n_test, dtype=np.uint8),
    )
    return path


def write_png(path, value, size=(5, 7), mode="L"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, size[::-1], value if mode == "L" else (value,) * 3).save(path)


class TestDigits:
    def test_default_is_train_split_of_bundled_digits_in_unit_range(self):
        batch = first_batch(load_images(batch_size=2000, shuffle=False))
        assert batch.shape == (1437, 8, 8, 1)
        assert batch.dtype == tf.float32
        assert 0.0 == float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) == 1.0

    def test_train_and_test_splits_are_disjoint_and_cover_all(self):
        train = first_batch(load_images(batch_size=2000, shuffle=False)).numpy()
        test = first_batch(load_images(split="test", batch_size=2000, shuffle=False)).numpy()
        assert len(train) + len(test) == 1797
        train_rows = {row.tobytes() for row in train}
        assert sum(row.tobytes() in train_rows for row in test) < 5  # the set has a few duplicates

    def test_value_range_size_and_channels(self):
        batch = first_batch(load_images(image_size=16, channels=3, value_range=(-1, 1), batch_size=4))
        assert batch.shape == (4, 16, 16, 3)
        assert float(tf.reduce_min(batch)) >= -1.0 and float(tf.reduce_min(batch)) < -0.99
        np.testing.assert_allclose(batch[..., 0], batch[..., 2])

    def test_labels_are_int32_and_match_images(self):
        images, labels = first_batch(load_images(labels=True, batch_size=2000, shuffle=False))
        assert labels.dtype == tf.int32 and set(labels.numpy()) == set(range(10))
        from sklearn.datasets import load_digits

        bunch = load_digits()
        index = int(np.argmin(np.abs(bunch.images / 16.0 - images[0, ..., 0].numpy()).sum((1, 2))))
        assert bunch.target[index] == labels[0]

    def test_seeded_shuffle_is_reproducible_and_reshuffles_each_epoch(self):
        dataset = load_images(batch_size=8, seed=3)
        first, again = first_batch(dataset), first_batch(dataset)
        replay = first_batch(load_images(batch_size=8, seed=3))
        np.testing.assert_array_equal(first, replay)
        assert not np.array_equal(first, again)

    def test_limit_batching_and_drop_remainder(self):
        assert [len(b) for b in load_images(limit=10, batch_size=4)] == [4, 4, 2]
        assert [len(b) for b in load_images(limit=10, batch_size=4, drop_remainder=True)] == [4, 4]

    def test_binarize_draws_new_binary_pixels_each_epoch(self):
        dataset = load_images(limit=64, batch_size=64, shuffle=False, binarize=True)
        first, second = first_batch(dataset).numpy(), first_batch(dataset).numpy()
        assert set(np.unique(first)) == {0.0, 1.0}
        assert not np.array_equal(first, second)
        original = first_batch(load_images(limit=64, batch_size=64, shuffle=False)).numpy()
        assert abs(first.mean() - original.mean()) < 0.02

    def test_unbatched_yields_single_images(self):
        assert first_batch(load_images(batch_size=None)).shape == (8, 8, 1)


class TestNpz:
    def test_loads_keras_dataset_keys_by_split(self, tmp_path):
        path = write_npz(tmp_path / "set.npz")
        images, labels = first_batch(
            load_images(path, split="test", labels=True, batch_size=100, shuffle=False)
        )
        with np.load(path) as archive:
            np.testing.assert_allclose(images[..., 0], archive["x_test"] / 255.0, rtol=1e-6)
            np.testing.assert_array_equal(labels, archive["y_test"])

    def test_all_split_concatenates(self, tmp_path):
        path = write_npz(tmp_path / "set.npz")
        assert len(first_batch(load_images(path, split="all", batch_size=100))) == 30

    def test_real_mnist_subset(self, mnist_path):
        images, labels = first_batch(load_images(mnist_path, labels=True, batch_size=32))
        assert images.shape == (32, 28, 28, 1) and labels.dtype == tf.int32

    def test_missing_key_names_what_the_file_holds(self, tmp_path):
        np.savez(tmp_path / "odd.npz", pictures=np.zeros((2, 4, 4)))
        with pytest.raises(DataError, match="no array 'x_train'.*pictures"):
            load_images(tmp_path / "odd.npz")

    def test_missing_file_and_not_an_archive(self, tmp_path):
        with pytest.raises(DataError, match="No such file"):
            load_images(tmp_path / "absent.npz")
        (tmp_path / "bad.npz").write_text("not a zip")
        with pytest.raises(DataError, match="not a readable .npz"):
            load_images(tmp_path / "bad.npz")


class TestArrays:
    def test_uint8_images_scale_to_unit_range(self):
        images = np.full((3, 4, 4), 255, np.uint8)
        assert float(tf.reduce_min(first_batch(load_images(images)))) == 1.0

    def test_images_with_labels(self):
        images, labels = first_batch(
            load_images((np.zeros((3, 4, 4, 3), np.float32), [0, 1, 2]), labels=True, shuffle=False)
        )
        assert images.shape == (3, 4, 4, 3) and list(labels.numpy()) == [0, 1, 2]

    @pytest.mark.parametrize(
        "images, message",
        [
            (np.zeros((0, 4, 4)), "contains no images"),
            (np.full((2, 4, 4), np.nan, np.float32), "NaN"),
            (np.full((2, 4, 4), 2.0, np.float32), r"must lie in \[0, 1\]"),
            (np.full((2, 4, 4), 300, np.int32), r"must lie in \[0, 255\]"),
            (np.zeros((2, 4, 4, 2)), "expected images shaped"),
            (np.zeros(5), "expected images shaped"),
            (np.full((2, 4, 4), "a"), "must be numeric"),
        ],
    )
    def test_bad_images_get_a_clear_error(self, images, message):
        with pytest.raises(DataError, match=message):
            load_images(images)

    def test_label_count_and_type_are_checked(self):
        with pytest.raises(DataError, match="one label per image"):
            load_images((np.zeros((3, 4, 4)), [0, 1]), labels=True)
        with pytest.raises(DataError, match="labels must be integers"):
            load_images((np.zeros((2, 4, 4)), [0.5, 1.0]), labels=True)

    def test_labels_requested_from_unlabelled_source(self):
        with pytest.raises(DataError, match="has no labels"):
            load_images(np.zeros((2, 4, 4)), labels=True)


class TestFolder:
    def test_class_subfolders_give_sorted_labels(self, tmp_path):
        write_png(tmp_path / "cat" / "a.png", 0)
        write_png(tmp_path / "dog" / "b.png", 255)
        write_png(tmp_path / "dog" / "c.png", 255)
        images, labels = first_batch(load_images(tmp_path, labels=True, shuffle=False))
        assert images.shape == (3, 5, 7, 1)
        assert list(labels.numpy()) == [0, 1, 1]
        assert float(images[0].numpy().max()) == 0.0 and float(images[1].numpy().min()) == 1.0

    def test_flat_folder_split_subfolder_resize_and_rgb(self, tmp_path):
        write_png(tmp_path / "train" / "x.png", 128, mode="RGB")
        write_png(tmp_path / "train" / "y.png", 64, size=(9, 9))
        images = first_batch(load_images(tmp_path, image_size=4, channels=3, shuffle=False))
        assert images.shape == (2, 4, 4, 3)
        np.testing.assert_allclose(images[1], 64 / 255.0, atol=1e-5)

    def test_a_class_missing_from_one_split_keeps_every_label(self, tmp_path):
        for split, classes in (("train", ("ant", "bee", "cat")), ("test", ("ant", "cat"))):
            for name in classes:
                write_png(tmp_path / split / name / "x.png", 0)
        _, labels = first_batch(load_images(tmp_path, split="test", labels=True, shuffle=False))
        assert list(labels.numpy()) == [0, 2]  # cat is class 2 in both splits, not 1 in test

    def test_empty_folder(self, tmp_path):
        with pytest.raises(DataError, match="No images"):
            load_images(tmp_path)


class TestTfds:
    def test_loads_mocked_mnist_with_labels(self, monkeypatch):
        monkeypatch.setattr(images_module, "network_available", lambda *a, **k: True)
        with tfds.testing.mock_data(num_examples=12):
            dataset = load_images("tfds:mnist", labels=True, batch_size=5, image_size=8)
            images, labels = first_batch(dataset)
        assert images.shape == (5, 8, 8, 1) and labels.dtype == tf.int32
        assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0

    def test_offline_download_fails_fast_with_one_sentence(self, monkeypatch, tmp_path):
        monkeypatch.setattr(images_module, "network_available", lambda *a, **k: False)
        with pytest.raises(DownloadUnavailableError, match="needs a download.*data_dir="):
            load_images("tfds:mnist", data_dir=str(tmp_path))

    def test_unknown_name(self):
        with pytest.raises(DataError, match="Unknown TFDS dataset 'no_such_set_xyz'"):
            load_images("tfds:no_such_set_xyz")


def test_unknown_name_and_missing_path_and_bad_options():
    with pytest.raises(DataError, match="Unknown image dataset 'mnistt'"):
        load_images("mnistt")
    with pytest.raises(DataError, match="No such file or folder"):
        load_images("some/where/images")
    with pytest.raises(ConfigError, match="channels must be 1"):
        load_images(channels=2)
    with pytest.raises(ConfigError, match="image_size"):
        load_images(image_size=(0, 4))
    with pytest.raises(ConfigError, match="low < high"):
        load_images(value_range=(1, 0))


def test_pair_unpaired_lasts_as_long_as_the_larger_set():
    a = load_images(limit=7, batch_size=None, labels=True)
    b = load_images(split="test", limit=3, batch_size=None, image_size=4)
    batches = list(pair_unpaired(a, b, batch_size=2))
    assert [len(x) for x, _ in batches] == [2, 2, 2, 1]
    assert batches[0][0].shape[1:] == (8, 8, 1) and batches[0][1].shape[1:] == (4, 4, 1)
    b_images = np.concatenate([y for _, y in batches])
    assert len({row.tobytes() for row in b_images}) == 3


def test_pair_unpaired_rejects_batched_input():
    with pytest.raises(DataError, match="batch_size=None"):
        pair_unpaired(load_images(limit=4), load_images(limit=4, batch_size=None))


def test_find_dataset_searches_the_environment_folders(tmp_path, monkeypatch):
    (tmp_path / "x.npz").write_bytes(b"")
    monkeypatch.setenv("KERAS_BIGML_DATASETS", os.pathsep.join(["/nonexistent", str(tmp_path)]))
    assert find_dataset("x.npz") == str(tmp_path / "x.npz")
    assert find_dataset("y.npz") is None


def test_network_available_tells_open_from_closed_ports():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert network_available(("127.0.0.1", port), timeout=1)
    server.close()
    assert not network_available(("127.0.0.1", port), timeout=1)


def test_binarization_changes_across_epochs_even_with_a_global_seed():
    import keras

    keras.utils.set_random_seed(0)
    dataset = load_images(limit=64, batch_size=64, shuffle=False, binarize=True)
    assert not np.array_equal(first_batch(dataset), first_batch(dataset))
    seeded = load_images(limit=64, batch_size=64, shuffle=False, binarize=True, seed=5)
    again = load_images(limit=64, batch_size=64, shuffle=False, binarize=True, seed=5)
    np.testing.assert_array_equal(first_batch(seeded), first_batch(again))


@pytest.mark.large
def test_random_jitter_crops_and_flips_anew_each_epoch():
    from keras_bigml.data import random_jitter

    base = np.zeros((1, 8, 8), np.float32)
    base[0, :, :2] = 1.0  # a bright band on the left
    jittered = random_jitter(load_images(base, batch_size=None, shuffle=False), seed=0)
    epochs = [next(iter(jittered)).numpy()[..., 0] for _ in range(12)]
    assert all(image.shape == (8, 8) for image in epochs)
    assert len({image.tobytes() for image in epochs}) > 1  # new draws every epoch
    bright_left = [image[:, :4].sum() > image[:, 4:].sum() for image in epochs]
    assert any(bright_left) and not all(bright_left)  # some flipped, some not
    still = random_jitter(load_images(base, batch_size=None, shuffle=False), enlarge=1.0, flip=False, seed=0)
    np.testing.assert_allclose(next(iter(still)).numpy()[..., 0], base[0], atol=1e-6)
    with pytest.raises(DataError, match="single images"):
        random_jitter(load_images(base, batch_size=1))


@pytest.mark.parametrize("top, left, height, width", [(0, 0, 16, 8), (9, 2, 6, 3), (3, 4, 4, 12)])
def test_frame_digits_fits_the_ink_into_the_box_keeping_aspect_and_centres_its_mass(top, left, height, width):
    digits = np.zeros((2, 16, 16, 3), np.float32)
    digits[:, top : top + height, left : left + width] = 1.0
    framed = frame_digits(digits)
    assert framed.shape == (2, 28, 28, 3)
    ink = framed[0, ..., 0]
    rows, cols = np.nonzero(ink > 0.5)
    framed_height, framed_width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    scale = 20 / max(height, width)
    assert abs(framed_height - height * scale) <= 1 and abs(framed_width - width * scale) <= 1
    grid = np.arange(28)
    centre = (ink.sum(axis=1) @ grid / ink.sum(), ink.sum(axis=0) @ grid / ink.sum())
    assert np.allclose(centre, 14.0, atol=0.5)  # where MNIST's centres of mass are


def test_frame_digits_names_bad_input():
    digits = np.zeros((3, 16, 16, 1), np.float32)
    digits[0, 4:8, 4:8] = 1.0
    digits[2, 4:8, 4:8] = 1.0
    with pytest.raises(DataError, match="Image 1 has no pixel above"):
        frame_digits(digits)
    with pytest.raises(DataError, match="NHWC"):
        frame_digits(digits[..., 0])
    with pytest.raises(DataError, match="box must be"):
        frame_digits(digits[:1], box=30)


def test_frame_digits_centres_the_mass_not_the_box():
    seven = np.zeros((1, 16, 16, 1), np.float32)
    seven[0, :3, :] = 1.0  # the bar: most of the ink is at the top
    seven[0, :, 13:] = 1.0
    ink = frame_digits(seven)[0, ..., 0]
    grid = np.arange(28)
    centre = (ink.sum(axis=1) @ grid / ink.sum(), ink.sum(axis=0) @ grid / ink.sum())
    assert np.allclose(centre, 14.0, atol=0.5)
    rows = np.flatnonzero((ink > 0.5).any(axis=1))
    assert rows.min() > 4  # pushed down from where a centred 20x20 box would start


class TestRefusals:
    """Input that used to pass silently or end in a traceback is refused with one sentence."""

    def test_npz_object_array_is_refused_without_unpickling(self, tmp_path):
        marker = tmp_path / "payload-ran"

        class Payload:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        path = tmp_path / "evil.npz"
        np.savez(path, x_train=np.array([Payload()], dtype=object), y_train=np.zeros(1, np.uint8))
        assert not marker.exists()
        with pytest.raises(DataError, match=r"evil\.npz: array 'x_train' holds Python objects") as error:
            load_images(path)
        assert "\n" not in str(error.value)
        assert not marker.exists()
        with np.load(path, allow_pickle=True) as archive:  # the payload is real: unpickling runs it
            archive["x_train"]
        assert marker.exists()

    def test_corrupt_image_is_named_or_skipped_and_counted(self, tmp_path):
        for i in range(3):
            write_png(tmp_path / "cat" / f"{i}.png", 10 * i)
        write_png(tmp_path / "dog" / "good.png", 200)
        (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        (tmp_path / "dog" / "text.jpg").write_text("not a picture")
        refusal = r"broken\.png is not a readable image .*and 1 more.*skip_bad_files=True"
        with pytest.raises(DataError, match=refusal):
            load_images(tmp_path, labels=True)
        with pytest.warns(SkippedFilesWarning, match=r"Skipped 2 unreadable image files of 6 .*broken\.png"):
            dataset = load_images(tmp_path, labels=True, skip_bad_files=True, shuffle=False)
        images, labels = first_batch(dataset)
        assert list(labels.numpy()) == [0, 0, 0, 1]
        assert float(images[-1].numpy().min()) == pytest.approx(200 / 255)

    def test_a_folder_of_only_bad_files(self, tmp_path):
        (tmp_path / "a.png").write_bytes(b"junk")
        with pytest.raises(DataError, match="None of the 1 image files"):
            load_images(tmp_path, skip_bad_files=True)

    @pytest.mark.parametrize("option, value", [
        ("batch_size", 0), ("batch_size", -3), ("batch_size", 2.5), ("batch_size", True),
        ("limit", 0), ("limit", -1), ("shuffle_buffer", 0),
        ("image_size", 0), ("image_size", -28), ("image_size", 2_000_000), ("image_size", (28, 0)),
        ("image_size", 12.5), ("channels", 2), ("channels", 4), ("channels", 0),
        ("value_range", (0, float("nan"))),
    ])
    def test_out_of_range_numbers_are_config_errors_naming_the_value(self, option, value):
        with pytest.raises(ConfigError, match=option) as error:
            load_images("digits", **{option: value})
        assert repr(value) in str(error.value) or str(value) in str(error.value)


class TestCountClasses:
    def test_counts_from_arrays_and_datasets(self):
        assert count_classes(np.array([0, 1, 2, 1], np.uint8)) == 3
        assert count_classes([0.0, 1.0, 4.0]) == 5  # whole floats are labels
        ds = load_images((np.zeros((6, 4, 4)), [0, 1, 2, 2, 1, 0]), labels=True, batch_size=4)
        assert count_classes(ds) == 3
        assert count_classes(ds.unbatch().map(lambda x, y: y)) == 3
        assert count_classes([0, 1], num_classes=10) == 10

    @pytest.mark.parametrize("labels, message", [
        ([0, 1, -1], "negative label -1"),
        ([0, 0.5, 1], "must be integers, found the label 0.5"),
        (["a", "b"], "must be integers"),
        ([], "no labels"),
        (list(range(10)) * 3 + [2_000_000], r"11 distinct values but the largest is 2000000.*0\.\.K-1"),
        ([0, 9], "2 distinct values but the largest is 9"),
    ])
    def test_labels_that_are_not_classes_are_refused(self, labels, message):
        with pytest.raises(DataError, match=message):
            count_classes(labels)

    def test_num_classes_smaller_than_the_data_names_both_numbers(self):
        too_few = r"num_classes=10 is smaller than the data's largest label \+ 1 \(13\)"
        with pytest.raises(ConfigError, match=too_few):
            count_classes([0, 3, 12], num_classes=10)
        with pytest.raises(ConfigError, match="num_classes must be"):
            count_classes([0, 1], num_classes=0)
        assert count_classes([0, 9], num_classes=10) == 10  # sparse labels are fine when the count is given

    def test_a_dataset_of_float_labels_with_fractions(self):
        ds = tf.data.Dataset.from_tensor_slices((np.zeros((2, 2)), np.array([0.0, 1.5])))
        with pytest.raises(DataError, match="found the label 1.5"):
            count_classes(ds)


def batch_mixing(label_batches):
    """Mean number of distinct classes and mean size of the largest class, per batch."""
    return (np.mean([len(np.unique(b)) for b in label_batches]),
            np.mean([np.bincount(b).max() for b in label_batches]))


def uniform_mixing(labels, batch_size, batches=2000, seed=0):
    """The same statistics for batches drawn uniformly (without replacement) from ``labels``."""
    rng = np.random.default_rng(seed)
    return batch_mixing([rng.choice(labels, batch_size, replace=False) for _ in range(batches)])


class TestMixing:
    """Batches are as mixed as uniform draws, whatever the order of the source and the buffer size."""

    @pytest.fixture(scope="class")
    def class_folders(self, tmp_path_factory):
        root = tmp_path_factory.mktemp("classes")
        rng = np.random.default_rng(0)
        for label in range(10):
            (root / f"class{label}").mkdir()
            for i in range(300):  # each class folder 6x the shuffle buffer below
                pixels = rng.integers(0, 256, (4, 4), dtype=np.uint8)
                Image.fromarray(pixels).save(root / f"class{label}" / f"{i}.png")
        return root

    @pytest.mark.large
    def test_class_folders_larger_than_the_buffer_give_uniformly_mixed_batches(self, class_folders):
        dataset = load_images(class_folders, labels=True, batch_size=64, shuffle_buffer=50, seed=0)
        batches = [y.numpy() for _, y in dataset.take(20)]
        distinct, largest = batch_mixing(batches)
        uniform_distinct, uniform_largest = uniform_mixing(np.repeat(np.arange(10), 300), 64)
        assert distinct > uniform_distinct - 0.15 and largest < uniform_largest + 1.0
        again = [y.numpy() for _, y in dataset.take(20)]  # a new order each epoch
        assert not all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
        replay = load_images(class_folders, labels=True, batch_size=64, seed=0)
        assert all(np.array_equal(a, y) for a, (_, y) in zip(batches, replay.take(20), strict=True))

    @pytest.mark.large
    def test_cached_folders_are_mixed_too(self, class_folders):
        dataset = load_images(class_folders, labels=True, batch_size=64, shuffle_buffer=50, seed=0,
                              cache=True)
        epochs = [[y.numpy() for _, y in dataset] for _ in range(2)]  # whole epochs: the cache fills
        distinct, _ = batch_mixing(epochs[1])
        assert distinct > uniform_mixing(np.repeat(np.arange(10), 300), 64)[0] - 0.15
        assert not all(np.array_equal(a, b) for a, b in zip(*epochs, strict=True))

    def test_a_limited_folder_is_a_mixed_choice_of_files(self, class_folders):
        _, labels = first_batch(load_images(class_folders, labels=True, limit=200, batch_size=200))
        assert len(np.unique(labels.numpy())) == 10

    def test_class_sorted_arrays_give_uniformly_mixed_batches(self):
        labels = np.repeat(np.arange(10), 500)
        images = np.zeros((5000, 2, 2), np.uint8)
        dataset = load_images((images, labels), labels=True, batch_size=64, shuffle_buffer=50, seed=1)
        distinct, largest = batch_mixing([y.numpy() for _, y in dataset.take(30)])
        uniform_distinct, uniform_largest = uniform_mixing(labels, 64)
        assert distinct > uniform_distinct - 0.15 and largest < uniform_largest + 1.0


class TestBuffers:
    """What sits in shuffle buffers and caches is uint8 pixels, indices or encoded records, never float32."""

    def elements(self, source, **options):
        return images_module._open(source, images_module._ReadOptions(**options)).elements.element_spec

    def test_folders_and_tfds_buffer_uint8_and_arrays_indices(self, tmp_path, monkeypatch):
        write_png(tmp_path / "a" / "x.png", 10, size=(6, 6))
        write_png(tmp_path / "a" / "y.png", 20, size=(9, 9))  # resized on reading, still uint8
        spec = self.elements(tmp_path, image_size=(6, 6))
        assert spec.dtype == tf.uint8 and spec.shape == (6, 6, 1)
        assert self.elements(np.zeros((4, 3, 3), np.float32)).dtype == tf.int64
        assert self.elements("digits", labels=True).dtype == tf.int64
        monkeypatch.setattr(images_module, "network_available", lambda *a, **k: True)
        with tfds.testing.mock_data(num_examples=4):
            spec, _ = self.elements("tfds:mnist", labels=True)
        assert spec.dtype == tf.uint8

    def test_uint8_sources_stay_uint8_until_the_batch_is_converted(self):
        images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
        opened = images_module._open(images, images_module._ReadOptions(shuffle=False))
        stored, _ = opened.decode(tf.constant([0, 1], tf.int64))
        assert stored.dtype == tf.uint8
        batch = first_batch(load_images(images, shuffle=False))
        np.testing.assert_allclose(batch[..., 0], images / 255.0, rtol=1e-6)


def test_without_autotuning_turns_it_off_and_keeps_the_elements_and_other_options():
    sharded = tf.data.Options()
    sharded.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.range(5).batch(2).with_options(sharded)
    steady = without_autotuning(dataset)
    assert steady.options().autotune.enabled is False
    assert steady.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    assert [batch.tolist() for batch in steady.as_numpy_iterator()] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("choice", [True, False])
def test_without_autotuning_leaves_a_dataset_that_chooses(choice):
    chosen = tf.data.Options()
    chosen.autotune.enabled = choice
    dataset = tf.data.Dataset.range(3).with_options(chosen)
    assert without_autotuning(dataset) is dataset
