import functools
import importlib
import io
import json
import os
import sys
import tempfile
import types
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import ExtraTreesClassifier
from threadpoolctl import threadpool_limits

from keras_bigml.classical import algorithm_names, make_model
from keras_bigml.classical.persist import TRUSTED_FUNCTIONS, TRUSTED_TYPES, load_model, save_model
from keras_bigml.classical.streaming import STREAMING_ALGORITHMS, fit_streaming
from keras_bigml.data.tables import load_table
from keras_bigml.errors import ConfigError, ModelFileError, UntrustedFileError

TREE = "sklearn.tree._tree.Tree"
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
SMALL = {"random_forest": {"n_estimators": 3}, "gradient_boosting": {"max_iter": 3}}
PAIRS = [(task, name) for task in ("classification", "regression") for name in algorithm_names(task)]


# --- the trust list is exactly what save_model writes ---------------------------------------------------


def _frames():
    """A numeric array and a DataFrame with missing values, strings, categories and booleans."""
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=(60, 3))
    frame = pd.DataFrame({
        "a": numbers[:, 0], "b": numbers[:, 1], "c": numbers[:, 2],
        "colour": rng.choice(["red", "blue", None], 60),
        "kind": pd.Categorical(rng.choice(["x", "y"], 60)),
        "flag": rng.choice([True, False], 60),
    })
    frame.loc[3, "a"] = np.nan
    targets = {
        "binary": rng.choice(["no", "yes"], 60),
        "multiclass": rng.integers(0, 3, 60),
        "regression": numbers.sum(axis=1),
    }
    return {"array": numbers, "categorical_frame": frame}, targets


def _saved_models(task, algorithm):
    """(case, fitted model) for every preparation path of one algorithm and task."""
    data, targets = _frames()
    labels = ["binary", "multiclass"] if task == "classification" else ["regression"]
    for data_name, X in data.items():
        for select in (None, 2):
            for impute in ("mean", "most_frequent"):
                for label in labels:
                    model = make_model(algorithm, task, impute=impute, select_features=select,
                                       random_state=0, **SMALL.get(algorithm, {}))
                    yield f"{task}/{algorithm}/{data_name}/select={select}/{impute}/{label}", X, model.fit(
                        X, targets[label])


def _streaming_models():
    data, targets = _frames()
    X = data["array"]
    for (algorithm, task) in STREAMING_ALGORITHMS:
        y = (targets["multiclass"] > 0).astype(int) if task == "classification" else targets["regression"]
        chunks = [(X[:30], y[:30]), (X[30:], y[30:])]
        classes = [0, 1] if task == "classification" else None
        yield f"streaming/{task}/{algorithm}", X, fit_streaming(
            algorithm, chunks, task=task, classes=classes, random_state=0, progress=False)


@functools.cache
def _types_written(group):
    """{case: the types skops does not trust by itself} for one (task, algorithm) or "streaming".

    Every model is also saved and loaded with load_model, without trusted=, and must predict
    as before: the list is not only complete on paper.
    """
    models = _streaming_models() if group == "streaming" else _saved_models(*group)
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for case, X, model in models:
            path = save_model(model, os.path.join(folder, "model.skops"))
            found[case] = set(skops.io.get_untrusted_types(file=path))
            np.testing.assert_array_equal(load_model(path).predict(X), model.predict(X))
    return found


GROUPS = PAIRS + ["streaming"]
GROUP_IDS = ["-".join(pair) for pair in PAIRS] + ["streaming"]


@pytest.fixture(autouse=True)
def one_thread():
    """OpenMP threads of gradient boosting spin after each fit and starve the test on busy cores."""
    with threadpool_limits(1):
        yield


@pytest.mark.large
@pytest.mark.parametrize("group", GROUPS, ids=GROUP_IDS)
def test_every_type_a_saved_model_holds_is_trusted(group):
    for case, names in _types_written(group).items():
        assert names <= TRUSTED_TYPES | TRUSTED_FUNCTIONS, f"{case} writes untrusted {names - TRUSTED_TYPES}"


@pytest.mark.large
def test_trust_list_holds_nothing_saved_models_do_not_need():
    written = set().union(*(names for group in GROUPS for names in _types_written(group).values()))
    assert written == TRUSTED_TYPES | TRUSTED_FUNCTIONS


def _resolve(name):
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def test_trusted_types_are_classes_only():
    for name in sorted(TRUSTED_TYPES):
        assert isinstance(_resolve(name), type), name


def test_trusted_functions_are_exactly_the_feature_selection_scores():
    for name in TRUSTED_FUNCTIONS:
        assert isinstance(_resolve(name), types.FunctionType)
    used = {make_model("decision_tree", task, select_features=1).named_steps["select"].score_func
            for task in ("classification", "regression")}
    assert {_resolve(name) for name in TRUSTED_FUNCTIONS} == used


