"""The fault/event queue (FQ) and the page-request queue (PQ) mechanics.

Spec: iommu_in_memory_queues.adoc, "Fault/Event-Queue (FQ)" (record format, fqh/fqt,
fqof/fqmf, fip), the CAUSE table ("Reported if DTF is 1?" column), the TTYP table;
"Page-Request-Queue (PQ)"; iommu_registers.adoc "fqb/fqh/fqt/fqcsr", "pqcsr", "ipsr";
iommu_data_structures.adoc "PCIe ATS translation request handling" (no record for the
faults answered with Success R=W=0).

Everything is programmed through mmio_write / memory as a driver would; records are
read back from memory.
"""

from __future__ import annotations

from typing import Callable, Literal, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    PD20,
    SV39,
    TC_DTF,
    TC_EN_ATS,
    TC_PDTV,
    TC_SBE,
    TC_V,
    System,
    fault,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import RW, A, D, MsiPageTable, PageTable, ProcessDirectory
from swhelpers import (
    FQ_ENTRY,
    PQ_ENTRY,
    REG,
    fq_records,
    fqcsr,
    ipsr,
    queue_base,
    setup_fq,
    setup_pq,
)

FQOF = F.FQCSR.fqof.mask
FQMF = F.FQCSR.fqmf.mask
FQEN = F.FQCSR.fqen.mask
FIE = F.FQCSR.fie.mask
FQON = F.FQCSR.fqon.mask
PQOF = F.PQCSR.pqof.mask
PQMF = F.PQCSR.pqmf.mask
PQEN = F.PQCSR.pqen.mask
PIE = F.PQCSR.pie.mask
PQON = F.PQCSR.pqon.mask
FIP = F.IPSR.fip.mask
PIP = F.IPSR.pip.mask

DID = 0x12345


def fqt(s: System) -> int:
    return int(s.iommu.mmio_read(REG.FQT, 4))


def pqt(s: System) -> int:
    return int(s.iommu.mmio_read(REG.PQT, 4))


def fq_slot(s: System, base: int, index: int) -> bytes:
    return bytes(s.mem.read(base + index * FQ_ENTRY, FQ_ENTRY))


def disallowed(s: System, addr: int, device_id: int = DID) -> rv.Response:
    """A request that faults with 260 (process_id without DC.tc.PDTV), iotval = addr."""
    return s.t(device_id, addr, process_id=7)


def simple_dc(s: System, device_id: int = DID, tc: int = TC_V) -> None:
    """A valid DC, both stages Bare (DC.tc.SBE = fctl.BE, which is not writable)."""
    s.ddt.set_dc(device_id, tc=tc | (TC_SBE if s.be else 0))


# ---------------------------------------------------------------------------
# record format
# ---------------------------------------------------------------------------
def _guest_fault_system(fctl: int) -> Tuple[System, int]:
    """Two-stage device, PDT in guest memory; the first-stage leaf of IOVA 0x1000 points to a
    GPA not mapped by the G-stage: a read guest-page fault with PV/PRIV/PID and iotval2."""
    s = System(fctl=fctl)
    be = bool(fctl & 1)  # fctl.BE not writable: DC.tc.SBE must equal it
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39, big=be)
    s1.map(0x1000, 0x7654_3000, flags=RW | A | D)  # supervisor page, GPA not backed
    pdt = s.pdt(guest, PD20, big=be)
    pdt.set_pc(0xABCDE, fsc=s1.satp(), ens=True)
    tc = TC_V | TC_PDTV | (TC_SBE if be else 0)
    s.ddt.set_dc(DID, tc=tc, iohgatp=g.satp(0x3C), fsc=pdt.pdtp())
    return s, setup_fq(s)


