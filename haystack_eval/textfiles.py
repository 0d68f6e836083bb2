"""Reading the user's text files (configs, fillers, needle files) with one-line errors; atomic writes."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from haystack_eval.errors import ConfigError

__all__ = ["read_text", "user_cache_dir", "write_atomic"]


def read_text(path: Path, *, shown: str, error: type[ConfigError] = ConfigError) -> str:
    """A UTF-8 text file's contents, or ``error`` naming the file (as ``shown``) and the fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise error("file not found", where=shown, fix="check the path (relative paths start at the config)") from exc
    except IsADirectoryError as exc:
        raise error("is a directory, not a file", where=shown, fix="name the file itself") from exc
    except PermissionError as exc:
        raise error("cannot read the file (permission denied)", where=shown, fix="make it readable") from exc
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror})", where=shown, fix="check the path") from exc
    if b"\x00" in raw:
        raise error("looks like a binary file, not text", where=shown, fix="use a plain UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"is not UTF-8 text (bad byte at offset {exc.start})", where=shown,
                    fix="re-save the file as UTF-8") from exc


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new one, never half of one.

    Raises OSError; callers turn it into the error that names what they were writing.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # unique per writer, threads included
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def user_cache_dir(kind: str) -> Path:
    """A writable ``haystack-eval/<kind>`` directory in the user's cache (``XDG_CACHE_HOME``), else a temp dir."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidate = Path(root) / "haystack-eval" / kind
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        probe = candidate / f".write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
        return candidate
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"haystack-eval-{kind}-"))
