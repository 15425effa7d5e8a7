"""Evaluation: reports for classical models (generator metrics follow)."""

from keras_bigml.evaluation.classical import (
    classification_report,
    feature_importance,
    regression_report,
    save_report_plots,
)

__all__ = ["classification_report", "feature_importance", "regression_report", "save_report_plots"]
