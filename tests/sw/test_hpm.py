"""The hardware performance monitor (HPM).

Spec: iommu_registers.adoc "Performance-monitoring counter overflow status (iocountovf)",
"... counter inhibits (iocountinh)", "... cycles counter (iohpmcycles)", "... event counters
(iohpmctr1-31)", "... event selectors (iohpmevt1-31)" with its "filtering options" table, the
DMASK example table and the "Standard Events list"; "Interrupt pending status register" (pmip);
iommu_debug.adoc (debug requests count as Untranslated Requests).

Counters are programmed through mmio_write; events come from real requests.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest

import riscv_iommu as rv
from helpers import (
    SV39,
    TC_EN_ATS,
    TC_PDTV,
    TC_V,
    System,
    ta,
)
from riscv_iommu import formats as F
from swhelpers import REG, ipsr

EVT = F.IOHPMEVT
OF = EVT.OF.mask
CYC_OF = F.IOHPMCYCLES.OF.mask
PMIP = F.IPSR.pmip.mask
M64 = (1 << 64) - 1

UNTRANSLATED, TRANSLATED, ATS_TRANSLATION, TLB_MISS = 1, 2, 3, 4
DDT_WALK, PDT_WALK, S_WALK, G_WALK = 5, 6, 7, 8


def evt(
    event: int,
    idt: int = 0,
    dv: int = 0,
    pv: int = 0,
    did_gscid: int = 0,
    pid_pscid: int = 0,
    dmask: int = 0,
) -> int:
    return EVT.encode(
        eventID=event,
        IDT=idt,
        DV_GSCV=dv,
        PV_PSCV=pv,
        DID_GSCID=did_gscid,
        PID_PSCID=pid_pscid,
        DMASK=dmask,
    )


def program(s: System, x: int, value: int) -> None:
    s.iommu.mmio_write(REG.iohpmevt(x), value)


def ctr(s: System, x: int) -> int:
    return int(s.iommu.mmio_read(REG.iohpmctr(x)))


def cycles(s: System) -> int:
    return int(s.iommu.mmio_read(REG.IOHPMCYCLES))


def ovf(s: System) -> int:
    return int(s.iommu.mmio_read(REG.IOCOUNTOVF, 4))


def req(s: System, did: int, addr: int, **kw: Any) -> rv.Response:
    return s.iommu.translate(rv.Request(device_id=did, addr=addr, **kw))


# ---------------------------------------------------------------------------
# iohpmcycles
# ---------------------------------------------------------------------------
def test_iohpmcycles_counts_ticks() -> None:
    """iohpmcycles: a free-running cycle counter (advanced by Iommu.tick)."""
    s = System()
    assert cycles(s) == 0
    s.iommu.tick(5)
    s.iommu.tick()
    assert cycles(s) == 6


def test_iohpmcycles_inhibited_by_iocountinh_cy() -> None:
    """iocountinh.CY (bit 0): when set iohpmcycles does not count; event counters still do."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 1, evt(UNTRANSLATED))
    s.iommu.mmio_write(REG.IOCOUNTINH, 1, 4)
    assert s.iommu.mmio_read(REG.IOCOUNTINH, 4) == 1
    s.iommu.tick(100)
    req(s, 1, 0x1000)
    assert cycles(s) == 0
    assert ctr(s, 1) == 1
    s.iommu.mmio_write(REG.IOCOUNTINH, 0, 4)
    s.iommu.tick(3)
    assert cycles(s) == 3


def test_iohpmcycles_write_then_count() -> None:
    """iohpmcycles.counter is WARL (RW): software initializes it, it counts on from there."""
    s = System()
    s.iommu.mmio_write(REG.IOHPMCYCLES, 1000)
    s.iommu.tick(24)
    assert cycles(s) == 1024


def test_iohpmcycles_overflow_sets_of_ovf_and_pmip_narrow_counter() -> None:
    """iohpmcycles: unsigned overflow wraps and sets the sticky OF; OF 0->1 sets ipsr.pmip;
    iocountovf.CY shadows OF (counter implemented with 32 bits)."""
    s = System(params=rv.IommuParams(hpm_counter_width=32))
    s.iommu.mmio_write(REG.IOHPMCYCLES, 0xFFFF_FFFE)
    assert ipsr(s) & PMIP == 0
    s.iommu.tick(3)
    assert cycles(s) == CYC_OF | 1
    assert ovf(s) & 1
    assert ipsr(s) & PMIP


