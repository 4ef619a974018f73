"""End-to-end flows of §P2IOVA that span several processes.

Each test names the step(s) of "Process to translate an IOVA" it exercises.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

import riscv_iommu as rv
from helpers import (
    PD20,
    SV39,
    TC_EN_ATS,
    TC_PDTV,
    TC_T2GPA,
    TC_V,
    System,
    fault,
    ta,
)
from riscv_iommu import formats as F
from riscv_iommu.ddt import dc_misconfigured

ROOT = Path(__file__).resolve().parent.parent


def _t2gpa_system() -> tuple[System, int, rv.host.tables.PageTable]:
    s = System()
    g = s.gstage(SV39)
    spa = s.page()
    g.map(0x8000_0000, spa)
    s.ddt.set_dc(7, tc=TC_V | TC_EN_ATS | TC_T2GPA, iohgatp=g.satp(9))
    return s, spa, g


def test_step9_translated_request_with_t2gpa_is_g_stage_translated() -> None:
    """Step 9: with DC.tc.T2GPA=1 a Translated request carries a GPA, translated by DC.iohgatp."""
    s, spa, _ = _t2gpa_system()
    rsp = s.t(7, 0x8000_0123, rv.Access.WRITE, kind=rv.RequestKind.TRANSLATED)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.addr == spa | 0x123
    assert (rsp.r, rsp.w, rsp.x) == (True, True, True)


def test_step9_translated_request_gpa_unmapped_is_guest_page_fault() -> None:
    """Step 9 then step 19: a G-stage fault is a guest-page fault with iotval2 = GPA."""
    s, _, _ = _t2gpa_system()
    rsp = s.t(7, 0x9000_0457, rv.Access.EXECUTE, kind=rv.RequestKind.TRANSLATED)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert rsp.fault == rv.FaultRecord(
        cause=rv.Cause.INSTRUCTION_GUEST_PAGE_FAULT,
        ttyp=rv.Ttyp.TRANSLATED_EXECUTE,
        iotval=0x9000_0457,
        iotval2=0x9000_0454,
        device_id=7,
    )
    assert rsp.reported


def test_step9_t2gpa_msi_address_goes_through_msi_translation() -> None:
    """Step 9 leads to step 17 with the first stage Bare, then step 18 applies to the GPA."""
    s = System()
    g = s.gstage(SV39)
    msipt = s.msipt(4)
    msipt.set_flat(2, 0x2400_3000)
    s.ddt.set_dc(
        7,
        tc=TC_V | TC_EN_ATS | TC_T2GPA,
        iohgatp=g.satp(9),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0x3,
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    rsp = s.t(7, 0x2800_2004, rv.Access.WRITE, kind=rv.RequestKind.TRANSLATED, length=4)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.is_msi and not rsp.is_mrif
    assert rsp.addr == 0x2400_3004


def test_step10_dc_fsc_and_pscid_two_stage() -> None:
    """Step 10: PDTV=0 takes iosatp from DC.fsc, then steps 17 and 19 translate both stages."""
    s = System()
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39)
    spa = s.page()
    guest.back(0x7000_0000, spa)
    s1.map(0x1000, 0x7000_0000)
    s.ddt.set_dc(3, tc=TC_V, iohgatp=g.satp(1), ta=ta(pscid=0x55), fsc=s1.satp())
    rsp = s.t(3, 0x1ABC)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, spa | 0xABC)


def test_step20_bare_iommu_uses_iommu_qosid_and_passes_through() -> None:
    """Step 2: Bare mode passes untranslated requests through unchanged."""
    s = System()
    s.iommu.mmio_write(rv.REG.DDTP, rv.IommuMode.BARE)
    rsp = s.t(0xFFFFFF, 0xDEAD_BEEF_0000, rv.Access.EXECUTE)
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.addr == 0xDEAD_BEEF_0000
    assert (rsp.rcid, rsp.mcid) == (0, 0)


def test_qos_ids_of_dc_ta_are_given_to_the_io_bridge() -> None:
    """DC.ta.RCID/MCID (QoS ID extension) accompany a successful translation."""
    s = System()
    s.ddt.set_dc(5, tc=TC_V, ta=ta(rcid=0x123, mcid=0x456))
    rsp = s.t(5, 0x4000)
    assert rsp.status == rv.Status.SUCCESS
    assert (rsp.rcid, rsp.mcid) == (0x123, 0x456)


def test_pdtv_two_stage_with_pd20_pdt_in_guest_memory() -> None:
    """Steps 11-19 with a PD20 PDT and first-stage tables in guest-physical memory."""
    s = System()
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39)
    pdt = s.pdt(guest, PD20)
    spa = s.page()
    guest.back(0x4000_0000, spa)
    s1.map(0x1234_5000, 0x4000_0000)
    pdt.set_pc(0xFFFFF, fsc=s1.satp(), pscid=7)
    s.ddt.set_dc(0xABCDE, tc=TC_V | TC_PDTV, iohgatp=g.satp(5), fsc=pdt.pdtp())
    rsp = s.t(0xABCDE, 0x1234_5678, rv.Access.WRITE, process_id=0xFFFFF)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, spa | 0x678)
    # a different, unbound process_id: the PC is not valid (266)
    rsp = s.t(0xABCDE, 0x1234_5678, rv.Access.WRITE, process_id=0xFFFFE)
    assert fault(rsp) == rv.FaultRecord(
        cause=rv.Cause.PDT_ENTRY_NOT_VALID,
        ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
        iotval=0x1234_5678,
        device_id=0xABCDE,
        process_id=0xFFFFE,
        pv=True,
    )


def test_gipc_tc_bit_is_reserved_without_the_capability() -> None:
    """GIPC decision #2: without capabilities.GIPC, DC.tc bit 12 is reserved (259)."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | (1 << 12))
    assert fault(s.t(1, 0)).cause == rv.Cause.DDT_ENTRY_MISCONFIGURED


