"""The host driver (riscv_iommu.host.driver) checked against MMIO and memory state.

Spec: iommu_sw_guidelines.adoc -- "Guidelines for initialization", "Guidelines for
invalidations" (DC_CHANGE, PC_CHANGE, MSI_PT_CHANGE, second-stage, first-stage), "Guidelines
for handling interrupts from IOMMU"; iommu_in_memory_queues.adoc (commands, IOFENCE.C, FQ,
PQ records); design decision #9 of docs/gipc.md for the GIPC rebind.

Every invalidation recipe is shown by a translation that is stale after the in-memory change
(the model caches DCs, PCs and translations) and fresh after the recipe.  Expected commands
are encoded here from the formats layouts, independently of the driver's builders.
"""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Tuple

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu import gipc
from riscv_iommu.host.driver import (
    MAX_ADDRESS_INVALIDATIONS,
    PRG_SUCCESS,
    Command,
    DeviceContext,
    Driver,
    DriverError,
    InterruptConfig,
)
from riscv_iommu.host.tables import (
    URW,
    URWX,
    A,
    D,
    G,
    GuestSpace,
    HostSpace,
    MsiPageTable,
    PageAllocator,
    PageTable,
    ProcessDirectory,
)

REG = rv.REG
SV39 = 8
PD20 = 3
TC_V = F.DC_TC.V.mask
TC_PDTV = F.DC_TC.PDTV.mask
TC_ATS = F.DC_TC.EN_ATS.mask
TC_PRI = F.DC_TC.EN_PRI.mask
TC_PRPR = F.DC_TC.PRPR.mask
TC_DPE = F.DC_TC.DPE.mask
GIPC_TC = 1 << 12


# ---------------------------------------------------------------------------
# scaffolding
# ---------------------------------------------------------------------------
class Env:
    """Memory, an IOMMU and a Driver that has (unless told otherwise) run bring_up."""

    def __init__(
        self,
        caps: Optional[rv.Capabilities] = None,
        params: Optional[rv.IommuParams] = None,
        fctl: int = 0,
        bring_up: bool = True,
        **kw: Any,
    ) -> None:
        self.mem = rv.SparseMemory()
        self.io = rv.Iommu(
            self.mem, capabilities=caps or rv.Capabilities.full(), fctl=fctl, params=params
        )
        self.alloc = PageAllocator(self.mem)
        self.drv = Driver(self.io, self.mem, self.alloc)
        self.host = HostSpace(self.mem, self.alloc)
        self.msgs: List[Any] = []
        self.io.on_ats_message = self.msgs.append
        if bring_up:
            self.ddt = self.drv.bring_up(**kw)

    def r32(self, off: int) -> int:
        return int(self.io.mmio_read(off, 4))

    def r64(self, off: int) -> int:
        return int(self.io.mmio_read(off, 8))

    def cqt(self) -> int:
        return self.r32(REG.CQT)

    def ring(self, start: int, end: Optional[int] = None) -> List[Command]:
        """The commands in CQ memory from index ``start`` to ``end`` (default: cqt)."""
        qb = self.r64(REG.CQB)
        base = F.QUEUE_BASE.PPN.get(qb) << 12
        n = 1 << (F.QUEUE_BASE.LOG2SZ_1.get(qb) + 1)
        end = self.cqt() if end is None else end
        order: Literal["little", "big"] = "big" if self.r32(REG.FCTL) & 1 else "little"
        out = []
        i = start
        while i != end:
            raw = self.mem.read(base + 16 * i, 16)
            out.append(Command(int.from_bytes(raw[:8], order), int.from_bytes(raw[8:], order)))
            i = (i + 1) % n
        return out

    def flag(self) -> int:
        order: Literal["little", "big"] = "big" if self.r32(REG.FCTL) & 1 else "little"
        return int.from_bytes(self.mem.read(self.drv.fence_addr, 4), order)

    def fence_cmd(self, pr: bool = False, pw: bool = False) -> Command:
        """The IOFENCE.C the last fence wrote (its DATA is the flag value now in memory)."""
        return fence(addr=self.drv.fence_addr, data=self.flag(), pr=pr, pw=pw)

    def t(self, did: int, addr: int, pid: Optional[int] = None, **kw: Any) -> rv.Response:
        return self.io.translate(rv.Request(device_id=did, addr=addr, process_id=pid, **kw))

    def spa(self, did: int, addr: int, pid: Optional[int] = None) -> int:
        rsp = self.t(did, addr, pid)
        assert rsp.status == rv.Status.SUCCESS, rsp
        return rsp.addr

    def page(self) -> int:
        return self.alloc.alloc()

    def gstage(self) -> PageTable:
        return PageTable(self.host, SV39, stage="g")

    def stage1(self, space: Optional[HostSpace] = None) -> PageTable:
        return PageTable(space or self.host, SV39, stage="s")


# Expected command encodings, straight from the spec's command layouts.
def vma(
    gscid: Optional[int] = None, pscid: Optional[int] = None, addr: Optional[int] = None
) -> Command:
    """IOTINVAL.VMA (opcode 1, func3 0) with GV/PSCV/AV set by the given operands."""
    d0 = (
        1
        | (int(addr is not None) << 10)
        | ((pscid or 0) << 12)
        | (int(pscid is not None) << 32)
        | (int(gscid is not None) << 33)
        | ((gscid or 0) << 44)
    )
    return Command(d0, ((addr or 0) >> 12) << 10)


def gvma(gscid: Optional[int] = None, addr: Optional[int] = None) -> Command:
    """IOTINVAL.GVMA (opcode 1, func3 1)."""
    d0 = 1 | (1 << 7) | (int(addr is not None) << 10) | (int(gscid is not None) << 33)
    return Command(d0 | ((gscid or 0) << 44), ((addr or 0) >> 12) << 10)


def inval_ddt(did: Optional[int] = None) -> Command:
    """IODIR.INVAL_DDT (opcode 3, func3 0)."""
    return Command(3 | (int(did is not None) << 33) | ((did or 0) << 40), 0)


def inval_pdt(did: int, pid: int) -> Command:
    """IODIR.INVAL_PDT (opcode 3, func3 1), DV = 1."""
    return Command(3 | (1 << 7) | (pid << 12) | (1 << 33) | (did << 40), 0)


def fence(addr: Optional[int] = None, data: int = 0, pr: bool = False, pw: bool = False) -> Command:
    """IOFENCE.C (opcode 2)."""
    d0 = 2 | (int(addr is not None) << 10) | (int(pr) << 12) | (int(pw) << 13) | (data << 32)
    return Command(d0, (addr or 0) >> 2)


