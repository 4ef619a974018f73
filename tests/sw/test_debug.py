"""The debug translation-request interface.

Spec: iommu_debug.adoc "Debug support"; iommu_registers.adoc "Translation-request IOVA
(tr_req_iova)", "Translation-request control (tr_req_ctl)", "Translation-response
(tr_response)" (PPN NAPOT size encoding with S, PBMT, fault).  The request is the process
to translate an IOVA run as an Untranslated Request; faults go to the fault queue.
"""

from __future__ import annotations

from typing import Optional

import pytest

import riscv_iommu as rv
from helpers import (
    PD20,
    SV39,
    TC_PDTV,
    TC_SADE,
    TC_V,
    System,
    ta,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import RWX, URW, URWX, A, D, PageTable, R, U
from swhelpers import REG, fq_records, setup_fq

CTL = F.TR_REQ_CTL
RSP = F.TR_RESPONSE
DID = 0xABC12

PA_4K = 0x1_2345_6000
PA_64K = 0x3_4567_0000
PA_2M = 0x12_3460_0000
PA_1G = 0x23_C000_0000


def debug_translate(
    s: System,
    iova: int,
    did: int = DID,
    nw: int = 1,
    exe: int = 0,
    priv: int = 0,
    pid: Optional[int] = None,
) -> int:
    """Write tr_req_iova, then tr_req_ctl with Go/Busy; return tr_response."""
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA, iova)
    ctl = CTL.encode(
        Go_Busy=1,
        Priv=priv,
        Exe=exe,
        NW=nw,
        PID=pid or 0,
        PV=int(pid is not None),
        DID=did,
    )
    io.mmio_write(REG.TR_REQ_CTL, ctl)
    assert io.mmio_read(REG.TR_REQ_CTL) & CTL.Go_Busy.mask == 0  # completed
    return int(io.mmio_read(REG.TR_RESPONSE))


def rsp_fields(r: int) -> tuple[int, int, int, int]:
    """(fault, PBMT, S, PPN) from tr_response."""
    return r & 1, (r >> 7) & 3, (r >> 9) & 1, (r >> 10) & ((1 << 44) - 1)


def first_stage_system(tc: int = 0) -> tuple[System, PageTable]:
    """DC of DID: first stage from DC.fsc (PDTV = 0), second stage Bare (counting as
    1 GiB, IommuParams.bare_range_size); FQ enabled."""
    s = System(params=rv.IommuParams(bare_range_size=1 << 30))
    s1 = s.stage1()
    s.ddt.set_dc(DID, tc=TC_V | tc, fsc=s1.satp(), ta=ta(pscid=1))
    setup_fq(s)
    return s, s1


