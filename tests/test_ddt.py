"""Device directory: P2IOVA steps 1-8, GET_DC and the DC configuration checks.

Spec: iommu_data_structures.adoc, "Process to translate an IOVA" (P2IOVA),
"Process to locate the Device-context" (GET_DC), "Device-context configuration
checks" (DC_MISCONFIG, rules numbered as listed there; rule 23 is the
recommended msiptp.MODE check), "Leaf DDT entry" (DC byte order), and
iommu_in_memory_queues.adoc "Fault-queue record" (CAUSE / TTYP tables, DTF).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    PD8,
    PD17,
    PD20,
    SV39,
    SV48,
    SV57,
    TC_DPE,
    TC_DTF,
    TC_EN_ATS,
    TC_EN_PRI,
    TC_GADE,
    TC_PDTV,
    TC_PRPR,
    TC_SADE,
    TC_SBE,
    TC_SXL,
    TC_T2GPA,
    TC_V,
    System,
    fault,
    ta,
)
from riscv_iommu import formats as F
from riscv_iommu.ddt import DC_RULES, dc_misconfigured, ddi
from riscv_iommu.host.tables import PageTable

Cause = rv.Cause
Ttyp = rv.Ttyp
Access = rv.Access
Kind = rv.RequestKind
UR = rv.Status.UNSUPPORTED_REQUEST
CA = rv.Status.COMPLETER_ABORT
OK = rv.Status.SUCCESS

IOVA = 0x0000_0030_1234_5678  # a page offset that does not cross 4 KiB with length 8
SV32, SV32X4, SV39X4, SV48X4, SV57X4 = 8, 8, 8, 9, 10

# P2IOVA step 3 / step 4: widths of DDI[0], DDI[1], DDI[2]
BASE_WIDTHS = (7, 9, 8)
EXT_WIDTHS = (6, 9, 9)

TTYP_OF = {
    (Kind.UNTRANSLATED, Access.EXECUTE): Ttyp.UNTRANSLATED_EXECUTE,
    (Kind.UNTRANSLATED, Access.READ): Ttyp.UNTRANSLATED_READ,
    (Kind.UNTRANSLATED, Access.WRITE): Ttyp.UNTRANSLATED_WRITE,
    (Kind.TRANSLATED, Access.EXECUTE): Ttyp.TRANSLATED_EXECUTE,
    (Kind.TRANSLATED, Access.READ): Ttyp.TRANSLATED_READ,
    (Kind.TRANSLATED, Access.WRITE): Ttyp.TRANSLATED_WRITE,
    (Kind.ATS_TRANSLATION, Access.EXECUTE): Ttyp.ATS_TRANSLATION,
    (Kind.ATS_TRANSLATION, Access.READ): Ttyp.ATS_TRANSLATION,
    (Kind.ATS_TRANSLATION, Access.WRITE): Ttyp.ATS_TRANSLATION,
}
# Numeric TTYP encodings from the spec's table (guards the enum itself).
TTYP_VALUES = {
    (Kind.UNTRANSLATED, Access.EXECUTE): 1,
    (Kind.UNTRANSLATED, Access.READ): 2,
    (Kind.UNTRANSLATED, Access.WRITE): 3,
    (Kind.TRANSLATED, Access.EXECUTE): 5,
    (Kind.TRANSLATED, Access.READ): 6,
    (Kind.TRANSLATED, Access.WRITE): 7,
    (Kind.ATS_TRANSLATION, Access.EXECUTE): 8,
    (Kind.ATS_TRANSLATION, Access.READ): 8,
    (Kind.ATS_TRANSLATION, Access.WRITE): 8,
}

# ATS_FAULTS: 256-260 are Unsupported Request; the other faults here abort.
UR_CAUSES = {256, 257, 258, 259, 260}


# ---------------------------------------------------------------------------
# local helpers
# ---------------------------------------------------------------------------
def record(
    cause: int,
    did: int,
    iova: int = IOVA,
    kind: Kind = Kind.UNTRANSLATED,
    access: Access = Access.READ,
    pid: Optional[int] = None,
    priv: bool = False,
) -> rv.FaultRecord:
    """The fault record the spec asks for (iotval = IOVA, iotval2 = 0 for these causes)."""
    return rv.FaultRecord(
        cause=cause,
        ttyp=TTYP_OF[kind, access],
        iotval=iova,
        iotval2=0,
        device_id=did,
        process_id=pid if pid is not None else 0,
        pv=pid is not None,
        priv=priv and pid is not None,
    )


def expect_fault(
    rsp: rv.Response,
    cause: int,
    did: int,
    iova: int = IOVA,
    kind: Kind = Kind.UNTRANSLATED,
    access: Access = Access.READ,
    pid: Optional[int] = None,
    priv: bool = False,
    reported: bool = True,
) -> None:
    assert fault(rsp) == record(cause, did, iova, kind, access, pid, priv)
    assert rsp.status == (UR if cause in UR_CAUSES else CA)
    assert rsp.reported is reported


def expect_ok(rsp: rv.Response, addr: int) -> None:
    assert rsp.fault is None, rsp
    assert rsp.status == OK
    assert rsp.addr == addr


def dc_tuple(s: System, **dc: int) -> Tuple[int, ...]:
    """The DC as the model sees it: 8 doublewords, the last four zero in base format."""
    names = ("tc", "iohgatp", "ta", "fsc", "msiptp", "msi_addr_mask", "msi_addr_pattern")
    words = [dc.get(n, 0) for n in names] + [dc.get("reserved", 0)]
    if not s.caps.msi_flat:
        words[4:] = [0, 0, 0, 0]
    return tuple(words)


def make_system(
    caps: Optional[Dict[str, Any]] = None,
    params: Optional[Dict[str, Any]] = None,
    fctl: int = 0,
    levels: int = 3,
) -> System:
    return System(params=rv.IommuParams(**(params or {})), fctl=fctl, levels=levels, **(caps or {}))


def set_ddtp_mode(s: System, mode: int) -> None:
    s.iommu.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=mode, PPN=s.ddt.root >> 12))


def split(device_id: int, flat: bool) -> Tuple[int, int, int]:
    """DDI[0..2] by the widths of P2IOVA step 3 (base) / step 4 (extended)."""
    w0, w1, _ = EXT_WIDTHS if flat else BASE_WIDTHS
    return (
        device_id & ((1 << w0) - 1),
        (device_id >> w0) & ((1 << w1) - 1),
        device_id >> (w0 + w1),
    )


def manual_dc_addr(s: System, device_id: int, levels: int) -> int:
    """Build the DDT path for ``device_id`` by hand (not with DeviceDirectory) and
    return where GET_DC step 8 must find the DC."""
    flat = s.caps.msi_flat
    d = split(device_id, flat)
    a = s.ddt.root
    for i in range(levels - 1, 0, -1):
        nxt = s.page()
        s.mem.write_u64(a + d[i] * 8, F.DDTE.encode(V=1, PPN=nxt >> 12))
        a = nxt
    return a + d[0] * (64 if flat else 32)


def write_dc(s: System, addr: int, tc: int) -> None:
    s.mem.write_u64(addr, tc, s.be)


# ---------------------------------------------------------------------------
# P2IOVA step 1: ddtp.iommu_mode == Off
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("access", list(Access))
def test_p2iova_step1_off_disallows_all(kind: Kind, access: Access) -> None:
    """P2IOVA step 1: iommu_mode Off -> "All inbound transactions disallowed" (256)."""
    s = System()
    s.ddt.set_dc(5, tc=TC_V | TC_EN_ATS)
    set_ddtp_mode(s, rv.IommuMode.OFF)
    rsp = s.t(5, IOVA, access, kind=kind)
    expect_fault(rsp, 256, 5, kind=kind, access=access)


def test_p2iova_step1_reset_iommu_is_off() -> None:
    """P2IOVA step 1 with the recommended reset value (Off) of ddtp.iommu_mode."""
    io = rv.Iommu(rv.SparseMemory())
    rsp = io.translate(rv.Request(device_id=0x123, addr=IOVA, access=Access.WRITE))
    expect_fault(rsp, 256, 0x123, access=Access.WRITE)


# ---------------------------------------------------------------------------
# P2IOVA step 2: ddtp.iommu_mode == Bare
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("access", list(Access))
def test_p2iova_step2_bare_untranslated_passes_through(access: Access) -> None:
    """P2IOVA step 2: Bare, Untranslated request -> step 20 with the IOVA unchanged."""
    s = System()
    set_ddtp_mode(s, rv.IommuMode.BARE)
    for addr in (IOVA, 0, 0xFFFF_FFFF_FFFF_F000, 0x8000_0000_0000_0ABC):
        expect_ok(s.t(0xABCDEF, addr, access), addr)


@pytest.mark.parametrize("kind", [Kind.TRANSLATED, Kind.ATS_TRANSLATION])
@pytest.mark.parametrize("access", list(Access))
def test_p2iova_step2_bare_translated_and_ats_disallowed(kind: Kind, access: Access) -> None:
    """P2IOVA step 2.1: Bare, Translated or ATS Translation request -> 260."""
    s = System()
    set_ddtp_mode(s, rv.IommuMode.BARE)
    expect_fault(s.t(0x42, IOVA, access, kind=kind), 260, 0x42, kind=kind, access=access)


# ---------------------------------------------------------------------------
# P2IOVA steps 3-5: DDI split and device_id width
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("flat", [False, True], ids=["base", "extended"])
def test_p2iova_steps3_4_ddi_split(levels: int, flat: bool) -> None:
    """P2IOVA step 3 (MSI_FLAT=0: DDI 7/9/8 bits) and step 4 (MSI_FLAT=1: 6/9/9 bits);
    GET_DC steps 1-8 index each level with its DDI."""
    s = System(levels=levels, msi_flat=flat)
    w0, w1, w2 = EXT_WIDTHS if flat else BASE_WIDTHS
    # distinct, asymmetric values in every field that exists at this depth
    d0 = 0b1010101 & ((1 << w0) - 1)
    d1 = 0b110100101 if levels >= 2 else 0
    d2 = (0b10110011 if not flat else 0b101100111) if levels == 3 else 0
    did = d0 | (d1 << w0) | (d2 << (w0 + w1))
    assert ddi(s.iommu, did) == (d0, d1, d2)
    assert w0 + w1 + w2 == 24
    addr = manual_dc_addr(s, did, levels)
    write_dc(s, addr, TC_V)
    expect_ok(s.t(did, IOVA), IOVA)
    # a device_id differing in any one DDI field finds nothing there (258)
    for field_lsb in (0, w0, w0 + w1)[:levels]:
        other = did ^ (1 << field_lsb)
        expect_fault(s.t(other, IOVA), 258, other)


@pytest.mark.parametrize("flat", [False, True], ids=["base", "extended"])
def test_p2iova_step3_4_dc_size(flat: bool) -> None:
    """GET_DC step 8: DC_SIZE is 64 bytes with MSI_FLAT=1, else 32 bytes."""
    s = System(levels=1, msi_flat=flat)
    size = 64 if flat else 32
    write_dc(s, s.ddt.root + 3 * size, TC_V)
    expect_ok(s.t(3, IOVA), IOVA)
    expect_fault(s.t(2, IOVA), 258, 2)
    expect_fault(s.t(4, IOVA), 258, 4)


# (format, levels, widest device_id the mode supports, ids too wide for it)
WIDTH_CASES = [
    pytest.param(False, 1, 0x7F, [0x80, 0xFF80, 0x10000, 0xFFFFFF], id="base-1lvl"),
    pytest.param(True, 1, 0x3F, [0x40, 0x7FC0, 0x8000, 0xFFFFFF], id="ext-1lvl"),
    pytest.param(False, 2, 0xFFFF, [0x10000, 0x800000, 0xFFFFFF], id="base-2lvl"),
    pytest.param(True, 2, 0x7FFF, [0x8000, 0x800000, 0xFFFFFF], id="ext-2lvl"),
]


@pytest.mark.parametrize("flat,levels,widest,too_wide", WIDTH_CASES)
def test_p2iova_step5_device_id_wider_than_mode(
    flat: bool, levels: int, widest: int, too_wide: list
) -> None:
    """P2IOVA step 5: 2LVL with DDI[2] != 0, 1LVL with DDI[1] or DDI[2] != 0 -> 260,
    even when a valid DC sits where the truncated device_id would alias."""
    s = System(levels=levels, msi_flat=flat)
    s.ddt.set_dc(widest, tc=TC_V)
    expect_ok(s.t(widest, IOVA), IOVA)
    for did in too_wide:
        s.ddt.set_dc(did, tc=TC_V)  # the builder writes it at the aliased slot
        expect_fault(s.t(did, IOVA), 260, did)


@pytest.mark.parametrize("flat", [False, True], ids=["base", "extended"])
def test_p2iova_step5_3lvl_takes_every_24bit_id(flat: bool) -> None:
    """P2IOVA step 5: with 3LVL no 24-bit device_id is too wide for the mode."""
    s = System(levels=3, msi_flat=flat)
    for did in (0, 0xFFFFFF, 0x800000, 0x8000, 0x10000):
        s.ddt.set_dc(did, tc=TC_V)
        expect_ok(s.t(did, IOVA), IOVA)


# (levels, format, IommuParams.device_id_width, widest legal id, first too-wide id)
ID_WIDTH_CASES = [
    pytest.param(1, True, 4, 0xF, 0x10, id="ext-1lvl-w4"),
    pytest.param(1, False, 6, 0x3F, 0x40, id="base-1lvl-w6"),
    pytest.param(2, False, 10, 0x3FF, 0x400, id="base-2lvl-w10"),
    pytest.param(2, True, 14, 0x3FFF, 0x4000, id="ext-2lvl-w14"),
    pytest.param(3, True, 20, 0xFFFFF, 0x100000, id="ext-3lvl-w20"),
    pytest.param(3, False, 17, 0x1FFFF, 0x20000, id="base-3lvl-w17"),
]


@pytest.mark.parametrize("levels,flat,width,widest,wide", ID_WIDTH_CASES)
def test_p2iova_step5_device_id_wider_than_implemented(
    levels: int, flat: bool, width: int, widest: int, wide: int
) -> None:
    """P2IOVA step 5 / ATS_FAULTS "device_id is wider than that supported by the IOMMU"
    (cause 260), with IommuParams.device_id_width narrower than the mode."""
    s = make_system(caps={"msi_flat": flat}, params={"device_id_width": width}, levels=levels)
    s.ddt.set_dc(widest, tc=TC_V)
    s.ddt.set_dc(wide, tc=TC_V)
    expect_ok(s.t(widest, IOVA), IOVA)
    expect_fault(s.t(wide, IOVA), 260, wide)
    expect_fault(s.t(0xFFFFFF, IOVA), 260, 0xFFFFFF)


# ---------------------------------------------------------------------------
# GET_DC steps 3-7: non-leaf DDT entries
# ---------------------------------------------------------------------------
NONLEAF = [pytest.param(2, 1, id="2lvl-L1"), pytest.param(3, 1, id="3lvl-L1")]
NONLEAF += [pytest.param(3, 2, id="3lvl-L2")]
DID = 0xA5A5A5  # DDI[2], DDI[1], DDI[0] all non-zero in both formats


def _did_for(levels: int) -> int:
    return DID & ((1 << (6 + 9 * (levels - 1))) - 1) if levels < 3 else DID


@pytest.mark.parametrize("levels,level", NONLEAF)
@pytest.mark.parametrize(
    "kind,cause",
    [(rv.MemoryFault.ACCESS_FAULT, 257), (rv.MemoryFault.DATA_CORRUPTION, 268)],
    ids=["access-fault", "corruption"],
)
def test_get_dc_step3_4_nonleaf_load_fault(
    levels: int, level: int, kind: rv.MemoryFault, cause: int
) -> None:
    """GET_DC step 3 (PMA/PMP violation -> 257) and step 4 (poison -> 268) on a ddte."""
    s = System(levels=levels)
    did = _did_for(levels)
    s.ddt.set_dc(did, tc=TC_V)
    s.mem.inject(s.ddt.nonleaf_addr(did, level), 8, kind)
    expect_fault(s.t(did, IOVA), cause, did)


def test_get_dc_step3_access_fault_wins_over_poison() -> None:
    """GET_DC steps 3-4: an access that both violates PMA and returns poison is 257."""
    s = System(levels=3)
    s.ddt.set_dc(DID, tc=TC_V)
    a = s.ddt.nonleaf_addr(DID, 2)
    s.mem.inject(a, 8, rv.MemoryFault.DATA_CORRUPTION)
    s.mem.inject(a, 8, rv.MemoryFault.ACCESS_FAULT)
    expect_fault(s.t(DID, IOVA), 257, DID)


@pytest.mark.parametrize("levels,level", NONLEAF)
def test_get_dc_step5_nonleaf_not_valid(levels: int, level: int) -> None:
    """GET_DC step 5: ddte.V == 0 -> 258 (whatever the other bits hold)."""
    s = System(levels=levels)
    did = _did_for(levels)
    s.ddt.set_dc(did, tc=TC_V)
    a = s.ddt.nonleaf_addr(did, level)
    ddte = s.mem.read_u64(a)
    s.mem.write_u64(a, (ddte & ~1) | F.DDTE.reserved)
    expect_fault(s.t(did, IOVA), 258, did)


@pytest.mark.parametrize("levels,level", NONLEAF)
@pytest.mark.parametrize("bit", [1, 5, 9, 54, 60, 63])
def test_get_dc_step6_nonleaf_reserved_bits(levels: int, level: int, bit: int) -> None:
    """GET_DC step 6: reserved ddte bits (9:1, 63:54) set -> 259."""
    assert F.DDTE.reserved >> bit & 1
    s = System(levels=levels)
    did = _did_for(levels)
    s.ddt.set_dc(did, tc=TC_V)
    a = s.ddt.nonleaf_addr(did, level)
    s.mem.write_u64(a, s.mem.read_u64(a) | (1 << bit))
    expect_fault(s.t(did, IOVA), 259, did)


def test_get_dc_step7_follows_ddte_ppn() -> None:
    """GET_DC step 7: the next level is at ddte.PPN x 2^12 (a moved leaf table is used)."""
    s = System(levels=2)
    s.ddt.set_dc(0x1C5, tc=TC_V)
    a = s.ddt.nonleaf_addr(0x1C5, 1)
    moved = s.page()
    d0 = 0x1C5 & 0x3F
    s.mem.write_u64(moved + d0 * 64, TC_V)
    s.mem.write_u64(s.ddt.dc_addr(0x1C5), 0)  # the old DC is now invalid
    s.mem.write_u64(a, F.DDTE.encode(V=1, PPN=moved >> 12))
    expect_ok(s.t(0x1C5, IOVA), IOVA)


# ---------------------------------------------------------------------------
# GET_DC steps 8-9: the DC itself
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("flat", [False, True], ids=["base", "extended"])
@pytest.mark.parametrize(
    "kind,cause",
    [(rv.MemoryFault.ACCESS_FAULT, 257), (rv.MemoryFault.DATA_CORRUPTION, 268)],
    ids=["access-fault", "corruption"],
)
def test_get_dc_step8_dc_load_fault(
    levels: int, flat: bool, kind: rv.MemoryFault, cause: int
) -> None:
    """GET_DC step 8: a PMA/PMP violation reading the DC -> 257, poison -> 268; every
    doubleword of the DC_SIZE bytes is read (here: the last one faults)."""
    s = System(levels=levels, msi_flat=flat)
    did = 0x2D if levels == 1 else _did_for(levels)
    addr = s.ddt.set_dc(did, tc=TC_V)
    size = 64 if flat else 32
    s.mem.inject(addr + size - 8, 8, kind)
    expect_fault(s.t(did, IOVA), cause, did)


def test_get_dc_step8_base_dc_is_32_bytes() -> None:
    """GET_DC step 8: with MSI_FLAT=0 only 32 bytes are read (a fault just past them
    does not matter)."""
    s = System(levels=1, msi_flat=False)
    addr = s.ddt.set_dc(4, tc=TC_V)
    s.mem.inject(addr + 32, 32, rv.MemoryFault.ACCESS_FAULT)
    expect_ok(s.t(4, IOVA), IOVA)


@pytest.mark.parametrize("flat", [False, True], ids=["base", "extended"])
def test_get_dc_step9_dc_not_valid(flat: bool) -> None:
    """GET_DC step 9: DC.tc.V == 0 -> 258, even with every other bit (reserved ones
    included) set: they are don't-care."""
    s = System(msi_flat=flat)
    all_ones = (1 << 64) - 1
    s.ddt.set_dc(
        0x777,
        tc=all_ones & ~TC_V,
        iohgatp=all_ones,
        ta=all_ones,
        fsc=all_ones,
        msiptp=all_ones,
        msi_addr_mask=all_ones,
        msi_addr_pattern=all_ones,
        reserved=all_ones,
    )
    expect_fault(s.t(0x777, IOVA), 258, 0x777)


