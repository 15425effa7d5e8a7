"""Data sources: image pipelines (and, later, tables)."""

from keras_bigml.data.images import find_dataset, load_images, network_available, pair_unpaired

__all__ = ["find_dataset", "load_images", "network_available", "pair_unpaired"]
