"""Process directory: §"Process to locate the Process-context" and the PC checks.

A process context travels as the tuple
``(ta, fsc, iohgatp, msiptp, msi_addr_mask, msi_addr_pattern)``; the last
four are -1 when the PC does not hold them (base format; [GIPC] formats
hold ``iohgatp``, and the 2024 64-byte form the MSI fields too).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Dict, Final, FrozenSet, Optional, Tuple

from . import formats as F
from ._fault import Fault, Why
from .events import Check
from .gipc import GIPC_PC_RULES, PcFormat, gipc_pc_misconfigured
from .memory import MemoryAccessError, MemoryFault
from .paging import S_VALID, emit_read, implicit_read, signed64
from .types import Cause

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = [
    "PC",
    "PDT_LEVELS",
    "PID_WIDTH",
    "pdi",
    "locate_pc",
    "pc_misconfigured",
    "pc_fast_masks",
    "PC_RULES",
]

#: a process context as the PDT cache keeps it (see locate_pc); variable-length on
#: purpose: the compiled build keeps it one boxed tuple (see ioatc.Key)
PC = Tuple[int, ...]

#: pdtp.MODE -> number of PDT levels (PD8, PD17, PD20)
PDT_LEVELS: Final = {1: 1, 2: 2, 3: 3}
#: pdtp.MODE -> widest process_id (bits); wider is "Transaction type disallowed"
PID_WIDTH: Final = {1: 8, 2: 17, 3: 20}

_MODE_SHIFT: Final = F.PC_FSC.MODE.lsb
_V: Final = F.PDTE.V.mask
_PDTE_PPN: Final = F.PDTE.PPN
_PDTE_RSV: Final = F.PDTE.reserved
_PDTP_PPN_LSB: Final = F.PDTP.PPN.lsb
_PDTP_PPN_MAX: Final = F.PDTP.PPN.max
_PC_TA_RSV: Final = F.PC_TA.reserved
_PC_FSC_RSV: Final = F.PC_FSC.reserved
_PC_SIZE: Final = F.PC_SIZE
_PC_V: Final = F.PC_TA.V.mask
_PSCID: Final = F.PC_TA.PSCID
_PSCID_LSB: Final = _PSCID.lsb
_PSCID_MAX: Final = _PSCID.max
#: pdte.PPN x 2^12 is (pdte << _PDTE_TO_ADDR) & _PDTE_ADDR
_PDTE_TO_ADDR: Final = 12 - _PDTE_PPN.lsb
_PDTE_ADDR: Final = _PDTE_PPN.mask << _PDTE_TO_ADDR
# a usable non-leaf PDT entry has only V of these (paging.signed64)
_V_RSV: Final = signed64(_V | _PDTE_RSV)
#: in-place readers (see locate_pc) by byte order: a PDT entry, a 16-byte PC
_U64: Final = (struct.Struct("<Q").unpack_from, struct.Struct(">Q").unpack_from)
#: the pages of a port that is not read in place (every read through io.rd / io.rd_words)
_NO_PAGES: Final[Dict[int, bytearray]] = {}
#: PC.fsc above PPN: the reserved bits and MODE
_FSC_TOP: Final = F.PC_FSC.PPN.lsb + F.PC_FSC.PPN.width
_FSC_MODE_SHIFT: Final = F.PC_FSC.MODE.lsb - _FSC_TOP
_PC16: Final = (struct.Struct("<2Q").unpack_from, struct.Struct(">2Q").unpack_from)

PC_RULES: Final = {
    1: "bits or encodings reserved for future standard use are set",
    2: "PC.fsc.MODE is not a valid encoding",
    3: "DC.tc.SXL is 0 and PC.fsc.MODE is not a supported mode",
    4: "DC.tc.SXL is 1 and PC.fsc.MODE is not a supported mode",
}
_GIPC_RULE_FIELDS: Final = {
    10: "PC.reserved",
    11: "PC.iohgatp.GSCID",
    12: "PC.iohgatp.MODE",
    13: "PC.iohgatp.MODE",
    14: "PC.iohgatp.PPN",
    15: "PC.msiptp",
    16: "PC.msiptp.MODE",
    17: "PC.msiptp.MODE",
}


def pdi(process_id: int) -> Tuple[int, int, int]:
    """PDI[0] = process_id[7:0], PDI[1] = process_id[16:8], PDI[2] = process_id[19:17]."""
    return process_id & 0xFF, (process_id >> 8) & 0x1FF, process_id >> 17


def _pdt_fault(err: MemoryAccessError, step: str, what: str) -> Fault:
    if err.fault is MemoryFault.DATA_CORRUPTION:
        why = ("GET_PC", step, what, f"poisoned data reading the {what} at {err.addr:#x}")
        return Fault(Cause.PDT_DATA_CORRUPTION, 0, why)
    why = ("GET_PC", step, what, f"access fault reading the {what} at {err.addr:#x}")
    return Fault(Cause.PDT_ENTRY_LOAD_ACCESS_FAULT, 0, why)


def pc_rule_why(io: "Iommu", ta: int, fsc: int, rule: int) -> Why:
    """The reason of a failed PC configuration check (§PC_MISCONFIG rule ``rule``)."""
    if rule == 1:
        if ta & F.PC_TA.reserved:
            return ("PC_MISCONFIG", "1", "PC.ta", f"PC.ta has reserved bits set ({ta:#x})")
        if fsc & F.PC_FSC.reserved:
            return ("PC_MISCONFIG", "1", "PC.fsc", f"PC.fsc has reserved bits set ({fsc:#x})")
        text = f"PC.ta.PSCID is wider than the {io.params.pscid_width} implemented bits"
        return ("PC_MISCONFIG", "1", "PC.ta.PSCID", text)
    return ("PC_MISCONFIG", str(rule), "PC.fsc.MODE", PC_RULES[rule])


def locate_pc(
    io: "Iommu",
    pdtp: int,
    process_id: int,
    iohgatp: int,
    big: bool,
    sxl: int,
    access: int,
    gctl: int,
    fmt: Optional[PcFormat] = None,
) -> PC:
    """§GET_PC: walk the PDT of ``pdtp`` for ``process_id``.

    When ``iohgatp`` is not Bare every PDT address is a GPA, translated as
    an implicit access (guest-page faults keep the original access type).
    [GIPC] With a GIPC format ``fmt`` the PDT is at SPAs (decision #6) and
    the PC has ``fmt.size`` bytes.
    """
    mode = pdtp >> _MODE_SHIFT
    emit = io.emit
    if fmt is None:  # PDI[0], PDI[1], PDI[2] (as pdi(), inline: this is a hot path)
        p = (process_id & 0xFF, (process_id >> 8) & 0x1FF, process_id >> 17)
        pc_size = _PC_SIZE
    else:  # [GIPC] the process_id partitioning of the larger PC
        p = fmt.pdi(process_id)
        pc_size = fmt.size
        iohgatp = 0  # [GIPC] decision #6: pdtp.PPN and pdte.PPN are SPAs
    # PDT entries and the PC are read in place from a SparseMemory port (see
    # paging._U64; aligned: within a page); any other port, a page it does not
    # hold, an address beyond capabilities.PAS or injected port faults go
    # through io.rd / io.rd_words
    pages = io.pages
    if pages is None or io.port_faults:
        pages = _NO_PAGES
    limit = io.pa_limit
    u64 = _U64[big]
    gpa = iohgatp >> _MODE_SHIFT != 0  # DC.iohgatp.mode != Bare: PDT addresses are GPAs
    # step 1
    a = ((pdtp >> _PDTP_PPN_LSB) & _PDTP_PPN_MAX) << 12
    i = PDT_LEVELS[mode] - 1
    # steps 2-9 for the non-leaf levels i = LEVELS - 1 .. 1; for i == 0 steps 2
    # and 3 follow the loop and step 4 goes to step 10
    pdte: int  # typed: the compiled build then works on it natively
    while i:
        a += p[i] * 8  # step 2: a + PDI[i] x 8
        if gpa:  # step 3
            a = implicit_read(io, a, iohgatp, access, gctl, "PDTE")
        try:  # step 5
            (pdte,) = u64((pages if a < limit else _NO_PAGES)[a >> 12], a & 0xFFF)
        except KeyError:  # not read in place
            try:  # steps 5 and 6
                pdte = io.rd(a, 8, big)
            except MemoryAccessError as err:
                raise _pdt_fault(err, "6", "PDT entry") from None
        if emit is not None:
            emit_read(io, emit, "PDTE", a, 8, big, pdte, "GET_PC", "5", i)
        if pdte & _V_RSV != _V:
            if not pdte & _V:  # step 7
                why = ("GET_PC", "7", "PDTE.V", f"the non-leaf PDT entry (PDI[{i}]) has V=0")
                raise Fault(Cause.PDT_ENTRY_NOT_VALID, 0, why)
            why = (  # step 8: reserved bits
                "GET_PC",
                "8",
                "PDTE",
                f"the non-leaf PDT entry (PDI[{i}]) has reserved bits set",
            )
            raise Fault(Cause.PDT_ENTRY_MISCONFIGURED, 0, why)
        i -= 1  # step 9
        a = (pdte << _PDTE_TO_ADDR) & _PDTE_ADDR  # pdte.PPN x 2^12
    a += p[0] * pc_size  # step 2 with i == 0: a + PDI[0] x 16 ([GIPC] x fmt.size)
    if gpa:  # step 3
        a = implicit_read(io, a, iohgatp, access, gctl, "PC")
    # step 4: i == 0, go to step 10
    ta: int
    fsc: int
    if fmt is None:
        # step 10: the 16-byte PC (aligned: within a page)
        try:
            ta, fsc = _PC16[big]((pages if a < limit else _NO_PAGES)[a >> 12], a & 0xFFF)
        except KeyError:  # not read in place
            try:
                ta, fsc = io.rd_words(a, 2, big)
            except MemoryAccessError as err:
                raise _pdt_fault(err, "10", "process context") from None
        if emit is not None:
            emit_read(io, emit, "PC", a, _PC_SIZE, big, ta | fsc << 64, "GET_PC", "10", 0)
        if not ta & _PC_V:  # step 11
            raise Fault(Cause.PDT_ENTRY_NOT_VALID, 0, _PC_NOT_VALID)
        # step 12: the common case first: no reserved bit (PSCID beyond the
        # implemented width included) and a supported mode (one test of the
        # bits of PC.fsc above PPN) break no rule; any other PC goes through the
        # rules in order (pc_misconfigured)
        if ta & io.pc_ta_fast or fsc >> _FSC_TOP not in io.pc_fsc_ok[sxl]:
            rule = pc_misconfigured(io, ta, fsc, sxl)
            if rule:
                raise Fault(Cause.PDT_ENTRY_MISCONFIGURED, 0, pc_rule_why(io, ta, fsc, rule))
        if emit is not None:
            emit(Check("GET_PC", "12", _PASSED, True))
        return ta, fsc, -1, -1, -1, -1  # step 13
    try:  # step 10: [GIPC] the 32/64-byte PC
        words = io.rd_words(a, pc_size >> 3, big)
    except MemoryAccessError as err:
        raise _pdt_fault(err, "10", "process context") from None
    if emit is not None:
        raw = sum(w << (64 * k) for k, w in enumerate(words))
        emit_read(io, emit, "PC", a, pc_size, big, raw, "GET_PC", "10", 0, "", fmt.name)
    # [GIPC] the doublewords of the 32/64-byte PC (decision #11: SBE byte order)
    named = {name: words[off // 8] for name, off in fmt.offsets.items()}
    ta, fsc = named["ta"], named["fsc"]
    if not ta & _PC_V:  # step 11
        raise Fault(Cause.PDT_ENTRY_NOT_VALID, 0, _PC_NOT_VALID)
    reserved = tuple(words[off // 8] for off in fmt.reserved)
    rule = pc_misconfigured(io, ta, fsc, sxl)
    if rule:  # step 12
        raise Fault(Cause.PDT_ENTRY_MISCONFIGURED, 0, pc_rule_why(io, ta, fsc, rule))
    rule = gipc_pc_misconfigured(io, fmt, named, reserved)
    if rule:  # [GIPC] decision #7
        why = ("PC_MISCONFIG", str(rule), _GIPC_RULE_FIELDS[rule], GIPC_PC_RULES[rule])
        raise Fault(Cause.PDT_ENTRY_MISCONFIGURED, 0, why)
    if emit is not None:
        emit(Check("GET_PC", "12", _PASSED, True))
    return (  # step 13
        ta,
        fsc,
        named["iohgatp"],
        named.get("msiptp", -1),
        named.get("msi_addr_mask", -1),
        named.get("msi_addr_pattern", -1),
    )


def pc_fast_masks(io: "Iommu") -> Tuple[int, Tuple[FrozenSet[int], FrozenSet[int]]]:
    """What the common-case test of locate_pc step 12 accepts under the configuration
    of ``io``: the PC.ta bits that send a PC through the rules of §PC_MISCONFIG
    (reserved bits, PSCID bits beyond the implemented width: rule 1), and by DC.tc.SXL
    the accepted values of the bits of PC.fsc above PPN (a supported MODE and no
    reserved bit: rules 1-4)."""
    ta = _PC_TA_RSV | ((_PSCID_MAX & ~((1 << io.pscid_width) - 1)) << _PSCID_LSB)
    s0, s1 = ((frozenset(m << _FSC_MODE_SHIFT for m in ms)) for ms in io.s_modes)
    return ta, (s0, s1)


_PC_NOT_VALID: Final = ("GET_PC", "11", "PC.ta.V", "PC.ta.V is 0")
_PASSED: Final = "the process context passes every configuration check"


def pc_misconfigured(io: "Iommu", ta: int, fsc: int, sxl: int) -> int:
    """§PC_MISCONFIG: the number of the first rule a valid PC breaks, or 0."""
    mode = fsc >> _MODE_SHIFT
    # 1. reserved bits (PSCID bits beyond the implemented width included)
    if ta & _PC_TA_RSV or fsc & _PC_FSC_RSV or ((ta >> _PSCID_LSB) & _PSCID_MAX) >> io.pscid_width:
        return 1
    if mode not in (S_VALID[sxl]):  # 2
        return 2
    if mode not in io.s_modes[sxl]:  # 3 / 4
        return 4 if sxl else 3
    return 0
