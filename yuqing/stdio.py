"""``-`` for standard input where a command reads a file.

Readers here sniff encodings, stream and re-read files by name, so standard input is spooled to
a temporary file first (named with the suffix the reader expects); the file is gone afterwards.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def is_stdin(path: Path | str | None) -> bool:
    return path is not None and str(path) == "-"


@contextmanager
def readable(path: Path, suffix: str = "") -> Iterator[Path]:
    """``path`` itself, or (for ``-``) a temporary file holding standard input."""
    if not is_stdin(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="yuqing-stdin-") as tmp:
        spooled = Path(tmp) / f"stdin{suffix}"
        spooled.write_bytes(sys.stdin.buffer.read())
        yield spooled
