"""CAPTCHA-free flood resistance for the public tip page (the one public write route).

Two parts, no third-party service and nothing to solve:

* a token bucket per client address (YUQING_TIP_RATE_PER_MINUTE, YUQING_TIP_RATE_BURST): a
  resident sends a few tips, a script sending hundreds gets 429 with Retry-After;
* a signed form token (itsdangerous, the instance secret) with the time the form was served:
  a post without a token, with a forged or expired one, or sooner than
  YUQING_TIP_FORM_MIN_SECONDS after the form was served (no person types that fast) is refused.
  The token's nonce is also the tip's idempotency key, so a double click stores one tip.

The buckets live in process memory: a restart forgets them, and each worker of a scaled-out
server keeps its own (the limit is then per worker). The client address is the TCP peer; behind
a reverse proxy run uvicorn with --proxy-headers so it is the resident's, not the proxy's.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from core.settings import get_settings

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Per-key token buckets: ``rate`` tokens per second, at most ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when a token was taken; else the seconds until the next one."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._buckets) > MAX_BUCKETS:  # a spray of addresses must not grow memory forever
                self._buckets.clear()
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
            b.at = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            return (1.0 - b.tokens) / self.rate


_BUCKETS: dict[tuple[float, int], TokenBuckets] = {}


def tip_buckets() -> TokenBuckets:
    s = get_settings()
    key = (s.tip_rate_per_minute, s.tip_rate_burst)
    if key not in _BUCKETS:
        _BUCKETS[key] = TokenBuckets(s.tip_rate_per_minute / 60.0, s.tip_rate_burst)
    return _BUCKETS[key]


class FormRefused(Exception):
    """A form token that is missing, forged, too fresh or too old; the message is for the resident."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret(), salt="yuqing tip form v1")


def new_form_token() -> str:
    # The serving time to the millisecond: itsdangerous's own timestamp has whole seconds only.
    return _serializer().dumps({"n": secrets.token_urlsafe(12), "t": round(time.time(), 3)})


def check_form_token(token: str | None) -> str:
    """The nonce of a valid form token, or FormRefused."""
    settings = get_settings()
    if not token:
        raise FormRefused("页面已失效，请刷新后重新填写。")
    try:
        value = _serializer().loads(token, max_age=int(settings.tip_form_max_hours * 3600))
    except SignatureExpired as err:
        raise FormRefused("页面打开太久已失效，请刷新后重新提交。") from err
    except BadSignature as err:
        raise FormRefused("页面已失效，请刷新后重新填写。") from err
    nonce = value.get("n") if isinstance(value, dict) else None
    served = value.get("t") if isinstance(value, dict) else None
    if not isinstance(nonce, str) or not nonce or not isinstance(served, int | float):
        raise FormRefused("页面已失效，请刷新后重新填写。")
    if time.time() - served < settings.tip_form_min_seconds:
        raise FormRefused("提交太快了，请稍等几秒再提交。")
    return nonce
