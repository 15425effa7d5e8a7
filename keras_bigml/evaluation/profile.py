"""Data profiles: per-column statistics and the problems worth a warning, partition by partition.

``profile_table(source, target)`` reads a table once, one chunk or partition at a
time, and returns a :class:`TableProfile`: each column's type, missing share,
distinct values, constant or near-constant, high cardinality, skew and
outliers; duplicated rows; target imbalance; strongly correlated pairs; and
columns that leak the target. Its ``warnings`` are one line each, starting with
the kind (``leak``, ``duplicate``, ``constant``, ``missing``, ``imbalance``,
``outliers``, ``correlated``) and naming the column or the rows.

Every chunk or partition is summarized on its own and the summaries are merged,
so memory is bounded by the chunk, the sample and the sketches below, never by
the table, and a Dask DataFrame is summarized on its workers (one task per
partition, merged in a tree; only the final summary comes to the client).

What is exact and what is approximate:

- Exact (up to floating point) for any number of rows and partitions: row and
  missing counts, minimum, maximum, mean, standard deviation and skewness
  (pairwise merged moments, Chan et al.), whether a numeric column holds only
  integers.
- Exact while small, estimated beyond: distinct values (a k-minimum-values
  sketch of 4096 hashes: exact below 4096 distinct values, about 1.6% relative
  error above); top values and class counts (Misra-Gries counters, 256 per
  column: exact for columns with at most 256 distinct values, else each count is
  low by at most rows/257, so a near-constant share is a lower bound);
  duplicated rows (64-bit row hashes: exact up to 1,000,000 distinct rows; above
  that a hash-based sample that keeps all copies of a row together, so the
  duplicate share is estimated without bias). So ``missing`` and ``constant``
  warnings are always exact, near-constant ones while the column has at most
  256 distinct values, ``duplicate`` ones up to a million distinct rows.
- From a uniform sample of ``sample_rows`` rows (bottom-k random keys, merged
  exactly across partitions; the whole table when it has no more rows):
  quartiles and outliers, correlated pairs, leaked columns.

Leak check: for each feature column alone, a small model is cross-validated
(5 folds) on at most 3,000 rows of the sample: a decision tree (64 leaves) for
numbers, target encoding for categories (`sklearn.preprocessing.TargetEncoder`,
whose out-of-fold encoding is the held-out prediction). A column leaks when its held-out ROC AUC
(classification; one-vs-rest macro for several classes) or R^2 (regression)
reaches ``leak_threshold`` (0.99): no honest single feature predicts a target
that well, a copy or a by-product of the target does. Regression models predict
the target's ranks, so that a heavy tail does not hide a copy.

Why not skrub's ``TableReport`` or ydata-profiling: both summarize one pandas
(or polars; Spark for ydata) DataFrame in memory, neither accepts chunks or Dask
partitions (ydata-profiling's Dask support is an open request, issue #612;
skrub's report neither subsamples large tables yet, skrub issue #1846, nor
checks a target for leaks). ydata-profiling would also pin older numpy, pandas,
scipy and matplotlib than this package needs (pip's resolver asks to downgrade
numpy 2.4 -> 2.3 and pandas 3.1 -> 2.3). Mergeable statistics are short to
write and are what partitioned data needs.

No TensorFlow is imported here.
"""

import html
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from keras_bigml.errors import ConfigError, DataError

if TYPE_CHECKING:
    import dask.dataframe as dd

WARNING_KINDS = ("leak", "duplicate", "constant", "missing", "imbalance", "outliers", "correlated")
_DISTINCT_SKETCH = 4096
_TOP_COUNTERS = 256
_MAX_ROW_HASHES = 1_000_000
_HASH_SPACE = 2.0**64
_HIGH_CARDINALITY = 50


@dataclass
class ColumnProfile:
    """One column's statistics; ``None`` where a statistic does not apply to its type.

    ``type`` is ``numeric``, ``boolean``, ``datetime``, ``categorical`` (text,
    categories, mixed) or ``empty`` (no values). ``count`` counts the values
    present; ``top_value`` is the most frequent one when any value repeats, with
    its ``top_share`` of ``count``. ``high_cardinality``: a categorical column
    with more than 50 distinct values, at least one for every two rows (an
    identifier, or free text). ``skewed``: absolute skewness (Fisher-Pearson) of
    2 or more. ``quartiles`` and ``outliers`` (an estimate when the sample is not
    the whole table) come from the row sample; ``leak_score`` is the held-out
    ROC AUC or R^2 of a model of this column alone.
    """

    name: str
    type: str
    count: int
    missing: int
    missing_share: float
    distinct: int
    distinct_exact: bool
    top_value: object = None
    top_share: float = 0.0
    constant: bool = False
    near_constant: bool = False
    high_cardinality: bool = False
    minimum: object = None
    maximum: object = None
    mean: float | None = None
    std: float | None = None
    skew: float | None = None
    skewed: bool = False
    quartiles: list | None = None
    outliers: int | None = None
    outlier_share: float | None = None
    leak_score: float | None = None


