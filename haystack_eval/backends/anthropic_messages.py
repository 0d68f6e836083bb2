"""``anthropic``: the Messages API through the official SDK.

The system prompt goes in ``system``; only text blocks make the answer (thinking blocks may come
first). Requests whose output budget could take long are streamed, as the SDK asks, and
assembled into the same final message. SDK retries are off: the runner retries.

``temperature`` left the SDK's signature in anthropic 1.0 and goes in ``extra_body``; the newest
Claude models refuse it (400). After the first such refusal the backend stops sending it and
asks again at once, so a sweep of those models is not lost to a setting they no longer take.
"""

from __future__ import annotations

import time
from typing import Any

from haystack_eval.backends.base import (
    Capabilities,
    Reply,
    Request,
    Settings,
    Usage,
    api_key,
    rate_limit_headers,
    sdk_errors,
)
from haystack_eval.config import ModelConfig
from haystack_eval.errors import InvalidRequest

__all__ = ["STREAM_ABOVE_TOKENS", "AnthropicBackend"]

# The SDK refuses non-streaming requests it expects to run past 10 minutes, which it judges
# from max_tokens; stream well before that.
STREAM_ABOVE_TOKENS = 16_000


def _turns(request: Request) -> list[dict[str, Any]]:
    """The messages; with ``cache_at``, the user message cut into text blocks there, each prefix a cache breakpoint.

    The blocks join back to the same text. Anthropic caches a prefix only up to a block marked
    ``cache_control`` and takes at most 4 such blocks in a request (the runner places 2 at most).
    """
    messages = [m for m in request.prompt.messages if m.role != "system"]
    turns: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
    user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    text = messages[user].content if user is not None else ""
    cuts = sorted({at for at in request.cache_at if 0 < at < len(text)})[-4:]
    if user is None or not cuts:
        return turns
    blocks: list[dict[str, Any]] = []
    for start, end in zip([0, *cuts[:-1]], cuts, strict=True):
        blocks.append({"type": "text", "text": text[start:end], "cache_control": {"type": "ephemeral"}})
    blocks.append({"type": "text", "text": text[cuts[-1]:]})
    turns[user] = {"role": "user", "content": blocks}
    return turns


class AnthropicBackend:
    """Claude models through the Messages API."""

    def __init__(self, model: ModelConfig, *, timeout_s: float, http_client: Any = None) -> None:
        import anthropic

        self._anthropic = anthropic
        self.model = model
        self._key = api_key(model)
        self._client = anthropic.AsyncAnthropic(
            api_key=self._key, base_url=model.base_url, max_retries=0, timeout=timeout_s, http_client=http_client,
        )
        self.sends_temperature = True  # until the model refuses it

    async def capabilities(self) -> Capabilities:
        """Nothing is asked of the server; the window is whatever the config says."""
        return Capabilities()

    @property
    def client(self) -> Any:
        """The SDK client (base URL, key, http_client as configured), for Message Batches (backends/batches.py)."""
        return self._client

    def params(self, request: Request) -> dict[str, Any]:
        """The Messages parameters of one request, without its temperature."""
        system = "\n\n".join(m.content for m in request.prompt.messages if m.role == "system")
        params: dict[str, Any] = {"model": self.model.name, "max_tokens": request.settings.max_output_tokens,
                                  "messages": _turns(request)}
        if system:
            params["system"] = system
        return params

    async def generate(self, request: Request) -> Reply:
        """One message."""
        settings = request.settings
        params = self.params(request)
        if settings.temperature is not None and self.sends_temperature:
            try:
                return await self._send({**params, "extra_body": {"temperature": settings.temperature}}, settings)
            except InvalidRequest as exc:
                if "temperature" not in exc.problem.lower():
                    raise
                self.sends_temperature = False  # this model takes no temperature: ask without it
        return await self._send(params, settings)

    async def _send(self, params: dict[str, Any], settings: Settings) -> Reply:
        """Send one Messages request, streamed when the output budget is large."""
        start = time.perf_counter()
        with sdk_errors(self._anthropic, secret=self._key, timeout_s=settings.timeout_s, id_header="request-id"):
            if settings.max_output_tokens > STREAM_ABOVE_TOKENS:
                async with self._client.messages.stream(**params) as stream:
                    message = await stream.get_final_message()
                request_id = getattr(message, "_request_id", None)
                limits = rate_limit_headers(stream.response.headers)
            else:
                raw = await self._client.messages.with_raw_response.create(**params)
                message = await raw.parse()  # anthropic's async raw responses parse asynchronously
                request_id = raw.headers.get("request-id")
                limits = rate_limit_headers(raw.headers)
        return self.reply_from(message, time.perf_counter() - start, request_id, limits)

    def reply_from(self, message: Any, latency: float, request_id: str | None, limits: dict[str, str]) -> Reply:
        """The Reply of a parsed Message (from a request or a batch's results)."""
        text = "".join(block.text for block in message.content if block.type == "text")
        usage = message.usage
        return Reply(
            text=text,
            finish_reason=message.stop_reason,
            usage=Usage(
                input_tokens=usage.input_tokens,
                cached_read_tokens=usage.cache_read_input_tokens,
                cache_write_tokens=usage.cache_creation_input_tokens,
                output_tokens=usage.output_tokens,
            ),
            latency_s=latency,
            request_id=request_id,
            rate_headers=limits,
            cut_off=message.stop_reason == "max_tokens",
        )

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.close()
