"""Grading replies during a sweep: the pure scorers, or a judge model asked through any backend.

The judge sees only the question, the expected answer(s) and the reply, never the haystack, so it
grades the answer and cannot look the fact up itself. Its rubric (also in the prompt):

- CORRECT when the reply gives the expected answer; extra words, explanations, formatting, case, or
  another way of writing the same value (``1,276`` for ``1276``) are fine.
- INCORRECT when the reply gives a different value, several conflicting candidates, or no answer
  (a refusal, "not in the document").

With one expected answer the judge replies with one word, ``CORRECT`` or ``INCORRECT``. With several it
replies with one line per expected answer, in order: ``1: CORRECT``, ``2: INCORRECT``, ... so each needle
keeps its own part. Parsing is strict: case, surrounding whitespace, ``*``/backtick marks and a final
period are forgiven; anything else (another word, a missing or extra line, numbers out of order) leaves
the reply unscored (score None), never wrong. An empty reply is wrong without asking the judge. A judge
request that fails for good (after retrying retryable errors) leaves the reply unscored too, with the
error's class in the note.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from haystack_eval.backends import Backend, Request, Settings, create_backend
from haystack_eval.config import ScoringConfig
from haystack_eval.contexts import Context, Message, Prompt
from haystack_eval.errors import BackendError, ConfigError, RequestTimeout
from haystack_eval.scoring import Graded, grade
from haystack_eval.sweep.retry import backoff

__all__ = ["JUDGE_SYSTEM", "Grader", "judge_prompt", "parse_verdicts"]

JUDGE_SYSTEM = (
    "You grade answers to questions about a document. You are shown the question, the expected answer "
    "and a reply; you do not see the document. Follow the rubric and write only the verdict."
)
_RUBRIC = (
    "Rubric:\n"
    "- CORRECT when the reply gives the expected answer. Extra words, explanations, formatting, case, or "
    "another way of writing the same value are fine.\n"
    "- INCORRECT when the reply gives a different value, gives several conflicting candidates, or gives "
    "no answer (for example a refusal, or saying the document does not say)."
)
_VERDICT = re.compile(r"(CORRECT|INCORRECT)", re.IGNORECASE)
_NUMBERED = re.compile(r"(\d+)\s*[:.)]\s*(CORRECT|INCORRECT)", re.IGNORECASE)
_SHOWN = 80  # characters of a judge reply kept in a note


def judge_prompt(question: str, expected: Sequence[str], answer: str) -> Prompt:
    """The judge's prompt: the question, the expected answer(s), the reply and the rubric; no haystack."""
    if len(expected) == 1:
        wanted = f"Expected answer: {expected[0]}"
        ask = "Write one word: CORRECT or INCORRECT."
    else:
        listed = "\n".join(f"{i}. {want}" for i, want in enumerate(expected, 1))
        wanted = f"Expected answers (the question asks for all of them):\n{listed}"
        ask = (f"Judge each expected answer on its own: does the reply give it? Write exactly {len(expected)} "
               'lines, in order, each "N: CORRECT" or "N: INCORRECT" (N is the number of the expected answer), '
               "and nothing else.")
    user = f"Question: {question}\n{wanted}\n\nReply to grade:\n<reply>\n{answer}\n</reply>\n\n{_RUBRIC}\n\n{ask}"
    return Prompt((Message("system", JUDGE_SYSTEM), Message("user", user)))


def _bare(line: str) -> str:
    """A verdict line without emphasis marks, surrounding whitespace and a final period."""
    return line.replace("*", "").replace("`", "").strip().removesuffix(".").rstrip()


def parse_verdicts(text: str, count: int) -> tuple[float, ...] | None:
    """One 1.0/0.0 per expected answer from a judge reply, or None when it does not follow the format."""
    lines = [_bare(line) for line in text.strip().splitlines() if line.strip()]
    if count == 1:
        match = _VERDICT.fullmatch(lines[0]) if len(lines) == 1 else None
        return (1.0 if match.group(1).upper() == "CORRECT" else 0.0,) if match else None
    if len(lines) != count:
        return None
    parts = []
    for number, line in enumerate(lines, 1):
        match = _NUMBERED.fullmatch(line)
        if not match or int(match.group(1)) != number:
            return None
        parts.append(1.0 if match.group(2).upper() == "CORRECT" else 0.0)
    return tuple(parts)


