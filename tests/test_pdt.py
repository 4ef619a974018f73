"""Process directory: P2IOVA steps 7.3 and 10-16, GET_PC and the PC configuration checks.

Spec: iommu_data_structures.adoc, "Process to translate an IOVA" (P2IOVA),
"Process to locate the Process-context" (GET_PC), "Process-context
configuration checks" (PC_MISCONFIG, rules numbered as listed there),
"Process-Directory-Table (PDT)" / "Leaf PDT entry" (PDI split, PC byte order),
"Process-context fields" (ENS, SUM, PSCID) and iommu_in_memory_queues.adoc
"Fault-queue record" (CAUSE / TTYP tables, iotval2 of guest-page faults, DTF).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    PD8,
    PD17,
    PD20,
    SV39,
    TC_DPE,
    TC_DTF,
    TC_GADE,
    TC_PDTV,
    TC_SBE,
    TC_SXL,
    TC_V,
    System,
    fault,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import URWX, A, D, PageTable, R, U, W, X
from riscv_iommu.pdt import PC_RULES, pc_misconfigured, pdi

Cause = rv.Cause
Access = rv.Access
UR = rv.Status.UNSUPPORTED_REQUEST
CA = rv.Status.COMPLETER_ABORT
OK = rv.Status.SUCCESS

DID = 0x12345
IOVA = 0x0000_0030_1234_5678  # canonical Sv39, fits Sv39x4, no 4 KiB crossing with length 8
IOVA32 = 0x1234_5678  # for Sv32 (DC.tc.SXL=1)
SV32 = 8

#: pdtp.MODE -> PDI widths in use and the widest process_id (P2IOVA step 7.3)
PID_BITS = {PD8: 8, PD17: 17, PD20: 20}
LEVELS = {PD8: 1, PD17: 2, PD20: 3}
#: process_ids with a distinct, non-zero value in every PDI field the mode uses:
#: PDI[0] = 0xA5, PDI[1] = 0x1B3, PDI[2] = 0x5
PIDS = {PD8: 0xA5, PD17: 0x1B3A5, PD20: (0x5 << 17) | 0x1B3A5}

TTYP = {
    Access.EXECUTE: rv.Ttyp.UNTRANSLATED_EXECUTE,
    Access.READ: rv.Ttyp.UNTRANSLATED_READ,
    Access.WRITE: rv.Ttyp.UNTRANSLATED_WRITE,
}
PAGE_FAULT = {
    Access.EXECUTE: Cause.INSTRUCTION_PAGE_FAULT,
    Access.READ: Cause.READ_PAGE_FAULT,
    Access.WRITE: Cause.WRITE_PAGE_FAULT,
}
GUEST_PAGE_FAULT = {
    Access.EXECUTE: Cause.INSTRUCTION_GUEST_PAGE_FAULT,  # 20
    Access.READ: Cause.READ_GUEST_PAGE_FAULT,  # 21
    Access.WRITE: Cause.WRITE_GUEST_PAGE_FAULT,  # 23
}
UR_CAUSES = {256, 257, 258, 259, 260}

# Reserved bit positions (spec "Non-leaf PDT entry", "Translation attributes (ta)",
# "First-Stage context (fsc)").
PDTE_RESERVED_BITS = [*range(1, 10), *range(54, 64)]
TA_RESERVED_BITS = [*range(3, 12), *range(32, 64)]
FSC_RESERVED_BITS = list(range(44, 60))


# ---------------------------------------------------------------------------
# local helpers
# ---------------------------------------------------------------------------
def record(
    cause: int,
    pid: Optional[int],
    access: Access = Access.READ,
    iotval2: int = 0,
    priv: bool = False,
    did: int = DID,
    iova: int = IOVA,
) -> rv.FaultRecord:
    """The fault record the spec asks for an Untranslated request."""
    return rv.FaultRecord(
        cause=cause,
        ttyp=TTYP[access],
        iotval=iova,
        iotval2=iotval2,
        device_id=did,
        process_id=pid if pid is not None else 0,
        pv=pid is not None,
        priv=priv and pid is not None,
    )


def expect_fault(rsp: rv.Response, rec: rv.FaultRecord, reported: bool = True) -> None:
    assert fault(rsp) == rec
    assert rsp.status == (UR if rec.cause in UR_CAUSES else CA)
    assert rsp.reported is reported


def expect_ok(rsp: rv.Response, addr: int) -> None:
    assert rsp.fault is None, rsp
    assert rsp.status == OK
    assert rsp.addr == addr


def pc_ta(pscid: int = 0, ens: bool = False, sum_: bool = False, v: int = 1) -> int:
    return F.PC_TA.encode(V=v, ENS=int(ens), SUM=int(sum_), PSCID=pscid)


class Scene:
    """A device whose DC has PDTV=1 and a PDT (host or guest memory, ``mode``) with one
    valid PC for ``pid``; its first-stage table maps IOVA (and IOVA32 with SXL=1) to a
    data page at SPA ``self.spa``.

    ``guest=True`` puts the PDT, the first-stage tables and the data page in a VM's
    guest-physical memory behind an Sv39x4 G-stage (``DC.iohgatp``).
    """

    def __init__(
        self,
        mode: int = PD20,
        pid: int = PIDS[PD20],
        guest: bool = False,
        tc: int = 0,
        caps: Optional[rv.Capabilities] = None,
        params: Optional[rv.IommuParams] = None,
        fctl: int = 0,
        sbe: bool = False,
        pdt_big: Optional[bool] = None,
        flags: int = URWX | A | D,
        ens: bool = False,
        sum_: bool = False,
        pscid: int = 0x2A,
        sxl: bool = False,
    ) -> None:
        self.s = s = System(caps=caps, params=params, fctl=fctl)
        self.pid = pid
        self.mode = mode
        self.g: Optional[PageTable] = None
        self.space: Any
        iohgatp = 0
        if guest:
            self.g = s.gstage(SV39)
            space = s.guest(self.g)
            iohgatp = self.g.satp(0x77)
        else:
            space = s.host
        self.space = space
        self.pdt = s.pdt(space, mode, big=sbe if pdt_big is None else pdt_big)
        self.s1 = s.stage1(space, SV32 if sxl else SV39, xlen32=sxl, big=sbe)
        data = space.alloc()
        self.spa = space.to_spa(data)
        if guest:
            space.back(data, self.spa, flags=URWX | A | D)  # executable in the G-stage too
        self.s1.map((IOVA32 if sxl else IOVA) & ~0xFFF, data, flags=flags)
        self.pdt.set_pc(pid, fsc=self.s1.satp(), pscid=pscid, ens=ens, sum_=sum_)
        tc |= TC_V | TC_PDTV | (TC_SBE if sbe else 0) | (TC_SXL if sxl else 0)
        self.dc = dict(tc=tc, iohgatp=iohgatp, fsc=self.pdt.pdtp())
        s.ddt.set_dc(DID, **self.dc)

    def t(
        self,
        pid: Optional[int] = -1,
        access: Access = Access.READ,
        priv: bool = False,
        addr: int = IOVA,
    ) -> rv.Response:
        return self.s.t(DID, addr, access, process_id=self.pid if pid == -1 else pid, priv=priv)

    @property
    def out(self) -> int:
        """The SPA the translation of IOVA must give."""
        return self.spa | (IOVA & 0xFFF)

    def level_addr(self, level: int) -> int:
        """Address (in the PDT's space) of the PDT entry read at ``level``: the
        non-leaf entry for levels 1 and 2, the PC for level 0."""
        if level:
            return self.pdt.nonleaf_addr(self.pid, level)
        return self.pdt.pc_addr(self.pid)

    def write(self, addr: int, value: int) -> None:
        """Write a doubleword of the PDT (in its space and byte order)."""
        self.space.write_u64(addr, value, self.pdt.big)

    def spa_of(self, addr: int) -> int:
        return self.space.to_spa(addr)


def levels_of(mode: int) -> list[int]:
    """PDT levels GET_PC reads for ``mode``: non-leaf levels LEVELS-1 .. 1, then the PC (0)."""
    return list(range(LEVELS[mode] - 1, -1, -1))


MODE_LEVELS = [(m, lv) for m in (PD8, PD17, PD20) for lv in levels_of(m)]
MODE_NONLEAF = [(m, lv) for m, lv in MODE_LEVELS if lv]


MODE_NAME = {PD8: "PD8", PD17: "PD17", PD20: "PD20"}


def _ml_id(p: Tuple[int, int]) -> str:
    return f"{MODE_NAME[p[0]]}-{'PC' if p[1] == 0 else f'L{p[1]}'}"


def manual_pdt(s: System, mode: int, pid: int, ta: int, fsc: int) -> int:
    """Build the PDT path for ``pid`` by hand (not with ProcessDirectory), as GET_PC steps
    1-9 must walk it, and return the pdtp (DC.fsc) value."""
    p = (pid & 0xFF, (pid >> 8) & 0x1FF, pid >> 17)
    root = s.page()
    a = root
    for i in range(LEVELS[mode] - 1, 0, -1):
        nxt = s.page()
        s.mem.write_u64(a + p[i] * 8, F.PDTE.encode(V=1, PPN=nxt >> 12))
        a = nxt
    s.mem.write_u64(a + p[0] * 16, ta)
    s.mem.write_u64(a + p[0] * 16 + 8, fsc)
    return F.PDTP.encode(PPN=root >> 12, MODE=mode)


# ---------------------------------------------------------------------------
# Field tables used below (guards against the constants of this file drifting)
# ---------------------------------------------------------------------------
def test_reserved_bit_tables_match_formats() -> None:
    """Spec figures "Non-leaf process-directory-table entry", "Translation attributes (ta)"
    and "Process First-Stage context": the reserved bits."""
    assert F.PDTE.reserved == sum(1 << b for b in PDTE_RESERVED_BITS)
    assert F.PC_TA.reserved == sum(1 << b for b in TA_RESERVED_BITS)
    assert F.PC_FSC.reserved == sum(1 << b for b in FSC_RESERVED_BITS)
    assert set(PC_RULES) == {1, 2, 3, 4}


# ---------------------------------------------------------------------------
# PDT structure: PDI split, PD8 / PD17 / PD20 (GET_PC steps 1-10)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pid, expected",
    [
        (0xA5, (0xA5, 0, 0)),
        (0x1B3A5, (0xA5, 0x1B3, 0)),
        (0xBB3A5, (0xA5, 0x1B3, 0x5)),
        (0xFFFFF, (0xFF, 0x1FF, 0x7)),
        (0xE0000, (0, 0, 0x7)),
        (0x1FF00, (0, 0x1FF, 0)),
    ],
)
def test_pdi_split(pid: int, expected: Tuple[int, int, int]) -> None:
    """PDT figure: PDI[0] = process_id[7:0], PDI[1] = process_id[16:8], PDI[2] = [19:17]."""
    assert pdi(pid) == expected


PDI_PIDS = {
    PD8: [0x00, 0x5A, 0xA5, 0xFF],
    PD17: [0x00, 0x1B3A5, 0x1FFFF, 0x100, 0x0FF, 0x1FF00],
    PD20: [0x00, 0xBB3A5, 0xFFFFF, 0xE0000, 0x20000, 0x100, 0xFF],
}


@pytest.mark.parametrize(
    "mode, pid",
    [(m, p) for m, ps in PDI_PIDS.items() for p in ps],
    ids=lambda v: f"{v:#x}",
)
def test_get_pc_walks_every_pdi_field(mode: int, pid: int) -> None:
    """GET_PC steps 1-10: LEVELS = 1/2/3 for PD8/PD17/PD20, non-leaf entries at
    a + PDI[i] x 8, the 16-byte PC at a + PDI[0] x 16; a process_id differing in any
    PDI field in use finds a not-valid entry (266)."""
    s = System()
    s1 = s.stage1()
    data = s.page()
    s1.map(IOVA & ~0xFFF, data)
    pdtp = manual_pdt(s, mode, pid, pc_ta(pscid=3), s1.satp())
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdtp)
    expect_ok(s.t(DID, IOVA, process_id=pid), data | (IOVA & 0xFFF))
    # flip the lowest and highest bit of every PDI field the mode uses
    fields = [(0, 8), (8, 9), (17, 3)][: LEVELS[mode]]
    for lsb, width in fields:
        for bit in (lsb, lsb + width - 1):
            other = pid ^ (1 << bit)
            expect_fault(s.t(DID, IOVA, process_id=other), record(266, other))


@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
def test_pc_is_16_bytes_apart(mode: int) -> None:
    """Leaf PDT entry: consecutive PCs are 16 bytes apart (PDI[0] x 16), each its own
    ta/fsc pair."""
    sc = Scene(mode, pid=0x10)
    s1b = sc.s.stage1()
    other = sc.s.page()
    s1b.map(IOVA & ~0xFFF, other)
    sc.pdt.set_pc(0x11, fsc=s1b.satp(), pscid=9)
    assert sc.pdt.pc_addr(0x11) == sc.pdt.pc_addr(0x10) + 16
    expect_ok(sc.t(0x10), sc.out)
    expect_ok(sc.t(0x11), other | (IOVA & 0xFFF))
    expect_fault(sc.t(0x12), record(266, 0x12))


# ---------------------------------------------------------------------------
# P2IOVA step 7.3: process_id wider than pdtp.MODE supports
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
def test_step7_widest_process_id_accepted(mode: int) -> None:
    """P2IOVA step 7.3: the widest process_id of PD8 / PD17 / PD20 (8 / 17 / 20 bits)."""
    widest = (1 << PID_BITS[mode]) - 1
    sc = Scene(mode, pid=widest)
    expect_ok(sc.t(), sc.out)


@pytest.mark.parametrize("mode", [PD8, PD17], ids=["PD8", "PD17"])
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_step7_process_id_one_bit_wider_disallowed(mode: int, access: Access) -> None:
    """P2IOVA step 7.3: process_id wider than pdtp.MODE supports -> 260 (Unsupported Request),
    even when the PDT happens to hold a valid PC at the truncated index."""
    bits = PID_BITS[mode]
    sc = Scene(mode, pid=(1 << bits) - 1)
    for pid in (1 << bits, (1 << (bits + 1)) - 1):
        expect_fault(sc.t(pid, access), record(260, pid, access))


def test_step7_pd20_one_bit_wider_is_not_a_process_id() -> None:
    """P2IOVA step 7.3 for PD20: a 21-bit process_id cannot be expressed (process_id is 20
    bits); the API edge rejects it instead of translating."""
    sc = Scene(PD20, pid=0xFFFFF)
    with pytest.raises(ValueError):
        sc.t(1 << 20)


# ---------------------------------------------------------------------------
# P2IOVA steps 11-13: default process_id, no process_id, pdtp.MODE = Bare
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("guest", [False, True], ids=["host-pdt", "guest-pdt"])
def test_step11_dpe_without_process_id_uses_process_id_0(guest: bool) -> None:
    """P2IOVA step 11: DPE=1 and no process_id -> process_id 0 selects the PC."""
    sc = Scene(PD20, pid=0, guest=guest, tc=TC_DPE)
    expect_ok(sc.t(None), sc.out)
    # an explicit process_id is still used as is
    expect_fault(sc.t(5), record(266, 5))


def test_step11_dpe_default_process_id_faults_have_pv_0() -> None:
    """P2IOVA step 11 with faults: the PC of process_id 0 is used, but the request had no
    process_id, so the record has PV=0 (and PID=0, PRIV=0)."""
    sc = Scene(PD20, pid=0, tc=TC_DPE, flags=URWX | A | D)
    # PC 0 is not valid -> 266 with PV=0
    sc.write(sc.pdt.pc_addr(0), 0)
    expect_fault(sc.t(None), record(266, None))
    # PC 0 valid, its first-stage page faults -> 13 with PV=0
    sc.s.iommu.invalidate_pdt(DID, 0)
    sc.pdt.set_pc(0, fsc=sc.s1.satp(), pscid=1)
    sc.s1.unmap(IOVA & ~0xFFF)
    expect_fault(sc.t(None, Access.WRITE), record(15, None, Access.WRITE))


def test_step11_dpe_without_process_id_is_not_supervisor() -> None:
    """P2IOVA steps 11 and 15: a request without a process_id cannot request supervisor
    privilege (the privilege travels with the process_id), so PC.ta.ENS=0 does not stop the
    default process_id 0; the U=1 page is accessible and Response.priv is 0."""
    sc = Scene(PD20, pid=0, tc=TC_DPE, ens=False)
    rsp = sc.t(None, priv=True)
    expect_ok(rsp, sc.out)
    assert rsp.priv is False


@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_step12_no_dpe_no_process_id_first_stage_bare_identity(access: Access) -> None:
    """P2IOVA step 12: DPE=0, no process_id -> first stage Bare; with DC.iohgatp Bare the
    address is unchanged and the PDT is never read (an access fault on its root does not
    matter)."""
    sc = Scene(PD20, pid=0)
    sc.s.mem.inject(sc.pdt.root, 4096, rv.MemoryFault.ACCESS_FAULT)
    rsp = sc.t(None, access)
    expect_ok(rsp, IOVA)
    assert (rsp.r, rsp.w, rsp.x) == (True, True, True)


@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_step12_no_dpe_no_process_id_g_stage_only(access: Access) -> None:
    """P2IOVA step 12: DPE=0, no process_id -> first stage Bare, DC.iohgatp translates the
    IOVA as a GPA (step 19)."""
    sc = Scene(PD20, pid=0, guest=True)
    assert sc.g is not None
    target = sc.s.page()
    sc.g.map(IOVA & ~0xFFF, target, flags=URWX | A | D)
    sc.s.mem.inject(sc.spa_of(sc.pdt.root), 4096, rv.MemoryFault.ACCESS_FAULT)
    expect_ok(sc.t(None, access), target | (IOVA & 0xFFF))
    # the GPA not mapped in the G-stage: a guest-page fault on the IOVA itself (explicit
    # access: iotval2 bit 0 clear)
    sc2 = Scene(PD20, pid=0, guest=True)
    expect_fault(
        sc2.t(None, access), record(GUEST_PAGE_FAULT[access], None, access, iotval2=IOVA & ~3)
    )


@pytest.mark.parametrize("guest", [False, True], ids=["iohgatp-bare", "iohgatp-sv39x4"])
@pytest.mark.parametrize("priv", [False, True], ids=["user", "supervisor"])
def test_step13_pdtp_bare_with_process_id_first_stage_bare(guest: bool, priv: bool) -> None:
    """P2IOVA step 13: pdtp.MODE = Bare with a process_id -> first stage Bare and iohgatp from
    DC; no PC is located, so step 15 (PC.ta.ENS) does not apply to a supervisor request."""
    s = System()
    iohgatp = 0
    out = IOVA
    if guest:
        g = s.gstage(SV39)
        target = s.page()
        g.map(IOVA & ~0xFFF, target)
        iohgatp = g.satp(3)
        out = target | (IOVA & 0xFFF)
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, iohgatp=iohgatp, fsc=F.PDTP.encode(MODE=0, PPN=0))
    for pid in (0, 0x55, 0xFFFFF):
        rsp = s.t(DID, IOVA, Access.WRITE, process_id=pid, priv=priv)
        expect_ok(rsp, out)
        assert rsp.priv is priv


def test_step13_dpe_and_pdtp_bare() -> None:
    """P2IOVA steps 11 and 13: DPE=1 without a process_id and pdtp.MODE = Bare -> Bare."""
    s = System()
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV | TC_DPE, fsc=0)
    expect_ok(s.t(DID, IOVA), IOVA)


# ---------------------------------------------------------------------------
# GET_PC with DC.iohgatp Bare: PDT at SPAs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode, level", MODE_NONLEAF, ids=[_ml_id(p) for p in MODE_NONLEAF])
@pytest.mark.parametrize(
    "memfault, cause",
    [(rv.MemoryFault.ACCESS_FAULT, 265), (rv.MemoryFault.DATA_CORRUPTION, 269)],
    ids=["access-fault", "corruption"],
)
def test_get_pc_steps5_6_nonleaf_pdte_load_faults(
    mode: int, level: int, memfault: rv.MemoryFault, cause: int
) -> None:
    """GET_PC step 5 (PMA/PMP violation -> 265) and step 6 (poisoned data -> 269) on the
    non-leaf PDT entry at each level."""
    sc = Scene(mode, PIDS[mode])
    sc.s.mem.inject(sc.level_addr(level), 8, memfault)
    expect_fault(sc.t(), record(cause, sc.pid))
    # a neighbouring entry of the same table page is not affected
    sc.s.mem.clear_injections()
    expect_ok(sc.t(), sc.out)


@pytest.mark.parametrize("mode, level", MODE_NONLEAF, ids=[_ml_id(p) for p in MODE_NONLEAF])
def test_get_pc_step5_pdte_beyond_pas_is_access_fault(mode: int, level: int) -> None:
    """GET_PC step 5: a PDT page beyond capabilities.PAS fails the PMA check -> 265."""
    sc = Scene(mode, PIDS[mode], caps=rv.Capabilities.full(pas=40))
    sc.write(sc.level_addr(level), F.PDTE.encode(V=1, PPN=(1 << 40) >> 12))
    expect_fault(sc.t(), record(265, sc.pid))


@pytest.mark.parametrize("mode, level", MODE_NONLEAF, ids=[_ml_id(p) for p in MODE_NONLEAF])
@pytest.mark.parametrize("rsv", [0, *PDTE_RESERVED_BITS], ids=lambda b: f"rsv{b}")
def test_get_pc_step7_pdte_not_valid(mode: int, level: int, rsv: int) -> None:
    """GET_PC step 7: pdte.V == 0 -> 266 (checked before the reserved bits of step 8)."""
    sc = Scene(mode, PIDS[mode])
    addr = sc.level_addr(level)
    old = sc.space.read_u64(addr)
    sc.write(addr, (old & ~1) | (1 << rsv if rsv else 0))
    expect_fault(sc.t(), record(266, sc.pid))


@pytest.mark.parametrize("mode, level", MODE_NONLEAF, ids=[_ml_id(p) for p in MODE_NONLEAF])
@pytest.mark.parametrize("bit", PDTE_RESERVED_BITS)
def test_get_pc_step8_pdte_reserved_bits(mode: int, level: int, bit: int) -> None:
    """GET_PC step 8: a reserved bit set in a valid non-leaf pdte -> 267."""
    sc = Scene(mode, PIDS[mode])
    addr = sc.level_addr(level)
    sc.write(addr, sc.space.read_u64(addr) | (1 << bit))
    expect_fault(sc.t(), record(267, sc.pid))


@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
@pytest.mark.parametrize("offset", [0, 8], ids=["ta", "fsc"])
@pytest.mark.parametrize(
    "memfault, cause",
    [(rv.MemoryFault.ACCESS_FAULT, 265), (rv.MemoryFault.DATA_CORRUPTION, 269)],
    ids=["access-fault", "corruption"],
)
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_get_pc_step10_pc_load_faults(
    mode: int, offset: int, memfault: rv.MemoryFault, cause: int, access: Access
) -> None:
    """GET_PC step 10: the 16-byte PC read violates PMA/PMP -> 265, poisoned -> 269
    (whichever doubleword is hit; the cause does not depend on the access type)."""
    sc = Scene(mode, PIDS[mode])
    sc.s.mem.inject(sc.pdt.pc_addr(sc.pid) + offset, 8, memfault)
    expect_fault(sc.t(access=access), record(cause, sc.pid, access))


@pytest.mark.parametrize("mode", [PD8, PD20], ids=["PD8", "PD20"])
def test_get_pc_step10_pc_beyond_pas_is_access_fault(mode: int) -> None:
    """GET_PC step 10: a PC page beyond capabilities.PAS -> 265 (for PD8 the PDT root)."""
    caps = rv.Capabilities.full(pas=40)
    if mode == PD8:
        s = System(caps=caps)
        s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=F.PDTP.encode(MODE=PD8, PPN=(1 << 40) >> 12))
        expect_fault(s.t(DID, IOVA, process_id=0xA5), record(265, 0xA5))
        return
    sc = Scene(mode, PIDS[mode], caps=caps)
    sc.write(sc.level_addr(1), F.PDTE.encode(V=1, PPN=(1 << 40) >> 12))
    expect_fault(sc.t(), record(265, sc.pid))


@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
@pytest.mark.parametrize(
    "ta, fsc",
    [
        (0, 0),
        (pc_ta(pscid=0x12, ens=True, sum_=True, v=0), 0),
        (0xFFFF_FFFF_FFFF_FFFE, 0xFFFF_FFFF_FFFF_FFFF),  # everything but V: don't care
        (pc_ta(v=0), F.PC_FSC.encode(MODE=3)),
    ],
    ids=["zero", "fields-v0", "all-but-v", "bad-mode-v0"],
)
def test_get_pc_step11_pc_not_valid(mode: int, ta: int, fsc: int) -> None:
    """GET_PC step 11: PC.ta.V == 0 -> 266; all other PC bits are don't care."""
    sc = Scene(mode, PIDS[mode])
    pc = sc.pdt.pc_addr(sc.pid)
    sc.write(pc, ta)
    sc.write(pc + 8, fsc)
    expect_fault(sc.t(), record(266, sc.pid))
    expect_fault(sc.t(priv=True), record(266, sc.pid, priv=True))


# ---------------------------------------------------------------------------
# GET_PC step 12: Process-context configuration checks (PC_MISCONFIG)
# ---------------------------------------------------------------------------
def _caps(**kw: Any) -> rv.Capabilities:
    return rv.Capabilities.full(**kw)


def _pc_check(
    ta: int,
    fsc: int,
    rule: int,
    sxl: bool = False,
    caps: Optional[rv.Capabilities] = None,
    params: Optional[Dict[str, Any]] = None,
) -> None:
    """Check pc_misconfigured's rule number and the translation outcome (267, or a
    successful first-stage lookup when the PC is fine)."""
    kw = dict(params or {})
    if sxl:
        kw["gxl_writable"] = True  # DC.tc.SXL=1 is legal with fctl.GXL writable
    s = System(caps=caps, params=rv.IommuParams(**kw))
    pdt = s.pdt(mode=PD8)
    pid = 0x3C
    pdt.set_pc(pid, fsc=fsc, ta=ta)
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV | (TC_SXL if sxl else 0), fsc=pdt.pdtp())
    assert pc_misconfigured(s.iommu, ta, fsc, 1 if sxl else 0) == rule
    rsp = s.t(DID, IOVA32 if sxl else IOVA, process_id=pid)
    iova = IOVA32 if sxl else IOVA
    if rule:
        expect_fault(rsp, record(267, pid, iova=iova))
    elif F.PC_FSC.MODE.get(fsc) == 0:
        expect_ok(rsp, iova)  # first stage Bare
    else:
        # the PC is used: its (empty) first-stage table at PC.fsc.PPN gives a page fault
        expect_fault(rsp, record(13, pid, iova=iova))


