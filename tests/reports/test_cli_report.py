"""``haystack-eval report`` and the outputs ``run`` leaves: files written, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reports.made_runs import uniform, write_run
from tests.sweep.test_foreign import gkamradt_file
from tests.test_cli import run

Cap = pytest.CaptureFixture[str]
OUTPUTS = {"heatmap.png", "heatmap.svg", "heatmap-spread.png", "heatmap-spread.svg", "report.html", "summary.md"}


def test_one_run_gets_heatmaps_report_and_summary_in_its_directory(tmp_path: Path, capsys: Cap) -> None:
    path = write_run(tmp_path / "r", uniform([1000, 2000], [0, 100], [1, 0, 1]))
    code, out, err = run(capsys, "report", str(path))
    assert code == 0, err
    assert OUTPUTS <= {p.name for p in path.iterdir()}
    lines = out.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [str(path / n) for n in (
        "heatmap.png", "heatmap.svg", "heatmap-spread.png", "heatmap-spread.svg", "report.html", "summary.md")]
    assert lines[-1] == f"open {path / 'report.html'} in a browser: heatmaps, curves and every failing cell"
    assert (path / "heatmap.png").read_bytes().startswith(b"\x89PNG")
    assert "Content-Security-Policy" in (path / "report.html").read_text()


def test_several_runs_make_one_comparison(tmp_path: Path, capsys: Cap) -> None:
    a = write_run(tmp_path / "a", uniform([1000], [0, 100], [1, 1]), name="a")
    b = write_run(tmp_path / "b", uniform([1000], [0, 100], [1, 0]), name="b")
    out_file = tmp_path / "out" / "compare.html"
    code, out, err = run(capsys, "report", str(a), str(b), "--out", str(out_file), "--palette", "cb")
    assert code == 0, err
    assert out.splitlines()[:2] == [f"wrote {out_file}", f"wrote {out_file.with_suffix('.md')}"]
    html = out_file.read_text()
    assert "Comparison of 2 runs" in html and "Difference from a" in html
    assert "## haystack-eval: a" in out_file.with_suffix(".md").read_text()
    assert not (a / "report.html").exists()  # a comparison leaves the run directories alone


def test_other_tools_results_can_be_reported(tmp_path: Path, capsys: Cap) -> None:
    folder = tmp_path / "results"
    for depth in (0.0, 50.0, 100.0):
        gkamradt_file(folder, 1000, depth, 10 if depth != 50.0 else 1)
    code, _, err = run(capsys, "report", str(folder))
    assert code == 0, err
    assert "results written by gkamradt" in (folder / "report.html").read_text()
    assert "| 1K | 66.7% |" in (folder / "summary.md").read_text()


def test_run_renders_at_the_end_unless_told_not_to(tmp_path: Path, capsys: Cap) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("name: t\nmodel: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}\n"
                      "haystack: {filler: essays, lengths: [500], depths: [0, 100]}\n")
    code, out, _ = run(capsys, "run", str(config), "--out", str(tmp_path / "plain"), "-q", "--no-report")
    assert code == 0 and {p.name for p in (tmp_path / "plain").iterdir()} == {".lock", "manifest.json", "results.jsonl"}
    code, out, _ = run(capsys, "run", str(config), "--out", str(tmp_path / "full"), "-q")
    assert code == 0 and f"wrote {tmp_path / 'full' / 'report.html'}" in out
    assert {"heatmap.png", "heatmap.svg", "report.html", "summary.md"} <= {p.name for p in (tmp_path / "full").iterdir()}
    # the outputs count as the run directory's own files: resuming and --no-resume accept them
    code, _, err = run(capsys, "run", str(config), "--out", str(tmp_path / "full"), "-q", "--no-resume")
    assert code == 0, err


def _file(d: Path) -> Path:
    (d / "notes.txt").write_text("not results")
    return d / "notes.txt"


def _empty_run(d: Path) -> list[str]:
    path = write_run(d / "r", {})
    return [str(path)]


def _unwritable(d: Path) -> list[str]:
    path = write_run(d / "r", {(1000, 0): [1]})
    (d / "a-file").write_text("")  # a file where a directory should be: unwritable even for root
    return [str(path), "--out", str(d / "a-file" / "x.html")]


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: [str(d / "missing")], "missing: does not exist"),
    (lambda d: [str(d)], "has no manifest.json and no gkamradt or needlehaystack results"),
    (_empty_run, "has no records yet; run the sweep first"),
    (lambda d: [str(write_run(d / "r", {(1000, 0): [1]})), "--palette", "neon"], "Invalid value for '--palette'"),
    (lambda d: [str(write_run(d / "r", {(1000, 0): [1]})), str(d / "r" / "results.jsonl"), str(_file(d))],
     "notes.txt: is a file, not a run directory"),
    (_unwritable, "cannot write"),
])
def test_unusable_input_is_exit_2_with_one_line(tmp_path: Path, capsys: Cap, setup: object, message: str) -> None:
    code, out, err = run(capsys, "report", *setup(tmp_path))  # type: ignore[operator]
    assert code == 2, out + err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_manifest_is_untouched_by_report(tmp_path: Path, capsys: Cap) -> None:
    path = write_run(tmp_path / "r", {(1000, 0): [1]})
    before = json.loads((path / "manifest.json").read_text()), (path / "results.jsonl").read_bytes()
    assert run(capsys, "report", str(path))[0] == 0
    assert (json.loads((path / "manifest.json").read_text()), (path / "results.jsonl").read_bytes()) == before
