"""The collector's less common paths: alternative event shapes and rare outcomes."""

from __future__ import annotations

from typing import Any, List, Optional, Set

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.coverage import BINS, Collector, Config, Coverage, collect, markdown_report
from riscv_iommu.coverage.model import group_of
from riscv_iommu.events import (
    CacheEvent,
    Check,
    CommandEvent,
    InterruptEvent,
    MemAccess,
    QueueRecord,
    RegWrite,
    RequestEvent,
    ResponseEvent,
    StructRead,
)
from riscv_iommu.pdt import PC_RULES

P = F.PTE
V, R, W, X, U, A, D = (P.fields[n].mask for n in "VRWXUAD")


def pte(ppn: int, flags: int, **kw: int) -> int:
    return P.encode(PPN=ppn, **kw) | flags


def req(**kw: Any) -> rv.Request:
    return rv.Request(0x42, kw.pop("addr", 0x1000), **kw)


def fault(r: rv.Request, cause: int, ttyp: int, iotval2: int = 0) -> ResponseEvent:
    rec = rv.FaultRecord(cause=cause, ttyp=ttyp, iotval=r.addr, iotval2=iotval2)
    return ResponseEvent(r, rv.Response(rv.Status.COMPLETER_ABORT, fault=rec))


def hits(events: List[Any], config: Optional[Config] = None) -> Set[str]:
    got = set(collect(events, config))
    assert got <= set(BINS), got - set(BINS)
    return got


def test_queue_memory_fault_is_a_write_without_its_record() -> None:
    evs = [MemAccess(0x1000, 32, "write", "FQ"), InterruptEvent("FQ", 1, False)]
    assert hits(evs) == {"endian.FQ.LE", "queue.fq.mf", "intr.FQ.msi"}
    rec = rv.PageRequest(1, 0, last=True)
    evs = [MemAccess(0x2000, 16, "write", "PQ", big_endian=True), QueueRecord("PQ", 0, 0, rec)]
    assert hits(evs) == {"endian.PQ.BE", "ats.pri.queued"}


def test_interrupt_messages_and_wires() -> None:
    evs = [
        InterruptEvent("CQ", 0, False),
        MemAccess(0x9000, 4, "write", "MSI", big_endian=True),
        MemAccess(0x9100, 4, "write", "MSI"),  # an IOFENCE.C data write: not an interrupt
        InterruptEvent("", 0, True, level=False),  # a wire released
    ]
    assert hits(evs) == {"intr.CQ.msi", "endian.MSI.BE"}


def test_mrif_msi_pte_in_one_event_and_recording() -> None:
    r = req(addr=0x2800_0000, access=rv.Access.WRITE)
    pte0 = F.MSIPTE0.encode(V=1, M=1) | (1 << 5)
    evs = [RequestEvent(r), StructRead("MSI_PTE", 0x7000, pte0 | (1 << 70), size=16)]
    evs.append(fault(r, 263, 3))
    assert hits(evs) == {"msi.fault.263.mrif_reserved", "cause.263.ttyp.3"}
    assert hits([StructRead("MRIF", 0x8000, 0)]) == {"msi.mrif.recorded"}


def test_pc_not_valid_is_not_a_selected_pc() -> None:
    r = req(process_id=1, priv=True)
    evs = [RequestEvent(r), StructRead("PC", 0x3000, 0), StructRead("PC", 0x3008, 0)]
    evs.append(fault(r, 266, 2))
    assert hits(evs) == {"pdt.PD8", "cause.266.ttyp.2"}


