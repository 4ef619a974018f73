"""MSI address translation: §P2IOVA step 18 and §MSI_TRANS.

Spec: iommu_data_structures.adoc, "Process to translate an IOVA" step 18,
"MSI address mask (msi_addr_mask) and pattern (msi_addr_pattern)" (MSI_ID) and
"Process to translate addresses of MSIs" (MSI_TRANS, steps numbered 1..16 below).
MSI PTE formats are those of the Advanced Interrupt Architecture ("MSI page tables"):
first doubleword V bit 0, M bits 2:1, C bit 63; basic-translate mode (M=3) PPN bits 53:10;
MRIF mode (M=1) MRIF Address[55:9] in bits 53:7, second doubleword N[9:0] bits 9:0,
NPPN bits 53:10, N10 bit 60.  MSI PTEs are read in the byte order of fctl.BE
(table "Endianness of memory access to data structures").
"""

from __future__ import annotations

from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    SV39,
    TC_DTF,
    TC_EN_ATS,
    TC_T2GPA,
    TC_V,
    System,
    fault,
)
from riscv_iommu import formats as F
from riscv_iommu import msi

DID = 0x2A
#: guest-physical page number of interrupt file 0; mask 0x7 gives 8 interrupt files
PATTERN = 0x2800_0
MASK = 0x7
MSI_GPA = PATTERN << 12
#: SPA of the (real) guest interrupt file that interrupt file I translates to
IF_SPA = 0x2400_0000

U64 = (1 << 64) - 1
# reserved bits (AIA): flat dword 0 = bits 9:3 and 62:54; MRIF dword 0 = bits 6:3 and 62:54;
# MRIF dword 1 = bits 59:54 and 63:61
FLAT0_RESERVED = [*range(3, 10), *range(54, 63)]
MRIF0_RESERVED = [*range(3, 7), *range(54, 63)]
MRIF1_RESERVED = [*range(54, 60), *range(61, 64)]

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flat0(ppn: int, **kw: int) -> int:
    return F.MSIPTE0.encode(V=1, M=3, PPN=ppn, **kw)


def mrif0(mrif: int) -> int:
    return F.MSIPTE_MRIF0.encode(V=1, M=1, MRIF_Address=mrif >> 9)


def mrif1(notice: int, nid: int) -> int:
    return F.MSIPTE_MRIF1.encode(N=nid & 0x3FF, NPPN=notice >> 12, N10=nid >> 10)


class MsiSetup:
    """A device DID with a G-stage table and a flat MSI page table (mask/pattern above)."""

    def __init__(
        self,
        tc: int = TC_V,
        mask: int = MASK,
        pattern: int = PATTERN,
        entries: int = 8,
        msiptp: Optional[int] = None,
        fsc: int = 0,
        params: Optional[rv.IommuParams] = None,
        fctl: int = 0,
        **caps: Any,
    ) -> None:
        self.s = System(params=params, fctl=fctl, **caps)
        self.g = self.s.gstage(SV39)
        self.pt = self.s.msipt(entries)
        self.tc = tc
        self.mask = mask
        self.pattern = pattern
        self.msiptp = self.pt.msiptp() if msiptp is None else msiptp
        self.fsc = fsc
        self.program()

    def program(self) -> None:
        self.s.ddt.set_dc(
            DID,
            tc=self.tc,
            iohgatp=self.g.satp(3),
            fsc=self.fsc,
            msiptp=self.msiptp,
            msi_addr_mask=self.mask,
            msi_addr_pattern=self.pattern,
        )
        self.s.iommu.invalidate_ddt()

    def t(self, addr: int, access: rv.Access = rv.Access.WRITE, **kw: Any) -> rv.Response:
        kw.setdefault("length", 4)
        return self.s.t(DID, addr, access, **kw)


def rec(cause: int, addr: int, ttyp: rv.Ttyp = rv.Ttyp.UNTRANSLATED_WRITE) -> rv.FaultRecord:
    return rv.FaultRecord(cause=cause, ttyp=ttyp, iotval=addr, device_id=DID)


def assert_fault(rsp: rv.Response, cause: int, addr: int, **kw: Any) -> None:
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert fault(rsp) == rec(cause, addr, **kw)
    assert rsp.reported


# ----------------------------------------------------------------------------------------------
# MSI_ID / P2IOVA step 18: recognition of virtual interrupt file addresses
# ----------------------------------------------------------------------------------------------


def test_step18_first_stage_bare_msi_gpa_is_msi_translated() -> None:
    """P2IOVA step 18, MSI_TRANS steps 3, 5-13: first stage Bare, A = IOVA matches the pattern."""
    m = MsiSetup()
    m.pt.set_flat(5, IF_SPA + 0x5000)
    rsp = m.t(MSI_GPA | 0x5000)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.fault is None
    assert rsp.addr == IF_SPA + 0x5000
    assert rsp.is_msi and not rsp.is_mrif


