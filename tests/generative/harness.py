"""The checks every generative model gets from a tiny configuration.

Modelled on keras-hub's ``TestCase.run_model_saving_test`` and friends: each
``run_*_check`` takes a ``model_factory`` (no arguments; returns a fresh, seeded
and compiled `keras_bigml.generative.base.GenerativeModel`) and a
``dataset_factory`` (no arguments; returns a ``tf.data.Dataset`` of exactly one
global batch), and talks to the model only through the generative contract:
``networks()``, ``network_optimizers()``, ``serving_functions()``,
``grid_examples()``, ``sample_grid()``, ``generate()`` and ``translate()``.

- `run_training_step_check`: one step moves every network's trainable weights
  and advances every optimizer.
- `run_saving_check`: a ``.keras`` round trip (safe mode) keeps the config, the
  compile config, the weights and every optimizer variable, and the next step
  after reloading equals the next step without.
- `run_export_check`: the SavedModel serves every signature to a fresh process
  with TensorFlow alone, with the contract's dtypes, shapes and ranges, and the
  same numbers as the model in this process.
- `run_replica_check`: one and two replicas of one global batch give the same
  weights and the same logged losses.
- `run_mixed_precision_check`: a step under a mixed policy computes the networks
  in the low precision and still logs finite float32 losses.

Each check raises AssertionError with the network, variable or signature that
broke. Tracing a generative model's ``train_step`` is what costs (seconds per
model, most of a check), so the training check returns its `Step`, and the
saving, export and replica checks can go on with that model instead of tracing
a new one.
"""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from keras_bigml.distribute import get_strategy
from keras_bigml.export import export_saved_model
from keras_bigml.generative.base import GenerativeModel, LatentGenerativeModel, TranslationModel

ModelFactory = Callable[[], GenerativeModel]
DatasetFactory = Callable[[], tf.data.Dataset]

# The inputs that exported signatures may take (DESIGN.md, "Contracts users rely on").
CONTRACT_INPUTS = {"images": (tf.float32, 4), "z": (tf.float32, 2), "labels": (tf.int32, 1)}
# Rows fed to each exported signature: not the training batch, so a fixed batch size shows up.
SERVING_ROWS = 3
EXPORT_TOLERANCE = 1e-5