@pytest.mark.parametrize("be", [False, True], ids=["LE", "BE"])
def test_fault_record_layout_in_memory_field_by_field(be: bool) -> None:
    """FQ: a record is four doublewords in fctl.BE byte order: CAUSE[11:0], PID[31:12], PV[32],
    PRIV[33], TTYP[39:34], DID[63:40]; dword1 custom/reserved (0); iotval; iotval2."""
    s, base = _guest_fault_system(fctl=1 if be else 0)
    assert bool(s.iommu.mmio_read(REG.FCTL, 4) & 1) == be
    rsp = s.t(DID, 0x1AB7, process_id=0xABCDE, priv=True)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert rsp.fault == rv.FaultRecord(
        cause=rv.Cause.READ_GUEST_PAGE_FAULT,
        ttyp=rv.Ttyp.UNTRANSLATED_READ,
        iotval=0x1AB7,
        iotval2=0x7654_3AB4,
        device_id=DID,
        process_id=0xABCDE,
        pv=True,
        priv=True,
    )
    assert fqt(s) == 1
    raw = fq_slot(s, base, 0)
    order: Literal["big", "little"] = "big" if be else "little"
    d = [int.from_bytes(raw[i : i + 8], order) for i in range(0, 32, 8)]
    assert d[0] & 0xFFF == 21  # CAUSE
    assert (d[0] >> 12) & 0xFFFFF == 0xABCDE  # PID
    assert (d[0] >> 32) & 1 == 1  # PV
    assert (d[0] >> 33) & 1 == 1  # PRIV
    assert (d[0] >> 34) & 0x3F == 2  # TTYP: untranslated read
    assert d[0] >> 40 == DID  # DID
    assert d[1] == 0  # custom / reserved
    assert d[2] == 0x1AB7  # iotval: the IOVA
    assert d[3] == 0x7654_3AB4  # iotval2: GPA bits 63:2, bit 0 = 0 (not implicit)
    # the other byte order would not decode the same
    other: Literal["big", "little"] = "little" if be else "big"
    assert int.from_bytes(raw[0:8], other) != d[0]
    # the next slot is untouched
    assert fq_slot(s, base, 1) == bytes(32)


def test_fault_record_exact_bytes_little_endian() -> None:
    """FQ: exact 32 bytes of a record (260, untranslated execute, PV=1, PRIV=0), fctl.BE=0."""
    s = System()
    simple_dc(s, 0x45)
    base = setup_fq(s)
    rsp = s.t(0x45, 0x0123_4567_89AB_C000, rv.Access.EXECUTE, process_id=0x11)
    assert fault(rsp).cause == rv.Cause.TRANSACTION_TYPE_DISALLOWED
    d0 = 260 | (0x11 << 12) | (1 << 32) | (0 << 33) | (1 << 34) | (0x45 << 40)
    expected = (
        d0.to_bytes(8, "little")
        + bytes(8)
        + (0x0123_4567_89AB_C000).to_bytes(8, "little")
        + bytes(8)
    )
    assert fq_slot(s, base, 0) == expected


HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(
    did=st.integers(0, (1 << 24) - 1),
    addr=st.integers(0, (1 << 64) - 1).map(lambda a: a & ~7),
    pid=st.integers(0, (1 << 20) - 1),
    access=st.sampled_from(list(rv.Access)),
    priv=st.booleans(),
    be=st.booleans(),
)
def test_fault_record_in_memory_equals_response_fault(
    did: int, addr: int, pid: int, access: rv.Access, priv: bool, be: bool
) -> None:
    """FQ: the record in memory (decoded in fctl.BE order) is the fault the response carries."""
    s = System(fctl=1 if be else 0)
    simple_dc(s, did)
    setup_fq(s)
    rsp = s.t(did, addr, access, process_id=pid, priv=priv, length=1)
    f = fault(rsp)
    assert f.cause == rv.Cause.TRANSACTION_TYPE_DISALLOWED
    assert (f.device_id, f.iotval, f.process_id, f.pv, f.priv) == (did, addr, pid, True, priv)
    assert fq_records(s) == [f]


# ---------------------------------------------------------------------------
# fqt / fqh
# ---------------------------------------------------------------------------
def test_fqt_advances_by_one_per_record() -> None:
    """FQ: after writing a record the IOMMU advances fqt by 1; fqh == fqt means empty."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3)
    assert fqt(s) == 0
    for k in range(3):
        disallowed(s, 0x1000 * (k + 1))
        assert fqt(s) == k + 1
    recs = fq_records(s)
    assert [r.iotval for r in recs] == [0x1000, 0x2000, 0x3000]
    assert fq_slot(s, base, 3) == bytes(32)


def test_fqt_wraps_around_the_queue() -> None:
    """FQ: indices are modulo the queue size (2**LOG2SZ); records continue at slot 0."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3)  # 8 entries
    for k in range(6):
        disallowed(s, 0x1000 * (k + 1))
    s.iommu.mmio_write(REG.FQH, 6, 4)  # software consumed six records
    for k in range(4):
        disallowed(s, 0x10_0000 + 0x1000 * k)
    assert fqt(s) == 2  # 6 + 4 = 10 = 2 (mod 8)
    assert [r.iotval for r in fq_records(s)] == [
        0x10_0000,
        0x10_1000,
        0x10_2000,
        0x10_3000,
    ]
    # slots 6, 7, 0, 1 hold them
    assert rv.FaultRecord.from_bytes(fq_slot(s, base, 0)).iotval == 0x10_2000
    assert rv.FaultRecord.from_bytes(fq_slot(s, base, 1)).iotval == 0x10_3000


