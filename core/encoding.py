"""Which encoding a user's text file is in: UTF-8 (with or without BOM), UTF-16 or GB18030.

Files from Chinese offices come as UTF-8, as GBK (Excel on Chinese Windows saves "CSV" in the
system code page, GBK), or UTF-16 (some chat tools). GB18030 is a superset of GBK and of GB2312.
The chat importers and every CSV reader (labels, debunks, training data, `yuqing classify`) ask
here, so an analyst never has to re-save a file before importing it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

SAMPLE_BYTES = 256 * 1024


def sniff_encoding(sample: bytes) -> str:
    """``utf-8-sig``, ``utf-16`` or ``gb18030`` (a superset of GBK), from the first bytes of a file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # Decide line by line: a file mixing encodings goes with its majority. (GB18030 decodes almost
    # any bytes, so "does it decode as GB18030" says nothing; "does it decode as UTF-8" does.)
    lines = sample.split(b"\n")
    if len(sample) == SAMPLE_BYTES and len(lines) > 1:
        lines.pop()  # maybe cut in the middle of a character
    utf8 = other = 0
    for raw in lines:
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
            utf8 += 1
        except UnicodeDecodeError:
            other += 1
    return "utf-8-sig" if utf8 >= other else "gb18030"


def file_encoding(path: str | Path) -> str:
    """`sniff_encoding` of the start of the file at ``path``."""
    with Path(path).open("rb") as f:
        return sniff_encoding(f.read(SAMPLE_BYTES))


def decode_text(data: bytes) -> str:
    """``data`` decoded in its sniffed encoding; raises UnicodeDecodeError when it is none of them."""
    return data.decode(sniff_encoding(data[:SAMPLE_BYTES]))
