"""Host-owned devices (Hypervisor.attach_host): DC.iohgatp Bare, the first stage alone with
its PDT and tables in host memory at SPAs, or pass-through (DC.fsc Bare too)."""

from __future__ import annotations

from typing import List

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import (
    Command,
    iodir_inval_ddt,
    iodir_inval_pdt,
    iotinval_vma,
)
from riscv_iommu.host.hypervisor import Hypervisor, HypervisorError, R, W, X
from riscv_iommu.host.tables import MsiPageTable

RAM = 0x1000_0000


def new_hv(**caps: bool) -> Hypervisor:
    hv = Hypervisor(rv.Iommu(rv.SparseMemory(), capabilities=rv.Capabilities.full(**caps)))
    hv.host_domain.add_ram(RAM, 0x10_0000)
    return hv


def sent_since(hv: Hypervisor, n: int) -> List[Command]:
    """Commands submitted after the first ``n``, without the driver's closing fence."""
    cmds = hv.driver.submitted[n:]
    assert repr(cmds[-1]).startswith("Command(IOFENCE.C")
    return cmds[:-1]


def read(hv: Hypervisor, did: int, addr: int, pasid: int | None = None) -> rv.Response:
    return hv.iommu.translate(rv.Request(did, addr, process_id=pasid))


def test_pdt_in_host_memory_pasids_map_to_spas() -> None:
    """pasids=True: DC.iohgatp = 0, DC.fsc = a PDT at an SPA (PDTV = 1, DPE = 0); each
    bound PASID's PC holds an iosatp whose table is in host memory; IOVAs reach host RAM."""
    hv = new_hv()
    dev = hv.attach_host(0x20)
    dc = hv.driver.read_dc(0x20)
    assert dc.iohgatp == 0 and dc.ta == 0 and dc.msiptp == 0
    assert dc.tc & F.DC_TC.PDTV.mask and not dc.tc & (F.DC_TC.DPE.mask | F.DC_TC.T2GPA.mask)
    assert dev.pdt is not None and dev.pdt.space is hv.host and dev.vm is hv.host_domain
    assert F.PDTP.MODE.get(dc.fsc) == hv.pd_mode == 3  # PD20
    assert F.PDTP.PPN.get(dc.fsc) << 12 == dev.pdt.root >= hv.alloc.base  # an SPA
    s1 = hv.bind_pasid(0x20, 1)
    s2 = hv.bind_pasid(0x20, 2)
    assert s1.table.space is hv.host and s1.gscid is None and s1.pscid != s2.pscid
    pc = dev.pdt.pc_addr(1)
    assert hv.mem.read(pc, 8) == F.PC_TA.encode(V=1, PSCID=s1.pscid).to_bytes(8, "little")
    fsc = int.from_bytes(hv.mem.read(pc + 8, 8), "little")
    assert fsc == F.IOSATP.encode(MODE=8, PPN=s1.table.root >> 12)
    hv.map(0x20, 1, 0x40_0000, RAM + 0x4000, 0x2000, R | W)
    hv.map(0x20, 2, 0x40_0000, RAM + 0x8000, 0x1000, R | X)
    rsp = read(hv, 0x20, 0x40_1010, 1)
    assert (rsp.status, rsp.addr, rsp.r, rsp.w, rsp.x, rsp.size) == (
        rv.Status.SUCCESS,
        RAM + 0x5010,
        True,
        True,
        False,
        0x1000,
    )
    rsp = read(hv, 0x20, 0x40_0010, 2)
    assert (rsp.addr, rsp.r, rsp.w, rsp.x) == (RAM + 0x8010, True, False, True)
    # no PASID: DPE = 0, both stages Bare: the address is the SPA
    rsp = read(hv, 0x20, 0x1234_5678)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, 0x1234_5678)
    # an unmapped IOVA: read page fault, iotval the IOVA, no iotval2 (no second stage)
    miss = read(hv, 0x20, 0x80_0000, 1)
    assert miss.status == rv.Status.COMPLETER_ABORT and miss.reported
    assert miss.fault == rv.FaultRecord(
        cause=13, ttyp=rv.Ttyp.UNTRANSLATED_READ, iotval=0x80_0000, iotval2=0,
        device_id=0x20, process_id=1, pv=True,
    )  # fmt: skip
    wr = hv.iommu.translate(rv.Request(0x20, 0x40_0018, rv.Access.WRITE, process_id=2))
    assert wr.fault is not None and (wr.fault.cause, wr.fault.iotval) == (15, 0x40_0018)
    assert [f.cause for f in hv.driver.faults()] == [13, 15]


def test_unmap_unbind_detach_send_gv0_invalidations() -> None:
    """The host has no GSCID: UNMAP and unbind send IOTINVAL.VMA with GV = 0; detach sends
    the "Changing device directory table entry" commands of a Bare-iohgatp DC."""
    hv = new_hv()
    hv.attach_host(0x20)
    sp = hv.bind_pasid(0x20, 1)
    hv.map(0x20, 1, 0x40_0000, RAM, 0x1000, R)
    assert read(hv, 0x20, 0x40_0008, 1).addr == RAM + 8  # now cached in the IOTLB
    n = len(hv.driver.submitted)
    assert hv.unmap(0x20, 1, 0x40_0000, 0x1000)
    assert sent_since(hv, n) == [iotinval_vma(pscid=sp.pscid, addr=0x40_0000)]
    assert read(hv, 0x20, 0x40_0008, 1).fault is not None
    n = len(hv.driver.submitted)
    assert hv.unbind_pasid(0x20, 1)
    assert sent_since(hv, n) == [iodir_inval_pdt(0x20, 1), iotinval_vma(pscid=sp.pscid)]
    hv.bind_pasid(0x20, 2)
    n = len(hv.driver.submitted)
    assert hv.detach(0x20)
    assert sent_since(hv, n) == [iodir_inval_ddt(0x20), iotinval_vma()]
    assert read(hv, 0x20, 0x1000).fault is not None  # DC not valid


