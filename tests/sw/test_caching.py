"""IOATC caching and its invalidation commands.

Spec: iommu_data_structures.adoc "Caching in-memory data structures" (IDs used to tag
IOATC entries), iommu_in_memory_queues.adoc "IOMMU Page-Table cache invalidation
commands" (IOTINVAL.VMA / IOTINVAL.GVMA operation tables) and "IOMMU directory cache
invalidation commands" (IODIR.INVAL_DDT / INVAL_PDT), iommu_extensions.adoc NLINV / ARINV.

Pattern of each test: translate (fill the caches), change the structure in memory,
translate again (the old result: the spec lets the IOMMU use the old or the new entry
until the invalidation, and the model's caches keep the old one), submit the matching
command through the command queue, translate (the new result).  Which entries survive
an invalidation is the model's precise, tag-indexed choice (the spec allows dropping
more).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Set, Tuple

import pytest

import riscv_iommu as rv
import swhelpers as sw
from helpers import PD20, SV39, TC_PDTV, TC_V, URWX, A, D, System, ta
from riscv_iommu import formats as F
from riscv_iommu.host.tables import G, GuestSpace, PageTable, ProcessDirectory, pte

REG = rv.REG
CMD_ILL = F.CQCSR.cmd_ill.mask
CQMF = F.CQCSR.cqmf.mask
LEAF = URWX | A | D

X = 0x1234_5000
Y = 0x2345_6000
Z = 0x3456_7000
P = 0x7000_0000  # a GPA used by a G-stage-only device


def _sys(params: Optional[rv.IommuParams] = None, **caps: Any) -> System:
    s = System(params=params, **caps)
    sw.setup_cq(s)
    return s


def _submit(s: System, *cmds: Tuple[int, int]) -> None:
    """Submit through the CQ and check every command completed."""
    sw.submit(s, *cmds)
    io = s.iommu
    assert io.mmio_read(REG.CQCSR, 4) & (CMD_ILL | CQMF) == 0
    assert io.mmio_read(REG.CQH, 4) == io.mmio_read(REG.CQT, 4)


def _addr(s: System, did: int, va: int, pid: Optional[int] = None) -> int:
    rsp = s.t(did, va, process_id=pid)
    assert rsp.status == rv.Status.SUCCESS, rsp
    return rsp.addr


def _read_fault(cause: int, did: int, va: int, pid: Optional[int] = None) -> rv.FaultRecord:
    return rv.FaultRecord(
        cause=cause,
        ttyp=rv.Ttyp.UNTRANSLATED_READ,
        iotval=va,
        device_id=did,
        process_id=pid or 0,
        pv=pid is not None,
    )


def _host_dev(s: System, did: int, pscid: int, maps: Dict[int, int]) -> PageTable:
    """A device whose DC selects a host first-stage table (iohgatp Bare) with ``pscid``."""
    t = s.stage1()
    for va, pa in maps.items():
        t.map(va, pa)
    s.ddt.set_dc(did, tc=TC_V, fsc=t.satp(), ta=ta(pscid))
    return t


def _gonly_dev(s: System, did: int, gscid: int, maps: Dict[int, int]) -> PageTable:
    """A device with a G-stage table only (first stage Bare): IOVA = GPA."""
    g = s.gstage(SV39)
    for gpa, pa in maps.items():
        g.map(gpa, pa)
    s.ddt.set_dc(did, tc=TC_V, iohgatp=g.satp(gscid))
    return g


# ---------------------------------------------------------------------------
# A scene of tagged IOTLB entries and the IOTINVAL operation tables
# ---------------------------------------------------------------------------
class Scene:
    """Cached translations with distinct tags, each with an old and a new SPA.

    host (iohgatp Bare): h1X h1Y h1Zg (PSCID 1, Zg global), h2X (PSCID 2);
    VM GSCID 5: v1X v1Y v1Zg (PSCID 1), v2X (PSCID 2), gP (first stage Bare);
    VM GSCID 6: w1X (PSCID 1, same GPA as v1X).
    ``remap()`` changes, for every entry, the leaf that decides its SPA: the
    first-stage leaf for host entries, the G-stage leaf of its GPA for VM entries.
    """

    def __init__(self, **caps: Any) -> None:
        s = self.s = _sys(**caps)
        self.entries: Dict[str, Tuple[int, int, int, int, Callable[[], object]]] = {}
        self.gpa: Dict[str, int] = {}
        s1, s2 = s.stage1(), s.stage1()
        s.ddt.set_dc(1, tc=TC_V, fsc=s1.satp(), ta=ta(1))
        s.ddt.set_dc(2, tc=TC_V, fsc=s2.satp(), ta=ta(2))
        self._host("h1X", 1, s1, X)
        self._host("h1Y", 1, s1, Y)
        self._host("h1Zg", 1, s1, Z, G)
        self._host("h2X", 2, s2, X)
        g5 = s.gstage(SV39)
        guest5 = s.guest(g5)
        t1, t2 = s.stage1(space=guest5), s.stage1(space=guest5)
        s.ddt.set_dc(3, tc=TC_V, iohgatp=g5.satp(5), fsc=t1.satp(), ta=ta(1))
        s.ddt.set_dc(4, tc=TC_V, iohgatp=g5.satp(5), fsc=t2.satp(), ta=ta(2))
        s.ddt.set_dc(6, tc=TC_V, iohgatp=g5.satp(5))
        self._vm("v1X", 3, guest5, g5, t1, X, 0x6000_0000)
        self._vm("v1Y", 3, guest5, g5, t1, Y, 0x6000_1000)
        self._vm("v1Zg", 3, guest5, g5, t1, Z, 0x6000_2000, G)
        self._vm("v2X", 4, guest5, g5, t2, X, 0x6000_3000)
        old, new = s.page(), s.page()
        g5.map(P, old)
        self.entries["gP"] = (6, P, old, new, lambda: g5.map(P, new))
        g6 = s.gstage(SV39)
        guest6 = s.guest(g6)
        u1 = s.stage1(space=guest6)
        s.ddt.set_dc(5, tc=TC_V, iohgatp=g6.satp(6), fsc=u1.satp(), ta=ta(1))
        self._vm("w1X", 5, guest6, g6, u1, X, 0x6000_0000)

    def _host(self, name: str, did: int, t: PageTable, va: int, extra: int = 0) -> None:
        old, new = self.s.page(), self.s.page()
        t.map(va, old, flags=LEAF | extra)
        self.entries[name] = (did, va, old, new, lambda: t.map(va, new, flags=LEAF | extra))

    def _vm(
        self,
        name: str,
        did: int,
        guest: GuestSpace,
        g: PageTable,
        t: PageTable,
        va: int,
        gpa: int,
        extra: int = 0,
    ) -> None:
        old = guest.back(gpa)
        new = self.s.page()
        t.map(va, gpa, flags=LEAF | extra)
        self.gpa[name] = gpa
        self.entries[name] = (did, va, old, new, lambda: g.map(gpa, new))

    def observe(self) -> Dict[str, str]:
        out = {}
        for name, (did, va, old, new, _) in self.entries.items():
            a = _addr(self.s, did, va | 0x88)
            assert a in (old | 0x88, new | 0x88), name
            out[name] = "old" if a == old | 0x88 else "new"
        return out

    def run(self, cmd: Tuple[int, int]) -> Set[str]:
        """Fill, remap, show every entry stale, submit ``cmd``: the names that changed."""
        assert set(self.observe().values()) == {"old"}
        for *_, remap in self.entries.values():
            remap()
        assert set(self.observe().values()) == {"old"}  # stale before the command
        _submit(self.s, cmd)
        return {n for n, v in self.observe().items() if v == "new"}


HOST = {"h1X", "h1Y", "h1Zg", "h2X"}
VM5_S1 = {"v1X", "v1Y", "v1Zg", "v2X"}


@pytest.mark.parametrize(
    ("gv", "av", "pscv", "addr", "dropped"),
    [
        (0, 0, 0, None, HOST),
        (0, 0, 1, None, {"h1X", "h1Y"}),
        (0, 1, 0, X, {"h1X", "h2X"}),
        (0, 1, 0, Z, {"h1Zg"}),
        (0, 1, 1, X, {"h1X"}),
        (0, 1, 1, Z, set()),
        (1, 0, 0, None, VM5_S1),
        (1, 0, 1, None, {"v1X", "v1Y"}),
        (1, 1, 0, X, {"v1X", "v2X"}),
        (1, 1, 0, Z, {"v1Zg"}),
        (1, 1, 1, X, {"v1X"}),
        (1, 1, 1, Z, set()),
    ],
)
def test_iotinval_vma_operation_table(
    gv: int, av: int, pscv: int, addr: Optional[int], dropped: Set[str]
) -> None:
    """IOTINVAL.VMA operands and operations (table [IVMA]), GSCID 5 / PSCID 1:
    GV = 0 operates on host entries only, GV = 1 on GSCID's; PSCV = 1 limits to PSCID
    and spares global mappings; AV = 1 limits to the leaf for ADDR (global included
    when PSCV = 0).  Other GSCIDs and G-stage-only entries are untouched."""
    sc = Scene()
    cmd = sw.iotinval_vma(gscid=5 if gv else None, pscid=1 if pscv else None, addr=addr)
    assert (gv, av, pscv) == tuple(
        F.CMD_IOTINVAL0.fields[f].get(cmd[0]) for f in ("GV", "AV", "PSCV")
    )
    assert sc.run(cmd) == dropped


@pytest.mark.parametrize(
    ("gscid", "addr", "dropped"),
    [
        (None, None, VM5_S1 | {"w1X", "gP"}),
        (None, 0x6000_0000, VM5_S1 | {"w1X", "gP"}),  # AV ignored when GV = 0
        (5, None, VM5_S1 | {"gP"}),
        (6, None, {"w1X"}),
        (5, 0x6000_0000, {"v1X"}),  # w1X has the same GPA but GSCID 6
        (6, 0x6000_0000, {"w1X"}),
        (5, 0x6000_2000, {"v1Zg"}),
        (5, P, {"gP"}),
        (5, 0x6000_5000, set()),
    ],
)
def test_iotinval_gvma_operation_table(
    gscid: Optional[int], addr: Optional[int], dropped: Set[str]
) -> None:
    """IOTINVAL.GVMA operands and operations (table [IGVMA]): GV = 0 all VM address
    spaces (host entries kept), GV = 1 only GSCID's, AV = 1 only entries whose GPA
    matches ADDR ("any entry whose guest virtual address maps to a guest physical
    address that matches ... must be invalidated")."""
    sc = Scene()
    assert sc.run(sw.iotinval_gvma(gscid=gscid, addr=addr)) == dropped


def test_iotinval_gvma_gv0_av1_ignores_s_and_addr() -> None:
    """ARINV: "When the GV operand is 0, both the AV and S operands are ignored by
    IOTINVAL.GVMA"."""
    sc = Scene()
    assert sc.run(sw.iotinval_gvma(addr=P, s=True)) == VM5_S1 | {"w1X", "gP"}


def test_iotinval_vma_s_ignored_when_av_0() -> None:
    """ARINV: "When the AV operand is 0, the S operand is ignored"."""
    sc = Scene()
    d0, d1 = sw.iotinval_vma(gscid=5)
    assert sc.run((d0, F.CMD_IOTINVAL1.S.put(d1, 1))) == VM5_S1


# ---------------------------------------------------------------------------
# one cache at a time: stale before, fresh after
# ---------------------------------------------------------------------------
def test_ddt_cache_stale_until_iodir_inval_ddt() -> None:
    """DDT cache (tag device_id, IODIR.INVAL_DDT): a changed DC is used only after
    IODIR.INVAL_DDT DV=1 DID."""
    s = _sys()
    a, b = s.page(), s.page()
    _host_dev(s, 1, 1, {X: a})
    assert _addr(s, 1, X) == a
    t2 = s.stage1()
    t2.map(X, b)
    s.ddt.set_dc(1, tc=TC_V, fsc=t2.satp(), ta=ta(2))
    assert _addr(s, 1, X) == a  # stale DC
    _submit(s, sw.iodir_inval_ddt(did=1))
    assert _addr(s, 1, X) == b


def test_ddt_cache_invalidated_dc_reports_fault() -> None:
    """A DC cleared to V = 0: still used from the DDT cache until IODIR.INVAL_DDT, then
    "DDT entry not valid" (258)."""
    s = _sys()
    a = s.page()
    _host_dev(s, 1, 1, {X: a})
    assert _addr(s, 1, X) == a
    s.ddt.set_dc(1, tc=0)
    assert _addr(s, 1, X) == a
    _submit(s, sw.iodir_inval_ddt(did=1))
    rsp = s.t(1, X)
    assert rsp.status == rv.Status.UNSUPPORTED_REQUEST
    assert rsp.fault == _read_fault(258, 1, X)


def _pdt_dev(s: System, did: int, pcs: Dict[int, Tuple[int, int]]) -> ProcessDirectory:
    """A device with a PDT; ``pcs`` maps process_id -> (pscid, spa of X)."""
    pdt = s.pdt(mode=PD20)
    for pid, (pscid, spa) in pcs.items():
        t = s.stage1()
        t.map(X, spa)
        pdt.set_pc(pid, fsc=t.satp(), pscid=pscid)
    s.ddt.set_dc(did, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    return pdt


def test_pdt_cache_stale_until_iodir_inval_pdt() -> None:
    """PDT cache (tags device_id, process_id; IODIR.INVAL_PDT): a changed PC is used
    only after IODIR.INVAL_PDT DID PID."""
    s = _sys()
    a, b = s.page(), s.page()
    pdt = _pdt_dev(s, 1, {5: (1, a)})
    assert _addr(s, 1, X, 5) == a
    t2 = s.stage1()
    t2.map(X, b)
    pdt.set_pc(5, fsc=t2.satp(), pscid=2)
    assert _addr(s, 1, X, 5) == a  # stale PC
    _submit(s, sw.iodir_inval_pdt(did=1, pid=5))
    assert _addr(s, 1, X, 5) == b


def test_iotlb_first_stage_pte_stale_until_iotinval_vma() -> None:
    """IOTLB, first stage with second stage Bare (tags PSCID, IOVA): a changed leaf PTE
    is used only after IOTINVAL.VMA."""
    s = _sys()
    a, b = s.page(), s.page()
    t = _host_dev(s, 1, 7, {X: a})
    assert _addr(s, 1, X | 0x10) == a | 0x10
    t.map(X, b)
    assert _addr(s, 1, X | 0x10) == a | 0x10
    _submit(s, sw.iotinval_vma(pscid=7, addr=X))
    assert _addr(s, 1, X | 0x10) == b | 0x10


def test_iotlb_g_stage_pte_stale_until_iotinval_gvma() -> None:
    """IOTLB, second stage (tags GSCID, GPA): a changed G-stage leaf is used only after
    IOTINVAL.GVMA."""
    s = _sys()
    a, b = s.page(), s.page()
    g = _gonly_dev(s, 1, 9, {P: a})
    assert _addr(s, 1, P) == a
    g.map(P, b)
    assert _addr(s, 1, P) == a
    _submit(s, sw.iotinval_gvma(gscid=9, addr=P))
    assert _addr(s, 1, P) == b


def test_iotlb_two_stage_g_pte_change_needs_gvma_with_gpa() -> None:
    """Two-stage entries cache IOVA -> SPA; IOTINVAL.GVMA with the GPA (not the IOVA)
    must drop them (NOTE after table [IGVMA])."""
    s = _sys()
    g = s.gstage(SV39)
    guest = s.guest(g)
    t = s.stage1(space=guest)
    gpa = 0x6000_0000
    a = guest.back(gpa)
    b = s.page()
    t.map(X, gpa)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(4), fsc=t.satp(), ta=ta(1))
    assert _addr(s, 1, X) == a
    g.map(gpa, b)
    assert _addr(s, 1, X) == a
    _submit(s, sw.iotinval_gvma(gscid=4, addr=X))  # the IOVA is not the GPA
    assert _addr(s, 1, X) == a
    _submit(s, sw.iotinval_gvma(gscid=4, addr=gpa))
    assert _addr(s, 1, X) == b


# ---------------------------------------------------------------------------
# IODIR details
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dv", [False, True])
def test_iodir_inval_ddt_dv(dv: bool) -> None:
    """IODIR.INVAL_DDT: DV = 1 invalidates the DC of DID only; DV = 0 "invalidates all
    DDT and PDT entries cached for all devices"."""
    s = _sys()
    a, b = s.page(), s.page()
    _host_dev(s, 1, 1, {X: a})
    _host_dev(s, 2, 2, {X: b})
    assert (_addr(s, 1, X), _addr(s, 2, X)) == (a, b)
    s.ddt.set_dc(1, tc=0)
    s.ddt.set_dc(2, tc=0)
    assert (_addr(s, 1, X), _addr(s, 2, X)) == (a, b)
    _submit(s, sw.iodir_inval_ddt(did=1 if dv else None))
    assert s.t(1, X).fault == _read_fault(258, 1, X)
    if dv:
        assert _addr(s, 2, X) == b
    else:
        assert s.t(2, X).fault == _read_fault(258, 2, X)


def test_iodir_inval_ddt_drops_the_devices_pdt_entries() -> None:
    """IODIR.INVAL_DDT DV=1 invalidates the DC "and all associated PDT entries"."""
    s = _sys()
    a, b, c = s.page(), s.page(), s.page()
    pdt1 = _pdt_dev(s, 1, {5: (1, a), 6: (2, b)})
    pdt2 = _pdt_dev(s, 2, {5: (3, c)})
    assert [_addr(s, 1, X, 5), _addr(s, 1, X, 6), _addr(s, 2, X, 5)] == [a, b, c]
    pdt1.set_pc(5, ta=0)
    pdt1.set_pc(6, ta=0)
    pdt2.set_pc(5, ta=0)
    _submit(s, sw.iodir_inval_ddt(did=1))
    assert s.t(1, X, process_id=5).fault == _read_fault(266, 1, X, 5)
    assert s.t(1, X, process_id=6).fault == _read_fault(266, 1, X, 6)
    assert _addr(s, 2, X, 5) == c


def test_iodir_inval_pdt_drops_only_that_process_context() -> None:
    """IODIR.INVAL_PDT "invalidates cached leaf PDT entry for the specified PID and DID"."""
    s = _sys()
    a, b, c = s.page(), s.page(), s.page()
    pdt1 = _pdt_dev(s, 1, {5: (1, a), 6: (2, b)})
    pdt2 = _pdt_dev(s, 2, {5: (3, c)})
    assert [_addr(s, 1, X, 5), _addr(s, 1, X, 6), _addr(s, 2, X, 5)] == [a, b, c]
    pdt1.set_pc(5, ta=0)
    pdt1.set_pc(6, ta=0)
    pdt2.set_pc(5, ta=0)
    assert [_addr(s, 1, X, 5), _addr(s, 1, X, 6), _addr(s, 2, X, 5)] == [a, b, c]
    _submit(s, sw.iodir_inval_pdt(did=1, pid=5))
    rsp = s.t(1, X, process_id=5)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert rsp.fault == _read_fault(266, 1, X, 5)
    assert [_addr(s, 1, X, 6), _addr(s, 2, X, 5)] == [b, c]


def test_iotinval_has_no_effect_on_directory_caches() -> None:
    """ "The IOTINVAL command has no effect on the IOMMU directory caches"."""
    s = _sys()
    a = s.page()
    _host_dev(s, 1, 1, {X: a})
    assert _addr(s, 1, X) == a
    s.ddt.set_dc(1, tc=0)
    _submit(s, sw.iotinval_vma(), sw.iotinval_gvma())
    assert _addr(s, 1, X) == a  # the cached DC is still used
    _submit(s, sw.iodir_inval_ddt())
    assert s.t(1, X).fault == _read_fault(258, 1, X)


# ---------------------------------------------------------------------------
# invalid entries are never cached
# ---------------------------------------------------------------------------
def test_invalid_dc_is_not_cached() -> None:
    """ "This specification does not allow the caching of ... Device-context whose V
    (valid) bit is clear": a DC made valid is seen without any command."""
    s = _sys()
    a = s.page()
    t = s.stage1()
    t.map(X, a)
    s.ddt.set_dc(1, tc=0, fsc=t.satp(), ta=ta(1))
    assert s.t(1, X).fault == _read_fault(258, 1, X)
    s.ddt.set_dc(1, tc=TC_V, fsc=t.satp(), ta=ta(1))
    assert _addr(s, 1, X) == a


def test_invalid_nonleaf_ddt_entry_is_not_cached() -> None:
    """No caching of "non-leaf DDT entries whose V (valid) bit is clear"."""
    s = _sys()
    did = 0x12345
    assert s.t(did, X).fault == _read_fault(258, did, X)
    a = s.page()
    _host_dev(s, did, 1, {X: a})  # creates the missing DDT levels
    assert _addr(s, did, X) == a


def test_invalid_pc_is_not_cached() -> None:
    """No caching of "Process-context whose V (valid) bit is clear"."""
    s = _sys()
    a = s.page()
    pdt = _pdt_dev(s, 1, {})
    assert s.t(1, X, process_id=9).fault == _read_fault(266, 1, X, 9)
    t = s.stage1()
    t.map(X, a)
    pdt.set_pc(9, fsc=t.satp(), pscid=1)
    assert _addr(s, 1, X, 9) == a


def test_invalid_first_stage_pte_is_not_cached() -> None:
    """No caching of "first/second-stage PTEs whose V (valid) bit is clear"."""
    s = _sys()
    a = s.page()
    t = _host_dev(s, 1, 1, {})
    assert s.t(1, X).fault == _read_fault(rv.Cause.READ_PAGE_FAULT, 1, X)
    t.map(X, a)
    assert _addr(s, 1, X) == a


def test_invalid_g_stage_pte_is_not_cached() -> None:
    """No caching of second-stage PTEs whose V bit is clear."""
    s = _sys()
    a = s.page()
    g = _gonly_dev(s, 1, 3, {})
    rsp = s.t(1, P)
    assert rsp.fault is not None and rsp.fault.cause == rv.Cause.READ_GUEST_PAGE_FAULT
    g.map(P, a)
    assert _addr(s, 1, P) == a


# ---------------------------------------------------------------------------
# address ranges (ARINV), non-leaf (NLINV), superpages
# ---------------------------------------------------------------------------
_B = 0x4010_0000  # 1 MiB aligned


@pytest.mark.parametrize("pages", [2, 4, 16, 256])
@pytest.mark.parametrize("gvma", [False, True])
def test_s_range_drops_pages_inside_keeps_outside(pages: int, gvma: bool) -> None:
    """ARINV: with S = 1 the first 0 bit of ADDR at position X gives a NAPOT range of
    2^(X+1) pages: the pages inside are invalidated, the ones just outside kept."""
    s = _sys(s=True)
    vas = [_B - 0x1000] + [_B + k * 0x1000 for k in range(pages + 1)]
    old = {va: s.page() for va in vas}
    new = {va: s.page() for va in vas}
    if gvma:
        t = _gonly_dev(s, 1, 2, old)
    else:
        t = _host_dev(s, 1, 2, old)
    assert all(_addr(s, 1, va) == old[va] for va in vas)
    for va in vas:
        t.map(va, new[va])
    addr = _B | ((pages // 2 - 1) << 12)  # NAPOT encoding of [B, B + pages * 4K)
    cmd = (
        sw.iotinval_gvma(gscid=2, addr=addr, s=True)
        if gvma
        else sw.iotinval_vma(pscid=2, addr=addr, s=True)
    )
    _submit(s, cmd)
    got = {va: "new" if _addr(s, 1, va) == new[va] else "old" for va in vas}
    want = {va: "new" if _B <= va < _B + pages * 0x1000 else "old" for va in vas}
    assert got == want


def test_s_range_msb_0_rest_1_is_whole_address_space() -> None:
    """ARINV: "the most significant bit of the ADDR operand is 0 while all other bits are
    1, the specified address range covers the entire address space"."""
    s = _sys(s=True)
    vas = [0x1000, 0x40_0000, 0x3F_FFFF_F000]
    old = {va: s.page() for va in vas}
    t = _host_dev(s, 1, 2, old)
    assert all(_addr(s, 1, va) == old[va] for va in vas)
    new = {va: s.page() for va in vas}
    for va in vas:
        t.map(va, new[va])
    _submit(s, sw.iotinval_vma(pscid=2, addr=((1 << 51) - 1) << 12, s=True))
    assert [_addr(s, 1, va) for va in vas] == [new[va] for va in vas]


def test_s_0_is_a_single_page() -> None:
    """With S = 0 the address operand names one page even if its low bits are ones."""
    s = _sys(s=True)
    vas = [_B, _B + 0x1000]
    old = {va: s.page() for va in vas}
    t = _host_dev(s, 1, 2, old)
    assert all(_addr(s, 1, va) == old[va] for va in vas)
    new = {va: s.page() for va in vas}
    for va in vas:
        t.map(va, new[va])
    _submit(s, sw.iotinval_vma(pscid=2, addr=_B + 0x1000))
    assert [_addr(s, 1, va) for va in vas] == [old[_B], new[_B + 0x1000]]


def _swap_nonleaf(s: System, t: PageTable, va: int, spa: int) -> None:
    """Point the level-1 non-leaf PTE of ``va`` at a new level-0 table mapping va -> spa."""
    table = s.page()
    s.mem.write_u64(table + ((va >> 12) & 0x1FF) * 8, pte(spa >> 12, LEAF))
    s.mem.write_u64(t.pte_addr(va, 1), pte(table >> 12))


def test_nl_vma_invalidates_after_non_leaf_change() -> None:
    """NLINV: IOTINVAL.VMA AV = 1 NL = 1 "Invalidates information cached from all levels
    of first-stage page table entries corresponding to the IOVA"."""
    s = _sys(nl=True)
    a, b = s.page(), s.page()
    t = _host_dev(s, 1, 3, {X: a})
    assert _addr(s, 1, X) == a
    _swap_nonleaf(s, t, X, b)
    assert _addr(s, 1, X) == a
    _submit(s, sw.iotinval_vma(pscid=3, addr=X, nl=True))
    assert _addr(s, 1, X) == b


def test_nl_gvma_invalidates_after_non_leaf_change() -> None:
    """NLINV: IOTINVAL.GVMA GV = AV = NL = 1 invalidates all levels of second-stage
    entries for the GPA."""
    s = _sys(nl=True)
    a, b = s.page(), s.page()
    g = _gonly_dev(s, 1, 3, {P: a})
    assert _addr(s, 1, P) == a
    _swap_nonleaf(s, g, P, b)
    assert _addr(s, 1, P) == a
    _submit(s, sw.iotinval_gvma(gscid=3, addr=P, nl=True))
    assert _addr(s, 1, P) == b


def test_address_inside_first_stage_superpage_drops_it() -> None:
    """IOTINVAL.VMA AV = 1 drops entries of the first-stage leaf "corresponding to the
    IOVA in ADDR": any address inside a 2 MiB leaf names it."""
    s = _sys()
    va = 0x4000_0000
    a = s.alloc.alloc(1 << 21, 1 << 21)
    b = s.alloc.alloc(1 << 21, 1 << 21)
    t = s.stage1()
    t.map(va, a, size=1 << 21)
    s.ddt.set_dc(1, tc=TC_V, fsc=t.satp(), ta=ta(1))
    assert _addr(s, 1, va + 0x12_3456) == a + 0x12_3456
    t.map(va, b, size=1 << 21)
    assert _addr(s, 1, va + 0x12_3456) == a + 0x12_3456
    _submit(s, sw.iotinval_vma(pscid=1, addr=va + 0x1F_F000))
    assert _addr(s, 1, va + 0x12_3456) == b + 0x12_3456


def test_address_inside_g_stage_superpage_drops_it() -> None:
    """IOTINVAL.GVMA AV = 1 drops entries of the G-stage leaf for ADDR (2 MiB leaf)."""
    s = _sys()
    gpa = 0x4000_0000
    a = s.alloc.alloc(1 << 21, 1 << 21)
    b = s.alloc.alloc(1 << 21, 1 << 21)
    g = s.gstage(SV39)
    g.map(gpa, a, size=1 << 21)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(2))
    assert _addr(s, 1, gpa + 0x5000) == a + 0x5000
    g.map(gpa, b, size=1 << 21)
    _submit(s, sw.iotinval_gvma(gscid=2, addr=gpa))
    assert _addr(s, 1, gpa + 0x5000) == b + 0x5000


def test_vma_address_in_first_stage_superpage_drops_splintered_entry() -> None:
    """IOTINVAL.VMA AV = 1 "Invalidates all address-translation cache entries that
    contain first-stage leaf page table entries ... corresponding to the IOVA in ADDR":
    a 2 MiB first-stage leaf over 4 KiB G-stage pages is cached as 4 KiB entries, and
    the one at base + 0x5000 contains the leaf for ADDR = base."""
    s = _sys()
    g = s.gstage(SV39)
    guest = s.guest(g)
    t = s.stage1(space=guest)
    va, g_old, g_new = 0x20_0000, 0x5000_0000, 0x5200_0000
    a = guest.back(g_old + 0x5000)
    b = guest.back(g_new + 0x5000)
    t.map(va, g_old, size=1 << 21)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(5), fsc=t.satp(), ta=ta(1))
    assert _addr(s, 1, va + 0x5000) == a
    t.map(va, g_new, size=1 << 21)
    _submit(s, sw.iotinval_vma(gscid=5, pscid=1, addr=va))
    assert _addr(s, 1, va + 0x5000) == b


def test_gvma_address_in_g_stage_superpage_drops_splintered_entry() -> None:
    """IOTINVAL.GVMA GV = AV = 1 "Invalidates information cached from leaf second-stage
    page table entries corresponding to the guest-physical-address in ADDR": a 4 KiB
    first-stage page into a 2 MiB G-stage leaf uses the leaf for ADDR = leaf base."""
    s = _sys()
    g = s.gstage(SV39)
    guest = s.guest(g)
    t = s.stage1(space=guest)
    gb = 0x4000_0000
    a = s.alloc.alloc(1 << 21, 1 << 21)
    b = s.alloc.alloc(1 << 21, 1 << 21)
    g.map(gb, a, size=1 << 21)
    t.map(X, gb + 0x5000)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(5), fsc=t.satp(), ta=ta(1))
    assert _addr(s, 1, X) == a + 0x5000
    g.map(gb, b, size=1 << 21)
    _submit(s, sw.iotinval_gvma(gscid=5, addr=gb))
    assert _addr(s, 1, X) == b + 0x5000


