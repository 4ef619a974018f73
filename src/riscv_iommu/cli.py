"""The ``riscv-iommu`` command: demo, explain, run, bench.

Everything here uses the public API, the host toolkit and the scenario
module only: the scenes are built by the hypervisor model through MMIO and
memory, as software would.  Every argument is checked; bad input is a named
error with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, TextIO, Tuple

from . import __version__
from . import bench as _bench
from . import campaign as _campaign
from . import gen as _gen
from . import vectors as _vectors
from .capabilities import Capabilities, IommuParams
from .coverage import cli as _coverage_cli
from .host.hypervisor import Hypervisor, R, Vm, W
from .iommu import Iommu
from .memory import SparseMemory
from .observers import JsonlLog
from .scenario import (
    Runner,
    ScenarioError,
    fault_json,
    load_scenario,
    request_json,
    response_json,
    run_scenario,
)
from .study import command as _study
from .types import Access, Cause, FaultRecord, Request, RequestKind, Response, Status

__all__ = ["main", "build_demo", "explain", "Scene"]

DEMO_DEVICE = 0x0100
DEMO_IOVA = 0x1000
DEMO_GPA = 0x8000_0000


# --------------------------------------------------------------------------
# output helpers
# --------------------------------------------------------------------------
class _Out:
    """Plain or coloured text output."""

    def __init__(self, stream: TextIO, color: Optional[bool] = None) -> None:
        self.stream = stream
        if color is None:
            color = stream.isatty() and os.environ.get("NO_COLOR") is None
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [len(h) for h in headers]
        for r in rows:
            widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
        self.line(
            "  "
            + "  ".join(self.paint(h.ljust(w), "1") for h, w in zip(headers, widths, strict=True))
        )
        for r in rows:
            self.line("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _status(rsp: Response) -> str:
    return Status(rsp.status).name


def _fault_text(f: Optional[FaultRecord]) -> str:
    if f is None:
        return "-"
    return f"{f.cause} {Cause(f.cause).description}"


# --------------------------------------------------------------------------
# the demo scene
# --------------------------------------------------------------------------
@dataclass
class Scene:
    """A built scenario: the IOMMU, its hypervisor and named VMs."""

    iommu: Iommu
    hv: Hypervisor
    vms: Dict[str, Vm] = field(default_factory=dict)


def _new_scene(revision: str, gipc: bool = True) -> Scene:
    iommu = Iommu(
        SparseMemory(),
        capabilities=Capabilities.full(gipc=gipc),
        params=IommuParams(gipc_revision=revision),
    )
    return Scene(iommu, Hypervisor(iommu))


def build_demo(revision: str = "2024") -> Scene:
    """One DMA device without SR-IOV; PASIDs 1, 2, 3 bound to VMs A, B, C with GIPC."""
    sc = _new_scene(revision)
    for name in "ABC":
        vm = sc.hv.create_vm()
        vm.map_guest_ram(DEMO_GPA, 0x10000)
        vm.write(DEMO_GPA, f"memory of VM {name}".encode())
        sc.vms[name] = vm
    sc.hv.attach_gipc(DEMO_DEVICE)
    for pasid, name in ((1, "A"), (2, "B"), (3, "C")):
        sc.hv.bind_pasid(DEMO_DEVICE, pasid, sc.vms[name])
        sc.hv.map(DEMO_DEVICE, pasid, DEMO_IOVA, DEMO_GPA, 0x1000, R | W)
    return sc


def _owner(sc: Scene, spa: int) -> str:
    for name, vm in sc.vms.items():
        for gpa in range(DEMO_GPA, DEMO_GPA + 0x10000, 0x1000):
            if vm.spa(gpa) == spa & ~0xFFF:
                return f"VM {name} GPA {gpa | (spa & 0xFFF):#x}"
    return "-"


def _dma(sc: Scene, pasid: int, addr: int, access: Access = Access.READ) -> Dict[str, Any]:
    rsp = sc.iommu.translate(Request(DEMO_DEVICE, addr, access=access, process_id=pasid, length=4))
    row: Dict[str, Any] = {
        "device": f"{DEMO_DEVICE:#06x}",
        "pasid": pasid,
        "iova": f"{addr:#x}",
        "access": access.name.lower(),
        "status": _status(rsp),
        "spa": f"{rsp.addr:#x}" if rsp.fault is None else "-",
        "lands_in": _owner(sc, rsp.addr) if rsp.fault is None else "-",
        "fault": fault_json(rsp.fault),
        "fault_text": _fault_text(rsp.fault),
    }
    if rsp.fault is None:
        row["data"] = sc.iommu.mem.read(rsp.addr & ~0xFFF, 24).rstrip(b"\0").decode()
    return row


def demo(revision: str, out: _Out, as_json: bool) -> int:
    """``riscv-iommu demo``."""
    sc = build_demo(revision)
    steps: List[Dict[str, Any]] = []
    log: List[Tuple[str, List[Dict[str, Any]]]] = []
    rows = [_dma(sc, p, DEMO_IOVA | 0x10) for p in (1, 2, 3)]
    log.append(("DMA from each PASID to the same IOVA", rows))
    rows = [
        _dma(sc, 1, 0x9000),
        _dma(sc, 4, DEMO_IOVA),
        _dma(sc, 2, DEMO_IOVA, Access.EXECUTE),
    ]
    log.append(("Isolation: unmapped IOVA, unbound PASID, execute of a data page", rows))
    sc.hv.rebind_pasid(DEMO_DEVICE, 3, sc.vms["A"])
    sc.hv.map(DEMO_DEVICE, 3, DEMO_IOVA, DEMO_GPA + 0x1000, 0x1000, R | W)
    sc.vms["A"].write(DEMO_GPA + 0x1000, b"second page of VM A")
    log.append(("After rebinding PASID 3 from VM C to VM A", [_dma(sc, 3, DEMO_IOVA)]))
    faults = sc.hv.driver.faults()
    for title, rows in log:
        steps.append({"step": title, "requests": rows})
    records = [fault_json(f) for f in faults]
    if as_json:
        json.dump(
            {"revision": revision, "steps": steps, "fault_queue": records}, out.stream, indent=2
        )
        out.line()
        return 0
    out.line(out.paint(f"riscv-iommu demo: GIPC ({revision} revision)", "1;36"))
    out.line(
        f"One DMA device {DEMO_DEVICE:#06x} without SR-IOV; PASIDs 1, 2, 3 bound to VMs A, B, C "
        f"(GSCIDs {sc.vms['A'].gscid}, {sc.vms['B'].gscid}, {sc.vms['C'].gscid})."
    )
    for title, rows in log:
        out.line()
        out.line(out.paint(title, "1"))
        out.table(
            ["PASID", "IOVA", "access", "status", "SPA", "lands in", "data", "fault"],
            [
                [
                    str(r["pasid"]),
                    r["iova"],
                    r["access"],
                    out.paint(r["status"], "32" if r["fault"] is None else "31"),
                    r["spa"],
                    r["lands_in"],
                    r.get("data", "-"),
                    r["fault_text"],
                ]
                for r in rows
            ],
        )
    out.line()
    out.line(out.paint("Fault queue (read from memory by the driver)", "1"))
    out.table(
        ["cause", "description", "TTYP", "iotval", "iotval2", "DID", "PASID"],
        [
            [
                str(f.cause),
                Cause(f.cause).description,
                str(f.ttyp),
                f"{f.iotval:#x}",
                f"{f.iotval2:#x}",
                f"{f.device_id:#x}",
                str(f.process_id) if f.pv else "None",
            ]
            for f in faults
        ],
    )
    return 0


# --------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------
def explain(sc: Scene, req: Request, out: _Out, as_json: bool, title: str = "explain") -> int:
    """Explain ``req`` (``Iommu.explain``): every step, and why a fault stopped it."""
    return _explain(sc.iommu, req, out, as_json, title)


def _explain(iommu: Iommu, req: Request, out: _Out, as_json: bool, title: str) -> int:
    ex = iommu.explain(req)  # no side effect on the model (Iommu.explain)
    rsp = ex.rsp
    if as_json:
        json.dump(
            {
                "request": request_json(req),
                "response": response_json(rsp),
                "steps": [e.as_dict() for e in ex.steps],
                "reason": ex.reason,
            },
            out.stream,
            indent=2,
        )
        out.line()
        return 0
    out.line(out.paint(f"riscv-iommu {title}", "1;36"))
    out.line(f"request: {req!r}")
    out.line()
    for e in ex.steps:
        where = f"{e.section} {e.step}".strip()
        text = str(e).split("] ", 1)[1]
        out.line(f"  {out.paint(where.ljust(16), '33')} {text}")
    out.line()
    out.line(f"response: {rsp!r}")
    if ex.reason:
        out.line(f"why: {ex.reason}")
    return 0


# --------------------------------------------------------------------------
# arguments: every value is checked; a bad one is a named error, exit status 2
# --------------------------------------------------------------------------
def _uint(bits: int, what: str) -> Callable[[str], int]:
    hi = (1 << bits) - 1

    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            v = -1
        if not 0 <= v <= hi:
            raise argparse.ArgumentTypeError(
                f"expected {what}: an integer 0 to {hi:#x} ({bits} bits), got {text!r}"
            )
        return v

    return parse


def _pasid(text: str) -> int:
    """A PASID, or "none" / -1 for a request without one (returned as -1)."""
    if text.strip().lower() in ("none", "-1"):
        return -1
    return _uint(20, "a PASID, or none")(text)


def _length(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        v = 0
    if not 1 <= v <= 4096:
        raise argparse.ArgumentTypeError(f"expected a length in bytes, 1 to 4096, got {text!r}")
    return v


def _index(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a request index 0, 1, 2..., got {text!r}")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(
            f"expected a time in seconds, more than 0 and at most 3600, got {text!r}"
        )
    return v


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as JSON objects too when ``--json`` is given."""

    as_json = False

    def error(self, message: str) -> NoReturn:
        if _Parser.as_json:
            json.dump({"error": {"argument": True, "message": message}}, sys.stdout, indent=2)
            print(file=sys.stdout)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