def test_get_dc_nonleaf_ppn_beyond_pas_is_access_fault() -> None:
    """GET_DC step 3 with ddte.PPN pointing at or beyond 2^capabilities.PAS: the next
    ddte access violates PMA -> 257."""
    s = System(levels=3, pas=40)
    s.ddt.set_dc(DID, tc=TC_V)
    a = s.ddt.nonleaf_addr(DID, 2)
    s.mem.write_u64(a, F.DDTE.encode(V=1, PPN=1 << 28))  # 2^40
    expect_fault(s.t(DID, IOVA), 257, DID)


def test_get_dc_dc_beyond_pas_is_access_fault() -> None:
    """GET_DC step 8: the leaf table (DC) beyond 2^capabilities.PAS -> 257."""
    s = System(levels=2, pas=40)
    did = 0x1C5
    s.ddt.set_dc(did, tc=TC_V)
    a = s.ddt.nonleaf_addr(did, 1)
    s.mem.write_u64(a, F.DDTE.encode(V=1, PPN=(1 << 28) | 0x123))
    expect_fault(s.t(did, IOVA), 257, did)


def test_get_dc_root_last_page_below_pas_is_fine() -> None:
    """Control for the PAS tests: a DC in the last page below 2^PAS is read normally."""
    s = System(levels=2, pas=40)
    did = 0x1C5
    s.ddt.set_dc(did, tc=TC_V)
    last = (1 << 40) - 4096
    s.mem.write_u64(last + (did & 0x3F) * 64, TC_V)
    s.mem.write_u64(s.ddt.nonleaf_addr(did, 1), F.DDTE.encode(V=1, PPN=last >> 12))
    expect_ok(s.t(did, IOVA), IOVA)


