"""Prompt-cache benchmark: cached share of input and cost, scheduler vs the ideal bound vs naive order.

    python bench/cache.py                  # 10 depths x lengths 16K, 32K x 3 trials, concurrency 4
    python bench/cache.py --lengths 8000 --trials 1

Each provider style runs against the fake server's simulated prompt cache (tests/fakes/provider_server.py:
OpenAI's automatic 128-token prefix blocks from 1,024 tokens; Anthropic's explicit cache_control breakpoints),
through the real runner and SDKs, three ways, each with a fresh cache:
- scheduled: the runner's cache-aware schedule (warm-then-fan-out for OpenAI, a chain per group for Anthropic);
- plan order: the same order, no scheduling (cells go as workers free up, nothing waits for a warm prefix);
- shuffled: a random order, no scheduling (what a tool that ignores caching does).
The ideal is the sweep's bound (every cell but each group's deepest reads its whole shared prefix), the
estimate's ``cached_warm``. Costs use genai-prices' real prices for the model named; "x plain" is the
cost over the same requests' cost with no cache at all. The fake counts 4 characters a token; the ideal
is in o200k tokens, so shares agree to a point or so, not exactly.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: `python bench/cache.py`

from haystack_eval.backends import Usage
from haystack_eval.contexts import builder_for
from haystack_eval.sweep import plan_run
from haystack_eval.sweep.estimate import estimate
from haystack_eval.sweep.pricing import Tokens, pricer_for, tokens_of
from tests.fakes.cache_sweep import Swept, config_for, sweep
from tests.fakes.provider_server import FakeProvider

MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-5"}


def plain_cost(provider: str, swept: Swept, pricer_cost: object) -> float:
    """What the same requests would cost with nothing read from or written to a cache."""
    total = 0.0
    for record in swept.records:
        usage = Usage(**record["usage"])
        tokens = tokens_of(provider, usage)
        assert tokens is not None
        total += pricer_cost(Tokens(tokens.input, output=tokens.output)) or 0.0  # type: ignore[operator]
    return total


def main(argv: list[str] | None = None) -> None:
    """Run the three orders for both styles and print one table per style."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16000, 32000])
    parser.add_argument("--depths", type=int, default=10)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake takes per answer")
    parser.add_argument("--seed", type=int, default=1, help="seed of the shuffled order")
    args = parser.parse_args(argv)
    os.environ.setdefault("FAKE_PROVIDER_KEY", "sk-fake")  # the fake takes any key; the SDKs want one
    folder = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    cells = len(args.lengths) * args.depths * args.trials
    print(f"{cells} cells: lengths {args.lengths}, {args.depths} depths, {args.trials} trials, "
          f"concurrency {args.concurrency}, fake latency {args.latency} s")
    for provider, model in MODELS.items():
        print(f"\n{provider} ({model}):")
        print("| order | cached share of input | tokens written | cost USD | x plain | wall s |")
        print("|---|---:|---:|---:|---:|---:|")
        ideal_line = None
        for label, options in (("scheduled", {}), ("plan order, unscheduled", {"cache_aware": False}),
                               ("shuffled, unscheduled", {"cache_aware": False, "shuffle": args.seed})):
            with FakeProvider(prompt_cache=True, latency_s=args.latency) as server:  # a fresh cache each
                config = config_for(server, provider, model, folder / "configs", lengths=args.lengths,
                                    depths=args.depths, trials=args.trials, concurrency=args.concurrency)
                start = time.perf_counter()
                swept = sweep(config, folder / f"{provider}-{label.split(',')[0].replace(' ', '-')}", **options)
                wall = time.perf_counter() - start
            pricer = pricer_for(config.model)
            plain = plain_cost(provider, swept, pricer.cost)
            cost = swept.cost_usd or 0.0
            print(f"| {label} | {100 * swept.cache.share:.1f}% | {swept.cache.cache_write_tokens:,} | "
                  f"{cost:.4f} | {cost / plain:.3f} | {wall:.1f} |")
            if ideal_line is None:
                result = estimate(config, builder_for(config), plan_run(config, resume=False), pricer)
                warm, none = result.scenarios["cached_warm"], result.scenarios["plain"]
                ratio = (warm.cost_usd_typical or 0.0) / (none.cost_usd_typical or 1.0)
                ideal_line = (f"| ideal bound (estimate cached_warm) | {100 * warm.cached_share:.1f}% | "
                              f"{warm.cache_write_tokens:,} | {warm.cost_usd_typical or 0.0:.4f} | {ratio:.3f} | – |")
        print(ideal_line)


if __name__ == "__main__":
    main()
