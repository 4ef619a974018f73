"""Builders for the IOMMU's in-memory structures, as host software writes them.

Everything is written through a memory port; nothing here touches the model.
Bit positions come from :mod:`riscv_iommu.formats`.

* :class:`PageAllocator` hands out zeroed, aligned physical pages.
* :class:`HostSpace` / :class:`GuestSpace` are where tables live: host
  physical memory, or a VM's guest-physical memory reached through its
  G-stage table (for guest-owned first-stage tables and, in the base spec,
  the PDT).
* :class:`PageTable` builds first-stage and G-stage tables of every mode
  and page size (Svnapot 64 KiB too).
* :class:`DeviceDirectory` and :class:`ProcessDirectory` build DDTs and PDTs.
* :class:`MsiPageTable` builds flat MSI page tables (basic-translate and MRIF PTEs).
"""

from __future__ import annotations

from typing import Any, Dict, Literal, Optional, Tuple

from .. import formats as F
from ..gipc import PcFormat
from ..paging import G_MODES, S_MODES

__all__ = [
    "PageAllocator",
    "HostSpace",
    "GuestSpace",
    "PageTable",
    "DeviceDirectory",
    "ProcessDirectory",
    "MsiPageTable",
    "pte",
    "R",
    "W",
    "X",
    "U",
    "G",
    "A",
    "D",
    "RW",
    "RWX",
    "URW",
    "URWX",
]

R = F.PTE.R.mask
W = F.PTE.W.mask
X = F.PTE.X.mask
U = F.PTE.U.mask
G = F.PTE.G.mask
A = F.PTE.A.mask
D = F.PTE.D.mask
RW = R | W
RWX = R | W | X
URW = U | RW
URWX = U | RWX


def pte(ppn: int, flags: int = 0, pbmt: int = 0, napot: bool = False, valid: bool = True) -> int:
    """Encode a 64-bit PTE (``flags`` are R/W/X/U/G/A/D masks)."""
    v = (F.PTE.V.mask if valid else 0) | flags | (ppn << F.PTE.PPN.lsb)
    v |= pbmt << F.PTE.PBMT.lsb
    if napot:
        v |= F.PTE.N.mask
    return v


def _order(big: bool) -> Literal["little", "big"]:
    return "big" if big else "little"


class PageAllocator:
    """Bump allocator of zeroed physical memory over a memory port.

    Allocates from ``base`` up to (not including) ``limit``: give both to
    keep every structure inside a small memory, e.g. an RTL memory window.
    Raises MemoryError when an allocation does not fit.
    """

    def __init__(
        self, mem: Any, base: int = 0x8000_0000, limit: int = 1 << 56, zero: bool = True
    ) -> None:
        if base > limit:
            raise ValueError(f"PageAllocator base {base:#x} is above its limit {limit:#x}")
        self.mem = mem
        self.base = base
        self.next = base
        self.limit = limit
        #: write zeros over each allocation; False for a port whose memory never
        #: written reads as zero (a fresh SparseMemory): the same bytes, without
        #: materialising every page (scenarios with millions of structures)
        self.zero = zero

    def alloc(self, size: int = 4096, align: int = 4096) -> int:
        """Allocate ``size`` zeroed bytes aligned to ``align`` (a power of two)."""
        if align & (align - 1) or size <= 0:
            raise ValueError("align must be a power of two and size positive")
        addr = (self.next + align - 1) & ~(align - 1)
        if addr + size > self.limit:
            raise MemoryError(
                f"PageAllocator exhausted: {size:#x} bytes at {addr:#x} would pass its limit "
                f"{self.limit:#x} (base {self.base:#x})"
            )
        self.next = addr + size
        if self.zero:
            self.mem.write(addr, bytes(size))
        return addr


class HostSpace:
    """Host physical memory: addresses are SPAs."""

    def __init__(self, mem: Any, alloc: PageAllocator) -> None:
        self.mem = mem
        self.allocator = alloc

    def alloc(self, size: int = 4096, align: int = 4096) -> int:
        """Allocate in this space."""
        return self.allocator.alloc(size, align)

    def to_spa(self, addr: int) -> int:
        """SPA of an address of this space."""
        return addr

    def write_u64(self, addr: int, value: int, big: bool = False) -> None:
        """Write a doubleword."""
        self.mem.write(self.to_spa(addr), value.to_bytes(8, _order(big)))

    def write_u32(self, addr: int, value: int, big: bool = False) -> None:
        """Write a word."""
        self.mem.write(self.to_spa(addr), value.to_bytes(4, _order(big)))

    def read_u64(self, addr: int, big: bool = False) -> int:
        """Read a doubleword."""
        return int.from_bytes(self.mem.read(self.to_spa(addr), 8), _order(big))


