"""Smoke runs of the GPU benchmarks in their CPU ``--tiny`` mode, the GPU suite's rehearsal and its wheels.

``benchmarks/gpu_suite.sh --smoke`` runs every step of the GPU suite at tiny shapes and must
leave each step's JSON with its verdicts; the wheel list (``benchmarks/gpu_wheels.txt``) must
cover what ``pyproject.toml`` needs and the image (``benchmarks/gpu_image.txt``) lacks.

The scripts run in subprocesses, as a user runs them (each puts ``benchmarks/`` on its own
path). Their numbers say nothing about GPUs; these tests only check that the whole path works
and that the printed table carries the ratio and target lines.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    """Run a benchmark script; its stdout (fails the test with its stderr on a non-zero exit)."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_reward_gpu_tiny_on_cpu() -> None:
    out = run("reward_gpu.py", "--device", "cpu", "--tiny", "--dtype", "fp32", "--repeats", "1")
    assert "vocab 151936" in out  # the real Qwen2.5-1.5B vocabulary, from the committed config
    ratio_lines = [line for line in out.splitlines() if line.strip().startswith("T=")]
    assert len(ratio_lines) == 2  # lengths 64 and 128, batch size 1
    for line in ratio_lines:
        assert "speed vs reference" in line and "memory vs reference" in line
        assert "reward / bare forward" in line
        diff = float(re.search(r"max\|Δr\| (\S+)", line).group(1))
        assert diff < 1e-5  # in fp32 the reward agrees with the naive reference
    for target in (">= 3x reference speed", "<= 1/4 reference memory", "<= 1.2x bare forward"):
        assert re.search(re.escape(target) + r".*(met|NOT met)$", out, re.MULTILINE), target
    assert "says nothing about the GPU targets" in out


def test_train_step_gpu_tiny_on_cpu() -> None:
    # One step (no warm-up) keeps the smoke run short; the phases are printed all the same.
    out = run("train_step_gpu.py", "--device", "cpu", "--tiny", "--steps", "1")
    for phase in ("generation", "reward", "student forward", "teacher log-probs", "policy update", "step"):
        assert re.search(rf"^\s+{re.escape(phase)}.* s", out, re.MULTILINE), phase
    share = re.search(r"target: reward <= 20% of the step: ([\d.]+)%\s+(met|NOT met)", out)
    assert share is not None and 0 < float(share.group(1)) < 100


# --------------------------------------------------------------------------- the GPU suite

ROOT = BENCH.parent
SUITE_STEPS = ("reward_1.5b", "reward_7b", "step_1.5b", "lora_7b", "sft_1.5b")
VERDICTS = {"met", "NOT met", "not measured"}


