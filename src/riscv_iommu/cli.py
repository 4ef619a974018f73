"""The ``riscv-iommu`` command: demo, explain, run, bench.

Everything here uses the public API and the host toolkit only: the scenes
are built by the hypervisor model through MMIO and memory, as software would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from . import bench as _bench
from .capabilities import Capabilities, IommuParams
from .host.hypervisor import Hypervisor, HypervisorError, R, Vm, W, X
from .iommu import Iommu
from .memory import SparseMemory
from .trace import Tracer
from .types import Access, Cause, FaultRecord, Request, Response, Status

__all__ = [
    "main",
    "build_demo",
    "build_scenario",
    "Scene",
    "ScenarioError",
    "load_scenario",
    "run_scenario",
]

DEMO_DEVICE = 0x0100
DEMO_IOVA = 0x1000
DEMO_GPA = 0x8000_0000

_ACCESS = {"read": Access.READ, "write": Access.WRITE, "execute": Access.EXECUTE}


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
        "fault": _fault_text(rsp.fault),
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
    records: List[Dict[str, Any]] = [
        {
            "cause": f.cause,
            "description": Cause(f.cause).description,
            "ttyp": f.ttyp,
            "iotval": f"{f.iotval:#x}",
            "iotval2": f"{f.iotval2:#x}",
            "device_id": f"{f.device_id:#x}",
            "pasid": f.process_id if f.pv else None,
        }
        for f in faults
    ]
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
                    out.paint(r["status"], "32" if r["fault"] == "-" else "31"),
                    r["spa"],
                    r["lands_in"],
                    r.get("data", "-"),
                    r["fault"],
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
                str(r["cause"]),
                str(r["description"]),
                str(r["ttyp"]),
                str(r["iotval"]),
                str(r["iotval2"]),
                str(r["device_id"]),
                str(r["pasid"]),
            ]
            for r in records
        ],
    )
    return 0


# --------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------
def explain(sc: Scene, req: Request, out: _Out, as_json: bool, title: str = "explain") -> int:
    """Translate ``req`` with the tracer on and print every step."""
    tracer = Tracer()
    sc.iommu.tracer = tracer
    try:
        rsp = sc.iommu.translate(req)
    finally:
        sc.iommu.tracer = None
    if as_json:
        json.dump(
            {
                "request": repr(req),
                "response": {
                    "status": Status(rsp.status).name,
                    "addr": f"{rsp.addr:#x}",
                    "fault": _fault_text(rsp.fault),
                },
                "steps": [e.as_dict() for e in tracer.events],
            },
            out.stream,
            indent=2,
        )
        out.line()
        return 0
    out.line(out.paint(f"riscv-iommu {title}", "1;36"))
    out.line(f"request: {req!r}")
    out.line()
    for e in tracer.events:
        where = f"{e.section} {e.step}".strip()
        text = str(e).split("] ", 1)[1]
        out.line(f"  {out.paint(where.ljust(16), '33')} {text}")
    out.line()
    out.line(f"response: {rsp!r}")
    return 0


# --------------------------------------------------------------------------
# scenario files
# --------------------------------------------------------------------------
class ScenarioError(ValueError):
    """A malformed scenario file: names the file, the line and the field."""

    def __init__(self, path: str, line: int, fieldname: str, message: str) -> None:
        super().__init__(f"{path}:{line}: {fieldname}: {message}")
        self.path = path
        self.line = line
        self.field = fieldname


def _toml_loads(text: str) -> Dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
    data: Dict[str, Any] = tomllib.loads(text)
    return data


class _Locator:
    """Line numbers of ``[[table]]`` entries and their keys in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line_of(self, table: str, index: int, key: Optional[str] = None) -> int:
        count = -1
        start = 0
        for n, raw in enumerate(self.lines, 1):
            s = raw.split("#", 1)[0].strip()
            if s == f"[[{table}]]":
                count += 1
                if count == index:
                    start = n
                    if key is None:
                        return n
                    continue
            if start and (s.startswith("[") and n > start):
                break
            if start and key is not None and s.split("=", 1)[0].strip() == key:
                return n
        return start or 1


