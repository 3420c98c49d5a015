"""`rlt eval --harness skythought|lighteval`: data, prompts, shuffles, checking and metrics as the harnesses do them.

Expected strings are the harnesses' own (SkyThought@4bb8f3e task YAMLs and
gpqa_diamond_handler.py; lighteval v0.9.2 default_prompts.py), typed out here so a
change in our reproduction fails a test.
"""

import json
import logging
import random

import pytest

from rlt.cli import main as cli
from rlt.errors import ConfigError, DataError
from rlt.formats import STRATOS_SYSTEM_PROMPT
from rlt.harnesses import (
    SKY_T1_SYSTEM_PROMPT,
    build_questions,
    cap_budget,
    get_spec,
    harness_check,
    lighteval_letter,
    load_benchmark_rows,
    markdown_table,
    model_context_length,
    run_harness,
    skythought_choice,
    skythought_extract_answer,
    skythought_ks,
    strip_answer_string,
    summarise_harness,
    table_row,
    update_table,
)

pytest.importorskip("word2number")  # SkyThought's number words (the `harnesses` extra)

# --------------------------------------------------------------------------- stand-ins in the real schemas

AIMO = [  # AI-MO/aimo-validation-aime: id, problem, solution, answer, url
    {"id": 1, "problem": "P2023", "solution": "s", "answer": "7", "url": "https://artofproblemsolving.com/wiki/index.php/2023_AIME_I_Problems/Problem_1"},
    {"id": 2, "problem": "Find $x$ with $\\{x\\}=\\frac12$.", "solution": "s", "answer": "204", "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_2"},
    {"id": 3, "problem": "P-none", "solution": "s", "answer": "1", "url": None},
    {"id": 4, "problem": "Second 2024", "solution": "s", "answer": "33", "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_II_Problems/Problem_3"},
]  # fmt: skip
MATH500 = [  # HuggingFaceH4/MATH-500 and qq8933/MATH500: problem, solution, answer, subject, level, unique_id
    {"problem": "What is $\\frac{2}{4}$?", "solution": "It is $\\boxed{\\frac{1}{2}}$.", "answer": "\\frac{1}{2}",
     "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
    {"problem": "How long is it?", "solution": "So $\\boxed{5\\text{ cm}}$.", "answer": "5\\text{ cm}",
     "subject": "Geometry", "level": 2, "unique_id": "test/geometry/2.json"},
]  # fmt: skip
GPQA = [  # Idavidrein/gpqa gpqa_diamond (a few of its many columns)
    {"Question": "Which is a noble gas?", "Correct Answer": "Neon", "Incorrect Answer 1": "Sodium",
     "Incorrect Answer 2": "Iron", "Incorrect Answer 3": "Carbon", "Subdomain": "Chemistry"},
    {"Question": " Which is a prime? ", "Correct Answer": "7", "Incorrect Answer 1": "8",
     "Incorrect Answer 2": "9", "Incorrect Answer 3": "10", "Subdomain": "Math"},
]  # fmt: skip


def _write(tmp_path, name, rows):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_skythought_keeps_the_2024_aime_rows_in_order(tmp_path):
    rows = load_benchmark_rows("skythought", "aime24", _write(tmp_path, "aimo", AIMO))
    assert [r["id"] for r in rows] == [2, 4]
    # lighteval's AIME set is already 2024 only: every row kept
    assert len(load_benchmark_rows("lighteval", "aime24", _write(tmp_path, "h4", AIMO))) == 4


def test_missing_columns_and_unknown_harness_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing columns \['url'\]"):
        load_benchmark_rows("skythought", "aime24", _write(tmp_path, "x", [{"problem": "p", "answer": "1"}]))
    with pytest.raises(ConfigError, match="harness: unknown harness 'helm'"):
        get_spec("helm", "aime24")
    with pytest.raises(ConfigError, match="task: harness skythought runs"):
        get_spec("skythought", "digits")


def test_hub_ids_and_sampling_defaults():
    assert get_spec("skythought", "aime24").dataset == ("AI-MO/aimo-validation-aime", None, "train")
    assert get_spec("skythought", "math500").dataset == ("qq8933/MATH500", None, "test")
    assert get_spec("lighteval", "gpqa_diamond").dataset == ("Idavidrein/gpqa", "gpqa_diamond", "train")
    sky = get_spec("skythought", "gpqa_diamond")
    assert (sky.temperature, sky.top_p, sky.max_new_tokens, sky.num_samples, sky.seed) == (
        0.0,
        1.0,
        32768,
        1,
        41,
    )
    assert [get_spec("lighteval", b).num_samples for b in ("aime24", "math500", "gpqa_diamond")] == [64, 4, 8]
    le = get_spec("lighteval", "math500")
    assert (le.temperature, le.top_p, le.max_new_tokens, le.system_prompt) == (0.6, 0.95, 32768, None)


def test_sky_t1_system_prompt_is_the_yaml_text():
    # model_configs.yaml is a double-quoted YAML scalar: its '\n\n' are real newlines.
    assert "separated with '\n\n'} <|end_of_thought|> Each step" in SKY_T1_SYSTEM_PROMPT
    assert SKY_T1_SYSTEM_PROMPT.replace("\n", "\\n") == STRATOS_SYSTEM_PROMPT
    assert get_spec("skythought", "aime24").system_prompt == SKY_T1_SYSTEM_PROMPT


# --------------------------------------------------------------------------- prompts and shuffles


def test_skythought_math_prompts_char_for_char():
    q = build_questions("skythought", "aime24", [AIMO[1]])[0]
    assert q == {"question": "Return your final response within \\boxed{}. Find $x$ with $\\{x\\}=\\frac12$.",
                 "solution": "204"}  # fmt: skip
    q = build_questions("skythought", "math500", MATH500)[1]
    assert q == {
        "question": "Return your final response within \\boxed{}. How long is it?",
        "solution": "5\\text{ cm}",
    }


def test_skythought_gpqa_prompt_and_seeded_shuffle():
    qs = build_questions("skythought", "gpqa_diamond", GPQA)
    # random.seed(41), then random.shuffle([correct, inc1, inc2, inc3]) row after row
    assert qs[0] == {
        "question": "Return your final response within \\boxed{} and only include the letter choice (A, B, C, or D) "
        "as your final response. Which is a noble gas?\nA) Iron, B) Neon, C) Sodium, D) Carbon",
        "solution": "B",
    }
    assert qs[1]["question"].endswith(" Which is a prime? \nA) 7, B) 9, C) 10, D) 8")
    assert qs[1]["solution"] == "A"
    assert build_questions("skythought", "gpqa_diamond", GPQA) == qs  # reproducible
    random.seed(41)  # the harness's own way: the global generator, seeded once
    answers = [
        GPQA[0][c]
        for c in ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
    ]
    random.shuffle(answers)
    assert qs[0]["question"].endswith(", ".join(f"{L}) {a}" for L, a in zip("ABCD", answers)))
    assert build_questions("skythought", "gpqa_diamond", GPQA, seed=0) != qs


def test_lighteval_prompts_char_for_char():
    q = build_questions("lighteval", "math500", MATH500)[0]
    assert q["question"] == (
        "Solve the following math problem efficiently and clearly.  The last line of your response should be of the "
        "following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct' (without quotes) "
        "where ANSWER is just the final number or expression that solves the problem. Think step by step before "
        "answering.\n\nWhat is $\\frac{2}{4}$?"
    )
    assert q["solution"] == "It is $\\boxed{\\frac{1}{2}}$."  # MATH-500: the whole solution
    assert build_questions("lighteval", "aime24", [AIMO[1]])[0]["solution"] == "204"
    qs = build_questions("lighteval", "gpqa_diamond", GPQA)
    # random.seed(1234); gold_index = random.randint(0, 3) per row: 3, then 0
    assert qs[0] == {
        "question": "Answer the following multiple choice question. The last line of your response should be of the "
        "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step "
        "before answering.\n\nWhich is a noble gas?\n\nA) Sodium\nB) Iron\nC) Carbon\nD) Neon",
        "solution": "D",
    }
    assert qs[1]["question"].endswith("\n\n Which is a prime? \n\nA) 7\nB) 8\nC) 9\nD) 10")  # not stripped
    assert qs[1]["solution"] == "A"


# --------------------------------------------------------------------------- checking, hard cases


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("so \\boxed{\\frac{\\sqrt{3}}{2}} done", "\\frac{\\sqrt{3}}{2}"),  # nested braces
        ("\\boxed{\\{1,2\\}}", "{1,2}"),
        ("first \\boxed{3} then \\boxed{4}", "4"),  # the last box
        ("\\boxed{5 \\text{ cm}}", "5"),  # a \text{} unit at the end is dropped
        ("\\boxed{\\text{five}}", "5"),  # number words (word2number)
        ("\\boxed{10\\%}", "10"),
        ("\\boxed{\\dfrac12}", "\\frac{1}{2}"),
        ("\\boxed 7$ end", "7"),
        ("The answer is 3/4.", "\\frac{3}{4}"),
        ("no box, numbers 12 and 3,456", "3456"),  # the last number
        ("<|begin_of_thought|> try \\boxed{{2}", "{2}"),  # unclosed: everything after
        ("", ""),
    ],
)
def test_skythought_extraction(text, want):
    assert skythought_extract_answer(text) == want


