"""Spec fidelity, one test (or a few) per item of issue 9 (items 3 to 8) and issue 16 item 3.

Each test is written from the spec sentence it quotes; the choices are recorded in
docs/translation.md, docs/ats.md, docs/software-interface.md and docs/api.md.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

import riscv_iommu as rv
import swhelpers as sw
from helpers import (
    PD8,
    PD17,
    PD20,
    SV32,
    SV39,
    TC_DPE,
    TC_EN_ATS,
    TC_PDTV,
    TC_SADE,
    TC_SXL,
    TC_V,
    System,
    fault,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import URW, URWX, A, D, PageTable, ProcessDirectory

REG = rv.REG
ATS = rv.RequestKind.ATS_TRANSLATION
KB4, MB2, MB4, GB1 = 1 << 12, 1 << 21, 1 << 22, 1 << 30
DID = 0x12


# ==========================================================================================
# item 3: fctl.BE is writable when capabilities.END is 1
# ==========================================================================================
def test_fctl_be_writable_by_default_with_end() -> None:
    """iommu_sw_guidelines "Guidelines for initialization": "If big-endian memory access is
    needed and the capabilities.END field is 1 (i.e. both endiannesses supported), set
    fctl.BE to 1 (i.e. big endian) if the field is not already 1."  So with END = 1 the
    field must be writable: default IommuParams."""
    io = rv.Iommu(rv.SparseMemory(), rv.Capabilities.full(end=True))
    io.mmio_write(REG.FCTL, F.FCTL.BE.mask, 4)
    assert io.mmio_read(REG.FCTL, 4) & F.FCTL.BE.mask
    io.mmio_write(REG.FCTL, 0, 4)
    assert not io.mmio_read(REG.FCTL, 4) & F.FCTL.BE.mask


def test_fctl_be_override_pins_it() -> None:
    """be_writable=False stays an override (an implementation with END = 1 whose BE is
    fixed at reset); without END the field is never writable."""
    io = rv.Iommu(
        rv.SparseMemory(), rv.Capabilities.full(), params=rv.IommuParams(be_writable=False)
    )
    io.mmio_write(REG.FCTL, F.FCTL.BE.mask, 4)
    assert not io.mmio_read(REG.FCTL, 4) & F.FCTL.BE.mask
    io = rv.Iommu(rv.SparseMemory(), rv.Capabilities.full(end=False))
    io.mmio_write(REG.FCTL, F.FCTL.BE.mask, 4)
    assert not io.mmio_read(REG.FCTL, 4) & F.FCTL.BE.mask


# ==========================================================================================
# item 4: a Bare stage counts as bare_range_size / bare_page_sizes in the range
# ==========================================================================================
def _s1_only(page: int, params: rv.IommuParams, caps: Optional[rv.Capabilities] = None) -> System:
    """First stage only (G-stage Bare): IOVA 0x4000_0000 -> SPA 0x80_0000_0000, ``page``."""
    s = System(caps=caps, params=params)
    t1 = s.stage1()
    t1.map(0x4000_0000 & ~(page - 1), 0x80_0000_0000, size=page)
    s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS, fsc=t1.satp())
    return s


@pytest.mark.parametrize("kind", [rv.RequestKind.UNTRANSLATED, ATS])
def test_bare_g_stage_counts_as_bare_range_size(kind: int) -> None:
    """The issue's case: a 1 GiB first-stage page with bare_range_size = 2 MiB reports 2 MiB
    (docs/api.md: "the smallest of the stages' page sizes, a Bare stage counting as this
    size"; the spec leaves the size to the implementation: "The translation range size
    returned in a Success response to an ATS translation request, when either stages of
    address translation are Bare, is implementation-defined")."""
    s = _s1_only(GB1, rv.IommuParams(bare_range_size=MB2))
    rsp = s.iommu.translate(rv.Request(DID, 0x4012_3456, kind=kind, length=1))
    assert rsp.status == rv.Status.SUCCESS and rsp.size == MB2 and rsp.s
    if kind == ATS:  # the 2 MiB range [0x80_0000_0000, +2 MiB) in the NAPOT form
        assert rsp.addr == 0x80_0000_0000 | 0xFF000
    else:
        assert rsp.addr == 0x80_0000_0000 + 0x12_3456


@pytest.mark.parametrize(
    "caps,sizes,expect",
    [
        # the widest G-stage mode of a full IOMMU is Sv57x4
        (rv.Capabilities.full(), {"Sv57x4": GB1, "Sv39x4": KB4}, GB1),
        (rv.Capabilities.full(), {"Sv39x4": KB4}, MB2),  # not the widest: bare_range_size
        (rv.Capabilities.full(sv57x4=False), {"Sv48x4": MB4, "Sv57x4": KB4}, MB4),
        (rv.Capabilities.full(sv57x4=False, sv48x4=False), {"Sv39x4": 1 << 16}, 1 << 16),
    ],
)
def test_bare_g_stage_per_mode_size(caps: rv.Capabilities, sizes: Any, expect: int) -> None:
    """bare_page_sizes: a Bare G-stage counts as the size of the widest G-stage mode the
    IOMMU supports (for fctl.GXL)."""
    s = _s1_only(GB1, rv.IommuParams(bare_page_sizes=sizes), caps)
    assert s.t(DID, 0x4000_0000).size == expect
    ats = s.iommu.translate(rv.Request(DID, 0x4000_0000, kind=ATS))
    assert ats.size == expect


def test_bare_first_stage_per_mode_size_follows_sxl() -> None:
    """A Bare first stage counts as the size of the widest first-stage mode supported for
    DC.tc.SXL: Sv57 with SXL = 0, Sv32 with SXL = 1."""
    sizes = {"Sv57": MB4, "Sv32": 1 << 16, "Sv57x4": 1 << 40}
    s = System(params=rv.IommuParams(bare_page_sizes=sizes, gxl_writable=True))
    g = s.gstage(SV39)
    g.map(0x4000_0000, 0x80_0000_0000, size=GB1)
    s.ddt.set_dc(DID, tc=TC_V, iohgatp=g.satp(1))
    s.ddt.set_dc(DID + 1, tc=TC_V | TC_SXL, iohgatp=g.satp(2))  # another GSCID: no IOTLB hit
    assert s.t(DID, 0x4000_0000).size == MB4
    assert s.t(DID + 1, 0x4000_0000).size == 1 << 16


def test_both_stages_bare_in_a_dc_and_bare_mode() -> None:
    """Both stages Bare in a DC: the smaller of the two Bare sizes; ddtp.iommu_mode = Bare
    (no stage at all): bare_range_size."""
    p = rv.IommuParams(bare_range_size=MB2, bare_page_sizes={"Sv57": GB1, "Sv57x4": MB4})
    s = System(params=p)
    s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS)
    assert s.t(DID, 0x1234).size == MB4
    assert s.iommu.translate(rv.Request(DID, 0x1234, kind=ATS)).size == MB4
    io = rv.Iommu(rv.SparseMemory(), params=p)
    io.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    assert io.translate(rv.Request(DID, 0x1234)).size == MB2


