"""The replayable vector format: round trips, diffs, malformed files, the recorder."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu import gen, vectors
from riscv_iommu.host.driver import Driver, ats_inval, iofence_c
from riscv_iommu.host.tables import PageAllocator
from riscv_iommu.vectors import Recorder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "vectors"


def cli(*args: str) -> Tuple[int, str, str]:
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args), stream=out)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def write(path: Path, doc: Any) -> str:
    path.write_text(vectors.dumps(doc) if isinstance(doc, dict) else doc)
    return str(path)


@pytest.fixture(scope="module")
def doc() -> Dict[str, Any]:
    return gen.generate(7, 12, "mixed")


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------
@pytest.mark.parametrize("profile", list(gen.PROFILES))
def test_generated_vectors_replay(profile: str) -> None:
    """gen -> text -> load -> replay: every expectation matches, for every profile."""
    for seed in range(3):
        d = gen.generate(seed, 20, profile)
        result = vectors.replay(vectors.loads(vectors.dumps(d)))
        assert result.ok, result.diffs[:5]
        assert result.steps == len(d["steps"])


def test_same_document_same_bytes(doc: Dict[str, Any]) -> None:
    text = vectors.dumps(doc)
    assert vectors.dumps(vectors.loads(text)) == text
    assert text.startswith('{\n"capabilities":') and text.endswith("}\n")


def test_examples_replay() -> None:
    """The shipped regression set replays; it stays small."""
    files = sorted(EXAMPLES.glob("*.json"))
    assert len(files) >= 5
    assert sum(f.stat().st_size for f in files) < 200_000
    for f in files:
        result = vectors.replay(vectors.load(str(f)))
        assert result.ok, (f.name, result.diffs[:5])


def test_minimal_example_is_what_its_script_builds() -> None:
    """examples/vectors/minimal.json is the output of minimal.py (shown in docs/vectors.md)."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "minimal.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert proc.stdout == (EXAMPLES / "minimal.json").read_text()
    doc_text = (ROOT / "docs" / "vectors.md").read_text()
    assert (EXAMPLES / "minimal.json").read_text() in doc_text


def test_minimal_example_outputs() -> None:
    """The minimal file's expectations: a pass-through read, a 258 record, a fence write."""
    d = vectors.load(str(EXAMPLES / "minimal.json"))
    reqs = [s for s in d["steps"] if s["op"] == "request"]
    ok = reqs[0]["expect"]["response"]
    assert ok["status"] == "success" and ok["addr"] == "0x80001000" and ok["fault"] is None
    bad = reqs[1]["expect"]
    assert bad["response"]["status"] == "unsupported_request"
    assert bad["fq"] == [
        {
            "cause": 258,
            "device_id": 2,
            "iotval": "0x5000",
            "iotval2": "0x0",
            "priv": False,
            "process_id": 0,
            "pv": False,
            "ttyp": 3,
        }
    ]
    cmds = [s for s in d["steps"] if s["op"] == "commands"]
    assert cmds == [
        {
            "op": "commands",
            "be": False,
            "cqt": 1,
            "entries": [{"addr": "0x30000", "d0": "0x123400000402", "d1": "0x10000"}],
            "expect": {
                "cqh": 1,
                "cqcsr": "0x10001",
                "memory": [{"addr": "0x40000", "data": "34120000"}],
            },
        }
    ]
    assert d["final"]["registers"]["fqt"]["value"] == "0x1"


# --------------------------------------------------------------------------
# differences: exit 1
# --------------------------------------------------------------------------
def tampered(doc: Dict[str, Any]) -> Tuple[Dict[str, Any], int, str]:
    d = copy.deepcopy(doc)
    for i, s in enumerate(d["steps"]):
        if s["op"] == "request" and s["expect"]["response"]["status"] == "success":
            old = s["expect"]["response"]["addr"]
            s["expect"]["response"]["addr"] = hex(int(old, 16) ^ 0x1000)
            return d, i, old
    raise AssertionError("no successful request")  # pragma: no cover - the seed has one


