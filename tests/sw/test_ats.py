"""PCIe ATS and PRI: translation completions, page requests, ATS.INVAL / IOFENCE.C, ATS.PRGR.

Spec: iommu_data_structures.adoc "PCIe ATS translation request handling" (ATS_FAULTS) and
"PCIe ATS Page Request handling" (ATS_PRI); iommu_in_memory_queues.adoc "IOMMU PCIe ATS
commands", "IOMMU Command-queue Fence commands" (IOFENCE.C), "Fault/Event-Queue" and
"Page-Request-Queue" (PRQ).  ATS requests: ``access=EXECUTE`` is "Execute Requested",
``no_write=True`` is "No Write"; write permission is requested unless ``no_write``.

PCIe translation-completion range encoding: S=0 is a 4 KiB range; S=1 means the range is
larger and its size is given by the lowest 0 bit of the address at or above bit 12 (a
2**n byte range has address bits n-2..12 set and bit n-1 clear).
"""

from __future__ import annotations

import itertools
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    COMPILED,
    PD20,
    TC_DPE,
    TC_DTF,
    TC_EN_ATS,
    TC_EN_PRI,
    TC_GADE,
    TC_PDTV,
    TC_PRPR,
    TC_SADE,
    TC_T2GPA,
    TC_V,
    System,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import RWX, URW, URWX, A, D, G, R, U, W, X
from swhelpers import (
    REG,
    ats_inval,
    ats_prgr,
    cqcsr,
    fq_records,
    iofence_c,
    ipsr,
    setup_cq,
    setup_fq,
    setup_pq,
    submit,
)

ATS = rv.RequestKind.ATS_TRANSLATION
SUCCESS = rv.Status.SUCCESS
UR = rv.Status.UNSUPPORTED_REQUEST
CA = rv.Status.COMPLETER_ABORT

DID = 0x15
PID = 0x2A
KB4, KB64, MB2, GB1 = 1 << 12, 1 << 16, 1 << 21, 1 << 30
#: data pages the IOMMU never touches (so nothing needs allocating there)
SPA = 0x40_0000_0000
GPA = 0x8000_0000
VA = 0x1_4000_0000
TC_ATS = TC_V | TC_EN_ATS

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def ats(
    s: System,
    addr: int,
    did: int = DID,
    *,
    execute: bool = False,
    no_write: bool = False,
    pid: Optional[int] = None,
    priv: bool = False,
) -> rv.Response:
    """A PCIe ATS Translation Request."""
    return s.iommu.translate(
        rv.Request(
            device_id=did,
            addr=addr,
            access=rv.Access.EXECUTE if execute else rv.Access.READ,
            process_id=pid,
            priv=priv,
            kind=ATS,
            no_write=no_write,
        )
    )


def ok(base: int, size: int, **kw: Any) -> rv.Response:
    """The expected Success completion for the translation range [base, base + size)."""
    assert base % size == 0
    addr = base | ((size // 2 - 1) & ~0xFFF) if size > KB4 else base
    return rv.Response(SUCCESS, addr=addr, s=size > KB4, size=size, **kw)


def assert_no_access(rsp: rv.Response, cause: int, s: System, priv: bool = False) -> None:
    """§ATS_FAULTS: Success with R = W = 0, the fault not reported (address UNSPECIFIED)."""
    assert rsp.status == SUCCESS
    assert (rsp.r, rsp.w, rsp.x, rsp.priv) == (False, False, False, priv)
    assert rsp.fault is not None and rsp.fault.cause == cause
    assert rsp.reported is False
    assert fq_records(s) == []


def s1_system(
    flags: int = URWX | A | D,
    size: int = KB4,
    va: int = VA,
    pa: int = SPA,
    pbmt: int = 0,
    tc: int = 0,
    params: Optional[rv.IommuParams] = None,
) -> Tuple[System, int]:
    """First stage only (DC.fsc = iosatp, PDTV = 0); returns the system and the leaf PTE address."""
    s = System(params=params)
    s1 = s.stage1()
    pte = s1.map(va, pa, size=size, flags=flags, pbmt=pbmt)
    s.ddt.set_dc(DID, tc=TC_ATS | tc, fsc=s1.satp())
    setup_fq(s)
    return s, pte


def pasid_system(
    flags: int = URWX | A | D, ens: bool = True, sum_: bool = False, tc: int = 0
) -> System:
    """A PD20 PDT with PC(PID) -> first-stage table mapping VA -> SPA (4 KiB)."""
    s = System()
    s1 = s.stage1()
    s1.map(VA, SPA, flags=flags)
    pdt = s.pdt(mode=PD20)
    pdt.set_pc(PID, fsc=s1.satp(), pscid=3, ens=ens, sum_=sum_)
    s.ddt.set_dc(DID, tc=TC_ATS | TC_PDTV | tc, fsc=pdt.pdtp())
    setup_fq(s)
    return s


def two_stage(
    s1_flags: int = URWX | A | D,
    g_flags: int = URWX | A | D,
    s1_size: int = KB4,
    g_size: int = KB4,
    tc: int = 0,
    s1_pbmt: int = 0,
    g_pbmt: int = 0,
) -> Tuple[System, int, int]:
    """VA -(first stage in guest memory)-> GPA -(G-stage)-> SPA; returns (s, s1 PTE SPA, g PTE)."""
    s = System()
    g = s.gstage()
    guest = s.guest(g)
    s1 = s.stage1(guest)
    s1_pte_gpa = s1.map(VA, GPA, size=s1_size, flags=s1_flags, pbmt=s1_pbmt)
    g_pte = g.map(GPA, SPA, size=g_size, flags=g_flags, pbmt=g_pbmt)
    s.ddt.set_dc(DID, tc=TC_ATS | tc, iohgatp=g.satp(5), fsc=s1.satp())
    setup_fq(s)
    return s, guest.to_spa(s1_pte_gpa), g_pte


# ===========================================================================
# ATS translation completions: address, S bit and range size
# ===========================================================================
@pytest.mark.parametrize(
    ("size", "va", "pa", "addr"),
    [
        (KB4, 0x1234_5000, 0x20_0000_7000, 0x20_0000_7000),
        (KB64, 0x1234_0000, 0x20_0001_0000, 0x20_0001_7000),
        (MB2, 0x1220_0000, 0x20_0060_0000, 0x20_006F_F000),
        (GB1, 0x1_4000_0000, 0x20_4000_0000, 0x20_5FFF_F000),
    ],
    ids=["4K", "64K", "2M", "1G"],
)
def test_completion_address_s_bit_and_napot_size(size: int, va: int, pa: int, addr: int) -> None:
    """§ATS_FAULTS Success completion: translated address with S and the NAPOT size encoding."""
    s, _ = s1_system(size=size, va=va, pa=pa, params=rv.IommuParams(bare_range_size=GB1))
    rsp = ats(s, va + 0x3000 if size > KB4 else va)
    assert rsp == rv.Response(
        SUCCESS, addr=addr, r=True, w=True, s=size > KB4, size=size
    )  # N = 0, U = 0, G = 0, Priv = 0 (no PASID), X not requested
    assert rsp.n is False


@pytest.mark.parametrize(
    ("s1_size", "g_size", "size"),
    [(MB2, KB4, KB4), (KB4, GB1, KB4), (GB1, MB2, MB2), (KB64, MB2, KB64), (MB2, KB64, KB64)],
)
def test_completion_two_stage_range_is_the_smaller_stage(
    s1_size: int, g_size: int, size: int
) -> None:
    """§ATS_FAULTS: a two-stage translation is valid only for the smaller of the two pages."""
    s, _, _ = two_stage(s1_size=s1_size, g_size=g_size)
    assert ats(s, VA) == ok(SPA, size, r=True, w=True)


@pytest.mark.parametrize("bare", [KB4, MB2, GB1])
def test_completion_both_stages_bare_uses_bare_range_size(bare: int) -> None:
    """§ATS_FAULTS note: with both stages Bare the range size is implementation-defined
    (IommuParams.bare_range_size); the IOVA is the SPA."""
    s = System(params=rv.IommuParams(bare_range_size=bare))
    s.ddt.set_dc(DID, tc=TC_ATS)
    rsp = ats(s, 0x1_2345_6000)
    assert rsp == ok(0x1_2345_6000 & ~(bare - 1), bare, r=True, w=True)


def test_completion_first_stage_bare_takes_the_g_stage_page_size() -> None:
    """First stage Bare: the range cannot exceed the G-stage page (4 KiB here)."""
    s = System(params=rv.IommuParams(bare_range_size=MB2))
    g = s.gstage()
    g.map(GPA, SPA)
    s.ddt.set_dc(DID, tc=TC_ATS, iohgatp=g.satp(1))
    assert ats(s, GPA) == ok(SPA, KB4, r=True, w=True)


def test_completion_first_stage_bare_large_g_page_limited_by_bare_range_size() -> None:
    """First stage Bare, 1 GiB G-stage page: the Bare stage's size (2 MiB) is the smaller one."""
    s = System(params=rv.IommuParams(bare_range_size=MB2))
    g = s.gstage()
    g.map(GPA, SPA, size=GB1)
    s.ddt.set_dc(DID, tc=TC_ATS, iohgatp=g.satp(1))
    assert ats(s, GPA + 0x0123_4000) == ok(SPA + 0x0120_0000, MB2, r=True, w=True)


# ===========================================================================
# R / W / X
# ===========================================================================
def test_execute_requested_and_granted() -> None:
    """§ATS_FAULTS: X is granted when Execute is requested, the page is executable and R is."""
    s, _ = s1_system(flags=URWX | A | D)
    assert ats(s, VA, execute=True) == ok(SPA, KB4, r=True, w=True, x=True)


def test_execute_requested_without_execute_permission() -> None:
    """§ATS_FAULTS: Execute requested but no execute permission -> X=0, the rest as the tables."""
    s, _ = s1_system(flags=URW | A | D)
    assert ats(s, VA, execute=True) == ok(SPA, KB4, r=True, w=True)
    assert fq_records(s) == []


def test_execute_not_requested_is_never_granted() -> None:
    """§ATS_FAULTS: X is granted only if the execute permission was requested."""
    s, _ = s1_system(flags=URWX | A | D)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)


def test_no_write_request_gets_no_write_permission_and_d_stays_clear() -> None:
    """No Write requested: W=0 (write permission not requested); D is not set, A is."""
    s, pte = s1_system(flags=URWX, tc=TC_SADE)
    assert ats(s, VA, no_write=True, execute=True) == ok(SPA, KB4, r=True, x=True)
    v = s.mem.read_u64(pte)
    assert (bool(v & A), bool(v & D)) == (True, False)


def test_read_only_page_denies_write() -> None:
    """§ATS_FAULTS: no-write not requested and no write permission -> W=0, R granted."""
    s, pte = s1_system(flags=U | R | X, tc=TC_SADE)
    assert ats(s, VA, execute=True) == ok(SPA, KB4, r=True, x=True)
    v = s.mem.read_u64(pte)
    assert (bool(v & A), bool(v & D)) == (True, False)
    assert fq_records(s) == []


def test_execute_only_page_grants_nothing() -> None:
    """§ATS_FAULTS: X only with R; an execute-only page gives R=W=X=0 (Success, not reported)."""
    s, _ = s1_system(flags=U | X | A | D)
    rsp = ats(s, VA, execute=True)
    assert rsp.status == SUCCESS
    assert (rsp.r, rsp.w, rsp.x) == (False, False, False)
    assert fq_records(s) == []


@pytest.mark.parametrize(
    ("g_flags", "perms"),
    [
        (U | R | X | A | D, (True, False, True)),  # G-stage read-only: W denied
        (URW | A | D, (True, True, False)),  # G-stage not executable: X denied
        (URWX | A | D, (True, True, True)),
    ],
)
def test_two_stage_permissions_are_those_of_both_stages(
    g_flags: int, perms: Tuple[bool, bool, bool]
) -> None:
    """§ATS_FAULTS: a permission missing in either stage is denied."""
    s, _, _ = two_stage(g_flags=g_flags)
    rsp = ats(s, VA, execute=True)
    assert rsp == ok(SPA, KB4, r=perms[0], w=perms[1], x=perms[2])


def test_first_stage_read_only_second_stage_writable() -> None:
    """§ATS_FAULTS: W is denied when the first stage lacks it, whatever the G-stage grants."""
    s, _, _ = two_stage(s1_flags=U | R | A | D)
    assert ats(s, VA, execute=True) == ok(SPA, KB4, r=True)


def test_g_stage_page_without_u_is_no_access() -> None:
    """G-stage accesses are user accesses: a G-stage page with U=0 -> guest-page fault ->
    Success R=W=0, not reported."""
    s, _, _ = two_stage(g_flags=RWX | A | D)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_GUEST_PAGE_FAULT, s)


