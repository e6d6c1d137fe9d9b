"""Tokenize rendered chunks in worker processes, results in order (no torch, no transformers).

``EncodePool`` starts ``workers`` processes (``spawn``: nothing of the parent's threads or imports
is inherited); each loads the ``tokenizers`` backend once from its JSON and runs
``engine.data.encode.encode_texts`` on the chunks it is sent. ``map`` keeps a bounded number of
chunks in flight and yields results in submission order, so the token cache holds the same bytes
whatever the number of workers. ``encoded_chunks`` picks the pool or the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from engine.data.encode import EncodedChunk, Rendered, backend_of, encode_texts

AHEAD_PER_WORKER = 2
"""Chunks in flight per worker: enough to keep each busy, few enough to bound memory."""

_worker: dict[str, Any] = {}
"""The worker process's tokenizer and settings, set once by ``_start_worker``."""


def _start_worker(tokenizer_json: str, max_length: int, prefix_ids: tuple[int, ...], threads: bool) -> None:
    """Worker initializer: load the tokenizer backend once."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads else "false"
    from tokenizers import Tokenizer

    _worker.update(tokenizer=Tokenizer.from_str(tokenizer_json), max_length=max_length, prefix=prefix_ids)


def _encode_in_worker(rendered: Rendered) -> EncodedChunk:
    """Tokenize one chunk in a worker process."""
    return encode_texts(_worker["tokenizer"], rendered, _worker["max_length"], _worker["prefix"])


class EncodePool:
    """``workers`` processes tokenizing rendered chunks with one tokenizer; use as a context manager."""

    def __init__(self, tokenizer: Any, workers: int, max_length: int, prefix_ids: Sequence[int] = (),
                 threads: bool = False) -> None:
        backend = backend_of(tokenizer)
        if backend is None:
            raise ValueError("EncodePool needs a fast tokenizer (one with a tokenizers backend)")
        self.workers = workers
        self.broken = False
        """Whether a worker died (e.g. a main module without ``if __name__ == "__main__"``): then the
        remaining chunks are encoded in this process, with the same result."""
        self._tokenizer, self._max_length, self._prefix = tokenizer, max_length, tuple(prefix_ids)
        self._executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
            initargs=(backend.to_str(), max_length, tuple(int(i) for i in prefix_ids), threads))

    def map(self, chunks: Iterable[Rendered]) -> Iterator[EncodedChunk]:
        """The encoded chunks, in the order given."""
        pending: deque[tuple[Rendered, Future[EncodedChunk] | None]] = deque()
        for chunk in chunks:
            pending.append((chunk, self._submit(chunk)))
            if len(pending) >= self.workers * AHEAD_PER_WORKER:
                yield self._result(*pending.popleft())
        while pending:
            yield self._result(*pending.popleft())

    def _submit(self, chunk: Rendered) -> Future[EncodedChunk] | None:
        """Send a chunk to the workers; None once the pool is broken."""
        if self.broken:
            return None
        try:
            return self._executor.submit(_encode_in_worker, chunk)
        except BrokenProcessPool:
            self.broken = True
            return None

    def _result(self, chunk: Rendered, future: Future[EncodedChunk] | None) -> EncodedChunk:
        """A chunk's result from its worker, or computed here when the pool broke."""
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool:
                self.broken = True
        return encode_texts(self._tokenizer, chunk, self._max_length, self._prefix)

    def close(self) -> None:
        """Stop the workers (pending chunks are dropped)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EncodePool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def worker_count(num_workers: int) -> int:
    """Tokenizing processes for ``data.num_workers``: that many, or the run's thread share when 0."""
    from engine.threads import current

    return num_workers if num_workers > 0 else current()


def encoded_chunks(tokenizer: Any, chunks: Iterable[Rendered], max_length: int, prefix_ids: Sequence[int],
                   workers: int) -> Iterator[EncodedChunk]:
    """Encode rendered chunks in ``workers`` processes, or here when 1, slow, or only one chunk."""
    source = iter(chunks)
    head = [chunk for _, chunk in zip(range(2), source, strict=False)]
    if workers <= 1 or len(head) < 2 or backend_of(tokenizer) is None:
        for chunk in _chained(head, source):
            yield encode_texts(tokenizer, chunk, max_length, prefix_ids)
        return
    with EncodePool(tokenizer, workers, max_length, prefix_ids) as pool:
        yield from pool.map(_chained(head, source))


def _chained(head: list[Rendered], rest: Iterator[Rendered]) -> Iterator[Rendered]:
    """``head`` then the rest of the iterator."""
    yield from head
    yield from rest
