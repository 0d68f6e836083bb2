"""Rate limits for the fake provider server: real accounting, a 429 past a limit, and the providers' headers.

The server counts, in a sliding window of ``window_s`` seconds, the requests it answered, their prompt
tokens (as the fake counts them: characters // 4) and their completion tokens. A request that would
take a limit past its capacity gets a 429 and is not counted. Every generation response carries the
limits in the API's own headers: OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
(resets as durations such as ``1.25s``), Anthropic's ``anthropic-ratelimit-{requests,input-tokens,
output-tokens}-{limit,remaining,reset}`` (resets as RFC 3339 times).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["FakeRateLimits", "RateLedger"]

_KINDS = ("requests", "input_tokens", "output_tokens", "tokens")
_HEADERS = {"openai": {"requests": "requests", "tokens": "tokens"},
            "anthropic": {"requests": "requests", "input_tokens": "input-tokens", "output_tokens": "output-tokens"}}


@dataclass(frozen=True)
class FakeRateLimits:
    """What the fake server allows per ``window_s`` seconds (60 like the providers; tests use 1 or 2)."""

    requests: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens: int | None = None  # input and output together, like OpenAI's tokens per minute
    window_s: float = 60.0


def _go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it (Go's format, rounded up): ``20ms``, ``1.25s``, ``6m0s``."""
    millis = math.ceil(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    text = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


class RateLedger:
    """The server side of the limits: what was spent when, thread-safe."""

    def __init__(self, limits: FakeRateLimits) -> None:
        self.limits = limits
        self.refused = 0  # requests answered with a 429 for a limit
        self._log: dict[str, list[tuple[float, int]]] = {kind: [] for kind in _KINDS}
        self._lock = threading.Lock()

    def _limit(self, kind: str) -> int | None:
        return getattr(self.limits, kind)  # type: ignore[no-any-return]

    def _used(self, kind: str, now: float) -> int:
        log = self._log[kind]
        while log and log[0][0] + self.limits.window_s <= now:
            log.pop(0)
        return sum(amount for _, amount in log)

    def admit(self, input_tokens: int) -> float | None:
        """Count a request and its prompt, or refuse it: None when admitted, else seconds until it could be."""
        now = time.monotonic()
        want = {"requests": 1, "input_tokens": input_tokens, "output_tokens": 0, "tokens": input_tokens}
        with self._lock:
            waits = []
            for kind in _KINDS:
                limit = self._limit(kind)
                if limit is None:
                    continue
                used = self._used(kind, now)
                if used + want[kind] > limit or (want[kind] == 0 and used >= limit):
                    waits.append(self._free_in(kind, used + max(want[kind], 1) - limit, now))
            if waits:
                self.refused += 1
                return max(waits)
            for kind in _KINDS:
                if want[kind]:
                    self._log[kind].append((now, want[kind]))
        return None

    def spend_output(self, tokens: int) -> None:
        """Count the completion tokens of an answered request."""
        now = time.monotonic()
        with self._lock:
            for kind in ("output_tokens", "tokens"):
                if tokens:
                    self._log[kind].append((now, tokens))

    def _free_in(self, kind: str, short: int, now: float) -> float:
        """Seconds until ``short`` more units have left the window (a window, if they never would)."""
        for at, amount in self._log[kind]:
            short -= amount
            if short <= 0:
                return max(0.0, at + self.limits.window_s - now)
        return self.limits.window_s

    def headers(self, api: str) -> dict[str, str]:
        """The limits in the API's rate-limit headers, as they stand now."""
        now, wall = time.monotonic(), time.time()
        out: dict[str, str] = {}
        with self._lock:
            for kind, name in _HEADERS[api].items():
                limit = self._limit(kind)
                if limit is None:
                    continue
                log = self._log[kind]
                remaining = max(0, limit - self._used(kind, now))
                reset = max(0.0, log[-1][0] + self.limits.window_s - now) if log else 0.0  # fully replenished
                if api == "openai":
                    out |= {f"x-ratelimit-limit-{name}": str(limit), f"x-ratelimit-remaining-{name}": str(remaining),
                            f"x-ratelimit-reset-{name}": _go_duration(reset)}
                else:
                    when = datetime.fromtimestamp(wall + reset, UTC).isoformat(timespec="milliseconds")
                    out |= {f"anthropic-ratelimit-{name}-limit": str(limit),
                            f"anthropic-ratelimit-{name}-remaining": str(remaining),
                            f"anthropic-ratelimit-{name}-reset": when.replace("+00:00", "Z")}
        return out
