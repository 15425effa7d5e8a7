import os
import socket

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_bigml.data import images as images_module
from keras_bigml.data import find_dataset, frame_digits, load_images, network_available, pair_unpaired
from keras_bigml.errors import DataError, DownloadUnavailableError


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
        images, labels = first_batch(load_images(path, split="test", labels=True, batch_size=100, shuffle=False))
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
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        load_images(channels=2)
    with pytest.raises(DataError, match="image_size"):
        load_images(image_size=(0, 4))
    with pytest.raises(DataError, match="low < high"):
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
    np.testing.assert_array_equal(
        first_batch(seeded), first_batch(load_images(limit=64, batch_size=64, shuffle=False, binarize=True, seed=5))
    )


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
def test_frame_digits_fits_the_ink_into_the_box_keeping_its_aspect_and_centres_its_mass(top, left, height, width):
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
    assert np.allclose((ink.sum(axis=1) @ grid / ink.sum(), ink.sum(axis=0) @ grid / ink.sum()), 14.0, atol=0.5)
    rows = np.flatnonzero((ink > 0.5).any(axis=1))
    assert rows.min() > 4  # pushed down from where a centred 20x20 box would start
