"""Data sources: image pipelines (TensorFlow) and tables (pandas); names load on first use."""

from keras_bigml.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "SkippedFilesWarning": "images",
    "count_classes": "images",
    "find_dataset": "images",
    "frame_digits": "images",
    "load_images": "images",
    "network_available": "images",
    "worker_count": "images",
    "pair_unpaired": "images",
    "random_jitter": "images",
    "without_autotuning": "images",
    "ShardWriter": "shards",
    "is_shard_directory": "shards",
    "read_manifest": "shards",
    "write_shards": "shards",
    "iter_table_chunks": "tables",
    "load_table": "tables",
})
