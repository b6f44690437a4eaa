"""gpucal: GPU-accelerated calibration of JWST infrared-detector ramps.

Every public function takes ``backend="gpu" | "cpu" | "auto"``; the CuPy kernels and the
numpy fallback (package ``cpu_fallback``) give identical output.
"""

from __future__ import annotations

import logging

from .backend import get_backend, gpu_available, set_backend
from .errors import BackendUnavailableError, FileFormatError, GpucalError, InputError

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BackendUnavailableError",
    "FileFormatError",
    "GpucalError",
    "InputError",
    "Ramp",
    "RampFitResult",
    "RateProduct",
    "FitOptProduct",
    "ramp_fit",
    "extract_ramp",
    "RampProfile",
    "detect_jumps",
    "detector1",
    "resample_images",
    "batch",
    "BatchReport",
    "build_cube",
    "get_backend",
    "gpu_available",
    "set_backend",
    "__version__",
]


def __getattr__(name: str):
    # Heavier modules load on first use so `import gpucal` stays fast.
    if name == "Ramp":
        from .ramp import Ramp

        return Ramp
    if name in ("RampFitResult", "RateProduct", "FitOptProduct"):
        from . import products

        return getattr(products, name)
    if name == "ramp_fit":
        from .ramp_fitting import ramp_fit

        return ramp_fit
    if name in ("extract_ramp", "RampProfile"):
        from . import extraction

        return getattr(extraction, name)
    if name == "detect_jumps":
        from .jump_detection import detect_jumps

        return detect_jumps
    if name == "detector1":
        from .pipeline import detector1

        return detector1
    if name == "resample_images":
        from .resample import resample_images

        return resample_images
    if name in ("batch", "BatchReport"):
        from . import scaleout

        return getattr(scaleout, name)
    if name == "build_cube":
        from .cube import build_cube

        return build_cube
    raise AttributeError(f"module 'gpucal' has no attribute {name!r}")
