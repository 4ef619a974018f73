"""The memory-mapped register interface.

Spec: iommu_registers.adoc, "Memory-mapped register interface" (access sizes,
alignment, optional registers, reserved fields), "Register layout" (offsets and
sizes), "Reset behavior", and the section of each register (field attributes:
RO, RW, RW1C, RW1S, WARL).  The IOMMU is programmed only through
``mmio_read``/``mmio_write`` as a driver would, except where a test inspects
model state on purpose.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import TC_EN_ATS, TC_EN_PRI, TC_V, System
from riscv_iommu import formats as F
from swhelpers import (
    iofence_c,
    queue_base,
    setup_cq,
    setup_fq,
    setup_pq,
    submit,
    write_cmd,
)

REG = rv.REG
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1


def snapshot(io: rv.Iommu) -> Dict[int, int]:
    """Every 4-byte word of the register page."""
    return {off: io.mmio_read(off, 4) for off in range(0, 4096, 4)}


def changed(a: Dict[int, int], b: Dict[int, int]) -> Dict[int, int]:
    return {k: b[k] for k in a if a[k] != b[k]}


def bare_iommu(**kw: Any) -> rv.Iommu:
    """An IOMMU right after reset (nothing written)."""
    caps = kw.pop("caps", None) or rv.Capabilities.full()
    return rv.Iommu(rv.SparseMemory(), capabilities=caps, **kw)


# ---------------------------------------------------------------------------
# "Register layout": every register at its offset and width
# ---------------------------------------------------------------------------
_QB_RW = F.QUEUE_BASE.mask_of("LOG2SZ_1", "PPN")
_EVT_ALL_BUT_ID = M64 & ~F.IOHPMEVT.eventID.mask

# name, offset, size, expected value after writing all ones to a fresh System
# (full capabilities, default params: 16 vectors, 31 HPM counters, 12-bit QoS IDs),
# and the other words the write is expected to change (side effects).
LAYOUT: List[Tuple[str, int, int, Callable[[System], int], Dict[int, int]]] = [
    ("capabilities", 0, 8, lambda s: s.caps.raw, {}),  # RO
    ("fctl", 8, 4, lambda s: F.FCTL.mask_of("BE", "WSI"), {}),  # BE (END=1), WSI (IGS=BOTH)
    ("ddtp", 16, 8, lambda s: F.DDTP.PPN.mask | 4, {}),  # mode 15 illegal: stays 3LVL
    ("cqb", 24, 8, lambda s: _QB_RW, {}),
    ("cqh", 32, 4, lambda s: 0, {}),  # RO
    ("cqt", 36, 4, lambda s: 1, {}),  # 2-entry queue at reset (cqb = 0)
    ("fqb", 40, 8, lambda s: _QB_RW, {}),
    ("fqh", 48, 4, lambda s: 1, {}),
    ("fqt", 52, 4, lambda s: 0, {}),  # RO
    ("pqb", 56, 8, lambda s: _QB_RW, {}),
    ("pqh", 64, 4, lambda s: 1, {}),
    ("pqt", 68, 4, lambda s: 0, {}),  # RO
    ("cqcsr", 72, 4, lambda s: F.CQCSR.mask_of("cqen", "cie", "cqon"), {}),
    ("fqcsr", 76, 4, lambda s: F.FQCSR.mask_of("fqen", "fie", "fqon"), {}),
    ("pqcsr", 80, 4, lambda s: F.PQCSR.mask_of("pqen", "pie", "pqon"), {}),
    ("ipsr", 84, 4, lambda s: 0, {}),  # RW1C, nothing pending
    ("iocountovf", 88, 4, lambda s: 0, {}),  # RO
    ("iocountinh", 92, 4, lambda s: M32, {}),  # CY + 31 counters
    ("iohpmcycles", 96, 8, lambda s: M64, {REG.IOCOUNTOVF: 1}),  # OF shadowed
    ("tr_req_iova", 600, 8, lambda s: F.TR_REQ_IOVA.vpn.mask, {}),
    (
        "tr_req_ctl",
        608,
        8,
        # Go/Busy set: the translation ran (device 0xFFFFFF has no valid DC)
        lambda s: F.TR_REQ_CTL.mask_of("Priv", "Exe", "NW", "PID", "PV", "DID"),
        {REG.TR_RESPONSE: F.TR_RESPONSE.fault.mask},
    ),
    ("tr_response", 616, 8, lambda s: 0, {}),  # RO
    ("iommu_qosid", 624, 4, lambda s: F.IOMMU_QOSID.mask_of("RCID", "MCID"), {}),
    ("icvec", 760, 8, lambda s: F.ICVEC.mask_of("civ", "fiv", "pmiv", "piv"), {}),
]
for _x in range(1, 32):
    LAYOUT.append((f"iohpmctr{_x}", 104 + 8 * (_x - 1), 8, lambda s: M64, {}))
    LAYOUT.append(
        (
            f"iohpmevt{_x}",
            352 + 8 * (_x - 1),
            8,
            lambda s: _EVT_ALL_BUT_ID,  # eventID 0x7fff is not an event: WARL -> 0
            {REG.IOCOUNTOVF: 1 << _x},
        )
    )
for _x in range(16):
    LAYOUT.append((f"msi_addr_{_x}", 768 + 16 * _x, 8, lambda s: F.MSI_ADDR.ADDR.mask, {}))
    LAYOUT.append((f"msi_data_{_x}", 768 + 16 * _x + 8, 4, lambda s: M32, {}))
    LAYOUT.append((f"msi_vec_ctl_{_x}", 768 + 16 * _x + 12, 4, lambda s: 1, {}))


def test_register_layout_offsets_agree_with_reg():
    """Register layout table: the REG offsets are the spec's."""
    assert (REG.CAPABILITIES, REG.FCTL, REG.DDTP, REG.CQB, REG.CQH, REG.CQT) == (
        0,
        8,
        16,
        24,
        32,
        36,
    )
    assert (REG.FQB, REG.FQH, REG.FQT, REG.PQB, REG.PQH, REG.PQT) == (40, 48, 52, 56, 64, 68)
    assert (REG.CQCSR, REG.FQCSR, REG.PQCSR, REG.IPSR) == (72, 76, 80, 84)
    assert (REG.IOCOUNTOVF, REG.IOCOUNTINH, REG.IOHPMCYCLES) == (88, 92, 96)
    assert [REG.iohpmctr(x) for x in (1, 31)] == [104, 344]
    assert [REG.iohpmevt(x) for x in (1, 31)] == [352, 592]
    assert (REG.TR_REQ_IOVA, REG.TR_REQ_CTL, REG.TR_RESPONSE, REG.IOMMU_QOSID) == (
        600,
        608,
        616,
        624,
    )
    assert (REG.ICVEC, REG.MSI_CFG_TBL) == (760, 768)
    assert [(REG.msi_addr(x), REG.msi_data(x), REG.msi_vec_ctl(x)) for x in (0, 15)] == [
        (768, 776, 780),
        (1008, 1016, 1020),
    ]


