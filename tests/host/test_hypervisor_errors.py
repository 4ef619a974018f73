"""The hypervisor's refusals (HypervisorError, exact messages, nothing changed) and the
less common paths of device assignment: PRI, re-attach, ATS on detach / unbind / large
UNMAPs, a MAP that meets an emptied page table.

Spec: iommu_sw_guidelines.adoc "Guidelines for invalidations" ("Changing device directory
table entry", "Changing process directory table entry", "Changing first-stage page table
entry", and for ATS "the IOMMU ... ATS.INVAL ... preceded by IOFENCE.C"); iommu_registers.adoc
(capabilities.PD8/PD17/PD20, Sv39x4/Sv48x4); iommu_data_structures.adoc (DC.tc.EN_PRI/PRPR,
PDTP.MODE and the PASID widths PD8/PD17/PD20); docs/gipc.md (bind / unbind / rebind).
"""

from __future__ import annotations

import re
from typing import Any, List, Literal, Optional

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import Command
from riscv_iommu.host.hypervisor import SV48, Hypervisor, HypervisorError, R, Vm, W

REG = rv.REG
RAM = 0x8000_0000
ALL = 0x7FFF_FFFF_FFFF_F000  # PCIe "all addresses" with S = 1
TC_V = F.DC_TC.V.mask


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def make(s1_mode: int = 8, **caps: Any) -> Hypervisor:
    io = rv.Iommu(rv.SparseMemory(), capabilities=rv.Capabilities.full(**caps))
    return Hypervisor(io, s1_mode=s1_mode)


def vm_with_ram(hv: Hypervisor, size: int = 1 << 22, page_size: int = 4096) -> Vm:
    vm = hv.create_vm()
    vm.map_guest_ram(RAM, size, page_size=page_size)
    return vm


def cqt(hv: Hypervisor) -> int:
    return int(hv.iommu.mmio_read(REG.CQT, 4))


def ring(hv: Hypervisor, start: int) -> List[Command]:
    """The commands in CQ memory from index ``start`` to cqt."""
    qb = hv.iommu.mmio_read(REG.CQB, 8)
    base = F.QUEUE_BASE.PPN.get(qb) << 12
    n = 1 << (F.QUEUE_BASE.LOG2SZ_1.get(qb) + 1)
    order: Literal["little", "big"] = "big" if hv.driver.be else "little"
    out, i, end = [], start, cqt(hv)
    while i != end:
        raw = hv.mem.read(base + 16 * i, 16)
        out.append(Command(int.from_bytes(raw[:8], order), int.from_bytes(raw[8:], order)))
        i = (i + 1) % n
    return out


def flag(hv: Hypervisor) -> int:
    return int.from_bytes(hv.mem.read(hv.driver.fence_addr, 4), "little")


# expected commands, encoded from the formats layouts
def inval_ddt(did: int) -> Command:
    return Command(F.CMD_IODIR0.encode(opcode=3, func3=0, DV=1, DID=did))


def inval_pdt(did: int, pid: int) -> Command:
    return Command(F.CMD_IODIR0.encode(opcode=3, func3=1, PID=pid, DV=1, DID=did))


def vma(
    gscid: Optional[int] = None, pscid: Optional[int] = None, addr: Optional[int] = None
) -> Command:
    d0 = F.CMD_IOTINVAL0.encode(
        opcode=1,
        func3=0,
        AV=int(addr is not None),
        PSCID=pscid or 0,
        PSCV=int(pscid is not None),
        GV=int(gscid is not None),
        GSCID=gscid or 0,
    )
    return Command(d0, F.CMD_IOTINVAL1.encode(ADDR=(addr or 0) >> 12))


def gvma(gscid: int) -> Command:
    return Command(F.CMD_IOTINVAL0.encode(opcode=1, func3=1, GV=1, GSCID=gscid))