def test_bare_sizes_are_bounded_by_2_pow_56_so_completions_fit() -> None:
    """A Bare stage counts as at most 2**56 (bare_range_size and each bare_page_sizes
    entry; larger is a ValueError naming the field): with both stages Bare, the ATS
    completion of the largest range at an address below 2**56 (PAS <= 56) still fits 56
    bits, and tr_response.PPN (44 bits) holds its NAPOT form."""
    top = 1 << 56
    for kw in (
        {"bare_range_size": top << 1},
        {"bare_page_sizes": {"Sv57": top << 1}},
        {"bare_page_sizes": {"Sv57x4": top << 7}},
    ):
        with pytest.raises(ValueError, match="bare_"):
            rv.IommuParams(**kw)
    p = rv.IommuParams(bare_range_size=top, bare_page_sizes={"Sv57": top, "Sv57x4": top})
    s = System(params=p)
    s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS)  # both stages Bare
    addr = 0xAB_CDEF_0123_4000
    rsp = s.iommu.translate(rv.Request(DID, addr, kind=ATS))
    assert (rsp.status, rsp.size, rsp.s) == (rv.Status.SUCCESS, top, True)
    assert rsp.addr == (top >> 1) - KB4  # base 0, bits 54:12 set, bit 55 clear
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA, addr)
    io.mmio_write(REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, DID=DID))
    out = io.mmio_read(REG.TR_RESPONSE)
    assert (F.TR_RESPONSE.fault.get(out), F.TR_RESPONSE.S.get(out)) == (0, 1)
    assert F.TR_RESPONSE.PPN.get(out) == (1 << 43) - 1  # 44 bits: bits 54:12 of the address


