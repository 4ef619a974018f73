"""A small hypervisor on top of :class:`~riscv_iommu.host.driver.Driver`.

It owns the host memory allocator, the driver and the DDT, and builds
everything a hypervisor builds for device assignment:

* :class:`Vm`: a VM with its GSCID, its G-stage table (Sv39x4 / Sv48x4) and
  its guest-physical memory (:class:`~riscv_iommu.host.tables.GuestSpace`):
  :meth:`Vm.map_guest_ram` backs guest RAM with host pages; page tables the
  VM owns (the base spec's PDT and first-stage tables, [GIPC] 2025 first-stage
  tables) are allocated in a reserved guest-physical region
  (:data:`TABLE_GPA`, :data:`TABLE_SIZE`).
* :class:`Device`: an assigned device, either *classic* (:meth:`Hypervisor.attach`:
  ``DC.iohgatp`` names the VM, ``DC.fsc`` holds the VM's PDT or one
  first-stage table) or [GIPC] (:meth:`Hypervisor.attach_gipc`: a PDT at SPAs
  whose PCs each name a VM through ``PC.iohgatp``).
* :class:`AddressSpace`: one first-stage table (IOVA -> GPA) with its PSCID,
  for a device's PASID (or for the device when it has no PDT).
* :class:`HostDomain` (``Hypervisor.host_domain``): the host itself as the
  owner of devices (:meth:`Hypervisor.attach_host`): ``DC.iohgatp`` Bare, its
  PDT and first-stage tables in host memory at SPAs, IOVAs mapped to SPAs of
  the host's RAM (:meth:`HostDomain.add_ram`) -- "guest-physical" = SPA.

Guests change their mappings as virtio-iommu ``MAP`` / ``UNMAP`` requests
would: :meth:`Hypervisor.map` / :meth:`Hypervisor.unmap` edit the
first-stage table -- in host memory for GIPC 2024, in the VM's memory for
GIPC 2025 and the base spec -- and issue the invalidations the spec's
guidelines ask for.  Mapping a range that was unmapped needs none (the IOMMU
never caches invalid entries); unmapping does.

The hypervisor reaches the IOMMU only through the driver (registers and
memory).  Like the driver it reads the *platform description* from the model
object: the memory port (``iommu.mem``) and the GIPC bit positions and
revision (``gipc.pc_format(iommu)``, ``iommu.params.gipc_tc_bit``), which
real software gets from a device tree.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

from .. import formats as F
from .. import gipc
from ..iommu import Iommu
from .driver import (
    Command,
    Driver,
    InterruptConfig,
    ats_inval,
    dc_change_commands,
    first_stage_commands,
    g_stage_commands,
    gipc_rebind_commands,
    iodir_inval_pdt,
    iofence_c,
    pc_change_commands,
)
from .tables import (
    RWX,
    A,
    D,
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    PageAllocator,
    PageTable,
    ProcessDirectory,
    R,
    U,
    W,
    X,
)

__all__ = [
    "Hypervisor",
    "HypervisorError",
    "Vm",
    "HostDomain",
    "Device",
    "AddressSpace",
    "TABLE_GPA",
    "TABLE_SIZE",
    "SV39",
    "SV48",
    "SV39X4",
    "SV48X4",
    "R",
    "W",
    "X",
]

#: iosatp.MODE / iohgatp.MODE encodings
SV39 = SV39X4 = 8
SV48 = SV48X4 = 9

#: Guest-physical region where the hypervisor puts tables the VM owns (never guest RAM).
TABLE_GPA = 1 << 40
TABLE_SIZE = 1 << 30

_PAGE = 4096
_PD_PID_WIDTH = {1: 8, 2: 17, 3: 20}
_TC = F.DC_TC


class HypervisorError(ValueError):
    """A request the hypervisor refuses (a virtio-iommu error status)."""


class Vm:
    """A virtual machine: GSCID, G-stage table, guest-physical memory."""

    #: whether the owner's second stage is Bare (True only for :class:`HostDomain`)
    bare = False

    def __init__(self, hv: "Hypervisor", gscid: int, g_mode: int) -> None:
        self.hv = hv
        self.gscid = gscid
        self.gstage = PageTable(HostSpace(hv.mem, hv.alloc), g_mode, stage="g", big=hv.driver.be)
        #: the VM's guest-physical memory; ``alloc`` hands out table pages at TABLE_GPA
        self.memory = GuestSpace(self.gstage, hv.alloc, gpa_base=TABLE_GPA)
        #: guest RAM regions: (gpa, size, page size, spa)
        self.ram: List[Tuple[int, int, int, int]] = []

    @property
    def iohgatp(self) -> int:
        """The ``iohgatp`` value naming this VM (its GSCID and G-stage root)."""
        return self.gstage.satp(self.gscid)

    def map_guest_ram(self, gpa: int, size: int, page_size: int = _PAGE) -> int:
        """Back ``[gpa, gpa + size)`` with new host memory, mapped by G-stage leaves of
        ``page_size`` (4 KiB or a superpage); returns the SPA of ``gpa``.

        The range was not mapped, so no invalidation is needed.
        """
        if page_size not in (_PAGE, 1 << 21, 1 << 30) or gpa % page_size or size % page_size:
            raise HypervisorError("guest RAM must be aligned to its page size")
        if size <= 0 or gpa + size > 1 << self.gstage.geom[3]:
            raise HypervisorError("guest RAM beyond the G-stage's guest-physical address width")
        if gpa < TABLE_GPA + TABLE_SIZE and TABLE_GPA < gpa + size:
            raise HypervisorError("guest RAM must not overlap the table region")
        if any(gpa < g + s and g < gpa + size for g, s, _, _ in self.ram):
            raise HypervisorError("guest RAM overlaps existing RAM")
        spa = self.hv.alloc.alloc(size, page_size)
        for off in range(0, size, page_size):
            self.gstage.map(gpa + off, spa + off, size=page_size, flags=U | RWX | A | D)
        for off in range(0, size, _PAGE):
            self.memory.backing[gpa + off] = spa + off
        self.ram.append((gpa, size, page_size, spa))
        return spa

    def unmap_guest_ram(self, gpa: int, invalidate: bool = True) -> bool:
        """Remove the RAM region that starts at ``gpa`` (e.g. a balloon): clear its G-stage
        leaves, then ``IOTINVAL.GVMA`` per leaf GPA and a fence with ``PR``/``PW``.

        Returns whether the fence completed.  ``invalidate=False`` changes the
        table only (the IOMMU may go on using cached translations until software
        runs :meth:`Driver.g_stage_changed`).
        """
        for region in self.ram:
            if region[0] == gpa:
                break
        else:
            raise HypervisorError(f"no guest RAM region at {gpa:#x}")
        _, size, page_size, _ = region
        leaves = list(range(gpa, gpa + size, page_size))
        for g in leaves:
            self.gstage.unmap(g, page_size)
        for off in range(0, size, _PAGE):
            del self.memory.backing[gpa + off]
        self.ram.remove(region)
        if not invalidate:
            return True
        return self.hv.driver.sync(*g_stage_commands(self.gscid, leaves), pr=True, pw=True)

    def is_ram(self, gpa: int, size: int) -> bool:
        """Whether all of ``[gpa, gpa + size)`` is guest RAM."""
        end = gpa + size
        while gpa < end:
            for g, s, _, _ in self.ram:
                if g <= gpa < g + s:
                    gpa = g + s
                    break
            else:
                return False
        return True

    def spa(self, gpa: int) -> int:
        """The host physical address behind ``gpa``."""
        return self.memory.to_spa(gpa)

    def table_space(self) -> HostSpace:
        """Where the tables this owner's devices use (PDT, first-stage tables) live."""
        return self.memory

    def read(self, gpa: int, size: int) -> bytes:
        """Read guest memory (within one page)."""
        return bytes(self.hv.mem.read(self.spa(gpa), size))

    def write(self, gpa: int, data: bytes) -> None:
        """Write guest memory (within one page)."""
        self.hv.mem.write(self.spa(gpa), data)


