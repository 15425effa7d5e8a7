"""Save and load fitted pipelines: skops (safe, inspectable) or joblib (a pickle, runs code).

Loading trusts nothing by module prefix. A ``.skops`` file loads when every type it
names is one that skops trusts itself (scikit-learn estimators, numpy arrays and
dtypes, builtins) or one of the exact names in :data:`TRUSTED_TYPES` (what
:func:`save_model` writes for keras_bigml's models, found by saving every algorithm,
task and preparation path), or a name the caller passes in ``trusted``. The two
scoring functions of feature selection (:data:`TRUSTED_FUNCTIONS`) are admitted as
references only, never where the file would call them. Decision trees are checked
node by node, since a crafted tree can make ``predict`` read or write outside its
arrays. A file not named ``.skops`` (in any case) is read as a pickle, which runs
whatever the file asks, and needs ``allow_pickle=True``.
"""

import collections
import io
import json
import os
import zipfile
from collections.abc import Iterable
from typing import Any

import joblib
import numpy as np

from keras_bigml.errors import ConfigError, ModelFileError, UntrustedFileError
from keras_bigml.files import atomic_path

SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".joblib", ".pkl")

# Exactly the types beyond skops' own defaults that save_model writes for make_model's
# algorithms and tasks (with and without select_features, on arrays and on DataFrames
# with categories) and for streaming_model's learners. tests/classical/persist_test.py
# re-derives the list by saving all of them. Classes only: no function is listed here.
TRUSTED_TYPES = frozenset({
    "keras_bigml.classical.estimators.NumericImputer",
    "keras_bigml.classical.estimators.TabularPreprocessor",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
})

# The score functions SelectKBest keeps (make_model's select step). They are pure
# arithmetic, and a skops file may name them only as a reference (FunctionNode, which
# skops resolves with getattr): a file that would call one at load time is refused.
TRUSTED_FUNCTIONS = frozenset({
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
})

