"""Hot concerns: what people worry about, as it rises, with its category, place and mood.

The stage entry point is `update_concerns` (called by `yuqing analyze` on each batch of
normalised, segmented posts). Parts: `taxonomy` (categories from office-editable YAML rules),
`places` (the office's gazetteer), `mood` (negativity with negation), `topics` (incremental
clustering), `pending` (one-post matters waiting for a second post), `bursts` (rise over a
topic's own baseline), `keyword_rates` (hourly keyword counts and keyword bursts), `classifier`
(category model once labels exist), `queries` (read side for the CLI, API and digest).
"""

from nlp.concerns.keyword_rates import hot_keywords
from nlp.concerns.stage import ConcernAnalyzer, ConcernStats, PostView, update_concerns

__all__ = ["ConcernAnalyzer", "ConcernStats", "PostView", "hot_keywords", "update_concerns"]
