"""Train a generative model into a run directory, and use a trained run: generate, translate, evaluate.

Each function does one job end to end, checks its arguments first (one
`keras_bigml.errors.ConfigError` sentence for a bad value), writes its files
atomically and returns what it measured. The CLI, the notebooks and scripts
call these.

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> options = TrainingOptions(epochs=1, batch_size=16, seed=0, verbose=0)
>>> result = train_vae(out, ImageSource("digits", limit=32), options, latent_dim=2, filters=(8,), hidden_units=16)
>>> result.epochs, sorted(result.paths)
(1, ['history', 'model', 'report', 'run', 'samples', 'saved_model'])
>>> generate_images(out, os.path.join(out, "grid.png"), n=4).count
4
"""

import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from keras_bigml.checks import fraction, one_of, positive_int, positive_ints, positive_number
from keras_bigml.errors import ConfigError
from keras_bigml.files import atomic_path
from keras_bigml.precision import PRECISIONS

if TYPE_CHECKING:
    import keras

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
GAN_LOSSES = ("bce", "lsgan", "hinge", "wgan-gp")


@dataclass
class ImageSource:
    """Where training images come from (see `keras_bigml.data.load_images`)."""

    source: str = "digits"
    split: str = "train"
    image_size: int | None = None
    channels: int | None = None
    limit: int | None = None
    skip_bad_files: bool = False

    def check(self, name: str = "data") -> None:
        positive_int(f"{name} image_size", self.image_size, optional=True)
        positive_int(f"{name} limit", self.limit, optional=True)
        if self.channels is not None:
            one_of(f"{name} channels", self.channels, (1, 3))


@dataclass
class TrainingOptions:
    """What every training run shares: its length, optimizer step, strategy, precision, seed.

    ``precision`` is a Keras dtype policy or ``"auto"``: mixed_bfloat16 only where
    the hardware computes bfloat16 natively and a probe of a few training steps
    measured it faster, float32 otherwise (see `keras_bigml.precision.choose_precision`;
    the choice and its reason go into ``run.json``, and a resumed run keeps it).
    ``verbose`` is Keras's (``"auto"``: a progress bar; 0: silent; 2: one line per
    epoch) and, like ``tensorboard``, may differ when a run is resumed.
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float | None = None
    strategy: str = "auto"
    precision: str = "auto"
    seed: int | None = None
    tensorboard: bool = False
    verbose: int | str = "auto"

    def check(self) -> None:
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_number("learning_rate", self.learning_rate, optional=True)
        one_of("strategy", self.strategy, STRATEGIES)
        one_of("precision", self.precision, PRECISIONS)


@dataclass
class TrainingResult:
    """A finished training run: its directory, files, epochs, last epoch's metrics, model and precision."""

    run_dir: str
    paths: dict
    epochs: int
    metrics: dict = field(default_factory=dict)
    model: object = None
    precision: object = None  # the keras_bigml.precision.PrecisionChoice it trained with


def train_vae(out_dir: str | os.PathLike, data: ImageSource, options: TrainingOptions, *, latent_dim: int = 16,
              filters: Sequence[int] = (32, 64), hidden_units: int = 256, likelihood: str = "bernoulli",
              beta: float = 1.0, importance_samples: int = 1, pixelcnn_layers: int = 0,
              conditional: bool = False, num_classes: int | None = None, binarize: bool = False,
              resume: bool = False, overwrite: bool = False) -> TrainingResult:
    """Train a convolutional VAE (`keras_bigml.generative.VAE`) into ``out_dir``.

    ``importance_samples`` > 1 trains on the IWAE bound with that many posterior
    samples per image instead of the ELBO; ``pixelcnn_layers`` > 0 adds the
    autoregressive PixelCNN likelihood head of that depth."""
    positive_int("latent_dim", latent_dim)
    positive_ints("filters", filters)
    positive_int("hidden_units", hidden_units)
    positive_number("beta", beta, allow_zero=True)
    positive_int("importance_samples", importance_samples)
    settings = {"latent_dim": latent_dim, "filters": filters, "hidden_units": hidden_units,
                "likelihood": likelihood, "beta": beta, "importance_samples": importance_samples,
                "pixelcnn_layers": pixelcnn_layers, "conditional": conditional,
                "num_classes": num_classes, "binarize": binarize}
    dataset, image_shape, classes = _training_images(data, options, conditional, num_classes, binarize)

    def build():
        from keras_bigml.generative import VAE
        from keras_bigml.generative.optimizers import FusedAdam

        vae = VAE(image_shape=image_shape, latent_dim=latent_dim, filters=filters, hidden_units=hidden_units,
                  likelihood=likelihood, beta=beta, importance_samples=importance_samples,
                  pixelcnn_layers=pixelcnn_layers, num_classes=classes, seed=options.seed)
        vae.compile(optimizer=FusedAdam(options.learning_rate or 1e-3))
        return vae

    return _fit_run(build, dataset, out_dir, options, {"data": data, **settings}, resume, overwrite)


