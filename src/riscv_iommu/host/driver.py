"""A RISC-V IOMMU driver: what host software does, through registers and memory only.

The driver talks to the IOMMU exactly as real software does: it reads and
writes registers with :meth:`Iommu.mmio_read` / :meth:`Iommu.mmio_write` and
reads and writes memory through the memory port.  It never looks inside the
model (the only exception is the *platform description* -- where the
proposed GIPC capability bit sits -- which real software gets from a device
tree or ACPI table, and which the driver takes from ``iommu.caps.gipc_bit``
unless told otherwise).

Every sequence follows the spec's "Software guidelines"
(``iommu_sw_guidelines.adoc``):

* :meth:`Driver.bring_up` is "Guidelines for initialization", step by step;
* :meth:`Driver.submit` / :meth:`Driver.fence` / :meth:`Driver.sync` drive
  the command queue, :meth:`Driver.faults` / :meth:`Driver.page_requests`
  the fault and page-request queues as "Guidelines for handling interrupts"
  says;
* one method per recipe of "Guidelines for invalidations":
  :meth:`Driver.dc_changed`, :meth:`Driver.ddt_nonleaf_changed`,
  :meth:`Driver.pc_changed`, :meth:`Driver.pdt_nonleaf_changed`,
  :meth:`Driver.first_stage_changed`, :meth:`Driver.g_stage_changed`,
  :meth:`Driver.msi_pte_changed`, and [GIPC] :meth:`Driver.gipc_rebind`
  (design decision #9);
* :meth:`Driver.ats_invalidate` (``ATS.INVAL``, after ordering the IOMMU's
  own invalidations first) and :meth:`Driver.respond` (``ATS.PRGR``).

Each recipe also exists as a pure command builder (``*_commands``), so a
caller can batch several recipes behind one ``IOFENCE.C``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from .. import formats as F
from ..capabilities import IGS, Capabilities
from ..commands import OPCODE
from ..iommu import Iommu
from ..registers import REG
from ..types import FaultRecord, PageRequest
from .tables import DeviceDirectory, PageAllocator

__all__ = [
    "Command",
    "DeviceContext",
    "Driver",
    "DriverError",
    "InterruptConfig",
    "PRG_SUCCESS",
    "PRG_INVALID_REQUEST",
    "PRG_RESPONSE_FAILURE",
    "iotinval_vma",
    "iotinval_gvma",
    "iofence_c",
    "iodir_inval_ddt",
    "iodir_inval_pdt",
    "ats_inval",
    "ats_prgr",
    "ats_range",
    "dc_change_commands",
    "pc_change_commands",
    "first_stage_commands",
    "g_stage_commands",
    "msi_pte_commands",
    "gipc_rebind_commands",
]

#: "Page Request Group Response" codes (PCIe)
PRG_SUCCESS = 0
PRG_INVALID_REQUEST = 1
PRG_RESPONSE_FAILURE = 0xF

#: An address-specific recipe with more addresses than this invalidates the whole tag.
MAX_ADDRESS_INVALIDATIONS = 32

_CQ_ENTRY = 16
_FQ_ENTRY = F.FAULT_RECORD_SIZE
_PQ_ENTRY = 16
_MODE_SHIFT = 60
_OPCODE_NAMES = {1: "IOTINVAL", 2: "IOFENCE.C", 3: "IODIR", 4: "ATS"}

Addresses = Union[None, int, Sequence[int]]


class DriverError(RuntimeError):
    """The IOMMU refused something the driver asked for.

    ``cqcsr`` and ``cqh`` hold the command-queue state when the error is a
    command-queue error (``cmd_ill``, ``cqmf``, ``cmd_to``), and ``command``
    the command at ``cqh``; they are None otherwise.
    """

    def __init__(
        self,
        message: str,
        cqcsr: Optional[int] = None,
        cqh: Optional[int] = None,
        command: Optional["Command"] = None,
    ) -> None:
        super().__init__(message)
        self.cqcsr = cqcsr
        self.cqh = cqh
        self.command = command


class Command(NamedTuple):
    """A 16-byte command: its two doublewords."""

    d0: int
    d1: int = 0

    def __repr__(self) -> str:
        name = _OPCODE_NAMES.get(F.CMD.opcode.get(self.d0), "?")
        return f"Command({name}, func3={F.CMD.func3.get(self.d0)}, {self.d0:#x}, {self.d1:#x})"


class DeviceContext(NamedTuple):
    """The doublewords of a device context, as read from the DDT."""

    tc: int
    iohgatp: int
    ta: int
    fsc: int
    msiptp: int = 0
    msi_addr_mask: int = 0
    msi_addr_pattern: int = 0


@dataclass(frozen=True)
class InterruptConfig:
    """How the IOMMU should interrupt the driver.

    ``wsi`` selects wire-signaled interrupts (else MSIs).  ``civ``, ``fiv``,
    ``pmiv``, ``piv`` are the wanted vectors of the CQ, FQ, HPM and PQ
    causes (folded onto the number of vectors the IOMMU has).  For MSIs,
    vector ``V`` writes ``msi_data + V`` to ``msi_base + 4 * V``
    (``msi_base`` None: a page the driver allocates); ``masked`` sets
    every ``msi_vec_ctl.M``.
    """

    wsi: bool = False
    civ: int = 0
    fiv: int = 1
    pmiv: int = 2
    piv: int = 3
    msi_base: Optional[int] = None
    msi_data: int = 0x100
    masked: bool = False


# ---------------------------------------------------------------------------
# command builders (spec "Command-Queue (CQ)")
# ---------------------------------------------------------------------------
def iotinval_vma(
    gscid: Optional[int] = None,
    pscid: Optional[int] = None,
    addr: Optional[int] = None,
    s: bool = False,
) -> Command:
    """``IOTINVAL.VMA``: ``GV``/``PSCV``/``AV`` are 1 when ``gscid``/``pscid``/``addr`` are given.

    ``s`` (the address-range extension) marks ``addr`` as NAPOT-encoded.
    """
    d0 = F.CMD_IOTINVAL0.encode(
        opcode=OPCODE.IOTINVAL,
        func3=0,
        AV=int(addr is not None),
        PSCID=pscid or 0,
        PSCV=int(pscid is not None),
        GV=int(gscid is not None),
        GSCID=gscid or 0,
    )
    return Command(d0, F.CMD_IOTINVAL1.encode(S=int(s), ADDR=(addr or 0) >> 12))


def iotinval_gvma(gscid: Optional[int] = None, addr: Optional[int] = None) -> Command:
    """``IOTINVAL.GVMA``: ``GV``/``AV`` are 1 when ``gscid``/``addr`` (a GPA) are given."""
    d0 = F.CMD_IOTINVAL0.encode(
        opcode=OPCODE.IOTINVAL,
        func3=1,
        AV=int(addr is not None),
        GV=int(gscid is not None),
        GSCID=gscid or 0,
    )
    return Command(d0, F.CMD_IOTINVAL1.encode(ADDR=(addr or 0) >> 12))


def iofence_c(
    addr: Optional[int] = None, data: int = 0, pr: bool = False, pw: bool = False, wsi: bool = False
) -> Command:
    """``IOFENCE.C``; ``AV`` = 1 when ``addr`` (4-byte aligned) is given."""
    if addr is not None and addr & 3:
        raise ValueError("IOFENCE.C address must be 4-byte aligned")
    d0 = F.CMD_IOFENCE0.encode(
        opcode=OPCODE.IOFENCE,
        func3=0,
        AV=int(addr is not None),
        WSI=int(wsi),
        PR=int(pr),
        PW=int(pw),
        DATA=data,
    )
    return Command(d0, F.CMD_IOFENCE1.encode(ADDR=(addr or 0) >> 2))


def iodir_inval_ddt(device_id: Optional[int] = None) -> Command:
    """``IODIR.INVAL_DDT``: one device (``DV`` = 1) or all (``device_id`` None)."""
    d0 = F.CMD_IODIR0.encode(
        opcode=OPCODE.IODIR, func3=0, DV=int(device_id is not None), DID=device_id or 0
    )
    return Command(d0)


def iodir_inval_pdt(device_id: int, process_id: int) -> Command:
    """``IODIR.INVAL_PDT`` for one process context (``DV`` = 1)."""
    d0 = F.CMD_IODIR0.encode(opcode=OPCODE.IODIR, func3=1, PID=process_id, DV=1, DID=device_id)
    return Command(d0)


def _ats0(func3: int, device_id: int, pasid: Optional[int]) -> int:
    seg = device_id >> 16
    return F.CMD_ATS0.encode(
        opcode=OPCODE.ATS,
        func3=func3,
        PID=pasid or 0,
        PV=int(pasid is not None),
        DSV=int(seg != 0),
        RID=device_id & 0xFFFF,
        DSEG=seg,
    )


def ats_range(addr: int = 0, size: Optional[int] = None) -> Tuple[int, bool]:
    """The PCIe ATS "Invalidation Request" address and S bit for a range.

    ``size`` None means every address (S = 1, address 0x7FFF_FFFF_FFFF_F000);
    otherwise a power of two >= 4 KiB, with ``addr`` aligned to it.
    """
    if size is None:
        return ((1 << 63) - 1) & ~0xFFF, True
    if size < 4096 or size & (size - 1) or addr % size:
        raise ValueError("ATS invalidation size must be a power of two >= 4 KiB, addr aligned")
    if size == 4096:
        return addr, False
    return addr | ((size >> 1) - 1) & ~0xFFF, True


def ats_inval(
    device_id: int,
    pasid: Optional[int] = None,
    addr: int = 0,
    size: Optional[int] = 4096,
    global_: bool = False,
) -> Command:
    """``ATS.INVAL`` to ``device_id`` (``DSV``/``DSEG`` from its segment bits 23:16)."""
    a, s = ats_range(addr, size)
    d1 = F.ATS_INVAL_PAYLOAD.encode(G=int(global_), S=int(s), ADDR=a >> 12)
    return Command(_ats0(0, device_id, pasid), d1)


def ats_prgr(
    device_id: int, prg_index: int, code: int = PRG_SUCCESS, pasid: Optional[int] = None
) -> Command:
    """``ATS.PRGR``: a "Page Request Group Response" to ``device_id``."""
    d1 = F.ATS_PRGR_PAYLOAD.encode(PRGI=prg_index, ResponseCode=code)
    return Command(_ats0(1, device_id, pasid), d1)


# ---------------------------------------------------------------------------
# invalidation recipes (spec "Guidelines for invalidations"), as command lists
# ---------------------------------------------------------------------------
def _mode(value: int) -> int:
    return value >> _MODE_SHIFT


def _addr_list(addr: Addresses) -> Optional[List[int]]:
    """None: no address (AV = 0); else the addresses, None too when there are too many."""
    if addr is None:
        return None
    addrs = [addr] if isinstance(addr, int) else list(addr)
    if len(addrs) > MAX_ADDRESS_INVALIDATIONS:
        return None
    return addrs


def dc_change_commands(
    device_id: int, old: DeviceContext, gscids: Iterable[int] = (), gipc_tc: int = 0
) -> List[Command]:
    """ "Changing device directory table entry": the commands for a changed leaf DC.

    The tests are on the *old* DC.  [GIPC] when the old DC had ``DC.tc.GIPC``
    set (``gipc_tc`` is that bit's mask), its PCs' ``iohgatp`` name other
    VMs: ``gscids`` lists them and each gets the ``GV`` = 1 pair too.
    """
    cmds = [iodir_inval_ddt(device_id)]
    if _mode(old.iohgatp):
        g = F.IOHGATP.GSCID.get(old.iohgatp)
        cmds += [iotinval_vma(gscid=g), iotinval_gvma(gscid=g)]
    elif old.tc & F.DC_TC.PDTV.mask:
        cmds.append(iotinval_vma())
    elif _mode(old.fsc):
        cmds.append(iotinval_vma(pscid=F.DC_TA.PSCID.get(old.ta)))
    if old.tc & gipc_tc:
        for g in sorted(set(gscids)):
            cmds += [iotinval_vma(gscid=g), iotinval_gvma(gscid=g)]
    return cmds


def pc_change_commands(
    device_id: int, process_id: int, pscid: int, gscid: Optional[int] = None
) -> List[Command]:
    """ "Changing process directory table entry": ``gscid`` is ``DC.iohgatp.GSCID``
    (None when ``DC.iohgatp`` is Bare); [GIPC] the PC's own ``iohgatp.GSCID``."""
    return [iodir_inval_pdt(device_id, process_id), iotinval_vma(gscid=gscid, pscid=pscid)]


def first_stage_commands(
    gscid: Optional[int], pscid: Optional[int], addr: Addresses = None
) -> List[Command]:
    """ "Changing first-stage page table entry": ``IOTINVAL.VMA`` with ``GV`` = 1 when the
    second stage is not Bare (``gscid``), ``PSCV`` = 1 unless ``pscid`` is None (a global
    mapping changed), one command per changed leaf address (``AV`` = 1), or ``AV`` = 0."""
    addrs = _addr_list(addr)
    if addrs is None:
        return [iotinval_vma(gscid=gscid, pscid=pscid)]
    return [iotinval_vma(gscid=gscid, pscid=pscid, addr=a & ~0xFFF) for a in addrs]


def g_stage_commands(
    gscid: int, gpa: Addresses = None, device_ids: Iterable[int] = ()
) -> List[Command]:
    """ "Changing second-stage page table entry": ``IOTINVAL.GVMA`` ``GV`` = 1 per changed
    leaf GPA (``AV`` = 1), or ``AV`` = 0 for a non-leaf change; then ``IODIR.INVAL_DDT``
    for each device whose DC holds a guest-PPN the change affects."""
    gpas = _addr_list(gpa)
    if gpas is None:
        cmds = [iotinval_gvma(gscid=gscid)]
    else:
        cmds = [iotinval_gvma(gscid=gscid, addr=g & ~0xFFF) for g in gpas]
    return cmds + [iodir_inval_ddt(d) for d in device_ids]


def msi_pte_commands(gscid: int, addr: Optional[int] = None) -> List[Command]:
    """ "Changing MSI page table entry": ``IOTINVAL.GVMA`` ``GV`` = 1, ``AV`` = 1 with the
    untranslated MSI address, or ``AV`` = 0 for the whole MSI page table."""
    return [iotinval_gvma(gscid=gscid, addr=None if addr is None else addr & ~0xFFF)]


def gipc_rebind_commands(
    device_id: int, process_id: int, old_gscid: int, old_pscid: Optional[int] = None
) -> List[Command]:
    """[GIPC] decision #9: after changing ``PC.iohgatp``: ``IODIR.INVAL_PDT`` for the PID,
    then ``IOTINVAL.VMA`` and ``IOTINVAL.GVMA`` with ``GV`` = 1 for the old GSCID
    (``PSCV`` = 1 with ``old_pscid`` keeps the VM's other address spaces cached)."""
    return [
        iodir_inval_pdt(device_id, process_id),
        iotinval_vma(gscid=old_gscid, pscid=old_pscid),
        iotinval_gvma(gscid=old_gscid),
    ]


# ---------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------
def _order(big: bool) -> Any:
    return "big" if big else "little"


class Driver:
    """Host driver of one IOMMU.

    ``iommu`` is reached only through ``mmio_read``/``mmio_write``; ``mem``
    is the memory port shared with it; ``alloc`` hands out zeroed memory.
    ``poll_limit`` bounds every polling loop (a real driver would time out
    the same way).  ``gipc_bit`` is the platform's ``capabilities.GIPC``
    position (None: ``iommu.caps.gipc_bit``).
    """

    def __init__(
        self,
        iommu: Iommu,
        mem: Any,
        alloc: PageAllocator,
        poll_limit: int = 1000,
        gipc_bit: Optional[int] = None,
    ) -> None:
        self.iommu = iommu
        self.mem = mem
        self.alloc = alloc
        self.poll_limit = poll_limit
        if gipc_bit is None:
            gipc_bit = iommu.caps.gipc_bit
        self.gipc_bit: int = gipc_bit
        #: capabilities as read from the register (set by bring_up)
        self.caps: Capabilities = Capabilities()
        #: fctl.BE: byte order of queues, DDT, G-stage and MSI tables
        self.be = False
        #: number of interrupt vectors found in icvec
        self.vectors = 1
        #: ddtp.iommu_mode values the IOMMU accepted
        self.ddtp_modes: Tuple[int, ...] = ()
        #: the DDT (set by bring_up)
        self.ddt: Optional[DeviceDirectory] = None
        #: MSI (address, data) per vector (MSI interrupts only)
        self.msi_targets: List[Tuple[int, int]] = []
        self.cq_base = self.fq_base = self.pq_base = 0
        self.cq_entries = self.fq_entries = self.pq_entries = 0
        self._cqt = 0
        #: every command submitted, in order (the driver's own log)
        self.submitted: List[Command] = []
        self._flag = 0
        self._token = 0
        #: counters of queue errors seen and cleared by faults() / page_requests()
        self.fq_overflows = 0
        self.fq_memory_faults = 0
        self.pq_overflows = 0
        self.pq_memory_faults = 0

    # -- registers ---------------------------------------------------------
    def rd32(self, offset: int) -> int:
        """Read a 32-bit register."""
        return int(self.iommu.mmio_read(offset, 4))

    def wr32(self, offset: int, value: int) -> None:
        """Write a 32-bit register."""
        self.iommu.mmio_write(offset, value, 4)

    def rd64(self, offset: int) -> int:
        """Read a 64-bit register."""
        return int(self.iommu.mmio_read(offset, 8))

    def wr64(self, offset: int, value: int) -> None:
        """Write a 64-bit register."""
        self.iommu.mmio_write(offset, value, 8)

    def _poll(self, done: Callable[[], bool]) -> bool:
        for _ in range(self.poll_limit):
            if done():
                return True
        return False

    # -- memory ------------------------------------------------------------
    def _read(self, addr: int, size: int) -> int:
        return int.from_bytes(self.mem.read(addr, size), _order(self.be))

    def _write(self, addr: int, value: int, size: int) -> None:
        self.mem.write(addr, value.to_bytes(size, _order(self.be)))

    # -- initialization ----------------------------------------------------
    def bring_up(
        self,
        ddt_levels: Optional[int] = 3,
        cq_log2: int = 8,
        fq_log2: int = 8,
        pq_log2: Optional[int] = 8,
        interrupts: Optional[InterruptConfig] = None,
        big_endian: bool = False,
        require: Iterable[str] = (),
        device_id_width: int = 24,
    ) -> DeviceDirectory:
        """ "Guidelines for initialization", in the spec's order; returns the DDT.

        ``ddt_levels`` None picks the DDT mode from ``device_id_width`` as the
        spec's table does.  ``pq_log2`` None (or no ``capabilities.ATS``)
        leaves the page-request queue off.  ``interrupts`` None: polling
        only (no ``cie``/``fie``/``pie``).  ``require`` names
        :class:`Capabilities` fields that must be 1.  Raises
        :class:`DriverError` wherever the spec says "stop and report failure".
        """
        # 1-2: capabilities and version
        caps = Capabilities.from_raw(self.rd64(REG.CAPABILITIES), gipc_bit=self.gipc_bit)
        self.caps = caps
        if caps.version >> 4 != 1:
            raise DriverError(f"capabilities.version {caps.version:#x} is not supported")
        # 3-5: fctl and the byte order
        fctl = self.rd32(REG.FCTL)
        if bool(fctl & F.FCTL.BE.mask) != big_endian:
            if not caps.end:
                raise DriverError(
                    f"{'big' if big_endian else 'little'}-endian access needed, "
                    "capabilities.END is 0 and fctl.BE is the other one"
                )
            self.wr32(REG.FCTL, F.FCTL.BE.put(fctl, int(big_endian)))
            fctl = self.rd32(REG.FCTL)
            if bool(fctl & F.FCTL.BE.mask) != big_endian:
                raise DriverError("fctl.BE did not take the needed byte order")
        self.be = big_endian
        # 6-7: wire-signaled or message-signaled interrupts
        if interrupts is not None:
            if interrupts.wsi and caps.igs not in (IGS.WSI, IGS.BOTH):
                raise DriverError("wired interrupts needed but capabilities.IGS is MSI")
            if not interrupts.wsi and caps.igs not in (IGS.MSI, IGS.BOTH):
                raise DriverError("MSIs needed but capabilities.IGS is WSI")
            if bool(fctl & F.FCTL.WSI.mask) != interrupts.wsi:
                self.wr32(REG.FCTL, F.FCTL.WSI.put(fctl, int(interrupts.wsi)))
                fctl = self.rd32(REG.FCTL)
                if bool(fctl & F.FCTL.WSI.mask) != interrupts.wsi:
                    raise DriverError("fctl.WSI did not take the needed value")
        # 8: other required capabilities
        missing = [name for name in require if not getattr(caps, name)]
        if missing:
            raise DriverError(f"required capabilities not supported: {', '.join(missing)}")
        # 9-11: icvec and the MSI configuration table
        if interrupts is not None:
            self._setup_interrupts(interrupts)
        ie = interrupts is not None
        # 12: command queue
        self.cq_base, self.cq_entries = self._setup_queue(
            REG.CQB, REG.CQT, REG.CQCSR, cq_log2, _CQ_ENTRY, F.CQCSR, "cq", ie
        )
        self._cqt = 0
        # 13: fault queue
        self.fq_base, self.fq_entries = self._setup_queue(
            REG.FQB, REG.FQH, REG.FQCSR, fq_log2, _FQ_ENTRY, F.FQCSR, "fq", ie
        )
        # 14: page-request queue
        if caps.ats and pq_log2 is not None:
            self.pq_base, self.pq_entries = self._setup_queue(
                REG.PQB, REG.PQH, REG.PQCSR, pq_log2, _PQ_ENTRY, F.PQCSR, "pq", ie
            )
        # the IOFENCE.C completion flag
        self._flag = self.alloc.alloc(4096, 4096)
        # 15: the DDT pointer
        self.ddt = self._setup_ddt(ddt_levels, device_id_width)
        return self.ddt

    def _setup_interrupts(self, cfg: InterruptConfig) -> None:
        # "writing 0xF to each field and reading back the number of writable bits"
        self.wr64(REG.ICVEC, 0xFFFF)
        back = self.rd64(REG.ICVEC)
        writable = min(
            bin(f.get(back)).count("1")
            for f in (F.ICVEC.civ, F.ICVEC.fiv, F.ICVEC.pmiv, F.ICVEC.piv)
        )
        self.vectors = 1 << writable
        n = self.vectors
        self.wr64(
            REG.ICVEC,
            F.ICVEC.encode(civ=cfg.civ % n, fiv=cfg.fiv % n, pmiv=cfg.pmiv % n, piv=cfg.piv % n),
        )
        if cfg.wsi:
            return  # each vector is a wire: the interrupt controller is platform business
        base = cfg.msi_base if cfg.msi_base is not None else self.alloc.alloc(4096, 4096)
        self.msi_targets = []
        for v in range(n):
            addr, data = base + 4 * v, cfg.msi_data + v
            self.wr64(REG.msi_addr(v), addr)
            self.wr32(REG.msi_data(v), data)
            self.wr32(REG.msi_vec_ctl(v), int(cfg.masked))
            self.msi_targets.append((addr, data))

    def _setup_queue(
        self,
        breg: int,
        ireg: int,
        creg: int,
        log2: int,
        entry: int,
        csr: F.Layout,
        name: str,
        ie: bool,
    ) -> Tuple[int, int]:
        if not 1 <= log2 <= 32:
            raise ValueError(f"{name} size must be 2**1 .. 2**32 entries")
        en = csr.fields[f"{name}en"].mask
        on = csr.fields[f"{name}on"].mask
        busy = csr.fields["busy"].mask
        iemask = csr.fields[{"cq": "cie", "fq": "fie", "pq": "pie"}[name]].mask
        if self.rd32(creg) & (on | busy):  # a queue base may change only while it is off
            self.wr32(creg, 0)
            if not self._poll(lambda: not self.rd32(creg) & (on | busy)):
                raise DriverError(f"{name} did not turn off")
        n = 1 << log2
        size = n * entry
        base = self.alloc.alloc(max(4096, size), max(4096, size))
        value = F.QUEUE_BASE.encode(LOG2SZ_1=log2 - 1, PPN=base >> 12)
        self.wr64(breg, value)
        if self.rd64(breg) != value:
            raise DriverError(f"{name}b did not take {value:#x} (size or address not supported)")
        self.wr32(ireg, 0)
        self.wr32(creg, en | (iemask if ie else 0))
        if not self._poll(lambda: bool(self.rd32(creg) & on)):
            raise DriverError(f"{name}csr.{name}on did not become 1")
        return base, n

    def _setup_ddt(self, levels: Optional[int], dw: int) -> DeviceDirectory:
        ddt = DeviceDirectory(
            self.mem, self.alloc, levels=levels or 3, msi_flat=self.caps.msi_flat, big=self.be
        )
        ppn = ddt.root >> 12
        supported = []
        for mode in (2, 3, 4):  # 1LVL, 2LVL, 3LVL: write, read back, keep what was retained
            self._ddtp_write(F.DDTP.encode(iommu_mode=mode, PPN=ppn))
            if F.DDTP.iommu_mode.get(self.rd64(REG.DDTP)) == mode:
                supported.append(mode)
        self.ddtp_modes = tuple(supported)
        if levels is None:
            limits = (6, 15, 24) if self.caps.msi_flat else (7, 16, 24)
            fits = [m for m, w in zip((2, 3, 4), limits, strict=True) if dw <= w and m in supported]
            if not fits:
                raise DriverError(f"no supported DDT mode covers {dw}-bit device IDs")
            levels = fits[0] - 1
            ddt.levels = levels
        if levels + 1 not in supported:
            raise DriverError(f"ddtp.iommu_mode {levels}LVL is not supported")
        self._ddtp_write(ddt.ddtp)
        return ddt

    def _ddtp_write(self, value: int) -> None:
        busy = F.DDTP.busy.mask
        if not self._poll(lambda: not self.rd64(REG.DDTP) & busy):
            raise DriverError("ddtp.busy stuck at 1")
        self.wr64(REG.DDTP, value)
        if not self._poll(lambda: not self.rd64(REG.DDTP) & busy):
            raise DriverError("ddtp.busy stuck at 1")

    # -- command queue -----------------------------------------------------
    def _cq_error(self, what: str) -> Optional[DriverError]:
        csr = self.rd32(REG.CQCSR)
        bits = [name for name in ("cmd_ill", "cqmf", "cmd_to") if csr & F.CQCSR.fields[name].mask]
        if not bits:
            return None
        cqh = self.rd32(REG.CQH)
        addr = self.cq_base + cqh * _CQ_ENTRY
        cmd = Command(self._read(addr, 8), self._read(addr + 8, 8))
        return DriverError(
            f"{what}: command queue stopped ({', '.join(bits)}) at cqh={cqh} on {cmd!r}",
            cqcsr=csr,
            cqh=cqh,
            command=cmd,
        )

    def submit(self, *cmds: Command) -> None:
        """Write ``cmds`` at ``cqt`` (``fctl.BE`` byte order) and ring the doorbell.

        Waits for room when the queue is full; raises :class:`DriverError` if
        the queue is stopped by an error or never drains.
        """
        if self.cq_entries == 0:
            raise DriverError("the command queue is not set up (bring_up first)")
        err = self._cq_error("submit")
        if err is not None:
            raise err
        n = self.cq_entries
        for cmd in cmds:
            nxt = (self._cqt + 1) % n
            if nxt == self.rd32(REG.CQH):  # full: let the IOMMU catch up
                self._wait_for_room(nxt)
            addr = self.cq_base + self._cqt * _CQ_ENTRY
            self._write(addr, cmd.d0, 8)
            self._write(addr + 8, cmd.d1, 8)
            self.submitted.append(cmd)
            self._cqt = nxt
        self.wr32(REG.CQT, self._cqt)

    def _wait_for_room(self, full_head: int) -> None:
        """Ring the doorbell and wait until ``cqh`` moves off ``full_head``."""
        self.wr32(REG.CQT, self._cqt)
        if not self._poll(lambda: self.rd32(REG.CQH) != full_head):
            raise self._cq_error("submit") or DriverError("command queue full, not draining")

    @property
    def fence_addr(self) -> int:
        """Address of the 4-byte flag that ``IOFENCE.C`` writes."""
        return self._flag

    def fence(self, pr: bool = False, pw: bool = False) -> bool:
        """``IOFENCE.C`` with ``AV`` = 1 writing a new token to the flag; True once written.

        Returns False when the fence has not completed after polling (it waits
        for ATS invalidation completions, or commands are not processed yet;
        see :meth:`fence_done`).  Raises :class:`DriverError` if ``cqcsr``
        shows ``cmd_ill``, ``cqmf`` or ``cmd_to``.
        """
        token = (self._token % 0xFFFF_FFFF) + 1
        self.submit(iofence_c(self._flag, token, pr=pr, pw=pw))
        self._token = token
        return self.fence_done()

    def fence_done(self) -> bool:
        """Whether the last :meth:`fence` completed (polls; raises on a queue error)."""
        result = [False]

        def check() -> bool:
            err = self._cq_error("IOFENCE.C")
            if err is not None:
                raise err
            if self._read(self._flag, 4) == self._token:
                result[0] = True
                return True
            return False

        self._poll(check)
        return result[0]

    def sync(self, *cmds: Command, pr: bool = False, pw: bool = False) -> bool:
        """:meth:`submit` then :meth:`fence`."""
        self.submit(*cmds)
        return self.fence(pr, pw)

    def clear_cq_errors(self, skip_illegal: bool = True) -> int:
        """Make a stopped command queue operational again; returns the bits cleared.

        With ``cmd_ill`` and ``skip_illegal``, the illegal command at ``cqh``
        is first replaced by an ``IOFENCE.C`` without side effects (the spec
        asks software to correct the cause before clearing the bit).  Then the
        error bits are written 1 to clear them and ``ipsr.cip`` is cleared.
        """
        csr = self.rd32(REG.CQCSR)
        errors = csr & F.CQCSR.mask_of("cmd_ill", "cqmf", "cmd_to", "fence_w_ip")
        if csr & F.CQCSR.cmd_ill.mask and skip_illegal:
            addr = self.cq_base + self.rd32(REG.CQH) * _CQ_ENTRY
            nop = iofence_c()
            self._write(addr, nop.d0, 8)
            self._write(addr + 8, nop.d1, 8)
        keep = csr & F.CQCSR.mask_of("cqen", "cie")
        self.wr32(REG.CQCSR, keep | errors)
        self.wr32(REG.IPSR, F.IPSR.cip.mask)
        return errors

    # -- fault and page-request queues ---------------------------------------
    def _drain(
        self, creg: int, hreg: int, treg: int, mf: int, of: int, ip: int, base: int, n: int, es: int
    ) -> Tuple[List[bytes], int]:
        """The guideline's steps for one producer queue; returns the records and error bits."""
        csr = self.rd32(creg)
        errors = csr & (mf | of)
        if errors:  # clear the error bits (RW1C): reporting resumes
            self.wr32(creg, (csr & 0x3) | errors)
        self.wr32(REG.IPSR, ip)
        t = self.rd32(treg)
        h = self.rd32(hreg)
        records = []
        while h != t:
            records.append(self.mem.read(base + h * es, es))
            h = (h + 1) % n
        self.wr32(hreg, h)
        return records, errors

    def faults(self) -> List[FaultRecord]:
        """Read and acknowledge every fault record, as "Guidelines for handling interrupts"
        says for ``ipsr.fip``: clear ``fqmf``/``fqof`` (counted in ``fq_memory_faults`` /
        ``fq_overflows``), clear ``ipsr.fip``, read ``fqt``/``fqh``, process the records,
        advance ``fqh``."""
        if self.fq_entries == 0:
            raise DriverError("the fault queue is not set up (bring_up first)")
        mf, of = F.FQCSR.fqmf.mask, F.FQCSR.fqof.mask
        raw, errors = self._drain(
            REG.FQCSR,
            REG.FQH,
            REG.FQT,
            mf,
            of,
            F.IPSR.fip.mask,
            self.fq_base,
            self.fq_entries,
            _FQ_ENTRY,
        )
        self.fq_memory_faults += bool(errors & mf)
        self.fq_overflows += bool(errors & of)
        return [FaultRecord.from_bytes(r, self.be) for r in raw]

    def page_requests(self) -> List[PageRequest]:
        """Read and acknowledge every page-request record (the ``ipsr.pip`` steps), decoded
        as the messages they hold (a "Stop Marker" has ``read = write = False``,
        ``last = True``)."""
        if self.pq_entries == 0:
            raise DriverError("the page-request queue is not set up")
        mf, of = F.PQCSR.pqmf.mask, F.PQCSR.pqof.mask
        raw, errors = self._drain(
            REG.PQCSR,
            REG.PQH,
            REG.PQT,
            mf,
            of,
            F.IPSR.pip.mask,
            self.pq_base,
            self.pq_entries,
            _PQ_ENTRY,
        )
        self.pq_memory_faults += bool(errors & mf)
        self.pq_overflows += bool(errors & of)
        out = []
        R, P = F.PQ_RECORD0, F.PQ_PAYLOAD
        order = _order(self.be)
        for r in raw:
            d0, d1 = int.from_bytes(r[:8], order), int.from_bytes(r[8:], order)
            pv = bool(R.PV.get(d0))
            out.append(
                PageRequest(
                    device_id=R.DID.get(d0),
                    addr=P.ADDR.get(d1) << 12,
                    prg_index=P.PRGI.get(d1),
                    last=bool(P.L.get(d1)),
                    read=bool(P.R.get(d1)),
                    write=bool(P.W.get(d1)),
                    process_id=R.PID.get(d0) if pv else None,
                    priv=bool(R.PRIV.get(d0)),
                    exec_req=bool(R.EXEC.get(d0)),
                )
            )
        return out

    def respond(
        self,
        device_id: int,
        prg_index: int,
        code: int = PRG_SUCCESS,
        pasid: Optional[int] = None,
    ) -> None:
        """Send a "Page Request Group Response" (``ATS.PRGR``); ``pasid`` when the
        function requires it (``DC.tc.PRPR``) and the request had one."""
        self.submit(ats_prgr(device_id, prg_index, code, pasid))

    # -- invalidation recipes ------------------------------------------------
    def read_dc(self, device_id: int) -> DeviceContext:
        """The DC of ``device_id`` as it is in memory now (take it before changing it)."""
        ddt = self._ddt()
        addr = ddt.dc_addr(device_id)
        n = 8 if ddt.msi_flat else 4
        words = [ddt.space.read_u64(addr + 8 * k, ddt.big) for k in range(n)]
        return DeviceContext(*words[:7])

    def _ddt(self) -> DeviceDirectory:
        if self.ddt is None:
            raise DriverError("no DDT (bring_up first)")
        return self.ddt

    def dc_changed(
        self, device_id: int, old_dc: DeviceContext, gscids: Iterable[int] = (), gipc_tc: int = 0
    ) -> bool:
        """A leaf DDT entry (the DC of ``device_id``) changed from ``old_dc``: the spec's
        commands (see :func:`dc_change_commands`) and a fence."""
        return self.sync(*dc_change_commands(device_id, old_dc, gscids, gipc_tc))

    def ddt_nonleaf_changed(self) -> bool:
        """A non-leaf DDT entry changed: ``IODIR.INVAL_DDT`` with ``DV`` = 0, and a fence."""
        return self.sync(iodir_inval_ddt())

    def pc_changed(
        self, device_id: int, process_id: int, pscid: int, gscid: Optional[int] = None
    ) -> bool:
        """A leaf PDT entry (PC) changed: ``pscid`` is the old ``PC.ta.PSCID``, ``gscid`` the
        ``DC.iohgatp.GSCID`` (None when Bare; [GIPC] the PC's GSCID, unchanged)."""
        return self.sync(*pc_change_commands(device_id, process_id, pscid, gscid))

    def pdt_nonleaf_changed(self, device_id: int) -> bool:
        """A non-leaf PDT entry of ``device_id`` changed: ``IODIR.INVAL_DDT`` ``DV`` = 1."""
        return self.sync(iodir_inval_ddt(device_id))

    def first_stage_changed(
        self, gscid: Optional[int], pscid: Optional[int], addr: Addresses = None
    ) -> bool:
        """First-stage PTEs changed (see :func:`first_stage_commands`), then a fence."""
        return self.sync(*first_stage_commands(gscid, pscid, addr))

    def g_stage_changed(
        self, gscid: int, gpa: Addresses = None, device_ids: Iterable[int] = ()
    ) -> bool:
        """Second-stage PTEs of VM ``gscid`` changed (see :func:`g_stage_commands`)."""
        return self.sync(*g_stage_commands(gscid, gpa, device_ids))

    def msi_pte_changed(self, gscid: int, addr: Optional[int] = None) -> bool:
        """An MSI PTE (for MSI address ``addr``; None: any) changed, then a fence."""
        return self.sync(*msi_pte_commands(gscid, addr))

    def gipc_rebind(
        self, device_id: int, process_id: int, old_gscid: int, old_pscid: Optional[int] = None
    ) -> bool:
        """[GIPC] ``PC.iohgatp`` of ``process_id`` changed (decision #9), then a fence."""
        return self.sync(*gipc_rebind_commands(device_id, process_id, old_gscid, old_pscid))

    def ats_invalidate(
        self,
        device_id: int,
        pasid: Optional[int] = None,
        addr: int = 0,
        size: Optional[int] = 4096,
        global_: bool = False,
    ) -> bool:
        """Invalidate the device's ATC (``ATS.INVAL``) and wait for it with a fence.

        An ``IOFENCE.C`` goes first so the IOMMU's own invalidations queued
        before are complete before the device is asked (commands may execute
        out of order; the spec wants the IOATC invalidated first).  Returns
        False while the device has not answered (see :meth:`fence_done`).
        """
        return self.sync(iofence_c(), ats_inval(device_id, pasid, addr, size, global_))
