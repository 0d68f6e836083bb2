"""Task generators: what one trial hides in the haystack and what it asks, for every ``task.kind``.

A :class:`Case` is the content of a trial (the sentences to hide, the question, the expected
answers); it depends on the seed, the trial and the attempt only, so every depth and length of a
trial hides the same facts. :meth:`Task.targets` then says at which depth each needle goes for a
cell; distractors are placed by the builder, away from the first needle.

- ``single``: one needle from the needle set; ``latent``: the same with the bundled ``latent`` set,
  whose questions share no content word with their needles.
- ``multi``: ``count`` needles, the first at the cell's depth and the others further on (evenly up to
  100%, or at ``offsets`` points past it); one question asks for all of them.
- ``multikey``, ``multivalue``, ``multiquery``: RULER-style keyed statements ("One of the passphrases
  filed under amber-falcon is ...") with ``distractors`` statements for other keys; the question asks
  for one key, for all ``count`` values of one key, or for ``count`` keys at once.
- ``distractor``: a templated needle whose question names an entity, and ``distractors`` near-misses
  (the same template, another entity and value) at least 20% of the haystack away.
- ``absent``: no needle at all; the right answer is that the document does not say.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import yaml

from haystack_eval.config import TaskConfig
from haystack_eval.contexts.needles import Needle, NeedleSet
from haystack_eval.errors import NeedleError

__all__ = ["DISTRACTOR_GAP", "NOT_STATED", "Case", "Statement", "Task"]

NOT_STATED = "not stated"  # what the absent task's prompt offers as the answer when the document does not say
DISTRACTOR_GAP = 20.0  # percent of the haystack between the needle and any near-miss fact
Role = Literal["needle", "distractor"]


@dataclass(frozen=True)
class Statement:
    """A sentence to hide: a needle the question asks about, or a distractor."""

    id: str
    text: str
    answer: str  # the needle's answer; for a distractor, the value a careless reader would give
    kind: str
    role: Role = "needle"


@dataclass(frozen=True)
class Case:
    """What one trial hides and asks; ``answers`` are expected in order, none for ``absent``."""

    statements: tuple[Statement, ...]
    question: str
    answers: tuple[str, ...]

    @property
    def needles(self) -> tuple[Statement, ...]:
        """The statements the question asks about, in order."""
        return tuple(s for s in self.statements if s.role == "needle")

    @property
    def distractors(self) -> tuple[Statement, ...]:
        """The statements placed to mislead."""
        return tuple(s for s in self.statements if s.role == "distractor")


@cache
def _keyed() -> dict[str, list[str]]:
    """The word lists and statement templates of the keyed tasks (original, written for this project)."""
    text = resources.files("haystack_eval.contexts").joinpath("data", "keyed.yaml").read_text("utf-8")
    data: dict[str, list[str]] = yaml.safe_load(text)
    return data


def _value(kind: str, rng: random.Random) -> str:
    words = _keyed()
    if kind == "numbers":
        return str(rng.randint(1_000_000, 9_999_999))  # seven digits, as in RULER
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f"{rng.choice(words['value_adjectives'])}-{rng.choice(words['value_nouns'])}"


def _several(questions: list[str]) -> str:
    numbered = " ".join(f"({i}) {q}" for i, q in enumerate(questions, 1))
    return f"Answer these {len(questions)} questions in order, one answer per line: {numbered}"


def _as_statement(needle: Needle, role: Role = "needle") -> Statement:
    return Statement(needle.id, needle.text, needle.answer, needle.kind, role)


class Task:
    """The generator of one ``task.kind`` over a needle set."""

    def __init__(self, config: TaskConfig, needles: NeedleSet) -> None:
        self.config = config
        self.kind = config.kind
        self.needles = needles
        self.seed = config.seed
        if self.kind == "distractor":
            self._entity_specs = [i for i, spec in enumerate(needles.specs) if spec.entity_placeholders]
            if not self._entity_specs:
                raise NeedleError("task.kind distractor needs needles whose question names an entity from "
                                  "`values` (like archive-code in the library)", where="task.needles",
                                  fix="use the library or add such template needles")

    @property
    def abstains(self) -> bool:
        """Whether the right answer is that the document does not say (``absent``)."""
        return self.kind == "absent"

    def case(self, trial: int, attempt: int = 0) -> Case:
        """The content of a trial; a later ``attempt`` gives the next candidate."""
        kind, seed = self.kind, self.seed
        if kind in ("single", "latent"):
            needle = self.needles.pick(seed, trial, attempt)
            return Case((_as_statement(needle),), needle.question, (needle.answer,))
        if kind == "absent":
            # the question of a needle that is not there; saying so must be a possible answer
            needle = self.needles.pick(seed, trial, attempt)
            return Case((), f"{needle.question} If the document does not say, answer: {NOT_STATED}.", ())
        if kind == "multi":
            count = self.config.needle_count
            picked = [self.needles.pick(seed, trial * count + i, attempt) for i in range(count)]
            return Case(tuple(_as_statement(n) for n in picked), _several([n.question for n in picked]),
                        tuple(n.answer for n in picked))
        if kind == "distractor":
            return self._distractor_case(trial, attempt)
        return self._keyed_case(trial, attempt)

    def _distractor_case(self, trial: int, attempt: int) -> Case:
        order = self._entity_specs[:]
        random.Random(f"haystack-eval/distractor/{self.seed}").shuffle(order)
        spec = order[(trial + attempt) % len(order)]
        needle = self.needles.draw(spec, self.seed, trial, attempt)
        near: list[Statement] = []
        questions, answers = {needle.question}, {needle.answer}
        for variant in range(1, 64):
            if len(near) == self.config.distractor_count:
                break
            other = self.needles.draw(spec, self.seed, trial, attempt, variant=variant)
            # a near miss names another entity (else it would contradict the needle) and another value
            if other.question not in questions and other.answer not in answers:
                questions.add(other.question)
                answers.add(other.answer)
                near.append(_as_statement(other, "distractor"))
        if len(near) < self.config.distractor_count:
            raise NeedleError(f"needle {needle.id!r} has too few entities for {self.config.distractor_count} "
                              "near-miss facts", where="task.needles", fix="lower task.distractors")
        return Case((_as_statement(needle), *near), needle.question, (needle.answer,))

    def _keyed_case(self, trial: int, attempt: int) -> Case:
        kind, count, config = self.kind, self.config.needle_count, self.config
        rng = random.Random(f"haystack-eval/keyed/{self.seed}/{trial}/{attempt}")
        words = _keyed()
        template = words["templates"][["words", "numbers", "uuids"].index(config.value_type)]
        noun, plural = template.split("|")
        asked = count if kind == "multiquery" else 1  # keys the question asks about
        keys: list[str] = []
        while len(keys) < asked + config.distractor_count:
            key = f"{rng.choice(words['key_adjectives'])}-{rng.choice(words['key_nouns'])}"
            if key not in keys:  # a distractor key never equals an asked one
                keys.append(key)
        values: list[str] = []
        per_key = count if kind == "multivalue" else 1
        while len(values) < asked * per_key + config.distractor_count:
            value = _value(config.value_type, rng)
            if value not in values and value not in keys:
                values.append(value)

        def line(key: str, value: str, role: Role, n: int) -> Statement:
            text = f"One of the {plural} filed under {key} is {value}."
            return Statement(f"{kind}-{n}", text, value, config.value_type, role)

        needles = [line(keys[i // per_key], values[i], "needle", i) for i in range(asked * per_key)]
        extra = [line(keys[asked + j], values[asked * per_key + j], "distractor", len(needles) + j)
                 for j in range(config.distractor_count)]
        if kind == "multikey":
            question = f"Which {noun} is filed under {keys[0]}?"
        elif kind == "multivalue":
            question = f"Which {plural} are filed under {keys[0]}? Give all {count} of them, one per line."
        else:
            question = _several([f"Which {noun} is filed under {key}?" for key in keys[:asked]])
        return Case((*needles, *extra), question, tuple(s.answer for s in needles))

    def targets(self, case: Case, depth: float) -> list[float]:
        """Target depths of the case's needles in a cell at ``depth``: the first there, the others further on."""
        k = len(case.needles)
        if self.config.offsets is not None:
            return [depth] + [min(100.0, depth + off) for off in self.config.offsets[: k - 1]]
        return [depth + i * (100.0 - depth) / k for i in range(k)]

    def distractor_targets(self, case: Case, depth: float) -> list[float]:
        """Target depths of the distractors: spread evenly over the haystack outside the needle's band."""
        n = len(case.distractors)
        if not n:
            return []
        gap = DISTRACTOR_GAP if self.kind == "distractor" else 0.0
        low, high = max(0.0, depth - gap), min(100.0, depth + gap)
        spans = [(a, b) for a, b in ((0.0, low), (high, 100.0)) if b > a]  # never empty: the gap is under 50
        total = sum(b - a for a, b in spans)
        out: list[float] = []
        for i in range(n):
            at = (i + 0.5) / n * total  # evenly over the allowed stretch of the haystack
            for a, b in spans:
                if at <= b - a:
                    out.append(a + at)
                    break
                at -= b - a
            else:
                out.append(spans[-1][1])
        return out
