"""Prices: genai-prices' numbers by hand, each provider's usage convention, the override, local and unknown models."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from haystack_eval.backends import Usage
from haystack_eval.config import ModelConfig, ModelPrices, load_config
from haystack_eval.sweep import arun
from haystack_eval.sweep.pricing import Budget, Tokens, pricer_for, tokens_of
from tests.fakes.provider_server import FakeProvider

CACHED, WRITTEN = 60, 25  # prompt tokens the fake server reports as read from / written to the cache


def rates(provider: str, model: str) -> dict[str, float]:
    """The model's prices per million tokens as the installed genai-prices data holds them (base tier)."""
    price = genai_prices.calc_price(genai_prices.Usage(input_tokens=1, output_tokens=1), model,
                                    provider_id=provider).model_price

    def base(value: Any) -> float:
        return float(value.base if hasattr(value, "base") else value)

    out = {"input": base(price.input_mtok), "output": base(price.output_mtok),
           "cached": base(price.cache_read_mtok)}
    if price.cache_write_mtok is not None:
        out["write"] = base(price.cache_write_mtok)
    return out


def test_an_openai_model_costs_what_the_price_data_says() -> None:
    r = rates("openai", "gpt-4o")
    assert r["cached"] < r["input"], "the test needs a model with a cached-input discount"
    pricer = pricer_for(ModelConfig(provider="openai", name="gpt-4o"))
    tokens = Tokens(input=10_000, cached_read=4_096, output=50)
    by_hand = ((10_000 - 4_096) * r["input"] + 4_096 * r["cached"] + 50 * r["output"]) / 1e6
    assert pricer.cost(tokens) == pytest.approx(by_hand, rel=1e-9)
    assert pricer.source.startswith("genai-prices ") and pricer.known and pricer.note is None


def test_an_anthropic_model_costs_what_the_price_data_says_cache_writes_included() -> None:
    r = rates("anthropic", "claude-sonnet-4-5")
    assert r["write"] > r["input"] > r["cached"]
    pricer = pricer_for(ModelConfig(provider="anthropic", name="claude-sonnet-4-5"))
    tokens = Tokens(input=20_000, cached_read=8_000, cache_write=2_000, output=100)
    by_hand = (10_000 * r["input"] + 8_000 * r["cached"] + 2_000 * r["write"] + 100 * r["output"]) / 1e6
    assert pricer.cost(tokens) == pytest.approx(by_hand, rel=1e-9)


def test_a_long_anthropic_prompt_is_priced_at_its_tier_cache_reads_counted_toward_it() -> None:
    price = genai_prices.calc_price(genai_prices.Usage(input_tokens=1, output_tokens=1), "claude-sonnet-4-5",
                                    provider_id="anthropic").model_price
    tiered: dict[str, Any] = {name: getattr(price, name) for name in ("input_mtok", "cache_read_mtok", "output_mtok")}
    assert all(hasattr(p, "tiers") for p in tiered.values()), "the test needs a model with long-prompt tiers"
    start = tiered["input_mtok"].tiers[0].start
    # Anthropic reports 1,000 uncached input tokens and the rest as cache reads: the whole prompt is past the tier.
    usage = Usage(input_tokens=1_000, cached_read_tokens=start, output_tokens=10)
    top = {name: float(p.tiers[0].price) for name, p in tiered.items()}
    by_hand = (1_000 * top["input_mtok"] + start * top["cache_read_mtok"] + 10 * top["output_mtok"]) / 1e6
    pricer = pricer_for(ModelConfig(provider="anthropic", name="claude-sonnet-4-5"))
    assert pricer.usage_cost("anthropic", usage) == pytest.approx(by_hand, rel=1e-9)


