"""What the study counts, from the model's event stream and statistics.

:class:`Probe` is an observer (``iommu.attach(probe)``): it counts the
structure reads (:class:`~riscv_iommu.events.StructRead`) by structure, with
the G-stage PTE reads split into those that translate the address of another
structure (``walk`` names it: a first-stage PTE, a PDT entry, a PC...) and
those of the request's own GPA (``walk == "final"``), and the commands the
IOMMU processed (:class:`~riscv_iommu.events.CommandEvent`).
:func:`cache_counts` reads ``iommu.stats`` (hits, misses, fills, evictions and
invalidations of each cache) so that a measurement is a difference of two
snapshots.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from ..events import CommandEvent, Event, StructRead

__all__ = ["Probe", "STRUCTURES", "TABLE_WALKS", "cache_counts", "delta", "hit_rate"]

#: Columns of a reads-per-translation breakdown, in walk order.  The G-stage PTE
#: reads are split by what they translate: ``G_PTE_pdt`` the GPA of a PDT entry or
#: PC (base spec: the PDT is in guest memory), ``G_PTE_s1`` the GPA of a
#: first-stage PTE, ``G_PTE_final`` the request's own GPA; ``G_PTE_other`` any
#: other implicit access (MSI PTE, MRIF: none in this study's systems).
STRUCTURES: Tuple[str, ...] = (
    "DDTE",
    "DC",
    "PDTE",
    "PC",
    "S_PTE",
    "G_PTE_pdt",
    "G_PTE_s1",
    "G_PTE_final",
    "G_PTE_other",
    "MSI_PTE",
    "MRIF",
)
#: The G-stage reads that translate the address of a table (not the request's GPA).
TABLE_WALKS: Tuple[str, ...] = ("G_PTE_pdt", "G_PTE_s1", "G_PTE_other")
_G_NAME = {
    "final": "G_PTE_final",
    "PDTE": "G_PTE_pdt",
    "PC": "G_PTE_pdt",
    "S_PTE": "G_PTE_s1",
    "S_PTE_AD": "G_PTE_s1",  # the implicit write of a first-stage A/D update
}


class Probe:
    """Counts structure reads and commands."""

    __slots__ = ("reads", "bytes", "commands", "names")

    def __init__(self) -> None:
        #: structure reads by structure: one per DDT entry, DC, PDT entry, PC, PTE, MSI PTE
        self.reads: Dict[str, int] = {}
        #: bytes of those reads (a 64-byte DC is one read of 64 bytes)
        self.bytes: Dict[str, int] = {}
        self.commands = 0
        #: names of the commands, in order
        self.names: List[str] = []

    def __call__(self, event: Event) -> None:
        t = type(event)
        if t is StructRead:
            name = event.structure  # type: ignore[attr-defined]
            if name == "G_PTE":
                name = _G_NAME.get(event.walk, "G_PTE_other")  # type: ignore[attr-defined]
            self.reads[name] = self.reads.get(name, 0) + 1
            self.bytes[name] = self.bytes.get(name, 0) + event.size  # type: ignore[attr-defined]
        elif t is CommandEvent:
            self.commands += 1
            self.names.append(event.name)  # type: ignore[attr-defined]

    def total(self) -> int:
        """Every structure read counted."""
        return sum(self.reads.values())

    def per(self, n: int) -> Dict[str, float]:
        """Reads per translation (``n`` translations), by structure, with ``total``,
        ``G_PTE_table`` (the G-stage reads of table addresses) and ``bytes``."""
        out = {s: self.reads.get(s, 0) / n for s in STRUCTURES}
        out["total"] = self.total() / n
        out["G_PTE_table"] = sum(self.reads.get(s, 0) for s in TABLE_WALKS) / n
        out["bytes"] = sum(self.bytes.values()) / n
        return out


def cache_counts(iommu: Any) -> Dict[str, Dict[str, int]]:
    """A snapshot of ``iommu.stats``: counters of each cache."""
    return {name: c.as_dict() for name, c in iommu.stats.caches.items()}


def delta(
    after: Dict[str, Dict[str, int]], before: Dict[str, Dict[str, int]]
) -> Dict[str, Dict[str, int]]:
    """``after - before``, cache by cache and counter by counter."""
    return {c: {k: v - before[c][k] for k, v in cs.items()} for c, cs in after.items()}


def hit_rate(counts: Dict[str, int]) -> float:
    """hits / (hits + misses); 0.0 without lookups."""
    n = counts["hits"] + counts["misses"]
    return counts["hits"] / n if n else 0.0
