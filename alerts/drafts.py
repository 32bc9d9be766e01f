"""Response drafts staff can publish with light edits, and the templates they come from.

A draft speaks as the office's public name (setting ``office_public_name``), refers to the claim
in a short form cleaned of its hooks ("紧急扩散！听说…" becomes "青禾镇下周封城"), states only the
facts of a matched debunk, and leaves everything else as a placeholder staff must fill
(【核实情况】). A draft says 经核实 once and puts a link last, as "详见：<link>".

Templates: one per kind of matter (rumor | concern | notice) and category of the editable taxonomy
(category "" serves every category of its kind). Analysts edit them (table ``response_templates``);
the defaults below are used where nobody has. A template's ``{变量}`` is filled by the system when it
knows the value and otherwise becomes the placeholder ``【变量】``:

- ``{发布单位}`` the office's public name; ``{说法}`` the claim or complaint, cleaned, about 30 characters;
- ``{核实情况}`` the facts of the matched debunk (else 【核实情况】); ``{来源}`` the debunk's publisher;
- ``{地点}`` the places the matter names; ``{类别}`` its category.

A text that still holds a placeholder (``【…】`` other than a heading such as 【辟谣】) cannot be
recorded as published (:func:`unfilled_placeholders`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.settings import get_settings
from core.tables import Alert, Debunk, Incident, ResponseTemplate, Story, User, utcnow
from nlp.headline import headline

__all__ = [
    "KINDS",
    "KIND_ZH",
    "VARIABLES",
    "default_template",
    "draft",
    "draft_for_alert",
    "draft_problems",
    "list_templates",
    "reset_template",
    "response_kind",
    "save_template",
    "template_for",
    "unfilled_placeholders",
]

KINDS = ("rumor", "concern", "notice")
KIND_ZH = {"rumor": "谣言澄清", "concern": "群众关切回应", "notice": "官方通知说明"}
#: The variables a template may use, with what fills them (shown on the template page).
VARIABLES = {
    "发布单位": "本单位对外名称（设置 office_public_name）",
    "说法": "传播的说法或群众反映的问题，已去掉“转发”“紧急扩散”等字样，约 30 字",
    "核实情况": "匹配到的辟谣信息中的核实内容；没有时留作【核实情况】由工作人员填写",
    "来源": "辟谣信息的发布单位；没有时留作【来源】",
    "地点": "这件事涉及的地点；没有时留作【地点】",
    "类别": "这件事的类别",
}
#: Bracketed words that head a text rather than ask for one ("【辟谣】青禾镇…").
HEADINGS = frozenset({"辟谣", "提醒", "通知", "公告", "通告", "情况说明", "情况通报", "温馨提示", "重要提醒",
                      "权威发布", "声明", "回应"})
MAX_BODY = 5000

_VAR_RE = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER_RE = re.compile(r"【([^【】\n]{1,30})】")
_URL_RE = re.compile(r"https?://[^\s，。；、“”（）()<>\"']+", re.IGNORECASE)
# What someone passing a rumor on says before it ("听说", "网传"): not part of the claim.
_HEARSAY_RE = re.compile(r"^(?:听说|据说|网传|有人说|听人说|听群里说|群里说|朋友说|据可靠消息|内部消息|据内部消息)[，,：:]?")
_QUOTES = str.maketrans({"“": "", "”": "", '"': "", "「": "", "」": "", "『": "", "』": ""})
# The appeal a debunk ends with; the template has its own, so the draft would say it twice.
_APPEAL_RE = re.compile(r"信谣|传谣|转发|以官方|为准|依法|理性|切勿|不要相信|请勿相信")
_VERIFIED = "经核实"
_VERIFIED_RE = re.compile(r"(?<!未)(?<!没有)经核实")  # "未经核实的信息" is not the verdict
_LEAD_HEADING_RE = re.compile(r"^\s*(?:【[^【】]{1,10}】|\[[^\[\]]{1,10}\])\s*")
_ASKS_RE = re.compile(r"^(?:请|不要|切勿|勿|希望|广大)")
# Clauses that only restate the rumor ("近日有人在群里传播…的消息"): the draft restates it itself.
_RESTATES_RE = re.compile(r"网传|传言|有人在|有人称|流传|传播|散布|称")
_VERDICT_RE = re.compile(r"不实|谣言|虚假|不属实|伪造|没有|未|不存在|并非|系")
# Actions a default must never claim on the office's behalf (nobody took them yet).
CLAIMED_ACTIONS = ("已会同", "已请", "已联系", "正在协调", "已责成", "已督促", "核实处置", "已安排", "已部署")


# ----------------------------------------------------------------------------- default templates

_RUMOR = (
    "关于网传“{说法}”的情况说明\n"
    "近日，有网民在微信群等渠道传播“{说法}”的信息。经核实，{核实情况}。\n"
    "{提示}请广大群众以{发布单位}官方渠道发布的信息为准，不信谣、不传谣。\n"
    "{发布单位}"
)
_CONCERN = (
    "关于群众反映“{说法}”的回应\n"
    "近日，有群众反映“{说法}”。经核实，【核实情况】。\n"
    "{提示}如有疑问，请拨打【咨询电话】咨询。\n"
    "{发布单位}"
)
_NOTICE = (
    "关于“{说法}”的说明\n"
    "近日群众转发的“{说法}”相关通知，经核实，系【通知发布单位】于【发布日期】正式发布，内容属实。"
    "具体安排以原通知为准：【通知要点】。\n"
    "{提示}如有疑问，请拨打【咨询电话】咨询。\n"
    "{发布单位}"
)
_BASE = {"rumor": _RUMOR, "concern": _CONCERN, "notice": _NOTICE}
# One line of category-specific guidance, true whatever happened (no facts, no claimed actions).
_ADVICE = {
    "物资供应": "请大家理性消费、按需购买，不必囤积。",
    "医疗救治": "群众如有就医需要，可拨打【卫生院电话】咨询，急危重症请拨打120。",
    "疫情防控措施/隔离": "防控措施以县、镇两级政府正式发布的通告为准。",
    "交通出行": "出行安排以交通运输部门发布的通告为准。",
    "物价": "如发现哄抬价格等行为，可拨打12315反映。",
    "就业与生计": "相关政策可拨打【咨询电话】咨询。",
    "教育": "教学安排以学校和教育部门的正式通知为准。",
    "公共安全": "如遇紧急情况，请拨打110报警。",
    "政策咨询": "政策内容以正式发布的文件为准。",
}


def default_template(kind: str, category: str = "") -> str:
    """The shipped wording for ``kind`` and ``category`` ("" for every category)."""
    base = _BASE[kind]
    advice = _ADVICE.get(category, "")
    if kind != "rumor" and "咨询电话" in advice:
        advice = ""  # the concern and notice templates already end with the phone line
    return base.replace("{提示}", advice)


# ----------------------------------------------------------------------------- the stored templates


def _stored(session: Session) -> dict[tuple[str, str], ResponseTemplate]:
    """All edited templates (a handful of rows), cached on the session for one run or request."""
    cache = session.info.get("response_templates")
    if cache is None:
        cache = {(t.kind, t.category): t for t in session.scalars(select(ResponseTemplate))}
        session.info["response_templates"] = cache
    return cache


def _forget(session: Session) -> None:
    session.info.pop("response_templates", None)


def template_for(session: Session, kind: str, category: str | None) -> tuple[str, bool]:
    """(body, edited) for ``kind`` and ``category``: see :func:`_template_source`."""
    body, source = _template_source(session, kind, category)
    return body, source != "default"


def _template_source(session: Session, kind: str, category: str | None) -> tuple[str, str]:
    """(body, source) for ``kind`` and ``category``; source is "edited" (the category's own edited
    template), "default" (the shipped wording for a category with its own advice), "inherited" (the
    kind's edited general template) or "default" again (the shipped general one)."""
    stored = _stored(session)
    cat = category or ""
    if (kind, cat) in stored:
        return stored[(kind, cat)].body, "edited"
    own = default_template(kind, cat)
    if cat and own != default_template(kind):
        return own, "default"
    if (kind, "") in stored:
        return stored[(kind, "")].body, "inherited" if cat else "edited"
    return default_template(kind), "default"


def list_templates(session: Session, categories: list[str]) -> list[dict[str, Any]]:
    """Every kind x ("" + categories), with its current body and whether analysts edited it
    (``edited``: this very template; ``inherited``: it follows its kind's edited general one;
    ``general``: a category without wording of its own, which reads as its kind's general one)."""
    stored = _stored(session)
    users = {u.id: u.display_name or u.username for u in session.scalars(select(User)
             .where(User.id.in_([t.updated_by for t in stored.values() if t.updated_by])))}
    out = []
    for kind in KINDS:
        for cat in ["", *dict.fromkeys(c for c in categories if c)]:
            body, source = _template_source(session, kind, cat)
            row = stored.get((kind, cat))
            out.append({
                "kind": kind, "kind_zh": KIND_ZH[kind], "category": cat, "body": body,
                "edited": row is not None, "inherited": source == "inherited",
                "general": bool(cat) and row is None and default_template(kind, cat) == default_template(kind),
                "default": default_template(kind, cat),
                "updated_at": row.updated_at if row else None,
                "updated_by": users.get(row.updated_by) if row and row.updated_by else None,
            })
    return out


def check_template(kind: str, category: str, body: str, categories: list[str]) -> str:
    """The body, stripped, or InvalidInput (Chinese) saying what is wrong with it."""
    if kind not in KINDS:
        raise InvalidInput(f"类型“{kind}”无法识别：可用 {'、'.join(KINDS)}")
    if category and category not in categories:
        raise InvalidInput(f"类别“{category}”不在分类表里：可用 {'、'.join(categories)}，或留空表示所有类别")
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise InvalidInput("模板内容不能为空")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"模板过长：最多 {MAX_BODY} 字")
    unknown = sorted({v for v in _VAR_RE.findall(body) if v not in VARIABLES})
    if unknown or body.count("{") != body.count("}"):
        names = "、".join("{" + v + "}" for v in unknown) or "不成对的花括号"
        raise InvalidInput(f"模板里有无法识别的变量 {names}：可用 {'、'.join('{' + v + '}' for v in VARIABLES)}")
    if body.count(_VERIFIED) > 1:
        raise InvalidInput("模板里“经核实”只能出现一次")
    if _URL_RE.search(body):
        raise InvalidInput("模板里不要写网址：辟谣信息的链接会以“详见：链接”附在末尾")
    return body


