"""The Grader: pure methods delegate; the judge asks a model (the fake OpenAI-compatible server) and never
sees the haystack; replies that do not parse and requests that fail leave the answer unscored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from haystack_eval.config import ScoringConfig
from haystack_eval.contexts import ContextBuilder, load_filler, load_needles
from haystack_eval.errors import ConfigError
from haystack_eval.scoring import Graded, grade
from haystack_eval.sweep.grading import Grader, judge_prompt, parse_verdicts
from tests.conftest import tokenizer
from tests.fakes.provider_server import FakeProvider, FaultPlan

CTX = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library")).build(2_000, 50, 0)
COLOURS = ["red", "green", "blue"]


class Judge:
    """The fake server's answer: a fixed judge reply, changeable per test."""

    def __init__(self) -> None:
        self.text = "CORRECT"

    def __call__(self, _document: str, _question: str) -> str:
        return self.text


@pytest.fixture
def judge() -> Judge:
    return Judge()


@pytest.fixture
def server(judge: Judge) -> Iterator[FakeProvider]:
    with FakeProvider(answer=judge) as fake:
        yield fake


def judged(server: FakeProvider, **judge: Any) -> ScoringConfig:
    model = {"provider": "openai-compatible", "name": "judge-model", "base_url": server.openai_base_url, **judge}
    return ScoringConfig.model_validate({"method": "judge", "judge": model})


def run_grader(scoring: ScoringConfig, question: str, expected: Sequence[str], answer: str, *,
               max_retries: int = 2, timeout_s: float = 10.0) -> Graded:
    async def go() -> Graded:
        grader = Grader(scoring, base_dir=Path.cwd(), timeout_s=timeout_s, max_retries=max_retries, retry_base_s=0.0)
        try:
            return await grader.grade(question, expected, answer)
        finally:
            await grader.aclose()

    return asyncio.run(go())


def test_the_judge_sees_the_question_answer_and_reply_but_never_the_haystack(server: FakeProvider) -> None:
    reply = f"I believe it is {CTX.expected}, as the document says."
    result = run_grader(judged(server), CTX.question, [CTX.expected], reply)
    assert result == Graded(score=1.0, parts=(1.0,), note="judge: CORRECT")
    (request,) = server.requests
    body = request.body
    sent = "\n".join(m["content"] for m in body["messages"])
    assert CTX.question in sent and CTX.expected in sent and reply in sent
    assert "CORRECT or INCORRECT" in sent and "several conflicting candidates" in sent  # the rubric
    haystack = CTX.prompt.user.partition("<document>")[2].partition("</document>")[0]
    assert len(haystack) > 5_000 and len(sent) < 2_000
    assert CTX.needles[0].text not in sent  # the needle sentence stays in the haystack
    assert not any(line in sent for line in haystack.splitlines() if len(line) > 40)  # no filler line either
    assert body["temperature"] == 0 and body["max_tokens"] == 32
    assert body["model"] == "judge-model"


@pytest.mark.parametrize(("verdict", "expected"), [
    ("CORRECT", Graded(1.0, (1.0,), "judge: CORRECT")),
    ("Incorrect.", Graded(0.0, (0.0,), "judge: Incorrect.")),
    ("**correct**", Graded(1.0, (1.0,), "judge: **correct**")),
    ("The reply is correct.", Graded(None, (), "judge reply did not parse: 'The reply is correct.'")),
    ("CORRECT\nINCORRECT", Graded(None, (), "judge reply did not parse: 'CORRECT INCORRECT'")),
])
def test_one_expected_answer_takes_one_verdict_word(server: FakeProvider, judge: Judge, verdict: str,
                                                    expected: Graded) -> None:
    judge.text = verdict
    assert run_grader(judged(server), "What colour is the door?", ["blue"], "It is blue.") == expected


@pytest.mark.parametrize(("verdict", "score", "parts"), [
    ("1: CORRECT\n2: INCORRECT\n3: CORRECT", 2 / 3, (1.0, 0.0, 1.0)),
    ("1: CORRECT\n2: CORRECT\n3: CORRECT", 1.0, (1.0, 1.0, 1.0)),
    ("1: CORRECT\n2: INCORRECT", None, ()),  # a line missing
    ("SCORE: 2/3", None, ()),
])
def test_several_expected_answers_take_one_numbered_verdict_each(server: FakeProvider, judge: Judge, verdict: str,
                                                                 score: float | None,
                                                                 parts: tuple[float, ...]) -> None:
    judge.text = verdict
    result = run_grader(judged(server), "Which three colours?", COLOURS, "Red, then blue.")
    assert (result.score, result.parts) == (pytest.approx(score) if score is not None else None, parts)
    sent = server.requests[0].body["messages"][1]["content"]
    assert "1. red\n2. green\n3. blue" in sent and 'Write exactly 3 lines' in sent


