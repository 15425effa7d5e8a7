import os

import pytest

from keras_bigml.files import atomic_path


def test_file_replaced_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    with atomic_path(target) as tmp:
        open(tmp, "w").write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_directory_replaced_whole(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with atomic_path(target) as tmp:
        os.makedirs(tmp)
        open(os.path.join(tmp, "new.pb"), "w").write("new")
    assert os.listdir(target) == ["new.pb"]
    assert os.listdir(tmp_path) == ["export"]


def test_suffix_and_missing_parent_folder(tmp_path):
    target = tmp_path / "deep" / "model.keras"
    with atomic_path(target, suffix=".keras") as tmp:
        assert tmp.endswith("model.keras.keras")
        open(tmp, "w").write("x")
    assert target.read_text() == "x"
