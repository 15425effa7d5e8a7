"""Data sources: image pipelines (and, later, tables)."""

from keras_bigml.data.images import load_images, network_available, pair_unpaired

__all__ = ["load_images", "network_available", "pair_unpaired"]
