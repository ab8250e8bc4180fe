"""nvrar.Communicator: NVRAR's all-reduce for PyTorch tensors, one GPU per process.

    comm = nvrar.Communicator()              # from torch.distributed's default group (or the launcher environment)
    y = comm.all_reduce(x)                   # on the current stream; x is not changed
    comm.all_reduce(x, out=x)                # in place
    buf = comm.empty((8, 8192), torch.bfloat16)   # in NVRAR's registered memory: all-reduces from it copy nothing
    y = torch.ops.nvrar.all_reduce(x, comm.name)  # the same call as one opaque op for torch.compile / CUDA graphs

Creation and close() are collective over the ranks of the group; calls enqueue on the current CUDA stream of the
communicator's device and return at once (stream-ordered, capturable in CUDA graphs). NVRAR's errors arrive as
nvrar.Error with NVRAR's own message.
"""

import atexit
import ctypes
import itertools
import weakref

from . import _dlpack, _library
from ._library import ArgumentError, call

_names = itertools.count()
_by_name = weakref.WeakValueDictionary()  # Communicator.name -> Communicator, for the torch ops (nvrar/ops.py)


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("nvrar.Communicator works on PyTorch tensors: install PyTorch") from e
    return torch


def lookup(name):
    """The open communicator called `name` (what the torch ops receive)."""
    comm = _by_name.get(name)
    if comm is None or comm._handle is None:
        raise ArgumentError(f"nvrar: no open communicator named {name!r}")
    return comm


