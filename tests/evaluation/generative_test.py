import math

import keras
import numpy as np
import pytest

from keras_bigml.data import load_images
from keras_bigml.errors import ConfigError, DataError
from keras_bigml.evaluation.generative import (
    INCEPTION_FEATURES,
    FeatureStatistics,
    classifier_outputs,
    classifier_score,
    feature_description,
    feature_statistics,
    fid_comparability,
    frechet_distance,
    kernel_distance,
    label_agreement,
    trace_sqrt_product,
    train_classifier,
)


def test_frechet_distance_by_hand_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * [2.0, 1.0] + [1.0, -1.0]
    # |mu|^2 = 2; trace term: (1 + 4 - 2*2) + (1 + 1 - 2*1) = 1
    assert frechet_distance(a, b) == pytest.approx(3.0, abs=0.1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_trace_of_the_root_matches_scipys_matrix_root_for_covariances_that_do_not_commute():
    from scipy import linalg

    rng = np.random.default_rng(1)
    # Rank-deficient too (fewer samples than dimensions), as 2,048-d features of few images are.
    for samples in (400, 40):
        a, b = rng.normal(size=(samples, 64)), rng.normal(size=(samples, 64)) @ rng.normal(size=(64, 64))
        cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        expected = np.trace(np.real(linalg.sqrtm(cov_a @ cov_b)))
        assert trace_sqrt_product(cov_a, cov_b) == pytest.approx(expected, rel=1e-6)
        assert trace_sqrt_product(cov_b, cov_a) == pytest.approx(expected, rel=1e-6)


def test_kernel_distance_by_hand_on_tiny_sets():
    x = np.array([[0.0], [1.0]])
    y = np.array([[2.0], [3.0]])
    k = lambda p, q: (p * q + 1.0) ** 3
    expected = (2 * k(0, 1)) / 2 + (2 * k(2, 3)) / 2 - 2 * np.mean([k(a, b) for a in (0, 1) for b in (2, 3)])
    assert kernel_distance(x, y, subsets=1, subset_size=2) == pytest.approx(expected)


def test_classifier_score_by_hand():
    assert classifier_score(np.full((5, 3), 1 / 3)) == pytest.approx(1.0)
    probabilities = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    marginal = probabilities.mean(0)
    kl = [sum(p * math.log(p / m) for p, m in zip(row, marginal) if p > 0) for row in probabilities]
    assert classifier_score(probabilities) == pytest.approx(math.exp(np.mean(kl)), rel=1e-6)


def test_label_agreement_by_hand():
    assert label_agreement(np.eye(3)[[0, 1, 2, 2]], [0, 1, 2, 0]) == 0.75


@pytest.mark.large
def test_real_versus_real_is_far_below_real_versus_noise():
    images, labels = next(iter(load_images("digits", labels=True, batch_size=2000, shuffle=False)))
    images, labels = images.numpy(), labels.numpy()
    classifier = train_classifier(images[:1000], labels[:1000], epochs=8, batch_size=64)
    real_a, probabilities = classifier_outputs(classifier, images[:700])
    real_b, _ = classifier_outputs(classifier, images[700:1400])
    noise, _ = classifier_outputs(classifier, np.random.default_rng(0).random(images[:700].shape))
    assert frechet_distance(real_a, real_b) * 10 < frechet_distance(real_a, noise)
    assert kernel_distance(real_a, real_b, subset_size=300) * 10 < kernel_distance(real_a, noise, subset_size=300)
    assert label_agreement(probabilities, labels[:700]) > 0.9
    assert classifier_score(probabilities) > 5


def test_augmented_classifier_moves_training_images_only():
    images, labels = next(iter(load_images("digits", labels=True, batch_size=64, shuffle=False)))
    images = images.numpy()
    classifier = train_classifier(images, labels.numpy(), epochs=1, augment=True)
    augmentation = keras.Model(classifier.input, classifier.get_layer(index=3).output)
    assert [type(layer).__name__ for layer in classifier.layers[1:4]] == ["RandomRotation", "RandomTranslation",
                                                                          "RandomZoom"]
    np.testing.assert_allclose(augmentation(images, training=False), images, atol=1e-6)
    moved = np.abs(augmentation(images, training=True).numpy() - images).mean(axis=(1, 2, 3))
    assert np.mean(moved > 1e-3) > 0.9
    np.testing.assert_array_equal(classifier.predict(images, verbose=0), classifier.predict(images, verbose=0))


def test_vgg_classifier_stacks_normalized_convolutions_and_decays_its_rate_to_zero():
    images, labels = next(iter(load_images("digits", labels=True, batch_size=64, shuffle=False)))
    small = train_classifier(images.numpy(), labels.numpy(), epochs=1)
    assert [type(layer).__name__ for layer in small.layers] == [
        "InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense", "Dense"]
    assert all(conv.use_bias and conv.activation is keras.activations.relu for conv in small.layers[1:4:2])
    assert small.layers[6].rate == 0.3 and float(small.optimizer.learning_rate) == pytest.approx(1e-3)
    vgg = train_classifier(images.numpy(), labels.numpy(), epochs=2, batch_size=24, architecture="vgg")
    kinds = [type(layer).__name__ for layer in vgg.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("BatchNormalization") == 4
    # 64 images in batches of 24 are 3 steps an epoch: the rate falls to zero at the last of the 6 steps.
    schedule = vgg.optimizer._learning_rate
    assert vgg.optimizer.iterations.numpy() == 6
    assert float(schedule(5)) > 0 and float(vgg.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert vgg.get_layer("features").output.shape == (None, 128)
    with pytest.raises(ConfigError, match="Unknown classifier architecture 'resnet'"):
        train_classifier(images.numpy(), labels.numpy(), architecture="resnet")
    with pytest.raises(ConfigError, match="epochs must be a whole number of at least 1, got 0"):
        train_classifier(images.numpy(), labels.numpy(), epochs=0, architecture="vgg")


def test_feature_sets_must_match():
    with pytest.raises(ValueError, match="same d"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="at least two samples"):
        kernel_distance(np.zeros((1, 2)), np.zeros((5, 2)))


@pytest.mark.large
def test_generator_report_of_a_copying_generator_matches_real_data():
    from keras_bigml.data import load_images
    from keras_bigml.evaluation import generator_report

    images, labels = next(iter(load_images("digits", split="all", labels=True, batch_size=2000, shuffle=False)))
    images, labels = images.numpy(), labels.numpy()
    classifier = train_classifier(images[:1000], labels[:1000], epochs=20)

    class Copier:  # "generates" held-out real images of the requested class
        num_classes, latent_dim = 10, 2

        def generate(self, z, labels):
            pool = [images[1400:][labels_all == c] for c in range(10)]
            return np.stack([pool[c][i % len(pool[c])] for i, c in enumerate(labels)])

    labels_all = labels[1400:]
    report = generator_report(Copier(), classifier, images[:700], images[700:1400], num_samples=390)
    assert report["label_agreement"] > 0.8
    assert report["frechet_distance"] < 3 * report["real_frechet_distance"] + 1.0
    assert abs(report["classifier_score"] - report["real_classifier_score"]) < 1.5
    # The report names what its numbers were computed on, and why its Frechet distance is no published FID.
    assert report["features"] == "classifier's features layer, 128-d"
    assert report["generated_samples"] == 390 and report["real_samples"] == {"train": 700, "test": 700}
    assert report["fid_comparable"] is False
    assert "not comparable with published FIDs" in report["fid_note"]
    assert "390 generated samples" in report["fid_note"] and "700 real samples" in report["fid_note"]
    # The real splits may stream as datasets of batches: the same numbers as the arrays.
    import tensorflow as tf

    streamed = generator_report(Copier(), classifier, tf.data.Dataset.from_tensor_slices(images[:700]).batch(128),
                                tf.data.Dataset.from_tensor_slices((images[700:1400], labels[700:1400])).batch(96),
                                num_samples=390)
    assert streamed.keys() == report.keys()
    for name, value in report.items():
        if isinstance(value, float):
            assert streamed[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
        else:  # what the numbers were computed on: the real counts are counted batch by batch as streamed
            assert streamed[name] == value, name
    named = generator_report(Copier(), classifier, images[:100], images[700:820], num_samples=30,
                             features="my judge, 128-d")
    assert named["features"] == "my judge, 128-d" and named["generated_samples"] == 30
    assert named["real_samples"] == {"train": 100, "test": 120} and "computed on my judge, 128-d" in named["fid_note"]


@pytest.mark.parametrize("features, generated, real, reasons", [
    (INCEPTION_FEATURES, 10_000, 10_000, []),
    (INCEPTION_FEATURES, 50_000, 70_000, []),
    (INCEPTION_FEATURES, 9_999, 10_000, ["9,999 generated samples, fewer than 10,000"]),
    (INCEPTION_FEATURES, 10_000, 360, ["360 real samples, fewer than 10,000"]),
    ("trained classifier's penultimate layer, 128-d", 50_000, 50_000,
     ["computed on trained classifier's penultimate layer, 128-d, not pretrained Inception-v3's 2,048-d pool"]),
    ("inception_v3 pool (random weights), 2048-d", 10_000, 10_000, ["random weights"]),
    ("saved classifier judge.keras, 2048-d", 1000, 500,
     ["computed on saved classifier judge.keras", "1,000 generated samples, fewer than 10,000",
      "500 real samples, fewer than 10,000"]),
])
def test_fid_is_comparable_only_on_inception_pool_features_of_10k_images_a_side(features, generated, real,
                                                                                 reasons):
    comparable, note = fid_comparability(features, generated, real)
    assert comparable is (not reasons)
    assert "\n" not in note and note.endswith(".")
    if reasons:
        assert note.startswith("Frechet distance not comparable with published FIDs: ")
        assert all(reason in note for reason in reasons), note
        assert note.count("fewer than") == sum("fewer than" in reason for reason in reasons)
    else:
        assert note.startswith("Frechet distance comparable with published FIDs") and "not comparable" not in note
        assert f"{generated:,} generated, {real:,} real" in note


def test_stream_summary_keeps_all_features_up_to_keep_then_a_uniform_sample():
    from keras_bigml.evaluation.generative import StreamSummary

    rows = np.arange(1000, dtype=np.float64)[:, None]
    probabilities = np.full((1000, 2), 0.5)
    whole = StreamSummary(keep=1000)
    for part in np.array_split(np.arange(1000), 9):
        whole.update(rows[part], probabilities[part])
    np.testing.assert_array_equal(whole.features, rows)
    early = 0
    for seed in range(200):
        summary = StreamSummary(keep=50, seed=seed)
        for part in np.array_split(np.arange(1000), 13):
            summary.update(rows[part], probabilities[part], requested_labels=np.zeros(len(part)))
        kept = summary.features[:, 0]
        assert len(np.unique(kept)) == 50
        early += int(np.sum(kept < 500))
    # Uniform: half of the 10,000 kept rows from the first half of the stream (sd 50).
    assert abs(early - 5000) < 300
    assert summary.label_agreement == 1.0 and summary.classifier_score == pytest.approx(1.0)


@pytest.mark.large
def test_inception_features_for_small_grayscale_images_and_missing_weights(tmp_path):
    from keras_bigml.evaluation import inception_classifier

    model = inception_classifier(None, (16, 16, 1))
    features, probabilities = classifier_outputs(model, np.random.default_rng(0).random((2, 16, 16, 1)))
    assert features.shape == (2, 2048) and probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    # Random weights are not the FID's features, whatever the sample counts.
    assert feature_description(model) == "inception_v3 pool (random weights), 2048-d"
    assert fid_comparability(feature_description(model), 50_000, 50_000)[0] is False
    with pytest.raises(FileNotFoundError, match="No Inception-v3 weights"):
        inception_classifier(str(tmp_path / "missing.h5"))


class TestStreamingFrechet:
    def test_statistics_updated_batch_by_batch_equal_the_whole_set(self):
        rng = np.random.default_rng(0)
        features = rng.normal(size=(3001, 6)) @ rng.normal(size=(6, 6))
        stats = FeatureStatistics()
        for batch in np.array_split(features, [1, 17, 500, 501, 2000]):  # uneven batches, one of a single row
            stats.update(batch)
        assert stats.count == 3001
        np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-10, atol=1e-12)

    def test_streaming_frechet_distance_equals_the_batch_one(self):
        rng = np.random.default_rng(1)
        a = rng.normal(size=(2000, 8))
        b = rng.normal(size=(1500, 8)) * 1.5 + 0.3
        whole = frechet_distance(a, b)
        streamed = [FeatureStatistics(), FeatureStatistics()]
        for side, features in zip(streamed, (a, b), strict=True):
            for batch in np.array_split(features, 13):
                side.update(batch)
        assert frechet_distance(*streamed) == pytest.approx(whole, rel=1e-9)
        assert frechet_distance(streamed[0], b) == pytest.approx(whole, rel=1e-9)  # mixed: stats and array

    def test_merge_combines_statistics_gathered_apart(self):
        rng = np.random.default_rng(2)
        features = rng.normal(size=(900, 4)) + 5.0
        parts = [FeatureStatistics.from_features(part) for part in np.array_split(features, 3)]
        merged = parts[0].merge(parts[1]).merge(parts[2]).merge(FeatureStatistics())
        np.testing.assert_allclose(merged.covariance, np.cov(features, rowvar=False), rtol=1e-10)

    def test_features_far_from_zero_keep_their_covariance(self):
        # Raw sums of squares lose all precision here: 1e8 squared against a variance of 1e-2.
        rng = np.random.default_rng(3)
        features = 1e8 + rng.normal(scale=0.1, size=(4000, 3))
        stats = FeatureStatistics()
        for batch in np.array_split(features, 40):
            stats.update(batch)
        np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-6)

    @pytest.mark.large
    def test_classifier_features_stream_from_a_dataset(self):
        images, labels = next(iter(load_images("digits", labels=True, batch_size=2000, shuffle=False)))
        classifier = train_classifier(images.numpy()[:300], labels.numpy()[:300], epochs=1)
        features, _ = classifier_outputs(classifier, images.numpy())
        batches = load_images("digits", labels=True, batch_size=128, shuffle=False)
        stats = feature_statistics(classifier, batches)
        assert stats.count == len(images)
        np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-5, atol=1e-6)
        half = feature_statistics(classifier, images.numpy()[:700], batch_size=100)
        expected = frechet_distance(features[:700], features)
        assert frechet_distance(half, stats) == pytest.approx(expected, rel=1e-4)

    def test_bad_shapes_are_refused(self):
        stats = FeatureStatistics().update(np.zeros((3, 2)))
        with pytest.raises(DataError, match=r"expected features shaped \(n, 2\), got \(3, 5\)"):
            stats.update(np.zeros((3, 5)))
        with pytest.raises(DataError, match="at least two"):
            frechet_distance(FeatureStatistics().update(np.zeros((1, 2))), np.zeros((4, 2)))
        with pytest.raises(DataError, match="same d"):
            frechet_distance(stats, np.zeros((4, 3)))


@pytest.mark.large
def test_inception_from_a_weights_file_gives_the_fid_features(tmp_path):
    """A weights file in the layout of Keras's Inception-v3 .h5 (here random weights, saved) makes FID features."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from keras_bigml.evaluation import inception_classifier

    source = keras.applications.InceptionV3(weights=None, input_shape=(75, 75, 3))
    with h5py.File(tmp_path / "inception.h5", "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, source)
    model = inception_classifier(str(tmp_path / "inception.h5"), (16, 16, 1))
    for loaded, saved in zip(model.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)
    assert feature_description(model) == INCEPTION_FEATURES == "inception_v3 pool, 2048-d"
    assert fid_comparability(feature_description(model), 10_000, 10_000)[0] is True
    assert fid_comparability(feature_description(model), 1_000, 10_000)[0] is False
