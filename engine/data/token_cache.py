"""The token cache: tokenized datasets stored once under the workspace cache folder (no torch).

An entry is a folder ``<cache>/tokens/<key>/`` (see ``engine.data.tokenized`` for its files),
written to a temporary folder and renamed when complete, so a crash never leaves a half entry.
``key`` is a fingerprint of everything that shapes the tokens (``engine.data.pipeline.cache_key``).
Metadata (key, bytes, created, last used, hits) lives in the run store; ``enforce_limits``
removes entries unused for ``max_age_days`` and then the least recently used ones until the
cache fits in ``disk_size``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.tokenized import TokenizedDataset
from engine.store import RunStore

MIB = 1 << 20
DAY_S = 86_400.0


def folder_bytes(folder: Path) -> int:
    """Bytes of the files in a folder."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


class CacheWriter:
    """Appends samples to a new cache entry; ``commit`` makes it visible, ``abort`` drops it."""

    def __init__(self, cache: TokenCache, key: str) -> None:
        self.cache, self.key = cache, key
        self.tmp = cache.root / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True)
        self._ids = (self.tmp / "ids.bin").open("wb")
        self._mask = (self.tmp / "mask.bin").open("wb")
        self._lengths = array("i")  # C int (np.intc): 4 bytes a sample

    def __len__(self) -> int:
        return len(self._lengths)

    def append(self, ids: np.ndarray, trained: np.ndarray) -> None:
        """Add one sample: int32 ids and its trained-token mask."""
        self._ids.write(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self._mask.write(np.ascontiguousarray(trained, dtype=np.uint8).tobytes())
        self._lengths.append(len(ids))

    def append_chunk(self, ids: np.ndarray, trained: np.ndarray, lengths: np.ndarray) -> None:
        """Add samples given concatenated: their ids, trained masks and lengths (same bytes as ``append``)."""
        self._ids.write(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self._mask.write(np.ascontiguousarray(trained, dtype=np.uint8).tobytes())
        self._lengths.frombytes(np.ascontiguousarray(lengths, dtype=np.intc).tobytes())

    def commit(self, meta: dict[str, Any]) -> TokenizedDataset:
        """Finish the entry (atomically renamed into place), record it and apply the limits."""
        self._ids.close()
        self._mask.close()
        offsets = np.zeros(len(self._lengths) + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(self._lengths, dtype=np.intc), out=offsets[1:], dtype=np.int64)
        np.save(self.tmp / "offsets.npy", offsets)
        (self.tmp / "meta.json").write_text(json.dumps({**meta, "key": self.key, "samples": len(self),
                                                        "tokens": int(offsets[-1])}))
        final = self.cache.entry_dir(self.key)
        if final.exists():
            shutil.rmtree(final)
        os.replace(self.tmp, final)
        if self.cache.store is not None:
            self.cache.store.put_cache_entry(self.key, final, folder_bytes(final))
        self.cache.enforce_limits(keep=self.key)
        return self.cache.open(self.key)

    def abort(self) -> None:
        """Drop the partial entry."""
        self._ids.close()
        self._mask.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class TokenCache:
    """Tokenized datasets by key under ``root``, with metadata and limits kept in the run store."""

    def __init__(self, root: Path, store: RunStore | None = None, disk_size_mib: int = 10240,
                 max_age_days: float = 30, memory_size_mib: int = 512) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.disk_bytes = disk_size_mib * MIB
        self.max_age_s = max_age_days * DAY_S
        self.memory_bytes = memory_size_mib * MIB

    @classmethod
    def from_config(cls, cache_dir: Path, store: RunStore | None, cache_config: Any) -> TokenCache:
        """A cache in ``cache_dir/tokens`` sized by a ``CacheConfig``."""
        return cls(cache_dir / "tokens", store, cache_config.disk_size, cache_config.max_age_days,
                   cache_config.memory_size)

    def entry_dir(self, key: str) -> Path:
        """The folder of entry ``key``."""
        return self.root / key

    def open(self, key: str) -> TokenizedDataset:
        """The dataset of an existing entry."""
        return TokenizedDataset(self.entry_dir(key), self.memory_bytes)

    def lookup(self, key: str) -> TokenizedDataset | None:
        """The entry's dataset when it is cached (a hit is counted), else None."""
        folder = self.entry_dir(key)
        if not (folder / "meta.json").is_file():
            return None
        if self.store is not None and not self.store.touch_cache_entry(key):
            self.store.put_cache_entry(key, folder, folder_bytes(folder))
        return self.open(key)

    def writer(self, key: str) -> CacheWriter:
        """A writer for a new entry ``key``."""
        return CacheWriter(self, key)

    def enforce_limits(self, keep: str | None = None, now: float | None = None) -> list[str]:
        """Remove entries past ``max_age_days``, then least recently used ones beyond ``disk_size``.

        ``keep`` (the entry in use) is never removed. Returns the removed keys.
        """
        if self.store is None:
            return []
        now = time.time() if now is None else now
        entries = [e for e in self.store.cache_entries() if e["key"] != keep]
        total = sum(e["bytes"] for e in self.store.cache_entries())
        removed = []
        for entry in entries:  # least recently used first
            if now - entry["last_used_at"] > self.max_age_s or total > self.disk_bytes:
                self.remove(entry["key"])
                total -= entry["bytes"]
                removed.append(entry["key"])
        return removed

    def remove(self, key: str) -> None:
        """Delete an entry's files and its record."""
        shutil.rmtree(self.entry_dir(key), ignore_errors=True)
        if self.store is not None:
            self.store.remove_cache_entry(key)
