"""The public API edge: capabilities, parameters, constructor and request validation,
fault records, enumerations, the first registers, error injection and page crossing.

Spec: iommu_registers.adoc "IOMMU capabilities (capabilities)" (CAP), "Features-control
register (fctl)" (FCTRL), "Device-directory-table pointer (ddtp)" (DDTP);
iommu_in_memory_queues.adoc "Fault/Event-Queue (FQ)" (fault record, CAUSE table,
TTYP table); iommu_data_structures.adoc "Process to translate an IOVA" (P2IOVA),
"PCIe ATS translation request handling" (ATS_FAULTS); iommu_hw_guidelines.adoc
"Reliability, Availability, and Serviceability" (internal data path error, cause 272).
API contract: /work/shared/design/api.md and docs/api.md.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any, Dict, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import TC_DTF, TC_EN_ATS, TC_V, System, type_error
from riscv_iommu import formats as F

Cause = rv.Cause
Ttyp = rv.Ttyp
Access = rv.Access
Kind = rv.RequestKind
OK = rv.Status.SUCCESS
CA = rv.Status.COMPLETER_ABORT
UR = rv.Status.UNSUPPORTED_REQUEST
M32 = 0xFFFFFFFF

# --------------------------------------------------------------------------
# Capabilities
# --------------------------------------------------------------------------
#: Capabilities attribute -> bit, from the spec's capabilities table (CAP).
FLAG_BITS: Dict[str, int] = {
    "sv32": 8,
    "sv39": 9,
    "sv48": 10,
    "sv57": 11,
    "svrsw60t59b": 14,
    "svpbmt": 15,
    "sv32x4": 16,
    "sv39x4": 17,
    "sv48x4": 18,
    "sv57x4": 19,
    "amo_mrif": 21,
    "msi_flat": 22,
    "msi_mrif": 23,
    "amo_hwad": 24,
    "ats": 25,
    "t2gpa": 26,
    "end": 27,
    "hpm": 30,
    "dbg": 31,
    "pd8": 38,
    "pd17": 39,
    "pd20": 40,
    "qosid": 41,
    "nl": 42,
    "s": 43,
}
# version 0x10 (1.0) in 7:0, PAS 56 in 37:32
BASE_RAW = 0x10 | (56 << 32)


def test_default_capabilities_raw_is_version_1_0_and_pas_56() -> None:
    """CAP: version 7:0 (0x10 for version 1.0), PAS 37:32; everything else absent."""
    assert rv.Capabilities().raw == BASE_RAW


@pytest.mark.parametrize("flag", sorted(FLAG_BITS))
def test_each_capability_flag_is_at_its_spec_bit(flag: str) -> None:
    """CAP table: one bit per feature."""
    needs = {"sv48": {"sv39": True}, "sv57": {"sv39": True, "sv48": True}}.get(flag, {})
    caps = rv.Capabilities(**{flag: True}, **needs)
    implied = sum(1 << FLAG_BITS[f] for f in needs)
    assert caps.raw == BASE_RAW | (1 << FLAG_BITS[flag]) | implied
    assert getattr(rv.Capabilities.from_raw(caps.raw), flag) is True


@pytest.mark.parametrize(("igs", "raw"), [(rv.IGS.MSI, 0), (rv.IGS.WSI, 1), (rv.IGS.BOTH, 2)])
def test_igs_is_bits_29_28(igs: rv.IGS, raw: int) -> None:
    assert rv.Capabilities(igs=igs).raw == BASE_RAW | (raw << 28)
    assert rv.Capabilities.from_raw(BASE_RAW | (raw << 28)).igs == igs


def test_pas_version_and_custom_fields() -> None:
    caps = rv.Capabilities(version=0x21, pas=39, custom=0xA5)
    assert caps.raw == 0x21 | (39 << 32) | (0xA5 << 56)
    assert rv.Capabilities.from_raw(caps.raw) == caps


def test_full_capabilities_raw() -> None:
    """Capabilities.full(): every feature, IGS=BOTH, PAS=56."""
    raw = BASE_RAW | (2 << 28)
    for b in FLAG_BITS.values():
        raw |= 1 << b
    assert rv.Capabilities.full().raw == raw
    assert rv.Capabilities.full(ats=False).raw == raw & ~(1 << 25)


def test_gipc_is_bit_44_by_default() -> None:
    """GIPC proposal: capabilities.GIPC at bit 44 (project decision #1) by default."""
    caps = rv.Capabilities(gipc=True)
    assert caps.gipc_bit == 44 == rv.capabilities.DEFAULT_GIPC_CAP_BIT
    assert caps.raw == BASE_RAW | (1 << 44)
    back = rv.Capabilities.from_raw(caps.raw)
    assert (back.gipc, back.gipc_bit) == (True, 44)
    assert rv.Capabilities.from_raw(caps.raw, gipc_bit=45).gipc is False


@pytest.mark.parametrize("bit", [45, 55, 56, 63])
def test_gipc_at_a_custom_bit(bit: int) -> None:
    caps = rv.Capabilities(gipc=True, gipc_bit=bit)
    assert caps.raw == BASE_RAW | (1 << bit)
    back = rv.Capabilities.from_raw(caps.raw, gipc_bit=bit)
    assert back == caps
    assert back.custom == 0  # a GIPC bit in the custom field is not also custom


@pytest.mark.parametrize("bit", [0, 8, 40, 43, 64])
def test_gipc_bit_must_be_reserved_or_custom(bit: int) -> None:
    with pytest.raises(ValueError, match="gipc_bit"):
        rv.Capabilities(gipc_bit=bit)


def test_gipc_at_bit_41_raw() -> None:
    """The 2024 GIPC text put GIPC at bit 41 (QOSID in the ratified spec)."""
    assert rv.Capabilities(gipc=True, gipc_bit=41).raw == BASE_RAW | (1 << 41)


def test_gipc_at_bit_41_from_raw() -> None:
    caps = rv.Capabilities(gipc=True, gipc_bit=41)
    assert rv.Capabilities.from_raw(caps.raw, gipc_bit=41) == caps


def test_gipc_bit_41_collides_with_qosid() -> None:
    with pytest.raises(ValueError, match="gipc_bit 41 collides with QOSID"):
        rv.Capabilities(qosid=True, gipc_bit=41)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"sv48": True}, "Sv48"),
        ({"sv39": True, "sv57": True}, "Sv57"),
        ({"igs": 3}, "igs"),
        ({"pas": 0}, "pas"),
        ({"pas": 64}, "pas"),
        ({"version": 0x100}, "version"),
        ({"version": -1}, "version"),
        ({"custom": 0x100}, "custom"),
    ],
)
def test_capabilities_validation_errors(kw: Dict[str, Any], match: str) -> None:
    """CAP: 'When Sv48 is set, Sv39 must be set', 'When Sv57 is set, Sv48 must be set',
    IGS=3 is reserved, PAS is a 6-bit size; version/custom are 8 bits."""
    with pytest.raises(ValueError, match=match):
        rv.Capabilities(**kw)