def test_fqh_writable_bits_are_log2sz_minus_1_to_0() -> None:
    """fqh: only bits LOG2SZ-1:0 are writable; fqt is read-only."""
    s = System()
    setup_fq(s, log2sz=3)
    s.iommu.mmio_write(REG.FQH, 0xFFFF_FFFF, 4)
    assert s.iommu.mmio_read(REG.FQH, 4) == 7
    s.iommu.mmio_write(REG.FQT, 5, 4)
    assert fqt(s) == 0


# ---------------------------------------------------------------------------
# overflow
# ---------------------------------------------------------------------------
def test_overflow_sets_fqof_and_drops_the_record() -> None:
    """FQ: fqt == fqh-1 is full; the next record sets fqof and is discarded."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3, ie=False)
    for k in range(7):
        disallowed(s, 0x1000 * (k + 1))
    assert fqt(s) == 7  # full: fqt == fqh - 1 (mod 8)
    assert fqcsr(s) & FQOF == 0
    rsp = disallowed(s, 0xDEAD_0000)
    assert rsp.reported  # the spec asks to report it; the queue cannot take it
    assert fqcsr(s) & FQOF
    assert fqt(s) == 7
    assert fq_slot(s, base, 7) == bytes(32)


def test_nothing_written_while_fqof_set_until_cleared() -> None:
    """FQ: while fqof is 1 all further records are discarded, even with room; RW1C clears it."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3, ie=False)
    for k in range(8):
        disallowed(s, 0x1000 * (k + 1))
    assert fqcsr(s) & FQOF
    s.iommu.mmio_write(REG.FQH, 7, 4)  # software drains the queue: now empty
    disallowed(s, 0xAAAA_0000)
    assert fqt(s) == 7
    assert fq_slot(s, base, 7) == bytes(32)
    # writing 0 to fqof does not clear it
    s.iommu.mmio_write(REG.FQCSR, FQEN, 4)
    assert fqcsr(s) & FQOF
    # write 1 to clear (keeping fqen)
    s.iommu.mmio_write(REG.FQCSR, FQEN | FQOF, 4)
    assert fqcsr(s) & (FQOF | FQMF) == 0
    assert fqcsr(s) & FQON
    disallowed(s, 0xBBBB_0000)
    assert fqt(s) == 0
    assert rv.FaultRecord.from_bytes(fq_slot(s, base, 7)).iotval == 0xBBBB_0000


def test_overflow_sets_fip_when_fie() -> None:
    """ipsr.fip: set when fqcsr.fie is 1 and fqof becomes 1; re-set after RW1C while fqof is 1."""
    s = System()
    simple_dc(s)
    setup_fq(s, log2sz=1, ie=True)  # 2 entries: one record fills it
    disallowed(s, 0x1000)
    s.iommu.mmio_write(REG.IPSR, FIP, 4)
    assert ipsr(s) & FIP == 0
    disallowed(s, 0x2000)  # overflow
    assert fqcsr(s) & FQOF
    assert ipsr(s) & FIP
    s.iommu.mmio_write(REG.IPSR, FIP, 4)
    assert ipsr(s) & FIP  # condition (fqof) persists
    s.iommu.mmio_write(REG.FQCSR, FQEN | FIE | FQOF, 4)
    s.iommu.mmio_write(REG.IPSR, FIP, 4)
    assert ipsr(s) & FIP == 0