def fence(hv: Optional[Hypervisor] = None, pr: bool = False, pw: bool = False) -> Command:
    """IOFENCE.C; with ``hv``: AV = 1 at the driver's flag with the flag's current value."""
    if hv is None:
        return Command(F.CMD_IOFENCE0.encode(opcode=2))
    d0 = F.CMD_IOFENCE0.encode(opcode=2, AV=1, PR=int(pr), PW=int(pw), DATA=flag(hv))
    return Command(d0, F.CMD_IOFENCE1.encode(ADDR=hv.driver.fence_addr >> 2))


def ats_inval(did: int, pasid: Optional[int], addr: int, s: bool, g: bool = False) -> Command:
    d0 = F.CMD_ATS0.encode(opcode=4, func3=0, PID=pasid or 0, PV=int(pasid is not None), RID=did)
    return Command(d0, F.ATS_INVAL_PAYLOAD.encode(G=int(g), S=int(s), ADDR=addr >> 12))


def answering_device(hv: Hypervisor) -> List[Any]:
    """Every ATS message is recorded; each Invalidation Request is completed at once."""
    msgs: List[Any] = []

    def on_msg(m: Any) -> None:
        msgs.append(m)
        if isinstance(m, rv.InvalidationRequest):
            hv.iommu.invalidation_completion(m.device_id, 1 << m.itag)

    hv.iommu.on_ats_message = on_msg
    return msgs


# ---------------------------------------------------------------------------
# the IOMMU the hypervisor needs
# ---------------------------------------------------------------------------
def test_hypervisor_needs_a_process_directory_mode() -> None:
    """capabilities.PD8 = PD17 = PD20 = 0: no PDTP.MODE other than Bare, so no PASIDs."""
    with pytest.raises(
        HypervisorError, match=exact("the IOMMU supports no process-directory mode")
    ):
        make(pd8=False, pd17=False, pd20=False)


@pytest.mark.parametrize(
    "caps, mode, too_wide",
    [
        (dict(pd17=False, pd20=False), 1, 0x100),  # PD8: 8-bit PASIDs
        (dict(pd20=False), 2, 0x2_0000),  # PD17
        ({}, 3, 0x10_0000),  # PD20
    ],
)
def test_pasid_wider_than_the_pdt_allows(caps: Any, mode: int, too_wide: int) -> None:
    """The widest supported PDTP.MODE is used; a PASID beyond its width is refused and the
    device keeps the PASIDs it had."""
    hv = make(**caps)
    assert hv.pd_mode == mode
    vm = vm_with_ram(hv)
    hv.attach(3, vm)
    hv.bind_pasid(3, too_wide - 1)
    with pytest.raises(
        HypervisorError, match=exact(f"PASID {too_wide:#x} is wider than the PDT allows")
    ):
        hv.bind_pasid(3, too_wide)
    assert list(hv.devices[3].spaces) == [too_wide - 1]
    dc = hv.driver.read_dc(3)
    assert F.PDTP.MODE.get(dc.fsc) == mode


# ---------------------------------------------------------------------------
# VMs
# ---------------------------------------------------------------------------
def test_create_vm_with_an_unsupported_g_stage_mode() -> None:
    """iohgatp.MODE Sv48x4 needs capabilities.Sv48x4; the refused VM takes no GSCID."""
    hv = make(sv48x4=False, sv57x4=False)
    with pytest.raises(HypervisorError, match=exact("G-stage mode 9 is not supported")):
        hv.create_vm(g_mode=SV48)
    assert hv.vms == {}
    assert hv.create_vm().gscid == 1


