"""gain_scale: rescale a rate product by the GAIN reference's GAINFACT (jwst ``gain_scale.do_correction``)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..backend import to_host
from ..products import RateProduct
from ._blocks import backend_and_module

logger = logging.getLogger(__name__)


def gain_scale(product: RateProduct, gain_factor: float | None, *, backend: str | None = None) -> RateProduct:
    """``data, err *= f``; ``var_poisson, var_rnoise *= f**2`` (float32 arrays, Python-float factor).

    ``gain_factor`` is the product's GAINFACT or the GAIN reference's; None returns the product
    unchanged (jwst marks the step SKIPPED). The factor is recorded as meta GAINFACT.
    """
    if gain_factor is None:
        logger.info("gain_scale skipped: no gain factor")
        return product
    name, xp = backend_and_module(backend)
    f = float(gain_factor)
    scaled = {}
    for key, factor in (("data", f), ("err", f), ("var_poisson", f**2), ("var_rnoise", f**2)):
        scaled[key] = np.ascontiguousarray(to_host(xp.asarray(getattr(product, key)) * factor))
    meta = dict(product.meta, GAINFACT=f)
    logger.info("gain_scale: rescaled by %s (%s)", f, name)
    return dataclasses.replace(product, **scaled, meta=meta)
