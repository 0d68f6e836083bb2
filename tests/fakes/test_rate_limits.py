"""The fake server's rate limits: real accounting, a 429 past a limit, and each provider's headers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

from haystack_eval.sweep.admission import parse_duration
from tests.fakes.provider_server import FakeProvider
from tests.fakes.rate_limits import FakeRateLimits, _go_duration

PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


def post(server: FakeProvider, api: str, text: str, max_tokens: int = 8) -> tuple[int, dict[str, str]]:
    """Send one generation request; (status, headers lowercased)."""
    body = {"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    request = urllib.request.Request(server.url + PATHS[api], data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def test_openai_style_requests_past_the_limit_get_429_with_headers() -> None:
    with FakeProvider(rate_limits=FakeRateLimits(requests=2, tokens=1000, window_s=0.5)) as server:
        replies = [post(server, "openai", "x" * 400) for _ in range(3)]  # 100 prompt tokens each
        time.sleep(0.55)
        after = post(server, "openai", "x" * 400)
        assert server.rate_ledger is not None and server.rate_ledger.refused == 1
    (s1, h1), (s2, h2), (s3, h3) = replies
    assert (s1, s2, s3, after[0]) == (200, 200, 429, 200)
    assert h1["x-ratelimit-limit-requests"] == "2" and h1["x-ratelimit-remaining-requests"] == "1"
    assert h2["x-ratelimit-remaining-requests"] == "0"
    assert h3["x-ratelimit-remaining-requests"] == "0" and h3["x-ratelimit-limit-tokens"] == "1000"
    remaining_tokens = int(h2["x-ratelimit-remaining-tokens"])
    assert remaining_tokens < 1000 - 200, "both prompts and the first answer's words are counted"
    reset = parse_duration(h3["x-ratelimit-reset-requests"])
    assert reset is not None and 0 < reset <= 0.5
    assert 0 < float(h3["retry-after"]) <= 0.5


def test_anthropic_style_counts_input_and_output_apart_with_rfc3339_resets() -> None:
    limits = FakeRateLimits(requests=10, input_tokens=250, output_tokens=1000, window_s=30)
    with FakeProvider(rate_limits=limits) as server:
        first = post(server, "anthropic", "y" * 400)  # 100 input tokens
        second = post(server, "anthropic", "y" * 400)
        third = post(server, "anthropic", "y" * 400)  # 300 would be over 250
    assert (first[0], second[0], third[0]) == (200, 200, 429)
    headers = third[1]
    assert headers["anthropic-ratelimit-input-tokens-limit"] == "250"
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == "50"
    assert headers["anthropic-ratelimit-requests-remaining"] == "8"
    assert int(headers["anthropic-ratelimit-output-tokens-remaining"]) < 1000
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-input-tokens-reset"])
    assert reset.tzinfo is not None and 0 < reset.timestamp() - time.time() <= 30.5
    assert not any(name.startswith("x-ratelimit-") for name in headers)


def test_without_rate_limits_no_headers_are_sent() -> None:
    with FakeProvider() as server:
        status, headers = post(server, "openai", "z" * 40)
    assert status == 200 and not any("ratelimit" in name for name in headers)


@pytest.mark.parametrize(("seconds", "text"), [(0.02, "20ms"), (0.0001, "1ms"), (1.25, "1.25s"), (360.0, "6m0s"),
                                               (61.5, "1m1.5s"), (0.999, "999ms")])
def test_resets_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert _go_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.001)
