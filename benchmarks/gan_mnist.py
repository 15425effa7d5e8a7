"""GAN on the MNIST subset, judged by a digit classifier trained on the training split.

Usage:  python benchmarks/gan_mnist.py [--model cgan|gan|wgan-gp] [--loss bce|lsgan|hinge|wgan-gp]
                                      [--minutes 20] [--epochs N]
        python benchmarks/gan_mnist.py --run runs/cgan    # judge a run of `keras-bigml train`

With ``--run`` nothing is trained: the run's ``model.keras`` (made with, say,
``keras-bigml train cgan --data mnist-subset.npz --epochs 20 --out runs/cgan``)
is judged the same way, so the CLI's defaults are measured as a user gets them.

Prints the Frechet distance on the classifier's penultimate features (with real
test versus real train beside it for scale), the kernel distance, the classifier
score, and for the conditional GAN the share of samples classified as the
requested label; wall time and training images per second. Each line names its
features and sample counts: these Frechet distances are not published FIDs
(those are on Inception-v3's 2,048-d pool features).
"""

import argparse
import json
import os

import common
import keras
import numpy as np

from keras_bigml.callbacks import TimeLimit
from keras_bigml.data import load_images
from keras_bigml.evaluation import (
    classifier_outputs,
    classifier_score,
    frechet_distance,
    kernel_distance,
    label_agreement,
    train_classifier,
)
from keras_bigml.evaluation.generative import feature_dimension, fid_comparability
from keras_bigml.generative import GAN
from keras_bigml.generative.losses import GAN_LOSSES
from keras_bigml.generative.sampling import latent_vectors
from keras_bigml.plotting import save_image_grid
from keras_bigml.runs import RunDirectory, load_run_model

LOSSES = {"gan": "bce", "cgan": "bce", "wgan-gp": "wgan-gp"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(LOSSES), default="cgan")
    parser.add_argument("--loss", choices=GAN_LOSSES, help="adversarial loss (default: bce, wgan-gp for wgan-gp)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    parser.add_argument("--epochs", type=int, default=1000, help="at most this many epochs, within --minutes")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--generator-filters", default="64,32")
    parser.add_argument("--discriminator-filters", default="32,64")
    parser.add_argument("--run", help="judge this run directory's GAN instead of training one")
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--grid", default=os.path.join(common.REPO_ROOT, "saved_models", "benchmarks"))
    args = parser.parse_args()
    print(common.machine_line(), flush=True)

    path = common.require_dataset("mnist-subset.npz")
    with np.load(path) as archive:
        x_train, y_train = archive["x_train"][..., None] / 255.0, archive["y_train"]
        x_test, y_test = archive["x_test"][..., None] / 255.0, archive["y_test"]

    watch = common.Stopwatch()
    classifier = train_classifier(x_train, y_train, epochs=3)
    test_features, test_probabilities = classifier_outputs(classifier, x_test)
    accuracy = float(np.mean(test_probabilities.argmax(1) == y_test))
    print(f"classifier: test accuracy {accuracy:.4f} ({watch.seconds():.0f} s)")

    gan = judged_run(args.run) if args.run else trained_gan(args, path, len(x_train))
    conditional = bool(gan.num_classes)

    requested = np.arange(args.samples) % 10
    samples = np.concatenate([
        gan.generate(labels=requested[i:i + 1000] if conditional else None,
                     z=latent_vectors(min(1000, args.samples - i), gan.latent_dim, seed=i))
        for i in range(0, args.samples, 1000)
    ])
    fake_features, fake_probabilities = classifier_outputs(classifier, samples)
    train_features, train_probabilities = classifier_outputs(classifier, x_train[: args.samples])
    os.makedirs(args.grid, exist_ok=True)
    name = os.path.basename(os.path.normpath(args.run)) if args.run else args.model
    grid = save_image_grid(samples[:100], os.path.join(args.grid, f"{name}_mnist.png"), ncols=10)

    real_fd = frechet_distance(train_features, test_features)
    fake_fd = frechet_distance(fake_features, test_features)
    features = f"trained classifier's penultimate layer, {feature_dimension(classifier)}-d"
    counts = f"{len(samples):,} generated, {len(train_features):,} real train, {len(test_features):,} real test"
    kid_size = min(1000, len(fake_features), len(test_features), len(train_features))
    print(f"metrics on {features}; {counts} images")
    print(f"Frechet distance: generated vs test {fake_fd:.3f}; real train vs test {real_fd:.3f}; "
          f"ratio {fake_fd / real_fd:.2f}")
    print(f"  {fid_comparability(features, len(samples), len(test_features))[1]}")
    print(f"kernel distance (10 subsets of {kid_size:,} a side): generated vs test "
          f"{kernel_distance(fake_features, test_features):.5f}; "
          f"real train vs test {kernel_distance(train_features, test_features):.5f}")
    print(f"classifier score: generated {classifier_score(fake_probabilities):.3f}; "
          f"real test {classifier_score(test_probabilities):.3f}")
    if conditional:
        print(f"label agreement: {label_agreement(fake_probabilities, requested):.4f}")
    print(f"sample grid: {grid}")


def trained_gan(args, path, train_size):
    """Train the GAN ``args`` describe within ``--minutes``; print its epochs and speed."""
    conditional = args.model == "cgan"
    loss = args.loss or LOSSES[args.model]
    keras.utils.set_random_seed(0)
    gan = GAN(
        image_shape=(28, 28, 1), latent_dim=args.latent_dim,
        generator_filters=tuple(int(f) for f in args.generator_filters.split(",")),
        discriminator_filters=tuple(int(f) for f in args.discriminator_filters.split(",")),
        num_classes=10 if conditional else None,
        discriminator_steps=5 if loss == "wgan-gp" else 1, seed=0,
    )
    gan.compile(loss=loss)
    data = load_images(path, labels=conditional, batch_size=args.batch_size, seed=0, drop_remainder=True)
    watch = common.Stopwatch()
    history = gan.fit(data, epochs=args.epochs, verbose=2, callbacks=[TimeLimit(args.minutes * 60)])
    seconds = watch.seconds()
    epochs = len(history.history["d_loss"])
    images_seen = epochs * (train_size // args.batch_size) * args.batch_size
    print(f"model: {args.model}, loss: {loss}, epochs: {epochs}, train wall time: {seconds:.0f} s, "
          f"{images_seen / seconds:.0f} images/s")
    return gan


def judged_run(run_dir):
    """The GAN of a `keras-bigml train` run directory; print how the run was made."""
    info = RunDirectory(run_dir).info
    if info is None or info["status"] != "finished" or info["kind"] != "gan":
        raise SystemExit(f"{run_dir} holds no finished GAN run (run.json: {info and info['status']}).")
    with open(os.path.join(run_dir, "history.json")) as file:
        epochs = len(json.load(file)["d_loss"])
    print(f"run: {run_dir}, {epochs} epochs, command: {' '.join(info['command'])}; "
          f"arguments {info['arguments']}; precision {info.get('precision')}; seed {info['seed']}")
    return load_run_model(run_dir)


if __name__ == "__main__":
    main()
