"""Pieces of the HTML report that are pure text: escaping, run facts, totals, the config and the tables.

Everything that came from a run (records, manifest, config, paths) passes through ``esc`` on its way
into the document: model answers are untrusted text and may hold markup.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from haystack_eval.reports.labels import interval, length_label, percent
from haystack_eval.stats import Grid, Share
from haystack_eval.sweep import Run
from haystack_eval.sweep.schedule import CacheUse

__all__ = ["MAX_FAILING_ROWS", "config_block", "errors_table", "esc", "facts", "failing_records", "failing_table",
           "plain", "share_text", "totals"]

MAX_FAILING_ROWS = 500  # keeps a report of a huge, badly failing sweep openable
MAX_TEXT_CHARS = 400  # per question / expected / answer cell
STATUSES = ("ok", "error", "skipped", "truncated", "unscored")

# C0 controls (bar tab, newline, CR), DEL and lone surrogates: not allowed in HTML text, and a lone
# surrogate would make the UTF-8 write fail. JSON happily carries all of them.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def plain(value: object) -> str:
    """Text with the characters HTML (and matplotlib's fonts) cannot show replaced by U+FFFD."""
    return _UNSAFE_CHARS.sub("\ufffd", str(value))


def esc(value: object) -> str:
    """Text made safe for HTML content and quoted attributes."""
    return html.escape(plain(value), quote=True)


def _clip(value: object, limit: int = MAX_TEXT_CHARS) -> str:
    """Escaped text, cut at ``limit`` characters with a note of how much was left out."""
    text = str(value)
    if len(text) <= limit:
        return esc(text)
    return f'{esc(text[:limit])}<span class="muted">… ({len(text) - limit:,} more characters)</span>'


def share_text(share: Share) -> str:
    """'93.2% (95% CI 90.1–95.5%, n = 66)', or a note that nothing was scored."""
    if share.mean is None:
        return "no scored records"
    return f"{percent(share.mean)} (95% CI {interval(share)}, n = {share.n:,})"


def _tokens(length: int) -> str:
    return f"{length:,} tokens ({length_label(length)})"


def facts(run: Run) -> str:
    """Where a run came from: model, task, source tool, name, directory, date, tokenizer, state."""
    manifest = run.manifest
    rows: list[tuple[str, object]] = [
        ("Model", run.model), ("Task", run.task), ("Source tool", run.source), ("Run", run.name),
        ("Directory", run.path), ("Date", run.date or "not recorded"),
    ]
    for key, label in (("tokenizer", "Tokenizer"), ("state", "State"), ("version", "Tool version")):
        if manifest.get(key) is not None:
            rows.append((label, manifest[key]))
    items = "".join(f"<dt>{esc(label)}</dt><dd>{esc(value)}</dd>" for label, value in rows)
    return f'<dl class="facts">{items}</dl>'


def _tile(label: str, value: str, note: str = "") -> str:
    """One headline number; ``value`` and ``note`` are already HTML."""
    note_html = f'<span class="note">{note}</span>' if note else ""
    return f'<div class="tile"><span class="label">{esc(label)}</span><span class="value">{value}</span>{note_html}</div>'


def totals(grid: Grid, task: str = "single", cache: CacheUse | None = None) -> str:
    """Headline numbers: accuracy (hallucination rate for the absent task), effective length, cells, statuses,
    and the prompt cache's share of the input when the provider reported one."""
    share = grid.overall
    if share.mean is None:
        accuracy = _tile("Accuracy", "—", "no scored records")
    elif task == "absent":  # nothing to find: what counts is how often the model answered anyway
        low, high = share.interval
        accuracy = _tile("Hallucination rate", esc(percent(1 - share.mean)),
                         esc(f"95% CI {percent(1 - high)}–{percent(1 - low)} · n = {share.n:,} · "
                             "answers where the document holds none"))
    else:
        low, high = share.interval
        accuracy = _tile("Accuracy", esc(percent(share.mean)),
                         esc(f"95% CI {percent(low)}–{percent(high)} · n = {share.n:,}"))
    effective = grid.effective_length()
    reach = _tile("Effective length", esc(length_label(effective)) if effective else "—",
                  esc(_tokens(effective) if effective else "not measurable")
                  + " · accuracy ≥ 85% of the shortest length's")
    trials = grid.trials
    cells = _tile("Cells", f"{len(grid.cells):,}",
                  esc(f"{len(grid.lengths)} lengths × {len(grid.depths)} depths · "
                      f"{trials} trial{'s' if trials != 1 else ''} each"))
    known = [(status, grid.statuses.get(status, 0)) for status in STATUSES]
    others = sorted((s, n) for s, n in grid.statuses.items() if s not in STATUSES)  # from a newer schema
    pills = "".join(f'<span class="pill {esc(s) if s in STATUSES else ""}">{esc(s)} {n:,}</span>'
                    for s, n in [*known, *others])
    statuses = f'<div class="tile"><span class="label">Records by status</span><span class="pills">{pills}</span></div>'
    cached = "" if cache is None else _tile(
        "Prompt cache", esc(percent(cache.share)),
        esc(f"of input tokens read from the cache · ideal for this sweep {percent(cache.ideal_share)}"
            + (f" · {cache.cache_write_tokens:,} written" if cache.cache_write_tokens else "")))
    return f'<div class="tiles">{accuracy}{reach}{cells}{cached}{statuses}</div>'


def _config_text(config: Mapping[str, Any]) -> str:
    try:
        return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, width=100)
    except yaml.YAMLError:  # a manifest edited by hand may hold values YAML cannot represent
        return json.dumps(config, indent=2, ensure_ascii=False, default=str)


