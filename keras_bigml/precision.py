"""Choose the Keras dtype policy a training run uses: float32 unless bfloat16 is known to pay off.

Whether ``mixed_bfloat16`` helps depends on the processor, not on the model
alone: with AMX (Intel Sapphire Rapids and later) or AVX512_BF16 (AMD Zen 4,
Intel Cooper Lake) it runs matrix products faster than float32; on CPUs
without them TensorFlow emulates bfloat16 and a GAN step runs 3-9x slower.
So ``"auto"`` looks at the hardware first, and where it could help, times a
few training steps under each policy (a *probe* the caller gives) and keeps
bfloat16 only when it measured faster.

>>> choice = choose_precision("auto", cpuinfo="flags : fpu sse2 avx2 fma", gpus=[])
>>> choice.policy
'float32'
>>> choice.reason
'float32: this CPU has neither AMX nor AVX512_BF16, where mixed_bfloat16 runs slower than float32.'
>>> choose_precision("auto", probe=lambda policy: {"float32": 0.10, "mixed_bfloat16": 0.06}[policy],
...                  cpuinfo="flags : avx512f avx512_bf16", gpus=[]).policy
'mixed_bfloat16'
"""

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from keras_bigml.checks import positive_int
from keras_bigml.errors import ConfigError

if TYPE_CHECKING:
    import keras

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# x86 flags (as Linux names them in /proc/cpuinfo) of native bfloat16 arithmetic, strongest first.
BFLOAT16_CPU_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX512_BF16"}
# bfloat16 tensor cores arrived with Ampere (compute capability 8.0).
BFLOAT16_GPU_CAPABILITY = (8, 0)
CPUINFO_PATH = "/proc/cpuinfo"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The policy a run uses, the one sentence saying why, and the probe's seconds per step.

    ``measured`` maps each probed policy name to the seconds per training step
    of its fastest probe round; it is empty when nothing was probed.
    """

    policy: str
    reason: str
    measured: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready form (for ``run.json``)."""
        return {"policy": self.policy, "reason": self.reason, "measured": dict(self.measured)}


