"""The memory port: SparseMemory, fault injection, and custom ports.

The model reaches memory only through a port (``read``/``write``, optional ``cas``);
see ``riscv_iommu.memory`` and the "Memory" section of docs/api.md.  A port reports a
failed access by raising ``rv.MemoryAccessError`` with ``ACCESS_FAULT`` (PMA/PMP
violation) or ``DATA_CORRUPTION`` (poisoned data), which the model reports with the
spec's access-fault and data-corruption causes (iommu_in_memory_queues.adoc, CAUSE
table; iommu_hw_guidelines.adoc, "Reliability, Availability, and Serviceability").
A/D updates follow the Privileged spec's PTW step 7 (atomic update; through a port
without ``cas`` the model does a read, a compare and a write).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import SV39, TC_GADE, TC_SADE, TC_V
from riscv_iommu import formats as F
from riscv_iommu.host.tables import (
    URW,
    URWX,
    A,
    D,
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    PageAllocator,
    PageTable,
)

MF = rv.MemoryFault
TOP = 1 << 64
PAGE = 4096


# --------------------------------------------------------------------------
# SparseMemory: plain reads and writes
# --------------------------------------------------------------------------
def test_unwritten_memory_reads_zero_and_allocates_nothing() -> None:
    """Sparse memory is zero-filled; reading never allocates a page."""
    m = rv.SparseMemory()
    assert m.read(0x1234_5678, 16) == bytes(16)
    assert m.read(0, 0) == b""
    assert m.read(0xFFC, 8) == bytes(8)  # a cross-page read of unwritten memory
    assert m.read(TOP - 8, 8) == bytes(8)
    assert m.pages() == []


def test_page_allocator_without_zero_fill_writes_nothing() -> None:
    """PageAllocator(zero=False) over a fresh SparseMemory: the same (zero) bytes, no page
    materialised until a table entry is written; the default zero-fills."""
    m = rv.SparseMemory()
    lazy = PageAllocator(m, base=0x1000_0000, zero=False)
    root = lazy.alloc(16384, 16384)
    assert m.pages() == [] and m.read(root, 16384) == bytes(16384)
    g = PageTable(HostSpace(m, lazy), SV39, stage="g")
    g.map(0x4000_0000, 0x8000_0000, size=1 << 30)
    assert m.pages() == [g.root >> 12]  # only the root page with the 1 GiB leaf
    eager = PageAllocator(m, base=0x2000_0000)
    eager.alloc(8192)
    assert m.pages() == [g.root >> 12, 0x20000, 0x20001]


def test_write_then_read_back_within_a_page() -> None:
    m = rv.SparseMemory()
    m.write(0x2010, b"\x01\x02\x03\x04")
    assert m.read(0x2010, 4) == b"\x01\x02\x03\x04"
    assert m.read(0x200E, 8) == b"\x00\x00\x01\x02\x03\x04\x00\x00"
    assert m.pages() == [2]


def test_write_accepts_bytearray_and_memoryview() -> None:
    m = rv.SparseMemory()
    m.write(0x10, bytearray(b"ab"))
    m.write(0x12, memoryview(b"cd"))
    assert m.read(0x10, 4) == b"abcd"


def test_cross_page_write_and_read() -> None:
    """A write straddling a 4 KiB boundary lands in both pages; so does the read."""
    m = rv.SparseMemory()
    data = bytes(range(1, 17))
    m.write(0x5FF8, data)
    assert m.read(0x5FF8, 16) == data
    assert m.read(0x5FF8, 8) == data[:8]
    assert m.read(0x6000, 8) == data[8:]
    assert m.pages() == [5, 6]


def test_write_spanning_three_pages() -> None:
    m = rv.SparseMemory()
    data = bytes((i * 7) & 0xFF for i in range(PAGE + 16))
    m.write(0x1FF8, data)
    assert m.pages() == [1, 2, 3]
    assert m.read(0x1FF8, len(data)) == data
    assert m.read(0x1FF0, 8) == bytes(8)
    assert m.read(0x1FF8 + len(data), 8) == bytes(8)


def test_cross_page_read_with_only_the_second_page_written() -> None:
    m = rv.SparseMemory()
    m.write(0x3000, b"\xaa\xbb")
    assert m.read(0x2FFE, 4) == b"\x00\x00\xaa\xbb"
    assert m.pages() == [3]


def test_top_of_the_64_bit_space() -> None:
    """The last bytes of the 64-bit space are ordinary memory."""
    m = rv.SparseMemory()
    m.write(TOP - 8, b"\x11" * 8)
    assert m.read(TOP - 8, 8) == b"\x11" * 8
    assert m.read(TOP - 1, 1) == b"\x11"
    assert m.read(TOP - 4096, 4096)[-8:] == b"\x11" * 8
    assert m.pages() == [(TOP >> 12) - 1]
    m.write_u64(TOP - 8, 0x0102030405060708)
    assert m.read_u64(TOP - 8) == 0x0102030405060708


@pytest.mark.parametrize(
    ("addr", "size"),
    [(TOP - 4, 8), (TOP, 1), (TOP, 0), (TOP - 1, 2), (TOP + 0x1000, 4)],
)
def test_read_beyond_the_64_bit_space_is_a_value_error(addr: int, size: int) -> None:
    m = rv.SparseMemory()
    with pytest.raises(ValueError, match="addr|size"):
        m.read(addr, size)


@pytest.mark.parametrize(("addr", "size"), [(TOP - 4, 8), (TOP, 1), (TOP - 1, 2)])
def test_write_beyond_the_64_bit_space_is_a_value_error(addr: int, size: int) -> None:
    m = rv.SparseMemory()
    with pytest.raises(ValueError, match="addr|size"):
        m.write(addr, bytes(size))
    assert m.pages() == []  # nothing partially written


@given(
    addr=st.integers(0, TOP - 1),
    data=st.binary(min_size=0, max_size=64),
)
@settings(max_examples=150, deadline=None)
def test_write_read_round_trip_anywhere(addr: int, data: bytes) -> None:
    """Any in-range write reads back unchanged; neighbours stay zero."""
    m = rv.SparseMemory()
    if addr + len(data) > TOP:
        with pytest.raises(ValueError):
            m.write(addr, data)
        return
    m.write(addr, data)
    assert m.read(addr, len(data)) == data
    if addr >= 1:
        assert m.read(addr - 1, 1) == b"\x00"
    if addr + len(data) < TOP:
        assert m.read(addr + len(data), 1) == b"\x00"


# --------------------------------------------------------------------------
# API misuse
# --------------------------------------------------------------------------
@pytest.mark.parametrize("addr", [-1, -0x1000])
def test_negative_address_is_a_value_error_naming_addr(addr: int) -> None:
    m = rv.SparseMemory()
    with pytest.raises(ValueError, match="addr"):
        m.read(addr, 4)
    with pytest.raises(ValueError, match="addr"):
        m.write(addr, b"\x00")
    with pytest.raises(ValueError, match="addr"):
        m.inject(addr, 4, MF.ACCESS_FAULT)


def test_negative_size_is_a_value_error_naming_size() -> None:
    m = rv.SparseMemory()
    with pytest.raises(ValueError, match="size"):
        m.read(0x1000, -1)
    with pytest.raises(ValueError, match="size"):
        m.inject(0x1000, -1, MF.ACCESS_FAULT)


@pytest.mark.parametrize("addr", [1.5, "0x1000", None, True])
def test_non_int_address_to_write_and_inject_is_a_type_error_naming_addr(addr: object) -> None:
    m = rv.SparseMemory()
    with pytest.raises(TypeError, match="addr"):
        m.write(addr, b"\x00")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="addr"):
        m.inject(addr, 4, MF.ACCESS_FAULT)  # type: ignore[arg-type]


def test_non_int_size_to_inject_is_a_type_error_naming_size() -> None:
    m = rv.SparseMemory()
    with pytest.raises(TypeError, match="size"):
        m.inject(0, 4.0, MF.ACCESS_FAULT)  # type: ignore[arg-type]


@pytest.mark.parametrize("addr", [1.5, "0x1000", True])
def test_non_int_address_to_read_is_a_type_error_naming_addr(addr: object) -> None:
    m = rv.SparseMemory()
    with pytest.raises(TypeError, match="addr"):
        m.read(addr, 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [4.0, True])
def test_non_int_size_to_read_is_a_type_error_naming_size(size: object) -> None:
    m = rv.SparseMemory()
    with pytest.raises(TypeError, match="size"):
        m.read(0x1000, size)  # type: ignore[arg-type]


def test_inject_with_a_non_memory_fault_is_a_type_error_naming_fault() -> None:
    m = rv.SparseMemory()
    with pytest.raises(TypeError, match="fault"):
        m.inject(0, 4, "access-fault")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------
def _fails(m: rv.SparseMemory, addr: int, size: int) -> Optional[rv.MemoryFault]:
    try:
        m.read(addr, size)
    except rv.MemoryAccessError as e:
        return e.fault
    return None


@pytest.mark.parametrize("kind", list(MF))
def test_injected_fault_fails_every_access_touching_the_range(kind: rv.MemoryFault) -> None:
    m = rv.SparseMemory()
    m.write(0x4000, b"\x55" * 64)
    m.inject(0x4010, 0x10, kind)
    with pytest.raises(rv.MemoryAccessError) as ei:
        m.read(0x4008, 16)  # overlaps the first byte of the range
    assert (ei.value.fault, ei.value.addr, ei.value.size) == (kind, 0x4008, 16)
    assert _fails(m, 0x401F, 1) is kind  # the last byte
    assert _fails(m, 0x4000, 0x40) is kind  # a superset
    assert _fails(m, 0x4014, 4) is kind  # inside
    # just outside, on either side
    assert m.read(0x4008, 8) == b"\x55" * 8
    assert m.read(0x4020, 8) == b"\x55" * 8
    # writes fail too, and leave memory unchanged
    with pytest.raises(rv.MemoryAccessError) as ei:
        m.write(0x401C, b"\x00" * 8)
    assert (ei.value.fault, ei.value.addr, ei.value.size) == (kind, 0x401C, 8)
    m.clear_injections()
    assert m.read(0x4010, 0x10) == b"\x55" * 0x10


def test_injected_range_across_a_page_boundary() -> None:
    m = rv.SparseMemory()
    m.inject(0x7FFC, 8, MF.ACCESS_FAULT)
    assert _fails(m, 0x7FF8, 8) is MF.ACCESS_FAULT
    assert _fails(m, 0x8000, 4) is MF.ACCESS_FAULT
    assert _fails(m, 0x8004, 4) is None
    assert _fails(m, 0x7FF0, 12) is None


def test_inject_zero_size_is_a_no_op() -> None:
    m = rv.SparseMemory()
    m.inject(0x1000, 0, MF.ACCESS_FAULT)
    assert m.read(0x1000, 8) == bytes(8)


def test_injected_fault_error_message_and_attributes() -> None:
    err = rv.MemoryAccessError(MF.DATA_CORRUPTION, 0x1234, 8)
    assert str(err) == "data-corruption at 0x1234 (+8)"
    assert (err.fault, err.addr, err.size) == (MF.DATA_CORRUPTION, 0x1234, 8)
    assert str(rv.MemoryAccessError(MF.ACCESS_FAULT, 0x10, 4)) == "access-fault at 0x10 (+4)"


@pytest.mark.parametrize("first", list(MF))
def test_access_fault_wins_where_both_overlap(first: rv.MemoryFault) -> None:
    """Access faults take precedence over poison, whatever the injection order."""
    m = rv.SparseMemory()
    second = MF.DATA_CORRUPTION if first is MF.ACCESS_FAULT else MF.ACCESS_FAULT
    m.inject(0x1000, 0x100, first)
    m.inject(0x1000, 0x100, second)
    assert _fails(m, 0x1080, 8) is MF.ACCESS_FAULT


def test_access_fault_wins_when_an_access_touches_both_ranges() -> None:
    m = rv.SparseMemory()
    m.inject(0x1000, 8, MF.DATA_CORRUPTION)
    m.inject(0x1008, 8, MF.ACCESS_FAULT)
    assert _fails(m, 0x1000, 8) is MF.DATA_CORRUPTION
    assert _fails(m, 0x1008, 8) is MF.ACCESS_FAULT
    assert _fails(m, 0x1004, 8) is MF.ACCESS_FAULT
    assert _fails(m, 0x1010, 8) is None


def test_clear_injections_removes_every_injection() -> None:
    m = rv.SparseMemory()
    m.write(0x9000, b"\x12\x34")
    m.inject(0x9000, 2, MF.ACCESS_FAULT)
    m.inject(0x9000, 2, MF.DATA_CORRUPTION)
    m.inject(0xA000, 2, MF.DATA_CORRUPTION)
    m.clear_injections()
    assert m.read(0x9000, 2) == b"\x12\x34"
    assert m.read(0xA000, 2) == b"\x00\x00"
    m.write(0xA000, b"\x01")
    assert m.read(0xA000, 1) == b"\x01"


# --------------------------------------------------------------------------
# cas and the integer conveniences
# --------------------------------------------------------------------------
def test_cas_success_writes_and_returns_the_old_bytes() -> None:
    m = rv.SparseMemory()
    m.write(0x100, b"\x01\x02\x03\x04")
    assert m.cas(0x100, b"\x01\x02\x03\x04", b"\xaa\xbb\xcc\xdd") == b"\x01\x02\x03\x04"
    assert m.read(0x100, 4) == b"\xaa\xbb\xcc\xdd"


def test_cas_mismatch_leaves_memory_and_returns_what_it_found() -> None:
    m = rv.SparseMemory()
    m.write(0x100, b"\x01\x02\x03\x04")
    assert m.cas(0x100, b"\x01\x02\x03\x05", b"\xff" * 4) == b"\x01\x02\x03\x04"
    assert m.read(0x100, 4) == b"\x01\x02\x03\x04"


def test_cas_on_unwritten_memory_compares_with_zeros() -> None:
    m = rv.SparseMemory()
    assert m.cas(0x2FFC, bytes(8), b"\x01" * 8) == bytes(8)  # crosses a page
    assert m.read(0x2FFC, 8) == b"\x01" * 8
    assert m.pages() == [2, 3]


def test_cas_length_mismatch_is_a_value_error() -> None:
    m = rv.SparseMemory()
    with pytest.raises(ValueError, match="same length"):
        m.cas(0, b"\x00" * 8, b"\x00" * 4)


@pytest.mark.parametrize("kind", list(MF))
def test_cas_on_an_injected_range_raises(kind: rv.MemoryFault) -> None:
    m = rv.SparseMemory()
    m.inject(0x100, 8, kind)
    with pytest.raises(rv.MemoryAccessError) as ei:
        m.cas(0x100, bytes(8), b"\x01" * 8)
    assert ei.value.fault is kind
    m.clear_injections()
    assert m.read(0x100, 8) == bytes(8)


def test_u64_and_u32_little_and_big_endian() -> None:
    m = rv.SparseMemory()
    m.write_u64(0x1000, 0x0102_0304_0506_0708)
    assert m.read(0x1000, 8) == bytes.fromhex("0807060504030201")
    assert m.read_u64(0x1000) == 0x0102_0304_0506_0708
    assert m.read_u64(0x1000, big_endian=True) == 0x0807_0605_0403_0201
    m.write_u64(0x1008, 0x0102_0304_0506_0708, big_endian=True)
    assert m.read(0x1008, 8) == bytes.fromhex("0102030405060708")
    m.write_u32(0x1010, 0xA1B2C3D4)
    assert m.read(0x1010, 4) == bytes.fromhex("d4c3b2a1")
    assert m.read_u32(0x1010, big_endian=True) == 0xD4C3B2A1
    m.write_u32(0x1014, 0xA1B2C3D4, big_endian=True)
    assert m.read(0x1014, 4) == bytes.fromhex("a1b2c3d4")
    assert m.read_u32(0x1014) == 0xD4C3B2A1


def test_u64_u32_writes_truncate_to_their_width() -> None:
    m = rv.SparseMemory()
    m.write_u64(0x0, -1)
    assert m.read(0x0, 9) == b"\xff" * 8 + b"\x00"
    m.write_u64(0x10, (1 << 64) | 0x42)
    assert m.read_u64(0x10) == 0x42
    m.write_u32(0x20, 0x1_2345_6789)
    assert m.read(0x20, 5) == bytes.fromhex("8967452300")


def test_u64_across_a_page_boundary() -> None:
    m = rv.SparseMemory()
    m.write_u64(0xFFC, 0x1122_3344_5566_7788)
    assert m.read_u32(0xFFC) == 0x5566_7788
    assert m.read_u32(0x1000) == 0x1122_3344
    assert m.pages() == [0, 1]


@given(
    addr=st.integers(0, TOP - 8),
    value=st.integers(0, TOP - 1),
    big=st.booleans(),
)
@settings(max_examples=100, deadline=None)
def test_u64_round_trip(addr: int, value: int, big: bool) -> None:
    m = rv.SparseMemory()
    m.write_u64(addr, value, big_endian=big)
    assert m.read_u64(addr, big_endian=big) == value
    assert m.read(addr, 8) == value.to_bytes(8, "big" if big else "little")


def test_pages_lists_written_page_numbers_sorted() -> None:
    m = rv.SparseMemory()
    m.write(0x7_0000, b"\x01")
    m.write(0x1000, b"\x01")
    m.write(0x1FFF, b"\x01\x02")  # into page 2
    m.write(0x7_0000, b"\x02")
    m.read(0x9_0000, 64)
    assert m.pages() == [1, 2, 0x70]


def test_sparse_memory_is_a_memory_port() -> None:
    assert isinstance(rv.SparseMemory(), rv.MemoryPort)


# --------------------------------------------------------------------------
# A custom memory port (read/write only) as the IOMMU's memory
# --------------------------------------------------------------------------
class DictPort:
    """A minimal memory port: byte dict, read/write only, with its own fault ranges."""

    def __init__(self) -> None:
        self.bytes: Dict[int, int] = {}
        self.faults: List[Tuple[int, int, rv.MemoryFault, bool]] = []
        self.writes: List[Tuple[int, bytes]] = []
        self.reads: List[Tuple[int, int]] = []
        #: addr -> callable run on each read of that address (to model concurrent agents)
        self.on_read: Dict[int, object] = {}

    def fail(self, addr: int, size: int, fault: rv.MemoryFault, writes_only: bool = False) -> None:
        self.faults.append((addr, addr + size, fault, writes_only))

    def _check(self, addr: int, size: int, write: bool) -> None:
        for lo, hi, fault, writes_only in self.faults:
            if lo < addr + size and addr < hi and (write or not writes_only):
                raise rv.MemoryAccessError(fault, addr, size)

    def read(self, addr: int, size: int) -> bytes:
        self._check(addr, size, False)
        self.reads.append((addr, size))
        hook = self.on_read.get(addr)
        if hook is not None:
            hook()  # type: ignore[operator]
        return bytes(self.bytes.get(addr + i, 0) for i in range(size))

    def write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data), True)
        self.writes.append((addr, bytes(data)))
        for i, b in enumerate(data):
            self.bytes[addr + i] = b

    def u64(self, addr: int) -> int:
        return int.from_bytes(bytes(self.bytes.get(addr + i, 0) for i in range(8)), "little")


class PortSystem:
    """An Iommu over a DictPort, with a 3-level DDT built by the host-side builders."""

    def __init__(self) -> None:
        self.port = DictPort()
        self.iommu = rv.Iommu(self.port, capabilities=rv.Capabilities.full())
        self.alloc = PageAllocator(self.port)
        self.host = HostSpace(self.port, self.alloc)
        self.ddt = DeviceDirectory(self.port, self.alloc, levels=3)
        self.iommu.mmio_write(rv.REG.DDTP, self.ddt.ddtp)

    def t(self, did: int, addr: int, access: rv.Access) -> rv.Response:
        return self.iommu.translate(rv.Request(device_id=did, addr=addr, access=access))


def test_custom_port_has_no_cas() -> None:
    assert not hasattr(DictPort(), "cas")
    assert isinstance(DictPort(), rv.MemoryPort)


def test_custom_port_bare_stages_translation() -> None:
    """P2IOVA through a custom port: DDT walk (GET_DC) reads the port; Bare stages pass."""
    s = PortSystem()
    s.ddt.set_dc(0x12345, tc=TC_V)
    rsp = s.t(0x12345, 0x4567_8000, rv.Access.READ)
    assert (rsp.status, rsp.addr, rsp.fault) == (rv.Status.SUCCESS, 0x4567_8000, None)
    dc = s.ddt.dc_addr(0x12345)
    assert (dc, 8) in s.port.reads


@pytest.mark.parametrize(
    ("access", "ad"), [(rv.Access.READ, A), (rv.Access.WRITE, A | D), (rv.Access.EXECUTE, A)]
)
def test_custom_port_first_stage_ad_update_by_read_compare_write(
    access: rv.Access, ad: int
) -> None:
    """PTW step 7 with DC.tc.SADE=1: A (and D for a write) set through a port without cas."""
    s = PortSystem()
    s1 = PageTable(s.host, SV39, stage="s")
    spa = s.alloc.alloc()
    leaf = s1.map(0x40_0000, spa, flags=URWX)  # A = D = 0
    s.ddt.set_dc(5, tc=TC_V | TC_SADE, fsc=s1.satp())
    before = s.port.u64(leaf)
    rsp = s.t(5, 0x40_0ABC, access)
    assert (rsp.status, rsp.addr, rsp.fault) == (rv.Status.SUCCESS, spa | 0xABC, None)
    assert s.port.u64(leaf) == before | ad
    # the update was one 8-byte write of the whole PTE, after a read of it
    assert s.port.writes[-1] == (leaf, (before | ad).to_bytes(8, "little"))


def test_custom_port_g_stage_ad_update_by_read_compare_write() -> None:
    """PTW step 7 for the G-stage with DC.tc.GADE=1 (Sv39x4), through a port without cas."""
    s = PortSystem()
    g = PageTable(s.host, SV39, stage="g")
    spa = s.alloc.alloc()
    leaf = g.map(0x8000_0000, spa, flags=URWX)
    s.ddt.set_dc(6, tc=TC_V | TC_GADE, iohgatp=g.satp(3))
    rsp = s.t(6, 0x8000_0010, rv.Access.WRITE)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, spa | 0x10)
    assert s.port.u64(leaf) & (A | D) == A | D


def test_custom_port_two_stage_ad_updates() -> None:
    """Two-stage translation through a port: the first-stage PTE update is an implicit
    write through the G-stage (which sets A/D of the G-stage leaf of the PTE's page),
    and the data page's G-stage leaf gets A and D for a write."""
    s = PortSystem()
    g = PageTable(s.host, SV39, stage="g")
    guest = GuestSpace(g, s.alloc)
    s1 = PageTable(guest, SV39, stage="s")
    data_spa = s.alloc.alloc()
    s1_leaf_gpa = s1.map(0x1000, 0x7000_0000, flags=URWX)
    data_leaf = g.map(0x7000_0000, data_spa, flags=URWX)
    # the G-stage leaf of the page holding the first-stage leaf PTE: clear its A/D
    pte_page_leaf = g.map(s1_leaf_gpa & ~0xFFF, guest.to_spa(s1_leaf_gpa) & ~0xFFF, flags=URW)
    s.ddt.set_dc(9, tc=TC_V | TC_SADE | TC_GADE, iohgatp=g.satp(1), fsc=s1.satp())
    rsp = s.t(9, 0x1234, rv.Access.WRITE)
    assert (rsp.status, rsp.addr, rsp.fault) == (rv.Status.SUCCESS, data_spa | 0x234, None)
    s1_leaf_spa = guest.to_spa(s1_leaf_gpa)
    assert s.port.u64(s1_leaf_spa) & (A | D) == A | D
    assert s.port.u64(data_leaf) & (A | D) == A | D
    assert s.port.u64(pte_page_leaf) & (A | D) == A | D


def test_custom_port_pte_changed_before_the_update_is_walked_again() -> None:
    """PTW step 7: if the PTE changed between the walk and the A/D update, the update
    does not land on the stale value: the walk restarts and updates the new PTE."""
    s = PortSystem()
    s1 = PageTable(s.host, SV39, stage="s")
    spa = s.alloc.alloc()
    leaf = s1.map(0x40_0000, spa, flags=URWX)
    s.ddt.set_dc(5, tc=TC_V | TC_SADE, fsc=s1.satp())
    rsw = F.PTE.RSW.mask
    count = {"n": 0}

    def other_agent() -> None:  # on the 2nd read of the leaf (the compare), set RSW bits
        count["n"] += 1
        if count["n"] == 2:
            value = s.port.u64(leaf) | rsw
            for i, b in enumerate(value.to_bytes(8, "little")):
                s.port.bytes[leaf + i] = b

    s.port.on_read[leaf] = other_agent
    before = s.port.u64(leaf)
    rsp = s.t(5, 0x40_0000, rv.Access.WRITE)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, spa)
    assert s.port.u64(leaf) == before | rsw | A | D
    assert count["n"] >= 3  # walked again after the failed compare


