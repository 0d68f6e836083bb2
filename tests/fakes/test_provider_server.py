"""The fake provider server, driven by the real openai and anthropic SDKs over 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

# The SDKs are not among the project's test extras yet; without them there is nothing to drive the fake with.
pytest.importorskip("openai", minversion="3")
pytest.importorskip("anthropic", minversion="2")

import anthropic
import openai

from tests.fakes.provider_server import FakeProvider, FaultPlan, default_answer, split_prompt

T = TypeVar("T")
Factory = Callable[..., FakeProvider]

NEEDLE = "The access code for the north wing of the Quillon archive is 4417093."
QUESTION = "What is the access code for the north wing of the Quillon archive?"
FILLER = "Rain fell on the town all morning. The baker opened late! Was the bridge closed? Nobody knew.\n"
SYSTEM = "You are a careful reader."


def prompt(filler_repeats: int = 20, needle_at: int = 7) -> str:
    """A user message in the shape of haystack-eval's default template, with the needle inside."""
    parts = [FILLER] * filler_repeats
    parts.insert(needle_at, NEEDLE + " ")
    return f"Read the document.\n\n<document>\n{''.join(parts)}</document>\n\nQuestion: {QUESTION}\nAnswer briefly."


def messages(text: str | None = None) -> list[Any]:
    """One user message (typed loosely: each SDK has its own TypedDict for it)."""
    return [{"role": "user", "content": prompt() if text is None else text}]


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion (pytest-asyncio is not installed)."""
    async def main() -> T:
        return await make()
    return asyncio.run(main())


def oai(server: FakeProvider, timeout: float = 5.0) -> openai.AsyncOpenAI:
    """An OpenAI client pointed at the fake, without retries."""
    return openai.AsyncOpenAI(api_key="test-key", base_url=server.openai_base_url, max_retries=0, timeout=timeout)


def ant(server: FakeProvider, timeout: float = 5.0) -> anthropic.AsyncAnthropic:
    """An Anthropic client pointed at the fake, without retries."""
    return anthropic.AsyncAnthropic(api_key="test-key", base_url=server.anthropic_base_url, max_retries=0,
                                    timeout=timeout)


async def chat(server: FakeProvider, text: str | None = None, timeout: float = 5.0, **kw: Any) -> Any:
    """One chat completion."""
    if "max_tokens" not in kw:
        kw.setdefault("max_completion_tokens", 64)
    async with oai(server, timeout) as client:
        return await client.chat.completions.create(model="gpt-fake", messages=messages(text), **kw)


async def message(server: FakeProvider, text: str | None = None, timeout: float = 5.0, **kw: Any) -> Any:
    """One Anthropic message."""
    async with ant(server, timeout) as client:
        kw.setdefault("max_tokens", 64)
        return await client.messages.create(model="claude-fake", system=SYSTEM, messages=messages(text), **kw)


@pytest.fixture
def fake() -> Iterator[Factory]:
    """Start FakeProviders with the given options; stop them all after the test."""
    started: list[FakeProvider] = []

    def make(**kw: Any) -> FakeProvider:
        started.append(FakeProvider(**kw).start())
        return started[-1]

    yield make
    for server in started:
        server.stop()


def test_openai_success_parses_with_text_usage_and_request_id(fake: Factory) -> None:
    server = fake()
    completion = run(lambda: chat(server))
    assert completion._request_id == "req_1"  # the SDK reads it from the x-request-id header
    assert completion.id == "chatcmpl-1" and completion.model == "gpt-fake"
    assert completion.choices[0].message.content == NEEDLE
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == len(prompt()) // 4
    assert completion.usage.completion_tokens == len(NEEDLE.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    recorded = server.requests[0]
    assert (recorded.method, recorded.path, recorded.fault) == ("POST", "/v1/chat/completions", "ok")
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.body["max_completion_tokens"] == 64
    assert recorded.finished is not None and recorded.started <= recorded.finished


def test_openai_max_tokens_cuts_the_answer_to_that_many_words(fake: Factory) -> None:
    completion = run(lambda: chat(fake(), max_tokens=3))
    assert completion.choices[0].message.content == "The access code"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


def test_anthropic_success_with_thinking_first(fake: Factory) -> None:
    server = fake(thinking_first=True)
    msg = run(lambda: message(server))
    assert msg._request_id == "req_1"  # the SDK reads it from the request-id header
    assert [block.type for block in msg.content] == ["thinking", "text"]
    assert msg.content[0].signature == "fake-signature"
    assert msg.content[1].text == NEEDLE
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == (len(SYSTEM) + len(prompt())) // 4
    assert msg.usage.output_tokens == len(NEEDLE.split())
    headers = server.requests[0].headers  # this SDK version sends the key as a bearer token
    assert "test-key" in headers.get("x-api-key", headers.get("authorization", ""))
    assert "anthropic-version" in headers


@pytest.mark.parametrize("thinking_first", [False, True])
@pytest.mark.parametrize("max_tokens", [64, 2])
def test_anthropic_stream_rebuilds_the_same_message(fake: Factory, thinking_first: bool, max_tokens: int) -> None:
    server = fake(thinking_first=thinking_first)

    async def both() -> tuple[Any, Any]:
        async with ant(server) as client:
            plain = await client.messages.create(model="m", messages=messages(), max_tokens=max_tokens)
            async with client.messages.stream(model="m", messages=messages(), max_tokens=max_tokens) as stream:
                texts = [text async for text in stream.text_stream]
                return plain, (texts, await stream.get_final_message())

    plain, (texts, streamed) = run(both)
    assert len(texts) > 1 or max_tokens <= 1  # the text arrives in several deltas
    # The streamed message is a ParsedMessage whose text blocks add parsed_output=None; all else must match.
    assert streamed.model_dump(exclude={"id", "content"}) == plain.model_dump(exclude={"id", "content"})
    assert [b.model_dump(exclude={"parsed_output"}) for b in streamed.content] == [b.model_dump() for b in plain.content]
    assert "".join(texts) == plain.content[-1].text


def test_count_tokens_and_models(fake: Factory) -> None:
    server = fake(context_window=131072)

    async def calls() -> tuple[Any, Any]:
        async with ant(server) as a, oai(server) as o:
            count = await a.messages.count_tokens(model="m", system=SYSTEM, messages=messages())
            return count, await o.models.list()

    count, models = run(calls)
    assert count.input_tokens == (len(SYSTEM) + len(prompt())) // 4
    assert [m.id for m in models.data] == ["fake-model"]
    assert models.data[0].model_extra == {"max_model_len": 131072}
    with urllib.request.urlopen(fake().url + "/v1/models") as response:  # no context window: no max_model_len
        assert "max_model_len" not in json.loads(response.read())["data"][0]


def test_unknown_path_is_a_404_json_error(fake: Factory) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(fake().url + "/v2/nothing")
    with info.value as error:
        assert error.code == 404
        assert json.loads(error.read())["error"]["code"] == "not_found"


def test_default_answer_finds_the_needle_sentence() -> None:
    document, question = split_prompt(prompt(filler_repeats=2000, needle_at=1234))
    assert question == QUESTION
    assert default_answer(document, question) == NEEDLE
    assert default_answer(document, "Who painted the lighthouse purple?") == "I don't know."
    assert split_prompt("no question here") == ("no question here", "")
    assert split_prompt("Question: first?\nsome text. Question: inline\nQuestion: last?\ntail")[1] == "last?"


def test_custom_answer_gets_document_and_question(fake: Factory) -> None:
    seen: list[tuple[str, str]] = []

    def answer(document: str, question: str) -> str:
        seen.append((document, question))
        return "forty two"

    server = fake(answer=answer)
    assert run(lambda: chat(server)).choices[0].message.content == "forty two"
    assert seen[0][1] == QUESTION and NEEDLE in seen[0][0]


OPENAI_FAULTS: list[tuple[str, type[Exception], int | None]] = [
    ("429", openai.RateLimitError, 429),
    ("408", openai.APIStatusError, 408),
    ("409", openai.ConflictError, 409),
    ("500", openai.InternalServerError, 500),
    ("503", openai.InternalServerError, 503),
    ("529", openai.InternalServerError, 529),
    ("context_length", openai.BadRequestError, 400),
    ("auth", openai.AuthenticationError, 401),
    ("quota", openai.RateLimitError, 429),
    ("invalid", openai.BadRequestError, 400),
    ("drop", openai.APIConnectionError, None),
    ("malformed", json.JSONDecodeError, None),  # observed: the SDK lets the JSON parser's error through
]
ANTHROPIC_FAULTS: list[tuple[str, type[Exception], int | None]] = [
    ("429", anthropic.RateLimitError, 429),
    ("408", anthropic.RequestTimeoutError, 408),
    ("409", anthropic.ConflictError, 409),
    ("500", anthropic.InternalServerError, 500),
    ("503", anthropic.ServiceUnavailableError, 503),
    ("529", anthropic.OverloadedError, 529),
    ("context_length", anthropic.BadRequestError, 400),
    ("auth", anthropic.AuthenticationError, 401),
    ("quota", anthropic.BadRequestError, 400),
    ("invalid", anthropic.BadRequestError, 400),
    ("drop", anthropic.APIConnectionError, None),
    ("malformed", json.JSONDecodeError, None),
]


@pytest.mark.parametrize(("fault", "exc_type", "status"), OPENAI_FAULTS)
def test_openai_fault_raises(fake: Factory, fault: str, exc_type: type[Exception], status: int | None) -> None:
    server = fake(faults=FaultPlan(script=[fault], retry_after="7"))
    with pytest.raises(exc_type) as info:
        run(lambda: chat(server))
    assert type(info.value) is exc_type
    assert getattr(info.value, "status_code", None) == status
    assert server.requests[0].fault == fault
    if fault == "429":
        assert info.value.response.headers["retry-after"] == "7"  # type: ignore[attr-defined]
    if fault == "quota":
        assert info.value.code == "insufficient_quota"  # type: ignore[attr-defined]
        assert "retry-after" not in info.value.response.headers  # type: ignore[attr-defined]
    if fault == "context_length":
        assert info.value.code == "context_length_exceeded"  # type: ignore[attr-defined]
        assert "maximum context length is 8192 tokens" in str(info.value)


@pytest.mark.parametrize(("fault", "exc_type", "status"), ANTHROPIC_FAULTS)
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_fault_raises(fake: Factory, fault: str, exc_type: type[Exception], status: int | None,
                                stream: bool) -> None:
    server = fake(faults=FaultPlan(script=[fault], retry_after="7"))

    async def call() -> Any:
        async with ant(server) as client:
            if not stream:
                return await client.messages.create(model="m", messages=messages(), max_tokens=64)
            async with client.messages.stream(model="m", messages=messages(), max_tokens=64) as events:
                return await events.get_final_message()

    with pytest.raises(exc_type) as info:
        run(call)
    assert type(info.value) is exc_type
    assert getattr(info.value, "status_code", None) == status
    if status is not None:
        error = info.value.body["error"]  # type: ignore[attr-defined]
        assert error["type"] == {429: "rate_limit_error", 529: "overloaded_error", 401: "authentication_error",
                                 400: "invalid_request_error"}.get(status, "api_error")
    if fault == "429":
        assert info.value.response.headers["retry-after"] == "7"  # type: ignore[attr-defined]
    if fault == "context_length":
        assert "prompt is too long" in str(info.value)


def test_hang_times_out_the_client_and_stop_does_not_wait(fake: Factory) -> None:
    server = fake(faults=FaultPlan(script=["hang", "hang"], hang_s=5.0))
    with pytest.raises(openai.APITimeoutError):
        run(lambda: chat(server, timeout=0.5))
    with pytest.raises(anthropic.APITimeoutError):
        run(lambda: message(server, timeout=0.5))
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 1.0
    assert [r.fault for r in server.requests] == ["hang", "hang"]


def test_hang_answers_normally_after_hang_s(fake: Factory) -> None:
    server = fake(faults=FaultPlan(script=["hang"], hang_s=0.3))
    began = time.monotonic()
    assert run(lambda: chat(server)).choices[0].message.content == NEEDLE
    assert time.monotonic() - began >= 0.3


def test_empty_spends_the_budget_on_nothing(fake: Factory) -> None:
    server = fake(faults=FaultPlan(script=["empty", "empty"]))
    completion = run(lambda: chat(server, max_completion_tokens=50))
    assert (completion.choices[0].message.content, completion.choices[0].finish_reason) == ("", "length")
    assert completion.usage.completion_tokens == 50
    msg = run(lambda: message(server, max_tokens=40))
    assert (msg.content[0].text, msg.stop_reason, msg.usage.output_tokens) == ("", "max_tokens", 40)


def test_fault_precedence_sticky_then_script_then_rates(fake: Factory) -> None:
    plan = FaultPlan(script=["500", "ok"], sticky={"POISON": "auth"}, rates={"503": 1.0})
    server = fake(faults=plan)

    async def calls() -> None:
        async with oai(server) as client:
            for text in ["POISON here", "plain", "POISON again", "plain", "plain"]:
                try:
                    await client.chat.completions.create(model="m", messages=messages(text), max_tokens=8)
                except openai.APIStatusError:
                    pass

    run(calls)
    assert [r.fault for r in server.requests] == ["auth", "500", "auth", "ok", "503"]


def test_rates_are_seeded_and_pick_at_most_one_fault(fake: Factory) -> None:
    def faults(seed: int) -> list[str]:
        server = fake(faults=FaultPlan(rates={"429": 0.3, "500": 0.3}, seed=seed))

        async def calls() -> None:
            async with oai(server) as client:
                for _ in range(30):
                    try:
                        await client.chat.completions.create(model="m", messages=messages("x"), max_tokens=8)
                    except openai.APIStatusError:
                        pass

        run(calls)
        return [r.fault for r in server.requests]

    first = faults(seed=3)
    assert first == faults(seed=3)
    assert {"429", "500", "ok"} == set(first)


def test_a_key_and_a_model_list_are_checked_first_like_a_real_server(fake: Factory) -> None:
    server = fake(api_key="the-key", models=frozenset({"gpt-fake", "claude-fake"}), echo_key=True,
                  faults=FaultPlan(rates={"500": 1.0}))

    async def calls() -> list[Exception]:
        errors: list[Exception] = []
        for key, name in [("wrong-key", "gpt-fake"), ("the-key", "gpt-nope")]:
            async with openai.AsyncOpenAI(api_key=key, base_url=server.openai_base_url, max_retries=0) as client:
                try:
                    await client.chat.completions.create(model=name, messages=messages(), max_tokens=8)
                except openai.APIStatusError as exc:
                    errors.append(exc)
            async with anthropic.AsyncAnthropic(api_key=key, base_url=server.anthropic_base_url,
                                                max_retries=0) as other:
                try:
                    await other.messages.create(model=name.replace("gpt", "claude"), messages=messages(), max_tokens=8)
                except anthropic.APIStatusError as exc:
                    errors.append(exc)
        return errors

    wrong, wrong_anthropic, missing, missing_anthropic = run(calls)
    assert isinstance(wrong, openai.AuthenticationError) and isinstance(wrong_anthropic, anthropic.AuthenticationError)
    assert isinstance(missing, openai.NotFoundError) and isinstance(missing_anthropic, anthropic.NotFoundError)
    assert "The key sent was wrong-key." in str(wrong) and "The key sent was the-key." in str(missing_anthropic)
    assert getattr(missing, "code", None) == "model_not_found"
    assert [r.fault for r in server.requests] == ["auth", "auth", "not_found", "not_found"], "no fault drawn for them"


def test_unknown_fault_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown faults"):
        FaultPlan(script=["ok", "timeout"])


def test_concurrent_requests_are_handled_at_once(fake: Factory) -> None:
    server = fake(latency_s=0.4)

    async def many() -> list[Any]:
        async with oai(server) as client:
            return await asyncio.gather(*(
                client.chat.completions.create(model="m", messages=messages(), max_tokens=64)
                for _ in range(64)))

    began = time.monotonic()
    results = run(many)
    elapsed = time.monotonic() - began
    assert all(r.choices[0].message.content == NEEDLE for r in results)
    assert server.max_in_flight == 64
    assert elapsed < 2.5, elapsed  # 64 requests of 0.4 s each, served in parallel
    assert len({r.id for r in results}) == 64


def test_a_one_megabyte_prompt_round_trips_quickly(fake: Factory) -> None:
    server = fake()
    text = prompt(filler_repeats=11_000, needle_at=6_000)
    assert len(text) > 1_000_000
    began = time.monotonic()
    completion = run(lambda: chat(server, text))
    msg = run(lambda: message(server, text))
    assert time.monotonic() - began < 2.0
    assert completion.choices[0].message.content == NEEDLE == msg.content[0].text
    assert completion.usage.prompt_tokens == len(text) // 4
    assert server.requests[0].body["messages"][0]["content"] == text


def test_cli_prints_its_url_and_exits_cleanly_on_sigterm() -> None:
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.provider_server", "--latency", "0.01"],
                               cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/v1/models") as response:
            assert json.loads(response.read())["data"][0]["id"] == "fake-model"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=5)
        assert process.returncode == 0, stderr
        assert stderr == ""
        assert json.loads(stdout) == {"requests": 1, "max_in_flight": 1, "faults": {"ok": 1}}, "what it served"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