def save_template(session: Session, kind: str, category: str, body: str, *, categories: list[str],
                  actor: User | None, now: dt.datetime | None = None) -> ResponseTemplate:
    """Store an analyst's wording (saving the same text again changes nothing but the time)."""
    body = check_template(kind, category, body, categories)
    row = session.scalars(select(ResponseTemplate).where(ResponseTemplate.kind == kind,
                                                         ResponseTemplate.category == category)).first()
    if row is None:
        row = ResponseTemplate(kind=kind, category=category, body=body)
        session.add(row)
    row.body = body
    row.updated_by = actor.id if actor is not None else None
    row.updated_at = now or utcnow()
    session.flush()
    _forget(session)
    return row


def reset_template(session: Session, kind: str, category: str) -> bool:
    """Back to the shipped wording; True when an edited template was removed."""
    if kind not in KINDS:
        raise InvalidInput(f"类型“{kind}”无法识别：可用 {'、'.join(KINDS)}")
    gone = session.execute(delete(ResponseTemplate).where(ResponseTemplate.kind == kind,
                                                          ResponseTemplate.category == category))
    _forget(session)
    return bool(getattr(gone, "rowcount", 0))


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Facts:
    """What the system knows for a draft; None where staff must fill it in."""

    claim: str
    verified: str | None = None
    source: str | None = None
    places: tuple[str, ...] = ()
    category: str | None = None
    link: str | None = None


