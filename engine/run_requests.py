"""Asking for runs: fine-tuning (its data checked, the built-in base built first), resumes,
evaluations and exports (no torch).

``RunRequests`` is the part of ``engine.api.Engine`` that checks what a new run is given and
records it; ``Engine.start_run`` starts its worker. Bad input is a ``UserError`` (``file:line``
or a key path) before anything is recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.checkpoint_meta import check_checkpoint, read_checkpoint_meta
from engine.control import gone_within
from engine.errors import UserError
from engine.resume import adopt, checkpoint_step, latest_checkpoint_dir, refuse_nothing_left
from engine.store import LIVE_STATUSES, RunRecord

if TYPE_CHECKING:
    from engine.config import Config
    from engine.store import RunStore
    from engine.workspace import Workspace

EXIT_WAIT_S = 20.0
"""How long a resume waits for a crashed run's worker to finish exiting (a group tearing down) before refusing."""


class RunRequests:
    """Start training, resume, evaluation and export runs: mixed into ``Engine``, whose ``store``,
    ``workspace``, ``start_run``, ``get_run`` and ``list_runs`` it uses."""

    store: RunStore
    workspace: Workspace

    def start_training(self, data: Path | None, config: Config, eval_data: Path | None = None,
                       output: Path | None = None, queue_after: Sequence[str] = ()) -> str:
        """Check the data and model, start a fine-tuning run; returns its id.

        The data is the file ``data`` or, when it is None, the ``[[data.sources]]`` of the config
        (mixed by weight; their paths are resolved here, relative to the current folder). Bad data
        or a bad model folder raise ``UserError`` (``file:line`` or key path) before anything is
        recorded; every record is rendered with the model's own chat template, if it has one.
        When the run needs the built-in base and it is not built yet, a
        ``build-base`` run is started first (or a live one is reused) and the returned training
        run stays ``pending`` until that one finishes, then trains on its own (it fails if the
        build does not finish). ``waits_for(run_id)`` names that build run, so a caller can
        follow it first: attach to ``waits_for(id)`` if it is not None, then to ``id``.

        ``queue_after`` names runs to wait for: the run is ``queued`` (its worker waiting, nothing
        loaded) until each of them has ended, however it ended, then starts.
        """
        from engine.config import config_to_dict, model_family
        from engine.data.chat_template import model_template
        from engine.data.dataset import fingerprint
        from engine.data.validate import precheck

        config, files = training_files(data, config)
        eval_path = Path(eval_data).resolve() if eval_data else None
        template = model_template(config)
        checks = files + ([(eval_path, config.data.format)] if eval_path else [])
        for path, fmt in checks:
            precheck(path, fmt or None, config.data.on_invalid, config.data.duplicates == "keep",
                     config.training.objective, template=template)
        model_family(config)
        after = None if config.model.path else self._ensure_base(config)
        first = files[0][0]
        job: dict[str, Any] = {"data": str(first) if data is not None else "", "eval_data": str(eval_path or ""),
                               "after": after or ""}
        if queue_after:
            job["queue_after"] = [self.get_run(run_id).id for run_id in queue_after]
        return self.start_run("train", {**config_to_dict(config), "job": job},
                              config.model.path or config.model.builtin, " + ".join(str(p) for p, _ in files),
                              str(Path(output).resolve()) if output else "", fingerprint=fingerprint(first))

    def _ensure_base(self, config: Config) -> str | None:
        """The build-base run the built-in base waits on (a live one or a new one); None if built.

        A base not built yet is copied from the shipped pre-built one when that matches
        (``engine.builtin``), which takes a fraction of a second instead of a pre-training.
        """
        from engine.builtin import base_dir, install_shipped, is_built
        from engine.config import config_to_dict

        folder = base_dir(self.workspace.models_dir, config.model.builtin)
        if is_built(folder):
            return None
        for run in self.list_runs(kind="build-base"):
            if run.status in LIVE_STATUSES and run.output_dir == str(folder):
                return run.id
        if config.model.prebuilt and install_shipped(config.model.builtin, folder):
            return None
        return self.start_run("build-base", config_to_dict(config), config.model.builtin,
                              output_dir=str(folder))

    def waits_for(self, run_id: str) -> str | None:
        """The id of the run that ``run_id`` waits for before it starts (a base build), or None."""
        return self.get_run(run_id).config.get("job", {}).get("after") or None

    def resume_run(self, target: str, *, max_steps: int | None = None, learning_rate: float | None = None,
                   distributed: dict[str, Any] | None = None) -> str:
        """Start a new run that continues a checkpoint folder or a run's latest checkpoint.

        ``max_steps`` changes the total optimizer steps (e.g. to extend a run), ``learning_rate``
        the peak learning rate of the schedule from here on; ``distributed`` changes
        ``[distributed]`` keys (e.g. ``{"nproc_per_node": 1}``: continue a group's run in one
        process, on the same global batches; ConfigError naming a bad key). The new run records
        ``resumed_from`` and writes into a folder of its own (``runs/<new id>/``), so the source
        run's files are never touched. UserError when a live run already continues it, or when no
        step would be left to train (a finished run resumed with the same max steps).
        """
        checkpoint, previous = self.resume_point(target)
        stored = dict(previous.config)
        stored["job"] = {**stored.get("job", {}), "resume_from": str(checkpoint), "after": ""}
        changes = {k: v for k, v in (("max_steps", max_steps), ("learning_rate", learning_rate)) if v is not None}
        if changes:
            stored["training"] = {**stored["training"], **changes}
        if distributed:
            stored["distributed"] = {**stored.get("distributed", {}), **distributed}
        if changes or distributed:
            from engine.config import check_distributed, config_from_dict

            check_distributed(config_from_dict({k: v for k, v in stored.items() if k != "job"}))
        refuse_nothing_left(checkpoint, int(stored["training"].get("max_steps", 0) or 0), max_steps is not None,
                            finished=previous.status == "finished")
        return self.start_run("train", stored, previous.model, previous.dataset_path,
                              resumed_from=previous.id, fingerprint=previous.dataset_fingerprint)

    def resume_plan(self, target: str) -> dict[str, Any]:
        """What a resume of ``target`` would start from, for a dialog: ``run_id``, ``checkpoint``,
        ``step``, and the run's ``max_steps``, ``epochs`` and ``learning_rate`` (UserError as ``resume_point``)."""
        checkpoint, run = self.resume_point(target, exit_wait_s=0.5)  # a dialog's question: no long wait
        training = run.config.get("training", {})
        return {"run_id": run.id, "checkpoint": str(checkpoint), "step": checkpoint_step(checkpoint),
                "max_steps": int(training.get("max_steps", 0) or 0), "epochs": training.get("epochs"),
                "learning_rate": training.get("learning_rate")}

    def resume_point(self, target: str, exit_wait_s: float = EXIT_WAIT_S) -> tuple[Path, RunRecord]:
        """The checkpoint a ``resume_run(target)`` would continue from, and the run that wrote it.

        The checkpoint is checked whole first (``check_checkpoint``: one line naming a damaged
        file); a checkpoint folder whose run the history lacks brings that run back (``adopt``).
        """
        path = Path(target)
        folder = path.is_dir()
        if folder:
            adopt(self.store, path)
        run = self.get_run(read_checkpoint_meta(path)["run_id"] if folder else target)
        for other in self.store.runs_resumed_from(run.id):
            self.get_run(other.id)  # a dead continuation turns crashed here, so it does not block
        if run.status in LIVE_STATUSES:
            raise UserError(f"run {run.id} is {run.status}; stop it before resuming it in a new run")
        if run.status == "crashed" and not gone_within(run.pid, run.started_at, exit_wait_s):
            raise UserError(f"run {run.id} stopped answering but its worker (pid {run.pid}) is still alive; "
                            f"end it (kill {run.pid}) before resuming, so two workers never write one run")
        checkpoint = path.resolve() if folder else latest_checkpoint_dir(run)
        if checkpoint is None:
            raise UserError(f"run {run.id} has no checkpoint to resume from")
        check_checkpoint(checkpoint)
        return checkpoint, run

    def evaluate(self, target: Path, data: Path, config: Config, objective: str | None = None) -> str:
        """Start an ``eval`` run of a model folder, adapter or checkpoint on a data file.

        It evaluates with ``objective``, else as ``engine.evaluation.eval_objective`` decides (a
        ``training.objective`` other than sft counts as asked for); the data is checked for it
        first (a record of another kind is one line naming the objective and the shape found).
        """
        from engine.config import config_to_dict
        from engine.data.dataset import fingerprint
        from engine.data.validate import precheck
        from engine.evaluation import eval_objective, reference_base

        target, data = Path(target).resolve(), Path(data).resolve()
        if not target.is_dir():
            raise UserError(f"{target}: no such model or checkpoint folder")
        asked = objective or (config.training.objective if config.training.objective != "sft" else None)
        fmt = config.data.format or None
        name = eval_objective(target, data, fmt, asked)
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, objective=name))
        precheck(data, fmt, config.data.on_invalid, config.data.duplicates == "keep", name)
        job = {"target": str(target), "data": str(data), "reference": reference_base(target, config.model.path)}
        stored = {**config_to_dict(config), "job": job}
        return self.start_run("eval", stored, str(target), str(data), fingerprint=fingerprint(data))

    def export_checkpoint(self, target: Path, merge: bool, config: Config, output: Path | None = None) -> str:
        """Start an ``export`` run: a checkpoint as an adapter or, with ``merge``, a merged model.

        The output defaults to ``<run>/exports/<checkpoint>-<kind>``; UserError when the source
        is not a checkpoint, adapter or model folder, or the output exists and is not empty.
        Returns the export run's id (its result is the run's ``final_metrics``).
        """
        from engine.config import config_to_dict
        from engine.train.export import default_output, inspect_source  # light: JSON only

        source = inspect_source(Path(target).resolve())
        out = Path(output).resolve() if output else default_output(source.folder, merge)
        if out.exists() and any(out.iterdir()):
            raise UserError(f"output {out}: already exists and is not empty")
        stored = {**config_to_dict(config), "job": {"target": str(source.folder), "merge": bool(merge)}}
        return self.start_run("export", stored, str(source.folder), output_dir=str(out))


def training_files(data: Path | None, config: Config) -> tuple[Config, list[tuple[Path, str]]]:
    """The config (source paths made absolute) and the files a run trains on, each with its format:
    ``data``, or the ``[[data.sources]]``; UserError when there are both or neither."""
    sources = config.data.sources
    if data is not None and sources:
        raise UserError(f"{data}: the config also names data.sources; give the data file or "
                        "[[data.sources]], not both")
    if data is None and not sources:
        raise UserError("no training data: give a data file, or [[data.sources]] tables in the config")
    if data is not None:
        return config, [(Path(data).resolve(), config.data.format)]
    absolute = [dataclasses.replace(s, path=str(Path(s.path).expanduser().resolve())) for s in sources]
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, sources=absolute))
    return config, [(Path(s.path), s.format or config.data.format) for s in absolute]


def resolve_config(config_file: str | Path | None, overrides: Sequence[str]) -> Config:
    """The config a run started now would use: layered, with the model family's overrides."""
    from engine.config import load_config, model_family

    path = Path(config_file) if config_file else None
    first = load_config(path, list(overrides))
    return load_config(path, list(overrides), family=model_family(first))
