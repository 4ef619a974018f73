"""Cached structures meet changed memory (issue 9, item 9).

Spec, "Caching in-memory data structures" / "Data structure entry" NOTE: "If a data
structure entry is changed, the IOMMU may use the old value of the entry or the new value
of the entry and the choice is unpredictable until software uses the commands outlined in
CACHING to invalidate any previous copies ... These are the only behaviors expected."

Software may change a DC before it sends IODIR.INVAL_DDT; meanwhile the old DC may have
left the DDT cache (with default parameters, 69 devices sharing one PDT evict a 64-entry
DDT cache) while its PCs are still in the PDT cache.  A cached PC is valid only for a DC
that locates and checks it alike (same pdtp, iohgatp, SBE, SXL, GADE and [GIPC] GIPC bit):
otherwise the model locates the PC again under the new DC, i.e. it uses the new value.
The first tests reproduce the crashes the issue reports (KeyError from S_MODES with a
changed SXL, from G_MODES with a non-GIPC PC under GIPC); the property test changes DCs,
PCs, PTEs and MSI PTEs at random without invalidation, across many devices sharing PDTs,
under every cache capacity (0, 1, small, default).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_campaign as fc
import riscv_iommu as rv
from helpers import PD8, PD20, SV39, SV48, TC_GADE, TC_PDTV, TC_SBE, TC_SXL, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu import gipc
from riscv_iommu.host.tables import ProcessDirectory

Cause = rv.Cause
CA = rv.Status.COMPLETER_ABORT
PID = 5
GIPC_TC = 1 << rv.IommuParams().gipc_tc_bit  # DC.tc.GIPC at its default position
N_DEVICES = 69  # more than the default 64-entry DDT cache


class SharedPdt:
    """69 devices whose DCs select one PD20 PDT in host memory; PC(5) -> Sv48 table mapping
    IOVAs 0x1000 and 0x2000 to ``data``.  Every device has translated 0x1000 with
    process_id 5, so the PDT cache holds 69 PCs and the DDT cache the last 64 DCs
    (devices 0-4 were evicted)."""

    def __init__(self, params: Optional[Dict[str, Any]] = None, **caps: Any) -> None:
        s = self.s = System(params=rv.IommuParams(**(params or {})), **caps)
        self.s1 = s.stage1(mode=SV48)
        self.data = s.page()
        self.s1.map(0x1000, self.data)
        self.s1.map(0x2000, self.data)
        self.pdt = s.pdt(mode=PD20)
        self.pdt.set_pc(PID, fsc=self.s1.satp(), pscid=3)
        for d in range(N_DEVICES):
            s.ddt.set_dc(d, tc=TC_V | TC_PDTV, fsc=self.pdt.pdtp())
        for d in range(N_DEVICES):
            assert s.t(d, 0x1000, process_id=PID).addr == self.data
        io = s.iommu
        assert (len(io.ddt_cache), len(io.pdt_cache)) == (64, N_DEVICES)
        assert 0 not in io.ddt_cache and (0, PID) in io.pdt_cache

    def change_dc0(self, tc: int = TC_V | TC_PDTV, **dc: Any) -> None:
        """Software rewrites device 0's DC and sends no IODIR.INVAL_DDT."""
        dc.setdefault("fsc", self.pdt.pdtp())
        self.s.ddt.set_dc(0, tc=tc, **dc)


NO_CACHES = dict(
    ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=0
)


def uncached_response(io: rv.Iommu, req: rv.Request) -> rv.Response:
    """What an IOMMU without caches answers over the same memory and registers: the
    response made of the new values."""
    fresh = rv.Iommu(
        io.mem,
        capabilities=io.caps,
        fctl=io.fctl,
        params=dataclasses.replace(io.params, **NO_CACHES),
    )
    fresh.mmio_write(rv.REG.DDTP, io.ddtp)
    return fresh.translate(req)


def _new_value(sc: SharedPdt) -> rv.Response:
    """Device 0 translates a new IOVA (no IOTLB entry) with process_id 5; the response must
    be the one of an uncached IOMMU (the PC located again under the changed DC)."""
    req = rv.Request(0, 0x2000, process_id=PID)
    rsp = sc.s.iommu.translate(req)
    new = uncached_response(sc.s.iommu, req)
    assert (rsp.status, rsp.addr, rsp.fault) == (new.status, new.addr, new.fault)
    return rsp


