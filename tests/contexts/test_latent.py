"""The latent needle set: questions that share no content word with their needles.

Each latent needle hides an invented character's name in a sentence whose link to the question
takes one step of world knowledge (the Colosseum -> Rome). These tests render every value each
template can take and check that no content word of the question occurs in the needle, so that a
model cannot find the needle by matching words; that the answer is the name, in the needle and not
in the question; and that the invented names occur in no bundled filler.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import get_args

import pytest

from haystack_eval.contexts import load_filler, load_needles
from haystack_eval.contexts.needles import LIBRARY, NeedleKind, NeedleSpec

LATENT = load_needles("latent")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

# Words that carry no content: articles, pronouns, auxiliaries and the commonest verbs, prepositions,
# conjunctions, and the question frame ("which character ..."). Nothing topical belongs here.
STOP_WORDS = frozenset({
    "a", "an", "the",
    "i", "me", "my", "you", "your", "he", "him", "his", "she", "her", "it", "its", "we", "us", "our", "they",
    "them", "their", "someone",
    "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "do", "does", "did",
    "can", "could", "will", "would",
    "to", "in", "on", "at", "of", "for", "from", "with", "by", "as", "into", "onto", "about",
    "and", "or", "but", "not",
    "which", "who", "whom", "what", "character", "person",
})


def _words(text: str) -> list[str]:
    """Lowercased words; hyphenated words split, apostrophes kept for the possessive rule."""
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower().replace("\u2019", "'"))


def _forms(word: str) -> set[str]:
    """A word and its simple stems: without a trailing 's, s or es."""
    forms = {word}
    if word.endswith("'s"):
        word = word[:-2]
        forms.add(word)
    if len(word) > 3 and word.endswith("es"):
        forms.add(word[:-2])
    if len(word) > 2 and word.endswith("s"):
        forms.add(word[:-1])
    return forms


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not stop words."""
    return [w for w in _words(text) if not _forms(w) & STOP_WORDS]


def shared_words(needle: str, question: str) -> set[str]:
    """Content words of the question that the needle also has, up to simple plural/possessive stems."""
    needle_forms = set().union(*(_forms(w) for w in content_words(needle)))
    return {w for w in content_words(question) if _forms(w) & needle_forms}


def near_words(needle: str, question: str) -> set[tuple[str, str]]:
    """Stricter: word pairs where one stem starts the other (4+ letters) or both start alike (5+ letters).

    This catches derived forms the plain stems miss (paint/painting, Canada/Canadian).
    """
    pairs = set()
    for q in content_words(question):
        for n in content_words(needle):
            for a, b in itertools.product(_forms(q), _forms(n)):
                short, long_ = sorted((a, b), key=len)
                if (len(short) >= 4 and long_.startswith(short)) or (len(short) >= 5 and a[:5] == b[:5]):
                    pairs.add((q, n))
    return pairs


def _choices(spec: NeedleSpec, key: str) -> list[str]:
    gen = spec.values[key]
    assert gen.startswith("choice:"), f"{spec.id}: {key} should be a choice list"
    return gen.removeprefix("choice:").split("|")


def renders(spec: NeedleSpec) -> Iterator[tuple[str, str, str]]:
    """(needle, question, answer) for every combination of the entry's values."""
    keys = sorted(spec.values)
    for combo in itertools.product(*(_choices(spec, k) for k in keys)):
        drawn = dict(zip(keys, combo, strict=True))

        def fill(text: str, drawn: dict[str, str] = drawn) -> str:
            return _PLACEHOLDER.sub(lambda m: drawn[m.group(1)], text)

        yield fill(spec.needle), fill(spec.question), fill(spec.answer)


def _name_words() -> set[str]:
    return {part for spec in LATENT.specs for name in _choices(spec, "name") for part in name.split()}


def test_the_set_is_large_with_unique_ids_and_name_answers() -> None:
    assert len(LATENT.specs) >= 24
    ids = [s.id for s in LATENT.specs]
    assert len(ids) == len(set(ids))
    for spec in LATENT.specs:
        assert spec.kind in get_args(NeedleKind), spec.id
        assert spec.kind == "name" and spec.answer == "{name}", spec.id
        assert "{name}" in spec.needle and "{" not in spec.question, spec.id


