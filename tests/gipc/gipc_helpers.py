"""Builders for GIPC scenarios: one device whose PASIDs belong to different VMs."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import riscv_iommu as rv
from helpers import PD20, SV39, TC_PDTV, TC_V, System
from riscv_iommu import formats as F
from riscv_iommu import gipc
from riscv_iommu.host.tables import PageTable, ProcessDirectory

GIPC_TC = 1 << 12
IOVA = 0x1000
GPA = 0x8000_0000


class Vm:
    """A VM: its G-stage table (GSCID) and, for 2025, its guest memory."""

    def __init__(self, s: System, gscid: int) -> None:
        self.gscid = gscid
        self.g = s.gstage(SV39)
        self.guest = s.guest(self.g)


class GipcSystem(System):
    """A System with capabilities.GIPC, a GIPC PDT, and helpers to bind PASIDs to VMs."""

    def __init__(
        self,
        revision: str = "2024",
        msi_flat: bool = True,
        params: Optional[Dict[str, Any]] = None,
        big: bool = False,
        **caps: Any,
    ) -> None:
        p = dict(params or {})
        p.setdefault("gipc_revision", revision)
        if big:
            p.setdefault("be_writable", True)
        super().__init__(
            caps=rv.Capabilities.full(gipc=True, msi_flat=msi_flat, **caps),
            params=rv.IommuParams(**p),
        )
        fmt = gipc.pc_format(self.iommu)
        assert fmt is not None
        self.fmt = fmt
        self.big = big
        self.pdtree = ProcessDirectory(self.host, PD20, big=big, fmt=fmt)
        self.vms: Dict[int, Vm] = {}

    def vm(self, gscid: int) -> Vm:
        if gscid not in self.vms:
            self.vms[gscid] = Vm(self, gscid)
        return self.vms[gscid]

    def device(self, device_id: int = 3, tc: int = 0, **dc: Any) -> None:
        tcv = TC_V | TC_PDTV | GIPC_TC | tc
        if self.big:
            tcv |= F.DC_TC.SBE.mask
        self.ddt.set_dc(device_id, tc=tcv, fsc=self.pdtree.pdtp(), **dc)

    def stage1_for(self, vm: Vm) -> PageTable:
        """A first-stage table where the revision puts it: SPA (2024) or the VM's GPA (2025)."""
        space = self.host if self.fmt.s1_at_spa else vm.guest
        return PageTable(space, SV39, stage="s", big=self.big)

    def bind(
        self, pasid: int, gscid: int, iova: int = IOVA, gpa: Optional[int] = None, **pc: Any
    ) -> int:
        """Bind ``pasid`` to VM ``gscid``: IOVA -> GPA -> a fresh host page; returns the SPA."""
        vm = self.vm(gscid)
        gpa = GPA + pasid * 0x1000 if gpa is None else gpa
        spa = self.page()
        vm.g.map(gpa, spa)
        s1 = self.stage1_for(vm)
        s1.map(iova, gpa)
        self.pdtree.set_pc(
            pasid, fsc=s1.satp(), pscid=pasid & 0xFFFFF, iohgatp=vm.g.satp(gscid), **pc
        )
        return spa


REVISIONS: List[Tuple[str, bool]] = [("2024", True), ("2024", False), ("2025", True)]


def ids(rev: Tuple[str, bool]) -> str:
    return f"{rev[0]}-{'64B' if rev[0] == '2024' and rev[1] else '32B'}"
