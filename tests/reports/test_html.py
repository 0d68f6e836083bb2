"""The HTML report: what it shows, that run data stays text, and that a real browser loads nothing else.

Runs come from the scripted backend (no network) or are written by hand; each report is rendered
once per module, since drawing the figures is the slow part.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

import haystack_eval
from haystack_eval.errors import ConfigError, StoreError
from haystack_eval.reports import html as report
from haystack_eval.reports.html_parts import failing_table
from haystack_eval.sweep import Run, load_run
from tests.reports.browser import Browser, Request, headless_chromium

PAYLOAD = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
           '<a href="javascript:window.__pwned=3">x</a>')
GRID = {"filler": "essays", "lengths": [500, 1000], "depths": [0, 50, 100]}


def _scripted(root: Path, name: str, model: str, *, trials: int = 2, **haystack: Any) -> Run:
    config = {"name": name, "model": {"provider": "scripted", "name": model, "tokenizer": "tiktoken:o200k_base"},
              "haystack": {**GRID, **haystack}, "task": {"trials": trials},
              "run": {"max_retries": 0, "retry_base_s": 0}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return haystack_eval.run(path, out=root / name)


def _gkamradt(folder: Path) -> Run:
    """Another tool's results: a folder whose name, model, question, needle and answers hold markup."""
    folder.mkdir()
    rows = [(1000, 0.0, 10, "The code is K-7."), (1000, 50.0, 1, PAYLOAD), (2000, 50.0, None, "")]
    for number, (length, depth, score, answer) in enumerate(rows):
        (folder / f"result_{number}.json").write_text(json.dumps({
            "model": "<b>gpt-x</b>", "context_length": length, "depth_percent": depth, "score": score,
            "model_response": answer, "retrieval_question": "What is <i>the</i> code?",
            "needle": "The code is <u>K-7</u>.", "test_timestamp_utc": "2026-11-29T10:00:00",
        }), encoding="utf-8")
    return load_run(folder)


def _record(status: str, score: float | None, response: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"length": 1000, "depth": 50.0, "trial": extra.pop("trial", 0), "question": "Which colour?",
            "expected": "teal", "response": response, "score": score, "status": status, "error": None, **extra}


def _crafted(path: Path) -> Run:
    """One cell, a record of every kind: right, wrong, half right, error, truncated, skipped."""
    records = (
        _record("ok", 1.0, "teal", trial=0), _record("ok", 0.0, "crimson", trial=1),
        _record("ok", 0.5, "teal-ish", trial=2),
        _record("error", None, error={"class": "RateLimited", "message": "HTTP 429: slow down", "status": 429},
                trial=3),
        _record("truncated", None, "", trial=4), _record("skipped", None, trial=5),
    )
    manifest = {"name": "crafted", "model": {"provider": "scripted", "name": "by-hand"}, "config": None,
                "source_format": "haystack-eval", "updated": "2026-11-29T10:00:00+00:00"}
    return Run(path=path, manifest=manifest, records=records)


@dataclass(frozen=True)
class Made:
    """The runs and reports the tests share."""

    oracle: Run
    hostile: Run
    down: Run
    single: Path  # report of the hostile run alone
    multi: Path  # oracle (baseline) vs hostile vs down
    foreign: str
    crafted_run: Run
    crafted: str


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("runs")
    crafted = _crafted(root / "crafted")
    oracle = _scripted(root, "oracle", "oracle")
    hostile = _scripted(root, "hostile", f"canned:{PAYLOAD}")
    down = _scripted(root, "down", "unavailable", trials=1, lengths=[500], depths=[0, 100])
    return Made(
        oracle=oracle, hostile=hostile, down=down,
        single=report.write_report([hostile], root / "single.html"),
        multi=report.write_report([oracle, hostile, down], root / "out" / "multi.html"),
        foreign=report.render_report([_gkamradt(root / "<img src=x onerror=alert(4)>")], palette="cb"),
        crafted_run=crafted, crafted=report.render_report([crafted]),
    )


