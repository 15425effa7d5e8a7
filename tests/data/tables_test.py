import os

import numpy as np
import pandas as pd
import pytest

from keras_bigml.data.tables import (
    BUILTIN_TABLES,
    check_target,
    check_test_size,
    infer_task,
    iter_table_chunks,
    load_table,
)
from keras_bigml.errors import ConfigError, DataError


@pytest.mark.parametrize("name", sorted(BUILTIN_TABLES))
def test_bundled_sets_load_with_their_target(name):
    X, y = load_table(name)
    assert len(X) == len(y) > 100 and "target" not in X.columns
    assert infer_task(y) == BUILTIN_TABLES[name][1]


def frame():
    return pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "city": ["x", "y", "x", None], "label": [0, 1, 0, 1]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_keep_column_types(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    frame().to_csv(path, index=False) if suffix == ".csv" else frame().to_parquet(path)
    X, y = load_table(path, target="label")
    assert list(X.columns) == ["a", "city"] and list(y) == [0, 1, 0, 1]
    assert X["a"].isna().sum() == 1 and X["city"].dtype != np.float64


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_cover_the_file_in_order(tmp_path, suffix):
    big = pd.DataFrame({"x": np.arange(25.0), "y": np.arange(25) % 2})
    path = tmp_path / f"big{suffix}"
    big.to_csv(path, index=False) if suffix == ".csv" else big.to_parquet(path, row_group_size=7)
    chunks = list(iter_table_chunks(path, "y", chunk_rows=10))
    # Parquet batches stop at row-group boundaries (7 rows here); CSV chunks are 10 rows.
    assert [len(X) for X, _ in chunks] == ([10, 10, 5] if suffix == ".csv" else [7, 7, 7, 4])
    np.testing.assert_array_equal(pd.concat([X for X, _ in chunks])["x"], big["x"])


def test_table_errors_name_the_problem(tmp_path):
    frame().to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="no target column 'price'; its columns are a, city, label"):
        load_table(tmp_path / "t.csv", target="price")
    with pytest.raises(DataError, match="Name the target column"):
        load_table(tmp_path / "t.csv")
    with pytest.raises(DataError, match="Unknown table 'iriss'"):
        load_table("iriss")
    with pytest.raises(DataError, match="No such file"):
        load_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match=".csv or .parquet"):
        load_table(tmp_path / "t.xlsx")
    with pytest.raises(DataError, match="holds no values"):
        load_table(frame().assign(label=np.nan), target="label")
    with pytest.raises(DataError, match="2 missing values"):
        load_table(frame().assign(label=[0, None, None, 1]), target="label")
    with pytest.raises(DataError, match="no rows"):
        load_table(frame().iloc[:0], target="label")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="Cannot read"):
        load_table(tmp_path / "bad.parquet", target="label")


def test_infer_task():
    assert infer_task(pd.Series(["cat", "dog"])) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 50))) == "regression"
    assert infer_task(pd.Series(np.arange(1000))) == "regression"


def test_a_header_repeating_the_target_is_refused_not_renamed(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,target,b,target\n1,0,2,0\n3,1,4,1\n")
    with pytest.raises(DataError, match="dup.csv repeats the column name 'target'; give every column"):
        load_table(path, target="target")
    frame = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "y"])
    with pytest.raises(DataError, match="repeats the column name 'a'"):
        load_table(frame, target="y")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1, 2], [0, 1], [0, 1]], names=["a", "t", "t"]), tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="dup.parquet repeats the column name 't'"):
        load_table(tmp_path / "dup.parquet", target="t")


def test_all_missing_and_infinite_columns_are_named():
    table = frame().assign(empty=np.nan, also_empty=None)
    with pytest.raises(DataError, match="columns with no values at all: empty, also_empty; drop them"):
        load_table(table, target="label")
    with pytest.raises(DataError, match="infinite values in columns b, c; replace them"):
        load_table(frame().assign(b=[1.0, np.inf, 0, 0], c=[-np.inf, 0, 0, 0]), target="label")
    with pytest.raises(DataError, match="target column 'label' .* has infinite values"):
        load_table(frame().assign(label=[0.5, np.inf, 1, 2]), target="label")


def test_empty_files_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv is empty"):
        load_table(tmp_path / "empty.csv", target="y")
    (tmp_path / "header.csv").write_text("a,y\n")
    with pytest.raises(DataError, match="header.csv has no rows"):
        load_table(tmp_path / "header.csv", target="y")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataError, match="blank.csv holds no columns"):
        load_table(tmp_path / "blank.csv", target="y")


def test_a_missing_target_lists_a_few_columns():
    wide = pd.DataFrame(np.zeros((2, 30)), columns=[f"c{i}" for i in range(30)])
    with pytest.raises(DataError, match=r"no target column 'y'; its columns are c0, c1, .*c19, \.\.\. \(30"):
        load_table(wide, target="y")


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.5, "0.2", None, True, float("nan")])
def test_test_size_must_be_a_share(value):
    with pytest.raises(ConfigError, match="test_size must be a share of the rows between 0 and 1"):
        check_test_size(value)