def test_step18_gpa_after_first_stage_is_what_is_recognised() -> None:
    """P2IOVA steps 17-18: `A` is the GPA produced by the first stage, not the IOVA."""
    m = MsiSetup()
    guest = m.s.guest(m.g)
    s1 = m.s.stage1(guest, SV39)
    m.fsc = s1.satp()
    m.program()
    m.pt.set_flat(3, IF_SPA + 0x3000)
    # an IOVA that does not match the pattern, mapped onto interrupt file 3's GPA
    s1.map(0x7_0000_0000, MSI_GPA | 0x3000)
    # an IOVA that matches the pattern, mapped onto ordinary guest memory
    spa = m.s.page()
    guest.back(0x5000_0000, spa)
    s1.map(MSI_GPA | 0x3000, 0x5000_0000)

    rsp = m.t(0x7_0000_0004)
    assert (rsp.status, rsp.addr, rsp.is_msi) == (rv.Status.SUCCESS, IF_SPA + 0x3004, True)
    assert (rsp.r, rsp.w, rsp.x) == (True, True, False)

    rsp = m.t(MSI_GPA | 0x3004)
    assert (rsp.status, rsp.addr, rsp.is_msi) == (rv.Status.SUCCESS, spa | 4, False)


def test_step18_non_msi_gpa_goes_through_g_stage() -> None:
    """MSI_TRANS step 4 / P2IOVA step 19: a GPA not matching the pattern uses the G-stage."""
    m = MsiSetup()
    m.pt.set_flat(0, IF_SPA)
    spa = m.s.page()
    gpa = (PATTERN + 8) << 12  # first page above the 8 interrupt files
    m.g.map(gpa, spa)
    rsp = m.t(gpa | 0x10)
    assert (rsp.status, rsp.addr, rsp.is_msi) == (rv.Status.SUCCESS, spa | 0x10, False)
    # unmapped and not an MSI address: a guest-page fault of the G-stage
    rsp = m.t((PATTERN - 1) << 12, rv.Access.READ)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert fault(rsp) == rv.FaultRecord(
        cause=rv.Cause.READ_GUEST_PAGE_FAULT,
        ttyp=rv.Ttyp.UNTRANSLATED_READ,
        iotval=(PATTERN - 1) << 12,
        iotval2=(PATTERN - 1) << 12,
        device_id=DID,
    )


def test_msiptp_mode_off_disables_msi_translation() -> None:
    """msiptp.MODE=Off: "Recognition ... using MSI address mask and pattern is not performed"."""
    m = MsiSetup()
    m.pt.set_flat(1, IF_SPA + 0x1000)
    m.msiptp = F.MSIPTP.encode(PPN=m.pt.root >> 12, MODE=0)
    m.program()
    rsp = m.t(MSI_GPA | 0x1000)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert fault(rsp) == rv.FaultRecord(
        cause=rv.Cause.WRITE_GUEST_PAGE_FAULT,
        ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
        iotval=MSI_GPA | 0x1000,
        iotval2=MSI_GPA | 0x1000,
        device_id=DID,
    )
    spa = m.s.page()
    m.g.map(MSI_GPA | 0x1000, spa)
    rsp = m.t(MSI_GPA | 0x1008)
    assert (rsp.status, rsp.addr, rsp.is_msi) == (rv.Status.SUCCESS, spa | 8, False)


def _popcount_at_most(n: int, limit: int) -> bool:
    return bin(n).count("1") <= limit


@HYP
@given(
    mask=st.integers(0, (1 << 24) - 1).filter(lambda v: _popcount_at_most(v, 5)),
    pattern=st.integers(0, (1 << 24) - 1),
    page=st.integers(0, (1 << 24) - 1),
    near=st.booleans(),
    off=st.integers(0, 0xFFC).map(lambda v: v & ~3),
)
def test_msi_id_recognition_and_interrupt_file_number(
    mask: int, pattern: int, page: int, near: bool, off: int
) -> None:
    """MSI_ID: (A >> 12) & ~mask == pattern & ~mask; MSI_TRANS step 5: I = extract(A >> 12, mask).

    Non-matching GPAs (unmapped in the G-stage) take the G-stage and fault there."""
    if near:  # a page that differs from the pattern only under the mask
        page = (pattern & ~mask) | (page & mask)
    m = MsiSetup(mask=mask, pattern=pattern, entries=32)
    for i in range(32):
        m.pt.set_flat(i, IF_SPA + (i << 12))
    a = (page << 12) | off
    rsp = m.t(a)
    if (page & ~mask) == (pattern & ~mask):
        i = ref_extract(page, mask)
        assert (rsp.status, rsp.addr, rsp.is_msi) == (
            rv.Status.SUCCESS,
            IF_SPA + (i << 12) | off,
            True,
        )
    else:
        assert rsp.status == rv.Status.COMPLETER_ABORT
        assert fault(rsp) == rv.FaultRecord(
            cause=rv.Cause.WRITE_GUEST_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
            iotval=a,
            iotval2=a,
            device_id=DID,
        )


