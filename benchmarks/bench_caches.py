"""Cache operations at every capacity: fill+evict, hit and invalidation cost (ns per operation).

Run: ``python benchmarks/bench_caches.py [--json] [--rounds N]``.

Each cache of the model (``riscv_iommu.ioatc``) is filled to capacity, then
measured in steady state (CPU time of this thread, best of ``--rounds``):

* ``fill+evict``: a fill of a new tag into the full cache, which evicts the
  least recently used entry (LRU) -- the operation a thrashing cache does on
  every request;
* ``hit``: a lookup that hits (and moves the entry to the most recent end);
* ``inval+refill``: an invalidation of one entry by its tag (IODIR.INVAL_DDT
  of a device, IODIR.INVAL_PDT, IOTINVAL.VMA with an address, IOTINVAL.GVMA
  with an address) and the fill that puts it back.

The model's caches are OrderedDicts: finding and dropping the oldest entry and
moving a hit to the end are O(1) at any capacity.  The cost stays flat from 2
to 65,536 entries (the larger capacities pay CPU-cache misses of a bigger
table, not more work).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Dict, List

from riscv_iommu.ioatc import Cache, GpaCache, Iotlb

CAPACITIES = [2, 16, 256, 4096, 65536]


def _best(fn: Callable[[int], None], n: int, rounds: int) -> float:
    """Best-of-rounds ns per call of fn(i) over n calls (i counts up across rounds)."""
    best = float("inf")
    i = 0
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(n):
            fn(i)
            i += 1
        best = min(best, (time.thread_time() - t0) / n)
    return best * 1e9


def _baseline(n: int, rounds: int) -> float:
    return _best(lambda i: None, n, rounds)


def iotlb(cap: int, n: int, rounds: int) -> Dict[str, float]:
    """The IOTLB: two-stage 4 KiB entries of one tag (GSCID 5, PSCID 7)."""
    t = Iotlb(cap)
    top = [0]

    def fill(i: int) -> None:
        k = top[0] = top[0] + 1
        t.fill(5, 7, False, k << 12, (0x8000_0000 + k) << 12, 4096, 0xFF, 4096, 0xFF, k << 12, 4096)

    for _ in range(cap):
        fill(0)
    base = _baseline(n, rounds)
    out = {"fill+evict": _best(fill, n, rounds) - base}

    def hit(i: int) -> None:
        t.hit(5, 7, (top[0] - i % cap) << 12, 0, False, False)

    out["hit"] = _best(hit, n, rounds) - base

    def inval(i: int) -> None:
        va = (top[0] - i % cap) << 12
        t.inval_vma(True, 5, True, 7, va, va)
        t.fill(5, 7, False, va, va + (1 << 40), 4096, 0xFF, 4096, 0xFF, va, 4096)

    out["inval+refill"] = _best(inval, n, rounds) - base
    assert len(t) == cap
    return out


def keyed(cache: Cache, cap: int, n: int, rounds: int, pair: bool) -> Dict[str, float]:
    """A DDT (device_id keys), PDT ((device_id, process_id)) or GPA-tagged cache
    (invalidated by IOTINVAL.GVMA with an address when it is one)."""
    top = [0]

    def key(k: int) -> object:
        return (k & 0xFF, k) if pair else k

    def fill(i: int) -> None:
        k = top[0] = top[0] + 1
        cache.put(key(k), (k,))

    for _ in range(cap):
        fill(0)
    base = _baseline(n, rounds)
    out = {"fill+evict": _best(fill, n, rounds) - base}
    out["hit"] = _best(lambda i: cache.get(key(top[0] - i % cap)), n, rounds) - base

    def inval(i: int) -> None:
        k = key(top[0] - i % cap)
        if isinstance(cache, GpaCache):
            cache.inval_gvma(True, k[0], k[1] << 12, k[1] << 12)  # type: ignore[index]
        else:
            cache.invalidate(k)
        cache.put(k, (0,))

    out["inval+refill"] = _best(inval, n, rounds) - base
    assert len(cache) == cap
    return out


def run(rounds: int = 5, n: int = 20000, capacities: List[int] = CAPACITIES) -> Dict[str, object]:
    """{cache: {capacity: {operation: ns}}}."""
    res: Dict[str, object] = {}
    res["IOTLB"] = {c: iotlb(c, n, rounds) for c in capacities}
    res["DDT"] = {c: keyed(Cache("DDT", c), c, n, rounds, False) for c in capacities}
    res["PDT"] = {c: keyed(Cache("PDT", c, grouped=True), c, n, rounds, True) for c in capacities}
    res["GWALK"] = {c: keyed(GpaCache("GWALK", c), c, n, rounds, True) for c in capacities}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per case; the best counts")
    args = ap.parse_args()
    res = run(args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    for cache, by_cap in res.items():
        print(f"{cache}: ns per operation by capacity")
        assert isinstance(by_cap, dict)
        ops = list(next(iter(by_cap.values())))
        print(f"  {'capacity':>9s} " + " ".join(f"{op:>11s}" for op in ops))
        for cap, r in by_cap.items():
            print(f"  {cap:9,d} " + " ".join(f"{r[op]:11.0f}" for op in ops))


if __name__ == "__main__":
    main()
