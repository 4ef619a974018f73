"""The coverage collector: an observer of the model's event stream.

``Collector`` is a callable taking one event (see :mod:`riscv_iommu.events`);
attach it with ``iommu.attach(collector)`` or :meth:`Collector.attach`, which
also records the model's configuration (capabilities and parameters the bins
of the reserved encodings, the DC format and GIPC need).  It counts hits per
bin name in :attr:`Collector.hits`.

A request is sampled as a transaction: from its ``request`` event to its
``response`` event the collector keeps what the walk read (the DC, the PC,
the first-stage and G-stage PTEs with their levels, the MSI PTE), which
caches hit and which checks failed; the response then decides the bins that
need the outcome.  Everything else (commands, queue records, interrupts,
register writes, ATS messages) is sampled as it comes.

What the collector assumes of the stream (the contract in ``events.py``):

* a ``read`` event of a multi-doubleword structure (DC, PC, MSI PTE) holds
  doubleword *k* in bits ``64k+63:64k`` of ``raw`` (``size`` > 8), or the
  doublewords come one event each in address order;
* ``level`` of ``S_PTE`` / ``G_PTE`` reads is the page-table level (the root
  has level LEVELS-1), so the first read of a walk gives the mode;
* a failed configuration check is ``check(passed=False)`` with ``cause``
  259 (DC) or 267 (PC) and the rule's text from ``DC_RULES`` /
  ``PC_RULES`` / ``GIPC_PC_RULES`` in ``rule`` (or its number in ``step``
  with a section naming ``DC_MISCONFIG`` / ``PC_MISCONFIG``);
* a page request arrives as ``request(req=PageRequest)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .. import formats as F
from ..ddt import DC_RULES
from ..gipc import GIPC_PC_RULES, PC_2024_32, PC_2024_64, PC_2025
from ..paging import G_MODES as G_GEOMETRY
from ..pdt import PC_RULES, PID_WIDTH
from ..registers import REG
from ..types import Access, Cause, PageRequest, RequestKind, Status
from .model import BINS, G_MODES, S_MODES, STRUCTURES

__all__ = ["Config", "Collector", "collect"]

_M64 = (1 << 64) - 1
_V = F.PTE.V.mask
_R = F.PTE.R.mask
_W = F.PTE.W.mask
_X = F.PTE.X.mask
_U = F.PTE.U.mask
_A = F.PTE.A.mask
_D = F.PTE.D.mask
_N = F.PTE.N.mask
_RX = _R | _X
_PBMT = F.PTE.PBMT
_RSW = F.PTE.RSW60_59
_RSV = F.PTE.reserved  # bits 58:54
_NL_ATTR64 = F.PTE.mask_of("D", "A", "U", "N", "PBMT")
_NL_ATTR32 = F.PTE32.mask_of("D", "A", "U")
_PPN64 = F.PTE.PPN
_PPN32 = F.PTE32.PPN
_PERM = {Access.READ: _R, Access.WRITE: _W, Access.EXECUTE: _X}
_MODE_SHIFT = F.IOHGATP.MODE.lsb
_TC_T2GPA = F.DC_TC.T2GPA.mask
_TC_SXL = F.DC_TC.SXL.mask
_PC_SUM = F.PC_TA.SUM.mask
_MSI_C = F.MSIPTE0.C.mask
_MSI_M = F.MSIPTE0.M

_PAGE_FAULTS = frozenset(
    {Cause.INSTRUCTION_PAGE_FAULT, Cause.READ_PAGE_FAULT, Cause.WRITE_PAGE_FAULT}
)
_GUEST_PAGE_FAULTS = frozenset(
    {
        Cause.INSTRUCTION_GUEST_PAGE_FAULT,
        Cause.READ_GUEST_PAGE_FAULT,
        Cause.WRITE_GUEST_PAGE_FAULT,
    }
)
_MSI_FAULTS = {
    Cause.MSI_PTE_LOAD_ACCESS_FAULT: "msi.fault.261",
    Cause.MSI_PT_DATA_CORRUPTION: "msi.fault.270",
    Cause.MSI_PTE_NOT_VALID: "msi.fault.262",
    Cause.MRIF_ACCESS_FAULT: "msi.fault.264",
    Cause.MSI_MRIF_DATA_CORRUPTION: "msi.fault.271",
}
_DC_TEXT = {t: n for n, t in DC_RULES.items()}
_PC_ALL = {**PC_RULES, **GIPC_PC_RULES}
_PC_TEXT = {t: n for n, t in _PC_ALL.items()}
_ENDIAN = frozenset(s for s, _ in STRUCTURES)
#: GPA width of each G-stage mode by number of levels (x4: two more root bits)
_G_WIDTH = {geom[0]: geom[3] for modes in G_GEOMETRY for geom in modes.values()}
_GIPC_FORMATS = {f.name: f for f in (PC_2024_32, PC_2024_64, PC_2025)}
#: [GIPC] (PC size in doublewords, index of ta, index of iohgatp) per format
_GIPC_PC = {
    n: (f.size // 8, f.offsets["ta"] // 8, f.offsets["iohgatp"] // 8)
    for n, f in _GIPC_FORMATS.items()
}
#: what an implicit G-stage walk translates (``walk`` of G_PTE reads)
_IMPLICIT = frozenset({"PDTE", "PC", "S_PTE", "S_PTE_AD"})
#: writes to xqb / xqcsr restart the index the IOMMU owns
_REG_CQ = (REG.CQB, REG.CQCSR)
_REG_FQ = (REG.FQB, REG.FQCSR)
_REG_PQ = (REG.PQB, REG.PQCSR)
_IOHPMEVT1 = REG.IOHPMEVT1
_HPM_ID = F.IOHPMEVT.eventID
#: bound of the DC / PC shadows (entries); cleared when full
SHADOW_LIMIT = 4096


@dataclass(frozen=True)
class Config:
    """What the collector needs to know of the model it observes."""

    msi_flat: bool = True
    msi_mrif: bool = True
    svpbmt: bool = True
    svrsw60t59b: bool = True
    gipc: bool = True
    gipc_revision: str = "2024"
    gipc_tc_bit: int = 12
    gxl: int = 0

    @classmethod
    def of(cls, iommu: Any) -> "Config":
        """The configuration of an :class:`~riscv_iommu.Iommu`."""
        caps = iommu.caps
        params = iommu.params
        return cls(
            msi_flat=bool(caps.msi_flat),
            msi_mrif=bool(caps.msi_mrif),
            svpbmt=bool(caps.svpbmt),
            svrsw60t59b=bool(caps.svrsw60t59b),
            gipc=bool(caps.gipc),
            gipc_revision=str(params.gipc_revision),
            gipc_tc_bit=int(params.gipc_tc_bit),
            gxl=int(iommu.gxl),
        )

    @property
    def pc_format(self) -> str:
        """The name of the GIPC PC format of this configuration."""
        if self.gipc_revision == "2025":
            return "2025-32B"
        return "2024-64B" if self.msi_flat else "2024-32B"


def _words(raw: int, n: int) -> List[int]:
    return [(raw >> (64 * k)) & _M64 for k in range(n)]


class Collector:
    """Counts coverage bins from the events it is called with.

    ``hits`` may be a dict shared with other collectors (one per model, one
    dict per test, say); ``config`` describes the observed model (see
    :meth:`attach`).
    """

    def __init__(
        self, config: Optional[Config] = None, hits: Optional[Dict[str, int]] = None
    ) -> None:
        if config is not None and not isinstance(config, Config):
            raise TypeError("config must be a coverage Config")
        if hits is not None and not isinstance(hits, dict):
            raise TypeError("hits must be a dict")
        self.config = config if config is not None else Config()
        #: bin name -> hits
        self.hits: Dict[str, int] = hits if hits is not None else {}
        self._dc_shadow: Dict[int, Tuple[int, ...]] = {}
        self._pc_shadow: Dict[Tuple[int, int], Tuple[int, ...]] = {}
        self._hpm: Dict[int, int] = {}
        self._hpm_active: Set[int] = set()
        self._cq_last = -1
        self._fq_last = -1
        self._pq_last = -1
        self._qwrite = ""
        self._intr_msi = False
        self._gipc_seen = False
        self._seq9 = 0
        self._handlers = {
            "request": self._request,
            "response": self._response,
            "read": self._read,
            "check": self._check,
            "cache": self._cache,
            "mem": self._mem,
            "command": self._command,
            "reg_write": self._reg_write,
            "queue_record": self._queue_record,
            "interrupt": self._interrupt,
            "ats_message": self._ats_message,
            "ats_completion": self._completion,
        }
        self._begin(None, False)

    # ------------------------------------------------------------------
    def attach(self, iommu: Any) -> "Collector":
        """Record ``iommu``'s configuration and observe it; returns self."""
        self.config = Config.of(iommu)
        iommu.attach(self)
        return self

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if self._qwrite and kind != "queue_record":
            # a record write with no record written: the write faulted (xqmf)
            self.hit(f"queue.{self._qwrite}.mf")
            self._qwrite = ""
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event)

    def hit(self, name: str) -> None:
        """Count one hit of bin ``name``."""
        h = self.hits
        h[name] = h.get(name, 0) + 1

    @property
    def covered(self) -> Set[str]:
        """Names of the model's bins hit so far."""
        return {n for n in self.hits if n in BINS}

    # ------------------------------------------------------------------
    # transactions
    # ------------------------------------------------------------------
    def _begin(self, req: Any, debug: bool) -> None:
        self._req = req
        self._pri = isinstance(req, PageRequest)
        self._debug = debug
        self._did = getattr(req, "device_id", -1) if req is not None else -1
        pid = getattr(req, "process_id", None) if req is not None else None
        self._pid: Optional[int] = pid
        self._dc: Optional[Tuple[int, ...]] = None
        self._dc_acc: List[int] = []
        self._ddte = 0
        self._dir_walk = False
        self._pc: Optional[Tuple[int, ...]] = None
        self._pc_acc: List[int] = []
        self._pc_used = False
        self._pc_fmt = ""
        self._pdte = 0
        self._pdt_walk = False
        self._gipc_dc = False
        self._gipc_pc = False
        self._s_prev = -1
        self._s_levels = 0
        self._s_last: Optional[Tuple[int, int, int, int]] = None
        self._s_leaf: Optional[Tuple[int, int, int, int]] = None
        self._s_reads = False
        self._g_prev = -1
        self._g_levels = 0
        self._g_walk = ""
        self._g_write = False
        self._g_last: Optional[Tuple[int, int, int, int]] = None
        self._g_leaf: Optional[Tuple[int, int, int, int]] = None
        self._g_walks: Set[str] = set()
        self._last_stage = ""
        self._msi_acc: List[int] = []
        self._msi_seen = False
        self._msg_cause = 0

    def _request(self, ev: Any) -> None:
        req = ev.req
        self._begin(req, bool(getattr(ev, "debug", False)))
        kind = getattr(req, "kind", None)
        if kind is not None and not self._pri:
            self._hpm_event(int(kind) + 1)  # events 1, 2, 3

    # ------------------------------------------------------------------
    def _read(self, ev: Any) -> None:
        s = ev.structure
        raw = ev.raw
        if s == "S_PTE":
            self._pte(raw, ev.level, ev.addr, False, "")
        elif s == "G_PTE":
            self._pte(raw, ev.level, ev.addr, True, ev.walk)
        elif s == "DDTE":
            self._walk_ddt()
            self._ddte += 1
        elif s == "DC":
            self._dc_read(raw, ev.size > 8 or raw >> 64 > 0)
        elif s == "PDTE":
            self._walk_pdt()
            self._pdte += 1
        elif s == "PC":
            self._pc_read(raw, ev.size > 8 or raw >> 64 > 0, ev.format)
        elif s == "MRIF":  # the IOMMU reads the MRIF to record an MSI in it
            self.hit("msi.mrif.recorded")
        elif s == "MSI_PTE":
            self._msi_seen = True
            if ev.size > 8 or raw >> 64:  # both doublewords in one event
                self._msi_acc = _words(raw, 2)
            else:
                self._msi_acc.append(raw)

    def _walk_ddt(self) -> None:
        if not self._dir_walk:
            self._dir_walk = True
            self._hpm_event(5)

    def _walk_pdt(self) -> None:
        if not self._pdt_walk:
            self._pdt_walk = True
            self._hpm_event(6)

    def _dc_read(self, raw: int, whole: bool) -> None:
        n = 8 if self.config.msi_flat else 4
        if not self._dc_acc:  # the first doubleword of a DC
            self._walk_ddt()
            self.hit(f"ddt.{min(self._ddte, 2) + 1}LVL")
            self.hit("ddt.dc.extended" if n == 8 else "ddt.dc.base")
            self._ddte = 0
        if whole:  # the structure in one event
            self._dc_acc = _words(raw, n)
        else:
            self._dc_acc.append(raw)
        if len(self._dc_acc) >= n:
            self._set_dc(tuple(self._dc_acc[:n]))
            if self._did >= 0:
                if len(self._dc_shadow) >= SHADOW_LIMIT:
                    self._dc_shadow.clear()
                self._dc_shadow[self._did] = self._dc or ()
            self._dc_acc = []

    def _set_dc(self, dc: Tuple[int, ...]) -> None:
        self._dc = dc
        cfg = self.config
        self._gipc_dc = bool(cfg.gipc and dc and dc[0] >> cfg.gipc_tc_bit & 1)
        if self._gipc_dc:
            self._gipc_seen = True

    def _pc_size(self) -> Tuple[int, int, int]:
        if self._gipc_dc:
            return _GIPC_PC[self._pc_fmt or self.config.pc_format]
        return 2, 0, -1

    def _pc_read(self, raw: int, whole: bool, fmt: str) -> None:
        if fmt in _GIPC_PC:  # the stream names the [GIPC] PC format
            self._pc_fmt = fmt
        n, ta, hg = self._pc_size()
        if not self._pc_acc:
            self._walk_pdt()
            self.hit(("pdt.PD8", "pdt.PD17", "pdt.PD20")[min(self._pdte, 2)])
            self._pdte = 0
        if whole:  # the structure in one event
            self._pc_acc = _words(raw, n)
        else:
            self._pc_acc.append(raw)
        if len(self._pc_acc) < n:
            return
        pc = tuple(self._pc_acc[:n])
        self._pc_acc = []
        self._pc = pc
        if not pc[ta] & 1:  # PC.ta.V = 0: not a selected PC
            return
        self._pc_used = True
        if self._pid is not None and self._did >= 0:
            if len(self._pc_shadow) >= SHADOW_LIMIT:
                self._pc_shadow.clear()
            self._pc_shadow[(self._did, self._pid)] = pc
        if self._gipc_dc:
            self._gipc_pc = True
            rev = self.config.gipc_revision
            fmt = self._pc_fmt or self.config.pc_format
            self.hit(f"gipc.{rev}.pc64" if fmt == "2024-64B" else f"gipc.{rev}.pc32")
            dc = self._dc
            if dc is not None and dc[1] >> _MODE_SHIFT and not self._g_walks & {"PDTE", "PC"}:
                self.hit(f"gipc.{rev}.decision.6")

    def _pc_ta(self) -> Optional[int]:
        pc = self._pc if self._pc_used else None
        if pc is None and self._pid is not None:
            pc = self._pc_shadow.get((self._did, self._pid))
        if pc is None:
            return None
        n, ta, _ = self._pc_size()
        return pc[ta] if len(pc) == n else None

    # ------------------------------------------------------------------
    # page tables
    # ------------------------------------------------------------------
    def _pte(self, raw: int, level: int, addr: int, g: bool, walk: str) -> None:
        stage = "g" if g else "s"
        prev = self._g_prev if g else self._s_prev
        if prev < 0 or level >= prev:  # the root of a new walk
            levels = level + 1
            if g:
                self._g_levels = levels
                self._g_walk = walk
                # the implicit write of a first-stage A/D update
                self._g_write = walk == "S_PTE_AD"
                if walk in _IMPLICIT:
                    self._g_walks.add(walk)
                    self.hit(f"g.implicit.{walk}")
                else:
                    self._hpm_event(8)
            else:
                self._s_levels = levels
                self._s_reads = True
                self._hpm_event(7)
        levels = self._g_levels if g else self._s_levels
        entry = (raw, level, addr, levels)
        self._last_stage = stage
        if raw & _RX:  # a leaf (PTW step 4): the walk ends here
            mode = (G_MODES if g else S_MODES).get(levels)
            if raw & _V and mode is not None:
                self.hit(f"{stage}.{mode}.leaf{level}")
                if levels != 2:  # 8-byte PTEs: Svnapot, Svpbmt, Svrsw60t59b
                    if raw & _N and not level and _PPN64.get(raw) & 0xF == 0b1000:
                        self.hit(f"{stage}.napot64k")
                    pbmt = _PBMT.get(raw)
                    if pbmt < 3:
                        self.hit(f"{stage}.pbmt.{('PMA', 'NC', 'IO')[pbmt]}")
                    rsw = _RSW.get(raw)
                    if rsw & 1:
                        self.hit(f"{stage}.rsw.bit59")
                    if rsw & 2:
                        self.hit(f"{stage}.rsw.bit60")
            prev = -1
            if g:
                self._g_leaf = entry
            else:
                self._s_leaf = entry
        else:
            prev = level
        if g:
            self._g_prev = prev
            self._g_last = entry
        else:
            self._s_prev = prev
            self._s_last = entry

    def _ad(self, addr: int) -> None:
        s, g = self._s_leaf, self._g_leaf
        if s is not None and s[2] == addr:
            stage = "s"
        elif g is not None and g[2] == addr:
            stage = "g"
        else:
            stage = self._last_stage
        leaf = s if stage == "s" else g
        if leaf is None:
            return
        raw = leaf[0]
        req = self._req
        write = (
            req is not None
            and not self._pri
            and req.access == Access.WRITE
            and req.kind != RequestKind.ATS_TRANSLATION
        )
        if stage == "g" and self._g_walk not in ("", "final"):
            write = self._g_write
        if not raw & _A:
            self.hit(f"{stage}.ad.A")
        if not raw & _D and (raw & _A or write):
            self.hit(f"{stage}.ad.D")
        if self._gipc_pc:
            self.hit(f"gipc.{self.config.gipc_revision}.decision.10")

    def _classify(self, entry: Tuple[int, int, int, int], g: bool) -> str:
        """Why the walk stopped at this PTE (a key of PTE_FAULTS, "u", "u0" or "ok")."""
        raw, level, _, levels = entry
        pte64 = levels != 2
        cfg = self.config
        if not raw & _RX:  # a pointer
            if not raw & _V:
                return "invalid"
            if raw & _W:
                return "w_without_r"
            if pte64 and raw & _RSV:
                return "reserved_bits"
            if pte64 and raw & _RSW.mask and not cfg.svrsw60t59b:
                return "rsw60t59b_reserved"
            if raw & (_NL_ATTR64 if pte64 else _NL_ATTR32):
                return "nonleaf_attr"
            return "no_leaf"
        if not raw & _V:
            return "invalid"
        if raw & (_R | _W) == _W:
            return "w_without_r"
        if pte64:
            if raw & _RSV:
                return "reserved_bits"
            if raw & _RSW.mask and not cfg.svrsw60t59b:
                return "rsw60t59b_reserved"
            pbmt = _PBMT.get(raw)
            if pbmt == 3 or (pbmt and not cfg.svpbmt):
                return "pbmt_reserved"
            if raw & _N and (level or _PPN64.get(raw) & 0xF != 0b1000):
                return "napot_reserved"
        vbits = 10 if levels == 2 else 9
        ppn = (_PPN64 if pte64 else _PPN32).get(raw)
        if level and ppn & ((1 << (level * vbits)) - 1):
            return "misaligned_superpage"
        return "ok"

    def _leaf_fault(self, entry: Tuple[int, int, int, int], g: bool) -> str:
        """The PTE_FAULTS key (or "u"/"u0") of a fault at a well-formed leaf."""
        raw = entry[0]
        req = self._req
        ats = req.kind == RequestKind.ATS_TRANSLATION
        if g:
            if not raw & _U:
                return "u0"
            if self._g_walk in ("", "final"):
                need = _R if ats else _PERM[Access(req.access)]
                write = not ats and req.access == Access.WRITE
            else:
                need = _W if self._g_write else _R
                write = self._g_write
            if not raw & need:
                return "permission"
            return "ad_disabled" if not raw & _A or (write and not raw & _D) else "permission"
        priv = bool(req.priv) and req.process_id is not None
        ta = self._pc_ta()
        sum_ = bool(ta is not None and ta & _PC_SUM)
        exec_ = req.access == Access.EXECUTE
        if raw & _U:
            if priv and (not sum_ or (exec_ and not ats)):
                return "u"
        elif not priv:
            return "u"
        if not ats and not raw & _PERM[Access(req.access)]:
            return "permission"
        return "ad_disabled"

    # ------------------------------------------------------------------
    # responses
    # ------------------------------------------------------------------
    def _response(self, ev: Any) -> None:
        req = self._req if self._req is not None else ev.req
        rsp = ev.rsp
        if self._pri or isinstance(req, PageRequest) or rsp is None:
            self._begin(None, False)
            return
        if self._req is None:  # no request event: the response carries the request
            self._req = req
            self._did = req.device_id
            self._pid = req.process_id
        fault = getattr(rsp, "fault", None)
        cause = -1
        if fault is not None:
            cause = int(fault.cause)
            self.hit(f"cause.{cause}.ttyp.{int(fault.ttyp)}")
            self._fault_bins(cause, fault)
        self._privilege(cause)
        self._msi(rsp, cause)
        kind = req.kind
        if self._debug:
            self._debug_bins(rsp, cause)
        if kind == RequestKind.ATS_TRANSLATION:
            self._ats(rsp, cause)
        self._gipc(rsp, cause)
        self._begin(None, False)

    def _fault_bins(self, cause: int, fault: Any) -> None:
        if cause in _PAGE_FAULTS:
            s = self._s_last
            if s is None:  # no PTE read: the IOVA check of step 17 failed
                self.hit("s.fault.non_canonical")
                return
            why = self._classify(s, False)
            if why == "ok":
                why = self._leaf_fault(s, False)
            if why != "u":
                self.hit(f"s.fault.{why}")
        elif cause in _GUEST_PAGE_FAULTS:
            iotval2 = int(fault.iotval2)
            if iotval2 & 1:
                self.hit("g.iotval2.implicit")
            if iotval2 & 2:
                self.hit("g.iotval2.implicit_write")
            if self._gipc_pc:
                self.hit(f"gipc.{self.config.gipc_revision}.decision.12")
            g = self._g_last
            width = self._g_width()
            if g is None or (width and (iotval2 & ~3) >> width):
                self.hit("g.fault.gpa_too_wide")
                return
            why = self._classify(g, True)
            if why == "ok":
                why = self._leaf_fault(g, True)
            self.hit(f"g.fault.{why}")

    def _g_width(self) -> int:
        dc = self._dc
        if dc is not None and dc[0] & _TC_SXL:
            return 34
        levels = self._g_levels
        if not levels and dc is not None:
            mode = dc[1] >> _MODE_SHIFT
            levels = {8: 2 if self.config.gxl else 3, 9: 4, 10: 5}.get(mode, 0)
        return _G_WIDTH.get(levels, 0)

    def _privilege(self, cause: int) -> None:
        req = self._req
        priv = bool(req.priv) and req.process_id is not None
        if priv and self._pc_used:
            self.hit("priv.ENS0" if cause == Cause.TRANSACTION_TYPE_DISALLOWED else "priv.ENS1")
        leaf = self._s_leaf
        if (
            leaf is None
            or req.kind == RequestKind.TRANSLATED
            or self._classify(leaf, False) != "ok"
        ):
            return
        u = leaf[0] & _U
        if not priv:
            self.hit("priv.user.U1" if u else "priv.user.U0")
        elif not u:
            self.hit("priv.super.U0")
        else:
            ta = self._pc_ta()
            if ta is None:
                return
            if not ta & _PC_SUM:
                self.hit("priv.super.U1.SUM0")
            elif req.access == Access.EXECUTE:
                self.hit("priv.super.U1.SUM1.exec")
            else:
                self.hit("priv.super.U1.SUM1")

    def _msi(self, rsp: Any, cause: int) -> None:
        if cause < 0:
            if rsp.is_msi:
                self.hit("msi.mrif" if rsp.is_mrif else "msi.flat")
            return
        name = _MSI_FAULTS.get(cause)  # type: ignore[call-overload]
        if name is not None:
            self.hit(name)
        elif cause == Cause.MSI_PTE_MISCONFIGURED and self._msi_acc:
            pte0 = self._msi_acc[0]
            mode = _MSI_M.get(pte0)
            if pte0 & _MSI_C:
                self.hit("msi.fault.263.custom")
            elif mode in (0, 2):
                self.hit(f"msi.fault.263.M{mode}")
            elif mode == 3:
                self.hit("msi.fault.263.flat_reserved")
            elif not self.config.msi_mrif:
                self.hit("msi.fault.263.mrif_unsupported")
            else:
                self.hit("msi.fault.263.mrif_reserved")
        elif cause == Cause.INSTRUCTION_ACCESS_FAULT and self._msi_seen:
            self.hit("msi.fault.exec")

    def _debug_bins(self, rsp: Any, cause: int) -> None:
        if cause >= 0:
            mrif = bool(self._msi_acc) and _MSI_M.get(self._msi_acc[0]) == 1
            if cause == Cause.TRANSACTION_TYPE_DISALLOWED and mrif:
                self.hit("debug.mrif_stop")
            self.hit("debug.fault")
        elif rsp.is_msi:
            self.hit("debug.msi")
        elif rsp.size > 4096:
            self.hit("debug.superpage")
        else:
            self.hit("debug.page")

    def _ats(self, rsp: Any, cause: int) -> None:
        status = rsp.status
        if status == Status.UNSUPPORTED_REQUEST:
            self.hit("ats.completion.ur")
            return
        if status == Status.COMPLETER_ABORT:
            self.hit("ats.completion.ca")
            return
        if cause >= 0 or not (rsp.r or rsp.w):
            self.hit("ats.completion.no_access")
            return
        self.hit("ats.completion.rw" if rsp.w else "ats.completion.r")
        if rsp.x:
            self.hit("ats.completion.x")
        if rsp.s:
            self.hit("ats.completion.range")
        if rsp.is_msi:
            self.hit("ats.completion.mrif_u" if rsp.is_mrif else "ats.completion.msi")
        dc = self._dc
        if dc is not None and dc[0] & _TC_T2GPA:
            self.hit("ats.completion.t2gpa")

    def _gipc(self, rsp: Any, cause: int) -> None:
        if not self._gipc_dc:
            return
        rev = self.config.gipc_revision
        if cause not in (Cause.DDT_ENTRY_MISCONFIGURED, Cause.DDT_ENTRY_NOT_VALID):
            self.hit(f"gipc.{rev}.decision.1")
        if self._gipc_pc:
            if cause != Cause.PDT_ENTRY_MISCONFIGURED:
                self.hit(f"gipc.{rev}.decision.5.pc")
            pc = self._pc
            _, _, hg = self._pc_size()
            if rev == "2025" and "S_PTE" in self._g_walks:
                self.hit("gipc.2025.s1_gpa")
            elif (
                rev == "2024"
                and self._s_reads
                and pc is not None
                and pc[hg] >> _MODE_SHIFT
                and "S_PTE" not in self._g_walks
            ):
                self.hit("gipc.2024.s1_spa")
            if rsp.is_msi or self._msi_seen:
                if rev == "2025":
                    self.hit("gipc.2025.msi_dc")
                elif self.config.msi_flat:
                    self.hit("gipc.2024.msi_pc")
        elif cause < 256:
            self.hit(f"gipc.{rev}.decision.5.dc")
        pid = self._pid
        dc = self._dc
        if (
            cause == Cause.TRANSACTION_TYPE_DISALLOWED
            and pid is not None
            and dc is not None
            and not self._pdt_walk
        ):
            mode = dc[3] >> _MODE_SHIFT
            width = _GIPC_FORMATS[self.config.pc_format].pid_width.get(mode)
            if width is not None and pid >> width and not pid >> PID_WIDTH[mode]:
                self.hit(f"gipc.{rev}.pid_width")

    # ------------------------------------------------------------------
    # checks, caches, memory
    # ------------------------------------------------------------------
    def _check(self, ev: Any) -> None:
        if ev.passed:
            return
        cause = ev.cause
        if cause == Cause.IOMMU_MSI_WRITE_ACCESS_FAULT:  # not caused by a transaction
            self.hit("cause.273.ttyp.0")
        elif self._pri and cause:  # a fault of a Page Request message
            self.hit(f"cause.{cause}.ttyp.9")
        elif self._req is None and cause:  # an Invalidation Completion's, say
            self._msg_cause = cause
        section = str(ev.section).upper()
        step = str(ev.step)
        if cause == Cause.DDT_ENTRY_MISCONFIGURED or "DC_MISCONFIG" in section:
            n = _DC_TEXT.get(ev.rule)
            if n is None and "DC_MISCONFIG" in section and step.isdigit():
                n = int(step) if int(step) in DC_RULES else None
            if n is None:
                return
            self.hit(f"dc.rule.{n}")
            rev = self.config.gipc_revision
            if n in (24, 25):
                self.hit(f"gipc.{rev}.decision.{n - 21}")
            dc = self._dc_acc or list(self._dc or ())
            if n == 1 and not self.config.gipc and dc and dc[0] >> self.config.gipc_tc_bit & 1:
                self.hit(f"gipc.{rev}.decision.2")
        elif cause == Cause.PDT_ENTRY_MISCONFIGURED or "PC_MISCONFIG" in section:
            n = _PC_TEXT.get(ev.rule)
            if n is None and "PC_MISCONFIG" in section and step.isdigit():
                n = int(step) if int(step) in _PC_ALL else None
            if n is None:
                return
            self.hit(f"pc.rule.{n}")
            if n >= 10:
                self.hit(f"gipc.{self.config.gipc_revision}.decision.7")

    def _cache(self, ev: Any) -> None:
        cache = ev.cache
        op = ev.op
        if op == "hit":
            if cache == "DDT":
                dc = self._dc_shadow.get(self._did)
                if dc is not None:
                    self._set_dc(dc)
            elif cache == "PDT":
                self._pc_used = True
                if self._gipc_dc:
                    self._gipc_pc = True
                    self.hit(f"gipc.{self.config.gipc_revision}.decision.8")
            elif cache == "MSI":
                self._msi_seen = True
        elif op == "miss" and cache == "IOTLB":
            self._hpm_event(4)

    def _mem(self, ev: Any) -> None:
        purpose = ev.purpose
        if purpose == "MSI":
            # only the interrupt messages the IOMMU sends (fctl.BE); IOFENCE.C data
            # writes and MRIF notices reach the port under this name too
            if not self._intr_msi:
                return
            self._intr_msi = False
        if purpose in _ENDIAN:
            self.hit(f"endian.{purpose}.{'BE' if ev.big_endian else 'LE'}")
        if purpose == "AD":
            self._ad(ev.addr)
        elif purpose == "CQ" and ev.op == "read":
            if 0 <= ev.addr < self._cq_last:
                self.hit("queue.cq.wrap")
            self._cq_last = ev.addr
        elif purpose in ("FQ", "PQ") and ev.op == "write":
            self._qwrite = purpose.lower()
        elif purpose == "MRIF_WRITE":
            self.hit("msi.mrif.recorded")
        elif purpose == "PC" and ev.big_endian and self._gipc_dc:
            self.hit(f"gipc.{self.config.gipc_revision}.decision.11")

    # ------------------------------------------------------------------
    # commands, registers, queues, interrupts, messages
    # ------------------------------------------------------------------
    def _command(self, ev: Any) -> None:
        if self._pri:
            self._begin(None, False)
        outcome = ev.outcome
        op = ev.opcode
        f3 = ev.func3
        d0, d1 = ev.raw if ev.raw != (0, 0) else (0, 0)
        ops = ev.operands

        def flag(name: str, layout: F.Layout, word: int) -> int:
            if name in ops:
                return 1 if ops[name] else 0
            return int(layout.fields[name].get(word))

        if outcome == "illegal":
            valid_f3 = {1: (0, 1), 2: (0,), 3: (0, 1), 4: (0, 1)}.get(op)
            if valid_f3 is None:
                self.hit("queue.cq.ill.opcode")
            elif f3 not in valid_f3:
                self.hit("queue.cq.ill.func3")
            else:
                self.hit("queue.cq.ill.operand")
            return
        if outcome == "memory_fault":
            self.hit("queue.cq.mf")
            return
        if outcome == "timed_out":
            self.hit("queue.cq.timeout")
            return
        if outcome == "waiting":
            if op == 4:
                self.hit("ats.inval.itag_exhausted")
            else:
                self.hit("queue.cq.fence_wait")
            return
        if outcome != "completed":
            return
        if op == 1:
            C0 = F.CMD_IOTINVAL0
            C1 = F.CMD_IOTINVAL1
            gv, av = flag("GV", C0, d0), flag("AV", C0, d0)
            nl, s = flag("NL", C0, d0), flag("S", C1, d1)
            if f3 == 0:
                pscv = flag("PSCV", C0, d0)
                self.hit(f"cmd.IOTINVAL.VMA.GV{gv}.AV{av}.PSCV{pscv}")
                base = "cmd.IOTINVAL.VMA"
                self._seq9 |= 2 if self._seq9 else 0
            else:
                self.hit(f"cmd.IOTINVAL.GVMA.GV1.AV{av}" if gv else "cmd.IOTINVAL.GVMA.GV0")
                base = "cmd.IOTINVAL.GVMA"
                if gv and self._seq9:
                    self._seq9 |= 4
            if nl:
                self.hit(f"{base}.NL")
            if s and av:
                self.hit(f"{base}.S")
            if self._seq9 == 7 and self._gipc_seen:
                self.hit(f"gipc.{self.config.gipc_revision}.decision.9")
                self._seq9 = 0
        elif op == 2:
            C0 = F.CMD_IOFENCE0
            flags = [n for n in ("AV", "WSI", "PR", "PW") if flag(n, C0, d0)]
            for n in flags or ["none"]:
                self.hit(f"cmd.IOFENCE.C.{n}")
        elif op == 3:
            if f3 == 0:
                self.hit(f"cmd.IODIR.INVAL_DDT.DV{flag('DV', F.CMD_IODIR0, d0)}")
            else:
                self.hit("cmd.IODIR.INVAL_PDT.DV1")
                self._seq9 = 1
        elif op == 4:
            C0 = F.CMD_ATS0
            name = "INVAL" if f3 == 0 else "PRGR"
            self.hit(f"cmd.ATS.{name}.PV{flag('PV', C0, d0)}")
            if flag("DSV", C0, d0):
                self.hit(f"cmd.ATS.{name}.DSV")
            if f3 == 0:
                P = F.ATS_INVAL_PAYLOAD
                if flag("G", P, d1):
                    self.hit("cmd.ATS.INVAL.G")
                if flag("S", P, d1):
                    self.hit("cmd.ATS.INVAL.S")

    def _reg_write(self, ev: Any) -> None:
        if self._pri:
            self._begin(None, False)
        off = ev.offset
        if off in _REG_CQ:
            self._cq_last = -1
        elif off in _REG_FQ:
            self._fq_last = -1
        elif off in _REG_PQ:
            self._pq_last = -1
        elif _IOHPMEVT1 <= off < _IOHPMEVT1 + 8 * 31 and not (off - _IOHPMEVT1) % 8:
            k = (off - _IOHPMEVT1) // 8 + 1
            self._hpm[k] = _HPM_ID.get(ev.new)
            self._hpm_active = {e for e in self._hpm.values() if e}

    def _hpm_event(self, event: int) -> None:
        if event in self._hpm_active:
            self.hit(f"hpm.event.{event}")

    def _queue_record(self, ev: Any) -> None:
        self._qwrite = ""
        q = ev.queue
        status = ev.status
        if q == "FQ":
            if status == "overflow":
                self.hit("queue.fq.overflow")
            elif status == "memory_fault":
                self.hit("queue.fq.mf")
            elif status == "written" and ev.record is not None:
                if 0 <= ev.index < self._fq_last:
                    self.hit("queue.fq.wrap")
                self._fq_last = ev.index
                rec = ev.record
                self.hit(f"cause.{int(rec.cause)}.ttyp.{int(rec.ttyp)}")
        elif q == "PQ":
            if status == "overflow":
                self.hit("queue.pq.overflow")
            elif status == "memory_fault":
                self.hit("queue.pq.mf")
            elif status == "written" and ev.record is not None:
                if 0 <= ev.index < self._pq_last:
                    self.hit("queue.pq.wrap")
                self._pq_last = ev.index
                m = ev.record
                if m.last and not m.read and not m.write and m.process_id is not None:
                    self.hit("ats.pri.stop_marker")
                else:
                    self.hit("ats.pri.queued" if m.last else "ats.pri.queued.partial")
                    if m.process_id is not None:
                        self.hit("ats.pri.queued.pasid")

    def _interrupt(self, ev: Any) -> None:
        src = ev.source
        if not src or (ev.wired and not ev.level):
            return  # a wire released, or a message no source is pending for any more
        if ev.wired:
            self.hit(f"intr.{src}.wired")
        else:
            self._intr_msi = not ev.masked  # the message's write follows
            self.hit(f"intr.{src}.msi_masked" if ev.masked else f"intr.{src}.msi")
        if src == "HPM":
            self.hit("hpm.overflow")

    def _completion(self, ev: Any) -> None:
        """An ATS Invalidation Completion from a device."""
        if ev.completed:
            self.hit("ats.inval.completed")
        elif self._msg_cause:  # refused: no valid DC with EN_ATS
            self.hit(f"cause.{self._msg_cause}.ttyp.9")
        if ev.cc != 1:
            self.hit("ats.inval.cc")
        self._msg_cause = 0

    def _ats_message(self, ev: Any) -> None:
        msg = ev.message
        if hasattr(msg, "itag"):  # InvalidationRequest
            self.hit("ats.inval.sent")
        elif hasattr(msg, "response_code"):  # PageRequestGroupResponse
            if self._pri:
                code = msg.response_code
                self.hit(
                    {0: "ats.pri.auto.success", 1: "ats.pri.auto.invalid"}.get(
                        code, "ats.pri.auto.failure"
                    )
                )
                if msg.pasid is not None:
                    self.hit("ats.pri.auto.pasid")
            else:
                self.hit("ats.prgr.sent")


def collect(events: Iterable[Any], config: Optional[Config] = None) -> Dict[str, int]:
    """The hits of a sequence of events (a convenience for replayed logs and tests)."""
    c = Collector(config)
    for ev in events:
        c(ev)
    return c.hits