# ----------------------------------------------------------------------------------------------
# MSI_TRANS step 5: extract(x, y); step 7: PTE address m | (I x 16)
# ----------------------------------------------------------------------------------------------


def ref_extract(x: int, y: int) -> int:
    """Reference: keep the bits of x where y has ones, packed from the LSB in order."""
    bits = [(x >> k) & 1 for k in range(max(x.bit_length(), y.bit_length())) if (y >> k) & 1]
    return sum(b << k for k, b in enumerate(bits))


def test_step5_extract_spec_example() -> None:
    """MSI_TRANS step 5: x = abcdefgh, y = 10100110 gives 0000acfg (every x of 8 bits)."""
    y = 0b1010_0110
    for x in range(256):
        a, c, f, g = (x >> 7) & 1, (x >> 5) & 1, (x >> 2) & 1, (x >> 1) & 1
        assert msi.extract(x, y) == (a << 3) | (c << 2) | (f << 1) | g


@given(x=st.integers(0, (1 << 52) - 1), y=st.integers(0, (1 << 52) - 1))
def test_step5_extract_matches_reference(x: int, y: int) -> None:
    """MSI_TRANS step 5: extract against a straightforward reference implementation."""
    assert msi.extract(x, y) == ref_extract(x, y)
    assert msi.extract(x, 0) == 0
    assert msi.extract(x, y) < 1 << bin(y).count("1")


def test_step7_msi_pte_address_with_scattered_mask_bits() -> None:
    """MSI_TRANS steps 5-7: mask bits 1, 2, 5, 7 of the page number select entry extract()."""
    mask = 0b1010_0110
    m = MsiSetup(mask=mask, pattern=PATTERN, entries=16)
    for i in range(16):
        m.pt.set_flat(i, IF_SPA + (i << 12))
    page = PATTERN | 0b1000_0100  # x bits 7 and 2 set -> I = 0b1010
    rsp = m.t((page << 12) | 0x40)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, IF_SPA + (0b1010 << 12) | 0x40)


def test_step7_msi_pte_address_is_or_not_plus() -> None:
    """MSI_TRANS step 7: the PTE is at m | (I x 16) (OR), which differs from m + I x 16 when m
    is not aligned to the table size."""
    mask = 0x1FF  # 512 entries, 8 KiB
    m = MsiSetup(mask=mask, pattern=PATTERN & ~0x1FF)
    base = m.s.alloc.alloc(0x4000, 0x4000)
    mm = base + 0x1000  # bit 12 of m set
    m.msiptp = F.MSIPTP.encode(PPN=mm >> 12, MODE=1)
    m.program()
    be = m.s.be
    order = "big" if be else "little"
    # I = 256: m | 0x1000 = m, while m + 0x1000 = base + 0x2000
    m.s.mem.write(mm, flat0((IF_SPA >> 12) + 1).to_bytes(8, order))
    m.s.mem.write(mm + 0x1000, flat0((IF_SPA >> 12) + 2).to_bytes(8, order))
    gpa = ((PATTERN & ~0x1FF) | 256) << 12
    rsp = m.t(gpa)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, IF_SPA + 0x1000)


# ----------------------------------------------------------------------------------------------
# MSI_TRANS step 13: basic translate mode
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("access", [rv.Access.WRITE, rv.Access.READ])
def test_step13_basic_translate_address_and_permissions(access: rv.Access) -> None:
    """MSI_TRANS step 13: translated address = PPN << 12 | A[11:0]; step 15: R=W=1, X=0."""
    m = MsiSetup()
    ppn = (1 << 44) - 1  # PPN bits 53:10 all ones
    m.pt.set_raw(6, flat0(ppn))
    rsp = m.t(MSI_GPA | 0x6ABC, access)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.fault is None
    assert rsp.addr == (ppn << 12) | 0xABC
    assert rsp.is_msi and not rsp.is_mrif
    assert (rsp.r, rsp.w, rsp.x) == (True, True, False)
    assert (rsp.mrif_addr, rsp.notice_addr, rsp.nid) == (0, 0, 0)


def test_step13_basic_translate_second_doubleword_is_ignored() -> None:
    """AIA: in basic-translate mode the second doubleword of the MSI PTE is ignored."""
    m = MsiSetup()
    m.pt.set_raw(2, flat0(0x12345), U64)
    rsp = m.t(MSI_GPA | 0x2000)
    assert (rsp.status, rsp.addr, rsp.is_msi) == (rv.Status.SUCCESS, 0x12345 << 12, True)


