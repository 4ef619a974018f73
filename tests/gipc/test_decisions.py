"""One test per decision of ../shared/design/gipc.md (named test_dNN_...), both revisions.

docs/gipc.md cites each of these tests next to the decision it proves.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Tuple

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu import gipc
from riscv_iommu.ddt import dc_misconfigured
from riscv_iommu.hpm import Event
from riscv_iommu.registers import REG

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sw"))
from gipc_helpers import GIPC_TC, GPA, IOVA, REVISIONS, GipcSystem, ids  # noqa: E402
from helpers import PD8, PD17, PD20, SV39, TC_EN_ATS, TC_PDTV, TC_T2GPA, TC_V, System, fault  # noqa: E402
from swhelpers import (  # noqa: E402
    iodir_inval_pdt,
    iofence_c,
    iotinval_gvma,
    iotinval_vma,
    setup_cq,
    setup_fq,
    submit,
)

Rev = Tuple[str, bool]
#: IOBR_FAULT_RESP lets the IO bridge answer UR or CA; the model answers the causes
#: ATS_FAULTS gives UR (256-260) with UR for every request type
UR = rv.Status.UNSUPPORTED_REQUEST


# ---------------------------------------------------------------------------
# Shared decisions
# ---------------------------------------------------------------------------
def test_d01_capability_bit_is_44_by_default_and_a_parameter() -> None:
    """Decision #1: capabilities.GIPC is bit 44, and its position is a parameter."""
    s = GipcSystem()
    raw = s.iommu.mmio_read(REG.CAPABILITIES)
    assert raw >> 44 & 1 == 1
    assert raw >> 41 & 1 == 1  # bit 41 is QOSID (ratified), not GIPC
    caps = rv.Capabilities.full(gipc=True, gipc_bit=60)
    assert caps.raw >> 60 & 1 and not caps.raw >> 44 & 1
    assert rv.Capabilities.from_raw(caps.raw, gipc_bit=60).gipc
    assert not rv.Capabilities.from_raw(caps.raw).gipc


