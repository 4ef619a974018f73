"""The host hypervisor (riscv_iommu.host.hypervisor): VMs, device assignment, GIPC PASIDs,
virtio-iommu style MAP/UNMAP, checked by DMA (Iommu.translate) results and by the
commands the hypervisor leaves in the command queue.

Spec: iommu_sw_guidelines.adoc ("Guidelines for invalidations", "Caching invalid entries",
the IOFENCE.C memory-reclamation note in iommu_in_memory_queues.adoc); docs/gipc.md
"Software sequences" (bind, rebind = decision #9, unbind) for both GIPC revisions.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import Command
from riscv_iommu.host.hypervisor import (
    TABLE_GPA,
    Hypervisor,
    HypervisorError,
    R,
    Vm,
    W,
    X,
)
from riscv_iommu.host.tables import HostSpace

REG = rv.REG
RAM = 0x8000_0000
READ, WRITE = rv.Access.READ, rv.Access.WRITE

# revision, capabilities.MSI_FLAT (2024: 64-byte PCs with it, 32-byte without)
REVISIONS = [("2024", True), ("2024", False), ("2025", True)]
REV_IDS = ["2024-64B", "2024-32B", "2025"]


# ---------------------------------------------------------------------------
# scaffolding
# ---------------------------------------------------------------------------
def make(
    gipc_rev: Optional[Tuple[str, bool]] = None, params: Optional[Dict[str, Any]] = None, **kw: Any
) -> Hypervisor:
    p = dict(params or {})
    if gipc_rev is None:
        caps = rv.Capabilities.full()
    else:
        caps = rv.Capabilities.full(gipc=True, msi_flat=gipc_rev[1])
        p["gipc_revision"] = gipc_rev[0]
    io = rv.Iommu(rv.SparseMemory(), capabilities=caps, params=rv.IommuParams(**p))
    return Hypervisor(io, **kw)


def dma(
    hv: Hypervisor, did: int, iova: int, pasid: Optional[int] = None, access: Any = READ
) -> rv.Response:
    req = rv.Request(device_id=did, addr=iova, process_id=pasid, access=access)
    return hv.iommu.translate(req)


def ok(addr: int, size: int = 4096, r: bool = True, w: bool = True, x: bool = False) -> Any:
    return rv.Response(rv.Status.SUCCESS, addr, r=r, w=w, x=x, size=size, s=size > 4096)


def fault(
    cause: int, did: int, iova: int, pasid: Optional[int] = None, access: Any = READ, **kw: Any
) -> rv.FaultRecord:
    ttyp = rv.Ttyp.UNTRANSLATED_WRITE if access == WRITE else rv.Ttyp.UNTRANSLATED_READ
    return rv.FaultRecord(
        cause=cause,
        ttyp=ttyp,
        iotval=iova,
        device_id=did,
        process_id=pasid or 0,
        pv=pasid is not None,
        **kw,
    )


def cqt(hv: Hypervisor) -> int:
    return int(hv.iommu.mmio_read(REG.CQT, 4))


def ring(hv: Hypervisor, start: int) -> List[Command]:
    """The commands in CQ memory from index ``start`` to cqt (read through cqb)."""
    qb = hv.iommu.mmio_read(REG.CQB, 8)
    base = F.QUEUE_BASE.PPN.get(qb) << 12
    n = 1 << (F.QUEUE_BASE.LOG2SZ_1.get(qb) + 1)
    order: Literal["little", "big"] = "big" if hv.iommu.mmio_read(REG.FCTL, 4) & 1 else "little"
    out, i, end = [], start, cqt(hv)
    while i != end:
        raw = hv.mem.read(base + 16 * i, 16)
        out.append(Command(int.from_bytes(raw[:8], order), int.from_bytes(raw[8:], order)))
        i = (i + 1) % n
    return out


def flag(hv: Hypervisor) -> int:
    order: Literal["little", "big"] = "big" if hv.driver.be else "little"
    return int.from_bytes(hv.mem.read(hv.driver.fence_addr, 4), order)


# expected commands, encoded from the spec's layouts
def vma(
    gscid: Optional[int] = None, pscid: Optional[int] = None, addr: Optional[int] = None
) -> Command:
    d0 = 1 | (int(addr is not None) << 10) | ((pscid or 0) << 12) | (int(pscid is not None) << 32)
    d0 |= (int(gscid is not None) << 33) | ((gscid or 0) << 44)
    return Command(d0, ((addr or 0) >> 12) << 10)


def gvma(gscid: int, addr: Optional[int] = None) -> Command:
    d0 = 1 | (1 << 7) | (int(addr is not None) << 10) | (1 << 33) | (gscid << 44)
    return Command(d0, ((addr or 0) >> 12) << 10)


def inval_ddt(did: int) -> Command:
    return Command(3 | (1 << 33) | (did << 40), 0)


def inval_pdt(did: int, pid: int) -> Command:
    return Command(3 | (1 << 7) | (pid << 12) | (1 << 33) | (did << 40), 0)


def fence(
    hv: Optional[Hypervisor] = None, data: int = 0, pr: bool = False, pw: bool = False
) -> Command:
    """IOFENCE.C; with ``hv``: AV = 1 at the driver's flag, DATA = ``data`` (default: the
    value now in the flag, i.e. the last fence)."""
    av = hv is not None
    if hv is not None and not data:
        data = flag(hv)
    d0 = 2 | (int(av) << 10) | (int(pr) << 12) | (int(pw) << 13) | (data << 32)
    return Command(d0, (hv.driver.fence_addr >> 2) if hv is not None else 0)


def ats_inval(did: int, pasid: Optional[int], addr: int, s: bool) -> Command:
    d0 = 4 | ((pasid or 0) << 12) | (int(pasid is not None) << 32) | (did << 40)
    return Command(d0, (int(s) << 11) | addr)


def two_vms(hv: Hypervisor, size: int = 1 << 22) -> Tuple[Vm, Vm]:
    a, b = hv.create_vm(), hv.create_vm()
    a.map_guest_ram(RAM, size)
    b.map_guest_ram(RAM, size)
    return a, b


# ---------------------------------------------------------------------------
# VMs
# ---------------------------------------------------------------------------
def test_vm_guest_ram_and_g_stage() -> None:
    """A VM's G-stage (Sv39x4, GSCID) maps its RAM to fresh host pages; the G-stage root is
    16-KiB aligned and iohgatp names it; two VMs get distinct GSCIDs and host memory."""
    hv = make()
    a, b = two_vms(hv)
    assert (a.gscid, b.gscid) == (1, 2)
    assert a.iohgatp == F.IOHGATP.encode(MODE=8, GSCID=1, PPN=a.gstage.root >> 12)
    assert a.gstage.root % 16384 == 0
    assert a.spa(RAM + 0x1234) != b.spa(RAM + 0x1234)
    assert a.spa(RAM + 0x1234) == a.ram[0][3] + 0x1234
    a.write(RAM + 8, b"guest A")
    assert a.read(RAM + 8, 7) == b"guest A" and b.read(RAM + 8, 7) == bytes(7)
    assert a.is_ram(RAM, 1 << 22) and not a.is_ram(RAM, (1 << 22) + 4096)
    with pytest.raises(HypervisorError, match="overlaps"):
        a.map_guest_ram(RAM + 0x1000, 0x1000)
    with pytest.raises(HypervisorError, match="table region"):
        a.map_guest_ram(TABLE_GPA - 0x1000, 0x2000)
    with pytest.raises(HypervisorError, match="address width"):
        a.map_guest_ram(1 << 41, 0x1000)  # Sv39x4: 41-bit GPAs
    with pytest.raises(HypervisorError, match="in use"):
        hv.create_vm(1)


# ---------------------------------------------------------------------------
# classic (base spec) assignment
# ---------------------------------------------------------------------------
def test_attach_iosatp_map_and_dma() -> None:
    """attach(pasids=False): DC.iohgatp = the VM, DC.fsc = iosatp of a first-stage table in
    the VM's memory (a GPA), DC.ta.PSCID; MAP makes DMA reach the VM's RAM exactly, with no
    command (only invalid entries changed: "Caching invalid entries")."""
    hv = make()
    a, _ = two_vms(hv)
    dev = hv.attach(3, a, pasids=False)
    sp = hv.space(3, None)
    dc = hv.driver.read_dc(3)
    assert dc.tc == F.DC_TC.V.mask and dc.iohgatp == a.iohgatp
    assert dc.ta == F.DC_TA.encode(PSCID=sp.pscid)
    assert dc.fsc == F.IOSATP.encode(MODE=8, PPN=sp.table.root >> 12)
    assert sp.table.root >= TABLE_GPA  # a guest-physical address
    start = cqt(hv)
    hv.map(3, None, 0x4000_0000, RAM + 0x2000, 0x3000, R | W)
    assert cqt(hv) == start
    for off in (0, 0x1008, 0x2FF8):
        assert dma(hv, 3, 0x4000_0000 + off) == ok(a.spa(RAM + 0x2000 + off))
        assert dma(hv, 3, 0x4000_0000 + off, access=WRITE) == ok(a.spa(RAM + 0x2000 + off))
    assert dma(hv, 3, 0x4000_3000).fault == fault(13, 3, 0x4000_3000)
    assert sp.lookup(0x4000_1010) == RAM + 0x3010 and dev.spaces == {None: sp}


def test_map_read_only_and_executable() -> None:
    """MAP permissions become the first-stage PTE's R/W/X (U, A, D set)."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, RAM, 0x1000, R)
    hv.map(3, None, 0x2000, RAM + 0x1000, 0x1000, R | X)
    assert dma(hv, 3, 0x1000) == ok(a.spa(RAM), w=False)
    assert dma(hv, 3, 0x1000, access=WRITE).fault == fault(15, 3, 0x1000, access=WRITE)
    assert dma(hv, 3, 0x2000, access=rv.Access.EXECUTE) == ok(a.spa(RAM + 0x1000), w=False, x=True)


