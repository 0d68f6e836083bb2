"""Admission control: a cell is sent only when the model's rate limits have room for its request and tokens.

Limits come from ``run.limits`` and from the rate-limit headers of every reply and error: OpenAI's
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (resets as durations: ``6m0s``, ``20ms``) and
Anthropic's ``anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}``
(resets as RFC 3339 times). Each limit is kept as a ledger of what was spent in the last window: at most
``capacity`` units in any ``window_s`` seconds. That is the strictest of the usual server models, so
whatever a provider runs (a token bucket of that rate, a fixed or a sliding window) it never refuses us.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from haystack_eval.config import RunLimits
from haystack_eval.errors import OverRateLimit

__all__ = ["Admission", "Bucket", "Need", "Reading", "Ticket", "parse_duration", "read_headers"]

# kind -> (what the limit counts, the run.limits field that sets it)
_KINDS: dict[str, tuple[str, str | None]] = {
    "requests": ("requests", "requests_per_min"),
    "input_tokens": ("input tokens", "input_tokens_per_min"),
    "output_tokens": ("output tokens", "output_tokens_per_min"),
    "tokens": ("tokens (input and output together)", None),  # OpenAI counts both against one limit
}
_OPENAI = {"requests": "requests", "tokens": "tokens"}  # x-ratelimit-<field>-<suffix>
# anthropic-ratelimit-<prefix>-<field>. Its "tokens-*" headers repeat whichever of the input and output
# limits is tightest at the moment; the two specific ones already say so, and reading "tokens" as a
# combined limit would refuse long prompts that the input limit admits.
_ANTHROPIC = {"requests": "requests", "input-tokens": "input_tokens", "output-tokens": "output_tokens"}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_EPSILON = 1e-9  # ledger sums are floats
CONFIGURED, FROM_HEADERS = "run.limits", "the provider's rate-limit headers"


@dataclass(frozen=True)
class Reading:
    """One limit as a response reported it; None where a header was missing or unreadable."""

    kind: str  # requests | input_tokens | output_tokens | tokens
    limit: int | None
    remaining: int | None
    reset_s: float | None  # seconds from the response until the limit is fully replenished


def parse_duration(text: str) -> float | None:
    """Seconds of an OpenAI reset duration (``6m0s``, ``1s``, ``20ms``, ``1h2m3.5s``); None if unreadable."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _reset_s(value: str | None, wall: float) -> float | None:
    """Seconds until a reset given as a duration, an RFC 3339 time, or plain seconds."""
    if not value:
        return None
    seconds = parse_duration(value)
    if seconds is None:
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                seconds = float(value)
            except ValueError:
                return None
        else:
            if when.tzinfo is None:
                return None  # a time without a zone could be anywhere
            seconds = when.timestamp() - wall
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _count(value: str | None) -> int | None:
    try:
        number = int(value.strip()) if value else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def read_headers(headers: Mapping[str, str], wall: float | None = None) -> list[Reading]:
    """The limits a response's headers report (names lowercased); ``wall`` is the Unix time it arrived."""
    wall = time.time() if wall is None else wall
    readings: list[Reading] = []
    names = [(kind, f"x-ratelimit-limit-{s}", f"x-ratelimit-remaining-{s}", f"x-ratelimit-reset-{s}")
             for s, kind in _OPENAI.items()]
    names += [(kind, f"anthropic-ratelimit-{p}-limit", f"anthropic-ratelimit-{p}-remaining",
               f"anthropic-ratelimit-{p}-reset") for p, kind in _ANTHROPIC.items()]
    for kind, limit, remaining, reset in names:
        capacity = _count(headers.get(limit)) or None  # a limit of 0 would admit nothing: not a limit
        left = _count(headers.get(remaining))
        if capacity is not None or left is not None:
            readings.append(Reading(kind, capacity, left, _reset_s(headers.get(reset), wall)))
    return readings


class Bucket:
    """At most ``capacity`` units in any ``window_s`` seconds: a ledger of what was spent, oldest first."""

    def __init__(self, capacity: int, window_s: float, source: str) -> None:
        self.capacity = capacity
        self.window_s = window_s
        self.source = source  # where the capacity came from, for the skip message
        # A configured limit is a ceiling: the user may share the key, so headers only ever lower it.
        self._ceiling = capacity if source == CONFIGURED else None
        self._spent: list[list[float]] = []  # [time, amount], sorted by time

    def _expire(self, now: float) -> None:
        while self._spent and self._spent[0][0] + self.window_s <= now:
            self._spent.pop(0)

    def available(self, now: float) -> float:
        """Units that may be spent now."""
        self._expire(now)
        return self.capacity - sum(amount for _, amount in self._spent)

    def wait(self, amount: float, now: float) -> float | None:
        """Seconds until ``amount`` fits (0: now); None if it never can (it is over the capacity)."""
        if amount > self.capacity:
            return None
        short = amount - self.available(now)
        if short <= _EPSILON:
            return 0.0
        for at, spent in self._spent:  # what frees up first is what was spent first
            short -= spent
            if short <= _EPSILON:
                return at + self.window_s - now
        return 0.0  # not reached: an amount within the capacity fits once everything has expired

    def spend(self, amount: float, now: float) -> list[float]:
        """Record ``amount`` spent now; the entry can be corrected once the reply says what was used."""
        entry = [now, amount]
        bisect.insort(self._spent, entry, key=lambda e: e[0])
        return entry

    def observe(self, reading: Reading, now: float) -> None:
        """Believe the server where it is stricter: a smaller limit, less remaining (held until its reset)."""
        if reading.limit:
            if self._ceiling is not None and self._ceiling <= reading.limit:
                self.capacity, self.source = self._ceiling, CONFIGURED
            else:
                self.capacity, self.source = reading.limit, FROM_HEADERS
        if reading.remaining is None:
            return
        # Until the reset, at most `remaining` may be spent: hold what our own entries, expiring sooner,
        # would free (the server has counted another client, or another tokenizer). Remaining 0 drains it.
        until = now + (reading.reset_s if reading.reset_s is not None else self.window_s)
        self._expire(now)
        lasting = sum(amount for at, amount in self._spent if at + self.window_s >= until)
        hold = self.capacity - reading.remaining - lasting
        if hold > 0:
            self.spend(hold, until - self.window_s)  # leaves the window at the reset


