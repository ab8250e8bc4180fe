"""A torch tensor over device memory that NVRAR owns (a registered buffer), without copying and without numpy.

The memory is described by a DLPack DLManagedTensor built with ctypes and handed to torch.utils.dlpack.from_dlpack
inside a "dltensor" capsule. The tensor does not own the memory: when torch drops the tensor it calls the deleter,
which only forgets the description here. The buffer itself is freed by Communicator.free() or when the communicator
closes (collective calls, which must not run at a garbage collector's whim on one rank).
"""

import ctypes
import threading

_KDL_CPU = 1
_KDL_CUDA = 2
_KDL_FLOAT = 2
_KDL_BFLOAT = 4


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _Device),
        ("ndim", ctypes.c_int32),
        ("dtype", _DataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _Managed(ctypes.Structure):
    pass


_Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_Managed._fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter)]

_live = {}  # address of a _Managed -> the ctypes objects it points into, kept alive until torch lets go
_live_lock = threading.Lock()


@_Deleter
def _forget(address):
    with _live_lock:
        _live.pop(address, None)


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


def _dl_dtype(torch, dtype):
    codes = {torch.float32: (_KDL_FLOAT, 32), torch.float16: (_KDL_FLOAT, 16), torch.bfloat16: (_KDL_BFLOAT, 16)}
    if dtype not in codes:
        raise TypeError(f"nvrar: registered tensors are float32, bfloat16 or float16, not {dtype}")
    code, bits = codes[dtype]
    return _DataType(code, bits, 1)


def capsule_over(pointer, shape, dl_dtype, device_index, device_type=_KDL_CUDA):
    """A "dltensor" capsule describing a contiguous array of `shape` and `dl_dtype` at `pointer` on cuda:device_index
    (device_type _KDL_CPU: host memory, for tests); its description stays in _live until the consumer calls the
    deleter."""
    shape = [int(n) for n in shape]
    ndim = len(shape)
    strides, step = [0] * ndim, 1
    for i in reversed(range(ndim)):
        strides[i] = step
        step *= max(shape[i], 1)
    shape_array = (ctypes.c_int64 * max(ndim, 1))(*shape)
    strides_array = (ctypes.c_int64 * max(ndim, 1))(*strides)
    as_int64_p = ctypes.POINTER(ctypes.c_int64)
    managed = _Managed()
    managed.dl_tensor = _Tensor(pointer, _Device(device_type, device_index), ndim, dl_dtype,
                                ctypes.cast(shape_array, as_int64_p), ctypes.cast(strides_array, as_int64_p), 0)
    managed.manager_ctx = None
    managed.deleter = _forget
    address = ctypes.addressof(managed)
    with _live_lock:
        _live[address] = (managed, shape_array, strides_array)
    return _capsule_new(address, b"dltensor", None)


def tensor_over(torch, pointer, shape, dtype, device_index):
    """A contiguous tensor of `shape` and `dtype` on cuda:`device_index` whose data is at `pointer`."""
    return torch.from_dlpack(capsule_over(pointer, shape, _dl_dtype(torch, dtype), device_index))
