"""CAPTCHA-free flood resistance for the public tip page (the one public write route).

Two parts, no third-party service and nothing to solve:

* a rate limit per client address (YUQING_TIP_RATE_PER_MINUTE, YUQING_TIP_RATE_BURST): a
  resident sends a few tips, a script sending hundreds gets 429 with Retry-After;
* a signed form token (itsdangerous, the instance secret) with the time the form was served:
  a post without a token, with a forged or expired one, or sooner than
  YUQING_TIP_FORM_MIN_SECONDS after the form was served (no person types that fast) is refused.
  The token's nonce is also the tip's idempotency key, so a double click stores one tip.

The limit is kept in the database (core.throttle, the table the console's login throttle uses):
it holds across a restart, across the workers of ``uvicorn --workers N`` and across servers on one
database. The client address is the TCP peer; behind a reverse proxy run uvicorn with
--proxy-headers so it is the resident's, not the proxy's.
"""

from __future__ import annotations

import secrets
import time

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Engine

from core.settings import get_settings
from core.throttle import RateLimit, take_now


def tip_limit() -> RateLimit:
    """The tip page's limit per client address; the counts are in the database (core.throttle)."""
    s = get_settings()
    return RateLimit(s.tip_rate_per_minute, s.tip_rate_burst)


def tip_wait(engine: Engine | None, address: str) -> float:
    """0.0 when ``address`` may send a tip now, else the seconds until it may."""
    return take_now(engine, tip_limit(), f"tip:addr:{address[:150]}")


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
