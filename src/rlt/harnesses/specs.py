"""Each harness's settings per benchmark: data set, sampling, seed, system prompt (:func:`get_spec`)."""

from __future__ import annotations

from dataclasses import dataclass

from rlt.errors import ConfigError
from rlt.formats import STRATOS_SYSTEM_PROMPT

HARNESSES = ("rlt", "skythought", "lighteval")
BENCHMARKS = ("aime24", "math500", "gpqa_diamond")
GPQA_OPTIONS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

# SkyThought's `skythought` system prompt (models/model_configs.yaml) as YAML parses it:
# the Bespoke-Stratos text, except that YAML turns its '\n\n' into two real newlines.
SKY_T1_SYSTEM_PROMPT = STRATOS_SYSTEM_PROMPT.replace("'\\n\\n'", "'\n\n'")


# --------------------------------------------------------------------------- harness settings


@dataclass(frozen=True)
class HarnessSpec:
    """Where a harness reads a benchmark and how it samples it.

    ``dataset`` is ``(hub id, config, split)``; ``num_samples`` is the harness's n for
    the benchmark (lighteval's largest ``pass@1:n_samples`` metric).
    """

    harness: str
    source: str
    dataset: tuple[str, str | None, str]
    temperature: float
    top_p: float
    max_new_tokens: int
    num_samples: int
    seed: int
    system_prompt: str | None


SPECS: dict[tuple[str, str], HarnessSpec] = {
    # SkyThought: cli.py SAMPLING_PARAMS_DEFAULT "temperature=0,top_p=1,max_tokens=32768",
    # n=1, --seed 41; the task YAMLs' data sets; system prompt: the `skythought` entry.
    ("skythought", "aime24"): HarnessSpec("skythought", "NovaSky-AI/SkyThought@4bb8f3e",
        ("AI-MO/aimo-validation-aime", None, "train"), 0.0, 1.0, 32768, 1, 41, SKY_T1_SYSTEM_PROMPT),
    ("skythought", "math500"): HarnessSpec("skythought", "NovaSky-AI/SkyThought@4bb8f3e",
        ("qq8933/MATH500", None, "test"), 0.0, 1.0, 32768, 1, 41, SKY_T1_SYSTEM_PROMPT),
    ("skythought", "gpqa_diamond"): HarnessSpec("skythought", "NovaSky-AI/SkyThought@4bb8f3e",
        ("Idavidrein/gpqa", "gpqa_diamond", "train"), 0.0, 1.0, 32768, 1, 41, SKY_T1_SYSTEM_PROMPT),
    # lighteval as open-r1 runs it: temperature 0.6, top_p 0.95, 32768 tokens, no system
    # prompt, pass@1 from 64 (AIME), 4 (MATH-500), 8 (GPQA) samples; random.seed(1234).
    ("lighteval", "aime24"): HarnessSpec("lighteval", "huggingface/lighteval@v0.9.2",
        ("HuggingFaceH4/aime_2024", "default", "train"), 0.6, 0.95, 32768, 64, 1234, None),
    ("lighteval", "math500"): HarnessSpec("lighteval", "huggingface/lighteval@v0.9.2",
        ("HuggingFaceH4/MATH-500", "default", "test"), 0.6, 0.95, 32768, 4, 1234, None),
    ("lighteval", "gpqa_diamond"): HarnessSpec("lighteval", "huggingface/lighteval@v0.9.2",
        ("Idavidrein/gpqa", "gpqa_diamond", "train"), 0.6, 0.95, 32768, 8, 1234, None),
}  # fmt: skip


def get_spec(harness: str, benchmark: str) -> HarnessSpec:
    """The settings of ``harness`` on ``benchmark``; a ConfigError naming the field otherwise."""
    if harness not in HARNESSES:
        raise ConfigError(f"harness: unknown harness {harness!r}; expected one of {list(HARNESSES)}")
    if (harness, benchmark) not in SPECS:
        raise ConfigError(f"task: harness {harness} runs {list(BENCHMARKS)}, not {benchmark!r}")
    return SPECS[(harness, benchmark)]