@dataclass
class TableProfile:
    """What :func:`profile_table` found; ``to_dict()`` is the content of ``profile.json``.

    ``columns`` maps each column to its :class:`ColumnProfile`. Rows are
    numbered from 0 in reading order (chunks and partitions one after the
    other): ``duplicate_examples`` holds up to five ``[row, earlier row it
    repeats]`` pairs. ``correlated`` lists ``{"columns": [a, b], "r": r}``,
    ``leaks`` ``{"column", "score"}`` (score in ``leak_metric``), ``alerts`` one
    ``{"kind", "columns", "message"}`` per warning, and ``approximate`` says which
    statistics are estimates for this table.
    """

    rows: int
    columns: dict
    partitions: int
    target: str | None = None
    task: str | None = None
    duplicate_rows: int = 0
    duplicate_share: float = 0.0
    duplicate_examples: list = field(default_factory=list)
    duplicates_exact: bool = True
    target_counts: dict | None = None
    imbalance_ratio: float | None = None
    correlated: list = field(default_factory=list)
    leaks: list = field(default_factory=list)
    leak_metric: str | None = None
    sample_rows: int = 0
    warnings: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    approximate: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (numbers as Python floats and ints, names as strings)."""
        return _plain(asdict(self))


@dataclass(frozen=True)
class _Settings:
    sample_rows: int
    random_state: int
    max_row_hashes: int


@dataclass
class _ColumnSummary:
    """Mergeable statistics of one column over some rows."""

    kind: str  # "empty" (no values yet), "numeric", "boolean", "datetime", "categorical"
    count: int = 0
    missing: int = 0
    infinite: int = 0
    counters: pd.Series = None  # Misra-Gries: value -> count
    counters_lossy: bool = False
    hashes: np.ndarray = None  # the smallest distinct value hashes
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    minimum: object = None
    maximum: object = None
    integral: bool = True


@dataclass
class _Summary:
    """Mergeable statistics of consecutive rows of a table (a chunk, a partition, or several)."""

    rows: int
    partitions: int
    columns: dict
    sample: pd.DataFrame
    sample_keys: np.ndarray
    sample_positions: np.ndarray
    row_hashes: np.ndarray
    row_first: np.ndarray
    row_second: np.ndarray
    row_counts: np.ndarray
    hash_limit: int


def profile_table(source: "str | os.PathLike | pd.DataFrame | dd.DataFrame | Iterable", target: str | None = None,
                  *, task: str | None = None, chunk_rows: int = 100_000, sample_rows: int = 20_000,
                  leak_threshold: float = 0.99, correlation_threshold: float = 0.95,
                  missing_threshold: float = 0.05, near_constant_share: float = 0.99,
                  imbalance_ratio: float = 0.2, outlier_iqr: float = 3.0, outlier_share: float = 0.001,
                  max_row_hashes: int = _MAX_ROW_HASHES, random_state: int = 0) -> TableProfile:
    """Profile a table, chunk by chunk or partition by partition.

    Parameters
    ----------
    source : DataFrame, dask DataFrame, str, path, or iterable of chunks
        A pandas DataFrame; a Dask DataFrame (summarized on its workers); a
        bundled table name (``iris``, ``breast_cancer``, ...); a CSV or Parquet
        file, a directory or a glob of such parts (read in batches of at most
        ``chunk_rows``, as `keras_bigml.data.tables.open_table` reads them); or
        an iterable of DataFrames or ``(X, y)`` chunks such as
        `keras_bigml.data.tables.iter_table_chunks` yields (their ``y`` names
        the target).
    target : str, optional
        The target column: enables the imbalance and leak checks.
    task : {"classification", "regression"}, optional
        Inferred from the target like `keras_bigml.data.tables.infer_task`.
    chunk_rows : int
        Rows read at once from files.
    sample_rows : int
        Size of the uniform row sample for quartiles, outliers, correlations and
        leaks (at most 3,000 of them fit the leak models).
    leak_threshold : float
        Held-out ROC AUC or R^2 of a one-column model at which the column leaks.
    correlation_threshold : float
        Absolute Pearson correlation at which two numeric columns are reported.
    missing_threshold : float
        Missing share at which a column is reported.
    near_constant_share : float
        Share of the most frequent value at which a column is near-constant.
    imbalance_ratio : float
        Rarest class's count over the most common one's below which the target is imbalanced.
    outlier_iqr : float
        Values farther than this many interquartile ranges beyond the quartiles are outliers.
    outlier_share : float
        Share of a column's values that must be outliers for a warning (0.1%: one
        value in tables of up to 1,000 rows; in large tables a few far values
        come with any distribution, normal ones included).
    max_row_hashes : int
        Distinct rows whose hashes are kept for the duplicate count (16-32 bytes
        each); beyond it the count is estimated from a hash-based sample.
    random_state : int
        Seed of the row sample and the leak models' folds.

    Returns
    -------
    TableProfile

    Examples
    --------
    >>> frame = pd.DataFrame({"x": np.arange(200.0), "same": 1.0, "y": np.arange(200) % 2})
    >>> frame["y_copy"] = frame["y"]
    >>> for line in profile_table(frame, target="y").warnings:
    ...     print(line)
    leak: column 'y_copy' alone predicts the target 'y' (held-out ROC AUC 1.000 >= 0.99)
    constant: column 'same' has a single value (1) in all 200 non-missing rows
    """
    thresholds = dict(leak_threshold=leak_threshold, correlation_threshold=correlation_threshold,
                      missing_threshold=missing_threshold, near_constant_share=near_constant_share,
                      imbalance_ratio=imbalance_ratio, outlier_share=outlier_share)
    for name, value in thresholds.items():
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{name} must be in (0, 1], got {value!r}.")
    for name, value in (("chunk_rows", chunk_rows), ("sample_rows", sample_rows),
                        ("max_row_hashes", max_row_hashes)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
    if not outlier_iqr > 0:
        raise ConfigError(f"outlier_iqr must be positive, got {outlier_iqr!r}.")
    if task not in (None, "classification", "regression"):
        raise ConfigError(f"task must be 'classification' or 'regression', got {task!r}.")
    settings = _Settings(int(sample_rows), int(random_state), int(max_row_hashes))
    summary, target = _summarize_source(source, target, chunk_rows, settings)
    if summary is None or summary.rows == 0:
        raise DataError(f"{_describe(source)} has no rows to profile.")
    if target is not None and target not in summary.columns:
        raise DataError(f"{_describe(source)} has no target column {target!r}; its columns are "
                        f"{', '.join(map(str, summary.columns))}.")
    thresholds["outlier_iqr"] = outlier_iqr
    return _finish(summary, target, task, thresholds, settings)


# Reading sources ---------------------------------------------------------------------------------

def _summarize_source(source, target, chunk_rows, settings):
    """Return (merged summary, target name) for any source profile_table accepts."""
    if isinstance(source, pd.DataFrame):
        _check_frame(source, "the DataFrame")
        return _summarize(source, 0, settings), target
    if hasattr(source, "to_delayed") and hasattr(source, "npartitions"):
        return _summarize_dask(source, settings), target
    if isinstance(source, (str, os.PathLike)):
        return _merge_chunks(_source_chunks(os.fspath(source), chunk_rows), settings, target)
    if isinstance(source, Iterable):
        return _merge_chunks(iter(source), settings, target)
    raise DataError(f"Cannot profile a {type(source).__name__}: pass a DataFrame, a Dask DataFrame, a table "
                    "name or path, or an iterable of DataFrame chunks.")


def _merge_chunks(chunks, settings, target):
    summary = None
    for index, chunk in enumerate(chunks):
        if isinstance(chunk, tuple) and len(chunk) == 2 and isinstance(chunk[1], pd.Series):
            features, labels = chunk
            target = labels.name if target is None else target
            chunk = features.assign(**{str(labels.name): labels.to_numpy()})
        if not isinstance(chunk, pd.DataFrame):
            raise DataError(f"Chunk {index} is a {type(chunk).__name__}, not a DataFrame or an (X, y) pair.")
        _check_frame(chunk, f"chunk {index}")
        if summary is not None and list(chunk.columns) != list(summary.columns):
            raise DataError(f"Chunk {index} has columns {_names(chunk.columns)}, but the chunks before it "
                            f"have {_names(summary.columns)}.")
        part = _summarize(chunk, index, settings)
        summary = part if summary is None else _merge(summary, part, settings)
    return summary, target


def _source_chunks(source, chunk_rows):
    """A bundled table whole, else `keras_bigml.data.tables.open_table`'s parts batch by batch (a file,
    a directory of parts or a glob; the same reading as the out-of-core and Dask engines')."""
    from keras_bigml.data.tables import BUILTIN_TABLES, load_table, open_table

    if source in BUILTIN_TABLES:
        yield load_table(source)
        return
    table = open_table(source)
    for part in table.parts:
        for _, _, frame in table.batches(part, batch_rows=chunk_rows):
            yield frame


