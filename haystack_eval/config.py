"""The YAML config: pydantic models (unknown keys are errors), loading, and grid expansion.

Every validation error becomes one line that names the file, the line and the field's YAML
path, and says what would fix it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from haystack_eval.config_errors import Loc, explain, index_lines, locate
from haystack_eval.errors import ConfigError
from haystack_eval.textfiles import read_text

__all__ = [
    "CheckConfig",
    "Config",
    "HaystackConfig",
    "ModelConfig",
    "ModelParams",
    "ModelPrices",
    "RunConfig",
    "RunLimits",
    "ScoringConfig",
    "Spread",
    "TaskConfig",
    "TaskKind",
    "load_config",
]

Provider = Literal["openai", "anthropic", "openai-compatible", "llamacpp", "scripted"]
MAX_LENGTH = 10_000_000
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOOKS_LIKE_KEY = re.compile(r"^(sk-|sk_|xai-|AIza)|^[A-Za-z0-9_\-]{32,}$")
_TOKENIZER = re.compile(r"^(auto|model-native|tiktoken:[a-z0-9_]+)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelParams(_Strict):
    """Generation settings sent with every request."""

    temperature: float | None = Field(0.0, ge=0, le=2)
    max_output_tokens: int = Field(32, ge=1, le=1_000_000)


class ModelPrices(_Strict):
    """Prices in USD per million tokens; they replace the bundled price data for this model."""

    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)
    # Unset: billed like other input (no discount assumed, so estimates and budgets never come out low).
    cached_input: float | None = Field(None, ge=0, allow_inf_nan=False)
    cache_write: float | None = Field(None, ge=0, allow_inf_nan=False)


class ModelConfig(_Strict):
    """Which model answers, how to reach it, and how its tokens are counted."""

    provider: Provider
    name: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    tokenizer: str = "auto"
    context_window: int | None = Field(None, ge=1)
    # auto: chat for API models and instruction-tuned GGUFs, completion (answer prefix) for base GGUFs
    prompt: Literal["auto", "chat", "completion"] = "auto"
    params: ModelParams = ModelParams()
    prices: ModelPrices | None = None  # what a cell costs, never what it measures: left out of the fingerprint

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"{value!r} is not an http(s) URL; write it like http://127.0.0.1:8000/v1")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None:
            if _LOOKS_LIKE_KEY.search(value):
                raise ValueError("this looks like a key itself; put the key in an environment variable "
                                 "and write the variable's name here (for example OPENAI_API_KEY)")
            if not _ENV_NAME.match(value):
                raise ValueError(f"{value!r} is not an environment variable name (letters, digits, _)")
        return value

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, value: str) -> str:
        if not _TOKENIZER.match(value):
            raise ValueError(f"{value!r} is not a tokenizer; use auto, model-native, "
                             "tiktoken:o200k_base or tiktoken:cl100k_base")
        return value

    @model_validator(mode="after")
    def _needs_url(self) -> ModelConfig:
        if self.provider == "openai-compatible" and not self.base_url:
            raise ValueError("provider openai-compatible needs model.base_url (for example http://127.0.0.1:8000/v1)")
        if self.prompt == "completion" and self.provider not in ("llamacpp", "scripted"):
            raise ValueError(f"prompt: completion needs a local model (llamacpp); {self.provider} speaks chat only")
        return self


class Spread(_Strict):
    """Evenly spaced values: ``steps`` points from ``min`` to ``max``."""

    min: float
    max: float
    steps: int = Field(ge=1, le=1000)
    spacing: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _ordered(self) -> Spread:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is larger than max ({self.max:g})")
        if self.spacing == "log" and self.min <= 0:
            raise ValueError("log spacing needs min > 0")
        return self

    def values(self) -> list[float]:
        """The points, ends included."""
        if self.steps == 1:
            return [self.min]
        if self.spacing == "log":
            return [float(v) for v in np.geomspace(self.min, self.max, self.steps)]
        return [float(v) for v in np.linspace(self.min, self.max, self.steps)]


_UNION_TAGS = frozenset({"list", "spread"})


def _pick(value: Any) -> str:
    # Called on the YAML value when validating and on the model's value when dumping.
    return "spread" if isinstance(value, dict | Spread) else "list"


Lengths = Annotated[
    Annotated[list[int], Tag("list")] | Annotated[Spread, Tag("spread")], Discriminator(_pick)
]
Depths = Annotated[
    Annotated[list[float], Tag("list")] | Annotated[Spread, Tag("spread")], Discriminator(_pick)
]


def _check_grid(values: Sequence[float], low: int, high: int, what: str, meaning: str) -> None:
    """One axis of the grid: not empty, within range, no value twice."""
    if not values:
        raise ValueError(f"the list is empty; give at least one of the {what}")
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise ValueError(f"{bad[0]:g} is outside {low}..{high}; {meaning}")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} {repeated} appear more than once; list each once")


def _length_values(spec: list[int] | Spread) -> list[int]:
    return list(spec) if isinstance(spec, list) else [round(v) for v in spec.values()]


def _depth_values(spec: list[float] | Spread) -> list[float]:
    return [float(v) for v in spec] if isinstance(spec, list) else [round(v, 4) for v in spec.values()]


class HaystackConfig(_Strict):
    """The filler, and the lengths (tokens of the whole prompt) and depths (percent) of the grid."""

    filler: str | list[str] = "essays"
    lengths: Lengths
    depths: Depths = Spread(min=0, max=100, steps=11)

    @field_validator("filler")
    @classmethod
    def _filler(cls, value: str | list[str]) -> str | list[str]:
        items = [value] if isinstance(value, str) else value
        if not items:
            raise ValueError("the list is empty; name a bundled filler (essays, noise) or files")
        if any(not item.strip() for item in items):
            raise ValueError("an empty path; name a bundled filler (essays, noise) or a file")
        return value

    @field_validator("lengths")
    @classmethod
    def _lengths(cls, value: list[int] | Spread) -> list[int] | Spread:
        _check_grid(_length_values(value), 1, MAX_LENGTH, "lengths", "lengths count tokens of the whole prompt")
        return value

    @field_validator("depths")
    @classmethod
    def _depths(cls, value: list[float] | Spread) -> list[float] | Spread:
        _check_grid(_depth_values(value), 0, 100, "depths", "depths are percent of the haystack")
        return value

    def length_values(self) -> tuple[int, ...]:
        """The lengths of the grid, in the order given."""
        return tuple(_length_values(self.lengths))

    def depth_values(self) -> tuple[float, ...]:
        """The depths of the grid, in the order given."""
        return tuple(_depth_values(self.depths))


TaskKind = Literal["single", "multi", "multikey", "multivalue", "multiquery", "latent", "distractor", "absent"]
_COUNTED = ("multi", "multivalue", "multiquery")  # kinds that hide several needles: task.count of them
_DISTRACTED = {"multikey": 3, "multiquery": 3, "distractor": 2}  # kinds with distractors, and their default


class TaskConfig(_Strict):
    """What is hidden and asked: the task kind, trials per cell, seed and needle source."""

    kind: TaskKind = "single"
    trials: int = Field(1, ge=1, le=1000)
    seed: int = Field(0, ge=0)
    # library: the bundled needles (for kind latent, the bundled latent needles), or a YAML/JSON file
    needles: str = Field("library", min_length=1)
    count: int | None = Field(None, ge=2, le=64)  # needles (multi), values of the key (multivalue), keys asked (multiquery)
    offsets: list[float] | None = None  # depth points past the first needle for the others (default: evenly to 100)
    distractors: int | None = Field(None, ge=0, le=256)  # other-key statements or near-miss facts
    value_type: Literal["words", "numbers", "uuids"] = "numbers"  # values of the keyed kinds

    @model_validator(mode="after")
    def _fits_kind(self) -> TaskConfig:
        if self.count is not None and self.kind not in _COUNTED:
            raise ValueError(f"task.count applies to kinds {', '.join(_COUNTED)}, not {self.kind}; remove it")
        if self.distractors is not None and self.kind not in _DISTRACTED:
            raise ValueError(f"task.distractors applies to kinds {', '.join(_DISTRACTED)}, not {self.kind}; remove it")
        if self.offsets is not None:
            if self.kind not in _COUNTED:
                raise ValueError(f"task.offsets applies to kinds {', '.join(_COUNTED)}, not {self.kind}; remove it")
            if len(self.offsets) != self.needle_count - 1 or any(not 0 <= o <= 100 for o in self.offsets):
                raise ValueError(f"task.offsets needs {self.needle_count - 1} values in 0..100 (one per needle "
                                 "after the first, in depth points past it)")
        if self.kind == "distractor" and self.distractor_count < 1:
            raise ValueError("task.kind distractor needs at least one distractor; set task.distractors: 1 or more")
        return self

    @property
    def needle_count(self) -> int:
        """Needles (or values, or keys) the question asks for."""
        if self.kind not in _COUNTED:
            return 1
        return self.count if self.count is not None else (len(self.offsets) + 1 if self.offsets else 3)

    @property
    def distractor_count(self) -> int:
        """Distractor statements per context."""
        return self.distractors if self.distractors is not None else _DISTRACTED.get(self.kind, 0)

    @property
    def needle_source(self) -> str:
        """The needle set to load: the latent set stands in for the library under kind latent."""
        return "latent" if self.kind == "latent" and self.needles == "library" else self.needles


class ScoringConfig(_Strict):
    """How an answer is graded: the method, and the settings only some methods take."""

    method: Literal["contains", "all", "any", "exact", "regex", "numeric", "f1", "judge"] = "contains"
    # regex only: searched in the normalised reply; {answer} stands for the escaped, normalised expected answer
    pattern: str | None = None
    tolerance: float = Field(0.0, ge=0, le=1)  # numeric only: relative to the expected value
    judge: ModelConfig | None = None  # judge only: the model that grades (it never sees the haystack)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "{answer}" not in value:
            raise ValueError("the pattern has no {answer}; put {answer} where the expected answer goes, "
                             r"for example (?<!\w){answer}(?!\w)")
        try:
            re.compile(value.replace("{answer}", re.escape("dummy answer")))
        except re.error as exc:
            raise ValueError(f"the pattern is not a valid regular expression ({exc.msg}); "
                             "fix it (it is searched in the normalised reply: lower case, no punctuation)") from None
        return value

    @model_validator(mode="after")
    def _settings_fit_method(self) -> ScoringConfig:
        if self.method == "judge" and self.judge is None:
            raise ValueError("method judge needs scoring.judge (the model that grades); "
                             "add scoring.judge: {provider: ..., name: ...} like the model: section")
        if self.method != "judge" and self.judge is not None:
            raise ValueError(f"scoring.judge is set but method is {self.method}; "
                             "remove scoring.judge or set scoring.method: judge")
        if self.judge is not None and self.judge.provider == "scripted" and self.judge.name in (
                "oracle", "lost-in-the-middle"):
            # These rules answer needle questions from the cell; a judge request has no needle.
            raise ValueError(f"the scripted rule {self.judge.name} cannot judge; "
                             "use scoring.judge.name: canned:CORRECT (or a real model)")
        if self.judge is not None and self.judge.prices is not None:
            raise ValueError("the judge's requests are not priced (only the model's are); remove scoring.judge.prices")
        if self.pattern is not None and self.method != "regex":
            raise ValueError(f"scoring.pattern is set but method is {self.method}; "
                             "remove scoring.pattern or set scoring.method: regex")
        if "tolerance" in self.model_fields_set and self.method != "numeric":
            raise ValueError(f"scoring.tolerance is set but method is {self.method}; "
                             "remove scoring.tolerance or set scoring.method: numeric")
        return self


class RunLimits(_Strict):
    """The provider's rate limits for this model, per minute; the rate-limit headers of its replies refine them."""

    requests_per_min: int | None = Field(None, ge=1)
    input_tokens_per_min: int | None = Field(None, ge=1)
    output_tokens_per_min: int | None = Field(None, ge=1)  # Anthropic limits output separately; OpenAI does not


