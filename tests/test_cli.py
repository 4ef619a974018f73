"""The riscv-iommu command, run in a subprocess as a user would."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

import riscv_iommu as rv

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gipc.toml"


def cli(*args: str) -> Tuple[int, str, str]:
    """Run the command in this process (so coverage sees it); see also test_as_a_process."""
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args), stream=out)
        except SystemExit as e:  # --help and argparse errors
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def process(*args: str) -> Tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "riscv_iommu.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("revision", ["2024", "2025"])
def test_demo_shows_isolation_faults_and_rebinding(revision: str) -> None:
    """`riscv-iommu demo`: each PASID reaches its VM; isolation attempts fault; rebinding works."""
    rc, out, _ = cli("demo", "--revision", revision, "--no-color")
    assert rc == 0
    assert f"GIPC ({revision} revision)" in out
    for vm in "ABC":
        assert f"VM {vm} GPA 0x80000010  memory of VM {vm}" in out
    assert "13 Read page fault" in out and "266 PDT entry not valid" in out
    assert "12 Instruction page fault" in out
    assert "VM A GPA 0x80001000  second page of VM A" in out
    assert "\x1b[" not in out  # --no-color


def test_demo_json() -> None:
    """`riscv-iommu demo --json` prints the same facts as JSON."""
    rc, out, _ = cli("demo", "--json")
    assert rc == 0
    data = json.loads(out)
    first = data["steps"][0]["requests"]
    assert [r["lands_in"] for r in first] == [f"VM {v} GPA 0x80000010" for v in "ABC"]
    assert [f["cause"] for f in data["fault_queue"]] == [13, 266, 12]
    assert data["fault_queue"][1]["process_id"] == 4 and data["fault_queue"][1]["pv"] is True
    assert data["steps"][1]["requests"][1]["fault"]["cause_name"] == "PDT_ENTRY_NOT_VALID"
    assert data["steps"][0]["requests"][0]["fault"] is None


def test_explain_lists_every_structure_read_with_spec_steps() -> None:
    """`riscv-iommu explain`: DDT, DC, PDT, PC, G-stage and first-stage reads, then the result."""
    rc, out, _ = cli("explain", "--no-color", "--pasid", "2")
    assert rc == 0
    lines = out.splitlines()
    assert any(
        line.strip().startswith("GET_DC 3") and "non-leaf DDT entry" in line for line in lines
    )
    assert any("DC.tc" in line and "DC.tc.GIPC is bit 12" in line for line in lines)
    assert any(line.strip().startswith("GET_PC 10") and "PC.iohgatp" in line for line in lines)
    assert any(line.strip().startswith("P2IOVA 17") and "from the PC" in line for line in lines)
    assert any(line.strip().startswith("PTW 2") for line in lines)
    assert any(line.strip().startswith("PTW-G 2") for line in lines)
    assert any(line.strip().startswith("P2IOVA 20") for line in lines)
    assert "response: Response(status=SUCCESS" in out


def test_explain_a_fault_json() -> None:
    """`explain --json` of a faulting request ends with the fault."""
    rc, out, _ = cli("explain", "--json", "--pasid", "7")
    assert rc == 0
    data = json.loads(out)
    assert data["response"]["fault"] == {
        "cause": 266,
        "cause_name": "PDT_ENTRY_NOT_VALID",
        "description": "PDT entry not valid",
        "ttyp": 2,
        "ttyp_name": "UNTRANSLATED_READ",
        "iotval": 0x1010,
        "iotval2": 0,
        "device_id": 0x100,
        "process_id": 7,
        "pv": True,
        "priv": False,
    }
    assert data["response"]["status"] == "COMPLETER_ABORT"
    assert data["request"]["process_id"] == 7 and data["request"]["access"] == "read"
    assert data["steps"][-1]["section"] == "FAULT"
    assert {s["section"] for s in data["steps"]} >= {"P2IOVA", "GET_DC", "GET_PC"}


def test_explain_with_a_scenario_file() -> None:
    """`explain --scenario FILE` builds that file's scene."""
    rc, out, _ = cli(
        "explain", "--scenario", str(EXAMPLE), "--pasid", "2", "--addr", "0x1010", "--no-color"
    )
    assert rc == 0 and "IOTLB hit: 0x1010 -> 0x80028010" in out  # the requests ran first
    assert "explain (" in out and "after every action" in out
    assert "request: Request(device_id=0x100, addr=0x1010" in out  # the first [[device]]


