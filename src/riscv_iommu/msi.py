"""§MSI_TRANS "Process to translate addresses of MSIs" (and MRIF recording).

MSI page-table entries are 16 bytes read in the byte order of ``fctl.BE``
(spec table "Endianness of memory access to data structures").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Optional, Tuple

from . import formats as F
from ._fault import Fault
from .events import Check, MemAccess
from .memory import MemoryAccessError, MemoryFault
from .paging import emit_read, load, store_cas
from .types import Access, Cause

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = [
    "extract",
    "is_msi_address",
    "msi_free_size",
    "msi_translate",
    "record_mrif",
    "MsiResult",
]

#: (translated address, is_mrif, MRIF address, notice MSI address, NID)
MsiResult = Tuple[int, bool, int, int, int]

_MODE_SHIFT: Final = F.MSIPTP.MODE.lsb
_MASK: Final = F.MSI_ADDR_MASK.mask.mask
_PTE_V: Final = F.MSIPTE0.V.mask
_PTE_C: Final = F.MSIPTE0.C.mask
_PTE_M: Final = F.MSIPTE0.M
_EXECUTE: Final = int(Access.EXECUTE)  # an Enum attribute lookup costs more than the test


def extract(x: int, y: int) -> int:
    """The spec's bit extract: pack the bits of ``x`` selected by the ones of ``y``."""
    r = 0
    k = 0
    while y:
        low = y & -y
        if x & low:
            r |= 1 << k
        k += 1
        y ^= low
    return r


def is_msi_address(gpa: int, mask: int, pattern: int) -> bool:
    """§MSI_ID: ``(A >> 12) & ~msi_addr_mask == msi_addr_pattern & ~msi_addr_mask``."""
    mask &= _MASK
    return (gpa >> 12) & ~mask == pattern & _MASK & ~mask


def msi_free_size(gpa: int, size: int, mask: int, pattern: int) -> int:
    """The range size to report or cache for ``gpa``, a GPA that is no MSI address.

    The largest aligned power of two, at most ``size``, whose range around
    ``gpa`` holds no 4 KiB page that §MSI_ID recognises as a virtual
    interrupt file: a cached or reported translation must never answer for
    one (step 18 would translate it through the MSI page table instead).

    An aligned range of 2^k pages contains an interrupt file exactly when
    the page of ``gpa`` differs from the pattern, outside the mask, only in
    bits below k; so the range may grow up to the highest such bit.  The
    callers pass no interrupt-file page (those are translated by step 18);
    for one (``differs`` = 0) the answer is that page alone, 4 KiB.
    """
    differs = ((gpa >> 12) ^ (pattern & _MASK)) & ~(mask & _MASK)
    limit = 1 << (11 + (differs.bit_length() or 1))  # 4 KiB << (highest differing bit)
    return size if size <= limit else limit


def _msipt_fault(err: MemoryAccessError) -> Fault:
    if err.fault is MemoryFault.DATA_CORRUPTION:
        why = ("MSI_TRANS", "8", "MSI PTE", f"poisoned data reading the MSI PTE at {err.addr:#x}")
        return Fault(Cause.MSI_PT_DATA_CORRUPTION, 0, why)
    why = ("MSI_TRANS", "7", "MSI PTE", f"access fault reading the MSI PTE at {err.addr:#x}")
    return Fault(Cause.MSI_PTE_LOAD_ACCESS_FAULT, 0, why)


def _misconfigured(step: str, fieldname: str, rule: str) -> Fault:
    return Fault(Cause.MSI_PTE_MISCONFIGURED, 0, ("MSI_TRANS", step, fieldname, rule))


