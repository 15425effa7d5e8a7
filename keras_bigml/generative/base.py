"""The contract GAN, VAE and CycleGAN share, declared once.

Runs, export, callbacks and workflows talk to generative models only through
this contract, never by testing attributes:

- `GenerativeModel`: a `keras.Model` with a ``kind`` name, its sub-networks and
  each one's optimizer, the serving signatures it exports, the sample grid it
  draws after each epoch, and the extra metrics it reports on test data.
- `LatentGenerativeModel` (GAN, VAE): samples images from a latent prior,
  optionally conditioned on class labels (``generate``).
- `TranslationModel` (CycleGAN): translates images between two domains
  (``translate``); its grids show translations of examples from the data.

>>> from keras_bigml.generative import GAN, VAE, CycleGAN
>>> issubclass(VAE, LatentGenerativeModel), issubclass(CycleGAN, TranslationModel)
(True, True)
>>> vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)
>>> vae.kind, sorted(vae.networks()), vae.sample_grid(num_images=4)[0].shape
('vae', ['decoder', 'encoder'], (4, 8, 8, 1))
"""

import abc
import inspect
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import keras
import numpy as np

from keras_bigml.errors import ConfigError
from keras_bigml.generative.sampling import latent_vectors

if TYPE_CHECKING:
    import tensorflow as tf

ServingFunctions = dict[str, tuple[Callable[..., dict], list]]