# ==========================================================================================
# item 5: ATS with No Write = 1 on a writable page
# ==========================================================================================
def _ats_page(
    flags: int, params: Optional[rv.IommuParams] = None, g_flags: int = URWX | A | D
) -> tuple[System, int, int]:
    """IOVA 0x7000 -> GPA 0x5000_0000 -> SPA 0x80_0000_0000 (SADE = 1, GADE = 0); returns
    the system and the SPAs of the first-stage and G-stage leaves."""
    s = System(params=params)
    g = s.gstage(SV39)
    g_leaf = g.map(0x5000_0000, 0x80_0000_0000, flags=g_flags)
    guest = s.guest(g)
    t1 = s.stage1(guest)
    leaf = guest.to_spa(t1.map(0x7000, 0x5000_0000, flags=flags))
    s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS | TC_SADE, iohgatp=g.satp(1), fsc=t1.satp())
    return s, leaf, g_leaf


@pytest.mark.parametrize("reports", [True, False])
def test_ats_no_write_dirty_page(reports: bool) -> None:
    """§ATS_FAULTS: "...then a Success response is returned with the denied permission (R, W
    or X) set to 0 and the other permission bits set to the value determined from the page
    tables."  No Write = 1 does not request W, so W is not denied: by default it is the
    tables' W, granted when every stage has W with D already set (a device may then write
    without an A/D update).  ats_no_write_reports_w=False answers W = 0."""
    s, _, _ = _ats_page(URWX | A | D, rv.IommuParams(ats_no_write_reports_w=reports))
    rsp = s.iommu.translate(rv.Request(DID, 0x7000, kind=ATS, no_write=True))
    assert (rsp.status, rsp.r, rsp.w) == (rv.Status.SUCCESS, True, reports)


@pytest.mark.parametrize("reports", [True, False])
@pytest.mark.parametrize("where", ["s1", "g"])
def test_ats_no_write_clean_page_gets_no_w_and_no_d(reports: bool, where: str) -> None:
    """No Write = 1 on a writable page whose D is 0 (first stage or G-stage): nothing is to
    be written, so D is not set and W is 0 (W without D would let a write skip the update)."""
    s1f = URWX | A if where == "s1" else URWX | A | D
    gf = URWX | A if where == "g" else URWX | A | D
    s, leaf, g_leaf = _ats_page(s1f, rv.IommuParams(ats_no_write_reports_w=reports), g_flags=gf)
    before = (s.mem.read_u64(leaf), s.mem.read_u64(g_leaf))
    rsp = s.iommu.translate(rv.Request(DID, 0x7000, kind=ATS, no_write=True))
    assert (rsp.status, rsp.r, rsp.w) == (rv.Status.SUCCESS, True, False)
    # neither leaf changes: the clean one's D stays 0 (A was already set in both)
    assert (s.mem.read_u64(leaf), s.mem.read_u64(g_leaf)) == before
    assert not s.mem.read_u64(leaf if where == "s1" else g_leaf) & D


def test_ats_no_write_read_only_page() -> None:
    s, _, _ = _ats_page((URW & ~F.PTE.W.mask) | A | D)
    rsp = s.iommu.translate(rv.Request(DID, 0x7000, kind=ATS, no_write=True))
    assert (rsp.r, rsp.w) == (True, False)