def test_map_uses_superpages_when_aligned() -> None:
    """2 MiB-aligned IOVA and GPA over 2 MiB-backed RAM: one 2 MiB first-stage leaf, and the
    translation reports the 2 MiB range."""
    hv = make()
    a = hv.create_vm()
    a.map_guest_ram(RAM, 1 << 22, page_size=1 << 21)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x4020_0000, RAM + (1 << 21), 1 << 21)
    assert hv.space(3, None).mappings == {0x4020_0000: (1 << 21, RAM + (1 << 21), R | W)}
    assert dma(hv, 3, 0x4030_0010) == ok(a.spa(RAM + 0x30_0010), size=1 << 21)


def test_map_refusals() -> None:
    """virtio-iommu MAP errors: not the VM's RAM, overlap, misaligned, bad permissions, no
    address space; nothing is mapped."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, RAM, 0x2000)
    with pytest.raises(HypervisorError, match="RAM"):
        hv.map(3, None, 0x10_0000, RAM + (1 << 22) - 0x1000, 0x2000)
    with pytest.raises(HypervisorError, match="overlaps"):
        hv.map(3, None, 0x2000, RAM + 0x5000, 0x1000)
    with pytest.raises(HypervisorError, match="aligned"):
        hv.map(3, None, 0x10_0800, RAM, 0x1000)
    with pytest.raises(HypervisorError, match="W needs R"):
        hv.map(3, None, 0x10_0000, RAM, 0x1000, W)
    with pytest.raises(HypervisorError, match="no address space"):
        hv.map(3, 1, 0x10_0000, RAM, 0x1000)
    with pytest.raises(HypervisorError, match="not attached"):
        hv.map(4, None, 0x10_0000, RAM, 0x1000)
    assert list(hv.space(3, None).mappings) == [0x1000, 0x2000]


def test_unmap_invalidates_and_fences() -> None:
    """UNMAP: clear the leaves, IOTINVAL.VMA (GV = 1, the VM's GSCID; PSCV = 1, the PSCID;
    AV = 1) per leaf, then IOFENCE.C with PR and PW (memory reclamation note); a cached
    translation is gone after it."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a, pasids=False)
    sp = hv.space(3, None)
    hv.map(3, None, 0x1000, RAM, 0x2000)
    assert dma(hv, 3, 0x2008) == ok(a.spa(RAM + 0x1008))  # cached now
    start = cqt(hv)
    assert hv.unmap(3, None, 0x1000, 0x2000) is True
    assert ring(hv, start) == [
        vma(a.gscid, sp.pscid, 0x1000),
        vma(a.gscid, sp.pscid, 0x2000),
        fence(hv, pr=True, pw=True),
    ]
    assert dma(hv, 3, 0x2008).fault == fault(13, 3, 0x2008)
    assert sp.mappings == {}


