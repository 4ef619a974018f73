"""The API edge: enumerations and the request / response / fault-record types.

Everything here is a slotted dataclass or an enum; inside the model
structures travel as plain ints.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, Optional

from . import formats as F
from ._mypyc import mypyc_attr

__all__ = [
    "Access",
    "RequestKind",
    "Status",
    "Cause",
    "Ttyp",
    "Request",
    "Response",
    "FaultRecord",
    "PageRequest",
    "InvalidationRequest",
    "PageRequestGroupResponse",
]


class Access(enum.IntEnum):
    """Access type of a device request."""

    READ = 0
    #: A write or an atomic memory operation (AMO).
    WRITE = 1
    #: A read with execute intent.
    EXECUTE = 2


class RequestKind(enum.IntEnum):
    """Transaction type of a device request."""

    UNTRANSLATED = 0
    TRANSLATED = 1
    #: A PCIe ATS Translation Request.
    ATS_TRANSLATION = 2


class Status(enum.IntEnum):
    """Completion status returned to the requester."""

    SUCCESS = 0
    UNSUPPORTED_REQUEST = 1
    COMPLETER_ABORT = 2


class Cause(enum.IntEnum):
    """Fault-record ``CAUSE`` encodings (spec table "Fault record CAUSE field encodings")."""

    INSTRUCTION_ACCESS_FAULT = 1
    READ_ADDRESS_MISALIGNED = 4
    READ_ACCESS_FAULT = 5
    WRITE_ADDRESS_MISALIGNED = 6
    WRITE_ACCESS_FAULT = 7
    INSTRUCTION_PAGE_FAULT = 12
    READ_PAGE_FAULT = 13
    WRITE_PAGE_FAULT = 15
    INSTRUCTION_GUEST_PAGE_FAULT = 20
    READ_GUEST_PAGE_FAULT = 21
    WRITE_GUEST_PAGE_FAULT = 23
    ALL_INBOUND_TRANSACTIONS_DISALLOWED = 256
    DDT_ENTRY_LOAD_ACCESS_FAULT = 257
    DDT_ENTRY_NOT_VALID = 258
    DDT_ENTRY_MISCONFIGURED = 259
    TRANSACTION_TYPE_DISALLOWED = 260
    MSI_PTE_LOAD_ACCESS_FAULT = 261
    MSI_PTE_NOT_VALID = 262
    MSI_PTE_MISCONFIGURED = 263
    MRIF_ACCESS_FAULT = 264
    PDT_ENTRY_LOAD_ACCESS_FAULT = 265
    PDT_ENTRY_NOT_VALID = 266
    PDT_ENTRY_MISCONFIGURED = 267
    DDT_DATA_CORRUPTION = 268
    PDT_DATA_CORRUPTION = 269
    MSI_PT_DATA_CORRUPTION = 270
    MSI_MRIF_DATA_CORRUPTION = 271
    INTERNAL_DATAPATH_ERROR = 272
    IOMMU_MSI_WRITE_ACCESS_FAULT = 273
    PT_DATA_CORRUPTION = 274

    @property
    def description(self) -> str:
        """The spec's description of the cause."""
        return _CAUSE_TEXT[self]

    @property
    def reported_if_dtf(self) -> bool:
        """Whether the cause is still reported when ``DC.tc.DTF`` is 1."""
        return self in _REPORTED_IF_DTF


