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

import struct
from typing import TYPE_CHECKING, Any, Callable, Dict, Final, Literal, Tuple

from . import formats as F
from ._fault import Fault, Why, access_fault, guest_page_fault, page_fault
from .events import CacheEvent, Check, MemAccess, Step, StructRead
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
S_VALID: Final = tuple(frozenset({0, *m}) for m in S_MODES)
G_VALID: Final = tuple(frozenset({0, *m}) for m in G_MODES)
#: Names of the modes (for the reasons of faults), by PTESIZE / VA width
_S_NAME: Final = {39: "Sv39", 48: "Sv48", 57: "Sv57", 32: "Sv32"}
_G_NAME: Final = {41: "Sv39x4", 50: "Sv48x4", 59: "Sv57x4", 34: "Sv32x4"}
_ACCESS_NAME: Final = ("a read", "a write", "an execute")

_V: Final = F.PTE.V.mask
_R: Final = F.PTE.R.mask
_W: Final = F.PTE.W.mask
_X: Final = F.PTE.X.mask
_U: Final = F.PTE.U.mask
_A: Final = F.PTE.A.mask
_D: Final = F.PTE.D.mask
_N: Final = F.PTE.N.mask
_PBMT: Final = F.PTE.PBMT.mask
_PBMT_SHIFT: Final = F.PTE.PBMT.lsb
_PBMT_MAX: Final = F.PTE.PBMT.max
_PPN_SHIFT: Final = F.PTE.PPN.lsb
_PPN64: Final = F.PTE.PPN.max
_PPN32: Final = F.PTE32.PPN.max
_PPN_ROOT: Final = F.IOSATP.PPN.max
_G_MODE_SHIFT: Final = F.IOHGATP.MODE.lsb
_GSCID_LSB: Final = F.IOHGATP.GSCID.lsb
_GSCID_MAX: Final = F.IOHGATP.GSCID.max
_RX: Final = _R | _X
_RW: Final = _R | _W
_N_PBMT: Final = _N | _PBMT
_NAPOT_64K: Final = 0b1000  # Svnapot: the only defined N encoding, ppn[3:0] = 1000 at level 0
# enum members as plain ints: an Enum attribute lookup costs more than the test
_WRITE: Final = int(Access.WRITE)
_EXECUTE: Final = int(Access.EXECUTE)

#: 8-byte PTE readers by byte order (index: big-endian).  The page-table walks
#: read the PTEs of a SparseMemory port in place (``Iommu.pages``: its page dict;
#: None for any other port, and ignored while the port has injected faults):
#: the bytes ``Iommu.rd`` would return, without a call per PTE.  A page the port
#: does not hold, an address beyond capabilities.PAS and every other port go
#: through ``Iommu.rd``.
_U64: Final = (struct.Struct("<Q").unpack_from, struct.Struct(">Q").unpack_from)
#: the pages of a port whose PTEs are not read in place (Iommu.port_faults): none
_NO_PAGES: Final[Dict[int, bytearray]] = {}

#: How often an A/D update may find the PTE changed before the walk gives up
#: (reported as an access fault on the PTE).
MAX_AD_RETRIES: Final = 16
_STUCK: Final = MemoryAccessError(MemoryFault.ACCESS_FAULT, 0, 0)

#: A located leaf: (pte, page size in bytes, SPA of the PTE, GPA of the PTE or -1)
Leaf = Tuple[int, int, int, int]


class _Invalid(Exception):
    """PTW steps 3/4/6: the walk found an invalid, reserved or misaligned PTE.

    ``step``, ``field`` and ``rule`` say which (the caller adds the section
    and turns it into the page fault or guest-page fault of its stage).
    """

    def __init__(self, step: str, field: str, rule: str) -> None:
        super().__init__(rule)
        self.step = step
        self.field = field
        self.rule = rule


def load(io: "Iommu", addr: int, size: int, big: bool) -> int:
    """One implicit read of ``size`` bytes; addresses beyond PAS are access faults."""
    return io.rd(addr, size, big)


def emit_read(
    io: "Iommu",
    emit: Callable[[Any], None],
    structure: str,
    addr: int,
    size: int,
    big: bool,
    raw: int,
    section: str,
    step: str,
    level: int = -1,
    walk: str = "",
    fmt: str = "",
) -> None:
    """Emit the memory accesses (8 bytes at most each) and the structure read of one
    structure the process just read (only called with an observer attached)."""
    rcid, mcid = io.qos
    for off in range(0, size, 8):
        emit(MemAccess(addr + off, min(8, size - off), "read", structure, rcid, mcid, big))
    emit(StructRead(structure, addr, raw, section, step, level, walk, size=size, format=fmt))