def test_tampered_expectation_gives_the_exact_diff_line(
    doc: Dict[str, Any], tmp_path: Path
) -> None:
    d, i, old = tampered(doc)
    new = d["steps"][i]["expect"]["response"]["addr"]
    path = write(tmp_path / "v.json", d)
    rc, out, err = cli("replay", path)
    assert rc == 1 and err == ""
    line = f'{path}: steps[{i}] request: expect.response.addr: expected "{new}", got "{old}"'
    assert out.splitlines()[0] == line
    assert out.splitlines()[-1] == f"FAIL {path}: 1 of {len(d['steps'])} steps differ (1 fields)"


def test_diff_of_missing_and_extra_outputs(doc: Dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    step = next(s for s in d["steps"] if s["op"] == "mmio_read")
    value = step["expect"]["value"]
    del step["expect"]
    d["final"]["registers"]["fctl"]["value"] = "0xff"
    d["final"]["digests"]["fq"]["sha256"] = "0" * 64
    result = vectors.replay(d)
    i = d["steps"].index(step)
    assert result.diffs[0] == f'steps[{i}] mmio_read: expect.value: expected (none), got "{value}"'
    assert result.failed_steps == 2
    assert any(x.startswith('final.digests.fq.sha256: expected "000') for x in result.diffs)
    assert any(x.startswith('final.registers.fctl.value: expected "0xff"') for x in result.diffs)


def test_diff_of_lists() -> None:
    assert vectors.diff([1, 2], [1], "x") == ["x[1]: expected 2, got (none)"]
    assert vectors.diff(True, 1, "y.a") == ["y.a: expected true, got 1"]
    assert vectors.diff({"a": [1]}, {"a": [1]}, "z") == []


def test_max_diffs_and_several_files(doc: Dict[str, Any], tmp_path: Path) -> None:
    d = copy.deepcopy(doc)
    for s in d["steps"]:
        if s["op"] == "mmio_read":
            s["expect"]["value"] = "0xdead"
    bad = write(tmp_path / "bad.json", d)
    good = write(tmp_path / "good.json", doc)
    rc, out, _ = cli("replay", "--max-diffs", "2", good, bad)
    lines = out.splitlines()
    assert rc == 1
    assert lines[0] == f"PASS {good}: {len(doc['steps'])} steps"
    assert lines[3].startswith(f"{bad}: ... ") and lines[3].endswith(" more differences")
    assert lines[4].startswith(f"FAIL {bad}: ")


# --------------------------------------------------------------------------
# malformed files: exit 2, the JSON path named
# --------------------------------------------------------------------------
def mutate(doc: Dict[str, Any], fn: Any) -> Dict[str, Any]:
    d = copy.deepcopy(doc)
    fn(d)
    return d


def first(d: Dict[str, Any], op: str) -> Tuple[int, Dict[str, Any]]:
    return next((i, s) for i, s in enumerate(d["steps"]) if s["op"] == op)


MALFORMED: List[Tuple[str, Any, str]] = [
    ("format", lambda d: d.update(format="other"), "format: expected 'riscv-iommu-vectors'"),
    ("version", lambda d: d.update(version=2), "version: this tool reads version 1, got 2"),
    ("root field", lambda d: d.pop("steps"), "$.steps: missing"),
    ("unknown root", lambda d: d.update(extra=1), "$.extra: unknown field"),
    ("caps hex", lambda d: d.update(capabilities="12"), "capabilities: expected a 64-bit hex"),
    ("fctl width", lambda d: d.update(fctl="0x100000000"), "fctl: fctl is a 32-bit register"),
    ("param name", lambda d: d["params"].update(foo=1), "params.foo: unknown parameter"),
    (
        "param type",
        lambda d: d["params"].update(iotlb_size="1"),
        "params.iotlb_size: expected a int",
    ),
    (
        "param value",
        lambda d: d["params"].update(gipc_revision="2023"),
        "capabilities/params: IommuParams.gipc_revision",
    ),
    ("memory type", lambda d: d.update(memory={}), "memory: expected an array, got an object"),
    (
        "memory bytes",
        lambda d: d["memory"][0].update(data="abc"),
        "memory[0].data: expected lower-case hex bytes",
    ),
    (
        "step type",
        lambda d: d["steps"].insert(0, 5),
        "steps[0]: expected an object, got an integer",
    ),
    ("op", lambda d: d["steps"].insert(0, {"op": "poke"}), "steps[0].op: unknown op 'poke'"),
    (
        "step field",
        lambda d: d["steps"].insert(0, {"op": "tick"}),
        "steps[0].cycles: missing",
    ),
    (
        "step extra",
        lambda d: d["steps"].insert(0, {"op": "tick", "cycles": 1, "when": 0}),
        "steps[0].when: unknown field",
    ),
    (
        "mmio size",
        lambda d: d["steps"].insert(0, {"op": "mmio_read", "offset": 0, "size": 2}),
        "steps[0].size: expected one of 4, 8",
    ),
    (
        "offset range",
        lambda d: d["steps"].insert(0, {"op": "mmio_read", "offset": 4096, "size": 4}),
        "steps[0].offset: 4096 is out of range (at most 4095)",
    ),
    (
        "bool",
        lambda d: first(d, "request")[1]["request"].update(priv=0),
        ".request.priv: expected true or false, got an integer",
    ),
    (
        "enum",
        lambda d: first(d, "request")[1]["request"].update(access="fetch"),
        ".request.access: expected one of 'read', 'write', 'execute'",
    ),
    (
        "null",
        lambda d: first(d, "request")[1]["request"].update(length=None),
        ".request.length: expected a non-negative integer, got null",
    ),
    (
        "bool for int",
        lambda d: first(d, "request")[1]["request"].update(device_id=True),
        ".request.device_id: expected a non-negative integer, got a boolean",
    ),
    (
        "negative",
        lambda d: first(d, "request")[1]["request"].update(length=-1),
        ".request.length: expected a non-negative integer",
    ),
    (
        "expect key",
        lambda d: first(d, "request")[1]["expect"].update(bogus=1),
        ".expect.bogus: unknown output",
    ),
    (
        "expect type",
        lambda d: first(d, "request")[1]["expect"]["response"].update(r="yes"),
        ".expect.response.r: expected true or false",
    ),
    (
        "fq record",
        lambda d: first(d, "request")[1]["expect"].update(fq=[{"cause": 1}]),
        ".expect.fq[0].ttyp: missing",
    ),
    (
        "message",
        lambda d: first(d, "request")[1]["expect"].update(messages=[{"type": "prg_response"}]),
        ".expect.messages[0].device_id: missing",
    ),
    (
        "wired",
        lambda d: first(d, "request")[1]["expect"].update(wired=[[3]]),
        ".expect.wired[0]: expected [vector 0..15, level 0 or 1]",
    ),
    (
        "pq",
        lambda d: first(d, "request")[1]["expect"].update(pq=[{}]),
        ".expect.pq[0].device_id: missing",
    ),
    (
        "watch",
        lambda d: first(d, "request")[1]["expect"].update(memory=[{"addr": "0x0"}]),
        ".expect.memory[0].data: missing",
    ),
    (
        "range end",
        lambda d: d["steps"].insert(
            0, {"op": "mem_write", "addr": "0xffffffffffffffff", "data": "0000"}
        ),
        "steps[0]: the range runs past the 64-bit address space",
    ),
    (
        "run end",
        lambda d: d["memory"].append({"addr": "0xffffffffffffffff", "data": "0000"}),
        "the bytes run past the 64-bit address space",
    ),
    ("final", lambda d: d["final"].update(other={}), "final.other: unknown field"),
    (
        "digest name",
        lambda d: d["final"]["digests"].update(tlb={}),
        "final.digests.tlb: unknown digest",
    ),
    (
        "digest hash",
        lambda d: d["final"]["digests"]["cq"].update(sha256="xyz"),
        "final.digests.cq.sha256: expected 64 lower-case hex digits",
    ),
    (
        "register",
        lambda d: d["final"]["registers"]["fctl"].update(size=3),
        "final.registers.fctl.size: expected one of 4, 8",
    ),
    ("generator", lambda d: d.update(generator=[]), "generator: expected an object"),
]


@pytest.mark.parametrize("name,fn,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_name_the_field(
    name: str, fn: Any, message: str, doc: Dict[str, Any], tmp_path: Path
) -> None:
    path = write(tmp_path / "v.json", mutate(doc, fn))
    rc, out, err = cli("replay", path)
    assert rc == 2 and out == ""
    assert err.startswith(f"riscv-iommu replay: {path}: ")
    assert message in err
    assert "Traceback" not in err


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "v.json", '{\n"format": "riscv-iommu-vectors",\n"version": 1,,\n}')
    rc, _, err = cli("replay", path)
    assert rc == 2
    want = "invalid JSON: Expecting property name enclosed in double quotes"
    assert err.strip() == f"riscv-iommu replay: {path}:3:14: {want}"


