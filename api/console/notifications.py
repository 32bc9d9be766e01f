"""The console's 通知 page: every notification route, whether it can deliver, and its last delivery.

Reads alerts.delivery_health (the routing file plus the outbox tables); the header of every page
links here when no route for new alerts can deliver.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from alerts.delivery_health import CHANNEL_ZH
from alerts.notify import notify_config_path
from api.console import queries
from api.console.render import render
from api.console.web import PageUser, check_csrf, note_drift
from api.deps import SessionDep

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf), Depends(note_drift)])


@router.get("/notifications")
def notifications_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    health = queries.notify_health(session, fresh=True)
    request.state.notify_health = health  # the header agrees with the page
    return render(request, "notifications.html", {
        "nav": "notifications", "health": health, "channel_zh": CHANNEL_ZH,
        "config_path": str(notify_config_path()),
    })
