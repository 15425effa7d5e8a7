import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_bigml.errors import ConfigError
from keras_bigml.precision import (
    PrecisionChoice,
    bfloat16_cpu_features,
    choose_precision,
    cpu_flags,
    cpu_model,
    fit_probe,
)

# Abridged /proc/cpuinfo of machines this project has run on.
INTEL_AMX = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_fp16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme
"""
AMD_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni
"""
AMD_PLAIN = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma f16c vaes vpclmulqdq
"""
ARM = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm
"""


class FakeProbe:
    """Seconds per step by policy (one value, or one per round); records each call and the global policy
    in force during it. ``fail`` names policies that fail from their ``fail_from``-th call on (0: always)."""

    def __init__(self, seconds, fail=(), fail_from=0):
        self.seconds, self.fail, self.fail_from, self.calls = seconds, fail, fail_from, []

    def __call__(self, policy):
        round_index = sum(called == policy for called, _ in self.calls)
        self.calls.append((policy, keras.mixed_precision.global_policy().name))
        if policy in self.fail and round_index >= self.fail_from:
            message = "No bfloat16 kernel for Conv2DBackpropFilter\nmore"
            raise tf.errors.InvalidArgumentError(None, None, message)
        seconds = self.seconds[policy]
        return seconds[round_index] if isinstance(seconds, list) else seconds


INTERLEAVED = ["float32", "mixed_bfloat16", "mixed_bfloat16", "float32", "float32", "mixed_bfloat16"]


@pytest.fixture(autouse=True)
def float32_policy():
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("text, features", [
    (INTEL_AMX, ["AMX", "AVX512_BF16"]), (AMD_BF16, ["AVX512_BF16"]), (AMD_PLAIN, []), (ARM, []), ("", []),
])
def test_bfloat16_features_from_cpuinfo(text, features):
    assert bfloat16_cpu_features(cpu_flags(text)) == features


def test_flags_of_the_first_processor_and_arm_features():
    assert {"amx_bf16", "amx_tile", "avx512_bf16", "fpu"} <= cpu_flags(INTEL_AMX)
    assert "avx2" not in cpu_flags(INTEL_AMX.split("\n\n")[1])
    assert {"asimd", "bf16"} <= cpu_flags(ARM)
    assert cpu_flags("processor : 0\nmodel name : x\n") == frozenset()
    assert cpu_model(AMD_BF16) == "AMD EPYC 9R14 96-Core Processor"
    assert cpu_model(ARM) == "unknown CPU"


def test_the_machine_flags_are_read_from_proc_cpuinfo():
    try:
        with open("/proc/cpuinfo") as file:
            expected = cpu_flags(file.read())
    except OSError:
        expected = frozenset()
    assert cpu_flags() == expected


def test_auto_keeps_bfloat16_when_the_probe_measures_it_faster():
    probe = FakeProbe({"float32": 0.10, "mixed_bfloat16": 0.04})
    choice = choose_precision("auto", probe, cpuinfo=INTEL_AMX, gpus=[])
    assert choice == PrecisionChoice(
        "mixed_bfloat16",
        "mixed_bfloat16: 2.50x the speed of float32 measured on this CPU (AMX and AVX512_BF16).",
        {"float32": 0.10, "mixed_bfloat16": 0.04},
    )
    assert [policy for policy, _ in probe.calls] == INTERLEAVED


def test_the_fastest_of_interleaved_rounds_counts():
    # A slow spell during the second float32 round and the first bfloat16 one: the minimum sees through it.
    probe = FakeProbe({"float32": [0.10, 0.25, 0.11], "mixed_bfloat16": [0.30, 0.08, 0.09]})
    choice = choose_precision("auto", probe, cpuinfo=AMD_BF16, gpus=[])
    assert choice.policy == "mixed_bfloat16" and choice.measured == {"float32": 0.10, "mixed_bfloat16": 0.08}
    one_round = choose_precision("auto", FakeProbe(probe.seconds), rounds=1, cpuinfo=AMD_BF16, gpus=[])
    assert one_round.policy == "float32" and one_round.measured == {"float32": 0.10, "mixed_bfloat16": 0.30}
    five = FakeProbe({"float32": 0.1, "mixed_bfloat16": 0.2})
    choose_precision("auto", five, rounds=5, cpuinfo=AMD_BF16, gpus=[])
    assert [policy for policy, _ in five.calls] == INTERLEAVED + INTERLEAVED[2:]