class GuestSpace(HostSpace):
    """A VM's guest-physical memory, backed by host pages through a G-stage table.

    ``alloc`` hands out GPAs from ``gpa_base`` upward and maps each new page
    (URW, A/D set) in ``gstage``; ``to_spa`` walks the builder's own map.
    """

    def __init__(
        self, gstage: "PageTable", alloc: PageAllocator, gpa_base: int = 0x1000_0000
    ) -> None:
        super().__init__(gstage.space.mem, alloc)
        self.gstage = gstage
        self.next_gpa = gpa_base
        self.backing: Dict[int, int] = {}

    def alloc(self, size: int = 4096, align: int = 4096) -> int:
        gpa = (self.next_gpa + align - 1) & ~(align - 1)
        self.next_gpa = gpa + ((size + 4095) & ~4095)
        for off in range(0, size, 4096):
            self.back(gpa + off)
        return gpa

    def back(self, gpa: int, spa: Optional[int] = None, flags: int = URW | A | D) -> int:
        """Map the guest page of ``gpa`` to ``spa`` (a new host page if None)."""
        page = gpa & ~0xFFF
        if spa is None:
            spa = self.allocator.alloc()
        self.gstage.map(page, spa, flags=flags)
        self.backing[page] = spa
        return spa

    def to_spa(self, addr: int) -> int:
        page = addr & ~0xFFF
        if page not in self.backing:
            raise ValueError(f"GPA {addr:#x} is not backed in this guest space")
        return self.backing[page] | (addr & 0xFFF)


class PageTable:
    """A first-stage (``stage="s"``) or G-stage (``stage="g"``) page table.

    ``mode`` is the iosatp/iohgatp MODE value; ``xlen32`` selects Sv32 /
    Sv32x4 (``DC.tc.SXL`` / ``fctl.GXL`` = 1).  Tables live in ``space``
    (host or guest-physical) in byte order ``big``.
    """

    def __init__(
        self, space: HostSpace, mode: int, stage: str = "s", xlen32: bool = False, big: bool = False
    ) -> None:
        modes = S_MODES if stage == "s" else G_MODES
        self.geom = modes[1 if xlen32 else 0][mode]
        self.mode = mode
        self.stage = stage
        self.space = space
        self.big = big
        levels, _, psize, _ = self.geom
        root_size = 16384 if stage == "g" else 4096
        self.root = space.alloc(root_size, root_size)
        self._tables: Dict[Tuple[int, int], int] = {}

    @property
    def ppn(self) -> int:
        """PPN of the root table (in its space)."""
        return self.root >> 12

    def satp(self, pscid_or_gscid: int = 0) -> int:
        """The iosatp / iohgatp value (GSCID for G-stage, ignored for first stage)."""
        if self.stage == "g":
            return F.IOHGATP.encode(PPN=self.ppn, GSCID=pscid_or_gscid, MODE=self.mode)
        return F.IOSATP.encode(PPN=self.ppn, MODE=self.mode)

    def _write(self, addr: int, value: int) -> None:
        if self.geom[2] == 4:
            self.space.write_u32(addr, value, self.big)
        else:
            self.space.write_u64(addr, value, self.big)

    def _read(self, addr: int) -> int:
        if self.geom[2] == 4:
            return int.from_bytes(self.space.mem.read(self.space.to_spa(addr), 4), _order(self.big))
        return self.space.read_u64(addr, self.big)

    def pte_addr(self, va: int, level: int) -> int:
        """Address (in the table's space) of the PTE for ``va`` at ``level``, creating tables."""
        levels, vbits, psize, _ = self.geom
        a = self.root
        for i in range(levels - 1, level, -1):
            idx = self._index(va, i)
            slot = a + idx * psize
            cur = self._read(slot)
            if cur & 1 and not cur & (R | X):
                a = ((cur >> 10) & ((1 << 44) - 1)) << 12
                continue
            nxt = self.space.alloc()
            self._write(slot, F.PTE.V.mask | ((nxt >> 12) << 10))
            a = nxt
        return a + self._index(va, level) * psize

    def _index(self, va: int, i: int) -> int:
        levels, vbits, _, _ = self.geom
        if i == levels - 1:
            return (va >> (12 + i * vbits)) & ((1 << (vbits + (2 if self.stage == "g" else 0))) - 1)
        return (va >> (12 + i * vbits)) & ((1 << vbits) - 1)

    def map(
        self,
        va: int,
        pa: int,
        size: int = 4096,
        flags: int = URWX | A | D,
        pbmt: int = 0,
        raw: Optional[int] = None,
    ) -> int:
        """Map ``va`` to ``pa`` with a leaf of ``size`` (4K, 64K NAPOT, or a superpage).

        Returns the address of the (first) leaf PTE.  ``raw`` writes that
        exact PTE value instead (to build malformed entries).
        """
        levels, vbits, psize, _ = self.geom
        if size == 1 << 16 and psize == 8:
            # Svnapot: 16 identical PTEs with N=1 and ppn[3:0] = 1000
            base = self.pte_addr(va & ~0xFFFF, 0)
            ppn = ((pa & ~0xFFFF) >> 12) | 0b1000
            value = pte(ppn, flags, pbmt, napot=True) if raw is None else raw
            for k in range(16):
                self._write(base + k * 8, value)
            return base + ((va >> 12) & 0xF) * 8
        level = {1 << (12 + i * vbits): i for i in range(levels)}.get(size)
        if level is None:
            raise ValueError(f"unsupported page size {size:#x}")
        addr = self.pte_addr(va, level)
        value = (
            raw
            if raw is not None
            else (
                (F.PTE.V.mask | flags | ((pa >> 12) << 10))
                if psize == 4
                else pte(pa >> 12, flags, pbmt)
            )
        )
        self._write(addr, value)
        return addr

    def unmap(self, va: int, size: int = 4096) -> None:
        """Clear the leaf for ``va`` (the tables stay)."""
        levels, vbits, _, _ = self.geom
        level = {1 << (12 + i * vbits): i for i in range(levels)}[size]
        self._write(self.pte_addr(va, level), 0)


