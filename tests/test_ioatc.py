"""The caches of ``riscv_iommu.ioatc`` on their own: the IOTLB's lookup bookkeeping (page
sizes and global entries in use), the fill and eviction paths with their events and
statistics, and snapshots of the IOTLB."""

from __future__ import annotations

from typing import List

from riscv_iommu.events import CacheEvent, Event
from riscv_iommu.ioatc import GLOBAL, HOST, Cache, Iotlb

_MB2 = 1 << 21


def _ops(events: List[Event]) -> List[tuple]:
    out = []
    for e in events:
        assert isinstance(e, CacheEvent)
        out.append((e.cache, e.op, e.tag, e.count))
    return out


def test_iotlb_page_sizes_stay_until_the_iotlb_is_empty() -> None:
    """A lookup probes the page sizes filled since the IOTLB was last empty: an invalidated
    2 MiB entry leaves its size probed (and finds nothing there); once the last entry goes,
    nothing is probed."""
    t = Iotlb(8)
    k4 = t.fill(HOST, 3, False, 0x1000, 0x8000_1000, 4096, 0xCF, 4096, -1, 0x1000, 4096)
    k2m = t.fill(HOST, 3, False, 0x40_0000, 0x9000_0000, _MB2, 0xCF, _MB2, -1, 0x40_0000, _MB2)
    assert (k4, k2m) == ((HOST, 3, 12, 1), (HOST, 3, 21, 2))
    assert t.shifts == {12, 21} and t.lookup(HOST, 3, 0x5F_F123) == (k2m, t.entries[k2m])
    assert t.inval_vma(False, 0, True, 3, 0x40_0000, 0x40_0000) == 1
    assert t.shifts == {12, 21} and list(t.entries) == [k4]
    assert t.lookup(HOST, 3, 0x5F_F123) is None
    assert t.hit(HOST, 3, 0x1234, 0, True, False) == (0x8000_1234, 0xE, False, 0, 4096, None)
    assert t.hit(HOST, 3, 0x40_0000, 0, True, False) is None
    assert (t.stats.hits, t.stats.misses) == (1, 1)
    assert t.inval_vma(False, 0, True, 3) == 1
    assert not t.shifts and not t.entries and t.lookup(HOST, 3, 0x1234) is None


def test_iotlb_global_entries_are_probed_only_after_a_global_fill() -> None:
    """A global mapping (G = 1) is filled under the GLOBAL slot and found for every PSCID of
    its GSCID; the non-global slot is probed first; when the IOTLB empties, the global slot
    is no longer probed."""
    t = Iotlb(4)
    own = t.fill(5, 3, False, 0x1000, 0x8000_1000, 4096, 0xCF, 4096, 0xDF, 0x1000, 4096)
    assert not t.globals and t.lookup(5, 9, 0x1000) is None
    glob = t.fill(5, 3, True, 0x1000, 0x8800_1000, 4096, 0xEF, 4096, 0xDF, 0x1000, 4096)
    assert glob == (5, GLOBAL, 12, 1) and t.globals
    assert t.lookup(5, 3, 0x1000) == (own, t.entries[own])
    assert t.lookup(5, 9, 0x1ABC) == (glob, t.entries[glob])
    assert t.hit(5, 9, 0x1ABC, 0, True, False) == (0x8800_1ABC, 0xE, True, 0, 4096, None)
    assert t.last_hit == glob
    assert t.lookup(6, 9, 0x1000) is None  # another GSCID
    assert t.inval_gvma(True, 5) == 2
    assert not t.globals and not t.by_tag and not t.by_g and not t.by_gpa


def test_iotlb_fill_with_an_eviction_emits_evict_then_fill() -> None:
    """A fill into a full IOTLB evicts the least recently used entry first: the events are
    the eviction, then the fill; the indexes hold the live keys only."""
    t = Iotlb(2)
    events: List[Event] = []
    t.emit = events.append
    a = t.fill(5, 1, False, 0x1000, 0x8000_1000, 4096, 0xCF, 4096, 0xDF, 0x7000, 4096)
    b = t.fill(5, 2, False, 0x2000, 0x8000_2000, 4096, 0xCF, 4096, 0xDF, 0x7000, 4096)
    assert t.hit(5, 1, 0x1000, 0, True, False) is not None  # a is now the most recent
    c = t.fill(HOST, 4, False, 0x3000, 0x8000_3000, 4096, 0xCF, 4096, -1, 0x3000, 4096)
    assert list(t.entries) == [a, c]
    assert _ops(events) == [
        ("IOTLB", "fill", a, 1),
        ("IOTLB", "fill", b, 1),
        ("IOTLB", "hit", a, 1),
        ("IOTLB", "evict", b, 1),
        ("IOTLB", "fill", c, 1),
    ]
    assert t.by_tag == {(5, 1): {a}, (HOST, 4): {c}}
    assert t.by_g == {5: {1}, HOST: {4}}
    assert t.by_gpa == {(5, 4096, 0x7000): {a}}
    s = t.stats
    assert (s.fills, s.evictions, s.hits, s.misses, s.invalidations) == (3, 1, 1, 0, 0)
    # the same tag evicted and filled: its key set is kept
    d = t.fill(5, 1, False, 0x4000, 0x8000_4000, 4096, 0xCF, 4096, 0xDF, 0x8000, 4096)
    assert list(t.entries) == [c, d] and t.by_tag == {(5, 1): {d}, (HOST, 4): {c}}
    assert t.by_gpa == {(5, 4096, 0x8000): {d}} and _ops(events)[-2:] == [
        ("IOTLB", "evict", a, 1),
        ("IOTLB", "fill", d, 1),
    ]


