"""The async runner: a bounded number of requests in flight, retries that honour the provider,
and exactly one record per finished cell, whatever the network does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from haystack_eval.backends import Backend, Reply, Request, Settings, Usage
from haystack_eval.config import Config
from haystack_eval.contexts import Context, ContextBuilder
from haystack_eval.errors import BackendError, OverRateLimit, RateLimited, RequestTimeout
from haystack_eval.scoring import Graded
from haystack_eval.sweep.admission import Admission
from haystack_eval.sweep.estimate import cache_rule
from haystack_eval.sweep.grading import Grader
from haystack_eval.sweep.plan import Plan, key_of
from haystack_eval.sweep.pricing import Budget, Pricer, Tokens, pricer_for, tokens_of
from haystack_eval.sweep.retry import backoff
from haystack_eval.sweep.schedule import Schedule, style_for
from haystack_eval.sweep.store import RunStore, now

__all__ = ["Tally", "run_cells", "start"]


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
    cost_usd: float = 0.0  # of the records whose cost is known
    stopped: str | None = None  # why cells were left unasked (a cost limit), None when none were

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
        self.cost_usd += record.get("cost_usd") or 0.0

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


def _reply_record(config: Config, ctx: Context, reply: Reply, graded: Graded | None, attempts: int,
                  cost_usd: float | None) -> dict[str, Any]:
    """A finished request: ok (scored), unscored (the grader could not say), or truncated (cut off, empty)."""
    status = "truncated" if graded is None else ("ok" if graded.score is not None else "unscored")
    record = {
        **_base_record(config, ctx),
        "response": reply.text,
        "score": None if graded is None else graded.score,
        "status": status,
        "error": None, "attempts": attempts, "finish_reason": reply.finish_reason,
        "usage": dataclasses.asdict(reply.usage), "latency_s": round(reply.latency_s, 4),
        "cost_usd": cost_usd, "request_id": reply.request_id, "ts": now(),
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
        "cost_usd": 0.0, "request_id": None, "ts": now(),  # never sent, so nothing to pay
    }


def _over_limit_record(config: Config, ctx: Context, error: OverRateLimit, attempts: int) -> dict[str, Any]:
    """A cell whose prompt no rate limit can admit: recorded as skipped (and asked again on resume)."""
    return {
        **_base_record(config, ctx),
        "response": None, "score": None, "status": "skipped",
        "error": {"class": "OverRateLimit", "status": None,
                  "message": f"{error.problem}: raise run.limits (or the provider's limit, a higher usage tier) "
                             f"or drop length {ctx.length} from haystack.lengths, then run again to ask it"},
        "attempts": attempts, "finish_reason": None, "usage": None, "latency_s": None,
        "cost_usd": 0.0, "request_id": None, "ts": now(),  # refused before sending: nothing to pay
    }


async def _ask(config: Config, ctx: Context, backend: Backend, grader: Grader, pricer: Pricer,
               admission: Admission, *, cache_at: tuple[int, ...] = ()) -> dict[str, Any]:
    """Ask one cell when the rate limits admit it, retrying what is worth retrying; always returns a record."""
    run, params = config.run, config.model.params
    request = Request(ctx.prompt, Settings(params.temperature, params.max_output_tokens, run.timeout_s), ctx, cache_at)
    attempt = 0
    while True:
        try:  # every attempt is a request against the limits, retries included
            ticket = await admission.admit(admission.need(ctx.tokens, params.max_output_tokens))
        except OverRateLimit as exc:
            return _over_limit_record(config, ctx, exc, attempt)
        attempt += 1
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for returns a reply that lands as it is cancelled
            # and so swallows the cancellation (a Ctrl-C that never stops the run)
            async with asyncio.timeout(run.timeout_s):
                reply = await backend.generate(request)
        except TimeoutError:
            error: BackendError = RequestTimeout(f"no reply within {run.timeout_s:g} s")
        except BackendError as exc:
            error = exc
            admission.observe(exc.rate_headers, retry_after=exc.retry_after if isinstance(exc, RateLimited) else None)
        else:
            admission.observe(reply.rate_headers)
            used = tokens_of(config.model.provider, reply.usage)
            admission.settle(ticket, ctx.tokens, used.input if used else reply.usage.input_tokens,
                             reply.usage.output_tokens)
            cost = pricer.usage_cost(config.model.provider, reply.usage)
            if reply.cut_off and not reply.text.strip():
                return _reply_record(config, ctx, reply, None, attempt, cost)  # cut off before it said anything
            graded = await grader.grade(ctx.question, ctx.answers, reply.text)
            return _reply_record(config, ctx, reply, graded, attempt, cost)
        if error.ends_run:
            raise error  # a wrong key or model would fail every other cell alike: stop the sweep at the first
        if not error.retryable or attempt > run.max_retries:
            return _error_record(config, ctx, error, attempt)
        await asyncio.sleep(backoff(attempt, error.retry_after, run.retry_base_s, run.retry_max_s))


def _bounded(record: dict[str, Any], bound: int | None) -> dict[str, Any]:
    """A sent cell's record with its part of the sweep's ideal cached input (schedule.py), for the cache report."""
    if bound is not None and record.get("usage") is not None:
        record["cacheable_tokens"] = bound
    return record


def _spent(config: Config, pricer: Pricer, record: dict[str, Any], guess: float) -> float:
    """What a record counts against a cost limit: its cost; a failed request none (providers bill no
    refused request); a reply without usage its estimate."""
    if record["status"] in ("error", "skipped"):
        return 0.0
    if record.get("cost_usd") is not None:
        return float(record["cost_usd"])
    usage = record.get("usage") or {}
    known = {k: usage.get(k) for k in Usage.__dataclass_fields__}
    cost = pricer.usage_cost(config.model.provider, Usage(**known))  # a record made before prices existed
    return guess if cost is None else cost


def _stopped(budget: Budget, left: int) -> str:
    return (f"stopped before the cost limit of ${budget.limit:,.2f}: ${budget.spent:,.4f} spent, and the next cell "
            f"could cost up to ${budget.refused or 0:,.4f}; {left} cell(s) not asked")


def start(
    config: Config, builder: ContextBuilder, store: RunStore, plan: Plan,
    progress: Callable[[Tally, dict[str, Any]], None] | None,
) -> tuple[Tally, Callable[[dict[str, Any]], None]]:
    """The tally of the records already finished, and ``keep`` (store, count, report a record); the
    cells too long for the model's window are recorded as skipped at once."""
    tally = Tally(total=len(plan.cells))
    done = store.finished()
    for record in store.records():
        if key_of(record) in done:  # errors and rate-limit skips are asked again
            tally.add(record)

    def keep(record: dict[str, Any]) -> None:
        store.append(record)
        tally.add(record)
        if progress is not None:
            progress(tally, record)

    for cell in plan.skipped:
        keep(_skipped_record(config, builder.build(cell.length, cell.depth, cell.trial), plan.window))
    return tally, keep