@pytest.mark.slow
def test_gpu_suite_smoke_writes_every_steps_json(tmp_path: Path) -> None:
    """``bash benchmarks/gpu_suite.sh --smoke``: every step ends ok and leaves its JSON and verdicts."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu_suite.sh"), "--smoke"], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    suite = json.loads((tmp_path / "suite.json").read_text())
    assert suite["smoke"] is True
    steps = {s["step"]: s for s in suite["steps"]}
    assert list(steps) == ["install", *SUITE_STEPS]  # in order of value, after the install
    assert steps["install"]["status"] in ("ok", "skipped")
    install = json.loads((tmp_path / "install.json").read_text())
    assert install["missing"] == [] and install["versions"]["trl"]
    for name in SUITE_STEPS:
        assert steps[name]["status"] == "ok", (name, steps[name])
        report = json.loads((tmp_path / steps[name]["json"]).read_text())
        assert report["tiny"] is True and report["verdict"] in VERDICTS, name
        assert report["targets"] and all(t["verdict"] in VERDICTS for t in report["targets"]), name
        assert (tmp_path / f"{name}.log").is_file()
    for name in ("reward_1.5b", "reward_7b"):
        rows = json.loads((tmp_path / f"{name}.json").read_text())["rows"]
        assert rows and all({"rlt", "reference", "forward", "ratios"} <= set(r) for r in rows)
    step = json.loads((tmp_path / "step_1.5b.json").read_text())
    assert 0 < step["reward_share"] < 1 and {"generation", "reward"} <= set(step["phases_s"])
    lora = json.loads((tmp_path / "lora_7b.json").read_text())
    assert lora["peft"] is True and lora["recipe"].endswith("teacher_rlt_lora.yaml")
    assert any("peak GPU memory" in t["target"] for t in lora["targets"])
    sft = json.loads((tmp_path / "sft_1.5b.json").read_text())
    assert [s["stage"] for s in sft["stages"]] == ["teacher", "student"]
    for s in sft["stages"]:
        assert s["tokens_per_s"] > 0 and 0 < s["loss_tokens"] < s["tokens"]  # completion-only loss
    assert "verdict:" in proc.stdout


# --------------------------------------------------------------------------- the wheels


def _name(requirement: str) -> str:
    """The PEP 503 name of a requirement string or ``name==version`` line."""
    return canonicalize_name(re.split(r"[\s\[=<>!~;]", requirement.strip(), maxsplit=1)[0])


def image_names() -> set[str]:
    lines = (ROOT / "benchmarks" / "gpu_image.txt").read_text().splitlines()
    return {_name(line) for line in lines if line.split("#")[0].strip()}


def wheel_list() -> dict[str, tuple[str, str]]:
    """``{name: (version, role)}`` of benchmarks/gpu_wheels.txt (what scripts/gpu_wheels.sh fetches)."""
    out = {}
    for line in (ROOT / "benchmarks" / "gpu_wheels.txt").read_text().splitlines():
        fields = line.split("#")[0].split()
        if fields:
            name, version = fields[0].split("==")
            out[canonicalize_name(name)] = (version, fields[1])
    return out


def test_wheel_list_covers_pyprojects_runtime_dependencies_missing_from_the_image() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = {_name(d) for d in deps} - image_names()
    wheels = wheel_list()
    assert missing, "the image has everything? then gpu_wheels.txt should be empty"
    assert missing == {n for n, (_, role) in wheels.items() if role == "install"}
    assert not {n for n, (_, role) in wheels.items() if role != "fallback"} & image_names()
    assert not {n for n in wheels if n in ("torch", "triton") or n.startswith("nvidia")}
    # the script reads the same two files
    script = (ROOT / "scripts" / "gpu_wheels.sh").read_text()
    assert "benchmarks/gpu_wheels.txt" in script and "benchmarks/gpu_image.txt" in script


def _metadata(name: str, version: str) -> list[str] | None:
    """Requires-Dist of name==version: from the fetched wheel, else from this environment if it matches."""
    for whl in (ROOT / "gpu_wheels").glob(f"{name.replace('-', '_')}-{version}-*.whl"):
        with zipfile.ZipFile(whl) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            text = z.read(meta).decode()
        return [
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")
        ]
    try:
        if importlib.metadata.version(name) == version:
            return importlib.metadata.requires(name) or []
    except importlib.metadata.PackageNotFoundError:
        pass
    return None


def test_every_carried_wheels_requirements_are_carried_or_in_the_image() -> None:
    """The closure: each requirement (CPython 3.12, Linux x86-64) of a carried wheel is carried or in the image,
    and where both pin it, the carried version is in the requirement's range."""
    wheels = wheel_list()
    env = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix"}  # fmt: skip
    extras = {"math-verify": ["antlr4_13_2"]}
    checked = 0
    for name, (version, _) in wheels.items():
        reqs = _metadata(name, version)
        if reqs is None:
            continue  # neither fetched here nor installed at that version
        checked += 1
        for raw in reqs:
            req = Requirement(raw)
            wanted = extras.get(name, [""])
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e}) for e in wanted):
                continue
            dep = canonicalize_name(req.name)
            assert dep in wheels or dep in image_names(), (
                f"{name}=={version} needs {raw}: neither carried nor in the image"
            )
            if dep in wheels:
                assert req.specifier.contains(wheels[dep][0], prereleases=True), f"{name} needs {raw}"
    assert checked >= len(wheels) // 2, checked  # most of the list was checked


def test_wheel_pins_equal_the_lower_bound_lane() -> None:
    """Where scripts/lower-bounds.txt (the lower-bound lane) pins a carried package, the pins agree."""
    lane = ROOT / "scripts" / "lower-bounds.txt"
    if not lane.is_file():
        pytest.skip("no scripts/lower-bounds.txt")
    pins = {}
    for line in lane.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    wheels = wheel_list()
    both = set(pins) & set(wheels)
    assert {"trl", "datasets"} <= both
    assert {n: wheels[n][0] for n in both} == {n: pins[n] for n in both}
