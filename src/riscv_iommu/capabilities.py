"""The ``capabilities`` register and the implementation parameters.

:class:`Capabilities` mirrors every field of the spec's ``capabilities``
register (plus the proposed GIPC bit, whose position is a parameter).
:class:`IommuParams` holds everything the spec leaves to the implementation.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Tuple

from . import formats as F

__all__ = ["Capabilities", "IommuParams", "IGS", "IommuMode", "DEFAULT_GIPC_CAP_BIT"]

#: Default position of ``capabilities.GIPC`` (our decision #1: bit 41, named
#: by the 2024 text, now belongs to the ratified QOSID field).
DEFAULT_GIPC_CAP_BIT = 44
#: Default position of ``DC.tc.GIPC`` (decision #2).
DEFAULT_GIPC_TC_BIT = 12
#: Largest range a Bare stage may count as (``bare_range_size``, ``bare_page_sizes``):
#: a range of 2**56 bytes at an address below 2**56 (PAS is at most 56) still fits
#: tr_response.PPN (44 bits) and an ATS completion's address in the NAPOT form.
MAX_BARE_SIZE = 1 << 56
#: Keys of ``IommuParams.bare_page_sizes``.
BARE_MODES = ("Sv32", "Sv39", "Sv48", "Sv57", "Sv32x4", "Sv39x4", "Sv48x4", "Sv57x4")


class IGS(enum.IntEnum):
    """``capabilities.IGS``: interrupt generation support."""

    MSI = 0
    WSI = 1
    BOTH = 2


class IommuMode(enum.IntEnum):
    """``ddtp.iommu_mode`` encodings."""

    OFF = 0
    BARE = 1
    LVL1 = 2
    LVL2 = 3
    LVL3 = 4


# capability attribute name -> field name in formats.CAPABILITIES
_FLAG_FIELDS: Dict[str, str] = {
    "sv32": "Sv32",
    "sv39": "Sv39",
    "sv48": "Sv48",
    "sv57": "Sv57",
    "svrsw60t59b": "Svrsw60t59b",
    "svpbmt": "Svpbmt",
    "sv32x4": "Sv32x4",
    "sv39x4": "Sv39x4",
    "sv48x4": "Sv48x4",
    "sv57x4": "Sv57x4",
    "amo_mrif": "AMO_MRIF",
    "msi_flat": "MSI_FLAT",
    "msi_mrif": "MSI_MRIF",
    "amo_hwad": "AMO_HWAD",
    "ats": "ATS",
    "t2gpa": "T2GPA",
    "end": "END",
    "hpm": "HPM",
    "dbg": "DBG",
    "pd8": "PD8",
    "pd17": "PD17",
    "pd20": "PD20",
    "qosid": "QOSID",
    "nl": "NL",
    "s": "S",
}


#: Field annotation -> check of a value (the API edge: a float, None, or a bool where an
#: int is expected is a TypeError naming the field, not a late comparison error)
_FIELD_TYPES: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
    "int": ("an int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("a bool", lambda v: type(v) is bool or (type(v) is int and v in (0, 1))),
    "str": ("a str", lambda v: isinstance(v, str)),
}


def _check_field_types(obj: Any) -> None:
    """Each ``int`` field holds an int (an IntEnum too; not a bool or a float), each
    ``bool`` field a bool (or the int 0 or 1), each ``str`` field a str.  Fields with
    other annotations are checked by the class's own rules."""
    for f in fields(obj):
        rule = _FIELD_TYPES.get(str(f.type))
        v = getattr(obj, f.name)
        if rule is not None and not rule[1](v):
            raise TypeError(
                f"{type(obj).__name__}.{f.name} must be {rule[0]}, not {type(v).__name__}"
            )


