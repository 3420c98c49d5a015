"""Repack a wheel without the parts the GPU suite never loads, so the bundle fits in 64 MiB.

Usage: ``python scripts/slim_wheel.py WHEEL`` (rewrites WHEEL in place; prints the sizes).

What goes (per package; everything else is kept byte for byte, same compression):

- ``pyarrow``: the C++ headers and Cython sources (``include/``, ``src/``, ``*.pyx``,
  ``*.pxd``, ``*.pxi``), its tests, Arrow Flight (``libarrow_flight``, ``_flight``), the S3
  filesystem (``libarrow_s3``, ``_s3fs``; ``pyarrow.fs`` imports it inside ``try``), the C++
  test module, and the unversioned duplicates of ``libarrow_python*`` (the extension modules
  link the ``.so.NNNN`` names; read with ``readelf -d``). Kept: core, compute, acero,
  dataset, substrait (linked by ``lib``), parquet, csv/json, the filesystems datasets uses.
- ``pandas``: its test suite (``pandas/tests/``).

``RECORD`` is rewritten to list exactly the kept files (their hashes are unchanged), so pip
installs the result like any wheel.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

DROP = {
    "pyarrow": re.compile(
        r"pyarrow/(include/|includes/|src/|tests/|.*\.(pyx|pxd|pxi)$|libarrow_flight|libarrow_python_flight"
        r"|_flight\.|libarrow_s3|_s3fs\.|_pyarrow_cpp_tests|libarrow_python\.so$|libarrow_python\.so\.\d+\.\d+\.\d+$"
        r"|libarrow_python_parquet_encryption\.so$)"
    ),
    "pandas": re.compile(r"pandas/tests/"),
}


def slim(wheel: Path) -> tuple[int, int]:
    """Rewrite ``wheel`` without the dropped members; (size before, size after) in bytes."""
    package = wheel.name.split("-")[0].lower()
    drop = DROP.get(package)
    if drop is None:
        raise SystemExit(f"slim_wheel: no rule for {package!r} (rules: {sorted(DROP)})")
    before = wheel.stat().st_size
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w") as dst:
        names = [i for i in src.infolist() if not drop.match(i.filename)]
        kept = {i.filename for i in names}
        record = next(i for i in names if i.filename.endswith(".dist-info/RECORD"))
        for info in names:
            if info is record:
                continue
            with src.open(info) as f:
                dst.writestr(info, f.read(), compress_type=info.compress_type)
        lines = src.read(record).decode().splitlines()
        out = [line for line in lines if line and line.split(",", 1)[0] in kept]
        dst.writestr(record, "\n".join(out) + "\n", compress_type=record.compress_type)
    tmp.replace(wheel)
    return before, wheel.stat().st_size


def main(argv: list[str]) -> int:
    for arg in argv:
        before, after = slim(Path(arg))
        print(f"slimmed {Path(arg).name}: {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