def _misconfigured(did: int, pid: Optional[int] = None) -> rv.FaultRecord:
    """GET_DC step 10: "DDT entry misconfigured" (259) of an Untranslated read of IOVA."""
    return rv.FaultRecord(
        cause=rv.Cause.DDT_ENTRY_MISCONFIGURED,
        ttyp=rv.Ttyp.UNTRANSLATED_READ,
        iotval=IOVA,
        device_id=did,
        process_id=pid or 0,
        pv=pid is not None,
    )


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d02_tc_gipc_bit_12_reserved_without_capability(rev: Rev) -> None:
    """Decision #2: DC.tc.GIPC is bit 12 (a parameter); reserved (259) without the capability."""
    s = System(params=rv.IommuParams(gipc_revision=rev[0]), msi_flat=rev[1])  # no GIPC
    s.ddt.set_dc(1, tc=TC_V | GIPC_TC)
    rsp = s.t(1, IOVA)
    assert (rsp.status, rsp.fault, rsp.reported) == (UR, _misconfigured(1), True)
    g = GipcSystem(*rev, params={"gipc_tc_bit": 20})
    g.bind(1, gscid=7)
    g.ddt.set_dc(3, tc=TC_V | TC_PDTV | (1 << 20), fsc=g.pdtree.pdtp())
    assert g.t(3, IOVA, process_id=1).status == rv.Status.SUCCESS
    g.ddt.set_dc(4, tc=TC_V | TC_PDTV | GIPC_TC, fsc=g.pdtree.pdtp())  # bit 12 now reserved
    assert g.t(4, IOVA, process_id=1).fault == _misconfigured(4, 1)


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d03_gipc_without_pdtv_is_misconfigured(rev: Rev) -> None:
    """Decision #3: DC.tc.GIPC=1 with DC.tc.PDTV=0 is "DDT entry misconfigured" (259)."""
    s = GipcSystem(*rev)
    s.ddt.set_dc(3, tc=TC_V | GIPC_TC)
    rsp = s.t(3, IOVA)
    assert (rsp.status, rsp.fault, rsp.reported) == (UR, _misconfigured(3), True)
    assert dc_misconfigured(s.iommu, (TC_V | GIPC_TC, 0, 0, 0, 0, 0, 0, 0)) == 24


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d04_gipc_with_t2gpa_is_misconfigured(rev: Rev) -> None:
    """Decision #4: DC.tc.GIPC=1 with DC.tc.T2GPA=1 is misconfigured (259)."""
    s = GipcSystem(*rev)
    vm = s.vm(1)
    s.device(tc=TC_EN_ATS | TC_T2GPA, iohgatp=vm.g.satp(1))
    rsp = s.t(3, IOVA, process_id=1)
    assert (rsp.status, rsp.fault, rsp.reported) == (UR, _misconfigured(3, 1), True)
    # DC rule 25 (docs/gipc.md): the rule number the check reports
    log = rv.EventLog(kinds="check", where=lambda e: not getattr(e, "passed", True))
    s.iommu.attach(log)
    s.iommu.invalidate_ddt()
    s.t(3, IOVA, process_id=1)
    assert [str(e.step) for e in log] == ["25"]


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d05_which_iohgatp_each_request_uses(rev: Rev) -> None:
    """Decision #5: PC.iohgatp for requests that select a PC; DC.iohgatp otherwise."""
    s = GipcSystem(*rev)
    pc_spa = s.bind(1, gscid=10, iova=IOVA, gpa=GPA)
    dc_vm = s.vm(99)
    dc_spa = s.page()
    dc_vm.g.map(IOVA, dc_spa)  # the DC's VM maps the IOVA itself (first stage Bare)
    s.device(tc=F.DC_TC.DPE.mask, iohgatp=dc_vm.g.satp(99))
    # a valid process_id selects the PC: PC.iohgatp (VM 10)
    assert s.t(3, IOVA, process_id=1).addr == pc_spa
    # no process_id with DPE=1: process_id 0 -> PC 0, not bound -> 266
    assert fault(s.t(3, IOVA)).cause == rv.Cause.PDT_ENTRY_NOT_VALID
    pc0 = s.bind(0, gscid=11, iova=IOVA, gpa=GPA + 0x10000)
    assert s.t(3, IOVA).addr == pc0
    # no process_id with DPE=0: DC.iohgatp, first stage Bare
    s.device(iohgatp=dc_vm.g.satp(99))
    s.iommu.invalidate_ddt()
    assert s.t(3, IOVA).addr == dc_spa
    # pdtp.MODE = Bare: DC.iohgatp, first stage Bare, even with a process_id
    s.ddt.set_dc(
        3, tc=TC_V | TC_PDTV | GIPC_TC, iohgatp=dc_vm.g.satp(99), fsc=F.PDTP.encode(MODE=0)
    )
    s.iommu.invalidate_ddt()
    assert s.t(3, IOVA, process_id=1).addr == dc_spa
    # ATS translation request with a PASID and the debug interface with PV take the PC path
    s.device(tc=TC_EN_ATS, iohgatp=dc_vm.g.satp(99))
    s.iommu.invalidate_ddt()
    ats = s.t(3, IOVA, process_id=1, kind=rv.RequestKind.ATS_TRANSLATION)
    assert ats.status == rv.Status.SUCCESS and ats.addr == pc_spa
    s.iommu.mmio_write(REG.TR_REQ_IOVA, IOVA)
    s.iommu.mmio_write(REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, PV=1, PID=1, DID=3, NW=1))
    assert F.TR_RESPONSE.PPN.get(s.iommu.mmio_read(REG.TR_RESPONSE)) == pc_spa >> 12


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d06_pdt_at_spas_that_no_g_stage_maps(rev: Rev) -> None:
    """Decision #6: pdtp.PPN and pdte.PPN are SPAs; the walk faults only with 265/266/267/269."""
    s = GipcSystem(*rev)
    spa = s.bind(0x12345, gscid=1)
    # the DC's iohgatp is an empty G-stage table: it maps nothing, not even the PDT
    empty = s.gstage(SV39)
    s.device(iohgatp=empty.satp(2))
    assert s.t(3, IOVA, process_id=0x12345).addr == spa
    # faults of the PDT walk are the PDT causes, never guest-page faults
    nl = s.pdtree.nonleaf_addr(0x12345, 2)
    s.mem.inject(nl, 8, rv.MemoryFault.ACCESS_FAULT)
    s.iommu.invalidate_ddt()
    assert fault(s.t(3, IOVA, process_id=0x12345)).cause == rv.Cause.PDT_ENTRY_LOAD_ACCESS_FAULT
    s.mem.clear_injections()
    s.mem.inject(nl, 8, rv.MemoryFault.DATA_CORRUPTION)
    assert fault(s.t(3, IOVA, process_id=0x12345)).cause == rv.Cause.PDT_DATA_CORRUPTION
    s.mem.clear_injections()
    s.mem.write_u64(nl, 0)
    assert fault(s.t(3, IOVA, process_id=0x12345)).cause == rv.Cause.PDT_ENTRY_NOT_VALID
    s.mem.write_u64(nl, 1 | (1 << 63))
    assert fault(s.t(3, IOVA, process_id=0x12345)).cause == rv.Cause.PDT_ENTRY_MISCONFIGURED