def test_iohpmcycles_overflow_full_width() -> None:
    """iohpmcycles: with a 63-bit counter the overflow happens at 2**63."""
    s = System()
    s.iommu.mmio_write(REG.IOHPMCYCLES, (1 << 63) - 1)
    s.iommu.tick(1)
    assert cycles(s) == CYC_OF
    assert ipsr(s) & PMIP


def test_iohpmcycles_overflow_with_of_already_set_no_new_pmip() -> None:
    """iohpmcycles: if OF is already 1 an overflow generates no interrupt request."""
    s = System(params=rv.IommuParams(hpm_counter_width=32))
    s.iommu.mmio_write(REG.IOHPMCYCLES, 0xFFFF_FFFF)
    s.iommu.tick(1)
    assert ipsr(s) & PMIP
    s.iommu.mmio_write(REG.IPSR, PMIP, 4)
    assert ipsr(s) & PMIP == 0
    s.iommu.mmio_write(REG.IOHPMCYCLES, CYC_OF | 0xFFFF_FFFF)  # keep OF set
    s.iommu.tick(2)
    assert cycles(s) == CYC_OF | 1
    assert ipsr(s) & PMIP == 0
    # clearing OF re-arms the interrupt
    s.iommu.mmio_write(REG.IOHPMCYCLES, 0xFFFF_FFFF)
    s.iommu.tick(1)
    assert ipsr(s) & PMIP


# ---------------------------------------------------------------------------
# each standard event counted by real requests
# ---------------------------------------------------------------------------
def test_event1_untranslated_requests() -> None:
    """Event 1 counts Untranslated requests (faulting ones too), not Translated/ATS ones."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS)
    program(s, 1, evt(UNTRANSLATED))
    req(s, 1, 0x1000)
    req(s, 1, 0x2000, access=rv.Access.WRITE)
    req(s, 0x99, 0x1000)  # DC not valid: still an untranslated request
    req(s, 1, 0x1000, kind=rv.RequestKind.TRANSLATED)
    req(s, 1, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION)
    assert ctr(s, 1) == 3


def test_event2_translated_requests() -> None:
    """Event 2 counts Translated requests only."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS)
    program(s, 2, evt(TRANSLATED))
    req(s, 1, 0x1000, kind=rv.RequestKind.TRANSLATED)
    req(s, 1, 0x1000, kind=rv.RequestKind.TRANSLATED, access=rv.Access.WRITE)
    req(s, 1, 0x1000)
    req(s, 1, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION)
    assert ctr(s, 2) == 2


def test_event3_ats_translation_requests() -> None:
    """Event 3 counts PCIe ATS Translation requests only."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS)
    program(s, 3, evt(ATS_TRANSLATION))
    for k in range(3):
        req(s, 1, 0x1000 * k, kind=rv.RequestKind.ATS_TRANSLATION)
    req(s, 1, 0x1000, kind=rv.RequestKind.TRANSLATED)
    req(s, 1, 0x1000)
    assert ctr(s, 3) == 3


def _first_stage_device(s: System, did: int, pscid: int = 3) -> None:
    s1 = s.stage1()
    for va in (0x1000, 0x2000, 0x3000):
        s1.map(va, s.page())
    s.ddt.set_dc(did, tc=TC_V | TC_EN_ATS, fsc=s1.satp(), ta=ta(pscid=pscid))


def _g_stage_device(s: System, did: int, gscid: int = 5) -> None:
    g = s.gstage(SV39)
    for gpa in (0x1000, 0x2000, 0x3000):
        g.map(gpa, s.page())
    s.ddt.set_dc(did, tc=TC_V | TC_EN_ATS, iohgatp=g.satp(gscid))


def test_event4_tlb_miss() -> None:
    """Event 4 counts IOTLB misses: a cached translation (another access to the same page)
    does not miss; a new page does."""
    s = System()
    _first_stage_device(s, 1)
    program(s, 4, evt(TLB_MISS))
    req(s, 1, 0x1000)
    assert ctr(s, 4) == 1
    req(s, 1, 0x1008, access=rv.Access.WRITE)  # same page, cached with A and D set
    req(s, 1, 0x1010)
    assert ctr(s, 4) == 1
    req(s, 1, 0x2000)
    assert ctr(s, 4) == 2


def test_event5_ddt_walks_with_ddt_cache() -> None:
    """Event 5 counts device-directory walks: the first request of each device walks, later
    requests use the cached DC."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    s.ddt.set_dc(2, tc=TC_V)
    program(s, 5, evt(DDT_WALK))
    req(s, 1, 0x1000)
    req(s, 1, 0x2000)
    req(s, 1, 0x3000, access=rv.Access.WRITE)
    assert ctr(s, 5) == 1
    req(s, 2, 0x1000)
    assert ctr(s, 5) == 2


