"""gain_scale: rescale a rate product by the GAIN reference's GAINFACT (jwst ``gain_scale.do_correction``)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..backend import to_host
from ..products import RateProduct
from ._blocks import backend_and_module

logger = logging.getLogger(__name__)


def gain_scale(product: RateProduct, gain_factor: float | None, *, backend: str | None = None,
               in_place: bool = False) -> RateProduct:
    """``data, err *= f``; ``var_poisson, var_rnoise *= f**2`` (float32 arrays, Python-float factor).

    ``gain_factor`` is the product's GAINFACT or the GAIN reference's; None returns the product
    unchanged (jwst marks the step SKIPPED). The factor is recorded as meta GAINFACT.
    ``in_place`` scales the product's own (host) arrays instead of new ones, one array at a
    time: the same bits without a second copy of the product.
    """
    if gain_factor is None:
        logger.info("gain_scale skipped: no gain factor")
        return product
    name, xp = backend_and_module(backend)
    f = float(gain_factor)
    scaled = {}
    for key, factor in (("data", f), ("err", f), ("var_poisson", f**2), ("var_rnoise", f**2)):
        array = getattr(product, key)
        if in_place and name == "cpu":
            np.multiply(array, factor, out=array)
        elif in_place:
            array[...] = to_host(xp.asarray(array) * factor)
        else:
            array = np.ascontiguousarray(to_host(xp.asarray(array) * factor))
        scaled[key] = array
    meta = dict(product.meta, GAINFACT=f)
    logger.info("gain_scale: rescaled by %s (%s)", f, name)
    return dataclasses.replace(product, **scaled, meta=meta)
