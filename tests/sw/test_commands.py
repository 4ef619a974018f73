"""Command queue and commands (spec iommu_in_memory_queues.adoc "Command-Queue (CQ)",
iommu_registers.adoc "cqb", "cqh", "cqt", "cqcsr"; NL/S in iommu_extensions.adoc).

Everything is programmed as a driver would: MMIO registers and memory.  The
effect of the invalidation commands on the caches is in test_caching.py.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
import swhelpers as sw
from helpers import SV39, TC_EN_ATS, TC_V, System, ta
from riscv_iommu import formats as F

REG = rv.REG
CQ = F.CQCSR
CMD_ILL = CQ.cmd_ill.mask
CQMF = CQ.cqmf.mask
CMD_TO = CQ.cmd_to.mask
FENCE_W_IP = CQ.fence_w_ip.mask
CQON = CQ.cqon.mask
CQEN = CQ.cqen.mask
CIE = CQ.cie.mask
CIP = F.IPSR.cip.mask
ERRORS = CMD_ILL | CQMF | CMD_TO | FENCE_W_IP

Cmd = Tuple[int, int]


# ---------------------------------------------------------------------------
# local helpers
# ---------------------------------------------------------------------------
def _sys(
    log2sz: int = 3, ie: bool = False, params: Optional[rv.IommuParams] = None, **kw: Any
) -> System:
    s = System(params=params, **kw)
    sw.setup_cq(s, log2sz=log2sz, ie=ie)
    return s


def _cqh(s: System) -> int:
    return int(s.iommu.mmio_read(REG.CQH, 4))


def _cqt(s: System) -> int:
    return int(s.iommu.mmio_read(REG.CQT, 4))


def _clear(s: System, bits: int) -> None:
    """RW1C ``bits`` in cqcsr, keeping cqen (and cie) as they are."""
    keep = sw.cqcsr(s) & (CQEN | CIE)
    s.iommu.mmio_write(REG.CQCSR, keep | bits, 4)


def _u32(s: System, addr: int, big: bool = False) -> int:
    return int(s.mem.read_u32(addr, big))


def _fence(addr: int, data: int) -> Cmd:
    return sw.iofence_c(addr=addr, data=data)


def _expect_illegal(s: System, cmd: Cmd) -> None:
    """A legal command, ``cmd``, a fence: cmd_ill, cqh on ``cmd``, the fence not run."""
    flag = s.page()
    start = _cqh(s)
    sw.submit(s, sw.iotinval_vma(), cmd, _fence(flag, 0x2222))
    assert sw.cqcsr(s) & (CMD_ILL | CQMF | CMD_TO) == CMD_ILL
    assert sw.cqcsr(s) & CQON
    assert _cqh(s) == (start + 1) % 8
    assert _u32(s, flag) == 0


def _expect_legal(s: System, cmd: Cmd) -> None:
    """``cmd`` completes: no error bit, cqh advances past it."""
    start = _cqh(s)
    sw.submit(s, cmd)
    assert sw.cqcsr(s) & (CMD_ILL | CQMF | CMD_TO) == 0
    assert _cqh(s) == _cqt(s) == (start + 1) % 8


def _bits(*ranges: Tuple[int, int]) -> List[int]:
    out: List[int] = []
    for lo, hi in ranges:
        out += list(range(lo, hi + 1))
    return out


# ---------------------------------------------------------------------------
# cqcsr handshake, cqh / cqt / cqb
# ---------------------------------------------------------------------------
def test_cqcsr_cqen_cqon_handshake() -> None:
    """cqcsr.cqen: cqon reads 1 once the queue is active, 0 once it is off; busy
    may be hard-wired to 0 (registers "cqcsr" bits 0, 16, 17)."""
    s = System()
    io = s.iommu
    assert io.mmio_read(REG.CQCSR, 4) == 0
    base = s.alloc.alloc()
    io.mmio_write(REG.CQB, sw.queue_base(base, 2))
    io.mmio_write(REG.CQCSR, CQEN, 4)
    assert io.mmio_read(REG.CQCSR, 4) == CQEN | CQON
    io.mmio_write(REG.CQCSR, 0, 4)
    assert io.mmio_read(REG.CQCSR, 4) == 0


def test_cqen_enable_resets_cqh_and_cmd_ill() -> None:
    """cqcsr.cqen 0->1 sets cqh and cmd_ill, cmd_to, cqmf, fence_w_ip to 0."""
    s = _sys()
    flag = s.page()
    sw.submit(s, _fence(flag, 1), _fence(flag, 2), (0, 0))
    assert _cqh(s) == 2
    assert sw.cqcsr(s) & CMD_ILL
    io = s.iommu
    io.mmio_write(REG.CQCSR, 0, 4)  # off; errors stay (RW1C only)
    assert sw.cqcsr(s) == CMD_ILL
    io.mmio_write(REG.CQT, 0, 4)
    io.mmio_write(REG.CQCSR, CQEN, 4)
    assert sw.cqcsr(s) == CQEN | CQON
    assert _cqh(s) == 0


def test_cqen_enable_resets_cqmf_and_fence_w_ip() -> None:
    """cqcsr.cqen 0->1 clears cqmf and fence_w_ip too (fctl.WSI = 1 to get fence_w_ip)."""
    s = _sys(fctl=2)
    flag = s.page()
    s.mem.inject(flag + 8, 4, rv.MemoryFault.ACCESS_FAULT)
    sw.submit(s, sw.iofence_c(wsi=True), _fence(flag + 8, 3))
    assert sw.cqcsr(s) & (FENCE_W_IP | CQMF) == FENCE_W_IP | CQMF
    assert _cqh(s) == 1
    io = s.iommu
    io.mmio_write(REG.CQCSR, 0, 4)
    io.mmio_write(REG.CQT, 0, 4)
    io.mmio_write(REG.CQCSR, CQEN, 4)
    assert sw.cqcsr(s) == CQEN | CQON
    assert _cqh(s) == 0


def test_cqen_enable_resets_cmd_to() -> None:
    """cqcsr.cqen 0->1 clears cmd_to (set by an IOFENCE.C after a timed-out ATS.INVAL)."""
    s = _sys()
    sw.submit(s, sw.ats_inval(rid=3), sw.iofence_c())
    assert _cqh(s) == 1  # the fence waits for the invalidation
    assert s.iommu.ats_timeout() == 1
    assert sw.cqcsr(s) & CMD_TO
    assert _cqh(s) == 1
    io = s.iommu
    io.mmio_write(REG.CQCSR, 0, 4)
    io.mmio_write(REG.CQT, 0, 4)
    io.mmio_write(REG.CQCSR, CQEN, 4)
    assert sw.cqcsr(s) == CQEN | CQON
    assert _cqh(s) == 0


def test_queue_off_does_not_process() -> None:
    """cqon = 0: the IOMMU makes no implicit access to the queue (cqcsr.cqen)."""
    s = System()
    io = s.iommu
    base = s.alloc.alloc()
    io.mmio_write(REG.CQB, sw.queue_base(base, 3))
    flag = s.page()
    sw.write_cmd(s, 0, _fence(flag, 7))
    io.mmio_write(REG.CQT, 1, 4)
    assert _u32(s, flag) == 0
    assert _cqh(s) == 0
    io.mmio_write(REG.CQCSR, CQEN, 4)  # enabling starts at cqh = 0 up to cqt
    assert _u32(s, flag) == 7
    assert _cqh(s) == 1


def test_cqh_is_read_only() -> None:
    """cqh is RO: software writes are ignored ("Command-queue head")."""
    s = _sys(params=rv.IommuParams(auto_process=False))
    s.iommu.mmio_write(REG.CQH, 5, 4)
    assert _cqh(s) == 0


def test_cqt_only_log2sz_bits_writable() -> None:
    """cqt: only bits LOG2SZ-1:0 are writable ("Command-queue tail")."""
    s = _sys(log2sz=2, params=rv.IommuParams(auto_process=False))
    s.iommu.mmio_write(REG.CQT, 0xFFFF_FFFF, 4)
    assert _cqt(s) == 3
    s.iommu.mmio_write(REG.CQT, 0x1235, 4)
    assert _cqt(s) == 1


def test_cqb_write_clears_cqt_bits_at_and_above_log2sz() -> None:
    """cqb: after a write, bits 31:LOG2SZ of cqt are 0 ("Command-queue base")."""
    s = _sys(log2sz=3, params=rv.IommuParams(auto_process=False))
    io = s.iommu
    io.mmio_write(REG.CQT, 6, 4)
    io.mmio_write(REG.CQCSR, 0, 4)
    base = s.alloc.alloc()
    io.mmio_write(REG.CQB, sw.queue_base(base, 1))
    assert io.mmio_read(REG.CQB) == sw.queue_base(base, 1)
    assert _cqt(s) >> 1 == 0


def test_head_tail_wrap_around_four_entries() -> None:
    """cqb.LOG2SZ-1 = 1: a 4-entry ring; cqh and cqt wrap modulo 4 and every
    command in order is executed ("Command-Queue": cqh advances by 1 per command)."""
    s = _sys(log2sz=2)
    flags = s.page()
    n = 0
    for batch in (1, 3, 2, 3, 3, 1, 2):  # at most 3 queued: full is cqt == cqh - 1
        cmds = [_fence(flags + 4 * (n + k), 0xC0DE0000 + n + k) for k in range(batch)]
        sw.submit(s, *cmds)
        n += batch
        assert _cqh(s) == _cqt(s) == n % 4
    assert sw.cqcsr(s) == CQEN | CQON
    for k in range(n):
        assert _u32(s, flags + 4 * k) == 0xC0DE0000 + k


def test_wrap_around_with_deferred_processing() -> None:
    """A full 4-entry ring (3 commands) processed later, then 3 more that wrap past index 0."""
    s = _sys(log2sz=2, params=rv.IommuParams(auto_process=False))
    flags = s.page()
    sw.submit(s, *[_fence(flags + 4 * k, 10 + k) for k in range(3)])
    assert (_cqh(s), _cqt(s)) == (0, 3)
    assert s.iommu.process_commands() == 3
    assert _cqh(s) == 3
    sw.submit(s, *[_fence(flags + 4 * k, 20 + k) for k in range(3, 6)])  # slots 3, 0, 1
    assert _cqt(s) == 2
    assert s.iommu.process_commands() == 3
    assert _cqh(s) == 2
    assert [_u32(s, flags + 4 * k) for k in range(6)] == [10, 11, 12, 23, 24, 25]


def test_auto_process_on_cqt_write() -> None:
    """By default a cqt write (the doorbell) processes the queue at once."""
    s = _sys()
    flag = s.page()
    sw.submit(s, _fence(flag, 0xAA))
    assert _cqh(s) == 1
    assert _u32(s, flag) == 0xAA


def test_no_auto_process_then_process_commands_limit() -> None:
    """IommuParams(auto_process=False): nothing runs until process_commands(limit)."""
    s = _sys(params=rv.IommuParams(auto_process=False))
    flags = s.page()
    sw.submit(s, *[_fence(flags + 4 * k, k + 1) for k in range(5)])
    assert _cqh(s) == 0
    assert _u32(s, flags) == 0
    io = s.iommu
    assert io.process_commands(2) == 2
    assert _cqh(s) == 2
    assert [_u32(s, flags + 4 * k) for k in range(5)] == [1, 2, 0, 0, 0]
    assert io.process_commands(0) == 0
    assert _cqh(s) == 2
    assert io.process_commands() == 3
    assert _cqh(s) == 5
    assert io.process_commands() == 0  # empty: cqh == cqt
    assert [_u32(s, flags + 4 * k) for k in range(5)] == [1, 2, 3, 4, 5]


def test_process_commands_stops_at_illegal() -> None:
    """process_commands counts only completed commands and stops on cmd_ill."""
    s = _sys(params=rv.IommuParams(auto_process=False))
    flag = s.page()
    sw.submit(s, _fence(flag, 1), (5, 0), _fence(flag + 4, 2))
    assert s.iommu.process_commands() == 1
    assert _cqh(s) == 1
    assert sw.cqcsr(s) & CMD_ILL
    assert s.iommu.process_commands() == 0


@pytest.mark.parametrize("kind", [rv.MemoryFault.ACCESS_FAULT, rv.MemoryFault.DATA_CORRUPTION])
def test_fetch_memory_fault_sets_cqmf_and_resumes(kind: rv.MemoryFault) -> None:
    """cqcsr.cqmf: a memory fault fetching a command sets cqmf, cqh holds that command's
    index and the queue stalls until cqmf is cleared (RW1C)."""
    s = _sys()
    base = sw._qinfo(s, REG.CQB)[0]
    flags = s.page()
    sw.write_cmd(s, 0, _fence(flags, 1))
    sw.write_cmd(s, 1, _fence(flags + 4, 2))
    sw.write_cmd(s, 2, _fence(flags + 8, 3))
    s.mem.inject(base + 16, 16, kind)
    s.iommu.mmio_write(REG.CQT, 3, 4)
    assert sw.cqcsr(s) == CQEN | CQON | CQMF
    assert _cqh(s) == 1
    assert [_u32(s, flags + 4 * k) for k in range(3)] == [1, 0, 0]
    # still stalled: a new doorbell does nothing
    s.mem.clear_injections()
    sw.submit(s, _fence(flags + 12, 4))
    assert _cqh(s) == 1
    assert _u32(s, flags + 4) == 0
    _clear(s, CQMF)
    assert sw.cqcsr(s) == CQEN | CQON
    assert _cqh(s) == 4
    assert [_u32(s, flags + 4 * k) for k in range(4)] == [1, 2, 3, 4]


def test_fetch_fault_with_cie_sets_cip() -> None:
    """A command fetch fault sets cqmf and, with cqcsr.cie = 1, ipsr.cip."""
    s = _sys(ie=True)
    base = sw._qinfo(s, REG.CQB)[0]
    sw.write_cmd(s, 0, sw.iofence_c())
    s.mem.inject(base, 4096, rv.MemoryFault.ACCESS_FAULT)
    s.iommu.mmio_write(REG.CQT, 1, 4)
    assert sw.cqcsr(s) & CQMF
    assert _cqh(s) == 0
    assert sw.ipsr(s) & CIP


@pytest.mark.parametrize("cie", [False, True])
def test_cmd_ill_sets_cip_only_with_cie(cie: bool) -> None:
    """ "When an error bit ... in cqcsr is 1, cip is set in ipsr if cqcsr.cie is 1"."""
    s = _sys(ie=cie)
    sw.submit(s, (0, 0))
    assert sw.cqcsr(s) & CMD_ILL
    assert bool(sw.ipsr(s) & CIP) == cie


def test_cmd_ill_stops_until_cleared_then_resumes() -> None:
    """cqcsr.cmd_ill (RW1C): processing stops with cqh on the illegal command; once
    software replaces it and clears cmd_ill, processing resumes from cqh."""
    s = _sys()
    flags = s.page()
    sw.submit(s, _fence(flags, 1), (0x7F, 0), _fence(flags + 4, 2))
    assert _cqh(s) == 1
    assert sw.cqcsr(s) & CMD_ILL
    # more doorbells do nothing while cmd_ill is set
    sw.submit(s, _fence(flags + 8, 3))
    assert _cqh(s) == 1
    assert [_u32(s, flags + 4 * k) for k in range(3)] == [1, 0, 0]
    # writing 0 to cmd_ill does not clear it
    s.iommu.mmio_write(REG.CQCSR, CQEN, 4)
    assert sw.cqcsr(s) & CMD_ILL
    assert _cqh(s) == 1
    sw.write_cmd(s, 1, _fence(flags + 12, 9))
    _clear(s, CMD_ILL)
    assert sw.cqcsr(s) == CQEN | CQON
    assert _cqh(s) == 4
    assert [_u32(s, flags + 4 * k) for k in range(4)] == [1, 2, 3, 9]


def test_cmd_ill_cleared_without_fixing_command_is_illegal_again() -> None:
    """cqh references the illegal command; clearing cmd_ill re-fetches it."""
    s = _sys()
    flag = s.page()
    sw.submit(s, (6, 0), _fence(flag, 1))
    _clear(s, CMD_ILL)
    assert sw.cqcsr(s) & CMD_ILL
    assert _cqh(s) == 0
    assert _u32(s, flag) == 0


def test_commands_read_in_fctl_be_order() -> None:
    """ "The byte order of each of the doublewords in memory ... is fctl.BE"."""
    s = _sys(fctl=1, params=rv.IommuParams(be_writable=True))
    flag = s.page()
    sw.submit(s, _fence(flag, 0x01020304))
    assert _cqh(s) == 1
    assert sw.cqcsr(s) & CMD_ILL == 0
    assert s.mem.read(flag, 4) == bytes([1, 2, 3, 4])
    # the same command written little-endian is garbage in big-endian mode
    le = _fence(flag, 5)
    base = sw._qinfo(s, REG.CQB)[0]
    s.mem.write(base + 16, le[0].to_bytes(8, "little") + le[1].to_bytes(8, "little"))
    s.iommu.mmio_write(REG.CQT, 2, 4)
    assert sw.cqcsr(s) & CMD_ILL
    assert _cqh(s) == 1


# ---------------------------------------------------------------------------
# illegal encodings
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("opcode", [0] + list(range(5, 128)))
def test_reserved_and_custom_opcodes_are_illegal(opcode: int) -> None:
    """Opcodes 0 and 5-63 are reserved, 64-127 custom (none implemented): cmd_ill."""
    s = _sys()
    _expect_illegal(s, (F.CMD.opcode.put(0, opcode), 0))


_FUNC3 = [(1, f) for f in range(2, 8)]
_FUNC3 += [(2, f) for f in range(1, 8)]
_FUNC3 += [(3, f) for f in range(2, 8)]
_FUNC3 += [(4, f) for f in range(2, 8)]


@pytest.mark.parametrize(("opcode", "func3"), _FUNC3)
def test_undefined_func3_is_illegal(opcode: int, func3: int) -> None:
    """ "All undefined functions of command opcodes 0 through 63 are reserved": cmd_ill."""
    s = _sys()
    _expect_illegal(s, (F.CMD.encode(opcode=opcode, func3=func3), 0))


# reserved bits as drawn in the spec (dword0 bit n = command bit n, dword1 bit n = bit 64+n)
_IOTINVAL_RSV0 = _bits((11, 11), (35, 43), (60, 63))
_IOTINVAL_RSV1 = _bits((0, 8), (62, 63))
_IOFENCE_RSV0 = _bits((14, 31))
_IOFENCE_RSV1 = _bits((62, 63))
_IODIR_RSV0 = _bits((10, 11), (32, 32), (34, 39))
_IODIR_RSV1 = _bits((0, 63))
_ATS_RSV0 = _bits((10, 11), (34, 39))

_LEGAL = {
    "IOTINVAL.VMA": sw.iotinval_vma(gscid=3, pscid=4, addr=0x5000),
    "IOTINVAL.GVMA": sw.iotinval_gvma(gscid=3, addr=0x5000),
    "IOFENCE.C": sw.iofence_c(),
    "IODIR.INVAL_DDT": sw.iodir_inval_ddt(did=5),
    "IODIR.INVAL_PDT": sw.iodir_inval_pdt(did=5, pid=6),
    "ATS.INVAL": sw.ats_inval(rid=5, addr=0x7000),
    "ATS.PRGR": sw.ats_prgr(rid=5, prgi=3),
}

_RSV_CASES = []
for _name, _r0, _r1 in (
    ("IOTINVAL.VMA", _IOTINVAL_RSV0, _IOTINVAL_RSV1),
    ("IOTINVAL.GVMA", _IOTINVAL_RSV0, _IOTINVAL_RSV1),
    ("IOFENCE.C", _IOFENCE_RSV0, _IOFENCE_RSV1),
    ("IODIR.INVAL_DDT", _IODIR_RSV0, _IODIR_RSV1),
    ("IODIR.INVAL_PDT", _IODIR_RSV0, _IODIR_RSV1),
    ("ATS.INVAL", _ATS_RSV0, []),
    ("ATS.PRGR", _ATS_RSV0, []),
):
    _RSV_CASES += [(_name, 0, b) for b in _r0] + [(_name, 1, b) for b in _r1]


@pytest.mark.parametrize(("name", "dword", "bit"), _RSV_CASES)
def test_reserved_bit_set_is_illegal(name: str, dword: int, bit: int) -> None:
    """ "A command is determined to be illegal if ... a reserved bit is set to 1"."""
    s = _sys()
    d0, d1 = _LEGAL[name]
    _expect_legal(s, (d0, d1))  # the base command is legal
    cmd = (d0 | (1 << bit), d1) if dword == 0 else (d0, d1 | (1 << bit))
    _expect_illegal(s, cmd)


@pytest.mark.parametrize("gvma", [False, True])
def test_nl_bit_reserved_without_capability(gvma: bool) -> None:
    """NLINV: "When capabilities.NL is 0, bit 34 remains reserved"."""
    s = _sys(nl=False)
    mk = sw.iotinval_gvma if gvma else sw.iotinval_vma
    _expect_illegal(s, mk(gscid=1, addr=0x1000, nl=True))


@pytest.mark.parametrize("gvma", [False, True])
def test_nl_bit_accepted_with_capability(gvma: bool) -> None:
    """NLINV: with capabilities.NL = 1 bit 34 is the NL operand."""
    s = _sys(nl=True)
    mk = sw.iotinval_gvma if gvma else sw.iotinval_vma
    _expect_legal(s, mk(gscid=1, addr=0x1000, nl=True))


@pytest.mark.parametrize("gvma", [False, True])
def test_s_bit_reserved_without_capability(gvma: bool) -> None:
    """ARINV: "When capabilities.S is 0, bit 73 remains reserved"."""
    s = _sys(s=False)
    mk = sw.iotinval_gvma if gvma else sw.iotinval_vma
    _expect_illegal(s, mk(gscid=1, addr=0x3000, s=True))


@pytest.mark.parametrize("gvma", [False, True])
def test_s_bit_accepted_with_capability(gvma: bool) -> None:
    """ARINV: with capabilities.S = 1 bit 73 is the range-size operand."""
    s = _sys(s=True)
    mk = sw.iotinval_gvma if gvma else sw.iotinval_vma
    _expect_legal(s, mk(gscid=1, addr=0x3000, s=True))


@pytest.mark.parametrize("gv", [False, True])
def test_iotinval_gvma_with_pscv_is_illegal(gv: bool) -> None:
    """ "Setting PSCV to 1 with IOTINVAL.GVMA is illegal"."""
    s = _sys()
    _expect_illegal(s, sw.iotinval_gvma(gscid=1 if gv else None, pscid=2))


@pytest.mark.parametrize("gv", [False, True])
@pytest.mark.parametrize("av", [False, True])
@pytest.mark.parametrize("pscv", [False, True])
def test_iotinval_vma_every_operand_combination_is_legal(gv: bool, av: bool, pscv: bool) -> None:
    """IOTINVAL.VMA: all eight GV/AV/PSCV rows of the operations table are legal."""
    s = _sys()
    _expect_legal(
        s,
        sw.iotinval_vma(
            gscid=0xFFFF if gv else None,
            pscid=0xFFFFF if pscv else None,
            addr=0xFFFF_FFFF_FFFF_F000 if av else None,
        ),
    )


@pytest.mark.parametrize(("gv", "av"), [(False, False), (False, True), (True, False), (True, True)])
def test_iotinval_gvma_every_operand_combination_is_legal(gv: bool, av: bool) -> None:
    """IOTINVAL.GVMA: GV/AV rows of the operations table (AV ignored when GV = 0)."""
    s = _sys()
    _expect_legal(
        s, sw.iotinval_gvma(gscid=0xFFFF if gv else None, addr=0x1234_5000 if av else None)
    )


def test_ignored_operands_may_hold_any_value() -> None:
    """GSCID is ignored when GV = 0, PSCID when PSCV = 0, ADDR (and S) when AV = 0:
    nonzero values there do not make the command illegal."""
    s = _sys()
    C0, C1 = F.CMD_IOTINVAL0, F.CMD_IOTINVAL1
    d0 = C0.encode(opcode=1, func3=0, GSCID=0xABCD, PSCID=0x12345)
    d1 = C1.encode(ADDR=0xF_FFFF_FFFF_FFFF, S=1)
    _expect_legal(s, (d0, d1))
    _expect_legal(s, (C0.PSCV.put(d0, 0) | C0.func3.put(0, 1), d1))
    # IODIR.INVAL_DDT with DV = 0: DID ignored (even one too wide for the mode)
    _expect_legal(s, (F.CMD_IODIR0.encode(opcode=3, func3=0, DID=0xFF_FFFF), 0))


def test_iofence_wsi_reserved_when_fctl_wsi_is_0() -> None:
    """IOFENCE.C: WSI "is reserved if ... wired-interrupts have not been enabled
    (fctl.WSI == 0)"."""
    s = _sys(fctl=0)
    _expect_illegal(s, sw.iofence_c(wsi=True))