def _pc_word(s: GipcSystem, pasid: int, name: str) -> int:
    return s.pdtree.pc_addr(pasid) + s.fmt.offsets[name]


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
@pytest.mark.parametrize(
    "case",
    ["mode-encoding", "mode-unsupported", "unaligned-root", "gscid-too-wide", "reserved-dword"],
)
def test_d07_pc_iohgatp_checked_like_dc_iohgatp_267(rev: Rev, case: str) -> None:
    """Decision #7: PC.iohgatp checks after PC.ta.V, reported as "PDT entry misconfigured"."""
    caps = {"sv48x4": False, "sv57x4": False} if case == "mode-unsupported" else {}
    params = {"gscid_width": 8} if case == "gscid-too-wide" else {}
    s = GipcSystem(*rev, params=params, **caps)
    s.bind(5, gscid=1)
    s.device()
    assert s.t(3, IOVA, process_id=5).status == rv.Status.SUCCESS
    addr = _pc_word(s, 5, "iohgatp")
    hg = s.mem.read_u64(addr)
    bad = {
        "mode-encoding": F.IOHGATP.MODE.put(hg, 5),
        "mode-unsupported": F.IOHGATP.MODE.put(hg, 9),  # Sv48x4 not supported
        "unaligned-root": hg | 1,
        "gscid-too-wide": F.IOHGATP.GSCID.put(hg, 0x100),
    }
    if case == "reserved-dword":
        s.mem.write_u64(s.pdtree.pc_addr(5) + s.fmt.reserved[0], 1)
    else:
        s.mem.write_u64(addr, bad[case])
    s.iommu.invalidate_pdt(3, 5)
    assert fault(s.t(3, IOVA, process_id=5)) == rv.FaultRecord(
        cause=rv.Cause.PDT_ENTRY_MISCONFIGURED,
        ttyp=rv.Ttyp.UNTRANSLATED_READ,
        iotval=IOVA,
        device_id=3,
        process_id=5,
        pv=True,
    )
    # checked after PC.ta.V: an invalid PC with the same bad iohgatp is "not valid"
    s.mem.write_u64(_pc_word(s, 5, "ta"), 0)
    s.iommu.invalidate_pdt(3, 5)
    assert fault(s.t(3, IOVA, process_id=5)).cause == rv.Cause.PDT_ENTRY_NOT_VALID


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d08_caching_pc_iohgatp_iotlb_tags_and_hpm_filter(rev: Rev) -> None:
    """Decision #8: cached PCs hold iohgatp; IOTLB tagged by the PC's GSCID; HPM uses it."""
    s = GipcSystem(*rev)
    a = s.bind(1, gscid=10)
    b = s.bind(2, gscid=20)
    s.device()
    setup_cq(s)
    # HPM: count TLB misses of GSCID 20 only (IDT=1, DV_GSCV=1)
    s.iommu.mmio_write(
        REG.iohpmevt(1),
        F.IOHPMEVT.encode(eventID=Event.TLB_MISS, IDT=1, DV_GSCV=1, DID_GSCID=20),
    )
    assert s.t(3, IOVA, process_id=1).addr == a
    assert s.t(3, IOVA, process_id=2).addr == b
    assert s.iommu.mmio_read(REG.iohpmctr(1)) == 1
    assert {k[0] for k in s.iommu.iotlb.entries} == {10, 20}
    # the cached PC keeps its iohgatp until IODIR.INVAL_PDT
    other = s.vm(30)
    c = s.page()
    other.g.map(GPA + 0x1000, c)
    s.mem.write_u64(_pc_word(s, 1, "iohgatp"), other.g.satp(30))
    submit(s, iotinval_gvma(gscid=10))
    assert s.t(3, IOVA, process_id=1).addr == a  # stale PC (old iohgatp)
    submit(s, iodir_inval_pdt(3, 1), iotinval_gvma(gscid=10))
    if s.fmt.s1_at_spa:
        assert s.t(3, IOVA, process_id=1).addr == c
    # GSCID 20's entries survived both invalidations of GSCID 10
    assert any(k[0] == 20 for k in s.iommu.iotlb.entries)


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d09_rebinding_sequence(rev: Rev) -> None:
    """Decision #9: changing PC.iohgatp needs IODIR.INVAL_PDT, then IOTINVAL.VMA and .GVMA
    with GV=1 for the old GSCID."""
    s = GipcSystem(*rev)
    spa_a = s.bind(7, gscid=1)
    spa_other = s.bind(8, gscid=2)
    s.device()
    setup_cq(s)
    assert s.t(3, IOVA, process_id=7).addr == spa_a
    assert s.t(3, IOVA, process_id=8).addr == spa_other
    # the host rebinds PASID 7 to VM 3 (new tables, new memory)
    spa_b = s.bind(7, gscid=3)
    assert s.t(3, IOVA, process_id=7).addr == spa_a  # stale: nothing invalidated yet
    flag = s.page()
    submit(s, iodir_inval_pdt(3, 7), iotinval_vma(gscid=1), iotinval_gvma(gscid=1))
    submit(s, iofence_c(addr=flag, data=1))
    assert s.mem.read_u32(flag) == 1
    assert s.t(3, IOVA, process_id=7).addr == spa_b  # fresh
    # VM 2 kept its cached translation: invalidating VM 1 did not drop it
    assert any(k[0] == 2 for k in s.iommu.iotlb.entries)
    assert s.t(3, IOVA, process_id=8).addr == spa_other


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d10_dc_controls_apply_to_every_pc(rev: Rev) -> None:
    """Decision #10: GADE, SADE, DTF, RCID/MCID stay in the DC and apply to each PC."""
    s = GipcSystem(*rev)
    vm = s.vm(4)
    spa = s.page()
    vm.g.map(GPA, spa, flags=F.PTE.mask_of("R", "W", "U"))  # A=0, D=0
    s1 = s.stage1_for(vm)
    s1.map(IOVA, GPA, flags=F.PTE.mask_of("R", "W", "U"))  # A=0, D=0
    s.pdtree.set_pc(1, fsc=s1.satp(), iohgatp=vm.g.satp(4))
    s.device(
        tc=F.DC_TC.GADE.mask | F.DC_TC.SADE.mask,
        ta=F.DC_TA.encode(RCID=5, MCID=6),
    )
    rsp = s.t(3, IOVA, rv.Access.WRITE, process_id=1)
    assert rsp.addr == spa and (rsp.rcid, rsp.mcid) == (5, 6)
    ad = F.PTE.mask_of("A", "D")
    assert s.mem.read_u64(vm.g.pte_addr(GPA, 0)) & ad == ad  # GADE of the DC
    assert s1.space.read_u64(s1.pte_addr(IOVA, 0)) & ad == ad  # SADE of the DC
    # DTF of the DC suppresses reporting for faults under a PC
    s.device(tc=F.DC_TC.DTF.mask)
    s.iommu.invalidate_ddt()
    setup_fq(s)
    rsp = s.t(3, 0x9000_0000, process_id=1)
    assert rsp.fault is not None and not rsp.reported
    assert s.iommu.mmio_read(REG.FQT, 4) == 0


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
@pytest.mark.parametrize("big", [False, True])
def test_d11_pc_doublewords_in_sbe_byte_order(rev: Rev, big: bool) -> None:
    """Decision #11: every doubleword of a 32/64-byte PC is read in DC.tc.SBE byte order."""
    s = GipcSystem(*rev, big=big)
    spa = s.bind(9, gscid=1)
    s.device()
    assert s.t(3, IOVA, process_id=9).addr == spa
    # byte-swap every doubleword of the PC: now it is in the other order
    addr = s.pdtree.pc_addr(9)
    for off in range(0, s.fmt.size, 8):
        s.mem.write(addr + off, s.mem.read(addr + off, 8)[::-1])
    s.iommu.invalidate_pdt(3, 9)
    assert fault(s.t(3, IOVA, process_id=9)).cause in (
        rv.Cause.PDT_ENTRY_NOT_VALID,
        rv.Cause.PDT_ENTRY_MISCONFIGURED,
    )


