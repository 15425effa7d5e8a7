"""The ``keras-bigml`` commands for tables: ``classical``, ``predict``, ``profile`` (and their arguments).

None of them imports TensorFlow.
"""

import argparse
from collections.abc import Callable


def add_table_commands(commands: argparse._SubParsersAction,
                       command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``classical``, ``predict`` and ``profile``; ``command(parent, name, **kwargs)`` makes a parser."""
    classical = command(commands, "classical", help="train and evaluate a classical model on a table",
                        description="Split a table, optionally tune, train, evaluate on the held-out rows, and "
                        "write DIR/report.json, plots (PNG), the model and DIR/report.html.")
    classical.add_argument("--algo", required=True, metavar="NAME", help="linear_regression, logistic_regression, "
                           "svm, decision_tree, random_forest or gradient_boosting")
    _add_table_source(classical, default="breast_cancer")
    classical.add_argument("--task", choices=("classification", "regression"), help="default: inferred")
    classical.add_argument("--tune", nargs="?", const="grid", choices=("grid", "random", "halving"),
                           help="search hyper-parameters first (default method: grid)")
    classical.add_argument("--test-size", type=float, default=0.25)
    classical.add_argument("--seed", type=int, default=0)
    engine = classical.add_mutually_exclusive_group()
    engine.add_argument("--out-of-core", action="store_const", dest="engine", const="out_of_core",
                        help="train on one machine from files larger than memory (XGBoost external memory, "
                        "partial_fit)")
    engine.add_argument("--dask", nargs="?", const=True, metavar="ADDRESS",
                        help="train on Dask: a scheduler address, or a local cluster")
    classical.add_argument("--out", required=True, help="output folder")
    classical.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    classical.set_defaults(run=_classical, tensorflow=False, engine="memory")

    predict = command(commands, "predict", help="score a table with a trained classical run",
                      description="Score SOURCE part by part and write one Parquet part per input part into OUT "
                      "(memory bounded by a part, or by a batch with --out-of-core).")
    predict.add_argument("run_dir", metavar="RUN", help="a classical run directory")
    predict.add_argument("--data", required=True, help="a .csv/.parquet file, a folder of parts or a glob")
    predict.add_argument("--out", required=True, help="output folder of Parquet parts")
    predict.add_argument("--keep", type=lambda text: text.split(","), default=(),
                         help="columns to pass through beside the predictions, e.g. id,region")
    scoring = predict.add_mutually_exclusive_group()
    scoring.add_argument("--out-of-core", action="store_const", dest="engine", const="out_of_core",
                         help="read each part a batch at a time")
    scoring.add_argument("--dask", nargs="?", const=True, metavar="ADDRESS",
                         help="score the parts on Dask workers: a scheduler address, or a local cluster")
    predict.add_argument("--trust", action="append", metavar="TYPE", help="a type name to trust in model.skops")
    predict.add_argument("--overwrite", action="store_true", help="replace predictions written before")
    predict.set_defaults(run=_predict, tensorflow=False, engine="memory")

    profile = command(commands, "profile", help="profile a table's data quality",
                      description="Per column: type, missing share, distinct values, constant, high cardinality, "
                      "skew, outliers; duplicated rows, target imbalance, correlated pairs and leaked columns. "
                      "Prints one warning per line; writes DIR/profile.json and DIR/profile.html.")
    _add_table_source(profile, default=None, required=True)
    profile.add_argument("--out", required=True, help="output folder")
    profile.set_defaults(run=_profile, tensorflow=False)


def _add_table_source(parser, default, required=False):
    parser.add_argument("--data", default=default, required=required,
                        help="iris, wine, breast_cancer, digits, diabetes, a .csv/.parquet file, a folder of parts "
                        "or a glob")
    parser.add_argument("--target", help="target column (bundled sets know theirs)")


def _classical(args):
    from keras_bigml.cli_training import print_paths
    from keras_bigml.workflows.classical import train_classical

    engine = "dask" if args.dask else args.engine
    result = train_classical(args.algo, args.data, args.out, target=args.target, task=args.task,
                             tune_method=args.tune, test_size=args.test_size, random_state=args.seed,
                             engine=engine, dask_address=None if args.dask in (None, True) else args.dask,
                             overwrite=args.overwrite)
    report, metrics = result.report, result.report["test"]
    shown = ("accuracy", "roc_auc") if report["task"] == "classification" else ("r2", "mae", "rmse")
    summary = ", ".join(f"{name} {metrics[name]:.4f}" for name in shown if name in metrics)
    print(f"{args.algo} ({report['task']}, {engine}) on {report['test_rows']} held-out rows: {summary}")
    warnings = report.get("profile_warnings", [])
    for warning in warnings[:5]:
        print(f"  data warning: {warning}")
    if len(warnings) > 5:
        print(f"  ... {len(warnings) - 5} more data warnings in {args.out}/report.html")
    print("Wrote:")
    print_paths(result.paths)


def _predict(args):
    from keras_bigml.workflows.predicting import predict

    engine = "dask" if args.dask else args.engine
    result = predict(args.run_dir, args.data, args.out, engine=engine,
                     dask_address=None if args.dask in (None, True) else args.dask, keep=args.keep,
                     overwrite=args.overwrite, trusted=args.trust)
    print(f"Scored {result.rows} rows ({engine}) into {len(result.parts)} parts in {result.out_dir} "
          f"({result.seconds:.1f} s; columns {', '.join(result.columns)})")


def _profile(args):
    from keras_bigml.workflows.profiling import profile

    result = profile(args.data, args.out, target=args.target)
    for warning in result.warnings:
        print(warning)
    print(f"{len(result.warnings)} warnings. Wrote {result.paths['json']} and {result.paths['html']}")
