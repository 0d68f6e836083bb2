"""Sweeps against the fake provider under stress: every kind of fault at once, and many requests in flight.

Shared by the short versions in ``tests/sweep/test_fault_campaign.py`` and the long ones in ``bench/faults.py``.
A campaign's ``Settings`` write its config and fault plan; ``account`` reads what happened back from the
requests the fake server recorded, grouped by cell (each cell's prompt is its own). ``load`` runs a sweep
with a fake server in its own process and samples this process's memory on the way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tests.fakes.provider_server import FaultPlan, RecordedRequest

__all__ = ["MIX", "Account", "FaultCount", "Load", "ServerProcess", "Settings", "account", "load", "rss_mib"]

# The mix, all at once: 10% 429 (with retry-after), 5% 500/503, 2% 529, 2% dropped connections,
# 1% hangs past the timeout, 1% malformed bodies.
MIX: dict[str, float] = {"429": 0.10, "500": 0.025, "503": 0.025, "529": 0.02, "drop": 0.02, "hang": 0.01,
                         "malformed": 0.01}

CONFIG = """\
name: campaign
model: {{provider: openai-compatible, name: fake-model, base_url: "{base_url}", api_key_env: HAYSTACK_TEST_KEY,
        tokenizer: tiktoken:o200k_base, params: {{max_output_tokens: 16}}}}
haystack: {{filler: essays, lengths: {lengths}, depths: {{min: 0, max: 100, steps: {depths}}}}}
task: {{trials: {trials}, seed: 0}}
run: {{concurrency: {concurrency}, max_retries: {max_retries}, retry_base_s: {retry_base_s}, \
retry_max_s: {retry_max_s}, timeout_s: {timeout_s}}}
"""


@dataclass(frozen=True)
class Settings:
    """The size of a campaign, its retry policy, and how the faults behave."""

    lengths: tuple[int, ...] = (300, 400, 500, 600)
    depths: int = 6  # few enough that no two depths of a short prompt fall on the same sentence boundary
    trials: int = 13
    concurrency: int = 32
    max_retries: int = 2
    retry_base_s: float = 0.01
    retry_max_s: float = 0.05
    timeout_s: float = 0.5
    retry_after_s: float = 0.05  # what a 429 asks for
    hang_s: float = 2.0  # how long a hang keeps the request: past the timeout
    latency_s: float = 0.0
    seed: int = 4  # its first 300 draws hold every fault of the mix at least 4 times

    @property
    def cells(self) -> int:
        """Cells of the sweep."""
        return len(self.lengths) * self.depths * self.trials

    def plan(self) -> FaultPlan:
        """The fake server's fault plan: the mix, drawn per request from a seeded generator."""
        return FaultPlan(rates=dict(MIX), seed=self.seed, retry_after=f"{self.retry_after_s:g}", hang_s=self.hang_s)

    def write_config(self, folder: Path, base_url: str) -> Path:
        """The campaign's config, written into ``folder``."""
        path = folder / "campaign.yaml"
        path.write_text(CONFIG.format(
            base_url=base_url, lengths=list(self.lengths), depths=self.depths, trials=self.trials,
            concurrency=self.concurrency, max_retries=self.max_retries, retry_base_s=self.retry_base_s,
            retry_max_s=self.retry_max_s, timeout_s=self.timeout_s), encoding="utf-8")
        return path


@dataclass(frozen=True)
class FaultCount:
    """What became of the requests that met one fault."""

    injected: int = 0  # requests that met it
    retried: int = 0  # ... after which the cell was asked again
    final: int = 0  # ... that were their cell's last attempt (the cell's record is an error)


@dataclass(frozen=True)
class Account:
    """A campaign as the fake server saw it."""

    faults: dict[str, FaultCount]
    requests: int  # generation requests
    attempts: dict[str, int]  # prompt -> requests for it (one prompt per cell)
    retry_after_waits: list[float] = field(default_factory=list)  # s from a 429 to its cell's next ask

    @property
    def retries(self) -> int:
        """Requests beyond each cell's first."""
        return self.requests - len(self.attempts)


