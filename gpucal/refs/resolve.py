"""Find the reference files a detector1 run needs.

Sources, first match wins, per reference type:

1. explicit ``refs={"mask": path_or_object, ...}`` (keys are lower-case REFTYPEs);
2. a file named by the exposure's ``R_<TYPE>`` header keyword (``R_MASK``, ``R_SATURA``, ...)
   that exists next to the input file (how gpucal's synthetic exposures name their references);
3. the local CRDS cache, when the ``crds`` package imports and ``CRDS_PATH`` is set: a best-ref
   lookup in CRDS's local mode (no server is contacted);
4. the built-in synthetic reference set, for the built-in synthetic exposure's detector.

A type that resolves to CRDS's "N/A" maps to None (the step is skipped, as jwst does).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..ramp import Ramp

logger = logging.getLogger(__name__)

#: REFTYPE (lower case) -> the exposure header keyword jwst records it under.
HEADER_KEYWORDS = {
    "mask": "R_MASK", "saturation": "R_SATURA", "superbias": "R_SUPERB", "linearity": "R_LINEAR",
    "dark": "R_DARK", "ipc": "R_IPC", "gain": "R_GAIN", "readnoise": "R_READNO",
}
REFTYPES = tuple(HEADER_KEYWORDS)

#: FITS keyword -> CRDS (datamodel) parameter name used for best-ref selection.
_CRDS_PARAMETERS = {
    "INSTRUME": "meta.instrument.name", "DETECTOR": "meta.instrument.detector",
    "FILTER": "meta.instrument.filter", "PUPIL": "meta.instrument.pupil",
    "CHANNEL": "meta.instrument.channel", "BAND": "meta.instrument.band",
    "EXP_TYPE": "meta.exposure.type", "READPATT": "meta.exposure.readpatt",
    "NFRAMES": "meta.exposure.nframes", "GROUPGAP": "meta.exposure.groupgap",
    "NGROUPS": "meta.exposure.ngroups", "NINTS": "meta.exposure.nints",
    "SUBARRAY": "meta.subarray.name", "SUBSTRT1": "meta.subarray.xstart", "SUBSTRT2": "meta.subarray.ystart",
    "SUBSIZE1": "meta.subarray.xsize", "SUBSIZE2": "meta.subarray.ysize",
    "DATE-OBS": "meta.observation.date", "TIME-OBS": "meta.observation.time",
    "TSOVISIT": "meta.visit.tsovisit",
}


class MissingReferenceError(InputError):
    """Needed reference types found nowhere (``reftypes``); the message says how to give them in
    Python (:meth:`describe` with ``cli=True`` says it with command-line options)."""

    def __init__(self, reftypes: Iterable[str]) -> None:
        self.reftypes = [str(t).lower() for t in reftypes]
        super().__init__(self.describe(cli=False))

    def describe(self, *, cli: bool) -> str:
        """The message, with Python (``refs={...}``) or command-line (``--override-TYPE``) syntax."""
        if cli:
            how = " ".join(f"--override-{t} PATH" for t in self.reftypes)
        else:
            how = "refs={" + ", ".join(f"'{t}': path" for t in self.reftypes) + "}"
        return (f"no {', '.join(t.upper() for t in self.reftypes)} reference for this exposure (not given, not "
                f"named in its header, no configured CRDS cache): pass {how}")


def reference_keywords(references: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
                       input_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``R_*`` keywords that let a product find its reference files from any directory.

    Parameters
    ----------
    references
        ``{reftype: path, in-memory reference or None}`` used by the run: a path becomes its
        absolute path, None (CRDS "N/A") becomes ``"N/A"``, an in-memory reference adds nothing.
    meta, input_dir
        The input's header and directory: a reference it names by a relative path that
        exists in ``input_dir`` (and that ``references`` does not replace) is made absolute.

    Returns
    -------
    dict
        ``{"R_GAIN": "/data/x_gain.fits", ...}`` (the readers resolve a relative name against
        the product's directory, and an absolute one as it is).
    """
    out: dict[str, str] = {}
    if meta is not None and input_dir is not None:
        for reftype in REFTYPES:
            found = _header_named(meta, reftype, Path(input_dir))
            if found is not None:
                out[HEADER_KEYWORDS[reftype]] = os.path.abspath(found)
    for reftype, value in references.items():
        keyword = HEADER_KEYWORDS.get(str(reftype).lower())
        if keyword is None:
            continue
        if value is None:
            out[keyword] = "N/A"
        elif isinstance(value, (str, os.PathLike)):
            out[keyword] = os.path.abspath(value)
        else:  # an in-memory reference replaced the file the header names
            out.pop(keyword, None)
    return out


def _header_named(ramp: Ramp | Mapping[str, Any], reftype: str, input_dir: Path | None) -> Path | None:
    """The file the header keyword of ``reftype`` names next to the input (``ramp`` or its meta)."""
    meta = ramp.meta if isinstance(ramp, Ramp) else ramp
    value = meta.get(HEADER_KEYWORDS[reftype])
    if input_dir is None or not isinstance(value, str) or "://" in value or value.strip().upper() in ("", "N/A"):
        return None
    path = input_dir / value.strip()
    return path if path.is_file() else None


