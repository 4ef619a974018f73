"""IOMMU address translation caches (IOATC): the IOTLB.

Spec "Caching in-memory data structures" and the ``IOTINVAL`` commands.
An IOTLB entry caches one translation of an IOVA page to an SPA page,
combining both stages, tagged as the spec's table says:

* first stage with a G-stage: ``GSCID``, ``PSCID`` and IOVA;
* first stage alone (second stage Bare): ``PSCID`` and IOVA (GSCID slot ``HOST``);
* second stage alone (first stage Bare): ``GSCID`` and GPA (PSCID slot ``NONE``).

First-stage leaves with ``G = 1`` (global mappings) are kept under the
PSCID slot ``GLOBAL`` and match every PSCID of their GSCID.  Each entry also
keeps the GPA page it went through, so ``IOTINVAL.GVMA`` with an address
removes exactly the entries whose guest-physical page it names.

Lookups cost one dict probe per page size in use (two with global entries);
invalidations touch only the entries of the tag they name.
Capacity 0 disables the cache.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

__all__ = ["Iotlb", "HOST", "NONE", "GLOBAL", "Entry"]

#: GSCID slot of translations whose second stage is Bare
HOST = -1
#: PSCID slot of translations whose first stage is Bare
NONE = -1
#: PSCID slot of global first-stage mappings
GLOBAL = -2

#: (spa page base, size, s1 pte or -1, g pte or -1, gpa page base, gpa size)
Entry = Tuple[int, int, int, int, int, int]
Key = Tuple[int, int, int, int]  # (gscid, pscid, shift, vpn)


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
        # page-size shifts in use -> number of entries
        self.shifts: Dict[int, int] = {}
        self._shift_list: List[int] = []
        # (gscid, GPA shift, GPA page) -> keys: IOTINVAL.GVMA with an address
        self.by_gpa: Dict[Tuple[int, int, int], Set[Key]] = {}
        self.gpa_shifts: Dict[int, int] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, gscid: int, pscid: int, va: int) -> Optional[Entry]:
        """The entry translating ``va`` for the tag, or None."""
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
                return e
        self.misses += 1
        return None

    def insert(self, gscid: int, pscid: int, va: int, entry: Entry) -> None:
        """Cache ``entry`` (its size is entry[1]) for ``va`` under the tag."""
        if not self.capacity:
            return
        shift = entry[1].bit_length() - 1
        key = (gscid, pscid, shift, va >> shift)
        entries = self.entries
        if key in entries:
            entries[key] = entry
            return
        while len(entries) >= self.capacity:
            self._remove(next(iter(entries)))
        entries[key] = entry
        self.by_tag.setdefault((gscid, pscid), set()).add(key)
        gshift = entry[5].bit_length() - 1
        self.by_gpa.setdefault((gscid, gshift, entry[4] >> gshift), set()).add(key)
        self.gpa_shifts[gshift] = self.gpa_shifts.get(gshift, 0) + 1
        self.by_g.setdefault(gscid, set()).add(pscid)
        n = self.shifts.get(shift, 0)
        self.shifts[shift] = n + 1
        if not n:
            self._shift_list = sorted(self.shifts)

    def _remove(self, key: Key) -> None:
        e = self.entries.pop(key)
        gscid, pscid, shift, _ = key
        gshift = e[5].bit_length() - 1
        gkey = (gscid, gshift, e[4] >> gshift)
        gkeys = self.by_gpa[gkey]
        gkeys.discard(key)
        if not gkeys:
            del self.by_gpa[gkey]
        n = self.gpa_shifts[gshift] - 1
        if n:
            self.gpa_shifts[gshift] = n
        else:
            del self.gpa_shifts[gshift]
        tag = (gscid, pscid)
        keys = self.by_tag[tag]
        keys.discard(key)
        if not keys:
            del self.by_tag[tag]
            slots = self.by_g[gscid]
            slots.discard(pscid)
            if not slots:
                del self.by_g[gscid]
        n = self.shifts[shift] - 1
        if n:
            self.shifts[shift] = n
        else:
            del self.shifts[shift]
            self._shift_list = sorted(self.shifts)

    def clear(self) -> None:
        """Drop everything."""
        self.entries.clear()
        self.by_tag.clear()
        self.by_g.clear()
        self.shifts.clear()
        self._shift_list = []
        self.by_gpa.clear()
        self.gpa_shifts.clear()

    def _drop_tag(self, tag: Tuple[int, int], lo: int = 0, hi: int = -1) -> int:
        """Remove the entries of ``tag`` translating IOVAs in [lo, hi] (all when hi < 0).

        Visits the candidate pages of the range when that is fewer than the
        tag's entries, so a one-page invalidation costs one probe per page size.
        """
        keys = self.by_tag.get(tag)
        if not keys:
            return 0
        if hi < 0:
            victims = list(keys)
        else:
            victims = self._in_range(keys, tag, lo, hi, self._shift_list)
        for key in victims:
            self._remove(key)
        return len(victims)

    def _in_range(
        self, keys: Set[Key], tag: Tuple[int, int], lo: int, hi: int, shifts: List[int]
    ) -> List[Key]:
        g, p = tag
        probes = sum(((hi >> sh) - (lo >> sh) + 1) for sh in shifts)
        if probes <= len(keys):
            found = []
            for sh in shifts:
                for vpn in range(lo >> sh, (hi >> sh) + 1):
                    key = (g, p, sh, vpn)
                    if key in keys:
                        found.append(key)
            return found
        return [k for k in keys if k[3] << k[2] <= hi and ((k[3] + 1) << k[2]) - 1 >= lo]

    def _drop_gpa(self, gscid: int, lo: int, hi: int) -> int:
        """Remove the entries of ``gscid`` whose guest-physical page overlaps [lo, hi]."""
        victims: Set[Key] = set()
        for gshift in sorted(self.gpa_shifts):
            first, last = lo >> gshift, hi >> gshift
            if last - first + 1 <= len(self.by_gpa):
                for gpn in range(first, last + 1):
                    victims |= self.by_gpa.get((gscid, gshift, gpn), set())
            else:
                for (g, sh, gpn), keys in self.by_gpa.items():
                    if g == gscid and sh == gshift and first <= gpn <= last:
                        victims |= keys
        for key in victims:
            self._remove(key)
        return len(victims)

    def inval_vma(
        self, gv: bool, gscid: int, pscv: bool, pscid: int, lo: int = 0, hi: int = -1
    ) -> int:
        """``IOTINVAL.VMA``: first-stage translations of the host (GV=0) or of GSCID.

        ``pscv`` limits to one PSCID, global mappings excluded; ``hi >= 0``
        limits to IOVAs in [lo, hi] (AV=1, with the S range extension).
        """
        g = gscid if gv else HOST
        if pscv:
            return self._drop_tag((g, pscid), lo, hi)
        n = 0
        for p in list(self.by_g.get(g, ())):
            if p != NONE:
                n += self._drop_tag((g, p), lo, hi)
        return n

    def inval_gvma(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> int:
        """``IOTINVAL.GVMA``: translations through the second stage of every VM or of GSCID.

        With an address, only entries whose guest-physical page overlaps [lo, hi].
        """
        if gv and hi >= 0:
            return self._drop_gpa(gscid, lo, hi)
        n = 0
        gs = [gscid] if gv else [g for g in self.by_g if g != HOST]
        for g in gs:
            for p in list(self.by_g.get(g, ())):
                n += self._drop_tag((g, p))
        return n