def test_capabilities_flag_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="sv39"):
        rv.Capabilities(sv39="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (-1, "64-bit"),
        (1 << 64, "64-bit"),
        (BASE_RAW | (3 << 28), "igs"),
        (0x10, "pas"),  # PAS = 0
        (BASE_RAW | (1 << 10), "Sv48"),
    ],
)
def test_from_raw_validation_errors(raw: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rv.Capabilities.from_raw(raw)


def test_from_raw_ignores_reserved_bits() -> None:
    """Reserved bits 13:12, 20 and 55:45 decode to nothing (GIPC at 44 aside)."""
    reserved = (3 << 12) | (1 << 20) | (((1 << 11) - 1) << 45)
    assert rv.Capabilities.from_raw(BASE_RAW | reserved) == rv.Capabilities()


def test_replace_and_full_overrides() -> None:
    caps = rv.Capabilities.full(ats=False, pas=40)
    assert (caps.ats, caps.pas, caps.sv57) == (False, 40, True)
    assert caps.replace(ats=True) == rv.Capabilities.full(pas=40)
    with pytest.raises(ValueError, match="Sv48"):
        rv.Capabilities.full().replace(sv39=False)


@st.composite
def capabilities(draw: st.DrawFn) -> rv.Capabilities:
    kw: Dict[str, Any] = {f: draw(st.booleans()) for f in FLAG_BITS}
    if kw["sv57"]:
        kw["sv48"] = True
    if kw["sv48"]:
        kw["sv39"] = True
    kw["version"] = draw(st.integers(0, 0xFF))
    kw["igs"] = draw(st.sampled_from(list(rv.IGS)))
    kw["pas"] = draw(st.integers(1, 63))
    gipc_bit = draw(st.integers(44, 63))  # 41: see test_gipc_at_bit_41_from_raw
    kw["gipc_bit"] = gipc_bit
    kw["gipc"] = draw(st.booleans())
    custom = draw(st.integers(0, 0xFF))
    if gipc_bit >= 56:
        custom &= ~(1 << (gipc_bit - 56))  # that custom bit is GIPC's
    kw["custom"] = custom
    return rv.Capabilities(**kw)


@given(caps=capabilities())
@settings(max_examples=300, deadline=None)
def test_capabilities_raw_from_raw_round_trip(caps: rv.Capabilities) -> None:
    raw = caps.raw
    assert 0 <= raw < 1 << 64
    assert raw & F.CAPABILITIES.reserved & ~(1 << caps.gipc_bit) == 0
    assert rv.Capabilities.from_raw(raw, gipc_bit=caps.gipc_bit) == caps
    # each decoded field matches the register
    C = F.CAPABILITIES
    assert C.version.get(raw) == caps.version
    assert C.PAS.get(raw) == caps.pas
    assert C.IGS.get(raw) == caps.igs
    for flag, b in FLAG_BITS.items():
        assert (raw >> b) & 1 == int(getattr(caps, flag))
    assert (raw >> caps.gipc_bit) & 1 == int(caps.gipc)


# --------------------------------------------------------------------------
# IommuParams
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"hpm_counters": 32}, "hpm_counters"),
        ({"hpm_counters": -1}, "hpm_counters"),
        ({"hpm_counter_width": 31}, "hpm_counter_width"),
        ({"hpm_counter_width": 65}, "hpm_counter_width"),
        ({"interrupt_vectors": 0}, "interrupt_vectors"),
        ({"interrupt_vectors": 17}, "interrupt_vectors"),
        ({"reset_iommu_mode": rv.IommuMode.LVL1}, "reset_iommu_mode"),
        ({"max_iommu_mode": rv.IommuMode.OFF}, "max_iommu_mode"),
        ({"max_iommu_mode": 5}, "max_iommu_mode"),
        ({"device_id_width": 0}, "device_id_width"),
        ({"device_id_width": 25}, "device_id_width"),
        ({"gscid_width": 17}, "gscid_width"),
        ({"gscid_width": 0}, "gscid_width"),
        ({"pscid_width": 21}, "pscid_width"),
        ({"rcid_width": 13}, "rcid_width"),
        ({"mcid_width": 0}, "mcid_width"),
        ({"ddt_cache_size": -1}, "ddt_cache_size"),
        ({"pdt_cache_size": -1}, "pdt_cache_size"),
        ({"iotlb_size": -1}, "iotlb_size"),
        ({"cache_policy": "random"}, "cache_policy"),
        ({"bare_range_size": 2048}, "bare_range_size"),
        ({"bare_range_size": 3 << 12}, "bare_range_size"),
        ({"bare_range_size": 1 << 57}, "bare_range_size"),
        ({"bare_range_size": 1 << 63}, "bare_range_size"),
        ({"gipc_revision": "2023"}, "gipc_revision"),
        ({"gipc_tc_bit": 11}, "gipc_tc_bit"),
        ({"gipc_tc_bit": 0}, "gipc_tc_bit"),
        ({"gipc_tc_bit": 64}, "gipc_tc_bit"),
        ({"bare_page_sizes": {"Sv40": 4096}}, "bare_page_sizes"),
        ({"bare_page_sizes": {"Sv39": 2048}}, "bare_page_sizes"),
        ({"bare_page_sizes": {"Sv39x4": 3 << 20}}, "bare_page_sizes"),
        ({"bare_page_sizes": {"Sv57": 1 << 64}}, "bare_page_sizes"),
        ({"bare_page_sizes": {"Sv57x4": 1 << 57}}, r"bare_page_sizes\['Sv57x4'\]"),
        ({"bare_page_sizes": {"Sv39": 1 << 63}}, r"bare_page_sizes\['Sv39'\]"),
        ({"bare_page_sizes": {"Sv57": True}}, "bare_page_sizes"),
    ],
)
def test_iommu_params_validation_errors(kw: Dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        rv.IommuParams(**kw)


def test_iommu_params_defaults() -> None:
    p = rv.IommuParams()
    assert (p.reset_iommu_mode, p.max_iommu_mode) == (rv.IommuMode.OFF, rv.IommuMode.LVL3)
    assert (p.device_id_width, p.gxl_writable, p.be_writable) == (24, False, True)
    assert (p.fault_page_crossing, p.gipc_revision, p.gipc_tc_bit) == (True, "2024", 12)
    assert (p.bare_range_size, p.bare_page_sizes) == (1 << 21, {})
    assert (p.ats_no_write_reports_w, p.cxl_io_unspecified) == (True, False)
    assert rv.IommuParams(gipc_tc_bit=40, cache_policy="fifo").gipc_tc_bit == 40
    # DC.tc bits 31:24 are designated for custom use: GIPC may sit there too (issue 9 item 6)
    assert rv.IommuParams(gipc_tc_bit=24).gipc_tc_bit == 24


def test_iommu_params_bare_page_sizes_is_a_mapping_copied_and_hashable() -> None:
    sizes = {"Sv39x4": 1 << 30}
    p = rv.IommuParams(bare_page_sizes=sizes)
    sizes["Sv39x4"] = 4096  # the caller's dict is not the model's
    assert p.bare_page_sizes == {"Sv39x4": 1 << 30}
    assert hash(p) == hash(rv.IommuParams(bare_page_sizes={"Sv39x4": 1 << 30}))
    with pytest.raises(TypeError, match="bare_page_sizes"):
        rv.IommuParams(bare_page_sizes=[("Sv39", 4096)])  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Iommu constructor
# --------------------------------------------------------------------------
class ReadOnly:
    def read(self, addr: int, size: int) -> bytes:
        return bytes(size)


@pytest.mark.parametrize("mem", [None, object(), ReadOnly(), {"read": 1, "write": 2}])
def test_iommu_rejects_a_memory_without_read_and_write(mem: object) -> None:
    with pytest.raises(TypeError, match="mem"):
        rv.Iommu(mem)


@pytest.mark.parametrize("caps", ["full", 1.5, True, [1]])
def test_iommu_rejects_bad_capabilities_type(caps: object) -> None:
    with pytest.raises(TypeError, match="capabilities"):
        rv.Iommu(rv.SparseMemory(), capabilities=caps)  # type: ignore[arg-type]


def test_iommu_accepts_raw_int_capabilities() -> None:
    caps = rv.Capabilities(sv39=True, msi_flat=True, pd8=True, igs=rv.IGS.WSI, pas=44)
    io = rv.Iommu(rv.SparseMemory(), capabilities=caps.raw)
    assert io.caps == caps
    assert io.mmio_read(rv.REG.CAPABILITIES) == caps.raw


def test_iommu_rejects_an_invalid_raw_capabilities_value() -> None:
    with pytest.raises(ValueError, match="64-bit"):
        rv.Iommu(rv.SparseMemory(), capabilities=-1)
    with pytest.raises(ValueError, match="igs"):
        rv.Iommu(rv.SparseMemory(), capabilities=BASE_RAW | (3 << 28))


def test_iommu_default_capabilities_are_full() -> None:
    io = rv.Iommu(rv.SparseMemory())
    assert io.mmio_read(rv.REG.CAPABILITIES) == rv.Capabilities.full().raw


def test_iommu_rejects_bad_params_and_fctl() -> None:
    mem = rv.SparseMemory()
    with pytest.raises(TypeError, match=type_error("params")):
        rv.Iommu(mem, params={"ddt_cache_size": 0})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=type_error("fctl")):
        rv.Iommu(mem, fctl="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fctl"):
        rv.Iommu(mem, fctl=1 << 32)