@pytest.mark.parametrize("name,off,size,expect,side", LAYOUT, ids=[r[0] for r in LAYOUT])
def test_register_layout_offset_and_width(
    name: str, off: int, size: int, expect: Callable[[System], int], side: Dict[int, int]
):
    """Register layout: writing all ones to a register at its offset with its size changes
    exactly its own word(s) (to the legal value of its fields) and nothing else."""
    s = System()
    io = s.iommu
    before = snapshot(io)
    io.mmio_write(off, (1 << (8 * size)) - 1, size)
    after = snapshot(io)
    value = expect(s)
    assert io.mmio_read(off, size) == value
    want = {off + k: (value >> (8 * k)) & M32 for k in range(0, size, 4)}
    want = {k: v for k, v in want.items() if v != before[k]}
    want.update(side)
    assert changed(before, after) == want


# ---------------------------------------------------------------------------
# "Reset behavior"
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [rv.IommuMode.OFF, rv.IommuMode.BARE])
def test_reset_values(mode: int):
    """Reset behavior: cqcsr/fqcsr/pqcsr en/ie/on/busy, tr_req_ctl.Go/Busy, ddtp.busy and
    ipsr are 0; ddtp.iommu_mode resets to Off or Bare (IommuParams.reset_iommu_mode)."""
    io = bare_iommu(params=rv.IommuParams(reset_iommu_mode=mode))
    assert io.mmio_read(REG.DDTP) == mode  # busy = 0, PPN resets to 0 in the model
    assert F.DDTP.iommu_mode.get(io.mmio_read(REG.DDTP)) == mode
    assert F.DDTP.busy.get(io.mmio_read(REG.DDTP)) == 0
    assert io.mmio_read(REG.CQCSR, 4) == 0
    assert io.mmio_read(REG.FQCSR, 4) == 0
    assert io.mmio_read(REG.PQCSR, 4) == 0
    assert io.mmio_read(REG.IPSR, 4) == 0
    assert io.mmio_read(REG.TR_REQ_CTL) & F.TR_REQ_CTL.Go_Busy.mask == 0


def test_reset_off_translation_disallowed():
    """Reset behavior + ddtp "Off": with the default (recommended Off) reset mode an
    inbound request faults with cause 256 "All inbound transactions disallowed"."""
    io = bare_iommu()
    rsp = io.translate(rv.Request(device_id=1, addr=0x1000))
    assert rsp.status == rv.Status.UNSUPPORTED_REQUEST
    assert rsp.fault == rv.FaultRecord(
        cause=256, ttyp=rv.Ttyp.UNTRANSLATED_READ, iotval=0x1000, device_id=1
    )


def test_reset_bare_passes_through():
    """Reset behavior + ddtp "Bare": reset_iommu_mode=BARE passes requests untranslated."""
    io = bare_iommu(params=rv.IommuParams(reset_iommu_mode=rv.IommuMode.BARE))
    rsp = io.translate(rv.Request(device_id=1, addr=0x1234_5000))
    assert rsp.status == rv.Status.SUCCESS
    assert rsp.addr == 0x1234_5000


@pytest.mark.parametrize(
    "caps",
    [
        rv.Capabilities.full(),
        rv.Capabilities(sv39=True, pas=40),
        rv.Capabilities.full(igs=rv.IGS.WSI, pas=34, custom=0xA5, version=0x10),
        rv.Capabilities(),
    ],
    ids=["full", "sv39-pas40", "wsi-custom", "minimal"],
)
def test_capabilities_reads_raw(caps: rv.Capabilities):
    """capabilities: "At reset, the register shall contain the IOMMU supported features":
    the 8-byte read and both 4-byte halves give Capabilities.raw."""
    io = bare_iommu(caps=caps)
    assert io.mmio_read(REG.CAPABILITIES) == caps.raw
    assert io.mmio_read(REG.CAPABILITIES, 4) == caps.raw & M32
    assert io.mmio_read(REG.CAPABILITIES + 4, 4) == caps.raw >> 32


def test_capabilities_version_1_0():
    """capabilities.version: an implementation of version 1.0 reports 0x10."""
    io = bare_iommu()
    assert F.CAPABILITIES.version.get(io.mmio_read(REG.CAPABILITIES)) == 0x10


@pytest.mark.parametrize(
    "igs,fctl,expect",
    [(rv.IGS.MSI, 2, 0), (rv.IGS.WSI, 0, 2), (rv.IGS.BOTH, 2, 2), (rv.IGS.BOTH, 0, 0)],
)
def test_reset_fctl_wsi_follows_igs(igs: int, fctl: int, expect: int):
    """fctl.WSI (WARL): an MSI-only IOMMU reads WSI=0, a WSI-only IOMMU reads WSI=1."""
    io = bare_iommu(caps=rv.Capabilities.full(igs=igs), fctl=fctl)
    assert io.mmio_read(REG.FCTL, 4) == expect


# ---------------------------------------------------------------------------
# RO registers ignore writes
# ---------------------------------------------------------------------------
def test_capabilities_ro():
    """capabilities: every field is RO."""
    io = bare_iommu()
    raw = io.caps.raw
    for v in (0, M64, raw ^ M64):
        io.mmio_write(REG.CAPABILITIES, v)
        io.mmio_write(REG.CAPABILITIES, v & M32, 4)
        io.mmio_write(REG.CAPABILITIES + 4, v >> 32, 4)
        assert io.mmio_read(REG.CAPABILITIES) == raw


def test_cqh_ro():
    """cqh (RO): the IOMMU owns the head; software writes are ignored."""
    s = System()
    setup_cq(s)
    a = s.page()
    submit(s, iofence_c(), iofence_c(addr=a, data=5))
    io = s.iommu
    assert io.mmio_read(REG.CQH, 4) == 2
    for v in (0, 5, M32):
        io.mmio_write(REG.CQH, v, 4)
        assert io.mmio_read(REG.CQH, 4) == 2
    io.mmio_write(REG.CQH - 4, 0, 8)  # 8-byte write over cqb/cqh would be misaligned: no-op
    assert io.mmio_read(REG.CQH, 4) == 2


def _fault_once(s: System, did: int = 0x55) -> rv.Response:
    """A request from a device without a valid DC: cause 258, reported to the FQ."""
    return s.t(did, 0x1000)


def test_fqt_ro():
    """fqt (RO): the IOMMU owns the fault-queue tail."""
    s = System()
    setup_fq(s)
    _fault_once(s)
    io = s.iommu
    assert io.mmio_read(REG.FQT, 4) == 1
    for v in (0, 3, M32):
        io.mmio_write(REG.FQT, v, 4)
        assert io.mmio_read(REG.FQT, 4) == 1


def _pri_device(s: System, did: int = 7) -> None:
    s.ddt.set_dc(did, tc=TC_V | TC_EN_ATS | TC_EN_PRI)


def _page_request(s: System, did: int = 7, prgi: int = 1) -> None:
    s.iommu.page_request(rv.PageRequest(device_id=did, addr=0x4000, prg_index=prgi, last=True))


def test_pqt_ro():
    """pqt (RO): the IOMMU owns the page-request-queue tail."""
    s = System()
    _pri_device(s)
    setup_pq(s)
    _page_request(s)
    io = s.iommu
    assert io.mmio_read(REG.PQT, 4) == 1
    for v in (0, 3, M32):
        io.mmio_write(REG.PQT, v, 4)
        assert io.mmio_read(REG.PQT, 4) == 1


