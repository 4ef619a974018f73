"""§P2IOVA "Process to translate an IOVA", steps 1 to 20.

:func:`translate_iova` follows the spec's numbered steps in order; each
step's number is in a comment.  It returns a :data:`Result` tuple or stops
by raising :class:`~riscv_iommu._fault.Fault`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Optional, Tuple

from . import formats as F
from ._fault import Fault
from .ats import ats_translate, reported_cause
from .events import Check, Step
from .hpm import Event
from .ioatc import HOST, NONE, cached_dc, cached_pc
from .msi import MsiResult, msi_free_size, msi_translate, record_mrif
from .paging import G_MODES, S_MODES, first_stage, second_stage
from .pdt import PID_WIDTH
from .types import Access, Cause, RequestKind

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["translate_iova", "Result", "PERM_R", "PERM_W", "PERM_X", "PERM_ALL"]

#: (address, R/W/X permission bits, G bit, PBMT, range size, MSI result or None)
Result = Tuple[int, int, bool, int, int, Optional[MsiResult]]

PERM_R: Final = F.PTE.R.mask
PERM_W: Final = F.PTE.W.mask
PERM_X: Final = F.PTE.X.mask
PERM_ALL: Final = PERM_R | PERM_W | PERM_X

_TC: Final = F.DC_TC
_EN_ATS: Final = _TC.EN_ATS.mask
_T2GPA: Final = _TC.T2GPA.mask
_DTF: Final = _TC.DTF.mask
_PDTV: Final = _TC.PDTV.mask
_GADE: Final = _TC.GADE.mask
_SADE: Final = _TC.SADE.mask
_DPE: Final = _TC.DPE.mask
_SBE: Final = _TC.SBE.mask
_SXL: Final = _TC.SXL.mask
_MODE_SHIFT: Final = F.IOHGATP.MODE.lsb  # MODE of iohgatp / iosatp / pdtp / msiptp
_ENS: Final = F.PC_TA.ENS.mask
_SUM: Final = F.PC_TA.SUM.mask
_G: Final = F.PTE.G.mask
_RCID_LSB: Final = F.DC_TA.RCID.lsb
_RCID_MAX: Final = F.DC_TA.RCID.max
_DC_PSCID: Final = F.DC_TA.PSCID
_DC_PSCID_LSB: Final = _DC_PSCID.lsb
_DC_PSCID_MAX: Final = _DC_PSCID.max
_PC_PSCID: Final = F.PC_TA.PSCID
_PC_PSCID_LSB: Final = _PC_PSCID.lsb
_PC_PSCID_MAX: Final = _PC_PSCID.max
_GSCID: Final = F.IOHGATP.GSCID
_GSCID_LSB: Final = _GSCID.lsb
_GSCID_MAX: Final = _GSCID.max
_PBMT_LSB: Final = F.PTE.PBMT.lsb
_PBMT_MAX: Final = F.PTE.PBMT.max
_U: Final = F.PTE.U.mask
_A: Final = F.PTE.A.mask
_D: Final = F.PTE.D.mask
_PERM: Final = (PERM_R, PERM_W, PERM_X)
_MCID_LSB: Final = F.DC_TA.MCID.lsb
_MCID_MAX: Final = F.DC_TA.MCID.max

_OFF: Final = 0
_BARE: Final = 1
# enum members as plain ints: an Enum attribute lookup costs more than the test
_UNTRANSLATED: Final = int(RequestKind.UNTRANSLATED)
_TRANSLATED: Final = int(RequestKind.TRANSLATED)
_ATS: Final = int(RequestKind.ATS_TRANSLATION)
_WRITE: Final = int(Access.WRITE)
_MODE_NAME: Final = {0: "Off", 1: "Bare", 2: "1LVL", 3: "2LVL", 4: "3LVL"}
_KIND_NAME: Final = (
    "an Untranslated request",
    "a Translated request",
    "an ATS Translation Request",
)
# mode names by (XLEN-32 flag, MODE): SXL for the first stage, GXL for the G-stage
_STAGE_NAME: Final = {(0, 8): "Sv39", (0, 9): "Sv48", (0, 10): "Sv57", (1, 8): "Sv32"}
_G_NAME: Final = {(0, 8): "Sv39x4", (0, 9): "Sv48x4", (0, 10): "Sv57x4", (1, 8): "Sv32x4"}


def translate_iova(
    io: "Iommu",
    device_id: int,
    iova: int,
    access: int,
    process_id: Optional[int],
    priv: bool,
    kind: int,
    data: Optional[int],
    debug: bool = False,
    no_write: bool = False,
    crossing: bool = False,
) -> Result:
    """Run the translation process for one request.

    Side effects on ``io``: ``io.dtf`` is set once the DC is located (it
    decides whether a later fault is reported) and ``io.qos`` holds the
    request's (RCID, MCID).
    """
    mode = io.ddtp_mode
    emit = io.emit
    if emit is not None:
        emit(Step("P2IOVA", "1", f"ddtp.iommu_mode is {_MODE_NAME.get(mode, mode)}"))
    # step 1
    if mode == _OFF:
        why = ("P2IOVA", "1", "ddtp.iommu_mode", "ddtp.iommu_mode is Off")
        raise Fault(Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED, 0, why)
    # step 2
    if mode == _BARE:
        if kind != _UNTRANSLATED:
            why = (
                "P2IOVA",
                "2",
                "ddtp.iommu_mode",
                f"ddtp.iommu_mode is Bare and the request is {_KIND_NAME[kind]}",
            )
            raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
        if crossing:
            raise _misaligned(access)
        return iova, PERM_ALL, False, 0, io.params.bare_range_size, None  # step 20
    # steps 3 and 4 split device_id into DDI[0..2] (ddt.ddi: 7/9/8 bits for base DCs,
    # 6/9/9 for extended ones); step 5: a device_id wider than the mode supports
    # (2LVL with DDI[2] != 0, 1LVL with DDI[2] or DDI[1] != 0) or than the implemented
    # width.  io.did_bits is that width: the bits DDI[0] (1LVL), DDI[0..1] (2LVL) or
    # all three (3LVL) hold, at most IommuParams.device_id_width
    if device_id >> io.did_bits:
        raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, _wide_device_id(io, device_id, mode))
    # step 6
    dc = cached_dc(io, device_id)
    tc, iohgatp, ta, fsc, msiptp, msi_mask, msi_pattern, _ = dc
    io.dtf = tc & _DTF != 0
    if io.qosid:
        # DC.ta.RCID/MCID: the QoS IDs of the IOMMU's accesses for this device
        # (PDT, page tables, MSI page table, MRIF) and of the translated request
        io.qos = ((ta >> _RCID_LSB) & _RCID_MAX, (ta >> _MCID_LSB) & _MCID_MAX)
        if io.qos_port:
            io.mem.qos = io.qos
    # A request whose bytes cross a 4 KiB page is malformed (docs/translation.md);
    # checked once the DC is known so that DC.tc.DTF applies to causes 4 / 6
    if crossing:
        raise _misaligned(access)
    # step 7
    if kind != _UNTRANSLATED:
        if not tc & _EN_ATS:
            why = (
                "P2IOVA",
                "7",
                "DC.tc.EN_ATS",
                f"DC.tc.EN_ATS is 0 and the request is {_KIND_NAME[kind]}",
            )
            raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
        io.t2gpa = bool(tc & _T2GPA)  # for the CXL.io bit of an ATS completion
    gipc = tc & io.gipc_tc  # [GIPC] DC.tc.GIPC
    if process_id is not None:
        if not tc & _PDTV:
            why = ("P2IOVA", "7", "DC.tc.PDTV", "the request has a process_id and DC.tc.PDTV is 0")
            raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
        # [GIPC] a larger PC narrows the process_id of PD8 and PD17
        width = (io.pc_fmt.pid_width if gipc and io.pc_fmt else PID_WIDTH).get(fsc >> _MODE_SHIFT)
        if width is not None and process_id >> width:
            why = (
                "P2IOVA",
                "7",
                "process_id",
                f"process_id {process_id:#x} is wider than the {width} bits of DC.fsc.pdtp.MODE",
            )
            raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
    if emit is not None:
        emit(Check("P2IOVA", "7", "the transaction type is allowed for this device context", True))
    s1_at_spa = False  # [GIPC] 2024: first-stage tables at SPAs
    hg_from = "DC"
    iosatp = 0  # Bare unless a step below selects a first-stage table
    sum_ = False
    pscid_ = 0
    ats = kind == _ATS
    if kind == _TRANSLATED:
        # step 8
        if not tc & _T2GPA:
            return iova, PERM_ALL, False, 0, io.params.bare_range_size, None  # step 20
        # step 9: the IOVA is a GPA; first stage Bare; DC.iohgatp
    elif not tc & _PDTV:
        # step 10: iosatp from DC.fsc, PSCID from DC.ta, DC.iohgatp
        iosatp = fsc
        pscid_ = (ta >> _DC_PSCID_LSB) & _DC_PSCID_MAX
    else:
        pid = process_id
        if pid is None and tc & _DPE:  # step 11
            pid = 0
        if pid is None:  # step 12: first stage Bare
            pass
        elif not fsc >> _MODE_SHIFT:  # step 13: pdtp.MODE = Bare
            pass
        else:
            # step 14
            pc_ta, pc_fsc, pc_iohgatp, pc_msiptp, pc_mask, pc_pattern = cached_pc(
                io, device_id, pid, dc, access
            )
            # step 15: supervisor privilege needs PC.ta.ENS
            if priv and not pc_ta & _ENS:
                why = (
                    "P2IOVA",
                    "15",
                    "PC.ta.ENS",
                    "a supervisor-privilege request and PC.ta.ENS is 0",
                )
                raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
            # step 16
            iosatp = pc_fsc
            pscid_ = (pc_ta >> _PC_PSCID_LSB) & _PC_PSCID_MAX
            sum_ = pc_ta & _SUM != 0
            if gipc:
                # [GIPC] decision #5: a request that selected a PC uses PC.iohgatp
                iohgatp = pc_iohgatp
                hg_from = "PC"
                s1_at_spa = io.pc_fmt is not None and io.pc_fmt.s1_at_spa
                if pc_msiptp >= 0:  # [GIPC] 2024 64-byte PC: its MSI fields
                    msiptp, msi_mask, msi_pattern = pc_msiptp, pc_mask, pc_pattern
    gmode = iohgatp >> _MODE_SHIFT
    smode = iosatp >> _MODE_SHIFT
    sxl = 1 if tc & _SXL else 0
    if emit is not None:
        emit(
            Step(
                "P2IOVA",
                "17",
                f"first stage {_STAGE_NAME.get((sxl, smode), 'Bare')} (iosatp {iosatp:#x}), "
                f"G-stage {_G_NAME.get((io.gxl, gmode), 'Bare')} "
                f"(iohgatp {iohgatp:#x} from the {hg_from})",
            )
        )
    hg = iohgatp if gmode else 0
    tlb = io.iotlb
    hpm = io.hpm.active
    gscid = (iohgatp >> _GSCID_LSB) & _GSCID_MAX if gmode else HOST
    pscid = pscid_ if smode else NONE
    gctl = (1 if tc & _GADE else 0) | (2 if sxl else 0)
    if ats:  # §ATS_FAULTS: a PCIe ATS Translation Request computes permissions
        try:
            return ats_translate(
                io,
                device_id,
                process_id,
                iova,
                iosatp,
                hg,
                dc,
                priv,
                sum_,
                gctl,
                no_write,
                access,
                gscid,
                pscid,
                s1_at_spa,
                (msiptp, msi_mask, msi_pattern),
            )
        except Fault as f:
            f.cause = reported_cause(f.cause, access, no_write)
            raise
    # The IOTLB caches the result of steps 17-19 (never MSI translations)
    if (gmode or smode) and tlb.capacity:
        hit = tlb.hit(gscid, pscid, iova, access, priv, sum_)
        if hit is not None:
            if emit is not None:
                emit(Step("IOATC", "", f"IOTLB hit: {iova:#x} -> {hit[0]:#x}"))
            return hit
        io.ioatc.missed = True
        if hpm:
            io.count_event(Event.TLB_MISS, device_id, process_id, gscid, pscid)
    # step 17: first stage
    if smode:
        if hpm:
            io.count_event(Event.S_STAGE_WALK, device_id, process_id, gscid, pscid)
        geom = S_MODES[sxl][smode]
        gpa, s1pte, size = first_stage(
            io,
            iova,
            iosatp,
            geom,
            tc & _SBE != 0,
            0 if s1_at_spa else hg,
            access,
            priv,
            sum_,
            gctl,
            tc & _SADE != 0,
        )
        perms = s1pte & PERM_ALL
        g = s1pte & _G != 0
        pbmt = (s1pte >> _PBMT_LSB) & _PBMT_MAX if geom[2] == 8 else 0
        s1size = size
    else:
        gpa = iova
        perms = PERM_ALL
        g = False
        pbmt = 0
        size = io.bare_s[sxl]  # a Bare first stage
        s1pte = -1
        s1size = 0
    # step 18: MSI address translation
    if msiptp >> _MODE_SHIFT:
        msi = msi_translate(io, msiptp, msi_mask, msi_pattern, gpa, access, gscid)
        if emit is not None:
            emit(Step("P2IOVA", "18", "an MSI address" if msi else "not a virtual interrupt file"))
        if msi is not None:
            if msi[1]:
                if debug:  # §Debug: an MRIF-mode MSI PTE stops the debug translation
                    why = (
                        "DEBUG",
                        "",
                        "msipte.M",
                        "a debug translation of an address an MRIF-mode MSI PTE maps",
                    )
                    raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
                if io.params.mrif_by_iommu and access == _WRITE and data is not None:
                    record_mrif(io, gpa, data, msi[2], msi[3], msi[4])
            return msi[0], perms & (PERM_R | PERM_W), g, pbmt, min(size, 4096), msi  # step 20
    # step 19: second stage
    gpte = -1
    gsize = 1 << 64
    if hg:
        if hpm:
            io.count_event(Event.G_STAGE_WALK, device_id, process_id, gscid, pscid)
        spa, gpte, gsize = second_stage(io, gpa, hg, access, False, False, gctl)
        perms &= gpte
        if G_MODES[io.gxl][gmode][2] == 8:
            pbmt = pbmt or (gpte >> _PBMT_LSB) & _PBMT_MAX  # a non-zero first-stage PBMT overrides
        size = min(size, gsize)
    else:
        spa = gpa
        bare_g = io.bare_g[io.gxl]  # a Bare G-stage
        if size > bare_g:
            size = bare_g
    if msiptp >> _MODE_SHIFT:
        # step 18 found no interrupt file at gpa: the range reported and cached
        # must not cover one either (docs/translation.md)
        size = msi_free_size(gpa, size, msi_mask, msi_pattern)
    if (gmode or smode) and tlb.capacity:
        tlb.fill(
            gscid,
            pscid,
            g,
            iova,
            spa,
            size,
            s1pte,
            s1size if s1pte >= 0 else size,
            gpte,
            gpa,
            gsize if hg else size,
        )
    if emit is not None:
        emit(
            Step("P2IOVA", "20", f"translation complete: {iova:#x} -> GPA {gpa:#x} -> SPA {spa:#x}")
        )
    return spa, perms, g, pbmt, size, None  # step 20


_CROSSING: Final = (
    "REQUEST",
    "",
    "length",
    "the request's bytes cross a 4-KiB page boundary (malformed: PCIe never issues it)",
)


def _misaligned(access: int) -> Fault:
    """Read (4) or Write/AMO (6) address misaligned."""
    if access == _WRITE:
        return Fault(Cause.WRITE_ADDRESS_MISALIGNED, 0, _CROSSING)
    return Fault(Cause.READ_ADDRESS_MISALIGNED, 0, _CROSSING)


def _wide_device_id(io: "Iommu", device_id: int, mode: int) -> Tuple[str, str, str, str]:
    """Step 5: why ``device_id`` is too wide."""
    if device_id >> io.params.device_id_width:
        text = (
            f"device_id {device_id:#x} is wider than the {io.params.device_id_width} "
            "implemented bits"
        )
    else:
        text = f"device_id {device_id:#x} is wider than ddtp.iommu_mode {_MODE_NAME[mode]} supports"
    return ("P2IOVA", "5", "device_id", text)
