"""A and D are set only after the leaf's permission checks pass (issue 16, item 1).

Spec: iommu_data_structures.adoc, "A/D updating": the updates "must follow the
rules specified by the Privileged specification for validity, permission
checking, and atomicity"; the Privileged spec's walk checks the leaf (PTW step 5)
before it updates A/D (step 7).  "PCIe ATS translation request handling": a page
that fails the U-bit rules answers "Success with R and W bits set to 0".

Every path that walks a leaf is covered: ATS (with and without T2GPA), Translated
requests with T2GPA, the debug interface, untranslated requests, and the G-stage
leaf of a final GPA whose first stage was denied.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import pytest

import riscv_iommu as rv
from helpers import (
    PD20,
    SV39,
    TC_EN_ATS,
    TC_GADE,
    TC_PDTV,
    TC_SADE,
    TC_T2GPA,
    TC_V,
    System,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import RW, RWX, URW, URWX, A, D, R, U, X

DID = 0x44
PID = 0x9
VA = 0x1_2345_6000
GPA = 0x5000_0000
SPA = 0x40_0000_0000
ATS = rv.RequestKind.ATS_TRANSLATION
TRANSLATED = rv.RequestKind.TRANSLATED
AD = A | D


class Two:
    """First stage (in guest memory) over a G-stage, hardware A/D on in both stages."""

    def __init__(
        self,
        s1_flags: int = URWX,
        g_flags: int = URWX,
        tc: int = TC_EN_ATS | TC_SADE | TC_GADE,
        pasid: bool = False,
        sum_: bool = False,
        s1: bool = True,
    ) -> None:
        self.s = System()
        self.g = self.s.gstage(SV39)
        self.gleaf = self.g.map(GPA, SPA, flags=g_flags)
        guest = self.s.guest(self.g)
        fsc = 0
        self.s1leaf = -1
        if s1:
            t1 = self.s.stage1(guest)
            self.s1leaf = guest.to_spa(t1.map(VA, GPA, flags=s1_flags))
            fsc = t1.satp()
        if pasid:
            pdt = self.s.pdt(guest, PD20)
            pdt.set_pc(PID, fsc=fsc, ens=True, sum_=sum_)
            fsc = pdt.pdtp()
            tc |= TC_PDTV
        self.s.ddt.set_dc(DID, tc=TC_V | tc, iohgatp=self.g.satp(2), fsc=fsc)

    def ad(self) -> Tuple[int, int]:
        """A/D bits of the first-stage leaf and the G-stage leaf of the final GPA."""
        s1 = self.s.mem.read_u64(self.s1leaf) & AD if self.s1leaf >= 0 else -1
        return s1, self.s.mem.read_u64(self.gleaf) & AD

    def req(self, addr: int = VA, **kw: Any) -> rv.Response:
        kw.setdefault("length", 4)
        return self.s.iommu.translate(rv.Request(device_id=DID, addr=addr, **kw))


def _no_access(rsp: rv.Response) -> None:
    """§ATS_FAULTS: Success with R = W = 0."""
    assert rsp.status == rv.Status.SUCCESS and (rsp.r, rsp.w, rsp.x) == (False, False, False)


# ------------------------------------------------------------------------------------------
# ATS translation requests
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("no_write", [False, True])
def test_ats_without_pasid_to_supervisor_page_sets_no_a(no_write: bool) -> None:
    """The issue's case: no PASID (user), U = 0 leaf, SADE = 1 -> Success R = W = 0, A = 0."""
    t = Two(s1_flags=RWX)
    _no_access(t.req(kind=ATS, no_write=no_write))
    assert t.ad() == (0, 0)


def test_untranslated_read_to_supervisor_page_sets_no_a() -> None:
    """The untranslated request in the same situation (the reference behaviour)."""
    t = Two(s1_flags=RWX)
    rsp = t.req()
    assert rsp.fault is not None and rsp.fault.cause == rv.Cause.READ_PAGE_FAULT
    assert t.ad() == (0, 0)


def test_ats_privileged_to_user_page_without_sum_sets_no_a() -> None:
    t = Two(s1_flags=URWX, pasid=True, sum_=False)
    _no_access(t.req(kind=ATS, process_id=PID, priv=True))
    assert t.ad() == (0, 0)


def test_ats_privileged_to_user_page_with_sum_sets_a_and_d() -> None:
    """Control: with SUM the read is granted, so A (and D, for the requested W) are set."""
    t = Two(s1_flags=URWX, pasid=True, sum_=True)
    rsp = t.req(kind=ATS, process_id=PID, priv=True)
    assert (rsp.status, rsp.r, rsp.w, rsp.x) == (rv.Status.SUCCESS, True, True, False)
    assert t.ad() == (AD, AD)


@pytest.mark.parametrize("execute", [False, True])
def test_ats_execute_only_first_stage_sets_nothing_in_either_stage(execute: bool) -> None:
    """An execute-only first-stage leaf grants nothing to PCIe ("X only with R"): the first
    stage is denied, so neither its leaf nor the G-stage leaf of the final GPA gets A."""
    t = Two(s1_flags=U | X)
    access = rv.Access.EXECUTE if execute else rv.Access.READ
    _no_access(t.req(kind=ATS, access=access))
    assert t.ad() == (0, 0)


def test_ats_g_stage_denies_read_sets_no_g_stage_a() -> None:
    """The first stage grants the read (its A is set, as a hart's VS-stage walk would);
    the G-stage leaf of the final GPA lacks R: guest-page fault, its A stays 0."""
    t = Two(g_flags=U | X)
    _no_access(t.req(kind=ATS, access=rv.Access.EXECUTE))
    assert t.ad() == (A, 0)


