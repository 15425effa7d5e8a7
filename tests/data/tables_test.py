import numpy as np
import pandas as pd
import pytest

from keras_bigml.data.tables import BUILTIN_TABLES, infer_task, iter_table_chunks, load_table
from keras_bigml.errors import DataError


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
    assert [len(X) for X, _ in chunks] == [10, 10, 5]
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