def test_iocountovf_ro():
    """iocountovf (RO): a shadow of the OF bits; writes are ignored."""
    s = System()
    io = s.iommu
    io.mmio_write(REG.IOHPMCYCLES, F.IOHPMCYCLES.OF.mask)
    io.mmio_write(REG.iohpmevt(3), F.IOHPMEVT.OF.mask)
    assert io.mmio_read(REG.IOCOUNTOVF, 4) == 0b1001
    for v in (0, M32):
        io.mmio_write(REG.IOCOUNTOVF, v, 4)
        assert io.mmio_read(REG.IOCOUNTOVF, 4) == 0b1001
    io.mmio_write(REG.iohpmevt(3), 0)
    assert io.mmio_read(REG.IOCOUNTOVF, 4) == 0b0001


def test_tr_response_ro():
    """tr_response (RO): software writes are ignored."""
    s = System()
    io = s.iommu
    io.mmio_write(REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, DID=0x55))
    assert io.mmio_read(REG.TR_RESPONSE) == F.TR_RESPONSE.fault.mask
    for v in (0, M64):
        io.mmio_write(REG.TR_RESPONSE, v)
        io.mmio_write(REG.TR_RESPONSE, v & M32, 4)
        assert io.mmio_read(REG.TR_RESPONSE) == F.TR_RESPONSE.fault.mask


def test_busy_bits_read_zero():
    """ddtp.busy, cqcsr/fqcsr/pqcsr.busy (RO): an IOMMU completing synchronously may
    hard-wire busy to 0; writes of 1 to busy do not set it."""
    s = System()
    io = s.iommu
    io.mmio_write(REG.DDTP, io.mmio_read(REG.DDTP) | F.DDTP.busy.mask)
    assert F.DDTP.busy.get(io.mmio_read(REG.DDTP)) == 0
    for reg, L in ((REG.CQCSR, F.CQCSR), (REG.FQCSR, F.FQCSR), (REG.PQCSR, F.PQCSR)):
        io.mmio_write(reg, L.busy.mask, 4)
        assert io.mmio_read(reg, 4) == 0


def test_queue_on_bits_ro():
    """cqon/fqon/pqon (RO): follow the enables; software cannot set them directly."""
    s = System()
    io = s.iommu
    for reg, L, on, en in (
        (REG.CQCSR, F.CQCSR, "cqon", "cqen"),
        (REG.FQCSR, F.FQCSR, "fqon", "fqen"),
        (REG.PQCSR, F.PQCSR, "pqon", "pqen"),
    ):
        io.mmio_write(reg, L.fields[on].mask, 4)
        assert io.mmio_read(reg, 4) == 0
        io.mmio_write(reg, L.fields[en].mask, 4)
        assert io.mmio_read(reg, 4) == L.mask_of(en, on)
        io.mmio_write(reg, 0, 4)
        assert io.mmio_read(reg, 4) == 0


# ---------------------------------------------------------------------------
# RW1C bits
# ---------------------------------------------------------------------------
CQ_ERR = {
    "cqmf": F.CQCSR.cqmf.mask,
    "cmd_to": F.CQCSR.cmd_to.mask,
    "cmd_ill": F.CQCSR.cmd_ill.mask,
    "fence_w_ip": F.CQCSR.fence_w_ip.mask,
}


def _cq_error(kind: str) -> System:
    """A System whose command queue has exactly the ``kind`` error bit set."""
    s = System(fctl=2) if kind == "fence_w_ip" else System()
    base = setup_cq(s)
    io = s.iommu
    if kind == "cqmf":
        write_cmd(s, 0, iofence_c())
        s.mem.inject(base, 16, rv.MemoryFault.ACCESS_FAULT)
        io.mmio_write(REG.CQT, 1, 4)
    elif kind == "cmd_ill":
        submit(s, (0, 0))  # opcode 0 is reserved
    elif kind == "fence_w_ip":
        submit(s, iofence_c(wsi=True))
    else:
        from swhelpers import ats_inval

        submit(s, ats_inval(rid=3), iofence_c())
        assert io.ats_timeout() == 1
    assert io.mmio_read(REG.CQCSR, 4) == F.CQCSR.mask_of("cqen", "cqon") | CQ_ERR[kind]
    return s


@pytest.mark.parametrize("kind", list(CQ_ERR))
def test_cqcsr_error_bits_rw1c(kind: str):
    """cqcsr.cqmf/cmd_to/cmd_ill/fence_w_ip (RW1C): writing 0 keeps the bit, writing 1
    clears it; other bits written alongside are unaffected."""
    s = _cq_error(kind)
    io = s.iommu
    csr = io.mmio_read(REG.CQCSR, 4)
    io.mmio_write(REG.CQCSR, F.CQCSR.cqen.mask, 4)
    assert io.mmio_read(REG.CQCSR, 4) == csr
    others = sum(CQ_ERR.values()) & ~CQ_ERR[kind]
    io.mmio_write(REG.CQCSR, F.CQCSR.cqen.mask | others, 4)
    assert io.mmio_read(REG.CQCSR, 4) == csr
    if kind == "cqmf":
        s.mem.clear_injections()
    if kind == "cmd_ill":  # fix the command, or it is fetched and rejected again
        write_cmd(s, 0, iofence_c())
    io.mmio_write(REG.CQCSR, F.CQCSR.cqen.mask | CQ_ERR[kind], 4)
    assert io.mmio_read(REG.CQCSR, 4) == F.CQCSR.mask_of("cqen", "cqon")


@pytest.mark.parametrize("kind", list(CQ_ERR))
def test_cqcsr_error_bits_not_settable(kind: str):
    """cqcsr error bits (RW1C): software writing 1 to a clear bit does not set it."""
    s = System(fctl=2)
    setup_cq(s)
    io = s.iommu
    io.mmio_write(REG.CQCSR, F.CQCSR.cqen.mask | CQ_ERR[kind], 4)
    assert io.mmio_read(REG.CQCSR, 4) == F.CQCSR.mask_of("cqen", "cqon")


def test_cqcsr_cqen_clears_errors():
    """cqcsr.cqen: changing cqen from 0 to 1 sets cqh and cmd_ill, cmd_to, cqmf,
    fence_w_ip to 0."""
    s = _cq_error("cmd_ill")
    io = s.iommu
    assert io.mmio_read(REG.CQH, 4) == 0
    submit(s)  # nothing new
    io.mmio_write(REG.CQCSR, 0, 4)
    assert io.mmio_read(REG.CQCSR, 4) == CQ_ERR["cmd_ill"]  # RW1C bit survives disable
    io.mmio_write(REG.CQCSR, F.CQCSR.cqen.mask, 4)
    # cqh = 0, error cleared; the illegal command at cqh = 0 is fetched again
    assert io.mmio_read(REG.CQCSR, 4) == F.CQCSR.mask_of("cqen", "cqon", "cmd_ill")
    assert io.mmio_read(REG.CQH, 4) == 0


def _fq_error(kind: str) -> System:
    s = System()
    if kind == "fqmf":
        base = setup_fq(s)
        s.mem.inject(base, 32, rv.MemoryFault.ACCESS_FAULT)
        _fault_once(s)
        s.mem.clear_injections()
    else:
        setup_fq(s, log2sz=1)
        _fault_once(s)
        _fault_once(s)
    return s


