"""The translation benchmark cases (``riscv-iommu bench``, ``benchmarks/``).

Each case builds its tables with the host-side builders, warms up with one
full rotation of its requests (checking every response: status and SPA),
counts the memory reads a translation makes (from the event stream, in a
separate pass: never in the timed loop), then times translations of the
rotation and reports the best of several rounds in microseconds per
translation.

**Reference geometry** (the ``ref-*`` cases, the default set): DDT, PDT and
IOTLB caches of 2 entries with LRU replacement, no MSI PTE or G-stage walk
cache; a 3-level DDT of extended (64-byte) DCs; a PD20 PDT in guest memory;
every leaf PTE (first stage and G-stage) URWX with A and D set.  Misses come
from rotating 8 pages (a 2-entry IOTLB never holds the next one); the cold
cases also rotate 3 devices (each with its own VM, PDT and page tables), so
the 2-entry DDT and PDT caches miss too.

* ``ref-sv39x4-iotlb-hit``: Sv39 + Sv39x4, the same request repeated: DDT,
  PDT and IOTLB hits (through the whole-response shortcut, which replays the
  hits' statistics and LRU updates exactly), 0 reads;
* ``ref-sv39x4-iotlb-miss``: 8 pages rotated, DC and PC cached: 3
  first-stage PTEs, each address G-stage translated (3 reads each), and the
  final G-stage walk: 15 reads;
* ``ref-sv39x4-cold``: 3 devices and 8 pages rotated: every cache misses:
  2 DDT entries + the 8-doubleword DC, the PD20 walk (2 PDT entries + the
  2-doubleword PC, each address G-stage translated: 13 reads) and the 15 of
  the page-table walk: 38 reads;
* ``ref-sv57x4-iotlb-miss``: Sv57 + Sv57x4, DC and PC cached: 5 x (5 + 1)
  + 5 = 35 reads;
* ``ref-sv39-iotlb-miss``: single-stage Sv39 (iohgatp Bare, iosatp in the
  DC), DC cached: 3 reads;
* ``ref-sv39-ddt-walk``: the same with 3 devices rotated: 2 DDT entries +
  the DC + 3 PTEs = 13 reads.

**Other cases** (run by name, or all with ``--all``): large caches, every
cache off (capacity 0) and the walk caches a hardware IOMMU has:

* ``sv39x4-2stage-walk`` / ``sv57x4-2stage-walk``: every cache capacity 0,
  every structure walked for one repeated request (38 / 64 reads);
* ``sv39x4-2stage-walk-caches`` / ``sv57x4-2stage-walk-caches``: DDT, PDT
  and G-stage walk caches on, IOTLB off (6 / 10 reads);
* ``sv39-single-walk``: single-stage Sv39, every cache off (13 reads).
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu._mypyc import compiled
from riscv_iommu.events import MemAccess
from riscv_iommu.host.tables import (
    URWX,
    A,
    D,
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)

#: the clock of the timed rounds (CPU time of the calling thread)
_clock = time.thread_time

__all__ = ["Case", "Workload", "CASES", "REFERENCE", "build", "measure", "count_reads", "run"]

SV39, SV48, SV57 = 8, 9, 10
PD20 = 3
#: device_ids with a non-zero DDI[2] and DDI[1]: every DDT level is walked
DEVICES = (0xABCDE, 0x5A5A5, 0x31337)
PASID = 0x12345
IOVA = 0x1234_5000  # first of the rotated pages
PAGES = 8
LEAF = URWX | A | D


@dataclass
class Workload:
    """A built case: the translate function, the requests of one rotation and
    the SPA each must translate to."""

    iommu: rv.Iommu
    requests: List[rv.Request]
    expected: List[int]


@dataclass(frozen=True)
class Case:
    """One benchmark case: how to build it, its memory reads per translation
    (checked when it is built) and the issue's target in microseconds (None:
    no target)."""

    name: str
    title: str
    make: Callable[[], Workload]
    reads: int
    target_us: Optional[float] = None


def build() -> str:
    """Which build of the model is imported: ``"compiled"`` (mypyc) or ``"pure"``."""
    return "compiled" if compiled() else "pure"


def _params(size: int, gwalk: int = 0) -> rv.IommuParams:
    return rv.IommuParams(
        ddt_cache_size=size,
        pdt_cache_size=size,
        iotlb_size=size,
        msi_cache_size=0,
        gwalk_cache_size=gwalk,
        cache_policy="lru",
    )


class _Guest(GuestSpace):
    """Guest memory whose G-stage leaves (table pages too) are URWX + A + D."""

    def back(self, gpa: int, spa: Optional[int] = None, flags: int = LEAF) -> int:
        return super().back(gpa, spa, flags)


def _system(
    params: rv.IommuParams,
) -> Tuple[rv.SparseMemory, rv.Iommu, PageAllocator, DeviceDirectory]:
    mem = rv.SparseMemory()
    iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full(), params=params)
    alloc = PageAllocator(mem)
    ddt = DeviceDirectory(mem, alloc, levels=3, msi_flat=True)
    iommu.mmio_write(rv.REG.DDTP, ddt.ddtp)
    return mem, iommu, alloc, ddt


def two_stage(
    mode: int, params: rv.IommuParams, devices: int = 1, pages: int = PAGES
) -> Workload:
    """Sv39/48/57 + the matching x4 G-stage; PD20 PDT and first-stage tables in
    guest memory; ``devices`` devices, each with its own VM (GSCID), PDT and
    first-stage table, each mapping ``pages`` pages (leaves URWX + A + D)."""
    mem, iommu, alloc, ddt = _system(params)
    host = HostSpace(mem, alloc)
    spas: Dict[Tuple[int, int], int] = {}
    for d in range(devices):
        g = PageTable(host, mode, stage="g")
        guest = _Guest(g, alloc)
        s1 = PageTable(guest, mode, stage="s")
        pdt = ProcessDirectory(guest, PD20)
        for k in range(pages):
            gpa = 0x4000_0000 + (k << 12)
            spas[d, k] = guest.back(gpa, flags=LEAF)
            s1.map(IOVA + (k << 12), gpa, flags=LEAF)
        pdt.set_pc(PASID, fsc=s1.satp(), pscid=7 + d)
        tc = F.DC_TC.encode(V=1, PDTV=1)
        ddt.set_dc(DEVICES[d], tc=tc, iohgatp=g.satp(5 + d), fsc=pdt.pdtp())
    return _rotation(iommu, devices, pages, spas, PASID)


def single_stage(params: rv.IommuParams, devices: int = 1, pages: int = PAGES) -> Workload:
    """Single-stage Sv39 (iohgatp Bare), iosatp in the DC, host tables."""
    mem, iommu, alloc, ddt = _system(params)
    host = HostSpace(mem, alloc)
    spas: Dict[Tuple[int, int], int] = {}
    for d in range(devices):
        s1 = PageTable(host, SV39, stage="s")
        for k in range(pages):
            spas[d, k] = alloc.alloc()
            s1.map(IOVA + (k << 12), spas[d, k], flags=LEAF)
        ddt.set_dc(DEVICES[d], tc=1, ta=F.DC_TA.encode(PSCID=3 + d), fsc=s1.satp())
    return _rotation(iommu, devices, pages, spas, None)


def _rotation(
    iommu: rv.Iommu,
    devices: int,
    pages: int,
    spas: Dict[Tuple[int, int], int],
    pasid: Optional[int],
) -> Workload:
    """Request i goes to device i mod ``devices`` and page i mod ``pages``."""
    reqs: List[rv.Request] = []
    expected: List[int] = []
    period = math.lcm(devices, pages)
    for i in range(period):
        d, k = i % devices, i % pages
        offset = 0x234 + 8 * i
        reqs.append(rv.Request(DEVICES[d], IOVA + (k << 12) + offset, process_id=pasid))
        expected.append(spas[d, k] + offset)
    return Workload(iommu, reqs, expected)


def warm_up(w: Workload) -> None:
    """Translate one rotation, checking every response (status and SPA)."""
    tr = w.iommu.translate
    for req, spa in zip(w.requests, w.expected, strict=True):
        rsp = tr(req)
        if rsp.status != rv.Status.SUCCESS or rsp.addr != spa:
            raise AssertionError(f"benchmark request {req!r}: expected {spa:#x}, got {rsp!r}")


def count_reads(w: Workload, rotations: int = 2) -> float:
    """Memory reads per translation (8 bytes at most each), from the event stream."""
    n = 0

    def observer(event: Any) -> None:
        nonlocal n
        if type(event) is MemAccess and event.op == "read":
            n += 1

    iommu = w.iommu
    iommu.attach(observer)
    try:
        for _ in range(rotations):
            warm_up(w)
    finally:
        iommu.detach(observer)
    return n / (rotations * len(w.requests))


REF = _params(2)
CASES: Dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "ref-sv39x4-iotlb-hit",
            "Sv39+Sv39x4, same request repeated (IOTLB hit, statistics exact)",
            lambda: two_stage(SV39, REF, pages=1),
            0,
            0.9,
        ),
        Case(
            "ref-sv39x4-iotlb-miss",
            "Sv39+Sv39x4, IOTLB miss, DC and PC cached",
            lambda: two_stage(SV39, REF),
            15,
            11.0,
        ),
        Case(
            "ref-sv39x4-cold",
            "Sv39+Sv39x4, every cache missing",
            lambda: two_stage(SV39, REF, devices=3),
            38,
            20.0,
        ),
        Case(
            "ref-sv57x4-iotlb-miss",
            "Sv57+Sv57x4, IOTLB miss, DC and PC cached",
            lambda: two_stage(SV57, REF),
            35,
            25.0,
        ),
        Case(
            "ref-sv39-iotlb-miss",
            "single-stage Sv39, IOTLB miss, DC cached",
            lambda: single_stage(REF),
            3,
            3.5,
        ),
        Case(
            "ref-sv39-ddt-walk",
            "single-stage Sv39, DDT walked too",
            lambda: single_stage(REF, devices=3),
            13,
            5.5,
        ),
        Case(
            "sv39x4-2stage-walk",
            "Sv39+Sv39x4, every cache off, every structure walked",
            lambda: two_stage(SV39, _params(0), pages=1),
            38,
        ),
        Case(
            "sv39x4-2stage-walk-caches",
            "Sv39+Sv39x4, DDT/PDT/G-stage walk caches on, IOTLB off",
            lambda: two_stage(SV39, _walk_caches(), pages=1),
            6,
        ),
        Case(
            "sv57x4-2stage-walk",
            "Sv57+Sv57x4, every cache off, every structure walked",
            lambda: two_stage(SV57, _params(0), pages=1),
            64,
        ),
        Case(
            "sv57x4-2stage-walk-caches",
            "Sv57+Sv57x4, DDT/PDT/G-stage walk caches on, IOTLB off",
            lambda: two_stage(SV57, _walk_caches(), pages=1),
            10,
        ),
        Case(
            "sv39-single-walk",
            "single-stage Sv39, every cache off",
            lambda: single_stage(_params(0), pages=1),
            13,
        ),
    )
}
#: The reference-geometry cases (the default set of ``riscv-iommu bench``)
REFERENCE = [name for name in CASES if name.startswith("ref-")]


def _walk_caches() -> rv.IommuParams:
    return rv.IommuParams(
        ddt_cache_size=64, pdt_cache_size=64, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=256
    )


def prepare(name: str) -> Tuple[Workload, float]:
    """Build case ``name``, warm it up (every response checked) and count its reads;
    raises AssertionError when the reads differ from the case's."""
    case = CASES[name]
    w = case.make()
    warm_up(w)
    reads = count_reads(w)
    if reads != case.reads:
        raise AssertionError(f"{name}: {reads} reads per translation, expected {case.reads}")
    warm_up(w)
    return w, reads


