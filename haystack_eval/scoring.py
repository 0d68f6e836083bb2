"""Grading a reply against the expected answer(s): a score in 0..1 and one part per expected answer.

Pure functions, no I/O. Every method but ``numeric`` compares normalised text (NFKC, case-folded,
punctuation dropped, whitespace collapsed: ``normalise_answer``). With several expected answers (a
multi-needle task asking for all of them) each answer gets its own part, so per-needle recall is kept.

- ``contains``: a part is 1 when the expected answer occurs in the reply as whole words; score = mean.
- ``all``: RULER's string_match_all, the fraction of expected answers found (the same rule as contains).
- ``any``: RULER's string_match_part, 1 when any expected answer is found; parts as for contains.
- ``exact``: one expected answer: the whole reply equals it. Several: the reply is split into items
  (lines, commas, semicolons; list markers like ``1.``, ``2)``, ``-`` and a leading "and" dropped) and a
  part is 1 when an item equals that answer.
- ``regex``: ``scoring.pattern`` with ``{answer}`` replaced by the escaped normalised answer, searched in
  the normalised reply (so write patterns for lower-case text without punctuation).
- ``numeric``: the numbers in the reply (``1,276``, ``1276.0``, ``-3``, ``4.5e3``; read before punctuation
  is dropped) compared by value with the expected number, within relative ``scoring.tolerance``. An
  expected answer that is not a number is matched like ``contains``. Decimal commas are not read.
- ``f1``: SQuAD-style token F1 of the normalised answer against the normalised reply (articles are
  kept: the normaliser is language-neutral).
- ``judge``: asks a model; not pure, so it lives in ``haystack_eval.sweep.grading``.

With no expected answer (task kind ``absent``: the document does not hold one) every method grades the
same way: 1 when the reply says the document does not say (``abstains``), 0 for any other answer.
One minus that mean is the hallucination rate.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from haystack_eval.config import ScoringConfig

__all__ = ["DEFAULT_PATTERN", "Graded", "abstains", "grade", "normalise_answer", "parse_numbers", "token_f1"]

DEFAULT_PATTERN = r"(?<!\w){answer}(?!\w)"
_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)
# A number standing on its own (not inside a word like A380 or after a dot); a unit may follow (12km).
# Thousands separators only in groups of three, so "1,2,3" is three numbers and "1990,2000" two.
_NUMBER = re.compile(r"(?<![\w.])([-+\u2212]?)((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)([eE][-+]?\d+)?(?!\d)")
# Items of a list answer: split at newlines, semicolons, and commas that are not thousands separators.
_ITEM_BREAK = re.compile(r"[\n;]|,(?!\d{3}(?!\d))")
_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022\u00b7]|\(?\d+[.)]|\(?[a-z][)])\s+|^\s*and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Graded:
    """The grade of one reply: its score, one part per expected answer, and a short note."""

    score: float | None  # 0..1; None = unscored (for example a judge reply that did not parse)
    parts: tuple[float, ...]  # one score per expected answer (per-needle recall); () when unscored or not per-answer
    note: str | None = None  # why unscored, or what the judge said (short)


def normalise_answer(text: str) -> str:
    """Case-folded, accents kept, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def _found(want: str, got: str, pattern: str = DEFAULT_PATTERN) -> float:
    """1.0 when the (normalised) answer matches ``pattern`` in the (normalised) reply; an empty answer never does."""
    if not want:
        return 0.0
    return 1.0 if re.search(pattern.replace("{answer}", re.escape(want)), got) else 0.0


def _contains(expected: Sequence[str], answer: str) -> tuple[float, ...]:
    got = normalise_answer(answer)
    return tuple(_found(normalise_answer(want), got) for want in expected)


def _items(answer: str) -> set[str]:
    """The normalised items of a list answer."""
    pieces = _ITEM_BREAK.split(unicodedata.normalize("NFKC", answer))
    return {normalise_answer(_LIST_MARKER.sub("", piece)) for piece in pieces} - {""}