def test_unmap_read_only_orders_reads_only() -> None:
    """Reclaiming memory that was only readable: IOFENCE.C with PR = 1, PW = 0."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, RAM, 0x1000, R)
    start = cqt(hv)
    hv.unmap(3, None, 0, 0x10000)
    sp = hv.space(3, None)
    assert ring(hv, start) == [vma(a.gscid, sp.pscid, 0x1000), fence(hv, pr=True)]


def test_unmap_refuses_to_split_and_ignores_holes() -> None:
    """UNMAP of part of a mapping is refused (nothing changes); an empty range issues no
    command."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, RAM, 0x2000)
    hv.map(3, None, 0x20_0000, RAM + 0x20_0000, 0x20_0000)  # one 2 MiB leaf
    start = cqt(hv)
    with pytest.raises(HypervisorError, match="split"):
        hv.unmap(3, None, 0x20_0000, 0x1000)
    assert hv.unmap(3, None, 0x10_0000, 0x1000) is True
    assert cqt(hv) == start
    assert hv.space(3, None).mappings[0x20_0000] == (1 << 21, RAM + 0x20_0000, R | W)
    assert dma(hv, 3, 0x20_1000) == ok(a.spa(RAM + 0x20_1000))  # G-stage pages are 4 KiB


def test_attach_with_pdt_and_pasids() -> None:
    """attach(pasids=True): a PDT in the VM's memory (DC.fsc = pdtp with a GPA); each PASID's
    first-stage table too; a request without PASID sees GPAs (first stage Bare); binding a
    classic PASID needs no command."""
    hv = make()
    a, _ = two_vms(hv)
    dev = hv.attach(3, a)
    assert dev.pdt is not None and dev.pdt.root >= TABLE_GPA
    dc = hv.driver.read_dc(3)
    assert dc.tc == F.DC_TC.V.mask | F.DC_TC.PDTV.mask
    assert dc.fsc == F.PDTP.encode(MODE=3, PPN=dev.pdt.root >> 12)
    start = cqt(hv)
    s1, s2 = hv.bind_pasid(3, 1), hv.bind_pasid(3, 2, a)
    assert cqt(hv) == start
    pc = dev.pdt.pc_addr(1)
    assert a.memory.read_u64(pc) == F.PC_TA.encode(V=1, PSCID=s1.pscid)
    assert a.memory.read_u64(pc + 8) == F.IOSATP.encode(MODE=8, PPN=s1.table.root >> 12)
    hv.map(3, 1, 0x1000, RAM + 0x1000, 0x1000)
    hv.map(3, 2, 0x1000, RAM + 0x2000, 0x1000)
    assert dma(hv, 3, 0x1010, 1) == ok(a.spa(RAM + 0x1010))
    assert dma(hv, 3, 0x1010, 2) == ok(a.spa(RAM + 0x2010))
    assert dma(hv, 3, RAM + 0x3010) == ok(a.spa(RAM + 0x3010), x=True)
    assert dma(hv, 3, 0x1010, 3).fault == fault(266, 3, 0x1010, 3)
    assert s2.pscid != s1.pscid
    with pytest.raises(HypervisorError, match="belong to its VM"):
        hv.bind_pasid(3, 4, hv.create_vm())