def measure(w: Workload, seconds: float, rounds: int = 5) -> float:
    """Best-of-``rounds`` microseconds of CPU time per translation of ``w``'s rotation.

    CPU time of this thread (``time.thread_time``), not wall time: on a shared
    machine the wall clock also counts the time other processes ran.
    """
    tr = w.iommu.translate
    period = w.requests
    n = len(period)
    batch = period * max(1, 512 // n)
    while True:  # size a batch to ~seconds/rounds/4
        t0 = _clock()
        for r in batch:
            tr(r)
        dt = _clock() - t0
        if dt > seconds / rounds / 4:
            break
        batch = batch * 2
    reps = max(1, round(seconds / rounds / dt))
    best = float("inf")
    for _ in range(rounds):
        t0 = _clock()
        for _ in range(reps):
            for r in batch:
                tr(r)
        best = min(best, (_clock() - t0) / (reps * len(batch)))
    return best * 1e6


def run(
    seconds: float = 1.0,
    cases: Optional[List[str]] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
    rounds: int = 5,
) -> Dict[str, Any]:
    """Run the benchmark cases (default: the reference geometry).

    Returns ``{"build": "pure" | "compiled", "python": version, "cases":
    {name: {"title", "us", "per_second", "reads", "target_us"}}}``.
    ``progress(done, total, case)`` is called before each case and at the end.
    """
    names = cases or list(REFERENCE)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark case(s): {', '.join(unknown)}")
    out: Dict[str, Any] = {}
    for k, name in enumerate(names):
        if progress is not None:
            progress(k, len(names), name)
        w, reads = prepare(name)
        us = measure(w, seconds, rounds)
        out[name] = {
            "title": CASES[name].title,
            "us": us,
            "per_second": 1e6 / us,
            "reads": reads,
            "target_us": CASES[name].target_us,
        }
    if progress is not None:
        progress(len(names), len(names), "")
    return {"build": build(), "python": platform.python_version(), "cases": out}