def train_gan(out_dir: str | os.PathLike, data: ImageSource, options: TrainingOptions, *, loss: str = "bce",
              conditional: bool = False, num_classes: int | None = None, conditional_batch_norm: bool = False,
              spectral_norm: bool = False, latent_dim: int = 64, generator_filters: Sequence[int] = (128, 64),
              discriminator_filters: Sequence[int] = (64, 128), discriminator_steps: int | None = None,
              ema_decay: float | None = 0.99, resume: bool = False, overwrite: bool = False) -> TrainingResult:
    """Train a DCGAN, conditional GAN or WGAN-GP (`keras_bigml.generative.GAN`) into ``out_dir``.

    ``discriminator_steps`` defaults to 5 for WGAN-GP and 1 otherwise; the
    learning rate to 1e-4 (WGAN-GP, Adam betas 0 and 0.9) or 2e-4 (Adam beta_1 0.5).
    ``ema_decay`` 0 or None switches the generator's moving average off;
    ``conditional_batch_norm`` gives a conditional generator's batch
    normalizations a scale and offset per class; ``spectral_norm`` divides
    every kernel of the discriminator by its largest singular value.
    """
    one_of("GAN loss", loss, GAN_LOSSES)
    positive_int("latent_dim", latent_dim)
    positive_ints("generator_filters", generator_filters)
    positive_ints("discriminator_filters", discriminator_filters)
    discriminator_steps = positive_int("discriminator_steps", discriminator_steps, optional=True) or (
        5 if loss == "wgan-gp" else 1)
    if ema_decay:
        fraction("ema_decay", ema_decay)
    settings = {"loss": loss, "conditional": conditional, "num_classes": num_classes,
                "conditional_batch_norm": conditional_batch_norm, "spectral_norm": spectral_norm,
                "latent_dim": latent_dim,
                "generator_filters": generator_filters, "discriminator_filters": discriminator_filters,
                "discriminator_steps": discriminator_steps, "ema_decay": ema_decay or None}
    dataset, image_shape, classes = _training_images(data, options, conditional, num_classes)
    learning_rate = options.learning_rate or (1e-4 if loss == "wgan-gp" else 2e-4)
    betas = (0.0, 0.9) if loss == "wgan-gp" else (0.5, 0.999)

    def build():
        from keras_bigml.generative import GAN
        from keras_bigml.generative.optimizers import FusedAdam

        gan = GAN(image_shape=image_shape, latent_dim=latent_dim, generator_filters=generator_filters,
                  discriminator_filters=discriminator_filters, num_classes=classes,
                  conditional_batch_norm=conditional_batch_norm, spectral_norm=spectral_norm,
                  discriminator_steps=discriminator_steps,
                  ema_decay=ema_decay or None, seed=options.seed)
        gan.compile(d_optimizer=FusedAdam(learning_rate, *betas), g_optimizer=FusedAdam(learning_rate, *betas),
                    loss=loss)
        return gan

    return _fit_run(build, dataset, out_dir, options, {"data": data, **settings}, resume, overwrite)


