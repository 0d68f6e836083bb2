"""Grading an answer against the expected one: 1.0 right, 0.0 wrong."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

__all__ = ["SCORERS", "normalise_answer", "score"]

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def normalise_answer(text: str) -> str:
    """Case-folded, accents kept, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def _contains(expected: str, answer: str) -> float:
    """Whether the expected answer occurs in the reply as whole words."""
    want, got = normalise_answer(expected), normalise_answer(answer)
    return 1.0 if want and re.search(r"(?<!\w)" + re.escape(want) + r"(?!\w)", got) else 0.0


def _exact(expected: str, answer: str) -> float:
    """Whether the reply is the expected answer and nothing else."""
    return 1.0 if normalise_answer(expected) == normalise_answer(answer) else 0.0


SCORERS: dict[str, Callable[[str, str], float]] = {"contains": _contains, "exact": _exact}


def score(method: str, expected: str, answer: str) -> float:
    """The score of ``answer`` under ``method`` (a key of SCORERS)."""
    return SCORERS[method](expected, answer)
