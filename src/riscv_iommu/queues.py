"""The in-memory queues: fault queue (FQ), page-request queue (PQ), command queue (CQ).

Spec chapter "In-memory queue interface" and the registers ``cqb/cqh/cqt/cqcsr``,
``fqb/fqh/fqt/fqcsr``, ``pqb/pqh/pqt/pqcsr``.  Queue enables take effect at
once: ``busy`` is hard-wired to 0 (the spec allows an IOMMU that completes
these operations synchronously to do so) and ``xqon`` follows ``xqen``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from . import formats as F
from .events import MemAccess, QueueRecord
from .interrupts import CIP, FIP, PIP
from .memory import MemoryAccessError, MemoryFault
from .types import FaultRecord

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["Queue", "FaultQueue", "PageRequestQueue", "CommandQueue"]

_QB = F.QUEUE_BASE


class Queue:
    """Base, head, tail and CSR of one in-memory queue of ``entry_size``-byte entries."""

    #: whether the IOMMU produces into the queue (owns the tail) or consumes (owns the head)
    OWNS_TAIL = True
    #: CSR bit masks, set by subclasses
    EN = 0
    IE = 0
    ON = 0
    ERRORS = 0
    IP = 0

    def __init__(self, io: "Iommu", entry_size: int) -> None:
        self.io = io
        self.entry_size = entry_size
        self.base = 0
        self.head = 0
        self.tail = 0
        self.csr = 0

    @property
    def size(self) -> int:
        """Number of entries (2 ** LOG2SZ)."""
        return 1 << (_QB.LOG2SZ_1.get(self.base) + 1)

    def entry_addr(self, index: int) -> int:
        """Address of entry ``index``."""
        return (_QB.PPN.get(self.base) << 12) + index * self.entry_size

    def write_base(self, value: int) -> None:
        """xqb: LOG2SZ-1 and PPN are WARL (PPN limited to capabilities.PAS)."""
        ppn = _QB.PPN.get(value) & ((1 << (self.io.caps.pas - 12)) - 1)
        self.base = (ppn << _QB.PPN.lsb) | _QB.LOG2SZ_1.get(value)
        # bits 31:LOG2SZ of the software-owned index become 0
        mask = self.size - 1
        self.head &= mask
        self.tail &= mask

    @property
    def on(self) -> bool:
        """Whether the queue is active (xqon)."""
        return bool(self.csr & self.ON)

    def write_csr(self, value: int) -> None:
        """Enable/disable handshake, interrupt enable, RW1C error bits."""
        old = self.csr
        csr = old & ~(self.EN | self.IE)
        csr |= value & (self.EN | self.IE)
        csr &= ~(value & self.ERRORS)  # RW1C
        if csr & self.EN and not old & self.EN:
            csr = self._enable(csr)
        elif not csr & self.EN:
            csr &= ~self.ON
        self.csr = csr
        self.reevaluate()

    def _enable(self, csr: int) -> int:
        """xqen 0 -> 1: the index the IOMMU owns restarts at 0 and the error bits clear."""
        if self.OWNS_TAIL:
            self.tail = 0
        else:
            self.head = 0
        return (csr & ~self.ERRORS) | self.ON

    def reevaluate(self) -> None:
        """Set the ipsr bit if interrupts are enabled and an error bit is set."""
        if self.csr & self.IE and self.csr & self.ERRORS:
            self.io.intr.set_pending(self.IP)

    def _signal(self) -> None:
        if self.csr & self.IE:
            self.io.intr.set_pending(self.IP)


class _ProducerQueue(Queue):
    """A queue the IOMMU writes (FQ, PQ): it owns the tail."""

    MF = 0
    OF = 0
    #: the queue's name in the event stream
    NAME = ""

    def write_head(self, value: int) -> None:
        """xqh: only bits LOG2SZ-1:0 are writable."""
        self.head = value & (self.size - 1)

    def push(self, data: bytes, record: Any = None) -> Optional[bool]:
        """Write one record; None when dropped (off, error or overflow), False on a memory fault.

        ``record`` is the decoded record (a FaultRecord or PageRequest) for the event stream.
        """
        io = self.io
        csr = self.csr
        if not csr & self.ON or csr & (self.MF | self.OF):
            # discarded: the queue is off, or an earlier overflow / memory fault stands
            if io.emit is not None:
                why = "overflow" if csr & self.OF else "memory_fault"
                if not csr & self.ON:
                    why = "off"
                io.emit(QueueRecord(self.NAME, self.tail, 0, record, why))
            return None
        size = self.size
        if self.tail == (self.head - 1) % size:  # full: overflow, record discarded
            self.csr |= self.OF
            if io.emit is not None:
                io.emit(QueueRecord(self.NAME, self.tail, 0, record, "overflow"))
            self._signal()
            return None
        addr = self.entry_addr(self.tail)
        try:
            if addr + len(data) > io.pa_limit:
                if io.emit is not None:
                    r, m = io.iommu_qosid
                    io.emit(MemAccess(addr, len(data), "write", self.NAME, r, m, io.be))
                raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, len(data))
            io.port_write(addr, data, io.iommu_qosid, self.NAME)
        except MemoryAccessError:
            self.csr |= self.MF
            if io.emit is not None:
                io.emit(QueueRecord(self.NAME, self.tail, addr, record, "memory_fault"))
            self._signal()
            return False
        if io.emit is not None:
            io.emit(QueueRecord(self.NAME, self.tail, addr, record))
        self.tail = (self.tail + 1) % size
        self._signal()
        return True


class FaultQueue(_ProducerQueue):
    """The fault/event queue (32-byte records)."""

    EN = F.FQCSR.fqen.mask
    IE = F.FQCSR.fie.mask
    ON = F.FQCSR.fqon.mask
    MF = F.FQCSR.fqmf.mask
    OF = F.FQCSR.fqof.mask
    ERRORS = MF | OF
    IP = FIP
    NAME = "FQ"

    def __init__(self, io: "Iommu") -> None:
        super().__init__(io, F.FAULT_RECORD_SIZE)

    def report(self, rec: FaultRecord) -> Optional[bool]:
        """Queue a fault record in ``fctl.BE`` byte order (spec "Fault/Event-Queue").

        Returns True when written, False on a memory fault (fqmf), None when
        discarded (queue off, fqmf/fqof already set, or the queue is full).
        """
        return self.push(rec.to_bytes(self.io.be), rec)


class PageRequestQueue(_ProducerQueue):
    """The page-request queue (16-byte records)."""

    EN = F.PQCSR.pqen.mask
    IE = F.PQCSR.pie.mask
    ON = F.PQCSR.pqon.mask
    MF = F.PQCSR.pqmf.mask
    OF = F.PQCSR.pqof.mask
    ERRORS = MF | OF
    IP = PIP
    NAME = "PQ"

    def __init__(self, io: "Iommu") -> None:
        super().__init__(io, 16)


class CommandQueue(Queue):
    """The command queue (16-byte commands); the IOMMU owns the head."""

    EN = F.CQCSR.cqen.mask
    IE = F.CQCSR.cie.mask
    ON = F.CQCSR.cqon.mask
    MF = F.CQCSR.cqmf.mask
    TO = F.CQCSR.cmd_to.mask
    ILL = F.CQCSR.cmd_ill.mask
    FENCE_W_IP = F.CQCSR.fence_w_ip.mask
    STOP = MF | TO | ILL
    ERRORS = STOP | FENCE_W_IP
    IP = CIP
    OWNS_TAIL = False

    def __init__(self, io: "Iommu") -> None:
        super().__init__(io, 16)

    def write_tail(self, value: int) -> None:
        """cqt: only bits LOG2SZ-1:0 are writable; the doorbell."""
        self.tail = value & (self.size - 1)

    def stopped(self) -> bool:
        """Whether command processing is stalled (off, or an error bit set)."""
        return not self.csr & self.ON or bool(self.csr & self.STOP)

    def error(self, bit: int) -> None:
        """Set cmd_ill / cqmf / cmd_to / fence_w_ip and signal cip."""
        self.csr |= bit
        self._signal()

    def fetch(self) -> Optional[tuple[int, int]]:
        """Read the command at the head; None (and cqmf set) on a memory fault."""
        io = self.io
        addr = self.entry_addr(self.head)
        if io.emit is not None:
            r, m = io.iommu_qosid
            io.emit(MemAccess(addr, 8, "read", "CQ", r, m, io.be))
            io.emit(MemAccess(addr + 8, 8, "read", "CQ", r, m, io.be))
        try:
            d0 = io.rd_iommu(addr, io.be)
            d1 = io.rd_iommu(addr + 8, io.be)
        except MemoryAccessError:
            self.error(self.MF)
            return None
        return d0, d1