# ----------------------------------------------------------------------------------------------
# MSI_TRANS step 14: MRIF mode
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mrif", "notice", "nid"),
    [
        (0x9000_0200, 0x9100_0000, 0x123),
        (((1 << 47) - 1) << 9, ((1 << 44) - 1) << 12, 0x7FF),  # every field bit set
        (0x200, 0x1000, 0x400),  # N10 only
    ],
)
def test_step14_mrif_pte_response(mrif: int, notice: int, nid: int) -> None:
    """MSI_TRANS step 14: MRIF = MRIF_Address[55:9] * 512, notice = NPPN << 12,
    NID = N10 << 10 | N; step 15: U=1 (the ATS completion asks for untranslated accesses)."""
    m = MsiSetup()
    m.pt.set_mrif(4, mrif, notice, nid)
    rsp = m.t(MSI_GPA | 0x4000)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.fault is None
    assert rsp.is_msi and rsp.is_mrif
    assert (rsp.mrif_addr, rsp.notice_addr, rsp.nid) == (mrif, notice, nid)
    assert rsp.u
    assert (rsp.r, rsp.w, rsp.x) == (True, True, False)


def test_step14_mrif_without_msi_mrif_capability_is_misconfigured() -> None:
    """MSI_TRANS step 14.a: capabilities.MSI_MRIF == 0 -> "MSI PTE misconfigured" (263)."""
    m = MsiSetup(msi_mrif=False)
    m.pt.set_mrif(4, 0x9000_0000, 0x9100_0000, 5)
    assert_fault(m.t(MSI_GPA | 0x4000), rv.Cause.MSI_PTE_MISCONFIGURED, MSI_GPA | 0x4000)


# ----------------------------------------------------------------------------------------------
# MSI_TRANS steps 7-12: faults
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dword", [0, 1])
@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        (rv.MemoryFault.ACCESS_FAULT, rv.Cause.MSI_PTE_LOAD_ACCESS_FAULT),
        (rv.MemoryFault.DATA_CORRUPTION, rv.Cause.MSI_PT_DATA_CORRUPTION),
    ],
)
def test_step7_8_msi_pte_load_faults(dword: int, kind: rv.MemoryFault, cause: rv.Cause) -> None:
    """MSI_TRANS step 7: PMA/PMP violation reading msipte -> 261; step 8: poisoned data -> 270.
    Both doublewords of the sixteen-byte msipte are read."""
    m = MsiSetup()
    addr = m.pt.set_flat(3, IF_SPA)
    m.s.mem.inject(addr + 8 * dword, 8, kind)
    assert_fault(m.t(MSI_GPA | 0x3000), cause, MSI_GPA | 0x3000)


def test_step7_msi_pte_beyond_pas_is_load_access_fault() -> None:
    """MSI_TRANS step 7: an msipte address beyond capabilities.PAS violates the PMAs (261)."""
    m = MsiSetup(pas=40)
    m.msiptp = F.MSIPTP.encode(PPN=1 << 28, MODE=1)  # m = 2**40
    m.program()
    assert_fault(m.t(MSI_GPA), rv.Cause.MSI_PTE_LOAD_ACCESS_FAULT, MSI_GPA)


@pytest.mark.parametrize("pte1", [0, U64])
def test_step9_msi_pte_not_valid(pte1: int) -> None:
    """MSI_TRANS step 9: msipte.V == 0 -> "MSI PTE not valid" (262)."""
    m = MsiSetup()
    m.pt.set_raw(1, flat0(0x1234) & ~1, pte1)
    assert_fault(m.t(MSI_GPA | 0x1000), rv.Cause.MSI_PTE_NOT_VALID, MSI_GPA | 0x1000)


def test_step10_custom_msi_pte_is_misconfigured() -> None:
    """MSI_TRANS step 10: C == 1 is implementation defined; this IOMMU implements no custom
    PTE and reports "MSI PTE misconfigured" (263)."""
    m = MsiSetup()
    m.pt.set_raw(1, flat0(0x1234, C=1))
    assert_fault(m.t(MSI_GPA | 0x1000), rv.Cause.MSI_PTE_MISCONFIGURED, MSI_GPA | 0x1000)


@pytest.mark.parametrize("mode", [0, 2])
def test_step12_reserved_msi_pte_mode_is_misconfigured(mode: int) -> None:
    """MSI_TRANS step 12: msipte.M == 0 or 2 -> "MSI PTE misconfigured" (263)."""
    m = MsiSetup()
    m.pt.set_raw(1, F.MSIPTE0.encode(V=1, M=mode, PPN=0x1234))
    assert_fault(m.t(MSI_GPA | 0x1000), rv.Cause.MSI_PTE_MISCONFIGURED, MSI_GPA | 0x1000)


