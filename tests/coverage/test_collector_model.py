"""The coverage collector attached to the real model: scenarios with exact bin sets,
and the test-suite plugin (RISCV_IOMMU_COVERAGE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Set

import pytest

import riscv_iommu as rv
from helpers import COMPILED, SV39, TC_EN_ATS, TC_EN_PRI, TC_T2GPA, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu.cli import DEMO_DEVICE, DEMO_IOVA, build_demo
from riscv_iommu.coverage import BINS, Collector, Config, load
from riscv_iommu.coverage.suite import OUTSIDE, SuiteCollector, SuiteCoverage


def got(c: Collector) -> Set[str]:
    names = set(c.hits)
    assert names <= set(BINS), names - set(BINS)
    c.hits.clear()
    return names


def test_attach_records_the_configuration() -> None:
    s = System(gipc=False, svpbmt=False, params=rv.IommuParams(gipc_revision="2025"))
    c = Collector().attach(s.iommu)
    assert c.config == Config(svpbmt=False, gipc=False, gipc_revision="2025")
    assert s.iommu.observers[-1] is c


def test_t2gpa_translated_requests() -> None:
    s = System()
    g = s.gstage(SV39)
    g.map(0x8000_0000, s.page())
    s.ddt.set_dc(7, tc=TC_V | TC_EN_ATS | TC_T2GPA, iohgatp=g.satp(9))
    c = Collector().attach(s.iommu)
    s.t(7, 0x8000_0123, rv.Access.WRITE, kind=rv.RequestKind.TRANSLATED)
    assert got(c) == {
        "ddt.3LVL",
        "ddt.dc.extended",
        "endian.DDTE.LE",
        "endian.DC.LE",
        "endian.G_PTE.LE",
        "g.Sv39x4.leaf0",
        "g.pbmt.PMA",
    }
    # the DC now comes from the DDT cache; the GPA is not mapped
    s.t(7, 0x9000_0457, rv.Access.EXECUTE, kind=rv.RequestKind.TRANSLATED)
    assert got(c) == {"cause.20.ttyp.5", "endian.G_PTE.LE", "g.fault.invalid"}


@pytest.mark.parametrize("rev, s1", [("2024", "gipc.2024.s1_spa"), ("2025", "gipc.2025.s1_gpa")])
def test_gipc_demo_scene(rev: str, s1: str) -> None:
    sc = build_demo(rev)
    c = Collector().attach(sc.iommu)
    rsp = sc.iommu.translate(rv.Request(DEMO_DEVICE, DEMO_IOVA, process_id=1))
    assert rsp.status == rv.Status.SUCCESS
    fmt = "gipc.2024.pc64" if rev == "2024" else "gipc.2025.pc32"
    expect = {
        "ddt.3LVL",
        "ddt.dc.extended",
        "pdt.PD20",
        "s.Sv39.leaf0",
        "s.pbmt.PMA",
        "g.Sv39x4.leaf0",
        "g.pbmt.PMA",
        "priv.user.U1",
        f"gipc.{rev}.decision.1",
        f"gipc.{rev}.decision.5.pc",
        fmt,
        s1,
        *(f"endian.{s}.LE" for s in ("DDTE", "DC", "PDTE", "PC", "S_PTE", "G_PTE")),
    }
    if rev == "2025":  # first-stage PTE addresses are GPAs
        expect.add("g.implicit.S_PTE")
    assert got(c) == expect


def test_driver_commands_and_the_fault_queue() -> None:
    from riscv_iommu.host.driver import Driver, iotinval_vma
    from riscv_iommu.host.tables import PageAllocator

    mem = rv.SparseMemory()
    io = rv.Iommu(mem, capabilities=rv.Capabilities.full())
    drv = Driver(io, mem, PageAllocator(mem))
    drv.bring_up()
    c = Collector().attach(io)
    drv.sync(iotinval_vma(gscid=1, addr=0x1000))  # the command, then IOFENCE.C with AV
    assert got(c) == {"cmd.IOTINVAL.VMA.GV1.AV1.PSCV0", "cmd.IOFENCE.C.AV", "endian.CQ.LE"}
    io.translate(rv.Request(0x999, 0x1000))  # DDT entry not valid: reported
    assert got(c) == {"cause.258.ttyp.2", "endian.DDTE.LE", "endian.FQ.LE"}
    assert [f.cause for f in drv.faults()] == [258]


def test_page_requests_without_a_page_request_queue() -> None:
    s = System()
    s.ddt.set_dc(5, tc=TC_V | TC_EN_ATS | TC_EN_PRI)
    c = Collector().attach(s.iommu)
    s.iommu.page_request(rv.PageRequest(5, 0x1000, prg_index=1, last=True, process_id=None))
    assert got(c) == {"ats.pri.auto.failure", "ddt.3LVL", "ddt.dc.extended"} | {
        "endian.DDTE.LE",
        "endian.DC.LE",
    }
    # EN_PRI=0: Invalid Request, and a fault of a PCIe message (TTYP 9)
    s.ddt.set_dc(6, tc=TC_V | TC_EN_ATS)
    s.iommu.page_request(rv.PageRequest(6, 0x1000, prg_index=2, last=True))
    assert {"ats.pri.auto.invalid", "cause.260.ttyp.9"} <= got(c)
    # an Invalidation Completion from a device without a valid DC
    s.iommu.invalidation_completion(0x777, 1)
    assert "cause.258.ttyp.9" in got(c)


def test_debug_interface_and_hpm() -> None:
    s = System()
    s.ddt.set_dc(3, tc=TC_V)
    c = Collector().attach(s.iommu)
    s.iommu.mmio_write(rv.REG.iohpmevt(1), 1)  # Untranslated requests
    s.iommu.mmio_write(rv.REG.TR_REQ_IOVA, 0x5000)
    s.iommu.mmio_write(rv.REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, DID=3, NW=1))
    assert got(c) == {
        "hpm.event.1",
        "debug.superpage",  # both stages Bare: the bare range size
        "ddt.3LVL",
        "ddt.dc.extended",
        "endian.DDTE.LE",
        "endian.DC.LE",
    }


def test_suite_plugin_needs_the_pure_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the compiled build Iommu is a native class: the plugin says it cannot wrap it."""
    from riscv_iommu.coverage import suite

    monkeypatch.setattr(suite, "compiled", lambda: True)
    with pytest.raises(RuntimeError, match="needs the pure-Python build"):
        SuiteCoverage("unused.json")


