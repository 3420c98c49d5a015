"""The one runner under every long job: `rlt collect`, `rlt score`, `rlt eval` and `rlt eval --harness`.

A stage hands the runner its items (in data-set order, each with a stable key) and the work
on one :class:`Batch`; the runner owns the rest of the job's life, alone or under
``accelerate launch`` (one process is the same runner with one share):

1. **Lock** (``<out>.lock``): a second launch on the same output is refused, in one line
   naming the running job (host, pid, start time); a lock left by a dead job on this host
   is taken over with one logged line.
2. **Manifest** (``<out>.manifest.json``): the settings that decide a record; a relaunch
   with others is refused before any model loads (:func:`rlt.sharding.check_manifest`).
3. **Share rule**: one process's batches of *all* items, dealt out round robin
   (:func:`rlt.sharding.shard_batches`), so N processes write exactly what one writes.
4. **Resumable output**: alone, records are appended to ``out`` itself; N processes append
   to their own shards. Done keys (in ``out`` or any shard, of any process count) are
   skipped; a half-written last line is cut and redone.
5. **Seeds**: every item has its own sampling seed (:func:`item_seeds`) and every batch one
   (:func:`batch_seed`), both from keys only, so batching, resuming and the process count
   draw the same samples.
6. **Barriers and merge**: the main process merges every shard into ``out`` in data-set
   order, atomically, once every share is written.
7. **Progress and timing**: one bar (on the main process, over every shard), one closing
   line per process.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

from rlt.errors import ConfigError
from rlt.jsonl import JsonlAppender, read_records
from rlt.progress import progress_bar
from rlt.sharding import (
    Key,
    Shard,
    barrier,
    check_manifest,
    current_shard,
    engine_environment,
    gather_shards,
    manifest_path,
    merge_shards,
    on_main,
    progress_for,
    record_id,
    shard_batches,
    shard_files,
    shard_path,
    written_keys,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

SEED_RANGE = 2**31  # vLLM's per-request seed and numpy's both take it


# --------------------------------------------------------------------------- seeds


def item_seeds(seed: int, keys: Sequence[str]) -> list[int]:
    """One sampling seed per key: in ``[0, 2**31)`` and distinct over ``keys``, for any number of them.

    A key's seed is ``(seed * 1_000_003 + crc32(key)) mod 2**31`` (collect's rule from its
    first version, so traces written before resume with the same draws); a key whose value
    an earlier key (in the order given) already took moves to the next free one. The
    result depends only on ``seed`` and the key list, never on batching or processes.
    CRC32 rather than ``hash()``: Python salts string hashes per process.
    """
    if len(keys) > SEED_RANGE:
        raise ConfigError(f"at most {SEED_RANGE} items per job, got {len(keys)}")
    used: set[int] = set()
    seeds = []
    for key in keys:
        s = (seed * 1_000_003 + zlib.crc32(key.encode())) % SEED_RANGE
        while s in used:
            s = (s + 1) % SEED_RANGE
        used.add(s)
        seeds.append(s)
    return seeds


def batch_seed(seed: int, keys: Sequence[str]) -> int:
    """A torch seed (``[0, 2**63)``) that depends only on ``seed`` and the keys in the batch.

    The transformers backend samples a whole batch from one generator state: batches are
    fixed slices of all keys, so a resumed or sharded run redraws what one process drew.
    """
    return (seed * 1_000_003 + zlib.crc32("\n".join(keys).encode())) % (2**63)


# --------------------------------------------------------------------------- devices


def process_device(local_index: int, accelerator: str | None, count: int) -> str:
    """The device local process ``local_index`` works on: accelerator ``local_index``, as
    accelerate gives each process of a node its own, or ``cpu`` where there is none.

    A pure function of the environment (``accelerator``: ``cuda``, ``xpu``, ... or None;
    ``count``: how many this node has); more processes than devices is refused.
    """
    if accelerator is None or count == 0:
        return "cpu"
    if local_index >= count:
        raise ConfigError(
            f"num_processes: local process {local_index} has no {accelerator} device of its own "
            f"({count} on this node); launch at most {count} processes per node"
        )
    return f"{accelerator}:{local_index}"


def this_process_device(shard: Shard) -> str:
    """:func:`process_device` for this process and machine (torch's accelerator API)."""
    import torch

    if not torch.accelerator.is_available():
        return "cpu"
    kind = torch.accelerator.current_accelerator().type
    return process_device(shard.local_index, kind, torch.accelerator.device_count())


# --------------------------------------------------------------------------- the lock


def lock_path(out: str | Path) -> Path:
    """``traces.jsonl`` → ``traces.jsonl.lock``."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc``), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the job that wrote ``holder`` still runs (on another host: assumed so)."""
    if not holder:
        return False  # a torn lock: its job died while taking it
    if holder.get("host") != socket.gethostname():
        return True
    pid = int(holder.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    ticks = _start_ticks(pid)
    return ticks is None or holder.get("ticks") in (None, ticks)


def describe(holder: dict[str, Any]) -> str:
    """``rlt collect on host h, pid 12, started 2026-12-05 12:00:00 UTC``."""
    return f"{holder.get('job', 'a job')} on host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')}"


def acquire_lock(out: str | Path, job: str) -> dict[str, Any]:
    """Take ``out``'s lock for this process, or raise a one-line :class:`ConfigError` naming its holder.

    Creation is atomic (``O_EXCL``): of two launches at the same moment one wins. A lock
    whose job is dead (same host, pid gone or reused) is removed with one logged line and
    taken; a lock from another host cannot be checked, so the message says to remove it.
    """
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "job": job, "host": socket.gethostname(), "pid": os.getpid(), "ticks": _start_ticks(os.getpid()),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }  # fmt: skip
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if holder is None:
                continue  # removed meanwhile
            if _alive(holder):
                remote = holder.get("host") != me["host"]
                raise ConfigError(
                    f"{out}: {describe(holder)} is writing it; wait for it to end or write elsewhere"
                    + (f" (if that job is gone, remove {path})" if remote else "")
                ) from None
            logger.warning(f"{out}: took over the lock of a job that no longer runs ({describe(holder)})")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return me
    raise ConfigError(f"{out}: could not take its lock {path}; another launch is starting on it")


def _holder(path: Path) -> dict[str, Any] | None:
    """What a lock file says of its job; ``{}`` when it stays empty or torn (a crash while it
    was written), None when it is gone."""
    for attempt in range(2):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            if attempt == 0:
                time.sleep(0.5)  # its job may be writing it this instant
    return {}


def release_lock(out: str | Path, mine: dict[str, Any]) -> None:
    """Remove ``out``'s lock if it is still this process's (a taken-over lock is someone else's)."""
    path = lock_path(out)
    try:
        if json.loads(path.read_text()).get("pid") == mine["pid"]:
            path.unlink()
    except (OSError, json.JSONDecodeError):
        pass


# --------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class Batch(Generic[T]):
    """One batch of a job's work: its items, their keys and seeds, its place and its own seed.

    ``start`` is the batch's offset among all items; ``items`` leave out what an earlier
    run already wrote (a resumed batch keeps its mates' seeds, not their samples).
    """

    start: int
    keys: list[str]
    items: list[T]
    seeds: list[int]
    seed: int


Work = Callable[[Batch[Any]], list[dict[str, Any]]]


class Job:
    """A long job's life on one or many processes (the module docstring lists what it owns).

    Use as a context manager around the slow loads, then :meth:`run`::

        with Job("collect", out, settings, noun="traces", seed=args.seed) as job:
            model = load(..., device=job.device)   # lock and manifest were checked first
            records = job.run(items, keys, batch_size, work)
            if job.is_main: ...                    # filters, summaries: once

    ``out=None`` keeps the records in memory (one process, nothing on disk): the Python
    APIs (:func:`rlt.evaluate.evaluate_model`) run the same loop. ``keep=False`` removes
    the record file and its manifest when the block ends without error (eval: a finished
    run's results are its other files, and the next run starts afresh). ``key`` gives a
    record's key (what resuming compares); ``settings=None`` checks no manifest.
    """

    def __init__(
        self,
        name: str,
        out: str | Path | None,
        settings: dict[str, Any] | None = None,
        *,
        noun: str = "records",
        key: Key = record_id,
        seed: int = 0,
        shard: Shard | None = None,
        keep: bool = True,
        progress: bool = True,
    ):
        self.name, self.noun, self.key, self.seed = name, noun, key, seed
        self.keep, self.progress = keep, progress
        self.out = None if out is None else Path(out)
        self.settings = settings
        self._shard = shard
        self._lock: dict[str, Any] | None = None
        self._device: str | None = None
        self.written = self.skipped = 0  # this process's records, after run()

    # -- life

    def __enter__(self) -> Job:
        self.shard = Shard() if self.out is None else (self._shard or current_shard())
        if self.out is None:
            return self
        out = self.out

        def take() -> dict[str, Any] | str:
            try:
                return acquire_lock(out, f"rlt {self.name}")
            except ConfigError as err:
                return str(err)

        held = self.once(take)  # the main process holds it for the whole launch
        if isinstance(held, str):
            raise ConfigError(held)
        self._lock = held if self.is_main else None
        try:
            if self.settings is not None:  # before the slow loads; written once they succeed
                check_manifest(out, self.settings, self.shard, write=False)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None and not self.keep and self.out is not None and self.is_main:
            self.out.unlink(missing_ok=True)
            manifest_path(self.out).unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None and self.out is not None:
            release_lock(self.out, self._lock)
            self._lock = None

    # -- what a stage asks of it

    @property
    def is_main(self) -> bool:
        return self.shard.is_main

    @property
    def device(self) -> str:
        """This process's device for transformers models (:func:`this_process_device`); logged once."""
        if self._device is None:
            self._device = this_process_device(self.shard)
            where = f"{self.shard.label} " if self.shard.count > 1 else ""
            logger.info(f"{self.name}: {where}runs on {self._device}")
        return self._device

    def once(self, compute: Callable[[], T]) -> T:
        """``compute()`` on the main process only, its result given to every process
        (work that must happen once but whose result each process needs)."""
        return on_main(self.shard, compute)

    @contextmanager
    def engine_environment(self, tensor_parallel_size: int) -> Iterator[list[str]]:
        """While this process builds its vLLM engine: only its GPUs (or CPU cores) visible."""
        with engine_environment(self.shard, tensor_parallel_size) as gpus:
            yield gpus

    # -- the work

    def run(
        self, items: Sequence[T], keys: Sequence[str], batch_size: int, work: Work
    ) -> list[dict[str, Any]] | None:
        """Do ``work`` on this process's share of the batches not yet written; returns, on the
        main process, every record of ``keys`` in their order (None on the others).

        ``work(batch)`` returns one record per item of ``batch``, each with its key
        (``self.key(record)`` equal to the item's).
        """
        if len(items) != len(keys):
            raise ValueError(f"{len(items)} items but {len(keys)} keys")
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        keys = [str(k) for k in keys]
        seeds = dict(zip(keys, item_seeds(self.seed, keys)))
        if self.out is None:
            return self._run_in_memory(items, keys, batch_size, work, seeds)
        out, shard = self.out, self.shard
        if self.settings is not None:
            check_manifest(out, self.settings, shard)
        path = shard_path(out, shard)
        done = {self.key(r) for r in read_records(path, repair=True)}  # cuts this process's torn last line
        if shard.count > 1 or shard_files(out):  # the merged output and every shard, of any process count
            done |= written_keys(out, self.key)
        barrier(shard)  # every process has read what is done before any writes more
        mine = shard_batches(list(zip(keys, items)), batch_size, shard)
        todo = [(start, [(k, it) for k, it in batch if k not in done]) for start, batch in mine]
        self.skipped = sum(len(batch) for _, batch in mine) - sum(len(batch) for _, batch in todo)
        left = sum(k not in done for k in keys)
        alone = shard.count == 1
        t0 = time.perf_counter()
        with (
            progress_bar(self.name, left, enabled=self.progress and alone) as advance,
            progress_for(shard, out, left, self.name, enabled=self.progress),
            JsonlAppender(path) as sink,
        ):
            for start, batch in todo:
                if not batch:
                    continue
                records = work(self._batch(start, batch, seeds))
                self._check_keys(records, batch)
                sink.write(records)
                self.written += len(records)
                advance(len(records))
        where = "" if alone else f"{shard.label} "
        logger.info(
            f"{self.name}: {where}wrote {self.written} {self.noun} ({self.skipped} already done) to {path} "
            f"in {time.perf_counter() - t0:.1f}s"
        )
        barrier(shard)  # every share is written
        if not self.is_main:
            return None
        merged = merge_shards(out, keys, self.key)
        if merged is not None:
            logger.info(f"{self.name}: merged {merged} {self.noun} into {out}")
        wanted = set(keys)
        return [r for r in gather_shards(out, keys, self.key) if self.key(r) in wanted]

    def _run_in_memory(
        self, items: Sequence[T], keys: list[str], batch_size: int, work: Work, seeds: dict[str, int]
    ) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        batches = shard_batches(list(zip(keys, items)), batch_size, Shard())
        with progress_bar(self.name, len(keys), enabled=self.progress) as advance:
            for start, batch in batches:
                got = work(self._batch(start, batch, seeds))
                self._check_keys(got, batch)
                records += got
                self.written += len(got)
                advance(len(got))
        return records

    def _batch(self, start: int, batch: list[tuple[str, T]], seeds: dict[str, int]) -> Batch[T]:
        keys = [k for k, _ in batch]
        return Batch(
            start, keys, [it for _, it in batch], [seeds[k] for k in keys], batch_seed(self.seed, keys)
        )

    def _check_keys(self, records: list[dict[str, Any]], batch: list[tuple[str, Any]]) -> None:
        # A record under another key would be skipped as done while its own item is lost.
        if [self.key(r) for r in records] != [k for k, _ in batch]:
            raise RuntimeError(f"{self.name}: the work on a batch returned records of other keys")


# --------------------------------------------------------------------------- (question, sample) jobs


def sample_key(sample: dict[str, Any]) -> str:
    """The key of an eval sample: ``"{question index}-{sample}"``."""
    return f"{sample['index']}-{sample['sample']}"


def sample_jobs(num_questions: int, num_samples: int) -> tuple[list[tuple[int, int]], list[str]]:
    """Every ``(question, sample)`` of an eval in order, and their keys (:func:`sample_key`)."""
    jobs = [(i, s) for i in range(num_questions) for s in range(num_samples)]
    return jobs, [f"{i}-{s}" for i, s in jobs]


def partial_samples(out: str | Path) -> Path:
    """Where an unfinished eval in directory ``out`` keeps its samples (its record file).

    Removed (``Job(keep=False)``) once ``results.json`` and ``samples.jsonl`` are written,
    so the next eval in ``out`` (any model) starts afresh while an interrupted one resumes.
    """
    return Path(out) / "samples.partial.jsonl"
