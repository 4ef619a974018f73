"""Field tables (riscv_iommu.formats) against the spec's figures.

Every expected bit position below is transcribed from the figure named in its comment:

* iommu_data_structures.adoc: "Non-leaf device-directory-table entry", "Translation
  control (tc) field", "IO hypervisor guest address translation and protection (iohgatp)
  field", "Translation attributes (ta) field" (DC and PC), "IO Supervisor address
  translation and prot. (iosatp) field", "Process-directory table pointer (pdtp) field",
  "MSI page table pointer (msiptp) field", "MSI address mask / pattern", "Non-leaf
  process-directory-table entry", "Process First-Stage context";
* iommu_registers.adoc: "IOMMU capabilities register fields", "Feature-control register
  fields", "Device-directory-table pointer register fields" and the other register figures;
* iommu_in_memory_queues.adoc: "Fault-queue record", "Page-request-queue record",
  "PAYLOAD of a Page request message", "PAYLOAD of an ATS.INVAL / ATS.PRGR command";
* Privileged spec (Sv39/Sv48/Sv57 and Sv32 PTE formats, Svpbmt, Svnapot, Svrsw60t59b) and
  the Advanced Interrupt Architecture spec ("MSI page tables") for PTE / MSI PTE layouts.

When the spec sources are available next to the project, the figures are also parsed and
compared with the tables mechanically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riscv_iommu import formats as F

Spec = Dict[str, Tuple[int, int]]  # field name -> (lsb, width)


def bits(hi: int, lo: int) -> int:
    """Mask of bits hi..lo inclusive."""
    return ((1 << (hi - lo + 1)) - 1) << lo


# --------------------------------------------------------------------------
# Expected layouts, transcribed from the spec figures
# --------------------------------------------------------------------------
PPN_MODE = {"PPN": (0, 44), "MODE": (60, 4)}

EXPECTED: Dict[str, Tuple[F.Layout, Spec, int]] = {
    # layout name: (layout, fields, reserved mask)
    "DDTE": (F.DDTE, {"V": (0, 1), "PPN": (10, 44)}, bits(9, 1) | bits(63, 54)),
    "DC_TC": (
        F.DC_TC,
        {
            "V": (0, 1),
            "EN_ATS": (1, 1),
            "EN_PRI": (2, 1),
            "T2GPA": (3, 1),
            "DTF": (4, 1),
            "PDTV": (5, 1),
            "PRPR": (6, 1),
            "GADE": (7, 1),
            "SADE": (8, 1),
            "DPE": (9, 1),
            "SBE": (10, 1),
            "SXL": (11, 1),
            "custom": (24, 8),
        },
        bits(23, 12) | bits(63, 32),
    ),
    "IOHGATP": (F.IOHGATP, {"PPN": (0, 44), "GSCID": (44, 16), "MODE": (60, 4)}, 0),
    "DC_TA": (
        F.DC_TA,
        {"PSCID": (12, 20), "RCID": (40, 12), "MCID": (52, 12)},
        bits(11, 0) | bits(39, 32),
    ),
    "IOSATP": (F.IOSATP, PPN_MODE, bits(59, 44)),
    "PDTP": (F.PDTP, PPN_MODE, bits(59, 44)),
    "MSIPTP": (F.MSIPTP, PPN_MODE, bits(59, 44)),
    "MSI_ADDR_MASK": (F.MSI_ADDR_MASK, {"mask": (0, 52)}, bits(63, 52)),
    "MSI_ADDR_PATTERN": (F.MSI_ADDR_PATTERN, {"pattern": (0, 52)}, bits(63, 52)),
    "PDTE": (F.PDTE, {"V": (0, 1), "PPN": (10, 44)}, bits(9, 1) | bits(63, 54)),
    "PC_TA": (
        F.PC_TA,
        {"V": (0, 1), "ENS": (1, 1), "SUM": (2, 1), "PSCID": (12, 20)},
        bits(11, 3) | bits(63, 32),
    ),
    "PC_FSC": (F.PC_FSC, PPN_MODE, bits(59, 44)),
    # Privileged spec, Sv39/48/57 PTE: N 63, PBMT 62:61, reserved 60:54 (60:59 are
    # RSW with Svrsw60t59b), PPN 53:10, RSW 9:8, D A G U X W R V.
    "PTE": (
        F.PTE,
        {
            "V": (0, 1),
            "R": (1, 1),
            "W": (2, 1),
            "X": (3, 1),
            "U": (4, 1),
            "G": (5, 1),
            "A": (6, 1),
            "D": (7, 1),
            "RSW": (8, 2),
            "PPN": (10, 44),
            "RSW60_59": (59, 2),
            "PBMT": (61, 2),
            "N": (63, 1),
        },
        bits(58, 54),
    ),
    # Privileged spec, Sv32 PTE: PPN 31:10, RSW 9:8, D A G U X W R V.
    "PTE32": (
        F.PTE32,
        {
            "V": (0, 1),
            "R": (1, 1),
            "W": (2, 1),
            "X": (3, 1),
            "U": (4, 1),
            "G": (5, 1),
            "A": (6, 1),
            "D": (7, 1),
            "RSW": (8, 2),
            "PPN": (10, 22),
        },
        0,
    ),
    # AIA "MSI page tables": write-through (basic translate) mode, M = 3.
    "MSIPTE0": (
        F.MSIPTE0,
        {"V": (0, 1), "M": (1, 2), "PPN": (10, 44), "C": (63, 1)},
        bits(9, 3) | bits(62, 54),
    ),
    # AIA: MRIF mode (M = 1): MRIF Address[55:9] in bits 53:7; second doubleword
    # NID[9:0] in 9:0, NPPN in 53:10, NID[10] in bit 60.
    "MSIPTE_MRIF0": (
        F.MSIPTE_MRIF0,
        {"V": (0, 1), "M": (1, 2), "MRIF_Address": (7, 47), "C": (63, 1)},
        bits(6, 3) | bits(62, 54),
    ),
    "MSIPTE_MRIF1": (
        F.MSIPTE_MRIF1,
        {"N": (0, 10), "NPPN": (10, 44), "N10": (60, 1)},
        bits(59, 54) | bits(63, 61),
    ),
    # iommu_in_memory_queues.adoc "Fault-queue record", first doubleword.
    "FAULT_RECORD0": (
        F.FAULT_RECORD0,
        {
            "CAUSE": (0, 12),
            "PID": (12, 20),
            "PV": (32, 1),
            "PRIV": (33, 1),
            "TTYP": (34, 6),
            "DID": (40, 24),
        },
        0,
    ),
    # iommu_registers.adoc, capabilities table (bits 13:12, 20, 55:44 reserved).
    "CAPABILITIES": (
        F.CAPABILITIES,
        {
            "version": (0, 8),
            "Sv32": (8, 1),
            "Sv39": (9, 1),
            "Sv48": (10, 1),
            "Sv57": (11, 1),
            "Svrsw60t59b": (14, 1),
            "Svpbmt": (15, 1),
            "Sv32x4": (16, 1),
            "Sv39x4": (17, 1),
            "Sv48x4": (18, 1),
            "Sv57x4": (19, 1),
            "AMO_MRIF": (21, 1),
            "MSI_FLAT": (22, 1),
            "MSI_MRIF": (23, 1),
            "AMO_HWAD": (24, 1),
            "ATS": (25, 1),
            "T2GPA": (26, 1),
            "END": (27, 1),
            "IGS": (28, 2),
            "HPM": (30, 1),
            "DBG": (31, 1),
            "PAS": (32, 6),
            "PD8": (38, 1),
            "PD17": (39, 1),
            "PD20": (40, 1),
            "QOSID": (41, 1),
            "NL": (42, 1),
            "S": (43, 1),
            "custom": (56, 8),
        },
        bits(13, 12) | bits(20, 20) | bits(55, 44),
    ),
    # fctl: BE 0, WSI 1, GXL 2, reserved 15:3, custom 31:16.
    "FCTL": (F.FCTL, {"BE": (0, 1), "WSI": (1, 1), "GXL": (2, 1), "custom": (16, 16)}, bits(15, 3)),
    # ddtp: iommu_mode 3:0, busy 4, reserved 9:5, PPN 53:10, reserved 63:54.
    "DDTP": (
        F.DDTP,
        {"iommu_mode": (0, 4), "busy": (4, 1), "PPN": (10, 44)},
        bits(9, 5) | bits(63, 54),
    ),
    # cqb / fqb / pqb: LOG2SZ-1 4:0, reserved 9:5, PPN 53:10, reserved 63:54.
    "QUEUE_BASE": (
        F.QUEUE_BASE,
        {"LOG2SZ_1": (0, 5), "PPN": (10, 44)},
        bits(9, 5) | bits(63, 54),
    ),
    "CQCSR": (
        F.CQCSR,
        {
            "cqen": (0, 1),
            "cie": (1, 1),
            "cqmf": (8, 1),
            "cmd_to": (9, 1),
            "cmd_ill": (10, 1),
            "fence_w_ip": (11, 1),
            "cqon": (16, 1),
            "busy": (17, 1),
            "custom": (28, 4),
        },
        bits(7, 2) | bits(15, 12) | bits(27, 18),
    ),
    "FQCSR": (
        F.FQCSR,
        {
            "fqen": (0, 1),
            "fie": (1, 1),
            "fqmf": (8, 1),
            "fqof": (9, 1),
            "fqon": (16, 1),
            "busy": (17, 1),
            "custom": (28, 4),
        },
        bits(7, 2) | bits(15, 10) | bits(27, 18),
    ),
    "PQCSR": (
        F.PQCSR,
        {
            "pqen": (0, 1),
            "pie": (1, 1),
            "pqmf": (8, 1),
            "pqof": (9, 1),
            "pqon": (16, 1),
            "busy": (17, 1),
            "custom": (28, 4),
        },
        bits(7, 2) | bits(15, 10) | bits(27, 18),
    ),
    "IPSR": (
        F.IPSR,
        {"cip": (0, 1), "fip": (1, 1), "pmip": (2, 1), "pip": (3, 1), "custom": (8, 8)},
        bits(7, 4) | bits(31, 16),
    ),
    "IOHPMCYCLES": (F.IOHPMCYCLES, {"counter": (0, 63), "OF": (63, 1)}, 0),
    "IOHPMEVT": (
        F.IOHPMEVT,
        {
            "eventID": (0, 15),
            "DMASK": (15, 1),
            "PID_PSCID": (16, 20),
            "DID_GSCID": (36, 24),
            "PV_PSCV": (60, 1),
            "DV_GSCV": (61, 1),
            "IDT": (62, 1),
            "OF": (63, 1),
        },
        0,
    ),
    "TR_REQ_IOVA": (F.TR_REQ_IOVA, {"vpn": (12, 52)}, bits(11, 0)),
    "TR_REQ_CTL": (
        F.TR_REQ_CTL,
        {
            "Go_Busy": (0, 1),
            "Priv": (1, 1),
            "Exe": (2, 1),
            "NW": (3, 1),
            "PID": (12, 20),
            "PV": (32, 1),
            "custom": (36, 4),
            "DID": (40, 24),
        },
        bits(11, 4) | bits(35, 33),
    ),
    "TR_RESPONSE": (
        F.TR_RESPONSE,
        {"fault": (0, 1), "PBMT": (7, 2), "S": (9, 1), "PPN": (10, 44), "custom": (60, 4)},
        bits(6, 1) | bits(59, 54),
    ),
    "IOMMU_QOSID": (
        F.IOMMU_QOSID,
        {"RCID": (0, 12), "MCID": (16, 12)},
        bits(15, 12) | bits(31, 28),
    ),
    "MSI_ADDR": (F.MSI_ADDR, {"ADDR": (2, 54)}, bits(1, 0) | bits(63, 56)),
    "MSI_VEC_CTL": (F.MSI_VEC_CTL, {"M": (0, 1)}, bits(31, 1)),
    "PQ_RECORD0": (
        F.PQ_RECORD0,
        {"PID": (12, 20), "PV": (32, 1), "PRIV": (33, 1), "EXEC": (34, 1), "DID": (40, 24)},
        bits(11, 0) | bits(39, 35),
    ),
    "PQ_PAYLOAD": (
        F.PQ_PAYLOAD,
        {"R": (0, 1), "W": (1, 1), "L": (2, 1), "PRGI": (3, 9), "ADDR": (12, 52)},
        0,
    ),
    "ATS_INVAL_PAYLOAD": (
        F.ATS_INVAL_PAYLOAD,
        {"G": (0, 1), "S": (11, 1), "ADDR": (12, 52)},
        bits(10, 1),
    ),
    "ATS_PRGR_PAYLOAD": (
        F.ATS_PRGR_PAYLOAD,
        {"PRGI": (32, 9), "ResponseCode": (44, 4)},
        bits(31, 0) | bits(43, 41) | bits(63, 48),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_fields_match_the_spec_figure(name: str) -> None:
    layout, fields, _ = EXPECTED[name]
    got = {n: (f.lsb, f.width) for n, f in layout.fields.items()}
    assert got == fields


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_reserved_mask_matches_the_spec_figure(name: str) -> None:
    layout, _, reserved = EXPECTED[name]
    assert layout.reserved == reserved, f"{layout.reserved:#x} != {reserved:#x}"


def test_layout_widths() -> None:
    assert F.FCTL.bits == 32
    assert F.PTE32.bits == 32
    for name in ("CQCSR", "FQCSR", "PQCSR", "IPSR", "IOMMU_QOSID", "MSI_VEC_CTL"):
        assert EXPECTED[name][0].bits == 32
    for layout in (F.DDTE, F.DC_TC, F.IOHGATP, F.DC_TA, F.CAPABILITIES, F.DDTP, F.PTE):
        assert layout.bits == 64
        assert layout.all == (1 << 64) - 1


def test_icvec_fields_and_reserved_mask() -> None:
    """icvec: civ 3:0, fiv 7:4, pmiv 11:8, piv 15:12, reserved 31:16, custom 63:32."""
    got = {n: (f.lsb, f.width) for n, f in F.ICVEC.fields.items()}
    assert got == {
        "civ": (0, 4),
        "fiv": (4, 4),
        "pmiv": (8, 4),
        "piv": (12, 4),
        "custom": (32, 32),
    }
    assert F.ICVEC.reserved == bits(31, 16)


def test_structure_sizes() -> None:
    """Leaf DDT entry: DC is 32 bytes (base) / 64 bytes (extended); PC 16 bytes;
    MSI PTE 16 bytes (AIA); fault record 32 bytes."""
    assert (F.DC_BASE_SIZE, F.DC_EXT_SIZE) == (32, 64)
    assert F.PC_SIZE == 16
    assert F.MSIPTE_SIZE == 16
    assert F.FAULT_RECORD_SIZE == 32


def test_every_layout_is_covered_by_the_expected_tables_or_is_a_command() -> None:
    """Each layout of ALL_LAYOUTS is checked above (commands are checked structurally)."""
    checked = {id(v[0]) for v in EXPECTED.values()} | {id(F.ICVEC)}
    commands = {
        id(x)
        for x in (
            F.CMD,
            F.CMD_IOTINVAL0,
            F.CMD_IOTINVAL1,
            F.CMD_IOFENCE0,
            F.CMD_IOFENCE1,
            F.CMD_IODIR0,
            F.CMD_ATS0,
        )
    }
    missing = [x.name for x in F.ALL_LAYOUTS if id(x) not in checked | commands]
    assert missing == []


def test_command_layouts_share_opcode_and_func3() -> None:
    """Format of an IOMMU command: opcode 6:0 and func3 9:7 in every command."""
    for layout in (F.CMD, F.CMD_IOTINVAL0, F.CMD_IOFENCE0, F.CMD_IODIR0, F.CMD_ATS0):
        assert (layout.opcode.lsb, layout.opcode.width) == (0, 7)
        assert (layout.func3.lsb, layout.func3.width) == (7, 3)


# --------------------------------------------------------------------------
# Structural properties of every layout
# --------------------------------------------------------------------------
@pytest.mark.parametrize("layout", F.ALL_LAYOUTS, ids=lambda x: x.name)
def test_every_layout_has_disjoint_fields_within_its_width(layout: F.Layout) -> None:
    covered = 0
    for f in layout:
        assert f.width >= 1
        assert f.lsb + f.width <= layout.bits, f
        assert f.mask == ((1 << f.width) - 1) << f.lsb
        assert f.max == (1 << f.width) - 1
        assert covered & f.mask == 0, f"{f!r} overlaps"
        covered |= f.mask
    assert layout.reserved == layout.all & ~covered
    assert layout.all == (1 << layout.bits) - 1


@pytest.mark.parametrize("layout", F.ALL_LAYOUTS, ids=lambda x: x.name)
def test_every_field_is_an_attribute_and_iterates_in_order(layout: F.Layout) -> None:
    for name, f in layout.fields.items():
        assert getattr(layout, name) is f
        assert f.name == f"{layout.name}.{name}"
    assert list(layout) == list(layout.fields.values())


def test_layout_constructor_rejects_overlapping_fields() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        F.Layout("x", 16, {"a": (0, 4), "b": (3, 2)})
    with pytest.raises(ValueError, match="overlaps"):
        F.Layout("x", 64, {"a": (10, 44), "b": (53, 1)})


def test_layout_constructor_rejects_a_field_beyond_its_width() -> None:
    with pytest.raises(ValueError, match="exceeds 32 bits"):
        F.Layout("x", 32, {"a": (30, 3)})


def test_layout_constructor_accepts_adjacent_fields() -> None:
    x = F.Layout("x", 8, {"a": (0, 4), "b": (4, 4)})
    assert x.reserved == 0
    assert x.encode(a=0x3, b=0xC) == 0xC3


def test_field_repr_and_mask_of() -> None:
    assert repr(F.DC_TC.PDTV) == "Field(DC.tc.PDTV[5:5])"
    assert repr(F.DDTP.PPN) == "Field(ddtp.PPN[53:10])"
    assert F.DC_TC.mask_of("V", "EN_ATS", "SXL") == 0x803
    assert F.DC_TC.mask_of() == 0


def test_field_get_and_put() -> None:
    f = F.IOHGATP.GSCID
    assert f.get(0xF123_4567_89AB_CDEF) == 0x1234
    assert f.put(0xF123_4567_89AB_CDEF, 0xBEEF) == 0xFBEE_F567_89AB_CDEF
    assert F.PTE.N.put(0, 1) == 1 << 63


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (F.DC_TC.V, 2),
        (F.DC_TC.V, -1),
        (F.IOHGATP.GSCID, 1 << 16),
        (F.IOHGATP.MODE, 16),
        (F.DDTP.PPN, 1 << 44),
        (F.FAULT_RECORD0.CAUSE, 4096),
    ],
)
def test_field_put_out_of_range_is_a_value_error_naming_the_field(
    field: F.Field, value: int
) -> None:
    with pytest.raises(ValueError, match=re.escape(field.name)):
        field.put(0, value)


def test_encode_unknown_field_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no field 'PPNX'"):
        F.DDTP.encode(PPNX=1)


def test_encode_out_of_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="ddtp.iommu_mode"):
        F.DDTP.encode(iommu_mode=16)


def test_decode_reports_reserved_bits_only_when_set() -> None:
    assert F.DDTE.decode(F.DDTE.encode(V=1, PPN=0x123)) == {"V": 1, "PPN": 0x123}
    assert F.DDTE.decode(1 | (1 << 63) | (1 << 5)) == {
        "V": 1,
        "PPN": 0,
        "reserved": (1 << 63) | (1 << 5),
    }


@st.composite
def layout_and_values(draw: st.DrawFn) -> Tuple[F.Layout, Dict[str, int]]:
    layout = draw(st.sampled_from(F.ALL_LAYOUTS))
    return layout, {n: draw(st.integers(0, f.max)) for n, f in layout.fields.items()}


@given(lv=layout_and_values())
@settings(max_examples=300, deadline=None)
def test_encode_decode_round_trip(lv: Tuple[F.Layout, Dict[str, int]]) -> None:
    layout, values = lv
    value = layout.encode(**values)
    assert 0 <= value <= layout.all
    assert value & layout.reserved == 0
    assert layout.decode(value) == values
    for name, v in values.items():
        assert layout.fields[name].get(value) == v


@given(layout=st.sampled_from(F.ALL_LAYOUTS), data=st.data())
@settings(max_examples=300, deadline=None)
def test_decode_encode_round_trip_of_raw_values(layout: F.Layout, data: st.DataObject) -> None:
    raw = data.draw(st.integers(0, layout.all))
    d = layout.decode(raw)
    reserved = d.pop("reserved", 0)
    assert reserved == raw & layout.reserved
    assert layout.encode(**d) | reserved == raw


# --------------------------------------------------------------------------
# Mechanical cross-check with the spec sources, when they are available
# --------------------------------------------------------------------------
SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "spec" / "riscv-iommu"

# (file, figure caption, occurrence, layout, spec name -> layout field name)
FIGURES: List[Tuple[str, str, int, F.Layout, Dict[str, str]]] = [
    ("iommu_data_structures.adoc", ".Non-leaf device-directory-table entry", 0, F.DDTE, {}),
    ("iommu_data_structures.adoc", ".Translation control (`tc`) field", 0, F.DC_TC, {}),
    (
        "iommu_data_structures.adoc",
        ".IO hypervisor guest address translation and protection (`iohgatp`) field",
        0,
        F.IOHGATP,
        {},
    ),
    ("iommu_data_structures.adoc", ".Translation attributes (`ta`) field", 0, F.DC_TA, {}),
    (
        "iommu_data_structures.adoc",
        ".IO Supervisor address translation and prot. (`iosatp`) field",
        0,
        F.IOSATP,
        {},
    ),
    (
        "iommu_data_structures.adoc",
        ".Process-directory table pointer (`pdtp`) field",
        0,
        F.PDTP,
        {},
    ),
    ("iommu_data_structures.adoc", ".MSI page table pointer (`msiptp`) field", 0, F.MSIPTP, {}),
    (
        "iommu_data_structures.adoc",
        ".MSI address mask (`msi_addr_mask`) field",
        0,
        F.MSI_ADDR_MASK,
        {},
    ),
    (
        "iommu_data_structures.adoc",
        ".MSI address pattern (`msi_addr_pattern`) field",
        0,
        F.MSI_ADDR_PATTERN,
        {},
    ),
    ("iommu_data_structures.adoc", ".Non-leaf process-directory-table entry", 0, F.PDTE, {}),
    ("iommu_data_structures.adoc", ".Translation attributes (`ta`) field", 1, F.PC_TA, {}),
    ("iommu_data_structures.adoc", ".Process First-Stage context", 0, F.PC_FSC, {}),
    ("iommu_registers.adoc", ".IOMMU capabilities register fields", 0, F.CAPABILITIES, {}),
    ("iommu_registers.adoc", ".Feature-control register fields", 0, F.FCTL, {}),
    ("iommu_registers.adoc", ".Device-directory-table pointer register fields", 0, F.DDTP, {}),
    (
        "iommu_registers.adoc",
        ".Command-queue base register fields",
        0,
        F.QUEUE_BASE,
        {"LOG2SZ-1": "LOG2SZ_1"},
    ),
    ("iommu_registers.adoc", ".Command-queue CSR register fields", 0, F.CQCSR, {}),
    ("iommu_registers.adoc", ".Fault queue CSR register fields", 0, F.FQCSR, {}),
    (
        "iommu_registers.adoc",
        ".Page-request-queue CSR register fields",
        0,
        F.PQCSR,
        {"Custom use": "custom"},
    ),
    ("iommu_registers.adoc", ".Interrupt pending status register fields", 0, F.IPSR, {}),
    (
        "iommu_registers.adoc",
        ".Performance-monitoring cycles counter register fields",
        0,
        F.IOHPMCYCLES,
        {},
    ),
    (
        "iommu_registers.adoc",
        ".Performance-monitoring event selector register fields",
        0,
        F.IOHPMEVT,
        {},
    ),
    ("iommu_registers.adoc", ".Translation-request IOVA register fields", 0, F.TR_REQ_IOVA, {}),
    (
        "iommu_registers.adoc",
        ".Translation-request control register fields",
        0,
        F.TR_REQ_CTL,
        {"Go/Busy": "Go_Busy"},
    ),
    ("iommu_registers.adoc", ".Translation-response register fields", 0, F.TR_RESPONSE, {}),
    ("iommu_registers.adoc", ".`iommu_qosid` register fields", 0, F.IOMMU_QOSID, {}),
    ("iommu_registers.adoc", ".Message address register fields", 0, F.MSI_ADDR, {}),
    ("iommu_registers.adoc", ".Vector control register fields", 0, F.MSI_VEC_CTL, {}),
    ("iommu_in_memory_queues.adoc", ".Fault-queue record", 0, F.FAULT_RECORD0, {}),
    ("iommu_in_memory_queues.adoc", ".Page-request-queue record", 0, F.PQ_RECORD0, {}),
]
# Names in figures that are not fields: reserved / zero / WPRI bits.
_NOT_FIELDS = {"reserved", "0", "WPRI"}


def _figure(path: Path, caption: str, occurrence: int) -> List[Tuple[str, int, int]]:
    """(name, lsb, width) of each bit group of the wavedrom figure after ``caption``."""
    text = path.read_text()
    idx = -1
    for _ in range(occurrence + 1):
        idx = text.index("\n" + caption + "\n", idx + 1)
    start = text.index("{reg:", idx)
    end = text.index("]", start)
    out = []
    lsb = 0
    for m in re.finditer(r"\{\s*bits:\s*(\d+),\s*name:\s*'([^']*)'", text[start:end]):
        width = int(m.group(1))
        out.append((m.group(2), lsb, width))
        lsb += width
    return out


@pytest.mark.parametrize(
    ("fname", "caption", "occurrence", "layout", "renames"),
    FIGURES,
    ids=[f"{x[3].name}" for x in FIGURES],
)
def test_layout_matches_the_parsed_spec_figure(
    fname: str, caption: str, occurrence: int, layout: F.Layout, renames: Dict[str, str]
) -> None:
    path = SPEC_DIR / fname
    if not path.exists():
        pytest.skip("spec sources not available")
    groups = _figure(path, caption, occurrence)
    assert groups[-1][1] + groups[-1][2] >= layout.bits
    spec = {
        renames.get(name, name): (lsb, width)
        for name, lsb, width in groups
        if name not in _NOT_FIELDS and lsb < layout.bits
    }
    got = {n: (f.lsb, f.width) for n, f in layout.fields.items()}
    assert got == spec
    reserved = 0
    for name, lsb, width in groups:
        if name in _NOT_FIELDS and lsb < layout.bits:
            reserved |= ((1 << width) - 1) << lsb
    assert layout.reserved == reserved
