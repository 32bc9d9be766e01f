"""The digest stage behind the console's 日报 preview and "send now" (api cannot import digest: the
top layer connects them, see api/console/digest_actions.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.console import digest_actions as console
from core.errors import YuqingError
from core.settings import get_settings
from core.tables import Digest, utcnow


class _DigestService:
    def preview(self, session: Session) -> console.Preview:
        from digest.build import today
        from digest.config import audiences
        from digest.render import SECTIONS
        from digest.service import compose, prepare

        settings = get_settings()
        day = today(settings.timezone, utcnow())
        config_error = None
        try:
            title, lists = audiences(settings)
        except YuqingError as err:
            title, lists, config_error = settings.digest_title, [], str(err)
        prepared = prepare(session, day, settings=settings)
        rendered, figures = compose(prepared, title=title, sections=SECTIONS, key="preview", revision=0,
                                    settings=settings)
        row = Digest(day=day, recipients_key="preview", recipients=[], subject=rendered.subject,
                     html=rendered.html, text=rendered.text, figures=figures, status="built")
        return console.Preview(digest=row, lists=[a.as_json() for a in lists], config_error=config_error)

    def send_now(self, session: Session) -> console.SendReport:
        from digest.service import send_day

        report = console.SendReport()
        for o in send_day(session):
            if o.status == "sent":
                report.sent.append(o.recipients)
            elif o.status == "skipped":
                report.skipped += 1
            else:
                report.failed.append(o.message)
        return report


def register() -> None:
    console.use(_DigestService())