class DeviceDirectory:
    """A 1-, 2- or 3-level DDT (``levels``) of base or extended DCs."""

    def __init__(
        self,
        mem: Any,
        alloc: PageAllocator,
        levels: int = 3,
        msi_flat: bool = True,
        big: bool = False,
    ) -> None:
        self.space = HostSpace(mem, alloc)
        self.levels = levels
        self.msi_flat = msi_flat
        self.big = big
        self.root = alloc.alloc()

    @property
    def iommu_mode(self) -> int:
        """The ddtp.iommu_mode that selects this DDT."""
        return self.levels + 1

    @property
    def ddtp(self) -> int:
        """The ddtp value for this DDT."""
        return F.DDTP.encode(iommu_mode=self.iommu_mode, PPN=self.root >> 12)

    def _ddi(self, device_id: int) -> Tuple[int, int, int]:
        if self.msi_flat:
            return device_id & 0x3F, (device_id >> 6) & 0x1FF, device_id >> 15
        return device_id & 0x7F, (device_id >> 7) & 0x1FF, device_id >> 16

    def dc_addr(self, device_id: int) -> int:
        """Address of the DC of ``device_id``, creating directory levels as needed."""
        d = self._ddi(device_id)
        a = self.root
        for i in range(self.levels - 1, 0, -1):
            slot = a + d[i] * 8
            cur = self.space.read_u64(slot, self.big)
            if cur & 1:
                a = F.DDTE.PPN.get(cur) << 12
                continue
            nxt = self.space.alloc()
            self.space.write_u64(slot, F.DDTE.encode(V=1, PPN=nxt >> 12), self.big)
            a = nxt
        return a + d[0] * (64 if self.msi_flat else 32)

    def nonleaf_addr(self, device_id: int, level: int) -> int:
        """Address of the non-leaf DDT entry of ``device_id`` at ``level`` (1 or 2)."""
        self.dc_addr(device_id)
        d = self._ddi(device_id)
        a = self.root
        for i in range(self.levels - 1, level, -1):
            a = F.DDTE.PPN.get(self.space.read_u64(a + d[i] * 8, self.big)) << 12
        return a + d[level] * 8

    def set_dc(
        self,
        device_id: int,
        tc: int = 1,
        iohgatp: int = 0,
        ta: int = 0,
        fsc: int = 0,
        msiptp: int = 0,
        msi_addr_mask: int = 0,
        msi_addr_pattern: int = 0,
        reserved: int = 0,
    ) -> int:
        """Write the DC of ``device_id``; returns its address."""
        addr = self.dc_addr(device_id)
        words = [tc, iohgatp, ta, fsc]
        if self.msi_flat:
            words += [msiptp, msi_addr_mask, msi_addr_pattern, reserved]
        for k, w in enumerate(words):
            self.space.write_u64(addr + 8 * k, w, self.big)
        return addr