def test_unbind_classic_pasid() -> None:
    """Unbind = PC_CHANGE: the PC cleared, IODIR.INVAL_PDT and IOTINVAL.VMA (GV = 1,
    GSCID = DC.iohgatp.GSCID, PSCV = 1, PSCID = PC.PSCID), fence with PR/PW."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a)
    sp = hv.bind_pasid(3, 1)
    hv.map(3, 1, 0x1000, RAM, 0x1000)
    assert dma(hv, 3, 0x1000, 1) == ok(a.spa(RAM))
    start = cqt(hv)
    assert hv.unbind_pasid(3, 1)
    assert ring(hv, start) == [
        inval_pdt(3, 1),
        vma(a.gscid, sp.pscid),
        fence(hv, pr=True, pw=True),
    ]
    assert dma(hv, 3, 0x1000, 1).fault == fault(266, 3, 0x1000, 1)


def test_detach_classic() -> None:
    """Detach = DC_CHANGE with DC.iohgatp not Bare: IODIR.INVAL_DDT, IOTINVAL.VMA and
    IOTINVAL.GVMA with GV = 1 for the VM's GSCID; DMA then faults (DC not valid)."""
    hv = make()
    a, _ = two_vms(hv)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, RAM, 0x1000)
    assert dma(hv, 3, 0x1000) == ok(a.spa(RAM))
    start = cqt(hv)
    assert hv.detach(3)
    assert ring(hv, start) == [
        inval_ddt(3),
        vma(a.gscid),
        gvma(a.gscid),
        fence(hv, pr=True, pw=True),
    ]
    assert dma(hv, 3, 0x1000).fault == fault(258, 3, 0x1000)
    assert hv.driver.read_dc(3).tc == 0


