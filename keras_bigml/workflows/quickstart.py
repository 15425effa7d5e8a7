"""The quickstart: the default models on bundled data, offline, in a few minutes on two CPU cores."""

import os
from collections.abc import Callable
from dataclasses import dataclass

from keras_bigml.workflows.classical import ClassicalResult, train_classical
from keras_bigml.workflows.generative import ImageSource, TrainingOptions, TrainingResult, train_gan, train_vae

QUICKSTART_DIR = os.path.join("saved_models", "quickstart")


@dataclass
class QuickstartResult:
    """The three runs the quickstart trains."""

    vae: TrainingResult
    cgan: TrainingResult
    random_forest: ClassicalResult


def quickstart(out_dir: str | os.PathLike = QUICKSTART_DIR, epochs: int = 40, overwrite: bool = False,
               progress: Callable[[str], object] = print) -> QuickstartResult:
    """Train a VAE and a conditional GAN on scikit-learn's 8x8 digits (upscaled to 16x16) and a
    random forest on the breast-cancer table, each into its own run under ``out_dir``.

    ``progress`` receives one line before each model.
    """
    digits = ImageSource("digits", image_size=16)
    options = TrainingOptions(epochs=epochs, batch_size=32, seed=0)
    progress("Quickstart: a VAE on scikit-learn's bundled 8x8 digits, upscaled to 16x16.")
    vae = train_vae(os.path.join(out_dir, "vae"), digits, options, latent_dim=8, overwrite=overwrite)
    progress("Quickstart: a conditional GAN on the same digits.")
    cgan = train_gan(os.path.join(out_dir, "cgan"), digits, options, conditional=True, latent_dim=32,
                     generator_filters=(64, 32), discriminator_filters=(32, 64), ema_decay=0.99,
                     overwrite=overwrite)
    progress("Quickstart: a random forest on scikit-learn's bundled breast-cancer table.")
    forest = train_classical("random_forest", "breast_cancer", os.path.join(out_dir, "random_forest"),
                             overwrite=overwrite)
    return QuickstartResult(vae, cgan, forest)
