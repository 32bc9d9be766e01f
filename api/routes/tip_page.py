"""The public tip page (``/tip``): residents report a suspicious message without logging in.

This is, with /health and the 公众号 callback (whose requests are signed by WeChat), the one
deliberate exception to "every route needs a token": a resident has no account. It is guarded
instead by a per-address rate limit kept in the database and a signed form token with a minimum fill time
(api.flood), a body size limit (RequestGuard), at most 3 pictures of at most
YUQING_IMAGE_MAX_MB each, and it never shows anything but the resident's own reply.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from alerts.tips import take_tip
from api.flood import FormRefused, check_form_token, new_form_token, tip_wait
from core.settings import get_settings
from core.tips import MAX_TIP_CHARS, TipError, TipIn

router = APIRouter(tags=["tips"], include_in_schema=False)
TEMPLATES = Environment(loader=FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates")),
                        autoescape=select_autoescape(["html"]))
MAX_IMAGES = 3
TITLE = "群众举报 · 谣言核实"
_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG", "png"), (b"GIF8", "gif"))


def _page(status: int = 200, **values: object) -> HTMLResponse:
    context: dict[str, object] = {
        "title": TITLE, "office": get_settings().digest_title.replace("舆情日报", ""), "max_chars": MAX_TIP_CHARS,
        "text": "", "contact": "", "wants_answer": False, "reply": None, "auto": False, "error": None,
        "form_token": ""}
    html = TEMPLATES.get_template("tip.html").render(context | values)
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
    return HTMLResponse(html, status_code=status, headers=headers)


@router.get("/tip", response_class=HTMLResponse)
def tip_form() -> HTMLResponse:
    return _page(form_token=new_form_token())


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _kind(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), None)


def _save_images(files: list[UploadFile]) -> list[str]:
    """Store the uploads under <data_dir>/tips/ (by content hash) as refs for the picture worker."""
    settings = get_settings()
    limit = int(settings.image_max_mb * 1024 * 1024)
    folder = settings.data_dir / "tips" / "uploads"
    refs = []
    for upload in files:
        data = upload.file.read(limit + 1)
        if not data:
            continue
        if len(data) > limit:
            raise TipError(f"图片太大：每张最多 {settings.image_max_mb:g} MB")
        ext = _kind(data)
        if ext is None:
            raise TipError("只能上传图片（JPG、PNG、GIF、WebP）")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(data).hexdigest()}.{ext}"
        if not path.exists():
            path.write_bytes(data)
        refs.append(f"file://{path}")
    return refs


@router.post("/tip", response_class=HTMLResponse)
def tip_submit(
    request: Request,
    form_token: Annotated[str | None, Form(max_length=400)] = None,
    text: Annotated[str, Form(max_length=MAX_TIP_CHARS * 2)] = "",
    contact: Annotated[str, Form(max_length=100)] = "",
    wants_answer: Annotated[str | None, Form(max_length=5)] = None,
    images: Annotated[list[UploadFile] | None, File()] = None,
) -> HTMLResponse:
    wait = tip_wait(request.app.state.engine, _client(request))
    if wait > 0:
        response = _page(429, error=f"提交太频繁，请 {int(wait) + 1} 秒后再试。", form_token=form_token or "",
                         text=text, contact=contact)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    keep = {"text": text, "contact": contact, "wants_answer": bool(wants_answer)}
    try:
        nonce = check_form_token(form_token)
    except FormRefused as err:
        return _page(422, error=str(err), form_token=new_form_token(), **keep)
    files = [f for f in (images or []) if f.filename]
    if len(files) > MAX_IMAGES:
        return _page(422, error=f"最多上传 {MAX_IMAGES} 张图片", form_token=form_token, **keep)
    contact = contact.strip()
    try:
        refs = _save_images(files)
        tip = TipIn(channel="web", message_id=nonce, text=text.strip(), address=contact or None,
                    wants_answer=bool(wants_answer) and bool(contact), images=refs, reporter=f"addr:{_client(request)}")
        outcome = take_tip(request.app.state.sessionmaker, tip)  # the address's limit was taken above
    except TipError as err:
        return _page(422, error=str(err), form_token=form_token, **keep)
    assert outcome is not None
    return _page(reply=outcome.reply, auto=outcome.auto_answered)
