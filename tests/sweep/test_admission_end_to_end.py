"""Admission control from the wire to the record: the real SDKs against the fake server's rate limits.

Windows are half a second to a second on the server, so that the tests take seconds; the client's
window is a little longer than the server's, a margin for the time a request spends on its way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from haystack_eval.backends import Reply, Request, Settings, create_backend
from haystack_eval.config import Config, load_config
from haystack_eval.contexts import builder_for
from haystack_eval.errors import RateLimited
from haystack_eval.sweep import arun
from haystack_eval.sweep.admission import Admission
from tests.fakes.provider_server import FakeProvider
from tests.fakes.rate_limits import FakeRateLimits

CONFIG = """\
name: limits
model: {{provider: {provider}, name: fake-model, base_url: "{base_url}", api_key_env: HAYSTACK_TEST_KEY,
        tokenizer: tiktoken:o200k_base, params: {{max_output_tokens: 24}}}}
haystack: {{filler: essays, lengths: {lengths}, depths: {depths}}}
task: {{trials: {trials}}}
run: {{concurrency: 6, max_retries: 20, retry_base_s: 0.01, retry_max_s: 2, timeout_s: 10{limits}}}
"""
SERVER_WINDOW, CLIENT_WINDOW = 0.5, 0.75


def write(tmp_path: Path, provider: str, server: FakeProvider, *, lengths: str = "[300, 600]",
          depths: str = "[0, 50, 100]", trials: int = 2, limits: str = "") -> Config:
    base = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(provider=provider, base_url=base, lengths=lengths, depths=depths, trials=trials,
                                  limits=f", limits: {limits}" if limits else ""), "utf-8")
    return load_config(path)


def busiest_window(server: FakeProvider, window_s: float) -> int:
    """The most generation requests the server received within any window of ``window_s`` seconds."""
    starts = sorted(r.started for r in server.requests if r.path in ("/v1/chat/completions", "/v1/messages"))
    return max((sum(1 for t in starts if start <= t < start + window_s) for start in starts), default=0)


def server_limits(provider: str, requests: int, tokens: int, window_s: float) -> FakeRateLimits:
    """The same limits in each API's terms: OpenAI counts input and output together, Anthropic input alone."""
    if provider == "anthropic":
        return FakeRateLimits(requests=requests, input_tokens=tokens, output_tokens=tokens, window_s=window_s)
    return FakeRateLimits(requests=requests, tokens=tokens, window_s=window_s)


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_TEST_KEY", "test-key")


@pytest.mark.parametrize("provider", ["openai-compatible", "anthropic"])
def test_configured_limits_mean_no_429_and_the_pace_of_the_limit(provider: str, tmp_path: Path) -> None:
    # The server allows 4 requests and 2,400 tokens per half second; the config says 4 and 2,000 (its
    # tokenizer counts a little fewer than the server does, until the first replies show by how much).
    with FakeProvider(rate_limits=server_limits(provider, 4, 2400, SERVER_WINDOW)) as server:
        config = write(tmp_path, provider, server, limits="{requests_per_min: 4, input_tokens_per_min: 2000}")
        gate = Admission(config.run.limits, window_s=CLIENT_WINDOW)
        run = asyncio.run(arun(config, out=tmp_path / "out", admission=gate))
        assert server.rate_ledger is not None
        refused = server.rate_ledger.refused
    assert run.statuses == {"ok": 12}
    assert refused == 0, "no request was refused for a rate limit"
    assert busiest_window(server, SERVER_WINDOW) <= 4
    starts = sorted(r.started for r in server.requests)
    assert starts[-1] - starts[0] >= 2 * SERVER_WINDOW, "12 requests at 4 a window take at least two more windows"


class Blind(Admission):
    """Admission that ignores what responses say: the runner as it was before admission control."""

    def observe(self, headers: Mapping[str, str], *, retry_after: float | None = None) -> None:
        pass


@pytest.mark.parametrize("provider", ["openai-compatible", "anthropic"])
def test_headers_alone_slow_the_sweep_down(provider: str, tmp_path: Path) -> None:
    refused: dict[str, int] = {}
    for name, gate in (("blind", Blind(window_s=CLIENT_WINDOW)), ("headers", Admission(window_s=CLIENT_WINDOW))):
        with FakeProvider(rate_limits=server_limits(provider, 3, 100_000, SERVER_WINDOW)) as server:
            config = write(tmp_path, provider, server)
            run = asyncio.run(arun(config, out=tmp_path / name, admission=gate))
            assert server.rate_ledger is not None
            refused[name] = server.rate_ledger.refused
        assert run.statuses == {"ok": 12}, "refused requests were retried to success"
    # Six in flight against three a window: blind, every window refuses about half of what is sent.
    assert refused["blind"] >= 6, refused
    # With the headers, only the first burst (six sent before any reply told the limit) meets refusals.
    assert refused["headers"] <= 6 - 3, refused


