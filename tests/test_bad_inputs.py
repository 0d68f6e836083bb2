"""The catalogue of bad inputs: each gets exit code 2 and one line naming the thing at fault and the fix.

Config fields, command-line flags and files, fillers, needle files, the environment (keys, URLs, models:
some rows run against the fake provider, which checks both) and run directories. A row edits a good config,
puts files beside it, and runs a command; ``{config}``, ``{dir}`` and ``{url}`` stand for the config file,
its folder and the fake provider's base URL (``{root}``: the same without its /v1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from haystack_eval.cli import main
from tests.conftest import without_root_privileges
from tests.fakes.provider_server import FakeProvider

KEY = "sk-haystack-catalogue-" + "k3y" * 8

BASE = """\
name: bad
model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
haystack: {filler: essays, lengths: [1000, 2000], depths: [0, 50, 100]}
task: {trials: 2}
"""
SERVED = "{provider: openai-compatible, name: fake-model, base_url: '{url}', api_key_env: HAYSTACK_TEST_KEY, \
tokenizer: tiktoken:o200k_base}"
SCRIPTED = "{provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}"
RUN = ("run", "{config}", "--out", "{dir}/out", "-q", "--no-report")


@dataclass(frozen=True)
class Case:
    """A config edit (and files beside it) that must be refused, and what the refusal says."""

    id: str
    edit: Callable[[str], str]
    message: str
    files: dict[str, bytes] = field(default_factory=dict)
    command: tuple[str, ...] = ("validate", "{config}")
    env: dict[str, str | None] = field(default_factory=dict)  # set for this case (None: unset)


def swap(old: str, new: str) -> Callable[[str], str]:
    return lambda text: text.replace(old, new)


def keep(text: str) -> str:
    return text


def manifest(**fields: object) -> bytes:
    return json.dumps({"tool": "haystack-eval", "name": "r", **fields}).encode()


NEEDLE_IN_FILLER = (
    b"- id: lantern\n  needle: The lighthouse lamp burned whale oil.\n"
    b"  question: What did the lamp burn?\n  answer: whale oil\n  kind: phrase\n"
)
NEEDLE = "- id: key1\n  needle: {needle}\n  question: What colour is the key?\n  answer: {answer}\n  kind: word\n"
RECORD = b'{"length": 1000, "depth": 0.0, "trial": 0, "status": "ok", "score": 1.0}\n'
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
    Case("price-negative", swap("tiktoken:o200k_base}", "tiktoken:o200k_base, prices: {input: -1, output: 2}}"),
         "model.prices.input: Input should be greater than or equal to 0"),
    Case("price-not-finite", swap("tiktoken:o200k_base}", "tiktoken:o200k_base, prices: {input: .inf, output: 2}}"),
         "model.prices.input: Input should be a finite number"),
    Case("price-output-missing", swap("tiktoken:o200k_base}", "tiktoken:o200k_base, prices: {input: 1}}"),
         "model.prices.output: is required"),
    Case("price-unknown-key", swap("tiktoken:o200k_base}", "tiktoken:o200k_base, prices: {input: 1, output: 2, cache_read: 1}}"),
         "model.prices.cache_read: unknown key 'cache_read'"),
    Case("price-on-the-judge", lambda t: t + "scoring: {method: judge, judge: {provider: scripted, name: 'canned:CORRECT', "
         "prices: {input: 1, output: 1}}}\n", "the judge's requests are not priced (only the model's are); remove scoring.judge.prices"),
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
    Case("context-trial-out-of-range", lambda t: t, "--trial 5 is outside", command=("context", "{config}", "--length", "1000", "--depth", "5", "--trial", "5")),
    Case("context-length-too-small", lambda t: t, "--length: 40 is below", command=("context", "{config}", "--length", "40", "--depth", "5")),
    # needle files
    Case("needles-yaml-syntax", swap("trials: 2", "trials: 2, needles: n.yaml"), "n.yaml:3: is not valid YAML or JSON; fix the syntax",
         {"n.yaml": b"- id: x\n  needle: [\n"}),
    Case("needles-empty-list", swap("trials: 2", "trials: 2, needles: n.yaml"), "n.yaml: must hold a non-empty list of needles",
         {"n.yaml": b"[]\n"}),
    Case("needles-missing-field", swap("trials: 2", "trials: 2, needles: n.yaml"), "n.yaml: needle 0.answer: Field required; fix that entry",
         {"n.yaml": b"- id: key1\n  needle: The key is teal.\n  question: What colour is the key?\n  kind: word\n"}),
    Case("needles-duplicate-ids", swap("trials: 2", "trials: 2, needles: n.yaml"), "n.yaml: the id 'key1' is used twice",
         {"n.yaml": NEEDLE.format(needle="The key is teal.", answer="teal").encode() * 2}),
    Case("needles-answer-not-in-needle", swap("trials: 2", "trials: 2, needles: n.yaml"),
         "n.yaml: needle 0: the answer must appear in the needle", {"n.yaml": NEEDLE.format(needle="The key is teal.", answer="red").encode()}),
    Case("needles-not-a-sentence", swap("trials: 2", "trials: 2, needles: n.yaml"),
         "needle 0.needle: a needle must be one sentence ending with", {"n.yaml": NEEDLE.format(needle="The key is teal", answer="teal").encode()}),
    Case("needles-binary", swap("trials: 2", "trials: 2, needles: n.yaml"), "n.yaml: looks like a binary file", {"n.yaml": b"\x00\x01\x02"}),
    # fillers
    Case("filler-huge-single-line", swap("filler: essays", "filler: line.txt"), "line.txt has no sentence boundary in its 200001 tokens; use prose whose sentences end with '.', '!' or '?'",
         {"line.txt": b"word " * 200_000}),
    # the config file itself
    Case("config-missing", keep, "nowhere.yaml: file not found; check the path", command=("validate", "{dir}/nowhere.yaml")),
    Case("config-is-a-directory", keep, "folder.yaml: is a directory, not a file; name the file itself", {"folder.yaml/x": b""},
         command=("validate", "{dir}/folder.yaml")),
    Case("config-empty", lambda t: "", "the config must be a YAML mapping"),
    Case("config-binary", keep, "blob.yaml: looks like a binary file", {"blob.yaml": b"\x00\x01name: x"}, command=("validate", "{dir}/blob.yaml")),
    # command-line flags
    Case("run-concurrency-zero", keep, "Invalid value for '--concurrency' / '-c'", command=(*RUN, "--concurrency", "0")),
    Case("run-out-is-a-file", keep, "a-file: cannot create the run directory", {"a-file": b"x"},
         command=("run", "{config}", "--out", "{dir}/a-file", "-q")),
    Case("run-max-cost-negative", keep, "Invalid value for '--max-cost'", command=(*RUN, "--max-cost", "-1")),
    Case("run-max-cost-not-a-number", keep, "Invalid value for '--max-cost'", command=(*RUN, "--max-cost", "lots")),
    Case("run-max-cost-without-prices", swap(SCRIPTED, SERVED), "model.prices: a cost limit needs prices, and genai-prices",
         command=(*RUN, "--max-cost", "1")),
    Case("run-palette-unknown", keep, "Invalid value for '--palette'", command=(*RUN, "--palette", "neon")),
    Case("report-nothing", keep, "Missing argument 'RUN_DIR...'", command=("report",)),
    Case("check-config-missing", keep, "nope.yaml: file not found", {"r/manifest.json": manifest(), "r/results.jsonl": RECORD},
         command=("check", "{dir}/r", "--config", "{dir}/nope.yaml")),
    # the environment: keys, URLs, providers and models
    Case("env-key-variable-unset", swap(SCRIPTED, SERVED), "model.api_key_env: the environment variable HAYSTACK_TEST_KEY is not set; export HAYSTACK_TEST_KEY=",
         command=RUN, env={"HAYSTACK_TEST_KEY": None}),
    Case("env-default-key-unset", swap(SCRIPTED, "{provider: openai, name: gpt-4o}"), "model.provider: the environment variable OPENAI_API_KEY is not set",
         command=RUN, env={"OPENAI_API_KEY": None}),
    Case("env-key-refused", swap(SCRIPTED, SERVED), "model.api_key_env: the server refused the key (HTTP 401: Incorrect API key provided. The key sent was [redacted].); "
         "check the key in HAYSTACK_TEST_KEY",
         command=RUN, env={"HAYSTACK_TEST_KEY": "sk-not-the-right-one"}),
    Case("env-key-written-in-the-config", swap(SCRIPTED, "{provider: openai, name: gpt-4o, api_key_env: sk-abcdefghijklmnop}"),
         "model.api_key_env: this looks like a key itself; put the key in an environment variable"),
    Case("env-base-url-malformed", swap(SCRIPTED, SERVED.replace("'{url}'", "'localhost:8000/v1'")), "model.base_url: 'localhost:8000/v1' is not an http(s) URL"),
    Case("env-base-url-missing", swap(SCRIPTED, "{provider: openai-compatible, name: m}"), "provider openai-compatible needs model.base_url"),
    Case("env-base-url-without-v1", swap(SCRIPTED, SERVED.replace("{url}", "{root}")),
         "model.name: the server has no model 'fake-model', or no API at this base URL (HTTP 404: Unknown request", command=RUN),
    Case("env-model-unknown-to-the-server", swap(SCRIPTED, SERVED.replace("fake-model", "gpt-99")),
         "model.name: the server has no model 'gpt-99', or no API at this base URL (HTTP 404: The model does not exist or you do not have access to it. "
         "The key sent was [redacted].); check model.name",
         command=RUN),
    Case("env-scripted-rule-unknown", swap("name: oracle", "name: sage"), "model.name: unknown scripted rule 'sage'; use one of oracle", command=RUN),
    # run directories
    Case("rundir-missing", keep, "gone: does not exist; give the run directory", command=("report", "{dir}/gone")),
    Case("rundir-empty", keep, "has no manifest.json and no gkamradt or needlehaystack results", {"r/notes.txt": b"mine"},
         command=("report", "{dir}/r")),
    Case("rundir-other-tools-manifest", keep, "manifest.json was not written by haystack-eval (tool 'other')",
         {"r/manifest.json": b'{"tool": "other"}', "r/results.jsonl": RECORD}, command=("report", "{dir}/r")),
    Case("rundir-manifest-not-an-object", keep, "r: manifest.json is damaged (not a JSON object); restore it",
         {"r/manifest.json": b"[1, 2]", "r/results.jsonl": RECORD}, command=("check", "{dir}/r")),
    Case("rundir-manifest-damaged", keep, "r: manifest.json is damaged (JSONDecodeError)", {"r/manifest.json": b'{"tool": "hay'},
         command=("report", "{dir}/r")),
    Case("rundir-manifest-not-utf8", keep, "r: manifest.json is damaged (UnicodeDecodeError)", {"r/manifest.json": b"\xff\xfe{}"},
         command=("check", "{dir}/r")),
    Case("rundir-damaged-record", keep, "results.jsonl: line 2 is not a valid record (JSONDecodeError)",
         {"r/manifest.json": manifest(), "r/results.jsonl": RECORD + b"{not json\n" + RECORD}, command=("check", "{dir}/r")),
    Case("rundir-out-holds-other-files", keep, "r: is not an empty directory or a haystack-eval run", {"r/thesis.tex": b"precious"},
         command=("run", "{config}", "--out", "{dir}/r", "-q")),
    Case("rundir-out-from-another-tool", keep, "r: manifest.json is not a haystack-eval manifest", {"r/manifest.json": b'{"tool": "other"}'},
         command=("run", "{config}", "--out", "{dir}/r", "-q")),
]


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    """A fake provider that serves one model to one key, as a real one does."""
    with FakeProvider(api_key=KEY, models=frozenset({"fake-model"}), echo_key=True) as server:
        yield server


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch, provider: FakeProvider) -> None:
    monkeypatch.setenv("HAYSTACK_TEST_KEY", KEY)
    for name, value in case.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    config = tmp_path / "config.yaml"
    text = case.edit(BASE).replace("{url}", provider.openai_base_url).replace("{root}", provider.url)
    config.write_text(text, encoding="utf-8")
    for name, data in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    args = [arg.format(config=config, dir=tmp_path) for arg in case.command]
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    assert info.value.code == 2, err
    assert case.message in err
    assert err.startswith("error: ") and ";" in err, "the line names the thing and then the fix"
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err and out == ""
    assert KEY not in err and all(v not in err for v in case.env.values() if v), "nor a key the server quotes back"


UNREADABLE = "cannot read the file (permission denied); make it readable"


@pytest.mark.parametrize(("name", "edit", "message"), [
    ("config.yaml", keep, f"{{path}}: {UNREADABLE}"),
    ("filler.txt", swap("filler: essays", "filler: filler.txt"), f"{{path}}: {UNREADABLE}"),
    ("needles.yaml", swap("trials: 2", "trials: 2, needles: needles.yaml"), f"needles.yaml: {UNREADABLE}"),
])
def test_an_unreadable_file_is_refused_in_one_line(tmp_path: Path, name: str, edit: Callable[[str], str],
                                                   message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(edit(BASE), encoding="utf-8")
    if name != "config.yaml":
        (tmp_path / name).write_text("Some text. " * 50, encoding="utf-8")
    (tmp_path / name).chmod(0)
    # A subprocess, so that root (whose reads ignore permissions) can be made to respect them.
    done = subprocess.run([*without_root_privileges(), sys.executable, "-m", "haystack_eval", "validate", str(config)],
                          capture_output=True, text=True, timeout=120, check=False, env=os.environ.copy())
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert message.format(path=tmp_path / name) in done.stderr


def test_the_catalogue_is_large_and_distinct() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
