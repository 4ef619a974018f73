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

import random
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
    mutations,
    scenario_requests,
    shaped,
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


def _corrupt(sc: Scenario, target: str, mutation: Tuple[str, Any]) -> None:
    addr, size = sc.targets()[target]
    mem = sc.s.mem
    kind, arg = mutation
    if kind == "bitflip":
        data = bytearray(mem.read(addr, size))
        for b in arg:
            b %= size * 8
            data[b // 8] ^= 1 << (b % 8)
        mem.write(addr, bytes(data))
    elif kind == "random":
        mem.write(addr, random.Random(arg).randbytes(size))
    elif kind == "zero":
        mem.write(addr, bytes(size))
    elif kind == "shaped":
        mem.write(addr, b"".join(w.to_bytes(8, "little") for w in shaped(target, arg))[:size])
    else:
        mem.inject(addr, size, arg)


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
    _corrupt(sc, target, mutation)
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
