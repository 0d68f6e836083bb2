"""Admission control: reading the providers' rate-limit headers, and the ledger arithmetic on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from haystack_eval.backends.base import error_from_status, rate_limit_headers
from haystack_eval.config import RunLimits
from haystack_eval.errors import OverRateLimit
from haystack_eval.sweep.admission import Admission, Bucket, Need, Reading, parse_duration, read_headers

WALL = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # the Unix time the responses arrive


@pytest.mark.parametrize(("text", "seconds"), [
    ("6m0s", 360.0), ("1s", 1.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5s", 0.5), ("8.64s", 8.64),
    ("1m30s", 90.0), (" 2s ", 2.0), ("", None), ("soon", None), ("5", None), ("-1s", None), ("1s later", None),
    ("1d", None), ("ms", None),
])
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(("headers", "expected"), [
    # OpenAI: requests and tokens (input and output counted together), resets as durations
    ({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
      "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
      "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"},
     [Reading("requests", 500, 499, 0.12), Reading("tokens", 30000, 0, 360.0)]),
    # Anthropic: RFC 3339 resets, with a zone letter or an offset; a reset in the past is now
    ({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
      "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
      "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "1000",
      "anthropic-ratelimit-input-tokens-reset": "2026-01-01T01:00:12.5+01:00",
      "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "8000",
      "anthropic-ratelimit-output-tokens-reset": "2025-12-31T23:59:00Z"},
     [Reading("requests", 50, 49, 30.0), Reading("input_tokens", 40000, 1000, 12.5),
      Reading("output_tokens", 8000, 8000, 0.0)]),
    # Anthropic's tokens-* repeat the tightest of the two above: not a limit of its own
    ({"anthropic-ratelimit-tokens-limit": "8000", "anthropic-ratelimit-tokens-remaining": "10"}, []),
    # garbage is ignored, field by field
    ({"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-3",
      "x-ratelimit-reset-requests": "tomorrow"}, []),
    ({"x-ratelimit-limit-requests": "0", "x-ratelimit-remaining-requests": "7",
      "x-ratelimit-reset-requests": "tomorrow"}, [Reading("requests", None, 7, None)]),
    ({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30"},
     [Reading("requests", 50, None, None)]),  # a time without a zone could be anywhere
    ({"x-ratelimit-remaining-tokens": "12", "x-ratelimit-reset-tokens": "2.5"}, [Reading("tokens", None, 12, 2.5)]),
    ({}, []),
    ({"retry-after": "3", "content-type": "application/json"}, []),
])
def test_read_headers(headers: dict[str, str], expected: list[Reading]) -> None:
    assert read_headers(headers, WALL) == expected


def test_backends_keep_only_the_rate_limit_headers_and_errors_carry_them() -> None:
    headers = {"X-RateLimit-Remaining-Requests": "0", "anthropic-ratelimit-requests-limit": "5",
               "retry-after": "2", "request-id": "req_1"}
    assert rate_limit_headers(headers) == {"x-ratelimit-remaining-requests": "0",
                                           "anthropic-ratelimit-requests-limit": "5"}
    error = error_from_status(429, "slow down", headers=headers)
    assert error.retry_after == 2.0 and error.rate_headers == rate_limit_headers(headers)


def test_bucket_frees_what_was_spent_a_window_later() -> None:
    bucket = Bucket(10, 60.0, "run.limits")
    bucket.spend(6, 0.0)
    bucket.spend(4, 10.0)
    assert bucket.available(20.0) == 0
    assert bucket.wait(1, 20.0) == 40.0, "the first spend leaves the window at 60"
    assert bucket.wait(6, 20.0) == 40.0
    assert bucket.wait(7, 20.0) == 50.0, "7 needs the second spend gone too"
    assert bucket.wait(10, 20.0) == 50.0
    assert bucket.wait(11, 20.0) is None, "over the capacity: never"
    assert bucket.available(60.0) == 6 and bucket.wait(6, 60.0) == 0.0 and bucket.wait(7, 60.0) == 10.0
    assert bucket.available(70.0) == 10


def test_bucket_believes_headers_where_they_are_stricter() -> None:
    bucket = Bucket(100, 60.0, "the provider's rate-limit headers")
    bucket.observe(Reading("tokens", 100, 40, 5.0), now=0.0)
    assert bucket.available(0.0) == 40 and bucket.wait(50, 0.0) == 5.0, "the deficit lasts until the reset"
    bucket.observe(Reading("tokens", 100, 90, 1.0), now=1.0)
    assert bucket.available(1.0) == 40, "a looser header never frees what we counted"
    bucket.observe(Reading("tokens", 100, 0, 30.0), now=2.0)
    assert bucket.available(2.0) <= 0 and bucket.wait(1, 2.0) == 30.0, "remaining 0 drains it until the reset"
    assert bucket.available(32.0) == 100
    bucket.observe(Reading("tokens", 80, None, None), now=40.0)
    assert bucket.capacity == 80


def test_a_configured_limit_is_a_ceiling_headers_only_lower() -> None:
    bucket = Bucket(10, 60.0, "run.limits")
    bucket.observe(Reading("requests", 50, None, None), now=0.0)
    assert (bucket.capacity, bucket.source) == (10, "run.limits"), "the key may be shared: keep the user's limit"
    bucket.observe(Reading("requests", 5, None, None), now=0.0)
    assert (bucket.capacity, bucket.source) == (5, "the provider's rate-limit headers")
    bucket.observe(Reading("requests", 50, None, None), now=0.0)
    assert bucket.capacity == 10


class FakeClock:
    """A clock that only moves when admission sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def admission(limits: RunLimits | None = None) -> tuple[Admission, FakeClock]:
    clock = FakeClock()
    return Admission(limits, clock=clock, wall=lambda: WALL + clock.now, sleep=clock.sleep), clock