# ===========================================================================
# U bit and privilege
# ===========================================================================
def test_no_pasid_request_to_supervisor_page_is_no_access() -> None:
    """§ATS_FAULTS: no PASID -> not privileged; U=0 -> Success with R=W=0."""
    s, _ = s1_system(flags=RWX | A | D)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_PAGE_FAULT, s)


def test_pasid_priv0_request_to_supervisor_page_is_no_access() -> None:
    """§ATS_FAULTS: PASID with Privilege Mode Requested = 0 and U=0 -> R=W=0."""
    s = pasid_system(flags=RWX | A | D)
    assert_no_access(ats(s, VA, pid=PID), rv.Cause.WRITE_PAGE_FAULT, s)


def test_pasid_priv0_request_to_user_page() -> None:
    """PASID, Priv=0, U=1: permissions of the page; Priv=0 in the completion."""
    s = pasid_system(flags=URWX | A | D)
    assert ats(s, VA, pid=PID, execute=True) == ok(SPA, KB4, r=True, w=True, x=True)


def test_priv1_user_page_without_sum_is_no_access() -> None:
    """§ATS_FAULTS: Priv=1, U=1 and PC.ta.SUM=0 -> Success with R=W=0 (Priv=1 echoed)."""
    s = pasid_system(flags=URWX | A | D, sum_=False)
    rsp = ats(s, VA, pid=PID, priv=True)
    assert_no_access(rsp, rv.Cause.WRITE_PAGE_FAULT, s, priv=True)


def test_priv1_user_page_with_sum_never_grants_execute() -> None:
    """Priv=1, U=1, SUM=1: R/W granted; supervisor execute of a user page is never allowed."""
    s = pasid_system(flags=URWX | A | D, sum_=True)
    rsp = ats(s, VA, pid=PID, priv=True, execute=True)
    assert rsp == ok(SPA, KB4, r=True, w=True, priv=True)


def test_priv1_supervisor_page() -> None:
    """Priv=1, U=0: the completion's Priv is 1 and the permissions are the page's."""
    s = pasid_system(flags=RWX | A | D)
    rsp = ats(s, VA, pid=PID, priv=True, execute=True)
    assert rsp == ok(SPA, KB4, r=True, w=True, x=True, priv=True)


def test_priv_without_pasid_is_zero_in_completion() -> None:
    """§ATS_FAULTS: Priv is always 0 if the request does not have a PASID."""
    s, _ = s1_system(flags=URWX | A | D)
    assert ats(s, VA, priv=True) == ok(SPA, KB4, r=True, w=True)


def test_priv_request_without_ens_is_transaction_type_disallowed() -> None:
    """P2IOVA step 15: supervisor privilege with PC.ta.ENS=0 -> 260 -> UR, reported."""
    s = pasid_system(flags=RWX | A | D, ens=False)
    rsp = ats(s, VA, pid=PID, priv=True)
    rec = rv.FaultRecord(
        cause=260,
        ttyp=rv.Ttyp.ATS_TRANSLATION,
        iotval=VA,
        device_id=DID,
        process_id=PID,
        pv=True,
        priv=True,
    )
    assert (rsp.status, rsp.fault, rsp.reported) == (UR, rec, True)
    assert fq_records(s) == [rec]


# ===========================================================================
# Global, N, PBMT
# ===========================================================================
def test_global_bit_with_pasid() -> None:
    """§ATS_FAULTS: Global is the first-stage G bit when the request had a PASID."""
    s = pasid_system(flags=URWX | G | A | D)
    assert ats(s, VA, pid=PID) == ok(SPA, KB4, r=True, w=True, g=True)


def test_global_bit_is_zero_without_pasid() -> None:
    """§ATS_FAULTS: Global is 0 when the request had no PASID (DC.fsc first stage)."""
    s, _ = s1_system(flags=URWX | G | A | D)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)


def test_global_bit_is_zero_without_pasid_even_with_dpe() -> None:
    """DPE=1 selects process_id 0 for a request without a PASID; Global stays 0."""
    s = System()
    s1 = s.stage1()
    s1.map(VA, SPA, flags=URWX | G | A | D)
    pdt = s.pdt(mode=PD20)
    pdt.set_pc(0, fsc=s1.satp())
    s.ddt.set_dc(DID, tc=TC_ATS | TC_PDTV | TC_DPE, fsc=pdt.pdtp())
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)


@pytest.mark.parametrize(
    ("s1_pbmt", "g_pbmt", "pbmt"), [(1, 0, 1), (0, 2, 2), (1, 2, 1), (2, 1, 2), (0, 0, 0)]
)
def test_pbmt_in_completion(s1_pbmt: int, g_pbmt: int, pbmt: int) -> None:
    """Svpbmt: the first-stage PBMT, or the G-stage one when the first stage's is 0."""
    s, _, _ = two_stage(s1_pbmt=s1_pbmt, g_pbmt=g_pbmt)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True, pbmt=pbmt)


def test_pbmt_first_stage_only() -> None:
    """Svpbmt: PBMT of a single-stage translation."""
    s, _ = s1_system(pbmt=2)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True, pbmt=2)


# ===========================================================================
# A / D
# ===========================================================================
def test_sade_sets_a_and_d_when_write_is_granted() -> None:
    """A/D updating (SADE=1): A is set, and D too since W is granted (the device may write)."""
    s, pte = s1_system(flags=URWX, tc=TC_SADE)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)
    assert s.mem.read_u64(pte) & (A | D) == A | D


def test_without_sade_and_d_clear_is_a_write_page_fault() -> None:
    """DC.tc: "If SADE is 0, the IOMMU causes a page-fault corresponding to the original
    access type if the A bit is 0 or if the memory access is a store and the D bit is 0."
    No Write = 0 asks for W, which the leaf grants with D = 0: a Write/AMO page fault (15),
    which §ATS_FAULTS answers "Success Response with R and W bits set to 0", not logged
    (riscv-non-isa/riscv-iommu#675).  The PTE is unchanged."""
    s, pte = s1_system(flags=URWX | A)
    before = s.mem.read_u64(pte)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_PAGE_FAULT, s)
    assert s.mem.read_u64(pte) == before


def test_without_sade_and_a_clear_is_no_access() -> None:
    """SADE=0 and A=0: the walk page-faults -> Success with R=W=0, not reported."""
    s, pte = s1_system(flags=URWX)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_PAGE_FAULT, s)
    assert s.mem.read_u64(pte) & (A | D) == 0


def test_gade_sets_g_stage_a_and_d() -> None:
    """A/D updating (GADE=1) of the G-stage leaf: A and D set when W is granted."""
    s, s1_pte, g_pte = two_stage(g_flags=URWX, tc=TC_GADE)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)
    assert s.mem.read_u64(g_pte) & (A | D) == A | D


