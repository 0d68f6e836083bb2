"""How long to wait before asking again: shared by the runner and the judge."""

from __future__ import annotations

import random

__all__ = ["backoff"]

_LONGEST_WAIT_S = 600.0  # a retry-after beyond this is not honoured as is
_jitter = random.Random()


def backoff(attempt: int, retry_after: float | None, base_s: float, max_s: float) -> float:
    """Seconds to wait before attempt ``attempt + 1``: full-jitter exponential, at least retry-after."""
    delay = _jitter.uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))
    if retry_after is not None:
        # The provider said when: wait that long (plus a little, so clients do not return in step).
        delay = max(delay, min(retry_after, _LONGEST_WAIT_S) * _jitter.uniform(1.0, 1.1))
    return delay
