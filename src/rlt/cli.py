"""The ``rlt`` command: TRL-style subcommands, each a module's ``main(argv)``.

Every stage parses its arguments with TRL's ``TrlParser``, so ``--config recipe.yaml``
sets defaults and any field can be overridden on the command line.
Modules are imported lazily: ``rlt --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("rlt.demo", "main", "the paper's effect in miniature, on a laptop CPU"),
    "data": ("rlt.data", "main", "inspect data: `rlt data preview` renders teacher and student examples"),
    "tiny-model": ("rlt.models", "main", "write a randomly initialised tiny Qwen2 model + tokenizer"),
    "warmup": ("rlt.sft", "warmup_main", "teacher SFT warm-up (TRL SFTTrainer)"),
    "train": (
        "rlt.train",
        "main",
        "GRPO training: the teacher with the RLT reward, or a student (TRL GRPOTrainer)",
    ),
    "collect": ("rlt.collect", "main", "the teacher writes explanations for a data set (resumable JSONL)"),
    "distill": ("rlt.sft", "distill_main", "student SFT on collected traces (TRL SFTTrainer)"),
    "eval": ("rlt.evaluate", "main", "accuracy and pass@k of a model on a task"),
    "score": ("rlt.score", "main", "RLT reward components of an existing trace set (resumable JSONL)"),
    "analyze": ("rlt.analyze", "main", "reward vs student outcome: quartile table, Pearson/Spearman, plot"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: rlt <command> [--config recipe.yaml] [--field value ...]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    lines += ["", "`rlt <command> --help` lists a command's fields."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from rlt import __version__

        print(f"rlt {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rlt: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    from rlt.errors import RLTError

    entry = getattr(importlib.import_module(module), func)
    sys.argv = [f"rlt {name}", *rest]  # argparse's usage line names the subcommand
    try:
        result = entry(rest)
    except (RLTError, FileNotFoundError) as err:
        print(f"rlt {name}: error: {err}", file=sys.stderr)
        return 2
    from rlt.sharding import finish

    finish()  # a launched job's processes end together (a failed one exits without waiting)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