# --------------------------------------------------------------------------
# Request validation at Iommu.translate
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iommu() -> rv.Iommu:
    return rv.Iommu(rv.SparseMemory())


@pytest.mark.parametrize(
    ("kw", "exc", "name"),
    [
        ({"device_id": 1 << 24}, ValueError, "device_id"),
        ({"device_id": -1}, ValueError, "device_id"),
        ({"device_id": "1"}, TypeError, "device_id"),
        ({"device_id": 1.0}, TypeError, "device_id"),
        ({"device_id": True}, TypeError, "device_id"),
        ({"device_id": None}, TypeError, "device_id"),
        ({"addr": -1}, ValueError, "addr"),
        ({"addr": 1 << 64}, ValueError, "addr"),
        ({"addr": 4096.0}, TypeError, "addr"),
        ({"addr": None}, TypeError, "addr"),
        ({"process_id": 1 << 20}, ValueError, "process_id"),
        ({"process_id": -1}, ValueError, "process_id"),
        ({"process_id": "7"}, TypeError, "process_id"),
        ({"process_id": False}, TypeError, "process_id"),
        ({"length": -1}, ValueError, "length"),
        ({"length": 1 << 64}, ValueError, "length"),
        ({"length": 8.0}, TypeError, "length"),
        ({"data": 1 << 32}, ValueError, "data"),
        ({"data": -1}, ValueError, "data"),
        ({"data": b"\x00"}, TypeError, "data"),
        ({"access": 3}, ValueError, "access"),
        ({"access": "READ"}, TypeError, "access"),
        ({"access": None}, TypeError, "access"),
        # values that merely compare equal to an Access, or are unhashable (issue 9)
        ({"access": 1.0}, TypeError, "access"),
        ({"access": True}, TypeError, "access"),
        ({"access": Decimal(1)}, TypeError, "access"),
        ({"access": Fraction(2)}, TypeError, "access"),
        ({"access": [1]}, TypeError, "access"),
        ({"kind": 3}, ValueError, "kind"),
        ({"kind": -1}, ValueError, "kind"),
        ({"kind": "UNTRANSLATED"}, TypeError, "kind"),
        ({"kind": 0.0}, TypeError, "kind"),
        ({"kind": False}, TypeError, "kind"),
        ({"kind": Decimal(0)}, TypeError, "kind"),
        ({"kind": Fraction(1)}, TypeError, "kind"),
        ({"kind": {}}, TypeError, "kind"),
    ],
)
def test_translate_rejects_api_misuse_naming_the_argument(
    iommu: rv.Iommu, kw: Dict[str, Any], exc: type, name: str
) -> None:
    req: Dict[str, Any] = {"device_id": 1, "addr": 0x1000}
    req.update(kw)
    with pytest.raises(exc, match=name):
        iommu.translate(rv.Request(**req))