def store_cas(
    io: "Iommu",
    addr: int,
    size: int,
    big: bool,
    old: int,
    new: int,
    purpose: str = "AD",
) -> bool:
    """Atomic read-modify-write through the port (``cas`` when the port has it).

    ``addr`` was just read by the caller, so it is within capabilities.PAS.
    ``purpose`` names the access in the event stream (``AD``, ``MRIF``).
    """
    emit = io.emit
    if emit is not None:
        rcid, mcid = io.qos
        emit(MemAccess(addr, size, "amo", purpose, rcid, mcid, big))
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


def _pte_fault(err: MemoryAccessError, access: int, for_pdt: str, why: Why) -> Fault:
    """Access fault / data corruption while reading (or updating) a PTE."""
    if err.fault is MemoryFault.DATA_CORRUPTION:
        why = (why[0], why[1], why[2], why[3].replace("access fault", "poisoned data"))
        return Fault(Cause.PDT_DATA_CORRUPTION if for_pdt else Cause.PT_DATA_CORRUPTION, 0, why)
    if for_pdt:
        # §GET_PC: an access fault in the second stage of a PDT address is cause 265
        return Fault(Cause.PDT_ENTRY_LOAD_ACCESS_FAULT, 0, why)
    return access_fault(access, why)


def _read_why(section: str, stage: str, addr: int, level: int) -> Why:
    return (
        section,
        "2",
        "PTE",
        f"access fault reading the {stage} PTE at {addr:#x} (level {level})",
    )


def _rsv_why(io: "Iommu", pte: int, leaf: bool) -> Tuple[str, str, str]:
    """PTW step 3: which reserved bits a PTE has set."""
    if pte & F.PTE.reserved:
        return "3", "reserved", "PTE bits 58:54 are reserved and not zero"
    if pte & F.PTE.RSW60_59.mask and not io.caps.svrsw60t59b:
        return "3", "RSW60_59", "PTE bits 60:59 are reserved without Svrsw60t59b and not zero"
    if pte & F.PTE.PBMT.mask and not io.caps.svpbmt:
        return "3", "PBMT", "PBMT is reserved without Svpbmt and not zero"
    # non-leaf: D, A and U (and N, PBMT) are reserved
    name = next((n for n in ("D", "A", "U", "N", "PBMT") if pte & F.PTE.fields[n].mask), "?")
    return "3", name, f"{name} is reserved in a non-leaf PTE and not zero"


