"""The asking order: cells that share a prompt prefix run back to back, the same way every time."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from haystack_eval.config import load_config
from haystack_eval.contexts import builder_for
from haystack_eval.sweep import cells


def test_cells_of_one_length_and_trial_run_together_by_rising_depth(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config("""\
        name: t
        model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
        haystack: {filler: essays, lengths: [2000, 500, 1000], depths: [100, 0, 50, 25]}
        task: {trials: 2}
        """))
    order = cells(config)
    assert order == cells(config)  # deterministic
    groups = [(c.length, c.trial) for c in order]
    assert groups == sorted(groups)  # one block per (length, trial): a block never resumes later
    assert len({g: None for g in groups}) == 3 * 2
    for a, b in itertools.pairwise(order):
        if (a.length, a.trial) == (b.length, b.trial):
            assert a.depth < b.depth


def test_consecutive_prompts_share_their_text_up_to_the_earlier_needle(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config("""\
        name: t
        model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
        haystack: {filler: essays, lengths: [1500], depths: [0, 30, 60, 100]}
        """))
    builder = builder_for(config)
    prompts = [builder.build(c.length, c.depth, c.trial) for c in cells(config)]
    for a, b in itertools.pairwise(prompts):
        shared = a.prompt.text[: a.needles[0].char_offset]
        assert b.prompt.text.startswith(shared)  # what a prefix cache can reuse