class ProcessDirectory:
    """A PDT (``mode`` 1=PD8, 2=PD17, 3=PD20) in ``space``.

    ``fmt`` is a [GIPC] process-context format (``riscv_iommu.gipc.PC_2024_32``,
    ``PC_2024_64``, ``PC_2025``, or ``gipc.pc_format(iommu)``); None builds
    the base format's 16-byte PCs.
    """

    def __init__(
        self, space: HostSpace, mode: int = 3, big: bool = False, fmt: Optional[PcFormat] = None
    ) -> None:
        self.space = space
        self.mode = mode
        self.big = big
        self.fmt = fmt
        self.root = space.alloc()

    def pdtp(self) -> int:
        """The DC.fsc value (pdtp) for this PDT."""
        return F.PDTP.encode(PPN=self.root >> 12, MODE=self.mode)

    def _pdi(self, process_id: int) -> Tuple[int, int, int]:
        if self.fmt is not None:
            return self.fmt.pdi(process_id)
        return process_id & 0xFF, (process_id >> 8) & 0x1FF, process_id >> 17

    @property
    def pc_size(self) -> int:
        """Bytes per process context."""
        return self.fmt.size if self.fmt is not None else 16

    def pc_addr(self, process_id: int) -> int:
        """Address (in the PDT's space) of the PC of ``process_id``."""
        p = self._pdi(process_id)
        a = self.root
        for i in range(self.mode - 1, 0, -1):
            slot = a + p[i] * 8
            cur = self.space.read_u64(slot, self.big)
            if cur & 1:
                a = F.PDTE.PPN.get(cur) << 12
                continue
            nxt = self.space.alloc()
            self.space.write_u64(slot, F.PDTE.encode(V=1, PPN=nxt >> 12), self.big)
            a = nxt
        return a + p[0] * self.pc_size

    def nonleaf_addr(self, process_id: int, level: int) -> int:
        """Address of the non-leaf PDT entry of ``process_id`` at ``level``."""
        self.pc_addr(process_id)
        p = self._pdi(process_id)
        a = self.root
        for i in range(self.mode - 1, level, -1):
            a = F.PDTE.PPN.get(self.space.read_u64(a + p[i] * 8, self.big)) << 12
        return a + p[level] * 8

    def set_pc(
        self,
        process_id: int,
        fsc: int = 0,
        pscid: int = 0,
        ens: bool = False,
        sum_: bool = False,
        ta: Optional[int] = None,
        iohgatp: int = 0,
        msiptp: int = 0,
        msi_addr_mask: int = 0,
        msi_addr_pattern: int = 0,
    ) -> int:
        """Write a valid PC (or the exact ``ta``); returns its address in the PDT's space.

        ``iohgatp`` and the MSI fields go where the [GIPC] format puts them.
        """
        addr = self.pc_addr(process_id)
        if ta is None:
            ta = F.PC_TA.encode(V=1, ENS=int(ens), SUM=int(sum_), PSCID=pscid)
        if self.fmt is None:
            words = {"ta": 0, "fsc": 8}
        else:
            words = dict(self.fmt.offsets)
        values = {
            "ta": ta,
            "fsc": fsc,
            "iohgatp": iohgatp,
            "msiptp": msiptp,
            "msi_addr_mask": msi_addr_mask,
            "msi_addr_pattern": msi_addr_pattern,
        }
        for off in range(0, self.pc_size, 8):
            self.space.write_u64(addr + off, 0, self.big)
        for name, off in words.items():
            self.space.write_u64(addr + off, values[name], self.big)
        return addr

    def clear_pc(self, process_id: int) -> None:
        """Invalidate the PC of ``process_id`` (all its bytes zero)."""
        addr = self.pc_addr(process_id)
        for off in range(0, self.pc_size, 8):
            self.space.write_u64(addr + off, 0, self.big)


class MsiPageTable:
    """A flat MSI page table of ``entries`` 16-byte MSI PTEs (host memory)."""

    def __init__(
        self, mem: Any, alloc: PageAllocator, entries: int = 256, big: bool = False
    ) -> None:
        self.space = HostSpace(mem, alloc)
        size = max(4096, entries * 16)
        self.root = alloc.alloc(size, size)
        self.big = big

    def msiptp(self) -> int:
        """The DC.msiptp value (MODE = Flat)."""
        return F.MSIPTP.encode(PPN=self.root >> 12, MODE=1)

    def set_raw(self, index: int, pte0: int, pte1: int = 0) -> int:
        """Write both doublewords of entry ``index``; returns its address."""
        addr = self.root | (index * 16)
        self.space.write_u64(addr, pte0, self.big)
        self.space.write_u64(addr + 8, pte1, self.big)
        return addr

    def set_flat(self, index: int, pa: int) -> int:
        """A basic-translate (M=3) entry to the interrupt file page at ``pa``."""
        return self.set_raw(index, F.MSIPTE0.encode(V=1, M=3, PPN=pa >> 12))

    def set_mrif(self, index: int, mrif: int, notice: int, nid: int) -> int:
        """An MRIF-mode (M=1) entry."""
        pte0 = F.MSIPTE_MRIF0.encode(V=1, M=1, MRIF_Address=mrif >> 9)
        pte1 = F.MSIPTE_MRIF1.encode(N=nid & 0x3FF, NPPN=notice >> 12, N10=nid >> 10)
        return self.set_raw(index, pte0, pte1)
