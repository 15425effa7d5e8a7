"""The ``keras-bigml`` command line.

Commands::

    keras-bigml quickstart                    train the default models on bundled data
    keras-bigml train MODEL --data SOURCE     MODEL: vae, gan, cgan, wgan-gp; writes a run directory
    keras-bigml train cyclegan --data-a SOURCE --data-b SOURCE
    keras-bigml generate DIR --n 64           sample a grid from a trained run
    keras-bigml translate DIR --input SOURCE  translate images with a trained CycleGAN
    keras-bigml evaluate DIR --data SOURCE    generator metrics of a trained GAN or VAE
    keras-bigml classical --algo NAME         train and evaluate a scikit-learn model on a table
"""

import argparse
import os
import sys

import numpy as np

QUICKSTART_DIR = os.path.join("saved_models", "quickstart")
GAN_COMMANDS = (
    ("gan", "bce", "DCGAN (non-saturating loss)"),
    ("cgan", "bce", "class-conditional DCGAN"),
    ("wgan-gp", "wgan-gp", "Wasserstein GAN with gradient penalty"),
)


def main(argv=None):
    """Entry point of the ``keras-bigml`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except (ValueError, OSError, ArithmeticError) as error:
        print(f"keras-bigml: error: {error}", file=sys.stderr)
        return 1
    return 0


def build_parser():
    from keras_bigml.classical.estimators import ALGORITHMS

    parser = argparse.ArgumentParser(
        prog="keras-bigml",
        description="Machine learning and image generation for big-data analysis.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    quickstart = commands.add_parser(
        "quickstart", help="train the default models on bundled data (offline)",
        description="Train a small VAE and a conditional GAN on scikit-learn's bundled digits "
        "(sample grids, .keras models, SavedModels) and a random forest on the bundled "
        "breast-cancer table (report, plots, model).",
    )
    quickstart.add_argument("--out", default=QUICKSTART_DIR, help="output folder (default: %(default)s)")
    quickstart.add_argument("--epochs", type=int, default=40, help="training epochs per model (default: %(default)s)")
    quickstart.set_defaults(run=_quickstart)

    train = commands.add_parser("train", help="train a generative model", description="Train a model.")
    models = train.add_subparsers(title="models", metavar="MODEL")
    vae = models.add_parser(
        "vae", help="variational autoencoder",
        description="Train a convolutional VAE and write DIR/model.keras, DIR/saved_model/, "
        "DIR/samples.png and DIR/history.json.",
    )
    _add_training_arguments(vae)
    vae.add_argument("--latent-dim", type=int, default=16)
    vae.add_argument("--filters", type=_int_tuple, default=(32, 64), help="encoder widths, e.g. 32,64")
    vae.add_argument("--hidden-units", type=int, default=256)
    vae.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default="bernoulli")
    vae.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    vae.add_argument("--conditional", action="store_true", help="condition on class labels")
    vae.add_argument("--binarize", action="store_true", help="dynamic binarization of the pixels")
    vae.set_defaults(run=_train_vae, model_name="vae")
    for name, loss, help_text in GAN_COMMANDS:
        gan = models.add_parser(
            name, help=help_text,
            description=f"Train a {help_text} and write DIR/model.keras, DIR/saved_model/, "
            "DIR/samples.png and DIR/history.json.",
        )
        _add_training_arguments(gan)
        gan.add_argument("--latent-dim", type=int, default=64)
        gan.add_argument("--generator-filters", type=_int_tuple, default=(128, 64))
        gan.add_argument("--discriminator-filters", type=_int_tuple, default=(64, 128))
        gan.add_argument("--discriminator-steps", type=int, default=5 if loss == "wgan-gp" else 1)
        gan.add_argument("--loss", choices=("bce", "lsgan", "hinge", "wgan-gp"), default=loss)
        gan.add_argument("--ema-decay", type=float, default=0.999, help="0 switches the average off")
        gan.set_defaults(
            run=_train_gan, model_name=name, conditional=name == "cgan", binarize=False,
            learning_rate=1e-4 if loss == "wgan-gp" else 2e-4,
        )

    cyclegan = models.add_parser(
        "cyclegan", help="unpaired image-to-image translation",
        description="Train a CycleGAN between two image sources and write DIR/model.keras, "
        "DIR/saved_model/ (a_to_b, b_to_a), DIR/samples.png and DIR/history.json.",
    )
    _add_cyclegan_arguments(cyclegan)
    cyclegan.set_defaults(run=_train_cyclegan, model_name="cyclegan")

    translate = commands.add_parser(
        "translate", help="translate images with a trained CycleGAN",
        description="Load DIR/model.keras, translate the images of SOURCE and write them as "
        "PNG files into OUT, with OUT/grid.png showing inputs beside outputs.",
    )
    translate.add_argument("run_dir", metavar="DIR", help="a CycleGAN run directory (or a .keras file)")
    translate.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    translate.add_argument("--input", required=True, help="digits, tfds:NAME, a .npz path or an image folder")
    translate.add_argument("--split", default="test")
    translate.add_argument("--limit", type=int, help="translate only this many images")
    translate.add_argument("--out", required=True, help="output folder")
    translate.set_defaults(run=_translate)

    evaluate = commands.add_parser(
        "evaluate", help="judge a trained GAN or VAE against real images",
        description="Load DIR/model.keras, train a digit/domain classifier on SOURCE's training split "
        "(or load --classifier), generate --n images, and print and save DIR/metrics.json: Frechet and "
        "kernel distances on the classifier's features (real train vs test beside them), classifier "
        "score, label agreement for conditional models, and the test negative ELBO for VAEs.",
    )
    evaluate.add_argument("run_dir", metavar="DIR", help="a GAN or VAE run directory (or a .keras file)")
    evaluate.add_argument("--data", required=True, help="digits, tfds:NAME, a .npz path or an image folder")
    evaluate.add_argument("--n", type=int, default=1000, help="generated images (default: %(default)s)")
    evaluate.add_argument("--limit", type=int, help="use only this many real images per split")
    evaluate.add_argument("--classifier", help="a .keras classifier to use instead of training one")
    evaluate.add_argument("--inception-weights", help="a local Inception-v3 .h5 file: its features instead")
    evaluate.add_argument("--classifier-epochs", type=int, default=3)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(run=_evaluate)

    generate = commands.add_parser(
        "generate", help="sample images from a trained run",
        description="Load DIR/model.keras and save a grid of generated images.",
    )
    generate.add_argument("run_dir", metavar="DIR", help="a run directory (or a .keras file)")
    generate.add_argument("--n", type=int, default=64, help="number of images (default: %(default)s)")
    generate.add_argument("--labels", type=_int_tuple, help="class labels for conditional models, e.g. 0,1,2")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--out", default="grid.png", help="output PNG (default: %(default)s)")
    generate.set_defaults(run=_generate)

    classical = commands.add_parser(
        "classical", help="train and evaluate a scikit-learn model on a table",
        description="Split a table, optionally tune, train, evaluate on the held-out rows, "
        "and write DIR/report.json, plots (PNG) and DIR/model.skops.",
    )
    classical.add_argument("--algo", required=True, choices=list(ALGORITHMS), metavar="NAME",
                           help=f"one of {', '.join(ALGORITHMS)}")
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
    classical.set_defaults(run=_classical)
    return parser


def _add_training_arguments(parser):
    parser.add_argument("--data", default="digits", help="digits, tfds:NAME, a .npz path or an image folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, help="resize images to this size")
    parser.add_argument("--channels", type=int, choices=(1, 3))
    parser.add_argument("--limit", type=int, help="use only this many training images")
    parser.add_argument("--num-classes", type=int,
                        help="classes of a conditional model (default: counted in one pass over the labels)")
    _add_run_arguments(parser, batch_size=64, learning_rate=1e-3)


def _add_cyclegan_arguments(parser):
    parser.add_argument("--data-a", required=True, help="domain A: digits, tfds:NAME, a .npz path or a folder")
    parser.add_argument("--data-b", required=True, help="domain B, as --data-a")
    parser.add_argument("--split-a", default="train")
    parser.add_argument("--split-b", default="train")
    parser.add_argument("--image-size", type=int, help="resize both domains (default: A's size)")
    parser.add_argument("--channels-a", type=int, choices=(1, 3))
    parser.add_argument("--channels-b", type=int, choices=(1, 3))
    parser.add_argument("--limit", type=int, help="use only this many images of each domain")
    parser.add_argument("--jitter", action="store_true",
                        help="enlarge by 286/256, crop back at random and flip at random, anew each epoch")
    parser.add_argument("--generator", choices=("resnet", "unet"), default="resnet")
    parser.add_argument("--generator-filters", type=int, default=64)
    parser.add_argument("--discriminator-filters", type=int, default=64)
    parser.add_argument("--residual-blocks", type=int, help="default: 9 from 256 pixels, 6 from 128, else 3")
    parser.add_argument("--discriminator-layers", type=int, default=3)
    parser.add_argument("--loss", choices=("lsgan", "bce"), default="lsgan")
    parser.add_argument("--cycle-weight", type=float, default=10.0)
    parser.add_argument("--identity-weight", type=float,
                        help="multiple of the cycle weight (default 0.5, or 0 when channels differ)")
    parser.add_argument("--pool-size", type=int, default=50)
    parser.add_argument("--semantic-classifier", metavar="MODEL.keras",
                        help="a saved classifier of both domains' images: adds CyCADA's semantic consistency loss")
    parser.add_argument("--semantic-weight", type=float, default=1.0)
    parser.add_argument("--decay-epochs", type=int,
                        help="final epochs over which the learning rate falls to zero (default: half)")
    _add_run_arguments(parser, batch_size=1, learning_rate=2e-4)


def _add_run_arguments(parser, batch_size, learning_rate):
    """Arguments every training command shares: length, optimizer step, strategy, output."""
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=batch_size, help="global batch size")
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--strategy", default="auto", choices=("auto", "default", "mirrored", "multiworker"))
    parser.add_argument("--mixed-precision", choices=("bfloat16", "float16"), help="mixed-precision policy")
    parser.add_argument("--seed", type=int, help="seed for reproducible runs")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from DIR/backup (same arguments as the first time)")


def _train_vae(args):
    dataset, image_shape, num_classes = _training_data(args)

    def build():
        import keras

        from keras_bigml.generative import VAE

        vae = VAE(
            image_shape=image_shape, latent_dim=args.latent_dim, filters=args.filters,
            hidden_units=args.hidden_units, likelihood=args.likelihood, beta=args.beta,
            num_classes=num_classes, seed=args.seed,
        )
        vae.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
        return vae

    _fit_and_report(build, dataset, args)


def _train_gan(args):
    dataset, image_shape, num_classes = _training_data(args)

    def build():
        import keras

        from keras_bigml.generative import GAN

        gan = GAN(
            image_shape=image_shape, latent_dim=args.latent_dim, generator_filters=args.generator_filters,
            discriminator_filters=args.discriminator_filters, num_classes=num_classes,
            discriminator_steps=args.discriminator_steps, ema_decay=args.ema_decay or None, seed=args.seed,
        )
        beta_1, beta_2 = (0.0, 0.9) if args.loss == "wgan-gp" else (0.5, 0.999)
        gan.compile(
            d_optimizer=keras.optimizers.Adam(args.learning_rate, beta_1=beta_1, beta_2=beta_2),
            g_optimizer=keras.optimizers.Adam(args.learning_rate, beta_1=beta_1, beta_2=beta_2),
            loss=args.loss,
        )
        return gan

    _fit_and_report(build, dataset, args)


def _train_cyclegan(args):
    from keras_bigml.data import load_images, pair_unpaired, random_jitter

    def side(source, split, channels, size, seed):
        return load_images(source, split=split, image_size=size, channels=channels, batch_size=None,
                           limit=args.limit, seed=seed)

    first = side(args.data_a, args.split_a, args.channels_a, args.image_size, args.seed)
    size = args.image_size or tuple(first.element_spec.shape[:2])
    second = side(args.data_b, args.split_b, args.channels_b, size,
                  None if args.seed is None else args.seed + 1)
    if args.jitter:
        first, second = random_jitter(first, seed=args.seed), random_jitter(second, seed=args.seed)
    dataset = pair_unpaired(first, second, batch_size=args.batch_size)
    steps = args.epochs * int(dataset.cardinality())
    decay = steps // 2 if args.decay_epochs is None else args.decay_epochs * int(dataset.cardinality())

    def build():
        import keras

        from keras_bigml.generative import CycleGAN
        from keras_bigml.generative.schedules import LinearDecay

        semantic_classifier = None
        if args.semantic_classifier:
            if not os.path.isfile(args.semantic_classifier):
                raise FileNotFoundError(f"No classifier file at {args.semantic_classifier} (--semantic-classifier).")
            semantic_classifier = keras.saving.load_model(args.semantic_classifier)
        model = CycleGAN(
            tuple(first.element_spec.shape), tuple(second.element_spec.shape), generator=args.generator,
            generator_filters=args.generator_filters, discriminator_filters=args.discriminator_filters,
            residual_blocks=args.residual_blocks, discriminator_layers=args.discriminator_layers,
            cycle_weight=args.cycle_weight, identity_weight=args.identity_weight,
            pool_size=args.pool_size, semantic_classifier=semantic_classifier,
            semantic_weight=args.semantic_weight, seed=args.seed,
        )
        model.compile(loss=args.loss, learning_rate=LinearDecay(args.learning_rate, steps - decay, max(decay, 1)))
        return model

    _fit_and_report(build, dataset, args)


def _translate(args):
    from keras_bigml.data import load_images
    from keras_bigml.plotting import save_image_grid
    from keras_bigml.runs import load_run_model

    model = load_run_model(args.run_dir)
    if not hasattr(model, "translate"):
        raise ValueError(f"{args.run_dir} holds a {type(model).__name__}, not a CycleGAN; nothing to translate.")
    shape = model.image_shape_a if args.direction == "a2b" else model.image_shape_b
    dataset = load_images(args.input, split=args.split, image_size=shape[:2], channels=shape[2],
                          batch_size=256, shuffle=False, limit=args.limit)
    images = np.concatenate([batch.numpy() for batch in dataset])
    translated = model.translate(images, args.direction)
    os.makedirs(args.out, exist_ok=True)
    for index, image in enumerate(translated):
        save_image_grid(image[None], os.path.join(args.out, f"{index:05d}.png"), ncols=1, scale=1)
    count = min(len(images), 32)
    side_by_side = np.stack([_as_rgb(images[:count], translated), _as_rgb(translated[:count], images)], axis=1)
    save_image_grid(side_by_side.reshape(-1, *side_by_side.shape[2:]), os.path.join(args.out, "grid.png"), ncols=8)
    print(f"Translated {len(images)} images ({args.direction}) into {args.out}")


def _as_rgb(images, other):
    """``images`` with three channels when ``other`` has three, so the two fit one grid."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 and other.shape[-1] == 3 else images


