"""The workspace folder: the run history database, run outputs, built models and caches (no torch).

Its location is, in order: an explicit path, the ``LLAMAHOME_HOME`` environment variable, or
``./workspace``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import UserError

ENV_VAR = "LLAMAHOME_HOME"
DEFAULT_DIR = "workspace"
DB_NAME = "llamahome.db"
PRIVATE_UMASK = 0o077
"""The umask of every process that writes a workspace: files 0600, folders 0700."""


@dataclass(frozen=True)
class Workspace:
    """A workspace rooted at ``root``, with fixed names for what lives inside it."""

    root: Path

    @classmethod
    def resolve(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Workspace:
        """The workspace at ``path``, else at ``$LLAMAHOME_HOME``, else at ``./workspace``.

        ``env`` defaults to ``os.environ``; the root is made absolute so that a worker process
        started from another folder finds the same workspace.
        """
        env = os.environ if env is None else env
        chosen = path if path not in (None, "") else env.get(ENV_VAR) or DEFAULT_DIR
        return cls(Path(chosen).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        """The run history database."""
        return self.root / DB_NAME

    @property
    def runs_dir(self) -> Path:
        """The folder holding one output folder per run."""
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        """The folder holding built base models."""
        return self.root / "models"

    @property
    def cache_dir(self) -> Path:
        """The folder for caches (tokenized datasets and the like)."""
        return self.root / "cache"

    def run_dir(self, run_id: str) -> Path:
        """The output folder of run ``run_id`` (not created); rejects ids that are not a name."""
        if run_id in ("", ".", "..") or Path(run_id).name != run_id or "\\" in run_id:
            raise ValueError(f"invalid run id {run_id!r}")
        return self.runs_dir / run_id

    def ensure(self) -> Workspace:
        """Create the workspace folders if missing, private to this user; returns ``self``.

        Sets this process's umask to ``PRIVATE_UMASK`` (the worker processes it starts inherit
        it), so everything written from now on is 0600 / 0700 whatever the user's umask, and
        takes group and other access off the folders and the database made before.
        """
        os.umask(PRIVATE_UMASK)
        for folder in (self.root, self.runs_dir, self.models_dir, self.cache_dir):
            if folder.exists() and not folder.is_dir():
                raise UserError(f"{folder}: exists and is not a folder (--workspace / $LLAMAHOME_HOME)")
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"{folder}: cannot create the workspace folder: {exc.strerror}") from None
            _make_private(folder)
        for suffix in ("", "-wal", "-shm"):
            _make_private(self.db_path.with_name(DB_NAME + suffix))
        return self


def _make_private(path: Path) -> None:
    """Drop group and other permissions of a file or folder this user owns (if it exists)."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(mode & 0o700)
    except OSError:
        pass


def new_run_id(now: datetime | None = None) -> str:
    """A new run id such as ``20261122-011700-ab12``: UTC time and 4 random hex digits."""
    now = now or datetime.now(timezone.utc)
    import secrets  # here: hashlib and OpenSSL load when a run is made, not with every viewer

    return f"{now.astimezone(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
