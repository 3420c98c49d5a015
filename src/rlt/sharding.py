"""The pieces :mod:`rlt.runner` runs a long job with, on one process or many (``accelerate launch``).

Stages do not call these; they hand their work to :class:`rlt.runner.Job`. Every process loads the whole (small) list of rows and takes its share by one stable rule;
it writes its share to its own resumable JSONL shard (:mod:`rlt.jsonl`); after a barrier
the main process merges the shards into the one output, in data-set order. Nothing else
is exchanged: accelerate's process state and barriers, and the files.

**The share rule.** The items (trace ids, score rows, eval samples) are cut into the
batches one process would use: consecutive ``batch_size`` slices of *all* items in
data-set order. Batch ``b`` belongs to process ``b % num_processes``. Why batches and not
rows: the transformers backend seeds each batch (:func:`rlt.runner.batch_seed` of its keys) and pads it as a whole, so a trace depends on its batch mates. With
whole batches dealt out, each process samples exactly the batches a single process would
have sampled, and the merged output equals one process's output bit for bit (fp32 CPU).
Why round robin and not contiguous blocks: data sets are often ordered by source or
difficulty, so one block could hold all the long questions; dealing batches out spreads
them, and the shards finish together. Resuming skips done items inside the same fixed
batches, so batches a killed run did not reach stay identical.

**Files** (for output ``out``): one process writes ``out`` itself, exactly as before;
``N > 1`` processes write ``out.shards/PPPPP-of-NNNNN.jsonl`` and the main process then
rewrites ``out`` with every record once, in data-set order, atomically (a temporary file
and ``os.replace``), and deletes the shards. ``out.manifest.json`` records the settings
that decide what a record is (model, seed, sampling ...): a relaunch with other settings
is a one-line :class:`~rlt.errors.ConfigError` naming them. A relaunch with another
process count is *handled*: every process skips ids done in ``out`` or in any shard, of
any layout, and the merge reads them all.

**vLLM.** Each process drives its own engine on its own GPUs: local process ``l`` with
tensor parallelism ``t`` gets visible GPUs ``l*t .. l*t+t-1`` (:func:`gpu_layout`, which
refuses layouts that do not fit before anything loads).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from rlt.errors import ConfigError
from rlt.jsonl import read_records

logger = logging.getLogger(__name__)

T = TypeVar("T")
Key = Callable[[dict[str, Any]], str]

# Shares can finish minutes (or, on a 17k-row job, longer) apart; gloo's default 30-minute
# barrier timeout would then kill a run whose work is all done.
BARRIER_TIMEOUT = timedelta(hours=48)

# Launcher variables that describe *our* data-parallel world. vLLM reads some of them
# (LOCAL_RANK, RANK, WORLD_SIZE, MASTER_*) to set up its own tensor-parallel world, which
# is a different one: each process's engine is a world of its own.
LAUNCHER_VARIABLES = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE",
    "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
)  # fmt: skip


def record_id(record: dict[str, Any]) -> str:
    """The resume key of collect and score records: their ``id``, as text."""
    return str(record.get("id"))


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Shard:
    """This process's place: ``index`` of ``count`` processes, ``local_index`` of ``local_count`` on its node."""

    index: int = 0
    count: int = 1
    local_index: int = 0
    local_count: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def label(self) -> str:
        """``shard 2/4``, for log lines (1-based, as people count)."""
        return f"shard {self.index + 1}/{self.count}"


