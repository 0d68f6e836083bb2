"""The estimate: exact tokens, shared prefixes as the plan orders cells, each provider's cache rule, batch."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from haystack_eval.config import Config, load_config
from haystack_eval.contexts import builder_for
from haystack_eval.sweep import plan_run
from haystack_eval.sweep.estimate import Estimate, _window_min, cache_rule, estimate, shared_prefix
from haystack_eval.sweep.pricing import Tokens, pricer_for

CONFIG = """\
name: est
model: {{provider: {provider}, name: {name}, tokenizer: tiktoken:o200k_base, params: {{max_output_tokens: 20}}}}
haystack: {{filler: essays, lengths: [4000, 12000], depths: {depths}}}
task: {{trials: 2}}
run: {{concurrency: {concurrency}}}
"""


def load(write_config: Callable[..., Path], provider: str = "openai", name: str = "gpt-4o",
         depths: str = "{min: 0, max: 100, steps: 6}", concurrency: int = 1) -> Config:
    return load_config(write_config(CONFIG.format(provider=provider, name=name, depths=depths,
                                                  concurrency=concurrency)))


def estimated(config: Config) -> Estimate:
    return estimate(config, builder_for(config), plan_run(config, resume=False), pricer_for(config.model))


def test_the_shared_prefix_is_what_two_prompts_really_share(write_config: Callable[..., Path]) -> None:
    config = load(write_config)
    builder = builder_for(config)
    shallow, deep = builder.build(12000, 30, 0), builder.build(12000, 70, 0)
    a, b = shallow.prompt.user, deep.prompt.user
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    counted = builder.tokenizer.count(shallow.prompt.messages[0].content) + builder.tokenizer.count(a[:common])
    shared = shared_prefix(shallow, deep)
    assert shared == shared_prefix(deep, shallow) and shared > 3000
    assert abs(shared - counted) <= 2, "the tokens before the shallower needle, which both prompts hold"
    other_trial = builder.build(12000, 70, 1)
    assert shared_prefix(shallow, other_trial) == 0, "another trial starts in another document"


def test_a_multi_depth_sweep_reads_from_the_cache_and_costs_less(write_config: Callable[..., Path]) -> None:
    result = estimated(load(write_config))
    plain, warm, batch = (result.scenarios[n] for n in ("plain", "cached_warm", "batch"))
    assert result.numbers["calls"] == 24 and plain.cached_input_tokens == 0
    assert abs(plain.input_tokens - 2 * 6 * (4000 + 12000)) <= 2 * 24, "exact tokens, within 2 of each length"
    assert warm.cached_input_tokens > 0 and warm.cached_input_tokens % 128 == 0, "OpenAI caches in 128-token steps"
    # depths 0, 20, ... 100 in rising order: each cell holds the previous one's prefix, about (k-1)/5 of it
    assert 0.25 < warm.cached_share < 0.45
    assert plain.cost_usd is not None and warm.cost_usd is not None and batch.cost_usd is not None
    assert warm.cost_usd < plain.cost_usd and batch.cost_usd == pytest.approx(plain.cost_usd / 2, abs=1e-6)
    assert plain.cost_usd_typical is not None and plain.cost_usd_typical < plain.cost_usd
    assert result.to_json()["cost_usd"] == plain.cost_usd


def test_a_single_depth_sweep_shares_nothing(write_config: Callable[..., Path]) -> None:
    result = estimated(load(write_config, depths="[50]"))
    assert all(s.cached_input_tokens == 0 for s in result.scenarios.values())


def test_more_requests_in_flight_reuse_less(write_config: Callable[..., Path]) -> None:
    warm = estimated(load(write_config, concurrency=1)).scenarios["cached"]
    busy = estimated(load(write_config, concurrency=3)).scenarios["cached"]
    assert 0 < busy.cached_input_tokens < warm.cached_input_tokens


def test_anthropic_pays_for_cache_writes(write_config: Callable[..., Path]) -> None:
    result = estimated(load(write_config, provider="anthropic", name="claude-sonnet-5"))
    warm = result.scenarios["cached_warm"]
    assert warm.cached_input_tokens > 0 and warm.cache_write_tokens > 0
    assert warm.cost_usd is not None and warm.cost_usd < (result.scenarios["plain"].cost_usd or 0)
    assert any("cache_control" in line for line in result.assumptions)


def test_cache_rules() -> None:
    from haystack_eval.config import ModelConfig

    openai = cache_rule(ModelConfig(provider="openai", name="gpt-4o"))
    assert (openai.cacheable(1023), openai.cacheable(1024), openai.cacheable(1300)) == (0, 1024, 1280)
    claude = cache_rule(ModelConfig(provider="anthropic", name="claude-sonnet-5"))
    assert claude.writes and (claude.cacheable(1023), claude.cacheable(1300)) == (0, 1300)


def test_a_local_model_costs_nothing_and_an_unknown_one_is_unknown(write_config: Callable[..., Path]) -> None:
    free = estimated(load(write_config, provider="scripted", name="oracle"))
    assert all(s.cost_usd == 0.0 for s in free.scenarios.values())
    unknown = estimated(load(write_config, name="my-finetune-2031"))
    assert all(s.cost_usd is None for s in unknown.scenarios.values())
    assert unknown.scenarios["cached_warm"].cached_input_tokens > 0, "tokens are estimated all the same"
    assert "set model.prices" in unknown.assumptions[0]


def test_the_plain_cost_is_the_sum_of_each_prompt_priced_alone(write_config: Callable[..., Path]) -> None:
    config = load(write_config)
    builder, pricer = builder_for(config), pricer_for(config.model)
    total = sum(pricer.cost(Tokens(builder.build(c.length, c.depth, c.trial).tokens, output=20)) or 0
                for c in plan_run(config, resume=False).to_ask)
    assert estimated(config).scenarios["plain"].cost_usd == pytest.approx(total, abs=1e-6)


def test_the_sliding_minimum() -> None:
    rng = random.Random(7)
    for _ in range(200):
        values = [rng.randrange(5) for _ in range(rng.randrange(1, 30))]
        width = rng.randrange(1, 8)
        brute = [min(values[max(0, k - width + 1):k + 1]) for k in range(len(values))]
        assert _window_min(values, width) == brute
