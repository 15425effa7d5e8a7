import numpy as np
import pytest
from dask.distributed import get_task_stream

from keras_bigml.classical import make_model
from keras_bigml.classical.cluster import dask_backend
from keras_bigml.classical.tuning import tune
from keras_bigml.data.tables import load_table
from keras_bigml.errors import EngineError


@pytest.mark.large
def test_forest_and_search_run_on_two_dask_worker_processes():
    X, y = load_table("breast_cancer")
    local = make_model("random_forest", n_estimators=40, random_state=0).fit(X, y)
    with dask_backend(n_workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        with get_task_stream(client) as stream:
            remote = make_model("random_forest", n_estimators=40, random_state=0, n_jobs=-1).fit(X, y)
            result = tune("decision_tree", X, y, cv=3, n_jobs=-1)
        workers = {task["worker"] for task in stream.data}
    assert len(stream.data) > 0 and len(workers) == 2
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))
    assert result.best_score > 0.9


@pytest.mark.large
def test_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(EngineError, match="Cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with dask_backend("tcp://127.0.0.1:9"):
            pass


@pytest.mark.large
def test_connects_to_an_existing_scheduler_by_address_and_leaves_it_running():
    from dask.distributed import LocalCluster

    X, y = load_table("iris")
    with LocalCluster(n_workers=1, processes=True, dashboard_address=None) as cluster:
        with dask_backend(cluster.scheduler_address) as client:
            with get_task_stream(client) as stream:
                make_model("random_forest", n_estimators=8, random_state=0, n_jobs=-1).fit(X, y)
        assert len(stream.data) > 0
        assert cluster.status.name == "running"
