"""A sweep against the fake provider's simulated prompt cache, in the scheduler's order or a shuffled one.

Shared by tests/sweep/test_schedule.py and bench/cache.py. It goes through the real runner, store and SDK
backends; only the order of the plan and ``cache_aware`` differ between the runs it compares.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack_eval.backends import create_backend
from haystack_eval.config import Config, load_config
from haystack_eval.contexts import ContextBuilder, builder_for
from haystack_eval.sweep.plan import Plan, cells
from haystack_eval.sweep.pricing import pricer_for
from haystack_eval.sweep.runner import run_cells
from haystack_eval.sweep.schedule import CacheUse, cache_use
from haystack_eval.sweep.session import _manifest
from haystack_eval.sweep.store import RunStore
from tests.fakes.provider_server import FakeProvider

__all__ = ["Swept", "config_for", "sweep"]

CONFIG = """\
name: cache-{provider}
model: {{provider: {provider}, name: {model}, base_url: '{url}', tokenizer: tiktoken:o200k_base,
        api_key_env: FAKE_PROVIDER_KEY, params: {{max_output_tokens: 16}}}}
haystack: {{filler: essays, lengths: {lengths}, depths: {{min: 0, max: 100, steps: {depths}}}}}
task: {{trials: {trials}}}
run: {{concurrency: {concurrency}, max_retries: 0}}
"""


@dataclass(frozen=True)
class Swept:
    """What a sweep recorded and how much of its input the fake served from the cache."""

    records: list[dict[str, Any]]
    cache: CacheUse
    cost_usd: float | None


def config_for(server: FakeProvider, provider: str, model: str, folder: Path, *, lengths: list[int],
               depths: int, trials: int, concurrency: int) -> Config:
    """A config for ``provider`` pointed at the fake server (the key comes from FAKE_PROVIDER_KEY)."""
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{provider}.yaml"
    path.write_text(CONFIG.format(provider=provider, model=model, url=url, lengths=lengths, depths=depths,
                                  trials=trials, concurrency=concurrency), encoding="utf-8")
    return load_config(path)


async def _sweep(config: Config, builder: ContextBuilder, out: Path, order: list[Any], cache_aware: bool) -> Swept:
    pricer = pricer_for(config.model)
    backend = create_backend(config.model, timeout_s=config.run.timeout_s)
    store = RunStore.open(out, _manifest(config, builder, None, pricer), resume=False)
    try:
        plan = Plan(tuple(order), frozenset(), None, config.model.params.max_output_tokens)
        await run_cells(config, builder, backend, store, plan, concurrency=config.run.concurrency, pricer=pricer,
                        cache_aware=cache_aware)
        records = list(store.records())
    finally:
        store.close(state="complete")
        await backend.aclose()
    use = cache_use(config.model.provider, records)
    assert use is not None, "the fake server reports cache counts"
    costs = [r["cost_usd"] for r in records]
    return Swept(records, use, None if None in costs else sum(costs))


def sweep(config: Config, out: Path, *, shuffle: int | None = None, cache_aware: bool = True) -> Swept:
    """Run the config's sweep into ``out``: in plan order, or shuffled with seed ``shuffle``."""
    order = cells(config)
    if shuffle is not None:
        random.Random(shuffle).shuffle(order)
    return asyncio.run(_sweep(config, builder_for(config), out, order, cache_aware))
