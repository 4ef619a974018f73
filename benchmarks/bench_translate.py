"""Translation cost of the model: microseconds (CPU time) and memory reads per translation.

Run: ``python benchmarks/bench_translate.py`` (``--json`` for machine output,
``--seconds S`` per case, ``--all`` for every case, not only the reference
geometry); the cases are in ``riscv_iommu.bench`` (also run by
``riscv-iommu bench``).  The first line says which build was measured (pure
Python or compiled with mypyc).
"""

from __future__ import annotations

import argparse
import json

from riscv_iommu.bench import CASES, REFERENCE, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per case (default 2)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per case; the best counts")
    ap.add_argument("--all", action="store_true", help="every case, not only the reference ones")
    ap.add_argument("cases", nargs="*", help=f"cases to run (default {', '.join(REFERENCE)})")
    args = ap.parse_args()
    names = list(CASES) if args.all else args.cases or None
    res = run(args.seconds, names, rounds=args.rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"build: {res['build']} (CPython {res['python']}), best of {args.rounds} rounds")
    for name, r in res["cases"].items():
        target = "" if r["target_us"] is None else f"(target {r['target_us']} us)"
        print(f"{name:28s} {r['us']:8.2f} us {r['reads']:4.0f} reads  {target}")


if __name__ == "__main__":
    main()
