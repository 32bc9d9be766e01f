"""The digest stage's errors (one base class, as every stage has)."""

from __future__ import annotations

from core.errors import YuqingError


class DigestError(YuqingError):
    """Something about building, rendering or sending the digest; the message says what to do."""


class DigestConfigError(DigestError):
    """The recipients file or a template is wrong."""

    status_code = 422


class DigestSendError(DigestError):
    """The mail server could not be reached or refused the digest (it is kept and retried)."""

    status_code = 502
