"""The page-table walks read in place agree with the walks through the memory port.

paging.py walks the 8-byte modes of a SparseMemory port by reading its pages in
place (``first_stage`` / ``second_stage`` inline, ``_g_read`` for the G-stage walks
of implicit reads, with one leaf test for the common case of PTW steps 3, 5 and 7)
and every other port through ``Iommu.rd`` (``_walk`` and the step-by-step
checks).  Both are the same process: for the same memory and requests they give
the same responses, the same A/D updates and the same statistics, with and
without caches and with an observer attached.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from test_properties import (
    HYP,
    NO_CACHES,
    PROBES,
    TARGETS,
    Scenario,
    check_response,
    corrupt,
    mutations,
    scenario_requests,
)

#: No cache at all: every translation walks (the G-stage walk cache too)
NO_WALK_CACHES: Dict[str, Any] = dict(NO_CACHES, gwalk_cache_size=0)


class Port:
    """A memory port that is not a SparseMemory (the walks read through ``Iommu.rd``)."""

    def __init__(self, mem: rv.SparseMemory) -> None:
        self.mem = mem

    def read(self, addr: int, size: int) -> bytes:
        return self.mem.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self.mem.write(addr, data)


def _run(variant: str, cached: bool, target: str, mutation: Any, reqs: List[rv.Request]) -> Any:
    params = rv.IommuParams() if cached else rv.IommuParams(**NO_WALK_CACHES)
    sc = Scenario(params)
    io = sc.s.iommu
    events: List[Any] = []
    if variant == "port":  # the same memory behind a port of another type
        io = rv.Iommu(Port(sc.s.mem), capabilities=sc.s.caps, params=params)
        io.mmio_write(rv.REG.DDTP, sc.s.ddt.ddtp)
    elif variant == "observed":
        io.attach(events.append)
    corrupt(sc, target, mutation)
    out = []
    for r in reqs + PROBES:
        rsp = io.translate(r)
        check_response(r, rsp)
        out.append(rsp)
    sc.s.mem.clear_injections()
    pages = {p: sc.s.mem.read(p << 12, 4096) for p in sc.s.mem.pages()}
    return out, pages, io.stats.as_dict()


@settings(HYP, max_examples=300)
@given(
    target=st.sampled_from(TARGETS),
    mutation=mutations,
    cached=st.booleans(),
    reqs=st.lists(scenario_requests, min_size=1, max_size=6),
)
def test_in_place_walks_match_the_port_walks(
    target: str, mutation: Tuple[str, Any], cached: bool, reqs: List[rv.Request]
) -> None:
    """One structure of a working two-stage configuration overwritten (PTEs of both
    stages, the PDT, the DC...): the in-place walks, the walks through a port of
    another type and the observed walks (no in-place G-stage shortcut) answer
    alike and leave the same memory (A/D updates) and cache statistics."""
    base = _run("in-place", cached, target, mutation, reqs)
    assert _run("port", cached, target, mutation, reqs) == base
    observed = _run("observed", cached, target, mutation, reqs)
    assert observed[:2] == base[:2]


def test_the_scenario_walks_in_place_and_through_the_port() -> None:
    """Sanity: the uncorrupted scenario translates alike both ways (and walks)."""
    reqs = [rv.Request(0x1_2345, 0x12_3456_7040, rv.Access.WRITE, process_id=0x4_5678)]
    base = _run("in-place", False, "dc", ("bitflip", []), reqs)
    assert base[0][0].status is rv.Status.SUCCESS
    assert _run("port", False, "dc", ("bitflip", []), reqs) == base


#: the PTE bits a walk tests: V R W X U G A D, RSW, the low PPN bits (superpage
#: alignment, Svnapot), a high PPN bit, the reserved bits, PBMT and N
BITS = [*range(0, 14), 30, 40, 52, *range(53, 64)]
PTES = [t for t in TARGETS if "pte" in t and not t.startswith(("pdte", "msipte"))]


def test_every_tested_pte_bit_flipped_walks_alike() -> None:
    """Each PTE of both stages (the first-stage PTEs, the G-stage PTEs of the data
    page and of the first-stage root table) with each bit the walks test flipped:
    the in-place walks and the walks through the port answer alike."""
    reqs = [
        rv.Request(0x1_2345, 0x12_3456_7040, rv.Access.READ, process_id=0x4_5678),
        rv.Request(0x1_2345, 0x12_3456_7040, rv.Access.WRITE, process_id=0x4_5678, priv=True),
        rv.Request(0x2_0041, 0x12_3456_7080, rv.Access.EXECUTE),
    ]
    assert len(PTES) == 9
    for target in PTES:
        for bit in BITS:
            mutation = ("bitflip", [bit])
            base = _run("in-place", False, target, mutation, reqs)
            assert _run("port", False, target, mutation, reqs) == base, (target, bit)


def test_implicit_read_through_a_g_stage_superpage() -> None:
    """The in-place G-stage walk of an implicit read (paging._g_read) with a 2 MiB leaf:
    aligned, the SPA of the page offset (as second_stage gives it); misaligned (PTW
    step 6), the whole process decides: the guest-page fault of an implicit read."""
    from riscv_iommu import paging
    from riscv_iommu._fault import Fault
    from riscv_iommu.host.tables import URWX, A, D, HostSpace, PageAllocator, PageTable
    from riscv_iommu.types import Cause

    mem = rv.SparseMemory()
    params = rv.IommuParams(gwalk_cache_size=0)
    io = rv.Iommu(mem, capabilities=rv.Capabilities.full(), params=params)
    g = PageTable(HostSpace(mem, PageAllocator(mem)), 8, stage="g")  # Sv39x4
    hgatp = g.satp(5)
    gpa = 0x4020_1238  # in the 2 MiB page at 0x4020_0000
    spa_base = 0x80_0000_0000  # 2 MiB aligned
    g.map(gpa & ~0x1F_FFFF, spa_base, 1 << 21, flags=URWX | A | D)
    assert io.gwalk.capacity == 0  # no walk cache: _g_read walks
    spa = paging.implicit_read(io, gpa, hgatp, 0, 0, "")
    assert spa == spa_base | (gpa & 0x1F_FFFF)
    assert paging.second_stage(io, gpa, hgatp, 0, True, False, 0)[0] == spa
    # the same leaf (V=1) with PPN[0] != 0: misaligned
    g.map(gpa & ~0x1F_FFFF, 0, 1 << 21, raw=(((spa_base >> 12) | 1) << 10) | URWX | A | D | 1)  # V
    try:
        paging.implicit_read(io, gpa, hgatp, 0, 0, "")
    except Fault as f:
        assert f.cause == Cause.READ_GUEST_PAGE_FAULT
        assert f.why[1:3] == ("6", "PPN")  # PTW step 6
        assert f.iotval2 == (gpa & ~3) | 1  # an implicit access for a first-stage read
    else:
        raise AssertionError("a misaligned G-stage superpage must fault")
