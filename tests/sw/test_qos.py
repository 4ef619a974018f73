"""QoS identifiers (RCID / MCID).

Spec: iommu_extensions.adoc "Quality-of-Service (QoS) Identifiers Extension";
iommu_registers.adoc "IOMMU QoS ID (iommu_qosid)": IOMMU-initiated requests for the DDT, FQ,
CQ, PQ and IOMMU-initiated MSIs use iommu_qosid; in Bare mode device requests use it too;
iommu_data_structures.adoc "Translation attributes (ta)": accesses to the PDT, second-stage
and first-stage page tables, MSI page table and MRIF use DC.ta.RCID/MCID, which are also
given to the IO bridge on successful translations.

The memory port is a SparseMemory subclass with a ``qos`` attribute: the model sets it to
(RCID, MCID) before its accesses; the port records (kind, addr, qos) of each access.
"""

from __future__ import annotations

from typing import Any, List, Set, Tuple

import pytest

import riscv_iommu as rv
from helpers import (
    SV39,
    TC_PDTV,
    TC_SADE,
    TC_V,
    System,
    ta,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import URW, URWX
from swhelpers import (
    REG,
    iofence_c,
    setup_cq,
    setup_fq,
    setup_pq,
    submit,
    system_with_port,
)

Access_ = Tuple[str, int, Tuple[int, int]]

#: the model sets the port's qos to iommu_qosid before the DDT walk and never to DC.ta's IDs

IOMMU_QOS = (0x12, 0x34)
DC_QOS = (0x56, 0x78)
DID = 0x4321


class QosPort(rv.SparseMemory):
    """A memory port that records the QoS IDs of each access while ``armed``."""

    def __init__(self) -> None:
        super().__init__()
        self.qos: Tuple[int, int] = (-1, -1)
        self.armed = False
        self.log: List[Access_] = []

    def read(self, addr: int, size: int) -> bytes:
        if self.armed:
            self.log.append(("r", addr, self.qos))
        return super().read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        if self.armed:
            self.log.append(("w", addr, self.qos))
        super().write(addr, data)


def qos_system(**kw: Any) -> Tuple[System, QosPort]:
    port = QosPort()
    s = system_with_port(port, **kw)
    s.iommu.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=0x12, MCID=0x34), 4)
    return s, port


def ddt_pages(s: System, did: int) -> Set[int]:
    """Page numbers of the DDT pages the walk for ``did`` reads (3 levels)."""
    return {
        s.ddt.nonleaf_addr(did, 2) >> 12,
        s.ddt.nonleaf_addr(did, 1) >> 12,
        s.ddt.dc_addr(did) >> 12,
    }


def run(port: QosPort, fn: Any) -> List[Access_]:
    port.log.clear()
    port.armed = True
    try:
        fn()
    finally:
        port.armed = False
    return list(port.log)


def on_pages(log: List[Access_], pages: Set[int]) -> List[Access_]:
    return [a for a in log if a[1] >> 12 in pages]


def off_pages(log: List[Access_], pages: Set[int]) -> List[Access_]:
    return [a for a in log if a[1] >> 12 not in pages]


# ---------------------------------------------------------------------------
# the register
# ---------------------------------------------------------------------------
def test_iommu_qosid_reset_and_read_back() -> None:
    """iommu_qosid: RCID (11:0) and MCID (27:16); reset value 0; reserved bits read 0."""
    s = System()
    io = s.iommu
    assert io.mmio_read(REG.IOMMU_QOSID, 4) == 0
    io.mmio_write(REG.IOMMU_QOSID, 0xFFFF_FFFF, 4)
    assert io.mmio_read(REG.IOMMU_QOSID, 4) == 0x0FFF_0FFF
    io.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=0x123, MCID=0x456), 4)
    assert io.mmio_read(REG.IOMMU_QOSID, 4) == (0x456 << 16) | 0x123


def test_iommu_qosid_warl_to_implemented_widths() -> None:
    """iommu_qosid.RCID/MCID are WARL: only the implemented widths hold values."""
    s = System(params=rv.IommuParams(rcid_width=4, mcid_width=6))
    s.iommu.mmio_write(REG.IOMMU_QOSID, 0xFFFF_FFFF, 4)
    assert s.iommu.mmio_read(REG.IOMMU_QOSID, 4) == (0x3F << 16) | 0xF


def test_iommu_qosid_absent_without_capability() -> None:
    """capabilities.QOSID = 0: iommu_qosid is absent (reads 0, writes ignored)."""
    s = System(qosid=False)
    s.iommu.mmio_write(REG.IOMMU_QOSID, 0x0123_0456, 4)
    assert s.iommu.mmio_read(REG.IOMMU_QOSID, 4) == 0


