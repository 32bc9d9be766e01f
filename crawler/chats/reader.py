"""Reading export files line by line with encoding detection and a byte count for progress bars.

Exports come as UTF-8 (with or without BOM), GBK/GB18030 (older Windows tools), UTF-16 (some QQ
versions), and sometimes a mix (a file appended to by two tools). The encoding is guessed from the
first 256 KiB; a line that does not decode in it is tried in the other common one, and only a line
that decodes in neither is replaced character-wise and reported.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.encoding import SAMPLE_BYTES, sniff_encoding

_CHUNK = 1024 * 1024


@dataclass
class Line:
    number: int
    text: str  # with its line ending
    bad_encoding: bool = False


class LineReader:
    """Iterate decoded lines of a file; ``bytes_read`` tells how far it got (for progress)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.bytes_read = 0
        with self.path.open("rb") as f:
            self.encoding = sniff_encoding(f.read(SAMPLE_BYTES))

    def head(self, max_lines: int = 40) -> list[str]:
        """The first lines, decoded, without counting them as read."""
        out: list[str] = []
        saved = self.bytes_read
        for line in self:
            out.append(line.text)
            if len(out) >= max_lines:
                break
        self.bytes_read = saved
        return out

    def __iter__(self) -> Iterator[Line]:
        self.bytes_read = 0
        with self.path.open("rb") as f:
            if self.encoding == "utf-16":
                yield from self._utf16(f)
            else:
                yield from self._bytewise(f)

    def _bytewise(self, f: BinaryIO) -> Iterator[Line]:
        primary = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        other = "gb18030" if primary == "utf-8" else "utf-8"
        for number, raw in enumerate(f, start=1):
            self.bytes_read += len(raw)
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield Line(number, raw.decode(primary))
            except UnicodeDecodeError:
                try:
                    yield Line(number, raw.decode(other))
                except UnicodeDecodeError:
                    yield Line(number, raw.decode(primary, errors="replace"), bad_encoding=True)

    def _utf16(self, f: BinaryIO) -> Iterator[Line]:
        decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
        pending = ""
        number = 0
        while True:
            chunk = f.read(_CHUNK)
            self.bytes_read += len(chunk)
            pending += decoder.decode(chunk, final=not chunk)
            parts = pending.splitlines(keepends=True)
            # the last part may be an unfinished line: keep it for the next chunk
            pending = parts.pop() if parts and chunk and not parts[-1].endswith(("\n", "\r")) else ""
            for part in parts:
                number += 1
                yield Line(number, part, bad_encoding="\ufffd" in part)
            if not chunk:
                if pending:
                    number += 1
                    yield Line(number, pending)
                return


class CountingFile:
    """A binary file wrapper that counts the bytes a streaming parser (ijson) has read."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.bytes_read += len(data)
        return data
