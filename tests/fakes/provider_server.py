"""A fake OpenAI and Anthropic HTTP server on 127.0.0.1 that the real SDKs talk to, with injectable faults.

Endpoints: ``POST /v1/chat/completions`` (OpenAI), ``POST /v1/messages`` (Anthropic, also ``stream: true``),
``POST /v1/messages/count_tokens`` and ``GET /v1/models``; anything else is a 404. With ``batches``
(tests/fakes/batch_api.py) it also serves the batch APIs.

Token counts are an approximation, not a tokenizer: prompt tokens are the characters of all system and
message text // 4, completion tokens are the words of the answer, and ``max_tokens`` cuts the answer to
that many words (finish_reason "length" / stop_reason "max_tokens"). ``cached_tokens`` and
``cache_write_tokens`` make every reply report that many prompt tokens as read from or written to a
prompt cache (no caching is simulated: they only exercise the two usage conventions).
``rate_limits`` (see ``tests/fakes/rate_limits.py``) counts requests and tokens per window, refuses a
request past a limit with a 429 (fault "over_rate_limit"), and puts the limits in every generation
reply's rate-limit headers, OpenAI's or Anthropic's.
``prompt_cache`` simulates caching instead: OpenAI's automatic prefix blocks and Anthropic's
explicit ``cache_control`` breakpoints (see ``_PromptCache``).

The default answer is a plausible retriever: the sentence of the document that shares the most words
with the question after the last "Question:" line (see ``default_answer``).

Faults (``FAULTS``) and ``latency_s`` apply to the two generation endpoints only; ``FaultPlan`` says how a
request's fault is chosen. Every request is recorded in ``FakeProvider.requests`` before its fault is applied.
Like a real server, the generation endpoints check the key (``api_key``) and the model (``models``) before
anything else, when told to; ``echo_key`` quotes the request's key in error messages, as some providers and
proxies do, so that tests can prove the key is scrubbed.

Run ``python -m tests.fakes.provider_server --latency 0.2`` to serve from another process: the first
line printed is the base URL, the last (on SIGTERM or SIGINT) a JSON object of what was served.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.fakes.batch_api import FakeBatches
from tests.fakes.rate_limits import FakeRateLimits, RateLedger

__all__ = ["FAULTS", "FakeProvider", "FaultPlan", "RecordedRequest", "default_answer", "split_prompt"]

# status, type, code, message of each error fault in OpenAI's body shape
_OPENAI_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "429": (429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached for requests. Please try again."),
    "408": (408, "timeout_error", None, "Request timed out."),
    "409": (409, "conflict_error", None, "The request conflicts with another request."),
    "500": (500, "server_error", None, "The server had an error while processing your request."),
    "503": (503, "server_error", None, "The engine is currently overloaded, please try again later."),
    "529": (529, "server_error", "overloaded", "The server is overloaded."),
    "context_length": (400, "invalid_request_error", "context_length_exceeded",
                       ("This model's maximum context length is 8192 tokens. "
                        "However, your messages resulted in 20000 tokens.")),
    "auth": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "quota": (429, "insufficient_quota", "insufficient_quota",
              "You exceeded your current quota, please check your plan and billing details."),
    "invalid": (400, "invalid_request_error", None, "Invalid request."),
    "temperature": (400, "invalid_request_error", None, "`temperature` is deprecated for this model."),
    "not_found": (404, "invalid_request_error", "model_not_found",
                  "The model does not exist or you do not have access to it."),
}
# status, type, message of each error fault in Anthropic's body shape
_ANTHROPIC_ERRORS: dict[str, tuple[int, str, str]] = {
    "429": (429, "rate_limit_error", "Number of requests has exceeded your rate limit."),
    "408": (408, "api_error", "Request timed out."),
    "409": (409, "api_error", "The request conflicts with another request."),
    "500": (500, "api_error", "Internal server error"),
    "503": (503, "api_error", "Service unavailable"),
    "529": (529, "overloaded_error", "Overloaded"),
    "context_length": (400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "quota": (400, "invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
    "invalid": (400, "invalid_request_error", "Invalid request."),
    "temperature": (400, "invalid_request_error", "`temperature` is deprecated for this model."),
    "not_found": (404, "not_found_error", "model: not found"),
}
FAULTS: frozenset[str] = frozenset(_OPENAI_ERRORS) | {"drop", "hang", "malformed", "empty"}
_MALFORMED = {"openai": b'{"id": "x", "choices": [', "anthropic": b'{"id": "x", "type": "message", "content": ['}
_MALFORMED_EVENT = b'event: message_start\ndata: {"type": "message_start", "message": {"id": "x", \n\n'

_STOP_WORDS = frozenset({
    "the", "and", "for", "are", "was", "were", "what", "which", "who", "whom", "whose", "how", "when", "where",
    "why", "with", "that", "this", "these", "those", "from", "into", "has", "have", "had", "did", "does", "its",
    "his", "her", "their", "they", "them", "there", "then", "than", "not", "but", "all", "any", "can", "will",
})
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?]) |\n")  # the lookbehind keeps each sentence's own punctuation
_DELTA_PIECE = re.compile(r"\S+\s*|\s+")  # word-sized stream deltas that join back to the exact text
_THINKING = "Let me look for it."
_GENERATE = frozenset({"POST /v1/chat/completions", "POST /v1/messages"})  # the endpoints that take faults


@dataclass
class FaultPlan:
    """Which fault each request gets: a sticky prompt match, else the next script entry, else a random draw."""

    script: list[str] = field(default_factory=list)  # consumed in order, one entry per request; "ok" = no fault
    sticky: dict[str, str] = field(default_factory=dict)  # substring of the prompt text -> fault, every time
    rates: dict[str, float] = field(default_factory=dict)  # fault -> probability; at most one is drawn
    seed: int = 0
    retry_after: str = "1"  # the retry-after header of a "429"
    hang_s: float = 30.0  # how long "hang" waits before answering

    def __post_init__(self) -> None:
        unknown = {*self.script, *self.sticky.values(), *self.rates} - FAULTS - {"ok"}
        if unknown:  # a typo would otherwise silently mean "no fault"
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(FAULTS)}")


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: Any  # the parsed JSON body, or None when there is none or it is not JSON
    started: float  # time.monotonic() when its headers had been read
    finished: float | None = None  # time.monotonic() when handling ended; None while in flight
    fault: str = "ok"


@dataclass
class _Call:
    """The parts of a generation request that shape the answer."""

    api: str  # "openai" or "anthropic"
    model: str
    texts: list[str]  # every system and message text, in order
    user: str  # the last user message
    max_tokens: int | None
    stream: bool
    temperature: bool  # whether the request set a temperature
    body: Any = None  # the parsed request, for the simulated prompt cache's breakpoints


def _text(content: Any) -> str:
    """The text of a message content or system value: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _parse_call(api: str, body: Any) -> _Call | None:
    """The generation request in a body, or None when the body is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    texts = [_text(body.get("system")), *(_text(m.get("content")) for m in messages)]
    user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    limit = next((v for v in (body.get("max_completion_tokens"), body.get("max_tokens")) if isinstance(v, int)), None)
    return _Call(api, str(body.get("model", "")), texts, user, limit, body.get("stream") is True,
                 "temperature" in body, body)


def split_prompt(text: str) -> tuple[str, str]:
    """(document, question): the question is the rest of the last line starting with "Question:"."""
    at = text.rfind("Question:")
    while at > 0 and text[at - 1] != "\n":  # rfind, not a regex, so a 1 MB prompt is scanned from its end
        at = text.rfind("Question:", 0, at)
    if at < 0:
        return text, ""
    end = text.find("\n", at)
    return text[:at], text[at + len("Question:"):None if end < 0 else end].strip()


def default_answer(document: str, question: str) -> str:
    """The document sentence sharing the most keywords with the question, or "I don't know."."""
    wanted = {w for w in _WORD.findall(question.lower()) if len(w) >= 3 and w not in _STOP_WORDS}
    best, best_score = "I don't know.", 0
    for sentence in _SENTENCE_BREAK.split(document):  # one linear pass; ties go to the first sentence
        score = len(wanted.intersection(_WORD.findall(sentence.lower())))
        if score > best_score:
            best, best_score = sentence.strip(), score
    return best


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP layer: parsing and routing live in FakeProvider."""

    protocol_version = "HTTP/1.1"  # keep-alive; every response carries a Content-Length
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would delay the second by ~40 ms
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.provider._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.provider._track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:  # http.server's naming
        self.server.provider._handle(self)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a line per request would drown test and benchmark output."""

    def send(self, status: int, body: bytes | list[bytes], headers: dict[str, str],
             content_type: str = "application/json") -> None:
        """Send a response; a list of chunks (server-sent events) goes out one write each, as a stream would."""
        chunks = [body] if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(map(len, chunks))))  # known up front: no chunked encoding
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)

    def drop(self) -> None:
        """Close the connection without a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may already be gone
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer on 127.0.0.1 that knows its FakeProvider."""

    daemon_threads = True  # a hanging handler must keep neither stop() nor the interpreter waiting
    request_queue_size = 256  # 64+ clients connect at once; the default backlog of 5 would drop their SYNs

    def __init__(self, port: int, provider: FakeProvider) -> None:
        self.provider = provider
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skips HTTPServer's getfqdn(), a reverse DNS lookup
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that timed out or a dropped connection is expected, not a bug
        super().handle_error(request, client_address)


class FakeProvider:
    """The fake server: start() it (or use ``with``), point an SDK at its base URL, inspect ``requests``."""

    def __init__(self, *, latency_s: float = 0.0, faults: FaultPlan | None = None,
                 answer: Callable[[str, str], str] | None = None, context_window: int | None = None,
                 thinking_first: bool = False, port: int = 0, rejects_temperature: bool = False,
                 api_key: str | None = None, models: frozenset[str] | None = None, echo_key: bool = False,
                 cached_tokens: int = 0, cache_write_tokens: int = 0,
                 rate_limits: FakeRateLimits | None = None, prompt_cache: bool = False,
                 cache_minimum: int = 1024, batches: FakeBatches | None = None) -> None:
        self.latency_s = latency_s
        self.batches = batches  # the OpenAI Batch API (tests/fakes/batch_api.py); None: its routes are 404s
        # Limits with real accounting: past one, a 429 "over_rate_limit"; every reply carries the headers.
        self.rate_ledger = RateLedger(rate_limits) if rate_limits is not None else None
        self._rate_waits: dict[int, float] = {}  # request number -> seconds until its limit has room
        # Prompt tokens every reply reports as read from (written to) the prompt cache, in each API's own
        # convention: OpenAI's prompt_tokens include its cached_tokens; Anthropic's input_tokens leave both out.
        self.cached_tokens, self.cache_write_tokens = cached_tokens, cache_write_tokens
        # Simulated prompt caching (see _PromptCache); it overrides the two fixed counts above.
        self.prompt_cache = _PromptCache(cache_minimum) if prompt_cache else None
        self.api_key = api_key  # None: any key is accepted
        self.models = models  # None: any model name is served
        self.echo_key = echo_key
        self.rejects_temperature = rejects_temperature  # like the newest Claude models: 400 on temperature
        self.faults = faults or FaultPlan()
        self.answer = answer or default_answer
        self.context_window = context_window
        self.thinking_first = thinking_first
        self.port = port
        self.url = ""
        self.openai_base_url = ""
        self.anthropic_base_url = ""
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._script_at = 0
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # wakes sleeping handlers so stop() never waits for them
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Listen on 127.0.0.1 and serve from a background thread."""
        self._stopping.clear()
        self._server = _Server(self.port, self)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.openai_base_url = self.url + "/v1"
        self.anthropic_base_url = self.url
        # A short poll interval keeps stop() prompt: shutdown() waits for the loop's next poll.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True,
                                        name="fake-provider")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; handlers still sleeping wake up and drop theirs."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive handlers block in recv() until their socket closes
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        """Remember open connections so stop() can close them."""
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def _choose_fault(self, prompt: str) -> str:
        """The fault of one request: sticky match, then the next script entry, then a random draw (lock held)."""
        plan = self.faults
        for needle, fault in plan.sticky.items():
            if needle in prompt:
                return fault
        if self._script_at < len(plan.script):
            self._script_at += 1
            return plan.script[self._script_at - 1]
        draw = self._rng.random() if plan.rates else 1.0
        for fault, rate in plan.rates.items():
            draw -= rate
            if draw < 0:
                return fault
        return "ok"

    def _handle(self, h: _Handler) -> None:
        """Record one request, choose its fault, and answer it."""
        started = time.monotonic()
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))  # one buffered read, fine for 1 MB+
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(h.command, h.path.split("?", 1)[0], {k.lower(): v for k, v in h.headers.items()},
                                 body, started)
        route = f"{record.method} {record.path}"
        if self.batches is not None and self.batches.serves(route):
            with self._lock:
                self.requests.append(record)
            self.batches.handle(self, h, route, raw)
            record.finished = time.monotonic()
            return
        api = "openai" if route == "POST /v1/chat/completions" else "anthropic"
        call = _parse_call(api, body)
        prompt = "\n".join(call.texts) if call is not None and route in _GENERATE else None
        key = _key(record.headers)
        refusal = None  # a real server checks the key, then the model, before anything else
        if prompt is not None and self.api_key is not None and key != self.api_key:
            refusal = "auth"
        elif prompt is not None and call is not None and self.models is not None and call.model not in self.models:
            refusal = "not_found"
        with self._lock:  # one lock for all: script order is request order, and n numbers them uniquely
            if prompt is not None:
                record.fault = refusal or self._choose_fault(prompt)
            self.requests.append(record)  # recorded before its fault is applied
            n = len(self.requests)
            if record.fault == "ok" and call is not None and prompt is not None and self.rate_ledger is not None:
                wait = self.rate_ledger.admit(_prompt_tokens(call))
                if wait is not None:
                    record.fault, self._rate_waits[n] = "over_rate_limit", wait
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if route == "GET /v1/models":
                model: dict[str, Any] = {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}
                if self.context_window is not None:
                    model["max_model_len"] = self.context_window
                h.send(200, _dumps({"object": "list", "data": [model]}), {})
            elif route not in {*_GENERATE, "POST /v1/messages/count_tokens"}:
                error = {"message": f"Unknown request {route}", "type": "not_found_error", "param": None,
                         "code": "not_found"}
                h.send(404, _dumps({"error": error}), {})
            elif call is None:
                self._send_error(h, "invalid", api, n)
            elif route in _GENERATE:
                self._generate(h, call, record.fault, n, key)
            else:
                h.send(200, _dumps({"input_tokens": _prompt_tokens(call)}), {"request-id": f"req_{n}"})
        finally:
            record.finished = time.monotonic()
            with self._lock:
                self._in_flight -= 1

    def _generate(self, h: _Handler, call: _Call, fault: str, n: int, key: str) -> None:
        """Answer a generation request, or apply its fault."""
        headers = {"x-request-id" if call.api == "openai" else "request-id": f"req_{n}"}
        if self.rate_ledger is not None:
            headers |= self.rate_ledger.headers(call.api)
        cache = self.prompt_cache.look(call) if self.prompt_cache is not None and fault == "ok" else None
        if cache is not None and cache.breakpoints > _MAX_BREAKPOINTS:  # as the real API refuses it
            self._send_error(h, "invalid", call.api, n, key)
            return
        wait = self.faults.hang_s if fault == "hang" else self.latency_s if fault == "ok" else 0.0
        if fault == "drop" or (wait > 0 and self._stopping.wait(wait)):
            h.drop()  # when stopping, nobody is waiting for the answer any more
        elif fault == "over_rate_limit":
            self._send_over_rate_limit(h, call.api, headers, n)
        elif fault == "malformed" and call.stream:  # a stream is malformed in its events, not its content type
            h.send(200, _MALFORMED_EVENT, headers, content_type="text/event-stream")
        elif fault == "malformed":
            h.send(200, _MALFORMED[call.api], headers)
        elif fault in _OPENAI_ERRORS:
            self._send_error(h, fault, call.api, n, key)
        elif self.rejects_temperature and call.temperature:
            self._send_error(h, "temperature", call.api, n, key)
        else:
            text, cut, words = self._answer(call, empty=fault == "empty")
            if self.rate_ledger is not None:
                self.rate_ledger.spend_output(words)
            if call.api == "openai":
                h.send(200, _dumps(_cached(cache, self._openai_body(call, n, text, cut, words))), headers)
            elif call.stream:
                events = _message_events(_cached(cache, self._anthropic_body(call, n, text, cut, words)))
                h.send(200, events, headers | {"Cache-Control": "no-cache"}, content_type="text/event-stream")
            else:
                h.send(200, _dumps(_cached(cache, self._anthropic_body(call, n, text, cut, words))), headers)
            if cache is not None and self.prompt_cache is not None:
                self.prompt_cache.keep(call, cache)  # written once answered: a request still in flight cannot read it

    def _answer(self, call: _Call, *, empty: bool) -> tuple[str, bool, int]:
        """(text, whether max_tokens cut it, completion tokens) of a request."""
        if empty:  # the "empty" fault: nothing, yet the whole budget spent
            return "", True, call.max_tokens or 0
        text = self.answer(*split_prompt(call.user))
        words = text.split()
        if call.max_tokens is not None and len(words) > call.max_tokens:
            return " ".join(words[:call.max_tokens]), True, call.max_tokens
        return text, False, len(words)

    def _send_error(self, h: _Handler, fault: str, api: str, n: int, key: str = "") -> None:
        """Send an error fault in the API's body shape (quoting the request's key if ``echo_key``)."""
        headers = {"x-request-id" if api == "openai" else "request-id": f"req_{n}"}
        if fault == "429":
            headers["retry-after"] = self.faults.retry_after
        if api == "openai":
            status, kind, code, message = _OPENAI_ERRORS[fault]
            message += f" The key sent was {key}." if self.echo_key and key else ""
            body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        else:
            status, kind, message = _ANTHROPIC_ERRORS[fault]
            message += f" The key sent was {key}." if self.echo_key and key else ""
            body = {"type": "error", "error": {"type": kind, "message": message}}
        h.send(status, _dumps(body), headers)

    def _send_over_rate_limit(self, h: _Handler, api: str, headers: dict[str, str], n: int) -> None:
        """A 429 for a limit the request would exceed, with its rate-limit headers and a retry-after."""
        with self._lock:
            wait = self._rate_waits.pop(n, 0.0)
        headers = headers | {"retry-after": f"{wait:.3f}"}
        if api == "openai":
            _, kind, code, message = _OPENAI_ERRORS["429"]
            body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        else:
            _, kind, message = _ANTHROPIC_ERRORS["429"]
            body = {"type": "error", "error": {"type": kind, "message": message}}
        h.send(429, _dumps(body), headers)

    def _openai_body(self, call: _Call, n: int, text: str, cut: bool, words: int) -> dict[str, Any]:
        """A Chat Completions response."""
        prompt = _prompt_tokens(call)
        return {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()), "model": call.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "length" if cut else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words,
                      "prompt_tokens_details": {"cached_tokens": min(self.cached_tokens, prompt)},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
        }

    def _anthropic_body(self, call: _Call, n: int, text: str, cut: bool, words: int) -> dict[str, Any]:
        """A Messages response."""
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if self.thinking_first:
            content.insert(0, {"type": "thinking", "thinking": _THINKING, "signature": "fake-signature"})
        return {
            "id": f"msg_{n}", "type": "message", "role": "assistant", "model": call.model, "content": content,
            "stop_reason": "max_tokens" if cut else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": max(0, _prompt_tokens(call) - self.cached_tokens - self.cache_write_tokens),
                      "output_tokens": words, "cache_read_input_tokens": self.cached_tokens,
                      "cache_creation_input_tokens": self.cache_write_tokens},
        }


