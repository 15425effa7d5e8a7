"""Tables: scikit-learn's bundled sets by name, CSV and Parquet files, partitioned sources.

`load_table` returns ``(X, y)`` with ``X`` a pandas DataFrame of features and ``y`` a
Series (the target column), so mixed numeric and categorical columns keep their types.

Tables larger than memory stay in their files: `open_table` describes a directory of
Parquet or CSV parts (as Spark, Dask or any Parquet writer leaves them), a glob, or one
large file, as a list of `Part` objects that are read batch by batch (`PartitionedTable.batches`)
or whole on a Dask worker (`PartitionedTable.read`). `RowSplit` assigns each row to the
training, validation or test rows from a seed and the row's place in its file, so every
engine and every batch size sees the same split without a global shuffle.
"""

import glob as globbing
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_bigml.errors import ConfigError, DataError
from keras_bigml.files import plain_value

BUILTIN_TABLES = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}
TABLE_EXTENSIONS = (".csv", ".parquet", ".pq")
BATCH_ROWS = 65_536


def load_table(source: str | os.PathLike | pd.DataFrame, target: str | None = None) -> tuple[pd.DataFrame, pd.Series]:
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

    A directory of parts or a glob is read part by part and concatenated (for tables
    that fit in memory; larger ones train with ``engine="out_of_core"`` or ``"dask"``).
    """
    if isinstance(source, pd.DataFrame):
        frame, name = source, "the DataFrame"
    else:
        source = os.fspath(source)
        if source in BUILTIN_TABLES:
            frame, target, name = _builtin(source), target or "target", source
        elif is_partitioned(source):
            table = open_table(source)
            frame = pd.concat([table.read(part) for part in table.parts], ignore_index=True)
            name = source
        else:
            frame, name = _read_file(source), source
    return split_target(frame, target, name)


def is_partitioned(source: str | os.PathLike) -> bool:
    """True for a directory or a glob pattern (several parts), False for one file or a name.

    >>> is_partitioned("parts/*.parquet"), is_partitioned("iris")
    (True, False)
    """
    source = os.fspath(source)
    return os.path.isdir(source) or globbing.has_magic(source)


def split_target(frame: pd.DataFrame, target: str | None, name: str = "the table") -> tuple[pd.DataFrame, pd.Series]:
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


def check_unique_columns(columns: Iterable[str], name: str = "the table") -> None:
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


def check_feature_values(X: pd.DataFrame, name: str = "the table") -> None:
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


def iter_table_chunks(path: str | os.PathLike, target: str, chunk_rows: int = 10_000,
                      columns: Sequence[str] | None = None) -> Iterator[tuple[pd.DataFrame, pd.Series]]:
    """Yield ``(X, y)`` chunks of a CSV or Parquet file (or of every part of a directory or glob).

    Memory stays bounded by ``chunk_rows`` whatever the file's size.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> pd.DataFrame({"a": range(5), "y": [0, 1, 0, 1, 0]}).to_csv(path, index=False)
    >>> [len(X) for X, y in iter_table_chunks(path, "y", chunk_rows=2)]
    [2, 2, 1]
    """
    table = open_table(path)
    index = 0
    for part in table.parts:
        for _, _, chunk in table.batches(part, columns=columns, batch_rows=chunk_rows):
            yield split_target(chunk, target, f"{part.path} (chunk {index})")
            index += 1


@dataclass(frozen=True)
class Block:
    """The unit of the seeded split: one row group of a Parquet file, or a whole CSV file."""

    file: int
    row_group: int
    rows: int | None


@dataclass(frozen=True)
class Part:
    """One partition: a file, or some row groups of one large Parquet file."""

    index: int
    path: str
    blocks: tuple

    @property
    def rows(self) -> int | None:
        """Rows in the part, or None for CSV (known only once read)."""
        counts = [block.rows for block in self.blocks]
        return None if None in counts else sum(counts)


class PartitionedTable:
    """A table stored in one or more Parquet or CSV files, read part by part.

    Create it with :func:`open_table`. Every part has the same columns (checked when
    opened). Parquet is read row group by row group with pre-buffering off and
    pyarrow's memory pool emptied after each batch, so a pass over the table holds
    one batch, not the file. Instances are small and picklable: Dask workers read
    the parts themselves (so the paths must be reachable from every worker).
    """

    def __init__(self, source, files, file_format, columns, meta, parts):
        self.source = source
        self.files = files
        self.format = file_format
        self.columns = columns
        self.meta = meta
        self.parts = parts

    @property
    def rows(self) -> int | None:
        """Rows in the table, or None when some part is CSV."""
        counts = [part.rows for part in self.parts]
        return None if None in counts else sum(counts)

    def __repr__(self):
        rows = "" if self.rows is None else f", {self.rows} rows"
        return f"<PartitionedTable {self.source!r}: {len(self.parts)} {self.format} parts{rows}>"

    def batches(self, part: Part, columns: Sequence[str] | None = None,
                batch_rows: int = BATCH_ROWS) -> Iterator[tuple[Block, int, pd.DataFrame]]:
        """Yield ``(block, first_row_in_block, frame)`` for each batch of ``part``, in order.

        A batch holds at most ``batch_rows`` rows and never spans two blocks.
        """
        columns = self._check_columns(columns)
        try:
            if self.format == "parquet":
                yield from self._parquet_batches(part, columns, batch_rows)
            else:
                yield from self._csv_batches(part, columns, batch_rows)
        except DataError:
            raise
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise DataError(f"Cannot read part {part.path} ({_one_line(error)}).") from None

    def read(self, part: Part, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The whole of ``part`` as one DataFrame (for a Dask worker holding that partition)."""
        frames = [frame for _, _, frame in self.batches(part, columns, batch_rows=1 << 22)]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _check_columns(self, columns):
        if columns is None:
            return list(self.columns)
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise DataError(
                f"{self.source} has no column {_names(missing)}; its columns are {_names(self.columns)}."
            )
        return list(columns)

    def _parquet_batches(self, part, columns, batch_rows):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pool = pa.default_memory_pool()
        # pre_buffer=False: pyarrow otherwise buffers whole row groups and keeps them in its pool.
        with pq.ParquetFile(part.path, pre_buffer=False) as file:
            for block in part.blocks:
                if block.rows == 0:  # a file without row groups
                    continue
                start = 0
                for batch in file.iter_batches(batch_size=batch_rows, row_groups=[block.row_group],
                                               columns=columns, use_threads=False):
                    frame = batch.to_pandas()
                    del batch
                    pool.release_unused()
                    yield block, start, frame
                    start += len(frame)

    def _csv_batches(self, part, columns, batch_rows):
        (block,) = part.blocks
        start = 0
        with pd.read_csv(part.path, chunksize=batch_rows, usecols=columns) as reader:
            for frame in reader:
                yield block, start, frame[columns]
                start += len(frame)


