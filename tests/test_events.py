"""The event stream (docs/events.md): what the model emits, field by field."""

from __future__ import annotations

import io as _io
import json
import sys
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import riscv_iommu as rv
from helpers import SV39, TC_EN_ATS, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu.events import (
    SCHEMA_VERSION,
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
    Step,
    StructRead,
    from_dict,
)
from riscv_iommu.trace import Tracer

sys.path.insert(0, str(Path(__file__).resolve().parent / "sw"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "gipc"))
import swhelpers as sw  # noqa: E402
from gipc_helpers import GipcSystem  # noqa: E402

NO_CACHES = rv.IommuParams(
    ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=0
)


def _g_walk(s: System, g: Any, gpa: int, walk: str) -> List[Any]:
    """The events of a 3-level Sv39x4 walk of ``gpa`` (for ``walk``), leaf check included."""
    out: List[Any] = []
    for level in (2, 1, 0):
        a = g.pte_addr(gpa, level)
        out.append(MemAccess(a, 8, "read", "G_PTE"))
        out.append(StructRead("G_PTE", a, s.mem.read_u64(a), "PTW-G", "2", level, walk))
    out.append(Check("PTW-G", "5", f"the G-stage leaf grants the access ({walk})", True))
    return out


def test_two_stage_walk_event_sequence() -> None:
    """Sv39 over Sv39x4, 1-level DDT, no caches: the request, the DC read (eight
    doubleword accesses, one structure), its checks, each first-stage PTE with the
    G-stage walk of its address, the final G-stage walk, and the response."""
    s = System(params=NO_CACHES, levels=1)
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39)
    spa = s.page()
    guest.back(0x4000_0000, spa)
    s1.map(0x5000, 0x4000_0000)
    dc_addr = s.ddt.set_dc(2, tc=TC_V, iohgatp=g.satp(9), fsc=s1.satp())
    log = rv.EventLog()
    s.iommu.attach(log)
    req = rv.Request(2, 0x5010)
    rsp = s.iommu.translate(req)
    assert rsp.addr == spa | 0x10
    dc_raw = sum(s.mem.read_u64(dc_addr + 8 * k) << (64 * k) for k in range(8))
    expected: List[Any] = [
        RequestEvent(req, False),
        Step("P2IOVA", "1", "ddtp.iommu_mode is 1LVL"),
    ]
    expected += [MemAccess(dc_addr + 8 * k, 8, "read", "DC") for k in range(8)]
    expected += [
        StructRead("DC", dc_addr, dc_raw, "GET_DC", "8", 0, "", size=64),
        Check("GET_DC", "10", "the device context passes every configuration check", True),
        Check("P2IOVA", "7", "the transaction type is allowed for this device context", True),
        Step(
            "P2IOVA",
            "17",
            f"first stage Sv39 (iosatp {s1.satp():#x}), "
            f"G-stage Sv39x4 (iohgatp {g.satp(9):#x} from the DC)",
        ),
    ]
    for level in (2, 1, 0):
        gpa = s1.pte_addr(0x5000, level)
        expected += _g_walk(s, g, gpa, "S_PTE")
        a = guest.to_spa(gpa)
        expected += [
            MemAccess(a, 8, "read", "S_PTE"),
            StructRead("S_PTE", a, s.mem.read_u64(a), "PTW", "2", level),
        ]
    expected.append(Check("PTW", "5", "the leaf grants the access", True))
    expected += _g_walk(s, g, 0x4000_0010, "final")
    expected += [
        Step(
            "P2IOVA", "20", f"translation complete: 0x5010 -> GPA 0x40000010 -> SPA {rsp.addr:#x}"
        ),
        ResponseEvent(req, rsp),
    ]
    assert log.events == expected
    leaf = log.filter("read", lambda e: e.structure == "S_PTE")[-1]
    assert isinstance(leaf, StructRead)
    assert leaf.decode()["PPN"] == 0x4000_0000 >> 12 and leaf.decode()["R"] == 1
    assert log.of(StructRead)[0].decode()["DC.iohgatp.GSCID"] == 9


