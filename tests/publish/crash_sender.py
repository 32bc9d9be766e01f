"""Run publication delivery in its own process and die hard (os._exit, no cleanup, no commit)
right after the bot (or a WeCom robot) confirmed the N-th message and before the result is written: what a
power cut or an OOM kill mid-send looks like. Used by test_publish_flow.py.

    python -m tests.publish.crash_sender <database url> <N>
"""

from __future__ import annotations

import os
import sys

from alerts.publish_delivery import Destination, Part, deliver_publications, send_part
from core.db import make_engine


def main() -> None:
    url, crash_after = sys.argv[1], int(sys.argv[2])
    sent = 0

    def sender(dest: Destination, part: Part) -> str | None:
        nonlocal sent
        message_id = send_part(dest, part)
        sent += 1
        if sent == crash_after:
            os._exit(3)
        return message_id

    deliver_publications(make_engine(url), sender=sender)


if __name__ == "__main__":
    main()
