"""keras_bigml: machine learning and image generation for big-data analysis."""

__version__ = "0.1.0"
