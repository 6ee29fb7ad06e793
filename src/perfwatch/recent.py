"""A small cache of the most recently used values, for what a long-running process keeps
in memory: fitted calculators and unpickled models, keyed by version. Bounded, so a
daemon that sees many versions come and go does not grow with them."""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()  # the daemon runs models' cycles on threads

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value kept for `key`, made (outside the lock) and kept if there is none."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        value = make()
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._values)
