"""Edge cases of several processes that the per-module files do not reach."""

from __future__ import annotations

from typing import List, Tuple

import pytest

import riscv_iommu as rv
from helpers import SV39, TC_EN_ATS, TC_GADE, TC_SADE, TC_V, System, fault
from riscv_iommu import formats as F
from riscv_iommu.host.tables import URW, URWX, A, D, PageAllocator
from riscv_iommu.ioatc import Cache, Iotlb
from riscv_iommu.paging import MAX_AD_RETRIES


class _CasNeverLands(rv.SparseMemory):
    """A port whose compare-and-swap on one address always finds other data."""

    __slots__ = ("stuck", "tries")

    def cas(self, addr: int, expected: bytes, desired: bytes) -> bytes:
        if addr == self.stuck:
            self.tries += 1
            return bytes(b ^ 0xFF for b in expected)
        return super().cas(addr, expected, desired)


def _stuck_system(stage: str) -> Tuple[System, _CasNeverLands]:
    s = System()
    mem = _CasNeverLands()
    mem.tries = 0
    s.mem = mem
    s.iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full())
    s.alloc = PageAllocator(mem)
    s.host.mem = mem
    s.host.allocator = s.alloc
    from riscv_iommu.host.tables import DeviceDirectory

    s.ddt = DeviceDirectory(mem, s.alloc, levels=3)
    s.iommu.mmio_write(rv.REG.DDTP, s.ddt.ddtp)
    if stage == "s":
        s1 = s.stage1()
        mem.stuck = s1.map(0x1000, 0x8000_0000, flags=URWX)  # A = 0: an update is needed
        s.ddt.set_dc(1, tc=TC_V | TC_SADE, fsc=s1.satp())
    else:
        g = s.gstage(SV39)
        mem.stuck = g.map(0x1000, 0x8000_0000, flags=URWX)
        s.ddt.set_dc(1, tc=TC_V | TC_GADE, iohgatp=g.satp(1))
    return s, mem


@pytest.mark.parametrize("stage", ["s", "g"])
def test_ptw_step7_restarts_when_the_pte_changed_and_gives_up_with_an_access_fault(
    stage: str,
) -> None:
    """PTW step 7: a failed atomic A/D update restarts the walk; a port that never lets
    it land ends, after MAX_AD_RETRIES, in an access fault on the PTE (docs/translation.md)."""
    s, mem = _stuck_system(stage)
    rsp = s.t(1, 0x1000, rv.Access.WRITE)
    assert fault(rsp) == rv.FaultRecord(
        cause=rv.Cause.WRITE_ACCESS_FAULT,
        ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
        iotval=0x1000,
        device_id=1,
    )
    assert mem.tries == MAX_AD_RETRIES + 1


def test_page_crossing_request_in_bare_mode_is_misaligned() -> None:
    """Bare mode (step 2) still rejects a request whose bytes cross a 4 KiB page (4 / 6)."""
    s = System()
    s.iommu.mmio_write(rv.REG.DDTP, rv.IommuMode.BARE)
    rsp = s.t(1, 0xFFC, rv.Access.WRITE, length=8)
    assert fault(rsp).cause == rv.Cause.WRITE_ADDRESS_MISALIGNED
    assert s.t(1, 0xFF8, length=8).addr == 0xFF8


def test_cached_g_stage_entry_without_the_permission_walks_again() -> None:
    """A cached translation that the G-stage PTE would not grant is not used: the walk
    reports the guest-page fault from memory."""
    s = System()
    g = s.gstage(SV39)
    spa = s.page()
    g.map(0x4000, spa, flags=URW | A | D)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(3))
    assert s.t(1, 0x4000).addr == spa  # cached (R/W)
    rsp = s.t(1, 0x4000, rv.Access.EXECUTE)
    assert fault(rsp).cause == rv.Cause.INSTRUCTION_GUEST_PAGE_FAULT
    assert fault(rsp).iotval2 == 0x4000


def test_front_cache_is_bounded_by_the_iotlb_capacity() -> None:
    """The whole-response cache never holds more entries than iotlb_size."""
    s = System(params=rv.IommuParams(iotlb_size=4))
    s1 = s.stage1()
    for k in range(8):
        s1.map(k << 12, 0x8000_0000 + (k << 12))
    s.ddt.set_dc(1, tc=TC_V, fsc=s1.satp())
    for k in range(8):
        assert s.t(1, k << 12).addr == 0x8000_0000 + (k << 12)
    assert len(s.iommu.ioatc.front) <= 4 and len(s.iommu.iotlb) <= 4


