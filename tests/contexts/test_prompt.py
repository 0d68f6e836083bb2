"""Prompt styles: chat messages for instruction-following models, a completion text for base models."""

from __future__ import annotations

import pytest

from haystack_eval.config import ModelConfig
from haystack_eval.contexts import COMPLETION_TEMPLATE, DEFAULT_TEMPLATE, ContextBuilder, prompt_style, template_for
from haystack_eval.contexts.fillers import load_filler
from haystack_eval.contexts.needles import load_needles
from tests.conftest import tokenizer


@pytest.mark.parametrize(("requested", "provider", "chat_template", "style"), [
    ("auto", "llamacpp", None, "completion"),  # a GGUF without a chat template is a base model
    ("auto", "llamacpp", "{% for m in messages %}...", "chat"),
    ("auto", "openai", None, "chat"),
    ("auto", "scripted", None, "chat"),
    ("chat", "llamacpp", None, "chat"),
    ("completion", "llamacpp", "{% ... %}", "completion"),
])
def test_prompt_style(requested: str, provider: str, chat_template: str | None, style: str) -> None:
    assert prompt_style(requested, provider, chat_template) == style


def test_a_completion_prompt_is_one_text_ending_in_an_answer_prefix() -> None:
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library"), seed=0,
                             template=template_for("completion"))
    ctx = builder.build(800, 50.0, 1)
    assert [m.role for m in ctx.prompt.messages] == ["user"]
    text = ctx.prompt.text
    assert text.startswith(COMPLETION_TEMPLATE.prefix)
    assert text.endswith(f"\n</document>\n\nQuestion: {ctx.question}\nAnswer:")
    assert ctx.prompt.stop == ("\n\n", "Question:")
    assert text.count(ctx.needles[0].text) == 1
    assert 798 <= ctx.tokens <= 800 and tokenizer("o200k_base").count(text) == ctx.tokens
    assert ctx.to_json()["stop"] == ["\n\n", "Question:"]


def test_a_chat_prompt_keeps_its_system_message_and_no_stops() -> None:
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library"), seed=0)
    ctx = builder.build(800, 50.0, 0)
    assert [m.role for m in ctx.prompt.messages] == ["system", "user"] and ctx.prompt.stop == ()
    assert template_for("chat") is DEFAULT_TEMPLATE
    assert ctx.prompt.text == f"{DEFAULT_TEMPLATE.system}\n\n{ctx.prompt.user}"


def test_completion_prompts_are_for_local_models_only() -> None:
    with pytest.raises(ValueError, match="prompt: completion needs a local model"):
        ModelConfig(provider="openai", name="gpt-4o", prompt="completion")
