"""Scale-out on Dask's distributed scheduler: scikit-learn's parallel work runs on its workers.

scikit-learn parallelizes with joblib (forest trees, search candidates, cross-
validation folds); inside :func:`dask_backend` that work goes to a Dask cluster.
"""

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import joblib

from keras_bigml.errors import EngineError

if TYPE_CHECKING:
    from distributed import Client


@contextlib.contextmanager
def dask_backend(address: str | None = None, n_workers: int = 2, threads_per_worker: int = 1) -> "Iterator[Client]":
    """Run joblib-parallel scikit-learn work on a Dask cluster; yield the client.

    Parameters
    ----------
    address : str, optional
        An existing scheduler, e.g. ``"tcp://10.0.0.5:8786"``. Without it a
        local cluster of ``n_workers`` processes is started and closed after.
    n_workers, threads_per_worker : int
        Size of the local cluster.

    Examples
    --------
    Fit a forest's trees on two worker processes (estimators need ``n_jobs=-1``)::

        with dask_backend() as client:
            make_model("random_forest", n_estimators=200, n_jobs=-1).fit(X, y)
    """
    from dask.distributed import Client, LocalCluster

    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
            dashboard_address=None,
        )
        address = cluster
    try:
        client = Client(address, timeout="30s")
    except OSError as error:
        if cluster is not None:
            cluster.close()
        raise EngineError(f"Cannot reach the Dask scheduler at {address} ({error}).") from None
    try:
        with joblib.parallel_backend("dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