@pytest.mark.parametrize("kind", ["fqmf", "fqof"])
def test_fqcsr_error_bits_rw1c(kind: str):
    """fqcsr.fqmf/fqof (RW1C)."""
    s = _fq_error(kind)
    io = s.iommu
    bit = F.FQCSR.fields[kind].mask
    on = F.FQCSR.mask_of("fqen", "fie", "fqon")
    assert io.mmio_read(REG.FQCSR, 4) == on | bit
    io.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie"), 4)
    assert io.mmio_read(REG.FQCSR, 4) == on | bit
    io.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie") | bit, 4)
    assert io.mmio_read(REG.FQCSR, 4) == on
    # not settable by software
    io.mmio_write(REG.FQCSR, F.FQCSR.mask_of("fqen", "fie", "fqmf", "fqof"), 4)
    assert io.mmio_read(REG.FQCSR, 4) == on


def _pq_error(kind: str) -> System:
    s = System()
    _pri_device(s)
    if kind == "pqmf":
        base = setup_pq(s)
        s.mem.inject(base, 16, rv.MemoryFault.ACCESS_FAULT)
        _page_request(s)
        s.mem.clear_injections()
    else:
        setup_pq(s, log2sz=1)
        _page_request(s, prgi=1)
        _page_request(s, prgi=2)
    return s


@pytest.mark.parametrize("kind", ["pqmf", "pqof"])
def test_pqcsr_error_bits_rw1c(kind: str):
    """pqcsr.pqmf/pqof (RW1C)."""
    s = _pq_error(kind)
    io = s.iommu
    bit = F.PQCSR.fields[kind].mask
    on = F.PQCSR.mask_of("pqen", "pie", "pqon")
    assert io.mmio_read(REG.PQCSR, 4) == on | bit
    io.mmio_write(REG.PQCSR, F.PQCSR.mask_of("pqen", "pie"), 4)
    assert io.mmio_read(REG.PQCSR, 4) == on | bit
    io.mmio_write(REG.PQCSR, F.PQCSR.mask_of("pqen", "pie") | bit, 4)
    assert io.mmio_read(REG.PQCSR, 4) == on
    io.mmio_write(REG.PQCSR, F.PQCSR.mask_of("pqen", "pie", "pqmf", "pqof"), 4)
    assert io.mmio_read(REG.PQCSR, 4) == on


@pytest.mark.parametrize("kind", ["fqmf", "fqof"])
def test_fqen_clears_fqt_and_errors(kind: str):
    """fqcsr.fqen: changing fqen from 0 to 1 sets fqt, fqof and fqmf to 0."""
    s = _fq_error(kind)
    io = s.iommu
    io.mmio_write(REG.FQCSR, 0, 4)
    assert io.mmio_read(REG.FQCSR, 4) == F.FQCSR.fields[kind].mask
    io.mmio_write(REG.FQCSR, F.FQCSR.fqen.mask, 4)
    assert io.mmio_read(REG.FQCSR, 4) == F.FQCSR.mask_of("fqen", "fqon")
    assert io.mmio_read(REG.FQT, 4) == 0


@pytest.mark.parametrize("kind", ["pqmf", "pqof"])
def test_pqen_clears_pqt_and_errors(kind: str):
    """pqcsr.pqen: changing pqen from 0 to 1 sets pqt, pqmf and pqof to 0."""
    s = _pq_error(kind)
    io = s.iommu
    io.mmio_write(REG.PQCSR, 0, 4)
    assert io.mmio_read(REG.PQCSR, 4) == F.PQCSR.fields[kind].mask
    io.mmio_write(REG.PQCSR, F.PQCSR.pqen.mask, 4)
    assert io.mmio_read(REG.PQCSR, 4) == F.PQCSR.mask_of("pqen", "pqon")
    assert io.mmio_read(REG.PQT, 4) == 0


def test_ipsr_rw1c():
    """ipsr (RW1C): a set bit stays 1 until software writes 1 to it; writing 0 keeps it;
    writing 1 to a clear bit does not set it."""
    s = System()
    io = s.iommu
    setup_fq(s)
    _fault_once(s)  # fip (a new record; no persisting condition)
    io.mmio_write(REG.IOHPMCYCLES, (1 << 64) - 1 - F.IOHPMCYCLES.OF.mask)
    io.tick(1)  # pmip (overflow)
    fip, pmip = F.IPSR.fip.mask, F.IPSR.pmip.mask
    assert io.mmio_read(REG.IPSR, 4) == fip | pmip
    io.mmio_write(REG.IPSR, 0, 4)
    assert io.mmio_read(REG.IPSR, 4) == fip | pmip
    io.mmio_write(REG.IPSR, fip, 4)
    assert io.mmio_read(REG.IPSR, 4) == pmip
    io.mmio_write(REG.IPSR, F.IPSR.mask_of("cip", "pip"), 4)
    assert io.mmio_read(REG.IPSR, 4) == pmip
    io.mmio_write(REG.IPSR, M32, 4)
    assert io.mmio_read(REG.IPSR, 4) == 0


# ---------------------------------------------------------------------------
# RW1S: tr_req_ctl.Go/Busy
# ---------------------------------------------------------------------------
def _debug_device(s: System, did: int = 9) -> None:
    s.ddt.set_dc(did, tc=TC_V)  # both stages Bare


def test_tr_req_ctl_go_rw1s():
    """tr_req_ctl.Go/Busy (RW1S): writing 1 starts a translation, which completes by
    clearing the bit; writing 0 does not start one.  Bare/Bare translation of
    tr_req_iova gives its own PPN (a 2 MiB range here: S=1, NAPOT-encoded PPN)."""
    s = System()
    _debug_device(s)
    io = s.iommu
    iova = 0x1234_5678_9000
    io.mmio_write(REG.TR_REQ_IOVA, iova)
    ctl = F.TR_REQ_CTL.encode(NW=1, DID=9)
    io.mmio_write(REG.TR_REQ_CTL, ctl)  # Go = 0
    assert io.mmio_read(REG.TR_REQ_CTL) == ctl
    assert io.mmio_read(REG.TR_RESPONSE) == 0
    io.mmio_write(REG.TR_REQ_CTL, ctl | 1)
    assert io.mmio_read(REG.TR_REQ_CTL) == ctl  # Go/Busy cleared on completion
    ppn = ((iova & ~((1 << 21) - 1)) >> 12) | 0xFF
    assert io.mmio_read(REG.TR_RESPONSE) == F.TR_RESPONSE.encode(S=1, PPN=ppn)


def test_tr_req_ctl_rv32_high_half_first():
    """tr_req_ctl: in RV32 the high half (DID) is written first, then the low half with
    Go/Busy; the translation uses both halves."""
    s = System()
    _debug_device(s)
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA + 4, 0, 4)
    io.mmio_write(REG.TR_REQ_IOVA, 0x4000, 4)
    ctl = F.TR_REQ_CTL.encode(Go_Busy=1, NW=1, DID=9)
    io.mmio_write(REG.TR_REQ_CTL + 4, ctl >> 32, 4)
    assert io.mmio_read(REG.TR_RESPONSE) == 0
    io.mmio_write(REG.TR_REQ_CTL, ctl & M32, 4)
    assert io.mmio_read(REG.TR_RESPONSE) == F.TR_RESPONSE.encode(S=1, PPN=0xFF)


