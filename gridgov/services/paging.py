"""One page of a keyset-paged list, whatever it lists."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool

    @classmethod
    def of(cls, rows: Sequence[R], limit: int, view: Callable[[R], T]) -> "Page[T]":
        """The first `limit` rows of a query run with LIMIT limit + 1, as views."""
        return cls(items=[view(row) for row in rows[:limit]], has_more=len(rows) > limit)
