"""The batch APIs for the fake provider server: OpenAI's files and batches, Anthropic's Message Batches.

OpenAI: ``POST /v1/files`` (multipart upload), ``POST /v1/batches``, ``GET /v1/batches/{id}`` and
``GET /v1/files/{id}/content``. Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}``
and ``GET /v1/messages/batches/{id}/results`` (JSONL). A batch is in progress for ``polls`` retrievals,
then ``completed`` (Anthropic: ``ended``); each request is answered with the server's normal answer logic (so needles are
found as in a normal run), except the custom ids in ``errors``, which land in the error file with the
status and body of their fault (a fault name of provider_server's error tables; Anthropic: an
``errored`` result). ``expire`` ends batches ``expired`` instead, with the last request unanswered
(Anthropic: an ``expired`` result), as a real window running out leaves some.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.provider_server import FakeProvider, _Handler

__all__ = ["FakeBatches"]

_BATCH = re.compile(r"^GET /v1/batches/([\w-]+)$")
_CONTENT = re.compile(r"^GET /v1/files/([\w-]+)/content$")
_MESSAGE_BATCH = re.compile(r"^GET /v1/messages/batches/([\w-]+)(/results)?$")


@dataclass
class FakeBatches:
    """Batch state of one fake server; ``created`` lists every batch submitted, in order."""

    polls: int = 1  # retrievals that still say in_progress before a batch completes
    errors: dict[str, str] = field(default_factory=dict)  # custom_id -> fault name
    expire: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    retrievals: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def serves(self, route: str) -> bool:
        """Whether a route belongs to the Batch API."""
        return (route in ("POST /v1/files", "POST /v1/batches", "POST /v1/messages/batches")
                or bool(_BATCH.match(route) or _CONTENT.match(route) or _MESSAGE_BATCH.match(route)))

    def handle(self, provider: FakeProvider, h: _Handler, route: str, raw: bytes) -> None:
        """Answer one Batch API request."""
        with self._lock:
            status, body = self._route(provider, h, route, raw)
        if isinstance(body, bytes):
            h.send(status, body, {}, content_type="application/octet-stream")
        else:
            h.send(status, json.dumps(body).encode(), {})

    def _route(self, provider: FakeProvider, h: _Handler, route: str, raw: bytes) -> tuple[int, Any]:
        if route == "POST /v1/messages/batches" or _MESSAGE_BATCH.match(route):
            return _anthropic_route(self, provider, route, raw)
        if route == "POST /v1/files":
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = _upload(h.headers.get("Content-Type", ""), raw)
            return 200, _file(file_id, len(self.files[file_id]))
        if route == "POST /v1/batches":
            request = json.loads(raw)
            if request.get("input_file_id") not in self.files or request.get("endpoint") != "/v1/chat/completions":
                return 400, {"error": {"message": "bad batch", "type": "invalid_request_error", "code": None}}
            batch = {"id": f"batch_{next(self._ids)}", "object": "batch", "endpoint": request["endpoint"],
                     "input_file_id": request["input_file_id"], "completion_window": request["completion_window"],
                     "status": "in_progress", "created_at": int(time.time()), "output_file_id": None,
                     "error_file_id": None, "errors": None, "polls": 0}
            self.created.append(batch)
            return 200, _public(batch)
        if found := _BATCH.match(route):
            batch = next((b for b in self.created if b["id"] == found.group(1)), None)
            if batch is None:
                return 404, {"error": {"message": "no such batch", "type": "invalid_request_error", "code": None}}
            self.retrievals += 1
            batch["polls"] += 1
            if batch["status"] == "in_progress" and batch["polls"] > self.polls:
                self._finish(provider, batch)
            return 200, _public(batch)
        found = _CONTENT.match(route)
        assert found is not None
        content = self.files.get(found.group(1))
        if content is None:
            return 404, {"error": {"message": "no such file", "type": "invalid_request_error", "code": None}}
        return 200, content

    def _finish(self, provider: FakeProvider, batch: dict[str, Any]) -> None:
        """Answer every request of a batch and write its output and error files."""
        from tests.fakes.provider_server import _OPENAI_ERRORS, _parse_call

        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].splitlines() if line.strip()]
        if self.expire:
            lines = lines[:-1]
        output, errors = [], []
        for n, line in enumerate(lines, start=1):
            custom_id = line["custom_id"]
            fault = self.errors.get(custom_id)
            if fault is not None:
                status, kind, code, message = _OPENAI_ERRORS[fault]
                response = {"status_code": status, "request_id": f"req_b{n}",
                            "body": {"error": {"message": message, "type": kind, "param": None, "code": code}}}
                errors.append({"id": f"batch_req_{n}", "custom_id": custom_id, "response": response, "error": None})
                continue
            call = _parse_call("openai", line["body"])
            assert call is not None
            text, cut, words = provider._answer(call, empty=False)
            body = provider._openai_body(call, n, text, cut, words)
            output.append({"id": f"batch_req_{n}", "custom_id": custom_id,
                           "response": {"status_code": 200, "request_id": f"req_b{n}", "body": body}, "error": None})
        for kind, rows in (("output_file_id", output), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{next(self._ids)}"
                self.files[file_id] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                batch[kind] = file_id
        batch["status"] = "expired" if self.expire else "completed"


def _anthropic_route(self: FakeBatches, provider: FakeProvider, route: str, raw: bytes) -> tuple[int, Any]:
    """Anthropic Message Batches: create, retrieve (which advances the poll count), results."""
    missing = {"type": "error", "error": {"type": "not_found_error", "message": "no such batch"}}
    if route == "POST /v1/messages/batches":
        requests = json.loads(raw).get("requests")
        if not isinstance(requests, list) or not requests:
            return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "no requests"}}
        batch = {"id": f"msgbatch_{next(self._ids)}", "object": "message_batch", "requests": requests,
                 "processing_status": "in_progress", "results": None, "polls": 0}
        self.created.append(batch)
        return 200, _anthropic_public(batch, provider.url)
    found = _MESSAGE_BATCH.match(route)
    assert found is not None
    batch = next((b for b in self.created if b["id"] == found.group(1)), None)
    if batch is None:
        return 404, missing
    if found.group(2):
        if batch["results"] is None:
            return 404, missing
        return 200, batch["results"]
    self.retrievals += 1
    batch["polls"] += 1
    if batch["processing_status"] == "in_progress" and batch["polls"] > self.polls:
        batch["results"] = b"".join(json.dumps(row).encode() + b"\n" for row in _anthropic_results(self, provider, batch))
        batch["processing_status"] = "ended"
    return 200, _anthropic_public(batch, provider.url)


def _anthropic_results(self: FakeBatches, provider: FakeProvider, batch: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per request: succeeded with the server's answer, errored, or (with ``expire``, the last) expired."""
    from tests.fakes.provider_server import _ANTHROPIC_ERRORS, _parse_call

    rows = []
    for n, request in enumerate(batch["requests"], start=1):
        custom_id = request["custom_id"]
        fault = self.errors.get(custom_id)
        if self.expire and n == len(batch["requests"]):
            result: dict[str, Any] = {"type": "expired"}
        elif fault is not None:
            _, kind, message = _ANTHROPIC_ERRORS[fault]
            result = {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}
        else:
            call = _parse_call("anthropic", request["params"])
            assert call is not None
            text, cut, words = provider._answer(call, empty=False)
            result = {"type": "succeeded", "message": provider._anthropic_body(call, n, text, cut, words)}
        rows.append({"custom_id": custom_id, "result": result})
    return rows


def _anthropic_public(batch: dict[str, Any], url: str) -> dict[str, Any]:
    """A message batch as the API shows it."""
    ended = batch["processing_status"] == "ended"
    stamp = "2026-01-01T00:00:00Z"
    return {"id": batch["id"], "type": "message_batch", "processing_status": batch["processing_status"],
            "request_counts": {"processing": 0 if ended else len(batch["requests"]), "succeeded": 0, "errored": 0,
                               "canceled": 0, "expired": 0},
            "created_at": stamp, "expires_at": stamp, "ended_at": stamp if ended else None, "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{url}/v1/messages/batches/{batch['id']}/results" if ended else None}


def _upload(content_type: str, raw: bytes) -> bytes:
    """The file part of a multipart/form-data upload."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    for part in message.iter_parts():  # type: ignore[attr-defined]
        if part.get_filename():
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    return b""


def _file(file_id: str, size: int) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()),
            "filename": "batch.jsonl", "purpose": "batch", "status": "processed"}


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    """A batch as the API shows it (without the fake's poll count)."""
    shown = {k: v for k, v in batch.items() if k != "polls"}
    shown["request_counts"] = {"total": 0, "completed": 0, "failed": 0}
    return shown
