"""Scale: one GIPC device with 1,000,000 PASIDs across 65,536 VMs, and a classic system
with 65,536 devices.

Run: ``python benchmarks/bench_scale.py [--json] [--pasids N] [--vms N] [--devices N]
[--revision 2024|2025] [--sample N] [--rounds N]``.

**GIPC** (``--revision``, default 2025): one device (DC.tc.GIPC = 1, PD20 PDT at
SPAs, GIPC decision #6) with ``--pasids`` PASIDs bound across ``--vms`` VMs:
PASID number n goes to VM n mod VMs; each PASID has its own PC (its own PSCID,
PC.iohgatp selecting its VM's G-stage table, GSCID = the VM's number) and each
VM its own G-stage table (Sv39x4, its guest RAM mapped by 1 GiB leaves, the
way hypervisors back guests) and its own first-stage table (Sv39, 4 KiB
leaves, in guest memory for 2025 and at SPAs for 2024), which the VM's PASIDs
share.  **Classic**: ``--devices`` devices, each its own VM: DC.iohgatp (GSCID
= the device's number) and DC.fsc an Sv39 iosatp in guest memory, 3-level DDT
of extended DCs.

Measured, for the large system and for the same geometry with one PASID / one
device (CPU time of this thread, best of ``--rounds``):

* **walk cost**: microseconds per translation with every request walking what
  the layout puts in its way (GIPC: the PDT and the page tables, the DC
  cached; classic: the DDT and the page tables), over ``--sample`` requests to
  distinct PASIDs / devices in random order; every response is checked.  The
  ratio large / one is the issue's "within 20%" figure.  The large system is
  also measured with requests to 64 of its PASIDs / devices only: the same
  work per translation with a working set that stays in the CPU caches, which
  separates the model's own cost from the memory traffic of touching ~1 GB
  of tables at random;
* **the model's own memory** (the caches' structures, object by object with
  ``sys.getsizeof``; the memory port excluded), with a PDT / DDT cache and an
  IOTLB holding one entry per PASID / device: per cached PC (GIPC) or DC
  (classic), per IOTLB entry (its indexes included); per VM:
  the model keeps nothing per VM outside its caches (a VM is its tables in the
  port's memory and its GSCID in cached entries), so this is what the caches
  hold per VM beyond their entries (the IOTLB's per-GSCID indexes), measured as
  the IOTLB memory with two entries per VM spread over every VM minus the same
  entries in one VM.

Building uses the host table builders with ``PageAllocator(zero=False)`` (a
fresh SparseMemory reads unwritten bytes as zero: the same bytes without
materialising every page) and needs about 1.5 GB of memory at full scale.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from typing import Any, Dict, List, Set, Tuple

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu import gipc
from riscv_iommu._mypyc import compiled
from riscv_iommu.host.tables import (
    URWX,
    A,
    D,
    DeviceDirectory,
    HostSpace,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)
from riscv_iommu.ioatc import Iotlb

SV39 = 8
PD20 = 3
DEVICE = 0x42
IOVA = 0x1234_5000
GPA_RAM = 0x4000_0000  # each VM's guest RAM: 1 GiB at this GPA
SPA_VMS = 0x100_0000_0000  # VM v's RAM at SPA_VMS + v GiB
DATA = 0x10_0000  # the mapped data page, 1 MiB into guest RAM
LEAF = URWX | A | D
HOT = 64  # PASIDs / devices of the large system in its small-working-set measurement
GIPC_TC = 1 << 12  # IommuParams.gipc_tc_bit default


class _Ram(HostSpace):
    """A VM's guest RAM: GPAs from GPA_RAM mapped linearly (one 1 GiB G-stage leaf)."""

    def __init__(self, mem: Any, alloc: PageAllocator, spa: int) -> None:
        super().__init__(mem, alloc)
        self.spa = spa
        self.next_gpa = GPA_RAM + 0x20_0000  # tables above the data page

    def alloc(self, size: int = 4096, align: int = 4096) -> int:
        gpa = (self.next_gpa + align - 1) & ~(align - 1)
        self.next_gpa = gpa + size
        return gpa  # never written: reads as zero

    def to_spa(self, addr: int) -> int:
        return self.spa + (addr - GPA_RAM)


def _vm(
    mem: Any, alloc: PageAllocator, host: HostSpace, v: int, s1_at_spa: bool
) -> Tuple[int, int]:
    """VM v: its G-stage table (GSCID v) and first-stage table; returns (iohgatp, iosatp)."""
    g = PageTable(host, SV39, stage="g")
    spa = SPA_VMS + (v << 30)
    g.map(GPA_RAM, spa, size=1 << 30, flags=LEAF)
    s1 = PageTable(host if s1_at_spa else _Ram(mem, alloc, spa), SV39, stage="s")
    s1.map(IOVA, GPA_RAM + DATA, flags=LEAF)
    return g.satp(v), s1.satp()