_MAX_BREAKPOINTS = 4  # Anthropic refuses a request with more cache_control blocks
_BLOCK, _CHARS = 128, 4  # OpenAI caches prefixes in 128-token steps; the fake's token is 4 characters


@dataclass(frozen=True)
class _Lookup:
    """What one request found in the simulated prompt cache and would add to it."""

    read: int  # prompt tokens read from the cache
    write: int  # prompt tokens written (Anthropic style only)
    entries: tuple[bytes, ...]  # prefixes to remember once it is answered
    breakpoints: int = 0


class _PromptCache:
    """Simulated prompt caching, one cache per API and model, kept for the server's life (no expiry, no eviction).

    OpenAI style (chat completions): automatic; every prefix of ``minimum`` tokens and on in 128-token steps is
    remembered, and a request reads the longest one remembered (``prompt_tokens_details.cached_tokens``).
    Anthropic style (messages): explicit; a prefix is remembered only where a block carries ``cache_control``
    and is at least ``minimum`` tokens long; a request reads the longest remembered prefix that ends at one of
    its breakpoints (``cache_read_input_tokens``) and writes its last eligible one beyond that
    (``cache_creation_input_tokens``). The real API's look-back over earlier blocks is not simulated.
    Tokens are characters // 4 of the request's texts, as elsewhere in this server.
    """

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self._known: dict[tuple[str, str], set[bytes]] = {}
        self._lock = threading.Lock()

    def look(self, call: _Call) -> _Lookup:
        """The cache's answer to a request (nothing is remembered yet)."""
        marks = _openai_marks(call, self.minimum) if call.api == "openai" else _anthropic_marks(call)
        with self._lock:
            known = set(self._known.get((call.api, call.model), ()))
        if call.api == "openai":
            read = max((tokens for tokens, digest in marks if digest in known), default=0)
            return _Lookup(read, 0, tuple(d for _, d in marks))
        eligible = [(tokens, digest) for tokens, digest in marks if tokens >= self.minimum]
        read = max((tokens for tokens, digest in eligible if digest in known), default=0)
        write = max(0, eligible[-1][0] - read) if eligible and eligible[-1][1] not in known else 0
        return _Lookup(read, write, tuple(d for _, d in eligible), breakpoints=len(marks))

    def keep(self, call: _Call, found: _Lookup) -> None:
        """Remember a request's prefixes once it has been answered."""
        with self._lock:
            self._known.setdefault((call.api, call.model), set()).update(found.entries)