def test_cached_pc_with_a_dc_whose_sxl_changed() -> None:
    """Issue 9: a cached Sv48 PC used under a DC with SXL = 1 raised KeyError (S_MODES[1][9]).
    Located again under SXL = 1, the PC's Sv48 mode is unsupported: PDT entry misconfigured
    (PC check 4)."""
    sc = SharedPdt(params={"gxl_writable": True})
    sc.change_dc0(TC_V | TC_PDTV | TC_SXL)
    rsp = _new_value(sc)
    assert rsp.status == CA
    assert rsp.fault is not None and rsp.fault.cause == Cause.PDT_ENTRY_MISCONFIGURED


def test_cached_base_pc_with_a_dc_that_turned_gipc_on() -> None:
    """Issue 9: a cached 16-byte PC (no iohgatp) used under a DC with DC.tc.GIPC = 1 raised
    KeyError (G_MODES[gxl][-1]).  Located again in the GIPC format (64-byte PCs, PDI[0] of
    6 bits: another address), the entry is zero: PDT entry not valid."""
    sc = SharedPdt(gipc=True)
    sc.change_dc0(TC_V | TC_PDTV | GIPC_TC)
    rsp = _new_value(sc)
    assert rsp.status == CA
    assert rsp.fault is not None and rsp.fault.cause == Cause.PDT_ENTRY_NOT_VALID


def test_cached_gipc_pc_with_a_dc_that_turned_gipc_off() -> None:
    """The other way round: a cached GIPC PC (its iohgatp selects the G-stage) is not used
    under a DC without DC.tc.GIPC; the base-format PC of the new pdtp is located."""
    s = System(caps=rv.Capabilities.full(gipc=True), params=rv.IommuParams(ddt_cache_size=1))
    fmt = gipc.pc_format(s.iommu)
    assert fmt is not None
    g = s.gstage(SV39)
    spa = s.page()
    g.map(0x4000_0000, spa)
    s1 = s.stage1(mode=SV39)  # 2024: first-stage tables at SPAs
    s1.map(0x1000, 0x4000_0000)
    s1.map(0x2000, 0x4000_0000)
    gpdt = ProcessDirectory(s.host, PD20, fmt=fmt)
    gpdt.set_pc(PID, fsc=s1.satp(), iohgatp=g.satp(7))
    s.ddt.set_dc(0, tc=TC_V | TC_PDTV | GIPC_TC, fsc=gpdt.pdtp())
    s.ddt.set_dc(1, tc=TC_V)
    assert s.t(0, 0x1000, process_id=PID).addr == spa
    assert s.t(1, 0x1000).status == rv.Status.SUCCESS  # evicts device 0's DC
    base_s1 = s.stage1(mode=SV39)
    host_page = s.page()
    base_s1.map(0x2000, host_page)
    pdt = s.pdt(mode=PD20)
    pdt.set_pc(PID, fsc=base_s1.satp())
    s.ddt.set_dc(0, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())  # no IODIR.INVAL_DDT
    rsp = s.t(0, 0x2000, process_id=PID)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, host_page)


def test_cached_pc_with_a_dc_whose_sbe_changed() -> None:
    """DC.tc.SBE selects the byte order of the PDT: a PC read little-endian is not the PC
    of a big-endian DC.  The big-endian reading of the PD20 root entry has V = 0."""
    sc = SharedPdt(params={"be_writable": True})
    sc.change_dc0(TC_V | TC_PDTV | TC_SBE)
    rsp = _new_value(sc)
    assert rsp.fault is not None and rsp.fault.cause == Cause.PDT_ENTRY_NOT_VALID


def test_cached_pc_with_a_dc_whose_pdtp_changed() -> None:
    """A DC pointing at another PDT locates the PC there (the old PC belongs to another
    table): the translation of the new PC's first-stage table."""
    sc = SharedPdt()
    s = sc.s
    other = s.stage1(mode=SV39)
    page = s.page()
    other.map(0x2000, page)
    pdt8 = s.pdt(mode=PD8)
    pdt8.set_pc(PID, fsc=other.satp(), pscid=9)
    sc.change_dc0(fsc=pdt8.pdtp())
    rsp = _new_value(sc)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, page)