def ats_cmd(func3: int, rid: int, pid: Optional[int], dseg: Optional[int], payload: int) -> Command:
    d0 = 4 | (func3 << 7) | ((pid or 0) << 12) | (int(pid is not None) << 32)
    d0 |= (int(dseg is not None) << 33) | (rid << 40) | ((dseg or 0) << 56)
    return Command(d0, payload)


# ---------------------------------------------------------------------------
# "Guidelines for initialization"
# ---------------------------------------------------------------------------
def test_init_programs_queues_and_ddtp_registers() -> None:
    """Initialization steps 12-15: cqb/fqb/pqb = PPN | LOG2SZ-1, cqt = fqh = pqh = 0, the
    queues on (xqon polled to 1), ddtp = 3LVL | root PPN, the DDT root zeroed."""
    e = Env()
    d = e.drv
    assert e.r64(REG.CQB) == F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=d.cq_base >> 12)
    assert e.r64(REG.FQB) == F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=d.fq_base >> 12)
    assert e.r64(REG.PQB) == F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=d.pq_base >> 12)
    # buffers naturally aligned to the greater of 4 KiB and N x entry size
    assert d.cq_base % 4096 == 0 and d.fq_base % 8192 == 0 and d.pq_base % 4096 == 0
    assert (d.cq_entries, d.fq_entries, d.pq_entries) == (256, 256, 256)
    assert e.r32(REG.CQCSR) == F.CQCSR.encode(cqen=1, cqon=1)
    assert e.r32(REG.FQCSR) == F.FQCSR.encode(fqen=1, fqon=1)
    assert e.r32(REG.PQCSR) == F.PQCSR.encode(pqen=1, pqon=1)
    for reg in (REG.CQH, REG.CQT, REG.FQH, REG.FQT, REG.PQH, REG.PQT):
        assert e.r32(reg) == 0
    assert e.r64(REG.DDTP) == F.DDTP.encode(iommu_mode=4, PPN=e.ddt.root >> 12)
    assert d.ddtp_modes == (2, 3, 4)
    assert e.mem.read(e.ddt.root, 4096) == bytes(4096)
    assert e.r32(REG.IPSR) == 0


def test_init_large_queue_is_naturally_aligned() -> None:
    """Step 12: a 1024-entry CQ (16 KiB) is aligned to 16 KiB; LOG2SZ-1 = 9."""
    e = Env(cq_log2=10, fq_log2=9)
    assert e.drv.cq_base % (1 << 14) == 0 and e.drv.fq_base % (1 << 14) == 0
    assert F.QUEUE_BASE.LOG2SZ_1.get(e.r64(REG.CQB)) == 9
    assert F.QUEUE_BASE.LOG2SZ_1.get(e.r64(REG.FQB)) == 8


@pytest.mark.parametrize(
    "msi_flat, dw, mode",
    [(True, 6, 2), (True, 15, 3), (True, 16, 4), (False, 7, 2), (False, 16, 3), (False, 17, 4)],
)
def test_init_ddt_mode_from_device_id_width(msi_flat: bool, dw: int, mode: int) -> None:
    """Step 15: M = 1LVL/2LVL/3LVL by Dw (6/15/24 bits extended DCs, 7/16/24 base DCs)."""
    e = Env(rv.Capabilities.full(msi_flat=msi_flat), ddt_levels=None, device_id_width=dw)
    assert F.DDTP.iommu_mode.get(e.r64(REG.DDTP)) == mode
    assert e.ddt.levels == mode - 1 and e.ddt.msi_flat == msi_flat


def test_init_fails_without_needed_ddt_mode() -> None:
    """Step 15: "Stop and report a failure if the supported modes do not support Dw"."""
    params = rv.IommuParams(max_iommu_mode=rv.IommuMode.LVL2)
    e = Env(params=params, bring_up=False)
    with pytest.raises(DriverError, match="3LVL"):
        e.drv.bring_up(ddt_levels=3)
    e = Env(params=params, bring_up=False)
    with pytest.raises(DriverError, match="24-bit"):
        e.drv.bring_up(ddt_levels=None, device_id_width=24)
    e = Env(params=params, ddt_levels=None, device_id_width=15)
    assert e.drv.ddtp_modes == (2, 3)
    assert F.DDTP.iommu_mode.get(e.r64(REG.DDTP)) == 3


def test_init_fails_on_unsupported_version() -> None:
    """Step 2: stop if capabilities.version is not supported (major version 1)."""
    e = Env(rv.Capabilities.full(version=0x20), bring_up=False)
    with pytest.raises(DriverError, match="version"):
        e.drv.bring_up()
    assert e.r32(REG.CQCSR) == 0 and e.r64(REG.DDTP) == 0  # nothing was programmed


def test_init_sets_fctl_be_when_big_endian_needed() -> None:
    """Step 5: END = 1 -> set fctl.BE; then every queue record and command is big-endian."""
    e = Env(params=rv.IommuParams(be_writable=True), big_endian=True)
    assert e.r32(REG.FCTL) & 1 and e.drv.be
    e.drv.submit(Command(0x1234_5678_0000_0002, 0))  # IOFENCE.C with DATA, AV = 0
    raw = e.mem.read(e.drv.cq_base, 8)
    assert raw == (0x1234_5678_0000_0002).to_bytes(8, "big")
    assert e.drv.fence() and e.mem.read(e.drv.fence_addr, 4) == (1).to_bytes(4, "big")
    # fault records too
    e.t(5, 0x1000)
    assert e.drv.faults() == [
        rv.FaultRecord(cause=258, ttyp=rv.Ttyp.UNTRANSLATED_READ, iotval=0x1000, device_id=5)
    ]


def test_init_fails_when_be_not_available() -> None:
    """Step 4: BE needed, END = 0 and fctl.BE = 0 -> failure; a BE-only IOMMU is fine."""
    e = Env(rv.Capabilities.full(end=False), bring_up=False)
    with pytest.raises(DriverError, match="END"):
        e.drv.bring_up(big_endian=True)
    # END = 1 but fctl.BE pinned by the implementation (be_writable=False)
    e = Env(rv.Capabilities.full(), rv.IommuParams(be_writable=False), bring_up=False)
    with pytest.raises(DriverError, match="fctl.BE"):
        e.drv.bring_up(big_endian=True)
    e = Env(rv.Capabilities.full(end=False), fctl=1, big_endian=True)
    assert e.drv.be and e.r32(REG.FCTL) & 1