def _summarize_dask(frame, settings):
    """Summarize each partition on the workers and merge the summaries in a tree there."""
    import dask

    _check_frame(frame._meta, "the Dask DataFrame")
    parts = frame.to_delayed()
    summaries = [dask.delayed(_summarize)(part, index, settings) for index, part in enumerate(parts)]
    while len(summaries) > 1:
        pairs = [summaries[i:i + 2] for i in range(0, len(summaries), 2)]
        summaries = [dask.delayed(_merge)(*pair, settings) if len(pair) == 2 else pair[0] for pair in pairs]
    return summaries[0].compute()


def _check_frame(frame, name):
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        raise DataError(f"{name} has more than one column named {', '.join(map(repr, duplicated))}.")


# Summaries of rows, and their merge -------------------------------------------------------------

def _summarize(frame, index, settings):
    """The mergeable summary of one chunk; ``index`` seeds its share of the row sample."""
    rows = len(frame)
    columns = {name: _summarize_column(frame[name]) for name in frame.columns}
    keys = np.random.default_rng([settings.random_state, index]).random(rows)
    chosen = np.sort(np.argsort(keys, kind="stable")[:settings.sample_rows])
    hashes = pd.util.hash_pandas_object(_hashable(frame), index=False).to_numpy()
    unique, first, second, counts = _row_groups(hashes, np.arange(rows))
    summary = _Summary(rows, 1, columns, frame.iloc[chosen].reset_index(drop=True), keys[chosen], chosen,
                       unique, first, second, counts, hash_limit=2**64 - 1)
    return _cap_row_hashes(summary, settings)


def _summarize_column(series):
    values = series.dropna()
    summary = _ColumnSummary(_kind(series) if len(values) else "empty", count=len(values),
                             missing=len(series) - len(values))
    if summary.kind == "numeric":
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        numbers = numbers[~np.isnan(numbers)]
        finite = np.isfinite(numbers)
        summary.infinite = int((~finite).sum())
        numbers = numbers[finite]
        values = pd.Series(numbers)
        if len(numbers):
            summary.mean = float(numbers.mean())
            centred = numbers - summary.mean
            summary.m2, summary.m3 = float(np.dot(centred, centred)), float(np.sum(centred**3))
            summary.minimum, summary.maximum = float(numbers.min()), float(numbers.max())
            summary.integral = bool(np.all(numbers == np.floor(numbers)))
    elif summary.kind == "datetime":
        summary.minimum, summary.maximum = values.min(), values.max()
    elif summary.kind == "categorical":
        values = values.astype(str)
    summary.hashes, summary.counters, summary.counters_lossy = _count_values(values)
    return summary


def _count_values(values):
    """(smallest distinct value hashes, Misra-Gries counters, counters lossy?) from one sort of the
    values' hashes, where equal values make runs (np.unique and value_counts are 10-40 times slower
    on a column of distinct numbers)."""
    hashes = _value_hashes(values)
    order = np.argsort(hashes)
    ordered = hashes[order]
    starts = _run_starts(ordered)
    counts = np.diff(np.append(starts, len(ordered)))
    distinct = ordered[starts[:_DISTINCT_SKETCH]]
    lossy = len(counts) > _TOP_COUNTERS
    if lossy:  # Misra-Gries: lower every count by the (k+1)-th largest, keep the positive ones
        cut = np.partition(counts, -(_TOP_COUNTERS + 1))[-(_TOP_COUNTERS + 1)]
        heavy = counts > cut
        starts, counts = starts[heavy], counts[heavy] - cut
    return distinct, pd.Series(counts, index=values.iloc[order[starts]].to_numpy()), lossy