def test_iofence_wsi_reserved_without_wsi_support() -> None:
    """IOFENCE.C: WSI is reserved if the IOMMU does not support wired interrupts."""
    s = _sys(igs=rv.IGS.MSI, fctl=2)  # fctl.WSI stays 0 with IGS = MSI
    assert s.iommu.mmio_read(REG.FCTL, 4) & F.FCTL.WSI.mask == 0
    _expect_illegal(s, sw.iofence_c(wsi=True))


def test_iodir_inval_ddt_pid_is_reserved() -> None:
    """IODIR.INVAL_DDT: "The PID operand is reserved"."""
    s = _sys()
    _expect_illegal(s, sw.iodir_inval_ddt(did=1, pid=1))
    s = _sys()
    _expect_illegal(s, sw.iodir_inval_ddt(did=None, pid=0x80000))


@settings(max_examples=30, deadline=None)
@given(pid=st.integers(1, (1 << 20) - 1), dv=st.booleans())
def test_iodir_inval_ddt_any_pid_is_illegal(pid: int, dv: bool) -> None:
    """IODIR.INVAL_DDT with any nonzero PID is illegal."""
    s = _sys()
    _expect_illegal(s, sw.iodir_inval_ddt(did=7 if dv else None, pid=pid))


def test_iodir_inval_pdt_with_dv_0_is_illegal() -> None:
    """IODIR.INVAL_PDT: "The DV operand must be 1 ... else the command is illegal"."""
    s = _sys()
    _expect_illegal(s, sw.iodir_inval_pdt(did=None, pid=1))


