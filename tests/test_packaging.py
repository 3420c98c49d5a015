"""What pyproject.toml promises is what a CI lane ran, and CI runs the README's commands.

- Every ``>=`` lower bound of a runtime dependency is pinned, at that version, by the lower-bound
  lane (``scripts/lower-bounds.txt``; torch by ``scripts/setup.sh --lower``).
- ``.ci/run`` calls the README's test command exactly as printed, plus the two other lanes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lower_bounds() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "scripts" / "lower-bounds.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _minimum(req: Requirement) -> str:
    (bound,) = [s.version for s in req.specifier if s.operator == ">="]
    return bound


def _same_version(pin: str, bound: str) -> bool:
    """``6.0.1`` pins ``>=6.0.1``; ``2.11.0`` pins ``>=2.11``."""
    a, b = pin.split("."), bound.split(".")
    return a[: len(b)] == b and all(x == "0" for x in a[len(b) :])


def test_every_lower_bound_is_what_the_lower_bound_lane_pins():
    pins = _lower_bounds()
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    deps = [Requirement(d) for d in _pyproject()["project"]["dependencies"]]
    assert len(deps) >= 10
    for req in deps:
        bound, name = _minimum(req), canonicalize_name(req.name)
        if name == "torch":
            (pin,) = set(re.findall(r'"torch==([\d.]+)"', setup.split(".venv-lower)")[1].split(";;")[0]))
        else:
            pin = pins.get(name)
        assert pin is not None, f"{req.name}: no pin in scripts/lower-bounds.txt"
        assert _same_version(pin, bound), f"{req.name}: pyproject says >={bound}, the lane pins {pin}"
    extras = _pyproject()["project"]["optional-dependencies"]
    (w2n,) = [Requirement(d) for d in extras["harnesses"]]
    assert _same_version(pins[canonicalize_name(w2n.name)], _minimum(w2n))


def test_ci_runs_the_readmes_test_command_and_the_other_lanes():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    assert test_command == "bash scripts/setup.sh --dev && .venv/bin/python -m pytest -q"
    assert f"'{test_command}'" in ci
    assert "bash scripts/setup.sh --lower && .venv-lower/bin/python -m pytest -q" in ci
    assert "bash scripts/setup.sh --vllm && .venv-vllm/bin/python -m pytest -q" in ci and "-m vllm" in ci