def test_explain_the_nth_request_of_a_scenario() -> None:
    """`explain --scenario FILE --request N`: the actions before it run, then it is explained;
    options change its fields."""
    rc, out, _ = cli("explain", "--scenario", str(EXAMPLE), "--request", "2", "--no-color")
    assert rc == 0
    assert "request[2], line 58" in out
    assert "access=WRITE, process_id=0x2" in out
    assert "FAULT" in out and "stop and report cause 15" in out
    rc, out, _ = cli(
        "explain",
        "--scenario",
        str(EXAMPLE),
        "--request",
        "2",
        "--access",
        "read",
        "--length",
        "8",
        "--kind",
        "translated",
        "--json",
    )
    data = json.loads(out)
    assert rc == 0 and data["request"]["access"] == "read" and data["request"]["length"] == 8
    assert data["request"]["kind"] == "translated"
    rc, out, _ = cli(
        "explain",
        "--scenario",
        str(EXAMPLE),
        "--request",
        "0",
        "--priv",
        "--pasid",
        "none",
        "--device",
        "0x100",
        "--addr",
        "0x1010",
        "--json",
    )
    assert rc == 2 and json.loads(out) == {"error": {"message": "argument --priv: needs a PASID"}}


def test_run_example_scenario_passes() -> None:
    """`riscv-iommu run` on the shipped example: every expectation holds, exit status 0."""
    rc, out, _ = cli("run", str(EXAMPLE))
    assert rc == 0
    assert out.strip().splitlines()[-1] == "4 passed, 0 failed"
    assert "PASS request[0] (line 45)" in out


def test_run_reports_a_failed_expectation(tmp_path: Path) -> None:
    """A wrong expectation: FAIL with the reason, exit status 1, JSON too."""
    text = EXAMPLE.read_text().replace("expect = { cause = 266 }", "expect = { cause = 13 }")
    bad = tmp_path / "s.toml"
    bad.write_text(text)
    rc, out, _ = cli("run", str(bad))
    assert rc == 1
    assert "FAIL request[3] (line 65): COMPLETER_ABORT, fault 266 PDT entry not valid" in out
    assert "       cause: expected 13 Read page fault, got 266 PDT entry not valid" in out
    assert out.strip().splitlines()[-1] == "3 passed, 1 failed"
    rc, out, _ = cli("run", "--json", str(bad))
    data = json.loads(out)
    assert rc == 1 and data["failed"] == 1
    bad_one = data["results"][3]
    assert bad_one["ok"] is False and bad_one["response"]["fault"]["cause"] == 266
    assert bad_one["problems"] == [
        "cause: expected 13 Read page fault, got 266 PDT entry not valid"
    ]


def test_missing_scenario_file() -> None:
    """A file that does not exist is reported, not a traceback."""
    rc, _, err = cli("run", "/nonexistent/scenario.toml")
    assert rc == 2 and "riscv-iommu: /nonexistent/scenario.toml:0: file:" in err


def test_bench_one_case_json_and_progress() -> None:
    """`riscv-iommu bench` runs the chosen cases (no timing asserted)."""
    rc, out, err = cli("bench", "--seconds", "0.05", "--json", "sv39-single-walk")
    assert rc == 0
    data = json.loads(out)
    assert data["build"] in ("pure", "compiled") and list(data["cases"]) == ["sv39-single-walk"]
    case = data["cases"]["sv39-single-walk"]
    assert case["us"] > 0 and case["reads"] == 13 and case["target_us"] is None
    rc, out, err = cli("bench", "--seconds", "0.05", "ref-sv39-iotlb-miss")
    assert rc == 0 and "1/1" in err
    assert f"build: {data['build']}" in out and "us/translation" in out
    row = next(line for line in out.splitlines() if line.startswith("ref-sv39-iotlb-miss"))
    assert row.split()[2:] == ["3", "3.5"]
    rc, _, err = cli("bench", "no-such-case")
    assert rc == 2 and "unknown benchmark case" in err