@pytest.mark.parametrize("bit", TA_RESERVED_BITS)
def test_pc_check_rule1_ta_reserved_bits(bit: int) -> None:
    """PC_MISCONFIG rule 1: a reserved bit of PC.ta set -> 267."""
    _pc_check(pc_ta(pscid=5) | (1 << bit), F.PC_FSC.encode(MODE=SV39, PPN=0x80000), 1)


@pytest.mark.parametrize("bit", FSC_RESERVED_BITS)
@pytest.mark.parametrize("sxl", [False, True], ids=["sxl0", "sxl1"])
def test_pc_check_rule1_fsc_reserved_bits(bit: int, sxl: bool) -> None:
    """PC_MISCONFIG rule 1: a reserved bit of PC.fsc set -> 267."""
    _pc_check(pc_ta(pscid=5), F.PC_FSC.encode(MODE=8, PPN=0x80000) | (1 << bit), 1, sxl=sxl)


@pytest.mark.parametrize(
    "width, pscid, rule",
    [(8, 0xFF, 0), (8, 0x100, 1), (8, 0x80000, 1), (1, 1, 0), (1, 2, 1), (20, 0xFFFFF, 0)],
)
def test_pc_check_rule1_pscid_wider_than_implemented(width: int, pscid: int, rule: int) -> None:
    """PC_MISCONFIG rule 1: PSCID bits beyond IommuParams(pscid_width) are not implemented,
    i.e. reserved -> 267."""
    _pc_check(pc_ta(pscid=pscid), F.PC_FSC.encode(MODE=SV39), rule, params={"pscid_width": width})