def _walk(
    io: "Iommu",
    va: int,
    root_ppn: int,
    geom: Geometry,
    big: bool,
    hgatp: int,
    access: int,
    gctl: int,
    for_pdt: str,
    walk: str = "",
) -> Leaf:
    """PTW steps 1-4 and 6: locate the leaf PTE for ``va``.

    When ``hgatp`` selects a G-stage mode (first stage of a two-stage
    translation), every PTE address is a GPA translated by
    :func:`second_stage` as an implicit read.  Raises :class:`_Invalid` for
    the page-fault conditions of steps 3, 4 and 6.  ``walk`` is "" for a
    first-stage walk, else what a G-stage walk translates (event stream).
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
    emit = io.emit
    pages = io.pages if psize == 8 and not io.port_faults else None  # see _U64
    u64 = _U64[big]
    limit = io.pa_limit - 8
    gwalk = io.gwalk.capacity
    vmask = (1 << vbits) - 1
    i = levels - 1
    shift = 12 + i * vbits
    # vpn[LEVELS-1] takes all remaining bits: 2 more for an x4 G-stage root
    # (the caller checked the width of va)
    idx = va >> shift
    a = root_ppn << 12
    pte: int
    while True:
        pte_addr = a + idx * psize  # PTW step 2
        pte_gpa = -1
        if hgatp:  # the PTE address is a GPA: an implicit read through the G-stage
            pte_gpa = pte_addr
            if gwalk:
                pte_addr = implicit_read(io, pte_gpa, hgatp, access, gctl, for_pdt)
            else:
                pte_addr = second_stage(io, pte_gpa, hgatp, access, True, False, gctl, for_pdt)[0]
        page = pages.get(pte_addr >> 12) if pages is not None else None
        if page is not None and pte_addr <= limit:
            pte = u64(page, pte_addr & 0xFFF)[0]
        else:
            try:
                pte = rd(pte_addr, psize, big)
            except MemoryAccessError as err:
                stage = "G-stage" if walk else "first-stage"
                why = _read_why("PTW-G" if walk else "PTW", stage, pte_addr, i)
                raise _pte_fault(err, access, for_pdt, why) from None
        if emit is not None:
            if walk:
                emit_read(io, emit, "G_PTE", pte_addr, psize, big, pte, "PTW-G", "2", i, walk)
            else:
                emit_read(io, emit, "S_PTE", pte_addr, psize, big, pte, "PTW", "2", i)
        if pte & _RX:
            # PTW step 3 for a leaf: invalid, W without R, or reserved bits
            if not pte & _V or pte & rsv or (pte & _RW) == _W:
                raise _invalid_leaf(io, pte, i)
            break  # PTW step 4: a leaf
        # PTW step 3 for a pointer: V must be 1, W 0, and nothing reserved
        # (D, A, U, N and PBMT are reserved in non-leaf PTEs)
        if pte & nl_bad != _V:
            raise _invalid_pointer(io, pte, i)
        i -= 1
        if i < 0:  # PTW step 4
            raise _Invalid("4", "R", "a non-leaf PTE at level 0: no leaf found")
        shift -= vbits
        idx = (va >> shift) & vmask
        a = ((pte >> _PPN_SHIFT) & ppn_max) << 12
    ppn = (pte >> _PPN_SHIFT) & ppn_max
    size = 1 << shift
    if psize == 8 and (pte & _N or pte & _PBMT == _PBMT):
        _leaf_checks(pte, ppn, i)  # Svnapot / Svpbmt (PBMT=3 is reserved)
        if pte & _N:
            size = 1 << 16
    if i and ppn & ((1 << (i * vbits)) - 1):  # PTW step 6: misaligned superpage
        raise _misaligned(i, i * vbits)
    return pte, size, pte_addr, pte_gpa


def _invalid_leaf(io: "Iommu", pte: int, level: int) -> _Invalid:
    """PTW step 3 on a leaf (R or X set): which rule it breaks."""
    if not pte & _V:
        return _Invalid("3", "V", f"PTE at level {level} has V=0: not valid")
    if (pte & _RW) == _W:
        return _Invalid("3", "W", "PTE has W=1 and R=0: reserved encoding")
    return _Invalid(*_rsv_why(io, pte, True))


def _invalid_pointer(io: "Iommu", pte: int, level: int) -> _Invalid:
    """PTW step 3 on a non-leaf PTE: which rule it breaks."""
    if not pte & _V:
        return _Invalid("3", "V", f"PTE at level {level} has V=0: not valid")
    if pte & _W:
        return _Invalid("3", "W", "PTE has W=1 and R=0: reserved encoding")
    return _Invalid(*_rsv_why(io, pte, False))


def _leaf_checks(pte: int, ppn: int, level: int) -> None:
    """Svpbmt and Svnapot checks of an 8-byte leaf (PTW step 3)."""
    if (pte >> _PBMT_SHIFT) & _PBMT_MAX == 3:  # Svpbmt: PBMT=3 is reserved
        raise _Invalid("3", "PBMT", "PBMT=3 is reserved (Svpbmt)")
    if pte & _N:  # Svnapot: only the 64 KiB encoding at level 0 is defined
        if level:
            raise _Invalid("3", "N", f"N=1 in a leaf at level {level}: NAPOT is level 0 only")
        if ppn & 0xF != _NAPOT_64K:
            raise _Invalid(
                "3", "N", f"N=1 with PPN[3:0]={ppn & 0xF:#06b}: only 0b1000 (64 KiB) is defined"
            )


def _misaligned(level: int, bits: int) -> _Invalid:
    return _Invalid(
        "6", "PPN", f"superpage leaf at level {level} with PPN[{bits - 1}:0] not zero: misaligned"
    )


def implicit_read(io: "Iommu", gpa: int, hgatp: int, access: int, gctl: int, for_pdt: str) -> int:
    """The SPA of an implicit read at ``gpa`` (a first-stage PTE or a PDT entry).

    Goes through the G-stage walk cache (IOATC "second-stage page table",
    tag GSCID + GPA page, dropped by IOTINVAL.GVMA): it holds the G-stage
    translations of pages that implicit reads may use, i.e. whose leaf had
    R, U and A set.  Capacity ``IommuParams.gwalk_cache_size``; 0 walks.
    ``for_pdt`` is "PDTE" or "PC" for the accesses of the PDT walk, else "".
    """
    cache = io.gwalk
    if cache.capacity:
        key = ((hgatp >> _GSCID_LSB) & _GSCID_MAX, gpa >> 12)
        entries = cache.entries
        page = entries.get(key)
        if page is not None:  # Cache.get, inline: this is the walk's hottest lookup
            cache.stats.hits += 1
            if cache.lru:
                entries.move_to_end(key)
            if cache.emit is not None:
                cache.emit(CacheEvent("GWALK", "hit", key))
            return page | (gpa & 0xFFF)  # type: ignore[no-any-return]
        cache.stats.misses += 1
        if cache.emit is not None:
            cache.emit(CacheEvent("GWALK", "miss", key))
        spa = second_stage(io, gpa, hgatp, access, True, False, gctl, for_pdt)[0]
        cache.put(key, spa & ~0xFFF)
        return spa
    return second_stage(io, gpa, hgatp, access, True, False, gctl, for_pdt)[0]


def _read_pte(
    io: "Iommu", ppn: int, off: int, big: bool, access: int, for_pdt: str, g: bool, s: int
) -> int:
    """PTW step 2: read the 8-byte PTE at ``off`` in page ``ppn`` (level s // 9 - 1)
    through the port (a PTE the walk does not read in place: see _U64); an access
    fault or poisoned data stops the walk."""
    addr = (ppn << 12) | off
    try:
        return io.rd(addr, 8, big)
    except MemoryAccessError as err:
        stage = "G-stage" if g else "first-stage"
        why = _read_why("PTW-G" if g else "PTW", stage, addr, s // 9 - 1)
        raise _pte_fault(err, access, for_pdt, why) from None


def second_stage(
    io: "Iommu",
    gpa: int,
    hgatp: int,
    access: int,
    implicit: bool,
    implicit_write: bool,
    gctl: int,
    for_pdt: str = "",
) -> Tuple[int, int, int]:
    """Translate a GPA with the G-stage table of ``hgatp`` (not Bare).

    ``implicit`` marks an implicit access for first-stage translation (a PTE
    read, or a PDT access in the base spec); ``implicit_write`` an A/D update
    of a first-stage PTE.  ``gctl`` bit 0 is ``DC.tc.GADE``, bit 1 is
    ``DC.tc.SXL``.  Returns ``(spa, leaf pte, page size)``.
    """
    geom = G_MODES[io.gxl][hgatp >> _G_MODE_SHIFT]
    levels, _, psize, gbits = geom
    if gctl & 2:
        gbits = 34
    # PTW step 1: GPA width check (x4 modes), and §DC.tc.SXL: GPA bits beyond 33 fault
    if gpa >> gbits:
        rule = f"GPA bits 63:{gbits} are not zero for {_G_NAME[geom[3]]}"
        if gctl & 2:
            rule = "GPA bits 63:34 are not zero (DC.tc.SXL=1: 34-bit GPAs)"
        raise guest_page_fault(access, gpa, implicit, implicit_write, ("PTW-G", "1", "GPA", rule))
    big = io.be
    emit = io.emit
    walk = ""
    if emit is not None:  # what this G-stage walk translates (event stream)
        walk = for_pdt or ("S_PTE_AD" if implicit_write else "S_PTE" if implicit else "final")
    # PTW step 5 needs U (G-stage accesses are user-level accesses) and R / W / X;
    # PTW step 7 sets A, and D for a write; an implicit access reads, or writes A/D
    kind = (_WRITE if implicit_write else 0) if implicit else access
    need = _G_NEED[kind]
    ad = _AD_SET[kind]
    need_ad = need | ad
    retries = 0
    pte: int
    while True:  # PTW step 7 may restart the walk
        try:
            if psize == 8:
                # PTW steps 2-4 and 6 for the 8-byte modes (the hot path: inline).  The
                # walk keeps the page number (ppn) and the offset in it (off) of the PTE,
                # and s = 9 * (level + 1): level i translates GPA bits 12+9i and up
                rsv = io.pte_rsv
                nl_bad = io.pte_nl_bad
                pages = io.walk_pages if not io.port_faults else _NO_PAGES  # see _U64
                plimit = io.pa_pages
                u64 = _U64[big]
                # PTW step 2: a = iohgatp.PPN x PAGESIZE; vpn[LEVELS-1] of the x4 root
                # takes 11 bits (a 16 KiB root table)
                s = 9 * levels
                ppn = (hgatp & _PPN_ROOT) + (gpa >> (s + 12))
                off = (gpa >> s) & 0xFF8
                while True:
                    page = pages.get(ppn)
                    if page is not None and ppn < plimit:
                        pte = u64(page, off)[0]
                    else:
                        pte = _read_pte(io, ppn, off, big, access, for_pdt, True, s)
                    if emit is not None:
                        a = (ppn << 12) | off
                        emit_read(io, emit, "G_PTE", a, 8, big, pte, "PTW-G", "2", s // 9 - 1, walk)
                    if pte & _RX:
                        if not pte & _V or pte & rsv or (pte & _RW) == _W:  # PTW step 3
                            raise _invalid_leaf(io, pte, s // 9 - 1)
                        break  # PTW step 4
                    if pte & nl_bad != _V:  # PTW step 3 (pointer)
                        raise _invalid_pointer(io, pte, s // 9 - 1)
                    if s == 9:
                        raise _Invalid("4", "R", "a non-leaf PTE at level 0: no leaf found")
                    s -= 9  # PTW step 2 of the next level
                    ppn = (pte >> _PPN_SHIFT) & _PPN64
                    off = (gpa >> s) & 0xFF8
                pte_addr = (ppn << 12) | off
                size = 1 << (s + 3)
                if pte & _N_PBMT and (pte & _N or pte & _PBMT == _PBMT):
                    _leaf_checks(pte, (pte >> _PPN_SHIFT) & _PPN64, s // 9 - 1)  # Svnapot/Svpbmt
                    if pte & _N:
                        size = 1 << 16
                if s != 9 and (pte >> _PPN_SHIFT) & ((1 << (s - 9)) - 1):  # PTW step 6
                    raise _misaligned(s // 9 - 1, s - 9)
            else:
                pte, size, pte_addr, _ = _walk(
                    io, gpa, hgatp & _PPN_ROOT, geom, big, 0, access, gctl, for_pdt, walk or "final"
                )
        except _Invalid as e:
            rule = f"G-stage {e.rule}" if e.rule.startswith("PTE") else e.rule
            why = ("PTW-G", e.step, e.field, rule)
            raise guest_page_fault(access, gpa, implicit, implicit_write, why) from None
        if pte & need_ad != need_ad:  # one test for the common case of steps 5 and 7
            # PTW step 5: the leaf grants the access (U and R / W / X)
            if pte & need != need:
                why = _g_perm_why(pte, need, access, implicit, implicit_write)
                raise guest_page_fault(access, gpa, implicit, implicit_write, why)
            # PTW step 7: A/D
            if not gctl & 1:
                why = _ad_why("PTW-G", pte, ad, "DC.tc.GADE")
                raise guest_page_fault(access, gpa, implicit, implicit_write, why)
            new = pte | ad
            try:
                if not store_cas(io, pte_addr, psize, big, pte, new):
                    retries += 1
                    if retries > MAX_AD_RETRIES:  # a port that never lets the update land
                        raise _pte_fault(_STUCK, access, for_pdt, _stuck_why("PTW-G", pte_addr))
                    continue  # the PTE changed: redo the walk (PTW step 7)
            except MemoryAccessError as err:
                why = ("PTW-G", "7", "A", f"access fault updating A/D of the PTE at {pte_addr:#x}")
                raise _pte_fault(err, access, for_pdt, why) from None
            if emit is not None:
                emit(Step("PTW-G", "7", f"A/D update of the G-stage PTE at {pte_addr:#x}"))
            pte = new
        if emit is not None:
            emit(Check("PTW-G", "5", f"the G-stage leaf grants the access ({walk})", True))
        # PTW step 8: the SPA from the leaf PPN and the page offset
        ppn = (pte >> _PPN_SHIFT) & (_PPN64 if psize == 8 else _PPN32)
        return ((ppn << 12) & ~(size - 1)) | (gpa & (size - 1)), pte, size


def _s_priv_why(access: int) -> Why:
    """PTW step 5: a supervisor access to a user page."""
    if access == _EXECUTE:
        return ("PTW", "5", "U", "U=1 for a supervisor-mode execute: never allowed")
    return ("PTW", "5", "U", "U=1 for a supervisor-mode access and PC.ta.SUM=0")


def _leaf_pa(pte: int, size: int, psize: int, addr: int) -> int:
    """PTW step 8: the physical address from the leaf PPN and the page offset."""
    ppn = (pte >> _PPN_SHIFT) & (_PPN64 if psize == 8 else _PPN32)
    return ((ppn << 12) & ~(size - 1)) | (addr & (size - 1))


# permission bit needed by each Access (READ=0, WRITE=1, EXECUTE=2)
_PERM: Final = (_R, _W, _X)
# PTW step 5 in the G-stage (U: G-stage accesses are user-level) and the A/D bits
# PTW step 7 sets, by Access
_G_NEED: Final = (_U | _R, _U | _W, _U | _X)
_AD_SET: Final = (_A, _A | _D, _A)


def _g_perm_why(pte: int, need: int, access: int, implicit: bool, implicit_write: bool) -> Why:
    """PTW step 5 in the G-stage: which bit is missing."""
    if not pte & _U:
        return ("PTW-G", "5", "U", "U=0 in a G-stage PTE: G-stage accesses are user-level")
    bit = "W" if need & _W else "R" if need & _R else "X"
    if implicit:
        what = "an implicit write (A/D update)" if implicit_write else "an implicit read"
        return ("PTW-G", "5", bit, f"{bit}=0 in the G-stage leaf for {what} of a page table")
    return ("PTW-G", "5", bit, f"{bit}=0 in the G-stage leaf for {_ACCESS_NAME[access]}")


def _ad_why(section: str, pte: int, ad: int, enable: str) -> Why:
    """PTW step 7 without hardware A/D updating."""
    bit = "A" if not pte & _A else "D"
    what = "for a write" if bit == "D" else "(accessed bit)"
    return (section, "7", bit, f"{bit}=0 {what} and {enable}=0: no hardware A/D update")


def _stuck_why(section: str, addr: int) -> Why:
    return (
        section,
        "7",
        "A",
        f"access fault: the A/D update of the PTE at {addr:#x} failed {MAX_AD_RETRIES} times",
    )


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
    # PTW step 1: the IOVA must be canonical (Sv39/48/57) or fit 32 bits (Sv32, DC.tc.SXL=1)
    top = iova >> (va_bits - 1)
    if psize == 4:
        if iova >> 32:
            rule = "IOVA bits 63:32 are not zero for Sv32 (DC.tc.SXL=1)"
            raise page_fault(access, ("PTW", "1", "IOVA", rule))
    elif top and top != (1 << (65 - va_bits)) - 1:
        rule = f"IOVA bits 63:{va_bits - 1} are not all equal: not canonical for {_S_NAME[va_bits]}"
        raise page_fault(access, ("PTW", "1", "IOVA", rule))
    va = iova & ((1 << va_bits) - 1)
    root = fsc & _PPN_ROOT
    emit = io.emit
    gwalk = io.gwalk.capacity
    # PTW step 5 wants R / W / X, U=1 for a user-mode access and U=0 for a supervisor
    # one without PC.ta.SUM (or an execute); step 7 wants A, and D for a write: the
    # common case in one test (pte & mask == want), the detail when it fails
    want = _PERM[access] | _AD_SET[access]
    if not priv:
        want |= _U
        mask = want
    elif not sum_ or access == _EXECUTE:
        mask = want | _U
    else:
        mask = want
    retries = 0
    pte: int
    while True:  # PTW step 7 may restart the walk
        try:
            if psize == 8:
                # PTW steps 2-4 and 6 for the 8-byte modes (the hot path: inline), as
                # in second_stage: the PTE's page number (ppn) and offset in it (off),
                # s = 9 * (level + 1)
                rsv = io.pte_rsv
                nl_bad = io.pte_nl_bad
                pages = io.walk_pages if not io.port_faults else _NO_PAGES  # see _U64
                plimit = io.pa_pages
                u64 = _U64[big]
                # PTW step 2: a = iosatp.PPN x PAGESIZE, i = LEVELS - 1
                s = 9 * levels
                ppn = root
                off = (va >> s) & 0xFF8
                pte_gpa = -1
                while True:
                    if hgatp:  # the PTE address is a GPA: an implicit read through the G-stage
                        pte_gpa = (ppn << 12) | off
                        if gwalk:
                            spa = implicit_read(io, pte_gpa, hgatp, access, gctl, "")
                        else:
                            spa = second_stage(io, pte_gpa, hgatp, access, True, False, gctl)[0]
                        ppn = spa >> 12
                        off = spa & 0xFFF
                    page = pages.get(ppn)
                    if page is not None and ppn < plimit:
                        pte = u64(page, off)[0]
                    else:
                        pte = _read_pte(io, ppn, off, big, access, "", False, s)
                    if emit is not None:
                        pte_addr = (ppn << 12) | off
                        emit_read(io, emit, "S_PTE", pte_addr, 8, big, pte, "PTW", "2", s // 9 - 1)
                    if pte & _RX:
                        if not pte & _V or pte & rsv or (pte & _RW) == _W:  # PTW step 3
                            raise _invalid_leaf(io, pte, s // 9 - 1)
                        break  # PTW step 4
                    if pte & nl_bad != _V:  # PTW step 3 (pointer)
                        raise _invalid_pointer(io, pte, s // 9 - 1)
                    if s == 9:
                        raise _Invalid("4", "R", "a non-leaf PTE at level 0: no leaf found")
                    s -= 9  # PTW step 2 of the next level
                    ppn = (pte >> _PPN_SHIFT) & _PPN64
                    off = (va >> s) & 0xFF8
                pte_addr = (ppn << 12) | off
                size = 1 << (s + 3)
                if pte & _N_PBMT and (pte & _N or pte & _PBMT == _PBMT):
                    _leaf_checks(pte, (pte >> _PPN_SHIFT) & _PPN64, s // 9 - 1)  # Svnapot/Svpbmt
                    if pte & _N:
                        size = 1 << 16
                if s != 9 and (pte >> _PPN_SHIFT) & ((1 << (s - 9)) - 1):  # PTW step 6
                    raise _misaligned(s // 9 - 1, s - 9)
            else:
                pte, size, pte_addr, pte_gpa = _walk(
                    io, va, root, geom, big, hgatp, access, gctl, ""
                )
        except _Invalid as e:
            raise page_fault(access, ("PTW", e.step, e.field, e.rule)) from None
        if pte & mask != want:
            # PTW step 5: U-bit and R/W/X permission for the request's privilege
            if pte & _U:
                if priv and (not sum_ or access == _EXECUTE):
                    raise page_fault(access, _s_priv_why(access))
            elif not priv:
                raise page_fault(access, ("PTW", "5", "U", "U=0 for a user-mode access"))
            if not pte & _PERM[access]:
                bit = "RWX"[access]
                rule = f"{bit}=0 for {_ACCESS_NAME[access]}"
                raise page_fault(access, ("PTW", "5", bit, rule))
            # PTW step 7: A/D update, or a page fault when not enabled
            new = pte | _AD_SET[access]
            if not sade:
                raise page_fault(access, _ad_why("PTW", pte, new ^ pte, "DC.tc.SADE"))
            if hgatp:
                # the update is an implicit write: re-translate the PTE's GPA for write
                pte_addr = second_stage(io, pte_gpa, hgatp, access, True, True, gctl)[0]
            try:
                if not store_cas(io, pte_addr, psize, big, pte, new):
                    retries += 1
                    if retries > MAX_AD_RETRIES:
                        raise _pte_fault(_STUCK, access, "", _stuck_why("PTW", pte_addr))
                    continue  # the PTE changed: redo the walk (PTW step 7)
            except MemoryAccessError as err:
                why = ("PTW", "7", "A", f"access fault updating A/D of the PTE at {pte_addr:#x}")
                raise _pte_fault(err, access, "", why) from None
            if emit is not None:
                emit(Step("PTW", "7", f"A/D update of the first-stage PTE at {pte_addr:#x}"))
            pte = new
        if emit is not None:
            emit(Check("PTW", "5", "the leaf grants the access", True))
        # PTW step 8: the GPA from the leaf PPN and the page offset
        ppn = (pte >> _PPN_SHIFT) & (_PPN64 if psize == 8 else _PPN32)
        return ((ppn << 12) & ~(size - 1)) | (iova & (size - 1)), pte, size
