"""Field tables: the single source of every bit position.

Each in-memory structure and register of the RISC-V IOMMU specification is
described once here as a :class:`Layout` (a named list of fields with their
least-significant bit and width).  Masks, shifts, reserved-bit masks and the
decode/encode helpers all derive from these tables; the model never spells a
bit position anywhere else.

Names follow the specification (``DC.tc.PDTV``, ``iohgatp.GSCID`` ...).
"""

from __future__ import annotations

from typing import Dict, Iterator, Mapping, Tuple

__all__ = [
    "Field",
    "Layout",
    "DDTE",
    "DC_TC",
    "IOHGATP",
    "DC_TA",
    "IOSATP",
    "PDTP",
    "MSIPTP",
    "MSI_ADDR_MASK",
    "MSI_ADDR_PATTERN",
    "PDTE",
    "PC_TA",
    "PC_FSC",
    "PTE",
    "PTE32",
    "MSIPTE0",
    "MSIPTE_MRIF0",
    "MSIPTE_MRIF1",
    "FAULT_RECORD0",
    "CAPABILITIES",
    "FCTL",
    "DDTP",
    "ALL_LAYOUTS",
    "DC_BASE_SIZE",
    "DC_EXT_SIZE",
    "PC_SIZE",
    "MSIPTE_SIZE",
    "FAULT_RECORD_SIZE",
]


class Field:
    """One field of a layout: ``lsb`` and ``width`` in bits."""

    __slots__ = ("name", "lsb", "width", "mask", "max")

    def __init__(self, name: str, lsb: int, width: int) -> None:
        self.name = name
        self.lsb = lsb
        self.width = width
        self.max = (1 << width) - 1
        self.mask = self.max << lsb

    def get(self, value: int) -> int:
        """Extract this field from ``value``."""
        return (value >> self.lsb) & self.max

    def put(self, value: int, field: int) -> int:
        """Return ``value`` with this field replaced by ``field``."""
        if field < 0 or field > self.max:
            raise ValueError(f"{self.name}: {field:#x} does not fit in {self.width} bits")
        return (value & ~self.mask) | (field << self.lsb)

    def __repr__(self) -> str:
        hi = self.lsb + self.width - 1
        return f"Field({self.name}[{hi}:{self.lsb}])"


class Layout:
    """A structure or register: an ordered set of named fields.

    ``reserved`` is the mask of every bit not covered by a field (bits
    reserved for future standard use); fields named ``custom`` are not
    reserved.  Fields are attributes: ``DC_TC.PDTV.mask``.
    """

    def __init__(self, name: str, bits: int, fields: Mapping[str, Tuple[int, int]]) -> None:
        self.name = name
        self.bits = bits
        self.all = (1 << bits) - 1
        self.fields: Dict[str, Field] = {}
        covered = 0
        for fname, (lsb, width) in fields.items():
            f = Field(f"{name}.{fname}", lsb, width)
            if lsb + width > bits:
                raise ValueError(f"{f!r} exceeds {bits} bits")
            if covered & f.mask:
                raise ValueError(f"{f!r} overlaps another field of {name}")
            covered |= f.mask
            self.fields[fname] = f
            setattr(self, fname, f)
        self.reserved = self.all & ~covered

    def __getattr__(self, item: str) -> Field:  # pragma: no cover - typing aid only
        raise AttributeError(f"{self.name} has no field {item!r}")

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields.values())

    def mask_of(self, *names: str) -> int:
        """OR of the masks of the named fields."""
        m = 0
        for n in names:
            m |= self.fields[n].mask
        return m

    def decode(self, value: int) -> Dict[str, int]:
        """All fields of ``value`` as a dict (plus ``reserved`` bits if any)."""
        out = {n: f.get(value) for n, f in self.fields.items()}
        if value & self.reserved:
            out["reserved"] = value & self.reserved
        return out

    def encode(self, **fields: int) -> int:
        """Build a value from field values; unknown names raise ``KeyError``-free ``ValueError``."""
        value = 0
        for n, v in fields.items():
            f = self.fields.get(n)
            if f is None:
                raise ValueError(f"{self.name} has no field {n!r}")
            value = f.put(value, int(v))
        return value


# --------------------------------------------------------------------------
# Device directory (spec "Device-Directory-Table (DDT)")
# --------------------------------------------------------------------------
#: Non-leaf DDT entry (and, identically shaped, non-leaf PDT entry).
DDTE = Layout("ddte", 64, {"V": (0, 1), "PPN": (10, 44)})