class Communicator:
    """A communicator over the ranks of a torch.distributed group, or of the job the launcher started.

    group: a torch.distributed ProcessGroup. None: the default group if torch.distributed is initialised, otherwise
    the launcher's environment (mpirun, srun, torchrun; as the C++ API's Communicator::create). Through a group, rank
    0 makes an NCCL unique id and the group broadcasts it; NVRAR then builds its own NCCL communicator and its
    symmetric memory over the group's ranks. device: the GPU (default: torch.cuda.current_device()).
    options: nvrar::Options' fields (max_bytes, gpus_per_node, timeout_ms, algorithm (a name), auto_may_use_nccl,
    oneshot_max_bytes, ll128_max_bytes, buffer_bytes, tuning_file); unset ones keep NVRAR's defaults.
    """

    def __init__(self, group=None, *, device=None, **options):
        torch = _torch()
        self._handle = None
        self._buffers = {}  # data pointer -> bytes, of the buffers empty() handed out
        opts = _library.make_options(**options)
        self.device = _cuda_device(torch, device)
        handle = ctypes.c_void_p()
        dist = torch.distributed
        if group is None and dist.is_available() and dist.is_initialized():
            group = dist.group.WORLD
        if group is None:
            torch.cuda.set_device(self.device)
            call("nvrar_comm_create", ctypes.byref(opts), ctypes.byref(handle))
        else:
            rank, size = dist.get_rank(group), dist.get_world_size(group)
            payload = [_library.unique_id() if rank == 0 else None]
            with torch.cuda.device(self.device):  # an NCCL group broadcasts from the current GPU
                dist.broadcast_object_list(payload, src=dist.get_global_rank(group, 0), group=group)
            uid = _library.unique_id_from_bytes(payload[0])
            call("nvrar_comm_create_from_unique_id", ctypes.byref(uid), rank, size, self.device.index,
                 ctypes.byref(opts), ctypes.byref(handle))
        self._adopt(handle)

    @classmethod
    def from_nccl(cls, nccl_comm, *, device=None, **options):
        """Adopts an existing ncclComm_t (an integer address; the caller keeps owning it and destroys it after
        close()). Its GPU must be current."""
        torch = _torch()
        self = cls.__new__(cls)
        self._handle = None
        self._buffers = {}
        self.device = _cuda_device(torch, device)
        opts = _library.make_options(**options)
        handle = ctypes.c_void_p()
        call("nvrar_comm_create_from_nccl", ctypes.c_void_p(int(nccl_comm)), ctypes.byref(opts), ctypes.byref(handle))
        self._adopt(handle)
        return self

    def _adopt(self, handle):
        self._handle = handle
        self.name = f"nvrar{next(_names)}"
        _by_name[self.name] = self
        # Destroying is collective; at exit every rank that did not close() its communicator closes it here.
        atexit.register(_close_at_exit, weakref.ref(self))
        from . import ops  # noqa: F401  (registers torch.ops.nvrar.*)

    # ---- facts ----
    def _int(self, name):
        value = ctypes.c_int(0)
        call(name, self._live(), ctypes.byref(value))
        return value.value

    @property
    def rank(self):
        return self._int("nvrar_comm_rank")

    @property
    def size(self):
        return self._int("nvrar_comm_size")

    @property
    def nodes(self):
        return self._int("nvrar_comm_nodes")

    @property
    def gpus_per_node(self):
        return self._int("nvrar_comm_gpus_per_node")

    def describe(self):
        text = ctypes.c_char_p()
        call("nvrar_comm_describe", self._live(), ctypes.byref(text))
        return text.value.decode()

    def supports(self, algorithm):
        value = ctypes.c_int(0)
        call("nvrar_comm_supports", self._live(), _algorithm(algorithm), ctypes.byref(value))
        return bool(value.value)

    def resolve(self, nbytes, registered=False):
        """The algorithm (name) that auto runs for a message of nbytes, the same on every rank."""
        value = ctypes.c_int(0)
        call("nvrar_comm_resolve", self._live(), int(nbytes), 1 if registered else 0, ctypes.byref(value))
        return _library.algorithm_name(value.value)

    # ---- collectives ----
    def all_reduce(self, tensor, out=None, algorithm="auto"):
        """Sum of `tensor` over the ranks into `out` (a new tensor when None; `tensor` itself for in place), on the
        current stream. Returns out."""
        torch = _torch()
        self._check_tensor(tensor, "tensor")
        if out is None:
            out = torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)
        else:
            self._check_like(out, tensor, "out")
        call("nvrar_allreduce", self._live(), tensor.data_ptr(), out.data_ptr(), tensor.numel(),
             _dtype_value(tensor.dtype), self._stream(), _algorithm(algorithm))
        return out

    def allreduce_add_rmsnorm(self, x, residual, weight, eps=1e-5, out=None, algorithm="auto"):
        """residual += all_reduce(x) (in place); returns rmsnorm(residual, eps) * weight (into `out` if given), with
        Hugging Face LlamaRMSNorm's roundings. x, residual, out: (..., hidden); weight: (hidden,). On a one-rank group
        with NVRAR_PDL=1 (the default), weight must not be written by the kernel launched just before (nvrar.h)."""
        torch = _torch()
        self._check_tensor(x, "x")
        self._check_like(residual, x, "residual")
        hidden = x.shape[-1] if x.dim() > 0 else 1
        self._check_tensor(weight, "weight")
        if weight.dtype != x.dtype or weight.numel() != hidden:
            raise ArgumentError(f"nvrar: allreduce_add_rmsnorm: weight must be {hidden} elements of {x.dtype}, got "
                                f"{tuple(weight.shape)} {weight.dtype}")
        if out is None:
            out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        else:
            self._check_like(out, x, "out")
        rows = x.numel() // hidden if hidden else 0
        call("nvrar_allreduce_add_rmsnorm", self._live(), x.data_ptr(), residual.data_ptr(), weight.data_ptr(),
             out.data_ptr(), rows, hidden, float(eps), _dtype_value(x.dtype), self._stream(),
             _algorithm(algorithm))
        return out

    def check(self):
        """Raises nvrar.Error if an earlier call's kernel reported a failure (a peer timed out). Does not block."""
        call("nvrar_comm_check", self._live())

    def synchronize(self):
        """Waits for the current stream, then check()."""
        call("nvrar_comm_synchronize", self._live(), self._stream())

    # ---- registered memory (zero copy) ----
    def empty(self, shape, dtype=None):
        """An uninitialised contiguous tensor in NVRAR's registered memory. Collective: every rank asks for the same
        shape and dtype, in the same order. All-reduces whose input (and output) lie in such tensors, at the same
        offsets on every rank, skip the copy into NVRAR's exchange area. The memory stays until free(t) (collective)
        or close(); not during CUDA-graph capture."""
        torch = _torch()
        dtype = torch.bfloat16 if dtype is None else dtype
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list, torch.Size)) else (shape,)))
        _dtype_value(dtype)
        nbytes = max(1, _numel(shape)) * torch.empty((), dtype=dtype).element_size()
        pointer = ctypes.c_void_p()
        call("nvrar_buffer_allocate", self._live(), nbytes, ctypes.byref(pointer))
        self._buffers[pointer.value] = nbytes
        return _dlpack.tensor_over(torch, pointer.value, shape, dtype, self.device.index)

    def free(self, tensor):
        """Frees the registered memory under a tensor from empty() (collective; waits for the device first). Any
        tensor or CUDA graph still using it must not be used afterwards."""
        pointer = tensor.data_ptr()
        if pointer not in self._buffers:
            raise ArgumentError(f"nvrar: free: the tensor at {pointer:#x} is not the start of a buffer from empty()")
        call("nvrar_buffer_free", self._live(), ctypes.c_void_p(pointer))
        del self._buffers[pointer]

    def is_registered(self, tensor):
        value = ctypes.c_int(0)
        nbytes = tensor.numel() * tensor.element_size()
        call("nvrar_buffer_is_registered", self._live(), ctypes.c_void_p(tensor.data_ptr()), nbytes,
             ctypes.byref(value))
        return bool(value.value)

    # ---- lifetime ----
    def close(self):
        """Destroys the communicator (collective where it holds NVSHMEM memory; buffers from empty() go with it)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self._buffers.clear()
            call("nvrar_comm_destroy", handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = self.describe() if self._handle is not None else "closed"
        return f"nvrar.Communicator({self.name}: {state})"

    # ---- helpers ----
    def _live(self):
        if self._handle is None:
            raise ArgumentError("nvrar: this communicator is closed")
        return self._handle

    def _stream(self):
        return ctypes.c_void_p(_torch().cuda.current_stream(self.device).cuda_stream)

    def _check_tensor(self, t, what):
        torch = _torch()
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"nvrar: {what} must be a torch.Tensor, not {type(t).__name__}")
        if t.device != self.device:
            raise ArgumentError(f"nvrar: {what} is on {t.device}; this communicator's GPU is {self.device}")
        if not t.is_contiguous():
            raise ArgumentError(f"nvrar: {what} must be contiguous (call .contiguous())")
        _dtype_value(t.dtype)

    def _check_like(self, t, like, what):
        self._check_tensor(t, what)
        if t.shape != like.shape or t.dtype != like.dtype:
            raise ArgumentError(f"nvrar: {what} is {tuple(t.shape)} {t.dtype}, want {tuple(like.shape)} {like.dtype}")


def _cuda_device(torch, device):
    """torch.device("cuda", i) for None (the current GPU), an index, "cuda:i" or a torch.device."""
    if device is None:
        return torch.device("cuda", torch.cuda.current_device())
    if isinstance(device, int):
        device = torch.device("cuda", device)
    elif not isinstance(device, torch.device):
        device = torch.device(str(device))
    if device.type != "cuda":
        raise ArgumentError(f"nvrar: device {device} is not a CUDA device")
    return torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)


def _algorithm(name):
    """An algorithm name as its C value: the current names by table (no C call on the hot path), others parsed."""
    try:
        return _library.ALGORITHMS.index(name)
    except ValueError:
        return _library.algorithm_value(name)


def _numel(shape):
    n = 1
    for s in shape:
        if s < 0:
            raise ArgumentError(f"nvrar: negative dimension in shape {shape}")
        n *= s
    return n


def _dtype_value(dtype):
    name = str(dtype).replace("torch.", "")
    if name not in _library.DTYPES:
        raise TypeError(f"nvrar: dtype {dtype} is not supported (float32, bfloat16, float16)")
    return _library.DTYPES[name]


def _close_at_exit(ref):
    comm = ref()
    if comm is not None:
        try:
            comm.close()
        except _library.Error:
            pass  # a failed communicator is abandoned, not freed (nvrar.h); nothing more to do at exit
