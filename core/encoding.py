"""Which encoding a user's text file is in: UTF-8 (with or without BOM), UTF-16 (with or without
BOM), GB18030 or Big5.

Files from Chinese offices come as UTF-8, as GBK (Excel on Chinese Windows saves "CSV" in the
system code page, GBK), or UTF-16 (some chat tools). GB18030 is a superset of GBK and of GB2312.
The chat importers and every CSV reader (labels, debunks, training data, `yuqing classify`) ask
here, so an analyst never has to re-save a file before importing it.

UTF-8 is decided by hand (a line that decodes as UTF-8 is UTF-8: cheap and exact); what is not
UTF-8 goes to charset-normalizer restricted to the Chinese encodings, which tells GB18030 from
Big5 (Taiwan, Hong Kong, older forums: read as GB18030 it becomes mojibake) and finds UTF-16
without a BOM (NUL bytes between ASCII characters).
"""

from __future__ import annotations

import codecs
from pathlib import Path

from charset_normalizer import from_bytes

SAMPLE_BYTES = 256 * 1024


def sniff_encoding(sample: bytes) -> str:
    """``utf-8-sig``, ``utf-16`` or ``gb18030`` (a superset of GBK), from the first bytes of a file."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample[:4096]:  # no text file in a Chinese legacy encoding or UTF-8 holds NUL
        return _guess(sample, ["utf_16_le", "utf_16_be"], "utf_16_le")
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
    if utf8 >= other:
        return "utf-8-sig"
    return _guess(sample, ["gb18030", "big5"], "gb18030")


def _guess(sample: bytes, candidates: list[str], default: str) -> str:
    """charset-normalizer's choice among ``candidates`` (``default`` when it finds none fits)."""
    if len(sample) == SAMPLE_BYTES:
        sample = sample[: sample.rfind(b"\n") + 1] or sample  # not cut inside a character
    best = from_bytes(sample, cp_isolation=candidates).best()
    return str(best.encoding) if best is not None else default


def file_encoding(path: str | Path) -> str:
    """`sniff_encoding` of the start of the file at ``path``."""
    with Path(path).open("rb") as f:
        return sniff_encoding(f.read(SAMPLE_BYTES))


def decode_text(data: bytes) -> str:
    """``data`` decoded in its sniffed encoding; raises UnicodeDecodeError when it is none of them."""
    return data.decode(sniff_encoding(data[:SAMPLE_BYTES]))