@pytest.mark.parametrize(
    ("harness", "benchmark", "gold", "completion", "want"),
    [
        # \boxed{\frac{1}{2}} vs 0.5, both ways
        ("skythought", "math500", "0.5", "thus \\boxed{\\frac{1}{2}}", True),
        ("skythought", "math500", "\\frac{1}{2}", "\\boxed{0.5}", True),
        ("lighteval", "math500", "$\\boxed{0.5}$", "Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$. I hope it is correct", True),
        ("lighteval", "aime24", "\\frac{1}{2}", "so $\\boxed{0.5}$", True),
        # nested braces
        ("skythought", "math500", "\\frac{\\sqrt3}{2}", "x \\boxed{\\frac{\\sqrt{3}}{2}}", True),
        ("lighteval", "math500", "$\\boxed{\\frac{\\sqrt{3}}{2}}$", "$\\boxed{\\frac{\\sqrt{3}}{2}}$", True),
        # \text{} units
        ("skythought", "math500", "5\\text{ cm}", "\\boxed{5}", True),
        ("lighteval", "math500", "$\\boxed{5\\text{ cm}}$", "$\\boxed{5}$", True),
        ("skythought", "aime24", "204", "\\boxed{205}", False),
        ("lighteval", "aime24", "204", "$\\boxed{205}$", False),
        # an unclosed thought: both harnesses read the truncated reasoning as it is
        ("skythought", "aime24", "7", "<|begin_of_thought|>\n\nmaybe \\boxed{7} ... wait", True),
        ("lighteval", "aime24", "7", "<|begin_of_thought|>\n\nmaybe $\\boxed{7}$ ... wait", True),
        # an empty answer
        ("skythought", "aime24", "0", "", False),
        ("lighteval", "aime24", "0", "", False),
        ("skythought", "gpqa_diamond", "A", "", False),
        ("lighteval", "gpqa_diamond", "A", "", False),
        # GPQA: SkyThought takes the last standalone letter anywhere, lighteval "Answer: X" first
        ("skythought", "gpqa_diamond", "C", "Not B. So \\boxed{C}", True),
        ("skythought", "gpqa_diamond", "C", "So \\boxed{C}. A final check agrees.", False),
        ("lighteval", "gpqa_diamond", "C", "Answer: C. A final check agrees.", True),
        # ...but a newline after the letter is no suffix there, and the bare-letter pattern
        # then takes the last capital A-D: lighteval v0.9.2 reads "A"
        ("lighteval", "gpqa_diamond", "C", "Answer: C\nA final check agrees.", False),
        ("lighteval", "gpqa_diamond", "C", "I rule out B.\nAnswer: C", True),
        ("lighteval", "gpqa_diamond", "C", "the answer is probably B", False),
    ],
)  # fmt: skip
def test_verdicts_on_hard_cases(harness, benchmark, gold, completion, want):
    assert harness_check(harness, benchmark, gold, completion) is want