_CAUSE_TEXT = {
    Cause.INSTRUCTION_ACCESS_FAULT: "Instruction access fault",
    Cause.READ_ADDRESS_MISALIGNED: "Read address misaligned",
    Cause.READ_ACCESS_FAULT: "Read access fault",
    Cause.WRITE_ADDRESS_MISALIGNED: "Write/AMO address misaligned",
    Cause.WRITE_ACCESS_FAULT: "Write/AMO access fault",
    Cause.INSTRUCTION_PAGE_FAULT: "Instruction page fault",
    Cause.READ_PAGE_FAULT: "Read page fault",
    Cause.WRITE_PAGE_FAULT: "Write/AMO page fault",
    Cause.INSTRUCTION_GUEST_PAGE_FAULT: "Instruction guest page fault",
    Cause.READ_GUEST_PAGE_FAULT: "Read guest-page fault",
    Cause.WRITE_GUEST_PAGE_FAULT: "Write/AMO guest-page fault",
    Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED: "All inbound transactions disallowed",
    Cause.DDT_ENTRY_LOAD_ACCESS_FAULT: "DDT entry load access fault",
    Cause.DDT_ENTRY_NOT_VALID: "DDT entry not valid",
    Cause.DDT_ENTRY_MISCONFIGURED: "DDT entry misconfigured",
    Cause.TRANSACTION_TYPE_DISALLOWED: "Transaction type disallowed",
    Cause.MSI_PTE_LOAD_ACCESS_FAULT: "MSI PTE load access fault",
    Cause.MSI_PTE_NOT_VALID: "MSI PTE not valid",
    Cause.MSI_PTE_MISCONFIGURED: "MSI PTE misconfigured",
    Cause.MRIF_ACCESS_FAULT: "MRIF access fault",
    Cause.PDT_ENTRY_LOAD_ACCESS_FAULT: "PDT entry load access fault",
    Cause.PDT_ENTRY_NOT_VALID: "PDT entry not valid",
    Cause.PDT_ENTRY_MISCONFIGURED: "PDT entry misconfigured",
    Cause.DDT_DATA_CORRUPTION: "DDT data corruption",
    Cause.PDT_DATA_CORRUPTION: "PDT data corruption",
    Cause.MSI_PT_DATA_CORRUPTION: "MSI PT data corruption",
    Cause.MSI_MRIF_DATA_CORRUPTION: "MSI MRIF data corruption",
    Cause.INTERNAL_DATAPATH_ERROR: "Internal data path error",
    Cause.IOMMU_MSI_WRITE_ACCESS_FAULT: "IOMMU MSI write access fault",
    Cause.PT_DATA_CORRUPTION: "First/second-stage PT data corruption",
}

# "Reported if DTF is 1?" column of the cause table.
_REPORTED_IF_DTF = frozenset(
    {
        Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED,
        Cause.DDT_ENTRY_LOAD_ACCESS_FAULT,
        Cause.DDT_ENTRY_NOT_VALID,
        Cause.DDT_ENTRY_MISCONFIGURED,
        Cause.DDT_DATA_CORRUPTION,
        Cause.INTERNAL_DATAPATH_ERROR,
        Cause.IOMMU_MSI_WRITE_ACCESS_FAULT,
    }
)


class Ttyp(enum.IntEnum):
    """Fault-record ``TTYP`` encodings."""

    NONE = 0
    UNTRANSLATED_EXECUTE = 1
    UNTRANSLATED_READ = 2
    UNTRANSLATED_WRITE = 3
    TRANSLATED_EXECUTE = 5
    TRANSLATED_READ = 6
    TRANSLATED_WRITE = 7
    ATS_TRANSLATION = 8
    PCIE_MESSAGE = 9


def _hex(v: Optional[int]) -> str:
    return "None" if v is None else f"{v:#x}"


