"""riscv_iommu.testbench.Scoreboard in plain Python: the DUT is played by hand-made outputs.

Each test gives the model real stimulus (tables built with the host toolkit,
queues brought up by the host driver) and checks the scoreboard's verdict
and its exact report lines.
"""

from __future__ import annotations

import dataclasses
from typing import Any, List

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import Driver, ats_inval, iofence_c
from riscv_iommu.host.tables import HostSpace, PageAllocator, PageTable
from riscv_iommu.testbench import (
    CHANNELS,
    Mismatch,
    Scoreboard,
    ScoreboardError,
    decode_pq_record,
    diff,
)
from riscv_iommu.testbench.scoreboard import brief

DID = 0x12
IOVA = 0x4000_0000
SUCCESS = rv.Status.SUCCESS
CA = rv.Status.COMPLETER_ABORT
TC_V = F.DC_TC.V.mask
TC_ATS = TC_V | F.DC_TC.EN_ATS.mask | F.DC_TC.EN_PRI.mask


class Bench:
    """A model with its queues on, a DDT, and one device with an Sv39 table."""

    def __init__(self, tc: int = TC_V, fq_log2: int = 8, **sb_kw: Any) -> None:
        self.mem = rv.SparseMemory()
        self.io = rv.Iommu(self.mem)
        self.alloc = PageAllocator(self.mem)
        self.drv = Driver(self.io, self.mem, self.alloc)
        self.ddt = self.drv.bring_up(fq_log2=fq_log2)
        self.table = PageTable(HostSpace(self.mem, self.alloc), mode=8)
        self.page = self.alloc.alloc()
        self.table.map(IOVA, self.page)
        self.ddt.set_dc(DID, tc=tc, fsc=self.table.satp())
        self.sb = Scoreboard(self.io, **sb_kw)

    def req(self, addr: int = IOVA, **kw: Any) -> rv.Request:
        return rv.Request(device_id=DID, addr=addr, **kw)

    def fault_of(self, addr: int, access: rv.Access = rv.Access.READ) -> rv.FaultRecord:
        ttyp = {
            rv.Access.READ: rv.Ttyp.UNTRANSLATED_READ,
            rv.Access.WRITE: rv.Ttyp.UNTRANSLATED_WRITE,
            rv.Access.EXECUTE: rv.Ttyp.UNTRANSLATED_EXECUTE,
        }[access]
        cause = {
            rv.Access.READ: rv.Cause.READ_PAGE_FAULT,
            rv.Access.WRITE: rv.Cause.WRITE_PAGE_FAULT,
            rv.Access.EXECUTE: rv.Cause.INSTRUCTION_PAGE_FAULT,
        }[access]
        return rv.FaultRecord(cause=cause, ttyp=ttyp, iotval=addr, device_id=DID)


def lines(found: List[Mismatch]) -> List[str]:
    return [str(m) for m in found]


# ---------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------
def test_a_matching_response() -> None:
    b = Bench()
    rsp = b.sb.expect(b.req(IOVA + 0x10, access=rv.Access.WRITE))
    assert (rsp.status, rsp.addr) == (SUCCESS, b.page + 0x10)
    assert b.sb.pending() == [rsp]
    assert b.sb.check(rv.Response(SUCCESS, b.page + 0x10)) == []
    assert b.sb.passed
    assert b.sb.checked == {"response": 1, "fault": 0, "page_request": 0, "ats": 0}
    assert b.sb.report() == "scoreboard: 1 checked (response 1), 0 mismatches, 0 pending"
    assert b.sb.final_check() == b.sb.report()


def test_a_wrong_address_is_named() -> None:
    b = Bench(name="dut")
    b.sb.expect(b.req(IOVA + 0x10))
    found = b.sb.check(rv.Response(SUCCESS, b.page + 0x18))
    assert lines(found) == [
        f"response #0 [READ {IOVA + 0x10:#x} device_id 0x12]: addr: expected "
        f"{b.page + 0x10:#x}, got {b.page + 0x18:#x}"
    ]
    assert not b.sb.passed
    assert b.sb.report().splitlines()[0] == "dut: 1 checked (response 1), 1 mismatch, 0 pending"
    with pytest.raises(ScoreboardError) as err:
        b.sb.final_check()
    assert err.value.mismatches == found
    assert str(err.value) == b.sb.report()