@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5, 6, 7, 11, 12, 13])
def test_pc_check_rule2_invalid_mode_sxl0(mode: int) -> None:
    """PC_MISCONFIG rule 2 with DC.tc.SXL=0: PC.fsc.MODE 1-7 and 11-13 are reserved
    encodings -> 267."""
    _pc_check(pc_ta(), F.PC_FSC.encode(MODE=mode, PPN=0x80000), 2)


@pytest.mark.parametrize("mode", [14, 15])
def test_pc_check_custom_mode_sxl0(mode: int) -> None:
    """PC_MISCONFIG with DC.tc.SXL=0: MODE 14-15 are designated for custom use; an IOMMU
    without custom modes cannot use them -> 267 (rule 2 or 3: which one is not specified)."""
    s = System()
    assert pc_misconfigured(s.iommu, pc_ta(), F.PC_FSC.encode(MODE=mode), 0) in (2, 3)
    pdt = s.pdt(mode=PD8)
    pdt.set_pc(7, fsc=F.PC_FSC.encode(MODE=mode))
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    expect_fault(s.t(DID, IOVA, process_id=7), record(267, 7))


@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15])
def test_pc_check_rule2_invalid_mode_sxl1(mode: int) -> None:
    """PC_MISCONFIG rule 2 with DC.tc.SXL=1: only Bare and Sv32 (8) are valid encodings;
    Sv39/Sv48/Sv57 encodings included -> 267."""
    _pc_check(pc_ta(), F.PC_FSC.encode(MODE=mode, PPN=0x80000), 2, sxl=True)