def _training_data(args):
    """Return the dataset, its image shape and (for conditional models) the class count."""
    from keras_bigml.data import load_images

    dataset = load_images(
        args.data, split=args.split, image_size=args.image_size, channels=args.channels,
        labels=args.conditional, batch_size=args.batch_size, seed=args.seed,
        binarize=args.binarize, limit=args.limit,
    )
    image_shape = tuple(_element_images(dataset).shape[1:])
    if not args.conditional:
        return dataset, image_shape, None
    return dataset, image_shape, args.num_classes or _count_classes(dataset)


def _fit_and_report(build, dataset, args):
    """Build and compile the model inside the chosen strategy, fit it, write the run."""
    import keras

    from keras_bigml.distribute import get_strategy
    from keras_bigml.runs import fit_and_save

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)
    with get_strategy(args.strategy).scope():
        model = build()
    paths = fit_and_save(model, dataset, args.out, args.epochs, verbose=_verbosity(), resume=args.resume)
    print(f"Trained {args.model_name} for {args.epochs} epochs. Wrote:")
    for name, path in paths.items():
        print(f"  {name:12s} {path}")


def _quickstart(args):
    print("Quickstart: a VAE on scikit-learn's bundled 8x8 digits, upscaled to 16x16.")
    vae_args = build_parser().parse_args(
        ["train", "vae", "--data", "digits", "--image-size", "16", "--epochs", str(args.epochs),
         "--batch-size", "32", "--latent-dim", "8", "--seed", "0",
         "--out", os.path.join(args.out, "vae")]
    )
    _train_vae(vae_args)
    print("Quickstart: a conditional GAN on the same digits.")
    gan_args = build_parser().parse_args(
        ["train", "cgan", "--data", "digits", "--image-size", "16", "--epochs", str(args.epochs),
         "--batch-size", "32", "--latent-dim", "32", "--generator-filters", "64,32",
         "--discriminator-filters", "32,64", "--ema-decay", "0.99", "--seed", "0",
         "--out", os.path.join(args.out, "cgan")]
    )
    _train_gan(gan_args)
    print("Quickstart: a random forest on scikit-learn's bundled breast-cancer table.")
    _classical(build_parser().parse_args(
        ["classical", "--algo", "random_forest", "--data", "breast_cancer",
         "--out", os.path.join(args.out, "random_forest")]
    ))