@pytest.mark.parametrize(
    ("kind", "access", "cause"),
    [
        (MF.ACCESS_FAULT, rv.Access.READ, rv.Cause.READ_ACCESS_FAULT),
        (MF.ACCESS_FAULT, rv.Access.WRITE, rv.Cause.WRITE_ACCESS_FAULT),
        (MF.ACCESS_FAULT, rv.Access.EXECUTE, rv.Cause.INSTRUCTION_ACCESS_FAULT),
        (MF.DATA_CORRUPTION, rv.Access.READ, rv.Cause.PT_DATA_CORRUPTION),
        (MF.DATA_CORRUPTION, rv.Access.WRITE, rv.Cause.PT_DATA_CORRUPTION),
    ],
)
def test_custom_port_error_on_a_pte_read(
    kind: rv.MemoryFault, access: rv.Access, cause: rv.Cause
) -> None:
    """PTW step 2: an access fault reading a PTE is an access fault of the original
    access type; poisoned PTE data is cause 274 (First/second-stage PT data corruption)."""
    s = PortSystem()
    s1 = PageTable(s.host, SV39, stage="s")
    leaf = s1.map(0x40_0000, s.alloc.alloc(), flags=URWX | A | D)
    s.ddt.set_dc(5, tc=TC_V, fsc=s1.satp())
    s.port.fail(leaf, 8, kind)
    rsp = s.t(5, 0x40_0008, access)
    ttyp = {
        rv.Access.READ: rv.Ttyp.UNTRANSLATED_READ,
        rv.Access.WRITE: rv.Ttyp.UNTRANSLATED_WRITE,
        rv.Access.EXECUTE: rv.Ttyp.UNTRANSLATED_EXECUTE,
    }[access]
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert rsp.fault == rv.FaultRecord(cause=cause, ttyp=ttyp, iotval=0x40_0008, device_id=5)
    assert rsp.reported


