"""A fault campaign: 312 cells through every kind of fault at once, from the wire to the record and the tally."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from haystack_eval.sweep.plan import key_of
from haystack_eval.sweep.store import RESULTS, latest, read_records
from tests.fakes.campaign import MIX, Settings, account
from tests.fakes.provider_server import FakeProvider, FaultPlan
from tests.test_cli import run

RETRYABLE = {"RateLimited", "ServerError", "Overloaded", "ConnectionDropped", "RequestTimeout", "MalformedReply"}


def test_every_cell_ends_with_one_record_whatever_the_network_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HAYSTACK_TEST_KEY", "test-key")
    # Backoff is at most 20 ms, a 429 asks for 50: a wait of 50 ms or more after a 429 is the provider's.
    settings = Settings(retry_max_s=0.02, retry_after_s=0.05)
    assert settings.cells >= 300
    out = tmp_path / "out"
    with FakeProvider(faults=settings.plan()) as server:
        config = settings.write_config(tmp_path, server.openai_base_url)
        code, stdout, stderr = run(capsys, "run", str(config), "--out", str(out), "-q", "--no-report")
        seen = account(server.requests)
        records = read_records(out / RESULTS)

        server.faults = FaultPlan()  # the network recovers: the next run asks the failed cells again
        asked_before = len(server.requests)
        again = run(capsys, "run", str(config), "--out", str(out), "-q", "--no-report")
        asked_again = len([r for r in server.requests[asked_before:] if r.path.endswith("/chat/completions")])

    cells = Counter(key_of(r) for r in records)
    assert len(cells) == settings.cells and set(cells.values()) == {1}, "exactly one record per cell"
    assert len(seen.attempts) == settings.cells, "every cell was asked (and each prompt is its cell's own)"
    assert sum(r["attempts"] for r in records) == seen.requests, "each request is counted in its cell's record"

    assert set(seen.faults) == set(MIX), "every fault of the mix was met"
    assert all(count.retried > 0 for count in seen.faults.values()), "every kind of fault was retried"
    assert max(r["attempts"] for r in records) <= settings.max_retries + 1, "retries stay within bounds"
    errors = [r for r in records if r["status"] == "error"]
    assert all(r["attempts"] == settings.max_retries + 1 and r["error"]["class"] in RETRYABLE for r in errors)
    assert sum(count.final for count in seen.faults.values()) == len(errors)
    assert len(seen.retry_after_waits) == seen.faults["429"].retried
    assert min(seen.retry_after_waits) >= settings.retry_after_s, "every 429's retry-after was honoured"

    statuses = Counter(r["status"] for r in records)
    assert code == (1 if errors else 0), stderr
    assert stdout.startswith(f"campaign: {settings.cells} cells: accuracy ")
    assert f"; {statuses['ok']} ok, {len(errors)} error, 0 truncated, 0 skipped;" in stdout, "the printed tally"
    print(stdout.strip())
    print(f"{seen.requests} requests, {seen.retries} retries; " + ", ".join(
        f"{name}: {c.injected} met, {c.retried} retried, {c.final} final" for name, c in seen.faults.items()))

    assert again[0] == 0, again[2]
    assert asked_again == len(errors), "the next run asks exactly the cells that ended in an error"
    newest = latest(read_records(out / RESULTS))
    assert len(newest) == settings.cells and {r["status"] for r in newest.values()} == {"ok"}
