"""Shared set-up for the benchmarks: where the real datasets are, timing, printing."""

import os
import sys
import time

import keras_bigml  # noqa: F401  before TensorFlow, so that the package's TensorFlow defaults (oneDNN) apply

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The datasets live beside the repository in this workplace; elsewhere set
# KERAS_BIGML_DATASETS to the folder holding mnist-subset.npz and usps.npz.
os.environ.setdefault(
    "KERAS_BIGML_DATASETS", os.path.join(os.path.dirname(REPO_ROOT), "shared", "datasets")
)


def require_dataset(filename):
    """Return the dataset's path, or print why the benchmark is skipped and exit 0."""
    from keras_bigml.data import find_dataset

    path = find_dataset(filename)
    if path is None:
        print(f"SKIP: {filename} not found; set KERAS_BIGML_DATASETS to its folder.")
        sys.exit(0)
    return path


class Stopwatch:
    """Wall-clock seconds since creation."""

    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return time.perf_counter() - self.start


def median_and_spread(values):
    """``(median, lowest, highest)`` of repeated measurements."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return median, ordered[0], ordered[-1]


def load_average():
    """The 1-minute load average (how busy the shared machine was), or NaN where unknown."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine_line():
    """One line naming the CPU, its bfloat16 features and the cores this process may use."""
    from keras_bigml.precision import bfloat16_cpu_features, cpu_flags, cpu_model

    flags = cpu_flags()
    features = bfloat16_cpu_features(flags)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"CPU: {cpu_model()}, {cores} cores; AMX: {'yes' if 'amx_bf16' in flags else 'no'}, "
            f"AVX512_BF16: {'yes' if 'avx512_bf16' in flags else 'no'}"
            f" ({'bfloat16 native' if features else 'bfloat16 emulated, slower than float32'})")
