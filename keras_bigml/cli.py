"""The ``keras-bigml`` command line: parse the arguments, call one workflow, print its summary.

Commands::

    keras-bigml quickstart                    train the default models on bundled data
    keras-bigml train MODEL --data SOURCE     MODEL: vae, gan, cgan, wgan-gp; writes a run directory
    keras-bigml train cyclegan --data-a SOURCE --data-b SOURCE
    keras-bigml generate DIR --n 64           sample a grid from a trained run
    keras-bigml translate DIR --input SOURCE  translate images with a trained CycleGAN
    keras-bigml evaluate DIR --data SOURCE    generator metrics of a trained GAN or VAE
    keras-bigml classical --algo NAME         train and evaluate a classical model on a table

Errors are one line on stderr (exit status 2 for usage errors, 1 for data and
file errors); ``--verbose`` or ``KERAS_BIGML_DEBUG=1`` shows TensorFlow's logs
and tracebacks.
"""

import argparse
import os
import signal
import sys

from keras_bigml.errors import KerasBigMLError

PROG = "keras-bigml"
GAN_COMMANDS = (
    ("gan", "bce", "DCGAN (non-saturating loss)"),
    ("cgan", "bce", "class-conditional DCGAN"),
    ("wgan-gp", "wgan-gp", "Wasserstein GAN with gradient penalty"),
)


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
        if getattr(args, "tensorflow", False) and not verbose:
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

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Machine learning and image generation for big-data analysis.")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's logs and full tracebacks")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=OneLineParser)
    # Every command also takes --verbose after its name.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    quickstart = _command(commands, verbose, 
        "quickstart", help="train the default models on bundled data (offline)",
        description="Train a small VAE and a conditional GAN on scikit-learn's bundled digits (sample grids, "
        ".keras models, SavedModels) and a random forest on the bundled breast-cancer table.")
    quickstart.add_argument("--out", default=os.path.join("saved_models", "quickstart"),
                            help="output folder (default: %(default)s)")
    quickstart.add_argument("--epochs", type=int, default=40, help="training epochs per model (default: %(default)s)")
    quickstart.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier quickstart")
    quickstart.set_defaults(run=_quickstart, tensorflow=True)

    train = _command(commands, verbose, "train", help="train a generative model", description="Train a model.")
    models = train.add_subparsers(title="models", metavar="MODEL", parser_class=OneLineParser)
    vae = _command(models, verbose, "vae", help="variational autoencoder", description="Train a convolutional VAE and "
                            "write DIR/model.keras, DIR/saved_model/, DIR/samples.png, DIR/history.json, DIR/run.json.")
    _add_image_arguments(vae)
    _add_run_arguments(vae, batch_size=64)
    vae.add_argument("--latent-dim", type=int, default=16)
    vae.add_argument("--filters", type=_int_tuple, default=(32, 64), help="encoder widths, e.g. 32,64")
    vae.add_argument("--hidden-units", type=int, default=256)
    vae.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default="bernoulli")
    vae.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    vae.add_argument("--conditional", action="store_true", help="condition on class labels")
    vae.add_argument("--binarize", action="store_true", help="dynamic binarization of the pixels")
    vae.set_defaults(run=_train_vae, model_name="vae")
    for name, loss, help_text in GAN_COMMANDS:
        gan = _command(models, verbose, name, help=help_text, description=f"Train a {help_text} and write DIR/model.keras, "
                                "DIR/saved_model/, DIR/samples.png, DIR/history.json and DIR/run.json.")
        _add_image_arguments(gan)
        _add_run_arguments(gan, batch_size=64)
        gan.add_argument("--latent-dim", type=int, default=64)
        gan.add_argument("--generator-filters", type=_int_tuple, default=(128, 64))
        gan.add_argument("--discriminator-filters", type=_int_tuple, default=(64, 128))
        gan.add_argument("--discriminator-steps", type=int, help="default: 5 for wgan-gp, else 1")
        gan.add_argument("--loss", choices=("bce", "lsgan", "hinge", "wgan-gp"), default=loss)
        gan.add_argument("--ema-decay", type=float, default=0.999, help="0 switches the average off")
        gan.set_defaults(run=_train_gan, model_name=name, conditional=name == "cgan")

    cyclegan = _command(models, verbose, "cyclegan", help="unpaired image-to-image translation", description="Train a "
                                 "CycleGAN between two image sources and write DIR/model.keras, DIR/saved_model/ "
                                 "(a_to_b, b_to_a), DIR/samples.png, DIR/history.json and DIR/run.json.")
    for side in ("a", "b"):
        cyclegan.add_argument(f"--data-{side}", required=True, help=f"domain {side.upper()}: digits, tfds:NAME, "
                              "a .npz path, an image folder or a shard directory")
        cyclegan.add_argument(f"--split-{side}", default="train")
        cyclegan.add_argument(f"--channels-{side}", type=int, choices=(1, 3))
    cyclegan.add_argument("--image-size", type=int, help="resize both domains (default: A's size)")
    cyclegan.add_argument("--limit", type=int, help="use only this many images of each domain")
    cyclegan.add_argument("--skip-bad-files", action="store_true", help="skip unreadable images, counting them")
    cyclegan.add_argument("--jitter", action="store_true",
                          help="enlarge by 286/256, crop back at random and flip at random, anew each epoch")
    cyclegan.add_argument("--generator", choices=("resnet", "unet"), default="resnet")
    cyclegan.add_argument("--generator-filters", type=int, default=64)
    cyclegan.add_argument("--discriminator-filters", type=int, default=64)
    cyclegan.add_argument("--residual-blocks", type=int, help="default: 9 from 256 pixels, 6 from 128, else 3")
    cyclegan.add_argument("--discriminator-layers", type=int, default=3)
    cyclegan.add_argument("--loss", choices=("lsgan", "bce"), default="lsgan")
    cyclegan.add_argument("--cycle-weight", type=float, default=10.0)
    cyclegan.add_argument("--identity-weight", type=float,
                          help="multiple of the cycle weight (default 0.5, or 0 when channels differ)")
    cyclegan.add_argument("--pool-size", type=int, default=50)
    cyclegan.add_argument("--semantic-classifier", metavar="MODEL.keras",
                          help="a saved classifier of both domains' images: adds CyCADA's semantic consistency loss")
    cyclegan.add_argument("--semantic-labels", action="store_true",
                          help="train the semantic classifier on --data-a's labels first (CyCADA's teacher)")
    cyclegan.add_argument("--semantic-epochs", type=int, default=5, help="epochs of that classifier")
    cyclegan.add_argument("--semantic-weight", type=float, default=1.0)
    cyclegan.add_argument("--decay-epochs", type=int,
                          help="final epochs over which the learning rate falls to zero (default: half)")
    _add_run_arguments(cyclegan, batch_size=1)
    cyclegan.set_defaults(run=_train_cyclegan, model_name="cyclegan")

    translate = _command(commands, verbose, "translate", help="translate images with a trained CycleGAN", description=(
        "Translate the images of SOURCE with DIR/model.keras into PNG files in OUT, with OUT/grid.png showing "
        "inputs beside outputs."))
    _add_run_dir(translate, "a CycleGAN run directory (or a .keras file)")
    translate.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    translate.add_argument("--input", required=True, help="digits, tfds:NAME, a .npz path or an image folder")
    translate.add_argument("--split", default="test")
    translate.add_argument("--limit", type=int, help="translate only this many images")
    translate.add_argument("--out", required=True, help="output folder")
    translate.set_defaults(run=_translate)

    evaluate = _command(commands, verbose, "evaluate", help="judge a trained GAN or VAE against real images", description=(
        "Train a digit/domain classifier on SOURCE's training split (or load --classifier), generate --n images, "
        "and print and save DIR/metrics.json: Frechet and kernel distances on the classifier's features, "
        "classifier score, label agreement for conditional models, and the test negative ELBO for VAEs."))
    _add_run_dir(evaluate, "a GAN or VAE run directory (or a .keras file)")
    evaluate.add_argument("--data", required=True, help="digits, tfds:NAME, a .npz path or an image folder")
    evaluate.add_argument("--n", type=int, default=1000, help="generated images (default: %(default)s)")
    evaluate.add_argument("--limit", type=int, help="use only this many real images per split")
    evaluate.add_argument("--classifier", help="a .keras classifier to use instead of training one")
    evaluate.add_argument("--inception-weights", help="a local Inception-v3 .h5 file: its features instead")
    evaluate.add_argument("--classifier-epochs", type=int, default=3)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(run=_evaluate)

    generate = _command(commands, verbose, "generate", help="sample images from a trained run",
                                   description="Load DIR/model.keras and save a grid of generated images.")
    _add_run_dir(generate, "a GAN or VAE run directory (or a .keras file)")
    generate.add_argument("--n", type=int, default=64, help="number of images (default: %(default)s)")
    generate.add_argument("--labels", type=_int_tuple, help="class labels for conditional models, e.g. 0,1,2")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", default="grid.png", help="output PNG (default: %(default)s)")
    generate.set_defaults(run=_generate)

    classical = _command(commands, verbose, "classical", help="train and evaluate a classical model on a table",
                                    description="Split a table, optionally tune, train, evaluate on the held-out "
                                    "rows, and write DIR/report.json, plots (PNG) and the model.")
    classical.add_argument("--algo", required=True, metavar="NAME", help="linear_regression, logistic_regression, "
                           "svm, decision_tree, random_forest or gradient_boosting")
    classical.add_argument("--data", default="breast_cancer",
                           help="iris, wine, breast_cancer, digits, diabetes, or a .csv/.parquet path")
    classical.add_argument("--target", help="target column (bundled sets know theirs)")
    classical.add_argument("--task", choices=("classification", "regression"), help="default: inferred")
    classical.add_argument("--tune", nargs="?", const="grid", choices=("grid", "random", "halving"),
                           help="search hyper-parameters first (default method: grid)")
    classical.add_argument("--test-size", type=float, default=0.25)
    classical.add_argument("--seed", type=int, default=0)
    classical.add_argument("--dask", nargs="?", const=True, metavar="ADDRESS",
                           help="run parallel work on Dask: a scheduler address, or a local cluster")
    classical.add_argument("--out", required=True, help="output folder")
    classical.set_defaults(run=_classical, tensorflow=False)
    return parser