TREE = "sklearn.tree._tree.Tree"
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def save_model(model: Any, path: str | os.PathLike) -> str:
    """Save a fitted model atomically: skops for ``.skops``, joblib for ``.joblib``/``.pkl``.

    Suffixes are compared case-insensitively. A joblib file is a pickle: loading it
    back needs ``allow_pickle=True``.

    >>> import tempfile, os
    >>> from keras_bigml.classical import make_model
    >>> from keras_bigml.data.tables import load_table
    >>> X, y = load_table("iris")
    >>> path = save_model(make_model("decision_tree").fit(X, y), os.path.join(tempfile.mkdtemp(), "m.skops"))
    >>> load_model(path).score(X, y)
    1.0
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SKOPS_SUFFIXES + PICKLE_SUFFIXES:
        raise ConfigError(
            f"Cannot save a model as {path}: use a name ending in .skops (safe to load) or, "
            "for models skops cannot store, .joblib or .pkl (a pickle)."
        )
    with atomic_path(path) as tmp:
        if suffix in SKOPS_SUFFIXES:
            import skops.io
            from skops.io.exceptions import UnsupportedTypeException

            try:
                skops.io.dump(model, tmp)
            except (UnsupportedTypeException, TypeError) as error:  # skops' word for "cannot store"
                raise ConfigError(
                    f"skops cannot save this model as {path} ({_brief(error)}); a .joblib name saves it "
                    "as a pickle, which loads only with allow_pickle=True."
                ) from None
        else:
            joblib.dump(model, tmp)
    return path


def load_model(
    path: str | os.PathLike, trusted: Iterable[str] | None = None, allow_pickle: bool = False
) -> Any:
    """Load a model saved by :func:`save_model`, running no code from the file unless asked to.

    Parameters
    ----------
    path : str or path-like
        A ``.skops`` file (any case) is read with skops; any other name is read as a
        pickle with joblib.
    trusted : list of str, optional
        Exact type names to trust beyond skops' defaults and :data:`TRUSTED_TYPES`,
        as the refusal message lists them (command line: ``--trust TYPE``).
        Trusting ``sklearn.tree._tree.Tree`` or the histogram gradient boosting
        ``TreePredictor`` also skips the node checks of those trees.
    allow_pickle : bool
        Load pickles (command line: ``--allow-pickle``). A pickle runs whatever code
        it holds: only for files you made yourself.

    Raises
    ------
    UntrustedFileError
        The file names a type or function that is not trusted, holds a tree whose
        nodes point outside it, or is a pickle without ``allow_pickle=True``.
    ModelFileError
        The file is missing, damaged, or not a saved model.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.linear_model import LinearRegression
    >>> model = LinearRegression().fit([[0], [1]], [0, 1])
    >>> path = save_model(model, os.path.join(tempfile.mkdtemp(), "m.pkl"))
    >>> load_model(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_bigml.errors.UntrustedFileError: Refused to load .../m.pkl: ... pass allow_pickle=True ...
    >>> load_model(path, allow_pickle=True).predict([[2]]).round(6)
    array([2.])
    """
    path = os.fspath(path)
    extra = _trusted_names(trusted)
    if not os.path.isfile(path):
        raise ModelFileError(f"No saved model at {path}.")
    if os.path.splitext(path)[1].lower() in SKOPS_SUFFIXES:
        return _load_skops(path, extra)
    if not allow_pickle:
        raise UntrustedFileError(
            f"Refused to load {path}: a file not named .skops is read as a pickle, which runs any code "
            "it holds; if you made it yourself, pass allow_pickle=True in Python or --allow-pickle "
            "on the command line."
        )
    try:
        return joblib.load(path)
    except Exception as error:
        raise ModelFileError(f"{path} is damaged or not a saved model ({_brief(error)}).") from None


def _trusted_names(trusted):
    if trusted is None:
        return frozenset()
    if isinstance(trusted, (str, bytes)) or not isinstance(trusted, Iterable):
        raise ConfigError(
            f"trusted must be a list of type names, e.g. trusted=['module.Type'], got {trusted!r}."
        )
    names = list(trusted)
    wrong = [name for name in names if not isinstance(name, str)]
    if wrong:
        raise ConfigError(f"trusted must hold type names as strings, got {wrong[0]!r}.")
    return frozenset(names)


def _load_skops(path, extra):
    import skops.io

    with open(path, "rb") as file:
        data = file.read()  # one read: what is checked is what is loaded
    if not data:
        raise ModelFileError(f"{path} is empty, not a saved model.")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelFileError(
            f"{path} is not a skops file (a skops file is a zip archive); if it is a pickle you made "
            "yourself, load it under a .joblib or .pkl name with allow_pickle=True in Python or "
            "--allow-pickle on the command line."
        )
    try:
        untrusted = set(skops.io.get_untrusted_types(data=data))
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            nodes = _nodes(json.loads(archive.read("schema.json")))
        # Counted as skops keys its memo: by the id's value (an unhashable id fails here too).
        id_counts = collections.Counter(node_id for _, _, node_id, _ in nodes)
    except Exception as error:
        raise ModelFileError(f"{path} is damaged or not a saved model ({_brief(error)}).") from None
    called = {name for name, loader, _, _ in nodes if loader != "FunctionNode"}
    refused = (untrusted - TRUSTED_TYPES - TRUSTED_FUNCTIONS - extra) | (called & TRUSTED_FUNCTIONS - extra)
    if refused:
        raise _refusal(path, "it names types or functions that keras_bigml does not trust there "
                       f"({', '.join(sorted(refused))})", sorted(refused))
    checked = {TREE, TREE_PREDICTOR} - extra
    _check_tree_nodes_unshared(path, nodes, id_counts, checked)
    try:
        model = skops.io.loads(data, trusted=sorted(TRUSTED_TYPES | TRUSTED_FUNCTIONS | extra))
    except Exception as error:
        raise ModelFileError(f"{path} is damaged or not a saved model ({_brief(error)}).") from None
    expected = collections.Counter(name for name, _, _, _ in nodes if name in checked)
    found = collections.Counter()
    try:
        _check_trees(path, model, checked, found)
    except UntrustedFileError:
        raise
    except Exception as error:  # a malformed model: its trees cannot be checked, so it is not loaded
        raise _refusal(path, f"its trees cannot be checked ({_brief(error)})", sorted(checked)) from None
    for name in sorted(expected):
        if found[name] != expected[name]:
            raise _refusal(path, f"it holds a {name} outside the models whose trees keras_bigml checks "
                           "(decision trees, random forests and histogram gradient boosting, alone or "
                           "in a Pipeline)", [name])
    return model


def _refusal(path, reason, names):
    quoted = ", ".join(repr(name) for name in names)
    flags = " ".join(f"--trust {name}" for name in names)
    return UntrustedFileError(
        f"Refused to load {path}: {reason}; if you trust the file, pass trusted=[{quoted}] in Python "
        f"or {flags} on the command line."
    )


def _nodes(schema):
    """Every node of a skops schema as (type name, loader, id, ids of its ancestor nodes)."""
    found = []

    def walk(value, ancestors):
        if isinstance(value, dict):
            if "__loader__" in value:
                found.append((f"{value.get('__module__')}.{value.get('__class__')}", value["__loader__"],
                              value.get("__id__"), ancestors))
                ancestors = ancestors + (value.get("__id__"),)
            for child in value.values():
                walk(child, ancestors)
        elif isinstance(value, list):
            for child in value:
                walk(child, ancestors)

    walk(schema, ())
    return found


def _check_tree_nodes_unshared(path, nodes, id_counts, checked):
    """Refuse a tree, or anything holding one, that the file places at a second spot.

    skops builds one object per node id, so a repeated id (or a CachedNode) would let
    the same checked tree also sit inside a model whose trees are not checked.
    """
    for name, _, node_id, ancestors in nodes:
        if name in checked and any(id_counts[i] > 1 for i in (node_id,) + ancestors):
            raise _refusal(path, f"it refers to one {name} from more than one place", [name])


def _check_trees(path, obj, checked, found):
    """Check the trees of ``obj`` (a Pipeline, tree, forest or histogram boosting) and count them."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    kind = type(obj)
    if kind is Pipeline:
        for step in obj.steps:
            if isinstance(step, tuple) and len(step) == 2:
                _check_trees(path, step[1], checked, found)
    elif kind in (DecisionTreeClassifier, DecisionTreeRegressor) and TREE in checked:
        tree = getattr(obj, "tree_", None)
        if tree is not None:
            problem = _tree_problem(tree, obj.n_features_in_)
            if problem:
                raise _refusal(path, f"a decision tree in it {problem}, which could make predict read or "
                               "write outside the model's memory", [TREE])
            found[TREE] += 1
    elif kind in (RandomForestClassifier, RandomForestRegressor):
        for estimator in getattr(obj, "estimators_", []):
            # The forest passes its checked input to its trees unchecked: their widths must agree.
            if type(estimator) in (DecisionTreeClassifier, DecisionTreeRegressor) and TREE in checked:
                if getattr(estimator, "n_features_in_", None) != obj.n_features_in_:
                    raise _refusal(path, "a tree of a random forest in it expects another number of "
                                   "features than the forest", [TREE])
            _check_trees(path, estimator, checked, found)
    elif kind in (HistGradientBoostingClassifier, HistGradientBoostingRegressor) and (
        TREE_PREDICTOR in checked
    ):
        for predictors in getattr(obj, "_predictors", []):
            for predictor in predictors:
                problem = _predictor_problem(predictor, obj.n_features_in_)
                if problem:
                    raise _refusal(path, f"a gradient boosting tree in it {problem}, which could make "
                                   "predict read outside the model's memory", [TREE_PREDICTOR])
                found[TREE_PREDICTOR] += 1


def _tree_problem(tree, n_features):
    """What is wrong with a scikit-learn ``Tree``'s nodes, or None."""
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    is_leaf = left == -1
    if np.any(is_leaf & (right != -1)):
        return "has a leaf with a right branch"
    if tree.n_features != n_features:
        return f"expects {tree.n_features} features where its model expects {n_features}"
    problem = _branch_problem(left, right, np.asarray(tree.feature), is_leaf, n_features)
    if problem is None and _depth(left, right, is_leaf) > tree.max_depth:
        problem = f"is deeper than its recorded depth {tree.max_depth}"
    return problem


def _predictor_problem(predictor, n_features):
    """What is wrong with a histogram gradient boosting ``TreePredictor``'s nodes, or None."""
    nodes = predictor.nodes
    is_leaf = nodes["is_leaf"].astype(bool)
    if np.any(nodes["is_categorical"][~is_leaf]):
        # The bitset indices of categorical splits are not checked here: keras_bigml's
        # pipelines one-hot encode categories, so their boosting has none.
        return "has categorical splits, whose category tables keras_bigml does not check"
    return _branch_problem(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64),
                           nodes["feature_idx"].astype(np.int64), is_leaf, n_features)


def _branch_problem(left, right, feature, is_leaf, n_features):
    """A binary tree in array form: each branch leads to later nodes, each node has one parent."""
    count = len(left)
    if count == 0:
        return "has no nodes"
    index = np.arange(count)
    split = ~is_leaf
    if np.any(split & ((left <= index) | (left >= count) | (right <= index) | (right >= count))):
        return f"has a branch to a node outside 1..{count - 1} or to an earlier node"
    if np.any(split & ((feature < 0) | (feature >= n_features))):
        return f"splits on a feature outside 0..{n_features - 1}"
    if not np.array_equal(np.sort(np.concatenate([left[split], right[split]])), index[1:]):
        return "has a node with two parents or a node that no branch reaches"
    return None


def _depth(left, right, is_leaf):
    """Depth of a checked tree (the root alone has depth 0), level by level."""
    level, depth = np.array([0]), 0
    while True:
        level = level[~is_leaf[level]]
        if level.size == 0:
            return depth
        level = np.concatenate([left[level], right[level]])
        depth += 1


def _brief(error):
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
