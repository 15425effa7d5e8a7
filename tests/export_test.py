import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_bigml.errors import ModelFileError, UntrustedFileError
from keras_bigml.export import export_saved_model
from keras_bigml.generative import VAE

TINY = dict(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)

CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(sys.argv[1])
    inputs = np.load(sys.argv[2])
    labels = {"labels": tf.constant(inputs["labels"])} if "labels" in inputs else {}
    images, z = tf.constant(inputs["images"]), tf.constant(inputs["z"])
    out = {
        "encode": model.signatures["encode"](images=images, **labels),
        "decode": model.signatures["decode"](z=z, **labels),
        "reconstruct": model.signatures["reconstruct"](images=images, **labels),
    }
    np.savez(sys.argv[3], **{f"{k}.{n}": v.numpy() for k, d in out.items() for n, v in d.items()})
    print(json.dumps({
        "signatures": sorted(model.signatures),
        "dtypes": {f"{k}.{n}": v.dtype.name for k, d in out.items() for n, v in d.items()},
        "keras_bigml_imported": any(m.startswith("keras_bigml") for m in sys.modules),
    }))
    """
)


def run_client(tmp_path, script, *args):
    """Run ``script`` in a fresh Python process; return its last stdout line as JSON."""
    (tmp_path / "client.py").write_text(script)
    result = subprocess.run(
        [sys.executable, str(tmp_path / "client.py"), *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.large
@pytest.mark.parametrize("num_classes", [None, 3])
def test_fresh_tensorflow_process_calls_every_signature(tmp_path, num_classes):
    vae = VAE(**TINY, num_classes=num_classes, seed=0)
    export_saved_model(vae, tmp_path / "export")
    rng = np.random.default_rng(0)
    inputs = {"images": rng.random((4, 8, 8, 1), np.float32), "z": rng.standard_normal((4, 2), np.float32)}
    labels = None
    if num_classes:
        labels = np.array([0, 1, 2, 1], np.int32)
        inputs["labels"] = labels
    np.savez(tmp_path / "in.npz", **inputs)
    report = run_client(tmp_path, CLIENT, tmp_path / "export", tmp_path / "in.npz", tmp_path / "out.npz")
    assert report["signatures"] == ["decode", "encode", "reconstruct", "serving_default"]
    assert not report["keras_bigml_imported"]
    assert set(report["dtypes"].values()) == {"float32"}
    out = np.load(tmp_path / "out.npz")
    mean, log_var = vae.encode(inputs["images"], labels)
    np.testing.assert_allclose(out["encode.mean"], mean, atol=1e-5)
    np.testing.assert_allclose(out["encode.log_var"], log_var, atol=1e-5)
    np.testing.assert_allclose(out["decode.images"], vae.decode(inputs["z"], labels), atol=1e-5)
    reconstruction = out["reconstruct.images"]
    assert reconstruction.shape == (4, 8, 8, 1)
    assert reconstruction.min() >= 0.0 and reconstruction.max() <= 1.0


def test_crash_mid_write_keeps_the_previous_export(tmp_path, monkeypatch):
    import tensorflow as tf

    vae = VAE(**TINY)
    path = export_saved_model(vae, tmp_path / "export")
    before = sorted(os.listdir(path))

    def write_half_then_crash(obj, filepath, **kwargs):
        os.makedirs(filepath, exist_ok=True)
        open(os.path.join(filepath, "saved_model.pb"), "w").write("partial")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", write_half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(vae, path)
    assert sorted(os.listdir(path)) == before
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_model_without_signatures_is_refused(tmp_path):
    import keras

    from keras_bigml.errors import ConfigError

    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match="A Sequential is not a keras_bigml generative model"):
        export_saved_model(plain, tmp_path / "x")
    assert not (tmp_path / "x").exists()


GAN_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(sys.argv[1])
    inputs = np.load(sys.argv[2])
    labels = {"labels": tf.constant(inputs["labels"])} if "labels" in inputs else {}
    images = model.signatures["generate"](z=tf.constant(inputs["z"]), **labels)["images"]
    np.save(sys.argv[3], images.numpy())
    print(json.dumps({"signatures": sorted(model.signatures), "dtype": images.dtype.name,
                      "keras_bigml_imported": any(m.startswith("keras_bigml") for m in sys.modules)}))
    """
)