# Run by a fresh interpreter: TensorFlow alone, keras_bigml and Keras blocked, so that an export
# that needed them (a registered object, a Python function) fails here as it would for a client
# without them. It reads one request (paths and signature names) as a JSON line on stdin.
CLIENT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoKerasBigml(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "keras_bigml":
                raise ModuleNotFoundError(f"{name} is blocked: this client has TensorFlow alone")
            return None

    sys.meta_path.insert(0, NoKerasBigml())
    # Keras too: TensorFlow imports it when installed, and a client need not have it.
    sys.modules["keras"] = sys.modules["tf_keras"] = None
    import numpy as np
    import tensorflow as tf

    request = json.loads(sys.stdin.readline())
    model = tf.saved_model.load(request["export"])
    inputs = np.load(request["inputs"])
    report = {"signatures": sorted(model.signatures), "inputs": {}, "outputs": {}}
    outputs = {}
    for name in request["signatures"]:
        signature = model.signatures[name]
        specs = signature.structured_input_signature[1]
        report["inputs"][name] = {key: [spec.dtype.name, spec.shape.as_list()] for key, spec in specs.items()}
        given = {key: tf.constant(inputs[f"{name}.{key}"]) for key in specs}
        for key, value in signature(**given).items():
            outputs[f"{name}.{key}"] = value.numpy()
            report["outputs"][f"{name}.{key}"] = value.dtype.name
    np.savez(request["outputs"], **outputs)
    report["keras_bigml_in_sys_modules"] = "keras_bigml" in sys.modules
    blocked = ("keras_bigml", "keras", "tf_keras")
    report["imported"] = sorted(m for m, mod in sys.modules.items() if m.split(".")[0] in blocked and mod)
    print(json.dumps(report))
    """
)


@dataclasses.dataclass
class Step:
    """One training step of a model: its weights before and after (by variable id) and its logs."""

    model: GenerativeModel
    before: dict
    after: dict
    history: dict

    def weights_after(self):
        """The model's weights after the step, as arrays in the order of ``model.weights``."""
        return [self.after[id(v)] for v in self.model.weights]


def run_training_step_check(
    model_factory: ModelFactory,
    dataset_factory: DatasetFactory,
    iterations: Mapping[str, int] | None = None,
    still: Callable[[GenerativeModel], Iterable] | None = None,
) -> Step:
    """Fit one step; every trainable variable moves and every optimizer counts its updates.

    Parameters
    ----------
    iterations : dict, optional
        Expected ``iterations`` per name of ``network_optimizers()`` after the step; 1 for
        names not given (a GAN with ``discriminator_steps=2`` updates its discriminator twice).
    still : callable, optional
        ``still(model)`` gives the trainable variables that one step leaves exactly as they
        were by design (e.g. a Wasserstein critic's output bias, whose gradient is zero): the
        check asserts that they did not move, and that every other one did.

    Returns the `Step`, whose model the other checks can go on with.
    """
    model = model_factory()
    assert isinstance(model, GenerativeModel), f"{type(model).__name__} does not declare the contract"
    networks = model.networks()
    optimizers = model.network_optimizers()
    assert networks and optimizers, "the contract needs networks() and, after compile, network_optimizers()"
    assert len({id(opt) for opt in optimizers.values()}) == len(optimizers), "two networks share an optimizer"
    for name, optimizer in optimizers.items():
        assert isinstance(optimizer, keras.optimizers.Optimizer), f"optimizer {name!r} is {optimizer!r}"
        assert int(optimizer.iterations) == 0, f"optimizer {name!r} starts at {int(optimizer.iterations)}"
    before = snapshot(model)

    history = model.fit(dataset_factory(), epochs=1, verbose=0).history

    step = Step(model, before, snapshot(model), history)
    assert set(history) == {metric.name for metric in model.metrics}, sorted(history)
    for key, values in history.items():
        assert len(values) == 1 and np.isfinite(values[0]), f"{key} logged {values}"
    expected = {name: 1 for name in optimizers} | dict(iterations or {})
    counted = {name: int(optimizer.iterations) for name, optimizer in optimizers.items()}
    assert counted == expected, f"optimizer iterations after one step: {counted}, expected {expected}"

    # Variable paths repeat across networks ("dense/bias"), so variables are told apart by identity.
    still = {id(v) for v in (still(model) if still else ())}
    trainable = {id(v) for v in model.trainable_weights}
    assert still <= trainable, "still names variables that are not trainable weights of the model"
    in_networks = {id(v) for network in networks.values() for v in network.trainable_variables}
    groups = {name: network.trainable_variables for name, network in networks.items()}
    groups["the model itself"] = [v for v in model.trainable_weights if id(v) not in in_networks]
    for name, variables in groups.items():
        assert variables or name == "the model itself", f"network {name!r} has no trainable variables"
        for variable in variables:
            assert id(variable) in trainable, f"{variable.path} of {name!r} is not among the model's weights"
            moved = not np.array_equal(before[id(variable)], step.after[id(variable)])
            assert np.isfinite(step.after[id(variable)]).all(), f"{variable.path} of {name!r} is not finite"
            if id(variable) in still:
                assert not moved, f"{variable.path} of {name!r} moved although still names it"
            else:
                assert moved, f"one step left {variable.path} of {name!r} unchanged"
    return step


def run_saving_check(
    model_factory: ModelFactory,
    dataset_factory: DatasetFactory,
    directory,
    trained: GenerativeModel | None = None,
    seed: int = 0,
) -> GenerativeModel:
    """Save a trained model as ``.keras``, load it in safe mode, and compare all that resumes a run.

    The loaded model must have the same class, config and compile config, the same
    weights and, per network, an optimizer of the same class and config with the same
    variables (slots included). Then both take one more step on the same batch from the
    same global seed and must end with the same weights and logs: a dropped optimizer
    slot, noise state or pool would make them differ.

    ``trained`` is a model from ``model_factory`` that has taken a step already (e.g.
    `Step.model`); by default the check makes one and fits it one step. It takes the
    further step. Returns the loaded model.
    """
    dataset = dataset_factory()
    model = trained
    if model is None:
        model = model_factory()
        model.fit(dataset, epochs=1, verbose=0)
    path = os.path.join(os.fspath(directory), f"{model.kind}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}, saved a {type(model).__name__}"
    assert loaded.get_config() == model.get_config()
    assert model.get_compile_config(), "the model keeps no compile config, so nothing restores its optimizers"
    assert loaded.get_compile_config() == model.get_compile_config()
    assert_same_variables(model.weights, loaded.weights, "weights", atol=0.0)
    mine, theirs = model.network_optimizers(), loaded.network_optimizers()
    assert sorted(theirs) == sorted(mine), f"optimizers {sorted(theirs)} after loading, {sorted(mine)} before"
    for name, optimizer in mine.items():
        restored = theirs[name]
        assert type(restored) is type(optimizer), f"optimizer {name!r}: {type(restored).__name__}"
        assert restored.get_config() == optimizer.get_config(), f"optimizer {name!r} config differs"
        assert int(optimizer.iterations) > 0, f"optimizer {name!r} has taken no step: nothing to compare"
        # More than iterations and learning rate: the slots that make a resumed run continue.
        assert len(optimizer.variables) > 2, f"optimizer {name!r} holds {len(optimizer.variables)} variables"
        assert_same_variables(optimizer.variables, restored.variables, f"optimizer {name!r}", atol=0.0)

    keras.utils.set_random_seed(seed)
    continued = model.fit(dataset, epochs=1, verbose=0).history
    keras.utils.set_random_seed(seed)
    resumed = loaded.fit(dataset, epochs=1, verbose=0).history
    assert_same_variables(model.weights, loaded.weights, "weights after one more step", atol=1e-6)
    assert sorted(resumed) == sorted(continued)
    for key, values in continued.items():
        np.testing.assert_allclose(resumed[key], values, rtol=1e-6,
                                   err_msg=f"{key} of the step after loading")
    return loaded


def run_export_check(
    model_factory: ModelFactory,
    dataset_factory: DatasetFactory,
    directory,
    trained: GenerativeModel | None = None,
    client: subprocess.Popen | None = None,
) -> dict:
    """Export a trained model and call every signature in a fresh process with TensorFlow alone.

    Inputs follow the contract (float32 NHWC images in [0, 1], float32 latent vectors
    ``z``, int32 ``labels``, any batch size); every output is float32 with one row per
    input row, ``images`` outputs have the model's image shape and lie in [0, 1], and
    all equal this process's within 1e-5: the serving function's own output, and also
    ``generate(z=..., labels=...)`` for signatures that take ``z`` and
    ``translate(images, direction)`` for the translation signatures. The client
    blocks ``import keras_bigml`` (and Keras) and reports that neither got loaded.

    ``trained`` is a model from ``model_factory`` that has taken a step (a fresh one
    would hide e.g. an export of raw weights instead of their moving average); by
    default the check makes one and fits it one step. ``client`` is one from
    `start_client`, started earlier so that its TensorFlow import (seconds) overlaps
    with other work; by default the check starts one. Either way it serves this one
    export and ends. Returns the client's report.
    """
    # Started before the export, at the latest, so that its TensorFlow import overlaps with it.
    client = client or start_client(directory)
    try:
        model = trained
        if model is None:
            model = model_factory()
            model.fit(dataset_factory(), epochs=1, verbose=0)
        functions = model.serving_functions()
        assert functions, "serving_functions() is empty"
        rng = np.random.default_rng(0)
        inputs = {name: contract_inputs(model, specs, rng) for name, (_, specs) in functions.items()}
        expected = {name: in_process_outputs(model, name, function, inputs[name])
                    for name, (function, _) in functions.items()}
        # The first signature also serves as serving_default (keras_bigml.export).
        first = next(iter(functions))
        inputs["serving_default"], expected["serving_default"] = inputs[first], expected[first]
        served_by = {name: name for name in functions} | {"serving_default": first}
        export = export_saved_model(model, os.path.join(os.fspath(directory), "export"))
        report, served = call_client(client, directory, export, inputs)
    finally:
        stop_client(client)

    assert not report["keras_bigml_in_sys_modules"] and report["imported"] == [], report
    exported = report["signatures"]
    assert exported == sorted(inputs), f"exported {exported}, declared {sorted(inputs)}"
    for name, given in inputs.items():
        specs = report["inputs"][name]
        assert sorted(specs) == sorted(given), f"{name} takes {sorted(specs)}"
        for key, (dtype, shape) in specs.items():
            declared = (CONTRACT_INPUTS[key][0].name, CONTRACT_INPUTS[key][1], None)
            assert (dtype, len(shape), shape[0]) == declared, f"{name}({key}) is exported as {dtype}{shape}"
        outputs = served[name]
        assert sorted(outputs) == sorted(expected[name]), f"{name} returns {sorted(outputs)}"
        for key, value in outputs.items():
            assert report["outputs"][f"{name}.{key}"] == "float32", f"{name} returns {key} as {value.dtype}"
            assert value.shape[0] == SERVING_ROWS and np.isfinite(value).all(), f"{name}: {key} {value.shape}"
            if key == "images":
                shape = image_shape_of(model, served_by[name])
                assert value.shape[1:] == shape, f"{name} returns images of shape {value.shape}, not {shape}"
                assert value.min() >= 0.0 and value.max() <= 1.0, f"{name} images outside [0, 1]"
            for source, reference in expected[name][key].items():
                np.testing.assert_allclose(value, reference, atol=EXPORT_TOLERANCE,
                                           err_msg=f"{name}: served {key} against {source}")
    return report


def run_replica_check(
    model_factory: ModelFactory,
    dataset_factory: DatasetFactory,
    devices,
    one_replica: Step | None = None,
    seed: int = 1,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> GenerativeModel:
    """One step on one global batch with one replica and with two (MirroredStrategy over ``devices``).

    Both runs build the model under their strategy after ``keras.utils.set_random_seed(seed)``;
    their weights must agree within ``atol`` and their logged losses within ``rtol``, and the
    step must move every network by far more than ``atol``, so that agreement is not
    that of two untouched copies. Give the factory SGD optimizers: Adam's first step
    moves every weight by its learning rate whatever the gradient's scale, and would
    hide a gradient summed instead of averaged over the replicas.

    ``one_replica`` is the `Step` of a model built that way without a strategy (e.g. from
    `run_training_step_check`), to reuse instead of training another. Returns the
    two-replica model.
    """
    if one_replica is None:
        keras.utils.set_random_seed(seed)
        one_replica = run_step(model_factory, dataset_factory)
    assert one_replica.model.distribute_strategy.num_replicas_in_sync == 1
    with get_strategy("mirrored", devices).scope():
        keras.utils.set_random_seed(seed)
        two = model_factory()
    two_logs = two.fit(dataset_factory(), epochs=1, verbose=0).history
    assert two.distribute_strategy.num_replicas_in_sync == 2
    weights = [np.array(v) for v in two.weights]
    assert_same_arrays(one_replica.weights_after(), weights, "weights of one and two replicas", atol=atol)
    for name, network in one_replica.model.networks().items():
        moves = [np.abs(one_replica.after[id(v)] - one_replica.before[id(v)]).max()
                 for v in network.trainable_variables]
        assert max(moves) > 100 * atol, f"network {name!r} moved {max(moves):.2g} at most, too little to tell"
    assert sorted(two_logs) == sorted(one_replica.history)
    for key, values in one_replica.history.items():
        np.testing.assert_allclose(two_logs[key], values, rtol=rtol, err_msg=f"{key} of two replicas")
    return two


def run_mixed_precision_check(
    model_factory: ModelFactory, dataset_factory: DatasetFactory
) -> GenerativeModel:
    """One step under the current global mixed policy (e.g. the ``mixed_bfloat16`` fixture).

    Every network must compute some layers in the policy's compute dtype and keep
    float32 variables; every value ``train_step`` returns must be a finite float32
    tensor; the weights must stay finite; and the epoch grid (`grid_examples`, then
    `sample_grid`) must still be float32 images in [0, 1].

    Returns the trained model.
    """
    policy = keras.config.dtype_policy()
    assert policy.compute_dtype != policy.variable_dtype, f"run under a mixed policy, not {policy.name}"
    model = model_factory()
    for name, network in model.networks().items():
        computing = {layer.compute_dtype for layer in network.layers if layer.weights}
        assert policy.compute_dtype in computing, f"network {name!r} computes in {sorted(computing)}"
        dtypes = {v.dtype for v in network.trainable_variables}
        assert dtypes == {policy.variable_dtype}, f"network {name!r} keeps {sorted(dtypes)} variables"

    returned = {}
    train_step = model.train_step

    def recording_train_step(data):
        logs = train_step(data)
        returned.update({key: keras.backend.standardize_dtype(value.dtype) for key, value in logs.items()})
        return logs

    # Seen by fit's traced step: the dtypes of what train_step returns, before Keras turns them to floats.
    model.train_step = recording_train_step
    dataset = dataset_factory()
    history = model.fit(dataset, epochs=1, verbose=0).history
    assert returned and set(returned) == set(history), f"train_step returned {sorted(returned)}"
    assert set(returned.values()) == {"float32"}, f"train_step returned {returned}"
    for key, values in history.items():
        assert np.isfinite(values[0]), f"{key} is {values[0]} under {policy.name}"
    for variable in model.weights:
        if keras.backend.is_float_dtype(variable.dtype):
            assert np.isfinite(np.array(variable, dtype=np.float32)).all(), f"{variable.path} is not finite"

    images, _ = model.sample_grid(model.grid_examples(dataset), num_images=4, seed=0)
    assert images.dtype == np.float32, f"sample_grid gives {images.dtype} under {policy.name}"
    assert images.ndim == 4 and len(images) and np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0
    return model


def run_step(model_factory, dataset_factory):
    """Make a model and fit it one step; return the `Step`."""
    model = model_factory()
    before = snapshot(model)
    history = model.fit(dataset_factory(), epochs=1, verbose=0).history
    return Step(model, before, snapshot(model), history)


def snapshot(model):
    """The values of all of ``model``'s weights, by variable id."""
    return {id(v): np.array(v) for v in model.weights}


def assert_same_variables(first, second, what, atol):
    """Two lists of variables hold the same shapes and values (within ``atol``), in order.

    Paths are not compared: a reloaded or second model numbers its layers' names anew.
    """
    assert_same_arrays([np.array(v) for v in first], [np.array(v) for v in second], what, atol)


def assert_same_arrays(first, second, what, atol):
    """Two lists of arrays of the same shapes and values (within ``atol``, exactly for 0)."""
    assert len(second) == len(first), f"{what}: {len(second)} variables, expected {len(first)}"
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        message = f"{what}: variable {index}"
        assert a.shape == b.shape, f"{message} has shape {b.shape}, expected {a.shape}"
        if atol:
            np.testing.assert_allclose(b, a, rtol=0, atol=atol, err_msg=message)
        else:
            np.testing.assert_array_equal(b, a, err_msg=message)


def start_client(directory) -> subprocess.Popen:
    """Start a TensorFlow-only client in ``directory``; it imports TensorFlow, then waits for one request."""
    script = os.path.join(os.fspath(directory), "client.py")
    with open(script, "w") as file:
        file.write(CLIENT)
    return subprocess.Popen(
        [sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=os.fspath(directory), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def stop_client(client):
    """End a client that has not answered (or reap one that has)."""
    client.kill()
    client.communicate()


def call_client(client, directory, export, inputs):
    """Have the client load ``export`` and call each signature on ``inputs``; return its report and outputs.

    Outputs come back as ``{signature: {output: array}}``.
    """
    directory = os.fspath(directory)
    request = {"export": export, "inputs": os.path.join(directory, "inputs.npz"),
               "outputs": os.path.join(directory, "outputs.npz"), "signatures": sorted(inputs)}
    np.savez(request["inputs"], **{f"{name}.{key}": value for name, given in inputs.items()
                                   for key, value in given.items()})
    stdout, stderr = client.communicate(json.dumps(request) + "\n", timeout=300)
    assert client.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    outputs = {}
    with np.load(request["outputs"]) as served:
        for key in served.files:
            name, output = key.split(".", 1)
            outputs.setdefault(name, {})[output] = served[key]
    return report, outputs


def contract_inputs(model, specs, rng):
    """Arrays for one signature's ``specs``: images uniform in [0, 1], ``z`` normal, labels cycling."""
    given = {}
    for spec in specs:
        assert spec.name in CONTRACT_INPUTS, f"signature input {spec.name!r} is not one the contract allows"
        dtype, rank = CONTRACT_INPUTS[spec.name]
        assert spec.dtype == dtype and spec.shape.rank == rank and spec.shape[0] is None, (
            f"input {spec.name!r} is declared as {spec!r}"
        )
        shape = (SERVING_ROWS, *spec.shape[1:])
        if spec.name == "images":
            given["images"] = rng.random(shape, np.float32)
        elif spec.name == "z":
            width = spec.shape[1]
            assert width == model.latent_dim, f"z of width {width}, latent_dim {model.latent_dim}"
            given["z"] = rng.standard_normal(shape, np.float32)
        else:
            assert model.num_classes, f"an unconditional {model.kind} model's signature takes labels"
            given["labels"] = (np.arange(SERVING_ROWS) % model.num_classes).astype(np.int32)
    return given


def in_process_outputs(model, name, function, given):
    """What the signature should return: ``{output: {source: array}}`` from this process."""
    outputs = function(**{key: tf.constant(value) for key, value in given.items()})
    expected = {key: {"the serving function": np.array(value)} for key, value in outputs.items()}
    if isinstance(model, LatentGenerativeModel) and "z" in given:
        assert "images" in expected, f"{name} takes z but returns no images"
        expected["images"]["generate"] = model.generate(z=given["z"], labels=given.get("labels"))
    if isinstance(model, TranslationModel):
        direction = translation_direction(model, name)
        assert "images" in expected, f"{name} returns no images"
        expected["images"]["translate"] = model.translate(given["images"], direction)
    return expected


def translation_direction(model, name):
    """The direction (``a2b``) that the signature ``name`` (``a_to_b``) serves."""
    directions = {direction.replace("2", "_to_"): direction for direction in model.directions}
    assert name in directions, f"{name} serves none of the directions {model.directions}"
    return directions[name]


def image_shape_of(model, name):
    """The shape of the images that signature ``name`` returns."""
    if isinstance(model, TranslationModel):
        reverse = translation_direction(model, name)[::-1]
        return model.input_shape_of(reverse)
    return tuple(model.image_shape)
