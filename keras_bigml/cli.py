"""The ``keras-bigml`` command line: parse the arguments, call one workflow, print its summary.

Commands::

    keras-bigml quickstart                    train the default models on bundled data
    keras-bigml train MODEL --data SOURCE     MODEL: vae, gan, cgan, wgan-gp; writes a run directory
    keras-bigml train cyclegan --data-a SOURCE --data-b SOURCE
    keras-bigml generate DIR --n 64           sample a grid from a trained run
    keras-bigml translate DIR --input SOURCE  translate images with a trained CycleGAN
    keras-bigml evaluate DIR --data SOURCE    generator metrics of a trained GAN or VAE
    keras-bigml classical --algo NAME         train and evaluate a classical model on a table
    keras-bigml predict RUN --data SOURCE     score a table part by part into Parquet parts
    keras-bigml profile --data SOURCE         data-quality warnings for a table
    keras-bigml export DIR --format onnx      convert a run's model (savedmodel, litert, onnx), checked
    keras-bigml explain DIR --data SOURCE     permutation, partial dependence, SHAP; latent traversals
    keras-bigml shard SOURCE --out DIR        images as TFRecord shards with a manifest

Errors are one line on stderr (exit status 2 for usage errors, 1 for data and
file errors); ``--verbose`` or ``KERAS_BIGML_DEBUG=1`` shows TensorFlow's logs
and tracebacks.
"""

import argparse
import os
import signal
import sys
from typing import NoReturn

from keras_bigml.cli_tables import add_table_commands
from keras_bigml.cli_training import add_run_dir, add_train_commands, int_tuple, print_paths
from keras_bigml.errors import KerasBigMLError