def test_init_wired_interrupts() -> None:
    """Steps 6-7, 9-10: WSI needed, IGS = BOTH -> fctl.WSI = 1; icvec programmed; a fault
    raises the wire of fiv (the interrupt controller is the platform's business)."""
    e = Env(interrupts=InterruptConfig(wsi=True, civ=1, fiv=2, pmiv=3, piv=4))
    assert e.r32(REG.FCTL) & F.FCTL.WSI.mask
    assert e.r64(REG.ICVEC) == F.ICVEC.encode(civ=1, fiv=2, pmiv=3, piv=4)
    assert e.r32(REG.CQCSR) == F.CQCSR.encode(cqen=1, cie=1, cqon=1)
    assert e.r32(REG.FQCSR) == F.FQCSR.encode(fqen=1, fie=1, fqon=1)
    wires: List[Tuple[int, bool]] = []
    e.io.on_wired_interrupt = lambda v, level: wires.append((v, level))
    e.t(5, 0x1000)
    assert wires == [(2, True)]
    e.drv.faults()  # clears ipsr.fip: the wire drops
    assert wires == [(2, True), (2, False)]


def test_init_fails_when_wsi_not_supported() -> None:
    """Step 6: WSI needed and IGS = MSI -> failure; MSIs needed and IGS = WSI -> failure."""
    e = Env(rv.Capabilities.full(igs=rv.IGS.MSI), bring_up=False)
    with pytest.raises(DriverError, match="IGS"):
        e.drv.bring_up(interrupts=InterruptConfig(wsi=True))
    e = Env(rv.Capabilities.full(igs=rv.IGS.WSI), bring_up=False)
    with pytest.raises(DriverError, match="IGS"):
        e.drv.bring_up(interrupts=InterruptConfig())


def test_init_msi_configuration_table() -> None:
    """Steps 9 and 11: icvec discovered (16 vectors) and programmed; msi_addr_V / msi_data_V
    / msi_vec_ctl_V for every vector; a fault sends msi_data_fiv to msi_addr_fiv."""
    base = 0x4000_0000
    e = Env(interrupts=InterruptConfig(civ=7, fiv=9, msi_base=base, msi_data=0x40))
    d = e.drv
    assert d.vectors == 16
    assert e.r64(REG.ICVEC) == F.ICVEC.encode(civ=7, fiv=9, pmiv=2, piv=3)
    for v in range(16):
        assert e.r64(REG.msi_addr(v)) == base + 4 * v
        assert e.r32(REG.msi_data(v)) == 0x40 + v
        assert e.r32(REG.msi_vec_ctl(v)) == 0
    assert d.msi_targets[9] == (base + 36, 0x49)
    e.t(5, 0x1000)
    assert e.mem.read(base + 36, 4) == (0x49).to_bytes(4, "little")
    assert e.mem.read(base, 36) == bytes(36)  # no other vector fired


def test_init_msi_masked() -> None:
    """Step 11: "Configure the interrupt mask M": masked vectors hold their message."""
    e = Env(interrupts=InterruptConfig(masked=True, msi_base=0x4000_0000))
    assert all(e.r32(REG.msi_vec_ctl(v)) == 1 for v in range(16))
    e.t(5, 0x1000)
    assert e.mem.read(0x4000_0004, 4) == bytes(4)
    e.io.mmio_write(REG.msi_vec_ctl(1), 0, 4)
    assert e.mem.read(0x4000_0004, 4) == (0x101).to_bytes(4, "little")


def test_init_icvec_discovery_counts_writable_bits() -> None:
    """Step 9: a 4-vector IOMMU shows 2 writable bits per icvec field -> 4 vectors."""
    e = Env(params=rv.IommuParams(interrupt_vectors=4), interrupts=InterruptConfig())
    assert e.drv.vectors == 4


def test_init_fails_without_required_capability() -> None:
    """Step 8: stop if other required capabilities are not supported."""
    e = Env(rv.Capabilities.full(sv57x4=False, sv57=False), bring_up=False)
    with pytest.raises(DriverError, match="sv57x4"):
        e.drv.bring_up(require=("sv39", "sv57x4"))


def test_init_without_ats_leaves_pq_off() -> None:
    """Step 14 applies only with capabilities.ATS (the PQ registers exist only then)."""
    e = Env(rv.Capabilities.full(ats=False))
    assert e.drv.pq_entries == 0 and e.r64(REG.PQB) == 0 and e.r32(REG.PQCSR) == 0
    with pytest.raises(DriverError, match="page-request"):
        e.drv.page_requests()


def test_init_again_turns_queues_off_first() -> None:
    """cqb/fqb/pqb may only be written with xqon = 0: a second bring_up disables the queues,
    then programs new ones (cqh restarts at 0)."""
    e = Env()
    e.drv.sync(inval_ddt())
    assert e.r32(REG.CQH) == 2
    old = e.drv.cq_base
    e.drv.bring_up()
    assert e.drv.cq_base != old and e.r32(REG.CQH) == 0 and e.r32(REG.CQT) == 0
    assert e.r32(REG.CQCSR) == F.CQCSR.encode(cqen=1, cqon=1)
    assert e.drv.fence()


# ---------------------------------------------------------------------------
# command queue, IOFENCE.C
# ---------------------------------------------------------------------------
def test_submit_writes_commands_at_cqt_then_rings_doorbell() -> None:
    """Commands go into CQ memory at cqt in order, then one cqt write; the IOMMU (here
    processing on demand) advances cqh over them."""
    e = Env(params=rv.IommuParams(auto_process=False))
    cmds = [inval_ddt(1), vma(gscid=3), gvma(gscid=3, addr=0x5000)]
    e.drv.submit(*cmds)
    assert e.cqt() == 3 and e.r32(REG.CQH) == 0
    assert e.ring(0) == cmds
    assert e.io.process_commands() == 3 and e.r32(REG.CQH) == 3
    assert e.drv.submitted == cmds


def test_submit_wraps_and_waits_for_room() -> None:
    """A 4-entry CQ (3 usable slots): 9 commands wrap around; the driver rings the doorbell
    and waits for cqh whenever the queue is full."""
    e = Env(cq_log2=2)
    cmds = [inval_pdt(1, p) for p in range(9)]
    e.drv.submit(*cmds)
    assert e.cqt() == 1 and e.r32(REG.CQH) == 1
    assert e.ring(0, 1) == [cmds[8]] and e.ring(1, 0) == [cmds[5], cmds[6], cmds[7]]


def test_submit_full_queue_that_does_not_drain_raises() -> None:
    """A full CQ whose head never moves (no processing) is a driver error, not a hang."""
    e = Env(cq_log2=1, params=rv.IommuParams(auto_process=False))
    with pytest.raises(DriverError, match="full"):
        e.drv.submit(inval_ddt(), inval_ddt())