@pytest.mark.parametrize("rev", REVISIONS, ids=ids)
def test_d12_faults_under_pc_iohgatp_are_base_faults(rev: Rev) -> None:
    """Decision #12: stage faults under PC.iohgatp are the base faults (20/21/23, iotval2)."""
    s = GipcSystem(*rev)
    vm = s.vm(1)
    s1 = s.stage1_for(vm)
    s1.map(IOVA, 0x7000_0000)  # a GPA VM 1 does not map
    s.pdtree.set_pc(2, fsc=s1.satp(), iohgatp=vm.g.satp(1))
    s.device(tc=TC_EN_ATS)
    assert fault(s.t(3, IOVA + 8, rv.Access.WRITE, process_id=2)) == rv.FaultRecord(
        cause=rv.Cause.WRITE_GUEST_PAGE_FAULT,
        ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
        iotval=IOVA + 8,
        iotval2=0x7000_0008,
        device_id=3,
        process_id=2,
        pv=True,
    )
    # an ATS translation request with a PASID takes the same path: Success, R=W=0
    ats = s.t(3, IOVA, process_id=2, kind=rv.RequestKind.ATS_TRANSLATION)
    assert ats.status == rv.Status.SUCCESS and not ats.r and not ats.w
    # (reported for the access the request asked for: write, as No Write is 0)
    assert fault(ats).cause == rv.Cause.WRITE_GUEST_PAGE_FAULT


