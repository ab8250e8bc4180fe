"""The package on one GPU at world size 1 (skipped without PyTorch, a GPU or the library): all_reduce (the sum over
one rank is the input), registered tensors, the fused all-reduce + residual + RMSNorm against a PyTorch reference,
and the torch.ops.nvrar custom ops eagerly, under torch.compile(fullgraph=True), inside a captured CUDA graph and
under torch.compile's CUDA-graph mode. Several ranks: tests/torchrun_check.py under torchrun."""

import os

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import nvrar  # noqa: E402

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.fixture(scope="module")
def comm():
    for launcher_variable in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"):
        os.environ.pop(launcher_variable, None)  # one rank, whatever launched pytest
    try:
        c = nvrar.Communicator(device=0, max_bytes=8 << 20, buffer_bytes=16 << 20)
    except nvrar.Error as e:
        pytest.fail(f"creating a communicator failed: {e}")
    yield c
    c.close()


def test_one_rank(comm):
    assert comm.rank == 0 and comm.size == 1
    assert "P=1" in comm.describe()
    assert comm.resolve(4096) in nvrar.ALGORITHMS


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_reduce_of_one_rank_is_the_input(comm, dtype):
    x = torch.randn(3, 1000, device="cuda:0").to(dtype)
    y = comm.all_reduce(x)
    assert y.data_ptr() != x.data_ptr()
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    z = x.clone()
    assert comm.all_reduce(z, out=z) is z
    torch.testing.assert_close(z, x, rtol=0, atol=0)
    comm.synchronize()


def test_bad_tensors_are_refused_before_nvrar(comm):
    x = torch.randn(8, 16, device="cuda:0")
    with pytest.raises(nvrar.ArgumentError, match="contiguous"):
        comm.all_reduce(x.t())
    with pytest.raises(nvrar.ArgumentError, match="is on cpu"):
        comm.all_reduce(x.cpu())
    with pytest.raises(TypeError, match="not supported"):
        comm.all_reduce(x.to(torch.int32))
    with pytest.raises(nvrar.ArgumentError, match="out is"):
        comm.all_reduce(x, out=torch.empty(4, device="cuda:0"))


def test_nvrars_own_refusal_keeps_its_message(comm):
    x = torch.randn(1024, device="cuda:0")
    if not comm.supports("registered"):
        pytest.skip("no registered algorithm in this build")
    with pytest.raises(nvrar.Error) as raised:
        comm.all_reduce(x, algorithm="registered")  # its input must lie in a registered buffer
    assert str(raised.value).startswith("nvrar: rank 0 allreduce")
    assert str(raised.value) == nvrar._library.last_error()
    comm.check()  # a refused call leaves the communicator usable


def test_registered_tensor(comm):
    if not nvrar.built_with_nvshmem():
        with pytest.raises(nvrar.Error, match="no NVSHMEM"):
            comm.empty((4, 256), torch.bfloat16)
        pytest.skip("this build has no NVSHMEM: registered memory refused as expected")
    buf = comm.empty((4, 4096), torch.bfloat16)
    assert buf.shape == (4, 4096) and buf.dtype == torch.bfloat16 and buf.device == comm.device
    assert comm.is_registered(buf) and not comm.is_registered(torch.empty_like(buf))
    buf.copy_(torch.randn(4, 4096, device="cuda:0"))
    torch.testing.assert_close(comm.all_reduce(buf), buf, rtol=0, atol=0)
    comm.free(buf)


def _reference_add_rmsnorm(x, residual, weight, eps):
    """Hugging Face LlamaRMSNorm after the residual add: the sum rounded to the dtype, the norm in fp32."""
    summed = x + residual
    h = summed.float()
    normed = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return summed, weight * normed.to(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_allreduce_add_rmsnorm_matches_the_reference(comm, dtype):
    x, residual = (torch.randn(5, 512, device="cuda:0").to(dtype) for _ in range(2))
    weight = torch.rand(512, device="cuda:0").to(dtype)
    want_residual, want = _reference_add_rmsnorm(x, residual, weight, 1e-5)
    got = comm.allreduce_add_rmsnorm(x, residual, weight, 1e-5)
    tol = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}[dtype]
    torch.testing.assert_close(residual, want_residual, rtol=tol, atol=tol)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_custom_op_eager_and_under_torch_compile_fullgraph(comm):
    name = comm.name

    def step(x):
        return torch.ops.nvrar.all_reduce(x * 2, name) + 1

    x = torch.randn(4, 2048, device="cuda:0", dtype=torch.bfloat16)
    torch.testing.assert_close(step(x), x * 2 + 1)
    compiled = torch.compile(step, fullgraph=True)
    for _ in range(2):
        x = torch.randn(4, 2048, device="cuda:0", dtype=torch.bfloat16)
        torch.testing.assert_close(compiled(x), x * 2 + 1)


def test_custom_op_replayed_from_a_cuda_graph(comm):
    name = comm.name
    static_in = torch.zeros(8, 4096, device="cuda:0", dtype=torch.bfloat16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside capture, as torch.cuda.graph's documentation asks
        torch.ops.nvrar.all_reduce(static_in, name)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = torch.ops.nvrar.all_reduce(static_in * 3, name)
    for _ in range(3):
        x = torch.randn(8, 4096, device="cuda:0", dtype=torch.bfloat16)
        static_in.copy_(x)
        graph.replay()
        torch.testing.assert_close(static_out, x * 3)
    comm.synchronize()


def test_fused_op_under_torch_compile_with_cuda_graphs(comm):
    name = comm.name

    def layer_end(x, residual, weight):
        out = torch.ops.nvrar.allreduce_add_rmsnorm(x, residual, weight, 1e-5, name)
        return out * 2

    compiled = torch.compile(layer_end, fullgraph=True, mode="reduce-overhead")
    weight = torch.rand(1024, device="cuda:0", dtype=torch.bfloat16)
    for _ in range(4):  # the first calls record, the later ones replay the CUDA graph
        x, residual = (torch.randn(2, 1024, device="cuda:0", dtype=torch.bfloat16) for _ in range(2))
        want_residual, want = _reference_add_rmsnorm(x, residual, weight, 1e-5)
        got = compiled(x, residual, weight)
        torch.testing.assert_close(residual, want_residual, rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(got, want * 2, rtol=2e-2, atol=4e-2)
