"""Testbench helpers: the model as the golden reference in cocotb / pyuvm testbenches.

Imports nothing outside the standard library (and this package); cocotb,
cocotbext-axi and pyuvm are the optional extra ``riscv-iommu[cocotb]``.
See ``docs/testbench.md``.

* :class:`Scoreboard`: ``expect(req)`` asks the model, ``check(got)``
  compares the DUT's response, fault record, page-request record or ATS
  message, naming each difference by its spec field.
* :class:`BackdoorMemory`: the model's memory port over an HDL memory array
  (simulator handles); :class:`MemoryWindow`: any port limited to an address
  window.  cocotbext-axi's ``SparseMemory`` and ``AxiRam`` are memory ports
  as they are.
"""

from .adapters import BackdoorMemory, MemoryWindow, logic_to_int
from .scoreboard import (
    CHANNELS,
    Mismatch,
    Scoreboard,
    ScoreboardError,
    decode_pq_record,
    diff,
)

__all__ = [
    "CHANNELS",
    "BackdoorMemory",
    "MemoryWindow",
    "Mismatch",
    "Scoreboard",
    "ScoreboardError",
    "decode_pq_record",
    "diff",
    "logic_to_int",
]