def test_batch_prices_come_from_the_data_or_are_half() -> None:
    tokens = Tokens(input=10_000, output=50)
    for provider, model in (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5")):
        usage = genai_prices.Usage(input_tokens=10_000, output_tokens=50)
        expected = float(genai_prices.calc_price(usage, model, provider_id=provider,
                                                 price_context={"processing": "batch"}).total_price)
        pricer = pricer_for(ModelConfig(provider=provider, name=model))
        plain, batched = pricer.cost(tokens), pricer.cost(tokens, batch=True)
        assert plain is not None and batched == pytest.approx(expected, rel=1e-9)
        assert batched == pytest.approx(plain / 2), "both providers bill batches at half price"


def test_the_override_replaces_the_data_and_bills_unset_cache_rates_as_input() -> None:
    prices = ModelPrices(input=2.0, output=8.0, cached_input=0.5)
    pricer = pricer_for(ModelConfig(provider="openai", name="gpt-4o", prices=prices))
    assert pricer.source == "model.prices"
    assert pricer.cost(Tokens(1_000, 400, 0, 10)) == pytest.approx((600 * 2 + 400 * 0.5 + 10 * 8) / 1e6)
    assert pricer.cost(Tokens(1_000, 0, 300, 0)) == pytest.approx(1_000 * 2 / 1e6), "no write premium assumed"
    assert pricer.cost(Tokens(1_000, 0, 0, 10), batch=True) == pytest.approx((1_000 * 2 + 10 * 8) / 2e6)
    unknown_name = pricer_for(ModelConfig(provider="openai-compatible", name="my-model",
                                          base_url="http://127.0.0.1:9/v1", prices=prices))
    assert unknown_name.known and unknown_name.cost(Tokens(1_000_000)) == pytest.approx(2.0)


@pytest.mark.parametrize("provider", ["llamacpp", "scripted"])
def test_a_local_model_costs_nothing(provider: str) -> None:
    pricer = pricer_for(ModelConfig.model_validate({"provider": provider, "name": "anything"}))
    assert pricer.known and pricer.cost(Tokens(1_000_000, output=1_000)) == 0.0
    assert pricer.usage_cost(provider, Usage()) == 0.0, "nothing is billed even when nothing was counted"


@pytest.mark.parametrize(("provider", "name", "base_url"), [
    ("openai", "my-finetune-2031", None),
    ("openai-compatible", "llama-local", "http://127.0.0.1:8000/v1"),  # a server of one's own (or a proxy)
])
def test_an_unknown_model_costs_none_and_says_how_to_price_it(provider: str, name: str, base_url: str | None) -> None:
    pricer = pricer_for(ModelConfig.model_validate({"provider": provider, "name": name, "base_url": base_url}))
    assert not pricer.known and pricer.cost(Tokens(1_000, output=10)) is None
    assert pricer.note is not None and "model.prices" in pricer.note and name in pricer.note


def test_a_known_api_behind_openai_compatible_is_priced_by_its_url() -> None:
    pricer = pricer_for(ModelConfig(provider="openai-compatible", name="gpt-4o", base_url="https://api.openai.com/v1"))
    assert pricer.known and "openai gpt-4o" in pricer.source


def test_usage_conventions() -> None:
    openai = Usage(input_tokens=1_000, cached_read_tokens=600, output_tokens=5)  # prompt_tokens include cached
    anthropic = Usage(input_tokens=400, cached_read_tokens=600, cache_write_tokens=100, output_tokens=5)
    assert tokens_of("openai", openai) == Tokens(1_000, 600, 0, 5)
    assert tokens_of("openai-compatible", openai) == Tokens(1_000, 600, 0, 5)
    assert tokens_of("anthropic", anthropic) == Tokens(1_100, 600, 100, 5)
    assert tokens_of("openai", Usage(output_tokens=5)) is None


def test_pricing_opens_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pricer = pricer_for(ModelConfig(provider="anthropic", name="claude-haiku-4-5"))
    assert (pricer.cost(Tokens(5_000, 1_000, 500, 20)) or 0) > 0


def test_a_budget_admits_while_spent_in_flight_and_next_fit() -> None:
    budget = Budget(1.0, spent=0.5)
    assert budget.admit(0.3) and not budget.admit(0.3), "0.5 spent + 0.3 in flight + 0.3 > 1.0"
    assert not budget.admit(0.01), "after the first refusal nothing more is sent"
    budget.settle(0.3, 0.2)
    assert budget.spent == pytest.approx(0.7) and budget.reserved == pytest.approx(0.0)


CONFIG = """\
name: priced
model: {{provider: {provider}, name: {name}, base_url: '{url}', tokenizer: tiktoken:o200k_base,
        params: {{max_output_tokens: 16}}}}
haystack: {{filler: essays, lengths: [300, 600], depths: [0, 100]}}
run: {{concurrency: 2}}
"""


@pytest.fixture
def cached_server() -> Iterator[FakeProvider]:
    with FakeProvider(cached_tokens=CACHED, cache_write_tokens=WRITTEN) as server:
        yield server


def run_against(server: FakeProvider, provider: str, name: str, write_config: Callable[..., Path],
                tmp_path: Path) -> list[dict[str, Any]]:
    url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    config = load_config(write_config(CONFIG.format(provider=provider, name=name, url=url)))
    return list(asyncio.run(arun(config, out=tmp_path / provider)).records)


def test_openai_records_are_priced_from_their_usage(cached_server: FakeProvider, write_config: Callable[..., Path],
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    r = rates("openai", "gpt-4o")
    records = run_against(cached_server, "openai", "gpt-4o", write_config, tmp_path)
    assert len(records) == 4
    for record in records:
        usage = record["usage"]
        assert usage["cached_read_tokens"] == CACHED and usage["cache_write_tokens"] is None
        prompt = usage["input_tokens"]  # OpenAI's prompt_tokens: the cached ones are a part of them
        by_hand = ((prompt - CACHED) * r["input"] + CACHED * r["cached"] + usage["output_tokens"] * r["output"]) / 1e6
        assert record["cost_usd"] == pytest.approx(by_hand, rel=1e-9)


def test_anthropic_records_are_priced_from_their_usage(cached_server: FakeProvider, write_config: Callable[..., Path],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    r = rates("anthropic", "claude-sonnet-5")
    records = run_against(cached_server, "anthropic", "claude-sonnet-5", write_config, tmp_path)
    assert len(records) == 4
    for record in records:
        usage = record["usage"]
        assert (usage["cached_read_tokens"], usage["cache_write_tokens"]) == (CACHED, WRITTEN)
        rest = usage["input_tokens"]  # Anthropic's input_tokens leave out cache reads and writes
        by_hand = (rest * r["input"] + CACHED * r["cached"] + WRITTEN * r["write"]
                   + usage["output_tokens"] * r["output"]) / 1e6
        assert record["cost_usd"] == pytest.approx(by_hand, rel=1e-9)
