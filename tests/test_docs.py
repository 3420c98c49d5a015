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


# ---------------------------------------------------------------------------------------------
# Docs that cannot drift: every `rlt ...` command in a fenced shell block of README.md and
# docs/*.md names a subcommand that exists and only flags (and, with --config, recipe keys) that
# its parser knows; every relative link points to a file in the repository.

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w-]*)")


def shell_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, command line)`` of every fenced shell block, ``\\`` continuations joined."""
    out: list[tuple[int, str]] = []
    lang: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            lang = None if lang is not None else fence.group(1).lower()
            continue
        if lang not in SHELL_BLOCKS:
            continue
        if lang == "console":
            if not pending and not line.lstrip().startswith("$ "):
                continue  # output, not a command
            line = line.lstrip().removeprefix("$ ") if not pending else line
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def _simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``||``, ``;``, ``|``, comments dropped);
    ``bash -c 'SCRIPT'`` adds SCRIPT's commands."""
    import shlex

    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append([])
        else:
            commands[-1].append(token)
    out = []
    for words in filter(None, commands):
        out.append(words)
        for i, word in enumerate(words[:-1]):
            if word == "-c" and i > 0 and Path(words[i - 1]).name in ("bash", "sh"):
                out += _simple_commands(words[i + 1])
    return out


def rlt_invocations(line: str) -> list[list[str]]:
    """The argument lists of every ``rlt`` the line runs: ``rlt ...``, ``.venv/bin/rlt ...``, and
    ``-m rlt.cli ...`` after a launcher's flags (``accelerate launch``, ``torchrun``, ``python``)."""
    out = []
    for words in _simple_commands(line):
        for i, word in enumerate(words):
            if Path(word).name == "rlt" and (
                i == 0 or "=" in words[i - 1] or words[i - 1] in ("do", "then", "time")
            ):
                out.append(words[i + 1 :])
                break
            if word == "-m" and i + 1 < len(words) and words[i + 1] in ("rlt.cli", "rlt"):
                out.append(words[i + 2 :])
                break
    return out


class _Parser(Exception):
    def __init__(self, parser):
        self.parser = parser


def command_parser(name: str):
    """The argument parser ``rlt NAME`` builds (through ``rlt.config.parse``), taken before it parses."""
    import importlib
    from unittest import mock

    from trl import TrlParser

    from rlt.cli import COMMANDS

    if name not in _PARSERS:
        module, func, _ = COMMANDS[name]
        entry = getattr(importlib.import_module(module), func)

        def capture(self, *args, **kwargs):
            raise _Parser(self)

        argv = ["preview"] if name == "data" else ["--help"]
        with mock.patch.object(TrlParser, "parse_args_and_config", capture):
            try:
                entry(argv)
            except _Parser as got:
                _PARSERS[name] = got.parser
            else:
                raise AssertionError(f"rlt {name}: no parser was built for {argv}")
    return _PARSERS[name]


_PARSERS: dict = {}


