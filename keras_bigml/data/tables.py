"""Tables: scikit-learn's bundled sets by name, CSV and Parquet files, chunked reading.

Every loader returns ``(X, y)`` with ``X`` a pandas DataFrame of features and ``y`` a
Series (the target column), so mixed numeric and categorical columns keep their types.
"""

import os

import numpy as np
import pandas as pd

from keras_bigml.errors import ConfigError, DataError

BUILTIN_TABLES = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
TABLE_EXTENSIONS = (".csv", ".parquet", ".pq")


def load_table(source, target=None):
    """Load a table and split off its target column.

    Parameters
    ----------
    source : str or path or pandas.DataFrame
        A bundled set (``iris``, ``wine``, ``breast_cancer``, ``digits``,
        ``diabetes``), a ``.csv`` or ``.parquet`` path, or a DataFrame.
    target : str, optional
        The target column; bundled sets default to theirs.

    Returns
    -------
    X : pandas.DataFrame
    y : pandas.Series

    Examples
    --------
    >>> X, y = load_table("iris")
    >>> X.shape, y.name
    ((150, 4), 'target')
    """
    if isinstance(source, pd.DataFrame):
        frame, name = source, "the DataFrame"
    else:
        source = os.fspath(source)
        if source in BUILTIN_TABLES:
            frame, target, name = _builtin(source), target or "target", source
        else:
            frame, name = _read_file(source), source
    return split_target(frame, target, name)


def split_target(frame, target, name="the table"):
    """Return ``(features, target)`` after checking the table can be learned from."""
    if len(frame) == 0:
        raise DataError(f"{name} has no rows.")
    check_unique_columns(frame.columns, name)
    if target is None:
        raise DataError(f"Name the target column of {name}: one of {_columns(frame)}.")
    if target not in frame.columns:
        raise DataError(f"{name} has no target column {target!r}; its columns are {_columns(frame)}.")
    y = frame[target]
    if y.isna().all():
        raise DataError(f"The target column {target!r} of {name} holds no values.")
    if y.isna().any():
        raise DataError(
            f"The target column {target!r} of {name} has {int(y.isna().sum())} missing values; "
            "drop those rows first."
        )
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y) and np.isinf(y).any():
        raise DataError(f"The target column {target!r} of {name} has infinite values; drop those rows.")
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise DataError(f"{name} has no feature columns besides the target {target!r}.")
    check_feature_values(X, name)
    return X, y


def check_unique_columns(columns, name="the table"):
    """Refuse repeated column names (a CSV header naming the target twice would train on a copy of it).

    >>> check_unique_columns(["a", "target", "target"], "t.csv")
    Traceback (most recent call last):
    ...
    keras_bigml.errors.DataError: t.csv repeats the column name 'target'; give every column its own name.
    """
    names = pd.Index([str(c) for c in columns])
    repeated = list(dict.fromkeys(names[names.duplicated()]))
    if repeated:
        listed = ", ".join(repr(c) for c in repeated[:10])
        noun = "name" if len(repeated) == 1 else "names"
        raise DataError(f"{name} repeats the column {noun} {listed}; give every column its own name.")


def check_feature_values(X, name="the table"):
    """Refuse feature columns with no values at all, and numeric columns holding infinities.

    >>> check_feature_values(pd.DataFrame({"a": [1.0, np.inf], "b": [np.nan, np.nan]}), "t.csv")
    Traceback (most recent call last):
    ...
    keras_bigml.errors.DataError: t.csv has columns with no values at all: b; drop them.
    """
    empty = X.columns[X.isna().all().to_numpy()]
    if len(empty):
        raise DataError(f"{name} has columns with no values at all: {_names(empty)}; drop them.")
    numeric = X.select_dtypes("number")
    infinite = numeric.columns[np.isinf(numeric.to_numpy(dtype=np.float64)).any(axis=0)]
    if len(infinite):
        raise DataError(
            f"{name} has infinite values in columns {_names(infinite)}; "
            "replace them (e.g. by NaN) or drop them."
        )


def iter_table_chunks(path, target, chunk_rows=10_000, columns=None):
    """Yield ``(X, y)`` chunks of a CSV or Parquet file without loading it whole.

    Memory stays bounded by ``chunk_rows`` whatever the file's size.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> pd.DataFrame({"a": range(5), "y": [0, 1, 0, 1, 0]}).to_csv(path, index=False)
    >>> [len(X) for X, y in iter_table_chunks(path, "y", chunk_rows=2)]
    [2, 2, 1]
    """
    path = os.fspath(path)
    _check_file(path)
    if path.endswith(".csv"):
        chunks = pd.read_csv(path, chunksize=chunk_rows, usecols=columns)
    else:
        chunks = _parquet_batches(path, chunk_rows, columns)
    for index, chunk in enumerate(chunks):
        yield split_target(chunk, target, f"{path} (chunk {index})")