@pytest.mark.parametrize("bit", FLAT0_RESERVED)
def test_step13a_basic_translate_reserved_bits_are_misconfigured(bit: int) -> None:
    """MSI_TRANS step 13.a: a reserved bit set in a basic-translate msipte -> 263."""
    m = MsiSetup()
    m.pt.set_raw(1, flat0(0x1234) | (1 << bit))
    assert_fault(m.t(MSI_GPA | 0x1000), rv.Cause.MSI_PTE_MISCONFIGURED, MSI_GPA | 0x1000)


@pytest.mark.parametrize(
    ("dword", "bit"), [(0, b) for b in MRIF0_RESERVED] + [(1, b) for b in MRIF1_RESERVED]
)
def test_step14b_mrif_reserved_bits_are_misconfigured(dword: int, bit: int) -> None:
    """MSI_TRANS step 14.b: a reserved bit set in either doubleword of an MRIF msipte -> 263."""
    m = MsiSetup()
    pte = [mrif0(0x9000_0000), mrif1(0x9100_0000, 9)]
    pte[dword] |= 1 << bit
    m.pt.set_raw(1, *pte)
    assert_fault(m.t(MSI_GPA | 0x1000), rv.Cause.MSI_PTE_MISCONFIGURED, MSI_GPA | 0x1000)


@pytest.mark.parametrize("cause", [rv.Cause.MSI_PTE_NOT_VALID, rv.Cause.MSI_PTE_MISCONFIGURED])
def test_msi_pte_faults_are_not_reported_with_dtf(cause: rv.Cause) -> None:
    """CAUSE table: 262 and 263 are not reported when DC.tc.DTF is 1 (the request still aborts)."""
    m = MsiSetup(tc=TC_V | TC_DTF)
    pte0 = flat0(0x1234) & ~1 if cause == rv.Cause.MSI_PTE_NOT_VALID else flat0(0x1234, C=1)
    m.pt.set_raw(1, pte0)
    rsp = m.t(MSI_GPA | 0x1000)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert fault(rsp) == rec(cause, MSI_GPA | 0x1000)
    assert not rsp.reported


# ----------------------------------------------------------------------------------------------
# MSI_TRANS step 15: permissions (R=W=U=1, X=0)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mrif", [False, True])
def test_step15_untranslated_execute_is_instruction_access_fault(mrif: bool) -> None:
    """MSI_TRANS step 15.a: an Untranslated read-for-execute -> "Instruction access fault" (1)."""
    m = MsiSetup()
    if mrif:
        m.pt.set_mrif(2, 0x9000_0000, 0x9100_0000, 1)
    else:
        m.pt.set_flat(2, IF_SPA)
    rsp = m.t(MSI_GPA | 0x2000, rv.Access.EXECUTE)
    assert_fault(
        rsp, rv.Cause.INSTRUCTION_ACCESS_FAULT, MSI_GPA | 0x2000, ttyp=rv.Ttyp.UNTRANSLATED_EXECUTE
    )


def test_step15_translated_execute_is_instruction_access_fault() -> None:
    """MSI_TRANS step 15.a: a Translated read-for-execute (T2GPA=1, P2IOVA step 9) -> cause 1."""
    m = MsiSetup(tc=TC_V | TC_EN_ATS | TC_T2GPA)
    m.pt.set_flat(2, IF_SPA)
    rsp = m.t(MSI_GPA | 0x2000, rv.Access.EXECUTE, kind=rv.RequestKind.TRANSLATED)
    assert_fault(
        rsp, rv.Cause.INSTRUCTION_ACCESS_FAULT, MSI_GPA | 0x2000, ttyp=rv.Ttyp.TRANSLATED_EXECUTE
    )


def test_step15_execute_checked_after_pte_validity() -> None:
    """MSI_TRANS steps 9 and 15: an execute request to an invalid msipte reports 262 first."""
    m = MsiSetup()
    m.pt.set_raw(2, 0)
    rsp = m.t(MSI_GPA | 0x2000, rv.Access.EXECUTE)
    assert_fault(
        rsp, rv.Cause.MSI_PTE_NOT_VALID, MSI_GPA | 0x2000, ttyp=rv.Ttyp.UNTRANSLATED_EXECUTE
    )


# ----------------------------------------------------------------------------------------------
# ATS translation requests
# ----------------------------------------------------------------------------------------------


def test_ats_translation_of_msi_address() -> None:
    """P2IOVA step 18 for an ATS Translation Request: the completion carries PPN << 12, R=W=1."""
    m = MsiSetup(tc=TC_V | TC_EN_ATS)
    m.pt.set_flat(7, IF_SPA + 0x7000)
    rsp = m.t(MSI_GPA | 0x7000, rv.Access.WRITE, kind=rv.RequestKind.ATS_TRANSLATION)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.fault is None
    assert (rsp.addr, rsp.r, rsp.w, rsp.x, rsp.is_msi) == (IF_SPA + 0x7000, True, True, False, True)