def _classical(args):
    from keras_bigml.workflows.classical import train_classical

    result = train_classical(
        args.algo, args.data, args.out, target=args.target, task=args.task, tune_method=args.tune,
        test_size=args.test_size, random_state=args.seed, dask=args.dask,
    )
    report = result.report
    metrics = report["test"]
    shown = ("accuracy", "roc_auc") if report["task"] == "classification" else ("r2", "mae", "rmse")
    summary = ", ".join(f"{name} {metrics[name]:.4f}" for name in shown if name in metrics)
    print(f"{args.algo} ({report['task']}) on {report['test_rows']} held-out rows: {summary}")
    print("Wrote:")
    for name, path in result.paths.items():
        print(f"  {name:18s} {path}")


def _evaluate(args):
    import json

    import keras

    from keras_bigml.data import load_images
    from keras_bigml.evaluation.generative import generator_report, inception_classifier, train_classifier
    from keras_bigml.files import atomic_path
    from keras_bigml.runs import load_run_model

    model = load_run_model(args.run_dir)
    if not hasattr(model, "latent_dim"):
        raise ValueError(f"{args.run_dir} holds a {type(model).__name__}; evaluate judges GANs and VAEs.")
    shape = model.image_shape
    splits = {}
    for split in ("train", "test"):
        dataset = load_images(args.data, split=split, image_size=shape[:2], channels=shape[2], labels=True,
                              batch_size=1000, shuffle=False, limit=args.limit)
        batches = list(dataset.as_numpy_iterator())
        splits[split] = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    if args.inception_weights:
        classifier = inception_classifier(args.inception_weights, shape)
    elif args.classifier:
        classifier = keras.saving.load_model(args.classifier)
    else:
        classifier = train_classifier(*splits["train"], epochs=args.classifier_epochs, seed=args.seed)
    report = generator_report(model, classifier, splits["train"][0], splits["test"][0], args.n, args.seed)
    if hasattr(model, "log_likelihood"):
        test = load_images(args.data, split="test", image_size=shape[:2], channels=shape[2],
                           labels=bool(model.num_classes), shuffle=False, limit=args.limit)
        report["test_negative_elbo"] = float(model.evaluate(test, verbose=0, return_dict=True)["loss"])
    path = os.path.join(args.run_dir if os.path.isdir(args.run_dir) else os.path.dirname(args.run_dir),
                        "metrics.json")
    with atomic_path(path) as tmp, open(tmp, "w") as file:
        json.dump(report, file, indent=1)
    for name, value in report.items():
        print(f"{name:24s} {value:.4f}")
    print(f"Wrote {path}")


def _generate(args):
    from keras_bigml.plotting import save_image_grid
    from keras_bigml.runs import load_run_model

    model = load_run_model(args.run_dir)
    z = np.random.default_rng(args.seed).standard_normal((args.n, model.latent_dim)).astype("float32")
    images = model.generate(z=z, labels=args.labels)
    save_image_grid(images, args.out)
    print(f"Wrote {args.n} generated images to {args.out}")


def _element_images(dataset):
    spec = dataset.element_spec
    return spec[0] if isinstance(spec, tuple) else spec


def _count_classes(dataset):
    import tensorflow as tf

    largest = dataset.reduce(tf.constant(-1), lambda top, batch: tf.maximum(top, tf.reduce_max(batch[1])))
    return int(largest) + 1


def _int_tuple(text):
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _verbosity():
    return 1 if sys.stdout.isatty() else 2


if __name__ == "__main__":
    sys.exit(main())
