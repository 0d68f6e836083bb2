"""Sentence segmentation: tiles the text, breaks at sentence ends only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from haystack_eval.contexts.segments import segment, word_cuts


def _pieces(text: str) -> list[str]:
    return [text[s.start : s.end] for s in segment(text)]


def test_sentences_own_their_leading_spaces_and_trailing_newlines() -> None:
    text = "Title line\n\nFirst one. Second one!  Third?\nFourth.\n\nFifth."
    assert _pieces(text) == ["Title line\n\n", "First one.", " Second one!", "  Third?\n", "Fourth.\n\n", "Fifth."]


def test_abbreviations_initials_and_lowercase_do_not_break() -> None:
    text = "Mr. Hale met Dr. Ames at 5 p.m. in the hall. J. Smith came too. It was late. and then."
    assert _pieces(text) == ["Mr. Hale met Dr. Ames at 5 p.m. in the hall.", " J. Smith came too.", " It was late. and then."]


def test_hard_wrapped_lines_are_not_sentence_breaks() -> None:
    text = "A sentence that is\nwrapped over lines. Next one."
    assert _pieces(text) == ["A sentence that is\nwrapped over lines.", " Next one."]


def test_quotes_and_brackets_around_sentence_ends() -> None:
    text = 'He said "stop." Then he left. (It rained.) "Why?" she asked.'
    assert _pieces(text) == ['He said "stop."', " Then he left.", " (It rained.)", ' "Why?" she asked.']


def test_long_sentences_are_cut_between_words_and_marked() -> None:
    text = " ".join(["word"] * 400) + ". Short."
    segs = segment(text, max_chars=100)
    assert segs[0].sentence and not any(s.sentence for s in segs[1:-1]) and segs[-1].sentence
    assert all(s.end - s.start <= 100 for s in segs[:-1])


@given(st.text(alphabet="ab .!?\n\"'()AB", max_size=300))
def test_segments_tile_any_text(text: str) -> None:
    segs = segment(text)
    assert "".join(text[s.start : s.end] for s in segs) == text
    assert all(s.end > s.start for s in segs) or text == ""


def test_word_cuts_sit_before_the_space_of_a_word() -> None:
    text = " alpha beta  gamma\ndelta"
    assert [text[c:] for c in word_cuts(text)] == [" beta  gamma\ndelta", "  gamma\ndelta"]
