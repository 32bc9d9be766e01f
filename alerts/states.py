"""The alert state machine: the states, their Chinese names and the valid moves between them."""

from __future__ import annotations

STATES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern", "dismissed", "responded", "closed")
STATE_ZH = {
    "new": "新预警",
    "acknowledged": "已认领",
    "confirmed_rumor": "已确认谣言",
    "confirmed_concern": "已确认关切",
    "dismissed": "已排除",
    "responded": "已回应",
    "closed": "已关闭",
}
#: Valid moves. ``responded`` is reached by recording a response (:func:`respond`); a dismissed
#: alert may be reopened (back to acknowledged); closed is final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged", "confirmed_rumor", "confirmed_concern", "dismissed"),
    "acknowledged": ("confirmed_rumor", "confirmed_concern", "dismissed"),
    "confirmed_rumor": ("responded", "closed"),
    "confirmed_concern": ("responded", "closed"),
    "dismissed": ("acknowledged", "closed"),
    "responded": ("closed",),
    "closed": (),
}
OPEN_STATES = ("new", "acknowledged", "confirmed_rumor", "confirmed_concern", "responded")
FINISHED_STATES = ("dismissed", "closed")


def allowed_transitions(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())

