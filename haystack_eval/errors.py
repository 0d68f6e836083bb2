"""The one error hierarchy of haystack-eval.

::

    HaystackError                 anything this package raises on purpose
    ├── ConfigError               bad user input: config, flags, files (CLI exit 2)
    │   ├── TokenizerError        unknown or unavailable tokenizer
    │   ├── FillerError           unusable filler file, directory or glob
    │   └── NeedleError           unusable needle file or a needle that cannot be placed
    ├── ContextError              a context cannot be built as the invariants demand
    ├── StoreError                a run directory that cannot be used (busy, other config, damaged, unwritable)
    ├── OverRateLimit             a prompt bigger than a per-minute limit: recorded as skipped, never sent
    └── BackendError              a request that failed; recorded as status "error" with its class
        ├── RetryableError        worth asking again after a pause
        │   ├── RateLimited       429 (honours retry-after)
        │   ├── Overloaded        529
        │   ├── ServerError       408, 409, 5xx
        │   ├── ConnectionDropped the connection closed or could not be made
        │   ├── RequestTimeout    no reply within the per-request timeout
        │   └── MalformedReply    a reply that does not parse
        └── FatalRequestError     asking again cannot help
            ├── AuthFailed        401, 403: a missing or wrong key          (ends the run)
            ├── QuotaExceeded     a spend cap or an empty balance          (ends the run)
            ├── ModelNotFound     404: no such model, or no such endpoint  (ends the run)
            ├── ContextTooLong    the prompt is over the model's window
            ├── InvalidRequest    any other 4xx: the request itself is wrong
            └── BackendCrashed    a local model's process died on the prompt

User-fixable errors carry the thing at fault (``where``) and the fix, and render as one line.
A request error that ``ends_run`` would meet every other cell alike, so the sweep stops at the first.
"""

from __future__ import annotations

__all__ = [
    "AuthFailed",
    "BackendCrashed",
    "BackendError",
    "ConfigError",
    "ConnectionDropped",
    "ContextError",
    "ContextTooLong",
    "FatalRequestError",
    "FillerError",
    "HaystackError",
    "InvalidRequest",
    "MalformedReply",
    "ModelNotFound",
    "NeedleError",
    "OverRateLimit",
    "Overloaded",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "RetryableError",
    "ServerError",
    "StoreError",
    "TokenizerError",
]


class HaystackError(Exception):
    """Base class: a problem this package detected and can describe in one line."""

    exit_code: int = 1

    def __init__(
        self, problem: str, *, where: str | None = None, fix: str | None = None, also: tuple[str, ...] = ()
    ) -> None:
        self.problem = problem
        self.where = where
        self.fix = fix
        self.also = also  # further problems found in the same pass, already one line each
        super().__init__(self.line())

    def line(self) -> str:
        """The one-line rendering: ``where: problem; fix``."""
        text = self.problem
        if self.where:
            text = f"{self.where}: {text}"
        if self.fix:
            text = f"{text}; {self.fix}"
        return " ".join(text.split())  # one line, whatever the parts held

    def lines(self) -> list[str]:
        """This problem's line, then any further ones found with it."""
        return [self.line(), *self.also]


class ConfigError(HaystackError):
    """Bad input that the user can fix: config values, flags, files."""

    exit_code = 2


class TokenizerError(ConfigError):
    """A tokenizer name that is unknown or cannot be loaded offline."""


class FillerError(ConfigError):
    """A filler file, directory or glob that cannot be used."""


class NeedleError(ConfigError):
    """A needle file that cannot be used, or a needle whose answer the filler already holds."""


class ContextError(HaystackError):
    """A context that cannot meet its invariants (a bug or an impossible request)."""


class StoreError(HaystackError):
    """A run directory that cannot be used: busy, made by another config, damaged or unwritable."""

    exit_code = 2


class OverRateLimit(HaystackError):
    """A request that no rate limit can ever admit: its prompt alone is over a per-minute limit."""


class BackendError(HaystackError):
    """A model request that failed; the runner records it (status "error") instead of an answer."""

    retryable = False
    ends_run = False  # True where every other request would fail the same way: stop instead of recording each

    def __init__(
        self, problem: str, *, status: int | None = None, retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(problem)
        self.status = status
        self.retry_after = retry_after  # seconds the provider asked us to wait, if it said
        self.request_id = request_id
        self.rate_headers: dict[str, str] = {}  # the response's rate-limit headers, for admission control


class RetryableError(BackendError):
    """A failure worth retrying after a pause."""

    retryable = True


class RateLimited(RetryableError):
    """429: too many requests or tokens for now."""


class Overloaded(RetryableError):
    """529: the provider is overloaded."""


class ServerError(RetryableError):
    """408, 409 or 5xx from the provider."""


class ConnectionDropped(RetryableError):
    """The connection could not be made or closed without a reply."""


class RequestTimeout(RetryableError):
    """No reply within the per-request timeout."""


class MalformedReply(RetryableError):
    """A reply whose body does not parse."""


class FatalRequestError(BackendError):
    """A failure that asking again cannot fix."""


class AuthFailed(FatalRequestError):
    """401 or 403: the key is missing, wrong or not allowed."""

    ends_run = True


class QuotaExceeded(FatalRequestError):
    """A spend cap was reached or the balance is empty."""

    ends_run = True


class ModelNotFound(FatalRequestError):
    """404: the server has no such model (or no such endpoint: a base URL without its /v1)."""

    ends_run = True


class ContextTooLong(FatalRequestError):
    """The prompt is longer than the model accepts."""


class InvalidRequest(FatalRequestError):
    """Any other 4xx: the request itself is wrong (model name, parameters)."""


class BackendCrashed(FatalRequestError):
    """A local model's process died on this prompt, even when it was the first one it was given."""
