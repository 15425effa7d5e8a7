"""VAE on dynamically binarized MNIST: test negative ELBO and importance-weighted NLL.

Usage:  python benchmarks/vae_mnist.py [--minutes 15] [--iw-samples 1000]

Trains on the 22,699-image MNIST subset (pixels re-binarized every epoch), then
evaluates on the 10,000 official test images binarized once with a fixed seed.
Prints nats per image (lower is better) and wall times. ``--importance-samples
k`` trains on the IWAE bound with k posterior samples per image instead of the
ELBO; the test ELBO printed is then the k samples' average.
"""

import argparse

import common  # noqa: F401  (sets KERAS_BIGML_DATASETS)
import keras
import numpy as np

from keras_bigml.callbacks import TimeLimit
from keras_bigml.data import load_images
from keras_bigml.generative import VAE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--filters", default="32,64")
    parser.add_argument("--hidden-units", type=int, default=512)
    parser.add_argument("--importance-samples", type=int, default=1,
                        help="posterior samples per training image (above 1: the IWAE objective)")
    parser.add_argument("--pixelcnn-layers", type=int, default=0,
                        help="masked convolutions of an autoregressive likelihood head (PixelVAE); 0: none")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="decoupled weight decay (AdamW) against overfitting the 22,699-image subset")
    parser.add_argument("--cosine-decay", action="store_true",
                        help="decay the learning rate to 0 over --max-epochs (set it to what --minutes allows)")
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--test-limit", type=int, help="evaluate on this many test images")
    parser.add_argument("--save", help="write the trained model to this .keras file before evaluating it")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights, the training binarization and the sampling (the test set stays fixed)")
    args = parser.parse_args()
    print(common.machine_line(), flush=True)

    path = common.require_dataset("mnist-subset.npz")
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    train = load_images(path, batch_size=args.batch_size, binarize=True, seed=args.seed)
    with np.load(path) as archive:
        train_count = len(archive["x_train"])
        test_images = archive["x_test"][: args.test_limit, :, :, None] / 255.0
    test_images = (np.random.default_rng(0).random(test_images.shape) < test_images).astype("float32")

    vae = VAE(
        image_shape=(28, 28, 1), latent_dim=args.latent_dim,
        filters=tuple(int(f) for f in args.filters.split(",")),
        hidden_units=args.hidden_units, importance_samples=args.importance_samples,
        pixelcnn_layers=args.pixelcnn_layers, seed=args.seed,
    )
    learning_rate = args.learning_rate
    if args.cosine_decay:
        steps = args.max_epochs * -(-train_count // args.batch_size)
        learning_rate = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps)
    if args.weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=args.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    vae.compile(optimizer=optimizer)
    watch = common.Stopwatch()
    history = vae.fit(
        train, epochs=args.max_epochs, verbose=2, callbacks=[TimeLimit(args.minutes * 60)]
    )
    train_seconds = watch.seconds()
    epochs = len(history.history["loss"])
    if args.save:
        vae.save(args.save)

    watch = common.Stopwatch()
    result = vae.evaluate(test_images, batch_size=500, verbose=0, return_dict=True)
    elbo = result["reconstruction_loss"] + result["kl_loss"]
    nll = -vae.log_likelihood(test_images, num_samples=args.iw_samples).mean()
    eval_seconds = watch.seconds()

    print(f"train images: {train_count}, test images: {len(test_images)}, epochs: {epochs}, "
          f"posterior samples per training image: {args.importance_samples}, seed: {args.seed}")
    print(f"train wall time: {train_seconds:.0f} s ({epochs * train_count / train_seconds:.0f} images/s)")
    print(f"test negative ELBO: {elbo:.2f} nats")
    print(f"test NLL (importance-weighted, k={args.iw_samples}): {nll:.2f} nats")
    print(f"evaluation wall time: {eval_seconds:.0f} s")


if __name__ == "__main__":
    main()
