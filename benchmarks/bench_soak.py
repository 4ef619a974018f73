"""Soak: the model's memory under a long mixed workload stays flat.

Every one of the 2**24 device_ids has a valid device context and every one of the 2**20
process_ids a valid process context: the DDT and PDT non-leaf entries all point to the
same next-level page (so a handful of pages describe them all).  Each DC selects a
two-stage translation (Sv39 over Sv39x4, GSCID 1) with the PDT, the first-stage tables
and the data in guest memory, an MSI page table, ATS and PRI; the 256 PCs of the PDT's
leaf page have 256 PSCIDs.  The operations, with random device_ids and process_ids:

* 86 % device requests (untranslated reads / writes / executes, translated requests,
  ATS translation requests, to 512 first-stage pages, MSI pages or random addresses);
* 4 % page requests; 4 % commands (IOTINVAL.VMA/GVMA, IODIR.INVAL_DDT/PDT, ATS.INVAL,
  IOFENCE.C) with invalidation completions; 2 % ticks; 2 % debug-interface translations;
* 2 % software consuming the fault and page-request queues.

It reports the memory tracemalloc traces (everything allocated since before the system
was built: the model, its caches and the sparse memory) after a warm-up (every cache
full) and after every tenth of the operations, and the process's peak RSS.

Run: ``python benchmarks/bench_soak.py`` (``--ops N``, default 10**6; ``--warmup N``;
``--json``).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
import tracemalloc
from typing import Any, Dict, List, Tuple

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.commands import OPCODE
from riscv_iommu.host.tables import (
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

REG = rv.REG
SV39 = 8
PD20 = 3
IOVA = 0x40_0000  # 512 first-stage pages from here
GPA_DATA = 0x8000_0000  # a 2 MiB G-stage superpage
MSI_GPA = 0x2800_0000
TC = F.DC_TC


class Soak:
    """The system and the operation mix (``run(n)`` performs n operations)."""

    def __init__(self, seed: int = 0, params: rv.IommuParams | None = None) -> None:
        self.r = random.Random(seed)
        mem = self.mem = rv.SparseMemory()
        if params is None:
            params = rv.IommuParams(ats_inval_timeout=20_000)
        io = self.io = rv.Iommu(mem, rv.Capabilities.full(), params=params)
        io.on_ats_message = self._ats_message
        self.itags: List[Tuple[int, int]] = []  # (device, ITAG) of requests sent
        alloc = PageAllocator(mem)
        host = HostSpace(mem, alloc)
        g = PageTable(host, SV39, stage="g")
        guest = GuestSpace(g, alloc)
        g.map(GPA_DATA, alloc.alloc(4096, 1 << 21), 1 << 21)
        s1 = PageTable(guest, SV39, stage="s")
        for k in range(512):
            s1.map(IOVA + k * 4096, GPA_DATA + k * 4096, flags=F.PTE.mask_of("R", "W", "X") | A | D)
        s1.map(MSI_GPA, MSI_GPA)
        # a PD20 PDT whose every non-leaf entry points at the same page: 2**20 valid PCs
        pdt = ProcessDirectory(guest, PD20)
        for pid in range(256):
            pdt.set_pc(pid, fsc=s1.satp(), pscid=pid, ens=True, sum_=True)
        for level in (2, 1):
            entry = guest.read_u64(pdt.nonleaf_addr(0, level))
            page = pdt.nonleaf_addr(0, level) & ~0xFFF
            for k in range(512 if level == 1 else 8):
                guest.write_u64(page + 8 * k, entry)
        msipt = MsiPageTable(mem, alloc, 8)
        msipt.set_flat(0, alloc.alloc())
        # a 3-level DDT whose every non-leaf entry points at the same page: 2**24 valid DCs
        ddt = DeviceDirectory(mem, alloc, levels=3, msi_flat=True)
        tc = TC.encode(V=1, EN_ATS=1, EN_PRI=1, PDTV=1, DPE=1)
        for did in range(64):
            ddt.set_dc(
                did,
                tc=tc,
                iohgatp=g.satp(1),
                fsc=pdt.pdtp(),
                ta=F.DC_TA.encode(RCID=did & 7, MCID=did >> 3),
                msiptp=msipt.msiptp(),
                msi_addr_pattern=MSI_GPA >> 12,
            )
        for level in (2, 1):
            entry = mem.read_u64(ddt.nonleaf_addr(0, level))
            page = ddt.nonleaf_addr(0, level) & ~0xFFF
            for k in range(512):
                mem.write_u64(page + 8 * k, entry)
        io.mmio_write(REG.DDTP, ddt.ddtp)
        # queues: command, fault and page-request (small: they overflow, are consumed)
        self.cq = self._queue(alloc, REG.CQB, 6, 16)
        io.mmio_write(REG.CQCSR, F.CQCSR.encode(cqen=1), 4)
        self._queue(alloc, REG.FQB, 5, 32)
        io.mmio_write(REG.FQCSR, F.FQCSR.encode(fqen=1), 4)
        self._queue(alloc, REG.PQB, 4, 16)
        io.mmio_write(REG.PQCSR, F.PQCSR.encode(pqen=1), 4)
        self.flag = alloc.alloc()
        self.ops = 0
        self.counts: Dict[str, int] = {}

    def _queue(self, alloc: PageAllocator, breg: int, log2sz: int, entry: int) -> int:
        base = alloc.alloc(max(4096, entry << log2sz), max(4096, entry << log2sz))
        self.io.mmio_write(breg, F.QUEUE_BASE.encode(LOG2SZ_1=log2sz - 1, PPN=base >> 12))
        return base

    def _ats_message(self, msg: Any) -> None:
        if isinstance(msg, rv.InvalidationRequest):
            self.itags.append((msg.device_id, msg.itag))

    def _submit(self, d0: int, d1: int) -> None:
        io = self.io
        t = io.mmio_read(REG.CQT, 4)
        self.mem.write(self.cq + 16 * t, d0.to_bytes(8, "little") + d1.to_bytes(8, "little"))
        io.mmio_write(REG.CQT, (t + 1) % 64, 4)

    def run(self, n: int) -> None:
        """Perform ``n`` operations."""
        r = self.r
        io = self.io
        translate = io.translate
        accesses = list(rv.Access)
        kinds = [rv.RequestKind.UNTRANSLATED] * 6 + list(rv.RequestKind)
        for _ in range(n):
            x = r.random()
            did = r.getrandbits(24)
            pid = r.getrandbits(20) if r.random() < 0.9 else None
            if x < 0.86:
                y = r.random()
                if y < 0.9:
                    addr = IOVA + (r.getrandbits(9) << 12) + r.randrange(0, 4096, 8)
                elif y < 0.95:
                    addr = MSI_GPA + r.randrange(0, 4096, 4)
                else:
                    addr = r.getrandbits(64)
                translate(
                    rv.Request(
                        did, addr, r.choice(accesses), pid, r.random() < 0.2, r.choice(kinds)
                    )
                )
            elif x < 0.90:
                io.page_request(
                    rv.PageRequest(
                        did & 0xFFFF,
                        IOVA + (r.getrandbits(9) << 12),
                        r.getrandbits(9),
                        r.random() < 0.5,
                        process_id=pid,
                    )
                )
            elif x < 0.94:
                self._command(did, pid)
            elif x < 0.96:
                io.tick(r.choice([1, 100, 10_000]))
            elif x < 0.98:
                io.mmio_write(REG.TR_REQ_IOVA, IOVA + (r.getrandbits(9) << 12))
                ctl = F.TR_REQ_CTL.encode(Go_Busy=1, PID=pid or 0, PV=int(pid is not None))
                io.mmio_write(REG.TR_REQ_CTL, ctl | (did << F.TR_REQ_CTL.DID.lsb))
            else:
                io.mmio_write(REG.FQH, io.mmio_read(REG.FQT, 4), 4)
                io.mmio_write(REG.PQH, io.mmio_read(REG.PQT, 4), 4)
                io.mmio_write(REG.FQCSR, F.FQCSR.encode(fqen=1, fqof=1, fqmf=1), 4)
                io.mmio_write(REG.PQCSR, F.PQCSR.encode(pqen=1, pqof=1, pqmf=1), 4)
                io.mmio_write(REG.CQCSR, F.CQCSR.encode(cqen=1, cmd_to=1, cmd_ill=1, cqmf=1), 4)
        self.ops += n

    def _command(self, did: int, pid: int | None) -> None:
        r = self.r
        c = r.choices(range(6), (5, 1, 5, 5, 5, 3))[0]
        if c == 0:
            d0 = F.CMD_IOTINVAL0.encode(
                opcode=OPCODE.IOTINVAL, GV=1, GSCID=1, PSCV=1, PSCID=(pid or 0) & 0xFF
            )
            self._submit(d0, 0)
        elif c == 1:
            # the G-stage page of the MSI GPA (the data superpage stays cached)
            d0 = F.CMD_IOTINVAL0.encode(opcode=OPCODE.IOTINVAL, func3=1, GV=1, GSCID=1, AV=1)
            self._submit(d0, F.CMD_IOTINVAL1.encode(ADDR=MSI_GPA >> 12))
        elif c == 2:
            self._submit(F.CMD_IODIR0.encode(opcode=OPCODE.IODIR, DV=1, DID=did), 0)
        elif c == 3:
            d0 = F.CMD_IODIR0.encode(opcode=OPCODE.IODIR, func3=1, DV=1, DID=did, PID=pid or 0)
            self._submit(d0, 0)
        elif c == 4:
            d0 = F.CMD_ATS0.encode(opcode=OPCODE.ATS, RID=did & 0xFFFF)
            self._submit(d0, F.ATS_INVAL_PAYLOAD.encode(ADDR=IOVA >> 12))
            if self.itags and r.random() < 0.9:  # the device answers (or not: a timeout)
                dev, itag = self.itags.pop(r.randrange(len(self.itags)))
                self.io.invalidation_completion(dev, 1 << itag)
        else:
            d0 = F.CMD_IOFENCE0.encode(opcode=OPCODE.IOFENCE, AV=1, DATA=self.ops & 0xFFFF)
            self._submit(d0, F.CMD_IOFENCE1.encode(ADDR=self.flag >> 2))
        del self.itags[:-32]


def structure_sizes(io: rv.Iommu) -> Dict[str, int]:
    """Entries held by each structure of the model that may grow."""
    return {
        "ddt_cache": len(io.ddt_cache),
        "pdt_cache": len(io.pdt_cache),
        "iotlb": len(io.iotlb),
        "msi_cache": len(io.msi_cache),
        "gwalk_cache": len(io.gwalk_cache),
        "front": len(io._front),
        "itags_outstanding": len(io.invalidations.outstanding),
        "itags_timed_out": len(io.invalidations.timed_out),
        "memory_pages": len(io.mem.pages()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ops", type=int, default=10**6, help="operations after warm-up (10**6)")
    ap.add_argument("--warmup", type=int, default=50_000, help="warm-up operations (50000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    args = ap.parse_args()
    tracemalloc.start()  # everything the model and its memory hold is traced
    soak = Soak(args.seed)
    t0 = time.perf_counter()
    soak.run(args.warmup)
    warm = tracemalloc.get_traced_memory()[0]
    sizes_warm = structure_sizes(soak.io)
    samples = []
    step = max(1, args.ops // 10)
    done = 0
    while done < args.ops:
        k = min(step, args.ops - done)
        soak.run(k)
        done += k
        samples.append((done, tracemalloc.get_traced_memory()[0]))
        if not args.json:
            print(f"  after {done:>10,} ops: {samples[-1][1] / 1024:10.1f} KiB", flush=True)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    res = {
        "ops": args.ops,
        "warmup": args.warmup,
        "seconds": round(time.perf_counter() - t0, 1),
        "traced_after_warmup": warm,
        "traced_after_ops": after,
        "traced_growth": after - warm,
        "traced_peak": peak,
        "samples": samples,
        "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "structures_after_warmup": sizes_warm,
        "structures_after_ops": structure_sizes(soak.io),
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{args.warmup:,} warm-up + {args.ops:,} operations in {res['seconds']} s")
    print(f"traced memory after warm-up : {warm / 1024:10.1f} KiB")
    print(f"growth                      : {(after - warm) / 1024:10.1f} KiB")
    print(f"traced peak                 : {peak / 1024:10.1f} KiB")
    print(f"peak RSS                    : {res['max_rss_kib'] / 1024:10.1f} MiB")
    print(f"structures after warm-up    : {sizes_warm}")
    print(f"structures after the ops    : {res['structures_after_ops']}")


if __name__ == "__main__":
    main()
