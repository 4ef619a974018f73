"""pyuvm test: the same PTE checker, with the scoreboard fed by UVM subscribers.

The usual UVM shape: a sequence makes stimulus items, a driver drives them
into the RTL and publishes two analysis streams, the stimulus (a model
Request) and the RTL's results (a Response and, for a fault, a FaultRecord).
Two ``uvm_subscriber``s feed the riscv-iommu Scoreboard: the predictor's
``write()`` calls ``expect()`` (the model's answer), the comparator's calls
``check()``.  The comparator's ``check_phase`` ends the test with
``final_check()``, which raises with the mismatch report if anything differed.
"""

from __future__ import annotations

import random
from typing import Any

import cocotb
import pyuvm
from pyuvm import (
    ConfigDB,
    uvm_analysis_port,
    uvm_driver,
    uvm_env,
    uvm_sequence,
    uvm_sequence_item,
    uvm_sequencer,
    uvm_subscriber,
    uvm_test,
)
from test_pte_check import CONTEXTS, PteBench, drive, stimuli

import riscv_iommu as rv
from riscv_iommu.testbench import Scoreboard


class PteItem(uvm_sequence_item):
    """One check: a leaf PTE and a request."""

    def __init__(self, name: str, pte: int, access: rv.Access, pid: int, priv: bool) -> None:
        super().__init__(name)
        self.pte = pte
        self.access = access
        self.pid = pid
        self.priv = priv


class PteSequence(uvm_sequence):
    """Random PTEs, each with every access type and request privilege."""

    async def body(self) -> None:
        for pte in random.Random(7).sample(stimuli(), 64):
            for access in rv.Access:
                for pid, priv in CONTEXTS:
                    item = PteItem("item", pte, access, pid, priv)
                    await self.start_item(item)
                    await self.finish_item(item)


class PteDriver(uvm_driver):
    """Drives each item into the RTL; publishes the stimulus and the RTL's results."""

    def build_phase(self) -> None:
        self.stimulus_ap = uvm_analysis_port("stimulus_ap", self)
        self.result_ap = uvm_analysis_port("result_ap", self)
        self.bench: PteBench = ConfigDB().get(self, "", "BENCH")

    async def run_phase(self) -> None:
        dut = cocotb.top
        while True:
            item = await self.seq_item_port.get_next_item()
            req = self.bench.request(item.pte, item.access, item.pid, item.priv)
            self.stimulus_ap.write(req)  # the predictor gives it to the model first
            got, record = await drive(dut, item.pte, req)
            self.result_ap.write(got)
            if record is not None:
                self.result_ap.write(record)
            self.seq_item_port.item_done()


class Predictor(uvm_subscriber):
    """The expected side: the model's answer to each stimulus."""

    def build_phase(self) -> None:
        self.sb: Scoreboard = ConfigDB().get(self, "", "SCOREBOARD")

    def write(self, req: Any) -> None:
        self.sb.expect(req)


class Comparator(uvm_subscriber):
    """The actual side: each RTL result against the model's."""

    def build_phase(self) -> None:
        self.sb: Scoreboard = ConfigDB().get(self, "", "SCOREBOARD")

    def write(self, got: Any) -> None:
        self.sb.check(got)

    def check_phase(self) -> None:
        self.logger.info(self.sb.final_check())  # raises ScoreboardError on any mismatch


class PteEnv(uvm_env):
    def build_phase(self) -> None:
        bench = PteBench()
        ConfigDB().set(None, "*", "BENCH", bench)
        ConfigDB().set(None, "*", "SCOREBOARD", bench.sb)
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = PteDriver("driver", self)
        self.predictor = Predictor("predictor", self)
        self.comparator = Comparator("comparator", self)

    def connect_phase(self) -> None:
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)
        self.driver.stimulus_ap.connect(self.predictor.analysis_export)
        self.driver.result_ap.connect(self.comparator.analysis_export)


@pyuvm.test()
class PteUvmTest(uvm_test):
    """The PTE checker against the model, UVM style."""

    def build_phase(self) -> None:
        self.env = PteEnv("env", self)

    async def run_phase(self) -> None:
        self.raise_objection()
        await PteSequence("seq").start(self.env.seqr)
        self.drop_objection()
