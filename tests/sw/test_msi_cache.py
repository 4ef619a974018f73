"""The MSI PTE cache: tagged by GSCID and GPA page, invalidated by IOTINVAL.GVMA."""

from __future__ import annotations

from typing import Any, Tuple

import pytest

import riscv_iommu as rv
from helpers import SV39, TC_V, System
from swhelpers import iotinval_gvma, iotinval_vma, setup_cq, submit

MSI = 0x2800_0000


def _scene(**params: Any) -> Tuple[System, Any]:
    s = System(params=rv.IommuParams(**params))
    pts = {}
    for did, gscid in ((1, 10), (2, 20)):
        g = s.gstage(SV39)
        msipt = s.msipt(4)
        msipt.set_flat(0, 0x2400_0000 + did * 0x1000)
        msipt.set_flat(1, 0x2500_0000 + did * 0x1000)
        s.ddt.set_dc(
            did,
            tc=TC_V,
            iohgatp=g.satp(gscid),
            msiptp=msipt.msiptp(),
            msi_addr_mask=0x1,
            msi_addr_pattern=MSI >> 12,
        )
        pts[did] = msipt
    setup_cq(s)
    return s, pts


def msi(s: System, did: int, page: int = 0) -> int:
    rsp = s.t(did, MSI + page * 0x1000 + 4, rv.Access.WRITE, length=4)
    assert rsp.is_msi and rsp.fault is None, rsp
    return rsp.addr


def test_cached_msi_pte_is_stale_until_gvma_of_its_gscid() -> None:
    """A changed MSI PTE is used stale until IOTINVAL.GVMA for its GSCID; IOTINVAL.VMA and a
    GVMA of another GSCID do not drop it."""
    s, pts = _scene()
    assert msi(s, 1) == 0x2400_1004 and msi(s, 2) == 0x2400_2004
    pts[1].set_flat(0, 0x2600_0000)
    pts[2].set_flat(0, 0x2700_0000)
    assert msi(s, 1) == 0x2400_1004  # stale
    submit(s, iotinval_vma(gscid=10), iotinval_gvma(gscid=20))
    assert msi(s, 1) == 0x2400_1004  # still stale: VMA and another GSCID
    assert msi(s, 2) == 0x2700_0004  # GSCID 20 was invalidated
    submit(s, iotinval_gvma(gscid=10))
    assert msi(s, 1) == 0x2600_0004


def test_gvma_with_an_address_drops_only_that_page() -> None:
    """IOTINVAL.GVMA GV=1 AV=1: the MSI PTE of that GPA page only."""
    s, pts = _scene()
    msi(s, 1, 0)
    msi(s, 1, 1)
    pts[1].set_flat(0, 0x2600_0000)
    pts[1].set_flat(1, 0x2600_1000)
    submit(s, iotinval_gvma(gscid=10, addr=MSI + 0x1000))
    assert msi(s, 1, 0) == 0x2400_1004  # untouched page: stale
    assert msi(s, 1, 1) == 0x2600_1004  # the invalidated page: fresh
    submit(s, iotinval_gvma(gscid=10, addr=MSI, s=True))  # S: the 2-page NAPOT range
    assert msi(s, 1, 0) == 0x2600_0004


def test_gvma_all_vms_drops_every_msi_pte() -> None:
    """IOTINVAL.GVMA GV=0 drops the cached MSI PTEs of every VM."""
    s, pts = _scene()
    msi(s, 1)
    msi(s, 2)
    pts[1].set_flat(0, 0x2600_0000)
    pts[2].set_flat(0, 0x2700_0000)
    submit(s, iotinval_gvma())
    assert (msi(s, 1), msi(s, 2)) == (0x2600_0004, 0x2700_0004)
    assert s.iommu.msi_cache.keys() == {(10, MSI >> 12), (20, MSI >> 12)}


@pytest.mark.parametrize("size,stale", [(0, False), (1, False), (2, True)])
def test_capacity(size: int, stale: bool) -> None:
    """msi_cache_size 0 sees every change; 1 entry is evicted by the next MSI page."""
    s, pts = _scene(msi_cache_size=size, iotlb_size=0)
    msi(s, 1, 0)
    msi(s, 1, 1)  # with capacity 1 this evicts page 0
    pts[1].set_flat(0, 0x2600_0000)
    assert msi(s, 1, 0) == (0x2400_1004 if stale else 0x2600_0004)
    assert len(s.iommu.msi_cache) <= size


def test_invalid_or_misconfigured_msi_ptes_are_not_cached() -> None:
    """Only valid, well-formed MSI PTEs are cached."""
    s, pts = _scene()
    pts[1].set_raw(0, 0)  # V = 0
    assert s.t(1, MSI, rv.Access.WRITE, length=4).fault is not None
    pts[1].set_raw(1, 1 | (2 << 1))  # M = 2: misconfigured
    assert s.t(1, MSI + 0x1000, rv.Access.WRITE, length=4).fault is not None
    assert not s.iommu.msi_cache
    pts[1].set_flat(0, 0x2600_0000)
    assert msi(s, 1, 0) == 0x2600_0004


def test_gvma_with_a_wide_range_scans_only_that_gscid() -> None:
    """A GPA range with more pages than cached entries visits the GSCID's entries instead."""
    s, pts = _scene()
    msi(s, 1, 0)
    msi(s, 2, 0)
    s.iommu.ioatc.msi.inval_gvma(True, 10, 0, (1 << 64) - 1)
    assert s.iommu.msi_cache.keys() == {(20, MSI >> 12)}
