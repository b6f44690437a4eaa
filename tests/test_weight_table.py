"""The optimal-weighting table: libm powf values, layout the kernel indexes."""

import ctypes
import ctypes.util

import numpy as np
import pytest

from gpucal.weight_table import POWERS, weight_table, weight_table_offset


def test_layout_and_values():
    ngroups = 9
    table = weight_table(ngroups)
    assert table.dtype == np.float32
    assert table.size == len(POWERS) * ngroups * (ngroups + 1) // 2
    libm = ctypes.util.find_library("m")
    powf = ctypes.CDLL(libm).powf
    powf.restype, powf.argtypes = ctypes.c_float, (ctypes.c_float, ctypes.c_float)
    for index, power in enumerate(POWERS):
        for n in range(3, ngroups + 1):
            mid = (n - 1) / 2.0
            for j in range(n):
                u = abs((j - mid) * (1.0 / mid))
                got = table[weight_table_offset(index, n, ngroups) + j]
                assert got == np.float32(powf(u, power)), (power, n, j)


def test_known_weights():
    table = weight_table(5)
    offset = weight_table_offset(0, 5, 5)  # P = 0: all ones, also at the centre
    np.testing.assert_array_equal(table[offset : offset + 5], np.ones(5, np.float32))
    offset = weight_table_offset(2, 5, 5)  # P = 1: |u|
    np.testing.assert_array_equal(table[offset : offset + 5], np.array([1, 0.5, 0, 0.5, 1], np.float32))


def test_table_is_read_only_and_rejects_bad_sizes():
    with pytest.raises(ValueError):
        weight_table(0)
    with pytest.raises(ValueError):
        weight_table(4)[0] = 2.0
