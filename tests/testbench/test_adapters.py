"""riscv_iommu.testbench memory adapters, in plain Python (fake simulator handles).

The same adapters run against Icarus in test_cocotb.py; here every rule is
checked with handles whose behaviour the test controls: cocotb's deferred
writes (applied when time moves on), X/Z values, array bounds.
"""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any, Dict, List, Optional

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.tables import DeviceDirectory, HostSpace, PageAllocator, PageTable
from riscv_iommu.testbench import BackdoorMemory, MemoryWindow, logic_to_int


class Logic:
    """An HDL value as cocotb gives it: int() fails unless every bit is 0 or 1."""

    def __init__(self, bits: str) -> None:
        self.bits = bits

    def __int__(self) -> int:
        if self.bits.strip("01"):
            raise ValueError(f"Cannot convert {self.bits} to int")
        return int(self.bits, 2)

    def __str__(self) -> str:
        return self.bits


class Element:
    """One array element: writes land when the simulator applies them."""

    def __init__(self, sim: "Sim", width: int) -> None:
        self.sim = sim
        self.width = width
        self.current: Any = Logic("x" * width)  # uninitialised

    @property
    def value(self) -> Any:
        return self.current

    @value.setter
    def value(self, v: Any) -> None:
        if isinstance(v, Immediate):
            self.current = v.value
        else:
            self.sim.pending.append((self, v))

    def __len__(self) -> int:
        return self.width


class Sim:
    """A simulator with a time and cocotb's deferred writes."""

    def __init__(self) -> None:
        self.time = 0
        self.pending: List[Any] = []

    def step(self) -> None:
        """The end of the time step: pending writes land, time moves on."""
        for element, v in self.pending:
            element.current = v
        self.pending.clear()
        self.time += 1


class Array:
    """``reg [width-1:0] mem [left:right]``."""

    def __init__(self, sim: Sim, words: int, width: int = 64, left: int = 0) -> None:
        self.left = left
        self.right = left + words - 1
        self.elements = {left + i: Element(sim, width) for i in range(words)}

    def __getitem__(self, index: int) -> Element:
        return self.elements[index]

    def __len__(self) -> int:
        return len(self.elements)


class Immediate:
    def __init__(self, value: int) -> None:
        self.value = value


BASE = 0x8000_0000


def backdoor(words: int = 64, **kw: Any) -> tuple[Sim, Array, BackdoorMemory]:
    sim = Sim()
    arr = Array(sim, words, **{k: kw.pop(k) for k in ("width", "left") if k in kw})
    return sim, arr, BackdoorMemory(arr, base=BASE, now=lambda: sim.time, **kw)


# ---------------------------------------------------------------------------
# logic_to_int
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (0x1234, 0x1234),
        (Logic("1011"), 0b1011),
        (Logic("1x0z"), 0b1000),  # X and Z read as 0
        (Logic("UW-L1H"), 0b000011),  # 9-state: U W - L as 0, H (weak 1) as 1
        ("10X1", 0b1001),  # a binary string
        (True, 1),
    ],
)
def test_logic_to_int(value: Any, expected: int) -> None:
    assert logic_to_int(value) == expected


@pytest.mark.parametrize("value", ["12", "", Logic("0q1"), object()])
def test_logic_to_int_rejects_what_is_not_an_hdl_value(value: Any) -> None:
    with pytest.raises(ValueError, match="not an HDL value"):
        logic_to_int(value)


def test_logic_to_int_with_cocotb_values() -> None:
    types_ = pytest.importorskip("cocotb.types")
    assert logic_to_int(types_.LogicArray("10XZ")) == 0b1000
    assert logic_to_int(types_.LogicArray("0110")) == 0b0110
    assert logic_to_int(types_.Logic("X")) == 0


