"""``riscv-iommu coverage merge|report FILES...``: the command-line side.

:func:`add_cli` adds the ``coverage`` subcommand to the main parser;
:func:`main` runs it.  Bad input (a missing or malformed file, an unwritable
output) is reported as ``riscv-iommu: FILE: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional, TextIO

from .data import Coverage, CoverageFileError, load, merge
from .report import html_report, markdown_report, text_report

__all__ = ["add_cli", "main", "load_notes"]

_FORMATS = ("text", "json", "markdown", "html")


def _percent(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError(f"{v} is not a percentage (0 to 100)")
    return v


def add_cli(sub: Any) -> None:
    """Add ``coverage`` to the subcommands ``sub`` of the main parser (its ``handler``
    is :func:`main`)."""
    p = sub.add_parser(
        "coverage",
        help="merge and report functional-coverage files",
        description="Merge coverage JSON files (from a test suite run with "
        "RISCV_IOMMU_COVERAGE=FILE, a campaign, or a testbench) and report them as text, "
        "JSON, Markdown or a self-contained HTML page. The bins are in docs/coverage.md.",
    )
    p.set_defaults(handler=main)
    cs = p.add_subparsers(dest="coverage_command", required=True, metavar="ACTION")
    m = cs.add_parser("merge", help="merge coverage files into one JSON file")
    m.add_argument("files", nargs="+", metavar="FILE", help="coverage JSON files")
    m.add_argument("-o", "--output", help="output file (default: standard output)")
    m.add_argument("--json", action="store_true", help="JSON output (always: the merged file)")
    r = cs.add_parser("report", help="report merged coverage files")
    r.add_argument("files", nargs="+", metavar="FILE", help="coverage JSON files")
    r.add_argument("--format", choices=_FORMATS, default="text", help="report format")
    r.add_argument("--json", action="store_true", help="the same as --format json")
    r.add_argument("-o", "--output", help="output file (default: standard output)")
    r.add_argument("--missing", action="store_true", help="text: list the bins never hit")
    r.add_argument(
        "--notes",
        help="JSON object: bin name or glob pattern -> why it is not hit (markdown, html)",
    )
    r.add_argument("--title", help="title of the markdown or html report")
    r.add_argument("--no-plot", action="store_true", help="html: no closure plot")
    r.add_argument(
        "--fail-under",
        type=_percent,
        metavar="PCT",
        help="exit 1 when less than PCT percent of the bins are covered",
    )


def load_notes(path: str) -> Dict[str, str]:
    """Read a notes file: a JSON object of strings (errors name the file and field)."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except OSError as err:
        raise CoverageFileError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CoverageFileError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as err:
        raise CoverageFileError(
            f"{path}: line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(obj, dict):
        raise CoverageFileError(f"{path}: not a JSON object")
    for k, v in obj.items():
        if not isinstance(v, str):
            raise CoverageFileError(f"{path}: field {k!r}: expected a string")
    return obj


def _write(text: str, output: Optional[str], stream: TextIO) -> None:
    if output is None:
        stream.write(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        raise CoverageFileError(f"{output}: {err.strerror or err}") from None


def main(args: argparse.Namespace, stream: Optional[TextIO] = None) -> int:
    """Run ``riscv-iommu coverage``; returns the exit status."""
    stream = stream or sys.stdout
    try:
        cov: Coverage = merge(load(f) for f in args.files)
        if args.coverage_command == "merge":
            _write(json.dumps(cov.to_json(), indent=1) + "\n", args.output, stream)
            return 0
        notes = load_notes(args.notes) if args.notes else {}
        fmt = "json" if args.json else args.format
        if fmt == "json":
            text = json.dumps(cov.to_json(), indent=1) + "\n"
        elif fmt == "markdown":
            text = markdown_report(cov, notes, args.title or "Functional coverage")
        elif fmt == "html":
            text = html_report(
                cov, not args.no_plot, notes, args.title or "riscv-iommu functional coverage"
            )
        else:
            text = text_report(cov, args.missing)
        _write(text, args.output, stream)
    except CoverageFileError as err:
        print(f"riscv-iommu: {err}", file=sys.stderr)
        return 2
    if args.fail_under is not None and cov.percent() < args.fail_under:
        print(
            f"riscv-iommu: coverage {cov.percent():.1f}% is under {args.fail_under}%",
            file=sys.stderr,
        )
        return 1
    return 0
