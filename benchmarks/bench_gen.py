"""Constrained-random generation, replay and campaigns (seeds per second).

Run: ``python benchmarks/bench_gen.py [--seeds N] [--requests M] [--jobs J] [--json]``.

Cases (one core unless said):

* ``gen``: :func:`riscv_iommu.gen.generate` of ``--requests`` requests per
  seed, the document in memory (the target: 50 seeds/s of 40 requests);
* ``gen+text``: the same, written as the canonical file text;
* ``replay``: load and replay the texts of ``gen+text``;
* ``campaign``: ``run_campaign`` (generate, replay through the text,
  summarise) on ``--jobs`` local worker processes.

Each rate is given twice: by wall-clock time, and by CPU time (the rate one
dedicated core would reach; for the campaign, the CPU time of the worker
processes, so the wall-clock rate on ``--jobs`` idle cores is about ``jobs``
times it).  On a machine shared with other work the CPU-time rate is the
one to compare.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Callable, Dict, List

from riscv_iommu import campaign, gen, vectors


def measure(seeds: int, requests: int, profile: str, jobs: int) -> Dict[str, float]:
    rates: Dict[str, float] = {}

    def timed(name: str, fn: Callable[[], None], n: int) -> None:
        w, c = time.perf_counter(), time.process_time()
        fn()
        rates[name] = n / (time.perf_counter() - w)
        rates[name + " (cpu)"] = n / (time.process_time() - c)

    timed("gen", lambda: [gen.generate(s, requests, profile) for s in range(seeds)] and None, seeds)
    texts: List[str] = []
    timed(
        "gen+text",
        lambda: texts.extend(
            vectors.dumps(gen.generate(s, requests, profile)) for s in range(seeds)
        ),
        seeds,
    )
    timed("replay", lambda: [vectors.replay(vectors.loads(t)) for t in texts] and None, seeds)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rep = campaign.run_campaign(range(seeds * 4), jobs=jobs, profile=profile, requests=requests)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rates[f"campaign-{jobs}-jobs"] = rep.seeds / rep.seconds
    rates[f"campaign-{jobs}-jobs (cpu, per core)"] = rep.seeds / cpu if cpu else 0.0
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--profile", default="mixed", choices=list(gen.PROFILES))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    rates = measure(a.seeds, a.requests, a.profile, a.jobs)
    if a.json:
        print(json.dumps(rates, indent=2))
        return
    for name, rate in rates.items():
        print(f"{name:20s} {rate:10.1f} seeds/s  ({a.requests} requests, profile {a.profile})")


if __name__ == "__main__":  # campaign workers are spawned: keep the guard
    main()