def _kind(series):
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "categorical"


def _value_hashes(values):
    kind = _kind(values)
    if kind == "numeric":
        return pd.util.hash_array(values.to_numpy(dtype=np.float64))
    if kind == "datetime":
        return pd.util.hash_array(values.to_numpy(dtype="datetime64[ns]").view(np.int64))
    return pd.util.hash_array(values.to_numpy(dtype=object))


def _numbers(series):
    """A column as float64 with NaN for missing and infinite values (datetimes as nanoseconds)."""
    missing = series.isna().to_numpy()
    if _kind(series) == "datetime":
        numbers = series.to_numpy(dtype="datetime64[ns]").view(np.int64).astype(np.float64)
    else:
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(missing | ~np.isfinite(numbers), np.nan, numbers)


def _hashable(frame):
    """Numbers as float64 so that 3 and 3.0 hash alike whatever each chunk's dtype."""
    numeric = [name for name in frame.columns if _kind(frame[name]) == "numeric"]
    return frame.astype(dict.fromkeys(numeric, np.float64)) if numeric else frame


def _row_groups(hashes, positions):
    """Group equal hashes: (unique hashes, first position, second position or -1, counts)."""
    order = np.argsort(hashes, kind="stable")  # positions ascend: within a group, first copy first
    hashes, positions = hashes[order], positions[order]
    starts = _run_starts(hashes)
    counts = np.diff(np.append(starts, len(hashes)))
    second = np.where(counts > 1, positions[np.minimum(starts + 1, len(positions) - 1)], -1)
    return hashes[starts], positions[starts], second, counts


def _run_starts(ordered):
    """Where each run of equal values starts in a sorted array."""
    return np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if len(ordered) else \
        np.zeros(0, dtype=np.int64)


def _truncate(counters, size):
    """Misra-Gries: keep at most ``size`` counters, lowering all by the (size+1)-th largest."""
    if len(counters) <= size:
        return counters, False
    cut = np.sort(counters.to_numpy())[-(size + 1)]
    counters = counters - cut
    return counters[counters > 0], True


def _merge(a, b, settings):
    """The summary of ``a``'s rows followed by ``b``'s."""
    if list(a.columns) != list(b.columns):
        raise DataError(f"Partitions have different columns: {_names(a.columns)} and {_names(b.columns)}.")
    columns = {name: _merge_columns(a.columns[name], b.columns[name]) for name in a.columns}
    keys = np.concatenate([a.sample_keys, b.sample_keys])
    positions = np.concatenate([a.sample_positions, b.sample_positions + a.rows])
    chosen = np.sort(np.argsort(keys, kind="stable")[:settings.sample_rows])
    sample = pd.concat([a.sample, b.sample], ignore_index=True).iloc[chosen].reset_index(drop=True)
    limit = min(a.hash_limit, b.hash_limit)
    hashes = np.concatenate([a.row_hashes, b.row_hashes])
    keep = hashes <= limit
    firsts = np.concatenate([a.row_first, b.row_first + a.rows])
    seconds = np.concatenate([a.row_second, np.where(b.row_second >= 0, b.row_second + a.rows, -1)])
    counts = np.concatenate([a.row_counts, b.row_counts])
    unique, first, second, merged_counts = _merge_row_groups(hashes[keep], firsts[keep], seconds[keep],
                                                             counts[keep])
    summary = _Summary(a.rows + b.rows, a.partitions + b.partitions, columns, sample, keys[chosen],
                       positions[chosen], unique, first, second, merged_counts, limit)
    return _cap_row_hashes(summary, settings)


def _merge_row_groups(hashes, firsts, seconds, counts):
    # Each side holds a hash once and the first side's rows come first: a stable sort by hash
    # puts the first side's entry first in each group.
    order = np.argsort(hashes, kind="stable")
    hashes, firsts, seconds, counts = hashes[order], firsts[order], seconds[order], counts[order]
    starts = _run_starts(hashes)
    unique = hashes[starts]
    total = np.add.reduceat(counts, starts) if len(hashes) else counts
    # The second copy: the first group's own second, else the next group's first row.
    has_next = np.append(hashes[1:] == hashes[:-1], False)
    later = np.where(has_next, np.append(firsts[1:], -1), -1)
    second = np.where(seconds[starts] >= 0, seconds[starts], later[starts])
    return unique, firsts[starts], second, total


def _cap_row_hashes(summary, settings):
    if len(summary.row_hashes) <= settings.max_row_hashes:
        return summary
    size = settings.max_row_hashes
    return replace(summary, row_hashes=summary.row_hashes[:size], row_first=summary.row_first[:size],
                   row_second=summary.row_second[:size], row_counts=summary.row_counts[:size],
                   hash_limit=int(summary.row_hashes[size - 1]))