def open_table(source: str | os.PathLike, rows_per_part: int | None = None) -> PartitionedTable:
    """Describe a Parquet or CSV table in one or more files without reading its rows.

    Parameters
    ----------
    source : str or path
        A directory of parts (files ending ``.parquet``, ``.pq`` or ``.csv``, searched
        recursively; names starting with ``_`` or ``.``, such as Spark's ``_SUCCESS``,
        are skipped), a glob such as ``"data/part-*.parquet"``, or one file.
    rows_per_part : int, optional
        For one Parquet file, gather consecutive row groups into parts of about this
        many rows (default: one part per row group). Several files: one part per file.

    Returns
    -------
    PartitionedTable

    Examples
    --------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}).to_parquet(os.path.join(folder, f"part-{i}.parquet"))
    >>> table = open_table(folder)
    >>> len(table.parts), table.rows, table.columns
    (3, 6, ['x', 'y'])
    """
    source = os.fspath(source)
    files = _table_files(source)
    formats = {"csv" if path.endswith(".csv") else "parquet" for path in files}
    if len(formats) > 1:
        raise DataError(f"{source} mixes CSV and Parquet parts; keep one format per table.")
    file_format = formats.pop()
    try:
        schemas = [_file_columns(path, file_format) for path in files]
    except ImportError:
        raise DataError(f"Reading {source} needs pyarrow: pip install 'keras_bigml[parquet]'.") from None
    columns = schemas[0][0]
    for path, (names, _) in zip(files[1:], schemas[1:], strict=True):
        if set(names) != set(columns):
            missing = [c for c in columns if c not in names]
            extra = [c for c in names if c not in columns]
            described = "; ".join(
                [f"missing {_names(missing)}"] * bool(missing) + [f"extra {_names(extra)}"] * bool(extra)
            )
            raise DataError(f"Part {path} has other columns than {files[0]}: {described}.")
    meta = _meta(files[0], file_format, columns)
    parts = []
    for file_index, (path, (_, row_groups)) in enumerate(zip(files, schemas, strict=True)):
        blocks = [Block(file_index, group, rows) for group, rows in enumerate(row_groups)] or [
            Block(file_index, 0, 0)]
        if len(files) > 1 or len(blocks) == 1:
            groups = [blocks]
        else:
            groups = _gather(blocks, rows_per_part)
        parts.extend(Part(len(parts) + i, path, tuple(group)) for i, group in enumerate(groups))
    return PartitionedTable(source, files, file_format, columns, meta, parts)