def test_reattach_moves_device_to_other_vm() -> None:
    """attach() of an attached device detaches it first (the spec's ATS/PRI guideline: mark
    the DC invalid and invalidate before the new DC)."""
    hv = make()
    a, b = two_vms(hv)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, RAM, 0x1000)
    assert dma(hv, 3, 0x1000) == ok(a.spa(RAM))
    start = cqt(hv)
    hv.attach(3, b, pasids=False)
    assert ring(hv, start)[:3] == [inval_ddt(3), vma(a.gscid), gvma(a.gscid)]
    assert dma(hv, 3, 0x1000).fault == fault(13, 3, 0x1000)
    hv.map(3, None, 0x1000, RAM, 0x1000)
    assert dma(hv, 3, 0x1000) == ok(b.spa(RAM))


def test_unmap_guest_ram() -> None:
    """Removing guest RAM: G-stage leaves cleared, IOTINVAL.GVMA (GV = AV = 1) per leaf GPA,
    fence with PR/PW; DMA to it is a guest-page fault (iotval2 = the GPA)."""
    hv = make()
    a, _ = two_vms(hv)
    a.map_guest_ram(0x1_0000_0000, 0x2000)
    hv.attach(3, a, pasids=False)
    hv.map(3, None, 0x1000, 0x1_0000_0000, 0x2000)
    assert dma(hv, 3, 0x1010) == ok(a.spa(0x1_0000_0010))
    start = cqt(hv)
    assert a.unmap_guest_ram(0x1_0000_0000)
    assert ring(hv, start) == [
        gvma(a.gscid, 0x1_0000_0000),
        gvma(a.gscid, 0x1_0000_1000),
        fence(hv, pr=True, pw=True),
    ]
    assert dma(hv, 3, 0x1010).fault == fault(21, 3, 0x1010, iotval2=0x1_0000_0010)
    with pytest.raises(HypervisorError, match="no guest RAM"):
        a.unmap_guest_ram(0x1_0000_0000)


def test_big_endian_host() -> None:
    """With fctl.BE = 1 (capabilities.END) the DDT, G-stage, queues are big-endian and the
    DCs set DC.tc.SBE, so PDTs and first-stage tables are too; DMA works the same."""
    hv = make(params={"be_writable": True}, big_endian=True)
    a, _ = two_vms(hv)
    hv.attach(3, a)
    hv.bind_pasid(3, 5)
    hv.map(3, 5, 0x1000, RAM + 0x4000, 0x1000)
    assert hv.driver.read_dc(3).tc & F.DC_TC.SBE.mask
    assert dma(hv, 3, 0x1008, 5) == ok(a.spa(RAM + 0x4008))
    start = cqt(hv)
    hv.unmap(3, 5, 0x1000, 0x1000)
    assert ring(hv, start)[-1] == fence(hv, pr=True, pw=True)
    assert dma(hv, 3, 0x1008, 5).fault == fault(13, 3, 0x1008, 5)


