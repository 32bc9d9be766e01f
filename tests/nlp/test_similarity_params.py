"""nlp.similarity owns its LSH band/row choice (datasketch's is private and may change)."""

from __future__ import annotations

import pytest

from nlp.similarity import _optimal_param


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.5, 128), (0.8, 64)])
def test_bands_and_rows_fit_the_signature_and_favour_the_threshold(threshold: float, num_perm: int) -> None:
    bands, rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert 1 <= bands * rows <= num_perm
    # the S-curve's midpoint (1/b)^(1/r) sits near the threshold
    assert abs((1 / bands) ** (1 / rows) - threshold) < 0.12
