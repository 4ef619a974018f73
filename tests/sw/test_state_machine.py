"""Random software-interface sequences (hypothesis stateful testing).

A driver-like machine issues random MMIO writes (any offset of the 4 KiB register page,
random values, 4- or 8-byte), random command words into the command queue, random device
requests and clock ticks.  Whatever software does, the model must never raise, and:

* the queue indices cqh/cqt/fqh/fqt/pqh/pqt stay below their queue's size (registers
  "cqb/fqb/pqb": LOG2SZ; "cqh/cqt/fqh/fqt/pqh/pqt": only bits LOG2SZ-1:0 are writable);
* every fault record the IOMMU writes (32-byte writes through the memory port) decodes to a
  CAUSE of the spec's CAUSE table and a TTYP of the TTYP table, with DID/PV/PID/PRIV = 0 when
  TTYP is 0 and PID = PRIV = 0 when PV is 0 (iommu_in_memory_queues.adoc "Fault/Event-Queue").
"""

from __future__ import annotations

from typing import List, Optional

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import riscv_iommu as rv
from helpers import PD20, SV39, TC_EN_ATS, TC_PDTV, TC_V, ta
from riscv_iommu import formats as F
from riscv_iommu.commands import OPCODE
from swhelpers import (
    REG,
    setup_cq,
    setup_fq,
    setup_pq,
    submit,
    system_with_port,
)

U64 = (1 << 64) - 1
CAUSES = frozenset(int(c) for c in rv.Cause)
TTYPS = frozenset(int(t) for t in rv.Ttyp)
R0 = F.FAULT_RECORD0

#: offsets of every defined register word (writes there are most interesting)
KNOWN_OFFSETS = sorted(
    {
        REG.CAPABILITIES,
        REG.FCTL,
        REG.DDTP,
        REG.CQB,
        REG.CQH,
        REG.CQT,
        REG.FQB,
        REG.FQH,
        REG.FQT,
        REG.PQB,
        REG.PQH,
        REG.PQT,
        REG.CQCSR,
        REG.FQCSR,
        REG.PQCSR,
        REG.IPSR,
        REG.IOCOUNTOVF,
        REG.IOCOUNTINH,
        REG.IOHPMCYCLES,
        REG.TR_REQ_IOVA,
        REG.TR_REQ_CTL,
        REG.TR_RESPONSE,
        REG.IOMMU_QOSID,
        REG.ICVEC,
        *(REG.iohpmctr(x) for x in (1, 2, 31)),
        *(REG.iohpmevt(x) for x in (1, 2, 31)),
        *(REG.msi_addr(x) for x in (0, 1, 15)),
        *(REG.msi_data(x) for x in (0, 1, 15)),
        *(REG.msi_vec_ctl(x) for x in (0, 1, 15)),
    }
)


