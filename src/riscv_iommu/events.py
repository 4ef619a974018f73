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
* ``purpose`` of :class:`MemAccess`: a structure name above (its read), or
  ``AD`` (A/D update), ``MRIF_WRITE`` (setting an MRIF pending bit), ``CQ``
  (command fetch, IOFENCE.C completion write), ``FQ``, ``PQ`` (queue
  records), ``MSI`` (an interrupt message or MRIF notice the IOMMU writes);
  ``op``: ``read``, ``write``, ``amo``.
* ``walk`` of :class:`StructRead` for G-stage PTEs: which implicit access
  the G-stage walk translates the address of (``PDTE``, ``PC``, ``S_PTE``),
  ``S_PTE_AD`` for the implicit write of a first-stage A/D update, or
  ``final`` for the request's own GPA.  (``MSI_PTE`` and ``MRIF`` never
  occur: MSI page tables and MRIFs are at SPAs.)
* ``kind`` names of :class:`Stats` ``requests``: ``UNTRANSLATED``,
  ``TRANSLATED``, ``ATS_TRANSLATION``, ``DEBUG`` (the debug interface),
  ``PAGE_REQUEST``, ``INVALIDATION_COMPLETION`` (PCIe messages).

Schema version :data:`SCHEMA_VERSION` is written in every JSON object as
``"v"``; a change that renames or removes a field bumps it.  Objects of the
public API inside events (requests, responses, fault records, messages)
become ``{"type": class name, field: value...}``; :func:`from_dict` rebuilds
any event from its dict (``docs/events.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, Type

from . import formats as F
from .cachestats import CacheStats

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
    "CompletionEvent",
    "CacheStats",
    "Stats",
    "REQUEST_KINDS",
    "EVENT_KINDS",
    "from_dict",
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
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        d = {"type": type(v).__name__}
        for f in fields(v):
            d[f.name] = _jsonable(getattr(v, f.name))
        return d
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
    #: decoded fields: filled by :meth:`decode` (and :meth:`as_dict`) from the
    #: field tables of :mod:`riscv_iommu.formats`, so the model pays nothing for them
    fields: Dict[str, int] = field(default_factory=dict)
    #: bytes read (a DC is 32 or 64, a PC 16, 32 or 64, a PTE 4 or 8, an MSI PTE 16)
    size: int = 8
    #: [GIPC] a DC of an IOMMU with capabilities.GIPC: ``GIPC@<bit of DC.tc.GIPC>``;
    #: a 32/64-byte PC: its format name (``2024-32B``, ``2024-64B``, ``2025-32B``); else ""
    format: str = ""

    def decode(self) -> Dict[str, int]:
        """The fields of ``raw`` by their spec names (``DC.tc.PDTV``, ``PC.ta.V``,
        ``msipte.M``; a PTE's plain ``V``, ``PPN``...); cached in :attr:`fields`."""
        if not self.fields:
            self.fields = _decode(self.structure, self.raw, self.size, self.format)
        return self.fields

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict, with the decoded fields."""
        self.decode()
        return Event.as_dict(self)


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
    """A record written to the fault queue (``FQ``) or page-request queue (``PQ``), or
    discarded (see ``status``)."""

    kind: ClassVar[str] = "queue_record"
    queue: str
    index: int
    addr: int
    #: the decoded record (a FaultRecord or PageRequest)
    record: Any
    #: ``written``; or the record was discarded: ``overflow`` (the queue was full,
    #: or xqof is still set), ``memory_fault`` (its write faulted, or xqmf is still
    #: set) or ``off`` (xqon = 0); ``index`` is then the tail the record would have
    #: had, and ``addr`` the address of the faulting write (0 when none was tried)
    status: str = "written"


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
    #: wired: the new level of the wire (False: the wire is released); MSIs: True
    level: bool = True


@dataclass(slots=True)
class AtsMessageEvent(Event):
    """An outbound PCIe message: ATS invalidation request or page-request group response."""

    kind: ClassVar[str] = "ats_message"
    message: Any


@dataclass(slots=True)
class CompletionEvent(Event):
    """A PCIe ATS "Invalidation Completion" from a device: ``completed`` requests."""

    kind: ClassVar[str] = "ats_completion"
    device_id: int
    itag_vector: int
    cc: int
    completed: int


#: Names of the request counters of :attr:`Stats.requests`, by index.
REQUEST_KINDS = (
    "UNTRANSLATED",
    "TRANSLATED",
    "ATS_TRANSLATION",
    "DEBUG",
    "PAGE_REQUEST",
    "INVALIDATION_COMPLETION",
)


class Stats:
    """``iommu.stats``: per-cache counters, faults per cause, requests per kind.

    The cache counters are the caches' own :class:`CacheStats` objects, so
    they are exact at any moment; ``requests`` is computed from one counter
    per kind (``counts``, indexed like :data:`REQUEST_KINDS`).
    """

    __slots__ = ("caches", "faults", "counts")

    def __init__(self, caches: Tuple[str, ...] = ("DDT", "PDT", "IOTLB", "MSI", "GWALK")) -> None:
        self.caches: Dict[str, CacheStats] = {name: CacheStats() for name in caches}
        #: cause code -> faults detected (reported or not)
        self.faults: Dict[int, int] = {}
        #: requests per kind, indexed like REQUEST_KINDS (RequestKind values first)
        self.counts: List[int] = [0] * len(REQUEST_KINDS)

    @property
    def requests(self) -> Dict[str, int]:
        """Request kind name (see :data:`REQUEST_KINDS`) -> count."""
        return dict(zip(REQUEST_KINDS, self.counts, strict=True))

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "caches": {k: v.as_dict() for k, v in self.caches.items()},
            "faults": {str(k): v for k, v in sorted(self.faults.items())},
            "requests": self.requests,
        }

    def __repr__(self) -> str:
        return f"Stats({self.as_dict()!r})"


# ----------------------------------------------------------------------------
# decoding structure reads (lazily, from the field tables)
# ----------------------------------------------------------------------------
_DC_WORDS = (
    ("tc", F.DC_TC),
    ("iohgatp", F.IOHGATP),
    ("ta", F.DC_TA),
    ("fsc", F.IOSATP),
    ("msiptp", F.MSIPTP),
    ("msi_addr_mask", F.MSI_ADDR_MASK),
    ("msi_addr_pattern", F.MSI_ADDR_PATTERN),
    ("reserved", None),
)
_PC_LAYOUTS = {
    "ta": F.PC_TA,
    "fsc": F.PC_FSC,
    "iohgatp": F.IOHGATP,
    "msiptp": F.MSIPTP,
    "msi_addr_mask": F.MSI_ADDR_MASK,
    "msi_addr_pattern": F.MSI_ADDR_PATTERN,
}
_ONE_WORD = {"DDTE": F.DDTE, "PDTE": F.PDTE}


def _words(
    raw: int, prefix: str, names: List[Tuple[str, Optional[F.Layout]]], out: Dict[str, int]
) -> Dict[str, int]:
    for k, (name, layout) in enumerate(names):
        w = (raw >> (64 * k)) & ((1 << 64) - 1)
        if layout is None:
            if w:
                out[f"{prefix}{name}"] = w
            continue
        for fname, v in layout.decode(w).items():
            if fname == "reserved" and not name:
                fname = f"reserved{k}"
            out[f"{prefix}{name}.{fname}" if name else f"{prefix}{fname}"] = v
    return out


def _decode(structure: str, raw: int, size: int, fmt: str) -> Dict[str, int]:
    """The fields of a structure read (see :meth:`StructRead.decode`)."""
    if structure in _ONE_WORD:
        return _ONE_WORD[structure].decode(raw)
    if structure in ("S_PTE", "G_PTE"):
        return (F.PTE if size == 8 else F.PTE32).decode(raw)
    if structure == "DC":
        out = _words(raw, "DC.", list(_DC_WORDS[: size // 8]), {})
        if fmt.startswith("GIPC@"):  # [GIPC] DC.tc.GIPC at its configured bit
            bit = int(fmt[5:])
            out["DC.tc.GIPC"] = (raw >> bit) & 1
            rsv = out.pop("DC.tc.reserved", 0) & ~(1 << bit)
            if rsv:
                out["DC.tc.reserved"] = rsv
        return out
    if structure == "PC":
        offsets = {"ta": 0, "fsc": 8}
        if fmt:
            from . import gipc  # the GIPC formats (imported late: gipc needs the walker)

            for f in (gipc.PC_2024_32, gipc.PC_2024_64, gipc.PC_2025):
                if f.name == fmt:
                    offsets = f.offsets
        by_off = {off: n for n, off in offsets.items()}
        names: List[Tuple[str, Optional[F.Layout]]] = []
        for k in range(size // 8):
            n = by_off.get(8 * k)
            names.append((n, _PC_LAYOUTS[n]) if n else (f"reserved{k}", None))
        return _words(raw, "PC.", names, {})
    if structure == "MSI_PTE":
        w0 = raw & ((1 << 64) - 1)
        if F.MSIPTE0.M.get(w0) == 1:  # MRIF mode
            return _words(raw, "msipte.", [("", F.MSIPTE_MRIF0), ("", F.MSIPTE_MRIF1)], {})
        return _words(raw, "msipte.", [("", F.MSIPTE0), ("reserved1", None)], {})
    return {"value": raw}  # MRIF: the interrupt-pending doubleword


# ----------------------------------------------------------------------------
# rebuilding events from their dicts (JSONL round trip)
# ----------------------------------------------------------------------------
def _event_classes() -> Dict[str, Type[Event]]:
    # the module's classes (dataclass(slots=True) leaves the pre-slots classes
    # behind as subclasses too, so __subclasses__ is no guide)
    out: Dict[str, Type[Event]] = {}
    for v in list(globals().values()):
        if isinstance(v, type) and issubclass(v, Event) and v is not Event:
            out[v.kind] = v
    return out


def _rebuild(v: Any) -> Any:
    """An API object from its ``{"type": ...}`` dict (recursively)."""
    if isinstance(v, dict):
        if "type" in v:
            from . import types as T

            cls = getattr(T, v["type"])
            kw = {k: _rebuild(x) for k, x in v.items() if k != "type"}
            for f in fields(cls):  # enum fields (Status, Access, RequestKind) from their int
                # (the annotation's name; the class itself in the compiled build)
                hint = f.type
                enum_type = hint if isinstance(hint, type) else getattr(T, str(hint), None)
                if isinstance(enum_type, type) and issubclass(enum_type, Enum) and f.name in kw:
                    kw[f.name] = enum_type(kw[f.name])
            return cls(**kw)
        return {k: _rebuild(x) for k, x in v.items()}
    if isinstance(v, list):
        return tuple(_rebuild(x) for x in v)
    return v


def from_dict(d: Dict[str, Any]) -> Event:
    """Rebuild an event from :meth:`Event.as_dict` output (after a JSON round trip).

    Raises ``ValueError`` for an unknown ``kind`` or a newer schema version.
    """
    if d.get("v", 0) > SCHEMA_VERSION:
        raise ValueError(f"event schema version {d.get('v')} is newer than {SCHEMA_VERSION}")
    cls = EVENT_KINDS.get(d.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown event kind {d.get('kind')!r}")
    kw = {}
    for f in fields(cls):
        if f.name in d:
            v = d[f.name]
            if f.name in ("fields", "operands") and isinstance(v, dict):
                kw[f.name] = dict(v)
            elif f.name == "changes" and isinstance(v, dict):
                kw[f.name] = {k: tuple(x) for k, x in v.items()}
            else:
                kw[f.name] = _rebuild(v)
    return cls(**kw)


#: kind -> event class
EVENT_KINDS: Dict[str, Type[Event]] = _event_classes()