def test_gade_no_write_sets_only_g_stage_a() -> None:
    """No Write: only A is set in the G-stage leaf."""
    s, _, g_pte = two_stage(g_flags=URWX, tc=TC_GADE)
    assert ats(s, VA, no_write=True) == ok(SPA, KB4, r=True)
    assert s.mem.read_u64(g_pte) & (A | D) == A


def test_without_gade_and_g_stage_d_clear_is_a_write_guest_page_fault() -> None:
    """DC.tc: "If GADE is 0, the IOMMU causes a guest-page-fault corresponding to the
    original access type if the A bit is 0 or if the memory access is a store and the D bit
    is 0": a Write/AMO guest-page fault (23) for the GPA -> Success with R = W = 0, not
    logged.  Neither leaf changes."""
    s, s1_pte, g_pte = two_stage(g_flags=URWX | A)
    before = (s.mem.read_u64(s1_pte), s.mem.read_u64(g_pte))
    rsp = ats(s, VA)
    assert_no_access(rsp, rv.Cause.WRITE_GUEST_PAGE_FAULT, s)
    assert rsp.fault is not None and rsp.fault.iotval2 == GPA  # explicit access: bits 1:0 = 0
    assert (s.mem.read_u64(s1_pte), s.mem.read_u64(g_pte)) == before


def test_sade_without_gade_sets_no_first_stage_d_for_a_w_not_granted() -> None:
    """SADE = 1, GADE = 0, first-stage leaf without A/D, G-stage leaf with A but D = 0: the
    G-stage D cannot be set (guest-page fault 23 -> Success R = W = 0), so the completion
    grants no W and the first-stage leaf gets no D (docs/ats.md: "D is set only for a W the
    completion grants").  Its A is set: the first stage granted the read before the G-stage
    leaf of the final GPA was read (PTW order)."""
    s, s1_pte, g_pte = two_stage(s1_flags=URWX, g_flags=URWX | A, tc=TC_SADE)
    g_before = s.mem.read_u64(g_pte)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_GUEST_PAGE_FAULT, s)
    assert s.mem.read_u64(s1_pte) & (A | D) == A
    assert s.mem.read_u64(g_pte) == g_before


def test_sade_without_gade_and_a_clean_g_stage_page_is_a_write_guest_page_fault() -> None:
    """Both leaves clean with SADE = 1, GADE = 0: the first-stage leaf's D could be set,
    the G-stage leaf's could not -> 23, and no D anywhere."""
    s, s1_pte, g_pte = two_stage(s1_flags=URWX | A, g_flags=URWX | A, tc=TC_SADE)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_GUEST_PAGE_FAULT, s)
    assert s.mem.read_u64(s1_pte) & D == 0 and s.mem.read_u64(g_pte) & D == 0


def test_without_sade_or_gade_the_first_stage_fault_comes_first() -> None:
    """Both leaves need D and neither can be set: the first stage's page fault (15), as the
    first-stage PTW step 7 precedes the G-stage translation of the final GPA."""
    s, _, _ = two_stage(s1_flags=URWX | A, g_flags=URWX | A)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_PAGE_FAULT, s)


def test_without_sade_a_clean_writable_first_stage_leaf_faults_whatever_the_g_stage() -> None:
    """The check is per leaf, in PTW order: the first-stage leaf grants W with D = 0 and
    SADE = 0 -> 15 when it is read, before the G-stage leaf of the final GPA (which here
    grants no W) is looked at.  Nothing is written."""
    s, s1_pte, g_pte = two_stage(s1_flags=URWX | A, g_flags=U | R | A | D)
    before = (s.mem.read_u64(s1_pte), s.mem.read_u64(g_pte))
    assert_no_access(ats(s, VA), rv.Cause.WRITE_PAGE_FAULT, s)
    assert (s.mem.read_u64(s1_pte), s.mem.read_u64(g_pte)) == before


def test_without_gade_a_clean_writable_g_stage_leaf_faults_whatever_the_first_stage() -> None:
    """The G-stage leaf grants W with D = 0 and GADE = 0 -> 23, although the first-stage
    leaf grants no W."""
    s, _, g_pte = two_stage(s1_flags=U | R | A | D, g_flags=URWX | A)
    before = s.mem.read_u64(g_pte)
    assert_no_access(ats(s, VA), rv.Cause.WRITE_GUEST_PAGE_FAULT, s)
    assert s.mem.read_u64(g_pte) == before


def test_sade_and_a_g_stage_without_w_set_no_first_stage_d() -> None:
    """SADE = 1: the first-stage leaf's D could be set, but the G-stage grants no W, so
    the completion has none (R = 1, W = 0) and no D is set for it."""
    s, s1_pte, _ = two_stage(s1_flags=URWX | A, g_flags=U | R | A | D, tc=TC_SADE)
    assert ats(s, VA) == ok(SPA, KB4, r=True)
    assert s.mem.read_u64(s1_pte) & D == 0
    assert fq_records(s) == []


def test_no_write_without_sade_on_a_clean_page_is_no_fault() -> None:
    """No Write = 1 asks for no store: a clean writable leaf with SADE = 0 is no fault, R =
    1, W = 0 (W is reported only with D already set)."""
    s, pte = s1_system(flags=URWX | A)
    before = s.mem.read_u64(pte)
    rsp = ats(s, VA, no_write=True)
    assert rsp == ok(SPA, KB4, r=True) and rsp.fault is None
    assert s.mem.read_u64(pte) == before


@pytest.mark.parametrize("g_flags", [U | R | A | D, U | R | W | A], ids=["no-W", "D=0"])
def test_first_stage_d_update_denied_by_the_g_stage_is_no_access(g_flags: int) -> None:
    """SADE = 1, first-stage leaf with A but D = 0, and the G-stage leaf that maps that PTE's
    page has no W (or D = 0 with GADE = 0): the implicit write that sets D is a guest-page
    fault (23, iotval2 bits 0 and 1 set: implicit, write) -> Success R = W = 0
    (riscv-non-isa/riscv-iommu#675, case 2: "the translation process is not complete")."""
    s = System()
    g = s.gstage()
    guest = s.guest(g)
    s1 = s.stage1(guest)
    s1_pte_gpa = s1.map(VA, GPA, flags=URWX | A)
    g.map(GPA, SPA)
    page = s1_pte_gpa & ~0xFFF
    g.map(page, guest.to_spa(page), flags=g_flags)  # the leaf PTE's page, remapped
    s.ddt.set_dc(DID, tc=TC_ATS | TC_SADE, iohgatp=g.satp(5), fsc=s1.satp())
    setup_fq(s)
    before = s.mem.read_u64(guest.to_spa(s1_pte_gpa))
    rsp = ats(s, VA)
    assert_no_access(rsp, rv.Cause.WRITE_GUEST_PAGE_FAULT, s)
    assert rsp.fault is not None and rsp.fault.iotval2 == (s1_pte_gpa & ~3) | 3
    assert s.mem.read_u64(guest.to_spa(s1_pte_gpa)) == before


def test_two_stage_sade_sets_first_stage_d_through_the_g_stage() -> None:
    """SADE=1 in a two-stage setup: the first-stage leaf (in guest memory) gets A and D."""
    s, s1_pte, _ = two_stage(s1_flags=URWX, tc=TC_SADE)
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)
    assert s.mem.read_u64(s1_pte) & (A | D) == A | D


# ===========================================================================
# T2GPA
# ===========================================================================
def test_t2gpa_returns_the_gpa_with_both_stages_permissions() -> None:
    """DC.tc.T2GPA: the completion carries the GPA; permissions/size come from both stages."""
    s, _, _ = two_stage(s1_size=MB2, g_flags=U | R | X | A | D, tc=TC_T2GPA)
    rsp = ats(s, VA, execute=True)
    assert rsp == ok(GPA, KB4, r=True, x=True)


def test_t2gpa_large_pages_report_the_gpa_range() -> None:
    """T2GPA with 2 MiB pages in both stages: the range is the 2 MiB GPA page."""
    s, _, _ = two_stage(s1_size=MB2, g_size=MB2, tc=TC_T2GPA)
    assert ats(s, VA + 0x5000) == ok(GPA, MB2, r=True, w=True)


def test_t2gpa_still_enforces_the_g_stage() -> None:
    """T2GPA: a GPA without G-stage mapping -> guest-page fault -> Success R=W=0."""
    s = System()
    g = s.gstage()
    s.ddt.set_dc(DID, tc=TC_ATS | TC_T2GPA, iohgatp=g.satp(1))
    setup_fq(s)
    assert_no_access(ats(s, GPA), rv.Cause.WRITE_GUEST_PAGE_FAULT, s)


# ===========================================================================
# MSI addresses
# ===========================================================================
MSI_PATTERN = 0x2800_0
IMSIC = 0x2400_3000
MSI_GPA = (MSI_PATTERN << 12) | 0x2000  # interrupt file 2


def msi_system(
    mrif: bool = False, tc: int = 0, s1_g: bool = False, params: Optional[rv.IommuParams] = None
) -> Tuple[System, Any]:
    s = System(params=params)
    g = s.gstage()
    msipt = s.msipt(8)
    if mrif:
        msipt.set_mrif(2, 0x3000_0200, 0x3100_0000, 0x123)
    else:
        msipt.set_flat(2, IMSIC)
    fsc = 0
    if s1_g:  # a PASID-selected first stage mapping VA -> MSI_GPA with G=1
        guest = s.guest(g)
        s1 = s.stage1(guest)
        s1.map(VA, MSI_GPA, flags=URWX | G | A | D)
        pdt = s.pdt(guest, PD20)
        pdt.set_pc(PID, fsc=s1.satp())
        fsc = pdt.pdtp()
        tc |= TC_PDTV
    s.ddt.set_dc(
        DID,
        tc=TC_ATS | tc,
        iohgatp=g.satp(7),
        fsc=fsc,
        msiptp=msipt.msiptp(),
        msi_addr_mask=0x7,
        msi_addr_pattern=MSI_PATTERN,
    )
    setup_fq(s)
    return s, msipt