# ---------------------------------------------------------------------------
# memory fault on the queue
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [rv.MemoryFault.ACCESS_FAULT, rv.MemoryFault.DATA_CORRUPTION])
def test_memory_fault_writing_record_sets_fqmf(kind: rv.MemoryFault) -> None:
    """FQ: a fault accessing the queue memory sets fqmf; the record is discarded."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3, ie=True)
    s.mem.inject(base, 4096, kind)
    disallowed(s, 0x5000)
    assert fqcsr(s) & FQMF
    assert fqcsr(s) & FQOF == 0
    assert fqt(s) == 0
    assert ipsr(s) & FIP
    s.mem.clear_injections()
    assert fq_slot(s, base, 0) == bytes(32)


def test_nothing_written_while_fqmf_set_until_cleared() -> None:
    """FQ: while fqmf is 1 the IOMMU discards all further records; RW1C clears it."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3, ie=False)
    s.mem.inject(base, 4096, rv.MemoryFault.ACCESS_FAULT)
    disallowed(s, 0x5000)
    s.mem.clear_injections()
    disallowed(s, 0x6000)
    assert fqt(s) == 0
    assert fq_slot(s, base, 0) == bytes(32)
    s.iommu.mmio_write(REG.FQCSR, FQEN | FQMF, 4)
    assert fqcsr(s) & FQMF == 0
    disallowed(s, 0x7000)
    assert [r.iotval for r in fq_records(s)] == [0x7000]


# ---------------------------------------------------------------------------
# queue off / enable
# ---------------------------------------------------------------------------
def test_fq_off_nothing_written() -> None:
    """FQ: with fqen = 0 (fqon = 0) no record is written and no error bit is set."""
    s = System()
    simple_dc(s)
    base = s.alloc.alloc()
    s.iommu.mmio_write(REG.FQB, queue_base(base, 3))
    s.iommu.mmio_write(REG.FQCSR, FIE, 4)  # interrupts enabled but queue off
    rsp = disallowed(s, 0x3000)
    assert rsp.reported
    assert fqcsr(s) == FIE
    assert fqt(s) == 0
    assert ipsr(s) & FIP == 0
    assert s.mem.read(base, 4096) == bytes(4096)


def test_fq_disabled_after_use_stops_records() -> None:
    """fqcsr: clearing fqen turns the queue off (fqon = 0): records are no longer written."""
    s = System()
    simple_dc(s)
    base = setup_fq(s, log2sz=3, ie=False)
    disallowed(s, 0x1000)
    s.iommu.mmio_write(REG.FQCSR, 0, 4)
    assert fqcsr(s) & (FQEN | FQON) == 0
    disallowed(s, 0x2000)
    assert fqt(s) == 1
    assert fq_slot(s, base, 1) == bytes(32)


def test_enabling_resets_fqt_and_error_bits() -> None:
    """fqcsr.fqen 0->1: the IOMMU resets fqt to 0 and clears fqmf/fqof."""
    s = System()
    simple_dc(s)
    setup_fq(s, log2sz=1, ie=False)
    disallowed(s, 0x1000)
    disallowed(s, 0x2000)  # overflow
    assert fqcsr(s) & FQOF and fqt(s) == 1
    s.iommu.mmio_write(REG.FQCSR, 0, 4)
    s.iommu.mmio_write(REG.FQH, 0, 4)
    s.iommu.mmio_write(REG.FQCSR, FQEN, 4)
    assert fqt(s) == 0
    assert fqcsr(s) == FQEN | FQON


# ---------------------------------------------------------------------------
# fip
# ---------------------------------------------------------------------------
def test_new_record_sets_fip_only_with_fie() -> None:
    """ipsr.fip: set when a new record is produced and fqcsr.fie is 1, not when fie is 0."""
    s = System()
    simple_dc(s)
    setup_fq(s, log2sz=3, ie=False)
    disallowed(s, 0x1000)
    assert fqt(s) == 1
    assert ipsr(s) & FIP == 0
    s.iommu.mmio_write(REG.FQCSR, FQEN | FIE, 4)
    assert ipsr(s) & FIP == 0  # no error bit, no new record yet
    disallowed(s, 0x2000)
    assert ipsr(s) & FIP
    # a produced record is an event, not a level: RW1C clears fip for good
    s.iommu.mmio_write(REG.IPSR, FIP, 4)
    assert ipsr(s) & FIP == 0


def test_fip_sends_msi_with_fiv_vector() -> None:
    """ipsr.fip 0->1 with fctl.WSI = 0 sends the MSI of the vector icvec.fiv selects."""
    s = System()
    simple_dc(s)
    io = s.iommu
    target = s.alloc.alloc()
    io.mmio_write(REG.ICVEC, F.ICVEC.encode(fiv=3), 8)
    io.mmio_write(REG.msi_addr(3), target + 0x40, 8)
    io.mmio_write(REG.msi_data(3), 0xC0FFEE, 4)
    setup_fq(s, ie=True)
    disallowed(s, 0x1000)
    assert s.mem.read(target + 0x40, 4) == (0xC0FFEE).to_bytes(4, "little")


