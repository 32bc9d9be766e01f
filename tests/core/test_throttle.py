"""A sending account's turn (core.throttle.sending_turn): messages reach the bot at least the
pace apart however late each one leaves, and a holder that died frees the turn when its lease
ends. Concurrent senders are threads with their own connections, which meet in the database as
processes do. On SQLite and PostgreSQL (``db`` marker)."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time

from sqlalchemy import Engine

from core.tables import utcnow
from core.throttle import sending_turn

KEY = "send:qq:bot"


def test_a_message_that_leaves_late_never_bunches_with_the_next(api_engine: Engine) -> None:
    """Each sender's first message leaves late (a fresh process's first connection and HTTP
    client): booking slots and sending afterwards put such a message right before the next
    sender's on-time one. The gaps are measured where the bot sees the messages arrive."""
    interval, late, senders, sends = 0.25, 0.2, 3, 2
    arrivals: list[dt.datetime] = []
    lock = threading.Lock()
    start = threading.Barrier(senders)

    def sender() -> None:
        start.wait()
        for n in range(sends):
            with sending_turn(api_engine, KEY, interval=interval, hold=30.0, sleep=time.sleep):
                time.sleep(late if n == 0 else 0.0)  # the message is on its way
                with lock:
                    arrivals.append(utcnow())  # the bot has it
                time.sleep(0.01)  # the bot's answer

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(arrivals) == senders * sends
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sorted(arrivals))]
    assert min(gaps) >= interval, gaps


def test_a_sender_that_died_holding_the_turn_frees_it_when_its_lease_ends(api_engine: Engine) -> None:
    clock = {"now": utcnow()}
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # a clock that moves only when a sender waits
        pauses.append(seconds)
        clock["now"] += dt.timedelta(seconds=seconds)

    dead = sending_turn(api_engine, KEY, interval=2.0, hold=30.0, sleep=sleep, now=lambda: clock["now"])
    dead.__enter__()  # killed mid-send: never leaves the turn
    clock["now"] += dt.timedelta(seconds=5)
    with sending_turn(api_engine, KEY, interval=2.0, hold=30.0, sleep=sleep, now=lambda: clock["now"]) as waited:
        assert waited == sum(pauses) and abs(waited - 25.0) < 1e-6  # the rest of the lease
        assert max(pauses) <= 2.0  # looking again every interval: a live holder would end sooner
    with sending_turn(api_engine, KEY, interval=2.0, hold=30.0, sleep=sleep, now=lambda: clock["now"]) as waited:
        assert waited == 2.0  # after a send that ended, exactly the pace