def build_gipc(pasids: int, vms: int, revision: str, seed: int = 1) -> Dict[str, Any]:
    """The GIPC system's memory and DDT; returns what ``gipc_iommu`` needs."""
    mem = rv.SparseMemory()
    probe = rv.Iommu(mem, rv.Capabilities.full(gipc=True), params=_params(revision))
    fmt = gipc.pc_format(probe)
    assert fmt is not None
    alloc = PageAllocator(mem, zero=False)
    host = HostSpace(mem, alloc)
    tables = [_vm(mem, alloc, host, v, fmt.s1_at_spa) for v in range(vms)]
    pdt = ProcessDirectory(host, PD20, fmt=fmt)
    ids = random.Random(seed).sample(range(1, 1 << 20), pasids)
    for n, pid in enumerate(ids):
        hgatp, iosatp = tables[n % vms]
        pdt.set_pc(pid, fsc=iosatp, pscid=n, iohgatp=hgatp)
    ddt = DeviceDirectory(mem, alloc, levels=3)
    ddt.set_dc(DEVICE, tc=F.DC_TC.encode(V=1, PDTV=1) | GIPC_TC, fsc=pdt.pdtp())
    reqs = [(DEVICE, pid, SPA_VMS + ((n % vms) << 30) + DATA) for n, pid in enumerate(ids)]
    return {"mem": mem, "ddtp": ddt.ddtp, "revision": revision, "requests": reqs, "gipc": True}


def build_classic(devices: int) -> Dict[str, Any]:
    """The classic system: each device its own VM (DC.iohgatp, DC.fsc = iosatp)."""
    mem = rv.SparseMemory()
    alloc = PageAllocator(mem, zero=False)
    host = HostSpace(mem, alloc)
    ddt = DeviceDirectory(mem, alloc, levels=3)
    reqs = []
    for d in range(devices):
        hgatp, iosatp = _vm(mem, alloc, host, d, False)
        did = (d * 0x9E37) & 0xFFFFFF  # spread over the DDT levels
        ddt.set_dc(did, tc=1, iohgatp=hgatp, ta=F.DC_TA.encode(PSCID=d), fsc=iosatp)
        reqs.append((did, None, SPA_VMS + (d << 30) + DATA))
    return {"mem": mem, "ddtp": ddt.ddtp, "revision": "2025", "requests": reqs, "gipc": False}


def _params(revision: str, **sizes: int) -> rv.IommuParams:
    return rv.IommuParams(gipc_revision=revision, msi_cache_size=0, gwalk_cache_size=0, **sizes)


def iommu_for(system: Dict[str, Any], **sizes: int) -> rv.Iommu:
    """An IOMMU over the system's memory with the given cache sizes."""
    caps = rv.Capabilities.full(gipc=system["gipc"])
    io = rv.Iommu(system["mem"], caps, params=_params(system["revision"], **sizes))
    io.mmio_write(rv.REG.DDTP, system["ddtp"])
    return io


