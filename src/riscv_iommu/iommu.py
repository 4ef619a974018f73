"""The IOMMU: state, register file and the request entry points."""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, FrozenSet, Optional, Set, Tuple, Type, TypeVar, Union

from . import commands
from . import formats as F
from ._fault import Fault
from .ats import InvalidationTracker, MessageCode, cxl_io, encode_range, page_request
from .capabilities import IGS, Capabilities, IommuParams
from .ddt import DC, ddi, locate_dc
from .debug import DebugInterface
from .gipc import pc_format
from .hpm import Event, Hpm
from .interrupts import Interrupts
from .ioatc import Iotlb
from .memory import MemoryAccessError, MemoryFault, SparseMemory
from .pdt import PC, PID_WIDTH, locate_pc
from .queues import CommandQueue, FaultQueue, PageRequestQueue
from .registers import REG, build_register_map
from .translate import PERM_R, PERM_W, PERM_X, translate_iova
from .types import (
    Access,
    Cause,
    FaultRecord,
    PageRequest,
    PageRequestGroupResponse,
    Request,
    RequestKind,
    Response,
    Status,
    Ttyp,
)

__all__ = ["Iommu", "REG"]


_TC = F.DC_TC
_PTE = F.PTE

# Causes answered with Unsupported Request; all other faults are Completer Abort.
_UR_CAUSES = frozenset(
    {
        Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED,
        Cause.DDT_ENTRY_LOAD_ACCESS_FAULT,
        Cause.DDT_ENTRY_NOT_VALID,
        Cause.DDT_ENTRY_MISCONFIGURED,
        Cause.TRANSACTION_TYPE_DISALLOWED,
    }
)
# §ATS_FAULTS: ATS translation requests answered "Success, R=W=0", not reported.
_ATS_NO_ACCESS_CAUSES = frozenset(
    {
        Cause.INSTRUCTION_PAGE_FAULT,
        Cause.READ_PAGE_FAULT,
        Cause.WRITE_PAGE_FAULT,
        Cause.INSTRUCTION_GUEST_PAGE_FAULT,
        Cause.READ_GUEST_PAGE_FAULT,
        Cause.WRITE_GUEST_PAGE_FAULT,
        Cause.PDT_ENTRY_NOT_VALID,
        Cause.MSI_PTE_NOT_VALID,
    }
)
_DTF_REPORTED = frozenset(c for c in Cause if c.reported_if_dtf)
# DC.tc bits locate_pc and the PC checks depend on ([GIPC] plus DC.tc.GIPC)
_PC_TC_DEPS = _TC.mask_of("SBE", "SXL", "GADE")

_TTYP = {
    (RequestKind.UNTRANSLATED, Access.EXECUTE): Ttyp.UNTRANSLATED_EXECUTE,
    (RequestKind.UNTRANSLATED, Access.READ): Ttyp.UNTRANSLATED_READ,
    (RequestKind.UNTRANSLATED, Access.WRITE): Ttyp.UNTRANSLATED_WRITE,
    (RequestKind.TRANSLATED, Access.EXECUTE): Ttyp.TRANSLATED_EXECUTE,
    (RequestKind.TRANSLATED, Access.READ): Ttyp.TRANSLATED_READ,
    (RequestKind.TRANSLATED, Access.WRITE): Ttyp.TRANSLATED_WRITE,
    (RequestKind.ATS_TRANSLATION, Access.EXECUTE): Ttyp.ATS_TRANSLATION,
    (RequestKind.ATS_TRANSLATION, Access.READ): Ttyp.ATS_TRANSLATION,
    (RequestKind.ATS_TRANSLATION, Access.WRITE): Ttyp.ATS_TRANSLATION,
}
_REQUEST_EVENT = (
    Event.UNTRANSLATED_REQUEST,
    Event.TRANSLATED_REQUEST,
    Event.ATS_TRANSLATION_REQUEST,
)


