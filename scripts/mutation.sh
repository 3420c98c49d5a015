#!/usr/bin/env bash
# Mutation testing (on demand, not in CI) of the modules where a silent error costs a
# training run. Usage:
#   scripts/mutation.sh MODULE [MUTANT-GLOB ...]
#     MODULE: formats | jsonl | collect | rlt | logprobs  (rlt: rewards/rlt.py, rlt_config.py, rlt_tokens.py)
#     MUTANT-GLOB: optional mutmut names to run only some mutants, e.g. 'rlt.formats.x_split_completion_ids*'
# Each module is mutated in a fresh copy of the committed tree (git archive HEAD) under
# .mutation/MODULE, with only the test files that exercise it (2 cores: a whole-suite run
# per mutant would take days). Results: `cd .mutation/MODULE && ../../.venv/bin/mutmut results`
# (or `mutmut show NAME` for one mutant's diff). docs/testing.md records the last scores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODULE=${1:?usage: scripts/mutation.sh formats|jsonl|collect|rlt|logprobs [MUTANT-GLOB ...]}
shift
case "$MODULE" in
  formats)  SRC=src/rlt/formats.py
            TESTS="tests/test_formats.py tests/test_formats_qwen.py tests/reliability/test_completion_faults.py tests/rewards/test_registry.py" ;;
  jsonl)    SRC=src/rlt/jsonl.py
            TESTS="tests/test_jsonl.py tests/test_collect.py tests/test_score.py tests/reliability/test_faults.py tests/reliability/test_score_inputs.py" ;;
  collect)  SRC=src/rlt/collect.py
            TESTS="tests/test_collect.py tests/test_decontaminate.py" ;;
  # the RLT reward, all three parts (config, token arithmetic, the reward object)
  rlt)      SRC="src/rlt/rewards/rlt.py src/rlt/rewards/rlt_config.py src/rlt/rewards/rlt_tokens.py"
            TESTS="tests/rewards/test_rlt_config.py tests/rewards/test_rlt_reward.py tests/rewards/test_rlt_reward_qwen.py tests/rewards/test_rlt_reward_options.py tests/reliability/test_completion_faults.py tests/reliability/test_faults.py tests/reliability/test_numerics.py" ;;
  logprobs) SRC=src/rlt/rewards/logprobs.py
            TESTS="tests/rewards/test_logprobs.py tests/rewards/test_rlt_reward.py tests/reliability/test_completion_faults.py" ;;
  *) echo "unknown module $MODULE" >&2; exit 2 ;;
esac
WORK="$ROOT/.mutation/$MODULE"
rm -rf "$WORK" && mkdir -p "$WORK"
git -C "$ROOT" archive HEAD | tar -x -C "$WORK"
{
  echo "[mutmut]"
  # CPU limit per mutant = (estimated test time + 1 s) × this × 2. mutmut's default (15) gave an
  # infinite-loop mutant of split_completion_ids 17 CPU minutes; its tests run in seconds.
  echo "timeout_multiplier = 2"
  echo "source_paths = src"
  echo "only_mutate ="
  for s in $SRC; do echo "    $s"; done
  echo "pytest_add_cli_args_test_selection ="
  for t in $TESTS; do echo "    $t"; done
  echo "pytest_add_cli_args ="
  echo "    -p"
  echo "    no:cacheprovider"
  echo "    -m"
  echo "    not slow"
  echo "process_isolation = forkserver"
  echo "use_git_change_detection = false"
  echo "also_copy ="          # what tests read besides src/ and tests/ (recipes, docs, ...)
  for d in recipes docs benchmarks scripts README.md; do echo "    $d"; done
} > "$WORK/setup.cfg"
[ -x "$ROOT/.venv/bin/mutmut" ] || "$ROOT/.venv/bin/python" -m pip install -q "mutmut>=3.8"  # the `mutation` extra
cd "$WORK"
# mutmut puts mutants/src first on sys.path itself; a PYTHONPATH to it breaks its stats run.
export PYTHONPATH= OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HYPOTHESIS_PROFILE=mutation
"$ROOT/.venv/bin/mutmut" run --max-children "${MUTATION_JOBS:-2}" "$@"
"$ROOT/.venv/bin/mutmut" results
