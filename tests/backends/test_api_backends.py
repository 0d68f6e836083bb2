"""The openai, openai-compatible and anthropic backends: the real SDKs against the fake provider server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from haystack_eval.backends import Reply, Request, Settings, create_backend
from haystack_eval.backends.anthropic_messages import STREAM_ABOVE_TOKENS
from haystack_eval.backends.openai_chat import is_reasoning_model
from haystack_eval.config import ModelConfig
from haystack_eval.contexts import ContextBuilder, load_filler, load_needles
from haystack_eval.errors import (
    AuthFailed,
    BackendError,
    ConfigError,
    ConnectionDropped,
    ContextTooLong,
    MalformedReply,
    ModelNotFound,
    Overloaded,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    ServerError,
)
from tests.conftest import tokenizer
from tests.fakes.provider_server import FakeProvider, FaultPlan

BUILDER = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library"))
CTX = BUILDER.build(2_000, 50, 0)


def model(provider: str, server: FakeProvider, name: str = "fake-model", **extra: Any) -> ModelConfig:
    base = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
    return ModelConfig(provider=provider, name=name, base_url=base, api_key_env="HAYSTACK_TEST_KEY", **extra)


def ask(cfg: ModelConfig, max_output_tokens: int = 32, timeout_s: float = 10, temperature: float | None = 0.0
        ) -> Reply:
    async def go() -> Reply:
        backend = create_backend(cfg, timeout_s=timeout_s)
        try:
            return await backend.generate(Request(CTX.prompt, Settings(temperature, max_output_tokens, timeout_s), CTX))
        finally:
            await backend.aclose()

    return asyncio.run(go())


PROVIDERS = ["openai", "openai-compatible", "anthropic"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_reply_is_parsed_with_usage_and_request_id(provider: str, server: FakeProvider, keyed: str) -> None:
    reply = ask(model(provider, server))
    assert CTX.expected in reply.text  # the fake finds the needle sentence
    assert reply.finish_reason in ("stop", "end_turn") and not reply.cut_off
    assert reply.usage.input_tokens and reply.usage.output_tokens
    assert reply.request_id and reply.request_id.startswith(("req_", "chatcmpl", "msg_"))
    (request,) = server.requests
    auth = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
    assert keyed in auth, "the key from the named environment variable is sent"


def test_openai_sends_the_system_and_user_messages_and_budget(server: FakeProvider, keyed: str) -> None:
    ask(model("openai", server, name="gpt-4o"))
    body = server.requests[0].body
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["max_completion_tokens"] == 32 and body["temperature"] == 0 and "max_tokens" not in body


@pytest.mark.parametrize("name", ["o3-mini", "o1", "gpt-5", "gpt-5-mini", "gpt-5.1"])
def test_reasoning_models_get_no_temperature(server: FakeProvider, keyed: str, name: str) -> None:
    ask(model("openai", server, name=name))
    body = server.requests[0].body
    assert "temperature" not in body and body["max_completion_tokens"] == 32


def test_reasoning_model_names() -> None:
    assert all(is_reasoning_model(n) for n in ["o1", "o3", "o4-mini", "gpt-5", "gpt-5-nano", "gpt-6", "openai/o3"])
    assert not any(is_reasoning_model(n) for n in ["gpt-4o", "gpt-4.1-mini", "gpt-3.5-turbo", "omni", "gpt-50x"])


def test_compatible_servers_get_max_tokens(server: FakeProvider, keyed: str) -> None:
    ask(model("openai-compatible", server))
    body = server.requests[0].body
    assert body["max_tokens"] == 32 and "max_completion_tokens" not in body


def test_anthropic_uses_the_system_field_and_takes_text_blocks_only(keyed: str) -> None:
    with FakeProvider(thinking_first=True) as server:
        reply = ask(model("anthropic", server))
        body = server.requests[0].body
    assert CTX.expected in reply.text and "Let me look" not in reply.text
    assert isinstance(body["system"], str) and [m["role"] for m in body["messages"]] == ["user"]
    assert "stream" not in body or not body["stream"]


def test_anthropic_streams_long_budgets(keyed: str) -> None:
    with FakeProvider(thinking_first=True) as server:
        reply = ask(model("anthropic", server), max_output_tokens=STREAM_ABOVE_TOKENS + 1)
        assert server.requests[0].body.get("stream") is True
    assert CTX.expected in reply.text and "Let me look" not in reply.text


def test_anthropic_stops_sending_temperature_to_models_that_refuse_it(keyed: str) -> None:
    with FakeProvider(rejects_temperature=True) as server:
        async def two() -> list[Reply]:
            backend = create_backend(model("anthropic", server), timeout_s=5)
            settings = Settings(0.0, 32, 5)
            try:
                return [await backend.generate(Request(CTX.prompt, settings, CTX)) for _ in range(2)]
            finally:
                await backend.aclose()

        replies = asyncio.run(two())
        sent = ["temperature" in r.body for r in server.requests]
    assert all(CTX.expected in r.text for r in replies)
    assert sent == [True, False, False], "refused once, then never sent again"


def test_anthropic_sends_temperature_through_extra_body(server: FakeProvider, keyed: str) -> None:
    ask(model("anthropic", server), temperature=0.0)
    assert server.requests[0].body["temperature"] == 0.0


FAULTS = [
    ("429", RateLimited), ("500", ServerError), ("503", ServerError), ("529", Overloaded), ("408", ServerError),
    ("drop", ConnectionDropped), ("malformed", MalformedReply), ("context_length", ContextTooLong),
    ("auth", AuthFailed), ("quota", QuotaExceeded), ("not_found", ModelNotFound),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("fault", "expected"), FAULTS)
def test_every_fault_becomes_the_right_error(provider: str, fault: str, expected: type[BackendError],
                                            keyed: str) -> None:
    # echo_key: the error message quotes the key back, as some providers do; it must not reach the error
    with (FakeProvider(faults=FaultPlan(script=[fault], retry_after="2"), echo_key=True) as server,
          pytest.raises(expected) as info):
        ask(model(provider, server))
    error = info.value
    assert error.retryable == (fault in ("429", "500", "503", "529", "408", "drop", "malformed"))
    assert error.ends_run == (fault in ("auth", "quota", "not_found"))
    if fault == "429":
        assert error.retry_after == 2.0
    assert keyed not in error.problem


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_hang_is_a_timeout(provider: str, keyed: str) -> None:
    with FakeProvider(faults=FaultPlan(script=["hang"], hang_s=5)) as server, pytest.raises(RequestTimeout):
        ask(model(provider, server), timeout_s=0.5)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_empty_reply_cut_by_the_budget_says_so(provider: str, keyed: str) -> None:
    with FakeProvider(faults=FaultPlan(script=["empty"])) as server:
        reply = ask(model(provider, server))
    assert reply.text == "" and reply.cut_off


def test_a_missing_key_variable_is_a_config_error(server: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAYSTACK_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="the environment variable HAYSTACK_TEST_KEY is not set"):
        create_backend(model("openai", server), timeout_s=1)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        create_backend(ModelConfig(provider="openai", name="gpt-4o"), timeout_s=1)


def test_compatible_servers_report_their_window(keyed: str) -> None:
    async def window(server: FakeProvider) -> int | None:
        backend = create_backend(model("openai-compatible", server), timeout_s=5)
        try:
            return (await backend.capabilities()).context_window
        finally:
            await backend.aclose()

    with FakeProvider(context_window=4096) as server:
        assert asyncio.run(window(server)) == 4096


def test_ollama_gets_a_truncation_warning() -> None:
    cfg = ModelConfig(provider="openai-compatible", name="llama3", base_url="http://127.0.0.1:11434/v1")

    async def notes() -> tuple[str, ...]:
        backend = create_backend(cfg, timeout_s=0.5)
        try:
            return (await backend.capabilities()).notes
        finally:
            await backend.aclose()

    assert any("Ollama cuts prompts" in note for note in asyncio.run(notes()))


def test_a_missing_sdk_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "anthropic", None)  # what an environment without the package looks like
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    with pytest.raises(ConfigError) as info:
        create_backend(ModelConfig(provider="anthropic", name="claude-sonnet-4-5"), timeout_s=1)
    assert info.value.line() == "model.provider: the anthropic backend needs the anthropic package; pip install anthropic"
