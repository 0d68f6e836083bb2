"""Whole runs in subprocesses against the fake provider: kills, a full disk, a read-only directory,
interrupts, two runs at once, and secrets."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import without_root_privileges
from tests.fakes.provider_server import FakeProvider, FaultPlan

KEY = "sk-haystack-proc-" + "s3cr3t" * 5

CONFIG = """\
name: processes
model:
  provider: openai-compatible
  name: fake-model
  base_url: {base_url}
  api_key_env: HAYSTACK_TEST_KEY
  tokenizer: tiktoken:o200k_base
  params: {{max_output_tokens: 24}}
haystack: {{filler: essays, lengths: [300, 600, 900], depths: {{min: 0, max: 100, steps: 5}}}}
task: {{trials: {trials}}}
run: {{concurrency: 4, timeout_s: 10, max_retries: 1, retry_base_s: 0.01, retry_max_s: 0.02}}
"""
CELLS = 3 * 5 * 4


@pytest.fixture
def slow_server() -> Iterator[FakeProvider]:
    with FakeProvider(latency_s=0.05) as server:
        yield server


def start(config: Path, out: Path, *extra: str, prefix: Sequence[str] = (), file_limit: int | None = None,
          key: str = KEY) -> subprocess.Popen[str]:
    """``haystack-eval run`` in a subprocess; ``file_limit`` caps the size of any file it writes (a full disk)."""
    env = {**os.environ, "HAYSTACK_TEST_KEY": key}
    # Ctrl-C as in a terminal: a test suite started in the background inherits SIGINT ignored, and a
    # Python started with SIGINT ignored never raises KeyboardInterrupt, so give the run Python's handler.
    setup = ["import signal", "signal.signal(signal.SIGINT, signal.default_int_handler)"]
    if file_limit is not None:  # a write past it fails with EFBIG after writing what fits (Python ignores SIGXFSZ)
        setup += ["import resource", f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_limit}, {file_limit}))"]
    python = [sys.executable, "-c", "; ".join([*setup, "from haystack_eval.cli import main", "main()"])]
    return subprocess.Popen([*prefix, *python, "run", str(config), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def lines(out: Path) -> list[dict[str, object]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    data = path.read_text("utf-8")
    complete = data[: data.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines()]


def cells(records: list[dict[str, object]]) -> Counter[tuple[object, object, object]]:
    return Counter((r["length"], r["depth"], r["trial"]) for r in records)


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.02)


def write(tmp_path: Path, server: FakeProvider, trials: int = 4) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(base_url=server.openai_base_url, trials=trials), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock's (which holds the pid of whoever last opened the directory)."""
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_sigkill_at_20_random_moments_then_resume_gives_one_record_per_cell(tmp_path: Path) -> None:
    trials = 16
    with FakeProvider(latency_s=0.2) as server:  # 4 in flight: about 20 records a second
        config, out = write(tmp_path, server, trials=trials), tmp_path / "out"
        rng = random.Random(7)
        kept: list[dict[str, object]] = []
        torn = 0
        for _ in range(20):
            proc = start(config, out, "-q", "--no-report")
            if rng.random() < 0.3:  # any moment: starting up, opening the directory, mid-request
                time.sleep(rng.uniform(0, 1.5))
            else:  # once a few more records are on disk (so mid-sweep), a moment later
                goal = len(kept) + rng.randint(1, 6)
                wait_for(lambda goal=goal, proc=proc: len(lines(out)) >= goal or proc.poll() is not None)
                time.sleep(rng.uniform(0, 0.05))
            proc.kill()
            proc.communicate()
            results = out / "results.jsonl"
            torn += results.exists() and not results.read_bytes().endswith(b"\n") and results.stat().st_size > 0
            now = lines(out)  # every whole line parses
            assert now[:len(kept)] == kept, "a record written before the kill changed or vanished"
            assert set(cells(now).values()) <= {1}, "a cell was recorded twice"
            kept = now
        assert len(kept) < 3 * 5 * trials, "the sweep must still be unfinished at the last kill"
        server.latency_s = 0.01  # the rest need not be slow
        done = start(config, out, "-q", "--no-report")
        _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    records = lines(out)
    assert records[:len(kept)] == kept
    counts = cells(records)
    assert len(counts) == 3 * 5 * trials and set(counts.values()) == {1}, "one record per cell, none lost or doubled"
    assert all(r["status"] == "ok" for r in records)
    assert (out / "results.jsonl").read_bytes().endswith(b"\n")
    print(f"20 kills, {torn} of them mid-line; {len(kept)} records before the last resume")


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_every_record(tmp_path: Path,
                                                                       slow_server: FakeProvider) -> None:
    config, out = write(tmp_path, slow_server), tmp_path / "out"
    limit = 12_000  # bytes: the manifest fits, results.jsonl fills up after a dozen records
    proc = start(config, out, "-q", "--no-report", file_limit=limit)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert stderr == (f"error: {out}: cannot write results.jsonl (File too large); free disk space or fix "
                      "permissions, then run again: finished records are kept\n")
    assert stdout == ""
    data = (out / "results.jsonl").read_bytes()
    assert data.endswith(b"\n") and len(data) <= limit, "the write that did not fit was cut back to whole lines"
    kept = lines(out)
    assert 0 < len(kept) < CELLS and set(cells(kept).values()) == {1}
    assert json.loads((out / "manifest.json").read_text())["state"] == "failed"

    done = start(config, out, "-q", "--no-report")  # space freed: the same command resumes
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    records = lines(out)
    assert records[:len(kept)] == kept
    assert len(records) == CELLS and set(cells(records).values()) == {1}