# ---------------------------------------------------------------------------
# DTF
# ---------------------------------------------------------------------------
Scenario = Callable[[System, int], rv.Request]


def _s_260(s: System, dtf: int) -> rv.Request:
    s.ddt.set_dc(DID, tc=TC_V | dtf)
    return rv.Request(device_id=DID, addr=0x1000, process_id=3)


def _first_stage(s: System, dtf: int) -> Tuple[PageTable, int]:
    s1 = s.stage1()
    s.ddt.set_dc(DID, tc=TC_V | dtf, fsc=s1.satp())
    return s1, s1.root


def _s_13(s: System, dtf: int) -> rv.Request:
    _first_stage(s, dtf)
    return rv.Request(device_id=DID, addr=0x4000)


def _s_5(s: System, dtf: int) -> rv.Request:
    _, root = _first_stage(s, dtf)
    s.mem.inject(root, 4096, rv.MemoryFault.ACCESS_FAULT)
    return rv.Request(device_id=DID, addr=0x4000)


def _s_274(s: System, dtf: int) -> rv.Request:
    _, root = _first_stage(s, dtf)
    s.mem.inject(root, 4096, rv.MemoryFault.DATA_CORRUPTION)
    return rv.Request(device_id=DID, addr=0x4000)


def _pdt(s: System, dtf: int) -> ProcessDirectory:
    pdt = s.pdt()
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV | dtf, fsc=pdt.pdtp())
    return pdt


def _s_266(s: System, dtf: int) -> rv.Request:
    _pdt(s, dtf)
    return rv.Request(device_id=DID, addr=0x4000, process_id=9)


def _s_267(s: System, dtf: int) -> rv.Request:
    pdt = _pdt(s, dtf)
    low_rsv = F.PC_TA.reserved & -F.PC_TA.reserved
    pdt.set_pc(9, ta=F.PC_TA.V.mask | low_rsv)
    return rv.Request(device_id=DID, addr=0x4000, process_id=9)


def _s_265(s: System, dtf: int) -> rv.Request:
    pdt = _pdt(s, dtf)
    s.mem.inject(pdt.root, 4096, rv.MemoryFault.ACCESS_FAULT)
    return rv.Request(device_id=DID, addr=0x4000, process_id=9)


def _s_269(s: System, dtf: int) -> rv.Request:
    pdt = _pdt(s, dtf)
    s.mem.inject(pdt.root, 4096, rv.MemoryFault.DATA_CORRUPTION)
    return rv.Request(device_id=DID, addr=0x4000, process_id=9)


def _msi(s: System, dtf: int) -> MsiPageTable:
    g = s.gstage(SV39)
    pt = s.msipt(8)
    s.ddt.set_dc(
        DID,
        tc=TC_V | dtf,
        iohgatp=g.satp(1),
        msiptp=pt.msiptp(),
        msi_addr_mask=0x7,
        msi_addr_pattern=0x2800_0,
    )
    return pt


def _s_262(s: System, dtf: int) -> rv.Request:
    _msi(s, dtf)
    return rv.Request(device_id=DID, addr=0x2800_1000, access=rv.Access.WRITE, length=4)


def _s_261(s: System, dtf: int) -> rv.Request:
    pt = _msi(s, dtf)
    s.mem.inject(pt.root, 4096, rv.MemoryFault.ACCESS_FAULT)
    return rv.Request(device_id=DID, addr=0x2800_1000, access=rv.Access.WRITE, length=4)


def _s_263(s: System, dtf: int) -> rv.Request:
    pt = _msi(s, dtf)
    pt.set_raw(1, F.MSIPTE0.encode(V=1, M=2))
    return rv.Request(device_id=DID, addr=0x2800_1000, access=rv.Access.WRITE, length=4)


def _s_270(s: System, dtf: int) -> rv.Request:
    pt = _msi(s, dtf)
    s.mem.inject(pt.root, 4096, rv.MemoryFault.DATA_CORRUPTION)
    return rv.Request(device_id=DID, addr=0x2800_1000, access=rv.Access.WRITE, length=4)


def _s_258(s: System, dtf: int) -> rv.Request:
    s.ddt.set_dc(DID, tc=dtf)  # V = 0 (DTF bit written but the DC is not valid)
    return rv.Request(device_id=DID, addr=0x1000)