@pytest.mark.parametrize(
    ("caps", "width"),
    [({}, 20), ({"pd20": False}, 17), ({"pd20": False, "pd17": False}, 8)],
)
def test_iodir_inval_pdt_pid_wider_than_supported_is_illegal(
    caps: Dict[str, Any], width: int
) -> None:
    """IODIR.INVAL_PDT: "The PID operand ... must not be wider than the width supported
    by the IOMMU" (PD20 -> 20 bits, PD17 -> 17, PD8 -> 8)."""
    s = _sys(**caps)
    _expect_legal(s, sw.iodir_inval_pdt(did=1, pid=(1 << width) - 1))
    if width < 20:
        _expect_illegal(s, sw.iodir_inval_pdt(did=1, pid=1 << width))


@pytest.mark.parametrize(
    ("levels", "widest"),
    [(1, (1 << 6) - 1), (2, (1 << 15) - 1), (3, (1 << 24) - 1)],
)
@pytest.mark.parametrize("pdt", [False, True])
def test_iodir_did_wider_than_ddtp_mode_is_illegal(levels: int, widest: int, pdt: bool) -> None:
    """IODIR: "When DV operand is 1, the value of the DID operand must not be wider than
    that supported by the ddtp.iommu_mode" (extended DCs: 6, 15, 24 bits)."""
    s = _sys(levels=levels)
    mk = sw.iodir_inval_pdt if pdt else sw.iodir_inval_ddt
    _expect_legal(s, mk(did=widest))
    if levels < 3:
        _expect_illegal(s, mk(did=widest + 1))


