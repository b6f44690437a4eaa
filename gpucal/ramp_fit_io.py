"""Arrays of one ramp-fitting block, and the kernel's argument list built from them.

Both the CuPy launcher and the host build of the kernel (tests) call
:func:`kernel_arguments`, so the argument order is written once, next to the arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from cpu_fallback.ramp_fit import N_OPT_PLANES, FitParams


class BlockInputs(NamedTuple):
    """Inputs of a block of ``npix`` pixels; group axis raw (uncut)."""

    data: Any  # float32 (nints, ngroups_raw, npix)
    groupdq: Any  # uint8 (nints, ngroups_raw, npix)
    pixeldq: Any  # uint32 (npix,)
    gain: Any  # float32 (npix,)
    sigma_r: Any  # float32 (npix,), read noise of one group in electrons (spec 3.3)
    dark: Any  # float32 (npix,)
    zeroframe: Any  # float32 (nints, npix) or None


class BlockOutputs(NamedTuple):
    """Outputs of a block, in the kernel's layout (see ramp_fit.cu)."""

    rate_out: Any  # float32 (4, npix): slope, var_poisson, var_rnoise, err
    rate_dq: Any  # uint32 (npix,)
    ints_out: Any  # float32 (4, nints, npix)
    ints_dq: Any  # uint32 (nints, npix)
    opt_out: Any  # float32 (7, nints, max_segs, npix) or None
    pedestal: Any  # float32 (nints, npix) or None
    crmag: Any  # float32 (nints, max_crs, npix) or None
    counts: Any  # int32 (2, npix) or None: segments and CRs of the busiest integration

    @classmethod
    def allocate(cls, fp: FitParams, npix: int, xp: Any = np) -> BlockOutputs:
        """Zero-filled outputs for ``npix`` pixels with array module ``xp``."""
        opt = fp.save_opt
        return cls(
            rate_out=xp.zeros((4, npix), dtype=np.float32),
            rate_dq=xp.zeros(npix, dtype=np.uint32),
            ints_out=xp.zeros((4, fp.nints, npix), dtype=np.float32),
            ints_dq=xp.zeros((fp.nints, npix), dtype=np.uint32),
            opt_out=xp.zeros((N_OPT_PLANES, fp.nints, fp.max_segs, npix), dtype=np.float32) if opt else None,
            pedestal=xp.zeros((fp.nints, npix), dtype=np.float32) if opt else None,
            crmag=xp.zeros((fp.nints, fp.max_crs, npix), dtype=np.float32) if opt else None,
            counts=xp.zeros((2, npix), dtype=np.int32) if opt else None,
        )


def kernel_arguments(fp: FitParams, inputs: BlockInputs, outputs: BlockOutputs, weight_table: Any,
                     scratch: Any, dummy: Any) -> list[tuple[str, Any]]:
    """``ramp_fit_kernel``'s arguments as (name, value) pairs, in order.

    Arrays absent from this fit (no ZEROFRAME, no optional product) are replaced by
    ``dummy`` (one float32 element; seen as int32 for ``counts``), which the kernel never reads.
    """
    def array(value, dtype=np.float32):
        return dummy.view(dtype) if value is None else value

    npix = inputs.data.shape[2]
    return [
        ("data", inputs.data),
        ("groupdq", inputs.groupdq),
        ("pixeldq", inputs.pixeldq),
        ("gain", inputs.gain),
        ("sigma_r", inputs.sigma_r),
        ("dark", inputs.dark),
        ("zeroframe", array(inputs.zeroframe)),
        ("weight_table", weight_table),
        ("scratch", scratch),
        ("rate_out", outputs.rate_out),
        ("rate_dq", outputs.rate_dq),
        ("ints_out", outputs.ints_out),
        ("ints_dq", outputs.ints_dq),
        ("opt_out", array(outputs.opt_out)),
        ("pedestal", array(outputs.pedestal)),
        ("crmag", array(outputs.crmag)),
        ("counts", array(outputs.counts, np.int32)),
        ("nints", np.int32(fp.nints)),
        ("ngroups_raw", np.int32(fp.ngroups_raw)),
        ("g_first", np.int32(fp.g_first)),
        ("ngroups", np.int32(fp.ngroups)),
        ("npix", np.int64(npix)),
        ("t_g", np.float64(fp.t_g)),
        ("t_f", np.float64(fp.t_f)),
        ("t_1", np.float64(fp.t_1)),
        ("ped_tmp", np.float64(fp.ped_tmp)),
        ("suppress", np.int32(fp.suppress)),
        ("clear_first_jump", np.int32(fp.clear_first_jump)),
        ("has_zeroframe", np.int32(inputs.zeroframe is not None)),
        ("save_opt", np.int32(fp.save_opt)),
        ("max_segs", np.int32(fp.max_segs)),
        ("max_crs", np.int32(fp.max_crs)),
    ]