def test_ddtp_ppn_beyond_pas_is_legalized() -> None:
    """ddtp.PPN is WARL (registers "ddtp"): this model keeps only the PPN bits below
    capabilities.PAS, so a root beyond PAS cannot be programmed and the walk uses the
    value software reads back.  (Spec allows this; an implementation that keeps the
    bits would instead report 257 on the first DDT access.)"""
    s = System(levels=1, pas=40)
    s.ddt.set_dc(9, tc=TC_V)
    wide = F.DDTP.encode(iommu_mode=2, PPN=(1 << 30) | (s.ddt.root >> 12))
    s.iommu.mmio_write(rv.REG.DDTP, wide)
    got = s.iommu.mmio_read(rv.REG.DDTP)
    assert F.DDTP.PPN.get(got) == s.ddt.root >> 12
    assert F.DDTP.PPN.get(got) >> (40 - 12) == 0
    expect_ok(s.t(9, IOVA), IOVA)


# ---------------------------------------------------------------------------
# DC configuration checks (DC_MISCONFIG) -> GET_DC step 10 -> cause 259
# ---------------------------------------------------------------------------
def G(mode: int = SV39X4, ppn: int = 0x90000, gscid: int = 0) -> int:
    return F.IOHGATP.encode(MODE=mode, PPN=ppn, GSCID=gscid)


def S(mode: int, ppn: int = 0x91000) -> int:
    return F.IOSATP.encode(MODE=mode, PPN=ppn)


def P(mode: int, ppn: int = 0x93000) -> int:
    return F.PDTP.encode(MODE=mode, PPN=ppn)


def M(mode: int, ppn: int = 0x92000) -> int:
    return F.MSIPTP.encode(MODE=mode, PPN=ppn)


def case(
    rule: int,
    name: str,
    caps: Optional[Dict[str, Any]] = None,
    params: Optional[Dict[str, Any]] = None,
    fctl: int = 0,
    **dc: int,
) -> Any:
    dc.setdefault("tc", TC_V)
    return pytest.param(rule, caps or {}, params or {}, fctl, dc, id=f"r{rule}-{name}")


NO_QOS = {"qosid": False}
GXLW = {"gxl_writable": True}
MASK_ALL = (1 << 64) - 1

RULE_CASES = [
    # 1. reserved bits / encodings
    *[case(1, f"tc-bit{b}", tc=TC_V | (1 << b)) for b in (12, 17, 23, 32, 45, 63)],
    *[case(1, f"ta-bit{b}", ta=1 << b) for b in (0, 11, 32, 39)],
    case(1, "ta-rcid-no-qosid", caps=NO_QOS, ta=ta(rcid=1)),
    case(1, "ta-mcid-no-qosid", caps=NO_QOS, ta=ta(mcid=0x800)),
    *[case(1, f"iosatp-bit{b}", fsc=S(SV39) | (1 << b)) for b in (44, 51, 59)],
    *[case(1, f"iosatp-bare-bit{b}", fsc=1 << b) for b in (44, 59)],
    *[case(1, f"pdtp-bit{b}", tc=TC_V | TC_PDTV, fsc=P(PD20) | (1 << b)) for b in (44, 52, 59)],
    *[case(1, f"msiptp-bit{b}", iohgatp=G(), msiptp=M(1) | (1 << b)) for b in (44, 59)],
    *[case(1, f"mask-bit{b}", iohgatp=G(), msi_addr_mask=1 << b) for b in (52, 58, 63)],
    *[case(1, f"pattern-bit{b}", iohgatp=G(), msi_addr_pattern=1 << b) for b in (52, 63)],
    case(1, "mask-mgpaw59", msi_addr_mask=1 << 47),
    case(1, "pattern-mgpaw59", msi_addr_pattern=1 << 51),
    *[case(1, f"last-dword-bit{b}", reserved=1 << b) for b in (0, 31, 63)],
    case(1, "gscid-wider", params={"gscid_width": 4}, iohgatp=G(gscid=0x10)),
    case(1, "pscid-wider", params={"pscid_width": 8}, tc=TC_V, ta=ta(pscid=0x100)),
    # 2. capabilities.ATS is 0 and EN_ATS / EN_PRI / PRPR
    case(2, "en_ats", caps={"ats": False}, tc=TC_V | TC_EN_ATS),
    case(2, "en_pri", caps={"ats": False}, tc=TC_V | TC_EN_ATS | TC_EN_PRI),
    case(2, "prpr", caps={"ats": False}, tc=TC_V | TC_EN_ATS | TC_EN_PRI | TC_PRPR),
    case(2, "pri-alone", caps={"ats": False}, tc=TC_V | TC_EN_PRI),
    # 3. EN_ATS 0, T2GPA 1
    case(3, "t2gpa", tc=TC_V | TC_T2GPA, iohgatp=G()),
    # 4. EN_ATS 0, EN_PRI 1
    case(4, "en_pri", tc=TC_V | TC_EN_PRI),
    # 5. EN_PRI 0, PRPR 1
    case(5, "prpr", tc=TC_V | TC_EN_ATS | TC_PRPR),
    case(5, "prpr-no-ats", tc=TC_V | TC_PRPR),
    # 6. capabilities.T2GPA 0, T2GPA 1
    case(6, "t2gpa", caps={"t2gpa": False}, tc=TC_V | TC_EN_ATS | TC_T2GPA, iohgatp=G()),
    # 7. T2GPA 1 and iohgatp Bare
    case(7, "t2gpa-bare", tc=TC_V | TC_EN_ATS | TC_T2GPA),
    # 8. PDTV 1 and pdtp.MODE unsupported (reserved encodings too)
    case(8, "pd20", caps={"pd20": False}, tc=TC_V | TC_PDTV, fsc=P(PD20)),
    case(8, "pd17", caps={"pd17": False}, tc=TC_V | TC_PDTV, fsc=P(PD17)),
    case(8, "pd8", caps={"pd8": False}, tc=TC_V | TC_PDTV, fsc=P(PD8)),
    *[case(8, f"pdtp-mode{m}", tc=TC_V | TC_PDTV, fsc=P(m)) for m in (4, 9, 13, 14, 15)],
    # 9. PDTV 0 and iosatp.MODE not a valid encoding (for DC.tc.SXL)
    *[case(9, f"iosatp-mode{m}", fsc=S(m)) for m in (1, 7, 11, 13, 14, 15)],
    case(9, "sxl1-sv48", params=GXLW, tc=TC_V | TC_SXL, fsc=S(SV48)),
    case(9, "sxl1-mode10", params=GXLW, tc=TC_V | TC_SXL, fsc=S(SV57)),
    # 10. PDTV 0, SXL 0, unsupported mode
    case(10, "sv39", caps={"sv39": False, "sv48": False, "sv57": False}, fsc=S(SV39)),
    case(10, "sv48", caps={"sv48": False, "sv57": False}, fsc=S(SV48)),
    case(10, "sv57", caps={"sv57": False}, fsc=S(SV57)),
    # 11. PDTV 0, SXL 1, unsupported mode
    case(11, "sv32", caps={"sv32": False}, params=GXLW, tc=TC_V | TC_SXL, fsc=S(SV32)),
    # 12. PDTV 0 and DPE 1
    case(12, "dpe", tc=TC_V | TC_DPE),
    case(12, "dpe-with-iosatp", tc=TC_V | TC_DPE, fsc=S(SV39)),
    # 13. iohgatp.MODE not a valid encoding (for fctl.GXL)
    *[case(13, f"iohgatp-mode{m}", iohgatp=G(m)) for m in (1, 7, 11, 14, 15)],
    case(13, "gxl1-mode9", fctl=4, tc=TC_V | TC_SXL, iohgatp=G(SV48X4)),
    case(13, "gxl1-mode10", fctl=4, tc=TC_V | TC_SXL, iohgatp=G(SV57X4)),
    # 14. GXL 0 and unsupported iohgatp mode
    case(14, "sv39x4", caps={"sv39x4": False}, iohgatp=G(SV39X4)),
    case(14, "sv48x4", caps={"sv48x4": False}, iohgatp=G(SV48X4)),
    case(14, "sv57x4", caps={"sv57x4": False}, iohgatp=G(SV57X4)),
    # 15. GXL 1 and unsupported iohgatp mode
    case(15, "sv32x4", caps={"sv32x4": False}, fctl=4, tc=TC_V | TC_SXL, iohgatp=G(SV32X4)),
    # 16. MSI_FLAT 1 and msiptp.MODE not Off and not Flat
    *[case(16, f"msiptp-mode{m}", iohgatp=G(), msiptp=M(m)) for m in (2, 3, 13, 14, 15)],
    # 17. iohgatp root not 16-KiB aligned
    *[case(17, f"ppn-low{k}", iohgatp=G(ppn=0x90000 | k)) for k in (1, 2, 3)],
    case(17, "gxl1-sv32x4", fctl=4, tc=TC_V | TC_SXL, iohgatp=G(SV32X4, ppn=0x90002)),
    # 18. AMO_HWAD 0 and SADE / GADE
    case(18, "sade", caps={"amo_hwad": False}, tc=TC_V | TC_SADE),
    case(18, "gade", caps={"amo_hwad": False}, tc=TC_V | TC_GADE, iohgatp=G()),
    # 19. END 0 and fctl.BE != SBE
    case(19, "le-only-sbe1", caps={"end": False}, tc=TC_V | TC_SBE),
    case(19, "be-only-sbe0", caps={"end": False}, fctl=1, tc=TC_V),
    # 20. SXL not legal
    case(20, "gxl1-sxl0", fctl=4),
    case(20, "gxl0-ro-sxl1", tc=TC_V | TC_SXL),
    case(20, "gxl1-sxl0-sv32x4", fctl=4, iohgatp=G(SV32X4)),
    # 21. SBE not legal (END=1, fctl.BE not writable)
    case(21, "be0-sbe1", params={"be_writable": False}, tc=TC_V | TC_SBE),
    case(21, "be1-sbe0", params={"be_writable": False}, fctl=1, tc=TC_V),
    case(21, "end-but-be-ro", params={"be_writable": False}, tc=TC_V | TC_SBE),
    # 22. QOSID 1 and RCID / MCID wider than supported
    case(22, "rcid", params={"rcid_width": 4}, ta=ta(rcid=0x10)),
    case(22, "mcid", params={"mcid_width": 6}, ta=ta(mcid=0x40)),
    case(22, "rcid-top", params={"rcid_width": 11}, ta=ta(rcid=0x800)),
    case(22, "mcid-top", params={"mcid_width": 1}, ta=ta(mcid=0x800)),
    # 23. (recommended) iohgatp.MODE Bare and msiptp.MODE not Off
    case(23, "msiptp-flat-bare", msiptp=M(1)),
    case(23, "msiptp-flat-bare-mask", msiptp=M(1), msi_addr_mask=0xFF),
]


