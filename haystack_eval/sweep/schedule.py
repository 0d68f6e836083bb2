"""Cache-aware scheduling: when each cell is sent, which cells wait for which, and where prompts share a prefix.

A (length, trial) group fixes the haystack, so its cells share the prompt up to the earlier of any two
needles. Different lengths do not share text: each length's window starts at the sentence that lets it
fit exactly, a few sentences apart (see ``ContextBuilder._window``), so groups are scheduled independently.

- ``fanout`` (automatic prefix caches: OpenAI, vLLM, SGLang): a group's deepest cell goes first and alone.
  Its prompt holds every other cell's shared prefix, so once it has returned the rest of the group is
  released at once and each reads its whole prefix: the bound, at full concurrency.
- ``chain`` (Anthropic's explicit breakpoints): an entry is read only where an earlier request put a
  breakpoint, and a request takes at most 4, so one warm request cannot serve ten depths. A group goes by
  rising depth, one cell after the other: each reads the prefix its predecessor wrote at its needle and
  writes its own. Groups run side by side.
- ``plan``: plan order, nothing waits (one request at a time, a local model, or ``cache_aware=False``).

Scheduling never changes a prompt: only when it is sent and, for Anthropic, where its text is cut into blocks.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from haystack_eval.backends import Usage
from haystack_eval.contexts import Context, PlacedNeedle
from haystack_eval.sweep.estimate import CacheRule
from haystack_eval.sweep.plan import Cell, CellKey
from haystack_eval.sweep.pricing import FREE_PROVIDERS, tokens_of

__all__ = ["MAX_BREAKPOINTS", "CacheUse", "Schedule", "Style", "cache_use", "first_hidden", "style_for"]

Style = Literal["plan", "fanout", "chain"]
MAX_BREAKPOINTS = 4  # Anthropic's limit of cache_control blocks per request
_Group = tuple[int, int]  # (length, trial)


def style_for(provider: str, concurrency: int) -> Style:
    """How a provider's cells are scheduled (see the module docstring)."""
    if provider == "anthropic":
        return "chain"
    if provider in ("openai", "openai-compatible") and concurrency > 1:
        return "fanout"
    return "plan"


def first_hidden(ctx: Context) -> PlacedNeedle | None:
    """The earliest hidden sentence of a context: its prompt before it is what other depths share."""
    return min(ctx.needles, key=lambda n: n.char_offset, default=None)


def _group(cell: Cell) -> _Group:
    return (cell.length, cell.trial)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass(frozen=True)
class _Mark:
    """Where a built cell's shared prefix ends: characters of the user message, prompt tokens, and its text's hash."""

    char: int
    tokens: int
    digest: bytes