def current_shard() -> Shard:
    """This process's shard, from accelerate's process state (one process when not launched).

    ``cpu=True``: the barriers carry no tensors, so gloo does, and the launcher process
    sets up no CUDA context of its own before a vLLM engine picks its GPUs.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard()  # not launched: no process group, and no accelerate import to pay for
    from accelerate import PartialState

    state = PartialState(cpu=True, timeout=BARRIER_TIMEOUT)
    local_count = int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes))
    return Shard(state.process_index, state.num_processes, state.local_process_index, local_count)


def barrier(shard: Shard) -> None:
    """Wait for every process (accelerate's ``wait_for_everyone``); nothing to wait for alone."""
    if shard.count > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def on_main(shard: Shard, compute: Callable[[], T]) -> T:
    """``compute()`` on the main process only, its result sent to every process.

    For work that must happen once (decontamination: it may download the evaluation sets
    and it logs what it drops) but whose result every process needs to know its share.
    """
    if shard.count == 1:
        return compute()
    from accelerate.utils import broadcast_object_list

    box: list[Any] = [compute() if shard.is_main else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def finish() -> None:
    """End a launched job together: every process waits for the others, then drops its process group.

    Without it the main process, which hosts the launcher's store, can exit while another rank
    still tears down its gloo threads: one rank of a two-node ``rlt train`` aborted so on
    torch 2.11 ("terminate called without an active exception") after both had trained.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


# --------------------------------------------------------------------------- the share rule


def shard_batches(items: Sequence[T], batch_size: int, shard: Shard) -> list[tuple[int, list[T]]]:
    """This shard's batches as ``(start, batch)``: one process's batching, dealt out round robin.

    Batch ``b`` is ``items[b*batch_size : (b+1)*batch_size]`` of *all* items and belongs
    to shard ``b % count``; ``start`` is its offset in ``items`` (eval seeds batches by
    it). Callers drop done items from these batches, so a resumed run keeps every batch
    it did not reach exactly as it was.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    starts = range(0, len(items), batch_size)
    return [(start, list(items[start : start + batch_size])) for start in starts[shard.index :: shard.count]]


# --------------------------------------------------------------------------- files


def shards_dir(out: str | Path) -> Path:
    """``traces.jsonl`` → ``traces.jsonl.shards/``, where ``N > 1`` processes write."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def shard_file(out: str | Path, shard: Shard) -> Path:
    """``out.shards/PPPPP-of-NNNNN.jsonl``: ``shard``'s own file."""
    return shards_dir(out) / f"{shard.index:05d}-of-{shard.count:05d}.jsonl"


def shard_path(out: str | Path, shard: Shard) -> Path:
    """Where ``shard`` writes: ``out`` itself alone (as before sharding existed), else its shard file."""
    return Path(out) if shard.count == 1 else shard_file(out, shard)


def shard_files(out: str | Path) -> list[Path]:
    """Every shard file of ``out``, of any process count (a relaunch may use another)."""
    folder = shards_dir(out)
    return sorted(folder.glob("*-of-*.jsonl")) if folder.is_dir() else []


def written_keys(out: str | Path, key: Key = record_id, include_out: bool = True) -> set[str]:
    """Keys of every complete record in ``out`` (unless not ``include_out``) and in all its shards.

    Read only: a half-written last line is skipped here and cut by its own writer (the
    process whose shard it is, or the merge), never by a reader of someone else's shard.
    """
    keys: set[str] = set()
    for path in ([Path(out)] if include_out else []) + shard_files(out):
        keys.update(key(r) for r in read_records(path))
    return keys


def count_lines(path: Path) -> int:
    """Complete lines of ``path`` (0 when it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def gather_shards(
    out: str | Path, order: Sequence[str], key: Key = record_id, include_out: bool = True
) -> list[dict[str, Any]]:
    """Every complete record of ``out`` (unless not ``include_out``) and its shards, each key once.

    In ``order`` (the data-set order of this run's keys); records of keys this run does not
    have (an earlier run's rows) follow in the order they were found, as a single-process
    run keeps them.
    """
    by_key: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for path in ([Path(out)] if include_out else []) + shard_files(out):
        for rec in read_records(path):
            k = key(rec)
            if k in by_key:
                duplicates += 1  # two concurrent launches over one output; the first record wins
                continue
            by_key[k] = rec
    if duplicates:
        logger.warning(f"{out}: {duplicates} records were written twice; kept the first of each")
    merged = [by_key.pop(k) for k in order if k in by_key]
    return merged + list(by_key.values())


def remove_shards(out: str | Path) -> None:
    """Delete ``out``'s shards (and the manifest kept among them), once they are merged."""
    shutil.rmtree(shards_dir(out), ignore_errors=True)


def merge_shards(out: str | Path, order: Sequence[str], key: Key = record_id) -> int | None:
    """Main process, after the barrier: ``out`` and its shards become one ``out`` (:func:`gather_shards`).

    The new file replaces ``out`` atomically before the shards are deleted, so a kill at
    any point loses nothing. Returns the number of records, or None when there were no
    shards (one process wrote ``out`` directly).
    """
    out = Path(out)
    if not shard_files(out):
        return None
    merged = gather_shards(out, order, key)
    tmp = out.with_name(out.name + ".merging")
    with open(tmp, "wb") as f:
        f.write(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in merged))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    remove_shards(out)
    return len(merged)


# --------------------------------------------------------------------------- manifest


def manifest_path(out: str | Path) -> Path:
    """``traces.jsonl`` → ``traces.jsonl.manifest.json``."""
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def check_manifest(
    out: str | Path, settings: dict[str, Any], shard: Shard, *, write: bool = True, path: Path | None = None
) -> None:
    """Refuse to resume ``out`` under other ``settings`` than it was written with; record them.

    Every process compares (so all of them stop, none waits at a barrier for a dead
    peer); the main process writes the manifest when there is none (a first run, or an
    output written before manifests existed). Settings are compared as JSON values.
    ``write=False`` only compares: a command checks before its slow loads and writes once
    they succeed, so a mistyped model path leaves no manifest behind to block the fix.
    """
    path = path or manifest_path(out)
    mine = json.loads(json.dumps(settings))
    if path.exists():
        theirs = json.loads(path.read_text())
        differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if differ:
            was = ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
            now = ", ".join(f"{k}={mine.get(k)!r}" for k in differ)
            raise ConfigError(
                f"{out}: was written with {was}; this run has {now} "
                f"(relaunch with those settings, or write elsewhere; {path.name} records them)"
            )
    elif write and shard.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomically: the other processes may be reading it at this moment.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(mine, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)


# --------------------------------------------------------------------------- progress


class ShardProgress:
    """One progress bar on the main process: records done across every shard of this layout.

    A thread counts the new complete lines of each shard file once a second (the files
    are the only thing processes share), so the bar moves while the main process itself
    is busy generating. Start it after the barrier that follows the resume reads, so the
    lines already there are not counted.
    """

    def __init__(self, files: Sequence[Path], total: int, label: str, interval: float = 1.0):
        from rlt.progress import progress_display

        self.files, self.total, self.interval = list(files), total, interval
        self._base = [count_lines(p) for p in self.files]
        self._stop = threading.Event()
        self._bar = progress_display()
        self._task = self._bar.add_task(label, total=total)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def done(self) -> int:
        """Records written by all shards since the bar started."""
        return sum(count_lines(p) - b for p, b in zip(self.files, self._base))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._bar.update(self._task, completed=min(self.done(), self.total))

    def __enter__(self) -> ShardProgress:
        self._bar.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._bar.stop()


def progress_for(shard: Shard, out: str | Path, total: int, label: str, enabled: bool = True) -> Any:
    """The cross-shard bar on the main process of ``N > 1``; nothing elsewhere (alone, the
    runner draws its own bar; other processes only log their line)."""
    if not enabled or shard.count == 1 or not shard.is_main:
        return contextlib.nullcontext()
    files = [shard_path(out, Shard(i, shard.count)) for i in range(shard.count)]
    return ShardProgress(files, total, label)


# --------------------------------------------------------------------------- vLLM layout


def gpu_layout(
    local_index: int, local_count: int, tensor_parallel_size: int, visible: Sequence[str]
) -> list[str]:
    """The GPUs local process ``local_index`` of ``local_count`` drives, ``tensor_parallel_size`` of them.

    Process ``l`` gets ``visible[l*t : (l+1)*t]``: disjoint, so engines never share a GPU.
    Impossible layouts are refused before anything loads. A pure function of its inputs.
    """
    if tensor_parallel_size < 1:
        raise ConfigError(f"tensor_parallel_size: must be >= 1, got {tensor_parallel_size}")
    need = local_count * tensor_parallel_size
    if need > len(visible):
        raise ConfigError(
            f"tensor_parallel_size: {local_count} processes on this node x tensor_parallel_size "
            f"{tensor_parallel_size} need {need} GPUs, but {len(visible)} are visible "
            f"({','.join(visible) or 'none'}); launch fewer processes or lower tensor_parallel_size"
        )
    lo = local_index * tensor_parallel_size
    return list(visible[lo : lo + tensor_parallel_size])


def visible_gpus() -> list[str]:
    """GPU names the process may use: ``CUDA_VISIBLE_DEVICES`` when set, else every device."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@contextlib.contextmanager
def engine_environment(shard: Shard, tensor_parallel_size: int) -> Iterator[list[str]]:
    """While a vLLM engine is built: only this process's GPUs visible, the launcher's world hidden.

    vLLM's workers inherit the environment at construction; afterwards it is restored
    (the data-parallel process group is already up and does not read it again).
    """
    if shard.count == 1:
        # Alone, vLLM takes the first GPUs itself, as before; only a layout that cannot fit is
        # refused (a vLLM CPU build has no GPUs to count, and one process asks for none).
        if tensor_parallel_size != 1:
            gpu_layout(0, 1, tensor_parallel_size, visible_gpus())
        yield []
        return
    saved = dict(os.environ)
    gpus: list[str] = []
    try:
        if visible_gpus():
            gpus = gpu_layout(shard.local_index, shard.local_count, tensor_parallel_size, visible_gpus())
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        else:
            from rlt.vllm_engine import cpu_cores_for

            # vLLM's CPU build: each process's engine binds its threads to its own cores.
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_cores_for(
                shard.local_index, shard.local_count, tensor_parallel_size
            )
        for name in LAUNCHER_VARIABLES:
            os.environ.pop(name, None)
        yield gpus
    finally:
        os.environ.clear()
        os.environ.update(saved)
