"""The run history, which is also the bus between a run's worker process and its viewers (no torch).

One SQLite file in WAL mode: the worker appends events and updates its run row; any number of
viewers (the TUI, the headless CLI) poll ``events(run_id, after_id=...)``. All SQL lives here.
Every method is one short transaction; writes take the write lock up front (``BEGIN IMMEDIATE``)
so that a busy database makes them wait (``busy_timeout``) instead of failing. The schema version
is ``PRAGMA user_version``; the tables and one migration step per version are in ``engine.store_schema``.

Nested writes rely on sqlite-utils 4 (``Database.atomic`` turns them into savepoints).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from engine import store_schema
from engine.disk import disk_full, full_error, low_on_space
from engine.errors import UserError
from engine.store_schema import SCHEMA_VERSION

if TYPE_CHECKING:  # sqlite-utils loads for the first write; the event types for the first event
    from engine.events import Event, StoredEvent
    from engine.sqlite_lib import Database

KINDS = ("train", "build-base", "eval", "export")
STATUSES = ("pending", "queued", "running", "paused", "finished", "failed", "stopped", "crashed")
LIVE_STATUSES = ("pending", "queued", "running", "paused")
"""``queued``: the worker waits for the runs named in ``job.queue_after`` to end before it starts."""
CONTROL_COMMANDS = ("stop", "pause", "resume", "checkpoint")
BUSY_TIMEOUT_MS = 10_000
_JSON_FIELDS = ("config", "final_metrics", "runtime")


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``, with ``config`` and ``final_metrics`` decoded from JSON."""

    id: str
    kind: str
    status: str
    config: dict[str, Any]
    model: str
    dataset_path: str
    dataset_fingerprint: str
    output_dir: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    heartbeat_at: float | None
    final_metrics: dict[str, Any] | None
    resumed_from: str | None
    error: str | None
    runtime: dict[str, Any] | None = None
    """How the worker ran the job here: precision chosen and why, CPU, threads (``Runtime`` events)."""


@dataclass(frozen=True)
class CheckpointRecord:
    """One row of ``checkpoints``."""

    run_id: str
    step: int
    path: str
    eval_loss: float | None
    is_best: bool
    created_at: float
    size_bytes: int | None


_RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))



_STEP_FIELD = "CASE WHEN type = 'step' THEN json_extract(payload, '$.{0}') END AS {0}"
_METRICS_QUERY = (
    "SELECT json_extract(payload, '$.step') AS step, time, "
    + ", ".join(_STEP_FIELD.format(name) for name in ("loss", "lr", "grad_norm", "tokens_per_s"))
    + ", CASE WHEN type = 'eval' THEN json_extract(payload, '$.eval_loss') END AS eval_loss, "
    + _STEP_FIELD.format("epoch")
    + ", json_extract(payload, '$.metrics') AS metrics FROM events "
    "WHERE run_id = ? AND type IN ('step', 'eval') ORDER BY step, id"
)


def _json_default(value: Any) -> Any:
    """JSON for numpy/torch scalars (``.item()``), paths and other stray objects."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _encode(value: Any) -> str:
    """A value as compact JSON."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _run_from_row(row: dict[str, Any]) -> RunRecord:
    """A ``RunRecord`` from a ``runs`` row."""
    values = {name: row.get(name) for name in _RUN_COLUMNS}
    values["config"] = json.loads(row["config"]) if row.get("config") else {}
    values["final_metrics"] = json.loads(row["final_metrics"]) if row.get("final_metrics") else None
    values["runtime"] = json.loads(row["runtime"]) if row.get("runtime") else None
    for name in ("model", "dataset_path", "dataset_fingerprint", "output_dir"):
        values[name] = values[name] or ""
    return RunRecord(**values)


def _checkpoint_from_row(row: dict[str, Any]) -> CheckpointRecord:
    """A ``CheckpointRecord`` from a ``checkpoints`` row."""
    return CheckpointRecord(run_id=row["run_id"], step=row["step"], path=row["path"],
                            eval_loss=row["eval_loss"], is_best=bool(row["is_best"]),
                            created_at=row["created_at"], size_bytes=row["size_bytes"])