@pytest.mark.parametrize("rule,caps,params,fctl,dc", RULE_CASES)
def test_dc_misconfig_rule(
    rule: int, caps: Dict[str, Any], params: Dict[str, Any], fctl: int, dc: Dict[str, int]
) -> None:
    """DC_MISCONFIG rule <rule> -> GET_DC step 10 stops with "DDT entry misconfigured"
    (259); dc_misconfigured() names the rule."""
    s = make_system(caps, params, fctl)
    did = 0x31337
    s.ddt.set_dc(did, **dc)
    assert dc_misconfigured(s.iommu, dc_tuple(s, **dc)) == rule, DC_RULES[rule]
    for kind in Kind:
        expect_fault(s.t(did, IOVA, kind=kind), 259, did, kind=kind)
    # the same with a process_id: the DC check comes before any use of it
    expect_fault(s.t(did, IOVA, process_id=0x55, priv=True), 259, did, pid=0x55, priv=True)


def test_dc_misconfig_every_rule_is_covered() -> None:
    """Every rule of DC_MISCONFIG (1-22 and the recommended rule 23) has a case above."""
    covered = {p.values[0] for p in RULE_CASES}
    assert covered == set(range(1, 24))
    assert set(range(1, 24)) <= set(DC_RULES)


def test_dc_misconfig_rule1_custom_tc_bits_are_not_reserved() -> None:
    """DC.tc bits 31:24 are designated for custom use, not reserved: no rule 1."""
    s = System()
    s.ddt.set_dc(1, tc=TC_V | (0xFF << 24))
    assert dc_misconfigured(s.iommu, dc_tuple(s, tc=TC_V | (0xFF << 24))) == 0
    expect_ok(s.t(1, IOVA), IOVA)


def test_dc_misconfig_base_format_has_no_extended_words() -> None:
    """Leaf DDT entry: the base-format DC is 32 bytes; what follows it (the next DC)
    is not part of it, so the extended-format checks cannot apply."""
    s = System(levels=1, msi_flat=False)
    s.ddt.set_dc(2, tc=TC_V)
    # the doublewords where an extended DC would keep <word> belong to device 3
    s.ddt.set_dc(3, tc=MASK_ALL & ~TC_V, iohgatp=MASK_ALL, ta=MASK_ALL, fsc=MASK_ALL)
    expect_ok(s.t(2, IOVA), IOVA)
    expect_fault(s.t(3, IOVA), 258, 3)


# (capability overrides, MGPAW) per the MGPAW list under "msi_addr_mask"
MGPAW_CASES = [
    pytest.param({}, 59, id="sv57x4"),
    pytest.param({"sv57x4": False}, 50, id="sv48x4"),
    pytest.param({"sv57x4": False, "sv48x4": False}, 41, id="sv39x4"),
    pytest.param({"sv57x4": False, "sv48x4": False, "sv39x4": False}, 34, id="sv32x4"),
    pytest.param(
        {"sv57x4": False, "sv48x4": False, "sv39x4": False, "sv32x4": False, "pas": 46},
        46,
        id="pas46",
    ),
    pytest.param(
        {"sv57x4": False, "sv48x4": False, "sv39x4": False, "sv32x4": False, "pas": 63},
        63,
        id="pas63",
    ),
]


@pytest.mark.parametrize("caps,mgpaw", MGPAW_CASES)
@pytest.mark.parametrize("word", ["msi_addr_mask", "msi_addr_pattern"])
def test_dc_misconfig_rule1_mgpaw_bits(caps: Dict[str, Any], mgpaw: int, word: str) -> None:
    """msi_addr_mask / msi_addr_pattern: bits 51:MGPAW-12 are reserved (rule 1);
    bit MGPAW-13 and below are not."""
    top = min(mgpaw - 12, 52)  # first reserved bit of the 52-bit field
    if top < 52:
        s = make_system(caps)
        s.ddt.set_dc(7, **{word: 1 << top})
        assert dc_misconfigured(s.iommu, dc_tuple(s, **{word: 1 << top})) == 1
        expect_fault(s.t(7, IOVA), 259, 7)
        s = make_system(caps)
        s.ddt.set_dc(7, **{word: 1 << 51})
        expect_fault(s.t(7, IOVA), 259, 7)
    s = make_system(caps)
    legal = (1 << top) - 1
    s.ddt.set_dc(7, **{word: legal})
    assert dc_misconfigured(s.iommu, dc_tuple(s, **{word: legal})) == 0
    expect_ok(s.t(7, IOVA), IOVA)


# ---------------------------------------------------------------------------
# correct DCs pass (rule 0) and translate
# ---------------------------------------------------------------------------
def check_passes(s: System, did: int, **dc: int) -> None:
    s.ddt.set_dc(did, **dc)
    assert dc_misconfigured(s.iommu, dc_tuple(s, **dc)) == 0


@pytest.mark.parametrize("flat", [False, True], ids=["base", "extended"])
def test_dc_legal_bare_bare(flat: bool) -> None:
    """A DC with both stages Bare is legal: the IOVA passes through (P2IOVA 10, 17-20)."""
    s = System(msi_flat=flat)
    check_passes(s, 0x100, tc=TC_V, ta=ta(pscid=0xFFFFF))
    expect_ok(s.t(0x100, IOVA, Access.WRITE), IOVA)


@pytest.mark.parametrize("mode", [SV39, SV48, SV57])
def test_dc_legal_first_stage_each_mode(mode: int) -> None:
    """PDTV=0 with each supported iosatp mode, max PSCID: legal, first stage used."""
    s = System()
    pt = s.stage1(mode=mode)
    pa = s.page()
    pt.map(IOVA & ~0xFFF, pa)
    check_passes(s, 0x200, tc=TC_V, ta=ta(pscid=0xFFFFF), fsc=pt.satp())
    expect_ok(s.t(0x200, IOVA), pa | (IOVA & 0xFFF))


@pytest.mark.parametrize("mode", [SV39X4, SV48X4, SV57X4])
def test_dc_legal_gstage_ats_msi_ad(mode: int) -> None:
    """Each iohgatp mode with GSCID, EN_ATS/EN_PRI/PRPR/T2GPA, GADE/SADE, DTF and an
    MSI flat table with MGPAW-legal mask/pattern: legal; the G-stage translates."""
    s = System()
    g = s.gstage(mode)
    spa, spa2 = s.page(), s.page()
    gpa = 0x1_2345_6000
    g.map(gpa, spa)
    g.map(gpa + 0x1000, spa2)
    msipt = s.msipt()
    tc = TC_V | TC_EN_ATS | TC_EN_PRI | TC_PRPR | TC_T2GPA | TC_GADE | TC_SADE | TC_DTF
    check_passes(
        s,
        0x300,
        tc=tc,
        iohgatp=g.satp(0xFFFF),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0xF,
        msi_addr_pattern=(1 << 46) | 0x280,
    )
    expect_ok(s.t(0x300, gpa | 0x18), spa | 0x18)
    # P2IOVA step 9: a Translated request with T2GPA=1 is a GPA for the G-stage
    expect_ok(s.t(0x300, gpa + 0x1020, kind=Kind.TRANSLATED), spa2 | 0x20)


def test_second_request_to_a_page_keeps_the_offset() -> None:
    """P2IOVA step 19/20 (Priv spec PTW step 8: pa.pgoff = va.pgoff): the second request
    to a translated page (served from the IOTLB) keeps its page offset."""
    s = System()
    g = s.gstage()
    spa = s.page()
    g.map(0x1_2345_6000, spa)
    s.ddt.set_dc(0x301, tc=TC_V | TC_EN_ATS | TC_T2GPA, iohgatp=g.satp(3))
    expect_ok(s.t(0x301, 0x1_2345_6018), spa | 0x18)
    expect_ok(s.t(0x301, 0x1_2345_6020, kind=Kind.TRANSLATED), spa | 0x20)
    expect_ok(s.t(0x301, 0x1_2345_6FF0, Access.WRITE), spa | 0xFF0)