def test_d12_2025_first_stage_pte_fetch_is_g_stage_translated() -> None:
    """Decision #12 (2025): implicit first-stage accesses go through PC.iohgatp (iotval2 bit 0)."""
    s = GipcSystem("2025")
    vm = s.vm(1)
    s1 = s.stage1_for(vm)  # in VM 1's guest memory
    s1.map(IOVA, GPA)
    s.pdtree.set_pc(2, fsc=F.IOSATP.encode(PPN=0x66666, MODE=SV39), iohgatp=vm.g.satp(1))
    s.device()
    rec = fault(s.t(3, IOVA, process_id=2))
    assert rec.cause == rv.Cause.READ_GUEST_PAGE_FAULT
    assert rec.iotval2 == (0x66666 << 12) | 1


# ---------------------------------------------------------------------------
# Where the revisions differ
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rev,size,layout",
    [
        (("2024", False), 32, {"iohgatp": 8, "ta": 16, "fsc": 24}),
        (
            ("2024", True),
            64,
            {
                "msiptp": 8,
                "msi_addr_mask": 16,
                "msi_addr_pattern": 24,
                "iohgatp": 40,
                "ta": 48,
                "fsc": 56,
            },
        ),
        (("2025", True), 32, {"ta": 0, "fsc": 8, "iohgatp": 16}),
    ],
    ids=["2024-32B", "2024-64B", "2025-32B"],
)
def test_rev_pc_size_and_layout(rev: Rev, size: int, layout: dict[str, int]) -> None:
    """PC size and byte offset of each doubleword, per revision (table 2, rows 1-2)."""
    s = GipcSystem(*rev)
    assert (s.fmt.size, s.fmt.offsets) == (size, layout)
    spa = s.bind(1, gscid=1)
    s.device()
    assert s.t(3, IOVA, process_id=1).addr == spa
    pc = s.pdtree.pc_addr(1)
    assert s.mem.read_u64(pc + layout["ta"]) & 1 == 1
    assert s.mem.read_u64(pc + layout["iohgatp"]) >> 60 == SV39
    assert s.pdtree.pc_addr(2) - pc == size


