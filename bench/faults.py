"""Benchmark: a sweep through every kind of fault at once, and a sweep with 256 requests in flight.

    python bench/faults.py                       # both scenarios (about a minute)
    python bench/faults.py --scenario campaign   # or: load

Campaign: 1,100 cells against the fake provider (in this process, so that every request it received can be
read back) with, at once, 10% 429s asking for `retry-after: 1`, 2.5% 500s, 2.5% 503s, 2% 529s, 2% dropped
connections, 1% hangs past the 2 s timeout and 1% malformed bodies; 200 ms per answer, 64 in flight, the
default retry policy (6 retries, 1 s base). It prints the tally of statuses, the wall time, and what became
of each fault class: met, retried, and how often it was a cell's last attempt (an error record).

Load: 2,000 cells of 2,000 tokens with 256 requests in flight against the fake server in its own process
(1.5 s per answer, a canned reply): the wall time, whether every record arrived, the peak in flight the
server saw, and this process's resident memory every 10% of the way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake server and the campaign live with the tests

from tests.fakes.campaign import MIX, Settings, account, load
from tests.fakes.provider_server import FakeProvider

CAMPAIGN = Settings(lengths=(500, 700, 900, 1100), depths=11, trials=25, concurrency=64, max_retries=6,
                    retry_base_s=1.0, retry_max_s=60.0, timeout_s=2.0, retry_after_s=1.0, hang_s=10.0,
                    latency_s=0.2, seed=0)


def campaign(folder: Path, settings: Settings) -> None:
    """Run the campaign and print its account."""
    from haystack_eval.config import load_config
    from haystack_eval.contexts import builder_for
    from haystack_eval.sweep import arun

    os.environ.setdefault("HAYSTACK_TEST_KEY", "bench-key")
    with FakeProvider(latency_s=settings.latency_s, faults=settings.plan()) as server:
        config = load_config(settings.write_config(folder, server.openai_base_url))
        builder_for(config)
        began = time.perf_counter()
        run = asyncio.run(arun(config, out=folder / "campaign"))
        wall = time.perf_counter() - began
        seen = account(server.requests)
    attempts = Counter(r["attempts"] for r in run.records)
    print(f"campaign: {settings.cells:,} cells, {settings.concurrency} in flight, {settings.latency_s * 1000:.0f} ms "
          f"per answer, timeout {settings.timeout_s:g} s, max_retries {settings.max_retries}")
    print("  mix: " + ", ".join(f"{name} {100 * rate:g}%" for name, rate in MIX.items()))
    print("  tally: " + ", ".join(f"{count} {status}" for status, count in sorted(run.statuses.items())))
    ideal = settings.cells * settings.latency_s / settings.concurrency
    print(f"  wall time {wall:.1f} s (without faults at best {ideal:.1f} s); {seen.requests:,} requests for "
          f"{len(seen.attempts):,} distinct prompts; {seen.retries} retries")
    print(f"  {'fault':>10} {'met':>6} {'retried':>8} {'final':>6}")
    for name, count in seen.faults.items():
        print(f"  {name:>10} {count.injected:>6} {count.retried:>8} {count.final:>6}")
    if seen.retry_after_waits:
        waits = seen.retry_after_waits
        print(f"  after a 429 (retry-after {settings.retry_after_s:g} s) the cell was asked again after "
              f"{min(waits):.2f}..{max(waits):.2f} s (median {statistics.median(waits):.2f})")
    print("  attempts per cell: " + ", ".join(f"{n}: {attempts[n]}" for n in sorted(attempts)))


def load_scenario(folder: Path) -> None:
    """Run the load scenario and print it."""
    result = load(folder, cells=2000, inflight=256, length=2000, latency_s=1.5)
    print(f"load: {result.cells:,} cells of 2,000 tokens, {result.inflight} in flight, 1.5 s per answer")
    print(f"  statuses {result.statuses}; results.jsonl: {result.lines:,} lines, {result.distinct:,} distinct cells")
    print(f"  wall time {result.wall_s:.1f} s ({result.cells / result.wall_s:.0f} requests/s; ideal "
          f"{result.inflight / 1.5:.0f}); most in flight at the server: {result.max_in_flight}")
    print("  resident MiB by % done: " + ", ".join(f"{k}%: {v:.1f}" for k, v in sorted(result.rss_mib.items())))
    print(f"  second half added {result.second_half_growth_mib:.1f} MiB; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    """Run the scenarios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("campaign", "load", "both"), default="both")
    args = parser.parse_args()
    import openai  # noqa: F401  - the SDK's import is paid once, outside every measurement

    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} before starting\n")
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        if args.scenario in ("load", "both"):  # first: its peak RSS must not be the campaign's
            load_scenario(Path(folder))
            print()
        if args.scenario in ("campaign", "both"):
            campaign(Path(folder), CAMPAIGN)


if __name__ == "__main__":
    main()