def test_iotlb_refill_of_a_present_key_replaces_its_indexes() -> None:
    """A fill of a key already cached (a hit that was not usable, then a walk) replaces the
    entry and its range indexes, makes it the most recent, and evicts nothing."""
    t = Iotlb(2)
    k = t.fill(5, 7, False, 0x20_0000, 0x8000_0000, 4096, 0x4F, _MB2, 0xDF, 0x3000, 4096)
    other = t.fill(5, 7, False, 0x9000, 0x8000_9000, 4096, 0xCF, 4096, 0xDF, 0x9000, 4096)
    assert t.hit(5, 7, 0x20_0000, 1, True, False) is None  # a write, D = 0: walks
    again = t.fill(5, 7, False, 0x20_0000, 0x8000_0000, 4096, 0xCF, 4096, 0xDF, 0x5000, 4096)
    assert again == k and list(t.entries) == [other, k]
    assert not t.by_s1 and t.by_gpa == {(5, 4096, 0x5000): {k}, (5, 4096, 0x9000): {other}}
    assert (t.stats.fills, t.stats.evictions) == (3, 0)
    assert t.hit(5, 7, 0x20_0008, 1, True, False) == (0x8000_0008, 0xE, False, 0, 4096, None)


def test_iotlb_state_is_its_contents_and_restores_the_lookups() -> None:
    """state() names the page sizes of the entries (equal contents, equal states), and
    set_state() restores the entries, indexes, page sizes and global flag."""
    t = Iotlb(8)
    t.fill(HOST, 3, True, 0x1000, 0x8000_1000, 4096, 0xEF, 4096, -1, 0x1000, 4096)
    big = t.fill(HOST, 3, False, 0x40_0000, 0x9000_0000, _MB2, 0xCF, _MB2, -1, 0x40_0000, _MB2)
    assert big is not None and t.invalidate(big) == 1
    saved = t.state()
    assert saved[4] == {12} and t.shifts == {12, 21}
    u = Iotlb(8)
    u.fill(HOST, 3, True, 0x1000, 0x8000_1000, 4096, 0xEF, 4096, -1, 0x1000, 4096)
    assert u.state()[0] == saved[0] and u.state()[2:] == saved[2:]
    t.clear()
    assert not t.globals and t.lookup(HOST, 8, 0x1000) is None
    t.set_state(saved)
    assert t.globals and t.shifts == {12} and t.lookup(HOST, 8, 0x1000) is not None
    assert t.stats.fills == 2 and t.stats.invalidations == 1


def test_cache_put_evicts_the_oldest_of_its_group_index() -> None:
    """Cache.put into a full grouped cache: the oldest entry leaves the entries and the
    group index (an emptied group is dropped), with the eviction event before the fill."""
    c = Cache("PDT", 2, grouped=True)
    events: List[Event] = []
    c.emit = events.append
    c.put((1, 5), "a")
    c.put((2, 6), "b")
    assert c.get((1, 5)) == "a" and c.get((3, 3)) is None
    c.put((2, 7), "c")
    assert list(c.entries.items()) == [((1, 5), "a"), ((2, 7), "c")]
    assert c.groups == {1: {(1, 5)}, 2: {(2, 7)}}
    c.put((4, 1), "d")
    assert c.groups == {2: {(2, 7)}, 4: {(4, 1)}}
    assert _ops(events) == [
        ("PDT", "fill", (1, 5), 1),
        ("PDT", "fill", (2, 6), 1),
        ("PDT", "hit", (1, 5), 1),
        ("PDT", "miss", (3, 3), 1),
        ("PDT", "evict", (2, 6), 1),
        ("PDT", "fill", (2, 7), 1),
        ("PDT", "evict", (1, 5), 1),
        ("PDT", "fill", (4, 1), 1),
    ]
    s = c.stats
    assert (s.fills, s.evictions, s.hits, s.misses) == (4, 2, 1, 1)
    none = Cache("DDT", 0)
    none.put(1, "x")
    assert none.get(1) is None and not none.entries and none.stats.lookups == 0


def test_iotlb_range_invalidations_by_probes_find_pieces_of_superpages() -> None:
    """With more entries in the tag than pages to probe, IOTINVAL.VMA and IOTINVAL.GVMA of
    one address probe the indexes: they drop exactly the 4 KiB pieces of the 2 MiB
    first-stage (or G-stage) leaf covering it."""
    t = Iotlb(64)
    for k in range(12):  # 4 KiB leaves in both stages, elsewhere
        va = 0x100_0000 + (k << 12)
        t.fill(5, 7, False, va, 0x8000_0000 + va, 4096, 0xCF, 4096, 0xDF, va, 4096)
    s1_pieces = [
        t.fill(5, 7, False, va, 0x9000_0000 + va, 4096, 0xCF, _MB2, 0xDF, 0x300_0000 + va, 4096)
        for va in (0x20_0000, 0x20_5000)
    ]
    g_pieces = [
        t.fill(5, 7, False, va, 0xA000_0000 + va, 4096, 0xCF, 4096, 0xDF, 0x60_0000 + va, _MB2)
        for va in (0x400_0000, 0x400_3000)
    ]
    assert len(t) == 16 and set(t.by_s1) == {(5, 7, 21, 1)}
    assert t.by_gpa[(5, _MB2, 0x460_0000)] == set(g_pieces)
    assert t.inval_vma(True, 5, True, 7, 0x3F_F000, 0x3F_F000) == 2
    assert not t.by_s1 and not set(s1_pieces) & set(t.entries)
    assert t.inval_gvma(True, 5, 0x461_0000, 0x461_0000) == 2
    assert len(t) == 12 and not set(g_pieces) & set(t.entries)
    assert t.inval_gvma(True, 5, 0x100_0000, 0x100_0000) == 1 and len(t) == 11
