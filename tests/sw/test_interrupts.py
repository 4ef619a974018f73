"""IOMMU-originated interrupts: ipsr, icvec, msi_cfg_tbl, wire-signaled interrupts.

Spec: iommu_registers.adoc, "Interrupt pending status register (ipsr)" (set conditions
of cip/fip/pmip/pip, RW1C with re-setting), "Interrupt-cause-to-vector register
(icvec)", "MSI configuration table (msi_cfg_tbl)" (4-byte aligned address, data, mask
bit M, cause 273 on an access fault), "Features-control register (fctl)" (WSI, BE:
"accesses made by the IOMMU ... for MSI generation" follow fctl.BE), and
iommu_in_memory_queues.adoc (cause 273 "IOMMU MSI write access fault", TTYP 0).
"""

from __future__ import annotations

from typing import List, Tuple

import pytest

import riscv_iommu as rv
from helpers import TC_EN_ATS, TC_EN_PRI, TC_V, System
from riscv_iommu import formats as F
from swhelpers import (
    fq_records,
    iofence_c,
    setup_cq,
    setup_fq,
    setup_pq,
    submit,
    write_cmd,
)

REG = rv.REG
CIP, FIP, PMIP, PIP = (F.IPSR.fields[n].mask for n in ("cip", "fip", "pmip", "pip"))
M32 = 0xFFFFFFFF