@pytest.mark.parametrize("what", ["directory", "directory and files"])
def test_a_read_only_run_directory_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path,
                                                                               slow_server: FakeProvider,
                                                                               what: str) -> None:
    config, out = write(tmp_path, slow_server), tmp_path / "out"
    slow_server.faults = FaultPlan(rates={"invalid": 0.3}, seed=1)  # a run that ends with cells to ask again
    first = start(config, out, "-q", "--no-report")
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 1, stderr
    slow_server.faults = FaultPlan()
    before = snapshot(out)
    targets = [out, *(p for p in out.iterdir() if p.is_file())] if what != "directory" else [out]
    modes = {p: p.stat().st_mode for p in targets}
    for path, mode in modes.items():
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        refused = start(config, out, "-q", "--no-report", prefix=without_root_privileges())
        stdout, stderr = refused.communicate(timeout=120)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert refused.returncode == 2, stderr
    assert stdout == "" and len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    expected = ("cannot write to the run directory (Permission denied); make it writable" if what != "directory"
                else "cannot write manifest.json (Permission denied)")
    assert stderr.startswith(f"error: {out}: {expected}"), stderr
    assert snapshot(out) == before, "nothing in the directory changed"

    again = start(config, out, "-q", "--no-report")  # writable again: the same command resumes
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    records = lines(out)
    newest = {(r["length"], r["depth"], r["trial"]): r["status"] for r in records}  # error cells were asked again
    assert len(newest) == CELLS and set(newest.values()) == {"ok"}
    old = [json.loads(line) for line in before["results.jsonl"].splitlines()]
    assert records[:len(old)] == old, "the records written before are intact"


def test_ctrl_c_stops_cleanly_with_exit_130_and_keeps_the_records(tmp_path: Path) -> None:
    with FakeProvider(latency_s=0.3) as server:
        config, out = write(tmp_path, server), tmp_path / "out"
        proc = start(config, out, "-q")
        wait_for(lambda: len(lines(out)) >= 4)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted: finished records are kept" in stderr and "Traceback" not in stderr
    kept = lines(out)
    assert 4 <= len(kept) < CELLS
    assert json.loads((out / "manifest.json").read_text())["state"] == "interrupted"


def test_a_second_run_on_the_same_directory_refuses(tmp_path: Path) -> None:
    with FakeProvider(latency_s=0.5) as server:
        config, out = write(tmp_path, server), tmp_path / "out"
        first = start(config, out, "-q")
        try:
            wait_for(lambda: (out / "manifest.json").exists())
            second = start(config, out, "-q")
            _, stderr = second.communicate(timeout=60)
        finally:
            first.kill()
            first.communicate()
    assert second.returncode == 2
    assert f"{out}: is in use by another haystack-eval run (pid {first.pid})" in stderr


def test_the_key_is_sent_but_never_written_or_printed(tmp_path: Path) -> None:
    # The server quotes the key back in every error message, as some providers and proxies do; errors are
    # recorded (a 400, 500s past their retries, malformed bodies) and rendered into the report.
    faults = FaultPlan(rates={"invalid": 0.15, "500": 0.2, "malformed": 0.05, "429": 0.1}, retry_after="0.01", seed=3)
    with FakeProvider(latency_s=0.01, faults=faults, echo_key=True) as server:
        config, out = write(tmp_path, server), tmp_path / "out"
        proc = start(config, out)  # with progress output and the report, to scan them too
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, stderr  # some cells ended in an error
        report = subprocess.run([sys.executable, "-m", "haystack_eval", "report", str(out), "--out",
                                 str(tmp_path / "shared" / "report.html")], capture_output=True, text=True,
                                env={**os.environ, "HAYSTACK_TEST_KEY": KEY}, timeout=120, check=False)
        assert report.returncode == 0, report.stderr
        sent = [r.headers.get("authorization") or "" for r in server.requests]
    elsewhere = tmp_path / "refused"
    elsewhere.mkdir()
    with FakeProvider(api_key="the-right-key", echo_key=True) as refusing:  # the server refuses the key
        refused = start(write(elsewhere, refusing), elsewhere / "out")
        refused_out, refused_err = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "the server refused the key (HTTP 401: Incorrect API key" in refused_err
    assert all(KEY in header for header in sent)
    records = lines(out)
    assert {r["status"] for r in records} >= {"ok", "error"}
    assert any("The key sent was [redacted]" in str(r["error"]) for r in records), "the server did quote it"
    assert (out / "report.html").is_file() and (tmp_path / "shared" / "report.html").is_file()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]  # run directories, reports, configs: everything
    assert len(files) >= 8
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    for text in (stdout, stderr, report.stdout, report.stderr, refused_out, refused_err):
        assert KEY not in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["api_key_env"] == "HAYSTACK_TEST_KEY"
