"""The coverage collector fed hand-built event streams: exact bin sets.

Each stream is what the model emits for one scenario (the contract of
riscv_iommu/events.py); the expected set is every bin the scenario hits.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.coverage import BINS, Collector, Config, collect
from riscv_iommu.ddt import DC_RULES
from riscv_iommu.events import (
    AtsMessageEvent,
    CacheEvent,
    Check,
    CommandEvent,
    CompletionEvent,
    InterruptEvent,
    MemAccess,
    QueueRecord,
    RegWrite,
    RequestEvent,
    ResponseEvent,
    StructRead,
)
from riscv_iommu.gipc import GIPC_PC_RULES

P = F.PTE
V, R, W, X, U, A, D = (P.fields[n].mask for n in "VRWXUAD")
TC = F.DC_TC
GIPC_TC = 1 << 12


def pte(ppn: int, flags: int, pbmt: int = 0, n: int = 0, rsw: int = 0) -> int:
    return P.encode(PPN=ppn, PBMT=pbmt, N=n, RSW60_59=rsw) | flags


def ptr(ppn: int) -> int:
    return P.encode(PPN=ppn) | V


def dc_words(tc: int = TC.V.mask, iohgatp: int = 0, ta: int = 0, fsc: int = 0) -> List[int]:
    return [tc, iohgatp, ta, fsc, 0, 0, 0, 0]


def dc_reads(words: List[int], ddtes: int = 1, base: int = 0x10000) -> List[Any]:
    evs: List[Any] = [
        StructRead("DDTE", 0x5000 + 8 * i, ptr(0x10), level=ddtes - i) for i in range(ddtes)
    ]
    evs += [StructRead("DC", base + 8 * k, w, level=0) for k, w in enumerate(words)]
    return evs


def req(
    addr: int = 0x1000,
    access: rv.Access = rv.Access.READ,
    pid: Optional[int] = None,
    priv: bool = False,
    kind: rv.RequestKind = rv.RequestKind.UNTRANSLATED,
    did: int = 0x42,
) -> rv.Request:
    return rv.Request(did, addr, access=access, process_id=pid, priv=priv, kind=kind)


def ok(r: rv.Request, **kw: Any) -> ResponseEvent:
    return ResponseEvent(r, rv.Response(rv.Status.SUCCESS, 0x8000_0000, r=True, **kw))


def fault(
    r: rv.Request,
    cause: int,
    ttyp: int,
    iotval2: int = 0,
    status: rv.Status = rv.Status.COMPLETER_ABORT,
) -> ResponseEvent:
    rec = rv.FaultRecord(cause=cause, ttyp=ttyp, iotval=r.addr, iotval2=iotval2)
    return ResponseEvent(r, rv.Response(status, fault=rec, reported=True))


def hits(events: List[Any], config: Optional[Config] = None) -> Set[str]:
    got = set(collect(events, config))
    assert got <= set(BINS), got - set(BINS)
    return got


SV39_WALK = [
    StructRead("S_PTE", 0x20000 + 8, ptr(0x21), level=2),
    StructRead("S_PTE", 0x21000 + 8, ptr(0x22), level=1),
]


def test_sv39_leaf_pbmt_user_page() -> None:
    r = req()
    leaf = pte(0x80000, V | R | U | A, pbmt=1)
    evs = [RequestEvent(r), *dc_reads(dc_words())]
    evs += [*SV39_WALK, StructRead("S_PTE", 0x22008, leaf, level=0), ok(r)]
    assert hits(evs) == {
        "ddt.2LVL",
        "ddt.dc.extended",
        "s.Sv39.leaf0",
        "s.pbmt.NC",
        "priv.user.U1",
    }


def test_base_dc_3lvl_and_gigapage_with_rsw_bits() -> None:
    r = req()
    leaf = pte(0x40000, V | R | W | U | A | D, rsw=3)
    evs = [RequestEvent(r), *dc_reads(dc_words()[:4], ddtes=2)]
    evs += [StructRead("S_PTE", 0x20008, leaf, level=2), ok(r)]
    cfg = Config(msi_flat=False)
    assert hits(evs, cfg) == {
        "ddt.3LVL",
        "ddt.dc.base",
        "s.Sv39.leaf2",
        "s.pbmt.PMA",
        "s.rsw.bit59",
        "s.rsw.bit60",
        "priv.user.U1",
    }


def test_reserved_bits_in_a_superpage_leaf_page_fault() -> None:
    r = req()
    leaf = pte(0x40000, V | R | U | A) | (1 << 54)
    evs = [RequestEvent(r), *SV39_WALK[:1], StructRead("S_PTE", 0x21008, leaf, level=1)]
    evs.append(fault(r, rv.Cause.READ_PAGE_FAULT, rv.Ttyp.UNTRANSLATED_READ))
    assert hits(evs) == {"s.Sv39.leaf1", "s.pbmt.PMA", "cause.13.ttyp.2", "s.fault.reserved_bits"}


@pytest.mark.parametrize(
    "last, level, name",
    [
        (0, 1, "invalid"),
        (V | W, 1, "w_without_r"),
        (ptr(5) | A, 1, "nonleaf_attr"),
        (ptr(5), 0, "no_leaf"),
        (pte(0x40001, V | R | A | U), 1, "misaligned_superpage"),
        (pte(0x40000, V | R | A | U, pbmt=3), 0, "pbmt_reserved"),
        (pte(0x40005, V | R | A | U, n=1), 0, "napot_reserved"),
        (pte(0x40000, V | W | A | U), 0, "w_without_r"),
        (pte(0x40000, V | X | A | U), 0, "permission"),
        (pte(0x40000, V | R | U), 0, "ad_disabled"),
    ],
)
def test_page_fault_reasons(last: int, level: int, name: str) -> None:
    r = req()
    evs = [RequestEvent(r), StructRead("S_PTE", 0x20000, ptr(0x21), level=2)]
    if level == 0:
        evs.append(StructRead("S_PTE", 0x21000, ptr(0x22), level=1))
    evs.append(StructRead("S_PTE", 0x22000, last, level=level))
    evs.append(fault(r, rv.Cause.READ_PAGE_FAULT, rv.Ttyp.UNTRANSLATED_READ))
    got = hits(evs)
    assert f"s.fault.{name}" in got
    assert {b for b in got if b.startswith("s.fault.")} == {f"s.fault.{name}"}


def test_rsw_bits_reserved_without_the_extension() -> None:
    r = req()
    leaf = pte(0x40000, V | R | U | A, rsw=2)
    evs = [RequestEvent(r), StructRead("S_PTE", 0x20000, leaf, level=2)]
    evs.append(fault(r, rv.Cause.READ_PAGE_FAULT, rv.Ttyp.UNTRANSLATED_READ))
    got = hits(evs, Config(svrsw60t59b=False))
    assert "s.fault.rsw60t59b_reserved" in got
    assert "s.fault.rsw60t59b_reserved" not in hits(evs)


def test_non_canonical_iova() -> None:
    r = req(addr=1 << 40)
    evs = [RequestEvent(r), fault(r, rv.Cause.READ_PAGE_FAULT, rv.Ttyp.UNTRANSLATED_READ)]
    assert hits(evs) == {"s.fault.non_canonical", "cause.13.ttyp.2"}


def test_sv32_napot_is_not_looked_for_and_sv57_root() -> None:
    r = req()
    evs = [RequestEvent(r), StructRead("S_PTE", 0x20000, ptr(1), level=1)]
    evs += [StructRead("S_PTE", 0x21000, V | R | A | U | (1 << 63), level=0), ok(r)]
    assert hits(evs) == {"s.Sv32.leaf0", "priv.user.U1"}
    evs = [RequestEvent(r), StructRead("S_PTE", 0x20000, pte(0, V | R | A | U), level=4), ok(r)]
    assert hits(evs) == {"s.Sv57.leaf4", "s.pbmt.PMA", "priv.user.U1"}


def test_napot_64k_leaf() -> None:
    r = req()
    leaf = pte(0x40008, V | R | U | A, n=1)
    evs = [RequestEvent(r), *SV39_WALK, StructRead("S_PTE", 0x22000, leaf, level=0), ok(r)]
    assert "s.napot64k" in hits(evs)


def test_first_stage_a_and_d_updates() -> None:
    r = req(access=rv.Access.WRITE)
    leaf = pte(0x40000, V | R | W | U)
    evs = [RequestEvent(r), *SV39_WALK, StructRead("S_PTE", 0x22000, leaf, level=0)]
    evs += [MemAccess(0x22000, 8, "amo", "AD"), ok(r)]
    got = hits(evs)
    assert {"s.ad.A", "s.ad.D", "endian.AD.LE"} <= got
    # a read sets A only
    r = req()
    evs = [RequestEvent(r), *SV39_WALK, StructRead("S_PTE", 0x22000, leaf, level=0)]
    evs += [MemAccess(0x22000, 8, "amo", "AD", big_endian=True), ok(r)]
    got = hits(evs)
    assert "s.ad.A" in got and "s.ad.D" not in got and "endian.AD.BE" in got
    # D alone when A was already set
    leaf = pte(0x40000, V | R | W | U | A)
    r = req(access=rv.Access.WRITE)
    evs = [RequestEvent(r), *SV39_WALK, StructRead("S_PTE", 0x22000, leaf, level=0)]
    evs += [MemAccess(0x22000, 8, "amo", "AD"), ok(r)]
    got = hits(evs)
    assert "s.ad.D" in got and "s.ad.A" not in got


def _pc_words(ta: int, fsc: int = 0) -> List[Any]:
    return [StructRead("PC", 0x30000, ta, level=0), StructRead("PC", 0x30008, fsc, level=0)]


@pytest.mark.parametrize(
    "priv, u, sum_, access, expect",
    [
        (False, U, 0, rv.Access.READ, "priv.user.U1"),
        (False, 0, 0, rv.Access.READ, "priv.user.U0"),
        (True, 0, 0, rv.Access.READ, "priv.super.U0"),
        (True, U, 0, rv.Access.READ, "priv.super.U1.SUM0"),
        (True, U, 1, rv.Access.READ, "priv.super.U1.SUM1"),
        (True, U, 1, rv.Access.EXECUTE, "priv.super.U1.SUM1.exec"),
    ],
)
def test_privilege_combinations(
    priv: bool, u: int, sum_: int, access: rv.Access, expect: str
) -> None:
    r = req(pid=5, priv=priv, access=access)
    ta = F.PC_TA.encode(V=1, ENS=1, SUM=sum_)
    leaf = pte(0x40000, V | R | X | A | u)
    evs = [RequestEvent(r), StructRead("PDTE", 0x6000, ptr(7), level=1), *_pc_words(ta)]
    evs += [StructRead("S_PTE", 0x20000, leaf, level=2), ok(r)]
    got = {b for b in hits(evs) if b.startswith("priv.")}
    assert got == {expect} | ({"priv.ENS1"} if priv else set())


def test_privilege_from_a_cached_pc_and_ens0() -> None:
    c = Collector()
    r = req(pid=5, priv=True)
    ta = F.PC_TA.encode(V=1, ENS=1, SUM=1)
    for ev in [
        RequestEvent(r),
        *_pc_words(ta),
        StructRead("S_PTE", 0, pte(0, V | R | A | U), level=2),
        ok(r),
    ]:
        c(ev)
    c.hits.clear()
    # the PC comes from the PDT cache the second time
    for ev in [
        RequestEvent(r),
        CacheEvent("PDT", "hit"),
        StructRead("S_PTE", 0, pte(0, V | R | A | U), level=2),
        ok(r),
    ]:
        c(ev)
    assert set(c.hits) == {"priv.ENS1", "priv.super.U1.SUM1", "s.Sv39.leaf2", "s.pbmt.PMA"}
    r = req(pid=6, priv=True)
    evs = [RequestEvent(r), *_pc_words(F.PC_TA.encode(V=1))]
    evs.append(fault(r, rv.Cause.TRANSACTION_TYPE_DISALLOWED, rv.Ttyp.UNTRANSLATED_READ))
    assert hits(evs) == {"pdt.PD8", "priv.ENS0", "cause.260.ttyp.2"}


def test_pdt_levels() -> None:
    r = req(pid=1)
    ta = F.PC_TA.encode(V=1)
    evs = [
        RequestEvent(r),
        StructRead("PDTE", 0, ptr(1), level=2),
        StructRead("PDTE", 8, ptr(2), level=1),
    ]
    evs += [*_pc_words(ta), ok(r)]
    assert hits(evs) == {"pdt.PD20"}


def test_g_stage_walk_for_implicit_pte_read_then_final() -> None:
    r = req()
    gleaf = pte(0x80000, V | R | W | U | A | D, pbmt=2)
    evs = [RequestEvent(r)]
    evs += [StructRead("G_PTE", 0x50000, gleaf, level=2, walk="S_PTE")]
    evs += [StructRead("S_PTE", 0x80000, pte(0, V | R | U | A), level=2)]
    evs += [StructRead("G_PTE", 0x50008, ptr(0x51), level=3, walk="final")]
    evs += [StructRead("G_PTE", 0x51000, gleaf, level=2, walk="final"), ok(r)]
    assert hits(evs) == {
        "g.implicit.S_PTE",
        "g.Sv39x4.leaf2",
        "g.Sv48x4.leaf2",
        "g.pbmt.IO",
        "s.Sv39.leaf2",
        "s.pbmt.PMA",
        "priv.user.U1",
    }


def test_guest_page_fault_of_an_implicit_write_and_u0() -> None:
    r = req(access=rv.Access.WRITE)
    s_leaf = pte(0, V | R | W | U | A)
    gleaf = pte(0x80000, V | R | A | D)  # U = 0
    evs = [RequestEvent(r)]
    evs += [StructRead("S_PTE", 0x80000, s_leaf, level=2)]
    evs += [StructRead("G_PTE", 0x50000, gleaf, level=2, walk="S_PTE_AD")]
    evs.append(
        fault(r, rv.Cause.WRITE_GUEST_PAGE_FAULT, rv.Ttyp.UNTRANSLATED_WRITE, iotval2=0x80000 | 3)
    )
    assert hits(evs) == {
        "s.Sv39.leaf2",
        "s.pbmt.PMA",
        "g.implicit.S_PTE_AD",
        "g.Sv39x4.leaf2",
        "g.pbmt.PMA",
        "g.iotval2.implicit",
        "g.iotval2.implicit_write",
        "g.fault.u0",
        "cause.23.ttyp.3",
        "priv.user.U1",
    }


def test_gpa_too_wide_and_g_stage_permission() -> None:
    r = req(kind=rv.RequestKind.TRANSLATED, addr=1 << 45)
    dc = dc_words(tc=TC.V.mask | TC.EN_ATS.mask | TC.T2GPA.mask, iohgatp=8 << 60)
    evs = [RequestEvent(r), *dc_reads(dc), fault(r, 21, rv.Ttyp.TRANSLATED_READ, iotval2=1 << 45)]
    assert hits(evs) == {"ddt.2LVL", "ddt.dc.extended", "g.fault.gpa_too_wide", "cause.21.ttyp.6"}
    r = req(kind=rv.RequestKind.TRANSLATED, access=rv.Access.WRITE)
    evs = [RequestEvent(r), StructRead("G_PTE", 0, pte(0, V | R | U | A), level=2, walk="final")]
    evs.append(fault(r, 23, rv.Ttyp.TRANSLATED_WRITE, iotval2=0x1000))
    assert hits(evs) == {"g.Sv39x4.leaf2", "g.pbmt.PMA", "g.fault.permission", "cause.23.ttyp.7"}


def test_g_stage_a_update_of_a_leaf() -> None:
    r = req()
    gleaf = pte(0x80000, V | R | U)
    evs = [RequestEvent(r), StructRead("G_PTE", 0x51000, gleaf, level=0, walk="final")]
    evs += [MemAccess(0x51000, 8, "amo", "AD"), ok(r)]
    assert {"g.ad.A"} <= hits(evs) and "g.ad.D" not in hits(evs)


def test_dc_rules_by_text_and_by_number() -> None:
    r = req()
    evs = [RequestEvent(r), *dc_reads(dc_words(tc=TC.V.mask | TC.T2GPA.mask))]
    evs.append(Check("DC_MISCONFIG", "3", DC_RULES[3], False, "T2GPA", 259))
    evs.append(fault(r, 259, 2, status=rv.Status.UNSUPPORTED_REQUEST))
    assert hits(evs) == {"ddt.2LVL", "ddt.dc.extended", "dc.rule.3", "cause.259.ttyp.2"}
    assert hits([Check("DC_MISCONFIG", "17", "root not aligned", False, "", 259)]) == {"dc.rule.17"}
    # a passed check, an unknown rule, another section's step number: nothing
    assert not hits([Check("DC_MISCONFIG", "17", DC_RULES[17], True)])
    assert not hits([Check("GET_DC", "10", "something", False, "", 259)])
    assert not hits([Check("GET_PC", "12", "something", False, "", 267)])


def test_gipc_rules_and_decisions() -> None:
    got = hits([Check("PC_MISCONFIG", "13", GIPC_PC_RULES[13], False, "", 267)])
    assert got == {"pc.rule.13", "gipc.2024.decision.7"}
    got = hits(
        [Check("DC_MISCONFIG", "24", DC_RULES[24], False, "", 259)], Config(gipc_revision="2025")
    )
    assert got == {"dc.rule.24", "gipc.2025.decision.3"}
    got = hits([Check("DC_MISCONFIG", "25", DC_RULES[25], False, "", 259)])
    assert got == {"dc.rule.25", "gipc.2024.decision.4"}
    # decision 2: the bit without the capability
    r = req()
    evs = [RequestEvent(r), *dc_reads(dc_words(tc=TC.V.mask | GIPC_TC)[:4])]
    evs.append(Check("DC_MISCONFIG", "1", DC_RULES[1], False, "", 259))
    got = hits(evs, Config(gipc=False, msi_flat=False))
    assert got == {"ddt.2LVL", "ddt.dc.base", "dc.rule.1", "gipc.2024.decision.2"}


def test_gipc_2025_request_through_pc_iohgatp() -> None:
    cfg = Config(gipc_revision="2025")
    r = req(pid=3)
    tc = TC.V.mask | TC.PDTV.mask | GIPC_TC
    dc = dc_words(tc=tc, iohgatp=8 << 60, fsc=1 << 60)
    pc = [F.PC_TA.encode(V=1), 8 << 60, 8 << 60, 0]  # ta, fsc (Sv39), iohgatp (Sv39x4), reserved
    evs = [RequestEvent(r), *dc_reads(dc)]
    evs += [StructRead("PC", 0x30000 + 8 * k, w, level=0) for k, w in enumerate(pc)]
    evs += [MemAccess(0x30000, 8, "read", "PC", big_endian=True)]
    evs += [StructRead("G_PTE", 0x50000, pte(0x60, V | R | U | A), level=2, walk="S_PTE")]
    evs += [StructRead("S_PTE", 0x60000, pte(0x10, V | R | U | A), level=2)]
    evs += [StructRead("G_PTE", 0x50000, pte(0x70, V | R | U | A), level=2, walk="final"), ok(r)]
    got = hits(evs, cfg)
    assert {b for b in got if b.startswith("gipc.")} == {
        "gipc.2025.pc32",
        "gipc.2025.decision.1",
        "gipc.2025.decision.5.pc",
        "gipc.2025.decision.6",
        "gipc.2025.decision.11",
        "gipc.2025.s1_gpa",
    }
    # the same DC without a process_id: DC.iohgatp
    r = req()
    evs = [RequestEvent(r), *dc_reads(dc), ok(r)]
    assert {b for b in hits(evs, cfg) if b.startswith("gipc.")} == {
        "gipc.2025.decision.1",
        "gipc.2025.decision.5.dc",
    }


def test_gipc_2024_first_stage_at_spa_msi_and_cached_pc() -> None:
    c = Collector(Config(gipc_revision="2024", msi_flat=True))
    r = req(pid=3)
    tc = TC.V.mask | TC.PDTV.mask | GIPC_TC
    dc = dc_words(tc=tc, iohgatp=8 << 60, fsc=1 << 60)
    pc = [0, 0, 0, 0, 0, 8 << 60, F.PC_TA.encode(V=1), 8 << 60]  # 64-byte 2024 layout
    evs: List[Any] = [RequestEvent(r), *dc_reads(dc)]
    evs += [StructRead("PC", 0x30000, sum(w << (64 * k) for k, w in enumerate(pc)), level=0)]
    evs += [StructRead("S_PTE", 0x60000, pte(0x10, V | R | U | A), level=2)]
    evs += [StructRead("MSI_PTE", 0x70000, 0, level=-1), StructRead("MSI_PTE", 0x70008, 0)]
    evs.append(fault(r, rv.Cause.MSI_PTE_NOT_VALID, 2))
    for ev in evs:
        c(ev)
    assert {b for b in c.hits if b.startswith("gipc.")} == {
        "gipc.2024.pc64",
        "gipc.2024.decision.1",
        "gipc.2024.decision.5.pc",
        "gipc.2024.decision.6",
        "gipc.2024.s1_spa",
        "gipc.2024.msi_pc",
    }
    assert "msi.fault.262" in c.hits
    c.hits.clear()
    for ev in [RequestEvent(r), CacheEvent("DDT", "hit"), CacheEvent("PDT", "hit"), ok(r)]:
        c(ev)
    assert set(c.hits) == {
        "gipc.2024.decision.1",
        "gipc.2024.decision.5.pc",
        "gipc.2024.decision.8",
    }


def test_gipc_process_id_too_wide_for_the_larger_pc() -> None:
    cfg = Config(gipc_revision="2024", msi_flat=True)  # 64-byte PC: PD8 takes 6 bits
    r = req(pid=0x40)
    dc = dc_words(tc=TC.V.mask | TC.PDTV.mask | GIPC_TC, fsc=1 << 60)
    evs = [RequestEvent(r), *dc_reads(dc), fault(r, 260, 2, status=rv.Status.UNSUPPORTED_REQUEST)]
    assert "gipc.2024.pid_width" in hits(evs, cfg)
    r = req(pid=0x100)  # too wide for PD8 anyway: not a GIPC case
    evs = [RequestEvent(r), *dc_reads(dc), fault(r, 260, 2, status=rv.Status.UNSUPPORTED_REQUEST)]
    assert "gipc.2024.pid_width" not in hits(evs, cfg)


def test_gipc_decisions_9_10_12() -> None:
    c = Collector(Config())
    r = req(pid=3, access=rv.Access.WRITE)
    dc = dc_words(tc=TC.V.mask | TC.PDTV.mask | TC.SADE.mask | GIPC_TC, fsc=1 << 60)
    pc = [0, 0, 0, 0, 0, 0, F.PC_TA.encode(V=1), 8 << 60]
    leaf = pte(0x10, V | R | W | U)
    evs: List[Any] = [RequestEvent(r), *dc_reads(dc)]
    evs += [StructRead("PC", 0x30000 + 8 * k, w) for k, w in enumerate(pc)]
    evs += [StructRead("S_PTE", 0x60000, leaf, level=2), MemAccess(0x60000, 8, "amo", "AD")]
    evs.append(fault(r, 23, 3, iotval2=0x10000))
    for ev in evs:
        c(ev)
    assert {"gipc.2024.decision.10", "gipc.2024.decision.12"} <= set(c.hits)

    def cmd(op: int, f3: int, d0: int = 0, d1: int = 0) -> CommandEvent:
        return CommandEvent(op, f3, "", {}, "completed", (d0 | op | f3 << 7, d1))

    c.hits.clear()
    c(cmd(3, 1, F.CMD_IODIR0.DV.mask))
    c(cmd(1, 0))
    c(cmd(1, 1, F.CMD_IOTINVAL0.GV.mask))
    assert "gipc.2024.decision.9" in c.hits


def cmd(
    op: int,
    f3: int,
    outcome: str = "completed",
    ops: Optional[Dict[str, int]] = None,
    **fields: int,
) -> CommandEvent:
    layout = {1: F.CMD_IOTINVAL0, 2: F.CMD_IOFENCE0, 3: F.CMD_IODIR0, 4: F.CMD_ATS0}.get(op, F.CMD)
    second = {1: F.CMD_IOTINVAL1, 4: F.ATS_INVAL_PAYLOAD}.get(op)
    d0 = F.CMD.encode(opcode=op, func3=f3)
    d1 = 0
    for name, v in fields.items():
        if name in layout.fields:
            d0 = layout.fields[name].put(d0, v)
        else:
            assert second is not None
            d1 = second.fields[name].put(d1, v)
    return CommandEvent(op, f3, "", ops or {}, outcome, (d0, d1))


def test_command_bins() -> None:
    evs = [
        cmd(1, 0, GV=1, AV=1, S=1),
        cmd(1, 0, PSCV=1, NL=1),
        cmd(1, 1),
        cmd(1, 1, GV=1, AV=1, S=1, NL=1),
        cmd(2, 0, AV=1, WSI=1),
        cmd(2, 0),
        cmd(3, 0),
        cmd(3, 0, DV=1),
        cmd(3, 1, DV=1),
        cmd(4, 0, PV=1, DSV=1, G=1, S=1),
        cmd(4, 1),
    ]
    assert hits(evs) == {
        "cmd.IOTINVAL.VMA.GV1.AV1.PSCV0",
        "cmd.IOTINVAL.VMA.S",
        "cmd.IOTINVAL.VMA.GV0.AV0.PSCV1",
        "cmd.IOTINVAL.VMA.NL",
        "cmd.IOTINVAL.GVMA.GV0",
        "cmd.IOTINVAL.GVMA.GV1.AV1",
        "cmd.IOTINVAL.GVMA.S",
        "cmd.IOTINVAL.GVMA.NL",
        "cmd.IOFENCE.C.AV",
        "cmd.IOFENCE.C.WSI",
        "cmd.IOFENCE.C.none",
        "cmd.IODIR.INVAL_DDT.DV0",
        "cmd.IODIR.INVAL_DDT.DV1",
        "cmd.IODIR.INVAL_PDT.DV1",
        "cmd.ATS.INVAL.PV1",
        "cmd.ATS.INVAL.DSV",
        "cmd.ATS.INVAL.G",
        "cmd.ATS.INVAL.S",
        "cmd.ATS.PRGR.PV0",
    }
    # operands named in the event win over raw
    ev = CommandEvent(2, 0, "IOFENCE.C", {"PR": 1, "PW": 1}, "completed", (0, 0))
    assert hits([ev]) == {"cmd.IOFENCE.C.PR", "cmd.IOFENCE.C.PW"}


def test_command_queue_conditions() -> None:
    evs = [
        cmd(5, 0, "illegal"),
        cmd(2, 3, "illegal"),
        cmd(1, 1, "illegal", PSCV=1),
        cmd(2, 0, "memory_fault"),
        cmd(2, 0, "waiting"),
        cmd(4, 0, "waiting"),
        cmd(2, 0, "timed_out"),
        MemAccess(0x9000 + 0x30, 8, "read", "CQ"),
        MemAccess(0x9000 + 0x38, 8, "read", "CQ"),
        MemAccess(0x9000, 8, "read", "CQ", big_endian=True),
    ]
    assert hits(evs) == {
        "queue.cq.ill.opcode",
        "queue.cq.ill.func3",
        "queue.cq.ill.operand",
        "queue.cq.mf",
        "queue.cq.fence_wait",
        "ats.inval.itag_exhausted",
        "queue.cq.timeout",
        "queue.cq.wrap",
        "endian.CQ.LE",
        "endian.CQ.BE",
    }
    # enabling the queue again restarts at index 0: no wrap
    evs = [
        MemAccess(0x9030, 8, "read", "CQ"),
        RegWrite(72, "cqcsr", 4, 0, 1),
        MemAccess(0x9000, 8, "read", "CQ"),
    ]
    assert hits(evs) == {"endian.CQ.LE"}


def test_fault_and_page_request_queues() -> None:
    rec = rv.FaultRecord(cause=273, ttyp=0)
    pr = rv.PageRequest(0x42, 0x1000, last=True, process_id=3)
    stop = rv.PageRequest(0x42, 0, last=True, read=False, process_id=3)
    part = rv.PageRequest(0x42, 0x1000, last=False)
    evs = [
        QueueRecord("FQ", 3, 0x1060, rec),
        QueueRecord("FQ", 0, 0x1000, rv.FaultRecord(cause=256, ttyp=9)),
        QueueRecord("PQ", 1, 0x2010, pr),
        QueueRecord("PQ", 0, 0x2000, stop),
        QueueRecord("PQ", 1, 0x2010, part),
    ]
    assert hits(evs) == {
        "cause.273.ttyp.0",
        "cause.256.ttyp.9",
        "queue.fq.wrap",
        "ats.pri.queued",
        "ats.pri.queued.pasid",
        "ats.pri.stop_marker",
        "queue.pq.wrap",
        "ats.pri.queued.partial",
    }


def test_interrupts_and_hpm() -> None:
    evs = [
        InterruptEvent("CQ", 0, True),
        InterruptEvent("FQ", 1, False),
        InterruptEvent("PQ", 2, False, masked=True),
        InterruptEvent("HPM", 3, False),
    ]
    assert hits(evs) == {
        "intr.CQ.wired",
        "intr.FQ.msi",
        "intr.PQ.msi_masked",
        "intr.HPM.msi",
        "hpm.overflow",
    }
    r = req()
    stream = [
        RequestEvent(r),
        CacheEvent("IOTLB", "miss"),
        StructRead("S_PTE", 0, pte(1, V | R | U | A), level=2),
    ]
    assert "hpm.event.4" not in hits(stream)
    prog = [RegWrite(352 + 8 * k, f"iohpmevt{k + 1}", 8, 0, e) for k, e in enumerate((1, 4, 7, 5))]
    prog.append(RegWrite(352 + 8 * 4 + 4, "iohpmevt5", 4, 0, 8))  # high half: ignored
    got = hits([*prog, *stream, *dc_reads(dc_words())])
    assert {b for b in got if b.startswith("hpm.")} == {
        "hpm.event.1",
        "hpm.event.4",
        "hpm.event.5",
        "hpm.event.7",
    }


def test_msi_bins() -> None:
    r = req(addr=0x2800_0000, access=rv.Access.WRITE)
    flat = ResponseEvent(r, rv.Response(rv.Status.SUCCESS, 0x9000, is_msi=True, w=True))
    mrif = ResponseEvent(r, rv.Response(rv.Status.SUCCESS, 0x9000, is_msi=True, is_mrif=True))
    assert hits([RequestEvent(r), flat]) == {"msi.flat"}
    assert hits([RequestEvent(r), MemAccess(0x9000, 8, "write", "MRIF_WRITE"), mrif]) == {
        "msi.mrif",
        "msi.mrif.recorded",
    }
    M = F.MSIPTE0
    for pte0, name, cfg in (
        (M.encode(V=1, M=3, C=1), "custom", Config()),
        (M.encode(V=1, M=0), "M0", Config()),
        (M.encode(V=1, M=2), "M2", Config()),
        (M.encode(V=1, M=3) | (1 << 5), "flat_reserved", Config()),
        (M.encode(V=1, M=1), "mrif_unsupported", Config(msi_mrif=False)),
        (M.encode(V=1, M=1) | (1 << 5), "mrif_reserved", Config()),
    ):
        evs = [RequestEvent(r), StructRead("MSI_PTE", 0x7000, pte0 | (0 << 64))]
        evs += [StructRead("MSI_PTE", 0x7008, 0), fault(r, 263, 3)]
        assert hits(evs, cfg) == {f"msi.fault.263.{name}", "cause.263.ttyp.3"}, name
    for cause in (261, 262, 264, 270, 271):
        assert hits([RequestEvent(r), fault(r, cause, 3)]) == {
            f"msi.fault.{cause}",
            f"cause.{cause}.ttyp.3",
        }
    x = req(addr=0x2800_0000, access=rv.Access.EXECUTE)
    evs = [RequestEvent(x), CacheEvent("MSI", "hit"), fault(x, 1, 1)]
    assert hits(evs) == {"msi.fault.exec", "cause.1.ttyp.1"}


def test_debug_outcomes() -> None:
    r = req(access=rv.Access.WRITE)
    mrif_pte = F.MSIPTE0.encode(V=1, M=1)
    cases = [
        ([ok(r)], {"debug.page"}),
        ([ok(r, size=1 << 21)], {"debug.superpage"}),
        (
            [ResponseEvent(r, rv.Response(rv.Status.SUCCESS, is_msi=True))],
            {"debug.msi", "msi.flat"},
        ),
        ([fault(r, 15, 3)], {"debug.fault", "cause.15.ttyp.3", "s.fault.non_canonical"}),
        (
            [StructRead("MSI_PTE", 0, mrif_pte), fault(r, 260, 3)],
            {"debug.fault", "debug.mrif_stop", "cause.260.ttyp.3"},
        ),
    ]
    for evs, expect in cases:
        assert hits([RequestEvent(r, debug=True), *evs]) == expect


def test_ats_completions() -> None:
    a = req(kind=rv.RequestKind.ATS_TRANSLATION)
    S = rv.Status

    def rsp(**kw: Any) -> ResponseEvent:
        return ResponseEvent(a, rv.Response(kw.pop("status", S.SUCCESS), **kw))

    t2gpa = dc_words(tc=TC.V.mask | TC.EN_ATS.mask | TC.T2GPA.mask, iohgatp=8 << 60)
    cases = [
        ([rsp(r=True)], {"ats.completion.r"}),
        (
            [rsp(r=True, w=True, x=True, s=True)],
            {"ats.completion.rw", "ats.completion.x", "ats.completion.range"},
        ),
        (
            [rsp(r=True, w=True, is_msi=True)],
            {"ats.completion.rw", "ats.completion.msi", "msi.flat"},
        ),
        (
            [rsp(r=True, w=True, is_msi=True, is_mrif=True, u=True)],
            {"ats.completion.rw", "ats.completion.mrif_u", "msi.mrif"},
        ),
        (
            [*dc_reads(t2gpa), rsp(r=True)],
            {"ats.completion.r", "ats.completion.t2gpa", "ddt.2LVL", "ddt.dc.extended"},
        ),
        ([rsp()], {"ats.completion.no_access"}),
        ([rsp(status=S.UNSUPPORTED_REQUEST)], {"ats.completion.ur"}),
        ([rsp(status=S.COMPLETER_ABORT)], {"ats.completion.ca"}),
    ]
    for evs, expect in cases:
        assert hits([RequestEvent(a), *evs]) == expect
    rec = rv.FaultRecord(cause=13, ttyp=8)
    no_access = ResponseEvent(a, rv.Response(S.SUCCESS, fault=rec))
    assert hits([RequestEvent(a), no_access]) == {
        "ats.completion.no_access",
        "cause.13.ttyp.8",
        "s.fault.non_canonical",
    }


def test_page_requests_and_ats_messages() -> None:
    pr = rv.PageRequest(0x42, 0x1000, last=True, process_id=3)
    prgr = rv.PageRequestGroupResponse(0x42, 1, 1, pasid=3)
    evs = [
        RequestEvent(pr),
        AtsMessageEvent(prgr),
        ResponseEvent(pr, None),
        AtsMessageEvent(rv.PageRequestGroupResponse(0x42, 2, 0)),
        RequestEvent(pr),
        AtsMessageEvent(rv.PageRequestGroupResponse(0x42, 3, 0xF)),
        RegWrite(32, "cqh", 4, 0, 0),
        AtsMessageEvent(rv.PageRequestGroupResponse(0x42, 4, 0)),
        RequestEvent(pr),
        AtsMessageEvent(rv.PageRequestGroupResponse(0x42, 3, 0)),
        cmd(2, 0),
        AtsMessageEvent(rv.InvalidationRequest(0x42, 0)),
        cmd(4, 0),
        CompletionEvent(0x42, 1, 1, 1),
        cmd(2, 0),
        CompletionEvent(0x42, 2, 0, 0),
    ]
    assert hits(evs) == {
        "ats.pri.auto.invalid",
        "ats.pri.auto.pasid",
        "ats.prgr.sent",
        "ats.pri.auto.failure",
        "ats.pri.auto.success",
        "cmd.IOFENCE.C.none",
        "ats.inval.sent",
        "cmd.ATS.INVAL.PV0",
        "ats.inval.completed",
        "ats.inval.cc",
    }


def test_queue_status_when_the_stream_reports_dropped_records() -> None:
    rec = rv.FaultRecord(cause=258, ttyp=2)
    evs = [
        QueueRecord(q, 0, 0, rec if q == "FQ" else None, status=s)
        for q in ("FQ", "PQ")
        for s in ("overflow", "memory_fault")
    ]
    assert hits(evs) == {"queue.fq.overflow", "queue.fq.mf", "queue.pq.overflow", "queue.pq.mf"}


def test_unknown_events_are_ignored_and_errors() -> None:
    c = Collector()
    c(object())
    c(StructRead("OTHER", 0, 0))
    c(MemAccess(0, 4, "write", "DEBUG"))
    assert c.hits == {}
    with pytest.raises(TypeError, match="config"):
        Collector(config={})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hits"):
        Collector(hits=[])  # type: ignore[arg-type]


def test_shadows_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from riscv_iommu.coverage import collector as mod

    monkeypatch.setattr(mod, "SHADOW_LIMIT", 2)
    c = Collector()
    for did in range(5):
        r = req(did=did, pid=1)
        for ev in [RequestEvent(r), *dc_reads(dc_words()), *_pc_words(F.PC_TA.encode(V=1)), ok(r)]:
            c(ev)
    assert len(c._dc_shadow) <= 2 and len(c._pc_shadow) <= 2