@pytest.mark.parametrize(
    "gpa, size, page_size",
    [
        (RAM + 0x1000, 1 << 21, 1 << 21),  # GPA not 2 MiB aligned
        (RAM, (1 << 21) + 0x1000, 1 << 21),  # size not a multiple of 2 MiB
        (RAM, 0x4000, 0x2000),  # 8 KiB is no G-stage page size
        (RAM + 0x800, 0x1000, 0x1000),
    ],
)
def test_guest_ram_must_be_aligned_to_its_page_size(gpa: int, size: int, page_size: int) -> None:
    """G-stage leaves are 4 KiB, 2 MiB or 1 GiB pages, naturally aligned: RAM that cannot be
    cut into them is refused before any host memory is allocated."""
    hv = make()
    vm = hv.create_vm()
    before = hv.alloc.next
    with pytest.raises(HypervisorError, match=exact("guest RAM must be aligned to its page size")):
        vm.map_guest_ram(gpa, size, page_size=page_size)
    assert vm.ram == [] and vm.memory.backing == {} and hv.alloc.next == before


# ---------------------------------------------------------------------------
# devices
# ---------------------------------------------------------------------------
def test_attach_with_pri_sets_en_pri_and_prpr() -> None:
    """A device with PRI: DC.tc.EN_PRI = 1 and PRPR = 1 (page-request responses carry the
    PASID), on both kinds of attachment."""
    hv = make(gipc=True)
    vm = vm_with_ram(hv)
    pri = F.DC_TC.EN_PRI.mask | F.DC_TC.PRPR.mask
    hv.attach(3, vm, pasids=False, ats=True, pri=True)
    assert hv.driver.read_dc(3).tc == TC_V | F.DC_TC.EN_ATS.mask | pri
    hv.attach_gipc(4, ats=True, pri=True)
    assert hv.driver.read_dc(4).tc & (pri | F.DC_TC.EN_ATS.mask) == pri | F.DC_TC.EN_ATS.mask
    hv.attach(5, vm, pasids=False)
    assert hv.driver.read_dc(5).tc & pri == 0


def test_attach_gipc_of_an_attached_device_detaches_it_first() -> None:
    """Re-attaching a GIPC device: DC_CHANGE for the old DC (PDTV = 1, iohgatp Bare:
    IOTINVAL.VMA with GV = 0, then the GV = 1 pair of each PASID's VM) before the new DC
    is written; the new attachment has no PASIDs."""
    hv = make(gipc=True)
    vm = vm_with_ram(hv)
    hv.attach_gipc(7)
    hv.bind_pasid(7, 1, vm)
    old_root = hv.devices[7].pdt.root  # type: ignore[union-attr]
    start = cqt(hv)
    dev = hv.attach_gipc(7)
    assert ring(hv, start) == [
        inval_ddt(7),
        vma(),
        vma(vm.gscid),
        gvma(vm.gscid),
        fence(hv, pr=True, pw=True),
    ]
    assert dev.spaces == {} and dev.pdt is not None and dev.pdt.root != old_root
    assert F.PDTP.PPN.get(hv.driver.read_dc(7).fsc) == dev.pdt.root >> 12


def test_detach_of_an_ats_device_invalidates_its_atc_while_the_dc_is_valid() -> None:
    """Detach with ATS: IOFENCE.C then a global ATS.INVAL (G = 1, S = 1, all addresses) and
    a fence *before* the DC is invalidated, so the device's Invalidation Completion finds
    DC.tc.EN_ATS = 1 and completes it; then DC_CHANGE and the PR/PW fence."""
    hv = make()
    vm = vm_with_ram(hv)
    hv.attach(3, vm, pasids=False, ats=True)
    msgs = answering_device(hv)
    start = cqt(hv)
    assert hv.detach(3) is True
    assert msgs == [rv.InvalidationRequest(3, ALL, s=True, global_=True, itag=0)]
    cmds = ring(hv, start)
    assert cmds[:2] == [fence(), ats_inval(3, None, ALL, True, g=True)]
    assert cmds[3:] == [inval_ddt(3), vma(vm.gscid), gvma(vm.gscid), fence(hv, pr=True, pw=True)]
    assert hv.driver.faults() == []  # the completion was not an unsupported request
    assert hv.driver.read_dc(3).tc == 0 and 3 not in hv.devices


