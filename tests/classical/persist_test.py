import functools

import numpy as np
import pytest

from keras_bigml.classical import make_model
from keras_bigml.classical.persist import load_model, save_model
from keras_bigml.data.tables import load_table


@pytest.mark.parametrize("name", ["model.skops", "model.joblib"])
@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting", "svm"])
def test_round_trip_keeps_predictions(tmp_path, name, algorithm):
    X, y = load_table("wine")
    model = make_model(algorithm, random_state=0).fit(X, y)
    loaded = load_model(save_model(model, tmp_path / name))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    scores = "predict_proba" if hasattr(model, "predict_proba") else "decision_function"
    np.testing.assert_allclose(getattr(loaded, scores)(X), getattr(model, scores)(X))


def test_not_a_model_and_missing_file(tmp_path):
    (tmp_path / "notes.skops").write_text("hello")
    with pytest.raises(ValueError, match="is not a saved model"):
        load_model(tmp_path / "notes.skops")
    (tmp_path / "notes.joblib").write_text("hello")
    with pytest.raises(ValueError, match="is not a saved model"):
        load_model(tmp_path / "notes.joblib")
    with pytest.raises(FileNotFoundError, match="No saved model"):
        load_model(tmp_path / "absent.skops")


def test_untrusted_types_are_refused(tmp_path):
    import skops.io

    skops.io.dump({"callback": functools.partial(print)}, tmp_path / "odd.skops")
    with pytest.raises(ValueError, match="not trusted"):
        load_model(tmp_path / "odd.skops", trusted=[])