def test_iodir_did_width_base_format_dc() -> None:
    """Base-format DCs (capabilities.MSI_FLAT = 0): a 1-level DDT covers 7-bit IDs."""
    s = _sys(levels=1, msi_flat=False)
    _expect_legal(s, sw.iodir_inval_ddt(did=127))
    _expect_illegal(s, sw.iodir_inval_ddt(did=128))


@pytest.mark.parametrize("cmd", [sw.ats_inval(rid=1), sw.ats_prgr(rid=1)], ids=["INVAL", "PRGR"])
def test_ats_commands_unsupported_without_capability(cmd: Cmd) -> None:
    """ATS commands are "supported if capabilities.ATS is set to 1"; an unsupported
    command sets cmd_ill."""
    s = _sys(ats=False)
    sent: List[object] = []
    s.iommu.on_ats_message = sent.append
    _expect_illegal(s, cmd)
    assert sent == []


# ---------------------------------------------------------------------------
# IOFENCE.C
# ---------------------------------------------------------------------------
def test_iofence_av_writes_data_little_endian() -> None:
    """IOFENCE.C AV=1: "writes DATA to memory at ADDR[63:2] * 4 as a 4-byte store"
    (fctl.BE = 0: little-endian)."""
    s = _sys()
    page = s.page()
    s.mem.write(page, b"\xee" * 16)
    sw.submit(s, sw.iofence_c(addr=page + 4, data=0x11223344))
    assert s.mem.read(page, 16) == b"\xee" * 4 + bytes([0x44, 0x33, 0x22, 0x11]) + b"\xee" * 8
    assert _cqh(s) == 1


