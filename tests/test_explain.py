"""iommu.explain (the steps and the reason of every fault cause) and snapshot/restore."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    PD8,
    PD20,
    SV39,
    TC_DPE,
    TC_EN_ATS,
    TC_PDTV,
    TC_V,
    System,
)
from riscv_iommu import formats as F
from riscv_iommu.ddt import DC_RULES
from riscv_iommu.events import Check
from riscv_iommu.host.tables import pte
from riscv_iommu.pdt import PC_RULES
from test_properties import (
    HYP,
    POOL_BASE,
    POOL_PAGES,
    capabilities,
    ddtp_values,
    fill_pool,
    injections,
    params,
    pool_requests,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "sw"))
import swhelpers as sw  # noqa: E402

Cause = rv.Cause
W, X = rv.Access.WRITE, rv.Access.EXECUTE
SRC = Path(__file__).resolve().parent.parent / "src" / "riscv_iommu"


# --------------------------------------------------------------------------
# every fault cause says why
# --------------------------------------------------------------------------
def _g(s: System, flags: int = F.PTE.mask_of("R", "W", "U", "A", "D"), **dc: Any) -> Any:
    """Device 1 with a G-stage table mapping 0x1000 (``flags``); returns the table."""
    g = s.gstage(SV39)
    g.map(0x1000, s.page(), flags=flags)
    s.ddt.set_dc(1, tc=TC_V | dc.pop("tc", 0), iohgatp=g.satp(1), **dc)
    return g


def _s1(s: System, flags: int, **dc: Any) -> Any:
    """Device 1 with a host first-stage table mapping 0x1000 (``flags``)."""
    t = s.stage1()
    t.map(0x1000, s.page(), flags=flags)
    s.ddt.set_dc(1, tc=TC_V | dc.pop("tc", 0), fsc=t.satp(), **dc)
    return t


def _raw_pte(s: System, value: int, stage: str = "s") -> None:
    """Device 1 whose first-stage (or G-stage) leaf for 0x1000 is ``value``."""
    if stage == "s":
        t = s.stage1()
        s.mem.write_u64(t.pte_addr(0x1000, 0), value)
        s.ddt.set_dc(1, tc=TC_V, fsc=t.satp())
    else:
        g = s.gstage(SV39)
        s.mem.write_u64(g.pte_addr(0x1000, 0), value)
        s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(1))


def _msi(s: System, pte0: int = 0, pte1: int = 0, **dc: Any) -> int:
    """Device 1 with a G-stage table and an MSI page table whose entry 0 is (pte0, pte1);
    returns the entry's address."""
    msipt = s.msipt(4)
    addr = msipt.set_raw(0, pte0, pte1)
    _g(s, msiptp=msipt.msiptp(), msi_addr_pattern=0x2800_0000 >> 12, **dc)
    return addr


def _pdt(s: System, guest: bool = False) -> Any:
    """Device 1 with a PD8 PDT (in guest memory behind a G-stage when ``guest``)."""
    if guest:
        g = s.gstage(SV39)
        p = s.pdt(s.guest(g), PD8)
        s.ddt.set_dc(1, tc=TC_V | TC_PDTV, iohgatp=g.satp(1), fsc=p.pdtp())
    else:
        p = s.pdt(mode=PD20)
        s.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=p.pdtp())
    return p


URWXAD = F.PTE.mask_of("R", "W", "X", "U", "A", "D")
RWXAD = F.PTE.mask_of("R", "W", "X", "A", "D")
MRIF0 = F.MSIPTE_MRIF0.encode(V=1, M=1, MRIF_Address=0x9000_0000 >> 9)
MRIF1 = F.MSIPTE_MRIF1.encode(NPPN=0x9000_1000 >> 12)


def _setup_and(setup: Callable[[System], Any], after: Callable[[System], Any]) -> Any:
    def f(s: System) -> None:
        setup(s)
        after(s)

    return f


def _pte_ppn(value: int) -> int:
    return pte(0x8_0000, value)


