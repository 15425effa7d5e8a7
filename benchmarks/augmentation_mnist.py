"""Generated digits as extra training data when labels are scarce (MNIST subset).

Usage:  python benchmarks/augmentation_mnist.py [--per-class 100] [--minutes 5] [--generated 1000]

Takes the first ``--per-class`` labelled images of each digit from the training
split, trains a conditional GAN on them alone for ``--minutes``, and reports
the MNIST test accuracy of classifiers trained on the real images alone and on
the real plus ``--generated`` generated images per class: the small CNN of
`keras_bigml.evaluation.train_classifier` and a random forest on the pixels.
"""

import argparse

import common
import keras
import numpy as np

from keras_bigml.bridges import augmentation_gain
from keras_bigml.callbacks import TimeLimit
from keras_bigml.data import load_images
from keras_bigml.generative import GAN


def first_per_class(images, labels, per_class):
    chosen = np.concatenate([np.flatnonzero(labels == digit)[:per_class] for digit in range(10)])
    return images[chosen], labels[chosen]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=100, help="real labelled images per digit")
    parser.add_argument("--minutes", type=float, default=5.0, help="GAN training time")
    parser.add_argument("--generated", type=int, default=1000, help="generated images per digit")
    parser.add_argument("--cnn-epochs", type=int, default=20)
    args = parser.parse_args()
    print(common.machine_line(), flush=True)

    with np.load(common.require_dataset("mnist-subset.npz")) as archive:
        train = first_per_class(archive["x_train"][..., None] / 255.0, archive["y_train"], args.per_class)
        test = (archive["x_test"][..., None] / 255.0, archive["y_test"])

    keras.utils.set_random_seed(0)
    gan = GAN(image_shape=(28, 28, 1), latent_dim=64, generator_filters=(64, 32),
              discriminator_filters=(32, 64), num_classes=10, ema_decay=0.99, seed=0)
    gan.compile()
    watch = common.Stopwatch()
    data = load_images(train, labels=True, batch_size=50, seed=0, drop_remainder=True)
    history = gan.fit(data, epochs=10_000, verbose=0, callbacks=[TimeLimit(args.minutes * 60)])
    print(f"conditional GAN: {len(history.history['g_loss'])} epochs on {len(train[0])} real images "
          f"in {watch.seconds():.0f} s")

    for classifier, epochs in (("cnn", args.cnn_epochs), ("random_forest", 0)):
        watch = common.Stopwatch()
        result = augmentation_gain(train, test, gan, per_class=args.generated, classifier=classifier,
                                   epochs=epochs, seed=0)
        print(f"{classifier}: test accuracy with {result['real_images']} real images {result['real']:.4f}; "
              f"with {result['generated_images']} generated images added {result['real_and_generated']:.4f} "
              f"({watch.seconds():.0f} s)")


if __name__ == "__main__":
    main()