def test_ats_translation_with_invalid_msi_pte_is_success_without_permissions() -> None:
    """ "Faults ... for ATS": cause 262 -> Success completion with R=W=0 and no fault record."""
    m = MsiSetup(tc=TC_V | TC_EN_ATS)
    m.pt.set_raw(7, 0)
    rsp = m.t(MSI_GPA | 0x7000, rv.Access.READ, kind=rv.RequestKind.ATS_TRANSLATION)
    assert rsp.status == rv.Status.SUCCESS
    assert (rsp.r, rsp.w, rsp.x) == (False, False, False)
    assert not rsp.reported
    assert fault(rsp) == rec(rv.Cause.MSI_PTE_NOT_VALID, MSI_GPA | 0x7000, rv.Ttyp.ATS_TRANSLATION)


def test_ats_translation_with_misconfigured_msi_pte_is_completer_abort() -> None:
    """263 is not in the "Success R=W=0" list: an ATS request gets a Completer Abort, reported."""
    m = MsiSetup(tc=TC_V | TC_EN_ATS)
    m.pt.set_raw(7, F.MSIPTE0.encode(V=1, M=2))
    rsp = m.t(MSI_GPA | 0x7000, rv.Access.READ, kind=rv.RequestKind.ATS_TRANSLATION)
    assert_fault(
        rsp, rv.Cause.MSI_PTE_MISCONFIGURED, MSI_GPA | 0x7000, ttyp=rv.Ttyp.ATS_TRANSLATION
    )


# ----------------------------------------------------------------------------------------------
# Guest/hypervisor-controlled MSI PTE contents: every value decodes per the spec
# ----------------------------------------------------------------------------------------------


def expected_outcome(pte0: int, pte1: int, access: rv.Access, mrif_cap: bool) -> Any:
    """Reference decoder of MSI_TRANS steps 9-15: a cause or (addr, mrif, notice, nid)."""
    if not pte0 & 1:
        return rv.Cause.MSI_PTE_NOT_VALID
    if pte0 >> 63:
        return rv.Cause.MSI_PTE_MISCONFIGURED
    mode = (pte0 >> 1) & 3
    if mode in (0, 2):
        return rv.Cause.MSI_PTE_MISCONFIGURED
    if mode == 3:
        if any((pte0 >> b) & 1 for b in FLAT0_RESERVED):
            return rv.Cause.MSI_PTE_MISCONFIGURED
        out = (((pte0 >> 10) & ((1 << 44) - 1)) << 12, None)
    else:
        if not mrif_cap:
            return rv.Cause.MSI_PTE_MISCONFIGURED
        if any((pte0 >> b) & 1 for b in MRIF0_RESERVED) or any(
            (pte1 >> b) & 1 for b in MRIF1_RESERVED
        ):
            return rv.Cause.MSI_PTE_MISCONFIGURED
        mrif = ((pte0 >> 7) & ((1 << 47) - 1)) << 9
        notice = ((pte1 >> 10) & ((1 << 44) - 1)) << 12
        nid = (((pte1 >> 60) & 1) << 10) | (pte1 & 0x3FF)
        out = (None, (mrif, notice, nid))
    if access == rv.Access.EXECUTE:
        return rv.Cause.INSTRUCTION_ACCESS_FAULT
    return out


def _pte_word(bits: int, field_lsb: int) -> Any:
    """Mostly-valid doublewords (V/M = bits, address field random, 0-2 flipped bits) or any."""
    field = ((1 << 54) - 1) & ~((1 << field_lsb) - 1)

    def build(t: tuple[int, list[int]]) -> int:
        v = (t[0] & field) | bits
        for b in set(t[1]):
            v ^= 1 << b
        return v

    return st.one_of(
        st.integers(0, U64),
        st.tuples(st.integers(0, U64), st.lists(st.integers(0, 63), max_size=2)).map(build),
    )