def test_each_entry_has_six_or_more_distinct_names_used_by_no_other_entry() -> None:
    owner: dict[str, str] = {}
    for spec in LATENT.specs:
        names = _choices(spec, "name")
        assert len(names) >= 6, spec.id
        assert len(set(names)) == len(names), spec.id
        assert all(len(name.split()) == 2 for name in names), spec.id  # first and last name
        for name in names:
            assert owner.setdefault(name, spec.id) == spec.id, f"{name} is in {owner[name]} and {spec.id}"


@pytest.mark.parametrize("spec", LATENT.specs, ids=lambda s: s.id)
def test_no_rendering_shares_a_content_word_with_its_question(spec: NeedleSpec) -> None:
    count = 0
    for needle, question, answer in renders(spec):
        count += 1
        assert needle.endswith((".", "!", "?")) and "{" not in needle + question + answer
        assert answer in needle, "the answer must occur in the needle"
        assert answer.lower() not in question.lower(), "the question must not contain the answer"
        assert not set(_words(answer)) & set(_words(question)), "no part of the name may be in the question"
        rest = needle.replace(answer, " ")
        assert not shared_words(rest, question), (needle, question)
        assert not near_words(rest, question), (needle, question)
        for word in content_words(question):  # nor may a name hide a question word (Parisot -> Paris)
            assert len(word) < 4 or word not in answer.lower(), (answer, word)
    assert count == len(list(itertools.product(*(_choices(spec, k) for k in spec.values))))


def test_drawn_needles_follow_the_rules_too() -> None:
    for seed, trial in itertools.product(range(2), range(len(LATENT.specs) * 2)):
        n = LATENT.pick(seed, trial)
        assert n.answer in n.text and n.answer.lower() not in n.question.lower()
        assert not shared_words(n.text.replace(n.answer, " "), n.question), n.id


def test_the_names_occur_in_no_bundled_filler_nor_in_the_library() -> None:
    words = _name_words()
    for filler in ("essays", "noise"):
        corpus = " ".join(d.text for d in load_filler(filler).documents)
        found = {w for w in words if re.search(r"(?<!\w)" + re.escape(w) + r"(?!\w)", corpus, re.IGNORECASE)}
        assert not found, f"names in the {filler} filler: {sorted(found)}"
    library = " ".join(s.needle + " " + s.question + " " + s.answer + " " + " ".join(s.values.values())
                       for s in load_needles(LIBRARY).specs)
    assert not {w for w in words if re.search(r"(?<!\w)" + re.escape(w) + r"(?!\w)", library, re.IGNORECASE)}


@pytest.mark.parametrize(("needle", "question", "shared"), [
    ("Yuki lives right next to the Eiffel Tower.", "Which character lives near the tower?", {"lives", "tower"}),
    ("Ada sketched the Louvre's glass pyramid.", "Which character drew the Louvre?", {"louvre"}),
    ("Ada bought two boxes of apples.", "Who bought a box?", {"bought", "box"}),
    ("Ada plays the violin.", "Which character PLAYS music?", {"plays"}),
    ("Ada moved to Paris last year.", "Which person has been to Paris?", {"paris"}),
])
def test_the_overlap_check_catches_shared_words(needle: str, question: str, shared: set[str]) -> None:
    assert shared_words(needle, question) == shared


@pytest.mark.parametrize(("needle", "question"), [
    ("Ada paints landscapes on weekends.", "Which character is a painter?"),
    ("Ada cooked a Canadian breakfast.", "Which character has been to Canada?"),
    ("Ada went travelling in the spring.", "Which character travelled?"),
])
def test_the_near_check_catches_derived_forms(needle: str, question: str) -> None:
    assert not shared_words(needle, question)
    assert near_words(needle, question)


def test_stop_words_leave_the_question_frame_out_and_nothing_else() -> None:
    assert content_words("Which character has been to the city of Rome?") == ["city", "rome"]
    assert shared_words("Ada has been a baker.", "Which character has been to Rome?") == set()