def test_one_first_stage_table_and_pass_through() -> None:
    """pasids=False: DC.fsc = iosatp (its table in host memory), DC.ta.PSCID; first_stage
    =False: DC.fsc Bare, IOVA = SPA; attach(d, hv.host_domain) is the same attach."""
    hv = new_hv()
    dev = hv.attach_host(0x21, pasids=False)
    sp = hv.space(0x21, None)
    dc = hv.driver.read_dc(0x21)
    assert dc.iohgatp == 0 and not dc.tc & F.DC_TC.PDTV.mask and dev.pdt is None
    assert dc.fsc == F.IOSATP.encode(MODE=8, PPN=sp.table.root >> 12)
    assert dc.ta == F.DC_TA.encode(PSCID=sp.pscid) and sp.table.space is hv.host
    hv.map(0x21, None, 0x1_0000, RAM + 0x2_0000, 0x1000, R | W)
    wr = hv.iommu.translate(rv.Request(0x21, 0x1_0040, rv.Access.WRITE))
    assert (wr.status, wr.addr, wr.w, wr.size) == (rv.Status.SUCCESS, RAM + 0x2_0040, True, 0x1000)
    with pytest.raises(HypervisorError, match="^MAP of an SPA range that is not the host's RAM$"):
        hv.map(0x21, None, 0x2_0000, 0x8000_0000, 0x1000)  # the toolkit's table memory
    n = len(hv.driver.submitted)
    assert hv.detach(0x21)
    assert sent_since(hv, n) == [iodir_inval_ddt(0x21), iotinval_vma(pscid=sp.pscid)]
    hv.attach(0x22, hv.host_domain, first_stage=False)
    dc = hv.driver.read_dc(0x22)
    assert (dc.iohgatp, dc.fsc, dc.ta) == (0, 0, 0)
    rsp = hv.iommu.translate(rv.Request(0x22, 0x7654_3210, rv.Access.WRITE))
    assert (rsp.status, rsp.addr, rsp.r, rsp.w, rsp.x) == (
        rv.Status.SUCCESS, 0x7654_3210, True, True, True
    )  # fmt: skip
    hv.host_domain.write(RAM + 0x10, b"host")  # the host's addresses are SPAs
    assert hv.host_domain.read(RAM + 0x10, 4) == b"host" == bytes(hv.mem.read(RAM + 0x10, 4))
    assert hv.host_domain.spa(RAM) == RAM and hv.host_domain.iohgatp == 0


def test_host_ram_and_misuse_are_refused() -> None:
    """add_ram's rules; MSI tables, G-stage RAM, GIPC PASIDs and VM binds are not the
    host's."""
    hv = new_hv(gipc=True)
    host = hv.host_domain
    for spa, size, msg in (
        (RAM + 0x800, 0x1000, "host RAM must be page-aligned and non-empty"),
        (RAM, 0, "host RAM must be page-aligned and non-empty"),
        (1 << 56, 0x1000, r"host RAM beyond the SPA width \(capabilities.PAS\)"),
        (
            0x7FFF_F000,
            0x2000,
            r"host RAM must not overlap the toolkit's table memory "
            r"\[0x80000000, 0x100000000000000\)",
        ),
        (RAM + 0xF_F000, 0x2000, "host RAM overlaps existing RAM"),
    ):
        with pytest.raises(HypervisorError, match=f"^{msg}$"):
            host.add_ram(spa, size)
    assert host.ram == [(RAM, 0x10_0000, 0x1000, RAM)]
    with pytest.raises(HypervisorError, match="declare host RAM with add_ram"):
        host.map_guest_ram(0x8000_0000, 0x1000)
    with pytest.raises(HypervisorError, match="the host has no G-stage table"):
        host.unmap_guest_ram(RAM)
    table = MsiPageTable(hv.mem, hv.alloc)
    with pytest.raises(HypervisorError, match=r"no MSI page table \(iohgatp Bare\)"):
        hv.attach(0x20, host, msi=(table.msiptp(), 0, 0))
    assert 0x20 not in hv.devices
    vm = hv.create_vm()
    hv.attach_host(0x20)
    with pytest.raises(HypervisorError, match="a classic device's PASIDs belong to its VM"):
        hv.bind_pasid(0x20, 1, vm)
    hv.attach_gipc(0x30)
    with pytest.raises(HypervisorError, match="a GIPC bind names the VM"):
        hv.bind_pasid(0x30, 1, host)
    hv.bind_pasid(0x30, 1, vm)
    with pytest.raises(HypervisorError, match="only a GIPC device's PASIDs can move"):
        hv.rebind_pasid(0x30, 1, host)
    assert hv.vms == {vm.gscid: vm}  # the host is no VM: no GSCID is taken