@HYP
@given(
    pte0=st.one_of(_pte_word(0b111, 10), _pte_word(0b011, 7)),
    pte1=st.one_of(st.integers(0, U64), st.integers(0, (1 << 54) - 1)),
    access=st.sampled_from(list(rv.Access)),
    mrif_cap=st.booleans(),
    off=st.integers(0, 0xFFC).map(lambda v: v & ~3),
)
def test_msi_pte_contents_decode_per_spec(
    pte0: int, pte1: int, access: rv.Access, mrif_cap: bool, off: int
) -> None:
    """MSI_TRANS steps 9-15 for arbitrary msipte contents: the model never raises and the
    outcome is exactly the spec's."""
    m = MsiSetup(msi_mrif=mrif_cap)
    m.pt.set_raw(5, pte0, pte1)
    a = MSI_GPA | 0x5000 | off
    rsp = m.t(a, access)
    exp = expected_outcome(pte0, pte1, access, mrif_cap)
    if isinstance(exp, rv.Cause):
        ttyp = {
            rv.Access.READ: rv.Ttyp.UNTRANSLATED_READ,
            rv.Access.WRITE: rv.Ttyp.UNTRANSLATED_WRITE,
            rv.Access.EXECUTE: rv.Ttyp.UNTRANSLATED_EXECUTE,
        }[access]
        assert_fault(rsp, exp, a, ttyp=ttyp)
        return
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.is_msi and (rsp.r, rsp.w, rsp.x) == (True, True, False)
    flat, mrif = exp
    if mrif is None:
        assert not rsp.is_mrif
        assert rsp.addr == flat | off
    else:
        assert rsp.is_mrif and rsp.u
        assert (rsp.mrif_addr, rsp.notice_addr, rsp.nid) == mrif


# ----------------------------------------------------------------------------------------------
# MRIF recording by the IOMMU (AIA "MSI PTE, MRIF mode"; MSI_TRANS note)
# ----------------------------------------------------------------------------------------------

MRIF_FILL = bytes((i * 37 + 11) & 0xFF for i in range(512))


class MrifSetup(MsiSetup):
    """MsiSetup with IommuParams(mrif_by_iommu=True) and an MRIF PTE at entry 3."""

    NID = 0x5A5

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("params", rv.IommuParams(mrif_by_iommu=True))
        super().__init__(**kw)
        self.mrif = self.s.alloc.alloc(512, 512)
        self.s.mem.write(self.mrif, MRIF_FILL)
        self.notice = self.s.page()
        self.s.mem.write(self.notice, b"\xaa" * 4096)
        self.pt.set_mrif(3, self.mrif, self.notice, self.NID)

    def snapshot(self) -> tuple[bytes, bytes]:
        return self.s.mem.read(self.mrif, 512), self.s.mem.read(self.notice, 4096)