def config_block(run: Run) -> str:
    """The resolved config as YAML in a collapsible block, or a note that the tool did not record one."""
    config = run.manifest.get("config")
    if not isinstance(config, Mapping) or not config:
        return f'<p class="muted">Config: not recorded (results written by {esc(run.source)}).</p>'
    where = run.manifest.get("config_path")
    source = f" from <code>{esc(where)}</code>" if where else ""
    return (f'<details class="config"><summary>Config (resolved{source})</summary>'
            f"<pre>{esc(_config_text(config))}</pre></details>")


def _is_failing(record: Mapping[str, Any]) -> bool:
    score = record.get("score")
    return record.get("status") in ("error", "truncated") or (score is not None and score < 1)


def _order(record: Mapping[str, Any]) -> tuple[float, float, float]:
    def number(key: str) -> float:
        value = record.get(key)
        return float(value) if isinstance(value, int | float) else -1.0

    return number("length"), number("depth"), number("trial")


def failing_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records scored below 1 or ended in an error or a truncation, by length, depth and trial."""
    return sorted((r for r in records if _is_failing(r)), key=_order)


def _number(value: Any, fmt: str) -> str:
    return esc(format(value, fmt)) if isinstance(value, int | float) else esc(value if value is not None else "—")


def _answer(record: Mapping[str, Any]) -> str:
    error = record.get("error")
    if record.get("status") == "error" and isinstance(error, Mapping):
        return f'<span class="err">{esc(error.get("class") or "error")}:</span> {_clip(error.get("message") or "")}'
    response = record.get("response")
    return '<span class="muted">(no answer)</span>' if response in (None, "") else _clip(response)


def failing_table(records: Sequence[Mapping[str, Any]], limit: int = MAX_FAILING_ROWS) -> str:
    """The failing cells with what was asked, expected and answered (the first ``limit`` rows)."""
    failing = failing_records(records)
    if not failing:
        return '<p class="muted">No failing cells: every scored answer was right.</p>'
    rows = []
    for record in failing[:limit]:
        status = str(record.get("status"))
        cells = [
            _number(record.get("length"), ","), _number(record.get("depth"), "g"), _number(record.get("trial"), "g"),
            f'<span class="pill {esc(status) if status in STATUSES else ""}">{esc(status)}</span>',
            _number(record.get("score"), ".2f"), _clip(record.get("question") or ""),
            _clip(record.get("expected") or ""), _answer(record),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    more = len(failing) - limit
    note = f'<p class="muted">{more:,} more not shown.</p>' if more > 0 else ""
    head = "".join(f"<th>{h}</th>" for h in
                   ("Length", "Depth %", "Trial", "Status", "Score", "Question", "Expected", "Answer"))
    return (f'<p class="muted">{len(failing):,} of {len(records):,} records failed.</p>'
            f'<div class="scroll"><table class="failing"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{note}")


def errors_table(records: Iterable[Mapping[str, Any]]) -> str:
    """Errors by class: how many, and the first one's HTTP status and message."""
    counts: Counter[str] = Counter()
    examples: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("status") != "error":
            continue
        error = record.get("error")
        error = error if isinstance(error, Mapping) else {}
        name = str(error.get("class") or "unknown")
        counts[name] += 1
        examples.setdefault(name, error)
    if not counts:
        return '<p class="muted">No errors.</p>'
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{n:,}</td><td>{esc(examples[name].get('status') or '—')}</td>"
        f"<td>{_clip(examples[name].get('message') or '')}</td></tr>"
        for name, n in counts.most_common()
    )
    return ('<table class="errors"><thead><tr><th>Class</th><th>Count</th><th>HTTP status</th>'
            f"<th>Example message</th></tr></thead><tbody>{rows}</tbody></table>")