@pytest.mark.parametrize("command", [[], ["demo"], ["explain"], ["run"], ["bench"]])
def test_help_explains_each_option(command: List[str]) -> None:
    """--help describes the command and its options."""
    rc, out, _ = cli(*command, "--help")
    assert rc == 0 and "usage: riscv-iommu" in out
    if command == ["explain"]:
        assert "--pasid" in out and "--scenario" in out and "spec" in out
    if command == ["run"]:
        assert "docs/scenarios.md" in out


def test_as_a_process() -> None:
    """The command runs as a process (``python -m riscv_iommu.cli``), exit status included."""
    rc, out, _ = process("run", str(EXAMPLE))
    assert rc == 0 and out.strip().endswith("4 passed, 0 failed")
    rc, _, err = process("run", "/nonexistent.toml")
    assert rc == 2 and "riscv-iommu:" in err
    rc, out, _ = process("demo", "--no-color")
    assert rc == 0 and "memory of VM B" in out
    rc, out, _ = process("explain", "--json", "--pasid", "3")
    assert rc == 0 and json.loads(out)["steps"][-1]["step"] == "20"
    rc, out, _ = process("bench", "--seconds", "0.02", "--json", "sv39-single-walk")
    assert rc == 0 and json.loads(out)["cases"]["sv39-single-walk"]["reads"] == 13


def test_colour_when_asked() -> None:
    """Colour codes appear only when the output is a terminal (forced here)."""
    from riscv_iommu.cli import _Out

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = _Out(Tty())
    assert out.color and out.paint("x", "1") == "\x1b[1mx\x1b[0m"
    assert not _Out(io.StringIO()).color


def test_run_reports_each_kind_of_mismatch(tmp_path: Path) -> None:
    """Expectations on the landing VM/GPA, the SPA and success are each checked."""
    text = EXAMPLE.read_text()
    text = text.replace('expect = { vm = "A", gpa = 0x8000_0010 }', 'expect = { vm = "B" }')
    text = text.replace('expect = { vm = "B", gpa = 0x8000_4010 }', "expect = { spa = 0x1234 }")
    text = text.replace("expect = { cause = 15 }", "expect = {}")
    f = tmp_path / "m.toml"
    f.write_text(text)
    rc, out, _ = cli("run", str(f))
    assert rc == 1
    assert (
        "       lands: expected VM B GPA 0x1010 (not its RAM), "
        "got SPA 0x8000c010 = VM A GPA 0x80000010"
    ) in out
    assert "       spa: expected 0x1234, got SPA 0x80028010 = VM B GPA 0x80004010" in out
    assert (
        "       fault: expected none, got fault 15 Write/AMO page fault (TTYP 3 "
        "UNTRANSLATED_WRITE, iotval 0x1010, iotval2 0x0, device 0x100, PASID 0x2)"
    ) in out


def test_explain_with_a_broken_scenario_file(tmp_path: Path) -> None:
    """explain --scenario with a malformed file: exit status 2 and the error."""
    f = tmp_path / "b.toml"
    f.write_text("[[vm]\n")
    rc, _, err = cli("explain", "--scenario", str(f))
    assert rc == 2 and ":1: syntax:" in err


def test_owner_of_an_address_outside_every_vm() -> None:
    """The demo's "lands in" column says "-" for an SPA no VM owns."""
    from riscv_iommu.cli import _owner, build_demo

    assert _owner(build_demo(), 0x10) == "-"


