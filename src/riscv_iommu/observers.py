"""Ready observers of the event stream: :class:`EventLog` and :class:`JsonlLog`.

``iommu.attach(observer)`` sends every event of the model to ``observer``
(any callable taking one event); see ``docs/events.md`` for the events.
"""

from __future__ import annotations

import json
from collections import deque
from typing import (
    IO,
    Any,
    Callable,
    Deque,
    Iterable,
    Iterator,
    List,
    Optional,
    Type,
    TypeVar,
    Union,
    overload,
)

from .events import SCHEMA_VERSION, Event, from_dict

__all__ = ["EventLog", "JsonlLog", "read_jsonl"]

E = TypeVar("E", bound=Event)


def _kinds(kinds: Union[None, str, Iterable[str]]) -> Optional[frozenset[str]]:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        return frozenset({kinds})
    return frozenset(kinds)


class EventLog:
    """An in-memory observer: keeps the events, iterable and filterable.

    ``kinds`` keeps only events of those kinds (``"read"``, ``["cache",
    "check"]``...), ``where`` only events for which it returns True, and
    ``maxlen`` only the newest ``maxlen`` events (None: all of them).
    """

    def __init__(
        self,
        kinds: Union[None, str, Iterable[str]] = None,
        where: Optional[Callable[[Event], bool]] = None,
        maxlen: Optional[int] = None,
    ) -> None:
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 1):
            raise ValueError("maxlen must be a positive int or None")
        self.kinds = _kinds(kinds)
        self.where = where
        self._events: Deque[Event] = deque(maxlen=maxlen)

    def __call__(self, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        if self.where is not None and not self.where(event):
            return
        self._events.append(event)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> List[Event]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Event, List[Event]]:
        if isinstance(i, slice):
            return list(self._events)[i]
        return self._events[i]

    @property
    def events(self) -> List[Event]:
        """The kept events, oldest first."""
        return list(self._events)

    def filter(
        self,
        kind: Union[None, str, Iterable[str]] = None,
        where: Optional[Callable[[Event], bool]] = None,
    ) -> List[Event]:
        """The events of ``kind`` (a kind or several) for which ``where`` holds."""
        kinds = _kinds(kind)
        return [
            e
            for e in self._events
            if (kinds is None or e.kind in kinds) and (where is None or where(e))
        ]

    def of(self, cls: Type[E]) -> List[E]:
        """The events of one class (``log.of(StructRead)``), typed."""
        return [e for e in self._events if isinstance(e, cls)]

    def clear(self) -> None:
        """Forget every event."""
        self._events.clear()


class JsonlLog:
    """An observer writing one JSON object per event and line (``docs/events.md``).

    ``path_or_file`` is a path (opened for writing, closed by :meth:`close`)
    or an open text file (left open).  Every object carries the schema
    version ``"v"`` and the ``"kind"``; :func:`read_jsonl` reads them back as
    events.  Use as a context manager to close the file.
    """

    def __init__(self, path_or_file: Union[str, "IO[str]", Any]) -> None:
        if isinstance(path_or_file, (str, bytes)) or hasattr(path_or_file, "__fspath__"):
            self._file: IO[str] = open(path_or_file, "w", encoding="utf-8")
            self._owned = True
        elif callable(getattr(path_or_file, "write", None)):
            self._file = path_or_file
            self._owned = False
        else:
            raise TypeError("path_or_file must be a path or a text file")
        self.count = 0

    def __call__(self, event: Event) -> None:
        self._file.write(json.dumps(event.as_dict(), separators=(",", ":")) + "\n")
        self.count += 1

    def close(self) -> None:
        """Flush, and close the file if this log opened it."""
        self._file.flush()
        if self._owned:
            self._file.close()

    def __enter__(self) -> "JsonlLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_jsonl(path_or_file: Union[str, "IO[str]", Any]) -> Iterator[Event]:
    """The events of a :class:`JsonlLog` file (a path or an open text file).

    Raises ``ValueError`` naming the line for a malformed line, an unknown
    kind or a schema newer than :data:`~riscv_iommu.events.SCHEMA_VERSION`.
    """
    if isinstance(path_or_file, (str, bytes)) or hasattr(path_or_file, "__fspath__"):
        with open(path_or_file, encoding="utf-8") as f:
            yield from _read(f, str(path_or_file))
    else:
        yield from _read(path_or_file, getattr(path_or_file, "name", "<file>"))


def _read(f: Iterable[str], name: str) -> Iterator[Event]:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            yield from_dict(d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}:{n}: {e} (schema version {SCHEMA_VERSION})") from None
