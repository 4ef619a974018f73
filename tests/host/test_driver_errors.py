"""The host driver's error paths: misuse (ValueError) and hardware that does not cooperate
(DriverError), each with its exact message and the state the driver left behind.

Spec: iommu_sw_guidelines.adoc "Guidelines for initialization" ("Stop and report failure",
"Poll on cqcsr.cqon until it reads 1", "Determine the values supported by ddtp.iommu_mode by
writing legal values and reading it"); iommu_registers.adoc (xqb are WARL, "software must
disable the queue ... and wait for both busy and xqon to be 0" before writing xqb, ddtp.busy
"Software must verify that the busy bit is 0"); iommu_in_memory_queues.adoc (IOFENCE.C ADDR
is bits 55:2 of a 4-byte flag; ATS.INVAL carries a PCIe "Invalidation Request" range).

Misbehaving hardware is a :class:`Flaky` IOMMU: reads of one register have bits forced to
1 or 0, writes to one register are dropped, and every MMIO write is logged.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

import riscv_iommu as rv
from riscv_iommu import formats as F
from riscv_iommu.host.driver import (
    Command,
    Driver,
    DriverError,
    InterruptConfig,
    ats_inval,
    ats_range,
    iofence_c,
)
from riscv_iommu.host.tables import PageAllocator

REG = rv.REG
WSI = F.FCTL.WSI.mask

# name -> (base register, csr register, csr layout)
QUEUES = {
    "cq": (REG.CQB, REG.CQCSR, F.CQCSR),
    "fq": (REG.FQB, REG.FQCSR, F.FQCSR),
    "pq": (REG.PQB, REG.PQCSR, F.PQCSR),
}


def exact(message: str) -> str:
    """A ``pytest.raises(match=...)`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


class Flaky(rv.Iommu):
    """An IOMMU that lies on reads of some registers and drops writes to others."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.force1: Dict[int, int] = {}  # offset -> bits that always read 1
        self.force0: Dict[int, int] = {}  # offset -> bits that always read 0
        self.drop: Set[int] = set()  # offsets whose writes are ignored
        self.writes: List[Tuple[int, int, int]] = []  # (offset, value, size) as issued

    def mmio_read(self, offset: int, size: int = 8) -> int:
        v = super().mmio_read(offset, size)
        return (v | self.force1.get(offset, 0)) & ~self.force0.get(offset, 0)

    def mmio_write(self, offset: int, value: int, size: int = 8) -> None:
        self.writes.append((offset, value, size))
        if offset not in self.drop:
            super().mmio_write(offset, value, size)

    def real(self, offset: int, size: int = 8) -> int:
        """The register as the hardware really holds it."""
        return super().mmio_read(offset, size)

    def written(self, offset: int) -> List[int]:
        return [v for o, v, _ in self.writes if o == offset]


def setup(
    caps: Optional[rv.Capabilities] = None, alloc_base: int = 0x8000_0000, fctl: int = 0
) -> Tuple[Flaky, Driver]:
    mem = rv.SparseMemory()
    io = Flaky(mem, capabilities=caps or rv.Capabilities.full(), fctl=fctl)
    return io, Driver(io, mem, PageAllocator(mem, base=alloc_base), poll_limit=5)


# ---------------------------------------------------------------------------
# command builders: operands the encodings cannot carry
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("addr", [0x1001, 0x1002, 0x1003])
def test_iofence_c_address_must_be_4_byte_aligned(addr: int) -> None:
    """IOFENCE.C: ADDR[55:2] holds a 4-byte aligned flag address; the low bits cannot be
    encoded, so an unaligned address is refused rather than silently rounded."""
    with pytest.raises(ValueError, match=exact("IOFENCE.C address must be 4-byte aligned")):
        iofence_c(addr=addr)
    fence = iofence_c(addr=addr & ~3, data=7)
    assert fence == Command(
        F.CMD_IOFENCE0.encode(opcode=2, AV=1, DATA=7), F.CMD_IOFENCE1.encode(ADDR=addr >> 2)
    )


@pytest.mark.parametrize(
    "addr, size",
    [
        (0x1000, 0x800),  # below 4 KiB
        (0x0, 0x3000),  # not a power of two
        (0x1000, 0x2000),  # not aligned to its size
    ],
)
def test_ats_range_needs_an_aligned_power_of_two(addr: int, size: int) -> None:
    """A PCIe Invalidation Request range (S = 1: the lowest 0 bit of the address above bit 11
    gives the size) can only be a naturally aligned power of two >= 4 KiB."""
    msg = "ATS invalidation size must be a power of two >= 4 KiB, addr aligned"
    with pytest.raises(ValueError, match=exact(msg)):
        ats_range(addr, size)
    with pytest.raises(ValueError, match=exact(msg)):
        ats_inval(5, None, addr, size)
    assert ats_range(0x4000, 0x4000) == (0x5000, True)  # 16 KiB at 0x4000: bit 12 set
    assert ats_range(0x4000, 0x1000) == (0x4000, False)


def test_driver_takes_an_explicit_gipc_bit() -> None:
    """capabilities.GIPC has no ratified bit: the platform names it.  With gipc_bit given,
    the driver decodes GIPC at that bit (here where the model put it) and nowhere else."""
    mem = rv.SparseMemory()
    io = rv.Iommu(mem, capabilities=rv.Capabilities.full(gipc=True, gipc_bit=50))
    drv = Driver(io, mem, PageAllocator(mem), gipc_bit=50)
    drv.bring_up()
    assert (drv.gipc_bit, drv.caps.gipc) == (50, True)
    other = Driver(io, mem, PageAllocator(mem, base=1 << 33), gipc_bit=51)
    other.bring_up()
    assert (other.gipc_bit, other.caps.gipc) == (51, False)


# ---------------------------------------------------------------------------
# the driver used before bring_up
# ---------------------------------------------------------------------------
def test_driver_used_before_bring_up() -> None:
    """No queue and no DDT before "Guidelines for initialization" ran: commands, fault
    records and DCs are refused, and nothing reaches the IOMMU."""
    io, drv = setup()
    with pytest.raises(
        DriverError, match=exact("the command queue is not set up (bring_up first)")
    ):
        drv.submit(iofence_c())
    with pytest.raises(DriverError, match=exact("the fault queue is not set up (bring_up first)")):
        drv.faults()
    with pytest.raises(DriverError, match=exact("no DDT (bring_up first)")):
        drv.read_dc(1)
    assert io.writes == [] and drv.submitted == []


# ---------------------------------------------------------------------------
# initialization: queue sizes
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("queue", ["cq", "fq", "pq"])
@pytest.mark.parametrize("log2", [0, 33])
def test_init_queue_size_out_of_range(queue: str, log2: int) -> None:
    """xqb.LOG2SZ-1 encodes 2**1 .. 2**32 entries (k - 1 with k = log2(N) >= 1): a queue of
    one entry or of 2**33 entries cannot be programmed.  The check comes before the queue's
    registers are touched."""
    io, drv = setup()
    breg, creg, _ = QUEUES[queue]
    sizes: Dict[str, Any] = {f"{queue}_log2": log2}
    with pytest.raises(ValueError, match=exact(f"{queue} size must be 2**1 .. 2**32 entries")):
        drv.bring_up(**sizes)
    assert io.written(breg) == [] and io.written(creg) == []
    assert io.real(creg, 4) == 0


# ---------------------------------------------------------------------------
# initialization: queues that misbehave
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("queue", ["cq", "fq", "pq"])
def test_init_queue_that_never_turns_off(queue: str) -> None:
    """Re-initialization: xqb may only be written with xqon = busy = 0, so the driver clears
    xqen and polls; a queue whose xqon keeps reading 1 stops it before xqb is rewritten."""
    io, drv = setup()
    drv.bring_up()
    breg, creg, csr = QUEUES[queue]
    on = csr.fields[f"{queue}on"].mask
    base = io.real(breg)
    io.force1[creg] = on
    del io.writes[:]
    with pytest.raises(DriverError, match=exact(f"{queue} did not turn off")):
        drv.bring_up()
    assert io.written(creg) == [0]  # xqen cleared (the hardware did turn off)
    assert io.real(creg, 4) & (csr.fields[f"{queue}en"].mask | on) == 0
    assert io.written(breg) == [] and io.real(breg) == base


@pytest.mark.parametrize("queue", ["cq", "fq", "pq"])
def test_init_queue_busy_stuck_at_1_never_turns_off(queue: str) -> None:
    """Same guideline with busy: a queue that reads busy = 1 forever is not off."""
    io, drv = setup()
    drv.bring_up()
    _, creg, csr = QUEUES[queue]
    io.force1[creg] = csr.fields["busy"].mask
    with pytest.raises(DriverError, match=exact(f"{queue} did not turn off")):
        drv.bring_up()


@pytest.mark.parametrize("queue", ["cq", "fq", "pq"])
def test_init_queue_base_that_does_not_take_the_value(queue: str) -> None:
    """xqb is WARL: after writing it the driver reads it back; a register that dropped the
    write (it still reads 0) is reported with the value written, and xqen is never set."""
    io, drv = setup()
    breg, creg, _ = QUEUES[queue]
    io.drop.add(breg)
    with pytest.raises(DriverError) as info:
        drv.bring_up()
    (value,) = io.written(breg)
    assert F.QUEUE_BASE.LOG2SZ_1.get(value) == 7  # 256 entries
    assert str(info.value) == (f"{queue}b did not take {value:#x} (size or address not supported)")
    assert io.real(breg) == 0 and io.written(creg) == []


def test_init_queue_base_beyond_capabilities_pas() -> None:
    """The model's own WARL xqb: PPN is limited to capabilities.PAS, so a command queue
    allocated at 4 GiB on an IOMMU with PAS = 32 does not take; the driver stops before
    cqen."""
    io, drv = setup(rv.Capabilities.full(pas=32), alloc_base=1 << 32)
    value = F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=(1 << 32) >> 12)
    with pytest.raises(
        DriverError, match=exact(f"cqb did not take {value:#x} (size or address not supported)")
    ):
        drv.bring_up()
    assert io.written(REG.CQB) == [value]
    assert io.real(REG.CQB) == F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=0)
    assert io.written(REG.CQCSR) == []


@pytest.mark.parametrize("queue", ["cq", "fq", "pq"])
def test_init_queue_that_never_turns_on(queue: str) -> None:
    """ "xqcsr.xqen = 1; Poll on xqcsr.xqon until it reads 1": a queue whose xqon never reads
    1 ends the poll (poll_limit) with a failure; xqen was written."""
    io, drv = setup()
    _, creg, csr = QUEUES[queue]
    io.force0[creg] = csr.fields[f"{queue}on"].mask
    with pytest.raises(DriverError, match=exact(f"{queue}csr.{queue}on did not become 1")):
        drv.bring_up()
    en = csr.fields[f"{queue}en"].mask
    assert io.written(creg) == [en]
    assert io.real(creg, 4) & en == en


# ---------------------------------------------------------------------------
# initialization: ddtp.busy
# ---------------------------------------------------------------------------
def test_init_ddtp_busy_stuck_before_the_write() -> None:
    """ddtp may be written only while busy = 0: with busy stuck at 1 the driver never writes
    ddtp (the IOMMU stays Off), after the queues were set up."""
    io, drv = setup()
    io.force1[REG.DDTP] = F.DDTP.busy.mask
    reset = io.real(REG.DDTP)
    with pytest.raises(DriverError, match=exact("ddtp.busy stuck at 1")):
        drv.bring_up()
    assert io.written(REG.DDTP) == [] and io.real(REG.DDTP) == reset
    assert drv.ddt is None and drv.cq_entries == 256


def test_init_ddtp_busy_stuck_after_the_write() -> None:
    """ "Software must verify that the busy bit is 0" after writing ddtp: busy rising with the
    first mode probe (1LVL) and staying 1 stops the driver after that one write."""
    io, drv = setup()
    real_write = io.mmio_write

    def write(offset: int, value: int, size: int = 8) -> None:
        real_write(offset, value, size)
        if offset == REG.DDTP:
            io.force1[REG.DDTP] = F.DDTP.busy.mask

    io.mmio_write = write  # type: ignore[method-assign]
    with pytest.raises(DriverError, match=exact("ddtp.busy stuck at 1")):
        drv.bring_up()
    (value,) = io.written(REG.DDTP)
    assert F.DDTP.iommu_mode.get(value) == 2  # the 1LVL probe
    assert drv.ddt is None


# ---------------------------------------------------------------------------
# initialization: fctl.WSI
# ---------------------------------------------------------------------------
def test_init_fctl_wsi_that_does_not_take_1() -> None:
    """IGS = BOTH and wired interrupts needed: "set fctl.WSI to 1"; an fctl that drops the
    write leaves MSIs selected, and the driver stops before icvec and the queues."""
    io, drv = setup()
    io.drop.add(REG.FCTL)
    with pytest.raises(DriverError, match=exact("fctl.WSI did not take the needed value")):
        drv.bring_up(interrupts=InterruptConfig(wsi=True))
    assert io.written(REG.FCTL) == [WSI]
    assert io.real(REG.FCTL, 4) & WSI == 0
    assert io.written(REG.ICVEC) == [] and io.written(REG.CQB) == []


def test_init_fctl_wsi_that_does_not_take_0() -> None:
    """MSIs needed with fctl.WSI = 1 at reset: the driver clears WSI; an fctl whose WSI
    reads 1 forever cannot deliver MSIs."""
    io, drv = setup(fctl=WSI)
    io.force1[REG.FCTL] = WSI
    with pytest.raises(DriverError, match=exact("fctl.WSI did not take the needed value")):
        drv.bring_up(interrupts=InterruptConfig(wsi=False))
    assert io.written(REG.FCTL) == [0]
    assert io.written(REG.ICVEC) == []