def test_msi_basic_translate_gives_the_imsic_address() -> None:
    """§ATS_FAULTS + MSI_TRANS: an MSI address translates to the interrupt file (4 KiB, R/W,
    never X: MSI PTEs act as R=W=U=1, X=0)."""
    s, _ = msi_system()
    rsp = ats(s, MSI_GPA, execute=True)
    assert rsp == ok(IMSIC, KB4, r=True, w=True, is_msi=True)


def test_msi_no_write() -> None:
    """No Write on an MSI address (first stage Bare): the MSI PTE grants write, so W is
    "determined from the page tables" (IommuParams.ats_no_write_reports_w, default)."""
    s, _ = msi_system()
    assert ats(s, MSI_GPA, no_write=True) == ok(IMSIC, KB4, r=True, w=True, is_msi=True)


def test_msi_no_write_w0_when_not_reported() -> None:
    """ats_no_write_reports_w=False: No Write = 1 always gets W = 0."""
    s, _ = msi_system(params=rv.IommuParams(ats_no_write_reports_w=False))
    assert ats(s, MSI_GPA, no_write=True) == ok(IMSIC, KB4, r=True, is_msi=True)


def test_msi_global_is_zero_even_with_pasid_and_first_stage_g() -> None:
    """§ATS_FAULTS: Global is 0 for MSI address translations."""
    s, _ = msi_system(s1_g=True)
    assert ats(s, VA, pid=PID) == ok(IMSIC, KB4, r=True, w=True, is_msi=True)


def test_msi_with_t2gpa_returns_the_gpa() -> None:
    """T2GPA: the completion carries the GPA of the interrupt file."""
    s, _ = msi_system(tc=TC_T2GPA)
    assert ats(s, MSI_GPA) == ok(MSI_GPA, KB4, r=True, w=True, is_msi=True)


def test_msi_mrif_mode_sets_u() -> None:
    """§ATS_FAULTS: an MRIF-mode MSI PTE -> Success with U=1 (untranslated access only)."""
    s, _ = msi_system(mrif=True)
    rsp = ats(s, MSI_GPA)
    assert rsp.status == SUCCESS
    want = dict(u=True, r=True, w=True, x=False, g=False, s=False, size=KB4, is_msi=True)
    want.update(is_mrif=True, mrif_addr=0x3000_0200, notice_addr=0x3100_0000, nid=0x123)
    assert {k: getattr(rsp, k) for k in want} == want
    assert fq_records(s) == []


# ===========================================================================
# IOTLB fill
# ===========================================================================
@pytest.mark.parametrize("fills", [True, False])
def test_ats_fills_iotlb_parameter(fills: bool) -> None:
    """IommuParams.ats_fills_iotlb: whether an ATS completion is cached in the IOTLB."""
    s, _ = s1_system(params=rv.IommuParams(ats_fills_iotlb=fills))
    assert len(s.iommu.iotlb) == 0
    assert ats(s, VA) == ok(SPA, KB4, r=True, w=True)
    assert len(s.iommu.iotlb) == (1 if fills else 0)


def test_msi_completion_is_not_cached() -> None:
    """MSI translations are never cached in the IOTLB."""
    s, _ = msi_system()
    ats(s, MSI_GPA)
    assert len(s.iommu.iotlb) == 0


# ===========================================================================
# §ATS_FAULTS fault table
# ===========================================================================
CA_CAUSES = [1, 5, 7, 261, 263, 265, 267]
UR_CAUSES = [256, 257, 258, 259, 260]
NO_ACCESS_CAUSES = [12, 13, 15, 20, 21, 23, 266, 262]