# ---------------------------------------------------------------------------
# GIPC: one device, PASIDs in different VMs
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_two_vms_one_device(rev: Tuple[str, bool]) -> None:
    """attach_gipc: DC.tc = V | PDTV | DPE | GIPC, DC.iohgatp Bare, a PDT at SPAs; bind_pasid
    writes PC.iohgatp = the VM and issues IODIR.INVAL_PDT + IOFENCE.C (docs/gipc.md "Bind").
    The same IOVA -> the same GPA reaches each PASID's own VM."""
    hv = make(rev)
    a, b = two_vms(hv)
    dev = hv.attach_gipc(7)
    dc = hv.driver.read_dc(7)
    tc = F.DC_TC
    assert dc.tc == tc.V.mask | tc.PDTV.mask | tc.DPE.mask | (1 << 12)
    assert dc.iohgatp == 0 and dev.pdt is not None and dev.pdt.space is hv.host
    start = cqt(hv)
    sa = hv.bind_pasid(7, 1, a)
    assert ring(hv, start) == [inval_pdt(7, 1), fence(hv)]
    sb = hv.bind_pasid(7, 2, b)
    fmt = hv.gipc_fmt
    assert fmt is not None
    pc = dev.pdt.pc_addr(1)
    assert hv.host.read_u64(pc + fmt.offsets["iohgatp"]) == a.iohgatp
    assert hv.host.read_u64(pc + fmt.offsets["ta"]) == F.PC_TA.encode(V=1, PSCID=sa.pscid)
    # where the first-stage tables live: SPAs (2024) or the VM's GPAs (2025)
    if rev[0] == "2024":
        assert isinstance(sa.table.space, HostSpace) and sa.table.space is hv.host
    else:
        assert sa.table.space is a.memory and sb.table.space is b.memory
        assert sa.table.root >= TABLE_GPA
    hv.map(7, 1, 0x10000, RAM + 0x1000, 0x2000)
    hv.map(7, 2, 0x10000, RAM + 0x1000, 0x2000, R)
    assert dma(hv, 7, 0x11008, 1) == ok(a.spa(RAM + 0x2008))
    assert dma(hv, 7, 0x11008, 2) == ok(b.spa(RAM + 0x2008), w=False)
    assert a.spa(RAM + 0x2008) != b.spa(RAM + 0x2008)
    assert dma(hv, 7, 0x11008, 2, WRITE).fault == fault(15, 7, 0x11008, 2, WRITE)


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_no_pasid_has_no_pass_through(rev: Tuple[str, bool]) -> None:
    """A GIPC device's request without PASID (DPE = 1 -> PASID 0, unbound) faults 266:
    DC.iohgatp Bare gives no path to host memory."""
    hv = make(rev)
    a, _ = two_vms(hv)
    hv.attach_gipc(7)
    hv.bind_pasid(7, 1, a)
    assert dma(hv, 7, RAM).fault == fault(266, 7, RAM)


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_unmap_is_isolated(rev: Tuple[str, bool]) -> None:
    """UNMAP in VM A's PASID: IOTINVAL.VMA with A's GSCID and the PASID's PSCID; VM B's
    PASID keeps its mapping and its cached translation (its IOTLB tag is untouched)."""
    hv = make(rev)
    a, b = two_vms(hv)
    hv.attach_gipc(7)
    sa, sb = hv.bind_pasid(7, 1, a), hv.bind_pasid(7, 2, b)
    hv.map(7, 1, 0x10000, RAM, 0x1000)
    hv.map(7, 2, 0x10000, RAM, 0x1000)
    assert dma(hv, 7, 0x10000, 1) == ok(a.spa(RAM))
    assert dma(hv, 7, 0x10000, 2) == ok(b.spa(RAM))
    start = cqt(hv)
    hv.unmap(7, 1, 0x10000, 0x1000)
    assert ring(hv, start) == [vma(a.gscid, sa.pscid, 0x10000), fence(hv, pr=True, pw=True)]
    assert (b.gscid, sb.pscid) in hv.iommu.iotlb.by_tag  # B's cached entry survived
    assert (a.gscid, sa.pscid) not in hv.iommu.iotlb.by_tag
    assert dma(hv, 7, 0x10000, 1).fault == fault(13, 7, 0x10000, 1)
    assert dma(hv, 7, 0x10000, 2) == ok(b.spa(RAM))


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_rebind(rev: Tuple[str, bool]) -> None:
    """rebind_pasid (decision #9): the PC rewritten with VM B's iohgatp and a new table,
    then IODIR.INVAL_PDT, IOTINVAL.VMA (GV = 1, old GSCID, PSCV = 1, old PSCID),
    IOTINVAL.GVMA (GV = 1, old GSCID), fence with PR/PW. The cached VM A translation is
    gone; B's mappings apply; A's other PASID is unaffected."""
    hv = make(rev)
    a, b = two_vms(hv)
    dev = hv.attach_gipc(7)
    old = hv.bind_pasid(7, 1, a)
    hv.bind_pasid(7, 3, a)
    hv.map(7, 1, 0x10000, RAM, 0x1000)
    hv.map(7, 3, 0x10000, RAM + 0x3000, 0x1000)
    assert dma(hv, 7, 0x10010, 1) == ok(a.spa(RAM + 0x10))
    start = cqt(hv)
    new = hv.rebind_pasid(7, 1, b)
    assert ring(hv, start) == [
        inval_pdt(7, 1),
        vma(a.gscid, old.pscid),
        gvma(a.gscid),
        fence(hv, pr=True, pw=True),
    ]
    assert new.vm is b and new.pscid != old.pscid
    assert dev.pdt is not None and hv.gipc_fmt is not None
    pc = dev.pdt.pc_addr(1)
    assert hv.host.read_u64(pc + hv.gipc_fmt.offsets["iohgatp"]) == b.iohgatp
    assert dma(hv, 7, 0x10010, 1).fault == fault(13, 7, 0x10010, 1)
    hv.map(7, 1, 0x10000, RAM + 0x5000, 0x1000)
    assert dma(hv, 7, 0x10010, 1) == ok(b.spa(RAM + 0x5010))
    assert dma(hv, 7, 0x10010, 3) == ok(a.spa(RAM + 0x3010))
    hv.attach(8, a)
    hv.bind_pasid(8, 1)
    with pytest.raises(HypervisorError, match="GIPC"):
        hv.rebind_pasid(8, 1, b)


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_unbind(rev: Tuple[str, bool]) -> None:
    """Unbind (docs/gipc.md): PC cleared, IODIR.INVAL_PDT, IOTINVAL.VMA (GV = 1, the VM's
    GSCID, PSCV = 1, the PSCID), fence with PR/PW; the PASID faults 266 after."""
    hv = make(rev)
    a, _ = two_vms(hv)
    hv.attach_gipc(7)
    sp = hv.bind_pasid(7, 1, a)
    hv.map(7, 1, 0x10000, RAM, 0x1000)
    assert dma(hv, 7, 0x10000, 1) == ok(a.spa(RAM))
    start = cqt(hv)
    hv.unbind_pasid(7, 1)
    assert ring(hv, start) == [
        inval_pdt(7, 1),
        vma(a.gscid, sp.pscid),
        fence(hv, pr=True, pw=True),
    ]
    assert dma(hv, 7, 0x10000, 1).fault == fault(266, 7, 0x10000, 1)
    with pytest.raises(HypervisorError, match="not bound"):
        hv.unbind_pasid(7, 1)


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_detach(rev: Tuple[str, bool]) -> None:
    """Detach a GIPC device: DC_CHANGE for the old DC (iohgatp Bare, PDTV = 1: IOTINVAL.VMA
    GV = AV = PSCV = 0) plus the GV = 1 pair for each VM its PASIDs used."""
    hv = make(rev)
    a, b = two_vms(hv)
    hv.attach_gipc(7)
    hv.bind_pasid(7, 1, a)
    hv.bind_pasid(7, 2, b)
    hv.map(7, 2, 0x10000, RAM, 0x1000)
    assert dma(hv, 7, 0x10000, 2) == ok(b.spa(RAM))
    start = cqt(hv)
    hv.detach(7)
    assert ring(hv, start) == [
        inval_ddt(7),
        vma(),
        vma(a.gscid),
        gvma(a.gscid),
        vma(b.gscid),
        gvma(b.gscid),
        fence(hv, pr=True, pw=True),
    ]
    assert dma(hv, 7, 0x10000, 2).fault == fault(258, 7, 0x10000, 2)


