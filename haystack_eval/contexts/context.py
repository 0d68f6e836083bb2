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

    @property
    def depth_actual(self) -> float:
        """Achieved depth of the (first) needle."""
        return self.needles[0].depth

    @property
    def expected(self) -> str:
        """The answer the model should give."""
        return self.needles[0].answer

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
            "needles": [
                {"id": n.id, "text": n.text, "answer": n.answer, "kind": n.kind,
                 "token_offset": n.token_offset, "depth": n.depth, "char_offset": n.char_offset}
                for n in self.needles
            ],
            "filler": {"name": self.filler, "sha256": self.filler_sha256},
        }