Case = Tuple[str, Callable[[System], Any], rv.Request, int, str]
CASES: List[Case] = [
    (
        "ddtp Off",
        lambda s: s.iommu.mmio_write(rv.REG.DDTP, 0),
        rv.Request(1, 0),
        256,
        "ddtp.iommu_mode is Off",
    ),
    (
        "DDT entry access fault",
        lambda s: s.mem.inject(s.ddt.root, 8, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0),
        257,
        "access fault reading the DDT entry at",
    ),
    (
        "DDT entry poisoned",
        lambda s: s.mem.inject(s.ddt.root, 8, rv.MemoryFault.DATA_CORRUPTION),
        rv.Request(1, 0),
        268,
        "poisoned data reading the DDT entry",
    ),
    ("DDTE not valid", lambda s: None, rv.Request(1, 0), 258, "(DDI[2]) has V=0"),
    ("DC not valid", lambda s: s.ddt.set_dc(2, tc=TC_V), rv.Request(1, 0), 258, "DC.tc.V is 0"),
    (
        "DDTE reserved",
        lambda s: s.mem.write_u64(s.ddt.root, 1 | 2),
        rv.Request(1, 0),
        259,
        "(DDI[2]) has reserved bits set",
    ),
    (
        "DC rule 12",
        lambda s: s.ddt.set_dc(1, tc=TC_V | TC_DPE),
        rv.Request(1, 0),
        259,
        DC_RULES[12],
    ),
    (
        "DC rule 1",
        lambda s: s.ddt.set_dc(1, tc=TC_V, reserved=1),
        rv.Request(1, 0),
        259,
        "DC.reserved has reserved bits set",
    ),
    (
        "DC rule 3",
        lambda s: s.ddt.set_dc(1, tc=TC_V | F.DC_TC.T2GPA.mask),
        rv.Request(1, 0),
        259,
        DC_RULES[3],
    ),
    (
        "DC rule 17",
        lambda s: s.ddt.set_dc(1, tc=TC_V, iohgatp=F.IOHGATP.encode(MODE=SV39, PPN=1)),
        rv.Request(1, 0),
        259,
        DC_RULES[17],
    ),
    (
        "DC access fault",
        lambda s: s.mem.inject(s.ddt.dc_addr(1), 8, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0),
        257,
        "access fault reading the device context",
    ),
    (
        "translated without EN_ATS",
        lambda s: s.ddt.set_dc(1, tc=TC_V),
        rv.Request(1, 0, kind=rv.RequestKind.TRANSLATED),
        260,
        "DC.tc.EN_ATS is 0 and the request is a Translated request",
    ),
    (
        "process_id without PDTV",
        lambda s: s.ddt.set_dc(1, tc=TC_V),
        rv.Request(1, 0, process_id=1),
        260,
        "the request has a process_id and DC.tc.PDTV is 0",
    ),
    (
        "device_id too wide for 1LVL",
        lambda s: s.iommu.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=2, PPN=1)),
        rv.Request(0x40, 0),
        260,
        "is wider than ddtp.iommu_mode 1LVL supports",
    ),
    (
        "Bare mode and a translated request",
        lambda s: s.iommu.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=1)),
        rv.Request(1, 0, kind=rv.RequestKind.TRANSLATED),
        260,
        "ddtp.iommu_mode is Bare and the request is a Translated request",
    ),
    (
        "supervisor without ENS",
        lambda s: _pdt(s).set_pc(3, fsc=s.stage1().satp()),
        rv.Request(1, 0, process_id=3, priv=True),
        260,
        "PC.ta.ENS is 0",
    ),
    (
        "PDT entry not valid",
        lambda s: _pdt(s),
        rv.Request(1, 0, process_id=3),
        266,
        "(PDI[2]) has V=0",
    ),
    (
        "PC not valid",
        lambda s: _pdt(s).set_pc(3, ta=0),
        rv.Request(1, 0, process_id=3),
        266,
        "PC.ta.V is 0",
    ),
    (
        "PC rule 2",
        lambda s: _pdt(s).set_pc(3, fsc=F.PC_FSC.encode(MODE=7)),
        rv.Request(1, 0, process_id=3),
        267,
        PC_RULES[2],
    ),
    (
        "PC rule 1",
        lambda s: _pdt(s).set_pc(3, ta=F.PC_TA.encode(V=1) | (1 << 5)),
        rv.Request(1, 0, process_id=3),
        267,
        "PC.ta has reserved bits set",
    ),
    (
        "PDT entry access fault",
        lambda s: s.mem.inject(_pdt(s).root, 4096, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0, process_id=3),
        265,
        "access fault reading the PDT entry",
    ),
    (
        "PDT poisoned",
        lambda s: s.mem.inject(_pdt(s).root, 4096, rv.MemoryFault.DATA_CORRUPTION),
        rv.Request(1, 0, process_id=3),
        269,
        "poisoned data reading the PDT entry",
    ),
    (
        "PDT page not in the guest",
        lambda s: _pdt(s, guest=True).space.gstage.unmap(0x1000_0000),
        rv.Request(1, 0, process_id=3),
        21,
        "G-stage PTE at level 0 has V=0",
    ),
    (
        "W without R",
        lambda s: _raw_pte(s, _pte_ppn(F.PTE.mask_of("V", "W", "X", "U", "A", "D"))),
        rv.Request(1, 0x1000),
        13,
        "PTE has W=1 and R=0: reserved encoding",
    ),
    (
        "W-only pointer",
        lambda s: _raw_pte(s, _pte_ppn(F.PTE.mask_of("V", "W"))),
        rv.Request(1, 0x1000),
        13,
        "PTE has W=1 and R=0: reserved encoding",
    ),
    (
        "reserved PTE bits",
        lambda s: _raw_pte(s, _pte_ppn(URWXAD | F.PTE.V.mask) | (1 << 55)),
        rv.Request(1, 0x1000),
        13,
        "PTE bits 58:54 are reserved",
    ),
    (
        "PBMT=3",
        lambda s: _raw_pte(s, _pte_ppn(URWXAD | F.PTE.V.mask) | F.PTE.PBMT.mask),
        rv.Request(1, 0x1000),
        13,
        "PBMT=3 is reserved",
    ),
    (
        "N at level 0 with a bad encoding",
        lambda s: _raw_pte(s, _pte_ppn(URWXAD | F.PTE.V.mask) | F.PTE.N.mask),
        rv.Request(1, 0x1000),
        13,
        "only 0b1000 (64 KiB) is defined",
    ),
    (
        "non-leaf with A",
        lambda s: _raw_pte(s, _pte_ppn(F.PTE.mask_of("V", "A"))),
        rv.Request(1, 0x1000),
        13,
        "A is reserved in a non-leaf PTE",
    ),
    (
        "user access to a supervisor page",
        lambda s: _s1(s, RWXAD),
        rv.Request(1, 0x1000),
        13,
        "U=0 for a user-mode access",
    ),
    (
        "no W",
        lambda s: _s1(s, F.PTE.mask_of("R", "U", "A", "D")),
        rv.Request(1, 0x1000, W),
        15,
        "W=0 for a write",
    ),
    (
        "no X",
        lambda s: _s1(s, F.PTE.mask_of("R", "U", "A")),
        rv.Request(1, 0x1000, X),
        12,
        "X=0 for an execute",
    ),
    (
        "A without SADE",
        lambda s: _s1(s, F.PTE.mask_of("R", "U")),
        rv.Request(1, 0x1000),
        13,
        "A=0 (accessed bit) and DC.tc.SADE=0: no hardware A/D update",
    ),
    (
        "not canonical",
        lambda s: _s1(s, URWXAD),
        rv.Request(1, 1 << 40),
        13,
        "IOVA bits 63:38 are not all equal: not canonical for Sv39",
    ),
    (
        "first-stage PTE access fault",
        lambda s: s.mem.inject(_s1(s, URWXAD).root, 4096, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0x1000, W),
        7,
        "access fault reading the first-stage PTE at",
    ),
    (
        "first-stage PTE poisoned",
        lambda s: s.mem.inject(_s1(s, URWXAD).root, 4096, rv.MemoryFault.DATA_CORRUPTION),
        rv.Request(1, 0x1000, X),
        274,
        "poisoned data reading the first-stage PTE",
    ),
    (
        "G-stage PTE access fault (read)",
        lambda s: s.mem.inject(_g(s).root, 16384, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0x1000),
        5,
        "access fault reading the G-stage PTE at",
    ),
    (
        "G-stage PTE access fault",
        lambda s: s.mem.inject(_g(s).root, 16384, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0x1000, X),
        1,
        "access fault reading the G-stage PTE at",
    ),
    (
        "GPA too wide",
        lambda s: _g(s),
        rv.Request(1, 1 << 41),
        21,
        "GPA bits 63:41 are not zero for Sv39x4",
    ),
    (
        "G-stage U=0",
        lambda s: _g(s, flags=RWXAD),
        rv.Request(1, 0x1000, W),
        23,
        "U=0 in a G-stage PTE: G-stage accesses are user-level",
    ),
    (
        "G-stage no X",
        lambda s: _g(s),
        rv.Request(1, 0x1000, X),
        20,
        "X=0 in the G-stage leaf for an execute",
    ),
    (
        "G-stage D without GADE",
        lambda s: _g(s, flags=F.PTE.mask_of("R", "W", "U", "A")),
        rv.Request(1, 0x1000, W),
        23,
        "D=0 for a write and DC.tc.GADE=0",
    ),
    (
        "G-stage leaf not valid",
        lambda s: _raw_pte(s, 0, "g"),
        rv.Request(1, 0x1000),
        21,
        "PTE at level 0 has V=0: not valid",
    ),
    (
        "misaligned superpage",
        lambda s: _raw_pte_level1(s),
        rv.Request(1, 0x1000),
        13,
        "superpage leaf at level 1 with PPN[8:0] not zero: misaligned",
    ),
    (
        "crossing a page",
        lambda s: s.ddt.set_dc(1, tc=TC_V),
        rv.Request(1, 0xFFC, length=8),
        4,
        "cross a 4-KiB page boundary",
    ),
    (
        "crossing a page (write)",
        lambda s: s.ddt.set_dc(1, tc=TC_V),
        rv.Request(1, 0xFFC, W, length=8),
        6,
        "cross a 4-KiB page boundary",
    ),
    (
        "MSI PTE not valid",
        lambda s: _msi(s, 0),
        rv.Request(1, 0x2800_0000, W, length=4),
        262,
        "has V=0",
    ),
    (
        "MSI PTE custom",
        lambda s: _msi(s, F.MSIPTE0.encode(V=1, C=1)),
        rv.Request(1, 0x2800_0000, W, length=4),
        263,
        "C=1: custom MSI PTE",
    ),
    (
        "MSI PTE reserved mode",
        lambda s: _msi(s, F.MSIPTE0.encode(V=1, M=2)),
        rv.Request(1, 0x2800_0000, W, length=4),
        263,
        "M=2 is a reserved MSI PTE mode",
    ),
    (
        "MSI execute",
        lambda s: _msi(s, F.MSIPTE0.encode(V=1, M=3, PPN=0x9000)),
        rv.Request(1, 0x2800_0000, X, length=4),
        1,
        "an execute of an MSI address",
    ),
    (
        "MSI PTE access fault",
        lambda s: s.mem.inject(_msi(s), 16, rv.MemoryFault.ACCESS_FAULT),
        rv.Request(1, 0x2800_0000, W, length=4),
        261,
        "access fault reading the MSI PTE",
    ),
    (
        "MSI PTE poisoned",
        lambda s: s.mem.inject(_msi(s), 16, rv.MemoryFault.DATA_CORRUPTION),
        rv.Request(1, 0x2800_0000, W, length=4),
        270,
        "poisoned data reading the MSI PTE",
    ),
    (
        "MRIF access fault",
        lambda s: _setup_and(
            lambda s: _msi(s, MRIF0, MRIF1),
            lambda s: s.mem.inject(0x9000_0000, 8, rv.MemoryFault.ACCESS_FAULT),
        )(s),
        rv.Request(1, 0x2800_0000, W, length=4, data=1),
        264,
        "access fault on the MRIF",
    ),
    (
        "MRIF poisoned",
        lambda s: _setup_and(
            lambda s: _msi(s, MRIF0, MRIF1),
            lambda s: s.mem.inject(0x9000_0000, 8, rv.MemoryFault.DATA_CORRUPTION),
        )(s),
        rv.Request(1, 0x2800_0000, W, length=4, data=1),
        271,
        "poisoned data reading the MRIF",
    ),
    (
        "data path error",
        lambda s: s.iommu.inject_datapath_error(),
        rv.Request(1, 0),
        272,
        "internal data path error was injected",
    ),
]