def test_detach_of_an_ats_device_that_does_not_answer() -> None:
    """Without the device's Invalidation Completion the ATS fence does not complete: detach
    returns False (the DC is invalidated all the same)."""
    hv = make()
    vm = vm_with_ram(hv)
    hv.attach(3, vm, pasids=False, ats=True)
    msgs: List[Any] = []
    hv.iommu.on_ats_message = msgs.append
    assert hv.detach(3) is False
    assert msgs == [rv.InvalidationRequest(3, ALL, s=True, global_=True, itag=0)]
    assert hv.driver.read_dc(3).tc == 0


# ---------------------------------------------------------------------------
# PASIDs
# ---------------------------------------------------------------------------
def test_bind_refusals() -> None:
    """bind_pasid: the device needs a PDT (DC.tc.PDTV = 1) and the PASID must be free;
    refusals change neither the device nor the command queue."""
    hv = make()
    vm = vm_with_ram(hv)
    hv.attach(1, vm, pasids=False)
    hv.attach(2, vm)
    sp = hv.bind_pasid(2, 5)
    start = cqt(hv)
    with pytest.raises(HypervisorError, match=exact("the device was attached without a PDT")):
        hv.bind_pasid(1, 5)
    with pytest.raises(HypervisorError, match=exact("PASID 0x5 is already bound")):
        hv.bind_pasid(2, 5)
    assert list(hv.devices[1].spaces) == [None]
    assert hv.devices[2].spaces == {5: sp}
    assert cqt(hv) == start


def test_unbind_of_an_ats_device_invalidates_the_pasid_in_its_atc() -> None:
    """Unbind with ATS: PC_CHANGE, then IOFENCE.C and ATS.INVAL for the PASID over all
    addresses (S = 1, G = 0), then the PR/PW fence, completed by the device's answer."""
    hv = make()
    vm = vm_with_ram(hv)
    hv.attach(3, vm, ats=True)
    sp = hv.bind_pasid(3, 1)
    msgs = answering_device(hv)
    start = cqt(hv)
    assert hv.unbind_pasid(3, 1) is True
    assert msgs == [rv.InvalidationRequest(3, ALL, s=True, pasid=1, itag=0)]
    assert ring(hv, start) == [
        inval_pdt(3, 1),
        vma(vm.gscid, sp.pscid),
        fence(),
        ats_inval(3, 1, ALL, True),
        fence(hv, pr=True, pw=True),
    ]


def test_unbind_and_rebind_of_a_pasid_that_is_not_bound() -> None:
    """Only a bound PASID can be unbound or moved to another VM."""
    hv = make(gipc=True)
    a, b = vm_with_ram(hv), vm_with_ram(hv)
    hv.attach_gipc(7)
    hv.bind_pasid(7, 1, a)
    start = cqt(hv)
    with pytest.raises(HypervisorError, match=exact("PASID 0x6 is not bound")):
        hv.rebind_pasid(7, 6, b)
    with pytest.raises(HypervisorError, match=exact("PASID 0x6 is not bound")):
        hv.unbind_pasid(7, 6)
    assert list(hv.devices[7].spaces) == [1] and cqt(hv) == start


# ---------------------------------------------------------------------------
# MAP / UNMAP
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("s1_mode, va_bits", [(8, 39), (9, 48)])
def test_map_beyond_the_first_stage_address_width(s1_mode: int, va_bits: int) -> None:
    """Sv39 / Sv48 IOVAs are 39 / 48 bits (a canonical IOVA with bit va_bits-1 set is a
    negative one the hypervisor does not hand out): the last page below 2**(va_bits-1) maps,
    a range reaching past it is refused and nothing is mapped."""
    hv = make(s1_mode=s1_mode)
    vm = vm_with_ram(hv)
    hv.attach(3, vm, pasids=False)
    top = 1 << (va_bits - 1)
    with pytest.raises(HypervisorError, match=exact("IOVA beyond the first-stage address width")):
        hv.map(3, None, top - 0x1000, RAM, 0x2000)
    assert hv.space(3, None).mappings == {}
    hv.map(3, None, top - 0x1000, RAM, 0x1000)
    rsp = hv.iommu.translate(rv.Request(device_id=3, addr=top - 0x1000 + 0x10))
    assert rsp.status == rv.Status.SUCCESS and rsp.addr == vm.spa(RAM + 0x10)