def account(requests: Sequence[RecordedRequest]) -> Account:
    """Group the generation requests by cell and count what each fault led to."""
    by_cell: dict[str, list[RecordedRequest]] = defaultdict(list)
    for request in requests:
        if request.method == "POST" and isinstance(request.body, dict) and "messages" in request.body:
            by_cell[json.dumps(request.body["messages"])].append(request)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    waits = []
    for asks in by_cell.values():
        asks.sort(key=lambda r: r.started)
        for ask, following in zip(asks, [*asks[1:], None], strict=True):
            if ask.fault == "ok":
                continue
            counts[ask.fault]["injected"] += 1
            counts[ask.fault]["retried" if following is not None else "final"] += 1
            if ask.fault == "429" and following is not None:  # from its arrival: no race with the answer's send
                waits.append(following.started - ask.started)
    faults = {name: FaultCount(**counted) for name, counted in sorted(counts.items())}
    return Account(faults=faults, requests=sum(map(len, by_cell.values())),
                   attempts={prompt: len(asks) for prompt, asks in by_cell.items()}, retry_after_waits=waits)


class ServerProcess:
    """The fake provider in a process of its own (so that its CPU and memory are not the harness's)."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.url = ""
        self.served: dict[str, Any] = {}  # what it served, once stopped: requests, max_in_flight, faults

    def __enter__(self) -> Self:
        root = Path(__file__).resolve().parents[2]
        self._process = subprocess.Popen([sys.executable, "-m", "tests.fakes.provider_server", *self.args],
                                         cwd=root, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.send_signal(signal.SIGTERM)
        out, _ = self._process.communicate(timeout=30)
        if out.strip():
            self.served = json.loads(out.strip().splitlines()[-1])


def rss_mib() -> float:
    """This process's resident memory now, MiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(frozen=True)
class Load:
    """A sweep with many requests in flight: what it recorded, how long it took, and memory as it went."""

    cells: int
    inflight: int
    wall_s: float
    statuses: dict[str, int]
    lines: int  # lines of results.jsonl
    distinct: int  # distinct cells among them
    rss_mib: dict[int, float]  # percent done -> resident memory
    max_in_flight: int  # as the server saw it

    @property
    def second_half_growth_mib(self) -> float:
        """Resident memory gained between half way and the end."""
        return self.rss_mib[100] - self.rss_mib[50]


LOAD_CONFIG = """\
name: load
model: {{provider: openai-compatible, name: fake-model, base_url: "{url}/v1", tokenizer: tiktoken:o200k_base,
        params: {{max_output_tokens: 8}}}}
haystack: {{filler: essays, lengths: [{length}], depths: {{min: 0, max: 100, steps: 20}}}}
task: {{trials: {trials}}}
run: {{concurrency: {inflight}, max_retries: 0, timeout_s: 120}}
"""


def load(folder: Path, *, cells: int = 2000, inflight: int = 256, length: int = 2000, latency_s: float = 1.5) -> Load:
    """Run ``cells`` cells (20 depths x cells/20 trials) with ``inflight`` requests in flight against a fake
    server in its own process, sampling this process's memory every 10% of the way."""
    from haystack_eval.config import load_config
    from haystack_eval.contexts import builder_for
    from haystack_eval.sweep import Tally, arun
    from haystack_eval.sweep.plan import key_of
    from haystack_eval.sweep.store import RESULTS, read_records

    samples: dict[int, float] = {}

    def progress(tally: Tally, _record: dict[str, Any]) -> None:
        percent = 100 * tally.done // tally.total
        if percent % 10 == 0 and percent not in samples:
            samples[percent] = rss_mib()

    with ServerProcess("--latency", str(latency_s), "--canned", "It is 42.") as server:
        path = folder / "load.yaml"
        path.write_text(LOAD_CONFIG.format(url=server.url, length=length, trials=cells // 20, inflight=inflight),
                        encoding="utf-8")
        config = load_config(path)
        builder_for(config)  # the tokenizer and filler load once, before the measurement
        samples[0] = rss_mib()
        began = time.perf_counter()
        run = asyncio.run(arun(config, out=folder / "load", progress=progress))
        wall = time.perf_counter() - began
    records = read_records(folder / "load" / RESULTS)
    return Load(cells=cells, inflight=inflight, wall_s=wall, statuses=run.statuses, lines=len(records),
                distinct=len({key_of(r) for r in records}), rss_mib=samples,
                max_in_flight=int(server.served.get("max_in_flight", 0)))