def test_tr_req_iova_reserved_bits():
    """tr_req_iova: bits 11:0 are reserved (read 0)."""
    s = System()
    io = s.iommu
    io.mmio_write(REG.TR_REQ_IOVA, M64)
    assert io.mmio_read(REG.TR_REQ_IOVA) == M64 & ~0xFFF


# ---------------------------------------------------------------------------
# WARL legalisation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("max_mode", [1, 2, 3, 4])
def test_ddtp_iommu_mode_warl(max_mode: int):
    """ddtp.iommu_mode (WARL): modes beyond the supported ones (and the reserved and
    custom encodings 5-15) are not accepted; the model keeps the old legal value."""
    io = bare_iommu(params=rv.IommuParams(max_iommu_mode=max_mode))
    for mode in range(16):
        io.mmio_write(REG.DDTP, 0)  # Off
        io.mmio_write(REG.DDTP, mode)
        got = F.DDTP.iommu_mode.get(io.mmio_read(REG.DDTP))
        assert got == (mode if mode <= max_mode else 0), mode
    io.mmio_write(REG.DDTP, 1)  # Bare
    io.mmio_write(REG.DDTP, 7)
    assert F.DDTP.iommu_mode.get(io.mmio_read(REG.DDTP)) == 1


@pytest.mark.parametrize("reg", [REG.CQB, REG.FQB, REG.PQB])
def test_queue_base_log2sz_warl(reg: int):
    """cqb/fqb/pqb: LOG2SZ-1 (WARL, 5 bits) reads back; bits 9:5 and 63:54 are reserved
    (read 0)."""
    io = bare_iommu()
    for n in range(32):
        io.mmio_write(reg, n | F.QUEUE_BASE.reserved | (0x12345 << 10))
        assert io.mmio_read(reg) == n | (0x12345 << 10)


@pytest.mark.parametrize("pas", [34, 40, 48, 56])
@pytest.mark.parametrize("reg", [REG.DDTP, REG.CQB, REG.FQB, REG.PQB])
def test_ppn_warl_to_pas(pas: int, reg: int):
    """ddtp/cqb/fqb/pqb.PPN (WARL): only PPN bits for addresses below 2^PAS are
    writable (the model drops PPN bits >= PAS-12)."""
    io = bare_iommu(caps=rv.Capabilities.full(pas=pas))
    io.mmio_write(reg, F.DDTP.PPN.mask)
    ppn = io.mmio_read(reg) >> 10
    assert ppn == (1 << (pas - 12)) - 1


#: an implementation that pins fctl.BE although capabilities.END is 1
NO_BE = rv.IommuParams(be_writable=False)


@pytest.mark.parametrize(
    "caps,params,writable",
    [
        (rv.Capabilities.full(), rv.IommuParams(), F.FCTL.mask_of("BE", "WSI")),
        (rv.Capabilities.full(igs=rv.IGS.MSI), NO_BE, 0),
        (rv.Capabilities.full(igs=rv.IGS.WSI), NO_BE, 0),
        (rv.Capabilities.full(igs=rv.IGS.MSI), rv.IommuParams(), F.FCTL.BE.mask),
        (rv.Capabilities.full(igs=rv.IGS.MSI, end=False), rv.IommuParams(), 0),
        (
            rv.Capabilities.full(igs=rv.IGS.MSI),
            rv.IommuParams(gxl_writable=True, be_writable=False),
            F.FCTL.GXL.mask,
        ),
        (
            rv.Capabilities.full(),
            rv.IommuParams(gxl_writable=True),
            F.FCTL.mask_of("BE", "WSI", "GXL"),
        ),
    ],
    ids=["both", "msi", "wsi", "be", "be-no-end", "gxl", "all"],
)
def test_fctl_warl(caps: rv.Capabilities, params: rv.IommuParams, writable: int):
    """fctl (WARL): BE is writable with capabilities.END (unless the implementation pins
    it), WSI needs IGS=BOTH, GXL is writable only where the implementation allows;
    reserved bits 15:3 and custom bits 31:16 read 0."""
    io = bare_iommu(caps=caps, params=params)
    reset = io.mmio_read(REG.FCTL, 4)
    io.mmio_write(REG.FCTL, M32, 4)
    assert io.mmio_read(REG.FCTL, 4) == reset | writable
    io.mmio_write(REG.FCTL, 0, 4)
    assert io.mmio_read(REG.FCTL, 4) == reset & ~writable


@pytest.mark.parametrize("n", [1, 2, 4, 5, 16])
def test_icvec_warl(n: int):
    """icvec fields (WARL): log2(vectors) low bits are writable, so writing 0xF discovers the
    vector count (iommu_sw_guidelines initialization; "only bit 0 ... could be writable"
    with two vectors); a value past the last vector (n not a power of two) keeps the old
    value; bits 63:16 read 0."""
    io = bare_iommu(params=rv.IommuParams(interrupt_vectors=n))
    bits = (n - 1).bit_length()

    def legal(v: int, old: int) -> int:
        v &= (1 << bits) - 1
        return v if v < n else old

    fields = [F.ICVEC.civ, F.ICVEC.fiv, F.ICVEC.pmiv, F.ICVEC.piv]
    for f in fields:
        for v in range(16):
            io.mmio_write(REG.ICVEC, 0)
            io.mmio_write(REG.ICVEC, f.put(0, v) | (M64 & ~0xFFFF))
            assert io.mmio_read(REG.ICVEC) == f.put(0, legal(v, 0)), (f, v)
    io.mmio_write(REG.ICVEC, F.ICVEC.encode(civ=n - 1, fiv=0, pmiv=n - 1, piv=0))
    io.mmio_write(REG.ICVEC, F.ICVEC.encode(civ=15, fiv=n - 1, pmiv=0, piv=15))
    assert io.mmio_read(REG.ICVEC) == F.ICVEC.encode(
        civ=legal(15, n - 1), fiv=n - 1, pmiv=0, piv=legal(15, 0)
    )
    # discovery: 0xF in every field reads back 2**bits - 1 (n - 1 when n is a power of two)
    io.mmio_write(REG.ICVEC, 0xFFFF)
    if n & (n - 1) == 0:
        assert io.mmio_read(REG.ICVEC) == (n - 1) * 0x1111


@pytest.mark.parametrize("event", [9, 100, 16383, 16384, 0x7FFF])
def test_iohpmevt_eventid_warl(event: int):
    """iohpmevt.eventID (WARL): encodings beyond the standard events 1-8 (reserved, and
    custom ones the model does not define) read back as a legal value (0, "do not
    count"); the other fields keep the written value."""
    io = bare_iommu()
    other = F.IOHPMEVT.encode(DMASK=1, PID_PSCID=0x12345, DID_GSCID=0xABCDEF, IDT=1)
    io.mmio_write(REG.iohpmevt(2), other | event)
    assert io.mmio_read(REG.iohpmevt(2)) == other
    for ev in range(0, 9):
        io.mmio_write(REG.iohpmevt(2), other | ev)
        assert io.mmio_read(REG.iohpmevt(2)) == other | ev


