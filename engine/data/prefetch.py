"""Run an iterator on a background thread, a bounded number of items ahead (no torch).

``Prefetcher(source, depth)`` yields what ``source`` yields, in order; at most ``depth`` items
wait in the queue, so memory stays bounded. An exception in ``source`` is raised in the
consumer at the point it happened; ``close`` (or leaving the ``with`` block) stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    """An exception raised by the source, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[T]):
    """Iterate ``source`` on a daemon thread with a queue of at most ``depth`` items."""

    def __init__(self, source: Iterable[T], depth: int = 4) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(iter(source),), daemon=True,
                                        name="llamahome-prefetch")
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Queue an item, waiting while full; False when asked to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, source: Iterator[T]) -> None:
        """The thread: pull from the source until it ends, fails or we stop."""
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(error))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _END:
            self._stop.set()
            raise StopIteration
        if isinstance(item, _Failure):
            self._stop.set()
            raise item.error
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the background thread and wait for it."""
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