def _exact(expected: Sequence[str], answer: str) -> tuple[float, ...]:
    if len(expected) == 1:
        want = normalise_answer(expected[0])
        return (1.0 if want and want == normalise_answer(answer) else 0.0,)
    items = _items(answer)
    return tuple(1.0 if normalise_answer(want) in items else 0.0 for want in expected)


def _regex(expected: Sequence[str], answer: str, pattern: str) -> tuple[float, ...]:
    got = normalise_answer(answer)
    return tuple(_found(normalise_answer(want), got, pattern) for want in expected)


def _to_float(match: re.Match[str]) -> float:
    sign, digits, exponent = match.groups()
    value = float(digits.replace(",", "") + (exponent or ""))
    return -value if sign in ("-", "\u2212") else value


def parse_numbers(text: str) -> list[float]:
    """The numbers written in ``text``, in order (thousands commas, decimals, signs and exponents read)."""
    return [_to_float(m) for m in _NUMBER.finditer(unicodedata.normalize("NFKC", text))]


def _as_number(text: str) -> float | None:
    """The value of an answer that is one number and nothing else, else None."""
    match = _NUMBER.fullmatch(unicodedata.normalize("NFKC", text).strip())
    return _to_float(match) if match else None


def _numeric(expected: Sequence[str], answer: str, tolerance: float) -> tuple[float, ...]:
    numbers, got = parse_numbers(answer), normalise_answer(answer)
    out = []
    for want in expected:
        value = _as_number(want)
        if value is None:  # not a number: the words must be there, as with contains
            out.append(_found(normalise_answer(want), got))
        else:
            out.append(1.0 if any(abs(n - value) <= tolerance * abs(value) for n in numbers) else 0.0)
    return tuple(out)


def token_f1(expected: str, answer: str) -> float:
    """SQuAD's token F1 of the normalised answer against the normalised reply (0 when either is empty)."""
    want, got = normalise_answer(expected).split(), normalise_answer(answer).split()
    same = sum((Counter(want) & Counter(got)).values())
    if not same:
        return 0.0
    precision, recall = same / len(got), same / len(want)
    return 2 * precision * recall / (precision + recall)


def _f1(expected: Sequence[str], answer: str) -> tuple[float, ...]:
    return tuple(token_f1(want, answer) for want in expected)


# Ways of saying the document does not hold the answer (the absent task offers "not stated").
_ABSTAINS = re.compile(
    r"\b(not (stated|mentioned|specified|given|provided|say|said|found|in the (document|text))|"
    r"(does|do|did) not (say|state|mention|specify|contain|give|provide)|no (information|mention)|"
    r"(cannot|can ?not|could not|unable to) (be )?(determine|determined|find|found|tell|answer)|unknown)\b")


def abstains(answer: str) -> bool:
    """Whether a reply says that the document does not give the answer."""
    text = re.sub(r"\bcan t\b", "cannot", normalise_answer(answer))
    return bool(_ABSTAINS.search(re.sub(r"n t\b", " not", text)))  # doesn't -> doesn t -> does not


def grade(scoring: ScoringConfig, expected: Sequence[str], answer: str) -> Graded:
    """The grade of ``answer`` under ``scoring`` (any method but judge) against every expected answer."""
    if isinstance(expected, str):  # a bare string would be graded letter by letter
        raise TypeError("expected must be a sequence of answers, not one string")
    if not expected:
        said = abstains(answer)
        return Graded(score=1.0 if said else 0.0, parts=(), note=None if said else "answered what the document does not say")
    method = scoring.method
    if method == "judge":
        raise ValueError("the judge method asks a model; grade with haystack_eval.sweep.grading.Grader")
    if method in ("contains", "all", "any"):
        parts = _contains(expected, answer)
    elif method == "exact":
        parts = _exact(expected, answer)
    elif method == "regex":
        parts = _regex(expected, answer, scoring.pattern or DEFAULT_PATTERN)
    elif method == "numeric":
        parts = _numeric(expected, answer, scoring.tolerance)
    elif method == "f1":
        parts = _f1(expected, answer)
    else:  # pragma: no cover - the config's Literal lists every method
        raise ValueError(f"unknown scoring method {method!r}")
    total = max(parts) if method == "any" else sum(parts) / len(parts)
    return Graded(score=total, parts=parts)
