"""The event catalogue: every action of the model, declared once.

Each event is a slotted dataclass with a class-level ``kind`` (its name in
the JSON schema), the spec ``section``/``step`` where one applies, and
:meth:`as_dict` for JSON.  Observers are plain callables taking one event;
``iommu.attach(observer)`` / ``iommu.detach(observer)`` manage them.  With no
observer attached the model builds no event at all: every emission point is
guarded by one test of ``io.emit is None``.

Names used in the fields (stable, part of the schema):

* ``structure`` of :class:`StructRead`: ``DDTE``, ``DC``, ``PDTE``, ``PC``,
  ``S_PTE`` (first-stage PTE), ``G_PTE`` (G-stage PTE), ``MSI_PTE``, ``MRIF``.
* ``cache`` of :class:`CacheEvent`: ``DDT``, ``PDT``, ``IOTLB``, ``MSI``,
  ``GWALK`` (G-stage walk cache); ``op``: ``hit``, ``miss``, ``fill``,
  ``evict``, ``inval``.
* ``purpose`` of :class:`MemAccess`: a structure name above, or ``AD``
  (A/D update), ``CQ``, ``FQ``, ``PQ``, ``MSI`` (an interrupt message the
  IOMMU writes), ``MRIF_WRITE``, ``DEBUG``; ``op``: ``read``, ``write``, ``amo``.
* ``walk`` of :class:`StructRead` for G-stage PTEs: which implicit access
  the G-stage walk translates the address of (``PDTE``, ``PC``, ``S_PTE``,
  ``MSI_PTE``, ``MRIF``) or ``final`` for the request's own GPA.

Schema version :data:`SCHEMA_VERSION` is written in every JSON object as
``"v"``; a change that renames or removes a field bumps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Dict, Tuple

__all__ = [
    "SCHEMA_VERSION",
    "Event",
    "Observer",
    "RequestEvent",
    "ResponseEvent",
    "StructRead",
    "Check",
    "Step",
    "CacheEvent",
    "MemAccess",
    "CommandEvent",
    "RegWrite",
    "QueueRecord",
    "InterruptEvent",
    "AtsMessageEvent",
    "CacheStats",
    "Stats",
]

#: Version of the JSON schema of :meth:`Event.as_dict`.
SCHEMA_VERSION = 1


def _jsonable(v: Any) -> Any:
    """Plain JSON values: ints stay ints, enums become their int, objects with
    ``as_dict`` become dicts, tuples lists."""
    if isinstance(v, bool) or v is None or isinstance(v, (str, float)):
        return v
    if isinstance(v, int):
        return int(v)
    if hasattr(v, "as_dict"):
        return v.as_dict()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return repr(v)


@dataclass(slots=True)
class Event:
    """Base of every event."""

    kind: ClassVar[str] = "event"

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict: ``{"v": SCHEMA_VERSION, "kind": ..., fields...}``."""
        d: Dict[str, Any] = {"v": SCHEMA_VERSION, "kind": self.kind}
        for f in fields(self):
            d[f.name] = _jsonable(getattr(self, f.name))
        return d


#: An observer: any callable taking one event.
Observer = Callable[[Event], None]


@dataclass(slots=True)
class RequestEvent(Event):
    """A device request arrived (``req`` is the :class:`~riscv_iommu.Request`)."""

    kind: ClassVar[str] = "request"
    req: Any
    #: True for a request of the debug translation interface
    debug: bool = False


@dataclass(slots=True)
class ResponseEvent(Event):
    """The response to ``req``, with the full fault record in ``rsp.fault``."""

    kind: ClassVar[str] = "response"
    req: Any
    rsp: Any


@dataclass(slots=True)
class StructRead(Event):
    """An in-memory structure read by a spec process (raw value as read, in
    the structure's byte order; ``fields`` decodes it)."""

    kind: ClassVar[str] = "read"
    structure: str
    addr: int
    raw: int
    section: str = ""
    step: str = ""
    #: walk level (DDT/PDT/page-table level), -1 when not applicable
    level: int = -1
    #: G-stage PTEs: what the G-stage walk translates (see the module doc)
    walk: str = ""
    #: decoded fields (filled lazily by observers that want them; see formats)
    fields: Dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Check(Event):
    """A check of a spec process: ``passed``, and on failure the offending
    ``field``, the ``rule`` in words and the ``cause`` it stops with."""

    kind: ClassVar[str] = "check"
    section: str
    step: str
    rule: str
    passed: bool
    field: str = ""
    cause: int = 0