@pytest.mark.parametrize(
    "mode, caps, rule",
    [
        (10, {"sv57": False}, 3),
        (9, {"sv57": False}, 0),
        (9, {"sv48": False, "sv57": False}, 3),
        (10, {"sv48": False, "sv57": False}, 3),
        (8, {"sv48": False, "sv57": False}, 0),
        (8, {"sv39": False, "sv48": False, "sv57": False}, 3),
        (9, {"sv39": False, "sv48": False, "sv57": False}, 3),
        (8, {}, 0),
        (10, {}, 0),
    ],
)
def test_pc_check_rule3_unsupported_mode_sxl0(mode: int, caps: Dict[str, Any], rule: int) -> None:
    """PC_MISCONFIG rule 3: DC.tc.SXL=0 and PC.fsc.MODE is Sv39/Sv48/Sv57 without the
    capability -> 267; supported modes pass."""
    _pc_check(pc_ta(), F.PC_FSC.encode(MODE=mode, PPN=0x80000), rule, caps=_caps(**caps))


@pytest.mark.parametrize("sv32, rule", [(False, 4), (True, 0)])
def test_pc_check_rule4_unsupported_mode_sxl1(sv32: bool, rule: int) -> None:
    """PC_MISCONFIG rule 4: DC.tc.SXL=1 and PC.fsc.MODE = Sv32 without capabilities.Sv32."""
    _pc_check(
        pc_ta(), F.PC_FSC.encode(MODE=SV32, PPN=0x80000), rule, sxl=True, caps=_caps(sv32=sv32)
    )