def _refuse_second_resume(db: Database, source: str) -> None:
    """UserError when a live run already continues run ``source``."""
    marks = ", ".join("?" * len(LIVE_STATUSES))
    rows = list(db.query(f"SELECT id, status FROM runs WHERE resumed_from = ? AND status IN ({marks}) "
                         "ORDER BY created_at DESC LIMIT 1", [source, *LIVE_STATUSES]))
    if rows:
        live = rows[0]
        raise UserError(f"run {source} is already being continued by run {live['id']} ({live['status']}); "
                        f"follow it with: llamahome-tui --no-ui attach {live['id']}")


class RunStore:
    """The run history in one SQLite file; open one per process (or thread group) and close it.

    Safe to open from several processes at once. One instance may be shared by threads (calls are
    serialized), but not across ``fork``: a child process must open its own.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self.conn = conn
        self._db: Database | None = None
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException as exc:
            conn.close()
            error = self._user_error(exc)
            if error is None or error is exc:
                raise
            raise error from None

    @property
    def db(self) -> Database:
        """sqlite-utils over the connection, made for the first write.

        Reading needs only sqlite3: a viewer that only reads the history (the console until it
        starts or controls a run) never imports sqlite-utils, about a tenth of a second.
        """
        if self._db is None:
            from engine.sqlite_lib import Database

            self._db = Database(self.conn, execute_plugins=False)
        return self._db

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Database]:
        """One transaction; a write one holds the write lock from its start."""
        with self._lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self.db if write else None  # type: ignore[misc]  # reads use the connection
                except BaseException:
                    self._rollback()
                    raise
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._rollback()
                error = self._user_error(exc)
                if error is None:
                    raise
                raise error from None

    def _rollback(self) -> None:
        """Roll back an open transaction (best effort: the connection may be failing already)."""
        conn = self.conn
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _user_error(self, exc: BaseException) -> UserError | None:
        """The one-line error a full disk or a damaged database file means, else None."""
        if isinstance(exc, UserError):
            return exc
        if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError):
            return None
        full = disk_full(exc, self.path)
        if full is not None:
            return full_error(self.path)
        if low_on_space(self.path):
            return full_error(self.path)
        text = str(exc)
        if any(word in text for word in ("not a database", "malformed", "encrypted", "disk I/O error")):
            return UserError(f"{self.path}: not a readable run history ({text}); move it away "
                             "and LlamaHome starts a new one (checkpoints stay resumable)")
        return None

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """The rows of one query, read in its own transaction."""
        with self._transaction(write=False):
            cursor = self.conn.execute(sql, params)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor]

    def _migrate(self) -> None:
        """Bring the schema up to ``SCHEMA_VERSION``; a no-op (and no write lock) when it is."""
        if self._rows("PRAGMA user_version")[0]["user_version"] == SCHEMA_VERSION:
            return
        with self._transaction(write=True) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UserError(f"{self.path.name} has schema version {version}, newer than this "
                                f"LlamaHome understands ({SCHEMA_VERSION}); upgrade LlamaHome")
            for step in store_schema.MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def schema_version(self) -> int:
        """The database's schema version (``PRAGMA user_version``)."""
        return int(self._rows("PRAGMA user_version")[0]["user_version"])

    # Runs

    def create_run(self, run_id: str, kind: str, config: dict[str, Any], model: str,
                   dataset_path: str, dataset_fingerprint: str = "", output_dir: str = "",
                   resumed_from: str | None = None) -> None:
        """Record a new run with status ``pending``; ``ValueError`` if the id is taken.

        A run ``resumed_from`` another is refused (``UserError`` naming it) while a live run
        already continues that one: the check and the insert are one transaction.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r} (expected one of {', '.join(KINDS)})")
        row = {"id": run_id, "kind": kind, "status": "pending", "config": _encode(config),
               "model": model, "dataset_path": dataset_path,
               "dataset_fingerprint": dataset_fingerprint, "output_dir": output_dir,
               "created_at": time.time(), "resumed_from": resumed_from}
        try:
            with self._transaction(write=True) as db:
                if resumed_from:
                    _refuse_second_resume(db, resumed_from)
                db.table("runs").insert(row)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"run {run_id} already exists") from exc

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run (``config``/``final_metrics`` given as dicts); ``KeyError`` if none."""
        unknown = set(fields) - set(_RUN_COLUMNS[1:])
        if unknown:
            raise ValueError(f"unknown run field(s): {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown run status {fields['status']!r}")
        updates = {k: _encode(v) if k in _JSON_FIELDS and v is not None else v
                   for k, v in fields.items()}
        from engine.sqlite_lib import NotFoundError

        try:
            with self._transaction(write=True) as db:
                db.table("runs").update(run_id, updates)
        except NotFoundError as exc:
            raise KeyError(run_id) from exc

    def merge_runtime(self, run_id: str, values: dict[str, Any]) -> None:
        """Merge ``values`` into the run's ``runtime`` record (one read-modify-write transaction)."""
        with self._transaction(write=True) as db:
            row = db.execute("SELECT runtime FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None:
                raise KeyError(run_id)
            merged = {**(json.loads(row[0]) if row[0] else {}), **values}
            db.execute("UPDATE runs SET runtime = ? WHERE id = ?", [_encode(merged), run_id])

    def get_run(self, run_id: str) -> RunRecord | None:
        """A run by its exact id, or None."""
        rows = self._rows("SELECT * FROM runs WHERE id = ?", [run_id])
        return _run_from_row(rows[0]) if rows else None

    def list_runs(self, kind: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Runs (of one kind, if given), newest first."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._rows(f"SELECT * FROM runs {where} ORDER BY created_at DESC, id DESC LIMIT ?",
                          [*params, limit])
        return [_run_from_row(row) for row in rows]

    def running_runs(self) -> list[RunRecord]:
        """The runs whose status is ``running`` (their workers may have died unseen)."""
        return [_run_from_row(row) for row in self._rows("SELECT * FROM runs WHERE status = 'running'")]

    def live_runs(self) -> list[RunRecord]:
        """The runs with a live status (pending, queued, running, paused), newest first."""
        marks = ", ".join("?" * len(LIVE_STATUSES))
        return [_run_from_row(row) for row in self._rows(
            f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY created_at DESC", list(LIVE_STATUSES))]

    def find_run(self, prefix: str) -> RunRecord | None:
        """The run whose id is, or uniquely starts with, ``prefix``; None if no run matches.

        Raises ``UserError`` when the prefix matches several runs.
        """
        if not prefix:
            return None
        rows = self._rows("SELECT * FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
                          [len(prefix), prefix])
        exact = [row for row in rows if row["id"] == prefix]
        if exact or len(rows) == 1:
            return _run_from_row((exact or rows)[0])
        if not rows:
            return None
        shown = ", ".join(row["id"] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise UserError(f"run id {prefix!r} is ambiguous: it matches {shown}")

    def heartbeat(self, run_id: str) -> None:
        """Stamp the run's ``heartbeat_at`` with the current time."""
        with self._transaction(write=True) as db:
            db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [time.time(), run_id])

    def delete_run(self, run_id: str) -> None:
        """Delete a run's rows in every table (its files are not touched)."""
        with self._transaction(write=True) as db:
            for table in ("events", "checkpoints", "controls", "run_datasets"):
                db.table(table).delete_where("run_id = ?", [run_id])
            db.table("runs").delete_where("id = ?", [run_id])

    def end_if_live(self, run_id: str, status: str, error: str | None) -> bool:
        """Set a final status on a run only if it is still live (pending/running/paused).

        One conditional UPDATE, so a worker's own last write is never overwritten; returns
        whether the run changed.
        """
        marks = ", ".join("?" * len(LIVE_STATUSES))
        with self._transaction(write=True) as db:
            cursor = db.execute(
                f"UPDATE runs SET status = ?, ended_at = ?, error = COALESCE(?, error) "
                f"WHERE id = ? AND status IN ({marks})", [status, time.time(), error, run_id, *LIVE_STATUSES])
            return cursor.rowcount > 0

    def runs_resumed_from(self, run_id: str) -> list[RunRecord]:
        """The runs that continue run ``run_id``, newest first."""
        rows = self._rows("SELECT * FROM runs WHERE resumed_from = ? ORDER BY created_at DESC", [run_id])
        return [_run_from_row(row) for row in rows]

    def runs_with_output(self, output_dir: str) -> list[str]:
        """Ids of the runs writing into ``output_dir`` (a resumed run shares its parent's)."""
        return [row["id"] for row in self._rows("SELECT id FROM runs WHERE output_dir = ?", [output_dir])]

    # Control requests

    def add_control(self, run_id: str, command: str) -> int:
        """Queue a control request for a run's worker; returns its id."""
        if command not in CONTROL_COMMANDS:
            raise ValueError(f"unknown control command {command!r}")
        row = {"run_id": run_id, "command": command, "created_at": time.time(), "done_at": None}
        with self._transaction(write=True) as db:
            control_id = db.table("controls").insert(row).last_rowid
        assert control_id is not None
        return control_id

    def take_controls(self, run_id: str) -> list[str]:
        """The run's pending control commands, oldest first, marked done (a plain read when none)."""
        query = "SELECT id, command FROM controls WHERE run_id = ? AND done_at IS NULL ORDER BY id"
        if not self._rows(query, [run_id]):
            return []
        with self._transaction(write=True) as db:
            rows = list(db.query(query, [run_id]))
            if rows:
                db.execute(f"UPDATE controls SET done_at = ? WHERE id IN ({', '.join('?' * len(rows))})",
                           [time.time(), *(row["id"] for row in rows)])
        return [row["command"] for row in rows]

    def last_event_type(self, run_id: str) -> str | None:
        """The type of the run's newest event, or None."""
        rows = self._rows("SELECT type FROM events WHERE run_id = ? ORDER BY id DESC LIMIT 1", [run_id])
        return rows[0]["type"] if rows else None

    # Events and metrics

    def add_event(self, run_id: str, event: Event) -> int:
        """Append an event; returns its id (Step and Eval events are the metrics too, see ``metrics``)."""
        from engine.events import EVENT_TYPES

        if EVENT_TYPES.get(event.type) is not type(event):
            raise TypeError(f"not a run event: {event!r}")
        now = time.time()
        row = {"run_id": run_id, "time": now, "type": event.type,
               "payload": _encode(event.to_payload())}
        with self._transaction(write=True) as db:
            event_id = db.table("events").insert(row).last_rowid
        assert event_id is not None
        return event_id

    def events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """The run's events with an id above ``after_id``, oldest first, at most ``limit``."""
        rows = self._rows("SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                          [run_id, after_id, limit])
        from engine.events import StoredEvent, event_from_row

        return [StoredEvent(id=row["id"], run_id=row["run_id"], time=row["time"],
                            event=event_from_row(row["type"], json.loads(row["payload"])))
                for row in rows]

    def events_of_type(self, run_id: str, event_type: str, limit: int = 10_000) -> list[StoredEvent]:
        """The run's events of one type (``generation``, ``log``...), oldest first, at most ``limit``."""
        rows = self._rows("SELECT * FROM events WHERE run_id = ? AND type = ? ORDER BY id LIMIT ?",
                          [run_id, event_type, limit])
        from engine.events import StoredEvent, event_from_row

        return [StoredEvent(id=row["id"], run_id=row["run_id"], time=row["time"],
                            event=event_from_row(row["type"], json.loads(row["payload"])))
                for row in rows]

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        """The run's metric rows by step, read from its Step and Eval events (kept once, there).

        Step rows have ``eval_loss`` None, Eval rows only it; ``metrics`` is the objective's own
        (rewards, reward accuracy...) as a dict.
        """
        rows = self._rows(_METRICS_QUERY, [run_id])
        for row in rows:
            row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
        return rows

    # Checkpoints

    def add_checkpoint(self, run_id: str, step: int, path: str | Path, eval_loss: float | None,
                       is_best: bool = False, size_bytes: int | None = None) -> None:
        """Record (or replace) a checkpoint; a best one takes ``is_best`` from the run's others."""
        row = {"run_id": run_id, "step": step, "path": str(path), "eval_loss": eval_loss,
               "is_best": int(bool(is_best)), "created_at": time.time(), "size_bytes": size_bytes}
        with self._transaction(write=True) as db:
            if is_best:
                db.execute("UPDATE checkpoints SET is_best = 0 WHERE run_id = ? AND is_best = 1",
                           [run_id])
            db.table("checkpoints").insert(row, replace=True)

    def remove_checkpoint(self, path: str | Path) -> None:
        """Forget a checkpoint (its files are not touched)."""
        with self._transaction(write=True) as db:
            db.table("checkpoints").delete_where("path = ?", [str(path)])

    def checkpoints(self, run_id: str) -> list[CheckpointRecord]:
        """The run's checkpoints, by step."""
        rows = self._rows("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step, created_at",
                          [run_id])
        return [_checkpoint_from_row(row) for row in rows]

    def best_checkpoint(self, run_id: str) -> CheckpointRecord | None:
        """The run's checkpoint marked best, or None."""
        rows = self._rows("SELECT * FROM checkpoints WHERE run_id = ? AND is_best = 1 "
                          "ORDER BY step DESC LIMIT 1", [run_id])
        return _checkpoint_from_row(rows[0]) if rows else None

    def latest_checkpoint(self, run_id: str) -> CheckpointRecord | None:
        """The run's checkpoint with the highest step, or None."""
        rows = self._rows("SELECT * FROM checkpoints WHERE run_id = ? "
                          "ORDER BY step DESC, created_at DESC LIMIT 1", [run_id])
        return _checkpoint_from_row(rows[0]) if rows else None

    # Token cache and dataset versions

    def put_cache_entry(self, key: str, path: str | Path, size: int) -> None:
        """Record a new (or rebuilt) cache entry, last used now, with no hits yet."""
        now = time.time()
        row = {"key": key, "path": str(path), "bytes": size, "created_at": now, "last_used_at": now, "hits": 0}
        with self._transaction(write=True) as db:
            db.table("cache_entries").insert(row, replace=True)

    def touch_cache_entry(self, key: str) -> bool:
        """Count a hit on a cache entry and stamp it used now; False when there is no such entry."""
        with self._transaction(write=True) as db:
            cursor = db.execute("UPDATE cache_entries SET hits = hits + 1, last_used_at = ? WHERE key = ?",
                                [time.time(), key])
            return cursor.rowcount > 0

    def cache_entries(self) -> list[dict[str, Any]]:
        """Every cache entry, least recently used first."""
        return self._rows("SELECT * FROM cache_entries ORDER BY last_used_at, key")

    def remove_cache_entry(self, key: str) -> None:
        """Forget a cache entry (its files are not touched)."""
        with self._transaction(write=True) as db:
            db.table("cache_entries").delete_where("key = ?", [key])

    def add_dataset_version(self, fingerprint: str, path: str | Path, samples: int, tokens: int,
                            invalid: int = 0) -> None:
        """Record a dataset version (kept as first recorded when it is already known)."""
        row = {"fingerprint": fingerprint, "path": str(path), "samples": samples, "tokens": tokens,
               "invalid": invalid, "created_at": time.time()}
        with self._transaction(write=True) as db:
            db.table("dataset_versions").insert(row, ignore=True)

    def link_run_dataset(self, run_id: str, fingerprint: str, role: str = "train") -> None:
        """Note that a run used a dataset version (``role``: train or eval)."""
        with self._transaction(write=True) as db:
            db.table("run_datasets").insert({"run_id": run_id, "fingerprint": fingerprint, "role": role},
                                            ignore=True)

    def run_dataset_links(self, run_id: str) -> list[tuple[str, str]]:
        """The dataset versions a run used: (fingerprint, role), train first."""
        rows = self._rows("SELECT fingerprint, role FROM run_datasets WHERE run_id = ? ORDER BY role DESC", [run_id])
        return [(row["fingerprint"], row["role"]) for row in rows]

    def dataset_versions(self, path: str | Path | None = None) -> list[dict[str, Any]]:
        """Dataset versions (of one path, if given), newest first, each with ``runs``: the run ids."""
        where, params = ("WHERE path = ?", [str(path)]) if path is not None else ("", [])
        rows = self._rows(f"SELECT * FROM dataset_versions {where} ORDER BY created_at DESC", params)
        for row in rows:
            row["runs"] = [r["run_id"] for r in self._rows(
                "SELECT run_id FROM run_datasets WHERE fingerprint = ? ORDER BY run_id", [row["fingerprint"]])]
        return rows


def __getattr__(name: str) -> Any:
    """``StoredEvent`` and the event helpers, still importable from here (PEP 562; see ``engine.events``)."""
    if name in ("EVENT_TYPES", "Event", "StoredEvent", "event_from_row"):
        from engine import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