# ---------------------------------------------------------------------------
# capacities and replacement
# ---------------------------------------------------------------------------
def test_iotlb_size_0_sees_pte_changes_at_once() -> None:
    """IommuParams(iotlb_size=0): no IOTLB, every request walks the page tables."""
    s = _sys(params=rv.IommuParams(iotlb_size=0))
    a, b = s.page(), s.page()
    t = _host_dev(s, 1, 1, {X: a})
    g = _gonly_dev(s, 2, 1, {P: a})
    assert (_addr(s, 1, X), _addr(s, 2, P)) == (a, a)
    t.map(X, b)
    g.map(P, b)
    assert (_addr(s, 1, X), _addr(s, 2, P)) == (b, b)
    assert len(s.iommu.iotlb) == 0


def test_ddt_cache_size_0_sees_dc_changes_at_once() -> None:
    """IommuParams(ddt_cache_size=0): every request reads the DC."""
    s = _sys(params=rv.IommuParams(ddt_cache_size=0))
    a, b = s.page(), s.page()
    _host_dev(s, 1, 1, {X: a})
    assert _addr(s, 1, X) == a
    t2 = s.stage1()
    t2.map(X, b)
    s.ddt.set_dc(1, tc=TC_V, fsc=t2.satp(), ta=ta(2))
    assert _addr(s, 1, X) == b
    s.ddt.set_dc(1, tc=0)
    assert s.t(1, X).fault == _read_fault(258, 1, X)


