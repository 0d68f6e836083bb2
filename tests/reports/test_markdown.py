"""summary.md: totals, accuracy by length, the grid, errors; safe to paste into a CI step summary."""

from __future__ import annotations

from pathlib import Path

from haystack_eval import load_run
from haystack_eval.reports.labels import length_label
from haystack_eval.reports.markdown import render_summary
from tests.reports.made_runs import write_run


def test_summary_of_one_run(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1, 1], (1000, 100): [1, None], (32768, 0): [0, 1],
                                              (32768, 100): [None, None]}))
    text = render_summary([run])
    assert text.startswith("## haystack-eval: made\n")
    assert "| `scripted/oracle` | single | 8 | 5 ok, 3 error | 80.0% | 37.6%–96.4% | 1,000 |" in text
    assert "| 1K | 100.0% | 43.9%–100.0% | 3 |" in text
    assert "| depth | 1K | 32K |" in text
    assert "| 0% | 100 | 50 |" in text
    assert "| 100% | 100* | err |" in text  # a trial errored; a cell with no scored trial
    assert "| ServerError | 3 |" in text


def test_summary_escapes_markup_and_pipes(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1]}, model="<script>x|y</script>"))
    text = render_summary([run])
    assert "<script>" not in text and "&lt;script>x\\|y&lt;/script>" in text


def test_several_runs_get_a_block_each(tmp_path: Path) -> None:
    runs = [load_run(write_run(tmp_path / n, {(1000, 0): [1]}, name=n)) for n in ("a", "b")]
    text = render_summary(runs)
    assert "## haystack-eval: a\n" in text and "## haystack-eval: b\n" in text


def test_length_labels() -> None:
    cases = {1: "1", 999: "999", 1000: "1K", 1024: "1K", 1500: "1.5K", 32768: "32K", 32000: "32K", 128000: "128K",
             131072: "128K", 200_000: "200K", 999_999: "1M", 1_000_000: "1M", 1_048_576: "1M", 1_500_000: "1.5M"}
    assert {n: length_label(n) for n in cases} == cases
