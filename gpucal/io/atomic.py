"""Atomic file writes: a failed write never leaves a partial file behind.

Every product and reference file gpucal writes goes through :func:`atomic_write`: the
bytes go to a hidden temporary file in the destination directory, which is flushed,
``fsync``-ed and then renamed over the destination with :func:`os.replace` (atomic on
POSIX and on Windows within one volume). If anything raises before the rename, the
temporary file is removed and the destination is left as it was. The temporary file's name
carries the writer's host and process id; a process killed mid-write leaves it behind, and
the next write into that directory removes it (:func:`gpucal.io.debris.remove_debris`).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .debris import TEMP_SUFFIX, remove_debris, temp_name, temp_target

logger = logging.getLogger(__name__)

__all__ = ["TEMP_SUFFIX", "atomic_write", "temporary_files"]


def temporary_files(path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of writes of ``path`` in progress, or left by a killed process."""
    dest = Path(path)
    pattern = f".{glob.escape(dest.name)}.*{TEMP_SUFFIX}"
    return sorted(p for p in dest.parent.glob(pattern) if temp_target(p) == dest.name)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file that replaces ``path`` only if the ``with`` block succeeds.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its parent directory is created if missing.
    overwrite : bool
        If False and ``path`` exists, raise :class:`FileExistsError` before writing.

    Yields
    ------
    BinaryIO
        A binary file object positioned at the start of an empty temporary file.

    Raises
    ------
    FileExistsError
        ``overwrite`` is False and ``path`` exists.
    """
    dest = Path(path)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} exists (pass overwrite=True to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_debris(dest.parent)
    tmp = temp_name(dest)
    # os.open with mode 0o666 lets the umask decide the final permissions, as for a
    # normally created file (mkstemp would leave 0o600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if dest.exists() and not overwrite:
            raise FileExistsError(f"{dest} appeared while writing (overwrite=False)")
        os.replace(tmp, dest)
        done = True
        _fsync_directory(dest.parent)
        logger.debug("wrote %s", dest)
    finally:
        if not done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            logger.debug("write of %s failed; temporary file removed", dest)