def test_gipc_walk_event_sequence() -> None:
    """[GIPC] 2024, 64-byte PC: the PDT and the first-stage table are read at SPAs (no
    G-stage walk for them), the PC read names its format and decodes PC.iohgatp, and
    only the final GPA is G-stage translated, with PC.iohgatp."""
    caches = ("ddt", "pdt", "iotlb", "msi", "gwalk")
    s = GipcSystem(
        "2024", params={f"{c}_cache_size" if c != "iotlb" else "iotlb_size": 0 for c in caches}
    )
    io = s.iommu
    s.device(3)
    spa = s.bind(5, gscid=7)
    vm = s.vm(7)
    log = rv.EventLog(kinds=["read", "check", "step"])
    io.attach(log)
    rsp = s.t(3, 0x1000, process_id=5)
    assert rsp.addr == spa
    reads = log.of(StructRead)
    assert [(r.structure, r.level, r.walk) for r in reads] == [
        ("DDTE", 2, ""),
        ("DDTE", 1, ""),
        ("DC", 0, ""),
        ("PDTE", 2, ""),
        ("PDTE", 1, ""),
        ("PC", 0, ""),
        ("S_PTE", 2, ""),
        ("S_PTE", 1, ""),
        ("S_PTE", 0, ""),
        ("G_PTE", 2, "final"),
        ("G_PTE", 1, "final"),
        ("G_PTE", 0, "final"),
    ]
    dc, pc = reads[2], reads[5]
    assert dc.format == "GIPC@12" and dc.decode()["DC.tc.GIPC"] == 1
    assert dc.addr == s.ddt.dc_addr(3)
    assert reads[3].addr == s.pdtree.nonleaf_addr(5, 2)
    assert reads[4].addr == s.pdtree.nonleaf_addr(5, 1)
    assert pc.addr == s.pdtree.pc_addr(5) and pc.size == 64 and pc.format == "2024-64B"
    assert pc.decode()["PC.iohgatp.GSCID"] == 7 and pc.decode()["PC.ta.V"] == 1
    assert reads[-1].addr == vm.g.pte_addr(F.PTE.PPN.get(reads[8].raw) << 12, 0)
    steps = [e for e in log if isinstance(e, Step) and e.step == "17"]
    assert len(steps) == 1 and steps[0].text.endswith(f"(iohgatp {vm.g.satp(7):#x} from the PC)")
    checks = [(e.section, e.step) for e in log.of(Check)]
    assert checks == [
        ("GET_DC", "10"),
        ("P2IOVA", "7"),
        ("GET_PC", "12"),
        ("PTW", "5"),
        ("PTW-G", "5"),
    ]


def _msi(s: System, vector: int, addr: int, data: int) -> None:
    """Program msi_cfg_tbl entry ``vector`` (unmasked)."""
    s.iommu.mmio_write(rv.REG.msi_addr(vector), addr)
    s.iommu.mmio_write(rv.REG.msi_data(vector), data, 4)
    s.iommu.mmio_write(rv.REG.msi_vec_ctl(vector), 0, 4)