def test_event5_ddt_walks_without_ddt_cache() -> None:
    """Event 5: an IOMMU that caches no DC walks the DDT for every request."""
    s = System(params=rv.IommuParams(ddt_cache_size=0, pdt_cache_size=0))
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 5, evt(DDT_WALK))
    for k in range(4):
        req(s, 1, 0x1000 * k)
    assert ctr(s, 5) == 4


def test_event6_pdt_walks() -> None:
    """Event 6 counts process-directory walks: one per (device, process_id) not cached;
    requests without process_id (DPE = 0) do not walk the PDT."""
    s = System()
    pdt = s.pdt()
    pdt.set_pc(1)
    pdt.set_pc(2)
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    program(s, 6, evt(PDT_WALK))
    req(s, 1, 0x1000, process_id=1)
    req(s, 1, 0x2000, process_id=1)
    req(s, 1, 0x2000)
    assert ctr(s, 6) == 1
    req(s, 1, 0x1000, process_id=2)
    assert ctr(s, 6) == 2


def test_event7_first_stage_walks() -> None:
    """Event 7 counts first-stage page-table walks (none for a translation already cached)."""
    s = System()
    _first_stage_device(s, 1)
    _g_stage_device(s, 2)
    program(s, 7, evt(S_WALK))
    req(s, 1, 0x1000)
    req(s, 1, 0x1000)
    req(s, 1, 0x2000)
    req(s, 2, 0x3000)  # G-stage only: no first-stage walk
    assert ctr(s, 7) == 2


def test_event8_second_stage_walks() -> None:
    """Event 8 counts second-stage page-table walks (none when iohgatp is Bare)."""
    s = System()
    _first_stage_device(s, 1)
    _g_stage_device(s, 2)
    program(s, 8, evt(G_WALK))
    req(s, 2, 0x1000)
    req(s, 2, 0x1000)
    req(s, 2, 0x2000)
    req(s, 2, 0x3000)
    req(s, 1, 0x1000)  # first stage only
    assert ctr(s, 8) == 3


def test_events7_8_counted_for_ats_translation_walks() -> None:
    """Events 7/8: an ATS Translation request that walks the first / second stage counts."""
    s = System()
    _first_stage_device(s, 1)
    _g_stage_device(s, 2)
    program(s, 7, evt(S_WALK))
    program(s, 8, evt(G_WALK))
    assert req(s, 1, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION).r
    assert req(s, 2, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION).r
    assert (ctr(s, 7), ctr(s, 8)) == (1, 1)


