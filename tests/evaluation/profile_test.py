import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from keras_bigml.data.tables import iter_table_chunks
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.evaluation.profile import WARNING_KINDS, profile_html, profile_table

EXACT_COLUMN_KEYS = ("type", "count", "missing", "missing_share", "distinct", "distinct_exact", "top_value",
                     "top_share", "constant", "near_constant", "high_cardinality", "minimum", "maximum",
                     "quartiles", "outliers", "outlier_share", "leak_score")


def clean_table(rows=600, seed=0):
    """Informative but honest features: no leak, no duplicates, nothing constant, missing or far out."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=rows), rng.uniform(-1, 1, rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], rows)
    logit = a + b - 0.5 * c + (colour == "red")
    return pd.DataFrame({
        "a": a, "b": b, "c": c, "visits": rng.poisson(5, rows), "colour": colour,
        "y": (logit + rng.logistic(size=rows) > 0.3).astype(int),
    })


def planted_table():
    frame = clean_table()
    noise = np.random.default_rng(1).normal(scale=0.05, size=len(frame))
    frame["refund_amount"] = frame["y"] * 30.0 + noise  # known only after the outcome: a leak
    frame["source"] = "web"
    return pd.concat([frame, frame.iloc[[3, 10, 25, 40]]], ignore_index=True)


def kinds_and_columns(profile):
    return sorted((alert["kind"], tuple(alert["columns"])) for alert in profile.alerts)


def test_planted_leak_constant_and_duplicates_are_flagged_by_name_and_kind():
    profile = profile_table(planted_table(), target="y")
    assert kinds_and_columns(profile) == [
        ("constant", ("source",)), ("duplicate", ()), ("leak", ("refund_amount",))]
    leak, duplicate, constant = profile.warnings
    assert leak.startswith("leak: ") and "'refund_amount'" in leak and "'y'" in leak
    assert constant.startswith("constant: ") and "'source'" in constant
    assert duplicate.startswith("duplicate: 4 duplicated rows")
    assert "row 600 repeats row 3" in duplicate and "row 603 repeats row 40" in duplicate
    assert profile.duplicate_rows == 4 and profile.duplicate_examples[0] == [600, 3]
    assert profile.columns["refund_amount"].leak_score == 1.0
    assert profile.columns["a"].leak_score < 0.8
    assert [leak["column"] for leak in profile.leaks] == ["refund_amount"]


def test_clean_tables_flag_nothing():
    assert profile_table(clean_table(), target="y").warnings == []
    frame = clean_table(seed=3)
    frame["y"] = frame["a"] + 0.5 * frame["b"] + np.random.default_rng(4).normal(scale=0.5, size=len(frame))
    profile = profile_table(frame, target="y")
    assert profile.task == "regression" and profile.warnings == []
    assert 0.3 < profile.columns["a"].leak_score < 0.9  # R^2 of the strongest honest feature


def test_missing_imbalance_outliers_correlated_and_near_constant():
    frame = clean_table(1000)
    rng = np.random.default_rng(2)
    frame.loc[rng.choice(1000, 120, replace=False), "c"] = np.nan
    frame["a_twice"] = 2 * frame["a"] + rng.normal(scale=0.01, size=1000)
    frame.loc[[7, 500], "b"] = [25.0, -40.0]
    frame["plan"] = np.where(np.arange(1000) < 995, "basic", "pro")
    frame["y"] = (np.arange(1000) % 25 == 0).astype(int)
    profile = profile_table(frame, target="y")
    assert kinds_and_columns(profile) == [
        ("constant", ("plan",)), ("correlated", ("a", "a_twice")), ("imbalance", ("y",)),
        ("missing", ("c",)), ("outliers", ("b",)),
    ]
    lines = dict(zip([alert["kind"] for alert in profile.alerts], profile.warnings, strict=True))
    assert "'c' is 12.0% missing (120 of 1000 rows)" in lines["missing"]
    assert "class 1 has 40 rows, class 0 has 960" in lines["imbalance"]
    assert "'b' has 2 values" in lines["outliers"]
    assert "near-constant: 99.5% of its values are 'basic'" in lines["constant"]
    assert "'a' and 'a_twice'" in lines["correlated"]
    assert profile.target_counts == {0: 960, 1: 40}
    assert all(line.split(":")[0] in WARNING_KINDS for line in profile.warnings)


def test_leaks_of_categories_and_in_regression_and_several_classes():
    frame = clean_table()
    frame["outcome_code"] = np.where(frame["y"] == 1, "PAID", "LAPSED")
    assert [leak["column"] for leak in profile_table(frame, target="y").leaks] == ["outcome_code"]
    frame = clean_table(seed=5).drop(columns="y")
    frame["price"] = np.exp(frame["a"] + frame["b"] + frame["c"]) * 100  # a heavy tail
    frame["price_with_tax"] = frame["price"] * 1.2 + 0.01 * frame["b"]
    assert [leak["column"] for leak in profile_table(frame, target="price").leaks] == ["price_with_tax"]
    frame = clean_table(seed=6)
    frame["grade_score"] = frame["a"] + frame["b"] + frame["c"]
    frame["grade"] = pd.cut(frame["grade_score"], [-np.inf, -0.5, 0.5, np.inf], labels=["low", "mid", "high"])
    frame["grade"] = frame["grade"].astype(str)
    profile = profile_table(frame, target="grade")
    assert profile.task == "classification" and [leak["column"] for leak in profile.leaks] == ["grade_score"]


def test_statistics_agree_with_pandas_and_scipy():
    frame = planted_table()
    frame.loc[[1, 2, 3], "a"] = np.nan
    profile = profile_table(frame, target="y")
    a = frame["a"].dropna()
    column = profile.columns["a"]
    assert (column.count, column.missing, column.distinct) == (len(a), 3, a.nunique())
    assert column.mean == pytest.approx(a.mean()) and column.std == pytest.approx(a.std())
    assert column.skew == pytest.approx(stats.skew(a))
    assert (column.minimum, column.maximum) == (a.min(), a.max())
    assert column.quartiles == pytest.approx(list(np.quantile(a, [0.25, 0.5, 0.75])))
    colour = profile.columns["colour"]
    assert colour.type == "categorical" and colour.distinct == 3
    assert colour.top_value == frame["colour"].value_counts().index[0]
    assert profile.columns["visits"].type == "numeric" and profile.columns["visits"].top_value == \
        frame["visits"].value_counts().index[0]


def assert_same_profile(first, second):
    a, b = first.to_dict(), second.to_dict()
    for key in ("rows", "duplicate_rows", "duplicate_examples", "target_counts", "correlated", "leaks",
                "warnings", "sample_rows"):
        assert a[key] == b[key], key
    for name, column in a["columns"].items():
        for key in EXACT_COLUMN_KEYS:
            assert column[key] == b["columns"][name][key], (name, key)
        for key in ("mean", "std", "skew"):
            expected = b["columns"][name][key]
            close = expected if expected is None else pytest.approx(expected, rel=1e-9, abs=1e-12)
            assert column[key] == close, (name, key)


def planted_with_gaps():
    frame = planted_table()
    frame.loc[::9, "c"] = np.nan
    return frame


def test_chunks_and_dask_partitions_give_the_in_memory_profile():
    import dask.dataframe as dd

    frame = planted_with_gaps()
    whole = profile_table(frame, target="y")
    chunks = [frame.iloc[start:start + 97] for start in range(0, len(frame), 97)]
    chunked = profile_table(chunks, target="y")
    assert chunked.partitions == 7
    assert_same_profile(whole, chunked)
    partitioned = profile_table(dd.from_pandas(frame, npartitions=3), target="y")
    assert partitioned.partitions == 3
    assert_same_profile(whole, partitioned)


def test_files_read_in_chunks_give_the_in_memory_profile(tmp_path):
    frame = planted_with_gaps()
    whole = profile_table(frame, target="y")
    chunks = [frame.iloc[start:start + 97] for start in range(0, len(frame), 97)]
    path = tmp_path / "planted.csv"
    frame.to_csv(path, index=False)
    from_csv = profile_table(pd.read_csv(path), target="y")
    assert_same_profile(from_csv, profile_table(path, target="y", chunk_rows=128))
    assert_same_profile(from_csv, profile_table(iter_table_chunks(path, "y", chunk_rows=100)))
    parts = tmp_path / "parts"
    parts.mkdir()
    for index, chunk in enumerate(chunks):
        chunk.to_parquet(parts / f"part-{index:02d}.parquet", index=False)
    assert_same_profile(whole, profile_table(parts, target="y"))
    assert_same_profile(whole, profile_table(str(parts / "part-*.parquet"), target="y"))


def test_large_tables_are_estimated_and_say_so():
    rng = np.random.default_rng(0)
    rows = 20_000
    frame = pd.DataFrame({"id": rng.permutation(rows), "x": rng.normal(size=rows)})
    frame = pd.concat([frame, frame.iloc[:2000]], ignore_index=True)  # 2,000 duplicated rows
    profile = profile_table([frame.iloc[:11_000], frame.iloc[11_000:]], sample_rows=3000, max_row_hashes=5000)
    identity = profile.columns["id"]
    assert not identity.distinct_exact and identity.distinct == pytest.approx(rows, rel=0.05)
    assert not profile.duplicates_exact and profile.duplicate_rows == pytest.approx(2000, rel=0.25)
    assert profile.warnings[0].startswith("duplicate: about ")
    assert len(profile.warnings) == 1  # no outliers: a few far values come with any large normal sample
    assert profile.sample_rows == 3000
    assert profile.approximate["sampled"] and profile.approximate["distinct_estimated"] == ["id", "x"]
    assert profile.approximate["duplicates_estimated"]
    assert profile.columns["x"].quartiles[1] == pytest.approx(0.0, abs=0.06)
    exact = profile_table(frame)
    assert exact.duplicates_exact and exact.duplicate_rows == 2000


def test_near_constant_share_is_a_lower_bound_when_counters_overflow():
    values = np.concatenate([np.zeros(9950), np.arange(1, 1001)])  # 1,000 rare values besides 0
    profile = profile_table([pd.DataFrame({"v": values[i::4]}) for i in range(4)])
    column = profile.columns["v"]
    assert column.top_value == 0 and 0.9 <= column.top_share <= 9950 / 10950
    assert profile.approximate["top_share_lower_bound"] == ["v"]


def test_profile_json_is_plain_and_finite():
    frame = planted_table()
    frame["when"] = pd.date_range("2026-01-01", periods=len(frame), freq="h")
    frame["flag"] = frame["a"] > 0
    frame.loc[0, "b"] = np.inf
    data = profile_table(frame, target="y").to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["columns"]["when"]["minimum"] == "2026-01-01T00:00:00"
    assert data["columns"]["flag"]["type"] == "boolean" and data["columns"]["b"]["maximum"] < math.inf


def test_html_page_is_self_contained_and_escapes_names():
    frame = planted_table().rename(columns={"source": "<b>source</b>"})
    page = profile_html(profile_table(frame, target="y"))
    for section in ('id="warnings"', 'id="columns"', 'id="target"', 'id="method"'):
        assert section in page
    assert "&lt;b&gt;source&lt;/b&gt;" in page and "<b>source</b>" not in page
    assert "http" not in page and "<script" not in page


def test_bad_input_gets_one_clear_error(tmp_path):
    frame = clean_table(50)
    with pytest.raises(DataError, match="no target column 'label'"):
        profile_table(frame, target="label")
    with pytest.raises(ConfigError, match="leak_threshold must be in"):
        profile_table(frame, leak_threshold=1.5)
    with pytest.raises(ConfigError, match="sample_rows must be a positive integer"):
        profile_table(frame, sample_rows=0)
    with pytest.raises(DataError, match="Chunk 1 has columns a, b"):
        profile_table([frame, frame[["a", "b"]]])
    with pytest.raises(DataError, match="has no rows"):
        profile_table(frame.iloc[:0])
    with pytest.raises(DataError, match="Unknown table 'sales'"):
        profile_table("sales")
    with pytest.raises(DataError, match="holds no .parquet or .csv parts"):
        profile_table(tmp_path)
    with pytest.raises(DataError, match="more than one column named 'a'"):
        profile_table(pd.concat([frame[["a"]], frame[["a"]]], axis=1))
