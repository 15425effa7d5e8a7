"""Training throughput of the GAN, VAE and CycleGAN against plain keras.io-style references.

Usage:  python benchmarks/throughput.py [--steps 40] [--models gan,vae,cyclegan]

For each model, images (CycleGAN: image pairs) per second of ``fit`` on real
data (MNIST subset; CycleGAN: USPS framed to 28x28 <-> MNIST), for keras_bigml's
model with its defaults and with each speed option (``steps_per_execution=8``,
XLA ``jit_compile``, ``mixed_bfloat16``), beside a plain reference written the
way the keras.io examples write it: the same networks, float32, a
``train_step`` with ``tf.GradientTape`` and Keras losses, nothing tuned. All in
the same run. It also measures the machine's matrix-multiply peak (float32 and
bfloat16) and counts each model's FLOPs per training image, so the achieved
share of the peak is visible.
"""

import argparse
import time

import common
import keras
import numpy as np
import tensorflow as tf

from keras_bigml.data import frame_digits
from keras_bigml.generative import GAN, VAE, CycleGAN

BATCH = {"gan": 64, "vae": 128, "cyclegan": 16}


def matmul_peak(dtype, size=2048, repeats=20):
    """GFLOP/s of a square matrix multiply in ``dtype``."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a, dtype)
    multiply = tf.function(lambda x: tf.matmul(x, x))
    multiply(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        result = multiply(a)
    result.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


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
    if kind == "gan":  # D step: G forward, D on real and fake; G step: G and D forward and backward
        g, d = forward_flops(model.generator), forward_flops(model.discriminator)
        return g + 2 * 3 * d + 3 * (g + d)
    if kind == "vae":
        return 3 * (forward_flops(model.encoder) + forward_flops(model.decoder))
    g = forward_flops(model.generator_ab) + forward_flops(model.generator_ba)
    d = forward_flops(model.discriminator_a) + forward_flops(model.discriminator_b)
    return 3 * 3 * g + 3 * d + 2 * 3 * d  # G: translate, cycle, identity; D: in the G step, then real and fake


# --- plain references, written as keras.io writes them ---------------------------------------

class PlainGAN(keras.Model):
    """keras.io "DCGAN" style: BCE from keras.losses, one train_step, float32."""

    def __init__(self, generator, discriminator, latent_dim):
        super().__init__()
        self.generator, self.discriminator, self.latent_dim = generator, discriminator, latent_dim
        self.loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.d_loss_metric, self.g_loss_metric = keras.metrics.Mean(name="d_loss"), keras.metrics.Mean(name="g_loss")
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
            optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return {"G_loss": total_g, "D_X_loss": disc_x_loss}


# --- building and timing ---------------------------------------------------------------------

def build(kind, reference, compile_options):
    """keras_bigml's model (compiled with ``compile_options``) or the plain reference on the same networks."""
    if kind == "gan":
        model = GAN((28, 28, 1), latent_dim=64, generator_filters=(64, 32), discriminator_filters=(32, 64), seed=0)
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
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_options)
    else:
        model = CycleGAN((28, 28, 1), (28, 28, 1), generator_filters=16, discriminator_filters=16,
                         residual_blocks=3, discriminator_layers=2, seed=0)
        if reference:
            plain = PlainCycleGAN(model.generator_ab, model.generator_ba, model.discriminator_a, model.discriminator_b)
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


def images_per_second(model, data, kind, steps):
    model.fit(data, steps_per_epoch=max(8, steps // 5), epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * BATCH[kind] / (time.perf_counter() - start)


def load_data():
    with np.load(common.require_dataset("mnist-subset.npz")) as archive:
        mnist = (archive["x_train"][..., None] / 255.0).astype("float32")
    with np.load(common.require_dataset("usps.npz")) as archive:
        usps = frame_digits(archive["x_train"][..., None] / 255.0)
    return {"mnist": mnist, "usps": usps}


VARIANTS = (
    ("plain reference (keras.io style)", True, {}, None),
    ("keras_bigml defaults", False, {}, None),
    ("keras_bigml + steps_per_execution=8", False, {"steps_per_execution": 8}, None),
    ("keras_bigml + jit_compile", False, {"jit_compile": True}, None),
    ("keras_bigml + mixed_bfloat16", False, {}, "mixed_bfloat16"),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per variant")
    parser.add_argument("--models", default="gan,vae,cyclegan")
    parser.add_argument("--skip", default="", help="comma-separated variant numbers to skip (0-4), e.g. 3 for XLA")
    args = parser.parse_args()
    skipped = {int(v) for v in args.skip.split(",") if v}
    data = load_data()
    peaks = {dtype: matmul_peak(dtype) for dtype in (tf.float32, tf.bfloat16)}
    print(f"matmul peak: float32 {peaks[tf.float32]:.0f} GFLOP/s, bfloat16 {peaks[tf.bfloat16]:.0f} GFLOP/s")
    print(f"{'model':9s} {'variant':38s} {'images/s':>9s} {'vs plain':>8s} {'GFLOP/s':>8s} {'% f32 peak':>10s}")
    for kind in args.models.split(","):
        plain_rate = None
        for index, (name, reference, options, policy) in enumerate(VARIANTS):
            if index in skipped:
                continue
            keras.mixed_precision.set_global_policy(policy or "float32")
            keras.utils.set_random_seed(0)
            model, ours = build(kind, reference, options)
            rate = images_per_second(model, dataset(kind, data), kind, args.steps)
            plain_rate = plain_rate or rate
            gflops = rate * training_flops(kind, ours) / 1e9
            print(f"{kind:9s} {name:38s} {rate:9.0f} {rate / plain_rate:8.2f} {gflops:8.1f} "
                  f"{100 * gflops / peaks[tf.float32]:9.0f}%", flush=True)
        keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":
    main()
