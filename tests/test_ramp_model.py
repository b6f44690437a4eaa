"""The Ramp model: validation, properties and block reads."""

from __future__ import annotations

import numpy as np
import pytest

from gpucal import InputError, Ramp
from gpucal.ramp import RampBlock

SHAPE = (2, 5, 6, 7)  # nints, ngroups, ny, nx


def arrays(shape=SHAPE, data_dtype=np.float32):
    nints, ngroups, ny, nx = shape
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape).astype(data_dtype)
    groupdq = (np.arange(np.prod(shape)) % 7).astype(np.uint8).reshape(shape)
    pixeldq = (np.arange(ny * nx, dtype=np.uint32) * 65537).reshape(ny, nx)
    return data, groupdq, pixeldq


def make(**overrides):
    data, groupdq, pixeldq = arrays()
    kwargs = dict(group_time=10.737, frame_time=10.737, nframes=1)
    kwargs.update(overrides)
    data = kwargs.pop("data", data)
    groupdq = kwargs.pop("groupdq", groupdq)
    pixeldq = kwargs.pop("pixeldq", pixeldq)
    return Ramp(data, groupdq, pixeldq, **kwargs)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("bad_shape", [(5, 6, 7), (1, 2, 5, 6, 7), (6, 7)])
def test_data_wrong_ndim(bad_shape):
    with pytest.raises(InputError, match=r"data must be 4-D .*got \d-D"):
        make(data=np.zeros(bad_shape, np.float32))


@pytest.mark.parametrize("dtype", [bool, np.complex64, object])
def test_data_non_real_dtype(dtype):
    with pytest.raises(InputError, match=r"data must have a real .*dtype"):
        make(data=np.zeros(SHAPE, dtype=dtype))


def test_data_empty_axis():
    with pytest.raises(InputError, match="at least one element"):
        make(data=np.zeros((1, 0, 6, 7), np.float32), groupdq=np.zeros((1, 0, 6, 7), np.uint8))


def test_data_not_an_array():
    with pytest.raises(InputError, match="data must be an array"):
        make(data=[[1.0, 2.0]])


def test_groupdq_wrong_dtype_message():
    _, groupdq, _ = arrays()
    with pytest.raises(InputError) as info:
        make(groupdq=groupdq.astype(np.int16))
    assert str(info.value) == "groupdq must be uint8 with shape (2, 5, 6, 7), got int16 (2, 5, 6, 7)"


def test_groupdq_wrong_shape():
    with pytest.raises(InputError, match=r"groupdq must be uint8 with shape \(2, 5, 6, 7\), got uint8 \(2, 5, 6, 8\)"):
        make(groupdq=np.zeros((2, 5, 6, 8), np.uint8))


def test_pixeldq_wrong_dtype_and_shape():
    with pytest.raises(InputError, match=r"pixeldq must be uint32 with shape \(6, 7\), got int32 \(6, 7\)"):
        make(pixeldq=np.zeros((6, 7), np.int32))
    with pytest.raises(InputError, match=r"pixeldq must be uint32 with shape \(6, 7\), got uint32 \(7, 6\)"):
        make(pixeldq=np.zeros((7, 6), np.uint32))


def test_zeroframe_validation():
    with pytest.raises(InputError, match=r"zeroframe must be a real .*shape \(2, 6, 7\).*got float32 \(2, 6, 8\)"):
        make(zeroframe=np.zeros((2, 6, 8), np.float32))
    with pytest.raises(InputError, match=r"zeroframe must be a real .*got complex64"):
        make(zeroframe=np.zeros((2, 6, 7), np.complex64))


@pytest.mark.parametrize("name", ["group_time", "frame_time"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "10", True, None])
def test_invalid_times(name, value):
    with pytest.raises(InputError, match=f"{name} must be a finite number > 0"):
        make(**{name: value})


@pytest.mark.parametrize(
    "name,value",
    [("nframes", 0), ("nframes", 1.5), ("groupgap", -1), ("drop_frames1", -2), ("nframes", True)],
)
def test_invalid_counts(name, value):
    with pytest.raises(InputError, match=f"{name} must be an integer >="):
        make(**{name: value})


def test_input_error_is_value_error():
    with pytest.raises(ValueError):
        make(group_time=-1)


def test_meta_must_be_dict():
    with pytest.raises(InputError, match="meta must be a dict"):
        make(meta=[("INSTRUME", "NIRCAM")])


# ---------------------------------------------------------------- accepted inputs
@pytest.mark.parametrize("dtype", [np.uint16, np.int32, ">f4", np.float64, np.float16])
def test_accepts_real_dtypes_without_copy(dtype):
    data, groupdq, pixeldq = arrays(data_dtype=dtype)
    ramp = Ramp(data, groupdq, pixeldq, group_time=1.0, frame_time=1.0, nframes=1)
    assert ramp.data is data and ramp.groupdq is groupdq and ramp.pixeldq is pixeldq


def test_big_endian_pixeldq_accepted_and_converted():
    data, groupdq, pixeldq = arrays()
    ramp = Ramp(data, groupdq.astype(">u1"), pixeldq.astype(">u4"), group_time=1.0, frame_time=1.0, nframes=1)
    block = ramp.block(0, 6)
    assert block.pixeldq.dtype == np.dtype(np.uint32) and block.pixeldq.dtype.isnative
    np.testing.assert_array_equal(block.pixeldq, pixeldq)