def _parquet_batches(path, chunk_rows, columns):
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        for batch in file.iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()


def _builtin(name):
    import sklearn.datasets

    loader = getattr(sklearn.datasets, BUILTIN_TABLES[name][0])
    return loader(as_frame=True).frame


def _read_file(path):
    _check_file(path)
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty.")
    try:
        if path.endswith(".csv"):
            # pandas renames a repeated header name ("target" -> "target.1"): read the header as it is.
            check_unique_columns(pd.read_csv(path, header=None, nrows=1).iloc[0].tolist(), path)
            return pd.read_csv(path)
        import pyarrow.parquet as pq

        check_unique_columns(pq.read_schema(path).names, path)
        return pd.read_parquet(path)
    except ImportError:
        raise DataError(f"Reading {path} needs pyarrow: pip install 'keras_bigml[parquet]'.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} holds no columns (an empty file).") from None
    except DataError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"Cannot read {path} as a table ({error}).") from None


def _check_file(path):
    if not path.endswith(TABLE_EXTENSIONS):
        if os.sep not in path and "." not in path:
            raise DataError(
                f"Unknown table {path!r}: use one of {', '.join(BUILTIN_TABLES)}, "
                "or a .csv or .parquet path."
            )
        raise DataError(f"{path}: tables are read from .csv or .parquet files.")
    if not os.path.isfile(path):
        raise DataError(f"No such file: {path}")


def _columns(frame):
    return _names(frame.columns)


def _names(columns, limit=20):
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def check_test_size(test_size):
    """Refuse a held-out share outside (0, 1).

    >>> check_test_size(1.5)
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ConfigError: test_size must be a share of the rows between 0 and 1, got 1.5.
    """
    number = isinstance(test_size, (int, float, np.number)) and not isinstance(test_size, bool)
    if not number or not 0 < test_size < 1:
        raise ConfigError(f"test_size must be a share of the rows between 0 and 1, got {test_size!r}.")


def check_target(y, task, test_size, name="the table"):
    """Refuse a target that cannot be split and learned for ``task``.

    Classification needs two classes or more and, for the stratified split, at
    least two rows per class and enough test and training rows for one of each
    class; regression needs a numeric target and two rows on each side.

    >>> check_target(pd.Series([0, 0, 1, 1, 2], name="label"), "classification", 0.5, "t.csv")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_bigml.errors.DataError: Class 2 of the target 'label' of t.csv has only 1 row; a stratified ...
    """
    check_test_size(test_size)
    target = y.name
    n_test = int(np.ceil(test_size * len(y)))
    n_train = len(y) - n_test
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(
                f"The target {target!r} of {name} is not numeric (dtype {y.dtype}); "
                "regression needs numbers: use task='classification'."
            )
        if n_test < 2 or n_train < 2:
            raise ConfigError(
                f"test_size {test_size} splits the {len(y)} rows of {name} into {n_train} training "
                f"and {n_test} test rows; regression needs at least 2 on each side."
            )
        return
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"The target {target!r} of {name} has one class ({_plain(counts.index[0])!r} in all "
            f"{len(y)} rows); classification needs at least two."
        )
    small = counts[counts < 2]
    if len(small):
        more = f" (and {len(small) - 1} more classes that small)" if len(small) > 1 else ""
        raise DataError(
            f"Class {_plain(small.index[0])!r} of the target {target!r} of {name} has only "
            f"{small.iloc[0]} row{more}; a stratified split needs at least 2 rows per class: "
            "drop or merge it."
        )
    if n_test < len(counts) or n_train < len(counts):
        raise ConfigError(
            f"test_size {test_size} splits the {len(y)} rows of {name} into {n_train} training and "
            f"{n_test} test rows, but each side needs a row of each of the {len(counts)} classes: "
            "choose another test_size."
        )


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def infer_task(y):
    """``"classification"`` for labels (strings, booleans, few integers), else ``"regression"``.

    >>> infer_task(pd.Series([0, 1, 1])), infer_task(pd.Series([0.5, 1.7, 3.2]))
    ('classification', 'regression')
    """
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = np.asarray(y)
    if np.issubdtype(values.dtype, np.integer) or np.all(np.mod(values, 1) == 0):
        return "classification" if len(np.unique(values)) <= max(20, len(values) // 50) else "regression"
    return "regression"