def _check_int(name: str, value: Any, bits: int) -> int:
    """API-edge check: an int (not a bool) that fits ``bits`` unsigned bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    v = int(value)
    if v < 0 or v >> bits:
        raise ValueError(f"{name} {v:#x} does not fit in {bits} bits")
    return v


def _check_size(size: Any) -> int:
    """API-edge check of an MMIO access size: 1, 2, 4 or 8 bytes."""
    if type(size) is not int:
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size not in (1, 2, 4, 8):
        raise ValueError(f"size must be 1, 2, 4 or 8 bytes, not {size}")
    return size


_E = TypeVar("_E", Access, RequestKind)


def _check_enum(name: str, value: Any, enum: Type[_E]) -> _E:
    """API-edge check: a member of ``enum`` or a plain int equal to one (not a bool,
    float, Decimal, ... that merely compares equal)."""
    what = f"an {enum.__name__}" if enum.__name__[0] in "AEIOU" else f"a {enum.__name__}"
    if type(value) is not int:
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}")
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{name} must be {what}, not {value!r}") from None


def _touch(cache: Dict[Any, Any], key: Any) -> None:
    """LRU: move ``key`` to the young end of ``cache``."""
    v = cache.pop(key, None)
    if v is not None:
        cache[key] = v


def _cache_insert(io: "Iommu", cache: Dict[Any, Any], capacity: int, key: Any, value: Any) -> None:
    """Insert into a directory cache, evicting the oldest (FIFO) or least recently used entry."""
    if not capacity:
        return
    while len(cache) >= capacity:
        del cache[next(iter(cache))]
        io.flush_front_cache()  # shortcuts may rest on the evicted entry
    cache[key] = value


def _unindex_key(index: Dict[int, Set[Tuple[int, int]]], key: Tuple[int, int]) -> None:
    keys = index[key[0]]
    keys.discard(key)
    if not keys:
        del index[key[0]]


def _drop_tagged(
    cache: Dict[Tuple[int, int], Any],
    index: Dict[int, Set[Tuple[int, int]]],
    gv: bool,
    gscid: int,
    lo: int,
    hi: int,
) -> None:
    """IOTINVAL.GVMA on a cache tagged (GSCID, GPA page): all VMs, one GSCID, or one
    GSCID's GPA range, visiting the range's pages or the GSCID's entries, the fewer."""
    if not gv:
        cache.clear()
        index.clear()
        return
    keys = index.get(gscid, set())
    if hi < 0:
        victims = list(keys)
    elif (hi >> 12) - (lo >> 12) < len(keys):
        victims = [(gscid, p) for p in range(lo >> 12, (hi >> 12) + 1) if (gscid, p) in keys]
    else:
        victims = [k for k in keys if lo >> 12 <= k[1] <= hi >> 12]
    for key in victims:
        del cache[key]
        _unindex_key(index, key)


