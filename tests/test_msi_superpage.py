"""Virtual interrupt files inside superpages (issue 9, items 1 and 2).

Spec: iommu_data_structures.adoc, "Process to translate an IOVA" step 18 (every
request whose MSI translation is on goes through MSI address translation),
"MSI address mask and pattern" (MSI_ID: a 4 KiB GPA page is a virtual interrupt
file when ``(A >> 12) & ~msi_addr_mask == msi_addr_pattern & ~msi_addr_mask``),
and "PCIe ATS translation request handling": "A translation request from a device
to a GPA that is mapped through a MRIF mode MSI PTE is not eligible to receive a
translated address."

Rule of the model (docs/translation.md): no cached translation and no reported
range (``rsp.size``, ATS completion, ``tr_response``) covers a 4 KiB page that
step 18 would recognise as a virtual interrupt file; the range is shrunk to the
largest aligned power of two around the address that holds none.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import pytest

import riscv_iommu as rv
from helpers import PD20, SV39, TC_EN_ATS, TC_PDTV, TC_SADE, TC_T2GPA, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu import msi
from riscv_iommu.host.tables import URW, URWX, A, D, G, W

sys.path.insert(0, str(Path(__file__).resolve().parent / "gipc"))
from gipc_helpers import GipcSystem  # noqa: E402

DID = 0x31
KB4, MB1, MB2, GB1 = 1 << 12, 1 << 20, 1 << 21, 1 << 30
#: G-stage superpage: GPA 0x4000_0000 -> SPA 0x9000_0000 (2 MiB)
GPA = 0x4000_0000
SPA = 0x9000_0000
#: the one virtual interrupt file: GPA page 0x4010_0000 (mask 0)
IF_GPA = 0x4010_0000
IMSIC = 0x2400_0000
ATS = rv.RequestKind.ATS_TRANSLATION

#: every cache capacity: the default, everything off, one entry, small
CACHES = {
    "default": {},
    "none": dict(
        ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=0
    ),
    "one": dict(
        ddt_cache_size=1, pdt_cache_size=1, iotlb_size=1, msi_cache_size=1, gwalk_cache_size=1
    ),
    "small": dict(ddt_cache_size=4, iotlb_size=4, msi_cache_size=4),
    "iotlb-only": dict(ddt_cache_size=0, pdt_cache_size=0, msi_cache_size=0),
}


class Scene:
    """DID: G-stage superpage over GPA, first stage Bare, one interrupt file at IF_GPA."""

    def __init__(
        self,
        params: Optional[dict[str, Any]] = None,
        size: int = MB2,
        tc: int = TC_V,
        mask: int = 0,
        pattern: int = IF_GPA >> 12,
        s1: bool = False,
        s1_flags: int = URWX | A | D,
        s1_iova: int = GPA,
        pasid: Optional[int] = None,
    ) -> None:
        self.s = System(params=rv.IommuParams(**(params or {})))
        self.g = self.s.gstage(SV39)
        self.g.map(GPA & ~(size - 1), SPA & ~(size - 1), size=size)
        self.pt = self.s.msipt(8)
        self.pt.set_flat(0, IMSIC)
        fsc = 0
        self.s1pte = -1
        self.guest = self.s.guest(self.g)
        if s1:  # a first-stage 2 MiB page s1_iova -> GPA (table in guest memory)
            t1 = self.s.stage1(self.guest)
            self.s1pte = self.guest.to_spa(t1.map(s1_iova, GPA, size=MB2, flags=s1_flags))
            fsc = t1.satp()
            if pasid is not None:  # the first stage is PC(pasid)'s, the PDT in guest memory
                pdt = self.s.pdt(self.guest, PD20)
                pdt.set_pc(pasid, fsc=fsc)
                fsc = pdt.pdtp()
                tc |= TC_PDTV
        self.s.ddt.set_dc(
            DID,
            tc=tc,
            iohgatp=self.g.satp(5),
            fsc=fsc,
            msiptp=self.pt.msiptp(),
            msi_addr_mask=mask,
            msi_addr_pattern=pattern,
        )

    def w(self, addr: int, **kw: Any) -> rv.Response:
        kw.setdefault("length", 4)
        return self.s.t(DID, addr, rv.Access.WRITE, **kw)

    def ats(self, addr: int, **kw: Any) -> rv.Response:
        return self.s.t(DID, addr, rv.Access.READ, kind=ATS, **kw)


def _covers(rsp: rv.Response, page: int) -> bool:
    base = rsp.addr & ~(rsp.size - 1)
    return base <= page < base + rsp.size


# ------------------------------------------------------------------------------------------
# msi.msi_free_size: the bit arithmetic
# ------------------------------------------------------------------------------------------
def _brute(gpa: int, size: int, mask: int, pattern: int) -> int:
    while size > KB4:
        base = gpa & ~(size - 1)
        if not any(msi.is_msi_address(p, mask, pattern) for p in range(base, base + size, KB4)):
            return size
        size >>= 1
    return KB4


@pytest.mark.parametrize(
    "gpa,mask,pattern",
    [
        (0x4000_0000, 0, 0x40100),  # one page, 1 MiB away
        (0x4000_0000, 0, 0x40001),  # the neighbour page
        (0x401F_F000, 0, 0x40100),  # above it, in the same 2 MiB page
        (0x4000_0000, 0x7, 0x40108),  # 8 interrupt files (mask 0x7)
        (0x4000_0000, 0xF0, 0x40300),  # a mask with a hole in the middle
        (0x4000_0000, 0, 0x80000),  # far away: the whole superpage stays
        (0x4000_4000, 0x3, 0x40000 | (1 << 60)),  # pattern bits beyond 52 are ignored
    ],
)
def test_msi_free_size_matches_a_page_by_page_search(gpa: int, mask: int, pattern: int) -> None:
    for size in (KB4, 1 << 16, MB2, GB1):
        assert msi.msi_free_size(gpa, size, mask, pattern) == _brute(gpa, size, mask, pattern)


@pytest.mark.parametrize(
    "gpa,mask,pattern",
    [(IF_GPA, 0, IF_GPA >> 12), (IF_GPA + 0x3000, 0x7, IF_GPA >> 12), (0, 0, 0)],
)
def test_msi_free_size_of_an_interrupt_file_page_is_that_page(
    gpa: int, mask: int, pattern: int
) -> None:
    """Outside its precondition (``gpa`` itself an interrupt file, which step 18 translates
    before any range is computed) the answer is still safe: the 4 KiB page alone."""
    assert msi.is_msi_address(gpa, mask, pattern)
    for size in (KB4, 1 << 16, MB2, GB1):
        assert msi.msi_free_size(gpa, size, mask, pattern) == KB4


def test_msi_free_size_is_cheap_for_a_huge_range() -> None:
    """A 256 TiB range (2^36 pages) is answered by bit arithmetic, not a search."""
    assert msi.msi_free_size(0, 1 << 48, 0, 1 << 35) == 1 << 47
    assert msi.msi_free_size(1 << 47, 1 << 48, 0xFFF, 0) == 1 << 47


# ------------------------------------------------------------------------------------------
# item 1: untranslated requests after a superpage was cached
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("caches", list(CACHES))
def test_write_to_interrupt_file_after_superpage_hit_is_an_msi(caches: str) -> None:
    sc = Scene(CACHES[caches])
    r0 = sc.w(GPA)
    assert (r0.status, r0.addr, r0.is_msi) == (rv.Status.SUCCESS, SPA, False)
    # the range reported for GPA stops short of the interrupt file: [0x4000_0000, +1 MiB)
    assert r0.size == MB1 and not _covers(r0, IF_GPA)
    r1 = sc.w(IF_GPA + 4)
    assert (r1.status, r1.is_msi, r1.addr) == (rv.Status.SUCCESS, True, IMSIC + 4)
    # and again (now every cache is warm)
    r2 = sc.w(IF_GPA + 4)
    assert (r2.is_msi, r2.addr) == (True, IMSIC + 4)
    # the rest of the superpage is still one (shrunk) translation each side of the file
    r3 = sc.w(IF_GPA + KB4)
    assert (r3.addr, r3.is_msi, r3.size) == (SPA + MB1 + KB4, False, KB4)
    r4 = sc.w(GPA + MB1 + 0x80000)
    assert (r4.addr, r4.size) == (SPA + MB1 + 0x80000, 0x80000)


@pytest.mark.parametrize("caches", list(CACHES))
@pytest.mark.parametrize(
    "pte0,cause",
    [
        (0, rv.Cause.MSI_PTE_NOT_VALID),  # V = 0
        (F.MSIPTE0.encode(V=1, M=0), rv.Cause.MSI_PTE_MISCONFIGURED),  # M = 0 (reserved)
    ],
)
def test_msi_pte_faults_after_superpage_hit(caches: str, pte0: int, cause: int) -> None:
    sc = Scene(CACHES[caches])
    sc.pt.set_raw(0, pte0)
    assert sc.w(GPA).addr == SPA
    rsp = sc.w(IF_GPA)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert rsp.fault is not None and rsp.fault.cause == cause and rsp.reported


@pytest.mark.parametrize("caches", ["default", "none"])
def test_first_stage_superpage_over_an_interrupt_file(caches: str) -> None:
    """Both stages map 2 MiB, the first stage IOVA 0x8000_0000 -> GPA 0x4000_0000; the
    range is shrunk by the GPA (the interrupt file is GPA page 0x4010_0000; measured on the
    IOVA the whole 2 MiB would look free), in the IOTLB too."""
    iova = 0x8000_0000
    sc = Scene(CACHES[caches], s1=True, tc=TC_V | TC_SADE, s1_iova=iova)
    r0 = sc.w(iova + 8)
    assert (r0.status, r0.addr, r0.is_msi, r0.size) == (rv.Status.SUCCESS, SPA + 8, False, MB1)
    rsp = sc.w(iova + (IF_GPA - GPA))
    assert (rsp.is_msi, rsp.addr) == (True, IMSIC)
    r2 = sc.w(iova + MB1 + KB4)  # the page above the file: 4 KiB
    assert (r2.addr, r2.is_msi, r2.size) == (SPA + MB1 + KB4, False, KB4)


@pytest.mark.parametrize("caches", ["default", "none"])
def test_mask_of_eight_files_inside_a_gigapage(caches: str) -> None:
    """A 1 GiB G-stage page with 8 interrupt files at 0x4010_0000..0x4010_7000."""
    sc = Scene(CACHES[caches], size=GB1, mask=0x7, pattern=IF_GPA >> 12)
    for k in range(8):
        sc.pt.set_flat(k, IMSIC + k * KB4)
    r0 = sc.w(0x4020_0000)
    assert r0.size == MB2 and not _covers(r0, IF_GPA)  # [0x4020_0000, +2 MiB)
    r1 = sc.w(0x4010_8000)
    assert (r1.addr, r1.size) == ((SPA & ~(GB1 - 1)) + 0x10_8000, 0x8000)
    for k in range(8):
        rsp = sc.w(IF_GPA + k * KB4)
        assert (rsp.is_msi, rsp.addr) == (True, IMSIC + k * KB4), k


def test_debug_interface_range_avoids_the_interrupt_file() -> None:
    sc = Scene()
    io = sc.s.iommu
    io.mmio_write(rv.REG.TR_REQ_IOVA, GPA)
    io.mmio_write(rv.REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, DID=DID))
    rsp = io.mmio_read(rv.REG.TR_RESPONSE)
    assert F.TR_RESPONSE.fault.get(rsp) == 0 and F.TR_RESPONSE.S.get(rsp) == 1
    # NAPOT: a 1 MiB range at 0x9000_0000 has PPN bits 6:0 set and bit 7 clear
    assert F.TR_RESPONSE.PPN.get(rsp) == (SPA >> 12) | 0x7F


def test_gipc_pc_msi_fields_shrink_the_range() -> None:
    """[GIPC] 2024 64-byte PC: the PC's MSI fields decide which pages are files."""
    s = GipcSystem("2024", msi_flat=True)
    vm = s.vm(1)
    vm.g.map(GPA, SPA, size=MB2)
    pt = s.msipt(4)
    pt.set_flat(0, IMSIC)
    s1 = s.stage1_for(vm)
    s1.map(GPA, GPA, size=MB2)
    s.pdtree.set_pc(
        1,
        fsc=s1.satp(),
        iohgatp=vm.g.satp(1),
        msiptp=pt.msiptp(),
        msi_addr_mask=0,
        msi_addr_pattern=IF_GPA >> 12,
    )
    s.device()
    r0 = s.t(3, GPA, rv.Access.WRITE, process_id=1, length=4)
    assert (r0.addr, r0.size) == (SPA, MB1)
    r1 = s.t(3, IF_GPA, rv.Access.WRITE, process_id=1, length=4)
    assert (r1.is_msi, r1.addr) == (True, IMSIC)