@pytest.mark.parametrize("ident", [1, 2, 63, 64, 65, 700, 1023, 1024, 2047])
def test_mrif_recording_sets_pending_bit_and_sends_notice(ident: int) -> None:
    """AIA MRIF mode: the pending bit of identity D (doubleword (D/64)*2 of the MRIF, bit D%64,
    little-endian) is set, then the notice MSI writes NID (zero-extended, 32 bits) to NPPN<<12."""
    m = MrifSetup()
    rsp = m.t(MSI_GPA | 0x3000, data=ident)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.fault is None
    assert rsp.is_msi and rsp.is_mrif
    expect = bytearray(MRIF_FILL)
    word = (ident // 64) * 16
    v = int.from_bytes(expect[word : word + 8], "little") | (1 << (ident % 64))
    expect[word : word + 8] = v.to_bytes(8, "little")
    mrif, notice = m.snapshot()
    assert mrif == bytes(expect)
    assert notice == MrifSetup.NID.to_bytes(4, "little") + b"\xaa" * 4092


def test_mrif_recording_of_already_pending_identity_still_sends_notice() -> None:
    """AIA MRIF mode: setting a pending bit that is already set leaves the MRIF unchanged; the
    notice MSI is sent for every recorded MSI."""
    m = MrifSetup()
    ident = 5
    m.s.mem.write(m.mrif, (1 << ident).to_bytes(8, "little"))
    before = m.s.mem.read(m.mrif, 512)
    assert m.t(MSI_GPA | 0x3000, data=ident).status == rv.Status.SUCCESS
    mrif, notice = m.snapshot()
    assert mrif == before
    assert notice[:4] == MrifSetup.NID.to_bytes(4, "little")


@pytest.mark.parametrize(
    ("off", "data"),
    [
        (0x8, 1),  # A[11:3] != 0
        (0x800, 1),
        (0xFF8, 1),
        (0x4, 1),  # A bit 2: seteipnum_be, not supported by this IOMMU
        (0x0, 2048),  # identity out of range
        (0x0, 0xFFFF_FFFF),
        (0x0, 0x1_0001),
    ],
)
def test_mrif_recording_discards_non_seteipnum_writes(off: int, data: int) -> None:
    """AIA MRIF mode: writes not to seteipnum_le or with data >= 2048 are discarded:
    the write completes successfully and memory is unchanged."""
    m = MrifSetup()
    before = m.snapshot()
    rsp = m.t(MSI_GPA | 0x3000 | off, data=data)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.fault is None
    assert rsp.is_mrif
    assert m.snapshot() == before


def test_mrif_details_go_to_the_io_bridge_when_not_recorded_by_iommu() -> None:
    """MSI_TRANS note: without mrif_by_iommu the IOMMU hands MRIF, notice address and NID to
    the IO bridge and writes no memory itself."""
    m = MrifSetup(params=rv.IommuParams(mrif_by_iommu=False))
    before = m.snapshot()
    rsp = m.t(MSI_GPA | 0x3000, data=9)
    assert rsp.status == rv.Status.SUCCESS
    assert (rsp.mrif_addr, rsp.notice_addr, rsp.nid) == (m.mrif, m.notice, MrifSetup.NID)
    assert m.snapshot() == before


def test_mrif_read_is_not_recorded() -> None:
    """AIA MRIF mode: only writes are MSIs; a read of the page records nothing."""
    m = MrifSetup()
    before = m.snapshot()
    rsp = m.t(MSI_GPA | 0x3000, rv.Access.READ)
    assert (rsp.status, rsp.is_mrif) == (rv.Status.SUCCESS, True)
    assert m.snapshot() == before


@pytest.mark.parametrize(
    ("where", "kind", "cause"),
    [
        ("mrif", rv.MemoryFault.ACCESS_FAULT, rv.Cause.MRIF_ACCESS_FAULT),
        ("mrif", rv.MemoryFault.DATA_CORRUPTION, rv.Cause.MSI_MRIF_DATA_CORRUPTION),
        ("notice", rv.MemoryFault.ACCESS_FAULT, rv.Cause.MRIF_ACCESS_FAULT),
    ],
)
def test_mrif_recording_faults(where: str, kind: rv.MemoryFault, cause: rv.Cause) -> None:
    """CAUSE table: an access fault storing into the MRIF or sending the notice MSI is
    "MRIF access fault" (264); poisoned MRIF data is "MSI MRIF data corruption" (271)."""
    m = MrifSetup()
    ident = 130
    if where == "mrif":
        m.s.mem.inject(m.mrif + (ident // 64) * 16, 8, kind)
    else:
        m.s.mem.inject(m.notice, 4, kind)
    rsp = m.t(MSI_GPA | 0x3000, data=ident)
    assert_fault(rsp, cause, MSI_GPA | 0x3000)
    m.s.mem.clear_injections()
    if where == "mrif":  # no notice is sent for an MSI that could not be recorded
        assert m.snapshot()[1] == b"\xaa" * 4096


@pytest.mark.parametrize("where", ["mrif", "notice"])
def test_mrif_recording_beyond_pas_is_mrif_access_fault(where: str) -> None:
    """MRIF or notice address at or beyond 2**PAS violates the PMAs: "MRIF access fault" (264)."""
    m = MrifSetup(pas=48)
    far = 1 << 48
    if where == "mrif":
        m.pt.set_mrif(3, far, m.notice, 1)
    else:
        m.pt.set_mrif(3, m.mrif, far, 1)
    before = m.snapshot()
    assert_fault(m.t(MSI_GPA | 0x3000, data=1), rv.Cause.MRIF_ACCESS_FAULT, MSI_GPA | 0x3000)
    if where == "mrif":
        assert m.snapshot() == before


# ----------------------------------------------------------------------------------------------
# Byte order: MSI PTEs follow fctl.BE
# ----------------------------------------------------------------------------------------------

BE_PARAMS = rv.IommuParams(be_writable=True)


def test_msi_pte_big_endian_with_fctl_be() -> None:
    """Table "Endianness of memory access to data structures": MSI page table <- fctl.BE."""
    m = MsiSetup(fctl=1, params=BE_PARAMS)
    assert m.s.iommu.mmio_read(rv.REG.FCTL) & 1
    m.pt.set_flat(1, IF_SPA + 0x1000)
    m.pt.set_mrif(2, 0x9000_0200, 0x9100_0000, 0x456)
    rsp = m.t(MSI_GPA | 0x1010)
    assert (rsp.status, rsp.addr, rsp.is_msi) == (rv.Status.SUCCESS, IF_SPA + 0x1010, True)
    rsp = m.t(MSI_GPA | 0x2000)
    assert rsp.status == rv.Status.SUCCESS
    assert (rsp.mrif_addr, rsp.notice_addr, rsp.nid) == (0x9000_0200, 0x9100_0000, 0x456)


@pytest.mark.parametrize("fctl", [0, 1])
def test_msi_pte_in_the_other_byte_order_is_not_valid(fctl: int) -> None:
    """fctl.BE selects the order: a PTE written in the other order has V (bit 0) = 0 -> 262."""
    m = MsiSetup(fctl=fctl, params=BE_PARAMS)
    addr = m.pt.root | (1 * 16)
    wrong = "little" if fctl else "big"
    m.s.mem.write(addr, flat0(IF_SPA >> 12).to_bytes(8, wrong))
    assert_fault(m.t(MSI_GPA | 0x1000), rv.Cause.MSI_PTE_NOT_VALID, MSI_GPA | 0x1000)
