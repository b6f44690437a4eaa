"""Check a FITS file's structure against its size before any data are read.

astropy opens a short file with only a warning, and its memory maps then fail late (a
``TypeError: buffer is too small`` mid-run, or a ``cannot reshape`` in a reference
reader). :func:`fits_layout` walks the headers alone (a few kilobytes), computes where each
HDU's data must end from BITPIX, NAXISn, PCOUNT and GCOUNT, and compares that with the
file's size, so that an empty, truncated, padded-with-garbage or header-corrupted file is
refused with a message naming the file and the fault, before anything is computed.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import FileFormatError

BLOCK = 2880
CARD = 80
_BITPIX = (8, 16, 32, 64, -32, -64)
#: Header blocks scanned for an END card before the file is called corrupt (28.8 MB of cards).
_MAX_HEADER_BLOCKS = 10_000


@dataclass(frozen=True)
class HduLayout:
    """Where one HDU lies in its file.

    Attributes
    ----------
    index : int
        0 for the primary HDU.
    name : str
        EXTNAME, or ``PRIMARY`` / ``HDU <index>`` when it has none.
    header_offset, data_offset : int
        Byte offsets of the header and of the data.
    data_bytes : int
        Size of the data the header declares, without the padding to a 2880-byte block.
    bitpix : int
    shape : tuple of int
        NAXISn in C order (slowest axis first); empty for a header-only HDU.
    """

    index: int
    name: str
    header_offset: int
    data_offset: int
    data_bytes: int
    bitpix: int
    shape: tuple[int, ...]

    @property
    def end(self) -> int:
        """Byte offset just after the data's padding: where the next HDU starts."""
        return self.data_offset + _padded(self.data_bytes)


def _padded(nbytes: int) -> int:
    return nbytes + (-nbytes) % BLOCK


def _fault(path: Path, message: str) -> FileFormatError:
    return FileFormatError(f"{path}: {message}")


def _value(card: str) -> str:
    """The value field of a card: a quoted string whole, else the text before a comment's slash."""
    if card[8:10] != "= ":
        return ""
    text = card[10:].lstrip()
    if text.startswith("'"):
        quoted = re.match(r"'(?:[^']|'')*'", text)
        return quoted.group(0) if quoted else text
    return text.split("/", 1)[0].strip()


def _extname(cards: dict[str, str]) -> str:
    return cards.get("EXTNAME", "").strip("'").replace("''", "'").strip()


class _Header:
    """The structural cards of one header, read from raw 80-character cards."""

    def __init__(self, path: Path, index: int, cards: dict[str, str], first: str) -> None:
        self.path, self.index, self.cards, self.first = path, index, cards, first

    def extname(self) -> str:
        return _extname(self.cards)

    def where(self) -> str:
        name = self.extname()
        return f"HDU {self.index}" + (f" ({name})" if name else "")

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        text = self.cards.get(key)
        if text is None:
            if default is None:
                raise _fault(self.path, f"{self.where()} header has no {key} card: the header is corrupt")
            return default
        try:
            value = int(text)
        except ValueError:
            raise _fault(self.path, f"{self.where()} header card {key} = {text!r} is not an integer: "
                                    "the header is corrupt") from None
        if value < minimum:
            raise _fault(self.path, f"{self.where()} header card {key} = {value} is below {minimum}: "
                                    "the header is corrupt")
        return value


def _read_header(fh, path: Path, offset: int, size: int, index: int) -> tuple[_Header, int]:
    """The header starting at ``offset`` and the offset of its data."""
    cards: dict[str, str] = {}
    first = ""
    fh.seek(offset)
    for block_no in range(_MAX_HEADER_BLOCKS):
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            where = f"HDU {index}" + (f" ({_extname(cards)})" if _extname(cards) else "")
            raise _fault(path, f"truncated: the header of {where} is cut off at byte {size} "
                               "(no END card)")
        bad = next((i for i, b in enumerate(block) if not 32 <= b <= 126), None)
        if bad is not None:
            raise _fault(path, f"header of HDU {index} holds a non-text byte 0x{block[bad]:02x} at byte "
                               f"{offset + block_no * BLOCK + bad}: the file is corrupt")
        text = block.decode("ascii")
        for start in range(0, BLOCK, CARD):
            card = text[start:start + CARD]
            key = card[:8].rstrip()
            if block_no == 0 and start == 0:
                first = key
            if key == "END":
                if card[3:].strip():
                    raise _fault(path, f"header of HDU {index} has a malformed END card: the file is corrupt")
                return _Header(path, index, cards, first), offset + (block_no + 1) * BLOCK
            if key and key not in cards:
                cards[key] = _value(card)
    raise _fault(path, f"header of HDU {index} has no END card in its first {_MAX_HEADER_BLOCKS} blocks: "
                       "the file is corrupt")