class RecordingMemory(rv.SparseMemory):
    """A memory port that records every write (address, bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: List[Tuple[int, bytes]] = []

    def write(self, addr: int, data: bytes) -> None:
        self.writes.append((addr, bytes(data)))
        super().write(addr, data)


class Sys(System):
    """A System over a RecordingMemory, with a wire-level log."""

    def __init__(self, **kw: object) -> None:
        orig = rv.SparseMemory
        rv.SparseMemory = RecordingMemory  # type: ignore[misc]
        try:
            super().__init__(**kw)  # type: ignore[arg-type]
        finally:
            rv.SparseMemory = orig  # type: ignore[misc]
        assert isinstance(self.mem, RecordingMemory)
        self.wires: List[Tuple[int, bool]] = []
        self.iommu.on_wired_interrupt = lambda vec, level: self.wires.append((vec, level))

    def writes_to(self, addr: int) -> List[bytes]:
        return [d for a, d in self.mem.writes if a == addr]  # type: ignore[attr-defined]

    def ipsr(self) -> int:
        return int(self.iommu.mmio_read(REG.IPSR, 4))

    def clear(self, bits: int) -> None:
        self.iommu.mmio_write(REG.IPSR, bits, 4)


def msi_vector(s: Sys, x: int, data: int, masked: bool = False) -> int:
    """Program msi_cfg_tbl entry x with a fresh 4-byte aligned address; returns it."""
    addr = s.page() + 0x40 + 4 * x
    io = s.iommu
    io.mmio_write(REG.msi_addr(x), addr)
    io.mmio_write(REG.msi_data(x), data, 4)
    io.mmio_write(REG.msi_vec_ctl(x), int(masked), 4)
    return addr


def icvec(s: Sys, civ: int = 0, fiv: int = 0, pmiv: int = 0, piv: int = 0) -> None:
    s.iommu.mmio_write(REG.ICVEC, F.ICVEC.encode(civ=civ, fiv=fiv, pmiv=pmiv, piv=piv))


# --- interrupt sources -------------------------------------------------------
def cmd_ill(s: Sys) -> None:
    """Queue an illegal command (opcode 0): cqcsr.cmd_ill."""
    submit(s, (0, 0))


def fix_cmd_ill(s: Sys) -> None:
    """Replace the illegal command by IOFENCE.C and clear cmd_ill (resumes the queue)."""
    io = s.iommu
    write_cmd(s, io.mmio_read(REG.CQH, 4), iofence_c())
    csr = io.mmio_read(REG.CQCSR, 4) & F.CQCSR.mask_of("cqen", "cie")
    io.mmio_write(REG.CQCSR, csr | F.CQCSR.cmd_ill.mask, 4)


def fault(s: Sys, did: int = 0x55) -> None:
    """A request from a device without a valid DC: a cause-258 fault record."""
    rsp = s.t(did, 0x1000)
    assert rsp.fault is not None and rsp.fault.cause == 258


def overflow_cycles(s: Sys) -> None:
    """iohpmcycles wraps (OF 0 -> 1)."""
    io = s.iommu
    io.mmio_write(REG.IOHPMCYCLES, (1 << 63) - 1)
    io.tick(1)
    assert io.mmio_read(REG.IOHPMCYCLES) == 1 << 63


def pri_device(s: Sys, did: int = 7) -> None:
    s.ddt.set_dc(did, tc=TC_V | TC_EN_ATS | TC_EN_PRI)


def page_request(s: Sys, did: int = 7, prgi: int = 1) -> None:
    s.iommu.page_request(rv.PageRequest(device_id=did, addr=0x4000, prg_index=prgi, last=True))


def enable_source(s: Sys, bit: int, ie: bool = True) -> None:
    """Set up what ``trigger`` needs (queues with their interrupt enable = ie)."""
    if bit == CIP:
        setup_cq(s, ie=ie)
    elif bit == FIP:
        setup_fq(s, ie=ie)
    elif bit == PIP:
        pri_device(s)
        setup_pq(s, ie=ie)


def trigger(s: Sys, bit: int) -> None:
    if bit == CIP:
        cmd_ill(s)
    elif bit == FIP:
        fault(s)
    elif bit == PMIP:
        overflow_cycles(s)
    else:
        page_request(s)


SOURCES = [("cip", CIP), ("fip", FIP), ("pmip", PMIP), ("pip", PIP)]


# ---------------------------------------------------------------------------
# ipsr set conditions and enables
# ---------------------------------------------------------------------------
CQ_ERRORS = ["cmd_ill", "cqmf", "cmd_to", "fence_w_ip"]


def cq_error(s: Sys, kind: str) -> None:
    io = s.iommu
    if kind == "cmd_ill":
        cmd_ill(s)
    elif kind == "cqmf":
        t = io.mmio_read(REG.CQT, 4)
        write_cmd(s, t, iofence_c())
        base = F.QUEUE_BASE.PPN.get(io.mmio_read(REG.CQB)) << 12
        s.mem.inject(base + 16 * t, 16, rv.MemoryFault.ACCESS_FAULT)
        io.mmio_write(REG.CQT, t + 1, 4)
    elif kind == "cmd_to":
        from swhelpers import ats_inval

        submit(s, ats_inval(rid=3), iofence_c())
        assert io.ats_timeout() == 1
    else:
        submit(s, iofence_c(wsi=True))
    assert io.mmio_read(REG.CQCSR, 4) & F.CQCSR.fields[kind].mask


@pytest.mark.parametrize("kind", CQ_ERRORS)
def test_cip_set_by_cq_error_with_cie(kind: str):
    """ipsr.cip: set if cqcsr.cie is 1 and fence_w_ip, cmd_ill, cmd_to or cqmf is 1."""
    s = Sys(fctl=2) if kind == "fence_w_ip" else Sys()
    setup_cq(s, ie=True)
    assert s.ipsr() == 0
    cq_error(s, kind)
    assert s.ipsr() == CIP


@pytest.mark.parametrize("kind", CQ_ERRORS)
def test_cip_not_set_without_cie(kind: str):
    """ipsr.cip: not set while cqcsr.cie is 0; set once cie is written 1 while the error
    bit is still 1 (the condition holds)."""
    s = Sys(fctl=2) if kind == "fence_w_ip" else Sys()
    setup_cq(s, ie=False)
    cq_error(s, kind)
    assert s.ipsr() == 0
    s.mem.clear_injections()  # type: ignore[attr-defined]
    io = s.iommu
    # keep the error bit (write 0 to it) and set cie
    io.mmio_write(REG.CQCSR, F.CQCSR.mask_of("cqen", "cie"), 4)
    assert s.ipsr() == CIP


def test_cip_not_set_by_successful_commands():
    """ipsr.cip: completing commands (no error, no fence_w_ip) sets nothing."""
    s = Sys()
    setup_cq(s, ie=True)
    submit(s, iofence_c(), iofence_c(addr=s.page(), data=1))
    assert s.iommu.mmio_read(REG.CQH, 4) == 2
    assert s.ipsr() == 0


def test_fip_set_by_new_record_with_fie():
    """ipsr.fip: set if fqcsr.fie is 1 and a new record is produced in the FQ."""
    s = Sys()
    setup_fq(s, ie=True)
    fault(s)
    assert len(fq_records(s)) == 1
    assert s.ipsr() == FIP


def test_fip_not_set_without_fie():
    """ipsr.fip: a new record with fqcsr.fie = 0 does not set fip, and setting fie later
    does not either (a produced record is an event, not a lasting condition)."""
    s = Sys()
    setup_fq(s, ie=False)
    fault(s)
    assert len(fq_records(s)) == 1
    assert s.ipsr() == 0
    s.iommu.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie"), 4)
    assert s.ipsr() == 0


def test_fip_set_by_fqof():
    """ipsr.fip: set if fie is 1 and fqcsr.fqof is 1 (queue full: fqt == fqh - 1)."""
    s = Sys()
    setup_fq(s, log2sz=1, ie=True)
    fault(s)
    s.clear(FIP)
    assert s.ipsr() == 0
    fault(s, did=0x56)  # queue full: record discarded, fqof
    assert s.iommu.mmio_read(REG.FQCSR, 4) & F.FQCSR.fqof.mask
    assert len(fq_records(s)) == 1
    assert s.ipsr() == FIP


def test_fip_set_by_fqmf():
    """ipsr.fip: set if fie is 1 and fqcsr.fqmf is 1 (access fault storing a record)."""
    s = Sys()
    base = setup_fq(s, ie=True)
    s.mem.inject(base, 32, rv.MemoryFault.ACCESS_FAULT)
    fault(s)
    assert s.iommu.mmio_read(REG.FQCSR, 4) & F.FQCSR.fqmf.mask
    assert s.iommu.mmio_read(REG.FQT, 4) == 0
    assert s.ipsr() == FIP


@pytest.mark.parametrize("err", ["fqof", "fqmf"])
def test_fip_set_when_fie_enabled_with_error(err: str):
    """ipsr.fip: fqof/fqmf with fie = 0 set nothing; writing fie = 1 while the error bit
    is 1 sets fip."""
    s = Sys()
    if err == "fqof":
        setup_fq(s, log2sz=1, ie=False)
        fault(s)
        fault(s, did=0x56)
    else:
        base = setup_fq(s, ie=False)
        s.mem.inject(base, 32, rv.MemoryFault.ACCESS_FAULT)
        fault(s)
    io = s.iommu
    assert io.mmio_read(REG.FQCSR, 4) & F.FQCSR.fields[err].mask
    assert s.ipsr() == 0
    io.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie"), 4)
    assert s.ipsr() == FIP


def test_pmip_set_by_cycles_overflow():
    """ipsr.pmip: set when iohpmcycles.OF transitions 0 -> 1 due to an overflow."""
    s = Sys()
    overflow_cycles(s)
    assert s.ipsr() == PMIP
    assert s.iommu.mmio_read(REG.IOCOUNTOVF, 4) == 1


def test_pmip_not_set_when_of_already_set():
    """iohpmcycles: if OF is already 1 an overflow generates no interrupt request."""
    s = Sys()
    io = s.iommu
    io.mmio_write(REG.IOHPMCYCLES, M32 << 32 | M32)  # OF = 1, counter all ones
    io.tick(1)
    assert io.mmio_read(REG.IOHPMCYCLES) == 1 << 63
    assert s.ipsr() == 0


def test_pmip_set_by_event_counter_overflow():
    """ipsr.pmip: set when iohpmevtX.OF transitions 0 -> 1 due to an iohpmctrX overflow
    (event 1, Untranslated requests)."""
    s = Sys()
    io = s.iommu
    io.mmio_write(REG.iohpmctr(4), (1 << 64) - 1)
    io.mmio_write(REG.iohpmevt(4), F.IOHPMEVT.encode(eventID=1))
    s.t(0x55, 0x1000)
    assert io.mmio_read(REG.iohpmctr(4)) == 0
    assert io.mmio_read(REG.iohpmevt(4)) == F.IOHPMEVT.encode(eventID=1, OF=1)
    assert io.mmio_read(REG.IOCOUNTOVF, 4) == 1 << 4
    assert s.ipsr() == PMIP


def test_pmip_software_of_write_no_interrupt():
    """ipsr.pmip: only an overflow sets pmip; software writing OF = 1 does not."""
    s = Sys()
    io = s.iommu
    io.mmio_write(REG.IOHPMCYCLES, 1 << 63)
    io.mmio_write(REG.iohpmevt(1), F.IOHPMEVT.OF.mask)
    assert s.ipsr() == 0


def test_pip_set_by_new_message_with_pie():
    """ipsr.pip: set if pqcsr.pie is 1 and a new message is produced in the PQ."""
    s = Sys()
    pri_device(s)
    setup_pq(s, ie=True)
    page_request(s)
    assert s.iommu.mmio_read(REG.PQT, 4) == 1
    assert s.ipsr() == PIP


def test_pip_not_set_without_pie():
    """ipsr.pip: a new PQ message with pie = 0 sets nothing."""
    s = Sys()
    pri_device(s)
    setup_pq(s, ie=False)
    page_request(s)
    assert s.iommu.mmio_read(REG.PQT, 4) == 1
    assert s.ipsr() == 0


@pytest.mark.parametrize("err", ["pqof", "pqmf"])
def test_pip_set_by_pq_error(err: str):
    """ipsr.pip: set if pie is 1 and pqcsr.pqof / pqmf is 1."""
    s = Sys()
    pri_device(s)
    if err == "pqof":
        setup_pq(s, log2sz=1, ie=True)
        page_request(s, prgi=1)
        s.clear(PIP)
        page_request(s, prgi=2)
    else:
        base = setup_pq(s, ie=True)
        s.mem.inject(base, 16, rv.MemoryFault.ACCESS_FAULT)
        page_request(s)
    assert s.iommu.mmio_read(REG.PQCSR, 4) & F.PQCSR.fields[err].mask
    assert s.ipsr() == PIP


# ---------------------------------------------------------------------------
# ipsr RW1C with re-setting
# ---------------------------------------------------------------------------
def test_ipsr_cip_resets_while_cmd_ill_persists():
    """ipsr: after a write of 1 clears cip, cip transitions again 0 -> 1 while cmd_ill is
    still 1; once cmd_ill is cleared, clearing cip sticks."""
    s = Sys()
    setup_cq(s, ie=True)
    cmd_ill(s)
    s.clear(CIP)
    assert s.ipsr() == CIP
    fix_cmd_ill(s)
    assert s.iommu.mmio_read(REG.CQCSR, 4) == F.CQCSR.mask_of("cqen", "cie", "cqon")
    s.clear(CIP)
    assert s.ipsr() == 0


def test_ipsr_fip_resets_while_fqof_persists():
    """ipsr: fip re-sets while fqcsr.fqof is 1; after fqof is cleared it stays clear."""
    s = Sys()
    setup_fq(s, log2sz=1, ie=True)
    fault(s)
    fault(s, did=0x56)
    s.clear(FIP)
    assert s.ipsr() == FIP
    io = s.iommu
    io.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie", "fqof"), 4)
    s.clear(FIP)
    assert s.ipsr() == 0


def test_ipsr_pip_resets_while_pqmf_persists():
    """ipsr: pip re-sets while pqcsr.pqmf is 1; after pqmf is cleared it stays clear."""
    s = Sys()
    pri_device(s)
    base = setup_pq(s, ie=True)
    s.mem.inject(base, 16, rv.MemoryFault.ACCESS_FAULT)
    page_request(s)
    s.clear(PIP)
    assert s.ipsr() == PIP
    s.iommu.mmio_write(REG.PQCSR, F.PQCSR.mask_of("pqen", "pie", "pqmf"), 4)
    s.clear(PIP)
    assert s.ipsr() == 0


def test_ipsr_fip_event_does_not_persist():
    """ipsr: "a new record is produced" is an event: cleared fip stays 0 although the
    record is still in the queue, and is set again by the next record."""
    s = Sys()
    setup_fq(s, ie=True)
    fault(s)
    s.clear(FIP)
    assert s.ipsr() == 0
    fault(s, did=0x56)
    assert s.ipsr() == FIP


def test_ipsr_pmip_does_not_persist():
    """ipsr: pmip's condition is the OF 0 -> 1 transition: cleared pmip stays 0 while OF
    stays 1."""
    s = Sys()
    overflow_cycles(s)
    s.clear(PMIP)
    assert s.ipsr() == 0
    assert s.iommu.mmio_read(REG.IOCOUNTOVF, 4) == 1


def test_ipsr_clear_one_bit_keeps_others():
    """ipsr (RW1C): each bit is cleared independently."""
    s = Sys()
    for _, bit in SOURCES:
        enable_source(s, bit)
    for _, bit in SOURCES:
        trigger(s, bit)
    assert s.ipsr() == CIP | FIP | PMIP | PIP
    s.clear(PMIP | PIP)
    assert s.ipsr() == CIP | FIP  # cip re-sets (cmd_ill persists); fip was an event
    s.clear(FIP)
    assert s.ipsr() == CIP


# ---------------------------------------------------------------------------
# icvec mapping and MSI generation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,bit", SOURCES)
def test_msi_uses_icvec_vector(name: str, bit: int):
    """icvec + msi_cfg_tbl: the MSI for a pending bit is a 4-byte little-endian write of
    msi_data_x to msi_addr_x, x = the icvec field of the cause; no other vector fires."""
    s = Sys()
    vec = {"cip": 5, "fip": 9, "pmiv": 2, "pmip": 2, "pip": 14}[name]
    icvec(s, civ=5, fiv=9, pmiv=2, piv=14)
    addrs = [msi_vector(s, x, 0x1000 + x) for x in range(16)]
    enable_source(s, bit)
    s.mem.writes.clear()  # type: ignore[attr-defined]
    trigger(s, bit)
    msis = [(a, d) for a, d in s.mem.writes if a in addrs]  # type: ignore[attr-defined]
    assert msis == [(addrs[vec], (0x1000 + vec).to_bytes(4, "little"))]
    assert s.mem.read(addrs[vec], 4) == (0x1000 + vec).to_bytes(4, "little")


def test_msi_all_causes_same_vector():
    """icvec: all causes can be mapped to the same vector; each 0 -> 1 transition sends
    one message."""
    s = Sys()
    icvec(s, civ=3, fiv=3, pmiv=3, piv=3)
    a = msi_vector(s, 3, 0xCAFE)
    for _, bit in SOURCES:
        enable_source(s, bit)
    for _, bit in SOURCES:
        trigger(s, bit)
    assert s.writes_to(a) == [(0xCAFE).to_bytes(4, "little")] * 4


def test_msi_big_endian():
    """fctl.BE = 1: the MSI write (an access "for MSI generation") is big-endian."""
    s = Sys(fctl=1)
    a = msi_vector(s, 0, 0x1122_3344)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert s.writes_to(a) == [bytes([0x11, 0x22, 0x33, 0x44])]


def test_msi_addr_is_4byte_aligned():
    """msi_addr_x: bits 1:0 are fixed to 0, so the message goes to the aligned address."""
    s = Sys()
    a = msi_vector(s, 0, 0xAB)
    s.iommu.mmio_write(REG.msi_addr(0), a | 3)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert s.writes_to(a) == [(0xAB).to_bytes(4, "little")]


def test_msi_masked_pending_then_delivered():
    """msi_vec_ctl.M: while 1 the message is not sent; it is sent when M is cleared."""
    s = Sys()
    a = msi_vector(s, 0, 0x77, masked=True)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert s.ipsr() == CIP
    assert s.writes_to(a) == []
    s.iommu.mmio_write(REG.msi_vec_ctl(0), 0, 4)
    assert s.writes_to(a) == [(0x77).to_bytes(4, "little")]
    s.iommu.mmio_write(REG.msi_vec_ctl(0), 1, 4)
    s.iommu.mmio_write(REG.msi_vec_ctl(0), 0, 4)
    assert len(s.writes_to(a)) == 1  # no message was pending any more


@pytest.mark.parametrize("name,bit", SOURCES)
def test_msi_masked_each_source_pending_then_delivered(name: str, bit: int):
    """msi_vec_ctl.M for every cause (cip, fip, pmip, pip): the vector icvec maps the cause
    to is masked, so the 0 -> 1 transition of the pending bit sends no message; the event
    stream says the message was held back (interrupt, masked=True); clearing M sends it."""
    from riscv_iommu.events import InterruptEvent

    s = Sys()
    vec = {"cip": 5, "fip": 9, "pmip": 2, "pip": 14}[name]
    icvec(s, civ=5, fiv=9, pmiv=2, piv=14)
    a = msi_vector(s, vec, 0x600 + vec, masked=True)
    enable_source(s, bit)
    log = rv.EventLog(kinds="interrupt")
    s.iommu.attach(log)
    trigger(s, bit)
    assert s.ipsr() & bit
    assert s.writes_to(a) == []
    source = {"cip": "CQ", "fip": "FQ", "pmip": "HPM", "pip": "PQ"}[name]
    assert list(log) == [InterruptEvent(source, vec, False, True, a, 0x600 + vec)]
    s.iommu.mmio_write(REG.msi_vec_ctl(vec), 0, 4)
    assert s.writes_to(a) == [(0x600 + vec).to_bytes(4, "little")]


def test_msi_masked_other_vector_unaffected():
    """msi_vec_ctl.M masks only its own vector."""
    s = Sys()
    icvec(s, civ=1, fiv=2)
    a1 = msi_vector(s, 1, 0x11, masked=True)
    a2 = msi_vector(s, 2, 0x22)
    setup_cq(s, ie=True)
    setup_fq(s, ie=True)
    cmd_ill(s)
    fault(s)
    assert s.writes_to(a1) == []
    assert s.writes_to(a2) == [(0x22).to_bytes(4, "little")]


def test_msi_unmask_without_pending_sends_nothing():
    """msi_vec_ctl.M: clearing M with no pending message sends nothing."""
    s = Sys()
    a = msi_vector(s, 0, 0x77, masked=True)
    s.iommu.mmio_write(REG.msi_vec_ctl(0), 0, 4)
    assert s.writes_to(a) == []


def test_msi_edge_semantics():
    """ipsr: MSIs have edge semantics: no second message while the bit stays 1; a new
    0 -> 1 transition after software clears it sends another."""
    s = Sys()
    a = msi_vector(s, 0, 0x5A)
    setup_fq(s, ie=True)
    fault(s, did=0x51)
    fault(s, did=0x52)
    fault(s, did=0x53)
    assert len(fq_records(s)) == 3
    assert s.writes_to(a) == [(0x5A).to_bytes(4, "little")]
    s.clear(FIP)
    fault(s, did=0x54)
    assert s.writes_to(a) == [(0x5A).to_bytes(4, "little")] * 2


def test_msi_resent_when_cleared_bit_resets():
    """ipsr: clearing cip while cmd_ill persists makes cip transition 0 -> 1 again, which
    generates a new message."""
    s = Sys()
    a = msi_vector(s, 0, 0x99)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert len(s.writes_to(a)) == 1
    s.clear(CIP)
    assert s.ipsr() == CIP
    assert len(s.writes_to(a)) == 2


def test_msi_not_sent_with_wsi():
    """fctl.WSI = 1: interrupts are wire-signaled; no MSI is written."""
    s = Sys(fctl=2)
    a = msi_vector(s, 0, 0x99)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert s.ipsr() == CIP
    assert s.writes_to(a) == []
    assert s.wires == [(0, True)]


def test_msi_write_access_fault_reports_273():
    """msi_cfg_tbl: an access fault on the MSI write is reported as "IOMMU MSI write access
    fault" (cause 273) with TTYP 0 and iotval = msi_addr_x; the resulting fault record
    raises fip, whose MSI (another vector) is delivered."""
    s = Sys()
    icvec(s, civ=1, fiv=0)
    good = msi_vector(s, 0, 0xF0)
    bad = msi_vector(s, 1, 0xC1)
    s.mem.inject(bad, 4, rv.MemoryFault.ACCESS_FAULT)
    setup_fq(s, ie=True)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert fq_records(s) == [rv.FaultRecord(cause=273, ttyp=0, iotval=bad)]
    assert s.ipsr() == CIP | FIP
    assert s.writes_to(good) == [(0xF0).to_bytes(4, "little")]


def test_msi_write_beyond_pas_reports_273():
    """msi_cfg_tbl + capabilities.PAS: an MSI address at or beyond 2^PAS is an access
    fault: cause 273, TTYP 0, iotval = msi_addr_x."""
    s = Sys(pas=40)
    icvec(s, pmiv=2)
    bad = 1 << 44
    s.iommu.mmio_write(REG.msi_addr(2), bad)
    s.iommu.mmio_write(REG.msi_data(2), 1, 4)
    setup_fq(s, ie=False)
    overflow_cycles(s)
    assert fq_records(s) == [rv.FaultRecord(cause=273, ttyp=0, iotval=bad)]
    assert s.mem.read(bad & ((1 << 40) - 1), 4) == bytes(4)  # no wrapped write


def test_msi_fault_on_fip_vector_terminates():
    """msi_cfg_tbl: when fip's own vector faults, the 273 record's fip is already pending
    (edge semantics), so reporting stops: one 273 for the cip MSI, one for the fip MSI."""
    s = Sys()
    bad = msi_vector(s, 0, 0xC1)
    s.mem.inject(bad, 4, rv.MemoryFault.ACCESS_FAULT)
    setup_fq(s, ie=True)
    setup_cq(s, ie=True)
    cmd_ill(s)
    rec = rv.FaultRecord(cause=273, ttyp=0, iotval=bad)
    assert fq_records(s) == [rec, rec]
    assert s.ipsr() == CIP | FIP


def test_msi_fault_dropped_when_fq_off():
    """msi_cfg_tbl: a 273 fault with the fault queue off is simply not recorded."""
    s = Sys()
    bad = msi_vector(s, 0, 0xC1)
    s.mem.inject(bad, 4, rv.MemoryFault.ACCESS_FAULT)
    setup_cq(s, ie=True)
    cmd_ill(s)
    assert s.ipsr() == CIP
    assert s.iommu.mmio_read(REG.FQT, 4) == 0


# ---------------------------------------------------------------------------
# Wire-signaled interrupts
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,bit", SOURCES)
def test_wsi_level_follows_ipsr(name: str, bit: int):
    """ipsr + fctl.WSI = 1: the pending bit drives the wire its icvec field selects: up
    when set, down when software clears it (conditions gone)."""
    s = Sys(fctl=2)
    icvec(s, civ=1, fiv=2, pmiv=3, piv=4)
    vec = {CIP: 1, FIP: 2, PMIP: 3, PIP: 4}[bit]
    enable_source(s, bit)
    trigger(s, bit)
    assert s.wires == [(vec, True)]
    if bit == CIP:
        fix_cmd_ill(s)
    s.clear(bit)
    assert s.ipsr() == 0
    assert s.wires == [(vec, True), (vec, False)]


def test_wsi_shared_vector():
    """icvec + WSI: two causes on one wire: it stays up until both bits are cleared."""
    s = Sys(fctl=2)
    icvec(s, pmiv=6, fiv=6)
    setup_fq(s, ie=True)
    overflow_cycles(s)
    fault(s)
    assert s.wires == [(6, True)]
    s.clear(PMIP)
    assert s.wires == [(6, True)]
    s.clear(FIP)
    assert s.wires == [(6, True), (6, False)]


def test_wsi_per_vector():
    """icvec + WSI: distinct vectors drive distinct wires independently."""
    s = Sys(fctl=2)
    icvec(s, pmiv=0, fiv=15)
    setup_fq(s, ie=True)
    overflow_cycles(s)
    fault(s)
    assert s.wires == [(0, True), (15, True)]
    s.clear(FIP)
    assert s.wires == [(0, True), (15, True), (15, False)]


def test_wsi_stays_up_while_condition_persists():
    """ipsr + WSI: clearing cip while cmd_ill persists re-sets it (the bit "transitions
    again from 0->1"), so the wire ends up high; an intermediate low level is allowed."""
    s = Sys(fctl=2)
    setup_cq(s, ie=True)
    cmd_ill(s)
    s.clear(CIP)
    assert s.ipsr() == CIP
    assert s.wires[0] == (0, True)
    assert s.wires[-1] == (0, True)
    assert s.iommu.intr.wire[0]  # model state, inspected on purpose


def test_wsi_fence_w_ip():
    """cqcsr.fence_w_ip (WSI only): IOFENCE.C with WSI = 1 sets fence_w_ip, which raises
    cip on the civ wire; clearing fence_w_ip then cip lowers it."""
    s = Sys(fctl=2)
    icvec(s, civ=7)
    setup_cq(s, ie=True)
    submit(s, iofence_c(wsi=True))
    io = s.iommu
    assert io.mmio_read(REG.CQCSR, 4) == F.CQCSR.mask_of("cqen", "cie", "cqon", "fence_w_ip")
    assert s.wires == [(7, True)]
    io.mmio_write(REG.CQCSR, F.CQCSR.mask_of("cqen", "cie", "fence_w_ip"), 4)
    s.clear(CIP)
    assert s.wires == [(7, True), (7, False)]


def test_wsi_only_iommu():
    """capabilities.IGS = WSI: fctl.WSI reads 1 and interrupts are wire-signaled."""
    s = Sys(igs=rv.IGS.WSI)
    assert s.iommu.mmio_read(REG.FCTL, 4) & F.FCTL.WSI.mask
    overflow_cycles(s)
    assert s.wires == [(0, True)]


def test_wsi_enabled_by_fctl_write():
    """fctl.WSI (IGS = BOTH): software selects wire-signaled interrupts by writing 1."""
    s = Sys()
    a = msi_vector(s, 0, 0x42)
    s.iommu.mmio_write(REG.FCTL, F.FCTL.WSI.mask, 4)
    overflow_cycles(s)
    assert s.wires == [(0, True)]
    assert s.writes_to(a) == []


def test_no_wires_in_msi_mode():
    """fctl.WSI = 0: interrupts are messages; no wire changes level."""
    s = Sys()
    msi_vector(s, 0, 0x42)
    for _, bit in SOURCES:
        enable_source(s, bit)
        trigger(s, bit)
    s.clear(PMIP | FIP | PIP)
    assert s.wires == []


def test_icvec_remap_moves_wire():
    """icvec + WSI: a pending bit drives the wire of its current vector; remapping the
    cause moves the level to the new wire."""
    s = Sys(fctl=2)
    icvec(s, pmiv=1)
    overflow_cycles(s)
    assert s.wires == [(1, True)]
    icvec(s, pmiv=2)
    assert sorted(s.wires[1:]) == [(1, False), (2, True)]