def test_gipc_needs_the_capability() -> None:
    """attach_gipc without capabilities.GIPC is refused; so is a bind without a VM."""
    hv = make()
    with pytest.raises(HypervisorError, match="GIPC"):
        hv.attach_gipc(7)
    hv = make(REVISIONS[0])
    hv.attach_gipc(7)
    with pytest.raises(HypervisorError, match="names the VM"):
        hv.bind_pasid(7, 1)


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
def test_gipc_isolation_g_stage_confines_a_rogue_table(rev: Tuple[str, bool]) -> None:
    """Isolation: MAP refuses another VM's RAM; and a first-stage PTE written behind the
    hypervisor's back (a GPA that is RAM only in VM B) still cannot reach B: PC.iohgatp is
    VM A's, so the DMA is a guest-page fault."""
    hv = make(rev)
    a = hv.create_vm()
    b = hv.create_vm()
    a.map_guest_ram(RAM, 0x10000)
    b.map_guest_ram(0x9000_0000, 0x10000)
    hv.attach_gipc(7)
    sa = hv.bind_pasid(7, 1, a)
    with pytest.raises(HypervisorError, match="RAM"):
        hv.map(7, 1, 0x10000, 0x9000_0000, 0x1000)
    sa.table.map(0x10000, 0x9000_0000, flags=R | W | F.PTE.U.mask | F.PTE.A.mask | F.PTE.D.mask)
    assert dma(hv, 7, 0x10010, 1).fault == fault(21, 7, 0x10010, 1, iotval2=0x9000_0010)


