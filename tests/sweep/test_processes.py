"""Whole runs in subprocesses against the fake provider: kills, interrupts, two runs at once, and secrets."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.provider_server import FakeProvider

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
task: {{trials: 4}}
run: {{concurrency: 4, timeout_s: 10}}
"""
CELLS = 3 * 5 * 4


@pytest.fixture
def slow_server() -> Iterator[FakeProvider]:
    with FakeProvider(latency_s=0.05) as server:
        yield server


def start(config: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HAYSTACK_TEST_KEY": KEY}
    return subprocess.Popen([sys.executable, "-m", "haystack_eval", "run", str(config), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def lines(out: Path) -> list[dict[str, object]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    data = path.read_text("utf-8")
    complete = data[: data.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines()]


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.02)


def write(tmp_path: Path, server: FakeProvider) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(base_url=server.openai_base_url), encoding="utf-8")
    return path


def test_sigkill_at_random_moments_then_resume_gives_one_record_per_cell(tmp_path: Path,
                                                                         slow_server: FakeProvider) -> None:
    config, out = write(tmp_path, slow_server), tmp_path / "out"
    rng = random.Random(7)
    kills = []
    for _ in range(5):
        before = len(lines(out))
        proc = start(config, out, "-q")
        # Kill once a random number of new records is on disk (so always mid-sweep), a moment later.
        goal = before + rng.randint(1, 6)
        wait_for(lambda goal=goal, proc=proc: len(lines(out)) >= goal or proc.poll() is not None)
        time.sleep(rng.uniform(0, 0.05))
        proc.kill()
        proc.communicate()
        kills.append(len(lines(out)))
    assert kills[-1] < CELLS and kills == sorted(kills), kills
    done = start(config, out, "-q")
    _, stderr = done.communicate(timeout=120)
    assert done.returncode == 0, stderr
    records = lines(out)
    counts = Counter((r["length"], r["depth"], r["trial"]) for r in records)
    assert len(counts) == CELLS and set(counts.values()) == {1}, "exactly one record per cell, none lost or doubled"
    assert all(r["status"] == "ok" for r in records)
    assert (out / "results.jsonl").read_bytes().endswith(b"\n")


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


def test_the_key_is_sent_but_never_written_or_printed(tmp_path: Path, slow_server: FakeProvider) -> None:
    config, out = write(tmp_path, slow_server), tmp_path / "out"
    proc = start(config, out)  # with progress output, to scan it too
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert any(KEY in (r.headers.get("authorization") or "") for r in slow_server.requests)
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in stdout and KEY not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["api_key_env"] == "HAYSTACK_TEST_KEY"
