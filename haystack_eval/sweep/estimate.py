"""``estimate``: calls, tokens and cost of a sweep before anything is sent.

Four scenarios: plain requests; prompt caching for a sender that ignores the cache (plan order, with
``run.concurrency`` in flight: the naive baseline); prompt caching at its bound for this sweep, which
``run``'s cache-aware scheduling (schedule.py) reaches; and a batch API. Every prompt is
built, so input tokens are exact in the configured tokenizer, and the prefix two prompts share is
measured: cells of one length and trial share everything before the earlier needle.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from haystack_eval.backends.openai_chat import is_reasoning_model
from haystack_eval.config import Config, ModelConfig
from haystack_eval.contexts import Context, ContextBuilder
from haystack_eval.sweep.plan import Plan
from haystack_eval.sweep.pricing import Pricer, Tokens

__all__ = ["CacheRule", "Estimate", "Scenario", "cache_rule", "describe", "estimate", "shared_prefix"]

_REPLY_EXTRA = 10  # tokens a short reply adds to the answer itself ("The code is ...")
_EXACT_CELLS = 20_000  # above this many cells (or tokens) prompts are not built: building takes too long
_EXACT_TOKENS = 500_000_000
# Anthropic's shortest cacheable prefix: 1,024 tokens for most models, more for some small or new ones.
_ANTHROPIC_MINIMUM = ((re.compile(r"haiku-4|opus-4-5|opus-4\.5"), 4096), (re.compile(r"3-5-haiku|3-haiku"), 2048))


@dataclass(frozen=True)
class CacheRule:
    """How a provider caches prompt prefixes, as the estimate assumes."""

    minimum: int  # the shortest prefix that is cached
    block: int  # cached prefixes are whole blocks of this many tokens
    writes: bool  # cache writes are billed (Anthropic's explicit breakpoints)
    note: str

    def cacheable(self, shared: int) -> int:
        """Tokens of a shared prefix that a cache can serve."""
        return 0 if shared < self.minimum else shared // self.block * self.block


def cache_rule(model: ModelConfig) -> CacheRule:
    """The prompt-cache rule of a model's provider."""
    if model.provider == "anthropic":
        low = next((n for pattern, n in _ANTHROPIC_MINIMUM if pattern.search(model.name)), 1024)
        return CacheRule(low, 1, True, (
            "Anthropic caches only at cache_control breakpoints, which the runner places at needle boundaries: "
            "one where a cell's prefix is shared with the cell before it (read at the cached "
            f"rate) and one for the next cell (written at the cache-write rate, 1.25x input), from {low:,} tokens"))
    if model.provider in ("llamacpp", "scripted"):
        return CacheRule(1, 1, False, "a local model reuses the previous prompt's prefix; nothing is billed")
    note = "OpenAI caches prompt prefixes automatically from 1,024 tokens in 128-token steps; a hit is likely, not sure"
    if model.provider == "openai-compatible":
        note = ("caching assumed like OpenAI's (from 1,024 tokens in 128-token steps); vLLM and SGLang reuse "
                "prefixes automatically; model.prices.cached_input prices the hits")
    return CacheRule(1024, 128, False, note)


@dataclass(frozen=True)
class Scenario:
    """Tokens and cost of the sweep sent one way."""

    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cost_usd: float | None  # with every reply at max_output_tokens
    cost_usd_typical: float | None  # with replies of typical length

    @property
    def cached_share(self) -> float:
        """Share of input tokens read from the cache."""
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return {"input_tokens": self.input_tokens, "cached_input_tokens": self.cached_input_tokens,
                "cache_write_tokens": self.cache_write_tokens, "cached_share": round(self.cached_share, 4),
                "cost_usd": self.cost_usd, "cost_usd_typical": self.cost_usd_typical}


