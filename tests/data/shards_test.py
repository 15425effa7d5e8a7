import hashlib
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_bigml.data import load_images
from keras_bigml.data import shards as shards_module
from keras_bigml.data.images import SkippedFilesWarning
from keras_bigml.data.shards import ShardWriter, is_shard_directory, read_manifest, write_shards
from keras_bigml.errors import ConfigError, DataError


def unique_images(count, size=4, channels=1, seed=0):
    """uint8 images that all differ (the first pixels spell the index), with labels sorted by class."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, size, size, channels), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count) % 256
    images[:, 0, 1, 0] = np.arange(count) // 256
    labels = np.sort(rng.integers(0, 5, count)).astype(np.int32)  # class by class, as folders list them
    return images, labels


def tf_config(workers):
    cluster = {"worker": [f"localhost:{12000 + i}" for i in range(workers)]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})


def as_uint8(batch):
    return np.rint(np.asarray(batch) * 255).astype(np.uint8)


def read_all(directory, **options):
    images, labels = [], []
    for x, y in load_images(directory, labels=True, batch_size=1000, **options):
        images.append(as_uint8(x))
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def by_content(images, labels):
    return sorted(zip((image.tobytes() for image in images), labels.tolist(), strict=True))


@pytest.fixture
def arrays():
    return unique_images(300)


@pytest.fixture
def shard_dir(tmp_path, arrays):
    write_shards(arrays, tmp_path / "shards", progress=False)
    return tmp_path / "shards"


class TestRoundTrip:
    @pytest.mark.parametrize("encoding", ["raw", "png"])
    def test_images_and_labels_come_back_exactly(self, tmp_path, arrays, encoding):
        manifest = write_shards(arrays, tmp_path / "s", encoding=encoding, progress=False)
        assert manifest["encoding"] == encoding
        images, labels = read_all(tmp_path / "s")
        assert images.shape == (300, 4, 4, 1)
        assert by_content(images, labels) == by_content(*arrays)

    def test_jpeg_is_close_and_default_encoding_follows_the_size(self, tmp_path):
        smooth = np.repeat(np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None], 80, axis=0)
        photos = np.stack([np.roll(smooth, k, axis=1) for k in range(3)]).repeat(3, -1)
        manifest = write_shards(photos, tmp_path / "big", progress=False)
        assert manifest["encoding"] == "png"  # 80x80 is above the raw limit of 64x64 pixels
        write_shards(photos, tmp_path / "jpeg", encoding="jpeg", progress=False)
        back = as_uint8(next(iter(load_images(tmp_path / "jpeg", batch_size=3)))).astype(int)
        assert back.shape == (3, 80, 80, 3)
        errors = np.abs(back[:, None] - photos[None].astype(int)).mean(axis=(2, 3, 4))
        assert sorted(errors.argmin(axis=1)) == [0, 1, 2] and errors.min(axis=1).max() < 3
        assert write_shards(photos[:, :8, :8], tmp_path / "small", progress=False)["encoding"] == "raw"

    def test_every_split_of_an_npz_and_one_split_read_back(self, tmp_path):
        rng = np.random.default_rng(1)
        np.savez(tmp_path / "set.npz", x_train=rng.integers(0, 256, (40, 6, 6), dtype=np.uint8),
                 y_train=rng.integers(0, 3, 40), x_test=rng.integers(0, 256, (24, 6, 6), dtype=np.uint8),
                 y_test=rng.integers(0, 3, 24))
        manifest = write_shards(tmp_path / "set.npz", tmp_path / "s", progress=False)
        records = {name: split["records"] for name, split in manifest["splits"].items()}
        assert records == {"train": 40, "test": 24}
        with np.load(tmp_path / "set.npz") as archive:
            for split in ("train", "test"):
                images, labels = read_all(tmp_path / "s", split=split)
                assert by_content(images, labels) == by_content(archive[f"x_{split}"][..., None],
                                                                archive[f"y_{split}"])
        assert len(read_all(tmp_path / "s", split="all")[0]) == 64
        with pytest.raises(DataError, match="no split 'validation'; they hold train, test"):
            load_images(tmp_path / "s", split="validation")

    def test_resize_and_channels_at_writing_and_at_reading(self, tmp_path, arrays):
        write_shards(arrays, tmp_path / "s", image_size=8, channels=3, progress=False)
        assert read_manifest(tmp_path / "s")["image_shape"] == [8, 8, 3]
        batch = next(iter(load_images(tmp_path / "s", image_size=6, channels=1, batch_size=5)))
        assert batch.shape == (5, 6, 6, 1)

    def test_unbatched_and_value_range(self, shard_dir):
        image = next(iter(load_images(shard_dir, batch_size=None, value_range=(-1, 1))))
        assert image.shape == (4, 4, 1) and float(tf.reduce_min(image)) >= -1.0
        assert int(load_images(shard_dir, batch_size=None).cardinality()) == 300

    def test_splits_with_and_without_labels_are_refused(self, tmp_path):
        rng = np.random.default_rng(0)
        np.savez(tmp_path / "odd.npz", x_train=rng.integers(0, 256, (8, 4, 4), dtype=np.uint8),
                 y_train=np.arange(8) % 2, x_test=rng.integers(0, 256, (8, 4, 4), dtype=np.uint8))
        refusal = "Split 'test' of .*odd.npz lacks labels and split 'train' does not"
        with pytest.raises(DataError, match=refusal):
            write_shards(tmp_path / "odd.npz", tmp_path / "s", progress=False)
        manifest = write_shards(tmp_path / "odd.npz", tmp_path / "s", splits=["test"], progress=False)
        assert manifest["labels"] is False

    def test_a_tfds_set(self, tmp_path, monkeypatch):
        import tensorflow_datasets as tfds

        monkeypatch.setattr(shards_module._images, "network_available", lambda *a, **k: True)
        with tfds.testing.mock_data(num_examples=20):
            # The mock has no split list of its own: name the splits.
            manifest = write_shards("tfds:mnist", tmp_path / "s", splits=["train", "test"], num_shards=4,
                                    progress=False)
        assert manifest["class_names"] == [str(i) for i in range(10)]
        assert manifest["image_shape"] == [28, 28, 1]
        records = {name: split["records"] for name, split in manifest["splits"].items()}
        assert records == {"train": 20, "test": 20}
        assert len(read_all(tmp_path / "s", split="test")[0]) == 20

    def test_reshard_a_shard_directory(self, tmp_path, shard_dir, arrays):
        write_shards(shard_dir, tmp_path / "again", encoding="png", num_shards=3, progress=False)
        assert len(read_manifest(tmp_path / "again")["splits"]["train"]["shards"]) == 3
        assert by_content(*read_all(tmp_path / "again")) == by_content(*arrays)


class TestManifest:
    def test_manifest_describes_every_shard_with_its_checksum(self, shard_dir):
        manifest = read_manifest(shard_dir)
        assert manifest["format"] == "keras_bigml.image_shards" and manifest["format_version"] == 1
        assert manifest["image_shape"] == [4, 4, 1] and manifest["dtype"] == "uint8"
        assert manifest["labels"] is True and manifest["num_classes"] == 5 and manifest["source"] == "arrays"
        shards = manifest["splits"]["train"]["shards"]
        assert len(shards) == 16  # at least 16 by default, though 300 tiny images fit one file
        assert sum(shard["records"] for shard in shards) == manifest["splits"]["train"]["records"] == 300
        names = [shard["name"] for shard in shards]
        assert sorted(os.listdir(shard_dir)) == sorted([*names, "manifest.json"])
        for shard in shards:
            data = (shard_dir / shard["name"]).read_bytes()
            assert len(data) == shard["bytes"] and hashlib.sha256(data).hexdigest() == shard["sha256"]
            assert sum(1 for _ in tf.data.TFRecordDataset(str(shard_dir / shard["name"]))) == shard["records"]

    def test_records_are_written_shuffled_not_class_by_class(self, shard_dir):
        _, labels = read_all(shard_dir, shuffle=False)
        first = read_manifest(shard_dir)["splits"]["train"]["shards"][0]["records"]
        assert len(set(labels[:first])) == 5  # the first shard holds every class
        assert not np.array_equal(labels, np.sort(labels))

    def test_shard_counts_follow_size_workers_and_the_option(self, tmp_path, arrays, monkeypatch):
        assert len(write_shards(arrays, tmp_path / "a", num_shards=3, progress=False)
                   ["splits"]["train"]["shards"]) == 3
        monkeypatch.setenv("TF_CONFIG", tf_config(5))
        assert len(write_shards(arrays, tmp_path / "b", progress=False)["splits"]["train"]["shards"]) == 20
        monkeypatch.delenv("TF_CONFIG")
        big = np.zeros((400, 64, 64, 1), np.uint8)  # 1.6 MB raw at 0.05 MB per shard
        assert len(write_shards(big, tmp_path / "c", shard_size_mb=0.05, progress=False)
                   ["splits"]["train"]["shards"]) == 34
        assert len(write_shards(arrays[0][:5], tmp_path / "d", progress=False)
                   ["splits"]["train"]["shards"]) == 5  # never an empty shard

    def test_a_manifest_from_elsewhere_is_checked(self, shard_dir):
        path = shard_dir / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["splits"]["train"]["shards"][0]["name"] = "../../outside.tfrecord"
        path.write_text(json.dumps(manifest))
        with pytest.raises(DataError, match="shard names must be plain .tfrecord file names"):
            load_images(shard_dir)
        path.write_text(json.dumps({**manifest, "format_version": 9}))
        with pytest.raises(DataError, match="format version 9; this keras_bigml reads versions up to 1"):
            load_images(shard_dir)
        path.write_text(json.dumps({**manifest, "image_shape": [28, "28", 1]}))
        with pytest.raises(DataError, match=r"describes images of shape \[28, '28', 1\]"):
            load_images(shard_dir)
        path.write_text("{not json")
        with pytest.raises(DataError, match="not a readable shard manifest"):
            load_images(shard_dir)


class TestDamage:
    def shard_path(self, directory, k=3):
        return directory / read_manifest(directory)["splits"]["train"]["shards"][k]["name"]

    def test_truncated_shard_is_named_in_one_line(self, shard_dir):
        path = self.shard_path(shard_dir)
        path.write_bytes(path.read_bytes()[:-7])
        refusal = rf"Shard .*{path.name} is damaged \(truncated: .*skip_bad_files=True"
        with pytest.raises(DataError, match=refusal) as error:
            load_images(shard_dir)
        assert "\n" not in str(error.value)

    def test_corrupt_and_missing_shards_are_named(self, shard_dir):
        path = self.shard_path(shard_dir)
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        path.write_bytes(bytes(flipped))
        with pytest.raises(DataError, match=rf"{path.name} is damaged \(its SHA-256 checksum differs"):
            load_images(shard_dir)
        path.write_bytes(original)
        other = self.shard_path(shard_dir, 5)
        other.unlink()
        with pytest.raises(DataError, match=rf"{other.name} is damaged \(missing\)"):
            load_images(shard_dir)
        path.write_bytes(bytes(flipped))
        with pytest.raises(DataError, match=r"is damaged \(.*\) \(and 1 more damaged shards\)"):
            load_images(shard_dir)

    def test_skip_bad_files_reads_the_rest_and_says_how_many_records_were_lost(self, shard_dir, arrays):
        manifest = read_manifest(shard_dir)
        lost = manifest["splits"]["train"]["shards"][3]["records"]
        path = self.shard_path(shard_dir)
        path.write_bytes(path.read_bytes()[:10])
        with pytest.warns(SkippedFilesWarning, match=rf"Skipped 1 damaged shard of 16 .*{path.name}.*"
                                                     rf"{lost} of 300 records lost"):
            dataset = load_images(shard_dir, labels=True, skip_bad_files=True, batch_size=1000)
        images = np.concatenate([as_uint8(x) for x, _ in dataset])
        assert len(images) == 300 - lost
        assert set(map(bytes, images.reshape(len(images), -1))) < set(map(bytes, arrays[0].reshape(300, -1)))


class TestReading:
    def test_the_count_matches_the_manifest_and_limit_takes_the_first_records(self, shard_dir):
        dataset = load_images(shard_dir, batch_size=64)
        assert int(dataset.cardinality()) == 5 and sum(len(b) for b in dataset) == 300
        limited = load_images(shard_dir, batch_size=1000, limit=50, seed=1)
        epochs = [sorted(map(bytes, as_uint8(next(iter(limited))).reshape(50, -1))) for _ in range(2)]
        assert len(epochs[0]) == 50 and epochs[0] == epochs[1]  # the same 50 records each epoch

    def test_shard_order_and_records_reshuffle_each_epoch_reproducibly(self, shard_dir):
        dataset = load_images(shard_dir, batch_size=300, seed=4)
        first, second = (as_uint8(next(iter(dataset))) for _ in range(2))
        assert not np.array_equal(first, second)
        again = load_images(shard_dir, batch_size=300, seed=4)
        np.testing.assert_array_equal(first, as_uint8(next(iter(again))))

    def test_cache_holds_records_and_still_reshuffles(self, shard_dir, tmp_path):
        dataset = load_images(shard_dir, batch_size=300, seed=0, cache=str(tmp_path / "cache"))
        first, second = (as_uint8(next(iter(dataset))) for _ in range(2))
        assert sorted(map(bytes, first)) == sorted(map(bytes, second)) and not np.array_equal(first, second)

    def test_parsing_happens_on_batches(self, shard_dir):
        # Batch first, then parse: the map after batching receives a vector of serialized records.
        opened = shards_module.open_shards(str(shard_dir), shards_module._images._ReadOptions(labels=True))
        assert opened.elements.element_spec == tf.TensorSpec([], tf.string)
        images, labels = opened.decode(tf.stack(list(opened.elements.take(7))))
        assert images.shape == (7, 4, 4, 1) and images.dtype == tf.uint8 and labels.shape == (7,)

    def test_labels_from_an_unlabelled_shard_set_are_refused(self, tmp_path, arrays):
        write_shards(arrays[0], tmp_path / "s", progress=False)
        with pytest.raises(DataError, match="has no labels"):
            load_images(tmp_path / "s", labels=True)


class TestFolders:
    def write_folder(self, root, per_class=6, bad=()):
        for label in ("cat", "dog"):
            for i in range(per_class):
                path = root / label / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((5, 7), 40 * i + (label == "dog"), np.uint8)).save(path)
        for name in bad:
            (root / "dog" / name).write_bytes(b"\x89PNG\r\n\x1a\n broken")

    def test_class_folders_become_labelled_shards_with_class_names(self, tmp_path):
        self.write_folder(tmp_path / "photos")
        manifest = write_shards(tmp_path / "photos", tmp_path / "s", progress=False)
        assert manifest["class_names"] == ["cat", "dog"] and manifest["num_classes"] == 2
        assert manifest["image_shape"] == [5, 7, 1] and manifest["source"] == str(tmp_path / "photos")
        images, labels = read_all(tmp_path / "s")
        assert sorted(zip(images[:, 0, 0, 0].tolist(), labels.tolist(), strict=True)) == sorted(
            [(40 * i, 0) for i in range(6)] + [(40 * i + 1, 1) for i in range(6)])

    def test_split_folders_share_their_class_names(self, tmp_path):
        for split, classes in (("train", ("ant", "bee", "cat")), ("test", ("ant", "cat"))):
            for name in classes:
                for i in range(2):
                    path = tmp_path / "photos" / split / name / f"{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.new("L", (4, 4), i).save(path)
        manifest = write_shards(tmp_path / "photos", tmp_path / "s", progress=False)
        assert list(manifest["splits"]) == ["train", "test"]
        assert manifest["class_names"] == ["ant", "bee", "cat"]
        _, labels = read_all(tmp_path / "s", split="test")
        assert sorted(labels.tolist()) == [0, 0, 2, 2]

    def test_png_files_are_stored_byte_for_byte(self, tmp_path):
        self.write_folder(tmp_path / "photos")
        write_shards(tmp_path / "photos", tmp_path / "s", encoding="png", progress=False)
        files = {p.read_bytes() for p in (tmp_path / "photos").rglob("*.png")}
        stored = set()
        for name in os.listdir(tmp_path / "s"):
            if name.endswith(".tfrecord"):
                for record in tf.data.TFRecordDataset(str(tmp_path / "s" / name)):
                    example = tf.train.Example.FromString(record.numpy())
                    stored.add(example.features.feature["image"].bytes_list.value[0])
        assert stored == files

    def test_a_corrupt_file_is_named_or_skipped_and_counted(self, tmp_path):
        self.write_folder(tmp_path / "photos", bad=("broken.png",))
        with pytest.raises(DataError, match=r"broken\.png is not a readable image .*skip_bad_files=True"):
            write_shards(tmp_path / "photos", tmp_path / "s", progress=False)
        assert not (tmp_path / "s").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
        with pytest.warns(SkippedFilesWarning, match=r"Skipped 1 unreadable image file of 13 .*broken\.png"):
            manifest = write_shards(tmp_path / "photos", tmp_path / "s", skip_bad_files=True, progress=False)
        assert manifest["splits"]["train"]["records"] == 12
        assert manifest["splits"]["train"]["skipped_files"] == 1


class TestWritingSafely:
    def test_existing_shards_are_kept_unless_overwrite(self, tmp_path, arrays, shard_dir):
        before = (shard_dir / "manifest.json").read_bytes()
        with pytest.raises(ConfigError, match="already holds shards: pass overwrite=True"):
            write_shards(arrays, shard_dir, progress=False)
        assert (shard_dir / "manifest.json").read_bytes() == before
        write_shards(arrays, shard_dir, num_shards=2, overwrite=True, progress=False)
        assert len(read_manifest(shard_dir)["splits"]["train"]["shards"]) == 2
        assert len(os.listdir(shard_dir)) == 3

    def test_a_directory_of_other_files_is_never_replaced(self, tmp_path, arrays):
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep me")
        with pytest.raises(ConfigError, match="holds other files than shards"):
            write_shards(arrays, tmp_path / "mine", overwrite=True, progress=False)
        assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"

    def test_an_interrupted_write_leaves_nothing_and_the_old_shards_intact(self, tmp_path, arrays, shard_dir,
                                                                          monkeypatch):
        before = (shard_dir / "manifest.json").read_bytes()
        calls = []

        def interrupt(self, *args):
            calls.append(1)
            if len(calls) > 100:
                raise KeyboardInterrupt
            return original(self, *args)

        original = shards_module._RecordTemplate.serialize
        monkeypatch.setattr(shards_module._RecordTemplate, "serialize", interrupt)
        with pytest.raises(KeyboardInterrupt):
            write_shards(arrays, shard_dir, overwrite=True, progress=False)
        assert (shard_dir / "manifest.json").read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]

    def test_what_a_dead_writer_left_is_removed_and_a_live_ones_kept(self, tmp_path, arrays):
        dead = subprocess.Popen([sys.executable, "-c", ""])
        dead.wait()
        for pid, name in ((dead.pid, ".tmp-dead"), (os.getpid(), ".tmp-live")):
            (tmp_path / name / "out").mkdir(parents=True)
            writer = {"pid": pid, "host": socket.gethostname()}
            (tmp_path / name / "out" / "writing.json").write_text(json.dumps(writer))
        with pytest.warns(UserWarning, match=r"Removed .*\.tmp-dead, left by an interrupted shard writer"):
            write_shards(arrays, tmp_path / "out", progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-live", "out"]

    @pytest.mark.large
    def test_a_killed_writer_is_cleaned_up_and_the_write_restarts(self, tmp_path, arrays):
        code = ("import sys, numpy as np\n"
                "from keras_bigml.data import shards\n"
                "def die(self, *args):\n"
                "    import os; os._exit(9)\n"
                "shards._RecordTemplate.serialize = die\n"
                "shards.write_shards(np.zeros((40, 4, 4), np.uint8), sys.argv[1], progress=False)\n")
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], capture_output=True)
        assert result.returncode == 9
        left = [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
        assert len(left) == 1 and (left[0] / "out" / "writing.json").exists()
        with pytest.warns(UserWarning, match="left by an interrupted shard writer"):
            write_shards(arrays, tmp_path / "out", progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
        assert is_shard_directory(tmp_path / "out") and "writing.json" not in os.listdir(tmp_path / "out")

    @pytest.mark.parametrize("option, value, message", [
        ("encoding", "webp", "encoding must be one of raw, png, jpeg"),
        ("num_shards", 0, "num_shards must be a whole number"),
        ("shard_size_mb", -1, "shard_size_mb must be a positive number"),
        ("shard_size_mb", float("nan"), "shard_size_mb must be a positive number"),
        ("channels", 2, "channels must be 1"),
        ("image_size", 0, "image_size must be"),
    ])
    def test_bad_options(self, tmp_path, arrays, option, value, message):
        with pytest.raises(ConfigError, match=message):
            write_shards(arrays, tmp_path / "s", progress=False, **{option: value})

    def test_the_source_itself_is_refused_as_output(self, shard_dir):
        with pytest.raises(ConfigError, match="is the source itself"):
            write_shards(shard_dir, shard_dir, overwrite=True, progress=False)


class TestSeveralWorkers:
    """Each worker builds its own pipeline, as worker processes do, then applies the auto-shard rewrite."""

    def worker_reads(self, build, workers):
        from tensorflow.python.distribute import input_ops  # what MultiWorkerMirroredStrategy applies

        reads = []
        for index in range(workers):
            shard = input_ops.auto_shard_dataset(build(), workers, index, workers)
            reads.append([image.tobytes() for batch in shard for image in as_uint8(batch)])
        return reads

    def test_file_sharding_splits_the_shards_and_covers_the_data_once(self, shard_dir, monkeypatch, arrays):
        monkeypatch.setenv("TF_CONFIG", tf_config(2))
        policy = load_images(shard_dir).options().experimental_distribute.auto_shard_policy
        assert policy == tf.data.experimental.AutoShardPolicy.FILE
        # Unseeded on purpose: by file, each worker may shuffle its own shards as it likes.
        first, second = self.worker_reads(lambda: load_images(shard_dir, batch_size=16, seed=None), 2)
        assert len(first) + len(second) == 300 and not set(first) & set(second)
        assert set(first) | set(second) == {image.tobytes() for image in arrays[0]}
        per_shard = []  # each worker reads whole shards: 8 of the 16
        for shard in read_manifest(shard_dir)["splits"]["train"]["shards"]:
            records = tf.data.TFRecordDataset(str(shard_dir / shard["name"]))
            per_shard.append({tf.train.Example.FromString(record.numpy()).features.feature["image"]
                              .bytes_list.value[0] for record in records})
        for read in (set(first), set(second)):
            assert sum(contents <= read for contents in per_shard) == 8

    def test_fewer_shards_than_workers_or_binarize_split_records(self, tmp_path, arrays, monkeypatch):
        write_shards(arrays, tmp_path / "s", num_shards=2, progress=False)
        monkeypatch.setenv("TF_CONFIG", tf_config(3))
        policy = load_images(tmp_path / "s").options().experimental_distribute.auto_shard_policy
        assert policy == tf.data.experimental.AutoShardPolicy.DATA
        reads = self.worker_reads(lambda: load_images(tmp_path / "s", batch_size=10), 3)  # unseeded: seed 0
        assert sum(map(len, reads)) == 300
        assert set().union(*map(set, reads)) == {image.tobytes() for image in arrays[0]}
        binarized = load_images(tmp_path / "s", binarize=True)
        assert binarized.options().experimental_distribute.auto_shard_policy == \
            tf.data.experimental.AutoShardPolicy.DATA


MULTIWORKER_READ = """
import json, os, sys
import numpy as np, tensorflow as tf
from keras_bigml.data import load_images