def load_scenario(path: str) -> Tuple[Dict[str, Any], _Locator]:
    """Parse a TOML scenario file; syntax errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ScenarioError(path, 0, "file", str(e)) from None
    try:
        data = _toml_loads(text)
    except ValueError as e:  # tomllib.TOMLDecodeError
        msg = str(e)
        line = 1
        if "line " in msg:
            try:
                line = int(msg.split("line ", 1)[1].split(",")[0].split(")")[0])
            except ValueError:  # pragma: no cover - the message always has a number
                line = 1
        raise ScenarioError(path, line, "syntax", msg) from None
    return data, _Locator(text)


_PERMS = {"r": R, "w": W, "x": X}


def run_scenario(path: str) -> Dict[str, Any]:
    """Build and run a scenario file; returns the per-request results and a summary."""
    sc, data, loc = build_scenario(path)
    return _run_requests(path, sc, data, loc)


def build_scenario(path: str) -> Tuple[Scene, Dict[str, Any], _Locator]:
    """Build the VMs, devices, bindings and mappings of a scenario file."""
    data, loc = load_scenario(path)

    def need(table: str, i: int, entry: Dict[str, Any], key: str, kind: type) -> Any:
        if key not in entry:
            raise ScenarioError(path, loc.line_of(table, i), f"{table}[{i}].{key}", "missing")
        v = entry[key]
        if kind is int and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise ScenarioError(
                path, loc.line_of(table, i, key), f"{table}[{i}].{key}", "must be an integer >= 0"
            )
        if kind is str and not isinstance(v, str):
            raise ScenarioError(
                path, loc.line_of(table, i, key), f"{table}[{i}].{key}", "must be a string"
            )
        return v

    revision = data.get("revision", "2024")
    if revision not in ("2024", "2025"):
        raise ScenarioError(path, 1, "revision", 'must be "2024" or "2025"')
    sc = _new_scene(str(revision))
    for i, e in enumerate(data.get("vm", [])):
        name = need("vm", i, e, "name", str)
        vm = sc.hv.create_vm()
        for j, r in enumerate(e.get("ram", [])):
            try:
                vm.map_guest_ram(int(r["gpa"]), int(r["size"]))
            except (KeyError, TypeError, ValueError, HypervisorError) as err:
                raise ScenarioError(
                    path, loc.line_of("vm", i, "ram"), f"vm[{i}].ram[{j}]", str(err)
                )
        sc.vms[name] = vm

    def vm_of(table: str, i: int, e: Dict[str, Any]) -> Vm:
        name = need(table, i, e, "vm", str)
        if name not in sc.vms:
            raise ScenarioError(
                path, loc.line_of(table, i, "vm"), f"{table}[{i}].vm", f"no VM {name!r}"
            )
        return sc.vms[name]

    def guarded(table: str, i: int, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except HypervisorError as err:
            raise ScenarioError(path, loc.line_of(table, i), f"{table}[{i}]", str(err)) from None

    for i, e in enumerate(data.get("device", [])):
        did = need("device", i, e, "id", int)
        if e.get("gipc", False):
            guarded("device", i, sc.hv.attach_gipc, did)
        else:
            guarded("device", i, sc.hv.attach, did, vm_of("device", i, e))
    for i, e in enumerate(data.get("bind", [])):
        guarded(
            "bind",
            i,
            sc.hv.bind_pasid,
            need("bind", i, e, "device", int),
            need("bind", i, e, "pasid", int),
            vm_of("bind", i, e),
        )
    for i, e in enumerate(data.get("map", [])):
        perms = 0
        for c in str(e.get("perms", "rw")):
            if c not in _PERMS:
                raise ScenarioError(
                    path, loc.line_of("map", i, "perms"), f"map[{i}].perms", f"bad permission {c!r}"
                )
            perms |= _PERMS[c]
        guarded(
            "map",
            i,
            sc.hv.map,
            need("map", i, e, "device", int),
            e.get("pasid"),
            need("map", i, e, "iova", int),
            need("map", i, e, "gpa", int),
            need("map", i, e, "size", int),
            perms,
        )
    return sc, data, loc


def _run_requests(path: str, sc: Scene, data: Dict[str, Any], loc: _Locator) -> Dict[str, Any]:
    def need(table: str, i: int, entry: Dict[str, Any], key: str) -> int:
        v = entry.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ScenarioError(
                path, loc.line_of(table, i, key), f"{table}[{i}].{key}", "must be an integer >= 0"
            )
        return v

    results = []
    failed = 0
    for i, e in enumerate(data.get("request", [])):
        access = str(e.get("access", "read"))
        if access not in _ACCESS:
            raise ScenarioError(
                path,
                loc.line_of("request", i, "access"),
                f"request[{i}].access",
                "read, write or execute",
            )
        req = Request(
            need("request", i, e, "device"),
            need("request", i, e, "addr"),
            access=_ACCESS[access],
            process_id=e.get("pasid"),
            length=int(e.get("length", 4)),
        )
        rsp = sc.iommu.translate(req)
        exp = e.get("expect", {})
        problems = []
        if "cause" in exp:
            got = rsp.fault.cause if rsp.fault is not None else None
            if got != exp["cause"]:
                problems.append(f"cause {got} != {exp['cause']}")
        else:
            if rsp.fault is not None:
                problems.append(f"fault {_fault_text(rsp.fault)}")
            if "vm" in exp:
                if exp["vm"] not in sc.vms:
                    raise ScenarioError(
                        path,
                        loc.line_of("request", i, "expect"),
                        f"request[{i}].expect.vm",
                        f"no VM {exp['vm']!r}",
                    )
                vm = sc.vms[exp["vm"]]
                gpa = int(exp.get("gpa", req.addr))
                try:
                    want: Optional[int] = vm.spa(gpa & ~0xFFF) | (gpa & 0xFFF)
                except ValueError:  # not the VM's RAM
                    want = None
                if rsp.fault is None and want != rsp.addr:
                    problems.append(f"lands at {rsp.addr:#x}, not VM {exp['vm']} GPA {gpa:#x}")
            if "spa" in exp and rsp.addr != exp["spa"]:
                problems.append(f"spa {rsp.addr:#x} != {exp['spa']:#x}")
        ok = not problems
        failed += not ok
        results.append(
            {
                "request": i,
                "line": loc.line_of("request", i),
                "ok": ok,
                "status": Status(rsp.status).name,
                "addr": f"{rsp.addr:#x}",
                "fault": _fault_text(rsp.fault),
                "problems": problems,
            }
        )
    return {"file": path, "passed": len(results) - failed, "failed": failed, "results": results}


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def _int(text: str) -> int:
    return int(text, 0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="riscv-iommu",
        description="RISC-V IOMMU reference model with GIPC: demo, explain, run, bench.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser("demo", help="the GIPC demo: PASIDs of one device in different VMs")
    d.add_argument(
        "--revision", choices=["2024", "2025"], default="2024", help="GIPC revision (default 2024)"
    )
    d.add_argument("--json", action="store_true", help="print JSON instead of tables")
    d.add_argument("--no-color", action="store_true", help="never colour the output")
    e = sub.add_parser(
        "explain",
        help="every step the model takes for one request",
        description="Translate one request of the demo scene (or a scenario file) with tracing on: "
        "each structure read with its address, raw value and fields, each check with its spec "
        "section and step, and the result or fault.",
    )
    e.add_argument("--scenario", help="a TOML scenario file to build instead of the demo scene")
    e.add_argument(
        "--revision",
        choices=["2024", "2025"],
        default="2024",
        help="GIPC revision of the demo scene",
    )
    e.add_argument("--device", type=_int, default=DEMO_DEVICE, help="device_id (default 0x100)")
    e.add_argument("--pasid", type=_int, default=1, help="process_id; -1 for none (default 1)")
    e.add_argument("--addr", type=_int, default=DEMO_IOVA | 0x10, help="IOVA (default 0x1010)")
    e.add_argument("--access", choices=list(_ACCESS), default="read", help="access type")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--no-color", action="store_true", help="never colour the output")
    r = sub.add_parser(
        "run",
        help="run a scenario file and check its expectations",
        description="Build the VMs, devices, bindings and mappings of a TOML scenario file and run "
        "its requests; exit status 1 when an expectation fails, 2 when the file is malformed. "
        "The format is in docs/scenarios.md.",
    )
    r.add_argument("scenario", help="the TOML scenario file")
    r.add_argument("--json", action="store_true", help="print JSON")
    b = sub.add_parser(
        "bench",
        help="the translation benchmarks (microseconds and memory reads per translation)",
        description="Time translations of the benchmark cases (default: the reference "
        "geometry, ref-*) and say which build (pure Python or compiled) was measured.",
    )
    b.add_argument("--seconds", type=float, default=1.0, help="time per case (default 1)")
    b.add_argument("--json", action="store_true", help="print JSON")
    b.add_argument("--all", action="store_true", help="run every case, not only ref-*")
    b.add_argument(
        "cases", nargs="*", help=f"cases (default the ref-* cases): {', '.join(_bench.CASES)}"
    )
    return p


def main(argv: Optional[Sequence[str]] = None, stream: Optional[TextIO] = None) -> int:
    """Entry point of the ``riscv-iommu`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    stream = stream or sys.stdout
    color = False if getattr(args, "no_color", False) or getattr(args, "json", False) else None
    out = _Out(stream, color)
    if args.command == "demo":
        return demo(args.revision, out, args.json)
    if args.command == "explain":
        try:
            sc = (
                build_demo(args.revision) if not args.scenario else build_scenario(args.scenario)[0]
            )
        except ScenarioError as err:
            print(f"riscv-iommu: {err}", file=sys.stderr)
            return 2
        req = Request(
            args.device,
            args.addr,
            access=_ACCESS[args.access],
            process_id=None if args.pasid < 0 else args.pasid,
            length=1,
        )
        return explain(sc, req, out, args.json)
    if args.command == "run":
        try:
            res = run_scenario(args.scenario)
        except ScenarioError as err:
            print(f"riscv-iommu: {err}", file=sys.stderr)
            return 2
        if args.json:
            json.dump(res, stream, indent=2)
            out.line()
        else:
            for r in res["results"]:
                mark = out.paint("PASS", "32") if r["ok"] else out.paint("FAIL", "31")
                extra = "" if r["ok"] else " -- " + "; ".join(r["problems"])
                out.line(
                    f"{mark} request[{r['request']}] (line {r['line']}): "
                    f"{r['status']} {r['addr']} {r['fault']}{extra}"
                )
            out.line(f"{res['passed']} passed, {res['failed']} failed")
        return 1 if res["failed"] else 0

    # bench
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
        print(f"riscv-iommu: {err}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(res, stream, indent=2)
        out.line()
        return 0
    out.line(f"build: {res['build']} (CPython {res['python']}), best of 5 rounds")
    out.line(f"{'case':28s} {'us/translation':>14s} {'reads':>6s} {'target us':>9s}")
    for name, r in res["cases"].items():
        target = "" if r["target_us"] is None else f"{r['target_us']:9.1f}"
        out.line(f"{name:28s} {r['us']:14.2f} {r['reads']:6.0f} {target:>9s}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
