"""The model in real cocotb testbenches: Verilog designs simulated by Icarus Verilog.

* examples/cocotb, copied elsewhere as a user would, through the Python
  runner and through the Makefile flow: the PTE checker agrees with the
  model on every check, in the plain cocotb test and in the pyuvm one;
* the same checker built with BROKEN=1: the scoreboard's exact report, and
  both example tests failing;
* tb_dma: the model as the IOMMU of a DMA requester, memory shared with AxiRam;
* tb_backdoor: the model's tables in an RTL memory array (BackdoorMemory).

Skipped (failed under CI) when Icarus Verilog or the [cocotb] extra is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict

import pytest

from tbhelpers import require_simulator

HERE = Path(__file__).resolve().parent
RTL = HERE / "rtl"
EXAMPLE = HERE.parent.parent / "examples" / "cocotb"
EXAMPLE_FILES = (
    "Makefile",
    "README.md",
    "pte_check.v",
    "run.py",
    "test_pte_check.py",
    "test_pte_check_uvm.py",
)
TIMESCALE = ("1ns", "1ps")
SWEEP_REPORT = "pte_check: 9820 checked (response 5004, fault 4816), 0 mismatches, 0 pending\n"


def results(xml: Path) -> Dict[str, bool]:
    """cocotb's xUnit results: test name -> passed."""
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        out[f"{case.get('classname')}.{case.get('name')}"] = not failed
    return out


def load_example_runner() -> Any:
    spec = importlib.util.spec_from_file_location("example_run", EXAMPLE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_example(dest: Path) -> Path:
    dest.mkdir()
    for name in EXAMPLE_FILES:
        shutil.copy(EXAMPLE / name, dest / name)
    return dest


def user_env(**extra: str) -> Dict[str, str]:
    """The environment of a user whose venv is active (cocotb-config on PATH)."""
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def test_example_runner_flow(tmp_path: Path) -> None:
    """A copy of examples/cocotb passes with `python run.py`: the sweep and the pyuvm test."""
    require_simulator()
    ex = copy_example(tmp_path / "example")
    report = tmp_path / "report.txt"
    done = subprocess.run(
        [sys.executable, "run.py"],
        cwd=ex,
        env=user_env(PTE_CHECK_REPORT=str(report)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "2 passed, 0 failed"
    assert results(ex / "sim_build" / "results.xml") == {
        "test_pte_check.golden_sweep": True,
        "test_pte_check_uvm.PteUvmTest": True,
    }
    assert report.read_text() == SWEEP_REPORT


def test_example_makefile_flow(tmp_path: Path) -> None:
    """A copy of examples/cocotb passes with `make` (cocotb's Makefile flow)."""
    require_simulator(need_make=True)
    ex = copy_example(tmp_path / "example")
    done = subprocess.run(
        ["make"], cwd=ex, env=user_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert results(ex / "results.xml") == {
        "test_pte_check.golden_sweep": True,
        "test_pte_check_uvm.PteUvmTest": True,
    }


BROKEN_REPORT = """\
pte_check: 5 checked (response 4, fault 1), 2 mismatches, 0 pending
  response #1 [WRITE 0x40000123 device_id 0x42 process_id 0x1]: status: expected \
COMPLETER_ABORT, got SUCCESS
    | leaf PTE 0x2048d057
  fault #0 [WRITE 0x40000123 device_id 0x42 process_id 0x1]: missing: expected \
FaultRecord(cause=WRITE_PAGE_FAULT(15), ttyp=UNTRANSLATED_WRITE, iotval=0x40000123, \
iotval2=0x0, device_id=0x42, process_id=0x1, pv=True, priv=False), got nothing
    | leaf PTE 0x2048d057"""


def test_broken_checker_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BROKEN=1 (no D-bit check on writes): the scoreboard reports exactly that, by field,
    and both example tests fail."""
    require_simulator()
    monkeypatch.syspath_prepend(str(HERE))  # tb_pte_broken, for the simulator's Python
    monkeypatch.syspath_prepend(str(EXAMPLE))  # the example's test modules
    run = load_example_runner()
    report = tmp_path / "report.txt"
    xml = tmp_path / "results.xml"
    with pytest.raises(SystemExit):  # the runner exits non-zero: two tests fail
        run.run(
            build_dir=tmp_path / "build",
            broken=True,
            test_module="tb_pte_broken,test_pte_check,test_pte_check_uvm",
            extra_env={"TB_REPORT": str(report)},
            results_xml=xml,
        )
    assert results(xml) == {
        "tb_pte_broken.broken_rtl_caught": True,
        "test_pte_check.golden_sweep": False,
        "test_pte_check_uvm.PteUvmTest": False,
    }
    assert report.read_text() == BROKEN_REPORT


def _simulate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, top: str, module: str
) -> Dict[str, bool]:
    from cocotb_tools.runner import get_runner

    monkeypatch.syspath_prepend(str(HERE))
    runner = get_runner("icarus")
    runner.build(
        sources=[RTL / source],
        hdl_toplevel=top,
        build_dir=tmp_path / "build",
        always=True,
        timescale=TIMESCALE,
    )
    xml = runner.test(
        hdl_toplevel=top,
        test_module=module,
        build_dir=tmp_path / "build",
        test_dir=tmp_path / "build",
        extra_env={"TB_REPORT": str(tmp_path / "report.txt")},
        results_xml=str(tmp_path / "results.xml"),
    )
    return results(Path(xml))


def test_dma_requester_with_the_model_as_iommu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model translates every address of an RTL DMA engine whose AXI port goes to an
    AxiRam sharing the model's memory: the copy lands at the translated addresses, and an
    unmapped page stops it with the model's fault record."""
    require_simulator()
    assert _simulate(tmp_path, monkeypatch, "dma_requester.v", "dma_requester", "tb_dma") == {
        "tb_dma.dma_copy_through_the_model": True,
        "tb_dma.dma_fault_through_the_model": True,
    }
    assert (tmp_path / "report.txt").read_text() == (
        "copied 520 words, 1040 translations\nfault at 0x20001000 after 512 words\n"
    )


def test_model_tables_in_rtl_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BackdoorMemory: tables written into an RTL array (deferred writes, X reads as 0),
    walked by the model, data read and a PTE rewritten by the RTL."""
    require_simulator()
    assert _simulate(tmp_path, monkeypatch, "bd_mem.v", "bd_mem", "tb_backdoor") == {
        "tb_backdoor.model_tables_in_rtl_memory": True,
        "tb_backdoor.immediate_writes": True,
    }
    assert (tmp_path / "report.txt").read_text() == "backdoor: 4108 handle writes\n"
