"""FITS input/output: lazy ramp reading, atomic product writing, output naming.

- :func:`read_ramp` / :func:`write_ramp`: JWST ``_uncal``/``_ramp`` files <-> :class:`~gpucal.Ramp`
  (also available as ``Ramp.from_fits`` / ``Ramp.to_fits``).
- :func:`write_rate`, :func:`write_fitopt`: rate/rateints and fit-output products
  (used by :mod:`gpucal.products`).
- :func:`atomic_write`: the temp-file-and-rename writer every file goes through.
- :func:`output_prefix`: ``out_dir/<exposure basename>`` for the CLI.
"""

from __future__ import annotations

from .atomic import atomic_write
from .paths import output_prefix, product_prefix, strip_product_suffix
from .read_ramp import read_ramp
from .write_products import write_fitopt, write_rate
from .write_ramp import write_ramp

__all__ = [
    "atomic_write",
    "output_prefix",
    "product_prefix",
    "read_ramp",
    "strip_product_suffix",
    "write_fitopt",
    "write_ramp",
    "write_rate",
]