def test_ad_update_attribution() -> None:
    r = req()
    # an A/D write that matches no leaf address: the stage of the last PTE read
    evs = [RequestEvent(r), StructRead("S_PTE", 0x100, pte(0, V | R | U), level=2)]
    evs += [MemAccess(0x999, 8, "amo", "AD")]
    assert "s.ad.A" in hits(evs)
    # no leaf at all: nothing to attribute
    assert hits([RequestEvent(r), MemAccess(0x999, 8, "amo", "AD")]) == {"endian.AD.LE"}
    # the G-stage leaf of a first-stage A/D update (an implicit write) gets D
    w = req(access=rv.Access.WRITE)
    evs = [RequestEvent(w), StructRead("S_PTE", 0x100, pte(0, V | R | W | U), level=2)]
    evs += [StructRead("G_PTE", 0x200, pte(0, V | R | W | U | A), level=2, walk="S_PTE_AD")]
    evs += [MemAccess(0x200, 8, "amo", "AD")]
    got = hits(evs)
    assert "g.ad.D" in got and "g.implicit.S_PTE_AD" in got


def test_more_pte_fault_reasons() -> None:
    r = req()

    def stop_at(
        last: int, level: int = 2, g: bool = False, cfg: Optional[Config] = None
    ) -> Set[str]:
        if g:
            evs = [RequestEvent(r), StructRead("G_PTE", 0, last, level=level, walk="final")]
            evs.append(fault(r, 21, 2, iotval2=0x1000))
        else:
            evs = [RequestEvent(r), StructRead("S_PTE", 0, last, level=level)]
            evs.append(fault(r, 13, 2))
        return {b for b in hits(evs, cfg) if ".fault." in b}

    assert stop_at(pte(1, V) | (1 << 55)) == {"s.fault.reserved_bits"}
    assert stop_at(pte(1, V, RSW60_59=1), cfg=Config(svrsw60t59b=False)) == {
        "s.fault.rsw60t59b_reserved"
    }
    assert stop_at(pte(0, R | X | A | U)) == {"s.fault.invalid"}
    assert stop_at(pte(0, V | W | X | A | U)) == {"s.fault.w_without_r"}
    assert stop_at(pte(0, V | R | A | U, PBMT=1), cfg=Config(svpbmt=False)) == {
        "s.fault.pbmt_reserved"
    }
    # G-stage leaf that grants the access and has A: the G-stage permission
    assert stop_at(pte(0, V | R | U | A), g=True) == {"g.fault.permission"}
    # a supervisor request to a U page without SUM: a privilege fault, not a stage bin
    p = req(process_id=1, priv=True)
    evs = [RequestEvent(p), StructRead("S_PTE", 0, pte(0, V | R | U | A), level=2)]
    evs.append(fault(p, 13, 2))
    assert hits(evs) == {"s.Sv39.leaf2", "s.pbmt.PMA", "cause.13.ttyp.2"}


def test_g_stage_fault_of_an_implicit_walk() -> None:
    w = req(access=rv.Access.WRITE)
    evs = [RequestEvent(w), StructRead("S_PTE", 0x100, pte(0, V | R | W | U), level=2)]
    evs += [StructRead("G_PTE", 0x200, pte(0, V | R | U | A), level=2, walk="S_PTE_AD")]
    evs.append(fault(w, 23, 3, iotval2=0x1003))
    got = hits(evs)
    assert "g.fault.permission" in got and "g.iotval2.implicit_write" in got
    evs[2] = StructRead("G_PTE", 0x200, pte(0, V | R | W | U | A), level=2, walk="S_PTE_AD")
    assert "g.fault.ad_disabled" in hits(evs)


def test_gpa_width_of_an_sxl_dc_and_of_a_dc_without_g_reads() -> None:
    tc = F.DC_TC.V.mask | F.DC_TC.SXL.mask
    dc = [tc, 8 << 60, 0, 0, 0, 0, 0, 0]
    r = req()
    evs = [RequestEvent(r), StructRead("DC", 0x1000, sum(w << (64 * k) for k, w in enumerate(dc)))]
    evs.append(fault(r, 21, 2, iotval2=1 << 35))
    assert "g.fault.gpa_too_wide" in hits(evs)
    dc[0] = F.DC_TC.V.mask
    evs[1] = StructRead("DC", 0x1000, sum(w << (64 * k) for k, w in enumerate(dc)))
    evs[2] = fault(r, 21, 2, iotval2=1 << 42)  # Sv39x4: 41 bits
    assert "g.fault.gpa_too_wide" in hits(evs)
    evs[2] = fault(r, 21, 2, iotval2=1 << 38)  # fits Sv39x4: a missing walk read, say
    assert "g.fault.gpa_too_wide" in hits(evs)


