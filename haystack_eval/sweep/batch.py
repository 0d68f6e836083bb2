"""``run --batch``: the sweep's pending cells through a provider's batch API, at batch prices.

Cells go up in batches within the provider's limits (OpenAI 50,000 requests / 200 MB per file,
Anthropic 100,000 / 256 MB), so a large sweep becomes several batches. The batch ids go into the
manifest *before* polling starts, so a restarted run polls the same batches instead of paying
twice. An ended batch's answers become the same records a normal run writes, graded by the same
Grader; a request the batch refused is an error record of its class, and one it left unanswered
(expired, cancelled, failed) a retryable error: the next run asks those cells again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from haystack_eval.backends import Backend, Reply, Request, Settings
from haystack_eval.backends.batches import BatchAPI, Ended, batch_api
from haystack_eval.config import Config
from haystack_eval.contexts import ContextBuilder
from haystack_eval.errors import BackendError, ConfigError, ModelNotFound, RequestTimeout, ServerError
from haystack_eval.sweep.grading import Grader
from haystack_eval.sweep.plan import CellKey, Plan
from haystack_eval.sweep.pricing import Pricer, tokens_of
from haystack_eval.sweep.runner import Tally, _error_record, _reply_record, start
from haystack_eval.sweep.store import RunStore, now

__all__ = ["BATCH_PROVIDERS", "check_batch", "chunks", "custom_id", "run_batch"]

# openai-compatible only where the server serves /v1/files and /v1/batches (a 404 says it does not)
BATCH_PROVIDERS = ("openai", "anthropic", "openai-compatible")


def check_batch(config: Config, max_cost: float | None = None) -> None:
    """Refuse --batch for a provider without a batch API, or with a cost limit (before anything is sent)."""
    if max_cost is not None:  # a batch is paid for whole: there is no next cell to hold back
        raise ConfigError("--max-cost cannot stop a batch halfway", where="--max-cost",
                          fix="see the batch cost with `haystack-eval estimate CONFIG`, then run --batch without --max-cost")
    if config.model.provider not in BATCH_PROVIDERS:
        raise ConfigError(f"provider {config.model.provider!r} has no batch API haystack-eval can use "
                          f"(--batch supports: {', '.join(BATCH_PROVIDERS)})", where=config.where("model", "provider"),
                          fix="run without --batch")


def custom_id(key: CellKey) -> str:
    """A cell's id inside a batch, e.g. ``1000_12p5_0`` (Anthropic takes only letters, digits, _ and -)."""
    return f"{key[0]}_{key[1]!r}_{key[2]}".replace(".", "p")


def _cell(text: str) -> CellKey:
    length, depth, trial = text.replace("p", ".").split("_")
    return int(length), float(depth), int(trial)


def chunks(entries: list[tuple[str, bytes]], *, most: int, size: int) -> list[list[tuple[str, bytes]]]:
    """Batch entries split into batches of at most ``most`` requests and ``size`` bytes."""
    out: list[list[tuple[str, bytes]]] = []
    used = 0
    for entry in entries:
        if len(entry[1]) > size:
            raise ConfigError(f"one request is {len(entry[1]):,} bytes, over the {size:,}-byte limit of a batch",
                              where="--batch", fix="drop the longest lengths, or run without --batch")
        if not out or len(out[-1]) >= most or used + len(entry[1]) > size:
            out.append([])
            used = 0
        out[-1].append(entry)
        used += len(entry[1])
    return out


