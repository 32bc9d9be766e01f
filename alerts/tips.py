"""What happens to a tip: stored, matched against the debunk library, answered or acknowledged.

:func:`receive_tip` is the one flow every channel calls (tip page, QQ private messages, 公众号,
hotline import), in the caller's transaction:

1. the tip is stored (core.tips.store_tip: idempotent, reporter pseudonymous, contact sealed,
   the text enters the pipeline as a post so it joins or starts an incident);
2. it is matched against the active debunks with the claim matcher (nlp.debunks.DebunkMatcher);
3. a match inside the high-precision band (YUQING_TIP_AUTO_REPLY_MIN_SCORE, chosen by
   bench/bench_tips.py) that passes the gate (nlp.reply_gate: the same places, amounts, dates
   and event, no denial, a margin over the best other debunk) on a channel with
   automatic replies
   (YUQING_TIP_AUTO_REPLY_CHANNELS) is answered at once with the official refutation, its
   source and link; anything else gets "已收到，正在核实…". A match outside the band is still
   recorded on the tip as a hint for staff. A wrong automatic answer is worse than none.

A tip holding insults (nlp.abuse's lexicon) is flagged for staff and never answered
automatically; one holding nothing else (no question, claim or complaint) is closed as abuse at
once, kept out of the pipeline, and gets no reply (the channel shows "已收到。", as for a blocked
reporter). Staff can clear the flag (alerts.tip_queries.clear_flag), which reopens such a tip.

The first reply is returned to the channel (the page shows it, the 公众号 answers it passively);
for QQ it goes through the notification outbox (alerts.tip_delivery) in the same transaction.
A re-sent tip gets the same first reply again and nothing new is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.tip_delivery import enqueue_first_reply
from core.db import transaction, write_turn
from core.settings import get_settings
from core.tables import Debunk, Tip, utcnow
from core.throttle import RateLimit
from core.tips import FLAG_ZH, StoredTip, TipIn, find_tip, reporter_key, store_tip, tip_key, tip_text
from nlp.abuse import find_insults, has_substance
from nlp.debunks import DebunkHit, DebunkMatcher, gazetteer_place_parents
from nlp.normalize import normalize
from nlp.reply_gate import REASONS, gate
from nlp.similarity import match_key

log = logging.getLogger(__name__)
ACKNOWLEDGEMENT = "已收到，正在核实…我们核实后会尽快答复。感谢您的反映！"
ACKNOWLEDGEMENT_NO_ANSWER = "已收到，正在核实…感谢您的反映！如需答复，请留下联系方式。"
BLOCKED_REPLY = "已收到。"
FLOOD_REPLY = "您发送得太频繁了，请过几分钟再发。"


@dataclass
class TipOutcome:
    tip: Tip
    new: bool
    reply: str  # what the resident is told at once
    auto_answered: bool


# ----------------------------------------------------------------------------- the matcher


_MATCHER: dict[str, Any] = {}
#: Libraries at least this large are rebuilt in the background (a build takes seconds).
BACKGROUND_BUILD_FROM = 1000
_MATCHER_LOCK = threading.Lock()
#: One build at a time: tips arriving while the library is built wait for that one build (a
#: burst of tips at start must not each build their own, seconds of CPU apiece).
_BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Library:
    """The tip matcher of the active debunks and their claims (for the claim matcher's score)."""

    matcher: DebunkMatcher
    claims: dict[int, str]


def _library_version(session: Session) -> tuple[Any, ...]:
    row = session.execute(
        select(func.count(Debunk.id), func.max(Debunk.updated_at), func.max(Debunk.id)).where(Debunk.active.is_(True))
    ).one()
    return (session.get_bind().engine.url.render_as_string(hide_password=True), *row)


def _library_rows(session: Session) -> dict[int, str]:
    rows = session.execute(select(Debunk.id, Debunk.claim).where(Debunk.active.is_(True)).order_by(Debunk.id)).all()
    return {int(r.id): r.claim for r in rows}


def _build(claims: dict[int, str]) -> Library:
    # as DebunkMatcher.from_session, from rows already read (no connection held while it builds)
    return Library(DebunkMatcher(list(claims), list(claims.values()), place_parents=gazetteer_place_parents()), claims)


def _cached(session: Session) -> tuple[Library | None, tuple[Any, ...]]:
    """The cached library if it may serve (None: build one now) and the library's version. A
    large library that changed is rebuilt in a background thread while the old one serves."""
    version = _library_version(session)
    with _MATCHER_LOCK:
        current: Library | None = _MATCHER.get("library")
        stale = _MATCHER.get("version") != version
        if stale and (current is None or int(version[1] or 0) < BACKGROUND_BUILD_FROM or not len(current.matcher)):
            current = None  # a small library (or none before) is rebuilt at once: under a second
        elif current is not None and stale and not _MATCHER.get("building"):
            _MATCHER["building"] = True
            engine = session.get_bind().engine
            threading.Thread(target=_rebuild, args=(engine, version), name="tip-matcher", daemon=True).start()
    return current, version


def _install(claims: Callable[[], dict[int, str]], version: tuple[Any, ...]) -> Library:
    """Build the library of ``version`` once: whoever comes second takes the first one's build."""
    with _BUILD_LOCK:
        with _MATCHER_LOCK:
            if _MATCHER.get("version") == version and _MATCHER.get("library") is not None:
                return _MATCHER["library"]
        built = _build(claims())
        with _MATCHER_LOCK:
            _MATCHER.update(library=built, version=version)
        return built


def tip_library(session: Session) -> Library:
    """The matcher of the active debunks, with their claims. Building it for 5,000 debunks takes
    seconds and a 公众号 callback has 5, so it is built once, and when the library changes it is
    rebuilt in a background thread while the previous one keeps answering (a tip may meet a
    library a few seconds old). Only the very first build is waited for (:func:`warm_matcher`
    does it at start). Reads through ``session``, so it sees the caller's own new debunks."""
    current, version = _cached(session)
    if current is not None:
        return current
    return _install(lambda: _library_rows(session), version)


def debunk_matcher(session: Session) -> DebunkMatcher:
    """:func:`tip_library`'s matcher (the hotline import matches a whole file with it)."""
    return tip_library(session).matcher


def _rebuild(engine: Any, version: tuple[Any, ...]) -> None:
    try:
        with Session(engine) as session:
            claims = _library_rows(session)
        built = _build(claims)
        with _MATCHER_LOCK:
            _MATCHER.update(library=built, version=version)
    except Exception:  # the old matcher keeps serving; the next tip tries again
        log.exception("rebuilding the tip matcher failed")
    finally:
        with _MATCHER_LOCK:
            _MATCHER["building"] = False


def warm_matcher(engine: Any) -> None:
    """Build the matcher before the first tip arrives (called in a thread at server start)."""
    try:
        with Session(engine) as session:
            current, version = _cached(session)
            claims = None if current is not None else _library_rows(session)
        if claims is not None:
            _install(lambda: claims, version)
    except Exception:
        log.exception("warming the tip matcher failed; the first tip builds it")


@dataclass(frozen=True)
class TipMatch:
    """The debunk a tip matched (or None), the claim matcher's score of the pair, its best score
    against any other candidate debunk (``rival``), and the automatic-reply gate's reasons to
    hold the tip back from an automatic answer (``held``: nlp.reply_gate, the margin aside)."""

    hit: DebunkHit | None
    score: float
    rival: float = 0.0
    held: tuple[str, ...] = ()


def match_tip(matcher: DebunkMatcher, text: str, claims: dict[int, str], *, hit: DebunkHit | None = None) -> TipMatch:
    """Match one tip; ``claims`` maps debunk id -> claim text (the matched one is re-scored).
    ``hit``: the matcher's answer for ``text`` when the caller has it already (one match, not two).

    The debunk matcher finds the candidate (and refuses other villages, amounts and things); the
    band is then read on one scale for every path, the claim matcher's P(same claim), because
    the paths' own similarities (MinHash Jaccard, TF-IDF cosine) mean different things and the
    MinHash path matched hard negatives on short texts (bench/results/tips.md). The gate
    (nlp.reply_gate) then compares the tip with the claim: places, amounts, dates, the event,
    a denial, and the best other debunk's score."""
    norm = normalize(text)
    key = match_key(norm)
    hit = matcher.match([key])[0] if hit is None else hit
    if hit is None:
        return TipMatch(None, 0.0)
    if hit.method == "paraphrase" or matcher.claim_matcher is None:
        score = hit.similarity if hit.method == "paraphrase" else 0.0
    elif hit.claim_score is not None:  # the matcher's veto scored this pair already
        score = hit.claim_score
    else:
        cm = matcher.claim_matcher
        score = float(cm.score_docs([cm.doc(key)], [cm.doc(normalize(claims.get(hit.debunk_id, "")))])[0])
    claim = normalize(claims.get(hit.debunk_id, ""))
    verdict = gate(norm, claim)
    return TipMatch(hit, round(score, 4), round(matcher.rival_score(key, hit.debunk_id), 4), verdict.reasons)


def held_reasons(match: TipMatch, margin: float | None = None) -> tuple[str, ...]:
    """The gate's reasons to hold a match back from an automatic answer, the margin over the
    best other debunk (YUQING_TIP_AUTO_REPLY_MARGIN) included."""
    margin = margin if margin is not None else get_settings().tip_auto_reply_margin
    return match.held + (("margin",) if match.score - match.rival < margin else ())


def in_band(match: TipMatch, least: float | None = None, margin: float | None = None) -> bool:
    """Whether a match is sure enough to answer automatically: the claim matcher's score in the
    band, and the gate has no reason to hold it back."""
    least = least if least is not None else get_settings().tip_auto_reply_min_score
    return match.hit is not None and match.score >= least and not held_reasons(match, margin)


# ----------------------------------------------------------------------------- messages


def refutation_message(debunk: Debunk) -> str:
    """The automatic answer: the official refutation, its source and link (plain text)."""
    lines = [f"【官方辟谣】您询问的“{_short(debunk.claim, 60)}”经核实不实。", debunk.refutation.strip()]
    source = debunk.publisher or "官方发布"
    when = debunk.published_at.date().isoformat() if debunk.published_at else None
    lines.append(f"来源：{source}" + (f"（{when}）" if when else ""))
    if debunk.url:
        lines.append(f"链接：{debunk.url}")
    lines.append("如仍有疑问，可继续留言。")
    return "\n".join(lines)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- the flow


def flood_wait(session: Session, tip: TipIn) -> float:
    """0.0 when this resident may send this tip now, else the seconds until they may.

    For channels where a resident is known by an account (QQ number, 公众号 openid): one person
    sending hundreds of messages must not store hundreds of tips and queue hundreds of replies.
    The limit (YUQING_TIP_RATE_PER_MINUTE / _BURST, as for one address on the tip page) is kept
    in the database (core.throttle), in the caller's transaction. A message already stored (a
    bot or WeChat retrying it) is never refused: it gets its first reply again."""
    if not tip.address or session.scalar(select(Tip.id).where(Tip.dedup_key == tip_key(tip.channel, tip.message_id))):
        return 0.0
    settings = get_settings()
    key = f"tip:reporter:{reporter_key(tip.channel, tip.address)}"
    return RateLimit(settings.tip_rate_per_minute, settings.tip_rate_burst).take(session, key)



@dataclass
class _Prepared:
    """What a tip's matching found, before anything is written. ``insults``: the abuse
    lexicon's words in it (nlp.abuse); ``abuse_only``: insults and nothing staff must read."""

    text: str
    found: TipMatch
    debunk_id: int | None
    insults: tuple[str, ...] = ()
    abuse_only: bool = False


def _abuse(text: str) -> tuple[tuple[str, ...], bool]:
    """(the insults in a tip, whether it holds nothing else: no question, claim or complaint)."""
    insults = tuple(find_insults(text))
    return insults, bool(insults) and not has_substance(text)


def _prepare(session: Session, tip: TipIn, matcher: DebunkMatcher | None) -> _Prepared:
    text = tip_text(tip)
    insults, abuse_only = _abuse(text)
    if not text or abuse_only:
        return _Prepared(text, TipMatch(None, 0.0), None, insults, abuse_only)
    if matcher is not None:  # the caller's matcher (a hotline file): claims read as needed
        found = _match(matcher, text, lambda i: session.scalar(select(Debunk.claim).where(Debunk.id == i)) or "")
    else:
        library = tip_library(session)
        found = _match(library.matcher, text, lambda i: library.claims.get(i, ""))
    return _Prepared(text, found, found.hit.debunk_id if found.hit is not None else None, insults)


def receive_tip(session: Session, tip: TipIn, *, matcher: DebunkMatcher | None = None) -> TipOutcome:
    """Store, match and answer one tip (caller commits). Idempotent per channel + message id.

    The tip is matched *before* anything is written: on SQLite the first write takes the
    database's one write lock until the commit, and matching against 5,000 debunks is the slow
    part. Request paths use :func:`take_tip`, which also commits in a short turn of its own."""
    before = find_tip(session, tip)
    if before is not None:
        return _again(before)
    return _store(session, tip, _prepare(session, tip, matcher))


def take_tip(sessions: Callable[[], Session], tip: TipIn, *, limit_reporter: bool = False) -> TipOutcome | None:
    """:func:`receive_tip` for a request (tip page, QQ, 公众号), committed. Three short steps: a
    read (a re-send? the library's version), the matching with no database connection held (a
    burst of tips must not empty the connection pool), then the store in a short write taken in
    turn (core.db.write_turn), so a burst queues for the write instead of polling SQLite's lock
    and no write waits for another tip's matching. ``limit_reporter``: refuse (None) a resident
    over the rate limit (:func:`flood_wait`), in the same write."""
    text = tip_text(tip)
    with transaction(sessions()) as session:
        before = find_tip(session, tip)
        if before is not None:
            return _again(before)
        library, version = _cached(session)
        engine = session.get_bind().engine
    if library is None:
        library = _install(lambda: _rows_now(sessions), version)
    insults, abuse_only = _abuse(text)
    found = (_match(library.matcher, text, lambda i: library.claims.get(i, "")) if text and not abuse_only
             else TipMatch(None, 0.0))
    prepared = _Prepared(text, found, found.hit.debunk_id if found.hit is not None else None, insults, abuse_only)
    with write_turn(engine), transaction(sessions()) as session:
        if limit_reporter and flood_wait(session, tip):
            return None
        return _store(session, tip, prepared)


def _rows_now(sessions: Callable[[], Session]) -> dict[int, str]:
    with transaction(sessions()) as session:
        return _library_rows(session)


def _store(session: Session, tip: TipIn, prepared: _Prepared) -> TipOutcome:
    stored: StoredTip = store_tip(session, tip, text=prepared.text, abusive=prepared.abuse_only)
    row = stored.tip
    if not stored.new:  # the same message stored meanwhile by a concurrent delivery
        return _again(row)
    if prepared.insults:  # staff see the flag in the list and may clear it (alerts.tip_queries)
        row.flag, row.flag_terms = "insult", "、".join(prepared.insults)[:200]
    if stored.blocked:
        row.first_reply = BLOCKED_REPLY
        return TipOutcome(row, True, BLOCKED_REPLY, False)
    settings = get_settings()
    found = prepared.found
    debunk = session.get(Debunk, prepared.debunk_id) if prepared.debunk_id is not None else None
    if debunk is not None and found.hit is not None:
        row.debunk_id, row.debunk_score, row.debunk_method = debunk.id, found.score, found.hit.method
        held = held_reasons(found)
        if (held or prepared.insults) and found.score >= settings.tip_auto_reply_min_score:
            # staff see why it waits for them
            row.auto_reply_held = "；".join([REASONS[r] for r in held] + ([FLAG_ZH["insult"]] if prepared.insults else []))
    # A tip with insults is never answered automatically: a person reads it first.
    if (debunk is not None and in_band(found) and not prepared.insults
            and row.channel in settings.tip_auto_reply_channels):
        reply = refutation_message(debunk)
        row.status, row.answered_at, auto = "auto_answered", utcnow(), True
    else:
        reply = ACKNOWLEDGEMENT if row.wants_answer else ACKNOWLEDGEMENT_NO_ANSWER
        auto = False
    row.first_reply = reply
    session.flush()
    enqueue_first_reply(session, row)
    return TipOutcome(row, True, reply, auto)


def send_first_reply_later(sessions: Callable[[], Session], tip_id: int) -> bool:
    """The channel's request was answered before this tip's first reply was ready (the 公众号's
    deadline): send that reply through the outbox instead (the 公众号 customer-service message).
    Only a refutation is worth it: the resident was already told "已收到，正在核实"."""
    with write_turn(sessions().get_bind().engine), transaction(sessions()) as session:
        tip = session.get(Tip, tip_id)
        if tip is None or tip.status != "auto_answered":
            return False
        return enqueue_first_reply(session, tip, late=True) is not None


def _again(row: Tip) -> TipOutcome:
    """A re-sent tip: the first reply again, nothing new."""
    return TipOutcome(row, False, row.first_reply or ACKNOWLEDGEMENT, row.status == "auto_answered")


def _match(matcher: DebunkMatcher, text: str, claim_of: Callable[[int], str]) -> TipMatch:
    hit = matcher.match([match_key(normalize(text))])[0] if len(matcher) else None
    if hit is None:
        return TipMatch(None, 0.0)
    return match_tip(matcher, text, {hit.debunk_id: claim_of(hit.debunk_id)}, hit=hit)
