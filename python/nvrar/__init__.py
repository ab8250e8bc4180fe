"""NVRAR for Python: the low-latency hierarchical all-reduce over NVRAR's C ABI (libnvrar_c.so) through ctypes.

    import nvrar
    comm = nvrar.Communicator()            # torch.distributed's default group, or the launcher environment
    y = comm.all_reduce(x)                 # on the current stream
    y = torch.ops.nvrar.all_reduce(x, comm.name)   # the same, as one op for torch.compile and CUDA graphs

No build step and no build-time PyTorch: the package is plain Python, PyTorch is imported when a communicator is made.
docs/pytorch.md has the guide (installing, where libnvrar_c.so is found, vLLM and SGLang).
"""

from ._library import ALGORITHMS, ArgumentError, Error, algorithm_name, built_with_nvshmem, unique_id, version
from .communicator import Communicator

__version__ = "0.1.0"

__all__ = ["ALGORITHMS", "ArgumentError", "Communicator", "Error", "algorithm_name", "built_with_nvshmem",
           "unique_id", "version"]
