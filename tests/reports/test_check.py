"""Regression checks: thresholds, significant drops versus noise, JUnit output."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from haystack_eval import ConfigError, load_run
from haystack_eval.config import CheckConfig
from haystack_eval.reports.check import check_run, junit_xml
from tests.reports.made_runs import uniform, write_run


def rules(**values: object) -> CheckConfig:
    """A check: section."""
    return CheckConfig.model_validate(values)


def test_min_accuracy_and_per_length_accuracy(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1, 1, 1, 1], (2000, 0): [1, 0, 0, 1]}))
    outcome = check_run(run, rules(min_accuracy=0.75, min_length_accuracy=0.6))
    assert [(r.rule, r.scope, r.passed) for r in outcome.results] == [
        ("min_accuracy", "overall", True),
        ("min_length_accuracy", "length 1000", True),
        ("min_length_accuracy", "length 2000", False),
    ]
    assert outcome.failures[0].detail.startswith("50.0% < 60.0% (n=4, 95% CI 15.0%–85.0%)")
    assert not outcome.passed


def test_errors_are_noted_and_kept_out_of_accuracy(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1, 1, None]}))
    outcome = check_run(run, rules(min_accuracy=1.0))
    assert outcome.passed
    assert outcome.notes == ("not in accuracy: 1 error",)


def test_min_effective_length(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1] * 10, (2000, 0): [1] * 9 + [0], (4000, 0): [0] * 10}))
    assert check_run(run, rules(min_effective_length=2000)).passed
    failed = check_run(run, rules(min_effective_length=4000))
    assert failed.failures[0].detail == "2,000 < 4,000 tokens (accuracy >= 85% of the shortest length's)"
    assert check_run(run, rules(min_effective_length=1000, effective_threshold=0.95)).passed
    assert not check_run(run, rules(min_effective_length=2000, effective_threshold=0.95)).passed


def test_a_significant_drop_fails_and_noise_does_not(tmp_path: Path) -> None:
    base = load_run(write_run(tmp_path / "base", uniform([1000, 2000], [0, 50, 100], [1] * 10)))
    # one miss per length: 30/30 -> 29/30 is a drop of 3.3 points, inside noise
    noisy = load_run(write_run(tmp_path / "noisy", {**uniform([1000, 2000], [0, 50, 100], [1] * 10),
                                                     (1000, 50): [1] * 9 + [0], (2000, 0): [0] + [1] * 9}))
    outcome = check_run(noisy, rules(max_drop=0.0), base)
    assert outcome.passed, [r.line() for r in outcome.results]
    assert all("not significant at alpha=0.05" in r.detail for r in outcome.results if r.scope != "overall")
    # length 2000 collapses to 20/30: a real regression there, and overall
    worse = load_run(write_run(tmp_path / "worse", {**uniform([1000], [0, 50, 100], [1] * 10),
                                                     **uniform([2000], [0, 50, 100], [1] * 6 + [0] * 4)}))
    outcome = check_run(worse, rules(max_drop=0.05), base)
    assert [(r.scope, r.passed) for r in outcome.results] == [
        ("overall", False), ("length 1000", True), ("length 2000", False)]
    assert "100.0% -> 60.0%, drop +40.0 points (limit 5.0), p=" in outcome.failures[1].detail
    # a looser max_drop lets the same run pass: the drop must exceed the limit *and* be significant
    assert check_run(worse, rules(max_drop=0.5), base).passed


def test_a_drop_within_max_drop_passes_even_when_significant(tmp_path: Path) -> None:
    base = load_run(write_run(tmp_path / "base", uniform([1000], [0], [1] * 200)))
    run = load_run(write_run(tmp_path / "run", uniform([1000], [0], [1] * 180 + [0] * 20)))
    assert not check_run(run, rules(max_drop=0.05), base).passed
    assert check_run(run, rules(max_drop=0.1), base).passed


def test_rules_that_cannot_be_applied_are_config_errors(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1]}))
    with pytest.raises(ConfigError, match="check.max_drop: max_drop needs a baseline run"):
        check_run(run, rules(max_drop=0.1))
    with pytest.raises(ConfigError, match="sets no threshold"):
        check_run(run, rules(baseline="x"))


def test_junit_xml_parses_back(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "r", {(1000, 0): [1, 1], (2000, 0): [0, 0]}, name="a<b"))
    outcome = check_run(run, rules(min_accuracy=0.4, min_length_accuracy=0.5))
    root = ElementTree.fromstring(junit_xml(outcome).encode())
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("haystack-eval check a<b", "3", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["min_accuracy (overall)", "min_length_accuracy (length 1000)",
                                              "min_length_accuracy (length 2000)"]
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("message", "").startswith("0.0% < 50.0%")
    assert cases[0].find("failure") is None