def test_translate_rejects_a_non_request(iommu: rv.Iommu) -> None:
    with pytest.raises(TypeError, match="Request"):
        iommu.translate((1, 0x1000))  # type: ignore[arg-type]


def test_translate_accepts_the_extreme_valid_values(iommu: rv.Iommu) -> None:
    """The largest device_id/addr/process_id are device-controlled: a response, no raise.
    ddtp.iommu_mode is Off at reset: P2IOVA step 1 -> cause 256."""
    req = rv.Request(
        device_id=(1 << 24) - 1,
        addr=(1 << 64) - 8,
        access=Access.WRITE,
        process_id=(1 << 20) - 1,
        priv=True,
        data=M32,
        length=8,
    )
    rsp = iommu.translate(req)
    assert rsp.status == UR
    assert rsp.fault == rv.FaultRecord(
        cause=Cause.ALL_INBOUND_TRANSACTIONS_DISALLOWED,
        ttyp=Ttyp.UNTRANSLATED_WRITE,
        iotval=(1 << 64) - 8,
        device_id=(1 << 24) - 1,
        process_id=(1 << 20) - 1,
        pv=True,
        priv=True,
    )


def test_translate_accepts_plain_ints_for_access_and_kind(iommu: rv.Iommu) -> None:
    rsp = iommu.translate(rv.Request(device_id=2, addr=0x40, access=2, kind=1))  # type: ignore[arg-type]
    assert rsp.fault is not None
    assert rsp.fault.ttyp == Ttyp.TRANSLATED_EXECUTE


# --------------------------------------------------------------------------
# FaultRecord
# --------------------------------------------------------------------------
KNOWN = rv.FaultRecord(
    cause=Cause.READ_PAGE_FAULT,
    ttyp=Ttyp.UNTRANSLATED_READ,
    iotval=0x0123_4567_89AB_CDEF,
    iotval2=0xFEDC_BA98_7654_3210,
    device_id=0xABCDEF,
    process_id=0x12345,
    pv=True,
    priv=True,
)
# Fault-queue record: CAUSE 11:0 = 13, PID 31:12 = 0x12345, PV 32, PRIV 33,
# TTYP 39:34 = 2, DID 63:40 = 0xABCDEF -> first doubleword 0xABCDEF0B_1234500D.
KNOWN_D0 = 0xABCDEF0B_1234500D


def test_fault_record_first_doubleword_layout() -> None:
    assert F.FAULT_RECORD0.encode(CAUSE=13, PID=0x12345, PV=1, PRIV=1, TTYP=2, DID=0xABCDEF) == (
        KNOWN_D0
    )


def test_fault_record_to_bytes_little_endian() -> None:
    """FQ: four doublewords: CAUSE..DID, custom/reserved (0), iotval, iotval2 (fctl.BE=0)."""
    data = KNOWN.to_bytes()
    assert data == bytes.fromhex(
        "0d503412"
        "0befcdab"  # doubleword 0, little-endian
        "0000000000000000"
        "efcdab8967452301"
        "1032547698badcfe"
    )
    assert KNOWN.to_bytes(big_endian=False) == data


def test_fault_record_to_bytes_big_endian() -> None:
    """FQ: each doubleword in the byte order of fctl.BE (here 1: big-endian)."""
    assert KNOWN.to_bytes(big_endian=True) == bytes.fromhex(
        "abcdef0b1234500d00000000000000000123456789abcdeffedcba9876543210"
    )


@pytest.mark.parametrize("big", [False, True])
def test_fault_record_from_bytes_known(big: bool) -> None:
    assert rv.FaultRecord.from_bytes(KNOWN.to_bytes(big), big_endian=big) == KNOWN


def test_fault_record_from_bytes_ignores_the_custom_doubleword() -> None:
    data = bytearray(KNOWN.to_bytes())
    data[8:16] = b"\xff" * 8
    assert rv.FaultRecord.from_bytes(bytes(data)) == KNOWN