class GenerativeModel(keras.Model, metaclass=abc.ABCMeta):
    """A generative Keras model that keras_bigml can train into a run, export and draw.

    Subclasses set ``kind`` (the name runs and the CLI use) and implement the
    abstract methods.
    """

    kind: ClassVar[str]
    #: Training steps per call of the compiled step function, unless ``compile`` names a number.
    STEPS_PER_EXECUTION: ClassVar[int] = 16

    def compile(self, *args: Any, steps_per_execution: int | None = None, **kwargs: Any) -> None:
        """`keras.Model.compile`; ``steps_per_execution=None`` (the default) lets ``fit`` run up to
        `STEPS_PER_EXECUTION` training steps in one call of the compiled step.

        One call per step cost the VAE and the GAN of `benchmarks/throughput.py` 5-8% of their
        speed (the Python loop of ``fit`` between steps leaves a core idle). Callbacks' batch hooks
        then run once per call, as Keras documents. Keras runs whole calls, so a ``fit`` given
        ``steps_per_epoch`` would overrun it (48 steps for 40 at 16 per call): the number per call
        is lowered to a divisor of every ``steps_per_epoch``, ``validation_steps`` and ``evaluate``
        ``steps`` seen.
        Under a strategy of several replicas it stays 1: Keras's loop of steps fails there with
        TensorFlow 2.21 ("You must feed a value for placeholder tensor").
        """
        super().compile(*args, steps_per_execution=steps_per_execution or 1, **kwargs)
        self.automatic_steps_per_execution = steps_per_execution is None
        if self.automatic_steps_per_execution and self.distribute_strategy.num_replicas_in_sync == 1:
            self.steps_per_execution = self.STEPS_PER_EXECUTION

    def get_compile_config(self) -> dict | None:
        config = super().get_compile_config()
        if config and getattr(self, "automatic_steps_per_execution", False):
            config["steps_per_execution"] = None
        return config

    @abc.abstractmethod
    def networks(self) -> dict[str, keras.Model]:
        """The sub-networks by name (e.g. ``generator``, ``discriminator``)."""

    @abc.abstractmethod
    def network_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        """Each trained network's optimizer by name, after ``compile``."""

    def copy_state_from(self, other: "GenerativeModel") -> None:
        """Take the weights and any other state of ``other``, a model of the same class and config
        (`keras_bigml.export.float32_copy` builds the float32 twin of a mixed precision model)."""
        self.set_weights(other.get_weights())

    @abc.abstractmethod
    def serving_functions(self) -> ServingFunctions:
        """Signatures for `keras_bigml.export`: name -> ``(function, input_signature)``.

        Inputs and outputs are float32 NHWC images in [0, 1], float32 latent
        vectors and int32 labels, so a client with TensorFlow alone can call them.
        """

    @abc.abstractmethod
    def sample_grid(self, examples: Any = None, num_images: int = 64, seed: int = 0) -> tuple[np.ndarray, int | None]:
        """Images for one sample grid and its number of columns.

        ``examples`` is what `grid_examples` took from the training data; the
        same ``seed`` gives the same latent vectors, so grids of successive
        epochs show one set of samples evolving.
        """

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`; a `tf.data.Dataset` without an autotuning choice trains with it off.

        With tf.data's autotuning on, about half the ``fit`` calls on a 2-core
        CPU ran at 0.6x speed (`keras_bigml.data.without_autotuning` says how
        it was measured); a dataset whose options choose either way is left alone.
        """
        if "validation_data" in kwargs:
            kwargs["validation_data"] = _steady_input(kwargs["validation_data"])
        for name in ("steps_per_epoch", "validation_steps"):
            self._divide_steps(_argument(keras.Model.fit, name, x, args, kwargs))
        return super().fit(_steady_input(x), *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """`keras.Model.evaluate`, with tf.data's autotuning off as in `fit`."""
        self._divide_steps(_argument(keras.Model.evaluate, "steps", x, args, kwargs))
        return super().evaluate(_steady_input(x), *args, **kwargs)

    def _divide_steps(self, steps: int | None) -> None:
        """Lower an automatic ``steps_per_execution`` to a divisor of ``steps`` (the compiled
        functions are then traced anew; a number that already divides keeps them)."""
        if not steps or not getattr(self, "automatic_steps_per_execution", False):
            return
        divisor = math.gcd(self.steps_per_execution, int(steps))
        if divisor != self.steps_per_execution:
            self.steps_per_execution = divisor
            self.train_function = self.test_function = self.predict_function = None

    def grid_examples(self, dataset: "tf.data.Dataset") -> Any:
        """What `sample_grid` needs from the training data (nothing, by default)."""
        return None

    def test_metrics(self, dataset: "tf.data.Dataset") -> dict[str, float]:
        """Metrics of this kind of model on a test dataset, beyond ``evaluate``'s losses."""
        return {}


def _argument(method: Callable, name: str, x: Any, args: tuple, kwargs: dict) -> Any:
    """The value of parameter ``name`` in a call ``method(self, x, *args, **kwargs)``, or None."""
    return inspect.signature(method).bind_partial(None, x, *args, **kwargs).arguments.get(name)


def _steady_input(data: Any) -> Any:
    """``data`` with tf.data's autotuning off when it is a `tf.data.Dataset` that does not choose."""
    import tensorflow as tf

    from keras_bigml.data.images import without_autotuning

    return without_autotuning(data) if isinstance(data, tf.data.Dataset) else data


class LatentGenerativeModel(GenerativeModel):
    """A model that samples images from a latent prior: ``generate(n, labels, z)``.

    Subclasses set ``image_shape``, ``latent_dim`` and ``num_classes`` (None
    for unconditional models).
    """

    image_shape: tuple
    latent_dim: int
    num_classes: int | None

    @abc.abstractmethod
    def generate(self, n: int | None = None, labels: int | Sequence[int] | np.ndarray | None = None,
                 z: np.ndarray | None = None) -> np.ndarray:
        """Sample images as a numpy array in [0, 1] (see `keras_bigml.generative.sampling`)."""

    def sample_grid(self, examples: Any = None, num_images: int = 64, seed: int = 0) -> tuple[np.ndarray, int | None]:
        z = latent_vectors(num_images, self.latent_dim, seed)
        return self.generate(z=z), None


class TranslationModel(GenerativeModel):
    """A model that translates images between domains A and B: ``translate(images, direction)``."""

    directions: ClassVar[tuple[str, ...]] = ("a2b", "b2a")
    image_shape_a: tuple
    image_shape_b: tuple

    @abc.abstractmethod
    def translate(self, images: np.ndarray, direction: str = "a2b", batch_size: int = 64) -> np.ndarray:
        """Translate a numpy batch of images in [0, 1]."""

    @abc.abstractmethod
    def translation_examples(self, images_a: np.ndarray, images_b: np.ndarray) -> np.ndarray:
        """Rows of inputs beside their translations, for a grid of six columns."""

    def input_shape_of(self, direction: str) -> tuple:
        """The image shape that ``translate(..., direction)`` takes."""
        if direction not in self.directions:
            raise ConfigError(f"Unknown direction {direction!r}: use one of {', '.join(self.directions)}.")
        return self.image_shape_a if direction == "a2b" else self.image_shape_b

    def grid_examples(self, dataset: "tf.data.Dataset", count: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` images of each domain from ``(images_a, images_b)`` batches."""
        images_a, images_b = [], []
        for batch_a, batch_b in dataset:
            images_a.extend(batch_a.numpy())
            images_b.extend(batch_b.numpy())
            if len(images_a) >= count:
                break
        return np.stack(images_a[:count]), np.stack(images_b[:count])

    def sample_grid(self, examples: Any = None, num_images: int = 64, seed: int = 0) -> tuple[np.ndarray, int | None]:
        if examples is None:
            raise ConfigError("A translation model's grid needs example images: pass grid_examples(dataset).")
        return self.translation_examples(*examples), 6
