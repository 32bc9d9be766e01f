"""The cue labels staff read in the console."""

from __future__ import annotations

from nlp.cues import CUE_LABELS_ZH, CUE_NAMES, term_label


def test_every_cue_has_a_chinese_label_for_staff():
    assert set(CUE_LABELS_ZH) == set(CUE_NAMES)
    assert term_label("cue:hearsay") == CUE_LABELS_ZH["hearsay"] and "听说" in term_label("cue:hearsay")
    assert term_label("辟谣库#12") == "与辟谣库 #12 相符"
    assert term_label("封城") == "封城"
