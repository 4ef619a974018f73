"""Interrupts: ``ipsr``, ``icvec`` and ``msi_cfg_tbl`` (spec "Interrupt pending
status register", "Interrupt-cause-to-vector register", "MSI configuration table").

Four interrupt sources (cip, fip, pmip, pip) set bits of ``ipsr``.  With
``fctl.WSI`` = 1 a pending bit drives the wire its ``icvec`` field selects
(the ``on_wired_interrupt(vector, level)`` port sees every level change).
With ``fctl.WSI`` = 0 a 0->1 transition of a pending bit sends the MSI of the
``msi_cfg_tbl`` entry its ``icvec`` field selects: a 4-byte write of
``msi_data`` to ``msi_addr`` in ``fctl.BE`` byte order; while the entry's
``msi_vec_ctl.M`` is 1 the message stays pending and is sent when unmasked.
An access fault on that write is reported as "IOMMU MSI write access fault"
(273) with ``iotval`` = the MSI address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from . import formats as F
from ._fault import Fault
from .events import InterruptEvent
from .memory import MemoryAccessError, MemoryFault
from .types import Cause, FaultRecord, Ttyp

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["Interrupts", "CIP", "FIP", "PMIP", "PIP"]

CIP = F.IPSR.cip.mask
FIP = F.IPSR.fip.mask
PMIP = F.IPSR.pmip.mask
PIP = F.IPSR.pip.mask
_SOURCES = (CIP, FIP, PMIP, PIP)
# icvec field of each ipsr bit
_ICVEC_FIELD = {CIP: F.ICVEC.civ, FIP: F.ICVEC.fiv, PMIP: F.ICVEC.pmiv, PIP: F.ICVEC.piv}
# the source of each ipsr bit in the event stream
_SOURCE = {CIP: "CQ", FIP: "FQ", PMIP: "HPM", PIP: "PQ"}


class Interrupts:
    """Interrupt pending state and signalling."""

    def __init__(self, io: "Iommu") -> None:
        self.io = io
        self.ipsr = 0
        self.icvec = 0
        n = io.params.interrupt_vectors
        self.msi_addr: List[int] = [0] * 16
        self.msi_data: List[int] = [0] * 16
        self.msi_vec_ctl: List[int] = [0] * 16
        #: vectors whose MSI waits for msi_vec_ctl.M to clear
        self.msi_pending: List[bool] = [False] * 16
        self.vectors = n
        #: current level of each wire (WSI)
        self.wire: List[bool] = [False] * 16

    # -- registers ---------------------------------------------------------
    def write_icvec(self, value: int) -> None:
        """icvec: each 4-bit field is WARL with log2(vectors) writable low bits.

        Software discovers the vector count by writing 0xF and reading back
        (iommu_sw_guidelines: "only bit 0 ... could be writable" with two
        vectors).  With a vector count that is not a power of two, a value
        past the last vector keeps the old, legal value.
        """
        bits = (self.vectors - 1).bit_length()
        v = 0
        for f in _ICVEC_FIELD.values():
            vec = f.get(value) & ((1 << bits) - 1)
            if vec >= self.vectors:
                vec = f.get(self.icvec)
            v |= vec << f.lsb
        self.icvec = v
        self._update_wires()

    def write_ipsr(self, value: int) -> None:
        """ipsr is RW1C; a cleared bit whose condition persists is set again."""
        self.ipsr &= ~(value & (CIP | FIP | PMIP | PIP))
        self._update_wires()
        self.io.reevaluate_interrupts()

    def write_msi_addr(self, vec: int, value: int) -> None:
        """msi_addr_x: bits 55:2 (4-byte aligned address)."""
        self.msi_addr[vec] = value & F.MSI_ADDR.ADDR.mask

    def write_msi_data(self, vec: int, value: int) -> None:
        """msi_data_x."""
        self.msi_data[vec] = value & 0xFFFFFFFF

    def write_msi_vec_ctl(self, vec: int, value: int) -> None:
        """msi_vec_ctl.M: unmasking delivers a pending message."""
        self.msi_vec_ctl[vec] = value & F.MSI_VEC_CTL.M.mask
        if not value & 1 and self.msi_pending[vec]:
            self.msi_pending[vec] = False
            self._send_msi(vec, self._source_of(vec))

    def _source_of(self, vec: int) -> str:
        """The name of the first pending source mapped to ``vec`` ("" when none is)."""
        for bit in _SOURCES:
            if self.ipsr & bit and self.vector_of(bit) == vec:
                return _SOURCE[bit]
        return ""

    def refresh(self) -> None:
        """After fctl.WSI changes: drive (or release) the wires."""
        if not self.io.fctl & F.FCTL.WSI.mask:
            cb = self.io.on_wired_interrupt
            for vec in range(16):
                if self.wire[vec]:
                    self.wire[vec] = False
                    if self.io.emit is not None:
                        self.io.emit(InterruptEvent("", vec, True, level=False))
                    if cb is not None:
                        cb(vec, False)
        self._update_wires()

    # -- signalling --------------------------------------------------------
    def vector_of(self, bit: int) -> int:
        """The vector ``icvec`` maps an ipsr bit to."""
        return _ICVEC_FIELD[bit].get(self.icvec)

    def set_pending(self, bit: int) -> None:
        """Set an ipsr bit; on a 0->1 transition signal the interrupt."""
        if self.ipsr & bit:
            return
        self.ipsr |= bit
        if self.io.fctl & F.FCTL.WSI.mask:
            self._update_wires()
        else:
            vec = self.vector_of(bit)
            if self.msi_vec_ctl[vec] & 1:
                self.msi_pending[vec] = True
                emit = self.io.emit
                if emit is not None:
                    addr, data = self.msi_addr[vec], self.msi_data[vec]
                    emit(InterruptEvent(_SOURCE[bit], vec, False, True, addr, data))
            else:
                self._send_msi(vec, _SOURCE[bit])

    def _update_wires(self) -> None:
        if not self.io.fctl & F.FCTL.WSI.mask:
            return
        level = [False] * 16
        for bit in _SOURCES:
            if self.ipsr & bit:
                level[self.vector_of(bit)] = True
        cb = self.io.on_wired_interrupt
        for vec in range(16):
            if level[vec] != self.wire[vec]:
                self.wire[vec] = level[vec]
                emit = self.io.emit
                if emit is not None:
                    src = self._source_of(vec) if level[vec] else ""
                    emit(InterruptEvent(src, vec, True, level=level[vec]))
                if cb is not None:
                    cb(vec, level[vec])

    def _send_msi(self, vec: int, source: str) -> None:
        io = self.io
        addr = self.msi_addr[vec]
        data = self.msi_data[vec].to_bytes(4, "big" if io.be else "little")
        if io.emit is not None:
            io.emit(InterruptEvent(source, vec, False, False, addr, self.msi_data[vec]))
        try:
            if addr + 4 > io.pa_limit:
                raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, 4)
            io.port_write(addr, data, io.iommu_qosid, "MSI")
        except MemoryAccessError:
            why = ("INTERRUPTS", "", "msi_addr", f"access fault writing the MSI to {addr:#x}")
            io.fault_detected(
                Fault(Cause.IOMMU_MSI_WRITE_ACCESS_FAULT, 0, why),
                FaultRecord(cause=Cause.IOMMU_MSI_WRITE_ACCESS_FAULT, ttyp=Ttyp.NONE, iotval=addr),
            )
