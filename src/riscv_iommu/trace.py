"""Step-by-step tracing of the translation process (the "explain" view).

Set ``iommu.tracer = Tracer()`` and every translation appends
:class:`TraceEvent` records: each structure read (address, raw value and
decoded fields), each decision and check, with the spec section and step,
and the result or fault.  With ``iommu.tracer = None`` (the default) the
model does no tracing work beyond one ``is None`` test per hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .formats import Layout

__all__ = ["TraceEvent", "Tracer"]


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


class Tracer:
    """Collects :class:`TraceEvent` records; callable as the model's hook."""

    def __init__(self) -> None:
        self.events: List[TraceEvent] = []

    def __call__(
        self,
        section: str,
        step: str,
        text: str,
        addr: Optional[int] = None,
        raw: Optional[int] = None,
        layout: Optional[Layout] = None,
    ) -> None:
        fields = layout.decode(raw) if layout is not None and raw is not None else {}
        self.events.append(TraceEvent(section, step, text, addr, raw, fields))

    def clear(self) -> None:
        """Forget the events."""
        self.events.clear()