def test_msi_translation_off_keeps_the_whole_superpage() -> None:
    """With msiptp.MODE = Off nothing is an interrupt file: the 2 MiB range stays."""
    sc = Scene()
    sc.s.ddt.set_dc(DID, tc=TC_V, iohgatp=sc.g.satp(5))
    assert sc.w(GPA).size == MB2
    rsp = sc.w(IF_GPA)
    assert (rsp.is_msi, rsp.addr, rsp.size) == (False, SPA + MB1, MB2)


# ------------------------------------------------------------------------------------------
# item 1: ATS completions never cover an interrupt file
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("caches", ["default", "none"])
@pytest.mark.parametrize("t2gpa", [False, True])
def test_ats_range_never_covers_the_interrupt_file(caches: str, t2gpa: bool) -> None:
    sc = Scene(CACHES[caches], tc=TC_V | TC_EN_ATS | (TC_T2GPA if t2gpa else 0))
    rsp = sc.ats(GPA)
    assert rsp.status == rv.Status.SUCCESS and (rsp.r, rsp.w) == (True, True)
    assert rsp.size == MB1 and rsp.s
    assert rsp.addr == (GPA if t2gpa else SPA) | ((MB1 // 2 - 1) & ~0xFFF)
    # the IOTLB filled by the completion does not answer the interrupt file either
    r1 = sc.w(IF_GPA)
    assert (r1.is_msi, r1.addr) == (True, IMSIC)


def test_ats_mrif_page_is_untranslated_only_and_neighbours_avoid_it() -> None:
    """An MRIF-mode page: "not eligible to receive a translated address" (U = 1, 4 KiB)."""
    sc = Scene(tc=TC_V | TC_EN_ATS)
    sc.pt.set_mrif(0, 0x3000_0000, 0x3100_0000, 5)
    rsp = sc.ats(IF_GPA)
    assert (rsp.status, rsp.u, rsp.is_mrif, rsp.size, rsp.s) == (
        rv.Status.SUCCESS,
        True,
        True,
        KB4,
        False,
    )
    for addr in (GPA, IF_GPA - KB4, IF_GPA + KB4, GPA + MB2 - KB4):
        r = sc.ats(addr)
        assert r.status == rv.Status.SUCCESS and not r.u and not _covers(r, SPA + MB1), hex(addr)


# ------------------------------------------------------------------------------------------
# item 2: ATS for an MSI page whose first-stage leaf has D = 0
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("caches", ["default", "none"])
def test_ats_msi_page_sets_d_in_the_first_stage_leaf(caches: str) -> None:
    sc = Scene(CACHES[caches], s1=True, tc=TC_V | TC_EN_ATS | TC_SADE, s1_flags=URW | A)
    rsp = sc.ats(IF_GPA)
    assert (rsp.is_msi, rsp.r, rsp.w, rsp.addr) == (True, True, True, IMSIC)
    assert sc.s.mem.read_u64(sc.s1pte) & D


def test_ats_msi_page_without_sade_is_a_write_page_fault_and_leaves_d() -> None:
    """The MSI PTE has no A/D ("R = W = U = 1"); the first-stage leaf grants W with D = 0
    and SADE = 0: "the IOMMU causes a page-fault corresponding to the original access type
    if ... the memory access is a store and the D bit is 0" -> cause 15, which §ATS_FAULTS
    answers "Success Response with R and W bits set to 0", not logged."""
    sc = Scene(s1=True, tc=TC_V | TC_EN_ATS, s1_flags=URW | A)
    before = sc.s.mem.read_u64(sc.s1pte)
    rsp = sc.ats(IF_GPA)
    assert (rsp.status, rsp.r, rsp.w, rsp.x, rsp.reported) == (
        rv.Status.SUCCESS,
        False,
        False,
        False,
        False,
    )
    assert rsp.fault is not None and rsp.fault.cause == rv.Cause.WRITE_PAGE_FAULT
    assert sc.s.mem.read_u64(sc.s1pte) == before


def test_ats_msi_page_no_write_does_not_set_d() -> None:
    """No Write = 1: nothing is to be written, so D stays 0 and W is not granted."""
    sc = Scene(s1=True, tc=TC_V | TC_EN_ATS | TC_SADE, s1_flags=URW | A)
    rsp = sc.ats(IF_GPA, no_write=True)
    assert (rsp.is_msi, rsp.r, rsp.w) == (True, True, False)
    assert not sc.s.mem.read_u64(sc.s1pte) & D


def test_ats_msi_page_read_only_first_stage_leaf_never_gets_d() -> None:
    sc = Scene(s1=True, tc=TC_V | TC_EN_ATS | TC_SADE, s1_flags=(URW & ~W) | A)
    rsp = sc.ats(IF_GPA)
    assert (rsp.is_msi, rsp.r, rsp.w) == (True, True, False)
    assert sc.s.mem.read_u64(sc.s1pte) & (A | D) == A


@pytest.mark.parametrize("sade", [0, TC_SADE])
def test_ats_msi_page_with_pasid_and_d_set_grants_w(sade: int) -> None:
    """A request with a PASID: PC(7)'s first-stage leaf (G = 1) has D already set, so it
    needs no update: W with or without SADE, and the leaf is unchanged.  Global is 0 for
    an MSI address translation (§ATS_FAULTS), Priv is the request's."""
    sc = Scene(s1=True, tc=TC_V | TC_EN_ATS | sade, s1_flags=URW | A | D | G, pasid=7)
    before = sc.s.mem.read_u64(sc.s1pte)
    rsp = sc.ats(IF_GPA, process_id=7)
    assert (rsp.status, rsp.is_msi, rsp.addr, rsp.r, rsp.w, rsp.g, rsp.priv) == (
        rv.Status.SUCCESS,
        True,
        IMSIC,
        True,
        True,
        False,
        False,
    )
    assert sc.s.mem.read_u64(sc.s1pte) == before
    no_pasid = sc.ats(IF_GPA)  # DPE = 0: no process_id -> the first stage is Bare
    assert (no_pasid.is_msi, no_pasid.r, no_pasid.w) == (True, True, True)


def test_untranslated_write_to_msi_page_sets_d_as_before() -> None:
    sc = Scene(s1=True, tc=TC_V | TC_SADE, s1_flags=URW | A)
    rsp = sc.w(IF_GPA)
    assert rsp.is_msi and sc.s.mem.read_u64(sc.s1pte) & D