class HostDomain(Vm):
    """The host itself as the owner of devices: ``DC.iohgatp`` Bare, GPA = SPA.

    "When ``iohgatp.MODE`` is ``Bare``, second-stage address translation is
    effectively disabled" (DC.msiptp), and the PDT and first-stage table
    addresses a DC and its PCs hold are then SPAs (§ Process to locate the
    Process-context): the host's tables live in host memory
    (``Hypervisor.host``) and a device's IOVAs map to SPAs of the host's RAM.
    There is no GSCID (``gscid`` 0 is the value of a Bare ``iohgatp``; the
    host's invalidations use ``GV`` = 0) and no G-stage table.  ``ram`` holds
    the regions :meth:`add_ram` declared, as ``(spa, size, 4096, spa)``.
    """

    bare = True

    def __init__(self, hv: "Hypervisor") -> None:  # no G-stage table: Vm.__init__ is not run
        self.hv = hv
        self.gscid = 0
        self.ram = []

    @property
    def iohgatp(self) -> int:
        """``iohgatp`` Bare (MODE 0, GSCID 0, PPN 0)."""
        return 0

    def add_ram(self, spa: int, size: int) -> None:
        """Declare ``[spa, spa + size)`` host RAM that host-owned devices may DMA to.

        The range must be page-aligned, below the SPA width
        (``capabilities.PAS``) and outside the allocator's range, where the
        toolkit puts tables (``PageAllocator.base`` upward); RAM regions do not
        overlap.  Nothing is written: host RAM needs no mapping.
        """
        alloc = self.hv.alloc
        if size <= 0 or (spa | size) & (_PAGE - 1):
            raise HypervisorError("host RAM must be page-aligned and non-empty")
        if spa + size > 1 << self.hv.driver.caps.pas:
            raise HypervisorError("host RAM beyond the SPA width (capabilities.PAS)")
        if spa < alloc.limit and alloc.base < spa + size:
            raise HypervisorError(
                f"host RAM must not overlap the toolkit's table memory "
                f"[{alloc.base:#x}, {alloc.limit:#x})"
            )
        if any(spa < g + s and g < spa + size for g, s, _, _ in self.ram):
            raise HypervisorError("host RAM overlaps existing RAM")
        self.ram.append((spa, size, _PAGE, spa))

    def map_guest_ram(self, gpa: int, size: int, page_size: int = _PAGE) -> int:
        """Refused: the host has no G-stage (declare its RAM with :meth:`add_ram`)."""
        raise HypervisorError("the host has no G-stage table: declare host RAM with add_ram")

    def unmap_guest_ram(self, gpa: int, invalidate: bool = True) -> bool:
        """Refused: the host has no G-stage table."""
        raise HypervisorError("the host has no G-stage table")

    def spa(self, gpa: int) -> int:
        """Identity: the host's addresses are SPAs."""
        return gpa

    def table_space(self) -> HostSpace:
        return self.hv.host


