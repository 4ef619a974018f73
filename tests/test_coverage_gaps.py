"""Directed tests for the functional-coverage bins the rest of the suite never hit.

docs/coverage.md ("Coverage of the test suite") lists the bins of the coverage model
(riscv_iommu.coverage.model) that no test reached; each test here reaches one or more of
them. Each asserts the exact observable result the spec gives (the fault record: CAUSE,
TTYP, iotval, iotval2, DID, PV/PID; whether it is reported; the response status; the
queue's event) and, with a coverage Collector attached to the model, that the bin is hit.

Spec: iommu_data_structures.adoc "Process to translate an IOVA" (P2IOVA), "Process to
translate addresses of MSIs" (MSI_TRANS), "PCIe ATS translation request handling"
(ATS_FAULTS); iommu_in_memory_queues.adoc, the Fault/Event-Queue record (CAUSE and TTYP
tables) and "Page-Request-Queue (PQ)"; iommu_hw_guidelines.adoc (the data-corruption and
internal data-path error causes: the transaction is aborted and the fault reported).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

import riscv_iommu as rv
from helpers import SV39, TC_DTF, TC_EN_ATS, TC_EN_PRI, TC_T2GPA, TC_V, System, fault
from riscv_iommu import coverage
from riscv_iommu import formats as F
from riscv_iommu.events import QueueRecord
from test_msi import DID as MSI_DID
from test_msi import IF_SPA, MSI_GPA, MrifSetup, MsiSetup, flat0

sys.path.insert(0, str(Path(__file__).resolve().parent / "sw"))
from swhelpers import fq_records, pq_records, setup_fq, setup_pq  # noqa: E402

REG = rv.REG
Access = rv.Access
Kind = rv.RequestKind
MF = rv.MemoryFault
CA = rv.Status.COMPLETER_ABORT

#: a Translated request carries a GPA when DC.tc.T2GPA = 1 (P2IOVA step 9)
T2GPA_TC = TC_V | TC_EN_ATS | TC_T2GPA
GPA = 0x8000_0000
T2GPA_DID = 7

#: the TTYP of each (request kind, access) (Fault/Event-Queue record, TTYP table)
TTYP = {
    (Kind.UNTRANSLATED, Access.EXECUTE): rv.Ttyp.UNTRANSLATED_EXECUTE,
    (Kind.UNTRANSLATED, Access.READ): rv.Ttyp.UNTRANSLATED_READ,
    (Kind.UNTRANSLATED, Access.WRITE): rv.Ttyp.UNTRANSLATED_WRITE,
    (Kind.TRANSLATED, Access.EXECUTE): rv.Ttyp.TRANSLATED_EXECUTE,
    (Kind.TRANSLATED, Access.READ): rv.Ttyp.TRANSLATED_READ,
    (Kind.TRANSLATED, Access.WRITE): rv.Ttyp.TRANSLATED_WRITE,
    (Kind.ATS_TRANSLATION, Access.READ): rv.Ttyp.ATS_TRANSLATION,
}
#: the access fault of each access (Privileged spec: an access fault on an implicit PTE
#: access raises the access-fault exception of the original access type)
ACCESS_FAULT = {
    Access.EXECUTE: rv.Cause.INSTRUCTION_ACCESS_FAULT,
    Access.READ: rv.Cause.READ_ACCESS_FAULT,
    Access.WRITE: rv.Cause.WRITE_ACCESS_FAULT,
}
TRANSLATED = [Access.EXECUTE, Access.READ, Access.WRITE]


def collector(io: rv.Iommu) -> coverage.Collector:
    """A functional-coverage collector observing ``io``."""
    return coverage.Collector().attach(io)


def cause_bins(col: coverage.Collector) -> List[str]:
    return sorted(b for b in col.hits if b.startswith("cause."))


def aborted(
    rsp: rv.Response, cause: int, ttyp: int, iotval: int, did: int, iotval2: int = 0
) -> None:
    """P2IOVA: the fault aborts the transaction (Completer Abort) and is reported (DTF = 0)
    with exactly this record: no process_id (PV = PID = PRIV = 0)."""
    assert rsp.status == CA
    assert rsp.fault == rv.FaultRecord(
        cause=cause, ttyp=ttyp, iotval=iotval, iotval2=iotval2, device_id=did
    )
    assert rsp.reported


# ---------------------------------------------------------------------------
# Translated requests of a T2GPA device: the G-stage walk (P2IOVA steps 9, 17, 19)
# ---------------------------------------------------------------------------
def _t2gpa(tc: int = T2GPA_TC) -> Tuple[System, int, int]:
    """A T2GPA device whose G-stage maps GPA; returns the system, the SPA and the leaf's
    address."""
    s = System()
    g = s.gstage(SV39)
    spa = s.page()
    leaf = g.map(GPA, spa)
    s.ddt.set_dc(T2GPA_DID, tc=tc, iohgatp=g.satp(9))
    return s, spa, leaf


@pytest.mark.parametrize("access", TRANSLATED)
def test_translated_g_stage_pte_access_fault(access: rv.Access) -> None:
    """P2IOVA step 9 then step 19 (Privileged spec two-stage translation): a PMA/PMP violation
    reading a G-stage PTE is the access fault of the original access type: 1, 5 or 7 with
    the Translated TTYP, iotval = the GPA, iotval2 = 0 (not a guest-page fault)."""
    s, _, leaf = _t2gpa()
    col = collector(s.iommu)
    s.mem.inject(leaf, 8, MF.ACCESS_FAULT)
    rsp = s.t(T2GPA_DID, GPA | 0x123, access, kind=Kind.TRANSLATED)
    ttyp = TTYP[(Kind.TRANSLATED, access)]
    aborted(rsp, ACCESS_FAULT[access], ttyp, GPA | 0x123, T2GPA_DID)
    assert cause_bins(col) == [f"cause.{int(ACCESS_FAULT[access])}.ttyp.{int(ttyp)}"]


@pytest.mark.parametrize("access", TRANSLATED)
def test_translated_g_stage_pt_data_corruption(access: rv.Access) -> None:
    """P2IOVA step 19 / RAS guidelines: poisoned G-stage PTE data is "First/second-stage PT
    data corruption" (274): the transaction is aborted and the fault reported."""
    s, _, leaf = _t2gpa()
    col = collector(s.iommu)
    s.mem.inject(leaf, 8, MF.DATA_CORRUPTION)
    rsp = s.t(T2GPA_DID, GPA | 0x123, access, kind=Kind.TRANSLATED)
    ttyp = TTYP[(Kind.TRANSLATED, access)]
    aborted(rsp, rv.Cause.PT_DATA_CORRUPTION, ttyp, GPA | 0x123, T2GPA_DID)
    assert cause_bins(col) == [f"cause.274.ttyp.{int(ttyp)}"]