def _s_259(s: System, dtf: int) -> rv.Request:
    low_rsv = F.DC_TC.reserved & -F.DC_TC.reserved
    s.ddt.set_dc(DID, tc=TC_V | dtf | low_rsv)
    return rv.Request(device_id=DID, addr=0x1000)


def _s_257(s: System, dtf: int) -> rv.Request:
    addr = s.ddt.set_dc(DID, tc=TC_V | dtf)
    s.mem.inject(addr, 64, rv.MemoryFault.ACCESS_FAULT)
    return rv.Request(device_id=DID, addr=0x1000)


def _s_268(s: System, dtf: int) -> rv.Request:
    addr = s.ddt.set_dc(DID, tc=TC_V | dtf)
    s.mem.inject(addr, 64, rv.MemoryFault.DATA_CORRUPTION)
    return rv.Request(device_id=DID, addr=0x1000)


def _s_272(s: System, dtf: int) -> rv.Request:
    s.ddt.set_dc(DID, tc=TC_V | dtf)
    s.iommu.inject_datapath_error()
    return rv.Request(device_id=DID, addr=0x1000)


def _s_4(s: System, dtf: int) -> rv.Request:
    s.ddt.set_dc(DID, tc=TC_V | dtf)
    return rv.Request(device_id=DID, addr=0x1FFC, length=8)


#: (scenario, cause, "Reported if DTF is 1?" column of the CAUSE table)
DTF_CASES = [
    (_s_260, 260, False),
    (_s_13, 13, False),
    (_s_5, 5, False),
    (_s_274, 274, False),
    (_s_266, 266, False),
    (_s_267, 267, False),
    (_s_265, 265, False),
    (_s_269, 269, False),
    (_s_262, 262, False),
    (_s_261, 261, False),
    (_s_263, 263, False),
    (_s_270, 270, False),
    (_s_258, 258, True),
    (_s_259, 259, True),
    (_s_257, 257, True),
    (_s_268, 268, True),
    (_s_272, 272, True),
]


def _run_dtf_case(scenario: Scenario, dtf: bool) -> Tuple[rv.Response, System]:
    s = System(params=rv.IommuParams(ddt_cache_size=0, pdt_cache_size=0))
    req = scenario(s, TC_DTF if dtf else 0)
    setup_fq(s)
    return s.iommu.translate(req), s


@pytest.mark.parametrize(
    "scenario,cause,reported_if_dtf",
    DTF_CASES,
    ids=[f"cause{c}" for _, c, _ in DTF_CASES],
)
@pytest.mark.parametrize("dtf", [False, True], ids=["DTF0", "DTF1"])
def test_dtf_suppresses_only_the_causes_the_table_lists(
    scenario: Scenario, cause: int, reported_if_dtf: bool, dtf: bool
) -> None:
    """CAUSE table "Reported if DTF is 1?": with DC.tc.DTF = 1 only the "Yes" causes are written
    to the FQ; faults that prevent locating a valid DC are reported (DTF assumed 0)."""
    rsp, s = _run_dtf_case(scenario, dtf)
    f = fault(rsp)
    assert f.cause == cause
    expect = reported_if_dtf or not dtf
    assert rsp.reported == expect
    assert fq_records(s) == ([f] if expect else [])


def test_dtf_suppresses_cause4_of_a_device_with_valid_dc() -> None:
    """CAUSE table: 4 (Read address misaligned) is "No" when DTF is 1 (the DC is valid)."""
    rsp, s = _run_dtf_case(_s_4, True)
    assert fault(rsp).cause == 4
    assert fq_records(s) == []


def test_dtf_in_ddt_off_mode_is_irrelevant_256_reported() -> None:
    """CAUSE 256 (iommu_mode Off) is reported: no DC is located, DTF is assumed 0."""
    s = System()
    s.ddt.set_dc(DID, tc=TC_V | TC_DTF)
    setup_fq(s)
    s.iommu.mmio_write(REG.DDTP, 0)
    rsp = s.t(DID, 0x1000)
    assert fq_records(s) == [
        rv.FaultRecord(cause=256, ttyp=rv.Ttyp.UNTRANSLATED_READ, iotval=0x1000, device_id=DID)
    ]
    assert rsp.status == rv.Status.UNSUPPORTED_REQUEST


