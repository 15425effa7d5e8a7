"""CycleGAN: unpaired image-to-image translation (Zhu et al., 2017)."""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_bigml.distribute import global_mean, step_logs
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.generative import losses
from keras_bigml.generative.base import ServingFunctions, TranslationModel
from keras_bigml.generative.image_pool import ImagePool
from keras_bigml.generative.optimizers import FusedAdam, network_optimizer
from keras_bigml.generative.sampling import check_image_batch
from keras_bigml.generative.translation_networks import (
    patchgan_discriminator,
    resnet_generator,
    unet_generator,
)

GENERATORS = ("resnet", "unet")
CYCLEGAN_LOSSES = ("lsgan", "bce")
NETWORKS = ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")


@keras.saving.register_keras_serializable(package="keras_bigml")
class CycleGAN(TranslationModel):
    """Two generators (A to B, B to A) and two PatchGAN discriminators.

    ``fit`` takes batches ``(images_a, images_b)`` in [0, 1], e.g. from
    `keras_bigml.data.pair_unpaired`; inside, the networks work in [-1, 1]. The
    generators minimize the adversarial loss plus ``cycle_weight`` times the L1
    cycle-consistency loss plus the L1 identity loss; the discriminators learn
    from a pool of past fakes. ``call`` translates A to B.

    Parameters
    ----------
    image_shape_a, image_shape_b : (int, int, int)
        Height and width must agree; channels may differ (then there is no
        identity loss).
    generator : {"resnet", "unet"}
    generator_filters, discriminator_filters : int
        Width of the first layer (64 in the paper).
    downsamplings : int
        Stride-2 layers of the ResNet generator (2 in the paper).
    residual_blocks : int, optional
        Default: 9 from 256 pixels, 6 from 128, else 3.
    discriminator_layers : int
        Stride-2 layers of the PatchGAN (3 gives 70x70 patches).
    cycle_weight : float
        lambda of the paper (10).
    identity_weight : float, optional
        Identity-loss weight as a multiple of ``cycle_weight`` (paper: 0.5);
        None means 0.5 when the domains have the same channels, else 0.
    pool_size : int
        Past fakes kept for the discriminators (50; 0 turns the pool off).
    semantic_classifier : keras.Model, optional
        A frozen classifier of images in [0, 1] (both domains of one shape),
        e.g. trained on the labelled domain. With it the generators also
        minimize CyCADA's semantic consistency loss: the classifier must read
        each translation as it reads the source image. It is saved with the model.
    semantic_weight : float
        Weight of that loss (1, as in CyCADA).
    seed : int, optional

    Examples
    --------
    >>> from keras_bigml.data import load_images, pair_unpaired
    >>> a = load_images("digits", batch_size=None, limit=16, image_size=8)
    >>> b = load_images("digits", split="test", batch_size=None, limit=16, image_size=8, channels=3)
    >>> model = CycleGAN((8, 8, 1), (8, 8, 3), generator_filters=4, discriminator_filters=4,
    ...                  residual_blocks=1, discriminator_layers=1, seed=0)
    >>> model.compile()
    >>> history = model.fit(pair_unpaired(a, b, batch_size=8), epochs=1, verbose=0)
    >>> sorted(history.history)
    ['cycle_loss', 'd_a_loss', 'd_b_loss', 'g_loss', 'identity_loss']
    >>> model.translate(np.zeros((2, 8, 8, 1), "float32")).shape
    (2, 8, 8, 3)
    """

    kind = "cyclegan"

    def __init__(
        self,
        image_shape_a=(256, 256, 3),
        image_shape_b=(256, 256, 3),
        generator="resnet",
        generator_filters=64,
        discriminator_filters=64,
        downsamplings=2,
        residual_blocks=None,
        discriminator_layers=3,
        cycle_weight=10.0,
        identity_weight=None,
        pool_size=50,
        semantic_classifier=None,
        semantic_weight=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_shape_a, self.image_shape_b = tuple(image_shape_a), tuple(image_shape_b)
        if self.image_shape_a[:2] != self.image_shape_b[:2]:
            raise ConfigError(
                f"The domains' image sizes differ: A is {self.image_shape_a[0]}x{self.image_shape_a[1]}, "
                f"B is {self.image_shape_b[0]}x{self.image_shape_b[1]}; load both with the same image_size."
            )
        if generator not in GENERATORS:
            raise ConfigError(f"Unknown generator {generator!r}: use one of {', '.join(GENERATORS)}.")
        same_channels = self.image_shape_a[2] == self.image_shape_b[2]
        if identity_weight is None:
            identity_weight = 0.5 if same_channels else 0.0
        if identity_weight and not same_channels:
            raise ConfigError(
                f"identity_weight={identity_weight} needs the same channels in both domains "
                f"(A has {self.image_shape_a[2]}, B has {self.image_shape_b[2]}); set it to 0."
            )
        if semantic_classifier is not None and self.image_shape_a != self.image_shape_b:
            raise ConfigError(
                f"A semantic_classifier reads both domains, so they need one image shape; A is "
                f"{self.image_shape_a}, B is {self.image_shape_b}."
            )
        self.generator_kind = generator
        self.generator_filters = generator_filters
        self.discriminator_filters = discriminator_filters
        self.downsamplings = downsamplings
        self.residual_blocks = residual_blocks
        self.discriminator_layers = discriminator_layers
        self.cycle_weight = float(cycle_weight)
        self.identity_weight = float(identity_weight)
        self.pool_size = pool_size
        self.semantic_classifier = semantic_classifier
        self.semantic_weight = float(semantic_weight)
        if semantic_classifier is not None:
            semantic_classifier.trainable = False
        self.seed = seed
        self.generator_ab = self._generator(self.image_shape_a, self.image_shape_b[2], "generator_ab")
        self.generator_ba = self._generator(self.image_shape_b, self.image_shape_a[2], "generator_ba")
        self.discriminator_a = patchgan_discriminator(
            self.image_shape_a, discriminator_filters, discriminator_layers, name="discriminator_a"
        )
        self.discriminator_b = patchgan_discriminator(
            self.image_shape_b, discriminator_filters, discriminator_layers, name="discriminator_b"
        )
        pool_seeds = (None, None) if seed is None else (seed, seed + 1)
        self.pool_a = ImagePool(self.image_shape_a, pool_size, seed=pool_seeds[0], name="pool_a")
        self.pool_b = ImagePool(self.image_shape_b, pool_size, seed=pool_seeds[1], name="pool_b")
        tracked = ("g_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss")
        if semantic_classifier is not None:
            tracked += ("semantic_loss",)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}
        self.loss_kind = None
        self.built = True

    def compile(
        self,
        generator_ab_optimizer: keras.optimizers.Optimizer | str | dict | None = None,
        generator_ba_optimizer: keras.optimizers.Optimizer | str | dict | None = None,
        discriminator_a_optimizer: keras.optimizers.Optimizer | str | dict | None = None,
        discriminator_b_optimizer: keras.optimizers.Optimizer | str | dict | None = None,
        loss: str = "lsgan",
        learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 2e-4,
        **kwargs: Any,
    ) -> None:
        """Set the four optimizers and the adversarial loss.

        Parameters
        ----------
        generator_ab_optimizer, generator_ba_optimizer, discriminator_a_optimizer, discriminator_b_optimizer
            Keras optimizers or identifiers; default `FusedAdam` (``learning_rate``, beta_1=0.5).
        loss : {"lsgan", "bce"}
        learning_rate : float or LearningRateSchedule
            For the default optimizers, e.g. `keras_bigml.generative.schedules.LinearDecay`.
        **kwargs
            Passed to `keras.Model.compile` (``jit_compile``, ``steps_per_execution``).
        """
        if loss not in CYCLEGAN_LOSSES:
            raise ConfigError(f"Unknown CycleGAN loss {loss!r}: use one of {', '.join(CYCLEGAN_LOSSES)}.")
        super().compile(optimizer=None, **kwargs)
        self.loss_kind = loss
        given = {
            "generator_ab": generator_ab_optimizer, "generator_ba": generator_ba_optimizer,
            "discriminator_a": discriminator_a_optimizer, "discriminator_b": discriminator_b_optimizer,
        }
        self.optimizers = {}
        for name, identifier in given.items():
            default = lambda: FusedAdam(learning_rate, beta_1=0.5)
            optimizer = network_optimizer(identifier, default, self.dtype_policy)
            if any(optimizer is other for other in self.optimizers.values()):
                raise ConfigError("Give each of the four networks an optimizer of its own, not one shared.")
            optimizer.build(getattr(self, name).trainable_variables)
            self.optimizers[name] = optimizer
        (self.generator_ab_optimizer, self.generator_ba_optimizer,
         self.discriminator_a_optimizer, self.discriminator_b_optimizer) = self.optimizers.values()

    def get_compile_config(self) -> dict | None:
        if not self.compiled:
            return None  # as keras.Model: an uncompiled model saves without a compile config
        config = {name: keras.saving.serialize_keras_object(opt) for name, opt in self.optimizers.items()}
        return {**config, "loss": self.loss_kind}

    def compile_from_config(self, config: dict) -> None:
        self.compile(
            **{f"{name}_optimizer": keras.saving.deserialize_keras_object(config[name])
               for name in NETWORKS},
            loss=config["loss"],
        )

    def networks(self) -> dict[str, keras.Model]:
        return {name: getattr(self, name) for name in NETWORKS}

    def network_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        return dict(self.optimizers)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Translate A images in [0, 1] to B images in [0, 1]."""
        return self._translate(self.generator_ab, inputs, training)

    def translate(self, images: np.ndarray, direction: str = "a2b", batch_size: int = 64) -> np.ndarray:
        """Translate a numpy batch of images in [0, 1]; ``direction`` is ``a2b`` or ``b2a``."""
        shape = self.input_shape_of(direction)
        generator, output_shape = (
            (self.generator_ab, self.image_shape_b) if direction == "a2b" else (self.generator_ba, self.image_shape_a)
        )
        images = np.asarray(images, dtype=np.float32)
        if images.shape[1:] != shape:
            raise ConfigError(
                f"{direction} takes images of shape {shape}, got {images.shape[1:]}; "
                "resize them or convert the channels first."
            )
        outputs = [np.zeros((0, *output_shape), np.float32)] + [
            keras.ops.convert_to_numpy(self._translate(generator, images[i : i + batch_size], False))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(outputs)

    def translation_examples(self, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
        """Rows of six images for a grid: a, a->b, a->b->a, b, b->a, b->a->b (as RGB
        when the domains' channels differ)."""
        images_a, images_b = np.asarray(images_a, np.float32), np.asarray(images_b, np.float32)
        ab = self.translate(images_a, "a2b")
        ba = self.translate(images_b, "b2a")
        columns = [images_a, ab, self.translate(ab, "b2a"), images_b, ba, self.translate(ba, "a2b")]
        if self.image_shape_a[2] != self.image_shape_b[2]:
            columns = [np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c for c in columns]
        n = min(len(images_a), len(images_b))
        return np.stack([c[:n] for c in columns], axis=1).reshape(n * 6, *columns[1].shape[1:])

    def train_step(self, data: tuple) -> dict[str, tf.Tensor]:
        real_a, real_b = self._unpack(data)
        with tf.GradientTape(persistent=True) as tape:
            fake_b = self._generate(self.generator_ab, real_a, True)
            fake_a = self._generate(self.generator_ba, real_b, True)
            values = self._generator_losses(real_a, real_b, fake_a, fake_b, True)
            g_mean = global_mean(values["g_loss"])
            scaled = {name: self.optimizers[name].scale_loss(g_mean) for name in ("generator_ab", "generator_ba")}
        for name, loss in scaled.items():
            self._apply(name, tape.gradient(loss, getattr(self, name).trainable_variables))
        del tape
        values["d_a_loss"] = self._discriminator_step("discriminator_a", real_a, self.pool_a(fake_a))
        values["d_b_loss"] = self._discriminator_step("discriminator_b", real_b, self.pool_b(fake_b))
        return self._update_trackers(values)

    def test_step(self, data: tuple) -> dict[str, tf.Tensor]:
        real_a, real_b = self._unpack(data)
        fake_b = self._generate(self.generator_ab, real_a, False)
        fake_a = self._generate(self.generator_ba, real_b, False)
        values = self._generator_losses(real_a, real_b, fake_a, fake_b, False)
        values["d_a_loss"] = self._discriminator_loss(self.discriminator_a, real_a, fake_a, False)
        values["d_b_loss"] = self._discriminator_loss(self.discriminator_b, real_b, fake_b, False)
        return self._update_trackers(values)

    def serving_functions(self) -> ServingFunctions:
        """Signatures for `keras_bigml.export`: ``a_to_b(images)`` and ``b_to_a(images)``."""
        spec_a = tf.TensorSpec((None, *self.image_shape_a), tf.float32, name="images")
        spec_b = tf.TensorSpec((None, *self.image_shape_b), tf.float32, name="images")
        return {
            "a_to_b": (lambda images: {"images": self._translate(self.generator_ab, images, False)}, [spec_a]),
            "b_to_a": (lambda images: {"images": self._translate(self.generator_ba, images, False)}, [spec_b]),
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "image_shape_a": list(self.image_shape_a), "image_shape_b": list(self.image_shape_b),
            "generator": self.generator_kind, "generator_filters": self.generator_filters,
            "discriminator_filters": self.discriminator_filters, "downsamplings": self.downsamplings,
            "residual_blocks": self.residual_blocks, "discriminator_layers": self.discriminator_layers,
            "cycle_weight": self.cycle_weight, "identity_weight": self.identity_weight,
            "pool_size": self.pool_size, "semantic_weight": self.semantic_weight, "seed": self.seed,
            "semantic_classifier": (
                None if self.semantic_classifier is None
                else keras.saving.serialize_keras_object(self.semantic_classifier)
            ),
        }

    @classmethod
    def from_config(cls, config: dict) -> "CycleGAN":
        if config.get("semantic_classifier") is not None:
            classifier = keras.saving.deserialize_keras_object(config["semantic_classifier"])
            config = {**config, "semantic_classifier": classifier}
        return cls(**config)

    def _generator_losses(self, real_a, real_b, fake_a, fake_b, training):
        """Per-example ``g_loss`` (the total), ``cycle_loss``, ``identity_loss`` and, with a
        semantic classifier, ``semantic_loss``."""
        adversarial = losses.generator_loss(
            self.loss_kind, self.discriminator_b(fake_b, training=training)
        ) + losses.generator_loss(self.loss_kind, self.discriminator_a(fake_a, training=training))
        cycle = losses.mean_absolute_error(
            real_a, self._generate(self.generator_ba, fake_b, training)
        ) + losses.mean_absolute_error(real_b, self._generate(self.generator_ab, fake_a, training))
        identity = tf.zeros_like(cycle)
        if self.identity_weight:
            identity = losses.mean_absolute_error(
                real_b, self._generate(self.generator_ab, real_b, training)
            ) + losses.mean_absolute_error(real_a, self._generate(self.generator_ba, real_a, training))
        total = adversarial + self.cycle_weight * (cycle + self.identity_weight * identity)
        values = {"cycle_loss": cycle, "identity_loss": identity}
        if self.semantic_classifier is not None:
            values["semantic_loss"] = self._semantic_loss(real_a, fake_b) + self._semantic_loss(real_b, fake_a)
            total += self.semantic_weight * values["semantic_loss"]
        return {"g_loss": total, **values}

    def _semantic_loss(self, source, translated):
        read = lambda images: self.semantic_classifier((images + 1.0) / 2.0, training=False)
        return losses.semantic_consistency(read(source), read(translated))

    def _discriminator_step(self, name, real, fake):
        discriminator = getattr(self, name)
        with tf.GradientTape() as tape:
            d_loss = self._discriminator_loss(discriminator, real, fake, True)
            scaled = self.optimizers[name].scale_loss(global_mean(d_loss))
        self._apply(name, tape.gradient(scaled, discriminator.trainable_variables))
        return d_loss

    def _discriminator_loss(self, discriminator, real, fake, training):
        return losses.discriminator_loss(
            self.loss_kind, discriminator(real, training=training), discriminator(fake, training=training)
        )

    def _apply(self, name, gradients):
        variables = getattr(self, name).trainable_variables
        self.optimizers[name].apply_gradients(zip(gradients, variables))

    def _generate(self, generator, images, training):
        return tf.cast(generator(images, training=training), tf.float32)

    def _translate(self, generator, images, training):
        outputs = self._generate(generator, tf.cast(images, tf.float32) * 2.0 - 1.0, training)
        return tf.clip_by_value((outputs + 1.0) / 2.0, 0.0, 1.0)

    def _update_trackers(self, values):
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return step_logs({name: tracker.result() for name, tracker in self.trackers.items()})

    def _unpack(self, data):
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise DataError(
                "CycleGAN.fit takes batches (images_a, images_b), e.g. from "
                "keras_bigml.data.pair_unpaired(dataset_a, dataset_b)."
            )
        for name, images, shape in (("A", data[0], self.image_shape_a), ("B", data[1], self.image_shape_b)):
            check_image_batch(images, shape, f"CycleGAN's domain {name}")
        return tuple(tf.cast(images, tf.float32) * 2.0 - 1.0 for images in data)

    def _generator(self, input_shape, output_channels, name):
        if self.generator_kind == "unet":
            return unet_generator(input_shape, output_channels, self.generator_filters, name=name)
        return resnet_generator(
            input_shape, output_channels, self.generator_filters, self.downsamplings,
            self.residual_blocks, name=name,
        )