def test_iofence_av_writes_data_big_endian() -> None:
    """IOFENCE.C AV=1 with fctl.BE = 1: DATA stored big-endian (fctl "BE")."""
    s = _sys(fctl=1, params=rv.IommuParams(be_writable=True))
    page = s.page()
    sw.submit(s, sw.iofence_c(addr=page + 8, data=0x11223344))
    assert s.mem.read(page + 8, 4) == bytes([0x11, 0x22, 0x33, 0x44])
    assert sw.cqcsr(s) == CQEN | CQON


def test_iofence_av_after_fctl_be_write() -> None:
    """fctl.BE written to 1 (be_writable) changes the byte order of the fence's store."""
    s = System(params=rv.IommuParams(be_writable=True))
    s.iommu.mmio_write(REG.FCTL, 1, 4)
    assert s.iommu.mmio_read(REG.FCTL, 4) & 1
    sw.setup_cq(s)
    page = s.page()
    sw.submit(s, sw.iofence_c(addr=page, data=0xA1B2C3D4))
    assert s.mem.read(page, 4) == bytes([0xA1, 0xB2, 0xC3, 0xD4])


def test_iofence_av_0_ignores_addr_and_data() -> None:
    """IOFENCE.C: "When AV is 0, the ADDR[63:2] and DATA operands are ignored"."""
    s = _sys()
    page = s.page()
    d0 = F.CMD_IOFENCE0.encode(opcode=2, func3=0, AV=0, DATA=0xDEADBEEF)
    d1 = F.CMD_IOFENCE1.encode(ADDR=page >> 2)
    sw.submit(s, (d0, d1))
    assert _cqh(s) == 1
    assert s.mem.read(page, 8) == bytes(8)


