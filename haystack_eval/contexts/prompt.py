"""What is sent: chat messages around the haystack, and the template that frames it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT_TEMPLATE", "Message", "Prompt", "PromptTemplate"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True)
class Prompt:
    """The messages of one request, in order."""

    messages: tuple[Message, ...]

    def to_json(self) -> list[dict[str, str]]:
        """The messages as JSON-ready dicts (the shape chat APIs take)."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    @property
    def user(self) -> str:
        """The text of the last user message (the one holding the haystack)."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")


@dataclass(frozen=True)
class PromptTemplate:
    """The fixed texts around a haystack; ``suffix`` holds ``{question}``."""

    system: str
    prefix: str
    suffix: str

    def closing(self, question: str) -> str:
        """The text after the haystack, with the question filled in."""
        return self.suffix.replace("{question}", question)


DEFAULT_TEMPLATE = PromptTemplate(
    system="You are a careful reader. Answer questions using only the document you are given.",
    prefix="Read the document below, then answer the question that follows it.\n\n<document>\n",
    suffix="\n</document>\n\nQuestion: {question}\nAnswer with the fact from the document, in as few words as possible.",
)