@pytest.mark.parametrize("pdmode", [PD8, PD17, PD20])
def test_dc_legal_pdtv_dpe(pdmode: int) -> None:
    """PDTV=1 with each supported pdtp mode and DPE=1: legal; a request without
    process_id uses process_id 0 (P2IOVA step 11)."""
    s = System()
    pdt = s.pdt(mode=pdmode)
    pt = s.stage1()
    pa = s.page()
    pt.map(IOVA & ~0xFFF, pa)
    pdt.set_pc(0, fsc=pt.satp(), pscid=3)
    check_passes(s, 0x400, tc=TC_V | TC_PDTV | TC_DPE, fsc=pdt.pdtp(), ta=1 << 12)
    expect_ok(s.t(0x400, IOVA), pa | (IOVA & 0xFFF))


def test_dc_legal_sxl1_when_gxl_writable() -> None:
    """Rule 20: fctl.GXL 0 and writable -> SXL may be 1; Sv32 first stage works."""
    s = make_system(params=GXLW)
    pt = PageTable(s.host, SV32, stage="s", xlen32=True)
    pa = s.page()
    iova = 0x8765_4321 & ~7
    pt.map(iova & ~0xFFF, pa)
    check_passes(s, 0x500, tc=TC_V | TC_SXL, fsc=pt.satp())
    expect_ok(s.t(0x500, iova), pa | (iova & 0xFFF))
    check_passes(s, 0x501, tc=TC_V)  # and SXL=0 stays legal
    expect_ok(s.t(0x501, IOVA), IOVA)


def test_dc_legal_gxl1_sv32x4() -> None:
    """fctl.GXL=1 at reset (System(fctl=4)), SXL=1, iohgatp Sv32x4: legal."""
    s = System(fctl=4)
    assert s.iommu.mmio_read(rv.REG.FCTL, 4) & 4
    g = s.gstage(SV32X4, xlen32=True)
    spa = s.page()
    gpa = 0x3_2100_0000
    g.map(gpa, spa)
    check_passes(s, 0x600, tc=TC_V | TC_SXL, iohgatp=g.satp(5))
    expect_ok(s.t(0x600, gpa | 0x40), spa | 0x40)


def test_dc_legal_qosid_widths() -> None:
    """Rule 22 boundary: RCID/MCID exactly as wide as supported are legal and are
    handed to the IO bridge."""
    s = make_system(params={"rcid_width": 4, "mcid_width": 12})
    check_passes(s, 0x700, tc=TC_V, ta=ta(rcid=0xF, mcid=0xFFF))
    rsp = s.t(0x700, IOVA)
    expect_ok(rsp, IOVA)
    assert (rsp.rcid, rsp.mcid) == (0xF, 0xFFF)


@pytest.mark.parametrize("sbe", [False, True])
def test_dc_legal_sbe_when_be_writable(sbe: bool) -> None:
    """Rule 21: fctl.BE writable (END=1, be_writable) -> SBE may be 0 or 1; the
    first-stage table is read in the SBE byte order."""
    s = make_system(params={"be_writable": True})
    pt = s.stage1(big=sbe)
    pa = s.page()
    pt.map(IOVA & ~0xFFF, pa)
    check_passes(s, 0x800, tc=TC_V | (TC_SBE if sbe else 0), fsc=pt.satp())
    expect_ok(s.t(0x800, IOVA), pa | (IOVA & 0xFFF))


def test_dc_legal_be_only_iommu_without_end() -> None:
    """Rule 19: END=0 with fctl.BE=1 (a big-endian-only IOMMU) and SBE=1 is legal."""
    s = System(fctl=1, end=False)
    pt = s.stage1(big=True)
    pa = s.page()
    pt.map(IOVA & ~0xFFF, pa)
    check_passes(s, 0x900, tc=TC_V | TC_SBE, fsc=pt.satp())
    expect_ok(s.t(0x900, IOVA), pa | (IOVA & 0xFFF))


def test_dc_legal_minimal_capabilities() -> None:
    """No ATS/T2GPA/AMO_HWAD/QOSID/END and base format: a plain Sv39 DC is legal."""
    caps = dict(ats=False, t2gpa=False, amo_hwad=False, qosid=False, end=False, msi_flat=False)
    s = make_system(caps)
    pt = s.stage1()
    pa = s.page()
    pt.map(IOVA & ~0xFFF, pa)
    check_passes(s, 0xA00, tc=TC_V | TC_DTF, fsc=pt.satp(), ta=ta(pscid=1))
    expect_ok(s.t(0xA00, IOVA), pa | (IOVA & 0xFFF))


# ---------------------------------------------------------------------------
# P2IOVA step 7 and step 8 (after the DC is located)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [Kind.TRANSLATED, Kind.ATS_TRANSLATION])
@pytest.mark.parametrize("access", list(Access))
def test_p2iova_step7_translated_without_en_ats(kind: Kind, access: Access) -> None:
    """P2IOVA step 7.1: Translated / ATS Translation request with DC.tc.EN_ATS=0 -> 260."""
    s = System()
    s.ddt.set_dc(0x11, tc=TC_V)
    expect_fault(s.t(0x11, IOVA, access, kind=kind), 260, 0x11, kind=kind, access=access)
    # untranslated requests from the same device are fine
    expect_ok(s.t(0x11, IOVA, access), IOVA)


@pytest.mark.parametrize("access", list(Access))
@pytest.mark.parametrize("priv", [False, True])
def test_p2iova_step7_process_id_without_pdtv(access: Access, priv: bool) -> None:
    """P2IOVA step 7.2: a valid process_id and DC.tc.PDTV=0 -> 260."""
    s = System()
    s.ddt.set_dc(0x12, tc=TC_V)
    rsp = s.t(0x12, IOVA, access, process_id=0, priv=priv)
    expect_fault(rsp, 260, 0x12, access=access, pid=0, priv=priv)
    expect_ok(s.t(0x12, IOVA, access), IOVA)


@pytest.mark.parametrize(
    "pdmode,widest,too_wide",
    [
        (PD8, 0xFF, [0x100, 0x1FF, 0x80000, 0xFFFFF]),
        (PD17, 0x1FFFF, [0x20000, 0x80000, 0xFFFFF]),
    ],
    ids=["PD8", "PD17"],
)
def test_p2iova_step7_process_id_wider_than_pdtp_mode(
    pdmode: int, widest: int, too_wide: list
) -> None:
    """P2IOVA step 7.3: process_id wider than pdtp.MODE supports (PD8: 8 bits,
    PD17: 17 bits) -> 260; the widest legal one reaches the PC."""
    s = System()
    pdt = s.pdt(mode=pdmode)
    pdt.set_pc(widest, fsc=0)
    s.ddt.set_dc(0x13, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    expect_ok(s.t(0x13, IOVA, process_id=widest), IOVA)
    for pid in too_wide:
        expect_fault(s.t(0x13, IOVA, process_id=pid), 260, 0x13, pid=pid)


def test_p2iova_step7_pd20_takes_every_process_id() -> None:
    """P2IOVA step 7.3: PD20 supports all 20 bits of process_id."""
    s = System()
    pdt = s.pdt(mode=PD20)
    pdt.set_pc(0xFFFFF, fsc=0)
    s.ddt.set_dc(0x14, tc=TC_V | TC_PDTV, fsc=pdt.pdtp())
    expect_ok(s.t(0x14, IOVA, process_id=0xFFFFF), IOVA)


def test_p2iova_step7_pdtp_bare_has_no_width_limit() -> None:
    """P2IOVA steps 7.3 and 13: pdtp.MODE=Bare has no process_id width; any process_id
    is translated with the first stage Bare."""
    s = System()
    s.ddt.set_dc(0x15, tc=TC_V | TC_PDTV, fsc=0)
    expect_ok(s.t(0x15, IOVA, process_id=0xFFFFF, priv=True), IOVA)


PAGE_FAULT = {Access.READ: 13, Access.WRITE: 15, Access.EXECUTE: 12}
GUEST_PAGE_FAULT = {Access.READ: 21, Access.WRITE: 23, Access.EXECUTE: 20}


@pytest.mark.parametrize("access", list(Access))
def test_p2iova_step8_translated_without_t2gpa_is_final(access: Access) -> None:
    """P2IOVA step 8: Translated request with T2GPA=0 -> done, address = IOVA, although
    DC.fsc / DC.iohgatp translate (here: fault) the same address untranslated."""
    s = System()
    s.ddt.set_dc(0x16, tc=TC_V | TC_EN_ATS, fsc=s.stage1().satp())
    s.ddt.set_dc(0x17, tc=TC_V | TC_EN_ATS, iohgatp=s.gstage().satp(1))
    for did in (0x16, 0x17):
        for addr in (IOVA, 0xFFFF_FFFF_FFFF_F008, 0):
            expect_ok(s.t(did, addr, access, kind=Kind.TRANSLATED), addr)
    # controls: untranslated, the empty first stage page-faults and the empty G-stage
    # guest-page-faults (iotval2 = the GPA)
    expect_fault(s.t(0x16, IOVA, access), PAGE_FAULT[access], 0x16, access=access)
    rsp = s.t(0x17, IOVA, access)
    assert fault(rsp) == rv.FaultRecord(
        cause=GUEST_PAGE_FAULT[access],
        ttyp=TTYP_OF[Kind.UNTRANSLATED, access],
        iotval=IOVA,
        iotval2=IOVA & ~3,
        device_id=0x17,
    )


# ---------------------------------------------------------------------------
# fault record fields
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind,access", list(TTYP_OF))
@pytest.mark.parametrize(
    "pid,priv", [(None, False), (None, True), (0x12345, False), (0xABCDE, True)]
)
def test_fault_record_fields_step5_260(
    kind: Kind, access: Access, pid: Optional[int], priv: bool
) -> None:
    """Fault-queue record: TTYP per request kind and access, iotval = IOVA, DID,
    PV/PID/PRIV (PID and PRIV are 0 when PV is 0), for a step-5 260."""
    s = make_system(params={"device_id_width": 16})
    did = 0xFE_DCBA
    iova = 0xDEAD_BEEF_CAFE_0FF0
    rsp = s.t(did, iova, access, kind=kind, process_id=pid, priv=priv)
    rec = fault(rsp)
    assert rec.ttyp == TTYP_VALUES[kind, access]
    assert rec == rv.FaultRecord(
        cause=260,
        ttyp=TTYP_VALUES[kind, access],
        iotval=iova,
        iotval2=0,
        device_id=did,
        process_id=pid or 0,
        pv=pid is not None,
        priv=priv and pid is not None,
    )
    assert rsp.status == UR and rsp.reported


def _setup_cause(s: System, cause: int, did: int) -> None:
    if cause == 256:
        set_ddtp_mode(s, rv.IommuMode.OFF)
    elif cause in (257, 268):
        addr = s.ddt.set_dc(did, tc=TC_V | TC_PDTV | TC_EN_ATS)
        kind = rv.MemoryFault.ACCESS_FAULT if cause == 257 else rv.MemoryFault.DATA_CORRUPTION
        s.mem.inject(addr, 8, kind)
    elif cause == 258:
        s.ddt.set_dc(did, tc=TC_PDTV | TC_EN_ATS)
    elif cause == 259:
        s.ddt.set_dc(did, tc=TC_V | TC_PDTV | TC_EN_ATS | (1 << 40))
    else:
        assert cause == 260
        s.ddt.set_dc(did, tc=TC_V | TC_EN_ATS)  # PDTV=0 and the request has a process_id


@pytest.mark.parametrize("cause", [256, 257, 258, 259, 260, 268])
@pytest.mark.parametrize("kind,access", list(TTYP_OF))
def test_fault_record_fields_per_cause(cause: int, kind: Kind, access: Access) -> None:
    """Fault-queue record for each device-directory cause: CAUSE, TTYP, iotval = IOVA,
    iotval2 = 0, DID, PV/PID/PRIV; status UR for 256-260, CA for 268."""
    s = System()
    did = 0x12_3456
    _setup_cause(s, cause, did)
    iova = 0x0123_4567_89AB_C000
    rsp = s.t(did, iova, access, kind=kind, process_id=0x9_8765, priv=True)
    expect_fault(rsp, cause, did, iova, kind, access, pid=0x9_8765, priv=True)


# ---------------------------------------------------------------------------
# DC.tc.DTF
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(Kind))
def test_dtf_suppresses_260(kind: Kind) -> None:
    """DC.tc.DTF=1: "Transaction type disallowed" (260: "Reported if DTF is 1?" No)
    is not reported, but the request still gets its error response."""
    s = System()
    s.ddt.set_dc(0x21, tc=TC_V | TC_DTF)
    pid = 7 if kind == Kind.UNTRANSLATED else None  # PDTV=0 / EN_ATS=0 -> 260
    rsp = s.t(0x21, IOVA, kind=kind, process_id=pid)
    expect_fault(rsp, 260, 0x21, kind=kind, pid=pid, reported=False)
    # control: the same fault with DTF=0 is reported
    s.ddt.set_dc(0x22, tc=TC_V)
    rsp = s.t(0x22, IOVA, kind=kind, process_id=pid)
    expect_fault(rsp, 260, 0x22, kind=kind, pid=pid, reported=True)


