"""Disk-full handling: recognise it whatever library hit it, and keep room to say so (no torch).

A full disk reaches the engine in many guises: ``OSError`` ENOSPC, sqlite's "database or disk is
full", safetensors' "No space left on device", and torch's bare "unexpected pos 576 vs 534".
``disk_full`` turns any of them into a ``DiskFullError`` naming the path; ``writing(path)``
does it around a write whose library may not say (it also asks the file system). A worker keeps
a ``SpaceReserve``, a small file it deletes on a full disk so that the run's failure can still be
recorded in the run history.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import DiskFullError

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_WORDS = ("no space left", "disk is full", "quota exceeded", "os error 28")
LOW_SPACE_BYTES = 1 << 20
"""Below this much free space, a failed write is taken as a full disk."""
RESERVE_BYTES = 256 << 10
"""What a worker sets aside to record its end when the disk fills up."""


def disk_full(exc: BaseException, path: object = None) -> DiskFullError | None:
    """The ``DiskFullError`` that ``exc`` (or an exception it came from) means, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DiskFullError):
            return seen
        by_errno = isinstance(seen, OSError) and seen.errno in FULL_ERRNOS
        if by_errno or any(word in str(seen).lower() for word in _FULL_WORDS):
            return full_error(getattr(seen, "filename", None) or path)
        seen = seen.__cause__ or seen.__context__
    return None


def full_error(path: object = None) -> DiskFullError:
    """The one-line error for a full disk at ``path``."""
    return DiskFullError(f"no space left on device{f' writing {path}' if path else ''}")


def low_on_space(path: Path) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) is nearly full."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failure of the writes inside into ``DiskFullError`` when the disk is full."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        full = disk_full(exc, path)
        if full is None and low_on_space(path):
            full = full_error(path)
        if full is None:
            raise
        raise full from None


class SpaceReserve:
    """A file of ``size`` bytes set aside on the workspace's disk, released when it fills up."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = Path(path)
        self.size = size

    def hold(self) -> None:
        """Write the reserve (really allocated, not a sparse file); DiskFullError when it cannot."""
        try:
            with writing(self.path), self.path.open("wb") as handle:
                handle.write(b"\0" * self.size)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the space back (to record a failure); a no-op when it is gone already."""
        self.path.unlink(missing_ok=True)
