"""Output safety: never write onto an input, one overwrite rule, a writable directory first.

Every command that writes files calls :func:`check_outputs` with the files it will write
and every file it reads (the exposure, its reference files, association members) before
it computes anything. The rule, the same for every command:

- an output that is the same file as an input (same path, or the same file through a
  symbolic or hard link: same device and inode) is refused;
- an output that already exists is refused unless overwriting was asked for;
- an existing output that is read-only is never replaced, even when overwriting was asked
  for (a rename would replace it silently: the permission guards the file, not its name);
- the output directories must be writable (or creatable): the error names the directory.

Refusals raise :class:`OutputError` (an :class:`~gpucal.errors.InputError`, exit status 2 on
the command line) before any output is written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError


class OutputError(InputError):
    """A planned output would replace an input, an existing or read-only file, or cannot be written."""


class OutputExistsError(OutputError):
    """A planned output exists and overwriting was not asked for (``path``: the file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        super().__init__(self.describe(cli=False))

    def describe(self, *, cli: bool) -> str:
        """The message, saying ``overwrite=True`` (Python) or ``--overwrite`` (command line)."""
        return f"{self.path} exists; pass {'--overwrite' if cli else 'overwrite=True'} to replace it"


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` names, links followed; None when it does not exist."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _normal(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(path)))


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name the same file: same path, or (both existing) same device
    and inode, so symbolic and hard links count."""
    ida, idb = _identity(a), _identity(b)
    if ida is not None and idb is not None:
        return ida == idb
    return _normal(a) == _normal(b)


def check_not_inputs(outputs: Iterable[str | os.PathLike[str]], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise :class:`OutputError` when an output is one of the inputs or two outputs are one file.

    Linear in the number of files (one ``stat`` each), so a batch of thousands is cheap.
    """
    by_identity: dict[tuple[int, int], str] = {}
    by_path: dict[str, str] = {}
    for inp in inputs:
        ident = _identity(inp)
        if ident is not None:
            by_identity.setdefault(ident, os.fspath(inp))
        by_path.setdefault(_normal(inp), os.fspath(inp))
    seen: dict[object, str] = {}
    for out in outputs:
        ident = _identity(out)
        original = by_identity.get(ident) if ident is not None else None
        original = original or by_path.get(_normal(out))
        if original is not None:
            same = "" if _normal(original) == _normal(out) else f" (the same file as the input {original})"
            raise OutputError(f"{os.fspath(out)} is an input of this run{same}: refusing to write onto it; "
                              "choose another output directory or name")
        key = ident if ident is not None else _normal(out)
        if key in seen:
            raise OutputError(f"two outputs of this run are the same file: {seen[key]} and {os.fspath(out)}")
        seen[key] = os.fspath(out)


def check_directory(directory: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputError` unless files can be created in ``directory`` (or in the
    nearest existing folder above it, where it would be created)."""
    target = Path(os.path.abspath(os.fspath(directory)))
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write into {target}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == target:
            raise OutputError(f"cannot write into the output directory {target}: permission denied")
        raise OutputError(f"cannot create the output directory {target}: {existing} is not writable")


def is_read_only(path: str | os.PathLike[str]) -> bool:
    """True for an existing file that this process may not write, or whose permission bits
    allow nobody to write it (which also guards it against root)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK)


def check_outputs(
    outputs: Iterable[str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]],
    *,
    overwrite: bool,
) -> None:
    """Apply the output rule (see the module docstring) to ``outputs``; call it before computing.

    Parameters
    ----------
    outputs
        Every file the run will write.
    inputs
        Every file the run reads (exposures, reference files, association files).
    overwrite
        Whether existing (writable) outputs may be replaced.

    Raises
    ------
    OutputError
        The first problem found, naming the file or directory (:class:`OutputExistsError`
        for an existing output without ``overwrite``).
    """
    outputs = [Path(p) for p in outputs]
    check_not_inputs(outputs, inputs)
    for out in outputs:
        if out.is_dir():
            raise OutputError(f"{out} is a directory, not a file that can be written")
        if os.path.lexists(out):
            if not overwrite:
                raise OutputExistsError(out)
            if is_read_only(out):
                raise OutputError(f"{out} exists and is read-only: not replaced (make it writable or remove it)")
    for directory in dict.fromkeys(out.parent for out in outputs):
        check_directory(directory)