def test_iodir_did_wider_than_the_implemented_device_id_is_illegal() -> None:
    """IODIR: a DID wider than IommuParams.device_id_width is illegal (cmd_ill)."""
    s = System(params=rv.IommuParams(device_id_width=8))
    cq = s.page()
    io = s.iommu
    io.mmio_write(rv.REG.CQB, F.QUEUE_BASE.encode(LOG2SZ_1=1, PPN=cq >> 12))
    io.mmio_write(rv.REG.CQCSR, 1, 4)
    s.mem.write_u64(cq, F.CMD_IODIR0.encode(opcode=3, func3=0, DV=1, DID=0x100))
    io.mmio_write(rv.REG.CQT, 1, 4)
    assert io.mmio_read(rv.REG.CQCSR, 4) & F.CQCSR.cmd_ill.mask
    assert io.mmio_read(rv.REG.CQH, 4) == 0


def test_page_request_api_edge() -> None:
    """page_request() takes a PageRequest."""
    s = System()
    with pytest.raises(TypeError, match="PageRequest"):
        s.iommu.page_request(rv.Request(1, 0))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode,cause", [(0, 256), (1, 260)])
def test_invalidation_completion_with_iommu_off_or_bare(mode: int, cause: int) -> None:
    """An Invalidation Completion finds no DC in Off / Bare mode: a TTYP 9 record."""
    s = System()
    fq = s.page()
    io = s.iommu
    io.mmio_write(rv.REG.FQB, F.QUEUE_BASE.encode(LOG2SZ_1=3, PPN=fq >> 12))
    io.mmio_write(rv.REG.FQCSR, 1, 4)
    io.mmio_write(rv.REG.DDTP, mode)
    assert io.invalidation_completion(5, 1) == 0
    assert rv.FaultRecord.from_bytes(s.mem.read(fq, 32)) == rv.FaultRecord(
        cause=cause, ttyp=rv.Ttyp.PCIE_MESSAGE, iotval=0x02, device_id=5
    )


def test_switching_from_wired_to_msi_releases_the_wires() -> None:
    """fctl.WSI 1 -> 0: the wires an ipsr bit held high go low."""
    levels: List[Tuple[int, bool]] = []
    s = System(fctl=2, params=rv.IommuParams(be_writable=True))
    io = s.iommu
    io.on_wired_interrupt = lambda v, lvl: levels.append((v, lvl))
    io.mmio_write(rv.REG.ICVEC, 0x0030)  # fiv = 3
    fq = s.page()
    io.mmio_write(rv.REG.FQB, F.QUEUE_BASE.encode(LOG2SZ_1=3, PPN=fq >> 12))
    io.mmio_write(rv.REG.FQCSR, 3, 4)
    s.t(9, 0)  # a fault record -> fip -> wire 3 high
    assert levels == [(3, True)]
    io.mmio_write(rv.REG.FCTL, 0, 4)  # IGS = BOTH: WSI is writable
    assert levels == [(3, True), (3, False)]


def test_message_reprs_are_hex() -> None:
    """The outbound ATS messages print their fields in hex."""
    assert repr(rv.InvalidationRequest(0x102, 0x4000, itag=3)) == (
        "InvalidationRequest(device_id=0x102, addr=0x4000, s=False, global_=False, "
        "pasid=None, segment=None, itag=3)"
    )
    assert repr(rv.PageRequestGroupResponse(0x102, 5, 0xF, pasid=7)) == (
        "PageRequestGroupResponse(device_id=0x102, prg_index=0x5, response_code=0xf, "
        "pasid=0x7, segment=None)"
    )


def test_params_reject_a_negative_ats_timeout() -> None:
    """IommuParams.ats_inval_timeout must be >= 0."""
    with pytest.raises(ValueError, match="ats_inval_timeout"):
        rv.IommuParams(ats_inval_timeout=-1)