@mypyc_attr(native_class=False)  # compiled build: translate() checks the fields itself
@dataclass(slots=True)
class Request:
    """An inbound device transaction.

    ``process_id`` is an int when the request carries a valid process_id
    (PCIe PASID), else None.  ``priv`` requests supervisor privilege and is
    meaningful only with a process_id.  ``no_write`` is the ATS Translation
    Request "no write" flag.  ``data`` is the 32-bit write data of a write;
    the model needs it only to record an MSI into an MRIF itself
    (``IommuParams.mrif_by_iommu``).  ``cxl`` is the Root Port's indication
    that the requester is a CXL type 1 or type 2 device (it decides the
    CXL.io bit of an ATS translation completion, ``Response.cxl_io``).
    """

    device_id: int
    addr: int
    access: Access = Access.READ
    process_id: Optional[int] = None
    priv: bool = False
    kind: RequestKind = RequestKind.UNTRANSLATED
    length: int = 8
    no_write: bool = False
    data: Optional[int] = None
    cxl: bool = False

    def __repr__(self) -> str:
        return (
            f"Request(device_id={self.device_id:#x}, addr={_hex(self.addr)}, "
            f"access={Access(self.access).name}, process_id={_hex(self.process_id)}, "
            f"priv={self.priv}, kind={RequestKind(self.kind).name}, length={self.length}, "
            f"no_write={self.no_write}, data={_hex(self.data)}, cxl={self.cxl})"
        )


@dataclass(slots=True)
class FaultRecord:
    """A fault/event record, as the fault queue holds it (spec "Fault-queue record")."""

    cause: int
    ttyp: int
    iotval: int = 0
    iotval2: int = 0
    device_id: int = 0
    process_id: int = 0
    pv: bool = False
    priv: bool = False

    def to_bytes(self, big_endian: bool = False) -> bytes:
        """The 32-byte in-memory record in the given byte order (per doubleword)."""
        d0 = F.FAULT_RECORD0.encode(
            CAUSE=self.cause,
            PID=self.process_id,
            PV=int(self.pv),
            PRIV=int(self.priv),
            TTYP=self.ttyp,
            DID=self.device_id,
        )
        order: Literal["little", "big"] = "big" if big_endian else "little"
        return b"".join(
            v.to_bytes(8, order) for v in (d0, 0, self.iotval & ((1 << 64) - 1), self.iotval2)
        )

    @classmethod
    def from_bytes(cls, data: bytes, big_endian: bool = False) -> "FaultRecord":
        """Decode a 32-byte in-memory record."""
        if len(data) != F.FAULT_RECORD_SIZE:
            raise ValueError("a fault record is 32 bytes")
        order: Literal["little", "big"] = "big" if big_endian else "little"
        d0, _, iotval, iotval2 = (int.from_bytes(data[i : i + 8], order) for i in range(0, 32, 8))
        R = F.FAULT_RECORD0
        return cls(
            cause=R.CAUSE.get(d0),
            ttyp=R.TTYP.get(d0),
            iotval=iotval,
            iotval2=iotval2,
            device_id=R.DID.get(d0),
            process_id=R.PID.get(d0),
            pv=bool(R.PV.get(d0)),
            priv=bool(R.PRIV.get(d0)),
        )

    def __repr__(self) -> str:
        try:
            cause = f"{Cause(self.cause).name}({self.cause})"
        except ValueError:
            cause = str(self.cause)
        try:
            ttyp = Ttyp(self.ttyp).name
        except ValueError:
            ttyp = str(self.ttyp)
        return (
            f"FaultRecord(cause={cause}, ttyp={ttyp}, iotval={self.iotval:#x}, "
            f"iotval2={self.iotval2:#x}, device_id={self.device_id:#x}, "
            f"process_id={self.process_id:#x}, pv={self.pv}, priv={self.priv})"
        )


