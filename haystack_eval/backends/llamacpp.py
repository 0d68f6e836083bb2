"""The ``llamacpp`` backend: a GGUF model through llama-cpp-python, in a worker process, greedy decoding.

One model answers one prompt at a time, in the order the cells arrive. llama.cpp keeps the KV cache
of the previous prompt and evaluates only what follows the longest common prefix, so the sweep's
order (same length and trial, neighbouring depths) saves part of each prefill; we keep whole
512-token batches of it only, so that reuse never changes an answer, and report them as
``cached_read_tokens``. Base models get a completion prompt ending in an answer prefix; GGUFs
with a chat template get their own template applied (and, for now, no reuse).

The model lives in a worker process (``llamacpp_worker``), because llama.cpp can crash natively: a
worker that dies is replaced, and the prompt it died on is asked once more of the new worker (from an
empty cache, as a first prompt). A prompt that kills a fresh worker too is recorded as an error.
The per-request timeout applies: a worker that takes longer is stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from haystack_eval.backends.base import Capabilities, Reply, Request, Usage
from haystack_eval.backends.gguf import gguf_path, native_tokenizer
from haystack_eval.backends.llamacpp_worker import read_message, write_message
from haystack_eval.config import ModelConfig
from haystack_eval.contexts import prompt_style
from haystack_eval.errors import BackendCrashed, ConfigError, ContextTooLong, InvalidRequest, RequestTimeout

__all__ = ["LlamaCppBackend"]


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def worker_command(path: Path, n_ctx: int) -> list[str]:
    """The command line of a worker process for the model file."""
    return [sys.executable, "-m", "haystack_eval.backends.llamacpp_worker", str(path), "--n-ctx", str(n_ctx),
            "--threads", str(os.cpu_count() or 1)]


class _Died(Exception):
    """The worker process ended without replying."""


class _Worker:
    """One worker process holding the model, and the pipes to it."""

    def __init__(self, command: list[str]) -> None:
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  # its stderr, read when it dies; closed in stop()
        # the package importable as in this process (a checkout run without installing, too), and no
        # debugger started to print a backtrace when llama.cpp aborts
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "GGML_NO_BACKTRACE": "1"}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        env=env)
        self.served = 0  # prompts answered: a worker that dies on its first one would die again
        self.timed_out = False

    def ask(self, message: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        """Send one message and wait for the reply; raises _Died if the process ends first."""
        assert self.process.stdin is not None and self.process.stdout is not None
        timer = threading.Timer(timeout_s, self.expire) if timeout_s else None
        if timer is not None:
            timer.start()
        try:
            if message:
                write_message(self.process.stdin, message)
            reply = read_message(self.process.stdout)
        except (BrokenPipeError, ConnectionResetError, ValueError):
            reply = None  # the pipe broke, or was closed because the worker was stopped: it has died
        finally:
            if timer is not None:
                timer.cancel()
        if reply is None:
            self.process.wait()
            raise _Died(self.why())
        return reply

    def expire(self) -> None:
        """Stop the process now (over time, or the caller gave up); the prompt in progress gets no answer."""
        self.timed_out = True
        self.process.kill()

    def why(self) -> str:
        """How the process ended, with the last thing it said on stderr."""
        code = self.process.returncode
        if code is not None and code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode("utf-8", errors="replace").splitlines()]
        said = [line for line in lines if line]
        # a failed assertion names the spot in llama.cpp; otherwise the last line is the best clue
        clue = next((line for line in reversed(said) if "GGML_ASSERT" in line or "error" in line.lower()),
                    said[-1] if said else "")
        return f"{how}: {clue[-300:]}" if clue else how

    def stop(self) -> None:
        """End the process: close its stdin (it exits after the current prompt), then kill it if it lingers."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


