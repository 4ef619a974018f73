"""Event-stream edges: the less common emission points, decoding and JSON forms."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List

import riscv_iommu as rv
from helpers import PD20, SV32, SV39, TC_EN_ATS, TC_PDTV, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu.checkpoint import Overlay as _Overlay
from riscv_iommu.events import (
    CacheEvent,
    CacheStats,
    Check,
    CommandEvent,
    InterruptEvent,
    MemAccess,
    StructRead,
    _jsonable,
    _rebuild,
)
from riscv_iommu.pdt import PC_RULES

sys.path.insert(0, str(Path(__file__).resolve().parent / "sw"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "gipc"))
import swhelpers as sw  # noqa: E402
from gipc_helpers import GipcSystem  # noqa: E402


def test_ats_store_without_hardware_ad_says_why() -> None:
    """An ATS request (No Write = 0) to a writable clean G-stage leaf without GADE: the
    guest-page fault the store would take, answered Success with R = W = 0 (#675), with
    its reason; the same for a first-stage leaf without SADE."""
    s = System()
    g = s.gstage(SV39)
    g.map(0x1000, s.page(), flags=F.PTE.mask_of("R", "W", "U", "A"))
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS, iohgatp=g.satp(1))
    log = rv.EventLog(kinds="check", where=lambda e: not e.passed)
    s.iommu.attach(log)
    rsp = s.t(1, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION)
    assert rsp.status == rv.Status.SUCCESS and not rsp.r and not rsp.w
    rule = "D=0 in a writable G-stage leaf and DC.tc.GADE=0: no hardware A/D update"
    assert log.events == [Check("PTW-G", "7", rule, False, "D", 23)]
    t = s.stage1()
    t.map(0x1000, s.page(), flags=F.PTE.mask_of("R", "W", "U", "A"))
    s.ddt.set_dc(2, tc=TC_V | TC_EN_ATS, fsc=t.satp())
    ex = s.iommu.explain(rv.Request(2, 0x1000, kind=rv.RequestKind.ATS_TRANSLATION))
    assert ex.fault is not None and ex.fault.cause == 15 and "DC.tc.SADE=0" in ex.reason


def test_command_operands_of_a_second_doubleword_and_a_fence_write_fault() -> None:
    """A command with an unexpected second doubleword shows it; IOFENCE.C whose write
    faults ends with outcome memory_fault."""
    s = System()
    sw.setup_cq(s)
    log = rv.EventLog(kinds="command")
    s.iommu.attach(log)
    d0, _ = sw.iodir_inval_ddt()
    sw.submit(s, (d0, 5))
    assert log.events[-1] == CommandEvent(
        3, 0, "IODIR.INVAL_DDT", {"PID": 0, "DV": 0, "DID": 0, "dword1": 5}, "illegal", (d0, 5)
    )
    s = System()
    sw.setup_cq(s)
    s.iommu.attach(log)
    target = s.page()
    s.mem.inject(target, 4, rv.MemoryFault.ACCESS_FAULT)
    sw.submit(s, sw.iofence_c(addr=target))
    assert log.events[-1].outcome == "memory_fault"
    s = System()
    sw.setup_cq(s)
    s.iommu.attach(log)
    sw.submit(s, (F.CMD.encode(opcode=100), 0))
    assert (log.events[-1].name, log.events[-1].outcome) == ("custom", "illegal")


def test_write_cqt_outside_mmio_runs_the_queue_at_once() -> None:
    """Iommu.write_cqt called directly (not through mmio_write) processes at once."""
    s = System()
    sw.setup_cq(s)
    sw.write_cmd(s, 0, sw.iotinval_vma())
    s.iommu.write_cqt(1)
    assert s.iommu.cq.head == 1
    s.iommu.flush_front_cache()
    assert not s.iommu.ioatc.front


def test_unmasking_after_the_source_cleared_sends_without_a_source() -> None:
    """A held MSI sent after its ipsr bit was cleared names no source."""
    s = System()
    sw.setup_fq(s)
    s.iommu.mmio_write(rv.REG.msi_vec_ctl(0), 1, 4)
    s.t(5, 0)
    s.iommu.mmio_write(rv.REG.IPSR, F.IPSR.fip.mask, 4)
    log = rv.EventLog(kinds="interrupt")
    s.iommu.attach(log)
    s.iommu.mmio_write(rv.REG.msi_vec_ctl(0), 0, 4)
    assert log.events == [InterruptEvent("", 0, False, False, 0, 0)]


def test_switching_to_msi_releases_the_wires_as_events() -> None:
    """fctl.WSI 1 -> 0 with a wire up: its release is an event."""
    s = System(caps=rv.Capabilities.full(igs=rv.IGS.BOTH), fctl=F.FCTL.WSI.mask)
    sw.setup_fq(s)
    s.t(5, 0)
    log = rv.EventLog(kinds="interrupt")
    s.iommu.attach(log)
    s.iommu.mmio_write(rv.REG.FCTL, 0, 4)
    assert log.events[0] == InterruptEvent("", 0, True, level=False)


def test_fault_queue_beyond_pas_is_a_write_event_then_fqmf() -> None:
    """A fault record whose address is beyond capabilities.PAS: the attempted write is
    an event, then fqmf is set."""
    s = System(caps=rv.Capabilities.full(pas=40))
    io = s.iommu
    io.mmio_write(rv.REG.FQB, F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=(1 << 28) - 1))
    io.mmio_write(rv.REG.FQCSR, F.FQCSR.encode(fqen=1), 4)
    io.fq.tail = 200  # the entry is past 2**40
    log = rv.EventLog(kinds="mem")
    io.attach(log)
    s.t(5, 0)
    addr = ((1 << 28) - 1 << 12) + 200 * 32
    assert log.events[-1] == MemAccess(addr, 32, "write", "FQ")
    assert io.mmio_read(rv.REG.FQCSR, 4) & F.FQCSR.fqmf.mask


def test_sv32x4_walk_and_walk_cache_hits_are_events() -> None:
    """GXL = 1: the 4-byte G-stage PTEs are G_PTE reads; a second request hits the
    G-stage walk cache for the first-stage table pages, each hit an event."""
    s = System(fctl=F.FCTL.GXL.mask, params=rv.IommuParams(iotlb_size=0))
    g = s.gstage(SV32, xlen32=True)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV32, xlen32=True)
    guest.back(0x4000_0000)
    s1.map(0x5000, 0x4000_0000)
    s.ddt.set_dc(1, tc=TC_V | F.DC_TC.SXL.mask, iohgatp=g.satp(1), fsc=s1.satp())
    log = rv.EventLog(kinds=["read", "cache"])
    s.iommu.attach(log)
    s.t(1, 0x5000)
    gptes = [e for e in log.of(StructRead) if e.structure == "G_PTE"]
    assert [(e.size, e.walk) for e in gptes] == [(4, "S_PTE")] * 4 + [(4, "final")] * 2
    assert gptes[0].decode() == F.PTE32.decode(gptes[0].raw)
    log.clear()
    s.t(1, 0x5000)
    hits = [e for e in log.of(CacheEvent) if e.cache == "GWALK"]
    assert [e.op for e in hits] == ["hit", "hit"]


def test_gipc_pc_misconfigured_by_a_base_rule() -> None:
    """[GIPC] a 32/64-byte PC that breaks a base PC rule names that rule."""
    s = GipcSystem("2024")
    s.device(3)
    s.pdtree.set_pc(5, fsc=F.PC_FSC.encode(MODE=7), iohgatp=s.vm(1).g.satp(1))
    ex = s.iommu.explain(rv.Request(3, 0x1000, process_id=5))
    assert ex.fault is not None and ex.fault.cause == 267 and ex.reason == PC_RULES[2]


def test_decoding_every_structure() -> None:
    """decode(): PC of each GIPC format, MSI PTE reserved bits, the MRIF doubleword."""
    pc = StructRead("PC", 0, (0x8 << 64) | 1, size=32, format="2025-32B")
    assert pc.decode()["PC.ta.V"] == 1 and pc.decode()["PC.fsc.PPN"] == 8
    pc64 = StructRead("PC", 0, 1 << (64 * 6), size=64, format="2024-64B")
    assert pc64.decode()["PC.ta.V"] == 1 and "reserved0" not in pc64.decode()
    pc64.raw |= 5
    pc64.fields = {}
    assert pc64.decode()["PC.reserved0"] == 5
    msi = StructRead("MSI_PTE", 0, F.MSIPTE0.encode(V=1, M=3) | (1 << 5), size=16)
    assert msi.decode()["msipte.reserved0"] == 1 << 5
    assert StructRead("MRIF", 0, 6).decode() == {"value": 6}
    dc = StructRead("DC", 0, 1 | (1 << 12) | (1 << 13), size=32, format="GIPC@12")
    assert dc.decode()["DC.tc.GIPC"] == 1 and dc.decode()["DC.tc.reserved"] == 1 << 13


def test_json_forms() -> None:
    """Objects with as_dict, plain dicts, unknown objects; stats reprs."""
    st = CacheStats()
    st.hits = 3
    assert _jsonable(st) == {"hits": 3, "misses": 0, "fills": 0, "evictions": 0, "invalidations": 0}
    assert _jsonable(object)[:7] == "<class "
    assert _rebuild({"a": [1, 2]}) == {"a": (1, 2)}
    assert repr(st) == "CacheStats(hits=3, misses=0, fills=0, evictions=0, invalidations=0)"
    assert repr(rv.Stats()).startswith("Stats({'caches'")
    assert st.hit_rate == 1.0 and CacheStats().hit_rate == 0.0


def test_overlay_reads_its_own_writes_and_forwards_qos() -> None:
    """explain's memory overlay: writes stay in it and reads see them; qos goes to the port."""

    class Port(rv.SparseMemory):
        __slots__ = ("qos",)

    port = Port()
    port.write_u64(0x1000, 0x1122_3344_5566_7788)
    o = _Overlay(port)
    o.write(0x1002, b"\xaa\xbb")
    assert o.read(0x1000, 4) == bytes([0x88, 0x77, 0xAA, 0xBB])
    assert port.read_u64(0x1000) == 0x1122_3344_5566_7788
    o.qos = (1, 2)
    assert port.qos == (1, 2) and o.qos == (1, 2)
    assert o.cas(0x1000, b"\x88", b"\x99") == b"\x88" and o.read(0x1000, 1) == b"\x99"


def test_cache_membership_and_group_invalidation() -> None:
    """Cache: membership; invalidating a group removes only its keys."""
    s = System()
    pdt = s.pdt(mode=PD20)
    for pid in (1, 2):
        pdt.set_pc(pid)
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    s.ddt.set_dc(2, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    for did, pid in ((1, 1), (1, 2), (2, 1)):
        s.t(did, 0, process_id=pid)
    c = s.iommu.ioatc
    assert 1 in c.ddt and (1, 2) in c.pdt and len(c.pdt) == 3
    assert c.pdt.invalidate_group(1) == 2 and list(c.pdt.entries) == [(2, 1)]
    assert c.pdt.stats.invalidations == 2


def test_observer_events_of_one_request_are_not_mixed(tmp_path: Path) -> None:
    """A JsonlLog left open on a file object keeps the file open after close()."""
    f = (tmp_path / "x.jsonl").open("w")
    log = rv.JsonlLog(f)
    log(CacheEvent("DDT", "hit", (1,)))
    log.close()
    assert not f.closed
    f.close()
    out: List[Any] = list(rv.read_jsonl(tmp_path / "x.jsonl"))
    assert out == [CacheEvent("DDT", "hit", (1,))]
