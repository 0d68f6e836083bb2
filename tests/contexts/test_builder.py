"""Builder behaviour beyond the per-cell invariants: cost, shared prefixes, trials and needle choice."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from haystack_eval.contexts import ContextBuilder, load_filler, load_needles
from haystack_eval.contexts.tokenizers import Tokenizer
from haystack_eval.errors import ContextError, NeedleError
from tests.conftest import tokenizer


class Recording:
    """A tokenizer that remembers the longest text it was asked to encode."""

    def __init__(self, inner: Tokenizer) -> None:
        self.inner = inner
        self.name = inner.name
        self.longest = 0

    def _seen(self, text: str) -> None:
        self.longest = max(self.longest, len(text))

    def encode(self, text: str) -> list[int]:
        self._seen(text)
        return self.inner.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(ids)

    def count(self, text: str) -> int:
        self._seen(text)
        return self.inner.count(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        for text in texts:
            self._seen(text)
        return self.inner.count_many(texts)


def test_building_a_cell_never_encodes_the_haystack() -> None:
    recording = Recording(tokenizer("o200k_base"))
    builder = ContextBuilder(recording, load_filler("essays"), load_needles("library"))
    recording.longest = 0  # the corpus itself was tokenised once, above
    ctx = builder.build(200_000, 37, 1)
    assert len(ctx.prompt.user) > 800_000
    assert recording.longest < 3_000, "only seam texts (a sentence or two) are encoded per cell"


def test_every_depth_of_a_length_shares_the_text_before_its_needle() -> None:
    builder = ContextBuilder(tokenizer("cl100k_base"), load_filler("essays"), load_needles("library"))
    contexts = [builder.build(16_000, depth, 0) for depth in (0, 10, 35, 60, 90, 100)]
    for shallow, deep in pairwise(contexts):
        shared = shallow.prompt.user[: shallow.needles[0].char_offset]
        assert deep.prompt.user.startswith(shared)
    assert [c.needles[0].depth for c in contexts] == sorted(c.needles[0].depth for c in contexts)
    assert contexts[0].needles[0].depth == 0 and contexts[-1].needles[0].depth == 100


def test_depth_0_and_100_put_the_needle_at_the_ends() -> None:
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library"))
    first = builder.build(5_000, 0, 0)
    assert first.prompt.user.split("<document>\n", 1)[1].startswith(first.needles[0].text)
    last = builder.build(5_000, 100, 0)
    assert last.prompt.user.split("\n</document>", 1)[0].endswith(last.needles[0].text)


def test_trials_take_other_needles_and_other_documents() -> None:
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library"))
    contexts = [builder.build(3_000, 50, trial) for trial in range(6)]
    assert len({c.needles[0].id for c in contexts}) == 6
    openings = {c.prompt.user.split("<document>\n", 1)[1][:200] for c in contexts}
    assert len(openings) == 6


def test_a_needle_whose_answer_is_in_the_filler_is_passed_over(tmp_path: Path) -> None:
    library = load_needles("library")
    first = library.pick(0, 0)
    filler = tmp_path / "f.txt"
    filler.write_text(f"This text mentions {first.answer} once. " + "Other words follow here. " * 50, encoding="utf-8")
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler(str(filler)), library)
    chosen = builder.needle(0)
    assert chosen.id != first.id
    assert builder.build(1_000, 50, 0).prompt.user.count(chosen.answer) == 1


def test_a_needle_file_whose_only_answer_is_in_the_filler_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "n.yaml").write_text(
        "- id: one\n  needle: The boat is called Heron.\n  question: What is the boat called?\n  answer: Heron\n"
        "  kind: name\n",
        encoding="utf-8",
    )
    (tmp_path / "f.txt").write_text("A heron stood in the reeds. " * 40, encoding="utf-8")
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler(str(tmp_path / "f.txt")),
                             load_needles(str(tmp_path / "n.yaml")))
    with pytest.raises(NeedleError, match="the answer 'Heron' of needle 'one' occurs in the filler"):
        builder.build(1_000, 50, 0)


def test_impossible_requests_are_refused() -> None:
    builder = ContextBuilder(tokenizer("o200k_base"), load_filler("essays"), load_needles("library"))
    with pytest.raises(ContextError, match="is below the"):
        builder.build(builder.min_length() - 1, 50, 0)
    with pytest.raises(ContextError, match="outside 0..100"):
        builder.build(5_000, 120, 0)
    builder.build(builder.min_length(), 50, 0)