def train_cyclegan(out_dir: str | os.PathLike, data_a: ImageSource, data_b: ImageSource, options: TrainingOptions, *,
                   jitter: bool = False, generator: str = "resnet", generator_filters: int = 64,
                   discriminator_filters: int = 64, residual_blocks: int | None = None,
                   discriminator_layers: int = 3, loss: str = "lsgan", cycle_weight: float = 10.0,
                   identity_weight: float | None = None, pool_size: int = 50,
                   semantic_classifier: "str | os.PathLike | keras.Model | None" = None,
                   semantic_labels: bool = False, semantic_weight: float = 1.0, semantic_epochs: int = 40,
                   semantic_architecture: str | None = None, decay_epochs: int | None = None,
                   allow_unsafe: bool = False, resume: bool = False, overwrite: bool = False) -> TrainingResult:
    """Train a CycleGAN (`keras_bigml.generative.CycleGAN`) between two image sources into ``out_dir``.

    The learning rate (default 2e-4) stays constant, then falls linearly to zero
    over the last ``decay_epochs`` (default: half the epochs). ``semantic_classifier``
    is the path of a saved Keras classifier of both domains' images (CyCADA's
    semantic consistency loss). With ``semantic_labels`` the teacher is trained
    here instead, as in CyCADA: a CNN fitted for ``semantic_epochs`` on
    domain A's own labels (``data_a`` must have them; its images are held in
    memory for that), with small random turns, shifts and zooms
    (``train_classifier(augment=True, architecture=semantic_architecture)``: None for
    its default "small" CNN, or the slower, more accurate "vgg"), then frozen and
    saved with the model.
    """
    from keras_bigml.data import load_images, pair_unpaired, random_jitter
    from keras_bigml.evaluation.generative import CLASSIFIER_ARCHITECTURES

    options.check()
    data_a.check("data_a")
    data_b.check("data_b")
    positive_int("generator_filters", generator_filters)
    positive_int("discriminator_filters", discriminator_filters)
    positive_int("residual_blocks", residual_blocks, optional=True)
    positive_int("discriminator_layers", discriminator_layers)
    positive_number("cycle_weight", cycle_weight, allow_zero=True)
    positive_number("identity_weight", identity_weight, allow_zero=True, optional=True)
    positive_int("pool_size", pool_size, minimum=0)
    positive_number("semantic_weight", semantic_weight, allow_zero=True)
    positive_int("decay_epochs", decay_epochs, minimum=0, optional=True)
    positive_int("semantic_epochs", semantic_epochs)
    if semantic_architecture is not None:
        one_of("semantic_architecture", semantic_architecture, CLASSIFIER_ARCHITECTURES)
        if not semantic_labels:
            raise ConfigError("semantic_architecture is the CNN that semantic_labels trains: add semantic_labels "
                              "(--semantic-labels), or leave the architecture out.")
    if semantic_labels and semantic_classifier:
        raise ConfigError("Pass either semantic_classifier (a saved teacher) or semantic_labels (train one on "
                          "domain A's labels), not both.")
    if decay_epochs is not None and decay_epochs > options.epochs:
        raise ConfigError(f"decay_epochs ({decay_epochs}) cannot exceed epochs ({options.epochs}).")
    settings = {"data_a": data_a, "data_b": data_b, "jitter": jitter, "generator": generator,
                "generator_filters": generator_filters, "discriminator_filters": discriminator_filters,
                "residual_blocks": residual_blocks, "discriminator_layers": discriminator_layers, "loss": loss,
                "cycle_weight": cycle_weight, "identity_weight": identity_weight, "pool_size": pool_size,
                "semantic_classifier": semantic_classifier and os.path.abspath(semantic_classifier),
                "semantic_labels": semantic_labels, "semantic_epochs": semantic_epochs,
                "semantic_architecture": semantic_architecture, "semantic_weight": semantic_weight,
                "decay_epochs": decay_epochs}
    first = load_images(data_a.source, split=data_a.split, image_size=data_a.image_size, channels=data_a.channels,
                        batch_size=None, limit=data_a.limit, seed=options.seed,
                        skip_bad_files=data_a.skip_bad_files)
    size = data_a.image_size or tuple(first.element_spec.shape[:2])
    second = load_images(data_b.source, split=data_b.split, image_size=size, channels=data_b.channels,
                         batch_size=None, limit=data_b.limit,
                         seed=None if options.seed is None else options.seed + 1,
                         skip_bad_files=data_b.skip_bad_files)
    if jitter:
        first, second = random_jitter(first, seed=options.seed), random_jitter(second, seed=options.seed)
    dataset = pair_unpaired(first, second, batch_size=options.batch_size)
    steps_per_epoch = int(dataset.cardinality())
    total = options.epochs * steps_per_epoch
    decay = total // 2 if decay_epochs is None else decay_epochs * steps_per_epoch
    teacher = None
    if semantic_labels:
        teacher = _domain_classifier(data_a, size, semantic_epochs, semantic_architecture, options.seed)

    def build():
        from keras_bigml.generative import CycleGAN
        from keras_bigml.generative.schedules import LinearDecay
        from keras_bigml.runs import load_keras_file

        classifier = teacher or (semantic_classifier and load_keras_file(semantic_classifier, allow_unsafe,
                                                                         "classifier"))
        model = CycleGAN(
            tuple(first.element_spec.shape), tuple(second.element_spec.shape), generator=generator,
            generator_filters=generator_filters, discriminator_filters=discriminator_filters,
            residual_blocks=residual_blocks, discriminator_layers=discriminator_layers,
            cycle_weight=cycle_weight, identity_weight=identity_weight, pool_size=pool_size,
            semantic_classifier=classifier or None, semantic_weight=semantic_weight, seed=options.seed,
        )
        model.compile(loss=loss, learning_rate=LinearDecay(options.learning_rate or 2e-4, total - decay,
                                                           max(decay, 1)))
        return model

    return _fit_run(build, dataset, out_dir, options, settings, resume, overwrite)