def _shown(text: str) -> str:
    """A judge reply on one line, cut short for a note."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _SHOWN else flat[:_SHOWN - 3] + "..."


def _judge_context(prompt: Prompt, question: str) -> Context:
    """The Context a Request carries: a judge request has no haystack and hides no needle."""
    return Context(prompt=prompt, tokens=0, tokenizer="none", length=0, depth=0.0, trial=0, needles=(),
                   question=question, haystack_tokens=0, filler="", filler_sha256="")


class Grader:
    """Grades replies under the config's scoring; the judge method asks a model through any configured backend."""

    def __init__(self, scoring: ScoringConfig, *, base_dir: Path, timeout_s: float, max_retries: int,
                 http_client: Any = None, retry_base_s: float = 1.0, retry_max_s: float = 60.0) -> None:
        self.scoring = scoring
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_base_s = retry_base_s  # first backoff; doubles each attempt, with jitter
        self.retry_max_s = retry_max_s  # longest backoff, and longest retry-after honoured
        self._judge: Backend | None = None
        if scoring.method == "judge":
            assert scoring.judge is not None  # ScoringConfig refuses method judge without one
            self._judge = create_backend(scoring.judge, timeout_s=timeout_s, http_client=http_client,
                                         base_dir=base_dir)

    async def grade(self, question: str, expected: Sequence[str], answer: str) -> Graded:
        """The grade of ``answer``; a judge that cannot give one leaves it unscored (score None)."""
        if self._judge is None or not expected:  # nothing to ask a judge when the answer is "not stated"
            return grade(self.scoring, expected, answer)
        if isinstance(expected, str) or not expected:
            raise ValueError("expected must be a non-empty sequence of answers")
        if not answer.strip():  # nothing to judge: no answer is a wrong answer
            return Graded(score=0.0, parts=(0.0,) * len(expected), note="empty reply")
        return await self._ask_judge(self._judge, question, expected, answer)

    async def _ask_judge(self, judge: Backend, question: str, expected: Sequence[str], answer: str) -> Graded:
        """Ask the judge, retrying retryable failures; parse its verdicts strictly."""
        assert self.scoring.judge is not None
        params = self.scoring.judge.params
        # Room for one short verdict line per expected answer, whatever the judge's own budget.
        budget = max(params.max_output_tokens, 8 + 6 * len(expected))
        prompt = judge_prompt(question, expected, answer)
        request = Request(prompt, Settings(params.temperature, budget, self.timeout_s),
                          _judge_context(prompt, question))
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(self.timeout_s):  # not wait_for: see runner._ask
                    reply = await judge.generate(request)
                break
            except TimeoutError:
                error: BackendError = RequestTimeout(f"no reply within {self.timeout_s:g} s")
            except BackendError as exc:
                error = exc
            if error.ends_run:  # a refused key or an unknown judge model would leave every cell unscored
                said = f"HTTP {error.status}: {error.problem}" if error.status else error.problem
                raise ConfigError(f"the judge's server refused the request ({said})", where="scoring.judge",
                                  fix="check scoring.judge (its name, base_url and api_key_env), then run the "
                                      "same command to resume") from None
            if not error.retryable or attempt > self.max_retries:
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                return Graded(score=None, parts=(),
                              note=f"judge request failed ({type(error).__name__}, {tries}): {_shown(error.problem)}")
            await asyncio.sleep(backoff(attempt, error.retry_after, self.retry_base_s, self.retry_max_s))
        parts = parse_verdicts(reply.text, len(expected))
        if parts is None:
            return Graded(score=None, parts=(), note=f"judge reply did not parse: {_shown(reply.text)!r}")
        return Graded(score=sum(parts) / len(parts), parts=parts, note=f"judge: {_shown(reply.text)}")

    async def aclose(self) -> None:
        """Release the judge's connections."""
        if self._judge is not None:
            await self._judge.aclose()
