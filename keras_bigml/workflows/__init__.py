"""Workflows: each function does one job end to end and returns what it measured.

The command line, the notebooks and scripts all call these; nothing here
prints except progress bars. Names load on first use, so the classical
workflows do not import TensorFlow.

>>> from keras_bigml import workflows
>>> callable(workflows.profile), callable(workflows.explain), callable(workflows.shard)
(True, True, True)
"""

from keras_bigml.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ClassicalResult": "classical",
    "train_classical": "classical",
    "EvaluationResult": "generative",
    "GenerationResult": "generative",
    "ImageSource": "generative",
    "TrainingOptions": "generative",
    "TrainingResult": "generative",
    "TranslationResult": "generative",
    "evaluate_run": "generative",
    "generate_images": "generative",
    "train_cyclegan": "generative",
    "train_gan": "generative",
    "train_vae": "generative",
    "translate_images": "generative",
    "ExplainResult": "explaining",
    "explain": "explaining",
    "ExportResult": "export",
    "export_run": "export",
    "ProfileResult": "profiling",
    "profile": "profiling",
    "write_profile": "profiling",
    "PredictResult": "predicting",
    "predict": "predicting",
    "QuickstartResult": "quickstart",
    "quickstart": "quickstart",
    "ShardResult": "sharding",
    "shard": "sharding",
})