@dataclass(slots=True, frozen=True)
class Capabilities:
    """Every field of the ``capabilities`` register.

    Flags default to 0 (absent); ``version`` defaults to 0x10 (spec 1.0) and
    ``pas`` to 56.  ``Capabilities.full()`` gives a full-featured IOMMU.
    ``gipc`` is the proposed GIPC capability at bit ``gipc_bit``.
    """

    version: int = 0x10
    sv32: bool = False
    sv39: bool = False
    sv48: bool = False
    sv57: bool = False
    svrsw60t59b: bool = False
    svpbmt: bool = False
    sv32x4: bool = False
    sv39x4: bool = False
    sv48x4: bool = False
    sv57x4: bool = False
    amo_mrif: bool = False
    msi_flat: bool = False
    msi_mrif: bool = False
    amo_hwad: bool = False
    ats: bool = False
    t2gpa: bool = False
    end: bool = False
    igs: int = IGS.MSI
    hpm: bool = False
    dbg: bool = False
    pas: int = 56
    pd8: bool = False
    pd17: bool = False
    pd20: bool = False
    qosid: bool = False
    nl: bool = False
    s: bool = False
    custom: int = 0
    gipc: bool = False
    gipc_bit: int = DEFAULT_GIPC_CAP_BIT

    def __post_init__(self) -> None:
        _check_field_types(self)
        if not 0 <= self.version <= 0xFF:
            raise ValueError("Capabilities.version must fit in 8 bits")
        if self.igs not in (0, 1, 2):
            raise ValueError("Capabilities.igs must be MSI (0), WSI (1) or BOTH (2); 3 is reserved")
        if not 1 <= self.pas <= 63:
            raise ValueError("Capabilities.pas must be between 1 and 63")
        if self.sv48 and not self.sv39:
            raise ValueError("Capabilities: when Sv48 is set, Sv39 must be set")
        if self.sv57 and not self.sv48:
            raise ValueError("Capabilities: when Sv57 is set, Sv48 must be set")
        if not 0 <= self.custom <= 0xFF:
            raise ValueError("Capabilities.custom must fit in 8 bits")
        if not 44 <= self.gipc_bit <= 63 and self.gipc_bit != 41:
            raise ValueError("Capabilities.gipc_bit must be a reserved or custom bit (44..63)")
        if self.gipc_bit == 41 and self.qosid:
            raise ValueError("Capabilities.gipc_bit 41 collides with QOSID")
        if self.gipc_bit >= 56 and self.custom >> (self.gipc_bit - 56) & 1:
            raise ValueError("Capabilities.custom sets the bit chosen for GIPC (gipc_bit)")

    @property
    def raw(self) -> int:
        """The register value."""
        C = F.CAPABILITIES
        v = C.version.put(0, self.version)
        for attr, fname in _FLAG_FIELDS.items():
            if getattr(self, attr):
                v |= C.fields[fname].mask
        v = C.IGS.put(v, int(self.igs))
        v = C.PAS.put(v, self.pas)
        v = C.custom.put(v, self.custom)
        if self.gipc:
            v |= 1 << self.gipc_bit
        return v

    @classmethod
    def from_raw(cls, raw: int, gipc_bit: int = DEFAULT_GIPC_CAP_BIT) -> "Capabilities":
        """Decode a register value (GIPC read at ``gipc_bit``)."""
        for name, v in (("raw", raw), ("gipc_bit", gipc_bit)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an int, not {type(v).__name__}")
        if raw < 0 or raw >> 64:
            raise ValueError("capabilities (raw) must be a 64-bit unsigned int")
        if not 0 <= gipc_bit <= 63:
            raise ValueError(f"gipc_bit must be a bit position 0..63, not {gipc_bit}")
        C = F.CAPABILITIES
        kw: Dict[str, Any] = {attr: bool(C.fields[f].get(raw)) for attr, f in _FLAG_FIELDS.items()}
        kw["version"] = C.version.get(raw)
        kw["igs"] = C.IGS.get(raw)
        kw["pas"] = C.PAS.get(raw)
        custom = C.custom.get(raw)
        if gipc_bit >= 56:
            custom &= ~(1 << (gipc_bit - 56))
        kw["custom"] = custom
        kw["gipc"] = bool((raw >> gipc_bit) & 1)
        if gipc_bit == 41:  # the 2024 text's position: the bit is GIPC, not QOSID, here
            kw["qosid"] = False
        kw["gipc_bit"] = gipc_bit
        return cls(**kw)

    @classmethod
    def full(cls, **overrides: Any) -> "Capabilities":
        """A full-featured IOMMU: every mode, MSI flat+MRIF, ATS, T2GPA, HPM, debug, ..."""
        kw: Dict[str, Any] = {attr: True for attr in _FLAG_FIELDS}
        kw.update(igs=IGS.BOTH, pas=56)
        kw.update(overrides)
        return cls(**kw)

    def replace(self, **changes: Any) -> "Capabilities":
        """A copy with some fields changed."""
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        kw.update(changes)
        return Capabilities(**kw)


@dataclass(slots=True, frozen=True)
class IommuParams:
    """Implementation choices the spec leaves open.

    Defaults describe a full-featured implementation.
    """

    #: Number of programmable HPM event counters (iohpmctr1..N), 0..31.
    hpm_counters: int = 31
    #: Width in bits of iohpmcycles and the event counters (32..64).
    hpm_counter_width: int = 64
    #: Number of interrupt vectors (icvec / msi_cfg_tbl entries), 1..16.
    interrupt_vectors: int = 16
    #: Reset value of ddtp.iommu_mode: OFF (recommended) or BARE.
    reset_iommu_mode: int = IommuMode.OFF
    #: Largest ddtp.iommu_mode accepted (WARL): BARE, LVL1, LVL2 or LVL3.
    max_iommu_mode: int = IommuMode.LVL3
    #: Supported device_id width in bits (1..24); wider IDs are disallowed (260).
    device_id_width: int = 24
    #: Whether fctl.GXL is writable.
    gxl_writable: bool = False
    #: Whether fctl.BE is writable when capabilities.END is 1 (both byte orders
    #: supported: the software guidelines set fctl.BE to select big-endian).
    #: False pins it to its reset value.  Without END it is never writable.
    be_writable: bool = True
    #: Implemented GSCID / PSCID widths.  IDs with bits set beyond them make
    #: the DC / PC misconfigured (259 / 267).
    gscid_width: int = 16
    pscid_width: int = 20
    #: Implemented RCID / MCID widths (QoS ID extension).
    rcid_width: int = 12
    mcid_width: int = 12
    #: Cache capacities in entries; 0 = no caching (every request walks).
    ddt_cache_size: int = 64
    pdt_cache_size: int = 256
    iotlb_size: int = 2048
    msi_cache_size: int = 64
    #: G-stage walk cache: G-stage translations of the pages implicit reads use
    #: (first-stage page tables, PDT pages), tagged GSCID + GPA page.
    gwalk_cache_size: int = 256
    #: Replacement policy of the caches: "lru" or "fifo".
    cache_policy: str = "lru"
    #: Whether ATS translation completions fill the IOTLB.
    ats_fills_iotlb: bool = True
    #: An ATS Translation Request with No Write = 1 gets W = 1 when every
    #: stage grants write with D already set ("the other permission bits set
    #: to the value determined from the page tables"); False: W = 0 always.
    #: D must already be set because nothing is written for such a request
    #: and A/D rule 2 says "when a translated address is provided to a device
    #: in an ATS Translation completion, the PTE update must be globally
    #: visible before a memory access from the device using the translated
    #: address becomes globally visible".
    ats_no_write_reports_w: bool = True
    #: CXL.io of an ATS Success completion to a CXL type 1 or type 2 device
    #: (Request.cxl) where the spec leaves it UNSPECIFIED: memory type PMA,
    #: no Svpbmt, and completions with R = W = 0.
    cxl_io_unspecified: bool = False
    #: Cycles (see Iommu.tick) after which an ATS Invalidation Request times
    #: out; 0 = only when the testbench calls Iommu.ats_timeout().
    ats_inval_timeout: int = 0
    #: Translation range size a Bare stage contributes: the reported range
    #: (ATS completions, tr_response, rsp.size) is the smallest of the
    #: stages' page sizes, a Bare stage counting as this size (and
    #: ddtp.iommu_mode = Bare as this size).  A power of two, 4 KiB..2**56.
    bare_range_size: int = 1 << 21
    #: Per-mode sizes of a Bare stage, keyed by mode name ("Sv32", "Sv39",
    #: "Sv48", "Sv57", "Sv32x4", "Sv39x4", "Sv48x4", "Sv57x4"): a Bare first
    #: stage counts as the size of the widest first-stage mode supported for
    #: DC.tc.SXL, a Bare G-stage as that of the widest G-stage mode supported
    #: for fctl.GXL; modes not listed count as bare_range_size.  Each a power
    #: of two, 4 KiB..2**56.
    bare_page_sizes: Mapping[str, int] = field(default_factory=dict, hash=False)
    #: A request whose [addr, addr+length) crosses a 4 KiB boundary faults
    #: with "address misaligned" (4 / 6): PCIe never issues such a request.
    fault_page_crossing: bool = True
    #: The IOMMU itself records MSIs into MRIFs (writes with ``data``) and
    #: sends the notice MSI, reporting 264 / 271 on failure.  When False the
    #: response hands the MRIF details to the IO bridge.
    mrif_by_iommu: bool = False
    #: GIPC proposal revision: "2024" (seed, default) or "2025".
    gipc_revision: str = "2024"
    #: Position of DC.tc.GIPC.
    gipc_tc_bit: int = DEFAULT_GIPC_TC_BIT
    #: Writing a queue tail doorbell processes the queue at once.
    auto_process: bool = True

    def __post_init__(self) -> None:
        _check_field_types(self)
        if not 0 <= self.hpm_counters <= 31:
            raise ValueError("IommuParams.hpm_counters must be 0..31")
        if not 32 <= self.hpm_counter_width <= 64:
            raise ValueError("IommuParams.hpm_counter_width must be 32..64")
        if not 1 <= self.interrupt_vectors <= 16:
            raise ValueError("IommuParams.interrupt_vectors must be 1..16")
        if self.reset_iommu_mode not in (IommuMode.OFF, IommuMode.BARE):
            raise ValueError("IommuParams.reset_iommu_mode must be OFF or BARE")
        if self.max_iommu_mode not in (1, 2, 3, 4):
            raise ValueError("IommuParams.max_iommu_mode must be BARE, LVL1, LVL2 or LVL3")
        if not 1 <= self.device_id_width <= 24:
            raise ValueError("IommuParams.device_id_width must be 1..24")
        if not 1 <= self.gscid_width <= 16:
            raise ValueError("IommuParams.gscid_width must be 1..16")
        if not 1 <= self.pscid_width <= 20:
            raise ValueError("IommuParams.pscid_width must be 1..20")
        if not 1 <= self.rcid_width <= 12 or not 1 <= self.mcid_width <= 12:
            raise ValueError("IommuParams.rcid_width / mcid_width must be 1..12")
        for name in (
            "ddt_cache_size",
            "pdt_cache_size",
            "iotlb_size",
            "msi_cache_size",
            "gwalk_cache_size",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"IommuParams.{name} must be >= 0")
        if self.ats_inval_timeout < 0:
            raise ValueError("IommuParams.ats_inval_timeout must be >= 0")
        if self.cache_policy not in ("lru", "fifo"):
            raise ValueError('IommuParams.cache_policy must be "lru" or "fifo"')
        brs = self.bare_range_size
        if brs < 4096 or brs & (brs - 1) or brs > MAX_BARE_SIZE:
            raise ValueError("IommuParams.bare_range_size must be a power of two, 4 KiB..2**56")
        if self.gipc_revision not in ("2024", "2025"):
            raise ValueError('IommuParams.gipc_revision must be "2024" or "2025"')
        if not 12 <= self.gipc_tc_bit <= 63:
            raise ValueError("IommuParams.gipc_tc_bit must be a reserved or custom DC.tc bit")
        sizes = self.bare_page_sizes
        if not isinstance(sizes, Mapping):
            raise TypeError("IommuParams.bare_page_sizes must be a mapping of mode name to size")
        for mode, size in sizes.items():
            if mode not in BARE_MODES:
                raise ValueError(
                    f"IommuParams.bare_page_sizes: unknown mode {mode!r} "
                    f"(one of {', '.join(BARE_MODES)})"
                )
            if (
                isinstance(size, bool)
                or not isinstance(size, int)
                or size < 4096
                or size & (size - 1)
                or size > MAX_BARE_SIZE
            ):
                raise ValueError(
                    f"IommuParams.bare_page_sizes[{mode!r}] must be a power of two, 4 KiB..2**56"
                )
        object.__setattr__(self, "bare_page_sizes", dict(sizes))  # a private copy

    def bare_sizes(self, caps: Capabilities) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """Range sizes of a Bare first stage (by DC.tc.SXL) and a Bare G-stage (by fctl.GXL).

        Each is the ``bare_page_sizes`` entry of the widest mode ``caps``
        supports for that stage and XLEN, else ``bare_range_size``.
        """

        def pick(*modes: str) -> int:
            for mode in modes:
                if getattr(caps, mode.lower()):
                    return self.bare_page_sizes.get(mode, self.bare_range_size)
            return self.bare_range_size

        return (
            (pick("Sv57", "Sv48", "Sv39"), pick("Sv32")),
            (pick("Sv57x4", "Sv48x4", "Sv39x4"), pick("Sv32x4")),
        )