def _raw_pte_level1(s: System) -> None:
    t = s.stage1()
    s.mem.write_u64(t.pte_addr(0x1000, 1), pte(0x8_0001, URWXAD))
    s.ddt.set_dc(1, tc=TC_V, fsc=t.satp())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_explain_says_why(case: Case) -> None:
    """explain names the failed check with its rule in words, the offending field and the
    cause, and leaves the model as it was."""
    name, setup, req, cause, reason = case
    s = System(params=rv.IommuParams(mrif_by_iommu=True))
    setup(s)
    before = s.iommu.snapshot()
    ex = s.iommu.explain(req)
    assert ex.fault is not None and ex.fault.cause == cause, (name, ex.rsp)
    assert reason in ex.reason, (name, ex.reason)
    assert ex.fault.section and not ex.fault.passed
    assert ex.rsp.fault is not None and ex.rsp.fault.cause == cause
    text = str(ex)
    assert f"why: {ex.reason}" in text and f"stop and report cause {cause}" in text
    assert s.iommu.snapshot() == before
    assert s.iommu.translate(req) == ex.rsp  # explain had no side effect on the answer


def test_every_translation_cause_is_covered() -> None:
    """The table above reaches every cause a request can end with."""
    assert {c[3] for c in CASES} == {int(c) for c in Cause} - {
        Cause.IOMMU_MSI_WRITE_ACCESS_FAULT,  # an interrupt's, not a request's (next test)
    }


