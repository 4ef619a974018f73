"""IOMMU address translation caches (IOATC): the IOTLB.

Spec "Caching in-memory data structures" and the ``IOTINVAL`` commands.
An IOTLB entry caches one translation of an IOVA range to an SPA range
(the smaller of the two stages' pages), combining both stages, tagged as
the spec's table says:

* first stage with a G-stage: ``GSCID``, ``PSCID`` and IOVA;
* first stage alone (second stage Bare): ``PSCID`` and IOVA (GSCID slot ``HOST``);
* second stage alone (first stage Bare): ``GSCID`` and GPA (PSCID slot ``NONE``).

First-stage leaves with ``G = 1`` (global mappings) are kept under the
PSCID slot ``GLOBAL`` and match every PSCID of their GSCID.  Each entry
remembers the range of the first-stage leaf it came from (in IOVA space) and
of the G-stage leaf (in GPA space): ``IOTINVAL.VMA`` with an address drops the
entries whose first-stage leaf covers it, ``IOTINVAL.GVMA`` with an address
those whose G-stage leaf covers it -- also when a superpage of one stage was
cached in smaller pieces because the other stage maps smaller pages.

Lookups cost one dict probe per page size in use (two with global entries);
invalidations probe the pages of their range, or visit only the entries of
the tag they name, whichever is fewer.  Capacity 0 disables the cache.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

__all__ = ["Iotlb", "HOST", "NONE", "GLOBAL", "Entry", "Key"]

#: GSCID slot of translations whose second stage is Bare
HOST = -1
#: PSCID slot of translations whose first stage is Bare
NONE = -1
#: PSCID slot of global first-stage mappings
GLOBAL = -2

#: (spa base, size, s1 pte or -1, g pte or -1, G-leaf GPA base, G-leaf size,
#:  first-stage leaf IOVA base, first-stage leaf size)
Entry = Tuple[int, int, int, int, int, int, int, int]
Key = Tuple[int, int, int, int]  # (gscid, pscid, shift, vpn)
_Index = Dict[Tuple[int, int, int, int], Set[Key]]


def _shift(size: int) -> int:
    return size.bit_length() - 1


class Iotlb:
    """A set of cached translations with O(1) lookup and tag-indexed invalidation."""

    def __init__(self, capacity: int, lru: bool = True) -> None:
        self.capacity = capacity
        self.lru = lru
        self.entries: Dict[Key, Entry] = {}
        # tag (gscid, pscid) -> keys
        self.by_tag: Dict[Tuple[int, int], Set[Key]] = {}
        # gscid -> pscid slots present
        self.by_g: Dict[int, Set[int]] = {}
        # entry page-size shifts in use -> number of entries
        self.shifts: Dict[int, int] = {}
        self._shift_list: List[int] = []
        # (gscid, pscid, first-stage leaf shift, leaf page) -> keys (IOTINVAL.VMA, AV=1)
        self.by_s1: _Index = {}
        self.s1_shifts: Dict[int, int] = {}
        # (gscid, 0, G-stage leaf shift, leaf page) -> keys (IOTINVAL.GVMA, AV=1)
        self.by_gpa: _Index = {}
        self.gpa_shifts: Dict[int, int] = {}
        #: called with no argument whenever an entry is evicted for capacity
        self.on_evict: Optional[object] = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, gscid: int, pscid: int, va: int) -> Optional[Tuple[Key, Entry]]:
        """The key and entry translating ``va`` for the tag, or None."""
        entries = self.entries
        for shift in self._shift_list:
            vpn = va >> shift
            key = (gscid, pscid, shift, vpn)
            e = entries.get(key)
            if e is None and pscid >= 0:
                key = (gscid, GLOBAL, shift, vpn)
                e = entries.get(key)
            if e is not None:
                if self.lru:
                    del entries[key]
                    entries[key] = e
                self.hits += 1
                return key, e
        self.misses += 1
        return None

    def fill(
        self,
        gscid: int,
        pscid: int,
        g: bool,
        iova: int,
        spa: int,
        size: int,
        s1: int,
        s1size: int,
        gp: int,
        gpa: int,
        gsize: int,
    ) -> Optional[Key]:
        """Cache a translation just walked: ``size`` is the smaller stage's page,
        ``s1``/``gp`` the leaf PTEs (-1 for a Bare stage), ``s1size``/``gsize``
        their own page sizes (the entry's size for a Bare stage)."""
        return self.insert(
            gscid,
            GLOBAL if g else pscid,
            iova,
            (
                spa & ~(size - 1),
                size,
                s1,
                gp,
                gpa & ~(gsize - 1),
                gsize,
                iova & ~(s1size - 1),
                s1size,
            ),
        )

    def touch(self, key: Key) -> None:
        """Mark ``key`` as just used (LRU)."""
        if self.lru:
            e = self.entries.pop(key, None)
            if e is not None:
                self.entries[key] = e

    def insert(self, gscid: int, pscid: int, va: int, entry: Entry) -> Optional[Key]:
        """Cache ``entry`` (its size is entry[1]) for ``va`` under the tag; returns its key."""
        if not self.capacity:
            return None
        shift = _shift(entry[1])
        key = (gscid, pscid, shift, va >> shift)
        entries = self.entries
        if key in entries:
            self._remove(key)
        while len(entries) >= self.capacity:
            self._remove(next(iter(entries)))
            if self.on_evict is not None:
                self.on_evict()  # type: ignore[operator]
        entries[key] = entry
        self.by_tag.setdefault((gscid, pscid), set()).add(key)
        self.by_g.setdefault(gscid, set()).add(pscid)
        _count(self.shifts, shift, 1)
        self._shift_list = sorted(self.shifts)
        gsh = _shift(entry[5])
        self.by_gpa.setdefault((gscid, 0, gsh, entry[4] >> gsh), set()).add(key)
        _count(self.gpa_shifts, gsh, 1)
        ssh = _shift(entry[7])
        self.by_s1.setdefault((gscid, pscid, ssh, entry[6] >> ssh), set()).add(key)
        _count(self.s1_shifts, ssh, 1)
        return key

    def _remove(self, key: Key) -> None:
        e = self.entries.pop(key)
        gscid, pscid, shift, _ = key
        tag = (gscid, pscid)
        keys = self.by_tag[tag]
        keys.discard(key)
        if not keys:
            del self.by_tag[tag]
            slots = self.by_g[gscid]
            slots.discard(pscid)
            if not slots:
                del self.by_g[gscid]
        if not _count(self.shifts, shift, -1):
            self._shift_list = sorted(self.shifts)
        gsh = _shift(e[5])
        _unindex(self.by_gpa, (gscid, 0, gsh, e[4] >> gsh), key)
        _count(self.gpa_shifts, gsh, -1)
        ssh = _shift(e[7])
        _unindex(self.by_s1, (gscid, pscid, ssh, e[6] >> ssh), key)
        _count(self.s1_shifts, ssh, -1)

    def clear(self) -> None:
        """Drop everything."""
        for d in (self.entries, self.by_tag, self.by_g, self.shifts, self.by_s1, self.by_gpa):
            d.clear()
        self.s1_shifts.clear()
        self.gpa_shifts.clear()
        self._shift_list = []

    def _drop(self, keys: Set[Key]) -> int:
        for key in keys:
            self._remove(key)
        return len(keys)

    def _in_range(
        self, index: _Index, shifts: Dict[int, int], g: int, p: int, lo: int, hi: int
    ) -> Set[Key]:
        """Keys indexed under (g, p) whose leaf range overlaps [lo, hi]."""
        found: Set[Key] = set()
        probes = sum((hi >> sh) - (lo >> sh) + 1 for sh in shifts)
        if probes <= len(index):
            for sh in shifts:
                for page in range(lo >> sh, (hi >> sh) + 1):
                    found |= index.get((g, p, sh, page), set())
            return found
        for (ig, ip, sh, page), keys in index.items():
            if ig == g and ip == p and page << sh <= hi and ((page + 1) << sh) - 1 >= lo:
                found |= keys
        return found

    def inval_vma(
        self, gv: bool, gscid: int, pscv: bool, pscid: int, lo: int = 0, hi: int = -1
    ) -> int:
        """``IOTINVAL.VMA``: first-stage translations of the host (GV=0) or of GSCID.

        ``pscv`` limits to one PSCID, global mappings excluded; ``hi >= 0``
        limits to entries whose first-stage leaf covers an IOVA in [lo, hi]
        (AV=1, with the S range extension).
        """
        g = gscid if gv else HOST
        slots = [pscid] if pscv else [p for p in self.by_g.get(g, ()) if p != NONE]
        victims: Set[Key] = set()
        for p in slots:
            if hi < 0:
                victims |= self.by_tag.get((g, p), set())
            else:
                victims |= self._in_range(self.by_s1, self.s1_shifts, g, p, lo, hi)
        return self._drop(victims)

    def inval_gvma(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> int:
        """``IOTINVAL.GVMA``: translations through the second stage of every VM or of GSCID.

        With an address, only entries whose G-stage leaf covers a GPA in [lo, hi].
        """
        if gv and hi >= 0:
            return self._drop(self._in_range(self.by_gpa, self.gpa_shifts, gscid, 0, lo, hi))
        victims: Set[Key] = set()
        for g in [gscid] if gv else [g for g in self.by_g if g != HOST]:
            for p in self.by_g.get(g, ()):
                victims |= self.by_tag[(g, p)]
        return self._drop(victims)


def _count(counts: Dict[int, int], k: int, delta: int) -> int:
    n = counts.get(k, 0) + delta
    if n:
        counts[k] = n
    else:
        del counts[k]
    return n


def _unindex(index: _Index, ikey: Tuple[int, int, int, int], key: Key) -> None:
    keys = index[ikey]
    keys.discard(key)
    if not keys:
        del index[ikey]
