"""Evaluation: reports for classical models, classifier-based metrics for generators.

Names load on first use, so classical reports do not import TensorFlow.
"""

from keras_bigml.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "classification_report": "classical",
    "feature_importance": "classical",
    "regression_report": "classical",
    "save_report_plots": "classical",
    "classifier_outputs": "generative",
    "classifier_score": "generative",
    "feature_description": "generative",
    "fid_comparability": "generative",
    "frechet_distance": "generative",
    "generator_report": "generative",
    "inception_classifier": "generative",
    "kernel_distance": "generative",
    "label_agreement": "generative",
    "train_classifier": "generative",
})