def test_dtf_258_with_dtf_bit_is_reported() -> None:
    """A DC with V=0 (DTF bit set) is not a valid DC: DTF is taken as 0 and 258 is
    reported (and 258 is "Reported if DTF is 1": Yes)."""
    s = System()
    s.ddt.set_dc(0x23, tc=TC_DTF | TC_EN_ATS)
    expect_fault(s.t(0x23, IOVA, kind=Kind.TRANSLATED), 258, 0x23, kind=Kind.TRANSLATED)


def test_dtf_259_with_dtf_bit_is_reported() -> None:
    """A misconfigured DC with DTF=1: 259 is reported."""
    s = System()
    s.ddt.set_dc(0x24, tc=TC_V | TC_DTF | (1 << 13))
    expect_fault(s.t(0x24, IOVA), 259, 0x24)


@pytest.mark.parametrize("cause", [257, 268])
def test_dtf_dc_load_faults_are_reported(cause: int) -> None:
    """A DC (holding DTF=1) that cannot be read: 257 / 268 are reported."""
    s = System()
    addr = s.ddt.set_dc(0x25, tc=TC_V | TC_DTF)
    kind = rv.MemoryFault.ACCESS_FAULT if cause == 257 else rv.MemoryFault.DATA_CORRUPTION
    s.mem.inject(addr + 8, 8, kind)
    expect_fault(s.t(0x25, IOVA), cause, 0x25)


def test_dtf_does_not_leak_to_the_next_request() -> None:
    """ "If a fault condition prevents locating a valid device context then the DTF value
    assumed for reporting such faults is 0": a step-5 260 right after a suppressed one
    from a DTF=1 device is reported."""
    s = make_system(params={"device_id_width": 12})
    s.ddt.set_dc(0x26, tc=TC_V | TC_DTF)
    expect_fault(s.t(0x26, IOVA, process_id=1), 260, 0x26, pid=1, reported=False)
    expect_fault(s.t(0x1026, IOVA), 260, 0x1026, reported=True)
    s.ddt.set_dc(0x27, tc=TC_DTF)
    expect_fault(s.t(0x26, IOVA, process_id=1), 260, 0x26, pid=1, reported=False)
    expect_fault(s.t(0x27, IOVA), 258, 0x27, reported=True)


def test_dtf_with_cached_dc_still_suppresses() -> None:
    """DTF comes from the DC also when the DC is served by the DDT cache."""
    s = System()
    s.ddt.set_dc(0x28, tc=TC_V | TC_DTF)
    expect_ok(s.t(0x28, IOVA), IOVA)
    assert 0x28 in s.iommu.ddt_cache
    rsp = s.t(0x28, IOVA, kind=Kind.TRANSLATED)
    expect_fault(rsp, 260, 0x28, kind=Kind.TRANSLATED, reported=False)


# ---------------------------------------------------------------------------
# byte order of the DDT and the DC (fctl.BE)
# ---------------------------------------------------------------------------
BE_DIDS = {1: 0x2A, 2: 0x2042, 3: 0x4_2042}


def _be_system(levels: int = 3) -> Tuple[System, int, int]:
    """A big-endian IOMMU (full caps: END=1, fctl.BE=1 at reset) with a DC that uses
    every doubleword: iosatp, iohgatp, ta, msiptp, mask/pattern."""
    s = System(fctl=1, levels=levels)
    assert s.iommu.mmio_read(rv.REG.FCTL, 4) & 1
    g = s.gstage()  # G-stage PTEs follow fctl.BE
    guest = s.guest(g)
    pt = s.stage1(space=guest, big=True)  # first-stage PTEs follow DC.tc.SBE
    spa = s.page()
    gpa = 0x5000_0000
    g.map(gpa, spa)
    pt.map(IOVA & ~0xFFF, gpa)
    msipt = s.msipt()
    did = BE_DIDS[levels]
    s.ddt.set_dc(
        did,
        tc=TC_V | TC_SBE | TC_GADE | TC_SADE,
        iohgatp=g.satp(0x321),
        ta=ta(pscid=0x12345, rcid=0x12, mcid=0x34),
        fsc=pt.satp(),
        msiptp=msipt.msiptp(),
        msi_addr_mask=0x3,
        msi_addr_pattern=0x7_0000,
    )
    return s, did, spa | (IOVA & 0xFFF)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_dc_read_big_endian(levels: int) -> None:
    """Leaf DDT entry: "The byte order of each of the doublewords in memory ... is the
    endianness as determined by fctl.BE": a big-endian DDT and DC translate."""
    s, did, spa = _be_system(levels)
    rsp = s.t(did, IOVA)
    expect_ok(rsp, spa)
    assert (rsp.rcid, rsp.mcid) == (0x12, 0x34)


def test_dc_little_endian_doubleword_in_big_endian_iommu_misconfigures() -> None:
    """With fctl.BE=1 a DC.ta stored little-endian is read byte-swapped
    (0x0050341200124003): reserved bits 11:0 are set -> rule 1 -> 259."""
    s, did, _ = _be_system()
    addr = s.ddt.dc_addr(did)
    value = ta(pscid=0x12345, rcid=0x12, mcid=0x34)
    s.mem.write_u64(addr + 16, value, big_endian=False)
    seen = s.mem.read_u64(addr + 16, big_endian=True)
    words = [s.mem.read_u64(addr + 8 * k, big_endian=True) for k in range(8)]
    assert words[2] == seen == int.from_bytes(value.to_bytes(8, "little"), "big")
    assert dc_misconfigured(s.iommu, tuple(words)) == 1
    expect_fault(s.t(did, IOVA), 259, did)


def test_big_endian_dc_bytes_in_little_endian_iommu() -> None:
    """The same bytes read little-endian (fctl.BE=0): DC.tc.V lands in bit 56, so the
    DC is not valid (258); decoded LE, the doublewords break the DC rules."""
    s, did, _ = _be_system(levels=1)
    addr = s.ddt.dc_addr(did)
    io = rv.Iommu(s.mem, capabilities=s.caps, fctl=0)
    io.mmio_write(rv.REG.DDTP, s.ddt.ddtp)
    expect_fault(io.translate(rv.Request(device_id=did, addr=IOVA)), 258, did)
    le = [s.mem.read_u64(addr + 8 * k) for k in range(8)]
    assert not le[0] & TC_V
    assert dc_misconfigured(io, tuple([le[0] | TC_V] + le[1:])) == 1


def test_big_endian_nonleaf_ddte_in_little_endian_iommu() -> None:
    """GET_DC step 5 with the byte order wrong: a big-endian ddte read little-endian
    has V=0 -> 258."""
    s, did, _ = _be_system(levels=3)
    io = rv.Iommu(s.mem, capabilities=s.caps, fctl=0)
    io.mmio_write(rv.REG.DDTP, s.ddt.ddtp)
    expect_fault(io.translate(rv.Request(device_id=did, addr=IOVA)), 258, did)


def test_little_endian_dc_in_big_endian_iommu_not_valid() -> None:
    """A DC.tc written little-endian (V in byte 0) read big-endian has V in bit 56."""
    s = System(fctl=1, levels=1)
    addr = s.ddt.dc_addr(5)
    s.mem.write_u64(addr, TC_V | TC_SBE, big_endian=False)
    expect_fault(s.t(5, IOVA), 258, 5)
    s.mem.write_u64(addr, TC_V | TC_SBE, big_endian=True)
    expect_ok(s.t(5, IOVA), IOVA)


# ---------------------------------------------------------------------------
# DDT cache (IOATC for the DDT; tag device_id; IODIR.INVAL_DDT)
# ---------------------------------------------------------------------------
def _first_stage_dc(s: System, did: int) -> Tuple[Dict[str, int], int]:
    """A first-stage DC mapping IOVA to a fresh page; returns it and the SPA."""
    pt = s.stage1()
    pa = s.page()
    pt.map(IOVA & ~0xFFF, pa)
    return {"tc": TC_V, "fsc": pt.satp()}, pa | (IOVA & 0xFFF)


