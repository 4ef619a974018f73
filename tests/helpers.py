"""Shared scenario builders for the tests (host-side tables over SparseMemory)."""

from __future__ import annotations

from typing import Any, Optional

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu._mypyc import compiled
from riscv_iommu.host.tables import (
    URWX,
    A,
    D,
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    MsiPageTable,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)

#: the compiled build (mypyc) is under test: module functions are bound at build
#: time and compiled entry points check argument types with mypyc's message
COMPILED = compiled()


def type_error(name: str) -> str:
    """The message of a TypeError for argument ``name``: it names the argument; in the
    compiled build a compiled method's own check (mypyc: "int object expected; got
    str") may come first (README, "Compiled build")."""
    return f"{name}|object expected; got" if COMPILED else name

SV39, SV48, SV57 = 8, 9, 10
SV32 = 8
PD8, PD17, PD20 = 1, 2, 3

TC_V = F.DC_TC.V.mask
TC_EN_ATS = F.DC_TC.EN_ATS.mask
TC_EN_PRI = F.DC_TC.EN_PRI.mask
TC_T2GPA = F.DC_TC.T2GPA.mask
TC_DTF = F.DC_TC.DTF.mask
TC_PDTV = F.DC_TC.PDTV.mask
TC_PRPR = F.DC_TC.PRPR.mask
TC_GADE = F.DC_TC.GADE.mask
TC_SADE = F.DC_TC.SADE.mask
TC_DPE = F.DC_TC.DPE.mask
TC_SBE = F.DC_TC.SBE.mask
TC_SXL = F.DC_TC.SXL.mask


def ta(pscid: int = 0, rcid: int = 0, mcid: int = 0) -> int:
    return F.DC_TA.encode(PSCID=pscid, RCID=rcid, MCID=mcid)


class System:
    """A memory, an IOMMU and host-side builders, ready for a scenario."""

    def __init__(
        self,
        caps: Optional[rv.Capabilities] = None,
        params: Optional[rv.IommuParams] = None,
        fctl: int = 0,
        levels: int = 3,
        **cap_overrides: Any,
    ) -> None:
        self.mem = rv.SparseMemory()
        if caps is None:
            caps = rv.Capabilities.full(**cap_overrides)
        self.caps = caps
        self.iommu = rv.Iommu(self.mem, capabilities=caps, fctl=fctl, params=params)
        self.alloc = PageAllocator(self.mem)
        self.host = HostSpace(self.mem, self.alloc)
        self.be = bool(fctl & 1)
        self.ddt = DeviceDirectory(
            self.mem, self.alloc, levels=levels, msi_flat=caps.msi_flat, big=self.be
        )
        self.iommu.mmio_write(rv.REG.DDTP, self.ddt.ddtp)

    def gstage(self, mode: int = SV39, xlen32: bool = False) -> PageTable:
        return PageTable(self.host, mode, stage="g", xlen32=xlen32, big=self.be)

    def stage1(
        self,
        space: Optional[HostSpace] = None,
        mode: int = SV39,
        xlen32: bool = False,
        big: bool = False,
    ) -> PageTable:
        return PageTable(space or self.host, mode, stage="s", xlen32=xlen32, big=big)

    def guest(self, g: PageTable) -> GuestSpace:
        return GuestSpace(g, self.alloc)

    def pdt(
        self, space: Optional[HostSpace] = None, mode: int = PD20, big: bool = False
    ) -> ProcessDirectory:
        return ProcessDirectory(space or self.host, mode, big=big)

    def msipt(self, entries: int = 256) -> MsiPageTable:
        return MsiPageTable(self.mem, self.alloc, entries, big=self.be)

    def page(self) -> int:
        return self.alloc.alloc()

    def t(
        self, device_id: int, addr: int, access: rv.Access = rv.Access.READ, **kw: Any
    ) -> rv.Response:
        return self.iommu.translate(rv.Request(device_id=device_id, addr=addr, access=access, **kw))


def fault(rsp: rv.Response) -> rv.FaultRecord:
    assert rsp.fault is not None, rsp
    return rsp.fault


__all__ = [
    "System",
    "fault",
    "ta",
    "A",
    "D",
    "URWX",
    "SV39",
    "SV48",
    "SV57",
    "SV32",
    "PD8",
    "PD17",
    "PD20",
    "TC_V",
    "TC_EN_ATS",
    "TC_EN_PRI",
    "TC_T2GPA",
    "TC_DTF",
    "TC_PDTV",
    "TC_PRPR",
    "TC_GADE",
    "TC_SADE",
    "TC_DPE",
    "TC_SBE",
    "TC_SXL",
]
