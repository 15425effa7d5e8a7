"""The ``keras-bigml train`` commands: their arguments, and the training workflow each one calls."""

import argparse
import sys
from collections.abc import Callable, Mapping

from keras_bigml.precision import PRECISIONS

GAN_COMMANDS = (
    ("gan", "bce", "DCGAN (non-saturating loss)"),
    ("cgan", "bce", "class-conditional DCGAN"),
    ("wgan-gp", "wgan-gp", "Wasserstein GAN with gradient penalty"),
)


def add_train_commands(commands: argparse._SubParsersAction,
                       command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``train vae|gan|cgan|wgan-gp|cyclegan`` to ``commands``; ``command(parent, name, **kwargs)``
    makes one (sub)command parser."""
    train = command(commands, "train", help="train a generative model", description="Train a model.")
    models = train.add_subparsers(title="models", metavar="MODEL", parser_class=type(train))
    vae = command(models, "vae", help="variational autoencoder", description="Train a convolutional VAE and write "
                  "DIR/model.keras, DIR/saved_model/, DIR/samples.png, DIR/history.json, DIR/run.json.")
    _add_image_arguments(vae)
    _add_run_arguments(vae, batch_size=64)
    vae.add_argument("--latent-dim", type=int, default=16)
    vae.add_argument("--filters", type=int_tuple, default=(32, 64), help="encoder widths, e.g. 32,64")
    vae.add_argument("--hidden-units", type=int, default=256)
    vae.add_argument("--likelihood", choices=("bernoulli", "gaussian"), default="bernoulli")
    vae.add_argument("--beta", type=float, default=1.0, help="weight of the KL term")
    vae.add_argument("--importance-samples", type=int, default=1,
                     help="posterior samples per image; above 1 trains on the IWAE bound instead of the ELBO")
    vae.add_argument("--pixelcnn-layers", type=int, default=0,
                     help="masked convolutions of an autoregressive likelihood head (PixelVAE); 0: none")
    vae.add_argument("--conditional", action="store_true", help="condition on class labels")
    vae.add_argument("--binarize", action="store_true", help="dynamic binarization of the pixels")
    vae.set_defaults(run=_train_vae, model_name="vae")
    for name, loss, help_text in GAN_COMMANDS:
        gan = command(models, name, help=help_text, description=f"Train a {help_text} and write DIR/model.keras, "
                      "DIR/saved_model/, DIR/samples.png, DIR/history.json and DIR/run.json.")
        _add_image_arguments(gan)
        _add_run_arguments(gan, batch_size=64)
        gan.add_argument("--latent-dim", type=int, default=64)
        gan.add_argument("--generator-filters", type=int_tuple, default=(128, 64))
        gan.add_argument("--discriminator-filters", type=int_tuple, default=(64, 128))
        gan.add_argument("--discriminator-steps", type=int, help="default: 5 for wgan-gp, else 1")
        gan.add_argument("--loss", choices=("bce", "lsgan", "hinge", "wgan-gp"), default=loss)
        gan.add_argument("--ema-decay", type=float, default=0.99, help="0 switches the average off")
        gan.add_argument("--spectral-norm", action="store_true",
                         help="spectral normalization of every kernel of the discriminator (SN-GAN)")
        if name == "cgan":
            gan.add_argument("--conditional-batch-norm", action="store_true",
                             help="a batch-normalization scale and offset per class in the generator")
        gan.set_defaults(run=_train_gan, model_name=name, conditional=name == "cgan", conditional_batch_norm=False)

    cyclegan = command(models, "cyclegan", help="unpaired image-to-image translation", description="Train a "
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
    cyclegan.add_argument("--semantic-epochs", type=int, default=40, help="epochs of that classifier")
    cyclegan.add_argument("--semantic-architecture", choices=("small", "vgg"),
                          help="that classifier's CNN: small (the default), or vgg (slower, more accurate)")
    cyclegan.add_argument("--semantic-weight", type=float, default=1.0)
    cyclegan.add_argument("--decay-epochs", type=int,
                          help="final epochs over which the learning rate falls to zero (default: half)")
    _add_run_arguments(cyclegan, batch_size=1)
    cyclegan.set_defaults(run=_train_cyclegan, model_name="cyclegan")


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
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="dtype policy (default: auto, mixed_bfloat16 only where this machine computes "
                        "bfloat16 natively and a short probe measures it faster; the choice goes into run.json)")
    parser.add_argument("--seed", type=int, help="seed for reproducible runs")
    parser.add_argument("--tensorboard", action="store_true", help="log losses and sample grids to DIR/tensorboard")
    parser.add_argument("--out", required=True, help="run directory to write")
    parser.add_argument("--resume", action="store_true", help="continue an unfinished run in DIR with the arguments "
                        "it was started with")
    parser.add_argument("--overwrite", action="store_true", help="replace the run in DIR")
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

    return TrainingOptions(args.epochs, args.batch_size, args.learning_rate, args.strategy, args.precision,
                           args.seed, args.tensorboard, verbose=1 if sys.stdout.isatty() else 2)


def _train_vae(args):
    from keras_bigml.workflows.generative import train_vae

    _print_training(args, train_vae(
        args.out, _images(args), _options(args), latent_dim=args.latent_dim, filters=args.filters,
        hidden_units=args.hidden_units, likelihood=args.likelihood, beta=args.beta,
        importance_samples=args.importance_samples, pixelcnn_layers=args.pixelcnn_layers,
        conditional=args.conditional, num_classes=args.num_classes, binarize=args.binarize,
        resume=args.resume, overwrite=args.overwrite))


def _train_gan(args):
    from keras_bigml.workflows.generative import train_gan

    _print_training(args, train_gan(
        args.out, _images(args), _options(args), loss=args.loss, conditional=args.conditional,
        num_classes=args.num_classes, conditional_batch_norm=args.conditional_batch_norm,
        spectral_norm=args.spectral_norm, latent_dim=args.latent_dim,
        generator_filters=args.generator_filters, discriminator_filters=args.discriminator_filters,
        discriminator_steps=args.discriminator_steps, ema_decay=args.ema_decay, resume=args.resume,
        overwrite=args.overwrite))


def _train_cyclegan(args):
    from keras_bigml.workflows.generative import train_cyclegan

    _print_training(args, train_cyclegan(
        args.out, _images(args, "a"), _images(args, "b"), _options(args), jitter=args.jitter,
        generator=args.generator, generator_filters=args.generator_filters,
        discriminator_filters=args.discriminator_filters, residual_blocks=args.residual_blocks,
        discriminator_layers=args.discriminator_layers, loss=args.loss, cycle_weight=args.cycle_weight,
        identity_weight=args.identity_weight, pool_size=args.pool_size,
        semantic_classifier=args.semantic_classifier, semantic_labels=args.semantic_labels,
        semantic_epochs=args.semantic_epochs, semantic_architecture=args.semantic_architecture,
        semantic_weight=args.semantic_weight,
        decay_epochs=args.decay_epochs, allow_unsafe=args.allow_unsafe, resume=args.resume,
        overwrite=args.overwrite))


def _print_training(args, result):
    print(f"Trained {args.model_name} for {result.epochs} epochs. Wrote:")
    print_paths(result.paths)


def add_run_dir(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The run directory a command reads, and the opt-in for ``.keras`` files with Python code."""
    parser.add_argument("run_dir", metavar="DIR", help=help_text)
    parser.add_argument("--allow-unsafe-deserialization", dest="allow_unsafe", action="store_true",
                        help="load .keras files whose layers run Python code (Lambda); only files you trust")
    parser.set_defaults(tensorflow=True)


def print_paths(paths: Mapping[str, object]) -> None:
    for name, path in paths.items():
        print(f"  {name:18s} {path}")


def int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
