"""Quiet TensorFlow for the command line: no native log lines unless asked for.

TensorFlow prints lines from native code before its logging starts (the absl
notice, CUDA probing, a ``cuInit`` error on machines without a GPU, the oneDNN
and CPU-feature notices); ``TF_CPP_MIN_LOG_LEVEL`` does not reach those. So
`quiet_tensorflow` also points the process's stderr at /dev/null while
TensorFlow is imported and its devices are set up, then restores it.
"""

import contextlib
import os
import sys
import warnings


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their log lines silenced, and keep them quiet afterwards."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_to_devnull():
        import absl.logging
        import keras  # noqa: F401  its import prints too
        import tensorflow as tf

        tf.config.list_physical_devices()
    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")


def one_line_warnings(prefix: str) -> None:
    """Show Python warnings as ``PREFIX: warning: MESSAGE`` lines on stderr, without source lines."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
