import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

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
    with pytest.raises(TypeError, match="no serving_functions"):
        export_saved_model(object(), tmp_path / "x")


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
    print(json.dumps({"signatures": sorted(model.signatures), "dtypes": [a_to_b.dtype.name, b_to_a.dtype.name],
                      "keras_bigml_imported": any(m.startswith("keras_bigml") for m in sys.modules)}))
    """
)


def test_cyclegan_translation_signatures_in_a_fresh_process(tmp_path):
    from keras_bigml.generative import CycleGAN

    model = CycleGAN((8, 8, 1), (8, 8, 3), generator_filters=4, discriminator_filters=4, residual_blocks=1,
                     discriminator_layers=1, seed=0)
    export_saved_model(model, tmp_path / "export")
    rng = np.random.default_rng(0)
    inputs = {"a": rng.random((3, 8, 8, 1), np.float32), "b": rng.random((2, 8, 8, 3), np.float32)}
    np.savez(tmp_path / "in.npz", **inputs)
    report = run_client(tmp_path, CYCLEGAN_CLIENT, tmp_path / "export", tmp_path / "in.npz", tmp_path / "out.npz")
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
