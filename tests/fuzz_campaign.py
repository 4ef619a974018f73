"""A long-run, seeded state-machine campaign against the whole model (issue 9).

One *world* is an IOMMU (random capabilities and parameters, cache capacities 0, 1,
small or default) with well-formed tables built by the host-side builders: a DDT with
up to 70 devices (more than the default 64-entry DDT cache), process directories shared
by many devices (in host memory, in guest memory, and [GIPC] with G-stage tables in the
process contexts), first-stage and G-stage tables of two VMs, an MSI page table, and
the command, fault and page-request queues.  A seeded PRNG then drives a random
sequence of what software and devices do:

* device requests of every kind (untranslated, translated, ATS), with and without
  a process_id, to mapped and random addresses;
* changes to any DC, PC, DDT/PDT entry, first-stage / G-stage PTE or MSI PTE *without*
  the invalidation the spec asks for (shaped: another legal value of the field; or a
  bit flip, or random data), and restoring the old contents;
* commands (well-formed IOTINVAL.VMA/GVMA, IODIR.INVAL_DDT/PDT, IOFENCE.C, ATS.INVAL,
  ATS.PRGR, or random words), MMIO reads and writes anywhere in the register page,
  fctl / ddtp / queue base and CSR changes, the debug interface;
* page requests, ATS invalidation completions, clock ticks and ATS timeouts;
* injected memory access faults and data corruption, internal data-path errors.

After every step it checks what the spec promises whatever software does: no
exception, every response well formed (``test_properties.check_response``: status
and fault record per the CAUSE/TTYP tables), queue indices below the queue size,
every fault record written to memory well formed, and every structure of the model
within its bound (cache capacities, 32 ITAGs).

Run it with ``scripts/fuzz`` (``--minutes N`` or ``--examples N``; ``--seed S`` replays
one world, ``--steps`` sets its length, ``--verbose`` prints each step).  The test
suite runs a short, fixed-seed version (``tests/test_fuzz_campaign.py``).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE / "sw"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import riscv_iommu as rv  # noqa: E402
from riscv_iommu import formats as F  # noqa: E402
from riscv_iommu.capabilities import BARE_MODES  # noqa: E402
from riscv_iommu.commands import OPCODE  # noqa: E402
from riscv_iommu.gipc import pc_format  # noqa: E402
from riscv_iommu.host.tables import (  # noqa: E402
    A,
    D,
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    MsiPageTable,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)
from test_properties import FLAGS as GIPC_FLAGS  # noqa: E402
from test_properties import check_response  # noqa: E402

REG = rv.REG
TC = F.DC_TC
U64 = (1 << 64) - 1
CAUSES = frozenset(int(c) for c in rv.Cause)
TTYPS = frozenset(int(t) for t in rv.Ttyp)
R0 = F.FAULT_RECORD0
SV39, SV48, SV57, SV32 = 8, 9, 10, 8
PD8, PD17, PD20 = 1, 2, 3
#: GPAs / IOVAs the tables map
GPA0 = 0x4000_0000  # VM data pages
GPA_SUPER = 0x4020_0000  # a 2 MiB G-stage superpage
MSI_GPA = 0x2800_0000  # virtual interrupt files: pages 0x28000-0x28007
IOVAS = [0x1000, 0x2000, 0x3000, 0x20_0000, 0x7FFF_F000]
PIDS = [0, 1, 5, 0x1_2345]


class Failure(Exception):
    """An invariant of the campaign does not hold."""


class RecordingPort(rv.SparseMemory):
    """SparseMemory that keeps every 32-byte write (a fault record) for the checks."""

    def __init__(self) -> None:
        super().__init__()
        self.records: List[bytes] = []

    def write(self, addr: int, data: bytes) -> None:
        super().write(addr, data)
        if len(data) == F.FAULT_RECORD_SIZE:
            self.records.append(bytes(data))


class PlainPort:
    """A port with only read and write (no cas): A/D and MRIF updates read, compare, write."""

    def __init__(self) -> None:
        self.m = rv.SparseMemory()
        self.records: List[bytes] = []

    def read(self, addr: int, size: int) -> bytes:
        return self.m.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self.m.write(addr, data)
        if len(data) == F.FAULT_RECORD_SIZE:
            self.records.append(bytes(data))

    def inject(self, addr: int, size: int, fault: rv.MemoryFault) -> None:
        self.m.inject(addr, size, fault)

    def clear_injections(self) -> None:
        self.m.clear_injections()

    def write_u64(self, addr: int, value: int, big_endian: bool = False) -> None:
        self.m.write_u64(addr, value, big_endian)

    def read_u64(self, addr: int, big_endian: bool = False) -> int:
        return self.m.read_u64(addr, big_endian)

    def write_u32(self, addr: int, value: int, big_endian: bool = False) -> None:
        self.m.write_u32(addr, value, big_endian)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------
def random_caps(r: random.Random) -> rv.Capabilities:
    """Mostly full-featured IOMMUs; sometimes each feature is missing with 1/6 odds."""
    if r.random() < 0.6:
        return rv.Capabilities.full(gipc=r.random() < 0.5)
    kw: Dict[str, Any] = {f: r.random() < 0.85 for f in GIPC_FLAGS}
    kw["sv48"] = kw["sv48"] or kw["sv57"]
    kw["sv39"] = kw["sv39"] or kw["sv48"]
    kw["igs"] = r.choice(list(rv.IGS))
    kw["pas"] = r.choice([40, 46, 56])
    return rv.Capabilities(**kw)


def cache_sizes(r: random.Random) -> Dict[str, int]:
    """Each capacity 0 (walk every time), 1, small or the default."""
    return {
        name: r.choice([0, 1, 3, default])
        for name, default in (
            ("ddt_cache_size", 64),
            ("pdt_cache_size", 256),
            ("iotlb_size", 2048),
            ("msi_cache_size", 64),
            ("gwalk_cache_size", 256),
        )
    }


def random_params(r: random.Random, sizes: Optional[Dict[str, int]] = None) -> rv.IommuParams:
    return rv.IommuParams(
        **(sizes if sizes is not None else cache_sizes(r)),
        cache_policy=r.choice(["lru", "fifo"]),
        gxl_writable=r.random() < 0.7,
        be_writable=r.random() < 0.5,
        ats_inval_timeout=r.choice([0, 0, 100, 10_000]),
        auto_process=r.random() < 0.8,
        mrif_by_iommu=r.random() < 0.5,
        gipc_revision=r.choice(["2024", "2025"]),
        fault_page_crossing=r.random() < 0.8,
        ats_fills_iotlb=r.random() < 0.7,
        bare_range_size=r.choice([4096, 1 << 21, 1 << 30]),
        hpm_counters=r.choice([0, 4, 31]),
        interrupt_vectors=r.choice([1, 2, 5, 16]),
        device_id_width=r.choice([24, 24, 24, 16]),
        ats_no_write_reports_w=r.random() < 0.5,
        cxl_io_unspecified=r.random() < 0.3,
        bare_page_sizes={
            m: r.choice([4096, 1 << 21, 1 << 30, 1 << 39]) for m in BARE_MODES if r.random() < 0.3
        },
    )


# --------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------
class Slot:
    """A doubleword (or word) of a structure in memory the campaign may change."""

    __slots__ = ("addr", "size", "orig", "alts", "kind")

    def __init__(self, addr: int, size: int, orig: int, alts: Callable[[], int], kind: str) -> None:
        self.addr = addr
        self.size = size
        self.orig = orig
        self.alts = alts
        self.kind = kind


#: how often a change hits each kind of structure
SLOT_KINDS = {"dc": 35, "pc": 25, "pte": 25, "msipte": 5, "dirent": 10}


#: step kinds and their weights, per profile
PROFILES: Dict[str, Dict[str, int]] = {
    "campaign": {
        "request": 30,
        "mutate": 10,
        "restore": 4,
        "command": 8,
        "junk_command": 2,
        "mmio_write": 5,
        "mmio_read": 2,
        "fctl": 2,
        "ddtp": 2,
        "queue_base": 2,
        "queue_csr": 2,
        "consume": 3,
        "page_request": 4,
        "completion": 4,
        "tick": 3,
        "ats_timeout": 1,
        "inject": 2,
        "clear_injections": 2,
        "datapath_error": 1,
        "debug": 3,
        "api_invalidate": 2,
        "hpm": 1,
    },
    # random DC / PC / PTE changes without invalidation, across many devices
    "stale": {
        "request": 50,
        "change_after_use": 5,
        "mutate": 25,
        "restore": 8,
        "api_invalidate": 3,
        "command": 3,
        "fctl": 1,
    },
}


class World:
    """One IOMMU with tables, queues and a seeded PRNG driving random steps."""

    def __init__(
        self,
        seed: int,
        profile: str = "campaign",
        caps: Optional[rv.Capabilities] = None,
        params: Optional[rv.IommuParams] = None,
        n_devices: Optional[int] = None,
    ) -> None:
        r = self.r = random.Random(seed)
        self.seed = seed
        self.profile = profile
        self.weights = PROFILES[profile]
        self.kinds = list(self.weights)
        self.cum = [float(w) for w in self.weights.values()]
        self.caps = caps if caps is not None else random_caps(r)
        self.params = params if params is not None else random_params(r)
        caps = self.caps
        self.big = bool(caps.end and r.random() < 0.25)
        mem: Any = r.choice([RecordingPort, RecordingPort, PlainPort])()
        self.mem = mem
        self.io = rv.Iommu(mem, capabilities=caps, fctl=int(self.big), params=self.params)
        self.io.on_ats_message = self._ats_message
        self.ats_out: List[Any] = []
        self.alloc = PageAllocator(mem)
        self.host = HostSpace(mem, self.alloc)
        self.slots: List[Slot] = []
        self.slot_addrs: set[int] = set()
        self.slots_of: Dict[str, List[Slot]] = {}
        self.dc_slots: Dict[int, List[Slot]] = {}
        #: device_id -> whether its DC (as built) has DC.tc.PDTV
        self.pdtv: Dict[int, bool] = {}
        self.cur = 0  # the current value of the slot being changed
        #: slots holding changed contents (at most max_dirty at a time)
        self.dirty: List[Slot] = []
        self.max_dirty = r.choice([1, 2, 4, 8])
        self.focus: Optional[int] = None  # the device whose DC changed last
        self.log: List[str] = []
        self.responses = 0
        self._build(n_devices)

    # -- construction ---------------------------------------------------------
    def _build(self, n_devices: Optional[int]) -> None:
        r, caps, big, alloc, host = self.r, self.caps, self.big, self.alloc, self.host
        io = self.io
        self.ddt = DeviceDirectory(self.mem, alloc, levels=3, msi_flat=caps.msi_flat, big=big)
        io.mmio_write(REG.DDTP, self.ddt.ddtp)
        # data pages and two VMs
        self.data = [alloc.alloc() for _ in range(6)]
        self.g = [PageTable(host, mode, stage="g", big=big) for mode in (SV39, SV48)]
        self.guest = [GuestSpace(g, alloc) for g in self.g]
        for k, g in enumerate(self.g):
            for j, page in enumerate(self.data):
                self._leaf(g, GPA0 + j * 0x1000, page)
            self._leaf(g, GPA_SUPER, alloc.alloc(4096, 1 << 21), 1 << 21)
            self._leaf(g, MSI_GPA + 0x3000, self.data[k])  # an MSI GPA the G-stage maps
        # first-stage tables: host (single stage, GIPC 2024), guests (two stage), Sv32
        self.s1 = [
            PageTable(host, SV39, stage="s", big=big),
            PageTable(self.guest[0], SV39, stage="s", big=big),
            PageTable(self.guest[1], SV48, stage="s", big=big),
            PageTable(host, SV32, stage="s", xlen32=True, big=big),
            PageTable(host, SV48, stage="s", big=big),
            PageTable(host, SV57, stage="s", big=big),
            PageTable(self.guest[0], SV57, stage="s", big=big),
        ]
        for k, s1 in enumerate(self.s1):
            base = 0 if s1.space is host else GPA0
            for j, iova in enumerate(IOVAS[:3]):
                self._leaf(s1, iova, base + (self.data[j] if s1.space is host else j * 0x1000))
            if s1.geom[2] == 8:
                target = GPA_SUPER if s1.space is not host else alloc.alloc(4096, 1 << 21)
                self._leaf(s1, IOVAS[3], target, 1 << 21)
            for k in range(4):  # IOVAs of interrupt files 0-3, 1:1
                self._leaf(s1, MSI_GPA + k * 0x1000, MSI_GPA + k * 0x1000)
        # process directories shared by many devices
        self.pdts: List[Tuple[ProcessDirectory, int, Optional[int]]] = []
        pdt_h = ProcessDirectory(host, PD20, big=big)
        pdt_g = ProcessDirectory(self.guest[0], PD17, big=big)
        for k, pid in enumerate(PIDS):  # PCs of every first-stage mode
            host_s1 = self.s1[(0, 4, 5, 0)[k]]
            guest_s1 = self.s1[(1, 6, 1, 6)[k]]
            self._pc(pdt_h, pid, fsc=host_s1.satp(), pscid=pid & 0xFF)
            self._pc(pdt_g, pid, fsc=guest_s1.satp(), pscid=0x100 | (pid & 0xFF))
        self.pdts += [(pdt_h, 0, None), (pdt_g, 0, 0)]
        self.fmt = pc_format(io)
        if self.fmt is not None:
            pdt_c = ProcessDirectory(host, PD20, big=big, fmt=self.fmt)
            for pid in PIDS:
                vm = r.randrange(2)
                s1 = self.s1[0] if self.fmt.s1_at_spa else self.s1[1 + vm]
                self._pc(
                    pdt_c, pid, fsc=s1.satp(), pscid=pid & 0xFF, iohgatp=self.g[vm].satp(1 + vm)
                )
            self.pdts.append((pdt_c, self.io.gipc_tc, None))
        # MSI page table: a basic-translate and an MRIF entry
        self.msipt = MsiPageTable(self.mem, alloc, 8, big=big)
        self.mrif = alloc.alloc()
        self.msipt.set_flat(1, self.data[4])
        self.msipt.set_mrif(2, self.mrif, self.data[5], 0x7)
        for addr in range(self.msipt.root, self.msipt.root + 4 * 16, 8):
            self._slot(addr, 8, self._msipte_alt, "msipte")
        # devices
        n = n_devices if n_devices is not None else r.choice([3, 12, 70])
        self.devices = [(k * 0x83 + (k % 3) * 0x1_0000) & 0xFF_FFFF for k in range(n)]
        for did in self.devices:
            self._device(did)
        #: the few devices most requests and DC changes go to (the others evict them)
        self.hot = r.sample(self.devices, min(len(self.devices), r.choice([1, 2, 4])))
        self.scratch = alloc.alloc()
        # queues
        self.cq_base = self._queue(REG.CQB, r.randrange(2, 7), 16)
        io.mmio_write(REG.CQCSR, F.CQCSR.encode(cqen=1, cie=1), 4)
        self.fq_base = self._queue(REG.FQB, r.randrange(1, 7), 32)
        io.mmio_write(REG.FQCSR, F.FQCSR.encode(fqen=1, fie=1), 4)
        if caps.ats:
            self._queue(REG.PQB, r.randrange(1, 5), 16)
            io.mmio_write(REG.PQCSR, F.PQCSR.encode(pqen=1, pie=1), 4)

    def _queue(self, breg: int, log2sz: int, entry: int) -> int:
        size = (1 << log2sz) * entry
        base = self.alloc.alloc(max(4096, size), max(4096, size))
        self.io.mmio_write(breg, F.QUEUE_BASE.encode(LOG2SZ_1=log2sz - 1, PPN=base >> 12))
        return base

    def _slot(self, addr: int, size: int, alts: Callable[[], int], kind: str) -> None:
        if addr not in self.slot_addrs:
            self.slot_addrs.add(addr)
            slot = Slot(addr, size, self._rd(addr, size), alts, kind)
            self.slots.append(slot)
            self.slots_of.setdefault(kind, []).append(slot)

    def _rd(self, spa: int, size: int = 8) -> int:
        data = self._sw(lambda m: m.read(spa, size))
        return int.from_bytes(data, "big" if self.big else "little")

    def _sw(self, access: Callable[[rv.SparseMemory], Any]) -> Any:
        """A software access: injected faults are for the IOMMU's accesses, not for it."""
        m = self.mem.m if isinstance(self.mem, PlainPort) else self.mem
        saved = list(m._injections)
        m.clear_injections()
        try:
            return access(m)
        finally:
            m._injections.extend(saved)

    def _write(self, addr: int, data: bytes) -> None:
        self._sw(lambda m: rv.SparseMemory.write(m, addr, data))

    def _leaf(self, pt: PageTable, va: int, pa: int, size: int = 4096) -> None:
        flags = F.PTE.mask_of("U", "R", "W", "X") | A | D
        if self.r.random() < 0.2:
            flags &= ~(A | D)  # hardware A/D (or a page fault without it)
        addr = pt.map(va, pa, size, flags)
        psize = pt.geom[2]
        self._slot(pt.space.to_spa(addr), psize, lambda: self._pte_alt(psize), "pte")
        for level in range(1, pt.geom[0]):  # the pointers above it (or a superpage leaf)
            self._slot(pt.space.to_spa(pt.pte_addr(va, level)), psize, self._nonleaf_alt, "pte")

    def _pc(self, pdt: ProcessDirectory, pid: int, **kw: Any) -> None:
        addr = pdt.set_pc(pid, ens=self.r.random() < 0.7, sum_=self.r.random() < 0.5, **kw)
        spa = pdt.space.to_spa(addr)
        names = ({"ta": 0, "fsc": 8} if pdt.fmt is None else pdt.fmt.offsets).items()
        for name, off in names:
            alt = {
                "ta": self._pc_ta_alt,
                "fsc": self._fsc_alt,
                "iohgatp": self._iohgatp_alt,
            }.get(name, self._any)
            self._slot(spa + off, 8, alt, "pc")
        for level in range(1, pdt.mode):  # PDT levels = pdtp.MODE
            nl = pdt.space.to_spa(pdt.nonleaf_addr(pid, level))
            self._slot(nl, 8, self._nonleaf_alt, "dirent")

    def _device(self, did: int) -> None:
        r, caps = self.r, self.caps
        tc = TC.V.mask | (TC.SBE.mask if self.big else 0)
        if caps.ats and r.random() < 0.6:
            tc |= TC.EN_ATS.mask
            if r.random() < 0.4:
                tc |= TC.EN_PRI.mask | (TC.PRPR.mask if r.random() < 0.5 else 0)
        if caps.amo_hwad:
            tc |= (TC.SADE.mask if r.random() < 0.5 else 0) | (
                TC.GADE.mask if r.random() < 0.5 else 0
            )
        if r.random() < 0.1:
            tc |= TC.DTF.mask
        kind = r.choice(["s1", "2stage", "pdt", "pdt", "pdt", "bare", "t2gpa"])
        if self.profile == "stale" and r.random() < 0.6:
            kind = "pdt"  # many devices sharing process directories
        kw: Dict[str, int] = {"ta": F.DC_TA.encode(PSCID=r.randrange(4))}
        vm = r.randrange(2)
        msi = {
            "msiptp": self.msipt.msiptp(),
            "msi_addr_mask": 0x7,
            "msi_addr_pattern": MSI_GPA >> 12,
        }
        if kind == "s1":
            kw["fsc"] = self.s1[0].satp()
        elif kind == "2stage":
            kw.update(iohgatp=self.g[vm].satp(1 + vm), fsc=self.s1[1 + vm].satp(), **msi)
        elif kind == "pdt":
            pdt, extra, gvm = r.choice(self.pdts)
            tc |= TC.PDTV.mask | extra | (TC.DPE.mask if r.random() < 0.3 else 0)
            kw["fsc"] = pdt.pdtp()
            if gvm is not None:
                kw.update(iohgatp=self.g[gvm].satp(1), **msi)
        elif kind == "t2gpa" and caps.ats and caps.t2gpa:
            tc |= TC.EN_ATS.mask | TC.T2GPA.mask
            kw.update(iohgatp=self.g[vm].satp(1 + vm), **msi)
        if not caps.msi_flat:
            for k in msi:
                kw.pop(k, None)
        addr = self.ddt.set_dc(did, tc=tc, **kw)
        n = 8 if caps.msi_flat else 4
        alts = [
            self._tc_alt,
            self._iohgatp_alt,
            self._ta_alt,
            self._fsc_alt,
            self._msiptp_alt,
            self._any_small,
            self._any_small,
            self._any,
        ]
        for k in range(n):
            self._slot(addr + 8 * k, 8, alts[k], "dc")
            self.dc_slots.setdefault(did, []).append(self.slots[-1])
        for level in (1, 2):
            self._slot(self.ddt.nonleaf_addr(did, level), 8, self._nonleaf_alt, "dirent")
        self.pdtv[did] = bool(tc & TC.PDTV.mask)

    # -- alternative values of structure fields -----------------------------------
    def _any(self) -> int:
        return self.r.getrandbits(64)

    def _any_small(self) -> int:
        return self.r.choice([0, 1, 7, 0xFF, 0x28000, self.r.getrandbits(52)])

    def _flip(self, v: int, masks: List[int]) -> int:
        return v ^ self.r.choice(masks)

    def _tc_alt(self) -> int:
        bits = [
            TC.SXL.mask,
            TC.SBE.mask,
            TC.PDTV.mask,
            TC.DPE.mask,
            TC.T2GPA.mask,
            TC.EN_ATS.mask,
            TC.EN_PRI.mask,
            TC.PRPR.mask,
            TC.SADE.mask,
            TC.GADE.mask,
            TC.DTF.mask,
            TC.V.mask,
        ] + [TC.SXL.mask, TC.SBE.mask, self.io.gipc_tc or TC.SXL.mask] * 3
        return self._flip(self.cur, bits)

    def _fsc_alt(self) -> int:
        r = self.r
        choices = [s.satp() for s in self.s1] + [p.pdtp() for p, _, _ in self.pdts] + [0]
        v = r.choice(choices)
        if r.random() < 0.3:  # another MODE over the same table
            v = (v & ~F.IOSATP.MODE.mask) | (r.choice([0, 1, 2, 3, 8, 9, 10, 15]) << 60)
        return v

    def _iohgatp_alt(self) -> int:
        r = self.r
        v = r.choice([g.satp(r.choice([1, 2, 3])) for g in self.g] + [0])
        if r.random() < 0.2:
            v = (v & ~F.IOHGATP.MODE.mask) | (r.choice([0, 8, 9, 10, 11]) << 60)
        return v

    def _ta_alt(self) -> int:
        return F.DC_TA.encode(
            PSCID=self.r.randrange(4), RCID=self.r.randrange(3), MCID=self.r.randrange(3)
        )

    def _pc_ta_alt(self) -> int:
        return self._flip(
            self.cur,
            [F.PC_TA.V.mask, F.PC_TA.ENS.mask, F.PC_TA.SUM.mask, 1 << 12, 1 << 13, 1 << 40],
        )

    def _msiptp_alt(self) -> int:
        return self.r.choice(
            [0, self.msipt.msiptp(), self.msipt.msiptp() | (2 << 60), self.cur ^ 1 << 12]
        )

    def _msipte_alt(self) -> int:
        return self._flip(self.cur, [1, 2, 4, 6, 1 << 63, 1 << 10, 1 << 40, 0x3 << 60])

    def _pte_alt(self, psize: int) -> int:
        r = self.r
        if r.random() < 0.25:  # another page
            return (self.cur & 0x3FF) | (r.choice(self.data) >> 12 << 10)
        bits = [1, 2, 4, 8, 16, 32, 64, 128, 1 << 10, 1 << 11]
        if psize == 8:
            bits += [F.PTE.N.mask, F.PTE.PBMT.mask, 1 << F.PTE.PBMT.lsb, 1 << 60, 1 << 54]
        return self._flip(self.cur, bits)

    def _nonleaf_alt(self) -> int:
        return self._flip(self.cur, [1, 2, 8, 64, 128, 1 << 10, 1 << 30, 1 << 63])

    # -- the steps ------------------------------------------------------------
    def step(self) -> None:
        kind = self.r.choices(self.kinds, self.cum)[0]
        getattr(self, "do_" + kind)()

    def _req(self) -> rv.Request:
        r = self.r
        p = r.random()
        did = r.choice(self.hot if p < 0.6 else self.devices) if p < 0.9 else r.getrandbits(24)
        if self.focus is not None and r.random() < 0.4:
            did = self.focus
        addr = r.choice(
            [
                r.choice(IOVAS) | r.randrange(0, 0x1000, 8),
                GPA0 + r.randrange(6) * 0x1000,
                GPA_SUPER + r.randrange(512) * 0x1000,
                MSI_GPA + r.randrange(8) * 0x1000 + r.choice([0, 4, 8]),
                r.getrandbits(r.choice([12, 32, 48, 64])),
            ]
        )
        pid = r.choice(PIDS + [r.getrandbits(20)])
        if r.random() < 0.8 and not self.pdtv.get(did, False):
            pid = None  # mostly what the device's context expects
        elif r.random() < 0.2:
            pid = None
        return rv.Request(
            device_id=did,
            addr=addr,
            access=r.choice(list(rv.Access)),
            process_id=pid,
            priv=r.random() < 0.3,
            kind=r.choice([rv.RequestKind.UNTRANSLATED] * 4 + list(rv.RequestKind)),
            length=r.choice([1, 4, 8, 8, 64, 4096]),
            no_write=r.random() < 0.3,
            data=r.choice([None, None, r.getrandbits(11), r.getrandbits(32)]),
            cxl=r.random() < 0.2,
        )

    def do_request(self) -> None:
        req = self._req()
        self.log.append(f"request {req!r}")
        rsp = self.io.translate(req)
        check_response(req, rsp)
        self.responses += 1

    def do_mutate(self) -> None:
        r = self.r
        if len(self.dirty) >= self.max_dirty:
            self._restore(self.dirty[0])
        kinds = [k for k in SLOT_KINDS if k in self.slots_of]
        kind = r.choices(kinds, [SLOT_KINDS[k] for k in kinds])[0]
        if kind == "dc" and r.random() < 0.7:  # a hot device's DC, mostly DC.tc
            self.focus = r.choice(self.hot)  # requests follow the change for a while
            slots = self.dc_slots[self.focus]
            slot = slots[0] if r.random() < 0.5 else r.choice(slots)
        else:
            slot = r.choice(self.slots_of[kind])
        if slot not in self.dirty:
            self.dirty.append(slot)
        self.cur = self._rd(slot.addr, slot.size)
        how = r.random()
        if how < 0.75:
            v = slot.alts()
        elif how < 0.9:
            v = self.cur ^ (1 << r.randrange(8 * slot.size))
        else:
            v = r.getrandbits(8 * slot.size)
        v &= (1 << (8 * slot.size)) - 1
        order = "big" if self.big != (r.random() < 0.03) else "little"
        self.log.append(f"mutate {slot.addr:#x}: {self.cur:#x} -> {v:#x} ({order})")
        self._write(slot.addr, v.to_bytes(slot.size, order))  # type: ignore[arg-type]

    def do_change_after_use(self) -> None:
        """A device uses a process context; software changes the device's DC (no
        invalidation); the device makes another request with the same process_id."""
        r = self.r
        did = self.focus = r.choice(self.hot)
        pid = r.choice(PIDS)
        first = rv.Request(did, r.choice(IOVAS[:3]), process_id=pid)
        self.log.append(f"use {first!r}")
        check_response(first, self.io.translate(first))
        slots = self.dc_slots[did]
        slot = slots[r.choice([0, 0, 1, 3])]  # tc, iohgatp or fsc (pdtp)
        self.cur = self._rd(slot.addr)
        v = slot.alts()
        if slot in self.dirty:
            self.dirty.remove(slot)
        if len(self.dirty) >= self.max_dirty:
            self._restore(self.dirty[0])
        self.dirty.append(slot)
        self.log.append(f"change {slot.addr:#x}: {self.cur:#x} -> {v:#x}")
        self._write(slot.addr, v.to_bytes(8, "big" if self.big else "little"))
        ddt = self.io.ioatc.ddt
        if did in ddt and r.random() < 0.5:  # the old DC leaves the DDT cache (an eviction)
            ddt._remove(did)
        again = rv.Request(did, r.getrandbits(39) & ~0xFFF, r.choice(list(rv.Access)), pid)
        self.log.append(f"again {again!r}")
        check_response(again, self.io.translate(again))
        self.responses += 2

    def do_restore(self) -> None:
        if self.dirty:
            self._restore(self.r.choice(self.dirty))

    def _restore(self, slot: Slot) -> None:
        self.dirty.remove(slot)
        self.log.append(f"restore {slot.addr:#x} = {slot.orig:#x}")
        self._write(slot.addr, slot.orig.to_bytes(slot.size, "big" if self.big else "little"))

    def _submit(self, cmds: List[Tuple[int, int]]) -> None:
        io = self.io
        b = io.mmio_read(REG.CQB)
        base, n = F.QUEUE_BASE.PPN.get(b) << 12, 1 << (F.QUEUE_BASE.LOG2SZ_1.get(b) + 1)
        t = io.mmio_read(REG.CQT, 4)
        order = "big" if io.fctl & 1 else "little"
        for d0, d1 in cmds:
            addr = base + (t % n) * 16
            if addr + 16 <= io.pa_limit:
                self._write(addr, d0.to_bytes(8, order) + d1.to_bytes(8, order))
            t = (t + 1) % n
        self.log.append(f"submit {[(hex(a), hex(b)) for a, b in cmds]}")
        io.mmio_write(REG.CQT, t, 4)
        if not self.params.auto_process and self.r.random() < 0.8:
            io.process_commands(self.r.choice([None, 1, 2]))

    def _command(self) -> Tuple[int, int]:
        r = self.r
        op = r.choice(["vma", "gvma", "ddt", "pdt", "fence", "ats_inval", "ats_prgr"])
        gscid = r.choice([None, 1, 2, 3])
        addr = r.choice([None, r.choice(IOVAS), GPA0, GPA_SUPER, MSI_GPA, r.getrandbits(64)])
        s = bool(self.caps.s and addr is not None and r.random() < 0.3)
        C0, C1 = F.CMD_IOTINVAL0, F.CMD_IOTINVAL1
        if op in ("vma", "gvma"):
            pscid = r.choice([None, 0, 1, 5, 0x105]) if op == "vma" else None
            d0 = C0.encode(
                opcode=OPCODE.IOTINVAL,
                func3=int(op == "gvma"),
                AV=int(addr is not None),
                PSCID=pscid or 0,
                PSCV=int(pscid is not None),
                GV=int(gscid is not None),
                GSCID=gscid or 0,
            )
            return d0, C1.encode(S=int(s), ADDR=(addr or 0) >> 12)
        if op in ("ddt", "pdt"):
            did = r.choice(self.devices)
            dv = op == "pdt" or r.random() < 0.7
            pid = r.choice(PIDS) if op == "pdt" else 0
            return (
                F.CMD_IODIR0.encode(
                    opcode=OPCODE.IODIR, func3=int(op == "pdt"), PID=pid, DV=int(dv), DID=did
                ),
                0,
            )
        if op == "fence":
            wsi = bool(self.io.fctl & F.FCTL.WSI.mask and r.random() < 0.3)
            av = r.random() < 0.5
            d0 = F.CMD_IOFENCE0.encode(
                opcode=OPCODE.IOFENCE,
                func3=0,
                AV=int(av),
                WSI=int(wsi),
                PR=r.randrange(2),
                PW=r.randrange(2),
                DATA=r.getrandbits(32),
            )
            target = self.scratch if r.random() < 0.9 else r.getrandbits(64) & ~3
            return d0, F.CMD_IOFENCE1.encode(ADDR=target >> 2)
        rid = r.choice(self.devices) & 0xFFFF
        pid = r.choice([None, 5])
        d0 = F.CMD_ATS0.encode(
            opcode=OPCODE.ATS,
            func3=int(op == "ats_prgr"),
            PID=pid or 0,
            PV=int(pid is not None),
            RID=rid,
        )
        if op == "ats_inval":
            return d0, F.ATS_INVAL_PAYLOAD.encode(G=r.randrange(2), ADDR=(addr or 0) >> 12)
        return d0, F.ATS_PRGR_PAYLOAD.encode(PRGI=r.getrandbits(9), ResponseCode=r.randrange(16))

    def do_command(self) -> None:
        self._submit([self._command() for _ in range(self.r.randrange(1, 4))])

    def do_junk_command(self) -> None:
        r = self.r
        d0 = (
            r.choice([1, 2, 3, 4, r.randrange(128)]) | r.randrange(8) << 7 | r.getrandbits(54) << 10
        )
        self._submit([(d0, r.choice([0, r.getrandbits(64)]))])

    def do_mmio_write(self) -> None:
        r = self.r
        size = r.choice([4, 8, 8, 1, 2])
        off = r.choice([r.randrange(0, 4096, size), r.randrange(4096)])
        if off + size > 4096:
            off = 4096 - size
        value = r.choice([r.getrandbits(8 * size), 0, (1 << (8 * size)) - 1])
        if off in (REG.DDTP, REG.DDTP + 4) and r.random() < 0.7:
            return  # keep the DDT most of the time (do_ddtp changes it)
        self.log.append(f"mmio_write {off:#x} {value:#x} {size}")
        self.io.mmio_write(off, value, size)

    def do_mmio_read(self) -> None:
        r = self.r
        size = r.choice([4, 8, 1, 2])
        off = r.randrange(0, 4096 - 8)
        v = self.io.mmio_read(off, size)
        if not 0 <= v < 1 << (8 * size):
            raise Failure(f"mmio_read({off:#x}, {size}) = {v:#x}")

    def do_fctl(self) -> None:
        v = self.r.choice([0, 1, 2, 3, 4, 5, 6, 7, int(self.big) | 2, int(self.big)])
        self.log.append(f"fctl {v:#x}")
        self.io.mmio_write(REG.FCTL, v, 4)

    def do_ddtp(self) -> None:
        r = self.r
        v = r.choice(
            [
                F.DDTP.encode(iommu_mode=r.randrange(16), PPN=self.ddt.root >> 12),
                r.getrandbits(64),
                rv.IommuMode.BARE,
                rv.IommuMode.OFF,
            ]
        )
        if r.random() < 0.6:
            v = self.ddt.ddtp  # back to the DDT
        self.log.append(f"ddtp {v:#x}")
        self.io.mmio_write(REG.DDTP, v)

    def do_queue_base(self) -> None:
        r = self.r
        breg = r.choice([REG.CQB, REG.FQB, REG.PQB])
        ppn = r.choice([self.cq_base, self.fq_base, self.scratch]) >> 12
        if r.random() < 0.2:
            ppn = r.getrandbits(44)
        v = F.QUEUE_BASE.encode(LOG2SZ_1=r.randrange(32), PPN=ppn)
        self.log.append(f"queue base {breg:#x} = {v:#x}")
        self.io.mmio_write(breg, v)

    def do_queue_csr(self) -> None:
        r = self.r
        reg = r.choice([REG.CQCSR, REG.FQCSR, REG.PQCSR])
        v = r.choice([0x3, 0x1, 0x0, 0xF03, 0x303, 0xFFFF_FFFF])
        self.log.append(f"queue csr {reg:#x} = {v:#x}")
        self.io.mmio_write(reg, v, 4)

    def do_consume(self) -> None:
        io = self.io
        io.mmio_write(REG.FQH, io.mmio_read(REG.FQT, 4), 4)
        if self.caps.ats:
            io.mmio_write(REG.PQH, io.mmio_read(REG.PQT, 4), 4)
        io.mmio_write(REG.IPSR, 0xF, 4)

    def do_page_request(self) -> None:
        r = self.r
        msg = rv.PageRequest(
            device_id=r.choice(self.devices) if r.random() < 0.9 else r.getrandbits(24),
            addr=r.choice(IOVAS + [r.getrandbits(52) << 12]),
            read=r.random() < 0.7,
            write=r.random() < 0.4,
            last=r.random() < 0.5,
            prg_index=r.getrandbits(9),
            process_id=r.choice([None, 5, r.getrandbits(20)]),
            priv=r.random() < 0.2,
            exec_req=r.random() < 0.2,
        )
        self.log.append(f"page_request {msg!r}")
        rsp = self.io.page_request(msg)
        if rsp is not None and not isinstance(rsp, rv.PageRequestGroupResponse):
            raise Failure(f"page_request returned {rsp!r}")

    def _ats_message(self, msg: Any) -> None:
        if isinstance(msg, rv.InvalidationRequest):
            self.ats_out.append(msg)
            del self.ats_out[:-64]

    def do_completion(self) -> None:
        r = self.r
        if self.ats_out and r.random() < 0.8:
            msg = self.ats_out.pop(r.randrange(len(self.ats_out)))
            did, vec = msg.device_id, 1 << msg.itag
        else:
            did, vec = r.choice(self.devices), r.getrandbits(32)
        cc = r.choice([1, 1, 0, r.randrange(8)])
        self.log.append(f"completion {did:#x} {vec:#x} cc={cc}")
        done = self.io.invalidation_completion(did, vec, cc)
        if not 0 <= done <= 32:
            raise Failure(f"invalidation_completion returned {done}")

    def do_tick(self) -> None:
        n = self.r.choice([1, 50, 1000, 1 << 20])
        self.log.append(f"tick {n}")
        self.io.tick(n)

    def do_ats_timeout(self) -> None:
        self.log.append("ats_timeout")
        self.io.ats_timeout()

    def do_inject(self) -> None:
        r = self.r
        slot = r.choice(self.slots)
        fault = r.choice(list(rv.MemoryFault))
        where = r.choice(
            [(slot.addr, slot.size), (self.cq_base, 64), (self.fq_base, 64), (self.mrif, 64)]
        )
        self.log.append(f"inject {where[0]:#x}+{where[1]} {fault}")
        self.mem.inject(where[0], where[1], fault)

    def do_clear_injections(self) -> None:
        self.log.append("clear_injections")
        self.mem.clear_injections()

    def do_datapath_error(self) -> None:
        self.log.append("datapath_error")
        self.io.inject_datapath_error(self.r.choice([1, 2]))

    def do_debug(self) -> None:
        r = self.r
        io = self.io
        req = self._req()
        ctl = F.TR_REQ_CTL.encode(
            Go_Busy=1,
            Priv=int(req.priv),
            Exe=int(req.access == rv.Access.EXECUTE),
            NW=r.randrange(2),
            PID=req.process_id or 0,
            PV=int(req.process_id is not None),
            DID=req.device_id,
        )
        self.log.append(f"debug {req.addr:#x} ctl={ctl:#x}")
        io.mmio_write(REG.TR_REQ_IOVA, req.addr)
        io.mmio_write(REG.TR_REQ_CTL, ctl)

    def do_api_invalidate(self) -> None:
        r = self.r
        io = self.io
        how = r.randrange(3)
        self.log.append(f"api_invalidate {how}")
        if how == 0:
            io.invalidate_ddt()
        elif how == 1:
            io.invalidate_ddt(r.choice(self.devices))
        else:
            io.invalidate_pdt(r.choice(self.devices), r.choice(PIDS))

    def do_hpm(self) -> None:
        r = self.r
        x = r.randrange(1, 32)
        v = F.IOHPMEVT.encode(
            eventID=r.randrange(1, 10),
            DMASK=r.randrange(2),
            PID_PSCID=r.choice([0, 5, 1]),
            DID_GSCID=r.choice(self.devices + [1]),
            PV_PSCV=r.randrange(2),
            DV_GSCV=r.randrange(2),
            IDT=r.randrange(2),
        )
        self.log.append(f"hpm evt{x} = {v:#x}")
        self.io.mmio_write(REG.iohpmevt(x), v)

    # -- invariants ------------------------------------------------------------
    def check(self) -> None:
        io, p = self.io, self.params
        bounds = [
            ("ddt_cache", len(io.ddt_cache), p.ddt_cache_size),
            ("pdt_cache", len(io.pdt_cache), p.pdt_cache_size),
            ("iotlb", len(io.iotlb), p.iotlb_size),
            ("msi_cache", len(io.msi_cache), p.msi_cache_size),
            ("gwalk_cache", len(io.gwalk_cache), p.gwalk_cache_size),
            ("outstanding ITAGs", len(io.invalidations.outstanding), 32),
            ("timed-out ITAGs", len(io.invalidations.timed_out), 32),
        ]
        for name, n, cap in bounds:
            if n > cap:
                raise Failure(f"{name} holds {n} entries, more than its bound {cap}")
        for base, regs in (
            (REG.CQB, (REG.CQH, REG.CQT)),
            (REG.FQB, (REG.FQH, REG.FQT)),
            (REG.PQB, (REG.PQH, REG.PQT)),
        ):
            size = 1 << (F.QUEUE_BASE.LOG2SZ_1.get(io.mmio_read(base)) + 1)
            for reg in regs:
                if io.mmio_read(reg, 4) >= size:
                    raise Failure(f"queue index at {reg:#x} beyond the queue size {size}")
        big = bool(io.fctl & F.FCTL.BE.mask)
        for raw in self.mem.records:
            d0 = int.from_bytes(raw[:8], "big" if big else "little")
            cause, ttyp = R0.CAUSE.get(d0), R0.TTYP.get(d0)
            if cause not in CAUSES or ttyp not in TTYPS:
                raise Failure(f"fault record {raw.hex()}: CAUSE {cause} TTYP {ttyp}")
            if not R0.PV.get(d0) and (R0.PID.get(d0) or R0.PRIV.get(d0)):
                raise Failure(f"fault record {raw.hex()}: PID/PRIV without PV")
            if ttyp == 0 and (R0.DID.get(d0) or R0.PV.get(d0)):
                raise Failure(f"fault record {raw.hex()}: DID/PV with TTYP 0")
        self.mem.records.clear()