class LlamaCppBackend:
    """A GGUF model in a worker process; requests are served one at a time, in arrival order."""

    def __init__(self, model: ModelConfig, *, timeout_s: float, http_client: Any = None,
                 base_dir: Path | None = None) -> None:
        del http_client  # a local process: no transport to fake
        self.model = model
        self.timeout_s = timeout_s
        self.path = gguf_path(model.name, base_dir)
        tokenizer = native_tokenizer(model.name, base_dir)
        self.style = prompt_style(model.prompt, model.provider, tokenizer.chat_template)
        self.window = model.context_window or tokenizer.context_length
        self.restarts = 0  # workers replaced after a crash
        self._worker: _Worker | None = None
        self._turn = asyncio.Lock()  # FIFO: prompts run in the order the runner sends them

    def _started(self) -> _Worker:
        """The live worker, started (and its model loaded) if there is none."""
        if self._worker is None:
            worker = _Worker(worker_command(self.path, self.window or 0))
            try:
                hello = worker.ask({}, None)
            except _Died as exc:
                worker.stop()
                raise ConfigError(f"llama.cpp cannot load {self.path.name} ({exc})", where="model.name",
                                  fix="check that the file is a complete GGUF model") from None
            if "error" in hello:
                worker.stop()
                raise ConfigError(hello["message"])
            self._worker = worker
        return self._worker

    async def capabilities(self) -> Capabilities:
        """The model's trained context length (or model.context_window); loads the model."""
        async with self._turn:
            await asyncio.to_thread(self._started)
        notes = ((f"{self.path.name}: {self.style} prompts, greedy decoding, one request at a time "
                 "(llama.cpp reuses the previous prompt's prefix)"),)
        return Capabilities(context_window=self.window, accepts_temperature=True, notes=notes)

    async def generate(self, request: Request) -> Reply:
        """The model's greedy answer; the prompt's shared prefix with the previous one is not recomputed."""
        async with self._turn:
            work = asyncio.ensure_future(asyncio.to_thread(self._generate, request))
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                # The caller gave up (its own timeout): stop the worker, and keep the turn until the
                # thread has seen it die, so that the next prompt never shares the pipes with this one.
                if self._worker is not None:
                    self._worker.expire()
                await asyncio.gather(work, return_exceptions=True)
                raise

    async def clear_cache(self) -> None:
        """Empty llama.cpp's KV cache: the next prompt is evaluated in full (for benchmarks)."""
        async with self._turn:
            await asyncio.to_thread(lambda: self._started().ask({"op": "clear"}, None))

    def _generate(self, request: Request) -> Reply:
        budget = request.settings.max_output_tokens
        if self.style == "completion":
            message = {"op": "complete", "text": request.prompt.text, "max_tokens": budget,
                       "stop": list(request.prompt.stop)}
        else:
            message = {"op": "chat", "messages": request.prompt.to_json(), "max_tokens": budget}
        started = time.perf_counter()
        reply = self._ask(message, request.settings.timeout_s)
        if "error" in reply:
            if reply["error"] == "context":
                raise ContextTooLong(reply["message"])
            raise InvalidRequest(f"llama.cpp refused the prompt: {reply['message']}")
        usage = reply["usage"]
        finish = reply["finish_reason"]
        return Reply(
            text=reply["text"].strip(),
            finish_reason=finish,
            usage=Usage(input_tokens=usage.get("prompt_tokens"), cached_read_tokens=reply["reused"],
                        output_tokens=usage.get("completion_tokens")),
            latency_s=time.perf_counter() - started,
            request_id=None,
            cut_off=finish == "length",
        )

    def _ask(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """The worker's reply; a worker that dies is replaced, and a prompt that was not its first is asked again."""
        while True:
            worker = self._started()
            try:
                reply = worker.ask(message, timeout_s)
            except _Died as exc:
                self._worker = None
                worker.stop()
                if worker.timed_out:
                    raise RequestTimeout(f"llama.cpp took longer than {timeout_s:g} s; the worker was stopped "
                                         "(raise run.timeout_s for long prompts on a slow CPU)") from None
                self.restarts += 1
                if worker.served == 0:
                    raise BackendCrashed(f"llama.cpp crashed on this prompt in a fresh worker ({exc})") from None
                continue  # the state it died in came from earlier prompts: ask a fresh worker once
            worker.served += 1
            return reply

    async def aclose(self) -> None:
        """Stop the worker."""
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await asyncio.to_thread(worker.stop)
