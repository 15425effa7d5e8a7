"""Training throughput of the GAN, VAE and CycleGAN against plain keras.io-style references and PyTorch.

Usage:  python benchmarks/throughput.py [--steps 40] [--rounds 3] [--models gan,vae,cyclegan]
                                        [--skip 3] [--bfloat16-steps N] [--torch-threads N]

For each model, images (CycleGAN: image pairs) per second of ``fit`` on real
data (MNIST subset; CycleGAN: USPS framed to 28x28 <-> MNIST), for
keras_bigml's model with its defaults, with each speed option
(``steps_per_execution=8``, XLA ``jit_compile``, ``mixed_bfloat16``) and with
the precision ``"auto"`` chooses on this machine, beside

- a plain reference written the way the keras.io examples write it: the same
  networks, float32, a ``train_step`` with ``tf.GradientTape`` and Keras
  losses, nothing tuned; it trains with tf.data's autotuning on, as plain
  Keras does, where keras_bigml's ``fit`` turns it off
  (`keras_bigml.data.without_autotuning`): its slow rounds, at a fixed rate
  with about one core busy, show what that costs;
- PyTorch (when installed: ``pip install torch``, CPU build): the same
  networks layer for layer with Keras's initial scales (glorot-uniform kernels,
  zero biases, batch-norm epsilon and momentum), the same batch sizes, Adam
  settings (betas, epsilon 1e-7), losses and training step (GAN: moving average
  of the generator; CycleGAN: a pool of 50 fakes), in float32 and under
  ``torch.autocast("cpu", dtype=torch.bfloat16)``; NCHW tensors and the
  default eager mode, as a PyTorch user writes it.

All variants of a model are built and warmed up first, then timed in
``--rounds`` interleaved rounds (the order rotating from round to round), so
that a machine shared with other work slows them alike; each figure is the
median over the rounds with the lowest and highest value, and ratios are the
median of the per-round ratios against keras_bigml's defaults. Images per
CPU-second (this process's user + system time) are printed too: on a loaded
machine they show efficiency where wall time shows mostly the scheduler. The
machine's matrix-multiply peak (float32 and bfloat16) and each model's FLOPs
per training image give the achieved share of the peak, both per CPU-second.
On a shared machine the wall-clock rates follow the share of the cores this
process gets (a run can halve when another job takes a core); compare the
ratios, and the per-CPU-second figures.
"""

import argparse
import copy
import itertools
import os
import time
import warnings

import common
import keras
import numpy as np
import tensorflow as tf

from keras_bigml.data import frame_digits
from keras_bigml.generative import GAN, VAE, CycleGAN
from keras_bigml.precision import bfloat16_cpu_features, choose_precision, cpu_flags, fit_probe

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError:
    torch = None

BATCH = {"gan": 64, "vae": 128, "cyclegan": 16}
# Keras notes that fit does not shuffle a tf.data.Dataset (it is shuffled); PyTorch that padding="same"
# with an even kernel pads a copy of the input (the PatchGAN's stride-1 4x4 layers pad 1 before, 2 after).
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Using padding='same'")


def matmul_peak(dtype, size=2048, repeats=20):
    """GFLOP per second and per CPU-second (this process's) of a square matrix multiply in ``dtype``."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a, dtype)
    multiply = tf.function(lambda x: tf.matmul(x, x))
    multiply(a).numpy()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        result = multiply(a)
    result.numpy()
    flops = 2 * size**3 * repeats / 1e9
    return flops / (time.perf_counter() - wall), flops / (time.process_time() - cpu)


def forward_flops(model):
    """Multiply-adds x 2 of the Dense and convolution layers for one example."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            _, height, width, channels = layer.input.shape
            total += 2 * height * width * np.prod(layer.kernel_size) * channels * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, _ = layer.output.shape
            total += 2 * height * width * np.prod(layer.kernel_size) * layer.input.shape[-1] * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def training_flops(kind, model):
    """FLOPs per training example; a backward pass costs about twice a forward pass."""
    if kind == "gan":  # D step: G forward, D on real and fake; G step: G and D forward and backward;
        # the moving average's statistics: G forward
        g, d = forward_flops(model.generator), forward_flops(model.discriminator)
        return 2 * g + 2 * 3 * d + 3 * (g + d)
    if kind == "vae":
        return 3 * (forward_flops(model.encoder) + forward_flops(model.decoder))
    g = forward_flops(model.generator_ab) + forward_flops(model.generator_ba)
    d = forward_flops(model.discriminator_a) + forward_flops(model.discriminator_b)
    # G: translate, cycle, identity; D: in the G step, then on real and fake
    return 3 * 3 * g + 3 * d + 2 * 3 * d


