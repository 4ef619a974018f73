"""Command decoding and execution (spec "Command-Queue (CQ)").

One function per command: ``iotinval`` (IOTINVAL.VMA / IOTINVAL.GVMA),
``iofence_c``, ``iodir`` (IODIR.INVAL_DDT / IODIR.INVAL_PDT) and ``ats``
(ATS.INVAL / ATS.PRGR).  A command that uses a reserved encoding, sets a
reserved bit, or is not supported by ``capabilities`` is illegal: the queue
sets ``cqcsr.cmd_ill`` and stops with ``cqh`` on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Final, Optional, Tuple

from . import formats as F
from .events import CommandEvent
from .memory import MemoryAccessError, MemoryFault
from .types import InvalidationRequest, PageRequestGroupResponse

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["OPCODE", "execute", "process", "napot_range", "decode", "COMMAND_NAMES"]


class OPCODE:
    """Command opcodes."""

    IOTINVAL: Final = 1
    IOFENCE: Final = 2
    IODIR: Final = 3
    ATS: Final = 4


_ILLEGAL = 0  # command is illegal: cmd_ill
_DONE = 1  # command completed: advance cqh
_STALL = 2  # command could not complete (cqmf set): cqh stays


def napot_range(addr_field: int, width: int = 52) -> Tuple[int, int]:
    """The address range [lo, hi] of a NAPOT-encoded ADDR[63:12] operand (S = 1).

    The first 0 bit at position X (from bit 0) gives a range of 2^(X+1) pages.
    All ones is UNSPECIFIED by the spec; like "MSB 0, all other bits 1" it is
    taken as the whole address space.
    """
    all_ones = (1 << width) - 1
    if addr_field == all_ones or addr_field == all_ones >> 1:
        return 0, (1 << 64) - 1
    x = 0
    while (addr_field >> x) & 1:
        x += 1
    pages = 1 << (x + 1)
    lo = (addr_field & ~(pages - 1)) << 12
    return lo, lo + (pages << 12) - 1


def iotinval(io: "Iommu", func3: int, d0: int, d1: int) -> int:
    """IOTINVAL.VMA (func3 0) and IOTINVAL.GVMA (func3 1)."""
    C0 = F.CMD_IOTINVAL0
    C1 = F.CMD_IOTINVAL1
    if func3 > 1:
        return _ILLEGAL
    rsv0 = C0.reserved | (0 if io.caps.nl else C0.NL.mask)
    rsv1 = C1.reserved | (0 if io.caps.s else C1.S.mask)
    if d0 & rsv0 or d1 & rsv1:
        return _ILLEGAL
    av = C0.AV.get(d0)
    gv = C0.GV.get(d0)
    pscv = C0.PSCV.get(d0)
    gscid = C0.GSCID.get(d0)
    pscid = C0.PSCID.get(d0)
    lo, hi = 0, -1
    if func3 == 1:  # GVMA
        if pscv:  # "Setting PSCV to 1 with IOTINVAL.GVMA is illegal"
            return _ILLEGAL
        if gv and av:  # AV (and S) are ignored when GV = 0
            lo, hi = _addr_range(d1)
        io.ioatc.inval_gvma(bool(gv), gscid, lo, hi)  # IOTLB, MSI PTEs, G-stage walk entries
    else:
        if av:
            lo, hi = _addr_range(d1)
        io.ioatc.iotlb.inval_vma(bool(gv), gscid, bool(pscv), pscid, lo, hi)
    return _DONE


def _addr_range(d1: int) -> Tuple[int, int]:
    C1 = F.CMD_IOTINVAL1
    addr = C1.ADDR.get(d1)
    if C1.S.get(d1):
        return napot_range(addr)
    lo = addr << 12
    return lo, lo + 0xFFF


def iofence_c(io: "Iommu", func3: int, d0: int, d1: int) -> int:
    """IOFENCE.C: order, optionally write DATA to ADDR, optionally raise fence_w_ip."""
    C0 = F.CMD_IOFENCE0
    if func3 != 0:
        return _ILLEGAL
    rsv0 = C0.reserved
    if not io.fctl & F.FCTL.WSI.mask:  # WSI is reserved unless wired interrupts are on
        rsv0 |= C0.WSI.mask
    if d0 & rsv0 or d1 & F.CMD_IOFENCE1.reserved:
        return _ILLEGAL
    state = io.fence_state()
    if state == "wait":  # earlier ATS.INVAL commands have not completed yet
        return _STALL
    if state == "timeout":  # one of them timed out: cmd_to, cqh stays on this fence
        io.cq.error(io.cq.TO)
        return _STALL
    pr, pw = bool(C0.PR.get(d0)), bool(C0.PW.get(d0))
    if (pr or pw) and io.on_fence is not None:
        io.on_fence(pr, pw)  # the global-observability port
    if C0.AV.get(d0):
        addr = F.CMD_IOFENCE1.ADDR.get(d1) << 2
        data = C0.DATA.get(d0).to_bytes(4, "big" if io.be else "little")
        try:
            if addr + 4 > io.pa_limit:
                raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, 4)
            io.port_write(addr, data, io.iommu_qosid, "CQ")  # the fence's completion write
        except MemoryAccessError:
            io.cq.error(io.cq.MF)
            return _STALL
    if C0.WSI.get(d0):
        io.cq.error(io.cq.FENCE_W_IP)
    return _DONE


def iodir(io: "Iommu", func3: int, d0: int, d1: int) -> int:
    """IODIR.INVAL_DDT (func3 0) and IODIR.INVAL_PDT (func3 1)."""
    C0 = F.CMD_IODIR0
    if func3 > 1 or d0 & C0.reserved or d1:
        return _ILLEGAL
    dv = C0.DV.get(d0)
    did = C0.DID.get(d0)
    pid = C0.PID.get(d0)
    if dv and not io.device_id_fits(did):  # DID must not be wider than ddtp.iommu_mode allows
        return _ILLEGAL
    if func3 == 0:
        if pid:  # PID is reserved for IODIR.INVAL_DDT
            return _ILLEGAL
        io.ioatc.inval_ddt(did if dv else None)
    else:
        if not dv or pid >> io.max_pid_width:
            return _ILLEGAL
        io.ioatc.inval_pdt(did, pid)
    return _DONE


def ats(io: "Iommu", func3: int, d0: int, d1: int) -> int:
    """ATS.INVAL (func3 0) and ATS.PRGR (func3 1): messages to a device."""
    C0 = F.CMD_ATS0
    if not io.caps.ats or func3 > 1 or d0 & C0.reserved:
        return _ILLEGAL
    rid = C0.RID.get(d0)
    seg: Optional[int] = C0.DSEG.get(d0) if C0.DSV.get(d0) else None
    pasid = C0.PID.get(d0) if C0.PV.get(d0) else None
    if func3 == 0:
        itag = io.invalidations.free_itag()
        if itag is None:  # all 32 ITAGs in flight: wait for a completion
            return _STALL
        # the destination device: the RID, qualified by the segment when DSV = 1
        io.invalidations.issue(itag, (seg << 16) | rid if seg is not None else rid)
        P = F.ATS_INVAL_PAYLOAD
        msg: object = InvalidationRequest(
            device_id=rid,
            segment=seg,
            pasid=pasid,
            global_=bool(P.G.get(d1)),
            s=bool(P.S.get(d1)),
            addr=P.ADDR.get(d1) << 12,
            itag=itag,
        )
    else:
        R = F.ATS_PRGR_PAYLOAD
        msg = PageRequestGroupResponse(
            device_id=rid,
            segment=seg,
            pasid=pasid,
            prg_index=R.PRGI.get(d1),
            response_code=R.ResponseCode.get(d1),
        )
    io.send_ats_message(msg)
    return _DONE


_EXEC = {OPCODE.IOTINVAL: iotinval, OPCODE.IOFENCE: iofence_c, OPCODE.IODIR: iodir, OPCODE.ATS: ats}


def execute(io: "Iommu", d0: int, d1: int) -> int:
    """Decode and run one command; returns _ILLEGAL, _DONE or _STALL."""
    fn = _EXEC.get(F.CMD.opcode.get(d0))
    if fn is None:  # reserved (5-63) and custom (64-127) opcodes
        return _ILLEGAL
    return fn(io, F.CMD.func3.get(d0), d0, d1)


#: (opcode, func3) -> command name
COMMAND_NAMES = {
    (OPCODE.IOTINVAL, 0): "IOTINVAL.VMA",
    (OPCODE.IOTINVAL, 1): "IOTINVAL.GVMA",
    (OPCODE.IOFENCE, 0): "IOFENCE.C",
    (OPCODE.IODIR, 0): "IODIR.INVAL_DDT",
    (OPCODE.IODIR, 1): "IODIR.INVAL_PDT",
    (OPCODE.ATS, 0): "ATS.INVAL",
    (OPCODE.ATS, 1): "ATS.PRGR",
}
_OPERANDS = {
    OPCODE.IOTINVAL: (F.CMD_IOTINVAL0, F.CMD_IOTINVAL1),
    OPCODE.IOFENCE: (F.CMD_IOFENCE0, F.CMD_IOFENCE1),
    OPCODE.IODIR: (F.CMD_IODIR0, None),
    OPCODE.ATS: (F.CMD_ATS0, None),
}


def decode(d0: int, d1: int) -> Tuple[int, int, str, Dict[str, int]]:
    """(opcode, func3, name, operands) of a command; names and fields from the spec."""
    opcode = F.CMD.opcode.get(d0)
    func3 = F.CMD.func3.get(d0)
    name = COMMAND_NAMES.get((opcode, func3))
    if name is None:
        name = "custom" if opcode >= 64 else "reserved"
    layouts = _OPERANDS.get(opcode, (F.CMD, None))
    lay1 = layouts[1]
    if opcode == OPCODE.ATS:
        lay1 = F.ATS_PRGR_PAYLOAD if func3 == 1 else F.ATS_INVAL_PAYLOAD
    ops = {k: v for k, v in layouts[0].decode(d0).items() if k not in ("opcode", "func3")}
    if lay1 is not None:
        for k, v in lay1.decode(d1).items():
            ops["payload." + k if k in ops or k == "reserved" else k] = v
    elif d1:
        ops["dword1"] = d1
    return opcode, func3, name, ops


def _emit(io: "Iommu", d0: int, d1: int, outcome: str) -> None:
    assert io.emit is not None
    opcode, func3, name, ops = decode(d0, d1)
    io.emit(CommandEvent(opcode, func3, name, ops, outcome, (d0, d1)))


def process(io: "Iommu", limit: int | None = None) -> int:
    """Run queued commands until the queue is empty, stalls or ``limit`` completed."""
    cq = io.cq
    done = 0
    while (limit is None or done < limit) and not cq.stopped() and cq.head != cq.tail:
        cmd = cq.fetch()
        if cmd is None:  # cqmf: cqh stays on the command
            if io.emit is not None:
                io.emit(CommandEvent(-1, -1, "", {"addr": cq.entry_addr(cq.head)}, "memory_fault"))
            break
        csr = cq.csr
        result = execute(io, *cmd)
        if io.emit is not None:
            if result == _ILLEGAL:
                outcome = "illegal"
            elif result == _DONE:
                outcome = "completed"
            elif cq.csr & ~csr & cq.TO:
                outcome = "timed_out"
            elif cq.csr & ~csr & cq.MF:
                outcome = "memory_fault"
            else:
                outcome = "waiting"
            _emit(io, cmd[0], cmd[1], outcome)
        if result == _ILLEGAL:
            cq.error(cq.ILL)
            break
        if result == _STALL:
            break
        cq.head = (cq.head + 1) % cq.size
        done += 1
    return done