# --- crafted files: loading must not run their code -----------------------------------------------------


def _touch_command(marker):
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]


def _node_dicts(value):
    if isinstance(value, dict):
        if "__loader__" in value:
            yield value
        for child in value.values():
            yield from _node_dicts(child)
    elif isinstance(value, list):
        for child in value:
            yield from _node_dicts(child)


def _rewrite_skops(data, edit_schema=None, edit_arrays=None):
    """A copy of skops bytes with schema.json edited in place and some .npy arrays replaced."""
    source = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(source.read("schema.json"))
    if edit_schema:
        edit_schema(schema)
    arrays = edit_arrays(schema) if edit_arrays else {}
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as target:
        for name in source.namelist():
            if name == "schema.json":
                target.writestr(name, json.dumps(schema))
            elif name in arrays:
                buffer = io.BytesIO()
                np.save(buffer, arrays[name](np.load(io.BytesIO(source.read(name)))), allow_pickle=False)
                target.writestr(name, buffer.getvalue())
            else:
                target.writestr(name, source.read(name))
    return output.getvalue()


_FRESH_IDS = iter(range(1, 10**6))


def _fresh_ids(state):
    """Give edited nodes ids of their own: skops shares one object between nodes of one id."""
    for node in _node_dicts(state):
        node["__id__"] = next(_FRESH_IDS)
    return state


def _set_number(node, value):
    node["content"] = json.dumps(value)
    _fresh_ids(node)


def _call_node(module, function, args):
    """A skops node that calls ``module.function(*args)`` when the file is loaded."""
    state = json.loads(zipfile.ZipFile(io.BytesIO(skops.io.dumps(tuple(args)))).read("schema.json"))
    for key in ("protocol", "_skops_version"):
        state.pop(key)
    return _fresh_ids({"__class__": function, "__module__": module, "__loader__": "ConstructorFromReduceNode",
                       "content": state})


def _legit_skops_with(call):
    """A legit saved pipeline whose Pipeline.verbose value is replaced by ``call``."""
    X, y = load_table("iris")
    data = skops.io.dumps(make_model("logistic_regression").fit(X, y))
    return _rewrite_skops(data, edit_schema=lambda schema: schema["content"]["content"].update(verbose=call))


def _assert_refused(path, marker, *opt_ins, error=UntrustedFileError, **options):
    """Load ``path``: the payload must not have run, and the refusal names the file and the opt-in."""
    outcome = None
    try:
        outcome = load_model(path, **options)
    except Exception as raised:  # checked below, after the marker
        outcome = raised
    assert not marker.exists(), "the payload ran"
    assert isinstance(outcome, error), f"expected {error.__name__}, got {outcome!r}"
    message = str(outcome)
    assert str(path) in message
    for text in opt_ins:
        assert text in message
    assert "\n" not in message
    return message


def test_skops_naming_sklearn_reexported_subprocess_helper_is_refused(tmp_path):
    from sklearn.utils import _testing

    assert _testing.check_output.__module__ == "subprocess"  # a real re-export
    marker = tmp_path / "marker"
    path = tmp_path / "model.skops"
    path.write_bytes(_legit_skops_with(_call_node("sklearn.utils._testing", "check_output",
                                                  [_touch_command(marker)])))
    name = "sklearn.utils._testing.check_output"
    _assert_refused(path, marker, name, f"trusted=['{name}']", f"--trust {name}")


@pytest.mark.parametrize("extra_args", [[], [[], True]], ids=["path", "path-trusted-allow_pickle"])
def test_skops_naming_keras_bigml_function_that_loads_a_pickle_is_refused(tmp_path, extra_args):
    marker = tmp_path / "marker"
    joblib.dump(_Payload(marker), tmp_path / "inner.bin")
    path = tmp_path / "model.skops"
    name = "keras_bigml.classical.persist.load_model"
    call = _call_node("keras_bigml.classical.persist", "load_model",
                      [str(tmp_path / "inner.bin"), *extra_args])
    path.write_bytes(_legit_skops_with(call))
    _assert_refused(path, marker, name, "trusted=[", f"--trust {name}")


def test_skops_calling_a_trusted_score_function_is_refused(tmp_path):
    name = "sklearn.feature_selection._univariate_selection.f_classif"
    path = tmp_path / "model.skops"
    path.write_bytes(_legit_skops_with(_call_node("sklearn.feature_selection._univariate_selection",
                                                  "f_classif", [[[0.0], [1.0]], [0, 1]])))
    _assert_refused(path, tmp_path / "marker", name, f"--trust {name}")


