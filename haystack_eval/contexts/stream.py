"""A filler corpus tokenised once, as an endless cycle of segments, with exact span counts.

The cycle is every document followed by a blank line, in reading order; a haystack is a run
of whole segments from it (wrapping around as often as a length needs). Each segment is
encoded once, alone; ``deltas[i]`` is what encoding segment ``i-1`` and ``i`` together changes
(zero for ordinary BPE at our boundaries, but measured, not assumed). A span's exact token
count is then two array lookups, so building a cell never re-encodes the haystack: only the
few small texts at its seams (see ``Counter.join``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from haystack_eval.contexts.fillers import Corpus
from haystack_eval.contexts.segments import segment
from haystack_eval.contexts.tokenizers import Tokenizer
from haystack_eval.errors import ContextError

__all__ = ["DOC_SEPARATOR", "Counter", "Piece", "SpanPiece", "Stream", "TextPiece", "stream_for"]

DOC_SEPARATOR = "\n\n"
_CACHEABLE_CHARS = 4096


class Counter:
    """Counts tokens of small texts with a cache, and the change a seam between two texts makes."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._counts: dict[str, int] = {}
        self._seams: dict[tuple[str, str], int] = {}

    def count(self, text: str) -> int:
        """Tokens in ``text`` (cached when short)."""
        if len(text) > _CACHEABLE_CHARS:
            return self.tokenizer.count(text)
        cached = self._counts.get(text)
        if cached is None:
            cached = self._counts[text] = self.tokenizer.count(text)
        return cached

    def seam(self, left: str, right: str) -> int:
        """Tokens of ``left + right`` minus the tokens of each alone."""
        key = (left, right)
        cached = self._seams.get(key)
        if cached is None:
            cached = self._seams[key] = self.count(left + right) - self.count(left) - self.count(right)
        return cached

    def join(self, pieces: Sequence[Piece]) -> int:
        """Exact tokens of the pieces' texts concatenated, from their counts and their seams."""
        total = 0
        previous: Piece | None = None
        for piece in pieces:
            if piece.empty:
                continue
            total += piece.count
            if previous is not None:
                total += self.seam(previous.tail, piece.head)
            previous = piece
        return total


class Piece(Protocol):
    """Part of a prompt whose token count is known; ``head``/``tail`` are its edge texts."""

    @property
    def count(self) -> int: ...
    @property
    def head(self) -> str: ...
    @property
    def tail(self) -> str: ...
    @property
    def empty(self) -> bool: ...
    def text(self) -> str: ...


@dataclass(frozen=True)
class TextPiece:
    """A literal text: instructions, a needle, a trimmed segment."""

    value: str
    count: int

    @property
    def head(self) -> str:
        """The whole text (it is small)."""
        return self.value

    @property
    def tail(self) -> str:
        """The whole text (it is small)."""
        return self.value

    @property
    def empty(self) -> bool:
        """True for the empty string."""
        return not self.value

    def text(self) -> str:
        """The text itself."""
        return self.value


@dataclass(frozen=True)
class SpanPiece:
    """Whole segments ``first:stop`` of the endless stream, rendered only when asked."""

    stream: Stream
    first: int
    stop: int

    @property
    def count(self) -> int:
        """Exact tokens of the span encoded alone."""
        return self.stream.span_tokens(self.first, self.stop)

    @property
    def head(self) -> str:
        """The first segment."""
        return self.stream.segment_text(self.first)

    @property
    def tail(self) -> str:
        """The last segment."""
        return self.stream.segment_text(self.stop - 1)

    @property
    def empty(self) -> bool:
        """True when the span holds no segment."""
        return self.stop <= self.first

    def text(self) -> str:
        """The span's text."""
        return self.stream.text_between(self.first, self.stop)