@pytest.mark.parametrize("kind", [rv.MemoryFault.ACCESS_FAULT, rv.MemoryFault.DATA_CORRUPTION])
def test_iofence_write_fault_sets_cqmf_with_cqh_on_fence(kind: rv.MemoryFault) -> None:
    """IOFENCE.C AV write memory fault: "cqmf ... is set ... and the cqh holds the index
    of the IOFENCE.C"; clearing cqmf retries it."""
    s = _sys(ie=True)
    flags = s.page()
    target = s.page()
    s.mem.inject(target, 4, kind)
    sw.submit(s, _fence(flags, 1), _fence(target, 0x77), _fence(flags + 4, 2))
    assert sw.cqcsr(s) == CQEN | CIE | CQON | CQMF
    assert _cqh(s) == 1
    assert sw.ipsr(s) & CIP
    assert [_u32(s, flags), _u32(s, flags + 4)] == [1, 0]
    s.mem.clear_injections()
    _clear(s, CQMF)
    assert sw.cqcsr(s) == CQEN | CIE | CQON
    assert _cqh(s) == 3
    assert _u32(s, target) == 0x77
    assert _u32(s, flags + 4) == 2


def test_iofence_write_beyond_pas_sets_cqmf() -> None:
    """An IOFENCE.C store to an address beyond capabilities.PAS is a memory fault."""
    s = _sys(pas=40)
    sw.submit(s, _fence(1 << 40, 1))
    assert sw.cqcsr(s) & CQMF
    assert _cqh(s) == 0


