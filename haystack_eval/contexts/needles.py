"""The needle library: fixed facts and templates that draw a fresh value per trial.

A needle file is YAML (or JSON): a list of entries, each with ``id``, ``needle`` (one
sentence), ``question``, ``answer`` and ``kind``. A template entry writes ``{name}`` placeholders
in its texts and says how to draw each one under ``values``: ``digits:N``, ``letters:N``,
``alnum:N``, ``uuid`` or ``choice:a|b|c``. Trial ``t`` of seed ``s`` takes entry ``order[t % n]``
of a seeded permutation, and draws its values from a generator seeded by (s, t, attempt), so
the same config always yields the same needles, and no single fact carries a run.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from haystack_eval.errors import NeedleError
from haystack_eval.textfiles import read_text

__all__ = ["BUNDLED_NEEDLES", "LIBRARY", "Needle", "NeedleSet", "NeedleSpec", "load_needles"]

LIBRARY = "library"
# the general library, and needles whose questions share no content word with them (task kind latent)
BUNDLED_NEEDLES = {LIBRARY: "needles.yaml", "latent": "latent.yaml"}
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_GENERATOR = re.compile(r"^(digits|letters|alnum):([1-9][0-9]?)$|^uuid$|^choice:.+$")
_TERMINAL = (".", "!", "?")

NeedleKind = Literal["number", "name", "place", "phrase", "code", "date", "word"]


class NeedleSpec(BaseModel):
    """One entry of a needle file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    needle: str = Field(min_length=8)
    question: str = Field(min_length=8)
    answer: str = Field(min_length=1)
    kind: NeedleKind
    values: dict[str, str] = Field(default_factory=dict)

    @field_validator("needle")
    @classmethod
    def _one_sentence(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value.endswith(_TERMINAL):
            raise ValueError("a needle must be one sentence ending with '.', '!' or '?'")
        return value

    @field_validator("values")
    @classmethod
    def _generators(cls, value: dict[str, str]) -> dict[str, str]:
        for name, gen in value.items():
            if not _GENERATOR.match(gen):
                raise ValueError(f"values.{name}: {gen!r} is not digits:N, letters:N, alnum:N, uuid or choice:a|b")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NeedleSpec:
        used = set(_PLACEHOLDER.findall(self.needle + self.question + self.answer))
        if used != set(self.values):
            raise ValueError(f"placeholders {sorted(used)} and values {sorted(self.values)} must match")
        if not self.values:
            if self.answer.casefold() not in self.needle.casefold():
                raise ValueError("the answer must appear in the needle")
            if self.answer.casefold() in self.question.casefold():
                raise ValueError("the question must not contain the answer")
        return self

    @property
    def entity_placeholders(self) -> frozenset[str]:
        """Placeholders the question names and the answer does not: what tells near-miss facts apart."""
        return frozenset(set(_PLACEHOLDER.findall(self.question)) - set(_PLACEHOLDER.findall(self.answer)))


@dataclass(frozen=True)
class Needle:
    """A needle drawn for one trial: the sentence to hide, its question and expected answer."""

    id: str
    text: str
    question: str
    answer: str
    kind: str


def _draw(gen: str, rng: random.Random) -> str:
    """One value from a generator spec."""
    kind, _, arg = gen.partition(":")
    if kind == "digits":
        return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(int(arg) - 1))
    if kind == "letters":
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(int(arg)))
    if kind == "alnum":
        return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(int(arg)))
    if kind == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return rng.choice(arg.split("|"))


@dataclass(frozen=True)
class NeedleSet:
    """The needles of a config, and the deterministic choice of one per trial."""

    source: str
    specs: tuple[NeedleSpec, ...]

    def pick(self, seed: int, trial: int, attempt: int = 0) -> Needle:
        """The needle of ``trial``; a later ``attempt`` gives the next candidate (another entry or value)."""
        order = list(range(len(self.specs)))
        random.Random(f"haystack-eval/needles/{seed}").shuffle(order)
        return self.draw(order[(trial + attempt) % len(order)], seed, trial, attempt)

    def draw(self, index: int, seed: int, trial: int, attempt: int = 0, variant: int = 0) -> Needle:
        """Entry ``index`` with its values drawn for the trial; another ``variant`` draws them again."""
        spec = self.specs[index]
        extra = f"/{variant}" if variant else ""  # variant 0 keeps the draws of earlier versions
        rng = random.Random(f"haystack-eval/values/{seed}/{trial}/{attempt}/{spec.id}{extra}")
        drawn = {name: _draw(spec.values[name], rng) for name in sorted(spec.values)}

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: drawn[m.group(1)], text)

        return Needle(spec.id, fill(spec.needle), fill(spec.question), fill(spec.answer), spec.kind)


def _parse(data: Any, shown: str) -> NeedleSet:
    """Validate a loaded needle file."""
    entries = data.get("needles") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise NeedleError("must hold a non-empty list of needles (or a mapping with a 'needles' list)",
                          where=shown, fix="see haystack_eval/contexts/data/needles.yaml for the format")
    specs: list[NeedleSpec] = []
    for i, entry in enumerate(entries):
        try:
            specs.append(NeedleSpec.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(part) for part in err["loc"])
            raise NeedleError(f"needle {i}{'.' + field if field else ''}: {err['msg'].removeprefix('Value error, ')}", where=shown,
                              fix="fix that entry (fields: id, needle, question, answer, kind, values)") from exc
    ids = [spec.id for spec in specs]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise NeedleError(f"the id {duplicate!r} is used twice", where=shown, fix="give every needle its own id")
    return NeedleSet(source=shown, specs=tuple(specs))


@lru_cache(maxsize=8)
def _bundled(name: str) -> NeedleSet:
    """A needle set that ships with the package."""
    text = resources.files("haystack_eval.contexts").joinpath("data", BUNDLED_NEEDLES[name]).read_text("utf-8")
    return _parse(yaml.safe_load(text), name)


def load_needles(spec: str, base: Path | None = None) -> NeedleSet:
    """The needle set that ``task.needles`` names: ``library``, ``latent`` or a YAML/JSON file."""
    if spec in BUNDLED_NEEDLES:
        return _bundled(spec)
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    text = read_text(path, shown=str(path), error=NeedleError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise NeedleError("is not valid YAML or JSON", where=f"{path}{at}", fix="fix the syntax") from exc
    return _parse(data, str(path))