def test_custom_port_access_fault_on_the_ad_write() -> None:
    """PTW step 7: the A/D update is a write; its access fault is a write access fault
    (cause 7) and the PTE is left unchanged."""
    s = PortSystem()
    s1 = PageTable(s.host, SV39, stage="s")
    leaf = s1.map(0x40_0000, s.alloc.alloc(), flags=URWX)
    s.ddt.set_dc(5, tc=TC_V | TC_SADE, fsc=s1.satp())
    s.port.fail(leaf, 8, MF.ACCESS_FAULT, writes_only=True)
    before = s.port.u64(leaf)
    rsp = s.t(5, 0x40_0000, rv.Access.WRITE)
    assert rsp.status == rv.Status.COMPLETER_ABORT
    assert rsp.fault == rv.FaultRecord(
        cause=rv.Cause.WRITE_ACCESS_FAULT,
        ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
        iotval=0x40_0000,
        device_id=5,
    )
    assert s.port.u64(leaf) == before


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        (MF.ACCESS_FAULT, rv.Cause.DDT_ENTRY_LOAD_ACCESS_FAULT),
        (MF.DATA_CORRUPTION, rv.Cause.DDT_DATA_CORRUPTION),
    ],
)
def test_custom_port_error_reading_the_dc(kind: rv.MemoryFault, cause: rv.Cause) -> None:
    """GET_DC step 8: an access fault loading the DC is cause 257; poison is cause 268."""
    s = PortSystem()
    dc = s.ddt.set_dc(0x42, tc=TC_V)
    s.port.fail(dc, 64, kind)
    rsp = s.t(0x42, 0x1000, rv.Access.READ)
    assert rsp.status == (
        rv.Status.UNSUPPORTED_REQUEST if kind is MF.ACCESS_FAULT else rv.Status.COMPLETER_ABORT
    )
    assert rsp.fault == rv.FaultRecord(
        cause=cause, ttyp=rv.Ttyp.UNTRANSLATED_READ, iotval=0x1000, device_id=0x42
    )


