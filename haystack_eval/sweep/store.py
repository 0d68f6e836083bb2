"""The run directory: ``manifest.json`` and an append-only ``results.jsonl``.

One process at a time holds a run directory (an flock on ``.lock``). Records are appended by a
writer thread that writes whatever has finished and fsyncs once per batch, so the event loop
never waits on the disk and a record is on disk before the next batch starts. Opening a run
reads every record once; a torn last line (a crash mid-write) is cut off and its cell asked
again; the newest record of a cell counts, and error records are asked again on resume. A write
that fails (a full disk) is cut back to the last whole batch, and the run stops with the records
written before it intact.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import queue
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from haystack_eval.errors import StoreError
from haystack_eval.sweep.plan import CellKey, key_of
from haystack_eval.textfiles import write_atomic

__all__ = ["MANIFEST", "RESULTS", "SCHEMA_VERSION", "RunStore", "finished", "latest", "now", "read_records"]

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
RESULTS = "results.jsonl"
_LOCK = ".lock"
_OURS = {MANIFEST, RESULTS, _LOCK, "heatmap.png", "heatmap.svg", "heatmap-spread.png", "heatmap-spread.svg",
         "report.html", "summary.md"}  # what run and report write into a run directory
_STOP = object()
FINISHED_STATUSES = ("ok", "truncated", "skipped")


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Every record of a results file; a torn last line is dropped (and cut from the file if ``repair``)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        with path.open("r+b") as handle:  # cut the torn bytes so that appends start on a clean line
            handle.truncate(end)
            os.fsync(handle.fileno())
    records = []
    for number, line in enumerate(data[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key_of(record)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"line {number} is not a valid record ({type(exc).__name__})", where=str(path),
                             fix="the file was edited or damaged; move it aside, or run with --no-resume") from None
        records.append(record)
    return records


def latest(records: list[dict[str, Any]]) -> dict[CellKey, dict[str, Any]]:
    """The newest record of each cell (the one that counts)."""
    return {key_of(r): r for r in records}


def finished(records: dict[CellKey, dict[str, Any]]) -> frozenset[CellKey]:
    """Cells whose newest record needs no new request (errors, and skips for a rate limit, are asked again)."""
    return frozenset(k for k, r in records.items() if r.get("status") in FINISHED_STATUSES and not _over_limit(r))


def _over_limit(record: dict[str, Any]) -> bool:
    # A rate limit belongs to the account, not the model: once it is raised, the cell can be asked.
    error = record.get("error")
    return isinstance(error, dict) and error.get("class") == "OverRateLimit"


class RunStore:
    """An open run directory: its manifest, its records, and the writer that appends new ones."""

    def __init__(self, path: Path, lock: Any, manifest: dict[str, Any], records: list[dict[str, Any]],
                 dropped_bytes: int) -> None:
        self.path = path
        self.manifest = manifest
        self.latest = latest(records)
        self.dropped_bytes = dropped_bytes  # size of a torn last line cut on opening, 0 if none
        self._lock = lock
        self._queue: queue.Queue[object] = queue.Queue()
        self._failure: OSError | None = None
        self._handle = self._open_results(path / RESULTS)
        self._writer = threading.Thread(target=self._write_loop, name="haystack-eval-store", daemon=True)
        self._writer.start()

    @classmethod
    def open(cls, path: Path, manifest: dict[str, Any], *, resume: bool = True) -> RunStore:
        """Open (or create) a run directory for ``manifest``'s config, refusing a directory it does not own."""
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock = (path / _LOCK).open("a+")
        except OSError as exc:
            if path.is_dir():  # there already, but read-only
                raise StoreError(f"cannot write to the run directory ({exc.strerror})", where=str(path),
                                 fix="make it writable (its records are kept) or choose another --out") from None
            raise StoreError(f"cannot create the run directory ({exc.strerror})", where=str(path),
                             fix="choose a writable --out directory") from None
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise StoreError(f"is in use by another haystack-eval run (pid {holder})", where=str(path),
                             fix="wait for it to finish, or give this run another --out") from None
        try:
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            return cls._open_locked(path, lock, manifest, resume)
        except BaseException:
            lock.close()
            raise

    @classmethod
    def _open_locked(cls, path: Path, lock: Any, manifest: dict[str, Any], resume: bool) -> RunStore:
        old = cls._read_manifest(path)
        if old is None:
            foreign = sorted(p.name for p in path.iterdir() if p.name not in _OURS and not p.name.startswith("replaced-"))
            if foreign or (path / RESULTS).exists():
                raise StoreError(f"is not an empty directory or a haystack-eval run (holds {', '.join(foreign[:3]) or RESULTS})",
                                 where=str(path), fix="give --out a new or empty directory")
        elif not resume:
            cls._set_aside(path)
            old = None
        elif old.get("fingerprint") != manifest["fingerprint"]:
            raise StoreError(f"was run with a different config ({_difference(old, manifest)})", where=str(path),
                             fix="give --out a new directory for a new run, or pass --no-resume to start this one "
                                 "over (its files are kept in a replaced-... folder)")
        size = (path / RESULTS).stat().st_size if (path / RESULTS).exists() else 0
        records = read_records(path / RESULTS, repair=True)
        dropped = size - ((path / RESULTS).stat().st_size if size else 0)
        if old is not None:
            manifest = {**manifest, "created": old.get("created", manifest["created"])}
            if old.get("batches"):  # submitted batches outlive the process that sent them (run --batch)
                manifest["batches"] = old["batches"]
        _write_json(path / MANIFEST, manifest)
        return cls(path, lock, manifest, records, dropped)

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any] | None:
        target = path / MANIFEST
        if not target.exists():
            return None
        try:
            data = json.loads(target.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{MANIFEST} is damaged ({type(exc).__name__})", where=str(path),
                             fix="pass --no-resume to start over (old files are kept), or give another --out") from None
        if not isinstance(data, dict) or data.get("tool") != "haystack-eval":
            raise StoreError(f"{MANIFEST} is not a haystack-eval manifest", where=str(path),
                             fix="give --out a new or empty directory")
        return data

    @staticmethod
    def _set_aside(path: Path) -> None:
        """Move the previous run's files into ``replaced-<time>/`` (for --no-resume): nothing is deleted."""
        folder = path / f"replaced-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
        folder.mkdir()
        for name in sorted(_OURS - {_LOCK}):
            if (path / name).exists():
                shutil.move(str(path / name), str(folder / name))

    @staticmethod
    def _open_results(path: Path) -> BinaryIO:
        """The results file, unbuffered, for appending (the seam where tests put a disk that fills up)."""
        return path.open("ab", buffering=0)

    def finished(self) -> frozenset[CellKey]:
        """Cells whose newest record needs no new request (errors are asked again)."""
        return finished(self.latest)

    def records(self) -> Iterator[dict[str, Any]]:
        """The newest record of every cell recorded so far."""
        return iter(self.latest.values())

    def append(self, record: dict[str, Any]) -> None:
        """Queue a record; it is on disk (fsynced) once the writer's current batch ends."""
        if self._failure is not None:
            raise StoreError(f"cannot write {RESULTS} ({self._failure.strerror})", where=str(self.path),
                             fix="free disk space or fix permissions, then run again: finished records are kept")
        self.latest[key_of(record)] = record
        self._queue.put(record)

    def _write_loop(self) -> None:
        """Write whatever has finished, fsync once per batch; stop at the sentinel."""
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            stop = _STOP in batch
            lines = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in batch if r is not _STOP)
            if lines and self._failure is None:
                self._write(lines)
            if stop:
                return

    def _write(self, lines: bytes) -> None:
        """Append whole lines and fsync; on failure cut the file back to its last whole line and remember why."""
        good = self._handle.seek(0, os.SEEK_END)
        try:
            view = memoryview(lines)
            while view:  # an unbuffered write may write a part (a disk that fills up mid-line) and say so
                written = self._handle.write(view)
                if not written:
                    raise OSError(errno.EIO, "a write made no progress")
                view = view[written:]
            os.fsync(self._handle.fileno())
        except OSError as exc:
            self._failure = exc
            with contextlib.suppress(OSError):  # leave no torn line behind; a crash leaves one, cut on opening
                self._handle.truncate(good)

    def note(self, **updates: Any) -> None:
        """Update the manifest on disk now (the ids of submitted batches, before anything else happens)."""
        self.manifest = {**self.manifest, **updates}
        _write_json(self.path / MANIFEST, self.manifest)

    def close(self, **updates: Any) -> None:
        """Flush every queued record, update the manifest, release the directory."""
        self._queue.put(_STOP)
        self._writer.join()
        self._handle.close()
        try:
            if updates:
                self.manifest = {**self.manifest, **updates}
                _write_json(self.path / MANIFEST, self.manifest)
        finally:
            self._lock.close()
        if self._failure is not None:
            raise StoreError(f"cannot write {RESULTS} ({self._failure.strerror})", where=str(self.path),
                             fix="free disk space or fix permissions, then run again: finished records are kept")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace a JSON file atomically."""
    try:
        write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise StoreError(f"cannot write {path.name} ({exc.strerror})", where=str(path.parent),
                         fix="free disk space or choose a writable --out directory") from None


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first setting that decides what cells measure and differs, as ``dotted.path changed``."""
    def walk(a: Any, b: Any, at: str) -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                found = walk(a.get(key), b.get(key), f"{at}.{key}" if at else key)
                if found:
                    return found
            return None
        return at if a != b else None

    found = walk(old.get("measures"), new.get("measures"), "")
    return f"{found} changed" if found else "its cells differ"
