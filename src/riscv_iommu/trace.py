"""The explain view: a translation's steps in words, built on the event stream.

:meth:`Iommu.explain <riscv_iommu.Iommu.explain>` returns an
:class:`Explanation`: the request, the response, every event of the
translation, and :attr:`Explanation.steps` -- each structure read (address,
raw value and decoded fields), each decision and check with its spec section
and step, cache hits, and for a fault the check that failed with its rule in
words.

:class:`Tracer` is the same view as an observer (``iommu.attach(Tracer())``)
collecting :class:`TraceEvent` records.  Setting ``iommu.tracer = Tracer()``
still works (it attaches the tracer) but is deprecated: use ``attach`` or
``explain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .events import CacheEvent, Check, Event, Observer, Step, StructRead
from .types import Cause

__all__ = ["TraceEvent", "Tracer", "Explanation", "to_trace", "as_observer"]


@dataclass(slots=True)
class TraceEvent:
    """One step of a traced translation."""

    #: spec section: "P2IOVA", "GET_DC", "DC_MISCONFIG", "GET_PC", "PTW", "PTW-G", "MSI_TRANS",
    #: "ATS_FAULTS" (the completion of an ATS translation request: range and CXL.io)...
    section: str
    #: the step within the section ("3", "17", ...), or "" when not numbered
    step: str
    #: what happened, in words
    text: str
    #: address read, when the step read memory
    addr: Optional[int] = None
    #: raw value read
    raw: Optional[int] = None
    #: decoded fields of ``raw``
    fields: Dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-friendly dict."""
        d: Dict[str, Any] = {"section": self.section, "step": self.step, "text": self.text}
        if self.addr is not None:
            d["addr"] = f"{self.addr:#x}"
        if self.raw is not None:
            d["raw"] = f"{self.raw:#018x}"
        if self.fields:
            d["fields"] = {k: f"{v:#x}" for k, v in self.fields.items()}
        return d

    def __str__(self) -> str:
        where = f"{self.section} step {self.step}" if self.step else self.section
        s = f"[{where}] {self.text}"
        if self.addr is not None:
            s += f" @ {self.addr:#x}"
        if self.raw is not None:
            s += f" = {self.raw:#018x}"
        if self.fields:
            s += " (" + ", ".join(f"{k}={v:#x}" for k, v in self.fields.items() if v) + ")"
        return s


_READ_TEXT = {
    "DDTE": "non-leaf DDT entry (level {level})",
    "DC": "device context",
    "PDTE": "non-leaf PDT entry (level {level})",
    "PC": "process context",
    "S_PTE": "first-stage PTE level {level}",
    "G_PTE": "G-stage PTE level {level} (for the {walk} access)",
    "MSI_PTE": "MSI PTE",
    "MRIF": "MRIF interrupt-pending doubleword",
}
_HIT_TEXT = {
    "DDT": "DC of device {0:#x} from the DDT cache",
    "PDT": "PC of process_id {1:#x} from the PDT cache",
    "MSI": "MSI PTE of GPA page {1:#x} from the MSI PTE cache",
    "GWALK": "G-stage translation of GPA page {1:#x} from the G-stage walk cache",
}


def fault_text(cause: int) -> str:
    """``stop and report cause N: description``."""
    try:
        desc = Cause(cause).description
    except ValueError:  # pragma: no cover - the model only raises the spec's causes
        desc = "unknown cause"
    return f"stop and report cause {cause}: {desc}"


def to_trace(event: Event) -> List[TraceEvent]:
    """The explain view of one event (nothing for the events it does not show)."""
    if isinstance(event, Step):
        return [TraceEvent(event.section, event.step, event.text)]
    if isinstance(event, Check):
        text = event.rule
        if not event.passed and event.field:
            text = f"{event.rule} [{event.field}]"
        out = [TraceEvent(event.section, event.step, text)]
        if not event.passed and event.cause:
            out.append(TraceEvent("FAULT", "", fault_text(event.cause)))
        return out
    if isinstance(event, StructRead):
        text = _READ_TEXT.get(event.structure, event.structure)
        text = text.format(level=event.level, walk=event.walk)
        if event.format.startswith("GIPC@"):
            text += f" (DC.tc.GIPC is bit {event.format[5:]})"
        elif event.format:
            text += f" ({event.format} format)"
        return [TraceEvent(event.section, event.step, text, event.addr, event.raw, event.decode())]
    if isinstance(event, CacheEvent) and event.op == "hit" and event.cache in _HIT_TEXT:
        # (an IOTLB hit is a Step of the translation, with the addresses)
        return [TraceEvent("IOATC", "", _HIT_TEXT[event.cache].format(*event.tag, 0))]
    return []


class Tracer:
    """Collects :class:`TraceEvent` records: an observer (``iommu.attach(tracer)``)."""

    def __init__(self) -> None:
        self.events: List[TraceEvent] = []

    def __call__(self, event: Event) -> None:
        self.events.extend(to_trace(event))

    def clear(self) -> None:
        """Forget the events."""
        self.events.clear()


def as_observer(tracer: Callable[..., None]) -> Observer:
    """An observer for ``iommu.tracer``: a :class:`Tracer` as it is; any other callable
    gets the old call shape ``tracer(section, step, text, addr, raw, None)`` (deprecated)."""
    if isinstance(tracer, Tracer):
        return tracer

    def legacy(event: Event) -> None:
        for t in to_trace(event):
            tracer(t.section, t.step, t.text, t.addr, t.raw, None)

    return legacy


class Explanation:
    """What ``iommu.explain(req)`` returns: the steps of a translation and, for a
    fault, the reason.

    ``events`` are the model's events (docs/events.md); ``steps`` the explain
    view of them; ``fault`` the failed :class:`~riscv_iommu.events.Check` that
    stopped the process (None on success), ``reason`` its rule in words ("" on
    success).
    """

    def __init__(self, req: Any, rsp: Any, events: List[Event]) -> None:
        self.req = req
        self.rsp = rsp
        self.events = events
        self.steps: List[TraceEvent] = [t for e in events for t in to_trace(e)]
        fault: Optional[Check] = None
        for e in events:
            if isinstance(e, Check) and not e.passed and e.cause:
                fault = e
        self.fault = fault
        self.reason = fault.rule if fault is not None else ""

    def lines(self) -> List[str]:
        """The explain view as text lines."""
        out = [f"request: {self.req!r}"]
        out += ["  " + str(t) for t in self.steps]
        out.append(f"response: {self.rsp!r}")
        if self.fault is not None:
            out.append(f"why: {self.reason}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict: request, response (fault record as an object), steps, reason."""
        from .events import _jsonable  # the event stream's JSON form of API objects

        d: Dict[str, Any] = {
            "request": _jsonable(self.req),
            "response": _jsonable(self.rsp),
            "steps": [t.as_dict() for t in self.steps],
            "reason": self.reason,
        }
        if self.fault is not None:
            d["check"] = self.fault.as_dict()
        return d
