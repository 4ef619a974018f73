"""cocotb test (run by test_cocotb.py on pte_check.v built with BROKEN=1).

The example's checker, built with its deliberate bug (the D bit is not
checked on writes), against the model: the scoreboard must catch exactly
that, and nothing else.  The report is written to $TB_REPORT for the parent
test to compare too.
"""

from __future__ import annotations

import os
from typing import Any

import cocotb
from test_pte_check import IOVA, PteBench, drive

import riscv_iommu as rv
from riscv_iommu.host.tables import A, D, R, U, W, pte
from riscv_iommu.testbench import Scoreboard, ScoreboardError

PPN = 0x8_1234
#: (leaf PTE flags, V = 1, access): only the second one is decided differently by the broken RTL
DIRECTED = (
    (R | W | U | A | D, rv.Access.READ),
    (R | W | U | A, rv.Access.WRITE),  # D = 0, no hardware A/D update: a page fault
    (R | W | U | A | D, rv.Access.WRITE),
    (R | U, rv.Access.READ),  # A = 0: a page fault for both
)

EXPECTED_REPORT = f"""\
pte_check: 5 checked (response 4, fault 1), 2 mismatches, 0 pending
  response #1 [WRITE {IOVA:#x} device_id 0x42 process_id 0x1]: status: expected COMPLETER_ABORT, \
got SUCCESS
    | leaf PTE {pte(PPN, R | W | U | A):#x}
  fault #0 [WRITE {IOVA:#x} device_id 0x42 process_id 0x1]: missing: expected \
FaultRecord(cause=WRITE_PAGE_FAULT(15), ttyp=UNTRANSLATED_WRITE, iotval={IOVA:#x}, iotval2=0x0, \
device_id=0x42, process_id=0x1, pv=True, priv=False), got nothing
    | leaf PTE {pte(PPN, R | W | U | A):#x}"""


@cocotb.test()
async def broken_rtl_caught(dut: Any) -> None:
    """The scoreboard reports the missing D-bit check, by spec field, and nothing else."""
    assert int(dut.BROKEN.value) == 1
    bench = PteBench()
    leaves = {}
    sb = Scoreboard(bench.model, name="pte_check", drain=True, detail=lambda req: leaves[id(req)])
    for flags, access in DIRECTED:
        value = pte(PPN, flags)
        req = bench.request(value, access, 1, False)
        leaves[id(req)] = f"leaf PTE {value:#x}"  # the detail hook's text for this request
        sb.expect(req)
        got, record = await drive(dut, value, req)
        sb.check(got)
        if record is not None:
            sb.check(record)
    try:
        sb.final_check()
    except ScoreboardError as e:
        report = str(e)
    else:
        raise AssertionError("the scoreboard did not catch the broken RTL")
    out = os.environ.get("TB_REPORT")
    if out:
        with open(out, "w") as f:
            f.write(report)
    assert report == EXPECTED_REPORT, report