def test_ddt_cache_change_not_seen_until_invalidate() -> None:
    """Caching: the IOMMU does not observe DC updates until IODIR.INVAL_DDT for the
    device_id (Iommu.invalidate_ddt)."""
    s = System()
    s.ddt.set_dc(0x31, tc=TC_V)
    expect_ok(s.t(0x31, IOVA), IOVA)
    new, pa = _first_stage_dc(s, 0x31)
    s.ddt.set_dc(0x31, **new)
    expect_ok(s.t(0x31, IOVA), IOVA)  # stale, cached DC
    s.iommu.invalidate_ddt(0x32)  # another device_id: no effect
    expect_ok(s.t(0x31, IOVA), IOVA)
    s.iommu.invalidate_ddt(0x31)
    expect_ok(s.t(0x31, IOVA), pa)


def test_ddt_cache_invalidate_all() -> None:
    """IODIR.INVAL_DDT with DV=0: every cached DC is dropped."""
    s = System()
    s.ddt.set_dc(0x41, tc=TC_V)
    s.ddt.set_dc(0x42, tc=TC_V)
    expect_ok(s.t(0x41, IOVA), IOVA)
    expect_ok(s.t(0x42, IOVA), IOVA)
    s.ddt.set_dc(0x41, tc=0)
    s.ddt.set_dc(0x42, tc=TC_V | (1 << 20))
    expect_ok(s.t(0x41, IOVA), IOVA)
    expect_ok(s.t(0x42, IOVA), IOVA)
    s.iommu.invalidate_ddt()
    expect_fault(s.t(0x41, IOVA), 258, 0x41)
    expect_fault(s.t(0x42, IOVA), 259, 0x42)


def test_ddt_cache_invalidating_a_device_becomes_not_valid() -> None:
    """A DC made invalid (V=0) is seen as 258 after the invalidation."""
    s = System()
    s.ddt.set_dc(0x43, tc=TC_V)
    expect_ok(s.t(0x43, IOVA), IOVA)
    s.ddt.set_dc(0x43, tc=0)
    expect_ok(s.t(0x43, IOVA), IOVA)
    s.iommu.invalidate_ddt(0x43)
    expect_fault(s.t(0x43, IOVA), 258, 0x43)


def test_ddt_cache_size_zero_sees_changes_at_once() -> None:
    """IommuParams(ddt_cache_size=0): no DDT cache, every request walks."""
    s = make_system(params={"ddt_cache_size": 0})
    s.ddt.set_dc(0x51, tc=TC_V)
    expect_ok(s.t(0x51, IOVA), IOVA)
    new, pa = _first_stage_dc(s, 0x51)
    s.ddt.set_dc(0x51, **new)
    expect_ok(s.t(0x51, IOVA), pa)
    s.ddt.set_dc(0x51, tc=0)
    expect_fault(s.t(0x51, IOVA), 258, 0x51)
    assert not s.iommu.ddt_cache


def test_ddt_cache_capacity_one_evicts() -> None:
    """IommuParams(ddt_cache_size=1): caching device B evicts device A, so A's change
    is seen without an invalidation while B's is not."""
    # iotlb_size=0 turns the IOTLB and the whole-response front cache off, so only the
    # DDT cache can hold a DC
    s = make_system(params={"ddt_cache_size": 1, "iotlb_size": 0})
    s.ddt.set_dc(0x61, tc=TC_V)
    s.ddt.set_dc(0x62, tc=TC_V)
    expect_ok(s.t(0x61, IOVA), IOVA)
    expect_ok(s.t(0x62, IOVA), IOVA)  # evicts 0x61
    new_a, pa_a = _first_stage_dc(s, 0x61)
    new_b, _ = _first_stage_dc(s, 0x62)
    s.ddt.set_dc(0x62, **new_b)
    expect_ok(s.t(0x62, IOVA), IOVA)  # 0x62 still cached: stale
    s.ddt.set_dc(0x61, **new_a)
    expect_ok(s.t(0x61, IOVA), pa_a)  # 0x61 was evicted: walks again
    assert list(s.iommu.ddt_cache) == [0x61]


def test_ddt_cache_does_not_hold_invalid_dc() -> None:
    """Caching: a DC whose V bit is clear must not be cached, so making it valid is
    seen at once."""
    s = System()
    s.ddt.set_dc(0x71, tc=0)
    expect_fault(s.t(0x71, IOVA), 258, 0x71)
    s.ddt.set_dc(0x71, tc=TC_V)
    expect_ok(s.t(0x71, IOVA), IOVA)


def test_ddt_cache_does_not_hold_invalid_nonleaf() -> None:
    """Caching: non-leaf DDT entries with V=0 are not cached either."""
    s = System(levels=3)
    s.ddt.set_dc(DID, tc=TC_V)
    a = s.ddt.nonleaf_addr(DID, 2)
    good = s.mem.read_u64(a)
    s.mem.write_u64(a, 0)
    expect_fault(s.t(DID, IOVA), 258, DID)
    s.mem.write_u64(a, good)
    expect_ok(s.t(DID, IOVA), IOVA)


def test_ddt_cache_does_not_hold_misconfigured_dc() -> None:
    """docs/translation.md "Caches": misconfigured DCs are not cached (model choice)."""
    s = System()
    s.ddt.set_dc(0x72, tc=TC_V | TC_DPE)
    expect_fault(s.t(0x72, IOVA), 259, 0x72)
    s.ddt.set_dc(0x72, tc=TC_V)
    expect_ok(s.t(0x72, IOVA), IOVA)


# ---------------------------------------------------------------------------
# hypothesis: guest/software-controlled DC contents never crash the model
# ---------------------------------------------------------------------------
u64 = st.integers(0, (1 << 64) - 1)
ALL_CAUSES = {int(c) for c in Cause}

_LEGAL_BITS = (
    F.DC_TC.all & ~F.DC_TC.reserved,
    F.IOHGATP.all & ~F.IOHGATP.reserved,
    F.DC_TA.all & ~F.DC_TA.reserved,
    F.IOSATP.all & ~F.IOSATP.reserved,
    F.MSIPTP.all & ~F.MSIPTP.reserved,
    F.MSI_ADDR_MASK.all & ~F.MSI_ADDR_MASK.reserved,
    F.MSI_ADDR_PATTERN.all & ~F.MSI_ADDR_PATTERN.reserved,
    0,
)


_NEAR = st.integers(0x80000, 0x80040)  # PPNs of the allocator's first pages (DDT, ...)


@st.composite
def plausible_dc(draw: Any) -> list:
    """DC doublewords with legal-looking fields pointing into populated memory."""
    b = st.booleans()
    pdtv = draw(b)
    gmode = draw(st.sampled_from([0, 0, SV39X4, SV48X4, SV57X4]))
    en_ats = draw(b)
    en_pri = en_ats and draw(b)
    tc = TC_V | (TC_PDTV if pdtv else 0) | (TC_DTF if draw(b) else 0)
    tc |= (TC_EN_ATS if en_ats else 0) | (TC_EN_PRI if en_pri else 0)
    tc |= TC_PRPR if en_pri and draw(b) else 0
    tc |= TC_T2GPA if en_ats and gmode and draw(b) else 0
    tc |= TC_DPE if pdtv and draw(b) else 0
    tc |= draw(st.sampled_from([0, TC_GADE, TC_SADE, TC_GADE | TC_SADE]))
    smodes = [0, PD8, PD17, PD20] if pdtv else [0, SV39, SV48, SV57]
    return [
        tc,
        G(gmode, draw(_NEAR) & ~3, draw(st.integers(0, 0xFFFF))),
        ta(draw(st.integers(0, 0xFFFFF)), draw(st.integers(0, 0xFFF)), draw(st.integers(0, 0xFFF))),
        F.IOSATP.encode(MODE=draw(st.sampled_from(smodes)), PPN=draw(_NEAR)),
        M(draw(st.sampled_from([0, 1])) if gmode else 0, draw(_NEAR)),
        draw(st.integers(0, (1 << 20) - 1)),
        draw(st.integers(0, (1 << 30) - 1)),
        0,
    ]


_pte_like = st.builds(
    lambda ppn, low, top: (ppn << 10) | low | (top << 54),
    _NEAR,
    st.integers(0, 0x3FF),
    st.sampled_from([0, 0, 0, 1, 0x80, 0x200]),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    flat=st.booleans(),
    levels=st.sampled_from([1, 2, 3]),
    words=st.one_of(st.lists(u64, min_size=8, max_size=8), plausible_dc()),
    tame=st.booleans(),
    scatter=st.lists(
        st.tuples(st.integers(0, 0x40), st.integers(0, 511), st.one_of(u64, _pte_like)),
        max_size=24,
    ),
    did=st.integers(0, (1 << 24) - 1),
    fit=st.booleans(),
    nonleaf=st.one_of(st.none(), u64),
    addr=st.one_of(u64, st.integers(0, 1 << 40), st.integers(0, 1 << 24)),
    access=st.sampled_from(list(Access)),
    kind=st.sampled_from(list(Kind)),
    pid=st.one_of(st.none(), st.integers(0, (1 << 20) - 1), st.integers(0, 0x1FF)),
    priv=st.booleans(),
    length=st.one_of(st.just(8), st.integers(0, 8192)),
    no_write=st.booleans(),
    data=st.one_of(st.none(), st.integers(0, (1 << 32) - 1)),
)
def test_random_dc_never_raises(
    flat: bool,
    levels: int,
    words: list,
    tame: bool,
    scatter: list,
    did: int,
    fit: bool,
    nonleaf: Optional[int],
    addr: int,
    access: Access,
    kind: Kind,
    pid: Optional[int],
    priv: bool,
    length: int,
    no_write: bool,
    data: Optional[int],
) -> None:
    """Any 64-bit values in every DC doubleword (and a non-leaf ddte, and PTE-like
    values scattered over the first pages), any device_id and request: translate()
    returns a Response, never raises; a fault has a cause from rv.Cause and the fault
    record names the request."""
    params = rv.IommuParams(ddt_cache_size=0, pdt_cache_size=0)
    s = System(levels=levels, msi_flat=flat, params=params)
    if fit:  # keep the device_id inside what the DDT mode supports
        width = {1: 6, 2: 15, 3: 24}[levels] + (0 if flat else 1)
        did &= (1 << min(width, 24)) - 1
    if tame:  # mostly legal fields, to get past the DC checks more often
        words = [w & m for w, m in zip(words, _LEGAL_BITS, strict=True)]
        words[0] |= TC_V
    names = ("tc", "iohgatp", "ta", "fsc", "msiptp", "msi_addr_mask", "msi_addr_pattern")
    s.ddt.set_dc(did, reserved=words[7], **dict(zip(names, words[:7], strict=True)))
    if nonleaf is not None and levels > 1:
        s.mem.write_u64(s.ddt.nonleaf_addr(did, 1), nonleaf)
    for page, slot, value in scatter:
        s.mem.write_u64(((0x80000 + page) << 12) + slot * 8, value)
    req = rv.Request(
        device_id=did,
        addr=addr,
        access=access,
        process_id=pid,
        priv=priv,
        kind=kind,
        length=length,
        no_write=no_write,
        data=data,
    )
    rsp = s.iommu.translate(req)
    assert isinstance(rsp, rv.Response)
    assert rsp.status in set(rv.Status)
    if rsp.fault is None:
        assert rsp.status == OK
        return
    rec = rsp.fault
    assert rec.cause in ALL_CAUSES
    assert rec.device_id == did and rec.iotval == addr
    assert rec.ttyp == TTYP_OF[kind, access]
    assert rec.pv == (pid is not None) and rec.process_id == (pid or 0)
    if rec.cause in UR_CAUSES:
        assert rsp.status == UR
    elif rsp.status == OK:
        assert kind == Kind.ATS_TRANSLATION and not rsp.reported and not (rsp.r or rsp.w)
    else:
        assert rsp.status == CA
    if rsp.reported is False and rsp.status != OK:
        assert not Cause(rec.cause).reported_if_dtf


