"""A whole run, from config to run directory: ``run``/``arun`` for scripts, ``load_run`` to read one back."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from haystack_eval.backends import Backend, create_backend
from haystack_eval.backends.base import key_env
from haystack_eval.config import Config, load_config
from haystack_eval.contexts import ContextBuilder, builder_for
from haystack_eval.errors import AuthFailed, BackendError, ConfigError, HaystackError, ModelNotFound, StoreError
from haystack_eval.stats import Grid, grid
from haystack_eval.sweep.admission import Admission
from haystack_eval.sweep.batch import check_batch, run_batch
from haystack_eval.sweep.foreign import looks_foreign, read_foreign
from haystack_eval.sweep.plan import Plan, cells
from haystack_eval.sweep.pricing import Pricer, pricer_for
from haystack_eval.sweep.runner import Tally, run_cells
from haystack_eval.sweep.store import MANIFEST, RESULTS, SCHEMA_VERSION, RunStore, finished, latest, now, read_records

__all__ = ["Run", "arun", "default_out", "load_run", "plan_run", "run"]

Progress = Callable[[Tally, dict[str, Any]], None]
Notice = Callable[[str], None]


@dataclass(frozen=True)
class Run:
    """A run directory as read back: its manifest and the newest record of every cell."""

    path: Path
    manifest: dict[str, Any]
    records: tuple[dict[str, Any], ...]

    @property
    def statuses(self) -> dict[str, int]:
        """How many cells ended in each status."""
        return dict(Counter(r["status"] for r in self.records))

    @property
    def accuracy(self) -> float | None:
        """Mean score over scored cells (errors, truncations and skips are kept out)."""
        scores = [r["score"] for r in self.records if r.get("score") is not None]
        return sum(scores) / len(scores) if scores else None

    @property
    def complete(self) -> bool:
        """Whether every cell has a record and none is an error."""
        return self.manifest.get("state") == "complete"

    @property
    def name(self) -> str:
        """The run's name (the config's ``name``, or the folder's for another tool's results)."""
        return str(self.manifest.get("name") or self.path.name)

    @property
    def model(self) -> str:
        """``provider/name`` of the model, or just the name when the provider is unknown."""
        model = self.manifest.get("model") or {}
        provider, name = model.get("provider"), model.get("name") or "unknown model"
        return f"{provider}/{name}" if provider else str(name)

    @property
    def task(self) -> str:
        """The task kind (``single`` unless the config says otherwise)."""
        config = self.manifest.get("config") or {}
        return str((config.get("task") or {}).get("kind") or self.manifest.get("task") or "single")

    @property
    def source(self) -> str:
        """Which tool wrote the results: ``haystack-eval``, ``gkamradt`` or ``needlehaystack``."""
        return str(self.manifest.get("source_format") or "haystack-eval")

    @property
    def cost_usd(self) -> float | None:
        """What the records cost, in USD (None when no record's cost is known)."""
        costs = [r["cost_usd"] for r in self.records if r.get("cost_usd") is not None]
        return sum(costs) if costs else None

    @property
    def partial_reason(self) -> str | None:
        """Why the run is partial (a cost limit, errors), or None."""
        reason = self.manifest.get("partial_reason")
        return str(reason) if reason and self.manifest.get("state") == "partial" else None

    @property
    def date(self) -> str | None:
        """When the run last changed (ISO 8601, as recorded)."""
        stamp = self.manifest.get("updated") or self.manifest.get("created")
        return str(stamp) if stamp else None

    def grid(self) -> Grid:
        """Per-cell means with 95% Wilson intervals, marginals and the effective length."""
        return grid(self.records)

    def to_pandas(self) -> Any:
        """The records as a pandas DataFrame, one row per cell (needs pandas installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("pandas is not installed", where="Run.to_pandas()", fix="pip install pandas") from None
        rows = [{**r, "error": (r.get("error") or {}).get("class")} for r in self.records]
        return pd.DataFrame(rows)


def default_out(config: Config) -> Path:
    """Where a run goes without --out: ``heatmaps/<name>``."""
    return Path("heatmaps") / config.name


def load_run(path: str | Path) -> Run:
    """Read a run directory, or gkamradt / needlehaystack 2.x results (never modifies them)."""
    path = Path(path)
    if not path.exists():
        raise StoreError("does not exist", where=str(path), fix="give the run directory that `run` wrote")
    if path.is_file() and path.name in (MANIFEST, RESULTS):
        path = path.parent  # a file of a run directory stands for the directory
    if not (path / MANIFEST).exists() and (kind := looks_foreign(path)):
        manifest, records = read_foreign(path, kind)
        return Run(path=path, manifest=manifest, records=tuple(records))
    if path.is_file():
        raise StoreError("is a file, not a run directory", where=str(path),
                         fix="give the directory that holds manifest.json and results.jsonl")
    try:
        manifest = json.loads((path / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        raise StoreError(f"has no {MANIFEST} and no gkamradt or needlehaystack results", where=str(path),
                         fix="point at a haystack-eval run directory or another tool's results folder") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{MANIFEST} is damaged ({type(exc).__name__})", where=str(path),
                         fix="restore it, or run the sweep again") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{MANIFEST} is damaged (not a JSON object)", where=str(path),
                         fix="restore it, or run the sweep again")
    if manifest.get("tool") != "haystack-eval":
        raise StoreError(f"{MANIFEST} was not written by haystack-eval (tool {manifest.get('tool')!r})",
                         where=str(path), fix="point at a haystack-eval run directory, or at gkamradt or "
                                              "needlehaystack results (a folder without a manifest.json)")
    return Run(path=path, manifest=manifest, records=tuple(latest(read_records(path / RESULTS)).values()))


# Fields added after schema 1, left out of a run's measures while at their defaults, so that a run made
# before they existed keeps its fingerprint and resumes.
_ADDED_FIELDS = {"task": ("count", "offsets", "distractors", "value_type"), "scoring": ("pattern", "tolerance", "judge")}


def _measured(section: str, model: BaseModel) -> dict[str, Any]:
    """A config section as it enters the fingerprint: added fields only when set to something else."""
    data: dict[str, Any] = model.model_dump(mode="json")
    defaults = type(model)()
    for name in _ADDED_FIELDS.get(section, ()):
        if getattr(model, name) == getattr(defaults, name):
            data.pop(name, None)
    if isinstance(data.get("judge"), dict):
        data["judge"].pop("prices", None)  # what a request costs never changes what it measures
    return data


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _manifest(config: Config, builder: ContextBuilder, window: int | None, pricer: Pricer) -> dict[str, Any]:
    """The manifest of a run; ``measures`` holds everything that decides what a cell measures."""
    from haystack_eval import __version__

    # Prices decide what a cell costs, not what it measures: a run keeps its fingerprint when they change.
    model = config.model.model_dump(mode="json", exclude={"api_key_env", "prices"})
    measures = {
        "model": model,
        "haystack": config.haystack.model_dump(mode="json"),
        "task": _measured("task", config.task),
        "scoring": _measured("scoring", config.scoring),
        "tokenizer": builder.tokenizer.name,
        "filler_sha256": builder.corpus.sha256,
        "needles_sha256": _digest([spec.model_dump(mode="json") for spec in builder.needles.specs]),
    }
    stamp = now()
    return {
        "tool": "haystack-eval", "version": __version__, "schema_version": SCHEMA_VERSION,
        "name": config.name, "created": stamp, "updated": stamp, "state": "running",
        "config": config.model_dump(mode="json"),  # holds the key's variable name, never the key
        "config_path": str(config.path) if config.path else None,
        "measures": measures, "fingerprint": _digest(measures),
        "model": {"provider": config.model.provider, "name": config.model.name, "base_url": config.model.base_url},
        "tokenizer": builder.tokenizer.name,
        "filler": {"name": builder.corpus.name, "sha256": builder.corpus.sha256,
                   "documents": len(builder.corpus.documents), "words": builder.corpus.words},
        "needles": builder.needles.source,
        "cells": len(cells(config)),
        "context_window": window,
        "prices": pricer.to_json(),
    }


def plan_run(config: Config, out: Path | None = None, *, resume: bool = True, window: int | None = None) -> Plan:
    """The plan of a run without running it: what is finished in ``out`` (read only) and what is left."""
    target = out or default_out(config)
    done = finished(latest(read_records(target / RESULTS))) if resume else frozenset()
    return Plan(tuple(cells(config)), done, window or config.model.context_window,
                config.model.params.max_output_tokens)


async def arun(
    config: Config | str | Path, *, out: str | Path | None = None, concurrency: int | None = None,
    resume: bool = True, progress: Progress | None = None, notice: Notice | None = None,
    backend: Backend | None = None, max_cost: float | None = None, admission: Admission | None = None,
    batch: bool = False, max_polls: int | None = None,
) -> Run:
    """Run (or resume) a sweep and return its run directory, read back; the backend is closed at the end.

    ``max_cost`` (USD) caps what the run directory's records cost: once the next cell could exceed it,
    no further cell is sent, and the run ends ``partial`` with the reason in the manifest. ``admission``
    replaces the rate limits built from ``run.limits`` (tests pass one with a window of seconds).
    ``batch`` sends the cells through the provider's batch API (sweep/batch.py), polling every
    ``run.poll_s`` (at most ``max_polls`` times, then the run ends partial with its batches open).
    """
    if not isinstance(config, Config):
        config = load_config(config)
    builder = builder_for(config)
    pricer = pricer_for(config.model)
    if batch:
        check_batch(config, max_cost)
    if max_cost is not None and not pricer.known:
        raise ConfigError(f"a cost limit needs prices, and {pricer.source}", where=config.where("model", "prices"),
                          fix="set model.prices: {input: ..., output: ...} in USD per million tokens, "
                              "or run without --max-cost")
    backend = backend or create_backend(config.model, timeout_s=config.run.timeout_s, base_dir=config.base_dir)
    say = notice or (lambda _message: None)
    try:
        caps = await backend.capabilities()
        for note in (*caps.notes, *([pricer.note] if pricer.note else [])):
            say(note)
        window = config.model.context_window or caps.context_window
        target = Path(out) if out is not None else default_out(config)
        store = RunStore.open(target, _manifest(config, builder, window, pricer), resume=resume)
        if store.dropped_bytes:
            say(f"{target / RESULTS}: cut a torn last line ({store.dropped_bytes} bytes) left by a crash; "
                "its cell is asked again")
        plan = Plan(tuple(cells(config)), store.finished(), window, config.model.params.max_output_tokens)
        if not batch and any(b.get("state") == "open" for b in store.manifest.get("batches") or []):
            say("this run directory has batches still open: their cells are asked again one by one (and paid twice); "
                "stop and run with --batch to collect them instead")
        state, reason, tally = "interrupted", None, None  # what a Ctrl-C (task cancellation) leaves
        try:
            if batch:
                tally = await run_batch(config, builder, backend, store, plan, pricer=pricer, progress=progress,
                                        notice=say, max_polls=max_polls)
            else:
                tally = await run_cells(config, builder, backend, store, plan,
                                        concurrency=concurrency or config.run.concurrency, progress=progress,
                                        pricer=pricer, max_cost=max_cost, admission=admission)
            reason = tally.stopped or (f"{tally.errors} cell(s) ended in an error" if tally.errors else None)
            state = "partial" if reason else "complete"
        except BackendError as exc:  # only an error that ends the run gets out of the runner
            state = "failed"
            raise _ended(config, exc) from None
        except Exception:
            state = "failed"
            raise
        finally:
            counts = dict(Counter(r["status"] for r in store.records()))
            extra = {"partial_reason": reason} if reason else {}
            if tally is not None and tally.stopped:
                extra["stopped_by"] = "batch" if batch else "max_cost"  # for scripts: cells were left unasked on purpose
            store.close(state=state, updated=now(), statuses=counts, **extra)
    finally:
        await backend.aclose()
    return load_run(target)


def _ended(config: Config, error: BackendError) -> HaystackError:
    """The one line for a request error that stopped the sweep: what the server said and what to fix."""
    said = f"HTTP {error.status}: {error.problem}" if error.status else error.problem
    model = config.model
    if isinstance(error, AuthFailed):
        variable = key_env(model)
        check = (f"check the key in {variable} (and that it is for this provider)" if variable
                 else "set model.api_key_env to the variable that holds this server's key")
        return ConfigError(f"the server refused the key ({said})", fix=f"{check}; then run the same command to resume",
                           where=config.where("model", "api_key_env" if model.api_key_env else "provider"))
    if isinstance(error, ModelNotFound):
        return ConfigError(f"the server has no model {model.name!r}, or no API at this base URL ({said})",
                           where=config.where("model", "name"),
                           fix="check model.name (GET <base_url>/models lists a server's models) and that "
                               "model.base_url ends where the API starts (often /v1)")
    return HaystackError(f"the provider refused further requests ({said})", where=config.where("model", "provider"),
                         fix="add credit or raise the spend limit, then run the same command to resume")


def run(config: Config | str | Path, **options: Any) -> Run:
    """Run a sweep from synchronous code (a script or a notebook); see ``arun`` for the options."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(config, **options))
    # Inside a running loop (Jupyter): run on a thread with a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, arun(config, **options)).result()
