"""The run history's tables: one migration step per schema version (``PRAGMA user_version``).

``RunStore`` (``engine.store``) runs the steps a database lacks, in one write transaction, when it
opens it; a new table or column is a new step at the end of ``MIGRATIONS``, never an edit of an
old one. Raw SQL only where sqlite-utils cannot say it (``AUTOINCREMENT``, dropping a table).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.sqlite_lib import Database


def migrate_v1(db: Database) -> None:
    """The first schema: runs, events, metrics and checkpoints."""
    db.create_table(
        "runs",
        {"id": str, "kind": str, "status": str, "config": str, "model": str, "dataset_path": str,
         "dataset_fingerprint": str, "output_dir": str, "created_at": float, "started_at": float,
         "ended_at": float, "pid": int, "heartbeat_at": float, "final_metrics": str,
         "resumed_from": str, "error": str},
        pk="id", not_null={"kind", "status", "config", "created_at"},
    )
    db.table("runs").create_index(["created_at"])
    # Raw SQL only for AUTOINCREMENT, which sqlite-utils cannot declare: event ids are the bus
    # cursor, so they must never be reused, even after the newest rows are deleted.
    db.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, "
        "time REAL NOT NULL, type TEXT NOT NULL, payload TEXT NOT NULL)"
    )
    db.table("events").create_index(["run_id", "id"])
    db.create_table(
        "metrics",
        {"run_id": str, "step": int, "time": float, "loss": float, "lr": float, "grad_norm": float,
         "tokens_per_s": float, "eval_loss": float, "epoch": float},
        not_null={"run_id", "step", "time"},
    )
    db.table("metrics").create_index(["run_id", "step"])
    db.create_table(
        "checkpoints",
        {"run_id": str, "step": int, "path": str, "eval_loss": float, "is_best": int,
         "created_at": float, "size_bytes": int},
        pk="path", not_null={"run_id", "step", "is_best", "created_at"},
    )
    db.table("checkpoints").create_index(["run_id", "step"])


def migrate_v2(db: Database) -> None:
    """Control requests (stop, pause, resume, checkpoint) that a run's worker polls and acknowledges."""
    db.execute(
        "CREATE TABLE controls (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, "
        "command TEXT NOT NULL, created_at REAL NOT NULL, done_at REAL)"
    )
    db.table("controls").create_index(["run_id", "done_at"])


def migrate_v3(db: Database) -> None:
    """Token-cache entries, dataset versions and which runs used which dataset version."""
    db.create_table("cache_entries", {"key": str, "path": str, "bytes": int, "created_at": float,
                                      "last_used_at": float, "hits": int},
                    pk="key", not_null={"path", "bytes", "created_at", "last_used_at", "hits"})
    db.create_table("dataset_versions", {"fingerprint": str, "path": str, "samples": int, "tokens": int,
                                         "invalid": int, "created_at": float},
                    pk="fingerprint", not_null={"path", "samples", "tokens", "created_at"})
    db.create_table("run_datasets", {"run_id": str, "fingerprint": str, "role": str},
                    pk=("run_id", "fingerprint", "role"))
    db.table("run_datasets").create_index(["fingerprint"])


def migrate_v4(db: Database) -> None:
    """What the worker chose for the machine it ran on (precision and why, threads), as JSON."""
    db.table("runs").add_column("runtime", str)


def migrate_v5(db: Database) -> None:
    """Step metrics are kept once, in the events they came in: the copy in ``metrics`` goes."""
    db.execute("DROP TABLE metrics")


MIGRATIONS: list[Callable[[Database], None]] = [migrate_v1, migrate_v2, migrate_v3, migrate_v4, migrate_v5]
"""The steps, oldest first: a database at version ``v`` runs ``MIGRATIONS[v:]``."""
SCHEMA_VERSION = len(MIGRATIONS)