def test_requests_are_admitted_at_the_configured_rate_in_order() -> None:
    gate, clock = admission(RunLimits(requests_per_min=2, input_tokens_per_min=1000))

    async def main() -> list[tuple[int, float]]:
        admitted: list[tuple[int, float]] = []

        async def one(i: int, tokens: int) -> None:
            await gate.admit(Need(tokens, 10))
            admitted.append((i, clock.now))

        await asyncio.gather(*(one(i, t) for i, t in enumerate([100, 100, 300, 900, 100])))
        return admitted

    # Two requests a minute; the 900-token prompt also waits for the 300 before it to leave the window,
    # and the small prompt after it waits its turn: plan order is kept.
    assert asyncio.run(main()) == [(0, 0.0), (1, 0.0), (2, 60.0), (3, 120.0), (4, 120.0)]


def test_a_429_pauses_every_request_until_its_retry_after() -> None:
    gate, clock = admission()

    async def main() -> float:
        gate.observe({}, retry_after=7.5)
        await gate.admit(Need(10, 10))
        return clock.now

    assert asyncio.run(main()) == 7.5


def test_headers_create_limits_and_a_prompt_over_one_is_refused() -> None:
    gate, _ = admission(RunLimits(output_tokens_per_min=500))
    gate.observe({"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "1000"})
    assert gate.refusal(Need(800, 100)) is None
    reason = gate.refusal(Need(950, 100))
    assert reason == ("the request needs 1050 tokens (input and output together), over the limit of 1000 per 60 s "
                      "(the provider's rate-limit headers); it could never be sent")
    assert "output tokens, over the limit of 500 per 60 s (run.limits.output_tokens_per_min)" in (
        gate.refusal(Need(10, 501)) or "")
    with pytest.raises(OverRateLimit, match="1050 tokens"):
        asyncio.run(gate.admit(Need(950, 100)))


def test_settling_returns_the_unused_output_and_learns_the_providers_count() -> None:
    gate, _ = admission(RunLimits(input_tokens_per_min=10_000, output_tokens_per_min=100))

    async def main() -> None:
        ticket = await gate.admit(gate.need(1000, 100))
        assert gate.buckets["output_tokens"].available(0.0) == 0, "the whole output budget is reserved"
        gate.settle(ticket, 1000, input_tokens=1200, output_tokens=7)
        assert gate.buckets["output_tokens"].available(0.0) == 93
        assert gate.buckets["input_tokens"].available(0.0) == 8800, "the provider counted 1200"

    asyncio.run(main())
    assert gate.need(1000, 100) == Need(1200, 100), "later prompts are counted as the provider counts"