def test_fence_writes_flag_and_reports_completion() -> None:
    """IOFENCE.C with AV = 1: DATA (a new token per fence) written at ADDR; PR/PW reach the
    IOMMU's global-ordering port."""
    e = Env()
    seen: List[Tuple[bool, bool]] = []
    e.io.on_fence = lambda pr, pw: seen.append((pr, pw))
    start = e.cqt()
    assert e.drv.fence() is True and e.flag() == 1
    assert e.drv.fence(pr=True, pw=True) is True and e.flag() == 2
    assert e.ring(start) == [
        fence(e.drv.fence_addr, 1),
        fence(e.drv.fence_addr, 2, pr=True, pw=True),
    ]
    assert seen == [(True, True)]
    assert e.drv.fence_addr % 4 == 0


def test_fence_not_processed_returns_false_then_done() -> None:
    """Without processing the fence does not complete: fence() is False (no error); after the
    IOMMU runs the queue fence_done() is True."""
    e = Env(params=rv.IommuParams(auto_process=False))
    assert e.drv.sync(inval_ddt()) is False
    e.io.process_commands()
    assert e.drv.fence_done() is True


def test_fence_reports_cmd_ill_and_recovers() -> None:
    """An illegal command stops the CQ with cmd_ill, cqh on it: DriverError names the bit,
    cqh and the command; clear_cq_errors replaces it by a no-op IOFENCE.C, clears the
    bit (RW1C) and ipsr.cip, and processing resumes."""
    e = Env(interrupts=InterruptConfig(msi_base=0x4000_0000))
    bad = Command(inval_pdt(1, 2).d0 & ~(1 << 33), 0)  # IODIR.INVAL_PDT with DV = 0
    e.drv.submit(inval_ddt())
    with pytest.raises(DriverError, match="cmd_ill") as ei:
        e.drv.sync(bad)
    assert ei.value.cqh == 1 and ei.value.command == bad
    assert ei.value.cqcsr == F.CQCSR.encode(cqen=1, cie=1, cqon=1, cmd_ill=1)
    assert e.r32(REG.IPSR) & F.IPSR.cip.mask
    assert e.drv.clear_cq_errors() == F.CQCSR.cmd_ill.mask
    assert e.ring(1, 2) == [fence()]
    assert e.r32(REG.CQCSR) == F.CQCSR.encode(cqen=1, cie=1, cqon=1)
    assert e.r32(REG.IPSR) == 0
    assert e.drv.fence() is True and e.r32(REG.CQH) == e.cqt()


def test_fence_reports_cqmf() -> None:
    """The fence's DATA write faults: cqmf, cqh stays on the IOFENCE.C."""
    e = Env()
    e.mem.inject(e.drv.fence_addr, 4, rv.MemoryFault.ACCESS_FAULT)
    with pytest.raises(DriverError, match="cqmf") as ei:
        e.drv.fence()
    assert ei.value.command == fence(e.drv.fence_addr, 1)
    assert ei.value.cqh == e.cqt() - 1
    with pytest.raises(DriverError, match="cqmf"):  # a stopped queue refuses more commands
        e.drv.submit(inval_ddt())
    e.mem.clear_injections()
    e.drv.clear_cq_errors()
    assert e.drv.fence_done() is True


def ats_device(e: Env, did: int = 9, tc: int = 0) -> None:
    assert e.ddt is not None
    e.ddt.set_dc(did, tc=TC_V | TC_ATS | tc)


def test_ats_invalidate_waits_for_completion() -> None:
    """ATS.INVAL after an ordering IOFENCE.C; the fence does not complete until the device's
    Invalidation Completion (ITAG) arrives."""
    e = Env()
    ats_device(e)
    start = e.cqt()
    assert e.drv.ats_invalidate(9, pasid=5, addr=0x20000, size=0x4000) is False
    assert e.msgs == [rv.InvalidationRequest(device_id=9, addr=0x21000, s=True, pasid=5, itag=0)]
    payload = F.ATS_INVAL_PAYLOAD.encode(S=1, ADDR=0x21)
    assert e.ring(start) == [
        fence(),
        ats_cmd(0, 9, 5, None, payload),
        fence(e.drv.fence_addr, 1),
    ]
    assert e.drv.fence_done() is False
    e.io.invalidation_completion(9, 1)
    assert e.drv.fence_done() is True


def test_ats_invalidate_encodings() -> None:
    """PCIe ATS range encoding: one page (S = 0), everything (S = 1, 0x7FFF_FFFF_FFFF_F000),
    global, and a segment-qualified destination (DSV = 1, DSEG = device_id[23:16])."""
    e = Env()
    ats_device(e, 0x012345)
    e.drv.ats_invalidate(0x012345, None, 0x7000, 4096)
    e.io.invalidation_completion(0x012345, 1)
    e.drv.ats_invalidate(0x012345, 3, 0, None, global_=True)
    assert e.msgs == [
        rv.InvalidationRequest(device_id=0x2345, addr=0x7000, segment=1, itag=0),
        rv.InvalidationRequest(
            device_id=0x2345,
            addr=0x7FFF_FFFF_FFFF_F000,
            s=True,
            global_=True,
            pasid=3,
            segment=1,
            itag=0,
        ),
    ]


def test_fence_reports_cmd_to() -> None:
    """An ATS.INVAL that times out is reported by the next IOFENCE.C: cmd_to, cqh on the
    fence; after clearing it the fence completes."""
    e = Env()
    ats_device(e)
    assert e.drv.ats_invalidate(9) is False
    e.io.ats_timeout()
    with pytest.raises(DriverError, match="cmd_to") as ei:
        e.drv.fence_done()
    assert ei.value.command == fence(e.drv.fence_addr, 1)
    assert e.drv.clear_cq_errors() == F.CQCSR.cmd_to.mask
    assert e.drv.fence_done() is True


# ---------------------------------------------------------------------------
# fault queue, page-request queue ("Guidelines for handling interrupts")
# ---------------------------------------------------------------------------
def rec(did: int, iova: int = 0x1000) -> rv.FaultRecord:
    return rv.FaultRecord(cause=258, ttyp=rv.Ttyp.UNTRANSLATED_READ, iotval=iova, device_id=did)


def test_faults_read_records_and_advance_fqh() -> None:
    """fip handling: read fqt/fqh, process the records, advance fqh by their number."""
    e = Env()
    for did in (5, 6, 7):
        e.t(did, 0x1000 * did)
    assert e.r32(REG.FQT) == 3 and e.r32(REG.FQH) == 0
    assert e.drv.faults() == [rec(5, 0x5000), rec(6, 0x6000), rec(7, 0x7000)]
    assert e.r32(REG.FQH) == 3
    assert e.drv.faults() == []


def test_faults_wrap_around() -> None:
    """A 4-entry FQ: records keep coming as fqh follows fqt around the ring."""
    e = Env(fq_log2=2)
    got = []
    for did in range(1, 11):
        e.t(did, 0x1000)
        got += e.drv.faults()
    assert got == [rec(d) for d in range(1, 11)]
    assert e.r32(REG.FQH) == e.r32(REG.FQT) == 10 % 4