def test_a_fault_response_and_its_fault_queue_record() -> None:
    """A page fault: CA expected (the address is not compared), and the record the model
    wrote to its fault queue is expected on the fault channel."""
    b = Bench()
    rsp = b.sb.expect(b.req(0x5000_0000))
    assert rsp.status == CA and rsp.reported
    assert b.sb.pending("fault") == [b.fault_of(0x5000_0000)]
    assert b.sb.check(rv.Response(CA, 0x1234)) == []
    assert b.sb.check(b.fault_of(0x5000_0000)) == []
    assert b.sb.passed


def test_fault_record_fields_are_named_by_the_spec() -> None:
    """The issue's example: iotval2 of a guest-page fault on an implicit access (bit 0)."""
    b = Bench()
    g = PageTable(HostSpace(b.mem, b.alloc), mode=8, stage="g")  # maps nothing
    # first-stage root at GPA 0x2000_0000: its first PTE read faults in the G-stage
    fsc = F.IOSATP.encode(MODE=8, PPN=0x2000_0000 >> 12)
    b.ddt.set_dc(0x99, tc=TC_V, iohgatp=g.satp(1), fsc=fsc)
    req = rv.Request(device_id=0x99, addr=0)
    rsp = b.sb.expect(req)
    assert rsp.fault is not None and rsp.fault.iotval2 == 0x2000_0001
    got = dataclasses.replace(rsp.fault, iotval2=0x2000_0000, device_id=0x98, pv=True)
    assert b.sb.check(rv.Response(CA)) == []
    assert lines(b.sb.check(got)) == [
        "fault #0 [READ 0x0 device_id 0x99]: iotval2: expected 0x20000001, got 0x20000000",
        "fault #0 [READ 0x0 device_id 0x99]: DID (device_id): expected 0x99, got 0x98",
        "fault #0 [READ 0x0 device_id 0x99]: PV: expected False, got True",
    ]
    assert diff(rsp.fault, got)[0] == "iotval2: expected 0x20000001, got 0x20000000"


def test_cause_and_status_show_their_names() -> None:
    b = Bench()
    b.sb.expect(b.req(0x5000_0000, access=rv.Access.WRITE))
    wrong = dataclasses.replace(b.fault_of(0x5000_0000, rv.Access.WRITE), cause=13, ttyp=99)
    assert [
        m.field + ": " + m.expected + " / " + m.got for m in b.sb.check(rv.Response(SUCCESS))
    ] == ["status: COMPLETER_ABORT / SUCCESS"]
    assert [(m.field, m.expected, m.got) for m in b.sb.check(wrong)] == [
        ("CAUSE", "WRITE_PAGE_FAULT (15)", "READ_PAGE_FAULT (13)"),
        ("TTYP", "UNTRANSLATED_WRITE (3)", "0x63"),
    ]


def test_response_fields_selects_what_is_compared() -> None:
    b = Bench(response_fields=("status", "addr", "fault", "rcid"))
    rsp = b.sb.expect(b.req(0x5000_0000))
    bad_fault = dataclasses.replace(rsp.fault, iotval=0x5000_0008)
    found = b.sb.check(rv.Response(CA, 0, fault=bad_fault, rcid=3))
    assert [(m.field, m.expected, m.got) for m in found] == [
        ("iotval", "0x50000000", "0x50000008"),
        ("rcid", "0x0", "0x3"),
    ]
    b.sb.check(b.fault_of(0x5000_0000))
    b.sb.expect(b.req(0x5000_0000))
    found = b.sb.check(rv.Response(CA, 0, fault=None))
    assert [(m.field, m.got) for m in found] == [("fault", "None")]
    assert found[0].expected.startswith("FaultRecord(cause=READ_PAGE_FAULT(13)")
    b.sb.check(b.fault_of(0x5000_0000))
    b.sb.expect(b.req(IOVA))
    assert b.sb.check(rv.Response(SUCCESS, b.page)) == []  # no fault on either side


