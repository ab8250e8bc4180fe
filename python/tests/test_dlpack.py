"""The DLPack description that registered tensors are made from (nvrar/_dlpack.py): the structure layout of
dlpack.h, the fields read back through ctypes, the deleter releasing the description, and (where PyTorch is
installed) PyTorch consuming it as a view of host memory. No GPU needed."""

import ctypes

import pytest

from nvrar import _dlpack


def test_layout_is_dlpacks():
    # dlpack.h, on LP64: DLTensor {data 0, device 8, ndim 16, dtype 20, shape 24, strides 32, byte_offset 40}
    # and DLManagedTensor {dl_tensor 0, manager_ctx 48, deleter 56}.
    offsets = {name: getattr(_dlpack._Tensor, name).offset for name, _ in _dlpack._Tensor._fields_}
    assert offsets == {"data": 0, "device": 8, "ndim": 16, "dtype": 20, "shape": 24, "strides": 32,
                       "byte_offset": 40}
    assert ctypes.sizeof(_dlpack._Tensor) == 48
    assert (_dlpack._Managed.manager_ctx.offset, _dlpack._Managed.deleter.offset) == (48, 56)
    assert ctypes.sizeof(_dlpack._DataType) == 4


def test_capsule_describes_the_memory_and_the_deleter_forgets_it():
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    before = len(_dlpack._live)
    capsule = _dlpack.capsule_over(0x7F0000001000, (3, 5, 7), _dlpack._DataType(_dlpack._KDL_BFLOAT, 16, 1), 2)
    address = get_pointer(capsule, b"dltensor")
    managed = _dlpack._Managed.from_address(address)
    t = managed.dl_tensor
    assert t.data == 0x7F0000001000 and t.byte_offset == 0
    assert (t.device.device_type, t.device.device_id) == (_dlpack._KDL_CUDA, 2)
    assert (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (_dlpack._KDL_BFLOAT, 16, 1)
    assert t.ndim == 3
    assert [t.shape[i] for i in range(3)] == [3, 5, 7]
    assert [t.strides[i] for i in range(3)] == [35, 7, 1]  # row-major, in elements
    assert len(_dlpack._live) == before + 1
    managed.deleter(address)  # what the consumer (PyTorch) does when its tensor dies
    assert len(_dlpack._live) == before


def test_pytorch_reads_and_writes_the_memory_described():
    """PyTorch consumes the capsule as a view of the memory (host memory here, so that no GPU is needed) and calls
    the deleter when its tensor dies."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    import gc

    for dtype, dl_dtype in ((torch.float32, _dlpack._DataType(_dlpack._KDL_FLOAT, 32, 1)),
                            (torch.bfloat16, _dlpack._DataType(_dlpack._KDL_BFLOAT, 16, 1))):
        memory = (ctypes.c_uint8 * 256)()
        before = len(_dlpack._live)
        t = torch.from_dlpack(_dlpack.capsule_over(ctypes.addressof(memory), (4, 8), dl_dtype, 0, _dlpack._KDL_CPU))
        assert t.shape == (4, 8) and t.dtype == dtype and t.is_contiguous()
        assert t.data_ptr() == ctypes.addressof(memory)
        t.fill_(1.5)
        raw = bytes(memory)[: 4 * 8 * t.element_size()]
        assert torch.frombuffer(bytearray(raw), dtype=dtype).eq(1.5).all()
        del t
        gc.collect()
        assert len(_dlpack._live) == before