def test_pc_check_first_rule_wins() -> None:
    """PC_MISCONFIG: pc_misconfigured reports the first rule broken (1 before 2 before 3)."""
    io = System(caps=_caps(sv57=False)).iommu
    assert pc_misconfigured(io, pc_ta() | 1 << 40, F.PC_FSC.encode(MODE=3), 0) == 1
    assert pc_misconfigured(io, pc_ta(), F.PC_FSC.encode(MODE=3) | 1 << 50, 0) == 1
    assert pc_misconfigured(io, pc_ta(), F.PC_FSC.encode(MODE=3), 0) == 2
    assert pc_misconfigured(io, pc_ta(), F.PC_FSC.encode(MODE=10), 0) == 3
    assert pc_misconfigured(io, pc_ta(ens=True, sum_=True, pscid=0xFFFFF), 0, 0) == 0


@pytest.mark.parametrize("mode", [0, SV39, 9, 10], ids=["bare", "sv39", "sv48", "sv57"])
def test_pc_check_valid_modes_translate(mode: int) -> None:
    """GET_PC step 13 / P2IOVA step 16: a PC passing the checks is used: fsc.MODE Bare ->
    the IOVA unchanged, Sv39/48/57 -> its first-stage table."""
    s = System()
    pdt = s.pdt(mode=PD17)
    if mode:
        s1 = s.stage1(mode=mode)
        data = s.page()
        s1.map(IOVA & ~0xFFF, data)
        fsc, out = s1.satp(), data | (IOVA & 0xFFF)
    else:
        fsc, out = 0, IOVA
    pdt.set_pc(0x1ABCD, fsc=fsc, pscid=0x777)
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    expect_ok(s.t(DID, IOVA, Access.WRITE, process_id=0x1ABCD), out)


def test_pc_sv32_with_sxl1_translates() -> None:
    """PC_MISCONFIG rule 4 not broken: DC.tc.SXL=1 with PC.fsc.MODE = Sv32 walks a 32-bit
    first-stage table."""
    sc = Scene(PD20, sxl=True, params=rv.IommuParams(gxl_writable=True))
    expect_ok(sc.t(addr=IOVA32), sc.spa | (IOVA32 & 0xFFF))
    # Sv32 with SXL=1: IOVA bits beyond 31 -> page fault
    expect_fault(sc.t(addr=IOVA), record(13, sc.pid))


# ---------------------------------------------------------------------------
# GET_PC with DC.iohgatp not Bare: PDT in guest-physical memory
# ---------------------------------------------------------------------------
def _gpte(sc: Scene, gpa: int) -> int:
    """SPA of the G-stage leaf PTE mapping the page of ``gpa``."""
    assert sc.g is not None
    return sc.g.pte_addr(gpa & ~0xFFF, 0)


@pytest.mark.parametrize("mode, level", MODE_LEVELS, ids=[_ml_id(p) for p in MODE_LEVELS])
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_get_pc_step3_guest_page_fault_on_pdt_address(
    mode: int, level: int, access: Access
) -> None:
    """GET_PC step 3: a G-stage fault translating a PDT entry / PC address -> guest-page
    fault of the ORIGINAL access type (20/21/23), iotval2 = GPA[63:2] with bit 0 = 1
    (implicit access for first-stage translation) and bit 1 = 0 (a read)."""
    sc = Scene(mode, PIDS[mode], guest=True)
    assert sc.g is not None
    gpa = sc.level_addr(level)
    sc.g.unmap(gpa & ~0xFFF)
    expect_fault(
        sc.t(access=access),
        record(GUEST_PAGE_FAULT[access], sc.pid, access, iotval2=(gpa & ~3) | 1),
    )


@pytest.mark.parametrize("mode, level", MODE_LEVELS, ids=[_ml_id(p) for p in MODE_LEVELS])
@pytest.mark.parametrize(
    "flags",
    [U | X | A | D, R | W | X | A | D, U | R | W | X],
    ids=["execute-only", "no-U", "no-A-GADE0"],
)
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_get_pc_step3_pdt_access_is_implicit_read_with_u(
    mode: int, level: int, flags: int, access: Access
) -> None:
    """GET_PC step 3 / "treated as implicit read memory accesses by the second stage": the
    G-stage leaf of a PDT page needs R (X is not enough even for an execute request), U
    (G-stage accesses are user accesses) and A (GADE=0) -> guest-page fault."""
    sc = Scene(mode, PIDS[mode], guest=True)
    gpa = sc.level_addr(level)
    sc.space.back(gpa, sc.spa_of(gpa), flags=flags)
    expect_fault(
        sc.t(access=access),
        record(GUEST_PAGE_FAULT[access], sc.pid, access, iotval2=(gpa & ~3) | 1),
    )


@pytest.mark.parametrize("mode, level", MODE_LEVELS, ids=[_ml_id(p) for p in MODE_LEVELS])
def test_get_pc_step3_pdt_access_needs_only_read(mode: int, level: int) -> None:
    """GET_PC step 3: PDT accesses are reads: a read-only (U, R, A) G-stage page holding
    the PDT serves a write request; with GADE=1 and A=0 the IOMMU sets A but not D in the
    G-stage PTE of the PDT page."""
    sc = Scene(mode, PIDS[mode], guest=True, tc=TC_GADE)
    gpa = sc.level_addr(level)
    sc.space.back(gpa, sc.spa_of(gpa), flags=U | R | A)
    expect_ok(sc.t(access=Access.WRITE), sc.out)
    sc2 = Scene(mode, PIDS[mode], guest=True, tc=TC_GADE)
    gpa = sc2.level_addr(level)
    sc2.space.back(gpa, sc2.spa_of(gpa), flags=U | R)
    expect_ok(sc2.t(access=Access.WRITE), sc2.out)
    gpte = sc2.s.mem.read_u64(_gpte(sc2, gpa))
    assert gpte & A and not gpte & D


