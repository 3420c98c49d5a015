"""``rlt train``: GRPO with TRL's ``GRPOTrainer``, for a teacher (RLT reward) or a student.

Two modes (``policy``):

- ``teacher`` (spec §4, "RL"): the data set is the teacher's RL view (prompt = teacher chat
  up to ``EXPL_OPEN``, plus ``question``/``solution`` columns) and the reward is ``rlt``
  (:class:`rlt.rewards.RLTReward`) with a frozen student loaded once here.
- ``student``: RL of a student from its own prompt (``rlt.formats.student_prompt``), e.g. a
  cold start from a distilled checkpoint, with ``correctness`` and ``format`` rewards.

Where the teacher's log-probs ``ℓ_T`` (its own explanation tokens at the generation
temperature) come from, ``rlt_teacher_logprobs``:

- TRL already computes the policy's per-token log-probs of the completions under
  ``no_grad`` *before* the rewards when generation and optimisation are misaligned
  (``gradient_accumulation_steps % (steps_per_generation × num_iterations) != 0``) or with
  vLLM importance-sampling correction (trl 1.16 ``grpo_trainer.py``
  ``_generate_and_score_completions``, the ``old_per_token_logps`` block). ``auto`` reuses
  them then: no extra forward.
- Otherwise (the usual aligned setting, where TRL sets them to None) one no-grad forward of
  the *policy itself* is needed; there is never a second copy of the teacher.
  ``reward``: the reward's chunked forward of ``trainer.model`` (``reward.teacher``; eval
  mode, gradient checkpointing off, restored afterwards; a peft model is used as-is, with
  its adapters, since it is the policy). ``trainer``: TRL's own
  ``_get_per_token_logps_and_entropies`` on ``trainer.model`` (the wrapped forward, so
  sharded parameters are gathered as in training). ``auto`` picks ``trainer`` under
  DeepSpeed ZeRO-3, FSDP or ``cast_lm_head_to_fp32`` (where reading the LM head's weight
  directly is wrong) and ``reward`` elsewhere.

Example::

    rlt train --config recipes/tiny/teacher_rlt.yaml --max_steps 2 --output_dir runs/rlt
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer, ModelConfig, get_peft_config

from rlt.budgets import fit_train_budget
from rlt.config import (
    clashing,
    model_init_kwargs,
    parse,
    rebuild,
    validate_model_config,
    without_fields,
    world_size,
)
from rlt.errors import ConfigError, DataError
from rlt.loading import check_vocabularies, load_student, load_tokenizer_for
from rlt.rewards import RLTReward, RLTRewardConfig, check_reward_names, make_reward_funcs

logger = logging.getLogger(__name__)

TEACHER_LOGPROB_SOURCES = ("auto", "reward", "trainer")
POLICIES = ("teacher", "student")
STARTING_RECIPE = "recipes/tiny/teacher_rlt.yaml"  # named when `rlt train` has no model


# --------------------------------------------------------------------------- arguments


@dataclass
class RLTGRPOConfig(GRPOConfig):
    """``trl.GRPOConfig`` that checks the generation batch first, with messages naming the fields.

    TRL's own check (``grpo_config.py`` ``__post_init__``) says only
    ``generation_batch_size (x) must be divisible by num_generations (y)``; the batch is
    derived from fields the user set, so this says which, before anything loads.
    """

    def __post_init__(self) -> None:
        check_generation_batch(self, world_size())
        super().__post_init__()


def check_generation_batch(args: Any, num_processes: int) -> int:
    """The generation batch TRL will use (completions per generation round); ConfigError if invalid.

    As TRL 1.16 computes it: ``per_device_train_batch_size × processes × steps_per_generation``,
    where ``steps_per_generation`` defaults to ``gradient_accumulation_steps``; or
    ``generation_batch_size`` when given (then divisible by the global batch).
    """
    pdb = args.per_device_train_batch_size
    g = args.num_generations
    if g is None or g < 2:
        raise ConfigError(f"num_generations: GRPO needs at least 2 completions per prompt, got {g}")
    if args.generation_batch_size is not None and args.steps_per_generation is not None:
        raise ConfigError("generation_batch_size, steps_per_generation: set at most one of them")
    if args.generation_batch_size is not None:
        gbs = args.generation_batch_size
        if gbs % (pdb * num_processes) != 0:
            raise ConfigError(
                f"generation_batch_size: {gbs} must be divisible by per_device_train_batch_size ({pdb}) × "
                f"processes ({num_processes}) = {pdb * num_processes}"
            )
        how = f"generation_batch_size = {gbs}"
    else:
        spg = args.steps_per_generation or args.gradient_accumulation_steps
        src = "steps_per_generation" if args.steps_per_generation else "gradient_accumulation_steps"
        gbs = pdb * num_processes * spg
        how = (
            f"per_device_train_batch_size ({pdb}) × processes ({num_processes}) × {src} ({spg}) = {gbs} "
            "completions per generation"
        )
    if gbs % g != 0:
        raise ConfigError(
            f"per_device_train_batch_size: {how}, which is not divisible by num_generations ({g}); "
            "every prompt's group of completions must fit in one generation batch "
            "(change per_device_train_batch_size, gradient_accumulation_steps/steps_per_generation or num_generations)"
        )
    return gbs


@dataclass
class RLTTrainArguments:
    """RLT settings of ``rlt train`` (TRL's GRPO settings and the reward's settings have their own groups)."""

    policy: str = field(
        default="teacher",
        metadata={
            "help": "teacher: RL of a teacher on the teacher RL view (reward 'rlt'); student: RL of a student "
            "from its own prompt (rewards 'correctness', 'format')."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["rlt"],
        metadata={"help": "Reward functions by name: rlt, correctness, format (weights: reward_weights)."},
    )
    student_model_name_or_path: str | None = field(
        default=None, metadata={"help": "The frozen student of the 'rlt' reward (hub id or directory)."}
    )
    student_dtype: str = field(
        default="auto", metadata={"help": "Student weights dtype: auto, bfloat16, float16, float32."}
    )
    student_revision: str = field(default="main", metadata={"help": "Hub revision of the student."})
    max_prompt_length: int | None = field(
        default=None,
        metadata={
            "help": "Drop rows whose prompt exceeds this many tokens (GRPOConfig 1.16 has no prompt limit; "
            "cutting a teacher prompt would cut its solution). None = keep all."
        },
    )
    rlt_teacher_logprobs: str = field(
        default="auto",
        metadata={
            "help": "Source of the teacher's log-probs for the KL terms: auto, reward (the reward's chunked "
            "no-grad forward of the policy) or trainer (TRL's per-token log-prob forward of the policy). "
            "auto reuses TRL's old_per_token_logps whenever TRL computes them before the rewards."
        },
    )
    rlt_log_completions_steps: int = field(
        default=10,
        metadata={
            "help": "Every this many optimizer steps, append a sample of completions with their reward "
            "components to <output_dir>/completions.jsonl (0 = never)."
        },
    )
    rlt_log_completions_num: int = field(
        default=4, metadata={"help": "Completions per sample written to completions.jsonl."}
    )
    rlt_vllm_dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype of TRL's colocated vLLM engine (use_vllm): auto (vLLM's choice: bf16/fp16 for an fp32 "
            "checkpoint), bfloat16, float16 or float32 (rollouts from exactly the policy's fp32 weights)."
        },
    )
    rlt_per_rank_logs: bool = field(
        default=False,
        metadata={
            "help": "Each process appends every log it emits to <output_dir>/rank_logs/rank<N>.jsonl "
            "(to check that processes agree on the gathered metrics)."
        },
    )

    def validate(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy: unknown policy {self.policy!r}; expected one of {list(POLICIES)}")
        check_reward_names(self.reward_funcs)
        if "rlt" in self.reward_funcs:
            if self.policy != "teacher":
                raise ConfigError(
                    "reward_funcs: 'rlt' rewards a teacher's explanations; with policy 'student' use "
                    "correctness/format"
                )
            if not self.student_model_name_or_path:
                raise ConfigError(
                    "student_model_name_or_path: required by the 'rlt' reward (the frozen student that scores "
                    "the teacher's explanations)"
                )
        if self.student_dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ConfigError(f"student_dtype: unknown dtype {self.student_dtype!r}")
        if self.rlt_teacher_logprobs not in TEACHER_LOGPROB_SOURCES:
            raise ConfigError(
                f"rlt_teacher_logprobs: unknown source {self.rlt_teacher_logprobs!r}; "
                f"expected one of {list(TEACHER_LOGPROB_SOURCES)}"
            )
        if self.rlt_log_completions_steps < 0 or self.rlt_log_completions_num < 0:
            raise ConfigError("rlt_log_completions_steps, rlt_log_completions_num: must be >= 0")
        if self.max_prompt_length is not None and self.max_prompt_length <= 0:
            raise ConfigError(f"max_prompt_length: must be > 0 or None, got {self.max_prompt_length}")


def _reward_fields_type(data_type: type) -> type:
    """RLTRewardConfig's fields for the parser; ``tag_format``/``chat_format`` are the data's, clashes are dropped."""
    others = [ModelConfig, data_type, RLTGRPOConfig, RLTTrainArguments]
    drop = {"tag_format", "chat_format"} | clashing(others, RLTRewardConfig)
    return without_fields(RLTRewardConfig, drop, name="RLTRewardArguments")


def parse_train_args(
    argv: list[str] | None,
) -> tuple[ModelConfig, Any, RLTGRPOConfig, RLTTrainArguments, Any]:
    """``(model_args, data_args, grpo_config, train_args, reward_config)`` from a recipe + overrides."""
    from rlt.data import DataArguments

    reward_type = _reward_fields_type(DataArguments)
    model_args, data_args, grpo_args, train_args, reward_fields = parse(
        [ModelConfig, DataArguments, RLTGRPOConfig, RLTTrainArguments, reward_type],
        argv,
        model_recipe=STARTING_RECIPE,
    )
    train_args.validate()
    check_trainer_combinations(model_args, grpo_args)
    try:
        reward_config = rebuild(
            RLTRewardConfig,
            reward_fields,
            tag_format=getattr(data_args, "tag_format", "bespoke"),
            chat_format=getattr(data_args, "chat_format", "stratos"),
        )
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(str(err)) from None
    return model_args, data_args, grpo_args, train_args, reward_config


def check_trainer_combinations(model: ModelConfig, args: Any) -> None:
    """Settings GRPOTrainer (TRL 1.16) refuses only in its constructor, refused here before any model loads.

    - ``sync_ref_model`` with PEFT (``NotImplementedError`` in ``GRPOTrainer.__init__``): with
      adapters the reference is the base model with the adapters switched off; there is no
      reference copy to sync.
    - ``sync_ref_model`` with ``beta = 0``: no reference model exists.
    - an adapter on ``lm_head``: TRL reads ``lm_head.weight`` directly for log-probs, so it would
      never train.
    - 4/8-bit weights without a GPU: bitsandbytes quantisation runs on CUDA only.
    """
    if args.sync_ref_model and model.use_peft:
        raise ConfigError(
            "sync_ref_model, use_peft: TRL cannot sync a reference model with PEFT; with adapters the reference "
            "is the base model with the adapters off. Set --sync_ref_model false (see "
            "recipes/qwen2.5-7b/teacher_rlt_lora.yaml), or train all weights (--use_peft false)"
        )
    if args.sync_ref_model and args.beta == 0.0:
        raise ConfigError(
            "sync_ref_model, beta: with beta 0 there is no reference model to sync; set --sync_ref_model false "
            "or a beta > 0"
        )
    targets = model.lora_target_modules or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    if model.use_peft and "lm_head" in targets:
        raise ConfigError(
            "lora_target_modules: an adapter on lm_head is never trained by GRPO (TRL computes log-probs from "
            "lm_head.weight directly); remove 'lm_head'"
        )
    if (model.load_in_4bit or model.load_in_8bit) and (args.use_cpu or not torch.cuda.is_available()):
        raise ConfigError(
            "load_in_4bit/load_in_8bit: bitsandbytes quantisation needs a CUDA GPU; set it to false"
        )


# --------------------------------------------------------------------------- the trainer


def _trl_computes_old_logps(trainer: GRPOTrainer) -> bool:
    """TRL 1.16's condition for ``old_per_token_logps`` (grpo_trainer.py, before ``_calculate_rewards``)."""
    args = trainer.args
    generate_every = args.steps_per_generation * trainer.num_iterations
    return args.gradient_accumulation_steps % generate_every != 0 or bool(
        trainer.use_vllm and trainer.vllm_importance_sampling_correction
    )