# ==========================================================================================
# item 6: DC.tc.GIPC at a custom bit
# ==========================================================================================
@pytest.mark.parametrize("bit", [24, 31])
def test_gipc_enable_bit_in_the_custom_range(bit: int) -> None:
    """DC.tc bits 31:24 are "designated for custom use"; GIPC decision #2 makes the enable
    bit's position a parameter "so users can match other implementations (e.g. a custom
    bit)".  With capabilities.GIPC the bit at the custom position enables GIPC (a 2024
    32-byte PC carrying its own iohgatp)."""
    s = System(
        caps=rv.Capabilities.full(gipc=True, msi_flat=False),
        params=rv.IommuParams(gipc_tc_bit=bit),
    )
    from riscv_iommu import gipc

    fmt = gipc.pc_format(s.iommu)
    pdt = ProcessDirectory(s.host, PD20, fmt=fmt)
    g = s.gstage(SV39)
    g.map(0x5000_0000, 0x80_0000_0000)
    t1 = PageTable(s.host, SV39, stage="s")  # 2024: first-stage tables at SPAs
    t1.map(0x7000, 0x5000_0000)
    pdt.set_pc(1, fsc=t1.satp(), iohgatp=g.satp(9))
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV | (1 << bit), fsc=pdt.pdtp())
    rsp = s.t(DID, 0x7008, process_id=1)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, 0x80_0000_0008)


def test_gipc_custom_bit_without_the_capability_is_an_ignored_custom_bit() -> None:
    """Without capabilities.GIPC a custom-range position is just a custom bit: this model
    implements no custom use and ignores it (a reserved-range position is reserved: 259)."""
    s = System(params=rv.IommuParams(gipc_tc_bit=28))
    s.ddt.set_dc(DID, tc=TC_V | (1 << 28))
    assert s.t(DID, 0x1000).status == rv.Status.SUCCESS


# ==========================================================================================
# item 7: translated addresses beyond 2^capabilities.PAS
# ==========================================================================================
PAS40 = rv.Capabilities.full(pas=40)
BEYOND = 1 << 50


def test_bare_mode_address_beyond_pas_is_passed_to_the_io_bridge() -> None:
    """iommu_registers "PAS": "The physical address space addressable by the IOMMU ranges
    from 0 to 2^capabilities.PAS - 1" (the IOMMU's own accesses); P2IOVA step 2: in Bare
    mode "go to step 20 with translated address same as the IOVA"; iommu_intro: "PMA and
    PMP checks must be completed on all inbound IO transactions even when the IOMMU is in
    bypass (Bare mode)... PMA and PMP checkers reside outside the IOMMU."  So the address is
    returned whole and the IO bridge's PMA checker aborts the access."""
    io = rv.Iommu(rv.SparseMemory(), PAS40)
    io.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    rsp = io.translate(rv.Request(7, BEYOND | 0x123, access=rv.Access.WRITE))
    assert (rsp.status, rsp.addr, rsp.fault) == (rv.Status.SUCCESS, BEYOND | 0x123, None)


@pytest.mark.parametrize("stage", ["s1", "g"])
@pytest.mark.parametrize("kind", [rv.RequestKind.UNTRANSLATED, ATS])
def test_leaf_ppn_beyond_pas_is_returned_whole(stage: str, kind: int) -> None:
    """A leaf (first stage alone, or the G-stage leaf of the final GPA) whose PPN is beyond
    PAS: the SPA is returned unmasked (Privileged spec: "The algorithm does not admit the
    possibility of ignoring high-order PPN bits for implementations with narrower physical
    addresses"); the final access is checked outside the IOMMU."""
    s = System(caps=PAS40)
    if stage == "s1":
        t1 = s.stage1()
        t1.map(0x7000, BEYOND)
        s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS, fsc=t1.satp())
    else:
        g = s.gstage(SV39)
        g.map(0x7000, BEYOND)
        s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS, iohgatp=g.satp(1))
    rsp = s.iommu.translate(rv.Request(DID, 0x7010, kind=kind))
    assert rsp.status == rv.Status.SUCCESS and rsp.fault is None and rsp.r
    assert rsp.addr == (BEYOND if kind == ATS else BEYOND | 0x10)