def test_skythought_letter_and_normalisation_edges():
    assert skythought_choice("i think a is wrong; the answer is (d).") == "D"  # upper-cased first
    assert skythought_choice("none of them") == "none of them"  # no letter: the text itself
    assert strip_answer_string("x=3") == "3"
    assert strip_answer_string("3, 1, 2") == "1,2,3"  # integer lists are sorted
    assert strip_answer_string("90^\\circ") == "90"


def test_lighteval_letter_priorities():
    assert lighteval_letter("Final answer is B. I hope") == "B"
    assert lighteval_letter("**Answer:** C") == "C"
    assert lighteval_letter("A\nsomething") == "A"  # a letter starting the output
    assert lighteval_letter("xyz") is None


# --------------------------------------------------------------------------- metrics, budget, table


def test_skythought_pass_at_k_ladder():
    assert skythought_ks(64) == [64, 32, 16, 8, 4, 2, 1]
    assert skythought_ks(6) == [6, 4, 2, 1]
    assert skythought_ks(1) == [1]


def test_summary_accuracy_stderr_pass_at_k():
    s = summarise_harness([[True, False], [False, False], [True, True]], [2, 1])
    assert s["accuracy"] == pytest.approx(0.5)
    # per-question 0.5, 0, 1: sample std 0.5, over sqrt(3)
    assert s["stderr"] == pytest.approx(0.5 / 3**0.5)
    assert s["pass_at_k"] == {"2": pytest.approx(2 / 3), "1": pytest.approx(0.5)}


def test_budget_is_capped_with_one_line_or_refused(caplog):
    with caplog.at_level(logging.WARNING, logger="rlt"):
        assert cap_budget(32768, 4096, 96) == 4000
    assert len(caplog.records) == 1 and "capped at 4000" in caplog.records[0].getMessage()
    assert cap_budget(32768, 131072, 96) == 32768
    assert cap_budget(32768, None, 96) == 32768
    with pytest.raises(ConfigError, match="max_new_tokens: the longest prompt"):
        cap_budget(10, 64, 64)

    class Cfg:
        max_position_embeddings = 4096

    class M:
        config = Cfg()

    assert model_context_length(M()) == 4096


