"""IOMMU address translation caches (IOATC): every cache of the model, on one type.

Spec "Caching in-memory data structures", the ``IODIR`` / ``IOTINVAL``
commands, and the spec table "Identifiers used to tag IOATC entries".

One bounded, tag-indexed :class:`Cache` type holds the capacity, the
replacement policy (``IommuParams.cache_policy``: LRU or FIFO), the tag index
used by invalidations and the exact statistics (a
:class:`~riscv_iommu.events.CacheStats`), and it emits a
:class:`~riscv_iommu.events.CacheEvent` for every hit, miss, fill, eviction
and invalidation when an observer is attached.  Capacity 0 is handled here:
there is no cache, so nothing is looked up, filled or counted, and every
request walks.

The structures (:class:`Ioatc` groups them):

* ``DDT``: device contexts, tag ``device_id``;
* ``PDT``: process contexts, tag ``(device_id, process_id)``, indexed by device;
* ``IOTLB`` (:class:`Iotlb`): translations combining both stages;
* ``MSI``: MSI PTEs, tag ``(GSCID, GPA page)``, indexed by GSCID;
* ``GWALK``: G-stage translations of the pages implicit reads use (first-stage
  page tables, PDT pages), tag ``(GSCID, GPA page)``, indexed by GSCID.

The spec processes reach them through ``io.ioatc`` and the wrappers of this
module (:func:`cached_dc`, :func:`cached_pc`); none calls back into ``Iommu``.

**The IOTLB.**  An entry caches one translation of an IOVA range to an SPA
range (the smaller of the two stages' pages), combining both stages, tagged
as the spec's table says:

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
Lookups cost one dict probe per page size filled since the IOTLB was last
empty (two when global entries were); fills and evictions are O(1) at any
capacity; invalidations by tag cost the entries they remove; invalidations
of an address range probe the range's pages at each leaf size, or visit the
entries of the tag they name, whichever is fewer.

**The whole-response shortcut ("front").**  Implementation choice: a request
whose previous identical occurrence (same device, process_id, privilege,
access, kind and page) was served by cache hits alone -- a DDT hit, a PDT
hit when it used a PC, an IOTLB hit when a stage is not Bare -- is answered
from a dict of responses keyed by the request, and counted as exactly those
hits (with the LRU order updated the same way).  Any change of the DDT, PDT
or IOTLB caches (fill, eviction, invalidation) and any register write that
the process reads empties it, so a shortcut answer is always the answer the
caches would give.  It holds at most ``iotlb_size`` responses, is off with an
IOTLB of capacity 0, and is bypassed while an observer is attached (the
caches then serve the request step by step, emitting their events).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Final,
    Hashable,
    Iterable,
    List,
    Optional,
    Set,
    Tuple,
)

from . import formats as F
from .ddt import DC, locate_dc
from .events import CacheEvent, CacheStats, Event
from .hpm import Event as HpmEvent
from .paging import G_MODES, S_MODES
from .pdt import PC, locate_pc

if TYPE_CHECKING:  # pragma: no cover
    from .capabilities import IommuParams
    from .iommu import Iommu

__all__ = [
    "Cache",
    "GpaCache",
    "Iotlb",
    "Ioatc",
    "cached_dc",
    "cached_pc",
    "HOST",
    "NONE",
    "GLOBAL",
    "Entry",
    "GKey",
    "Leaves",
    "Key",
    "Front",
    "FrontKey",
]

#: GSCID slot of translations whose second stage is Bare
HOST: Final = -1
#: PSCID slot of translations whose first stage is Bare
NONE: Final = -1
#: PSCID slot of global first-stage mappings
GLOBAL: Final = -2

# The keys are typed as variable-length tuples on purpose: the compiled build
# (mypyc) keeps a fixed-length tuple type as an unboxed C struct and boxes it
# anew, ints and all, at every dict or set operation; a ``Tuple[int, ...]`` is
# one tuple object, built once and shared by the cache and its indexes.
#: an IOTLB key: (gscid, pscid, shift, vpn)
Key = Tuple[int, ...]
#: (GSCID, G-stage leaf size, G-stage leaf GPA base): an entry's key in ``Iotlb.by_gpa``
GKey = Tuple[int, ...]
#: a tag of the IOTLB's ``by_tag`` index, (GSCID slot, PSCID slot), or a PDT-cache key,
#: (device_id, process_id)
Pair = Tuple[int, ...]
#: an IOTLB entry: (spa base, size, s1 pte or -1, g pte or -1, its G-stage leaf (GKey)
#: or None without a G-stage, its first-stage leaf (GSCID, PSCID, leaf shift, leaf page:
#: its key in ``Iotlb.by_s1``) when that leaf is larger than the entry, else None)
Entry = Tuple[int, int, int, int, Optional[GKey], Optional[Key]]
#: what :meth:`Iotlb.insert` caches: (spa base, size, s1 pte or -1, g pte or -1,
#: G-leaf GPA base, G-leaf size, first-stage leaf IOVA base, first-stage leaf size)
Leaves = Tuple[int, int, int, int, int, int, int, int]
#: a shortcut's request: (device_id, process_id or -1, priv, access | kind << 2, page)
FrontKey = Tuple[int, int, bool, int, int]
#: a shortcut's response: (SPA page, r, w, x, g, pbmt, s, size, rcid, mcid, the
#: PDT-cache key of its PC or None, the IOTLB key of its entry or None)
Front = Tuple[
    int, bool, bool, bool, bool, int, bool, int, int, int, Optional[Pair], Optional[Key]
]
_Index = Dict[Key, Set[Key]]
_GpaIndex = Dict[GKey, Set[Key]]
Emit = Optional[Callable[[Event], None]]

_TC: Final = F.DC_TC
_SBE: Final = _TC.SBE.mask
_SXL: Final = _TC.SXL.mask
_GADE: Final = _TC.GADE.mask
_R: Final = F.PTE.R.mask
_W: Final = F.PTE.W.mask
_X: Final = F.PTE.X.mask
_U: Final = F.PTE.U.mask
_A: Final = F.PTE.A.mask
_D: Final = F.PTE.D.mask
_G: Final = F.PTE.G.mask
_PBMT_LSB: Final = F.PTE.PBMT.lsb
_PBMT_MAX: Final = F.PTE.PBMT.max
#: the PTE bits a cached leaf needs for each Access (READ=0, WRITE=1, EXECUTE=2): its
#: permission bit, A, and D for a write
_NEED: Final = (_R | _A, _W | _A | _D, _X | _A)
_RWX: Final = _R | _W | _X


def _tag(key: Any) -> Tuple[int, ...]:
    return key if type(key) is tuple else (key,)


class Cache:
    """One bounded, tag-indexed cache with a replacement policy and exact statistics.

    ``entries`` maps a tag to the cached value, oldest first (LRU: least
    recently used first).  It is an ``OrderedDict``: finding the oldest entry,
    dropping it and moving a hit to the end are O(1) at any capacity (a plain
    dict used as a queue is not: its deleted slots at the front make finding
    the oldest entry cost up to the capacity).  With ``grouped`` the keys are
    tuples and an index by ``key[0]`` (a device_id or a GSCID) makes
    invalidating a group cost the entries it removes.  ``front`` is a dict of
    shortcuts resting on this cache, emptied whenever the cache changes (each
    shortcut is dropped once: O(1) per request that made one).
    """

    __slots__ = ("name", "capacity", "lru", "entries", "stats", "groups", "front", "emit")

    def __init__(
        self,
        name: str,
        capacity: int,
        lru: bool = True,
        grouped: bool = False,
        front: Optional[Dict[Any, Any]] = None,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.lru = lru
        self.entries: "OrderedDict[Any, Any]" = OrderedDict()
        self.stats = CacheStats()
        self.groups: Optional[Dict[Any, Set[Any]]] = {} if grouped else None
        self.front = front
        #: the model's observer (None: nothing attached)
        self.emit: Emit = None

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: Any) -> bool:
        return key in self.entries

    # -- lookups -----------------------------------------------------------
    def get(self, key: Hashable) -> Any:
        """Look ``key`` up: the cached value (a hit, made most recent) or None (a miss).

        A cache of capacity 0 is not looked up: None, and nothing is counted.
        """
        entries = self.entries
        value = entries.get(key)  # (capacity 0: always empty)
        if value is not None:
            self.stats.hits += 1
            if self.lru:
                entries.move_to_end(key)
            if self.emit is not None:
                self.emit(CacheEvent(self.name, "hit", _tag(key)))
            return value
        if self.capacity:
            self.stats.misses += 1
            if self.emit is not None:
                self.emit(CacheEvent(self.name, "miss", _tag(key)))
        return None

    def touch(self, key: Hashable) -> None:
        """LRU: mark ``key`` as just used (no statistics)."""
        if self.lru and key in self.entries:
            self.entries.move_to_end(key)

    # -- fills and evictions ----------------------------------------------
    def put(self, key: Hashable, value: Any) -> None:
        """Fill ``key``; at capacity the oldest (FIFO) or least recently used entry goes."""
        capacity = self.capacity
        if not capacity:
            return
        entries = self.entries
        groups = self.groups
        emit = self.emit
        if key in entries:
            del entries[key]  # a refill: the new value, made the most recent (same group)
        elif len(entries) >= capacity:
            # evict the oldest (FIFO) or least recently used: O(1) in an OrderedDict
            old = entries.popitem(False)[0]
            if groups is not None:
                vkeys = groups[old[0]]
                vkeys.discard(old)
                if not vkeys:
                    del groups[old[0]]
            self.stats.evictions += 1
            if emit is not None:
                emit(CacheEvent(self.name, "evict", _tag(old)))
        entries[key] = value
        if groups is not None:
            keys = groups.get(key[0])  # type: ignore[index]
            if keys is None:
                groups[key[0]] = {key}  # type: ignore[index]
            else:
                keys.add(key)
        self.stats.fills += 1
        front = self.front
        if front:
            front.clear()
        if emit is not None:
            emit(CacheEvent(self.name, "fill", _tag(key)))

    def _remove(self, key: Any) -> None:
        """Take ``key`` out of the entries and the indexes."""
        del self.entries[key]
        groups = self.groups
        if groups is not None:
            keys = groups[key[0]]
            keys.discard(key)
            if not keys:
                del groups[key[0]]
        if self.front:
            self.front.clear()

    # -- invalidations -----------------------------------------------------
    def _invalidated(self, n: int, tag: Tuple[int, ...]) -> int:
        if n:
            self.stats.invalidations += n
            if self.front:
                self.front.clear()
        if self.emit is not None and self.capacity:  # no cache (capacity 0): no event
            self.emit(CacheEvent(self.name, "inval", tag, n))
        return n

    def invalidate(self, key: Hashable) -> int:
        """Drop one entry; returns how many were removed (0 or 1)."""
        n = 0
        if key in self.entries:
            self._remove(key)
            n = 1
        return self._invalidated(n, _tag(key))

    def invalidate_keys(self, keys: Iterable[Any], tag: Tuple[int, ...] = ()) -> int:
        """Drop the given (present) entries; ``tag`` names the selection in the event."""
        n = 0
        for key in list(keys):
            self._remove(key)
            n += 1
        return self._invalidated(n, tag)

    def invalidate_group(self, group: int) -> int:
        """Drop every entry whose ``key[0]`` is ``group`` (needs ``grouped``)."""
        assert self.groups is not None
        return self.invalidate_keys(self.groups.get(group, ()), (group,))

    def clear(self) -> int:
        """Drop everything; returns how many entries were removed."""
        n = len(self.entries)
        self.entries.clear()
        if self.groups is not None:
            self.groups.clear()
        return self._invalidated(n, ())

    # -- checkpoints ----------------------------------------------------------
    def state(self) -> Tuple[Any, ...]:
        """A copy of the contents and statistics (see ``Iommu.snapshot``)."""
        groups = None if self.groups is None else {g: set(k) for g, k in self.groups.items()}
        return dict(self.entries), groups, self.stats.as_dict()

    def set_state(self, state: Tuple[Any, ...]) -> None:
        """Go back to a :meth:`state`."""
        entries, groups, stats = state
        self.entries.clear()
        self.entries.update(entries)
        if self.groups is not None:
            self.groups.clear()
            self.groups.update({g: set(k) for g, k in groups.items()})
        for k, v in stats.items():
            setattr(self.stats, k, v)


class GpaCache(Cache):
    """A cache tagged ``(GSCID, GPA page)`` (MSI PTEs, G-stage walk entries)."""

    __slots__ = ()

    def __init__(self, name: str, capacity: int, lru: bool = True) -> None:
        super().__init__(name, capacity, lru, grouped=True)

    def inval_gvma(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> int:
        """``IOTINVAL.GVMA``: all VMs (GV=0), one GSCID, or one GSCID's GPA range
        [lo, hi], visiting the range's pages or the GSCID's entries, the fewer."""
        if not gv:
            return self.clear()
        assert self.groups is not None
        keys = self.groups.get(gscid, set())
        if hi < 0:
            victims: Iterable[Any] = keys
        elif (hi >> 12) - (lo >> 12) < len(keys):
            victims = [(gscid, p) for p in range(lo >> 12, (hi >> 12) + 1) if (gscid, p) in keys]
        else:
            victims = [k for k in keys if lo >> 12 <= k[1] <= hi >> 12]
        return self.invalidate_keys(victims, (gscid,))


#: Page-size shifts of every leaf the paging modes define (4 KiB to 256 TiB pages of
#: Sv39/Sv48/Sv57 and their x4 forms, Sv32's 4 MiB, Svnapot's 64 KiB): the sizes
#: the first-stage and G-stage leaves of IOTLB entries can have
_LEAF_SHIFTS: Final = tuple(
    sorted(
        {
            12 + i * geom[1]
            for modes in (*S_MODES, *G_MODES)
            for geom in modes.values()
            for i in range(geom[0])
        }
        | {16}
    )
)


class Iotlb(Cache):
    """The IOTLB: translations with O(1) lookup, fill and eviction, and tag-indexed
    invalidation.

    Indexes (each kept exact by :meth:`insert`, :meth:`fill` and :meth:`_remove`,
    except ``shifts``):

    * ``by_tag``: (GSCID slot, PSCID slot) -> keys; ``by_g``: GSCID slot -> PSCID
      slots (invalidations by tag);
    * ``shifts``: the entry page-size shifts filled since the IOTLB was last
      empty (lookups probe them, smallest first): a superset of the shifts in
      use, bounded by the leaf sizes of the paging modes, so that fills and
      evictions keep no count; ``globals``: whether a global (``GLOBAL``)
      entry was filled since then (lookups probe the ``GLOBAL`` slot only
      then);
    * ``by_s1``: (GSCID, PSCID, first-stage leaf shift, leaf page) -> keys, for
      the entries holding a piece of a larger first-stage leaf (an entry whose
      first-stage leaf is its own page is found by its key);
    * ``by_gpa``: (GSCID, G-stage leaf size, leaf GPA base) -> keys of every
      entry with a G-stage (``IOTINVAL.GVMA`` with an address).
    """

    __slots__ = (
        "by_tag",
        "by_g",
        "shifts",
        "_shift_list",
        "globals",
        "by_s1",
        "by_gpa",
        "last_hit",
    )

    def __init__(
        self, capacity: int, lru: bool = True, front: Optional[Dict[Any, Any]] = None
    ) -> None:
        super().__init__("IOTLB", capacity, lru, front=front)
        self.by_tag: Dict[Pair, Set[Key]] = {}
        self.by_g: Dict[int, Set[int]] = {}
        self.shifts: Set[int] = set()
        self._shift_list: Tuple[int, ...] = ()
        self.globals = False
        self.by_s1: _Index = {}
        self.by_gpa: _GpaIndex = {}
        #: key of the last usable hit (the shortcut rests on it)
        self.last_hit: Optional[Key] = None

    @property
    def hits(self) -> int:
        """Usable cached translations found (``stats.hits``)."""
        return self.stats.hits

    @property
    def misses(self) -> int:
        """Lookups that walked (``stats.misses``)."""
        return self.stats.misses

    def lookup(self, gscid: int, pscid: int, va: int) -> Optional[Tuple[Key, Entry]]:
        """The key and entry translating ``va`` for the tag, or None (no statistics)."""
        entries = self.entries
        glob = self.globals and pscid >= 0
        key: Key
        for shift in self._shift_list:
            vpn = va >> shift
            key = (gscid, pscid, shift, vpn)
            e = entries.get(key)
            if e is None and glob:
                key = (gscid, GLOBAL, shift, vpn)
                e = entries.get(key)
            if e is not None:
                return key, e
        return None

    def hit(
        self, gscid: int, pscid: int, iova: int, access: int, priv: bool, sum_: bool
    ) -> Optional[Tuple[int, int, bool, int, int, None]]:
        """The cached result of steps 17-19 for ``iova``, or None to walk (a miss).

        A cached translation is used only when it grants the access with A
        (and, for a write, D) already set in each stage (PTW steps 5 and 7 on
        the cached PTEs); anything else walks, which updates A/D or reports
        the fault from the tables in memory, and counts as a miss.
        """
        entries = self.entries
        glob = self.globals and pscid >= 0
        key: Key
        e: Optional[Entry]  # typed: the compiled build then unpacks it natively
        # the lookup (inline: one probe per page size in ``shifts``, smallest first)
        for shift in self._shift_list:
            key = (gscid, pscid, shift, iova >> shift)
            e = entries.get(key)
            if e is None:
                if not glob:
                    continue
                key = (gscid, GLOBAL, shift, iova >> shift)
                e = entries.get(key)
                if e is None:
                    continue
            # PTW steps 5 and 7 on the cached leaves (the first entry found decides)
            spa_base, size, s1, gp, _, _ = e
            # the permission bit the access needs, with A (and D for a write)
            need = _NEED[access]
            perms = _RWX
            g = False
            pbmt = 0
            if s1 >= 0:
                if s1 & _U:
                    if priv and (not sum_ or access == 2):  # 2: Access.EXECUTE
                        break
                elif not priv:
                    break
                if s1 & need != need:
                    break
                perms = s1 & _RWX
                g = bool(s1 & _G)
                pbmt = (s1 >> _PBMT_LSB) & _PBMT_MAX
            if gp >= 0:
                need |= _U
                if gp & need != need:
                    break
                perms &= gp
                if not pbmt:
                    pbmt = (gp >> _PBMT_LSB) & _PBMT_MAX
            self.stats.hits += 1
            self.last_hit = key
            if self.lru:
                entries.move_to_end(key)
            if self.emit is not None:
                self.emit(CacheEvent("IOTLB", "hit", key))
            return spa_base | (iova & (size - 1)), perms, g, pbmt, size, None
        self.stats.misses += 1
        if self.emit is not None:
            self.emit(CacheEvent("IOTLB", "miss", (gscid, pscid, 12, iova >> 12)))
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
        their own page sizes (the entry's size for a Bare stage).  Sizes are
        powers of two (``x & -size`` is the base of the page holding x)."""
        capacity = self.capacity
        if not capacity:
            return None
        if g:
            pscid = GLOBAL
            self.globals = True
        shift = size.bit_length() - 1
        key: Key = (gscid, pscid, shift, iova >> shift)
        gkey: Optional[GKey] = None if gscid == HOST else (gscid, gsize, gpa & -gsize)
        skey: Optional[Key]
        if s1size == size:
            skey = None
        else:  # a piece of a larger first-stage leaf
            ssh = s1size.bit_length() - 1
            skey = (gscid, pscid, ssh, iova >> ssh)
        entry = (spa & -size, size, s1, gp, gkey, skey)
        entries = self.entries
        by_tag = self.by_tag
        tag: Pair = (gscid, pscid)
        keys: Optional[Set[Key]] = None  # the tag's keys, once key is in them
        if key in entries:
            # a refill of a present key: the new entry, made the most recent (no
            # identity test of the entries: the compiled build boxes tuples anew)
            self._unindex(key, entries.pop(key))
        elif len(entries) >= capacity:
            # evict the oldest (FIFO) or least recently used entry (O(1) in an
            # OrderedDict) and drop it from the indexes (_unindex, inline)
            vkey: Key
            ve: Entry
            vkey, ve = entries.popitem(False)
            vg, vp, _, _ = vkey
            if vg == gscid and vp == pscid:  # the same tag: its key set stays
                keys = by_tag[tag]
                keys.discard(vkey)
                keys.add(key)
            else:
                vtag: Pair = (vg, vp)
                vkeys = by_tag[vtag]
                vkeys.discard(vkey)
                if not vkeys:
                    del by_tag[vtag]
                    vslots = self.by_g[vg]
                    vslots.discard(vp)
                    if not vslots:
                        del self.by_g[vg]
            vgkey = ve[4]
            if vgkey is not None:
                vkeys = self.by_gpa[vgkey]
                vkeys.discard(vkey)
                if not vkeys:
                    del self.by_gpa[vgkey]
            vskey = ve[5]
            if vskey is not None:
                vkeys = self.by_s1[vskey]
                vkeys.discard(vkey)
                if not vkeys:
                    del self.by_s1[vskey]
            self.stats.evictions += 1
            if self.emit is not None:
                self.emit(CacheEvent("IOTLB", "evict", vkey))
        entries[key] = entry
        # the indexes (inline: a fill is on every walk's path)
        if keys is None:
            keys = by_tag.get(tag)
            if keys is None:
                by_tag[tag] = {key}
                slots = self.by_g.get(gscid)
                if slots is None:
                    self.by_g[gscid] = {pscid}
                else:
                    slots.add(pscid)
            else:
                keys.add(key)
        if shift not in self.shifts:
            self.shifts.add(shift)
            self._shift_list = tuple(sorted(self.shifts))
        if gkey is not None:
            keys = self.by_gpa.get(gkey)
            if keys is None:
                self.by_gpa[gkey] = {key}
            else:
                keys.add(key)
        if skey is not None:
            keys = self.by_s1.get(skey)
            if keys is None:
                self.by_s1[skey] = {key}
            else:
                keys.add(key)
        self.stats.fills += 1
        front = self.front
        if front:
            front.clear()
        if self.emit is not None:
            self.emit(CacheEvent("IOTLB", "fill", key))
        return key

    def insert(self, gscid: int, pscid: int, va: int, leaves: Leaves) -> Optional[Key]:
        """Cache a translation of ``va`` under the tag (:meth:`fill` with the bases and
        sizes of ``leaves``; the entry's size is leaves[1]); returns its key."""
        spa, size, s1, gp, gpa, gsize, _, s1size = leaves
        return self.fill(gscid, pscid, pscid == GLOBAL, va, spa, size, s1, s1size, gp, gpa, gsize)

    def _unindex(self, key: Key, e: Entry) -> None:
        """Take ``key`` (its entry ``e``) out of the indexes."""
        gscid, pscid, shift, _ = key
        tag: Pair = (gscid, pscid)
        keys = self.by_tag[tag]
        keys.discard(key)
        if not keys:
            del self.by_tag[tag]
            slots = self.by_g[gscid]
            slots.discard(pscid)
            if not slots:
                del self.by_g[gscid]
        gkey = e[4]
        if gkey is not None:
            keys = self.by_gpa[gkey]
            keys.discard(key)
            if not keys:
                del self.by_gpa[gkey]
        skey = e[5]
        if skey is not None:
            keys = self.by_s1[skey]
            keys.discard(key)
            if not keys:
                del self.by_s1[skey]

    def _remove(self, key: Any) -> None:
        self._unindex(key, self.entries.pop(key))
        if self.front:
            self.front.clear()

    def _invalidated(self, n: int, tag: Tuple[int, ...]) -> int:
        if not self.entries:  # empty: no page size and no global entry in use any more
            self.shifts.clear()
            self._shift_list = ()
            self.globals = False
        return super()._invalidated(n, tag)

    def clear(self) -> int:
        """Drop everything; returns how many entries were removed."""
        n = len(self.entries)
        for d in (self.entries, self.by_tag, self.by_g, self.by_s1, self.by_gpa):
            d.clear()
        return self._invalidated(n, ())

    def _s1_covering(self, tags: List[Pair], lo: int, hi: int) -> Set[Key]:
        """Keys of the tags' entries whose first-stage leaf overlaps [lo, hi]: the
        range's pages probed at every leaf size, or the tags' entries visited,
        whichever is fewer."""
        found: Set[Key] = set()
        entries = self.entries
        probes = sum((hi >> sh) - (lo >> sh) + 1 for sh in _LEAF_SHIFTS)
        if probes * len(tags) > sum(len(self.by_tag.get(t, ())) for t in tags):
            for t in tags:
                for key in self.by_tag.get(t, ()):
                    leaf = entries[key][5] or key  # the entry's first-stage leaf
                    if lo >> leaf[2] <= leaf[3] <= hi >> leaf[2]:
                        found.add(key)
            return found
        by_s1 = self.by_s1
        for g, p in tags:
            for sh in _LEAF_SHIFTS:
                for page in range(lo >> sh, (hi >> sh) + 1):
                    probe = (g, p, sh, page)
                    if probe in entries:  # an entry that is its own first-stage leaf
                        found.add(probe)
                    pieces = by_s1.get(probe)  # pieces of a larger leaf
                    if pieces:
                        found |= pieces
        return found

    def _g_covering(self, gscid: int, lo: int, hi: int) -> Set[Key]:
        """Keys of GSCID's entries whose G-stage leaf overlaps [lo, hi] (probes or a
        visit of the GSCID's entries, whichever is fewer)."""
        found: Set[Key] = set()
        tags = [(gscid, p) for p in self.by_g.get(gscid, ())]
        probes = sum((hi >> sh) - (lo >> sh) + 1 for sh in _LEAF_SHIFTS)
        if probes > sum(len(self.by_tag[t]) for t in tags):
            entries = self.entries
            for t in tags:
                for key in self.by_tag[t]:
                    _, gsize, gbase = entries[key][4]  # the entry's G-stage leaf
                    if gbase <= hi and gbase + gsize - 1 >= lo:
                        found.add(key)
            return found
        by_gpa = self.by_gpa
        for sh in _LEAF_SHIFTS:
            for page in range(lo >> sh, (hi >> sh) + 1):
                keys = by_gpa.get((gscid, 1 << sh, page << sh))
                if keys:
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
        tags: List[Pair] = [(g, p) for p in slots]
        if hi < 0:
            victims: Set[Key] = set()
            for t in tags:
                victims |= self.by_tag.get(t, set())
        else:
            victims = self._s1_covering(tags, lo, hi)
        return self.invalidate_keys(victims, (g, pscid) if pscv else (g,))

    def inval_gvma(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> int:
        """``IOTINVAL.GVMA``: translations through the second stage of every VM or of GSCID.

        With an address, only entries whose G-stage leaf covers a GPA in [lo, hi].
        """
        if gv and hi >= 0:
            return self.invalidate_keys(self._g_covering(gscid, lo, hi), (gscid,))
        victims = set()
        for g in [gscid] if gv else [g for g in self.by_g if g != HOST]:
            for p in self.by_g.get(g, ()):
                victims |= self.by_tag[(g, p)]
        return self.invalidate_keys(victims, (gscid,) if gv else ())

    def state(self) -> Tuple[Any, ...]:
        """A copy of the contents, indexes and statistics (the page sizes in use:
        those of the entries, so equal contents give equal states)."""
        return (
            dict(self.entries),
            self.stats.as_dict(),
            {k: set(v) for k, v in self.by_tag.items()},
            {k: set(v) for k, v in self.by_g.items()},
            {k[2] for k in self.entries},
            {k: set(v) for k, v in self.by_s1.items()},
            {k: set(v) for k, v in self.by_gpa.items()},
            self.last_hit,
        )

    def set_state(self, state: Tuple[Any, ...]) -> None:
        """Go back to a :meth:`state`."""
        entries, stats, by_tag, by_g, shifts, by_s1, by_gpa, last = state
        self.entries.clear()
        self.entries.update(entries)
        for index, saved in (
            (self.by_tag, by_tag),
            (self.by_g, by_g),
            (self.by_s1, by_s1),
            (self.by_gpa, by_gpa),
        ):
            index.clear()
            index.update({k: set(v) for k, v in saved.items()})
        self.shifts.clear()
        self.shifts.update(shifts)
        self._shift_list = tuple(sorted(self.shifts))
        self.globals = any(k[1] == GLOBAL for k in entries)
        self.last_hit = last
        for k, v in stats.items():
            setattr(self.stats, k, v)


class Ioatc:
    """The IOMMU's caches (``iommu.ioatc``) and the whole-response shortcut."""

    __slots__ = ("ddt", "pdt", "iotlb", "msi", "gwalk", "front", "front_size", "missed", "pc_key")

    def __init__(self, params: "IommuParams") -> None:
        lru = params.cache_policy == "lru"
        #: the whole-response shortcut: request key -> response fields (module doc)
        self.front: Dict[FrontKey, Front] = {}
        #: its bound: the IOTLB capacity (0 = off)
        self.front_size = params.iotlb_size
        self.ddt = Cache("DDT", params.ddt_cache_size, lru, front=self.front)
        self.pdt = Cache("PDT", params.pdt_cache_size, lru, grouped=True, front=self.front)
        self.iotlb = Iotlb(params.iotlb_size, lru, front=self.front)
        self.msi = GpaCache("MSI", params.msi_cache_size, lru)
        self.gwalk = GpaCache("GWALK", params.gwalk_cache_size, lru)
        #: per request: whether a DDT, PDT or IOTLB lookup missed (no shortcut then)
        self.missed = False
        #: per request: the PDT-cache key of the PC it used, or None
        self.pc_key: Optional[Pair] = None

    @property
    def caches(self) -> Tuple[Cache, ...]:
        """Every cache, in the order of ``Stats.caches``."""
        return (self.ddt, self.pdt, self.iotlb, self.msi, self.gwalk)

    def set_emit(self, emit: Emit) -> None:
        """Attach the model's observer (or None) to every cache."""
        for c in self.caches:
            c.emit = emit

    def begin(self) -> None:
        """A new request: nothing missed yet, no PC or IOTLB entry used.

        (A method, not assignments in the caller: a type checker -- and mypyc,
        which compiles on its types -- would keep the assigned values narrowed
        across the translation that changes them.)
        """
        self.missed = False
        self.pc_key = None
        self.iotlb.last_hit = None

    def flush_front(self) -> None:
        """Forget every shortcut (a register the process reads changed)."""
        self.front.clear()

    def remember(self, key: FrontKey, value: Front) -> None:
        """Record a shortcut for ``key`` (the request was served by cache hits alone)."""
        front = self.front
        if len(front) >= self.front_size:
            front.clear()
        front[key] = value

    # -- what the IODIR / IOTINVAL commands do -----------------------------
    def inval_ddt(self, device_id: Optional[int] = None) -> None:
        """``IODIR.INVAL_DDT``: cached DCs (all, or one device's) and the PCs under them."""
        if device_id is None:
            self.ddt.clear()
            self.pdt.clear()
            return
        self.ddt.invalidate(device_id)
        self.pdt.invalidate_group(device_id)

    def inval_pdt(self, device_id: int, process_id: int) -> None:
        """``IODIR.INVAL_PDT``: the cached PC of (device_id, process_id)."""
        self.pdt.invalidate((device_id, process_id))

    def inval_gvma(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> None:
        """``IOTINVAL.GVMA``: the IOTLB, MSI PTE and G-stage walk entries of the VM(s)."""
        self.iotlb.inval_gvma(gv, gscid, lo, hi)
        self.msi.inval_gvma(gv, gscid, lo, hi)
        self.gwalk.inval_gvma(gv, gscid, lo, hi)

    def clear(self) -> None:
        """Drop every cached structure (fctl.BE / fctl.GXL changed)."""
        for c in self.caches:
            c.clear()

    # -- checkpoints -----------------------------------------------------------
    def state(self) -> Tuple[Any, ...]:
        """A copy of every cache and the shortcuts."""
        return tuple(c.state() for c in self.caches) + (dict(self.front),)

    def set_state(self, state: Tuple[Any, ...]) -> None:
        """Go back to a :meth:`state`."""
        for c, s in zip(self.caches, state[:-1], strict=True):
            c.set_state(s)
        self.front.clear()
        self.front.update(state[-1])


# ----------------------------------------------------------------------------
# the caches around the directory walks (§GET_DC, §GET_PC)
# ----------------------------------------------------------------------------
def cached_dc(io: "Iommu", device_id: int) -> DC:
    """The device context of ``device_id``: a DDT-cache hit, or §GET_DC and a fill."""
    ddt = io._ddt
    entries = ddt.entries
    dc: Optional[DC] = entries.get(device_id)
    if dc is not None:  # a hit (Cache.get, inline: every request looks its DC up)
        ddt.stats.hits += 1
        if ddt.lru:
            entries.move_to_end(device_id)
        if ddt.emit is not None:
            ddt.emit(CacheEvent("DDT", "hit", (device_id,)))
        return dc
    if ddt.capacity:
        ddt.stats.misses += 1
        if ddt.emit is not None:
            ddt.emit(CacheEvent("DDT", "miss", (device_id,)))
    io.ioatc.missed = True
    hpm = io.hpm
    if hpm.active:
        hpm.count(HpmEvent.DDT_WALK, device_id, -1, -1, -1)
    if io.qos_port:
        io.mem.qos = io.iommu_qosid
    dc = locate_dc(io, device_id)
    ddt.put(device_id, dc)
    return dc


def cached_pc(io: "Iommu", device_id: int, process_id: int, dc: DC, access: int) -> PC:
    """The process context of ``process_id`` under ``dc``: a PDT-cache hit, or §GET_PC.

    A cached PC keeps the DC it was located under and is used only with a DC
    that locates and checks it alike (:func:`_located_alike`).  Software may
    change a DC before it sends ``IODIR.INVAL_DDT`` while the old DC has left
    the DDT cache and the PC is still cached; the spec allows the old or the
    new value of a changed entry, and a PC read under other DC fields (another
    PDT, byte order, SXL, format) is neither: the entry is dropped (no
    statistics: it is not an invalidation) and the lookup misses, so the PC is
    located again under the new DC.
    """
    key: Pair = (device_id, process_id)
    io.ioatc.pc_key = key
    pdt = io._pdt
    entries = pdt.entries
    cached: Optional[Tuple[PC, DC]] = entries.get(key)
    if cached is not None:
        if cached[1] is dc or _located_alike(io, cached[1], dc):
            # a hit (Cache.get, inline)
            pdt.stats.hits += 1
            if pdt.lru:
                entries.move_to_end(key)
            if pdt.emit is not None:
                pdt.emit(CacheEvent("PDT", "hit", key))
            return cached[0]
        pdt._remove(key)  # located under other DC fields: dropped, then a miss
    if pdt.capacity:
        pdt.stats.misses += 1
        if pdt.emit is not None:
            pdt.emit(CacheEvent("PDT", "miss", key))
    c = io.ioatc
    c.missed = True
    hpm = io.hpm
    if hpm.active:
        hpm.count(HpmEvent.PDT_WALK, device_id, process_id, -1, -1)
    tc = dc[0]
    fmt = io.pc_fmt if tc & io.gipc_tc else None  # [GIPC] the 32/64-byte PC
    pc = locate_pc(
        io,
        dc[3],
        process_id,
        dc[1],
        bool(tc & _SBE),
        1 if tc & _SXL else 0,
        access,
        (1 if tc & _GADE else 0) | (2 if tc & _SXL else 0),
        fmt,
    )
    pdt.put(key, (pc, dc))
    return pc


# DC.tc bits the PDT walk and the PC checks depend on ([GIPC] and DC.tc.GIPC)
_PC_TC_DEPS = _TC.mask_of("SBE", "SXL", "GADE")


def _located_alike(io: "Iommu", old: DC, dc: DC) -> bool:
    """Whether a PC located under the DC ``old`` is located and checked alike under
    ``dc``: the same pdtp (DC.fsc), DC.iohgatp (PDT addresses are GPAs), and
    DC.tc.SBE (byte order), SXL (PC checks 3/4), GADE (A updates of the walk) and
    [GIPC] DC.tc.GIPC (the PC format)."""
    deps = _PC_TC_DEPS | io.gipc_tc
    return old[3] == dc[3] and old[1] == dc[1] and not (old[0] ^ dc[0]) & deps
