"""What is sent: chat messages around the haystack, and the template that frames it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["COMPLETION_TEMPLATE", "DEFAULT_TEMPLATE", "Message", "Prompt", "PromptStyle", "PromptTemplate",
           "prompt_style", "template_for"]

Role = Literal["system", "user", "assistant"]
PromptStyle = Literal["chat", "completion"]


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    content: str


@dataclass(frozen=True)
class Prompt:
    """The messages of one request, in order, and where a completion-style answer ends."""

    messages: tuple[Message, ...]
    stop: tuple[str, ...] = ()  # only completion-style prompts need these; chat models end turns themselves

    @property
    def text(self) -> str:
        """The whole prompt as one text (what a completion-style model is given)."""
        return "\n\n".join(m.content for m in self.messages if m.content)

    def to_json(self) -> list[dict[str, str]]:
        """The messages as JSON-ready dicts (the shape chat APIs take)."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    @property
    def user(self) -> str:
        """The text of the last user message (the one holding the haystack)."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")


@dataclass(frozen=True)
class PromptTemplate:
    """The fixed texts around a haystack; ``suffix`` holds ``{question}``; an empty ``system`` sends none."""

    system: str
    prefix: str
    suffix: str
    stop: tuple[str, ...] = ()

    def closing(self, question: str) -> str:
        """The text after the haystack, with the question filled in."""
        return self.suffix.replace("{question}", question)


DEFAULT_TEMPLATE = PromptTemplate(
    system="You are a careful reader. Answer questions using only the document you are given.",
    prefix="Read the document below, then answer the question that follows it.\n\n<document>\n",
    suffix="\n</document>\n\nQuestion: {question}\nAnswer with the fact from the document, in as few words as possible.",
)

# For base models, which continue text rather than follow instructions: the prompt ends with an
# answer prefix, and the answer ends at a blank line or where the model starts a new question.
COMPLETION_TEMPLATE = PromptTemplate(
    system="",
    prefix="Read the document below, then answer the question that follows it.\n\n<document>\n",
    suffix="\n</document>\n\nQuestion: {question}\nAnswer:",
    stop=("\n\n", "Question:"),
)


def prompt_style(requested: str, provider: str, chat_template: str | None) -> PromptStyle:
    """``chat`` or ``completion``: as configured, else completion for a local model without a chat template."""
    if requested in ("chat", "completion"):
        return "chat" if requested == "chat" else "completion"
    # A GGUF that carries a chat template was tuned to follow one; one without is a base model.
    return "completion" if provider == "llamacpp" and not chat_template else "chat"


def template_for(style: PromptStyle) -> PromptTemplate:
    """The template of a prompt style."""
    return COMPLETION_TEMPLATE if style == "completion" else DEFAULT_TEMPLATE