# --- plain references, written as keras.io writes them ---------------------------------------

class PlainGAN(keras.Model):
    """keras.io "DCGAN" style: BCE from keras.losses, one train_step, float32."""

    def __init__(self, generator, discriminator, latent_dim):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")
        self.seed_generator = keras.random.SeedGenerator(0)

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def train_step(self, real_images):
        real_images = real_images * 2.0 - 1.0
        batch_size = tf.shape(real_images)[0]
        z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        generated = self.generator(z)
        combined = tf.concat([generated, real_images], axis=0)
        labels = tf.concat([tf.zeros((batch_size, 1)), tf.ones((batch_size, 1))], axis=0)
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            g_loss = self.loss_fn(tf.ones((batch_size, 1)), self.discriminator(self.generator(z)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


class PlainVAE(keras.Model):
    """keras.io "Variational AutoEncoder" style."""

    def __init__(self, encoder, decoder, latent_dim):
        super().__init__()
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.seed_generator = keras.random.SeedGenerator(0)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = tf.split(self.encoder(data), 2, axis=-1)
            epsilon = keras.random.normal(tf.shape(z_mean), seed=self.seed_generator)
            z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
            reconstruction = tf.sigmoid(self.decoder(z))
            reconstruction_loss = tf.reduce_mean(tf.reduce_sum(
                keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
            kl_loss = -0.5 * (1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
            total_loss = reconstruction_loss + tf.reduce_mean(tf.reduce_sum(kl_loss, axis=1))
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        return {"loss": self.total_loss_tracker.result()}


class PlainCycleGAN(keras.Model):
    """keras.io "CycleGAN" style: MSE adversarial and L1 cycle/identity losses, no image pool."""

    def __init__(self, g, f, d_x, d_y):
        super().__init__()
        self.gen_G, self.gen_F, self.disc_X, self.disc_Y = g, f, d_x, d_y
        self.adv = keras.losses.MeanSquaredError()
        self.l1 = keras.losses.MeanAbsoluteError()

    def compile(self, optimizers):
        super().compile()
        self.gen_G_optimizer, self.gen_F_optimizer, self.disc_X_optimizer, self.disc_Y_optimizer = optimizers

    def train_step(self, batch_data):
        real_x, real_y = (images * 2.0 - 1.0 for images in batch_data)
        with tf.GradientTape(persistent=True) as tape:
            fake_y, fake_x = self.gen_G(real_x, training=True), self.gen_F(real_y, training=True)
            cycled_x, cycled_y = self.gen_F(fake_y, training=True), self.gen_G(fake_x, training=True)
            same_x, same_y = self.gen_F(real_x, training=True), self.gen_G(real_y, training=True)
            disc_real_x, disc_fake_x = self.disc_X(real_x, training=True), self.disc_X(fake_x, training=True)
            disc_real_y, disc_fake_y = self.disc_Y(real_y, training=True), self.disc_Y(fake_y, training=True)
            cycle = 10.0 * (self.l1(real_y, cycled_y) + self.l1(real_x, cycled_x))
            identity = 5.0 * (self.l1(real_y, same_y) + self.l1(real_x, same_x))
            total_g = self.adv(tf.ones_like(disc_fake_y), disc_fake_y) + cycle + identity
            total_f = self.adv(tf.ones_like(disc_fake_x), disc_fake_x) + cycle + identity
            disc_x_loss = 0.5 * (self.adv(tf.ones_like(disc_real_x), disc_real_x)
                                 + self.adv(tf.zeros_like(disc_fake_x), disc_fake_x))
            disc_y_loss = 0.5 * (self.adv(tf.ones_like(disc_real_y), disc_real_y)
                                 + self.adv(tf.zeros_like(disc_fake_y), disc_fake_y))
        for loss, net, optimizer in ((total_g, self.gen_G, self.gen_G_optimizer),
                                     (total_f, self.gen_F, self.gen_F_optimizer),
                                     (disc_x_loss, self.disc_X, self.disc_X_optimizer),
                                     (disc_y_loss, self.disc_Y, self.disc_Y_optimizer)):
            gradients = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(gradients, net.trainable_variables))
        return {"G_loss": total_g, "D_X_loss": disc_x_loss}


# --- PyTorch references: the same networks, initial scales, optimizers and losses -------------

def keras_initialized(module):
    """Keras's initial scales: glorot-uniform kernels and zero biases (PyTorch's default is
    Kaiming-uniform with fan-in biases); batch-norm scale 1 and offset 0 in both."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def keras_adam(module, learning_rate, beta_1=0.9):
    """Adam with Keras's defaults (epsilon 1e-7; PyTorch's is 1e-8)."""
    return torch.optim.Adam(module.parameters(), lr=learning_rate, betas=(beta_1, 0.999), eps=1e-7)


def keras_batch_norm(channels, dims):
    """Keras's BatchNormalization: epsilon 1e-3, moving averages with momentum 0.99."""
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return norm(channels, eps=1e-3, momentum=0.01)


class Unflatten(nn.Module):
    def __init__(self, channels, height, width):
        super().__init__()
        self.shape = (channels, height, width)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


def torch_dcgan_generator(latent_dim, image_shape, filters):
    """`networks.dcgan_generator`: dense, batch norm, ReLU, then 4x4 stride-2 transposed convolutions."""
    height, width, channels = image_shape
    step = 2 ** len(filters)
    units = (height // step) * (width // step) * filters[0]
    layers = [nn.Linear(latent_dim, units, bias=False), keras_batch_norm(units, 1), nn.ReLU(),
              Unflatten(filters[0], height // step, width // step)]
    for previous, width_out in zip(filters, filters[1:]):
        layers += [nn.ConvTranspose2d(previous, width_out, 4, 2, 1, bias=False),
                   keras_batch_norm(width_out, 2), nn.ReLU()]
    layers += [nn.ConvTranspose2d(filters[-1], channels, 4, 2, 1), nn.Tanh()]
    return keras_initialized(nn.Sequential(*layers))


def torch_dcgan_discriminator(image_shape, filters):
    """`networks.dcgan_discriminator`: 4x4 stride-2 convolutions with leaky ReLU, one logit."""
    height, width, channels = image_shape
    layers = []
    for previous, units in zip((channels, *filters), filters):
        layers += [nn.Conv2d(previous, units, 4, 2, 1), nn.LeakyReLU(0.2)]
    step = 2 ** len(filters)
    layers += [nn.Flatten(), nn.Linear(filters[-1] * (height // step) * (width // step), 1)]
    return keras_initialized(nn.Sequential(*layers))


def torch_conv_encoder(image_shape, filters, hidden_units, output_units):
    """`networks.conv_encoder`: 3x3 stride-2 convolutions with swish, dense layers.

    Keras pads a 3x3 stride-2 "same" convolution by 0 before and 1 after;
    ``padding=1`` gives the same shapes and arithmetic, shifted by one pixel.
    """
    height, width, channels = image_shape
    layers = []
    for previous, units in zip((channels, *filters), filters):
        layers += [nn.Conv2d(previous, units, 3, 2, 1), nn.SiLU()]
    step = 2 ** len(filters)
    flat = filters[-1] * (height // step) * (width // step)
    layers += [nn.Flatten(), nn.Linear(flat, hidden_units), nn.SiLU(), nn.Linear(hidden_units, output_units)]
    return keras_initialized(nn.Sequential(*layers))


def torch_deconv_decoder(latent_dim, image_shape, filters, hidden_units):
    """`networks.deconv_decoder`: dense layers, then 3x3 stride-2 transposed convolutions."""
    height, width, channels = image_shape
    step = 2 ** len(filters)
    units = (height // step) * (width // step) * filters[-1]
    layers = [nn.Linear(latent_dim, hidden_units), nn.SiLU(), nn.Linear(hidden_units, units), nn.SiLU(),
              Unflatten(filters[-1], height // step, width // step)]
    widths = list(reversed(filters))
    for previous, units in zip(widths, widths[1:]):
        layers += [nn.ConvTranspose2d(previous, units, 3, 2, 1, output_padding=1), nn.SiLU()]
    layers += [nn.ConvTranspose2d(filters[0], channels, 3, 2, 1, output_padding=1)]
    return keras_initialized(nn.Sequential(*layers))


def torch_instance_norm(channels):
    """`translation_networks.instance_norm`: per channel, epsilon 1e-5, no scale or offset."""
    return nn.InstanceNorm2d(channels, eps=1e-5, affine=False)


class TorchResidualBlock(nn.Module):
    def __init__(self, filters):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(filters, filters, 3), torch_instance_norm(filters), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(filters, filters, 3), torch_instance_norm(filters),
        )

    def forward(self, x):
        return x + self.body(x)


def torch_resnet_generator(channels_in, channels_out, filters, downsamplings, residual_blocks):
    """`translation_networks.resnet_generator`: c7s1-f, d2f, d4f, R4f x n, u2f, uf, c7s1-out, tanh."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels_in, filters, 7), torch_instance_norm(filters),
              nn.ReLU()]
    for level in range(1, downsamplings + 1):
        layers += [nn.Conv2d(filters * 2 ** (level - 1), filters * 2**level, 3, 2, 1),
                   torch_instance_norm(filters * 2**level), nn.ReLU()]
    layers += [TorchResidualBlock(filters * 2**downsamplings) for _ in range(residual_blocks)]
    for level in reversed(range(downsamplings)):
        units = filters * 2**level
        layers += [nn.ConvTranspose2d(2 * units, units, 3, 2, 1, output_padding=1),
                   torch_instance_norm(units), nn.ReLU()]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(filters, channels_out, 7), nn.Tanh()]
    return keras_initialized(nn.Sequential(*layers))


def torch_patchgan_discriminator(channels, filters, layers_count):
    """`translation_networks.patchgan_discriminator`: C-f, normalized 4x4 layers, a logit per patch."""
    layers = [nn.Conv2d(channels, filters, 4, 2, 1), nn.LeakyReLU(0.2)]
    for level in range(1, layers_count + 1):
        units, previous = filters * 2 ** min(level, 3), filters * 2 ** min(level - 1, 3)
        stride_2 = level < layers_count
        conv = (nn.Conv2d(previous, units, 4, 2, 1) if stride_2
                else nn.Conv2d(previous, units, 4, padding="same"))
        layers += [conv, torch_instance_norm(units), nn.LeakyReLU(0.2)]
    layers += [nn.Conv2d(filters * 2 ** min(layers_count, 3), 1, 4, padding="same")]
    return keras_initialized(nn.Sequential(*layers))


class TorchGAN:
    """keras_bigml's GAN step: D on real and on (no-grad) fakes, then G through a frozen D, then the
    generator's moving average (decay 0.99) and its batch-norm statistics, from a forward pass of the
    average in training mode; non-saturating BCE losses; Adam(2e-4, beta_1=0.5) each."""

    def __init__(self, latent_dim=64, generator_filters=(64, 32), discriminator_filters=(32, 64),
                 ema_decay=0.99):
        self.latent_dim, self.ema_decay = latent_dim, ema_decay
        self.generator = torch_dcgan_generator(latent_dim, (28, 28, 1), generator_filters)
        self.discriminator = torch_dcgan_discriminator((28, 28, 1), discriminator_filters)
        self.g_optimizer = keras_adam(self.generator, 2e-4, 0.5)
        self.d_optimizer = keras_adam(self.discriminator, 2e-4, 0.5)
        self.average_generator = copy.deepcopy(self.generator).requires_grad_(False)
        self.average = list(self.average_generator.parameters())

    def train_step(self, real, autocast):
        real = real * 2.0 - 1.0
        n = real.shape[0]
        with torch.no_grad(), autocast():
            fake = self.generator(torch.randn(n, self.latent_dim))
        with autocast():
            d_loss = (F.softplus(-self.discriminator(real).float()).mean()
                      + F.softplus(self.discriminator(fake).float()).mean())
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        self.discriminator.requires_grad_(False)
        with autocast():
            fake = self.generator(torch.randn(n, self.latent_dim))
            g_loss = F.softplus(-self.discriminator(fake).float()).mean()
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminator.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(self.average, list(self.generator.parameters()), 1.0 - self.ema_decay)
            with autocast():
                self.average_generator(torch.randn(n, self.latent_dim))


class TorchVAE:
    """keras_bigml's VAE step: Bernoulli likelihood on logits, analytic KL, Adam(1e-3)."""

    def __init__(self, latent_dim=32, filters=(32, 64), hidden_units=512):
        self.latent_dim = latent_dim
        self.encoder = torch_conv_encoder((28, 28, 1), filters, hidden_units, 2 * latent_dim)
        self.decoder = torch_deconv_decoder(latent_dim, (28, 28, 1), filters, hidden_units)
        self.optimizer = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()], lr=1e-3,
                                          eps=1e-7)

    def train_step(self, images, autocast):
        with autocast():
            mean, log_var = self.encoder(images).float().chunk(2, dim=1)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            logits = self.decoder(z).float()
        reconstruction = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (log_var.exp() + mean.square() - 1.0 - log_var).sum(1)
        loss = (reconstruction + kl).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class TorchImagePool:
    """The pool of past fakes of the CycleGAN paper's code, image by image."""

    def __init__(self, size=50):
        self.size, self.images = size, []

    def __call__(self, images):
        returned = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image)
                returned.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(self.size, ()))
                returned.append(self.images[slot])
                self.images[slot] = image
            else:
                returned.append(image)
        return torch.stack(returned)


class TorchCycleGAN:
    """keras_bigml's CycleGAN step: both generators on LSGAN + 10 x (cycle + 0.5 x identity) L1 losses
    through frozen discriminators, then each discriminator on real and pooled fakes; four Adams."""

    def __init__(self, filters=16, discriminator_filters=16, residual_blocks=3, discriminator_layers=2):
        self.generator_ab = torch_resnet_generator(1, 1, filters, 2, residual_blocks)
        self.generator_ba = torch_resnet_generator(1, 1, filters, 2, residual_blocks)
        self.discriminator_a = torch_patchgan_discriminator(1, discriminator_filters, discriminator_layers)
        self.discriminator_b = torch_patchgan_discriminator(1, discriminator_filters, discriminator_layers)
        self.optimizers = {name: keras_adam(getattr(self, name), 2e-4, 0.5) for name in
                           ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")}
        self.pool_a, self.pool_b = TorchImagePool(), TorchImagePool()

    def train_step(self, batch, autocast):
        real_a, real_b = (images * 2.0 - 1.0 for images in batch)
        for discriminator in (self.discriminator_a, self.discriminator_b):
            discriminator.requires_grad_(False)
        with autocast():
            fake_b, fake_a = self.generator_ab(real_a), self.generator_ba(real_b)
            adversarial = ((self.discriminator_b(fake_b).float() - 1.0).square().mean()
                           + (self.discriminator_a(fake_a).float() - 1.0).square().mean())
            cycle = _l1(real_a, self.generator_ba(fake_b)) + _l1(real_b, self.generator_ab(fake_a))
            identity = _l1(real_b, self.generator_ab(real_b)) + _l1(real_a, self.generator_ba(real_a))
            g_loss = adversarial + 10.0 * (cycle + 0.5 * identity)
        for name in ("generator_ab", "generator_ba"):
            self.optimizers[name].zero_grad(set_to_none=True)
        g_loss.backward()
        for name in ("generator_ab", "generator_ba"):
            self.optimizers[name].step()
        for name, real, fake, pool in (("discriminator_a", real_a, fake_a, self.pool_a),
                                       ("discriminator_b", real_b, fake_b, self.pool_b)):
            discriminator = getattr(self, name)
            discriminator.requires_grad_(True)
            fake = pool(fake.detach().float())
            with autocast():
                d_loss = 0.5 * ((discriminator(real).float() - 1.0).square().mean()
                                + discriminator(fake).float().square().mean())
            self.optimizers[name].zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizers[name].step()


def _l1(targets, outputs):
    return (targets - outputs.float()).abs().mean()


def _nchw(images):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


class TorchTrainer:
    """Times a PyTorch reference on the same data, fed by a shuffling DataLoader as a user writes it."""

    def __init__(self, kind, data, bfloat16):
        torch.manual_seed(0)
        self.kind = kind
        self.model = {"gan": TorchGAN, "vae": TorchVAE, "cyclegan": TorchCycleGAN}[kind]()
        self.autocast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bfloat16
                         else (lambda: torch.autocast("cpu", enabled=False)))
        tensors = ((_nchw(data["usps"]), _nchw(data["mnist"][: len(data["usps"])])) if kind == "cyclegan"
                   else (_nchw(data["mnist"]),))
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=BATCH[kind],
                                             shuffle=True, drop_last=True)
        self.batches = (batch for _ in itertools.count() for batch in loader)

    def train(self, steps):
        for _ in range(steps):
            batch = next(self.batches)
            self.model.train_step(batch if self.kind == "cyclegan" else batch[0], self.autocast)


# --- building and timing ---------------------------------------------------------------------

def build(kind, reference, compile_options):
    """keras_bigml's model (compiled with ``compile_options``) or the plain reference on the same networks."""
    if kind == "gan":
        model = GAN((28, 28, 1), latent_dim=64, generator_filters=(64, 32), discriminator_filters=(32, 64),
                    seed=0)
        if reference:
            plain = PlainGAN(model.generator, model.discriminator, 64)
            plain.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
            return plain, model
        model.compile(**compile_options)
    elif kind == "vae":
        model = VAE((28, 28, 1), latent_dim=32, filters=(32, 64), hidden_units=512, seed=0)
        if reference:
            plain = PlainVAE(model.encoder, model.decoder, 32)
            plain.compile(optimizer=keras.optimizers.Adam(1e-3))
            return plain, model
        model.compile(optimizer="adam", **compile_options)  # as a user writes it: FusedAdam(1e-3)
    else:
        model = CycleGAN((28, 28, 1), (28, 28, 1), generator_filters=16, discriminator_filters=16,
                         residual_blocks=3, discriminator_layers=2, seed=0)
        if reference:
            plain = PlainCycleGAN(model.generator_ab, model.generator_ba, model.discriminator_a,
                                  model.discriminator_b)
            plain.compile([keras.optimizers.Adam(2e-4, beta_1=0.5) for _ in range(4)])
            return plain, model
        model.compile(**compile_options)
    return model, model


def dataset(kind, data):
    batch = BATCH[kind]
    if kind == "cyclegan":
        source = tf.data.Dataset.from_tensor_slices((data["usps"], data["mnist"][: len(data["usps"])]))
    else:
        source = tf.data.Dataset.from_tensor_slices(data["mnist"])
    return source.shuffle(4096, seed=0).repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


class KerasTrainer:
    """One Keras variant: built (under its dtype policy) and traced once, then ``fit`` for timing."""

    def __init__(self, kind, data, reference=False, options=None, policy=None):
        self.data = dataset(kind, data)
        if policy == "auto":
            spec, batch = self.data.element_spec, BATCH[kind]
            self.choice = choose_precision("auto", fit_probe(lambda: build(kind, False, {})[0], spec, batch))
            policy = self.choice.policy
        keras.mixed_precision.set_global_policy(policy or "float32")
        try:
            keras.utils.set_random_seed(0)
            self.model, self.ours = build(kind, reference, options or {})
            self.train(max(8, 2 * (options or {}).get("steps_per_execution", 1)))  # trace and warm up
        finally:
            keras.mixed_precision.set_global_policy("float32")

    def train(self, steps):
        self.model.fit(self.data, steps_per_epoch=steps, epochs=1, verbose=0)


def load_data():
    with np.load(common.require_dataset("mnist-subset.npz")) as archive:
        mnist = (archive["x_train"][..., None] / 255.0).astype("float32")
    with np.load(common.require_dataset("usps.npz")) as archive:
        usps = frame_digits(archive["x_train"][..., None] / 255.0)
    return {"mnist": mnist, "usps": usps}


DEFAULTS = "keras_bigml defaults"
VARIANTS = (  # name, how to make it (kind, data) -> trainer
    ("plain reference (keras.io style)", lambda kind, data: KerasTrainer(kind, data, reference=True)),
    (DEFAULTS, lambda kind, data: KerasTrainer(kind, data)),
    ("keras_bigml + steps_per_execution=8",
     lambda kind, data: KerasTrainer(kind, data, options={"steps_per_execution": 8})),
    ("keras_bigml + jit_compile", lambda kind, data: KerasTrainer(kind, data, options={"jit_compile": True})),
    ("keras_bigml + mixed_bfloat16", lambda kind, data: KerasTrainer(kind, data, policy="mixed_bfloat16")),
    ("keras_bigml + precision auto", lambda kind, data: KerasTrainer(kind, data, policy="auto")),
    ("PyTorch float32", lambda kind, data: TorchTrainer(kind, data, bfloat16=False)),
    ("PyTorch bfloat16 autocast", lambda kind, data: TorchTrainer(kind, data, bfloat16=True)),
)
TORCH_VARIANTS = {index for index, (name, _) in enumerate(VARIANTS) if name.startswith("PyTorch")}


def time_rounds(trainers, steps, rounds, batch):
    """Interleaved rounds: per trainer, a list of (examples per second, per CPU-second, load average),
    one per round; ``steps`` maps each trainer's name to its timed steps per round."""
    rates = {name: [] for name in trainers}
    names = list(trainers)
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:  # rotate, so no variant always follows the same one
            wall, cpu = time.perf_counter(), time.process_time()
            trainers[name].train(steps[name])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates[name].append((steps[name] * batch / wall, steps[name] * batch / cpu, common.load_average()))
    return rates


def report(kind, trainers, rates, peak):
    """Print one line per variant: medians over rounds, spreads, ratios, and the share of the matmul
    peak, both per CPU-second (so that other work on the machine does not change the share)."""
    flops = training_flops(kind, trainers[DEFAULTS].ours) if DEFAULTS in trainers else None
    rate = {name: [wall for wall, _, _ in values] for name, values in rates.items()}
    for name, values in rates.items():
        median, low, high = common.median_and_spread(rate[name])
        per_cpu = common.median_and_spread([cpu for _, cpu, _ in values])[0]
        ratio = ""
        if DEFAULTS in rate:
            ratios = [ours / theirs for ours, theirs in zip(rate[name], rate[DEFAULTS])]
            ratio = "{:.2f} ({:.2f}-{:.2f})".format(*common.median_and_spread(ratios))
        share = f"{100 * per_cpu * flops / 1e9 / peak:5.0f}%" if flops else ""
        loads = "-".join(f"{load:.1f}" for _, _, load in values)
        print(f"{kind:9s} {name:36s} {median:8.0f} {low:6.0f}-{high:<6.0f} {per_cpu:8.0f} {ratio:>17s} "
              f"{share:>6s}  {loads}", flush=True)
        choice = getattr(trainers[name], "choice", None)
        if choice is not None:
            print(f"{'':9s}   auto chose {choice.policy}: {choice.reason}")
    if DEFAULTS in rate:
        cpu_rate = {name: [cpu for _, cpu, _ in values] for name, values in rates.items()}
        torch_names = [name for name in rate if name.startswith("PyTorch")]
        for label, ours, theirs in (
            ("", [DEFAULTS], ["PyTorch float32"]),
            ("best against best: ",
             [DEFAULTS, "keras_bigml + mixed_bfloat16", "keras_bigml + precision auto"], torch_names),
            ("", ["keras_bigml + precision auto"], [DEFAULTS]),
        ):
            ours, theirs = [n for n in ours if n in rate], [n for n in theirs if n in rate]
            if ours and theirs:
                ours, theirs = _best(rate, ours), _best(rate, theirs)
                per_second = common.median_and_spread([a / b for a, b in zip(rate[ours], rate[theirs])])
                per_cpu = common.median_and_spread([a / b for a, b in zip(cpu_rate[ours], cpu_rate[theirs])])
                print(f"{kind:9s}   {label}{ours} / {theirs}: "
                      "{:.2f}x ({:.2f}-{:.2f}) per second, {:.2f}x ({:.2f}-{:.2f}) per CPU-second".format(
                          *per_second, *per_cpu), flush=True)


def onednn_status():
    """Whether TensorFlow runs its oneDNN kernels: by default only on CPUs with AVX512_VNNI, AVX512_BF16,
    AVX_VNNI or AMX; elsewhere convolutions are Eigen's (TF_ENABLE_ONEDNN_OPTS=1 turns oneDNN on)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a private module: say so rather than guess
        return "oneDNN kernels: unknown"
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default for this CPU")
    state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    return f"oneDNN kernels {state} (TF_ENABLE_ONEDNN_OPTS {setting})"


def _best(rate, names):
    """The name with the highest median rate among ``names``."""
    return max(names, key=lambda name: common.median_and_spread(rate[name])[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (at least 3 for a median)")
    parser.add_argument("--models", default="gan,vae,cyclegan")
    parser.add_argument("--skip", default="", help="comma-separated variant numbers to skip (0-7), 3 for XLA")
    parser.add_argument("--bfloat16-steps", type=int, default=None,
                        help="timed steps of the bfloat16 variants (default: --steps where the CPU computes "
                             "bfloat16 natively, else a fifth of it: emulated bfloat16 is 3-10x slower)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch's intra-op threads (default: the cores TensorFlow uses)")
    args = parser.parse_args()
    skipped = {int(v) for v in args.skip.split(",") if v}
    data = load_data()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(common.machine_line())
    intra = tf.config.threading.get_intra_op_parallelism_threads() or cores
    inter = tf.config.threading.get_inter_op_parallelism_threads() or cores
    threads = f"TensorFlow {tf.__version__}: intra-op {intra}, inter-op {inter} threads, {onednn_status()}"
    if torch is None:
        skipped |= TORCH_VARIANTS
        threads += "; PyTorch not installed, its rows skipped"
    else:
        torch.set_num_threads(args.torch_threads or cores)
        threads += f"; PyTorch {torch.__version__}: {torch.get_num_threads()} threads"
    print(threads)
    peaks = {dtype: matmul_peak(dtype) for dtype in (tf.float32, tf.bfloat16)}
    print("matmul peak: float32 {:.0f} GFLOP/s ({:.0f} per CPU-second), bfloat16 {:.0f} ({:.0f}); "
          "load average {:.1f}".format(*peaks[tf.float32], *peaks[tf.bfloat16], common.load_average()))
    native = bfloat16_cpu_features(cpu_flags())
    bfloat16_steps = args.bfloat16_steps or (args.steps if native else max(2, args.steps // 5))
    print(f"{args.rounds} interleaved rounds of {args.steps} steps ({bfloat16_steps} for bfloat16): median "
          "per second, lowest-highest, per CPU-second, ratio to defaults (median of the rounds' ratios, "
          "range), share of the float32 matmul peak per CPU-second, load average after each round")
    print(f"{'model':9s} {'variant':36s} {'per s':>8s} {'range':13s} {'per CPU-s':>8s} {'vs defaults':>17s} "
          f"{'peak':>6s}  load")
    for kind in args.models.split(","):
        trainers = {name: make(kind, data) for index, (name, make) in enumerate(VARIANTS)
                    if index not in skipped}
        steps = {name: bfloat16_steps if "bfloat16" in name else args.steps for name in trainers}
        report(kind, trainers, time_rounds(trainers, steps, args.rounds, BATCH[kind]), peaks[tf.float32][1])
        del trainers


if __name__ == "__main__":
    main()
