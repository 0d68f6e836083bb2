"""Regression checks: a run against the thresholds of a ``check:`` section and, optionally, a baseline run.

A drop against the baseline fails only when it is both larger than ``max_drop`` and statistically
significant (one-sided pooled two-proportion z-test, p < ``alpha``), so noise does not fail CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from haystack_eval.config import CheckConfig
from haystack_eval.errors import ConfigError, StoreError
from haystack_eval.reports.labels import interval, percent
from haystack_eval.stats import Grid, Share, drop_p_value
from haystack_eval.sweep import Run

__all__ = ["Outcome", "RuleResult", "check_run", "junit_xml", "write_junit"]


@dataclass(frozen=True)
class RuleResult:
    """One rule applied to one scope (overall, or one length): passed or not, and the numbers why."""

    rule: str
    scope: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``PASS min_accuracy (overall): 93.2% >= 90.0% (n=132)``."""
        return f"{'PASS' if self.passed else 'FAIL'} {self.rule} ({self.scope}): {self.detail}"


@dataclass(frozen=True)
class Outcome:
    """Every rule result of one check, and notes that are worth reading but decide nothing."""

    run: Run
    results: tuple[RuleResult, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Whether every rule passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(r for r in self.results if not r.passed)


def _pct(value: float | None) -> str:
    return "no scored cells" if value is None else percent(value)


def _at_least(rule: str, scope: str, share: Share, limit: float) -> RuleResult:
    mean = share.mean
    passed = mean is not None and mean >= limit
    sign = ">=" if passed else "<"
    ci = f", 95% CI {interval(share)}" if mean is not None else ""
    return RuleResult(rule, scope, passed, f"{_pct(mean)} {sign} {_pct(limit)} (n={share.n}{ci})")


def _drop(scope: str, base: Share, current: Share, rules: CheckConfig) -> RuleResult:
    """The max_drop rule for one scope: fails when the drop is too big and significant."""
    limit = rules.max_drop if rules.max_drop is not None else 0.0
    if base.mean is None or current.mean is None:
        return RuleResult("max_drop", scope, False,
                          f"cannot compare: baseline {_pct(base.mean)}, run {_pct(current.mean)}")
    drop = base.mean - current.mean
    p = drop_p_value(base.total, base.n, current.total, current.n)
    numbers = (f"{_pct(base.mean)} -> {_pct(current.mean)}, drop {100 * drop:+.1f} points "
               f"(limit {100 * limit:.1f}), p={p:.3g} (n={base.n} vs {current.n})")
    if drop <= limit:
        return RuleResult("max_drop", scope, True, numbers)
    if p >= rules.alpha:
        return RuleResult("max_drop", scope, True, f"{numbers}: not significant at alpha={rules.alpha:g}")
    return RuleResult("max_drop", scope, False, f"{numbers}: significant at alpha={rules.alpha:g}")


def check_run(run: Run, rules: CheckConfig, baseline: Run | None = None) -> Outcome:
    """Apply every threshold that is set; ``max_drop`` needs a baseline."""
    if not rules.rules:
        raise ConfigError("the check: section sets no threshold", where="check",
                          fix="set min_accuracy, min_length_accuracy, min_effective_length or max_drop")
    if rules.max_drop is not None and baseline is None:
        raise ConfigError("max_drop needs a baseline run", where="check.max_drop",
                          fix="set check.baseline or pass --baseline RUN_DIR")
    grid = run.grid()
    if not grid.cells:
        raise StoreError("has no records", where=str(run.path), fix="run the sweep first")
    results: list[RuleResult] = []
    if rules.min_accuracy is not None:
        results.append(_at_least("min_accuracy", "overall", grid.overall, rules.min_accuracy))
    if rules.min_length_accuracy is not None:
        results += [_at_least("min_length_accuracy", f"length {n}", grid.by_length[n], rules.min_length_accuracy)
                    for n in grid.lengths]
    if rules.min_effective_length is not None:
        results.append(_effective(grid, rules))
    if rules.max_drop is not None and baseline is not None:
        results += _drops(baseline.grid(), grid, rules)
    return Outcome(run=run, results=tuple(results), notes=_notes(grid, baseline))


def _effective(grid: Grid, rules: CheckConfig) -> RuleResult:
    limit = rules.min_effective_length or 0
    effective = grid.effective_length(rules.effective_threshold)
    how = (f"accuracy >= {_pct(rules.effective_threshold)}" if rules.effective_threshold is not None
           else "accuracy >= 85% of the shortest length's")
    shown = "none" if effective is None else f"{effective:,}"
    passed = effective is not None and effective >= limit
    return RuleResult("min_effective_length", "overall", passed,
                      f"{shown} {'>=' if passed else '<'} {limit:,} tokens ({how})")


def _drops(base: Grid, grid: Grid, rules: CheckConfig) -> list[RuleResult]:
    results = [_drop("overall", base.overall, grid.overall, rules)]
    for length in grid.lengths:
        if length in base.by_length:
            results.append(_drop(f"length {length}", base.by_length[length], grid.by_length[length], rules))
    return results


def _notes(grid: Grid, baseline: Run | None) -> tuple[str, ...]:
    notes = []
    unscored = {s: n for s, n in grid.statuses.items() if s != "ok"}
    if unscored:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(unscored.items()))
        notes.append(f"not in accuracy: {counts}")
    if baseline is not None:
        only = set(grid.lengths) - set(baseline.grid().lengths)
        if only:
            notes.append(f"lengths without a baseline to compare: {', '.join(map(str, sorted(only)))}")
    return tuple(notes)


def junit_xml(outcome: Outcome) -> str:
    """The outcome as JUnit XML: one testcase per rule and scope, a <failure> for each failed one."""
    suite = ElementTree.Element("testsuite", {
        "name": f"haystack-eval check {outcome.run.name}", "tests": str(len(outcome.results)),
        "failures": str(len(outcome.failures)), "errors": "0", "skipped": "0",
    })
    for result in outcome.results:
        case = ElementTree.SubElement(suite, "testcase", {
            "classname": f"haystack-eval.{outcome.run.name}", "name": f"{result.rule} ({result.scope})",
        })
        if result.passed:
            ElementTree.SubElement(case, "system-out").text = result.detail
        else:
            ElementTree.SubElement(case, "failure", {"message": result.detail, "type": result.rule}).text = result.line()
    if outcome.notes:
        ElementTree.SubElement(suite, "system-out").text = "\n".join(outcome.notes)
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(outcome: Outcome, path: Path) -> None:
    """Write the JUnit XML of an outcome (its parent directory must exist)."""
    try:
        path.write_text(junit_xml(outcome), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write ({exc.strerror})", where=str(path),
                          fix="give --junit a writable file path") from None
