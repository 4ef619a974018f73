"""Hypervisor options used by scenario files: G-stage-only devices, extra DC.tc bits,
MSI fields, and table changes without invalidation (stale until the recipe runs)."""

from __future__ import annotations

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.hypervisor import Hypervisor, HypervisorError
from riscv_iommu.host.tables import MsiPageTable


def new_hv(**caps: bool) -> Hypervisor:
    return Hypervisor(rv.Iommu(rv.SparseMemory(), capabilities=rv.Capabilities.full(**caps)))


def test_g_stage_only_device_with_tc_bits_and_msi() -> None:
    """first_stage=False: DC.fsc Bare, addresses are GPAs; tc adds DC.tc bits; msi fills
    the DC's MSI fields."""
    hv = new_hv()
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 0x2000)
    table = MsiPageTable(hv.mem, hv.alloc)
    table.set_flat(0, 0x2400_0000)
    hv.attach(5, vm, first_stage=False, tc=F.DC_TC.DTF.mask, msi=(table.msiptp(), 0, 0x28000))
    dc = hv.driver.read_dc(5)
    assert dc.fsc == 0 and dc.tc & F.DC_TC.DTF.mask and not dc.tc & F.DC_TC.PDTV.mask
    assert (dc.msiptp, dc.msi_addr_mask, dc.msi_addr_pattern) == (table.msiptp(), 0, 0x28000)
    rsp = hv.iommu.translate(rv.Request(5, 0x8000_1008))
    assert rsp.addr == vm.spa(0x8000_1008)
    msi = hv.iommu.translate(rv.Request(5, 0x2800_0000, access=rv.Access.WRITE, length=4))
    assert msi.is_msi and msi.addr == 0x2400_0000
    miss = hv.iommu.translate(rv.Request(5, 0x9000_0000))
    assert miss.fault is not None and miss.fault.cause == 21 and not miss.reported  # DTF
    with pytest.raises(HypervisorError, match="has no address space"):
        hv.map(5, None, 0, 0x8000_0000, 0x1000)
    base = new_hv(msi_flat=False, msi_mrif=False)
    with pytest.raises(HypervisorError, match="MSI fields need extended DCs"):
        base.attach(5, base.create_vm(), msi=(0, 0, 0))


def test_changes_without_invalidation_are_stale_until_the_recipe() -> None:
    """invalidate=False sends no command: the IOMMU keeps its cached translation, PC and
    G-stage entry until the recipe's commands."""
    hv = new_hv()
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 0x2000)
    vm.map_guest_ram(0x9000_0000, 0x1000)
    hv.attach(3, vm)
    sp = hv.bind_pasid(3, 1)
    hv.map(3, 1, 0x1000, 0x8000_0000, 0x1000)
    hv.map(3, 1, 0x2000, 0x9000_0000, 0x1000)
    req1 = rv.Request(3, 0x1000, process_id=1)
    req2 = rv.Request(3, 0x2000, process_id=1)
    assert hv.iommu.translate(req1).fault is None and hv.iommu.translate(req2).fault is None
    sent = len(hv.driver.submitted)
    assert hv.unmap(3, 1, 0x1000, 0x1000, invalidate=False) is True
    assert vm.unmap_guest_ram(0x9000_0000, invalidate=False) is True
    assert len(hv.driver.submitted) == sent
    assert hv.iommu.translate(req1).fault is None  # stale
    assert hv.iommu.translate(req2).fault is None  # stale
    hv.driver.first_stage_changed(vm.gscid, sp.pscid, 0x1000)
    hv.driver.g_stage_changed(vm.gscid, 0x9000_0000)
    assert hv.iommu.translate(req1).fault.cause == 13  # type: ignore[union-attr]
    assert hv.iommu.translate(req2).fault.cause == 21  # type: ignore[union-attr]
    hv.map(3, 1, 0x1000, 0x8000_1000, 0x1000)
    assert hv.iommu.translate(req1).fault is None
    assert hv.unbind_pasid(3, 1, invalidate=False) is True
    assert hv.iommu.translate(req1).fault is None  # stale PC
    hv.driver.pc_changed(3, 1, sp.pscid, vm.gscid)
    assert hv.iommu.translate(req1).fault.cause == 266  # type: ignore[union-attr]