def _merge_columns(a, b):
    if a.kind == "empty" or b.kind == "empty" or a.kind == b.kind:
        kind = b.kind if a.kind == "empty" else a.kind
    else:  # e.g. numbers in one CSV chunk, text in another: only counts remain meaningful
        kind = "categorical"
        a, b = _as_categorical(a), _as_categorical(b)
    merged = _ColumnSummary(kind, count=a.count + b.count, missing=a.missing + b.missing,
                            infinite=a.infinite + b.infinite)
    counters = a.counters.add(b.counters, fill_value=0)
    merged.counters, lossy = _truncate(counters, _TOP_COUNTERS)
    merged.counters_lossy = lossy or a.counters_lossy or b.counters_lossy
    merged.hashes = np.union1d(a.hashes, b.hashes)[:_DISTINCT_SKETCH]
    if kind in ("numeric", "datetime"):
        present = [s for s in (a, b) if s.minimum is not None]
        if present:
            merged.minimum = min(s.minimum for s in present)
            merged.maximum = max(s.maximum for s in present)
    if kind == "numeric":
        na, nb = a.count - a.infinite, b.count - b.infinite
        n = na + nb
        if n:
            delta = b.mean - a.mean
            merged.mean = a.mean + delta * nb / n
            merged.m2 = a.m2 + b.m2 + delta**2 * na * nb / n
            merged.m3 = (a.m3 + b.m3 + delta**3 * na * nb * (na - nb) / n**2
                         + 3 * delta * (na * b.m2 - nb * a.m2) / n)
        merged.integral = a.integral and b.integral
    return merged


def _as_categorical(summary):
    if summary.kind in ("categorical", "empty"):
        return summary
    counters = summary.counters.copy()
    counters.index = counters.index.astype(str)
    return _ColumnSummary("categorical", count=summary.count, missing=summary.missing, counters=counters,
                          counters_lossy=summary.counters_lossy, hashes=summary.hashes)


# From the merged summary to the profile -----------------------------------------------------------

def _finish(summary, target, task, thresholds, settings):
    sample = summary.sample.iloc[np.argsort(summary.sample_positions, kind="stable")].reset_index(drop=True)
    keys = summary.sample_keys[np.argsort(summary.sample_positions, kind="stable")]
    sampled = summary.rows > len(sample)
    columns = {name: _column_profile(name, col, summary.rows, sample[name], thresholds)
               for name, col in summary.columns.items()}
    profile = TableProfile(rows=summary.rows, columns=columns, partitions=summary.partitions,
                           target=None if target is None else str(target), sample_rows=len(sample),
                           settings={**thresholds, "sample_rows": settings.sample_rows,
                                     "random_state": settings.random_state})
    _duplicates(profile, summary)
    features = [name for name in summary.columns if name != target]
    profile.correlated = _correlated(sample, [n for n in features if _correlatable(columns[n])],
                                     thresholds["correlation_threshold"])
    if target is not None:
        target_summary = summary.columns[target]
        profile.task = task or _infer_task(target_summary)
        if profile.task == "classification":
            counts = _by_count(target_summary.counters)
            profile.target_counts = {_value(k): int(v) for k, v in counts.items()}
            if len(counts):
                profile.imbalance_ratio = float(counts.iloc[-1] / counts.iloc[0])
        usable = [n for n in features if not columns[n].constant and columns[n].count > 0]
        profile.leak_metric = "ROC AUC" if profile.task == "classification" else "R^2"
        scores = _leak_scores(sample, keys, usable, target, profile.task, settings)
        for name, score in scores.items():
            columns[name].leak_score = score
        profile.leaks = [{"column": str(n), "score": s} for n, s in scores.items()
                         if s >= thresholds["leak_threshold"]]
    profile.approximate = {
        "sampled": sampled,
        "from_sample": ["quartiles", "outliers", "correlated", "leaks"] if sampled else [],
        "distinct_estimated": [str(n) for n, c in columns.items() if not c.distinct_exact],
        "top_share_lower_bound": [str(n) for n, c in summary.columns.items()
                                  if c.counters_lossy and columns[n].top_value is not None],
        "duplicates_estimated": not profile.duplicates_exact,
    }
    profile.alerts = _alerts(profile, thresholds)
    profile.warnings = [alert["message"] for alert in profile.alerts]
    return profile


def _column_profile(name, col, rows, sample_values, thresholds):
    distinct, exact = _distinct(col.hashes)
    profile = ColumnProfile(name=str(name), type=col.kind, count=col.count, missing=col.missing,
                            missing_share=col.missing / rows, distinct=distinct, distinct_exact=exact)
    if len(col.counters):
        most = col.counters.max()
        if most > 1 or distinct == 1:  # a value seen once is no mode
            profile.top_value = _value(_first(col.counters.index[col.counters == most]))
            profile.top_share = float(most / col.count)
    profile.constant = col.count > 0 and distinct == 1
    profile.near_constant = not profile.constant and profile.top_share >= thresholds["near_constant_share"]
    profile.high_cardinality = (col.kind == "categorical" and distinct > _HIGH_CARDINALITY
                                and distinct >= 0.5 * col.count)
    if col.kind == "datetime" and col.minimum is not None:
        profile.minimum, profile.maximum = col.minimum.isoformat(), col.maximum.isoformat()
    if col.kind == "numeric" and col.minimum is not None:
        finite = col.count - col.infinite
        profile.minimum, profile.maximum, profile.mean = col.minimum, col.maximum, col.mean
        profile.std = math.sqrt(col.m2 / (finite - 1)) if finite > 1 else 0.0
        if finite > 2 and col.m2 > 0:
            profile.skew = math.sqrt(finite) * col.m3 / col.m2**1.5
            profile.skewed = abs(profile.skew) >= 2.0
        _outliers(profile, sample_values, thresholds["outlier_iqr"], finite)
    return profile


def _distinct(hashes):
    """(distinct count, exact?) from the k smallest distinct hashes (KMV estimator)."""
    if len(hashes) < _DISTINCT_SKETCH:
        return len(hashes), True
    return int(round((_DISTINCT_SKETCH - 1) / ((float(hashes[-1]) + 1.0) / _HASH_SPACE))), False


