"""The ``scripted`` backend: answers in-process by a rule, so sweeps run without keys or network.

Rules (``model.name``):

- ``oracle``: answers with the needle's answer: every cell correct.
- ``lost-in-the-middle``: a demo profile. The chance of a miss grows with length and peaks near
  the middle of the haystack, drawn deterministically per cell, so its heatmap has the familiar shape.
- ``silent``: an empty reply cut off by the output budget (every cell ``truncated``).
- ``unavailable``: every request fails with a 503 (every cell ``error`` after its retries).
- ``canned:TEXT``: always answers TEXT.
"""

from __future__ import annotations

import asyncio
import hashlib
import math

from haystack_eval.backends.base import Capabilities, Reply, Request, Usage
from haystack_eval.config import ModelConfig
from haystack_eval.errors import ConfigError, ServerError

__all__ = ["RULES", "ScriptedBackend"]

RULES = ("oracle", "lost-in-the-middle", "silent", "unavailable", "canned:TEXT")
_MISS = "I could not find that in the document."


def _uniform(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts`` (stable across runs and Python versions)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def miss_chance(length: int, depth: float) -> float:
    """The ``lost-in-the-middle`` profile: 0 at 1K tokens, up to 0.85 at 128K+ in the middle."""
    reach = min(1.0, max(0.0, math.log(length / 1000) / math.log(128)))
    middle = math.exp(-(((depth - 55) / 22) ** 2))
    return 0.85 * reach * middle


class ScriptedBackend:
    """Answers by a named rule; never touches the network."""

    def __init__(self, model: ModelConfig) -> None:
        rule = model.name
        if rule not in RULES[:-1] and not rule.startswith("canned:"):
            raise ConfigError(f"unknown scripted rule {rule!r}", where="model.name",
                              fix=f"use one of {', '.join(RULES)}")
        self.rule = rule

    async def capabilities(self) -> Capabilities:
        """No window limit; temperature is ignored but accepted."""
        return Capabilities()

    async def generate(self, request: Request) -> Reply:
        """The rule's answer for this cell."""
        await asyncio.sleep(0)  # yield like a real request would
        ctx = request.context
        if self.rule == "unavailable":
            raise ServerError("scripted rule 'unavailable': the service is down", status=503)
        cut_off = False
        # every expected answer, one per line; "not stated" when the document holds none (task absent)
        right = "\n".join(ctx.answers) if ctx.answers else "not stated"
        if self.rule == "oracle":
            text = right
        elif self.rule == "lost-in-the-middle":
            missed = _uniform(ctx.length, ctx.depth, ctx.trial, ctx.expected) < miss_chance(ctx.length, ctx.depth)
            text = _MISS if missed else f"It is {right}."
        elif self.rule == "silent":
            text, cut_off = "", True
        else:
            text = self.rule.removeprefix("canned:")
        words = len(text.split())
        return Reply(
            text=text,
            finish_reason="length" if cut_off else "stop",
            usage=Usage(input_tokens=ctx.tokens, output_tokens=request.settings.max_output_tokens if cut_off else words),
            latency_s=0.0,
            request_id=None,
            cut_off=cut_off,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