# ---------------------------------------------------------------------------
# successful translations: PPN, S, size encoding
# ---------------------------------------------------------------------------
def test_4k_translation_ppn_s0() -> None:
    """tr_response: fault = 0, S = 0 (4 KiB), PPN = the translated page number."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URWX | A | D)
    r = debug_translate(s, 0x7000)
    assert rsp_fields(r) == (0, 0, 0, PA_4K >> 12)
    assert fq_records(s) == []


def test_64k_napot_translation_size_encoded_in_ppn() -> None:
    """tr_response.S = 1, PPN yyyy...0111: a 64 KiB (Svnapot) translation."""
    s, s1 = first_stage_system()
    s1.map(0x4_0000, PA_64K, size=1 << 16, flags=URWX | A | D)
    r = debug_translate(s, 0x4_5000)
    assert rsp_fields(r) == (0, 0, 1, (PA_64K >> 12) | 0b0111)


def test_2m_superpage_size_encoded_in_ppn() -> None:
    """tr_response.S = 1, PPN yyyy...0 1111 1111: a 2 MiB superpage."""
    s, s1 = first_stage_system()
    s1.map(0x4020_0000, PA_2M, size=1 << 21, flags=URWX | A | D)
    r = debug_translate(s, 0x4020_0000 + 0x1_3000)
    assert rsp_fields(r) == (0, 0, 1, (PA_2M >> 12) | 0xFF)


def test_1g_superpage_size_encoded_in_ppn() -> None:
    """tr_response.S = 1: first 0 bit of PPN at X = 17 -> 2**18 * 4 KiB = 1 GiB."""
    s, s1 = first_stage_system()
    s1.map(0x8000_0000, PA_1G, size=1 << 30, flags=URWX | A | D)
    r = debug_translate(s, 0x8000_0000 + 0x1234_5000)
    fault_, pbmt, s_bit, ppn = rsp_fields(r)
    assert (fault_, pbmt, s_bit) == (0, 0, 1)
    assert ppn == (PA_1G >> 12) | 0x1FFFF
    # decode per the spec: scan from bit 0 for the first 0 bit
    x = 0
    while ppn >> x & 1:
        x += 1
    assert (1 << (x + 1)) * 4096 == 1 << 30


def test_two_stage_size_is_the_smaller_of_both() -> None:
    """tr_response: a 2 MiB first-stage page over a 4 KiB G-stage page is a 4 KiB translation."""
    s = System()
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest)
    s1.map(0x20_0000, 0x4000_0000, size=1 << 21, flags=URWX | A | D)
    guest.back(0x4000_3000, PA_4K)
    s.ddt.set_dc(DID, tc=TC_V, iohgatp=g.satp(3), fsc=s1.satp())
    r = debug_translate(s, 0x20_3000)
    assert rsp_fields(r) == (0, 0, 0, PA_4K >> 12)


@pytest.mark.parametrize("pbmt", [0, 1, 2])
def test_pbmt_of_first_stage_reported(pbmt: int) -> None:
    """tr_response.PBMT: the memory type from the first-stage PTE's PBMT."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URWX | A | D, pbmt=pbmt)
    r = debug_translate(s, 0x7000)
    assert rsp_fields(r) == (0, pbmt, 0, PA_4K >> 12)


def test_pbmt_of_second_stage_reported() -> None:
    """tr_response.PBMT: with first-stage PBMT = 0 the G-stage PTE's PBMT applies."""
    s = System()
    g = s.gstage(SV39)
    g.map(0x9000, PA_4K, flags=URWX | A | D, pbmt=2)
    s.ddt.set_dc(DID, tc=TC_V, iohgatp=g.satp(3))
    r = debug_translate(s, 0x9000)
    assert rsp_fields(r) == (0, 2, 0, PA_4K >> 12)


# ---------------------------------------------------------------------------
# request fields: Exe, NW, Priv, PV, PID, DID
# ---------------------------------------------------------------------------
def test_exe_requests_execute_permission() -> None:
    """tr_req_ctl.Exe = 1 (with NW = 1): execute is requested; a no-X page faults (cause 12,
    TTYP 1) and the fault is in the FQ."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URW | A | D)
    assert rsp_fields(debug_translate(s, 0x7000, exe=0))[0] == 0
    r = debug_translate(s, 0x7000, exe=1)
    assert r & RSP.fault.mask
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.INSTRUCTION_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_EXECUTE,
            iotval=0x7000,
            device_id=DID,
        )
    ]


def test_nw0_requests_read_and_write() -> None:
    """tr_req_ctl.NW = 0: read and write permission requested; a read-only page faults with a
    write page fault (TTYP 3); NW = 1 on it succeeds."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=U | R | A)
    assert rsp_fields(debug_translate(s, 0x7000, nw=1)) == (0, 0, 0, PA_4K >> 12)
    r = debug_translate(s, 0x7000, nw=0)
    assert r & RSP.fault.mask
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.WRITE_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
            iotval=0x7000,
            device_id=DID,
        )
    ]


def test_nw0_sets_dirty_bit() -> None:
    """NW = 0 requests write permission: with DC.tc.SADE = 1 the walk sets A and D as for a
    write (the debug spec allows A/D updates)."""
    s, s1 = first_stage_system(TC_SADE)
    pte_addr = s1.map(0x7000, PA_4K, flags=URW)
    assert rsp_fields(debug_translate(s, 0x7000, nw=0)) == (0, 0, 0, PA_4K >> 12)
    pte = s.mem.read_u64(pte_addr)
    assert pte & (A | D) == A | D


def _process_system() -> tuple[System, PageTable]:
    s = System()
    s1 = s.stage1()
    s1.map(0x1000, PA_4K, flags=URWX | A | D)  # user page
    s1.map(0x2000, PA_4K + 0x1000, flags=RWX | A | D)  # supervisor page
    pdt = s.pdt(mode=PD20)
    pdt.set_pc(0x5A5A5, fsc=s1.satp(), pscid=2, ens=True)
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    setup_fq(s)
    return s, s1