#: DC.tc -- translation control.  Bits 23:12 and 63:32 are reserved; 31:24 custom.
DC_TC = Layout(
    "DC.tc",
    64,
    {
        "V": (0, 1),
        "EN_ATS": (1, 1),
        "EN_PRI": (2, 1),
        "T2GPA": (3, 1),
        "DTF": (4, 1),
        "PDTV": (5, 1),
        "PRPR": (6, 1),
        "GADE": (7, 1),
        "SADE": (8, 1),
        "DPE": (9, 1),
        "SBE": (10, 1),
        "SXL": (11, 1),
        "custom": (24, 8),
    },
)

#: iohgatp (DC.iohgatp, and PC.iohgatp under GIPC).
IOHGATP = Layout("iohgatp", 64, {"PPN": (0, 44), "GSCID": (44, 16), "MODE": (60, 4)})

#: DC.ta -- translation attributes.
DC_TA = Layout("DC.ta", 64, {"PSCID": (12, 20), "RCID": (40, 12), "MCID": (52, 12)})

#: DC.fsc holding iosatp (DC.tc.PDTV = 0).
IOSATP = Layout("iosatp", 64, {"PPN": (0, 44), "MODE": (60, 4)})
#: DC.fsc holding pdtp (DC.tc.PDTV = 1).
PDTP = Layout("pdtp", 64, {"PPN": (0, 44), "MODE": (60, 4)})
#: DC.msiptp.
MSIPTP = Layout("msiptp", 64, {"PPN": (0, 44), "MODE": (60, 4)})
#: DC.msi_addr_mask / DC.msi_addr_pattern.
MSI_ADDR_MASK = Layout("msi_addr_mask", 64, {"mask": (0, 52)})
MSI_ADDR_PATTERN = Layout("msi_addr_pattern", 64, {"pattern": (0, 52)})

DC_BASE_SIZE = 32
DC_EXT_SIZE = 64

# --------------------------------------------------------------------------
# Process directory
# --------------------------------------------------------------------------
PDTE = Layout("pdte", 64, {"V": (0, 1), "PPN": (10, 44)})
PC_TA = Layout("PC.ta", 64, {"V": (0, 1), "ENS": (1, 1), "SUM": (2, 1), "PSCID": (12, 20)})
PC_FSC = Layout("PC.fsc", 64, {"PPN": (0, 44), "MODE": (60, 4)})
PC_SIZE = 16

# --------------------------------------------------------------------------
# Page-table entries (Privileged specification)
# --------------------------------------------------------------------------
#: Sv39/Sv48/Sv57 and Sv39x4/Sv48x4/Sv57x4 PTE (8 bytes).  Bits 58:54 are
#: reserved; bits 60:59 are ``RSW60_59`` (software) with Svrsw60t59b and
#: reserved without it.
PTE = Layout(
    "pte",
    64,
    {
        "V": (0, 1),
        "R": (1, 1),
        "W": (2, 1),
        "X": (3, 1),
        "U": (4, 1),
        "G": (5, 1),
        "A": (6, 1),
        "D": (7, 1),
        "RSW": (8, 2),
        "PPN": (10, 44),
        "RSW60_59": (59, 2),
        "PBMT": (61, 2),
        "N": (63, 1),
    },
)
#: Sv32/Sv32x4 PTE (4 bytes).
PTE32 = Layout(
    "pte32",
    32,
    {
        "V": (0, 1),
        "R": (1, 1),
        "W": (2, 1),
        "X": (3, 1),
        "U": (4, 1),
        "G": (5, 1),
        "A": (6, 1),
        "D": (7, 1),
        "RSW": (8, 2),
        "PPN": (10, 22),
    },
)

# --------------------------------------------------------------------------
# MSI page-table entries (Advanced Interrupt Architecture, "MSI page tables")
# --------------------------------------------------------------------------
#: First doubleword, basic-translate ("flat") mode, M = 3.  Second doubleword ignored.
MSIPTE0 = Layout("msipte", 64, {"V": (0, 1), "M": (1, 2), "PPN": (10, 44), "C": (63, 1)})
#: First doubleword, MRIF mode, M = 1.
MSIPTE_MRIF0 = Layout(
    "msipte.mrif", 64, {"V": (0, 1), "M": (1, 2), "MRIF_Address": (7, 47), "C": (63, 1)}
)
#: Second doubleword, MRIF mode.
MSIPTE_MRIF1 = Layout("msipte.mrif1", 64, {"N": (0, 10), "NPPN": (10, 44), "N10": (60, 1)})
MSIPTE_SIZE = 16

