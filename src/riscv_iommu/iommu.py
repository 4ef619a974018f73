"""The IOMMU: state, register file and the request entry points."""

from __future__ import annotations

import struct
from typing import (
    Any,
    Callable,
    Dict,
    Final,
    FrozenSet,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import commands
from . import formats as F
from ._fault import Fault
from ._mypyc import mypyc_attr
from .ats import InvalidationTracker, MessageCode, cxl_io, encode_range, page_request
from .capabilities import IGS, Capabilities, IommuParams
from .checkpoint import Overlay, Snapshot, restore_snapshot, take_snapshot
from .ddt import DC, dc_fast_masks, dc_fctl_masks
from .debug import DebugInterface
from .events import (
    AtsMessageEvent,
    Check,
    CompletionEvent,
    MemAccess,
    Observer,
    RequestEvent,
    ResponseEvent,
    Stats,
    Step,
)
from .events import Event as ModelEvent
from .gipc import pc_format
from .hpm import Event, Hpm
from .interrupts import Interrupts
from .ioatc import Cache, Ioatc, Iotlb, cached_dc
from .memory import MemoryAccessError, MemoryFault, SparseMemory
from .paging import leaf_tests, signed64
from .pdt import PC, PID_WIDTH, pc_fast_masks
from .queues import CommandQueue, FaultQueue, PageRequestQueue
from .registers import REG, build_register_map, emit_reg_writes
from .trace import Explanation
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
    success_response,
)

__all__ = ["Iommu", "REG", "Snapshot"]


_TC: Final = F.DC_TC
_PTE: Final = F.PTE

