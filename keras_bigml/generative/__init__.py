"""Generative models: GAN, VAE and CycleGAN, their networks and losses."""

from keras_bigml.generative.cyclegan import CycleGAN
from keras_bigml.generative.gan import GAN
from keras_bigml.generative.schedules import LinearDecay
from keras_bigml.generative.vae import VAE

__all__ = ["CycleGAN", "GAN", "LinearDecay", "VAE"]
