"""The needle library: enough varied facts, templates that vary per trial, and a clean format."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from haystack_eval.contexts import load_filler, load_needles
from haystack_eval.contexts.needles import LIBRARY
from haystack_eval.errors import NeedleError

LIB = load_needles(LIBRARY)


def test_the_library_has_many_varied_fixed_needles_and_templates() -> None:
    fixed = [s for s in LIB.specs if not s.values]
    templates = [s for s in LIB.specs if s.values]
    assert len(fixed) >= 30
    assert len(templates) >= 5
    kinds = Counter(s.kind for s in fixed)
    assert {"number", "name", "place", "phrase", "code"} <= set(kinds)
    assert all(count >= 4 for kind, count in kinds.items() if kind in ("number", "name", "place", "phrase", "code"))


def test_no_famous_needle_and_no_answer_in_the_bundled_fillers() -> None:
    text = " ".join(s.needle.lower() for s in LIB.specs)
    assert "sandwich" not in text and "dolores" not in text and "san francisco" not in text
    for filler in ("essays", "noise"):
        corpus = " ".join(d.text for d in load_filler(filler).documents)
        for spec in LIB.specs:
            if not spec.values:
                assert not re.search(r"(?<!\w)" + re.escape(spec.answer) + r"(?!\w)", corpus, re.IGNORECASE), spec.id


def test_every_drawn_answer_is_in_its_needle_and_not_in_its_question() -> None:
    drawn = [LIB.pick(seed, trial) for seed in range(3) for trial in range(len(LIB.specs) * 2)]
    for n in drawn:
        assert n.answer.lower() in n.text.lower()
        assert n.answer.lower() not in n.question.lower()
        assert n.text.endswith((".", "!", "?"))
        assert "{" not in n.text + n.question + n.answer


def test_picks_are_deterministic_and_cover_the_library() -> None:
    first = [LIB.pick(7, t) for t in range(len(LIB.specs))]
    assert first == [LIB.pick(7, t) for t in range(len(LIB.specs))]
    assert {n.id for n in first} == {s.id for s in LIB.specs}, "consecutive trials take different needles"
    assert [n.id for n in first] != [n.id for n in (LIB.pick(8, t) for t in range(len(LIB.specs)))]


def test_templates_draw_fresh_values_per_trial() -> None:
    code = next(s for s in LIB.specs if s.id == "archive-code")
    n = len(LIB.specs)
    trials = [t for t in range(n * 6) if LIB.pick(0, t).id == code.id]
    answers = {LIB.pick(0, t).answer for t in trials}
    assert len(trials) == 6 and len(answers) == 6
    assert all(re.fullmatch(r"[1-9]\d{6}", a) for a in answers)


def _entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = {"id": "a", "needle": "The code is 12345.", "question": "What is the code?",
                                "answer": "12345", "kind": "number"}
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "non-empty list of needles"),
        (json.dumps({"needles": [_entry(x=1)]}), "needle 0.x: Extra inputs are not permitted"),
        (json.dumps([_entry(needle="The code is 12345")]), "ending with"),
        (json.dumps([_entry(question="Is the code 12345?")]), "must not contain the answer"),
        (json.dumps([_entry(answer="999")]), "must appear in the needle"),
        (json.dumps([_entry(needle="The code is {c}.", answer="{c}", values={"c": "digits:0"})]), "is not digits:N"),
        (json.dumps([_entry(needle="The code is {c}.", answer="{c}")]), "must match"),
        (json.dumps([_entry(), _entry(needle="The code is 67890.", answer="67890")]), "used twice"),
        (json.dumps([_entry(kind="colour")]), "needle 0.kind"),
        ("needles: [unclosed", "is not valid YAML"),
    ],
)
def test_bad_needle_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "needles.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NeedleError) as info:
        load_needles(str(path))
    assert message in info.value.line()
    assert str(path) in info.value.line()


def test_a_missing_needle_file(tmp_path: Path) -> None:
    with pytest.raises(NeedleError, match="file not found"):
        load_needles("nope.yaml", tmp_path)