def _command(subparsers, verbose, name, **kwargs):
    return subparsers.add_parser(name, parents=[verbose], **kwargs)


def _add_image_arguments(parser):
    parser.add_argument("--data", default="digits", help="digits, tfds:NAME, a .npz path, an image folder "
                        "or a shard directory")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, help="resize images to this size")
    parser.add_argument("--channels", type=int, choices=(1, 3))
    parser.add_argument("--limit", type=int, help="use only this many training images")
    parser.add_argument("--skip-bad-files", action="store_true", help="skip unreadable images, counting them")
    parser.add_argument("--num-classes", type=int,
                        help="classes of a conditional model (default: counted in one pass over the labels)")


def _add_run_arguments(parser, batch_size):
    """Arguments every training command shares: length, optimizer step, strategy, output."""
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=batch_size, help="global batch size")
    parser.add_argument("--learning-rate", type=float, help="default: the model's usual one")
    parser.add_argument("--strategy", default="auto", choices=("auto", "default", "mirrored", "multiworker"))
    parser.add_argument("--mixed-precision", choices=("bfloat16", "float16"), help="mixed-precision policy")
    parser.add_argument("--seed", type=int, help="seed for reproducible runs")
    parser.add_argument("--tensorboard", action="store_true", help="log losses and sample grids to DIR/tensorboard")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--resume", action="store_true", help="continue an unfinished run in DIR with the arguments "
                        "it was started with")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in DIR")
    parser.add_argument("--allow-unsafe-deserialization", dest="allow_unsafe", action="store_true",
                        help="load .keras files whose layers run Python code (Lambda); only files you trust")
    parser.set_defaults(tensorflow=True)