@pytest.mark.parametrize("rw,mw", [(1, 1), (4, 6), (12, 12), (7, 3)])
def test_iommu_qosid_warl(rw: int, mw: int):
    """iommu_qosid.RCID/MCID (WARL): only the implemented widths are writable; reserved
    bits 15:12 and 31:28 read 0."""
    io = bare_iommu(params=rv.IommuParams(rcid_width=rw, mcid_width=mw))
    io.mmio_write(REG.IOMMU_QOSID, M32, 4)
    assert io.mmio_read(REG.IOMMU_QOSID, 4) == ((1 << rw) - 1) | (((1 << mw) - 1) << 16)
    io.mmio_write(REG.IOMMU_QOSID, 0x0123_0456, 4)
    want = (0x456 & ((1 << rw) - 1)) | ((0x123 & ((1 << mw) - 1)) << 16)
    assert io.mmio_read(REG.IOMMU_QOSID, 4) == want


@pytest.mark.parametrize("x", [0, 7, 15])
def test_msi_addr_fixed_bits(x: int):
    """msi_addr_x: bits 1:0 are fixed to 0, bits 63:56 reserved (read 0), ADDR 55:2."""
    io = bare_iommu()
    io.mmio_write(REG.msi_addr(x), M64)
    assert io.mmio_read(REG.msi_addr(x)) == ((1 << 56) - 1) & ~3
    io.mmio_write(REG.msi_addr(x), 0xFF00_0000_1234_5677)
    assert io.mmio_read(REG.msi_addr(x)) == 0x1234_5674


def test_msi_vec_ctl_reserved_bits():
    """msi_vec_ctl_x: only M (bit 0) is writable; bits 31:1 are reserved."""
    io = bare_iommu()
    io.mmio_write(REG.msi_vec_ctl(3), M32, 4)
    assert io.mmio_read(REG.msi_vec_ctl(3), 4) == 1
    io.mmio_write(REG.msi_vec_ctl(3), 0xFFFF_FFFE, 4)
    assert io.mmio_read(REG.msi_vec_ctl(3), 4) == 0


def test_msi_cfg_tbl_beyond_vectors_reads_zero():
    """msi_cfg_tbl: entries for vectors the implementation does not have (icvec cannot
    select them) read 0 and ignore writes in the model."""
    io = bare_iommu(params=rv.IommuParams(interrupt_vectors=2))
    for x in (2, 15):
        io.mmio_write(REG.msi_addr(x), 0x1000)
        io.mmio_write(REG.msi_data(x), 5, 4)
        io.mmio_write(REG.msi_vec_ctl(x), 1, 4)
        assert io.mmio_read(REG.msi_addr(x)) == 0
        assert io.mmio_read(REG.msi_data(x), 4) == 0
        assert io.mmio_read(REG.msi_vec_ctl(x), 4) == 0
    io.mmio_write(REG.msi_addr(1), 0x1000)
    assert io.mmio_read(REG.msi_addr(1)) == 0x1000


def test_queue_csr_reserved_bits():
    """cqcsr/fqcsr/pqcsr: reserved (WPRI) and custom bits read 0."""
    io = bare_iommu()
    for reg, L in ((REG.CQCSR, F.CQCSR), (REG.FQCSR, F.FQCSR), (REG.PQCSR, F.PQCSR)):
        io.mmio_write(reg, L.reserved | L.custom.mask, 4)
        assert io.mmio_read(reg, 4) == 0


def test_ipsr_reserved_and_custom_bits():
    """ipsr: reserved bits 7:4, 31:16 and (unimplemented) custom bits 15:8 read 0."""
    io = bare_iommu()
    io.mmio_write(REG.IPSR, M32, 4)
    assert io.mmio_read(REG.IPSR, 4) == 0


def test_iocountinh_warl_to_counters():
    """iocountinh (WARL): bit 0 (CY) and the bits of implemented counters are writable."""
    io = bare_iommu(params=rv.IommuParams(hpm_counters=5))
    io.mmio_write(REG.IOCOUNTINH, M32, 4)
    assert io.mmio_read(REG.IOCOUNTINH, 4) == 0b111111


def test_unimplemented_hpm_counters_read_zero():
    """iohpmctrX/iohpmevtX beyond the implemented counters read 0 and ignore writes."""
    io = bare_iommu(params=rv.IommuParams(hpm_counters=3))
    for x in (4, 31):
        io.mmio_write(REG.iohpmctr(x), M64)
        io.mmio_write(REG.iohpmevt(x), 1)
        assert io.mmio_read(REG.iohpmctr(x)) == 0
        assert io.mmio_read(REG.iohpmevt(x)) == 0
    io.mmio_write(REG.iohpmctr(3), 5)
    assert io.mmio_read(REG.iohpmctr(3)) == 5


@pytest.mark.parametrize("width", [32, 40, 63, 64])
def test_hpm_counter_width_warl(width: int):
    """iohpmcycles.counter / iohpmctrX (WARL): writable to the implemented width;
    iohpmcycles.OF (bit 63) is RW."""
    io = bare_iommu(params=rv.IommuParams(hpm_counter_width=width))
    io.mmio_write(REG.IOHPMCYCLES, M64)
    assert io.mmio_read(REG.IOHPMCYCLES) == (1 << 63) | ((1 << min(width, 63)) - 1)
    io.mmio_write(REG.iohpmctr(1), M64)
    assert io.mmio_read(REG.iohpmctr(1)) == (1 << width) - 1


# ---------------------------------------------------------------------------
# Optional registers: read 0, writes ignored
# ---------------------------------------------------------------------------
def _all_words(offs: List[Tuple[int, int]]) -> List[int]:
    return [o + k for o, size in offs for k in range(0, size, 4)]


OPTIONAL = {
    "ats": [(REG.PQB, 8), (REG.PQH, 4), (REG.PQT, 4), (REG.PQCSR, 4)],
    "hpm": [(REG.IOCOUNTOVF, 4), (REG.IOCOUNTINH, 4), (REG.IOHPMCYCLES, 8)]
    + [(REG.iohpmctr(x), 8) for x in range(1, 32)]
    + [(REG.iohpmevt(x), 8) for x in range(1, 32)],
    "dbg": [(REG.TR_REQ_IOVA, 8), (REG.TR_REQ_CTL, 8), (REG.TR_RESPONSE, 8)],
    "qosid": [(REG.IOMMU_QOSID, 4)],
}


@pytest.mark.parametrize("cap", list(OPTIONAL))
def test_optional_registers_absent(cap: str):
    """Optional registers: with the capabilities bit 0 (ATS: pq*, HPM: io*hpm*/iocount*,
    DBG: tr_*, QOSID: iommu_qosid) they read 0 and writes are ignored."""
    s = System(**{cap: False})
    io = s.iommu
    before = snapshot(io)
    for off in _all_words(OPTIONAL[cap]):
        assert before[off] == 0
        io.mmio_write(off, M32, 4)
    for off, size in OPTIONAL[cap]:
        io.mmio_write(off, (1 << (8 * size)) - 1, size)
    assert changed(before, snapshot(io)) == {}


def test_optional_pq_absent_no_queue():
    """Optional registers (ATS=0): a pqcsr write does not turn a page-request queue on."""
    s = System(ats=False)
    io = s.iommu
    io.mmio_write(REG.PQCSR, F.PQCSR.pqen.mask, 4)
    assert not io.pq.on  # model state, inspected on purpose


def test_optional_hpm_absent_no_counting():
    """Optional registers (HPM=0): iohpmcycles does not exist, so time passing changes
    nothing and no pmip is raised."""
    s = System(hpm=False)
    io = s.iommu
    io.mmio_write(REG.IOHPMCYCLES, M64)
    io.tick(10)
    assert io.mmio_read(REG.IOHPMCYCLES) == 0
    assert io.mmio_read(REG.IPSR, 4) == 0


