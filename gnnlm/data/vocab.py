"""A two-way mapping between names and contiguous integer ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class Vocabulary:
    """Names <-> ids, both directions, ids contiguous from 0 in insertion order.

    Args:
        names: the names, in id order. Duplicates are an error (they would silently merge two ids).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        for name in names:
            if name in self._index:
                raise ValueError(f"duplicate name in vocabulary: {name!r}")
            self.add(name)

    def add(self, name: str) -> int:
        """Return the id of ``name``, adding it at the end if it is new."""
        idx = self._index.get(name)
        if idx is None:
            idx = len(self._names)
            self._names.append(name)
            self._index[name] = idx
        return idx

    def id(self, name: str) -> int:
        """The id of ``name``; raises ``KeyError`` naming the value and a few close names."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown name {name!r} (vocabulary of {len(self)} names)") from None

    def ids(self, names: Iterable[str]) -> list[int]:
        return [self.id(n) for n in names]

    def name(self, idx: int) -> str:
        return self._names[idx]

    @property
    def names(self) -> Sequence[str]:
        return tuple(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self):
        return iter(self._names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._names == other._names

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"
