"""Constrained-random generation, replay and campaigns (seeds per second).

Run: ``python benchmarks/bench_gen.py [--seeds N] [--requests M] [--jobs J] [--json]``.

Cases (one core unless said):

* ``gen``: :func:`riscv_iommu.gen.generate` of ``--requests`` requests per
  seed, the document in memory (the target: 50 seeds/s of 40 requests);
* ``gen+text``: the same, written as the canonical file text;
* ``replay``: load and replay the texts of ``gen+text``;
* ``campaign``: ``run_campaign`` (generate, replay through the text,
  summarise) on ``--jobs`` local worker processes.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Dict, List

from riscv_iommu import campaign, gen, vectors


def measure(seeds: int, requests: int, profile: str, jobs: int) -> Dict[str, float]:
    rates: Dict[str, float] = {}
    t = time.perf_counter()
    for s in range(seeds):
        gen.generate(s, requests, profile)
    rates["gen"] = seeds / (time.perf_counter() - t)
    texts: List[str] = []
    t = time.perf_counter()
    for s in range(seeds):
        texts.append(vectors.dumps(gen.generate(s, requests, profile)))
    rates["gen+text"] = seeds / (time.perf_counter() - t)
    t = time.perf_counter()
    for text in texts:
        assert vectors.replay(vectors.loads(text)).ok
    rates["replay"] = seeds / (time.perf_counter() - t)
    rep = campaign.run_campaign(range(seeds * 4), jobs=jobs, profile=profile, requests=requests)
    rates[f"campaign-{jobs}-jobs"] = rep.seeds / rep.seconds
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
