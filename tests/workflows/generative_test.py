"""Training workflows: the precision each run chooses, records in run.json, and keeps on resume."""

import json

import keras
import pytest

from keras_bigml import precision
from keras_bigml.errors import ConfigError
from keras_bigml.workflows.generative import ImageSource, TrainingOptions, _precision, train_vae

TINY_VAE = {"latent_dim": 2, "filters": (8,), "hidden_units": 16}
DIGITS = ImageSource("digits", limit=32, image_size=8)


def options(**changes):
    return TrainingOptions(**{"epochs": 1, "batch_size": 16, "verbose": 0, "seed": 0, **changes})


def run_json(run_dir):
    with open(run_dir / "run.json") as file:
        return json.load(file)


@pytest.fixture
def bfloat16_cpu(monkeypatch):
    """A CPU with AMX, as choose_precision sees it, and no GPU."""
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: frozenset({"amx_bf16", "avx2"}))
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [])


def test_auto_on_a_cpu_without_bfloat16_trains_float32_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: frozenset({"avx2"}))
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [])
    result = train_vae(tmp_path / "run", DIGITS, options(), **TINY_VAE)
    recorded = run_json(tmp_path / "run")["precision"]
    assert recorded["policy"] == "float32" and recorded["measured"] == {}
    assert "neither AMX nor AVX512_BF16" in recorded["reason"]
    assert result.precision.policy == "float32" and result.model.dtype_policy.name == "float32"


def test_auto_probes_both_policies_where_the_cpu_has_bfloat16(tmp_path, bfloat16_cpu):
    """The real probe times the run's own model under each policy and records both timings."""
    train_vae(tmp_path / "run", DIGITS, options(), **TINY_VAE)
    recorded = run_json(tmp_path / "run")["precision"]
    assert set(recorded["measured"]) == {"float32", "mixed_bfloat16"}
    assert all(seconds > 0 for seconds in recorded["measured"].values())
    assert "AMX" in recorded["reason"]


def test_a_faster_bfloat16_probe_trains_in_mixed_bfloat16_and_restores_the_global_policy(
        tmp_path, bfloat16_cpu, monkeypatch):
    timings = {"float32": 0.2, "mixed_bfloat16": 0.1}
    monkeypatch.setattr(precision, "fit_probe", lambda *args, **kwargs: timings.__getitem__)
    result = train_vae(tmp_path / "run", DIGITS, options(), **TINY_VAE)
    assert result.model.dtype_policy.name == "mixed_bfloat16"
    assert run_json(tmp_path / "run")["precision"] == {
        "policy": "mixed_bfloat16", "reason": "mixed_bfloat16: 2.00x the speed of float32 measured on this CPU (AMX).",
        "measured": timings}
    assert keras.mixed_precision.global_policy().name == "float32"


def test_a_resumed_run_keeps_the_precision_it_started_with(tmp_path, bfloat16_cpu, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    started = {"policy": "mixed_bfloat16", "reason": "mixed_bfloat16: 1.50x ...", "measured": {"float32": 0.3}}
    (run_dir / "run.json").write_text(json.dumps({"kind": "vae", "status": "failed", "precision": started}))

    def no_probe(*args, **kwargs):
        raise AssertionError("a resumed run must not probe again")

    monkeypatch.setattr(precision, "fit_probe", no_probe)
    choice = _precision(build=None, dataset=None, out_dir=run_dir, options=options(), resume=True)
    assert choice.to_dict() == started


def test_an_unknown_precision_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        train_vae(tmp_path / "run", DIGITS, options(precision="bfloat16"), **TINY_VAE)
    assert not (tmp_path / "run").exists()


def test_generated_shards_hold_every_sample_with_its_label_batch_by_batch(tmp_path):
    import numpy as np

    from keras_bigml.data import load_images
    from keras_bigml.generative import GAN
    from keras_bigml.generative.sampling import latent_vectors
    from keras_bigml.workflows.generative import generate_images

    gan = GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,),
              num_classes=10, seed=0)
    gan.save(tmp_path / "gan.keras")
    result = generate_images(tmp_path / "gan.keras", tmp_path / "samples", n=70, format="shards", batch_size=32,
                             seed=5)
    assert result.count == 70
    images, labels = next(iter(load_images(str(tmp_path / "samples"), labels=True, batch_size=100,
                                           shuffle=False)))
    assert len(images) == 70 and sorted(labels.numpy().tolist()) == sorted(np.arange(70) % 10)
    first_seed = np.random.SeedSequence(5).spawn(3)[0]
    expected = gan.generate(z=latent_vectors(32, 4, first_seed), labels=np.arange(32) % 10)
    # Records go to the shards in turn, so compare (label, image) pairs rather than positions.
    written = {(label, image.tobytes()) for label, image in zip(labels.numpy(), np.round(images.numpy() * 255))}
    for label, image in zip(np.arange(32) % 10, np.round(expected * 255)):
        assert (label, image.astype(np.float32).tobytes()) in written


def test_translations_go_to_shards_in_input_order(tmp_path):
    import numpy as np

    from keras_bigml.data import load_images
    from keras_bigml.generative import CycleGAN
    from keras_bigml.workflows.generative import translate_images

    model = CycleGAN((8, 8, 1), (8, 8, 3), generator_filters=4, discriminator_filters=4, downsamplings=1,
                     residual_blocks=1, discriminator_layers=1, seed=0)
    model.save(tmp_path / "cyclegan.keras")
    result = translate_images(tmp_path / "cyclegan.keras", "digits", tmp_path / "translated", limit=20,
                              batch_size=8, format="shards")
    assert result.count == 20 and result.grid == str(tmp_path / "translated-grid.png")
    assert (tmp_path / "translated-grid.png").exists()
    inputs = next(iter(load_images("digits", split="test", limit=20, batch_size=20, shuffle=False)))
    expected = model.translate(inputs.numpy(), "a2b")
    read = next(iter(load_images(str(tmp_path / "translated"), batch_size=20, shuffle=False))).numpy()
    assert read.shape == (20, 8, 8, 3)
    # Records go to the shards in turn: compare the uint8 images as sorted lists.
    as_bytes = lambda batch: sorted(np.round(image * 255).astype(np.uint8).tobytes() for image in batch)
    assert as_bytes(read) == as_bytes(expected)
    with pytest.raises(ConfigError, match="format"):
        translate_images(tmp_path / "cyclegan.keras", "digits", tmp_path / "x", format="jpeg")
