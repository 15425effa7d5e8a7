"""keras_bigml: machine learning and image generation for big-data analysis."""

__version__ = "0.2.0"
