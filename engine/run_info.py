"""What the console shows about one run beyond its live events (no torch): its sample answers across
resumes, its details (config, dataset version, where it came from and wrote to) and its exports.

``Engine`` exposes these (``samples``, ``run_detail``, ``exports``); they only read the run store
and look at folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.events import Generation
from engine.store import RunRecord, RunStore

MAX_CHAIN = 50
"""Resumed-from links followed at most (a guard against a loop in a damaged history)."""


def lineage(store: RunStore, run: RunRecord) -> list[RunRecord]:
    """The run and the runs it was resumed from, oldest first."""
    chain, seen = [run], {run.id}
    while chain[0].resumed_from and len(chain) < MAX_CHAIN:
        parent = store.get_run(chain[0].resumed_from)
        if parent is None or parent.id in seen:
            break
        chain.insert(0, parent)
        seen.add(parent.id)
    return chain


def samples(store: RunStore, run: RunRecord) -> list[Generation]:
    """Every sample answer of the run and of the runs it continues, by step then prompt order.

    A resumed run repeats no steps, but when two runs of the chain answered at one step (a run
    resumed from an earlier checkpoint), the later run's answer is kept.
    """
    kept: dict[tuple[int, str, bool], Generation] = {}
    order: dict[str, int] = {}
    for member in lineage(store, run):
        for stored in store.events_of_type(member.id, "generation"):
            event = stored.event
            assert isinstance(event, Generation)
            kept[(event.step, event.prompt, event.base)] = event
            order.setdefault(event.prompt, len(order))
    return sorted(kept.values(), key=lambda g: (not g.base, g.step, order[g.prompt]))


@dataclass(frozen=True)
class RunDetail:
    """A run's details for the console's detail pane."""

    run: RunRecord
    config: dict[str, Any]
    """The resolved config the run used (without its job parameters)."""
    job: dict[str, Any]
    """What the job was given: data and eval files, the checkpoint it resumed from..."""
    datasets: list[dict[str, Any]]
    """The dataset versions it used: ``role`` (train/eval), ``fingerprint``, ``path``, ``samples``, ``tokens``."""
    world_size: int | None
    """Processes that trained it together, where the run recorded it."""


def run_detail(store: RunStore, run: RunRecord) -> RunDetail:
    """The details of ``run``."""
    config = {k: v for k, v in run.config.items() if k != "job"}
    job = dict(run.config.get("job", {}))
    versions = {row["fingerprint"]: row for row in store.dataset_versions()}
    datasets = [{**versions[fp], "role": role} for fp, role in store.run_dataset_links(run.id) if fp in versions]
    world = (run.runtime or {}).get("world_size") or config.get("launch", {}).get("nproc_per_node")
    return RunDetail(run, config, job, datasets, int(world) if isinstance(world, int | float) else None)


def exports(store: RunStore, run: RunRecord) -> list[dict[str, Any]]:
    """Where the run's checkpoints were exported or merged to: ``path``, ``kind``, ``source``, ``status``.

    From the export runs of the history whose source lies in this run's folder, and from the
    folders under ``<run>/exports/`` (``train-export``'s default place) that no export run names.
    """
    root = Path(run.output_dir)
    found: dict[str, dict[str, Any]] = {}
    for other in store.list_runs(kind="export", limit=10_000):
        source = Path(other.config.get("job", {}).get("target", ""))
        if root != Path() and (source == root or root in source.parents):
            metrics = other.final_metrics or {}
            kind = metrics.get("kind") or ("merged" if other.config.get("job", {}).get("merge") else "adapter")
            status = "missing" if other.status == "finished" and not Path(other.output_dir).is_dir() else other.status
            found[other.output_dir] = {"path": other.output_dir, "kind": kind, "source": source.name,
                                       "status": status, "run": other.id}
    folder = root / "exports"
    if folder.is_dir():
        for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if str(path) not in found:
                kind = path.name.rsplit("-", 1)[-1]
                found[str(path)] = {"path": str(path), "kind": kind, "source": path.name.rsplit("-", 1)[0],
                                    "status": "on disk", "run": ""}
    return list(found.values())


JOB_KINDS = ("export", "eval")
"""Runs that work on another run's files (``job.target`` in their config)."""


def jobs_on(store: RunStore, folders: list[Path]) -> list[RunRecord]:
    """The export and evaluation runs whose target lies in one of ``folders``."""
    found = []
    for kind in JOB_KINDS:
        for other in store.list_runs(kind=kind, limit=10_000):
            target = other.config.get("job", {}).get("target")
            if target and any(Path(target) == f or Path(f) in Path(target).parents for f in map(Path, folders)):
                found.append(other)
    return found