# Causes answered with Unsupported Request; all other faults are Completer Abort.
_UR_CAUSES: Final = frozenset(
    {
        Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED,
        Cause.DDT_ENTRY_LOAD_ACCESS_FAULT,
        Cause.DDT_ENTRY_NOT_VALID,
        Cause.DDT_ENTRY_MISCONFIGURED,
        Cause.TRANSACTION_TYPE_DISALLOWED,
    }
)
# §ATS_FAULTS: ATS translation requests answered "Success, R=W=0", not reported.
_ATS_NO_ACCESS_CAUSES: Final = frozenset(
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
_DTF_REPORTED: Final = frozenset(c for c in Cause if c.reported_if_dtf)

_TTYP: Final = {
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
_REQUEST_EVENT: Final = (
    Event.UNTRANSLATED_REQUEST,
    Event.TRANSLATED_REQUEST,
    Event.ATS_TRANSLATION_REQUEST,
)
# Stats.counts indexes (events.REQUEST_KINDS) beyond the RequestKind values
_DEBUG: Final = 3
_PAGE_REQUEST: Final = 4
_COMPLETION: Final = 5
# enum members in globals: an Enum attribute lookup costs more than the test
_ATS: Final = RequestKind.ATS_TRANSLATION
_SUCCESS: Final = Status.SUCCESS


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
        member: _E = enum(value)
    except ValueError:
        raise ValueError(f"{name} must be {what}, not {value!r}") from None
    return member


@mypyc_attr(allow_interpreted_subclasses=True)  # testbenches subclass it
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
        # read on every request (attributes of the model: the compiled build reads them natively)
        self.device_id_width = params.device_id_width
        self.qosid = caps.qosid
        self.fault_page_crossing = params.fault_page_crossing
        self.gscid_width = params.gscid_width
        self.pscid_width = params.pscid_width
        self.rcid_width = params.rcid_width
        self.mcid_width = params.mcid_width
        self.gxl_writable = params.gxl_writable
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
        #: what the common-case tests of the DC and PC checks accept (GET_DC step 10:
        #: ddt.dc_fast_masks; GET_PC step 12: pdt.pc_fast_masks)
        (self.dc_tc_fast, self.dc_ta_fast, self.dc_hg_fast, self.dc_pdtp_ok, self.dc_iosatp_ok) = (
            dc_fast_masks(self)
        )
        self.pc_ta_fast, self.pc_fsc_ok = pc_fast_masks(self)
        self.pte_nl_rsv = _PTE.mask_of("D", "A", "U", "N", "PBMT")
        self.pte32_nl_rsv = F.PTE32.mask_of("D", "A", "U")
        # the page-table walks (paging.py), per configuration: PTW step 3 of an 8-byte
        # non-leaf PTE in one test (pte & pte_nl_bad must be V); the same with the PPN
        # bits that point at or beyond 2**PAS (pte & pte_ptr_bad == V: a valid pointer
        # to a table the walk may read in place); the page number of pa_limit; the
        # leaf tests of PTW steps 3, 5 and 7 (paging.leaf_tests)
        # (both through paging.signed64: signed in the compiled build)
        nl_bad = _PTE.V.mask | _PTE.W.mask | rsv | self.pte_nl_rsv
        pas_bad = _PTE.PPN.mask & ~(((1 << max(caps.pas - 12, 0)) - 1) << _PTE.PPN.lsb)
        self.pte_nl_bad = signed64(nl_bad)
        self.pte_ptr_bad = signed64(nl_bad | pas_bad)
        self.pa_pages = self.pa_limit >> 12
        self.s_leaf, self.g_leaf = leaf_tests(rsv)
        #: rd(addr, size, big) -> int: one implicit read through the memory port;
        #: rd_words(addr, n, big): n doublewords at addr (a structure: DC, PC...)
        self.rd_words: Callable[[int, int, bool], Tuple[int, ...]]
        self.rd: Callable[[int, int, bool], int] = self._make_reader()
        #: the observer of the event stream: None (nothing attached), the one
        #: attached observer, or a fan-out to several (see attach)
        self.emit: Optional[Observer] = None
        self._observers: List[Observer] = []
        #: the caches (IOATC: DDT, PDT, IOTLB, MSI PTE, G-stage walk) and the
        #: whole-response shortcut; the spec processes reach them through it
        self.ioatc = Ioatc(params)
        #: exact statistics: the caches' own counters, faults, requests
        self.stats = Stats()
        self.stats.caches = {c.name: c.stats for c in self.ioatc.caches}
        # registers
        self._fctl = 0
        self.be = False
        self.gxl = 0
        self.g_modes: FrozenSet[int] = self._g_modes[0]
        self._set_fctl(fctl, reset=True)
        self.ddtp_mode = int(params.reset_iommu_mode)
        self.ddtp_ppn = 0
        #: the widest device_id ddtp.iommu_mode supports (§P2IOVA step 5)
        self.did_bits = self._did_bits()
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
        self.iotlb: Iotlb = self.ioatc.iotlb
        #: the G-stage walk cache (paging.implicit_read looks it up inline)
        self.gwalk: Cache = self.ioatc.gwalk
        # the shortcut and the caches it replays (translate's hot path)
        self._front = self.ioatc.front
        self._ddt: Cache = self.ioatc.ddt
        self._pdt: Cache = self.ioatc.pdt
        self._nreq = self.stats.counts
        self.invalidations = InvalidationTracker(params.ats_inval_timeout)
        self._in_commands = False
        self._more_commands = False
        self._in_mmio = False
        self._doorbell = False
        self.qos_port = hasattr(mem, "qos")
        self._regs = build_register_map(self)
        #: Outbound ports: ATS messages, wired interrupts (vector, level),
        #: and IOFENCE.C's global-observability request (PR, PW).
        self.on_ats_message: Optional[Callable[[Any], None]] = None
        self.on_wired_interrupt: Optional[Callable[[int, bool], None]] = None
        self.on_fence: Optional[Callable[[bool, bool], None]] = None
        self._tracer: Optional[Callable[..., None]] = None
        self._tracer_obs: Optional[Observer] = None

    def _make_reader(self) -> Callable[[int, int, bool], int]:
        mem = self.mem
        limit = self.pa_limit
        port_read = mem.read

        def slow(addr: int, size: int, big: bool) -> int:
            if addr + size > limit:  # beyond capabilities.PAS: a PMA violation
                raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, size)
            return int.from_bytes(port_read(addr, size), "big" if big else "little")

        def slow_words(addr: int, n: int, big: bool) -> Tuple[int, ...]:
            return tuple([slow(addr + 8 * k, 8, big) for k in range(n)])

        self.rd_words = slow_words

        #: the port's pages when it is a SparseMemory (the walks read PTEs in place:
        #: paging._U64), else None; ``port_faults`` its injected faults
        self.pages: Optional[Dict[int, bytearray]] = None
        self.port_faults: List[Any] = []
        if type(mem) is not SparseMemory:
            return slow
        # SparseMemory fast path: read the page dict directly (same package)
        pages = self.pages = mem._pages
        injections = self.port_faults = mem._injections
        unpack = {
            (8, False): struct.Struct("<Q").unpack_from,
            (8, True): struct.Struct(">Q").unpack_from,
            (4, False): struct.Struct("<I").unpack_from,
            (4, True): struct.Struct(">I").unpack_from,
        }
        u64le = unpack[8, False]
        get = pages.get
        words = {
            (n, big): struct.Struct(("<", ">")[big] + "Q" * n).unpack_from
            for n in (2, 4, 8)
            for big in (False, True)
        }

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

        def rd_words(addr: int, n: int, big: bool) -> Tuple[int, ...]:
            # one unpack of a whole structure within a page (a DC, a PC, an MSI PTE)
            off = addr & 0xFFF
            if injections or addr + 8 * n > limit or off > 4096 - 8 * n or (n, big) not in words:
                return slow_words(addr, n, big)
            page = get(addr >> 12)
            if page is None:
                return (0,) * n
            return words[n, big](page, off)

        self.rd_words = rd_words
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
        #: DC.tc bits the common case of GET_DC step 10 has: SBE = fctl.BE, SXL = fctl.GXL
        #: (ddt.dc_fast_masks); and its supported iosatp.MODE values (by DC.tc.SXL = GXL)
        self.dc_tc_want, self.dc_iosatp_gxl = dc_fctl_masks(self)

    def _set_ddtp(self, value: int) -> None:
        mode = F.DDTP.iommu_mode.get(value)
        # WARL: an unsupported mode leaves iommu_mode unchanged
        if mode <= self.params.max_iommu_mode:
            self.ddtp_mode = mode
            self.did_bits = self._did_bits()
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
            self.ioatc.clear()
        self.ioatc.flush_front()
        self.intr.refresh()

    def write_ddtp(self, value: int) -> None:
        """ddtp: iommu_mode (WARL) and PPN."""
        self._set_ddtp(value)
        self.ioatc.flush_front()

    def write_cqt(self, value: int) -> None:
        """cqt: the command-queue doorbell."""
        self.cq.write_tail(value)
        self._auto_process()

    def write_cqcsr(self, value: int) -> None:
        """cqcsr: enabling the queue (or clearing an error) resumes processing."""
        self.cq.write_csr(value)
        self._auto_process()

    def _auto_process(self) -> None:
        """With ``auto_process``: run the commands, once the current MMIO write is done."""
        if self.params.auto_process:
            if self._in_mmio:
                self._doorbell = True  # mmio_write runs them when the write is done
            else:
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
        self.ioatc.flush_front()

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
        2, 4 or 8 and ``value`` must fit in ``size`` bytes (ValueError
        otherwise); for any value that fits a write never raises (every
        register is WARL or ignores what it cannot hold).  A doorbell
        (``cqt``, ``cqcsr``) runs the command queue once the whole write is
        done.
        """
        offset = _check_int("offset", offset, 12)
        size = _check_size(size)
        value = _check_int("value", value, 8 * size)
        if size < 4 or offset % size:
            return
        regs = self._regs
        emit = self.emit
        before = emit_reg_writes(self, offset, size, None) if emit is not None else None
        nested = self._in_mmio
        self._in_mmio = True
        try:
            for k in range(size - 4, -1, -4):
                word = regs.get(offset + k)
                if word is not None:
                    word[1]((value >> (8 * k)) & 0xFFFFFFFF)
        finally:
            self._in_mmio = nested
        if before is not None:
            emit_reg_writes(self, offset, size, before)
        if self._doorbell and not nested:
            self._doorbell = False
            self.process_commands()  # re-entrant from a command: the running call picks it up

    # ------------------------------------------------------------------
    # observers (the event stream, docs/events.md)
    # ------------------------------------------------------------------
    def attach(self, observer: Observer) -> None:
        """Send every event of the model to ``observer`` (any callable taking one event).

        Observers are called in the order they were attached; attaching the
        same observer twice sends it every event twice.
        """
        if not callable(observer):
            raise TypeError("observer must be callable")
        self._observers.append(observer)
        self._set_emit()

    def detach(self, observer: Observer) -> None:
        """Stop sending events to ``observer`` (ValueError when it is not attached)."""
        try:
            self._observers.remove(observer)
        except ValueError:
            raise ValueError("observer is not attached") from None
        self._set_emit()

    @property
    def observers(self) -> Tuple[Observer, ...]:
        """The attached observers."""
        return tuple(self._observers)

    def _set_emit(self) -> None:
        obs = tuple(self._observers)
        emit: Optional[Observer]
        if not obs:
            emit = None
        elif len(obs) == 1:
            emit = obs[0]
        else:

            def emit(event: ModelEvent) -> None:
                for o in obs:
                    o(event)

        self.emit = emit
        self.ioatc.set_emit(emit)

    @property
    def tracer(self) -> Optional[Callable[..., None]]:
        """Deprecated: ``iommu.tracer = riscv_iommu.trace.Tracer()`` attaches the tracer as an
        observer (``iommu.attach``); None detaches it.  Use :meth:`attach` or :meth:`explain`."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Optional[Callable[..., None]]) -> None:
        from .trace import as_observer  # the tracer module sits above the model

        if self._tracer_obs is not None:
            self.detach(self._tracer_obs)
            self._tracer_obs = None
        self._tracer = tracer
        if tracer is not None:
            self._tracer_obs = as_observer(tracer)
            self.attach(self._tracer_obs)

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

    def _did_bits(self) -> int:
        """§P2IOVA step 5 as a width: the bits of the DDI fields ddtp.iommu_mode walks
        (1LVL: DDI[0]; 2LVL: DDI[0] and DDI[1]; 3LVL, Off and Bare: all 24), at most
        the implemented device_id width.  DDI[0] has 7 bits with base DCs and 6 with
        extended ones; DDI[1] has 9 (steps 3 and 4, ``ddt.ddi``)."""
        ddi0 = 6 if self.msi_flat else 7
        width = {2: ddi0, 3: ddi0 + 9}.get(self.ddtp_mode, 24)
        return min(width, self.params.device_id_width)

    def device_id_fits(self, device_id: int) -> bool:
        """Whether ``device_id`` is not wider than ddtp.iommu_mode and the implementation allow."""
        return not device_id >> self.did_bits

    def send_ats_message(self, msg: Any) -> None:
        """Deliver an outbound ATS message through ``on_ats_message``."""
        if self.emit is not None:
            self.emit(AtsMessageEvent(msg))
        if self.on_ats_message is not None:
            self.on_ats_message(msg)

    def port_write(
        self, addr: int, data: bytes, qos: Tuple[int, int], purpose: str = "MSI"
    ) -> None:
        """An IOMMU-initiated write through the memory port, with its QoS IDs.

        ``purpose`` names it in the event stream (``FQ``, ``PQ``, ``MSI``, ``CQ``).
        """
        if self.emit is not None:
            self.emit(MemAccess(addr, len(data), "write", purpose, qos[0], qos[1], self.be))
        if self.qos_port:
            self.mem.qos = qos
        self.mem.write(addr, data)

    def rd_iommu(self, addr: int, big: bool) -> int:
        """An IOMMU-initiated 8-byte read (queues) with the iommu_qosid QoS IDs."""
        if self.qos_port:
            self.mem.qos = self.iommu_qosid
        return self.rd(addr, 8, big)

    def flush_front_cache(self) -> None:
        """Forget the whole-response shortcuts (they are exact without it; kept for callers)."""
        self.ioatc.flush_front()

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

    def fault_detected(self, f: Fault, rec: Optional[FaultRecord] = None) -> None:
        """A fault the IOMMU detected: counted in ``stats.faults``, explained to the
        observers (a failed :class:`~riscv_iommu.events.Check` with its reason) and,
        with a record, reported unless DC.tc.DTF suppresses it."""
        cause = f.cause
        faults = self.stats.faults
        faults[cause] = faults.get(cause, 0) + 1
        if self.emit is not None:
            section, step, fieldname, rule = f.why or ("", "", "", Cause(cause).description)
            self.emit(Check(section, step, rule, False, fieldname, cause))
        if rec is not None:
            self.report_fault(rec)

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
        self._nreq[_PAGE_REQUEST] += 1
        emit = self.emit
        if emit is not None:
            emit(RequestEvent(msg))
        rsp = page_request(self, msg)
        if emit is not None:
            emit(ResponseEvent(msg, rsp))
        return rsp

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
        self._nreq[_COMPLETION] += 1
        self.dtf = False
        self.qos = self.iommu_qosid
        try:
            if self.ddtp_mode == 0:
                why = ("ATS", "", "ddtp.iommu_mode", "ddtp.iommu_mode is Off")
                raise Fault(Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED, 0, why)
            if self.ddtp_mode == 1 or not self.device_id_fits(device_id):
                why = (
                    "ATS",
                    "",
                    "device_id",
                    "ddtp.iommu_mode is Bare"
                    if self.ddtp_mode == 1
                    else "device_id too wide for the DDT",
                )
                raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
            tc = cached_dc(self, device_id)[0]
            self.dtf = bool(tc & _TC.DTF.mask)
            if not tc & _TC.EN_ATS.mask:
                why = (
                    "ATS",
                    "",
                    "DC.tc.EN_ATS",
                    "an Invalidation Completion and DC.tc.EN_ATS is 0",
                )
                raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
        except Fault as f:
            self.fault_detected(
                f,
                FaultRecord(
                    cause=f.cause,
                    ttyp=Ttyp.PCIE_MESSAGE,
                    iotval=MessageCode.INVALIDATE_COMPLETION,
                    device_id=device_id,
                ),
            )
            if self.emit is not None:
                self.emit(CompletionEvent(device_id, itag_vector, cc, 0))
            return 0
        done = self.invalidations.complete(device_id, itag_vector, cc)
        if self.emit is not None:
            self.emit(CompletionEvent(device_id, itag_vector, cc, done))
        if done and self.params.auto_process:
            self.process_commands()
        return done

    def count_event(self, event: int, did: int, pid: Optional[int], gscid: int, pscid: int) -> None:
        """Count an HPM event for a transaction (-1 = no valid ID)."""
        self.hpm.count(event, did, -1 if pid is None else pid, gscid, pscid)

    # ------------------------------------------------------------------
    # the caches (ioatc.py), as testbenches inspect them
    # ------------------------------------------------------------------
    @property
    def ddt_cache(self) -> Dict[int, DC]:
        """Cached device contexts by device_id (``ioatc.ddt.entries``; read-only use)."""
        return self.ioatc.ddt.entries

    @property
    def pdt_cache(self) -> Dict[Tuple[int, int], Tuple[PC, DC]]:
        """Cached process contexts by (device_id, process_id), each with the DC it was
        located under (``ioatc.pdt.entries``)."""
        return self.ioatc.pdt.entries

    @property
    def msi_cache(self) -> Dict[Tuple[int, int], Tuple[int, int]]:
        """Cached MSI PTEs by (GSCID, GPA page) (``ioatc.msi.entries``)."""
        return self.ioatc.msi.entries

    @property
    def gwalk_cache(self) -> Dict[Tuple[int, int], int]:
        """G-stage walk cache: (GSCID, GPA page) -> SPA page (``ioatc.gwalk.entries``)."""
        return self.ioatc.gwalk.entries

    def invalidate_ddt(self, device_id: Optional[int] = None) -> None:
        """Drop cached DCs (all, or one device's) and the PCs cached under them.

        This is what ``IODIR.INVAL_DDT`` does; the command queue calls it.
        """
        if device_id is not None:
            device_id = _check_int("device_id", device_id, 24)
        self.ioatc.inval_ddt(device_id)

    def invalidate_pdt(self, device_id: int, process_id: int) -> None:
        """Drop the cached PC of (device_id, process_id): ``IODIR.INVAL_PDT``."""
        device_id = _check_int("device_id", device_id, 24)
        process_id = _check_int("process_id", process_id, 20)
        self.ioatc.inval_pdt(device_id, process_id)

    # ------------------------------------------------------------------
    # checkpoints and explain
    # ------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The whole model state: registers, caches (and the whole-response shortcut),
        queues' internal state, pending ATS invalidations, HPM counters, interrupt
        state and statistics.

        The memory port's contents are not part of it (memory belongs to the
        port: a testbench checkpoints it itself), nor are the observers and
        outbound callbacks.
        """
        return take_snapshot(self)

    def restore(self, snap: Snapshot) -> None:
        """Go back to the state of :meth:`snapshot` (the same snapshot may be restored
        again).  Memory is the port's: restore it separately if it changed."""
        if not isinstance(snap, Snapshot):
            raise TypeError("snap must be a Snapshot from Iommu.snapshot()")
        restore_snapshot(self, snap)

    def explain(self, req: Request) -> Explanation:
        """Translate ``req`` and return its steps with the reason of any fault, leaving
        the model exactly as it was.

        The model state is checkpointed and restored (:meth:`snapshot`); memory
        writes the translation would make (A/D updates, the fault record, an
        interrupt MSI, an MRIF update) go to an overlay that is dropped, so
        memory is unchanged too; the outbound ports (ATS messages, wired
        interrupts) are not called and the attached observers do not see the
        events.  Reads still go through the memory port.
        """
        if not isinstance(req, Request):
            raise TypeError("explain() takes a Request")
        snap = self.snapshot()
        saved = (self.mem, self.rd, self.on_ats_message, self.on_wired_interrupt, self.on_fence)
        observers = self._observers
        qos = getattr(self.mem, "qos", None) if self.qos_port else None
        events: List[ModelEvent] = []
        self.mem = Overlay(self.mem)
        self.rd = self._make_reader()
        self.on_ats_message = self.on_wired_interrupt = self.on_fence = None
        self._observers = [events.append]
        self._set_emit()
        try:
            rsp = self.translate(req)
        finally:
            self.mem, self.rd, self.on_ats_message, self.on_wired_interrupt, self.on_fence = saved
            self.rd = self._make_reader()  # and the in-place page reads of the real port
            self._observers = observers
            self._set_emit()
            if self.qos_port:
                self.mem.qos = qos
            self.restore(snap)
        return Explanation(req, rsp, events)

    # ------------------------------------------------------------------
    # error injection
    # ------------------------------------------------------------------
    def inject_datapath_error(self, count: int = 1) -> None:
        """Make the next ``count`` requests fail with "Internal data path error" (272)."""
        self._datapath_errors += _check_int("count", count, 32)
        self.ioatc.flush_front()

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
        # API edge: the fields as given (Any: in the compiled build too, the checks
        # below name the argument); the common case costs one expression
        fields: Any = req
        f_did = fields.device_id
        f_addr = fields.addr
        f_pid = fields.process_id
        f_length = fields.length
        f_data = fields.data
        f_access = fields.access
        f_kind = fields.kind
        if not (
            type(f_did) is int
            and type(f_addr) is int
            and type(f_length) is int
            # in range: a negative value shifts to -1, a too wide one to non-zero
            and not (f_did >> 24 | f_addr >> 64 | f_length >> 64)
            and (f_pid is None or (type(f_pid) is int and not f_pid >> 20))
            and (f_data is None or (type(f_data) is int and not f_data >> 32))
            and type(f_access) is Access
            and type(f_kind) is RequestKind
        ):
            f_did = _check_int("device_id", f_did, 24)
            f_addr = _check_int("addr", f_addr, 64)
            f_length = _check_int("length", f_length, 64)
            if f_pid is not None:
                f_pid = _check_int("process_id", f_pid, 20)
            if f_data is not None:
                f_data = _check_int("data", f_data, 32)
            if type(f_access) is not Access:
                f_access = _check_enum("access", f_access, Access)
            if type(f_kind) is not RequestKind:
                f_kind = _check_enum("kind", f_kind, RequestKind)
        did: int = f_did
        addr: int = f_addr
        pid: Optional[int] = f_pid
        length: int = f_length
        data: Optional[int] = f_data
        access: int = f_access
        kind: int = f_kind
        priv = pid is not None and not not fields.priv
        self._nreq[_DEBUG if debug else kind] += 1
        if self.hpm.active:
            self.count_event(_REQUEST_EVENT[kind], did, pid, -1, -1)
        emit = self.emit
        if self._front and emit is None and data is None and kind != _ATS:
            # the whole-response shortcut (ioatc module doc): exact, so it replays
            # the statistics and LRU updates of the cache hits it stands for
            hit = self._front.get(
                (did, -1 if pid is None else pid, priv, access | (kind << 2), addr >> 12)
            )
            if hit is not None and (addr & 0xFFF) + length <= 4096:
                base, r, w, x, g, pbmt, s, size, rcid, mcid, pc_key, tlb_key = hit
                ddt = self._ddt
                ddt.stats.hits += 1
                if self.lru:
                    ddt.entries.move_to_end(did)
                if pc_key is not None:
                    pdt = self._pdt
                    pdt.stats.hits += 1
                    if self.lru:
                        pdt.entries.move_to_end(pc_key)
                if tlb_key is not None:
                    tlb = self.iotlb
                    tlb.stats.hits += 1
                    if self.lru:
                        tlb.entries.move_to_end(tlb_key)
                return success_response(
                    base | (addr & 0xFFF), r, w, x, g, priv, pbmt, s, size, rcid, mcid
                )
        elif emit is not None:
            emit(RequestEvent(req, debug))
        self.dtf = False
        self.qos = self.iommu_qosid
        c = self.ioatc
        c.begin()
        try:
            if self._datapath_errors:
                self._datapath_errors -= 1
                why = ("REQUEST", "", "", "an internal data path error was injected")
                raise Fault(Cause.INTERNAL_DATAPATH_ERROR, 0, why)
            crossing = kind != _ATS and self.fault_page_crossing and (addr & 0xFFF) + length > 4096
            spa, perms, g, pbmt, size, msi = translate_iova(
                self, did, addr, access, pid, priv, kind, data, debug, bool(req.no_write), crossing
            )
        except Fault as f:
            rsp = self._fault_response(f, did, addr, access, pid, priv, kind)
            if req.cxl and rsp.status == Status.SUCCESS:  # an ATS completion with R = W = 0
                rsp.cxl_io = cxl_io(self, f.cause == Cause.MSI_PTE_NOT_VALID, 0)
            if emit is not None:
                emit(ResponseEvent(req, rsp))
            return rsp
        rcid, mcid = self.qos
        if kind == _ATS:
            # the completion: address with the S bit / NAPOT size, R, W, Exe,
            # U (untranslated only: MRIF), Priv, Global, N = 0, AMA = 0
            caddr, s = encode_range(spa, size)
            cxl = bool(req.cxl) and cxl_io(self, msi is not None, pbmt)
            if emit is not None:
                emit(Step("ATS_FAULTS", "", f"completion: range {size:#x}, CXL.io = {int(cxl)}"))
            rsp = Response(
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
        elif msi is None:
            g = g and pid is not None
            r, w, x = perms & PERM_R != 0, perms & PERM_W != 0, perms & PERM_X != 0
            if not c.missed and c.front_size and self.ddtp_mode > 1:
                # served by cache hits alone: the next identical request may take the shortcut
                c.remember(
                    (did, -1 if pid is None else pid, priv, access | (kind << 2), addr >> 12),
                    (
                        spa & ~0xFFF,
                        r,
                        w,
                        x,
                        g,
                        pbmt,
                        size > 4096,
                        size,
                        rcid,
                        mcid,
                        c.pc_key,
                        self.iotlb.last_hit,
                    ),
                )
            rsp = success_response(spa, r, w, x, g, priv, pbmt, size > 4096, size, rcid, mcid)
        else:
            rsp = Response(
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
        if emit is not None:
            emit(ResponseEvent(req, rsp))
        return rsp

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
            self.fault_detected(f)
            return Response(Status.SUCCESS, 0, fault=rec, reported=False, priv=priv)
        self.fault_detected(f, rec)
        if cause in _UR_CAUSES:
            status = Status.UNSUPPORTED_REQUEST
        else:
            status = Status.COMPLETER_ABORT
        return Response(status, 0, fault=rec, reported=reported)