class RecordingPort(rv.SparseMemory):
    """Records every 32-byte write (a fault record: no other IOMMU write is 32 bytes)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: List[bytes] = []

    def write(self, addr: int, data: bytes) -> None:
        super().write(addr, data)
        if len(data) == F.FAULT_RECORD_SIZE:
            self.records.append(bytes(data))


offsets = st.one_of(st.sampled_from(KNOWN_OFFSETS), st.integers(0, 4095))
values = st.one_of(
    st.integers(0, U64),
    st.integers(0, 0xFFFF_FFFF),
    st.sampled_from([0, 1, 3, U64, 0x8000_0000_0000_0000]),
)
opcodes = st.one_of(
    st.sampled_from([OPCODE.IOTINVAL, OPCODE.IOFENCE, OPCODE.IODIR, OPCODE.ATS]),
    st.integers(0, 127),
)


class SoftwareInterfaceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.port = RecordingPort()
        s = system_with_port(self.port)
        self.s = s
        # device 1: first stage; device 2: PDT with one process; device 3: G-stage + MSI
        s1 = s.stage1()
        for va in (0x1000, 0x2000, 0x20_0000):
            s1.map(va, s.page())
        s.ddt.set_dc(1, tc=TC_V | TC_EN_ATS, fsc=s1.satp(), ta=ta(pscid=1, rcid=2, mcid=3))
        pdt = s.pdt(mode=PD20)
        pdt.set_pc(5, fsc=s1.satp(), pscid=7, ens=True)
        s.ddt.set_dc(2, tc=TC_V | TC_PDTV | TC_EN_ATS, fsc=pdt.pdtp())
        g = s.gstage(SV39)
        g.map(0x1000, s.page())
        pt = s.msipt(8)
        pt.set_flat(1, 0x2400_1000)
        s.ddt.set_dc(
            3,
            tc=TC_V | TC_EN_ATS,
            iohgatp=g.satp(4),
            msiptp=pt.msiptp(),
            msi_addr_mask=0x7,
            msi_addr_pattern=0x2800_0,
        )
        setup_fq(s, log2sz=2)
        setup_cq(s, log2sz=2)
        setup_pq(s, log2sz=1)
        s.iommu.mmio_write(REG.iohpmevt(1), F.IOHPMEVT.encode(eventID=1))

    # -- rules ---------------------------------------------------------------
    @rule(offset=offsets, value=values, size=st.sampled_from([4, 8]))
    def mmio_write(self, offset: int, value: int, size: int) -> None:
        if size == 4:
            value &= 0xFFFF_FFFF
        self.s.iommu.mmio_write(offset, value, size)

    @rule(offset=offsets, size=st.sampled_from([4, 8]))
    def mmio_read(self, offset: int, size: int) -> None:
        v = self.s.iommu.mmio_read(offset, size)
        assert 0 <= v < 1 << (8 * size)

    @rule(
        opcode=opcodes,
        func3=st.integers(0, 7),
        rest0=st.integers(0, U64 >> 10),
        dword1=st.one_of(st.integers(0, U64), st.just(0)),
        count=st.integers(1, 3),
    )
    def command(self, opcode: int, func3: int, rest0: int, dword1: int, count: int) -> None:
        d0 = opcode | (func3 << 7) | (rest0 << 10)
        submit(self.s, *([(d0, dword1)] * count))

    @rule()
    def resume_queues(self) -> None:
        """Software clears the error bits (RW1C) keeping the queues enabled."""
        io = self.s.iommu
        io.mmio_write(REG.CQCSR, F.CQCSR.mask_of("cqen", "cqmf", "cmd_to", "cmd_ill"), 4)
        io.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie", "fqmf", "fqof"), 4)
        io.mmio_write(REG.FQH, io.mmio_read(REG.FQT, 4), 4)

    @rule(
        device_id=st.one_of(st.sampled_from([1, 2, 3]), st.integers(0, (1 << 24) - 1)),
        addr=st.one_of(
            st.sampled_from([0x1000, 0x2008, 0x20_0100, 0x2800_1000, 0x2800_2000]),
            st.integers(0, U64),
        ),
        access=st.sampled_from(list(rv.Access)),
        kind=st.sampled_from(list(rv.RequestKind)),
        process_id=st.one_of(st.none(), st.just(5), st.integers(0, (1 << 20) - 1)),
        priv=st.booleans(),
        length=st.sampled_from([1, 4, 8, 64]),
    )
    def request(
        self,
        device_id: int,
        addr: int,
        access: rv.Access,
        kind: rv.RequestKind,
        process_id: Optional[int],
        priv: bool,
        length: int,
    ) -> None:
        rsp = self.s.iommu.translate(
            rv.Request(
                device_id=device_id,
                addr=addr,
                access=access,
                kind=kind,
                process_id=process_id,
                priv=priv,
                length=length,
            )
        )
        assert rsp.status in tuple(rv.Status)
        if rsp.status != rv.Status.SUCCESS:
            assert rsp.fault is not None

    @rule(cycles=st.integers(0, 1 << 40))
    def tick(self, cycles: int) -> None:
        self.s.iommu.tick(cycles)

    # -- invariants ------------------------------------------------------------
    @invariant()
    def indices_below_queue_size(self) -> None:
        io = self.s.iommu
        for base, regs in (
            (REG.CQB, (REG.CQH, REG.CQT)),
            (REG.FQB, (REG.FQH, REG.FQT)),
            (REG.PQB, (REG.PQH, REG.PQT)),
        ):
            size = 1 << (F.QUEUE_BASE.LOG2SZ_1.get(io.mmio_read(base)) + 1)
            for r in regs:
                assert io.mmio_read(r, 4) < size, (hex(r), size)

    @invariant()
    def fault_records_are_well_formed(self) -> None:
        big = bool(self.s.iommu.mmio_read(REG.FCTL, 4) & F.FCTL.BE.mask)
        for raw in self.port.records:
            d0 = int.from_bytes(raw[:8], "big" if big else "little")
            cause, ttyp = R0.CAUSE.get(d0), R0.TTYP.get(d0)
            assert cause in CAUSES, hex(d0)
            assert ttyp in TTYPS, hex(d0)
            if ttyp == rv.Ttyp.NONE:
                assert R0.DID.get(d0) == R0.PV.get(d0) == R0.PID.get(d0) == 0, hex(d0)
                assert R0.PRIV.get(d0) == 0, hex(d0)
            if not R0.PV.get(d0):
                assert R0.PID.get(d0) == R0.PRIV.get(d0) == 0, hex(d0)
            assert raw[8:16] == bytes(8)  # custom / reserved doubleword
        self.port.records.clear()


SoftwareInterfaceMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSoftwareInterface = SoftwareInterfaceMachine.TestCase
