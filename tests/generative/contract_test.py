"""Every generative model, in a tiny configuration, through the shared checks of harness.py."""

import dataclasses
import functools
from collections.abc import Callable

import keras
import pytest
import tensorflow as tf

from keras_bigml.data import load_images
from keras_bigml.generative import GAN, VAE, CycleGAN
from keras_bigml.generative import gan as gan_module
from keras_bigml.generative.base import GenerativeModel

from . import harness

BATCH = 8  # the global batch: 4 images on each of two replicas
SEED = 1


@functools.cache
def digits(labels=False, split="train", channels=1):
    """The first BATCH digits (8x8) as numpy arrays, ``(images, labels)`` with labels."""
    batch = next(iter(load_images("digits", split=split, labels=labels, channels=channels,
                                  batch_size=BATCH, shuffle=False)))
    return tuple(t.numpy() for t in batch) if labels else batch.numpy()


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity, for first_step's cache
class Case:
    """A tiny configuration of one generative model."""

    name: str
    model_class: type
    build: Callable[[], GenerativeModel]
    compile: Callable[[GenerativeModel, Callable[[], keras.optimizers.Optimizer] | None], None]
    batch: Callable[[], object]
    learning_rate: float = 0.05
    iterations: dict = dataclasses.field(default_factory=dict)
    still: Callable | None = None
    large: tuple = ()  # checks marked large for this case: each traces a step of several CPU seconds

    def make(self, optimizer=None):
        """A fresh compiled model; ``optimizer`` makes one optimizer per network (default: the model's)."""
        model = self.build()
        self.compile(model, optimizer)
        return model

    def make_with_sgd(self):
        # SGD: its first step scales with the gradient (Adam's does not), so a gradient summed
        # instead of averaged over replicas shows; momentum gives it slots to save and restore.
        return self.make(lambda: keras.optimizers.SGD(self.learning_rate, momentum=0.9))

    def dataset(self):
        return tf.data.Dataset.from_tensors(self.batch())


def compile_vae(model, optimizer):
    model.compile(optimizer=optimizer() if optimizer else "adam")


def compile_gan(loss):
    def compile_with(model, optimizer):
        given = dict(d_optimizer=optimizer(), g_optimizer=optimizer()) if optimizer else {}
        model.compile(loss=loss, **given)

    return compile_with


def compile_cyclegan(model, optimizer):
    model.compile(*(optimizer() for _ in model.networks()) if optimizer else ())


def critic_output_bias(gan):
    """The bias of the critic's logit: its only variable of one element."""
    return [v for v in gan.discriminator.trainable_variables if tuple(v.shape) == (1,)]


# The quick tier (`-m "not large"`) keeps every check of the plain VAE and most of the plain GAN;
# the other cases trace bigger steps (labels, two critic steps, four networks) and run in the full suite.
ALL_CHECKS = ("training", "replicas", "saving", "export", "mixed precision")
TINY_VAE = dict(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=3)
# ema_decay=0.5 makes the exported average differ clearly from the raw generator after one step.
TINY_GAN = dict(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
                ema_decay=0.5, seed=3)
# Different channels, so that a_to_b and b_to_a cannot be swapped unseen; one downsampling, as
# tracing the four networks' step is what costs.
TINY_CYCLEGAN = dict(image_shape_a=(8, 8, 1), image_shape_b=(8, 8, 3), generator_filters=4,
                     discriminator_filters=4, downsamplings=1, residual_blocks=1, discriminator_layers=1,
                     seed=3)