@pytest.mark.parametrize(
    "rev,widths",
    [
        (("2024", False), {PD8: 7, PD17: 16, PD20: 20}),
        (("2024", True), {PD8: 6, PD17: 15, PD20: 20}),
        (("2025", True), {PD8: 7, PD17: 16, PD20: 20}),
    ],
    ids=["2024-32B", "2024-64B", "2025-32B"],
)
def test_rev_widest_process_id_per_pdtp_mode(rev: Rev, widths: dict[int, int]) -> None:
    """process_id partitioning and widest process_id per pdtp.MODE (wider is 260)."""
    for mode, width in widths.items():
        s = GipcSystem(*rev)
        s.pdtree = type(s.pdtree)(s.host, mode, fmt=s.fmt)
        top = (1 << width) - 1
        spa = s.bind(top, gscid=1)
        s.device()
        assert s.t(3, IOVA, process_id=top).addr == spa, (mode, width)
        if width < 20:
            rec = fault(s.t(3, IOVA, process_id=1 << width))
            assert rec.cause == rv.Cause.TRANSACTION_TYPE_DISALLOWED
        assert s.fmt.pdi(top)[0] == (1 << s.fmt.pdi0_bits) - 1


def test_rev_2024_first_stage_tables_at_spa() -> None:
    """2024: PC.fsc.PPN and first-stage PTEs are SPAs; only the final GPA uses PC.iohgatp."""
    s = GipcSystem("2024")
    vm = s.vm(1)
    s1 = s.stage1_for(vm)
    assert s1.space is s.host  # host memory, not mapped in VM 1
    spa = s.page()
    vm.g.map(GPA, spa)
    s1.map(IOVA, GPA)
    s.pdtree.set_pc(1, fsc=s1.satp(), iohgatp=vm.g.satp(1))
    s.device()
    assert s.t(3, IOVA, process_id=1).addr == spa


