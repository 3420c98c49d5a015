#!/usr/bin/env bash
# Fetch the wheels the GPU machine lacks into gpu_wheels/ (ignored by git), for
# benchmarks/gpu_suite.sh to install there without network.
#
#   bash scripts/gpu_wheels.sh            # fetch (skips wheels already there), slim, check the size
#   bash scripts/gpu_wheels.sh --check    # only check the size of what is there
#
# The list is benchmarks/gpu_wheels.txt (pinned; why each is there is written next to it),
# computed as rlt's runtime dependencies (pyproject.toml) and theirs, minus what the image
# has (benchmarks/gpu_image.txt); tests/test_benchmarks_gpu_scripts.py checks that it covers
# them. Every wheel is downloaded alone (--no-deps), for CPython 3.12 on manylinux x86-64,
# binary only, so no torch or CUDA wheel can come in. pyarrow and pandas are repacked without
# their tests, headers and unused libraries (scripts/slim_wheel.py).
#
# Fails when the bundle plus the working tree (git ls-files) exceeds 64 MiB, the most that
# travels to the GPU machine in one call. Environment: PYTHON (default .venv/bin/python),
# GPU_WHEELS_DIR (default gpu_wheels).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$ROOT/.venv/bin/python}
DEST=${GPU_WHEELS_DIR:-$ROOT/gpu_wheels}
LIST=$ROOT/benchmarks/gpu_wheels.txt
IMAGE=$ROOT/benchmarks/gpu_image.txt
LIMIT=$((64 * 1024 * 1024))
CHECK_ONLY=0
[[ ${1:-} == --check ]] && CHECK_ONLY=1

mkdir -p "$DEST"
# name==version role [slim], comments and blank lines skipped
mapfile -t ENTRIES < <(sed -e 's/#.*//' "$LIST" | awk 'NF')

norm() { tr 'A-Z_.' 'a-z--' <<<"$1"; }  # PEP 503 names: lower case, - for _ and .
# The image's names; a wheel of one of them may only travel as a fallback.
mapfile -t IMAGE_NAMES < <(sed -e 's/#.*//' -e 's/[=<>!~ ].*//' "$IMAGE" | awk 'NF' | tr 'A-Z_.' 'a-z--')
for line in "${ENTRIES[@]}"; do
    read -r spec role _ <<<"$line"
    name=$(norm "${spec%%==*}")
    case $role in
        install | dep)
            if printf '%s\n' "${IMAGE_NAMES[@]}" | grep -qx -- "$name"; then
                echo "gpu_wheels: $spec is in the image ($IMAGE); list it as a fallback or drop it" >&2
                exit 1
            fi
            ;;
        fallback) ;;
        *) echo "gpu_wheels: $spec: unknown role '$role' in $LIST" >&2; exit 1 ;;
    esac
    case $name in torch | triton | nvidia-* | cuda-*)
        echo "gpu_wheels: $spec: no torch/CUDA wheel may travel" >&2; exit 1 ;;
    esac
done

wheel_for() {  # the wheel file of name==version in $DEST, if any (names normalise - . to _)
    local spec=$1 name version
    name=${spec%%==*}
    version=${spec#*==}
    find "$DEST" -maxdepth 1 -iname "$(tr -- '-.' '__' <<<"$name")-${version}-*.whl" | head -1
}

if ((!CHECK_ONLY)); then
    for line in "${ENTRIES[@]}"; do
        read -r spec _role opts <<<"$line"
        if [[ -n $(wheel_for "$spec") ]]; then
            continue
        fi
        echo "fetching $spec"
        "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
            --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 --platform any \
            --dest "$DEST" "$spec"
        whl=$(wheel_for "$spec")
        [[ -n $whl ]] || { echo "gpu_wheels: no wheel for $spec in $DEST after download" >&2; exit 1; }
        if [[ ${opts:-} == *slim* ]]; then
            "$PY" "$ROOT/scripts/slim_wheel.py" "$whl"
        fi
    done
fi

# Every listed wheel is there, and nothing that would drag torch or CUDA in.
missing=0
for line in "${ENTRIES[@]}"; do
    read -r spec _ <<<"$line"
    if [[ -z $(wheel_for "$spec") ]]; then
        echo "gpu_wheels: missing $spec" >&2
        missing=1
    fi
done
if find "$DEST" -maxdepth 1 -iname '*.whl' | grep -Eiq '/(torch|nvidia|triton|cuda)[-_]'; then
    echo "gpu_wheels: a torch/CUDA wheel is in $DEST; remove it" >&2
    exit 1
fi
((missing == 0)) || exit 1

bundle=$(find "$DEST" -maxdepth 1 -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
total=$((bundle + tree))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
find "$DEST" -maxdepth 1 -name '*.whl' -printf '%s %f\n' | sort -rn |
    awk '{printf "  %8.2f MiB  %s\n", $1 / 1048576, $2}'
echo "bundle $(mib "$bundle") in $(find "$DEST" -maxdepth 1 -name '*.whl' | wc -l) wheels" \
    "+ working tree $(mib "$tree") = $(mib "$total") of $(mib "$LIMIT")"
if ((total > LIMIT)); then
    echo "gpu_wheels: over the 64 MiB limit" >&2
    exit 1
fi
