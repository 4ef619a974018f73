"""The memory-mapped register file (spec "Register layout").

Every register is reached as 32-bit words: an 8-byte access is performed as
two 4-byte accesses, the high half first for writes -- the order the spec
allows an IOMMU to split an 8-byte access into.  Optional registers whose
``capabilities`` bit is 0 read 0 and ignore writes, as do reserved and
custom offsets.  Accesses that are not 4 or 8 bytes, not aligned to their
size, or not within the 4 KiB register page are ``UNSPECIFIED`` by the spec;
the model reads 0 and ignores such writes (``Iommu.mmio_read`` and
``mmio_write`` only raise for non-integer arguments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Final, List, Optional, Tuple

from . import formats as F
from .capabilities import IGS
from .events import RegWrite

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = [
    "REG",
    "build_register_map",
    "RegisterMap",
    "REGISTERS",
    "register_at",
    "emit_reg_writes",
]


class REG:
    """Register offsets."""

    CAPABILITIES: Final = 0
    FCTL: Final = 8
    DDTP: Final = 16
    CQB: Final = 24
    CQH: Final = 32
    CQT: Final = 36
    FQB: Final = 40
    FQH: Final = 48
    FQT: Final = 52
    PQB: Final = 56
    PQH: Final = 64
    PQT: Final = 68
    CQCSR: Final = 72
    FQCSR: Final = 76
    PQCSR: Final = 80
    IPSR: Final = 84
    IOCOUNTOVF: Final = 88
    IOCOUNTINH: Final = 92
    IOHPMCYCLES: Final = 96
    IOHPMCTR1: Final = 104  # iohpmctrX at 104 + 8 * (X - 1)
    IOHPMEVT1: Final = 352  # iohpmevtX at 352 + 8 * (X - 1)
    TR_REQ_IOVA: Final = 600
    TR_REQ_CTL: Final = 608
    TR_RESPONSE: Final = 616
    IOMMU_QOSID: Final = 624
    ICVEC: Final = 760
    #: entry x: msi_addr at +16x, msi_data at +16x+8, msi_vec_ctl at +16x+12
    MSI_CFG_TBL: Final = 768

    @staticmethod
    def iohpmctr(x: int) -> int:
        """Offset of iohpmctrX (1..31)."""
        return REG.IOHPMCTR1 + 8 * (x - 1)

    @staticmethod
    def iohpmevt(x: int) -> int:
        """Offset of iohpmevtX (1..31)."""
        return REG.IOHPMEVT1 + 8 * (x - 1)

    @staticmethod
    def msi_addr(x: int) -> int:
        """Offset of msi_addr_x."""
        return REG.MSI_CFG_TBL + 16 * x

    @staticmethod
    def msi_data(x: int) -> int:
        """Offset of msi_data_x."""
        return REG.MSI_CFG_TBL + 16 * x + 8

    @staticmethod
    def msi_vec_ctl(x: int) -> int:
        """Offset of msi_vec_ctl_x."""
        return REG.MSI_CFG_TBL + 16 * x + 12


Getter = Callable[[], int]
Setter = Callable[[int], None]
#: word offset -> (read the 32-bit word, write the 32-bit word)
RegisterMap = Dict[int, Tuple[Getter, Setter]]

_M32 = 0xFFFFFFFF


def _ignore(_value: int) -> None:
    """Write to a read-only word: ignored."""


def _split64(m: RegisterMap, off: int, get: Callable[[], int], put: Callable[[int], None]) -> None:
    """Register a 64-bit register as two words; each write merges with the other half."""

    def lo() -> int:
        return get() & _M32

    def hi() -> int:
        return get() >> 32

    def set_lo(v: int) -> None:
        put((get() & ~_M32) | v)

    def set_hi(v: int) -> None:
        put((get() & _M32) | (v << 32))

    m[off] = (lo, set_lo)
    m[off + 4] = (hi, set_hi)


def _item(values: List[int], x: int) -> Getter:
    return lambda: values[x]


def _bind(fn: Callable[[int, int], None], x: int) -> Setter:
    return lambda v: fn(x, v)


def build_register_map(io: "Iommu") -> RegisterMap:
    """The register map of ``io`` for its capabilities and parameters."""
    caps = io.caps
    m: RegisterMap = {}
    _split64(m, REG.CAPABILITIES, lambda: caps.raw, _ignore)
    m[REG.FCTL] = (lambda: io.fctl, io.write_fctl)
    _split64(m, REG.DDTP, lambda: io.ddtp, io.write_ddtp)
    cq, fq, pq = io.cq, io.fq, io.pq
    _split64(m, REG.CQB, lambda: cq.base, cq.write_base)
    m[REG.CQH] = (lambda: cq.head, _ignore)
    m[REG.CQT] = (lambda: cq.tail, io.write_cqt)
    _split64(m, REG.FQB, lambda: fq.base, fq.write_base)
    m[REG.FQH] = (lambda: fq.head, fq.write_head)
    m[REG.FQT] = (lambda: fq.tail, _ignore)
    m[REG.CQCSR] = (lambda: cq.csr, io.write_cqcsr)
    m[REG.FQCSR] = (lambda: fq.csr, fq.write_csr)
    if caps.ats:
        _split64(m, REG.PQB, lambda: pq.base, pq.write_base)
        m[REG.PQH] = (lambda: pq.head, pq.write_head)
        m[REG.PQT] = (lambda: pq.tail, _ignore)
        m[REG.PQCSR] = (lambda: pq.csr, pq.write_csr)
    intr = io.intr
    m[REG.IPSR] = (lambda: intr.ipsr, intr.write_ipsr)
    if caps.hpm:
        hpm = io.hpm
        m[REG.IOCOUNTOVF] = (lambda: hpm.ovf, _ignore)
        m[REG.IOCOUNTINH] = (lambda: hpm.inh, hpm.write_inh)
        _split64(m, REG.IOHPMCYCLES, lambda: hpm.cycles, hpm.write_cycles)
        for x in range(1, hpm.n + 1):
            _split64(m, REG.iohpmctr(x), _item(hpm.ctr, x), _bind(hpm.write_ctr, x))
            _split64(m, REG.iohpmevt(x), _item(hpm.evt, x), _bind(hpm.write_evt, x))
    if caps.dbg:
        dbg = io.dbg
        _split64(m, REG.TR_REQ_IOVA, lambda: dbg.iova, dbg.write_iova)
        _split64(m, REG.TR_REQ_CTL, lambda: dbg.ctl, dbg.write_ctl)
        _split64(m, REG.TR_RESPONSE, lambda: dbg.response, _ignore)
    if caps.qosid:
        m[REG.IOMMU_QOSID] = (io.read_iommu_qosid, io.write_iommu_qosid)
    _split64(m, REG.ICVEC, lambda: intr.icvec, intr.write_icvec)
    if caps.igs != IGS.WSI:
        for x in range(io.params.interrupt_vectors):
            _split64(m, REG.msi_addr(x), _item(intr.msi_addr, x), _bind(intr.write_msi_addr, x))
            m[REG.msi_data(x)] = (_item(intr.msi_data, x), _bind(intr.write_msi_data, x))
            m[REG.msi_vec_ctl(x)] = (_item(intr.msi_vec_ctl, x), _bind(intr.write_msi_vec_ctl, x))
    return m


#: offset -> (name, size in bytes, field table or None): every register of the layout
REGISTERS: Dict[int, Tuple[str, int, Optional[F.Layout]]] = {
    REG.CAPABILITIES: ("capabilities", 8, F.CAPABILITIES),
    REG.FCTL: ("fctl", 4, F.FCTL),
    REG.DDTP: ("ddtp", 8, F.DDTP),
    REG.CQB: ("cqb", 8, F.QUEUE_BASE),
    REG.CQH: ("cqh", 4, None),
    REG.CQT: ("cqt", 4, None),
    REG.FQB: ("fqb", 8, F.QUEUE_BASE),
    REG.FQH: ("fqh", 4, None),
    REG.FQT: ("fqt", 4, None),
    REG.PQB: ("pqb", 8, F.QUEUE_BASE),
    REG.PQH: ("pqh", 4, None),
    REG.PQT: ("pqt", 4, None),
    REG.CQCSR: ("cqcsr", 4, F.CQCSR),
    REG.FQCSR: ("fqcsr", 4, F.FQCSR),
    REG.PQCSR: ("pqcsr", 4, F.PQCSR),
    REG.IPSR: ("ipsr", 4, F.IPSR),
    REG.IOCOUNTOVF: ("iocountovf", 4, None),
    REG.IOCOUNTINH: ("iocountinh", 4, None),
    REG.IOHPMCYCLES: ("iohpmcycles", 8, F.IOHPMCYCLES),
    REG.TR_REQ_IOVA: ("tr_req_iova", 8, F.TR_REQ_IOVA),
    REG.TR_REQ_CTL: ("tr_req_ctl", 8, F.TR_REQ_CTL),
    REG.TR_RESPONSE: ("tr_response", 8, F.TR_RESPONSE),
    REG.IOMMU_QOSID: ("iommu_qosid", 4, F.IOMMU_QOSID),
    REG.ICVEC: ("icvec", 8, F.ICVEC),
}
for _x in range(1, 32):
    REGISTERS[REG.iohpmctr(_x)] = (f"iohpmctr{_x}", 8, None)
    REGISTERS[REG.iohpmevt(_x)] = (f"iohpmevt{_x}", 8, F.IOHPMEVT)
for _x in range(16):
    REGISTERS[REG.msi_addr(_x)] = (f"msi_addr_{_x}", 8, F.MSI_ADDR)
    REGISTERS[REG.msi_data(_x)] = (f"msi_data_{_x}", 4, None)
    REGISTERS[REG.msi_vec_ctl(_x)] = (f"msi_vec_ctl_{_x}", 4, F.MSI_VEC_CTL)


def register_at(offset: int) -> Optional[Tuple[int, str, int, Optional[F.Layout]]]:
    """The register containing byte ``offset``: (its offset, name, size, layout), or None."""
    for base in (offset, offset - 4):
        reg = REGISTERS.get(base)
        if reg is not None and base + reg[1] > offset:
            return (base, *reg)
    return None


def _covered(offset: int, size: int) -> List[Tuple[int, str, int, Optional[F.Layout]]]:
    out = []
    for k in range(0, size, 4):
        reg = register_at(offset + k)
        if reg is not None and reg not in out:
            out.append(reg)
    return out


def emit_reg_writes(
    io: "Iommu", offset: int, size: int, before: Optional[Dict[int, int]]
) -> Optional[Dict[int, int]]:
    """RegWrite events of an MMIO write (only called with an observer attached).

    Called once before the write (``before`` None: returns the values of the
    registers it covers) and once after it (emits one
    :class:`~riscv_iommu.events.RegWrite` per register, with the old and new
    value of each changed field).
    """
    regs = _covered(offset, size)
    if before is None:
        return {base: io.mmio_read(base, rsize) for base, _, rsize, _ in regs}
    assert io.emit is not None
    for base, name, rsize, layout in regs:
        old = before[base]
        new = io.mmio_read(base, rsize)
        changes: Dict[str, Tuple[int, int]] = {}
        if layout is None:
            if old != new:
                changes[name] = (old, new)
        else:
            for fname, f in layout.fields.items():
                a, b = f.get(old), f.get(new)
                if a != b:
                    changes[fname] = (a, b)
        io.emit(RegWrite(offset, name, size, old, new, changes))
    return None