def msi_translate(
    io: "Iommu", msiptp: int, mask: int, pattern: int, gpa: int, access: int, gscid: int = -1
) -> Optional[MsiResult]:
    """Translate ``gpa`` through the MSI page table, or None if it is no MSI address.

    Valid, well-formed MSI PTEs are cached, tagged by ``gscid`` and the GPA
    page (spec table "Identifiers used to tag IOATC entries"); IOTINVAL.GVMA
    drops them.
    """
    a = gpa  # step 1 (step 2: the DC was located by the caller)
    if not is_msi_address(a, mask, pattern):  # step 3
        return None  # step 4: use the regular translation
    i = extract(a >> 12, mask & _MASK)  # step 5
    m = F.MSIPTP.PPN.get(msiptp) << 12  # step 6
    big = io.be
    addr = m | (i * F.MSIPTE_SIZE)
    key = (gscid, a >> 12)
    cache = io.ioatc.msi
    cached = cache.get(key)
    if cached is not None:
        pte0, pte1 = cached
    else:
        try:  # steps 7 and 8
            pte0 = load(io, addr, 8, big)
            pte1 = load(io, addr + 8, 8, big)
        except MemoryAccessError as err:
            raise _msipt_fault(err) from None
        emit = io.emit
        if emit is not None:
            emit_read(io, emit, "MSI_PTE", addr, 16, big, pte0 | (pte1 << 64), "MSI_TRANS", "7")
    if not pte0 & _PTE_V:  # step 9
        why = ("MSI_TRANS", "9", "msipte.V", f"the MSI PTE of interrupt file {i:#x} has V=0")
        raise Fault(Cause.MSI_PTE_NOT_VALID, 0, why)
    if pte0 & _PTE_C:  # step 10: custom PTEs; this model implements none
        raise _misconfigured("10", "msipte.C", "C=1: custom MSI PTE (none implemented)")
    mode = _PTE_M.get(pte0)  # step 11
    if mode in (0, 2):  # step 12
        raise _misconfigured("12", "msipte.M", f"M={mode} is a reserved MSI PTE mode")
    if mode == 3:  # step 13: basic translate mode
        if pte0 & F.MSIPTE0.reserved:
            raise _misconfigured("13", "msipte", "the basic-mode MSI PTE has reserved bits set")
        result: MsiResult = ((F.MSIPTE0.PPN.get(pte0) << 12) | (a & 0xFFF), False, 0, 0, 0)
    else:  # step 14: MRIF mode
        if not io.caps.msi_mrif:
            raise _misconfigured("14", "msipte.M", "M=1 (MRIF) and capabilities.MSI_MRIF is 0")
        if pte0 & F.MSIPTE_MRIF0.reserved or pte1 & F.MSIPTE_MRIF1.reserved:
            raise _misconfigured("14", "msipte", "the MRIF-mode MSI PTE has reserved bits set")
        mrif = F.MSIPTE_MRIF0.MRIF_Address.get(pte0) * 512
        notice = F.MSIPTE_MRIF1.NPPN.get(pte1) << 12
        nid = (F.MSIPTE_MRIF1.N10.get(pte1) << 10) | F.MSIPTE_MRIF1.N.get(pte1)
        result = (mrif, True, mrif, notice, nid)
    if cached is None:
        cache.put(key, (pte0, pte1))  # a valid, well-formed PTE
    # step 15: permissions of a second-stage PTE with R=W=U=1, X=0
    if access == _EXECUTE:
        why = ("MSI_TRANS", "15", "X", "an execute of an MSI address (the MSI PTE grants no X)")
        raise Fault(Cause.INSTRUCTION_ACCESS_FAULT, 0, why)
    if io.emit is not None:
        io.emit(Check("MSI_TRANS", "15", "the MSI PTE grants the access", True))
    return result  # step 16


def _mrif_fault(err: MemoryAccessError) -> Fault:
    if err.fault is MemoryFault.DATA_CORRUPTION:
        why = ("MRIF", "", "MRIF", f"poisoned data reading the MRIF at {err.addr:#x}")
        return Fault(Cause.MSI_MRIF_DATA_CORRUPTION, 0, why)
    why = ("MRIF", "", "MRIF", f"access fault on the MRIF or notice MSI at {err.addr:#x}")
    return Fault(Cause.MRIF_ACCESS_FAULT, 0, why)


def record_mrif(io: "Iommu", gpa: int, data: int, mrif: int, notice: int, nid: int) -> bool:
    """Store an MSI into an MRIF and send the notice MSI (AIA "MSI PTE, MRIF mode").

    Returns False when the write is accepted but discarded (``A[11:3]`` or
    ``D[31:11]`` not zero, or a big-endian MSI: this model's IMSICs have no
    ``seteipnum_be``).  An access fault on the MRIF or the notice write is
    "MRIF access fault" (264); poisoned MRIF data is 271.  MRIF doublewords
    are little-endian.
    """
    if gpa & 0xFF8 or data >> 11 or gpa & 4:
        return False
    word = mrif + (data // 64) * 16  # the interrupt-pending doubleword
    bit = 1 << (data % 64)
    emit = io.emit
    try:
        for _ in range(64):  # AMOOR (AMO_MRIF) or a read-modify-write: both via the port
            old = load(io, word, 8, False)
            if emit is not None:
                emit_read(io, emit, "MRIF", word, 8, False, old, "MRIF", "")
            if old & bit or store_cas(io, word, 8, False, old, old | bit, "MRIF_WRITE"):
                break
        if notice + 4 > io.pa_limit:
            raise MemoryAccessError(MemoryFault.ACCESS_FAULT, notice, 4)
        if emit is not None:
            rcid, mcid = io.qos
            emit(MemAccess(notice, 4, "write", "MSI", rcid, mcid, False))
        io.mem.write(notice, nid.to_bytes(4, "little"))
    except MemoryAccessError as err:
        raise _mrif_fault(err) from None
    return True