class ChatTok:
    """A tokenizer stand-in whose chat template shows the messages."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return json.dumps(messages)


def test_run_harness_scores_and_one_table_for_two_models(tmp_path):
    qs = build_questions("lighteval", "gpqa_diamond", GPQA)  # solutions D, A
    seen = []

    def fake(prompts, seed):
        seen.extend(prompts)
        return ["Answer: D" if "noble" in p else "Answer: B" for p in prompts]

    summary, samples = run_harness(
        None, ChatTok(), "lighteval", "gpqa_diamond", qs, num_samples=2, temperature=0.6, top_p=0.95,
        max_new_tokens=16, system_prompt=None, seed=1234, batch_size=3, generate=fake, math_timeout=60,
    )  # fmt: skip
    assert json.loads(seen[0]) == [{"role": "user", "content": qs[0]["question"]}]  # no system turn
    assert [s["correct"] for s in samples] == [True, True, False, False]
    assert summary["accuracy"] == 0.5 and summary["num_samples"] == 2 and summary["pass_at_k"] == {"1": 0.5}
    for model in ("student-a", "student-b", "student-a"):
        rows = update_table(
            tmp_path / "table", table_row(model, summary, "huggingface/lighteval@v0.9.2", "abc1234")
        )
    assert [r["model"] for r in rows] == ["student-b", "student-a"]  # one row per model, replaced on a re-run
    md = (tmp_path / "table.md").read_text()
    assert (
        "| student-a | gpqa_diamond | lighteval (huggingface/lighteval@v0.9.2) | 2 | 0.6 | 0.95 | 16 | 50.0 ± 50.0 | 2 | abc1234 |"
        in md
    )
    assert md == markdown_table(json.loads((tmp_path / "table.json").read_text()))


def test_temperature_zero_means_one_sample(tmp_path):
    qs = build_questions("skythought", "math500", MATH500)
    summary, samples = run_harness(
        None, ChatTok(), "skythought", "math500", qs, num_samples=4, temperature=0.0, top_p=1.0,
        max_new_tokens=16, system_prompt=SKY_T1_SYSTEM_PROMPT, seed=41, generate=lambda p, s: ["\\boxed{0.5}"] * len(p),
        math_timeout=60,
    )  # fmt: skip
    assert summary["num_samples"] == 1 and [s["correct"] for s in samples] == [True, False]


def test_eval_cli_harness_writes_results_and_table(tiny_model_dir, tmp_path):
    data = _write(tmp_path, "math500", MATH500)
    out = tmp_path / "ev"
    assert cli(["eval", "--harness", "skythought", "--model", tiny_model_dir, "--task", "math500",
                "--dataset_name", data, "--max_new_tokens", "4", "--out", str(out), "--backend", "transformers",
                "--math_timeout", "60"]) == 0  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert (res["harness"], res["num_samples"], res["temperature"], res["seed"]) == ("skythought", 1, 0.0, 41)
    assert res["max_new_tokens"] == 4 and res["num_questions"] == 2
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2
    assert (
        "| math500 | skythought (NovaSky-AI/SkyThought@4bb8f3e) | 1 | 0.0 | 1.0 | 4 |"
        in (out / "table.md").read_text()
    )


def test_eval_cli_harness_budget_follows_the_commands_rule(tmp_path, capsys, caplog):
    """The harness's 32,768 tokens on a 1,500-token-context model (the Sky-T1 prompt alone is 1,331 character tokens): capped with one logged line; the
    same budget given on the command line: refused, naming the field (rlt.budgets' rule)."""
    import logging

    from rlt.models import save_tiny_model

    model = str(save_tiny_model(tmp_path / "short", size="nano", max_position_embeddings=1500))
    data = _write(tmp_path, "math500", MATH500)
    argv = ["eval", "--harness", "skythought", "--model", model, "--task", "math500", "--dataset_name", data,
            "--backend", "transformers", "--math_timeout", "60", "--out", str(tmp_path / "ev")]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="rlt"):
        assert cli(argv) == 0
    capped = [r.getMessage() for r in caplog.records if "capped at" in r.getMessage()]
    assert len(capped) == 1 and capped[0].startswith("rlt eval: max_new_tokens capped at ")
    room = int(capped[0].split("capped at ")[1].split()[0])
    assert (
        0 < room < 1500
        and json.loads((tmp_path / "ev" / "results.json").read_text())["max_new_tokens"] == room
    )
    capsys.readouterr()
    assert cli([*argv, "--max_new_tokens", "32768"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rlt eval: error: max_new_tokens: 32768 new tokens do not fit: ")
    assert err.endswith(f"set --max_new_tokens {room} or less")