class RunConfig(_Strict):
    """How the sweep runs: requests in flight, the per-request timeout, retries and rate limits."""

    concurrency: int = Field(4, ge=1, le=1024)
    timeout_s: float = Field(600.0, gt=0, le=86_400)
    max_retries: int = Field(6, ge=0, le=100)
    retry_base_s: float = Field(1.0, ge=0, le=3600)  # first backoff; doubles each attempt, with jitter
    retry_max_s: float = Field(60.0, ge=0, le=3600)  # longest backoff (and longest retry-after honoured)
    # What a run may send per minute; unset, the limits are learnt from the replies' headers.
    # Not part of what a cell measures: the run's fingerprint leaves the whole run: section out.
    limits: RunLimits = RunLimits()
    # Seconds between two polls of a submitted batch (run --batch); the batch APIs take minutes to hours.
    poll_s: float = Field(30.0, gt=0, le=3600)


class CheckConfig(_Strict):
    """Thresholds for ``haystack-eval check``."""

    min_accuracy: float | None = Field(None, ge=0, le=1)
    min_length_accuracy: float | None = Field(None, ge=0, le=1)
    min_effective_length: int | None = Field(None, ge=1)
    # Accuracy a length must keep to count toward the effective length; default 85% of the shortest's.
    effective_threshold: float | None = Field(None, ge=0, le=1)
    baseline: str | None = None  # a run directory (or another tool's results), relative to this config
    max_drop: float | None = Field(None, ge=0, le=1)
    # A drop beyond max_drop fails only when a one-sided two-proportion test gives p below alpha.
    alpha: float = Field(0.05, gt=0, lt=0.5)

    @property
    def rules(self) -> list[str]:
        """The thresholds that are set."""
        names = ("min_accuracy", "min_length_accuracy", "min_effective_length", "max_drop")
        return [name for name in names if getattr(self, name) is not None]


