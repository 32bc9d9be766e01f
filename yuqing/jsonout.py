"""`--json` output of the list commands: one JSON document on standard output, for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def print_json(payload: Any) -> None:
    """Chinese stays readable (no \\u escapes); times as ISO 8601."""
    print(json.dumps(payload, ensure_ascii=False, indent=1, default=_default))
