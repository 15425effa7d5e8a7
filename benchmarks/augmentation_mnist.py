"""Generated digits as extra training data when labels are scarce (MNIST subset).

Usage:  python benchmarks/augmentation_mnist.py [--per-class 100] [--minutes 5] [--generated 1000]
                                                [--min-confidence 0.99] [--unlabelled 0] [--seeds 0]

Takes the first ``--per-class`` labelled images of each digit from the training
split, trains a conditional GAN on them alone for ``--minutes``, and reports
the MNIST test accuracy of classifiers trained on the real images alone and on
the real plus ``--generated`` generated images per class: the small CNN of
`keras_bigml.evaluation.train_classifier` (without and with its classical
augmentation; the real-only CNN takes as many steps as the other) and a random
forest on the pixels. Generated digits that a judge CNN trained on the real
images gives less than ``--min-confidence`` for their label are dropped (0
keeps all). Each seed in ``--seeds`` trains its own GAN, judge and classifiers.

``--unlabelled N`` is the semi-supervised setting: N more training images come
without their labels; the judge labels those it reads with ``--min-confidence``
(`keras_bigml.bridges.pseudo_labels`) and the GAN learns from them too. The
classifiers still see only the labelled images and the generated ones; a CNN
trained on the labelled plus the pseudo-labelled real images is printed as the
reference of what the unlabelled images give without a generator.
"""

import argparse

import common
import keras
import numpy as np

from keras_bigml.bridges import SampleQuality, augmentation_gain, pseudo_labels
from keras_bigml.callbacks import TimeLimit
from keras_bigml.data import load_images
from keras_bigml.evaluation import train_classifier
from keras_bigml.generative import GAN


def first_per_class(labels, per_class):
    """Indices of the first ``per_class`` images of each digit."""
    return np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100, help="real labelled images per digit")
    parser.add_argument("--minutes", type=float, default=5.0, help="GAN training time")
    parser.add_argument("--generated", type=int, default=1000, help="generated images per digit")
    parser.add_argument("--cnn-epochs", type=int, default=20, help="CNN epochs over real plus generated images")
    parser.add_argument("--min-confidence", type=float, default=0.99,
                        help="drop generated digits the judge gives less than this for their label (0: keep all)")
    parser.add_argument("--judge-epochs", type=int, default=60)
    parser.add_argument("--unlabelled", type=int, default=0,
                        help="more training images without labels, pseudo-labelled by the judge for the GAN")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    args = parser.parse_args()
    print(common.machine_line(), flush=True)

    with np.load(common.require_dataset("mnist-subset.npz")) as archive:
        images, labels = archive["x_train"][..., None] / 255.0, archive["y_train"]
        chosen = first_per_class(labels, args.per_class)
        train = images[chosen], labels[chosen]
        unlabelled = np.delete(images, chosen, axis=0)[: args.unlabelled]
        hidden_labels = np.delete(labels, chosen)[: args.unlabelled]   # only to score the pseudo-labels
        test = (archive["x_test"][..., None] / 255.0, archive["y_test"])

    gains = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        judge = None
        if args.min_confidence > 0 or len(unlabelled):
            judge = train_classifier(*train, epochs=args.judge_epochs, seed=seed, augment=True)
        gan_train = train
        if len(unlabelled):
            kept, pseudo = pseudo_labels(judge, unlabelled, args.min_confidence)
            gan_train = (np.concatenate([train[0], unlabelled[kept]]), np.concatenate([train[1], pseudo]))
            print(f"seed {seed}: the judge labelled {len(kept)} of {len(unlabelled)} unlabelled images, "
                  f"{np.mean(pseudo == hidden_labels[kept]):.4f} of them correctly", flush=True)
            reference = train_classifier(*gan_train, epochs=args.cnn_epochs, seed=seed)
            accuracy = np.mean(reference.predict(test[0], batch_size=500, verbose=0).argmax(axis=1) == test[1])
            print(f"seed {seed} reference: CNN on the labelled and pseudo-labelled real images {accuracy:.4f}",
                  flush=True)
        gan = train_gan(gan_train, args.minutes, seed)
        quality = None
        if args.min_confidence > 0:
            quality = SampleQuality(method="classifier", classifier=judge, threshold=args.min_confidence)
        for name, classifier, augment in (("cnn", "cnn", False), ("cnn+augment", "cnn", True),
                                          ("random_forest", "random_forest", False)):
            watch = common.Stopwatch()
            result = augmentation_gain(train, test, gan, per_class=args.generated, classifier=classifier,
                                       epochs=args.cnn_epochs, seed=seed, quality=quality, augment=augment)
            gains.setdefault(name, []).append(100 * (result["real_and_generated"] - result["real"]))
            steps = f", real only {result['real_epochs']} epochs" if result["real_epochs"] else ""
            print(f"seed {seed} {name}: test accuracy with {result['real_images']} real images "
                  f"{result['real']:.4f}; with {result['generated_images']} generated images added "
                  f"{result['real_and_generated']:.4f} ({watch.seconds():.0f} s{steps})", flush=True)
    for name, values in gains.items():
        median, low, high = common.median_and_spread(values)
        print(f"{name}: gain {median:+.2f} points (median of {len(values)} seeds, {low:+.2f} to {high:+.2f})")


def train_gan(train, minutes, seed):
    keras.utils.set_random_seed(seed)
    gan = GAN(image_shape=(28, 28, 1), latent_dim=64, generator_filters=(64, 32),
              discriminator_filters=(32, 64), num_classes=10, ema_decay=0.99, seed=seed)
    gan.compile()
    watch = common.Stopwatch()
    data = load_images(train, labels=True, batch_size=50, seed=seed, drop_remainder=True)
    history = gan.fit(data, epochs=10_000, verbose=0, callbacks=[TimeLimit(minutes * 60)])
    print(f"seed {seed}: conditional GAN {len(history.history['g_loss'])} epochs on {len(train[0])} real images "
          f"in {watch.seconds():.0f} s", flush=True)
    return gan


if __name__ == "__main__":
    main()