class Config(_Strict):
    """A whole haystack-eval config."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    model: ModelConfig
    haystack: HaystackConfig
    task: TaskConfig = TaskConfig()
    scoring: ScoringConfig = ScoringConfig()
    run: RunConfig = RunConfig()
    check: CheckConfig | None = None

    @model_validator(mode="after")
    def _task_fits_grid(self) -> Config:
        if self.task.kind == "absent" and len(self.haystack.depth_values()) > 1:
            raise ValueError("task.kind absent hides no needle, so haystack.depths cannot vary what is asked; "
                             "set haystack.depths: [0] and use trials for more samples")
        return self

    _path: Path | None = PrivateAttr(default=None)
    _lines: dict[Loc, int] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The file the config was read from, if any."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the config start: the config file's directory."""
        return self._path.parent if self._path else Path.cwd()

    def where(self, *loc: str | int) -> str:
        """``file:line field.path`` for a field, for error messages."""
        return locate(self._path, self._lines, loc)

    def error(self, loc: Loc, problem: str, fix: str) -> ConfigError:
        """A ConfigError that points at a field of this config."""
        return ConfigError(problem, where=self.where(*loc), fix=fix)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file; every problem is a ConfigError naming its line."""
    path = Path(path)
    text = read_text(path, shown=str(path))
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"invalid YAML ({problem})", where=where, fix="fix the syntax on that line") from exc
    if not isinstance(data, dict):
        raise ConfigError("the config must be a YAML mapping (name:, model:, haystack:, ...)", where=str(path),
                          fix="start from configs/quickstart.yaml")
    lines: dict[Loc, int] = {}
    if node is not None:
        index_lines(node, (), lines)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # A misspelt key also makes a required one missing: the misspelling is the news.
        errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")
        found = [explain(err, Config, _UNION_TAGS) for err in errors]
        rendered = [ConfigError(problem, where=locate(path, lines, loc), fix=fix) for loc, problem, fix in found]
        first = rendered[0]
        raise ConfigError(first.problem, where=first.where, fix=first.fix,
                          also=tuple(e.line() for e in rendered[1:])) from None
    config._path = path
    config._lines = lines
    return config