# ---------------------------------------------------------------------------
# QoS IDs given to the IO bridge
# ---------------------------------------------------------------------------
def test_response_carries_dc_ta_qos_ids() -> None:
    """DC.ta: RCID/MCID are provided to the IO bridge on successful translations (also when the
    translation comes from a cache)."""
    s = System()
    s.iommu.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=1, MCID=2), 4)
    s1 = s.stage1()
    s1.map(0x1000, s.page())
    s.ddt.set_dc(DID, tc=TC_V, fsc=s1.satp(), ta=ta(pscid=3, rcid=0x56, mcid=0x78))
    for _ in range(2):
        rsp = s.t(DID, 0x1000)
        assert rsp.status == rv.Status.SUCCESS
        assert (rsp.rcid, rsp.mcid) == DC_QOS


def test_bare_mode_uses_iommu_qosid() -> None:
    """iommu_qosid: when ddtp.iommu_mode is Bare all device requests get iommu_qosid's IDs."""
    s = System()
    s.iommu.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    s.iommu.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=0xAB, MCID=0xCD), 4)
    rsp = s.t(7, 0x1234_5000, rv.Access.WRITE)
    assert rsp.status == rv.Status.SUCCESS
    assert (rsp.rcid, rsp.mcid) == (0xAB, 0xCD)
    s.iommu.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=0x1, MCID=0x2), 4)
    rsp = s.t(7, 0x1234_5000, rv.Access.WRITE)
    assert (rsp.rcid, rsp.mcid) == (0x1, 0x2)


# ---------------------------------------------------------------------------
# QoS IDs of the IOMMU's own memory accesses
# ---------------------------------------------------------------------------
def test_ddt_accesses_use_iommu_qosid() -> None:
    """iommu_qosid: reads of the device directory table use iommu_qosid's RCID/MCID."""
    s, port = qos_system()
    s.ddt.set_dc(DID, tc=TC_V, ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000))
    ddt = on_pages(log, ddt_pages(s, DID))
    assert len(ddt) >= 3
    assert {q for _, _, q in ddt} == {IOMMU_QOS}


def test_first_stage_page_table_accesses_use_dc_ta() -> None:
    """DC.ta: first-stage page-table reads use DC.ta.RCID/MCID (the DDT reads iommu_qosid)."""
    s, port = qos_system()
    s1 = s.stage1()
    s1.map(0x1000, s.page())
    s.ddt.set_dc(DID, tc=TC_V, fsc=s1.satp(), ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000))
    ddt = ddt_pages(s, DID)
    assert {q for _, _, q in on_pages(log, ddt)} == {IOMMU_QOS}
    pt = off_pages(log, ddt)
    assert len(pt) == 3  # Sv39: three levels
    assert {q for _, _, q in pt} == {DC_QOS}


def test_first_stage_ad_update_uses_dc_ta() -> None:
    """DC.ta: the A/D update of a first-stage PTE (an access to the page table) uses DC.ta."""
    s, port = qos_system()
    s1 = s.stage1()
    pte = s1.map(0x1000, s.page(), flags=URW)
    s.ddt.set_dc(DID, tc=TC_V | TC_SADE, fsc=s1.satp(), ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000, rv.Access.WRITE))
    writes = [a for a in log if a[0] == "w"]
    assert [a[1] for a in writes] == [pte]
    assert writes[0][2] == DC_QOS


def test_second_stage_page_table_accesses_use_dc_ta() -> None:
    """DC.ta: second-stage page-table reads use DC.ta.RCID/MCID."""
    s, port = qos_system()
    g = s.gstage(SV39)
    g.map(0x1000, s.page(), flags=URWX)
    s.ddt.set_dc(DID, tc=TC_V, iohgatp=g.satp(1), ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000))
    pt = off_pages(log, ddt_pages(s, DID))
    assert len(pt) == 3
    assert {q for _, _, q in pt} == {DC_QOS}


def test_pdt_accesses_use_dc_ta() -> None:
    """DC.ta: process-directory reads use DC.ta.RCID/MCID."""
    s, port = qos_system()
    pdt = s.pdt()
    pdt.set_pc(5)
    s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp(), ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000, process_id=5))
    pdt_log = off_pages(log, ddt_pages(s, DID))
    assert len(pdt_log) >= 3  # PD20: two non-leaf entries and the PC
    assert {q for _, _, q in pdt_log} == {DC_QOS}


def test_msi_page_table_accesses_use_dc_ta() -> None:
    """DC.ta: MSI page-table reads use DC.ta.RCID/MCID."""
    s, port = qos_system()
    g = s.gstage(SV39)
    pt = s.msipt(8)
    pt.set_flat(1, 0x2400_1000)
    s.ddt.set_dc(
        DID,
        tc=TC_V,
        iohgatp=g.satp(1),
        ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]),
        msiptp=pt.msiptp(),
        msi_addr_mask=0x7,
        msi_addr_pattern=0x2800_0,
    )
    log = run(port, lambda: s.t(DID, 0x2800_1000, rv.Access.WRITE, length=4))
    msi = on_pages(log, {pt.root >> 12})
    assert len(msi) >= 1
    assert {q for _, _, q in msi} == {DC_QOS}