# ---------------------------------------------------------------------------
# MemoryWindow
# ---------------------------------------------------------------------------
def test_memory_window_passes_accesses_inside_and_faults_outside() -> None:
    mem = rv.SparseMemory()
    win = MemoryWindow(mem, 0x1000, 0x2000)
    win.write(0x1000, b"\x01\x02")
    win.write(0x2FF8, bytes(range(8)))
    assert mem.read(0x1000, 2) == b"\x01\x02"
    assert win.read(0x2FF8, 8) == bytes(range(8))
    for addr, size in ((0xFFF, 1), (0x2FF9, 8), (0x3000, 1)):
        with pytest.raises(rv.MemoryAccessError) as err:
            win.read(addr, size)
        assert (err.value.fault, err.value.addr, err.value.size) == (
            rv.MemoryFault.ACCESS_FAULT,
            addr,
            size,
        )
    with pytest.raises(rv.MemoryAccessError):
        win.write(0x0FFF, b"\x00\x00")
    assert mem.read(0x0FFF, 1) == b"\x00"


def test_memory_window_makes_the_model_report_access_faults() -> None:
    """A DDT outside the window: DDT entry load access fault (257), not a port error."""
    mem = rv.SparseMemory()
    io = rv.Iommu(MemoryWindow(mem, 0x8000_0000, 0x10_0000))
    io.mmio_write(rv.REG.DDTP, (0x9000_0000 >> 12) << 10 | rv.IommuMode.LVL1)
    rsp = io.translate(rv.Request(device_id=1, addr=0x1000))
    assert rsp.status == rv.Status.UNSUPPORTED_REQUEST
    assert rsp.fault is not None
    assert rsp.fault.cause == rv.Cause.DDT_ENTRY_LOAD_ACCESS_FAULT
    assert rsp.fault.iotval == 0x1000


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((object(), 0, 1), TypeError, "mem must have read"),
        ((rv.SparseMemory(), True, 1), TypeError, "base must be an int"),
        ((rv.SparseMemory(), -1, 1), ValueError, "base -0x1 is outside"),
        ((rv.SparseMemory(), 0, 1 << 64), ValueError, "size 0x10000000000000000 is outside"),
        ((rv.SparseMemory(), 1 << 63, 1 << 63 | 1), ValueError, "beyond the 64-bit"),
    ],
)
def test_memory_window_misuse(args: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        MemoryWindow(*args)


# ---------------------------------------------------------------------------
# BackdoorMemory
# ---------------------------------------------------------------------------
def test_backdoor_geometry_from_the_handle() -> None:
    sim = Sim()
    arr = Array(sim, 16, width=32, left=4)
    bd = BackdoorMemory(arr, base=BASE, now=lambda: sim.time)
    assert (bd.word_bytes, bd.depth, bd.first_index, bd.end) == (4, 16, 4, BASE + 64)
    bd.write(BASE, b"\x11\x22\x33\x44")
    sim.step()
    assert int(arr[4].value) == 0x44332211  # word 0 of the window is the lowest index


def test_backdoor_explicit_geometry_and_a_handle_without_bounds() -> None:
    sim = Sim()
    arr = Array(sim, 8)
    plain: Dict[int, Element] = dict(arr.elements)  # no left/right, no len()

    class Bare:
        def __getitem__(self, i: int) -> Element:
            return plain[i]

    bd = BackdoorMemory(Bare(), base=BASE, word_bytes=8, depth=4, now=lambda: sim.time)
    assert (bd.first_index, bd.end) == (0, BASE + 32)
    with pytest.raises(rv.MemoryAccessError):
        bd.read(BASE + 32, 1)  # the window is 4 words, though the array has 8


def test_backdoor_reads_x_as_zero_and_counts_handle_accesses() -> None:
    _, arr, bd = backdoor()
    assert "x" in str(arr[3].value)
    assert bd.read(BASE + 24, 8) == bytes(8)
    assert bd.read(BASE + 20, 16) == bytes(16)  # three words
    assert (bd.handle_reads, bd.handle_writes) == (4, 0)


def test_backdoor_write_shadow_covers_deferred_writes_until_time_moves() -> None:
    sim, arr, bd = backdoor()
    bd.write(BASE + 8, (0x1122334455667788).to_bytes(8, "little"))
    assert "x" in str(arr[1].value)  # not applied yet (cocotb applies at the step's end)
    assert bd.read(BASE + 8, 8) == (0x1122334455667788).to_bytes(8, "little")  # the shadow
    assert bd.handle_reads == 0
    sim.step()
    assert int(arr[1].value) == 0x1122334455667788
    # the RTL writes the word later: the shadow is gone, the array is read
    arr[1].current = Logic(format(0xAA, "064b"))
    sim.time += 1
    assert bd.read(BASE + 8, 1) == b"\xaa"
    assert bd.handle_reads == 1


def test_backdoor_partial_and_unaligned_accesses() -> None:
    sim, arr, bd = backdoor()
    bd.write(BASE, bytes(range(1, 17)))  # two whole words
    bd.write(BASE + 6, b"\xee\xff\xdd")  # spans the two words: read, merge, write
    assert bd.read(BASE + 4, 8) == b"\x05\x06\xee\xff\xdd\x0a\x0b\x0c"
    sim.step()
    assert int(arr[0].value) == int.from_bytes(b"\x01\x02\x03\x04\x05\x06\xee\xff", "little")
    assert int(arr[1].value) == int.from_bytes(b"\xdd\x0a\x0b\x0c\x0d\x0e\x0f\x10", "little")
    bd.write(BASE + 3, b"")
    assert bd.read(BASE + 3, 0) == b""
    bd.write(BASE + 16, bytearray(b"\x07"))  # onto X: X reads as 0
    assert bd.read(BASE + 16, 8) == b"\x07" + bytes(7)


def test_backdoor_window_bounds() -> None:
    _, _, bd = backdoor(words=4)
    assert bd.read(BASE + 24, 8) == bytes(8)
    for addr, size in ((BASE - 1, 1), (BASE + 25, 8), (BASE + 32, 1)):
        with pytest.raises(rv.MemoryAccessError) as err:
            bd.read(addr, size)
        assert err.value.fault is rv.MemoryFault.ACCESS_FAULT
    with pytest.raises(rv.MemoryAccessError):
        bd.write(BASE + 30, b"\x00\x00\x00")


def test_backdoor_immediate_writes_and_cocotb_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """immediate=True writes cocotb's Immediate; without ``now`` cocotb's sim time is used
    (both imported only when first needed)."""
    sim = Sim()
    fake_cocotb = types.ModuleType("cocotb")
    handle = types.ModuleType("cocotb.handle")
    simtime = types.ModuleType("cocotb.simtime")
    handle.Immediate = Immediate  # type: ignore[attr-defined]
    calls: List[str] = []

    def get_sim_time(unit: str) -> int:
        calls.append(unit)
        return sim.time

    simtime.get_sim_time = get_sim_time  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cocotb", fake_cocotb)
    monkeypatch.setitem(sys.modules, "cocotb.handle", handle)
    monkeypatch.setitem(sys.modules, "cocotb.simtime", simtime)
    arr = Array(sim, 4)
    bd = BackdoorMemory(arr, base=BASE, immediate=True)
    bd.write(BASE + 8, (5).to_bytes(8, "little"))
    assert arr[1].current == 5 and not sim.pending  # in the array at once
    assert bd.read(BASE + 8, 8) == (5).to_bytes(8, "little")
    assert calls and set(calls) == {"step"}


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"array": 5}, TypeError, "indexable simulator handle"),
        ({"first_index": True}, TypeError, "first_index must be an int"),
        ({"width": 12}, ValueError, "12 bits wide: give word_bytes"),
        ({"word_bytes": 0}, ValueError, "must be positive"),
        ({"depth": 0}, ValueError, "must be positive"),
        ({"base": -8}, ValueError, "base -0x8 is outside"),
        ({"base": (1 << 64) - 8, "depth": 2}, ValueError, "beyond the 64-bit"),
        ({"now": 3}, TypeError, "now must be a callable"),
    ],
)
def test_backdoor_misuse(kw: Dict[str, Any], error: type, match: str) -> None:
    sim = Sim()
    arr: Any = kw.pop("array", Array(sim, 8, width=kw.pop("width", 64)))
    kw.setdefault("base", BASE)
    with pytest.raises(error, match=match):
        BackdoorMemory(arr, **kw)


