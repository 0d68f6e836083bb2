"""``haystack-eval check``: exit 0 pass, 1 regression (rules printed with numbers), 2 unusable input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.reports.made_runs import uniform, write_run
from tests.test_cli import run

Cap = pytest.CaptureFixture[str]
GOOD = uniform([1000, 2000], [0, 50, 100], [1] * 10)


def test_pass_with_the_check_section_recorded_in_the_run(tmp_path: Path, capsys: Cap) -> None:
    path = write_run(tmp_path / "r", GOOD, check={"min_accuracy": 0.9, "min_length_accuracy": 0.9})
    code, out, err = run(capsys, "check", str(path))
    assert code == 0, err
    assert "PASS min_accuracy (overall): 100.0% >= 90.0% (n=60" in out
    assert out.rstrip().endswith("check passed: 3 rule(s) met")


def test_fail_prints_each_failing_rule_with_its_numbers(tmp_path: Path, capsys: Cap) -> None:
    path = write_run(tmp_path / "r", {**GOOD, **uniform([2000], [0, 50, 100], [1] * 5 + [0] * 5)},
                     check={"min_length_accuracy": 0.8})
    code, out, err = run(capsys, "check", str(path))
    assert code == 1
    assert "FAIL min_length_accuracy (length 2000): 50.0% < 80.0% (n=30, 95% CI 33.2%–66.8%)" in out
    assert "check failed: 1 of 2 rule(s) not met" in err


def test_noise_only_drop_passes_and_a_real_drop_fails(
    tmp_path: Path, capsys: Cap, write_config: Callable[..., Path]
) -> None:
    write_run(tmp_path / "baseline", GOOD)
    config = write_config("""\
        name: t
        model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
        haystack: {filler: essays, lengths: [1000, 2000], depths: [0, 50, 100]}
        check: {baseline: baseline, max_drop: 0.02}
        """)
    noisy = write_run(tmp_path / "noisy", {**GOOD, (2000, 50): [1] * 9 + [0]})
    code, out, _ = run(capsys, "check", str(noisy), "--config", str(config))
    assert code == 0, out
    assert "not significant at alpha=0.05" in out
    worse = write_run(tmp_path / "worse", {**GOOD, **uniform([2000], [0, 50, 100], [1] * 7 + [0] * 3)})
    code, out, _ = run(capsys, "check", str(worse), "--config", str(config))
    assert code == 1
    assert "FAIL max_drop (length 2000): 100.0% -> 70.0%, drop +30.0 points (limit 2.0)" in out


def test_junit_and_step_summary(tmp_path: Path, capsys: Cap) -> None:
    path = write_run(tmp_path / "r", GOOD, check={"min_accuracy": 0.9})
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    code, _, err = run(capsys, "check", str(path), "--junit", str(tmp_path / "check.xml"), "--summary", str(summary))
    assert code == 0, err
    suite = ElementTree.parse(tmp_path / "check.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "0"
    text = summary.read_text()
    assert text.startswith("earlier step\n## haystack-eval: made")  # appended, never replaced
    assert "### Check: passed" in text and "✅ min_accuracy (overall): 100.0% >= 90.0%" in text


def test_baseline_flag_wins_over_the_config(tmp_path: Path, capsys: Cap) -> None:
    write_run(tmp_path / "good", GOOD)
    bad = write_run(tmp_path / "bad", uniform([1000, 2000], [0, 50, 100], [0] * 10))
    path = write_run(tmp_path / "r", GOOD, check={"max_drop": 0.05, "baseline": str(tmp_path / "bad")})
    assert run(capsys, "check", str(path))[0] == 0
    code, out, _ = run(capsys, "check", str(bad), "--baseline", str(tmp_path / "good"),
                       "--config", str(_config_with(tmp_path, "check: {max_drop: 0.05}")))
    assert code == 1 and "FAIL max_drop (overall): 100.0% -> 0.0%" in out


def _config_with(tmp_path: Path, check: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("name: t\nmodel: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}\n"
                    f"haystack: {{filler: essays, lengths: [1000], depths: [0]}}\n{check}\n")
    return path


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: [str(d / "missing")], "missing: does not exist; give the run directory"),
    (lambda d: [str(write_run(d / "r", GOOD))], "records no check: section; pass --config CONFIG"),
    (lambda d: [str(write_run(d / "r", GOOD)), "--config", str(_config_with(d, ""))],
     "c.yaml:1: check: the config has no check: section"),
    (lambda d: [str(write_run(d / "r", GOOD)), "--config", str(_config_with(d, "check: {max_drop: 0.1}"))],
     "check.max_drop: max_drop needs a baseline run; set check.baseline or pass --baseline RUN_DIR"),
    (lambda d: [str(write_run(d / "r", GOOD)), "--config",
                str(_config_with(d, "check: {max_drop: 0.1, baseline: nowhere}"))],
     "check.baseline 'nowhere' does not exist"),
    (lambda d: [str(write_run(d / "r", GOOD, check={"min_accuracy": 0.5})), "--junit", str(d / "no" / "x.xml")],
     "x.xml: cannot write"),
    (lambda d: [str(write_run(d / "r", GOOD)), "--config", str(_config_with(d, "check: {min_acuracy: 0.5}"))],
     "did you mean 'min_accuracy'"),
])
def test_unusable_input_is_exit_2_with_one_line(tmp_path: Path, capsys: Cap, setup: Callable[[Path], list[str]],
                                                message: str) -> None:
    code, out, err = run(capsys, "check", *setup(tmp_path))
    assert code == 2, out + err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
