"""Bridges between the two families: generated data for classifiers, classifiers and
classical models that judge generated images, VAE maps of large datasets."""

from keras_bigml.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "LatentMap": "latent_map",
    "SampleQuality": "quality",
    "augmentation_gain": "augmentation",
    "generated_examples": "augmentation",
    "image_statistics": "quality",
    "pseudo_labels": "augmentation",
})