def cpu_flags(cpuinfo: str | None = None) -> frozenset:
    """The CPU feature flags of the first processor listed in ``/proc/cpuinfo`` text.

    ``cpuinfo`` is that text; by default the file is read (an empty set where it
    does not exist, as on macOS or Windows). Linux lists x86 features on
    ``flags`` lines and Arm ones on ``Features`` lines.

    >>> sorted(cpu_flags("processor : 0\\nflags\\t\\t: fpu avx512_bf16 amx_tile amx_bf16\\n"))
    ['amx_bf16', 'amx_tile', 'avx512_bf16', 'fpu']
    """
    if cpuinfo is None:
        try:
            with open(CPUINFO_PATH, encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, separator, value = line.partition(":")
        if separator and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model(cpuinfo: str | None = None) -> str:
    """The processor's name from ``/proc/cpuinfo`` text (``"unknown CPU"`` where it is not given).

    >>> cpu_model("processor : 0\\nmodel name\\t: AMD EPYC 9R14\\n")
    'AMD EPYC 9R14'
    """
    if cpuinfo is None:
        try:
            with open(CPUINFO_PATH, encoding="utf-8", errors="replace") as file:
                cpuinfo = file.read()
        except OSError:
            return "unknown CPU"
    for line in cpuinfo.splitlines():
        key, separator, value = line.partition(":")
        if separator and key.strip().lower() == "model name":
            return value.strip()
    return "unknown CPU"


def bfloat16_cpu_features(flags: Iterable[str]) -> list[str]:
    """The names (``"AMX"``, ``"AVX512_BF16"``) of the native bfloat16 features among ``flags``.

    >>> bfloat16_cpu_features({"avx2", "avx512_bf16", "amx_bf16"})
    ['AMX', 'AVX512_BF16']
    >>> bfloat16_cpu_features({"avx2", "fma"})
    []
    """
    return [name for flag, name in BFLOAT16_CPU_FLAGS.items() if flag in flags]


def gpu_compute_capabilities() -> list:
    """Compute capabilities ``(major, minor)`` of the GPUs TensorFlow sees (``None`` where unknown)."""
    import tensorflow as tf

    return [
        tf.config.experimental.get_device_details(gpu).get("compute_capability")
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def choose_precision(
    kind: str = "auto",
    probe: Callable[[str], float] | None = None,
    *,
    min_speedup: float = 1.05,
    rounds: int = 3,
    cpuinfo: str | None = None,
    gpus: list | None = None,
) -> PrecisionChoice:
    """Choose the dtype policy for training, with one sentence saying why.

    Parameters
    ----------
    kind : {"auto", "float32", "mixed_bfloat16", "mixed_float16"}
        A policy name is used as given (the reason warns where the hardware
        makes it slow). ``"auto"`` picks ``mixed_bfloat16`` only where the
        hardware computes in bfloat16 natively (an x86 CPU with AMX or
        AVX512_BF16; when TensorFlow sees GPUs, all of compute capability 8.0
        or more) *and* ``probe`` measured it at least ``min_speedup`` times
        faster than float32; otherwise ``float32``, without probing where the
        hardware rules bfloat16 out.
    probe : callable, optional
        ``probe(policy_name) -> seconds per training step``, called with the
        global Keras policy already set to ``policy_name`` (first
        ``"float32"``, then ``"mixed_bfloat16"``), ``rounds`` times for
        each, the two interleaved; the first call for a policy should build
        the model and warm it up, and every call time a few steps (see
        :func:`fit_probe`). The global policy in force before the call is
        restored afterwards, also when the probe fails. A failure under
        ``mixed_bfloat16`` gives float32 (the reason says what failed); one
        under float32 propagates.
    min_speedup : float
        How much faster bfloat16 must measure, so that timing noise does not
        decide.
    rounds : int
        How many timings of each policy to take. They alternate (float32
        first in even rounds, bfloat16 first in odd ones), so a slow spell of
        the machine hits both, and the fastest of each counts: noise on a
        shared CPU only ever adds time.
    cpuinfo : str, optional
        ``/proc/cpuinfo`` text, for tests; by default the file is read.
    gpus : list of (int, int) or None, optional
        The GPUs' compute capabilities, for tests; by default asked of
        TensorFlow (only under ``"auto"``).

    Returns
    -------
    PrecisionChoice

    Examples
    --------
    >>> choose_precision("float32").reason
    'float32 as requested.'
    >>> choose_precision("auto", probe=lambda policy: {"float32": 0.10, "mixed_bfloat16": 0.12}[policy],
    ...                  cpuinfo="flags : amx_bf16", gpus=[]).reason
    'float32: mixed_bfloat16 ran at 0.83x the speed of float32 on this CPU (AMX), under the 1.05x required.'
    """
    if kind not in PRECISIONS:
        raise ConfigError(f"Unknown precision {kind!r}: use one of {', '.join(PRECISIONS)}.")
    if isinstance(min_speedup, bool) or not isinstance(min_speedup, (int, float)) or not min_speedup >= 1:
        raise ConfigError(f"min_speedup must be a number of at least 1, got {min_speedup!r}.")
    positive_int("rounds", rounds)
    if kind != "auto":
        return PrecisionChoice(kind, _requested_reason(kind, cpuinfo, gpus))
    hardware, missing = _bfloat16_hardware(cpuinfo, gpus)
    if hardware is None:
        reason = f"float32: {missing}, where mixed_bfloat16 runs slower than float32."
        return PrecisionChoice("float32", reason)
    if probe is None:
        return PrecisionChoice("float32", f"float32: {hardware} could speed up mixed_bfloat16, "
                                          "but no probe was given to confirm it for this model.")
    timings = {"float32": [], "mixed_bfloat16": []}
    for round_index in range(rounds):
        for policy in list(timings)[::-1 if round_index % 2 else 1]:
            try:
                with dtype_policy(policy):
                    timings[policy].append(_seconds(probe(policy), policy))
            except Exception as error:  # any failure of the optional policy falls back to the safe one
                if policy == "float32":
                    raise
                measured = {name: min(seconds) for name, seconds in timings.items() if seconds}
                return PrecisionChoice("float32", f"float32: mixed_bfloat16 failed in the probe on {hardware} "
                                                  f"({type(error).__name__}: {_first_line(error)}).", measured)
    measured = {policy: min(seconds) for policy, seconds in timings.items()}
    speedup = measured["float32"] / measured["mixed_bfloat16"]
    if speedup >= min_speedup:
        return PrecisionChoice("mixed_bfloat16", f"mixed_bfloat16: {speedup:.2f}x the speed of float32 "
                                                 f"measured on this {hardware}.", measured)
    return PrecisionChoice("float32", f"float32: mixed_bfloat16 ran at {speedup:.2f}x the speed of float32 "
                                      f"on this {hardware}, under the {min_speedup:.2f}x required.", measured)


def fit_probe(build: Callable[[], "keras.Model"], element_spec: object, batch_size: int, steps: int = 10,
              warmup_steps: int = 3, seed: int = 0) -> Callable[[str], float]:
    """A probe for :func:`choose_precision` that times ``fit`` on synthetic batches.

    The first call for a policy builds a model with ``build()`` (a compiled
    Keras model, made under the policy in force) and fits at least
    ``warmup_steps`` steps (tracing); every call then times at least ``steps``
    steps and returns the seconds per step between the end of a first
    execution (of the model's ``steps_per_execution`` steps) and the end of
    the last, so the cost of starting ``fit`` is not counted. Both fit whole
    executions, so a model that lowers its steps per execution to divide
    ``steps_per_epoch`` keeps its number. The models stay alive between calls
    and are released with the probe. The batches are random data of
    ``element_spec`` (the training dataset's, images in [0, 1], integer labels
    0), so probing reads nothing from the real dataset and leaves its
    shuffling order as it was. Building draws initial weights from the global
    random state: seed the run after choosing (``keras.utils.set_random_seed``),
    so probing does not change its results.

    Parameters
    ----------
    build : callable
        Returns a compiled model (call it inside the run's strategy scope).
    element_spec : tf.TypeSpec or tuple of them
        ``dataset.element_spec`` of the training dataset.
    batch_size : int
        Batch size of the synthetic batches (the spec's may be unknown).
    steps, warmup_steps : int
    seed : int
        Seed of the synthetic data.

    Returns
    -------
    callable
        ``probe(policy_name) -> seconds per step``.

    Examples
    --------
    >>> import keras, tensorflow as tf
    >>> def build():
    ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    ...     model.compile("sgd", "mse")
    ...     return model
    >>> spec = (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    >>> fit_probe(build, spec, batch_size=8, steps=2, warmup_steps=1)("float32") > 0
    True
    """
    for name, value in (("batch_size", batch_size), ("steps", steps), ("warmup_steps", warmup_steps)):
        positive_int(name, value)
    models = {}

    def probe(policy):
        import keras
        import tensorflow as tf

        data = tf.data.Dataset.from_tensors(_synthetic_batch(element_spec, batch_size, seed)).repeat()
        if policy not in models:
            models[policy] = build()
            # shuffle=False: Keras warns that it cannot shuffle a dataset (one repeated batch here).
            models[policy].fit(data, steps_per_epoch=_whole_executions(models[policy], warmup_steps), epochs=1,
                               verbose=0, shuffle=False)
        # (last step index, time) at the end of each execution; the callback also makes Keras wait for each.
        ends = []
        clock = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda step, logs: ends.append((step, time.perf_counter())))
        first_and_timed = _whole_executions(models[policy], 1) + _whole_executions(models[policy], steps)
        models[policy].fit(data, steps_per_epoch=first_and_timed, epochs=1, verbose=0, shuffle=False,
                           callbacks=[clock])
        (first_step, first_end), (last_step, last_end) = ends[0], ends[-1]
        return (last_end - first_end) / (last_step - first_step)

    return probe


def _whole_executions(model, steps):
    """The fewest steps, at least ``steps``, that make whole executions of ``model``."""
    per_execution = getattr(model, "steps_per_execution", 1) or 1
    return -(-steps // per_execution) * per_execution


def _synthetic_batch(element_spec, batch_size, seed):
    """Random data of ``element_spec``: floats uniform in [0, 1], integers 0."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def fill(spec):
        shape = [batch_size if size is None else size for size in spec.shape]
        if spec.dtype.is_floating:
            return tf.constant(rng.random(shape, dtype=np.float32), dtype=spec.dtype)
        return tf.zeros(shape, spec.dtype)

    return tf.nest.map_structure(fill, element_spec)


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Set Keras's global dtype policy for a block; restore the previous one afterwards.

    >>> import keras
    >>> with dtype_policy("mixed_bfloat16"):
    ...     keras.mixed_precision.global_policy().name
    'mixed_bfloat16'
    >>> keras.mixed_precision.global_policy().name
    'float32'
    """
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _bfloat16_hardware(cpuinfo, gpus):
    """(what computes bfloat16 natively, None) or (None, what is missing), in words."""
    if gpus is None:
        gpus = gpu_compute_capabilities()
    if gpus:
        if all(capability is not None and tuple(capability) >= BFLOAT16_GPU_CAPABILITY
               for capability in gpus):
            return f"GPU (compute capability {'.'.join(map(str, min(map(tuple, gpus))))})", None
        return None, "not every GPU has compute capability 8.0 or more (bfloat16 tensor cores)"
    features = bfloat16_cpu_features(cpu_flags(cpuinfo))
    if features:
        return f"CPU ({' and '.join(features)})", None
    return None, "this CPU has neither AMX nor AVX512_BF16"


def _requested_reason(kind, cpuinfo, gpus):
    """'X as requested.', with a warning where the hardware makes it slow."""
    if kind == "float32":
        return "float32 as requested."
    if gpus is None:
        gpus = gpu_compute_capabilities()
    if gpus:
        return f"{kind} as requested."
    if kind == "mixed_float16":
        return "mixed_float16 as requested; without a GPU it is emulated and slower than float32."
    if not bfloat16_cpu_features(cpu_flags(cpuinfo)):
        return "mixed_bfloat16 as requested; this CPU has neither AMX nor AVX512_BF16, so it runs slower."
    return "mixed_bfloat16 as requested."


def _seconds(value, policy):
    """The probe's result as a positive finite float, or a ConfigError naming it."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"The precision probe must return seconds per step above 0, got {value!r} "
                          f"for {policy}.")
    return seconds


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no message"
