"""Driver-like helpers for the software-interface tests (issue 3).

Everything here programs the IOMMU the way a driver would: through
``mmio_write``/``mmio_read`` and memory only.  Command builders return the two
doublewords ``(dword0, dword1)`` of a 16-byte command, built from the
``riscv_iommu.formats`` layouts.

Other helpers: append new functions at the END of this file.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.commands import OPCODE

REG = rv.REG

Cmd = Tuple[int, int]

FQ_ENTRY = F.FAULT_RECORD_SIZE  # 32
PQ_ENTRY = 16
CQ_ENTRY = 16


# ---------------------------------------------------------------------------
# queue setup
# ---------------------------------------------------------------------------
def _alloc_queue(s: Any, log2sz: int, entry: int) -> int:
    size = (1 << log2sz) * entry
    align = max(4096, size)
    return int(s.alloc.alloc(max(4096, size), align))


def queue_base(base: int, log2sz: int) -> int:
    """xqb value for a queue at ``base`` with 2**log2sz entries."""
    return F.QUEUE_BASE.encode(LOG2SZ_1=log2sz - 1, PPN=base >> 12)


def setup_fq(s: Any, log2sz: int = 3, ie: bool = True) -> int:
    """Allocate and enable the fault queue (fqen, fie=ie); returns its base address."""
    base = _alloc_queue(s, log2sz, FQ_ENTRY)
    io = s.iommu
    io.mmio_write(REG.FQB, queue_base(base, log2sz))
    io.mmio_write(REG.FQH, 0, 4)
    io.mmio_write(REG.FQCSR, F.FQCSR.encode(fqen=1, fie=int(ie)), 4)
    assert io.mmio_read(REG.FQCSR, 4) & F.FQCSR.fqon.mask
    return base


def setup_pq(s: Any, log2sz: int = 3, ie: bool = True) -> int:
    """Allocate and enable the page-request queue (pqen, pie=ie); returns its base address."""
    base = _alloc_queue(s, log2sz, PQ_ENTRY)
    io = s.iommu
    io.mmio_write(REG.PQB, queue_base(base, log2sz))
    io.mmio_write(REG.PQH, 0, 4)
    io.mmio_write(REG.PQCSR, F.PQCSR.encode(pqen=1, pie=int(ie)), 4)
    assert io.mmio_read(REG.PQCSR, 4) & F.PQCSR.pqon.mask
    return base


def setup_cq(s: Any, log2sz: int = 3, ie: bool = False) -> int:
    """Allocate and enable the command queue (cqen, cie=ie); returns its base address."""
    base = _alloc_queue(s, log2sz, CQ_ENTRY)
    io = s.iommu
    io.mmio_write(REG.CQB, queue_base(base, log2sz))
    io.mmio_write(REG.CQT, 0, 4)
    io.mmio_write(REG.CQCSR, F.CQCSR.encode(cqen=1, cie=int(ie)), 4)
    assert io.mmio_read(REG.CQCSR, 4) & F.CQCSR.cqon.mask
    return base


def _be(s: Any) -> bool:
    return bool(s.iommu.mmio_read(REG.FCTL, 4) & F.FCTL.BE.mask)


def _order(big: bool) -> str:
    return "big" if big else "little"


def _qinfo(s: Any, breg: int) -> Tuple[int, int]:
    """(base address, number of entries) of the queue whose base register is ``breg``."""
    b = s.iommu.mmio_read(breg)
    return F.QUEUE_BASE.PPN.get(b) << 12, 1 << (F.QUEUE_BASE.LOG2SZ_1.get(b) + 1)


def write_cmd(s: Any, index: int, cmd: Cmd) -> None:
    """Write ``cmd`` into CQ slot ``index`` in fctl.BE byte order (no doorbell)."""
    base, n = _qinfo(s, REG.CQB)
    addr = base + (index % n) * CQ_ENTRY
    o = _order(_be(s))
    s.mem.write(addr, cmd[0].to_bytes(8, o) + cmd[1].to_bytes(8, o))  # type: ignore[arg-type]


def submit(s: Any, *cmds: Cmd) -> None:
    """Write ``cmds`` at cqt (fctl.BE order), then bump cqt once through MMIO."""
    io = s.iommu
    _, n = _qinfo(s, REG.CQB)
    t = io.mmio_read(REG.CQT, 4)
    for c in cmds:
        write_cmd(s, t, c)
        t = (t + 1) % n
    io.mmio_write(REG.CQT, t, 4)


def fq_records(s: Any) -> List[rv.FaultRecord]:
    """The fault records between fqh and fqt (fctl.BE aware); does not move fqh."""
    io = s.iommu
    base, n = _qinfo(s, REG.FQB)
    h = io.mmio_read(REG.FQH, 4)
    t = io.mmio_read(REG.FQT, 4)
    big = _be(s)
    out = []
    while h != t:
        data = s.mem.read(base + h * FQ_ENTRY, FQ_ENTRY)
        out.append(rv.FaultRecord.from_bytes(data, big))
        h = (h + 1) % n
    return out


def fq_pop_all(s: Any) -> List[rv.FaultRecord]:
    """fq_records(), then advance fqh to fqt (consume them)."""
    recs = fq_records(s)
    s.iommu.mmio_write(REG.FQH, s.iommu.mmio_read(REG.FQT, 4), 4)
    return recs


def pq_records(s: Any) -> List[Tuple[int, int]]:
    """The raw (dword0, dword1) page-request records between pqh and pqt (fctl.BE aware)."""
    io = s.iommu
    base, n = _qinfo(s, REG.PQB)
    h = io.mmio_read(REG.PQH, 4)
    t = io.mmio_read(REG.PQT, 4)
    o = _order(_be(s))
    out = []
    while h != t:
        data = s.mem.read(base + h * PQ_ENTRY, PQ_ENTRY)
        out.append((int.from_bytes(data[:8], o), int.from_bytes(data[8:], o)))  # type: ignore[arg-type]
        h = (h + 1) % n
    return out


# ---------------------------------------------------------------------------
# command builders (spec "Command-Queue (CQ)")
# ---------------------------------------------------------------------------
def iotinval_vma(
    gscid: Optional[int] = None,
    pscid: Optional[int] = None,
    addr: Optional[int] = None,
    nl: bool = False,
    s: bool = False,
) -> Cmd:
    """IOTINVAL.VMA: GV/PSCV/AV are set when gscid/pscid/addr are given (addr is a byte address)."""
    d0 = F.CMD_IOTINVAL0.encode(
        opcode=OPCODE.IOTINVAL,
        func3=0,
        AV=int(addr is not None),
        PSCID=pscid or 0,
        PSCV=int(pscid is not None),
        GV=int(gscid is not None),
        NL=int(nl),
        GSCID=gscid or 0,
    )
    d1 = F.CMD_IOTINVAL1.encode(S=int(s), ADDR=(addr or 0) >> 12)
    return d0, d1


def iotinval_gvma(
    gscid: Optional[int] = None,
    addr: Optional[int] = None,
    nl: bool = False,
    s: bool = False,
    pscid: Optional[int] = None,
) -> Cmd:
    """IOTINVAL.GVMA (pscid given -> PSCV=1, which is illegal: for negative tests)."""
    d0 = F.CMD_IOTINVAL0.encode(
        opcode=OPCODE.IOTINVAL,
        func3=1,
        AV=int(addr is not None),
        PSCID=pscid or 0,
        PSCV=int(pscid is not None),
        GV=int(gscid is not None),
        NL=int(nl),
        GSCID=gscid or 0,
    )
    d1 = F.CMD_IOTINVAL1.encode(S=int(s), ADDR=(addr or 0) >> 12)
    return d0, d1


def iofence_c(
    addr: Optional[int] = None,
    data: int = 0,
    wsi: bool = False,
    pr: bool = False,
    pw: bool = False,
) -> Cmd:
    """IOFENCE.C: AV=1 when ``addr`` (a 4-byte aligned byte address) is given."""
    d0 = F.CMD_IOFENCE0.encode(
        opcode=OPCODE.IOFENCE,
        func3=0,
        AV=int(addr is not None),
        WSI=int(wsi),
        PR=int(pr),
        PW=int(pw),
        DATA=data,
    )
    d1 = F.CMD_IOFENCE1.encode(ADDR=(addr or 0) >> 2)
    return d0, d1


def iodir_inval_ddt(did: Optional[int] = None, pid: int = 0) -> Cmd:
    """IODIR.INVAL_DDT: DV=1 when ``did`` is given (pid is reserved: for negative tests)."""
    d0 = F.CMD_IODIR0.encode(
        opcode=OPCODE.IODIR, func3=0, PID=pid, DV=int(did is not None), DID=did or 0
    )
    return d0, 0


def iodir_inval_pdt(did: Optional[int] = None, pid: int = 0) -> Cmd:
    """IODIR.INVAL_PDT: DV=1 when ``did`` is given (DV=0 is illegal)."""
    d0 = F.CMD_IODIR0.encode(
        opcode=OPCODE.IODIR, func3=1, PID=pid, DV=int(did is not None), DID=did or 0
    )
    return d0, 0


def _ats0(func3: int, rid: int, pid: Optional[int], dseg: Optional[int]) -> int:
    return F.CMD_ATS0.encode(
        opcode=OPCODE.ATS,
        func3=func3,
        PID=pid or 0,
        PV=int(pid is not None),
        DSV=int(dseg is not None),
        RID=rid,
        DSEG=dseg or 0,
    )


def ats_inval(
    rid: int,
    addr: int = 0,
    pid: Optional[int] = None,
    dseg: Optional[int] = None,
    g: bool = False,
    s: bool = False,
) -> Cmd:
    """ATS.INVAL to requester ``rid``; PV/DSV set when pid/dseg are given; payload G/S/ADDR."""
    d1 = F.ATS_INVAL_PAYLOAD.encode(G=int(g), S=int(s), ADDR=addr >> 12)
    return _ats0(0, rid, pid, dseg), d1


def ats_prgr(
    rid: int,
    prgi: int = 0,
    response_code: int = 0,
    pid: Optional[int] = None,
    dseg: Optional[int] = None,
) -> Cmd:
    """ATS.PRGR to requester ``rid``; payload PRGI and ResponseCode."""
    d1 = F.ATS_PRGR_PAYLOAD.encode(PRGI=prgi, ResponseCode=response_code)
    return _ats0(1, rid, pid, dseg), d1


# ---------------------------------------------------------------------------
# misc
# ---------------------------------------------------------------------------
def cqcsr(s: Any) -> int:
    return int(s.iommu.mmio_read(REG.CQCSR, 4))


def fqcsr(s: Any) -> int:
    return int(s.iommu.mmio_read(REG.FQCSR, 4))


def ipsr(s: Any) -> int:
    return int(s.iommu.mmio_read(REG.IPSR, 4))


# --- helpers appended by other test writers go below this line ---


def system_with_port(
    mem: Any,
    caps: Optional[rv.Capabilities] = None,
    params: Optional[rv.IommuParams] = None,
    fctl: int = 0,
    levels: int = 3,
) -> Any:
    """A helpers.System built over a caller-supplied memory port ``mem`` (e.g. a SparseMemory
    subclass with a ``qos`` attribute), otherwise identical to ``System(...)``."""
    from helpers import System
    from riscv_iommu.host.tables import DeviceDirectory, HostSpace, PageAllocator

    s = System.__new__(System)
    s.mem = mem
    s.caps = caps if caps is not None else rv.Capabilities.full()
    s.iommu = rv.Iommu(mem, capabilities=s.caps, fctl=fctl, params=params)
    s.alloc = PageAllocator(mem)
    s.host = HostSpace(mem, s.alloc)
    s.be = bool(fctl & 1)
    s.ddt = DeviceDirectory(mem, s.alloc, levels=levels, msi_flat=s.caps.msi_flat, big=s.be)
    s.iommu.mmio_write(REG.DDTP, s.ddt.ddtp)
    return s
