"""A short end-to-end translation walkthrough (``python -m riscv_iommu.demo``).

Builds, with the host-side table builders, a 3-level DDT with one device
that belongs to a VM: a PD20 process directory and first-stage Sv39 tables
in the VM's guest-physical memory, an Sv39x4 G-stage table, and an MSI page
table.  Then sends requests and prints each response: a two-stage
translation, a supervisor request refused by ``PC.ta.ENS``, a page fault, a
guest-page fault on an implicit access, and an MSI redirected to a guest
interrupt file.
"""

from __future__ import annotations

import sys
from typing import List, Optional, TextIO

from . import formats as F
from .capabilities import Capabilities
from .host.tables import (
    A,
    D,
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    MsiPageTable,
    PageAllocator,
    PageTable,
    ProcessDirectory,
    R,
    U,
    W,
)
from .iommu import REG, Iommu
from .memory import SparseMemory
from .types import Access, Cause, Request, Response, Status

SV39 = 8
PD20 = 3


def _describe(rsp: Response) -> str:
    if rsp.status == Status.SUCCESS and rsp.fault is None:
        extra = " (MSI -> guest interrupt file)" if rsp.is_msi else ""
        perms = "".join(c for c, on in (("r", rsp.r), ("w", rsp.w), ("x", rsp.x)) if on)
        return f"SUCCESS  spa={rsp.addr:#014x} perms={perms or '-'}{extra}"
    f = rsp.fault
    assert f is not None
    name = Cause(f.cause).description
    text = f"{rsp.status.name:17s} cause={f.cause} ({name}) iotval={f.iotval:#x}"
    if f.iotval2:
        text += f" iotval2={f.iotval2:#x}"
    return text


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout) -> int:
    """Run the walkthrough, printing to ``out``."""
    mem = SparseMemory()
    iommu = Iommu(mem, capabilities=Capabilities.full())
    alloc = PageAllocator(mem)
    host = HostSpace(mem, alloc)

    # The hypervisor builds the VM's G-stage table and gives it guest memory.
    g = PageTable(host, SV39, stage="g")  # Sv39x4 has the same MODE value, 8
    guest = GuestSpace(g, alloc, gpa_base=0x1000_0000)
    data_spa = alloc.alloc()
    guest.back(0x8000_0000, data_spa)
    guest.back(0x8000_1000, flags=U | R | A)  # a read-only guest page
    # The guest OS builds its PDT and first-stage table in its own memory.
    s1 = PageTable(guest, SV39, stage="s")
    s1.map(0x4000_0000, 0x8000_0000, flags=U | R | W | A | D)
    s1.map(0x4000_1000, 0x8000_1000, flags=U | R | W | A | D)
    s1.map(0x4000_2000, 0x9000_0000, flags=U | R | W | A | D)  # GPA with no G-stage mapping
    pdt = ProcessDirectory(guest, PD20)
    pdt.set_pc(0x42, fsc=s1.satp(), pscid=1)
    # MSIs: guest interrupt files at GPA 0x2800_0000 + k*4K go to a real IMSIC page.
    msipt = MsiPageTable(mem, alloc, 16)
    imsic = 0x2400_0000
    msipt.set_flat(0, imsic)
    # The DDT: device 0x0102 (bus 1, device 0, function 2) belongs to VM 5.
    ddt = DeviceDirectory(mem, alloc, levels=3, msi_flat=True)
    ddt.set_dc(
        0x0102,
        tc=F.DC_TC.encode(V=1, PDTV=1),
        iohgatp=g.satp(5),
        fsc=pdt.pdtp(),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0xF,
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    iommu.mmio_write(REG.DDTP, ddt.ddtp)

    print("riscv-iommu demo: one device of VM 5 (GSCID 5), PASID 0x42", file=out)
    print(f"  ddtp = {iommu.mmio_read(REG.DDTP):#x} (3-level DDT)", file=out)
    print(f"  data page: GPA 0x80000000 -> SPA {data_spa:#x}", file=out)
    print("", file=out)
    cases = [
        ("DMA read, IOVA 0x40000010", Request(0x0102, 0x4000_0010, process_id=0x42)),
        (
            "DMA write, read-only G-stage page",
            Request(0x0102, 0x4000_1000, Access.WRITE, process_id=0x42),
        ),
        ("DMA read, IOVA unmapped in first stage", Request(0x0102, 0x5000_0000, process_id=0x42)),
        ("DMA read, GPA not mapped by the VM", Request(0x0102, 0x4000_2000, process_id=0x42)),
        (
            "supervisor request, PC.ta.ENS=0",
            Request(0x0102, 0x4000_0000, process_id=0x42, priv=True),
        ),
        ("MSI write to guest IMSIC", Request(0x0102, 0x2800_0000, Access.WRITE, length=4)),
        ("DMA from an unknown device", Request(0x0999, 0x1000)),
    ]
    for title, req in cases:
        rsp = iommu.translate(req)
        print(f"  {title:40s} {_describe(rsp)}", file=out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
