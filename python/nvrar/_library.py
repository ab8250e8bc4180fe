"""Loading libnvrar_c.so (NVRAR's C ABI, include/nvrar/nvrar_c.h) and calling it through ctypes.

Where the library is looked for, first match wins:
  1. NVRAR_LIBRARY: the path of a libnvrar_c.so (an error if that file cannot be loaded);
  2. the copy inside this package (nvrar/lib/libnvrar_c.so), which `pip install ./python` bundles from a build
     tree (python/setup.py says which);
  3. the system's library search (LD_LIBRARY_PATH, the ld.so cache): where `cmake --install` put it.

PyTorch is imported first when it is installed, so that NVRAR binds to the CUDA runtime and NCCL PyTorch already
loaded (one copy of each in the process) rather than loading a second one.

Every C call goes through call(): a status other than NVRAR_SUCCESS raises nvrar.Error (ArgumentError for
NVRAR_ERROR_INVALID_ARGUMENT) carrying nvrar_last_error()'s message unchanged.
"""

import ctypes
import os
import threading

ABI_VERSION = 1  # NVRAR_C_ABI_VERSION this package was written against
LIBRARY_NAME = "libnvrar_c.so"
LIBRARY_ENV = "NVRAR_LIBRARY"

SUCCESS = 0
ERROR_INVALID_ARGUMENT = 1

DTYPES = {"float32": 0, "bfloat16": 1, "float16": 2}
ALGORITHMS = ("auto", "hierarchical", "nccl", "oneshot", "registered", "ll128", "push")


class Error(RuntimeError):
    """A failed NVRAR call. str(error) is NVRAR's own message (rank, call, cause); status is the C status code."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class ArgumentError(Error, ValueError):
    """NVRAR_ERROR_INVALID_ARGUMENT, or an argument this package refuses before calling NVRAR."""


class Options(ctypes.Structure):
    """nvrar_options_t (same fields, same order)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("max_bytes", ctypes.c_size_t),
        ("gpus_per_node", ctypes.c_int),
        ("timeout_ms", ctypes.c_int),
        ("algorithm", ctypes.c_int),
        ("auto_may_use_nccl", ctypes.c_int),
        ("oneshot_max_bytes", ctypes.c_size_t),
        ("ll128_max_bytes", ctypes.c_size_t),
        ("buffer_bytes", ctypes.c_size_t),
        ("tuning_file", ctypes.c_char_p),
    ]


class UniqueId(ctypes.Structure):
    """nvrar_unique_id_t: 128 opaque bytes (an ncclUniqueId)."""

    _fields_ = [("internal", ctypes.c_char * 128)]


_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_size_p = ctypes.POINTER(ctypes.c_size_t)
_void_p = ctypes.c_void_p
_comm = ctypes.c_void_p  # nvrar_comm_t
_status = ctypes.c_int

# name: (restype, argtypes). Functions returning nvrar_status_t are called through call().
_PROTOTYPES = {
    "nvrar_abi_version": (ctypes.c_int, []),
    "nvrar_version": (ctypes.c_char_p, []),
    "nvrar_built_with_nvshmem": (ctypes.c_int, []),
    "nvrar_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "nvrar_algorithm_name": (ctypes.c_char_p, [ctypes.c_int]),
    "nvrar_last_error": (ctypes.c_char_p, []),
    "nvrar_options_init": (_status, [ctypes.POINTER(Options)]),
    "nvrar_parse_algorithm": (_status, [ctypes.c_char_p, _c_int_p]),
    "nvrar_comm_create": (_status, [ctypes.POINTER(Options), ctypes.POINTER(_comm)]),
    "nvrar_get_unique_id": (_status, [ctypes.POINTER(UniqueId)]),
    "nvrar_comm_create_from_unique_id": (
        _status,
        [ctypes.POINTER(UniqueId), ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(Options),
         ctypes.POINTER(_comm)],
    ),
    "nvrar_comm_create_from_nccl": (_status, [_void_p, ctypes.POINTER(Options), ctypes.POINTER(_comm)]),
    "nvrar_comm_destroy": (_status, [_comm]),
    "nvrar_comm_rank": (_status, [_comm, _c_int_p]),
    "nvrar_comm_size": (_status, [_comm, _c_int_p]),
    "nvrar_comm_nodes": (_status, [_comm, _c_int_p]),
    "nvrar_comm_gpus_per_node": (_status, [_comm, _c_int_p]),
    "nvrar_comm_max_bytes": (_status, [_comm, _c_size_p]),
    "nvrar_comm_describe": (_status, [_comm, ctypes.POINTER(ctypes.c_char_p)]),
    "nvrar_comm_supports": (_status, [_comm, ctypes.c_int, _c_int_p]),
    "nvrar_comm_resolve": (_status, [_comm, ctypes.c_size_t, ctypes.c_int, _c_int_p]),
    "nvrar_allreduce": (_status, [_comm, _void_p, _void_p, ctypes.c_size_t, ctypes.c_int, _void_p, ctypes.c_int]),
    "nvrar_allreduce_add_rmsnorm": (
        _status,
        [_comm, _void_p, _void_p, _void_p, _void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_float, ctypes.c_int,
         _void_p, ctypes.c_int],
    ),
    "nvrar_comm_check": (_status, [_comm]),
    "nvrar_comm_synchronize": (_status, [_comm, _void_p]),
    "nvrar_buffer_allocate": (_status, [_comm, ctypes.c_size_t, ctypes.POINTER(_void_p)]),
    "nvrar_buffer_free": (_status, [_comm, _void_p]),
    "nvrar_buffer_is_registered": (_status, [_comm, _void_p, ctypes.c_size_t, _c_int_p]),
}