def _requests(system: Dict[str, Any], sample: int) -> Tuple[List[rv.Request], List[int]]:
    """``sample`` requests to distinct PASIDs / devices in random order (cycling through
    them when there are fewer)."""
    rng = random.Random(2)
    every = system["requests"]
    picked = rng.sample(every, min(sample, len(every)))
    picked = (picked * (sample // len(picked) + 1))[:sample]
    reqs = [rv.Request(did, IOVA + 0x48, process_id=pid) for did, pid, _ in picked]
    return reqs, [spa + 0x48 for _, _, spa in picked]


def walk_costs(systems: List[Dict[str, Any]], sample: int, rounds: int) -> List[float]:
    """Microseconds per translation in each system, every request walking (the caches
    the layout would fill are off); the systems' rounds alternate, so that they share
    the machine's conditions, and the best round of each counts."""
    runs = []
    for system in systems:
        sizes = {"pdt_cache_size": 0, "iotlb_size": 0}
        if not system["gipc"]:
            sizes["ddt_cache_size"] = 0
        io = iommu_for(system, **sizes)
        reqs, expected = _requests(system, sample)
        tr = io.translate
        for req, spa in zip(reqs, expected, strict=True):  # every response checked
            rsp = tr(req)
            assert rsp.status == rv.Status.SUCCESS and rsp.addr == spa, (req, rsp)
        runs.append((tr, reqs))
    best = [float("inf")] * len(systems)
    for _ in range(rounds):
        for k, (tr, reqs) in enumerate(runs):
            t0 = time.thread_time()
            for req in reqs:
                tr(req)
            best[k] = min(best[k], (time.thread_time() - t0) / len(reqs))
    return [b * 1e6 for b in best]


def deep_size(root: Any, seen: Set[int]) -> int:
    """Bytes of ``root`` and every object it holds that ``seen`` has not counted yet
    (``sys.getsizeof``: each object's own allocation, an OrderedDict's nodes and a
    dict's table included); CPython's shared small ints are not the model's."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen or (type(obj) is int and -5 <= obj <= 256):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (tuple, list, set, frozenset)):
            stack.extend(obj)
    return total


def _cache_size(cache: Any, seen: Set[int]) -> int:
    """The memory of one cache: its entries and every index it keeps."""
    names = ("entries", "groups", "by_tag", "by_g", "shifts", "by_s1", "by_gpa")
    return sum(deep_size(getattr(cache, n), seen) for n in names if hasattr(cache, n))


def memory(system: Dict[str, Any]) -> Dict[str, float]:
    """The model's own memory per cached PC/DC, per IOTLB entry and per VM (bytes).

    One IOMMU whose context cache (PDT or DDT) and IOTLB hold every PASID /
    device translates each once; the caches' structures are then measured."""
    n = len(system["requests"])
    size = 1 << max(1, (n - 1).bit_length())
    ctx = "pdt_cache_size" if system["gipc"] else "ddt_cache_size"
    io = iommu_for(system, **{ctx: size, "iotlb_size": size})
    tr = io.translate
    for did, pid, _ in system["requests"]:
        tr(rv.Request(did, IOVA, process_id=pid))
    cached = io.ioatc.pdt if system["gipc"] else io.ioatc.ddt
    assert len(cached) == n and len(io.iotlb) == n
    seen: Set[int] = set()
    out: Dict[str, float] = {}
    out["per_cached_context"] = _cache_size(cached, seen) / n
    out["per_iotlb_entry"] = _cache_size(io.iotlb, seen) / n
    vms = len({spa >> 30 for _, _, spa in system["requests"]})
    out["vms"] = vms
    out["per_vm"] = _per_vm(2 * vms, vms)
    return out


def _per_vm(entries: int, vms: int) -> float:
    """IOTLB memory per VM beyond its entries: ``entries`` 4 KiB two-stage entries spread
    over ``vms`` GSCIDs, minus the same entries in one GSCID."""

    def filled(spread: int) -> int:
        t = Iotlb(entries)
        for k in range(entries):
            va = k << 12
            t.fill(k % spread, k, False, va, (1 << 40) + va, 4096, LEAF, 4096, LEAF, va, 4096)
        return _cache_size(t, set())

    return (filled(vms) - filled(1)) / max(1, vms - 1)


def run(
    pasids: int, vms: int, devices: int, revision: str, sample: int, rounds: int
) -> Dict[str, Any]:
    """Every measurement; returns a JSON-ready dict."""
    out: Dict[str, Any] = {"build": "compiled" if compiled() else "pure", "revision": revision}
    for name, make_one, make_big in (
        (
            "gipc",
            lambda: build_gipc(1, 1, revision),
            lambda: build_gipc(pasids, vms, revision),
        ),
        ("classic", lambda: build_classic(1), lambda: build_classic(devices)),
    ):
        small = make_one()
        _progress(f"{name}: building")
        t0 = time.perf_counter()
        big = make_big()
        built = time.perf_counter() - t0
        _progress(f"{name}: built in {built:.0f} s; walk cost")
        hot = dict(big, requests=big["requests"][:HOT])  # the large system, a small working set
        one, many, warm = walk_costs([small, big, hot], sample, rounds)
        _progress(f"{name}: memory")
        res: Dict[str, Any] = {
            "contexts": len(big["requests"]),
            "build_seconds": built,
            "memory_port_pages": len(big["mem"].pages()),
            "walk_us_one": one,
            "walk_us_large": many,
            "walk_cost_ratio": many / one,
            "walk_us_large_hot": warm,
            "walk_cost_ratio_hot": warm / one,
        }
        res.update(memory(big))
        out[name] = res
        del big
        gc.collect()
    return out


def _progress(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    ap.add_argument("--pasids", type=int, default=1_000_000)
    ap.add_argument("--vms", type=int, default=65_536)
    ap.add_argument("--devices", type=int, default=65_536)
    ap.add_argument("--revision", choices=["2024", "2025"], default="2025")
    ap.add_argument("--sample", type=int, default=20_000, help="requests timed per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    res = run(args.pasids, args.vms, args.devices, args.revision, args.sample, args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"build: {res['build']}, GIPC revision {res['revision']}")
    for name in ("gipc", "classic"):
        r = res[name]
        what = "PASIDs" if name == "gipc" else "devices"
        ctx = "PC" if name == "gipc" else "DC"
        print(
            f"{name}: {r['contexts']:,} {what} across {r['vms']:,} VMs, built in "
            f"{r['build_seconds']:.0f} s ({r['memory_port_pages']:,} memory pages)\n"
            f"  walk: {r['walk_us_one']:.2f} us (one) / {r['walk_us_large']:.2f} us (large), "
            f"ratio {r['walk_cost_ratio']:.2f}; {r['walk_us_large_hot']:.2f} us "
            f"(large, {HOT} hot), ratio {r['walk_cost_ratio_hot']:.2f}\n"
            f"  model memory: {r['per_cached_context']:.0f} B per cached {ctx}, "
            f"{r['per_iotlb_entry']:.0f} B per IOTLB entry, {r['per_vm']:.0f} B per VM"
        )


if __name__ == "__main__":
    main()