def _table_files(source):
    if os.path.isdir(source):
        files = []
        for root, folders, names in os.walk(source):
            folders[:] = sorted(f for f in folders if not f.startswith(("_", ".")))
            files.extend(os.path.join(root, name) for name in sorted(names)
                         if name.endswith(TABLE_EXTENSIONS) and not name.startswith(("_", ".")))
        if not files:
            raise DataError(f"{source} holds no .parquet or .csv parts.")
        return files
    if globbing.has_magic(source):
        files = sorted(path for path in globbing.glob(source) if os.path.isfile(path))
        if not files:
            raise DataError(f"No files match {source}.")
        unknown = [path for path in files if not path.endswith(TABLE_EXTENSIONS)]
        if unknown:
            raise DataError(f"{unknown[0]}: tables are read from .csv or .parquet files.")
        return files
    _check_file(source)
    return [source]


def _file_columns(path, file_format):
    """(column names, rows per row group) of one file, from its header or footer only."""
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty.")
    try:
        if file_format == "csv":
            names = [str(c) for c in pd.read_csv(path, header=None, nrows=1).iloc[0].tolist()]
            check_unique_columns(names, path)
            return names, [None]
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(path)
        names = list(metadata.schema.to_arrow_schema().names)
        check_unique_columns(names, path)
        return names, [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} holds no columns (an empty file).") from None
    except (ValueError, OSError) as error:
        raise DataError(f"Cannot read {path} as a table ({_one_line(error)}).") from None


def _meta(path, file_format, columns):
    """An empty DataFrame with the table's column types (from a Parquet schema or a CSV's first rows)."""
    if file_format == "csv":
        return pd.read_csv(path, nrows=1000).iloc[:0]
    import pyarrow.parquet as pq

    return pq.read_schema(path).empty_table().to_pandas()[columns]


def _gather(blocks, rows_per_part):
    if rows_per_part is None:
        return [[block] for block in blocks]
    groups, current, rows = [], [], 0
    for block in blocks:
        if current and rows + block.rows > rows_per_part:
            groups.append(current)
            current, rows = [], 0
        current.append(block)
        rows += block.rows
    return groups + [current]


def _one_line(error):
    return " ".join(str(error).split())[:300]


