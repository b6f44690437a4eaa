"""The kernels' DQ header agrees with gpucal.dq, and gpucal.dq with stdatamodels."""

import re

import pytest

from gpucal import dq
from gpucal.gpu.compile import KERNEL_DIR


def test_kernel_header_matches_python_table():
    text = (KERNEL_DIR / "dq_flags.cuh").read_text()
    defined = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define GPUCAL_(\w+)\s+(\d+)u", text)}
    assert defined, "no flags found in dq_flags.cuh"
    for name, value in defined.items():
        assert dq.PIXEL[name] == value, name


def test_python_table_matches_stdatamodels():
    dqflags = pytest.importorskip("stdatamodels.jwst.datamodels.dqflags")
    assert dq.PIXEL == dqflags.pixel
    assert dq.GROUP == dqflags.group


def test_dq_def_rows_cover_every_flag():
    rows = dq.dq_def_rows()
    assert len(rows) == len(dq.PIXEL) - 1
    for bit, value, name, description in rows:
        assert value == 1 << bit == dq.PIXEL[name]
        assert description
