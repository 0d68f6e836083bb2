"""``openai`` and ``openai-compatible``: Chat Completions through the official SDK.

The SDK's own retries are off (``max_retries=0``): the runner retries, so that every attempt is
classified, honours ``retry-after`` and is counted in the record. Reasoning models (o-series,
gpt-5 and later) reject ``temperature`` and take ``max_completion_tokens``; other OpenAI models
take ``max_completion_tokens`` too, while compatible servers (vLLM, SGLang, llama.cpp server,
LM Studio, Ollama, LiteLLM) get the widely supported ``max_tokens``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlparse

from haystack_eval.backends.base import (
    Capabilities,
    Reply,
    Request,
    Usage,
    api_key,
    rate_limit_headers,
    sdk_errors,
)
from haystack_eval.config import ModelConfig
from haystack_eval.errors import MalformedReply

__all__ = ["OpenAIBackend", "is_reasoning_model"]

_REASONING = re.compile(r"^(o\d+|gpt-(5|[6-9]|\d{2,}))(\b|[.-])", re.IGNORECASE)
_OLLAMA_PORT = 11434
# The header the SDK's own with_raw_response sets: the reply comes back with its headers, parsed on demand.
_RAW_RESPONSE = {"X-Stainless-Raw-Response": "true"}


def is_reasoning_model(name: str) -> bool:
    """o1, o3, o4-mini, gpt-5, gpt-5.1, ... (with or without an ``openai/`` prefix)."""
    return bool(_REASONING.match(name.rsplit("/", 1)[-1]))


class OpenAIBackend:
    """Chat Completions against OpenAI or any server that speaks its API."""

    def __init__(self, model: ModelConfig, *, timeout_s: float, http_client: Any = None) -> None:
        import openai  # the SDK is a dependency; imported here so that other commands start fast
        from openai.types.chat import ChatCompletion

        self._openai = openai
        self._completion = ChatCompletion
        self.model = model
        self.compatible = model.provider == "openai-compatible"
        self._key = api_key(model)
        self.reasoning = not self.compatible and is_reasoning_model(model.name)
        self._client = openai.AsyncOpenAI(
            api_key=self._key or "not-needed",  # local servers usually take any key
            base_url=model.base_url,
            max_retries=0,
            timeout=timeout_s,
            http_client=http_client,
        )

    async def capabilities(self) -> Capabilities:
        """Whether temperature is accepted; for compatible servers, the window they report (vLLM)."""
        notes: list[str] = []
        window = None
        if self.compatible:
            window = await self._served_window()
            if urlparse(self.model.base_url or "").port == _OLLAMA_PORT or "ollama" in (self.model.base_url or ""):
                notes.append("Ollama cuts prompts longer than its context size without an error; raise num_ctx "
                             "(OLLAMA_CONTEXT_LENGTH or the model's Modelfile) above your longest length")
        if self.reasoning:
            notes.append(f"{self.model.name} is a reasoning model: temperature is not sent, and hidden reasoning "
                         "spends output tokens, so give it a max_output_tokens in the thousands")
        return Capabilities(context_window=window, accepts_temperature=not self.reasoning, notes=tuple(notes))

    async def _served_window(self) -> int | None:
        """``max_model_len`` from GET /models, which vLLM reports; None when the server does not say."""
        try:
            page = await self._client.models.list()
        except self._openai.OpenAIError:
            return None
        for entry in page.data:
            extra = entry.model_extra or {}
            if entry.id == self.model.name or len(page.data) == 1:
                value = extra.get("max_model_len")
                return int(value) if isinstance(value, int) else None
        return None

    @property
    def client(self) -> Any:
        """The SDK client (base URL, key, http_client as configured), for the Batch API (sweep/batch.py)."""
        return self._client

    def body(self, request: Request) -> dict[str, Any]:
        """The Chat Completions request body of one request."""
        settings = request.settings
        body: dict[str, Any] = {"model": self.model.name, "messages": request.prompt.to_json()}
        body["max_tokens" if self.compatible else "max_completion_tokens"] = settings.max_output_tokens
        if settings.temperature is not None and not self.reasoning:
            body["temperature"] = settings.temperature
        return body

    async def generate(self, request: Request) -> Reply:
        """One chat completion."""
        settings = request.settings
        body = self.body(request)
        start = time.perf_counter()
        with sdk_errors(self._openai, secret=self._key, timeout_s=settings.timeout_s, id_header="x-request-id"):
            # The SDK's generic post (documented for any endpoint) sends raw content as it is;
            # create() would first walk the body through a type transform and then encode it
            # non-ASCII, which together cost more CPU than the rest of a long request (see
            # bench/harness.py). ASCII-escaped JSON is the same request on the wire.
            encoded = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
            headers = {"Content-Type": "application/json", **_RAW_RESPONSE}  # the rate-limit headers are wanted
            raw: Any = await self._client.post("/chat/completions", cast_to=self._completion, content=encoded,
                                               options={"headers": headers})
            completion = raw.parse()
        return self.reply_from(completion, time.perf_counter() - start, rate_limit_headers(raw.headers))

    def reply_from(self, completion: Any, latency: float, rate_headers: dict[str, str]) -> Reply:
        """The Reply of a parsed ChatCompletion (from a request or a batch's output file)."""
        if not completion.choices:
            raise MalformedReply("the reply has no choices", request_id=getattr(completion, "_request_id", None))
        choice = completion.choices[0]
        usage = completion.usage
        prompt_details = getattr(usage, "prompt_tokens_details", None)
        output_details = getattr(usage, "completion_tokens_details", None)
        return Reply(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else None,
                cached_read_tokens=getattr(prompt_details, "cached_tokens", None),
                output_tokens=usage.completion_tokens if usage else None,
                reasoning_tokens=getattr(output_details, "reasoning_tokens", None),
            ),
            latency_s=latency,
            request_id=getattr(completion, "_request_id", None) or completion.id,
            cut_off=choice.finish_reason == "length",
            rate_headers=rate_headers,
        )

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.close()
