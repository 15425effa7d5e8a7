"""Profile a table in one call: statistics and warnings, written as profile.json and profile.html."""

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keras_bigml.evaluation.profile import TableProfile, profile_html, profile_table
from keras_bigml.files import atomic_path

if TYPE_CHECKING:
    from collections.abc import Iterable

    import dask.dataframe as dd
    import pandas as pd


@dataclass
class ProfileResult:
    """What `profile` found and wrote: the profile, its warning lines, and the files by name."""

    profile: TableProfile
    warnings: list
    paths: dict = field(default_factory=dict)


def profile(source: "str | os.PathLike | pd.DataFrame | dd.DataFrame | Iterable", out_dir: str | os.PathLike,
            target: str | None = None, **options: object) -> ProfileResult:
    """Profile ``source`` and write ``out_dir/profile.json`` and ``out_dir/profile.html``.

    Parameters
    ----------
    source : str, path, DataFrame, Dask DataFrame, or iterable of chunks
        Any source `keras_bigml.evaluation.profile.profile_table` reads.
    out_dir : str or path
    target : str, optional
        The target column (enables the leak and imbalance checks).
    **options
        Passed to ``profile_table`` (thresholds, ``sample_rows``, ``chunk_rows``, ...).

    Returns
    -------
    ProfileResult

    Examples
    --------
    >>> import tempfile
    >>> result = profile("iris", tempfile.mkdtemp(), target="target")
    >>> sorted(result.paths)
    ['html', 'json']
    >>> print(result.warnings[0])
    duplicate: 1 duplicated row (0.7%): row 142 repeats row 101
    """
    table_profile = profile_table(source, target, **options)
    title = f"Data profile: {os.path.basename(os.fspath(source))}" if isinstance(source, (str, os.PathLike)) \
        else "Data profile"
    return ProfileResult(table_profile, table_profile.warnings, write_profile(table_profile, out_dir, title))


def write_profile(table_profile: TableProfile, out_dir: str | os.PathLike, title: str = "Data profile") -> dict:
    """Write ``profile.json`` and ``profile.html`` into ``out_dir`` (atomically); return their paths."""
    paths = {"json": os.path.join(out_dir, "profile.json"), "html": os.path.join(out_dir, "profile.html")}
    with atomic_path(paths["json"]) as tmp, open(tmp, "w") as file:
        json.dump(table_profile.to_dict(), file, indent=1)
    with atomic_path(paths["html"]) as tmp, open(tmp, "w", encoding="utf-8") as file:
        file.write(profile_html(table_profile, title))
    return paths