# ---------------------------------------------------------------------------
# ATS translation requests
# ---------------------------------------------------------------------------
def test_ats_translation_page_fault_answered_success_r_w_0_writes_no_record() -> None:
    """ATS_FAULTS: a page fault on an ATS Translation Request is answered Success with R=W=0 and
    is not reported: no FQ record."""
    s = System()
    s1 = s.stage1()
    s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS, fsc=s1.satp())
    base = setup_fq(s)
    rsp = s.t(DID, 0x4000, kind=rv.RequestKind.ATS_TRANSLATION)
    assert rsp.status == rv.Status.SUCCESS
    assert (rsp.r, rsp.w) == (False, False)
    assert not rsp.reported
    assert fqt(s) == 0
    assert ipsr(s) & FIP == 0
    assert fq_slot(s, base, 0) == bytes(32)


def test_ats_translation_with_ats_disabled_is_reported_ttyp8() -> None:
    """ATS_FAULTS: other faults of an ATS Translation Request are reported, TTYP = 8."""
    s = System()
    s.ddt.set_dc(DID, tc=TC_V)  # EN_ATS = 0: 260
    setup_fq(s)
    rsp = s.t(DID, 0x4000, kind=rv.RequestKind.ATS_TRANSLATION)
    assert rsp.status == rv.Status.UNSUPPORTED_REQUEST
    assert fq_records(s) == [
        rv.FaultRecord(cause=260, ttyp=rv.Ttyp.ATS_TRANSLATION, iotval=0x4000, device_id=DID)
    ]


# ---------------------------------------------------------------------------
# page-request queue mechanics (records pushed directly; PRI handling is elsewhere)
# ---------------------------------------------------------------------------
def _pq_rec(k: int) -> bytes:
    return bytes((k + i) & 0xFF for i in range(PQ_ENTRY))


def test_pq_push_writes_record_and_advances_pqt() -> None:
    """PQ: the IOMMU writes the 16-byte record at pqt and advances pqt by 1; pip with pie."""
    s = System()
    base = setup_pq(s, log2sz=3, ie=True)
    assert s.iommu.pq.push(_pq_rec(1)) is True
    assert pqt(s) == 1
    assert s.mem.read(base, 16) == _pq_rec(1)
    assert ipsr(s) & PIP
    assert s.iommu.pq.push(_pq_rec(2)) is True
    assert s.mem.read(base + 16, 16) == _pq_rec(2)
    assert pqt(s) == 2


def test_pq_new_record_sets_pip_only_with_pie() -> None:
    """ipsr.pip: set when a new message is produced in the PQ only if pqcsr.pie is 1."""
    s = System()
    setup_pq(s, ie=False)
    s.iommu.pq.push(_pq_rec(1))
    assert pqt(s) == 1
    assert ipsr(s) & PIP == 0


def test_pq_off_nothing_written() -> None:
    """PQ: with pqen = 0 nothing is written and no error bit is set."""
    s = System()
    base = s.alloc.alloc()
    s.iommu.mmio_write(REG.PQB, queue_base(base, 3))
    s.iommu.mmio_write(REG.PQCSR, PIE, 4)
    assert s.iommu.pq.push(_pq_rec(1)) is None
    assert pqt(s) == 0
    assert s.iommu.mmio_read(REG.PQCSR, 4) == PIE
    assert ipsr(s) & PIP == 0
    assert s.mem.read(base, 16) == bytes(16)


def test_pq_overflow_sets_pqof_and_discards_until_cleared() -> None:
    """PQ: pqt == pqh-1 is full; the next message sets pqof (and pip) and is discarded, as are
    all later ones until pqof is cleared."""
    s = System()
    base = setup_pq(s, log2sz=2, ie=True)  # 4 entries
    for k in range(3):
        assert s.iommu.pq.push(_pq_rec(k)) is True
    s.iommu.mmio_write(REG.IPSR, PIP, 4)
    assert s.iommu.pq.push(_pq_rec(9)) is None
    csr = s.iommu.mmio_read(REG.PQCSR, 4)
    assert csr & PQOF and not csr & PQMF
    assert ipsr(s) & PIP
    assert pqt(s) == 3
    assert s.mem.read(base + 48, 16) == bytes(16)
    s.iommu.mmio_write(REG.PQH, 3, 4)  # drained
    assert s.iommu.pq.push(_pq_rec(10)) is None
    assert pqt(s) == 3
    s.iommu.mmio_write(REG.PQCSR, PQEN | PIE | PQOF, 4)
    assert s.iommu.mmio_read(REG.PQCSR, 4) & PQOF == 0
    assert s.iommu.pq.push(_pq_rec(11)) is True
    assert s.mem.read(base + 48, 16) == _pq_rec(11)
    assert pqt(s) == 0