def test_target_checks_name_the_class_and_its_count():
    one = pd.Series([1] * 10, name="label")
    with pytest.raises(DataError, match="target 'label' of t.csv has one class \\(1 in all 10 rows\\)"):
        check_target(one, "classification", 0.25, "t.csv")
    small = pd.Series(["a"] * 5 + ["b"] * 5 + ["rare"], name="label")
    with pytest.raises(DataError, match="Class 'rare' of the target 'label' of t.csv has only 1 row;"):
        check_target(small, "classification", 0.25, "t.csv")
    few = pd.Series([0, 0, 1, 1, 2, 2, 3, 3], name="label")
    with pytest.raises(ConfigError, match="into 7 training and 1 test rows, but each side needs a row"):
        check_target(few, "classification", 0.1, "t.csv")
    with pytest.raises(DataError, match="is not numeric \\(dtype (object|str)\\); regression needs numbers"):
        check_target(pd.Series(["x", "y", "z", "w"], name="label"), "regression", 0.5, "t.csv")
    with pytest.raises(ConfigError, match="regression needs at least 2 on each side"):
        check_target(pd.Series([0.5, 1.5, 2.5], name="v"), "regression", 0.5, "t.csv")
    check_target(few, "classification", 0.5, "t.csv")


def parts_frame(n=40):
    return pd.DataFrame({"x": np.arange(n, dtype=float), "c": ["a", "b"] * (n // 2), "y": np.arange(n) % 2})


def write_parts(folder, frame, parts=4, suffix=".parquet", **options):
    folder.mkdir(parents=True, exist_ok=True)
    size = len(frame) // parts
    for i in range(parts):
        piece = frame.iloc[i * size:(i + 1) * size]
        path = folder / f"part-{i:05d}{suffix}"
        piece.to_csv(path, index=False) if suffix == ".csv" else piece.to_parquet(path, **options)
    return folder


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_directory_of_parts_and_a_glob_are_one_table(tmp_path, suffix):
    from keras_bigml.data.tables import open_table

    write_parts(tmp_path / "t", parts_frame(), suffix=suffix)
    for source in (tmp_path / "t", str(tmp_path / "t" / f"part-*{suffix}")):
        table = open_table(source)
        assert len(table.parts) == 4 and table.columns == ["x", "c", "y"]
        assert table.rows == (40 if suffix == ".parquet" else None)
        X, y = load_table(source, target="y")
        np.testing.assert_array_equal(X["x"], np.arange(40.0))
        assert list(X.columns) == ["x", "c"] and len(y) == 40


def test_spark_layout_is_read_and_its_markers_skipped(tmp_path):
    from keras_bigml.data.tables import open_table

    root = tmp_path / "spark"
    write_parts(root / "day=1", parts_frame(20), parts=2)
    write_parts(root / "day=2", parts_frame(20), parts=2)
    (root / "_SUCCESS").write_text("")
    (root / "._SUCCESS.crc").write_text("")
    (root / "_common_metadata").write_text("")
    table = open_table(root)
    assert [os.path.basename(os.path.dirname(p)) for p in table.files] == ["day=1"] * 2 + ["day=2"] * 2
    assert table.rows == 40


def test_one_large_parquet_file_is_read_by_row_groups(tmp_path):
    from keras_bigml.data.tables import open_table

    parts_frame(40).to_parquet(tmp_path / "big.parquet", row_group_size=12)
    table = open_table(tmp_path / "big.parquet")
    assert [part.rows for part in table.parts] == [12, 12, 12, 4]
    assert [p.rows for p in open_table(tmp_path / "big.parquet", rows_per_part=24).parts] == [24, 16]
    batches = [(block.row_group, start, len(frame))
               for part in table.parts for block, start, frame in table.batches(part, batch_rows=5)]
    assert batches[:4] == [(0, 0, 5), (0, 5, 5), (0, 10, 2), (1, 0, 5)]
    assert sum(n for _, _, n in batches) == 40


def test_parts_that_do_not_match_are_named(tmp_path):
    from keras_bigml.data.tables import open_table

    folder = write_parts(tmp_path / "t", parts_frame())
    parts_frame(10).rename(columns={"c": "colour"}).to_parquet(folder / "part-00009.parquet")
    with pytest.raises(DataError, match=r"Part .*part-00009.parquet has other columns than "
                                        r".*part-00000.parquet: missing c; extra colour"):
        open_table(folder)
    (folder / "part-00009.parquet").unlink()
    (folder / "part-00010.csv").write_text("x,c,y\n1,a,0\n")
    with pytest.raises(DataError, match="mixes CSV and Parquet parts"):
        open_table(folder)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="holds no .parquet or .csv parts"):
        open_table(tmp_path / "none")
    with pytest.raises(DataError, match="No files match"):
        open_table(str(tmp_path / "nothing-*.parquet"))
    table = open_table(write_parts(tmp_path / "u", parts_frame()))
    (tmp_path / "u" / "part-00002.parquet").unlink()
    with pytest.raises(DataError, match="Cannot read part .*part-00002.parquet"):
        [None for part in table.parts for _ in table.batches(part)]


def test_row_split_depends_on_the_seed_and_the_row_only(tmp_path):
    from keras_bigml.data.tables import RowSplit, open_table

    parts_frame(4000).to_parquet(tmp_path / "big.parquet", row_group_size=1000)
    table = open_table(tmp_path / "big.parquet")
    split = RowSplit(test_size=0.25, validation_size=0.15, seed=3)

    def shares(batch_rows):
        return np.concatenate([
            split.which(split.draws(block, start, len(frame)))
            for part in table.parts for block, start, frame in table.batches(part, None, batch_rows)
        ])

    first = shares(1000)
    np.testing.assert_array_equal(first, shares(333))
    assert abs((first == "test").mean() - 0.25) < 0.03 and abs((first == "validation").mean() - 0.15) < 0.03
    block = table.parts[0].blocks[0]
    assert not np.array_equal(split.draws(block, 0, 10), RowSplit(0.25, 0.15, seed=4).draws(block, 0, 10))
    assert not np.array_equal(split.draws(block, 0, 10), split.draws(table.parts[1].blocks[0], 0, 10))
    with pytest.raises(ConfigError, match="validation_size must be at least 0"):
        RowSplit(0.5, 0.5)