def test_faults_clear_fqof() -> None:
    """fqof: a full queue (fqt == fqh - 1) drops records; faults() clears fqof (RW1C),
    reports it, and reporting resumes."""
    e = Env(fq_log2=1)  # 2 entries: one record fills it
    for did in (1, 2, 3):
        e.t(did, 0x1000)
    assert e.r32(REG.FQCSR) & F.FQCSR.fqof.mask
    assert e.drv.faults() == [rec(1)]
    assert e.drv.fq_overflows == 1
    assert e.r32(REG.FQCSR) == F.FQCSR.encode(fqen=1, fqon=1)
    e.t(4, 0x1000)
    assert e.drv.faults() == [rec(4)]


def test_faults_clear_fqmf() -> None:
    """fqmf: a record write faulted; faults() clears fqmf, counts it, reporting resumes."""
    e = Env()
    e.mem.inject(e.drv.fq_base, 32, rv.MemoryFault.ACCESS_FAULT)
    e.t(1, 0x1000)
    assert e.r32(REG.FQCSR) & F.FQCSR.fqmf.mask
    e.mem.clear_injections()
    assert e.drv.faults() == []
    assert e.drv.fq_memory_faults == 1
    assert e.r32(REG.FQCSR) == F.FQCSR.encode(fqen=1, fqon=1)
    e.t(2, 0x1000)
    assert e.drv.faults() == [rec(2)]


def test_faults_clear_ipsr_fip() -> None:
    """With fie = 1 a record sets ipsr.fip; faults() clears it (write 1)."""
    e = Env(interrupts=InterruptConfig(msi_base=0x4000_0000))
    e.t(1, 0x1000)
    assert e.r32(REG.IPSR) == F.IPSR.fip.mask
    assert e.drv.faults() == [rec(1)]
    assert e.r32(REG.IPSR) == 0


def test_page_requests_read_and_respond() -> None:
    """PQ records decoded as the messages they hold (with a PASID: PRIV and EXEC; a Stop
    Marker), pqh advanced, ipsr.pip cleared; respond() sends ATS.PRGR."""
    e = Env(interrupts=InterruptConfig(msi_base=0x4000_0000))
    ats_device(e, 9, TC_PRI | TC_PRPR)
    msgs = [
        rv.PageRequest(
            device_id=9,
            addr=0x5000,
            prg_index=3,
            last=False,
            read=True,
            write=True,
            process_id=4,
            priv=True,
            exec_req=True,
        ),
        rv.PageRequest(device_id=9, addr=0x6000, prg_index=3, last=True, read=True),
        rv.PageRequest(
            device_id=9, addr=0, prg_index=0, last=True, read=False, write=False, process_id=4
        ),
    ]
    for m in msgs:
        assert e.io.page_request(m) is None
    assert e.r32(REG.IPSR) == F.IPSR.pip.mask
    assert e.drv.page_requests() == msgs
    assert e.r32(REG.PQH) == e.r32(REG.PQT) == 3 and e.r32(REG.IPSR) == 0
    start = e.cqt()
    e.drv.respond(9, 3, PRG_SUCCESS, pasid=4)
    assert e.msgs == [
        rv.PageRequestGroupResponse(device_id=9, prg_index=3, response_code=0, pasid=4)
    ]
    assert e.ring(start) == [ats_cmd(1, 9, 4, None, 3 << 32)]


def test_page_requests_clear_pqof() -> None:
    """pqof: a full PQ drops requests; page_requests() clears it and counts it."""
    e = Env(pq_log2=1)
    ats_device(e, 9, TC_PRI)
    for i in range(3):
        e.io.page_request(rv.PageRequest(device_id=9, addr=0x1000 * i, prg_index=i))
    assert e.r32(REG.PQCSR) & F.PQCSR.pqof.mask
    assert e.drv.page_requests() == [rv.PageRequest(device_id=9, addr=0, prg_index=0)]
    assert e.drv.pq_overflows == 1
    assert e.r32(REG.PQCSR) == F.PQCSR.encode(pqen=1, pqon=1)


# ---------------------------------------------------------------------------
# invalidation recipes: stale before, fresh after
# ---------------------------------------------------------------------------
def test_dc_change_iohgatp_not_bare() -> None:
    """DC_CHANGE, DC.iohgatp.MODE != Bare: IODIR.INVAL_DDT (DV=1, DID), IOTINVAL.VMA (GV=1,
    AV=PSCV=0, GSCID) and IOTINVAL.GVMA (GV=1, AV=0, GSCID). The new DC keeps the GSCID but
    has another G-stage root: without the IOTINVALs the cached translation would survive."""
    e = Env()
    p1, p2 = e.page(), e.page()
    g1, g2 = e.gstage(), e.gstage()
    g1.map(0x4000, p1)
    g2.map(0x4000, p2)
    e.ddt.set_dc(1, tc=TC_V, iohgatp=g1.satp(5))
    assert e.spa(1, 0x4008) == p1 + 8
    old = e.drv.read_dc(1)
    assert old == DeviceContext(TC_V, g1.satp(5), 0, 0, 0, 0, 0)
    e.ddt.set_dc(1, tc=TC_V, iohgatp=g2.satp(5))
    assert e.spa(1, 0x4008) == p1 + 8  # stale
    start = e.cqt()
    assert e.drv.dc_changed(1, old) is True
    assert e.ring(start) == [inval_ddt(1), vma(gscid=5), gvma(gscid=5), e.fence_cmd()]
    assert e.spa(1, 0x4008) == p2 + 8  # fresh


def test_dc_change_inval_ddt_alone_is_not_enough() -> None:
    """Why the IOTINVALs of DC_CHANGE matter: after IODIR.INVAL_DDT alone the IOTLB still
    holds the old G-stage translation of the same GSCID."""
    e = Env()
    p1, p2 = e.page(), e.page()
    g1, g2 = e.gstage(), e.gstage()
    g1.map(0x4000, p1)
    g2.map(0x4000, p2)
    e.ddt.set_dc(1, tc=TC_V, iohgatp=g1.satp(5))
    assert e.spa(1, 0x4008) == p1 + 8
    e.ddt.set_dc(1, tc=TC_V, iohgatp=g2.satp(5))
    e.drv.sync(inval_ddt(1))
    assert e.spa(1, 0x4008) == p1 + 8  # still stale