@dataclass(slots=True)
class Response:
    """The IOMMU's answer to a :class:`Request`.

    ``addr`` is the translated address (an SPA; a GPA for ATS completions
    when ``DC.tc.T2GPA`` is 1).  ``fault`` is the fault the IOMMU detected,
    whether or not it is reported to software; ``reported`` says whether
    the spec asks for it to be reported through the fault queue (before
    ``DC.tc.DTF`` and queue state are applied by the queue logic).
    ``r``/``w``/``x``/``u``/``g``/``priv``/``n``/``pbmt``/``s``/``ama`` are the
    permissions and attributes of the translation (the ATS completion
    fields for ATS translation requests); ``size`` is the size in bytes of
    the translation range.  ``is_msi`` marks an address recognised as a
    virtual interrupt file; ``is_mrif`` adds the MRIF destination
    (``mrif_addr``), the notice MSI address (``notice_addr``) and ``nid``.
    ``rcid``/``mcid`` are the QoS IDs given to the IO bridge.  ``cxl_io`` is
    the CXL.io bit of an ATS translation completion (always False for a
    request whose ``cxl`` is False, and for other responses).
    """

    status: Status
    addr: int = 0
    fault: Optional[FaultRecord] = None
    reported: bool = False
    r: bool = False
    w: bool = False
    x: bool = False
    u: bool = False
    g: bool = False
    priv: bool = False
    n: bool = False
    pbmt: int = 0
    s: bool = False
    ama: int = 0
    size: int = 4096
    is_msi: bool = False
    is_mrif: bool = False
    mrif_addr: int = 0
    notice_addr: int = 0
    nid: int = 0
    rcid: int = 0
    mcid: int = 0
    cxl_io: bool = False

    # Written out (the dataclass keeps it): the compiled build compiles it, where
    # a generated __init__ would run interpreted on every response.
    def __init__(
        self,
        status: Status,
        addr: int = 0,
        fault: Optional[FaultRecord] = None,
        reported: bool = False,
        r: bool = False,
        w: bool = False,
        x: bool = False,
        u: bool = False,
        g: bool = False,
        priv: bool = False,
        n: bool = False,
        pbmt: int = 0,
        s: bool = False,
        ama: int = 0,
        size: int = 4096,
        is_msi: bool = False,
        is_mrif: bool = False,
        mrif_addr: int = 0,
        notice_addr: int = 0,
        nid: int = 0,
        rcid: int = 0,
        mcid: int = 0,
        cxl_io: bool = False,
    ) -> None:
        self.status = status
        self.addr = addr
        self.fault = fault
        self.reported = reported
        self.r = r
        self.w = w
        self.x = x
        self.u = u
        self.g = g
        self.priv = priv
        self.n = n
        self.pbmt = pbmt
        self.s = s
        self.ama = ama
        self.size = size
        self.is_msi = is_msi
        self.is_mrif = is_mrif
        self.mrif_addr = mrif_addr
        self.notice_addr = notice_addr
        self.nid = nid
        self.rcid = rcid
        self.mcid = mcid
        self.cxl_io = cxl_io

    def __repr__(self) -> str:
        parts = [f"status={Status(self.status).name}", f"addr={self.addr:#x}"]
        if self.fault is not None:
            parts.append(f"fault={self.fault!r}")
            parts.append(f"reported={self.reported}")
        perms = "".join(c for c, on in (("r", self.r), ("w", self.w), ("x", self.x)) if on)
        parts.append(f"perms={perms or '-'}")
        for name in ("u", "g", "priv", "n", "s", "is_msi", "is_mrif", "cxl_io"):
            if getattr(self, name):
                parts.append(f"{name}=True")
        if self.pbmt:
            parts.append(f"pbmt={self.pbmt}")
        parts.append(f"size={self.size:#x}")
        if self.is_mrif:
            parts.append(
                f"mrif_addr={self.mrif_addr:#x}, notice_addr={self.notice_addr:#x}, "
                f"nid={self.nid:#x}"
            )
        return "Response(" + ", ".join(parts) + ")"


def _bare_allocation(cls: type) -> bool:
    """Whether ``object.__new__`` allocates a ``cls`` without ``__init__`` (a Response
    interpreted: yes; the compiled build's native class refuses it)."""
    try:
        object.__new__(cls)
    except TypeError:
        return False
    return True


_BARE_RESPONSES: Final = _bare_allocation(Response)
_new: Final = object.__new__
_SUCCESS: Final = Status.SUCCESS  # a module constant: an Enum attribute lookup costs more


