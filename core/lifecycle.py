"""Process lifecycle: children that die with their parent, and telling a dead run from a live one.

- :func:`die_with_parent` is for worker processes (the analysis pool): a ``kill -9`` of the
  parent must not leave workers (each holding a model, hundreds of MB) running forever. Linux's
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` does it in the kernel; a watchdog thread that compares
  ``os.getppid()`` covers other systems and the race before prctl took effect.
- :func:`worker_id` / :func:`owner_gone` let the next run of a job see at once that a run still
  marked "running" belongs to a process that no longer exists (same host), instead of waiting
  for a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading

PR_SET_PDEATHSIG = 1
WATCHDOG_SECONDS = 1.0


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` does (call it first thing in a child)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(WATCHDOG_SECONDS):
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def worker_id() -> str:
    """``host:pid`` of this process, stored with a run so the next run can check on it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(worker: str | None) -> bool:
    """True when ``worker`` (a :func:`worker_id`) names a process on this host that has exited.
    A process on another host, or an unreadable id, is never declared gone here (the caller's
    timeout decides)."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return False
