"""The debug translation-request interface (spec chapter "Debug support").

Writing ``tr_req_ctl`` with ``Go/Busy`` = 1 runs the process to translate
an IOVA for ``tr_req_iova`` as an Untranslated request at once; ``Go/Busy``
reads 0 again when the write returns and ``tr_response`` holds the result.
Faults are reported to the fault queue as for any request.  ``tr_response.PPN``
keeps the 44 bits the field has.  An IOVA that is
a virtual interrupt file mapped by an MRIF-mode MSI PTE stops with
"Transaction type disallowed" (260).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import formats as F
from .types import Access, Request, RequestKind

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["DebugInterface", "encode_ppn_size"]

_CTL = F.TR_REQ_CTL
_RSP = F.TR_RESPONSE
# WARL: writable fields of tr_req_ctl (Go/Busy is RW1S, handled apart)
_CTL_WRITABLE = _CTL.mask_of("Priv", "Exe", "NW", "PID", "PV", "DID")


def encode_ppn_size(addr: int, size: int) -> tuple[int, bool]:
    """PPN and S of a translation of ``size`` bytes (the NAPOT encoding of ``tr_response``)."""
    ppn = (addr & ~(size - 1)) >> 12
    if size <= 4096:
        return ppn, False
    return ppn | ((size >> 13) - 1), True


class DebugInterface:
    """tr_req_iova, tr_req_ctl, tr_response."""

    def __init__(self, io: "Iommu") -> None:
        self.io = io
        self.iova = 0
        self.ctl = 0
        self.response = 0

    def write_iova(self, value: int) -> None:
        """tr_req_iova: bits 11:0 are reserved (read 0)."""
        self.iova = value & F.TR_REQ_IOVA.vpn.mask

    def write_ctl(self, value: int) -> None:
        """tr_req_ctl: setting Go/Busy starts a translation (it completes at once)."""
        self.ctl = (self.ctl & _CTL.Go_Busy.mask) | (value & _CTL_WRITABLE)
        if value & _CTL.Go_Busy.mask:
            self._translate()

    def _translate(self) -> None:
        ctl = self.ctl
        if _CTL.Exe.get(ctl):
            access = Access.EXECUTE
        elif _CTL.NW.get(ctl):
            access = Access.READ
        else:
            access = Access.WRITE  # read and write permission requested
        pv = _CTL.PV.get(ctl)
        req = Request(
            device_id=_CTL.DID.get(ctl),
            addr=self.iova,
            access=access,
            process_id=_CTL.PID.get(ctl) if pv else None,
            priv=bool(pv and _CTL.Priv.get(ctl)),
            kind=RequestKind.UNTRANSLATED,
            length=1,
        )
        rsp = self.io.translate(req, debug=True)
        if rsp.fault is not None:
            self.response = _RSP.fault.mask
        else:
            ppn, s = encode_ppn_size(rsp.addr, rsp.size)
            # PPN is 44 bits (address bits 55:12): the register keeps what it can
            # hold (wider only for a Bare-mode IOVA at or beyond 2^56)
            self.response = _RSP.encode(PPN=ppn & _RSP.PPN.max, S=int(s), PBMT=rsp.pbmt)
        self.ctl &= ~_CTL.Go_Busy.mask
