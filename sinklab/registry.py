"""Named registries of small functions, one per independent axis of a variant (kernel, mask, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sinklab.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table whose lookups fail with the list of accepted names."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def decorate(obj: T) -> T:
            if key in self._entries:
                raise ValueError(f"{self.name} {key!r} is already registered")
            self._entries[key] = obj
            return obj

        return decorate

    def get(self, key: str) -> T:
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.name} {key!r}; accepted: {', '.join(sorted(self._entries))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, key: str) -> None:
        """Raise a ValueError listing the accepted names if `key` is not registered."""
        if key not in self._entries:
            raise ValueError(f"unknown {self.name} {key!r}; accepted: {', '.join(self.names())}")