def test_ats_device_unmap_waits_for_the_device() -> None:
    """ATS: after the IOTINVALs, an ordering IOFENCE.C, ATS.INVAL (PASID, the leaf range),
    and the final fence, which completes only when the device answers."""
    hv = make(REVISIONS[0])
    msgs: List[Any] = []
    hv.iommu.on_ats_message = msgs.append
    a, _ = two_vms(hv)
    hv.attach_gipc(7, ats=True)
    sp = hv.bind_pasid(7, 1, a)
    hv.map(7, 1, 0x20_0000, RAM + 0x20_0000, 0x20_0000)  # one 2 MiB leaf
    start = cqt(hv)
    assert hv.unmap(7, 1, 0x20_0000, 0x20_0000) is False
    assert msgs == [rv.InvalidationRequest(7, 0x2F_F000, s=True, pasid=1, itag=0)]
    assert ring(hv, start) == [
        vma(a.gscid, sp.pscid, 0x20_0000),
        fence(),
        ats_inval(7, 1, 0x2F_F000, True),
        fence(hv, data=flag(hv) + 1, pr=True, pw=True),
    ]
    hv.iommu.invalidation_completion(7, 1)
    assert hv.driver.fence_done() is True


# ---------------------------------------------------------------------------
# a property: MAP/UNMAP in two VMs behind one GIPC device, DMA checked against a reference
# ---------------------------------------------------------------------------
OPS = st.lists(
    st.tuples(
        st.sampled_from(["map", "unmap"]),
        st.sampled_from([1, 2]),  # PASID 1 -> VM A, 2 -> VM B
        st.integers(0, 7),  # IOVA page
        st.integers(0, 7),  # GPA page
        st.integers(1, 3),  # pages
        st.sampled_from([R, R | W]),
    ),
    max_size=12,
)


@pytest.mark.parametrize("rev", REVISIONS, ids=REV_IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_gipc_map_unmap_matches_reference(rev: Tuple[str, bool], ops: List[Any]) -> None:
    """After every MAP/UNMAP (accepted or refused), each PASID's DMA to each IOVA page is
    exactly what the guest's mappings say, in its own VM: no stale translation survives an
    UNMAP, no access reaches the other VM."""
    hv = make(rev)
    a, b = two_vms(hv, 0x8000)
    vms = {1: a, 2: b}
    hv.attach_gipc(7)
    hv.bind_pasid(7, 1, a)
    hv.bind_pasid(7, 2, b)
    ref: Dict[Tuple[int, int], Tuple[int, int]] = {}  # (pasid, iova page) -> (gpa page, perms)
    base = 0x40_0000
    for op, pasid, ip, gp, n, perms in ops:
        iova, gpa, size = base + ip * 4096, RAM + gp * 4096, n * 4096
        pages = [(pasid, ip + k) for k in range(n)]
        if op == "map":
            fits = gp + n <= 8 and all(p not in ref for p in pages)
            if fits:
                hv.map(7, pasid, iova, gpa, size, perms)
                for k, p in enumerate(pages):
                    ref[p] = (gp + k, perms)
            else:
                with pytest.raises(HypervisorError):
                    hv.map(7, pasid, iova, gpa, size, perms)
        else:
            hv.unmap(7, pasid, iova, size)  # 4 KiB leaves only: never splits
            for p in pages:
                ref.pop(p, None)
        for pid in (1, 2):
            for page in range(10):
                va = base + page * 4096 + 0x18
                rsp = dma(hv, 7, va, pid, WRITE)
                if (pid, page) not in ref:
                    assert rsp.fault == fault(15, 7, va, pid, WRITE)
                    continue
                gpage, pm = ref[(pid, page)]
                if pm & W:
                    assert rsp == ok(vms[pid].spa(RAM + gpage * 4096 + 0x18))
                else:
                    assert rsp.fault == fault(15, 7, va, pid, WRITE)
                    assert dma(hv, 7, va, pid) == ok(
                        vms[pid].spa(RAM + gpage * 4096 + 0x18), w=False
                    )


def test_sv48_first_stage_and_sv48x4_vm() -> None:
    """Sv48 first-stage tables and an Sv48x4 VM (a GPA above Sv39x4's 41 bits)."""
    hv = make(s1_mode=9, g_mode=9)
    a = hv.create_vm()
    assert F.IOHGATP.MODE.get(a.iohgatp) == 9
    a.map_guest_ram(1 << 41, 0x2000)
    hv.attach(3, a, pasids=False)
    assert F.IOSATP.MODE.get(hv.driver.read_dc(3).fsc) == 9
    hv.map(3, None, 1 << 40, 1 << 41, 0x2000)
    assert dma(hv, 3, (1 << 40) + 0x1010) == ok(a.spa((1 << 41) + 0x1010))
