"""What requests cost: prices from the config's ``model.prices`` or the bundled ``genai-prices`` data, and budgets.

Providers count cached tokens differently, so usage is first put into one convention (``Tokens``):
``input`` is every prompt token, those read from and written to the prompt cache included. OpenAI's
``prompt_tokens`` already are (its ``cached_tokens`` are a part of them); Anthropic's ``input_tokens``
leave out ``cache_read_input_tokens`` and ``cache_creation_input_tokens``, which are added back.

A local model (llamacpp) and the scripted one cost nothing: 0.0, honestly, since nothing is billed.
A model the price data does not know costs None (unknown), never a guess. ``genai-prices`` is used
only through its bundled snapshot: it fetches newer prices only when asked to (``UpdatePrices``),
which this module never does, so pricing makes no network request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from haystack_eval.backends import Usage
from haystack_eval.config import ModelConfig, ModelPrices

__all__ = ["FREE_PROVIDERS", "Budget", "Pricer", "Tokens", "pricer_for", "tokens_of"]

FREE_PROVIDERS = frozenset({"llamacpp", "scripted"})
_BATCH = {"processing": "batch"}  # genai-prices' price context of batch requests
_BATCH_DISCOUNT = 0.5  # both OpenAI's Batch API and Anthropic's Message Batches bill half
_PER = 1_000_000


@dataclass(frozen=True)
class Tokens:
    """Token counts of a request in one convention: ``input`` counts every prompt token, cached ones included."""

    input: int
    cached_read: int = 0
    cache_write: int = 0
    output: int = 0


def tokens_of(provider: str, usage: Usage) -> Tokens | None:
    """A reply's usage in the one convention; None when the provider reported no input or output count."""
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    read, write = usage.cached_read_tokens or 0, usage.cache_write_tokens or 0
    # Anthropic's input_tokens are only the tokens after the last cache breakpoint.
    total = usage.input_tokens + read + write if provider == "anthropic" else usage.input_tokens
    return Tokens(total, read, write, usage.output_tokens)


class Pricer:
    """Prices one model's requests in USD: ``cost`` is None when its prices are unknown."""

    def __init__(self, source: str, *, flat: ModelPrices | None = None, free: bool = False,
                 model: Any = None, provider: Any = None, batch_variant: bool = False,
                 rates: Mapping[str, float | None] | None = None, note: str | None = None) -> None:
        self.source = source  # where the prices come from, for the estimate and the manifest
        self.note = note  # what to tell the user once (prices unknown), or None
        self._flat, self._free, self._model, self._provider = flat, free, model, provider
        self._batch_variant = batch_variant  # the data holds batch prices (else half the plain ones)
        self.rates = dict(rates or {})  # USD per million tokens, as shown; tiers above a length are not shown

    @property
    def known(self) -> bool:
        """Whether requests can be priced."""
        return self._free or self._flat is not None or self._model is not None

    def cost(self, tokens: Tokens, *, batch: bool = False) -> float | None:
        """USD for one request's tokens (``batch``: sent through a provider's batch API)."""
        if self._free:
            return 0.0
        if self._flat is not None:
            usd = _flat_cost(self._flat, tokens)
            return round(usd * _BATCH_DISCOUNT if batch else usd, 10)
        if self._model is None:
            return None
        import genai_prices

        usage = genai_prices.Usage(input_tokens=tokens.input, cache_read_tokens=tokens.cached_read,
                                   cache_write_tokens=tokens.cache_write, output_tokens=tokens.output)
        context = _BATCH if batch and self._batch_variant else None
        usd = float(self._model.calc_price(usage, self._provider, price_context=context).total_price)
        return round(usd * _BATCH_DISCOUNT if batch and not self._batch_variant else usd, 10)

    def usage_cost(self, provider: str, usage: Usage) -> float | None:
        """USD for a reply's reported usage; None when unknown (no prices, or no counts reported)."""
        if self._free:
            return 0.0
        tokens = tokens_of(provider, usage)
        return None if tokens is None else self.cost(tokens)

    def to_json(self) -> dict[str, Any]:
        """The prices in use, JSON-ready (for the manifest and ``estimate --json``)."""
        return {"source": self.source, "known": self.known, **self.rates}