def test_optional_dbg_absent_no_translation():
    """Optional registers (DBG=0): setting tr_req_ctl.Go/Busy does not translate (no fault
    record for a device without a DC)."""
    s = System(dbg=False)
    setup_fq(s)
    io = s.iommu
    io.mmio_write(REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, DID=0x55))
    assert io.mmio_read(REG.FQT, 4) == 0
    assert io.mmio_read(REG.TR_RESPONSE) == 0


def test_optional_dbg_present_translation_faults():
    """tr_req_ctl (DBG=1), the counterpart: the same write translates and the fault is
    reported through the fault queue."""
    s = System()
    setup_fq(s)
    io = s.iommu
    io.mmio_write(REG.TR_REQ_CTL, F.TR_REQ_CTL.encode(Go_Busy=1, NW=1, DID=0x55))
    assert io.mmio_read(REG.FQT, 4) == 1
    assert io.mmio_read(REG.TR_RESPONSE) == F.TR_RESPONSE.fault.mask


def test_optional_qosid_absent():
    """Optional registers (QOSID=0): iommu_qosid writes are ignored (IOMMU requests keep
    QoS IDs 0)."""
    s = System(qosid=False)
    io = s.iommu
    io.mmio_write(REG.IOMMU_QOSID, 0x0001_0001, 4)
    assert io.mmio_read(REG.IOMMU_QOSID, 4) == 0
    assert io.iommu_qosid == (0, 0)  # model state, inspected on purpose


def test_msi_cfg_tbl_absent_with_wsi_only():
    """msi_cfg_tbl: "hardwired to 0 if capabilities.IGS == WSI"."""
    s = System(igs=rv.IGS.WSI)
    io = s.iommu
    before = snapshot(io)
    for off in range(REG.MSI_CFG_TBL, 1024, 4):
        assert before[off] == 0
        io.mmio_write(off, M32, 4)
    for x in range(16):
        io.mmio_write(REG.msi_addr(x), M64)
    assert changed(before, snapshot(io)) == {}


# ---------------------------------------------------------------------------
# Access sizes and alignment
# ---------------------------------------------------------------------------
REG8 = [
    ("ddtp", REG.DDTP),
    ("cqb", REG.CQB),
    ("fqb", REG.FQB),
    ("pqb", REG.PQB),
    ("iohpmcycles", REG.IOHPMCYCLES),
    ("iohpmctr1", REG.iohpmctr(1)),
    ("iohpmctr31", REG.iohpmctr(31)),
    ("iohpmevt1", REG.iohpmevt(1)),
    ("iohpmevt31", REG.iohpmevt(31)),
    ("tr_req_iova", REG.TR_REQ_IOVA),
    ("icvec", REG.ICVEC),
    ("msi_addr_0", REG.msi_addr(0)),
    ("msi_addr_15", REG.msi_addr(15)),
]
_VALUES8 = {
    "ddtp": F.DDTP.encode(iommu_mode=3, PPN=0xA_BCDE_F012),
    "cqb": F.QUEUE_BASE.encode(LOG2SZ_1=6, PPN=0x8_1234_5678),
    "fqb": F.QUEUE_BASE.encode(LOG2SZ_1=7, PPN=0x9_1234_5678),
    "pqb": F.QUEUE_BASE.encode(LOG2SZ_1=8, PPN=0xA_1234_5678),
    "iohpmcycles": 0x1234_5678_9ABC_DEF0,
    "iohpmctr1": 0xFEDC_BA98_7654_3210,
    "iohpmctr31": 0x0123_4567_89AB_CDEF,
    "iohpmevt1": F.IOHPMEVT.encode(eventID=4, DID_GSCID=0x12345, PID_PSCID=0x678, DV_GSCV=1),
    "iohpmevt31": F.IOHPMEVT.encode(eventID=1, DID_GSCID=0xFFFFFF, PV_PSCV=1),
    "tr_req_iova": 0xFFFF_0000_1234_5000,
    "icvec": F.ICVEC.encode(civ=1, fiv=2, pmiv=3, piv=4),
    "msi_addr_0": 0x00AB_CDEF_1234_5678,
    "msi_addr_15": 0x0012_3400_0000_1000,
}


@pytest.mark.parametrize("name,off", REG8, ids=[r[0] for r in REG8])
def test_8byte_read_is_two_4byte_reads(name: str, off: int):
    """Register interface: an 8-byte read returns the low half at the offset and the high
    half at offset+4 (little-endian)."""
    s = System()
    io = s.iommu
    io.mmio_write(off, _VALUES8[name])
    v = io.mmio_read(off)
    assert v == _VALUES8[name]
    assert io.mmio_read(off, 4) == v & M32
    assert io.mmio_read(off + 4, 4) == v >> 32


@pytest.mark.parametrize("name,off", REG8, ids=[r[0] for r in REG8])
def test_8byte_write_equals_two_4byte_writes(name: str, off: int):
    """Register interface: an 8-byte write has the effect of two 4-byte writes, high half
    first (the NOTE on splitting 8-byte accesses)."""
    a, b = System(), System()
    value = _VALUES8[name]
    a.iommu.mmio_write(off, value)
    b.iommu.mmio_write(off + 4, value >> 32, 4)
    b.iommu.mmio_write(off, value & M32, 4)
    assert snapshot(a.iommu) == snapshot(b.iommu)


@pytest.mark.parametrize("name,off", REG8, ids=[r[0] for r in REG8])
def test_4byte_write_to_each_half(name: str, off: int):
    """Register interface: a 4-byte write to one half of an 8-byte register leaves the
    other half unchanged."""
    s = System()
    io = s.iommu
    value = _VALUES8[name]
    io.mmio_write(off, value)
    io.mmio_write(off + 4, 0, 4)
    assert io.mmio_read(off) == value & M32
    io.mmio_write(off, value)
    io.mmio_write(off, 0, 4)
    assert io.mmio_read(off) == value & ~M32


def test_8byte_access_to_4byte_pair():
    """Register interface: an aligned 8-byte read over two 4-byte registers (fctl plus the
    custom word at 12) returns the 4-byte register in the low half."""
    s = System(fctl=2)
    io = s.iommu
    assert io.mmio_read(REG.FCTL, 8) == 2
    io.mmio_write(REG.FCTL, 0, 8)
    assert io.mmio_read(REG.FCTL, 4) == 0


@pytest.mark.parametrize("size", [1, 2])
def test_odd_size_access_reads_zero_and_is_ignored(size: int):
    """Register interface: 1- and 2-byte accesses are UNSPECIFIED; the model reads 0 and
    ignores writes."""
    s = System()
    io = s.iommu
    before = snapshot(io)
    for off in (REG.CAPABILITIES, REG.DDTP, REG.ICVEC, REG.FCTL):
        assert io.mmio_read(off, size) == 0
        io.mmio_write(off, (1 << (8 * size)) - 1, size)
    assert changed(before, snapshot(io)) == {}


