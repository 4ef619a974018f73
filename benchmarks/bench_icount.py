"""CPU instructions per translation of the benchmark cases, counted by valgrind.

Run: ``python benchmarks/bench_icount.py [--rotations N] [cases ...]`` (default:
the reference geometry, ``riscv_iommu.bench.REFERENCE``).  Needs ``valgrind``
(Debian: ``apt-get install valgrind``).

Timings on a shared or virtual machine vary from run to run (up to 15% on the
development machine); an instruction count does not depend on the load.  Each
case is built, warmed up and checked as ``riscv-iommu bench`` does, then its
rotation is translated N and 2N times under ``valgrind --tool=cachegrind``
(no cache simulation); the difference of the two counts divided by N
rotations is the cost of one translation, without the start-up and building.
``PYTHONHASHSEED=0`` makes the count repeatable.  Compare counts of one
interpreter build only; as a rule of thumb CPython 3.11 runs this code at
11-13 instructions per nanosecond on the development machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

from riscv_iommu.bench import CASES, REFERENCE, build

#: run in the child: build, warm up (responses checked) and translate N rotations
_CHILD = """
import sys
from riscv_iommu import bench
w, _ = bench.prepare(sys.argv[1])
tr = w.iommu.translate
reqs = w.requests
for _ in range(int(sys.argv[2])):
    for r in reqs:
        tr(r)
"""


def _instructions(case: str, rotations: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    out = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-c",
            _CHILD,
            case,
            str(rotations),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if m is None:
        raise SystemExit(f"valgrind printed no instruction count for {case}")
    return int(m.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rotations", type=int, default=100, help="N (default 100)")
    ap.add_argument("cases", nargs="*", help=f"cases to run (default {', '.join(REFERENCE)})")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("bench_icount: valgrind is not installed (apt-get install valgrind)")
        raise SystemExit(2)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or args.rotations < 1:
        print(f"bench_icount: unknown case(s) {unknown}" if unknown else "--rotations must be >= 1")
        raise SystemExit(2)
    n = args.rotations
    print(f"build: {build()}, instructions per translation (valgrind, {n} and {2 * n} rotations)")
    for case in args.cases or REFERENCE:
        per_rotation = len(CASES[case].make().requests)
        a, b = _instructions(case, n), _instructions(case, 2 * n)
        print(f"{case:28s} {(b - a) / (n * per_rotation):10,.0f}")


if __name__ == "__main__":
    main()