def test_cached_pc_with_a_dc_whose_iohgatp_changed() -> None:
    """With DC.iohgatp no longer Bare the PDT addresses are GPAs (GET_PC step 3): the
    G-stage does not map the PDT, a guest-page fault of the request's access type."""
    sc = SharedPdt()
    g = sc.s.gstage(SV39)
    sc.change_dc0(iohgatp=g.satp(1))
    rsp = _new_value(sc)
    f = rsp.fault
    assert f is not None and f.cause == Cause.READ_GUEST_PAGE_FAULT
    assert f.iotval2 >> 2 << 2 == sc.pdt.root >> 2 << 2  # the GPA of the PD20 root entry


def test_cached_pc_with_a_dc_whose_gade_changed() -> None:
    """DC.tc.GADE is an input of the PDT walk (A updates of the G-stage): a change also
    locates the PC again; with a Bare G-stage the same PC is found."""
    sc = SharedPdt()
    sc.change_dc0(TC_V | TC_PDTV | TC_GADE)
    assert _new_value(sc).addr == sc.data


def test_equal_dc_read_again_still_hits_the_pdt_cache() -> None:
    """The tag compares values: an evicted DC read again unchanged finds its PCs (no PDT
    walk, HPM event 6), while the DDT is walked (event 5)."""
    sc = SharedPdt()
    io = sc.s.iommu
    io.mmio_write(rv.REG.iohpmevt(1), F.IOHPMEVT.encode(eventID=6))
    io.mmio_write(rv.REG.iohpmevt(2), F.IOHPMEVT.encode(eventID=5))
    rsp = sc.s.t(0, 0x2000, process_id=PID)
    assert rsp.addr == sc.data
    assert io.mmio_read(rv.REG.iohpmctr(1)) == 0  # PDT cache hit
    assert io.mmio_read(rv.REG.iohpmctr(2)) == 1  # the DC was walked again


def test_stale_pc_replaced_not_duplicated() -> None:
    """A PC located again under a changed DC replaces the cached one (one entry per
    device_id and process_id)."""
    sc = SharedPdt()
    other = sc.s.pdt(mode=PD8)
    other.set_pc(PID, fsc=sc.s1.satp(), pscid=3)
    sc.change_dc0(fsc=other.pdtp())
    sc.s.t(0, 0x2000, process_id=PID)
    io = sc.s.iommu
    assert len(io.pdt_cache) == N_DEVICES
    assert io.pdt_cache[(0, PID)][1][3] == other.pdtp()


# --------------------------------------------------------------------------
# Other cached structures combined with a changed DC: old or new, never an exception
# --------------------------------------------------------------------------
def _old_or_new(
    build: Callable[[], Tuple[System, rv.Request]], change: Callable[..., None]
) -> None:
    """Translate, change memory without invalidation, evict the DC, translate again: the
    response is the old one or the one of an uncached IOMMU (the new values)."""
    s, req = build()
    old = s.iommu.translate(req)
    change(s)
    s.iommu.ddt_cache.clear()  # the DC left the DDT cache (eviction)
    new = uncached_response(s.iommu, req)
    got = s.iommu.translate(req)
    key = (got.status, got.addr, got.fault and got.fault.cause, got.is_msi)
    assert key in {(r.status, r.addr, r.fault and r.fault.cause, r.is_msi) for r in (old, new)}, (
        old,
        new,
        got,
    )


def _two_stage() -> Tuple[System, rv.Request]:
    s = System()
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39)
    data = s.page()
    guest.back(0x4000_0000, data)
    s1.map(0x1000, 0x4000_0000)
    msipt = s.msipt(8)
    msipt.set_flat(1, s.page())
    s1.map(0x2800_1000, 0x2800_1000)
    s.ddt.set_dc(
        0,
        tc=TC_V,
        iohgatp=g.satp(4),
        fsc=s1.satp(),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0x7,
        msi_addr_pattern=0x2800_0,
    )
    s.g = g  # type: ignore[attr-defined]
    return s, rv.Request(0, 0x1000)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.ddt.set_dc(0, tc=TC_V | TC_SXL), id="sxl"),
        pytest.param(lambda s: s.ddt.set_dc(0, tc=TC_V, iohgatp=0), id="iohgatp-bare"),
        pytest.param(lambda s: s.ddt.set_dc(0, tc=TC_V, fsc=0, iohgatp=s.g.satp(4)), id="fsc"),
        pytest.param(lambda s: s.ddt.set_dc(0, tc=TC_V | TC_PDTV, fsc=3 << 60), id="pdtv"),
    ],
)
def test_iotlb_and_walk_caches_with_a_changed_dc(change: Callable[..., None]) -> None:
    """IOTLB and G-stage walk cache entries (tagged GSCID/PSCID) used with a DC changed
    without invalidation: the old or the new translation."""
    _old_or_new(_two_stage, change)