def test_iotlb_clear_and_touch() -> None:
    """Iotlb.clear() empties every index; touch() of a missing key is harmless."""
    t = Iotlb(4, lru=True)
    e = (0x8000_0000, 4096, -1, -1, 0x1000, 4096, 0x1000, 4096)
    key = t.insert(1, 2, 0x1000, e)
    assert key is not None
    assert t.lookup(1, 2, 0x1234) == (key, (0x8000_0000, 4096, -1, -1, (1, 4096, 0x1000), None))
    t.touch((9, 9, 12, 9))
    t.touch(key)
    fifo = Iotlb(4, lru=False)
    fk = fifo.insert(1, 2, 0x1000, e)
    assert fk is not None
    fifo.touch(fk)  # no LRU: nothing moves
    t.clear()
    assert len(t) == 0 and t.lookup(1, 2, 0x1000) is None
    assert not t.by_tag and not t.by_s1 and not t.by_gpa and not t.shifts


def test_cache_refill_of_a_present_key_replaces_it() -> None:
    """Cache.put of a key already cached replaces the value (one entry, two fills, nothing
    evicted) and makes it the most recent; a capacity-0 IOTLB inserts nothing."""
    c = Cache("PDT", 2, grouped=True)
    c.put((1, 5), "a")
    c.put((1, 6), "b")
    c.put((1, 5), "c")
    assert list(c.entries.items()) == [((1, 6), "b"), ((1, 5), "c")]
    assert (c.stats.fills, c.stats.evictions, c.groups) == (3, 0, {1: {(1, 5), (1, 6)}})
    assert Iotlb(0).insert(1, 2, 0x1000, (0, 4096, -1, -1, 0, 4096, 0, 4096)) is None


def test_iotlb_pieces_of_one_first_stage_superpage_share_an_index() -> None:
    """Two 4 KiB pieces of one 2 MiB first-stage leaf: one by_s1 index holds both, and
    IOTINVAL.VMA of an address in the leaf drops both; nothing is left indexed."""
    t = Iotlb(8)
    for va in (0x20_0000, 0x20_1000):
        t.fill(5, 7, False, va, 0x8000_0000 + va, 4096, 0xCF, 1 << 21, 0xDF, va, 4096)
    assert t.by_s1 == {(5, 7, 21, 1): set(t.entries)} and len(t) == 2
    assert t.inval_vma(True, 5, True, 7, 0x3F_F000, 0x3F_F000) == 2
    assert not t.by_s1 and not t.by_gpa and not t.by_tag and not t.shifts


def test_mrif_pending_bit_already_set_still_sends_the_notice() -> None:
    """MRIF recording: an identity already pending is not written again; the notice goes out."""
    s = System(params=rv.IommuParams(mrif_by_iommu=True))
    g = s.gstage(SV39)
    msipt = s.msipt(4)
    mrif = s.alloc.alloc(512, 512)
    notice = s.page()
    msipt.set_mrif(0, mrif, notice, 0x7FF)
    s.ddt.set_dc(
        1,
        tc=TC_V | TC_EN_ATS,
        iohgatp=g.satp(1),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0,
        msi_addr_pattern=0x2800_0000 >> 12,
    )
    s.mem.write_u64(mrif, 1 << 5)
    rsp = s.t(1, 0x2800_0000, rv.Access.WRITE, length=4, data=5)
    assert rsp.is_mrif and s.mem.read_u64(mrif) == 1 << 5
    assert s.mem.read_u32(notice) == 0x7FF


def test_front_cache_of_bare_translations_is_bounded() -> None:
    """Responses of a DC with both stages Bare (nothing in the IOTLB) stay bounded too."""
    s = System(params=rv.IommuParams(iotlb_size=4))
    s.ddt.set_dc(1, tc=TC_V)
    for k in range(9):
        assert s.t(1, k << 12).addr == k << 12
    assert 0 < len(s.iommu.ioatc.front) <= 4


class _CasFaults(rv.SparseMemory):
    """A port whose compare-and-swap at one address is an access fault."""

    __slots__ = ("bad",)

    def cas(self, addr: int, expected: bytes, desired: bytes) -> bytes:
        if addr == self.bad:
            raise rv.MemoryAccessError(rv.MemoryFault.ACCESS_FAULT, addr, len(expected))
        return super().cas(addr, expected, desired)