def test_dc_change_bare_with_pdt() -> None:
    """DC_CHANGE, iohgatp Bare and DC.tc.PDTV = 1: IODIR.INVAL_DDT and IOTINVAL.VMA with
    GV = AV = PSCV = 0."""
    e = Env()
    p1, p2 = e.page(), e.page()
    pdts = []
    for p in (p1, p2):
        s1 = e.stage1()
        s1.map(0x7000, p)
        pdt = ProcessDirectory(e.host, PD20)
        pdt.set_pc(2, fsc=s1.satp(), pscid=7)
        pdts.append(pdt)
    e.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdts[0].pdtp())
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    old = e.drv.read_dc(1)
    e.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdts[1].pdtp())
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.dc_changed(1, old)
    assert e.ring(start) == [inval_ddt(1), vma(), e.fence_cmd()]
    assert e.spa(1, 0x7010, 2) == p2 + 0x10


def test_dc_change_bare_with_iosatp() -> None:
    """DC_CHANGE, iohgatp Bare, PDTV = 0, DC.fsc.MODE != Bare: IODIR.INVAL_DDT and
    IOTINVAL.VMA with GV = AV = 0, PSCV = 1, PSCID = DC.ta.PSCID."""
    e = Env()
    p1, p2 = e.page(), e.page()
    t1, t2 = e.stage1(), e.stage1()
    t1.map(0x7000, p1)
    t2.map(0x7000, p2)
    ta = F.DC_TA.encode(PSCID=9)
    e.ddt.set_dc(1, tc=TC_V, ta=ta, fsc=t1.satp())
    assert e.spa(1, 0x7010) == p1 + 0x10
    old = e.drv.read_dc(1)
    e.ddt.set_dc(1, tc=TC_V, ta=ta, fsc=t2.satp())
    assert e.spa(1, 0x7010) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.dc_changed(1, old)
    assert e.ring(start) == [inval_ddt(1), vma(pscid=9), e.fence_cmd()]
    assert e.spa(1, 0x7010) == p2 + 0x10


def test_dc_change_both_stages_bare() -> None:
    """DC_CHANGE, both stages Bare: IODIR.INVAL_DDT only (a DC made invalid faults after)."""
    e = Env()
    e.ddt.set_dc(1, tc=TC_V)
    assert e.spa(1, 0x7010) == 0x7010
    old = e.drv.read_dc(1)
    e.ddt.set_dc(1, tc=0)
    assert e.spa(1, 0x7010) == 0x7010  # stale
    start = e.cqt()
    e.drv.dc_changed(1, old)
    assert e.ring(start) == [inval_ddt(1), e.fence_cmd()]
    assert e.t(1, 0x7010).fault == rec(1, 0x7010)


def test_dc_change_gipc_adds_pc_gscids() -> None:
    """[GIPC] a DC with DC.tc.GIPC: its PCs' VMs are invalidated too (GV = 1 pairs per
    GSCID), after the spec's commands for the old DC (iohgatp Bare, PDTV = 1)."""
    e = Env(rv.Capabilities.full(gipc=True))
    p1 = e.page()
    g = e.gstage()
    g.map(0x9000, p1)
    s1 = e.stage1()
    s1.map(0x7000, 0x9000)
    pdt = ProcessDirectory(e.host, PD20, fmt=gipc.pc_format(e.io))
    pdt.set_pc(2, fsc=s1.satp(), pscid=7, iohgatp=g.satp(4))
    e.ddt.set_dc(1, tc=TC_V | TC_PDTV | GIPC_TC, fsc=pdt.pdtp())
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    old = e.drv.read_dc(1)
    e.ddt.set_dc(1, tc=0)
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.dc_changed(1, old, gscids=[4], gipc_tc=GIPC_TC)
    assert e.ring(start) == [inval_ddt(1), vma(), vma(gscid=4), gvma(gscid=4), e.fence_cmd()]
    assert e.t(1, 0x7010, 2).fault == rv.FaultRecord(
        cause=258,
        ttyp=rv.Ttyp.UNTRANSLATED_READ,
        iotval=0x7010,
        device_id=1,
        process_id=2,
        pv=True,
    )


def test_ddt_nonleaf_change() -> None:
    """DC_CHANGE, non-leaf DDT entry: IODIR.INVAL_DDT with DV = 0."""
    e = Env()
    p2 = e.page()
    e.ddt.set_dc(0x40, tc=TC_V)
    assert e.spa(0x40, 0x7010) == 0x7010
    # a new leaf DDT page holding another DC for the device, linked from the level-1 entry
    leaf = e.page()
    t = e.stage1()
    t.map(0x7000, p2)
    e.host.write_u64(leaf + 64 * (0x40 & 0x3F) + 24, t.satp())
    e.host.write_u64(leaf + 64 * (0x40 & 0x3F), TC_V)
    e.host.write_u64(e.ddt.nonleaf_addr(0x40, 1), F.DDTE.encode(V=1, PPN=leaf >> 12))
    assert e.spa(0x40, 0x7010) == 0x7010  # stale
    start = e.cqt()
    assert e.drv.ddt_nonleaf_changed()
    assert e.ring(start) == [inval_ddt(), e.fence_cmd()]
    assert e.spa(0x40, 0x7010) == p2 + 0x10


def classic_vm_device(e: Env, did: int = 1, gscid: int = 4) -> Tuple[PageTable, GuestSpace]:
    """A device whose DC names a VM (iohgatp, GSCID) and a PDT in the VM's memory."""
    g = e.gstage()
    guest = GuestSpace(g, e.alloc)
    pdt = ProcessDirectory(guest, PD20)
    e.ddt.set_dc(did, tc=TC_V | TC_PDTV, iohgatp=g.satp(gscid), fsc=pdt.pdtp())
    e.pdt = pdt  # type: ignore[attr-defined]
    return g, guest


def test_pc_change_with_iohgatp() -> None:
    """PC_CHANGE, DC.iohgatp.MODE != Bare: IODIR.INVAL_PDT (DV=1, DID, PID) and
    IOTINVAL.VMA (GV=1, AV=0, PSCV=1, GSCID=DC.iohgatp.GSCID, PSCID=PC.PSCID)."""
    e = Env()
    g, guest = classic_vm_device(e)
    p1, p2 = e.page(), e.page()
    g.map(0x8000_0000, p1)
    g.map(0x8000_1000, p2)
    t1, t2 = e.stage1(guest), e.stage1(guest)
    t1.map(0x7000, 0x8000_0000)
    t2.map(0x7000, 0x8000_1000)
    e.pdt.set_pc(2, fsc=t1.satp(), pscid=8)  # type: ignore[attr-defined]
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    e.pdt.set_pc(2, fsc=t2.satp(), pscid=8)  # type: ignore[attr-defined]
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.pc_changed(1, 2, pscid=8, gscid=4)
    assert e.ring(start) == [inval_pdt(1, 2), vma(gscid=4, pscid=8), e.fence_cmd()]
    assert e.spa(1, 0x7010, 2) == p2 + 0x10


