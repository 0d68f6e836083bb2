"""Benchmark: the llamacpp backend with Gemma 3 270M on this machine's CPU cores.

    python bench/local_model.py                 # both parts; medians of 3
    python bench/local_model.py --repeat 1      # quicker
    python bench/local_model.py --part overhead # only part 1

1. Overhead: prefill tokens/s of the same prompts through our backend (its worker process, the
   pipes to it included) and through plain llama-cpp-python (``Llama.create_completion``) in this
   process, alternating, the KV cache cleared before every
   prompt so that both evaluate every token. One output token each: the time is the prefill.
2. Order: the quickstart's cells (context building + generation through the backend) asked in the
   plan's prefix-sharing order and in a shuffled order (fixed seed), one after the other, repeated;
   wall time, prompt tokens evaluated vs taken from llama.cpp's cache, and how many answers differ.

Needs the local extra (``pip install '.[local]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from haystack_eval import load_config
from haystack_eval.backends import create_backend
from haystack_eval.backends.base import Request, Settings
from haystack_eval.backends.gguf import gguf_path, load_llama
from haystack_eval.config import ScoringConfig
from haystack_eval.contexts import Context, builder_for
from haystack_eval.scoring import grade
from haystack_eval.sweep import cells

QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def overhead(repeat: int) -> dict[str, float]:
    """Median prefill tokens/s, ours and plain llama-cpp-python, on the same prompts."""
    config = load_config(QUICKSTART)
    builder = builder_for(config)
    prompts = [builder.build(length, 50.0, trial) for length in (1000, 2000, 4000) for trial in range(2)]
    plain = load_llama(gguf_path(config.model.name, config.base_dir), n_ctx=32768, n_batch=512,
                       n_threads=os.cpu_count() or 1, seed=0)
    backend = create_backend(config.model, timeout_s=600, base_dir=config.base_dir)

    async def ours(ctx: Context) -> float:
        await backend.clear_cache()  # type: ignore[attr-defined]  # no prefix reuse: time the whole prefill
        started = time.perf_counter()
        await backend.generate(Request(ctx.prompt, Settings(0.0, 1, 600), ctx))
        return time.perf_counter() - started

    def theirs(ctx: Context) -> float:
        plain.reset()
        started = time.perf_counter()
        plain.create_completion(ctx.prompt.text, max_tokens=1, temperature=0.0, top_k=1)
        return time.perf_counter() - started

    async def measure() -> dict[str, float]:
        await backend.capabilities()
        theirs(prompts[0])  # warm both: first calls allocate buffers
        await ours(prompts[0])
        rates: dict[str, list[float]] = {"ours": [], "plain": []}
        tokens = sum(ctx.tokens + 1 for ctx in prompts)  # + BOS
        for _ in range(repeat):
            spent = {"ours": 0.0, "plain": 0.0}
            for ctx in prompts:  # alternate, so both see the same machine
                spent["plain"] += theirs(ctx)
                spent["ours"] += await ours(ctx)
            for name, values in rates.items():
                values.append(tokens / spent[name])
        await backend.aclose()
        return {name: statistics.median(values) for name, values in rates.items()}

    return asyncio.run(measure())


def order(repeat: int) -> dict[str, dict[str, float]]:
    """The quickstart's cells in plan order and shuffled: wall time, tokens evaluated, differing answers."""
    config = load_config(QUICKSTART)
    builder = builder_for(config)
    planned = cells(config)
    shuffled = list(planned)
    random.Random(0).shuffle(shuffled)
    settings = Settings(0.0, config.model.params.max_output_tokens, 600)

    async def sweep(order: list[Any]) -> tuple[float, int, int, dict[Any, str]]:
        backend = create_backend(config.model, timeout_s=600, base_dir=config.base_dir)
        await backend.capabilities()  # load outside the timed part
        answers: dict[Any, str] = {}
        evaluated = cached = 0
        started = time.perf_counter()
        for cell in order:
            ctx = builder.build(cell.length, cell.depth, cell.trial)
            reply = await backend.generate(Request(ctx.prompt, settings, ctx))
            answers[cell.key] = reply.text
            cached += reply.usage.cached_read_tokens or 0
            evaluated += (reply.usage.input_tokens or 0) - (reply.usage.cached_read_tokens or 0)
        wall = time.perf_counter() - started
        await backend.aclose()
        return wall, evaluated, cached, answers

    results: dict[str, list[tuple[float, int, int, dict[Any, str]]]] = {"plan order": [], "shuffled": []}
    for _ in range(repeat):
        results["plan order"].append(asyncio.run(sweep(planned)))
        results["shuffled"].append(asyncio.run(sweep(shuffled)))
    expected = {c.key: builder.build(c.length, c.depth, c.trial).answers for c in planned}
    contains = ScoringConfig()
    summary = {}
    for name, runs in results.items():
        answers = runs[0][3]
        summary[name] = {
            "wall_s": statistics.median(r[0] for r in runs),
            "evaluated": runs[0][1], "cached": runs[0][2],
            "accuracy": sum(grade(contains, expected[k], a).score or 0.0 for k, a in answers.items()) / len(answers),
        }
    first, second = results["plan order"][0][3], results["shuffled"][0][3]
    summary["shuffled"]["answers_differing"] = sum(first[k] != second[k] for k in first)
    return summary


def main() -> None:
    """Run both parts and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", choices=("both", "overhead", "order"), default="both")
    args = parser.parse_args()

    if args.part in ("both", "overhead"):
        rates = overhead(args.repeat)
        print("prefill tokens/s (median; 6 prompts of 1K-4K tokens, KV cache cleared before each)")
        print(f"  plain llama-cpp-python: {rates['plain']:8.1f}")
        print(f"  haystack-eval backend:  {rates['ours']:8.1f}   "
              f"overhead {100 * (1 - rates['ours'] / rates['plain']):+.1f}%")
    if args.part == "overhead":
        return

    summary = order(args.repeat)
    print(f"\nquickstart sweep ({len(cells(load_config(QUICKSTART)))} cells), median wall time of {args.repeat}")
    print(f"  {'':<12} {'wall s':>8} {'evaluated':>10} {'cached':>8} {'accuracy':>9}")
    for name, row in summary.items():
        print(f"  {name:<12} {row['wall_s']:8.1f} {int(row['evaluated']):>10,} {int(row['cached']):>8,} "
              f"{100 * row['accuracy']:8.1f}%")
    ratio = summary["shuffled"]["wall_s"] / summary["plan order"]["wall_s"]
    print(f"  shuffled / plan order: {ratio:.2f}x wall time; "
          f"{int(summary['shuffled']['answers_differing'])} of {len(cells(load_config(QUICKSTART)))} answers differ")


if __name__ == "__main__":
    main()