# --------------------------------------------------------------------------
# Fault-queue record (first doubleword; then custom/reserved, iotval, iotval2)
# --------------------------------------------------------------------------
FAULT_RECORD0 = Layout(
    "fault_record",
    64,
    {
        "CAUSE": (0, 12),
        "PID": (12, 20),
        "PV": (32, 1),
        "PRIV": (33, 1),
        "TTYP": (34, 6),
        "DID": (40, 24),
    },
)
FAULT_RECORD_SIZE = 32

# --------------------------------------------------------------------------
# Registers
# --------------------------------------------------------------------------
CAPABILITIES = Layout(
    "capabilities",
    64,
    {
        "version": (0, 8),
        "Sv32": (8, 1),
        "Sv39": (9, 1),
        "Sv48": (10, 1),
        "Sv57": (11, 1),
        "Svrsw60t59b": (14, 1),
        "Svpbmt": (15, 1),
        "Sv32x4": (16, 1),
        "Sv39x4": (17, 1),
        "Sv48x4": (18, 1),
        "Sv57x4": (19, 1),
        "AMO_MRIF": (21, 1),
        "MSI_FLAT": (22, 1),
        "MSI_MRIF": (23, 1),
        "AMO_HWAD": (24, 1),
        "ATS": (25, 1),
        "T2GPA": (26, 1),
        "END": (27, 1),
        "IGS": (28, 2),
        "HPM": (30, 1),
        "DBG": (31, 1),
        "PAS": (32, 6),
        "PD8": (38, 1),
        "PD17": (39, 1),
        "PD20": (40, 1),
        "QOSID": (41, 1),
        "NL": (42, 1),
        "S": (43, 1),
        "custom": (56, 8),
    },
)

FCTL = Layout("fctl", 32, {"BE": (0, 1), "WSI": (1, 1), "GXL": (2, 1), "custom": (16, 16)})

DDTP = Layout("ddtp", 64, {"iommu_mode": (0, 4), "busy": (4, 1), "PPN": (10, 44)})

#: cqb / fqb / pqb: queue base registers.
QUEUE_BASE = Layout("qb", 64, {"LOG2SZ_1": (0, 5), "PPN": (10, 44)})
CQCSR = Layout(
    "cqcsr",
    32,
    {
        "cqen": (0, 1),
        "cie": (1, 1),
        "cqmf": (8, 1),
        "cmd_to": (9, 1),
        "cmd_ill": (10, 1),
        "fence_w_ip": (11, 1),
        "cqon": (16, 1),
        "busy": (17, 1),
        "custom": (28, 4),
    },
)
FQCSR = Layout(
    "fqcsr",
    32,
    {
        "fqen": (0, 1),
        "fie": (1, 1),
        "fqmf": (8, 1),
        "fqof": (9, 1),
        "fqon": (16, 1),
        "busy": (17, 1),
        "custom": (28, 4),
    },
)
PQCSR = Layout(
    "pqcsr",
    32,
    {
        "pqen": (0, 1),
        "pie": (1, 1),
        "pqmf": (8, 1),
        "pqof": (9, 1),
        "pqon": (16, 1),
        "busy": (17, 1),
        "custom": (28, 4),
    },
)
IPSR = Layout(
    "ipsr", 32, {"cip": (0, 1), "fip": (1, 1), "pmip": (2, 1), "pip": (3, 1), "custom": (8, 8)}
)
IOHPMCYCLES = Layout("iohpmcycles", 64, {"counter": (0, 63), "OF": (63, 1)})
IOHPMEVT = Layout(
    "iohpmevt",
    64,
    {
        "eventID": (0, 15),
        "DMASK": (15, 1),
        "PID_PSCID": (16, 20),
        "DID_GSCID": (36, 24),
        "PV_PSCV": (60, 1),
        "DV_GSCV": (61, 1),
        "IDT": (62, 1),
        "OF": (63, 1),
    },
)
TR_REQ_IOVA = Layout("tr_req_iova", 64, {"vpn": (12, 52)})
TR_REQ_CTL = Layout(
    "tr_req_ctl",
    64,
    {
        "Go_Busy": (0, 1),
        "Priv": (1, 1),
        "Exe": (2, 1),
        "NW": (3, 1),
        "PID": (12, 20),
        "PV": (32, 1),
        "custom": (36, 4),
        "DID": (40, 24),
    },
)
TR_RESPONSE = Layout(
    "tr_response",
    64,
    {"fault": (0, 1), "PBMT": (7, 2), "S": (9, 1), "PPN": (10, 44), "custom": (60, 4)},
)
IOMMU_QOSID = Layout("iommu_qosid", 32, {"RCID": (0, 12), "MCID": (16, 12)})
ICVEC = Layout(
    "icvec", 64, {"civ": (0, 4), "fiv": (4, 4), "pmiv": (8, 4), "piv": (12, 4), "custom": (32, 32)}
)
MSI_ADDR = Layout("msi_cfg_tbl.msi_addr", 64, {"ADDR": (2, 54)})
MSI_VEC_CTL = Layout("msi_cfg_tbl.msi_vec_ctl", 32, {"M": (0, 1)})