class _Payload:
    """Pickles to a call that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("name", ["model.bin", "model.pkl", "model.joblib", "model.PKL", "model"])
def test_pickles_are_refused_without_allow_pickle(tmp_path, name):
    marker = tmp_path / "marker"
    joblib.dump(_Payload(marker), tmp_path / name)
    _assert_refused(tmp_path / name, marker, "allow_pickle=True", "--allow-pickle")


@pytest.mark.parametrize("options", [{}, {"allow_pickle": True}], ids=["default", "allow_pickle"])
def test_pickle_named_skops_is_never_unpickled(tmp_path, options):
    marker = tmp_path / "marker"
    joblib.dump(_Payload(marker), tmp_path / "model.SKOPS")
    _assert_refused(tmp_path / "model.SKOPS", marker, "allow_pickle=True", "--allow-pickle",
                    error=ModelFileError, **options)


def test_allow_pickle_loads_a_joblib_model(tmp_path):
    X, y = load_table("wine")
    model = make_model("random_forest", n_estimators=5, random_state=0).fit(X, y)
    path = save_model(model, tmp_path / "model.joblib")
    assert not zipfile.is_zipfile(path)
    np.testing.assert_array_equal(load_model(path, allow_pickle=True).predict(X), model.predict(X))


def test_trusted_admits_exactly_the_named_types(tmp_path):
    path = tmp_path / "odd.skops"
    skops.io.dump({"callback": functools.partial(print)}, path)
    message = _assert_refused(path, tmp_path / "marker", "builtins.print", "functools.partial")
    assert "--trust builtins.print --trust functools.partial" in message
    _assert_refused(path, tmp_path / "marker", "builtins.print", trusted=["functools.partial"])
    loaded = load_model(path, trusted=["builtins.print", "functools.partial"])
    assert loaded["callback"].func is print


@pytest.mark.parametrize("trusted", ["functools.partial", True, [print]], ids=["string", "bool", "object"])
def test_trusted_must_be_a_list_of_names(tmp_path, trusted):
    path = save_model(make_model("decision_tree").fit([[0], [1]], [0, 1]), tmp_path / "m.skops")
    with pytest.raises(ConfigError, match="trusted must"):
        load_model(path, trusted=trusted)


# --- trees whose nodes point outside them ----------------------------------------------------------------


def _first(schema, class_name):
    return next(node for node in _node_dicts(schema) if node["__class__"] == class_name)


def _tree_nodes_file(schema):
    return _first(schema, "Tree")["content"]["content"]["nodes"]["file"]


def _crafted_tree(tmp_path, edit_nodes=None, edit_schema=None, algorithm="decision_tree"):
    X, y = load_table("iris")
    data = skops.io.dumps(make_model(algorithm, random_state=0, **SMALL.get(algorithm, {})).fit(X, y))
    if algorithm == "gradient_boosting":
        def arrays(schema):
            return {_first(schema, "TreePredictor")["content"]["content"]["nodes"]["file"]: edit_nodes}
    else:
        def arrays(schema):
            return {_tree_nodes_file(schema): edit_nodes} if edit_nodes else {}
    path = tmp_path / "model.skops"
    path.write_bytes(_rewrite_skops(data, edit_schema, arrays))
    return path


def _set(field, index, value):
    def edit(nodes):
        nodes = nodes.copy()
        nodes[field][index] = value
        return nodes
    return edit


@pytest.mark.parametrize("field,value,problem", [
    ("left_child", 10**6, "branch to a node outside"),
    ("right_child", 0, "earlier node"),
    ("feature", 4, "feature outside 0..3"),
    ("feature", -7, "feature outside 0..3"),
], ids=["child-out-of-range", "child-loops-back", "feature-too-large", "feature-negative"])
def test_decision_tree_with_bad_nodes_is_refused(tmp_path, field, value, problem):
    path = _crafted_tree(tmp_path, edit_nodes=_set(field, 0, value))
    message = _assert_refused(path, tmp_path / "marker", TREE, f"--trust {TREE}")
    assert problem in message
    load_model(path, trusted=[TREE])  # the user's own call: trusting the type skips the node checks


def test_decision_tree_with_a_shared_child_is_refused(tmp_path):
    def share(nodes):
        nodes = nodes.copy()
        internal = np.flatnonzero(nodes["left_child"] != -1)
        nodes["right_child"][internal[0]] = nodes["left_child"][internal[0]]
        return nodes

    path = _crafted_tree(tmp_path, edit_nodes=share)
    assert "two parents" in _assert_refused(path, tmp_path / "marker", TREE)


def test_decision_tree_deeper_than_its_recorded_depth_is_refused(tmp_path):
    def shallower(schema):
        _set_number(_first(schema, "Tree")["content"]["content"]["max_depth"], 1)

    path = _crafted_tree(tmp_path, edit_schema=shallower)
    assert "deeper than its recorded depth 1" in _assert_refused(path, tmp_path / "marker", TREE)


def test_forest_tree_wider_than_its_forest_is_refused(tmp_path):
    def widen(schema):
        fitted = [node for node in _node_dicts(schema) if node["__class__"] == "DecisionTreeClassifier"]
        attributes = next(node["content"]["content"] for node in fitted
                          if "tree_" in node["content"]["content"])
        _set_number(attributes["n_features_in_"], 50)  # the tree alone would pass: 50 features, all in range
        _set_number(attributes["tree_"]["__reduce__"]["args"]["content"][0], 50)

    path = _crafted_tree(tmp_path, edit_schema=widen, algorithm="random_forest")
    assert "another number of features" in _assert_refused(path, tmp_path / "marker", TREE)


@pytest.mark.parametrize("field,value,problem", [
    ("feature_idx", 99, "feature outside 0..3"),
    ("left", 10**6, "branch to a node outside"),
    ("is_categorical", 1, "categorical splits"),
], ids=["feature", "child", "categorical"])
def test_gradient_boosting_tree_with_bad_nodes_is_refused(tmp_path, field, value, problem):
    path = _crafted_tree(tmp_path, edit_nodes=_set(field, 0, value), algorithm="gradient_boosting")
    assert problem in _assert_refused(path, tmp_path / "marker", TREE_PREDICTOR, f"--trust {TREE_PREDICTOR}")


def test_tree_outside_the_checked_models_needs_trust(tmp_path):
    X, y = load_table("iris")
    model = ExtraTreesClassifier(n_estimators=3, random_state=0).fit(X, y)
    path = save_model(model, tmp_path / "extra.skops")
    assert "outside the models" in _assert_refused(path, tmp_path / "marker", TREE, f"--trust {TREE}")
    np.testing.assert_array_equal(load_model(path, trusted=[TREE]).predict(X), model.predict(X))


def test_one_tree_referred_to_twice_is_refused(tmp_path):
    X, y = load_table("iris")
    tree = make_model("decision_tree").fit(X, y).named_steps["model"]
    path = tmp_path / "twice.skops"
    skops.io.dump([tree, tree], path)
    assert "more than one place" in _assert_refused(path, tmp_path / "marker", TREE)


# --- saving and files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.skops", "model.SKOPS", "model.joblib", "model.Pkl"])
@pytest.mark.parametrize("algorithm", ["random_forest", "gradient_boosting", "svm"])
def test_round_trip_keeps_predictions(tmp_path, name, algorithm):
    X, y = load_table("wine")
    model = make_model(algorithm, random_state=0, **SMALL.get(algorithm, {})).fit(X, y)
    path = save_model(model, tmp_path / name)
    assert zipfile.is_zipfile(path) == name.lower().endswith(".skops")
    loaded = load_model(path, allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    scores = "predict_proba" if hasattr(model, "predict_proba") else "decision_function"
    np.testing.assert_allclose(getattr(loaded, scores)(X), getattr(model, scores)(X))


@pytest.mark.parametrize("name", ["model.bin", "model", "model.skops.bak", "model.json"])
def test_save_refuses_other_suffixes(tmp_path, name):
    with pytest.raises(ConfigError, match=r"\.skops.*\.joblib.*\.pkl") as caught:
        save_model(make_model("decision_tree").fit([[0], [1]], [0, 1]), tmp_path / name)
    assert str(tmp_path / name) in str(caught.value)
    assert not (tmp_path / name).exists()


def test_save_refuses_what_skops_cannot_store(tmp_path):
    with pytest.raises(ConfigError, match=r"skops cannot save .*\.joblib") as caught:
        save_model({"buffer": io.BytesIO(b"x")}, tmp_path / "model.skops")
    assert str(tmp_path / "model.skops") in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(ModelFileError, match="No saved model"):
        load_model(tmp_path / "absent.skops")
    with pytest.raises(ModelFileError, match="No saved model"):
        load_model(tmp_path)
    damaged = {
        "empty.skops": b"",
        "notes.skops": b"hello",
        "no_schema.skops": _zip({"other.json": "{}"}),
        "bad_json.skops": _zip({"schema.json": "{not json"}),
        "unhashable_id.skops": _zip({"schema.json": json.dumps({
            "__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": [1],
            "content": [], "protocol": 2})}),
        "truncated.skops": skops.io.dumps(make_model("decision_tree").fit([[0], [1]], [0, 1]))[:500],
        "notes.joblib": b"hello",
    }
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelFileError) as caught:
            load_model(tmp_path / name, allow_pickle=True)
        assert str(tmp_path / name) in str(caught.value) and "\n" not in str(caught.value), name


def _zip(files):
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return output.getvalue()
