"""`rlt demo`: the paper's effect, reproduced in miniature on a laptop CPU.

Per seed, on the built-in ``digits`` task with tiny local models (nothing downloaded):

0. **Base model.** A tiny model learns single-operation questions (``start 7; +2`` →
   ``7+2=9``): the elementary skill any pretrained LM brings. Every student starts here.
1. **Student pre-training.** The base learns to reason on multi-step ``steps`` traces
   (a stand-in for a pretrained reasoning model such as Bespoke-Stratos-7B). Frozen after.
2. **Teacher warm-up.** The teacher starts from the pre-trained student's weights, as the
   paper's teacher (Qwen2.5-7B-Instruct) and student (a fine-tune of it) share a base,
   and is SFT-trained on explanations of mixed styles (``steps``, ``leak``, ``wrong``,
   ``filler``). Nothing tells it which style is good.
3. **Teacher RL** with the RLT reward and the frozen student, through ``rlt train``; and
   again with the KL coefficients at 0 (the paper's ablation).
4. **Distillation.** Each teacher (warm-up, RLT, RLT without KL) explains a fixed set of
   training questions; a fresh copy of the base model (same steps for every arm)
   is trained on each trace set, plus one on question → answer with no explanation.
5. **Evaluation** of every student on held-out questions, writing its own reasoning.

Every stage runs through the same code as the CLI (``rlt distill``/``warmup``/``train``
parse the argument lists built here). Seeds run in parallel worker processes.

The package, in the order of a seed (:func:`rlt.demo.seed.run_seed` lists the stages):

- :mod:`~rlt.demo.arguments`: ``DemoArguments`` and the findings' settings;
- :mod:`~rlt.demo.common`: a seed's run (directory, data, stage markers) and shared helpers;
- :mod:`~rlt.demo.setup_models`: stages 0-1 (base model, student trained until sound);
- :mod:`~rlt.demo.teachers`: stages 2-3 (warm-up, RL);
- :mod:`~rlt.demo.traces`: stage 4a (collection) and what traces are worth (read-out, rewards, styles);
- :mod:`~rlt.demo.students`: stages 4b-5 (read-out per arm, distillation, evaluation);
- :mod:`~rlt.demo.findings`: E5 and E6 (``--findings``);
- :mod:`~rlt.demo.cold_starts`: E5 as cold start vs cold start under the same student RL (``--cold_starts``);
- :mod:`~rlt.demo.kl_work`: a frozen student a stated answer persuades, and the KL ablation against it (``--kl_work``);
- :mod:`~rlt.demo.seed`: one seed as its list of stages; :mod:`~rlt.demo.results`: seeds pooled;
- :mod:`~rlt.demo.report`: the paper's claims against the numbers, tables, plots;
- :mod:`~rlt.demo.report_studies`: the two studies' claims and tables; :mod:`~rlt.demo.stats`: paired statistics;
- :mod:`~rlt.demo.run`: ``main``, the seeds in worker processes.
"""

from __future__ import annotations

from rlt.demo.arguments import DemoArguments, FindingsArguments
from rlt.demo.results import _e4, aggregate
from rlt.demo.run import main
from rlt.demo.seed import run_seed
from rlt.demo.traces import read_out, reward_parts_by_style, style_fractions, trace_rewards

__all__ = [
    "DemoArguments", "FindingsArguments", "_e4", "aggregate", "main", "read_out", "reward_parts_by_style",
    "run_seed", "style_fractions", "trace_rewards",
]  # fmt: skip
