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
    "signed64",
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
_PPN_FIELD: Final = F.PTE.PPN.mask
#: a leaf (R or X), and the software bits 60:59 of Svrsw60t59b (above the PPN)
_RX_RSW: Final = _RX | F.PTE.RSW60_59.mask
_RW: Final = _R | _W
_N_PBMT: Final = _N | _PBMT
_NAPOT_64K: Final = 0b1000  # Svnapot: the only defined N encoding, ppn[3:0] = 1000 at level 0
# enum members as plain ints: an Enum attribute lookup costs more than the test
_WRITE: Final = int(Access.WRITE)
_EXECUTE: Final = int(Access.EXECUTE)

# permission bit needed by each Access (READ=0, WRITE=1, EXECUTE=2)
_PERM: Final = (_R, _W, _X)
# the A/D bits PTW step 7 sets, by Access
_AD_SET: Final = (_A, _A | _D, _A)
#: A leaf that passes PTW step 3 (V=1, not W without R), has no N or PBMT
#: (Svnapot / Svpbmt checks) and grants the access as it is (PTW step 5: R / W / X;
#: PTW step 7: A, and D for a write), by Access: pte & (_LEAF_MASK[access] | the
#: reserved bits | U rules) == _LEAF_WANT[access] (| U rules).  A write needs R too
#: (W without R is reserved); an execute leaf with W=1 takes the detailed checks.
#: The walks test this first and go through the steps one by one when it fails.
_LEAF_WANT: Final = (_V | _R | _A, _V | _R | _W | _A | _D, _V | _X | _A)
_LEAF_MASK: Final = (
    _LEAF_WANT[0] | _N_PBMT,
    _LEAF_WANT[1] | _N_PBMT,
    _LEAF_WANT[2] | _W | _N_PBMT,
)
# the same for the G-stage, where every access is user-level (U=1), by the kind of
# access: 0 a read (or an implicit read), 1 a write (or an implicit write: A/D update),
# 2 an execute
_G_NEED: Final = (_U | _R, _U | _W, _U | _X)
_G_WANT: Final = tuple(w | _U for w in _LEAF_WANT)
_G_MASK: Final = tuple(m | _U for m in _LEAF_MASK)
_G_READ: Final = _G_WANT[0]  # the leaf test of an implicit read (_g_read)
_PPN_AT12: Final = _PPN64 << 12  # (pte << 2) & _PPN_AT12: the leaf PPN x PAGESIZE (also Sv32)

#: (want, mask) of a leaf test: pte & mask == want
LeafTest = Tuple[int, int]
LeafTests = Tuple[Tuple[Tuple[LeafTest, ...], ...], ...]


def leaf_tests(rsv: int) -> Tuple[LeafTests, Tuple[LeafTest, ...]]:
    """The leaf tests of the walks for the reserved PTE bits ``rsv`` (``Iommu.pte_rsv``,
    set per configuration: ``Iommu.s_leaf`` and ``Iommu.g_leaf``): first stage by
    [priv][PC.ta.SUM][access], with the U rule of PTW step 5 (U=1 for a user-mode
    access; U=0 for a supervisor-mode one without SUM or for an execute), and
    G-stage by the kind of access (see _G_WANT)."""
    user = tuple((_LEAF_WANT[a] | _U, signed64(_LEAF_MASK[a] | _U | rsv)) for a in range(3))
    supervisor = tuple(
        tuple(
            (
                _LEAF_WANT[a],
                signed64(_LEAF_MASK[a] | rsv | (_U if not sum_ or a == _EXECUTE else 0)),
            )
            for a in range(3)
        )
        for sum_ in (False, True)
    )
    s_leaf = ((user, user), supervisor)
    g_leaf = tuple((_G_WANT[k], signed64(_G_MASK[k] | rsv)) for k in range(3))
    return s_leaf, g_leaf


#: Whether this module runs compiled (mypyc: a C extension; see _mypyc.compiled)
_COMPILED: Final = __file__.endswith((".so", ".pyd"))


