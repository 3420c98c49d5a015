"""``rlt warmup`` and ``rlt distill``: supervised fine-tuning with TRL's ``SFTTrainer``.

Both stages are the same machinery (:func:`run_sft`) on two views of the data:

- ``warmup`` (spec §4, "SFT warm-up"): the *teacher* format. The prompt is the teacher
  chat up to the assistant turn; the completion is the whole assistant turn
  ``SOL_OPEN s SOL_CLOSE \\n\\n EXPL_OPEN trace EXPL_CLOSE`` (the data set's reasoning trace
  plays the explanation).
- ``distill`` (spec §4, "student distillation"): the *student* format. The completion is
  ``THINK_OPEN explanation THINK_CLOSE \\n\\n SOL_OPEN s SOL_CLOSE``, the explanation
  column being collected teacher explanations (or any reasoning trace).

Loss on the completion only: the views are prompt/completion *string* data sets, for
which TRL 1.16 ``SFTTrainer`` sets ``completion_only_loss`` automatically
(``sft_trainer.py``: ``completion_only_loss = "prompt" in sample and "completion" in
sample`` when the config leaves it ``None``; the tokenizer builds a ``completion_mask``
and the labels of prompt tokens become -100). We set it to ``True`` explicitly.

Example::

    rlt warmup --config recipes/tiny/teacher_warmup.yaml --max_steps 2 --output_dir runs/warm
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from trl import ModelConfig, get_peft_config

from rlt.config import clashing, model_init_kwargs, parse, validate_model_config
from rlt.errors import ConfigError, DataError
from rlt.training import resume_value, save_final

logger = logging.getLogger(__name__)

Stage = Literal["teacher", "student"]


@dataclass
class SFTStageArguments:
    """RLT settings of an SFT stage (the data and trainer settings have their own groups)."""

    system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "System prompt of the rendered chats; None = the rlt.formats default of the stage's "
            "role (teacher or student), '' = no system turn."
        },
    )
    allow_empty_explanation: bool = field(
        default=False,
        metadata={
            "help": "distill: accept empty explanations (a question -> answer baseline); "
            "by default they are refused with their row."
        },
    )
    explanation_column: str | None = field(
        default=None,
        metadata={
            "help": "distill: the column holding the explanation (collected traces call it 'explanation'); "
            "None = the data set's reasoning trace (its mapping: reasoning_trace_column)."
        },
    )


# The recipe a user with nothing set is pointed to, per stage (teacher = `rlt warmup`).
STARTING_RECIPES = {
    "teacher": "recipes/tiny/teacher_warmup.yaml",
    "student": "recipes/tiny/student_distill.yaml",
}


def parse_sft_args(
    argv: list[str] | None, stage: str = "teacher"
) -> tuple[ModelConfig, Any, Any, SFTStageArguments]:
    """``(model_args, data_args, sft_config, stage_args)`` from a recipe and command-line overrides.

    A missing model is reported first, with the ``stage``'s starting recipe.
    """
    from trl import SFTConfig

    from rlt.data import DataArguments

    # SFTConfig wins a name clash (it is TRL's documented surface); a DataArguments field
    # of the same name would be shadowed, so refuse loudly rather than silently.
    dropped = clashing([ModelConfig, SFTConfig], DataArguments)
    if dropped:
        raise ConfigError(
            f"internal: DataArguments fields {sorted(dropped)} clash with SFTConfig/ModelConfig"
        )
    model_args, data_args, sft_args, stage_args = parse(
        [ModelConfig, DataArguments, SFTConfig, SFTStageArguments], argv, model_recipe=STARTING_RECIPES[stage]
    )
    return model_args, data_args, sft_args, stage_args


def _tags(data_args: Any):
    from rlt.formats import get_tags

    name = getattr(data_args, "tag_format", "bespoke")
    try:
        return get_tags(name, getattr(data_args, "chat_format", "stratos"))
    except ValueError as err:
        raise ConfigError(f"tag_format/chat_format: {err}") from None


def _end_on_eos(ds: Any, eos: str | None) -> Any:
    """Cut whitespace after a final EOS so TRL does not append a second one.

    ChatML closes a turn with ``<|im_end|>\\n``; TRL's ``add_eos`` (sft_trainer.py,
    ``_prepare_dataset``) appends ``eos_token`` to every completion that does not *end* with
    it, which would train ``<|im_end|>\\n<|im_end|>``. The trailing newline is not part of
    what the model must learn to emit.
    """
    if not eos:
        return ds

    def fix(example: dict[str, Any]) -> dict[str, Any]:
        c = example["completion"]
        stripped = c.rstrip()
        return {"completion": stripped if stripped.endswith(eos) else c}

    return ds.map(fix, desc="ending completions on EOS")


def build_dataset(stage: Stage, data_args: Any, stage_args: SFTStageArguments, tokenizer: Any) -> Any:
    """The prompt/completion data set of a stage (rows loaded through :func:`rlt.data.load_rows`)."""
    from rlt import data

    tags = _tags(data_args)
    explanation_column = stage_args.explanation_column
    need_trace = explanation_column is None
    rows = data.load_rows(data_args, need_trace=need_trace)
    if stage == "teacher":
        if explanation_column is not None and explanation_column != "reasoning_trace":
            if explanation_column not in rows.column_names:
                raise DataError(
                    f"explanation_column: column {explanation_column!r} not in the data "
                    f"(columns: {rows.column_names})"
                )
            rows = rows.remove_columns([c for c in ("reasoning_trace",) if c in rows.column_names])
            rows = rows.rename_column(explanation_column, "reasoning_trace")
        view = data.teacher_sft_view(rows, tokenizer, tags, system=stage_args.system_prompt)
    else:
        column = explanation_column or "reasoning_trace"
        if column not in rows.column_names:
            raise DataError(
                f"explanation_column: column {column!r} not in the data (columns: {rows.column_names}); "
                "collected traces name it 'explanation'"
            )
        view = data.student_sft_view(
            rows,
            tokenizer,
            tags,
            explanation_column=column,
            system=stage_args.system_prompt,
            allow_empty=stage_args.allow_empty_explanation,
        )
    keep = {"prompt", "completion"}
    view = view.remove_columns([c for c in view.column_names if c not in keep])
    if len(view) == 0:
        raise DataError("the data set has no rows after loading and filtering")
    return _end_on_eos(view, tokenizer.eos_token)


def build_sft_trainer(
    stage: Stage, model_args: ModelConfig, data_args: Any, sft_args: Any, stage_args: SFTStageArguments
) -> Any:
    """A ready ``SFTTrainer`` for ``stage`` (no training yet): validated, data rendered, model loaded."""
    from trl import SFTTrainer

    from rlt.loading import load_tokenizer

    validate_model_config(model_args)
    _tags(data_args)
    if sft_args.completion_only_loss is False:
        raise ConfigError(
            "completion_only_loss: must not be false; RLT trains on the assistant turn only "
            "(leave it unset or true)"
        )
    sft_args.completion_only_loss = True
    if sft_args.assistant_only_loss:
        raise ConfigError(
            "assistant_only_loss: not used by RLT (the views are prompt/completion); leave it false"
        )
    try:
        tokenizer = load_tokenizer(model_args.model_name_or_path)
    except OSError as err:
        raise FileNotFoundError(
            f"cannot load the tokenizer of {model_args.model_name_or_path!r}: {err}"
        ) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_dataset(stage, data_args, stage_args, tokenizer)
    sft_args.model_init_kwargs = {
        **(sft_args.model_init_kwargs or {}),
        **model_init_kwargs(
            model_args, trust_remote_code=bool(getattr(sft_args, "trust_remote_code", False))
        ),
    }
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=sft_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    if hasattr(trainer.train_dataset, "__len__") and len(trainer.train_dataset) == 0:
        # TRL truncates to max_length (keeping the start) and drops examples with no completion left.
        raise DataError(
            f"max_length: every example lost its whole completion to truncation at {sft_args.max_length} "
            "tokens; raise max_length"
        )
    return trainer


def run_sft(stage: Stage, argv: list[str] | None) -> int:
    """Parse, build, train and save one SFT stage."""
    model_args, data_args, sft_args, stage_args = parse_sft_args(argv, stage)
    trainer = build_sft_trainer(stage, model_args, data_args, sft_args, stage_args)
    trainer.train(resume_from_checkpoint=resume_value(sft_args.resume_from_checkpoint, sft_args.output_dir))
    save_final(trainer, sft_args.output_dir, getattr(data_args, "dataset_name", None))
    if trainer.args.should_save:
        logger.info(f"rlt: saved the {stage} model to {sft_args.output_dir}")
    return 0


def warmup_main(argv: list[str] | None = None) -> int:
    """``rlt warmup``: teacher SFT warm-up on the teacher format."""
    return run_sft("teacher", argv)


def distill_main(argv: list[str] | None = None) -> int:
    """``rlt distill``: student SFT on traces in the student format."""
    return run_sft("student", argv)


__all__ = [
    "SFTStageArguments",
    "build_dataset",
    "build_sft_trainer",
    "distill_main",
    "parse_sft_args",
    "run_sft",
    "save_final",
    "warmup_main",
]
