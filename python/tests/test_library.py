"""The package's CPU-side parts against a built libnvrar_c.so (NVRAR_LIBRARY; ctest sets it): loading, the ABI and
release versions, options, algorithm names, NCCL unique ids, and NVRAR's errors arriving as Python exceptions with
NVRAR's own message. No GPU and no PyTorch needed."""

import ctypes
import os
import subprocess
import sys

import pytest

import nvrar
from nvrar import _library

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _loadable():
    try:
        _library.library()
        return None
    except nvrar.Error as e:
        return str(e)


_why_not = _loadable()
needs_library = pytest.mark.skipif(_why_not is not None, reason=f"libnvrar_c.so not loadable: {_why_not}")


def _run_python(code, **env_changes):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


@needs_library
def test_versions_match_the_package():
    assert _library.library().nvrar_abi_version() == _library.ABI_VERSION
    assert nvrar.version() == nvrar.__version__
    with open(os.path.join(PYTHON_DIR, "pyproject.toml")) as f:
        assert f'version = "{nvrar.__version__}"' in f.read()


@needs_library
def test_algorithm_names_round_trip():
    for value, name in enumerate(nvrar.ALGORITHMS):
        assert nvrar.algorithm_name(value) == name
        assert _library.algorithm_value(name) == value
    assert _library.algorithm_value("twoshot") == _library.algorithm_value("hierarchical")  # an older spelling
    assert nvrar.algorithm_name(len(nvrar.ALGORITHMS)) is None


@needs_library
def test_unknown_algorithm_is_nvrars_message_as_an_argument_error():
    with pytest.raises(nvrar.ArgumentError) as raised:
        _library.algorithm_value("fastest")
    message = str(raised.value)
    assert message == _library.last_error()  # NVRAR's text, unchanged
    assert "fastest" in message and "oneshot" in message
    assert raised.value.status == _library.ERROR_INVALID_ARGUMENT
    assert isinstance(raised.value, ValueError)


@needs_library
def test_options_start_at_the_library_defaults_and_take_names():
    defaults = _library.make_options()
    assert defaults.struct_size == ctypes.sizeof(_library.Options)
    assert defaults.algorithm == 0 and defaults.auto_may_use_nccl == 1 and defaults.max_bytes > 0
    changed = _library.make_options(algorithm="oneshot", max_bytes=1 << 20, auto_may_use_nccl=False,
                                    tuning_file="/tmp/table.json")
    assert changed.algorithm == _library.algorithm_value("oneshot")
    assert changed.max_bytes == 1 << 20 and changed.auto_may_use_nccl == 0
    assert changed.tuning_file == b"/tmp/table.json"
    assert changed.buffer_bytes == defaults.buffer_bytes
    with pytest.raises(nvrar.ArgumentError, match="unknown option 'max_byte'.*max_bytes"):
        _library.make_options(max_byte=1)


@needs_library
def test_c_layer_refusals_become_argument_errors():
    value = ctypes.c_int(0)
    with pytest.raises(nvrar.ArgumentError, match="^nvrar: nvrar_comm_rank: comm is NULL$"):
        _library.call("nvrar_comm_rank", None, ctypes.byref(value))
    bad = _library.make_options()
    bad.timeout_ms = -5
    handle = ctypes.c_void_p()
    with pytest.raises(nvrar.ArgumentError, match="timeout_ms -5"):
        _library.call("nvrar_comm_create", ctypes.byref(bad), ctypes.byref(handle))
    uid = _library.UniqueId()
    with pytest.raises(nvrar.ArgumentError, match="rank 3 of size 2"):
        _library.call("nvrar_comm_create_from_unique_id", ctypes.byref(uid), 3, 2, -1, None, ctypes.byref(handle))


@needs_library
def test_unique_ids_are_128_fresh_bytes():
    first, second = nvrar.unique_id(), nvrar.unique_id()
    assert len(first) == 128 and len(second) == 128
    assert first != second
    uid = _library.unique_id_from_bytes(first)
    assert ctypes.string_at(ctypes.addressof(uid), 128) == first
    with pytest.raises(nvrar.ArgumentError, match="128 bytes"):
        _library.unique_id_from_bytes(first[:100])


@needs_library
def test_runtime_errors_carry_the_librarys_message():
    """Without a GPU, creating a communicator fails inside the C++ library: nvrar.Error, its message verbatim."""
    probe = _run_python("import ctypes, nvrar\n"
                        "from nvrar import _library as L\n"
                        "h = ctypes.c_void_p()\n"
                        "try:\n"
                        "    L.call('nvrar_comm_create', None, ctypes.byref(h))\n"
                        "    print('created')\n"
                        "except nvrar.Error as e:\n"
                        "    print(type(e).__name__, e.status, e)\n",
                        CUDA_VISIBLE_DEVICES="", WORLD_SIZE=None, OMPI_COMM_WORLD_SIZE=None)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("Error 2 nvrar: rank 0 setup: no CUDA device visible"), probe.stdout


def test_a_missing_library_is_named_in_the_error():
    probe = _run_python("import nvrar\n"
                        "try:\n"
                        "    nvrar.version()\n"
                        "except nvrar.Error as e:\n"
                        "    print(e)\n",
                        NVRAR_LIBRARY="/nonexistent/libnvrar_c.so")
    assert probe.returncode == 0, probe.stderr
    assert "cannot load libnvrar_c.so (NVRAR_LIBRARY=/nonexistent/libnvrar_c.so" in probe.stdout
    assert "docs/pytorch.md" in probe.stdout


def test_communicator_without_pytorch_says_so():
    try:
        import torch  # noqa: F401
        pytest.skip("PyTorch is installed (tests/test_gpu_*.py use it)")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="install PyTorch"):
        nvrar.Communicator()