def signed64(mask: int) -> int:
    """``mask`` (64 bits) in the form the walks test it with: ``pte & signed64(m)`` is
    ``pte & m`` for every 0 <= pte < 2**64.  The PTE masks of the walks hold the top
    bits (N, PBMT, reserved).  Compiled, the mask is the signed 64-bit value of the same
    bits: it stays a small int, which the compiled build keeps unboxed (an int in
    [-2**62, 2**62)), where it takes a slow path for a bit operation on a larger one.
    Interpreted, it stays as it is: CPython complements a negative multi-digit operand
    before every bit operation (a signed mask costs ~850 more CPU instructions per Sv39
    walk read in place, ~2400 per two-stage Sv39x4 one)."""
    return mask - (1 << 64) if _COMPILED and mask >> 63 else mask


#: 8-byte PTE readers by byte order (index: big-endian).  The walks of the 8-byte
#: modes read the PTEs of a SparseMemory port in place (``Iommu.pages``: its page
#: dict; None for any other port, and not used while the port has injected faults):
#: the bytes ``Iommu.rd`` would return, without a call per PTE.  A page the port
#: does not hold and an address beyond capabilities.PAS go through ``Iommu.rd``;
#: the walks of every other port, of the 4-byte modes and every walk while an
#: observer is attached (each read an event) are :func:`_walk`.
_U64: Final = (struct.Struct("<Q").unpack_from, struct.Struct(">Q").unpack_from)
#: no pages: an in-place walk reads through the port from there on (beyond PAS)
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
    """PTW steps 1-4 and 6: locate the leaf PTE for ``va``, every PTE read through
    ``Iommu.rd`` (the 4-byte modes, and the walks of a port not read in place).

    When ``hgatp`` selects a G-stage mode (first stage of a two-stage
    translation), every PTE address is a GPA translated by
    :func:`implicit_read`.  Raises :class:`_Invalid` for the page-fault
    conditions of steps 3, 4 and 6.  ``walk`` is "" for a first-stage walk,
    else what a G-stage walk translates (event stream).
    """
    levels, vbits, psize, _ = geom
    if psize == 8:
        rsv = io.pte_rsv
        nl_bad = io.pte_nl_bad
        ppn_max = _PPN64
    else:
        rsv = 0
        nl_bad = _V | _W | io.pte32_nl_rsv
        ppn_max = _PPN32
    rd = io.rd
    emit = io.emit
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
            pte_addr = implicit_read(io, pte_gpa, hgatp, access, gctl, for_pdt)
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


