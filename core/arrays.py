"""Reading numpy's .npy / .npz files from several threads at once.

CPython 3.11 before 3.11.8 can fail with "SystemError: AST constructor recursion depth mismatch"
when two threads run ``ast.parse`` at the same time (python/cpython#106905), and numpy reads every
.npy header with ``ast.literal_eval``. The API server builds its matchers in a warm-up thread
while requests load models of their own, so every array file (and every skops file, which holds
.npy members) is read under one lock. Reading is a small part of loading; the lock costs nothing
measurable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["load_npy", "load_npz", "reading_arrays"]

_LOCK = threading.RLock()


@contextmanager
def reading_arrays() -> Iterator[None]:
    """Hold the array-file lock (around a library call that reads .npy data, e.g. skops.io.load)."""
    with _LOCK:
        yield


def load_npy(file: str | Path | IO[bytes]) -> np.ndarray:
    """One .npy array; pickled objects are refused."""
    with _LOCK:
        return np.load(file, allow_pickle=False)


def load_npz(file: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Every array of an .npz file, read at once (an NpzFile parses each member lazily)."""
    with _LOCK, np.load(file, allow_pickle=allow_pickle) as z:
        return {k: z[k] for k in z.files}