def test_a_prompt_over_the_configured_limit_is_skipped_and_asked_after_the_limit_is_raised(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = """\
name: over
model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
haystack: {filler: essays, lengths: [200, 800], depths: [0, 100]}
run: {limits: {input_tokens_per_min: LIMIT}}
"""
    path.write_text(text.replace("LIMIT", "500"), "utf-8")
    run = asyncio.run(arun(load_config(path), out=tmp_path / "out"))
    assert run.statuses == {"ok": 2, "skipped": 2}
    skipped = [r for r in run.records if r["status"] == "skipped"]
    assert {r["length"] for r in skipped} == {800}
    assert all(r["attempts"] == 0 and r["response"] is None and r["cost_usd"] == 0.0 for r in skipped)
    error = skipped[0]["error"]
    assert error["class"] == "OverRateLimit"
    assert error["message"] == (
        f"the request needs {skipped[0]['tokens']} input tokens, over the limit of 500 per 60 s "
        "(run.limits.input_tokens_per_min); it could never be sent: raise run.limits (or the provider's limit, "
        "a higher usage tier) or drop length 800 from haystack.lengths, then run again to ask it")
    assert run.manifest["state"] == "complete"
    # A raised limit is not a different measurement: the same run directory resumes and asks the two.
    path.write_text(text.replace("LIMIT", "5000"), "utf-8")
    run = asyncio.run(arun(load_config(path), out=tmp_path / "out"))
    assert run.statuses == {"ok": 4}


@pytest.mark.parametrize("provider", ["openai-compatible", "anthropic"])
def test_a_limit_learnt_from_a_429_skips_the_prompt_instead_of_retrying_forever(provider: str, tmp_path: Path) -> None:
    with FakeProvider(rate_limits=server_limits(provider, 100, 500, 1.0)) as server:
        config = write(tmp_path, provider, server, lengths="[300, 800]", depths="[50]", trials=1)
        run = asyncio.run(arun(config, out=tmp_path / "out", admission=Admission(window_s=1.0)))
        assert server.rate_ledger is not None
        refused = server.rate_ledger.refused
    by_length = {r["length"]: r for r in run.records}
    assert by_length[300]["status"] == "ok"
    long = by_length[800]
    assert long["status"] == "skipped" and long["error"]["class"] == "OverRateLimit"
    assert "over the limit of 500 per 1 s (the provider's rate-limit headers)" in long["error"]["message"]
    assert long["attempts"] <= 1 and refused <= 1, "at most the one request that revealed the limit was refused"



@pytest.mark.parametrize(("provider", "max_output"), [("openai-compatible", 24), ("anthropic", 24),
                                                      ("anthropic", 20_000)])  # 20,000: a streamed request
def test_backends_surface_the_rate_limit_headers_of_replies_and_errors(provider: str, max_output: int,
                                                                        tmp_path: Path) -> None:
    with FakeProvider(rate_limits=server_limits(provider, 1, 100_000, 30.0)) as server:
        config = write(tmp_path, provider, server, lengths="[300]", depths="[50]", trials=1)
        backend = create_backend(config.model, timeout_s=5)
        ctx = builder_for(config).build(300, 50, 0)
        request = Request(ctx.prompt, Settings(None, max_output, 5), ctx)

        async def main() -> tuple[Reply, RateLimited]:
            try:
                reply = await backend.generate(request)
                with pytest.raises(RateLimited) as refused:  # one request per 30 s
                    await backend.generate(request)
                return reply, refused.value
            finally:
                await backend.aclose()

        reply, error = asyncio.run(main())
    if provider == "anthropic":
        limit, remaining = "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining"
    else:
        limit, remaining = "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests"
    assert "request-id" not in reply.rate_headers and "x-request-id" not in reply.rate_headers, "only the limits"
    assert reply.rate_headers[limit] == "1" and reply.rate_headers[remaining] == "0"
    assert error.rate_headers[remaining] == "0" and error.retry_after is not None and error.retry_after > 0