def test_the_model_walks_tables_built_through_the_back_door() -> None:
    """Host builders write, the model translates, all in one time step (the shadow),
    and again once the writes have landed (the array)."""
    sim, arr, bd = backdoor(words=8 * 512)  # 32 KiB
    alloc = PageAllocator(bd, base=BASE, limit=bd.end)
    params = rv.IommuParams(ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0)
    io = rv.Iommu(bd, params=params)
    ddt = DeviceDirectory(bd, alloc, levels=1)
    table = PageTable(HostSpace(bd, alloc), mode=8)
    data = alloc.alloc()
    table.map(0x4000_0000, data)
    ddt.set_dc(3, tc=1, fsc=table.satp())
    io.mmio_write(rv.REG.DDTP, ddt.ddtp)
    req = rv.Request(device_id=3, addr=0x4000_0ABC, access=rv.Access.WRITE)
    expected: Optional[rv.Response] = io.translate(req)
    assert expected is not None and (expected.status, expected.addr) == (
        rv.Status.SUCCESS,
        data + 0xABC,
    )
    assert bd.handle_reads == 0  # everything came from the shadow
    sim.step()
    assert io.translate(req) == expected
    assert bd.handle_reads > 0
    with pytest.raises(MemoryError, match="exhausted"):
        for _ in range(8):
            alloc.alloc()