_lock = threading.Lock()
_lib = None


def _candidates():
    """(description, path or bare name) in search order."""
    explicit = os.environ.get(LIBRARY_ENV, "")
    if explicit:
        return [(f"{LIBRARY_ENV}={explicit}", explicit)]
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", LIBRARY_NAME)
    found = [("the copy in this package", bundled)] if os.path.exists(bundled) else []
    return found + [("the system library path", LIBRARY_NAME)]


def _open():
    try:  # one CUDA runtime and one NCCL in the process: PyTorch's, where PyTorch is installed
        import torch  # noqa: F401
    except ImportError:
        pass
    tried = []
    for where, path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{where}: {e}")
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        version = lib.nvrar_abi_version()
        if version != ABI_VERSION:
            raise Error(f"nvrar: {path} has C ABI version {version}; this Python package needs {ABI_VERSION} "
                        f"(rebuild NVRAR and the package from one source tree)")
        return lib
    raise Error("nvrar: cannot load " + LIBRARY_NAME + " (" + "; ".join(tried) + "); build NVRAR with CUDA and set "
                + LIBRARY_ENV + " to the built library, or reinstall this package from a build tree "
                "(docs/pytorch.md)")


def library():
    """The loaded libnvrar_c.so (loaded on first use)."""
    global _lib
    with _lock:
        if _lib is None:
            _lib = _open()
        return _lib


def last_error():
    return library().nvrar_last_error().decode(errors="replace")


def call(name, *args):
    """Calls nvrar_<name> and raises nvrar.Error with NVRAR's message if it does not return NVRAR_SUCCESS."""
    lib = library()
    status = getattr(lib, name)(*args)
    if status != SUCCESS:
        message = lib.nvrar_last_error().decode(errors="replace")
        cls = ArgumentError if status == ERROR_INVALID_ARGUMENT else Error
        raise cls(message, status)


def version():
    """NVRAR's release ("0.1.0") as the loaded library reports it."""
    return library().nvrar_version().decode()


def built_with_nvshmem():
    """Whether the loaded library has NVRAR's own GPU kernels (without NVSHMEM it runs NCCL only)."""
    return bool(library().nvrar_built_with_nvshmem())


def algorithm_value(name):
    """An algorithm name ("auto", "oneshot", ...; also the older spellings) as its C value."""
    value = ctypes.c_int(0)
    call("nvrar_parse_algorithm", str(name).encode(), ctypes.byref(value))
    return value.value


def algorithm_name(value):
    name = library().nvrar_algorithm_name(int(value))
    return None if name is None else name.decode()


def make_options(**fields):
    """nvrar_options_t at the library's defaults, with `fields` (the struct's names; algorithm by name) set."""
    options = Options()
    call("nvrar_options_init", ctypes.byref(options))
    for key, value in fields.items():
        if value is None:
            continue
        if key == "algorithm":
            value = algorithm_value(value)
        elif key == "tuning_file":
            value = os.fsencode(value)
        elif key == "auto_may_use_nccl":
            value = 1 if value else 0
        elif key == "struct_size" or key not in dict(Options._fields_):
            raise ArgumentError(f"nvrar: unknown option {key!r} (known: "
                                + ", ".join(n for n, _ in Options._fields_[1:]) + ")")
        setattr(options, key, value)
    return options


def unique_id():
    """A fresh NCCL unique id as 128 bytes (one rank makes it and sends it to the others)."""
    uid = UniqueId()
    call("nvrar_get_unique_id", ctypes.byref(uid))
    return ctypes.string_at(ctypes.addressof(uid), ctypes.sizeof(uid))


def unique_id_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)) or len(data) != ctypes.sizeof(UniqueId):
        raise ArgumentError(f"nvrar: a unique id is {ctypes.sizeof(UniqueId)} bytes, got {data!r:.40}")
    uid = UniqueId()
    ctypes.memmove(ctypes.addressof(uid), bytes(data), len(data))
    return uid