def _openai_marks(call: _Call, minimum: int) -> list[tuple[int, bytes]]:
    """(tokens, hash) of every cacheable prefix of an OpenAI request: from ``minimum`` tokens in 128-token steps."""
    text = "\x00".join(call.texts)
    running, at, marks = hashlib.sha1(usedforsecurity=False), 0, []
    for tokens in range(minimum, len(text) // _CHARS + 1, _BLOCK):
        running.update(text[at:tokens * _CHARS].encode())
        at = tokens * _CHARS
        marks.append((tokens, running.copy().digest()))
    return marks


def _anthropic_marks(call: _Call) -> list[tuple[int, bytes]]:
    """(tokens, hash) of the prefix ending at each ``cache_control`` block of an Anthropic request, in order."""
    body = call.body if isinstance(call.body, dict) else {}
    system = body.get("system")
    blocks = [_block(part) for part in (system if isinstance(system, list) else [system or ""])]
    for message in body.get("messages") or []:  # rendered in order: system, then each message's blocks
        blocks.append((f"\x00{message.get('role')}\x00", False))
        content = message.get("content")
        blocks += [_block(part) for part in (content if isinstance(content, list) else [content or ""])]
    running, chars, marks = hashlib.sha1(usedforsecurity=False), 0, []
    for text, breakpoint in blocks:
        running.update(text.encode())
        chars += len(text)
        if breakpoint:
            marks.append((chars // _CHARS, running.copy().digest()))
    return marks


def _block(part: Any) -> tuple[str, bool]:
    """A system or content part as (text, whether it carries cache_control)."""
    if isinstance(part, dict):
        return str(part.get("text") or ""), isinstance(part.get("cache_control"), dict)
    return str(part), False


def _cached(found: _Lookup | None, body: dict[str, Any]) -> dict[str, Any]:
    """A response body with the simulated cache's counts, in its API's usage convention."""
    if found is None:
        return body
    usage = body["usage"]
    if "prompt_tokens" in usage:  # OpenAI: prompt_tokens include the cached ones
        usage["prompt_tokens_details"]["cached_tokens"] = min(found.read, usage["prompt_tokens"])
        return body
    total = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    read = min(found.read, total)
    write = min(found.write, total - read)
    usage.update(input_tokens=total - read - write, cache_read_input_tokens=read, cache_creation_input_tokens=write)
    return body


def _key(headers: dict[str, str]) -> str:
    """The API key a request carries: OpenAI's bearer token or Anthropic's x-api-key."""
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def _prompt_tokens(call: _Call) -> int:
    """Approximate prompt tokens: four characters each."""
    return sum(map(len, call.texts)) // 4


def _dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":")).encode()


def _event(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, separators=(',', ':'))}\n\n".encode()