PROG = "keras-bigml"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``keras-bigml`` console script; returns the exit status."""
    from keras_bigml.logs import one_line_warnings, quiet_tensorflow

    args = build_parser().parse_args(argv)
    verbose = args.verbose or os.environ.get("KERAS_BIGML_DEBUG") == "1"
    if not getattr(args, "run", None):
        build_parser().print_help()
        return 2
    if not verbose:
        one_line_warnings(PROG)
    # Ctrl-C and SIGTERM end a run the same way: it is marked failed, its backup kept.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        needs_tensorflow = getattr(args, "tensorflow", False)
        if callable(needs_tensorflow):
            needs_tensorflow = needs_tensorflow(args)
        if needs_tensorflow and not verbose:
            quiet_tensorflow()
        args.run(args)
    except KerasBigMLError as error:
        return _fail(error, error.exit_status, verbose)
    except KeyboardInterrupt:
        return _fail("interrupted; rerun the command with --resume to continue a training run", 130, verbose)
    except OSError as error:
        return _fail(f"{error.strerror or error}: {error.filename}" if error.filename else error, 1, verbose)
    except Exception as error:
        return _fail(f"unexpected {type(error).__name__}: {error} (rerun with --verbose for the traceback)",
                     1, verbose)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line: ``keras-bigml train vae: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Machine learning and image generation for big-data analysis.")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs and full tracebacks")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=OneLineParser)
    # Every command also takes --verbose after its name.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    quickstart = _command(
        commands, verbose, "quickstart", help="train the default models on bundled data (offline)",
        description="Train a small VAE and a conditional GAN on scikit-learn's bundled digits (sample grids, "
        ".keras models, SavedModels) and a random forest on the bundled breast-cancer table.")
    quickstart.add_argument("--out", default=os.path.join("saved_models", "quickstart"),
                            help="output folder (default: %(default)s)")
    quickstart.add_argument("--epochs", type=int, default=40, help="training epochs per model (default: %(default)s)")
    quickstart.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier quickstart")
    quickstart.set_defaults(run=_quickstart, tensorflow=True)

    add_train_commands(commands, lambda parent, name, **kwargs: _command(parent, verbose, name, **kwargs))

    translate = _command(commands, verbose, "translate", help="translate images with a trained CycleGAN", description=(
        "Translate the images of SOURCE with DIR/model.keras into PNG files in OUT, with OUT/grid.png showing "
        "inputs beside outputs."))
    add_run_dir(translate, "a CycleGAN run directory (or a .keras file)")
    translate.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    translate.add_argument("--input", required=True, help="digits, tfds:NAME, a .npz path or an image folder")
    translate.add_argument("--split", default="test")
    translate.add_argument("--limit", type=int, help="translate only this many images")
    translate.add_argument("--out", required=True, help="output folder")
    translate.add_argument("--format", choices=("png", "shards"), default="png",
                           help="PNG files, or a shard directory for load_images (default: %(default)s)")
    translate.add_argument("--overwrite", action="store_true", help="replace an existing shard directory")
    translate.set_defaults(run=_translate)

    evaluate = _command(commands, verbose, "evaluate", help="judge a trained GAN or VAE against real images",
                        description=(
        "Train a digit/domain classifier on SOURCE's training split (or load --classifier), generate --n images, "
        "and print and save DIR/metrics.json: Frechet and kernel distances on the classifier's features, "
        "classifier score, label agreement for conditional models, and the test negative ELBO for VAEs; with the "
        "features and sample counts they were computed on. The Frechet distance is comparable with published FIDs "
        "only with --inception-weights and at least 10,000 generated and real images; otherwise a note says why "
        "not."))
    add_run_dir(evaluate, "a GAN or VAE run directory (or a .keras file)")
    evaluate.add_argument("--data", required=True, help="digits, tfds:NAME, a .npz path or an image folder")
    evaluate.add_argument("--n", type=int, default=10_000, help="generated images (default: %(default)s; published "
                          "FIDs use at least 10,000)")
    evaluate.add_argument("--limit", type=int, help="use only this many real images per split")
    evaluate.add_argument("--classifier", help="a .keras classifier to use instead of training one")
    evaluate.add_argument("--inception-weights", help="a local Inception-v3 .h5 file: its features instead")
    evaluate.add_argument("--classifier-epochs", type=int, default=3)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(run=_evaluate)

    generate = _command(commands, verbose, "generate", help="sample images from a trained run",
                                   description="Load DIR/model.keras and save a grid of generated images.")
    add_run_dir(generate, "a GAN or VAE run directory (or a .keras file)")
    generate.add_argument("--n", type=int, default=64, help="number of images (default: %(default)s)")
    generate.add_argument("--labels", type=int_tuple, help="class labels for conditional models, e.g. 0,1,2")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", default="grid.png", help="output PNG, or directory with --format shards "
                          "(default: %(default)s)")
    generate.add_argument("--format", choices=("grid", "shards"), default="grid",
                          help="one grid PNG, or a shard directory written batch by batch (default: %(default)s)")
    generate.add_argument("--overwrite", action="store_true", help="replace an existing shard directory")
    generate.set_defaults(run=_generate)

    add_table_commands(commands, lambda parent, name, **kwargs: _command(parent, verbose, name, **kwargs))

    export = _command(commands, verbose, "export", help="convert a run's model to SavedModel, LiteRT or ONNX",
                      description="Convert a run's model, run the copy on inputs and refuse it when it differs "
                      "from the original by more than --tolerance.")
    add_run_dir(export, "a run directory (generative or classical)")
    export.add_argument("--format", choices=("savedmodel", "litert", "onnx"), default="savedmodel")
    export.add_argument("--out", help="output path (default: inside the run)")
    export.add_argument("--data", help="classical runs: the table whose rows check the copy (default: the run's)")
    export.add_argument("--target", help="target column of --data")
    export.add_argument("--signature", action="append", dest="signatures", help="export only this signature")
    export.add_argument("--tolerance", type=float, default=1e-5)
    export.add_argument("--allow-unsafe-ops", action="store_true",
                        help="read a SavedModel whose graph touches files or runs Python; only files you trust")
    export.set_defaults(run=_export)

    explain = _command(commands, verbose, "explain", help="explain a run's model", description="Classical runs: "
                       "permutation importance, partial dependence and ICE, SHAP values; generative runs: latent "
                       "traversals and Grad-CAM. Writes DIR/explain/ and adds it to DIR/report.html.")
    add_run_dir(explain, "a classical or generative run directory (or a .keras classifier)")
    explain.add_argument("--data", help="the table (classical) or images (Grad-CAM) to explain on")
    explain.add_argument("--target", help="target column of --data, when the run does not record it")
    explain.add_argument("--method", action="append", choices=("permutation", "pdp", "shap", "traversal", "gradcam"),
                         help="repeat for several (default: all that apply)")
    explain.add_argument("--classifier", help="a .keras image classifier for Grad-CAM of a generative run's samples")
    explain.add_argument("--top", type=int, default=4, help="partial dependence plots for this many columns")
    explain.add_argument("--allow-pickle", action="store_true", help="load joblib/pickle models; only files you trust")
    explain.set_defaults(run=_explain, tensorflow=_holds_keras_model)

    shard = _command(commands, verbose, "shard", help="write images as TFRecord shards with a manifest",
                     description="Write any image source as shuffled TFRecord shards (raw uint8, PNG or JPEG) "
                     "with DIR/manifest.json; load_images(DIR) and --data DIR read them back.")
    shard.add_argument("source", metavar="SOURCE", help="digits, tfds:NAME, a .npz path or an image folder")
    shard.add_argument("--out", required=True, help="output directory")
    shard.add_argument("--split", action="append", dest="splits", help="write only this split (repeatable)")
    shard.add_argument("--image-size", type=int)
    shard.add_argument("--channels", type=int, choices=(1, 3))
    shard.add_argument("--encoding", choices=("raw", "png", "jpeg"), help="default: raw for small images")
    shard.add_argument("--num-shards", type=int, help="default: at least 16, about --shard-size-mb each")
    shard.add_argument("--shard-size-mb", type=float, default=100)
    shard.add_argument("--seed", type=int, default=0)
    shard.add_argument("--skip-bad-files", action="store_true", help="skip unreadable images, counting them")
    shard.add_argument("--overwrite", action="store_true", help="replace shards written before")
    shard.set_defaults(run=_shard, tensorflow=True)
    return parser


def _command(subparsers, verbose, name, **kwargs):
    return subparsers.add_parser(name, parents=[verbose], **kwargs)


def _translate(args):
    from keras_bigml.workflows.generative import translate_images

    result = translate_images(args.run_dir, args.input, args.out, direction=args.direction, split=args.split,
                              limit=args.limit, format=args.format, overwrite=args.overwrite,
                              allow_unsafe=args.allow_unsafe)
    print(f"Translated {result.count} images ({result.direction}) into {result.out_dir}")


def _evaluate(args):
    from keras_bigml.workflows.generative import evaluate_run

    result = evaluate_run(args.run_dir, args.data, n=args.n, limit=args.limit, classifier=args.classifier,
                          inception_weights=args.inception_weights, classifier_epochs=args.classifier_epochs,
                          seed=args.seed, allow_unsafe=args.allow_unsafe)
    metrics = result.metrics
    for name, value in metrics.items():
        if isinstance(value, float):
            print(f"{name:24s} {value:.4f}")
    real = metrics["real_samples"]
    print(f"On {metrics['features']}: {metrics['generated_samples']:,} generated, {real['train']:,} real train, "
          f"{real['test']:,} real test images.")
    if not metrics["fid_comparable"]:
        print(metrics["fid_note"])
    print(f"Wrote {result.path}")


def _generate(args):
    from keras_bigml.workflows.generative import generate_images

    result = generate_images(args.run_dir, args.out, n=args.n, labels=args.labels, seed=args.seed,
                             format=args.format, overwrite=args.overwrite, allow_unsafe=args.allow_unsafe)
    print(f"Wrote {result.count} generated images to {result.path}")


def _quickstart(args):
    from keras_bigml.workflows.quickstart import quickstart

    result = quickstart(args.out, args.epochs, overwrite=args.overwrite)
    for name, run in (("VAE", result.vae), ("conditional GAN", result.cgan), ("random forest", result.random_forest)):
        print(f"Wrote the {name} run:")
        print_paths(run.paths)


def _explain(args):
    from keras_bigml.workflows.explaining import explain

    result = explain(args.run_dir, args.data, args.method, target=args.target, classifier=args.classifier,
                     top=args.top, allow_pickle=args.allow_pickle, allow_unsafe=args.allow_unsafe)
    for method, ranking in result.rankings.items():
        print(f"{method}: {', '.join(ranking.features[:5])}")
    for method, reason in result.skipped.items():
        print(f"{method}: skipped ({reason})")
    print(f"Explained the {result.kind} run {args.run_dir}. Wrote:")
    print_paths(result.paths)


def _holds_keras_model(args):
    return args.run_dir.lower().endswith(".keras") or os.path.isfile(os.path.join(args.run_dir, "model.keras"))


def _shard(args):
    from keras_bigml.workflows.sharding import shard

    result = shard(args.source, args.out, splits=args.splits, image_size=args.image_size, channels=args.channels,
                   encoding=args.encoding, num_shards=args.num_shards, shard_size_mb=args.shard_size_mb,
                   seed=args.seed, skip_bad_files=args.skip_bad_files, overwrite=args.overwrite)
    for split, records in result.records.items():
        print(f"{split}: {records} images in {result.shards[split]} shards")
    print(f"Wrote {result.manifest_path} ({result.encoding}, {result.bytes / 1e6:.1f} MB, {result.seconds:.1f} s)")


def _export(args):
    from keras_bigml.workflows.export import export_run

    result = export_run(args.run_dir, args.format, args.out, data=args.data, target=args.target,
                        signature_keys=args.signatures, tolerance=args.tolerance, allow_unsafe=args.allow_unsafe,
                        allow_unsafe_ops=args.allow_unsafe_ops)
    print(f"Wrote {result.format} to {result.path}, checked on {result.checked_on} ({result.runtime}):")
    for signature, outputs in result.differences.items():
        for output, difference in outputs.items():
            print(f"  {signature}/{output}: largest difference {difference:.2e}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _fail(message, status, verbose):
    if verbose:
        import traceback

        traceback.print_exc()
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
