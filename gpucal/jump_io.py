"""Arrays of the two jump-detection kernels, and their argument lists.

Both the CuPy launcher (``gpucal/gpu/jump.py``) and the host build of the kernels (tests)
call :func:`two_point_arguments` and :func:`neighbour_arguments`, so each kernel's argument
order is written once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from cpu_fallback.jump import JumpParams


class TwoPointInputs(NamedTuple):
    """Inputs of a block of ``npix`` pixels."""

    data: Any  # float32 (nints, ngroups, npix)
    groupdq: Any  # uint8 (nints, ngroups, npix)
    gain: Any  # float32 (npix,)
    rn2: Any  # float32 (npix,): (readnoise * gain)**2, electrons squared


class TwoPointOutputs(NamedTuple):
    """Outputs of ``two_point_kernel``; every element is written."""

    gdq_out: Any  # uint8 (nints, ngroups, npix): groupdq with primary JUMP_DET
    marks: Any  # uint8 (nints, ngroups, npix): MARK_* bits for the neighbour kernel
    median: Any  # float64 (npix,): pooled median of first differences (electrons)
    sigma: Any  # float64 (npix,): expected noise of one difference

    @classmethod
    def allocate(cls, fp: JumpParams, npix: int, xp: Any = np) -> TwoPointOutputs:
        shape = (fp.nints, fp.ngroups, npix)
        return cls(gdq_out=xp.empty(shape, dtype=np.uint8), marks=xp.empty(shape, dtype=np.uint8),
                   median=xp.empty(npix, dtype=np.float64), sigma=xp.empty(npix, dtype=np.float64))


def scratch_shape(fp: JumpParams, npix: int) -> tuple[int, int]:
    """Per-pixel sort space of ``two_point_kernel``: every pooled difference."""
    return max(fp.nints * (fp.ngroups - 1), 1), npix


def two_point_arguments(fp: JumpParams, inputs: TwoPointInputs, outputs: TwoPointOutputs,
                        scratch: Any) -> list[tuple[str, Any]]:
    """``two_point_kernel``'s arguments as (name, value) pairs, in order."""
    npix = inputs.data.shape[2]
    return [
        ("data", inputs.data),
        ("groupdq", inputs.groupdq),
        ("gain", inputs.gain),
        ("rn2", inputs.rn2),
        ("gdq_out", outputs.gdq_out),
        ("marks", outputs.marks),
        ("median_out", outputs.median),
        ("sigma_out", outputs.sigma),
        ("scratch", scratch),
        ("nints", np.int32(fp.nints)),
        ("ngroups", np.int32(fp.ngroups)),
        ("npix", np.int64(npix)),
        ("nframes", np.int32(fp.nframes)),
        ("mode", np.int32(fp.mode)),
        ("rejection_threshold", np.float64(fp.rejection_threshold)),
        ("three_group_rejection_threshold", np.float64(fp.three_group_rejection_threshold)),
        ("four_group_rejection_threshold", np.float64(fp.four_group_rejection_threshold)),
        ("min_jump_to_flag_neighbors", np.float64(fp.min_jump_to_flag_neighbors)),
        ("max_jump_to_flag_neighbors", np.float64(fp.max_jump_to_flag_neighbors)),
        ("after_jump_e1", np.float64(fp.after_jump_e1)),
        ("after_jump_e2", np.float64(fp.after_jump_e2)),
    ]


def neighbour_arguments(fp: JumpParams, gdq_in: Any, marks: Any, gdq_out: Any, nx: int, halo_top: int,
                        rows: int) -> list[tuple[str, Any]]:
    """``neighbour_kernel``'s arguments: halo block (nints, ngroups, rows_in*nx) in, rows out."""
    rows_in = gdq_in.shape[2] // nx
    return [
        ("gdq_in", gdq_in),
        ("marks", marks),
        ("gdq_out", gdq_out),
        ("nints", np.int32(fp.nints)),
        ("ngroups", np.int32(fp.ngroups)),
        ("nx", np.int32(nx)),
        ("halo_top", np.int32(halo_top)),
        ("rows", np.int32(rows)),
        ("rows_in", np.int32(rows_in)),
        ("flag_4_neighbors", np.int32(fp.flag_4_neighbors)),
        ("n1", np.int32(fp.after_jump_n1)),
        ("n2", np.int32(fp.after_jump_n2)),
    ]