def test_command_batch_event_sequence() -> None:
    """A batch of four commands rung with one cqt write: the register write first, then
    per command its two CQ reads, its effects and the decoded command with its outcome;
    an illegal command stops the batch."""
    s = System()
    io = s.iommu
    msgs: List[Any] = []
    io.on_ats_message = msgs.append
    sw.setup_cq(s, log2sz=3, ie=True)
    # a cached DC of device 1, so IODIR.INVAL_DDT has an entry to remove
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS)
    s.t(1, 0x1000)
    fence_addr = s.page()
    log = rv.EventLog()
    io.attach(log)
    cmds = [
        sw.iodir_inval_ddt(did=1),
        sw.ats_inval(rid=1, addr=0x7000),
        sw.iotinval_vma(pscid=4),
        (F.CMD.encode(opcode=2, func3=5), 0),  # IOFENCE with a reserved func3: illegal
        sw.iofence_c(addr=fence_addr, data=0x5A),
    ]
    base = F.QUEUE_BASE.PPN.get(io.cq.base) << 12
    for k, cmd in enumerate(cmds):
        sw.write_cmd(s, k, cmd)
    io.mmio_write(rv.REG.CQT, len(cmds), 4)
    ev = log.events
    assert ev[0] == RegWrite(rv.REG.CQT, "cqt", 4, 0, 5, {"cqt": (0, 5)})
    cq_reads = [e for e in ev if isinstance(e, MemAccess) and e.purpose == "CQ"]
    assert [e.addr for e in cq_reads] == [base + o for o in (0, 8, 16, 24, 32, 40, 48, 56)]
    commands = log.of(CommandEvent)
    assert [(c.name, c.opcode, c.func3, c.outcome) for c in commands] == [
        ("IODIR.INVAL_DDT", 3, 0, "completed"),
        ("ATS.INVAL", 4, 0, "completed"),
        ("IOTINVAL.VMA", 1, 0, "completed"),
        ("reserved", 2, 5, "illegal"),
    ]
    assert commands[0].operands == {"PID": 0, "DV": 1, "DID": 1}
    assert commands[0].raw == cmds[0]
    assert commands[1].operands["RID"] == 1 and commands[1].operands["ADDR"] == 7
    assert commands[2].operands["PSCID"] == 4 and commands[2].operands["PSCV"] == 1
    # effects sit between the command's reads and its event
    i_inval = ev.index(CacheEvent("DDT", "inval", (1,), 1))
    assert ev.index(cq_reads[1]) < i_inval < ev.index(commands[0])
    assert i_inval < ev.index(CacheEvent("PDT", "inval", (1,), 0)) < ev.index(commands[0])
    assert AtsMessageEvent(msgs[0]) in ev and msgs[0].itag == 0
    assert CacheEvent("IOTLB", "inval", (-1, 4), 0) in ev
    assert io.mmio_read(rv.REG.CQCSR, 4) & F.CQCSR.cmd_ill.mask
    # the queue's cip interrupt (cie is on): an MSI of vector 0
    assert any(isinstance(e, InterruptEvent) and e.source == "CQ" for e in ev)


def test_command_waiting_timed_out_and_memory_fault_outcomes() -> None:
    """IOFENCE.C behind an outstanding ATS.INVAL waits; after a timeout it sets cmd_to;
    a CQ entry that cannot be read is a memory fault."""
    s = System()
    io = s.iommu
    sw.setup_cq(s, log2sz=3)
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS)
    log = rv.EventLog(kinds="command")
    io.attach(log)
    sw.submit(s, sw.ats_inval(rid=1), sw.iofence_c())
    assert [c.outcome for c in log.of(CommandEvent)] == ["completed", "waiting"]
    io.ats_timeout()
    assert log.of(CommandEvent)[-1].outcome == "timed_out"
    log.clear()
    s.mem.inject(F.QUEUE_BASE.PPN.get(io.cq.base) << 12, 4096, rv.MemoryFault.ACCESS_FAULT)
    io.mmio_write(rv.REG.CQCSR, F.CQCSR.encode(cqen=1, cmd_to=1), 4)
    assert log.events[-1] == CommandEvent(
        -1, -1, "", {"addr": F.QUEUE_BASE.PPN.get(io.cq.base) << 12 | 16}, "memory_fault"
    )


def test_fault_record_and_interrupt_event_sequence() -> None:
    """A fault: the failed check with its reason, the FQ record write and its queue
    event, then fip's MSI (vector, address, data) and its memory write."""
    s = System()
    io = s.iommu
    fq = sw.setup_fq(s, log2sz=2)
    msi = s.page()
    _msi(s, 3, msi, 0x77)
    io.mmio_write(rv.REG.ICVEC, F.ICVEC.encode(fiv=3))
    log = rv.EventLog()
    io.attach(log)
    s.ddt.set_dc(4, tc=TC_V)  # the DDT leaf page of device 5 exists
    req = rv.Request(5, 0x1000)  # its DC has V = 0: DDT entry not valid
    rsp = io.translate(req)
    assert rsp.fault is not None
    ev = log.events
    why = ev.index(Check("GET_DC", "9", "DC.tc.V is 0", False, "DC.tc.V", 258))
    assert ev[why + 1 :] == [
        MemAccess(fq, 32, "write", "FQ"),
        QueueRecord("FQ", 0, fq, rsp.fault),
        InterruptEvent("FQ", 3, False, False, msi, 0x77),
        MemAccess(msi, 4, "write", "MSI"),
        ResponseEvent(req, rsp),
    ]