class Page(HTMLParser):
    """A parsed report: every tag with its attributes, the text of each table row, all text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: dict[str, list[list[str]]] = {}  # table class -> rows of cell texts
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._table = dict(attrs).get("class") or ""
        elif tag == "tr" and self._table is not None:
            self.rows.setdefault(self._table, []).append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.rows[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def body_rows(self, table: str) -> list[list[str]]:
        return self.rows.get(table, [])[1:]  # the first row is the header


def _assert_inert(text: str) -> None:
    """No element or attribute that could run code or fetch anything."""
    page = Page(text)
    assert not [t for t, _ in page.tags if t in {"script", "iframe", "frame", "object", "embed", "base", "form",
                                                  "foreignobject", "applet", "audio", "video", "source"}]
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name, value in attrs.items():
            if name in ("src", "href", "xlink:href", "action", "formaction", "srcset", "poster", "data"):
                assert (value or "").startswith(("#", "data:")), (tag, name, (value or "")[:80])
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert all(m.startswith("url(#") for m in re.findall(r"url\(.{0,2}", text)), "a url() that is not a fragment"


def _csp(text: str) -> dict[str, list[str]]:
    metas = [a for t, a in Page(text).tags if t == "meta" and (a.get("http-equiv") or "").lower()
             == "content-security-policy"]
    assert len(metas) == 1
    return {d.split()[0]: d.split()[1:] for d in (metas[0]["content"] or "").split(";") if d.strip()}


def test_hostile_answers_and_model_names_are_text(made: Made) -> None:
    text = made.single.read_text("utf-8")
    _assert_inert(text)
    answers = [row[-1] for row in Page(text).body_rows("failing")]
    assert answers and set(answers) == {PAYLOAD}  # shown exactly as the model wrote it
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    # The model name holds the payload too: it is in the page title, the facts and the figure titles.
    title = re.search(r"<title>(.*?)</title>", text, re.DOTALL)
    assert title and "&lt;script&gt;" in title.group(1)
    assert "scripted/canned:" + PAYLOAD in "".join(Page(text).text)
    assert text.count("<svg") >= 3  # the figures are inline SVG, not fallbacks


def test_foreign_run_with_markup_in_names_questions_and_needles(made: Made) -> None:
    _assert_inert(made.foreign)
    page = Page(made.foreign)
    text = "".join(page.text)
    assert "<img src=x onerror=alert(4)>" in text  # the folder name, as Run and Directory
    assert "Config: not recorded (results written by gkamradt)." in text
    assert "<b>gpt-x</b>" in text
    rows = page.body_rows("failing")
    assert [row[5:] for row in rows] == [
        ["What is <i>the</i> code?", "The code is <u>K-7</u>.", PAYLOAD],
        ["What is <i>the</i> code?", "The code is <u>K-7</u>.", "Unscored: no score"],
    ]


def test_csp_allows_no_scripts_and_no_fetches(made: Made) -> None:
    for text in (made.single.read_text("utf-8"), made.multi.read_text("utf-8"), made.foreign, made.crafted):
        policy = _csp(text)
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'none'"]
        assert policy["img-src"] == ["data:"]
        assert policy["style-src"] == ["'unsafe-inline'"]
        assert policy["form-action"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert not {"connect-src", "font-src", "frame-src", "media-src"} & policy.keys()  # all fall back to 'none'
        # The policy is the first thing after the charset, ahead of anything it must govern.
        assert re.match(r'<!DOCTYPE html>\s*<html lang="en">\s*<head>\s*<meta charset="utf-8">\s*'
                        r'<meta http-equiv="Content-Security-Policy"', text)


def test_failing_cells_table(made: Made) -> None:
    rows = Page(made.crafted).body_rows("failing")
    assert [(row[2], row[3], row[4], row[7]) for row in rows] == [
        ("1", "ok", "0.00", "crimson"),
        ("2", "ok", "0.50", "teal-ish"),
        ("3", "error", "—", "RateLimited: HTTP 429: slow down"),
        ("4", "truncated", "—", "(no answer)"),
    ]  # the right answer and the skipped trial are not failures
    assert all(row[:2] == ["1,000", "50"] and row[5:7] == ["Which colour?", "teal"] for row in rows)
    text = "".join(Page(made.crafted).text)
    assert "4 of 6 records failed." in text


def test_totals_errors_and_config(made: Made) -> None:
    text = "".join(Page(made.crafted).text)
    assert "50.0%" in text and "n = 3" in text  # (1 + 0 + 0.5) / 3 scored records
    for status in ("ok 3", "error 1", "skipped 1", "truncated 1"):
        assert status in text
    errors = Page(made.crafted).body_rows("errors")
    assert errors == [["RateLimited", "1", "429", "HTTP 429: slow down"]]
    multi = made.multi.read_text("utf-8")
    [(name, count, status, message)] = Page(multi).body_rows("errors")  # the down run's two cells
    assert (name, count, status) == ("ServerError", "2", "503") and "the service is down" in message
    config = re.search(r'<details class="config"><summary>.*?</summary><pre>(.*?)</pre>', multi, re.DOTALL)
    assert config and "provider: scripted" in config.group(1) and "name: oracle" in config.group(1)


def test_the_same_run_renders_the_same_bytes(made: Made) -> None:
    # Reports are kept in the repository (heatmaps/): regenerating one must not churn it.
    assert report.render_report([made.crafted_run]) == made.crafted


def test_failing_table_is_bounded() -> None:
    records = [_record("ok", 0.0, "no", trial=n) for n in range(520)]
    table = failing_table(records, limit=500)
    assert len(Page(table).body_rows("failing")) == 500
    assert "20 more not shown." in table


def test_several_runs_side_by_side_with_differences(made: Made) -> None:
    text = made.multi.read_text("utf-8")
    _assert_inert(text)
    page = Page(text)
    assert "Comparison of 3 runs" in "".join(page.text)
    assert '<h2>Difference from oracle</h2>' in text
    assert text.count('<article class="card">') == 3
    # 3 mean heatmaps, 2 differences (hostile and down vs oracle), curves, 2 spreads (down has 1 trial).
    assert text.count('<figure class="plot">') == 8
    assert "hostile: overall accuracy 100.0% → 0.0% (-100.0 points)." in "".join(page.text)
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids)), "figures must not share element ids"
    assert {f"run-{n}" for n in (1, 2, 3)} <= set(ids)


def test_empty_run_and_odd_characters(tmp_path: Path) -> None:
    empty = Run(path=tmp_path / "empty", manifest={"name": "empty"}, records=())
    assert "No records yet: nothing to draw." in report.render_report([empty])
    odd = Run(path=tmp_path / "odd", manifest={"name": "odd\x00"}, records=(_record("error", None, None, error={
        "class": "Weird\ud800", "message": "bell\x07", "status": None}),))
    out = report.write_report([odd], tmp_path / "odd.html")
    text = out.read_text("utf-8")  # a lone surrogate would have made the write fail
    assert "Weird\ufffd" in text and "bell\ufffd" in text and "odd\ufffd" in text


def test_write_report_is_atomic_and_says_what_failed(made: Made, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    empty = Run(path=tmp_path, manifest={"name": "empty"}, records=())
    assert report.write_report([empty], out) == out
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind
    (tmp_path / "taken").mkdir()
    with pytest.raises(StoreError, match="cannot write the report"):
        report.write_report([empty], tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "taken"]


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="no runs"):
        report.render_report([])
    with pytest.raises(ConfigError, match="unknown palette 'neon'"):
        report.render_report([Run(path=Path("x"), manifest={}, records=())], palette="neon")


def test_an_svg_with_active_content_is_embedded_as_an_image() -> None:
    plain = '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg"><defs><path id="a"/>' \
            '</defs><use href="#a"/><g clip-path="url(#a)"/></svg>'
    inlined = report._inline_svg(plain, "fig7", "a <label>")
    assert inlined.startswith('<svg role="img" aria-label="a &lt;label&gt;"')
    assert 'id="fig7-0"' in inlined and 'href="#fig7-0"' in inlined and "url(#fig7-0)" in inlined
    hostile = plain.replace("<defs>", '<script>alert(1)</script><defs>')
    assert report._inline_svg(hostile, "fig8", "x").startswith('<img src="data:image/svg+xml;base64,')


# --- in a real browser --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as session:
        yield session


def test_the_page_requests_nothing_but_itself(browser: Browser, made: Made) -> None:
    for path in (made.single, made.multi):
        requests = browser.open(path)
        assert requests and requests[0] == Request(path.resolve().as_uri())
        # The rest can only be data: URIs (matplotlib's images inside the SVGs), never a fetch.
        assert all(r.url.startswith("data:") for r in requests[1:]), [r.url[:80] for r in requests]


def test_hostile_answers_stay_text_in_the_browser(browser: Browser, made: Made) -> None:
    from selenium.webdriver.common.by import By

    browser.open(made.multi)
    assert browser.run("return window.__pwned") is None
    assert browser.run("return document.scripts.length") == 0
    assert browser.run("return document.querySelectorAll('table.failing img, table.failing a').length") == 0
    answers = [cell.text for cell in browser.driver.find_elements(By.CSS_SELECTOR, "table.failing td:last-child")]
    assert "<script>window.__pwned=1</script>" in "".join(answers)
    assert any(PAYLOAD in answer for answer in answers)


def test_the_browser_enforces_the_policy(browser: Browser, made: Made) -> None:
    browser.open(made.single)
    # WebDriver's script may add an image, but the page's policy must refuse to fetch it (port 9 discards).
    violated = browser.driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        document.addEventListener('securitypolicyviolation', e => done(e.effectiveDirective), {once: true});
        const probe = document.createElement('img');
        probe.src = 'http://127.0.0.1:9/probe.png';
        document.body.appendChild(probe);
        setTimeout(() => done(null), 3000);
    """)
    assert violated == "img-src"
    for _ in range(100):  # the failure event may trail the violation by a moment
        probes = [r for r in browser.requests() if r.url.startswith("http")]
        if probes and probes[0].blocked:
            break
        time.sleep(0.02)
    assert probes == [Request("http://127.0.0.1:9/probe.png", blocked="csp")]


def test_figures_are_drawn_and_the_page_is_a_picture(browser: Browser, made: Made, tmp_path: Path) -> None:
    from PIL import Image  # matplotlib depends on Pillow

    browser.open(made.multi)
    sizes = browser.run("""return Array.from(document.querySelectorAll('figure.plot > svg, figure.plot > img'))
                           .map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; });""")
    assert len(sizes) == 8 and all(w > 100 and h > 100 for w, h in sizes), sizes
    png = browser.screenshot(tmp_path / "multi.png")
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == 1280 and image.height > 3000  # the whole page, not just the first screen
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200  # text, heatmap colours, tables: far from a blank page