@pytest.mark.parametrize(("pr", "pw"), [(False, False), (True, False), (False, True), (True, True)])
def test_iofence_pr_pw_request_global_ordering(pr: bool, pw: bool) -> None:
    """IOFENCE.C PR/PW: ordering of previous reads/writes is requested (on_fence(pr, pw))."""
    s = _sys()
    calls: List[Tuple[bool, bool]] = []
    s.iommu.on_fence = lambda r, w: calls.append((r, w))
    sw.submit(s, sw.iofence_c(pr=pr, pw=pw))
    assert _cqh(s) == 1
    assert calls == ([(pr, pw)] if pr or pw else [])


def test_iofence_wsi_sets_fence_w_ip_cip_and_wire() -> None:
    """IOFENCE.C WSI=1 with fctl.WSI = 1: cqcsr.fence_w_ip is set on completion; with
    cie = 1 ipsr.cip is set and the wire of icvec.civ is raised."""
    s = _sys(fctl=2, ie=True)
    io = s.iommu
    io.mmio_write(REG.ICVEC, 5, 4)  # civ = 5
    wires: List[Tuple[int, bool]] = []
    io.on_wired_interrupt = lambda v, lvl: wires.append((v, lvl))
    flag = s.page()
    sw.submit(s, sw.iofence_c(wsi=True), _fence(flag, 9))
    assert sw.cqcsr(s) == CQEN | CIE | CQON | FENCE_W_IP
    assert _cqh(s) == 2  # fence_w_ip does not stop the queue
    assert _u32(s, flag) == 9
    assert sw.ipsr(s) & CIP
    assert wires == [(5, True)]
    _clear(s, FENCE_W_IP)  # RW1C
    assert sw.cqcsr(s) == CQEN | CIE | CQON
    io.mmio_write(REG.IPSR, CIP, 4)
    assert sw.ipsr(s) & CIP == 0
    assert wires == [(5, True), (5, False)]


def test_iofence_wsi_without_cie_sets_only_fence_w_ip() -> None:
    """fence_w_ip is set regardless of cie; cip only when cie = 1."""
    s = _sys(fctl=2, ie=False)
    sw.submit(s, sw.iofence_c(wsi=True))
    assert sw.cqcsr(s) & FENCE_W_IP
    assert sw.ipsr(s) & CIP == 0


def test_iofence_with_av_and_wsi_and_pr_pw_together() -> None:
    """All IOFENCE.C operands at once: ordering request, DATA store and fence_w_ip."""
    s = _sys(fctl=2)
    calls: List[Tuple[bool, bool]] = []
    s.iommu.on_fence = lambda r, w: calls.append((r, w))
    page = s.page()
    sw.submit(s, sw.iofence_c(addr=page + 12, data=0xFACE, wsi=True, pr=True, pw=True))
    assert calls == [(True, True)]
    assert _u32(s, page + 12) == 0xFACE
    assert sw.cqcsr(s) & FENCE_W_IP
    assert _cqh(s) == 1


# ---------------------------------------------------------------------------
# ATS.INVAL / ATS.PRGR
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pid", "dseg", "g", "s_bit", "addr"),
    [
        (None, None, False, False, 0x1234_5000),
        (0xABCDE, 0x5A, True, True, 0xFFFF_FFFF_FFFF_F000),
        (7, None, False, True, 0x7FFF_F000),
        (None, 0x01, True, False, 0),
    ],
)
def test_ats_inval_sends_invalidation_request(
    pid: Optional[int], dseg: Optional[int], g: bool, s_bit: bool, addr: int
) -> None:
    """ATS.INVAL: an "Invalidation Request" to RID, with the PASID when PV = 1, the
    segment when DSV = 1, and the payload's G, S and untranslated address."""
    s = _sys()
    sent: List[object] = []
    s.iommu.on_ats_message = sent.append
    sw.submit(s, sw.ats_inval(rid=0xBEEF, addr=addr, pid=pid, dseg=dseg, g=g, s=s_bit))
    assert sent == [
        rv.InvalidationRequest(
            device_id=0xBEEF, addr=addr, s=s_bit, global_=g, pasid=pid, segment=dseg, itag=0
        )
    ]
    assert _cqh(s) == 1  # cqh may advance while the completion is awaited
    assert sw.cqcsr(s) == CQEN | CQON