def test_page_allocator_base_and_limit() -> None:
    """The host builders' allocator stays in [base, limit) and says so when it is full."""
    mem = rv.SparseMemory()
    alloc = PageAllocator(mem, base=0x8000_0000, limit=0x8000_3000)
    assert [alloc.alloc() for _ in range(3)] == [0x8000_0000, 0x8000_1000, 0x8000_2000]
    with pytest.raises(MemoryError) as err:
        alloc.alloc(16, 16)
    assert str(err.value) == (
        "PageAllocator exhausted: 0x10 bytes at 0x80003000 would pass its limit 0x80003000 "
        "(base 0x80000000)"
    )
    with pytest.raises(ValueError, match="base 0x2000 is above its limit 0x1000"):
        PageAllocator(mem, base=0x2000, limit=0x1000)


def test_the_package_imports_nothing_optional() -> None:
    """riscv_iommu.testbench imports only the standard library (and the model) at import."""
    code = (
        "import sys, riscv_iommu.testbench; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('cocotb', 'cocotb_tools', 'cocotbext', 'pyuvm', 'pytest')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_cocotbext_axi_sparse_memory_is_a_memory_port() -> None:
    """The easy path: cocotbext-axi's SparseMemory (what AxiRam(mem=...) serves) is the
    model's memory as it is; the host builders write to it directly."""
    sparse = pytest.importorskip("cocotbext.axi.sparse_memory")
    shared = sparse.SparseMemory(1 << 56)
    alloc = PageAllocator(shared)
    io = rv.Iommu(shared)
    ddt = DeviceDirectory(shared, alloc, levels=2)
    table = PageTable(HostSpace(shared, alloc), mode=8)
    data = alloc.alloc()
    table.map(0x1000_0000, data)
    ddt.set_dc(0x42, tc=1, fsc=table.satp())
    io.mmio_write(rv.REG.DDTP, ddt.ddtp)
    rsp = io.translate(rv.Request(device_id=0x42, addr=0x1000_0008, access=rv.Access.WRITE))
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, data + 8)
    # beyond its size it raises ValueError (a port error): a MemoryWindow makes it a fault
    small = rv.Iommu(MemoryWindow(sparse.SparseMemory(1 << 40), 0, 1 << 40))
    small.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=rv.IommuMode.LVL3, PPN=1 << 38))
    fault = small.translate(rv.Request(device_id=0x42, addr=0)).fault
    assert fault is not None and fault.cause == rv.Cause.DDT_ENTRY_LOAD_ACCESS_FAULT
