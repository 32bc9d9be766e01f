"""Errors of the concern stage."""

from __future__ import annotations

from core.errors import YuqingError


class ConcernConfigError(YuqingError):
    """An office config file (taxonomy.yaml, places.yaml) is missing or malformed."""

    status_code = 422
