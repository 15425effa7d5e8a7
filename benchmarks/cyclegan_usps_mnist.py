"""CycleGAN between USPS and MNIST digits, judged by an MNIST digit classifier.

Usage:  python benchmarks/cyclegan_usps_mnist.py [--minutes 30] [--epochs 4] [--usps-input framed|resized]

Domain A is USPS, domain B MNIST (28x28). USPS digits (16x16, filling the frame)
become 28x28 either ``resized`` (simply scaled up) or ``framed`` (the default:
`keras_bigml.data.frame_digits`, the way MNIST itself was made: ink box scaled
into 20x20 keeping its aspect, centre of mass at the centre of 28x28). A CNN
trained on MNIST's training split (its MNIST test accuracy is printed)
classifies the USPS test digits resized, framed, and translated to MNIST style
by the CycleGAN (from the chosen input); all three accuracies are printed, with
the cycle-reconstruction error (mean absolute difference in [0, 1] after
A->B->A and B->A->B on the test sets) and wall time. The learning rate stays
constant for the first half of the epochs and decays linearly to zero over the
second half; ``--minutes`` stops training early if the epochs do not fit.
``--semantic-weight`` adds CyCADA's semantic consistency loss. Its teacher is
by default a second MNIST classifier (another seed), so the classifier that
judges the translations is not the one they were trained to please; with
``--semantic-labels`` it is, as in CyCADA and `keras-bigml train cyclegan
--semantic-labels`, a classifier trained on USPS's own training labels (the
USPS input the CycleGAN sees), whose USPS test accuracy is printed.
"""

import argparse
import os

import common
import keras
import numpy as np
import tensorflow as tf

from keras_bigml.callbacks import TimeLimit
from keras_bigml.data import frame_digits, load_images, pair_unpaired
from keras_bigml.evaluation import train_classifier
from keras_bigml.evaluation.generative import CLASSIFIER_ARCHITECTURES
from keras_bigml.generative import CycleGAN
from keras_bigml.generative.schedules import LinearDecay
from keras_bigml.plotting import save_image_grid


def load_domains():
    usps = np.load(common.require_dataset("usps.npz"))
    mnist = np.load(common.require_dataset("mnist-subset.npz"))
    return {
        "usps_train": usps["x_train"][..., None] / 255.0, "usps_test": usps["x_test"][..., None] / 255.0,
        "usps_train_labels": usps["y_train"], "usps_test_labels": usps["y_test"],
        "mnist_train": mnist["x_train"][..., None] / 255.0, "mnist_train_labels": mnist["y_train"],
        "mnist_test": mnist["x_test"][..., None] / 255.0, "mnist_test_labels": mnist["y_test"],
    }


def resized(images):
    return tf.image.resize(images, (28, 28), antialias=True).numpy()


