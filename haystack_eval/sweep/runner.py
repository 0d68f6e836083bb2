"""The async runner: a bounded number of requests in flight, retries that honour the provider,
and exactly one record per finished cell, whatever the network does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from haystack_eval.backends import Backend, Reply, Request, Settings
from haystack_eval.config import Config
from haystack_eval.contexts import Context, ContextBuilder
from haystack_eval.errors import BackendError, RequestTimeout
from haystack_eval.scoring import Graded
from haystack_eval.sweep.grading import Grader
from haystack_eval.sweep.plan import Cell, Plan
from haystack_eval.sweep.retry import backoff
from haystack_eval.sweep.store import RunStore, now

__all__ = ["Tally", "run_cells"]



@dataclass
class Tally:
    """Running totals for progress and the final summary."""

    total: int
    done: int = 0
    correct: float = 0.0
    scored: int = 0
    errors: int = 0
    truncated: int = 0
    skipped: int = 0
    unscored: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, record: dict[str, Any]) -> None:
        """Count one record."""
        self.done += 1
        status = record["status"]
        if record.get("score") is not None:
            self.scored += 1
            self.correct += record["score"]
        self.errors += status == "error"
        self.truncated += status == "truncated"
        self.skipped += status == "skipped"
        self.unscored += status == "unscored"
        usage = record.get("usage") or {}
        self.input_tokens += usage.get("input_tokens") or 0
        self.output_tokens += usage.get("output_tokens") or 0

    @property
    def accuracy(self) -> float | None:
        """Mean score of the scored records (errors, truncations and skips are not scored)."""
        return self.correct / self.scored if self.scored else None


def _base_record(config: Config, ctx: Context) -> dict[str, Any]:
    """The fields every record of a cell has: what was asked and what was built."""
    record: dict[str, Any] = {
        "length": ctx.length, "depth": ctx.depth, "trial": ctx.trial,
        "tokens": ctx.tokens, "depth_actual": ctx.depth_actual, "haystack_tokens": ctx.haystack_tokens,
        "needle_id": ctx.targets[0].id if ctx.targets else None, "question": ctx.question,
        "expected": ctx.expected, "model": f"{config.model.provider}/{config.model.name}",
    }
    if ctx.task != "single":
        record["task"] = ctx.task
        record["answers"] = list(ctx.answers)
    if len(ctx.needles) > 1:  # where every hidden sentence went, distractors included
        record["needles"] = [{"id": n.id, "role": n.role, "answer": n.answer, "depth_actual": n.depth}
                             for n in ctx.needles]
    return record


def _reply_record(config: Config, ctx: Context, reply: Reply, graded: Graded | None, attempts: int) -> dict[str, Any]:
    """A finished request: ok (scored), unscored (the grader could not say), or truncated (cut off, empty)."""
    status = "truncated" if graded is None else ("ok" if graded.score is not None else "unscored")
    record = {
        **_base_record(config, ctx),
        "response": reply.text,
        "score": None if graded is None else graded.score,
        "status": status,
        "error": None, "attempts": attempts, "finish_reason": reply.finish_reason,
        "usage": dataclasses.asdict(reply.usage), "latency_s": round(reply.latency_s, 4),
        "cost_usd": None, "request_id": reply.request_id, "ts": now(),
    }
    if graded is not None and len(graded.parts) > 1:
        record["needle_scores"] = list(graded.parts)  # per-needle recall, in the order of "answers"
    if graded is not None and graded.note:
        record["score_note"] = graded.note
    return record


def _error_record(config: Config, ctx: Context, error: BackendError, attempts: int) -> dict[str, Any]:
    """A request that failed for good: no response, no score, the error's class and message."""
    return {
        **_base_record(config, ctx),
        "response": None, "score": None, "status": "error",
        "error": {"class": type(error).__name__, "message": error.problem, "status": error.status},
        "attempts": attempts, "finish_reason": None, "usage": None, "latency_s": None,
        "cost_usd": None, "request_id": error.request_id, "ts": now(),
    }


def _skipped_record(config: Config, ctx: Context, window: int | None) -> dict[str, Any]:
    """A cell too long for the model's window: recorded, never sent."""
    return {
        **_base_record(config, ctx),
        "response": None, "score": None, "status": "skipped",
        "error": {"class": "TooLongForWindow", "status": None,
                  "message": f"{ctx.tokens} prompt tokens + {config.model.params.max_output_tokens} output "
                             f"exceed the context window of {window}"},
        "attempts": 0, "finish_reason": None, "usage": None, "latency_s": None,
        "cost_usd": None, "request_id": None, "ts": now(),
    }


async def _ask(
    config: Config, builder: ContextBuilder, backend: Backend, grader: Grader, cell: Cell,
) -> dict[str, Any]:
    """Ask one cell, retrying what is worth retrying; always returns a record."""
    run, params = config.run, config.model.params
    ctx = builder.build(cell.length, cell.depth, cell.trial)
    request = Request(ctx.prompt, Settings(params.temperature, params.max_output_tokens, run.timeout_s), ctx)
    attempt = 0
    while True:
        attempt += 1
        try:
            reply = await asyncio.wait_for(backend.generate(request), run.timeout_s)
        except TimeoutError:
            error: BackendError = RequestTimeout(f"no reply within {run.timeout_s:g} s")
        except BackendError as exc:
            error = exc
        else:
            if reply.cut_off and not reply.text.strip():
                return _reply_record(config, ctx, reply, None, attempt)  # cut off before it said anything
            graded = await grader.grade(ctx.question, ctx.answers, reply.text)
            return _reply_record(config, ctx, reply, graded, attempt)
        if error.ends_run:
            raise error  # a wrong key or model would fail every other cell alike: stop the sweep at the first
        if not error.retryable or attempt > run.max_retries:
            return _error_record(config, ctx, error, attempt)
        await asyncio.sleep(backoff(attempt, error.retry_after, run.retry_base_s, run.retry_max_s))


async def run_cells(
    config: Config, builder: ContextBuilder, backend: Backend, store: RunStore, plan: Plan,
    *, concurrency: int, progress: Callable[[Tally, dict[str, Any]], None] | None = None,
) -> Tally:
    """Record every pending cell of the plan: skipped ones at once, the rest through the backend.

    A request error that ``ends_run`` (a wrong key or model) is raised instead of recorded.
    """
    tally = Tally(total=len(plan.cells))
    for record in store.records():
        if record["status"] != "error":
            tally.add(record)

    def keep(record: dict[str, Any]) -> None:
        store.append(record)
        tally.add(record)
        if progress is not None:
            progress(tally, record)

    for cell in plan.skipped:
        keep(_skipped_record(config, builder.build(cell.length, cell.depth, cell.trial), plan.window))

    pending: Iterator[Cell] = iter(plan.to_ask)
    run = config.run
    grader = Grader(config.scoring, base_dir=config.base_dir, timeout_s=run.timeout_s, max_retries=run.max_retries,
                    retry_base_s=run.retry_base_s, retry_max_s=run.retry_max_s)

    async def worker() -> None:
        # Workers share one iterator: at most `concurrency` cells (and prompts) are alive at once,
        # and they are taken in plan order, so neighbouring cells run close together.
        for cell in pending:
            keep(await _ask(config, builder, backend, grader, cell))

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(plan.to_ask)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await grader.aclose()
    return tally
