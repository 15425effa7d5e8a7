"""Write any image source as TFRecord shards with a manifest (``keras-bigml shard``).

>>> import tempfile
>>> result = shard("digits", tempfile.mkdtemp() + "/digits", progress=False)
>>> result.records, result.shards["train"], result.encoding
({'train': 1437, 'test': 360}, 16, 'raw')
"""

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass
class ShardResult:
    """What `shard` wrote.

    Attributes
    ----------
    out_dir, manifest_path : str
    encoding : {"raw", "png", "jpeg"}
    image_shape : (height, width, channels)
    records, shards : dict
        Records written and shard files, per split.
    skipped_files : int
        Unreadable image files skipped (``skip_bad_files=True``).
    bytes : int
        Size of all shard files.
    seconds : float
        Wall time of the whole write.
    """

    out_dir: str
    manifest_path: str
    encoding: str
    image_shape: tuple
    records: dict
    shards: dict
    skipped_files: int
    bytes: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return sum(self.records.values()) / self.seconds if self.seconds else float("nan")


def shard(source: "str | os.PathLike | np.ndarray | tuple[np.ndarray, np.ndarray]", out_dir: str | os.PathLike, *,
          splits: list[str] | None = None, image_size: int | tuple[int, int] | None = None,
          channels: int | None = None, encoding: str | None = None, num_shards: int | None = None,
          shard_size_mb: float = 100, seed: int = 0, skip_bad_files: bool = False, overwrite: bool = False,
          data_dir: str | None = None, progress: bool = True) -> ShardResult:
    """Write ``source`` (anything `load_images` reads) as shards in ``out_dir``; see `write_shards`.

    Every split the source has is written unless ``splits`` names some;
    ``load_images(out_dir, split=...)`` reads one back. Raises `ConfigError`
    for bad options or an output directory that holds something else (or
    shards, without ``overwrite``), `DataError` for unusable data.
    """
    from keras_bigml.data.shards import MANIFEST, write_shards

    started = time.perf_counter()
    manifest = write_shards(
        source, out_dir, splits=splits, image_size=image_size, channels=channels, encoding=encoding,
        num_shards=num_shards, shard_size_mb=shard_size_mb, seed=seed, skip_bad_files=skip_bad_files,
        overwrite=overwrite, data_dir=data_dir, progress=progress,
    )
    splits = manifest["splits"]
    out_dir = os.path.abspath(os.fspath(out_dir))
    return ShardResult(
        out_dir=out_dir,
        manifest_path=os.path.join(out_dir, MANIFEST),
        encoding=manifest["encoding"],
        image_shape=tuple(manifest["image_shape"]),
        records={name: split["records"] for name, split in splits.items()},
        shards={name: len(split["shards"]) for name, split in splits.items()},
        skipped_files=sum(split["skipped_files"] for split in splits.values()),
        bytes=sum(shard["bytes"] for split in splits.values() for shard in split["shards"]),
        seconds=time.perf_counter() - started,
    )
