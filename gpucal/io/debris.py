"""Files a killed run leaves behind, named after their process so a later run can remove them.

Two kinds of file outlive a process killed with SIGKILL: the hidden temporary file of a
product being written (``.<name>.<host>.<pid>.<token>.gpucal-tmp``, see
:func:`gpucal.io.atomic.atomic_write`) and a scratch directory (``.gpucal-scratch/<host>.<pid>.<token>/``
under the output directory, see :func:`scratch_space`). Both carry the host and process id
of their writer. :func:`remove_debris` deletes those whose process no longer exists on this
host, with a log line each; a live process's files, another host's files (its processes
cannot be seen from here) and files of an unknown owner are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".gpucal-tmp"
SCRATCH_DIR = ".gpucal-scratch"
TOKEN_BYTES = 6

_TEMP_RE = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.)?[0-9a-f]{%d}%s$"
                      % (2 * TOKEN_BYTES, re.escape(TEMP_SUFFIX)))
_SCRATCH_RE = re.compile(r"^(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{%d}$" % (2 * TOKEN_BYTES))
_swept: set[Path] = set()


def host_tag() -> str:
    """This host's name with only letters, digits and dashes (at most 40 characters)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def owner_tag() -> str:
    """``<host>.<pid>.<token>``: a fresh name that says which process made it."""
    return f"{host_tag()}.{os.getpid()}.{secrets.token_hex(TOKEN_BYTES)}"


def temp_name(path: Path) -> Path:
    """The temporary file a write of ``path`` goes through."""
    return path.with_name(f".{path.name}.{owner_tag()}{TEMP_SUFFIX}")


def temp_target(temp: Path) -> str | None:
    """The name of the file ``temp`` was to become, or None when ``temp`` is not a temporary."""
    match = _TEMP_RE.match(temp.name)
    return match["name"] if match else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (True when that cannot be told)."""
    if pid == os.getpid():
        return True
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no way to tell: keep its files
        return True
    return True


def _dead_owner(match: re.Match[str] | None) -> int | None:
    """The pid of a dead process of this host that made the file, else None."""
    if match is None or match["pid"] is None or match["host"] != host_tag():
        return None
    pid = int(match["pid"])
    return None if process_alive(pid) else pid


def remove_debris(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary products and scratch directories in ``directory`` left by dead processes.

    Each directory is swept once per process (a killed run's files do not reappear). Files
    that cannot be removed are logged and left.

    Returns
    -------
    list of Path
        What was removed.
    """
    directory = Path(directory)
    try:
        key = directory.resolve()
    except OSError:
        return []
    if key in _swept:
        return []
    _swept.add(key)
    removed: list[Path] = []
    candidates: list[tuple[Path, re.Match[str] | None]] = []
    with contextlib.suppress(OSError):
        candidates += [(p, _TEMP_RE.match(p.name)) for p in directory.glob(f".*{TEMP_SUFFIX}")]
    with contextlib.suppress(OSError):
        candidates += [(p, _SCRATCH_RE.match(p.name)) for p in (directory / SCRATCH_DIR).iterdir()]
    for path, match in candidates:
        pid = _dead_owner(match)
        if pid is None:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                shutil.rmtree(path)
            else:
                size = path.lstat().st_size
                path.unlink()
        except OSError as exc:
            logger.warning("cannot remove %s, left by process %d that no longer exists: %s", path, pid, exc)
            continue
        logger.info("removed %s (%.1f MiB), left by process %d that no longer exists", path, size / 2**20, pid)
        removed.append(path)
    with contextlib.suppress(OSError):
        (directory / SCRATCH_DIR).rmdir()  # only when empty
    return removed


def _user_temp_root() -> Path | None:
    """``<tmp>/gpucal-scratch-<uid>``, made private to this user; None when it is not ours."""
    root = Path(tempfile.gettempdir()) / f"gpucal-scratch-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        st = root.lstat()
    except OSError:
        return None
    if root.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return root


class Scratch:
    """A scratch directory made on first use (:meth:`path`); see :func:`scratch_space`."""

    def __init__(self, root: Path | None) -> None:
        self._root = root
        self._path: Path | None = None
        self._made: list[Path] = []

    def path(self) -> Path:
        """The scratch directory (created now if it does not exist yet)."""
        if self._path is None:
            if self._root is None:
                self._path = Path(tempfile.mkdtemp(prefix="gpucal-scratch-"))
                self._made.append(self._path)
            else:
                missing = [p for p in [self._root, *self._root.parents] if not p.exists()]
                self._path = self._root / SCRATCH_DIR / owner_tag()
                self._path.mkdir(parents=True)
                self._made += [self._path, self._root / SCRATCH_DIR, *missing]
            logger.debug("scratch directory %s", self._path)
        return self._path

    def remove(self) -> None:
        """Remove the scratch directory, and the directories made for it when they are empty."""
        if self._path is None:
            return
        shutil.rmtree(self._path, ignore_errors=True)
        for made in self._made[1:]:
            with contextlib.suppress(OSError):
                made.rmdir()


@contextlib.contextmanager
def scratch_space(output_dir: str | os.PathLike[str] | None) -> Iterator[Scratch]:
    """Scratch space under ``output_dir/.gpucal-scratch/`` (without an output directory, under
    ``<tmp>/gpucal-scratch-<uid>/``), removed on exit; a killed run's is removed by the next
    run (:func:`remove_debris`). The debris of dead processes there is removed first.
    """
    root = Path(output_dir) if output_dir is not None else _user_temp_root()
    if root is not None:
        remove_debris(root)
    scratch = Scratch(root)
    try:
        yield scratch
    finally:
        scratch.remove()
