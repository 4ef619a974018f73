"""The driver and hypervisor facing hardware that misbehaves, or being misused.

The driver polls and checks what it wrote, as the spec's initialization guidelines
ask ("stop and report failure"); these tests give it an IOMMU that does not
cooperate on one register, and check the exact error.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import (
    Driver,
    DriverError,
    InterruptConfig,
    ats_range,
    iofence_c,
)
from riscv_iommu.host.hypervisor import Hypervisor, HypervisorError, R, W, X
from riscv_iommu.host.tables import PageAllocator

REG = rv.REG


class Flaky(rv.Iommu):
    """An IOMMU whose reads of some registers lie and whose writes to some are dropped."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.read_or: Dict[int, int] = {}
        self.read_and: Dict[int, int] = {}
        self.drop: set[int] = set()

    def mmio_read(self, offset: int, size: int = 8) -> int:
        v = super().mmio_read(offset, size)
        if offset in self.read_or:
            v |= self.read_or[offset]
        if offset in self.read_and:
            v &= self.read_and[offset]
        return v

    def mmio_write(self, offset: int, value: int, size: int = 8) -> None:
        if offset not in self.drop:
            super().mmio_write(offset, value, size)


def flaky_driver(
    caps: Optional[rv.Capabilities] = None, setup: Optional[Callable[[Flaky], None]] = None
) -> Driver:
    mem = rv.SparseMemory()
    io = Flaky(mem, capabilities=caps or rv.Capabilities.full())
    if setup is not None:
        setup(io)
    return Driver(io, mem, PageAllocator(mem), poll_limit=5)


def test_queue_base_that_does_not_take_the_value() -> None:
    """A queue base register that drops writes: "cqb did not take ..."."""
    drv = flaky_driver(setup=lambda io: io.drop.add(REG.CQB))
    with pytest.raises(DriverError, match="cqb did not take"):
        drv.bring_up()


def test_queue_that_never_turns_on() -> None:
    """cqon never reads 1: the poll gives up."""
    drv = flaky_driver(setup=lambda io: io.read_and.__setitem__(REG.CQCSR, ~F.CQCSR.cqon.mask))
    with pytest.raises(DriverError, match="cqcsr.cqon did not become 1"):
        drv.bring_up()


def test_queue_that_never_turns_off() -> None:
    """Re-initializing a queue that reads on forever: "did not turn off"."""
    drv = flaky_driver()
    drv.bring_up()
    assert isinstance(drv.iommu, Flaky)
    drv.iommu.read_or[REG.FQCSR] = F.FQCSR.fqon.mask
    with pytest.raises(DriverError, match="fq did not turn off"):
        drv.bring_up()


@pytest.mark.parametrize("when", ["before", "after"])
def test_ddtp_busy_stuck(when: str) -> None:
    """ddtp.busy stuck at 1, before or after the write of ddtp."""
    busy = F.DDTP.busy.mask
    drv = flaky_driver()
    io = drv.iommu
    assert isinstance(io, Flaky)
    if when == "before":
        io.read_or[REG.DDTP] = busy
    else:
        real = io.mmio_write

        def write(offset: int, value: int, size: int = 8) -> None:
            real(offset, value, size)
            if offset == REG.DDTP:
                io.read_or[REG.DDTP] = busy

        io.mmio_write = write  # type: ignore[method-assign]
    with pytest.raises(DriverError, match="ddtp.busy stuck at 1"):
        drv.bring_up()


def test_fctl_wsi_that_does_not_take() -> None:
    """IGS=BOTH but fctl.WSI stays 0: wired interrupts cannot be selected."""
    drv = flaky_driver(setup=lambda io: io.drop.add(REG.FCTL))
    with pytest.raises(DriverError, match="fctl.WSI did not take"):
        drv.bring_up(interrupts=InterruptConfig(wsi=True))


def test_queue_size_out_of_range() -> None:
    """A queue of 2**0 or 2**33 entries does not exist."""
    drv = flaky_driver()
    with pytest.raises(ValueError, match="size must be 2\\*\\*1 .. 2\\*\\*32"):
        drv.bring_up(cq_log2=0)


def test_driver_used_before_bring_up() -> None:
    """Commands, faults and DDT access need bring_up first."""
    drv = flaky_driver()
    with pytest.raises(DriverError, match="command queue is not set up"):
        drv.submit(iofence_c())
    with pytest.raises(DriverError, match="fault queue is not set up"):
        drv.faults()
    with pytest.raises(DriverError, match="no DDT"):
        drv.read_dc(1)


def test_command_builders_reject_bad_operands() -> None:
    """IOFENCE.C needs a 4-byte aligned address; ATS ranges are aligned powers of two."""
    with pytest.raises(ValueError, match="4-byte aligned"):
        iofence_c(addr=0x1002)
    with pytest.raises(ValueError, match="power of two"):
        ats_range(0x1000, 0x3000)
    assert ats_range(0x4000, 0x4000) == (0x4000 | 0x1000, True)


def test_driver_takes_an_explicit_gipc_bit() -> None:
    """The platform may tell the driver where capabilities.GIPC is."""
    mem = rv.SparseMemory()
    io = rv.Iommu(mem, capabilities=rv.Capabilities.full(gipc=True, gipc_bit=50))
    drv = Driver(io, mem, PageAllocator(mem), gipc_bit=50)
    drv.bring_up()
    assert drv.caps.gipc and drv.gipc_bit == 50


