"""Test session set-up: two logical CPU devices (for MirroredStrategy), quiet TF, datasets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Real datasets beside the repository in this workplace; skipped where absent.
os.environ.setdefault(
    "KERAS_BIGML_DATASETS", os.path.join(os.path.dirname(REPO_ROOT), "shared", "datasets")
)

from keras_bigml.distribute import split_cpu  # noqa: E402

# Must run before any TensorFlow op: every test sees CPU:0 and CPU:1.
CPU_DEVICES = split_cpu(2)

import keras  # noqa: E402
import pytest  # noqa: E402
from _pytest.doctest import DoctestItem  # noqa: E402

# Docstring examples that train a model (several CPU seconds each) run in the full suite only.
LARGE_DOCTESTS = {
    "keras_bigml.generative.cyclegan.CycleGAN",
    "keras_bigml.workflows.generative",
    "keras_bigml.conversion.to_litert",
    "keras_bigml.callbacks.GeneratorMetrics",
    "keras_bigml.runs.fit_and_save",
    "keras_bigml.evaluation.generative.generator_report",
}


def pytest_collection_modifyitems(items):
    """Mark the slow docstring examples ``large`` (test functions carry the marker themselves)."""
    for item in items:
        if isinstance(item, DoctestItem) and item.name in LARGE_DOCTESTS:
            item.add_marker(pytest.mark.large)


@pytest.fixture
def cpu_devices():
    """Names of the two logical CPU devices."""
    return CPU_DEVICES


@pytest.fixture
def mixed_bfloat16():
    """Run a test under the mixed_bfloat16 policy, restoring float32 afterwards."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def mnist_path():
    """Path of the real MNIST subset, or skip."""
    from keras_bigml.data import find_dataset

    path = find_dataset("mnist-subset.npz")
    if path is None:
        pytest.skip("mnist-subset.npz not found (set KERAS_BIGML_DATASETS)")
    return path