@contextlib.contextmanager
def _crds_local_mode() -> Iterator[None]:
    """CRDS_MODE=local for the lookup (unless the user chose a mode), so no server is contacted."""
    saved = os.environ.get("CRDS_MODE")
    if saved is None:
        os.environ["CRDS_MODE"] = "local"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CRDS_MODE", None)


def crds_parameters(ramp: Ramp) -> dict[str, Any]:
    """Best-ref selection parameters from the exposure's header keywords."""
    params: dict[str, Any] = {}
    for key, name in _CRDS_PARAMETERS.items():
        if key in ramp.meta and ramp.meta[key] is not None:
            params[name] = ramp.meta[key]
    return params


def crds_lookup(ramp: Ramp, reftypes: Iterable[str]) -> dict[str, Path | None]:
    """Best references from the local CRDS cache; ``{}`` when crds is absent or unconfigured.

    Raises
    ------
    InputError
        CRDS is configured but cannot resolve (names the types and CRDS's reason).
    """
    reftypes = list(reftypes)
    if not reftypes or not os.environ.get("CRDS_PATH"):
        return {}
    try:
        import crds
    except ImportError:
        return {}
    try:
        with _crds_local_mode():
            found = crds.getreferences(crds_parameters(ramp), reftypes=reftypes, observatory="jwst")
    except Exception as exc:  # crds raises its own CrdsError family, also for a missing cache
        raise InputError(f"CRDS lookup of {', '.join(t.upper() for t in reftypes)} failed in the local cache "
                         f"{os.environ['CRDS_PATH']}: {exc}") from exc
    out: dict[str, Path | None] = {}
    for reftype in reftypes:
        value = found.get(reftype)
        if value is None:
            continue
        text = str(value)
        if text.upper().startswith("NOT FOUND") or text.upper() == "N/A":
            if "n/a" not in text.lower():
                raise InputError(f"CRDS found no {reftype.upper()} reference for this exposure: {text}")
            out[reftype] = None
        else:
            out[reftype] = Path(value)
    return out


def _builtin(ramp: Ramp, reftypes: Iterable[str]) -> dict[str, Path]:
    from .synthetic_set import CALIB_BUILTIN_PARAMS, builtin_calib_refs

    p = CALIB_BUILTIN_PARAMS
    if (str(ramp.meta.get("ORIGIN", "")) != "gpucal synthetic"
            or (ramp.ny, ramp.nx) != (p["ny"], p["nx"])
            or str(ramp.meta.get("DETECTOR", "")).upper() != p["detector"]):
        return {}
    wanted = [t for t in reftypes if t in ("mask", "saturation", "superbias", "linearity", "dark")]
    if not wanted:
        return {}
    files = builtin_calib_refs()
    return {t: files[t] for t in wanted}


def resolve_references(ramp: Ramp, reftypes: Iterable[str], refs: Mapping[str, Any] | None = None, *,
                       input_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Map each needed REFTYPE to a path, an in-memory reference, or None (N/A: skip the step).

    Parameters
    ----------
    ramp : Ramp
        The exposure (its header keywords select the references).
    reftypes : iterable of str
        Lower-case types: mask, saturation, superbias, linearity, dark, ipc, gain, readnoise.
    refs : mapping, optional
        Explicit overrides ``{reftype: path or reference object}``; these win.
    input_path : path, optional
        The exposure's file, whose directory holds header-named references.

    Raises
    ------
    InputError
        Unknown type in ``refs``.
    MissingReferenceError
        A needed type found nowhere (all of them are named).
    """
    refs = {str(k).lower(): v for k, v in (refs or {}).items()}
    unknown = sorted(set(refs) - set(REFTYPES))
    if unknown:
        raise InputError(f"unknown reference type(s) {unknown}; expected some of {list(REFTYPES)}")
    wanted = list(dict.fromkeys(str(t).lower() for t in reftypes))
    input_dir = Path(input_path).resolve().parent if input_path is not None else None
    out: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for t in wanted:
        if t in refs:
            out[t], sources[t] = refs[t], "explicit"
        elif (p := _header_named(ramp, t, input_dir)) is not None:
            out[t], sources[t] = p, f"header {HEADER_KEYWORDS[t]}"
    rest = [t for t in wanted if t not in out]
    for t, p in crds_lookup(ramp, rest).items():
        out[t], sources[t] = p, "CRDS cache"
    rest = [t for t in wanted if t not in out]
    for t, p in _builtin(ramp, rest).items():
        out[t], sources[t] = p, "built-in synthetic set"
    missing = [t for t in wanted if t not in out]
    if missing:
        raise MissingReferenceError(missing)
    for t in wanted:
        logger.info("reference %s: %s (%s)", t.upper(), out[t] if isinstance(out[t], (str, Path, type(None)))
                    else type(out[t]).__name__, sources[t])
    return out