class Schedule:
    """Hands cells to the runner's workers in cache-friendly order; a cell may wait for another to finish."""

    def __init__(self, cells: Sequence[Cell], everything: Iterable[Cell], rule: CacheRule, style: Style,
                 *, provider: str) -> None:
        self.style, self.rule = style, rule
        self._billed = provider not in FREE_PROVIDERS  # only providers that report cached tokens get a bound
        tops: dict[_Group, Cell] = {}
        for cell in everything:  # of the whole plan, so that a resumed run splits the bound the same way
            top = tops.get(_group(cell))
            if top is None or cell.depth > top.depth:
                tops[_group(cell)] = cell
        self._tops = frozenset(c.key for c in tops.values())
        self._left, self._after = self._arrange(list(cells), style)
        self._done: set[CellKey] = set()
        self._marks: dict[_Group, _Mark] = {}
        self._stopped = False
        self._changed = asyncio.Condition()

    @staticmethod
    def _arrange(cells: list[Cell], style: Style) -> tuple[list[Cell], dict[CellKey, CellKey]]:
        """The sending order and each cell's prerequisite (the cell that must finish before it is sent)."""
        if style == "plan":
            return cells, {}
        groups: dict[_Group, list[Cell]] = {}
        for cell in cells:
            groups.setdefault(_group(cell), []).append(cell)
        order: list[Cell] = []
        after: dict[CellKey, CellKey] = {}
        for members in groups.values():
            if style == "fanout":
                warm = max(members, key=lambda c: c.depth)  # the first deepest: its prompt holds the others' prefixes
                rest = [c for c in members if c is not warm]
                members = [warm, *rest]
                after.update((c.key, warm.key) for c in rest)
            else:  # chain, by rising depth (stable: plan order breaks ties)
                members = sorted(members, key=lambda c: c.depth)
                after.update((b.key, a.key) for a, b in itertools.pairwise(members))
            order += members
        return order, after

    async def take(self) -> Cell | None:
        """The next cell whose prerequisite has finished; waits while only blocked cells are left; None at the end."""
        async with self._changed:
            while True:
                if self._stopped or not self._left:
                    return None
                for i, cell in enumerate(self._left):
                    needs = self._after.get(cell.key)
                    if needs is None or needs in self._done:
                        return self._left.pop(i)
                await self._changed.wait()

    async def finish(self, cell: Cell) -> None:
        """A cell has its record (a reply or an error): the cells waiting for it may go."""
        async with self._changed:
            self._done.add(cell.key)
            self._changed.notify_all()

    async def stop(self) -> None:
        """Hand out no more cells (a cost limit was reached); waiting workers end."""
        async with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def breakpoints(self, cell: Cell, ctx: Context) -> tuple[int, ...]:
        """Characters of the user message where an explicit cache breakpoint goes (none for automatic caches).

        Two at most: where the group's previously built cell ended its shared prefix (to read what it wrote),
        and where this cell's own ends (to write it for the next), unless no later cell of the group needs it.
        Only prefixes of at least the rule's minimum length: a shorter one is not cached, only split.
        """
        hidden = first_hidden(ctx)
        if not self.rule.writes or hidden is None:
            return ()
        user = ctx.prompt.user
        own = _Mark(hidden.char_offset, hidden.token_offset, _digest(user[:hidden.char_offset]))
        before = self._marks.get(_group(cell))
        self._marks[_group(cell)] = own
        points = []
        # the text before the predecessor's needle is compared, not assumed: a breakpoint on a prefix nobody
        # wrote would be a paid write, not a read
        if (before is not None and self.rule.minimum <= before.tokens and before.char < own.char
                and _digest(user[:before.char]) == before.digest):
            points.append(before.char)
        if cell.key not in self._tops and own.tokens >= self.rule.minimum:
            points.append(own.char)
        return tuple(points[-MAX_BREAKPOINTS:])

    def bound(self, cell: Cell, ctx: Context) -> int | None:
        """This cell's part of the sweep's ideal cached input: its shared prefix as the provider caches it,
        0 for its group's deepest cell (which must be sent cold); None where no provider cache is billed.

        Summed over a group this is the most any order can read: each cell but the deepest reads its whole
        prefix from the deepest one. It equals the estimate's ``cached_warm`` when depths rise with position.
        """
        if not self._billed:
            return None
        hidden = first_hidden(ctx)
        if hidden is None or cell.key in self._tops:
            return 0
        return self.rule.cacheable(hidden.token_offset)


@dataclass(frozen=True)
class CacheUse:
    """How much of a run's input the provider served from its prompt cache, against the ideal."""

    input_tokens: int  # every prompt token the provider reported, cached ones included
    cached_read_tokens: int
    cache_write_tokens: int
    ideal_share: float  # the bound's share of the prompts' tokens (in the configured tokenizer)

    @property
    def share(self) -> float:
        """Share of input tokens read from the cache."""
        return self.cached_read_tokens / self.input_tokens if self.input_tokens else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return {"input_tokens": self.input_tokens, "cached_read_tokens": self.cached_read_tokens,
                "cache_write_tokens": self.cache_write_tokens, "cached_share": round(self.share, 4),
                "ideal_share": round(self.ideal_share, 4)}


def cache_use(provider: str, records: Iterable[Mapping[str, Any]]) -> CacheUse | None:
    """Cached share of the records' input and its ideal; None when the provider reported no cache counts."""
    total = read = write = built = ideal = 0
    reported = False
    for record in records:
        usage, bound = record.get("usage"), record.get("cacheable_tokens")
        if not usage or bound is None:
            continue
        known = {k: usage.get(k) for k in Usage.__dataclass_fields__}
        tokens = tokens_of(provider, Usage(**known))
        if tokens is None:
            continue
        reported = reported or usage.get("cached_read_tokens") is not None
        total, read, write = total + tokens.input, read + tokens.cached_read, write + tokens.cache_write
        built, ideal = built + int(record.get("tokens") or 0), ideal + int(bound)
    if not reported:
        return None
    return CacheUse(total, read, write, ideal / built if built else 0.0)
