"""Tables: scikit-learn's bundled sets by name, CSV and Parquet files, chunked reading.

Every loader returns ``(X, y)`` with ``X`` a pandas DataFrame of features and ``y`` a
Series (the target column), so mixed numeric and categorical columns keep their types.
"""

import os

import numpy as np
import pandas as pd

from keras_bigml.errors import DataError

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
    if frame.empty:
        raise DataError(f"{name} has no rows.")
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
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise DataError(f"{name} has no feature columns besides the target {target!r}.")
    return X, y


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
    try:
        if path.endswith(".csv"):
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except ImportError:
        raise DataError(f"Reading {path} needs pyarrow: pip install 'keras_bigml[parquet]'.") from None
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
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")


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