async def run_batch(
    config: Config, builder: ContextBuilder, backend: Backend, store: RunStore, plan: Plan, *, pricer: Pricer,
    progress: Callable[[Tally, dict[str, Any]], None] | None = None, notice: Callable[[str], None] | None = None,
    max_polls: int | None = None,
) -> Tally:
    """Submit the plan's pending cells (resuming the manifest's open batches), poll them, record the results.

    ``max_polls`` stops polling after that many rounds; the batches stay open in the manifest and
    the tally says why the run is partial.
    """
    api = batch_api(backend, config.run.timeout_s)
    if api is None:
        check_batch(config)  # the config's provider has a batch API but this backend does not
        raise ConfigError("this backend has no batch API", where=config.where("model", "provider"),
                          fix="run without --batch")
    say = notice or (lambda _message: None)
    tally, keep = start(config, builder, store, plan, progress)
    batches: list[dict[str, Any]] = list(store.manifest.get("batches") or [])
    waiting = {cid for b in batches if b["state"] == "open" for cid in b["cells"]}
    params = config.model.params
    settings = Settings(params.temperature, params.max_output_tokens, config.run.timeout_s)
    entries = []
    for cell in plan.to_ask:
        cid = custom_id((cell.length, cell.depth, cell.trial))
        if cid not in waiting:  # a cell already in an open batch is polled, not sent again
            ctx = builder.build(cell.length, cell.depth, cell.trial)
            entries.append((cid, api.entry(cid, Request(ctx.prompt, settings, ctx))))
    for part in chunks(entries, most=api.max_requests, size=api.max_bytes):
        batch_id = await _submit(config, api, [entry for _, entry in part])
        batches.append({"id": batch_id, "provider": api.provider, "state": "open", "submitted": now(),
                        "cells": [cid for cid, _ in part]})
        store.note(batches=batches)  # on disk before the first poll: a restart polls this batch
        say(f"submitted batch {batch_id} ({len(part)} requests); polling every {config.run.poll_s:g} s")
    run = config.run
    grader = Grader(config.scoring, base_dir=config.base_dir, timeout_s=run.timeout_s, max_retries=run.max_retries,
                    retry_base_s=run.retry_base_s, retry_max_s=run.retry_max_s)
    try:
        polls = 0
        while any(b["state"] == "open" for b in batches) and (max_polls is None or polls < max_polls):
            polls += 1
            for entry in [b for b in batches if b["state"] == "open"]:
                ended = await api.poll(entry["id"])
                if ended is None:
                    continue
                for record in await _collect(config, builder, grader, pricer, entry, ended):
                    keep(record)
                entry["state"], entry["status"], entry["collected"] = "collected", ended.status, now()
                store.note(batches=batches)
            if any(b["state"] == "open" for b in batches):
                await asyncio.sleep(run.poll_s)
    finally:
        await grader.aclose()
    left = sum(len(b["cells"]) for b in batches if b["state"] == "open")
    if left:
        tally.stopped = f"{left} cell(s) wait in open batches; run the same command to go on polling"
    return tally


async def _submit(config: Config, api: BatchAPI, entries: list[bytes]) -> str:
    """Submit one batch; a server without the batch endpoints is a config error, not a failed cell."""
    try:
        return await api.submit(entries)
    except ModelNotFound as exc:
        raise ConfigError(f"the server at {config.model.base_url or 'the default base URL'} has no batch API "
                          f"({exc.problem})", where=config.where("model", "provider"), fix="run without --batch") from None


async def _collect(config: Config, builder: ContextBuilder, grader: Grader, pricer: Pricer, entry: dict[str, Any],
                   ended: Ended) -> list[dict[str, Any]]:
    """The records of one ended batch: answered cells, refused ones, and ones it left unanswered."""
    records = []
    for cid in entry["cells"]:
        length, depth, trial = _cell(cid)
        ctx = builder.build(length, depth, trial)
        outcome = ended.outcomes.get(cid)
        if outcome is None:
            said = f"batch {entry['id']} ended {ended.status} without answering it"
            outcome = ServerError(said) if ended.status == "failed" else RequestTimeout(said)
        if isinstance(outcome, BackendError):
            record = _error_record(config, ctx, outcome, 1)
        else:
            record = await _record(config, grader, pricer, ctx, outcome)
        record["batch_id"] = entry["id"]
        records.append(record)
    return records


async def _record(config: Config, grader: Grader, pricer: Pricer, ctx: Any, reply: Reply) -> dict[str, Any]:
    """An answered cell's record, as the runner makes it, at batch prices."""
    used = tokens_of(config.model.provider, reply.usage)
    cost = None if used is None else pricer.cost(used, batch=True)
    if reply.cut_off and not reply.text.strip():
        graded = None  # cut off before it said anything
    else:
        graded = await grader.grade(ctx.question, ctx.answers, reply.text)
    record = _reply_record(config, ctx, reply, graded, 1, cost)
    record["latency_s"] = None  # a batch does not time its requests
    return record