def test_ats_completion_fields_are_compared_for_ats_requests() -> None:
    b = Bench(tc=TC_ATS)
    req = b.req(IOVA, kind=rv.RequestKind.ATS_TRANSLATION)
    rsp = b.sb.expect(req)
    assert (rsp.r, rsp.w, rsp.x) == (True, True, False)
    got = dataclasses.replace(rsp, w=False, x=True, pbmt=1, is_msi=True)  # is_msi: not compared
    assert [(m.field, m.expected, m.got) for m in b.sb.check(got)] == [
        ("W", "True", "False"),
        ("Exe (x)", "False", "True"),
        ("PBMT", "0x0", "0x1"),
    ]
    assert brief(req) == f"READ {IOVA:#x} device_id 0x12 ATS_TRANSLATION"


# ---------------------------------------------------------------------------
# in-order matching, resynchronisation, bounds
# ---------------------------------------------------------------------------
def test_unexpected_and_missing_items() -> None:
    b = Bench()
    found = b.sb.check(rv.Response(SUCCESS, 1))
    assert lines(found) == [
        "response #0: unexpected: expected nothing, got Response(status=SUCCESS, addr=0x1, "
        "perms=-, size=0x1000)"
    ]
    b.sb.expect(b.req(0x5000_0000))
    with pytest.raises(ScoreboardError) as err:
        b.sb.final_check()
    assert str(err.value).splitlines() == [
        "scoreboard: 1 checked (response 1), 3 mismatches, 0 pending",
        "  response #0: unexpected: expected nothing, got Response(status=SUCCESS, addr=0x1, "
        "perms=-, size=0x1000)",
        "  response #0 [READ 0x50000000 device_id 0x12]: missing: expected "
        "Response(status=COMPLETER_ABORT, addr=0x0, fault=FaultRecord(cause=READ_PAGE_FAULT(13), "
        "ttyp=UNTRANSLATED_READ, iotval=0x50000000, iotval2=0x0, device_id=0x12, process_id=0x0, "
        "pv=False, priv=False), reported=True, perms=-, size=0x1000), got nothing",
        "  fault #0 [READ 0x50000000 device_id 0x12]: missing: expected "
        "FaultRecord(cause=READ_PAGE_FAULT(13), ttyp=UNTRANSLATED_READ, iotval=0x50000000, "
        "iotval2=0x0, device_id=0x12, process_id=0x0, pv=False, priv=False), got nothing",
    ]


def test_resync_reports_the_records_the_dut_never_produced() -> None:
    """The DUT missed the first of three faults: one "missing", then the rest match."""
    b = Bench()
    for addr in (0x5000_0000, 0x5000_1000, 0x5000_2000):
        b.sb.expect(b.req(addr))
        b.sb.check(rv.Response(CA))
    assert lines(b.sb.check(b.fault_of(0x5000_1000))) == [
        "fault #0 [READ 0x50000000 device_id 0x12]: missing: expected "
        "FaultRecord(cause=READ_PAGE_FAULT(13), ttyp=UNTRANSLATED_READ, iotval=0x50000000, "
        "iotval2=0x0, device_id=0x12, process_id=0x0, pv=False, priv=False), got nothing"
    ]
    assert b.sb.check(b.fault_of(0x5000_2000)) == []
    assert b.sb.mismatch_count == 1 and not b.sb.pending()


def test_resync_zero_compares_strictly_in_order() -> None:
    b = Bench(resync=0)
    for addr in (0x5000_0000, 0x5000_1000):
        b.sb.expect(b.req(addr))
        b.sb.check(rv.Response(CA))
    assert [(m.index, m.field) for m in b.sb.check(b.fault_of(0x5000_1000))] == [(0, "iotval")]
    assert [(m.index, m.field) for m in b.sb.check(b.fault_of(0x5000_2000))] == [(1, "iotval")]


def test_raise_on_mismatch() -> None:
    b = Bench(raise_on_mismatch=True, name="sb")
    b.sb.expect(b.req(IOVA))
    with pytest.raises(ScoreboardError) as err:
        b.sb.check(rv.Response(CA))
    assert str(err.value) == (
        f"sb: response #0 [READ {IOVA:#x} device_id 0x12]: status: expected SUCCESS, "
        "got COMPLETER_ABORT"
    )
    assert [m.field for m in err.value.mismatches] == ["status"]
    assert isinstance(err.value, AssertionError)  # a test failure for cocotb and pytest


def test_pending_items_are_bounded() -> None:
    b = Bench(max_pending=2)
    b.sb.expect(b.req(IOVA))
    b.sb.expect(b.req(IOVA))
    with pytest.raises(ScoreboardError, match="more than 2 expected response items pending"):
        b.sb.expect(b.req(IOVA))