def test_masked_and_wired_interrupt_events() -> None:
    """A masked vector holds its MSI (masked=True) and sends it when unmasked; with
    fctl.WSI the wire's level changes are events."""
    s = System()
    io = s.iommu
    sw.setup_fq(s)
    msi = s.page()
    _msi(s, 0, msi, 9)
    io.mmio_write(rv.REG.msi_vec_ctl(0), 1, 4)
    log = rv.EventLog(kinds="interrupt")
    io.attach(log)
    s.t(5, 0)
    assert log.events == [InterruptEvent("FQ", 0, False, True, msi, 9)]
    io.mmio_write(rv.REG.msi_vec_ctl(0), 0, 4)
    assert log.events[-1] == InterruptEvent("FQ", 0, False, False, msi, 9)
    w = System(caps=rv.Capabilities.full(igs=rv.IGS.WSI))
    sw.setup_fq(w)
    wlog = rv.EventLog(kinds="interrupt")
    w.iommu.attach(wlog)
    w.t(5, 0)
    assert wlog.events == [InterruptEvent("FQ", 0, True, level=True)]
    w.iommu.mmio_write(rv.REG.IPSR, F.IPSR.fip.mask, 4)
    assert wlog.events[-1] == InterruptEvent("", 0, True, level=False)


def test_register_write_events_name_each_changed_field() -> None:
    """An 8-byte ddtp write: old and new value and each changed field; a read-only
    register write is an event with no change; a write over two registers is two events."""
    s = System()
    io = s.iommu
    log = rv.EventLog(kinds="reg_write")
    io.attach(log)
    old = io.ddtp
    io.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=2, PPN=0x1234))
    new = io.ddtp
    changes = {
        k: (F.DDTP.fields[k].get(old), F.DDTP.fields[k].get(new))
        for k in ("iommu_mode", "PPN")
        if F.DDTP.fields[k].get(old) != F.DDTP.fields[k].get(new)
    }
    assert log.events == [RegWrite(rv.REG.DDTP, "ddtp", 8, old, new, changes)]
    log.clear()
    io.mmio_write(rv.REG.CAPABILITIES, 0)
    caps = io.caps.raw
    assert log.events == [RegWrite(0, "capabilities", 8, caps, caps, {})]
    log.clear()
    io.mmio_write(rv.REG.CQH, 0x0000_0003_0000_0001)  # cqh (read-only) and cqt
    assert [(e.name, e.changes) for e in log.of(RegWrite)] == [
        ("cqh", {}),
        ("cqt", {"cqt": (0, 3 & (io.cq.size - 1))}),
    ]
    log.clear()
    io.mmio_write(0xFF0, 1, 4)  # no register there: no event
    assert not log.events


def test_ats_translation_page_request_and_completion_events() -> None:
    """An ATS translation is a request and a response; a Page Request answered by the
    IOMMU sends a PRG response; an Invalidation Completion is an ats_completion event."""
    s = System()
    io = s.iommu
    s.ddt.set_dc(1, tc=TC_V)  # EN_ATS = 0
    log = rv.EventLog(
        kinds=["request", "response", "ats_message", "ats_completion", "check"],
        where=lambda e: not (isinstance(e, Check) and e.passed),
    )
    io.attach(log)
    pr = rv.PageRequest(1, 0x4000, last=True)
    prgr = io.page_request(pr)
    assert prgr is not None
    assert log.events == [
        RequestEvent(pr),
        Check("ATS_PRI", "", "a Page Request and DC.tc.EN_ATS is 0", False, "DC.tc.EN_ATS", 260),
        AtsMessageEvent(prgr),
        ResponseEvent(pr, prgr),
    ]
    log.clear()
    assert io.invalidation_completion(1, 1) == 0
    assert log.events == [
        Check(
            "ATS",
            "",
            "an Invalidation Completion and DC.tc.EN_ATS is 0",
            False,
            "DC.tc.EN_ATS",
            260,
        ),
        CompletionEvent(1, 1, 1, 0),
    ]
    assert io.stats.requests["PAGE_REQUEST"] == 1
    assert io.stats.requests["INVALIDATION_COMPLETION"] == 1


