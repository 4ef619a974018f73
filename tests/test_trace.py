"""The step-by-step trace (riscv_iommu.trace): what the explain view shows."""

from __future__ import annotations

import riscv_iommu as rv
from helpers import PD20, SV39, TC_PDTV, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu.trace import TraceEvent, Tracer


def _steps(t: Tracer) -> list[tuple[str, str]]:
    return [(e.section, e.step) for e in t.events]


def test_trace_of_a_two_stage_translation_lists_every_structure_read() -> None:
    """Every DDT entry, DC word, PDT entry, PC word and PTE read appears, in order."""
    s = System(params=rv.IommuParams(ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0))
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39)
    pdt = s.pdt(guest, PD20)
    spa = s.page()
    guest.back(0x4000_0000, spa)
    s1.map(0x5000, 0x4000_0000)
    pdt.set_pc(3, fsc=s1.satp())
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV, iohgatp=g.satp(2), fsc=pdt.pdtp())
    t = Tracer()
    s.iommu.tracer = t
    assert s.t(1, 0x5010, process_id=3).addr == spa | 0x10
    steps = _steps(t)
    assert steps[0] == ("P2IOVA", "1")
    assert steps.count(("GET_DC", "3")) == 2  # two non-leaf DDT levels
    assert steps.count(("GET_DC", "8")) == 1  # the 64-byte DC, every word decoded
    assert steps.count(("GET_PC", "5")) == 2 and steps.count(("GET_PC", "10")) == 1
    assert steps.count(("PTW", "2")) == 3  # Sv39
    # 3 G-stage levels for: 3 PDT addresses, 3 first-stage PTEs and the final GPA
    assert steps.count(("PTW-G", "2")) == 3 * 7
    assert steps[-1] == ("P2IOVA", "20")
    dc = next(e for e in t.events if e.text.startswith("device context"))
    assert dc.addr == s.ddt.dc_addr(1)
    tc_fields = {k[6:]: v for k, v in dc.fields.items() if k.startswith("DC.tc.")}
    assert tc_fields == {**F.DC_TC.decode(TC_V | TC_PDTV)}
    assert dc.fields["DC.iohgatp.MODE"] == SV39 and dc.fields["DC.fsc.MODE"] == PD20
    leaf = [e for e in t.events if e.section == "PTW" and e.raw is not None][-1]
    assert leaf.fields["R"] == 1 and leaf.fields["PPN"] == 0x4000_0000 >> 12
    assert "SPA" in str(t.events[-1]) and t.events[-1].as_dict()["step"] == "20"


def test_trace_shows_the_failing_rule_and_the_fault() -> None:
    """A misconfigured DC: the rule that failed, then the fault with its cause."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | F.DC_TC.DPE.mask)  # DPE without PDTV: rule 12
    t = Tracer()
    s.iommu.tracer = t
    s.t(1, 0)
    rule = next(e for e in t.events if e.section == "DC_MISCONFIG")
    assert rule.step == "12" and "DPE" in rule.text
    assert t.events[-1].section == "FAULT" and "259" in t.events[-1].text


def test_trace_shows_cache_hits_and_msi() -> None:
    """Cached DCs, PCs and IOTLB hits are named; an MSI address is reported at step 18."""
    s = System()
    g = s.gstage(SV39)
    spa = s.page()
    g.map(0x1000, spa)
    msipt = s.msipt(4)
    msipt.set_flat(0, 0x2400_0000)
    s.ddt.set_dc(
        1,
        tc=TC_V,
        iohgatp=g.satp(2),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0,
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    s.t(1, 0x1000)
    t = Tracer()
    s.iommu.tracer = t
    s.t(1, 0x1000)
    texts = [e.text for e in t.events]
    assert any("from the DDT cache" in x for x in texts)
    assert any(x.startswith("IOTLB hit") for x in texts)
    t.clear()
    s.t(1, 0x2800_0000, rv.Access.WRITE, length=4)
    assert ("MSI_TRANS", "7") in _steps(t)
    assert any(e.step == "18" and e.text == "an MSI address" for e in t.events)


def test_trace_event_formats() -> None:
    """TraceEvent renders as text and as a JSON-friendly dict."""
    e = TraceEvent("GET_DC", "3", "non-leaf", 0x1000, 0x401, {"V": 1, "PPN": 1})
    assert str(e) == "[GET_DC step 3] non-leaf @ 0x1000 = 0x0000000000000401 (V=0x1, PPN=0x1)"
    assert e.as_dict() == {
        "section": "GET_DC",
        "step": "3",
        "text": "non-leaf",
        "addr": "0x1000",
        "raw": "0x0000000000000401",
        "fields": {"V": "0x1", "PPN": "0x1"},
    }
    assert str(TraceEvent("FAULT", "", "stop")) == "[FAULT] stop"


def test_trace_names_a_pc_from_the_pdt_cache() -> None:
    """A PC served by the PDT cache is named in the trace."""
    s = System(params=rv.IommuParams(iotlb_size=0))
    pdt = s.pdt()
    pdt.set_pc(5)
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    s.t(1, 0x1000, process_id=5)
    t = Tracer()
    s.iommu.tracer = t
    s.t(1, 0x1000, process_id=5)
    assert any(e.text == "PC of process_id 0x5 from the PDT cache" for e in t.events)


def test_trace_names_a_cached_msi_pte() -> None:
    """An MSI PTE served by the MSI PTE cache is named in the trace."""
    s = System(params=rv.IommuParams(iotlb_size=0))
    g = s.gstage(SV39)
    msipt = s.msipt(4)
    msipt.set_flat(0, 0x2400_0000)
    s.ddt.set_dc(
        1, tc=TC_V, iohgatp=g.satp(2), msiptp=msipt.msiptp(), msi_addr_pattern=0x2800_0000 >> 12
    )
    s.t(1, 0x2800_0000, rv.Access.WRITE, length=4)
    t = Tracer()
    s.iommu.tracer = t
    s.t(1, 0x2800_0000, rv.Access.WRITE, length=4)
    assert any("from the MSI PTE cache" in e.text for e in t.events)
