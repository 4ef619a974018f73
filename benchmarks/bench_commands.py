"""IOTINVAL throughput with a full IOTLB (commands per second, through the CQ).

Run: ``python benchmarks/bench_commands.py [--json]``.

The IOTLB (2,048 entries) is filled with translations of 2,048 pages of one
address space (GSCID 1, PSCID 1) plus one page of another (GSCID 2).  Cases:

* ``iotinval-vma-addr``: ``IOTINVAL.VMA`` GV=1 PSCV=1 AV=1 for one page, the
  entry refilled between commands (cost independent of the cache size);
* ``iotinval-gvma-other-gscid``: ``IOTINVAL.GVMA`` GV=1 for GSCID 2 with the
  cache full of GSCID 1 (nothing of GSCID 1 is visited);
* ``iotinval-vma-all``: ``IOTINVAL.VMA`` GV=1 AV=0 dropping all 2,048 entries,
  refilled each time (entries removed per second).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Dict, Tuple

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.tables import (
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    PageAllocator,
    PageTable,
)

SV39 = 8
PAGES = 2048


def _setup() -> Tuple[rv.Iommu, rv.SparseMemory, int, Callable[[], None]]:
    mem = rv.SparseMemory()
    params = rv.IommuParams(iotlb_size=PAGES + 1, auto_process=False)
    iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full(), params=params)
    alloc = PageAllocator(mem)
    host = HostSpace(mem, alloc)
    ddt = DeviceDirectory(mem, alloc, levels=3)
    for gscid, device in ((1, 1), (2, 2)):
        g = PageTable(host, SV39, stage="g")
        s1 = PageTable(GuestSpace(g, alloc, gpa_base=0x4000_0000), SV39, stage="s")
        for k in range(PAGES if gscid == 1 else 1):
            g.map(0x8000_0000 + (k << 12), 0x1_0000_0000 + (k << 12))
            s1.map(k << 12, 0x8000_0000 + (k << 12))
        ddt.set_dc(device, tc=1, iohgatp=g.satp(gscid), ta=F.DC_TA.encode(PSCID=1), fsc=s1.satp())
    iommu.mmio_write(rv.REG.DDTP, ddt.ddtp)
    cq = alloc.alloc(1 << 16, 1 << 16)
    iommu.mmio_write(rv.REG.CQB, F.QUEUE_BASE.encode(LOG2SZ_1=11, PPN=cq >> 12))
    iommu.mmio_write(rv.REG.CQCSR, 1, 4)
    reqs = [rv.Request(1, k << 12) for k in range(PAGES)]
    tr = iommu.translate

    def fill() -> None:
        for r in reqs:
            tr(r)
        tr(rv.Request(2, 0))

    fill()
    assert len(iommu.iotlb) == PAGES + 1
    return iommu, mem, cq, fill


def _run(
    iommu: rv.Iommu,
    mem: rv.SparseMemory,
    cq: int,
    cmd: Tuple[int, int],
    n: int,
    refill: Callable[[], None],
) -> float:
    size = 1 << 12
    t_cmd = 0.0
    done = 0
    while done < n:
        batch = min(n - done, size - 1)
        head = iommu.mmio_read(rv.REG.CQH, 4)
        for k in range(batch):
            slot = cq + ((head + k) % size) * 16
            mem.write_u64(slot, cmd[0])
            mem.write_u64(slot + 8, cmd[1])
        iommu.mmio_write(rv.REG.CQT, (head + batch) % size, 4)
        t0 = time.perf_counter()
        iommu.process_commands()
        t_cmd += time.perf_counter() - t0
        done += batch
        refill()
    return n / t_cmd


def run() -> Dict[str, float]:
    """Commands (or entries) per second for each case."""
    out: Dict[str, float] = {}
    iommu, mem, cq, fill = _setup()
    vma = (
        F.CMD_IOTINVAL0.encode(opcode=1, func3=0, AV=1, PSCV=1, PSCID=1, GV=1, GSCID=1),
        F.CMD_IOTINVAL1.encode(ADDR=0x5),
    )
    out["iotinval-vma-addr"] = _run(iommu, mem, cq, vma, 20000, lambda: None)
    gvma = (F.CMD_IOTINVAL0.encode(opcode=1, func3=1, GV=1, GSCID=2), 0)
    out["iotinval-gvma-other-gscid"] = _run(iommu, mem, cq, gvma, 20000, lambda: None)
    vma_all = (F.CMD_IOTINVAL0.encode(opcode=1, func3=0, GV=1, GSCID=1), 0)
    rate = _run(iommu, mem, cq, vma_all, 1, fill)
    out["iotinval-vma-all-entries-removed"] = rate * PAGES
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    args = ap.parse_args()
    res = run()
    if args.json:
        print(json.dumps(res, indent=2))
        return
    for name, rate in res.items():
        unit = "entries/s" if name.endswith("removed") else "commands/s"
        print(f"{name:34s} {rate:12,.0f} {unit}")


if __name__ == "__main__":
    main()