@dataclass(frozen=True)
class Need:
    """What one request takes from the limits."""

    input_tokens: int
    output_tokens: int  # the most it may produce: the request's max_output_tokens
    requests: int = 1

    def of(self, kind: str) -> int:
        """The amount of one kind of limit."""
        return self.input_tokens + self.output_tokens if kind == "tokens" else int(getattr(self, kind))


@dataclass
class Ticket:
    """An admitted request: its ledger entries, to be corrected once the reply reports its usage."""

    need: Need
    entries: dict[str, list[float]] = field(default_factory=dict)


class Admission:
    """Rate limits per model: ``admit`` waits (without blocking the event loop) until a request fits."""

    def __init__(self, limits: RunLimits | None = None, *, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.window_s = window_s  # 60: the providers' limits are per minute (tests use shorter windows)
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self.buckets: dict[str, Bucket] = {}
        for kind, (_, name) in _KINDS.items():
            value = getattr(limits, name) if limits is not None and name is not None else None
            if value is not None:
                self.buckets[kind] = Bucket(value, window_s, CONFIGURED)
        self.paused_until = 0.0  # a 429's retry-after holds every request, not just the one refused
        self.scale = 1.0  # prompt tokens the provider counts per token we built (Claude counts more)
        self._turn = asyncio.Lock()  # FIFO: cells are admitted in the order they asked, which is plan order

    def need(self, built_tokens: int, max_output_tokens: int) -> Need:
        """What a prompt of ``built_tokens`` (our tokenizer's count) takes, as the provider will count it."""
        return Need(math.ceil(built_tokens * self.scale), max_output_tokens)

    def refusal(self, need: Need) -> str | None:
        """Why ``need`` can never be admitted (it is over a whole window's limit), or None."""
        for kind, bucket in self.buckets.items():
            if need.of(kind) > bucket.capacity:
                what = _KINDS[kind][0]
                source = f"{CONFIGURED}.{_KINDS[kind][1]}" if bucket.source == CONFIGURED else bucket.source
                return (f"the request needs {need.of(kind)} {what}, over the limit of {bucket.capacity} per "
                        f"{self.window_s:g} s ({source}); it could never be sent")
        return None

    async def admit(self, need: Need) -> Ticket:
        """Wait until ``need`` fits every limit and spend it; raise OverRateLimit if it never can."""
        async with self._turn:
            while True:
                reason = self.refusal(need)  # checked again each turn: a header may have lowered a limit
                if reason is not None:
                    raise OverRateLimit(reason)
                now = self._clock()
                waits = [self.paused_until - now]
                waits += [bucket.wait(need.of(kind), now) or 0.0 for kind, bucket in self.buckets.items()]
                delay = max(waits)
                if delay <= 0:
                    ticket = Ticket(need)
                    for kind, bucket in self.buckets.items():
                        ticket.entries[kind] = bucket.spend(need.of(kind), now)
                    return ticket
                await self._sleep(min(delay, self.window_s))  # then look again: headers may have moved it

    def settle(self, ticket: Ticket, built_tokens: int, input_tokens: int | None, output_tokens: int | None) -> None:
        """Correct an admitted request's entries to the usage its reply reported (output is reserved at most)."""
        if input_tokens is not None and built_tokens > 0:
            self.scale = max(self.scale, input_tokens / built_tokens)
        used = {"input_tokens": input_tokens, "output_tokens": output_tokens,
                "tokens": None if input_tokens is None or output_tokens is None else input_tokens + output_tokens}
        for kind, entry in ticket.entries.items():
            value = used.get(kind)
            if value is not None:
                entry[1] = value

    def observe(self, headers: Mapping[str, str], *, retry_after: float | None = None) -> None:
        """Learn from a response's rate-limit headers; a 429's ``retry_after`` pauses every request."""
        now = self._clock()
        if retry_after is not None:
            self.paused_until = max(self.paused_until, now + retry_after)
        for reading in read_headers(headers, self._wall()):
            bucket = self.buckets.get(reading.kind)
            if bucket is None:
                if not reading.limit:
                    continue
                bucket = self.buckets[reading.kind] = Bucket(reading.limit, self.window_s, FROM_HEADERS)
            bucket.observe(reading, now)