@pytest.mark.skipif(COMPILED, reason="replaces a module function: compiled callers bind theirs")
@pytest.mark.parametrize("cause", CA_CAUSES + UR_CAUSES + NO_ACCESS_CAUSES)
def test_ats_fault_table_every_row(cause: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """§ATS_FAULTS, every listed cause: CA (reported) / UR (reported) / Success R=W=0 (not).

    Inspects internals on purpose: the translation process is replaced by one that stops
    with ``cause`` (the natural stimuli are in the tests below)."""
    from riscv_iommu import iommu as iommu_mod
    from riscv_iommu._fault import Fault

    def stop(*_: Any, **__: Any) -> Any:
        raise Fault(cause)

    s = System()
    s.ddt.set_dc(DID, tc=TC_ATS)
    setup_fq(s)
    monkeypatch.setattr(iommu_mod, "translate_iova", stop)
    rsp = ats(s, 0x7000, pid=None)
    rec = rv.FaultRecord(cause=cause, ttyp=rv.Ttyp.ATS_TRANSLATION, iotval=0x7000, device_id=DID)
    if cause in NO_ACCESS_CAUSES:
        assert_no_access(rsp, cause, s)
    else:
        assert rsp.status == (CA if cause in CA_CAUSES else UR)
        assert (rsp.fault, rsp.reported, rsp.r, rsp.w) == (rec, True, False, False)
        assert fq_records(s) == [rec]


def _ca_scenario(cause: int) -> Tuple[System, rv.Response, int, Optional[int]]:
    """A natural stimulus for a CA cause; returns (s, response, iova, process_id)."""
    if cause in (1, 5, 7):  # first-stage PTE access fault, for the access asked for
        s = System()
        s1 = s.stage1()
        s1.map(VA, SPA)
        s.ddt.set_dc(DID, tc=TC_ATS, fsc=s1.satp())
        setup_fq(s)
        s.mem.inject(s1.root, 4096, rv.MemoryFault.ACCESS_FAULT)
        # the walk reads; the fault is reported for the access the request asked for:
        # execute (Execute Requested), else write (No Write = 0), else read
        return s, ats(s, VA, execute=cause == 1, no_write=cause != 7), VA, None
    if cause in (261, 263):
        s, msipt = msi_system()
        if cause == 261:
            s.mem.inject(msipt.root, 4096, rv.MemoryFault.ACCESS_FAULT)
        else:
            msipt.set_raw(2, F.MSIPTE0.encode(V=1, M=0))  # M=0: misconfigured
        return s, ats(s, MSI_GPA), MSI_GPA, None
    s = System()
    pdt = s.pdt(mode=PD20)
    if cause == 265:
        s.mem.inject(pdt.root, 4096, rv.MemoryFault.ACCESS_FAULT)
    else:  # 267: PC.fsc.MODE is a reserved encoding
        pdt.set_pc(PID, fsc=F.PC_FSC.encode(MODE=11))
    s.ddt.set_dc(DID, tc=TC_ATS | TC_PDTV, fsc=pdt.pdtp())
    setup_fq(s)
    return s, ats(s, VA, pid=PID), VA, PID


@pytest.mark.parametrize("cause", [1, 5, 7, 261, 263, 265, 267])
def test_ats_configuration_errors_are_completer_abort_and_reported(cause: int) -> None:
    """§ATS_FAULTS: access faults, MSI PTE and PDT entry errors -> CA, reported (TTYP 8)."""
    s, rsp, iova, pid = _ca_scenario(cause)
    rec = rv.FaultRecord(
        cause=cause,
        ttyp=rv.Ttyp.ATS_TRANSLATION,
        iotval=iova,
        device_id=DID,
        process_id=pid or 0,
        pv=pid is not None,
    )
    assert (rsp.status, rsp.fault, rsp.reported) == (CA, rec, True)
    assert (rsp.r, rsp.w, rsp.x) == (False, False, False)
    assert fq_records(s) == [rec]


class _CasFaultMemory(rv.SparseMemory):
    """A memory port whose atomic update (A/D) of one address is an access fault."""

    __slots__ = ("bad",)

    def cas(self, addr: int, expected: bytes, desired: bytes) -> bytes:
        if addr == self.bad:
            raise rv.MemoryAccessError(rv.MemoryFault.ACCESS_FAULT, addr, len(expected))
        return super().cas(addr, expected, desired)


def test_ats_access_fault_on_d_update_is_completer_abort() -> None:
    """§ATS_FAULTS + "IOMMU updating of PTE A and D": the D update follows the Privileged
    spec's rules; an access fault on it is an access fault -> Completer Abort, reported."""
    from types import SimpleNamespace

    from riscv_iommu.host.tables import DeviceDirectory, HostSpace, PageAllocator, PageTable

    mem = _CasFaultMemory()
    io = rv.Iommu(mem, capabilities=rv.Capabilities.full())
    alloc = PageAllocator(mem)
    ddt = DeviceDirectory(mem, alloc)
    io.mmio_write(REG.DDTP, ddt.ddtp)
    s1 = PageTable(HostSpace(mem, alloc), 8, stage="s")
    mem.bad = s1.map(VA, SPA, flags=URWX | A)  # A set: only the D update writes
    ddt.set_dc(DID, tc=TC_ATS | TC_SADE, fsc=s1.satp())
    s: Any = SimpleNamespace(iommu=io, mem=mem, alloc=alloc)
    setup_fq(s)
    rsp = io.translate(rv.Request(device_id=DID, addr=VA, kind=ATS))
    assert rsp.status == CA
    assert rsp.fault is not None and rsp.fault.cause in (5, 7) and rsp.reported
    assert len(fq_records(s)) == 1


def test_ats_completer_abort_fault_suppressed_by_dtf() -> None:
    """DC.tc.DTF=1: cause 265 ("No" in the DTF column) -> still CA, but not reported."""
    s = System()
    pdt = s.pdt(mode=PD20)
    s.mem.inject(pdt.root, 4096, rv.MemoryFault.ACCESS_FAULT)
    s.ddt.set_dc(DID, tc=TC_ATS | TC_PDTV | TC_DTF, fsc=pdt.pdtp())
    setup_fq(s)
    rsp = ats(s, VA, pid=PID)
    assert (rsp.status, rsp.reported) == (CA, False)
    assert fq_records(s) == []


def _ur_scenario(name: str) -> Tuple[System, int, Optional[int]]:
    s = System()
    setup_fq(s)
    pid: Optional[int] = None
    if name == "256-ddtp-off":
        s.iommu.mmio_write(REG.DDTP, 0)
    elif name == "257-ddt-access-fault":
        s.ddt.set_dc(DID, tc=TC_ATS)
        s.mem.inject(s.ddt.dc_addr(DID), 8, rv.MemoryFault.ACCESS_FAULT)
    elif name == "258-dc-not-valid":
        pass
    elif name == "259-dc-misconfigured":
        s.ddt.set_dc(DID, tc=TC_V | TC_EN_PRI)  # EN_PRI without EN_ATS
    elif name == "260-en-ats-0":
        s.ddt.set_dc(DID, tc=TC_V)
    elif name == "260-bare":
        s.iommu.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    elif name == "260-pasid-without-pdtv":
        s.ddt.set_dc(DID, tc=TC_ATS)
        pid = 5
    return s, int(name[:3]), pid


@pytest.mark.parametrize(
    "name",
    [
        "256-ddtp-off",
        "257-ddt-access-fault",
        "258-dc-not-valid",
        "259-dc-misconfigured",
        "260-en-ats-0",
        "260-bare",
        "260-pasid-without-pdtv",
    ],
)
def test_ats_permanent_errors_are_unsupported_request_and_reported(name: str) -> None:
    """§ATS_FAULTS: causes 256-260 (incl. EN_ATS=0, P2IOVA steps 2 and 7) -> UR, reported."""
    s, cause, pid = _ur_scenario(name)
    rsp = ats(s, VA, pid=pid)
    rec = rv.FaultRecord(
        cause=cause,
        ttyp=rv.Ttyp.ATS_TRANSLATION,
        iotval=VA,
        device_id=DID,
        process_id=pid or 0,
        pv=pid is not None,
    )
    assert (rsp.status, rsp.fault, rsp.reported) == (UR, rec, True)
    assert fq_records(s) == [rec]


def test_ats_unmapped_first_stage_is_success_no_access() -> None:
    """§ATS_FAULTS: read page fault (13) -> Success R=W=0, nothing logged."""
    s, _ = s1_system()
    assert_no_access(ats(s, VA + 0x1000), rv.Cause.WRITE_PAGE_FAULT, s)


def test_ats_unmapped_g_stage_is_success_no_access() -> None:
    """§ATS_FAULTS: guest-page fault (21) -> Success R=W=0, nothing logged."""
    s, _, _ = two_stage(s1_size=MB2)  # VA + 0x1000 -> GPA + 0x1000: no G-stage mapping
    assert_no_access(ats(s, VA + 0x1000), rv.Cause.WRITE_GUEST_PAGE_FAULT, s)


def test_ats_pdt_entry_not_valid_is_success_no_access() -> None:
    """§ATS_FAULTS: PDT entry not valid (266) -> Success R=W=0, nothing logged."""
    s = pasid_system()
    assert_no_access(ats(s, VA, pid=PID + 1), rv.Cause.PDT_ENTRY_NOT_VALID, s)


def test_ats_msi_pte_not_valid_is_success_no_access() -> None:
    """§ATS_FAULTS: MSI PTE not valid (262) -> Success R=W=0, nothing logged."""
    s, msipt = msi_system()
    msipt.set_raw(2, 0)
    assert_no_access(ats(s, MSI_GPA), rv.Cause.MSI_PTE_NOT_VALID, s)


def test_ats_guest_page_fault_on_pdt_access_is_success_no_access() -> None:
    """PDT in guest memory not mapped by the G-stage: guest-page fault -> Success R=W=0."""
    s = System()
    g = s.gstage()
    guest = s.guest(g)
    pdt = s.pdt(guest, PD20)
    g.unmap(pdt.root)
    s.ddt.set_dc(DID, tc=TC_ATS | TC_PDTV, iohgatp=g.satp(1), fsc=pdt.pdtp())
    setup_fq(s)
    rsp = ats(s, VA, pid=PID, execute=True)
    assert rsp.status == SUCCESS and (rsp.r, rsp.w, rsp.x) == (False, False, False)
    assert rsp.fault is not None
    assert rsp.fault.cause in (20, 21)  # the access type of the implicit PDT read
    assert rsp.reported is False
    assert fq_records(s) == []


# ===========================================================================
# §ATS_PRI: page requests and the page-request queue
# ===========================================================================
RSP_SUCCESS, RSP_INVALID, RSP_FAILURE = 0x0, 0x1, 0xF
PR_ADDR = 0x7_6543_2000


def pq_record(
    did: int,
    addr: int,
    prgi: int,
    r: bool,
    w: bool,
    last: bool,
    pid: Optional[int] = None,
    priv: bool = False,
    exe: bool = False,
) -> Tuple[int, int]:
    """The two doublewords of a PQ record, from the spec's figures (not the model's layouts).

    Doubleword 0: PID 31:12, PV 32, PRIV 33, EXEC 34, DID 63:40 (PRIV/EXEC 0 without PASID).
    Doubleword 1 (payload): R 0, W 1, L 2, PRGI 11:3, Page Address 63:12.
    """
    d0 = did << 40
    if pid is not None:
        d0 |= pid << 12 | 1 << 32 | int(priv) << 33 | int(exe) << 34
    d1 = int(r) | int(w) << 1 | int(last) << 2 | prgi << 3 | addr
    return d0, d1


class Pri:
    """A system with FQ (and optionally PQ) enabled and the outbound ATS messages captured."""

    def __init__(
        self,
        tc: int = TC_ATS | TC_EN_PRI,
        pq: bool = True,
        log2sz: int = 3,
        fctl: int = 0,
        levels: int = 3,
        dc: bool = True,
    ) -> None:
        self.s = System(fctl=fctl, levels=levels)
        self.msgs: List[Any] = []
        self.s.iommu.on_ats_message = self.msgs.append
        self.fq = setup_fq(self.s)
        self.pq = setup_pq(self.s, log2sz) if pq else 0
        if dc:
            self.s.ddt.set_dc(DID, tc=tc)

    def request(self, **kw: Any) -> Optional[rv.PageRequestGroupResponse]:
        kw.setdefault("device_id", DID)
        kw.setdefault("addr", PR_ADDR)
        kw.setdefault("prg_index", 0x1A5)
        kw.setdefault("last", True)
        return self.s.iommu.page_request(rv.PageRequest(**kw))

    def raw(self, index: int) -> bytes:
        return bytes(self.s.mem.read(self.pq + 16 * index, 16))

    def pqt(self) -> int:
        return int(self.s.iommu.mmio_read(REG.PQT, 4))

    def pqcsr(self) -> int:
        return int(self.s.iommu.mmio_read(REG.PQCSR, 4))


def _le(rec: Tuple[int, int], order: str = "little") -> bytes:
    return rec[0].to_bytes(8, order) + rec[1].to_bytes(8, order)  # type: ignore[arg-type]


def test_pri_page_request_with_pasid_is_queued_as_spec_record() -> None:
    """§ATS_PRI / PRQ: EN_ATS=EN_PRI=1 -> the message is queued (16-byte record); no response."""
    p = Pri()
    rsp = p.request(process_id=0xABCDE, priv=True, exec_req=True, read=True, write=True, last=True)
    assert rsp is None and p.msgs == []
    assert p.pqt() == 1
    rec = pq_record(DID, PR_ADDR, 0x1A5, True, True, True, pid=0xABCDE, priv=True, exe=True)
    assert p.raw(0) == _le(rec)
    assert ipsr(p.s) & F.IPSR.pip.mask  # pie=1 and a record was written
    assert fq_records(p.s) == []


def test_pri_record_without_pasid_has_priv_and_exec_zero() -> None:
    """PRQ: PRIV and EXEC are 0 if the message did not have a PASID; PID/PV are 0."""
    p = Pri()
    assert p.request(priv=True, exec_req=True, read=False, write=True, last=False) is None
    assert p.raw(0) == _le(pq_record(DID, PR_ADDR, 0x1A5, False, True, False))


def test_pri_records_in_big_endian_when_fctl_be() -> None:
    """PRQ: each doubleword of the record is in the byte order of fctl.BE."""
    p = Pri(fctl=1, tc=TC_ATS | TC_EN_PRI | F.DC_TC.SBE.mask)
    assert p.request(process_id=7, read=True, last=True, prg_index=3) is None
    assert p.raw(0) == _le(pq_record(DID, PR_ADDR, 3, True, False, True, pid=7), "big")


def test_pri_stop_marker_is_queued() -> None:
    """PRQ: a Stop Marker (L=1, R=W=0, with a PASID) is queued like a page request."""
    p = Pri()
    assert p.request(process_id=9, read=False, write=False, last=True, prg_index=0) is None
    assert p.raw(0) == _le(pq_record(DID, PR_ADDR, 0, False, False, True, pid=9))
    assert p.msgs == []


def test_pri_several_records_advance_pqt() -> None:
    """PRQ: pqt advances by one per record, records in order."""
    p = Pri()
    for k in range(3):
        p.request(addr=PR_ADDR + k * 4096, prg_index=k)
    assert p.pqt() == 3
    for k in range(3):
        assert p.raw(k) == _le(pq_record(DID, PR_ADDR + k * 4096, k, True, False, True))


def _pri_fault(cause: int, pid: Optional[int] = None, priv: bool = False) -> rv.FaultRecord:
    return rv.FaultRecord(
        cause=cause,
        ttyp=rv.Ttyp.PCIE_MESSAGE,
        iotval=0x04,  # "Page Request" message code
        device_id=DID,
        process_id=pid or 0,
        pv=pid is not None,
        priv=priv and pid is not None,
    )


def _prgr(code: int, pasid: Optional[int] = None) -> rv.PageRequestGroupResponse:
    return rv.PageRequestGroupResponse(
        device_id=DID, prg_index=0x1A5, response_code=code, pasid=pasid
    )


def _setup_failure(p: Pri, name: str) -> None:
    s = p.s
    if name == "256-ddtp-off":
        s.iommu.mmio_write(REG.DDTP, 0)
    elif name == "257-ddt-access-fault":
        s.mem.inject(s.ddt.dc_addr(DID), 8, rv.MemoryFault.ACCESS_FAULT)
    elif name == "258-dc-not-valid":
        s.ddt.set_dc(DID, tc=0)
    elif name == "268-ddt-data-corruption":
        s.mem.inject(s.ddt.dc_addr(DID), 8, rv.MemoryFault.DATA_CORRUPTION)
    elif name == "259-dc-misconfigured":
        s.ddt.set_dc(DID, tc=TC_V | TC_EN_PRI)  # EN_PRI=1 with EN_ATS=0
    elif name == "259-prpr-without-en-pri":
        s.ddt.set_dc(DID, tc=TC_ATS | TC_PRPR)  # PRPR=1 with EN_PRI=0


DDT_FAILURES = [
    "256-ddtp-off",
    "257-ddt-access-fault",
    "258-dc-not-valid",
    "259-dc-misconfigured",
    "259-prpr-without-en-pri",
    "268-ddt-data-corruption",
]


@pytest.mark.parametrize("pid", [None, 0x123])
@pytest.mark.parametrize("name", DDT_FAILURES)
def test_pri_dc_not_located_response_failure_and_fault(name: str, pid: Optional[int]) -> None:
    """§ATS_PRI: ddtp Off (256) and DDT faults (257/258/259) -> Response Failure, with a PASID
    when the request had one; the fault is recorded (TTYP 9, iotval = 0x04).  DDT data
    corruption (268, GET_DC steps 4 and 8) is a fault that prevents locating the DC too; the
    spec's lists do not name it, and an IO bridge that cannot signal poisoned data reports
    it as the access fault 257 (RAS guidelines): it gets 257's Response Failure."""
    p = Pri()
    _setup_failure(p, name)
    rsp = p.request(process_id=pid, priv=True)
    assert rsp == _prgr(RSP_FAILURE, pid)
    assert p.msgs == [rsp]
    assert fq_records(p.s) == [_pri_fault(int(name[:3]), pid, priv=True)]
    assert p.pqt() == 0


@pytest.mark.parametrize("pid", [None, 0x123])
def test_pri_ddtp_bare_is_invalid_request_without_pasid(pid: Optional[int]) -> None:
    """§ATS_PRI: ddtp Bare -> Invalid Request (260); no DC so PRPR is taken as 0: no PASID."""
    p = Pri()
    p.s.iommu.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    rsp = p.request(process_id=pid)
    assert rsp == _prgr(RSP_INVALID)
    assert p.msgs == [rsp]
    assert fq_records(p.s) == [_pri_fault(260, pid)]


@pytest.mark.parametrize("pid", [None, 0x123])
def test_pri_device_id_too_wide_is_invalid_request(pid: Optional[int]) -> None:
    """§ATS_PRI: device_id wider than the IOMMU mode supports (1LVL, DDI[1] != 0) -> Invalid
    Request (260), no PASID (no DC: PRPR assumed 0)."""
    p = Pri(levels=1, dc=False)
    wide = 0x1040  # DDI[1] = 0x41 with the extended format
    rsp = p.s.iommu.page_request(
        rv.PageRequest(device_id=wide, addr=PR_ADDR, prg_index=0x1A5, last=True, process_id=pid)
    )
    assert rsp == rv.PageRequestGroupResponse(
        device_id=wide, prg_index=0x1A5, response_code=RSP_INVALID
    )
    assert p.msgs == [rsp]
    rec = _pri_fault(260, pid)
    rec.device_id = wide
    assert fq_records(p.s) == [rec]


@pytest.mark.parametrize("pid", [None, 0x123])
def test_pri_en_pri_0_is_invalid_request(pid: Optional[int]) -> None:
    """§ATS_PRI: EN_PRI=0 -> Invalid Request (260).  PRPR must be 0 with EN_PRI=0 (else the DC
    is misconfigured), so the response has no PASID."""
    p = Pri(tc=TC_ATS)
    rsp = p.request(process_id=pid)
    assert rsp == _prgr(RSP_INVALID)
    assert p.msgs == [rsp]
    assert fq_records(p.s) == [_pri_fault(260, pid)]


def test_pri_en_pri_0_with_dtf_is_not_recorded() -> None:
    """DC.tc.DTF=1 suppresses cause 260 ("No" in the DTF column); the response is still sent."""
    p = Pri(tc=TC_ATS | TC_DTF)
    assert p.request() == _prgr(RSP_INVALID)
    assert fq_records(p.s) == []


@pytest.mark.parametrize("pid", [None, 0x123])
def test_pri_pq_off_is_response_failure_and_not_recorded(pid: Optional[int]) -> None:
    """§ATS_PRI: PQ not enabled -> Response Failure (PASID if the request had one), no fault."""
    p = Pri(pq=False, tc=TC_ATS | TC_EN_PRI | TC_PRPR)
    rsp = p.request(process_id=pid)
    assert rsp == _prgr(RSP_FAILURE, pid)
    assert p.msgs == [rsp]
    assert fq_records(p.s) == []


@pytest.mark.parametrize("pid", [None, 0x123])
def test_pri_pq_memory_fault_is_response_failure_and_not_recorded(pid: Optional[int]) -> None:
    """PRQ / §ATS_PRI: an access fault writing the record sets pqmf -> Response Failure; while
    pqmf is set every later request is discarded with Response Failure; nothing in the FQ."""
    p = Pri()
    p.s.mem.inject(p.pq, 4096, rv.MemoryFault.ACCESS_FAULT)
    rsp = p.request(process_id=pid)
    assert rsp == _prgr(RSP_FAILURE, pid)
    assert p.pqcsr() & F.PQCSR.pqmf.mask
    assert p.pqt() == 0
    p.s.mem.clear_injections()
    assert p.request(process_id=pid) == _prgr(RSP_FAILURE, pid)
    assert p.pqt() == 0
    assert p.msgs == [rsp, rsp]
    assert fq_records(p.s) == []


@pytest.mark.parametrize(
    ("prpr", "pid"), [(False, None), (False, 0x55), (True, None), (True, 0x55)]
)
def test_pri_full_queue_is_success_pasid_per_prpr(prpr: bool, pid: Optional[int]) -> None:
    """§ATS_PRI: the queue full (pqt == pqh - 1) -> pqof and a Success response, with a PASID
    only when PRPR=1 and the request had one; nothing in the FQ.  While pqof is set later
    requests get Success too, even with room in the queue."""
    p = Pri(log2sz=1, tc=TC_ATS | TC_EN_PRI | (TC_PRPR if prpr else 0))
    assert p.request(process_id=pid) is None  # the one free slot of a 2-entry queue
    rsp = p.request(process_id=pid)
    assert rsp == _prgr(RSP_SUCCESS, pid if prpr else None)
    assert p.pqcsr() & F.PQCSR.pqof.mask
    p.s.iommu.mmio_write(REG.PQH, 1, 4)  # software consumed the record: room again
    assert p.request(process_id=pid) == rsp  # pqof still set
    assert p.pqt() == 1
    assert p.msgs == [rsp, rsp]
    assert fq_records(p.s) == []


def test_pri_overflow_cleared_queues_again() -> None:
    """PRQ: after software clears pqof (RW1C) records are queued again."""
    p = Pri(log2sz=1)
    p.request()
    p.request()
    p.s.iommu.mmio_write(REG.PQH, 1, 4)
    p.s.iommu.mmio_write(REG.PQCSR, F.PQCSR.encode(pqen=1, pie=1, pqof=1), 4)
    assert not p.pqcsr() & F.PQCSR.pqof.mask
    assert p.request(prg_index=7) is None
    assert p.pqt() == 0  # wrapped: 2-entry queue
    assert p.raw(1) == _le(pq_record(DID, PR_ADDR, 7, True, False, True))


@pytest.mark.parametrize(
    "setup", ["256-ddtp-off", "258-dc-not-valid", "en-pri-0", "pq-off", "pq-full"]
)
@pytest.mark.parametrize("kind", ["L=0", "stop-marker"])
def test_pri_no_response_for_l0_and_stop_markers(setup: str, kind: str) -> None:
    """§ATS_PRI: requests with L=0 and Stop Markers need no response: silently discarded on
    errors (no "Page Request Group Response"); faults are still recorded where they would be."""
    p = Pri(pq=setup != "pq-off", log2sz=1)
    if setup == "en-pri-0":
        p.s.ddt.set_dc(DID, tc=TC_ATS)
    elif setup == "pq-full":
        p.request(last=False)
    elif setup != "pq-off":
        _setup_failure(p, setup)
    if kind == "L=0":
        rsp = p.request(last=False, process_id=3)
    else:
        rsp = p.request(last=True, read=False, write=False, process_id=3)
    assert rsp is None
    assert p.msgs == []
    expected = {"256-ddtp-off": [_pri_fault(256, 3)], "258-dc-not-valid": [_pri_fault(258, 3)]}
    expected["en-pri-0"] = [_pri_fault(260, 3)]
    assert fq_records(p.s) == expected.get(setup, [])


def test_pri_l1_without_pasid_and_no_access_still_gets_a_response() -> None:
    """A Stop Marker carries a PASID: L=1, R=W=0 without one needs a response (here EN_PRI=0)."""
    p = Pri(tc=TC_ATS)
    assert p.request(read=False, write=False, last=True) == _prgr(RSP_INVALID)


def test_pri_api_rejects_page_address_with_offset_bits() -> None:
    """API edge: a Page Request carries a page address (bits 11:0 zero)."""
    p = Pri()
    with pytest.raises(ValueError):
        p.request(addr=PR_ADDR | 0x10)
    with pytest.raises(ValueError):
        p.request(prg_index=512)  # PRGI is 9 bits
    assert p.pqt() == 0 and p.msgs == []


@given(
    tc_bits=st.integers(0, 0xFFF),
    pid=st.one_of(st.none(), st.integers(0, (1 << 20) - 1)),
    r=st.booleans(),
    w=st.booleans(),
    last=st.booleans(),
    priv=st.booleans(),
    exe=st.booleans(),
)
@HYP
def test_pri_any_dc_never_raises_and_response_is_consistent(
    tc_bits: int, pid: Optional[int], r: bool, w: bool, last: bool, priv: bool, exe: bool
) -> None:
    """Guest-controlled DC.tc: the model never raises; a message is queued xor answered (only
    when L=1 and not a Stop Marker), with one of the three response codes."""
    p = Pri(tc=tc_bits)
    msg = dict(process_id=pid, read=r, write=w, last=last, priv=priv, exec_req=exe)
    rsp = p.request(**msg)
    stop = last and not r and not w and pid is not None
    if rsp is None:
        assert p.msgs == []
    else:
        assert last and not stop
        assert p.msgs == [rsp]
        assert rsp.response_code in (RSP_SUCCESS, RSP_INVALID, RSP_FAILURE)
    queued = p.pqt() == 1
    valid = tc_bits & TC_V and tc_bits & TC_EN_ATS and tc_bits & TC_EN_PRI
    if queued:
        assert rsp is None and valid


# ===========================================================================
# ATS.INVAL, Invalidation Completions and IOFENCE.C
# ===========================================================================
FLAG_DATA = 0xC0FFEE01


class Cq:
    """A system with CQ/FQ enabled, devices with EN_ATS=1 and the ATS messages captured."""

    def __init__(
        self,
        devices: Tuple[int, ...] = (DID,),
        params: Optional[rv.IommuParams] = None,
        log2sz: int = 4,
        cie: bool = True,
    ) -> None:
        self.s = System(params=params)
        for d in devices:
            self.s.ddt.set_dc(d, tc=TC_ATS)
        self.msgs: List[Any] = []
        self.s.iommu.on_ats_message = self.msgs.append
        setup_fq(self.s)
        setup_cq(self.s, log2sz, ie=cie)
        self.flag = self.s.page()

    @property
    def io(self) -> rv.Iommu:
        return self.s.iommu

    def cqh(self) -> int:
        return int(self.io.mmio_read(REG.CQH, 4))

    def flag_value(self) -> int:
        return int(self.s.mem.read_u32(self.flag))

    def fence(self) -> Tuple[int, int]:
        return iofence_c(addr=self.flag, data=FLAG_DATA)

    def invals(self) -> List[rv.InvalidationRequest]:
        return [m for m in self.msgs if isinstance(m, rv.InvalidationRequest)]


def test_ats_inval_sends_invalidation_request_with_command_fields() -> None:
    """ATS.INVAL: an "Invalidation Request" to RID with PAYLOAD G/S/address, PASID when PV=1,
    segment when DSV=1, and a free ITAG."""
    c = Cq()
    submit(
        c.s,
        ats_inval(0x1234, addr=0x7654_3000, pid=0x5_4321, dseg=0xA5, g=True, s=True),
        ats_inval(DID, addr=0xFFFF_F000),
    )
    assert c.msgs == [
        rv.InvalidationRequest(
            device_id=0x1234,
            addr=0x7654_3000,
            s=True,
            global_=True,
            pasid=0x5_4321,
            segment=0xA5,
            itag=0,
        ),
        rv.InvalidationRequest(device_id=DID, addr=0xFFFF_F000, itag=1),
    ]
    assert c.cqh() == 2  # the IOMMU may advance cqh while the responses are awaited
    assert cqcsr(c.s) & (F.CQCSR.cmd_ill.mask | F.CQCSR.cmd_to.mask) == 0


def test_ats_inval_pid_ignored_without_pv_and_dseg_without_dsv() -> None:
    """ATS commands: PID is ignored when PV=0, DSEG when DSV=0."""
    c = Cq()
    d0 = F.CMD_ATS0.encode(opcode=4, func3=0, PID=0x777, PV=0, DSV=0, RID=DID, DSEG=0x12)
    submit(c.s, (d0, F.ATS_INVAL_PAYLOAD.encode(ADDR=0x40)))
    assert c.msgs == [rv.InvalidationRequest(device_id=DID, addr=0x40000, itag=0)]


def test_ats_commands_illegal_without_ats_capability() -> None:
    """ "This command is supported if capabilities.ATS is set to 1": else cmd_ill, cqh stays."""
    s = System(ats=False)
    msgs: List[Any] = []
    s.iommu.on_ats_message = msgs.append
    setup_cq(s)
    submit(s, ats_inval(DID))
    assert cqcsr(s) & F.CQCSR.cmd_ill.mask
    assert s.iommu.mmio_read(REG.CQH, 4) == 0 and msgs == []


def test_iofence_waits_for_outstanding_invalidation() -> None:
    """IOFENCE.C does not complete before prior ATS.INVAL commands complete: cqh stays on the
    fence, its AV write is not done and later commands are not run."""
    c = Cq()
    submit(c.s, ats_inval(DID), c.fence(), ats_prgr(DID, prgi=3))
    assert c.cqh() == 1
    assert c.flag_value() == 0
    assert len(c.msgs) == 1  # the ATS.PRGR after the fence has not been sent
    assert cqcsr(c.s) & F.CQCSR.cmd_to.mask == 0
    assert c.io.invalidation_completion(DID, 1 << c.msgs[0].itag) == 1
    assert c.cqh() == 3
    assert c.flag_value() == FLAG_DATA
    assert c.msgs[1] == rv.PageRequestGroupResponse(device_id=DID, prg_index=3, response_code=0)


def test_iofence_without_outstanding_invalidations_completes_at_once() -> None:
    """IOFENCE.C with nothing outstanding completes and writes DATA."""
    c = Cq()
    submit(c.s, c.fence())
    assert c.cqh() == 1 and c.flag_value() == FLAG_DATA


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_iofence_completes_after_completions_in_any_order(order: Tuple[int, ...]) -> None:
    """IOFENCE.C completes once every prior invalidation completed, whatever the order."""
    devs = (0x10, 0x11, 0x12)
    c = Cq(devices=devs)
    submit(c.s, *(ats_inval(d, addr=0x1000 * k) for k, d in enumerate(devs)), c.fence())
    sent = c.invals()
    assert [m.device_id for m in sent] == list(devs)
    for k in order:
        assert c.cqh() == 3 and c.flag_value() == 0
        assert c.io.invalidation_completion(sent[k].device_id, 1 << sent[k].itag) == 1
    assert c.cqh() == 4 and c.flag_value() == FLAG_DATA


@given(data=st.data(), devs=st.lists(st.sampled_from([0x20, 0x21, 0x40]), min_size=1, max_size=6))
@HYP
def test_iofence_completion_orders_property(data: st.DataObject, devs: List[int]) -> None:
    """Hypothesis: for any set of invalidations and any completion order (with ignored stray
    completions mixed in), the fence completes exactly when the last one arrives."""
    c = Cq(devices=(0x20, 0x21, 0x40))
    submit(c.s, *(ats_inval(d) for d in devs), c.fence())
    sent = c.invals()
    order = data.draw(st.permutations(range(len(sent))))
    for k in order:
        assert c.cqh() == len(devs) and c.flag_value() == 0
        if data.draw(st.booleans()):  # a stray completion: wrong device or unused ITAG
            wrong = 0x21 if sent[k].device_id != 0x21 else 0x20
            assert c.io.invalidation_completion(wrong, 1 << sent[k].itag) == 0
            assert c.io.invalidation_completion(sent[k].device_id, 1 << 31) == 0
        assert c.io.invalidation_completion(sent[k].device_id, 1 << sent[k].itag) == 1
    assert c.cqh() == len(devs) + 1 and c.flag_value() == FLAG_DATA
    assert fq_records(c.s) == []


def test_one_completion_message_with_several_itags() -> None:
    """An Invalidation Completion's ITAG vector may complete several requests at once."""
    c = Cq()
    submit(c.s, ats_inval(DID), ats_inval(DID, addr=0x2000), c.fence())
    itags = [m.itag for m in c.invals()]
    assert c.io.invalidation_completion(DID, (1 << itags[0]) | (1 << itags[1])) == 2
    assert c.cqh() == 3 and c.flag_value() == FLAG_DATA


def test_completion_count_two_needs_two_completions() -> None:
    """Completion Count (CC) = 2: the request completes with the second completion message."""
    c = Cq()
    submit(c.s, ats_inval(DID), c.fence())
    itag = c.msgs[0].itag
    assert c.io.invalidation_completion(DID, 1 << itag, cc=2) == 0
    assert c.cqh() == 1 and c.flag_value() == 0
    assert c.io.invalidation_completion(DID, 1 << itag, cc=2) == 1
    assert c.cqh() == 2 and c.flag_value() == FLAG_DATA


def test_completion_count_zero_means_eight() -> None:
    """CC = 0 encodes 8 completion messages."""
    c = Cq()
    submit(c.s, ats_inval(DID), c.fence())
    itag = c.msgs[0].itag
    for _ in range(7):
        assert c.io.invalidation_completion(DID, 1 << itag, cc=0) == 0
    assert c.cqh() == 1
    assert c.io.invalidation_completion(DID, 1 << itag, cc=0) == 1
    assert c.cqh() == 2 and c.flag_value() == FLAG_DATA


def test_completion_for_unknown_itag_or_wrong_device_is_ignored() -> None:
    """Completions for ITAGs not in flight, or from another device, complete nothing."""
    other = DID + 1
    c = Cq(devices=(DID, other))
    submit(c.s, ats_inval(DID), c.fence())
    itag = c.msgs[0].itag
    assert c.io.invalidation_completion(DID, 1 << (itag + 1)) == 0
    assert c.io.invalidation_completion(other, 1 << itag) == 0
    assert c.cqh() == 1 and c.flag_value() == 0
    assert fq_records(c.s) == []
    assert c.io.invalidation_completion(DID, 1 << itag) == 1
    assert c.cqh() == 2


def test_completion_from_segmented_device_id() -> None:
    """DSV/DSEG qualify RID (sw guidelines "ATS.INVAL"): the device answering is DSEG:RID."""
    seg_did = (0x3 << 16) | DID
    c = Cq(devices=(DID, seg_did))
    submit(c.s, ats_inval(DID, dseg=0x3), c.fence())
    itag = c.msgs[0].itag
    assert c.io.invalidation_completion(DID, 1 << itag) == 0  # segment 0: another function
    assert c.io.invalidation_completion(seg_did, 1 << itag) == 1
    assert c.cqh() == 2


def test_completion_from_device_without_en_ats_is_recorded() -> None:
    """DC.tc.EN_ATS=0: an Invalidation Completion is an unsupported request -> fault 260,
    TTYP 9, iotval = message code 0x02; nothing completes."""
    plain = 0x33
    c = Cq()
    c.s.ddt.set_dc(plain, tc=TC_V)
    submit(c.s, ats_inval(DID), c.fence())
    assert c.io.invalidation_completion(plain, 1 << c.msgs[0].itag) == 0
    assert fq_records(c.s) == [
        rv.FaultRecord(cause=260, ttyp=rv.Ttyp.PCIE_MESSAGE, iotval=0x02, device_id=plain)
    ]
    assert c.cqh() == 1


@pytest.mark.parametrize(
    ("mf", "cause"),
    [(rv.MemoryFault.ACCESS_FAULT, 257), (rv.MemoryFault.DATA_CORRUPTION, 268)],
)
def test_completion_whose_dc_cannot_be_read_is_recorded(mf: rv.MemoryFault, cause: int) -> None:
    """GET_DC step 8: a DC read that violates a PMA/PMP check (257) or returns poisoned data
    (268) while an Invalidation Completion locates its DC: the fault is recorded with TTYP 9
    and iotval = message code 0x02; nothing completes."""
    c = Cq()
    submit(c.s, ats_inval(DID), c.fence())
    c.s.mem.inject(c.s.ddt.dc_addr(DID), 8, mf)
    c.io.invalidate_ddt()
    assert c.io.invalidation_completion(DID, 1 << c.msgs[0].itag) == 0
    assert fq_records(c.s) == [
        rv.FaultRecord(cause=cause, ttyp=rv.Ttyp.PCIE_MESSAGE, iotval=0x02, device_id=DID)
    ]
    assert c.cqh() == 1


def test_33rd_ats_inval_waits_for_a_free_itag() -> None:
    """32 ITAGs: the 33rd ATS.INVAL waits (cqh stays on it, no error) until a completion frees
    an ITAG, then goes out with that ITAG."""
    c = Cq(log2sz=6)
    submit(c.s, *(ats_inval(DID, addr=k << 12) for k in range(33)))
    assert c.cqh() == 32
    assert sorted(m.itag for m in c.msgs) == list(range(32))
    assert cqcsr(c.s) & (F.CQCSR.cmd_ill.mask | F.CQCSR.cmd_to.mask | F.CQCSR.cqmf.mask) == 0
    assert c.io.invalidation_completion(DID, 1 << 17) == 1
    assert c.cqh() == 33
    assert c.msgs[32] == rv.InvalidationRequest(device_id=DID, addr=32 << 12, itag=17)


def _timed_out_fence(c: Cq) -> None:
    to = F.CQCSR.cmd_to.mask
    assert cqcsr(c.s) & to
    assert c.cqh() == 1  # cqh holds the index of the IOFENCE.C that timed out
    assert c.flag_value() == 0
    assert ipsr(c.s) & F.IPSR.cip.mask  # cie=1
    # software clears cmd_to (RW1C): the queue runs again and the fence completes
    c.io.mmio_write(REG.CQCSR, F.CQCSR.encode(cqen=1, cie=1, cmd_to=1), 4)
    assert cqcsr(c.s) & to == 0
    assert c.cqh() == 2 and c.flag_value() == FLAG_DATA


def test_ats_inval_timeout_by_ticks_sets_cmd_to_on_the_fence() -> None:
    """IOFENCE.C times out waiting on ATS.INVAL (IommuParams.ats_inval_timeout cycles of
    Iommu.tick): cmd_to, cqh on the fence, cip; after clearing cmd_to the fence completes."""
    c = Cq(params=rv.IommuParams(ats_inval_timeout=100))
    submit(c.s, ats_inval(DID), c.fence())
    c.io.tick(99)
    assert cqcsr(c.s) & F.CQCSR.cmd_to.mask == 0 and c.cqh() == 1
    assert ipsr(c.s) & F.IPSR.cip.mask == 0
    c.io.tick(1)
    _timed_out_fence(c)


def test_ats_inval_timeout_by_testbench() -> None:
    """Iommu.ats_timeout(): every outstanding invalidation times out -> cmd_to on the fence."""
    c = Cq()
    submit(c.s, ats_inval(DID), c.fence())
    assert c.io.ats_timeout() == 1
    _timed_out_fence(c)


def test_late_completion_after_timeout_is_ignored() -> None:
    """A completion for a timed-out request completes nothing."""
    c = Cq()
    submit(c.s, ats_inval(DID))
    itag = c.msgs[0].itag
    c.io.ats_timeout()
    assert c.io.invalidation_completion(DID, 1 << itag) == 0


def test_timeout_before_the_fence_is_reported_by_the_next_fence() -> None:
    """ "If a timeout occurs, it is reported when a subsequent IOFENCE.C command is executed";
    a later fence does not report it again."""
    c = Cq(params=rv.IommuParams(ats_inval_timeout=10))
    submit(c.s, ats_inval(DID))
    c.io.tick(10)
    assert cqcsr(c.s) & F.CQCSR.cmd_to.mask == 0 and c.cqh() == 1
    submit(c.s, c.fence())
    assert cqcsr(c.s) & F.CQCSR.cmd_to.mask and c.cqh() == 1
    c.io.mmio_write(REG.CQCSR, F.CQCSR.encode(cqen=1, cie=1, cmd_to=1), 4)
    assert c.cqh() == 2 and c.flag_value() == FLAG_DATA
    submit(c.s, iofence_c())
    assert c.cqh() == 3 and cqcsr(c.s) & F.CQCSR.cmd_to.mask == 0


def test_no_timeout_when_completed_in_time() -> None:
    """A completion before the timeout: no cmd_to, ever."""
    c = Cq(params=rv.IommuParams(ats_inval_timeout=100))
    submit(c.s, ats_inval(DID), c.fence())
    c.io.tick(50)
    c.io.invalidation_completion(DID, 1 << c.msgs[0].itag)
    c.io.tick(1000)
    assert cqcsr(c.s) & F.CQCSR.cmd_to.mask == 0
    assert c.cqh() == 2 and c.flag_value() == FLAG_DATA


# ===========================================================================
# ATS.PRGR
# ===========================================================================
@pytest.mark.parametrize(
    ("pid", "dseg", "code"), [(None, None, 0x0), (0xF_EDCB, 0x7, 0x1), (0x1, None, 0xF)]
)
def test_ats_prgr_sends_page_request_group_response(
    pid: Optional[int], dseg: Optional[int], code: int
) -> None:
    """ATS.PRGR: a "Page Request Group Response" to RID with the PAYLOAD's PRGI and Response
    Code, a PASID when PV=1, the segment when DSV=1; it completes at once."""
    c = Cq()
    submit(c.s, ats_prgr(0xBEEF, prgi=0x1FF, response_code=code, pid=pid, dseg=dseg))
    assert c.msgs == [
        rv.PageRequestGroupResponse(
            device_id=0xBEEF, prg_index=0x1FF, response_code=code, pasid=pid, segment=dseg
        )
    ]
    assert c.cqh() == 1


def test_ats_prgr_pid_ignored_without_pv() -> None:
    """ATS.PRGR: "if PV operand is set to 0, then the PID operand is ignored"."""
    c = Cq()
    d0 = F.CMD_ATS0.encode(opcode=4, func3=1, PID=0x999, PV=0, RID=DID)
    submit(c.s, (d0, F.ATS_PRGR_PAYLOAD.encode(PRGI=5, ResponseCode=1)))
    assert c.msgs == [rv.PageRequestGroupResponse(device_id=DID, prg_index=5, response_code=1)]


def test_completion_answered_from_the_message_handler_does_not_rerun_the_command() -> None:
    """A device model that completes an ATS.INVAL inside on_ats_message: the command is sent
    once, and the IOFENCE.C after it completes (no re-entrant processing)."""
    s = System()
    sent: List[Any] = []

    def device(msg: Any) -> None:
        sent.append(msg)
        if isinstance(msg, rv.InvalidationRequest):
            s.iommu.invalidation_completion(msg.device_id, 1 << msg.itag)

    s.iommu.on_ats_message = device
    s.ddt.set_dc(DID, tc=TC_ATS)
    setup_cq(s)
    flag = s.page()
    submit(s, ats_inval(DID, addr=0x1000), iofence_c(addr=flag, data=7))
    assert len(sent) == 1
    assert s.mem.read_u32(flag) == 7
    assert s.iommu.mmio_read(REG.CQH, 4) == 2
