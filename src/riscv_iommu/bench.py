"""The translation benchmark cases (``riscv-iommu bench``, ``benchmarks/``).

Each case builds its tables with the host-side
builders, checks the translation once, then times repeated translations of
the same request and reports the best of several rounds.

Cases (``walk`` = every request walks: every cache has capacity 0):

* ``sv39x4-2stage-iotlb-hit``: a repeated translation that needs no walk
  (default caches: DDT, PDT and IOTLB hit);

* ``sv39x4-2stage-walk``: Sv39 + Sv39x4 with a 3-level DDT and a PD20 PDT in
  guest memory -- the full process, 38 memory reads per request;
* ``sv39x4-2stage-dirs-cached``: the same with the DDT and PDT caches on --
  the page-table walk only (15 reads: 3 first-stage PTEs, each G-stage
  translated, plus the final G-stage walk);
* ``sv39x4-2stage-walk-caches``: the page-table walk with the walk caches a
  hardware IOMMU has (DDT, PDT and G-stage walk caches on, IOTLB off): the
  first-stage PTEs are read, their G-stage translations come from the
  G-stage walk cache, the final GPA is walked (6 reads);
* ``sv57x4-...``: the same three for Sv57 + Sv57x4;
* ``sv39-single-walk``: single-stage Sv39 (iohgatp Bare), 3-level DDT.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Tuple

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.tables import (
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)

SV39, SV48, SV57 = 8, 9, 10
PD20 = 3
DEVICE = 0xABCDE
PASID = 0x12345
IOVA = 0x1234_5678


def _system(
    cached: bool, iotlb: bool = False, gwalk: bool = False
) -> Tuple[rv.SparseMemory, rv.Iommu, PageAllocator, DeviceDirectory]:
    mem = rv.SparseMemory()
    size = 64 if cached else 0
    params = rv.IommuParams(
        ddt_cache_size=size,
        pdt_cache_size=size,
        iotlb_size=2048 if iotlb else 0,
        gwalk_cache_size=256 if gwalk else 0,
        msi_cache_size=0,
    )
    iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full(), params=params)
    alloc = PageAllocator(mem)
    ddt = DeviceDirectory(mem, alloc, levels=3, msi_flat=True)
    iommu.mmio_write(rv.REG.DDTP, ddt.ddtp)
    return mem, iommu, alloc, ddt


def two_stage(
    mode: int, cached: bool, iotlb: bool = False, gwalk: bool = False
) -> Callable[[], rv.Response]:
    """Sv39/48/57 + the matching x4 G-stage, PD20 PDT and tables in guest memory."""
    mem, iommu, alloc, ddt = _system(cached, iotlb, gwalk)
    g = PageTable(HostSpace(mem, alloc), mode, stage="g")
    guest = GuestSpace(g, alloc)
    s1 = PageTable(guest, mode, stage="s")
    pdt = ProcessDirectory(guest, PD20)
    buf = alloc.alloc()
    guest.back(0x4000_0000, buf)
    s1.map(IOVA & ~0xFFF, 0x4000_0000)
    pdt.set_pc(PASID, fsc=s1.satp(), pscid=7)
    tc = F.DC_TC.encode(V=1, PDTV=1)
    ddt.set_dc(DEVICE, tc=tc, iohgatp=g.satp(5), fsc=pdt.pdtp())
    req = rv.Request(DEVICE, IOVA, process_id=PASID)
    rsp = iommu.translate(req)
    assert rsp.status == rv.Status.SUCCESS and rsp.addr == buf | (IOVA & 0xFFF), rsp
    tr = iommu.translate
    return lambda: tr(req)


def single_stage() -> Callable[[], rv.Response]:
    """Single-stage Sv39 (iohgatp Bare), iosatp in the DC."""
    mem, iommu, alloc, ddt = _system(False)
    s1 = PageTable(HostSpace(mem, alloc), SV39, stage="s")
    buf = alloc.alloc()
    s1.map(IOVA & ~0xFFF, buf)
    ddt.set_dc(DEVICE, tc=1, ta=F.DC_TA.encode(PSCID=3), fsc=s1.satp())
    req = rv.Request(DEVICE, IOVA)
    rsp = iommu.translate(req)
    assert rsp.status == rv.Status.SUCCESS and rsp.addr == buf | (IOVA & 0xFFF), rsp
    tr = iommu.translate
    return lambda: tr(req)


CASES: Dict[str, Callable[[], Callable[[], rv.Response]]] = {
    "sv39x4-2stage-iotlb-hit": lambda: two_stage(SV39, True, True, True),
    "sv39x4-2stage-walk": lambda: two_stage(SV39, False),
    "sv39x4-2stage-dirs-cached": lambda: two_stage(SV39, True),
    "sv39x4-2stage-walk-caches": lambda: two_stage(SV39, True, False, True),
    "sv57x4-2stage-walk": lambda: two_stage(SV57, False),
    "sv57x4-2stage-dirs-cached": lambda: two_stage(SV57, True),
    "sv57x4-2stage-walk-caches": lambda: two_stage(SV57, True, False, True),
    "sv39-single-walk": single_stage,
}


def measure(fn: Callable[[], rv.Response], seconds: float, rounds: int = 5) -> float:
    """Best-of-``rounds`` translations per second."""
    n = 1000
    while True:  # size a batch to ~seconds/rounds
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt > seconds / rounds / 4:
            break
        n *= 2
    batch = max(1, int(n * (seconds / rounds) / dt))
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        best = max(best, batch / (time.perf_counter() - t0))
    return best


def run(
    seconds: float = 2.0,
    cases: Optional[List[str]] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> Dict[str, float]:
    """Run the benchmark cases; returns {case: translations per second}.

    ``progress(done, total, case)`` is called before each case and at the end.
    """
    names = cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown benchmark case(s): {', '.join(unknown)}")
    out = {}
    for k, name in enumerate(names):
        if progress is not None:
            progress(k, len(names), name)
        out[name] = measure(CASES[name](), seconds)
    if progress is not None:
        progress(len(names), len(names), "")
    return out
