"""Shared set-up for the benchmarks: where the real datasets are, timing, printing."""

import os
import sys
import time

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
