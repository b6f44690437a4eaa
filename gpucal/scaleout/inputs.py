"""Turn batch inputs (paths, glob patterns, jwst association files) into exposure paths."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import FileFormatError, InputError
from .jobs import stem

_GLOB_CHARS = set("*?[")


def expand_inputs(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Exposure paths from paths, glob patterns and jwst association (``.json``) files.

    Order is kept (a pattern's matches sorted); repeated files appear once. An association
    contributes every member's ``expname`` of every product, relative to its own directory.
    Paths that do not exist are kept: their tasks report the missing file.

    Raises
    ------
    InputError
        No inputs; a pattern that matches nothing; two inputs with the same base name
        (their products would overwrite each other).
    FileFormatError
        An association file that cannot be read or is not a jwst association.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        if _GLOB_CHARS & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(os.path.expanduser(text)))
            if not matches:
                raise InputError(f"no file matches {text!r}")
            paths += [Path(m) for m in matches]
        elif text.lower().endswith(".json"):
            paths += association_members(text)
        else:
            paths.append(Path(text))
    if not paths:
        raise InputError("no inputs given")
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    by_stem: dict[str, Path] = {}
    for path in unique.values():
        other = by_stem.setdefault(stem(path), path)
        if other is not path:
            raise InputError(
                f"{other} and {path} have the same base name {stem(path)!r}: their products would "
                "overwrite each other in one output directory; run them as separate batches"
            )
    return list(unique.values())


def association_members(path: str | os.PathLike[str]) -> list[Path]:
    """The exposures (``products[*].members[*].expname``) of a jwst association file."""
    path = Path(path)
    try:
        asn = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"association file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"cannot read association {path}: {exc}") from None
    products = asn.get("products") if isinstance(asn, dict) else None
    if not isinstance(products, list):
        raise FileFormatError(f"{path} is not a jwst association: no 'products' list")
    members = []
    for product in products:
        listed = product.get("members", []) if isinstance(product, dict) else None
        if not isinstance(listed, list):
            raise FileFormatError(f"{path}: a product's 'members' is not a list of exposures")
        for member in listed:
            name = member.get("expname") if isinstance(member, dict) else None
            if not isinstance(name, str) or not name:
                raise FileFormatError(f"{path}: a member of product {product.get('name')!r} has no 'expname'")
            members.append(path.parent / name)
    if not members:
        raise FileFormatError(f"association {path} has no members")
    return members