CASES = [
    Case("vae", VAE, lambda: VAE(**TINY_VAE), compile_vae, digits),
    Case("conditional-vae", VAE, lambda: VAE(**TINY_VAE, num_classes=10, likelihood="gaussian"),
         compile_vae, lambda: digits(labels=True), large=ALL_CHECKS),
    # Three posterior samples per image: the IWAE bound, with noise sliced per example across replicas.
    Case("iwae", VAE, lambda: VAE(**TINY_VAE, importance_samples=3), compile_vae, digits, large=ALL_CHECKS),
    # A PixelCNN likelihood head: a third network, and decode samples pixel by pixel.
    Case("pixel-vae", VAE, lambda: VAE(**TINY_VAE, pixelcnn_layers=2), compile_vae, digits, large=ALL_CHECKS),
    Case("gan", GAN, lambda: GAN(**TINY_GAN), compile_gan("bce"), digits, large=("replicas", "mixed precision")),
    # Spectral normalization: its singular vectors change in every critic call and stay equal across replicas.
    Case("conditional-gan", GAN, lambda: GAN(**TINY_GAN, num_classes=10, discriminator_steps=2, spectral_norm=True),
         compile_gan("lsgan"), lambda: digits(labels=True), iterations={"discriminator": 2}, large=ALL_CHECKS),
    # The critic's loss and penalty do not change when its output bias does, so no step moves it.
    Case("wgan-gp", GAN, lambda: GAN(**TINY_GAN, num_classes=10), compile_gan("wgan-gp"),
         lambda: digits(labels=True), still=critic_output_bias, large=ALL_CHECKS),
    # A pool of 4 for a batch of 8: four fakes fill it, four meet the swap draws.
    Case("cyclegan", CycleGAN, lambda: CycleGAN(**TINY_CYCLEGAN, pool_size=4), compile_cyclegan,
         lambda: (digits(), digits(split="test", channels=3)), learning_rate=0.002, large=ALL_CHECKS),
]
CLIENTS = {}  # case name -> the TensorFlow-only client waiting for its export check


def each_case(check):
    """Parametrize a test over the cases, marking ``large`` where this check is slow for the case."""
    params = [pytest.param(case, id=case.name, marks=[pytest.mark.large] if check in case.large else [])
              for case in CASES]
    return pytest.mark.parametrize("case", params, indirect=True)


@pytest.fixture(scope="module")
def case(request, tmp_path_factory):
    """One case at a time, all its checks together (a module-scoped parameter groups the tests)."""
    case = request.param
    # When its export check is selected, the client starts with the case, so that its TensorFlow
    # import overlaps the checks before (else the export check starts its own).
    if any(item.name == f"test_export_serves_every_signature_to_a_tensorflow_only_client[{case.name}]"
           for item in request.session.items):
        CLIENTS[case.name] = harness.start_client(tmp_path_factory.mktemp(f"client-{case.name}"))
    yield case
    if case.name in CLIENTS:
        harness.stop_client(CLIENTS.pop(case.name))


@functools.cache
def first_step(case):
    """The training check's step of ``case`` with SGD, without a strategy, shared by the checks that
    go on from a trained model (tracing another model's step would cost seconds per check)."""
    keras.utils.set_random_seed(SEED)
    return harness.run_training_step_check(case.make_with_sgd, case.dataset, case.iterations, case.still)


def concrete_subclasses(cls):
    for subclass in cls.__subclasses__():
        if not getattr(subclass, "__abstractmethods__", None):
            yield subclass
        yield from concrete_subclasses(subclass)


def test_every_generative_model_has_a_case():
    ours = {cls for cls in concrete_subclasses(GenerativeModel) if cls.__module__.startswith("keras_bigml.")}
    assert ours == {case.model_class for case in CASES}


@each_case("training")
def test_one_training_step_moves_every_network(case):
    step = first_step(case)
    assert step.model.distribute_strategy.num_replicas_in_sync == 1


@each_case("replicas")
def test_one_and_two_replicas_take_the_same_step(case, cpu_devices):
    harness.run_replica_check(case.make_with_sgd, case.dataset, cpu_devices, one_replica=first_step(case),
                              seed=SEED)


@each_case("saving")
def test_keras_round_trip_resumes_training_exactly(case, tmp_path):
    harness.run_saving_check(case.make_with_sgd, case.dataset, tmp_path, trained=first_step(case).model)


@each_case("export")
def test_export_serves_every_signature_to_a_tensorflow_only_client(case, tmp_path):
    harness.run_export_check(case.make_with_sgd, case.dataset, tmp_path, trained=first_step(case).model,
                             client=CLIENTS.pop(case.name, None))