def test_debug_interface_request_counts_as_untranslated() -> None:
    """Debug support: for HPM counting, debug translation requests are Untranslated Requests."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 1, evt(UNTRANSLATED))
    s.iommu.mmio_write(REG.TR_REQ_IOVA, 0x5000)
    s.iommu.mmio_write(REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, NW=1, DID=1))
    assert s.iommu.mmio_read(REG.TR_RESPONSE) & 1 == 0
    assert ctr(s, 1) == 1


def test_all_events_at_once_two_stage_process_request() -> None:
    """All eight counters programmed with events 1..8; one two-stage request with a process_id
    counts 1 (untranslated), 4, 5, 6, 7 and 8, never 2 or 3."""
    s = System()
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest)
    guest.back(0x4000_0000)
    s1.map(0x1000, 0x4000_0000)
    pdt = s.pdt(guest)
    pdt.set_pc(7, fsc=s1.satp(), pscid=9)
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV, iohgatp=g.satp(4), fsc=pdt.pdtp())
    for x in range(1, 9):
        program(s, x, evt(x))
    assert req(s, 1, 0x1000, process_id=7).status == rv.Status.SUCCESS
    counts = [ctr(s, x) for x in range(1, 9)]
    assert counts[0:3] == [1, 0, 0]
    assert counts[3:7] == [1, 1, 1, 1]  # TLB miss, DDT walk, PDT walk, first-stage walk
    assert counts[7] >= 1  # second-stage walk(s)


# ---------------------------------------------------------------------------
# filtering options
# ---------------------------------------------------------------------------
#: IDT = 0 workload for event 1: (device_id, process_id)
IDT0_WORKLOAD: List[Tuple[int, Optional[int]]] = [
    (0x100, None),
    (0x100, 0x42),
    (0x100, 0x43),
    (0x200, None),
    (0x200, 0x42),
]

IDT0_ROWS = [
    # (DV, PV, DID, PID, expected, comment)
    (0, 0, 0, 0, 5, "no ID filtering"),
    (0, 1, 0, 0x42, 2, "valid process_id matching"),
    (0, 1, 0, 0x0, 0, "process_id 0 matches none (no pid is not pid 0)"),
    (1, 0, 0x100, 0, 3, "device_id matching"),
    (1, 0, 0x300, 0, 0, "device_id matching none"),
    (1, 1, 0x100, 0x42, 1, "device_id and valid process_id matching"),
    (1, 1, 0x200, 0x43, 0, "device_id matches, process_id does not"),
]


@pytest.mark.parametrize("dv,pv,did,pid,expected,comment", IDT0_ROWS, ids=[r[5] for r in IDT0_ROWS])
def test_filter_idt0(dv: int, pv: int, did: int, pid: int, expected: int, comment: str) -> None:
    """Filtering options table, IDT = 0 rows (device_id / process_id), event 1."""
    s = System()
    pdt = s.pdt()
    for d in (0x100, 0x200):
        s.ddt.set_dc(d, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    pdt.set_pc(0x42)
    pdt.set_pc(0x43)
    program(s, 1, evt(UNTRANSLATED, 0, dv, pv, did, pid))
    for d, p in IDT0_WORKLOAD:
        assert req(s, d, 0x1000, process_id=p).status == rv.Status.SUCCESS
    assert ctr(s, 1) == expected


def _idt1_system() -> System:
    """Five devices, each one TLB miss (event 4) with these (GSCID, PSCID):
    1: (5, 0x77)  2: (6, 0x77)  3: (-, 0x77)  4: (-, 0x78)  5: (5, -)."""
    s = System()
    g5 = s.gstage(SV39)
    g6 = s.gstage(SV39)
    guests = {5: s.guest(g5), 6: s.guest(g6)}
    for gid, dev, pscid in ((5, 1, 0x77), (6, 2, 0x77)):
        guest = guests[gid]
        s1 = s.stage1(guest)
        gpa = guest.alloc()
        s1.map(0x1000 * dev, gpa)
        s.ddt.set_dc(
            dev,
            tc=TC_V,
            iohgatp=(g5 if gid == 5 else g6).satp(gid),
            fsc=s1.satp(),
            ta=ta(pscid=pscid),
        )
    for dev, pscid in ((3, 0x77), (4, 0x78)):
        s1 = s.stage1()
        s1.map(0x1000 * dev, s.page())
        s.ddt.set_dc(dev, tc=TC_V, fsc=s1.satp(), ta=ta(pscid=pscid))
    guests[5].back(0x5000)
    s.ddt.set_dc(5, tc=TC_V, iohgatp=g5.satp(5))
    return s


IDT1_ROWS = [
    # (DV_GSCV, PV_PSCV, GSCID, PSCID, expected, comment)
    (0, 0, 0, 0, 5, "no ID filtering"),
    (0, 1, 0, 0x77, 3, "valid PSCID matching"),
    (0, 1, 0, 0, 0, "PSCID 0: no transaction has a valid PSCID 0"),
    (1, 0, 5, 0, 2, "valid GSCID matching"),
    (1, 0, 0, 0, 0, "GSCID 0: no transaction has a valid GSCID 0"),
    (1, 1, 5, 0x77, 1, "valid GSCID and valid PSCID matching"),
    (1, 1, 6, 0x78, 0, "GSCID matches one, PSCID another"),
]


@pytest.mark.parametrize(
    "dv,pv,gscid,pscid,expected,comment", IDT1_ROWS, ids=[r[5] for r in IDT1_ROWS]
)
def test_filter_idt1(dv: int, pv: int, gscid: int, pscid: int, expected: int, comment: str) -> None:
    """Filtering options table, IDT = 1 rows (GSCID / PSCID), event 4 (TLB miss)."""
    s = _idt1_system()
    program(s, 1, evt(TLB_MISS, 1, dv, pv, gscid, pscid))
    for dev in range(1, 6):
        assert req(s, dev, 0x1000 * dev).status == rv.Status.SUCCESS
    assert ctr(s, 1) == expected


@pytest.mark.parametrize("event", [S_WALK, G_WALK])
def test_filter_idt1_supported_for_walk_events(event: int) -> None:
    """Standard events list: events 7 and 8 support IDT = 1 (GSCID filter)."""
    s = _idt1_system()
    program(s, 1, evt(event, 1, 1, 0, 5))
    for dev in range(1, 6):
        req(s, dev, 0x1000 * dev)
    # GSCID 5: devices 1 (both stages) and 5 (G-stage only)
    assert ctr(s, 1) == (1 if event == S_WALK else 2)


def _dmask_workload(s: System, dids: List[int]) -> None:
    for d in dids:
        req(s, d, 0x1000)


#: DMASK example table: (DID_GSCID, matching device_ids, non-matching device_ids)
DMASK_ROWS: List[Tuple[int, List[int], List[int], str]] = [
    # seg:bus:dev - any func: yyyyyyyy yyyyyyyy yyyyy011
    (
        (0x12 << 16) | (0x34 << 8) | (0x05 << 3) | 0b011,
        [(0x12 << 16) | (0x34 << 8) | (0x05 << 3) | f for f in range(8)],
        [(0x12 << 16) | (0x34 << 8) | (0x06 << 3), (0x12 << 16) | (0x35 << 8) | (0x05 << 3)],
        "any func",
    ),
    # seg:bus - any dev:func: yyyyyyyy yyyyyyyy 01111111
    (
        (0x12 << 16) | (0x34 << 8) | 0x7F,
        [(0x12 << 16) | (0x34 << 8) | df for df in (0x00, 0x01, 0x7F, 0x80, 0xFF)],
        [(0x12 << 16) | (0x35 << 8), (0x13 << 16) | (0x34 << 8)],
        "any dev:func",
    ),
    # seg - any bus:dev:func: yyyyyyyy 01111111 11111111
    (
        (0x12 << 16) | 0x7FFF,
        [(0x12 << 16) | bdf for bdf in (0x0000, 0x1234, 0xFFFF)],
        [(0x13 << 16), (0x11 << 16) | 0xFFFF],
        "any bus:dev:func",
    ),
]


@pytest.mark.parametrize(
    "did_gscid,match,nomatch,comment", DMASK_ROWS, ids=[r[3] for r in DMASK_ROWS]
)
def test_dmask_partial_device_id_match(
    did_gscid: int, match: List[int], nomatch: List[int], comment: str
) -> None:
    """DMASK = 1: the low bits of DID_GSCID up to and including the first 0 bit are masked
    (the spec's DMASK example table, IDT = 0)."""
    s = System()
    program(s, 1, evt(UNTRANSLATED, 0, 1, 0, did_gscid, dmask=1))
    program(s, 2, evt(UNTRANSLATED, 0, 1, 0, did_gscid, dmask=0))
    _dmask_workload(s, match + nomatch)
    assert ctr(s, 1) == len(match)
    # DMASK = 0: exact match only (DID_GSCID itself is among the matches)
    assert ctr(s, 2) == match.count(did_gscid)


def test_dmask_partial_gscid_match() -> None:
    """DMASK applies to DID_GSCID when IDT = 1 too: GSCID 0b1001 with DMASK masks bits 1:0
    and matches GSCIDs 8..11."""
    s = System()
    gscids = (7, 8, 9, 11, 12)
    for dev, gscid in enumerate(gscids, start=1):
        _g_stage_device(s, dev, gscid)
    program(s, 1, evt(G_WALK, 1, 1, 0, 0b1001, dmask=1))
    program(s, 2, evt(G_WALK, 1, 1, 0, 0b1001, dmask=0))
    for dev in range(1, len(gscids) + 1):
        req(s, dev, 0x1000)
    assert ctr(s, 1) == 3  # 8, 9, 11
    assert ctr(s, 2) == 1  # 9 only


def test_dmask_all_ones_matches_everything() -> None:
    """DMASK = 1 with DID_GSCID all ones: every bit is masked (the first 0 is beyond bit 23)."""
    s = System()
    program(s, 1, evt(UNTRANSLATED, 0, 1, 0, 0xFFFFFF, dmask=1))
    _dmask_workload(s, [0, 0x123456, 0xFFFFFF])
    assert ctr(s, 1) == 3


# ---------------------------------------------------------------------------
# unsupported IDT, inhibit, overflow, counters present
# ---------------------------------------------------------------------------
def _mixed_workload(s: System) -> None:
    """Untranslated (with PDT and first-stage walks), Translated and ATS requests."""
    pdt = s.pdt()
    s1 = s.stage1()
    s1.map(0x1000, s.page())
    pdt.set_pc(1, fsc=s1.satp())
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV | TC_EN_ATS, fsc=pdt.pdtp())
    req(s, 1, 0x1000, process_id=1)
    req(s, 1, 0x1000, kind=rv.RequestKind.TRANSLATED)
    req(s, 1, 0x1000, process_id=1, kind=rv.RequestKind.ATS_TRANSLATION)