def test_kept_mismatches_are_bounded_and_all_counted() -> None:
    b = Bench(max_kept=2)
    for _ in range(3):
        b.sb.expect(b.req(IOVA))
        b.sb.check(rv.Response(SUCCESS, 0))
    assert b.sb.mismatch_count == 3 and len(b.sb.mismatches) == 2
    assert b.sb.report().splitlines()[-1] == "  ... 1 more not kept"
    b.sb.expect(b.req(IOVA))
    with pytest.raises(ScoreboardError):
        b.sb.final_check()
    assert b.sb.mismatch_count == 4 and len(b.sb.mismatches) == 2


def test_detail_hook_text_is_attached_to_the_mismatch() -> None:
    b = Bench(detail=lambda req: f"walked for {req.addr:#x}\nsecond line")
    b.sb.expect(b.req(IOVA))
    (m,) = b.sb.check(rv.Response(CA))
    assert m.detail == f"walked for {IOVA:#x}\nsecond line"
    assert b.sb.report().splitlines()[1:] == [
        f"  response #0 [READ {IOVA:#x} device_id 0x12]: status: expected SUCCESS, "
        "got COMPLETER_ABORT",
        f"    | walked for {IOVA:#x}",
        "    | second line",
    ]
    # no request behind an unexpected item: the hook is not called
    assert b.sb.check(rv.Response(CA))[0].detail == ""


def test_a_failing_detail_hook_does_not_hide_the_mismatch() -> None:
    def broken(req: Any) -> str:
        raise KeyError("nope")

    b = Bench(detail=broken)
    b.sb.expect(b.req(IOVA))
    (m,) = b.sb.check(rv.Response(CA))
    assert m.field == "status" and m.detail == "(detail hook failed: KeyError('nope'))"


def test_pending_per_channel_and_final_check_of_pending_items() -> None:
    b = Bench()
    rsp = b.sb.expect(b.req(0x5000_0000))
    assert b.sb.pending("response") == [rsp]
    assert b.sb.pending("fault") == [b.fault_of(0x5000_0000)]
    assert b.sb.pending() == [rsp, b.fault_of(0x5000_0000)]
    assert b.sb.report().splitlines()[1:] == [
        f"  pending response: {rsp!r}",
        f"  pending fault: {b.fault_of(0x5000_0000)!r}",
    ]
    assert CHANNELS == ("response", "fault", "page_request", "ats")


# ---------------------------------------------------------------------------
# fault queue: what the model really wrote
# ---------------------------------------------------------------------------
def test_a_fault_not_queued_is_not_expected() -> None:
    """DC.tc.DTF: the page fault is not reported, so no record is expected."""
    b = Bench(tc=TC_V | F.DC_TC.DTF.mask)
    rsp = b.sb.expect(b.req(0x5000_0000))
    assert rsp.fault is not None and not rsp.reported
    assert b.sb.pending("fault") == []


def test_records_after_a_wrapping_tail_and_drain() -> None:
    """A 2-entry fault queue: without drain it is full after one record (head = 0);
    with drain the scoreboard consumes each record and the tail wraps."""
    b = Bench(fq_log2=1)
    for addr in (0x5000_0000, 0x5000_1000):
        b.sb.expect(b.req(addr))
    assert b.sb.pending("fault") == [b.fault_of(0x5000_0000)]  # the second overflowed
    d = Bench(fq_log2=1, drain=True)
    for addr in (0x5000_0000, 0x5000_1000, 0x5000_2000):
        d.sb.expect(d.req(addr))
    assert d.sb.pending("fault") == [d.fault_of(a) for a in (0x5000_0000, 0x5000_1000, 0x5000_2000)]
    assert d.io.mmio_read(rv.REG.FQH, 4) == d.io.mmio_read(rv.REG.FQT, 4) == 1


def test_observe_collects_records_of_direct_model_calls() -> None:
    """An Invalidation Completion from a device without EN_ATS: a fault record (TTYP 9)."""
    b = Bench()
    with b.sb.observe("completion"):
        assert b.io.invalidation_completion(DID, 1) == 0
    (rec,) = b.sb.pending("fault")
    assert (rec.cause, rec.ttyp, rec.iotval) == (
        rv.Cause.TRANSACTION_TYPE_DISALLOWED,
        rv.Ttyp.PCIE_MESSAGE,
        0x02,
    )
    assert lines(b.sb.check(dataclasses.replace(rec, iotval=0x04))) == [
        "fault #0 ['completion']: iotval: expected 0x2, got 0x4"
    ]