@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_get_pc_step3_pdt_gpa_beyond_g_stage_width(mode: int, access: Access) -> None:
    """GET_PC step 3: a PDT root GPA wider than Sv39x4 (41 bits) -> guest-page fault of the
    original access type, iotval2 = GPA | 1."""
    sc = Scene(mode, PIDS[mode], guest=True)
    root = 1 << 41
    sc.s.ddt.set_dc(
        DID, tc=sc.dc["tc"], iohgatp=sc.dc["iohgatp"], fsc=F.PDTP.encode(MODE=mode, PPN=root >> 12)
    )
    p = pdi(sc.pid)
    gpa = root + (p[LEVELS[mode] - 1] * 8 if mode != PD8 else p[0] * 16)
    expect_fault(
        sc.t(access=access),
        record(GUEST_PAGE_FAULT[access], sc.pid, access, iotval2=gpa | 1),
    )


@pytest.mark.parametrize("mode, level", MODE_LEVELS, ids=[_ml_id(p) for p in MODE_LEVELS])
@pytest.mark.parametrize("glevel", [0, 1, 2], ids=["gpte-leaf", "gpte-L1", "gpte-root"])
@pytest.mark.parametrize(
    "memfault, cause",
    [(rv.MemoryFault.ACCESS_FAULT, 265), (rv.MemoryFault.DATA_CORRUPTION, 269)],
    ids=["access-fault", "corruption"],
)
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_get_pc_step3_g_stage_pte_load_fault(
    mode: int, level: int, glevel: int, memfault: rv.MemoryFault, cause: int, access: Access
) -> None:
    """GET_PC: "An access fault in the second stage is reported as 'PDT entry load access
    fault' (265)"; poisoned G-stage PTE data -> "PDT data corruption" (269); whatever the
    access type, at every PDT level and every G-stage level."""
    sc = Scene(mode, PIDS[mode], guest=True)
    assert sc.g is not None
    gpa = sc.level_addr(level)
    if glevel:
        # a non-leaf G-stage PTE: shared by all PDT pages, so the first PDT read faults;
        # point this PDT level's page at a G-stage subtree of its own to isolate it
        new_gpa = (0x40_0000_0000 * glevel) | (gpa & 0xFFF)
        copy_page(sc, gpa & ~0xFFF, new_gpa & ~0xFFF)
        relink(sc, level, new_gpa)
        gpa = new_gpa
    sc.s.mem.inject(sc.g.pte_addr(gpa & ~0xFFF, glevel), 8, memfault)
    expect_fault(sc.t(access=access), record(cause, sc.pid, access))


def copy_page(sc: Scene, old_gpa: int, new_gpa: int) -> None:
    """Map the guest page ``new_gpa`` to the host page behind ``old_gpa`` (same content)."""
    sc.space.back(new_gpa, sc.spa_of(old_gpa))


def relink(sc: Scene, level: int, new_gpa: int) -> None:
    """Make GET_PC reach the PDT page of ``level`` through ``new_gpa`` instead."""
    page = new_gpa & ~0xFFF
    mode = sc.mode
    if level == LEVELS[mode] - 1:  # the root: DC.fsc.pdtp
        sc.s.ddt.set_dc(
            DID,
            tc=sc.dc["tc"],
            iohgatp=sc.dc["iohgatp"],
            fsc=F.PDTP.encode(MODE=mode, PPN=page >> 12),
        )
    else:  # the non-leaf entry one level up
        sc.write(sc.level_addr(level + 1), F.PDTE.encode(V=1, PPN=page >> 12))


@pytest.mark.parametrize("mode, level", MODE_LEVELS, ids=[_ml_id(p) for p in MODE_LEVELS])
def test_get_pc_guest_relinked_pdt_still_translates(mode: int, level: int) -> None:
    """Sanity for the G-stage PTE fault test: the relinked PDT translates without faults."""
    sc = Scene(mode, PIDS[mode], guest=True)
    gpa = sc.level_addr(level)
    new_gpa = 0x80_0000_0000 + (gpa & 0xFFF)
    copy_page(sc, gpa & ~0xFFF, new_gpa & ~0xFFF)
    relink(sc, level, new_gpa)
    expect_ok(sc.t(), sc.out)


@pytest.mark.parametrize("mode, level", MODE_LEVELS, ids=[_ml_id(p) for p in MODE_LEVELS])
@pytest.mark.parametrize(
    "memfault, cause",
    [(rv.MemoryFault.ACCESS_FAULT, 265), (rv.MemoryFault.DATA_CORRUPTION, 269)],
    ids=["access-fault", "corruption"],
)
def test_get_pc_guest_pdt_entry_load_fault(
    mode: int, level: int, memfault: rv.MemoryFault, cause: int
) -> None:
    """GET_PC steps 5, 6 and 10 with a guest PDT: the entry itself (at its translated SPA)
    faults -> 265 / 269."""
    sc = Scene(mode, PIDS[mode], guest=True)
    sc.s.mem.inject(sc.spa_of(sc.level_addr(level)), 8, memfault)
    expect_fault(sc.t(access=Access.WRITE), record(cause, sc.pid, Access.WRITE))


@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_g_stage_pte_fault_for_first_stage_pte_is_not_a_pdt_fault(access: Access) -> None:
    """Contrast: an access fault on the G-stage PTE while translating a first-stage PTE
    address is an access fault of the original access type (1/5/7), not 265."""
    sc = Scene(PD8, PIDS[PD8], guest=True)
    root_gpa = sc.s1.root
    gpa = 0x60_0000_0000
    copy_page(sc, root_gpa, gpa)
    sc.pdt.set_pc(sc.pid, fsc=F.PC_FSC.encode(MODE=SV39, PPN=gpa >> 12), pscid=0x2A)
    assert sc.g is not None
    sc.s.mem.inject(sc.g.pte_addr(gpa, 0), 8, rv.MemoryFault.ACCESS_FAULT)
    expected = {Access.EXECUTE: 1, Access.READ: 5, Access.WRITE: 7}[access]
    expect_fault(sc.t(access=access), record(expected, sc.pid, access))


@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_get_pc_guest_pdt_translates(mode: int, access: Access) -> None:
    """GET_PC steps 1-13 with DC.iohgatp Sv39x4: the PDT, the first-stage table and the data
    are all in guest memory."""
    sc = Scene(mode, PIDS[mode], guest=True)
    expect_ok(sc.t(access=access), sc.out)


# ---------------------------------------------------------------------------
# P2IOVA steps 14-16: ENS, SUM, U bit, PSCID
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
@pytest.mark.parametrize("guest", [False, True], ids=["host-pdt", "guest-pdt"])
def test_step15_supervisor_without_ens_disallowed(access: Access, guest: bool) -> None:
    """P2IOVA step 15: supervisor privilege requested, PC.ta.ENS = 0 -> 260 (UR); the same
    PC serves user requests."""
    sc = Scene(PD20, guest=guest, ens=False, flags=URWX | A | D)
    expect_fault(sc.t(access=access, priv=True), record(260, sc.pid, access, priv=True))
    expect_ok(sc.t(access=access), sc.out)


@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_step15_supervisor_with_ens_allowed(access: Access) -> None:
    """P2IOVA step 15: PC.ta.ENS = 1 allows supervisor requests (to a U=0 page)."""
    sc = Scene(PD20, ens=True, flags=R | W | X | A | D)
    rsp = sc.t(access=access, priv=True)
    expect_ok(rsp, sc.out)
    assert rsp.priv is True


