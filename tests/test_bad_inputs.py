"""The catalogue of bad inputs: each gets exit code 2 and one line naming the field or file and the fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from haystack_eval.cli import main

BASE = """\
name: bad
model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
haystack: {filler: essays, lengths: [1000, 2000], depths: [0, 50, 100]}
task: {trials: 2}
"""


@dataclass(frozen=True)
class Case:
    """A config edit (and files beside it) that must be refused, and what the refusal says."""

    id: str
    edit: Callable[[str], str]
    message: str
    files: dict[str, bytes] = field(default_factory=dict)
    command: tuple[str, ...] = ("validate",)


def swap(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new)


NEEDLE_IN_FILLER = (
    b"- id: lantern\n  needle: The lighthouse lamp burned whale oil.\n"
    b"  question: What did the lamp burn?\n  answer: whale oil\n  kind: phrase\n"
)

CASES = [
    Case("unknown-top-key", lambda t: t + "extra: 1\n", "config.yaml:5: extra: unknown key 'extra'"),
    Case("unknown-nested-key", swap("trials: 2", "trials: 2, seeed: 1"), "task.seeed: unknown key 'seeed'; did you mean 'seed'?"),
    Case("misspelt-section", swap("task:", "tasks:"), "unknown key 'tasks'; did you mean 'task'?"),
    Case("lengths-wrong-type", swap("[1000, 2000]", "'1000'"), "haystack.lengths: Input should be a valid list"),
    Case("length-not-integer", swap("[1000, 2000]", "[1000, 2k]"), "haystack.lengths[1]: Input should be a valid integer"),
    Case("length-below-overhead", swap("[1000, 2000]", "[1000, 60]"), "haystack.lengths[1]: length 60 is below the"),
    Case("spread-below-overhead", swap("[1000, 2000]", "{min: 10, max: 2000, steps: 3}"), "haystack.lengths.min: length 10 is below"),
    Case("length-zero", swap("[1000, 2000]", "[0, 2000]"), "haystack.lengths: 0 is outside 1..10000000"),
    Case("lengths-empty", swap("[1000, 2000]", "[]"), "haystack.lengths: the list is empty"),
    Case("lengths-duplicate", swap("[1000, 2000]", "[1000, 1000]"), "lengths [1000] appear more than once"),
    Case("spread-duplicates", swap("[1000, 2000]", "{min: 1000, max: 1002, steps: 9}"), "appear more than once"),
    Case("depth-above-100", swap("[0, 50, 100]", "[0, 50, 101]"), "haystack.depths: 101 is outside 0..100"),
    Case("depth-negative", swap("[0, 50, 100]", "[-5, 50]"), "haystack.depths: -5 is outside 0..100"),
    Case("depth-spread-range", swap("[0, 50, 100]", "{min: 0, max: 150, steps: 4}"), "haystack.depths: 150 is outside 0..100"),
    Case("log-from-zero", swap("[0, 50, 100]", "{min: 0, max: 100, steps: 4, spacing: log}"), "log spacing needs min > 0"),
    Case("spacing-unknown", swap("[0, 50, 100]", "{min: 0, max: 100, steps: 4, spacing: cubic}"), "haystack.depths.spacing"),
    Case("filler-missing", swap("filler: essays", "filler: nowhere.txt"), "'nowhere.txt' is neither a bundled filler nor an existing"),
    Case("filler-empty-string", swap("filler: essays", "filler: ''"), "haystack.filler: an empty path"),
    Case("filler-empty-list", swap("filler: essays", "filler: []"), "haystack.filler: the list is empty"),
    Case("filler-empty-file", swap("filler: essays", "filler: empty.txt"), "empty.txt: is empty", {"empty.txt": b"\n \n"}),
    Case("filler-binary", swap("filler: essays", "filler: blob.txt"), "blob.txt: looks like a binary file",
         {"blob.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"}),
    Case("filler-not-utf8", swap("filler: essays", "filler: latin.txt"), "latin.txt: is not UTF-8 text",
         {"latin.txt": "Un caf\u00e9 tr\u00e8s fort. ".encode("latin-1") * 20}),
    Case("filler-empty-dir", swap("filler: essays", "filler: folder"), "holds no .txt or .md files", {"folder/x.csv": b"a,b\n"}),
    Case("filler-glob-nothing", swap("filler: essays", "filler: 'texts/*.txt'"), "matches no files"),
    Case("filler-too-small", swap("filler: essays", "filler: tiny.txt"), "too small to hold a needle", {"tiny.txt": b"Hello there"}),
    Case("tokenizer-unknown", swap("tiktoken:o200k_base", "tiktoken:r50k_base"), "model.tokenizer: tiktoken encoding 'r50k_base' is not available offline"),
    Case("tokenizer-malformed", swap("tiktoken:o200k_base", "gpt2"), "model.tokenizer: 'gpt2' is not a tokenizer"),
    Case("tokenizer-auto-anthropic", swap("{provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}",
                                          "{provider: anthropic, name: claude-sonnet-4-5}"), "model.tokenizer: no model-native tokenizer"),
    Case("tokenizer-auto-unknown-openai", swap("{provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}",
                                               "{provider: openai, name: my-tuned-model}"), "cannot tell which tokenizer"),
    Case("provider-unknown", swap("provider: scripted", "provider: skynet"), "model.provider: Input should be"),
    Case("window-too-small", swap("tokenizer: tiktoken:o200k_base}", "tokenizer: tiktoken:o200k_base, context_window: 1500}"),
         "exceeds model.context_window 1500"),
    Case("trials-negative", swap("trials: 2", "trials: -1"), "task.trials: Input should be greater than or equal to 1"),
    Case("kind-unknown", swap("trials: 2", "trials: 2, kind: soup"), "task.kind: Input should be 'single', 'multi'"),
    Case("count-on-single", swap("trials: 2", "trials: 2, count: 3"), "task.count applies to kinds multi"),
    Case("offsets-miscounted", swap("trials: 2", "trials: 2, kind: multi, count: 3, offsets: [5]"),
         "task.offsets needs 2 values in 0..100"),
    Case("absent-with-depths", swap("trials: 2", "trials: 2, kind: absent"), "task.kind absent hides no needle"),
    Case("needles-missing", swap("trials: 2", "trials: 2, needles: mine.yaml"), "mine.yaml: file not found; check the path"),
    Case("needles-answer-in-filler", lambda t: t.replace("trials: 2", "trials: 2, needles: n.yaml").replace("filler: essays", "filler: f.txt"),
         "the answer 'whale oil' of needle 'lantern' occurs in the filler",
         {"n.yaml": NEEDLE_IN_FILLER, "f.txt": b"Old lamps burned whale oil. Later ones burned kerosene. " * 30}),
    Case("needles-not-utf8", swap("trials: 2", "trials: 2, needles: n.yaml"), "n.yaml: is not UTF-8 text", {"n.yaml": "- id: caf\u00e9\n".encode("latin-1")}),
    Case("yaml-syntax", lambda t: t + "oops: [\n", "config.yaml:6: invalid YAML"),
    Case("not-a-mapping", lambda t: "- a\n- b\n", "must be a YAML mapping"),
    Case("context-trial-out-of-range", lambda t: t, "--trial 5 is outside", command=("context", "--length", "1000", "--depth", "5", "--trial", "5")),
    Case("context-length-too-small", lambda t: t, "--length: 40 is below", command=("context", "--length", "40", "--depth", "5")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(case.edit(BASE), encoding="utf-8")
    for name, data in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    command, *flags = case.command
    with pytest.raises(SystemExit) as info:
        main([command, str(config), *flags])
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    assert case.message in err
    assert err.startswith("error: ") and ";" in err, "the line names the thing and then the fix"
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err and out == ""


def test_the_catalogue_is_large_and_distinct() -> None:
    assert len(CASES) >= 35
    assert len({c.id for c in CASES}) == len(CASES)
