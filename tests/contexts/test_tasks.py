"""Task kinds: what each hides and asks, and the context invariants with several hidden sentences."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haystack_eval.config import Config, TaskConfig
from haystack_eval.contexts import Context, ContextBuilder, builder_for
from haystack_eval.contexts.tasks import DISTRACTOR_GAP, NOT_STATED
from haystack_eval.errors import ConfigError

KINDS: dict[str, dict[str, Any]] = {
    "single": {},
    "latent": {"kind": "latent"},
    "multi": {"kind": "multi", "count": 3},
    "multi-offsets": {"kind": "multi", "count": 3, "offsets": [5, 40]},
    "multikey": {"kind": "multikey", "value_type": "words"},
    "multivalue": {"kind": "multivalue", "count": 4, "value_type": "uuids"},
    "multiquery": {"kind": "multiquery", "count": 2, "distractors": 5},
    "distractor": {"kind": "distractor", "distractors": 2},
    "absent": {"kind": "absent"},
}
_KEY = re.compile(r"filed under (\S+) is")


def _config(task: dict[str, Any], filler: str = "essays") -> Config:
    return Config.model_validate({
        "name": "t", "model": {"provider": "scripted", "name": "oracle", "tokenizer": "tiktoken:o200k_base"},
        "haystack": {"filler": filler, "lengths": [1500], "depths": [0]}, "task": {"seed": 3, **task},
    })


@cache
def _builder(name: str, filler: str = "essays") -> ContextBuilder:
    return builder_for(_config(KINDS[name], filler))


def check(ctx: Context, builder: ContextBuilder, length: int) -> None:
    """The invariants every task kind keeps, measured from the prompt's text."""
    tok = builder.tokenizer
    assert ctx.tokens == sum(tok.count(m.content) for m in ctx.prompt.messages)
    assert length - 2 <= ctx.tokens <= length
    text = ctx.prompt.user
    for hidden in ctx.needles:
        assert text.count(hidden.text) == 1, "each hidden sentence occurs once"
        assert text[hidden.char_offset:].startswith(hidden.text)
        assert text[: hidden.char_offset].rstrip(" ").endswith(("<document>\n", ".", "!", "?", '"', "'", ")", "\n"))
    whole = "\n".join(m.content for m in ctx.prompt.messages).casefold()
    for answer in ctx.answers:
        found = re.findall(r"(?<!\w)" + re.escape(answer.casefold()) + r"(?!\w)", whole)
        assert len(found) == 1, f"the answer {answer!r} occurs once, in its needle"
    assert [n.answer for n in ctx.targets] == list(ctx.answers)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(KINDS)),
    length=st.integers(600, 5000),
    depth=st.floats(0, 100, allow_nan=False).map(lambda d: round(d, 1)),
    trial=st.integers(0, 30),
    filler=st.sampled_from(["essays", "noise"]),
)
def test_every_kind_keeps_the_context_invariants(name: str, length: int, depth: float, trial: int, filler: str) -> None:
    builder = _builder(name, filler)
    ctx = builder.build(length, depth, trial)
    check(ctx, builder, length)
    assert builder.build(length, depth, trial) == ctx, "the same cell gives the same context"
    if ctx.targets:
        # the first needle sits at the cell's depth (the nearest sentence boundary), the others after it
        depths = [n.depth for n in ctx.targets]
        assert depths == sorted(depths)
    if name == "distractor":
        first = ctx.targets[0].depth
        assert all(abs(d.depth - first) >= DISTRACTOR_GAP for d in ctx.needles if d.role == "distractor")


@pytest.mark.parametrize(("name", "needles", "distractors"), [
    ("single", 1, 0), ("latent", 1, 0), ("multi", 3, 0), ("multikey", 1, 3), ("multivalue", 4, 0),
    ("multiquery", 2, 5), ("distractor", 1, 2), ("absent", 0, 0),
])
def test_each_kind_hides_what_it_says(name: str, needles: int, distractors: int) -> None:
    for trial in range(6):
        ctx = _builder(name).build(2000, 30.0, trial)
        roles = [n.role for n in ctx.needles]
        assert roles.count("needle") == needles and roles.count("distractor") == distractors
        assert len(ctx.answers) == needles and len(set(ctx.answers)) == needles
        assert ctx.task == KINDS[name].get("kind", "single")


