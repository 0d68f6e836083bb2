"""The runner: every cell ends with one record of the right status, retries obey the provider, in-flight is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from haystack_eval.backends import Capabilities, Reply, Request, Usage
from haystack_eval.config import Config, load_config
from haystack_eval.errors import (
    AuthFailed,
    BackendError,
    HaystackError,
    InvalidRequest,
    ModelNotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
)
from haystack_eval.sweep import arun, load_run
from haystack_eval.sweep.retry import backoff

CONFIG = """\
name: runner-test
model: {{provider: {provider}, name: {name}, tokenizer: tiktoken:o200k_base, params: {{max_output_tokens: 16}}}}
haystack: {{filler: essays, lengths: [300, 600], depths: [0, 50, 100]}}
task: {{trials: 2}}
run: {{concurrency: 3, max_retries: 2, retry_base_s: 0.001, retry_max_s: 0.01, timeout_s: {timeout}}}
"""


def config(write_config: Callable[..., Path], provider: str = "scripted", name: str = "oracle",
           timeout: float = 5) -> Config:
    return load_config(write_config(CONFIG.format(provider=provider, name=name, timeout=timeout)))


class Flaky:
    """A backend that fails each cell a set number of times (or forever) before answering."""

    def __init__(self, failures: int, error: Callable[[], BackendError], window: int | None = None,
                 delay: float = 0.0, counts: float = 1.0) -> None:
        self.failures, self.error, self.window, self.delay = failures, error, window, delay
        self.counts = counts  # prompt tokens reported per token built (a provider whose tokenizer counts more)
        self.calls: dict[tuple[int, float, int], list[float]] = {}
        self.in_flight = self.max_in_flight = 0

    async def capabilities(self) -> Capabilities:
        return Capabilities(context_window=self.window)

    async def generate(self, request: Request) -> Reply:
        ctx = request.context
        times = self.calls.setdefault((ctx.length, ctx.depth, ctx.trial), [])
        times.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.failures < 0 or len(times) <= self.failures:
                raise self.error()
            usage = Usage(input_tokens=round(ctx.tokens * self.counts), output_tokens=2)
            return Reply(ctx.expected, "stop", usage, 0.0, "r1", False)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        pass


def records(out: Path) -> list[dict[str, Any]]:
    return list(load_run(out).records)


def test_the_oracle_gets_every_cell_right(write_config: Callable[..., Path], tmp_path: Path) -> None:
    run = asyncio.run(arun(config(write_config), out=tmp_path / "out"))
    assert len(run.records) == 12 and run.statuses == {"ok": 12} and run.accuracy == 1.0 and run.complete
    first = run.records[0]
    assert {"length", "depth", "trial", "tokens", "depth_actual", "needle_id", "question", "expected", "response",
            "score", "status", "error", "usage", "latency_s", "cost_usd", "model", "ts"} <= set(first)
    assert first["model"] == "scripted/oracle" and 298 <= first["tokens"] <= 300


def test_an_empty_answer_cut_by_the_budget_is_truncated_not_a_miss(write_config: Callable[..., Path],
                                                                    tmp_path: Path) -> None:
    run = asyncio.run(arun(config(write_config, name="silent"), out=tmp_path / "out"))
    assert run.statuses == {"truncated": 12}
    assert all(r["score"] is None for r in run.records) and run.accuracy is None


def test_a_failing_service_ends_in_error_records_after_the_retries(write_config: Callable[..., Path],
                                                                   tmp_path: Path) -> None:
    run = asyncio.run(arun(config(write_config, name="unavailable"), out=tmp_path / "out"))
    assert run.statuses == {"error": 12} and not run.complete
    assert all(r["attempts"] == 3 and r["error"]["class"] == "ServerError" and r["response"] is None
               for r in run.records)


def test_retryable_failures_are_retried_and_then_succeed(write_config: Callable[..., Path], tmp_path: Path) -> None:
    flaky = Flaky(2, lambda: RateLimited("slow down", status=429))
    run = asyncio.run(arun(config(write_config), out=tmp_path / "out", backend=flaky))
    assert run.statuses == {"ok": 12}
    assert all(r["attempts"] == 3 for r in run.records)


def test_fatal_failures_are_not_retried(write_config: Callable[..., Path], tmp_path: Path) -> None:
    flaky = Flaky(-1, lambda: InvalidRequest("this prompt was flagged", status=400))
    run = asyncio.run(arun(config(write_config), out=tmp_path / "out", backend=flaky))
    assert run.statuses == {"error": 12}
    assert all(len(times) == 1 for times in flaky.calls.values())
    assert {r["error"]["class"] for r in run.records} == {"InvalidRequest"}


@pytest.mark.parametrize(("error", "line"), [
    (lambda: AuthFailed("Incorrect API key provided.", status=401),
     "model.provider: the server refused the key (HTTP 401: Incorrect API key provided.); set model.api_key_env"),
    (lambda: ModelNotFound("The model does not exist.", status=404),
     "model.name: the server has no model 'oracle', or no API at this base URL (HTTP 404: The model does not exist.)"),
    (lambda: QuotaExceeded("You exceeded your current quota.", status=429),
     "model.provider: the provider refused further requests (HTTP 429: You exceeded your current quota.); add credit"),
])
def test_an_error_that_would_meet_every_cell_stops_the_run_at_once(
        write_config: Callable[..., Path], tmp_path: Path, error: Callable[[], BackendError], line: str) -> None:
    flaky = Flaky(-1, error, delay=0.01)
    with pytest.raises(HaystackError) as info:
        asyncio.run(arun(config(write_config), out=tmp_path / "out", backend=flaky))
    assert line in info.value.line()
    assert info.value.exit_code == (1 if isinstance(error(), QuotaExceeded) else 2)
    assert sum(map(len, flaky.calls.values())) <= 3, "no more than the requests already in flight"
    run = load_run(tmp_path / "out")
    assert run.records == () and run.manifest["state"] == "failed"


def test_retry_after_is_honoured(write_config: Callable[..., Path], tmp_path: Path) -> None:
    flaky = Flaky(1, lambda: RateLimited("wait", status=429, retry_after=0.2))
    asyncio.run(arun(config(write_config), out=tmp_path / "out", backend=flaky))
    gaps = [times[1] - times[0] for times in flaky.calls.values()]
    assert min(gaps) >= 0.2


def test_backoff_grows_with_full_jitter_and_respects_retry_after() -> None:
    assert all(0 <= backoff(1, None, 1.0, 60) <= 1.0 for _ in range(100))
    assert all(0 <= backoff(4, None, 1.0, 60) <= 8.0 for _ in range(100))
    assert all(backoff(9, None, 1.0, 5.0) <= 5.0 for _ in range(100))
    assert all(3.0 <= backoff(1, 3.0, 0.01, 0.02) <= 3.3 for _ in range(100))


def test_requests_in_flight_stay_within_the_concurrency(write_config: Callable[..., Path], tmp_path: Path) -> None:
    flaky = Flaky(0, lambda: ServerError("x"), delay=0.02)
    asyncio.run(arun(config(write_config), out=tmp_path / "out", backend=flaky, concurrency=2))
    assert flaky.max_in_flight == 2


def test_cells_longer_than_the_window_are_skipped_up_front(write_config: Callable[..., Path], tmp_path: Path) -> None:
    flaky = Flaky(0, lambda: ServerError("x"), window=400)
    run = asyncio.run(arun(config(write_config), out=tmp_path / "out", backend=flaky))
    assert run.statuses == {"ok": 6, "skipped": 6}
    assert all(r["length"] == 600 for r in run.records if r["status"] == "skipped")
    assert all(key[0] == 300 for key in flaky.calls), "a skipped cell is never sent"


def test_a_rerun_resumes_and_retries_only_the_errors(write_config: Callable[..., Path], tmp_path: Path) -> None:
    cfg = config(write_config)
    asyncio.run(arun(cfg, out=tmp_path / "out", backend=Flaky(-1, lambda: ServerError("down", status=503))))
    healthy = Flaky(0, lambda: ServerError("x"))
    run = asyncio.run(arun(cfg, out=tmp_path / "out", backend=healthy))
    assert run.statuses == {"ok": 12} and len(healthy.calls) == 12
    again = Flaky(0, lambda: ServerError("x"))
    asyncio.run(arun(cfg, out=tmp_path / "out", backend=again))
    assert again.calls == {}, "finished cells are never asked again"


@pytest.mark.parametrize("bad", ["nonsense", "canned"])
def test_unknown_scripted_rules_are_config_errors(write_config: Callable[..., Path], tmp_path: Path, bad: str) -> None:
    from haystack_eval.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown scripted rule"):
        asyncio.run(arun(config(write_config, name=bad), out=tmp_path / "out"))


def test_a_cost_limit_learns_from_the_first_reply_how_the_provider_counts(write_config: Callable[..., Path],
                                                                         tmp_path: Path) -> None:
    # $1,000 per million input tokens: a 300-token cell is counted at 300 and billed at 600, $0.60.
    priced = CONFIG.replace("max_output_tokens: 16}}", "max_output_tokens: 16}}, prices: {{input: 1000, output: 0}}")
    cfg = load_config(write_config(priced.format(provider="scripted", name="oracle", timeout=5)))
    backend = Flaky(0, lambda: ServerError("x"), delay=0.02, counts=2.0)
    run = asyncio.run(arun(cfg, out=tmp_path / "out", backend=backend, max_cost=2.0))
    starts = sorted(t for times in backend.calls.values() for t in times)
    assert starts[1] - starts[0] >= 0.02, "the first cell goes alone"
    # Estimated at its own count a cell would look like $0.30, and six would be sent; scaled, three fit.
    assert len(run.records) == 3 and run.cost_usd is not None and 1.7 < run.cost_usd <= 2.0
    assert run.manifest["state"] == "partial" and run.manifest["stopped_by"] == "max_cost"
    assert run.partial_reason is not None and "9 cell(s) not asked" in run.partial_reason