def test_pv_pid_priv_select_process_and_privilege() -> None:
    """tr_req_ctl.PV = 1 gives the process_id PID; Priv = 1 requests supervisor privilege:
    the supervisor page translates only with Priv = 1, the user page only with Priv = 0."""
    s, _ = _process_system()
    pid = 0x5A5A5
    assert rsp_fields(debug_translate(s, 0x1000, pid=pid, priv=0)) == (0, 0, 0, PA_4K >> 12)
    assert rsp_fields(debug_translate(s, 0x2000, pid=pid, priv=1)) == (
        0,
        0,
        0,
        (PA_4K >> 12) + 1,
    )
    assert debug_translate(s, 0x1000, pid=pid, priv=1) & 1
    assert debug_translate(s, 0x2000, pid=pid, priv=0) & 1
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.READ_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_READ,
            iotval=0x1000,
            device_id=DID,
            process_id=pid,
            pv=True,
            priv=True,
        ),
        rv.FaultRecord(
            cause=rv.Cause.READ_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_READ,
            iotval=0x2000,
            device_id=DID,
            process_id=pid,
            pv=True,
            priv=False,
        ),
    ]


def test_unknown_pid_faults_266() -> None:
    """tr_req_ctl.PID selects the process context: a PID without a valid PC faults (266)."""
    s, _ = _process_system()
    assert debug_translate(s, 0x1000, pid=0x1234) & 1
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.PDT_ENTRY_NOT_VALID,
            ttyp=rv.Ttyp.UNTRANSLATED_READ,
            iotval=0x1000,
            device_id=DID,
            process_id=0x1234,
            pv=True,
        )
    ]


def test_priv_ignored_when_pv_0() -> None:
    """tr_req_ctl.Priv: when PV is 0 the field is ignored and no privileged access is requested
    (a user page translates, a supervisor page faults)."""
    s, s1 = first_stage_system()
    s1.map(0x1000, PA_4K, flags=URWX | A | D)
    s1.map(0x2000, PA_4K + 0x1000, flags=RWX | A | D)
    assert rsp_fields(debug_translate(s, 0x1000, priv=1)) == (0, 0, 0, PA_4K >> 12)
    assert debug_translate(s, 0x2000, priv=1) & 1
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.READ_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_READ,
            iotval=0x2000,
            device_id=DID,
        )
    ]


def test_did_selects_device_context() -> None:
    """tr_req_ctl.DID provides the device_id: another DID uses its own DC (here not valid: 258,
    reported with DID in the record)."""
    s, s1 = first_stage_system()
    s1.map(0x1000, PA_4K, flags=URWX | A | D)
    assert debug_translate(s, 0x1000, did=DID + 1) & 1
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.DDT_ENTRY_NOT_VALID,
            ttyp=rv.Ttyp.UNTRANSLATED_READ,
            iotval=0x1000,
            device_id=DID + 1,
        )
    ]


def test_iova_offset_bits_reserved() -> None:
    """tr_req_iova bits 11:0 are reserved: they read 0 and the IOVA reported is the page."""
    s, _ = first_stage_system()
    s.iommu.mmio_write(REG.TR_REQ_IOVA, 0x7ABC)
    assert s.iommu.mmio_read(REG.TR_REQ_IOVA) == 0x7000
    assert debug_translate(s, 0x7ABC) & 1  # unmapped
    assert [r.iotval for r in fq_records(s)] == [0x7000]


# ---------------------------------------------------------------------------
# MSI
# ---------------------------------------------------------------------------
def _msi_system() -> System:
    s = System()
    g = s.gstage(SV39)
    pt = s.msipt(8)
    pt.set_flat(1, 0x2400_1000)
    pt.set_mrif(2, 0x5000_0200, 0x6000_0000, 0x123)
    s.ddt.set_dc(
        DID,
        tc=TC_V,
        iohgatp=g.satp(1),
        msiptp=pt.msiptp(),
        msi_addr_mask=0x7,
        msi_addr_pattern=0x2800_0,
    )
    setup_fq(s)
    return s