async def run_cells(
    config: Config, builder: ContextBuilder, backend: Backend, store: RunStore, plan: Plan,
    *, concurrency: int, progress: Callable[[Tally, dict[str, Any]], None] | None = None,
    pricer: Pricer | None = None, max_cost: float | None = None, admission: Admission | None = None,
    cache_aware: bool = True,
) -> Tally:
    """Record every pending cell of the plan: skipped ones at once, the rest through the backend.

    A request error that ``ends_run`` (a wrong key or model) is raised instead of recorded. With
    ``max_cost`` (USD, for the whole run directory) no cell is sent once the records' cost, the cells
    in flight and this cell's estimate (its prompt and a full-length reply) would exceed it. Every
    request waits for ``admission`` (by default built from ``run.limits``) to have room for it.
    """
    admission = admission or Admission(config.run.limits)
    pricer = pricer or pricer_for(config.model)
    budget = Budget(max_cost) if max_cost is not None else None
    tally, keep = start(config, builder, store, plan, progress)
    if budget is not None:
        for record in store.records():
            budget.spent += _spent(config, pricer, record, 0.0)

    # Cache-aware order (schedule.py): a group's first cell warms the provider's prompt cache before the rest
    # go; cache_aware=False keeps the plan's order with nothing waiting (the naive baseline of bench/cache.py).
    style = style_for(config.model.provider, concurrency) if cache_aware else "plan"
    schedule = Schedule(plan.to_ask, plan.cells, cache_rule(config.model), style, provider=config.model.provider)
    run = config.run
    grader = Grader(config.scoring, base_dir=config.base_dir, timeout_s=run.timeout_s, max_retries=run.max_retries,
                    retry_base_s=run.retry_base_s, retry_max_s=run.retry_max_s)
    provider, most = config.model.provider, config.model.params.max_output_tokens
    # With a cost limit the first cell goes alone: its reply shows how the provider counts tokens
    # (Claude's tokenizer counts more than tiktoken), and the next estimates are scaled to match.
    calibrated = asyncio.Event()

    async def worker() -> None:
        # Workers share one iterator: at most `concurrency` cells (and prompts) are alive at once,
        # and they are taken in plan order, so neighbouring cells run close together.
        while (cell := await schedule.take()) is not None:
            ctx = builder.build(cell.length, cell.depth, cell.trial)
            cache_at, bound = schedule.breakpoints(cell, ctx), schedule.bound(cell, ctx)
            if budget is None:
                keep(_bounded(await _ask(config, ctx, backend, grader, pricer, admission, cache_at=cache_at), bound))
                await schedule.finish(cell)
                continue
            if budget.reserved > 0 and not calibrated.is_set():
                await calibrated.wait()
            guess = pricer.cost(Tokens(math.ceil(ctx.tokens * budget.scale), output=most)) or 0.0
            if not budget.admit(guess):
                await schedule.stop()
                return  # this cell and every later one stay unasked; the cells in flight finish
            record = _bounded(await _ask(config, ctx, backend, grader, pricer, admission, cache_at=cache_at), bound)
            reported = tokens_of(provider, Usage(**record["usage"])) if record.get("usage") else None
            if reported is not None and ctx.tokens:
                budget.scale = max(budget.scale, reported.input / ctx.tokens)  # the provider counts more
            budget.settle(guess, _spent(config, pricer, record, guess))
            calibrated.set()
            keep(record)
            await schedule.finish(cell)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(plan.to_ask)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await grader.aclose()
    if budget is not None and budget.refused is not None:
        tally.stopped = _stopped(budget, tally.total - tally.done)
    return tally