@dataclass(slots=True)
class Step(Event):
    """A decision of a spec process, in words (what the explain view prints)."""

    kind: ClassVar[str] = "step"
    section: str
    step: str
    text: str


@dataclass(slots=True)
class CacheEvent(Event):
    """A cache lookup (hit/miss), fill, eviction or invalidation."""

    kind: ClassVar[str] = "cache"
    cache: str
    op: str
    tag: Tuple[int, ...] = ()
    #: entries affected (invalidations), 1 otherwise
    count: int = 1


@dataclass(slots=True)
class MemAccess(Event):
    """One access of the IOMMU to memory (implicit or its own)."""

    kind: ClassVar[str] = "mem"
    addr: int
    size: int
    op: str
    purpose: str
    rcid: int = 0
    mcid: int = 0
    big_endian: bool = False


@dataclass(slots=True)
class CommandEvent(Event):
    """A command of the command queue and its outcome: ``completed``,
    ``illegal``, ``waiting``, ``timed_out``, ``memory_fault``."""

    kind: ClassVar[str] = "command"
    opcode: int
    func3: int
    name: str
    operands: Dict[str, int]
    outcome: str
    raw: Tuple[int, int] = (0, 0)


@dataclass(slots=True)
class RegWrite(Event):
    """A register write through MMIO: old and new value of each changed field."""

    kind: ClassVar[str] = "reg_write"
    offset: int
    name: str
    size: int
    old: int
    new: int
    #: field -> (old, new), only the fields that changed
    changes: Dict[str, Tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class QueueRecord(Event):
    """A record written to the fault queue (``FQ``) or page-request queue (``PQ``)."""

    kind: ClassVar[str] = "queue_record"
    queue: str
    index: int
    addr: int
    #: the decoded record (a FaultRecord or PageRequest)
    record: Any


@dataclass(slots=True)
class InterruptEvent(Event):
    """An interrupt: ``source`` is ``CQ``, ``FQ``, ``HPM`` or ``PQ``; ``wired``
    (fctl.WSI) or an MSI written to ``msi_addr``; ``masked`` when the vector's
    mask held the message back."""

    kind: ClassVar[str] = "interrupt"
    source: str
    vector: int
    wired: bool
    masked: bool = False
    msi_addr: int = 0
    msi_data: int = 0


@dataclass(slots=True)
class AtsMessageEvent(Event):
    """An outbound PCIe message: ATS invalidation request or page-request group response."""

    kind: ClassVar[str] = "ats_message"
    message: Any


class CacheStats:
    """Exact counters of one cache."""

    __slots__ = ("hits", "misses", "fills", "evictions", "invalidations")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.fills = 0
        self.evictions = 0
        #: entries removed by invalidations
        self.invalidations = 0

    def as_dict(self) -> Dict[str, int]:
        """The counters as a dict."""
        return {k: getattr(self, k) for k in self.__slots__}


class Stats:
    """``iommu.stats``: per-cache counters, faults per cause, requests per kind."""

    __slots__ = ("caches", "faults", "requests")

    def __init__(self, caches: Tuple[str, ...] = ("DDT", "PDT", "IOTLB", "MSI", "GWALK")) -> None:
        self.caches: Dict[str, CacheStats] = {name: CacheStats() for name in caches}
        #: cause code -> faults detected (reported or not)
        self.faults: Dict[int, int] = {}
        #: request kind name (UNTRANSLATED, TRANSLATED, ATS_TRANSLATION, DEBUG) -> count
        self.requests: Dict[str, int] = {}

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "caches": {k: v.as_dict() for k, v in self.caches.items()},
            "faults": {str(k): v for k, v in sorted(self.faults.items())},
            "requests": dict(sorted(self.requests.items())),
        }