def test_lookup_outside_every_mapping_is_none() -> None:
    """AddressSpace.lookup follows the software view: inside a leaf the GPA, just past it
    (and below it) None."""
    hv = make()
    vm = vm_with_ram(hv)
    hv.attach(3, vm, pasids=False)
    hv.map(3, None, 0x4000, RAM + 0x1000, 0x2000)
    sp = hv.space(3, None)
    assert sp.lookup(0x4000) == RAM + 0x1000
    assert sp.lookup(0x5FFF) == RAM + 0x2FFF
    assert sp.lookup(0x6000) is None
    assert sp.lookup(0x3FFF) is None


def test_map_superpage_over_an_emptied_table_uses_4k_pages() -> None:
    """UNMAP clears leaves but keeps the (now empty) level-0 table; a later 2 MiB-aligned
    MAP there cannot put a superpage leaf over that non-leaf PTE and maps 512 4 KiB leaves
    instead; DMA through them reaches the right guest pages."""
    hv = make()
    vm = vm_with_ram(hv, size=1 << 22, page_size=1 << 21)
    hv.attach(3, vm, pasids=False)
    hv.map(3, None, 0x20_0000, RAM, 0x1000)
    assert hv.unmap(3, None, 0x20_0000, 0x1000)
    hv.map(3, None, 0x20_0000, RAM, 1 << 21, R | W)
    sp = hv.space(3, None)
    assert sorted(sp.mappings) == list(range(0x20_0000, 0x40_0000, 0x1000))
    assert {v[0] for v in sp.mappings.values()} == {0x1000}
    rsp = hv.iommu.translate(rv.Request(device_id=3, addr=0x3F_F008))
    assert (rsp.status, rsp.addr, rsp.size) == (rv.Status.SUCCESS, vm.spa(RAM + 0x1F_F008), 4096)
    hv.map(3, None, 0x40_0000, RAM + (1 << 21), 1 << 21)  # no table there: one 2 MiB leaf
    assert sp.mappings[0x40_0000] == (1 << 21, RAM + (1 << 21), R | W)


@pytest.mark.parametrize("pages", [8, 9])
def test_unmap_ats_per_leaf_up_to_8_then_one_for_all(pages: int) -> None:
    """UNMAP with ATS: after the IOTINVAL.VMAs and an IOFENCE.C, one ATS.INVAL per leaf for
    up to 8 leaves; beyond that a single one for the PASID over all addresses."""
    hv = make(gipc=True)
    vm = vm_with_ram(hv)
    hv.attach_gipc(7, ats=True)
    sp = hv.bind_pasid(7, 2, vm)
    size = pages * 0x1000
    hv.map(7, 2, 0x10_0000, RAM, size, R | W)
    msgs = answering_device(hv)
    start = cqt(hv)
    assert hv.unmap(7, 2, 0x10_0000, size) is True
    leaves = range(0x10_0000, 0x10_0000 + size, 0x1000)
    if pages <= 8:
        atc = [ats_inval(7, 2, va, False) for va in leaves]
        # the device answers each at once: ITAG 0 is free again for the next
        reqs = [rv.InvalidationRequest(7, va, pasid=2, itag=0) for va in leaves]
    else:
        atc = [ats_inval(7, 2, ALL, True)]
        reqs = [rv.InvalidationRequest(7, ALL, s=True, pasid=2, itag=0)]
    assert ring(hv, start) == [
        *(vma(vm.gscid, sp.pscid, va) for va in leaves),
        fence(),
        *atc,
        fence(hv, pr=True, pw=True),
    ]
    assert msgs == reqs