def success_response(
    addr: int,
    r: bool,
    w: bool,
    x: bool,
    g: bool,
    priv: bool,
    pbmt: int,
    s: bool,
    size: int,
    rcid: int,
    mcid: int,
) -> Response:
    """The Success response of a translated Untranslated or Translated request:
    ``Response(Status.SUCCESS, addr, r=r, w=w, x=x, g=g, priv=priv, pbmt=pbmt, s=s,
    size=size, rcid=rcid, mcid=mcid)``, built for the hot path.

    Interpreted, the keyword binding and default filling of ``__init__`` cost
    more than the 23 stores (0.7 us against 0.25 us), so the fields are stored
    into a bare instance; the compiled build calls its native ``__init__``.
    """
    if not _BARE_RESPONSES:
        return Response(
            _SUCCESS, addr, None, False, r, w, x, False, g, priv, False, pbmt, s, 0, size,
            False, False, 0, 0, 0, rcid, mcid, False,
        )  # fmt: skip
    rsp: Response = _new(Response)
    rsp.status = _SUCCESS
    rsp.addr = addr
    rsp.fault = None
    rsp.reported = False
    rsp.r = r
    rsp.w = w
    rsp.x = x
    rsp.u = False
    rsp.g = g
    rsp.priv = priv
    rsp.n = False
    rsp.pbmt = pbmt
    rsp.s = s
    rsp.ama = 0
    rsp.size = size
    rsp.is_msi = False
    rsp.is_mrif = False
    rsp.mrif_addr = 0
    rsp.notice_addr = 0
    rsp.nid = 0
    rsp.rcid = rcid
    rsp.mcid = mcid
    rsp.cxl_io = False
    return rsp


@dataclass(slots=True)
class PageRequest:
    """A PCIe PRI "Page Request" message (or a "Stop Marker": L=1, W=0, R=0 with a PASID)."""

    device_id: int
    addr: int
    prg_index: int = 0
    last: bool = False
    read: bool = True
    write: bool = False
    process_id: Optional[int] = None
    priv: bool = False
    exec_req: bool = False

    def __repr__(self) -> str:
        return (
            f"PageRequest(device_id={self.device_id:#x}, addr={self.addr:#x}, "
            f"prg_index={self.prg_index:#x}, last={self.last}, read={self.read}, "
            f"write={self.write}, process_id={_hex(self.process_id)}, priv={self.priv}, "
            f"exec_req={self.exec_req})"
        )


@dataclass(slots=True)
class InvalidationRequest:
    """An outbound PCIe ATS "Invalidation Request" message (from ``ATS.INVAL``).

    ``device_id`` is the destination Requester ID, ``segment`` the
    destination segment (None without DSV), ``pasid`` the PASID prefix (None
    without one), ``global_`` the Global Invalidate bit, ``addr`` the
    untranslated address and ``s`` the size bit of the PCIe range encoding,
    ``itag`` the invalidation tag.
    """

    device_id: int
    addr: int
    s: bool = False
    global_: bool = False
    pasid: Optional[int] = None
    segment: Optional[int] = None
    itag: int = 0

    def __repr__(self) -> str:
        return (
            f"InvalidationRequest(device_id={self.device_id:#x}, addr={self.addr:#x}, s={self.s}, "
            f"global_={self.global_}, pasid={_hex(self.pasid)}, segment={_hex(self.segment)}, "
            f"itag={self.itag})"
        )


@dataclass(slots=True)
class PageRequestGroupResponse:
    """An outbound PCIe "Page Request Group Response" message.

    ``response_code``: 0 Success, 1 Invalid Request, 0xF Response Failure.
    """

    device_id: int
    prg_index: int
    response_code: int
    pasid: Optional[int] = None
    segment: Optional[int] = None

    def __repr__(self) -> str:
        return (
            f"PageRequestGroupResponse(device_id={self.device_id:#x}, "
            f"prg_index={self.prg_index:#x}, "
            f"response_code={self.response_code:#x}, pasid={_hex(self.pasid)}, "
            f"segment={_hex(self.segment)})"
        )