@dataclass
class GenerationResult:
    """Images sampled from a run: how many, and the grid file."""

    count: int
    path: str


def generate_images(run_dir: str | os.PathLike, out: str | os.PathLike, *, n: int = 64,
                    labels: Sequence[int] | None = None, seed: int = 0, format: str = "grid",
                    batch_size: int = 256, overwrite: bool = False,
                    allow_unsafe: bool = False) -> GenerationResult:
    """Sample ``n`` images from a trained GAN or VAE run.

    ``format="grid"`` saves them as one grid PNG at ``out``. ``format="shards"``
    writes them batch by batch as a shard directory at ``out`` (see
    `keras_bigml.data.ShardWriter`; memory does not grow with ``n``), with the
    labels of a conditional model, so that ``load_images(out, labels=True)``
    reads them back, e.g. to augment a training set. Labels cycle through the
    classes, or repeat ``labels`` when given; latent vectors are drawn batch by
    batch from generators seeded with ``seed``.

    Examples
    --------
    >>> import tempfile
    >>> from keras_bigml.data.shards import read_manifest
    >>> from keras_bigml.generative import GAN
    >>> work = tempfile.mkdtemp()
    >>> GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
    ...     num_classes=10).save(work + "/gan.keras")  # an untrained run is enough to show the format
    >>> result = generate_images(work + "/gan.keras", work + "/samples", n=100, format="shards", batch_size=64)
    >>> manifest = read_manifest(result.path)
    >>> manifest["splits"]["train"]["records"], manifest["labels"]
    (100, True)
    """
    from keras_bigml.generative.base import LatentGenerativeModel
    from keras_bigml.generative.sampling import latent_vectors, sample_labels
    from keras_bigml.plotting import save_image_grid

    positive_int("n", n)
    positive_int("batch_size", batch_size)
    one_of("format", format, ("grid", "shards"))
    model = _load(run_dir, allow_unsafe)
    if not isinstance(model, LatentGenerativeModel):
        raise ConfigError(f"{run_dir} holds a {model.kind} model, which translates images instead of sampling "
                          "them: use 'keras-bigml translate'.")
    all_labels = sample_labels(n, labels, model.num_classes)
    if format == "grid":
        save_image_grid(model.generate(z=latent_vectors(n, model.latent_dim, seed), labels=all_labels), out)
        return GenerationResult(n, os.fspath(out))
    from keras_bigml.data.shards import ShardWriter

    seeds = np.random.SeedSequence(seed).spawn(-(-n // batch_size))
    with ShardWriter(out, model.image_shape, source=f"generated by {os.fspath(run_dir)}",
                     overwrite=overwrite) as writer:
        for start, batch_seed in zip(range(0, n, batch_size), seeds, strict=True):
            count = min(batch_size, n - start)
            batch_labels = None if all_labels is None else all_labels[start:start + count]
            z = latent_vectors(count, model.latent_dim, batch_seed)
            writer.write(model.generate(z=z, labels=batch_labels), labels=batch_labels)
    return GenerationResult(n, os.fspath(out))


@dataclass
class TranslationResult:
    """Images translated by a CycleGAN run: how many, the direction, and where they went."""

    count: int
    direction: str
    out_dir: str
    grid: str


def translate_images(run_dir: str | os.PathLike, source: str, out_dir: str | os.PathLike, *,
                     direction: str = "a2b", split: str = "test", limit: int | None = None,
                     batch_size: int = 256, format: str = "png", overwrite: bool = False,
                     allow_unsafe: bool = False) -> TranslationResult:
    """Translate the images of ``source`` with a CycleGAN run, batch by batch.

    ``format="png"``: ``out_dir/00000.png, ...`` hold the translations and
    ``out_dir/grid.png`` shows up to 32 inputs beside their translations.
    ``format="shards"``: ``out_dir`` is a shard directory of the translations
    in input order (`keras_bigml.data.ShardWriter`), and the grid is written
    beside it as ``out_dir-grid.png``. Memory does not grow with the number of
    images either way.
    """
    from keras_bigml.data import load_images
    from keras_bigml.generative.base import TranslationModel
    from keras_bigml.plotting import save_image_grid

    positive_int("limit", limit, optional=True)
    positive_int("batch_size", batch_size)
    one_of("format", format, ("png", "shards"))
    model = _load(run_dir, allow_unsafe)
    if not isinstance(model, TranslationModel):
        raise ConfigError(f"{run_dir} holds a {model.kind} model, not a translation model (CycleGAN): "
                          "nothing to translate.")
    shape = model.input_shape_of(direction)
    dataset = load_images(source, split=split, image_size=shape[:2], channels=shape[2], batch_size=batch_size,
                          shuffle=False, limit=limit)
    out_dir = os.fspath(out_dir)
    with _translation_sink(model, direction, out_dir, format, overwrite, f"{run_dir} {direction}") as write:
        count, shown = 0, ([], [])
        for batch in dataset.as_numpy_iterator():
            translated = model.translate(batch, direction)
            write(translated, count)
            count += len(translated)
            room = 32 - len(shown[0])
            shown[0].extend(batch[:room])
            shown[1].extend(translated[:room])
    inputs, outputs = np.stack(shown[0]), np.stack(shown[1])
    side_by_side = np.stack([_as_rgb(inputs, outputs), _as_rgb(outputs, inputs)], axis=1)
    grid = os.path.join(out_dir, "grid.png") if format == "png" else out_dir.rstrip(os.sep) + "-grid.png"
    save_image_grid(side_by_side.reshape(-1, *side_by_side.shape[2:]), grid, ncols=8)
    return TranslationResult(count, direction, out_dir, grid)


@contextlib.contextmanager
def _translation_sink(model, direction, out_dir, format, overwrite, source):
    """``write(images, first_index)`` into PNG files or a `ShardWriter`, for the ``with`` block."""
    from keras_bigml.plotting import save_image_grid

    if format == "png":
        os.makedirs(out_dir, exist_ok=True)

        def write_files(images, first):
            for offset, image in enumerate(images):
                save_image_grid(image[None], os.path.join(out_dir, f"{first + offset:05d}.png"), ncols=1, scale=1)

        yield write_files
        return
    from keras_bigml.data.shards import ShardWriter

    output_shape = model.input_shape_of("b2a" if direction == "a2b" else "a2b")
    with ShardWriter(out_dir, output_shape, source=f"translated by {source}", overwrite=overwrite) as writer:
        yield lambda images, first: writer.write(images)


@dataclass
class EvaluationResult:
    """Generator metrics of a run, and the ``metrics.json`` they were written to."""

    metrics: dict
    path: str


def evaluate_run(run_dir: str | os.PathLike, source: str, *, n: int = 10_000, limit: int | None = None,
                 classifier: "str | os.PathLike | keras.Model | None" = None,
                 inception_weights: str | None = None, classifier_epochs: int = 3, seed: int = 0,
                 allow_unsafe: bool = False) -> EvaluationResult:
    """Judge a GAN or VAE run against real images; write ``metrics.json`` into the run.

    Frechet and kernel distances on a classifier's features (real train versus
    test beside them), classifier score, label agreement for conditional models,
    and the model's own test metrics (the negative ELBO for VAEs). The classifier
    is trained on ``source``'s training split unless a saved one (``classifier``,
    a ``.keras`` path or a model) or Inception-v3 weights (``inception_weights``)
    are given. The real images and the ``n`` generated ones stream through the
    classifier a batch at a time (`keras_bigml.evaluation.generative.StreamSummary`);
    only training a classifier holds the training split in memory.

    The metrics also name their features and sample counts (``features``,
    ``generated_samples``, ``real_samples``), and ``fid_comparable`` and
    ``fid_note`` say whether the Frechet distance is comparable with published
    FIDs: only on Inception-v3's 2,048-d pool features with at least 10,000
    generated and real images (`keras_bigml.evaluation.generative.fid_comparability`).
    """
    import keras

    from keras_bigml.data import load_images
    from keras_bigml.evaluation.generative import (
        feature_description,
        feature_dimension,
        generator_report,
        inception_classifier,
        train_classifier,
    )
    from keras_bigml.generative.base import LatentGenerativeModel
    from keras_bigml.runs import load_keras_file

    positive_int("n", n)
    positive_int("limit", limit, optional=True)
    positive_int("classifier_epochs", classifier_epochs)
    model = _load(run_dir, allow_unsafe)
    if not isinstance(model, LatentGenerativeModel):
        raise ConfigError(f"{run_dir} holds a {model.kind} model; evaluate judges models that sample images "
                          "(GANs and VAEs).")
    shape = model.image_shape
    splits = {split: load_images(source, split=split, image_size=shape[:2], channels=shape[2], batch_size=500,
                                 shuffle=False, limit=limit) for split in ("train", "test")}
    if inception_weights:
        judge = inception_classifier(inception_weights, shape)
        features = feature_description(judge)
    elif isinstance(classifier, keras.Model):
        judge = classifier
        features = f"given classifier {judge.name}, {feature_dimension(judge)}-d"
    elif classifier:
        judge = load_keras_file(classifier, allow_unsafe, "classifier")
        features = f"saved classifier {os.path.basename(os.fspath(classifier))}, {feature_dimension(judge)}-d"
    else:  # only training a judge holds the training split in memory
        labelled = load_images(source, split="train", image_size=shape[:2], channels=shape[2], labels=True,
                               batch_size=1000, shuffle=False, limit=limit)
        batches = list(labelled.as_numpy_iterator())
        judge = train_classifier(np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]),
                                 epochs=classifier_epochs, seed=seed)
        features = f"trained classifier's penultimate layer, {feature_dimension(judge)}-d"
    # The real splits stream through the judge a batch at a time, as the generated images do.
    metrics = generator_report(model, judge, splits["train"], splits["test"], n, seed, features=features)
    test = load_images(source, split="test", image_size=shape[:2], channels=shape[2],
                       labels=bool(model.num_classes), shuffle=False, limit=limit)
    metrics.update(model.test_metrics(test))
    path = os.path.join(run_dir if os.path.isdir(run_dir) else os.path.dirname(run_dir), "metrics.json")
    with atomic_path(path) as tmp, open(tmp, "w") as file:
        json.dump(metrics, file, indent=1)
    if os.path.isdir(run_dir):
        from keras_bigml.reports import write_report

        write_report(run_dir)
    return EvaluationResult(metrics, path)


