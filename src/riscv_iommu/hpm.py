"""Hardware performance monitor (spec "Performance-monitoring ..." registers).

``iohpmcycles`` counts cycles when the testbench advances time with
:meth:`Iommu.tick`; the model has no clock of its own.  Event counters
``iohpmctr1..N`` count the standard events of the spec's "Standard Events
list", filtered by ``iohpmevtX``.  Overflow sets the sticky ``OF`` bit (and
``iocountovf``) and, on its 0->1 transition, ``ipsr.pmip``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, List

from . import formats as F
from .interrupts import PMIP

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["Hpm", "Event"]

_EVT = F.IOHPMEVT
_CYC_OF = F.IOHPMCYCLES.OF.mask


class Event:
    """Standard event IDs."""

    UNTRANSLATED_REQUEST: Final = 1
    TRANSLATED_REQUEST: Final = 2
    ATS_TRANSLATION_REQUEST: Final = 3
    TLB_MISS: Final = 4
    DDT_WALK: Final = 5
    PDT_WALK: Final = 6
    S_STAGE_WALK: Final = 7
    G_STAGE_WALK: Final = 8


#: events that accept IDT = 1 (GSCID/PSCID filters); the others only IDT = 0
_IDT1_EVENTS = frozenset({Event.TLB_MISS, Event.S_STAGE_WALK, Event.G_STAGE_WALK})


class Hpm:
    """iohpmcycles, iohpmctr1-31, iohpmevt1-31, iocountinh, iocountovf."""

    def __init__(self, io: "Iommu") -> None:
        self.io = io
        self.n = io.params.hpm_counters if io.caps.hpm else 0
        width = io.params.hpm_counter_width
        self.ctr_mask = (1 << width) - 1
        self.cyc_mask = (1 << min(63, width)) - 1
        self.cycles = 0  # includes OF at bit 63
        self.ctr: List[int] = [0] * 32  # index 1..31
        self.evt: List[int] = [0] * 32
        self.inh = 0
        #: events some counter is programmed to count (fast path when empty)
        self.active: frozenset[int] = frozenset()

    # -- registers ----------------------------------------------------------
    @property
    def ovf(self) -> int:
        """iocountovf: shadow of the OF bits."""
        v = 1 if self.cycles & _CYC_OF else 0
        for i in range(1, self.n + 1):
            if self.evt[i] & _EVT.OF.mask:
                v |= 1 << i
        return v

    def write_inh(self, value: int) -> None:
        """iocountinh: bit 0 and the bits of implemented counters are writable."""
        self.inh = value & ((2 << self.n) - 1)

    def write_cycles(self, value: int) -> None:
        """iohpmcycles: counter WARL to the implemented width, OF RW."""
        self.cycles = (value & _CYC_OF) | (value & self.cyc_mask)

    def write_ctr(self, i: int, value: int) -> None:
        """iohpmctrX: WARL to the implemented width."""
        self.ctr[i] = value & self.ctr_mask

    def write_evt(self, i: int, value: int) -> None:
        """iohpmevtX: eventID WARL (unknown events read back as 0)."""
        if _EVT.eventID.get(value) > Event.G_STAGE_WALK:
            value &= ~_EVT.eventID.mask
        self.evt[i] = value
        self.active = frozenset(
            _EVT.eventID.get(self.evt[k])
            for k in range(1, self.n + 1)
            if _EVT.eventID.get(self.evt[k])
        )

    # -- counting -------------------------------------------------------------
    def tick(self, cycles: int) -> None:
        """Advance iohpmcycles (unless inhibited)."""
        if self.inh & 1 or not self.io.caps.hpm:
            return
        c = (self.cycles & self.cyc_mask) + cycles
        of = self.cycles & _CYC_OF
        if c > self.cyc_mask:
            if not of:
                self.io.intr.set_pending(PMIP)
            of = _CYC_OF
        self.cycles = of | (c & self.cyc_mask)

    def count(self, event: int, did: int, pid: int, gscid: int, pscid: int) -> None:
        """Count ``event`` for a transaction; ``pid``/``gscid``/``pscid`` are -1 when not valid."""
        for i in range(1, self.n + 1):
            evt = self.evt[i]
            if _EVT.eventID.get(evt) != event or self.inh >> i & 1:
                continue
            if not _matches(evt, event, did, pid, gscid, pscid):
                continue
            c = self.ctr[i] + 1
            if c > self.ctr_mask:
                if not evt & _EVT.OF.mask:
                    self.evt[i] = evt | _EVT.OF.mask
                    self.io.intr.set_pending(PMIP)
                c = 0
            self.ctr[i] = c


def _matches(evt: int, event: int, did: int, pid: int, gscid: int, pscid: int) -> bool:
    """The spec's "filtering options" table."""
    idt = _EVT.IDT.get(evt)
    dv = _EVT.DV_GSCV.get(evt)
    pv = _EVT.PV_PSCV.get(evt)
    if idt and event not in _IDT1_EVENTS:
        return False  # the IDT setting is not supported for this event
    if not dv and not pv:
        return True
    want_d = _EVT.DID_GSCID.get(evt)
    want_p = _EVT.PID_PSCID.get(evt)
    if dv:
        d = gscid if idt else did
        if d < 0:
            return False
        mask = 0xFFFFFF
        if _EVT.DMASK.get(evt):
            # mask the low bits up to and including the first 0 bit
            x = 0
            while (want_d >> x) & 1:
                x += 1
            mask &= ~((2 << x) - 1)
        if (d ^ want_d) & mask:
            return False
    if pv:
        p = pscid if idt else pid
        if p < 0 or p != want_p:
            return False
    return True
