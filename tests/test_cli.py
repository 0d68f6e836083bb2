"""The command line: every documented command and flag, with its exit code and message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from haystack_eval.cli import main
from tests.conftest import MINIMAL_CONFIG

REPO = Path(__file__).resolve().parent.parent
SCRIPTED = str(REPO / "configs" / "scripted.yaml")  # the whole pipeline in seconds, no model


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert all(name in out for name in ("run", "report", "check", "estimate", "validate", "context"))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("haystack-eval 0.")


def test_validate_the_scripted_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", SCRIPTED)
    assert code == 0, err
    assert out.startswith("ok: scripted: 4 lengths x 11 depths x 3 trials = 132 cells")
    assert "tokenizer tiktoken:o200k_base" in out and "filler essays (25 documents" in out


def test_context_shows_the_prompt_the_needle_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "context", SCRIPTED, "--length", "2000", "--depth", "50")
    assert code == 0, err
    assert "--- system ---" in out and "--- user ---" in out and "<document>" in out
    summary, needle = out.strip().splitlines()[-2:]
    assert summary.startswith("--- ") and "(tiktoken:o200k_base, requested 2000)" in summary
    assert "task single; trial 0" in summary
    assert needle.startswith("--- needle '") and "at depth" in needle and "(requested 50)" in needle
    assert "answer" in needle


def test_context_shows_every_hidden_sentence_of_a_task(capsys: pytest.CaptureFixture[str], write_config: Any) -> None:
    path = write_config("""\
        name: t
        model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
        haystack: {lengths: [1500], depths: [50]}
        task: {kind: multikey, distractors: 2}
        """)
    code, out, err = run(capsys, "context", str(path), "--length", "1500", "--depth", "50")
    assert code == 0, err
    tail = out.strip().splitlines()[-3:]
    assert [line.split()[1] for line in tail] == ["needle", "distractor", "distractor"]
    path = write_config("""\
        name: t
        model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
        haystack: {lengths: [1500], depths: [0]}
        task: {kind: absent}
        """, name="absent.yaml")
    code, out, err = run(capsys, "context", str(path), "--length", "1500", "--depth", "0")
    assert code == 0, err
    assert out.strip().endswith("no needle: the right answer is that the document does not say")


def test_context_json_has_every_documented_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "context", SCRIPTED, "--length", "4000", "--depth", "25", "--trial", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert {"prompt", "tokens", "tokenizer", "length", "depth", "needles", "question"} <= set(data)
    assert data["length"] == 4000 and data["depth"] == 25 and data["trial"] == 2
    assert 3998 <= data["tokens"] <= 4000 and data["tokenizer"] == "tiktoken:o200k_base"
    assert [m["role"] for m in data["prompt"]] == ["system", "user"]
    (needle,) = data["needles"]
    assert {"text", "answer", "token_offset", "depth"} <= set(needle)
    assert needle["text"] in data["prompt"][1]["content"]
    assert abs(needle["depth"] - 25) < 5


def test_the_same_command_prints_the_same_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "context", SCRIPTED, "-l", "3000", "-d", "70", "-t", "1", "--json")[1]
    assert run(capsys, "context", SCRIPTED, "-l", "3000", "-d", "70", "-t", "1", "--json")[1] == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["context", SCRIPTED, "--length", "2000", "--depth", "101"], "'--depth'"),
        (["context", SCRIPTED, "--length", "2000", "--depth", "-1"], "'--depth'"),
        (["context", SCRIPTED, "--length", "50", "--depth", "10"], "--length: 50 is below the"),
        (["context", SCRIPTED, "--length", "lots", "--depth", "10"], "'--length'"),
        (["context", SCRIPTED, "--depth", "10"], "Missing option '--length'"),
        (["context", SCRIPTED, "--length", "2000", "--depth", "10", "--trial", "3"], "--trial 3 is outside"),
        (["context", SCRIPTED, "--lenght", "2000"], "No such option: --lenght"),
        (["validate"], "Missing argument 'CONFIG'"),
        (["validate", "no/such/file.yaml"], "no/such/file.yaml: file not found"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_flags_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "Traceback" not in err and out == ""


def test_relative_filler_paths_start_at_the_config(write_config: Callable[..., Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(MINIMAL_CONFIG.replace("filler: essays", "filler: texts"))
    (path.parent / "texts").mkdir()
    (path.parent / "texts" / "one.txt").write_text("A plain sentence sits here. " * 40, encoding="utf-8")
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0, err
    assert "filler texts (1 documents" in out


@pytest.mark.parametrize("entry", [["haystack-eval"], [sys.executable, "-m", "haystack_eval"]])
def test_the_console_script_and_python_m(entry: list[str]) -> None:
    if entry[0] == "haystack-eval":
        script = Path(sys.executable).with_name("haystack-eval")
        if not script.exists():
            pytest.skip("console script not installed in this environment")
        entry = [str(script)]
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([*entry, "context", SCRIPTED, "-l", "1500", "-d", "0", "--json"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["needles"][0]["depth"] == 0
    bad = subprocess.run([*entry, "validate", "missing.yaml"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: missing.yaml: file not found; check the path")


def test_an_unexpected_error_prints_a_traceback_without_locals() -> None:
    """A bug's traceback must not show local variables: a backend's frames hold the API key."""
    key = "sk-haystack-traceback-" + "l0cal" * 6
    program = textwrap.dedent("""
        import os, sys
        from haystack_eval import cli

        if sys.argv[1] == "show-locals":  # the control: the same program with locals shown
            cli.app.pretty_exceptions_show_locals = True

        @cli.app.command("explode")
        def explode() -> None:
            key = os.environ["HAYSTACK_TEST_KEY"]  # a local that holds the key, as in a backend's frames
            raise RuntimeError("an unexpected bug")

        cli.main(["explode"])
    """)
    env = {**os.environ, "HAYSTACK_TEST_KEY": key, "COLUMNS": "200"}

    def crash(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", program, mode], capture_output=True, text=True, env=env,
                              timeout=120, check=False)

    shown = crash("show-locals")
    assert key in shown.stderr, "with locals shown the key leaks, so this test can tell"
    shipped = crash("as-shipped")
    assert shipped.returncode == 1 and "RuntimeError: an unexpected bug" in shipped.stderr
    assert "explode" in shipped.stderr, "the traceback itself is kept: it is what a bug report needs"
    assert key not in shipped.stderr + shipped.stdout