@dataclass(frozen=True)
class Estimate:
    """What a sweep would send and cost."""

    numbers: dict[str, Any]  # the plan's numbers, with exact input tokens and typical output
    prices: dict[str, Any]
    scenarios: dict[str, Scenario]
    assumptions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """One JSON object for scripts; ``cost_usd`` is the plain cost (None when prices are unknown)."""
        return {**self.numbers, "cost_usd": self.scenarios["plain"].cost_usd, "prices": self.prices,
                "scenarios": {name: s.to_json() for name, s in self.scenarios.items()},
                "assumptions": list(self.assumptions)}


@dataclass(frozen=True)
class _Cell:
    tokens: int
    typical: int  # output tokens of a typical reply
    shared_before: int  # prompt tokens shared with the cell asked just before (0 for the first)


def shared_prefix(a: Context, b: Context) -> int:
    """Prompt tokens two contexts share from the start, measured up to the earliest hidden sentence of either.

    0 when they differ before it (another trial's haystack). A lower bound: text past that sentence is not compared.
    """
    hidden = min((*a.needles, *b.needles), key=lambda n: n.char_offset, default=None)
    if hidden is None or a.prompt.messages[:-1] != b.prompt.messages[:-1]:
        return 0
    at = hidden.char_offset
    return hidden.token_offset if a.prompt.user[:at] == b.prompt.user[:at] else 0


def _cells(config: Config, builder: ContextBuilder, plan: Plan, exact: bool) -> list[_Cell]:
    """Each cell to ask, in asking order: its tokens, a typical reply, and what it shares with the one before."""
    most = config.model.params.max_output_tokens
    reasoning = config.model.provider == "openai" and is_reasoning_model(config.model.name)
    cells: list[_Cell] = []
    before: Context | None = None
    for cell in plan.to_ask:
        if not exact:
            cells.append(_Cell(cell.length, min(most, 2 * _REPLY_EXTRA), 0))
            continue
        ctx = builder.build(cell.length, cell.depth, cell.trial)
        typical = most if reasoning else min(most, builder.tokenizer.count(ctx.expected) + _REPLY_EXTRA)
        cells.append(_Cell(ctx.tokens, typical, shared_prefix(before, ctx) if before is not None else 0))
        before = ctx
    return cells


def _window_min(values: Sequence[int], width: int) -> list[int]:
    """The minimum of ``values[k - width + 1 : k + 1]`` for every k (a sliding minimum)."""
    out: list[int] = []
    queue: deque[int] = deque()
    for i, value in enumerate(values):
        while queue and values[queue[-1]] >= value:
            queue.pop()
        queue.append(i)
        if queue[0] <= i - width:
            queue.popleft()
        out.append(values[queue[0]])
    return out


def _cache(cells: Sequence[_Cell], rule: CacheRule, lag: int) -> tuple[list[int], list[int]]:
    """Cached reads and cache writes per cell when each cell can reuse the cell ``lag`` places before it.

    Prefix equality is transitive, so two cells share at least the smallest share of the neighbours between them.
    """
    n = len(cells)
    spans = _window_min([c.shared_before for c in cells], lag)
    reads = [rule.cacheable(spans[k]) if k >= lag else 0 for k in range(n)]
    if not rule.writes:
        return reads, [0] * n
    # A cell writes what the cell `lag` after it will read, beyond what it read itself.
    return reads, [max(0, reads[k + lag] - reads[k]) if k + lag < n else 0 for k in range(n)]


def _scenario(cells: Sequence[_Cell], pricer: Pricer, most: int, reads: Sequence[int], writes: Sequence[int],
              *, batch: bool = False) -> Scenario:
    def total(typical: bool) -> float | None:
        costs = [pricer.cost(Tokens(c.tokens, r, w, c.typical if typical else most), batch=batch)
                 for c, r, w in zip(cells, reads, writes, strict=True)]
        return None if any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 6)

    return Scenario(sum(c.tokens for c in cells), sum(reads), sum(writes), total(False), total(True))