def test_msi_pte_cache_with_a_changed_msiptp() -> None:
    """A cached MSI PTE (tag GSCID + GPA page) with a DC whose msiptp now points at another
    MSI page table: the old or the new translation, never an exception."""

    def build() -> Tuple[System, rv.Request]:
        s, _ = _two_stage()
        return s, rv.Request(0, 0x2800_1000, rv.Access.WRITE, length=4)

    def change(s: System) -> None:
        other = s.msipt(8)
        other.set_flat(1, s.page())
        s.ddt.set_dc(
            0,
            tc=TC_V,
            iohgatp=s.g.satp(4),  # type: ignore[attr-defined]
            msiptp=other.msiptp(),
            msi_addr_mask=0x7,
            msi_addr_pattern=0x2800_0,
        )

    _old_or_new(build, change)


def test_debug_interface_with_a_stale_pc() -> None:
    """The debug interface runs the same process: a stale PC under a changed SXL reports a
    fault in tr_response (and the fault queue), the register write returns normally."""
    sc = SharedPdt(params={"gxl_writable": True})
    sc.change_dc0(TC_V | TC_PDTV | TC_SXL)
    io = sc.s.iommu
    io.mmio_write(rv.REG.TR_REQ_IOVA, 0x2000)
    ctl = F.TR_REQ_CTL.encode(Go_Busy=1, NW=1, PID=PID, PV=1, DID=0)
    io.mmio_write(rv.REG.TR_REQ_CTL, ctl)
    assert io.mmio_read(rv.REG.TR_RESPONSE) == F.TR_RESPONSE.fault.mask
    assert io.mmio_read(rv.REG.TR_REQ_CTL) & 1 == 0


# --------------------------------------------------------------------------
# The property: random changes without invalidation, every cache capacity
# --------------------------------------------------------------------------
CAPACITIES = st.sampled_from([0, 1, 3, -1])  # -1: the default


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    caps=st.sampled_from(
        [rv.Capabilities.full(), rv.Capabilities.full(gipc=True), rv.Capabilities.full(end=False)]
    ),
    ddt=CAPACITIES,
    pdt=CAPACITIES,
    iotlb=CAPACITIES,
    msi=CAPACITIES,
    gwalk=CAPACITIES,
    n_devices=st.sampled_from([3, 12, 70]),
    revision=st.sampled_from(["2024", "2025"]),
    seed=st.integers(0, 2**32),
)
def test_random_changes_without_invalidation_never_crash(
    caps: rv.Capabilities,
    ddt: int,
    pdt: int,
    iotlb: int,
    msi: int,
    gwalk: int,
    n_devices: int,
    revision: str,
    seed: int,
) -> None:
    """Random DC / PC / PTE / MSI PTE / DDT and PDT entry changes without the invalidation
    the spec asks for (shaped as other legal values of the field, bit flips or random data),
    across up to 70 devices sharing process directories, with every cache capacity: each
    request gets a spec status and a well-formed fault record (check_response), never an
    exception, and every cache stays within its capacity."""
    defaults = rv.IommuParams()
    sizes = {
        name: getattr(defaults, name) if cap < 0 else cap
        for name, cap in (
            ("ddt_cache_size", ddt),
            ("pdt_cache_size", pdt),
            ("iotlb_size", iotlb),
            ("msi_cache_size", msi),
            ("gwalk_cache_size", gwalk),
        )
    }
    params = rv.IommuParams(
        **sizes, gxl_writable=True, be_writable=True, gipc_revision=revision, mrif_by_iommu=True
    )
    fc.run(seed, 250, "stale", caps=caps, params=params, n_devices=n_devices)
