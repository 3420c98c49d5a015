"""The arguments of `rlt demo`: the full run by default, ``--quick`` for a smoke run."""

from __future__ import annotations

from dataclasses import dataclass

from rlt.config import option
from rlt.errors import ConfigError


@dataclass
class FindingsArguments:
    """Settings of the E5 and E6 stages (:mod:`rlt.demo.findings`), mixed into :class:`DemoArguments`."""

    findings: bool = option(
        False,
        "Also run E5 (cold-start student RL vs RL from scratch) and E6 (the digits teachers explaining "
        "Countdown zero-shot). 334 s more for three seeds on 2 cores (measured on a finished run).",
    )
    e5_rl_steps: int = option(40, "E5: student RL steps of each arm.")
    e6_questions: int = option(500, "E6: Countdown questions each teacher explains.")
    e6_distill_steps: int = option(300, "E6: steps of each Countdown student (batch 16).")
    e6_eval_questions: int = option(200, "E6: held-out Countdown questions.")
    cold_starts: bool = option(
        False,
        "E5 as the paper means it: the same student RL (correctness reward) after each cold start "
        "(the students of the RLT teacher's, the warm-up teacher's and no explanations), accuracy "
        "before and after. About 4 minutes more for three seeds on 2 shared cores (211 s of student RL per seed at the defaults; measured on a finished run).",
    )
    cold_start_rl_steps: int = option(120, "--cold_starts: student RL steps of every arm (8 questions x 8).")
    cold_start_learning_rate: float = option(
        1e-4,
        "--cold_starts: student RL learning rate (constant). Measured on seeds 0-2: at 3e-4 x 80 steps RL "
        "lowered the RLT cold start on every seed and raised none on every seed; at 1e-4 x 120 it raised "
        "the warm-up teacher's cold start on every seed.",
    )
    kl_work: bool = option(
        False,
        "The paper's KL ablation in miniature: a frozen student built for it (a stated answer persuades it, "
        "it would not write one itself, it follows correct steps imperfectly), the reward's parts by style "
        "under it (the check that gates the RL arms: a clean leak beats correct steps without the KL term and "
        "loses with it), then teacher RL against it with and without the KL term, traces, students. "
        "About 6 minutes more for three seeds on 2 cores (measured with 2 threads, seeds one after another: "
        "356 s, 112-125 s a seed; a second copy round for the starting teacher repeats two of its stages, 20 s "
        "with 2 threads).",
    )
    kl_work_student: str = option(
        "imperfect",
        "--kl_work: the frozen student of the check and the RL arms. `imperfect`: trained on from the run's "
        "student on traces of which --kl_work_stated_share state the answer after some of their steps and the rest "
        "have the steps' result as solution only --kl_work_follow of the time. `persuaded`: also trained on "
        "clean leaks (it writes them itself, so the KL term rewards them). `ordinary`: the run's student "
        "(correct steps already give it the solution with certainty, so a leak cannot earn more).",
    )
    kl_work_stated_share: float = option(
        0.5,
        "--kl_work, `imperfect` student: share of its traces that state the answer after the first k of their "
        "steps, k from 1 to all (`7+2=9; 9*3=7; answer 6`): the solution is there only in the stated answer, so "
        "it learns to copy one, but few of its traces open with one (--kl_work_stated_first), so a leak stays "
        "unnatural to it.",
    )
    kl_work_stated_first: float = option(
        0.1,
        "--kl_work, `imperfect` student: share of those stated answers that come before any step (k = 0: a "
        "clean leak, 5 percent of its traces at the defaults). Measured on seed 6 (the check's questions, no "
        "KL): with none, a clean leak gave it the solution at log-prob -0.51 against -0.12 after correct steps, "
        "and 300 more steps only reached -0.45; with 0.1, -0.001 against -0.15, and with the KL term a leak "
        "still earned far less (-2.35 against -0.04).",
    )
    kl_work_follow: float = option(
        0.7,
        "--kl_work, `imperfect` student: share of its other (steps-only) traces whose solution is the steps' "
        "result; the rest get a random other digit. Below 1, correct steps give it the solution less surely "
        "than a stated answer: the chosen imperfection.",
    )
    kl_work_leak_share: float = option(
        0.5, "--kl_work, `persuaded` student: share of clean `leak` traces in its data."
    )
    kl_work_steps: int = option(
        600,
        "--kl_work: steps training the study's student from the run's (batch 32). Measured on seed 3: after 300 "
        "a clean leak gave it the solution less surely than correct steps (log-prob -0.16 vs -0.15); after 600, "
        "-0.11 vs -0.13.",
    )
    kl_work_teacher_leak_share: float = option(
        0.5,
        "--kl_work: both RL arms start from one teacher: the run's teacher initialisation, taught to state the "
        "given answer (--kl_work_teacher_copy_steps), then warmed up on `steps` and this share of `leak` "
        "explanations, so there are leaks to drift to (the run's warm-up teacher writes about 1 percent); 0: "
        "the run's warm-up teacher.",
    )
    kl_work_teacher_steps: int = option(
        400,
        "--kl_work: warm-up steps of that starting teacher (batch 32, the run's warm-up learning rate). "
        "Measured on seed 2, 256 sampled explanations: after 200 steps (the run's warm-up) on 75 percent leaks it "
        "wrote 39 clean leaks and 177 `answer X` with a wrong X (it had not learned to copy the given "
        "solution); after 400 on 50 percent, 125 clean leaks and 3 with a wrong X.",
    )
    kl_work_teacher_copy_steps: int = option(
        200,
        "--kl_work: before that warm-up, steps on clean leaks only (batch 32, the warm-up learning rate) that "
        "teach the teacher initialisation to state the given answer; 0: none. Measured on seed 5, 256 sampled "
        "explanations: without them, 400 warm-up steps gave 14 clean leaks and 102 `answer X` with a wrong X. "
        "At learning rate 3e-3 they taught every seed to copy but cost some seeds their arithmetic (seed 10: 44 "
        "percent wrong steps; at 5e-4, 1 of 256); at 5e-4 seed 5 did not learn to copy (25 of 256).",
    )
    kl_work_teacher_copy_rounds: int = option(
        1,
        "--kl_work: where the starting teacher's check fails, rounds of copy steps at the pre-training learning "
        "rate (3e-3), each followed by the warm-up, until it passes. Measured on seed 5: a second round gave 119 "
        "clean leaks, 127 correct steps and 9 wrong of 256.",
    )
    kl_work_teacher_min_leak: float = option(
        0.25,
        "--kl_work: the starting teacher's check: its share of clean leaks among its explanations of the check's "
        "questions (sampled as in RL) must be at least this (a teacher that does not state the given answer has "
        "no leaks to drift to) ...",
    )
    kl_work_teacher_max_wrong: float = option(
        0.15,
        "--kl_work: ... and its share of wrong steps at most this: where its step attempts are often wrong, a "
        "leak beats the average attempt even with the KL term (seeds 3, 10, 11 at 26, 44, 18 percent wrong: "
        "their with-KL teachers leaked too). A seed runs the RL arms only where the check passes.",
    )
    kl_work_tolerance: float = option(
        -0.02,
        "--kl_work: leaking pays without the KL term when a clean leak's no-KL reward is at least correct "
        "steps' minus this (nats); negative: it must beat them by that much. With the KL term a leak must "
        "earn less than correct steps. A seed runs the RL arms only when both hold.",
    )