def test_rev_2025_first_stage_tables_at_gpa() -> None:
    """2025: PC.fsc.PPN is a GPA: the same SPA-rooted table is not reachable."""
    s = GipcSystem("2025")
    vm = s.vm(1)
    host_s1 = s.stage1(s.host, SV39)
    spa = s.page()
    vm.g.map(GPA, spa)
    host_s1.map(IOVA, GPA)
    s.pdtree.set_pc(1, fsc=host_s1.satp(), iohgatp=vm.g.satp(1))
    s.device()
    rec = fault(s.t(3, IOVA, process_id=1))
    assert rec.cause == rv.Cause.READ_GUEST_PAGE_FAULT and rec.iotval2 & 1


def _msi_setup(s: GipcSystem, pasid: int, gscid: int, imsic: int) -> None:
    vm = s.vm(gscid)
    msipt = s.msipt(4)
    msipt.set_flat(1, imsic)
    s1 = s.stage1_for(vm)
    s1.map(IOVA, 0x2800_1000)
    s.pdtree.set_pc(
        pasid,
        fsc=s1.satp(),
        iohgatp=vm.g.satp(gscid),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0x3,
        msi_addr_pattern=0x2800_0000 >> 12,
    )


def test_rev_2024_64b_msi_translation_uses_pc_fields() -> None:
    """2024 64-byte PC: a request that selected the PC uses PC.msiptp/mask/pattern."""
    s = GipcSystem("2024", msi_flat=True)
    _msi_setup(s, 1, 1, 0x2400_1000)
    _msi_setup(s, 2, 2, 0x2400_2000)
    s.device()  # the DC has no MSI page table
    r1 = s.t(3, IOVA + 4, rv.Access.WRITE, process_id=1, length=4)
    r2 = s.t(3, IOVA + 4, rv.Access.WRITE, process_id=2, length=4)
    assert (r1.is_msi, r1.addr) == (True, 0x2400_1004)
    assert (r2.is_msi, r2.addr) == (True, 0x2400_2004)


@pytest.mark.parametrize(
    "field,value",
    [("msiptp", F.MSIPTP.encode(MODE=2)), ("msiptp", 1 << 50), ("msi_addr_mask", 1 << 60)],
)
def test_rev_2024_64b_pc_msi_fields_checked_267(field: str, value: int) -> None:
    """2024 64-byte PC: bad MSI fields are "PDT entry misconfigured" (267)."""
    s = GipcSystem("2024", msi_flat=True)
    _msi_setup(s, 1, 1, 0x2400_1000)
    s.device()
    s.mem.write_u64(_pc_word(s, 1, field), value)
    assert fault(s.t(3, IOVA, process_id=1)).cause == rv.Cause.PDT_ENTRY_MISCONFIGURED


def test_rev_2024_64b_msiptp_must_be_off_with_bare_pc_iohgatp() -> None:
    """2024 64-byte PC: PC.msiptp.MODE must be Off when PC.iohgatp is Bare (267)."""
    s = GipcSystem("2024", msi_flat=True)
    _msi_setup(s, 1, 1, 0x2400_1000)
    s.device()
    s.mem.write_u64(_pc_word(s, 1, "iohgatp"), 0)
    assert fault(s.t(3, IOVA, process_id=1)).cause == rv.Cause.PDT_ENTRY_MISCONFIGURED


def test_rev_2025_msi_translation_uses_dc_fields() -> None:
    """2025: MSI translation always uses the DC's msiptp / mask / pattern."""
    s = GipcSystem("2025")
    vm = s.vm(1)
    s1 = s.stage1_for(vm)
    s1.map(IOVA, 0x2800_1000)
    s.pdtree.set_pc(1, fsc=s1.satp(), iohgatp=vm.g.satp(1))
    msipt = s.msipt(4)
    msipt.set_flat(1, 0x2400_7000)
    dcvm = s.vm(9)
    s.device(
        iohgatp=dcvm.g.satp(9),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0x3,
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    rsp = s.t(3, IOVA, rv.Access.WRITE, process_id=1, length=4)
    assert (rsp.is_msi, rsp.addr) == (True, 0x2400_7000)
    assert gipc.PC_2025.msi is False