class AddressSpace:
    """One first-stage table (IOVA -> GPA of ``vm``) and its PSCID.

    ``mappings`` holds the leaves: IOVA -> (size, GPA, permissions).
    """

    def __init__(self, vm: Vm, pscid: int, table: PageTable) -> None:
        self.vm = vm
        self.pscid = pscid
        self.table = table
        self.mappings: Dict[int, Tuple[int, int, int]] = {}

    @property
    def gscid(self) -> Optional[int]:
        """The GSCID the space's invalidations name (``GV`` = 1), None for the host's
        (second stage Bare: ``GV`` = 0)."""
        return None if self.vm.bare else self.vm.gscid

    def lookup(self, iova: int) -> Optional[int]:
        """The GPA ``iova`` maps to in software's view, or None."""
        for va, (size, gpa, _) in self.mappings.items():
            if va <= iova < va + size:
                return gpa + iova - va
        return None

    def leaves_in(self, iova: int, size: int) -> Iterator[Tuple[int, int, int, int]]:
        """Leaves (iova, size, gpa, perms) that intersect ``[iova, iova + size)``."""
        for va, (sz, gpa, perms) in sorted(self.mappings.items()):
            if va < iova + size and iova < va + sz:
                yield va, sz, gpa, perms


class Device:
    """An assigned device."""

    def __init__(
        self,
        device_id: int,
        gipc_mode: bool,
        vm: Optional[Vm],
        pdt: Optional[ProcessDirectory],
        tc: int,
        ats: bool,
    ) -> None:
        self.device_id = device_id
        #: [GIPC] the DC has ``DC.tc.GIPC`` set: each PASID names its own VM
        self.gipc = gipc_mode
        #: the VM of a classic device (None for GIPC)
        self.vm = vm
        #: the PDT (None for a classic device without PASIDs)
        self.pdt = pdt
        self.tc = tc
        self.ats = ats
        #: address spaces by PASID (None: the device's only one, in ``DC.fsc``)
        self.spaces: Dict[Optional[int], AddressSpace] = {}


