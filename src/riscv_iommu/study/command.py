"""``riscv-iommu study``: the command-line face of :mod:`riscv_iommu.study`.

:func:`add_parser` registers the subcommand on the ``riscv-iommu`` parser;
:func:`main` runs it.  Every argument is checked: bad input prints one line
naming the argument and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, List, Optional, TextIO

from . import (
    CACHES,
    EXPERIMENTS,
    PAGE_SIZES,
    PATTERNS,
    POLICIES,
    PRESETS,
    SYSTEMS,
    StudyResult,
    run,
    write_report,
)

__all__ = ["add_parser", "main"]


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is not within {lo}..{hi}")
        return v

    return parse


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{v} is not within 0..1")
    return v


def _ints(lo: int, hi: int) -> Callable[[str], List[int]]:
    one = _int(lo, hi)

    def parse(text: str) -> List[int]:
        items = [t for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("needs a comma-separated list of integers")
        return [one(t.strip()) for t in items]

    return parse


def _names(allowed: Any) -> Callable[[str], List[str]]:
    def parse(text: str) -> List[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"needs one or more of {', '.join(allowed)}")
        for t in items:
            if t not in allowed:
                raise argparse.ArgumentTypeError(f"{t!r} is not one of {', '.join(allowed)}")
        return items

    return parse


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``study`` to the subcommands ``sub`` of the riscv-iommu parser."""
    s: argparse.ArgumentParser = sub.add_parser(
        "study",
        help="what GIPC costs and saves: reads, hit rates, rebind cost, memory (plots)",
        description="Run the GIPC architecture study: memory reads per translation by "
        "structure, cache hit rates, bind/rebind/unbind cost and the model's memory, for "
        "classic assignment and both GIPC revisions. Prints tables; --out writes study.json, "
        "PNG figures (with the [plot] extra) and report.html; --markdown writes the results "
        "document. The default sweep is the one of docs/study-gipc.md.",
    )
    s.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="starting configuration (default: default)",
    )
    s.add_argument("--seed", type=_int(0, (1 << 63) - 1), help="random seed")
    s.add_argument("--systems", type=_names(SYSTEMS), help=f"of {', '.join(SYSTEMS)}")
    s.add_argument("--experiments", type=_names(EXPERIMENTS), help=f"of {', '.join(EXPERIMENTS)}")
    s.add_argument("--vms", type=_int(1, 1 << 16), help="VMs (1..65536)")
    s.add_argument("--pasids", type=_int(1, 1_000_000), help="PASIDs of the device (1..10^6)")
    s.add_argument("--pages", type=_int(1, 4096), help="pages mapped per PASID")
    s.add_argument("--page-size", choices=list(PAGE_SIZES), help="page size")
    s.add_argument("--pattern", choices=list(PATTERNS), help="access pattern")
    s.add_argument("--msi-fraction", type=_fraction, help="fraction of MSI writes (0..1)")
    s.add_argument("--translations", type=_int(1, 10_000_000), help="measured requests")
    s.add_argument("--warmup", type=_int(0, 10_000_000), help="warm-up requests")
    s.add_argument("--vm-sweep", type=_ints(1, 1 << 16), help="VM counts, e.g. 1,16,256")
    s.add_argument("--cache-sweep", type=_ints(0, 1 << 20), help="capacities, e.g. 0,64,256")
    s.add_argument("--caches", type=_names(CACHES), help=f"swept caches: {', '.join(CACHES)}")
    s.add_argument("--policies", type=_names(POLICIES), help="lru,fifo")
    s.add_argument("--patterns", type=_names(PATTERNS), help="patterns of the workloads figure")
    s.add_argument("--page-sizes", type=_names(PAGE_SIZES), help="4k,2m,1g")
    s.add_argument(
        "--memory-points", type=_ints(1, 1 << 16), help="two VM counts for the memory figure"
    )
    s.add_argument("--jobs", type=_int(1, 64), default=1, help="worker processes (default 1)")
    s.add_argument("--out", help="directory for study.json, the PNGs and report.html")
    s.add_argument("--markdown", help="also write the results document to this file")
    s.add_argument("--no-plots", action="store_true", help="tables only, even with matplotlib")
    s.add_argument("--from-json", help="report an earlier study.json instead of running")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(handler=main)
    return s


_FIELDS = (
    "seed",
    "systems",
    "experiments",
    "vms",
    "pasids",
    "pages",
    "page_size",
    "pattern",
    "msi_fraction",
    "translations",
    "warmup",
    "vm_sweep",
    "cache_sweep",
    "caches",
    "policies",
    "patterns",
    "page_sizes",
    "memory_points",
)


def _progress(stream: TextIO) -> Callable[[int, int, str], None]:
    start = time.monotonic()

    def show(done: int, total: int, what: str) -> None:
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done == total else "\r"
        t = time.monotonic() - start
        print(f"[{bar}] {done}/{total} {t:5.0f}s {what:32s}", end=end, file=stream, flush=True)

    return show


def _fail(message: str) -> int:
    print(f"riscv-iommu study: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace, stream: Optional[TextIO] = None) -> int:
    """Run ``riscv-iommu study`` with parsed ``args``; returns the exit status."""
    out = stream or sys.stdout
    if args.from_json:
        try:
            with open(args.from_json, encoding="utf-8") as f:
                result = StudyResult.from_json(f.read())
        except (OSError, ValueError) as err:
            return _fail(f"--from-json: {err}")
    else:
        changes = {}
        for name in _FIELDS:
            v = getattr(args, name)
            if v is not None:
                changes[name] = tuple(v) if isinstance(v, list) else v
        try:
            cfg = PRESETS[args.preset].replace(**changes)
        except ValueError as err:
            name, _, rest = str(err).partition(":")
            return _fail(f"--{name.replace('_', '-')}:{rest}")
        show = None if args.no_progress or args.json else _progress(sys.stderr)
        result = run(cfg, progress=show, jobs=args.jobs)
    if args.json:
        out.write(result.to_json())
    else:
        out.write(result.tables())
    if args.out or args.markdown:
        try:
            files = write_report(
                result,
                args.out or ".",
                plots=False if args.no_plots else None,
                markdown=args.markdown,
            )
        except OSError as err:
            return _fail(f"--out: {err}")
        if not args.json:
            for what, path in files.items():
                out.write(f"wrote {what}: {path}\n")
            if not any(k.startswith("figure") for k in files) and not args.no_plots:
                out.write("no figures: install the [plot] extra (matplotlib) to draw them\n")
    return 0
