"""From a validated config to a ready context builder, with every input checked on the way."""

from __future__ import annotations

from haystack_eval.config import Config
from haystack_eval.contexts.builder import MIN_HAYSTACK_TOKENS, ContextBuilder
from haystack_eval.contexts.context import Context
from haystack_eval.contexts.fillers import load_filler
from haystack_eval.contexts.needles import load_needles
from haystack_eval.contexts.prompt import prompt_style, template_for
from haystack_eval.contexts.tasks import Task
from haystack_eval.contexts.tokenizers import resolve_tokenizer
from haystack_eval.errors import ConfigError

__all__ = ["build_context", "builder_for"]

# Lower layers name the field they complain about; here it gains the config's file and line.
_FIELDS = {"model.tokenizer": ("model", "tokenizer"), "haystack.filler": ("haystack", "filler"),
           "task.needles": ("task", "needles")}


def _located(config: Config, exc: ConfigError) -> ConfigError:
    loc = _FIELDS.get(exc.where or "")
    if loc is None:
        return exc
    return type(exc)(exc.problem, where=config.where(*loc), fix=exc.fix, also=exc.also)


def builder_for(config: Config) -> ContextBuilder:
    """A builder for the config, after checking that every length of the grid can be built."""
    try:
        tokenizer = resolve_tokenizer(config.model.tokenizer, config.model.provider, config.model.name, config.base_dir)
        corpus = load_filler(config.haystack.filler, config.base_dir)
        needles = load_needles(config.task.needle_source, config.base_dir)
        style = prompt_style(config.model.prompt, config.model.provider, getattr(tokenizer, "chat_template", None))
        builder = ContextBuilder(tokenizer, corpus, needles, seed=config.task.seed, template=template_for(style),
                                 task=Task(config.task, needles))
        smallest = builder.min_length(config.task.trials)
    except ConfigError as exc:
        raise _located(config, exc) from None
    lengths = config.haystack.length_values()
    listed = isinstance(config.haystack.lengths, list)
    for i, length in enumerate(lengths):
        if length < smallest:
            raise config.error(
                ("haystack", "lengths", i) if listed else ("haystack", "lengths", "min"),
                f"length {length} is below the {smallest} tokens a prompt needs here (instructions, "
                f"question and needle take {smallest - MIN_HAYSTACK_TOKENS}, plus {MIN_HAYSTACK_TOKENS} of haystack)",
                f"use lengths of at least {smallest}",
            )
    window = config.model.context_window
    if window is not None:
        longest = max(lengths) + config.model.params.max_output_tokens
        if longest > window:
            raise config.error(
                ("haystack", "lengths"),
                f"the longest length {max(lengths)} plus max_output_tokens "
                f"{config.model.params.max_output_tokens} exceeds model.context_window {window}",
                "drop the longer lengths or correct model.context_window",
            )
    return builder


def build_context(config: Config, length: int, depth: float, trial: int = 0) -> Context:
    """Build the context of one cell of a config's sweep."""
    return builder_for(config).build(length, depth, trial)