@pytest.mark.parametrize("n", [0, 31, 33, 64])
def test_fault_record_from_bytes_needs_32_bytes(n: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        rv.FaultRecord.from_bytes(bytes(n))


@given(
    cause=st.integers(0, 0xFFF),
    ttyp=st.integers(0, 0x3F),
    iotval=st.integers(0, (1 << 64) - 1),
    iotval2=st.integers(0, (1 << 64) - 1),
    device_id=st.integers(0, (1 << 24) - 1),
    process_id=st.integers(0, (1 << 20) - 1),
    pv=st.booleans(),
    priv=st.booleans(),
    big=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_fault_record_bytes_round_trip(
    cause: int,
    ttyp: int,
    iotval: int,
    iotval2: int,
    device_id: int,
    process_id: int,
    pv: bool,
    priv: bool,
    big: bool,
) -> None:
    rec = rv.FaultRecord(cause, ttyp, iotval, iotval2, device_id, process_id, pv, priv)
    data = rec.to_bytes(big_endian=big)
    assert len(data) == 32
    assert rv.FaultRecord.from_bytes(data, big_endian=big) == rec
    d0 = int.from_bytes(data[:8], "big" if big else "little")
    assert F.FAULT_RECORD0.decode(d0) == {
        "CAUSE": cause,
        "PID": process_id,
        "PV": int(pv),
        "PRIV": int(priv),
        "TTYP": ttyp,
        "DID": device_id,
    }


def test_fault_record_value_equality() -> None:
    a = rv.FaultRecord(cause=5, ttyp=2, iotval=0x10)
    assert a == rv.FaultRecord(5, 2, 0x10, 0, 0, 0, False, False)
    assert a != rv.FaultRecord(cause=5, ttyp=2, iotval=0x11)


# --------------------------------------------------------------------------
# Readable hex reprs
# --------------------------------------------------------------------------
def test_request_repr() -> None:
    r = rv.Request(device_id=0x12345, addr=0xDEAD000, access=Access.WRITE, process_id=0x42)
    assert repr(r) == (
        "Request(device_id=0x12345, addr=0xdead000, access=WRITE, process_id=0x42, "
        "priv=False, kind=UNTRANSLATED, length=8, no_write=False, data=None, cxl=False)"
    )
    r2 = rv.Request(
        device_id=1, addr=0, kind=Kind.ATS_TRANSLATION, no_write=True, data=0xAB, cxl=True
    )
    assert repr(r2) == (
        "Request(device_id=0x1, addr=0x0, access=READ, process_id=None, priv=False, "
        "kind=ATS_TRANSLATION, length=8, no_write=True, data=0xab, cxl=True)"
    )


def test_fault_record_repr() -> None:
    assert repr(KNOWN) == (
        "FaultRecord(cause=READ_PAGE_FAULT(13), ttyp=UNTRANSLATED_READ, "
        "iotval=0x123456789abcdef, iotval2=0xfedcba9876543210, device_id=0xabcdef, "
        "process_id=0x12345, pv=True, priv=True)"
    )
    # codes outside the enumerations (reserved / custom) print as numbers
    assert repr(rv.FaultRecord(cause=2048, ttyp=40)) == (
        "FaultRecord(cause=2048, ttyp=40, iotval=0x0, iotval2=0x0, device_id=0x0, "
        "process_id=0x0, pv=False, priv=False)"
    )


def test_response_repr() -> None:
    ok = rv.Response(OK, 0x8000_1000, r=True, w=True, g=True, pbmt=1, size=0x20_0000, s=True)
    assert repr(ok) == (
        "Response(status=SUCCESS, addr=0x80001000, perms=rw, g=True, s=True, pbmt=1, size=0x200000)"
    )
    rec = rv.FaultRecord(cause=5, ttyp=2, iotval=0x10, device_id=3)
    bad = rv.Response(CA, 0, fault=rec, reported=True)
    assert repr(bad) == (
        f"Response(status=COMPLETER_ABORT, addr=0x0, fault={rec!r}, reported=True, "
        "perms=-, size=0x1000)"
    )
    mrif = rv.Response(OK, 0x9000, w=True, is_msi=True, is_mrif=True, mrif_addr=0x4200)
    assert "is_msi=True, is_mrif=True" in repr(mrif)
    assert "mrif_addr=0x4200, notice_addr=0x0, nid=0x0" in repr(mrif)


def test_page_request_repr() -> None:
    pr = rv.PageRequest(device_id=0x100, addr=0x7000, prg_index=0x1F, last=True, process_id=5)
    assert repr(pr) == (
        "PageRequest(device_id=0x100, addr=0x7000, prg_index=0x1f, last=True, read=True, "
        "write=False, process_id=0x5, priv=False, exec_req=False)"
    )


# --------------------------------------------------------------------------
# Cause and Ttyp: the spec tables
# --------------------------------------------------------------------------
#: iommu_in_memory_queues.adoc "Fault record CAUSE field encodings":
#: code -> (description, reported if DTF is 1)
CAUSE_TABLE: Dict[int, Tuple[str, bool]] = {
    1: ("Instruction access fault", False),
    4: ("Read address misaligned", False),
    5: ("Read access fault", False),
    6: ("Write/AMO address misaligned", False),
    7: ("Write/AMO access fault", False),
    12: ("Instruction page fault", False),
    13: ("Read page fault", False),
    15: ("Write/AMO page fault", False),
    20: ("Instruction guest page fault", False),
    21: ("Read guest-page fault", False),
    23: ("Write/AMO guest-page fault", False),
    256: ("All inbound transactions disallowed", True),
    257: ("DDT entry load access fault", True),
    258: ("DDT entry not valid", True),
    259: ("DDT entry misconfigured", True),
    260: ("Transaction type disallowed", False),
    261: ("MSI PTE load access fault", False),
    262: ("MSI PTE not valid", False),
    263: ("MSI PTE misconfigured", False),
    264: ("MRIF access fault", False),
    265: ("PDT entry load access fault", False),
    266: ("PDT entry not valid", False),
    267: ("PDT entry misconfigured", False),
    268: ("DDT data corruption", True),
    269: ("PDT data corruption", False),
    270: ("MSI PT data corruption", False),
    271: ("MSI MRIF data corruption", False),
    272: ("Internal data path error", True),
    273: ("IOMMU MSI write access fault", True),
    274: ("First/second-stage PT data corruption", False),
}


def test_cause_has_exactly_the_codes_of_the_spec_table() -> None:
    assert sorted(int(c) for c in Cause) == sorted(CAUSE_TABLE)


@pytest.mark.parametrize("code", sorted(CAUSE_TABLE))
def test_cause_description_and_reported_if_dtf(code: int) -> None:
    text, reported = CAUSE_TABLE[code]
    c = Cause(code)
    assert c.description == text
    assert c.reported_if_dtf is reported


def test_ttyp_values_match_the_spec_table() -> None:
    """TTYP: 0 none, 1/2/3 untranslated exec/read/write, 4 reserved, 5/6/7 translated
    exec/read/write, 8 ATS translation request, 9 PCIe message request."""
    assert {t.name: int(t) for t in Ttyp} == {
        "NONE": 0,
        "UNTRANSLATED_EXECUTE": 1,
        "UNTRANSLATED_READ": 2,
        "UNTRANSLATED_WRITE": 3,
        "TRANSLATED_EXECUTE": 5,
        "TRANSLATED_READ": 6,
        "TRANSLATED_WRITE": 7,
        "ATS_TRANSLATION": 8,
        "PCIE_MESSAGE": 9,
    }


def test_other_enumerations() -> None:
    assert [int(x) for x in rv.IommuMode] == [0, 1, 2, 3, 4]  # DDTP iommu_mode encodings
    assert [int(x) for x in rv.IGS] == [0, 1, 2]
    assert {a.name for a in Access} == {"READ", "WRITE", "EXECUTE"}
    assert {k.name for k in Kind} == {"UNTRANSLATED", "TRANSLATED", "ATS_TRANSLATION"}
    assert {s.name for s in rv.Status} == {"SUCCESS", "UNSUPPORTED_REQUEST", "COMPLETER_ABORT"}


# --------------------------------------------------------------------------
# Registers: capabilities, fctl, ddtp
# --------------------------------------------------------------------------
def _iommu(caps: rv.Capabilities | None = None, fctl: int = 0, **params: Any) -> rv.Iommu:
    return rv.Iommu(
        rv.SparseMemory(),
        capabilities=caps or rv.Capabilities.full(),
        fctl=fctl,
        params=rv.IommuParams(**params),
    )


def test_capabilities_register_reads_raw_in_8_and_4_byte_accesses() -> None:
    caps = rv.Capabilities.full(pas=48, custom=0x5A, gipc=True)
    io = _iommu(caps)
    assert io.mmio_read(rv.REG.CAPABILITIES) == caps.raw
    assert io.mmio_read(rv.REG.CAPABILITIES, 4) == caps.raw & M32
    assert io.mmio_read(rv.REG.CAPABILITIES + 4, 4) == caps.raw >> 32


def test_capabilities_register_is_read_only() -> None:
    """CAP: 'The capabilities register is a read-only register'."""
    io = _iommu()
    raw = io.mmio_read(rv.REG.CAPABILITIES)
    io.mmio_write(rv.REG.CAPABILITIES, 0)
    io.mmio_write(rv.REG.CAPABILITIES, (1 << 64) - 1)
    io.mmio_write(rv.REG.CAPABILITIES, 0, 4)
    io.mmio_write(rv.REG.CAPABILITIES + 4, 0, 4)
    assert io.mmio_read(rv.REG.CAPABILITIES) == raw == rv.Capabilities.full().raw


@pytest.mark.parametrize(
    ("end", "be_writable", "writable"),
    [(True, True, True), (False, True, False), (True, False, False), (False, False, False)],
)
def test_fctl_be_writable_only_with_end_and_be_writable(
    end: bool, be_writable: bool, writable: bool
) -> None:
    """FCTRL: BE is WARL; CAP.END=0 means one endianness only (BE read-only)."""
    io = _iommu(rv.Capabilities.full(end=end), be_writable=be_writable)
    io.mmio_write(rv.REG.FCTL, 1, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) & 1 == int(writable)
    io.mmio_write(rv.REG.FCTL, 0, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) & 1 == 0


def test_fctl_be_reset_value_is_kept_when_not_writable() -> None:
    """A big-endian-only IOMMU: BE resets to 1 and writes of 0 are ignored."""
    io = _iommu(rv.Capabilities.full(end=False), fctl=1)
    assert io.mmio_read(rv.REG.FCTL, 4) & 1 == 1
    io.mmio_write(rv.REG.FCTL, 0, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) & 1 == 1


@pytest.mark.parametrize("gxl_writable", [True, False])
def test_fctl_gxl_writable_only_with_gxl_writable(gxl_writable: bool) -> None:
    io = _iommu(gxl_writable=gxl_writable)
    io.mmio_write(rv.REG.FCTL, 4, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) == (4 if gxl_writable else 0)
    io.mmio_write(rv.REG.FCTL, 0, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) == 0


@pytest.mark.parametrize(
    ("igs", "reset", "after_write_1", "after_write_0"),
    [
        (rv.IGS.MSI, 0, 0, 0),
        (rv.IGS.MSI, 2, 0, 0),  # WSI cannot be 1 without WSI support
        (rv.IGS.WSI, 0, 1, 1),  # ... nor 0 without MSI support
        (rv.IGS.BOTH, 0, 1, 0),
    ],
)
def test_fctl_wsi_follows_igs(
    igs: rv.IGS, reset: int, after_write_1: int, after_write_0: int
) -> None:
    """FCTRL.WSI (WARL) with CAP.IGS: only BOTH lets software choose."""
    io = _iommu(rv.Capabilities.full(igs=igs), fctl=reset)
    if igs == rv.IGS.WSI:
        assert io.mmio_read(rv.REG.FCTL, 4) == 2
    elif igs == rv.IGS.MSI:
        assert io.mmio_read(rv.REG.FCTL, 4) == 0
    io.mmio_write(rv.REG.FCTL, 2, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) == after_write_1 << 1
    io.mmio_write(rv.REG.FCTL, 0, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) == after_write_0 << 1


def test_fctl_reserved_and_custom_bits_read_zero() -> None:
    io = _iommu(be_writable=True, gxl_writable=True)
    io.mmio_write(rv.REG.FCTL, M32, 4)
    assert io.mmio_read(rv.REG.FCTL, 4) == 0b111
    assert io.mmio_read(rv.REG.FCTL, 8) == 0b111  # the upper word at 12 reads 0


def test_ddtp_reset_value() -> None:
    assert _iommu().mmio_read(rv.REG.DDTP) == 0  # Off, PPN 0
    assert _iommu(reset_iommu_mode=rv.IommuMode.BARE).mmio_read(rv.REG.DDTP) == 1


def test_ddtp_8_byte_write_and_read() -> None:
    io = _iommu()
    v = F.DDTP.encode(iommu_mode=rv.IommuMode.LVL3, PPN=0x12_3456_789A)
    io.mmio_write(rv.REG.DDTP, v)
    assert io.mmio_read(rv.REG.DDTP) == v
    assert io.mmio_read(rv.REG.DDTP, 4) == v & M32
    assert io.mmio_read(rv.REG.DDTP + 4, 4) == v >> 32


def test_ddtp_4_byte_writes() -> None:
    """DDTP note: RV32 writes the low word (22-bit PPN and iommu_mode); the high word
    holds PPN[43:22]."""
    io = _iommu()
    v = F.DDTP.encode(iommu_mode=rv.IommuMode.LVL2, PPN=0xABC_DEF1_2345)
    io.mmio_write(rv.REG.DDTP + 4, v >> 32, 4)
    assert io.mmio_read(rv.REG.DDTP) == v & ~M32  # mode still Off
    io.mmio_write(rv.REG.DDTP, v & M32, 4)
    assert io.mmio_read(rv.REG.DDTP) == v
    # a low-word write keeps the high word
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.BARE, 4)
    assert io.mmio_read(rv.REG.DDTP) == (v & ~M32) | rv.IommuMode.BARE


def test_ddtp_busy_and_reserved_bits_read_zero() -> None:
    """DDTP: busy may be hard-wired to 0 (synchronous); reserved 9:5 and 63:54 are WPRI."""
    io = _iommu()
    v = F.DDTP.encode(iommu_mode=rv.IommuMode.LVL1, PPN=0x1234)
    io.mmio_write(rv.REG.DDTP, v | F.DDTP.busy.mask | F.DDTP.reserved)
    assert io.mmio_read(rv.REG.DDTP) == v


@pytest.mark.parametrize("mode", [2, 3, 4])
def test_ddtp_mode_beyond_max_iommu_mode_keeps_the_old_mode(mode: int) -> None:
    """DDTP.iommu_mode is WARL: an unsupported mode leaves the mode unchanged."""
    io = _iommu(max_iommu_mode=rv.IommuMode.BARE)
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.BARE)
    io.mmio_write(rv.REG.DDTP, F.DDTP.encode(iommu_mode=mode, PPN=0x55))
    assert io.mmio_read(rv.REG.DDTP) == F.DDTP.encode(iommu_mode=rv.IommuMode.BARE, PPN=0x55)


