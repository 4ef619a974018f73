"""cocotb tests (run by test_cocotb.py): the model's memory is an RTL memory array.

bd_mem.v holds ``reg [63:0] mem [0:4095]`` (32 KiB), never initialised.
``BackdoorMemory(dut.mem, base=RAM_BASE)`` makes it the model's memory port:
the host builders write the DDT and page tables into it, the model walks
them, the RTL reads the data at the translated address and writes a new PTE
that the model then uses.
"""

from __future__ import annotations

import os
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.tables import (
    URWX,
    A,
    D,
    DeviceDirectory,
    HostSpace,
    PageAllocator,
    PageTable,
    pte,
)
from riscv_iommu.testbench import BackdoorMemory

RAM_BASE = 0x8000_0000
RAM_BYTES = 4096 * 8
DEVICE = 0x7
IOVA = 0x4000_0000
NO_CACHES = rv.IommuParams(
    ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=0
)


def _report(line: str) -> None:
    out = os.environ.get("TB_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


async def rtl_read(dut: Any, addr: int) -> int:
    dut.rd_index.value = (addr - RAM_BASE) // 8
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    return int(dut.rd_data.value)


@cocotb.test()
async def model_tables_in_rtl_memory(dut: Any) -> None:
    """Tables built through the back door, walked by the model, data read by the RTL."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.wr_en.value = 0
    dut.rd_index.value = 0
    await Timer(1, unit="ns")
    bd = BackdoorMemory(dut.mem, base=RAM_BASE)
    assert (bd.word_bytes, bd.depth, bd.end) == (8, 4096, RAM_BASE + RAM_BYTES)
    # uninitialised RTL memory is X, and reads as 0
    assert "x" in str(dut.mem[100].value).lower()
    assert bd.read(RAM_BASE + 800, 8) == bytes(8)

    # the host builders allocate inside the window only
    alloc = PageAllocator(bd, base=RAM_BASE, limit=RAM_BASE + RAM_BYTES)
    model = rv.Iommu(bd, params=NO_CACHES)
    ddt = DeviceDirectory(bd, alloc, levels=1)
    table = PageTable(HostSpace(bd, alloc), mode=8)  # Sv39: 3 table pages
    data = alloc.alloc()
    table.map(IOVA, data)
    ddt.set_dc(DEVICE, tc=1, fsc=table.satp())
    model.mmio_write(rv.REG.DDTP, ddt.ddtp)
    bd.write(data + 0x18, (0x1122_3344_5566_7788).to_bytes(8, "little"))

    # same time step: cocotb has not applied the writes yet; the shadow serves them
    req = rv.Request(device_id=DEVICE, addr=IOVA + 0x18)
    rsp = model.translate(req)
    assert (rsp.status, rsp.addr) == (rv.Status.SUCCESS, data + 0x18)
    assert "x" in str(dut.mem[(data + 0x18 - RAM_BASE) // 8].value).lower()  # still pending

    # time moves on: the writes are in the array, and the model reads them from there
    await Timer(1, unit="ns")
    reads = bd.handle_reads
    assert model.translate(req) == rsp
    assert bd.handle_reads > reads  # walked through the simulator this time
    assert int(dut.mem[(data + 0x18 - RAM_BASE) // 8].value) == 0x1122_3344_5566_7788
    assert await rtl_read(dut, rsp.addr) == 0x1122_3344_5566_7788

    # the RTL remaps the page: it writes a new leaf PTE; the model sees it
    other = alloc.alloc()
    leaf = table.pte_addr(IOVA, 0)
    dut.wr_index.value = (leaf - RAM_BASE) // 8
    dut.wr_data.value = pte(other >> 12, URWX | A | D)
    dut.wr_en.value = 1
    await RisingEdge(dut.clk)
    dut.wr_en.value = 0
    await ClockCycles(dut.clk, 2)
    rsp2 = model.translate(req)
    assert (rsp2.status, rsp2.addr) == (rv.Status.SUCCESS, other + 0x18)

    # the allocator stops at the window's end
    while True:
        try:
            alloc.alloc()
        except MemoryError as e:
            assert "exhausted" in str(e)
            break

    # an access outside the window is an access fault for the model
    outside = RAM_BASE + RAM_BYTES
    model.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=rv.IommuMode.LVL1, PPN=outside >> 12))
    rsp3 = model.translate(req)
    assert rsp3.fault is not None
    assert rsp3.fault.cause == rv.Cause.DDT_ENTRY_LOAD_ACCESS_FAULT
    _report(f"backdoor: {bd.handle_writes} handle writes")  # 8 zeroed pages, 12 entries


@cocotb.test()
async def immediate_writes(dut: Any) -> None:
    """With immediate=True the array holds the value at once (cocotb's Immediate)."""
    bd = BackdoorMemory(dut.mem, base=RAM_BASE, immediate=True)
    bd.write(RAM_BASE + 8 * 5, (0xABCD).to_bytes(8, "little"))
    assert int(dut.mem[5].value) == 0xABCD
    bd.write(RAM_BASE + 8 * 5 + 2, b"\x99")  # a partial word: read, merge, write
    assert int(dut.mem[5].value) == 0x99ABCD
    assert bd.read(RAM_BASE + 8 * 5 + 1, 2) == b"\xab\x99"
    await Timer(1, unit="ns")
    assert bd.read(RAM_BASE + 8 * 5, 8) == (0x99ABCD).to_bytes(8, "little")
