"""What the builder returns: the prompt of one cell and everything measured while building it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haystack_eval.contexts.prompt import Prompt

__all__ = ["Context", "PlacedNeedle"]


@dataclass(frozen=True)
class PlacedNeedle:
    """A needle as placed in a context."""

    id: str
    text: str
    answer: str
    kind: str
    token_offset: int  # tokens of the whole prompt before the needle
    depth: float  # achieved depth: percent of the haystack's tokens before the needle
    char_offset: int  # where the needle starts in the user message
    role: str = "needle"  # or "distractor": a sentence placed to mislead (its answer is the wrong one)


@dataclass(frozen=True)
class Context:
    """One built cell: the prompt to send and everything measured while building it."""

    prompt: Prompt
    tokens: int
    tokenizer: str
    length: int
    depth: float
    trial: int
    needles: tuple[PlacedNeedle, ...]
    question: str
    haystack_tokens: int
    filler: str
    filler_sha256: str
    answers: tuple[str, ...] = ()  # expected, in order; none when the right answer is that the text does not say
    task: str = "single"

    @property
    def targets(self) -> tuple[PlacedNeedle, ...]:
        """The needles the question asks about (not the distractors), in order."""
        return tuple(n for n in self.needles if n.role == "needle")

    @property
    def depth_actual(self) -> float | None:
        """Achieved depth of the first needle (None without one)."""
        return self.targets[0].depth if self.targets else None

    @property
    def expected(self) -> str:
        """The expected answers as one text ('' when the document does not hold the answer)."""
        return " | ".join(self.answers)

    def to_json(self) -> dict[str, Any]:
        """The context as one JSON-ready object (what ``context --json`` prints)."""
        return {
            "prompt": self.prompt.to_json(),
            "stop": list(self.prompt.stop),
            "tokens": self.tokens,
            "tokenizer": self.tokenizer,
            "length": self.length,
            "depth": self.depth,
            "trial": self.trial,
            "depth_actual": self.depth_actual,
            "haystack_tokens": self.haystack_tokens,
            "question": self.question,
            "task": self.task,
            "answers": list(self.answers),
            "needles": [
                {"id": n.id, "text": n.text, "answer": n.answer, "kind": n.kind, "role": n.role,
                 "token_offset": n.token_offset, "depth": n.depth, "char_offset": n.char_offset}
                for n in self.needles
            ],
            "filler": {"name": self.filler, "sha256": self.filler_sha256},
        }
