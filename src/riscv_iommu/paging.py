"""First-stage and second-stage (G-stage) address translation.

Implements the Privileged specification's "Virtual Address Translation
Process" and "Two-Stage Address Translation" as the IOMMU spec invokes them
(§"Process to translate an IOVA", steps 17 and 19), for Sv32/Sv39/Sv48/Sv57
and Sv32x4/Sv39x4/Sv48x4/Sv57x4, with Svnapot, Svpbmt, Svrsw60t59b and
hardware A/D updating.  Priv-spec step numbers are cited as "PTW step N".

Everything here works on plain ints; faults stop the process by raising
:class:`~riscv_iommu._fault.Fault`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Literal, Tuple

from . import formats as F
from ._fault import Fault, access_fault, guest_page_fault, page_fault
from .memory import MemoryAccessError, MemoryFault
from .types import Access, Cause

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = [
    "S_MODES",
    "G_MODES",
    "S_VALID",
    "G_VALID",
    "load",
    "store_cas",
    "first_stage",
    "second_stage",
    "Leaf",
]

# Geometry of a paging mode: (LEVELS, VPN bits per level, PTESIZE, VA/GPA width)
Geometry = Tuple[int, int, int, int]

#: iosatp.MODE / PC.fsc.MODE -> geometry, indexed by DC.tc.SXL.
S_MODES: Tuple[Dict[int, Geometry], Dict[int, Geometry]] = (
    {8: (3, 9, 8, 39), 9: (4, 9, 8, 48), 10: (5, 9, 8, 57)},  # SXL=0: Sv39, Sv48, Sv57
    {8: (2, 10, 4, 32)},  # SXL=1: Sv32
)
#: iohgatp.MODE -> geometry (GPA width includes the 2 extra root bits), by fctl.GXL.
G_MODES: Tuple[Dict[int, Geometry], Dict[int, Geometry]] = (
    {8: (3, 9, 8, 41), 9: (4, 9, 8, 50), 10: (5, 9, 8, 59)},  # GXL=0: Sv39x4, Sv48x4, Sv57x4
    {8: (2, 10, 4, 34)},  # GXL=1: Sv32x4
)

#: Valid (standard, non-custom) encodings of iosatp.MODE / iohgatp.MODE, by SXL / GXL.
S_VALID = tuple(frozenset({0, *m}) for m in S_MODES)
G_VALID = tuple(frozenset({0, *m}) for m in G_MODES)

_V = F.PTE.V.mask
_R = F.PTE.R.mask
_W = F.PTE.W.mask
_X = F.PTE.X.mask
_U = F.PTE.U.mask
_A = F.PTE.A.mask
_D = F.PTE.D.mask
_N = F.PTE.N.mask
_PBMT_SHIFT = F.PTE.PBMT.lsb
_PBMT_MAX = F.PTE.PBMT.max
_PPN_SHIFT = F.PTE.PPN.lsb
_PPN64 = F.PTE.PPN.max
_PPN32 = F.PTE32.PPN.max
_PPN_ROOT = F.IOSATP.PPN.max
_G_MODE_SHIFT = F.IOHGATP.MODE.lsb
_GSCID_LSB = F.IOHGATP.GSCID.lsb
_GSCID_MAX = F.IOHGATP.GSCID.max
_RX = _R | _X
_RW = _R | _W
_NAPOT_64K = 0b1000  # Svnapot: the only defined N encoding, ppn[3:0] = 1000 at level 0

#: How often an A/D update may find the PTE changed before the walk gives up
#: (reported as an access fault on the PTE).
MAX_AD_RETRIES = 16
_STUCK = MemoryAccessError(MemoryFault.ACCESS_FAULT, 0, 0)

#: A located leaf: (pte, page size in bytes, SPA of the PTE, GPA of the PTE or -1)
Leaf = Tuple[int, int, int, int]


class _Invalid(Exception):
    """PTW steps 3/4/6: the walk found an invalid, reserved or misaligned PTE."""


def load(io: "Iommu", addr: int, size: int, big: bool) -> int:
    """One implicit read of ``size`` bytes; addresses beyond PAS are access faults."""
    return io.rd(addr, size, big)


def store_cas(io: "Iommu", addr: int, size: int, big: bool, old: int, new: int) -> bool:
    """Atomic read-modify-write through the port (``cas`` when the port has it).

    ``addr`` was just read by the caller, so it is within capabilities.PAS.
    """
    order: Literal["little", "big"] = "big" if big else "little"
    expected = old.to_bytes(size, order)
    desired = new.to_bytes(size, order)
    cas = getattr(io.mem, "cas", None)
    if cas is not None:
        got = bytes(cas(addr, expected, desired))
    else:
        got = bytes(io.mem.read(addr, size))
        if got == expected:
            io.mem.write(addr, desired)
    return got == expected


def _pte_fault(err: MemoryAccessError, access: int, for_pdt: bool) -> Fault:
    """Access fault / data corruption while reading a PTE."""
    if err.fault is MemoryFault.DATA_CORRUPTION:
        return Fault(Cause.PDT_DATA_CORRUPTION if for_pdt else Cause.PT_DATA_CORRUPTION)
    if for_pdt:
        # §GET_PC: an access fault in the second stage of a PDT address is cause 265
        return Fault(Cause.PDT_ENTRY_LOAD_ACCESS_FAULT)
    return access_fault(access)


def _walk(
    io: "Iommu",
    va: int,
    root_ppn: int,
    geom: Geometry,
    big: bool,
    hgatp: int,
    access: int,
    gctl: int,
    for_pdt: bool,
) -> Leaf:
    """PTW steps 1-4 and 6: locate the leaf PTE for ``va``.

    When ``hgatp`` selects a G-stage mode (first stage of a two-stage
    translation), every PTE address is a GPA translated by
    :func:`second_stage` as an implicit read.  Raises :class:`_Invalid` for
    the page-fault conditions of steps 3, 4 and 6.
    """
    levels, vbits, psize, _ = geom
    if psize == 8:
        rsv = io.pte_rsv
        nl_bad = _V | _W | rsv | io.pte_nl_rsv
        ppn_max = _PPN64
    else:
        rsv = 0
        nl_bad = _V | _W | io.pte32_nl_rsv
        ppn_max = _PPN32
    rd = io.rd
    tr = io.tracer
    vmask = (1 << vbits) - 1
    i = levels - 1
    shift = 12 + i * vbits
    # vpn[LEVELS-1] takes all remaining bits: 2 more for an x4 G-stage root
    # (the caller checked the width of va)
    idx = va >> shift
    a = root_ppn << 12
    while True:
        pte_addr = a + idx * psize  # PTW step 2
        pte_gpa = -1
        if hgatp:
            pte_gpa = pte_addr
            pte_addr = implicit_read(io, pte_gpa, hgatp, access, gctl, for_pdt)
        try:
            pte = rd(pte_addr, psize, big)
        except MemoryAccessError as err:
            raise _pte_fault(err, access, for_pdt) from None
        if tr is not None:
            tr(
                "PTW",
                "2",
                f"PTE level {i} for {va:#x}",
                pte_addr,
                pte,
                F.PTE if psize == 8 else F.PTE32,
            )
        if pte & _RX:
            # PTW step 3 for a leaf: invalid, W without R, or reserved bits
            if not pte & _V or pte & rsv or (pte & _RW) == _W:
                raise _Invalid
            break  # PTW step 4: a leaf
        # PTW step 3 for a pointer: V must be 1, W 0, and nothing reserved
        # (D, A, U, N and PBMT are reserved in non-leaf PTEs)
        if pte & nl_bad != _V:
            raise _Invalid
        i -= 1
        if i < 0:  # PTW step 4
            raise _Invalid
        shift -= vbits
        idx = (va >> shift) & vmask
        a = ((pte >> _PPN_SHIFT) & ppn_max) << 12
    ppn = (pte >> _PPN_SHIFT) & ppn_max
    size = 1 << (12 + i * vbits)
    if psize == 8:
        if (pte >> _PBMT_SHIFT) & _PBMT_MAX == 3:  # Svpbmt: PBMT=3 is reserved
            raise _Invalid
        if pte & _N:  # Svnapot: only the 64 KiB encoding at level 0 is defined
            if i or ppn & 0xF != _NAPOT_64K:
                raise _Invalid
            size = 1 << 16
    if i and ppn & ((1 << (i * vbits)) - 1):  # PTW step 6: misaligned superpage
        raise _Invalid
    return pte, size, pte_addr, pte_gpa


def _walk_g64(
    io: "Iommu", gpa: int, root_ppn: int, levels: int, big: bool, access: int, for_pdt: bool
) -> Tuple[int, int, int]:
    """:func:`_walk` specialised for the 8-byte G-stage modes (the hot path).

    Same PTW steps 2-4 and 6, with nothing to translate on the way.
    """
    rsv = io.pte_rsv
    nl_bad = _V | _W | rsv | io.pte_nl_rsv
    rd = io.rd
    tr = io.tracer
    i = levels - 1
    shift = 12 + 9 * i
    a = (root_ppn << 12) + (gpa >> shift) * 8  # x4 root: vpn[LEVELS-1] has 11 bits
    while True:
        try:
            pte = rd(a, 8, big)
        except MemoryAccessError as err:
            raise _pte_fault(err, access, for_pdt) from None
        if tr is not None:
            tr("PTW-G", "2", f"G-stage PTE level {i} for GPA {gpa:#x}", a, pte, F.PTE)
        if pte & _RX:
            if not pte & _V or pte & rsv or (pte & _RW) == _W:  # PTW step 3
                raise _Invalid
            break  # PTW step 4
        if pte & nl_bad != _V:  # PTW step 3 (pointer)
            raise _Invalid
        i -= 1
        if i < 0:
            raise _Invalid
        shift -= 9
        a = (((pte >> _PPN_SHIFT) & _PPN64) << 12) + ((gpa >> shift) & 0x1FF) * 8
    ppn = (pte >> _PPN_SHIFT) & _PPN64
    size = 1 << shift
    if (pte >> _PBMT_SHIFT) & _PBMT_MAX == 3:  # Svpbmt: PBMT=3 is reserved
        raise _Invalid
    if pte & _N:  # Svnapot: only the 64 KiB encoding at level 0 is defined
        if i or ppn & 0xF != _NAPOT_64K:
            raise _Invalid
        size = 1 << 16
    if i and ppn & ((1 << (i * 9)) - 1):  # PTW step 6: misaligned superpage
        raise _Invalid
    return pte, size, a


def implicit_read(io: "Iommu", gpa: int, hgatp: int, access: int, gctl: int, for_pdt: bool) -> int:
    """The SPA of an implicit read at ``gpa`` (a first-stage PTE or a PDT entry).

    Goes through the G-stage walk cache (IOATC "second-stage page table",
    tag GSCID + GPA page, dropped by IOTINVAL.GVMA): it holds the G-stage
    translations of pages that implicit reads may use, i.e. whose leaf had
    R, U and A set.  Capacity ``IommuParams.gwalk_cache_size``; 0 walks.
    """
    cache = io.gwalk_cache
    key = ((hgatp >> _GSCID_LSB) & _GSCID_MAX, gpa >> 12)
    page = cache.get(key)
    if page is not None:
        return page | (gpa & 0xFFF)
    spa, pte, _ = second_stage(io, gpa, hgatp, access, True, False, gctl, for_pdt)
    if io.params.gwalk_cache_size:
        io.cache_gwalk(key, spa & ~0xFFF)
    return spa


def second_stage(
    io: "Iommu",
    gpa: int,
    hgatp: int,
    access: int,
    implicit: bool,
    implicit_write: bool,
    gctl: int,
    for_pdt: bool = False,
) -> Tuple[int, int, int]:
    """Translate a GPA with the G-stage table of ``hgatp`` (not Bare).

    ``implicit`` marks an implicit access for first-stage translation (a PTE
    read, or a PDT access in the base spec); ``implicit_write`` an A/D update
    of a first-stage PTE.  ``gctl`` bit 0 is ``DC.tc.GADE``, bit 1 is
    ``DC.tc.SXL``.  Returns ``(spa, leaf pte, page size)``.
    """
    geom = G_MODES[io.gxl][hgatp >> _G_MODE_SHIFT]
    gbits = 34 if gctl & 2 else geom[3]
    # GPA width check (x4 modes), and §DC.tc.SXL: GPA bits beyond 33 fault
    if gpa >> gbits:
        raise guest_page_fault(access, gpa, implicit, implicit_write)
    big = io.be
    root = hgatp & _PPN_ROOT
    psize = geom[2]
    retries = 0
    while True:  # PTW step 7 may restart the walk
        try:
            if psize == 8:
                pte, size, pte_addr = _walk_g64(io, gpa, root, geom[0], big, access, for_pdt)
            else:
                pte, size, pte_addr, _ = _walk(io, gpa, root, geom, big, 0, access, gctl, for_pdt)
        except _Invalid:
            raise guest_page_fault(access, gpa, implicit, implicit_write) from None
        # PTW step 5: G-stage accesses are user-level accesses (U must be 1)
        if implicit:
            need = _U | (_W if implicit_write else _R)
            write = implicit_write
        else:
            need = _U | _PERM[access]
            write = access == Access.WRITE
        if pte & need != need:
            raise guest_page_fault(access, gpa, implicit, implicit_write)
        # PTW step 7: A/D
        ad = _A | _D if write else _A
        if pte & ad != ad:
            if not gctl & 1:
                raise guest_page_fault(access, gpa, implicit, implicit_write)
            new = pte | ad
            try:
                if not store_cas(io, pte_addr, psize, big, pte, new):
                    retries += 1
                    if retries > MAX_AD_RETRIES:  # a port that never lets the update land
                        raise _pte_fault(_STUCK, access, for_pdt)
                    continue  # the PTE changed: redo the walk (PTW step 7)
            except MemoryAccessError as err:
                raise _pte_fault(err, access, for_pdt) from None
            pte = new
        # PTW step 8: the SPA from the leaf PPN and the page offset
        ppn = (pte >> _PPN_SHIFT) & (_PPN64 if psize == 8 else _PPN32)
        return ((ppn << 12) & ~(size - 1)) | (gpa & (size - 1)), pte, size


def _leaf_pa(pte: int, size: int, psize: int, addr: int) -> int:
    """PTW step 8: the physical address from the leaf PPN and the page offset."""
    ppn = (pte >> _PPN_SHIFT) & (_PPN64 if psize == 8 else _PPN32)
    return ((ppn << 12) & ~(size - 1)) | (addr & (size - 1))


# permission bit needed by each Access (READ=0, WRITE=1, EXECUTE=2)
_PERM = (_R, _W, _X)


def first_stage(
    io: "Iommu",
    iova: int,
    fsc: int,
    geom: Geometry,
    big: bool,
    hgatp: int,
    access: int,
    priv: bool,
    sum_: bool,
    gctl: int,
    sade: bool,
) -> Tuple[int, int, int]:
    """First-stage translation of ``iova`` with the table of ``fsc`` (not Bare).

    PTE addresses are GPAs translated by ``hgatp`` when it is not Bare.
    ``priv`` is a supervisor-privilege request; ``sum_`` is ``PC.ta.SUM``.
    Returns ``(gpa, leaf pte, page size)``.  The permission check of PTW
    step 5 always precedes the A/D update of step 7: a denied access never
    sets A or D (ATS translation requests walk as reads).
    """
    levels, _, psize, va_bits = geom
    # IOVA must be canonical (Sv39/48/57) or fit 32 bits (Sv32, DC.tc.SXL=1)
    top = iova >> (va_bits - 1)
    if psize == 4:
        if iova >> 32:
            raise page_fault(access)
    elif top and top != (1 << (65 - va_bits)) - 1:
        raise page_fault(access)
    va = iova & ((1 << va_bits) - 1)
    root = fsc & _PPN_ROOT
    retries = 0
    while True:
        try:
            pte, size, pte_addr, pte_gpa = _walk(
                io, va, root, geom, big, hgatp, access, gctl, False
            )
        except _Invalid:
            raise page_fault(access) from None
        # PTW step 5: U-bit and R/W/X permission for the request's privilege
        if pte & _U:
            if priv and (not sum_ or access == Access.EXECUTE):
                raise page_fault(access)
        elif not priv:
            raise page_fault(access)
        if not pte & _PERM[access]:
            raise page_fault(access)
        write = access == Access.WRITE
        new = pte | _A | (_D if write else 0)
        if new != pte:
            # PTW step 7: A/D update, or a page fault when not enabled
            if not sade:
                raise page_fault(access)
            if hgatp:
                # the update is an implicit write: re-translate the PTE's GPA for write
                pte_addr = second_stage(io, pte_gpa, hgatp, access, True, True, gctl)[0]
            try:
                if not store_cas(io, pte_addr, psize, big, pte, new):
                    retries += 1
                    if retries > MAX_AD_RETRIES:
                        raise _pte_fault(_STUCK, access, False)
                    continue  # the PTE changed: redo the walk (PTW step 7)
            except MemoryAccessError as err:
                raise _pte_fault(err, access, False) from None
            pte = new
        return _leaf_pa(pte, size, psize, iova), pte, size