class Iommu:
    """A RISC-V IOMMU.

    ``mem`` is the memory port (see :mod:`riscv_iommu.memory`);
    ``capabilities`` a :class:`Capabilities` or a raw register value;
    ``fctl`` the reset value of ``fctl``; ``params`` the implementation
    choices.
    """

    def __init__(
        self,
        mem: Any,
        capabilities: Union[Capabilities, int, None] = None,
        fctl: int = 0,
        params: Optional[IommuParams] = None,
    ) -> None:
        if not callable(getattr(mem, "read", None)) or not callable(getattr(mem, "write", None)):
            raise TypeError("mem must have read(addr, size) and write(addr, data) methods")
        if capabilities is None:
            capabilities = Capabilities.full()
        elif isinstance(capabilities, int) and not isinstance(capabilities, bool):
            capabilities = Capabilities.from_raw(capabilities)
        elif not isinstance(capabilities, Capabilities):
            raise TypeError("capabilities must be a Capabilities or an int")
        if params is None:
            params = IommuParams()
        elif not isinstance(params, IommuParams):
            raise TypeError("params must be an IommuParams")
        fctl = _check_int("fctl", fctl, 32)
        self.mem = mem
        self.caps: Capabilities = capabilities
        self.params: IommuParams = params
        caps = capabilities
        #: Implicit accesses at or beyond 2**PAS are access faults (PMA check).
        self.pa_limit = 1 << caps.pas
        self.msi_flat = caps.msi_flat
        self.dc_size = F.DC_EXT_SIZE if caps.msi_flat else F.DC_BASE_SIZE
        self.be_writable = bool(caps.end and params.be_writable)
        #: range size of a Bare first stage (by DC.tc.SXL) and G-stage (by fctl.GXL)
        self.bare_s, self.bare_g = params.bare_sizes(caps)
        # [GIPC] DC.tc.GIPC exists only with capabilities.GIPC; else it is reserved
        self.gipc_tc = (1 << params.gipc_tc_bit) if caps.gipc else 0
        self.tc_reserved = _TC.reserved & ~self.gipc_tc
        self.ta_reserved = F.DC_TA.reserved | (0 if caps.qosid else F.DC_TA.mask_of("RCID", "MCID"))
        mgpaw = (
            59
            if caps.sv57x4
            else 50
            if caps.sv48x4
            else 41
            if caps.sv39x4
            else 34
            if caps.sv32x4
            else caps.pas
        )
        self.msi_mask_reserved = ((1 << 64) - 1) & ~((1 << min(52, mgpaw - 12)) - 1)
        self.pd_modes: FrozenSet[int] = frozenset(
            {0} | {m for m, ok in ((1, caps.pd8), (2, caps.pd17), (3, caps.pd20)) if ok}
        )
        self.s_modes: Tuple[FrozenSet[int], FrozenSet[int]] = (
            frozenset(
                {0} | {m for m, ok in ((8, caps.sv39), (9, caps.sv48), (10, caps.sv57)) if ok}
            ),
            frozenset({0} | ({8} if caps.sv32 else set())),
        )
        self._g_modes = (
            frozenset(
                {0} | {m for m, ok in ((8, caps.sv39x4), (9, caps.sv48x4), (10, caps.sv57x4)) if ok}
            ),
            frozenset({0} | ({8} if caps.sv32x4 else set())),
        )
        # bits 58:54 (F.PTE.reserved); 60:59 without Svrsw60t59b; PBMT without Svpbmt
        rsv = F.PTE.reserved | (0 if caps.svrsw60t59b else F.PTE.RSW60_59.mask)
        if not caps.svpbmt:
            rsv |= F.PTE.PBMT.mask
        self.pte_rsv = rsv
        self.pte_nl_rsv = _PTE.mask_of("D", "A", "U", "N", "PBMT")
        self.pte32_nl_rsv = F.PTE32.mask_of("D", "A", "U")
        #: rd(addr, size, big) -> int: one implicit read through the memory port
        self.rd: Callable[[int, int, bool], int] = self._make_reader()
        # directory caches (DDT cache tagged by device_id, PDT cache by
        # device_id and process_id); capacity 0 = no caching
        self.ddt_cache: Dict[int, DC] = {}
        #: (device_id, process_id) -> (PC, the DC it was located under)
        self.pdt_cache: Dict[Tuple[int, int], Tuple[PC, DC]] = {}
        # MSI PTE cache: (GSCID, GPA page) -> (msipte dword 0, dword 1)
        self.msi_cache: Dict[Tuple[int, int], Tuple[int, int]] = {}
        self.msi_by_g: Dict[int, Set[Tuple[int, int]]] = {}
        # G-stage walk cache: (GSCID, GPA page) -> SPA page of implicit reads
        self.gwalk_cache: Dict[Tuple[int, int], int] = {}
        self.gwalk_by_g: Dict[int, Set[Tuple[int, int]]] = {}
        # registers
        self._fctl = 0
        self.be = False
        self.gxl = 0
        self.g_modes: FrozenSet[int] = self._g_modes[0]
        self._set_fctl(fctl, reset=True)
        self.ddtp_mode = int(params.reset_iommu_mode)
        self.ddtp_ppn = 0
        #: (RCID, MCID) of the IOMMU's own requests (iommu_qosid)
        self.iommu_qosid = (0, 0)
        # per-request scratch state written by the translation process
        self.dtf = False
        self.qos = (0, 0)
        #: DC.tc.T2GPA of the last Translated / ATS request that located its DC
        self.t2gpa = False
        self._datapath_errors = 0
        #: [GIPC] the PC format of the configured revision (None without capabilities.GIPC)
        self.pc_fmt = pc_format(self)
        #: widest process_id of the supported PDT modes
        self.max_pid_width = max([PID_WIDTH[m] for m in (1, 2, 3) if m in self.pd_modes] or [0])
        # components
        self.intr = Interrupts(self)
        self.fq = FaultQueue(self)
        self.pq = PageRequestQueue(self)
        self.cq = CommandQueue(self)
        self.hpm = Hpm(self)
        self.dbg = DebugInterface(self)
        self.lru = params.cache_policy == "lru"
        self.iotlb = Iotlb(params.iotlb_size, lru=self.lru)
        self.iotlb.on_evict = self.flush_front_cache
        #: the IOTLB key / PDT-cache key the last translation used (None: none)
        self.last_tlb_key: Optional[Tuple[int, int, int, int]] = None
        self.last_pc_key: Optional[Tuple[int, int]] = None
        # the "front" cache: whole responses by request, flushed by every
        # invalidation; only with every other cache on (so it never hides a
        # structure the strict, capacity-0 modes must walk)
        self._front: Dict[Tuple[int, int, int, int, int], Tuple[Any, ...]] = {}
        self._front_on = bool(params.iotlb_size and params.ddt_cache_size and params.pdt_cache_size)
        self.invalidations = InvalidationTracker(params.ats_inval_timeout)
        self._in_commands = False
        self._more_commands = False
        self.qos_port = hasattr(mem, "qos")
        self._regs = build_register_map(self)
        #: Outbound ports: ATS messages, wired interrupts (vector, level),
        #: and IOFENCE.C's global-observability request (PR, PW).
        self.on_ats_message: Optional[Callable[[Any], None]] = None
        self.on_wired_interrupt: Optional[Callable[[int, bool], None]] = None
        self.on_fence: Optional[Callable[[bool, bool], None]] = None
        #: set to a riscv_iommu.trace.Tracer (or any callable of the same shape)
        #: to record every step of each translation
        self.tracer: Optional[Callable[..., None]] = None

    def _make_reader(self) -> Callable[[int, int, bool], int]:
        mem = self.mem
        limit = self.pa_limit
        port_read = mem.read

        def slow(addr: int, size: int, big: bool) -> int:
            if addr + size > limit:  # beyond capabilities.PAS: a PMA violation
                raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, size)
            return int.from_bytes(port_read(addr, size), "big" if big else "little")

        if type(mem) is not SparseMemory:
            return slow
        # SparseMemory fast path: read the page dict directly (same package)
        pages = mem._pages
        injections = mem._injections
        unpack = {
            (8, False): struct.Struct("<Q").unpack_from,
            (8, True): struct.Struct(">Q").unpack_from,
            (4, False): struct.Struct("<I").unpack_from,
            (4, True): struct.Struct(">I").unpack_from,
        }
        u64le = unpack[8, False]
        get = pages.get

        def rd(addr: int, size: int, big: bool) -> int:
            off = addr & 0xFFF
            if injections or addr + size > limit or off > 4096 - size:
                return slow(addr, size, big)
            page = get(addr >> 12)
            if page is None:
                return 0
            if size == 8 and not big:
                return u64le(page, off)[0]  # type: ignore[no-any-return]
            return unpack[size, big](page, off)[0]  # type: ignore[no-any-return]

        return rd

    # ------------------------------------------------------------------
    # fctl / ddtp
    # ------------------------------------------------------------------
    def _set_fctl(self, value: int, reset: bool = False) -> None:
        caps = self.caps
        old = self._fctl
        be = value & 1
        wsi = (value >> 1) & 1
        gxl = (value >> 2) & 1
        if not reset:
            if not self.be_writable:
                be = old & 1
            if caps.igs != IGS.BOTH:
                wsi = (old >> 1) & 1
            if not self.params.gxl_writable:
                gxl = (old >> 2) & 1
        else:
            if caps.igs == IGS.MSI:
                wsi = 0
            elif caps.igs == IGS.WSI:
                wsi = 1
        self._fctl = be | (wsi << 1) | (gxl << 2)
        self.be = bool(be)
        self.gxl = gxl
        self.g_modes = self._g_modes[gxl]

    def _set_ddtp(self, value: int) -> None:
        mode = F.DDTP.iommu_mode.get(value)
        # WARL: an unsupported mode leaves iommu_mode unchanged
        if mode <= self.params.max_iommu_mode:
            self.ddtp_mode = mode
        self.ddtp_ppn = F.DDTP.PPN.get(value) & ((1 << (self.caps.pas - 12)) - 1)

    @property
    def ddtp(self) -> int:
        """Current value of the ``ddtp`` register (``busy`` is always 0)."""
        return (self.ddtp_ppn << F.DDTP.PPN.lsb) | self.ddtp_mode

    @property
    def fctl(self) -> int:
        """Current value of the ``fctl`` register."""
        return self._fctl

    def write_fctl(self, value: int) -> None:
        """fctl: BE, WSI, GXL where writable (WARL).

        Changing a feature while the IOMMU is not Off is UNSPECIFIED by the
        spec; the model drops every cached DC, PC and translation when BE or
        GXL changes, because their checks and formats depend on them.
        """
        old = self._fctl
        self._set_fctl(value)
        if (old ^ self._fctl) & (F.FCTL.BE.mask | F.FCTL.GXL.mask):
            self.invalidate_ddt()
            self.iotlb.clear()
            self.invalidate_gwalk(False, 0)
            self.invalidate_msi(False, 0)
        self.flush_front_cache()
        self.intr.refresh()

    def write_ddtp(self, value: int) -> None:
        """ddtp: iommu_mode (WARL) and PPN."""
        self._set_ddtp(value)
        self.flush_front_cache()

    def write_cqt(self, value: int) -> None:
        """cqt: the command-queue doorbell."""
        self.cq.write_tail(value)
        if self.params.auto_process:
            self.process_commands()

    def write_cqcsr(self, value: int) -> None:
        """cqcsr: enabling the queue (or clearing an error) resumes processing."""
        self.cq.write_csr(value)
        if self.params.auto_process:
            self.process_commands()

    def read_iommu_qosid(self) -> int:
        """iommu_qosid."""
        r, m = self.iommu_qosid
        return F.IOMMU_QOSID.encode(RCID=r, MCID=m)

    def write_iommu_qosid(self, value: int) -> None:
        """iommu_qosid: RCID and MCID are WARL to the implemented widths."""
        r = F.IOMMU_QOSID.RCID.get(value) & ((1 << self.params.rcid_width) - 1)
        m = F.IOMMU_QOSID.MCID.get(value) & ((1 << self.params.mcid_width) - 1)
        self.iommu_qosid = (r, m)
        self.flush_front_cache()

    def reevaluate_interrupts(self) -> None:
        """After ipsr bits are cleared: set them again where the conditions persist."""
        self.cq.reevaluate()
        self.fq.reevaluate()
        self.pq.reevaluate()

    # ------------------------------------------------------------------
    # register file
    # ------------------------------------------------------------------
    def mmio_read(self, offset: int, size: int = 8) -> int:
        """Read a register as software sees it (little-endian, 4- or 8-byte).

        1- and 2-byte and misaligned accesses are UNSPECIFIED by the spec: they
        read 0.  ``size`` must be 1, 2, 4 or 8 (ValueError otherwise).
        """
        offset = _check_int("offset", offset, 12)
        size = _check_size(size)
        if size < 4 or offset % size:
            return 0
        regs = self._regs
        value = 0
        for k in range(0, size, 4):
            word = regs.get(offset + k)
            if word is not None:
                value |= (word[0]() & 0xFFFFFFFF) << (8 * k)
        return value

    def mmio_write(self, offset: int, value: int, size: int = 8) -> None:
        """Write a register as software does (little-endian, 4- or 8-byte).

        An 8-byte write is two 4-byte writes, high half first.  1- and 2-byte
        and misaligned accesses are UNSPECIFIED: ignored.  ``size`` must be 1,
        2, 4 or 8 and ``value`` must fit in ``size`` bytes (ValueError otherwise).
        A write never raises for any value that fits: every register is WARL or
        ignores what it cannot hold.
        """
        offset = _check_int("offset", offset, 12)
        size = _check_size(size)
        value = _check_int("value", value, 8 * size)
        if size < 4 or offset % size:
            return
        regs = self._regs
        for k in range(size - 4, -1, -4):
            word = regs.get(offset + k)
            if word is not None:
                word[1]((value >> (8 * k)) & 0xFFFFFFFF)

    # ------------------------------------------------------------------
    # queues and commands
    # ------------------------------------------------------------------
    def process_commands(self, limit: Optional[int] = None) -> int:
        """Run queued commands; returns how many completed.

        Re-entrant calls (an ``on_ats_message`` handler that answers an
        ATS.INVAL at once, say) do not run commands themselves: the running
        call picks up whatever they made possible when the current command
        is done.
        """
        if limit is not None:
            limit = _check_int("limit", limit, 32)
        if self._in_commands:
            self._more_commands = True
            return 0
        self._in_commands = True
        done = 0
        try:
            while True:
                self._more_commands = False
                done += commands.process(self, None if limit is None else limit - done)
                if not self._more_commands or (limit is not None and done >= limit):
                    return done
        finally:
            self._in_commands = False

    def fence_state(self) -> str:
        """For IOFENCE.C: "wait" (invalidations outstanding), "timeout" or "ready"."""
        inv = self.invalidations
        if inv.outstanding:
            return "wait"
        if inv.timed_out:
            inv.timed_out.clear()  # reported once, by this fence's cmd_to
            return "timeout"
        return "ready"

    def device_id_fits(self, device_id: int) -> bool:
        """Whether ``device_id`` is not wider than ddtp.iommu_mode and the implementation allow."""
        if device_id >> self.params.device_id_width:
            return False
        _, d1, d2 = ddi(self, device_id)
        mode = self.ddtp_mode
        return not ((mode == 3 and d2) or (mode == 2 and (d1 or d2)))

    def send_ats_message(self, msg: Any) -> None:
        """Deliver an outbound ATS message through ``on_ats_message``."""
        if self.on_ats_message is not None:
            self.on_ats_message(msg)

    def port_write(self, addr: int, data: bytes, qos: Tuple[int, int]) -> None:
        """An IOMMU-initiated write through the memory port, with its QoS IDs."""
        if self.qos_port:
            self.mem.qos = qos
        self.mem.write(addr, data)

    def rd_iommu(self, addr: int, big: bool) -> int:
        """An IOMMU-initiated 8-byte read (queues) with the iommu_qosid QoS IDs."""
        if self.qos_port:
            self.mem.qos = self.iommu_qosid
        return self.rd(addr, 8, big)

    def flush_front_cache(self) -> None:
        """Forget whole-response shortcuts (done by every invalidation)."""
        self._front.clear()

    def tick(self, cycles: int = 1) -> None:
        """Advance time by ``cycles`` clock cycles: iohpmcycles counts them and
        ATS invalidations older than ``IommuParams.ats_inval_timeout`` time out."""
        cycles = _check_int("cycles", cycles, 64)
        self.hpm.tick(cycles)
        before = len(self.invalidations.outstanding)
        self.invalidations.advance(cycles)
        if len(self.invalidations.outstanding) != before and self.params.auto_process:
            self.process_commands()

    def ats_timeout(self) -> int:
        """Declare every outstanding ATS Invalidation Request timed out; returns how many."""
        inv = self.invalidations
        n = len(inv.outstanding)
        for itag in list(inv.outstanding):
            inv.expire(itag)
        if n and self.params.auto_process:
            self.process_commands()
        return n

    def report_fault(self, rec: FaultRecord) -> None:
        """Report a fault record unless DC.tc.DTF suppresses its cause."""
        if not self.dtf or rec.cause in _DTF_REPORTED:
            self.fq.report(rec)

    # ------------------------------------------------------------------
    # PCIe messages from devices
    # ------------------------------------------------------------------
    def page_request(self, msg: PageRequest) -> Optional[PageRequestGroupResponse]:
        """A PCIe "Page Request" (or "Stop Marker") message from a device (§ATS_PRI).

        Queued in the page-request queue, or answered by the IOMMU itself:
        the generated "Page Request Group Response" is sent through
        ``on_ats_message`` and returned.
        """
        if not isinstance(msg, PageRequest):
            raise TypeError("page_request() takes a PageRequest")
        _check_int("device_id", msg.device_id, 24)
        _check_int("addr", msg.addr, 64)
        if msg.addr & 0xFFF:
            raise ValueError("addr of a Page Request is a page address (bits 11:0 zero)")
        _check_int("prg_index", msg.prg_index, 9)
        if msg.process_id is not None:
            _check_int("process_id", msg.process_id, 20)
        return page_request(self, msg)

    def invalidation_completion(self, device_id: int, itag_vector: int, cc: int = 1) -> int:
        """A PCIe ATS "Invalidation Completion" message from ``device_id``.

        ``itag_vector`` has a bit per completed ITAG; ``cc`` is the Completion
        Count (the number of completion messages the device sends for each
        request; 0 means 8).  Returns how many outstanding requests it
        completed; completions for unknown ITAGs are discarded.  With
        ``DC.tc.EN_ATS`` = 0 (or no valid DC) the message is an unsupported
        request: a fault is recorded (TTYP 9, iotval = message code 0x02).
        """
        device_id = _check_int("device_id", device_id, 24)
        itag_vector = _check_int("itag_vector", itag_vector, 32)
        cc = _check_int("cc", cc, 3)
        self.dtf = False
        try:
            if self.ddtp_mode == 0:
                raise Fault(Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED)
            if self.ddtp_mode == 1 or not self.device_id_fits(device_id):
                raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED)
            tc = self.get_dc(device_id)[0]
            self.dtf = bool(tc & _TC.DTF.mask)
            if not tc & _TC.EN_ATS.mask:
                raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED)
        except Fault as f:
            self.report_fault(
                FaultRecord(
                    cause=f.cause,
                    ttyp=Ttyp.PCIE_MESSAGE,
                    iotval=MessageCode.INVALIDATE_COMPLETION,
                    device_id=device_id,
                )
            )
            return 0
        done = self.invalidations.complete(device_id, itag_vector, cc)
        if done and self.params.auto_process:
            self.process_commands()
        return done

    def count_event(self, event: int, did: int, pid: Optional[int], gscid: int, pscid: int) -> None:
        """Count an HPM event for a transaction (-1 = no valid ID)."""
        self.hpm.count(event, did, -1 if pid is None else pid, gscid, pscid)

    # ------------------------------------------------------------------
    # directory lookups (the caching layer overrides these)
    # ------------------------------------------------------------------
    def get_dc(self, device_id: int) -> DC:
        """The device context of ``device_id`` (§GET_DC), through the DDT cache."""
        dc = self.ddt_cache.get(device_id)
        if dc is not None:
            if self.lru:
                _touch(self.ddt_cache, device_id)
            if self.tracer is not None:
                self.tracer("GET_DC", "", f"DC of device {device_id:#x} from the DDT cache")
        else:
            if self.hpm.active:
                self.count_event(Event.DDT_WALK, device_id, None, -1, -1)
            if self.qos_port:
                self.mem.qos = self.iommu_qosid
            dc = locate_dc(self, device_id)
            _cache_insert(self, self.ddt_cache, self.params.ddt_cache_size, device_id, dc)
        return dc

    def get_pc(self, device_id: int, process_id: int, dc: DC, access: int) -> PC:
        """The process context of ``process_id`` under ``dc`` (§GET_PC), through the PDT cache.

        A cached PC is used only with a DC that locates and checks it alike: the
        entry keeps the DC it was located under, and a DC whose ``fsc`` (pdtp),
        ``iohgatp`` or ``tc.SBE/SXL/GADE/GIPC`` differ (software changed the DC
        without ``IODIR.INVAL_DDT`` while the old DC left the DDT cache) misses,
        and the PC is located again under the new DC.  The spec allows the old
        or the new value of a changed entry; a PC read and checked under other
        DC fields is neither.
        """
        key = (device_id, process_id)
        self.last_pc_key = key
        hit = self.pdt_cache.get(key)
        if hit is not None and (hit[1] is dc or self._pc_valid_for(hit[1], dc)):
            if self.lru:
                _touch(self.pdt_cache, key)
            if self.tracer is not None:
                self.tracer("GET_PC", "", f"PC of process_id {process_id:#x} from the PDT cache")
            return hit[0]
        if self.hpm.active:
            self.count_event(Event.PDT_WALK, device_id, process_id, -1, -1)
        pc = self._locate_pc(process_id, dc, access)
        if hit is not None:  # located under another DC: replace it
            del self.pdt_cache[key]
        _cache_insert(self, self.pdt_cache, self.params.pdt_cache_size, key, (pc, dc))
        return pc

    def _pc_valid_for(self, old: DC, dc: DC) -> bool:
        """Whether a PC located under ``old`` is located and checked alike under ``dc``:
        same pdtp (DC.fsc), same DC.iohgatp (PDT addresses are GPAs) and same
        DC.tc.SBE (byte order), SXL (PC check 3/4), GADE (A updates of the walk) and
        [GIPC] DC.tc.GIPC (PC format)."""
        deps = _PC_TC_DEPS | self.gipc_tc
        return old[3] == dc[3] and old[1] == dc[1] and not (old[0] ^ dc[0]) & deps

    def _locate_pc(self, process_id: int, dc: DC, access: int) -> PC:
        tc = dc[0]
        fmt = self.pc_fmt if tc & self.gipc_tc else None  # [GIPC] the 32/64-byte PC
        return locate_pc(
            self,
            dc[3],
            process_id,
            dc[1],
            bool(tc & _TC.SBE.mask),
            1 if tc & _TC.SXL.mask else 0,
            access,
            (1 if tc & _TC.GADE.mask else 0) | (2 if tc & _TC.SXL.mask else 0),
            fmt,
        )

    def invalidate_ddt(self, device_id: Optional[int] = None) -> None:
        """Drop cached DCs (all, or one device's) and the PCs cached under them.

        This is what ``IODIR.INVAL_DDT`` does; the command queue calls it.
        """
        if device_id is not None:
            device_id = _check_int("device_id", device_id, 24)
        self.flush_front_cache()
        if device_id is None:
            self.ddt_cache.clear()
            self.pdt_cache.clear()
            return
        self.ddt_cache.pop(device_id, None)
        for key in [k for k in self.pdt_cache if k[0] == device_id]:
            del self.pdt_cache[key]

    def cache_msi(self, key: Tuple[int, int], pte: Tuple[int, int]) -> None:
        """Cache an MSI PTE (tag: GSCID, GPA page)."""
        cap = self.params.msi_cache_size
        if not cap:
            return
        cache = self.msi_cache
        while len(cache) >= cap:
            old = next(iter(cache))
            del cache[old]
            self._msi_unindex(old)
            self.flush_front_cache()
        cache[key] = pte
        self.msi_by_g.setdefault(key[0], set()).add(key)

    def _msi_unindex(self, key: Tuple[int, int]) -> None:
        _unindex_key(self.msi_by_g, key)

    def cache_gwalk(self, key: Tuple[int, int], spa_page: int) -> None:
        """Cache the G-stage translation of a page implicit reads use."""
        cache = self.gwalk_cache
        while len(cache) >= self.params.gwalk_cache_size:
            old = next(iter(cache))
            del cache[old]
            _unindex_key(self.gwalk_by_g, old)
            self.flush_front_cache()
        cache[key] = spa_page
        self.gwalk_by_g.setdefault(key[0], set()).add(key)

    def invalidate_gwalk(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> None:
        """What ``IOTINVAL.GVMA`` does to the G-stage walk cache."""
        _drop_tagged(self.gwalk_cache, self.gwalk_by_g, gv, gscid, lo, hi)

    def touch_msi(self, key: Tuple[int, int]) -> None:
        """LRU: an MSI PTE cache entry was used."""
        if self.lru:
            _touch(self.msi_cache, key)

    def invalidate_msi(self, gv: bool, gscid: int, lo: int = 0, hi: int = -1) -> None:
        """What ``IOTINVAL.GVMA`` does to cached MSI PTEs: all, one GSCID's, or one
        GSCID's in a GPA range (probing the range's pages when they are fewer)."""
        _drop_tagged(self.msi_cache, self.msi_by_g, gv, gscid, lo, hi)

    def invalidate_pdt(self, device_id: int, process_id: int) -> None:
        """Drop the cached PC of (device_id, process_id): ``IODIR.INVAL_PDT``."""
        device_id = _check_int("device_id", device_id, 24)
        process_id = _check_int("process_id", process_id, 20)
        self.flush_front_cache()
        self.pdt_cache.pop((device_id, process_id), None)

    # ------------------------------------------------------------------
    # error injection
    # ------------------------------------------------------------------
    def inject_datapath_error(self, count: int = 1) -> None:
        """Make the next ``count`` requests fail with "Internal data path error" (272)."""
        self._datapath_errors += _check_int("count", count, 32)

    # ------------------------------------------------------------------
    # requests
    # ------------------------------------------------------------------
    def translate(self, req: Request, debug: bool = False) -> Response:
        """Translate one device request (§P2IOVA) and return the response.

        A fault the spec asks to report is written to the fault queue.
        ``debug`` marks a request of the debug translation interface.
        """
        if not isinstance(req, Request):
            raise TypeError("translate() takes a Request")
        did = req.device_id
        addr = req.addr
        pid = req.process_id
        length = req.length
        data = req.data
        # API edge: the common case costs four type tests; anything else is checked fully
        if not (
            type(did) is int
            and type(addr) is int
            and type(length) is int
            and 0 <= did < 1 << 24
            and 0 <= addr < 1 << 64
            and 0 <= length < 1 << 64
            and (pid is None or (type(pid) is int and 0 <= pid < 1 << 20))
            and (data is None or (type(data) is int and 0 <= data < 1 << 32))
        ):
            did = _check_int("device_id", did, 24)
            addr = _check_int("addr", addr, 64)
            length = _check_int("length", length, 64)
            if pid is not None:
                pid = _check_int("process_id", pid, 20)
            if data is not None:
                data = _check_int("data", data, 32)
        access = req.access
        if type(access) is not Access:
            access = _check_enum("access", access, Access)
        kind = req.kind
        if type(kind) is not RequestKind:
            kind = _check_enum("kind", kind, RequestKind)
        priv = bool(req.priv) and pid is not None
        if self.hpm.active:
            self.count_event(_REQUEST_EVENT[kind], did, pid, -1, -1)
        front = self._front
        if (
            self._front_on
            and kind != RequestKind.ATS_TRANSLATION
            and data is None
            and self.tracer is None
        ):
            key = (did, -1 if pid is None else pid, priv, access | (kind << 2), addr >> 12)
            hit = front.get(key)
            if hit is not None and (addr & 0xFFF) + length <= 4096:
                base, perms, g, pbmt, size, tlb_key, pc_key, rcid, mcid = hit
                if self.lru:  # the caches behind this shortcut were used: refresh them
                    _touch(self.ddt_cache, did)
                    if pc_key is not None:
                        _touch(self.pdt_cache, pc_key)
                    if tlb_key is not None:
                        self.iotlb.touch(tlb_key)
                return Response(
                    Status.SUCCESS,
                    base | (addr & 0xFFF),
                    None,
                    False,
                    bool(perms & PERM_R),
                    bool(perms & PERM_W),
                    bool(perms & PERM_X),
                    False,
                    g,
                    priv,
                    False,
                    pbmt,
                    size > 4096,
                    0,
                    size,
                    rcid=rcid,
                    mcid=mcid,
                )
        else:
            key = None
        self.dtf = False
        self.qos = self.iommu_qosid
        self.last_tlb_key = None
        self.last_pc_key = None
        try:
            if self._datapath_errors:
                self._datapath_errors -= 1
                raise Fault(Cause.INTERNAL_DATAPATH_ERROR)
            crossing = (
                kind != RequestKind.ATS_TRANSLATION
                and self.params.fault_page_crossing
                and (addr & 0xFFF) + length > 4096
            )
            spa, perms, g, pbmt, size, msi = translate_iova(
                self, did, addr, access, pid, priv, kind, data, debug, bool(req.no_write), crossing
            )
        except Fault as f:
            rsp = self._fault_response(f, did, addr, access, pid, priv, kind)
            if req.cxl and rsp.status == Status.SUCCESS:  # an ATS completion with R = W = 0
                rsp.cxl_io = cxl_io(self, f.cause == Cause.MSI_PTE_NOT_VALID, 0)
            return rsp
        rcid, mcid = self.qos
        if kind == RequestKind.ATS_TRANSLATION:
            # the completion: address with the S bit / NAPOT size, R, W, Exe,
            # U (untranslated only: MRIF), Priv, Global, N = 0, AMA = 0
            caddr, s = encode_range(spa, size)
            cxl = bool(req.cxl) and cxl_io(self, msi is not None, pbmt)
            if self.tracer is not None:
                self.tracer("ATS_FAULTS", "", f"completion: range {size:#x}, CXL.io = {int(cxl)}")
            return Response(
                Status.SUCCESS,
                caddr,
                r=bool(perms & PERM_R),
                w=bool(perms & PERM_W),
                x=bool(perms & PERM_X),
                u=msi is not None and msi[1],
                g=g and pid is not None and msi is None,
                priv=priv,
                pbmt=pbmt,
                s=s,
                size=size,
                is_msi=msi is not None,
                is_mrif=msi is not None and msi[1],
                mrif_addr=msi[2] if msi else 0,
                notice_addr=msi[3] if msi else 0,
                nid=msi[4] if msi else 0,
                rcid=rcid,
                mcid=mcid,
                cxl_io=cxl,
            )
        if msi is None:
            g = g and pid is not None
            if key is not None and (perms or size):
                if len(front) >= self.params.iotlb_size:
                    front.clear()
                front[key] = (
                    spa & ~0xFFF,
                    perms,
                    g,
                    pbmt,
                    size,
                    self.last_tlb_key,
                    self.last_pc_key,
                    rcid,
                    mcid,
                )
            return Response(
                Status.SUCCESS,
                spa,
                r=bool(perms & PERM_R),
                w=bool(perms & PERM_W),
                x=bool(perms & PERM_X),
                g=g,
                priv=priv,
                pbmt=pbmt,
                size=size,
                s=size > 4096,
                rcid=rcid,
                mcid=mcid,
            )
        return Response(
            Status.SUCCESS,
            spa,
            r=bool(perms & PERM_R),
            w=bool(perms & PERM_W),
            u=msi[1],
            priv=priv,
            size=4096,
            is_msi=True,
            is_mrif=msi[1],
            mrif_addr=msi[2],
            notice_addr=msi[3],
            nid=msi[4],
            rcid=rcid,
            mcid=mcid,
        )

    def _fault_response(
        self,
        f: Fault,
        did: int,
        addr: int,
        access: int,
        pid: Optional[int],
        priv: bool,
        kind: int,
    ) -> Response:
        cause = f.cause
        if self.tracer is not None:
            self.tracer("FAULT", "", f"stop and report cause {cause}: {Cause(cause).description}")
        rec = FaultRecord(
            cause=cause,
            ttyp=_TTYP[(kind, access)],  # type: ignore[index]
            iotval=addr,
            iotval2=f.iotval2,
            device_id=did,
            process_id=pid if pid is not None else 0,
            pv=pid is not None,
            priv=priv,
        )
        reported = not self.dtf or cause in _DTF_REPORTED
        if kind == RequestKind.ATS_TRANSLATION and cause in _ATS_NO_ACCESS_CAUSES:
            # §ATS_FAULTS: Success with R = W = 0, nothing logged
            return Response(Status.SUCCESS, 0, fault=rec, reported=False, priv=priv)
        if reported:
            self.fq.report(rec)
        if cause in _UR_CAUSES:
            status = Status.UNSUPPORTED_REQUEST
        else:
            status = Status.COMPLETER_ABORT
        return Response(status, 0, fault=rec, reported=reported)
