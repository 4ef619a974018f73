"""cocotb test: pte_check.v checked against the riscv-iommu model as the golden reference.

The model is set up with a real Sv39 page table, a process directory and a
device context.  For every stimulus the test writes the leaf PTE into the
model's memory, asks the model (``Scoreboard.expect``), drives the same PTE
and request into the RTL, and hands the RTL's answer to the scoreboard
(``Scoreboard.check``).  The model walks the whole table every time (caches
off), so it sees each new PTE.

Run it with ``make`` (cocotb's Makefile flow) or ``python run.py``.
"""

from __future__ import annotations

import os
import random
from typing import Any, List, Optional, Tuple

import cocotb
from cocotb.triggers import Timer

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import Driver
from riscv_iommu.host.tables import HostSpace, PageAllocator, PageTable, ProcessDirectory
from riscv_iommu.testbench import Scoreboard

DEVICE = 0x42
IOVA = 0x4000_0123
SV39 = 8
PD8 = 1
#: (process_id, priv): a user request, a supervisor one without PC.ta.SUM, one with it
CONTEXTS = ((1, False), (1, True), (2, True))
SUM_OF = {1: False, 2: True}


class PteBench:
    """The model, ready to translate IOVA through whatever leaf PTE a stimulus sets."""

    def __init__(self) -> None:
        self.mem = rv.SparseMemory()
        # every cache off: each translation walks the tables and sees the new PTE
        params = rv.IommuParams(
            ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0, msi_cache_size=0, gwalk_cache_size=0
        )
        self.model = rv.Iommu(self.mem, capabilities=rv.Capabilities.full(), params=params)
        alloc = PageAllocator(self.mem)
        ddt = Driver(self.model, self.mem, alloc).bring_up()  # queues on, DDT in place
        space = HostSpace(self.mem, alloc)
        table = PageTable(space, mode=SV39)
        table.map(IOVA & ~0xFFF, alloc.alloc())  # builds the levels; the leaf is rewritten
        self.leaf_addr = table.pte_addr(IOVA, 0)
        pdt = ProcessDirectory(space, mode=PD8)
        for pid, sum_ in SUM_OF.items():
            pdt.set_pc(pid, fsc=table.satp(), ens=True, sum_=sum_)
        tc = F.DC_TC.encode(V=1, PDTV=1)  # SADE = 0: no hardware A/D update
        ddt.set_dc(DEVICE, tc=tc, fsc=pdt.pdtp())
        # drain: nobody reads the model's fault queue here; the scoreboard frees its records
        self.sb = Scoreboard(self.model, name="pte_check", drain=True)

    def request(self, pte: int, access: rv.Access, process_id: int, priv: bool) -> rv.Request:
        """Put ``pte`` in the table and return the request to give both sides."""
        self.mem.write(self.leaf_addr, pte.to_bytes(8, "little"))
        return rv.Request(
            device_id=DEVICE, addr=IOVA, access=access, process_id=process_id, priv=priv
        )


async def drive(
    dut: Any, pte: int, req: rv.Request
) -> Tuple[rv.Response, Optional[rv.FaultRecord]]:
    """Drive one check through the RTL; its answer as a Response and a fault record."""
    assert req.process_id is not None
    dut.pte.value = pte
    dut.iova.value = req.addr
    dut.access.value = int(req.access)
    dut.priv.value = int(req.priv)
    dut.sum.value = int(SUM_OF[req.process_id])
    dut.sade.value = 0
    await Timer(1, unit="ns")
    if int(dut.ok.value):
        return rv.Response(rv.Status.SUCCESS, int(dut.pa.value)), None
    record = rv.FaultRecord(
        cause=int(dut.cause.value),
        ttyp=int(dut.ttyp.value),
        iotval=req.addr,
        device_id=req.device_id,
        process_id=req.process_id,
        pv=True,
        priv=req.priv,
    )
    return rv.Response(rv.Status.COMPLETER_ABORT), record


def stimuli(seed: int = 1) -> List[int]:
    """Every combination of V R W X U G A D, then random PTEs (reserved bits, PBMT, N)."""
    ppn = 0x8_1234 << 10
    ptes = [ppn | flags for flags in range(256)]
    rng = random.Random(seed)
    for _ in range(300):
        pte = rng.getrandbits(64) & ~(0x1F << 54)  # reserved bits 58:54 mostly clear
        if rng.random() < 0.1:
            pte |= 1 << rng.randrange(54, 59)
        if rng.random() < 0.5:  # Svnapot 64 KiB: PPN[3:0] = 1000
            pte = (pte & ~(0xF << 10)) | (0b1000 << 10)
        ptes.append(pte)
    return ptes


async def run_checks(dut: Any, bench: PteBench, ptes: List[int]) -> None:
    """Every PTE, for every access type and request privilege."""
    for pte in ptes:
        for access in rv.Access:
            for pid, priv in CONTEXTS:
                req = bench.request(pte, access, pid, priv)
                bench.sb.expect(req)
                got, record = await drive(dut, pte, req)
                bench.sb.check(got)
                if record is not None:
                    bench.sb.check(record)


@cocotb.test()
async def golden_sweep(dut: Any) -> None:
    """The RTL agrees with the model for every leaf PTE flag combination and random PTEs."""
    bench = PteBench()
    await run_checks(dut, bench, stimuli())
    report = bench.sb.final_check()  # raises ScoreboardError with the report on a mismatch
    dut._log.info(report)
    out = os.environ.get("PTE_CHECK_REPORT")
    if out:
        with open(out, "w") as f:
            f.write(report + "\n")
