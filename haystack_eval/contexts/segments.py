"""Cut a document into segments: sentences, and long sentences further at word boundaries.

Segments tile the text exactly. A segment that follows an in-line sentence break owns the
spaces before it (" The next..."), and a segment that ends a line owns its newlines
("...end.\\n\\n"). With that split, ordinary BPE tokenizers encode every segment boundary
cleanly: the tokens of the whole text are the tokens of its segments, end to end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["Segment", "segment", "word_cuts"]

# Words before a period that do not end a sentence.
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "eg", "ie", "no", "mt", "fig", "approx", "dept", "est", "inc", "ltd", "co", "corp", "gen", "col", "lt", "sgt"]
)
_TERMINAL = ".!?"
_CLOSERS = "\"')]\u201d\u2019"
_OPENERS = "\"'([\u201c\u2018"
_WHITESPACE = re.compile(r"\s+")
_WORD_BEFORE = re.compile(r"(\w+)\.$")
_MAX_SEGMENT_CHARS = 400


@dataclass(frozen=True)
class Segment:
    """Characters ``start:end`` of a document; ``sentence`` when a sentence starts there."""

    start: int
    end: int
    sentence: bool


def _ends_sentence(text: str, pos: int) -> bool:
    """Whether the text just before ``pos`` ends a sentence (punctuation, not an abbreviation)."""
    i = pos
    while i > 0 and text[i - 1] in _CLOSERS:
        i -= 1
    if i == 0 or text[i - 1] not in _TERMINAL:
        return False
    if text[i - 1] == ".":
        word = _WORD_BEFORE.search(text, max(0, i - 12), i)
        if word:
            token = word.group(1)
            if token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()):
                return False
    return True


def _starts_sentence(text: str, pos: int) -> bool:
    """Whether a sentence can start at ``pos`` (capital letter or digit, maybe after an opener)."""
    i = pos
    while i < len(text) and text[i] in _OPENERS:
        i += 1
    return i < len(text) and (text[i].isupper() or text[i].isdigit())


def _sentence_starts(text: str) -> list[int]:
    """Offsets where sentences start, 0 included."""
    starts = [0]
    for match in _WHITESPACE.finditer(text):
        a, b = match.span()
        if a == 0 or b == len(text):
            continue
        gap = text[a:b]
        if "\n" in gap:
            # A blank line always breaks; a single newline breaks only after a sentence end
            # (a hard-wrapped line in mid-sentence does not).
            if gap.count("\n") >= 2 or _ends_sentence(text, a):
                starts.append(b)
        elif _ends_sentence(text, a) and _starts_sentence(text, b):
            starts.append(a)
    return starts


def word_cuts(text: str, start: int = 0, end: int | None = None) -> list[int]:
    """Offsets in ``start:end`` where a word follows a single run of spaces (the cut goes before the spaces)."""
    end = len(text) if end is None else end
    cuts = []
    for match in _WHITESPACE.finditer(text, start, end):
        a, b = match.span()
        if a > start and b < end and "\n" not in match.group() and not text[b].isspace():
            cuts.append(a)
    return cuts


def segment(text: str, max_chars: int = _MAX_SEGMENT_CHARS) -> list[Segment]:
    """Segments tiling ``text``: sentences, with sentences over ``max_chars`` cut between words."""
    starts = _sentence_starts(text)
    bounds = starts + [len(text)]
    segments: list[Segment] = []
    for a, b in pairwise(bounds):
        if b - a <= max_chars:
            segments.append(Segment(a, b, True))
            continue
        # Long sentences are cut between words so that counting and trimming stay local.
        piece_start, sentence = a, True
        for cut in word_cuts(text, a, b):
            if cut - piece_start >= max_chars // 2 and b - cut >= max_chars // 4:
                segments.append(Segment(piece_start, cut, sentence))
                piece_start, sentence = cut, False
        segments.append(Segment(piece_start, b, sentence))
    return segments
