"""Benchmark: build every context of a 1K-1M sweep, haystack-eval versus needlehaystack 0.1.0.

    python bench/build_contexts.py            # the full sweep: 11 lengths x 11 depths x 3 trials
    python bench/build_contexts.py --quick    # lengths up to 128K, 1 trial (a minute or two)

Each tool runs in its own subprocess (so peak RSS is its own), on the same grid, with the same
tokenizer (cl100k_base, the encoding of needlehaystack's default model). needlehaystack is
installed into bench/.venv-needlehaystack on first use (its dependencies are pinned old
releases that do not belong in our environment); it reads its BPE file from a tiktoken cache
that this script seeds from our offline copy, so neither tool touches the network while timed.
Only context building is timed: no model is called.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-needlehaystack"
PEER = "needlehaystack==0.1.0"
DEPTHS = [float(d) for d in range(0, 101, 10)]


def lengths(max_length: int) -> list[int]:
    """1000, 2000, 4000, ... up to ``max_length``."""
    out, value = [], 1000
    while value <= max_length:
        out.append(value)
        value *= 2
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def work_ours(grid: list[int], trials: int) -> dict[str, Any]:
    """Build every cell with haystack-eval's builder."""
    t0 = time.perf_counter()
    from haystack_eval.contexts import ContextBuilder, load_filler, load_needles, resolve_tokenizer

    builder = ContextBuilder(resolve_tokenizer("tiktoken:cl100k_base", "openai", "gpt-3.5-turbo"),
                             load_filler("essays"), load_needles("library"))
    setup = time.perf_counter() - t0
    per_length: dict[int, list[float]] = {}
    built_tokens = 0
    for length in grid:
        for trial in range(trials):
            for depth in DEPTHS:
                start = time.perf_counter()
                ctx = builder.build(length, depth, trial)
                per_length.setdefault(length, []).append(time.perf_counter() - start)
                built_tokens += ctx.tokens
    return {"setup_s": setup, "total_s": time.perf_counter() - t0, "per_length": per_length,
            "tokens": built_tokens, "peak_rss_mb": peak_rss_mb()}


def work_peer(grid: list[int], trials: int) -> dict[str, Any]:
    """Build every cell with needlehaystack's ``generate_context``, as its sweep does."""
    t0 = time.perf_counter()
    os.environ.setdefault("NIAH_MODEL_API_KEY", "unused: no request is made")
    from needlehaystack import LLMNeedleHaystackTester
    from needlehaystack.providers import OpenAI

    tester = LLMNeedleHaystackTester(
        model_to_test=OpenAI(model_name="gpt-3.5-turbo-0125"),
        needle="\nThe access code for the north wing of the Quillon archive is 4417093.\n",
        retrieval_question="What is the access code for the north wing of the Quillon archive?",
        context_lengths=grid, document_depth_percents=[int(d) for d in DEPTHS],
        save_results=False, save_contexts=False, print_ongoing_status=False,
    )
    setup = time.perf_counter() - t0
    per_length: dict[int, list[float]] = {}
    built_tokens = 0

    async def sweep() -> None:
        nonlocal built_tokens
        for length in grid:
            for _trial in range(trials):  # it has no trials; a repeated sweep does the same work again
                for depth in DEPTHS:
                    start = time.perf_counter()
                    await tester.generate_context(length, int(depth))
                    per_length.setdefault(length, []).append(time.perf_counter() - start)
                    built_tokens += length

    asyncio.run(sweep())
    return {"setup_s": setup, "total_s": time.perf_counter() - t0, "per_length": per_length,
            "tokens": built_tokens, "peak_rss_mb": peak_rss_mb()}


def ensure_peer() -> Path:
    """The peer's interpreter, installing it into its own venv on first use."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {PEER} into {PEER_VENV} (first run only) ...", flush=True)
        venv.create(PEER_VENV, with_pip=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", PEER], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"could not install {PEER}:\n{done.stderr[-3000:]}")
    return python


def seeded_tiktoken_cache() -> str:
    """A tiktoken cache dir holding cl100k_base from our offline copy, for the peer."""
    from haystack_eval.contexts import tokenizers

    folder = Path(tempfile.mkdtemp(prefix="bench-tiktoken-"))
    tokenizers._seed(folder, "cl100k_base")
    return str(folder)


def run_worker(python: str, tool: str, grid: list[int], trials: int, env: dict[str, str]) -> dict[str, Any]:
    """Run one tool's worker in a subprocess and read its JSON result."""
    args = [python, str(Path(__file__).resolve()), "--worker", tool, "--trials", str(trials),
            "--max-length", str(max(grid))]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(results: dict[str, dict[str, Any]], grid: list[int], trials: int) -> None:
    """Print the comparison side by side."""
    cells = len(grid) * len(DEPTHS) * trials
    names = list(results)
    print(f"\nsweep: lengths {grid[0]:,}..{grid[-1]:,} (x2), {len(DEPTHS)} depths, {trials} trial(s) = {cells} cells; "
          "tokenizer cl100k_base\n")
    print(f"{'':28}" + "".join(f"{n:>24}" for n in names) + f"{'ratio':>10}")

    def row(label: str, values: list[float], fmt: str, better_low: bool) -> None:
        ratio = values[1] / values[0] if better_low else values[0] / values[1]
        print(f"{label:28}" + "".join(f"{v:>24{fmt}}" for v in values) + f"{ratio:>9.1f}x")

    totals = [results[n]["total_s"] for n in names]
    row("wall time, s", totals, ".2f", True)
    row("cells/s", [cells / t for t in totals], ",.1f", False)
    row("tokens/s (built)", [results[n]["tokens"] / results[n]["total_s"] for n in names], ",.0f", False)
    row("setup, s", [results[n]["setup_s"] for n in names], ".2f", True)
    row("peak RSS, MiB", [results[n]["peak_rss_mb"] for n in names], ",.0f", True)
    print("\nmedian ms per cell, by length:")
    for length in grid:
        medians = [1000 * statistics.median(results[n]["per_length"][str(length)]) for n in names]
        row(f"  {length:>9,}", medians, ",.1f", True)
    print("\n(ratio: how many times better haystack-eval is; tokens/s counts the tokens of the prompts built)")


def main() -> None:
    """Parse arguments; run as the coordinator or as one tool's worker."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="lengths up to 128K and 1 trial")
    parser.add_argument("--max-length", type=int, default=1_024_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--worker", choices=["ours", "needlehaystack"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.max_length, args.trials = 128_000, 1
    grid = lengths(args.max_length)
    if args.worker:
        result = (work_ours if args.worker == "ours" else work_peer)(grid, args.trials)
        print(json.dumps(result))
        return
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": seeded_tiktoken_cache()}
    peer_python = str(ensure_peer())
    results = {
        "haystack-eval": run_worker(sys.executable, "ours", grid, args.trials, env),
        "needlehaystack 0.1.0": run_worker(peer_python, "needlehaystack", grid, args.trials, env),
    }
    report(results, grid, args.trials)


if __name__ == "__main__":
    main()