def short_claim(text: str | None, limit: int = 30) -> str:
    """The claim as a draft refers to it: no hooks, no hearsay lead, no quotes, no end marks."""
    t = headline(text or "", limit=limit)
    for _ in range(2):
        t = _HEARSAY_RE.sub("", t).strip()
    t = t.translate(_QUOTES).rstrip("。！？!?…~～，,、；;：: ")
    return t


def debunk_facts(refutation: str) -> tuple[str, str | None]:
    """(facts, link) of a debunk's official text: what follows its 经核实, without the rumor it
    restates, its closing appeal (the template has its own), hooks or URLs (the link goes last)."""
    urls = _URL_RE.findall(refutation or "")
    text = re.sub(r"\s+", " ", _URL_RE.sub(" ", refutation or "")).strip()
    text = _LEAD_HEADING_RE.sub("", text)
    verdict = _VERIFIED_RE.search(text)
    if verdict:
        text = text[verdict.end():].lstrip("，,：: ")
    text = _VERIFIED_RE.sub("经查", text)
    clauses = [c for c in re.split(r"(?<=[，。；！])", text) if c.strip("，。；！ ")]
    while len(clauses) > 1 and _RESTATES_RE.search(clauses[0]) and not _VERDICT_RE.search(clauses[0]):
        clauses.pop(0)
    sentences = "".join(clauses)
    kept = [s for s in re.split(r"(?<=[。！；])", sentences) if s.strip()]
    # the last sentence(s) that only appeal ("请勿信谣传谣") go; the facts stay
    while len(kept) > 1 and _APPEAL_RE.search(kept[-1]):
        kept.pop()
    out = "".join(kept)
    parts = [c for c in re.split(r"(?<=[，])", out) if c]
    while len(parts) > 1 and (_APPEAL_RE.search(parts[-1]) or _ASKS_RE.match(parts[-1])) \
            and not _VERDICT_RE.search(parts[-1]):
        parts.pop()
    out = "".join(parts).strip().rstrip("，。；！、 ")
    return out, (urls[0].rstrip(".") if urls else None)