# --------------------------------------------------------------------------
# Commands (two doublewords; opcode and func3 in the first)
# --------------------------------------------------------------------------
CMD = Layout("command", 64, {"opcode": (0, 7), "func3": (7, 3)})
#: IOTINVAL.VMA / IOTINVAL.GVMA, first doubleword (NL: non-leaf extension)
CMD_IOTINVAL0 = Layout(
    "IOTINVAL",
    64,
    {
        "opcode": (0, 7),
        "func3": (7, 3),
        "AV": (10, 1),
        "PSCID": (12, 20),
        "PSCV": (32, 1),
        "GV": (33, 1),
        "NL": (34, 1),
        "GSCID": (44, 16),
    },
)
#: second doubleword: S (address-range extension, command bit 73) and ADDR[63:12]
CMD_IOTINVAL1 = Layout("IOTINVAL.1", 64, {"S": (9, 1), "ADDR": (10, 52)})
CMD_IOFENCE0 = Layout(
    "IOFENCE",
    64,
    {
        "opcode": (0, 7),
        "func3": (7, 3),
        "AV": (10, 1),
        "WSI": (11, 1),
        "PR": (12, 1),
        "PW": (13, 1),
        "DATA": (32, 32),
    },
)
CMD_IOFENCE1 = Layout("IOFENCE.1", 64, {"ADDR": (0, 62)})
CMD_IODIR0 = Layout(
    "IODIR",
    64,
    {"opcode": (0, 7), "func3": (7, 3), "PID": (12, 20), "DV": (33, 1), "DID": (40, 24)},
)
CMD_ATS0 = Layout(
    "ATS",
    64,
    {
        "opcode": (0, 7),
        "func3": (7, 3),
        "PID": (12, 20),
        "PV": (32, 1),
        "DSV": (33, 1),
        "RID": (40, 16),
        "DSEG": (56, 8),
    },
)
ATS_INVAL_PAYLOAD = Layout("ATS.INVAL.payload", 64, {"G": (0, 1), "S": (11, 1), "ADDR": (12, 52)})
ATS_PRGR_PAYLOAD = Layout("ATS.PRGR.payload", 64, {"PRGI": (32, 9), "ResponseCode": (44, 4)})
#: Page-request queue record (16 bytes): first doubleword, then the payload.
PQ_RECORD0 = Layout(
    "pq_record",
    64,
    {"PID": (12, 20), "PV": (32, 1), "PRIV": (33, 1), "EXEC": (34, 1), "DID": (40, 24)},
)

#: Payload of a "Page Request" message (PQ record second doubleword).
PQ_PAYLOAD = Layout(
    "pq_payload", 64, {"R": (0, 1), "W": (1, 1), "L": (2, 1), "PRGI": (3, 9), "ADDR": (12, 52)}
)

ALL_LAYOUTS: Tuple[Layout, ...] = (
    DDTE,
    DC_TC,
    IOHGATP,
    DC_TA,
    IOSATP,
    PDTP,
    MSIPTP,
    MSI_ADDR_MASK,
    MSI_ADDR_PATTERN,
    PDTE,
    PC_TA,
    PC_FSC,
    PTE,
    PTE32,
    MSIPTE0,
    MSIPTE_MRIF0,
    MSIPTE_MRIF1,
    FAULT_RECORD0,
    CAPABILITIES,
    FCTL,
    DDTP,
    QUEUE_BASE,
    CQCSR,
    FQCSR,
    PQCSR,
    IPSR,
    IOHPMCYCLES,
    IOHPMEVT,
    TR_REQ_IOVA,
    TR_REQ_CTL,
    TR_RESPONSE,
    IOMMU_QOSID,
    ICVEC,
    MSI_ADDR,
    MSI_VEC_CTL,
    CMD,
    CMD_IOTINVAL0,
    CMD_IOTINVAL1,
    CMD_IOFENCE0,
    CMD_IOFENCE1,
    CMD_IODIR0,
    CMD_ATS0,
    ATS_INVAL_PAYLOAD,
    ATS_PRGR_PAYLOAD,
    PQ_RECORD0,
    PQ_PAYLOAD,
)
