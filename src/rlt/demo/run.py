"""`rlt demo`'s driver: seeds in parallel worker processes, a progress bar per seed, the report."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rlt.demo.arguments import DemoArguments
from rlt.demo.seed import run_seed


def _worker(cfg: DemoArguments, seed: int, queue: Any) -> dict[str, Any]:
    """One seed in a worker process; the trainers' own output goes to ``<out>/seed<N>.log``."""
    import logging
    import warnings

    log_path = Path(cfg.out) / f"seed{seed}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a")  # noqa: SIM115 - lives as long as the worker
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log

    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("rlt").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ["TQDM_DISABLE"] = "1"
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    return run_seed(cfg, seed, report=lambda s, msg: queue.put((s, msg)))


def main(argv: list[str] | None = None) -> int:
    """`rlt demo`: every seed's stages in worker processes, then ``results.json`` and ``report.md``."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from rich.console import Console
    from rich.text import Text

    from rlt.config import parse
    from rlt.demo.report import RULE, table, verdicts, write_report
    from rlt.demo.results import aggregate
    from rlt.progress import progress_display

    (cfg,) = parse([DemoArguments], argv)
    if cfg.quick:
        cfg.apply_quick()
    cfg.validate()  # before any work
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    arms = 4 if cfg.kl_ablation else 3
    stages_per_seed = 4 + (arms - 2) + (arms - 1) + arms * 2 + (4 if cfg.findings else 0)
    kl_stages = 10 + (cfg.kl_work_teacher_copy_steps > 0)  # its student, starting teacher(s), 2 arms x 4
    stages_per_seed += (3 if cfg.cold_starts else 0) + (kl_stages if cfg.kl_work else 0)
    start = time.time()
    ctx = mp.get_context("spawn")  # fresh interpreters: torch thread pools do not survive fork well
    with (
        ctx.Manager() as manager,
        progress_display(elapsed=True) as progress,
    ):
        queue = manager.Queue()
        bars = {s: progress.add_task(f"seed {s}", total=stages_per_seed) for s in range(cfg.seeds)}
        with ProcessPoolExecutor(max_workers=max(1, min(cfg.workers, cfg.seeds)), mp_context=ctx) as pool:
            futures = [pool.submit(_worker, cfg, s, queue) for s in range(cfg.seeds)]
            while not all(f.done() for f in futures) or not queue.empty():
                try:
                    s, msg = queue.get(timeout=0.5)
                except Exception:
                    continue
                progress.console.print(f"[seed {s}] {msg}", markup=False)  # "[seed 0]" is not rich markup
                if not msg.startswith("  "):
                    progress.advance(bars[s])
            per_seed = [f.result() for f in futures]
    results = aggregate(cfg, per_seed, time.time() - start)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = write_report(results, out)
    # The last screen says what held: the students, then the claims with their paired figures, then where
    # the report (the evidence, the tables, the plots) is.
    console.print(table(results), markup=False)
    console.print()
    console.print(verdicts(results))
    console.print(Text(RULE))
    console.print(Text(f"{results['elapsed_s']:.0f} s; results: {out / 'results.json'}"))
    console.print(Text(f"report: {report}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