class Hypervisor:
    """Owns memory, the allocator and the driver of one IOMMU; builds VMs and devices.

    ``s1_mode`` is the first-stage mode (Sv39/Sv48) of every address space,
    ``g_mode`` the default G-stage mode of VMs.  The remaining arguments go
    to :meth:`Driver.bring_up`.
    """

    def __init__(
        self,
        iommu: Iommu,
        s1_mode: int = SV39,
        g_mode: int = SV39X4,
        ddt_levels: int = 3,
        interrupts: Optional[InterruptConfig] = None,
        big_endian: bool = False,
        alloc_base: int = 0x8000_0000,
    ) -> None:
        self.iommu = iommu
        self.mem = iommu.mem
        self.alloc = PageAllocator(self.mem, base=alloc_base)
        self.driver = Driver(iommu, self.mem, self.alloc)
        caps_needed = [
            "sv39" if s1_mode == SV39 else "sv48",
            "sv39x4" if g_mode == SV39X4 else "sv48x4",
        ]
        self.ddt: DeviceDirectory = self.driver.bring_up(
            ddt_levels=ddt_levels, interrupts=interrupts, big_endian=big_endian, require=caps_needed
        )
        caps = self.driver.caps
        if not (caps.pd8 or caps.pd17 or caps.pd20):
            raise HypervisorError("the IOMMU supports no process-directory mode")
        self.pd_mode = 3 if caps.pd20 else 2 if caps.pd17 else 1
        self.s1_mode = s1_mode
        self.g_mode = g_mode
        self.host = HostSpace(self.mem, self.alloc)
        #: [GIPC] PC format and DC.tc.GIPC mask (None / 0 without capabilities.GIPC)
        self.gipc_fmt: Optional[gipc.PcFormat] = gipc.pc_format(iommu) if caps.gipc else None
        self.gipc_tc = (1 << iommu.params.gipc_tc_bit) if caps.gipc else 0
        self.vms: Dict[int, Vm] = {}
        #: the host itself as a device owner (attach_host); not in ``vms`` (no GSCID)
        self.host_domain = HostDomain(self)
        self.devices: Dict[int, Device] = {}
        self._next_gscid = 1
        self._next_pscid = 1

    # -- VMs ---------------------------------------------------------------------
    def create_vm(self, gscid: Optional[int] = None, g_mode: Optional[int] = None) -> Vm:
        """A new VM with an empty G-stage table (``gscid`` None: the next free one)."""
        if gscid is None:
            while self._next_gscid in self.vms:
                self._next_gscid += 1
            gscid = self._next_gscid
        if gscid in self.vms:
            raise HypervisorError(f"GSCID {gscid} is in use")
        mode = self.g_mode if g_mode is None else g_mode
        if not getattr(self.driver.caps, "sv39x4" if mode == SV39X4 else "sv48x4"):
            raise HypervisorError(f"G-stage mode {mode} is not supported")
        vm = Vm(self, gscid, mode)
        self.vms[gscid] = vm
        return vm

    # -- devices -----------------------------------------------------------------
    def _tc(self, ats: bool, pri: bool) -> int:
        tc = _TC.V.mask
        if ats:
            tc |= _TC.EN_ATS.mask
        if pri:
            tc |= _TC.EN_PRI.mask | _TC.PRPR.mask
        if self.driver.be:
            tc |= _TC.SBE.mask  # first-stage tables and PDT in the same byte order as the rest
        return tc

    def _new_space(self, vm: Vm, in_host: bool) -> AddressSpace:
        space = self.host if in_host else vm.table_space()
        table = PageTable(space, self.s1_mode, stage="s", big=self.driver.be)
        pscid = self._next_pscid
        self._next_pscid += 1
        return AddressSpace(vm, pscid, table)

    def _write_dc(
        self,
        device_id: int,
        tc: int,
        iohgatp: int,
        ta: int,
        fsc: int,
        msi: Optional[Tuple[int, int, int]] = None,
    ) -> None:
        """Write a DC with ``V`` = 0 first, then ``tc`` (``V`` = 1) last."""
        msiptp, mask, pattern = msi or (0, 0, 0)
        addr = self.ddt.set_dc(
            device_id,
            tc=tc & ~_TC.V.mask,
            iohgatp=iohgatp,
            ta=ta,
            fsc=fsc,
            msiptp=msiptp,
            msi_addr_mask=mask,
            msi_addr_pattern=pattern,
        )
        self.ddt.space.write_u64(addr, tc, self.ddt.big)

    def attach(
        self,
        device_id: int,
        vm: Vm,
        pasids: bool = True,
        ats: bool = False,
        pri: bool = False,
        first_stage: bool = True,
        tc: int = 0,
        msi: Optional[Tuple[int, int, int]] = None,
    ) -> Device:
        """Assign ``device_id`` to ``vm`` the base spec's way: ``DC.iohgatp`` = the VM.

        ``pasids``: ``DC.fsc`` holds a PDT in the VM's memory (PASIDs are added
        with :meth:`bind_pasid`; requests without a PASID see GPAs); otherwise it
        holds one first-stage table (``iosatp``, the address space of PASID None).
        ``first_stage=False``: ``DC.fsc`` is Bare (no PDT, no first-stage table):
        the device's addresses are GPAs, translated by the G-stage alone.
        ``tc`` adds ``DC.tc`` bits (``T2GPA``, ``DTF``, ``SADE``, ``GADE``...);
        ``msi`` = (``msiptp``, ``msi_addr_mask``, ``msi_addr_pattern``) fills the
        MSI fields of an extended DC.  A device already attached is detached
        first.  A DC going from invalid to valid needs no invalidation.
        """
        if msi is not None and not self.ddt.msi_flat:
            raise HypervisorError("MSI fields need extended DCs (capabilities.MSI_FLAT)")
        if msi is not None and vm.bare:
            # DC.msiptp: "When DC.iohgatp.MODE is Bare, the msiptp.MODE must be set to Off"
            raise HypervisorError("a host-owned device has no MSI page table (iohgatp Bare)")
        if device_id in self.devices:
            self.detach(device_id)
        tc |= self._tc(ats, pri)
        if not first_stage:
            dev = Device(device_id, False, vm, None, tc, ats)
            self._write_dc(device_id, tc, vm.iohgatp, 0, 0, msi)
        elif pasids:
            pdt = ProcessDirectory(vm.table_space(), self.pd_mode, big=self.driver.be)
            dev = Device(device_id, False, vm, pdt, tc | _TC.PDTV.mask, ats)
            self._write_dc(device_id, dev.tc, vm.iohgatp, 0, pdt.pdtp(), msi)
        else:
            space = self._new_space(vm, in_host=False)
            dev = Device(device_id, False, vm, None, tc, ats)
            dev.spaces[None] = space
            ta = F.DC_TA.encode(PSCID=space.pscid)
            self._write_dc(device_id, tc, vm.iohgatp, ta, space.table.satp(), msi)
        self.devices[device_id] = dev
        return dev

    def attach_host(
        self,
        device_id: int,
        pasids: bool = True,
        ats: bool = False,
        pri: bool = False,
        first_stage: bool = True,
        tc: int = 0,
    ) -> Device:
        """Attach ``device_id`` to the host itself (:attr:`host_domain`): ``DC.iohgatp`` Bare.

        ``pasids``: ``DC.fsc`` holds a PDT in host memory (``pdtp`` an SPA);
        PASIDs bound with :meth:`bind_pasid` get first-stage tables in host
        memory, and :meth:`map` maps their IOVAs to SPAs of the host's RAM
        (:meth:`HostDomain.add_ram`).  ``DC.tc.DPE`` is 0, so a request without
        a PASID is not translated at all (first stage and second stage Bare: its
        address is the SPA); ``tc`` with ``DC.tc.DPE`` makes it PASID 0 instead.
        ``pasids=False``: ``DC.fsc`` holds one first-stage table (``iosatp``,
        ``DC.ta.PSCID``), the address space of PASID None.
        ``first_stage=False``: ``DC.fsc`` Bare: pass-through, IOVA = SPA.
        ``tc`` adds ``DC.tc`` bits as for :meth:`attach`.  The same as
        ``attach(device_id, hv.host_domain, ...)``.
        """
        return self.attach(device_id, self.host_domain, pasids, ats, pri, first_stage, tc)

    def attach_gipc(
        self, device_id: int, ats: bool = False, pri: bool = False, tc: int = 0
    ) -> Device:
        """[GIPC] Assign ``device_id`` with ``DC.tc.GIPC``: a PDT at SPAs, one VM per PASID.

        ``DC.iohgatp`` is Bare and ``DC.tc.DPE`` = 1, so a request without a
        PASID is treated as PASID 0 and faults unless PASID 0 is bound: the
        device has no pass-through path to host memory.  ``tc`` adds ``DC.tc``
        bits (``DTF``, ``T2GPA``...).
        """
        fmt = self.gipc_fmt
        if fmt is None:
            raise HypervisorError("the IOMMU has no capabilities.GIPC")
        if device_id in self.devices:
            self.detach(device_id)
        pdt = ProcessDirectory(self.host, self.pd_mode, big=self.driver.be, fmt=fmt)
        tc |= self._tc(ats, pri) | _TC.PDTV.mask | _TC.DPE.mask | self.gipc_tc
        dev = Device(device_id, True, None, pdt, tc, ats)
        self._write_dc(device_id, tc, 0, 0, pdt.pdtp())
        self.devices[device_id] = dev
        return dev

    def detach(self, device_id: int) -> bool:
        """Invalidate the DC of ``device_id`` ("Changing device directory table entry";
        [GIPC] also the GSCIDs of its PASIDs' VMs); with ATS, invalidate the device's
        ATC; fence with ``PR``/``PW``."""
        dev = self._device(device_id)
        ok = True
        if dev.ats:
            # while the DC is still valid: the device's Invalidation Completion is
            # accepted only with DC.tc.EN_ATS = 1 (an invalid DC makes it unsupported)
            ok = self.driver.sync(iofence_c(), ats_inval(device_id, None, 0, None, global_=True))
        old = self.driver.read_dc(device_id)
        self.ddt.set_dc(device_id, tc=0)
        gscids = [s.vm.gscid for s in dev.spaces.values() if not s.vm.bare]
        cmds = dc_change_commands(device_id, old, gscids, self.gipc_tc)
        del self.devices[device_id]
        return self.driver.sync(*cmds, pr=True, pw=True) and ok

    def _device(self, device_id: int) -> Device:
        dev = self.devices.get(device_id)
        if dev is None:
            raise HypervisorError(f"device {device_id:#x} is not attached")
        return dev

    # -- PASIDs ------------------------------------------------------------------
    def _pid_width(self, dev: Device) -> int:
        fmt = self.gipc_fmt if dev.gipc else None
        return fmt.pid_width[self.pd_mode] if fmt is not None else _PD_PID_WIDTH[self.pd_mode]

    def _write_pc(self, dev: Device, pasid: int, space: AddressSpace, iohgatp: int) -> None:
        """Write the PC with ``ta.V`` = 0, then ``ta`` (``V`` = 1, the PSCID) last."""
        pdt = dev.pdt
        assert pdt is not None
        addr = pdt.set_pc(pasid, fsc=space.table.satp(), ta=0, iohgatp=iohgatp)
        off = pdt.fmt.offsets["ta"] if pdt.fmt is not None else 0
        pdt.space.write_u64(addr + off, F.PC_TA.encode(V=1, PSCID=space.pscid), pdt.big)

    def bind_pasid(self, device_id: int, pasid: int, vm: Optional[Vm] = None) -> AddressSpace:
        """Give PASID ``pasid`` of ``device_id`` a new, empty address space.

        Classic device: in its VM (``vm`` None or the same VM); the first-stage
        table lives in the VM's memory.  [GIPC] device: in ``vm``, ``PC.iohgatp``
        = ``vm``; the first-stage table lives in host memory (2024) or in the
        VM's memory (2025); then ``IODIR.INVAL_PDT`` and ``IOFENCE.C`` (the bind
        sequence of docs/gipc.md).
        """
        dev = self._device(device_id)
        if dev.pdt is None:
            raise HypervisorError("the device was attached without a PDT")
        if pasid in dev.spaces:
            raise HypervisorError(f"PASID {pasid:#x} is already bound")
        if pasid >> self._pid_width(dev):
            raise HypervisorError(f"PASID {pasid:#x} is wider than the PDT allows")
        if dev.gipc:
            if vm is None or vm.bare:
                raise HypervisorError("a GIPC bind names the VM")
            assert self.gipc_fmt is not None
            space = self._new_space(vm, in_host=self.gipc_fmt.s1_at_spa)
            self._write_pc(dev, pasid, space, vm.iohgatp)
            dev.spaces[pasid] = space
            self.driver.sync(iodir_inval_pdt(device_id, pasid))
            return space
        assert dev.vm is not None
        if vm is not None and vm is not dev.vm:
            raise HypervisorError("a classic device's PASIDs belong to its VM")
        space = self._new_space(dev.vm, in_host=False)
        self._write_pc(dev, pasid, space, 0)
        dev.spaces[pasid] = space
        return space

    def _ats_cmds(self, dev: Device, pasid: Optional[int]) -> List[Command]:
        if not dev.ats:
            return []
        return [iofence_c(), ats_inval(dev.device_id, pasid, 0, None)]

    def unbind_pasid(self, device_id: int, pasid: int, invalidate: bool = True) -> bool:
        """Invalidate the PC of ``pasid`` ("Changing process directory table entry",
        with the PC's VM GSCID), invalidate the device's ATC for the PASID (ATS),
        fence with ``PR``/``PW``; the address space is gone.  ``invalidate=False``
        clears the PC only (software runs :meth:`Driver.pc_changed` later)."""
        dev = self._device(device_id)
        space = dev.spaces.pop(pasid, None)
        if space is None or dev.pdt is None:
            raise HypervisorError(f"PASID {pasid:#x} is not bound")
        dev.pdt.clear_pc(pasid)
        if not invalidate:
            return True
        cmds = pc_change_commands(device_id, pasid, space.pscid, space.gscid)
        return self.driver.sync(*cmds, *self._ats_cmds(dev, pasid), pr=True, pw=True)

    def rebind_pasid(self, device_id: int, pasid: int, new_vm: Vm) -> AddressSpace:
        """[GIPC] Move ``pasid`` to ``new_vm`` with a new, empty address space.

        The PC is rewritten (``V`` = 0, the new ``fsc``/``iohgatp``, then ``V`` = 1),
        then decision #9: ``IODIR.INVAL_PDT``, ``IOTINVAL.VMA`` (``GV`` = 1, old
        GSCID, ``PSCV`` = 1, old PSCID) and ``IOTINVAL.GVMA`` (``GV`` = 1, old
        GSCID); with ATS, ``ATS.INVAL`` for the PASID; a fence with ``PR``/``PW``.
        """
        dev = self._device(device_id)
        if not dev.gipc or new_vm.bare:
            raise HypervisorError("only a GIPC device's PASIDs can move between VMs")
        old = dev.spaces.get(pasid)
        if old is None:
            raise HypervisorError(f"PASID {pasid:#x} is not bound")
        assert self.gipc_fmt is not None
        space = self._new_space(new_vm, in_host=self.gipc_fmt.s1_at_spa)
        self._write_pc(dev, pasid, space, new_vm.iohgatp)
        dev.spaces[pasid] = space
        cmds = gipc_rebind_commands(device_id, pasid, old.vm.gscid, old.pscid)
        self.driver.sync(*cmds, *self._ats_cmds(dev, pasid), pr=True, pw=True)
        return space

    # -- virtio-iommu MAP / UNMAP ------------------------------------------------
    def space(self, device_id: int, pasid: Optional[int]) -> AddressSpace:
        """The address space of ``pasid`` (None: the device's ``DC.fsc`` table)."""
        sp = self._device(device_id).spaces.get(pasid)
        if sp is None:
            raise HypervisorError(f"device {device_id:#x} PASID {pasid} has no address space")
        return sp

    def map(
        self,
        device_id: int,
        pasid: Optional[int],
        iova: int,
        gpa: int,
        size: int,
        perms: int = R | W,
    ) -> None:
        """virtio-iommu ``MAP``: IOVA ``[iova, iova + size)`` -> the guest's GPAs.

        ``perms`` is R / W / X (masks from this module).  The GPAs must be the
        VM's RAM and the IOVAs unmapped, else :class:`HypervisorError`.  Leaves
        are the largest pages (1 GiB, 2 MiB, 4 KiB) alignment allows.  No
        invalidation: only invalid entries changed.
        """
        sp = self.space(device_id, pasid)
        if size <= 0 or (iova | gpa | size) & (_PAGE - 1):
            raise HypervisorError("MAP needs a page-aligned, non-empty range")
        if perms & ~(R | W | X) or not perms or (perms & W and not perms & R):
            raise HypervisorError("MAP permissions must be R, RW, RX or RWX (W needs R)")
        if iova + size > 1 << (sp.table.geom[3] - 1):
            raise HypervisorError("IOVA beyond the first-stage address width")
        if not sp.vm.is_ram(gpa, size):
            if sp.vm.bare:
                raise HypervisorError("MAP of an SPA range that is not the host's RAM")
            raise HypervisorError("MAP of a GPA range that is not the VM's RAM")
        if any(True for _ in sp.leaves_in(iova, size)):
            raise HypervisorError("MAP overlaps an existing mapping")
        off = 0
        while off < size:
            for level, leaf in ((2, 1 << 30), (1, 1 << 21), (0, _PAGE)):
                va, pa = iova + off, gpa + off
                if va % leaf or pa % leaf or size - off < leaf:
                    continue
                slot = sp.table.pte_addr(va, level)
                if level and sp.table.space.read_u64(slot, sp.table.big):
                    continue  # a (now empty) lower-level table sits there: use smaller pages
                sp.table.map(va, pa, size=leaf, flags=perms | U | A | D)
                sp.mappings[va] = (leaf, pa, perms)
                off += leaf
                break

    def unmap(
        self, device_id: int, pasid: Optional[int], iova: int, size: int, invalidate: bool = True
    ) -> bool:
        """virtio-iommu ``UNMAP``: remove every mapping inside ``[iova, iova + size)``.

        A mapping only partly inside is an error (nothing is changed).  The
        leaves are cleared, then ``IOTINVAL.VMA`` (``GV`` = 1 with the VM's GSCID,
        ``PSCV`` = 1 with the address space's PSCID, ``AV`` = 1 per leaf), with
        ATS an ``IOFENCE.C`` and ``ATS.INVAL`` for the device, and a fence with
        ``PR`` (and ``PW`` if a leaf was writable).  Returns whether the fence
        completed (False: waiting for the device's invalidation completion).
        ``invalidate=False`` clears the leaves only (software runs
        :meth:`Driver.first_stage_changed` later).
        """
        dev = self._device(device_id)
        sp = self.space(device_id, pasid)
        leaves = list(sp.leaves_in(iova, size))
        for va, sz, _, _ in leaves:
            if va < iova or va + sz > iova + size:
                raise HypervisorError(f"UNMAP would split the mapping at {va:#x}")
        if not leaves:
            return True
        for va, sz, _, _ in leaves:
            sp.table.unmap(va, sz)
            del sp.mappings[va]
        if not invalidate:
            return True
        cmds = first_stage_commands(sp.gscid, sp.pscid, [va for va, _, _, _ in leaves])
        if dev.ats:
            cmds.append(iofence_c())
            if len(leaves) <= 8:
                cmds += [ats_inval(device_id, pasid, va, sz) for va, sz, _, _ in leaves]
            else:
                cmds.append(ats_inval(device_id, pasid, 0, None))
        pw = any(perms & W for _, _, _, perms in leaves)
        return self.driver.sync(*cmds, pr=True, pw=pw)
