"""The run directory: append-only records, resume, torn lines, locking, and refusing what is not ours."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from haystack_eval.errors import StoreError
from haystack_eval.sweep.store import MANIFEST, RESULTS, RunStore, read_records


def manifest(fingerprint: str = "f1", lengths: list[int] | None = None) -> dict[str, Any]:
    return {"tool": "haystack-eval", "created": "2026-01-01T00:00:00", "fingerprint": fingerprint,
            "measures": {"haystack": {"lengths": lengths or [1000]}}}


def record(length: int, depth: float = 50.0, trial: int = 0, status: str = "ok") -> dict[str, Any]:
    return {"length": length, "depth": depth, "trial": trial, "status": status, "score": 1.0}


def test_records_are_appended_and_read_back(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path / "run", manifest())
    for length in (1000, 2000, 3000):
        store.append(record(length))
    store.close(state="complete")
    lines = (tmp_path / "run" / RESULTS).read_text().splitlines()
    assert [json.loads(line)["length"] for line in lines] == [1000, 2000, 3000]
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["state"] == "complete"

    again = RunStore.open(tmp_path / "run", manifest())
    assert again.finished() == {(1000, 50.0, 0), (2000, 50.0, 0), (3000, 50.0, 0)}
    again.close()


def test_error_records_are_asked_again_and_the_newest_record_counts(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, manifest())
    store.append(record(1000, status="error"))
    store.append(record(2000, status="truncated"))
    store.close()
    again = RunStore.open(tmp_path, manifest())
    assert again.finished() == {(2000, 50.0, 0)}
    again.append(record(1000, status="ok"))
    again.close()
    latest = {r["length"]: r["status"] for r in read_records(tmp_path / RESULTS)}
    assert latest == {1000: "ok", 2000: "truncated"}  # the file keeps both records of 1000; the newest wins


def test_a_torn_last_line_is_cut_and_costs_no_other_record(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, manifest())
    store.append(record(1000))
    store.append(record(2000))
    store.close()
    with (tmp_path / RESULTS).open("ab") as handle:
        handle.write(b'{"length": 3000, "depth": 50.0, "tri')  # killed mid-write
    again = RunStore.open(tmp_path, manifest())
    assert again.dropped_bytes == len(b'{"length": 3000, "depth": 50.0, "tri')
    assert again.finished() == {(1000, 50.0, 0), (2000, 50.0, 0)}
    again.append(record(3000))
    again.close()
    assert len(read_records(tmp_path / RESULTS)) == 3
    assert (tmp_path / RESULTS).read_bytes().endswith(b"}\n")


def test_a_damaged_middle_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps(manifest()))
    (tmp_path / RESULTS).write_text(json.dumps(record(1000)) + "\nnot json\n" + json.dumps(record(2000)) + "\n")
    with pytest.raises(StoreError, match="line 2 is not a valid record"):
        RunStore.open(tmp_path, manifest())


def test_a_different_config_is_refused_with_what_changed(tmp_path: Path) -> None:
    RunStore.open(tmp_path, manifest()).close()
    with pytest.raises(StoreError) as info:
        RunStore.open(tmp_path, manifest("f2", lengths=[1000, 2000]))
    assert "was run with a different config (haystack.lengths changed)" in info.value.line()
    assert "--out" in info.value.line() and "--no-resume" in info.value.line()


def test_no_resume_sets_the_old_files_aside(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, manifest())
    store.append(record(1000))
    store.close()
    fresh = RunStore.open(tmp_path, manifest("f2"), resume=False)
    assert fresh.finished() == frozenset()
    fresh.close()
    (kept,) = tmp_path.glob("replaced-*")
    assert len(read_records(kept / RESULTS)) == 1


def test_a_second_opener_is_refused_while_the_first_holds_the_directory(tmp_path: Path) -> None:
    first = RunStore.open(tmp_path, manifest())
    with pytest.raises(StoreError, match="is in use by another haystack-eval run"):
        RunStore.open(tmp_path, manifest())
    first.close()
    RunStore.open(tmp_path, manifest()).close()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: (d / "notes.txt").write_text("mine"), "is not an empty directory or a haystack-eval run"),
        (lambda d: (d / MANIFEST).write_text("{broken"), "manifest.json is damaged"),
        (lambda d: (d / MANIFEST).write_text('{"tool": "other"}'), "is not a haystack-eval manifest"),
    ],
)
def test_directories_that_are_not_ours_are_left_alone(tmp_path: Path, setup, message: str) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    with pytest.raises(StoreError, match=message):
        RunStore.open(tmp_path, manifest())
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir() if p.name != ".lock") == before


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the run directory"):
        RunStore.open(tmp_path / "file" / "run", manifest())


class FullDisk:
    """The results file on a disk with ``room`` bytes left: a write takes what fits and says so, the next
    one fails with ENOSPC, as write(2) does on Linux."""

    def __init__(self, real: BinaryIO, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self.real.write(bytes(data[:self.room]))
        self.room -= written
        return written

    def __getattr__(self, name: str) -> Any:  # seek, truncate, fileno, close: the real file's
        return getattr(self.real, name)


def on_a_full_disk(room: int) -> type[RunStore]:
    """A RunStore whose results file has ``room`` bytes left (the store's own seam for its file)."""

    class OnAFullDisk(RunStore):
        @staticmethod
        def _open_results(path: Path) -> BinaryIO:
            return FullDisk(RunStore._open_results(path), room)  # type: ignore[return-value]

    return OnAFullDisk


def test_a_full_disk_is_one_line_naming_the_file_and_the_fix_and_costs_no_record(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, manifest())
    for length in (1000, 2000, 3000):
        store.append(record(length))
    store.close()
    before = (tmp_path / RESULTS).read_bytes()

    full = on_a_full_disk(room=30).open(tmp_path, manifest())  # half a record fits
    full.append(record(4000))
    with pytest.raises(StoreError) as info:
        full.close(state="failed")
    assert info.value.line() == (f"{tmp_path}: cannot write results.jsonl (No space left on device); free disk "
                                 "space or fix permissions, then run again: finished records are kept")
    assert info.value.exit_code == 2
    assert (tmp_path / RESULTS).read_bytes() == before, "the half-written record was cut back, nothing else lost"

    again = RunStore.open(tmp_path, manifest())  # space freed: the run resumes where it stopped
    assert again.dropped_bytes == 0 and again.finished() == {(1000, 50.0, 0), (2000, 50.0, 0), (3000, 50.0, 0)}
    again.append(record(4000))
    again.close()
    assert [r["length"] for r in read_records(tmp_path / RESULTS)] == [1000, 2000, 3000, 4000]


def test_after_a_failed_write_the_next_record_is_refused(tmp_path: Path) -> None:
    full = on_a_full_disk(room=0).open(tmp_path, manifest())
    full.append(record(1000))
    deadline = time.monotonic() + 5
    with pytest.raises(StoreError, match="cannot write results.jsonl"):
        while time.monotonic() < deadline:  # the writer meets the full disk in the background
            time.sleep(0.01)
            full.append(record(2000))  # so the runner's next record stops the run
    with pytest.raises(StoreError):
        full.close()
    assert (tmp_path / RESULTS).read_bytes() == b""