@pytest.mark.parametrize("access", TRANSLATED)
def test_translated_internal_datapath_error(access: rv.Access) -> None:
    """RAS guidelines: an internal data-path error (272) aborts the transaction it affects
    and is reported, even for a Translated request; the next request is unaffected."""
    s, spa, _ = _t2gpa()
    col = collector(s.iommu)
    s.iommu.inject_datapath_error()
    rsp = s.t(T2GPA_DID, GPA | 0x123, access, kind=Kind.TRANSLATED)
    ttyp = TTYP[(Kind.TRANSLATED, access)]
    aborted(rsp, rv.Cause.INTERNAL_DATAPATH_ERROR, ttyp, GPA | 0x123, T2GPA_DID)
    assert cause_bins(col) == [f"cause.272.ttyp.{int(ttyp)}"]
    rsp = s.t(T2GPA_DID, GPA | 0x123, access, kind=Kind.TRANSLATED)
    assert (rsp.status, rsp.addr, rsp.fault) == (rv.Status.SUCCESS, spa | 0x123, None)


def test_translated_internal_datapath_error_reported_with_dtf() -> None:
    """CAUSE table: 272 is reported even if DTF is 1 (and the access fault 5 is not)."""
    s, _, leaf = _t2gpa(T2GPA_TC | TC_DTF)
    s.iommu.inject_datapath_error()
    rsp = s.t(T2GPA_DID, GPA, Access.READ, kind=Kind.TRANSLATED)
    aborted(rsp, rv.Cause.INTERNAL_DATAPATH_ERROR, rv.Ttyp.TRANSLATED_READ, GPA, T2GPA_DID)
    s.mem.inject(leaf, 8, MF.ACCESS_FAULT)
    rsp = s.t(T2GPA_DID, GPA, Access.READ, kind=Kind.TRANSLATED)
    assert rsp.status == CA
    assert fault(rsp).cause == rv.Cause.READ_ACCESS_FAULT
    assert not rsp.reported