def _add_run_dir(parser, help_text):
    parser.add_argument("run_dir", metavar="DIR", help=help_text)
    parser.add_argument("--allow-unsafe-deserialization", dest="allow_unsafe", action="store_true",
                        help="load .keras files whose layers run Python code (Lambda); only files you trust")
    parser.set_defaults(tensorflow=True)


def _images(args, side=""):
    from keras_bigml.workflows.generative import ImageSource

    suffix = f"_{side}" if side else ""
    return ImageSource(getattr(args, f"data{suffix}"), getattr(args, f"split{suffix}"), args.image_size,
                       getattr(args, f"channels{suffix}"), args.limit, args.skip_bad_files)


def _options(args):
    from keras_bigml.workflows.generative import TrainingOptions

    return TrainingOptions(args.epochs, args.batch_size, args.learning_rate, args.strategy, args.mixed_precision,
                           args.seed, args.tensorboard)


def _train_vae(args):
    from keras_bigml.workflows.generative import train_vae

    _print_training(args, train_vae(
        args.out, _images(args), _options(args), latent_dim=args.latent_dim, filters=args.filters,
        hidden_units=args.hidden_units, likelihood=args.likelihood, beta=args.beta, conditional=args.conditional,
        num_classes=args.num_classes, binarize=args.binarize, resume=args.resume, overwrite=args.overwrite))


