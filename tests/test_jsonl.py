"""rlt.jsonl: what a reader of a broken file and a writer on a full disk are told (mutation survivors)."""

import errno
import os

import pytest

from rlt.errors import DataError
from rlt.jsonl import JsonlAppender, read_records


def test_a_bad_line_is_named_by_file_and_number(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "0"}\n\n{"id": 1,}\n')  # the blank line is skipped, not counted as a record
    with pytest.raises(DataError) as err:
        read_records(path)
    assert str(err.value).startswith(f"{path}: line 2 is not valid JSON (")


def test_the_appender_makes_missing_folders_and_keeps_text_readable(tmp_path):
    path = tmp_path / "runs" / "a" / "out.jsonl"
    with JsonlAppender(path) as out:
        out.write([{"id": "0", "explanation": "déjà 7+5=2 ✓"}])
    assert path.read_bytes() == '{"id": "0", "explanation": "déjà 7+5=2 ✓"}\n'.encode()
    assert read_records(path) == [{"id": "0", "explanation": "déjà 7+5=2 ✓"}]


def test_disk_full_keeps_the_errno_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with JsonlAppender(path) as out, pytest.raises(OSError) as err:
        out.write([{"id": "0"}])
    assert err.value.errno == errno.ENOSPC
    assert err.value.strerror == (
        f"no space left on device while writing {path}; records written before this batch are intact"
    )


def test_reading_leaves_a_half_written_line_alone_unless_asked_to_repair(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"id": "0"}\n{"id": "1"')  # killed mid-write
    assert read_records(path) == [{"id": "0"}]
    assert path.read_bytes() == b'{"id": "0"}\n{"id": "1"'  # a reader does not change the file
    assert read_records(path, repair=True) == [{"id": "0"}]
    assert path.read_bytes() == b'{"id": "0"}\n'