def test_custom_port_other_exceptions_propagate_unchanged() -> None:
    """Any exception other than MemoryAccessError is a bug in the port and propagates."""

    class Broken(DictPort):
        armed = False

        def read(self, addr: int, size: int) -> bytes:
            if self.armed:
                raise RuntimeError("port bug")
            return super().read(addr, size)

    port = Broken()
    iommu = rv.Iommu(port, capabilities=rv.Capabilities.full())
    alloc = PageAllocator(port)
    ddt = DeviceDirectory(port, alloc, levels=1)
    ddt.set_dc(3, tc=TC_V)
    iommu.mmio_write(rv.REG.DDTP, ddt.ddtp)
    port.armed = True
    with pytest.raises(RuntimeError, match="port bug"):
        iommu.translate(rv.Request(device_id=3, addr=0))


def test_sparse_memory_cas_used_for_ad_updates() -> None:
    """With a port that has cas, the A/D update goes through cas (one atomic operation)."""

    class CasCounting(rv.SparseMemory):
        __slots__ = ("cas_calls",)

        def __init__(self) -> None:
            super().__init__()
            self.cas_calls: List[Tuple[int, bytes, bytes]] = []

        def cas(self, addr: int, expected: bytes, desired: bytes) -> bytes:
            self.cas_calls.append((addr, bytes(expected), bytes(desired)))
            return super().cas(addr, expected, desired)

    mem = CasCounting()
    iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full())
    alloc = PageAllocator(mem)
    host = HostSpace(mem, alloc)
    ddt = DeviceDirectory(mem, alloc, levels=1)
    s1 = PageTable(host, SV39, stage="s")
    spa = alloc.alloc()
    leaf = s1.map(0x5000, spa, flags=URW)  # A = D = 0
    ddt.set_dc(1, tc=TC_V | TC_SADE, fsc=s1.satp())
    iommu.mmio_write(rv.REG.DDTP, ddt.ddtp)
    old = mem.read_u64(leaf)
    rsp = iommu.translate(rv.Request(device_id=1, addr=0x5008, access=rv.Access.WRITE))
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, spa | 8)
    assert mem.cas_calls == [(leaf, old.to_bytes(8, "little"), (old | A | D).to_bytes(8, "little"))]
    assert mem.read_u64(leaf) == old | A | D


def test_custom_port_writes_touch_only_what_the_update_needs() -> None:
    """A read of a page whose PTE already has A set writes nothing through the port."""
    s = PortSystem()
    s1 = PageTable(s.host, SV39, stage="s")
    s1.map(0x40_0000, s.alloc.alloc(), flags=URWX | A)
    s.ddt.set_dc(5, tc=TC_V | TC_SADE, fsc=s1.satp())
    n = len(s.port.writes)
    rsp = s.t(5, 0x40_0000, rv.Access.READ)
    assert rsp.status == rv.Status.SUCCESS
    assert s.port.writes[n:] == []


def test_write_rejects_data_that_is_not_bytes() -> None:
    """SparseMemory.write: an int is not data (bytes(5) would be five zero bytes)."""
    mem = rv.SparseMemory()
    with pytest.raises(TypeError, match="data"):
        mem.write(0, 5)  # type: ignore[arg-type]
