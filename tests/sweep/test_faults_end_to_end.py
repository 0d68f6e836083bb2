"""Faults from the wire to the record: the real SDKs, the fake server, the runner and the store together."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from haystack_eval.config import load_config
from haystack_eval.contexts import builder_for
from haystack_eval.sweep import arun
from tests.fakes.provider_server import FakeProvider, FaultPlan

CONFIG = """\
name: faults
model: {{provider: {provider}, name: fake-model, base_url: "{base_url}", api_key_env: HAYSTACK_TEST_KEY,
        tokenizer: tiktoken:o200k_base, params: {{max_output_tokens: 24}}}}
haystack: {{filler: essays, lengths: [400, 800], depths: [0, 50, 100]}}
task: {{trials: 3}}
run: {{concurrency: 4, max_retries: {retries}, retry_base_s: 0.01, retry_max_s: 0.05, timeout_s: 1}}
"""
TRANSIENT = ["429", "500", "503", "529", "408", "409", "drop", "malformed", "hang"]


@pytest.mark.parametrize("provider", ["openai-compatible", "anthropic"])
def test_each_fault_ends_in_the_right_status(provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_TEST_KEY", "test-key")
    plan = FaultPlan(script=list(TRANSIENT), retry_after="0.01", hang_s=3)
    with FakeProvider(faults=plan) as server:
        base = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
        path = tmp_path / "config.yaml"
        # Scripted faults go to whichever requests come next, so one cell may draw several in a row:
        # enough retries that none of them can exhaust a cell.
        path.write_text(CONFIG.format(provider=provider, base_url=base, retries=len(TRANSIENT)), "utf-8")
        config = load_config(path)
        builder = builder_for(config)
        # Trial 1's needle always overflows the window; trial 2's always comes back empty and cut off.
        plan.sticky = {builder.needle(1).text: "context_length", builder.needle(2).text: "empty"}
        run = asyncio.run(arun(config, out=tmp_path / "out"))
    by_trial = {t: Counter(r["status"] for r in run.records if r["trial"] == t) for t in range(3)}
    assert by_trial[0] == {"ok": 6}, "every transient fault was retried to success"
    # (sticky faults take precedence, so the scripted ones all landed on trial 0's requests)
    assert by_trial[1] == {"error": 6} and by_trial[2] == {"truncated": 6}
    errors = [r for r in run.records if r["status"] == "error"]
    assert {r["error"]["class"] for r in errors} == {"ContextTooLong"}
    assert all(r["attempts"] == 1 and r["response"] is None and r["score"] is None for r in errors)
    retried = [r for r in run.records if r["trial"] == 0 and r["attempts"] > 1]
    assert sum(r["attempts"] - 1 for r in retried) == len(TRANSIENT), "one retry per injected fault"
    assert run.accuracy == 1.0, "errors and truncations are kept out of accuracy"


def test_retries_give_up_after_max_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_TEST_KEY", "test-key")
    with FakeProvider(faults=FaultPlan(rates={"503": 1.0})) as server:
        path = tmp_path / "config.yaml"
        path.write_text(CONFIG.format(provider="openai-compatible", base_url=server.openai_base_url, retries=3),
                        "utf-8")
        run = asyncio.run(arun(load_config(path), out=tmp_path / "out"))
        asked = len([r for r in server.requests if r.path.endswith("/chat/completions")])
    assert run.statuses == {"error": 18}
    assert all(r["attempts"] == 4 and r["error"] == {"class": "ServerError", "status": 503,
                                                     "message": r["error"]["message"]} for r in run.records)
    assert asked == 18 * 4
