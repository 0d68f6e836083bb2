"""The ``llamacpp`` backend: a GGUF model in-process through llama-cpp-python, greedy decoding.

One model answers one prompt at a time, in the order the cells arrive. llama.cpp keeps the KV cache
of the previous prompt and evaluates only what follows the longest common prefix, so the sweep's
order (same length and trial, neighbouring depths) saves part of each prefill; we keep whole
512-token batches of it only, so that reuse never changes an answer, and report them as
``cached_read_tokens``. Base models get a completion prompt ending in an answer prefix; GGUFs
with a chat template get their own template applied (and, for now, no reuse).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from haystack_eval.backends.base import Capabilities, Reply, Request, Usage
from haystack_eval.backends.gguf import gguf_path, load_llama, native_tokenizer
from haystack_eval.config import ModelConfig
from haystack_eval.contexts import prompt_style
from haystack_eval.errors import ContextTooLong, InvalidRequest

__all__ = ["LlamaCppBackend"]

_BATCH = 512  # prompt tokens per forward pass: llama.cpp's default, a good fit for small CPU models


class LlamaCppBackend:
    """A GGUF model loaded in this process; requests are served one at a time, in arrival order."""

    def __init__(self, model: ModelConfig, *, timeout_s: float, http_client: Any = None,
                 base_dir: Path | None = None) -> None:
        del timeout_s, http_client  # in-process: no transport to fake, and llama.cpp cannot be interrupted
        self.model = model
        self.path = gguf_path(model.name, base_dir)
        tokenizer = native_tokenizer(model.name, base_dir)
        self.style = prompt_style(model.prompt, model.provider, tokenizer.chat_template)
        self.window = model.context_window or tokenizer.context_length
        self._llama: Any = None
        self._turn = asyncio.Lock()  # FIFO: prompts run in the order the runner sends them

    def _loaded(self) -> Any:
        if self._llama is None:
            self._llama = load_llama(self.path, n_ctx=self.window or 0, n_batch=_BATCH,
                                     n_threads=os.cpu_count() or 1, seed=0)
        return self._llama

    async def capabilities(self) -> Capabilities:
        """The model's trained context length (or model.context_window); loads the model."""
        await asyncio.to_thread(self._loaded)
        notes = ((f"{self.path.name}: {self.style} prompts, greedy decoding, one request at a time "
                 "(llama.cpp reuses the previous prompt's prefix)"),)
        return Capabilities(context_window=self.window, accepts_temperature=True, notes=notes)

    async def generate(self, request: Request) -> Reply:
        """The model's greedy answer; the prompt's shared prefix with the previous one is not recomputed."""
        async with self._turn:
            return await asyncio.to_thread(self._generate, request)

    def _generate(self, request: Request) -> Reply:
        llama = self._loaded()
        budget = request.settings.max_output_tokens
        started = time.perf_counter()
        try:
            if self.style == "completion":
                tokens = llama.tokenize(request.prompt.text.encode("utf-8"), add_bos=True, special=False)
                reused = self._reusable(llama, tokens)
                # Token ids, not text: the prompt is tokenized once, here.
                out = llama.create_completion(tokens, max_tokens=budget, temperature=0.0, top_k=1,
                                              stop=list(request.prompt.stop) or None)
                choice = out["choices"][0]
                answer = choice["text"]
            else:
                # The chat template renders the tokens inside llama-cpp-python, where its own prefix reuse
                # could make an answer depend on the order of the cells: start from an empty cache.
                llama._ctx.kv_cache_clear()
                llama.reset()
                reused = 0
                out = llama.create_chat_completion(messages=request.prompt.to_json(), max_tokens=budget,
                                                   temperature=0.0, top_k=1)
                choice = out["choices"][0]
                answer = choice["message"]["content"] or ""
        except ValueError as exc:
            if "context window" in str(exc):
                raise ContextTooLong(str(exc)) from None
            raise InvalidRequest(f"llama.cpp refused the prompt: {exc}") from None
        usage = out.get("usage") or {}
        finish = choice.get("finish_reason")
        return Reply(
            text=answer.strip(),
            finish_reason=finish,
            usage=Usage(input_tokens=usage.get("prompt_tokens"), cached_read_tokens=reused,
                        output_tokens=usage.get("completion_tokens")),
            latency_s=time.perf_counter() - started,
            request_id=None,
            cut_off=finish == "length",
        )

    @staticmethod
    def _reusable(llama: Any, tokens: list[int]) -> int:
        """Prompt tokens llama.cpp will take from the cache: the common prefix with what it holds now."""
        held = llama._input_ids[: llama.n_tokens]  # the tokens whose KV entries the context holds
        prefix = int(llama.longest_token_prefix(held, tokens))
        # Keep only whole batches of the prefix, so the rest is evaluated in the same 512-token chunks
        # as from an empty cache: the same arithmetic, so the order of the cells cannot change an answer.
        aligned = min(prefix, len(tokens) - 1) // _BATCH * _BATCH
        if aligned < llama.n_tokens:
            llama._ctx.kv_cache_seq_rm(-1, aligned, -1)
            llama.n_tokens = aligned
        return aligned

    async def aclose(self) -> None:
        """Free the model."""
        if self._llama is not None:
            await asyncio.to_thread(self._llama.close)
            self._llama = None