@pytest.mark.large
@pytest.mark.parametrize("num_classes", [None, 10])
def test_gan_generate_signature_in_a_fresh_process(tmp_path, num_classes):
    from keras_bigml.generative import GAN

    gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
              num_classes=num_classes, seed=0)
    export_saved_model(gan, tmp_path / "export")
    inputs = {"z": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}
    if num_classes:
        inputs["labels"] = np.array([1, 5, 9], np.int32)
    np.savez(tmp_path / "in.npz", **inputs)
    report = run_client(tmp_path, GAN_CLIENT, tmp_path / "export", tmp_path / "in.npz", tmp_path / "out.npy")
    assert report == {"signatures": ["generate", "serving_default"], "dtype": "float32",
                      "keras_bigml_imported": False}
    images = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(images, gan.generate(z=inputs["z"], labels=inputs.get("labels")), atol=1e-5)
    assert images.min() >= 0.0 and images.max() <= 1.0


CYCLEGAN_CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    model = tf.saved_model.load(sys.argv[1])
    inputs = np.load(sys.argv[2])
    a_to_b = model.signatures["a_to_b"](images=tf.constant(inputs["a"]))["images"]
    b_to_a = model.signatures["b_to_a"](images=tf.constant(inputs["b"]))["images"]
    np.savez(sys.argv[3], a_to_b=a_to_b.numpy(), b_to_a=b_to_a.numpy())
    print(json.dumps({"signatures": sorted(model.signatures),
                      "dtypes": [a_to_b.dtype.name, b_to_a.dtype.name],
                      "keras_bigml_imported": any(m.startswith("keras_bigml") for m in sys.modules)}))
    """
)


@pytest.mark.large
def test_cyclegan_translation_signatures_in_a_fresh_process(tmp_path):
    from keras_bigml.generative import CycleGAN

    model = CycleGAN((8, 8, 1), (8, 8, 3), generator_filters=4, discriminator_filters=4, residual_blocks=1,
                     discriminator_layers=1, seed=0)
    export_saved_model(model, tmp_path / "export")
    rng = np.random.default_rng(0)
    inputs = {"a": rng.random((3, 8, 8, 1), np.float32), "b": rng.random((2, 8, 8, 3), np.float32)}
    np.savez(tmp_path / "in.npz", **inputs)
    report = run_client(tmp_path, CYCLEGAN_CLIENT, tmp_path / "export", tmp_path / "in.npz",
                        tmp_path / "out.npz")
    assert report == {"signatures": ["a_to_b", "b_to_a", "serving_default"], "dtypes": ["float32", "float32"],
                      "keras_bigml_imported": False}
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(out["a_to_b"], model.translate(inputs["a"], "a2b"), atol=1e-5)
    np.testing.assert_allclose(out["b_to_a"], model.translate(inputs["b"], "b2a"), atol=1e-5)
    assert out["a_to_b"].shape == (3, 8, 8, 3) and 0 <= out["a_to_b"].min() and out["a_to_b"].max() <= 1


def test_load_saved_model_names_missing_and_damaged_exports(tmp_path):
    from keras_bigml.export import load_saved_model

    vae = VAE(**TINY)
    path = export_saved_model(vae, tmp_path / "export")
    assert "decode" in load_saved_model(path).signatures
    with pytest.raises(OSError, match="holds no SavedModel"):
        load_saved_model(tmp_path / "elsewhere")
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(OSError, match="is a damaged SavedModel"):
        load_saved_model(path)
    (tmp_path / "export" / "saved_model.pb").unlink()
    with pytest.raises(OSError, match="holds no SavedModel"):
        load_saved_model(path)


def save_resource_module(path, initialize):
    """Save a tf.Module with one resource whose initializer, run by TensorFlow on load, is ``initialize``."""

    class Resource(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            initialize(self.resource_handle)

    module = tf.Module()
    module.resource = Resource()
    tf.saved_model.save(module, os.fspath(path))
    return path


def save_write_file_payload(path, marker):
    """A SavedModel that writes ``marker`` when loaded (saving traces the initializer, never runs it)."""
    save_resource_module(path, lambda handle: tf.io.write_file(os.fspath(marker), "ran at load time"))
    assert not marker.exists()
    return path


def test_plain_tensorflow_load_runs_the_payload(tmp_path):
    marker = tmp_path / "marker"
    tf.saved_model.load(os.fspath(save_write_file_payload(tmp_path / "payload", marker)))
    assert marker.read_text() == "ran at load time"


def test_saved_model_that_writes_a_file_on_load_is_refused_unless_allowed(tmp_path):
    from keras_bigml.export import load_saved_model

    marker = tmp_path / "marker"
    path = save_write_file_payload(tmp_path / "payload", marker)
    with pytest.raises(UntrustedFileError) as refusal:
        load_saved_model(path)
    assert not marker.exists()
    message = str(refusal.value)
    assert message.startswith(f"{path} is a SavedModel")
    assert "WriteFile in function __inference__initializer_" in message
    assert "allow_unsafe_ops=True" in message and "--allow-unsafe-ops" in message
    assert len(message.splitlines()) == 1
    load_saved_model(path, allow_unsafe_ops=True)
    assert marker.read_text() == "ran at load time"


def test_signature_that_prints_is_refused(tmp_path):
    from keras_bigml.export import load_saved_model, scan_saved_model

    class Shout(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
        def shout(self, x):
            tf.print("x =", x)
            return x + 1.0

    module = Shout()
    tf.saved_model.save(module, os.fspath(tmp_path / "shout"), signatures={"shout": module.shout})
    found = scan_saved_model(tmp_path / "shout")
    assert found and all(entry.startswith("PrintV2 in function __inference_shout_") for entry in found)
    with pytest.raises(UntrustedFileError, match=r"PrintV2 in function .*allow_unsafe_ops=True"):
        load_saved_model(tmp_path / "shout")
    loaded = load_saved_model(tmp_path / "shout", allow_unsafe_ops=True)
    assert float(loaded.signatures["shout"](x=tf.constant(1.0))["output_0"]) == 2.0


def test_checkpoint_op_in_an_initializer_is_flagged(tmp_path):
    from keras_bigml.export import scan_saved_model

    path = save_resource_module(tmp_path / "sm", lambda handle: tf.raw_ops.SaveV2(
        prefix=os.fspath(tmp_path / "elsewhere"), tensor_names=["x"], shape_and_slices=[""],
        tensors=[tf.constant(1.0)]))
    assert [entry.split(" in function ")[0] for entry in scan_saved_model(path)] == ["SaveV2"]
    assert "__inference__initializer_" in scan_saved_model(path)[0]


@pytest.mark.parametrize("call", ["StatefulPartitionedCall", "direct", "object graph"])
def test_saver_function_that_something_else_calls_is_flagged(tmp_path, call):
    """The saver's own checkpoint ops are accepted only while nothing else can make them run."""
    from keras_bigml.export import scan_saved_model

    path = save_resource_module(tmp_path / "sm", lambda handle: tf.raw_ops.AssignVariableOp(
        resource=handle, value=tf.constant(1.0)))
    assert scan_saved_model(path) == []
    saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    library = saved_model.meta_graphs[0].graph_def.library
    save = next(function.signature.name for function in library.function
                if function.signature.name.startswith("__inference__traced_save_"))
    initializer = next(function for function in library.function
                       if function.signature.name.startswith("__inference__initializer_"))
    if call == "object graph":
        # The resource's initializer, which TensorFlow calls while loading, becomes the save function.
        (node,) = [node for node in saved_model.meta_graphs[0].object_graph_def.nodes
                   if initializer.signature.name in node.function.concrete_functions]
        node.function.concrete_functions[:] = [save]
    elif call == "direct":
        initializer.node_def.add(name="save_again", op=save)
    else:
        initializer.node_def.add(name="save_again", op=call).attr["f"].func.name = save
    (path / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    assert scan_saved_model(path) == [f"MergeV2Checkpoints in function {save}", f"SaveV2 in function {save}"]


def test_tensorflow_1_saved_model_with_saver_nodes_passes_the_scan(tmp_path):
    from keras_bigml.export import load_saved_model, scan_saved_model

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.constant([[1.0], [2.0]]))
        session.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(os.fspath(tmp_path / "v1"))
        signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": tf.matmul(x, w)})
        builder.add_meta_graph_and_variables(session, ["serve"],
                                             signature_def_map={"serving_default": signature})
        builder.save()
    graph = saved_model_pb2.SavedModel.FromString((tmp_path / "v1" / "saved_model.pb").read_bytes())
    graph = graph.meta_graphs[0]
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= {node.op for node in graph.graph_def.node}
    assert scan_saved_model(tmp_path / "v1") == []
    served = load_saved_model(tmp_path / "v1").signatures["serving_default"](x=tf.constant([[1.0, 1.0]]))
    assert float(served["y"][0, 0]) == 3.0