def test_ats_inval_ignores_pid_without_pv_and_dseg_without_dsv() -> None:
    """ATS: "if PV operand is set to 0, then the PID operand is ignored"; "If the DSV
    operand is 0, then the DSEG operand is ignored"."""
    s = _sys()
    sent: List[object] = []
    s.iommu.on_ats_message = sent.append
    d0 = F.CMD_ATS0.encode(opcode=4, func3=0, PID=0x12345, PV=0, DSV=0, RID=9, DSEG=0x33)
    d1 = F.ATS_INVAL_PAYLOAD.encode(ADDR=0x42)
    sw.submit(s, (d0, d1))
    assert sent == [rv.InvalidationRequest(device_id=9, addr=0x42000, itag=0)]


@pytest.mark.parametrize(
    ("pid", "dseg", "prgi", "code"),
    [(None, None, 0, 0), (0x54321, 0xA5, 0x1FF, 0xF), (3, None, 0x100, 1), (None, 7, 5, 0)],
)
def test_ats_prgr_sends_page_request_group_response(
    pid: Optional[int], dseg: Optional[int], prgi: int, code: int
) -> None:
    """ATS.PRGR: a "Page Request Group Response" to RID with PASID (PV), segment (DSV),
    Page Request Group Index and Response Code from the payload."""
    s = _sys()
    sent: List[object] = []
    s.iommu.on_ats_message = sent.append
    sw.submit(s, sw.ats_prgr(rid=0x1234, prgi=prgi, response_code=code, pid=pid, dseg=dseg))
    assert sent == [
        rv.PageRequestGroupResponse(
            device_id=0x1234, prg_index=prgi, response_code=code, pasid=pid, segment=dseg
        )
    ]
    assert _cqh(s) == 1
    assert sw.cqcsr(s) == CQEN | CQON


def test_ats_prgr_ignores_pid_without_pv() -> None:
    """ATS.PRGR with PV = 0: "the message is generated without a PASID"."""
    s = _sys()
    sent: List[object] = []
    s.iommu.on_ats_message = sent.append
    d0 = F.CMD_ATS0.encode(opcode=4, func3=1, PID=0xFFFFF, PV=0, RID=2, DSEG=0xFF)
    d1 = F.ATS_PRGR_PAYLOAD.encode(PRGI=1, ResponseCode=1)
    sw.submit(s, (d0, d1))
    assert sent == [rv.PageRequestGroupResponse(device_id=2, prg_index=1, response_code=1)]


def _ats_device(s: System, did: int) -> None:
    g = s.gstage(SV39)
    s.ddt.set_dc(did, tc=TC_V | TC_EN_ATS, iohgatp=g.satp(1), ta=ta())


def test_iofence_waits_for_ats_inval_completion() -> None:
    """IOFENCE.C "is guaranteed to not complete before all previously fetched commands
    were executed and completed"; ATS.INVAL completes on the Invalidation Completion."""
    s = _sys()
    _ats_device(s, 0x21)
    sent: List[Any] = []
    s.iommu.on_ats_message = sent.append
    flag = s.page()
    sw.submit(s, sw.ats_inval(rid=0x21, addr=0x4000), _fence(flag, 5))
    assert _cqh(s) == 1
    assert _u32(s, flag) == 0
    assert sw.cqcsr(s) & (CMD_ILL | CQMF | CMD_TO) == 0
    itag = sent[0].itag
    assert s.iommu.invalidation_completion(0x21, 1 << itag) == 1
    assert _cqh(s) == 2
    assert _u32(s, flag) == 5


def test_iofence_after_ats_inval_timeout_sets_cmd_to() -> None:
    """cqcsr.cmd_to: an IOFENCE.C that finds a timed-out ATS.INVAL sets cmd_to, cqh
    holds the IOFENCE.C; clearing cmd_to lets it complete."""
    s = _sys(ie=True)
    flag = s.page()
    sw.submit(s, sw.ats_inval(rid=4), _fence(flag, 6))
    assert s.iommu.ats_timeout() == 1
    assert sw.cqcsr(s) == CQEN | CIE | CQON | CMD_TO
    assert _cqh(s) == 1
    assert sw.ipsr(s) & CIP
    assert _u32(s, flag) == 0
    _clear(s, CMD_TO)
    assert _cqh(s) == 2
    assert _u32(s, flag) == 6
    assert sw.cqcsr(s) == CQEN | CIE | CQON


# ---------------------------------------------------------------------------
# hypothesis: arbitrary command words never crash the model
# ---------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(d0=st.integers(0, (1 << 64) - 1), d1=st.integers(0, (1 << 64) - 1))
def test_arbitrary_command_words_never_raise(d0: int, d1: int) -> None:
    """Any 16-byte command either completes (cqh advances) or stops the queue with cqh
    on it (cmd_ill, cqmf) or waits; the model never raises."""
    s = _sys(fctl=2)
    s.iommu.on_ats_message = lambda m: None
    s.iommu.on_fence = lambda r, w: None
    sw.submit(s, (d0, d1))
    csr = sw.cqcsr(s)
    if csr & (CMD_ILL | CQMF):
        assert _cqh(s) == 0
    else:
        assert _cqh(s) == 1
