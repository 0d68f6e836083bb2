"""Property tests of every context invariant, checked against a full re-encoding of the prompt."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haystack_eval.contexts import Context, ContextBuilder, load_filler, load_needles
from haystack_eval.contexts.fillers import Corpus, Document
from haystack_eval.contexts.segments import segment
from haystack_eval.contexts.tokenizers import Tokenizer
from haystack_eval.errors import FillerError
from tests.conftest import ENCODINGS, TINY_FILLER, tokenizer


@cache
def _tiny_dir() -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="haystack-tiny-"))
    (folder / "tiny.txt").write_text(TINY_FILLER, encoding="utf-8")
    return folder


@cache
def builder(encoding: str, filler: str, seed: int = 0) -> ContextBuilder:
    """One builder per encoding and filler ('essays', 'noise' or 'tiny')."""
    corpus = load_filler(str(_tiny_dir() / "tiny.txt")) if filler == "tiny" else load_filler(filler)
    return ContextBuilder(tokenizer(encoding), corpus, load_needles("library"), seed=seed)


def check_invariants(ctx: Context, tok: Tokenizer, length: int) -> None:
    """Every promise a context makes, measured from its text alone."""
    system, user = (m.content for m in ctx.prompt.messages)
    actual = tok.count(system) + tok.count(user)
    assert actual == ctx.tokens, "the reported count is the real count"
    assert length - 2 <= actual <= length, f"{actual} tokens for length {length}"
    needle = ctx.needles[0]
    assert user.count(needle.text) == 1, "the needle occurs exactly once"
    assert user[needle.char_offset:].startswith(needle.text)
    pattern = re.compile(r"(?<!\w)" + re.escape(needle.answer) + r"(?!\w)", re.IGNORECASE)
    assert len(pattern.findall(user)) == 1 and not pattern.search(system), "the answer occurs only in the needle"
    # The needle starts a sentence: before it comes the document start, a sentence end or a line end.
    before = user[: needle.char_offset].rstrip(" ")
    assert before.endswith(("<document>\n", ".", "!", "?", '"', "'", ")", "\n")), repr(before[-40:])
    assert needle.text[0].isupper()
    after = user[needle.char_offset + len(needle.text):]
    assert after.startswith((" ", "\n")), "the needle is not glued to the next word"
    # The token offset and depth are what the text says they are.
    lead = user[: needle.char_offset].removesuffix(" ") if user[needle.char_offset - 1] == " " else user[: needle.char_offset]
    assert needle.token_offset == tok.count(system) + tok.count(lead)
    off, size = needle.char_offset, len(needle.text)
    if user[off - 1] == " ":
        cut = (off - 1, off + size)
    elif user[off + size] == " ":
        cut = (off, off + size + 1)
    else:
        cut = (off, off + size)
    without = user[: cut[0]] + user[cut[1]:]
    doc = user.index("<document>\n") + len("<document>\n")
    hay = without[doc: without.rindex("\n</document>")].rstrip()
    assert hay == hay.strip() and ctx.haystack_tokens == tok.count(hay)
    hay_before = user[doc:off].rstrip()
    assert abs(needle.depth - 100 * tok.count(hay_before) / ctx.haystack_tokens) < 0.01


lengths = st.one_of(
    st.integers(min_value=0, max_value=400),  # added to the smallest possible length
    st.integers(min_value=400, max_value=200_000),
)


@given(
    encoding=st.sampled_from(ENCODINGS),
    filler=st.sampled_from(["essays", "tiny"]),
    extra=lengths,
    depth=st.one_of(st.sampled_from([0.0, 100.0, 50.0]), st.floats(min_value=0, max_value=100)),
    trial=st.integers(min_value=0, max_value=30),
)
def test_every_invariant_holds(encoding: str, filler: str, extra: int, depth: float, trial: int) -> None:
    b = builder(encoding, filler)
    length = b.min_length(trial + 1) + extra if extra < 400 else max(extra, b.min_length(trial + 1))
    ctx = b.build(length, depth, trial)
    check_invariants(ctx, b.tokenizer, length)


@given(
    encoding=st.sampled_from(ENCODINGS),
    length=st.integers(min_value=300, max_value=20_000),
    trial=st.integers(min_value=0, max_value=5),
    depth=st.floats(min_value=0, max_value=100),
)
def test_the_needle_is_at_the_nearest_sentence_boundary(encoding: str, length: int, trial: int, depth: float) -> None:
    b = builder(encoding, "essays")
    ctx = b.build(length, depth, trial)
    tok = b.tokenizer
    user = ctx.prompt.user
    needle = ctx.needles[0]
    doc = user.index("<document>\n") + len("<document>\n")
    end = user.rindex("\n</document>")
    start, stop = needle.char_offset, needle.char_offset + len(needle.text)
    left, right = user[doc:start].rstrip(" "), user[stop:end].lstrip(" ")
    hay = (left + (" " if left and not left.endswith("\n") else "") + right).strip()
    # Every sentence boundary of the haystack, with its token offset; the chosen one is the nearest.
    boundaries = [s.start for s in segment(hay) if s.sentence]
    if hay.endswith((".", "!", "?", '"', "'", ")")):
        boundaries.append(len(hay))
    offsets = [tok.count(hay[:b].rstrip()) for b in boundaries]
    total = tok.count(hay)
    target = depth / 100 * total
    best = min(abs(o - target) for o in offsets)
    achieved = needle.depth / 100 * ctx.haystack_tokens
    assert abs(achieved - target) <= best + 2  # + the token the joining space may move


@given(
    encoding=st.sampled_from(ENCODINGS),
    sentences=st.lists(
        st.tuples(
            st.text(alphabet="abcdefghij klmnop,;:-'\"()0123456789éü—", min_size=1, max_size=60),
            st.sampled_from([". ", "! ", "? ", ".\n", ".\n\n", ". \n\n", ".) "]),
        ),
        min_size=2,
        max_size=25,
    ),
    extra=st.integers(min_value=0, max_value=3000),
    depth=st.floats(min_value=0, max_value=100),
)
def test_invariants_hold_for_generated_fillers(encoding: str, sentences: list[tuple[str, str]], extra: int,
                                               depth: float) -> None:
    text = "".join("The " + body.strip() + end for body, end in sentences)
    from haystack_eval.contexts.fillers import normalise

    corpus = Corpus("generated", (Document("generated.txt", normalise(text)),), sha256=str(hash(text)))
    try:
        b = ContextBuilder(tokenizer(encoding), corpus, load_needles("library"))
    except FillerError:
        # Refused only when it really is too small: under 2 sentences or 16 tokens.
        body = corpus.documents[0].text
        assert len([s for s in segment(body) if s.sentence]) < 2 or tokenizer(encoding).count(body + "\n\n") < 16
        return
    length = b.min_length(1) + extra
    check_invariants(b.build(length, depth, 0), b.tokenizer, length)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_million_token_context_is_exact(encoding: str) -> None:
    b = builder(encoding, "essays")
    ctx = b.build(1_000_000, 50, 0)
    check_invariants(ctx, b.tokenizer, 1_000_000)


@pytest.mark.parametrize("filler", ["essays", "noise", "tiny"])
def test_same_seed_gives_byte_identical_prompts(filler: str) -> None:
    first = builder("o200k_base", filler).build(3000, 40, 2)
    builder.cache_clear()
    again = builder("o200k_base", filler).build(3000, 40, 2)
    assert first.prompt == again.prompt
    other_seed = builder("o200k_base", filler, seed=1).build(3000, 40, 2)
    assert other_seed.prompt != first.prompt
