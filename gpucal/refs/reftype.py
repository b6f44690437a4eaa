"""Which reference type a file says it is: REFTYPE (CRDS files) or DATAMODL (stdatamodels files).

A CRDS reference carries ``REFTYPE``; a file written by stdatamodels (``GainModel(...).save()``)
carries only ``DATAMODL``, and jwst opens both. :func:`check_reftype` accepts either when it
names the expected type, accepts a file that names no type (with a warning), and refuses
only a file whose REFTYPE or DATAMODL names another type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import FileFormatError

logger = logging.getLogger(__name__)

#: The jwst datamodel classes of each REFTYPE (the first is the one gpucal writes as DATAMODL).
MODELS: dict[str, tuple[str, ...]] = {
    "GAIN": ("GainModel",), "READNOISE": ("ReadnoiseModel",), "MASK": ("MaskModel",),
    "SATURATION": ("SaturationModel",), "SUPERBIAS": ("SuperBiasModel",), "LINEARITY": ("LinearityModel",),
    "DARK": ("DarkModel", "DarkMIRIModel", "DarkNirspecModel"), "IPC": ("IPCModel",),
}
#: DATAMODL values that name no particular type.
_GENERIC = frozenset({"DataModel", "JwstDataModel", "ReferenceFileModel", "ReferenceImageModel",
                      "ReferenceCubeModel", "ReferenceQuadModel"})


def check_reftype(path: Path, header: Mapping[str, Any], expected: str) -> None:
    """Refuse ``path`` (primary ``header``) unless it may be a reference of type ``expected``.

    Raises
    ------
    FileFormatError
        REFTYPE names another type, or DATAMODL names a model other than those of ``expected``.
    """
    expected = expected.upper()
    models = MODELS.get(expected, ())
    reftype = str(header.get("REFTYPE") or "").strip()
    model = str(header.get("DATAMODL") or "").strip()
    if reftype and reftype.upper() != expected:
        raise FileFormatError(f"{path} has REFTYPE {reftype!r}, expected {expected!r}")
    if model and model not in models and model not in _GENERIC:
        wanted = " or ".join(models) or f"a {expected} reference model"
        raise FileFormatError(f"{path} is a {model} (DATAMODL), not a {expected} reference ({wanted})")
    if not reftype and model not in models:
        logger.warning("%s names no reference type (no REFTYPE%s): read as a %s reference",
                       path.name, f", DATAMODL={model}" if model else " or DATAMODL", expected)