def test_pdt_cache_size_0_sees_pc_changes_at_once() -> None:
    """IommuParams(pdt_cache_size=0): every request reads the PC."""
    s = _sys(params=rv.IommuParams(pdt_cache_size=0))
    a, b = s.page(), s.page()
    pdt = _pdt_dev(s, 1, {5: (1, a)})
    assert _addr(s, 1, X, 5) == a
    t2 = s.stage1()
    t2.map(X, b)
    pdt.set_pc(5, fsc=t2.satp(), pscid=2)
    assert _addr(s, 1, X, 5) == b
    pdt.set_pc(5, ta=0)
    assert s.t(1, X, process_id=5).fault == _read_fault(266, 1, X, 5)


def test_iotlb_capacity_1_evicts() -> None:
    """A 1-entry IOTLB keeps only the last translation: the evicted one walks again."""
    s = _sys(params=rv.IommuParams(iotlb_size=1))
    a1, a2, b1, b2 = (s.page() for _ in range(4))
    t = _host_dev(s, 1, 1, {X: a1, Y: b1})
    assert (_addr(s, 1, X), _addr(s, 1, Y)) == (a1, b1)
    assert len(s.iommu.iotlb) == 1
    t.map(X, a2)
    t.map(Y, b2)
    assert _addr(s, 1, Y) == b1  # cached (stale)
    assert _addr(s, 1, X) == a2  # evicted: fresh walk (and now evicts Y)
    assert _addr(s, 1, Y) == b2