@pytest.mark.parametrize(
    ("access", "cause"),
    [
        (Access.READ, rv.Cause.READ_GUEST_PAGE_FAULT),
        (Access.WRITE, rv.Cause.WRITE_GUEST_PAGE_FAULT),
    ],
)
def test_translated_unmapped_gpa_is_guest_page_fault(access: rv.Access, cause: int) -> None:
    """P2IOVA step 19: a Translated read/write (T2GPA) of a GPA the G-stage does not map is a
    guest-page fault (21/23): iotval = the GPA, iotval2 = GPA bits 63:2 with bit 0 = 0 (not
    an implicit access of the first stage, which is Bare)."""
    s, _, _ = _t2gpa()
    col = collector(s.iommu)
    rsp = s.t(T2GPA_DID, 0x9000_0457, access, kind=Kind.TRANSLATED)
    ttyp = TTYP[(Kind.TRANSLATED, access)]
    aborted(rsp, cause, ttyp, 0x9000_0457, T2GPA_DID, iotval2=0x9000_0454)
    assert cause_bins(col) == [f"cause.{int(cause)}.ttyp.{int(ttyp)}"]


# ---------------------------------------------------------------------------
# MSI_TRANS under every request type (P2IOVA step 18)
# ---------------------------------------------------------------------------
#: every request type that reaches MSI_TRANS: Untranslated, Translated with T2GPA = 1
#: (P2IOVA step 9 leads to step 17 with the first stage Bare, then step 18) and ATS
REQUESTS = list(TTYP)


def _msi(kind: rv.RequestKind, mrif: bool = False) -> MsiSetup:
    tc = T2GPA_TC if kind == Kind.TRANSLATED else TC_V | TC_EN_ATS
    return MrifSetup(tc=tc) if mrif else MsiSetup(tc=tc)


def _rid(kind_access: Tuple[rv.RequestKind, rv.Access]) -> str:
    return f"{kind_access[0].name}-{kind_access[1].name}"


@pytest.mark.parametrize("dword", [0, 1])
@pytest.mark.parametrize(
    ("mf", "cause"),
    [
        (MF.ACCESS_FAULT, rv.Cause.MSI_PTE_LOAD_ACCESS_FAULT),
        (MF.DATA_CORRUPTION, rv.Cause.MSI_PT_DATA_CORRUPTION),
    ],
)
@pytest.mark.parametrize("req", REQUESTS, ids=_rid)
def test_msi_pte_load_faults_every_request_type(
    req: Tuple[rv.RequestKind, rv.Access], mf: rv.MemoryFault, cause: int, dword: int
) -> None:
    """MSI_TRANS step 7: a PMA/PMP violation reading either doubleword of msipte is "MSI PTE
    load access fault" (261); step 8: poisoned msipte data is "MSI PT data corruption" (270).
    The PTE is read before step 15 refuses an execute, so an execute reports 261/270 too.
    ATS_FAULTS: 261 is a Completer Abort, reported; 270 (not in the Success R=W=0 list) a
    Completer Abort, reported. iotval = the GPA, iotval2 = 0."""
    kind, access = req
    m = _msi(kind)
    addr = m.pt.set_flat(3, IF_SPA)
    col = collector(m.s.iommu)
    m.s.mem.inject(addr + 8 * dword, 8, mf)
    rsp = m.t(MSI_GPA | 0x3000, access, kind=kind)
    ttyp = TTYP[req]
    aborted(rsp, cause, ttyp, MSI_GPA | 0x3000, MSI_DID)
    assert (rsp.r, rsp.w, rsp.x, rsp.is_msi) == (False, False, False, False)
    assert cause_bins(col) == [f"cause.{int(cause)}.ttyp.{int(ttyp)}"]