def _flags(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--") and len(a) > 2]


def doc_commands() -> list[tuple[str, list[str]]]:
    """``("FILE:LINE", args after rlt)`` of every rlt command in the docs."""
    found = []
    for doc in DOCS:
        for number, line in shell_lines(doc.read_text()):
            for args in rlt_invocations(line):
                found.append((f"{doc.relative_to(ROOT)}:{number}", args))
    return found


def command_problems(where: str, args: list[str]) -> list[str]:
    """What is wrong with one documented ``rlt`` command: an unknown subcommand, flag or recipe key."""
    import yaml

    from rlt.cli import COMMANDS

    if not args or args[0] in ("-h", "--help", "-V", "--version"):
        return []
    name = args[0]
    if name not in COMMANDS:
        return [f"{where}: `rlt {name}`: no such command (commands: {', '.join(COMMANDS)})"]
    rest = args[1:]
    if name == "data":
        if not rest or rest[0] != "preview":
            return [f"{where}: `rlt data`: the only subcommand is `preview`"]
        rest = rest[1:]
    parser = command_parser(name)
    options = {s for action in parser._actions for s in action.option_strings} | {"--config"}
    problems = [
        f"{where}: `rlt {name}` has no flag {flag} (`rlt {name} --help` lists its fields)"
        for flag in _flags(rest)
        if flag not in options
    ]
    if "--config" in rest and rest.index("--config") + 1 < len(rest):
        given = rest[rest.index("--config") + 1]
        recipe = ROOT / given
        if recipe.name in ("...", "recipe.yaml", "FILE"):
            return problems  # a placeholder
        if not recipe.is_file():
            return problems + [f"{where}: `rlt {name} --config {given}`: no such recipe"]
        keys = set(yaml.safe_load(recipe.read_text()) or {}) - {"env"}
        dests = {action.dest for action in parser._actions}
        problems += [f"{where}: {given}: `rlt {name}` has no field {key!r}" for key in sorted(keys - dests)]
    return problems


def test_shell_lines_and_invocations_are_read_as_a_shell_would():
    text = "\n".join([
        "```bash",
        "bash scripts/setup.sh && .venv/bin/rlt demo --quick   # a comment --not_a_flag",
        "accelerate launch --config_file x.yaml --num_processes 8 -m rlt.cli train \\",
        "    --config recipes/tiny/teacher_rlt.yaml --max_steps=3",
        "OMP_NUM_THREADS=1 rlt eval --model m",
        "for t in a b; do rlt score --input $t; done",
        "srun bash -c 'accelerate launch --multi_gpu -m rlt.cli collect --teacher ... --out o'",
        "pip install rlt",
        "```",
        "rlt prose --outside_a_block",
        "```console",
        "$ rlt analyze --bins 4",
        "rlt output line --not_run",
        "```",
    ])  # fmt: skip
    found = [args for _, line in shell_lines(text) for args in rlt_invocations(line)]
    assert found == [
        ["demo", "--quick"],
        ["train", "--config", "recipes/tiny/teacher_rlt.yaml", "--max_steps=3"],
        ["eval", "--model", "m"],
        ["score", "--input", "$t"],
        ["collect", "--teacher", "...", "--out", "o"],
        ["analyze", "--bins", "4"],
    ]
    assert shell_lines(text)[1][0] == 3  # a continued line is numbered where it starts


def test_docs_commands_exist_with_their_flags_and_recipe_keys():
    commands = doc_commands()
    names = {args[0] for _, args in commands if args}
    # the docs show the whole pipeline; a parser that stops reading them would pass vacuously
    assert {"demo", "warmup", "train", "collect", "distill", "eval", "score", "analyze"} <= names
    problems = [p for where, args in commands for p in command_problems(where, args)]
    assert problems == [], "\n".join(problems)


def test_a_misspelled_flag_or_recipe_key_is_caught(tmp_path):
    assert command_problems("x.md:1", ["eval", "--harness", "skythought", "--num_sample", "4"]) == [
        "x.md:1: `rlt eval` has no flag --num_sample (`rlt eval --help` lists its fields)"
    ]
    assert command_problems("x.md:1", ["demo", "--seeds=6", "--findings"]) == []
    assert command_problems("x.md:1", ["tarin"])[0].startswith("x.md:1: `rlt tarin`: no such command")
    assert command_problems("x.md:1", ["train", "--config", "recipes/tiny/teacher_rlt.yaml"]) == []
    recipe = tmp_path / "recipe.yml"
    recipe.write_text((ROOT / "recipes/tiny/teacher_rlt.yaml").read_text() + "\nlearnig_rate: 0.1\n")
    assert command_problems("x.md:1", ["train", "--config", str(recipe)]) == [
        f"x.md:1: {recipe}: `rlt train` has no field 'learnig_rate'"
    ]
    assert "no such recipe" in command_problems("x.md:1", ["warmup", "--config", "recipes/nope.yaml"])[0]


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_docs_links_point_to_files_in_the_repository():
    broken = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # links, not code
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same page
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or ROOT not in path.parents and path != ROOT:
                broken.append(f"{doc.relative_to(ROOT)}: ({target})")
    assert broken == []


def test_docs_name_no_file_outside_the_repository():
    # docs/spec.md once sent readers to shared/official-formats.md, a file the repository does not have
    for doc in DOCS:
        assert "official-formats.md" not in doc.read_text(), doc


def test_readme_shows_every_ci_lane_as_ci_runs_it():
    lanes = re.findall(r"^lane (\w+) '(.*)'$", (ROOT / ".ci" / "run").read_text(), re.M)
    assert lanes
    readme_lines = [line for _, line in shell_lines((ROOT / "README.md").read_text())]
    for name, command in lanes:
        assert any(line.split("  #")[0].strip() == command for line in readme_lines), (name, command)