class RowSplit:
    """Seeded per-row split into training, validation and test rows, without a global shuffle.

    Row ``r`` of a block (a Parquet row group, or a CSV file) draws ``u``, the
    ``r``-th number of ``numpy.random.default_rng``-style PCG64 seeded with
    ``[seed, file index, row group]``; it is a test row when ``u < test_size``, a
    validation row when ``u < test_size + validation_size``, else a training row.
    The split depends only on the seed and the row's place in its file: the same
    for every engine, partitioning and batch size. Each row is held out with
    probability ``test_size`` (a Bernoulli split, not a stratified one).

    >>> split = RowSplit(test_size=0.25, seed=0)
    >>> block = Block(file=0, row_group=0, rows=8)
    >>> whole = split.draws(block, 0, 8)
    >>> bool(np.array_equal(whole[3:], split.draws(block, 3, 5)))
    True
    >>> split.which(whole).tolist()
    ['train', 'train', 'test', 'test', 'train', 'train', 'train', 'train']
    """

    def __init__(self, test_size=0.25, validation_size=0.0, seed=0):
        check_test_size(test_size)
        if not 0 <= validation_size < 1 - test_size:
            raise ConfigError(
                f"validation_size must be at least 0 and leave training rows beside test_size {test_size}, "
                f"got {validation_size!r}."
            )
        self.test_size = test_size
        self.validation_size = validation_size
        self.seed = seed

    def draws(self, block: Block, start: int, n: int) -> np.ndarray:
        """The uniform numbers of rows ``start`` to ``start + n`` of ``block``."""
        generator = np.random.Generator(np.random.PCG64([self.seed, block.file, block.row_group]))
        generator.bit_generator.advance(start)  # one 64-bit step per double
        return generator.random(n)

    def masks(self, draws: np.ndarray) -> dict[str, np.ndarray]:
        """``{"train": mask, "validation": mask, "test": mask}`` for an array of draws."""
        test = draws < self.test_size
        validation = ~test & (draws < self.test_size + self.validation_size)
        return {"train": ~(test | validation), "validation": validation, "test": test}

    def which(self, draws: np.ndarray) -> np.ndarray:
        """The name of each row's share, for inspection."""
        masks = self.masks(draws)
        return np.select([masks["test"], masks["validation"]], ["test", "validation"], "train")


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


def check_test_size(test_size: float) -> None:
    """Refuse a held-out share outside (0, 1).

    >>> check_test_size(1.5)
    Traceback (most recent call last):
    ...
    keras_bigml.errors.ConfigError: test_size must be a share of the rows between 0 and 1, got 1.5.
    """
    number = isinstance(test_size, (int, float, np.number)) and not isinstance(test_size, bool)
    if not number or not 0 < test_size < 1:
        raise ConfigError(f"test_size must be a share of the rows between 0 and 1, got {test_size!r}.")


def check_target(y: pd.Series, task: str, test_size: float, name: str = "the table") -> None:
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
            f"The target {target!r} of {name} has one class ({plain_value(counts.index[0])!r} in all "
            f"{len(y)} rows); classification needs at least two."
        )
    small = counts[counts < 2]
    if len(small):
        more = f" (and {len(small) - 1} more classes that small)" if len(small) > 1 else ""
        raise DataError(
            f"Class {plain_value(small.index[0])!r} of the target {target!r} of {name} has only "
            f"{small.iloc[0]} row{more}; a stratified split needs at least 2 rows per class: "
            "drop or merge it."
        )
    if n_test < len(counts) or n_train < len(counts):
        raise ConfigError(
            f"test_size {test_size} splits the {len(y)} rows of {name} into {n_train} training and "
            f"{n_test} test rows, but each side needs a row of each of the {len(counts)} classes: "
            "choose another test_size."
        )



def infer_task(y: pd.Series | np.ndarray) -> str:
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