def _training_images(data: ImageSource, options: TrainingOptions, conditional, num_classes, binarize=False):
    """The training dataset, its image shape and (conditional models) the checked class count."""
    from keras_bigml.data import load_images
    from keras_bigml.data.images import count_classes

    options.check()
    data.check()
    positive_int("num_classes", num_classes, minimum=2, optional=True)
    if num_classes is not None and not conditional:
        raise ConfigError("num_classes is for conditional models: add --conditional (or train cgan).")
    dataset = load_images(data.source, split=data.split, image_size=data.image_size, channels=data.channels,
                          labels=conditional, batch_size=options.batch_size, seed=options.seed,
                          binarize=binarize, limit=data.limit, skip_bad_files=data.skip_bad_files)
    spec = dataset.element_spec
    image_shape = tuple((spec[0] if isinstance(spec, tuple) else spec).shape[1:])
    if not conditional:
        return dataset, image_shape, None
    return dataset, image_shape, count_classes(dataset, num_classes)


def _domain_classifier(data: ImageSource, image_size, epochs, architecture, seed):
    """A CNN trained on one domain's labelled images (CyCADA's teacher), frozen."""
    from keras_bigml.data import load_images
    from keras_bigml.data.images import count_classes
    from keras_bigml.evaluation.generative import train_classifier

    labelled = load_images(data.source, split=data.split, image_size=image_size, channels=data.channels,
                           labels=True, batch_size=1000, shuffle=False, limit=data.limit,
                           skip_bad_files=data.skip_bad_files)
    batches = list(labelled.as_numpy_iterator())
    images, labels = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    classifier = train_classifier(images, labels, num_classes=count_classes(labels), epochs=epochs,
                                  seed=0 if seed is None else seed, augment=True,
                                  architecture=architecture or "small")
    classifier.trainable = False
    return classifier


