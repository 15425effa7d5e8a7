"""Classical machine learning through scikit-learn: pipelines by name, tuning, streaming, Dask."""

from keras_bigml.classical.estimators import TabularPreprocessor, algorithm_names, make_model

__all__ = ["TabularPreprocessor", "algorithm_names", "make_model"]