@pytest.mark.parametrize("req", REQUESTS[:6], ids=_rid)
@pytest.mark.parametrize(
    ("pte0", "cause"),
    [
        (flat0(0x1234) & ~1, rv.Cause.MSI_PTE_NOT_VALID),  # step 9: V = 0
        (F.MSIPTE0.encode(V=1, M=2, PPN=0x1234), rv.Cause.MSI_PTE_MISCONFIGURED),  # step 12
        (flat0(0x1234, C=1), rv.Cause.MSI_PTE_MISCONFIGURED),  # step 10: no custom PTE
    ],
    ids=["262-not-valid", "263-M2", "263-custom"],
)
def test_msi_pte_not_valid_or_misconfigured(
    req: Tuple[rv.RequestKind, rv.Access], pte0: int, cause: int
) -> None:
    """MSI_TRANS steps 9-12 under every Untranslated and Translated (T2GPA) request type:
    "MSI PTE not valid" (262) and "MSI PTE misconfigured" (263), checked before step 15
    refuses an execute (cause 1). (ATS: test_msi.py, 262 is a Success with R = W = 0.)"""
    kind, access = req
    m = _msi(kind)
    m.pt.set_raw(3, pte0)
    col = collector(m.s.iommu)
    rsp = m.t(MSI_GPA | 0x3000, access, kind=kind)
    ttyp = TTYP[req]
    aborted(rsp, cause, ttyp, MSI_GPA | 0x3000, MSI_DID)
    assert cause_bins(col) == [f"cause.{int(cause)}.ttyp.{int(ttyp)}"]


