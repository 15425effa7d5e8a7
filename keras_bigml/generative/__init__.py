"""Generative models: VAE (GAN and CycleGAN follow), their networks and losses."""

from keras_bigml.generative.vae import VAE

__all__ = ["VAE"]
