"""The systems the study compares, built with the host toolkit.

Every system is one IOMMU (``Capabilities.full(gipc=True)``: 64-byte DCs,
Sv39 first stage, Sv39x4 G-stage, a 3-level DDT, PD20 PDTs), the
:class:`~riscv_iommu.host.hypervisor.Hypervisor` that brought it up, ``vms``
VMs and ``pasids`` PASIDs.  PASID number ``g`` (0-based, "global") belongs to
VM ``g % vms``:

* ``classic``: SR-IOV -- one PCIe function (``device_id`` ``DEVICE + v``) per
  VM ``v``, ``DC.iohgatp`` = the VM, its PDT and first-stage tables in the
  VM's memory (G-stage translated); the function's PASIDs are ``g // vms + 1``;
* ``classic-1vm``: one function, one VM holding every PASID (``g + 1``);
* ``gipc-2024`` / ``gipc-2025``: one function with ``DC.tc.GIPC``, PASID
  ``g + 1`` bound to its VM through ``PC.iohgatp``; the PDT at SPAs; the
  first-stage tables at SPAs (2024) or in the VM's memory (2025).

Each PASID maps ``pages`` pages of ``page_size`` at :data:`IOVA_BASE` onto
its VM's guest RAM at :data:`RAM_GPA` (the PASIDs of one VM share that RAM,
as processes sharing a buffer do), and the page :data:`MSI_IOVA` onto its
VM's interrupt file at ``IMSIC_GPA + v * 4096``.  MSI translation: the
function's ``DC.msiptp`` (classic) or the PC's (2024: 64-byte PC), each an MSI
page table per VM.  Under GIPC 2025 the device's ``DC.iohgatp`` is Bare, so
the spec requires ``DC.msiptp.MODE`` = Off: there is no MSI page table, each
VM's G-stage maps its interrupt file, and MSI writes are translated as
ordinary writes.

Guest RAM is reserved, not written: a bump allocator over a fresh sparse
memory hands out never-written (so zero) pages, and the study's allocator
skips the zero-filling writes so that 1-GiB pages and thousands of VMs cost
no host memory (:class:`LazyAllocator`).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..capabilities import Capabilities, IommuParams
from ..host.hypervisor import AddressSpace, Hypervisor, Vm
from ..host.tables import A, D, MsiPageTable, PageAllocator, R, U, W
from ..iommu import REG, Iommu
from ..memory import SparseMemory
from ..types import Access, Request
from .config import MAX_BUFFER

__all__ = [
    "System",
    "LazyAllocator",
    "DEVICE",
    "IOVA_BASE",
    "RAM_GPA",
    "MSI_IOVA",
    "IMSIC_GPA",
    "MAX_BUFFER",
    "build",
]

#: device_id of the (first) function
DEVICE = 0x100
#: first IOVA of every PASID's buffer
IOVA_BASE = 1 << 30
#: GPA of every VM's guest RAM
RAM_GPA = 1 << 32
#: IOVA of the MSI doorbell page of every PASID
MSI_IOVA = 0x1000_0000
#: GPA of VM 0's interrupt file (VM v's is IMSIC_GPA + v * 4096)
IMSIC_GPA = 1 << 39
#: SPA of the host's guest interrupt files (file of VM v at + v * 4096), never read
_FILES_SPA = 1 << 50
#: doublewords of a 64-byte DC, in order (DeviceDirectory.set_dc)
_DC_WORDS = ("tc", "iohgatp", "ta", "fsc", "msiptp", "msi_addr_mask", "msi_addr_pattern")


class LazyAllocator(PageAllocator):
    """A :class:`PageAllocator` that does not write the zeros.

    Sound only over a memory nobody wrote beyond the allocator's pointer (a
    fresh :class:`SparseMemory` reads never-written pages as zeros), since a
    bump allocator never hands out an address twice.
    """

    def alloc(self, size: int = 4096, align: int = 4096) -> int:
        """Reserve ``size`` bytes aligned to ``align`` (a power of two)."""
        if align & (align - 1) or size <= 0:
            raise ValueError("align must be a power of two and size positive")
        addr = (self.next + align - 1) & ~(align - 1)
        if addr + size > self.limit:
            raise MemoryError("PageAllocator exhausted")
        self.next = addr + size
        return addr


def capabilities() -> Capabilities:
    """The capabilities of every system of the study."""
    return Capabilities.full(gipc=True)


class System:
    """One built system: memory, hypervisor, VMs, devices and bound PASIDs."""

    def __init__(
        self,
        kind: str,
        vms: int,
        pasids: int,
        pages: int,
        page_size: int,
        params: IommuParams,
    ) -> None:
        self.kind = kind
        self.gipc = kind.startswith("gipc")
        self.revision = kind[-4:] if self.gipc else "2024"
        self.nvms = 1 if kind == "classic-1vm" else vms
        self.npasids = pasids
        self.pages = pages
        self.page_size = page_size
        self.mem = SparseMemory()
        self.caps = capabilities()
        self.iommu = Iommu(self.mem, capabilities=self.caps, params=self._params(params))
        self.hv = Hypervisor(self.iommu)
        self.hv.alloc.__class__ = LazyAllocator  # tables and RAM: reserved, not zero-filled
        self.vms: List[Vm] = []
        #: per VM: the MSI page table (classic, 2024) and its msiptp
        self.msiptp: List[int] = []
        self.spaces: Dict[int, AddressSpace] = {}
        for v in range(self.nvms):
            vm = self.hv.create_vm(gscid=v)
            self._guest_ram(vm)
            self.vms.append(vm)
        self._attach()

    # -- building ------------------------------------------------------------------
    def _params(self, params: IommuParams) -> IommuParams:
        kw = {f: getattr(params, f) for f in params.__dataclass_fields__}
        kw["gipc_revision"] = self.revision
        return IommuParams(**kw)

    def _guest_ram(self, vm: Vm) -> None:
        """Guest RAM at RAM_GPA: G-stage leaves of the page size onto reserved host memory."""
        size = self.pages * self.page_size
        spa = self.hv.alloc.alloc(size, self.page_size)
        for off in range(0, size, self.page_size):
            vm.gstage.map(RAM_GPA + off, spa + off, size=self.page_size, flags=U | R | W | A | D)
        vm.ram.append((RAM_GPA, size, self.page_size, spa))

    def _msi_table(self, v: int) -> int:
        """A flat MSI page table of one entry, VM ``v``'s interrupt file; its msiptp."""
        table = MsiPageTable(self.mem, self.hv.alloc, entries=1)
        table.set_flat(0, _FILES_SPA + v * 4096)
        return table.msiptp()

    def _pattern(self, v: int) -> int:
        return (IMSIC_GPA >> 12) + v

    def _attach(self) -> None:
        hv = self.hv
        if not self.gipc:
            for v, vm in enumerate(self.vms):
                hv.attach(DEVICE + v, vm)
                self.msiptp.append(self._msi_table(v))
                self._dc_msi(DEVICE + v, v)
            return
        hv.attach_gipc(DEVICE)
        for v, vm in enumerate(self.vms):
            if self.revision == "2025":
                # DC.iohgatp is Bare on a GIPC device, so DC.msiptp must be Off (spec "Device
                # context fields": "When DC.iohgatp.MODE is Bare, DC.msiptp.MODE must be set
                # to Off"): the VM's G-stage maps its interrupt file, as for a CPU
                vm.gstage.map(IMSIC_GPA + v * 4096, _FILES_SPA + v * 4096, flags=U | R | W | A | D)
            else:
                self.msiptp.append(self._msi_table(v))

    def _dc_msi(self, d: int, v: int) -> None:
        """The MSI doublewords of the DC of ``d`` (VM ``v``'s MSI page table).  The DC
        went from invalid to valid a moment ago and no request has used it since, so
        this is writing them before ``tc`` (no invalidation, as Hypervisor.attach)."""
        ddt = self.hv.ddt
        addr = ddt.dc_addr(d)
        ddt.space.write_u64(addr + 8 * _DC_WORDS.index("msiptp"), self.msiptp[v], ddt.big)
        pattern = 8 * _DC_WORDS.index("msi_addr_pattern")
        ddt.space.write_u64(addr + pattern, self._pattern(v), ddt.big)

    # -- PASIDs ----------------------------------------------------------------------
    def vm_of(self, g: int) -> int:
        """The VM of global PASID ``g``."""
        return g % self.nvms

    def target(self, g: int) -> Tuple[int, int]:
        """(device_id, process_id) of global PASID ``g``."""
        if self.kind == "classic":
            return DEVICE + g % self.nvms, g // self.nvms + 1
        return DEVICE, g + 1

    def bind(self, g: int, vm: Optional[int] = None) -> AddressSpace:
        """Bind global PASID ``g`` (to its VM, or ``vm``) and map its buffer and MSI page."""
        v = self.vm_of(g) if vm is None else vm
        d, pid = self.target(g)
        space = self.hv.bind_pasid(d, pid, self.vms[v])
        self._map(g, v, space)
        return space

    def _map(self, g: int, v: int, space: AddressSpace) -> None:
        d, pid = self.target(g)
        hv = self.hv
        hv.map(d, pid, IOVA_BASE, RAM_GPA, self.pages * self.page_size, R | W)
        # the MSI doorbell: IOVA -> the VM's interrupt-file GPA (not RAM: no hv.map)
        space.table.map(MSI_IOVA, IMSIC_GPA + v * 4096, flags=U | R | W | A | D)
        if self.gipc and self.revision == "2024":
            # [GIPC] 2024 64-byte PC: the VM's MSI page table in the PC.  The PC was
            # written a moment ago and no request has used it since, so writing these
            # doublewords now is writing them before ta (docs/gipc.md "Bind")
            pdt = hv.devices[d].pdt
            assert pdt is not None and pdt.fmt is not None
            addr = pdt.pc_addr(pid)
            off = pdt.fmt.offsets
            pdt.space.write_u64(addr + off["msiptp"], self.msiptp[v], pdt.big)
            pdt.space.write_u64(addr + off["msi_addr_pattern"], self._pattern(v), pdt.big)
        self.spaces[g] = space

    def rebind(self, g: int, vm: int) -> AddressSpace:
        """[GIPC] Move global PASID ``g`` to VM ``vm`` (decision #9) and map its buffer."""
        d, pid = self.target(g)
        space = self.hv.rebind_pasid(d, pid, self.vms[vm])
        self._map(g, vm, space)
        return space

    def unbind(self, g: int) -> None:
        """Unbind global PASID ``g``."""
        d, pid = self.target(g)
        self.hv.unbind_pasid(d, pid)
        del self.spaces[g]

    def reassign(self, v: int, new_vm: int) -> None:
        """classic: give VM ``v``'s function to ``new_vm`` (detach, attach, bind its PASIDs)."""
        d = DEVICE + v
        gs = sorted(g for g in self.spaces if self.vm_of(g) == v)
        self.hv.detach(d)
        for g in gs:
            del self.spaces[g]
        self.hv.attach(d, self.vms[new_vm])
        self._dc_msi(d, new_vm)
        for g in gs:
            _, pid = self.target(g)
            space = self.hv.bind_pasid(d, pid)
            self._map(g, new_vm, space)

    # -- requests ----------------------------------------------------------------------
    def request(self, g: int, page: int, msi: bool = False) -> Request:
        """The request of global PASID ``g`` to ``page`` of its buffer (or an MSI write)."""
        d, pid = self.target(g)
        if msi:
            return Request(d, MSI_IOVA, access=Access.WRITE, process_id=pid, length=4)
        return Request(d, IOVA_BASE + page * self.page_size + 0x40, process_id=pid, length=8)

    def fresh_iommu(self, params: IommuParams) -> Iommu:
        """A new IOMMU with ``params`` over this system's memory (empty caches, the same
        DDT): the same hardware powered up with other cache sizes."""
        io = Iommu(self.mem, capabilities=self.caps, params=self._params(params))
        io.mmio_write(REG.DDTP, self.hv.ddt.ddtp)
        return io


def build(
    kind: str,
    vms: int,
    pasids: int,
    pages: int,
    page_size: int,
    params: Optional[IommuParams] = None,
    bind: Optional[List[int]] = None,
) -> System:
    """A system with the PASIDs ``bind`` (default all ``pasids``) bound and mapped."""
    sysm = System(kind, vms, pasids, pages, page_size, params or IommuParams())
    for g in range(pasids) if bind is None else bind:
        sysm.bind(g)
    return sysm