def fits_layout(path: str | os.PathLike[str]) -> list[HduLayout]:
    """The HDUs of a FITS file, checked against the file's size.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file.

    Returns
    -------
    list of HduLayout
        One per HDU, in file order.

    Raises
    ------
    FileFormatError
        The file is empty; it does not start with ``SIMPLE = T``; a header holds non-text
        bytes, lacks its END card, or has a missing or malformed BITPIX, NAXIS, NAXISn,
        PCOUNT or GCOUNT; an HDU's data (with its padding) reaches past the end of the file;
        the fill after an HDU's data is not zeros (the header describes less data than
        there is); or what follows the last HDU is neither another extension nor zeros.
    OSError
        The file cannot be read.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise FileFormatError(f"{path} is not a readable FITS file: it is empty (0 bytes)")
    layouts: list[HduLayout] = []
    with open(path, "rb") as fh:
        head = fh.read(30)
        if not (head.startswith(b"SIMPLE  =") and head[9:].strip() == b"T"):
            raise FileFormatError(f"{path} is not a readable FITS file: it does not start with SIMPLE = T")
        offset = 0
        while offset < size:
            index = len(layouts)
            if index:
                fh.seek(offset)
                if not fh.read(8).startswith(b"XTENSION"):
                    fh.seek(offset)
                    if _only_zeros(fh):
                        break  # zero padding after the last HDU
                    raise _fault(path, f"the {size - offset} bytes after HDU {index - 1} (from byte {offset}) "
                                       "are not a FITS extension (no XTENSION card): the file is corrupt")
            header, data_offset = _read_header(fh, path, offset, size, index)
            layouts.append(_layout(header, offset, data_offset))
            end = layouts[-1].end
            if end > size:
                lay = layouts[-1]
                raise _fault(path, f"truncated: the file has {size} bytes, its headers need {end} "
                                   f"({header.where()}: {'x'.join(map(str, lay.shape)) or 'no'} values of "
                                   f"BITPIX {lay.bitpix})")
            _check_padding(fh, path, layouts[-1], header)
            offset = end
    return layouts


def _only_zeros(fh) -> bool:
    """Whether the rest of ``fh`` holds only zero bytes (read a megabyte at a time)."""
    while chunk := fh.read(1 << 20):
        if chunk.strip(b"\0"):
            return False
    return True


def _check_padding(fh, path: Path, layout: HduLayout, header: _Header) -> None:
    """The fill after the data must be zeros (blanks in an ASCII table), as FITS requires;
    anything else means the header describes less data than the file holds (a corrupt
    BITPIX or NAXISn)."""
    fill_start = layout.data_offset + layout.data_bytes
    fh.seek(fill_start)
    fill = fh.read(layout.end - fill_start)
    allowed = b"\0 " if header.cards.get("XTENSION", "").strip("' ") == "TABLE" else b"\0"
    if fill.strip(allowed):
        raise _fault(path, f"{header.where()} declares {layout.data_bytes} data bytes "
                           f"({'x'.join(map(str, layout.shape)) or 'no'} values of BITPIX {layout.bitpix}), "
                           f"but the fill after them (from byte {fill_start}) holds data: a corrupt header")


def _layout(header: _Header, offset: int, data_offset: int) -> HduLayout:
    primary = header.index == 0
    if not primary and header.first != "XTENSION":
        raise _fault(header.path, f"{header.where()} does not start with XTENSION: the header is corrupt")
    bitpix = header.integer("BITPIX", minimum=-64)
    if bitpix not in _BITPIX:
        raise _fault(header.path, f"{header.where()} has BITPIX = {bitpix}, not one of the FITS values "
                                  f"{', '.join(map(str, _BITPIX))}")
    naxis = header.integer("NAXIS")
    xtension = header.cards.get("XTENSION", "").strip("' ")
    if xtension in ("BINTABLE", "TABLE") and (bitpix != 8 or naxis != 2):
        raise _fault(header.path, f"{header.where()} is a {xtension} with BITPIX = {bitpix}, NAXIS = {naxis} "
                                  "(a table has 8 and 2): the header is corrupt")
    if naxis > 999:
        raise _fault(header.path, f"{header.where()} has NAXIS = {naxis} (at most 999)")
    axes = [header.integer(f"NAXIS{n}") for n in range(1, naxis + 1)]
    pcount = header.integer("PCOUNT", default=0 if primary else None)
    gcount = header.integer("GCOUNT", default=1 if primary else None, minimum=1)
    # FITS: |BITPIX| x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISm) bits; NAXIS1 = 0 in random groups.
    random_groups = primary and axes[:1] == [0] and header.cards.get("GROUPS") == "T"
    elements = gcount * (pcount + math.prod(axes[1:] if random_groups else axes)) if naxis else 0
    name = header.extname() or ("PRIMARY" if primary else f"HDU {header.index}")
    return HduLayout(header.index, name, offset, data_offset, elements * abs(bitpix) // 8, bitpix,
                     tuple(reversed(axes)))