@pytest.mark.parametrize(("text", "count", "parts"), [
    ("CORRECT", 1, (1.0,)),
    ("  incorrect \n", 1, (0.0,)),
    ("`CORRECT`.", 1, (1.0,)),
    ("INCORRECT", 1, (0.0,)),  # not read as "CORRECT" inside it
    ("", 1, None),
    ("YES", 1, None),
    ("CORRECT, mostly", 1, None),
    ("1: CORRECT", 1, None),
    ("1: CORRECT\n\n2) incorrect\n3. **CORRECT**", 3, (1.0, 0.0, 1.0)),
    ("2: CORRECT\n1: CORRECT", 2, None),  # out of order
    ("1: CORRECT\n2: CORRECT\n3: CORRECT", 2, None),  # a line too many
    ("1: CORRECT\n2: MAYBE", 2, None),
    ("CORRECT\nCORRECT", 2, None),  # unnumbered
])
def test_parse_verdicts(text: str, count: int, parts: tuple[float, ...] | None) -> None:
    assert parse_verdicts(text, count) == parts


def test_a_judge_that_keeps_failing_leaves_the_answer_unscored_after_its_retries(server: FakeProvider) -> None:
    server.faults = FaultPlan(sticky={"Reply to grade": "503"})
    result = run_grader(judged(server), "What colour?", ["blue"], "blue", max_retries=2)
    assert result.score is None and result.parts == ()
    assert result.note is not None and result.note.startswith("judge request failed (ServerError, 3 attempts)")
    assert len(server.requests) == 3


def test_a_fatal_judge_error_is_not_retried(server: FakeProvider) -> None:
    server.faults = FaultPlan(sticky={"Reply to grade": "context_length"})
    result = run_grader(judged(server), "What colour?", ["blue"], "blue", max_retries=2)
    assert result.score is None
    assert result.note is not None and result.note.startswith("judge request failed (ContextTooLong, 1 attempt)")
    assert len(server.requests) == 1


def test_a_refused_judge_key_stops_the_run_in_one_line(server: FakeProvider) -> None:
    """Every other cell would meet the same refusal: a config error, not a column of unscored cells."""
    server.faults = FaultPlan(sticky={"Reply to grade": "auth"})
    with pytest.raises(ConfigError) as info:
        run_grader(judged(server), "What colour?", ["blue"], "blue", max_retries=2)
    assert info.value.line().startswith("scoring.judge: the judge's server refused the request (HTTP 401")
    assert len(server.requests) == 1


def test_a_judge_that_fails_once_is_asked_again(server: FakeProvider) -> None:
    server.faults = FaultPlan(script=["500", "malformed"])
    result = run_grader(judged(server), "What colour?", ["blue"], "blue", max_retries=2)
    assert result == Graded(1.0, (1.0,), "judge: CORRECT")
    assert [r.fault for r in server.requests] == ["500", "malformed", "ok"]


def test_a_judge_that_hangs_times_out(server: FakeProvider) -> None:
    server.faults = FaultPlan(script=["hang"], hang_s=5.0)
    result = run_grader(judged(server), "What colour?", ["blue"], "blue", max_retries=0, timeout_s=0.3)
    assert result.score is None
    assert result.note is not None and result.note.startswith("judge request failed (RequestTimeout, 1 attempt)")


def test_an_empty_reply_is_wrong_without_asking_the_judge(server: FakeProvider) -> None:
    assert run_grader(judged(server), "Which?", COLOURS, "  \n") == Graded(0.0, (0.0, 0.0, 0.0), "empty reply")
    assert server.requests == []


def test_a_scripted_judge_needs_no_network() -> None:
    canned = ScoringConfig.model_validate({"method": "judge", "judge": {"provider": "scripted", "name": "canned:CORRECT"}})
    assert run_grader(canned, "What colour?", ["blue"], "blue").score == 1.0
    down = ScoringConfig.model_validate({"method": "judge", "judge": {"provider": "scripted", "name": "unavailable"}})
    note = run_grader(down, "What colour?", ["blue"], "blue", max_retries=1).note
    assert note is not None and note.startswith("judge request failed (ServerError, 2 attempts)")


@pytest.mark.parametrize(("method", "expected", "answer"), [
    ("contains", COLOURS, "red and blue"),
    ("exact", ["blue"], "Blue."),
    ("numeric", ["1276"], "1,276"),
    ("f1", ["blue door"], "the door"),
])
def test_other_methods_grade_without_a_model(method: str, expected: list[str], answer: str) -> None:
    scoring = ScoringConfig.model_validate({"method": method})
    assert run_grader(scoring, "unused", expected, answer) == grade(scoring, expected, answer)


def test_the_judge_prompt_lists_several_answers_and_only_what_it_is_given() -> None:
    prompt = judge_prompt("Which colours?", COLOURS, "red")
    assert [m.role for m in prompt.messages] == ["system", "user"]
    assert "<reply>\nred\n</reply>" in prompt.user and "3 lines" in prompt.user
    assert "one word" in judge_prompt("Which colour?", ["red"], "red").user
