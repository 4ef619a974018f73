"""Constrained-random stimulus: a random IOMMU system and a request stream, as test vectors.

:func:`generate` builds, from one seed, a random implementation
(``capabilities``, :class:`~riscv_iommu.IommuParams`, ``fctl`` including
big-endian), brings it up as software does (the host toolkit's
:class:`~riscv_iommu.host.driver.Driver`, through MMIO and memory), builds
device contexts, process directories, first-stage, G-stage and MSI page
tables in every supported mode and format -- some of them deliberately
broken -- and then runs a stream of device requests with commands,
invalidations, table changes, page requests, ATS invalidations and their
completions, ticks and injected memory faults in between.  The run is
recorded by a :class:`~riscv_iommu.vectors.Recorder`: the expected results
are what the model does.

A :class:`Profile` weights the choices; :data:`PROFILES` holds the named
ones (``mixed``, ``legal``, ``faults``, ``gipc``, ``caching``).  The same
seed, request count and profile always give the same document (and, through
:func:`riscv_iommu.vectors.dumps`, the same bytes): everything random comes
from one ``random.Random(seed)``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union, cast

from . import formats as F
from .capabilities import IGS, Capabilities, IommuMode, IommuParams
from .gipc import PcFormat, pc_format
from .host.driver import (
    Command,
    DeviceContext,
    Driver,
    DriverError,
    InterruptConfig,
    ats_inval,
    ats_prgr,
    iodir_inval_ddt,
    iodir_inval_pdt,
    iofence_c,
    iotinval_gvma,
    iotinval_vma,
)
from .host.tables import (
    RWX,
    A,
    D,
    DeviceDirectory,
    G,
    GuestSpace,
    HostSpace,
    MsiPageTable,
    PageAllocator,
    PageTable,
    ProcessDirectory,
    R,
    U,
    W,
    X,
)
from .iommu import Iommu
from .memory import MemoryFault
from .registers import REG
from .types import Access, PageRequest, Request, RequestKind
from .vectors import ModelHook, Recorder

__all__ = ["Profile", "PROFILES", "generate", "GenError"]

_T = TypeVar("_T")

#: Where the page allocator puts tables and queues (host physical).
TABLE_SPA = 0x8000_0000
#: Data pages (never read by the IOMMU, only pointed at): [DATA_SPA, DATA_END).
DATA_SPA = 0x1_0000_0000
DATA_END = 0x3_0000_0000
#: Guest-physical layout of every VM: RAM, the MSI interrupt files, the VM-owned tables.
RAM_GPA = 0x4000_0000
MSI_GPA = 0x2800_0000
VM_TABLE_GPA = 0x2_0000_0000

_TC = F.DC_TC
_SIZE_NAMES = {4096: "4K", 1 << 16: "64K-NAPOT", 1 << 30: "1G"}
_S_NAMES = ({8: "Sv39", 9: "Sv48", 10: "Sv57"}, {8: "Sv32"})
_G_NAMES = ({8: "Sv39x4", 9: "Sv48x4", 10: "Sv57x4"}, {8: "Sv32x4"})
_MODE_SHIFT = F.IOHGATP.MODE.lsb
_PD_WIDTH = {1: 8, 2: 17, 3: 20}


def _le_be(value: int, n: int, big: bool) -> bytes:
    return value.to_bytes(n, "big" if big else "little")


class GenError(ValueError):
    """Bad arguments to :func:`generate` (unknown profile, negative counts)."""


@dataclass(frozen=True)
class Profile:
    """Weights of the generator's choices (rates are probabilities, 0..1).

    ``broken``: each structure (DC, DDT/PDT entry, PC, PTE, MSI PTE) is built
    invalid, with reserved bits set, or misconfigured; ``inject``: a request
    is preceded by an injected access fault or data corruption on a
    structure it uses (or the fault queue), or a data-path error; ``wild``: a
    request goes outside what is mapped and permitted (unmapped or
    non-canonical addresses, wrong access or privilege, unknown or too-wide
    device IDs, page-crossing lengths); ``gipc``: the chance that the IOMMU
    has ``capabilities.GIPC``, and then the share of devices that use it;
    ``commands``: a command batch before a request; ``illegal``: a command
    of a batch is illegal; ``modify``: a table changes before a request;
    ``stale``: such a change is left without its invalidation (or with too
    narrow a one); ``pri``: a page request before a request; ``ats``: an ATS
    translation request, ATS invalidation or completion; ``events``: ticks,
    fault-queue drains, debug-interface translations, ``ddtp`` switches;
    ``small_caches``: the caches are tiny (or 0: walk every time).
    """

    name: str
    description: str
    broken: float = 0.1
    inject: float = 0.05
    wild: float = 0.15
    gipc: float = 0.3
    commands: float = 0.15
    illegal: float = 0.1
    modify: float = 0.08
    stale: float = 0.3
    pri: float = 0.08
    ats: float = 0.15
    events: float = 0.1
    small_caches: float = 0.3


#: The named profiles.
PROFILES: Dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("mixed", "a bit of everything (the default)"),
        Profile(
            "legal",
            "legal software and devices only: valid structures, mapped and permitted requests, "
            "no injected faults, no illegal commands, every change invalidated",
            broken=0.0,
            inject=0.0,
            wild=0.0,
            illegal=0.0,
            stale=0.0,
            small_caches=0.2,
        ),
        Profile(
            "faults",
            "fault-heavy: broken structures, injected access faults and corruption, wild requests",
            broken=0.35,
            inject=0.2,
            wild=0.35,
            illegal=0.3,
            stale=0.5,
            events=0.15,
        ),
        Profile(
            "gipc",
            "GIPC: capabilities.GIPC always, most devices with DC.tc.GIPC, both revisions",
            gipc=1.0,
            broken=0.08,
            wild=0.1,
        ),
        Profile(
            "caching",
            "invalidation-heavy: many table changes and commands, tiny caches, stale entries",
            broken=0.04,
            inject=0.02,
            wild=0.05,
            commands=0.35,
            modify=0.35,
            stale=0.4,
            small_caches=0.85,
        ),
    )
}


# --------------------------------------------------------------------------
# the generated system (the software's view of it)
# --------------------------------------------------------------------------
class _Leaf:
    """A mapping: ``[iova, iova + size)`` -> ``target`` with PTE ``flags``; ``ok`` is the
    IOVA range where a request is translated by every stage; ``pte`` the SPA of the leaf
    PTE (-1: none, an identity range)."""

    __slots__ = ("iova", "size", "flags", "target", "ok", "pte", "msi", "extra")

    def __init__(self, iova: int, size: int, flags: int, target: int, pte: int = -1) -> None:
        self.iova = iova
        self.size = size
        self.flags = flags
        self.target = target
        self.ok = (iova, iova + size)
        self.pte = pte
        self.msi = False
        #: more (SPA, size) ranges a request through this leaf reads or writes
        self.extra: List[Tuple[int, int]] = []


class _Vm:
    """A VM: GSCID, G-stage table, guest RAM leaves, VM-owned table memory, MSI table."""

    def __init__(self, g: "_Gen", gscid: int, mode: int) -> None:
        self.gscid = gscid
        self.gstage = PageTable(g.host, mode, stage="g", xlen32=bool(g.gxl), big=g.be)
        self.space = GuestSpace(self.gstage, g.alloc, gpa_base=VM_TABLE_GPA)
        self.ram: List[_Leaf] = []
        #: (msi_addr_mask, msi_addr_pattern, table, entries) of the VM's interrupt files
        self.msi: Optional[Tuple[int, int, MsiPageTable, int]] = None
        #: per interrupt file: the (SPA, size) ranges its MSIs touch (MSI PTE, MRIF, notice)
        self.msi_ranges: List[List[Tuple[int, int]]] = []

    @property
    def iohgatp(self) -> int:
        return self.gstage.satp(self.gscid)


class _Space:
    """An address space a request reaches: a first-stage table (or Bare) over a VM (or not)."""

    def __init__(self, table: Optional[PageTable], vm: Optional[_Vm], pscid: int) -> None:
        self.table = table
        self.vm = vm
        self.pscid = pscid
        self.leaves: List[_Leaf] = []


class _Ctx:
    """A way for a device to reach a space: its process_id (None: no PASID) and PC flags."""

    __slots__ = ("pid", "ens", "sum", "space", "pc")

    def __init__(self, pid: Optional[int], ens: bool, sum_: bool, space: _Space) -> None:
        self.pid = pid
        self.ens = ens
        self.sum = sum_
        self.space = space
        self.pc = -1  # SPA of the PC (-1: none)


class _Dev:
    """A device: its DC and the contexts its requests use."""

    def __init__(self, did: int) -> None:
        self.did = did
        self.tc = 0
        self.dc: Tuple[int, ...] = ()
        self.dc_spa = -1
        self.vm: Optional[_Vm] = None
        self.ctxs: List[_Ctx] = []
        self.pdt: Optional[ProcessDirectory] = None
        self.pdt_fmt: Optional[PcFormat] = None
        self.gipc = False
        #: SPAs of structures the device's requests read (fault-injection targets)
        self.structs: List[int] = []
        self.prg = 0


# --------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------
class _Gen:
    def __init__(self, seed: int, requests: int, profile: Profile) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.n_requests = requests
        self.prof = profile
        self.vms: List[_Vm] = []
        self.devs: List[_Dev] = []
        self.pending: Dict[int, int] = {}  # ITAG -> destination device of an ATS.INVAL
        self.scanned = 0
        self.data_next = DATA_SPA
        self.next_gscid = 1
        self.next_pscid = 1
        self.restore_ddtp: Optional[int] = None
        #: what this seed built (the generator's intent, reported in the file)
        self.features: set[str] = set()

    # -- random helpers ---------------------------------------------------------
    def p(self, rate: float) -> bool:
        return self.rng.random() < rate

    def pick(self, seq: Sequence[_T]) -> _T:
        return seq[self.rng.randrange(len(seq))]

    def bits(self, n: int) -> int:
        return self.rng.getrandbits(n) if n else 0

    def data_page(self, size: int = 4096) -> int:
        """An address in the data region aligned to ``size`` (never written)."""
        addr = (self.data_next + size - 1) & ~(size - 1)
        # wrap around within the region (its size is a multiple of every page size)
        addr = DATA_SPA + (addr - DATA_SPA) % (DATA_END - DATA_SPA)
        self.data_next = addr + size
        return addr

    # -- the implementation ----------------------------------------------------
    def choose_system(self) -> Tuple[Capabilities, IommuParams, int]:
        p = self.p
        prof = self.prof
        sv39 = p(0.85)
        sv48 = sv39 and p(0.6)
        sv57 = sv48 and p(0.5)
        sv39x4 = p(0.8)
        sv48x4 = sv39x4 and p(0.5)
        msi_flat = p(0.7)
        ats = p(0.75)
        end = p(0.45)
        qosid = p(0.3)
        gipc = p(prof.gipc)
        gipc_bit = 44
        if gipc and p(0.2):
            gipc_bit = self.pick([41, 45, 50, 63]) if not qosid else self.pick([45, 50, 63])
        caps = Capabilities(
            sv32=p(0.45),
            sv39=sv39,
            sv48=sv48,
            sv57=sv57,
            svrsw60t59b=p(0.5),
            svpbmt=p(0.6),
            sv32x4=p(0.45),
            sv39x4=sv39x4,
            sv48x4=sv48x4,
            sv57x4=sv48x4 and p(0.6),
            amo_mrif=p(0.4),
            msi_flat=msi_flat,
            msi_mrif=msi_flat and p(0.6),
            amo_hwad=p(0.7),
            ats=ats,
            t2gpa=ats and p(0.6),
            end=end,
            igs=self.pick([IGS.MSI, IGS.WSI, IGS.BOTH]),
            hpm=p(0.5),
            dbg=p(0.5),
            pas=self.pick([36, 40, 48, 56]),
            pd8=p(0.6),
            pd17=p(0.6),
            pd20=p(0.7),
            qosid=qosid,
            nl=p(0.4),
            s=p(0.4),
            gipc=gipc,
            gipc_bit=gipc_bit,
        )
        small = p(prof.small_caches)

        def cache(default: int) -> int:
            if not small:
                return default
            return self.pick([0, 1, 1, 2, 3, 4, 8])

        params = IommuParams(
            hpm_counters=self.rng.randint(0, 8),
            hpm_counter_width=self.pick([32, 40, 64]),
            interrupt_vectors=self.pick([1, 2, 4, 16]),
            reset_iommu_mode=self.pick([IommuMode.OFF, IommuMode.BARE]),
            device_id_width=self.pick([24, 24, 20, 16, 12]),
            gxl_writable=p(0.3),
            be_writable=end and p(0.6),
            gscid_width=self.pick([16, 16, 8, 4]),
            pscid_width=self.pick([20, 20, 12, 6]),
            rcid_width=self.pick([12, 4]),
            mcid_width=self.pick([12, 4]),
            ddt_cache_size=cache(64),
            pdt_cache_size=cache(256),
            iotlb_size=cache(2048),
            msi_cache_size=cache(64),
            gwalk_cache_size=cache(256),
            cache_policy=self.pick(["lru", "fifo"]),
            ats_fills_iotlb=p(0.7),
            ats_no_write_reports_w=p(0.7),
            cxl_io_unspecified=p(0.3),
            bare_page_sizes={
                m: self.pick([1 << 12, 1 << 21, 1 << 30])
                for m in ("Sv39", "Sv32", "Sv39x4", "Sv48x4")
                if p(0.3)
            },
            ats_inval_timeout=self.pick([0, 0, 50, 500]),
            bare_range_size=self.pick([1 << 12, 1 << 21, 1 << 30]),
            fault_page_crossing=p(0.8),
            mrif_by_iommu=p(0.4),
            gipc_revision=self.pick(["2024", "2025"]),
            gipc_tc_bit=12 if p(0.8) else self.pick([13, 20, 23, 40]),
        )
        # fctl at reset: BE only with capabilities.END; GXL needs Sv32x4 to be useful
        fctl = 0
        if end and p(0.5):
            fctl |= F.FCTL.BE.mask
        if caps.igs == IGS.BOTH and p(0.5):
            fctl |= F.FCTL.WSI.mask
        if caps.sv32x4 and p(0.25):
            fctl |= F.FCTL.GXL.mask
        return caps, params, fctl

    # -- bring-up -----------------------------------------------------------------
    def bring_up(self, on_model: Optional[ModelHook]) -> None:
        caps, params, fctl = self.choose_system()
        self.caps, self.params = caps, params
        rec = Recorder(caps, params, fctl, on_model)
        self.rec = rec
        self.mem = rec.mem
        self.alloc = PageAllocator(rec.mem, base=TABLE_SPA, limit=1 << caps.pas)
        self.host = HostSpace(rec.mem, self.alloc)
        # the driver reaches the IOMMU through the recorder's register interface only
        self.drv = Driver(
            cast(Iommu, rec.mmio), rec.mem, self.alloc, poll_limit=2, gipc_bit=caps.gipc_bit
        )
        reset_be = bool(fctl & F.FCTL.BE.mask)
        big = reset_be if not params.be_writable else self.p(0.5)
        wsi = caps.igs == IGS.WSI or (caps.igs == IGS.BOTH and self.p(0.5))
        interrupts = None
        if self.p(0.7):
            interrupts = InterruptConfig(
                wsi=wsi,
                civ=self.rng.randrange(16),
                fiv=self.rng.randrange(16),
                pmiv=self.rng.randrange(16),
                piv=self.rng.randrange(16),
                masked=self.p(0.2),
            )
        self.levels = self.rng.randint(1, 3)
        self.ddt: DeviceDirectory = self.drv.bring_up(
            ddt_levels=self.levels,
            cq_log2=self.rng.randint(2, 6),
            fq_log2=self.rng.randint(1, 5),
            pq_log2=self.rng.randint(1, 4),
            interrupts=interrupts,
            big_endian=big,
        )
        self.be = self.drv.be
        self.features.add(f"ddt:{self.levels}lvl")
        self.features.add("dc:extended" if caps.msi_flat else "dc:base")
        self.features.add("fctl.BE=1" if self.be else "fctl.BE=0")
        self.gxl = 1 if fctl & F.FCTL.GXL.mask else 0
        self.wsi = bool(self.drv.rd32(REG.FCTL) & F.FCTL.WSI.mask)
        iommu = rec.iommu
        self.gipc_fmt = pc_format(iommu)
        self.gipc_tc = (1 << params.gipc_tc_bit) if caps.gipc else 0
        if caps.hpm and params.hpm_counters:
            self.program_hpm()

    def program_hpm(self) -> None:
        E = F.IOHPMEVT
        for x in range(1, self.params.hpm_counters + 1):
            evt = E.encode(eventID=self.rng.randint(1, 8))
            if self.p(0.3):
                evt = E.DV_GSCV.put(evt, 1)
                evt = E.DID_GSCID.put(evt, self.bits(4))
                evt = E.IDT.put(evt, int(self.p(0.5)))
            self.drv.wr64(REG.iohpmevt(x), evt)
        self.drv.wr32(REG.IOCOUNTINH, 0)

    # -- address spaces ----------------------------------------------------------------
    def s_modes(self, sxl: int) -> List[int]:
        c = self.caps
        if sxl:
            return [8] if c.sv32 else []
        return [m for m, ok in ((8, c.sv39), (9, c.sv48), (10, c.sv57)) if ok]

    def g_modes(self) -> List[int]:
        c = self.caps
        if self.gxl:
            return [8] if c.sv32x4 else []
        return [m for m, ok in ((8, c.sv39x4), (9, c.sv48x4), (10, c.sv57x4)) if ok]

    def new_vm(self) -> Optional[_Vm]:
        modes = self.g_modes()
        if not modes:
            return None
        gscid = self.next_gscid % (1 << self.params.gscid_width) or 1
        self.next_gscid += 1
        vm = _Vm(self, gscid, self.pick(modes))
        self.features.add("g:" + _G_NAMES[self.gxl][vm.gstage.mode])
        # guest RAM: G-stage leaves of every size the mode has, at RAM_GPA upward
        gpa = RAM_GPA
        levels, vbits, psize, _ = vm.gstage.geom
        sizes = [4096, 4096, 1 << (12 + vbits)] + ([1 << 16] if psize == 8 else [])
        if psize == 8 and self.p(0.15):
            sizes.append(1 << 30)
        for _ in range(self.rng.randint(3, 6)):
            size = self.pick(sizes)
            self.features.add("leaf:" + _SIZE_NAMES.get(size, "superpage"))
            gpa = (gpa + size - 1) & ~(size - 1)
            flags = U | RWX | A | D
            spa = self.data_page(size)
            leaf = _Leaf(gpa, size, flags, spa)
            addr = vm.gstage.map(gpa, spa, size=size, flags=flags, pbmt=self.pbmt(psize))
            leaf.pte = vm.gstage.space.to_spa(addr)
            if self.bad():
                self.break_leaf(vm.gstage, leaf, gpa, spa, stage="g")
            vm.ram.append(leaf)
            gpa += size + 4096 * self.rng.randint(0, 4)
        if self.caps.msi_flat and self.p(0.7):
            self.build_msi(vm)
        self.vms.append(vm)
        return vm

    def pbmt(self, psize: int) -> int:
        if psize == 8 and self.caps.svpbmt and self.p(0.3):
            return self.rng.randint(1, 2)
        return 0

    def bad(self) -> bool:
        return self.p(self.prof.broken)

    def build_msi(self, vm: _Vm) -> None:
        entries = self.pick([4, 8, 16])
        mask = entries - 1
        pattern = MSI_GPA >> 12
        table = MsiPageTable(self.mem, self.alloc, entries=entries, big=self.be)
        for i in range(entries):
            addr = -1
            r = self.rng.random()
            ranges = [(table.root + 16 * i, 16)]
            if self.caps.msi_mrif and r < 0.35:
                mrif = self.alloc.alloc(512, 512) if self.params.mrif_by_iommu else self.data_page()
                notice = self.data_page()
                addr = table.set_mrif(i, mrif, notice, self.bits(11))
                self.features.add("msi:mrif")
                ranges += [(mrif, 512), (notice, 4)]
            else:
                addr = table.set_flat(i, self.data_page())
                self.features.add("msi:flat")
            vm.msi_ranges.append(ranges)
            if self.bad():
                pte0 = table.space.read_u64(addr, self.be)
                pte0 = self.pick(
                    [
                        pte0 & ~1,  # not valid
                        (pte0 & ~6) | (self.pick([0, 2]) << 1),  # M = 0 or 2: reserved modes
                        pte0 | (1 << 63),  # C: custom
                        pte0 | (1 << 4),  # a reserved bit
                    ]
                )
                table.space.write_u64(addr, pte0, self.be)
        vm.msi = (mask, pattern, table, entries)

    def break_leaf(self, table: PageTable, leaf: _Leaf, va: int, pa: int, stage: str) -> None:
        """Rewrite a leaf PTE (or its parent) with a deliberate defect."""
        self.features.add(f"broken:{stage}-pte")
        levels, vbits, psize, _ = table.geom
        value = self.rd(
            table, table.space.to_spa(table.pte_addr(va, self.level_of(table, leaf.size)))
        )
        choices: List[Callable[[int], int]] = [
            lambda v: v & ~F.PTE.V.mask,  # not valid
            lambda v: (v & ~R) | W,  # W without R: reserved
            lambda v: v & ~A,  # A clear: set by hardware (xADE) or a page fault
            lambda v: v & ~D,  # D clear
            lambda v: v & ~U if stage == "g" else v ^ U,  # U flipped (G-stage needs U)
            lambda v: v & ~(R | W | X) | X if stage == "s" else v & ~X,
        ]
        if psize == 8:
            choices += [
                lambda v: v | (1 << (54 + self.rng.randrange(5))),  # bits 58:54 reserved
                lambda v: v | F.PTE.PBMT.mask,  # PBMT = 3 (reserved, or no Svpbmt)
                lambda v: v | (1 << 59),  # RSW60_59 (reserved without Svrsw60t59b)
                lambda v: v | F.PTE.N.mask if leaf.size != 1 << 16 else v ^ (1 << 10),
            ]
        if leaf.size > 4096 and leaf.size != 1 << 16:
            choices.append(lambda v: v | (1 << 10))  # misaligned superpage
        if self.level_of(table, leaf.size) + 1 < levels and self.p(0.3):
            self.break_parent(table, va, self.level_of(table, leaf.size) + 1)
            return
        table.map(va, pa, size=leaf.size, raw=self.pick(choices)(value))

    def break_parent(self, table: PageTable, va: int, level: int) -> None:
        addr = table.pte_addr(va, level)
        v = self.rd(table, table.space.to_spa(addr))
        psize = table.geom[2]
        fixes: List[Callable[[int], int]] = [
            lambda v: v & ~F.PTE.V.mask,  # not valid
            lambda v: v | A,  # A, D, U are reserved in a pointer
            lambda v: v | D | U,
        ]
        if psize == 8:
            fixes.append(lambda v: v | F.PTE.PBMT.mask)
            if self.caps.pas < 56 and type(table.space) is HostSpace:  # beyond PAS: access fault
                fixes.append(lambda v: (v & ~F.PTE.PPN.mask) | ((1 << (self.caps.pas - 12)) << 10))
        self.wr(table, table.space.to_spa(addr), self.pick(fixes)(v))

    @staticmethod
    def level_of(table: PageTable, size: int) -> int:
        vbits = table.geom[1]
        level = 0
        while size > 1 << (12 + vbits * level) and size != 1 << 16:
            level += 1
        return level

    def rd(self, table: PageTable, spa: int) -> int:
        n = table.geom[2]
        return int.from_bytes(self.mem.read(spa, n), "big" if table.big else "little")

    def wr(self, table: PageTable, spa: int, value: int) -> None:
        n = table.geom[2]
        self.mem.write(
            spa, (value & ((1 << (8 * n)) - 1)).to_bytes(n, "big" if table.big else "little")
        )

    def first_stage(
        self,
        mode: int,
        sxl: int,
        big: bool,
        home: HostSpace,
        vm: Optional[_Vm],
        ens: bool,
        pscid: int,
        msi: bool = False,
    ) -> _Space:
        """A first-stage table in ``home`` (host or the VM's memory), with leaves mapping into
        the VM's RAM (or data SPAs); with ``msi`` some map the VM's interrupt files."""
        table = PageTable(home, mode, stage="s", xlen32=bool(sxl), big=big)
        self.features.add("s:" + _S_NAMES[sxl][mode])
        sp = _Space(table, vm, pscid)
        levels, vbits, psize, _ = table.geom
        sizes = [4096, 4096, 4096, 1 << (12 + vbits)] + ([1 << 16] if psize == 8 else [])
        # at most 6 leaves of at most 4 MiB above 126 MiB: within the lower half of every
        # mode's VA space (Sv32's 2 GiB included)
        iova = self.rng.randrange(1, 64) << 21
        for _ in range(self.rng.randint(2, 6)):
            size = self.pick(sizes)
            self.features.add("leaf:" + _SIZE_NAMES.get(size, "superpage"))
            iova = (iova + size - 1) & ~(size - 1)
            flags = self.pick([R, R | W, R | X, R | W | X, X]) | A | D
            if not ens or self.p(0.6):
                flags |= U
            if self.p(0.2):
                flags |= G
            leaf = self.s_leaf(sp, iova, size, flags, msi)
            if leaf.msi:  # an interrupt file: MSIs are writes
                flags |= R | W
                leaf.flags = flags
            addr = table.map(iova, leaf.target, size=size, flags=flags, pbmt=self.pbmt(psize))
            leaf.pte = home.to_spa(addr)
            if self.bad():
                self.break_leaf(table, leaf, iova, leaf.target, stage="s")
            sp.leaves.append(leaf)
            iova += size + 4096 * self.rng.randint(0, 3)
        return sp

    def s_leaf(self, sp: _Space, iova: int, size: int, flags: int, msi: bool) -> _Leaf:
        """A first-stage leaf's target: a GPA in one of the VM's RAM leaves, an MSI page,
        or a data SPA; ``ok`` narrows to where the G-stage maps it."""
        vm = sp.vm
        if vm is None:
            return _Leaf(iova, size, flags, self.data_page(size))
        if msi and vm.msi is not None and size == 4096 and self.p(0.15):
            i = self.rng.randrange(vm.msi[3])
            leaf = _Leaf(iova, size, flags, MSI_GPA + 4096 * i)
            leaf.msi = True
            leaf.extra = vm.msi_ranges[i]
            return leaf
        g = self.pick(vm.ram)
        if size <= g.size:
            target = g.iova + self.rng.randrange(g.size // size) * size
            return _Leaf(iova, size, flags, target)
        target = g.iova & ~(size - 1)
        leaf = _Leaf(iova, size, flags, target)
        leaf.ok = (iova + g.iova - target, iova + g.iova - target + g.size)
        return leaf

    def ram_space(self, vm: Optional[_Vm], msi: bool = False) -> _Space:
        """Bare first stage: IOVAs are GPAs of the VM (its RAM and MSI pages) or SPAs."""
        sp = _Space(None, vm, 0)
        if vm is None:
            for _ in range(3):
                size = self.pick([4096, 1 << 21])
                sp.leaves.append(_Leaf(self.data_page(size), size, RWX | U, 0))
            return sp
        sp.leaves = [_Leaf(g.iova, g.size, U | RWX, g.iova, g.pte) for g in vm.ram]
        if msi and vm.msi is not None:
            for i in range(vm.msi[3]):
                leaf = _Leaf(MSI_GPA + 4096 * i, 4096, U | R | W, MSI_GPA + 4096 * i)
                leaf.msi = True
                leaf.extra = vm.msi_ranges[i]
                sp.leaves.append(leaf)
        return sp

    # -- devices -------------------------------------------------------------------
    def device_ids(self) -> List[int]:
        ext = self.caps.msi_flat
        width = min(
            [6 if ext else 7, 15 if ext else 16, 24][self.levels - 1], self.params.device_id_width
        )
        ids: List[int] = []
        base = self.bits(width)
        for _ in range(self.rng.randint(1, 6)):
            did = (
                (base + self.rng.randint(0, 3)) % (1 << width) if self.p(0.5) else self.bits(width)
            )
            if did not in ids:
                ids.append(did)
        return ids

    def build_devices(self) -> None:
        for did in self.device_ids():
            self.devs.append(self.device(did))

    def tc_flags(self, dev: _Dev, has_g: bool) -> int:
        c = self.caps
        tc = _TC.V.mask
        if c.ats and self.p(0.6):
            tc |= _TC.EN_ATS.mask
            if self.p(0.5):
                tc |= _TC.EN_PRI.mask
                if self.p(0.5):
                    tc |= _TC.PRPR.mask
            if c.t2gpa and has_g and not dev.gipc and self.p(0.4):
                tc |= _TC.T2GPA.mask
        if self.p(0.2):
            tc |= _TC.DTF.mask
        if c.amo_hwad:
            if self.p(0.5):
                tc |= _TC.SADE.mask
            if self.p(0.5):
                tc |= _TC.GADE.mask
        return tc

    def device(self, did: int) -> _Dev:
        dev = _Dev(did)
        kinds = ["bare", "s1", "s1", "g", "s1g", "s1g", "pdt", "pdt", "pdt"]
        if self.caps.gipc:
            kinds += ["gipc"] * (9 if self.prof.gipc >= 1 else 3)
        kind = self.pick(kinds)
        self.features.add(f"device:{kind}")
        dev.gipc = kind == "gipc"
        # SXL follows fctl.GXL (DC check 20); SBE may differ from fctl.BE only when both
        # byte orders are supported (checks 19 and 21)
        sxl = self.gxl or (1 if self.params.gxl_writable and self.p(0.3) else 0)
        sbe = self.be
        if self.caps.end and self.params.be_writable and self.p(0.3):
            sbe = not sbe
            self.features.add("DC.tc.SBE!=fctl.BE")
        vm = None
        if kind in ("g", "s1g") or (kind == "pdt" and self.p(0.6)) or (dev.gipc and self.p(0.2)):
            vm = self.pick(self.vms) if self.vms and self.p(0.4) else self.new_vm()
        dev.vm = vm
        # the DC's MSI page table (the VM's interrupt files)
        use_msi = vm is not None and vm.msi is not None and self.p(0.8)
        tc = self.tc_flags(dev, vm is not None) | (_TC.SXL.mask if sxl else 0)
        tc |= _TC.SBE.mask if sbe else 0
        iohgatp = vm.iohgatp if vm is not None else 0
        fsc = ta = 0
        smodes = self.s_modes(sxl)
        if kind in ("s1", "s1g") and smodes:
            pscid = self.pscid()
            home: HostSpace = vm.space if vm is not None else self.host
            sp = self.first_stage(self.pick(smodes), sxl, sbe, home, vm, False, pscid, use_msi)
            fsc = cast(PageTable, sp.table).satp()
            ta = F.DC_TA.PSCID.put(0, pscid)
            dev.ctxs.append(_Ctx(None, False, False, sp))
        elif kind in ("pdt", "gipc"):
            dpe = self.p(0.3)
            fsc = self.build_pdt(dev, sxl, sbe, vm, use_msi, dpe)
            tc |= _TC.PDTV.mask | (_TC.DPE.mask if dpe else 0)
            if dev.gipc:
                tc |= self.gipc_tc
        else:
            dev.ctxs.append(_Ctx(None, False, False, self.ram_space(vm, use_msi)))
        if self.caps.qosid:
            ta = F.DC_TA.RCID.put(ta, self.bits(self.params.rcid_width))
            ta = F.DC_TA.MCID.put(ta, self.bits(self.params.mcid_width))
        msiptp = mask = pattern = 0
        if use_msi and vm is not None and vm.msi is not None:
            mask, pattern, mtable, _ = vm.msi
            msiptp = mtable.msiptp()
            dev.structs.append(mtable.root)
        dev.tc = tc
        dc = [tc, iohgatp, ta, fsc, msiptp, mask, pattern, 0]
        if self.bad():
            dc = self.misconfigure(dc)
            self.features.add("broken:dc")
        dev.dc = tuple(dc)
        dev.dc_spa = self.ddt.set_dc(
            did,
            tc=dc[0],
            iohgatp=dc[1],
            ta=dc[2],
            fsc=dc[3],
            msiptp=dc[4],
            msi_addr_mask=dc[5],
            msi_addr_pattern=dc[6],
            reserved=dc[7],
        )
        dev.structs.append(dev.dc_spa)
        if self.levels > 1 and self.bad():
            level = self.rng.randint(1, self.levels - 1)
            addr = self.ddt.nonleaf_addr(did, level)
            v = self.ddt.space.read_u64(addr, self.be)
            v = self.pick([v & ~1, v | (1 << self.rng.randint(1, 9)), v | (1 << 60)])
            self.ddt.space.write_u64(addr, v, self.be)
        return dev

    def pscid(self) -> int:
        v = self.next_pscid % (1 << self.params.pscid_width) or 1
        self.next_pscid += 1
        return v

    def misconfigure(self, dc: List[int]) -> List[int]:
        """Break one rule of "Device-context configuration checks" (or V)."""
        tc = dc[0]
        T = _TC
        mutations: List[Callable[[], None]] = []

        def set_tc(v: int) -> Callable[[], None]:
            def f() -> None:
                dc[0] = v

            return f

        def set_word(i: int, v: int) -> Callable[[], None]:
            def f() -> None:
                dc[i] = v

            return f

        mutations += [
            set_tc(tc & ~T.V.mask),  # not valid
            set_tc(tc | (1 << self.pick([13, 14, 22, 33, 50]))),  # rule 1: reserved
            set_tc(
                tc | T.EN_PRI.mask & ~T.EN_ATS.mask if tc & T.EN_ATS.mask else tc | T.EN_PRI.mask
            ),
            set_tc(tc | T.PRPR.mask),
            set_tc(tc | T.T2GPA.mask),
            set_tc(tc | T.DPE.mask),  # rule 12 without PDTV
            set_tc(tc ^ T.SXL.mask),  # rule 20
            set_tc(tc ^ T.SBE.mask),  # rules 19 / 21
            set_tc(tc | T.SADE.mask | T.GADE.mask),  # rule 18 without AMO_HWAD
            set_word(
                1, (dc[1] & ~(0xF << _MODE_SHIFT)) | (self.pick([1, 5, 11, 9, 10]) << _MODE_SHIFT)
            ),
            set_word(1, dc[1] | 1) if dc[1] >> _MODE_SHIFT else set_word(1, dc[1]),  # rule 17
            set_word(1, dc[1] | (0xFFFF << F.IOHGATP.GSCID.lsb)),  # GSCID wider than implemented
            set_word(2, dc[2] | (1 << self.pick([0, 5, 35]))),  # DC.ta reserved
            set_word(2, dc[2] | (0xFFFFF << F.DC_TA.PSCID.lsb)),
            set_word(2, dc[2] | (0xFFF << F.DC_TA.RCID.lsb)),
            set_word(3, (dc[3] & ~(0xF << _MODE_SHIFT)) | (self.pick([1, 7, 9, 10, 15]) << 60)),
            set_word(3, dc[3] | (1 << 50)),  # DC.fsc reserved bits
            set_word(4, (dc[4] & ~(0xF << _MODE_SHIFT)) | (self.pick([1, 2, 3]) << _MODE_SHIFT)),
            set_word(5, dc[5] | (1 << 55)),
            set_word(7, 1),  # the reserved doubleword of the extended DC
        ]
        if self.gipc_tc:
            mutations.append(set_tc(tc | self.gipc_tc))  # rule 24 / 25 (or fine with a PDT)
        self.pick(mutations)()
        return dc

    def build_pdt(
        self, dev: _Dev, sxl: int, sbe: bool, vm: Optional[_Vm], msi: bool, dpe: bool
    ) -> int:
        """The PDT of a device (``DC.fsc``); ``dpe``: a request without PASID is PASID 0."""
        c = self.caps
        modes = [m for m, ok in ((1, c.pd8), (2, c.pd17), (3, c.pd20)) if ok]
        if not modes:
            dev.ctxs.append(_Ctx(None, False, False, self.ram_space(vm, msi)))
            return 0  # pdtp.MODE Bare: requests with a PASID have a Bare first stage
        mode = self.pick(modes)
        fmt = self.gipc_fmt if dev.gipc else None
        home: HostSpace = vm.space if vm is not None and not dev.gipc else self.host
        pdt = ProcessDirectory(home, mode, big=sbe, fmt=fmt)
        self.features.add(f"pdt:{['', 'PD8', 'PD17', 'PD20'][mode]}")
        if fmt is not None:
            self.features.add(f"gipc:{fmt.name}")
        dev.pdt, dev.pdt_fmt = pdt, fmt
        dev.structs.append(home.to_spa(pdt.root))
        width = fmt.pid_width[mode] if fmt is not None else _PD_WIDTH[mode]
        pids: List[int] = [0] if dpe else []
        for _ in range(self.rng.randint(1, 4)):
            pid = self.pick([0, 1, self.bits(width), self.bits(min(width, 4))])
            if pid not in pids:
                pids.append(pid)
        smodes = self.s_modes(sxl)
        for pid in pids:
            ens, sum_ = self.p(0.5), self.p(0.5)
            pscid = self.pscid()
            pc_vm = vm
            pc_msi = msi
            if dev.gipc:
                pc_vm = (
                    (self.pick(self.vms) if self.vms and self.p(0.5) else self.new_vm())
                    if self.p(0.85)
                    else None
                )
                # 2024 64-byte PCs hold their own MSI fields; else the DC's (its VM's files)
                if fmt is not None and fmt.msi:
                    pc_msi = pc_vm is not None and pc_vm.msi is not None
                else:
                    pc_msi = msi and pc_vm is vm
            if smodes and self.p(0.85):
                # base: tables in the VM's memory; [GIPC] 2024 at SPAs, 2025 in the PC's VM
                s_home: HostSpace = self.host
                if pc_vm is not None and (not dev.gipc or not cast(PcFormat, fmt).s1_at_spa):
                    s_home = pc_vm.space
                sp = self.first_stage(
                    self.pick(smodes), sxl, sbe, s_home, pc_vm, ens, pscid, pc_msi
                )
                fsc = cast(PageTable, sp.table).satp()
            else:
                sp = self.ram_space(pc_vm, pc_msi)
                fsc = 0
            ctx = _Ctx(pid, ens, sum_, sp)
            kw: Dict[str, Any] = {}
            if dev.gipc:
                kw["iohgatp"] = pc_vm.iohgatp if pc_vm is not None else 0
                if fmt is not None and fmt.msi and pc_vm is not None and pc_vm.msi is not None:
                    mask, pattern, mtable, _ = pc_vm.msi
                    kw.update(msiptp=mtable.msiptp(), msi_addr_mask=mask, msi_addr_pattern=pattern)
            addr = pdt.set_pc(pid, fsc=fsc, pscid=pscid, ens=ens, sum_=sum_, **kw)
            ctx.pc = home.to_spa(addr)
            dev.structs.append(ctx.pc)
            if self.bad():
                self.break_pc(pdt, pid, addr, fmt)
            dev.ctxs.append(ctx)
        if dpe:  # requests without a PASID use PASID 0's address space
            dev.ctxs.append(_Ctx(None, False, False, dev.ctxs[0].space))
        elif self.p(0.5):  # requests without a PASID: Bare first stage, the DC's iohgatp
            dev.ctxs.append(_Ctx(None, False, False, self.ram_space(vm, msi)))
        return pdt.pdtp()

    def break_pc(self, pdt: ProcessDirectory, pid: int, addr: int, fmt: Optional[PcFormat]) -> None:
        self.features.add("broken:pc")
        offs = fmt.offsets if fmt is not None else {"ta": 0, "fsc": 8}
        sp, big = pdt.space, pdt.big
        ta_a, fsc_a = addr + offs["ta"], addr + offs["fsc"]
        choices: List[Tuple[int, Callable[[int], int]]] = [
            (ta_a, lambda v: v & ~1),  # not valid
            (ta_a, lambda v: v | (1 << self.pick([3, 8, 40]))),  # reserved
            (ta_a, lambda v: v | (0xFFFFF << F.PC_TA.PSCID.lsb)),  # PSCID too wide
            (fsc_a, lambda v: (v & ~(0xF << 60)) | (self.pick([1, 9, 10, 12]) << 60)),
            (fsc_a, lambda v: v | (1 << 50)),
        ]
        if fmt is not None:
            hg = addr + offs["iohgatp"]
            choices += [
                (addr + fmt.reserved[0], lambda v: v | 1),  # a reserved doubleword
                (hg, lambda v: (v & ~(0xF << 60)) | (self.pick([1, 9, 10]) << 60)),
                (hg, lambda v: v | (0xFFFF << 44)),
                (hg, lambda v: v | 1 if v >> 60 else v),
            ]
            if fmt.msi:
                choices.append((addr + offs["msiptp"], lambda v: v | (2 << 60)))
        if self.levels_of_pdt(pdt) > 1 and self.p(0.3):
            level = self.rng.randint(1, self.levels_of_pdt(pdt) - 1)
            a = pdt.nonleaf_addr(pid, level)
            choices.append((a, lambda v: self.pick([v & ~1, v | 2, v | (1 << 63)])))
        where, fn = self.pick(choices)
        sp.write_u64(where, fn(sp.read_u64(where, big)), big)

    @staticmethod
    def levels_of_pdt(pdt: ProcessDirectory) -> int:
        return pdt.mode

    # -- the stream -------------------------------------------------------------------
    def scan(self) -> None:
        """Follow the messages the IOMMU sent: ITAGs a device must answer."""
        steps = self.rec.steps
        for s in steps[self.scanned :]:
            for m in s.get("expect", {}).get("messages", ()):
                if m["type"] == "invalidation_request":
                    seg = m["segment"]
                    self.pending[m["itag"]] = m["device_id"] | ((seg or 0) << 16)
        self.scanned = len(steps)

    def sw(self, fn: Callable[..., _T], *args: Any, **kw: Any) -> Optional[_T]:
        """A driver call; a stopped command queue is recovered."""
        try:
            return fn(*args, **kw)
        except DriverError:
            self.recover()
            return None

    def recover(self) -> None:
        """What a driver does on cmd_ill / cqmf / cmd_to: skip the command at cqh when it
        cannot succeed, clear the error bits (RW1C) and ipsr.cip."""
        drv = self.drv
        csr = drv.rd32(REG.CQCSR)
        C = F.CQCSR
        if csr & (C.cmd_ill.mask | C.cqmf.mask):
            nop = iofence_c()
            addr = drv.cq_base + drv.rd32(REG.CQH) * 16
            self.mem.write(addr, _le_be(nop.d0, 8, self.be) + _le_be(nop.d1, 8, self.be))
        errors = csr & C.mask_of("cmd_ill", "cqmf", "cmd_to", "fence_w_ip")
        drv.wr32(REG.CQCSR, (csr & C.mask_of("cqen", "cie")) | errors)
        drv.wr32(REG.IPSR, F.IPSR.cip.mask)

    def stream(self) -> None:
        prof = self.prof
        for _ in range(self.n_requests):
            if self.p(prof.commands):
                self.command_batch()
            if self.p(prof.modify):
                self.modify()
            if self.caps.ats:
                if self.p(prof.pri):
                    self.page_request()
                if self.pending and self.p(0.5):
                    self.completion()
            if self.p(prof.events):
                self.event()
            self.request()
            if self.restore_ddtp is not None:
                self.drv.wr64(REG.DDTP, self.restore_ddtp)
                self.restore_ddtp = None
            self.scan()
        if self.p(0.5):
            self.sw(self.drv.faults)

    # -- requests ----------------------------------------------------------------------
    def request(self) -> None:
        prof = self.prof
        wild = self.p(prof.wild)
        dev = self.pick(self.devs)
        ctx = self.pick(dev.ctxs)
        leaves = ctx.space.leaves
        did = dev.did
        pid = ctx.pid
        kind = RequestKind.UNTRANSLATED
        tc = dev.tc
        if tc & _TC.EN_ATS.mask and self.p(prof.ats * 2):
            kind = self.pick(
                [RequestKind.ATS_TRANSLATION, RequestKind.ATS_TRANSLATION, RequestKind.TRANSLATED]
            )
        leaf = self.pick(leaves) if leaves else None
        if (
            leaf is not None
            and not wild
            and not leaf.flags & U
            and not (pid is not None and ctx.ens)
        ):
            user = [x for x in leaves if x.flags & U]  # a supervisor page needs Priv and ENS
            leaf = self.pick(user) if user else leaf
        if leaf is None or (wild and self.p(0.3)):
            addr = self.pick([self.bits(12) << 12, self.bits(39), self.bits(64), 1 << 38, RAM_GPA])
            flags = RWX | U
        else:
            lo, hi = leaf.ok
            addr = lo + self.rng.randrange(max(1, (hi - lo) >> 3)) * 8
            if leaf.msi and self.p(0.8):
                addr = lo  # seteipnum_le: the interrupt file's first word
            flags = leaf.flags
            if kind == RequestKind.TRANSLATED:
                addr = (
                    leaf.target + (addr - leaf.iova)
                    if tc & _TC.T2GPA.mask
                    else self.data_page() | (addr & 0xFFF)
                )
        allowed = [
            a for a, m in ((Access.READ, R), (Access.WRITE, W), (Access.EXECUTE, X)) if flags & m
        ]
        if leaf is not None and leaf.msi:
            allowed = [Access.WRITE]
        access = self.pick(allowed) if allowed and not wild else self.pick(list(Access))
        priv = False
        if pid is not None and ctx.ens:
            if not flags & U:
                priv = True
            elif ctx.sum and access != Access.EXECUTE:
                priv = self.p(0.3)
        if wild:
            priv = self.p(0.5)
            if self.p(0.2):
                pid = self.pick([None, 0, self.bits(20)])
            if self.p(0.15):
                did = self.pick([self.bits(24), did ^ 1, (1 << self.params.device_id_width) | did])
                did &= 0xFFFFFF
        length = self.pick([1, 2, 4, 4, 8, 8, 64])
        addr &= ~(length - 1)
        if wild and self.p(0.2):
            addr |= 0xFFC
            length = 8
        data = None
        if access == Access.WRITE and leaf is not None and leaf.msi:
            length = 4
            data = self.bits(11) if self.p(0.8) else self.bits(32)
        req = Request(
            device_id=did,
            addr=addr & ((1 << 64) - 1),
            access=access,
            process_id=pid,
            priv=priv,
            kind=kind,
            length=length,
            no_write=kind == RequestKind.ATS_TRANSLATION and self.p(0.3),
            data=data,
            cxl=self.p(0.2),
        )
        injected = False
        if self.p(prof.inject):
            injected = self.inject(dev, leaf)
        self.rec.translate(req)
        if injected:
            self.rec.clear_injections()

    def inject(self, dev: _Dev, leaf: Optional[_Leaf]) -> bool:
        r = self.rng.random()
        if r < 0.1:
            self.rec.datapath_error(1)
            return False
        if r < 0.2:  # the fault queue itself: fqmf
            self.rec.inject(self.drv.fq_base, self.drv.fq_entries * 32, MemoryFault.ACCESS_FAULT)
            return True
        if r < 0.27 and self.drv.msi_targets:  # the IOMMU's own interrupt MSIs (273)
            self.sw(self.drv.faults)  # ipsr.fip clear: the next record sends an MSI
            self.rec.inject(self.drv.msi_targets[0][0] & ~0xFFF, 4096, MemoryFault.ACCESS_FAULT)
            return True
        targets = [(a & ~7, 8) for a in dev.structs]
        if leaf is not None:
            if leaf.pte >= 0:
                targets += [(leaf.pte & ~7, 8)] * 3
            targets += leaf.extra * 3
        fault = MemoryFault.DATA_CORRUPTION if self.p(0.4) else MemoryFault.ACCESS_FAULT
        addr, size = self.pick(targets)
        self.rec.inject(addr, size, fault)
        return True

    # -- commands -----------------------------------------------------------------------
    def random_command(self) -> Command:
        dev = self.pick(self.devs)
        ctx = self.pick(dev.ctxs)
        sp = ctx.space
        gscid = sp.vm.gscid if sp.vm is not None else None
        leaf = self.pick(sp.leaves) if sp.leaves else None
        addr = leaf.iova if leaf is not None else None
        r = self.rng.randrange(9)
        if r == 0:
            return iotinval_vma(
                gscid if self.p(0.7) else None,
                sp.pscid if self.p(0.6) else None,
                addr if self.p(0.6) else None,
            )
        if r == 1:
            cmd = iotinval_vma(
                gscid, sp.pscid, addr if addr is not None else 0, s=self.caps.s and self.p(0.5)
            )
            if self.caps.nl and self.p(0.5):
                cmd = Command(F.CMD_IOTINVAL0.NL.put(cmd.d0, 1), cmd.d1)
            if cmd.d1 & F.CMD_IOTINVAL1.S.mask:  # a NAPOT range of 2^k pages
                k = self.rng.randint(0, 10)
                a = F.CMD_IOTINVAL1.ADDR.get(cmd.d1) & ~((1 << (k + 1)) - 1) | ((1 << k) - 1)
                cmd = Command(cmd.d0, F.CMD_IOTINVAL1.ADDR.put(cmd.d1, a))
            return cmd
        if r == 2:
            g = sp.vm.ram[0].iova if sp.vm is not None else None
            return iotinval_gvma(gscid if self.p(0.8) else None, g if self.p(0.5) else None)
        if r == 3:
            return iodir_inval_ddt(dev.did if self.p(0.7) else None)
        if r == 4:
            # a PID wider than every supported PDT mode is illegal: only wild commands use one
            pid = ctx.pid if ctx.pid is not None else (self.bits(4) if self.prof.wild else 0)
            return iodir_inval_pdt(dev.did, pid)
        if r == 5:
            target = self.drv.fence_addr + 4 * self.rng.randrange(1, 64) if self.p(0.6) else None
            return iofence_c(
                target, self.bits(32), pr=self.p(0.5), pw=self.p(0.5), wsi=self.wsi and self.p(0.3)
            )
        if r == 6 and self.caps.ats:
            size = self.pick([4096, 1 << 16, None])
            base = (leaf.iova if leaf is not None else 0) & ~((size or 4096) - 1)
            return ats_inval(
                dev.did, ctx.pid if self.p(0.5) else None, base, size, global_=self.p(0.2)
            )
        if r == 7 and self.caps.ats:
            return ats_prgr(dev.did, self.bits(9), self.pick([0, 1, 0xF]), ctx.pid)
        return iotinval_vma()

    def illegal_command(self) -> Command:
        c = iotinval_vma()
        return self.pick(
            [
                Command(self.pick([0, 5, 7, 64, 127])),  # reserved / custom opcodes
                Command(F.CMD.func3.put(c.d0, self.pick([2, 3, 7]))),  # reserved func3
                Command(c.d0 | (1 << 11)),  # a reserved bit
                Command(c.d0, 1),  # reserved bits of the second doubleword
                Command(F.CMD_IOTINVAL0.PSCV.put(iotinval_gvma().d0, 1)),  # GVMA with PSCV
                Command(iodir_inval_ddt().d0 | (1 << F.CMD_IODIR0.PID.lsb)),  # PID in INVAL_DDT
                Command(F.CMD_IODIR0.DID.put(iodir_inval_ddt(0).d0, 0xFFFFFF)),  # DID too wide
                Command(iofence_c(wsi=True).d0),  # WSI without fctl.WSI (or fine with it)
                Command(F.CMD_IOTINVAL0.NL.put(c.d0, 1)),  # NL: illegal without capabilities.NL
                Command(c.d0, F.CMD_IOTINVAL1.S.mask),
                ats_inval(1),  # illegal without capabilities.ATS
            ]
        )

    def command_batch(self) -> None:
        cmds = []
        for _ in range(self.rng.randint(1, 4)):
            cmds.append(
                self.illegal_command() if self.p(self.prof.illegal) else self.random_command()
            )
        self.sw(self.drv.submit, *cmds)
        if self.p(0.6):
            self.sw(self.drv.fence, pr=self.p(0.5), pw=self.p(0.5))
        if self.drv.rd32(REG.CQCSR) & F.CQCSR.mask_of("cmd_ill", "cqmf", "cmd_to", "fence_w_ip"):
            self.recover()
        self.scan()

    # -- table changes --------------------------------------------------------------------
    def modify(self) -> None:
        dev = self.pick(self.devs)
        ctx = self.pick(dev.ctxs)
        sp = ctx.space
        stale = self.p(self.prof.stale)
        legal = self.prof.wild == 0  # every change keeps the mapped requests permitted
        gscid = sp.vm.gscid if sp.vm is not None else None
        r = self.rng.randrange(4)
        if r == 0 and sp.table is not None and sp.leaves:
            leaf = self.pick(sp.leaves)
            table = sp.table
            flags = self.pick([R, R | W, R | W | X, X]) | A | D | (leaf.flags & U)
            if leaf.msi:
                flags |= R | W
            if not legal and self.p(0.3):
                table.map(leaf.iova, leaf.target, size=leaf.size, raw=0)  # unmap
            else:
                leaf.flags = flags
                table.map(leaf.iova, leaf.target, size=leaf.size, flags=flags)
            if not stale:
                pscid = None if leaf.flags & G else sp.pscid
                self.sw(self.drv.first_stage_changed, gscid, pscid, leaf.iova)
        elif r == 1 and sp.vm is not None and sp.vm.ram:
            g = self.pick(sp.vm.ram)
            vm = sp.vm
            flags = self.pick([U | RWX | A | D, U | R | A, U | R | W | A | D, 0])
            if legal:  # the guest page moves to another host page
                flags = U | RWX | A | D
                g.target = self.data_page(g.size)
            if flags:
                vm.gstage.map(g.iova, g.target, size=g.size, flags=flags)
            else:
                vm.gstage.map(g.iova, g.target, size=g.size, raw=0)
            if not stale:
                self.sw(self.drv.g_stage_changed, vm.gscid, g.iova)
        elif r == 2:
            old = DeviceContext(*dev.dc[:7])
            bits = [_TC.DTF.mask]
            if self.caps.amo_hwad or not legal:
                bits += [_TC.SADE.mask, _TC.GADE.mask]
            if not legal:
                bits.append(_TC.V.mask)
            tc = dev.dc[0] ^ self.pick(bits)
            words = list(dev.dc)
            words[0] = tc
            self.ddt.space.write_u64(dev.dc_spa, tc, self.be)
            dev.dc = tuple(words)
            if not stale:
                gscids = [c.space.vm.gscid for c in dev.ctxs if c.space.vm is not None]
                self.sw(self.drv.dc_changed, dev.did, old, gscids, self.gipc_tc)
        elif ctx.pc >= 0 and dev.pdt is not None and ctx.pid is not None:
            offs = dev.pdt_fmt.offsets["ta"] if dev.pdt_fmt is not None else 0
            big = dev.pdt.big
            ta = int.from_bytes(self.mem.read(ctx.pc + offs, 8), "big" if big else "little")
            ta ^= self.pick(
                [F.PC_TA.SUM.mask]
                if legal
                else [F.PC_TA.ENS.mask, F.PC_TA.SUM.mask, F.PC_TA.V.mask]
            )
            self.mem.write(ctx.pc + offs, ta.to_bytes(8, "big" if big else "little"))
            ctx.ens = bool(ta & F.PC_TA.ENS.mask)
            ctx.sum = bool(ta & F.PC_TA.SUM.mask)
            if not stale:
                gs = gscid if not dev.gipc else (sp.vm.gscid if sp.vm is not None else None)
                self.sw(self.drv.pc_changed, dev.did, ctx.pid, sp.pscid, gs)
        else:
            self.sw(self.drv.ddt_nonleaf_changed)
        self.scan()

    # -- PCIe messages and events --------------------------------------------------------
    def page_request(self) -> None:
        dev = self.pick(self.devs)
        ctx = self.pick(dev.ctxs)
        pid = ctx.pid if not self.p(0.2) else None
        last = self.p(0.5)
        stop = pid is not None and last and self.p(0.15)
        leaf = self.pick(ctx.space.leaves) if ctx.space.leaves else None
        dev.prg = (dev.prg + 1) % 512
        msg = PageRequest(
            device_id=dev.did if not self.p(self.prof.wild) else self.bits(24),
            addr=(leaf.iova if leaf is not None else self.bits(40) << 12) & ~0xFFF,
            prg_index=dev.prg,
            last=last,
            read=not stop,
            write=not stop and self.p(0.4),
            process_id=pid,
            priv=pid is not None and self.p(0.3),
            exec_req=pid is not None and self.p(0.2),
        )
        self.rec.page_request(msg)
        if self.p(0.4):
            reqs = self.sw(self.drv.page_requests) or []
            for pr in reqs:
                if pr.last and (pr.read or pr.write):
                    code = self.pick([0, 0, 1, 0xF])
                    pasid = pr.process_id if dev.tc & _TC.PRPR.mask else None
                    self.sw(self.drv.respond, pr.device_id, pr.prg_index, code, pasid)
        self.scan()

    def completion(self) -> None:
        itag = self.pick(sorted(self.pending))
        did = self.pending.pop(itag)
        if self.p(0.1):
            did ^= 1  # a completion from another device: discarded (or TTYP 9)
        vec = 1 << itag
        if self.p(0.3):  # one message for every outstanding ITAG of the device
            same = [t for t in sorted(self.pending) if self.pending[t] == did]
            vec |= sum(1 << t for t in same)
            self.pending = {t: d for t, d in self.pending.items() if t not in same}
        cc = self.pick([1, 1, 1, 2, 0])
        watch = [(self.drv.fence_addr, 4)]
        n = (cc or 8) if self.p(0.7) else 1  # sometimes fewer than CC messages
        for _ in range(n):
            self.rec.invalidation_completion(did, vec, cc, watch)
        self.scan()

    def event(self) -> None:
        r = self.rng.randrange(6)
        drv = self.drv
        if r == 0:
            timeout = self.params.ats_inval_timeout
            self.rec.tick(self.rng.randint(1, 2 * timeout + 10), [(drv.fence_addr, 4)])
        elif r == 1:
            self.sw(drv.faults)
        elif r == 2 and self.caps.dbg:
            dev = self.pick(self.devs)
            ctx = self.pick(dev.ctxs)
            leaf = self.pick(ctx.space.leaves) if ctx.space.leaves else None
            ctl = F.TR_REQ_CTL
            v = ctl.encode(Go_Busy=1, DID=dev.did, NW=int(self.p(0.5)), Exe=int(self.p(0.2)))
            if ctx.pid is not None:
                v = ctl.PV.put(ctl.PID.put(v, ctx.pid), 1)
                v = ctl.Priv.put(v, int(ctx.ens and self.p(0.5)))
            drv.wr64(REG.TR_REQ_IOVA, (leaf.iova if leaf is not None else 0) & ~0xFFF)
            drv.wr64(REG.TR_REQ_CTL, v)
            drv.rd64(REG.TR_RESPONSE)
        elif r == 3 and self.prof.wild and self.p(0.5):
            # ddtp to Off or Bare for the next request, then back (cause 256, pass-through)
            self.restore_ddtp = drv.rd64(REG.DDTP)
            drv.wr64(REG.DDTP, F.DDTP.iommu_mode.put(self.restore_ddtp, self.pick([0, 1])))
        elif r == 4 and self.pending:
            self.rec.ats_timeout()
        else:
            self.rec.tick(self.rng.randint(1, 100))
            if self.caps.hpm:
                drv.rd64(REG.IOHPMCYCLES)
                for x in range(1, min(3, self.params.hpm_counters) + 1):
                    drv.rd64(REG.iohpmctr(x))
        self.scan()


def generate(
    seed: int,
    requests: int = 40,
    profile: Union[str, Profile] = "mixed",
    on_model: Optional[ModelHook] = None,
) -> Dict[str, Any]:
    """A vector document: a random system from ``seed`` and ``requests`` device requests.

    ``profile`` names an entry of :data:`PROFILES`, or is a :class:`Profile` of
    one's own (its name goes into the file).  ``on_model`` is called
    with the model whose run gives the expected results, before its first
    step (attach observers there).  Raises :class:`GenError` for a bad
    argument.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GenError(f"seed must be a non-negative int, not {seed!r}")
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
        raise GenError(f"requests must be a non-negative int, not {requests!r}")
    prof = profile if isinstance(profile, Profile) else PROFILES.get(profile)
    if prof is None:
        raise GenError(f"unknown profile {profile!r} (one of {', '.join(PROFILES)})")
    g = _Gen(seed, requests, prof)
    g.bring_up(on_model)
    g.build_devices()
    g.rec.start()
    g.stream()
    info = {
        "seed": seed,
        "requests": requests,
        "profile": prof.name,
        "features": sorted(g.features),
    }
    return g.rec.document(info)


# --------------------------------------------------------------------------
# the ``riscv-iommu gen`` command
# --------------------------------------------------------------------------
def _nonneg(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def add_cli(sub: Any) -> None:
    """Register ``riscv-iommu gen`` on an argparse sub-parser set."""
    p = sub.add_parser(
        "gen",
        help="generate constrained-random test vectors from a seed",
        description="Build a random IOMMU system from a seed and run a request stream on the "
        "model; write the replayable vector file (docs/vectors.md). The same arguments always "
        "give the same bytes.",
    )
    p.add_argument("--seed", type=_nonneg, required=True, help="the seed (an integer >= 0)")
    p.add_argument(
        "--requests", type=_nonneg, default=40, help="device requests to generate (default 40)"
    )
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="mixed",
        help="weights of the choices: "
        + "; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()),
    )
    p.add_argument("--out", default="-", help="output file (default: standard output)")
    p.add_argument(
        "--json",
        action="store_true",
        help="errors as JSON objects too (the vector file is JSON anyway)",
    )
    p.set_defaults(handler=_cli)


def _cli(args: argparse.Namespace, stream: Any) -> int:
    from .vectors import dumps

    text = dumps(generate(args.seed, args.requests, args.profile))
    if args.out == "-":
        stream.write(text)
        return 0
    try:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as err:
        message = f"cannot write {args.out}: {err.strerror}"
        if args.json:
            json.dump({"error": {"message": message}}, stream)
            stream.write("\n")
        print(f"riscv-iommu gen: {message}", file=sys.stderr)
        return 2
    return 0