def _message_events(message: dict[str, Any]) -> list[bytes]:
    """The Anthropic stream of a finished message: start, each block's start/deltas/stop, delta, stop."""
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 0}}
    events = [_event("message_start", {"message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            empty: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": block["thinking"]},
                      {"type": "signature_delta", "signature": block["signature"]}]
        else:
            empty = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _DELTA_PIECE.findall(block["text"]) or [""]]
        events.append(_event("content_block_start", {"index": index, "content_block": empty}))
        events += [_event("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
        events.append(_event("content_block_stop", {"index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(_event("message_delta", {"delta": delta, "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    events.append(_event("message_stop", {}))
    return events


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or SIGINT; the first stdout line is the base URL, the last what was served."""
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic server on 127.0.0.1.")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--context-window", type=int, default=None, help="max_model_len of GET /v1/models")
    parser.add_argument("--thinking-first", action="store_true", help="Anthropic answers start with a thinking block")
    parser.add_argument("--rate", action="append", default=[], metavar="FAULT=P", help="fault probability (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--canned", default=None, metavar="TEXT",
                        help="always answer TEXT (skips the retrieval rule: for load benchmarks)")
    args = parser.parse_args(argv)
    rates = {name: float(p) for name, _, p in (item.partition("=") for item in args.rate)}
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    canned = args.canned
    answer = (lambda _document, _question: canned) if canned is not None else None
    with FakeProvider(latency_s=args.latency, faults=FaultPlan(rates=rates, seed=args.seed), port=args.port,
                      context_window=args.context_window, thinking_first=args.thinking_first,
                      answer=answer) as provider:
        print(provider.url, flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
        with provider._lock:
            faults = Counter(r.fault for r in provider.requests)
            served = {"requests": len(provider.requests), "max_in_flight": provider.max_in_flight, "faults": faults}
    print(json.dumps(served), flush=True)


if __name__ == "__main__":
    main()