def _train_gan(args):
    from keras_bigml.workflows.generative import train_gan

    _print_training(args, train_gan(
        args.out, _images(args), _options(args), loss=args.loss, conditional=args.conditional,
        num_classes=args.num_classes, latent_dim=args.latent_dim, generator_filters=args.generator_filters,
        discriminator_filters=args.discriminator_filters, discriminator_steps=args.discriminator_steps,
        ema_decay=args.ema_decay, resume=args.resume, overwrite=args.overwrite))


def _train_cyclegan(args):
    from keras_bigml.workflows.generative import train_cyclegan

    _print_training(args, train_cyclegan(
        args.out, _images(args, "a"), _images(args, "b"), _options(args), jitter=args.jitter,
        generator=args.generator, generator_filters=args.generator_filters,
        discriminator_filters=args.discriminator_filters, residual_blocks=args.residual_blocks,
        discriminator_layers=args.discriminator_layers, loss=args.loss, cycle_weight=args.cycle_weight,
        identity_weight=args.identity_weight, pool_size=args.pool_size,
        semantic_classifier=args.semantic_classifier, semantic_labels=args.semantic_labels,
        semantic_epochs=args.semantic_epochs, semantic_weight=args.semantic_weight,
        decay_epochs=args.decay_epochs, allow_unsafe=args.allow_unsafe, resume=args.resume,
        overwrite=args.overwrite))


def _print_training(args, result):
    print(f"Trained {args.model_name} for {result.epochs} epochs. Wrote:")
    _print_paths(result.paths)


def _translate(args):
    from keras_bigml.workflows.generative import translate_images

    result = translate_images(args.run_dir, args.input, args.out, direction=args.direction, split=args.split,
                              limit=args.limit, allow_unsafe=args.allow_unsafe)
    print(f"Translated {result.count} images ({result.direction}) into {result.out_dir}")


def _evaluate(args):
    from keras_bigml.workflows.generative import evaluate_run

    result = evaluate_run(args.run_dir, args.data, n=args.n, limit=args.limit, classifier=args.classifier,
                          inception_weights=args.inception_weights, classifier_epochs=args.classifier_epochs,
                          seed=args.seed, allow_unsafe=args.allow_unsafe)
    for name, value in result.metrics.items():
        print(f"{name:24s} {value:.4f}")
    print(f"Wrote {result.path}")


def _generate(args):
    from keras_bigml.workflows.generative import generate_images

    result = generate_images(args.run_dir, args.out, n=args.n, labels=args.labels, seed=args.seed,
                             allow_unsafe=args.allow_unsafe)
    print(f"Wrote {result.count} generated images to {result.path}")


def _quickstart(args):
    from keras_bigml.workflows.quickstart import quickstart

    result = quickstart(args.out, args.epochs, overwrite=args.overwrite)
    for run in (result.vae, result.cgan, result.random_forest):
        _print_paths(run.paths)


def _classical(args):
    from keras_bigml.workflows.classical import train_classical

    result = train_classical(args.algo, args.data, args.out, target=args.target, task=args.task,
                             tune_method=args.tune, test_size=args.test_size, random_state=args.seed, dask=args.dask)
    report, metrics = result.report, result.report["test"]
    shown = ("accuracy", "roc_auc") if report["task"] == "classification" else ("r2", "mae", "rmse")
    summary = ", ".join(f"{name} {metrics[name]:.4f}" for name in shown if name in metrics)
    print(f"{args.algo} ({report['task']}) on {report['test_rows']} held-out rows: {summary}")
    print("Wrote:")
    _print_paths(result.paths)


def _print_paths(paths):
    for name, path in paths.items():
        print(f"  {name:18s} {path}")


def _int_tuple(text):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


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
