"""Axis and table labels shared by the heatmaps, the HTML report and summary.md."""

from __future__ import annotations

from haystack_eval.stats import Share
from haystack_eval.sweep import Run
from haystack_eval.sweep.schedule import CacheUse, cache_use

__all__ = ["cache_text", "interval", "length_label", "percent", "prompt_cache"]


def length_label(tokens: int) -> str:
    """A readable token count: 500 -> '500', 1000 -> '1K', 32768 -> '32K', 1500000 -> '1.5M'."""
    if tokens < 1000:
        return str(tokens)
    # Context windows come in powers of two (32768 is "32K"); sweeps usually in round thousands.
    base = 1024 if tokens % 1000 and not tokens % 1024 else 1000
    value, unit = tokens / base, "K"
    if round(value) >= 1000:
        value, unit = value / base, "M"
    # One decimal only where it says something (1.5K), none where it would be noise (32.8K -> 33K).
    shown = f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.0f}"
    return f"{shown}{unit}"


def percent(value: float | None) -> str:
    """0.932 -> '93.2%' (an em dash without a value)."""
    return "—" if value is None else f"{100 * value:.1f}%"


def interval(share: Share) -> str:
    """A share's 95% interval as '90.1%–95.5%' (an em dash without scored records)."""
    if share.mean is None:
        return "—"
    low, high = share.interval
    return f"{percent(low)}–{percent(high)}"


def prompt_cache(run: Run) -> CacheUse | None:
    """How much of a run's input the provider's prompt cache served, and the ideal (None when none was reported)."""
    provider = str((run.manifest.get("model") or {}).get("provider") or "")
    return cache_use(provider, run.records)


def cache_text(use: CacheUse) -> str:
    """'38.3% of input tokens read from the prompt cache (ideal for this sweep 38.7%), 18,114 written'."""
    written = f", {use.cache_write_tokens:,} written" if use.cache_write_tokens else ""
    return (f"{percent(use.share)} of input tokens read from the prompt cache "
            f"(ideal for this sweep {percent(use.ideal_share)}){written}")