def test_a_d_update_and_mrif_accesses_are_events() -> None:
    """A write through a PTE without D: the AMO on the PTE (purpose AD) and a step; an
    MSI recorded into an MRIF: the MRIF read, its AMO and the notice MSI write."""
    s = System(params=rv.IommuParams(iotlb_size=0, mrif_by_iommu=True))
    g = s.gstage(SV39)
    spa = s.page()
    g.map(0x1000, spa, flags=F.PTE.mask_of("R", "W", "U", "A"))
    mrif, notice = s.page(), s.page()
    msipt = s.msipt(4)
    msipt.set_mrif(0, mrif, notice, 0x7FF)
    s.ddt.set_dc(
        1,
        tc=TC_V | F.DC_TC.GADE.mask,
        iohgatp=g.satp(2),
        msiptp=msipt.msiptp(),
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    log = rv.EventLog(kinds=["mem", "step", "read"])
    s.iommu.attach(log)
    s.t(1, 0x1000, rv.Access.WRITE)
    amo = [e for e in log.of(MemAccess) if e.op == "amo"]
    assert amo == [MemAccess(g.pte_addr(0x1000, 0), 8, "amo", "AD")]
    assert any(
        isinstance(e, Step) and e.text.startswith("A/D update of the G-stage PTE") for e in log
    )
    log.clear()
    s.t(1, 0x2800_0000, rv.Access.WRITE, length=4, data=5)
    mem = log.of(MemAccess)
    assert MemAccess(mrif, 8, "amo", "MRIF_WRITE") in mem
    assert mem[-1] == MemAccess(notice, 4, "write", "MSI")
    assert [r.structure for r in log.of(StructRead)] == ["MSI_PTE", "MRIF"]
    assert log.of(StructRead)[0].decode()["msipte.M"] == 1


def test_cache_events_hit_miss_fill_evict() -> None:
    """The DDT cache of capacity 1: a miss and a fill, a hit, then another device's
    fill evicts the first; the tags are the device_ids."""
    s = System(params=rv.IommuParams(ddt_cache_size=1, iotlb_size=0))
    s.ddt.set_dc(1, tc=TC_V)
    s.ddt.set_dc(2, tc=TC_V)
    log = rv.EventLog(kinds="cache", where=lambda e: e.cache == "DDT")
    s.iommu.attach(log)
    s.t(1, 0)
    s.t(1, 0)
    s.t(2, 0)
    assert log.events == [
        CacheEvent("DDT", "miss", (1,)),
        CacheEvent("DDT", "fill", (1,)),
        CacheEvent("DDT", "hit", (1,)),
        CacheEvent("DDT", "miss", (2,)),
        CacheEvent("DDT", "evict", (1,)),
        CacheEvent("DDT", "fill", (2,)),
    ]


# --------------------------------------------------------------------------
# observers
# --------------------------------------------------------------------------
def test_attach_detach_and_several_observers() -> None:
    """Observers get every event in attach order; detach stops them; misuse is named."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    a, b = rv.EventLog(), rv.EventLog()
    s.iommu.attach(a)
    s.iommu.attach(b)
    assert s.iommu.observers == (a, b)
    s.t(1, 0)
    assert a.events == b.events and len(a) > 3
    s.iommu.detach(a)
    s.t(1, 0)
    assert len(b) > len(a)
    s.iommu.detach(b)
    assert s.iommu.emit is None
    with pytest.raises(TypeError, match="observer"):
        s.iommu.attach(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="observer"):
        s.iommu.detach(b)


def test_event_log_filters() -> None:
    """EventLog: kinds and predicate at construction or per query, typed selection,
    indexing, and a bounded log keeping the newest events."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    log = rv.EventLog()
    small = rv.EventLog(maxlen=2)
    s.iommu.attach(log)
    s.iommu.attach(small)
    s.t(1, 0)
    assert [e.kind for e in small] == [e.kind for e in log[-2:]]
    assert log[0].kind == "request" and log.filter("response")[0] is log[-1]
    assert len(log.filter("mem", lambda e: e.purpose == "DC")) == 8
    assert [e.structure for e in log.of(StructRead)] == ["DDTE", "DDTE", "DC"]
    assert len(log.filter(["read", "cache"])) == 5  # and a DDT-cache miss and fill
    assert log.of(StructRead)[0].structure == "DDTE"
    with pytest.raises(ValueError, match="maxlen"):
        rv.EventLog(maxlen=0)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    """Every event written by JsonlLog reads back equal (schema version in each line),
    through a path or an open file."""
    s = System()
    sw.setup_cq(s)
    sw.setup_fq(s)
    g = s.gstage(SV39)
    g.map(0x1000, s.page())
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS, iohgatp=g.satp(1))
    log = rv.EventLog()
    path = tmp_path / "events.jsonl"
    buf = _io.StringIO()
    s.iommu.attach(log)
    with rv.JsonlLog(path) as jl:
        s.iommu.attach(jl)
        s.iommu.attach(rv.JsonlLog(buf))
        s.t(1, 0x1000)
        s.t(1, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION)
        s.t(7, 0)  # a fault: record and interrupt
        sw.submit(s, sw.iotinval_gvma(gscid=1), sw.ats_inval(rid=1))
        s.iommu.page_request(rv.PageRequest(1, 0x2000, last=True))
        s.iommu.invalidation_completion(1, 1)
    lines = path.read_text().splitlines()
    assert len(lines) == len(log) == jl.count
    assert all(json.loads(line)["v"] == SCHEMA_VERSION for line in lines)
    back = list(rv.read_jsonl(path))
    assert back == log.events  # as_dict decoded the structure reads on the way out
    assert list(rv.read_jsonl(_io.StringIO(buf.getvalue()))) == log.events
    kinds = {e.kind for e in back}
    assert kinds >= {"request", "response", "read", "check", "step", "cache", "mem"}
    assert kinds >= {"command", "reg_write", "queue_record", "interrupt", "ats_message"}
    assert "ats_completion" in kinds