def _outliers(profile, values, iqr_factor, finite_count):
    numbers = _numbers(values)
    numbers = numbers[~np.isnan(numbers)]
    if len(numbers) < 4:
        return
    q1, median, q3 = np.quantile(numbers, [0.25, 0.5, 0.75])
    profile.quartiles = [float(q1), float(median), float(q3)]
    spread = q3 - q1
    outside = (numbers < q1 - iqr_factor * spread) | (numbers > q3 + iqr_factor * spread)
    # With most values equal (no spread) every other value would count: near-constant covers that.
    profile.outlier_share = float(outside.mean()) if spread > 0 else 0.0
    profile.outliers = int(round(profile.outlier_share * finite_count))


def _duplicates(profile, summary):
    counts = summary.row_counts
    repeated = counts > 1
    profile.duplicates_exact = summary.hash_limit == 2**64 - 1
    extra = int((counts[repeated] - 1).sum())
    if profile.duplicates_exact:
        profile.duplicate_rows = extra
        profile.duplicate_share = extra / summary.rows
    else:
        seen = int(counts.sum())
        profile.duplicate_share = extra / seen if seen else 0.0
        profile.duplicate_rows = int(round(profile.duplicate_share * summary.rows))
    order = np.argsort(summary.row_second[repeated], kind="stable")[:5]
    profile.duplicate_examples = [[int(summary.row_second[repeated][i]), int(summary.row_first[repeated][i])]
                                  for i in order]


def _correlatable(column):
    return column.type in ("numeric", "boolean") and not column.constant and column.count > 2


def _correlated(sample, names, threshold):
    if len(names) < 2:
        return []
    numbers = pd.DataFrame({i: _numbers(sample[name]) for i, name in enumerate(names)})
    matrix = numbers.corr().to_numpy()
    pairs = []
    for i, j in zip(*np.triu_indices(len(names), k=1), strict=True):
        if np.isfinite(matrix[i, j]) and abs(matrix[i, j]) >= threshold:
            pairs.append({"columns": [str(names[i]), str(names[j])], "r": float(matrix[i, j])})
    return sorted(pairs, key=lambda pair: -abs(pair["r"]))