def test_implicit_access_beyond_pas_still_faults() -> None:
    """Contrast: the IOMMU's own (implicit) accesses are limited to PAS -- a G-stage leaf
    that places a first-stage PTE beyond PAS is an access fault on that PTE."""
    s = System(caps=PAS40)
    g = s.gstage(SV39)
    t1 = PageTable(s.host, SV39, stage="s")
    g.map(t1.root, BEYOND)  # the first-stage root's GPA maps beyond PAS
    s.ddt.set_dc(DID, tc=TC_V, iohgatp=g.satp(1), fsc=t1.satp())
    assert fault(s.t(DID, 0x7000)).cause == rv.Cause.READ_ACCESS_FAULT


# ==========================================================================================
# item 8: regressions other implementations suffered
# ==========================================================================================
def test_msiptp_bare_iohgatp_check_only_with_msi_flat() -> None:
    """DC_MISCONFIG: "When DC.iohgatp.MODE is Bare, the msiptp.MODE must be set to Off" --
    msiptp exists only in the extended format (capabilities.MSI_FLAT = 1).  With the base
    format the doubleword after the 32-byte DC is the next DC, not an msiptp."""
    flat = F.MSIPTP.encode(MODE=1, PPN=0x1234)
    s = System(msi_flat=True)
    s.ddt.set_dc(DID, tc=TC_V, msiptp=flat)
    assert fault(s.t(DID, 0x1000)).cause == rv.Cause.DDT_ENTRY_MISCONFIGURED
    b = System(msi_flat=False)
    addr = b.ddt.set_dc(DID, tc=TC_V)
    b.mem.write_u64(addr + 32, flat)  # where an extended DC would hold msiptp
    assert b.t(DID, 0x1000).status == rv.Status.SUCCESS


def test_dpe_fault_record_keeps_pv_0() -> None:
    """P2IOVA step 11: "If DPE is 1 and there is no process_id associated with the transaction
    then let process_id be the default value of 0."  The fault record still describes the
    transaction: PV = 0 (FQ record: "the PID field is valid if PV is 1")."""
    s = System()
    pdt = s.pdt(mode=PD8)
    t1 = s.stage1()  # empty: every IOVA page faults
    pdt.set_pc(0, fsc=t1.satp())
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV | TC_DPE, fsc=pdt.pdtp())
    sw.setup_fq(s)
    rsp = s.t(DID, 0x5000)
    assert fault(rsp).cause == rv.Cause.READ_PAGE_FAULT
    assert (fault(rsp).pv, fault(rsp).process_id) == (False, 0)
    assert [(r.pv, r.process_id) for r in sw.fq_records(s)] == [(False, 0)]


@pytest.mark.parametrize("dv", [True, False])
def test_iodir_inval_ddt_also_drops_cached_pcs(dv: bool) -> None:
    """IODIR.INVAL_DDT: "If DV is 1, then the command invalidates cached leaf-level DDT entry
    for the device identified by DID operand and all associated PDT entries" (DV = 0: "all
    DDT and PDT entries cached for all devices")."""
    s = System()
    pdt = s.pdt(mode=PD8)
    t1 = s.stage1()
    t1.map(0x5000, 0x80_0000_0000)
    pdt.set_pc(3, fsc=t1.satp())
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    sw.setup_cq(s)
    assert s.t(DID, 0x5000, process_id=3).status == rv.Status.SUCCESS  # DC and PC cached
    pdt.clear_pc(3)
    assert s.t(DID, 0x5000, process_id=3).status == rv.Status.SUCCESS  # the cached PC
    sw.submit(s, sw.iodir_inval_ddt(DID if dv else None))
    assert fault(s.t(DID, 0x5000, process_id=3)).cause == rv.Cause.PDT_ENTRY_NOT_VALID


@pytest.mark.parametrize("cmd", [sw.ats_inval(5), sw.ats_prgr(5)], ids=["INVAL", "PRGR"])
def test_ats_commands_illegal_without_ats(cmd: Any) -> None:
    """ "IOMMU PCIe ATS commands": "This command is supported if capabilities.ATS is set to 1";
    "A command is unsupported if it is defined but not implemented as determined by the IOMMU
    capabilities register.  If an illegal or unsupported command is fetched ... the
    command-queue sets the cqcsr.cmd_ill bit"."""
    s = System(ats=False)
    sw.setup_cq(s)
    sw.submit(s, cmd)
    assert sw.cqcsr(s) & F.CQCSR.cmd_ill.mask
    assert s.iommu.mmio_read(REG.CQH, 4) == 0


