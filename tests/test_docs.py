"""The docs name tests that exist: docs/reliability.md is a catalogue of tested cases."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reliability_catalogue_names_existing_tests():
    doc = (ROOT / "docs" / "reliability.md").read_text()
    files = {p.name: p for p in (ROOT / "tests").rglob("test_*.py")}
    defined = {name for p in files.values() for name in re.findall(r"def (test_\w+)", p.read_text())}
    named_files = set(re.findall(r"\b(test_\w+\.py)\b", doc))
    named_tests = set(re.findall(r"\b(test_\w+)\b(?!\.py)", doc)) - {f[:-3] for f in named_files}
    assert named_files and named_tests
    assert sorted(named_files - set(files)) == []
    assert sorted(named_tests - defined) == []
    # the issue asks for at least 30 cases, each a table row with its test
    rows = [line for line in doc.splitlines() if line.startswith("| ") and "test_" in line.split("|")[-2]]
    assert len(rows) >= 30
