"""Config loading: the schema of DESIGN.md, grid expansion, and errors that point at a line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from haystack_eval.config import Config, load_config
from haystack_eval.errors import ConfigError
from tests.conftest import MINIMAL_CONFIG

REPO = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-" + "test" * 8  # built here so that no key-shaped literal sits in the repository


def test_the_scripted_config_loads() -> None:
    config = load_config(REPO / "configs" / "scripted.yaml")
    assert isinstance(config, Config)
    assert config.haystack.length_values() == (1000, 2000, 4000, 8000)
    assert config.haystack.depth_values() == tuple(float(d) for d in range(0, 101, 10))
    assert config.base_dir == REPO / "configs"


def test_the_full_design_schema_is_accepted(write_config: Callable[..., Path]) -> None:
    path = write_config("""\
        name: full-schema
        model:
          provider: openai-compatible
          name: my-model
          base_url: http://127.0.0.1:8000/v1
          api_key_env: LOCAL_KEY
          tokenizer: tiktoken:cl100k_base
          context_window: 32768
          params: {temperature: 0, max_output_tokens: 32}
        haystack:
          filler: [essays]
          lengths: {min: 1000, max: 32000, steps: 6, spacing: log}
          depths: {min: 0, max: 100, steps: 5}
        task: {kind: single, trials: 3, seed: 7, needles: library}
        scoring: {method: contains}
        run: {concurrency: 8}
        check: {min_accuracy: 0.9, min_length_accuracy: 0.8, min_effective_length: 8000,
                baseline: heatmaps/quickstart, max_drop: 0.05}
        """)
    config = load_config(path)
    assert config.haystack.length_values() == (1000, 2000, 4000, 8000, 16000, 32000)
    assert config.haystack.depth_values() == (0.0, 25.0, 50.0, 75.0, 100.0)
    assert config.check is not None and config.check.max_drop == 0.05


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (MINIMAL_CONFIG.replace("trials: 2", "trails: 2"), "config.yaml:4: task.trails: unknown key 'trails'; did you mean 'trials'?"),
        (MINIMAL_CONFIG.replace("[500, 1000]", "[500, -3]"), "config.yaml:3: haystack.lengths: -3 is outside 1..10000000"),
        (MINIMAL_CONFIG.replace("[0, 50, 100]", "[0, 50, 120]"), "haystack.depths: 120 is outside 0..100"),
        (MINIMAL_CONFIG.replace("[0, 50, 100]", "[0, 50, 50]"), "depths [50.0] appear more than once"),
        (MINIMAL_CONFIG.replace("[500, 1000]", "[]"), "haystack.lengths: the list is empty"),
        (MINIMAL_CONFIG.replace("[500, 1000]", "many"), "haystack.lengths: Input should be a valid list"),
        (MINIMAL_CONFIG.replace("[500, 1000]", "{min: 9, max: 3, steps: 2}"), "min (9) is larger than max (3)"),
        (MINIMAL_CONFIG.replace("[500, 1000]", "{min: 1, max: 9, stepz: 2}"), "haystack.lengths.stepz: unknown key 'stepz'; did you mean 'steps'?"),
        (MINIMAL_CONFIG.replace("provider: scripted", "provider: bard"), "model.provider: Input should be 'openai'"),
        (MINIMAL_CONFIG.replace("trials: 2", "trials: zero"), "task.trials: Input should be a valid integer"),
        (MINIMAL_CONFIG.replace("trials: 2", "trials: 0"), "task.trials: Input should be greater than or equal to 1"),
        (MINIMAL_CONFIG.replace("name: t", "name: 'bad name!'"), "name: String should match pattern"),
        (MINIMAL_CONFIG.replace("name: t\n", ""), "name: is required"),
        (MINIMAL_CONFIG + "run: {limits: {requests_per_min: 0}}\n",
         "config.yaml:5: run.limits.requests_per_min: Input should be greater than or equal to 1"),
        (MINIMAL_CONFIG + "run: {limits: {rpm: 10}}\n",
         "run.limits.rpm: unknown key 'rpm'; remove it (allowed here: input_tokens_per_min, output_tokens_per_min"),
        (MINIMAL_CONFIG + "run: {limits: {input_tokens_per_min: lots}}\n",
         "run.limits.input_tokens_per_min: Input should be a valid integer"),
        (MINIMAL_CONFIG + "run: {limits: [10]}\n", "run.limits: Input should be a valid dictionary"),
    ],
)
def test_errors_name_the_line_the_field_and_the_fix(
    write_config: Callable[..., Path], yaml_text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(yaml_text))
    assert expected in info.value.line()
    assert "\n" not in info.value.line()


def test_every_problem_is_reported_at_once(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL_CONFIG.replace("trials: 2", "trials: 0, seeds: 1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = info.value.lines()
    assert len(lines) == 2 and any("seeds" in line for line in lines)


@pytest.mark.parametrize(
    ("model_line", "expected"),
    [
        ("{provider: openai-compatible, name: m}", "needs model.base_url"),
        ("{provider: openai, name: m, base_url: 'localhost:8000'}", "is not an http(s) URL"),
        ("{provider: openai, name: m, api_key_env: " + FAKE_KEY + "}", "looks like a key itself"),
        ("{provider: openai, name: m, api_key_env: 'MY KEY'}", "is not an environment variable name"),
        ("{provider: openai, name: m, tokenizer: bpe}", "'bpe' is not a tokenizer"),
        ("{provider: openai, name: m, context_window: 0}", "model.context_window"),
    ],
)
def test_model_section_errors(write_config: Callable[..., Path], model_line: str, expected: str) -> None:
    text = MINIMAL_CONFIG.replace("{provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}", model_line)
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert expected in info.value.line()
    assert FAKE_KEY not in info.value.line(), "a key is never echoed back"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: [unclosed\n", "config.yaml:2: invalid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("", "must be a YAML mapping"),
    ],
)
def test_unusable_files(write_config: Callable[..., Path], content: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(content))
    assert expected in info.value.line()


def test_missing_directory_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    bad = tmp_path / "latin.yaml"
    bad.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(bad)