def estimate(config: Config, builder: ContextBuilder, plan: Plan, pricer: Pricer) -> Estimate:
    """Calls, tokens and cost of a plan's cells: plain, cached as a naive sender gets it, cached at best, batched."""
    most, lag = config.model.params.max_output_tokens, config.run.concurrency
    ask = plan.to_ask
    exact = len(ask) <= _EXACT_CELLS and sum(c.length for c in ask) <= _EXACT_TOKENS
    cells = _cells(config, builder, plan, exact)
    rule = cache_rule(config.model)
    none = [0] * len(cells)
    scenarios = {
        "plain": _scenario(cells, pricer, most, none, none),
        "cached": _scenario(cells, pricer, most, *_cache(cells, rule, lag)),
        "cached_warm": _scenario(cells, pricer, most, *_cache(cells, rule, 1)),
        "batch": _scenario(cells, pricer, most, none, none, batch=True),
    }
    numbers = {**plan.to_json(), "input_tokens": scenarios["plain"].input_tokens,
               "output_tokens_typical": sum(c.typical for c in cells)}
    return Estimate(numbers, pricer.to_json(), scenarios, _assumptions(config, builder, pricer, rule, exact))


def _assumptions(config: Config, builder: ContextBuilder, pricer: Pricer, rule: CacheRule,
                 exact: bool) -> tuple[str, ...]:
    model, lag = config.model, config.run.concurrency
    said = [f"prices: {pricer.source}" + ("" if pricer.known else "; set model.prices to estimate the cost")]
    if exact:
        said.append(f"input tokens are exact in {builder.tokenizer.name}; the provider's chat framing adds a few "
                    "per request" + ("; Claude's own tokenizer may count noticeably more" if model.provider ==
                                     "anthropic" else ""))
    else:
        said.append(f"over {_EXACT_CELLS:,} cells: prompts were not built, input tokens are the requested "
                    "lengths and no cache hits are counted")
    if model.provider == "openai" and is_reasoning_model(model.name):
        said.append("output: a reasoning model may spend up to max_output_tokens on hidden reasoning, so the "
                    "typical reply is taken at that maximum")
    else:
        said.append(f"output: cost_usd takes every reply at max_output_tokens ({model.params.max_output_tokens}); "
                    f"cost_usd_typical takes replies of the answer's length plus {_REPLY_EXTRA} tokens")
    said.append(f"cached: a sender that ignores the cache, in plan order (length, trial, then depth) with {lag} "
                "in flight (run.concurrency), so a cell reuses the prefix of the cell " + ("just before it" if lag == 1
                else f"{lag} places before it") + "; cached_warm: the bound for this sweep, which run's cache-aware "
                "scheduling reaches (cells of one length and trial share everything before the earlier needle)")
    said.append(rule.note)
    said.append("batch: batch prices from the price data where it has them, else half the plain price; no "
                "caching counted; `run --batch` sends them")
    return tuple(said)


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 100 else f"${value:,.4f}"


def describe(result: Estimate) -> list[str]:
    """The estimate's cost part as text lines (the plan's numbers are printed by the caller)."""
    prices = result.prices
    lines = []
    if prices.get("input") is not None:
        lines.append("prices (USD per million tokens): " + ", ".join(
            f"{label} {prices[key]:g}" for key, label in (("input", "input"), ("cached_input", "cached input"),
                                                          ("cache_write", "cache write"), ("output", "output"))))
    labels = {"plain": "plain requests", "cached": "caching, naive order", "cached_warm": "caching, as run sends",
              "batch": "batch API"}
    lines.append(f"{'cost':>24}: at most / typical (cached share of input)")
    for name, label in labels.items():
        s = result.scenarios[name]
        lines.append(f"{label:>24}: {_usd(s.cost_usd)} / {_usd(s.cost_usd_typical)} ({100 * s.cached_share:.1f}% "
                     f"cached{f', {s.cache_write_tokens:,} written' if s.cache_write_tokens else ''})")
    lines += [f"- {line}" for line in result.assumptions]
    return lines