def test_msi_write_fault_says_why() -> None:
    """An interrupt MSI that faults (273) is counted and explained to observers."""
    s = System()
    sw.setup_fq(s)
    target = s.page()
    s.iommu.mmio_write(rv.REG.msi_addr(0), target)
    s.mem.inject(target, 4, rv.MemoryFault.ACCESS_FAULT)
    log = rv.EventLog(kinds="check", where=lambda e: not e.passed)
    s.iommu.attach(log)
    s.t(5, 0)
    assert log.events[-1] == Check(
        "INTERRUPTS", "", f"access fault writing the MSI to {target:#x}", False, "msi_addr", 273
    )
    assert s.iommu.stats.faults[273] == 1


def test_every_fault_raised_in_the_model_carries_a_reason() -> None:
    """Every Fault(...) and fault helper call in the package passes the reason argument."""
    missing = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            need = {"Fault": 3, "page_fault": 2, "access_fault": 2, "guest_page_fault": 5}
            n = need.get(node.func.id)
            if n is not None and len(node.args) + len(node.keywords) < n:
                missing.append(f"{path.name}:{node.lineno}")
    assert missing == []


def test_explain_of_a_success_lists_the_steps() -> None:
    """A successful translation: no fault, no reason, the steps end with step 20."""
    s = System()
    g = s.gstage(SV39)
    g.map(0x1000, s.page())
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(1))
    ex = s.iommu.explain(rv.Request(1, 0x1000))
    assert ex.fault is None and ex.reason == "" and ex.rsp.fault is None
    assert (ex.steps[-1].section, ex.steps[-1].step) == ("P2IOVA", "20")
    assert "why:" not in str(ex)
    d = ex.as_dict()
    assert d["reason"] == "" and d["response"]["type"] == "Response" and "check" not in d
    assert d["steps"][0]["section"] == "P2IOVA"