@pytest.mark.parametrize("bfloat16_seconds", [0.30, 0.098])  # slower; faster, but within noise (1.02x)
def test_auto_keeps_float32_when_bfloat16_is_not_clearly_faster(bfloat16_seconds):
    choice = choose_precision("auto", FakeProbe({"float32": 0.10, "mixed_bfloat16": bfloat16_seconds}),
                              cpuinfo=AMD_BF16, gpus=[])
    assert choice.policy == "float32"
    assert choice.measured == {"float32": 0.10, "mixed_bfloat16": bfloat16_seconds}
    assert f"{0.10 / bfloat16_seconds:.2f}x the speed of float32 on this CPU (AVX512_BF16)" in choice.reason
    assert choice.reason.count(".") == 3 and choice.reason.endswith("required.")  # one sentence, two numbers


def test_min_speedup_sets_the_bar():
    probe = FakeProbe({"float32": 0.10, "mixed_bfloat16": 0.098})
    choice = choose_precision("auto", probe, min_speedup=1.0, cpuinfo=AMD_BF16, gpus=[])
    assert choice.policy == "mixed_bfloat16"


@pytest.mark.parametrize("cpuinfo", [AMD_PLAIN, ARM, ""])
def test_auto_without_bfloat16_hardware_is_float32_without_probing(cpuinfo):
    probe = FakeProbe({"float32": 0.5, "mixed_bfloat16": 0.01})
    choice = choose_precision("auto", probe, cpuinfo=cpuinfo, gpus=[])
    assert choice == PrecisionChoice(
        "float32",
        "float32: this CPU has neither AMX nor AVX512_BF16, where mixed_bfloat16 runs slower than float32.",
    )
    assert probe.calls == []


def test_auto_with_hardware_but_no_probe_is_float32():
    choice = choose_precision("auto", None, cpuinfo=INTEL_AMX, gpus=[])
    assert choice.policy == "float32" and "no probe" in choice.reason and choice.measured == {}


def test_gpus_decide_instead_of_the_cpu():
    probe = FakeProbe({"float32": 0.10, "mixed_bfloat16": 0.05})
    assert choose_precision("auto", probe, cpuinfo=AMD_PLAIN, gpus=[(8, 0), (9, 0)]).reason == (
        "mixed_bfloat16: 2.00x the speed of float32 measured on this GPU (compute capability 8.0).")
    for gpus in ([(7, 5)], [(8, 6), (7, 0)], [None]):
        probe = FakeProbe({"float32": 0.10, "mixed_bfloat16": 0.05})
        choice = choose_precision("auto", probe, cpuinfo=INTEL_AMX, gpus=gpus)
        assert choice.policy == "float32" and "compute capability 8.0" in choice.reason and probe.calls == []


@pytest.mark.parametrize("previous", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_probe_runs_under_each_policy_and_the_previous_policy_comes_back(previous):
    keras.mixed_precision.set_global_policy(previous)
    probe = FakeProbe({"float32": 0.10, "mixed_bfloat16": 0.20})
    choose_precision("auto", probe, cpuinfo=INTEL_AMX, gpus=[])
    assert probe.calls == [(policy, policy) for policy in INTERLEAVED]
    assert keras.mixed_precision.global_policy().name == previous


def test_a_bfloat16_failure_in_the_probe_gives_float32_and_says_why():
    keras.mixed_precision.set_global_policy("mixed_float16")
    probe = FakeProbe({"float32": 0.10}, fail=("mixed_bfloat16",))
    choice = choose_precision("auto", probe, cpuinfo=INTEL_AMX, gpus=[])
    assert choice.policy == "float32"
    assert choice.reason == ("float32: mixed_bfloat16 failed in the probe on CPU (AMX and AVX512_BF16) "
                             "(InvalidArgumentError: No bfloat16 kernel for Conv2DBackpropFilter).")
    assert choice.measured == {"float32": 0.10}
    assert keras.mixed_precision.global_policy().name == "mixed_float16"


def test_a_bfloat16_failure_in_a_later_round_keeps_what_was_measured():
    probe = FakeProbe({"float32": [0.10, 0.09], "mixed_bfloat16": 0.05}, fail=("mixed_bfloat16",), fail_from=1)
    choice = choose_precision("auto", probe, cpuinfo=AMD_BF16, gpus=[])
    assert choice.policy == "float32" and "failed in the probe" in choice.reason
    assert choice.measured == {"float32": 0.10, "mixed_bfloat16": 0.05}
    assert [policy for policy, _ in probe.calls] == INTERLEAVED[:3]


def test_a_float32_failure_propagates_and_the_policy_comes_back():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with pytest.raises(tf.errors.InvalidArgumentError):
        choose_precision("auto", FakeProbe({}, fail=("float32",)), cpuinfo=INTEL_AMX, gpus=[])
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, None, "fast"])
def test_a_probe_returning_no_time_is_refused(value):
    with pytest.raises(ConfigError, match=f"seconds per step above 0, got {value!r} for float32"):
        choose_precision("auto", lambda policy: value, cpuinfo=INTEL_AMX, gpus=[])


