import json

import numpy as np
import pytest
from PIL import Image

from keras_bigml.data import SkippedFilesWarning, load_images
from keras_bigml.errors import ConfigError
from keras_bigml.workflows.sharding import shard


def count(dataset):
    return sum(len(batch) for batch in dataset)


def test_shard_the_mnist_subset_and_read_every_split_back(mnist_path, tmp_path):
    result = shard(mnist_path, tmp_path / "mnist", progress=False)
    assert result.records == {"train": 22_699, "test": 10_000}
    assert result.shards == {"train": 16, "test": 16} and result.encoding == "raw"
    assert result.image_shape == (28, 28, 1) and result.skipped_files == 0
    assert result.bytes > 32_699 * 784
    manifest = json.loads((tmp_path / "mnist" / "manifest.json").read_text())
    assert manifest["num_classes"] == 10 and manifest["source"] == mnist_path
    assert count(load_images(tmp_path / "mnist", batch_size=1024)) == 22_699
    assert count(load_images(tmp_path / "mnist", split="test", batch_size=1024)) == 10_000
    with np.load(mnist_path) as archive:
        expected = np.bincount(archive["y_test"], minlength=10)
    labels = np.concatenate([y for _, y in load_images(tmp_path / "mnist", split="test", labels=True,
                                                       batch_size=2048).as_numpy_iterator()])
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), expected)


def test_result_counts_skipped_files_and_refuses_to_overwrite(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (4, 4), 50 * i).save(tmp_path / "photos" / label / f"{i}.png")
    (tmp_path / "photos" / "b" / "bad.png").write_bytes(b"no image")
    with pytest.warns(SkippedFilesWarning, match="Skipped 1 unreadable image file"):
        result = shard(tmp_path / "photos", tmp_path / "s", skip_bad_files=True, num_shards=2, progress=False)
    assert result.records == {"train": 6} and result.skipped_files == 1 and result.shards == {"train": 2}
    assert result.images_per_second > 0
    with pytest.raises(ConfigError, match="already holds shards"):
        shard(tmp_path / "photos", tmp_path / "s", skip_bad_files=True, progress=False)