def test_observe_attributes_nothing_when_the_queue_is_reprogrammed_or_the_call_fails() -> None:
    b = Bench()
    with b.sb.observe():
        b.io.translate(b.req(0x5000_0000))
        b.drv.bring_up()  # a new fault queue at a new base
        b.io.translate(b.req(0x5000_0000))
    assert b.sb.pending() == []
    with pytest.raises(TypeError):
        with b.sb.observe("bad"):
            b.io.translate(b.req(0x5000_0000))
            b.io.translate("not a request")  # type: ignore[arg-type]
    assert b.sb.pending() == []
    assert b.sb._source is None


# ---------------------------------------------------------------------------
# page requests and ATS messages
# ---------------------------------------------------------------------------
def test_page_request_records_and_prg_responses() -> None:
    b = Bench(tc=TC_ATS)
    seen: List[Any] = []
    b.io.on_ats_message = seen.append  # a handler set before the scoreboard is chained
    sb = Scoreboard(b.io)
    msg = rv.PageRequest(device_id=DID, addr=0x7000, prg_index=5, last=True, write=True)
    assert sb.expect(msg) is None  # queued for software
    assert sb.pending("page_request") == [msg]
    bad = dataclasses.replace(msg, prg_index=6, process_id=3)
    assert lines(sb.check(bad)) == [
        "page_request #0 [page request 0x7000 device_id 0x12 prg_index 0x5 last]: "
        "PID (process_id): expected None, got 0x3",
        "page_request #0 [page request 0x7000 device_id 0x12 prg_index 0x5 last]: "
        "PRGI (prg_index): expected 0x5, got 0x6",
    ]
    # software answers: an ATS.PRGR command, sent by the model as a message
    b.drv.respond(DID, 5)
    prgr = rv.PageRequestGroupResponse(device_id=DID, prg_index=5, response_code=0)
    assert sb.pending("ats") == [prgr] and seen == [prgr]
    assert sb.check(prgr) == []
    # a device without PRI: the IOMMU answers itself (Invalid Request), and records a fault
    b.ddt.set_dc(0x13, tc=TC_V)
    other = rv.PageRequest(device_id=0x13, addr=0x7000, last=True, process_id=9)
    rsp = sb.expect(other)
    assert rsp == rv.PageRequestGroupResponse(device_id=0x13, prg_index=0, response_code=1)
    assert sb.pending("ats") == [rsp]
    assert brief(other) == "page request 0x7000 device_id 0x13 process_id 0x9 prg_index 0x0 last"
    assert [f.iotval for f in sb.pending("fault")] == [0x04]


def test_ats_invalidation_messages() -> None:
    b = Bench(tc=TC_ATS)
    b.drv.submit(ats_inval(DID, pasid=7, addr=0x1_0000), iofence_c())
    (inv,) = b.sb.pending("ats")
    assert isinstance(inv, rv.InvalidationRequest)
    assert (inv.device_id, inv.pasid, inv.addr) == (DID, 7, 0x1_0000)
    got = dataclasses.replace(inv, itag=inv.itag + 1, global_=True)
    assert [(m.field, m.expected, m.got) for m in b.sb.check(got)] == [
        ("G (global_)", "False", "True"),
        ("ITAG (itag)", f"{inv.itag:#x}", f"{inv.itag + 1:#x}"),
    ]
    assert b.io.invalidation_completion(DID, 1 << inv.itag) == 1  # the fence completes
    b.drv.submit(ats_inval(DID), iofence_c())
    prgr = rv.PageRequestGroupResponse(device_id=DID, prg_index=0, response_code=0)
    assert [(m.field, m.expected, m.got) for m in b.sb.check(prgr)] == [
        ("type", "InvalidationRequest", "PageRequestGroupResponse")
    ]