@pytest.mark.parametrize("access", [Access.READ, Access.WRITE])
@pytest.mark.parametrize("sum_", [False, True], ids=["SUM0", "SUM1"])
def test_step16_sum_supervisor_access_to_user_page(access: Access, sum_: bool) -> None:
    """PC.ta.SUM: a supervisor read/write to a U=1 page faults with SUM=0 and succeeds
    with SUM=1."""
    sc = Scene(PD20, ens=True, sum_=sum_, flags=URWX | A | D)
    rsp = sc.t(access=access, priv=True)
    if sum_:
        expect_ok(rsp, sc.out)
    else:
        expect_fault(rsp, record(PAGE_FAULT[access], sc.pid, access, priv=True))


@pytest.mark.parametrize("sum_", [False, True], ids=["SUM0", "SUM1"])
def test_step16_supervisor_execute_of_user_page_faults_regardless_of_sum(sum_: bool) -> None:
    """PC.ta.SUM: supervisor execute of a U=1 page faults (12) regardless of SUM."""
    sc = Scene(PD20, ens=True, sum_=sum_, flags=URWX | A | D)
    expect_fault(
        sc.t(access=Access.EXECUTE, priv=True), record(12, sc.pid, Access.EXECUTE, priv=True)
    )
    # the same page is executable for a user request
    expect_ok(sc.t(access=Access.EXECUTE), sc.out)


@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
@pytest.mark.parametrize("sum_", [False, True], ids=["SUM0", "SUM1"])
def test_step16_user_access_to_supervisor_page_faults(access: Access, sum_: bool) -> None:
    """P2IOVA step 17 with the PC of step 16: a user request to a U=0 page -> page fault."""
    sc = Scene(PD20, ens=True, sum_=sum_, flags=R | W | X | A | D)
    expect_fault(sc.t(access=access), record(PAGE_FAULT[access], sc.pid, access))
    expect_ok(sc.t(access=access, priv=True), sc.out)


def _hpm_pscid_counter(s: System, x: int, pscid: int) -> None:
    """iohpmevtX: count First-stage Page Table Walks (7) with IDT=1 and PSCV for ``pscid``."""
    evt = F.IOHPMEVT.encode(eventID=7, IDT=1, PV_PSCV=1, PID_PSCID=pscid)
    s.iommu.mmio_write(rv.REG.iohpmevt(x), evt)
    s.iommu.mmio_write(rv.REG.iohpmctr(x), 0)


def test_step16_pscid_from_pc() -> None:
    """P2IOVA step 16: PSCID is PC.ta.PSCID (not DC.ta.PSCID), observed through HPM
    first-stage walk counters filtered by PSCID (IDT=1, PSCV=1)."""
    sc = Scene(PD20, pid=0x11, pscid=0x111)
    s = sc.s
    sc.pdt.set_pc(0x22, fsc=sc.s1.satp(), pscid=0x222)
    # DC.ta.PSCID is ignored when DC.tc.PDTV is 1
    s.ddt.set_dc(DID, tc=sc.dc["tc"], fsc=sc.dc["fsc"], ta=F.DC_TA.encode(PSCID=0x333))
    s.iommu.mmio_write(rv.REG.IOCOUNTINH, 0, size=4)
    for x, p in ((1, 0x111), (2, 0x222), (3, 0x333)):
        _hpm_pscid_counter(s, x, p)

    def counts() -> Tuple[int, int, int]:
        return tuple(s.iommu.mmio_read(rv.REG.iohpmctr(x)) for x in (1, 2, 3))  # type: ignore

    expect_ok(sc.t(0x11), sc.out)
    assert counts() == (1, 0, 0)
    expect_ok(sc.t(0x22), sc.out)
    assert counts() == (1, 1, 0)


# ---------------------------------------------------------------------------
# PC byte order: DC.tc.SBE
# ---------------------------------------------------------------------------
BE_PARAMS = rv.IommuParams(be_writable=True)


@pytest.mark.parametrize("mode", [PD8, PD17, PD20], ids=["PD8", "PD17", "PD20"])
@pytest.mark.parametrize("fctl_be", [0, 1], ids=["fctl.BE0", "fctl.BE1"])
@pytest.mark.parametrize("sbe", [False, True], ids=["SBE0", "SBE1"])
@pytest.mark.parametrize("guest", [False, True], ids=["host-pdt", "guest-pdt"])
def test_pc_byte_order_follows_sbe(mode: int, fctl_be: int, sbe: bool, guest: bool) -> None:
    """Leaf PDT entry: "The byte order of each of the doublewords [of the PC] ... is the
    endianness as determined by DC.tc.SBE"; the PDT entries too (endianness table), while
    the DDT and G-stage PTEs follow fctl.BE.  The same PDT written in the other byte order is
    not valid (266: V reads as 0)."""
    caps = rv.Capabilities.full()
    assert caps.end
    sc = Scene(mode, PIDS[mode], guest=guest, caps=caps, params=BE_PARAMS, fctl=fctl_be, sbe=sbe)
    assert sc.s.iommu.mmio_read(rv.REG.FCTL) & 1 == fctl_be
    expect_ok(sc.t(), sc.out)
    wrong = Scene(
        mode,
        PIDS[mode],
        guest=guest,
        caps=caps,
        params=BE_PARAMS,
        fctl=fctl_be,
        sbe=sbe,
        pdt_big=not sbe,
    )
    expect_fault(wrong.t(), record(266, wrong.pid))


# ---------------------------------------------------------------------------
# PDT cache and IODIR.INVAL_PDT
# ---------------------------------------------------------------------------
def test_pdt_cache_stale_until_invalidate_pdt() -> None:
    """ "Caching in-memory data structures": a cached PC stays in use after memory changes
    until invalidated; Iommu.invalidate_pdt(device_id, process_id) (IODIR.INVAL_PDT) drops
    exactly that PC.  (IOTLB off so that only the PDT cache can hold the old PC.)"""
    sc = Scene(PD20, PIDS[PD20], params=rv.IommuParams(iotlb_size=0))
    s, pid = sc.s, sc.pid
    expect_ok(sc.t(), sc.out)
    # a new first-stage table mapping IOVA elsewhere, under a new PSCID
    s1b = s.stage1()
    other = s.page()
    s1b.map(IOVA & ~0xFFF, other)
    sc.pdt.set_pc(pid, fsc=s1b.satp(), pscid=0x99)
    expect_ok(sc.t(), sc.out)  # stale
    s.iommu.invalidate_pdt(DID, pid ^ 1)
    s.iommu.invalidate_pdt(DID ^ 1, pid)
    expect_ok(sc.t(), sc.out)  # other (device_id, process_id): still stale
    s.iommu.invalidate_pdt(DID, pid)
    expect_ok(sc.t(), other | (IOVA & 0xFFF))  # fresh
    # now make the PC invalid: stale until invalidated, then 266
    sc.write(sc.pdt.pc_addr(pid), 0)
    expect_ok(sc.t(), other | (IOVA & 0xFFF))
    s.iommu.invalidate_pdt(DID, pid)
    expect_fault(sc.t(), record(266, pid))


def test_pdt_cache_nonleaf_change_needs_invalidation() -> None:
    """A cached PC does not re-walk the non-leaf PDT entries; after invalidate_pdt a
    non-valid root entry is seen (266)."""
    sc = Scene(PD20, PIDS[PD20], params=rv.IommuParams(iotlb_size=0))
    expect_ok(sc.t(), sc.out)
    sc.write(sc.level_addr(2), 0)
    expect_ok(sc.t(), sc.out)
    sc.s.iommu.invalidate_pdt(DID, sc.pid)
    expect_fault(sc.t(), record(266, sc.pid))