def _fit_run(build, dataset, out_dir, options: TrainingOptions, settings, resume, overwrite):
    """Choose the precision, build and compile the model inside the chosen strategy, fit it, write the run."""
    import keras

    from keras_bigml.distribute import get_strategy
    from keras_bigml.precision import dtype_policy
    from keras_bigml.runs import fit_and_save

    strategy = get_strategy(options.strategy)

    def build_in_scope():
        with strategy.scope():
            return build()

    choice = _precision(build_in_scope, dataset, out_dir, options, resume)
    with dtype_policy(choice.policy):
        if options.seed is not None:
            keras.utils.set_random_seed(options.seed)  # after the probe, so probing changes no result
        model = build_in_scope()
        callbacks = []
        if options.tensorboard:
            from keras_bigml.callbacks import tensorboard_callbacks

            callbacks = tensorboard_callbacks(os.path.join(out_dir, "tensorboard"), dataset, model)
        # Output settings do not change what a run computes, so a resume may change them.
        arguments = {**_plain(settings), **dataclasses.asdict(options)}
        for name in ("verbose", "tensorboard"):
            arguments.pop(name)
        paths = fit_and_save(model, dataset, out_dir, options.epochs, verbose=options.verbose,
                             callbacks=callbacks, resume=resume, overwrite=overwrite, arguments=arguments,
                             seed=options.seed, record={"precision": choice.to_dict()})
    with open(paths["history"]) as file:
        history = json.load(file)
    return TrainingResult(os.fspath(out_dir), paths, options.epochs,
                          {name: values[-1] for name, values in history.items() if values}, model, choice)


def _precision(build, dataset, out_dir, options, resume):
    """The run's dtype policy: the one recorded when a resumed run started, else `choose_precision`'s."""
    from keras_bigml.precision import PrecisionChoice, choose_precision, fit_probe
    from keras_bigml.runs import RunDirectory

    recorded = (RunDirectory(out_dir).info or {}).get("precision") if resume else None
    if recorded:
        return PrecisionChoice(recorded["policy"], recorded["reason"], recorded.get("measured", {}))
    probe = fit_probe(build, dataset.element_spec, options.batch_size)
    return choose_precision(options.precision, probe)


def _load(run_dir, allow_unsafe):
    from keras_bigml.generative.base import GenerativeModel
    from keras_bigml.runs import load_run_model

    model = load_run_model(run_dir, allow_unsafe=allow_unsafe)
    if not isinstance(model, GenerativeModel):
        raise ConfigError(f"{run_dir} holds a {type(model).__name__}, not a keras_bigml generative model.")
    return model


def _plain(settings):
    return {key: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
            for key, value in settings.items()}


def _as_rgb(images, other):
    """``images`` with three channels when ``other`` has three, so the two fit one grid."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 and other.shape[-1] == 3 else images