def test_ats_g_stage_supervisor_leaf_sets_no_g_stage_a() -> None:
    """G-stage accesses are user accesses: a U = 0 G-stage leaf is denied, A stays 0."""
    t = Two(g_flags=RWX)
    _no_access(t.req(kind=ATS))
    assert t.ad()[1] == 0


@pytest.mark.parametrize("g_flags", [RWX, U | X])
def test_ats_t2gpa_g_stage_denied_sets_no_g_stage_a(g_flags: int) -> None:
    """T2GPA: the completion carries the GPA but both stages are checked; a denied
    G-stage leaf keeps A = 0."""
    t = Two(g_flags=g_flags, tc=TC_EN_ATS | TC_SADE | TC_GADE | TC_T2GPA)
    _no_access(t.req(kind=ATS))
    assert t.ad()[1] == 0


def test_ats_t2gpa_supervisor_first_stage_page_sets_no_a() -> None:
    t = Two(s1_flags=RWX, tc=TC_EN_ATS | TC_SADE | TC_GADE | TC_T2GPA)
    _no_access(t.req(kind=ATS))
    assert t.ad() == (0, 0)


def test_ats_read_only_page_with_write_requested_sets_a_only() -> None:
    """W requested but not granted: the read is granted (A), no D anywhere."""
    t = Two(s1_flags=U | R)
    rsp = t.req(kind=ATS)
    assert (rsp.r, rsp.w) == (True, False)
    assert t.ad() == (A, A)


# ------------------------------------------------------------------------------------------
# Translated requests with T2GPA (the IOVA is a GPA: G-stage only)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "g_flags,access,cause",
    [
        (RW, rv.Access.READ, rv.Cause.READ_GUEST_PAGE_FAULT),  # U = 0
        (U | R, rv.Access.WRITE, rv.Cause.WRITE_GUEST_PAGE_FAULT),  # no W
        (URW, rv.Access.EXECUTE, rv.Cause.INSTRUCTION_GUEST_PAGE_FAULT),  # no X
    ],
)
def test_translated_t2gpa_denied_sets_no_g_stage_a(g_flags: int, access: int, cause: int) -> None:
    t = Two(g_flags=g_flags, tc=TC_EN_ATS | TC_GADE | TC_T2GPA, s1=False)
    rsp = t.req(GPA, kind=TRANSLATED, access=access)
    assert rsp.fault is not None and rsp.fault.cause == cause
    assert t.ad()[1] == 0


def test_translated_t2gpa_granted_sets_g_stage_a_and_d() -> None:
    t = Two(tc=TC_EN_ATS | TC_GADE | TC_T2GPA, s1=False)
    rsp = t.req(GPA, kind=TRANSLATED, access=rv.Access.WRITE)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, SPA)
    assert t.ad()[1] == AD


# ------------------------------------------------------------------------------------------
# the debug interface (tr_req_iova / tr_req_ctl)
# ------------------------------------------------------------------------------------------
def _debug(t: Two, nw: bool, pid: Optional[int] = None, priv: bool = False) -> int:
    io = t.s.iommu
    io.mmio_write(rv.REG.TR_REQ_IOVA, VA)
    ctl = F.TR_REQ_CTL.encode(Go_Busy=1, DID=DID, NW=int(nw))
    if pid is not None:
        ctl |= F.TR_REQ_CTL.encode(PV=1, PID=pid, Priv=int(priv))
    io.mmio_write(rv.REG.TR_REQ_CTL, ctl)
    return io.mmio_read(rv.REG.TR_RESPONSE)


@pytest.mark.parametrize(
    "s1_flags,nw",
    [
        (U | R, False),  # NW = 0 asks for write: a read-only page is denied
        (RWX, True),  # no PASID: user mode, U = 0 page denied
        (U | X, True),  # no read permission
    ],
)
def test_debug_translation_denied_sets_no_a(s1_flags: int, nw: bool) -> None:
    t = Two(s1_flags=s1_flags)
    assert F.TR_RESPONSE.fault.get(_debug(t, nw)) == 1
    assert t.ad() == (0, 0)


def test_debug_translation_privileged_user_page_without_sum_sets_no_a() -> None:
    t = Two(s1_flags=URWX, pasid=True)
    assert F.TR_RESPONSE.fault.get(_debug(t, True, PID, priv=True)) == 1
    assert t.ad() == (0, 0)


def test_debug_translation_granted_sets_a_and_d() -> None:
    t = Two()
    assert F.TR_RESPONSE.fault.get(_debug(t, False)) == 0
    assert t.ad() == (AD, AD)


# ------------------------------------------------------------------------------------------
# untranslated requests: the G-stage leaf of a final GPA whose first stage was denied
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "s1_flags,access",
    [
        (U | R, rv.Access.WRITE),
        (RWX, rv.Access.READ),
        (URW, rv.Access.EXECUTE),
    ],
)
def test_untranslated_first_stage_denied_sets_no_a_in_either_stage(
    s1_flags: int, access: int
) -> None:
    t = Two(s1_flags=s1_flags)
    rsp = t.req(access=access)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert t.ad() == (0, 0)


def test_untranslated_g_stage_denied_keeps_first_stage_update() -> None:
    """Two-stage order (Privileged spec): the first-stage walk, with its A/D update, completes
    before the final GPA is translated; the denied G-stage leaf keeps A = 0."""
    t = Two(g_flags=U | R)
    rsp = t.req(access=rv.Access.WRITE)
    assert rsp.fault is not None and rsp.fault.cause == rv.Cause.WRITE_GUEST_PAGE_FAULT
    assert t.ad() == (AD, 0)