def _policy_scene(params: rv.IommuParams) -> Tuple[System, Dict[str, Tuple[int, int, int]]]:
    """Capacity 2: translate A, B, A, C; then remap A, B and C."""
    s = _sys(params=params)
    t = s.stage1()
    s.ddt.set_dc(1, tc=TC_V, fsc=t.satp(), ta=ta(1))
    pages = {}
    for n, va in (("A", X), ("B", Y), ("C", Z)):
        old, new = s.page(), s.page()
        t.map(va, old)
        pages[n] = (va, old, new)
    for n in "ABAC":
        assert _addr(s, 1, pages[n][0]) == pages[n][1]
    for va, _, new in pages.values():
        t.map(va, new)
    return s, pages


def _state(s: System, pages: Dict[str, Tuple[int, int, int]], n: str) -> str:
    va, old, new = pages[n]
    return "old" if _addr(s, 1, va) == old else "new"


def test_cache_policy_fifo_evicts_first_inserted() -> None:
    """cache_policy="fifo": A, B, A, C evicts A (inserted first) even though A was
    used last but one."""
    s, pages = _policy_scene(rv.IommuParams(iotlb_size=2, cache_policy="fifo"))
    assert _state(s, pages, "B") == "old"
    assert _state(s, pages, "A") == "new"