def test_ddtp_mode_up_to_max_iommu_mode_is_accepted() -> None:
    io = _iommu(max_iommu_mode=rv.IommuMode.LVL2)
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.LVL2)
    assert io.mmio_read(rv.REG.DDTP) == rv.IommuMode.LVL2
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.OFF)
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.LVL3)
    assert io.mmio_read(rv.REG.DDTP) == rv.IommuMode.OFF


@pytest.mark.parametrize("mode", range(5, 16))
def test_ddtp_reserved_and_custom_modes_keep_the_old_mode(mode: int) -> None:
    """DDTP: modes 5-13 are reserved and 14-15 custom (unsupported here): WARL."""
    io = _iommu()
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.LVL1)
    io.mmio_write(rv.REG.DDTP, mode)
    assert io.mmio_read(rv.REG.DDTP) == rv.IommuMode.LVL1


@pytest.mark.parametrize("pas", [34, 40, 56])
def test_ddtp_ppn_is_limited_by_pas(pas: int) -> None:
    """DDTP.PPN is WARL: the physical address space is 0 .. 2**capabilities.PAS - 1."""
    io = _iommu(rv.Capabilities.full(pas=pas))
    io.mmio_write(rv.REG.DDTP, F.DDTP.PPN.mask | rv.IommuMode.LVL3)
    assert io.mmio_read(rv.REG.DDTP) == (((1 << (pas - 12)) - 1) << 10) | rv.IommuMode.LVL3


