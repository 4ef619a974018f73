"""Process directory: §"Process to locate the Process-context" and the PC checks.

A process context travels as the tuple
``(ta, fsc, iohgatp, msiptp, msi_addr_mask, msi_addr_pattern)``; the last
four are -1 when the PC does not hold them (base format; [GIPC] formats
hold ``iohgatp``, and the 2024 64-byte form the MSI fields too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final, Optional, Tuple

from . import formats as F
from ._fault import Fault, Why
from .events import Check
from .gipc import GIPC_PC_RULES, PcFormat, gipc_pc_misconfigured
from .memory import MemoryAccessError, MemoryFault
from .paging import S_VALID, emit_read, implicit_read, load
from .types import Cause

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["PC", "PDT_LEVELS", "PID_WIDTH", "pdi", "locate_pc", "pc_misconfigured", "PC_RULES"]

PC = Tuple[int, int, int, int, int, int]

#: pdtp.MODE -> number of PDT levels (PD8, PD17, PD20)
PDT_LEVELS: Final = {1: 1, 2: 2, 3: 3}
#: pdtp.MODE -> widest process_id (bits); wider is "Transaction type disallowed"
PID_WIDTH: Final = {1: 8, 2: 17, 3: 20}

_MODE_SHIFT: Final = F.PC_FSC.MODE.lsb
_V: Final = F.PDTE.V.mask
_PDTE_PPN: Final = F.PDTE.PPN
_PDTE_PPN_LSB: Final = _PDTE_PPN.lsb
_PDTE_PPN_MAX: Final = _PDTE_PPN.max
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
    if fmt is None:
        p = pdi(process_id)
        pc_size = _PC_SIZE
    else:  # [GIPC] the process_id partitioning of the larger PC
        p = fmt.pdi(process_id)
        pc_size = fmt.size
        iohgatp = 0  # [GIPC] decision #6: pdtp.PPN and pdte.PPN are SPAs
    # step 1
    a = ((pdtp >> _PDTP_PPN_LSB) & _PDTP_PPN_MAX) << 12
    i = PDT_LEVELS[mode] - 1
    while True:
        a = a + p[i] * 8 if i else a + p[0] * pc_size  # step 2
        if iohgatp >> _MODE_SHIFT:  # step 3
            a = implicit_read(io, a, iohgatp, access, gctl, "PDTE" if i else "PC")
        if not i:  # step 4
            break
        try:  # steps 5 and 6
            pdte = load(io, a, 8, big)
        except MemoryAccessError as err:
            raise _pdt_fault(err, "6", "PDT entry") from None
        if emit is not None:
            emit_read(io, emit, "PDTE", a, 8, big, pdte, "GET_PC", "5", i)
        if not pdte & _V:  # step 7
            why = ("GET_PC", "7", "PDTE.V", f"the non-leaf PDT entry (PDI[{i}]) has V=0")
            raise Fault(Cause.PDT_ENTRY_NOT_VALID, 0, why)
        if pdte & _PDTE_RSV:  # step 8
            why = (
                "GET_PC",
                "8",
                "PDTE",
                f"the non-leaf PDT entry (PDI[{i}]) has reserved bits set",
            )
            raise Fault(Cause.PDT_ENTRY_MISCONFIGURED, 0, why)
        i -= 1  # step 9
        a = ((pdte >> _PDTE_PPN_LSB) & _PDTE_PPN_MAX) << 12
    try:  # step 10
        words = io.rd_words(a, pc_size >> 3, big)
    except MemoryAccessError as err:
        raise _pdt_fault(err, "10", "process context") from None
    if emit is not None:
        raw = sum(w << (64 * k) for k, w in enumerate(words))
        emit_read(
            io, emit, "PC", a, pc_size, big, raw, "GET_PC", "10", 0, "", fmt.name if fmt else ""
        )
    if fmt is None:
        ta, fsc = words
        if not ta & _PC_V:  # step 11
            raise Fault(Cause.PDT_ENTRY_NOT_VALID, 0, _PC_NOT_VALID)
        rule = pc_misconfigured(io, ta, fsc, sxl)
        if rule:  # step 12
            raise Fault(Cause.PDT_ENTRY_MISCONFIGURED, 0, pc_rule_why(io, ta, fsc, rule))
        _passed(emit)
        return ta, fsc, -1, -1, -1, -1  # step 13
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
    _passed(emit)
    return (  # step 13
        ta,
        fsc,
        named["iohgatp"],
        named.get("msiptp", -1),
        named.get("msi_addr_mask", -1),
        named.get("msi_addr_pattern", -1),
    )


_PC_NOT_VALID: Final = ("GET_PC", "11", "PC.ta.V", "PC.ta.V is 0")


def _passed(emit: Optional[Callable[[Any], None]]) -> None:
    if emit is not None:
        emit(Check("GET_PC", "12", "the process context passes every configuration check", True))


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