def tiny_vae(num_classes):
    return VAE(**TINY, num_classes=num_classes, seed=0)


def tiny_gan(num_classes):
    from keras_bigml.generative import GAN

    return GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
               num_classes=num_classes, seed=0)


def tiny_cyclegan(num_classes):
    from keras_bigml.generative import CycleGAN

    return CycleGAN((8, 8, 1), (8, 8, 3), generator_filters=4, discriminator_filters=4, residual_blocks=1,
                    discriminator_layers=1, seed=0)


@pytest.mark.parametrize("make, num_classes", [(tiny_vae, None), (tiny_vae, 3), (tiny_gan, None),
                                               (tiny_gan, 10), (tiny_cyclegan, None)])
def test_every_export_passes_the_scan_and_loads_without_opt_in(tmp_path, make, num_classes):
    from keras_bigml.export import load_saved_model, scan_saved_model

    model = make(num_classes)
    path = export_saved_model(model, tmp_path / "export")
    assert scan_saved_model(path) == []
    signatures = sorted([*model.serving_functions(), "serving_default"])
    assert sorted(load_saved_model(path).signatures) == signatures


def test_unsafe_ops_hold_tensorflows_denylist_and_only_real_op_names():
    from tensorflow.python.framework import op_def_registry
    from tensorflow.python.tools.saved_model_cli import _OP_DENYLIST

    from keras_bigml.export import UNSAFE_OPS

    assert _OP_DENYLIST <= UNSAFE_OPS
    assert {"PyFunc", "PyFuncStateless", "EagerPyFunc", "Print", "MatchingFiles"} <= UNSAFE_OPS
    assert sorted(op for op in UNSAFE_OPS if op_def_registry.get(op) is None) == []


def test_missing_and_damaged_saved_models_raise_model_file_error(tmp_path):
    from keras_bigml.export import load_saved_model, scan_saved_model

    with pytest.raises(ModelFileError, match=r"^\S*nowhere holds no SavedModel \(no such directory\):"):
        load_saved_model(tmp_path / "nowhere")
    with pytest.raises(ModelFileError, match=r"holds no SavedModel \(no saved_model.pb\)"):
        scan_saved_model(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match=r"is a damaged SavedModel \(saved_model.pb: Error parsing"):
        load_saved_model(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"damaged SavedModel \(saved_model.pb holds no MetaGraph\)\.$"):
        load_saved_model(tmp_path, allow_unsafe_ops=True)
