"""GIPC at scale: one device, 4,096 PASIDs bound across 1,024 VMs.

Run: ``python benchmarks/bench_gipc.py [--json] [--revision 2024|2025]``.

Builds the scenario through the host-side builders, then measures the cost
of a translation for the 1-PASID case and for requests spread over all
4,096 PASIDs, both with every request walking (all caches capacity 0: the
per-translation work the layout itself costs) and with the default caches.
The issue's requirement is that the per-translation cost of the large
layout stays within 20% of the 1-PASID case; the walk figures show it (the
walk depth does not depend on how many PASIDs or VMs exist).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu import gipc
from riscv_iommu.host.tables import (
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)

SV39 = 8
PD20 = 3
DEVICE = 0x42
IOVA = 0x1000


def build(pasids: int, vms: int, revision: str, caches: bool) -> Callable[[int], rv.Response]:
    """The scenario; returns ``translate(i)`` for the i-th bound PASID.

    With ``caches`` the PDT cache and IOTLB hold the whole working set.
    """
    mem = rv.SparseMemory()
    sizes = (
        {"pdt_cache_size": 8192, "iotlb_size": 8192}
        if caches
        else {
            "ddt_cache_size": 0,
            "pdt_cache_size": 0,
            "iotlb_size": 0,
        }
    )
    params = rv.IommuParams(gipc_revision=revision, **sizes)
    iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full(gipc=True), params=params)
    fmt = gipc.pc_format(iommu)
    assert fmt is not None
    alloc = PageAllocator(mem)
    host = HostSpace(mem, alloc)
    g_tables = []
    for _ in range(vms):
        g = PageTable(host, SV39, stage="g")
        g_tables.append((g, GuestSpace(g, alloc)))
    pdt = ProcessDirectory(host, PD20, fmt=fmt)
    rng = random.Random(1)
    ids: List[int] = rng.sample(range(1, 1 << 20), pasids)
    for n, pasid in enumerate(ids):
        v = n % vms
        g, guest = g_tables[v]
        gpa = 0x8000_0000 + (n << 12)
        guest.back(gpa)
        s1 = PageTable(host if fmt.s1_at_spa else guest, SV39, stage="s")
        s1.map(IOVA, gpa)
        pdt.set_pc(pasid, fsc=s1.satp(), pscid=n, iohgatp=g.satp(v + 1))
    ddt = DeviceDirectory(mem, alloc, levels=3)
    ddt.set_dc(DEVICE, tc=F.DC_TC.encode(V=1, PDTV=1) | (1 << 12), fsc=pdt.pdtp())
    iommu.mmio_write(rv.REG.DDTP, ddt.ddtp)
    reqs = [rv.Request(DEVICE, IOVA, process_id=p) for p in ids]
    for r in reqs:
        assert iommu.translate(r).status == rv.Status.SUCCESS
    tr = iommu.translate
    n_ = len(reqs)
    return lambda i: tr(reqs[i % n_])


def measure(fn: Callable[[int], rv.Response], count: int, rounds: int = 5) -> float:
    """Best-of-rounds translations per second over ``count`` requests cycling the PASIDs."""
    order = list(range(count))
    random.Random(2).shuffle(order)
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in order:
            fn(i)
        best = max(best, count / (time.perf_counter() - t0))
    return best


def run(revision: str = "2024", count: int = 20000) -> Dict[str, float]:
    """All cases; returns translations/s per case and the walk-cost ratio."""
    out: Dict[str, float] = {}
    for caches in (False, True):
        tag = "cached" if caches else "walk"
        one = build(1, 1, revision, caches)
        many = build(4096, 1024, revision, caches)
        out[f"1-pasid-{tag}"] = measure(one, count)
        out[f"4096-pasids-1024-vms-{tag}"] = measure(many, count)
    out["walk-cost-ratio"] = out["1-pasid-walk"] / out["4096-pasids-1024-vms-walk"]
    out["cached-cost-ratio"] = out["1-pasid-cached"] / out["4096-pasids-1024-vms-cached"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    ap.add_argument("--revision", choices=["2024", "2025"], default="2024")
    ap.add_argument("--count", type=int, default=20000, help="requests per round")
    args = ap.parse_args()
    res = run(args.revision, args.count)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    for name, value in res.items():
        if name.endswith("ratio"):
            print(f"{name:34s} {value:12.2f} (4,096-PASID cost / 1-PASID cost)")
        else:
            print(f"{name:34s} {value:12,.0f} translations/s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
