"""The CXL.io bit of ATS translation completions (issue 16, item 2).

Spec: iommu_data_structures.adoc, "PCIe ATS translation request handling":
"If requesting device is not a CXL device then CXL.io is set to 0.  If requesting
device is a CXL type 1 or type 2 device: if the address is determined to be a MSI
then the CXL.io bit is set to 1; else if T2GPA is 1 in the device context then the
CXL.io bit is set to 1; else if the memory type, as determined by the Svpbmt
extension, is NC or IO then the CXL.io bit is set to 1.  If the memory type is PMA
then the determination of the setting of this bit is UNSPECIFIED.  If the Svpbmt
extension is not supported then the setting of this bit is UNSPECIFIED.  In all
other cases the setting of this bit is UNSPECIFIED."  iommu_intro.adoc: "The Root
Port may provide an indication if the endpoint originating the request is a CXL
type 1 or type 2 device" (``Request.cxl``).  The UNSPECIFIED cases take
``IommuParams.cxl_io_unspecified`` (default False).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import pytest

import riscv_iommu as rv
from helpers import SV39, TC_EN_ATS, TC_T2GPA, TC_V, System
from riscv_iommu.cli import _Out, build_demo, explain, main
from riscv_iommu.trace import Tracer

DID = 0x21
VA = 0x7000_0000
GPA = 0x6000_0000
SPA = 0x30_0000_0000
MSI_GPA = 0x2800_0000
IMSIC = 0x2400_0000
ATS = rv.RequestKind.ATS_TRANSLATION
PMA, NC, IO = 0, 1, 2


def scene(
    pbmt: int = PMA,
    tc: int = 0,
    unspecified: bool = False,
    caps: Optional[rv.Capabilities] = None,
    g_flags: Optional[int] = None,
) -> System:
    """G-stage VA(=GPA) -> SPA with ``pbmt``; an interrupt file at MSI_GPA (Flat)."""
    s = System(caps=caps, params=rv.IommuParams(cxl_io_unspecified=unspecified))
    g = s.gstage(SV39)
    kw: dict[str, Any] = {"pbmt": pbmt}
    if g_flags is not None:
        kw["flags"] = g_flags
    g.map(GPA, SPA, **kw)
    pt = s.msipt(1)
    pt.set_flat(0, IMSIC)
    s.ddt.set_dc(
        DID,
        tc=TC_V | TC_EN_ATS | tc,
        iohgatp=g.satp(1),
        msiptp=pt.msiptp(),
        msi_addr_mask=0,
        msi_addr_pattern=MSI_GPA >> 12,
    )
    return s


def ats(s: System, addr: int, cxl: bool, **kw: Any) -> rv.Response:
    return s.iommu.translate(rv.Request(DID, addr, kind=ATS, cxl=cxl, **kw))


@pytest.mark.parametrize("addr", [GPA, MSI_GPA])
@pytest.mark.parametrize("pbmt", [PMA, NC, IO])
@pytest.mark.parametrize("unspecified", [False, True])
def test_not_a_cxl_device_always_0(addr: int, pbmt: int, unspecified: bool) -> None:
    s = scene(pbmt, unspecified=unspecified)
    rsp = ats(s, addr, cxl=False)
    assert rsp.status == rv.Status.SUCCESS and rsp.r and rsp.cxl_io is False


def test_cxl_msi_address_is_1() -> None:
    rsp = ats(scene(), MSI_GPA, cxl=True)
    assert (rsp.is_msi, rsp.addr, rsp.cxl_io) == (True, IMSIC, True)


@pytest.mark.parametrize("pbmt", [PMA, NC, IO])
def test_cxl_t2gpa_is_1(pbmt: int) -> None:
    rsp = ats(scene(pbmt, tc=TC_T2GPA), GPA, cxl=True)
    assert (rsp.addr, rsp.cxl_io) == (GPA, True)


@pytest.mark.parametrize("pbmt", [NC, IO])
def test_cxl_memory_type_nc_or_io_is_1(pbmt: int) -> None:
    rsp = ats(scene(pbmt), GPA, cxl=True)
    assert (rsp.addr, rsp.pbmt, rsp.cxl_io) == (SPA, pbmt, True)


@pytest.mark.parametrize("unspecified", [False, True])
def test_cxl_memory_type_pma_is_the_parameter(unspecified: bool) -> None:
    rsp = ats(scene(PMA, unspecified=unspecified), GPA, cxl=True)
    assert (rsp.addr, rsp.cxl_io) == (SPA, unspecified)


@pytest.mark.parametrize("unspecified", [False, True])
def test_cxl_without_svpbmt_is_the_parameter(unspecified: bool) -> None:
    rsp = ats(scene(unspecified=unspecified, caps=rv.Capabilities.full(svpbmt=False)), GPA, True)
    assert (rsp.addr, rsp.pbmt, rsp.cxl_io) == (SPA, 0, unspecified)


@pytest.mark.parametrize("unspecified", [False, True])
def test_cxl_success_with_no_access_is_the_parameter(unspecified: bool) -> None:
    """A completion with R = W = 0 (an unmapped page): "all other cases"."""
    rsp = ats(scene(unspecified=unspecified), GPA + 0x10_0000, cxl=True)
    assert (rsp.status, rsp.r, rsp.w) == (rv.Status.SUCCESS, False, False)
    assert rsp.cxl_io is unspecified


def test_cxl_success_with_no_access_and_t2gpa_is_1() -> None:
    rsp = ats(scene(tc=TC_T2GPA), GPA + 0x10_0000, cxl=True)
    assert (rsp.status, rsp.r, rsp.cxl_io) == (rv.Status.SUCCESS, False, True)


def test_cxl_invalid_msi_pte_is_still_an_msi_address() -> None:
    """MSI PTE not valid (262): Success with R = W = 0; the address was determined to be an
    MSI address (MSI_TRANS step 3) before the PTE was found invalid, so CXL.io is 1."""
    s = scene()
    pt = s.msipt(1)
    s.ddt.set_dc(
        DID,
        tc=TC_V | TC_EN_ATS,
        iohgatp=s.gstage(SV39).satp(1),
        msiptp=pt.msiptp(),  # an empty table: entry 0 has V = 0
        msi_addr_mask=0,
        msi_addr_pattern=MSI_GPA >> 12,
    )
    rsp = ats(s, MSI_GPA, cxl=True)
    assert rsp.fault is not None and rsp.fault.cause == rv.Cause.MSI_PTE_NOT_VALID
    assert (rsp.status, rsp.r, rsp.cxl_io) == (rv.Status.SUCCESS, False, True)


def test_cxl_unsupported_request_has_no_cxl_io() -> None:
    """UR / CA are not Success completions: no CXL.io."""
    s = scene(tc=TC_T2GPA)
    rsp = ats(s, GPA, cxl=True, process_id=5)  # PDTV = 0: transaction type disallowed
    assert (rsp.status, rsp.cxl_io) == (rv.Status.UNSUPPORTED_REQUEST, False)


@pytest.mark.parametrize("kind", [rv.RequestKind.UNTRANSLATED, rv.RequestKind.TRANSLATED])
def test_cxl_io_only_in_ats_completions(kind: int) -> None:
    s = scene(NC, tc=TC_T2GPA)
    rsp = s.iommu.translate(rv.Request(DID, GPA, kind=kind, cxl=True))
    assert rsp.status == rv.Status.SUCCESS and rsp.cxl_io is False


def test_cxl_io_in_repr_and_trace() -> None:
    s = scene(NC)
    s.iommu.tracer = tr = Tracer()
    rsp = ats(s, GPA, cxl=True)
    assert "cxl_io=True" in repr(rsp)
    assert "cxl_io" not in repr(ats(s, GPA, cxl=False))
    assert any(e.section == "ATS_FAULTS" and "CXL.io = 1" in e.text for e in tr.events)


def test_cxl_io_in_explain_json() -> None:
    out = io.StringIO()
    sc = build_demo("2024")
    req = rv.Request(0x100, 0x1010, process_id=1, length=1)
    assert explain(sc, req, _Out(out, False), True) == 0
    data = json.loads(out.getvalue())
    assert data["response"]["cxl_io"] is False


@pytest.mark.parametrize("as_json", [True, False])
def test_cxl_io_set_in_explain_of_an_ats_request(as_json: bool) -> None:
    """An ATS Translation Request from a CXL type 1/2 device to an NC page, explained:
    CXL.io = 1 in the response and in the ATS_FAULTS step."""
    s = scene(NC)
    sc: Any = SimpleNamespace(iommu=s.iommu)  # explain uses the scene's IOMMU only
    out = io.StringIO()
    req = rv.Request(DID, GPA, kind=ATS, cxl=True)
    assert explain(sc, req, _Out(out, False), as_json) == 0
    if as_json:
        data = json.loads(out.getvalue())
        assert data["request"]["cxl"] is True
        assert (data["response"]["status"], data["response"]["cxl_io"]) == ("SUCCESS", True)
        assert {"section": "ATS_FAULTS", "step": "", "text": _COMPLETION} in data["steps"]
    else:
        text = out.getvalue()
        assert _COMPLETION in text and "cxl_io=True" in text


_COMPLETION = "completion: range 0x1000, CXL.io = 1"


def test_cxl_io_in_explain_of_a_scenario_request() -> None:
    """``riscv-iommu explain --scenario examples/ats.toml --request 4``: the scenario's
    request with ``cxl = true`` (T2GPA) is explained with CXL.io = 1."""
    out = io.StringIO()
    example = Path(__file__).resolve().parents[2] / "examples" / "ats.toml"
    args = ["explain", "--scenario", str(example), "--request", "4", "--json"]
    assert main(args, stream=out) == 0
    data = json.loads(out.getvalue())
    assert (data["request"]["cxl"], data["response"]["cxl_io"]) == (True, True)
    assert data["response"]["addr"] == 0x8000_3000  # the T2GPA completion of that request