def test_pq_memory_fault_sets_pqmf() -> None:
    """PQ: a fault accessing the queue memory sets pqmf (and pip); the message is discarded
    and so are later ones until pqmf is cleared."""
    s = System()
    base = setup_pq(s, log2sz=3, ie=True)
    s.mem.inject(base, 4096, rv.MemoryFault.ACCESS_FAULT)
    assert s.iommu.pq.push(_pq_rec(1)) is False
    csr = s.iommu.mmio_read(REG.PQCSR, 4)
    assert csr & PQMF and not csr & PQOF
    assert ipsr(s) & PIP
    assert pqt(s) == 0
    s.mem.clear_injections()
    assert s.iommu.pq.push(_pq_rec(2)) is None
    assert s.mem.read(base, 16) == bytes(16)
    s.iommu.mmio_write(REG.PQCSR, PQEN | PQMF, 4)
    assert s.iommu.pq.push(_pq_rec(3)) is True
    assert s.mem.read(base, 16) == _pq_rec(3)


def test_pq_pip_reasserted_while_error_bit_set() -> None:
    """ipsr: a cleared pip is set again while pqcsr.pie = 1 and an error bit is 1."""
    s = System()
    base = setup_pq(s, log2sz=3, ie=True)
    s.mem.inject(base, 4096, rv.MemoryFault.ACCESS_FAULT)
    s.iommu.pq.push(_pq_rec(1))
    s.iommu.mmio_write(REG.IPSR, PIP, 4)
    assert ipsr(s) & PIP
    s.iommu.mmio_write(REG.PQCSR, PQEN | PIE | PQMF, 4)
    s.iommu.mmio_write(REG.IPSR, PIP, 4)
    assert ipsr(s) & PIP == 0


def test_pq_enable_resets_pqt_and_errors() -> None:
    """pqcsr.pqen 0->1 resets pqt to 0 and clears pqof/pqmf; pqon follows pqen."""
    s = System()
    setup_pq(s, log2sz=1, ie=False)
    s.iommu.pq.push(_pq_rec(1))
    s.iommu.pq.push(_pq_rec(2))  # overflow
    assert s.iommu.mmio_read(REG.PQCSR, 4) & PQOF
    s.iommu.mmio_write(REG.PQCSR, 0, 4)
    assert s.iommu.mmio_read(REG.PQCSR, 4) & (PQON | PQEN) == 0
    s.iommu.mmio_write(REG.PQH, 0, 4)
    s.iommu.mmio_write(REG.PQCSR, PQEN, 4)
    assert pqt(s) == 0
    assert s.iommu.mmio_read(REG.PQCSR, 4) == PQEN | PQON


def test_discarded_records_are_events_with_their_reason() -> None:
    """Every record the FQ cannot take is a queue_record event: ``off`` before the queue is
    enabled, ``overflow`` when full and while fqof stands, ``memory_fault`` when the write
    faults and while fqmf stands; written records carry ``written``."""
    from riscv_iommu.events import QueueRecord

    s = System()
    simple_dc(s)
    log = rv.EventLog(kinds="queue_record")
    s.iommu.attach(log)
    disallowed(s, 0x1000)  # fqon = 0
    base = setup_fq(s, log2sz=1, ie=False)  # 2 entries: one record fills it
    disallowed(s, 0x2000)  # written at 0
    disallowed(s, 0x3000)  # full: overflow
    disallowed(s, 0x4000)  # fqof stands
    s.iommu.mmio_write(REG.FQH, 1, 4)
    s.iommu.mmio_write(REG.FQCSR, FQEN | FQOF, 4)  # drained and fqof cleared
    s.mem.inject(base, 4096, rv.MemoryFault.ACCESS_FAULT)
    disallowed(s, 0x5000)  # the write faults
    disallowed(s, 0x6000)  # fqmf stands
    got = [(e.status, e.index, e.addr, e.record.iotval) for e in log.of(QueueRecord)]
    assert got == [
        ("off", 0, 0, 0x1000),
        ("written", 0, base, 0x2000),
        ("overflow", 1, 0, 0x3000),
        ("overflow", 1, 0, 0x4000),
        ("memory_fault", 1, base + 32, 0x5000),
        ("memory_fault", 1, 0, 0x6000),
    ]