@each_case("mixed precision")
def test_mixed_bfloat16_step_logs_finite_float32_losses(case, mixed_bfloat16):
    harness.run_mixed_precision_check(case.make, case.dataset)


# The checks fail when a model breaks what they check: each test below breaks one thing in the GAN.
GAN_CASE = next(case for case in CASES if case.name == "gan")


def test_training_check_finds_a_network_that_is_not_updated(monkeypatch):
    monkeypatch.setattr(GAN, "_generator_step", lambda self, labels, batch_size: tf.zeros((batch_size,)))
    with pytest.raises(AssertionError, match="optimizer iterations after one step"):
        harness.run_training_step_check(GAN_CASE.make_with_sgd, GAN_CASE.dataset, GAN_CASE.iterations)


# Both breaks change nothing with one replica, so the correct one-replica step serves as reference.
@pytest.mark.large
def test_replica_check_finds_a_loss_averaged_over_the_replica_batch(monkeypatch, cpu_devices):
    reference = first_step(GAN_CASE)
    # Each replica's mean instead of the global one: gradients summed over replicas are N times too large.
    monkeypatch.setattr(gan_module, "global_mean", lambda loss: tf.reduce_mean(tf.cast(loss, tf.float32)))
    with pytest.raises(AssertionError, match="weights of one and two replicas"):
        harness.run_replica_check(GAN_CASE.make_with_sgd, GAN_CASE.dataset, cpu_devices, reference, seed=SEED)


@pytest.mark.large
def test_replica_check_finds_trackers_fed_the_scaled_loss(monkeypatch, cpu_devices):
    reference = first_step(GAN_CASE)
    # The pitfall of DESIGN.md: the update is right, but the logs read 1/N of the loss with N replicas.
    update_trackers = GAN._update_trackers
    monkeypatch.setattr(GAN, "_update_trackers", lambda self, d_loss, g_loss, penalty: update_trackers(
        self, gan_module.global_mean(d_loss), gan_module.global_mean(g_loss), penalty))
    with pytest.raises(AssertionError, match="d_loss of two replicas"):
        harness.run_replica_check(GAN_CASE.make_with_sgd, GAN_CASE.dataset, cpu_devices, reference, seed=SEED)


# These two breaks act only when saving or exporting, so the trained GAN of the checks above serves.
@pytest.mark.large
def test_saving_check_finds_noise_state_left_out_of_the_file(monkeypatch, tmp_path):
    trained = first_step(GAN_CASE).model
    monkeypatch.setattr(GAN, "save_own_variables", keras.layers.Layer.save_own_variables)
    with pytest.raises(AssertionError, match="weights after one more step"):
        harness.run_saving_check(GAN_CASE.make_with_sgd, GAN_CASE.dataset, tmp_path, trained=trained)


@pytest.mark.large
def test_export_check_finds_a_signature_that_serves_the_raw_generator(monkeypatch, tmp_path):
    serving_functions = GAN.serving_functions

    def raw_generator(self):
        _, specs = serving_functions(self)["generate"]
        return {"generate": (lambda z: {"images": self._generate(z, use_average=False)}, specs)}

    trained = first_step(GAN_CASE).model
    monkeypatch.setattr(GAN, "serving_functions", raw_generator)
    with pytest.raises(AssertionError, match="generate: served images against generate"):
        harness.run_export_check(GAN_CASE.make_with_sgd, GAN_CASE.dataset, tmp_path, trained=trained)


def test_mixed_precision_check_finds_low_precision_logs(monkeypatch, mixed_bfloat16):
    update_trackers = GAN._update_trackers
    monkeypatch.setattr(GAN, "_update_trackers", lambda self, *losses: {
        key: tf.cast(value, "bfloat16") for key, value in update_trackers(self, *losses).items()})
    with pytest.raises(AssertionError, match="train_step returned"):
        harness.run_mixed_precision_check(GAN_CASE.make, GAN_CASE.dataset)
