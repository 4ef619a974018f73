"""Exact counters of one cache (:class:`CacheStats`, exported by ``riscv_iommu.events``).

A module of its own so that the compiled build (see ``setup.py``) compiles it
with the caches that count into it, while the event stream stays interpreted.
"""

from __future__ import annotations

from typing import Dict

__all__ = ["CacheStats"]


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
        return {
            "hits": self.hits,
            "misses": self.misses,
            "fills": self.fills,
            "evictions": self.evictions,
            "invalidations": self.invalidations,
        }

    @property
    def lookups(self) -> int:
        """hits + misses."""
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """hits / lookups (0.0 before the first lookup)."""
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    def __repr__(self) -> str:
        return "CacheStats(" + ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + ")"