@pytest.mark.parametrize("event", [UNTRANSLATED, TRANSLATED, ATS_TRANSLATION, DDT_WALK, PDT_WALK])
def test_unsupported_idt_setting_does_not_count(event: int) -> None:
    """Standard events list: events 1, 2, 3, 5, 6 support only IDT = 0; when the programmed IDT
    setting is not supported for an event the counter does not increment."""
    s = System()
    program(s, 1, evt(event, idt=1))
    program(s, 2, evt(event, idt=0))
    _mixed_workload(s)
    assert ctr(s, 2) >= 1
    assert ctr(s, 1) == 0


def test_iocountinh_per_counter() -> None:
    """iocountinh bit X inhibits iohpmctrX only."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    for x in (1, 2, 3):
        program(s, x, evt(UNTRANSLATED))
    s.iommu.mmio_write(REG.IOCOUNTINH, 1 << 2, 4)
    req(s, 1, 0x1000)
    req(s, 1, 0x2000)
    assert [ctr(s, x) for x in (1, 2, 3)] == [2, 0, 2]
    s.iommu.mmio_write(REG.IOCOUNTINH, 0, 4)
    req(s, 1, 0x3000)
    assert [ctr(s, x) for x in (1, 2, 3)] == [3, 1, 3]


def test_counter_retains_value_when_event_changes() -> None:
    """iohpmevt.eventID: when eventID is changed, including to 0, the counter retains its value."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 1, evt(UNTRANSLATED))
    req(s, 1, 0x1000)
    program(s, 1, evt(0))
    req(s, 1, 0x2000)
    assert ctr(s, 1) == 1
    program(s, 1, evt(TRANSLATED))
    assert ctr(s, 1) == 1