def test_cache_policy_lru_evicts_least_recently_used() -> None:
    """cache_policy="lru": A, B, A, C evicts B (front cache off: pdt_cache_size=0)."""
    s, pages = _policy_scene(rv.IommuParams(iotlb_size=2, cache_policy="lru", pdt_cache_size=0))
    assert _state(s, pages, "A") == "old"
    assert _state(s, pages, "B") == "new"


def test_cache_policy_lru_with_all_caches_on() -> None:
    """cache_policy="lru" with the default caches: A, B, A, C evicts B."""
    s, pages = _policy_scene(rv.IommuParams(iotlb_size=2, cache_policy="lru"))
    assert _state(s, pages, "A") == "old"
    assert _state(s, pages, "B") == "new"


# ---------------------------------------------------------------------------
# invalidation touches only what it removes
# ---------------------------------------------------------------------------
def test_gvma_of_one_gscid_leaves_other_gscid_entries() -> None:
    """2,000 entries of GSCID 1 and 1 of GSCID 2: IOTINVAL.GVMA GSCID 2 leaves exactly
    the 2,000 (and they still hit)."""
    s = _sys()
    spa = s.page()
    n = 2000
    g1 = s.gstage(SV39)
    for k in range(n):
        g1.map(0x1000_0000 + k * 0x1000, spa)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g1.satp(1))
    _gonly_dev(s, 2, 2, {P: spa})
    for k in range(n):
        s.t(1, 0x1000_0000 + k * 0x1000)
    assert _addr(s, 2, P) == spa
    io = s.iommu
    assert len(io.iotlb) == n + 1
    _submit(s, sw.iotinval_gvma(gscid=2))
    assert len(io.iotlb) == n
    hits = io.iotlb.hits
    assert _addr(s, 1, 0x1000_0000 + 1234 * 0x1000) == spa
    assert io.iotlb.hits == hits + 1
    _submit(s, sw.iotinval_gvma(gscid=1, addr=0x1000_0000))
    assert len(io.iotlb) == n - 1