def render(body: str, facts: Facts, office: str) -> str:
    """A template filled with ``facts``; what the system does not know stays 【变量】."""
    values = {
        "发布单位": office,
        "说法": facts.claim or None,
        "核实情况": facts.verified,
        "来源": facts.source,
        "地点": "、".join(facts.places[:2]) or None,
        "类别": facts.category,
    }

    def fill(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return value if value else f"【{m.group(1)}】"

    text = _VAR_RE.sub(fill, body).strip()
    text = re.sub(r"。。+", "。", text)
    if facts.link:
        text += f"\n详见：{facts.link}"
    return text


def draft(session: Session, *, kind: str, category: str | None, claim: str | None,
          places: list[str] | tuple[str, ...] = (), debunk_id: int | None = None) -> str:
    """The draft for a matter: its kind's and category's template, the debunk's facts if any."""
    kind = kind if kind in KINDS else "rumor"
    verified = source = link = None
    d = session.get(Debunk, debunk_id) if debunk_id else None
    if d is not None and kind == "rumor":
        verified, link = debunk_facts(d.refutation)
        verified = verified or None
        source = d.publisher or None
        link = d.url or link
        claim = claim or d.claim
        short = short_claim(d.claim)
    else:
        short = ""
    body, _ = template_for(session, kind, category)
    office = get_settings().office_public_name
    facts = Facts(claim=short_claim(claim) or short, verified=verified, source=source,
                  places=tuple(p for p in places if isinstance(p, str) and p != office),
                  category=category, link=link)
    return render(body, facts, office)


def response_kind(alert_kind: str | None, *, on_topic: bool = False) -> str:
    """rumor | concern | notice: which template an alert of ``alert_kind`` answers with (a manual
    alert on a hot topic answers a concern)."""
    if alert_kind == "manual" and on_topic:
        return "concern"
    return alert_kind if alert_kind in ("concern", "notice") else "rumor"


def draft_for_alert(session: Session, alert: Alert, *, debunk_id: int | None = None) -> str:
    """The draft for an alert as its templates read now (an edited template shows at once)."""
    incident = session.get(Incident, alert.incident_id) if alert.incident_id else None
    places: list[str] = []
    if debunk_id is None and incident is not None:
        debunk_id = incident.debunk_id
    if incident is not None:
        places = [p for p in (incident.places or []) if isinstance(p, str)]
    if debunk_id is None and alert.story_id:
        story = session.get(Story, alert.story_id)
        debunk_id = story.debunk_id if story is not None else None
    kind = response_kind(alert.kind, on_topic=alert.topic_id is not None and alert.incident_id is None)
    return draft(session, kind=kind, category=alert.category, claim=alert.title,
                 places=places, debunk_id=debunk_id)


# ----------------------------------------------------------------------------- checks


def unfilled_placeholders(text: str) -> list[str]:
    """The 【…】 placeholders still in ``text`` (headings such as 【辟谣】 are not placeholders)."""
    seen: list[str] = []
    for name in _PLACEHOLDER_RE.findall(text or ""):
        token = f"【{name}】"
        if name.strip() not in HEADINGS and token not in seen:
            seen.append(token)
    return seen


def draft_problems(text: str) -> list[str]:
    """What would stop a draft being published as written (for tests and the template page)."""
    problems = []
    if text.count(_VERIFIED) != 1:
        problems.append(f"“经核实”出现 {text.count(_VERIFIED)} 次")
    body, _, tail = text.rpartition("\n详见：")
    if _URL_RE.search(body if tail else text):
        problems.append("正文中有网址（链接应以“详见：”放在末尾）")
    for hook in ("紧急扩散", "转发扩散", "速看", "不转不是", "听说", "【转】"):
        if hook in text:
            problems.append(f"引用了传言的“{hook}”")
    problems += [f"声称了未做的工作“{a}”" for a in CLAIMED_ACTIONS if a in text]
    for phrase in ("不信谣", "以官方", "请勿转发"):
        if text.count(phrase) > 1:
            problems.append(f"“{phrase}”重复")
    return problems