def test_unreadable_and_non_object_files(tmp_path: Path) -> None:
    rc, _, err = cli("replay", str(tmp_path / "missing.json"))
    assert rc == 2 and "cannot read the file" in err
    path = write(tmp_path / "list.json", "[]")
    rc, _, err = cli("replay", path)
    assert (
        rc == 2
        and err.strip() == f"riscv-iommu replay: {path}: $: expected an object, got an array"
    )


def test_a_step_the_model_cannot_run(doc: Dict[str, Any], tmp_path: Path) -> None:
    """Software writing memory that an injection covers: malformed, named by step."""
    d = copy.deepcopy(doc)
    d["steps"][:0] = [
        {"op": "inject", "addr": "0x1000", "size": 8, "fault": "access-fault"},
        {"op": "mem_write", "addr": "0x1000", "data": "00"},
    ]
    path = write(tmp_path / "v.json", d)
    rc, _, err = cli("replay", path)
    assert rc == 2
    assert err.strip() == (
        f"riscv-iommu replay: {path}: steps[1]: the step cannot run: access-fault at 0x1000 (+1)"
    )


def test_replay_options_are_validated() -> None:
    rc, _, err = cli("replay", "--max-diffs", "0", "x.json")
    assert rc == 2 and "expected an integer >= 1, got 0" in err
    rc, _, err = cli("replay", "--max-diffs", "many", "x.json")
    assert rc == 2 and "expected an integer, got 'many'" in err
    rc, _, err = cli("replay")
    assert rc == 2 and "FILE" in err


