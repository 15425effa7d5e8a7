import os

import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_bigml.errors import ModelFileError, UntrustedFileError
from keras_bigml.export import export_saved_model
from keras_bigml.generative import VAE

TINY = dict(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16)


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


@pytest.mark.large
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


def tiny_pixel_vae(num_classes):
    return VAE(**TINY, num_classes=num_classes, pixelcnn_layers=1, seed=0)


def tiny_gan_with_its_own_networks(num_classes):
    from keras_bigml.generative import GAN
    from keras_bigml.generative.networks import dcgan_discriminator, dcgan_generator

    return GAN(image_shape=(8, 8, 1), latent_dim=4, generator=dcgan_generator(4, (8, 8, 1), (8,)),
               discriminator=dcgan_discriminator((8, 8, 1), (8,)), seed=0)


@pytest.mark.large
@pytest.mark.parametrize("make", [tiny_pixel_vae, tiny_gan, tiny_gan_with_its_own_networks, tiny_cyclegan])
def test_a_mixed_precision_model_exports_a_float32_graph_with_its_weights(tmp_path, make, mixed_bfloat16):
    import numpy as np

    from keras_bigml.export import float32_copy

    model = make(None)
    copy = float32_copy(model)   # under the mixed policy still, as right after training
    assert {layer.compute_dtype for layer in copy._flatten_layers()} == {"float32"}
    assert [w.shape for w in copy.weights] == [w.shape for w in model.weights]
    for ours, theirs in zip(copy.weights, model.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    path = export_saved_model(model, tmp_path / "export")
    graph = saved_model_pb2.SavedModel.FromString((tmp_path / "export" / "saved_model.pb").read_bytes())
    dtypes = {attr.type for function in graph.meta_graphs[0].graph_def.library.function
              for node in function.node_def for attr in node.attr.values()}
    assert tf.bfloat16.as_datatype_enum not in dtypes
    assert tf.saved_model.load(path).signatures   # and it serves
