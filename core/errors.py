"""One exception base for the project; each stage subclasses it, the API maps them to HTTP."""

from __future__ import annotations


class YuqingError(Exception):
    """Base of every error we raise on purpose. ``str(err)`` says what happened and what to do."""

    status_code = 400


class NotFound(YuqingError):
    status_code = 404


class Conflict(YuqingError):
    status_code = 409


class InvalidInput(YuqingError):
    status_code = 422


class PermissionDenied(YuqingError):
    status_code = 403