# ---------------------------------------------------------------------------
# the hypervisor
# ---------------------------------------------------------------------------
def hyper(**caps: Any) -> Hypervisor:
    return Hypervisor(rv.Iommu(rv.SparseMemory(), capabilities=rv.Capabilities.full(**caps)))


def test_hypervisor_needs_a_pdt_mode() -> None:
    """An IOMMU without PD8/PD17/PD20 cannot host PASIDs."""
    with pytest.raises(HypervisorError, match="no process-directory mode"):
        hyper(pd8=False, pd17=False, pd20=False)


def test_vm_ram_alignment_and_g_stage_mode() -> None:
    """Guest RAM must be aligned to its page size; a G-stage mode must be supported."""
    hv = hyper(sv48x4=False, sv57x4=False)
    vm = hv.create_vm()
    with pytest.raises(HypervisorError, match="aligned to its page size"):
        vm.map_guest_ram(0x8000_1000, 1 << 21, page_size=1 << 21)
    with pytest.raises(HypervisorError, match="is not supported"):
        hv.create_vm(g_mode=9)


def test_pasid_binding_errors() -> None:
    """Binding needs a PDT, a free PASID that fits; rebinding a bound GIPC PASID."""
    hv = hyper(gipc=True)
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 0x10000)
    hv.attach(1, vm, pasids=False)
    with pytest.raises(HypervisorError, match="without a PDT"):
        hv.bind_pasid(1, 5, vm)
    hv.attach_gipc(2)
    hv.bind_pasid(2, 5, vm)
    with pytest.raises(HypervisorError, match="already bound"):
        hv.bind_pasid(2, 5, vm)
    with pytest.raises(HypervisorError, match="wider than the PDT allows"):
        hv.bind_pasid(2, 1 << 20, vm)
    with pytest.raises(HypervisorError, match="is not bound"):
        hv.rebind_pasid(2, 6, vm)
    no_gipc = hyper()
    with pytest.raises(HypervisorError, match="no capabilities.GIPC"):
        no_gipc.attach_gipc(1)


def test_map_beyond_the_first_stage_width_and_lookup() -> None:
    """MAP above the Sv39 IOVA range is refused; lookups of unmapped IOVAs give None."""
    hv = hyper(gipc=True)
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 0x10000)
    hv.attach_gipc(2)
    sp = hv.bind_pasid(2, 1, vm)
    with pytest.raises(HypervisorError, match="beyond the first-stage address width"):
        hv.map(2, 1, 1 << 38, 0x8000_0000, 0x1000, R | W)
    hv.map(2, 1, 0x1000, 0x8000_0000, 0x1000, R | W | X)
    assert sp.lookup(0x1234) == 0x8000_0234
    assert sp.lookup(0x9000) is None


def test_ats_devices_get_invalidations_on_unmap_and_detach() -> None:
    """With ATS, UNMAP sends ATS.INVAL (one per leaf, or one global for many) and so does
    detaching the device."""
    hv = hyper(gipc=True)
    sent: list[Any] = []
    hv.iommu.on_ats_message = lambda m: (
        sent.append(m) or hv.iommu.invalidation_completion(m.device_id, 1 << m.itag)
    )
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 0x40000)
    hv.attach_gipc(3, ats=True, pri=True)
    hv.bind_pasid(3, 1, vm)
    hv.map(3, 1, 0x10000, 0x8000_0000, 0x10000, R | W)  # 16 pages
    hv.unmap(3, 1, 0x10000, 0x10000)
    assert any(isinstance(m, rv.InvalidationRequest) and m.s for m in sent)
    sent.clear()
    hv.map(3, 1, 0x10000, 0x8000_0000, 0x2000, R | W)  # 2 pages
    hv.unmap(3, 1, 0x10000, 0x2000)
    assert [m.addr for m in sent if isinstance(m, rv.InvalidationRequest)] == [0x10000, 0x11000]
    sent.clear()
    assert hv.detach(3)
    assert any(isinstance(m, rv.InvalidationRequest) and m.global_ for m in sent)


def test_reattach_unbind_with_ats_and_superpage_after_unmap() -> None:
    """attach_gipc of an attached device detaches it first; unbinding a PASID of an ATS
    device invalidates its ATC; a 2 MiB MAP where an emptied 4 KiB table remains falls
    back to 4 KiB pages."""
    hv = hyper(gipc=True)
    done = hv.iommu.invalidation_completion
    hv.iommu.on_ats_message = lambda m: done(m.device_id, 1 << m.itag) if hasattr(m, "itag") else 0
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 1 << 22, page_size=1 << 21)
    hv.attach_gipc(4, ats=True)
    hv.bind_pasid(4, 1, vm)
    hv.map(4, 1, 0x20_0000, 0x8000_0000, 0x1000, R | W)  # a 4 KiB page: a level-0 table
    assert hv.unmap(4, 1, 0x20_0000, 0x1000)
    hv.map(4, 1, 0x20_0000, 0x8000_0000, 1 << 21, R | W)  # the table stays: 4 KiB leaves
    sp = hv.space(4, 1)
    assert sp.mappings[0x20_0000][0] == 0x1000 and len(sp.mappings) == 512
    assert hv.unbind_pasid(4, 1)
    hv.attach_gipc(4)  # re-attach: the old attachment is detached first
    assert not hv.devices[4].ats
