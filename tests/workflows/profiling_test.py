import json
import os

import numpy as np
import pandas as pd
import pytest

from keras_bigml.errors import DataError
from keras_bigml.workflows.profiling import ProfileResult, profile


def test_profile_writes_json_and_html_with_the_warnings(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "label": rng.integers(0, 2, 300)})
    frame["label_again"] = frame["label"]
    frame["batch"] = 7
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    result = profile(path, tmp_path / "out", target="label", chunk_rows=64)
    assert isinstance(result, ProfileResult)
    assert [line.split(":")[0] for line in result.warnings] == ["leak", "constant"]
    assert result.paths == {"json": str(tmp_path / "out" / "profile.json"),
                            "html": str(tmp_path / "out" / "profile.html")}
    with open(result.paths["json"]) as file:
        saved = json.load(file)
    assert saved["warnings"] == result.warnings and saved["partitions"] == 5 and saved["rows"] == 300
    page = open(result.paths["html"], encoding="utf-8").read()
    assert "Data profile: table.csv" in page and "label_again" in page
    assert sorted(os.listdir(tmp_path / "out")) == ["profile.html", "profile.json"]  # no temporaries left


def test_a_failed_profile_leaves_the_previous_files(tmp_path):
    profile("iris", tmp_path, target="target")
    before = open(tmp_path / "profile.json").read()
    with pytest.raises(DataError, match="no target column 'species'"):
        profile("iris", tmp_path, target="species")
    assert open(tmp_path / "profile.json").read() == before