strategy = tf.distribute.MultiWorkerMirroredStrategy()
dataset = strategy.experimental_distribute_dataset(load_images(sys.argv[1], batch_size=20))
seen, steps = [], 0
for batch in dataset:
    steps += 1
    for local in strategy.experimental_local_results(batch):
        seen += [np.rint(image * 255).astype(np.uint8).tobytes().hex() for image in local.numpy()]
with open(sys.argv[2], "w") as file:
    json.dump({"seen": seen, "steps": steps}, file)
"""


@pytest.mark.large
def test_two_localhost_workers_read_every_record_once(shard_dir, tmp_path, arrays):
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("localhost", 0))
            ports.append(probe.getsockname()[1])
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        config = json.dumps({"cluster": cluster, "task": task})
        env = dict(os.environ, TF_CONFIG=config, TF_CPP_MIN_LOG_LEVEL="3")
        processes.append(subprocess.Popen(
            [sys.executable, "-c", MULTIWORKER_READ, str(shard_dir), str(tmp_path / f"seen{index}.json")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        ))
    for process in processes:
        output = process.communicate(timeout=300)[0].decode()
        assert process.returncode == 0, output[-2000:]
    first, second = (json.loads((tmp_path / f"seen{index}.json").read_text()) for index in range(2))
    assert first["steps"] == second["steps"]  # a worker with a record or two fewer still takes every step
    first, second = first["seen"], second["seen"]
    assert len(first) + len(second) == 300 and not set(first) & set(second)
    assert {bytes.fromhex(h) for h in first + second} == {image.tobytes() for image in arrays[0]}


class TestShardWriter:
    def test_batches_written_one_by_one_read_back_exactly(self, tmp_path, arrays):
        images, labels = arrays
        with ShardWriter(tmp_path / "gen", (4, 4, 1), num_shards=5, class_names=list("abcde"),
                         source="runs/gan") as writer:
            for start in range(0, 300, 64):
                writer.write(images[start : start + 64], labels=labels[start : start + 64])
        manifest = read_manifest(tmp_path / "gen")
        assert manifest["source"] == "runs/gan" and manifest["class_names"] == list("abcde")
        assert [shard["records"] for shard in manifest["splits"]["train"]["shards"]] == [60] * 5
        assert by_content(*read_all(tmp_path / "gen")) == by_content(images, labels)

    def test_float_images_png_and_no_labels(self, tmp_path):
        floats = np.random.default_rng(0).random((7, 70, 70, 3))
        with ShardWriter(tmp_path / "gen", (70, 70, 3), num_shards=2) as writer:
            writer.write(floats)
        assert read_manifest(tmp_path / "gen")["encoding"] == "png"
        # Read unshuffled, the two shards interleave back into the written order.
        back = next(iter(load_images(tmp_path / "gen", batch_size=7, shuffle=False))).numpy()
        assert np.abs(back - floats).max() <= 0.5 / 255 + 1e-6  # PNG is lossless: only the 8-bit rounding

    def test_an_error_inside_leaves_no_directory_and_bad_batches_are_refused(self, tmp_path):
        with pytest.raises(RuntimeError), ShardWriter(tmp_path / "gen", (4, 4, 1)) as writer:
            writer.write(np.zeros((3, 4, 4), np.uint8))
            raise RuntimeError("generator failed")
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        with pytest.raises(DataError, match=r"images of shape \(4, 4, 1\) got a batch of \(2, 5, 5, 1\)"), \
                ShardWriter(tmp_path / "gen", (4, 4, 1)) as writer:
            writer.write(np.zeros((2, 5, 5), np.uint8))
        with pytest.raises(DataError, match="labels with every batch or with none"), \
                ShardWriter(tmp_path / "gen", (4, 4, 1)) as writer:
            writer.write(np.zeros((2, 4, 4), np.uint8), labels=[0, 1])
            writer.write(np.zeros((2, 4, 4), np.uint8))
        with pytest.raises(DataError, match="was given no images"), ShardWriter(tmp_path / "gen", (4, 4, 1)):
            pass
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        with pytest.raises(ConfigError, match="image_shape must be"):
            ShardWriter(tmp_path / "gen", (4, 4, 2))
