"""Translation throughput of the model, in translations per second.

Run: ``python benchmarks/bench_translate.py`` (``--json`` for machine output,
``--seconds S`` per case); the cases are in ``riscv_iommu.bench`` (also run by
``riscv-iommu bench``).
"""

from __future__ import annotations

import argparse
import json

from riscv_iommu.bench import CASES, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per case (default 2)")
    ap.add_argument("cases", nargs="*", help=f"cases to run (default all): {', '.join(CASES)}")
    args = ap.parse_args()
    res = run(args.seconds, args.cases or None)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    for name, rate in res.items():
        print(f"{name:28s} {rate:12,.0f} translations/s")


if __name__ == "__main__":
    main()