def test_sv32x4_is_iohgatp_mode_8_with_gxl() -> None:
    """ "Encodings of iohgatp.MODE field": for fctl.GXL = 1, value 8 is Sv32x4 (and 9, 10 are
    reserved: "DDT entry misconfigured")."""
    s = System(fctl=F.FCTL.GXL.mask, params=rv.IommuParams(gxl_writable=True))
    g = s.gstage(SV32, xlen32=True)
    g.map(0x3_0000_0000, 0x8000_0000, size=MB4)  # a 34-bit GPA, a 4 MiB Sv32x4 megapage
    s.ddt.set_dc(DID, tc=TC_V | TC_SXL, iohgatp=g.satp(1))
    rsp = s.t(DID, 0x3_0012_3456)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, 0x8012_3456)
    s.ddt.set_dc(DID + 1, tc=TC_V | TC_SXL, iohgatp=F.IOHGATP.encode(MODE=9, PPN=g.ppn))
    assert fault(s.t(DID + 1, 0x1000)).cause == rv.Cause.DDT_ENTRY_MISCONFIGURED


def test_mgpaw_in_msi_address_detection() -> None:
    """MSI_ID: "While the MSI address mask and pattern fields are 52 bits wide, if
    MGPAW < 64, then bits 51 : MGPAW - 12 are reserved"; MGPAW is 41 with Sv39x4 (and no
    wider x4 mode).  Bit 28 of the pattern (GPA bit 40) is usable; bit 29 is reserved."""
    caps = rv.Capabilities.full(sv48x4=False, sv57x4=False)
    s = System(caps=caps)
    g = s.gstage(SV39)
    pt = s.msipt(1)
    pt.set_flat(0, 0x2400_0000)
    s.ddt.set_dc(
        DID,
        tc=TC_V,
        iohgatp=g.satp(1),
        msiptp=pt.msiptp(),
        msi_addr_pattern=(1 << 28) | 0x5,
    )
    rsp = s.t(DID, (1 << 40) | 0x5000, rv.Access.WRITE, length=4)
    assert (rsp.is_msi, rsp.addr) == (True, 0x2400_0000)
    s.ddt.set_dc(DID + 1, tc=TC_V, iohgatp=g.satp(1), msiptp=pt.msiptp(), msi_addr_mask=1 << 29)
    assert fault(s.t(DID + 1, 0x5000)).cause == rv.Cause.DDT_ENTRY_MISCONFIGURED


def test_pdt_data_corruption_cause() -> None:
    """GET_PC step 6: "If pdte access detects a data corruption (a.k.a. poisoned data), then
    stop and report "PDT data corruption" (cause = 269)"."""
    s = System()
    pdt = s.pdt(mode=PD17)
    pdt.set_pc(0x1_0203, fsc=0)
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    s.mem.inject(pdt.nonleaf_addr(0x1_0203, 1), 8, rv.MemoryFault.DATA_CORRUPTION)
    assert fault(s.t(DID, 0x1000, process_id=0x1_0203)).cause == rv.Cause.PDT_DATA_CORRUPTION


def test_pdt_walk_uses_pdi_i_at_each_level() -> None:
    """GET_PC step 2: "If i != 0, then let a = a + PDI[2] x 8" -- PDI[2] at every non-leaf
    level is a known erratum; level i is indexed with PDI[i].  Three process_ids that share
    PDI[2] and differ in PDI[1] or PDI[0] reach three different PCs."""
    s = System()
    pdt = s.pdt(mode=PD20)
    pids = [(2 << 17) | (5 << 8) | 7, (2 << 17) | (6 << 8) | 7, (2 << 17) | (5 << 8) | 9]
    for k, pid in enumerate(pids):
        t = s.stage1()
        t.map(0x5000, 0x80_0000_0000 + k * KB4)
        pdt.set_pc(pid, fsc=t.satp(), pscid=k + 1)  # distinct address spaces
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    for k, pid in enumerate(pids):
        assert s.t(DID, 0x5000, process_id=pid).addr == 0x80_0000_0000 + k * KB4
    assert s.t(DID, 0x5000, process_id=(2 << 17) | (7 << 8) | 7).fault is not None


