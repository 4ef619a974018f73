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

from typing import Any, Dict, Tuple

from ..events import CommandEvent, Event, StructRead

__all__ = ["Probe", "STRUCTURES", "cache_counts", "delta", "hit_rate"]

#: Columns of a reads-per-translation breakdown, in walk order.  ``G_PTE_table``:
#: G-stage PTEs read to translate the GPA of another structure (a first-stage
#: PTE, a PDT entry, a PC, ...); ``G_PTE_final``: G-stage PTEs of the request's GPA.
STRUCTURES: Tuple[str, ...] = (
    "DDTE",
    "DC",
    "PDTE",
    "PC",
    "S_PTE",
    "G_PTE_table",
    "G_PTE_final",
    "MSI_PTE",
    "MRIF",
)


class Probe:
    """Counts structure reads and commands while ``active``."""

    __slots__ = ("reads", "commands", "active")

    def __init__(self) -> None:
        self.reads: Dict[str, int] = {}
        self.commands = 0
        self.active = True

    def __call__(self, event: Event) -> None:
        if not self.active:
            return
        t = type(event)
        if t is StructRead:
            name = event.structure  # type: ignore[attr-defined]
            if name == "G_PTE":
                name = "G_PTE_final" if event.walk == "final" else "G_PTE_table"  # type: ignore[attr-defined]
            self.reads[name] = self.reads.get(name, 0) + 1
        elif t is CommandEvent:
            self.commands += 1

    def total(self) -> int:
        """Every structure read counted."""
        return sum(self.reads.values())

    def reset(self) -> None:
        """Forget the counts."""
        self.reads = {}
        self.commands = 0

    def per(self, n: int) -> Dict[str, float]:
        """Reads per translation (``n`` translations), by structure, with ``total``."""
        out = {s: self.reads.get(s, 0) / n for s in STRUCTURES}
        out["total"] = self.total() / n
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
