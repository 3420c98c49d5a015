"""What every training stage does around ``trainer.train()``: where to resume, how to save.

Shared by ``rlt warmup``/``distill`` (:mod:`rlt.sft`) and ``rlt train`` (:mod:`rlt.train`).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def resume_value(value: Any, output_dir: str | None = None) -> Any:
    """``--resume_from_checkpoint true`` means the newest *complete* checkpoint in output_dir."""
    if isinstance(value, str) and value.lower() in ("true", "latest"):
        return last_complete_checkpoint(output_dir) or True
    if isinstance(value, str) and value.lower() in ("false", "none", ""):
        return None
    return value


def last_complete_checkpoint(output_dir: str | None) -> str | None:
    """The newest ``checkpoint-N`` whose trainer_state.json reads back.

    transformers writes trainer_state.json last, and its own "newest checkpoint" is just
    the highest N: a run killed mid-save would resume from a half-written folder and crash.
    """
    if not output_dir or not Path(output_dir).is_dir():
        return None
    found = []
    for path in Path(output_dir).iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            try:
                json.loads((path / "trainer_state.json").read_text())
            except (OSError, ValueError):
                continue  # half-written: skipped
            found.append((int(match.group(1)), str(path)))
    return max(found)[1] if found else None


def save_final(trainer: Any, output_dir: str, dataset_name: str | None = None) -> None:
    """Model, tokenizer (kept loadable by :func:`rlt.loading.load_tokenizer`) and a model card."""
    from rlt.loading import save_tokenizer

    trainer.save_model(output_dir)
    trainer.save_state()  # trainer_state.json (log history, global step) next to the model; main process only
    if trainer.args.should_save:
        save_tokenizer(trainer.processing_class, output_dir)
        try:
            trainer.create_model_card(model_name=Path(output_dir).name, dataset_name=dataset_name)
        except Exception as err:  # a card is a courtesy; never fail a finished run over it
            logger.warning("rlt: could not write a model card: %s", err)