@dataclass(frozen=True, eq=False)
class Stream:
    """The tokenised cycle of a corpus; global segment index ``g`` is segment ``g % n``."""

    corpus: Corpus
    tokenizer_name: str
    text: str
    starts: np.ndarray  # char offset of each segment, plus len(text) at the end
    sentence: np.ndarray  # whether a sentence starts at each segment
    counts: np.ndarray  # tokens of each segment alone
    deltas: np.ndarray  # seam change between segment i-1 and i (circularly)
    cum: np.ndarray  # cum[i] = sum(counts[:i] + deltas[:i])
    doc_first: np.ndarray  # first segment of each document
    _occurrences: dict[str, bool] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        """Segments in one cycle."""
        return len(self.counts)

    @property
    def cycle_tokens(self) -> int:
        """Tokens in one cycle of the corpus."""
        return int(self.cum[-1])

    def position(self, g: int) -> int:
        """Tokens from the start of cycle 0 to the start of global segment ``g``."""
        cycles, local = divmod(g, self.n)
        return cycles * self.cycle_tokens + int(self.cum[local])

    def span_tokens(self, first: int, stop: int) -> int:
        """Exact tokens of segments ``first:stop`` encoded alone."""
        if stop <= first:
            return 0
        return self.position(stop) - self.position(first) - int(self.deltas[first % self.n])

    def index_at(self, first: int, tokens: int) -> int:
        """The segment index ``g >= first`` whose start lies about ``tokens`` after ``first``'s."""
        goal = self.position(first) + max(0, tokens)
        cycles, rest = divmod(goal, self.cycle_tokens)
        local = int(np.searchsorted(self.cum, rest, side="right")) - 1
        return max(first, cycles * self.n + min(local, self.n - 1))

    def starts_sentence(self, g: int) -> bool:
        """Whether global segment ``g`` starts a sentence."""
        return bool(self.sentence[g % self.n])

    def segment_text(self, g: int) -> str:
        """Text of global segment ``g``."""
        local = g % self.n
        return self.text[self.starts[local] : self.starts[local + 1]]

    def text_between(self, first: int, stop: int) -> str:
        """Text of global segments ``first:stop``, across as many cycles as needed."""
        if stop <= first:
            return ""
        c1, l1 = divmod(first, self.n)
        c2, l2 = divmod(stop, self.n)
        a, b = int(self.starts[l1]), int(self.starts[l2])
        if c1 == c2:
            return self.text[a:b]
        return "".join([self.text[a:], self.text * (c2 - c1 - 1), self.text[:b]])

    def contains_word(self, phrase: str) -> bool:
        """Whether ``phrase`` occurs anywhere in the corpus as a whole word, ignoring case."""
        key = phrase.casefold()
        found = self._occurrences.get(key)
        if found is None:
            pattern = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.IGNORECASE)
            found = self._occurrences[key] = pattern.search(self.text) is not None
        return found


def _build(corpus: Corpus, tokenizer: Tokenizer) -> Stream:
    """Segment and tokenise every document once; check that the segment counts add up."""
    texts: list[str] = []
    starts: list[int] = []
    sentence: list[bool] = []
    doc_first: list[int] = []
    offset = 0
    for doc in corpus.documents:
        body = doc.text + DOC_SEPARATOR
        doc_first.append(len(texts))
        for seg in segment(body):
            texts.append(body[seg.start : seg.end])
            starts.append(offset + seg.start)
            sentence.append(seg.sentence)
        offset += len(body)
    text = "".join(doc.text + DOC_SEPARATOR for doc in corpus.documents)
    counts = np.asarray(tokenizer.count_many(texts), dtype=np.int64)
    pairs = [texts[i - 1] + texts[i] for i in range(len(texts))]  # i = 0 pairs the cycle's ends
    deltas = np.asarray(tokenizer.count_many(pairs), dtype=np.int64) - counts - np.roll(counts, 1)
    cum = np.concatenate([[0], np.cumsum(counts + deltas)])
    stream = Stream(
        corpus=corpus,
        tokenizer_name=tokenizer.name,
        text=text,
        starts=np.asarray(starts + [len(text)], dtype=np.int64),
        sentence=np.asarray(sentence, dtype=bool),
        counts=counts,
        deltas=deltas,
        cum=cum,
        doc_first=np.asarray(doc_first, dtype=np.int64),
    )
    _check_locality(stream, tokenizer)
    return stream


def _check_locality(stream: Stream, tokenizer: Tokenizer) -> None:
    """Every document's real token count must equal the sum the stream predicts for it."""
    bounds = list(stream.doc_first) + [stream.n]
    bodies = [doc.text + DOC_SEPARATOR for doc in stream.corpus.documents]
    for doc, body, actual, first, stop in zip(
        stream.corpus.documents, bodies, tokenizer.count_many(bodies), bounds, bounds[1:]
    ):
        if actual != stream.span_tokens(first, stop):
            raise ContextError(
                f"tokenizer {tokenizer.name} does not split {doc.name} cleanly at sentence boundaries "
                f"({actual} tokens, segments add up to {stream.span_tokens(first, stop)})",
                fix="report this file with the tokenizer name; meanwhile use another filler",
            )


_streams: dict[tuple[str, str], Stream] = {}
_streams_lock = threading.Lock()


def stream_for(corpus: Corpus, tokenizer: Tokenizer) -> Stream:
    """The stream of ``corpus`` under ``tokenizer``, built once per process."""
    key = (corpus.sha256, tokenizer.name)
    with _streams_lock:
        stream = _streams.get(key)
        if stream is None:
            stream = _streams[key] = _build(corpus, tokenizer)
        return stream
