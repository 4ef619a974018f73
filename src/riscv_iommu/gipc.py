"""[GIPC] G-stage page table In Process Context: the proposal's layer.

Everything GIPC changes in the base process lives here, selected by
``IommuParams.gipc_revision`` ("2024", the seed revision, or "2025"); each
place in the base code that consults it is marked "[GIPC]".  The decisions
that close the proposal's holes are in ``docs/gipc.md`` (numbers cited as
"decision #N"); the differences between revisions are its second table.

With ``capabilities.GIPC`` and ``DC.tc.GIPC`` = 1:

* the PDT and PC are at SPAs: the PDT walk does no G-stage translation
  (decision #6);
* the PC is 32 or 64 bytes and holds ``iohgatp`` (and, in the 2024 64-byte
  form, ``msiptp`` / ``msi_addr_mask`` / ``msi_addr_pattern``), checked like
  the DC's fields and reported as "PDT entry misconfigured" (267,
  decision #7);
* a request that selects a PC uses the PC's ``iohgatp`` (decision #5);
* 2024: first-stage tables are at SPAs, their accesses are not G-stage
  translated; 2025: they are GPAs translated by ``PC.iohgatp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Tuple

from . import formats as F
from .paging import G_VALID

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = ["PcFormat", "pc_format", "gipc_pc_misconfigured", "GIPC_PC_RULES"]

_MODE_SHIFT = F.IOHGATP.MODE.lsb  # MODE of iohgatp / iosatp / pdtp / msiptp


class PcFormat:
    """Size, layout and process_id partitioning of a GIPC process context."""

    __slots__ = (
        "name",
        "size",
        "pdi0_bits",
        "offsets",
        "reserved",
        "msi",
        "pid_width",
        "s1_at_spa",
    )

    def __init__(
        self,
        name: str,
        size: int,
        pdi0_bits: int,
        offsets: Dict[str, int],
        reserved: Tuple[int, ...],
        s1_at_spa: bool,
    ) -> None:
        self.name = name
        self.size = size
        #: PDI[0] width; PDI[1] is 9 bits and PDI[2] the remaining 20 - 9 - PDI[0]
        self.pdi0_bits = pdi0_bits
        #: byte offset of each doubleword: ta, fsc, iohgatp (+ msiptp, msi_addr_mask,
        #: msi_addr_pattern in the 2024 64-byte form)
        self.offsets = offsets
        #: byte offsets of reserved doublewords (must be zero)
        self.reserved = reserved
        self.msi = "msiptp" in offsets
        #: pdtp.MODE -> widest process_id (PD8, PD17, PD20)
        self.pid_width = {1: pdi0_bits, 2: pdi0_bits + 9, 3: 20}
        #: first-stage tables at SPAs (2024) or GPAs (2025)
        self.s1_at_spa = s1_at_spa

    def pdi(self, process_id: int) -> Tuple[int, int, int]:
        """PDI[0], PDI[1], PDI[2] of ``process_id`` for this format."""
        b = self.pdi0_bits
        return process_id & ((1 << b) - 1), (process_id >> b) & 0x1FF, process_id >> (b + 9)


#: The 2024 revision's 32-byte PC (capabilities.MSI_FLAT = 0)
PC_2024_32 = PcFormat("2024-32B", 32, 7, {"iohgatp": 8, "ta": 16, "fsc": 24}, (0,), s1_at_spa=True)
#: The 2024 revision's 64-byte PC with MSI fields (capabilities.MSI_FLAT = 1)
PC_2024_64 = PcFormat(
    "2024-64B",
    64,
    6,
    {
        "msiptp": 8,
        "msi_addr_mask": 16,
        "msi_addr_pattern": 24,
        "iohgatp": 40,
        "ta": 48,
        "fsc": 56,
    },
    (0, 32),
    s1_at_spa=True,
)
#: The 2025 revision's 32-byte PC (the 16-byte PC as a prefix; see docs/gipc.md)
PC_2025 = PcFormat("2025-32B", 32, 7, {"ta": 0, "fsc": 8, "iohgatp": 16}, (24,), s1_at_spa=False)


def pc_format(io: "Iommu") -> Optional[PcFormat]:
    """The GIPC PC format of this IOMMU, or None without ``capabilities.GIPC``."""
    if not io.caps.gipc:
        return None
    if io.params.gipc_revision == "2025":
        return PC_2025
    return PC_2024_64 if io.caps.msi_flat else PC_2024_32


GIPC_PC_RULES = {
    10: "[GIPC] a reserved doubleword of the PC is not zero",
    11: "[GIPC] PC.iohgatp has reserved bits set (GSCID wider than implemented)",
    12: "[GIPC] PC.iohgatp.MODE is not a valid encoding for fctl.GXL",
    13: "[GIPC] PC.iohgatp.MODE is not a supported mode",
    14: "[GIPC] PC.iohgatp root page table is not 16-KiB aligned",
    15: "[GIPC] PC.msiptp / msi_addr_mask / msi_addr_pattern reserved bits set",
    16: "[GIPC] PC.msiptp.MODE is not Off and not Flat",
    17: "[GIPC] PC.msiptp.MODE is not Off while PC.iohgatp.MODE is Bare",
}


def gipc_pc_misconfigured(
    io: "Iommu", fmt: PcFormat, words: Dict[str, int], reserved: Tuple[int, ...]
) -> int:
    """Decision #7: the GIPC fields of a PC, checked like the DC's (rule number or 0)."""
    if any(reserved):
        return 10
    iohgatp = words["iohgatp"]
    mode = iohgatp >> _MODE_SHIFT
    if F.IOHGATP.GSCID.get(iohgatp) >> io.params.gscid_width:
        return 11
    if mode not in G_VALID[io.gxl]:
        return 12
    if mode not in io.g_modes:
        return 13
    if mode and iohgatp & 3:
        return 14
    if fmt.msi:
        msiptp = words["msiptp"]
        if (
            msiptp & F.MSIPTP.reserved
            or words["msi_addr_mask"] & io.msi_mask_reserved
            or words["msi_addr_pattern"] & io.msi_mask_reserved
        ):
            return 15
        if msiptp >> _MODE_SHIFT > 1:
            return 16
        if not mode and msiptp >> _MODE_SHIFT:
            return 17
    return 0