def test_bench_measure_sizes_its_batches() -> None:
    """bench.measure doubles the batch until a round is long enough (no timing asserted)."""
    from riscv_iommu import bench

    w, reads = bench.prepare("ref-sv39-iotlb-miss")
    calls: List[rv.Request] = []

    class Fake:
        def translate(self, req: rv.Request) -> None:
            calls.append(req)

    w.iommu = Fake()  # type: ignore[assignment]
    us = bench.measure(w, 0.02, rounds=2)
    assert us > 0 and len(calls) > 2 * 512 and reads == 3
    assert all(a is b for a, b in zip(calls[:16], w.requests * 2, strict=True))


def test_bench_all_cases_and_a_wrong_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """--all runs every case; a case whose response is wrong stops the benchmark."""
    from riscv_iommu import bench

    w = bench.CASES["ref-sv39-iotlb-miss"].make()
    w.expected[3] += 4096
    with pytest.raises(AssertionError, match="expected"):
        bench.warm_up(w)
    wrong = dataclasses.replace(bench.CASES["ref-sv39-iotlb-miss"], reads=4)
    monkeypatch.setitem(bench.CASES, "ref-sv39-iotlb-miss", wrong)
    with pytest.raises(AssertionError, match="3.0 reads per translation, expected 4"):
        bench.prepare("ref-sv39-iotlb-miss")
    monkeypatch.undo()
    rc, out, _ = cli("bench", "--seconds", "0.01", "--all", "--json")
    assert rc == 0 and list(json.loads(out)["cases"]) == list(bench.CASES)


def test_a_closed_pipe_is_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`riscv-iommu run --json FILE | head`: the reader goes away; exit status 1, quietly."""
    from riscv_iommu.cli import main

    class Closed(io.StringIO):
        def __init__(self, fd: int) -> None:
            super().__init__()
            self.fd = fd

        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self) -> int:
            return self.fd

    with open(tmp_path / "out", "w") as f:
        closed = Closed(f.fileno())
        assert main(["run", "--json", str(EXAMPLE)], stream=closed) == 1
        monkeypatch.setattr(sys, "stdout", closed)
        assert main(["run", "--json", str(EXAMPLE)]) == 1
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "riscv_iommu.cli",
            "run",
            "--json",
            str(ROOT / "examples" / "ats.toml"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=300)
    assert "Traceback" not in err


def test_run_log_writes_the_event_stream(tmp_path: Path) -> None:
    """``run --log`` writes every event of the scenario's IOMMU; the file reads back as
    events, with one request and one response event per translated request."""
    from riscv_iommu import read_jsonl
    from riscv_iommu.events import RequestEvent, ResponseEvent

    log = tmp_path / "events.jsonl"
    rc, out, err = cli("run", str(EXAMPLE), "--log", str(log))
    assert (rc, err) == (0, "")
    events = list(read_jsonl(str(log)))
    n_requests = sum(1 for line in out.splitlines() if " request[" in line)
    assert n_requests > 0
    responses = [e for e in events if isinstance(e, ResponseEvent)]
    translated = [e for e in events if isinstance(e, RequestEvent)]
    assert len(responses) == len(translated) == n_requests
    assert {e.kind for e in events} >= {"reg_write", "read", "request", "response", "command"}
    assert all(json.loads(line)["v"] == 1 for line in log.read_text().splitlines())


def test_run_log_unwritable_is_a_named_error(tmp_path: Path) -> None:
    bad = tmp_path / "missing-dir" / "events.jsonl"
    rc, out, err = cli("run", str(EXAMPLE), "--log", str(bad))
    assert (rc, out) == (2, "")
    assert err == f"riscv-iommu: argument --log: cannot write {bad}: No such file or directory\n"
    assert not bad.parent.exists()


def test_run_log_after_a_malformed_scenario_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[requests]]\naddr = 1\n")
    log = tmp_path / "events.jsonl"
    rc, _, err = cli("run", str(bad), "--log", str(log))
    assert rc == 2 and "requests" in err
    assert not log.exists()