def _infer_task(target):
    """The rule of `keras_bigml.data.tables.infer_task`, on merged statistics."""
    if target.kind != "numeric":
        return "classification"
    distinct, _ = _distinct(target.hashes)
    few = distinct <= max(20, (target.count + target.missing) // 50)
    return "classification" if target.integral and few else "regression"


_LEAK_ROWS = 3000
_LEAK_LEAVES = 64  # enough steps for a copy of the target to score above 0.999


def _leak_scores(sample, keys, names, target, task, settings):
    """Held-out score of a one-column model for each column (5-fold cross-validation on the sample)."""
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import TargetEncoder
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    rows = sample[sample[target].notna()]
    if len(rows) > _LEAK_ROWS:  # the sample is uniform: its smallest keys are a uniform subset
        rows = rows.iloc[np.sort(np.argsort(keys[sample[target].notna().to_numpy()])[:_LEAK_ROWS])]
    y = rows[target]
    if task == "classification":
        y = y.astype(str)
        counts = y.value_counts()
        rows, y = rows[y.isin(counts.index[counts >= 5])], y[y.isin(counts.index[counts >= 5])]
        classes = sorted(y.unique())
        if len(classes) < 2:
            return {}
        folds = StratifiedKFold(5, shuffle=True, random_state=settings.random_state)
    else:
        if len(y) < 10 or y.nunique() < 2:
            return {}
        # Ranks: a heavy tail would otherwise hide a copy (its extremes fall between the training rows).
        y = y.astype(np.float64).rank(pct=True)
        folds = KFold(5, shuffle=True, random_state=settings.random_state)
    leaf = max(5, len(y) // 500)
    scores = {}
    for name in names:
        column = rows[[name]]
        if _kind(column[name]) == "categorical":
            target_type = ("continuous" if task == "regression" else
                           "binary" if len(classes) == 2 else "multiclass")
            encoder = TargetEncoder(target_type=target_type, cv=folds)
            predicted = encoder.fit_transform(column.astype(str), y)
            if target_type == "binary":
                predicted = np.column_stack([1 - predicted[:, 0], predicted[:, 0]])
            elif target_type == "multiclass":
                predicted = predicted / np.maximum(predicted.sum(axis=1, keepdims=True), 1e-12)
        else:
            numbers = _numbers(column[name]).reshape(-1, 1)
            model = (DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor)(
                min_samples_leaf=leaf, max_leaf_nodes=_LEAK_LEAVES, random_state=settings.random_state)
            method = "predict_proba" if task == "classification" else "predict"
            predicted = cross_val_predict(model, numbers, y, cv=folds, method=method)
        if task == "regression":
            scores[name] = float(r2_score(y, predicted.ravel()))
        elif len(classes) == 2:
            scores[name] = float(roc_auc_score(y == classes[1], predicted[:, 1]))
        else:
            scores[name] = float(roc_auc_score(y, predicted, multi_class="ovr", labels=classes))
    return scores


def _alerts(profile, thresholds):
    """One alert per problem, most serious kind first: ``{"kind", "columns", "message"}``."""
    alerts = []

    def add(kind, columns, message):
        alerts.append({"kind": kind, "columns": [str(c) for c in columns], "message": f"{kind}: {message}"})

    for leak in sorted(profile.leaks, key=lambda leak: -leak["score"]):
        add("leak", [leak["column"]], f"column {leak['column']!r} alone predicts the target "
            f"{profile.target!r} (held-out {profile.leak_metric} {leak['score']:.3f} "
            f">= {thresholds['leak_threshold']:g})")
    if profile.duplicate_rows:
        rows = profile.duplicate_rows
        examples = ", ".join(f"row {later} repeats row {first}"
                             for later, first in profile.duplicate_examples)
        about = "" if profile.duplicates_exact else "about "
        more = ", ..." if rows > len(profile.duplicate_examples) else ""
        add("duplicate", [], f"{about}{rows} duplicated {_plural(rows, 'row')} "
            f"({profile.duplicate_share:.1%}): {examples}{more}")
    for column in profile.columns.values():
        if column.constant:
            add("constant", [column.name], f"column {column.name!r} has a single value "
                f"({column.top_value!r}) in all {column.count} non-missing rows")
        elif column.near_constant:
            add("constant", [column.name], f"column {column.name!r} is near-constant: "
                f"{column.top_share:.1%} of its values are {column.top_value!r}")
    for column in profile.columns.values():
        if column.missing_share >= thresholds["missing_threshold"]:
            add("missing", [column.name], f"column {column.name!r} is {column.missing_share:.1%} missing "
                f"({column.missing} of {profile.rows} rows)")
    if profile.target_counts is not None:
        _imbalance_alert(profile, thresholds["imbalance_ratio"], add)
    for column in profile.columns.values():
        if column.outliers and column.outlier_share >= thresholds["outlier_share"] \
                and column.name != profile.target:
            q1, _, q3 = column.quartiles
            count = column.outliers
            add("outliers", [column.name], f"column {column.name!r} has {count} {_plural(count, 'value')} "
                f"({column.outlier_share:.1%}) more than {thresholds['outlier_iqr']:g} IQR beyond the "
                f"quartiles {q1:.4g} and {q3:.4g} (range {column.minimum:.4g} to {column.maximum:.4g})")
    for pair in profile.correlated:
        a, b = pair["columns"]
        add("correlated", [a, b], f"columns {a!r} and {b!r} are correlated (Pearson r = {pair['r']:+.3f})")
    return alerts


def _imbalance_alert(profile, ratio, add):
    counts = list(profile.target_counts.items())
    if len(counts) == 1:
        add("imbalance", [profile.target], f"target {profile.target!r} has a single class ({counts[0][0]!r})")
    elif profile.imbalance_ratio < ratio:
        (major, most), (minor, fewest) = counts[0], counts[-1]
        add("imbalance", [profile.target], f"target {profile.target!r}: class {minor!r} has {fewest} rows, "
            f"class {major!r} has {most} (ratio {profile.imbalance_ratio:.3f} < {ratio:g})")


# HTML -------------------------------------------------------------------------------------------

PROFILE_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; margin: 0;
       background: #f5f7fa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 10px; }
.lead { color: #52606d; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border-radius: 8px; padding: 10px 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.card b { display: block; font-size: 22px; }
.card span { color: #52606d; font-size: 13px; }
section { background: #fff; border-radius: 8px; padding: 4px 20px 16px; margin-top: 18px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
ul.warnings { list-style: none; padding: 0; margin: 0; }
ul.warnings li { padding: 6px 0; border-bottom: 1px solid #eef1f4; }
.badge { display: inline-block; min-width: 78px; text-align: center; border-radius: 10px; padding: 1px 8px;
         margin-right: 8px; font-size: 12px; font-weight: 600; color: #fff; background: #7b8794; }
.kind-leak .badge { background: #c62828; } .kind-duplicate .badge { background: #6a1b9a; }
.kind-constant .badge { background: #ef6c00; } .kind-missing .badge { background: #1565c0; }
.kind-imbalance .badge { background: #00838f; } .kind-outliers .badge { background: #795548; }
.kind-correlated .badge { background: #2e7d32; }
.ok { color: #2e7d32; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eef1f4; vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap { white-space: nowrap; }
.bar { background: #e4e7eb; border-radius: 3px; height: 8px; width: 90px; display: inline-block;
       vertical-align: middle; margin-right: 6px; }
.bar i { display: block; height: 8px; border-radius: 3px; background: #3e7bfa; }
.flag { display: inline-block; font-size: 11px; border-radius: 8px; padding: 0 6px; margin: 1px;
        background: #fde8e8; color: #9b1c1c; }
.note { color: #52606d; font-size: 13px; }
"""


def profile_html(profile: TableProfile, title: str = "Data profile") -> str:
    """A self-contained HTML page (no scripts, no network) showing a profile.

    ``profile`` is a :class:`TableProfile` or its ``to_dict()`` (as read from
    ``profile.json``). The page's body is :func:`profile_sections_html`, which a
    run's report can embed as it is.

    >>> page = profile_html(profile_table(pd.DataFrame({"a": [1, 2, 3, 3]})))
    >>> page.startswith("<!DOCTYPE html>"), "<h2>Columns</h2>" in page
    (True, True)
    """
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{PROFILE_CSS}</style></head>\n"
            f"<body><main><h1>{html.escape(title)}</h1>\n{profile_sections_html(profile)}</main></body></html>\n")


def profile_sections_html(profile: TableProfile) -> str:
    """The profile as HTML sections: summary, warnings, columns, target, correlations, method."""
    data = profile.to_dict() if isinstance(profile, TableProfile) else profile
    parts = [_summary_html(data), _warnings_html(data), _columns_html(data)]
    if data.get("target_counts"):
        parts.append(_target_html(data))
    if data.get("correlated"):
        rows = "".join(f"<tr><td>{_e(p['columns'][0])}</td><td>{_e(p['columns'][1])}</td>"
                       f"<td class=\"num\">{p['r']:+.3f}</td></tr>" for p in data["correlated"])
        parts.append(f"<section id=\"correlated\"><h2>Correlated pairs</h2><table><tr><th>column</th>"
                     f"<th>column</th><th>Pearson r</th></tr>{rows}</table></section>")
    parts.append(_method_html(data))
    return "\n".join(parts)


def _summary_html(data):
    target = f"; target <b>{_e(data['target'])}</b> ({_e(data['task'])})" if data.get("target") else ""
    cards = [(f"{data['rows']:,}", "rows"), (len(data["columns"]), "columns"),
             (data["partitions"], "chunks or partitions"), (len(data["warnings"]), "warnings"),
             (f"{data['duplicate_rows']:,}", "duplicated rows")]
    cards = "".join(f"<div class=\"card\"><b>{value}</b><span>{label}</span></div>" for value, label in cards)
    return (f"<p class=\"lead\">{data['rows']:,} rows &times; {len(data['columns'])} columns{target}</p>"
            f"<div class=\"cards\">{cards}</div>")


def _warnings_html(data):
    if not data["alerts"]:
        return "<section id=\"warnings\"><h2>Warnings</h2><p class=\"ok\">No problems found.</p></section>"
    items = "".join(f"<li class=\"kind-{_e(a['kind'])}\"><span class=\"badge\">{_e(a['kind'])}</span>"
                    f"{_e(a['message'].split(': ', 1)[1])}</li>" for a in data["alerts"])
    return (f"<section id=\"warnings\"><h2>Warnings ({len(data['alerts'])})</h2>"
            f"<ul class=\"warnings\">{items}</ul></section>")


def _columns_html(data):
    header = ("<tr><th>column</th><th>type</th><th>missing</th><th>distinct</th><th>most frequent</th>"
              "<th>min</th><th>mean</th><th>max</th><th>std</th><th>skew</th><th>outliers</th>"
              f"<th>alone ({_e(data.get('leak_metric') or 'score')})</th><th>flags</th></tr>")
    rows = []
    for name, c in data["columns"].items():
        flags = [label for key, label in (("constant", "constant"), ("near_constant", "near-constant"),
                                          ("high_cardinality", "high cardinality"), ("skewed", "skewed"))
                 if c.get(key)]
        flags += ["target"] if name == data.get("target") else []
        share = c["missing_share"]
        missing = f"<span class=\"bar\"><i style=\"width:{share:.0%}\"></i></span>{share:.1%}"
        top = "" if c["top_value"] is None else f"{_e(_short(c['top_value']))} ({c['top_share']:.1%})"
        distinct = f"{c['distinct']:,}" + ("" if c["distinct_exact"] else " (est.)")
        cells = [_e(name), _e(c["type"]), missing, distinct, top] + [
            _number(c.get(key)) for key in ("minimum", "mean", "maximum", "std", "skew")]
        cells.append("" if c.get("outliers") is None else f"{c['outliers']:,}")
        cells.append(_number(c.get("leak_score")))
        cells.append("".join(f"<span class=\"flag\">{_e(f)}</span>" for f in flags))
        rows.append("<tr>" + "".join(
            f"<td class=\"num\">{cell}</td>" if 3 <= i <= 11 and i != 4 else
            f"<td class=\"nowrap\">{cell}</td>" if i == 2 else f"<td>{cell}</td>"
            for i, cell in enumerate(cells)) + "</tr>")
    return f"<section id=\"columns\"><h2>Columns</h2><table>{header}{''.join(rows)}</table></section>"


def _target_html(data):
    counts = data["target_counts"]
    most = max(counts.values())
    rows = "".join(f"<tr><td>{_e(label)}</td><td class=\"num\">{count:,}</td><td><span class=\"bar\">"
                   f"<i style=\"width:{count / most:.0%}\"></i></span></td></tr>"
                   for label, count in counts.items())
    ratio = data.get("imbalance_ratio")
    note = "" if ratio is None else f"<p class=\"note\">Rarest over most common class: {ratio:.3f}.</p>"
    return (f"<section id=\"target\"><h2>Target {_e(data['target'])}</h2><table><tr><th>class</th>"
            f"<th>rows</th><th></th></tr>{rows}</table>{note}</section>")


def _method_html(data):
    approx = data["approximate"]
    sampled = (f"Quartiles, outliers, correlations and leak scores come from a uniform sample of "
               f"{data['sample_rows']:,} of the {data['rows']:,} rows." if approx["sampled"] else
               "Every statistic was computed on all rows.")
    estimated = []
    if approx["distinct_estimated"]:
        estimated.append("distinct counts of " + ", ".join(approx["distinct_estimated"]) + " are estimated")
    if approx["top_share_lower_bound"]:
        estimated.append("most-frequent shares of " + ", ".join(approx["top_share_lower_bound"])
                         + " are lower bounds")
    if approx["duplicates_estimated"]:
        estimated.append("the duplicated-row count is estimated from a hash sample")
    extra = (" Also: " + "; ".join(estimated) + ".") if estimated else ""
    leak = data["settings"]["leak_threshold"]
    return (f"<section id=\"method\"><h2>How this was measured</h2><p class=\"note\">{sampled}{_e(extra)} "
            f"A column leaks when a model of that column alone reaches a held-out score of {leak:g} "
            "(ROC AUC for classes, R<sup>2</sup> for numbers) in 5-fold cross-validation.</p></section>")


def _number(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return _e(value)
    return f"{value:.4g}"


def _short(value, width=30):
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def _e(value):
    return html.escape(str(value))


# Helpers ------------------------------------------------------------------------------------------

def _plain(value):
    """Numpy and pandas scalars as Python ones, recursively; keys as strings; NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _by_count(counters):
    """Counters from the most to the least frequent value, equal counts in value order."""
    try:
        counters = counters.sort_index()
    except TypeError:
        counters = counters.iloc[np.argsort(counters.index.astype(str), kind="stable")]
    return counters.sort_values(ascending=False, kind="stable")


def _first(values):
    """The smallest of some values (ties between counts broken the same way however rows were split)."""
    try:
        return min(values)
    except TypeError:
        return min(values, key=str)


def _value(value):
    """A counted value as users wrote it: whole numbers (stored as floats) as ints."""
    value = _plain(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _plural(number, noun):
    return noun if number == 1 else noun + "s"


def _names(columns):
    names = [str(c) for c in columns]
    return ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")


def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "the table"