@pytest.mark.parametrize(
    "params,dc,fieldname,text",
    [
        (
            {"gscid_width": 4},
            {"iohgatp": G(gscid=0x10)},
            "DC.iohgatp.GSCID",
            "DC.iohgatp.GSCID is wider than the 4 implemented bits",
        ),
        (
            {"pscid_width": 8},
            {"ta": ta(pscid=0x100)},
            "DC.ta.PSCID",
            "DC.ta.PSCID is wider than the 8 implemented bits",
        ),
        ({}, {"ta": 1 << 11}, "DC.ta", "DC.ta has reserved bits set (0x800)"),
    ],
)
def test_dc_rule1_names_the_offending_field(
    params: Dict[str, Any], dc: Dict[str, int], fieldname: str, text: str
) -> None:
    """The reason of a rule-1 fault names the field and why (the explain view's 'why')."""
    from riscv_iommu.ddt import dc_rule_why

    s = make_system(None, params)
    assert dc_rule_why(s.iommu, dc_tuple(s, tc=TC_V, **dc), 1) == (
        "DC_MISCONFIG",
        "1",
        fieldname,
        text,
    )


# ---------------------------------------------------------------------------
# GET_DC step 10: locate_dc tests the common case first (one test per field that
# the DC has nothing any rule looks at) and runs every rule only otherwise; the
# outcome must be the rule-by-rule one for every configuration and DC
# ---------------------------------------------------------------------------
_TC_FLAGS = [
    TC_EN_ATS,
    TC_EN_PRI,
    TC_T2GPA,
    TC_DTF,
    TC_PDTV,
    TC_PRPR,
    TC_GADE,
    TC_SADE,
    TC_DPE,
    TC_SBE,
    TC_SXL,
]
# capability sets to turn off (Sv48 needs Sv39 and Sv57 needs Sv48)
_CAPS_OFF = [
    (),
    ("ats",),
    ("t2gpa",),
    ("amo_hwad",),
    ("end",),
    ("qosid",),
    ("sv57", "sv57x4", "pd20"),
    ("sv39", "sv48", "sv57", "sv32", "sv39x4", "pd8", "pd17"),
    ("sv32x4", "sv48x4", "sv57x4", "msi_flat"),
    ("msi_flat", "end", "amo_hwad"),
]


@st.composite
def clean_dc(draw: Any, io: rv.Iommu) -> list:
    """DC doublewords that break no rule under the configuration of ``io``."""
    pdtv = draw(st.booleans())
    tc = TC_V | (TC_PDTV if pdtv else 0) | (TC_SBE if io.be else 0) | (TC_SXL if io.gxl else 0)
    tc |= draw(st.sampled_from([0, TC_DTF]))
    if io.caps.ats:
        tc |= draw(st.sampled_from([0, TC_EN_ATS, TC_EN_ATS | TC_EN_PRI]))
    if io.caps.amo_hwad:
        tc |= draw(st.sampled_from([0, TC_GADE, TC_SADE | TC_GADE]))
    gmode = draw(st.sampled_from(sorted(io.g_modes)))
    gscid = draw(st.integers(0, (1 << io.gscid_width) - 1))
    iohgatp = F.IOHGATP.encode(MODE=gmode, GSCID=gscid, PPN=draw(_NEAR) & ~3)
    smode = draw(st.sampled_from(sorted(io.pd_modes if pdtv else io.s_modes[io.gxl])))
    fsc = F.IOSATP.encode(MODE=smode, PPN=draw(_NEAR))
    qos = io.caps.qosid
    dc_ta = ta(
        draw(st.integers(0, (1 << io.pscid_width) - 1)),
        draw(st.integers(0, (1 << io.rcid_width) - 1)) if qos else 0,
        draw(st.integers(0, (1 << io.mcid_width) - 1)) if qos else 0,
    )
    legal = ((1 << 64) - 1) & ~io.msi_mask_reserved
    msi = [0, 0, 0, 0]
    if io.caps.msi_flat:
        mode = draw(st.sampled_from([0, 1])) if gmode else 0
        msi = [M(mode, draw(_NEAR)), draw(u64) & legal, draw(u64) & legal, 0]
    return [tc, iohgatp, dc_ta, fsc, *msi]


# one change to a clean DC: a DC.tc flag, a reserved bit (the n-th set bit of the
# doubleword's reserved bits, modulo their number), any bit of any doubleword, a
# MODE field, or a GSCID / PSCID / RCID / MCID value
_TC_CHANGE = st.tuples(st.just("tc"), st.sampled_from(_TC_FLAGS))
_CHANGE = st.one_of(
    _TC_CHANGE,
    _TC_CHANGE,
    _TC_CHANGE,
    st.tuples(st.just("rsv"), st.tuples(st.integers(0, 7), st.integers(0, 63))),
    st.tuples(st.just("bit"), st.tuples(st.integers(0, 7), st.integers(0, 63))),
    st.tuples(st.just("mode"), st.tuples(st.sampled_from([1, 3, 4]), st.integers(0, 15))),
    st.tuples(
        st.just("id"),
        st.tuples(
            st.sampled_from([(1, F.IOHGATP.GSCID), (2, F.DC_TA.PSCID), (2, F.DC_TA.RCID)]),
            st.integers(0, 0xFFFF),
        ),
    ),
    st.tuples(st.just("id"), st.tuples(st.just((2, F.DC_TA.MCID)), st.integers(0, 0xFFF))),
)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    caps_off=st.sampled_from(_CAPS_OFF),
    gipc=st.booleans(),
    fctl=st.sampled_from([0, 1, 4, 5]),
    widths=st.sampled_from([(16, 20, 12), (4, 8, 2), (15, 19, 11), (1, 1, 1)]),
    writable=st.tuples(st.booleans(), st.booleans()),
    changes=st.lists(_CHANGE, max_size=2),
    did=st.integers(0, (1 << 24) - 1),
    data=st.data(),
)
def test_locate_dc_outcome_is_the_rule_by_rule_outcome(
    caps_off: Tuple[str, ...],
    gipc: bool,
    fctl: int,
    widths: Tuple[int, int, int],
    writable: Tuple[bool, bool],
    changes: list,
    did: int,
    data: Any,
) -> None:
    """GET_DC step 10: whatever the configuration and the DC (one that breaks no rule,
    changed in up to two places), locate_dc returns the DC exactly when
    dc_misconfigured finds no rule broken, and otherwise stops with "DDT entry
    misconfigured" (259) and the reason of the first rule broken."""
    from riscv_iommu._fault import Fault
    from riscv_iommu.ddt import dc_rule_why, locate_dc

    caps = {name: False for name in caps_off}
    caps["gipc"] = gipc
    params = {
        "gscid_width": widths[0],
        "pscid_width": widths[1],
        "rcid_width": widths[2],
        "mcid_width": widths[2],
        "be_writable": writable[0],
        "gxl_writable": writable[1],
    }
    s = make_system(caps, params, fctl)
    io = s.iommu
    words = data.draw(clean_dc(io))
    assert dc_misconfigured(io, tuple(words)) == 0
    reserved = (
        io.tc_reserved,
        F.IOHGATP.PPN.mask & 3,  # not reserved: the root must be 16-KiB aligned (rule 17)
        io.ta_reserved,
        F.IOSATP.reserved,
        F.MSIPTP.reserved,
        io.msi_mask_reserved,
        io.msi_mask_reserved,
        (1 << 64) - 1,
    )
    for what, arg in changes:
        if what == "tc":
            words[0] ^= arg
        elif what == "rsv":
            bits = [b for b in range(64) if reserved[arg[0]] >> b & 1]
            words[arg[0]] |= 1 << bits[arg[1] % len(bits)] if bits else 0
        elif what == "bit":
            words[arg[0]] ^= 1 << arg[1]
        elif what == "mode":
            words[arg[0]] = F.IOSATP.MODE.put(words[arg[0]], arg[1])
        else:
            (word, field), value = arg
            words[word] = field.put(words[word], value & field.max)
    if gipc and data.draw(st.booleans()):
        words[0] |= io.gipc_tc  # [GIPC] DC.tc.GIPC
    words[0] |= TC_V
    names = ("tc", "iohgatp", "ta", "fsc", "msiptp", "msi_addr_mask", "msi_addr_pattern")
    s.ddt.set_dc(did, reserved=words[7], **dict(zip(names, words[:7], strict=True)))
    dc = tuple(words if s.caps.msi_flat else words[:4] + [0, 0, 0, 0])
    rule = dc_misconfigured(io, dc)
    try:
        got = locate_dc(io, did)
    except Fault as f:
        assert rule, f.why
        assert (f.cause, f.why) == (259, dc_rule_why(io, dc, rule))
    else:
        assert rule == 0
        assert got == dc
