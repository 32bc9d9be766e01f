"""Privacy by default: stable pseudonyms for chat senders, masking of personal numbers.

Both run inside core.ingest, so no write path can skip them.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# Mainland mobile numbers (optionally +86 / 86 prefixed, with spaces or dashes) and 18-digit
# resident ID numbers. Landlines and short hotlines (12345, 0571-...) are public and kept.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{6})(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])")
# A bare 5-11 digit run is too ambiguous to be called a QQ number (prices, order numbers), so
# only a number right after "QQ" / "扣扣" (as people write it on boards: "加我QQ：2718281828") is.
_QQ = re.compile(r"((?:QQ|qq|Qq|扣扣)(?:号码?|号)?\s*[:：]?\s*)([1-9]\d{4,10})(?!\d)")


def mask_personal_data(text: str) -> str:
    """Mask mobile, ID-card and marked QQ numbers: ``13812345678`` -> ``138****5678``,
    ``QQ：2718281828`` -> ``QQ：27******28``."""
    text = _ID_CARD.sub(lambda m: m.group(1) + "********" + m.group(0)[-4:], text)
    text = _QQ.sub(lambda m: m.group(1) + m.group(2)[:2] + "*" * max(3, len(m.group(2)) - 4) + m.group(2)[-2:], text)
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def pseudonym(identity: str, secret: bytes, *, prefix: str = "用户") -> str:
    """A stable, non-reversible name for a sender: the same person always maps to the same value."""
    # hmac.digest is the one-shot C path: several times faster than hmac.new() per message.
    digest = hmac.digest(secret, identity.strip().encode("utf-8"), hashlib.sha256).hex()
    return f"{prefix}{digest[:10]}"
