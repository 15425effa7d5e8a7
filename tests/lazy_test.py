import subprocess
import sys

import pytest

from keras_bigml.lazy import lazy_exports


@pytest.mark.large
def test_tables_and_classical_reports_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from keras_bigml.data import load_table\n"
        "from keras_bigml.evaluation import classification_report\n"
        "import keras_bigml.workflows.classical\n"
        "print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-1000:]


def test_names_resolve_from_their_submodule_and_unknown_names_fail():
    getter, names = lazy_exports("keras_bigml.data", {"load_table": "tables"})
    from keras_bigml.data.tables import load_table

    assert names == ["load_table"] and getter("load_table") is load_table
    with pytest.raises(AttributeError, match="has no attribute 'load_tabel'"):
        getter("load_tabel")


def test_workflow_functions_resolve_even_after_their_modules_were_imported():
    import keras_bigml.workflows.profiling as module
    from keras_bigml import workflows

    assert workflows.profile is module.profile and workflows.profiling is module