def test_pc_change_host() -> None:
    """PC_CHANGE, DC.iohgatp Bare: IODIR.INVAL_PDT and IOTINVAL.VMA (GV=0, AV=0, PSCV=1)."""
    e = Env()
    p1, p2 = e.page(), e.page()
    t1, t2 = e.stage1(), e.stage1()
    t1.map(0x7000, p1)
    t2.map(0x7000, p2)
    pdt = ProcessDirectory(e.host, PD20)
    pdt.set_pc(2, fsc=t1.satp(), pscid=8)
    e.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    pdt.set_pc(2, fsc=t2.satp(), pscid=8)
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.pc_changed(1, 2, pscid=8)
    assert e.ring(start) == [inval_pdt(1, 2), vma(pscid=8), e.fence_cmd()]
    assert e.spa(1, 0x7010, 2) == p2 + 0x10


def test_pdt_nonleaf_change() -> None:
    """PC_CHANGE, non-leaf PDT entry: IODIR.INVAL_DDT with DV = 1 and DID = D."""
    e = Env()
    p1, p2 = e.page(), e.page()
    t1, t2 = e.stage1(), e.stage1()
    t1.map(0x7000, p1)
    t2.map(0x7000, p2)
    pdt = ProcessDirectory(e.host, PD20)
    pdt.set_pc(2, fsc=t1.satp(), pscid=8)
    e.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    leaf = e.page()  # a new leaf PDT page with PC 2 -> t2, linked from the level-1 entry
    e.host.write_u64(leaf + 16 * 2 + 8, t2.satp())
    e.host.write_u64(leaf + 16 * 2, F.PC_TA.encode(V=1, PSCID=9))
    e.host.write_u64(pdt.nonleaf_addr(2, 1), F.PDTE.encode(V=1, PPN=leaf >> 12))
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.pdt_nonleaf_changed(1)
    assert e.ring(start) == [inval_ddt(1), e.fence_cmd()]
    assert e.spa(1, 0x7010, 2) == p2 + 0x10


def test_first_stage_change_host() -> None:
    """First-stage change, second stage Bare: IOTINVAL.VMA GV = 0, PSCV = 1, AV = 1; the
    other page of the same address space stays cached."""
    e = Env()
    p1, p2, p3 = e.page(), e.page(), e.page()
    t = e.stage1()
    t.map(0x7000, p1)
    t.map(0x8000, p3)
    e.ddt.set_dc(1, tc=TC_V, ta=F.DC_TA.encode(PSCID=3), fsc=t.satp())
    assert e.spa(1, 0x7010) == p1 + 0x10 and e.spa(1, 0x8000) == p3
    t.map(0x7000, p2)
    assert e.spa(1, 0x7010) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.first_stage_changed(None, 3, 0x7010)
    assert e.ring(start) == [vma(pscid=3, addr=0x7000), e.fence_cmd()]
    assert e.spa(1, 0x7010) == p2 + 0x10
    assert any(k[1] == 3 and k[3] == 8 for k in e.io.iotlb.entries)  # 0x8000 still cached


def test_first_stage_change_in_vm() -> None:
    """First-stage change, second stage not Bare: IOTINVAL.VMA GV = 1 with DC.iohgatp.GSCID."""
    e = Env()
    g, guest = classic_vm_device(e)
    p1, p2 = e.page(), e.page()
    g.map(0x8000_0000, p1)
    g.map(0x8000_1000, p2)
    t = e.stage1(guest)
    t.map(0x7000, 0x8000_0000)
    e.pdt.set_pc(2, fsc=t.satp(), pscid=8)  # type: ignore[attr-defined]
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    t.map(0x7000, 0x8000_1000)
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.first_stage_changed(4, 8, 0x7000)
    assert e.ring(start) == [vma(gscid=4, pscid=8, addr=0x7000), e.fence_cmd()]
    assert e.spa(1, 0x7010, 2) == p2 + 0x10


def test_first_stage_change_global_mapping() -> None:
    """IVMA: PSCV = 1 excludes global mappings, so a changed G = 1 leaf needs PSCV = 0."""
    e = Env()
    p1, p2 = e.page(), e.page()
    t = e.stage1()
    t.map(0x7000, p1, flags=URWX | A | D | G)
    pdt = ProcessDirectory(e.host, PD20)
    pdt.set_pc(1, fsc=t.satp(), pscid=1)
    pdt.set_pc(2, fsc=t.satp(), pscid=2)
    e.ddt.set_dc(1, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    assert e.spa(1, 0x7010, 1) == p1 + 0x10 and e.spa(1, 0x7010, 2) == p1 + 0x10
    t.map(0x7000, p2, flags=URWX | A | D | G)
    e.drv.first_stage_changed(None, 1, 0x7000)  # PSCV = 1: the global entry survives
    assert e.spa(1, 0x7010, 1) == p1 + 0x10
    start = e.cqt()
    e.drv.first_stage_changed(None, None, 0x7000)
    assert e.ring(start) == [vma(addr=0x7000), e.fence_cmd()]
    assert e.spa(1, 0x7010, 1) == p2 + 0x10 and e.spa(1, 0x7010, 2) == p2 + 0x10


def test_first_stage_change_many_addresses() -> None:
    """One IOTINVAL.VMA per changed leaf; beyond MAX_ADDRESS_INVALIDATIONS one AV = 0."""
    e = Env()
    start = e.cqt()
    e.drv.first_stage_changed(2, 3, [0x1000, 0x5000])
    assert e.ring(start) == [
        vma(gscid=2, pscid=3, addr=0x1000),
        vma(gscid=2, pscid=3, addr=0x5000),
        e.fence_cmd(),
    ]
    start = e.cqt()
    e.drv.first_stage_changed(2, 3, range(0, (MAX_ADDRESS_INVALIDATIONS + 1) * 4096, 4096))
    assert e.ring(start) == [vma(gscid=2, pscid=3), e.fence_cmd()]


def test_g_stage_leaf_change() -> None:
    """Second-stage leaf change for guest-PPN G: IOTINVAL.GVMA GV = AV = 1, ADDR = G."""
    e = Env()
    p1, p2 = e.page(), e.page()
    g = e.gstage()
    g.map(0x4000, p1)
    e.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(6))
    assert e.spa(1, 0x4008) == p1 + 8
    g.map(0x4000, p2)
    assert e.spa(1, 0x4008) == p1 + 8  # stale
    start = e.cqt()
    e.drv.g_stage_changed(6, 0x4008)
    assert e.ring(start) == [gvma(gscid=6, addr=0x4000), e.fence_cmd()]
    assert e.spa(1, 0x4008) == p2 + 8