def test_g_stage_ad_update_access_fault_is_an_access_fault() -> None:
    """PTW step 7 on a G-stage leaf: an access fault on the atomic update is cause 5/7."""
    s = System()
    mem = _CasFaults()
    s.mem = mem
    s.iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full())
    s.alloc = PageAllocator(mem)
    s.host.mem = mem
    s.host.allocator = s.alloc
    from riscv_iommu.host.tables import DeviceDirectory

    s.ddt = DeviceDirectory(mem, s.alloc, levels=3)
    s.iommu.mmio_write(rv.REG.DDTP, s.ddt.ddtp)
    g = s.gstage(SV39)
    mem.bad = g.map(0x1000, 0x8000_0000, flags=URWX)  # A = 0
    s.ddt.set_dc(1, tc=TC_V | TC_GADE, iohgatp=g.satp(1))
    assert fault(s.t(1, 0x1000)).cause == rv.Cause.READ_ACCESS_FAULT


def test_fault_record_beyond_pas_is_a_queue_memory_fault() -> None:
    """A fault-queue slot at or beyond 2^PAS cannot be written: fqmf."""
    s = System(caps=rv.Capabilities.full(pas=40))
    io = s.iommu
    top = (1 << 28) - 1  # the last page below 2^40
    io.mmio_write(rv.REG.FQB, F.QUEUE_BASE.encode(LOG2SZ_1=8, PPN=top))
    io.mmio_write(rv.REG.FQCSR, 1, 4)
    for _ in range(128):  # 128 records fill the last page; the next slot is beyond PAS
        s.t(9, 0)
    assert io.mmio_read(rv.REG.FQT, 4) == 128
    assert not io.mmio_read(rv.REG.FQCSR, 4) & F.FQCSR.fqmf.mask
    s.t(9, 0)
    assert io.mmio_read(rv.REG.FQCSR, 4) & F.FQCSR.fqmf.mask
    assert io.mmio_read(rv.REG.FQT, 4) == 128


def test_host_builders_reject_misuse() -> None:
    """The host-side builders raise clear errors for impossible requests."""
    s = System()
    with pytest.raises(ValueError, match="power of two"):
        s.alloc.alloc(4096, 3000)
    small = PageAllocator(s.mem, base=0x1000, limit=0x3000)
    small.alloc()
    small.alloc()
    with pytest.raises(MemoryError):
        small.alloc()
    g = s.gstage(SV39)
    guest = s.guest(g)
    with pytest.raises(ValueError, match="not backed"):
        guest.to_spa(0x1234_5000)
    with pytest.raises(ValueError, match="page size"):
        s.stage1().map(0, 0, size=8192)


def test_clear_pc_invalidates_a_process_context() -> None:
    """ProcessDirectory.clear_pc() zeroes the PC: the next walk finds it not valid (266)."""
    s = System()
    pdt = s.pdt()
    pdt.set_pc(7)
    s.ddt.set_dc(1, tc=TC_V | F.DC_TC.PDTV.mask, fsc=pdt.pdtp())
    assert s.t(1, 0x1000, process_id=7).status == rv.Status.SUCCESS
    pdt.clear_pc(7)
    s.iommu.invalidate_pdt(1, 7)
    assert fault(s.t(1, 0x1000, process_id=7)).cause == rv.Cause.PDT_ENTRY_NOT_VALID


def test_fctl_gxl_change_revalidates_cached_device_contexts() -> None:
    """Changing fctl.GXL with cached DCs (UNSPECIFIED by the spec) never crashes: the
    cached DC is dropped and re-checked, and an Sv39x4 iohgatp is invalid under GXL=1."""
    s = System(params=rv.IommuParams(gxl_writable=True))
    g = s.gstage(SV39)
    spa = s.page()
    g.map(0x1000, spa)
    s.ddt.set_dc(1, tc=TC_V, iohgatp=g.satp(1))
    assert s.t(1, 0x1000).addr == spa
    s.iommu.mmio_write(rv.REG.FCTL, F.FCTL.GXL.mask, 4)
    assert s.iommu.mmio_read(rv.REG.FCTL, 4) & F.FCTL.GXL.mask
    assert fault(s.t(1, 0x1000)).cause == rv.Cause.DDT_ENTRY_MISCONFIGURED
    assert len(s.iommu.iotlb) == 0
