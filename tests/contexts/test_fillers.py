"""Filler corpora: the bundled essays and noise, user files, and every way a filler can be unusable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from haystack_eval.contexts.fillers import bundled_root, load_filler, normalise
from haystack_eval.errors import FillerError


def test_the_bundled_essays_are_many_long_and_original_in_form() -> None:
    corpus = load_filler("essays")
    assert len(corpus.documents) >= 20
    assert corpus.words >= 30_000
    titles = [doc.text.split("\n", 1)[0] for doc in corpus.documents]
    assert len(set(titles)) == len(titles), "every essay has its own title"
    for doc in corpus.documents:
        assert len(doc.text.split()) >= 1000, doc.name
        assert "sandwich" not in doc.text.lower() and "dolores" not in doc.text.lower()
        assert not re.search(r"\b(e\.g|i\.e|Dr|Mr|U\.S)\.", doc.text), doc.name


def test_the_bundled_fillers_are_read_in_sorted_order_and_hashed() -> None:
    corpus = load_filler("essays")
    names = [doc.name for doc in corpus.documents]
    assert names == sorted(names)
    assert len(corpus.sha256) == 64
    assert load_filler("essays") is corpus, "files are read once per process"


def test_noise_is_short_neutral_sentences() -> None:
    (doc,) = load_filler("noise").documents
    sentences = re.split(r"(?<=\.) ", doc.text)
    assert len(sentences) >= 8
    assert all(len(s.split()) <= 8 for s in sentences)


def test_a_file_a_directory_and_a_glob(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("Second file. It has words.\n", encoding="utf-8")
    (tmp_path / "a.md").write_text("First file. It has words too.\n", encoding="utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("Third file. Deeper down.\n", encoding="utf-8")

    one = load_filler("b.txt", tmp_path)
    assert [d.text for d in one.documents] == ["Second file. It has words."]
    folder = load_filler(str(tmp_path))
    assert [Path(d.name).name for d in folder.documents] == ["a.md", "b.txt", "c.txt"]
    globbed = load_filler("*.txt", tmp_path)
    assert [Path(d.name).name for d in globbed.documents] == ["b.txt"]
    listed = load_filler(["b.txt", "sub/c.txt"], tmp_path)
    assert len(listed.documents) == 2 and listed.sha256 != one.sha256


def test_newlines_are_normalised_before_hashing(tmp_path: Path) -> None:
    (tmp_path / "unix.txt").write_bytes(b"One line.\nTwo lines.\n")
    (tmp_path / "dos.txt").write_bytes(b"\xef\xbb\xbfOne line.  \r\nTwo lines.\r\n\r\n")
    assert load_filler("unix.txt", tmp_path).sha256 == load_filler("dos.txt", tmp_path).sha256
    assert normalise("\r\n\r\nA.\rB.  \n") == "A.\nB."


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("First version. Short.", encoding="utf-8")
    first = load_filler("f.txt", tmp_path)
    path.write_text("Second version, longer than the first. Really.", encoding="utf-8")
    assert load_filler("f.txt", tmp_path).sha256 != first.sha256


def test_the_bundled_fillers_are_found_where_the_package_lives() -> None:
    assert (bundled_root() / "essays").is_dir()


@pytest.mark.parametrize(
    ("setup", "spec", "message"),
    [
        (lambda d: (d / "e.txt").write_text("  \n\n", encoding="utf-8"), "e.txt", "e.txt: is empty"),
        (lambda d: (d / "b.txt").write_bytes(b"PK\x03\x04\x00\x00binary"), "b.txt", "looks like a binary file"),
        (lambda d: (d / "l.txt").write_bytes("caf\u00e9 ol\u00e9".encode("latin-1")), "l.txt", "is not UTF-8 text"),
        (lambda d: None, "missing.txt", "'missing.txt' is neither a bundled filler nor an existing file"),
        (lambda d: (d / "empty").mkdir(), "empty", "holds no .txt or .md files"),
        (lambda d: None, "nothing/*.txt", "matches no files"),
    ],
)
def test_unusable_fillers_name_the_file_and_the_fix(tmp_path: Path, setup, spec: str, message: str) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    with pytest.raises(FillerError) as info:
        load_filler(spec, tmp_path)
    line = info.value.line()
    assert message in line
    assert ";" in line and "\n" not in line  # one line with a fix after the problem