def test_vma_of_one_pscid_leaves_other_pscid_entries() -> None:
    """2,000 host entries of PSCID 1 and 1 of PSCID 2: IOTINVAL.VMA PSCID 2 leaves 2,000."""
    s = _sys()
    spa = s.page()
    n = 2000
    t = _host_dev(s, 1, 1, {})
    for k in range(n):
        t.map(0x1000_0000 + k * 0x1000, spa)
    _host_dev(s, 2, 2, {X: spa})
    for k in range(n):
        s.t(1, 0x1000_0000 + k * 0x1000)
    assert _addr(s, 2, X) == spa
    io = s.iommu
    assert len(io.iotlb) == n + 1
    _submit(s, sw.iotinval_vma(pscid=2))
    assert len(io.iotlb) == n
    _submit(s, sw.iotinval_vma(pscid=1, addr=0x1000_0000 + 5 * 0x1000))
    assert len(io.iotlb) == n - 1
    _submit(s, sw.iotinval_vma())
    assert len(io.iotlb) == 0


def test_iodir_inval_ddt_all_empties_directory_caches() -> None:
    """IODIR.INVAL_DDT DV = 0 empties the DDT and PDT caches; DV = 1 removes one device."""
    s = _sys()
    a = s.page()
    _pdt_dev(s, 1, {5: (1, a)})
    _host_dev(s, 2, 2, {X: a})
    _addr(s, 1, X, 5)
    _addr(s, 2, X)
    io = s.iommu
    assert (len(io.ddt_cache), len(io.pdt_cache)) == (2, 1)
    _submit(s, sw.iodir_inval_ddt(did=2))
    assert (len(io.ddt_cache), len(io.pdt_cache)) == (1, 1)
    _submit(s, sw.iodir_inval_ddt())
    assert (len(io.ddt_cache), len(io.pdt_cache)) == (0, 0)