def test_mrif_mode_msi_address_faults_260() -> None:
    """Debug support: an IOVA of a virtual interrupt file whose MSI PTE is in MRIF mode stops
    with "Transaction type disallowed" (260): fault bit and a record in the FQ."""
    s = _msi_system()
    r = debug_translate(s, 0x2800_2000, nw=0)
    assert r & RSP.fault.mask
    assert fq_records(s) == [
        rv.FaultRecord(
            cause=rv.Cause.TRANSACTION_TYPE_DISALLOWED,
            ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
            iotval=0x2800_2000,
            device_id=DID,
        )
    ]


def test_flat_mode_msi_address_translates() -> None:
    """A basic-translate MSI PTE translates the interrupt-file page (4 KiB, S = 0)."""
    s = _msi_system()
    r = debug_translate(s, 0x2800_1000, nw=0)
    assert rsp_fields(r) == (0, 0, 0, 0x2400_1)
    assert fq_records(s) == []


# ---------------------------------------------------------------------------
# Go/Busy
# ---------------------------------------------------------------------------
def test_go_busy_reads_0_after_completion_and_writing_0_starts_nothing() -> None:
    """tr_req_ctl.Go/Busy is RW1S: it reads 0 once the translation completed; writing the
    register with Go/Busy = 0 does not start a translation (tr_response keeps its value)."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URWX | A | D)
    r = debug_translate(s, 0x7000)
    assert rsp_fields(r) == (0, 0, 0, PA_4K >> 12)
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA, 0x9000)  # unmapped
    io.mmio_write(REG.TR_REQ_CTL, CTL.encode(Go_Busy=0, NW=1, DID=DID))
    assert io.mmio_read(REG.TR_REQ_CTL) == CTL.encode(NW=1, DID=DID)
    assert io.mmio_read(REG.TR_RESPONSE) == r
    assert fq_records(s) == []


def test_rv32_style_writes_high_half_first_then_go() -> None:
    """RV32 note: the high half (DID) is written first, then the low half with Go/Busy."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URWX | A | D)
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA + 4, 0, 4)
    io.mmio_write(REG.TR_REQ_IOVA, 0x7000, 4)
    ctl = CTL.encode(Go_Busy=1, NW=1, DID=DID)
    io.mmio_write(REG.TR_REQ_CTL + 4, ctl >> 32, 4)
    assert rsp_fields(int(io.mmio_read(REG.TR_RESPONSE))) == (0, 0, 0, 0)  # nothing yet
    io.mmio_write(REG.TR_REQ_CTL, ctl & 0xFFFF_FFFF, 4)
    assert io.mmio_read(REG.TR_REQ_CTL, 4) & 1 == 0
    assert rsp_fields(int(io.mmio_read(REG.TR_RESPONSE))) == (0, 0, 0, PA_4K >> 12)


def test_tr_response_is_read_only() -> None:
    """tr_response is RO."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URWX | A | D)
    r = debug_translate(s, 0x7000)
    s.iommu.mmio_write(REG.TR_RESPONSE, 0xFFFF_FFFF_FFFF_FFFF)
    assert s.iommu.mmio_read(REG.TR_RESPONSE) == r


def test_fault_sets_fault_bit_then_success_clears_it() -> None:
    """tr_response.fault is 1 after a faulting translation and 0 after a successful one."""
    s, s1 = first_stage_system()
    s1.map(0x7000, PA_4K, flags=URWX | A | D)
    assert debug_translate(s, 0x8000) & 1
    assert rsp_fields(debug_translate(s, 0x7000)) == (0, 0, 0, PA_4K >> 12)


def test_debug_absent_registers_read_zero() -> None:
    """capabilities.DBG = 0: tr_req_iova/tr_req_ctl/tr_response are absent (read 0)."""
    s = System(dbg=False)
    s1 = s.stage1()
    s1.map(0x7000, PA_4K, flags=URWX | A | D)
    s.ddt.set_dc(DID, tc=TC_V, fsc=s1.satp())
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA, 0x7000)
    io.mmio_write(REG.TR_REQ_CTL, CTL.encode(Go_Busy=1, NW=1, DID=DID))
    assert io.mmio_read(REG.TR_REQ_IOVA) == 0
    assert io.mmio_read(REG.TR_REQ_CTL) == 0
    assert io.mmio_read(REG.TR_RESPONSE) == 0
