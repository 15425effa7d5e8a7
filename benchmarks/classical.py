"""Classical wrappers versus plain scikit-learn, and streaming memory at 1x and 10x data.

Usage:  python benchmarks/classical.py [--rows 20000] [--stream-rows 100000]

1. Each algorithm through ``make_model`` and as plain scikit-learn (the same
   estimator, with StandardScaler where the wrapper scales) on the same data and
   seed: test scores (must be identical) and the wrapper's fit+predict time as a
   ratio to plain (median of repeats that alternate between the two).
2. ``fit_streaming`` over CSV files of 1x and 10x rows, each in a fresh process:
   rows per second and peak resident memory.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keras_bigml.classical import make_model
from keras_bigml.classical.estimators import ALGORITHMS, algorithm_names


def plain_model(algorithm, task, seed):
    classifier, regressor, needs_scaling, seeded = ALGORITHMS[algorithm]
    estimator_class = classifier if task == "classification" else regressor
    estimator = estimator_class(**({"random_state": seed} if seeded else {}))
    return make_pipeline(StandardScaler(), estimator) if needs_scaling else estimator


def timed_scores(models, data, repeats):
    """Test score and median fit+score seconds of each model; repeats alternate between
    the models so that the machine's load drifts alike for all of them."""
    X_train, X_test, y_train, y_test = data
    scores, times = [None] * len(models), [[] for _ in models]
    for _ in range(repeats):
        for index, model in enumerate(models):
            start = time.perf_counter()
            model.fit(X_train, y_train)
            scores[index] = model.score(X_test, y_test)
            times[index].append(time.perf_counter() - start)
    return scores, [statistics.median(seconds) for seconds in times]


def compare_wrappers(rows, repeats, seed=0):
    print(f"== wrapper versus plain scikit-learn ({rows} rows, 20 features, median of {repeats})")
    print(f"{'task':15s} {'algorithm':20s} {'wrapper score':>14s} {'plain score':>12s} {'same':>5s} "
          f"{'wrapper s':>10s} {'plain s':>8s} {'ratio':>6s}")
    for task in ("classification", "regression"):
        make = make_classification if task == "classification" else make_regression
        X, y = make(n_samples=rows, n_features=20, n_informative=10, random_state=seed)
        X = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
        data = train_test_split(X, y, test_size=0.25, random_state=seed)
        for algorithm in algorithm_names(task):
            # SVMs scale quadratically: keep their share of the run bounded.
            share = min(1.0, 5000 / rows) if algorithm == "svm" else 1.0
            subset = [part[: int(len(part) * share)] for part in data]
            models = [make_model(algorithm, task, random_state=seed), plain_model(algorithm, task, seed)]
            (ours, plain), (ours_time, plain_time) = timed_scores(models, subset, repeats)
            print(f"{task:15s} {algorithm:20s} {ours:14.6f} {plain:12.6f} {str(ours == plain):>5s} "
                  f"{ours_time:10.3f} {plain_time:8.3f} {ours_time / plain_time:6.3f}")


# Peak memory from VmHWM: ru_maxrss would include the parent's peak, which Linux
# carries across the child's exec.
STREAM_CHILD = """
import sys, time
from keras_bigml.classical.streaming import fit_streaming
from keras_bigml.data.tables import iter_table_chunks
path = sys.argv[1]
start = time.perf_counter()
model = fit_streaming("logistic_regression", iter_table_chunks(path, "target", chunk_rows=20000),
                      classes=[0, 1], random_state=0, progress=False)
seconds = time.perf_counter() - start
rows = sum(1 for _ in open(path)) - 1
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(rows, seconds, peak_kb / 1024)
"""


def write_csv(path, rows, seed=0):
    X, y = make_classification(n_samples=rows, n_features=20, random_state=seed)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(20)]).assign(target=y)
    frame.to_csv(path, index=False, float_format="%.5f")


def streaming_memory(rows):
    print("== fit_streaming over CSV files (chunks of 20000 rows)")
    print(f"{'size':>5s} {'rows':>9s} {'file MB':>8s} {'rows/s':>10s} {'peak RSS MB':>12s}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for factor in (1, 10):
            path = os.path.join(folder, f"data_{factor}x.csv")
            write_csv(path, rows * factor)
            output = subprocess.run([sys.executable, "-c", STREAM_CHILD, path], capture_output=True,
                                    text=True, check=True).stdout.split()
            n, seconds, peak = int(output[0]), float(output[1]), float(output[2])
            results[factor] = peak
            size = os.path.getsize(path) / 2**20
            os.remove(path)
            print(f"{factor:>4d}x {n:9d} {size:8.1f} {n / seconds:10.0f} {peak:12.1f}")
    print(f"peak RSS 10x / 1x: {results[10] / results[1]:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stream-rows", type=int, default=100000)
    args = parser.parse_args()
    compare_wrappers(args.rows, args.repeats)
    streaming_memory(args.stream_rows)


if __name__ == "__main__":
    main()
