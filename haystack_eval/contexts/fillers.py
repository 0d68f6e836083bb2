"""Filler corpora: the bundled ``essays`` and ``noise``, or the user's files, read once.

A filler spec is a bundled name, a file, a directory (its .txt and .md files, recursively), a
glob, or a list of those. Documents are read in sorted path order, decoded as UTF-8,
newline-normalised and hashed; the sha256 identifies the corpus in the run manifest.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from haystack_eval.errors import FillerError
from haystack_eval.textfiles import read_text

__all__ = ["BUNDLED_FILLERS", "Corpus", "Document", "bundled_root", "load_filler", "normalise"]

BUNDLED_FILLERS = ("essays", "noise")
_TEXT_SUFFIXES = (".txt", ".md")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Document:
    """One filler document: where it came from and its normalised text."""

    name: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """The documents of a filler, in reading order, and their combined sha256."""

    name: str
    documents: tuple[Document, ...]
    sha256: str

    @property
    def words(self) -> int:
        """Whitespace-separated words in all documents."""
        return sum(len(doc.text.split()) for doc in self.documents)


def bundled_root() -> Path:
    """The directory that holds the bundled fillers (in the wheel, else in the source tree)."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_fillers"  # where the wheel puts the repository's fillers/
    return installed if installed.is_dir() else here.parent / "fillers"


def normalise(text: str) -> str:
    """Unix newlines, no byte-order mark, no trailing spaces on lines, no outer blank lines."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def _read(path: Path, shown: str) -> str:
    """Read one filler file as normalised text, refusing empty files."""
    text = normalise(read_text(path, shown=shown, error=FillerError))
    if not text:
        raise FillerError("is empty", where=shown, fix="add text to it or remove it from haystack.filler")
    return text


def _expand(item: str, base: Path) -> list[tuple[Path, str]]:
    """The files one filler entry names, sorted, each with the name to show in messages."""
    if _GLOB_CHARS & set(item):
        pattern = item if os.path.isabs(item) else str(base / item)
        found = sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if Path(p).is_file())
        if not found:
            raise FillerError(f"the glob {item!r} matches no files", where="haystack.filler",
                              fix="check the pattern (it is relative to the config file)")
        return [(p, str(p)) for p in found]
    path = Path(item).expanduser()
    if not path.is_absolute():
        path = base / path
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _TEXT_SUFFIXES)
        if not found:
            raise FillerError(f"the directory {item!r} holds no .txt or .md files", where="haystack.filler",
                              fix="add text files to it or name the files directly")
        return [(p, str(p)) for p in found]
    if path.is_file():
        return [(path, str(path))]
    raise FillerError(f"{item!r} is neither a bundled filler nor an existing file, directory or glob",
                      where="haystack.filler",
                      fix=f"use one of {', '.join(BUNDLED_FILLERS)} or a path relative to the config file")


def _hash(documents: Sequence[Document]) -> str:
    """sha256 over the normalised texts, length-prefixed so that boundaries count."""
    digest = hashlib.sha256()
    for doc in documents:
        data = doc.text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


@lru_cache(maxsize=16)
def _load_files(files: tuple[tuple[Path, str, int, int], ...], name: str) -> Corpus:
    """Read and hash the files once per process (the key holds size and mtime)."""
    documents = tuple(Document(shown, _read(path, shown)) for path, shown, _size, _mtime in files)
    return Corpus(name=name, documents=documents, sha256=_hash(documents))


def load_filler(spec: str | Sequence[str], base: Path | None = None) -> Corpus:
    """Load the corpus a ``haystack.filler`` value names; paths are relative to ``base``."""
    items = [spec] if isinstance(spec, str) else list(spec)
    if not items:
        raise FillerError("the list of filler paths is empty", where="haystack.filler",
                          fix="name a bundled filler (essays) or at least one file")
    base = base or Path.cwd()
    files: list[tuple[Path, str, int, int]] = []
    for item in items:
        if not item.strip():
            raise FillerError("an empty filler path", where="haystack.filler",
                              fix="remove the empty entry or name a file")
        if item in BUNDLED_FILLERS:
            folder = bundled_root() / item
            found = sorted(p for p in folder.glob("*") if p.suffix in _TEXT_SUFFIXES)
            if not found:
                raise FillerError(f"the bundled filler {item!r} is missing from {folder}", where="haystack.filler",
                                  fix="reinstall haystack-eval")
            expanded = [(p, f"{item}/{p.name}") for p in found]
        else:
            expanded = _expand(item, base)
        for path, shown in expanded:
            stat = path.stat()
            files.append((path.resolve(), shown, stat.st_size, stat.st_mtime_ns))
    name = items[0] if len(items) == 1 else "+".join(items)
    return _load_files(tuple(files), name)
