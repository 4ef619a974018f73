"""PCIe ATS and PRI: translation requests, page requests, invalidation completions.

Spec sections "PCIe ATS translation request handling" (ATS_FAULTS), "PCIe ATS
Page Request handling" (ATS_PRI), the ``ATS.INVAL`` / ``ATS.PRGR`` commands
and the page-request queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Final, List, Literal, Optional, Set, Tuple

from . import formats as F
from ._fault import Fault, guest_page_fault, page_fault
from ._mypyc import mypyc_attr
from .ddt import DC
from .hpm import Event
from .ioatc import cached_dc
from .msi import msi_free_size, msi_translate
from .paging import S_MODES, first_stage, second_stage
from .types import (
    Access,
    Cause,
    FaultRecord,
    PageRequest,
    PageRequestGroupResponse,
    Ttyp,
)

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu
    from .translate import Result

__all__ = [
    "ats_translate",
    "cxl_io",
    "reported_cause",
    "encode_range",
    "PrgResponseCode",
    "MessageCode",
    "page_request",
    "InvalidationTracker",
]

_TC: Final = F.DC_TC
_R: Final = F.PTE.R.mask
_W: Final = F.PTE.W.mask
_X: Final = F.PTE.X.mask
_D: Final = F.PTE.D.mask
_U: Final = F.PTE.U.mask
_G: Final = F.PTE.G.mask
_RWX: Final = _R | _W | _X
_PBMT: Final = F.PTE.PBMT
_PBMT_NC, _PBMT_IO = 1, 2  # Svpbmt memory types (0 = PMA, 3 reserved)
_MODE_SHIFT: Final = F.IOHGATP.MODE.lsb  # MODE of iohgatp / iosatp / pdtp / msiptp
_GCTL_GADE: Final = 1  # bit 0 of paging's gctl: DC.tc.GADE
# the walk runs as a read; faults are reported for the request's access type
_AS_REQUESTED: Dict[int, Dict[Cause, Cause]] = {
    Access.WRITE: {
        Cause.READ_ACCESS_FAULT: Cause.WRITE_ACCESS_FAULT,
        Cause.READ_PAGE_FAULT: Cause.WRITE_PAGE_FAULT,
        Cause.READ_GUEST_PAGE_FAULT: Cause.WRITE_GUEST_PAGE_FAULT,
    },
    Access.EXECUTE: {
        Cause.READ_ACCESS_FAULT: Cause.INSTRUCTION_ACCESS_FAULT,
        Cause.READ_PAGE_FAULT: Cause.INSTRUCTION_PAGE_FAULT,
        Cause.READ_GUEST_PAGE_FAULT: Cause.INSTRUCTION_GUEST_PAGE_FAULT,
    },
}


class PrgResponseCode:
    """ "Page Request Group Response" response codes (PCIe)."""

    SUCCESS: Final = 0x0
    INVALID_REQUEST: Final = 0x1
    RESPONSE_FAILURE: Final = 0xF


class MessageCode:
    """PCIe message codes reported in ``iotval`` for TTYP 9 (PCIe Message Request)."""

    INVALIDATE_REQUEST: Final = 0x01
    INVALIDATE_COMPLETION: Final = 0x02
    PAGE_REQUEST: Final = 0x04
    PRG_RESPONSE: Final = 0x05


def encode_range(addr: int, size: int) -> Tuple[int, bool]:
    """PCIe translation-completion address with the S bit and NAPOT size encoding."""
    if size <= 4096:
        return addr & ~0xFFF, False
    return (addr & ~(size - 1)) | (((size >> 1) - 1) & ~0xFFF), True


def reported_cause(cause: int, access: int, no_write: bool) -> int:
    """The cause of an ATS walk's fault, for the access the request asked for.

    The walk reads; a read access / page / guest-page fault is reported as
    execute (Execute Requested), else write (No Write = 0), else read.
    """
    asked = (
        Access.EXECUTE if access == Access.EXECUTE else (Access.READ if no_write else Access.WRITE)
    )
    remap = _AS_REQUESTED.get(asked)
    if remap is None:
        return cause
    return remap.get(Cause(cause), cause)


def cxl_io(io: "Iommu", msi: bool, pbmt: int) -> bool:
    """§ATS_FAULTS: the CXL.io bit of a Success completion to a CXL type 1 or 2 device.

    (It is 0 for a device that is not a CXL device: the caller's
    ``Request.cxl`` test.)  1 for an MSI address, else 1 when
    ``DC.tc.T2GPA`` is 1 (``io.t2gpa``, set at step 7), else 1 for memory
    type NC or IO (Svpbmt); every other case (PMA, no Svpbmt, completions
    with R = W = 0) is UNSPECIFIED by the spec:
    ``IommuParams.cxl_io_unspecified``.
    """
    if msi or io.t2gpa or pbmt == _PBMT_NC or pbmt == _PBMT_IO:
        return True
    return io.params.cxl_io_unspecified


def ats_translate(
    io: "Iommu",
    device_id: int,
    process_id: Optional[int],
    iova: int,
    iosatp: int,
    hg: int,
    dc: DC,
    priv: bool,
    sum_: bool,
    gctl: int,
    no_write: bool,
    access: int,
    gscid: int,
    pscid: int,
    s1_at_spa: bool = False,
    msi_fields: Tuple[int, int, int] = (0, 0, 0),
) -> "Result":
    """Steps 17-19 for a PCIe ATS Translation Request (§ATS_FAULTS).

    Faults are raised as the read walk finds them; the caller reports them
    with :func:`reported_cause`.

    The walk runs as a read: each stage's leaf must grant the read (the
    U-bit rules of §ATS_FAULTS are those of a read) before its A bit is set,
    as the Privileged spec orders PTW steps 5 and 7; a denial ends in
    "Success with R = W = 0" (by the caller).  Permissions are those of both
    stages: R; W if requested (``no_write`` = 0) and granted by both stages,
    with D set in each leaf; X if requested (``access`` = EXECUTE) and R is
    granted.  A leaf that grants W with D = 0 when W is requested and D
    cannot be set (SADE / GADE = 0) is a Write/AMO (guest-)page fault: R = W
    = 0 (:func:`_write_perm`).  With ``no_write`` = 1, W is reported when every stage grants
    it with D already set (``IommuParams.ats_no_write_reports_w``).  With
    ``DC.tc.T2GPA`` the completion carries the GPA.  A successful, non-MSI
    translation is cached in the IOTLB when ``IommuParams.ats_fills_iotlb``.
    The range never covers a virtual interrupt file other than the one
    requested (:func:`~riscv_iommu.msi.msi_free_size`).
    """
    if io.hpm.active:  # the walks this request makes (events 7 and 8)
        if iosatp >> _MODE_SHIFT:
            io.count_event(Event.S_STAGE_WALK, device_id, process_id, gscid, pscid)
        if hg:
            io.count_event(Event.G_STAGE_WALK, device_id, process_id, gscid, pscid)
    tc = dc[0]
    msiptp, msi_mask, msi_pattern = msi_fields  # the DC's, or [GIPC] the PC's
    hg_s1 = 0 if s1_at_spa else hg  # [GIPC] 2024: first-stage tables at SPAs
    sxl = 1 if tc & _TC.SXL.mask else 0
    big_s = bool(tc & _TC.SBE.mask)
    sade = bool(tc & _TC.SADE.mask)
    smode = iosatp >> _MODE_SHIFT
    size = io.bare_s[sxl]  # a Bare first stage
    perms = _RWX
    g = False
    pbmt = 0
    s1 = -1
    s1size = size
    geom = S_MODES[sxl].get(smode)
    if geom is not None:
        # PTW step 5 (a read, with the request's privilege and SUM) before step 7 (A)
        gpa, s1, size = first_stage(
            io, iova, iosatp, geom, big_s, hg_s1, Access.READ, priv, sum_, gctl, sade
        )
        s1size = size
        if not no_write and s1 & _W and not s1 & _D and not sade:
            # PTW step 7 for the store No Write = 0 asks for (docs/ats.md): "If SADE is 0,
            # the IOMMU causes a page-fault ... if the memory access is a store and the D
            # bit is 0" -> 15, Success with R = W = 0 (riscv-non-isa/riscv-iommu#675)
            why = (
                "PTW",
                "7",
                "D",
                "D=0 in a writable leaf and DC.tc.SADE=0: no hardware A/D update (ATS store)",
            )
            raise page_fault(Access.WRITE, why)
        perms = s1 & _RWX
        if priv and s1 & _U:
            perms &= ~_X  # supervisor execute of a user page: never, whatever SUM
        g = bool(s1 & _G)
        pbmt = _PBMT.get(s1) if geom[2] == 8 else 0
    else:
        gpa = iova
    t2gpa = bool(tc & _TC.T2GPA.mask)
    walk = (io, iova, iosatp, geom, big_s, hg_s1, priv, sum_, gctl, sade, gpa)
    # step 18: MSI addresses (MRIF pages answer with U = 1, "untranslated only")
    if msiptp >> _MODE_SHIFT:
        msi = msi_translate(io, msiptp, msi_mask, msi_pattern, gpa, Access.READ, gscid)
        if msi is not None:
            # the MSI PTE acts as a G-stage leaf with R = W = U = 1 (MSI_TRANS step 15)
            perms = _write_perm(walk, perms & (_R | _W), s1, -1, 0, no_write)
            addr = gpa if t2gpa else msi[0]
            return addr, perms, False, 0, 4096, msi
    gp = -1
    gsize = size
    if hg:
        # the G-stage leaf of the final GPA is read only once the first stage granted R
        spa, gp, gsize = second_stage(io, gpa, hg, Access.READ, False, False, gctl)
        perms &= gp
        pbmt = pbmt or _PBMT.get(gp)
        size = min(size, gsize)
    else:
        spa = gpa
        size = min(size, io.bare_g[io.gxl])  # a Bare G-stage
    if access != Access.EXECUTE:
        perms &= ~_X
    perms = _write_perm(walk, perms, s1, gp, hg, no_write)
    if msiptp >> _MODE_SHIFT:  # no interrupt file inside the range (docs/ats.md)
        size = msi_free_size(gpa, size, msi_mask, msi_pattern)
    if io.params.ats_fills_iotlb and (geom is not None or hg):
        io.iotlb.fill(
            gscid,
            pscid,
            g,
            iova,
            spa,
            size,
            s1,
            s1size if geom is not None else size,
            gp,
            gpa,
            gsize if hg else size,
        )
    return (gpa if t2gpa else spa), perms, g, pbmt, size, None


_Walk = Tuple[Any, ...]


def _write_perm(walk: _Walk, perms: int, s1: int, gp: int, hg: int, no_write: bool) -> int:
    """W of the completion, setting D where a write is requested (A/D rules of PTW step 7).

    ``s1`` / ``gp`` are the stages' leaves (-1 for a Bare stage, or a G-stage
    replaced by an MSI PTE, which has no A/D).  No Write = 0 asks for a
    store: a leaf that grants W with D = 0 needs D.  When the G-stage leaf's
    D cannot be set ("If GADE is 0, the IOMMU causes a guest-page-fault ...
    if the memory access is a store and the D bit is 0") this raises 23,
    which the caller answers "Success with R = W = 0", not reported
    (§ATS_FAULTS); the first-stage leaf's check (SADE, 15) was made when it
    was read.  Only then, and only when every stage grants W, is D set in
    each leaf that needs it: no D for a W the completion does not grant.  A
    guest-page fault on the implicit write of a first-stage leaf is raised
    the same way, before anything is written; access faults and poison on an
    update are raised too (Completer Abort).  With No Write = 1 nothing is
    written: W is reported when every leaf has W and D
    (``IommuParams.ats_no_write_reports_w``), else 0.
    """
    # perms has R here: both walks were reads that each leaf granted
    s1_clean = s1 >= 0 and s1 & _W and not s1 & _D
    g_clean = gp >= 0 and gp & _W and not gp & _D
    if no_write:
        if walk[0].params.ats_no_write_reports_w and not s1_clean and not g_clean:
            return perms
        return perms & ~_W
    io, iova, iosatp, geom, big_s, hg_s1, priv, sum_, gctl, sade, gpa = walk
    if g_clean and not gctl & _GCTL_GADE:  # PTW step 7 of the G-stage leaf, GADE = 0
        why = (
            "PTW-G",
            "7",
            "D",
            "D=0 in a writable G-stage leaf and DC.tc.GADE=0: no hardware A/D update",
        )
        raise guest_page_fault(Access.WRITE, gpa, False, False, why)
    if not perms & _W or not (s1_clean or g_clean):
        return perms  # W denied by a stage (no store: no D), or nothing to update
    if s1_clean:  # PTW step 7 (a guest-page fault on its implicit write stops here)
        first_stage(io, iova, iosatp, geom, big_s, hg_s1, Access.WRITE, priv, sum_, gctl, sade)
    if g_clean:
        second_stage(io, gpa, hg, Access.WRITE, False, False, gctl)
    return perms


@mypyc_attr(native_class=False)  # Iommu.snapshot copies its attributes (vars)
class InvalidationTracker:
    """Outstanding ATS Invalidation Requests (ITAGs), completions and timeouts."""

    def __init__(self, timeout: int) -> None:
        self.timeout = timeout
        self.now = 0
        #: itag -> [device_id, issue time, completions expected (0 = unknown), received]
        self.outstanding: Dict[int, List[int]] = {}
        #: ITAGs that timed out since the last IOFENCE.C reported it (at most
        #: the 32 ITAGs: an ITAG that times out again is already here)
        self.timed_out: Set[int] = set()

    def free_itag(self) -> Optional[int]:
        """A free ITAG, or None when all 32 are in use."""
        for itag in range(32):
            if itag not in self.outstanding:
                return itag
        return None

    def issue(self, itag: int, device_id: int) -> None:
        """An Invalidation Request went out with ``itag``."""
        self.outstanding[itag] = [device_id, self.now, 0, 0]

    def complete(self, device_id: int, itag_vector: int, cc: int) -> int:
        """An Invalidation Completion; returns how many requests it completed."""
        done = 0
        for itag in range(32):
            if not itag_vector >> itag & 1:
                continue
            entry = self.outstanding.get(itag)
            if entry is None or entry[0] != device_id:
                continue  # unknown or stale ITAG: the completion is discarded
            entry[2] = entry[2] or (cc or 8)  # CC = 0 means 8 completions
            entry[3] += 1
            if entry[3] >= entry[2]:
                del self.outstanding[itag]
                done += 1
        return done

    def advance(self, cycles: int) -> None:
        """Advance time; requests older than the timeout time out."""
        self.now += cycles
        if self.timeout:
            for itag, entry in list(self.outstanding.items()):
                if self.now - entry[1] >= self.timeout:
                    self.expire(itag)

    def expire(self, itag: int) -> None:
        """Declare ``itag`` timed out."""
        del self.outstanding[itag]
        self.timed_out.add(itag)


def page_request(io: "Iommu", msg: PageRequest) -> Optional[PageRequestGroupResponse]:
    """§ATS_PRI: queue a "Page Request" / "Stop Marker" or answer it.

    Returns the "Page Request Group Response" the IOMMU generated itself (also
    sent through ``on_ats_message``), or None.
    """
    stop_marker = msg.last and not msg.read and not msg.write and msg.process_id is not None
    needs_response = msg.last and not stop_marker
    pid = msg.process_id
    rec_pid = pid if pid is not None else 0
    prpr = False

    def respond(code: int, with_pasid: bool) -> Optional[PageRequestGroupResponse]:
        if not needs_response:
            return None  # L = 0 and Stop Markers are silently discarded
        rsp = PageRequestGroupResponse(
            device_id=msg.device_id,
            prg_index=msg.prg_index,
            response_code=code,
            pasid=pid if with_pasid else None,
        )
        io.send_ats_message(rsp)
        return rsp

    io.dtf = False
    try:
        mode = io.ddtp_mode
        if mode == 0:
            why = ("ATS_PRI", "", "ddtp.iommu_mode", "ddtp.iommu_mode is Off")
            raise Fault(Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED, 0, why)
        if mode == 1 or not io.device_id_fits(msg.device_id):  # Bare, or device_id too wide
            why = (
                "ATS_PRI",
                "",
                "device_id",
                "ddtp.iommu_mode is Bare" if mode == 1 else "device_id too wide for the DDT",
            )
            raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
        dc = cached_dc(io, msg.device_id)
        tc = dc[0]
        io.dtf = bool(tc & _TC.DTF.mask)
        prpr = bool(tc & _TC.PRPR.mask)
        if not tc & _TC.EN_ATS.mask or not tc & _TC.EN_PRI.mask:
            fieldname = "DC.tc.EN_ATS" if not tc & _TC.EN_ATS.mask else "DC.tc.EN_PRI"
            why = ("ATS_PRI", "", fieldname, f"a Page Request and {fieldname} is 0")
            raise Fault(Cause.TRANSACTION_TYPE_DISALLOWED, 0, why)
    except Fault as f:
        rec = FaultRecord(
            cause=f.cause,
            ttyp=Ttyp.PCIE_MESSAGE,
            iotval=MessageCode.PAGE_REQUEST,
            device_id=msg.device_id,
            process_id=rec_pid,
            pv=pid is not None,
            priv=bool(msg.priv) and pid is not None,
        )
        io.fault_detected(f, rec)
        if f.cause == Cause.TRANSACTION_TYPE_DISALLOWED:
            return respond(PrgResponseCode.INVALID_REQUEST, prpr and pid is not None)
        return respond(PrgResponseCode.RESPONSE_FAILURE, pid is not None)
    pq = io.pq
    if not pq.on or pq.csr & pq.MF:  # PQ off, or pqmf: Response Failure, nothing logged
        return respond(PrgResponseCode.RESPONSE_FAILURE, pid is not None)
    R = F.PQ_RECORD0
    d0 = R.DID.put(0, msg.device_id)
    if pid is not None:
        d0 |= (pid << R.PID.lsb) | R.PV.mask
        d0 |= (R.PRIV.mask if msg.priv else 0) | (R.EXEC.mask if msg.exec_req else 0)
    d1 = F.PQ_PAYLOAD.encode(
        R=int(msg.read), W=int(msg.write), L=int(msg.last), PRGI=msg.prg_index, ADDR=msg.addr >> 12
    )
    order: Literal["little", "big"] = "big" if io.be else "little"
    queued = pq.push(d0.to_bytes(8, order) + d1.to_bytes(8, order), msg)
    if queued is None:  # full (pqof now set) or pqof already set: Success, nothing logged
        return respond(PrgResponseCode.SUCCESS, prpr and pid is not None)
    if queued is False:  # the record's write faulted: pqmf, Response Failure
        return respond(PrgResponseCode.RESPONSE_FAILURE, pid is not None)
    return None
