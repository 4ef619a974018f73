"""iommu.stats: exact on every path (the whole-response shortcut included), by hand count."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Tuple

import riscv_iommu as rv
from helpers import PD8, SV39, TC_EN_ATS, TC_PDTV, TC_V, System, ta
from riscv_iommu import formats as F
from riscv_iommu.events import CacheEvent

sys.path.insert(0, str(Path(__file__).resolve().parent / "sw"))
import swhelpers as sw  # noqa: E402

MSI0 = 0x2800_0000
MSI1 = 0x2800_1000


def _scene() -> Tuple[System, Dict[str, Any]]:
    s = System(
        params=rv.IommuParams(
            ddt_cache_size=2, pdt_cache_size=2, iotlb_size=4, msi_cache_size=1, gwalk_cache_size=16
        )
    )
    sw.setup_cq(s)
    sw.setup_fq(s)
    # A (device 1): G-stage only, GSCID 1, ATS enabled
    ga = s.gstage(SV39)
    ga.map(0x1000, s.page())
    ga.map(0x2000, s.page())
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS, iohgatp=ga.satp(1))
    # B (device 2): first stage only (host), PSCID 5
    sb = s.stage1()
    sb.map(0x1000, s.page())
    s.ddt.set_dc(2, tc=TC_V, ta=ta(pscid=5), fsc=sb.satp())
    # C (device 3): PD8 PDT and first stage in guest memory behind GSCID 3
    gc = s.gstage(SV39)
    guest = s.guest(gc)
    pdt = s.pdt(guest, PD8)
    s1 = s.stage1(guest, SV39)
    guest.back(0x4000_0000)
    s1.map(0x5000, 0x4000_0000)
    pdt.set_pc(1, fsc=s1.satp(), pscid=9)
    s.ddt.set_dc(3, tc=TC_V | TC_PDTV, iohgatp=gc.satp(3), fsc=pdt.pdtp())
    # D (device 4): G-stage GSCID 4 and two interrupt files
    gd = s.gstage(SV39)
    msipt = s.msipt(4)
    msipt.set_flat(0, s.page())
    msipt.set_flat(1, s.page())
    s.ddt.set_dc(
        4,
        tc=TC_V,
        iohgatp=gd.satp(4),
        msiptp=msipt.msiptp(),
        msi_addr_mask=1,
        msi_addr_pattern=MSI0 >> 12,
    )
    return s, {}


def _run(s: System) -> None:
    t = s.t
    W = rv.Access.WRITE
    t(1, 0x1000)  # 1 DDT miss+fill(1); IOTLB miss+fill
    t(1, 0x1000)  # 2 DDT hit; IOTLB hit (the shortcut is recorded)
    for _ in range(3):
        t(1, 0x1000)  # 3 shortcut: DDT hit, IOTLB hit, each time
    t(1, 0x2000)  # 4 DDT hit; IOTLB miss+fill
    t(2, 0x1000)  # 5 DDT miss+fill(2); IOTLB miss+fill
    # 6 DDT miss, evict 1 (LRU), fill 3; PDT miss+fill; the PC's GPA page and the three
    # first-stage table pages: 4 G-stage walk cache misses and fills; IOTLB miss+fill
    t(3, 0x5000, process_id=1)
    t(3, 0x5000, process_id=1)  # 7 DDT hit, PDT hit, IOTLB hit (shortcut recorded)
    t(3, 0x5000, process_id=1)  # 8 shortcut: DDT, PDT and IOTLB hits
    t(1, 0x1000)  # 9 DDT miss, evict 2, fill 1; IOTLB hit (4 entries: nothing evicted)
    t(4, MSI0, W, length=4)  # 10 DDT miss, evict 3, fill 4; IOTLB miss; MSI miss+fill
    t(4, MSI1, W, length=4)  # 11 DDT hit; IOTLB miss; MSI miss, evict, fill
    t(4, MSI1, W, length=4)  # 12 DDT hit; IOTLB miss; MSI hit
    # 13 IOTINVAL.GVMA GSCID 1: A's two IOTLB entries (MSI and walk caches: none)
    sw.submit(s, sw.iotinval_gvma(gscid=1))
    # 14 IODIR.INVAL_DDT: DCs 1 and 4, and C's PC
    sw.submit(s, sw.iodir_inval_ddt())
    # 15 IOTINVAL.GVMA all VMs: C's IOTLB entry (B's is the host's), D's MSI PTE, the
    # four G-stage walk entries
    sw.submit(s, sw.iotinval_gvma())
    t(9, 0)  # 16 DDT miss (no fill): DDT entry not valid (258)
    t(2, 0x9000)  # 17 DDT miss+fill(2); IOTLB miss; read page fault (13)
    t(2, 0x1000, W)  # 18 DDT hit; IOTLB hit (R/W/X, A/D set)
    s.iommu.translate(rv.Request(2, 0x1000), debug=True)  # 19 DDT hit; IOTLB hit
    # 20 DDT miss, fill 1 (no eviction: 2 is alone); no IOTLB lookup, an IOTLB fill
    t(1, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION)
    t(1, 0x1000, kind=rv.RequestKind.TRANSLATED)  # 21 DDT hit (T2GPA = 0: no walk)
    s.iommu.page_request(rv.PageRequest(1, 0x3000, last=True))  # 22 DDT hit; EN_PRI 0: 260
    s.iommu.invalidation_completion(1, 1)  # 23 DDT hit, nothing outstanding


EXPECTED = {
    "caches": {
        "DDT": {"hits": 14, "misses": 8, "fills": 7, "evictions": 3, "invalidations": 2},
        "PDT": {"hits": 2, "misses": 1, "fills": 1, "evictions": 0, "invalidations": 1},
        "IOTLB": {"hits": 9, "misses": 8, "fills": 5, "evictions": 0, "invalidations": 3},
        "MSI": {"hits": 1, "misses": 2, "fills": 2, "evictions": 1, "invalidations": 1},
        "GWALK": {"hits": 0, "misses": 4, "fills": 4, "evictions": 0, "invalidations": 4},
    },
    "faults": {"13": 1, "258": 1, "260": 1},
    "requests": {
        "UNTRANSLATED": 17,
        "TRANSLATED": 1,
        "ATS_TRANSLATION": 1,
        "DEBUG": 1,
        "PAGE_REQUEST": 1,
        "INVALIDATION_COMPLETION": 1,
    },
}


def test_statistics_match_a_hand_count() -> None:
    """Every cache's hits, misses, fills, evictions and invalidations, faults per cause
    and requests per kind after a sequence through every path (the shortcut included)."""
    s, _ = _scene()
    _run(s)
    assert s.iommu.stats.as_dict() == EXPECTED
    assert s.iommu.iotlb.hits == 9 and s.iommu.iotlb.misses == 8
    assert s.iommu.stats.caches["IOTLB"] is s.iommu.iotlb.stats
    assert s.iommu.stats.caches["DDT"].hit_rate == 14 / 22
    assert s.iommu.stats.caches["DDT"].lookups == 22


def test_statistics_are_the_same_whatever_is_attached() -> None:
    """With an observer (no shortcut: every request walks the caches step by step) the
    statistics are the same, and the cache events count exactly the same."""
    s, _ = _scene()
    events: Counter[Tuple[str, str]] = Counter()
    inval: Counter[str] = Counter()

    def count(e: Any) -> None:
        if isinstance(e, CacheEvent):
            if e.op == "inval":
                inval[e.cache] += e.count
            else:
                events[e.cache, e.op] += 1

    s.iommu.attach(count)
    _run(s)
    assert s.iommu.stats.as_dict() == EXPECTED
    names = {"hit": "hits", "miss": "misses", "fill": "fills", "evict": "evictions"}
    for cache, st in EXPECTED["caches"].items():
        assert {v: events[cache, k] for k, v in names.items()} == {
            v: st[v] for v in names.values()
        }, cache
        assert inval[cache] == st["invalidations"]


def test_ten_identical_translations_count_nine_iotlb_hits() -> None:
    """The issue's case: 10 identical translations are 1 miss and 9 hits, with or without
    an observer (the shortcut used to skip the counters)."""
    for observed in (False, True):
        s = System()
        g = s.gstage(SV39)
        g.map(0x1000, s.page())
        s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(1))
        if observed:
            s.iommu.attach(rv.EventLog())
        for _ in range(10):
            s.t(1, 0x1000)
        st = s.iommu.stats.caches
        assert (st["IOTLB"].hits, st["IOTLB"].misses) == (9, 1), observed
        assert (st["DDT"].hits, st["DDT"].misses) == (9, 1), observed


def test_shortcut_keeps_the_lru_order_of_the_caches() -> None:
    """Requests answered by the shortcut refresh the DDT, PDT and IOTLB entries they stand
    for: the LRU order (and so the next eviction) is the one of a walk through the caches."""
    orders = []
    for observed in (False, True):
        s, _ = _scene()
        if observed:
            s.iommu.attach(lambda e: None)
        io = s.iommu
        for d in (1, 2, 1, 2):
            s.t(d, 0x1000)
        assert (1, -1, False, 0, 1) in io.ioatc.front  # unobserved, the next request takes it
        s.t(1, 0x1000)
        orders.append((list(io.ddt_cache), [k[0] for k in io.iotlb.entries]))
    assert orders[0] == orders[1] == ([2, 1], [-1, 1])


def test_fifo_shortcut_does_not_reorder() -> None:
    """cache_policy="fifo": shortcut hits leave the insertion order alone."""
    s = System(params=rv.IommuParams(cache_policy="fifo"))
    for d in (1, 2):
        s.ddt.set_dc(d, tc=TC_V)
    for d in (1, 2, 1, 1, 1):
        s.t(d, 0)
    assert list(s.iommu.ddt_cache) == [1, 2]
    assert s.iommu.stats.caches["DDT"].hits == 3


def test_capacity_zero_caches_count_nothing() -> None:
    """A cache of capacity 0 is no cache: nothing is looked up, filled or counted."""
    s = System(
        params=rv.IommuParams(
            ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=0
        )
    )
    g = s.gstage(SV39)
    g.map(0x1000, s.page())
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(1))
    for _ in range(3):
        s.t(1, 0x1000)
    assert all(not any(c.values()) for c in s.iommu.stats.as_dict()["caches"].values())
    assert s.iommu.stats.requests["UNTRANSLATED"] == 3


def test_datapath_error_injection_is_not_skipped_by_the_shortcut() -> None:
    """A request the shortcut would answer still meets an injected data path error."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    s.t(1, 0)
    s.t(1, 0)
    s.iommu.inject_datapath_error()
    rsp = s.t(1, 0)
    assert rsp.fault is not None and rsp.fault.cause == rv.Cause.INTERNAL_DATAPATH_ERROR
    assert s.iommu.stats.faults == {272: 1}
    assert s.t(1, 0).fault is None


def test_page_request_and_ats_counts_by_kind() -> None:
    """Requests per kind: an ATS translation and a translated request count as such."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS | F.DC_TC.EN_PRI.mask)
    s.t(1, 0, kind=rv.RequestKind.ATS_TRANSLATION)
    s.t(1, 0, kind=rv.RequestKind.TRANSLATED)
    assert s.iommu.stats.requests["ATS_TRANSLATION"] == 1
    assert s.iommu.stats.requests["TRANSLATED"] == 1