@pytest.mark.parametrize(("offset", "size"), [(8, 2), (9, 4), (16, 1), (20, 8), (12, 8)])
def test_unspecified_mmio_accesses_read_zero_and_are_ignored(offset: int, size: int) -> None:
    io = _iommu()
    io.mmio_write(rv.REG.DDTP, rv.IommuMode.BARE)
    assert io.mmio_read(offset, size) == 0
    io.mmio_write(offset, M32 >> (32 - 8 * min(size, 4)), size)
    assert io.mmio_read(rv.REG.DDTP) == rv.IommuMode.BARE
    assert io.mmio_read(rv.REG.FCTL, 4) == 0


@pytest.mark.parametrize(
    ("args", "exc", "name"),
    [
        ((4096,), ValueError, "offset"),
        ((-8,), ValueError, "offset"),
        (("0",), TypeError, "offset"),
        ((0, 8.0), TypeError, "size"),
    ],
)
def test_mmio_read_argument_errors(args: Tuple[Any, ...], exc: type, name: str) -> None:
    with pytest.raises(exc, match=type_error(name) if exc is TypeError else name):
        _iommu().mmio_read(*args)


@pytest.mark.parametrize(
    ("args", "exc", "name"),
    [
        ((16, 1 << 64), ValueError, "value"),
        ((16, -1), ValueError, "value"),
        ((16, "1"), TypeError, "value"),
        ((1 << 12, 0), ValueError, "offset"),
        ((16, 0, None), TypeError, "size"),
    ],
)
def test_mmio_write_argument_errors(args: Tuple[Any, ...], exc: type, name: str) -> None:
    with pytest.raises(exc, match=type_error(name) if exc is TypeError else name):
        _iommu().mmio_write(*args)


# --------------------------------------------------------------------------
# inject_datapath_error
# --------------------------------------------------------------------------
def test_datapath_error_faults_the_next_request_only() -> None:
    """RAS: an internal data path error aborts the transaction (Completer Abort) and is
    reported with cause 272; the following request is unaffected."""
    s = System()
    s.ddt.set_dc(0x21, tc=TC_V)
    s.iommu.inject_datapath_error()
    rsp = s.t(0x21, 0x5000, Access.WRITE)
    assert rsp.status == CA
    assert rsp.fault == rv.FaultRecord(
        cause=Cause.INTERNAL_DATAPATH_ERROR,
        ttyp=Ttyp.UNTRANSLATED_WRITE,
        iotval=0x5000,
        device_id=0x21,
    )
    assert rsp.reported
    rsp = s.t(0x21, 0x5000, Access.WRITE)
    assert (rsp.status, rsp.addr, rsp.fault) == (OK, 0x5000, None)