@dataclass
class DemoArguments(FindingsArguments):
    """Arguments of `rlt demo`. The defaults are the full run; ``--quick`` shrinks every stage."""

    out: str = option("demo_out", "Output directory (results.json, report.md, plots).")
    seeds: int = option(3, "Number of seeds (independent repetitions of everything).")
    quick: bool = option(False, "Few steps and one seed: a smoke run in ~2 minutes.")
    workers: int = option(3, "Seeds run in parallel in this many processes.")
    threads: int = option(
        0,
        "torch threads per worker; 0 = cores / workers. Another count reorders floating-point sums "
        "(a stand-in for another CPU): the verdicts should not change, the digits may.",
    )
    num_ops: int = option(3, "digits: operations per question.")
    modulus: int = option(10, "digits: modulus.")
    style_mix: str = option(
        "steps:0.25,leak:0.25,wrong:0.25,filler:0.25", "Warm-up explanation styles and their weights."
    )
    model_size: str = option("tiny", "Tiny model size (rlt.models.TINY_SIZES).")
    base_steps: int = option(600, "Base-model steps on single-operation questions (batch 32).")
    pretrain_steps: int = option(1000, "Student pre-training steps (batch 32).")
    pretrain_learning_rate: float = option(3e-3, "Student pre-training learning rate.")
    student_min_accuracy: float = option(
        0.95,
        "The pre-trained student trains on, in rounds, until it reaches this accuracy on 200 fresh "
        "questions: on some seeds' data order 1000 steps left it at 0.35-0.86 (arithmetic slips mid-chain), "
        "and the teachers, which start from it, inherited the slips.",
    )
    student_extra_steps: int = option(300, "Steps of each extra pre-training round.")
    student_extra_rounds: int = option(2, "At most this many extra rounds.")
    kl_ablation: bool = option(
        False,
        "Also train and distil an RLT teacher without the KL term (against the run's student, from its warm-up "
        "teacher, which writes few leaks). Off by default: about 3 minutes more. --kl_work is the study built for "
        "the KL term (reward parts of clean leaks, a leak-prone teacher).",
    )
    explain_steps: int = option(300, "Steps teaching the pre-trained model to explain in the teacher chat.")
    warmup_steps: int = option(200, "Teacher warm-up steps on mixed styles (batch 32).")
    warmup_learning_rate: float = option(5e-4, "Teacher warm-up learning rate.")
    rl_steps: int = option(80, "Teacher RL steps per arm.")
    rl_questions_per_step: int = option(8, "Questions per RL step.")
    num_generations: int = option(8, "Completions per question (GRPO group).")
    rl_learning_rate: float = option(3e-4, "Teacher RL learning rate.")
    distill_questions: int = option(1000, "Training questions each teacher explains.")
    distill_steps: int = option(
        800,
        "Steps of every distilled student (batch 32). At 600, students of the same traces (at least 90 "
        "percent correct) reached 0.41-0.91 depending on the data order alone; at 800, 0.83-0.99 over 15 "
        "trace sets.",
    )
    distill_learning_rate: float = option(6e-3, "Learning rate of every distilled student.")
    eval_questions: int = option(300, "Held-out evaluation questions.")

    def apply_quick(self) -> None:
        """The smoke run: one seed, a few steps per stage."""
        self.seeds = 1
        self.base_steps, self.pretrain_steps, self.explain_steps, self.warmup_steps = 60, 100, 20, 30
        self.rl_steps = 4
        self.distill_questions, self.distill_steps, self.eval_questions = 64, 60, 48
        self.e5_rl_steps, self.e6_questions, self.e6_distill_steps, self.e6_eval_questions = 2, 32, 10, 16
        self.student_extra_steps = 10
        self.cold_start_rl_steps, self.kl_work_steps, self.kl_work_teacher_steps = 2, 10, 30
        self.kl_work_teacher_copy_steps = 10

    def validate(self) -> None:
        """Check the settings before any work: ConfigError naming the field."""
        self.mix()
        if self.kl_work_student not in ("imperfect", "persuaded", "ordinary"):
            raise ConfigError(
                f"kl_work_student: {self.kl_work_student!r}; expected imperfect, persuaded or ordinary"
            )
        for name in (
            "kl_work_stated_share",
            "kl_work_stated_first",
            "kl_work_follow",
            "kl_work_leak_share",
            "kl_work_teacher_leak_share",
            "kl_work_teacher_min_leak",
            "kl_work_teacher_max_wrong",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: {getattr(self, name)}; expected a share between 0 and 1")

    def mix(self) -> dict[str, float]:
        """``style_mix`` as ``{style: weight}``; ConfigError naming the field for a bad entry."""
        out = {}
        for part in self.style_mix.split(","):
            name, _, weight = part.partition(":")
            try:
                out[name.strip()] = float(weight)
            except ValueError:
                raise ConfigError(f"style_mix: bad entry {part!r}; expected style:weight") from None
        return out