@pytest.mark.parametrize("size", [0, 3, 5, 6, 7, 15, 16, 1 << 40, -4])
def test_access_size_that_no_bus_has_is_api_misuse(size: int):
    """API edge (issue 9): a size other than 1, 2, 4 or 8 bytes is no access at all: a
    ValueError names the argument, for reads and writes alike, and nothing changes."""
    s = System()
    io = s.iommu
    before = snapshot(io)
    with pytest.raises(ValueError, match="size"):
        io.mmio_read(REG.DDTP, size)
    with pytest.raises(ValueError, match="size"):
        io.mmio_write(REG.DDTP, 0, size)
    assert changed(before, snapshot(io)) == {}


@pytest.mark.parametrize("size", [4, 8, 1, 2])
def test_value_wider_than_the_access_is_api_misuse(size: int):
    """API edge: the value of a write must fit in its ``size`` bytes."""
    io = System().iommu
    with pytest.raises(ValueError, match="value"):
        io.mmio_write(REG.DDTP, 1 << (8 * size), size)
    io.mmio_write(REG.DDTP, (1 << (8 * size)) - 1 & 0x1F, size)  # fits: accepted


@pytest.mark.parametrize(
    "off,size", [(2, 4), (1, 4), (4, 8), (20, 8), (12, 8), (33, 4), (762, 4), (764, 8)]
)
def test_misaligned_access_reads_zero_and_is_ignored(off: int, size: int):
    """Register interface: accesses not aligned to their size are UNSPECIFIED; the model
    reads 0 and ignores writes."""
    s = System()
    io = s.iommu
    io.mmio_write(REG.ICVEC, F.ICVEC.encode(civ=1, fiv=2, pmiv=3, piv=4))
    before = snapshot(io)
    assert io.mmio_read(off, size) == 0
    io.mmio_write(off, 0, size)
    io.mmio_write(off, (1 << (8 * size)) - 1, size)
    assert changed(before, snapshot(io)) == {}


@settings(max_examples=200, deadline=None)
@given(
    off=st.integers(0, 4095),
    size=st.sampled_from([1, 2, 4, 8]),
    value=st.integers(0, M64),
)
def test_any_access_never_raises(off: int, size: int, value: int):
    """Register interface: any offset in the page and any access size is handled (never
    raises); 1/2-byte or misaligned accesses read 0 and change nothing."""
    s = System()
    io = s.iommu
    before = snapshot(io)
    r = io.mmio_read(off, size)
    value &= (1 << (8 * size)) - 1 if size < 8 else M64
    io.mmio_write(off, value, size)
    if size not in (4, 8) or off % size:
        assert r == 0
        assert changed(before, snapshot(io)) == {}
    else:
        assert 0 <= r < (1 << (8 * size))


def test_little_endian_registers_with_be():
    """Register interface: registers are little-endian even with fctl.BE = 1."""
    s = System(fctl=1)
    io = s.iommu
    assert io.mmio_read(REG.FCTL, 4) == 1
    assert io.mmio_read(REG.CAPABILITIES) == s.caps.raw
    io.mmio_write(REG.ICVEC, 0x4321)
    assert io.mmio_read(REG.ICVEC, 4) == 0x4321


RESERVED_WORDS = (
    [12]
    + list(range(628, 688, 4))  # reserved
    + list(range(688, 760, 4))  # custom (not implemented)
    + list(range(1024, 4096, 4))  # reserved for standard use
)


def test_reserved_offsets_read_zero_and_ignore_writes():
    """Register layout: the custom word at 12, reserved 628-687, custom 688-759 and
    reserved 1024-4095 read 0 and writes change nothing."""
    s = System()
    io = s.iommu
    before = snapshot(io)
    for off in RESERVED_WORDS:
        assert before[off] == 0, off
        io.mmio_write(off, M32, 4)
    for off in range(1024, 4096, 8):
        io.mmio_write(off, M64)
    after = snapshot(io)
    assert changed(before, after) == {}


# ---------------------------------------------------------------------------
# head/tail registers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("breg,ireg", [(REG.CQB, REG.CQT), (REG.FQB, REG.FQH), (REG.PQB, REG.PQH)])
def test_queue_index_only_log2sz_bits_writable(breg: int, ireg: int):
    """cqt/fqh/pqh (WARL): only bits LOG2SZ-1:0 are writable."""
    io = bare_iommu()
    for log2sz in (1, 3, 8, 20):
        io.mmio_write(breg, queue_base(0x9000_0000, log2sz))
        io.mmio_write(ireg, M32, 4)
        assert io.mmio_read(ireg, 4) == (1 << log2sz) - 1
        io.mmio_write(ireg, 0x5555_5555, 4)
        assert io.mmio_read(ireg, 4) == 0x5555_5555 & ((1 << log2sz) - 1)


@pytest.mark.parametrize("breg,ireg", [(REG.CQB, REG.CQT), (REG.FQB, REG.FQH), (REG.PQB, REG.PQH)])
def test_queue_base_write_clears_index_high_bits(breg: int, ireg: int):
    """cqb/fqb/pqb: following a write to the base, bits 31:LOG2SZ of cqt/fqh/pqh are 0
    (bits LOG2SZ-1:0 hold a valid but UNSPECIFIED value)."""
    io = bare_iommu()
    io.mmio_write(breg, queue_base(0x9000_0000, 6))
    io.mmio_write(ireg, 45, 4)
    assert io.mmio_read(ireg, 4) == 45
    io.mmio_write(breg, queue_base(0x9000_0000, 2))
    assert io.mmio_read(ireg, 4) >> 2 == 0
    io.mmio_write(breg, queue_base(0x9000_0000, 5))
    assert io.mmio_read(ireg, 4) >> 5 == 0


def test_queue_base_4byte_high_half_write_keeps_log2sz():
    """cqb: a 4-byte write to the high half (PPN bits) keeps LOG2SZ-1 and cqt."""
    io = bare_iommu()
    io.mmio_write(REG.CQB, queue_base(0x9000_0000, 4))
    io.mmio_write(REG.CQT, 9, 4)
    io.mmio_write(REG.CQB + 4, 0x12, 4)
    assert io.mmio_read(REG.CQB) == (0x12 << 32) | queue_base(0x9000_0000, 4)
    assert io.mmio_read(REG.CQT, 4) == 9


def test_ddtp_low_half_write_keeps_high_ppn():
    """ddtp: 4-byte accesses to each half; the RV32 NOTE (only the low 32 bits need to be
    written) works because the high half is kept."""
    io = bare_iommu()
    io.mmio_write(REG.DDTP + 4, 0x3, 4)
    io.mmio_write(REG.DDTP, (0x2_0000 << 10) | 2, 4)
    assert io.mmio_read(REG.DDTP) == (0x3 << 32) | (0x2_0000 << 10) | 2


def test_registers_4byte_only_via_8byte_offsets():
    """Register layout: 4-byte registers (cqh/cqt, fqh/fqt, pqh/pqt) sit at their own
    offsets; an aligned 8-byte read at cqh returns cqh | cqt << 32 in the model."""
    s = System()
    setup_cq(s)
    io = s.iommu
    submit(s, iofence_c())
    io.mmio_write(REG.CQCSR, 0, 4)  # queue off: cqt can move without processing
    io.mmio_write(REG.CQT, 3, 4)
    assert io.mmio_read(REG.CQH, 4) == 1
    assert io.mmio_read(REG.CQT, 4) == 3
    assert io.mmio_read(REG.CQH, 8) == 1 | (3 << 32)
