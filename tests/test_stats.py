"""Grid statistics against hand-computed values."""

from __future__ import annotations

from typing import Any

import pytest

from haystack_eval.stats import drop_p_value, grid, wilson


def rec(length: int, depth: float, score: float | None, status: str = "ok", trial: int = 0,
        error: str | None = None) -> dict[str, Any]:
    """A minimal record."""
    return {"length": length, "depth": depth, "trial": trial, "status": status, "score": score,
            "error": {"class": error} if error else None}


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Published Wilson 95% intervals (e.g. Newcombe 1998, table I) and hand computation.
    (8, 10, 0.4902, 0.9433),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 2, 0.0945, 0.9055),
    (81, 263, 0.2553, 0.3662),
])
def test_wilson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_without_data_is_the_whole_range() -> None:
    assert wilson(0, 0) == (0.0, 1.0)


def test_drop_p_value_two_proportion_z_test() -> None:
    # pooled p = 0.85, se = sqrt(0.85 * 0.15 * (1/100 + 1/100)) = 0.050498; z = 0.1 / se = 1.9803
    assert drop_p_value(90, 100, 80, 100) == pytest.approx(0.02384, abs=5e-5)
    assert drop_p_value(80, 100, 90, 100) == pytest.approx(1 - 0.02384, abs=5e-5)  # a rise is no drop
    assert drop_p_value(10, 10, 10, 10) == 1.0  # identical and perfect: no evidence
    assert drop_p_value(3, 3, 2, 3) > 0.05  # one miss in three trials is noise


def test_cells_keep_errors_skips_and_truncations_out_of_accuracy() -> None:
    g = grid([
        rec(1000, 0, 1.0, trial=0), rec(1000, 0, 0.0, trial=1), rec(1000, 0, None, "error", 2, "RateLimited"),
        rec(1000, 50, None, "truncated"), rec(2000, 0, None, "skipped", error="TooLongForWindow"),
        rec(2000, 50, 1.0), rec(1000, 50, 1.0, trial=1),
    ])
    cell = g.cell(1000, 0)
    assert cell is not None
    assert (cell.mean, cell.share.n, cell.errors, cell.truncated, cell.skipped) == (0.5, 2, 1, 0, 0)
    assert cell.std == pytest.approx(0.70711, abs=1e-5)  # sample sd of (1, 0)
    skipped = g.cell(2000, 0)
    assert skipped is not None and skipped.mean is None and skipped.skipped == 1
    assert g.overall.mean == pytest.approx(3 / 4)
    assert g.by_length[1000].mean == pytest.approx(2 / 3)
    assert g.by_length[2000].mean == 1.0
    assert g.by_depth[0.0].mean == 0.5
    assert g.by_depth[50.0].mean == 1.0
    assert g.statuses == {"ok": 4, "error": 1, "truncated": 1, "skipped": 1}
    assert g.error_classes == {"RateLimited": 1}  # a skip is not an error
    assert g.lengths == (1000, 2000) and g.depths == (0.0, 50.0)
    assert g.trials == 3
    assert g.cell(4000, 0) is None


def _lengths(accuracies: dict[int, float], n: int = 20) -> list[dict[str, Any]]:
    records = []
    for length, accuracy in accuracies.items():
        hits = round(accuracy * n)
        records += [rec(length, 0, 1.0 if t < hits else 0.0, trial=t) for t in range(n)]
    return records


def test_effective_length_is_where_accuracy_stops_staying_above_85_percent_of_the_shortest() -> None:
    g = grid(_lengths({1000: 1.0, 2000: 0.9, 4000: 0.8, 8000: 0.95}))
    assert g.effective_length() == 2000  # 0.8 < 0.85 * 1.0 ends the run; 8000 does not count
    assert g.effective_length(0.75) == 8000
    assert g.effective_length(0.95) == 1000
    assert g.effective_length(1.01) is None


def test_effective_length_threshold_is_relative_to_the_shortest_length() -> None:
    g = grid(_lengths({1000: 0.6, 2000: 0.55, 4000: 0.5}))  # 85% of 0.6 is 0.51
    assert g.effective_length() == 2000


def test_effective_length_stops_at_a_length_without_scored_cells() -> None:
    records = _lengths({1000: 1.0, 2000: 1.0}) + [rec(4000, 0, None, "skipped")] + _lengths({8000: 1.0})
    assert grid(records).effective_length() == 2000


def test_to_json_is_plain() -> None:
    import json

    data = grid([rec(1000, 0, 1.0), rec(1000, 100, 0.0)]).to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["overall"]["mean"] == 0.5 and data["by_depth"]["100"]["mean"] == 0.0
