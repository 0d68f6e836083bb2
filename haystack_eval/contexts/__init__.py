"""Contexts: tokenizers, filler corpora, the needle library and the token-exact context builder."""

from haystack_eval.contexts.builder import ContextBuilder
from haystack_eval.contexts.context import Context, PlacedNeedle
from haystack_eval.contexts.fillers import Corpus, load_filler
from haystack_eval.contexts.needles import Needle, NeedleSet, load_needles
from haystack_eval.contexts.prompt import (
    COMPLETION_TEMPLATE,
    DEFAULT_TEMPLATE,
    Message,
    Prompt,
    PromptStyle,
    PromptTemplate,
    prompt_style,
    template_for,
)
from haystack_eval.contexts.resolve import build_context, builder_for
from haystack_eval.contexts.tokenizers import Tokenizer, resolve_tokenizer

__all__ = [
    "COMPLETION_TEMPLATE",
    "DEFAULT_TEMPLATE",
    "Context",
    "ContextBuilder",
    "Corpus",
    "Message",
    "Needle",
    "NeedleSet",
    "PlacedNeedle",
    "Prompt",
    "PromptStyle",
    "PromptTemplate",
    "Tokenizer",
    "build_context",
    "builder_for",
    "load_filler",
    "load_needles",
    "prompt_style",
    "resolve_tokenizer",
    "template_for",
]