def test_datapath_error_count() -> None:
    s = System()
    s.ddt.set_dc(0x21, tc=TC_V)
    s.iommu.inject_datapath_error(2)
    causes = [s.t(0x21, 0x5000).fault for _ in range(3)]
    assert [c.cause if c else None for c in causes] == [272, 272, None]


def test_datapath_error_is_reported_even_with_dtf() -> None:
    """CAUSE table: 272 is reported even if DTF is 1."""
    s = System()
    s.ddt.set_dc(0x21, tc=TC_V | TC_DTF)
    s.t(0x21, 0x5000)  # DC now cached
    s.iommu.inject_datapath_error()
    rsp = s.t(0x21, 0x5000, process_id=3, priv=True)
    assert rsp.status == CA
    assert rsp.reported
    assert rsp.fault == rv.FaultRecord(
        cause=272,
        ttyp=Ttyp.UNTRANSLATED_READ,
        iotval=0x5000,
        device_id=0x21,
        process_id=3,
        pv=True,
        priv=True,
    )


def test_datapath_error_on_an_ats_translation_request_is_completer_abort() -> None:
    s = System()
    s.ddt.set_dc(0x22, tc=TC_V | TC_EN_ATS)
    s.iommu.inject_datapath_error()
    rsp = s.t(0x22, 0x7000, kind=Kind.ATS_TRANSLATION)
    assert rsp.status == CA
    assert rsp.fault == rv.FaultRecord(
        cause=272, ttyp=Ttyp.ATS_TRANSLATION, iotval=0x7000, device_id=0x22
    )


def test_inject_datapath_error_argument_errors() -> None:
    io = _iommu()
    with pytest.raises(ValueError, match="count"):
        io.inject_datapath_error(-1)
    with pytest.raises(TypeError, match=type_error("count")):
        io.inject_datapath_error(1.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Requests crossing a 4 KiB boundary
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "access", "cause", "ttyp"),
    [
        (Kind.UNTRANSLATED, Access.READ, Cause.READ_ADDRESS_MISALIGNED, Ttyp.UNTRANSLATED_READ),
        (
            Kind.UNTRANSLATED,
            Access.EXECUTE,
            Cause.READ_ADDRESS_MISALIGNED,
            Ttyp.UNTRANSLATED_EXECUTE,
        ),
        (
            Kind.UNTRANSLATED,
            Access.WRITE,
            Cause.WRITE_ADDRESS_MISALIGNED,
            Ttyp.UNTRANSLATED_WRITE,
        ),
        (Kind.TRANSLATED, Access.READ, Cause.READ_ADDRESS_MISALIGNED, Ttyp.TRANSLATED_READ),
        (Kind.TRANSLATED, Access.WRITE, Cause.WRITE_ADDRESS_MISALIGNED, Ttyp.TRANSLATED_WRITE),
    ],
)
def test_request_crossing_4k_is_address_misaligned(
    kind: Kind, access: Access, cause: Cause, ttyp: Ttyp
) -> None:
    """A request whose [addr, addr+length) crosses a 4 KiB boundary: cause 4 (read/exec)
    or 6 (write/AMO), Completer Abort, reported."""
    s = System()
    s.ddt.set_dc(0x30, tc=TC_V | TC_EN_ATS)
    rsp = s.t(0x30, 0x1FFC, access, kind=kind, length=8)
    assert rsp.status == CA
    assert rsp.fault == rv.FaultRecord(cause=cause, ttyp=ttyp, iotval=0x1FFC, device_id=0x30)
    assert rsp.reported


@pytest.mark.parametrize(
    ("addr", "length"), [(0x1FF8, 8), (0x1000, 4096), (0x1FFF, 1), (0x1FFF, 0), (0x2000, 8)]
)
def test_request_ending_at_the_4k_boundary_is_not_misaligned(addr: int, length: int) -> None:
    s = System()
    s.ddt.set_dc(0x30, tc=TC_V)
    rsp = s.t(0x30, addr, Access.WRITE, length=length)
    assert (rsp.status, rsp.addr, rsp.fault) == (OK, addr, None)


def test_request_one_byte_past_the_4k_boundary_is_misaligned() -> None:
    s = System()
    s.ddt.set_dc(0x30, tc=TC_V)
    rsp = s.t(0x30, 0x1000, length=4097)
    assert rsp.fault is not None
    assert rsp.fault.cause == Cause.READ_ADDRESS_MISALIGNED


def test_ats_translation_request_crossing_4k_is_not_misaligned() -> None:
    """An ATS Translation Request's length describes the range to translate, not one
    access: it may span pages."""
    s = System()
    s.ddt.set_dc(0x31, tc=TC_V | TC_EN_ATS)
    rsp = s.t(0x31, 0x1FFC, Access.WRITE, kind=Kind.ATS_TRANSLATION, length=0x2000)
    assert rsp.status == OK
    assert rsp.fault is None
    assert (rsp.r, rsp.w) == (True, True)
    # both stages Bare: the range is bare_range_size (2 MiB), in the PCIe completion
    # encoding (S=1, address bits 20:12 = 0b0_1111_1111)
    assert (rsp.s, rsp.size, rsp.addr) == (True, 0x20_0000, 0xFF000)


def test_page_crossing_check_can_be_disabled() -> None:
    s = System(params=rv.IommuParams(fault_page_crossing=False))
    s.ddt.set_dc(0x30, tc=TC_V)
    for access in Access:
        rsp = s.t(0x30, 0x1FFC, access, length=8)
        assert (rsp.status, rsp.addr, rsp.fault) == (OK, 0x1FFC, None)


def test_custom_bit_may_not_be_the_gipc_bit() -> None:
    """A custom capability bit that is also the configured GIPC bit would not round-trip."""
    with pytest.raises(ValueError, match="GIPC"):
        rv.Capabilities(custom=0x10, gipc=False, gipc_bit=60)
    caps = rv.Capabilities(custom=0x01, gipc=True, gipc_bit=60)
    assert rv.Capabilities.from_raw(caps.raw, gipc_bit=60) == caps
