"""LiteRT and ONNX conversions run and match their originals within float32 rounding."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_bigml import conversion
from keras_bigml.classical import make_model
from keras_bigml.conversion import compare_saved_models, random_inputs, to_litert, to_onnx
from keras_bigml.data.tables import load_table
from keras_bigml.errors import ConfigError, ModelFileError
from keras_bigml.export import export_saved_model
from keras_bigml.generative import GAN, VAE, CycleGAN

# float32 arithmetic done in another order: measured differences are 1e-8 to 1e-6.
TOLERANCE = 1e-5

MODELS = {
    "cvae": lambda: VAE(image_shape=(8, 8, 1), latent_dim=2, filters=(8,), hidden_units=16, num_classes=3),
    "cgan": lambda: GAN(image_shape=(8, 8, 1), latent_dim=4, generator_filters=(8,),
                        discriminator_filters=(8,), num_classes=3),
    "cyclegan": lambda: CycleGAN((8, 8, 1), (8, 8, 1), generator_filters=4, residual_blocks=1,
                                 downsamplings=1),
}
SIGNATURES = {
    "cvae": {"encode", "decode", "reconstruct"}, "cgan": {"generate"}, "cyclegan": {"a_to_b", "b_to_a"},
}


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    return {name: export_saved_model(build(), str(folder / name)) for name, build in MODELS.items()}


def fresh_inputs(signature, seed=7):
    """Inputs the conversion's own check did not see (another seed, another batch size)."""
    return random_inputs(signature.structured_input_signature[1], 5, np.random.default_rng(seed))


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(MODELS))
def test_litert_holds_every_signature_and_matches(saved_models, tmp_path, name):
    out = tmp_path / "model.tflite"
    result = to_litert(saved_models[name], out)
    assert set(result.differences) == SIGNATURES[name] == set(result.files)
    assert 0 <= result.max_difference < TOLERANCE and result.runtime
    interpreter = conversion._litert_interpreter(out.read_bytes())[0]
    assert set(interpreter.get_signature_list()) == SIGNATURES[name]
    loaded = tf.saved_model.load(saved_models[name])
    for signature in SIGNATURES[name]:
        inputs = fresh_inputs(loaded.signatures[signature])
        expected = loaded.signatures[signature](**inputs)
        actual = interpreter.get_signature_runner(signature)(**inputs)
        assert set(actual) == set(expected)
        for output, value in expected.items():
            np.testing.assert_allclose(actual[output], value.numpy(), atol=TOLERANCE)


@pytest.mark.large
def test_litert_of_some_signatures(saved_models, tmp_path):
    result = to_litert(saved_models["cvae"], tmp_path / "decode.tflite", signature_keys=["decode"])
    assert list(result.differences) == ["decode"]
    interpreter = conversion._litert_interpreter((tmp_path / "decode.tflite").read_bytes())[0]
    assert list(interpreter.get_signature_list()) == ["decode"]


@pytest.mark.large
@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_of_saved_model_matches(saved_models, tmp_path, name):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    result = to_onnx(saved_models[name], tmp_path / "onnx")
    assert set(result.differences) == SIGNATURES[name]
    assert sorted(os.listdir(tmp_path / "onnx")) == sorted(f"{s}.onnx" for s in SIGNATURES[name])
    assert 0 <= result.max_difference < TOLERANCE
    loaded = tf.saved_model.load(saved_models[name])
    for signature in SIGNATURES[name]:
        session = onnxruntime.InferenceSession(result.files[signature], providers=["CPUExecutionProvider"])
        inputs = fresh_inputs(loaded.signatures[signature])
        assert {i.name for i in session.get_inputs()} == set(inputs)
        outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs), strict=True))
        for output, value in loaded.signatures[signature](**inputs).items():
            onnx_name = output + "_out" if output in inputs else output
            np.testing.assert_allclose(outputs[onnx_name], value.numpy(), atol=TOLERANCE)


@pytest.mark.large
def test_a_copy_that_differs_is_refused_and_not_written(saved_models, tmp_path):
    # A tolerance of 0 turns float32 rounding (about 1e-7 here) into a difference too large.
    with pytest.raises(ModelFileError, match="differs from the original by .* not written"):
        to_litert(saved_models["cvae"], tmp_path / "model.tflite", tolerance=0.0)
    assert not (tmp_path / "model.tflite").exists()


@pytest.mark.large
def test_compare_saved_models(saved_models):
    assert compare_saved_models(saved_models["cgan"], saved_models["cgan"]) == {"generate": {"images": 0.0}}
    with pytest.raises(ModelFileError, match="lacks the signature 'a_to_b'"):
        compare_saved_models(saved_models["cgan"], saved_models["cyclegan"])


@pytest.mark.large
def test_unknown_signature_is_one_line(saved_models, tmp_path):
    with pytest.raises(ConfigError) as error:
        to_litert(saved_models["cgan"], tmp_path / "x.tflite", signature_keys=["decode"])
    assert str(error.value) == f"{saved_models['cgan']} has no signature 'decode'; its signatures: generate."


def test_missing_saved_model(tmp_path):
    with pytest.raises(ModelFileError, match="holds no SavedModel"):
        to_litert(tmp_path, tmp_path / "x.tflite")


def with_missing(X, seed=0):
    X = X.copy()
    mask = np.random.default_rng(seed).random(X.shape) < 0.05
    return X.mask(mask)


