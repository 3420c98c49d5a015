"""The RLT reward (spec §3): how well a frozen student follows the teacher's explanation.

Three modules, one per part: :mod:`rlt.rewards.rlt_config` (the settings, their parsing and
validation), :mod:`rlt.rewards.rlt_tokens` (the token arithmetic: KL, normalisation,
clipping, reductions) and this one, the reward object that places the models and calls
them (student and teacher forwards, correctness rollouts, the TRL entry point). Names of
the other two stay importable from here. Together they are spec §3:

1. The student sequence is ``prefix_ids | explanation ids | suffix_ids``
   (:func:`rlt.formats.student_segments`), so the explanation positions ``E`` and the
   solution positions ``A`` are known by construction. Teacher and student must share
   a vocabulary; :class:`RLTReward` checks that once, at construction.
2. One student forward pass gives ``ℓ_S(t) = log_softmax(z_S(t)/τ_S)[x_t]`` at every
   ``t ∈ E ∪ A``. One teacher forward over its own prompt + the explanation (or the
   log-probs the trainer already has) gives ``ℓ_T(t) = log_softmax(z_T(t)/τ_T)[x_t]``
   for ``t ∈ E``. Only the model *body* runs over the whole sequence; the LM head is
   applied chunk by chunk to the needed positions (:func:`chunked_token_logprobs`), so
   ``[tokens × vocab]`` logits never exist at once.
3. ``r_SS = Σ a_i · reduce_i(ℓ_S over A)`` with reductions ``mean``/``min``;
   ``k(t) = ℓ_T(t) − ℓ_S(t)`` on ``E``; ``r_KL = Σ b_j · reduce_j(k over E)`` with
   ``mean``/``max``; ``r = r_SS − r_KL + p``.
4. ``p = format_penalty`` when the explanation has no close tag, is empty, or a term's
   token set is empty. An empty set never yields NaN: its statistics take the value
   ``W = empty_term_value`` (default 1, the released code's ``nan_to_num``): every
   solution statistic is ``−W`` and every KL statistic is ``+W``. A larger ``W`` (e.g.
   ``log V`` ≈ 11.9 at Qwen's vocabulary: −37 for an empty explanation) would make one
   empty completion an outlier that shrinks the normalised advantage of every other
   completion in its GRPO group; with ``W = 1`` and the penalty it is still below any
   ordinary completion.

The student sequence's explanation tokens are, by default (``student_tokenization =
"segments"``), the teacher's sampled ids, so ``k(t)`` compares the two models on the
same tokens. ``"canonical"`` re-tokenises the whole student text as the released code
does; ``ℓ_T`` is then recomputed on those tokens (docs/spec.md, "Which tokens are scored").

Without a teacher (``rlt score`` on traces whose teacher is unknown) the KL terms are
``None`` and ``r = r_SS + p``.

The released code's other options (``TeacherKLBasedReward``), all off by default so the
paper's reward is unchanged: ``use_schulman_kl`` (``k = Δ − 1 + exp(−Δ)``), per-token
``normalize_log_prob``/``normalize_kl`` (``exp``, ``exp_norm``) and ``clip_log_prob``/``clip_kl``
applied before the reductions, ``include_teacher_entropy=False`` (the KL term is ``−ℓ_S``),
and ``correctness_bonus`` (the frozen student answers after the explanation; coef × the
fraction right is added to ``r``; optional and expensive).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from rlt.errors import RewardError
from rlt.formats import (
    StudentSegments,
    as_text,
    extract_explanation,
    get_tags,
    split_completion_ids,
    student_segments,
    teacher_rl_prompt,
)
from rlt.rewards.logprobs import body_and_head, model_device, span_logprobs

# The settings and the token arithmetic live in their own modules; their names stay importable
# from here (``from rlt.rewards.rlt import RLTRewardConfig, kl_tokens, ...``).
from rlt.rewards.rlt_config import (  # noqa: F401 - re-exported
    KL_REDUCTIONS,
    NORMALIZE_FNS,
    SOLUTION_REDUCTIONS,
    STUDENT_TOKENIZATIONS,
    RLTRewardConfig,
    parse_coefs,
)
from rlt.rewards.rlt_tokens import (  # noqa: F401 - re-exported
    _reduce,
    _weighted,
    kl_tokens,
    normalize_tokens,
    solution_tokens,
)

# --------------------------------------------------------------------------- the reward


class RLTReward:
    """The RLT reward as a TRL reward function (spec §3), with every component per sample.

    The student is frozen (eval mode, no gradients) and is only ever run under
    ``torch.no_grad()``. The teacher's log-probs come from, in order: the argument
    ``teacher_logprobs`` / the attribute ``pending_teacher_logprobs`` (a trainer that
    already has them sets it before the call; it is consumed), else one no-grad forward
    of ``self.teacher`` (a trainer sets ``reward.teacher = unwrapped policy``: the policy
    itself, no second copy), else none: the KL terms are ``None`` and left out of ``r``.
    This object is deliberately not an ``nn.Module``: TRL would treat it as a
    sequence-classification reward model.
    """

    __name__ = "rlt"

    def __init__(
        self,
        student: nn.Module,
        student_tokenizer: PreTrainedTokenizerBase,
        config: RLTRewardConfig | None = None,
        teacher: nn.Module | None = None,
        teacher_tokenizer: PreTrainedTokenizerBase | None = None,
        task: str | None = None,
    ) -> None:
        self.config = config or RLTRewardConfig()
        # How ``correctness_bonus`` checks the student's answers (rlt.verify.task_checker; None = math).
        self.task = task
        self._checker: Callable[[dict[str, Any], str], tuple[bool, str]] | None = None
        self._verifier: Any = None
        self.tags = get_tags(self.config.tag_format, self.config.chat_format)
        self.student = student
        self.student.eval()
        self.student.requires_grad_(False)
        self.student_tokenizer = student_tokenizer
        self.teacher = teacher
        self.teacher_tokenizer = teacher_tokenizer
        if teacher_tokenizer is not None:
            from rlt.loading import vocab_difference

            diff = vocab_difference(teacher_tokenizer, student_tokenizer, self.tags.all_tags)
            if diff is not None:
                raise RewardError(
                    "teacher and student must share a vocabulary (the reward scores the teacher's token ids "
                    f"with the student): {diff}"
                )
        body_and_head(student, "student")
        vocab = student.get_output_embeddings().weight.shape[0]
        self.empty_value = (
            float(self.config.empty_term_value)
            if self.config.empty_term_value is not None
            else math.log(vocab)
        )
        self.pending_teacher_logprobs: list[torch.Tensor] | None = None
        # ℓ_T from the trainer's own forward (``fn(prompt_ids, explanation_ids) -> [tensor]``), used
        # instead of ``teacher`` where reading the policy's weights directly is wrong (ZeRO-3, FSDP).
        self.teacher_logprobs_fn: Callable[[list[list[int]], list[list[int]]], list[torch.Tensor]] | None = (
            None
        )
        self.last_components: list[dict[str, Any]] = []
        self._segments: dict[tuple[str, str, str | None], StudentSegments] = {}
        if self.config.offload_student:
            self.student.to("cpu")

    # ----------------------------------------------------------------- building blocks

    def segments(self, question: str, solution: str, system: str | None = None) -> StudentSegments:
        """Student-sequence segments for one (question, solution), cached (GRPO repeats them).

        The student's system prompt: ``config.student_system_prompt`` when set, else ``system``
        (the data set's ``system`` column), else the chat format's default.
        """
        if self.config.student_system_prompt is not None:
            system = self.config.student_system_prompt
        key = (question, solution, system)
        seg = self._segments.get(key)
        if seg is None:
            if len(self._segments) > 4096:
                self._segments.clear()
            seg = student_segments(self.student_tokenizer, question, solution, self.tags, system)
            self._segments[key] = seg
        return seg

    def _pad_id(self, tokenizer: PreTrainedTokenizerBase) -> int:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return int(pad or 0)

    def _raise_non_finite(self, who: str, index: int, questions: Sequence[str]) -> None:
        q = str(questions[index])
        prefix = q[:60] + ("…" if len(q) > 60 else "")
        raise RewardError(f"non-finite {who} logits (NaN or inf) for sample {index} (question {prefix!r})")

    def teacher_prompt_ids(self, questions: Sequence[str], solutions: Sequence[str]) -> list[list[int]]:
        """The teacher's RL prompt (up to ``EXPL_OPEN``) for each sample, as token ids."""
        tok = self.teacher_tokenizer or self.student_tokenizer
        return [
            tok(
                teacher_rl_prompt(tok, q, s, self.tags, self.config.teacher_system_prompt),
                add_special_tokens=False,
            )["input_ids"]
            for q, s in zip(questions, solutions)
        ]

    def compute_teacher_logprobs(
        self,
        teacher_prompt_ids: Sequence[Sequence[int]],
        explanation_ids: Sequence[Sequence[int]],
        questions: Sequence[str] | None = None,
    ) -> list[torch.Tensor]:
        """``ℓ_T`` of each explanation token: one no-grad teacher forward over prompt + explanation.

        Returns one fp32 CPU tensor ``[len(explanation_ids[i])]`` per sample.
        """
        with torch.no_grad():  # a context, not a decorator: mutmut skips decorated functions
            if self.teacher is None:
                raise RewardError("no teacher model is set; pass teacher_logprobs or set reward.teacher")
            teacher = self.teacher
            was_training = teacher.training
            teacher.eval()  # dropout off: ℓ_T is the sampling distribution
            try:
                seqs = [[*p, *e] for p, e in zip(teacher_prompt_ids, explanation_ids)]
                spans = [[(len(p), len(p) + len(e))] for p, e in zip(teacher_prompt_ids, explanation_ids)]
                out = span_logprobs(
                    teacher,
                    seqs,
                    spans,
                    self.config.teacher_temperature,
                    self.config.chunk_size,
                    self.config.padding_side,
                    self._pad_id(self.teacher_tokenizer or self.student_tokenizer),
                    self.config.micro_batch_size,
                )
            finally:
                teacher.train(was_training)
            result = [lps[0] for lps in out]
            for i, lp in enumerate(result):
                if not bool(torch.isfinite(lp).all()):
                    self._raise_non_finite("teacher", i, questions or [""] * len(result))
            return result

    # ----------------------------------------------------------------- the reward

    def _student_sequences(
        self, segs: Sequence[StudentSegments], explanation_ids: Sequence[list[int]]
    ) -> tuple[list[list[int]], list[list[tuple[int, int]]], list[list[int]]]:
        """Student sequences, their ``[E, A]`` spans and the explanation ids scored in them."""
        seqs, spans, scored = [], [], []
        for seg, e in zip(segs, explanation_ids):
            if self.config.student_tokenization == "canonical":
                text = self.student_tokenizer.decode(e, skip_special_tokens=False)
                ids, e_slice, a_slice = seg.build_canonical(self.student_tokenizer, text)
            else:
                ids, e_slice, a_slice = seg.build(e)
            seqs.append(ids)
            spans.append([(e_slice.start, e_slice.stop), (a_slice.start, a_slice.stop)])
            scored.append(ids[e_slice])
        return seqs, spans, scored

    def _teacher_logprobs(
        self,
        questions: Sequence[str],
        solutions: Sequence[str],
        scored: Sequence[list[int]],
        given: Sequence[torch.Tensor | None] | None,
        teacher_prompt_ids: Sequence[Sequence[int]] | None,
    ) -> list[torch.Tensor] | None:
        """``ℓ_T`` of every scored explanation token: given where it covers them, else computed.

        ``given[i]`` covers sample ``i`` when it has at least ``len(scored[i])`` entries (extra
        trailing entries, the close tag and padding, are ignored). ``None`` entries, and
        every sample when nothing is given, are computed by ``teacher_logprobs_fn`` or one
        no-grad forward of ``teacher``; with neither there is no ``ℓ_T`` (None).
        """
        n = len(scored)
        out: list[torch.Tensor | None] = [None] * n
        if given is not None:
            if len(given) != n:
                raise RewardError(f"got {len(given)} teacher log-prob tensors for {n} samples")
            for i, lp in enumerate(given):
                if lp is None:
                    continue
                lp = torch.as_tensor(lp).detach().float().reshape(-1).cpu()
                if lp.numel() < len(scored[i]):
                    raise RewardError(
                        f"sample {i}: {lp.numel()} teacher log-probs for {len(scored[i])} explanation tokens"
                    )
                lp = lp[: len(scored[i])]
                if not bool(torch.isfinite(lp).all()):
                    self._raise_non_finite("teacher", i, questions)
                out[i] = lp
        todo = [i for i in range(n) if out[i] is None]
        if not todo:
            return out  # type: ignore[return-value]
        if self.teacher_logprobs_fn is None and self.teacher is None:
            if given is None:
                return None
            raise RewardError(
                f"samples {todo[:5]} need the teacher's log-probs of re-tokenised explanation tokens, "
                "but no teacher model or teacher_logprobs_fn is set"
            )
        prompts = (
            [list(teacher_prompt_ids[i]) for i in todo]
            if teacher_prompt_ids is not None
            else self.teacher_prompt_ids([questions[i] for i in todo], [solutions[i] for i in todo])
        )
        expl = [scored[i] for i in todo]
        if self.teacher_logprobs_fn is not None:
            computed = [
                lp.float().cpu()[: len(e)] for lp, e in zip(self.teacher_logprobs_fn(prompts, expl), expl)
            ]
        else:
            computed = self.compute_teacher_logprobs(prompts, expl, [questions[i] for i in todo])
        for i, lp in zip(todo, computed):
            if not bool(torch.isfinite(lp).all()):
                self._raise_non_finite("teacher", i, questions)
            out[i] = lp
        return out  # type: ignore[return-value]

    def score_ids(
        self,
        questions: Sequence[str],
        solutions: Sequence[str],
        explanation_ids: Sequence[Sequence[int]],
        closed: Sequence[bool],
        teacher_logprobs: Sequence[torch.Tensor | None] | None = None,
        teacher_prompt_ids: Sequence[Sequence[int]] | None = None,
        systems: Sequence[str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """The reward and its components for each sample.

        Args:
            questions, solutions: ``B`` strings (solutions with or without their tags).
            explanation_ids: ``B`` token-id lists, the teacher's (without ``EXPL_CLOSE``).
            closed: whether each completion had ``EXPL_CLOSE``.
            teacher_logprobs: optional ``B`` 1-D tensors ``[≥ len(explanation_ids[i])]`` of
                ``ℓ_T`` (at ``τ_T``), or None for a sample whose ``ℓ_T`` is to be computed.
            teacher_prompt_ids: the teacher's prompt ids, when ``ℓ_T`` is computed here.
            systems: the student's system prompt per sample (a data set's ``system`` column).

        Returns:
            One dict per sample: ``reward``, ``solution_logprob_mean``, ``solution_logprob_min``,
            ``kl_mean``, ``kl_max`` (None without teacher log-probs), ``penalty``,
            ``num_explanation_tokens``, ``num_solution_tokens``, ``closed``.
        """
        with torch.no_grad():  # a context, not a decorator: mutmut skips decorated functions
            cfg = self.config
            n = len(questions)
            if not (len(solutions) == len(explanation_ids) == len(closed) == n):
                raise RewardError(
                    f"batch fields differ in length: {n} questions, {len(solutions)} solutions, "
                    f"{len(explanation_ids)} explanations, {len(closed)} closed flags"
                )
            if systems is not None and len(systems) != n:
                raise RewardError(f"got {len(systems)} system prompts for {n} samples")
            explanation_ids = [[int(t) for t in e] for e in explanation_ids]
            # An id outside the embedding table is otherwise a bare IndexError deep in the forward.
            rows = self.student.get_input_embeddings().num_embeddings
            for i, e in enumerate(explanation_ids):
                bad = [t for t in e if not 0 <= t < rows]
                if bad:
                    raise RewardError(
                        f"sample {i}: explanation token id(s) {bad[:5]} outside the student's vocabulary "
                        f"(0..{rows - 1}); were the ids produced by another tokenizer?"
                    )

            segs = [
                self.segments(str(q), str(s), None if systems is None else systems[i])
                for i, (q, s) in enumerate(zip(questions, solutions))
            ]
            seqs, spans, scored = self._student_sequences(segs, explanation_ids)
            # Given log-probs belong to the given ids; re-tokenised ones (canonical) need their own.
            given = None
            if teacher_logprobs is not None:
                if len(teacher_logprobs) != n:
                    raise RewardError(f"got {len(teacher_logprobs)} teacher log-prob tensors for {n} samples")
                given = [
                    lp if scored[i] == explanation_ids[i] else None for i, lp in enumerate(teacher_logprobs)
                ]
            # ℓ_T: given, or one teacher forward; computed even when every KL coefficient is 0 (the
            # ablation), so the KL is still logged. Not needed when the KL term leaves it out.
            lt = (
                self._teacher_logprobs(questions, solutions, scored, given, teacher_prompt_ids)
                if cfg.include_teacher_entropy
                else None
            )
            has_kl = lt is not None or not cfg.include_teacher_entropy

            # ℓ_S over E and A: one student forward for the whole batch.
            ls = self._student_span_logprobs(seqs, spans)

            results = []
            w = self.empty_value
            for i in range(n):
                ls_e, ls_a = ls[i]
                if not (bool(torch.isfinite(ls_e).all()) and bool(torch.isfinite(ls_a).all())):
                    self._raise_non_finite("student", i, questions)
                empty_e, empty_a = ls_e.numel() == 0, ls_a.numel() == 0
                # Per-token transforms first (identity by default), then the reductions, as the release.
                sol_t = solution_tokens(ls_a, cfg)
                sol = (
                    {"mean": -w, "min": -w}
                    if empty_a
                    else {r: _reduce(sol_t, r) for r in SOLUTION_REDUCTIONS}
                )
                r_ss = _weighted(sol, cfg.solution_coefs)
                kl: dict[str, float] | None = None
                if has_kl:
                    k = kl_tokens(None if lt is None else lt[i], ls_e, cfg)
                    kl = {"mean": w, "max": w} if empty_e else {r: _reduce(k, r) for r in KL_REDUCTIONS}
                r_kl = _weighted(kl, cfg.kl_coefs) if kl is not None else 0.0
                penalty = float(cfg.format_penalty) if (not closed[i] or empty_e or empty_a) else 0.0
                results.append(
                    {
                        "reward": r_ss - r_kl + penalty,
                        "solution_logprob_mean": sol["mean"],
                        "solution_logprob_min": sol["min"],
                        "kl_mean": None if kl is None else kl["mean"],
                        "kl_max": None if kl is None else kl["max"],
                        "penalty": penalty,
                        "num_explanation_tokens": int(ls_e.numel()),
                        "num_solution_tokens": int(ls_a.numel()),
                        "closed": bool(closed[i]),
                    }
                )
            if cfg.correctness_bonus != 0:
                fracs = self.student_correct_fractions(questions, solutions, segs, scored)
                for res, frac in zip(results, fracs):
                    bonus = float(cfg.correctness_bonus) * frac
                    res["student_correct_frac"] = frac
                    res["correctness_bonus"] = bonus
                    res["reward"] += bonus
            return results

    # ----------------------------------------------------------------- correctness bonus

    def _check(self, row: dict[str, Any], answer: str) -> tuple[bool, str]:
        if self._checker is None:
            from rlt.verify import task_checker

            self._checker, self._verifier = task_checker(self.task or "math")
        return self._checker(row, answer)

    def close(self) -> None:
        """Stop the math-verify worker that ``correctness_bonus`` may have started (idempotent)."""
        if self._verifier is not None:
            self._verifier.close()

    def student_correct_fractions(
        self,
        questions: Sequence[str],
        solutions: Sequence[str],
        segs: Sequence[StudentSegments],
        explanation_ids: Sequence[list[int]],
    ) -> list[float]:
        """For each sample, the fraction of ``correctness_rollouts`` student answers that are right.

        The frozen student continues its own prompt + the thought (``THINK_OPEN``, the
        explanation, ``THINK_CLOSE``) at ``τ_S``; the answer between the solution tags is checked
        by the task's checker (:func:`rlt.verify.task_checker`, as ``rlt eval``). Sampling is
        seeded by the prompt text, so a sample's fraction does not depend on its batch.
        """
        with torch.no_grad():  # a context, not a decorator: mutmut skips decorated functions
            from rlt.evaluate import decode_answer
            from rlt.formats import extract_solution, strip_solution_tags
            from rlt.generation import SamplingSettings, generate_transformers

            cfg = self.config
            tok = self.student_tokenizer
            settings = SamplingSettings(
                temperature=cfg.student_temperature, max_new_tokens=cfg.correctness_max_new_tokens
            )
            out = []
            with self._student_placed():
                for q, s, seg, e in zip(questions, solutions, segs, explanation_ids):
                    text = tok.decode(e, skip_special_tokens=False) if e else ""
                    prompt = f"{seg.prefix}{text}{self.tags.think_close}\n\n"
                    seed = zlib.crc32(prompt.encode()) % (2**31)
                    ids = generate_transformers(
                        self.student, tok, [prompt] * cfg.correctness_rollouts, settings, seed
                    )
                    row = {"question": str(q), "solution": strip_solution_tags(str(s), self.tags)}
                    right = 0
                    for comp in ids:
                        answer = extract_solution(decode_answer(tok, comp, self.tags), self.tags)
                        right += answer is not None and bool(self._check(row, answer)[0])
                    out.append(right / cfg.correctness_rollouts)
            return out

    @contextlib.contextmanager
    def _student_placed(self) -> Iterator[None]:
        """The student on its compute device for the duration (with ``offload_student``, back to CPU after)."""
        target = self._student_device()
        moved = self.config.offload_student and model_device(self.student) != target
        if moved:
            self.student.to(target)
        try:
            yield
        finally:
            if moved:
                self.student.to("cpu")

    def _student_span_logprobs(
        self, seqs: list[list[int]], spans: list[list[tuple[int, int]]]
    ) -> list[list[torch.Tensor]]:
        with self._student_placed():
            return span_logprobs(
                self.student,
                seqs,
                spans,
                self.config.student_temperature,
                self.config.chunk_size,
                self.config.padding_side,
                self._pad_id(self.student_tokenizer),
                self.config.micro_batch_size,
            )

    def _student_device(self) -> torch.device:
        if self.config.offload_student and self.teacher is not None:
            return model_device(self.teacher)
        return model_device(self.student)

    def score_texts(
        self,
        questions: Sequence[str],
        solutions: Sequence[str],
        explanations: Sequence[str],
        closed: Sequence[bool] | None = None,
        systems: Sequence[str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Score explanation *texts* (``rlt score``): they are tokenised with the student tokenizer.

        ``closed=None`` treats every explanation as closed (a stored trace is complete).
        """
        ids = [
            self.student_tokenizer(e, add_special_tokens=False)["input_ids"] if e else []
            for e in explanations
        ]
        flags = [True] * len(ids) if closed is None else list(closed)
        return self.score_ids(questions, solutions, ids, flags, systems=systems)

    # ----------------------------------------------------------------- TRL reward function

    def _prompt_ids(self, prompts: Sequence[Any]) -> list[list[int]]:
        """Teacher prompt ids from TRL's prompts, tokenised the way GRPOTrainer does."""
        tok = self.teacher_tokenizer or self.student_tokenizer
        out = []
        for p in prompts:
            if isinstance(p, str):
                out.append(list(tok(text=p)["input_ids"]))
            else:
                cont = bool(p) and p[-1].get("role") == "assistant"
                out.append(
                    list(
                        tok.apply_chat_template(
                            p,
                            tokenize=True,
                            add_generation_prompt=not cont,
                            continue_final_message=cont,
                            return_dict=True,
                        )["input_ids"]
                    )
                )
        return out

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        question: Sequence[str] | None = None,
        solution: Sequence[str] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """TRL's reward-function call: one float per completion.

        ``completion_ids`` (as sampled) are split at the close tag; without them the
        completion texts are tokenised. ``question``/``solution`` are data-set columns.
        With ``log_metric`` (TRL ≥ 1.16), the batch mean of every component is logged
        under ``rlt/…``; ``self.last_components`` keeps the per-sample dicts.
        """
        if completions is None and completion_ids is None:
            raise RewardError("the RLT reward needs completions or completion_ids")
        n = len(completion_ids) if completion_ids is not None else len(completions or [])
        if question is None or solution is None:
            raise RewardError(
                "the RLT reward needs the data-set columns 'question' and 'solution' "
                f"(got columns: {sorted(k for k in kwargs if k not in ('trainer_state', 'log_extra'))})"
            )
        if len(question) != n or len(solution) != n:
            raise RewardError(f"{n} completions but {len(question)} questions and {len(solution)} solutions")
        split_tok = self.teacher_tokenizer or self.student_tokenizer
        pending, self.pending_teacher_logprobs = self.pending_teacher_logprobs, None
        if completion_ids is not None:
            splits = [split_completion_ids(list(ids), split_tok, self.tags) for ids in completion_ids]
            expl = [sp.ids for sp in splits]
            closed = [sp.closed for sp in splits]
            if pending is not None:
                # Log-probs of sampled tokens fit only where the scored ids are the sampled ones.
                pending = [lp if sp.sampled == len(sp.ids) else None for lp, sp in zip(pending, splits)]
        else:
            expl, closed = [], []
            for c in completions or []:
                ex = extract_explanation(as_text(c), self.tags)
                expl.append(
                    self.student_tokenizer(ex.text, add_special_tokens=False)["input_ids"] if ex.text else []
                )
                closed.append(ex.closed)

        prompt_ids = None
        needs_teacher = pending is None or any(lp is None for lp in pending)
        has_teacher = self.teacher is not None or self.teacher_logprobs_fn is not None
        if needs_teacher and has_teacher and prompts is not None:
            prompt_ids = self._prompt_ids(prompts)
        systems = kwargs.get("system")
        if systems is not None and len(systems) != n:
            systems = None
        comps = self.score_ids(question, solution, expl, closed, pending, prompt_ids, systems)
        self.last_components = comps
        if log_metric is not None:
            for name, value in summarize(comps).items():
                log_metric(f"rlt/{name}", value)
        return [float(c["reward"]) for c in comps]


def summarize(components: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Batch means of the reward components (what is logged), skipping ``None`` values."""
    if not components:
        return {}
    out: dict[str, float] = {}
    keys = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max", "penalty")
    for key in (*keys, "student_correct_frac", "correctness_bonus"):
        vals = [c[key] for c in components if c.get(key) is not None]
        if vals:
            out[key] = sum(vals) / len(vals)
    n = len(components)
    out["missing_close_tag_frac"] = sum(1 for c in components if not c["closed"]) / n
    out["empty_explanation_frac"] = sum(1 for c in components if c["num_explanation_tokens"] == 0) / n
    out["explanation_tokens"] = sum(c["num_explanation_tokens"] for c in components) / n
    out["solution_tokens"] = sum(c["num_solution_tokens"] for c in components) / n
    return out
