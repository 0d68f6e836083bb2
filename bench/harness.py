"""Benchmark: the sweep harness against the fake provider, 64 requests in flight, 128K-token prompts.

    python bench/harness.py                      # both scenarios, 3 repetitions each; medians
    python bench/harness.py --repeat 1           # quicker

Scenarios: a fixed server latency of 200 ms (a stress test: 320 requests/s of 128K prompts) and
of 2 s (closer to what long prompts take at real providers). The fake server runs in its own
process with a canned answer, so the ideal throughput is in-flight / latency. The harness (our
process: context building, the openai SDK over real HTTP, scoring, the fsynced store) is measured
as achieved requests/s against that ideal, with CPU ms per request for both processes, which
share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake server lives with the tests

CONFIG = """\
name: harness
model: {{provider: openai-compatible, name: fake-model, base_url: "{url}/v1", tokenizer: tiktoken:o200k_base,
        params: {{max_output_tokens: 16}}}}
haystack: {{filler: essays, lengths: [{length}], depths: {{min: 0, max: 100, steps: 16}}}}
task: {{trials: {trials}}}
run: {{concurrency: {inflight}, max_retries: 0, timeout_s: 60}}
"""
SCENARIOS = ((0.2, 640), (2.0, 384))  # (server latency s, requests per repetition)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenario(latency: float, requests: int, inflight: int, length: int, repeat: int) -> dict[str, float]:
    """Run one scenario ``repeat`` times against a fresh fake server; medians."""
    from haystack_eval import load_config
    from haystack_eval.contexts import builder_for
    from haystack_eval.sweep import arun

    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.provider_server", "--latency", str(latency), "--canned", "It is 42."],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        folder = Path(tempfile.mkdtemp(prefix="bench-harness-"))
        path = folder / "config.yaml"
        path.write_text(CONFIG.format(url=url, length=length, trials=requests // 16, inflight=inflight), "utf-8")
        config = load_config(path)
        builder_for(config)  # tokenizer and filler load once, outside the measurement
        rates, cpu, server_cpu = [], [], []
        for rep in range(repeat):
            wall0, cpu0, server0 = time.perf_counter(), time.process_time(), process_cpu_s(server.pid)
            run = asyncio.run(arun(config, out=folder / f"run{rep}"))
            wall, used = time.perf_counter() - wall0, time.process_time() - cpu0
            assert run.statuses == {"ok": requests}, run.statuses
            rates.append(requests / wall)
            cpu.append(1000 * used / requests)
            server_cpu.append(1000 * (process_cpu_s(server.pid) - server0) / requests)
    finally:
        server.terminate()
        server.wait()
    ideal = inflight / latency
    return {"latency_ms": latency * 1000, "requests": requests, "ideal": ideal, "achieved": statistics.median(rates),
            "fraction": 100 * statistics.median(rates) / ideal, "client_cpu_ms": statistics.median(cpu),
            "server_cpu_ms": statistics.median(server_cpu), "runs": rates}


def main() -> None:
    """Run the scenarios and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--length", type=int, default=128_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import openai  # noqa: F401  - the SDK's import (0.4 s) is paid once, outside every measurement

    results = [scenario(latency, requests, args.inflight, args.length, args.repeat) for latency, requests in SCENARIOS]
    print(f"harness: {args.length:,}-token prompts, {args.inflight} in flight, median of {args.repeat} "
          f"repetition(s); {os.cpu_count()} cores shared by the harness and the fake server\n")
    rows = [("server latency, ms", "latency_ms", ",.0f"), ("requests", "requests", ",.0f"),
            ("ideal requests/s", "ideal", ",.1f"), ("achieved requests/s", "achieved", ",.1f"),
            ("fraction of ideal, %", "fraction", ".1f"), ("harness CPU ms/request", "client_cpu_ms", ".2f"),
            ("fake server CPU ms/request", "server_cpu_ms", ".2f")]
    for label, key, fmt in rows:
        print(f"{label:28}" + "".join(f"{r[key]:>14{fmt}}" for r in results))
    for r in results:
        print(f"  runs at {r['latency_ms']:.0f} ms: " + ", ".join(f"{x:.1f}" for x in r["runs"]) + " requests/s")


if __name__ == "__main__":
    main()