def _leaf_size(io: "Iommu", pte: int, s: int, fast: bool) -> int:
    """The page size of an 8-byte leaf found with s = 9 x (level + 1) that is not a
    4 KiB leaf passing the leaf test (the in-place walks of first_stage and
    second_stage): PTW step 3 for a leaf the test refused (invalid, W without R,
    reserved bits, Svnapot / Svpbmt) and step 6 (a misaligned superpage)."""
    size = 1 << (s + 3)
    if not fast:
        # PTW step 3 for a leaf: invalid, W without R, or reserved bits
        if not pte & _V or pte & io.pte_rsv or (pte & _RW) == _W:
            raise _invalid_leaf(io, pte, s // 9 - 1)
        if pte & _N or pte & _PBMT == _PBMT:
            _leaf_checks(pte, (pte >> _PPN_SHIFT) & _PPN64, s // 9 - 1)
            if pte & _N:  # Svnapot / Svpbmt
                size = 1 << 16
    if s != 9 and (pte >> _PPN_SHIFT) & ((1 << (s - 9)) - 1):
        raise _misaligned(s // 9 - 1, s - 9)  # PTW step 6: misaligned superpage
    return size


def _misaligned(level: int, bits: int) -> _Invalid:
    return _Invalid(
        "6", "PPN", f"superpage leaf at level {level} with PPN[{bits - 1}:0] not zero: misaligned"
    )


def _read_pte(
    io: "Iommu", ppn: int, off: int, big: bool, access: int, for_pdt: str, g: bool, s: int
) -> int:
    """PTW step 2 of an in-place walk for a PTE it does not read in place (a page the
    port does not hold, or beyond capabilities.PAS): the 8-byte PTE at ``off`` in
    page ``ppn`` (level s // 9 - 1) through ``Iommu.rd``; an access fault or
    poisoned data stops the walk."""
    addr = (ppn << 12) | off
    try:
        return io.rd(addr, 8, big)
    except MemoryAccessError as err:
        stage = "G-stage" if g else "first-stage"
        why = _read_why("PTW-G" if g else "PTW", stage, addr, s // 9 - 1)
        raise _pte_fault(err, access, for_pdt, why) from None


def _g_read(
    gpa: int,
    ppn: int,
    s: int,
    pages: Dict[int, bytearray],
    u64: Callable[[bytearray, int], Tuple[int]],
    ptr_bad: int,
    leaf_mask: int,
) -> int:
    """The G-stage walk of an implicit read (PTW steps 2-8 of :func:`second_stage`)
    in the common case: the SPA of ``gpa``, or -1 where the whole process must decide.

    The caller did PTW step 1 (``gpa`` fits the mode) and holds the setup of the
    walk: ``ppn`` the root table's page number (within PAS), ``s`` = 9 x LEVELS, the
    port's ``pages`` (no injected faults), the PTE reader ``u64``, ``ptr_bad`` =
    ``Iommu.pte_ptr_bad`` and ``leaf_mask`` = ``Iommu.g_leaf[0][1]``.  Every
    PTE is read in place (no effect: walking again from the root is the same
    process).  -1: a page the port does not hold, an invalid or reserved PTE, a
    table beyond PAS, no leaf at level 0, a leaf that does not grant the read as it
    is (V, R, U, A; no N or PBMT) or a misaligned superpage.
    """
    # PTW step 2: a = iohgatp.PPN x PAGESIZE; the x4 root's vpn takes 11 bits
    ppn += gpa >> (s + 12)
    off = (gpa >> s) & 0xFF8
    while True:
        try:
            (pte,) = u64(pages[ppn], off)
        except KeyError:  # a page the port does not hold
            return -1
        if pte & _RX:  # PTW step 4: a leaf
            if pte & leaf_mask != _G_READ:  # PTW steps 3, 5 and 7 in one test
                return -1
            # PTW step 8: the SPA from the leaf PPN and the page offset
            if s == 9:  # a 4 KiB page
                return ((pte << 2) & _PPN_AT12) | (gpa & 0xFFF)
            if (pte >> _PPN_SHIFT) & ((1 << (s - 9)) - 1):  # PTW step 6: misaligned
                return -1
            size = 1 << (s + 3)
            return ((pte << 2) & _PPN_AT12 & -size) | (gpa & (size - 1))
        if pte & ptr_bad != _V or s == 9:  # PTW steps 3 and 4, the next table within PAS
            return -1
        s -= 9  # PTW step 2 of the next level
        ppn = (pte >> _PPN_SHIFT) & _PPN64
        off = (gpa >> s) & 0xFF8


def implicit_read(io: "Iommu", gpa: int, hgatp: int, access: int, gctl: int, for_pdt: str) -> int:
    """The SPA of an implicit read at ``gpa`` (a first-stage PTE or a PDT entry).

    Goes through the G-stage walk cache (IOATC "second-stage page table",
    tag GSCID + GPA page, dropped by IOTINVAL.GVMA): it holds the G-stage
    translations of pages that implicit reads may use, i.e. whose leaf had
    R, U and A set.  Capacity ``IommuParams.gwalk_cache_size``; 0 walks.
    ``for_pdt`` is "PDTE" or "PC" for the accesses of the PDT walk, else "".
    The walk is :func:`_g_read` when it applies (an 8-byte mode read in place,
    no observer), else (and when it cannot decide) :func:`second_stage`.
    """
    cache = io.gwalk
    key: Any = None
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
    spa = -1
    levels, _, psize, gbits = G_MODES[io.gxl][hgatp >> _G_MODE_SHIFT]
    if gctl & 2:
        gbits = 34  # §DC.tc.SXL: 34-bit GPAs
    pages = io.pages
    root = hgatp & _PPN_ROOT
    # PTW step 1 (the GPA fits the mode) before the walk of the common case
    if (
        psize == 8
        and pages is not None
        and io.emit is None
        and not io.port_faults
        and not gpa >> gbits
        and root + 4 <= io.pa_pages
    ):
        leaf_mask = io.g_leaf[0][1]
        spa = _g_read(gpa, root, 9 * levels, pages, _U64[io.be], io.pte_ptr_bad, leaf_mask)
    if spa < 0:
        spa = second_stage(io, gpa, hgatp, access, True, False, gctl, for_pdt)[0]
    if key is not None:
        cache.put(key, spa & ~0xFFF)
    return spa


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
    # the kind of access: an implicit access reads, or writes A/D (PTW steps 5 and 7)
    kind = (_WRITE if implicit_write else 0) if implicit else access
    want, mask = io.g_leaf[kind]
    # (an observed walk goes through Iommu.rd: the same process, every read an event)
    pages = io.pages if not io.port_faults and emit is None else None  # see _U64
    retries = 0
    pte: int
    while True:  # PTW step 7 may restart the walk
        try:
            if psize == 8 and pages is not None:
                # PTW steps 2-4 and 6 of an 8-byte mode read in place (the hot path:
                # inline).  The walk keeps the page number (ppn) of the PTE, its offset
                # in the page (off), and s = 9 x (level + 1)
                table = pages
                ptr_bad = io.pte_ptr_bad
                u64 = _U64[big]
                # PTW step 2: a = iohgatp.PPN x PAGESIZE; vpn[LEVELS-1] of the x4 root
                # takes 11 bits (a 16 KiB root table)
                s = 9 * levels
                ppn = (hgatp & _PPN_ROOT) + (gpa >> (s + 12))
                off = (gpa >> s) & 0xFF8
                if ppn >= io.pa_pages:
                    table = _NO_PAGES  # beyond PAS: through the port (an access fault)
                while True:
                    try:
                        (pte,) = u64(table[ppn], off)
                    except KeyError:
                        pte = _read_pte(io, ppn, off, big, access, for_pdt, True, s)
                    if pte & _RX:
                        break  # PTW step 4: a leaf
                    if pte & ptr_bad != _V:
                        # PTW step 3 for a pointer: V must be 1, W 0, and nothing reserved
                        # (D, A, U, N and PBMT are reserved in non-leaf PTEs)
                        if pte & io.pte_nl_bad != _V:
                            raise _invalid_pointer(io, pte, s // 9 - 1)
                        table = _NO_PAGES  # the next table is beyond PAS: through the port
                    if s == 9:  # PTW step 4
                        raise _Invalid("4", "R", "a non-leaf PTE at level 0: no leaf found")
                    s -= 9  # PTW step 2 of the next level
                    ppn = (pte >> _PPN_SHIFT) & _PPN64
                    off = (gpa >> s) & 0xFF8
                fast = pte & mask == want  # PTW steps 3, 5 and 7 pass: see _LEAF_WANT
                if fast and s == 9:  # the common case: a 4 KiB page (PTW step 6 passes)
                    # PTW step 8: the SPA from the leaf PPN and the page offset
                    return ((pte << 2) & _PPN_AT12) | (gpa & 0xFFF), pte, 4096
                size = _leaf_size(io, pte, s, fast)  # PTW steps 3 and 6
            else:
                # what this G-stage walk translates (the event stream: an observed walk is
                # always this one)
                walk = "S_PTE_AD" if implicit_write else "S_PTE" if implicit else "final"
                walk = for_pdt or walk
                pte, size, pte_addr, _ = _walk(
                    io, gpa, hgatp & _PPN_ROOT, geom, big, 0, access, gctl, for_pdt, walk
                )
                ppn = pte_addr >> 12
                off = pte_addr & 0xFFF
                fast = False
        except _Invalid as e:
            rule = f"G-stage {e.rule}" if e.rule.startswith("PTE") else e.rule
            why = ("PTW-G", e.step, e.field, rule)
            raise guest_page_fault(access, gpa, implicit, implicit_write, why) from None
        if not fast:
            # PTW step 5: the leaf grants the access (U and R / W / X)
            need = _G_NEED[kind]
            if pte & need != need:
                why = _g_perm_why(pte, need, access, implicit, implicit_write)
                raise guest_page_fault(access, gpa, implicit, implicit_write, why)
            # PTW step 7: A/D
            ad = _AD_SET[kind]
            if pte & ad != ad:
                if not gctl & 1:
                    why = _ad_why("PTW-G", pte, ad, "DC.tc.GADE")
                    raise guest_page_fault(access, gpa, implicit, implicit_write, why)
                new = pte | ad
                pte_addr = (ppn << 12) | off
                try:
                    if not store_cas(io, pte_addr, psize, big, pte, new):
                        retries += 1
                        if retries > MAX_AD_RETRIES:  # a port that never lets the update land
                            why = _stuck_why("PTW-G", pte_addr)
                            raise _pte_fault(_STUCK, access, for_pdt, why)
                        continue  # the PTE changed: redo the walk (PTW step 7)
                except MemoryAccessError as err:
                    rule = f"access fault updating A/D of the PTE at {pte_addr:#x}"
                    why = ("PTW-G", "7", "A", rule)
                    raise _pte_fault(err, access, for_pdt, why) from None
                if emit is not None:
                    emit(Step("PTW-G", "7", f"A/D update of the G-stage PTE at {pte_addr:#x}"))
                pte = new
        if emit is not None:
            emit(Check("PTW-G", "5", f"the G-stage leaf grants the access ({walk})", True))
        # PTW step 8: the SPA from the leaf PPN and the page offset
        return ((pte << 2) & _PPN_AT12 & -size) | (gpa & (size - 1)), pte, size


def _s_priv_why(access: int) -> Why:
    """PTW step 5: a supervisor access to a user page."""
    if access == _EXECUTE:
        return ("PTW", "5", "U", "U=1 for a supervisor-mode execute: never allowed")
    return ("PTW", "5", "U", "U=1 for a supervisor-mode access and PC.ta.SUM=0")


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
    if top:
        if psize == 4:
            if iova >> 32:
                rule = "IOVA bits 63:32 are not zero for Sv32 (DC.tc.SXL=1)"
                raise page_fault(access, ("PTW", "1", "IOVA", rule))
        elif top != (1 << (65 - va_bits)) - 1:
            name = _S_NAME[va_bits]
            rule = f"IOVA bits 63:{va_bits - 1} are not all equal: not canonical for {name}"
            raise page_fault(access, ("PTW", "1", "IOVA", rule))
    emit = io.emit
    # the leaf that passes PTW steps 3, 5 and 7 as it is (see _LEAF_WANT, leaf_tests)
    want, mask = io.s_leaf[priv][sum_][access]
    # (an observed walk goes through Iommu.rd: the same process, every read an event)
    pages = io.pages if not io.port_faults and emit is None else None  # see _U64
    # the G-stage walks of the PTE addresses (implicit reads): the setup of _g_read
    # once, used while there is no G-stage walk cache
    g_fast = False
    if hgatp and pages is not None and not io.gwalk.capacity:
        glevels, _, gpsize, gbits = G_MODES[io.gxl][hgatp >> _G_MODE_SHIFT]
        gbits = 34 if gctl & 2 else gbits  # §DC.tc.SXL: 34-bit GPAs
        groot = hgatp & _PPN_ROOT
        gs = 9 * glevels
        gleaf_mask = io.g_leaf[0][1]
        gptr_bad = io.pte_ptr_bad
        gpages = pages
        g_fast = gpsize == 8 and groot + 4 <= io.pa_pages
    retries = 0
    pte: int
    while True:  # PTW step 7 may restart the walk
        try:
            if psize == 8 and pages is not None:
                # PTW steps 2-4 and 6 of an 8-byte mode read in place (the hot path:
                # inline), as in second_stage: the PTE's page number (ppn) and offset in
                # it (off), s = 9 x (level + 1)
                table = pages
                # a pointer's PPN is an SPA (a table beyond PAS is read through the port)
                # or, in a two-stage translation, a GPA (translated below).  A PTE with
                # pte & ptr_bad == V is a valid pointer (PTW steps 3 and 4) with nothing
                # above its PPN, to a table the walk reads in place; any other (a leaf,
                # an invalid PTE, a table beyond PAS, bits 60:59 set) takes the tests
                ptr_bad = (io.pte_nl_bad if hgatp else io.pte_ptr_bad) | _RX_RSW
                u64 = _U64[big]
                # PTW step 2: a = iosatp.PPN x PAGESIZE, i = LEVELS - 1; vpn[i] from the
                # IOVA (canonical: its bits beyond the VA width do not reach the mask)
                s = 9 * levels
                ppn = fsc & _PPN_ROOT
                off = (iova >> s) & 0xFF8
                if ppn >= io.pa_pages and not hgatp:
                    table = _NO_PAGES  # beyond PAS: through the port (an access fault)
                while True:
                    if hgatp:  # the PTE address is a GPA: an implicit read through the G-stage
                        pte_gpa = (ppn << 12) | off
                        spa = -1
                        if g_fast and not pte_gpa >> gbits:  # (PTW step 1 of the G-stage)
                            spa = _g_read(pte_gpa, groot, gs, gpages, u64, gptr_bad, gleaf_mask)
                        if spa < 0:
                            spa = implicit_read(io, pte_gpa, hgatp, access, gctl, "")
                        ppn = spa >> 12
                        off = spa & 0xFFF
                        if ppn >= io.pa_pages:
                            table = _NO_PAGES  # beyond PAS: through the port (an access fault)
                    try:
                        (pte,) = u64(table[ppn], off)
                    except KeyError:
                        pte = _read_pte(io, ppn, off, big, access, "", False, s)
                    if pte & ptr_bad != _V:
                        if pte & _RX:
                            break  # PTW step 4: a leaf
                        # PTW step 3 for a pointer: V must be 1, W 0, and nothing reserved
                        # (D, A, U, N and PBMT are reserved in non-leaf PTEs)
                        if pte & io.pte_nl_bad != _V:
                            raise _invalid_pointer(io, pte, s // 9 - 1)
                        # a valid pointer to a table beyond PAS (through the port), or with
                        # Svrsw60t59b's bits 60:59 set (software's: not part of the PPN)
                        table = _NO_PAGES
                        pte &= _PPN_FIELD
                    if s == 9:  # PTW step 4
                        raise _Invalid("4", "R", "a non-leaf PTE at level 0: no leaf found")
                    s -= 9  # PTW step 2 of the next level: a = pte.PPN x PAGESIZE
                    ppn = pte >> _PPN_SHIFT
                    off = (iova >> s) & 0xFF8
                fast = pte & mask == want  # PTW steps 3, 5 and 7 pass: see _LEAF_WANT
                if fast and s == 9:  # the common case: a 4 KiB page (PTW step 6 passes)
                    # PTW step 8: the GPA from the leaf PPN and the page offset
                    return ((pte << 2) & _PPN_AT12) | (iova & 0xFFF), pte, 4096
                size = _leaf_size(io, pte, s, fast)  # PTW steps 3 and 6
            else:
                va = iova & ((1 << va_bits) - 1)
                pte, size, pte_addr, pte_gpa = _walk(
                    io, va, fsc & _PPN_ROOT, geom, big, hgatp, access, gctl, ""
                )
                ppn = pte_addr >> 12
                off = pte_addr & 0xFFF
                fast = False
        except _Invalid as e:
            raise page_fault(access, ("PTW", e.step, e.field, e.rule)) from None
        if not fast:
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
            if new != pte:
                if not sade:
                    raise page_fault(access, _ad_why("PTW", pte, new ^ pte, "DC.tc.SADE"))
                pte_addr = (ppn << 12) | off
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
                    rule = f"access fault updating A/D of the PTE at {pte_addr:#x}"
                    why = ("PTW", "7", "A", rule)
                    raise _pte_fault(err, access, "", why) from None
                if emit is not None:
                    emit(Step("PTW", "7", f"A/D update of the first-stage PTE at {pte_addr:#x}"))
                pte = new
        if emit is not None:
            emit(Check("PTW", "5", "the leaf grants the access", True))
        # PTW step 8: the GPA from the leaf PPN and the page offset
        return ((pte << 2) & _PPN_AT12 & -size) | (iova & (size - 1)), pte, size