@pytest.mark.parametrize(
    ("mf", "cause"),
    [
        (MF.ACCESS_FAULT, rv.Cause.MRIF_ACCESS_FAULT),
        (MF.DATA_CORRUPTION, rv.Cause.MSI_MRIF_DATA_CORRUPTION),
    ],
)
def test_translated_write_mrif_faults(mf: rv.MemoryFault, cause: int) -> None:
    """MSI_TRANS step 14 with the IOMMU recording the MSI in the MRIF (IommuParams
    mrif_by_iommu): a Translated write (T2GPA) whose MRIF access faults is "MRIF access
    fault" (264), poisoned MRIF data "MSI MRIF data corruption" (271); no notice MSI is
    sent for an MSI that could not be recorded."""
    m = _msi(Kind.TRANSLATED, mrif=True)
    assert isinstance(m, MrifSetup)
    ident = 130
    m.s.mem.inject(m.mrif + (ident // 64) * 16, 8, mf)
    col = collector(m.s.iommu)
    rsp = m.t(MSI_GPA | 0x3000, Access.WRITE, kind=Kind.TRANSLATED, data=ident)
    aborted(rsp, cause, rv.Ttyp.TRANSLATED_WRITE, MSI_GPA | 0x3000, MSI_DID)
    assert cause_bins(col) == [f"cause.{int(cause)}.ttyp.7"]
    m.s.mem.clear_injections()
    assert m.snapshot()[1] == b"\xaa" * 4096


# ---------------------------------------------------------------------------
# Queue overflow and wrap (Fault/Event-Queue, Page-Request-Queue)
# ---------------------------------------------------------------------------
PR_DID = 0x15
PR_ADDR = 0x7_6543_2000


def _page_request(s: System, prg_index: int) -> Optional[rv.PageRequestGroupResponse]:
    return s.iommu.page_request(
        rv.PageRequest(device_id=PR_DID, addr=PR_ADDR, prg_index=prg_index, last=True)
    )


def test_pq_wrap_and_overflow_events() -> None:
    """PQ: records go to pqt, which wraps to 0 after the last entry; when the queue is full
    (pqt == pqh - 1) the record is discarded, pqof is set and (§ATS_PRI) the IOMMU answers
    Success. The event stream says so: a queue_record per record, ``written`` at its index
    and address, ``overflow`` for the discarded one (index = the tail it would have had,
    addr = 0: no write tried)."""
    s = System()
    s.ddt.set_dc(PR_DID, tc=TC_V | TC_EN_ATS | TC_EN_PRI)
    base = setup_pq(s, log2sz=2, ie=False)  # 4 entries
    log = rv.EventLog(kinds="queue_record")
    s.iommu.attach(log)
    col = collector(s.iommu)
    sent: List[Any] = []
    s.iommu.on_ats_message = sent.append
    for k in range(3):  # indexes 0, 1, 2: full (pqt 3 == pqh - 1)
        assert _page_request(s, k) is None
    s.iommu.mmio_write(REG.PQH, 3, 4)  # software consumed three records
    assert _page_request(s, 3) is None  # index 3: pqt wraps to 0
    assert _page_request(s, 4) is None  # index 0
    assert s.iommu.mmio_read(REG.PQT, 4) == 1
    assert _page_request(s, 5) is None  # index 1: full again (pqt 2 == pqh - 1)
    rsp = _page_request(s, 6)
    assert rsp == rv.PageRequestGroupResponse(device_id=PR_DID, prg_index=6, response_code=0)
    assert sent == [rsp]
    assert s.iommu.mmio_read(REG.PQCSR, 4) & F.PQCSR.pqof.mask
    assert s.iommu.mmio_read(REG.PQT, 4) == 2
    got = [(e.queue, e.index, e.addr, e.record.prg_index, e.status) for e in log]
    written = [(k, base + 16 * k) for k in (0, 1, 2, 3, 0, 1)]
    assert got == [("PQ", i, a, k, "written") for k, (i, a) in enumerate(written)] + [
        ("PQ", 2, 0, 6, "overflow")
    ]
    last = list(log)[-1]
    assert isinstance(last, QueueRecord)
    assert last.record == rv.PageRequest(device_id=PR_DID, addr=PR_ADDR, prg_index=6, last=True)
    assert [d1 >> 3 & 0x1FF for _, d1 in pq_records(s)] == [3, 4, 5]  # PRGI of pqh..pqt
    assert {"queue.pq.wrap", "queue.pq.overflow"} <= set(col.hits)
    assert "queue.pq.mf" not in col.hits


def test_fq_overflow_event_and_bin() -> None:
    """Fault/Event-Queue: a fault record produced while the queue is full is discarded and
    fqof set; the event stream has it as queue_record(status="overflow") with the record,
    the tail it would have had and addr 0; later records are discarded while fqof stands."""
    s = System()
    base = setup_fq(s, log2sz=1, ie=False)  # 2 entries: one record fills it
    log = rv.EventLog(kinds="queue_record")
    s.iommu.attach(log)
    col = collector(s.iommu)
    rsps = [s.t(0x40 + k, 0x1000 * (k + 1)) for k in range(3)]  # no DC: 258 each
    assert [fault(r).cause for r in rsps] == [rv.Cause.DDT_ENTRY_NOT_VALID] * 3
    assert all(r.reported for r in rsps)
    assert s.iommu.mmio_read(REG.FQCSR, 4) & F.FQCSR.fqof.mask
    assert [r.iotval for r in fq_records(s)] == [0x1000]
    assert [(e.index, e.addr, e.record, e.status) for e in log] == [
        (0, base, rsps[0].fault, "written"),
        (1, 0, rsps[1].fault, "overflow"),
        (1, 0, rsps[2].fault, "overflow"),
    ]
    assert "queue.fq.overflow" in col.hits
    assert "cause.258.ttyp.2" in col.hits