def test_gipc_tc_bit_rules_with_the_capability() -> None:
    """GIPC decisions #3 and #4: DC.tc.GIPC needs PDTV=1 and forbids T2GPA (259)."""
    s = System(caps=rv.Capabilities.full(gipc=True))
    io_ = s.iommu
    gipc = 1 << 12
    g = s.gstage(SV39)
    base = (TC_V | gipc, g.satp(1), 0, 0, 0, 0, 0, 0)
    assert dc_misconfigured(io_, base) == 24  # GIPC without PDTV
    pdtv = (TC_V | gipc | TC_PDTV, g.satp(1), 0, F.PDTP.encode(MODE=PD20), 0, 0, 0, 0)
    assert dc_misconfigured(io_, pdtv) == 0
    t2 = (pdtv[0] | TC_EN_ATS | TC_T2GPA,) + pdtv[1:]
    assert dc_misconfigured(io_, t2) == 25  # GIPC with T2GPA
    s.ddt.set_dc(1, tc=t2[0], iohgatp=t2[1], fsc=t2[3])
    assert fault(s.t(1, 0)).cause == rv.Cause.DDT_ENTRY_MISCONFIGURED


def test_demo_walkthrough_prints_every_case() -> None:
    """The demo runs end to end and shows the expected outcome of each request."""
    from riscv_iommu import demo

    out = io.StringIO()
    assert demo.main([], out=out) == 0
    text = out.getvalue()
    assert "DMA read, IOVA 0x40000010" in text and "SUCCESS  spa=" in text
    assert "cause=23 (Write/AMO guest-page fault)" in text
    assert "cause=13 (Read page fault)" in text
    assert "cause=21 (Read guest-page fault) iotval=0x40002000 iotval2=0x90000000" in text
    assert "cause=260 (Transaction type disallowed)" in text
    assert "spa=0x000024000000 perms=rw (MSI -> guest interrupt file)" in text
    assert "cause=258 (DDT entry not valid)" in text


def test_readme_python_example_runs() -> None:
    """The README's Python example works as written."""
    text = (ROOT / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "cause=READ_PAGE_FAULT(13)" in proc.stdout


def test_benchmark_cases_run() -> None:
    """Every benchmark case builds, translates each request of its rotation to the
    expected SPA and makes exactly its memory reads (no timing is asserted)."""
    from riscv_iommu import bench

    expected = {
        "ref-sv39x4-iotlb-hit": 0,
        "ref-sv39x4-iotlb-miss": 15,
        "ref-sv39x4-cold": 38,
        "ref-sv57x4-iotlb-miss": 35,
        "ref-sv39-iotlb-miss": 3,
        "ref-sv39-ddt-walk": 13,
    }
    assert bench.REFERENCE == list(expected)
    for name in bench.CASES:
        w, reads = bench.prepare(name)
        assert reads == bench.CASES[name].reads, name
        if name in expected:
            assert reads == expected[name]
    # the reference geometry: 2-entry LRU DDT/PDT/IOTLB caches, no MSI or G-stage walk cache
    w, _ = bench.prepare("ref-sv39x4-cold")
    p = w.iommu.params
    assert (p.ddt_cache_size, p.pdt_cache_size, p.iotlb_size) == (2, 2, 2)
    assert (p.msi_cache_size, p.gwalk_cache_size, p.cache_policy) == (0, 0, "lru")
    stats = w.iommu.stats.caches
    assert stats["DDT"].hits == stats["PDT"].hits == stats["IOTLB"].hits == 0
    w, _ = bench.prepare("ref-sv39x4-iotlb-hit")
    before = w.iommu.stats.caches["IOTLB"].hits
    w.iommu.translate(w.requests[0])
    assert w.iommu.stats.caches["IOTLB"].hits == before + 1


@pytest.mark.parametrize("mode", [rv.IommuMode.LVL1, rv.IommuMode.LVL2, rv.IommuMode.LVL3])
def test_same_device_found_through_each_ddt_depth(mode: int) -> None:
    """GET_DC steps 1-11 at every depth: the DC of device 0x3F is found and used."""
    s = System(levels=mode - 1)
    s.ddt.set_dc(0x3F, tc=TC_V)
    rsp = s.t(0x3F, 0x1000)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, 0x1000)
