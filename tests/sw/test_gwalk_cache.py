"""The G-stage walk cache: G-stage translations of the pages implicit reads use
(first-stage page tables, PDT pages), tagged GSCID + GPA page, dropped by IOTINVAL.GVMA."""

from __future__ import annotations

from typing import Any, Tuple

import pytest

import riscv_iommu as rv
from helpers import PD20, SV39, TC_PDTV, TC_V, System
from riscv_iommu.host.tables import PageTable
from swhelpers import iotinval_gvma, iotinval_vma, setup_cq, submit


def _scene(**params: Any) -> Tuple[System, PageTable, PageTable, int, int]:
    """A device whose first-stage table lives in guest memory; the IOTLB is off so every
    request walks the first stage."""
    p = {"iotlb_size": 0}
    p.update(params)
    s = System(params=rv.IommuParams(**p))
    g = s.gstage(SV39)
    guest = s.guest(g)
    s1 = s.stage1(guest, SV39)
    data = s.page()
    guest.back(0x4000_0000, data)
    s1.map(0x1000, 0x4000_0000)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(7), fsc=s1.satp())
    setup_cq(s)
    return s, g, s1, data, s1.root


def _move_leaf_table(s: System, g: PageTable, s1: PageTable) -> None:
    """Point the G-stage mapping of the first-stage root page at an empty page."""
    g.map(s1.root, s.page())


def test_stale_until_gvma_of_the_gscid() -> None:
    """A G-stage change under a page-table page is not seen until IOTINVAL.GVMA (GV=1, the
    GSCID); IOTINVAL.VMA and a GVMA of another GSCID leave the cached translation."""
    s, g, s1, data, _ = _scene()
    assert s.t(1, 0x1008).addr == data | 8
    _move_leaf_table(s, g, s1)
    assert s.t(1, 0x1008).addr == data | 8  # stale: the root's old SPA is cached
    submit(s, iotinval_vma(gscid=7), iotinval_gvma(gscid=8))
    assert s.t(1, 0x1008).addr == data | 8
    submit(s, iotinval_gvma(gscid=7))
    assert s.t(1, 0x1008).fault is not None  # the root now reads an empty page: page fault


def test_gvma_with_the_page_address_and_gv0() -> None:
    """GVMA GV=1 AV=1 for the root's GPA page, and GV=0, both drop the entry."""
    for cmd in (iotinval_gvma(gscid=7, addr=0), iotinval_gvma()):
        s, g, s1, data, root = _scene()
        s.t(1, 0x1000)
        _move_leaf_table(s, g, s1)
        if cmd[0] >> 10 & 1:  # AV: name the root's GPA page
            cmd = iotinval_gvma(gscid=7, addr=root)
        submit(s, cmd)
        assert s.t(1, 0x1000).fault is not None


@pytest.mark.parametrize("size", [0, 1])
def test_capacity(size: int) -> None:
    """Capacity 0 walks every time; capacity 1 keeps only the last page translated."""
    s, g, s1, data, _ = _scene(gwalk_cache_size=size)
    s.t(1, 0x1000)
    assert len(s.iommu.gwalk_cache) == size
    _move_leaf_table(s, g, s1)
    rsp = s.t(1, 0x1000)
    assert (rsp.fault is not None) == (size <= 1)


def test_pdt_pages_are_cached_too() -> None:
    """The G-stage translations of PDT pages (base spec, PDT in guest memory) are cached."""
    s = System(params=rv.IommuParams(iotlb_size=0, pdt_cache_size=0))
    g = s.gstage(SV39)
    guest = s.guest(g)
    pdt = s.pdt(guest, PD20)
    pdt.set_pc(3)
    s.ddt.set_dc(1, tc=TC_V | TC_PDTV, iohgatp=g.satp(4), fsc=pdt.pdtp())
    g.map(0x5000, s.page())
    assert s.t(1, 0x5000, process_id=3).fault is None
    assert {k[0] for k in s.iommu.gwalk_cache} == {4}
    assert len(s.iommu.gwalk_cache) == 3  # the three PDT pages


def test_fctl_change_drops_the_walk_cache() -> None:
    """An fctl.GXL / BE change drops the G-stage walk cache with the others."""
    s, g, s1, data, _ = _scene(gxl_writable=True)
    s.t(1, 0x1000)
    assert s.iommu.gwalk_cache
    s.iommu.mmio_write(rv.REG.FCTL, 4, 4)
    assert not s.iommu.gwalk_cache


def test_wide_range_invalidation_visits_only_the_gscid() -> None:
    """A GPA range with more pages than the GSCID has entries scans that GSCID's entries."""
    s, g, s1, data, _ = _scene()
    s.t(1, 0x1000)
    n = len(s.iommu.gwalk_cache)
    s.iommu.ioatc.gwalk.inval_gvma(True, 8, 0, (1 << 64) - 1)
    assert len(s.iommu.gwalk_cache) == n
    s.iommu.ioatc.gwalk.inval_gvma(True, 7, 0, (1 << 64) - 1)
    assert not s.iommu.gwalk_cache
