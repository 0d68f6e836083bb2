"""The context builder: one cell (length, depth, trial) -> the exact prompt and what was built.

Invariants (tested by property tests):
- the whole prompt (every message) counts ``length - 2 <= tokens <= length`` target tokens;
- the needle starts at the sentence boundary nearest the requested depth (depth 0: before the
  first sentence, 100: after the last), and the achieved depth is measured in tokens;
- the needle occurs once and its answer nowhere else in the prompt;
- the same config and seed give byte-identical prompts.

A haystack is a window of the corpus stream for the trial: it starts at a sentence (a different
document for each trial) and ends on a sentence end when one of the first starting sentences
allows an exact fit; otherwise it ends on the last word that fits. The window depends on the
length and trial only, so every depth of a length shares the text up to its needle.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from haystack_eval.config import TaskConfig
from haystack_eval.contexts.context import Context, PlacedNeedle
from haystack_eval.contexts.fillers import Corpus
from haystack_eval.contexts.needles import NeedleSet
from haystack_eval.contexts.prompt import DEFAULT_TEMPLATE, Message, Prompt, PromptTemplate
from haystack_eval.contexts.segments import word_cuts
from haystack_eval.contexts.stream import Counter, Piece, SpanPiece, Stream, TextPiece, stream_for
from haystack_eval.contexts.tasks import DISTRACTOR_GAP, Case, Statement, Task
from haystack_eval.contexts.tokenizers import Tokenizer
from haystack_eval.errors import ContextError, FillerError, NeedleError

__all__ = ["MIN_HAYSTACK_TOKENS", "ContextBuilder"]

MIN_HAYSTACK_TOKENS = 16  # below this there is no haystack to speak of
_SLACK = 2  # tokens a prompt may fall short of its length
_STARTS_TRIED = 64  # sentence starts tried for a window that ends on a sentence end
_NEEDLE_ATTEMPTS = 64
_TRIAL_SHIFT = 7  # segments a trial moves on once every document has been a start
_REFITS = 4  # rounds of refitting a cell's end and re-choosing its boundary

Placed = list[tuple[int, Statement]]  # statements and the segment index they go before, in prompt order


@dataclass(frozen=True)
class _Window:
    """Segments ``first:stop`` of the stream, then ``tail`` (leading words of segment ``stop``)."""

    first: int
    stop: int
    tail: str = ""


def _longest_tail(
    first: int, stop: int, text: str, cuts: Iterable[int], best: _Window, score: int,
    total: Callable[[_Window], int], length: int,
) -> tuple[_Window, int]:
    """The window whose tail ``text[:cut]`` is longest while its total still fits ``length``."""
    for cut in cuts:
        trial = _Window(first, stop, text[:cut])
        value = total(trial)
        if value > length:
            break
        best, score = trial, value
    return best, score


class ContextBuilder:
    """Builds contexts for one tokenizer, corpus, needle set, seed and template."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        corpus: Corpus,
        needles: NeedleSet,
        *,
        seed: int = 0,
        template: PromptTemplate = DEFAULT_TEMPLATE,
        task: Task | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.corpus = corpus
        self.needles = needles
        self.task = task or Task(TaskConfig(seed=seed), needles)
        self.seed = self.task.seed
        self.template = template
        self.stream: Stream = stream_for(corpus, tokenizer)
        sentences = int(self.stream.sentence.sum())
        if sentences < 2 and self.stream.cycle_tokens >= MIN_HAYSTACK_TOKENS:
            # plenty of text, but no place between sentences where a needle could go
            raise FillerError(
                f"{corpus.name} has no sentence boundary in its {self.stream.cycle_tokens} tokens",
                where="haystack.filler", fix="use prose whose sentences end with '.', '!' or '?'",
            )
        if sentences < 2 or self.stream.cycle_tokens < MIN_HAYSTACK_TOKENS:
            raise FillerError(
                f"{corpus.name} is too small to hold a needle ({self.stream.cycle_tokens} tokens in "
                f"{sentences} sentence(s))", where="haystack.filler",
                fix=f"use a filler with at least 2 sentences and {MIN_HAYSTACK_TOKENS} tokens",
            )
        self.counter = Counter(tokenizer)
        self._system = self.counter.count(template.system)
        self._prefix = self._piece(template.prefix)
        self._cases: dict[int, Case] = {}
        self._windows: dict[tuple[int, int], _Window] = {}
        order = list(range(len(corpus.documents)))
        random.Random(f"haystack-eval/offsets/{self.seed}").shuffle(order)
        self._doc_order = order

    # --- needles -------------------------------------------------------------------------

    def case(self, trial: int) -> Case:
        """What a trial hides and asks: the first candidate whose answers occur nowhere else in the prompt."""
        if trial in self._cases:
            return self._cases[trial]
        conflict = ""
        for attempt in range(_NEEDLE_ATTEMPTS):
            candidate = self.task.case(trial, attempt)
            found = self._conflict(candidate)
            if not found:
                self._cases[trial] = candidate
                return candidate
            conflict = conflict or found
        raise NeedleError(f"no needle can be placed in trial {trial}: {conflict}", where="task.needles",
                          fix="use another filler, or a needle file whose answers the filler does not contain")

    def needle(self, trial: int) -> Statement:
        """The first needle of a trial (the one at the cell's depth)."""
        return self.case(trial).needles[0]

    def _conflict(self, case: Case) -> str:
        """Why a case cannot be used ('' if it can): an answer that occurs somewhere but in its own needle."""
        fixed = (self.template.system, self.template.prefix, self.template.closing(case.question))
        for needle in case.needles:
            answer = needle.answer
            said = f"the answer {answer!r} of needle {needle.id!r} occurs in"
            if self.stream.contains_word(answer):
                return f"{said} the filler {self.corpus.name}"
            if any(answer.casefold() in text.casefold() for text in fixed):
                return f"{said} the question or the instructions"
            if sum(answer.casefold() in s.text.casefold() for s in case.statements) != 1:
                return f"{said} another hidden sentence"
        return ""

    # --- sizes ---------------------------------------------------------------------------

    def overhead(self, trial: int) -> int:
        """Tokens of everything but the haystack: system, instructions, question and hidden sentences."""
        case = self.case(trial)
        hidden = [self._piece(" " + s.text) for s in case.statements]
        pieces = [self._prefix, *hidden, self._piece(self.template.closing(case.question))]
        return self._system + self.counter.join(pieces)

    def min_length(self, trials: int = 1) -> int:
        """The smallest length every one of ``trials`` trials can be built at."""
        return max(self.overhead(t) for t in range(trials)) + MIN_HAYSTACK_TOKENS

    # --- building ------------------------------------------------------------------------

    def build(self, length: int, depth: float, trial: int = 0) -> Context:
        """The context of one cell."""
        if not 0 <= depth <= 100:
            raise ContextError(f"depth {depth} is outside 0..100", fix="use a percent between 0 and 100")
        smallest = self.overhead(trial) + MIN_HAYSTACK_TOKENS
        if length < smallest:
            raise ContextError(f"length {length} is below the {smallest} tokens this prompt needs",
                               fix=f"use lengths of at least {smallest}")
        case = self.case(trial)
        closing = self._piece(self.template.closing(case.question))
        window = self._window(length, trial)
        placed = self._place(window, case, depth)
        total = self._total(window, placed, closing)
        for _ in range(_REFITS):
            if length - _SLACK <= total <= length:
                break
            # The seams of the hidden sentences moved the count by a token or two: refit the end of this
            # cell only, then make sure the boundaries are still the nearest ones in the refitted haystack.
            window = self._refit(window, placed, closing, length)
            placed = self._place(window, case, depth)
            total = self._total(window, placed, closing)
        else:
            if not length - _SLACK <= total <= length:  # rounds used up: exactness comes first
                window = self._refit(window, placed, closing, length)
                total = self._total(window, placed, closing)
        return self._assemble(window, placed, case, closing, length, depth, trial, total)

    def _refit(self, window: _Window, placed: Placed, closing: TextPiece, length: int) -> _Window:
        """The window's end refitted so that the cell, with its sentences where they are, fits ``length``."""
        floor = max((at for at, _ in placed), default=window.first)
        refit = self._fit(window.first, length, lambda w: self._total(w, placed, closing), floor=floor, slack=_SLACK)
        assert refit is not None  # with words allowed, _fit fits or raises
        return refit

    def _place(self, window: _Window, case: Case, depth: float) -> Placed:
        """Where each hidden sentence goes: needles at their target depths, distractors away from the first."""
        placed = [(self._needle_position(window, t), s)
                  for t, s in zip(self.task.targets(case, depth), case.needles, strict=True)]
        distractors = case.distractors
        if distractors:
            gap = DISTRACTOR_GAP if self.task.kind == "distractor" else None
            anchor = placed[0][0] if placed else window.first
            targets = self.task.distractor_targets(case, depth)
            placed += [(self._boundary_away(window, t, anchor, gap), s)
                       for t, s in zip(targets, distractors, strict=True)]
        order = {id(s): i for i, s in enumerate(case.statements)}
        return sorted(placed, key=lambda p: (p[0], order[id(p[1])]))

    def _piece(self, text: str) -> TextPiece:
        return TextPiece(text, self.counter.count(text))

    def _origin(self, trial: int) -> int:
        """Where a trial's haystack starts: a different document per trial, then shifted on."""
        docs = len(self._doc_order)
        first = int(self.stream.doc_first[self._doc_order[trial % docs]]) + (trial // docs) * _TRIAL_SHIFT
        while not self.stream.starts_sentence(first):
            first += 1
        return first

    def _hay(self, first: int, stop: int, tail: str, *, start: bool, end: bool) -> list[Piece]:
        """Pieces of segments ``first:stop`` and ``tail``; the haystack's outer whitespace is trimmed."""
        items: list[str | SpanPiece] = []
        if stop > first:
            items.append(self.stream.segment_text(first))
            if stop - first > 2:
                items.append(SpanPiece(self.stream, first + 1, stop - 1))
            if stop - first > 1:
                items.append(self.stream.segment_text(stop - 1))
        if tail:
            items.append(tail)
        if not items:
            return []
        if start:
            assert isinstance(items[0], str)
            items[0] = items[0].lstrip()
        if end:
            assert isinstance(items[-1], str)
            items[-1] = items[-1].rstrip()
        return [self._piece(item) if isinstance(item, str) else item for item in items]

    def _insert(self, window: _Window, at: int, text: str) -> str:
        """Hidden text with the space that joins it to its neighbours."""
        after_line = at == window.first or self.stream.segment_text(at - 1).endswith("\n")
        if not after_line:
            return " " + text  # follows a sentence in the same paragraph
        more = at < window.stop or bool(window.tail)
        return text + (" " if more else "")  # starts the haystack or a line

    def _parts(self, window: _Window, placed: Placed) -> list[tuple[list[Piece], TextPiece | None]]:
        """The haystack in runs between the hidden sentences: (haystack pieces, inserted text after them).

        Sentences at one boundary go in together, in order, joined by spaces; the last run has no insert.
        """
        w, cursor = window, window.first
        runs: list[tuple[list[Piece], TextPiece | None]] = []
        groups: list[tuple[int, list[str]]] = []
        for at, statement in placed:
            if groups and groups[-1][0] == at:
                groups[-1][1].append(statement.text)
            else:
                groups.append((at, [statement.text]))
        for at, texts in groups:
            hay = self._hay(cursor, at, "", start=cursor == w.first, end=False)
            runs.append((hay, self._piece(self._insert(window, at, " ".join(texts)))))
            cursor = at
        runs.append((self._hay(cursor, w.stop, w.tail, start=cursor == w.first, end=True), None))
        return runs

    @staticmethod
    def _flat(runs: list[tuple[list[Piece], TextPiece | None]]) -> list[Piece]:
        return [piece for hay, inserted in runs for piece in (*hay, *([inserted] if inserted else []))]

    def _total(self, window: _Window, placed: Placed, closing: TextPiece) -> int:
        """Exact tokens of the whole prompt of a window with its hidden sentences placed."""
        return self._system + self.counter.join([self._prefix, *self._flat(self._parts(window, placed)), closing])

    def _window(self, length: int, trial: int) -> _Window:
        """The haystack window of a length and trial, shared by all its depths."""
        key = (length, trial)
        if key in self._windows:
            return self._windows[key]
        case = self.case(trial)
        closing = self._piece(self.template.closing(case.question))

        def at_end(w: _Window) -> int:
            # Exact with the hidden sentences after the window's whole segments, as depth 100 places a
            # needle; other depths differ by a token or two at their seams and refit their end.
            return self._total(w, [(w.stop, s) for s in case.statements], closing)

        origin = first = self._origin(trial)
        window = None
        for _ in range(_STARTS_TRIED):
            fitted = self._fit(first, length, at_end, floor=first, slack=1, words=False)
            if fitted is not None and self.stream.starts_sentence(fitted.stop):
                window = fitted
                break
            first += 1
            while not self.stream.starts_sentence(first):
                first += 1
        if window is None:
            window = self._fit(origin, length, at_end, floor=origin, slack=_SLACK)
            assert window is not None  # with words allowed, _fit fits or raises
        self._windows[key] = window
        return window

    def _fit(
        self, first: int, length: int, total: Callable[[_Window], int], *, floor: int, slack: int, words: bool = True
    ) -> _Window | None:
        """The longest window from ``first`` whose total fits ``length``, within ``slack`` if possible.

        Whole segments first; then (``words``) the leading words of the next segment, and as a
        last resort its leading characters. Returns None when ``words`` is off and no whole
        segment count fits within the slack.
        """
        overhead = total(_Window(first, first)) - self.stream.span_tokens(first, first)
        stop = max(floor, self.stream.index_at(first, length - overhead))
        while stop > floor and total(_Window(first, stop)) > length:
            stop -= 1
        while total(_Window(first, stop + 1)) <= length:
            stop += 1
        best = _Window(first, stop)
        score = total(best)
        if score > length:
            raise ContextError(f"length {length} cannot hold the fixed parts of the prompt ({score} tokens)",
                               fix="use a larger length")
        if score >= length - slack:
            return best
        if not words:
            return None
        text = self.stream.segment_text(stop)
        cuts = word_cuts(text)
        best, score = _longest_tail(first, stop, text, cuts, best, score, total, length)
        if score < length - slack:
            # Characters of the next word: only when no whole word lands within the slack.
            start = len(best.tail)
            following = next((c for c in cuts if c > start), len(text))
            best, score = _longest_tail(first, stop, text, range(start + 1, following), best, score, total, length)
        if score >= length - slack:
            return best
        raise ContextError(f"cannot fit a haystack to exactly {length} tokens (closest {score})",
                           fix="report this with the config; try another length meanwhile")

    def _needle_position(self, window: _Window, depth: float) -> int:
        """The sentence boundary nearest ``depth`` percent of the haystack, as a segment index.

        ``window.stop`` is the end of the haystack when there is no tail; after a tail (a
        sentence cut short) the last boundary is the start of that sentence.
        """
        stream, w = self.stream, window
        target = depth / 100 * self._hay_tokens(w)
        base = stream.position(w.first)
        candidates: dict[int, float] = {w.first: 0.0}
        if not w.tail or stream.starts_sentence(w.stop):
            candidates[w.stop] = float(stream.position(w.stop) - base)
        guess = min(max(stream.index_at(w.first, round(target)), w.first), max(w.first, w.stop - 1))
        below = guess
        while below > w.first and not stream.starts_sentence(below):
            below -= 1
        above = guess + 1
        while above < w.stop and not stream.starts_sentence(above):
            above += 1
        for g in (below, above):
            if w.first < g < w.stop:
                candidates[g] = float(stream.position(g) - base)
        return min(candidates, key=lambda g: (abs(candidates[g] - target), candidates[g]))

    def _hay_tokens(self, window: _Window) -> int:
        """Exact tokens of the haystack alone, without the needle."""
        return self.counter.join(self._hay(window.first, window.stop, window.tail, start=True, end=True))

    def _boundary_away(self, window: _Window, depth: float, anchor: int, gap: float | None) -> int:
        """The boundary nearest ``depth`` percent; with a ``gap``, only those that far from ``anchor``."""
        if gap is None:
            return self._needle_position(window, depth)
        stream, w = self.stream, window
        hay = max(1, self._hay_tokens(w))
        base = stream.position(w.first)
        spot = stream.position(anchor) - base
        ends = [w.first] + [g for g in range(w.first + 1, w.stop) if stream.starts_sentence(g)]
        if not w.tail or stream.starts_sentence(w.stop):
            ends.append(w.stop)
        # a point past the gap (measured on the span counts; the recorded depth is exact and tested)
        far = [g for g in ends if abs(stream.position(g) - base - spot) * 100 >= (gap + 0.5) * hay]
        if not far:
            raise ContextError(f"no sentence boundary lies {gap:g}% of the haystack away from the needle",
                               fix="use longer lengths for task.kind distractor")
        target = depth / 100 * hay
        return min(far, key=lambda g: (abs(stream.position(g) - base - target), g))

    def _assemble(
        self, window: _Window, placed: Placed, case: Case, closing: TextPiece,
        length: int, depth: float, trial: int, total: int,
    ) -> Context:
        """Render the prompt text and measure where each hidden sentence went."""
        runs = self._parts(window, placed)
        hay_tokens = self._hay_tokens(window)
        boundaries = sorted({at for at, _ in placed})  # the insert of run i goes before segment boundaries[i]
        where: dict[int, tuple[int, int, float]] = {}  # id(statement) -> token offset, char offset, depth
        pieces: list[Piece] = [self._prefix]
        chars = len(self.template.prefix)
        for (hay, inserted), at in zip(runs, [*boundaries, None], strict=True):
            pieces += hay
            chars += sum(len(p.text()) for p in hay)
            if inserted is None or at is None:
                break
            # Depth counts haystack text only, not the line break that separates it from the sentence.
            before = self.counter.join(self._hay(window.first, at, "", start=True, end=True))
            depth_here = round(100 * before / hay_tokens, 2) if hay_tokens else 0.0
            lead = 1 if inserted.value.startswith(" ") else 0
            done = 0  # characters of this insert before the statement (sentences that share its boundary)
            for statement in self._group(placed, at):
                ahead = self._piece(inserted.value[: lead + done]) if done else None
                tokens = self._system + self.counter.join([*pieces, *([ahead] if ahead else [])])
                where[id(statement)] = (tokens, chars + lead + done, depth_here)
                done += len(statement.text) + 1
            pieces.append(inserted)
            chars += len(inserted.value)
        user = self.template.prefix + "".join(p.text() for p in self._flat(runs)) + closing.value
        hidden = tuple(
            PlacedNeedle(id=s.id, text=s.text, answer=s.answer, kind=s.kind, token_offset=where[id(s)][0],
                         depth=where[id(s)][2], char_offset=where[id(s)][1], role=s.role)
            for s in case.statements)
        system = (Message("system", self.template.system),) if self.template.system else ()
        prompt = Prompt((*system, Message("user", user)), stop=self.template.stop)
        return Context(
            prompt=prompt, tokens=total, tokenizer=self.tokenizer.name, length=length, depth=depth,
            trial=trial, needles=hidden, question=case.question, haystack_tokens=hay_tokens,
            filler=self.corpus.name, filler_sha256=self.corpus.sha256, answers=case.answers,
            task=self.task.kind,
        )

    @staticmethod
    def _group(placed: Placed, at: int) -> list[Statement]:
        return [s for g, s in placed if g == at]