def accuracy(classifier, images, labels):
    predictions = classifier.predict(images.astype("float32"), batch_size=500, verbose=0).argmax(axis=1)
    return float(np.mean(predictions == labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time cap")
    parser.add_argument("--epochs", type=int, default=4, help="epochs over the MNIST side")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classifier-epochs", type=int, default=10)
    parser.add_argument("--generator-filters", type=int, default=16)
    parser.add_argument("--discriminator-filters", type=int, default=16)
    parser.add_argument("--residual-blocks", type=int, default=3)
    parser.add_argument("--discriminator-layers", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--cycle-weight", type=float, default=10.0)
    parser.add_argument("--identity-weight", type=float, default=0.5, help="multiple of the cycle weight")
    parser.add_argument("--seed", type=int, default=0, help="seeds the CycleGAN, its data order and the teacher")
    parser.add_argument("--semantic-weight", type=float,
                        help="CyCADA semantic consistency weight (default 0, the paper's CycleGAN; 1 with "
                             "--semantic-labels, the CLI's default)")
    parser.add_argument("--semantic-labels", action="store_true",
                        help="train the semantic teacher on USPS's training labels instead of on MNIST")
    parser.add_argument("--semantic-epochs", type=int, default=40,
                        help="epochs of the USPS teacher (the CLI's --semantic-epochs default)")
    parser.add_argument("--semantic-architecture", choices=CLASSIFIER_ARCHITECTURES, default="small",
                        help="the USPS teacher's CNN (train_classifier's architecture)")
    parser.add_argument("--usps-input", choices=("framed", "resized"), default="framed",
                        help="how USPS digits become 28x28 for the CycleGAN")
    parser.add_argument("--grid", default=os.path.join(common.REPO_ROOT, "saved_models", "benchmarks"))
    args = parser.parse_args()
    if args.semantic_weight is None:
        args.semantic_weight = 1.0 if args.semantic_labels else 0.0
    print(common.machine_line(), flush=True)

    data = load_domains()
    watch = common.Stopwatch()
    classifier = train_classifier(data["mnist_train"], data["mnist_train_labels"], epochs=args.classifier_epochs)
    print(f"MNIST classifier trained in {watch.seconds():.0f} s: MNIST test accuracy "
          f"{accuracy(classifier, data['mnist_test'], data['mnist_test_labels']):.4f}")
    labels = data["usps_test_labels"]
    preparations = {"resized": resized, "framed": frame_digits}
    test_inputs = {name: prepare(data["usps_test"]) for name, prepare in preparations.items()}
    baselines = {name: accuracy(classifier, images, labels) for name, images in test_inputs.items()}
    usps_train, usps_test = preparations[args.usps_input](data["usps_train"]), test_inputs[args.usps_input]

    semantic_classifier = None
    if args.semantic_weight and args.semantic_labels:
        watch = common.Stopwatch()
        semantic_classifier = train_classifier(usps_train, data["usps_train_labels"], epochs=args.semantic_epochs,
                                               augment=True, seed=args.seed, architecture=args.semantic_architecture)
        print(f"semantic teacher ({args.semantic_architecture} CNN) trained on USPS labels "
              f"({args.semantic_epochs} epochs) in {watch.seconds():.0f} s: "
              f"USPS test accuracy {accuracy(semantic_classifier, usps_test, labels):.4f}")
    elif args.semantic_weight:
        watch = common.Stopwatch()
        semantic_classifier = train_classifier(
            data["mnist_train"], data["mnist_train_labels"], epochs=args.classifier_epochs, seed=args.seed + 1
        )
        print(f"semantic classifier (seed {args.seed + 1}) trained in {watch.seconds():.0f} s")

    keras.utils.set_random_seed(args.seed)
    side = lambda images, seed: load_images(images, batch_size=None, seed=seed)
    pairs = pair_unpaired(side(usps_train, 2 * args.seed), side(data["mnist_train"], 2 * args.seed + 1),
                          batch_size=args.batch_size)
    steps_per_epoch = int(pairs.cardinality())
    half = args.epochs * steps_per_epoch // 2
    model = CycleGAN(
        (28, 28, 1), (28, 28, 1), generator_filters=args.generator_filters,
        discriminator_filters=args.discriminator_filters, residual_blocks=args.residual_blocks,
        discriminator_layers=args.discriminator_layers, cycle_weight=args.cycle_weight,
        identity_weight=args.identity_weight, seed=args.seed,
        semantic_classifier=semantic_classifier, semantic_weight=args.semantic_weight,
    )
    model.compile(learning_rate=LinearDecay(args.learning_rate, half, args.epochs * steps_per_epoch - half))
    watch = common.Stopwatch()
    history = model.fit(pairs, epochs=args.epochs, verbose=2, callbacks=[TimeLimit(args.minutes * 60)])
    seconds = watch.seconds()
    epochs = len(history.history["g_loss"])

    translated = model.translate(usps_test, "a2b")
    cycled_usps = model.translate(translated, "b2a")
    mnist_as_usps = model.translate(data["mnist_test"], "b2a")
    cycled_mnist = model.translate(mnist_as_usps, "a2b")
    os.makedirs(args.grid, exist_ok=True)
    grid = save_image_grid(
        model.translation_examples(usps_test[:10], data["mnist_test"][:10]),
        os.path.join(args.grid, "cyclegan_usps_mnist.png"), ncols=6,
    )
    teacher = ", teacher: " + (f"USPS labels ({args.semantic_architecture} CNN)" if args.semantic_labels
                               else "a second MNIST classifier")
    print(f"seed {args.seed}; cycle weight {args.cycle_weight}, identity weight {args.identity_weight}; "
          f"semantic consistency weight {args.semantic_weight}{teacher if args.semantic_weight else ''}")
    print(f"epochs: {epochs} of {args.epochs} ({steps_per_epoch} steps of {args.batch_size} pairs), "
          f"train wall time {seconds:.0f} s, {epochs * steps_per_epoch * args.batch_size / seconds:.0f} pairs/s")
    print(f"MNIST classifier on USPS test digits: resized {baselines['resized']:.4f}; "
          f"framed {baselines['framed']:.4f}; translated to MNIST style from {args.usps_input} "
          f"{accuracy(classifier, translated, labels):.4f}")
    print(f"cycle reconstruction error (mean |x - cycled x| in [0, 1]): "
          f"USPS test {np.abs(cycled_usps - usps_test).mean():.4f}; "
          f"MNIST test {np.abs(cycled_mnist - data['mnist_test']).mean():.4f}")
    print(f"translation grid (USPS, ->MNIST, ->USPS, MNIST, ->USPS, ->MNIST): {grid}")


if __name__ == "__main__":
    main()
