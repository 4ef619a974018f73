"""Device directory: §"Process to locate the Device-context" and the DC checks.

A device context travels as a tuple of eight ints
``(tc, iohgatp, ta, fsc, msiptp, msi_addr_mask, msi_addr_pattern, reserved)``;
the base format (``capabilities.MSI_FLAT`` = 0) has zeros in the last four.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Dict, Final, FrozenSet, Tuple

from . import formats as F
from ._fault import Fault, Why
from .events import Check
from .memory import MemoryAccessError, MemoryFault
from .paging import G_VALID, S_VALID, emit_read, signed64
from .types import Cause

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = [
    "DC",
    "ddi",
    "locate_dc",
    "dc_misconfigured",
    "dc_rule_why",
    "dc_fast_masks",
    "dc_fctl_masks",
    "DC_RULES",
]

#: a device context as the caches keep it: (DC.tc, DC.iohgatp, DC.ta, DC.fsc,
#: DC.msiptp, DC.msi_addr_mask, DC.msi_addr_pattern, the reserved doubleword); variable-length
#: on purpose: the compiled build keeps it one boxed tuple (see ioatc.Key)
DC = Tuple[int, ...]

_TC: Final = F.DC_TC
_V: Final = _TC.V.mask
_EN_ATS: Final = _TC.EN_ATS.mask
_EN_PRI: Final = _TC.EN_PRI.mask
_T2GPA: Final = _TC.T2GPA.mask
_PDTV: Final = _TC.PDTV.mask
_PRPR: Final = _TC.PRPR.mask
_GADE: Final = _TC.GADE.mask
_SADE: Final = _TC.SADE.mask
_DPE: Final = _TC.DPE.mask
_SBE: Final = _TC.SBE.mask
_SXL: Final = _TC.SXL.mask
_MODE_SHIFT: Final = F.IOHGATP.MODE.lsb
_GSCID: Final = F.IOHGATP.GSCID
_PSCID: Final = F.DC_TA.PSCID
_RCID: Final = F.DC_TA.RCID
_MCID: Final = F.DC_TA.MCID
_DDTE_PPN: Final = F.DDTE.PPN
_DDTE_RSV: Final = F.DDTE.reserved
_IOSATP_RSV: Final = F.IOSATP.reserved
_MSIPTP_RSV: Final = F.MSIPTP.reserved
_GSCID_LSB: Final = _GSCID.lsb
_GSCID_MAX: Final = _GSCID.max
_PSCID_LSB: Final = _PSCID.lsb
_PSCID_MAX: Final = _PSCID.max
_RCID_LSB: Final = _RCID.lsb
_RCID_MAX: Final = _RCID.max
_MCID_LSB: Final = _MCID.lsb
_MCID_MAX: Final = _MCID.max
_DC_BASE_SIZE: Final = F.DC_BASE_SIZE
_DDTE_PPN_LSB: Final = _DDTE_PPN.lsb
# a usable non-leaf DDT entry has only V of these (paging.signed64)
_V_RSV: Final = signed64(_V | _DDTE_RSV)
_SBE_SXL: Final = _SBE | _SXL
#: DC.fsc above PPN: the reserved bits and MODE (the same bits in iosatp and pdtp)
_FSC_TOP: Final = F.IOSATP.PPN.lsb + F.IOSATP.PPN.width
_IOSATP_MODE_SHIFT: Final = F.IOSATP.MODE.lsb - _FSC_TOP
_PDTP_MODE_SHIFT: Final = F.PDTP.MODE.lsb - _FSC_TOP
#: in-place readers (see locate_dc) by byte order: a DDT entry, a base DC (32
#: bytes), an extended DC (64 bytes)
_U64: Final = (struct.Struct("<Q").unpack_from, struct.Struct(">Q").unpack_from)
#: the pages of a port that is not read in place (every read through io.rd / io.rd_words)
_NO_PAGES: Final[Dict[int, bytearray]] = {}
_DC32: Final = (struct.Struct("<4Q").unpack_from, struct.Struct(">4Q").unpack_from)
_DC64: Final = (struct.Struct("<8Q").unpack_from, struct.Struct(">8Q").unpack_from)

#: Short text of each rule of §"Device-context configuration checks", by
#: number (list position in the spec); rule 23 is the recommended check.
DC_RULES: Final = {
    1: "bits or encodings reserved for future standard use are set",
    2: "capabilities.ATS is 0 and DC.tc.EN_ATS, EN_PRI or PRPR is 1",
    3: "DC.tc.EN_ATS is 0 and DC.tc.T2GPA is 1",
    4: "DC.tc.EN_ATS is 0 and DC.tc.EN_PRI is 1",
    5: "DC.tc.EN_PRI is 0 and DC.tc.PRPR is 1",
    6: "capabilities.T2GPA is 0 and DC.tc.T2GPA is 1",
    7: "DC.tc.T2GPA is 1 and DC.iohgatp.MODE is Bare",
    8: "DC.tc.PDTV is 1 and DC.fsc.pdtp.MODE is not a supported mode",
    9: "DC.tc.PDTV is 0 and DC.fsc.iosatp.MODE is not a valid encoding",
    10: "DC.tc.PDTV is 0, DC.tc.SXL is 0 and DC.fsc.iosatp.MODE is not supported",
    11: "DC.tc.PDTV is 0, DC.tc.SXL is 1 and DC.fsc.iosatp.MODE is not supported",
    12: "DC.tc.PDTV is 0 and DC.tc.DPE is 1",
    13: "DC.iohgatp.MODE is not a valid encoding",
    14: "fctl.GXL is 0 and DC.iohgatp.MODE is not supported",
    15: "fctl.GXL is 1 and DC.iohgatp.MODE is not supported",
    16: "capabilities.MSI_FLAT is 1 and DC.msiptp.MODE is not Off and not Flat",
    17: "DC.iohgatp root page table is not 16-KiB aligned",
    18: "capabilities.AMO_HWAD is 0 and DC.tc.SADE or DC.tc.GADE is 1",
    19: "capabilities.END is 0 and fctl.BE != DC.tc.SBE",
    20: "DC.tc.SXL value is not legal",
    21: "DC.tc.SBE value is not legal",
    22: "DC.ta.RCID or DC.ta.MCID is wider than supported",
    23: "DC.iohgatp.MODE is Bare and DC.msiptp.MODE is not Off (recommended check)",
    24: "[GIPC] DC.tc.GIPC is 1 and DC.tc.PDTV is 0",
    25: "[GIPC] DC.tc.GIPC is 1 and DC.tc.T2GPA is 1",
}
#: The offending field of each rule
DC_RULE_FIELDS: Final = {
    1: "reserved",
    2: "DC.tc.EN_ATS",
    3: "DC.tc.T2GPA",
    4: "DC.tc.EN_PRI",
    5: "DC.tc.PRPR",
    6: "DC.tc.T2GPA",
    7: "DC.iohgatp.MODE",
    8: "DC.fsc.MODE",
    9: "DC.fsc.MODE",
    10: "DC.fsc.MODE",
    11: "DC.fsc.MODE",
    12: "DC.tc.DPE",
    13: "DC.iohgatp.MODE",
    14: "DC.iohgatp.MODE",
    15: "DC.iohgatp.MODE",
    16: "DC.msiptp.MODE",
    17: "DC.iohgatp.PPN",
    18: "DC.tc.SADE",
    19: "DC.tc.SBE",
    20: "DC.tc.SXL",
    21: "DC.tc.SBE",
    22: "DC.ta.RCID",
    23: "DC.msiptp.MODE",
    24: "DC.tc.GIPC",
    25: "DC.tc.GIPC",
}


def ddi(io: "Iommu", device_id: int) -> Tuple[int, int, int]:
    """§P2IOVA steps 3-4: split ``device_id`` into DDI[0], DDI[1], DDI[2]."""
    if io.msi_flat:  # extended format: 6 / 9 / 9 bits
        return device_id & 0x3F, (device_id >> 6) & 0x1FF, device_id >> 15
    return device_id & 0x7F, (device_id >> 7) & 0x1FF, device_id >> 16  # base: 7 / 9 / 8


def _ddt_fault(err: MemoryAccessError, step: str, what: str) -> Fault:
    if err.fault is MemoryFault.DATA_CORRUPTION:
        why = ("GET_DC", step, what, f"poisoned data reading the {what} at {err.addr:#x}")
        return Fault(Cause.DDT_DATA_CORRUPTION, 0, why)
    why = ("GET_DC", step, what, f"access fault reading the {what} at {err.addr:#x}")
    return Fault(Cause.DDT_ENTRY_LOAD_ACCESS_FAULT, 0, why)


def dc_rule_why(io: "Iommu", dc: DC, rule: int) -> Why:
    """The reason of a failed DC configuration check (§DC_MISCONFIG rule ``rule``)."""
    text = DC_RULES[rule]
    fieldname = DC_RULE_FIELDS[rule]
    if rule == 1:
        fieldname, text = _rule1(io, dc)
    return ("DC_MISCONFIG", str(rule), fieldname, text)


def _rule1(io: "Iommu", dc: DC) -> Tuple[str, str]:
    """Which reserved bits rule 1 found."""
    tc, iohgatp, ta, fsc, msiptp, mask, pattern, rsvd = dc
    for name, value, bits in (
        ("DC.tc", tc, io.tc_reserved),
        ("DC.ta", ta, io.ta_reserved),
        ("DC.fsc", fsc, F.IOSATP.reserved),
        ("DC.msiptp", msiptp, F.MSIPTP.reserved),
        ("DC.msi_addr_mask", mask, io.msi_mask_reserved),
        ("DC.msi_addr_pattern", pattern, io.msi_mask_reserved),
        ("DC.reserved", rsvd, (1 << 64) - 1),
    ):
        if value & bits:
            return name, f"{name} has reserved bits set ({value & bits:#x})"
    if _GSCID.get(iohgatp) >> io.params.gscid_width:
        return "DC.iohgatp.GSCID", (
            f"DC.iohgatp.GSCID is wider than the {io.params.gscid_width} implemented bits"
        )
    return "DC.ta.PSCID", f"DC.ta.PSCID is wider than the {io.params.pscid_width} implemented bits"


def locate_dc(io: "Iommu", device_id: int) -> DC:
    """§GET_DC: walk the DDT for ``device_id`` and return the checked DC."""
    big = io.be
    emit = io.emit
    # DDI[0], DDI[1], DDI[2] of §P2IOVA steps 3-4 (as ddi(), inline: this is a hot path)
    if io.msi_flat:  # extended format: 6 / 9 / 9 bits
        d = (device_id & 0x3F, (device_id >> 6) & 0x1FF, device_id >> 15)
    else:  # base: 7 / 9 / 8
        d = (device_id & 0x7F, (device_id >> 7) & 0x1FF, device_id >> 16)
    # DDT entries and the DC are read in place from a SparseMemory port (see
    # paging._U64; aligned: within a page); any other port, a page it does not
    # hold, an address beyond capabilities.PAS or injected port faults go
    # through io.rd / io.rd_words.  The walk keeps the page number (ppn) of a.
    pages = io.pages
    if pages is None or io.port_faults:
        pages = _NO_PAGES
    pa_pages = io.pa_pages
    u64 = _U64[big]
    # step 1: a = ddtp.PPN x 2^12, i = LEVELS - 1
    ppn = io.ddtp_ppn
    i = io.ddtp_mode - 2  # 1LVL=2 -> 0, 2LVL=3 -> 1, 3LVL=4 -> 2
    ddte: int  # typed: the compiled build then works on it natively
    while i:  # step 2: if i == 0 go to step 8
        off = d[i] * 8  # step 3: ddte at a + DDI[i] x 8
        try:
            (ddte,) = u64((pages if ppn < pa_pages else _NO_PAGES)[ppn], off)
        except KeyError:  # not read in place
            try:  # steps 3 and 4: access fault, poisoned data
                ddte = io.rd((ppn << 12) | off, 8, big)
            except MemoryAccessError as err:
                raise _ddt_fault(err, "4", "DDT entry") from None
        if emit is not None:
            emit_read(io, emit, "DDTE", (ppn << 12) | off, 8, big, ddte, "GET_DC", "3", i)
        if ddte & _V_RSV != _V:
            if not ddte & _V:  # step 5
                why = ("GET_DC", "5", "DDTE.V", f"the non-leaf DDT entry (DDI[{i}]) has V=0")
                raise Fault(Cause.DDT_ENTRY_NOT_VALID, 0, why)
            why = (  # step 6: reserved bits
                "GET_DC",
                "6",
                "DDTE",
                f"the non-leaf DDT entry (DDI[{i}]) has reserved bits set",
            )
            raise Fault(Cause.DDT_ENTRY_MISCONFIGURED, 0, why)
        i -= 1  # step 7
        ppn = ddte >> _DDTE_PPN_LSB  # a = ddte.PPN x 2^12 (the bits above PPN are reserved: 0)
    # step 8: DC at a + DDI[0] * DC_SIZE (aligned to its size: within a page)
    size = io.dc_size
    off = d[0] * size
    words: Tuple[int, ...]
    try:
        page = (pages if ppn < pa_pages else _NO_PAGES)[ppn]
        words = (_DC64 if size == 64 else _DC32)[big](page, off)
    except KeyError:  # not read in place
        try:  # step 8: access fault, poisoned data
            words = io.rd_words((ppn << 12) | off, size // 8, big)
        except MemoryAccessError as err:
            raise _ddt_fault(err, "8", "device context") from None
    if emit is not None:
        raw = sum(w << (64 * k) for k, w in enumerate(words))
        fmt = f"GIPC@{io.params.gipc_tc_bit}" if io.gipc_tc else ""
        emit_read(io, emit, "DC", (ppn << 12) | off, size, big, raw, "GET_DC", "8", 0, "", fmt)
    if size == _DC_BASE_SIZE:
        words += (0, 0, 0, 0)
    dc: DC = words
    tc, iohgatp, ta, fsc, msiptp, mask, pattern, rsvd = dc
    # steps 9 (DC.tc.V) and 10 (the configuration checks).  The common case first:
    # one test per field that the DC is valid (V=1) and has nothing the rules look
    # at (no reserved bit, no optional feature that needs another bit or a
    # capability, SBE = fctl.BE, SXL = fctl.GXL, supported modes; see dc_fast_masks
    # and dc_fctl_masks).  Such a DC breaks no rule; any other is tested for V
    # (step 9), then goes through every rule, in order (dc_misconfigured), and the
    # first rule broken is reported.
    if (
        tc & io.dc_tc_fast != io.dc_tc_want
        or ta & io.dc_ta_fast
        # iohgatp (0: Bare, nothing to test): GSCID, PPN[1:0], a supported MODE
        or (iohgatp and (iohgatp & io.dc_hg_fast or iohgatp >> _MODE_SHIFT not in io.g_modes))
        # iosatp / pdtp: MODE and the reserved bits (above PPN) in one test
        or fsc >> _FSC_TOP not in (io.dc_pdtp_ok if tc & _PDTV else io.dc_iosatp_gxl)
        or rsvd
        # msi_addr_mask / msi_addr_pattern (0 without MSI): reserved bits
        or ((mask or pattern) and (mask | pattern) & io.msi_mask_reserved)
        # msiptp: reserved bits, MODE Off or Flat (rule 16), Off when Bare (rule 23)
        or (
            msiptp
            and (
                msiptp & _MSIPTP_RSV or msiptp >> _MODE_SHIFT > (1 if iohgatp >> _MODE_SHIFT else 0)
            )
        )
    ):
        if not tc & _V:  # step 9
            why = ("GET_DC", "9", "DC.tc.V", "DC.tc.V is 0")
            raise Fault(Cause.DDT_ENTRY_NOT_VALID, 0, why)
        rule = dc_misconfigured(io, dc)  # step 10
        if rule:
            raise Fault(Cause.DDT_ENTRY_MISCONFIGURED, 0, dc_rule_why(io, dc, rule))
    if emit is not None:
        emit(Check("GET_DC", "10", "the device context passes every configuration check", True))
    return dc  # step 11


def dc_fast_masks(
    io: "Iommu",
) -> Tuple[int, int, int, FrozenSet[int], Tuple[FrozenSet[int], FrozenSet[int]]]:
    """What the common-case test of locate_dc steps 9-10 accepts under the configuration
    of ``io`` (with dc_fctl_masks for what fctl decides).  A DC it accepts breaks no
    rule of §DC_MISCONFIG; any other goes through every rule.

    * DC.tc bits: reserved (rule 1), EN_PRI / PRPR / T2GPA / DPE / [GIPC] GIPC
      (rules 3-7, 12, 24, 25: each needs another bit or a mode), EN_ATS without
      capabilities.ATS (2), SADE / GADE without AMO_HWAD (18), and V, SBE / SXL,
      which must be as dc_fctl_masks says (V = 1: step 9; rules 19-21; SXL also
      selects rules 10 / 11);
    * DC.ta bits: reserved, PSCID (whether or not DC.tc.PDTV) beyond the
      implemented width (1), RCID / MCID beyond theirs (22);
    * DC.iohgatp bits: GSCID beyond the implemented width (1), PPN[1:0] (17; also
      when Bare);
    * the accepted bits of DC.fsc above PPN (MODE and the reserved bits): a
      supported pdtp.MODE, and a supported iosatp.MODE by DC.tc.SXL (rules 1, 8-11).
    """
    caps = io.caps
    tc = _V | io.tc_reserved | _EN_PRI | _PRPR | _T2GPA | _DPE | io.gipc_tc | _SBE_SXL
    if not caps.ats:
        tc |= _EN_ATS
    if not caps.amo_hwad:
        tc |= _SADE | _GADE
    ta = io.ta_reserved | _beyond(_PSCID_LSB, _PSCID_MAX, io.pscid_width)
    if caps.qosid:
        ta |= _beyond(_RCID_LSB, _RCID_MAX, io.rcid_width)
        ta |= _beyond(_MCID_LSB, _MCID_MAX, io.mcid_width)
    hg = _beyond(_GSCID_LSB, _GSCID_MAX, io.gscid_width) | 3
    pdtp = frozenset(m << _PDTP_MODE_SHIFT for m in io.pd_modes)
    s0, s1 = ((frozenset(m << _IOSATP_MODE_SHIFT for m in ms)) for ms in io.s_modes)
    return signed64(tc), signed64(ta), hg, pdtp, (s0, s1)  # (paging.signed64)


def dc_fctl_masks(io: "Iommu") -> Tuple[int, FrozenSet[int]]:
    """What fctl decides in the common-case test of locate_dc steps 9-10: the DC.tc
    bits it wants, V = 1 (step 9), DC.tc.SBE = fctl.BE and DC.tc.SXL = fctl.GXL (a DC
    with other values goes through every rule: rules 19-21), and the accepted bits of
    iosatp above PPN with that SXL."""
    want = _V | (_SBE if io.be else 0) | (_SXL if io.gxl else 0)
    return want, io.dc_iosatp_ok[io.gxl]


def _beyond(lsb: int, field_max: int, width: int) -> int:
    """The bits of a field (at ``lsb``, values up to ``field_max``) above its low ``width``."""
    return (field_max & ~((1 << width) - 1)) << lsb


def dc_misconfigured(io: "Iommu", dc: DC) -> int:
    """§DC_MISCONFIG: the number of the first rule a valid DC breaks, or 0."""
    tc, iohgatp, ta, fsc, msiptp, mask, pattern, rsvd = dc
    pdtv = tc & _PDTV
    sxl = 1 if tc & _SXL else 0
    gmode = iohgatp >> _MODE_SHIFT
    smode = fsc >> _MODE_SHIFT
    # 1. reserved bits (GSCID/PSCID bits beyond the implemented widths included)
    if (
        tc & io.tc_reserved
        or ta & io.ta_reserved
        or fsc & _IOSATP_RSV
        or ((iohgatp >> _GSCID_LSB) & _GSCID_MAX) >> io.gscid_width
        or (not pdtv and ((ta >> _PSCID_LSB) & _PSCID_MAX) >> io.pscid_width)
        or msiptp & _MSIPTP_RSV
        or mask & io.msi_mask_reserved
        or pattern & io.msi_mask_reserved
        or rsvd
    ):
        return 1
    caps = io.caps
    if not caps.ats and tc & (_EN_ATS | _EN_PRI | _PRPR):  # 2
        return 2
    if not tc & _EN_ATS and tc & _T2GPA:  # 3
        return 3
    if not tc & _EN_ATS and tc & _EN_PRI:  # 4
        return 4
    if not tc & _EN_PRI and tc & _PRPR:  # 5
        return 5
    if not caps.t2gpa and tc & _T2GPA:  # 6
        return 6
    if tc & _T2GPA and gmode == 0:  # 7
        return 7
    if pdtv and smode not in io.pd_modes:  # 8 (reserved encodings are unsupported too)
        return 8
    if not pdtv:
        if smode not in S_VALID[sxl]:  # 9
            return 9
        if smode not in io.s_modes[sxl]:  # 10 / 11
            return 11 if sxl else 10
        if tc & _DPE:  # 12
            return 12
    if gmode not in G_VALID[io.gxl]:  # 13
        return 13
    if gmode not in io.g_modes:  # 14 / 15
        return 15 if io.gxl else 14
    if io.msi_flat and msiptp >> _MODE_SHIFT > 1:  # 16
        return 16
    if gmode and iohgatp & 3:  # 17: root is 16 KiB aligned
        return 17
    if not caps.amo_hwad and tc & (_SADE | _GADE):  # 18
        return 18
    sbe = 1 if tc & _SBE else 0
    if not caps.end and sbe != io.be:  # 19
        return 19
    if (io.gxl and not sxl) or (not io.gxl and not io.gxl_writable and sxl):  # 20
        return 20
    if not io.be_writable and sbe != io.be:  # 21
        return 21
    if caps.qosid and (
        ((ta >> _RCID_LSB) & _RCID_MAX) >> io.rcid_width
        or ((ta >> _MCID_LSB) & _MCID_MAX) >> io.mcid_width
    ):  # 22
        return 22
    if gmode == 0 and msiptp >> _MODE_SHIFT:  # recommended: msiptp.MODE Off when Bare
        return 23
    if io.gipc_tc and tc & io.gipc_tc:  # [GIPC] decisions #3 and #4
        if not pdtv:
            return 24
        if tc & _T2GPA:
            return 25
    return 0