@pytest.mark.parametrize("algorithm, table", [
    ("logistic_regression", "breast_cancer"), ("svm", "breast_cancer"), ("svm", "iris"),
    ("decision_tree", "iris"), ("random_forest", "breast_cancer"), ("gradient_boosting", "iris"),
])
@pytest.mark.large
def test_classifier_pipeline_matches_predict_proba(tmp_path, algorithm, table):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    X, y = load_table(table)
    X = with_missing(X)
    small = {"n_estimators": 20} if algorithm == "random_forest" else {}
    model = make_model(algorithm, random_state=0, **small).fit(X, y)
    result = to_onnx(model, tmp_path / "model.onnx", rows=X)
    assert result.differences["model"]["label"] == 0.0
    assert result.differences["model"]["probabilities"] < TOLERANCE
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    labels, scores = session.run(None, {"X": X.to_numpy(np.float32)})
    np.testing.assert_array_equal(labels, model.predict(X))
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(scores, model.predict_proba(X), atol=TOLERANCE)


@pytest.mark.large
@pytest.mark.parametrize("algorithm", ["linear_regression", "random_forest", "gradient_boosting"])
def test_regressor_pipeline_matches_predict(tmp_path, algorithm):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    X, y = load_table("diabetes")
    small = {"linear_regression": {}, "random_forest": {"n_estimators": 20},
             "gradient_boosting": {"max_iter": 20}}
    model = make_model(algorithm, "regression", random_state=0, **small[algorithm]).fit(X, y)
    result = to_onnx(model, tmp_path / "model.onnx", rows=X)
    # Predictions reach about 350: float32 keeps about 7 digits of them.
    assert result.differences["model"]["variable"] < TOLERANCE * np.abs(y).max()


def test_table_with_categories_and_missing_values(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "size": rng.normal(size=120), "colour": rng.choice(["red", "blue", "green"], 120),
        "count": rng.integers(0, 9, 120).astype(float),
    })
    target = ((frame["size"] > 0) ^ (frame["colour"] == "red")).astype(int)
    frame.loc[::7, "size"] = np.nan
    frame.loc[::11, "colour"] = None
    model = make_model("random_forest", n_estimators=10, random_state=0).fit(frame, target)
    result = to_onnx(model, tmp_path / "model.onnx", rows=frame)
    assert result.differences["model"]["probabilities"] < TOLERANCE
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["size", "colour", "count"]
    # Row 0 misses both values; a client marks a missing category with the empty string.
    row = frame.iloc[[0]]
    assert row["size"].isna().all() and row["colour"].isna().all()
    feeds = {"size": np.array([[np.nan]], np.float32), "colour": np.array([[""]]),
             "count": row[["count"]].to_numpy(np.float32)}
    np.testing.assert_allclose(session.run(None, feeds)[1], model.predict_proba(row), atol=TOLERANCE)


def test_xgboost_pipeline(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxmltools")
    xgboost = pytest.importorskip("xgboost")
    from sklearn.pipeline import Pipeline

    from keras_bigml.classical.estimators import TabularPreprocessor

    X, y = load_table("breast_cancer")
    model = Pipeline([("prepare", TabularPreprocessor(scale=False)),
                      ("model", xgboost.XGBClassifier(n_estimators=10, max_depth=3))]).fit(X, y)
    result = to_onnx(model, tmp_path / "model.onnx", rows=X)
    assert result.differences["model"]["probabilities"] < TOLERANCE


def test_pipeline_without_rows_or_runtime_is_written_unchecked(tmp_path, monkeypatch):
    pytest.importorskip("skl2onnx")
    X, y = load_table("iris")
    model = make_model("decision_tree").fit(X, y)
    result = to_onnx(model, tmp_path / "a.onnx")
    assert result.differences == {} and result.max_difference is None
    assert result.checked_on == "not checked: no rows of the input table were given"
    monkeypatch.setattr(conversion, "_onnxruntime", lambda: (None, None))
    result = to_onnx(model, tmp_path / "b.onnx", rows=X)
    assert result.runtime is None and result.checked_on == "not checked: onnxruntime is not installed"
    assert (tmp_path / "a.onnx").stat().st_size > 0 and (tmp_path / "b.onnx").stat().st_size > 0


def test_estimators_that_cannot_convert_are_one_line(tmp_path):
    pytest.importorskip("skl2onnx")
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Majority(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            self.n_features_in_ = np.shape(X)[1]
            return self

    X, y = load_table("iris")
    cases = [(make_model("decision_tree"), "The pipeline of DecisionTreeClassifier is not fitted"),
             (make_model("decision_tree").set_params(model=Majority()).fit(X, y),
              "The pipeline of Majority cannot be converted to ONNX")]
    for model, message in cases:
        with pytest.raises(ConfigError, match=message) as error:
            to_onnx(model, tmp_path / "model.onnx")
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="signature_keys are for SavedModels"):
        to_onnx(make_model("decision_tree").fit(X, y), tmp_path / "model.onnx", signature_keys=["decode"])
    assert not (tmp_path / "model.onnx").exists()


def test_missing_converter_package_is_one_line(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tf2onnx", None)
    with pytest.raises(ConfigError, match=r"needs the tf2onnx package: pip install 'keras_bigml\[export\]'"):
        to_onnx("some/saved_model", "out")


def test_saved_model_with_unsafe_ops_is_refused(tmp_path):
    from keras_bigml.errors import UntrustedFileError

    module = tf.Module()
    module.double = tf.function(lambda x: {"y": 2.0 * x + tf.cast(tf.strings.length(tf.io.read_file(
        "/etc/hostname")), tf.float32)}, input_signature=[tf.TensorSpec((None,), tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "reads"), signatures={"double": module.double})
    with pytest.raises(UntrustedFileError, match="allow_unsafe_ops=True"):
        to_litert(tmp_path / "reads", tmp_path / "x.tflite")
    with pytest.raises(UntrustedFileError):
        to_onnx(tmp_path / "reads", tmp_path / "onnx")
    assert not (tmp_path / "x.tflite").exists()