def test_keyed_kinds_never_ask_a_distractors_key() -> None:
    for name in ("multikey", "multiquery", "multivalue"):
        for trial in range(10):
            ctx = _builder(name).build(1500, 50.0, trial)
            asked = {_KEY.search(n.text).group(1) for n in ctx.targets}  # type: ignore[union-attr]
            others = [_KEY.search(n.text).group(1) for n in ctx.needles if n.role == "distractor"]  # type: ignore[union-attr]
            assert not asked & set(others) and len(set(others)) == len(others)
            assert all(key in ctx.question for key in asked)
            assert len(asked) == (2 if name == "multiquery" else 1)  # multivalue: one key, every value
            values = [n.answer for n in ctx.needles]
            assert len(set(values)) == len(values)


def test_value_types_have_their_shape() -> None:
    words = _builder("multikey").build(1500, 50.0, 0).answers[0]
    assert re.fullmatch(r"[a-z]+-[a-z]+", words)
    assert all(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", a)
               for a in _builder("multivalue").build(1500, 50.0, 0).answers)
    assert all(re.fullmatch(r"[1-9]\d{6}", a) for a in _builder("multiquery").build(1500, 50.0, 0).answers)


def test_multi_spreads_needles_from_the_depth_onward_or_at_offsets() -> None:
    spread = _builder("multi").build(4000, 40.0, 0).targets
    assert [round(n.depth / 10) for n in spread] == [4, 6, 8]  # 40, 60, 80: evenly from 40 to 100
    offsets = _builder("multi-offsets").build(4000, 40.0, 0).targets
    assert [round(n.depth / 5) * 5 for n in offsets] == [40, 45, 80]


def test_distractors_are_near_misses_of_the_needle() -> None:
    for trial in range(8):
        ctx = _builder("distractor").build(3000, 50.0, trial)
        needle, *near = ctx.needles
        shape = re.sub(r"[A-Z0-9][\w-]*", "X", needle.text)
        for other in near:
            assert other.role == "distractor" and other.answer != needle.answer
            assert re.sub(r"[A-Z0-9][\w-]*", "X", other.text) == shape or other.id == needle.id
            assert other.text not in ctx.question  # it names another entity than the question


def test_absent_hides_nothing_and_offers_not_stated() -> None:
    ctx = _builder("absent").build(1500, 0.0, 0)
    assert ctx.needles == () and ctx.answers == () and ctx.depth_actual is None
    assert ctx.question.endswith(f"answer: {NOT_STATED}.")
    single = _builder("single").build(1500, 0.0, 0)
    assert ctx.question.startswith(single.question.split("?")[0])  # the question of a needle left out


@pytest.mark.parametrize(("task", "message"), [
    ({"count": 3}, "task.count applies to kinds multi, multivalue, multiquery, not single; remove it"),
    ({"kind": "latent", "distractors": 2}, "task.distractors applies to kinds multikey, multiquery, distractor"),
    ({"kind": "multi", "count": 3, "offsets": [10]}, "task.offsets needs 2 values in 0..100"),
    ({"kind": "multi", "offsets": [10, 120]}, "task.offsets needs 2 values in 0..100"),
    ({"kind": "distractor", "distractors": 0}, "needs at least one distractor"),
    ({"kind": "multi", "count": 1}, "greater than or equal to 2"),
    ({"kind": "needle-soup"}, "needle-soup"),
])
def test_bad_task_settings_are_refused(task: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception) as info:
        TaskConfig.model_validate(task)
    assert message in str(info.value)


def test_absent_refuses_several_depths(write_config: Any) -> None:
    from haystack_eval import load_config

    path = write_config("""\
        name: t
        model: {provider: scripted, name: oracle}
        haystack: {lengths: [1000], depths: [0, 50]}
        task: {kind: absent}
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "task.kind absent hides no needle" in info.value.line() and "haystack.depths: [0]" in info.value.line()


def test_a_near_miss_never_lands_within_the_gap_even_when_aimed_there() -> None:
    builder = _builder("distractor")
    ctx = builder.build(1200, 50.0, 0)
    window = builder._window(1200, 0)
    anchor = builder._needle_position(window, 50.0)
    hay = builder._hay_tokens(window)
    base = builder.stream.position(window.first)
    for aim in (35.0, 50.0, 65.0):  # inside the gap around the needle: the nearest boundary outside it wins
        at = builder._boundary_away(window, aim, anchor, DISTRACTOR_GAP)
        apart = abs(builder.stream.position(at) - builder.stream.position(anchor)) / hay * 100
        assert apart >= DISTRACTOR_GAP
        assert builder._boundary_away(window, aim, anchor, None) != at or aim != 50.0
    assert abs(builder.stream.position(anchor) - base) / hay * 100 == pytest.approx(ctx.targets[0].depth, abs=1)