def test_replay_as_a_process(tmp_path: Path) -> None:
    path = str(EXAMPLES / "minimal.json")
    proc = subprocess.run(
        [sys.executable, "-m", "riscv_iommu.cli", "replay", path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout == f"PASS {path}: 10 steps\n"


# --------------------------------------------------------------------------
# the recorder and the runner's outputs
# --------------------------------------------------------------------------
def test_recorder_with_the_driver_records_commands_and_outputs() -> None:
    """A driver brought up through the recorder: its commands become ``commands`` steps with the
    fence's memory write watched; an ATS.INVAL's message, the device's completion, a page
    request's record and a wired interrupt all appear as outputs."""
    caps = rv.Capabilities.full(igs=rv.IGS.WSI)
    rec = Recorder(caps, rv.IommuParams(), fctl=F.FCTL.WSI.mask)
    alloc = PageAllocator(rec.mem)
    drv = Driver(rec.mmio, rec.mem, alloc, poll_limit=2)  # type: ignore[arg-type]
    from riscv_iommu.host.driver import InterruptConfig

    ddt = drv.bring_up(
        ddt_levels=1, cq_log2=2, fq_log2=2, pq_log2=2, interrupts=InterruptConfig(wsi=True)
    )
    tc = F.DC_TC
    ddt.set_dc(5, tc=tc.V.mask | tc.EN_ATS.mask | tc.EN_PRI.mask)
    rec.start()
    drv.submit(iofence_c(), ats_inval(5))
    out = rec.last
    assert rec.steps[-1]["op"] == "commands" and len(rec.steps[-1]["entries"]) == 2
    assert out["messages"] == [
        {
            "type": "invalidation_request",
            "device_id": 5,
            "addr": "0x0",
            "s": False,
            "global": False,
            "pasid": None,
            "segment": None,
            "itag": 0,
        }
    ]
    assert drv.fence() is False  # waits for the device
    fence = rec.steps[-3]
    flag = drv.fence_addr
    assert fence["op"] == "commands" and fence["expect"]["memory"] == [
        {"addr": hex(flag), "data": "00000000"}
    ]
    done = rec.invalidation_completion(5, 1, 1, [(flag, 4)])
    assert done == {"completed": 1, "memory": [{"addr": hex(flag), "data": "01000000"}]}
    out = rec.page_request(rv.PageRequest(device_id=5, addr=0x3000, last=True))
    assert out == {
        "response": None,
        "pq": [
            {
                "device_id": 5,
                "process_id": 0,
                "pv": False,
                "priv": False,
                "exec_req": False,
                "read": True,
                "write": False,
                "last": True,
                "prg_index": 0,
                "addr": "0x3000",
            }
        ],
        "wired": [[3, 1]],
    }
    out = rec.translate(rv.Request(device_id=9, addr=0x2000))
    assert out["fq"][0]["cause"] == 258 and out["wired"] == [[1, 1]]
    rec.tick(5)
    assert rec.ats_timeout() == {"timed_out": 0}
    rec.datapath_error(1)
    assert rec.translate(rv.Request(device_id=5, addr=0))["response"]["fault"]["cause"] == 272
    rec.inject(0x1000, 8, rv.MemoryFault.DATA_CORRUPTION)
    rec.clear_injections()
    d = rec.document()
    assert vectors.replay(vectors.loads(vectors.dumps(d))).ok
    with pytest.raises(RuntimeError):
        rec.start()


def test_recorder_flushes_cq_writes_without_a_doorbell() -> None:
    """Writes into the command queue followed by something else than cqt: plain memory writes;
    an odd-sized write into the queue too."""
    rec = Recorder(rv.Capabilities.full(), rv.IommuParams())
    rec.start()
    rec.mmio_write(rv.REG.CQB, F.QUEUE_BASE.encode(LOG2SZ_1=1, PPN=0x30), 8)
    rec.mem.write(0x30000, b"\x02" + bytes(7))
    rec.mem.write(0x30000, b"\x02" + bytes(7))  # written again: still a step
    rec.mmio_write(rv.REG.CQCSR, 1, 4)
    assert [s["op"] for s in rec.steps[-2:]] == ["mem_write", "mmio_write"]
    rec.mem.write(0x30010, b"\x02\x00\x00")
    rec.mmio_write(rv.REG.CQT, 1, 4)
    assert [s["op"] for s in rec.steps[-2:]] == ["mem_write", "mmio_write"]
    rec.mem.write(0x30020, bytes([2]) + bytes(7))  # one doubleword only
    rec.mmio_write(rv.REG.CQT, 2, 4)
    assert [s["op"] for s in rec.steps[-2:]] == ["mem_write", "mmio_write"]
    assert rec.mem.read(0x30000, 1) == b"\x02"
    d = rec.document({"note": "x"})
    assert d["generator"]["note"] == "x" and vectors.replay(d).ok


def test_document_starts_the_recorder() -> None:
    rec = Recorder(rv.Capabilities(), rv.IommuParams(), on_model=lambda io: seen.append(io))
    seen: List[Any] = []
    rec.mem.write(0x5000, b"\x01")
    rec.mmio_read(rv.REG.CAPABILITIES, 8)
    d = rec.document()
    assert d["memory"] == [{"addr": "0x5000", "data": "0100000000000000"}]
    assert seen == [rec.iommu] and d["steps"][0]["expect"] == {"value": hex(rv.Capabilities().raw)}


def test_memory_image_runs() -> None:
    mem = rv.SparseMemory()
    mem.write(0x1008, b"\x01")
    mem.write(0x1010, b"\x00" * 7 + b"\x02")
    mem.write(0x1020, b"\x03")
    mem.write(0x2FF8, b"\x04")
    mem.write(0x4000, bytes(8))
    assert vectors.memory_image(mem) == [
        {"addr": "0x1008", "data": "0100000000000000" + "0000000000000002"},
        {"addr": "0x1020", "data": "0300000000000000"},
        {"addr": "0x2ff8", "data": "0400000000000000"},
    ]


def test_final_with_a_subset_of_registers_and_digests(doc: Dict[str, Any]) -> None:
    d = copy.deepcopy(doc)
    d["final"] = {"registers": {"x": {"offset": 0, "size": 8, "value": d["capabilities"]}}}
    assert vectors.replay(d).ok
    d["final"] = {"digests": {"image": doc["final"]["digests"]["image"]}}
    assert vectors.replay(d).ok
    del d["final"]
    assert vectors.replay(d).ok


def test_json_values_are_plain(doc: Dict[str, Any]) -> None:
    """Every value is a JSON type (no enum or bytes leaks into the document)."""
    assert json.loads(json.dumps(doc)) == doc


def test_hypervisor_through_the_recorder() -> None:
    """The hypervisor model (GIPC, both stages) records as easily as the driver: it reads the
    platform description (capabilities, parameters, memory port) from ``rec.mmio``."""
    from riscv_iommu.host.hypervisor import Hypervisor, R, W

    rec = Recorder(rv.Capabilities.full(gipc=True), rv.IommuParams(gipc_revision="2025"))
    hv = Hypervisor(rec.mmio)  # type: ignore[arg-type]
    vm = hv.create_vm()
    vm.map_guest_ram(0x8000_0000, 1 << 21)
    hv.attach_gipc(7)
    rec.start()
    hv.bind_pasid(7, 1, vm)
    hv.map(7, 1, 0x10000, 0x8000_1000, 0x1000, R | W)
    out = rec.translate(rv.Request(device_id=7, addr=0x10008, process_id=1))
    assert out["response"]["addr"] == hex(vm.spa(0x8000_1008))
    assert rec.mmio.params.gipc_revision == "2025" and rec.mmio.mem is rec.mem
    rec.mem.write(hv.driver.cq_base, bytes(8))  # a command write left without a doorbell
    d = rec.document()
    assert d["steps"][-1] == {"op": "mem_write", "addr": hex(hv.driver.cq_base), "data": "00" * 8}
    assert vectors.replay(vectors.loads(vectors.dumps(d))).ok


def test_replay_json(doc: Dict[str, Any], tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", doc)
    d, i, old = tampered(doc)
    bad = write(tmp_path / "bad.json", d)
    broken = write(tmp_path / "broken.json", "{")
    rc, out, _ = cli("replay", "--json", good, bad, broken)
    data = json.loads(out)
    assert rc == 2
    files = data["files"]
    assert [f["status"] for f in files] == ["pass", "fail", "malformed"]
    assert files[0] == {
        "file": good,
        "status": "pass",
        "steps": len(doc["steps"]),
        "failed_steps": 0,
        "diffs": [],
    }
    assert files[1]["diffs"][0].startswith(f"steps[{i}] request: expect.response.addr: ")
    assert files[2]["error"].startswith(f"{broken}:1:2: invalid JSON")
    rc, out, _ = cli("replay", "--json", bad)
    assert rc == 1 and json.loads(out)["files"][0]["failed_steps"] == 1


def test_help_of_the_new_commands() -> None:
    for command, words in (
        ("gen", ["--seed", "--profile", "legal"]),
        ("replay", ["--max-diffs", "docs/vectors.md"]),
        ("campaign", ["--seeds", "--dask", "--plugin", "docs/stimulus.md"]),
    ):
        rc, out, _ = cli(command, "--help")
        assert rc == 0 and all(w in out for w in words), command
