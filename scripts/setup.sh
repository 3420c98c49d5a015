#!/usr/bin/env bash
# Create ./.venv and install rlt into it. A second run is a no-op (a stamp records what was installed).
#   scripts/setup.sh          the package
#   scripts/setup.sh --dev    the package plus pytest and ruff
# RLT_TORCH_SPEC chooses the torch build installed first (default: the tested release, torch==2.13.*);
# set it e.g. to "torch" for the newest release, or pre-install torch in .venv yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
py=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=.venv/.rlt-installed
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
if [ -f "$stamp" ] && grep -qxF -- "$want" "$stamp"; then
  exit 0
fi
echo "rlt: installing into .venv (once; later runs skip this)" >&2
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "${RLT_TORCH_SPEC:-torch==2.13.*}"
.venv/bin/python -m pip install -q -e ".$extras"
echo "$want" >> "$stamp"