def test_jsonl_reader_errors(tmp_path: Path) -> None:
    """Malformed lines, unknown kinds and newer schemas are named with their line."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v": 1, "kind": "step", "section": "A", "step": "1", "text": "x"}\n\n[1]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not a JSON object"):
        list(rv.read_jsonl(bad))
    with pytest.raises(ValueError, match="unknown event kind"):
        from_dict({"v": 1, "kind": "nope"})
    with pytest.raises(ValueError, match="newer"):
        from_dict({"v": SCHEMA_VERSION + 1, "kind": "step"})
    with pytest.raises(TypeError, match="path_or_file"):
        rv.JsonlLog(42)


def test_tracer_property_is_an_observer_and_accepts_old_callables() -> None:
    """iommu.tracer = Tracer() attaches it; an old-shape callable gets (section, step,
    text, addr, raw, layout) calls; None detaches."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V)
    t = Tracer()
    s.iommu.tracer = t
    assert s.iommu.tracer is t and s.iommu.observers == (t,)
    s.t(1, 0)
    assert t.events[0].section == "P2IOVA"
    calls: List[Tuple[Any, ...]] = []
    s.iommu.tracer = lambda *a: calls.append(a)
    assert len(s.iommu.observers) == 1
    s.t(1, 0)
    assert calls[0] == ("P2IOVA", "1", "ddtp.iommu_mode is 3LVL", None, None, None)
    s.iommu.tracer = None
    assert s.iommu.observers == () and s.iommu.tracer is None


def test_as_dict_of_api_objects_is_typed() -> None:
    """Requests, responses and fault records inside events become typed JSON objects."""
    req = rv.Request(1, 0x1000)
    d = RequestEvent(req).as_dict()
    assert d["req"]["type"] == "Request" and d["req"]["addr"] == 0x1000
    assert from_dict(json.loads(json.dumps(d))) == RequestEvent(req)
