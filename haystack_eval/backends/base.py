"""The backend contract: a request goes in, a reply (or a classified BackendError) comes out."""

from __future__ import annotations

import email.utils
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from haystack_eval.config import ModelConfig
from haystack_eval.contexts import Context, Prompt
from haystack_eval.errors import (
    AuthFailed,
    BackendError,
    ConfigError,
    ConnectionDropped,
    ContextTooLong,
    InvalidRequest,
    MalformedReply,
    ModelNotFound,
    Overloaded,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    ServerError,
)

__all__ = [
    "Backend",
    "Capabilities",
    "Reply",
    "Request",
    "Settings",
    "Usage",
    "api_key",
    "error_from_status",
    "key_env",
    "rate_limit_headers",
    "retry_after",
    "scrub",
    "sdk_errors",
]


@dataclass(frozen=True)
class Settings:
    """Generation settings for one request."""

    temperature: float | None
    max_output_tokens: int
    timeout_s: float


@dataclass(frozen=True)
class Request:
    """What a backend is asked: the prompt and settings; ``context`` is the cell (for rule-based backends)."""

    prompt: Prompt
    settings: Settings
    context: Context
    # Characters of the user message where a shared prompt prefix ends: a provider with explicit prompt-cache
    # breakpoints (Anthropic) cuts the message there and marks the prefix; the text sent stays the same.
    cache_at: tuple[int, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Token usage as the provider reported it (None where it did not say)."""

    input_tokens: int | None = None
    cached_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class Reply:
    """A model's reply to one request."""

    text: str
    finish_reason: str | None
    usage: Usage
    latency_s: float
    request_id: str | None
    cut_off: bool  # generation stopped because the output budget ran out
    rate_headers: Mapping[str, str] = field(default_factory=dict)  # the rate-limit headers, for admission control


@dataclass(frozen=True)
class Capabilities:
    """What is known about the model behind a backend."""

    context_window: int | None = None
    accepts_temperature: bool = True
    notes: tuple[str, ...] = ()  # things the user should know before a sweep


class Backend(Protocol):
    """Answers prompts. Failures raise a BackendError subclass; nothing else escapes."""

    async def capabilities(self) -> Capabilities:
        """What is known about the model (may ask the server once)."""
        ...

    async def generate(self, request: Request) -> Reply:
        """The model's reply to one request."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# The variable each provider's key is read from when the config names none (openai-compatible: none).
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def key_env(model: ModelConfig) -> str | None:
    """The environment variable the model's key comes from: the config's, or the provider's usual one."""
    return model.api_key_env or DEFAULT_KEY_ENV.get(model.provider)


def api_key(model: ModelConfig) -> str | None:
    """The key from the environment variable the config names (or the provider's usual one)."""
    name = key_env(model)
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            f"the environment variable {name} is not set",
            where="model.api_key_env" if model.api_key_env else "model.provider",
            fix=f"export {name}=<your key> (the key is read from the environment and never written anywhere)",
        )
    return value


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a response asks us to wait: ``retry-after-ms``, or ``retry-after`` as seconds or a date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: fall back to our own backoff
    return max(0.0, when.timestamp() - time.time())


_RATE_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers of a response (OpenAI's ``x-ratelimit-*``, Anthropic's ``anthropic-ratelimit-*``)."""
    return {name.lower(): value for name, value in headers.items() if name.lower().startswith(_RATE_PREFIXES)}


_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "prompt is too long", "too many tokens")
_QUOTA_HINTS = ("insufficient_quota", "credit balance", "spend limit", "billing")


def error_from_status(
    status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> BackendError:
    """The BackendError for an HTTP error status, using the provider's code and message to tell kinds apart."""
    error = _classify(status, message, code=code, headers=headers, request_id=request_id)
    error.rate_headers = rate_limit_headers(headers or {})  # a 429 says which limit ran out, and until when
    return error


def _classify(
    status: int, message: str, *, code: str | None, headers: Mapping[str, str] | None, request_id: str | None,
) -> BackendError:
    text = f"{code or ''} {message}".lower()
    if status in (401, 403):
        return AuthFailed(message, status=status, request_id=request_id)
    if status == 402 or any(hint in text for hint in _QUOTA_HINTS):
        return QuotaExceeded(message, status=status, request_id=request_id)
    if status == 413 or any(hint in text for hint in _CONTEXT_HINTS):
        return ContextTooLong(message, status=status, request_id=request_id)
    if status == 404:  # the generation endpoints exist, so it is the model, or a base URL that misses its /v1
        return ModelNotFound(message, status=status, request_id=request_id)
    if status == 429:
        return RateLimited(message, retry_after=retry_after(headers or {}), status=status, request_id=request_id)
    if status == 529:
        return Overloaded(message, retry_after=retry_after(headers or {}), status=status, request_id=request_id)
    if status in (408, 409) or status >= 500:
        return ServerError(message, retry_after=retry_after(headers or {}), status=status, request_id=request_id)
    return InvalidRequest(message, status=status, request_id=request_id)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with the key blanked out: provider messages sometimes quote it back."""
    return text.replace(secret, "[redacted]") if secret else text


@contextmanager
def sdk_errors(sdk: ModuleType, *, secret: str | None, timeout_s: float, id_header: str) -> Iterator[None]:
    """Turn the exceptions of an official SDK (openai, anthropic: both share these names) into BackendErrors."""
    try:
        yield
    except sdk.APIStatusError as exc:
        raise _from_status_error(exc, secret, id_header) from None
    except sdk.APITimeoutError:
        raise RequestTimeout(f"no reply within {timeout_s:g} s") from None
    except sdk.APIConnectionError as exc:
        raise ConnectionDropped(scrub(f"connection failed: {exc}", secret)) from None
    except (sdk.APIResponseValidationError, json.JSONDecodeError, ValueError) as exc:
        raise MalformedReply(f"the reply did not parse ({type(exc).__name__})") from None


def _from_status_error(exc: Any, secret: str | None, id_header: str) -> BackendError:
    """Classify an SDK status error by its status, code and message."""
    body = exc.body if isinstance(exc.body, dict) else {}
    detail = body["error"] if isinstance(body.get("error"), dict) else body  # anthropic wraps, openai unwraps
    message = scrub(str(detail.get("message") or exc.message), secret)
    code = detail.get("code") or detail.get("type")
    headers = exc.response.headers
    return error_from_status(exc.status_code, message, code=str(code) if code else None, headers=headers,
                             request_id=headers.get(id_header))
