"""A file's identity for resumable batches: size, modification time and a content digest.

A completion record keeps the identity of the exposure it read and of every product it
wrote; a rerun compares them with the files as they are now (:func:`unchanged`), so a
regenerated input or a damaged product is computed again. Files up to
:data:`FULL_DIGEST_BYTES` are hashed whole. Larger ones are hashed in part: every FITS
header (where a regenerated file's keywords differ) and :data:`SAMPLES` evenly spaced
windows of the data, reading a few megabytes however large the file; since such a digest
can miss a change between the windows, a sampled file also counts as changed when its
modification time differs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..errors import GpucalError

#: Files up to this size get a digest of every byte.
FULL_DIGEST_BYTES = 64 << 20
#: Data windows of a sampled digest, and the bytes of each.
SAMPLES = 64
SAMPLE_BYTES = 64 << 10
_CHUNK = 1 << 20


def _header_ranges(path: Path) -> list[tuple[int, int]]:
    """(offset, length) of each FITS header of ``path``; none when it is not (valid) FITS."""
    from ..io.fits_layout import fits_layout

    try:
        return [(h.header_offset, h.data_offset - h.header_offset) for h in fits_layout(path)]
    except GpucalError:
        return []


def _sample_ranges(path: Path, size: int) -> list[tuple[int, int]]:
    windows = [(min(i * (size // SAMPLES), size - SAMPLE_BYTES), SAMPLE_BYTES) for i in range(SAMPLES)]
    return _header_ranges(path) + windows + [(size - SAMPLE_BYTES, SAMPLE_BYTES)]


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The identity of the file at ``path``, as a JSON-able dict.

    Returns
    -------
    dict
        ``bytes`` (size), ``mtime_ns``, ``sha256`` (hex digest of the whole file, or of its
        headers and data windows) and ``sampled`` (True for the partial digest).

    Raises
    ------
    OSError
        The file cannot be read.
    """
    path = Path(path)
    info = path.stat()
    size = info.st_size
    digest = hashlib.sha256()
    sampled = size > FULL_DIGEST_BYTES
    with open(path, "rb") as fh:
        if not sampled:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        else:
            for offset, length in _sample_ranges(path, size):
                fh.seek(offset)
                digest.update(fh.read(length))
    return {"bytes": size, "mtime_ns": info.st_mtime_ns, "sha256": digest.hexdigest(), "sampled": sampled}


def unchanged(recorded: Any, path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` still has the ``recorded`` identity.

    Same size and digest, and, for a sampled digest, the same modification time. A missing
    or unreadable file, or a record without an identity (written by an older gpucal), is
    changed.
    """
    if not isinstance(recorded, dict) or not {"bytes", "sha256", "sampled", "mtime_ns"} <= set(recorded):
        return False
    try:
        now = file_identity(path) if Path(path).stat().st_size == recorded["bytes"] else None
    except OSError:
        return False
    if now is None or now["sha256"] != recorded["sha256"]:
        return False
    return not now["sampled"] or now["mtime_ns"] == recorded["mtime_ns"]
