"""The package's import: the TensorFlow default it sets before TensorFlow loads."""

import os
import subprocess
import sys

import pytest

ONEDNN = (
    "import keras_bigml\n"
    "from tensorflow.python.util import _pywrap_util_port\n"
    "print(_pywrap_util_port.IsMklEnabled())\n"
)


@pytest.mark.large
@pytest.mark.parametrize(("setting", "enabled"), [(None, "True"), ("0", "False")])
def test_onednn_kernels_are_on_unless_the_user_turned_them_off(setting, enabled):
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    result = subprocess.run([sys.executable, "-c", ONEDNN], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.stdout.strip() == enabled, result.stderr[-1000:]