@pytest.mark.parametrize("width", [32, 48, 64])
def test_event_counter_overflow_sets_of_ovf_pmip(width: int) -> None:
    """iohpmevtX.OF: unsigned overflow of iohpmctrX wraps and sets OF; OF 0->1 sets ipsr.pmip;
    iocountovf bit X shadows it."""
    s = System(params=rv.IommuParams(hpm_counter_width=width))
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 3, evt(UNTRANSLATED))
    s.iommu.mmio_write(REG.iohpmctr(3), (1 << width) - 1)
    assert ctr(s, 3) == (1 << width) - 1
    req(s, 1, 0x1000)
    assert ctr(s, 3) == 0
    assert s.iommu.mmio_read(REG.iohpmevt(3)) == evt(UNTRANSLATED) | OF
    assert ovf(s) == 1 << 3
    assert ipsr(s) & PMIP
    req(s, 1, 0x2000)
    assert ctr(s, 3) == 1  # keeps counting after the wrap


def test_event_counter_overflow_with_of_set_no_new_pmip() -> None:
    """iohpmevtX.OF already 1: an overflow generates no interrupt; clearing OF re-arms it."""
    s = System(params=rv.IommuParams(hpm_counter_width=32))
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 1, evt(UNTRANSLATED) | OF)
    s.iommu.mmio_write(REG.iohpmctr(1), 0xFFFF_FFFF)
    req(s, 1, 0x1000)
    assert ctr(s, 1) == 0
    assert ipsr(s) & PMIP == 0
    assert ovf(s) == 1 << 1
    program(s, 1, evt(UNTRANSLATED))  # OF cleared
    assert ovf(s) == 0
    s.iommu.mmio_write(REG.iohpmctr(1), 0xFFFF_FFFF)
    req(s, 1, 0x2000)
    assert ipsr(s) & PMIP
    assert ovf(s) == 1 << 1