def test_explain_as_dict_carries_the_fault_record_and_the_check() -> None:
    s = System()
    ex = s.iommu.explain(rv.Request(1, 0))
    d = ex.as_dict()
    assert (
        d["response"]["fault"]["type"] == "FaultRecord" and d["response"]["fault"]["cause"] == 258
    )
    assert d["check"]["kind"] == "check" and d["reason"] == ex.reason


# --------------------------------------------------------------------------
# no side effects
# --------------------------------------------------------------------------
def _memory(mem: rv.SparseMemory) -> Dict[int, bytes]:
    return {k: bytes(v) for k, v in mem._pages.items()}


def fingerprint(io: rv.Iommu, mem: rv.SparseMemory) -> Tuple[Any, ...]:
    """Every state a testbench can observe: registers, caches (in LRU order),
    statistics, ATS invalidations, and memory."""
    regs = tuple(io.mmio_read(off, 4) for off in range(0, 1024, 4))
    caches = tuple(tuple(c.entries.items()) for c in io.ioatc.caches)
    inv = (dict(io.invalidations.outstanding), list(io.invalidations.timed_out))
    return regs, caches, tuple(io.ioatc.front.items()), io.stats.as_dict(), inv, _memory(mem)


def test_explain_leaves_memory_queues_caches_hpm_and_ports_unchanged() -> None:
    """A write through PTEs without A/D, with a fault queue, an HPM counter, interrupts
    and an ATS message port: explain changes none of them, and observers see nothing."""
    s = System(params=rv.IommuParams(iotlb_size=0))
    io = s.iommu
    sw.setup_fq(s)
    io.mmio_write(rv.REG.iohpmevt(1), F.IOHPMEVT.encode(eventID=1))
    t = s.stage1()
    t.map(0x1000, s.page(), flags=F.PTE.mask_of("R", "W", "U"))
    s.ddt.set_dc(1, tc=TC_V | F.DC_TC.SADE.mask, fsc=t.satp())
    calls: List[Any] = []
    io.on_ats_message = calls.append
    io.on_wired_interrupt = lambda *a: calls.append(a)
    seen = rv.EventLog()
    io.attach(seen)
    before = fingerprint(io, s.mem)
    snap = io.snapshot()
    ex = io.explain(rv.Request(1, 0x1000, W))
    assert ex.rsp.fault is None
    assert any(e.kind == "mem" and e.op == "amo" for e in ex.events)  # the A/D update
    ex2 = io.explain(rv.Request(2, 0))  # a fault: FQ record and interrupt, then undone
    assert ex2.fault is not None
    assert any(e.kind == "queue_record" for e in ex2.events)
    assert fingerprint(io, s.mem) == before and io.snapshot() == snap
    assert not calls and not seen.events
    assert io.observers == (seen,)


