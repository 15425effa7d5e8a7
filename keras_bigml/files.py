"""Atomic writes: a crash mid-write never destroys what was saved before."""

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path`; on success move it onto `path`.

    Works for files and directories. The temporary name ends with `suffix`
    (Keras insists on `.keras` for model files). On an exception the old
    `path` is untouched and the temporary is removed.

    Example:

    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_path(target) as tmp:
    ...     _ = open(tmp, "w").write("hello")
    >>> open(target).read()
    'hello'
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    tmp = os.path.join(tmp_dir, os.path.basename(path) + suffix)
    try:
        yield tmp
        _replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _replace(new, path):
    if not os.path.isdir(new):
        os.replace(new, path)
        return
    # A directory cannot be renamed over a non-empty one: move the old one
    # aside first, so that one complete copy exists at every moment.
    old = None
    if os.path.exists(path):
        old = path + ".old-" + str(os.getpid())
        os.replace(path, old)
    os.replace(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def process_alive(pid: int, host: str | None = None) -> bool:
    """Whether process ``pid`` still runs. A process on another ``host`` cannot be checked from
    here, so it counts as running; a pid that is not a positive integer does not.

    >>> process_alive(os.getpid()), process_alive(None), process_alive(1, host="elsewhere")
    (True, False, True)
    """
    if host is not None and host != socket.gethostname():
        return True
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


def plain_value(value: object) -> object:
    """A NumPy scalar as the Python number JSON can write, in a dict its values; others unchanged.

    >>> import numpy as np
    >>> plain_value(np.float32(0.5)), plain_value("gini"), plain_value({"max_depth": np.int64(3)})
    (0.5, 'gini', {'max_depth': 3})
    """
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    return value.item() if hasattr(value, "item") else value