def test_pmip_rw1c_not_reasserted_by_sticky_of() -> None:
    """ipsr.pmip is set on the OF 0->1 transition only; after RW1C it stays 0 while OF is 1."""
    s = System(params=rv.IommuParams(hpm_counter_width=32))
    s.ddt.set_dc(1, tc=TC_V)
    program(s, 1, evt(UNTRANSLATED))
    s.iommu.mmio_write(REG.iohpmctr(1), 0xFFFF_FFFF)
    req(s, 1, 0x1000)
    s.iommu.mmio_write(REG.IPSR, PMIP, 4)
    assert ipsr(s) & PMIP == 0
    assert ovf(s) == 1 << 1


def test_iocountovf_several_counters() -> None:
    """iocountovf: bit 0 = iohpmcycles.OF, bit X = iohpmevtX.OF."""
    s = System(params=rv.IommuParams(hpm_counter_width=32))
    s.ddt.set_dc(1, tc=TC_V)
    for x in (2, 31):
        program(s, x, evt(UNTRANSLATED))
        s.iommu.mmio_write(REG.iohpmctr(x), 0xFFFF_FFFF)
    program(s, 5, evt(UNTRANSLATED))
    s.iommu.mmio_write(REG.IOHPMCYCLES, 0xFFFF_FFFF)
    req(s, 1, 0x1000)
    s.iommu.tick(1)
    assert ovf(s) == (1 << 0) | (1 << 2) | (1 << 31)
    assert s.iommu.mmio_read(REG.iohpmevt(5)) & OF == 0


def test_hpm_counters_4_counters_5_to_31_read_zero() -> None:
    """IommuParams(hpm_counters=4): iohpmctr/iohpmevt 5..31 are absent (read 0, writes ignored),
    iocountinh bits 5..31 are WARL 0."""
    s = System(params=rv.IommuParams(hpm_counters=4))
    io = s.iommu
    s.ddt.set_dc(1, tc=TC_V)
    for x in range(1, 32):
        io.mmio_write(REG.iohpmevt(x), evt(UNTRANSLATED))
        io.mmio_write(REG.iohpmctr(x), 0x1234)
    req(s, 1, 0x1000)
    for x in range(1, 5):
        assert io.mmio_read(REG.iohpmevt(x)) == evt(UNTRANSLATED)
        assert io.mmio_read(REG.iohpmctr(x)) == 0x1235
    for x in range(5, 32):
        assert io.mmio_read(REG.iohpmevt(x)) == 0
        assert io.mmio_read(REG.iohpmctr(x)) == 0
    io.mmio_write(REG.IOCOUNTINH, 0xFFFF_FFFF, 4)
    assert io.mmio_read(REG.IOCOUNTINH, 4) == 0x1F


def test_hpm_absent_registers_read_zero() -> None:
    """capabilities.HPM = 0: the HPM registers are absent (read 0) and nothing counts."""
    s = System(hpm=False)
    io = s.iommu
    s.ddt.set_dc(1, tc=TC_V)
    io.mmio_write(REG.iohpmevt(1), evt(UNTRANSLATED))
    io.mmio_write(REG.IOHPMCYCLES, 5)
    io.tick(10)
    req(s, 1, 0x1000)
    values: Dict[str, int] = {
        "evt1": io.mmio_read(REG.iohpmevt(1)),
        "ctr1": io.mmio_read(REG.iohpmctr(1)),
        "cycles": io.mmio_read(REG.IOHPMCYCLES),
        "inh": io.mmio_read(REG.IOCOUNTINH, 4),
        "ovf": io.mmio_read(REG.IOCOUNTOVF, 4),
    }
    assert values == {"evt1": 0, "ctr1": 0, "cycles": 0, "inh": 0, "ovf": 0}
