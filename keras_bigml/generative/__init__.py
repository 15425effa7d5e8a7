"""Generative models: GAN and VAE (CycleGAN follows), their networks and losses."""

from keras_bigml.generative.gan import GAN
from keras_bigml.generative.vae import VAE

__all__ = ["GAN", "VAE"]
