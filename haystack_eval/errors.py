"""The one error hierarchy of haystack-eval.

::

    HaystackError                 anything this package raises on purpose
    ├── ConfigError               bad user input: config, flags, files (CLI exit 2)
    │   ├── TokenizerError        unknown or unavailable tokenizer
    │   ├── FillerError           unusable filler file, directory or glob
    │   └── NeedleError           unusable needle file or a needle that cannot be placed
    └── ContextError              a context cannot be built as the invariants demand

User-fixable errors carry the thing at fault (``where``) and the fix, and render as one line.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ContextError",
    "FillerError",
    "HaystackError",
    "NeedleError",
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
