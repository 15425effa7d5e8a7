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


@pytest.mark.large
def test_auto_on_a_cpu_without_bfloat16_trains_float32_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: frozenset({"avx2"}))
    monkeypatch.setattr(precision, "gpu_compute_capabilities", lambda: [])
    result = train_vae(tmp_path / "run", DIGITS, options(), **TINY_VAE)
    recorded = run_json(tmp_path / "run")["precision"]
    assert recorded["policy"] == "float32" and recorded["measured"] == {}
    assert "neither AMX nor AVX512_BF16" in recorded["reason"]
    assert result.precision.policy == "float32" and result.model.dtype_policy.name == "float32"


@pytest.mark.large
def test_auto_probes_both_policies_where_the_cpu_has_bfloat16(tmp_path, bfloat16_cpu):
    """The real probe times the run's own model under each policy and records both timings."""
    train_vae(tmp_path / "run", DIGITS, options(), **TINY_VAE)
    recorded = run_json(tmp_path / "run")["precision"]
    assert set(recorded["measured"]) == {"float32", "mixed_bfloat16"}
    assert all(seconds > 0 for seconds in recorded["measured"].values())
    assert "AMX" in recorded["reason"]


@pytest.mark.large
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


def test_a_teacher_architecture_needs_a_teacher_to_train(tmp_path):
    from keras_bigml.workflows.generative import train_cyclegan

    with pytest.raises(ConfigError, match="semantic_architecture is the CNN that semantic_labels trains"):
        train_cyclegan(tmp_path / "run", DIGITS, DIGITS, options(), semantic_architecture="vgg")
    with pytest.raises(ConfigError, match="Unknown semantic_architecture 'wide'"):
        train_cyclegan(tmp_path / "run", DIGITS, DIGITS, options(), semantic_labels=True,
                       semantic_architecture="wide")
    assert not (tmp_path / "run").exists()


def test_an_unknown_precision_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        train_vae(tmp_path / "run", DIGITS, options(precision="bfloat16"), **TINY_VAE)
    assert not (tmp_path / "run").exists()


@pytest.mark.large
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


def test_evaluation_defaults_to_the_10k_samples_published_fids_use():
    import inspect

    from keras_bigml.cli import build_parser
    from keras_bigml.workflows.generative import evaluate_run

    assert inspect.signature(evaluate_run).parameters["n"].default == 10_000
    assert build_parser().parse_args(["evaluate", "run", "--data", "digits"]).n == 10_000


@pytest.mark.large
def test_evaluate_names_its_features_and_sample_counts_and_says_its_fid_is_not_comparable(tmp_path, capsys):
    import numpy as np

    from keras_bigml.cli import main
    from keras_bigml.generative import GAN
    from keras_bigml.workflows.generative import evaluate_run

    run = tmp_path / "run"
    run.mkdir()
    GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,), discriminator_filters=(8,), num_classes=10,
        seed=0).save(run / "model.keras")  # an untrained model is enough to check what the metrics say
    result = evaluate_run(run, "digits", n=250, limit=300, classifier_epochs=1)
    metrics = result.metrics
    assert metrics["features"] == "trained classifier's penultimate layer, 128-d"
    assert metrics["generated_samples"] == 250 and metrics["real_samples"] == {"train": 300, "test": 300}
    assert metrics["fid_comparable"] is False
    assert "not pretrained Inception-v3's 2,048-d pool features" in metrics["fid_note"]
    assert "250 generated samples, fewer than 10,000" in metrics["fid_note"]
    assert "300 real samples, fewer than 10,000" in metrics["fid_note"]
    assert {"frechet_distance", "real_frechet_distance", "kernel_distance", "label_agreement"} <= set(metrics)
    with open(result.path) as file:
        assert json.load(file) == metrics
    page = (run / "report.html").read_text()
    assert "On trained classifier&#x27;s penultimate layer, 128-d: 250 generated, 300 real train, 300 real test" \
        in page
    assert "Frechet distance not comparable with published FIDs" in page
    assert "not comparable with published FIDs</div>" in page  # on the Frechet distance's summary tile
    # The CLI, with a saved classifier: its file name, features and counts, and the note on one line.
    judge = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16),
                              keras.layers.Dense(10, activation="softmax")])  # untrained: any classifier will do
    judge.save(tmp_path / "judge.keras")
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", "digits", "--n", "120", "--limit", "200",
                 "--classifier", str(tmp_path / "judge.keras")]) == 0
    printed = capsys.readouterr().out.splitlines()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["features"] == "saved classifier judge.keras, 16-d"
    assert "On saved classifier judge.keras, 16-d: 120 generated, 200 real train, 200 real test images." in printed
    notes = [line for line in printed if "published FIDs" in line]
    assert notes == [metrics["fid_note"]] and "120 generated samples" in notes[0]
    assert f"frechet_distance         {metrics['frechet_distance']:.4f}" in printed
    assert not any(name in line for line in printed for name in ("fid_comparable", "real_samples"))
    assert np.isfinite(metrics["frechet_distance"])
    # A classifier passed as a model is named by its Keras name.
    judge = keras.Model(judge.inputs, judge.outputs, name="judge")
    given = evaluate_run(run, "digits", n=40, limit=50, classifier=judge).metrics
    assert given["features"] == "given classifier judge, 16-d" and given["generated_samples"] == 40