_ACCESS = {"read": Access.READ, "write": Access.WRITE, "execute": Access.EXECUTE}
_KIND = {
    "untranslated": RequestKind.UNTRANSLATED,
    "translated": RequestKind.TRANSLATED,
    "ats": RequestKind.ATS_TRANSLATION,
}


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="riscv-iommu",
        description="RISC-V IOMMU reference model with GIPC: demo, explain, run, bench, gen, "
        "study, replay, campaign, coverage.",
    )
    p.add_argument("--version", action="version", version=f"riscv-iommu {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    d = sub.add_parser("demo", help="the GIPC demo: PASIDs of one device in different VMs")
    d.add_argument(
        "--revision", choices=["2024", "2025"], default="2024", help="GIPC revision (default 2024)"
    )
    d.add_argument("--json", action="store_true", help="print JSON instead of tables")
    d.add_argument("--no-color", action="store_true", help="never colour the output")
    e = sub.add_parser(
        "explain",
        help="every step the model takes for one request",
        description="Translate one request of the demo scene (or of a scenario file) with "
        "tracing on: each structure read with its address, raw value and fields, each check "
        "with its spec section and step, and the result or fault.  With --scenario FILE "
        "--request N, the actions before the Nth [[request]] (counting from 0) run first and "
        "that request is explained; the options below change its fields.",
    )
    e.add_argument("--scenario", metavar="FILE", help="a TOML scenario file instead of the demo")
    e.add_argument(
        "--request",
        type=_index,
        metavar="N",
        help="explain the Nth [[request]] of the scenario (0 is the first)",
    )
    e.add_argument(
        "--revision", choices=["2024", "2025"], default="2024", help="GIPC revision of the demo"
    )
    e.add_argument(
        "--device",
        type=_uint(24, "a device_id"),
        help="device_id (demo: 0x100; scenario: the request's, else the first [[device]])",
    )
    e.add_argument(
        "--pasid", type=_pasid, help="process_id, or none (demo: 1; scenario: the request's)"
    )
    e.add_argument("--addr", type=_uint(64, "an address"), help="the address (demo: 0x1010)")
    e.add_argument("--access", choices=list(_ACCESS), help="access type (default read)")
    e.add_argument("--length", type=_length, help="bytes, 1 to 4096 (demo: 1)")
    e.add_argument("--priv", action="store_true", help="supervisor privilege (with a PASID)")
    e.add_argument("--kind", choices=list(_KIND), help="request kind (default untranslated)")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--no-color", action="store_true", help="never colour the output")
    r = sub.add_parser(
        "run",
        help="run a scenario file and check its expectations",
        description="Run the actions of a TOML scenario file in order (VMs, devices, mappings, "
        "requests, commands, checks...) and check every expectation; exit status 0 when all "
        "hold, 1 when one fails, 2 when the file is malformed (the error names the file, the "
        "line and the field).  The language is in docs/scenarios.md.",
    )
    r.add_argument("scenario", help="the TOML scenario file")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.add_argument(
        "--log",
        metavar="EVENTS.jsonl",
        help="write the model's event stream to this file, one JSON object per line "
        "(docs/events.md)",
    )
    b = sub.add_parser(
        "bench",
        help="the translation benchmarks (microseconds and memory reads per translation)",
        description="Time translations of the benchmark cases (default: the reference "
        "geometry, ref-*) and say which build (pure Python or compiled) was measured.",
    )
    b.add_argument(
        "--seconds", type=_seconds, default=1.0, help="time per case, 0 to 3600 (default 1)"
    )
    b.add_argument("--json", action="store_true", help="print JSON")
    b.add_argument("--all", action="store_true", help="run every case, not only ref-*")
    b.add_argument(
        "cases", nargs="*", help=f"cases (default the ref-* cases): {', '.join(_bench.CASES)}"
    )
    _study.add_parser(sub)
    for mod in (_gen, _vectors, _campaign, _coverage_cli):  # gen, replay, campaign, coverage
        mod.add_cli(sub)
    return p


def _fail(out: _Out, as_json: bool, message: str, err: Optional[Dict[str, Any]] = None) -> int:
    """Report a bad input: on stderr, and as a JSON object with ``--json``; status 2."""
    if as_json:
        json.dump({"error": err or {"message": message}}, out.stream, indent=2)
        out.line()
    print(f"riscv-iommu: {message}", file=sys.stderr)
    return 2


def _explain_command(args: argparse.Namespace, out: _Out) -> int:
    if args.scenario is None:
        if args.request is not None:
            return _fail(out, args.json, "argument --request: needs --scenario FILE")
        sc = build_demo(args.revision)
        pasid = 1 if args.pasid is None else args.pasid
        req = Request(
            DEMO_DEVICE if args.device is None else args.device,
            DEMO_IOVA | 0x10 if args.addr is None else args.addr,
            access=_ACCESS[args.access or "read"],
            process_id=None if pasid < 0 else pasid,
            priv=args.priv and pasid >= 0,
            kind=_KIND[args.kind or "untranslated"],
            length=args.length or 1,
        )
        return explain(sc, req, out, args.json)
    scenario = load_scenario(args.scenario)
    runner = Runner(scenario)
    if args.request is None:
        runner.run()
        device = args.device if args.device is not None else scenario.first_device
        if device is None:
            return _fail(out, args.json, "argument --device: needed (the scenario has no device)")
        if args.addr is None:
            return _fail(out, args.json, "argument --addr: needed without --request")
        req = Request(device, args.addr, length=args.length or 1)
        title = f"explain ({args.scenario}, after every action)"
    else:
        requests = scenario.requests
        if args.request >= len(requests):
            return _fail(
                out,
                args.json,
                f"argument --request: {args.scenario} has {len(requests)} [[request]] "
                f"table(s); expected 0 to {len(requests) - 1}",
            )
        runner.run(until_request=args.request)
        act = requests[args.request]
        req = runner.request_of(act)
        if args.device is not None:
            req.device_id = args.device
        if args.length is not None:
            req.length = args.length
        title = f"explain ({args.scenario}, {act.name}, line {act.line})"
    if args.pasid is not None:
        req.process_id = None if args.pasid < 0 else args.pasid
    if args.addr is not None:
        req.addr = args.addr
    if args.access is not None:
        req.access = _ACCESS[args.access]
    if args.kind is not None:
        req.kind = _KIND[args.kind]
    if args.priv:
        req.priv = True
    if req.priv and req.process_id is None:
        return _fail(out, args.json, "argument --priv: needs a PASID")
    return _explain(runner.iommu, req, out, args.json, title)


def _run_command(args: argparse.Namespace, out: _Out) -> int:
    if args.log is None:
        report = run_scenario(args.scenario)
    else:
        sc = load_scenario(args.scenario)  # a malformed file is reported before the log opens
        try:
            log = JsonlLog(args.log)
        except OSError as err:
            return _fail(out, args.json, f"argument --log: cannot write {args.log}: {err.strerror}")
        with log:
            report = Runner(sc, log_to(log)).run()
    if args.json:
        json.dump(report.as_dict(), out.stream, indent=2)
        out.line()
    else:
        for r in report.results:
            mark = out.paint("PASS", "32") if r.ok else out.paint("FAIL", "31")
            out.line(f"{mark} {r.action} (line {r.line}): {r.summary}")
            for problem in r.problems:
                out.line(f"       {problem}")
        if report.stopped:
            out.line(f"stopped at {report.stopped}")
        out.line(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


def log_to(log: JsonlLog) -> Callable[[Iommu], None]:
    """An ``on_build`` hook attaching ``log`` to the scenario's IOMMU."""

    def attach(iommu: Iommu) -> None:
        iommu.attach(log)

    return attach


def _bench_command(args: argparse.Namespace, out: _Out) -> int:
    def progress(done: int, total: int, case: str) -> None:
        if args.json:
            return
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done == total else "\r"
        print(f"[{bar}] {done}/{total} {case:30s}", end=end, file=sys.stderr, flush=True)

    names = list(_bench.CASES) if args.all else args.cases or None
    try:
        res = _bench.run(args.seconds, names, progress)
    except ValueError as err:
        return _fail(out, args.json, str(err))
    if args.json:
        json.dump(res, out.stream, indent=2)
        out.line()
        return 0
    out.line(f"build: {res['build']} (CPython {res['python']}), best of 5 rounds")
    out.line(f"{'case':28s} {'us/translation':>14s} {'reads':>6s} {'target us':>9s}")
    for name, r in res["cases"].items():
        target = "" if r["target_us"] is None else f"{r['target_us']:9.1f}"
        out.line(f"{name:28s} {r['us']:14.2f} {r['reads']:6.0f} {target:>9s}")
    return 0


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None, stream: Optional[TextIO] = None) -> int:
    """Entry point of the ``riscv-iommu`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.as_json = "--json" in argv
    args = _parser().parse_args(argv)
    stream = stream or sys.stdout
    color = False if getattr(args, "no_color", False) or args.json else None
    out = _Out(stream, color)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            return int(handler(args, stream))
        if args.command == "demo":
            return demo(args.revision, out, args.json)
        if args.command == "explain":
            return _explain_command(args, out)
        if args.command == "run":
            return _run_command(args, out)
        return _bench_command(args, out)
    except ScenarioError as err:
        return _fail(out, args.json, str(err), err.as_dict())
    except BrokenPipeError:  # the reader went away (riscv-iommu ... | head): no traceback
        if stream is sys.stdout:  # and none when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