def test_explain_with_a_qos_port_restores_the_port_qos() -> None:
    """A port with a qos attribute sees the explain's reads with their QoS IDs, and gets
    its own value back."""

    class Port(rv.SparseMemory):
        __slots__ = ("qos",)

    mem = Port()
    mem.qos = "mine"
    io = rv.Iommu(mem)
    ex = io.explain(rv.Request(1, 0))
    assert ex.fault is not None and mem.qos == "mine"


def test_snapshot_restore_replays_exactly() -> None:
    """restore() goes back to the snapshot: the same requests and commands then give the
    same responses and leave the same state (memory restored by the test)."""
    s = System(params=rv.IommuParams(iotlb_size=4, ddt_cache_size=2))
    io = s.iommu
    sw.setup_cq(s)
    sw.setup_fq(s)
    g = s.gstage(SV39)
    for k in range(6):
        g.map(k << 12, s.page(), flags=F.PTE.mask_of("R", "W", "U"))
    s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS | F.DC_TC.GADE.mask, iohgatp=g.satp(1))
    s.t(1, 0)
    snap = io.snapshot()
    mem = _memory(s.mem)

    def run() -> List[Any]:
        out: List[Any] = [s.t(1, k << 12, W) for k in range(6)]
        out.append(s.t(3, 0))
        sw.submit(s, sw.ats_inval(rid=1), sw.iotinval_gvma(gscid=1))
        out.append(io.tick(5))
        out.append(s.t(1, 0, kind=rv.RequestKind.ATS_TRANSLATION))
        return out

    first = run()
    state = fingerprint(io, s.mem)
    io.restore(snap)
    s.mem._pages.clear()
    s.mem._pages.update({k: bytearray(v) for k, v in mem.items()})
    assert run() == first
    assert fingerprint(io, s.mem) == state
    io.restore(snap)  # a snapshot can be restored again
    assert io.snapshot() == snap
    with pytest.raises(TypeError, match="snap"):
        io.restore(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Request"):
        io.explain(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# property: over random systems
# --------------------------------------------------------------------------
QUEUES = 0x4000_0000  # FQ, CQ and the MSI target, below every PAS, outside the pool


def _random_system(
    caps: rv.Capabilities,
    prm: rv.IommuParams,
    fctl: int,
    ddtp: int,
    seed: int,
    inject: List[Any],
    queues: bool,
) -> Tuple[rv.Iommu, rv.SparseMemory]:
    mem = rv.SparseMemory()
    fill_pool(mem, seed, fctl)
    for off, size, fault in inject:
        mem.inject(POOL_BASE + off, size, fault)
    io = rv.Iommu(mem, capabilities=caps, fctl=fctl, params=prm)
    io.mmio_write(rv.REG.DDTP, ddtp)
    if queues:
        io.mmio_write(rv.REG.FQB, F.QUEUE_BASE.encode(LOG2SZ_1=1, PPN=QUEUES >> 12))
        io.mmio_write(rv.REG.FQCSR, F.FQCSR.encode(fqen=1, fie=1), 4)
        io.mmio_write(rv.REG.msi_addr(0), QUEUES + 0x1000)
        io.mmio_write(rv.REG.iohpmevt(1), F.IOHPMEVT.encode(eventID=1))
        io.mmio_write(rv.REG.iohpmevt(2), F.IOHPMEVT.encode(eventID=4))
    return io, mem


@settings(HYP, max_examples=150)
@given(
    caps=capabilities(),
    prm=params(),
    fctl=st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
    ddtp=ddtp_values,
    seed=st.integers(0, (1 << 64) - 1),
    inject=injections,
    queues=st.booleans(),
    warmup=st.lists(pool_requests, max_size=6),
    probe=pool_requests,
)
def test_explain_leaves_every_observable_state_unchanged(
    caps: rv.Capabilities,
    prm: rv.IommuParams,
    fctl: int,
    ddtp: int,
    seed: int,
    inject: List[Any],
    queues: bool,
    warmup: List[rv.Request],
    probe: rv.Request,
) -> None:
    """Random memory, registers, caches (warmed by random requests) and a random request:
    explain changes no register, cache, statistic, queue, counter or byte of memory, and
    its response is the one translate then gives."""
    io, mem = _random_system(caps, prm, fctl, ddtp, seed, inject, queues)
    for r in warmup:
        io.translate(r)
    before = fingerprint(io, mem)
    snap = io.snapshot()
    ex = io.explain(probe)
    assert fingerprint(io, mem) == before and io.snapshot() == snap
    assert (ex.rsp.fault is None) == (ex.fault is None)
    assert io.translate(probe) == ex.rsp


@settings(HYP, max_examples=100)
@given(
    caps=capabilities(),
    prm=params(),
    fctl=st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
    ddtp=ddtp_values,
    seed=st.integers(0, (1 << 64) - 1),
    queues=st.booleans(),
    before=st.lists(pool_requests, max_size=5),
    after=st.lists(pool_requests, min_size=1, max_size=6),
)
def test_restore_replays_random_systems(
    caps: rv.Capabilities,
    prm: rv.IommuParams,
    fctl: int,
    ddtp: int,
    seed: int,
    queues: bool,
    before: List[rv.Request],
    after: List[rv.Request],
) -> None:
    """Snapshot, run random requests, restore (memory too): the same requests give the
    same responses and the same final state."""
    io, mem = _random_system(caps, prm, fctl, ddtp, seed, [], queues)
    for r in before:
        io.translate(r)
    snap = io.snapshot()
    saved = _memory(mem)
    first = [io.translate(r) for r in after]
    state = fingerprint(io, mem)
    io.restore(snap)
    mem._pages.clear()
    mem._pages.update({k: bytearray(v) for k, v in saved.items()})
    assert [io.translate(r) for r in after] == first
    assert fingerprint(io, mem) == state


def test_random_system_helper_uses_the_pool() -> None:
    """The pool of the random systems is where the probes go (sanity of the fixture)."""
    assert POOL_PAGES > 0 and QUEUES + 0x2000 < POOL_BASE


def test_cli_explain_says_why_and_changes_nothing() -> None:
    """`riscv-iommu explain` of a fault ends with the reason (text and JSON)."""
    import io as _io

    from riscv_iommu.cli import main

    out = _io.StringIO()
    assert main(["explain", "--no-color", "--pasid", "7"], stream=out) == 0
    assert out.getvalue().rstrip().endswith("why: PC.ta.V is 0")
    out = _io.StringIO()
    assert main(["explain", "--json", "--pasid", "7"], stream=out) == 0
    import json

    assert json.loads(out.getvalue())["reason"] == "PC.ta.V is 0"


def test_every_iommu_attribute_is_classified_for_checkpoints() -> None:
    """Each attribute of an Iommu is model state (checkpointed), a component (all its
    attributes checkpointed) or listed as not state: a new attribute must be classified."""
    from riscv_iommu.checkpoint import COMPONENTS, NOT_STATE, STATE

    io = rv.Iommu(rv.SparseMemory())
    io.attach(rv.EventLog())
    from riscv_iommu.trace import Tracer

    io.tracer = Tracer()
    known = set(STATE) | set(COMPONENTS) | NOT_STATE
    # the compiled build's Iommu has no __dict__: mypyc lists its attributes
    attrs = set(getattr(type(io), "__mypyc_attrs__", ())) or set(vars(io))
    assert attrs - known == set()
    assert not (set(STATE) | set(COMPONENTS)) & NOT_STATE
