# ruff: noqa: E501  (scenario texts are written one TOML line per string)
"""Scenario files: every example passes, and each feature of the language does what
docs/scenarios.md says."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Tuple

import pytest

from riscv_iommu import Request, Response
from riscv_iommu.scenario import (
    ACTIONS,
    FAULT_FIELDS,
    REQUEST_FIELDS,
    RESPONSE_FIELDS,
    Runner,
    Variant,
    parse_scenario,
    run_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
DOC = (ROOT / "docs" / "scenarios.md").read_text()


def cli(*args: str) -> Tuple[int, str, str]:
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args), stream=out)
    return rc, out.getvalue(), err.getvalue()


def run_text(tmp_path: Path, text: str) -> Tuple[int, str]:
    f = tmp_path / "s.toml"
    f.write_text(text)
    rc, out, _ = cli("run", str(f))
    return rc, out


def test_there_are_at_least_ten_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes(path: Path) -> None:
    """Every example runs and every expectation in it holds."""
    report = run_scenario(str(path))
    assert report.stopped is None
    assert report.failed == 0, [r.problems for r in report.results if not r.ok]
    assert report.passed >= 4
    rc, out, _ = cli("run", str(path))
    assert rc == 0 and out.endswith(f"{report.passed} passed, 0 failed\n")


def test_every_request_and_response_field_has_a_key() -> None:
    """A new Request or Response field needs its one line in REQUEST_FIELDS / RESPONSE_FIELDS."""
    assert {f.arg for f in REQUEST_FIELDS.values()} == {f.name for f in fields(Request)}
    assert {attr for _, attr in RESPONSE_FIELDS.values()} == {f.name for f in fields(Response)} - {
        "fault"
    }


def test_docs_name_every_table_and_key() -> None:
    """docs/scenarios.md documents each action and each of its keys."""
    for kind, spec in ACTIONS.items():
        assert f"[[{kind}]]" in DOC, kind
        keys = dict(spec.table.keys)
        if isinstance(spec.table, Variant):
            for variant in spec.table.variants.values():
                keys.update(variant)
        for key in keys:
            assert re.search(rf"(`{key}`|^{key} =|`{key} )", DOC, re.M), (kind, key)
    for key in [*RESPONSE_FIELDS, *FAULT_FIELDS]:
        assert f"`{key}`" in DOC, key


def test_fail_lines_show_expected_actual_and_where_it_landed(tmp_path: Path) -> None:
    """A request that lands in the wrong VM: the FAIL line says where it landed."""
    text = (ROOT / "examples" / "gipc.toml").read_text()
    text = text.replace('expect = { vm = "B", gpa = 0x8000_4010 }', 'expect = { vm = "A" }')
    rc, out = run_text(tmp_path, text)
    assert rc == 1
    assert "FAIL request[1] (line 52): SUCCESS SPA 0x80028010 = VM B GPA 0x80004010\n" in out
    assert (
        "       lands: expected VM A GPA 0x1010 (not its RAM), "
        "got SPA 0x80028010 = VM B GPA 0x80004010\n"
    ) in out


def test_json_report_carries_objects(tmp_path: Path) -> None:
    """run --json: requests, responses and full fault records as objects."""
    rc, out, _ = cli("run", "--json", str(ROOT / "examples" / "classic-two-stage.toml"))
    data = json.loads(out)
    assert rc == 0 and data["failed"] == 0 and data["stopped"] is None
    first = data["results"][0]
    assert first["action"] == "request[0]" and first["ok"] is True
    assert first["lands"] == {"vm": "guest", "gpa": 0x8000_0010}
    assert first["request"]["process_id"] == 1 and first["request"]["access"] == "write"
    assert first["response"]["status"] == "SUCCESS" and first["response"]["fault"] is None
    fault = data["results"][3]["response"]["fault"]
    assert fault["cause"] == 15 and fault["cause_name"] == "WRITE_PAGE_FAULT"
    assert fault["ttyp_name"] == "UNTRANSLATED_WRITE" and fault["iotval"] == 0x1010
    fq = data["results"][-1]["fq"]
    assert [r["cause"] for r in fq] == [15, 21, 266]


def test_actions_run_in_file_order(tmp_path: Path) -> None:
    """Tables interleave: a later [[map]] is not in effect for an earlier [[request]]."""
    text = (
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
        '[[device]]\nid = 1\nvm = "A"\npasids = false\n'
        "[[request]]\naddr = 0x1000\nexpect = { cause = 13 }\n"
        "[[map]]\ndevice = 1\niova = 0x1000\ngpa = 0x8000_0000\nsize = 0x1000\n"
        '[[request]]\naddr = 0x1000\nexpect = { vm = "A", gpa = 0x8000_0000 }\n'
    )
    sc = parse_scenario(text)
    assert [a.name for a in sc.actions] == [
        "vm[0]",
        "device[0]",
        "request[0]",
        "map[0]",
        "request[1]",
    ]
    assert [a.line for a in sc.actions] == [1, 4, 8, 11, 16]
    rc, out = run_text(tmp_path, text)
    assert rc == 0 and out.endswith("2 passed, 0 failed\n")


def test_default_request_must_not_fault(tmp_path: Path) -> None:
    """A request without expect must succeed; a mismatch of every kind is reported."""
    text = (
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
        '[[device]]\nid = 1\nvm = "A"\npasids = false\n'
        "[[request]]\naddr = 0x1000\n"
        "[[request]]\naddr = 0x1000\nexpect = { cause = 13, fault = { ttyp = 3 }, r = true }\n"
        "[[request]]\naddr = 0x1000\nexpect = { fault = { cause = 13 } }\n"
        "[[map]]\ndevice = 1\niova = 0x1000\ngpa = 0x8000_0000\nsize = 0x1000\n"
        "[[request]]\naddr = 0x1000\nexpect = { fault = { cause = 13 } }\n"
        "[[request]]\naddr = 0x1000\nexpect = { cause = 13 }\n"
        "[[request]]\naddr = 0x1000\nexpect = { spa = 0 }\n"
        '[[request]]\naddr = 0x9000\nexpect = { vm = "A", gpa = 0x8000_0000 }\n'
        "[[request]]\naddr = 0x1000\nexpect = { fault = false }\n"
    )
    rc, out = run_text(tmp_path, text)
    assert rc == 1
    lines = out.splitlines()
    assert lines[0].startswith("FAIL request[0] (line 8): COMPLETER_ABORT, fault 13")
    assert lines[1].startswith("       fault: expected none, got fault 13 Read page fault")
    assert "       fault.ttyp: expected 3 UNTRANSLATED_WRITE, got 2 UNTRANSLATED_READ" in lines
    assert "       r: expected True, got False" in lines
    assert lines.count("       fault: expected a fault record, got no fault") == 1
    assert "       cause: expected 13 Read page fault, got no fault" in lines
    assert "       spa: expected 0x0, got SPA 0x8000c000 = VM A GPA 0x80000000" in lines
    assert "       lands: expected VM A GPA 0x80000000 (SPA 0x8000c000), got a fault" in lines
    assert out.endswith("2 passed, 6 failed\n")


def test_page_request_and_queue_mismatches(tmp_path: Path) -> None:
    """PRI expectations and [[check]] mismatches each name the field."""
    text = (
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
        '[[device]]\nid = 1\nvm = "A"\nats = true\npri = true\n'
        '[[device]]\nid = 2\nvm = "A"\n'
        "[[page_request]]\naddr = 0x1000\nlast = true\nexpect = { queued = false }\n"
        "[[page_request]]\naddr = 0x1000\nlast = true\nexpect = { response = { response_code = 0 } }\n"
        "[[page_request]]\ndevice = 2\naddr = 0\nlast = true\nexpect = { response = false }\n"
        "[[page_request]]\ndevice = 2\naddr = 0\nlast = true\nexpect = { response = { response_code = 15 } }\n"
        '[[check]]\npq = [{ addr = 0x2000 }]\nmessages = [{ type = "invalidation" }, { type = "prg_response" }]\n'
        "[[check]]\nfq = [{ cause = 13 }]\n"
        '[[check]]\nmemory = [{ spa = 0x10, text = "hi" }]\n'
    )
    rc, out = run_text(tmp_path, text)
    assert rc == 1
    lines = out.splitlines()
    assert "       queued: expected false, got queued" in lines
    assert "       response: expected a response, got none" in lines
    assert any(
        s.startswith("       response: expected none, got PageRequestGroupResponse(") for s in lines
    )
    assert "       response.response_code: expected 15, got 1" in lines
    assert "       pq[0].addr: expected 0x2000, got 0x1000" in lines
    assert (
        "       pq: expected 1 record(s), got 2: "
        + "; ".join(
            [
                "PageRequest(device_id=0x1, addr=0x1000, prg_index=0x0, last=True, read=True, "
                "write=False, process_id=None, priv=False, exec_req=False)"
            ]
            * 2
        )
        in lines
    )
    assert any(
        s.startswith(
            "       messages[0].type: expected invalidation, got PageRequestGroupResponse("
        )
        for s in lines
    )
    assert "       messages: expected 2, got 2: " not in out
    assert any(s.startswith("       fq: expected 1 record(s), got 2: fault 260") for s in lines)
    assert "       memory[0]: expected 6869 at 0x10, got 0000" in lines


def test_commands_recipes_and_injections(tmp_path: Path) -> None:
    """The rest of the timeline: detach, write, recipes, commands, MMIO, injections, ticks."""
    text = (
        "[params]\nats_inval_timeout = 10\n"
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
        '[[device]]\nid = 1\nvm = "A"\nats = true\nmsi = { addr_pattern = 0x2800_0, ptes = [{ index = 0, mode = "flat", spa = 0x2400_0000 }] }\n'
        "[[bind]]\ndevice = 1\npasid = 1\n"
        "[[map]]\ndevice = 1\npasid = 1\niova = 0x1000\ngpa = 0x8000_0000\nsize = 0x1000\n"
        '[[recipe]]\nname = "msi_pte_changed"\nvm = "A"\naddr = 0x2800_0000\n'
        '[[recipe]]\nname = "ats_invalidate"\ndevice = 1\npasid = 1\naddr = 0x1000\nsize = 0x1000\n'
        '[[recipe]]\nname = "first_stage_changed"\ndevice = 1\npasid = 1\n'
        '[[command]]\nop = "IOTINVAL.VMA"\npscid = 1\naddr = 0x4000\nsize = 0x4000\n'
        '[[command]]\nop = "IOTINVAL.GVMA"\ngscid = 1\naddr = 0x8000_0000\n'
        '[[command]]\nop = "IODIR.INVAL_DDT"\nfence = false\n'
        '[[command]]\nop = "IOFENCE.C"\npr = true\npw = true\nexpect = "illegal"\n'
        '[[mmio]]\nregister = "iommu_qosid"\nvalue = 0x0005_0003\nexpect = 0x0005_0003\n'
        "[[mmio]]\nregister = 0x270\nset = { RCID = 1 }\n"
        '[[inject]]\nfault = "corruption"\nstructure = "pc"\ndevice = 1\npasid = 1\n'
        '[[inject]]\nfault = "access"\nstructure = "g_pte"\nvm = "A"\ngpa = 0x8000_0000\n'
        '[[inject]]\nfault = "access"\nstructure = "msi_pte"\ndevice = 1\nindex = 0\n'
        '[[inject]]\nfault = "access"\nstructure = "pq"\n'
        '[[inject]]\nfault = "access"\nvm = "A"\ngpa = 0x8000_1000\nsize = 0x10\n'
        '[[inject]]\nfault = "access"\nspa = 0x10\n'
        "[[tick]]\ncycles = 5\n"
        "[[request]]\npasid = 1\naddr = 0x1000\nexpect = { cause = 269 }\n"
        '[[request]]\naddr = 0x2800_0000\naccess = "write"\nexpect = { cause = 261 }\n'
        '[[inject]]\nfault = "clear"\n'
        "[[detach]]\ndevice = 1\n"
        "[[request]]\naddr = 0\nexpect = { cause = 258 }\n"
        "[[write]]\nspa = 0x100\nu32 = 0x1234\n"
        '[[check]]\nmemory = [{ spa = 0x100, u32 = 0x1234 }]\nmessages = [{ type = "invalidation", pasid = 1, addr = 0x1000 }, { type = "invalidation", global_ = true, s = true }]\n'
    )
    rc, out = run_text(tmp_path, text)
    lines = out.splitlines()
    assert "       outcome: expected illegal, got completed" in lines
    assert rc == 1 and out.endswith("7 passed, 1 failed\n"), out


def test_driver_stop_ends_the_run(tmp_path: Path) -> None:
    """An illegal command submitted without a fence stops the command queue: the next
    hypervisor action cannot go on and the run stops with a FAIL.  An injected fault on the
    queue's memory hits the driver's own writes too: the same."""
    text = (
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
        '[[device]]\nid = 1\nvm = "A"\npasids = false\n'
        "[[map]]\ndevice = 1\niova = 0x1000\ngpa = 0x8000_0000\nsize = 0x1000\n"
        '[[command]]\nop = "raw"\nd0 = 0x381\nfence = false\n'
        '[[mmio]]\nregister = "cqcsr"\nfields = { cmd_ill = 1 }\n'
        "[[unmap]]\ndevice = 1\niova = 0x1000\nsize = 0x1000\n"
        "[[request]]\naddr = 0\n"
    )
    rc, out = run_text(tmp_path, text)
    lines = out.splitlines()
    assert rc == 1
    assert lines[0] == "PASS mmio[0] (line 17): register 0x48 = 0x10401"
    assert lines[1].startswith(
        "FAIL unmap[0] (line 20): the driver stopped: submit: command queue stopped (cmd_ill)"
    )
    assert lines[-2].startswith("stopped at unmap[0] (line 20): the driver stopped: ")
    assert lines[-1] == "1 passed, 1 failed"
    text = text.replace('op = "raw"\nd0 = 0x381\nfence = false', 'op = "IOFENCE.C"')
    text = text.replace("fields = { cmd_ill = 1 }", "fields = { cmd_ill = 0 }")
    text = text.replace("[[unmap]]", '[[inject]]\nfault = "access"\nstructure = "cq"\n[[unmap]]')
    rc, out = run_text(tmp_path, text)
    assert "FAIL unmap[0] (line 21): the host's own memory access failed: access-fault at" in out


def test_runner_hook_and_until_request() -> None:
    """Runner(on_build=...) sees the IOMMU first; run(until_request=N) stops before it."""
    seen = []
    sc = parse_scenario((ROOT / "examples" / "gipc.toml").read_text(), "gipc.toml")
    runner = Runner(sc, on_build=seen.append)
    assert seen == [runner.iommu]
    report = runner.run(until_request=2)
    assert [r.action for r in report.results] == ["request[0]", "request[1]"]
    assert runner.request_of(sc.requests[2]).access == 1
    assert runner.run().passed == 4


def test_scan_lines_of_keys_subtables_and_strings() -> None:
    """Line numbers: sub-tables, dotted keys, multi-line strings and arrays."""
    sc = parse_scenario(
        'title = """a\n[[request]]\n"""\n'
        '[[vm]]\nname = "A"\nram = [\n  { gpa = 0x8000_0000, size = 0x1000 },\n]\n'
        '[[device]]\nid = 1\nvm = "A"\n'
        "[[request]]\naddr = 0\n[request.expect]\ncause = 13\n"
        "[[request]]\naddr = 0\nexpect.fault.cause = 13\n"
    )
    req0, req1 = sc.requests
    assert (req0.line, req0.line_of("expect", "cause"), req0.line_of("expect")) == (12, 15, 14)
    assert (req1.line, req1.line_of("expect", "fault", "cause")) == (16, 18)
    assert sc.actions[0].line_of("ram", "[0]", "gpa") == 6
    assert re.match(r"vm\[0\]", sc.actions[0].name)


def test_more_mismatches_are_named(tmp_path: Path) -> None:
    """Status, register values and fields, message counts: each mismatch names its field;
    [[dc]] without invalidate runs the DC recipe."""
    text = (
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
        '[[device]]\nid = 1\nvm = "A"\npasids = false\n'
        '[[request]]\naddr = 0\nexpect = { status = "unsupported_request", cause = 13 }\n'
        '[[mmio]]\nregister = "fctl"\nexpect = 1\nfields = { WSI = 1 }\n'
        '[[check]]\nmessages = [{ type = "invalidation" }]\n'
        "[[dc]]\ndevice = 1\ntc = { DTF = 1 }\n"
        "[[request]]\naddr = 0\nexpect = { cause = 13, reported = false }\n"
    )
    rc, out = run_text(tmp_path, text)
    lines = out.splitlines()
    assert rc == 1
    assert "       status: expected unsupported_request, got completer_abort" in lines
    assert "       value: expected 0x1, got 0x0" in lines
    assert "       WSI: expected 0x1, got 0x0" in lines
    assert "       messages: expected 1, got 0: none" in lines
    assert lines[-2].startswith("PASS request[1]") and lines[-1] == "1 passed, 3 failed"


def test_json_views_of_unknown_codes() -> None:
    """fault_json and the FAIL text take any FaultRecord, even codes outside the tables."""
    from riscv_iommu import FaultRecord
    from riscv_iommu.scenario import _fault_text, fault_json

    rec = FaultRecord(cause=999, ttyp=4, iotval=1)
    assert fault_json(rec) == {
        "cause": 999,
        "cause_name": None,
        "description": None,
        "ttyp": 4,
        "ttyp_name": None,
        "iotval": 1,
        "iotval2": 0,
        "device_id": 0,
        "process_id": 0,
        "pv": False,
        "priv": False,
    }
    assert fault_json(None) is None
    assert _fault_text(rec) == ("fault 999 ? (TTYP 4 4, iotval 0x1, iotval2 0x0, device 0x0)")
    assert _fault_text(None) == "no fault"


HOST_OWNED = """\
[host]
ram = [{ spa = 0x1000_0000, size = 0x4000 }]
[[device]]
id = 0x20
host = true
[[bind]]
device = 0x20
pasid = 1
[[map]]
device = 0x20
pasid = 1
iova = 0x40_0000
spa = 0x1000_1000
size = 0x1000
perms = "r"
[[request]]
device = 0x20
pasid = 1
addr = 0x40_0010
expect = { spa = 0x1000_1010, r = true, w = false }
[[unmap]]
device = 0x20
pasid = 1
iova = 0x40_0000
size = 0x1000
invalidate = false
[[request]]
device = 0x20
pasid = 1
addr = 0x40_0010
expect = { spa = 0x1000_1010 }
[[recipe]]
name = "first_stage_changed"
device = 0x20
pasid = 1
addr = 0x40_0000
[[request]]
device = 0x20
pasid = 1
addr = 0x40_0010
expect = { cause = 13, fault = { iotval = 0x40_0010 } }
[[unbind]]
device = 0x20
pasid = 1
invalidate = false
[[recipe]]
name = "pc_changed"
device = 0x20
pasid = 1
[[device]]
id = 0x21
host = true
pasids = false
[[map]]
device = 0x21
iova = 0x8000
spa = 0x1000_2000
size = 0x1000
[[request]]
device = 0x21
addr = 0x8008
expect = { spa = 0x1000_2008 }
"""


def test_host_owned_device_scenario_recipes_use_gv0() -> None:
    """A host-owned device in a scenario: [[map]] spa, a stale IOTLB entry until
    first_stage_changed, whose IOTINVAL.VMA (like pc_changed's) has GV = 0: the host has
    no GSCID.  Responses land in "host RAM"."""
    from riscv_iommu import formats as F
    from riscv_iommu.host.driver import iodir_inval_pdt, iotinval_vma

    runner = Runner(parse_scenario(HOST_OWNED, "h.toml"))
    report = runner.run()
    assert (report.passed, report.failed, report.stopped) == (4, 0, None)
    assert [r.summary for r in report.results] == [
        "SUCCESS SPA 0x10001010 = host RAM",
        "SUCCESS SPA 0x10001010 = host RAM",
        "COMPLETER_ABORT, fault 13 Read page fault (TTYP 2 UNTRANSLATED_READ, iotval 0x400010, "
        "iotval2 0x0, device 0x20, PASID 0x1), reported",
        "SUCCESS SPA 0x10002008 = host RAM",
    ]
    pscid = runner.spaces[(0x20, 1)][0]
    cmds = [c for c in runner.driver.submitted if not repr(c).startswith("Command(IOFENCE")]
    assert cmds[-3:] == [
        iotinval_vma(pscid=pscid, addr=0x40_0000),  # GV = 0, PSCV = 1
        iodir_inval_pdt(0x20, 1),
        iotinval_vma(pscid=pscid),
    ]
    assert F.CMD_IOTINVAL0.GV.get(cmds[-1].d0) == 0
    assert runner.spaces[(0x21, None)][1] is None
