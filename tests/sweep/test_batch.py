"""run --batch against the fake server's OpenAI Batch API: submit, poll, collect, errors and resume."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from haystack_eval.config import Config, load_config
from haystack_eval.sweep import arun, load_run, run
from haystack_eval.sweep.batch import _cell, chunks, custom_id
from haystack_eval.sweep.store import MANIFEST
from tests.fakes.batch_api import FakeBatches
from tests.fakes.provider_server import FakeProvider

CONFIG = """\
name: batched
model: {{provider: {provider}, name: {model}, base_url: '{url}', api_key_env: HAYSTACK_TEST_KEY,
        tokenizer: tiktoken:o200k_base, params: {{max_output_tokens: 64}}, prices: {{input: 10, output: 20}}}}
haystack: {{filler: essays, lengths: [1000, 2000], depths: [0, 50, 100]}}
task: {{trials: 2}}
run: {{concurrency: 2, poll_s: 0.01}}
"""
CELLS = 12
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
ENDED = {"openai": "completed", "anthropic": "ended"}  # how each API says a batch is done


def config_text(provider: str, fake: FakeProvider) -> str:
    """The test config for one provider, pointing at the fake server."""
    url = fake.openai_base_url if provider == "openai" else fake.anthropic_base_url
    return CONFIG.format(provider=provider, model=MODELS[provider], url=url)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("HAYSTACK_TEST_KEY", "sk-batch-test")
    with FakeProvider(batches=FakeBatches(polls=2)) as server:
        yield server


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(fake: FakeProvider, provider: str, write_config: Callable[..., Path]) -> Config:
    return load_config(write_config(config_text(provider, fake)))


def _batches(fake: FakeProvider) -> FakeBatches:
    assert fake.batches is not None
    return fake.batches


def _chat_requests(fake: FakeProvider) -> int:
    return sum(r.path in ("/v1/chat/completions", "/v1/messages") for r in fake.requests)


def test_a_batch_is_submitted_polled_and_collected_at_batch_prices(fake: FakeProvider, config: Config,
                                                                   provider: str, tmp_path: Path) -> None:
    result = run(config, out=tmp_path / "b", batch=True)
    batches = _batches(fake)
    assert len(batches.created) == 1 and batches.retrievals >= 3, "in progress twice, then ended"
    if provider == "openai":
        assert batches.created[0]["endpoint"] == "/v1/chat/completions"
        assert batches.created[0]["completion_window"] == "24h"
    else:
        assert len(batches.created[0]["requests"]) == CELLS
    assert _chat_requests(fake) == 0, "nothing went through the plain endpoint"
    assert len(result.records) == CELLS and result.complete
    assert result.statuses == {"ok": CELLS} and result.accuracy is not None and result.accuracy > 0.5
    for record in result.records:
        usage = record["usage"]
        plain = (usage["input_tokens"] * 10 + usage["output_tokens"] * 20) / 1e6
        assert record["cost_usd"] == pytest.approx(plain / 2), "batch prices: half the plain ones"
        assert record["batch_id"] == batches.created[0]["id"] and record["request_id"]
    (entry,) = result.manifest["batches"]
    assert entry["id"] == batches.created[0]["id"] and entry["state"] == "collected"
    assert entry["status"] == ENDED[provider] and len(entry["cells"]) == CELLS


def test_batch_records_match_a_normal_run(fake: FakeProvider, config: Config, tmp_path: Path) -> None:
    batched = {(r["length"], r["depth"], r["trial"]): r for r in run(config, out=tmp_path / "b", batch=True).records}
    normal = {(r["length"], r["depth"], r["trial"]): r for r in run(config, out=tmp_path / "n").records}
    assert batched.keys() == normal.keys()
    for key, plain in normal.items():
        got = batched[key]
        # The same fields, plus the batch the answer came from; no cache bound, as a batch is not cache-scheduled.
        assert set(got) == (set(plain) - {"cacheable_tokens"}) | {"batch_id"}
        for field in ("response", "score", "status", "tokens", "depth_actual", "expected", "usage", "finish_reason"):
            assert got[field] == plain[field], field
        assert got["cost_usd"] == pytest.approx(plain["cost_usd"] / 2)


def test_per_request_errors_become_error_records_and_are_asked_again(fake: FakeProvider, config: Config,
                                                                     tmp_path: Path) -> None:
    failing = {custom_id((1000, 50.0, 0)): "context_length", custom_id((2000, 0.0, 1)): "500"}
    _batches(fake).errors = dict(failing)
    first = run(config, out=tmp_path / "b", batch=True)
    errors = {(r["length"], r["depth"], r["trial"]): r["error"] for r in first.records if r["status"] == "error"}
    assert errors.keys() == {(1000, 50.0, 0), (2000, 0.0, 1)}
    assert errors[(1000, 50.0, 0)]["class"] == "ContextTooLong" and errors[(1000, 50.0, 0)]["status"] == 400
    assert errors[(2000, 0.0, 1)]["class"] == "ServerError" and errors[(2000, 0.0, 1)]["status"] == 500
    assert first.manifest["state"] == "partial" and first.statuses["ok"] == CELLS - 2

    _batches(fake).errors = {}
    second = run(config, out=tmp_path / "b", batch=True)
    created = _batches(fake).created
    assert len(created) == 2 and second.complete and second.statuses == {"ok": CELLS}
    if "requests" in created[1]:  # Anthropic: the requests are in the batch
        resent = [r["custom_id"] for r in created[1]["requests"]]
    else:
        resent = [json.loads(line)["custom_id"]
                  for line in _batches(fake).files[created[1]["input_file_id"]].decode().splitlines()]
    assert sorted(resent) == sorted(failing), "only the failed cells"


def test_an_expired_batch_leaves_its_unanswered_cells_as_retryable_errors(fake: FakeProvider, config: Config,
                                                                           provider: str, tmp_path: Path) -> None:
    _batches(fake).expire = True
    result = run(config, out=tmp_path / "b", batch=True)
    errors = [r for r in result.records if r["status"] == "error"]
    assert len(errors) == 1 and errors[0]["error"]["class"] == "RequestTimeout"
    assert "expired" in errors[0]["error"]["message"] and "answering it" in errors[0]["error"]["message"]
    assert result.manifest["batches"][0]["status"] == ("expired" if provider == "openai" else "ended")
    assert result.manifest["state"] == "partial"


def test_a_stopped_run_resumes_polling_the_same_batch(fake: FakeProvider, config: Config, tmp_path: Path) -> None:
    out = tmp_path / "b"
    batches = _batches(fake)
    batches.polls = 10**6  # never finishes while the first process polls

    async def stop_once_submitted() -> None:
        task = asyncio.create_task(arun(config, out=out, batch=True))
        while not (out / MANIFEST).exists() or not json.loads((out / MANIFEST).read_text()).get("batches"):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # a few polls
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_once_submitted())
    stopped = json.loads((out / MANIFEST).read_text())
    assert stopped["state"] == "interrupted" and stopped["batches"][0]["state"] == "open"
    assert load_run(out).records == () and batches.retrievals >= 1

    batches.polls = 0
    result = run(config, out=out, batch=True)
    assert len(batches.created) == 1, "the restarted run polled the batch it had submitted"
    assert result.complete and result.statuses == {"ok": CELLS}
    assert result.manifest["batches"][0]["id"] == batches.created[0]["id"]
    assert _chat_requests(fake) == 0


def test_max_polls_ends_the_run_partial_with_the_batch_open(fake: FakeProvider, config: Config,
                                                            tmp_path: Path) -> None:
    _batches(fake).polls = 10**6
    result = run(config, out=tmp_path / "b", batch=True, max_polls=2)
    assert result.manifest["state"] == "partial" and result.manifest["stopped_by"] == "batch"
    assert "12 cell(s) wait in open batches" in str(result.partial_reason)
    assert _batches(fake).retrievals == 2 and result.records == ()

    said: list[str] = []
    run(config, out=tmp_path / "b", notice=said.append)  # without --batch: warned that the open batch is ignored
    assert any("batches still open" in line and "paid twice" in line for line in said)


def test_chunks_keep_within_the_request_and_byte_limits() -> None:
    lines = [(str(n), b"x" * 10 + b"\n") for n in range(7)]
    assert [len(part) for part in chunks(lines, most=3, size=1000)] == [3, 3, 1]
    assert [len(part) for part in chunks(lines, most=100, size=25)] == [2, 2, 2, 1]
    from haystack_eval.errors import ConfigError

    with pytest.raises(ConfigError, match="over the 5-byte limit of a batch"):
        chunks(lines, most=100, size=5)


@pytest.mark.parametrize("key", [(1000, 0.0, 0), (128000, 12.5, 3), (4096, 100 / 3, 11), (2000, 1e-05, 0)])
def test_custom_ids_name_their_cell_in_the_characters_anthropic_allows(key: tuple[int, float, int]) -> None:
    text = custom_id(key)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", text), text
    assert _cell(text) == key