def test_bad_arguments_are_refused_in_one_sentence():
    with pytest.raises(ConfigError, match="Unknown precision 'bfloat16': use one of auto, float32, mixed_bf"):
        choose_precision("bfloat16")
    with pytest.raises(ConfigError, match="min_speedup must be a number of at least 1, got 0.9"):
        choose_precision("auto", min_speedup=0.9)
    with pytest.raises(ConfigError, match="rounds must be a whole number of at least 1, got 0"):
        choose_precision("auto", rounds=0)
    with pytest.raises(ConfigError, match="steps must be a whole number of at least 1, got 0"):
        fit_probe(lambda: None, tf.TensorSpec((None, 2)), batch_size=4, steps=0)


def test_requested_policies_are_kept_and_warn_where_the_hardware_is_slow():
    probe = FakeProbe({})
    assert choose_precision("float32", probe).reason == "float32 as requested."
    slow = choose_precision("mixed_bfloat16", probe, cpuinfo=AMD_PLAIN, gpus=[])
    assert slow.policy == "mixed_bfloat16" and "neither AMX nor AVX512_BF16" in slow.reason
    fast = choose_precision("mixed_bfloat16", cpuinfo=INTEL_AMX, gpus=[])
    assert fast.reason == "mixed_bfloat16 as requested."
    assert "emulated" in choose_precision("mixed_float16", cpuinfo=INTEL_AMX, gpus=[]).reason
    assert choose_precision("mixed_float16", gpus=[(7, 0)]).reason == "mixed_float16 as requested."
    assert probe.calls == []


def test_choice_to_dict_is_json_ready():
    choice = PrecisionChoice("float32", "float32 as requested.", {"float32": 0.1})
    expected = {"policy": "float32", "reason": "float32 as requested.", "measured": {"float32": 0.1}}
    assert choice.to_dict() == expected


@pytest.mark.large
def test_fit_probe_times_models_built_under_each_policy_on_synthetic_batches():
    built = []

    def build():
        model = keras.Sequential([keras.Input((3, 3, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        built.append(model.dtype_policy.name)
        return model

    spec = (tf.TensorSpec((None, 3, 3, 1), tf.float32), tf.TensorSpec((None,), tf.int32))
    probe = fit_probe(build, spec, batch_size=4, steps=2, warmup_steps=1)
    choice = choose_precision("auto", probe, min_speedup=1000.0, cpuinfo=INTEL_AMX, gpus=[])
    assert built == ["float32", "mixed_bfloat16"]
    assert choice.policy == "float32" and sorted(choice.measured) == ["float32", "mixed_bfloat16"]
    assert all(0 < seconds < 60 for seconds in choice.measured.values())


class SleepingModel(keras.Model):
    """A model whose every training step sleeps ``seconds`` (through Python, so also under tf.function)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.dense = keras.layers.Dense(1)

    def call(self, inputs):
        return self.dense(inputs)

    def train_step(self, data):
        import time

        tf.py_function(lambda: time.sleep(self.seconds), [], [])
        return {"steps": tf.constant(1.0)}


@pytest.mark.parametrize("steps_per_execution", [1, 3])
def test_fit_probe_measures_seconds_per_step_without_the_start_of_fit(steps_per_execution):
    def build():
        model = SleepingModel(0.05)
        model.compile(steps_per_execution=steps_per_execution)
        return model

    seconds = fit_probe(build, tf.TensorSpec((None, 2), tf.float32), batch_size=2, steps=2, warmup_steps=1)
    # Counting executions as steps would give 0.15 s for 3 steps per execution; the upper bound leaves
    # room for a busy CPU.
    assert 0.05 <= seconds("float32") < 0.12


def test_fit_probe_keeps_a_generative_models_automatic_steps_per_call():
    from keras_bigml.generative import VAE

    built = []

    def build():
        vae = VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, seed=0)
        vae.compile(optimizer="adam")
        built.append(vae)
        return vae

    probe = fit_probe(build, tf.TensorSpec((None, 8, 8, 1), tf.float32), batch_size=4, steps=10, warmup_steps=3)
    assert probe("float32") > 0
    # Warming up 3 steps or timing 10 would have lowered it to 1 (a divisor of 3) or 2.
    assert built[0].steps_per_execution == 16
    assert int(built[0].optimizer.iterations) == 16 + 16 + 16  # warm-up, first execution, timed execution


def test_synthetic_batches_follow_the_spec():
    from keras_bigml.precision import _synthetic_batch

    images, labels = _synthetic_batch((tf.TensorSpec((None, 2, 2, 1), tf.float32),
                                       tf.TensorSpec((None,), tf.int32)), 5, seed=0)
    assert images.shape == (5, 2, 2, 1) and images.dtype == tf.float32 and labels.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) < 1
    assert np.array_equal(labels.numpy(), np.zeros(5, np.int32))
