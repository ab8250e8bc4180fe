"""`pip install` of the package with no network (--no-build-isolation --no-index): it installs, bundles the built
libnvrar_c.so that NVRAR_LIBRARY names, and the installed copy loads that bundled library with NVRAR_LIBRARY unset."""

import os
import subprocess
import sys

import pytest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.environ.get("NVRAR_LIBRARY", "")


def _has(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


# setuptools builds wheels itself from 70.1 on, with the wheel package before.
CAN_BUILD = _has("pip") and _has("setuptools") and (_has("wheel") or _has("setuptools.command.bdist_wheel"))


@pytest.mark.skipif(not os.path.isfile(LIBRARY), reason="NVRAR_LIBRARY does not name a built libnvrar_c.so")
@pytest.mark.skipif(not CAN_BUILD, reason="no pip, setuptools or wheel (python3-pip, -setuptools, -wheel)")
def test_offline_install_bundles_and_loads_the_library(tmp_path):
    target = tmp_path / "site"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps",
                              "--target", str(target), PYTHON_DIR],
                             env=env, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    bundled = target / "nvrar" / "lib" / "libnvrar_c.so"
    assert bundled.is_file(), install.stdout
    assert (target / "nvrar" / "lib" / "libnvrar_gpu.so").is_file()
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("NVRAR_LIBRARY")
    probe = subprocess.run([sys.executable, "-c", "import nvrar, nvrar._library as L\n"
                            "print(L._candidates()[0][1]); print(nvrar.version())"],
                           env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert probe.returncode == 0, probe.stderr
    where, version = probe.stdout.split()
    assert where == str(bundled)
    assert version == "0.1.0"