def test_g_stage_nonleaf_change() -> None:
    """Second-stage non-leaf change: IOTINVAL.GVMA GV = 1, AV = 0."""
    e = Env()
    p1, p2 = e.page(), e.page()
    g = e.gstage()
    g.map(0x4000, p1)
    e.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(6))
    assert e.spa(1, 0x4008) == p1 + 8
    other = e.gstage()  # a level-0 table mapping 0x4000 -> p2, linked from g's level-1 entry
    other.map(0x4000, p2)
    l0 = F.PTE.PPN.get(e.host.read_u64(other.pte_addr(0x4000, 1))) << 12
    e.host.write_u64(g.pte_addr(0x4000, 1), F.PTE.encode(V=1, PPN=l0 >> 12))
    assert e.spa(1, 0x4008) == p1 + 8  # stale
    start = e.cqt()
    e.drv.g_stage_changed(6)
    assert e.ring(start) == [gvma(gscid=6), e.fence_cmd()]
    assert e.spa(1, 0x4008) == p2 + 8


def test_g_stage_change_of_a_gpa_the_dc_holds() -> None:
    """ "The DC has fields that hold a guest-PPN": remapping the guest page of the PDT needs
    IODIR.INVAL_DDT (DV = 1) for the device after the GVMA (the cached PC goes too)."""
    e = Env()
    g, guest = classic_vm_device(e)
    p1, p2 = e.page(), e.page()
    g.map(0x8000_0000, p1)
    g.map(0x8000_1000, p2)
    t1, t2 = e.stage1(guest), e.stage1(guest)
    t1.map(0x7000, 0x8000_0000)
    t2.map(0x7000, 0x8000_1000)
    e.pdt.set_pc(2, fsc=t1.satp(), pscid=8)  # type: ignore[attr-defined]
    assert e.spa(1, 0x7010, 2) == p1 + 0x10
    # the hypervisor moves the guest page of the PDT leaf to a copy whose PC 2 -> t2 (a new
    # PSCID: the cached translations of PSCID 8 stay consistent with their own table)
    leaf_gpa = e.pdt.pc_addr(2) & ~0xFFF  # type: ignore[attr-defined]
    copy = e.page()
    e.mem.write(copy, e.mem.read(guest.to_spa(leaf_gpa), 4096))
    e.host.write_u64(copy + 16 * 2, F.PC_TA.encode(V=1, PSCID=9))
    e.host.write_u64(copy + 16 * 2 + 8, t2.satp())
    g.map(leaf_gpa, copy, flags=URW | A | D)
    assert e.spa(1, 0x7010, 2) == p1 + 0x10  # stale
    start = e.cqt()
    e.drv.g_stage_changed(4, leaf_gpa, device_ids=[1])
    assert e.ring(start) == [gvma(gscid=4, addr=leaf_gpa), inval_ddt(1), e.fence_cmd()]
    assert e.spa(1, 0x7010, 2) == p2 + 0x10


def test_msi_pte_change() -> None:
    """MSI_PT_CHANGE: IOTINVAL.GVMA GV = AV = 1, ADDR = the untranslated MSI address (AV = 0
    for the whole table). The model never caches MSI translations (docs: "every successful
    non-MSI translation"), so no stale result can be shown: only the fresh one."""
    e = Env()
    files = [e.page(), e.page()]
    g = e.gstage()
    msipt = MsiPageTable(e.mem, e.alloc, 16)
    msipt.set_flat(3, files[0])
    e.ddt.set_dc(
        1,
        tc=TC_V,
        iohgatp=g.satp(6),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0xF,
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    w = {"access": rv.Access.WRITE, "length": 4}
    assert e.t(1, 0x2800_3000, **w).addr == files[0]
    msipt.set_flat(3, files[1])
    start = e.cqt()
    e.drv.msi_pte_changed(6, 0x2800_3000)
    e.drv.msi_pte_changed(6)
    flag = e.flag()
    assert e.ring(start) == [
        gvma(gscid=6, addr=0x2800_3000),
        fence(e.drv.fence_addr, flag - 1),
        gvma(gscid=6),
        fence(e.drv.fence_addr, flag),
    ]
    assert e.t(1, 0x2800_3000, **w).addr == files[1]


@pytest.mark.parametrize("revision", ["2024", "2025"])
def test_gipc_rebind(revision: str) -> None:
    """[GIPC] decision #9: after changing PC.iohgatp: IODIR.INVAL_PDT for the PID, then
    IOTINVAL.VMA and IOTINVAL.GVMA with GV = 1 for the old GSCID (PSCV = 1 with the old
    PSCID in the VMA). The old VM's other PASID still translates to its own memory."""
    e = Env(rv.Capabilities.full(gipc=True), rv.IommuParams(gipc_revision=revision))
    fmt = gipc.pc_format(e.io)
    assert fmt is not None
    ga, gb = e.gstage(), e.gstage()
    pa, pa3, pb = e.page(), e.page(), e.page()
    ga.map(0x8000_0000, pa)
    ga.map(0x8000_3000, pa3)
    gb.map(0x8000_0000, pb)

    guests = {id(g): GuestSpace(g, e.alloc) for g in (ga, gb)}

    def table(g: PageTable, gpa: int) -> PageTable:
        t = e.stage1(e.host if fmt.s1_at_spa else guests[id(g)])
        t.map(0x7000, gpa)
        return t

    pdt = ProcessDirectory(e.host, PD20, fmt=fmt)
    pdt.set_pc(1, fsc=table(ga, 0x8000_0000).satp(), pscid=11, iohgatp=ga.satp(1))
    pdt.set_pc(3, fsc=table(ga, 0x8000_3000).satp(), pscid=13, iohgatp=ga.satp(1))
    e.ddt.set_dc(9, tc=TC_V | TC_PDTV | GIPC_TC, fsc=pdt.pdtp())
    assert e.spa(9, 0x7010, 1) == pa + 0x10 and e.spa(9, 0x7010, 3) == pa3 + 0x10
    pdt.set_pc(1, fsc=table(gb, 0x8000_0000).satp(), pscid=11, iohgatp=gb.satp(2))
    assert e.spa(9, 0x7010, 1) == pa + 0x10  # stale: still VM A's memory
    start = e.cqt()
    assert e.drv.gipc_rebind(9, 1, old_gscid=1, old_pscid=11)
    assert e.ring(start) == [
        inval_pdt(9, 1),
        vma(gscid=1, pscid=11),
        gvma(gscid=1),
        e.fence_cmd(),
    ]
    assert e.spa(9, 0x7010, 1) == pb + 0x10  # fresh: VM B's memory
    assert e.spa(9, 0x7010, 3) == pa3 + 0x10