def _flat_cost(prices: ModelPrices, tokens: Tokens) -> float:
    cached = prices.input if prices.cached_input is None else prices.cached_input
    write = prices.input if prices.cache_write is None else prices.cache_write
    plain = max(0, tokens.input - tokens.cached_read - tokens.cache_write)
    return (plain * prices.input + tokens.cached_read * cached + tokens.cache_write * write
            + tokens.output * prices.output) / _PER


def pricer_for(model: ModelConfig) -> Pricer:
    """The pricer of a model: ``model.prices`` when set, 0 for local models, else the bundled genai-prices data."""
    name = f"{model.provider}/{model.name}"
    if model.prices is not None:
        p = model.prices
        flat: dict[str, float | None] = {
            "input": p.input, "cached_input": p.input if p.cached_input is None else p.cached_input,
            "cache_write": p.input if p.cache_write is None else p.cache_write, "output": p.output}
        return Pricer("model.prices", flat=p, rates=flat)
    if model.provider in FREE_PROVIDERS:
        return Pricer("local model: nothing is billed", free=True,
                      rates={"input": 0.0, "cached_input": 0.0, "cache_write": 0.0, "output": 0.0})
    import genai_prices

    data = f"genai-prices {version('genai-prices')}"
    # openai-compatible servers are priced when the base URL is a known API (OpenRouter, Groq, ...)
    where: dict[str, Any] = ({"provider_api_url": model.base_url} if model.provider == "openai-compatible"
                             else {"provider_id": model.provider})
    probe = genai_prices.Usage(input_tokens=_PER, output_tokens=_PER)
    try:
        found = genai_prices.calc_price(probe, model.name, **where)
    except (LookupError, ValueError):
        unknown = (f"{data} has no price for {name}; its records get cost_usd null; set model.prices "
                   "(USD per million tokens: input, output, cached_input, cache_write) to price them")
        return Pricer(f"{data} has no price for {name}", note=unknown)
    batch = found.model.calc_price(probe, found.provider, price_context=_BATCH).total_price
    price = found.model_price
    rates: dict[str, float | None] = {key: _rate(getattr(price, attr)) for key, attr in (
        ("input", "input_mtok"), ("cached_input", "cache_read_mtok"), ("cache_write", "cache_write_mtok"),
        ("output", "output_mtok"))}
    rates["cached_input"] = rates["cached_input"] if rates["cached_input"] is not None else rates["input"]
    rates["cache_write"] = rates["cache_write"] if rates["cache_write"] is not None else rates["input"]
    return Pricer(f"{data}: {found.provider.id} {found.model.id}", model=found.model, provider=found.provider,
                  batch_variant=batch < found.total_price, rates=rates)


def _rate(price: Any) -> float | None:
    """A price per million tokens as a number (a tiered price by its base tier)."""
    if price is None:
        return None
    return float(getattr(price, "base", price))


@dataclass
class Budget:
    """A spending cap: a cell is sent while spent + in flight + its own estimate stays within ``limit``."""

    limit: float
    spent: float = 0.0
    reserved: float = 0.0  # estimates of the cells in flight
    refused: float | None = None  # the estimate of the first cell that did not fit; nothing is sent after it
    scale: float = 1.0  # reported / counted prompt tokens, at least 1: the provider's tokenizer may count more

    def admit(self, estimate: float) -> bool:
        """Reserve a cell's estimate if it fits; after the first refusal, refuse everything."""
        if self.refused is not None:
            return False
        if self.spent + self.reserved + estimate > self.limit:
            self.refused = estimate
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, cost: float) -> None:
        """A cell finished: its reservation becomes what it cost."""
        self.reserved -= estimate
        self.spent += cost