def test_response_without_a_request_event_and_supervisor_without_a_known_pc() -> None:
    r = req(process_id=3, priv=True)
    evs = [StructRead("S_PTE", 0, pte(0, V | R | U | A), level=2)]
    evs.append(ResponseEvent(r, rv.Response(rv.Status.SUCCESS, 0x1000, r=True)))
    assert hits(evs) == {"s.Sv39.leaf2", "s.pbmt.PMA"}


def test_gipc_2025_msi_with_the_dc_fields() -> None:
    cfg = Config(gipc_revision="2025")
    r = req(process_id=3, addr=0x2800_0000)
    tc = F.DC_TC.V.mask | F.DC_TC.PDTV.mask | (1 << 12)
    dc = sum(w << (64 * k) for k, w in enumerate([tc, 0, 0, 1 << 60, 0, 0, 0, 0]))
    pc = sum(w << (64 * k) for k, w in enumerate([F.PC_TA.encode(V=1), 0, 0, 0]))
    evs = [RequestEvent(r), StructRead("DC", 0, dc, size=64)]
    evs.append(StructRead("PC", 0, pc, size=32, format="2025-32B"))
    evs.append(ResponseEvent(r, rv.Response(rv.Status.SUCCESS, 0x9000, is_msi=True, r=True)))
    got = hits(evs, cfg)
    assert {"gipc.2025.msi_dc", "gipc.2025.pc32", "msi.flat"} <= got


def test_checks_outside_requests_and_by_number() -> None:
    assert hits([Check("INTERRUPTS", "", "msi", False, "msi_addr", 273)]) == {"cause.273.ttyp.0"}
    assert hits([Check("PC_MISCONFIG", "3", "reworded", False, "", 267)]) == {"pc.rule.3"}
    assert hits([Check("PC_MISCONFIG", "99", "reworded", False, "", 267)]) == set()
    assert hits([Check("", "", PC_RULES[2], False, "", 267)]) == {"pc.rule.2"}


def test_registers_and_other_outcomes() -> None:
    rec = rv.FaultRecord(cause=258, ttyp=2)
    evs = [
        QueueRecord("FQ", 5, 0, rec),
        RegWrite(40, "fqb", 8, 0, 0),
        QueueRecord("FQ", 0, 0, rec),
        QueueRecord("PQ", 3, 0, rv.PageRequest(1, 0, last=True)),
        RegWrite(56, "pqb", 8, 0, 0),
        QueueRecord("PQ", 0, 0, rv.PageRequest(1, 0, last=True)),
        CommandEvent(2, 0, "IOFENCE.C", {}, "unheard-of", (2, 0)),
        CacheEvent("IOTLB", "fill"),
    ]
    assert hits(evs) == {"cause.258.ttyp.2", "ats.pri.queued"}


def test_covered_property_group_of_and_a_fully_covered_group() -> None:
    c = Collector()
    c.hit("debug.page")
    c.hit("not.a.bin")
    assert c.covered == {"debug.page"}
    assert group_of("debug.page") == "debug" and group_of("x") == "other"
    cov = Coverage.of_run(0, {f"debug.{n}": 1 for n in ("page", "superpage", "msi", "fault")})
    cov = cov.merge(Coverage.of_run(1, {"debug.mrif_stop": 1}))
    md = markdown_report(cov)
    assert "(`debug`):" not in md  # nothing missing in the group: no section


def test_user_request_to_a_supervisor_page_is_a_privilege_fault() -> None:
    r = req()
    evs = [RequestEvent(r), StructRead("S_PTE", 0, pte(0, V | R | A), level=2), fault(r, 13, 2)]
    assert hits(evs) == {"s.Sv39.leaf2", "s.pbmt.PMA", "cause.13.ttyp.2", "priv.user.U0"}
