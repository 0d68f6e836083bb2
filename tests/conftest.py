"""Shared fixtures: tokenizers, a tiny user filler, and a config writer."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from haystack_eval.contexts.tokenizers import Tokenizer, resolve_tokenizer

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("default", deadline=None, suppress_health_check=_QUIET)
# HYPOTHESIS_PROFILE=stress runs many more examples (for a long local soak, not for CI).
settings.register_profile("stress", max_examples=2000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ENCODINGS = ("o200k_base", "cl100k_base")

TINY_FILLER = (
    "Rain fell on the town all morning. The baker opened late!\n\n"
    "Was the bridge closed? Nobody knew, so the carts waited by the river.\n"
)


def without_root_privileges() -> list[str]:
    """A command prefix under which file permissions hold even for root (which otherwise ignores them):
    setpriv drops the capabilities that override them. Skips the test where that cannot be done."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def tokenizer(encoding: str) -> Tokenizer:
    """The offline tiktoken tokenizer of an encoding."""
    return resolve_tokenizer(f"tiktoken:{encoding}", "openai", "test")


@pytest.fixture(params=ENCODINGS)
def any_tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    """Each bundled encoding in turn."""
    return tokenizer(request.param)


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a YAML config (dedented) into a temp dir and return its path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


MINIMAL_CONFIG = """\
name: t
model: {provider: scripted, name: oracle, tokenizer: tiktoken:o200k_base}
haystack: {filler: essays, lengths: [500, 1000], depths: [0, 50, 100]}
task: {trials: 2}
"""