def test_pdt_cache_off_sees_changes_at_once() -> None:
    """IommuParams(pdt_cache_size=0): every request walks the PDT."""
    sc = Scene(PD17, PIDS[PD17], params=rv.IommuParams(iotlb_size=0, pdt_cache_size=0))
    expect_ok(sc.t(), sc.out)
    sc.write(sc.pdt.pc_addr(sc.pid), pc_ta(ens=False, v=0))
    expect_fault(sc.t(), record(266, sc.pid))


# ---------------------------------------------------------------------------
# DTF: PDT faults are not reported when DC.tc.DTF = 1
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setup, cause",
    [("pdte-access", 265), ("pc-invalid", 266), ("pc-rsv", 267), ("pc-poison", 269), ("ens", 260)],
)
def test_pdt_faults_not_reported_with_dtf(setup: str, cause: int) -> None:
    """Fault-queue CAUSE table, "Reported if DTF is 1?" = No for 260, 265, 266, 267, 269:
    the request still fails, but nothing is queued."""
    sc = Scene(PD20, PIDS[PD20], tc=TC_DTF)
    pc = sc.pdt.pc_addr(sc.pid)
    if setup == "pdte-access":
        sc.s.mem.inject(sc.level_addr(1), 8, rv.MemoryFault.ACCESS_FAULT)
    elif setup == "pc-invalid":
        sc.write(pc, 0)
    elif setup == "pc-rsv":
        sc.write(pc, sc.space.read_u64(pc) | 1 << 63)
    elif setup == "pc-poison":
        sc.s.mem.inject(pc, 16, rv.MemoryFault.DATA_CORRUPTION)
    expect_fault(
        sc.t(priv=setup == "ens"), record(cause, sc.pid, priv=setup == "ens"), reported=False
    )


# ---------------------------------------------------------------------------
# Robustness: guest-controlled PDT contents
# ---------------------------------------------------------------------------
ALLOWED_CAUSES = {1, 5, 7, 12, 13, 15, 20, 21, 23, 260, 265, 266, 267, 269, 274}
U64 = st.integers(0, (1 << 64) - 1)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    mode=st.sampled_from([PD8, PD17, PD20]),
    guest=st.booleans(),
    path_pid=st.integers(0, (1 << 20) - 1),
    pid=st.one_of(st.none(), st.integers(0, (1 << 20) - 1)),
    words=st.lists(st.one_of(st.none(), U64), min_size=5, max_size=5),
    tc=st.sets(st.sampled_from([TC_DPE, TC_SBE, TC_SXL, TC_GADE])),
    access=st.sampled_from(list(Access)),
    priv=st.booleans(),
    addr=st.one_of(st.just(IOVA), st.just(IOVA32), st.integers(0, (1 << 64) - 1)),
)
def test_random_pdt_contents_never_raise(
    mode: int,
    guest: bool,
    path_pid: int,
    pid: Optional[int],
    words: list[Optional[int]],
    tc: set[int],
    access: Access,
    priv: bool,
    addr: int,
) -> None:
    """Guest-controlled PDT entries / PC doublewords (random, along a real PDT path) and
    random process_ids: translate never raises and every cause is an rv.Cause from the set
    the P2IOVA/GET_PC steps can report."""
    tcv = sum(tc)
    sc = Scene(
        mode,
        path_pid & ((1 << PID_BITS[mode]) - 1),
        guest=guest,
        tc=tcv & ~TC_SBE,
        caps=rv.Capabilities.full(),
        params=rv.IommuParams(be_writable=True, gxl_writable=True),
        sbe=bool(tcv & TC_SBE),
        sxl=bool(tcv & TC_SXL),
    )
    levels = levels_of(mode)
    addrs = [sc.level_addr(lv) for lv in levels if lv]
    pc = sc.pdt.pc_addr(sc.pid)
    addrs += [pc, pc + 8]
    for a, w in zip(addrs, words[: len(addrs)], strict=True):
        if w is not None:
            sc.write(a, w)
    if guest and words[4] is not None:
        sc.s.mem.write_u64(_gpte(sc, pc), words[4], sc.s.be)
    rsp = sc.s.t(DID, addr, access, process_id=pid, priv=priv, length=1)
    if rsp.fault is None:
        assert rsp.status == OK
        return
    rec = rsp.fault
    assert rec.cause in {int(c) for c in Cause}
    assert rv.Cause(rec.cause) in ALLOWED_CAUSES, rec
    assert rsp.status == (UR if rec.cause in UR_CAUSES else CA)
    assert rec.pv == (pid is not None)
    assert rec.process_id == (pid if pid is not None else 0)
    assert rec.iotval == addr
    assert rec.device_id == DID


# GET_PC step 12: locate_pc tests the common case first (no reserved bit, a supported
# mode) and runs the rules only otherwise; the outcome must be the rule-by-rule one
_PC_CAPS = [{}, {"sv57": False}, {"sv39": False, "sv48": False, "sv57": False}, {"sv32": False}]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    caps=st.sampled_from(_PC_CAPS),
    pscid_width=st.sampled_from([20, 20, 1, 9, 19]),
    big=st.booleans(),
    sxl=st.sampled_from([0, 1]),
    pscid=st.integers(0, 0xFFFFF),
    ta_low=st.integers(0, 0xFFF),
    mode=st.integers(0, 15),
    flip=st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, 63))),
    pid=st.integers(0, 0xFF),
)
def test_locate_pc_outcome_is_the_rule_by_rule_outcome(
    caps: Dict[str, Any],
    pscid_width: int,
    big: bool,
    sxl: int,
    pscid: int,
    ta_low: int,
    mode: int,
    flip: Optional[Tuple[bool, int]],
    pid: int,
) -> None:
    """GET_PC step 12: whatever the configuration and the PC, locate_pc returns the
    PC exactly when pc_misconfigured finds no rule broken, and otherwise stops with
    "PDT entry misconfigured" (267) and the reason of the first rule broken."""
    from riscv_iommu._fault import Fault
    from riscv_iommu.pdt import locate_pc, pc_rule_why

    s = System(params=rv.IommuParams(pscid_width=pscid_width), **caps)
    io = s.iommu
    root = s.page()
    pc_ta = (pscid << F.PC_TA.PSCID.lsb) | ta_low | F.PC_TA.V.mask
    pc_fsc = F.PC_FSC.encode(MODE=mode, PPN=0x80123)
    if flip is not None:
        if flip[0]:
            pc_ta ^= 1 << flip[1]
        else:
            pc_fsc ^= 1 << flip[1]
    s.mem.write_u64(root + pid * 16, pc_ta, big)
    s.mem.write_u64(root + pid * 16 + 8, pc_fsc, big)
    pdtp = F.PDTP.encode(MODE=PD8, PPN=root >> 12)
    rule = pc_misconfigured(io, pc_ta, pc_fsc, sxl) if pc_ta & F.PC_TA.V.mask else -1
    try:
        got = locate_pc(io, pdtp, pid, 0, big, sxl, 0, 0)
    except Fault as f:
        if rule < 0:
            assert f.cause == 266
        else:
            assert rule, f.why
            assert (f.cause, f.why) == (267, pc_rule_why(io, pc_ta, pc_fsc, rule))
    else:
        assert rule == 0
        assert got == (pc_ta, pc_fsc, -1, -1, -1, -1)