# ==========================================================================================
# issue 16, item 3: the spec's "may" and "optional", and one more choice
# ==========================================================================================
def test_page_request_without_pasid_l1_r0_w0_gets_a_response() -> None:
    """ATS_PRI: "A "Stop Marker" is encoded as a "Page Request" with a PASID but with the L,
    W, and R fields set to 1, 0, and 0 respectively"; without a PASID the message is a Page
    Request with L = 1, which needs a response: "the IOMMU itself may generate a Page
    Request Group Response".  The model does; a Stop Marker (with a PASID) is discarded."""
    s = System()
    s.ddt.set_dc(DID, tc=TC_V | TC_EN_ATS)  # EN_PRI = 0
    sent: list[Any] = []
    s.iommu.on_ats_message = sent.append
    msg = rv.PageRequest(DID, 0x5000, prg_index=3, last=True, read=False, write=False)
    rsp = s.iommu.page_request(msg)
    assert rsp == rv.PageRequestGroupResponse(DID, 3, 0x1)  # Invalid Request (EN_PRI = 0)
    assert sent == [rsp]
    stop = rv.PageRequest(DID, 0x5000, 3, last=True, read=False, write=False, process_id=4)
    assert s.iommu.page_request(stop) is None and sent == [rsp]


@pytest.mark.parametrize("reg,size", [(REG.PQB, 8), (REG.PQH, 4), (REG.PQT, 4), (REG.PQCSR, 4)])
def test_pq_registers_read_0_without_ats(reg: int, size: int) -> None:
    """Register layout: pqb, pqh, pqt and pqcsr are optional "if capabilities.ATS==0"; "If a
    register is optional, as determined by the corresponding capabilities register bit being
    0, then a read from the memory-mapped register offset of the register returns 0 and
    writes to that offset are ignored"."""
    io = rv.Iommu(rv.SparseMemory(), rv.Capabilities.full(ats=False))
    io.mmio_write(reg, (1 << (8 * size)) - 1, size)
    assert io.mmio_read(reg, size) == 0
    full = rv.Iommu(rv.SparseMemory(), rv.Capabilities.full())
    full.mmio_write(REG.PQB, (1 << 64) - 1)
    assert full.mmio_read(REG.PQB) != 0  # with ATS the register exists


@pytest.mark.parametrize(
    "cmd,caps",
    [
        # DDT of 2 levels with extended DCs: DDI[2] = device_id[23:15] must be 0
        (sw.iodir_inval_ddt(1 << 15), {}),
        (sw.iodir_inval_pdt(1 << 15, pid=1), {}),
        # PD17 the widest PDT mode: a 20-bit PID is too wide
        (sw.iodir_inval_pdt(DID, pid=1 << 17), {"pd20": False}),
    ],
    ids=["INVAL_DDT-did", "INVAL_PDT-did", "INVAL_PDT-pid"],
)
def test_iodir_operand_too_wide_is_illegal(cmd: Any, caps: dict[str, Any]) -> None:
    """IODIR: "the value of the DID operand must not be wider than that supported by the
    ddtp.iommu_mode"; "The PID operand of IODIR.INVAL_PDT must not be wider than the width
    supported by the IOMMU".  The spec does not name the outcome; the model treats such a
    command as illegal (cmd_ill, cqh stays on it)."""
    s = System(levels=2, **caps)
    sw.setup_cq(s)
    sw.submit(s, cmd)
    assert sw.cqcsr(s) & F.CQCSR.cmd_ill.mask
    assert s.iommu.mmio_read(REG.CQH, 4) == 0
    s2 = System(levels=3, **caps)  # the same DID fits three levels
    sw.setup_cq(s2)
    if caps:
        return
    sw.submit(s2, cmd)
    assert not sw.cqcsr(s2) & F.CQCSR.cmd_ill.mask
