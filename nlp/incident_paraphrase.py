"""The paraphrase signal of incident grouping: the claim matcher (:mod:`nlp.claims`) on a claim
whose words alone did not place it.

A rumor is retold in other words in another group ("大米要涨价了 赶紧买几袋 听说超市都没了" after
"听内部人说下个月盐和大米都要大涨价"): the two share a few bigrams, too few for the content score
(nlp.incidents._score), yet they state one claim. The claim matcher, trained on reworded claims,
tells such pairs from two claims about one place or thing.

Cost is what decides where it runs (one matcher call scores a few pairs in milliseconds, while a
post's whole grouping costs about a tenth of one):

* only for a post of role ``claim`` with START_TERMS bigrams or more, that no binding, quote or
  content score placed (it would otherwise start an incident of its own);
* only against the best PARAPHRASE_CANDIDATES of the candidates its words already found (the
  capped inverted index of nlp.incident_index: the number of open incidents never enters), and
  only those whose content score reached PARAPHRASE_FLOOR (some wording in common);
* each incident keeps the texts of its first CLAIMS_KEPT claims (its title when it was loaded
  from the database at the start of the run); their claim documents are cached;
* rationed: every post placed adds MATCHER_RATE of a call to a bucket of at most MATCHER_BUCKET
  calls (full at the start), and a call spends one. A chat evening is compared in full; a flood
  of template-like claims (where most calls find nothing) costs at most MATCHER_RATE calls a post
  on average, and a claim past the budget is placed by its words alone. The bucket follows the
  order posts are placed in, so a run's output stays the same from run to run.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from nlp.incident_index import _Open, _Post

__all__ = ["CLAIMS_KEPT", "Paraphrase", "load_paraphrase"]

log = logging.getLogger(__name__)

CLAIMS_KEPT = 2  # claim texts an incident keeps for the matcher
PARAPHRASE_CANDIDATES = 2  # candidates a claim is compared with
PARAPHRASE_FLOOR = 0.15  # content score a candidate needs to be compared at all
MIN_TERMS = 6  # bigrams a claim needs ("明天可能就涨了" says too little to be matched)
CLAIM_CHARS = 160  # characters of a claim kept (the matcher reads its start)
DOC_CACHE = 4096  # claim documents cached (texts of the incidents being talked about)
MATCHER_RATE = 0.01  # matcher calls earned per post placed (one per hundred posts)
MATCHER_BUCKET = 50.0  # calls that can be saved up (and the budget at the start)


class Paraphrase:
    """The claim matcher as a grouping signal: ``score(post, incidents)`` -> P(same claim) each."""

    def __init__(self, matcher: Any) -> None:
        self.matcher = matcher
        self.threshold = float(matcher.threshold)
        self._docs: OrderedDict[str, Any] = OrderedDict()
        self.calls = 0
        self.pairs = 0
        self.skipped = 0  # calls the budget refused
        self.budget = MATCHER_BUCKET

    def tick(self) -> None:
        """One post placed: the budget grows by MATCHER_RATE (up to MATCHER_BUCKET)."""
        self.budget = min(MATCHER_BUCKET, self.budget + MATCHER_RATE)

    def _doc(self, text: str) -> Any:
        doc = self._docs.get(text)
        if doc is None:
            doc = self._docs[text] = self.matcher.doc(text)
            if len(self._docs) > DOC_CACHE:
                self._docs.popitem(last=False)
        else:
            self._docs.move_to_end(text)
        return doc

    def wants(self, p: _Post) -> bool:
        """Whether ``p`` is a claim the matcher should look at."""
        return p.role in ("claim", "question") and len(p.terms) >= MIN_TERMS and bool(p.text)

    def best(self, p: _Post, ranked: list[tuple[float, int, _Open, int]]) -> list[tuple[float, _Open]]:
        """The candidates among ``ranked`` (nlp.incidents._ranked) stating ``p``'s claim, best first:
        (P(same claim), incident) at the matcher's threshold or above."""
        cands = [inc for score, _k, inc, _n in ranked if score >= PARAPHRASE_FLOOR and inc.claims][
            :PARAPHRASE_CANDIDATES]
        if not cands:
            return []
        if self.budget < 1.0:
            self.skipped += 1
            return []
        self.budget -= 1.0
        mine = self._doc(p.text[:CLAIM_CHARS])
        left, right, owner = [], [], []
        for inc in cands:
            for text in inc.claims:
                left.append(mine)
                right.append(self._doc(text))
                owner.append(inc)
        self.calls += 1
        self.pairs += len(left)
        probs = self.matcher.score_docs(left, right).tolist()
        best: dict[_Open, float] = {}
        for inc, pr in zip(owner, probs, strict=True):
            if pr >= self.threshold and pr > best.get(inc, 0.0):
                best[inc] = pr
        order = {inc: k for k, inc in enumerate(cands)}
        return sorted(((pr, inc) for inc, pr in best.items()), key=lambda x: (-x[0], order[x[1]]))


def keep_claim(inc: _Open, p: _Post) -> None:
    """Remember ``p``'s text for the matcher when it is one of ``inc``'s first claims."""
    if p.role == "claim" and p.text and len(inc.claims) < CLAIMS_KEPT:
        inc.claims = (*inc.claims, p.text[:CLAIM_CHARS])


def load_paraphrase() -> Paraphrase | None:
    """The grouping's paraphrase signal, or None (no trained claim matcher: grouping goes on
    without it, with a warning)."""
    from nlp.claims import ClaimModelMissing, load_claim_matcher

    try:
        return Paraphrase(load_claim_matcher())
    except ClaimModelMissing as err:
        log.warning("incident grouping without the paraphrase signal: %s", err)
        return None