def test_mrif_accesses_use_dc_ta() -> None:
    """DC.ta: accesses to a memory-resident interrupt file use DC.ta.RCID/MCID."""
    s, port = qos_system(params=rv.IommuParams(mrif_by_iommu=True))
    g = s.gstage(SV39)
    pt = s.msipt(8)
    mrif = s.page()
    notice = s.page()
    pt.set_mrif(2, mrif, notice, 0x33)
    s.ddt.set_dc(
        DID,
        tc=TC_V,
        iohgatp=g.satp(1),
        ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]),
        msiptp=pt.msiptp(),
        msi_addr_mask=0x7,
        msi_addr_pattern=0x2800_0,
    )
    log = run(port, lambda: s.t(DID, 0x2800_2000, rv.Access.WRITE, length=4, data=5))
    m = on_pages(log, {mrif >> 12})
    assert any(a[0] == "w" for a in m)
    assert {q for _, _, q in m} == {DC_QOS}


def test_fault_queue_writes_use_iommu_qosid() -> None:
    """iommu_qosid: fault-record writes to the FQ use iommu_qosid (not the device's DC.ta)."""
    s, port = qos_system()
    base = setup_fq(s)
    s.ddt.set_dc(DID, tc=TC_V, ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000, process_id=3))  # 260
    fq = on_pages(log, {base >> 12})
    assert [(k, a) for k, a, _ in fq] == [("w", base)]
    assert fq[0][2] == IOMMU_QOS


def test_page_request_queue_writes_use_iommu_qosid() -> None:
    """iommu_qosid: page-request-queue writes use iommu_qosid."""
    s, port = qos_system()
    base = setup_pq(s, ie=False)
    log = run(port, lambda: s.iommu.pq.push(bytes(16)))
    assert log == [("w", base, IOMMU_QOS)]


def test_command_queue_and_iofence_write_use_iommu_qosid() -> None:
    """iommu_qosid: command fetches from the CQ and the IOFENCE.C completion write use it."""
    s, port = qos_system()
    base = setup_cq(s)
    target = s.page()
    log = run(port, lambda: submit(s, iofence_c(addr=target, data=0x1234)))
    cq = on_pages(log, {base >> 12})
    reads = [a for a in cq if a[0] == "r"]
    assert reads and {q for _, _, q in reads} == {IOMMU_QOS}
    assert ("w", target, IOMMU_QOS) in log
    assert s.mem.read(target, 4) == (0x1234).to_bytes(4, "little")


def test_iommu_msi_write_uses_iommu_qosid() -> None:
    """iommu_qosid: IOMMU-initiated MSIs (here the fault-queue interrupt) use iommu_qosid."""
    s, port = qos_system()
    io = s.iommu
    target = s.page()
    io.mmio_write(REG.msi_addr(0), target)
    io.mmio_write(REG.msi_data(0), 0x77, 4)
    setup_fq(s, ie=True)
    s.ddt.set_dc(DID, tc=TC_V, ta=ta(rcid=DC_QOS[0], mcid=DC_QOS[1]))
    log = run(port, lambda: s.t(DID, 0x1000, process_id=3))
    assert ("w", target, IOMMU_QOS) in log


@pytest.mark.parametrize("mode", ["pdt", "s1"])
def test_iommu_qosid_change_applies_to_next_ddt_walk(mode: str) -> None:
    """iommu_qosid: a new value is used by later IOMMU-initiated DDT reads; DC.ta still applies
    to the device's other structures."""
    s, port = qos_system(params=rv.IommuParams(ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0))
    if mode == "pdt":
        pdt = s.pdt()
        pdt.set_pc(5)
        s.ddt.set_dc(DID, tc=TC_V | TC_PDTV, fsc=pdt.pdtp(), ta=ta(rcid=9, mcid=10))
        kw: dict[str, Any] = {"process_id": 5}
    else:
        s1 = s.stage1()
        s1.map(0x1000, s.page())
        s.ddt.set_dc(DID, tc=TC_V, fsc=s1.satp(), ta=ta(rcid=9, mcid=10))
        kw = {}
    s.iommu.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=0x7, MCID=0x8), 4)
    log = run(port, lambda: s.t(DID, 0x1000, **kw))
    ddt = ddt_pages(s, DID)
    assert {q for _, _, q in on_pages(log, ddt)} == {(0x7, 0x8)}
    assert {q for _, _, q in off_pages(log, ddt)} == {(9, 10)}
