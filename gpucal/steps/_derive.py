"""A new Ramp from an old one with new data (the input is never modified)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ramp import Ramp


def with_data(ramp: Ramp, data: np.ndarray, *, zeroframe: Any = "keep", **meta: Any) -> Ramp:
    """``ramp`` with ``data`` (and optionally ``zeroframe``) replaced, DQ arrays copied, ``meta`` updated."""
    zf = ramp.zeroframe if isinstance(zeroframe, str) and zeroframe == "keep" else zeroframe
    new_meta = dict(ramp.meta)
    new_meta.update(meta)
    return Ramp(
        data,
        np.array(ramp.groupdq, dtype=np.uint8, order="C", copy=True),
        np.array(ramp.pixeldq, dtype=np.uint32, order="C", copy=True),
        group_time=ramp.group_time,
        frame_time=ramp.frame_time,
        nframes=ramp.nframes,
        groupgap=ramp.groupgap,
        drop_frames1=ramp.drop_frames1,
        zeroframe=None if zf is None else np.array(zf, dtype=np.float32, order="C", copy=True),
        meta=new_meta,
    )
