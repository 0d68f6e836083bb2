"""The pure scorers: every method passes and fails where it should, and ScoringConfig refuses misfits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from haystack_eval.config import ScoringConfig, load_config
from haystack_eval.errors import ConfigError
from haystack_eval.scoring import Graded, abstains, grade, normalise_answer, parse_numbers, token_f1
from tests.conftest import MINIMAL_CONFIG


def graded(method: str, expected: list[str], answer: str, **settings: Any) -> Graded:
    return grade(ScoringConfig.model_validate({"method": method, **settings}), expected, answer)


@pytest.mark.parametrize(("text", "normalised"), [
    ("  The  Blue\tDoor! ", "the blue door"),
    ("ÉCOLE", "école"),  # case-folded, accents kept
    ("Straße", "strasse"),  # casefold, not lower
    ("ﬁve", "five"),  # NFKC unfolds the ligature
    ("1,276.5", "1 276 5"),  # punctuation is dropped (numeric reads numbers before that)
    ("well-known", "well known"),
    ("", ""),
])
def test_normalise_answer(text: str, normalised: str) -> None:
    assert normalise_answer(text) == normalised


# (method, expected answers, reply, settings, score, parts)
Case = tuple[str, list[str], str, dict[str, Any], float, tuple[float, ...]]
ONE_ANSWER: list[Case] = [
    ("contains", ["blue door"], "It is the Blue Door.", {}, 1.0, (1.0,)),
    ("contains", ["blue door"], "It is the blue doorway.", {}, 0.0, (0.0,)),  # whole words only
    ("contains", ["door"], "trapdoor", {}, 0.0, (0.0,)),
    ("contains", ["Mont-Blanc"], "mont blanc, of course", {}, 1.0, (1.0,)),  # punctuation ignored on both sides
    ("contains", [""], "anything", {}, 0.0, (0.0,)),  # an empty answer is never found
    ("exact", ["blue door"], "Blue door.", {}, 1.0, (1.0,)),
    ("exact", ["blue door"], "The blue door.", {}, 0.0, (0.0,)),
    ("exact", [""], "", {}, 0.0, (0.0,)),
    ("regex", ["blue door"], "the BLUE DOOR", {}, 1.0, (1.0,)),  # the default pattern: whole words
    ("regex", ["blue door"], "the blue doors", {}, 0.0, (0.0,)),
    ("regex", ["door"], "the door is blue", {"pattern": r"^the {answer}\b"}, 1.0, (1.0,)),
    ("regex", ["door"], "a door is blue", {"pattern": r"^the {answer}\b"}, 0.0, (0.0,)),
    ("regex", ["blue door"], "answer: blue door", {"pattern": r"answer {answer}$"}, 1.0, (1.0,)),  # ":" dropped
    ("regex", ["a.b"], "a b", {"pattern": r"{answer}"}, 1.0, (1.0,)),  # the normalised answer is escaped
    ("regex", ["ab"], "a b", {"pattern": r"{answer}"}, 0.0, (0.0,)),
    ("numeric", ["1276"], "It is 1,276 metres.", {}, 1.0, (1.0,)),
    ("numeric", ["1,276"], "1276.0", {}, 1.0, (1.0,)),
    ("numeric", ["1276"], "It is 1,277.", {}, 0.0, (0.0,)),
    ("numeric", ["1276"], "It is 12,760.", {}, 0.0, (0.0,)),
    ("numeric", ["4500"], "about 4.5e3", {}, 1.0, (1.0,)),
    ("numeric", ["-3"], "It fell to -3 degrees.", {}, 1.0, (1.0,)),
    ("numeric", ["-3"], "It fell to 3 degrees.", {}, 0.0, (0.0,)),
    ("numeric", ["3"], "pages 10-3", {}, 1.0, (1.0,)),  # a hyphen after a digit is not a minus
    ("numeric", ["0.5"], "half: .5", {}, 1.0, (1.0,)),
    ("numeric", ["380"], "the A380", {}, 0.0, (0.0,)),  # not a number inside a word
    ("numeric", ["12"], "12km", {}, 1.0, (1.0,)),  # a unit may follow
    ("numeric", ["100"], "about 104", {"tolerance": 0.05}, 1.0, (1.0,)),
    ("numeric", ["100"], "about 106", {"tolerance": 0.05}, 0.0, (0.0,)),
    ("numeric", ["100"], "about 95", {"tolerance": 0.05}, 1.0, (1.0,)),
    ("numeric", ["blue door"], "the Blue Door", {}, 1.0, (1.0,)),  # not a number: matched like contains
    ("numeric", ["blue door"], "the red door", {}, 0.0, (0.0,)),
    ("numeric", ["1276 metres"], "1276 metres.", {}, 1.0, (1.0,)),  # not one number: matched like contains
    ("numeric", ["1276 metres"], "1276 feet", {}, 0.0, (0.0,)),
    ("f1", ["blue door"], "Blue door", {}, 1.0, (1.0,)),
    ("f1", ["blue door"], "the red car", {}, 0.0, (0.0,)),
]

# token F1 by hand: common tokens c, reply tokens r, expected tokens e: 2c / (r + e)
F1_BY_HAND = [
    ("the red car", "It was a red car", 2 * 2 / (5 + 3)),  # c=2 (red, car)
    ("blue door", "the blue door", 2 * 2 / (3 + 2)),  # c=2
    ("new york city", "York", 2 * 1 / (1 + 3)),  # c=1
    ("a a b", "a b b", 2 * 2 / (3 + 3)),  # counts clip: c = min(2,1) + min(1,2) = 2
    ("", "anything", 0.0),
    ("blue", "", 0.0),
]


@pytest.mark.parametrize(("method", "expected", "reply", "settings", "total", "parts"), ONE_ANSWER)
def test_one_expected_answer(method: str, expected: list[str], reply: str, settings: dict[str, Any],
                             total: float, parts: tuple[float, ...]) -> None:
    result = graded(method, expected, reply, **settings)
    assert (result.score, result.parts, result.note) == (total, parts, None)


@pytest.mark.parametrize(("expected", "reply", "value"), F1_BY_HAND)
def test_token_f1_by_hand(expected: str, reply: str, value: float) -> None:
    assert token_f1(expected, reply) == pytest.approx(value)
    if expected:
        result = graded("f1", [expected], reply)
        assert result.score == pytest.approx(value) and result.parts == pytest.approx((value,))


COLOURS = ["red", "green", "blue"]
SEVERAL: list[Case] = [
    ("contains", COLOURS, "Red and blue.", {}, 2 / 3, (1.0, 0.0, 1.0)),
    ("contains", COLOURS, "red, green, blue", {}, 1.0, (1.0, 1.0, 1.0)),
    ("contains", COLOURS, "I cannot tell.", {}, 0.0, (0.0, 0.0, 0.0)),
    ("all", COLOURS, "Red and blue.", {}, 2 / 3, (1.0, 0.0, 1.0)),
    ("all", COLOURS, "greenish", {}, 0.0, (0.0, 0.0, 0.0)),
    ("any", COLOURS, "Only blue.", {}, 1.0, (0.0, 0.0, 1.0)),
    ("any", COLOURS, "Purple.", {}, 0.0, (0.0, 0.0, 0.0)),
    ("exact", COLOURS, "1. Red\n2) green\n- BLUE", {}, 1.0, (1.0, 1.0, 1.0)),
    ("exact", COLOURS, "red; green, and blue.", {}, 1.0, (1.0, 1.0, 1.0)),
    ("exact", COLOURS, "* red\n• green", {}, 2 / 3, (1.0, 1.0, 0.0)),
    ("exact", COLOURS, "red, dark green, blue", {}, 2 / 3, (1.0, 0.0, 1.0)),  # an item must equal the answer
    ("exact", COLOURS, "red green blue", {}, 0.0, (0.0, 0.0, 0.0)),  # one item, equal to none
    ("exact", ["1,276", "42"], "1,276, 42", {}, 1.0, (1.0, 1.0)),  # thousands commas do not split
    ("regex", COLOURS, "red and blue", {}, 2 / 3, (1.0, 0.0, 1.0)),
    ("numeric", ["1276", "42", "blue door"], "1,276 and 42.0", {}, 2 / 3, (1.0, 1.0, 0.0)),
    ("f1", ["red car", "blue door"], "red car", {}, 0.5, (1.0, 0.0)),
]


@pytest.mark.parametrize(("method", "expected", "reply", "settings", "total", "parts"), SEVERAL)
def test_several_expected_answers_get_a_part_each(method: str, expected: list[str], reply: str,
                                                  settings: dict[str, Any], total: float,
                                                  parts: tuple[float, ...]) -> None:
    result = graded(method, expected, reply, **settings)
    assert result.score == pytest.approx(total)
    assert result.parts == parts


def test_parse_numbers() -> None:
    text = "It is 1,276 (or 1276.0), -3, 4.5e3, A380, 12km, 1,2,3, 1990,2000, v1.2 and \u22127."
    assert parse_numbers(text) == [1276, 1276, -3, 4500, 12, 1, 2, 3, 1990, 2000, -7]
    assert parse_numbers("no numbers here") == []


def test_the_judge_and_bad_inputs_are_refused_by_grade() -> None:
    judge = ScoringConfig.model_validate({"method": "judge", "judge": {"provider": "scripted", "name": "canned:x"}})
    with pytest.raises(ValueError, match="Grader"):
        grade(judge, ["a"], "a")
    with pytest.raises(TypeError, match="not one string"):
        grade(ScoringConfig(), "abc", "a")


@pytest.mark.parametrize(("reply", "says_so"), [
    ("not stated", True), ("Not stated.", True), ("The document does not say.", True),
    ("It doesn't mention that.", True), ("I can't find it in the text.", True), ("Unknown.", True),
    ("The answer is not in the document.", True), ("Cannot be determined from the text.", True),
    ("I could not find that in the document.", True), ("No information is given.", True),
    ("438", False), ("It is 438, not 439.", False), ("Nothing", False), ("Orla Finchwick", False),
    ("The statement is wrong", False), ("", False),
])
def test_abstaining_replies_are_recognised(reply: str, says_so: bool) -> None:
    assert abstains(reply) is says_so


@pytest.mark.parametrize("method", ["contains", "exact", "regex", "numeric", "f1", "any", "all"])
def test_without_an_expected_answer_only_saying_so_scores(method: str) -> None:
    scoring = ScoringConfig.model_validate({"method": method})
    assert grade(scoring, [], "The document does not say.") == Graded(1.0, ())
    wrong = grade(scoring, [], "It is 438.")
    assert wrong.score == 0.0 and wrong.note == "answered what the document does not say"


def test_the_default_config() -> None:
    config = ScoringConfig()
    assert (config.method, config.pattern, config.tolerance, config.judge) == ("contains", None, 0.0, None)


JUDGE = {"provider": "openai", "name": "gpt-4o-mini"}
BAD_SCORING: list[tuple[dict[str, Any], str]] = [
    ({"method": "judge"}, "method judge needs scoring.judge"),
    ({"method": "contains", "judge": JUDGE}, "remove scoring.judge or set scoring.method: judge"),
    ({"method": "judge", "judge": {"provider": "scripted", "name": "oracle"}}, "canned:CORRECT"),
    ({"method": "regex", "pattern": r"\bdoor\b"}, "the pattern has no {answer}"),
    ({"method": "regex", "pattern": r"({answer}"}, "not a valid regular expression"),
    ({"method": "regex", "pattern": r"[{answer}"}, "not a valid regular expression"),
    ({"method": "contains", "pattern": r"{answer}"}, "remove scoring.pattern or set scoring.method: regex"),
    ({"method": "exact", "tolerance": 0.1}, "remove scoring.tolerance or set scoring.method: numeric"),
    ({"method": "numeric", "tolerance": -0.1}, "greater than or equal to 0"),
    ({"method": "levenshtein"}, "Input should be"),
    ({"method": "contains", "threshold": 1}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("data", "message"), BAD_SCORING)
def test_scoring_settings_that_do_not_fit_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("(", r"\(")):
        ScoringConfig.model_validate(data)


GOOD_SCORING: list[dict[str, Any]] = [
    {"method": "judge", "judge": JUDGE},
    {"method": "judge", "judge": {"provider": "scripted", "name": "canned:CORRECT"}},
    {"method": "regex"},
    {"method": "regex", "pattern": r"^{answer}$"},
    {"method": "numeric", "tolerance": 0.01},
    {"method": "numeric", "tolerance": 0},
    {"method": "f1"},
]


@pytest.mark.parametrize("data", GOOD_SCORING)
def test_scoring_settings_that_fit_are_accepted(data: dict[str, Any]) -> None:
    assert ScoringConfig.model_validate(data).method == data["method"]


@pytest.mark.parametrize(("scoring", "expected"), [
    ("{method: regex, pattern: '\\bdoor'}", "config.yaml:5: scoring.pattern: the pattern has no {answer}; put"),
    ("{method: judge}", "config.yaml:5: scoring: method judge needs scoring.judge (the model that grades); add"),
])
def test_a_bad_scoring_section_is_one_config_line(write_config: Callable[..., Path], scoring: str,
                                                  expected: str) -> None:
    path = write_config(MINIMAL_CONFIG + f"scoring: {scoring}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in info.value.line()