@pytest.mark.skipif(COMPILED, reason="wraps Iommu.__init__: a native class in this build")
def test_suite_plugin(tmp_path: Path) -> None:
    out = tmp_path / "suite.json"
    base = len(System().iommu._observers)  # 1 when the suite itself runs with coverage
    plugin = SuiteCoverage(str(out))
    plugin.install()  # twice is once
    try:

        class Item:
            nodeid = "tests/x.py::test_a"

        s = System()  # built outside a test: hits are labelled OUTSIDE
        s.ddt.set_dc(1, tc=TC_V)
        s.t(1, 0x1000)
        plugin.pytest_runtest_logstart(Item.nodeid, None)
        assert len(s.iommu._observers) == base + 1
        assert not any(isinstance(o, SuiteCollector) for o in s.iommu.observers)  # hidden
        mine = Collector()
        s.iommu.attach(mine)
        assert s.iommu.observers[-1] is mine
        s.t(0x999, 0x1000)  # DDT entry not valid
        plugin.pytest_runtest_logfinish(Item.nodeid, None)
        plugin.pytest_runtest_logstart("tests/x.py::test_b", None)  # builds nothing
        plugin.pytest_runtest_logfinish("tests/x.py::test_b", None)
        plugin.pytest_sessionfinish(None)
    finally:
        plugin.pytest_unconfigure(None)
    assert len(System().iommu._observers) == base  # uninstalled
    cov = load(str(out))
    assert cov.runs == [OUTSIDE, "tests/x.py::test_a"]
    assert cov.first["cause.258.ttyp.2"] == "tests/x.py::test_a"
    assert cov.first["ddt.3LVL"] == OUTSIDE
    plugin.uninstall()  # again: nothing to do


@pytest.mark.skipif(COMPILED, reason="the plugin wraps Iommu.__init__: a native class here")
def test_conftest_registers_the_plugin_only_with_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    # tests/conftest.py by path (other conftest modules may own the name "conftest")
    spec = importlib.util.spec_from_file_location(
        "tests_root_conftest", Path(__file__).resolve().parent.parent / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    registered: Any = []

    class Manager:
        def register(self, plugin: Any, name: str) -> None:
            registered.append((plugin, name))

    class Cfg:
        pluginmanager = Manager()

    monkeypatch.delenv("RISCV_IOMMU_COVERAGE", raising=False)
    conftest.pytest_configure(Cfg())
    assert registered == []
    monkeypatch.setenv("RISCV_IOMMU_COVERAGE", str(tmp_path / "c.json"))
    conftest.pytest_configure(Cfg())
    try:
        assert registered[0][1] == "riscv-iommu-coverage"
        assert isinstance(registered[0][0], SuiteCoverage)
    finally:
        registered[0][0].uninstall()
    assert json.dumps(sorted(BINS))  # the model is JSON-able
