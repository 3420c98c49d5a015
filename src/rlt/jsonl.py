"""Append-only JSONL outputs that resume after a crash without losing or duplicating records.

Each record carries a stable id. On resume, complete lines are read back and their
ids skipped; a half-written last line (a kill mid-write) is cut off and redone.
Every batch is flushed and fsync'ed, so what was reported written survives a kill.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlt.errors import DataError


def read_records(path: str | Path, repair: bool = False) -> list[dict[str, Any]]:
    """Complete records of a JSONL file. ``repair`` truncates a half-written last line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    good_end = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # the last line was cut mid-write
        stripped = line.strip()
        if stripped:
            try:
                records.append(json.loads(stripped))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {len(records) + 1} is not valid JSON ({err.msg})") from err
        good_end += len(line)
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return records


def done_ids(path: str | Path, key: str = "id") -> set[str]:
    """Ids already written to ``path`` (repairs a half-written last line)."""
    return {str(r[key]) for r in read_records(path, repair=True) if key in r}


class JsonlAppender:
    """Appends records to a JSONL file; each :meth:`write` is durable when it returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab")

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        payload = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
        start = self._f.tell()
        try:
            self._f.write(payload)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as err:
            # Leave only complete records behind (e.g. disk full mid-batch).
            try:
                self._f.truncate(start)
            except OSError:
                pass
            if err.errno == errno.ENOSPC:
                raise OSError(
                    err.errno,
                    f"no space left on device while writing {self.path}; "
                    "records written before this batch are intact",
                ) from err
            raise

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
