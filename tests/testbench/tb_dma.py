"""cocotb tests (run by test_cocotb.py): the model as the IOMMU of an RTL DMA requester.

dma_requester.v asks for a translation of every address on its translation
port; the model answers (co-simulation: the model is the IOMMU).  The DMA's
AXI4 port goes to cocotbext-axi's AxiRam, and the model's page tables live
in the same memory: ``AxiRam(..., mem=shared)`` with cocotbext-axi's
``SparseMemory`` as ``shared``, which is also the model's memory port
(first test), or the AxiRam itself as the model's memory port (second test).
"""

from __future__ import annotations

import logging
import os
from typing import Any, List, Tuple

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiRam
from cocotbext.axi.sparse_memory import SparseMemory

import riscv_iommu as rv
from riscv_iommu.host.driver import Driver
from riscv_iommu.host.tables import HostSpace, PageAllocator, PageTable
from riscv_iommu.testbench import MemoryWindow, logic_to_int

DEVICE = 0x42  # dma_requester's DEVICE_ID
SRC = 0x1000_0000  # IOVAs
DST = 0x2000_0000
WORDS = 520  # more than a page: the copy crosses into a second page of each buffer
RAM_BASE = 0x8000_0000
RAM_SIZE = 0x10_0000  # the window the model's structures and the buffers live in


async def iommu_port(dut: Any, model: rv.Iommu, log: List[rv.Request], latency: int = 2) -> None:
    """Answer the DMA's translation requests with the model (the model as IOMMU)."""
    dut.tr_rsp_valid.value = 0
    while True:
        await RisingEdge(dut.clk)
        if not logic_to_int(dut.tr_valid.value):  # X before reset reads as 0
            continue
        access = rv.Access.WRITE if int(dut.tr_write.value) else rv.Access.READ
        req = rv.Request(
            device_id=int(dut.tr_device_id.value), addr=int(dut.tr_iova.value), access=access
        )
        log.append(req)
        rsp = model.translate(req)  # synchronous: the answer is there at once
        await ClockCycles(dut.clk, latency)  # the latency is the testbench's choice
        dut.tr_rsp_ok.value = int(rsp.status == rv.Status.SUCCESS)
        dut.tr_rsp_pa.value = rsp.addr
        dut.tr_rsp_valid.value = 1
        await RisingEdge(dut.clk)
        dut.tr_rsp_valid.value = 0


def quiet(ram: AxiRam) -> AxiRam:
    """No INFO line per AXI burst."""
    ram.write_if.log.setLevel(logging.WARNING)
    ram.read_if.log.setLevel(logging.WARNING)
    return ram


def setup(mem: Any, port: Any, dst_pages: int) -> Tuple[rv.Iommu, Driver, List[int], List[int]]:
    """The model over ``port``, tables and buffers built in ``mem`` inside the RAM window."""
    model = rv.Iommu(port)
    alloc = PageAllocator(mem, base=RAM_BASE, limit=RAM_BASE + RAM_SIZE)
    drv = Driver(model, mem, alloc)
    ddt = drv.bring_up()
    table = PageTable(HostSpace(mem, alloc), mode=8)  # Sv39
    src_pages = [alloc.alloc() for _ in range(2)]
    dst = [alloc.alloc() for _ in range(dst_pages)]
    for k, page in enumerate(src_pages):
        table.map(SRC + k * 4096, page)
    for k, page in enumerate(dst):
        table.map(DST + k * 4096, page)
    ddt.set_dc(DEVICE, tc=1, fsc=table.satp())
    for i in range(WORDS):  # the source data
        mem.write(src_pages[i // 512] + (i % 512) * 8, (0xD0_0000 + i).to_bytes(8, "little"))
    return model, drv, src_pages, dst


async def run_dma(dut: Any, model: rv.Iommu, log: List[rv.Request]) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cocotb.start_soon(iommu_port(dut, model, log))
    dut.start.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    dut.src.value = SRC
    dut.dst.value = DST
    dut.count.value = WORDS
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    for _ in range(100 * WORDS):
        await RisingEdge(dut.clk)
        if int(dut.done.value):
            return
    raise AssertionError("the DMA did not finish")


def words(mem: Any, pages: List[int], n: int) -> List[int]:
    addrs = [pages[i // 512] + (i % 512) * 8 for i in range(n)]
    return [int.from_bytes(mem.read(a, 8), "little") for a in addrs]


@cocotb.test()
async def dma_copy_through_the_model(dut: Any) -> None:
    """Shared SparseMemory: the model's port and AxiRam's memory; the copy lands at the SPAs."""
    shared = SparseMemory(1 << 56)  # capabilities.PAS; len() of it must fit in an index
    quiet(AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, mem=shared))
    model, _, src, dst = setup(shared, shared, dst_pages=2)  # SparseMemory as the port
    log: List[rv.Request] = []
    await run_dma(dut, model, log)
    assert int(dut.error.value) == 0
    assert words(shared, dst, WORDS) == [0xD0_0000 + i for i in range(WORDS)]
    assert len(log) == 2 * WORDS
    assert log[0] == rv.Request(device_id=DEVICE, addr=SRC, access=rv.Access.READ)
    assert log[1] == rv.Request(device_id=DEVICE, addr=DST, access=rv.Access.WRITE)
    assert log[-1] == rv.Request(
        device_id=DEVICE, addr=DST + (WORDS - 1) * 8, access=rv.Access.WRITE
    )
    _report(f"copied {WORDS} words, {len(log)} translations")


@cocotb.test()
async def dma_fault_through_the_model(dut: Any) -> None:
    """AxiRam as the model's port (in a MemoryWindow); an unmapped destination page stops
    the DMA with a fault that the model records in its fault queue."""
    shared = SparseMemory(1 << 56)  # capabilities.PAS; len() of it must fit in an index
    ram = quiet(AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, mem=shared))
    model, drv, src, dst = setup(shared, MemoryWindow(ram, RAM_BASE, RAM_SIZE), dst_pages=1)
    log: List[rv.Request] = []
    await run_dma(dut, model, log)
    assert int(dut.error.value) == 1
    assert int(dut.fault_iova.value) == DST + 512 * 8
    assert words(shared, dst, 512) == [0xD0_0000 + i for i in range(512)]
    assert drv.faults() == [
        rv.FaultRecord(
            cause=rv.Cause.WRITE_PAGE_FAULT,
            ttyp=rv.Ttyp.UNTRANSLATED_WRITE,
            iotval=DST + 512 * 8,
            device_id=DEVICE,
        )
    ]
    _report(f"fault at {DST + 512 * 8:#x} after 512 words")


def _report(line: str) -> None:
    out = os.environ.get("TB_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")
