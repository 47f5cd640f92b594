"""Small per-process caches of rarely changed settings (calendar days, policy overrides).

Each process keeps what ``loader()`` returned for ``seconds``; ``clear()`` (called by the
process that changes the rows) makes the next use load again. Other processes see a
change within ``seconds``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessCache(Generic[T]):
    def __init__(self, loader: Callable[[], T], seconds: float):
        self._loader, self._seconds = loader, seconds
        self._lock = threading.Lock()
        self._value: T | None = None
        self._until = 0.0

    def get(self) -> T:
        with self._lock:
            if self._value is None or time.monotonic() >= self._until:
                self._value = self._loader()
                self._until = time.monotonic() + self._seconds
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None
