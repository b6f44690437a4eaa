"""The CuPy stand-in refuses what CuPy or CUDA would get wrong (each rule of tests/fake_cupy.py can fail)."""

import gc

import numpy as np
import pytest

import fake_cupy
from fake_cupy import StreamRace, check_arguments, parse_signatures

SOURCE = """
typedef long long i64;
extern "C" __global__ void k(const float* __restrict__ a, unsigned int* b, i64 n, int m, double x, bool flag) {}
"""


@pytest.fixture
def cupy(cupy_stand_in):
    import cupy

    return cupy


def test_asarray_keeps_fortran_order_as_cupy(cupy):
    f = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert cupy.asarray(f).flags.f_contiguous and not cupy.asarray(f).flags.c_contiguous
    strided = np.arange(24, dtype=np.float32).reshape(3, 8)[:, ::2]
    assert cupy.asarray(strided).flags.c_contiguous  # neither C nor F: CuPy copies to C
    assert cupy.ascontiguousarray(f).flags.c_contiguous
    assert cupy.empty_like(cupy.asarray(f)).flags.f_contiguous


def test_kernel_arguments_follow_cupy_marshalling(cupy):
    (params,) = parse_signatures(SOURCE).values()
    a = cupy.zeros(4, dtype=np.float32)
    b = cupy.zeros(4, dtype=np.uint32)
    good = (a, b, 7, np.int32(3), 2.5, True)  # Python int: long long; float: double; bool: bool
    assert len(check_arguments("k", params, good)) == 6
    bad = {
        "arguments for": (a, b, 7, np.int32(3), 2.5),
        "float64 array for a float32": (cupy.zeros(4), b, 7, np.int32(3), 2.5, True),
        "not C-contiguous": (cupy.asarray(np.asfortranarray(np.zeros((2, 2), np.float32))), b, 7, np.int32(3), 2.5,
                             True),
        "numpy.ndarray of shape": (np.zeros(4, np.float32), b, 7, np.int32(3), 2.5, True),
        "passed for a pointer": (np.zeros(1, np.float32), b, 7, np.int32(3), 2.5, True),
        "numpy int32 is passed as int32, the parameter is int64": (a, b, np.int32(7), np.int32(3), 2.5, True),
        "Python int is passed as int64, the parameter is int32": (a, b, 7, 3, 2.5, True),
        "numpy float32": (a, b, 7, np.int32(3), np.float32(2.5), True),
        "Python bool": (a, b, 7, True, 2.5, True),
        "None": (a, b, 7, np.int32(3), 2.5, None),
        "device array passed for": (a, b, cupy.zeros(1, dtype=np.int64), np.int32(3), 2.5, True),
    }
    for message, args in bad.items():
        with pytest.raises((TypeError, ValueError), match=message):
            check_arguments("k", params, args)


def test_launch_dimensions_are_tuples_in_range(cupy):
    from gpucal.gpu.compile import kernel

    ipc = kernel("ipc", "ipc_2d_kernel")
    with pytest.raises(TypeError, match="expected tuple"):
        ipc([1], (32,), ())
    with pytest.raises(ValueError, match="1024 threads"):
        ipc((1,), (64, 32), ())
    with pytest.raises(ValueError, match="must be in"):
        ipc((2**31,), (32,), ())


def test_cross_stream_use_needs_an_event_or_a_synchronisation(cupy):
    s1, s2 = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    with s1:
        x = cupy.zeros(8, dtype=np.float32)
    with s2, pytest.raises(StreamRace, match="no synchronisation or event"):
        x + 1
    with s1:
        y = cupy.ones(8, dtype=np.float32)
    s2.wait_event(s1.record())
    with s2:
        y + 1  # ordered by the event
    with s1:
        z = cupy.zeros(8, dtype=np.float32)
    s1.synchronize()
    with s2:
        z + 1  # the host waited before issuing it


def test_null_stream_orders_blocking_streams_only(cupy):
    blocking, free = cupy.cuda.Stream(), cupy.cuda.Stream(non_blocking=True)
    x = cupy.asarray(np.arange(4.0))  # on the null stream
    with blocking:
        x * 2  # a blocking stream waits for the null stream
    with free, pytest.raises(StreamRace):
        x * 2


def test_a_write_must_follow_the_reads_of_another_stream(cupy):
    s1, s2 = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    x = cupy.zeros(4)
    cupy.cuda.Device().synchronize()
    with s1:
        x.sum()
    with s2, pytest.raises(StreamRace, match="overwrites device memory that"):
        x.fill(1.0)


def test_get_blocks_by_default_and_not_with_blocking_false(cupy):
    from gpucal.gpu.transfer import pinned_empty

    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        d = cupy.arange(6, dtype=np.int32)
    assert (d.get(stream=s) == np.arange(6)).all()  # blocking: the data is there
    out = pinned_empty((6,), np.int32)
    d.get(stream=s, out=out, blocking=False)
    assert (out.view(np.uint32) == 0xFFFFFFFF).all()  # still in flight: not the data yet
    s.synchronize()
    assert (out == np.arange(6)).all()


def test_pinned_buffer_changed_before_its_upload_finished(cupy):
    from gpucal.gpu.transfer import pinned_copy

    s = cupy.cuda.Stream(non_blocking=True)
    src = pinned_copy(np.arange(5, dtype=np.float32))
    dst = cupy.empty(5, dtype=np.float32)
    dst.set(src, stream=s)
    src[0] = 99.0  # the copy may not have read it yet
    with pytest.raises(StreamRace, match="changed pinned memory before"):
        s.synchronize()


def test_pinned_buffer_reused_while_a_download_into_it_is_in_flight(cupy):
    from gpucal.gpu.transfer import pinned_empty

    s1, s2 = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    out = pinned_empty((4,), np.float64)
    with s1:
        a = cupy.zeros(4)
    with s2:
        b = cupy.ones(4)
    a.get(stream=s1, out=out, blocking=False)
    with pytest.raises(StreamRace, match="still uses"):
        b.get(stream=s2, out=out, blocking=False)
    s1.synchronize()


def test_pinned_memory_freed_while_in_flight(cupy, cupy_stand_in):
    from gpucal.gpu.transfer import pinned_empty

    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        d = cupy.zeros(1000)
    d.get(stream=s, out=pinned_empty((1000,), np.float64), blocking=False)  # dropped at once
    gc.collect()
    with pytest.raises(StreamRace, match="freed"):
        s.synchronize()


def test_implicit_host_conversions_are_refused(cupy):
    from gpucal.gpu import transfer  # its np refuses device arrays, as CuPy's __array__ does

    d = cupy.zeros(3)
    with pytest.raises(TypeError, match="implicit device-to-host"):
        transfer.np.asarray(d)
    with pytest.raises(TypeError, match="host numpy array mixed"):
        d + np.ones(3)
    assert float(d.sum()) == 0.0  # a blocking get, as CuPy's __float__


def test_the_event_log_tells_overlap(cupy, cupy_stand_in):
    s1, s2 = cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)
    with s1:
        cupy.zeros(2)
    with s2:
        cupy.zeros(2)
    a, b = cupy_stand_in.log[-2:]
    assert cupy_stand_in.concurrent(a, b)
    s1.synchronize()
    with s2:
        cupy.zeros(2)
    assert not cupy_stand_in.concurrent(a, cupy_stand_in.log[-1])


def test_the_stand_in_is_the_only_one():
    assert not hasattr(fake_cupy, "install_chain_module") and not hasattr(fake_cupy, "host_kernel")