def test_expect_item_and_decode_pq_record() -> None:
    b = Bench()
    rec = rv.FaultRecord(cause=5, ttyp=2, iotval=0x10)
    b.sb.expect_item(rec, source="by hand")
    assert b.sb.check(rec) == []
    msg = rv.PageRequest(
        device_id=0xABCDE,
        addr=0xFFFF_F000,
        prg_index=0x1FF,
        last=True,
        read=False,
        write=True,
        process_id=0xFFFFF,
        priv=True,
        exec_req=True,
    )
    d0 = F.PQ_RECORD0.encode(PID=0xFFFFF, PV=1, PRIV=1, EXEC=1, DID=0xABCDE)
    d1 = F.PQ_PAYLOAD.encode(R=0, W=1, L=1, PRGI=0x1FF, ADDR=0xFFFFF)
    for big in (False, True):
        order = "big" if big else "little"
        data = d0.to_bytes(8, order) + d1.to_bytes(8, order)
        assert decode_pq_record(data, big_endian=big) == msg
    with pytest.raises(ValueError, match="16 bytes"):
        decode_pq_record(bytes(8))


# ---------------------------------------------------------------------------
# diff() and the text of values
# ---------------------------------------------------------------------------
def test_diff() -> None:
    e = rv.Response(SUCCESS, 0x1000, r=True)
    g = rv.Response(SUCCESS, 0x1000, r=False, rcid=2)
    assert diff(e, g) == []  # default fields: status, addr
    assert diff(e, g, fields=["r", "rcid"]) == [
        "R: expected True, got False",
        "rcid: expected 0x0, got 0x2",
    ]
    assert diff(rv.FaultRecord(cause=999, ttyp=2), rv.FaultRecord(cause=5, ttyp=2)) == [
        "CAUSE: expected 0x3e7, got READ_ACCESS_FAULT (5)"
    ]
    assert diff(e, rv.FaultRecord(cause=5, ttyp=2)) == ["type: expected Response, got FaultRecord"]
    assert diff(
        rv.InvalidationRequest(device_id=1, addr=0, segment=2),
        rv.InvalidationRequest(device_id=1, addr=0),
    ) == ["DSEG (segment): expected 0x2, got None"]
    with pytest.raises(TypeError, match="cannot compare int objects"):
        diff(1, 2)
    with pytest.raises(ValueError, match="bogus not Response attributes"):
        diff(e, g, fields=["addr", "bogus"])
    with pytest.raises(TypeError, match="sequence of Response attribute names"):
        diff(e, g, fields="addr")


def test_mismatch_text() -> None:
    m = Mismatch("ats", 3, "S", "True", "False")
    assert str(m) == "ats #3: S: expected True, got False"
    assert str(Mismatch("fault", 0, "x", "1", "2", item=("tuple",))) == (
        "fault #0 [('tuple',)]: x: expected 1, got 2"
    )
    assert brief(rv.Request(device_id=1, addr=0x10, process_id=2, priv=True)) == (
        "READ 0x10 device_id 0x1 process_id 0x2 priv"
    )


# ---------------------------------------------------------------------------
# misuse
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"name": 3}, TypeError, "name must be a str"),
        ({"max_pending": True}, TypeError, "max_pending must be an int"),
        ({"max_kept": 0}, ValueError, "max_kept must be at least 1"),
        ({"resync": -1}, ValueError, "resync must be at least 0"),
        ({"detail": "text"}, TypeError, "detail must be callable"),
        ({"response_fields": ("addr", "nope")}, ValueError, "nope not Response attributes"),
    ],
)
def test_scoreboard_misuse(kw: Any, error: type, match: str) -> None:
    io = rv.Iommu(rv.SparseMemory())
    with pytest.raises(error, match=match):
        Scoreboard(io, **kw)


def test_scoreboard_argument_types() -> None:
    with pytest.raises(TypeError, match="model must be a riscv_iommu.Iommu"):
        Scoreboard(object())  # type: ignore[arg-type]
    sb = Scoreboard(rv.Iommu(rv.SparseMemory()))
    with pytest.raises(TypeError, match="item must be a Request or a PageRequest, not int"):
        sb.expect(5)
    with pytest.raises(TypeError, match="got must be a Response, .* not str"):
        sb.check("response")
    with pytest.raises(TypeError, match="item: no channel takes Request"):
        sb.expect_item(rv.Request(device_id=1, addr=0))
    with pytest.raises(ValueError, match="channel must be one of"):
        sb.pending("faults")
    assert sb.report() == "scoreboard: 0 checked, 0 mismatches, 0 pending"
