"""The providers' batch APIs, through the official SDK clients the backends already built.

OpenAI: a JSONL file up through the Files API, a batch on ``/v1/chat/completions`` with a 24 h
window, then its output and error files. Anthropic: Message Batches, ``{custom_id, params}``
requests, then the JSONL results. Each answer becomes the backend's own Reply (or a classified
BackendError), so batched records are built exactly like those of single requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from haystack_eval.backends.base import Reply, Request, error_from_status, sdk_errors
from haystack_eval.errors import BackendError, MalformedReply, RequestTimeout

__all__ = ["BatchAPI", "Ended", "batch_api"]

Outcome = Reply | BackendError


@dataclass(frozen=True)
class Ended:
    """A batch that stopped processing: how it ended and the outcome of every request it answered."""

    status: str  # completed, expired, cancelled, failed (OpenAI); ended (Anthropic)
    outcomes: dict[str, Outcome]


class BatchAPI(Protocol):
    """One provider's batch API."""

    provider: str
    max_requests: int
    max_bytes: int

    def entry(self, custom_id: str, request: Request) -> bytes:
        """One request as a line of the batch (JSON and a newline): what counts against ``max_bytes``."""
        ...

    async def submit(self, entries: list[bytes]) -> str:
        """Submit one batch of entries; its id."""
        ...

    async def poll(self, batch_id: str) -> Ended | None:
        """The batch's outcomes once it has ended, else None."""
        ...


def batch_api(backend: Any, timeout_s: float) -> BatchAPI | None:
    """The batch API behind a backend, or None when its provider has none."""
    from haystack_eval.backends.anthropic_messages import AnthropicBackend
    from haystack_eval.backends.openai_chat import OpenAIBackend

    if isinstance(backend, OpenAIBackend):
        return OpenAIBatches(backend, timeout_s)
    if isinstance(backend, AnthropicBackend):
        return AnthropicBatches(backend, timeout_s)
    return None


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"


class OpenAIBatches:
    """The OpenAI Batch API (and a compatible server's, where it serves one)."""

    provider = "openai"
    max_requests, max_bytes = 50_000, 200 * 1024 * 1024
    _ENDED = ("completed", "failed", "expired", "cancelled")

    def __init__(self, backend: Any, timeout_s: float) -> None:
        from openai.types.chat import ChatCompletion

        self._backend, self._client, self._completion = backend, backend.client, ChatCompletion
        self._sdk, self._key, self._timeout_s = backend._openai, backend._key, timeout_s

    def entry(self, custom_id: str, request: Request) -> bytes:
        """One line of the input file."""
        return _line({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                      "body": self._backend.body(request)})

    async def submit(self, entries: list[bytes]) -> str:
        """Upload the input file and create the batch."""
        with sdk_errors(self._sdk, secret=self._key, timeout_s=self._timeout_s, id_header="x-request-id"):
            uploaded = await self._client.files.create(file=("haystack-eval.jsonl", b"".join(entries)), purpose="batch")
            batch = await self._client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                      completion_window="24h")
        return str(batch.id)

    async def poll(self, batch_id: str) -> Ended | None:
        """Retrieve the batch; once ended, read its output and error files."""
        with sdk_errors(self._sdk, secret=self._key, timeout_s=self._timeout_s, id_header="x-request-id"):
            batch = await self._client.batches.retrieve(batch_id)
            if batch.status not in self._ENDED:
                return None
            outcomes: dict[str, Outcome | None] = {}
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    content = await self._client.files.content(file_id)
                    for text in content.text.splitlines():
                        if text.strip():
                            row = json.loads(text)
                            outcomes[row["custom_id"]] = self._outcome(row)
        return Ended(str(batch.status), {k: v for k, v in outcomes.items() if v is not None})

    def _outcome(self, row: dict[str, Any]) -> Outcome | None:
        response = row.get("response") or {}
        body = response.get("body") or {}
        if not response:  # no response at all: only the batch-level error says why (left to the caller)
            return None
        status = int(response.get("status_code") or 500)
        if status != 200:
            detail: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
            return error_from_status(status, str(detail.get("message") or "the request failed"),
                                     code=detail.get("code") or detail.get("type"), request_id=response.get("request_id"))
        try:
            reply: Reply = self._backend.reply_from(self._completion.model_validate(body), 0.0, {})
        except (BackendError, ValueError) as exc:
            return exc if isinstance(exc, BackendError) else MalformedReply(f"unreadable answer ({type(exc).__name__})")
        return _with_id(reply, response.get("request_id"))


class AnthropicBatches:
    """Anthropic Message Batches."""

    provider = "anthropic"
    max_requests, max_bytes = 100_000, 256 * 1024 * 1024

    def __init__(self, backend: Any, timeout_s: float) -> None:
        self._backend, self._client = backend, backend.client
        self._sdk, self._key, self._timeout_s = backend._anthropic, backend._key, timeout_s

    def entry(self, custom_id: str, request: Request) -> bytes:
        """One request of the batch."""
        params = self._backend.params(request)
        if request.settings.temperature is not None and self._backend.sends_temperature:
            params["temperature"] = request.settings.temperature
        return _line({"custom_id": custom_id, "params": params})

    async def submit(self, entries: list[bytes]) -> str:
        """Create the batch."""
        with sdk_errors(self._sdk, secret=self._key, timeout_s=self._timeout_s, id_header="request-id"):
            batch = await self._client.messages.batches.create(requests=[json.loads(e) for e in entries])
        return str(batch.id)

    async def poll(self, batch_id: str) -> Ended | None:
        """Retrieve the batch; once ended, read its results."""
        with sdk_errors(self._sdk, secret=self._key, timeout_s=self._timeout_s, id_header="request-id"):
            batch = await self._client.messages.batches.retrieve(batch_id)
            if batch.processing_status != "ended":
                return None
            outcomes: dict[str, Outcome] = {}
            async for row in await self._client.messages.batches.results(batch_id):
                outcome = self._outcome(row.result)
                if outcome is not None:
                    outcomes[row.custom_id] = outcome
        return Ended("ended", outcomes)

    def _outcome(self, result: Any) -> Outcome | None:
        if result.type == "succeeded":
            return _with_id(self._backend.reply_from(result.message, 0.0, None, {}), result.message.id)
        if result.type == "errored":
            detail = getattr(result.error, "error", None)
            kind, message = getattr(detail, "type", None), getattr(detail, "message", None) or "the request failed"
            return error_from_status(_STATUS.get(str(kind), 400), str(message), code=kind)
        return RequestTimeout(f"the batch {result.type} this request before answering it")  # canceled, expired


# Anthropic's errored results give the error's type, not its HTTP status.
_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
           "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
           "overloaded_error": 529}


def _with_id(reply: Reply, request_id: Any) -> Reply:
    from dataclasses import replace

    return replace(reply, request_id=str(request_id) if request_id else reply.request_id)