def test_properties():
    zeroframe = np.zeros((2, 6, 7), np.float32)
    ramp = make(meta={"instrume": "nircam", "DETECTOR": "NRCA1"}, zeroframe=zeroframe, groupgap=2, drop_frames1=1)
    assert ramp.shape == SHAPE
    assert (ramp.nints, ramp.ngroups, ramp.ny, ramp.nx) == SHAPE
    assert ramp.instrument == "NIRCAM"
    assert ramp.meta == {"INSTRUME": "nircam", "DETECTOR": "NRCA1"}
    assert ramp.groupgap == 2 and ramp.drop_frames1 == 1 and ramp.nframes == 1
    assert isinstance(ramp.group_time, float)
    nints, ngroups, _, nx = SHAPE
    assert ramp.nbytes_per_row == nints * ngroups * nx * 5 + nx * 4 + nints * nx * 4
    assert make().nbytes_per_row == nints * ngroups * nx * 5 + nx * 4
    assert make().instrument == ""
    assert "Ramp(shape=(2, 5, 6, 7)" in repr(ramp)


def test_meta_is_copied_with_upper_case_keys():
    meta = {"instrume": "MIRI"}
    ramp = make(meta=meta)
    ramp.meta["NEW"] = 1
    assert meta == {"instrume": "MIRI"}
    assert ramp.instrument == "MIRI"


# ---------------------------------------------------------------- block()
def test_block_rows_and_layout():
    data, groupdq, pixeldq = arrays(data_dtype=">f4")
    zeroframe = np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7)
    ramp = Ramp(data, groupdq, pixeldq, group_time=1.0, frame_time=1.0, nframes=1, zeroframe=zeroframe)
    block = ramp.block(2, 5)
    assert isinstance(block, RampBlock)
    expected = {
        "data": (np.float32, data[:, :, 2:5, :]),
        "groupdq": (np.uint8, groupdq[:, :, 2:5, :]),
        "pixeldq": (np.uint32, pixeldq[2:5]),
        "zeroframe": (np.float32, zeroframe[:, 2:5, :]),
    }
    for name, (dtype, ref) in expected.items():
        arr = getattr(block, name)
        assert arr.dtype == np.dtype(dtype) and arr.dtype.isnative, name
        assert arr.flags.c_contiguous and arr.flags.writeable, name
        np.testing.assert_array_equal(arr, ref.astype(dtype), err_msg=name)
    assert block.data.shape == (2, 5, 3, 7)
    assert block.pixeldq.shape == (3, 7) and block.zeroframe.shape == (2, 3, 7)


def test_block_never_aliases_the_ramp():
    data, groupdq, pixeldq = arrays(shape=(1, 1, 6, 7))
    ramp = Ramp(data, groupdq, pixeldq, group_time=1.0, frame_time=1.0, nframes=1)
    block = ramp.block(0, 6)  # the whole, already contiguous float32 array
    block.data[...] = -1
    block.groupdq[...] = 255
    block.pixeldq[...] = 7
    assert data.min() == 0 and groupdq.max() < 255 and pixeldq[0, 1] == 65537


def test_block_without_zeroframe():
    assert make().block(0, 1).zeroframe is None


def test_block_converts_uint16():
    data, groupdq, pixeldq = arrays(data_dtype=np.uint16)
    ramp = Ramp(data, groupdq, pixeldq, group_time=1.0, frame_time=1.0, nframes=1)
    block = ramp.block(5, 6)
    assert block.data.dtype == np.float32
    np.testing.assert_array_equal(block.data, data[:, :, 5:6].astype(np.float32))


@pytest.mark.parametrize("rows", [(3, 3), (4, 2), (-1, 2), (0, 7), (0.0, 2)])
def test_block_bad_rows(rows):
    with pytest.raises(InputError, match="row"):
        make().block(*rows)


class RecordingArray:
    """An array-like that records which indices are read (stands in for a memory map)."""

    def __init__(self, arr):
        self._arr = arr
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim
        self.keys = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self._arr[key]

    def __array__(self, *args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("the whole array was read")


def test_block_reads_only_its_rows():
    data, groupdq, pixeldq = arrays()
    rec_data, rec_gdq = RecordingArray(data), RecordingArray(groupdq)
    rec_zf = RecordingArray(np.ones((2, 6, 7), np.float32))
    ramp = Ramp(rec_data, rec_gdq, pixeldq, group_time=1.0, frame_time=1.0, nframes=1, zeroframe=rec_zf)
    block = ramp.block(1, 3)
    for rec in (rec_data, rec_gdq):
        assert rec.keys == [(slice(0, 2), slice(None), slice(1, 3), slice(None))]
    assert rec_zf.keys == [(slice(0, 2), slice(1, 3), slice(None))]
    np.testing.assert_array_equal(block.data, data[:, :, 1:3])
    one = ramp.block(0, 6, ints=(1, 2))  # one integration, every row
    assert rec_data.keys[-1] == (slice(1, 2), slice(None), slice(0, 6), slice(None))
    np.testing.assert_array_equal(one.data, data[1:2])
    assert one.zeroframe.shape == (1, 6, 7)
    with pytest.raises(InputError, match="integration range"):
        ramp.block(0, 6, ints=(2, 2))