def run(
    seed: int,
    steps: int,
    profile: str = "campaign",
    verbose: bool = False,
    **world: Any,
) -> World:
    """Build the world of ``seed`` and run ``steps`` steps, checking after each.

    Raises :class:`Failure` (or the model's exception) with the seed and step in the
    message and the last steps in ``World.log``.
    """
    w = World(seed, profile, **world)
    for k in range(steps):
        w.log = w.log[-20:]
        try:
            w.step()
            w.check()
        except Exception as e:
            tail = "\n    ".join(w.log[-12:])
            raise Failure(
                f"seed {seed} ({profile}) step {k}: {type(e).__name__}: {e}\n"
                f"  last steps:\n    {tail}"
            ) from e
        if verbose:
            print(f"{k:6d} {w.log[-1] if w.log else ''}")
    return w


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, help="run new worlds for this long")
    ap.add_argument("--examples", type=int, help="run this many worlds")
    ap.add_argument("--seed", type=int, help="replay the world of this seed (then stop)")
    ap.add_argument("--first-seed", type=int, help="first seed (default: from the clock)")
    ap.add_argument("--steps", type=int, default=400, help="steps per world (default 400)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default=None)
    ap.add_argument("--verbose", action="store_true", help="print each step (with --seed)")
    args = ap.parse_args(argv)
    profiles = [args.profile] if args.profile else ["campaign", "campaign", "stale"]
    if args.seed is not None:
        try:
            w = run(args.seed, args.steps, profiles[args.seed % len(profiles)], args.verbose)
        except Failure as f:
            print(f"FAIL {f}")
            traceback.print_exception(f.__cause__ or f)
            return 1
        print(f"seed {args.seed}: {args.steps} steps, {w.responses} responses, ok")
        return 0
    first = args.first_seed if args.first_seed is not None else int(time.time() * 1000) % 10**9
    deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
    limit = args.examples if args.examples is not None else (None if deadline else 100)
    print(f"riscv-iommu fuzz campaign: seeds from {first}, {args.steps} steps each", flush=True)
    failures: List[int] = []
    n = steps = 0
    t0 = time.monotonic()
    while (limit is None or n < limit) and (deadline is None or time.monotonic() < deadline):
        seed = first + n
        try:
            run(seed, args.steps, profiles[seed % len(profiles)])
        except Failure as f:
            failures.append(seed)
            print(f"FAIL {f}", flush=True)
            print(f"  replay: scripts/fuzz --seed {seed} --steps {args.steps}", flush=True)
        n += 1
        steps += args.steps
        if n % 50 == 0:
            rate = steps / (time.monotonic() - t0)
            print(f"  {n} worlds, {steps} steps ({rate:,.0f} steps/s)", flush=True)
    print(
        f"done: {n} worlds (seeds {first}..{first + n - 1}), {steps} steps, "
        f"{len(failures)} failing: {failures}",
        flush=True,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