class RankLogCallback(TrainerCallback):
    """Each process appends the logs it emits to ``<output_dir>/rank_logs/rank<N>.jsonl``.

    ``Trainer.log`` calls ``on_log`` on every process; GRPO's metrics are gathered across
    processes before logging, so every process should write the same numbers.
    """

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not logs:
            return
        path = Path(args.output_dir) / "rank_logs" / f"rank{args.process_index}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps({"step": state.global_step, **logs}, default=str) + "\n")


class RLTGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` plus the RLT hooks: teacher log-probs for the reward, a completions log.

    Nothing of GRPO itself is changed: generation, advantages and the loss are TRL's.
    """

    def __init__(
        self,
        *args: Any,
        rlt_reward: RLTReward | None = None,
        rlt_args: RLTTrainArguments | None = None,
        **kwargs: Any,
    ) -> None:
        grpo_args = kwargs.get("args")
        if grpo_args is not None and grpo_args.use_vllm:
            from rlt.vllm_engine import trl_colocated_engine

            # TRL builds its colocated engine in here: our dtype, and syncable weights on vLLM's CPU build.
            with trl_colocated_engine((rlt_args or RLTTrainArguments()).rlt_vllm_dtype):
                super().__init__(*args, **kwargs)
        else:
            super().__init__(*args, **kwargs)
        self.rlt_reward = rlt_reward
        self.rlt_args = rlt_args or RLTTrainArguments(reward_funcs=["format"])
        self._rlt_capture = False
        self._rlt_captured: torch.Tensor | None = None
        self._rlt_logged_step = -1
        # How often each source supplied ℓ_T (captured / trainer / reward): observable in tests and logs.
        self.rlt_teacher_source_counts: Counter[str] = Counter()
        self.rlt_teacher_source = self._resolve_teacher_source()
        if rlt_reward is not None:
            # The policy itself (never a copy), or TRL's own forward of it; the reward calls
            # whichever it has on exactly the ids it scores (a straddled close tag re-tokenises one).
            if self.rlt_teacher_source == "reward":
                rlt_reward.teacher = self.model
            else:
                rlt_reward.teacher = None
                rlt_reward.teacher_logprobs_fn = self.rlt_policy_logprobs
        if self.rlt_args.rlt_per_rank_logs:
            self.add_callback(RankLogCallback())

    # ------------------------------------------------------------------ teacher log-probs

    def _resolve_teacher_source(self) -> str:
        wanted = self.rlt_args.rlt_teacher_logprobs
        if wanted != "auto":
            return wanted
        sharded = self.is_fsdp_enabled or (
            self.is_deepspeed_enabled
            and getattr(self.accelerator.state.deepspeed_plugin, "zero_stage", 0) == 3
        )
        return "trainer" if (sharded or self.args.cast_lm_head_to_fp32) else "reward"

    def _generate(self, prompts: list) -> tuple:
        out = super()._generate(prompts)
        self._rlt_captured = None
        # Capture the next no-grad policy forward iff TRL is about to compute old_per_token_logps.
        self._rlt_capture = (
            self.rlt_reward is not None
            and self.rlt_args.rlt_teacher_logprobs == "auto"
            and self.model.training
            and _trl_computes_old_logps(self)
        )
        return out

    def _get_per_token_logps_and_entropies(self, model: Any, *args: Any, **kwargs: Any) -> tuple:
        out = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self._rlt_capture and model is self.model and not torch.is_grad_enabled():
            self._rlt_captured = out[0].detach()
            self._rlt_capture = False
        return out

    @torch.no_grad()
    def rlt_policy_logprobs(
        self, prompt_ids: list[list[int]], completion_ids: list[list[int]]
    ) -> list[torch.Tensor]:
        """ℓ_T of every completion token: one no-grad forward of the policy through TRL's own path.

        The log-probs are at the GRPO temperature (TRL's fused LM head divides by it), the
        padding is TRL's (prompts left, completions right).
        """
        from trl.models.utils import disable_gradient_checkpointing
        from trl.trainer.utils import pad

        device = self.accelerator.device
        pad_id = self.processing_class.pad_token_id if hasattr(self.processing_class, "pad_token_id") else 0
        pad_id = 0 if pad_id is None else pad_id
        p = [torch.tensor(x, dtype=torch.long) for x in prompt_ids]
        c = [torch.tensor(x, dtype=torch.long) for x in completion_ids]
        p_ids = pad(p, padding_value=pad_id, padding_side="left").to(device)
        p_mask = pad([torch.ones_like(x) for x in p], padding_value=0, padding_side="left").to(device)
        c_ids = pad(c, padding_value=pad_id, padding_side="right").to(device)
        c_mask = pad([torch.ones_like(x) for x in c], padding_value=0, padding_side="right").to(device)
        was_training = self.model.training
        self.model.eval()  # dropout off: ℓ_T is the sampling distribution
        try:
            with disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model,
                    torch.cat([p_ids, c_ids], dim=1),
                    torch.cat([p_mask, c_mask], dim=1),
                    c_ids.size(1),
                    batch_size=self.args.per_device_train_batch_size,
                )
        finally:
            self.model.train(was_training)
        return [logps[i, : len(x)].float().cpu() for i, x in enumerate(completion_ids)]

    def _calculate_rewards(
        self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any
    ) -> torch.Tensor:
        from trl.models.utils import disable_gradient_checkpointing

        reward = self.rlt_reward
        if reward is not None:
            pending = None
            if self._rlt_captured is not None:
                pending = [
                    self._rlt_captured[i, : len(ids)].float().cpu()
                    for i, ids in enumerate(completion_ids_list)
                ]
                self.rlt_teacher_source_counts["captured"] += 1
            elif self.rlt_teacher_source == "trainer":
                self.rlt_teacher_source_counts["trainer"] += 1  # the reward calls rlt_policy_logprobs
            else:
                self.rlt_teacher_source_counts["reward"] += 1
            reward.pending_teacher_logprobs = pending
            self._rlt_captured = None
        try:
            # The reward's own forward of the policy must not re-enter checkpointed blocks.
            with disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
                rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        finally:
            if reward is not None:
                reward.pending_teacher_logprobs = None
        self._rlt_log_completions(prompts, completions, rewards)
        return rewards

    # ------------------------------------------------------------------ completions log

    def _rlt_log_completions(self, prompts: Any, completions: Any, rewards: torch.Tensor) -> None:
        every = self.rlt_args.rlt_log_completions_steps
        step = self.state.global_step
        if (
            not every
            or step % every != 0
            or step == self._rlt_logged_step
            or not self.accelerator.is_main_process
            or not self.model.training
        ):
            return
        self._rlt_logged_step = step
        from rlt.formats import as_text
        from rlt.jsonl import JsonlAppender

        start = self.accelerator.process_index * len(prompts)  # rewards are gathered across processes
        local = rewards[start : start + len(prompts)].detach().float().cpu()
        names = [getattr(f, "__name__", f"reward_{i}") for i, f in enumerate(self.reward_funcs)]
        comps = self.rlt_reward.last_components if self.rlt_reward is not None else []
        records = []
        for i in range(min(self.rlt_args.rlt_log_completions_num, len(prompts))):
            rec: dict[str, Any] = {
                "step": step,
                "prompt": as_text(prompts[i]),
                "completion": as_text(completions[i]),
                "rewards": {n: _finite(local[i, j].item()) for j, n in enumerate(names)},
            }
            if i < len(comps):
                rec["components"] = comps[i]
            records.append(rec)
        with JsonlAppender(Path(self.args.output_dir) / "completions.jsonl") as out:
            out.write(records)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- building


def _tags(data_args: Any):
    from rlt.formats import get_tags

    try:
        return get_tags(
            getattr(data_args, "tag_format", "bespoke"), getattr(data_args, "chat_format", "stratos")
        )
    except ValueError as err:
        raise ConfigError(f"tag_format/chat_format: {err}") from None


def build_dataset(
    policy: str, data_args: Any, tokenizer: Any, reward_config: RLTRewardConfig, max_prompt_length: int | None
) -> Any:
    """The GRPO data set: ``prompt`` plus the ``question`` and ``solution`` columns the rewards read."""
    from rlt import data
    from rlt.formats import student_prompt

    tags = _tags(data_args)
    rows = data.load_rows(data_args, need_trace=False)
    if policy == "teacher":
        ds = data.teacher_rl_view(rows, tokenizer, tags, system=reward_config.teacher_system_prompt)
    else:
        system = reward_config.student_system_prompt

        def add_prompt(example: dict[str, Any]) -> dict[str, Any]:
            return {
                "prompt": student_prompt(
                    tokenizer, example["question"], tags, data.row_system(example, system)
                )
            }

        ds = rows.map(add_prompt, desc="rendering student prompts")
    missing = [c for c in ("prompt", "question", "solution") if c not in ds.column_names]
    if missing:
        raise DataError(f"the RL data set lacks column(s) {missing} (columns: {ds.column_names})")
    if max_prompt_length is not None:
        before = len(ds)
        ds = ds.filter(
            lambda ex: (
                len(tokenizer(ex["prompt"], add_special_tokens=False)["input_ids"]) <= max_prompt_length
            ),
            desc="max_prompt_length",
        )
        if len(ds) < before:
            logger.info(
                f"rlt train: dropped {before - len(ds)} of {before} rows longer than max_prompt_length"
            )
    if len(ds) == 0:
        raise DataError("the data set has no rows after loading and filtering")
    return ds


def build_trainer(
    model_args: ModelConfig,
    data_args: Any,
    grpo_args: RLTGRPOConfig,
    train_args: RLTTrainArguments,
    reward_config: RLTRewardConfig,
) -> RLTGRPOTrainer:
    """Validate (tokenizers before weights), render the data, load the student, build the trainer."""
    validate_model_config(model_args)
    train_args.validate()
    tags = _tags(data_args)
    uses_rlt = "rlt" in train_args.reward_funcs
    if grpo_args.reward_weights is not None and len(grpo_args.reward_weights) != len(train_args.reward_funcs):
        raise ConfigError(
            f"reward_weights: {len(grpo_args.reward_weights)} weights for {len(train_args.reward_funcs)} "
            f"reward_funcs {train_args.reward_funcs}"
        )
    if uses_rlt and not math.isclose(reward_config.teacher_temperature, grpo_args.temperature):
        raise ConfigError(
            f"teacher_temperature: {reward_config.teacher_temperature} differs from the generation temperature "
            f"({grpo_args.temperature}); ℓ_T is the teacher's log-prob at the temperature it sampled with "
            "(spec §3): set both to the same value"
        )

    tokenizer = load_tokenizer_for(model_args.model_name_or_path, "model_name_or_path")
    student_tok = None
    if uses_rlt:
        student_tok = load_tokenizer_for(train_args.student_model_name_or_path, "student_model_name_or_path")
        check_vocabularies(tokenizer, student_tok, tags)
    dataset = build_dataset(
        train_args.policy, data_args, tokenizer, reward_config, train_args.max_prompt_length
    )
    grpo_args.max_completion_length = fit_train_budget(  # before any weights load
        model_args.model_name_or_path, tokenizer, dataset["prompt"], grpo_args
    )
    if grpo_args.use_vllm:
        from rlt.loading import longest_prompt_tokens
        from rlt.vllm_engine import check_training

        longest = longest_prompt_tokens(tokenizer, dataset["prompt"])
        check_training(grpo_args, model_args.model_name_or_path, longest)

    rlt_reward = None
    if uses_rlt:
        # Frozen, loaded once per process, on this process's device (RLTReward moves it to the
        # CPU with offload_student); it never joins the optimiser or accelerate's wrapping.
        student = load_student(
            train_args.student_model_name_or_path, train_args.student_dtype, train_args.student_revision,
            bool(getattr(grpo_args, "trust_remote_code", False)), grpo_args.device,
        )  # fmt: skip
        rlt_reward = RLTReward(
            student, student_tok, reward_config, teacher=None, teacher_tokenizer=tokenizer,
            task=getattr(data_args, "task", None),
        )  # fmt: skip
    funcs = make_reward_funcs(train_args.reward_funcs, tags, getattr(data_args, "task", None), rlt_reward)

    grpo_args.model_init_kwargs = {
        **(grpo_args.model_init_kwargs or {}),
        **model_init_kwargs(
            model_args, trust_remote_code=bool(getattr(grpo_args, "trust_remote_code", False))
        ),
    }
    return RLTGRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=funcs,
        args=grpo_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        rlt_reward=rlt_reward,
        rlt_args=train_args,
    )


def main(argv: list[str] | None = None) -> int:
    """``rlt train``: parse, build, train (resuming if asked) and save."""
    from rlt.training import resume_value, save_final

    model_args, data_args, grpo_args, train_args, reward_config = parse_train_args(argv)
    trainer = build_trainer(model_args, data_args, grpo_args, train_args, reward_config)
    trainer.train(resume_from_checkpoint=resume_value(grpo_args.resume_from_checkpoint, grpo_args.output_dir))
    save_final(trainer, grpo_args.output_dir, getattr(data_args, "dataset_name", None))
    if trainer.args.should_save:
        logger.info(f"rlt train: saved the {train_args.policy} to {grpo_args.output_dir}")
    return 0


__all__ = [
    "RLTGRPOConfig",
    "RLTGRPOTrainer",
    "RLTTrainArguments",
    "RankLogCallback",
    "build_dataset",
    "build_trainer",
    "check_generation_batch",
    "check_vocabularies",
    "main",
    "parse_train_args",
]
