"""First-stage and second-stage (G-stage) translation, §P2IOVA steps 17 and 19.

§"Process to translate an IOVA" step 17 (first stage) and step 19 (second
stage) invoke the Privileged specification's "Virtual Address Translation
Process" and "Two-Stage Address Translation" (cited here as "PTW step N"),
with Svnapot, Svpbmt, Svrsw60t59b and hardware A/D updating
(§"IOMMU updating of PTE accessed (A) and dirty (D) updates").  Fault records
follow §"Fault-queue record" (iotval = IOVA; iotval2 = GPA for guest-page
faults, bit 0 = implicit access for first-stage translation, bit 1 = that
implicit access was a write).

Most scenarios use a DC with PDTV=0 (iosatp in DC.fsc, PSCID in DC.ta, step
10); a few go through a PC (steps 14-16).  Single-stage scenarios are
parametrised over the stage: ``"s"`` is a first-stage-only walk (faults are
page faults, iotval2 = 0), ``"g"`` a G-stage-only walk (first stage Bare, the
IOVA is the GPA; faults are guest-page faults with iotval2 = GPA & ~3).
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    SV32,
    SV39,
    SV48,
    SV57,
    TC_GADE,
    TC_PDTV,
    TC_SADE,
    TC_SBE,
    TC_SXL,
    TC_V,
    System,
    ta,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import (
    URW,
    URWX,
    A,
    D,
    G,
    HostSpace,
    PageTable,
    R,
    U,
    W,
    X,
    pte,
)
from riscv_iommu.memory import MemoryFault

Access = rv.Access
Cause = rv.Cause

V = F.PTE.V.mask
N = F.PTE.N.mask
PBMT_SHIFT = F.PTE.PBMT.lsb
RSW60_59 = F.PTE.RSW60_59.mask

K4, K64, M2, M4, G1, G512, T256 = 1 << 12, 1 << 16, 1 << 21, 1 << 22, 1 << 30, 1 << 39, 1 << 48

DID = 0x2A
PSCID = 0x15
GSCID = 7
PID = 0x1234

#: The IOVA (first-stage-only) / GPA (G-stage-only) of the single-stage scenarios:
#: canonical for Sv39 and inside the 41-bit GPA space of Sv39x4.
VA = 0x4_0321_5678
PA = 0x1_2340_0000  # 2 MiB aligned
#: Data GPA of the two-stage scenarios, far from the guest's table pages (0x1000_0000...)
GPA = 0x2_0450_0000
SPA = 0x9_8760_0000

ACCESSES = list(Access)
TTYP = {
    Access.READ: rv.Ttyp.UNTRANSLATED_READ,
    Access.WRITE: rv.Ttyp.UNTRANSLATED_WRITE,
    Access.EXECUTE: rv.Ttyp.UNTRANSLATED_EXECUTE,
}
PF = {
    Access.READ: Cause.READ_PAGE_FAULT,
    Access.WRITE: Cause.WRITE_PAGE_FAULT,
    Access.EXECUTE: Cause.INSTRUCTION_PAGE_FAULT,
}
GPF = {
    Access.READ: Cause.READ_GUEST_PAGE_FAULT,
    Access.WRITE: Cause.WRITE_GUEST_PAGE_FAULT,
    Access.EXECUTE: Cause.INSTRUCTION_GUEST_PAGE_FAULT,
}
AF = {
    Access.READ: Cause.READ_ACCESS_FAULT,
    Access.WRITE: Cause.WRITE_ACCESS_FAULT,
    Access.EXECUTE: Cause.INSTRUCTION_ACCESS_FAULT,
}
STAGES = ["s", "g"]
AD_TC = {"s": TC_SADE, "g": TC_GADE}


# ---------------------------------------------------------------------------
# scenario builders
# ---------------------------------------------------------------------------
class Walk:
    """One device (DC with PDTV=0): first stage ``smode`` over G-stage ``gmode``.

    ``None`` makes a stage Bare.  With a G-stage, first-stage tables live in
    guest-physical memory (``self.space``).  ``sxl``/``gxl`` select Sv32 /
    Sv32x4 (GXL=1 is set through the reset value of fctl).  ``sbig`` is the
    byte order the first-stage table is built in and ``sbe`` the DC.tc.SBE
    value (default: the same); ``gbig`` the G-stage table's byte order
    (default: fctl.BE).
    """

    def __init__(
        self,
        smode: Optional[int] = SV39,
        gmode: Optional[int] = None,
        *,
        sxl: bool = False,
        gxl: bool = False,
        tc: int = 0,
        sbig: bool = False,
        sbe: Optional[bool] = None,
        gbig: Optional[bool] = None,
        fctl: int = 0,
        params: Optional[rv.IommuParams] = None,
        caps: Optional[rv.Capabilities] = None,
        **cap_overrides: Any,
    ) -> None:
        if gxl:
            fctl |= 4
        if params is None and sxl and not gxl:
            params = rv.IommuParams(gxl_writable=True)
        self.s = System(caps=caps, params=params, fctl=fctl, **cap_overrides)
        s = self.s
        self._g: Optional[PageTable] = None
        if gmode is not None:
            big = s.be if gbig is None else gbig
            self._g = PageTable(s.host, gmode, stage="g", xlen32=gxl, big=big)
        self.space: HostSpace = s.guest(self._g) if self._g is not None else s.host
        self._st: Optional[PageTable] = None
        if smode is not None:
            self._st = PageTable(self.space, smode, stage="s", xlen32=sxl, big=sbig)
        sbe = sbig if sbe is None else sbe
        self.tc = TC_V | tc | (TC_SXL if sxl else 0) | (TC_SBE if sbe else 0)
        s.ddt.set_dc(
            DID,
            tc=self.tc,
            iohgatp=self._g.satp(GSCID) if self._g is not None else 0,
            ta=ta(PSCID),
            fsc=self._st.satp() if self._st is not None else 0,
        )

    @property
    def st(self) -> PageTable:
        assert self._st is not None
        return self._st

    @property
    def g(self) -> PageTable:
        assert self._g is not None
        return self._g

    @property
    def mem(self) -> rv.SparseMemory:
        return self.s.mem

    def t(self, addr: int, access: Access = Access.READ, **kw: Any) -> rv.Response:
        return self.s.t(DID, addr, access, **kw)

    def map2(
        self,
        va: int,
        gpa: int,
        spa: int,
        s_size: int = K4,
        g_size: int = K4,
        s_flags: int = URWX | A | D,
        g_flags: int = URWX | A | D,
        s_pbmt: int = 0,
        g_pbmt: int = 0,
    ) -> Tuple[int, int]:
        """Map ``va`` -> ``gpa`` (first stage) and ``gpa`` -> ``spa`` (G-stage).

        Returns (GPA of the first-stage leaf PTE, SPA of the G-stage leaf PTE).
        """
        s_pte = self.st.map(va, gpa, s_size, flags=s_flags, pbmt=s_pbmt)
        g_pte = self.g.map(gpa, spa, g_size, flags=g_flags, pbmt=g_pbmt)
        return s_pte, g_pte

    def spa_of(self, addr: int) -> int:
        """SPA of an address of the first-stage table's space."""
        return self.space.to_spa(addr)

    def pte_bytes(self, spa: int, size: int = 8) -> bytes:
        return self.mem.read(spa, size)


#: With one stage Bare the reported range size is implementation-defined (§ATS_FAULTS
#: note: "when either stages of address translation are Bare"); the model reports
#: min(other stage's page, IommuParams.bare_range_size).  Single-stage scenarios use a
#: huge bare_range_size so that the page size of the stage in use shows.
WIDE = rv.IommuParams(bare_range_size=1 << 56)


def single(stage: str, **kw: Any) -> Tuple[Walk, PageTable]:
    """A single-stage Sv39 (``"s"``) or Sv39x4 (``"g"``) scenario and its table."""
    kw.setdefault("params", WIDE)
    if stage == "s":
        w = Walk(SV39, None, **kw)
        return w, w.st
    w = Walk(None, SV39, **kw)
    return w, w.g


def le(value: int, size: int = 8) -> bytes:
    return value.to_bytes(size, "little")


def be(value: int, size: int = 8) -> bytes:
    return value.to_bytes(size, "big")


def write_raw(pt: PageTable, addr: int, value: int) -> None:
    """Overwrite one PTE of ``pt`` (``addr`` in the table's space)."""
    if pt.geom[2] == 4:
        pt.space.write_u32(addr, value, pt.big)
    else:
        pt.space.write_u64(addr, value, pt.big)


def read_raw(pt: PageTable, addr: int) -> int:
    if pt.geom[2] == 4:
        return int.from_bytes(
            pt.space.mem.read(pt.space.to_spa(addr), 4), "big" if pt.big else "little"
        )
    return pt.space.read_u64(addr, pt.big)


def ok(
    addr: int,
    size: int = K4,
    perms: str = "rwx",
    g: bool = False,
    pbmt: int = 0,
    priv: bool = False,
) -> rv.Response:
    """The complete successful Response of step 20."""
    return rv.Response(
        rv.Status.SUCCESS,
        addr,
        r="r" in perms,
        w="w" in perms,
        x="x" in perms,
        g=g,
        priv=priv,
        pbmt=pbmt,
        size=size,
        s=size > K4,
    )


def failed(
    cause: int,
    iova: int,
    access: Access,
    iotval2: int = 0,
    pid: Optional[int] = None,
    priv: bool = False,
) -> rv.Response:
    """The complete Response of a reported fault (Completer Abort)."""
    rec = rv.FaultRecord(
        cause=cause,
        ttyp=TTYP[access],
        iotval=iova,
        iotval2=iotval2,
        device_id=DID,
        process_id=0 if pid is None else pid,
        pv=pid is not None,
        priv=priv,
    )
    return rv.Response(rv.Status.COMPLETER_ABORT, 0, fault=rec, reported=True)


def stage_fault(stage: str, iova: int, access: Access) -> rv.Response:
    """The fault of a single-stage scenario: page fault, or guest-page fault with iotval2=GPA."""
    if stage == "s":
        return failed(PF[access], iova, access)
    return failed(GPF[access], iova, access, iova & ~3)


def _size_id(size: int) -> str:
    return {K4: "4K", M2: "2M", M4: "4M", G1: "1G", G512: "512G", T256: "256T"}[size]


S_MODES = [
    ("Sv39", SV39, False, (K4, M2, G1)),
    ("Sv48", SV48, False, (K4, M2, G1, G512)),
    ("Sv57", SV57, False, (K4, M2, G1, G512, T256)),
    ("Sv32", SV32, True, (K4, M4)),
]
G_MODES = [
    ("Sv39x4", SV39, False, (K4, M2, G1)),
    ("Sv48x4", SV48, False, (K4, M2, G1, G512)),
    ("Sv57x4", SV57, False, (K4, M2, G1, G512, T256)),
    ("Sv32x4", SV32, True, (K4, M4)),
]


def _mode_size_params(modes: List[Tuple[str, int, bool, Tuple[int, ...]]]) -> List[Any]:
    return [
        pytest.param(mode, x32, size, id=f"{name}-{_size_id(size)}")
        for name, mode, x32, sizes in modes
        for size in sizes
    ]


# ---------------------------------------------------------------------------
# Every mode, every page size
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "sxl", "size"), _mode_size_params(S_MODES))
def test_step17_first_stage_every_mode_and_page_size(mode: int, sxl: bool, size: int) -> None:
    """Step 17 / PTW steps 1-8: Sv39/Sv48/Sv57 (SXL=0) and Sv32 (SXL=1) leaves of every size.

    PTW step 8: pa = leaf PPN (page-aligned to the leaf's level) | IOVA offset within the page;
    the response reports the page size.
    """
    params = rv.IommuParams(bare_range_size=1 << 56, gxl_writable=sxl)
    w = Walk(mode, None, sxl=sxl, params=params)
    off = (size // 2) | 0x123
    va = 5 * size + off
    pa = 3 * size
    w.st.map(va - off, pa, size)
    assert w.t(va, Access.READ) == ok(pa + off, size)
    assert w.t(va, Access.WRITE) == ok(pa + off, size)
    assert w.t(va, Access.EXECUTE) == ok(pa + off, size)


@pytest.mark.parametrize(("mode", "gxl", "size"), _mode_size_params(G_MODES))
def test_step19_g_stage_every_mode_and_page_size(mode: int, gxl: bool, size: int) -> None:
    """Step 19: Sv39x4/Sv48x4/Sv57x4 (fctl.GXL=0) and Sv32x4 (GXL=1, SXL=1) of every size.

    First stage Bare (DC.fsc = 0): the IOVA is the GPA translated by DC.iohgatp.
    """
    w = Walk(None, mode, sxl=gxl, gxl=gxl, params=WIDE)
    off = (size // 2) | 0x123
    gpa = 5 * size + off
    spa = 3 * size
    w.g.map(gpa - off, spa, size)
    assert w.t(gpa, Access.READ) == ok(spa + off, size)
    assert w.t(gpa, Access.WRITE) == ok(spa + off, size)
    assert w.t(gpa, Access.EXECUTE) == ok(spa + off, size)


@pytest.mark.parametrize("size", [M2, G1])
def test_step20_g_stage_only_size_capped_by_bare_range_size(size: int) -> None:
    """Step 20 with the first stage Bare: the range size is implementation-defined (note in
    §"PCIe ATS translation request handling"); the model reports the smaller of the G-stage
    page and IommuParams.bare_range_size (default 2 MiB)."""
    w = Walk(None, SV39)
    w.g.map(G1 * 3, G1 * 5, size)
    assert w.t(G1 * 3 + 0x123) == ok(G1 * 5 + 0x123, min(size, 1 << 21))


@pytest.mark.parametrize(
    ("mode", "gxl", "gpa"),
    [
        pytest.param(SV39, False, (3 << 39) | 0x5_6789, id="Sv39x4"),
        pytest.param(SV48, False, (3 << 48) | 0x5_6789, id="Sv48x4"),
        pytest.param(SV57, False, (3 << 57) | 0x5_6789, id="Sv57x4"),
        pytest.param(SV32, True, (3 << 32) | 0x5_6789, id="Sv32x4"),
    ],
)
def test_step19_x4_root_table_takes_two_extra_gpa_bits(mode: int, gxl: bool, gpa: int) -> None:
    """Step 19 / Priv "Two-Stage Address Translation": the x4 root is 16 KiB and indexed by
    two more GPA bits (GPA widths 41/50/59/34 bits)."""
    w = Walk(None, mode, sxl=gxl, gxl=gxl)
    w.g.map(gpa & ~0xFFF, 0xABCD_E000)
    assert w.t(gpa) == ok(0xABCD_E789)


@pytest.mark.parametrize(
    ("smode", "gmode", "sxl", "gxl"),
    [
        pytest.param(SV39, SV39, False, False, id="Sv39+Sv39x4"),
        pytest.param(SV48, SV48, False, False, id="Sv48+Sv48x4"),
        pytest.param(SV57, SV57, False, False, id="Sv57+Sv57x4"),
        pytest.param(SV32, SV39, True, False, id="Sv32+Sv39x4"),
        pytest.param(SV32, SV32, True, True, id="Sv32+Sv32x4"),
    ],
)
def test_steps17_19_two_stage_every_mode_pair(smode: int, gmode: int, sxl: bool, gxl: bool) -> None:
    """Steps 17 and 19: first-stage tables in guest memory (each PTE address is a GPA translated
    by the G-stage), then the final GPA translated by the G-stage."""
    w = Walk(smode, gmode, sxl=sxl, gxl=gxl)
    spa = 0x3_8765_4000  # 34 bits: reachable by a Sv32x4 PTE
    w.map2(0x0123_4000, GPA, spa)
    assert w.t(0x0123_4ABC, Access.WRITE) == ok(spa | 0xABC)
    # the first-stage root really is a GPA: not mapped in the host at that address
    assert w.st.root != w.spa_of(w.st.root)


# ---------------------------------------------------------------------------
# IOVA / GPA width checks
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "iova"),
    [
        pytest.param(SV39, 0xFFFF_FFC0_0000_1ABC, id="Sv39"),
        pytest.param(SV48, 0xFFFF_8000_0000_1ABC, id="Sv48"),
        pytest.param(SV57, 0xFF00_0000_0000_1ABC, id="Sv57"),
    ],
)
def test_step17_canonical_upper_half_iova_translates(mode: int, iova: int) -> None:
    """PTW (Sv39/48/57): an IOVA whose bits 63:VALEN-1 are all ones is canonical."""
    w = Walk(mode)
    w.st.map(iova & ~0xFFF, 0x5_5555_5000)
    assert w.t(iova) == ok(0x5_5555_5ABC)


@pytest.mark.parametrize("access", ACCESSES)
@pytest.mark.parametrize(
    ("mode", "iova"),
    [
        pytest.param(SV39, 1 << 38, id="Sv39-bit38"),
        pytest.param(SV39, (1 << 63) | 0x1000, id="Sv39-bit63"),
        pytest.param(SV39, 0xFFFF_FF80_0000_1000, id="Sv39-bit38-clear"),
        pytest.param(SV48, 1 << 47, id="Sv48-bit47"),
        pytest.param(SV48, 1 << 50, id="Sv48-bit50"),
        pytest.param(SV57, 1 << 56, id="Sv57-bit56"),
        pytest.param(SV57, 1 << 60, id="Sv57-bit60"),
    ],
)
def test_step17_non_canonical_iova_is_page_fault(mode: int, iova: int, access: Access) -> None:
    """PTW: an IOVA whose bits 63:VALEN-1 are not all equal raises a page fault for the access.

    The low-order translation is mapped, so only the canonical check can fail.
    """
    w = Walk(mode)
    w.st.map(iova & ((1 << 39) - 1) & ~0xFFF, 0x5_5555_5000)
    assert w.t(iova, access) == failed(PF[access], iova, access)


@pytest.mark.parametrize("access", ACCESSES)
def test_step17_sxl1_iova_beyond_bit31_is_page_fault(access: Access) -> None:
    """§DC.tc.SXL: SXL=1 and first stage not Bare -> page fault if the IOVA has bits beyond 31."""
    w = Walk(SV32, None, sxl=True)
    w.st.map(0x1000, 0x7000)
    assert w.t(0x1010, access) == ok(0x7010)
    iova = (1 << 32) | 0x1010
    assert w.t(iova, access) == failed(PF[access], iova, access)


@pytest.mark.parametrize("access", ACCESSES)
@pytest.mark.parametrize("gxl", [False, True], ids=["Sv39x4-GXL0", "Sv32x4-GXL1"])
def test_step19_sxl1_gpa_beyond_bit33_is_guest_page_fault(gxl: bool, access: Access) -> None:
    """§DC.tc.SXL: SXL=1 and G-stage not Bare -> guest-page fault if the GPA has bits beyond 33.

    With GXL=0 the G-stage is Sv39x4 (41-bit GPAs) but SXL=1 still limits the GPA to 34 bits.
    """
    w = Walk(None, SV39 if not gxl else SV32, sxl=True, gxl=gxl)
    w.g.map(0x3_0000_0000, 0x7000)
    assert w.t(0x3_0000_0013, access) == ok(0x7013)
    if not gxl:
        w.g.map(0x7_0000_0000, 0x8000)  # mapped in Sv39x4, but beyond 34 bits
    gpa = 0x7_0000_0013
    assert w.t(gpa, access) == failed(GPF[access], gpa, access, 0x7_0000_0010)


@pytest.mark.parametrize("access", ACCESSES)
@pytest.mark.parametrize(
    ("mode", "bit"),
    [
        pytest.param(SV39, 41, id="Sv39x4"),
        pytest.param(SV48, 50, id="Sv48x4"),
        pytest.param(SV57, 59, id="Sv57x4"),
    ],
)
def test_step19_gpa_wider_than_x4_mode_is_guest_page_fault(
    mode: int, bit: int, access: Access
) -> None:
    """Priv "Two-Stage Address Translation": GPA bits above the x4 width must be 0, else a
    guest-page fault; iotval2 = GPA with bits 1:0 cleared."""
    w = Walk(None, mode)
    w.g.map(0x5000, 0x7000)
    gpa = (1 << bit) | 0x5017
    assert w.t(gpa, access) == failed(GPF[access], gpa, access, gpa & ~3)
    assert w.t(0x5017, access) == ok(0x7017)


def test_step19_first_stage_output_gpa_wider_than_sv39x4_is_guest_page_fault() -> None:
    """Step 19: the first stage yields a GPA with bit 41 set; the G-stage faults on it (not
    an implicit access: iotval2 bits 1:0 = 0)."""
    w = Walk(SV39, SV39)
    gpa = (1 << 41) | 0x6000
    w.st.map(0x4000, gpa)
    assert w.t(0x4567, Access.WRITE) == failed(
        Cause.WRITE_GUEST_PAGE_FAULT, 0x4567, Access.WRITE, gpa | 0x564
    )


def test_step17_first_stage_pte_gpa_wider_than_sv39x4_is_implicit_guest_page_fault() -> None:
    """Step 17: the root PTE address (iosatp.PPN << 12 + vpn*8) is a GPA with bit 41 set: a
    guest-page fault of the implicit access (iotval2 bit 0 = 1)."""
    w = Walk(SV39, SV39)
    root = 1 << 41
    w.s.ddt.set_dc(
        DID, tc=w.tc, iohgatp=w.g.satp(GSCID), ta=ta(PSCID), fsc=(SV39 << 60) | root >> 12
    )
    iova = 0x4020_1000  # vpn[2] = 1
    assert w.t(iova, Access.EXECUTE) == failed(
        Cause.INSTRUCTION_GUEST_PAGE_FAULT, iova, Access.EXECUTE, root | 8 | 1
    )


# ---------------------------------------------------------------------------
# PTE format (both stages): PTW steps 3, 4 and 6
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("access", ACCESSES)
def test_ptw3_leaf_v0_faults(stage: str, access: Access) -> None:
    """PTW step 3: pte.v = 0 -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, PA, flags=URWX | A | D)
    assert w.t(VA, access) == ok(PA | 0x678)
    w2, pt2 = single(stage)
    pt2.map(VA, PA, raw=pte(PA >> 12, URWX | A | D, valid=False))
    assert w2.t(VA, access) == stage_fault(stage, VA, access)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("level", [2, 1])
def test_ptw3_non_leaf_v0_faults(stage: str, level: int) -> None:
    """PTW step 3: a pointer PTE with v = 0 -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, PA)
    slot = pt.pte_addr(VA, level)
    write_raw(pt, slot, read_raw(pt, slot) & ~V)
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("access", ACCESSES)
@pytest.mark.parametrize("xwr", [0b010, 0b110], ids=["xwr010-shadow-stack", "xwr110"])
def test_ptw3_w_without_r_faults(stage: str, access: Access, xwr: int) -> None:
    """PTW step 3: r = 0 and w = 1 is reserved -> (guest-)page fault.

    §P2IOVA: the Zicfiss shadow-stack encoding xwr=010 remains reserved for IO transactions.
    """
    w, pt = single(stage)
    flags = U | A | D | (X if xwr & 4 else 0) | W
    pt.map(VA, PA, raw=pte(PA >> 12, flags))
    assert w.t(VA, access) == stage_fault(stage, VA, access)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("flags", "access"),
    [
        pytest.param(U | X, Access.READ, id="read-X-only"),
        pytest.param(U | R, Access.WRITE, id="write-R-only"),
        pytest.param(U | R | X, Access.WRITE, id="write-RX"),
        pytest.param(URW, Access.EXECUTE, id="exec-RW"),
        pytest.param(U | R, Access.EXECUTE, id="exec-R-only"),
    ],
)
def test_ptw5_missing_permission_faults(stage: str, flags: int, access: Access) -> None:
    """PTW step 5: the leaf must grant the access type (R for read, W for write/AMO, X for
    execute; no MXR for IO) -> else (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, PA, flags=flags | A | D)
    assert w.t(VA, access) == stage_fault(stage, VA, access)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("flags", "access", "perms"),
    [
        pytest.param(U | X, Access.EXECUTE, "x", id="exec-X-only"),
        pytest.param(U | R, Access.READ, "r", id="read-R-only"),
        pytest.param(URW, Access.WRITE, "rw", id="write-RW"),
    ],
)
def test_ptw5_granted_permission_reported(
    stage: str, flags: int, access: Access, perms: str
) -> None:
    """PTW step 5 passes; step 20 reports exactly the leaf's R/W/X."""
    w, pt = single(stage)
    pt.map(VA, PA, flags=flags | A | D)
    assert w.t(VA, access) == ok(PA | 0x678, perms=perms)


@pytest.mark.parametrize("access", ACCESSES)
def test_ptw5_first_stage_u0_page_faults_for_user_request(access: Access) -> None:
    """PTW step 5: a request without process_id is a user-mode access; a U=0 first-stage leaf
    -> page fault."""
    w = Walk(SV39)
    w.st.map(VA, PA, flags=R | W | X | A | D)
    assert w.t(VA, access) == failed(PF[access], VA, access)


@pytest.mark.parametrize("access", ACCESSES)
def test_ptw5_g_stage_u0_leaf_is_guest_page_fault(access: Access) -> None:
    """Priv: G-stage accesses are user-level accesses, so a G-stage leaf with U=0 -> guest-page
    fault (iotval2 = GPA)."""
    w = Walk(None, SV39)
    w.g.map(VA, PA, flags=R | W | X | A | D)
    assert w.t(VA, access) == failed(GPF[access], VA, access, VA & ~3)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("size", "ppn_low"),
    [
        pytest.param(M2, 1, id="2M-ppn0"),
        pytest.param(M2, 0x100, id="2M-ppn8"),
        pytest.param(G1, 0x200, id="1G-ppn9"),
        pytest.param(G1, 0x20000, id="1G-ppn17"),
    ],
)
def test_ptw6_misaligned_superpage_faults(stage: str, size: int, ppn_low: int) -> None:
    """PTW step 6: a superpage leaf whose low PPN fields are not zero -> (guest-)page fault."""
    w, pt = single(stage)
    base = 0x40_0000_0000 >> 12  # 256 GiB: aligned for every size here
    pt.map(VA & ~(size - 1), 0, size, raw=pte(base | ppn_low, URWX | A | D))
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)
    w2, pt2 = single(stage)
    pt2.map(VA & ~(size - 1), 0, size, raw=pte(base, URWX | A | D))
    assert w2.t(VA) == ok((base << 12) | (VA & (size - 1)), size)


@pytest.mark.parametrize("stage", STAGES)
def test_ptw4_non_leaf_at_last_level_faults(stage: str) -> None:
    """PTW step 4: a pointer PTE (R=W=X=0, V=1) at level 0 -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, 0, raw=pte(0x9_0000, 0))
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("level", [2, 1])
@pytest.mark.parametrize(
    "bit",
    [
        pytest.param(D, id="D"),
        pytest.param(A, id="A"),
        pytest.param(U, id="U"),
        pytest.param(N, id="N"),
        pytest.param(1 << PBMT_SHIFT, id="PBMT1"),
        pytest.param(2 << PBMT_SHIFT, id="PBMT2"),
    ],
)
def test_ptw3_non_leaf_with_reserved_bits_faults(stage: str, level: int, bit: int) -> None:
    """PTW step 3: D, A and U are reserved in non-leaf PTEs (Priv), as are N (Svnapot) and
    PBMT (Svpbmt) -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, PA)
    slot = pt.pte_addr(VA, level)
    write_raw(pt, slot, read_raw(pt, slot) | bit)
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


@pytest.mark.parametrize("stage", STAGES)
def test_ptw3_non_leaf_g_bit_is_allowed(stage: str) -> None:
    """Priv: G in a non-leaf PTE is not reserved (global mapping / ignored in G-stage)."""
    w, pt = single(stage)
    pt.map(VA, PA)
    slot = pt.pte_addr(VA, 1)
    write_raw(pt, slot, read_raw(pt, slot) | G)
    assert w.t(VA) == ok(PA | 0x678)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("bit", range(54, 59))
@pytest.mark.parametrize("leaf", [True, False], ids=["leaf", "non-leaf"])
def test_ptw3_reserved_bits_58_54_fault(stage: str, bit: int, leaf: bool) -> None:
    """PTW step 3: PTE bits 58:54 are reserved for future standard use -> (guest-)page fault."""
    w, pt = single(stage)
    leaf_addr = pt.map(VA, PA)
    slot = leaf_addr if leaf else pt.pte_addr(VA, 1)
    write_raw(pt, slot, read_raw(pt, slot) | (1 << bit))
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("leaf", [True, False], ids=["leaf", "non-leaf"])
def test_svrsw60t59b_bits_ignored_when_supported(stage: str, bits: int, leaf: bool) -> None:
    """Svrsw60t59b (capabilities.Svrsw60t59b=1): PTE bits 60:59 are for software, ignored."""
    w, pt = single(stage, svrsw60t59b=True)
    leaf_addr = pt.map(VA, PA)
    slot = leaf_addr if leaf else pt.pte_addr(VA, 1)
    write_raw(pt, slot, read_raw(pt, slot) | (bits << 59))
    assert w.t(VA) == ok(PA | 0x678)


@pytest.mark.parametrize("gmode", [None, SV39], ids=["single-stage", "two-stage"])
def test_svrsw60t59b_bits_in_every_pointer_then_an_ad_update(gmode: Optional[int]) -> None:
    """Svrsw60t59b: bits 60:59 set in both non-leaf PTEs of the first stage (software's,
    not part of the PPN: the walk read in place follows the PPN alone) above a leaf
    without A: the walk translates, and PTW step 7 sets A in that leaf."""
    w = Walk(SV39, gmode, tc=TC_SADE | TC_GADE, params=WIDE, svrsw60t59b=True)
    target = PA if gmode is None else GPA
    leaf = w.st.map(VA, target, flags=URWX)
    if gmode is not None:
        w.g.map(GPA, SPA)
    for level, bits in ((2, 1), (1, 2)):
        slot = w.st.pte_addr(VA, level)
        write_raw(w.st, slot, read_raw(w.st, slot) | (bits << 59))
    assert w.t(VA) == ok((PA if gmode is None else SPA) | 0x678)
    assert w.pte_bytes(w.spa_of(leaf)) == le(pte(target >> 12, URWX | A))


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("leaf", [True, False], ids=["leaf", "non-leaf"])
def test_svrsw60t59b_bits_reserved_when_not_supported(stage: str, bits: int, leaf: bool) -> None:
    """Without Svrsw60t59b, PTE bits 60:59 are reserved -> PTW step 3 (guest-)page fault."""
    w, pt = single(stage, svrsw60t59b=False)
    leaf_addr = pt.map(VA, PA)
    slot = leaf_addr if leaf else pt.pte_addr(VA, 1)
    write_raw(pt, slot, read_raw(pt, slot) | (bits << 59))
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


# ---------------------------------------------------------------------------
# Svnapot
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("access", ACCESSES)
def test_svnapot_64k_page(stage: str, access: Access) -> None:
    """Svnapot: N=1 with ppn[3:0]=1000 at level 0 maps a 64 KiB page; pa takes IOVA bits 15:12."""
    w, pt = single(stage)
    pt.map(VA & ~0xFFFF, 0x9_8760_0000, K64)
    assert w.t(VA, access) == ok(0x9_8760_0000 | (VA & 0xFFFF), K64)


def test_svnapot_64k_both_stages_size_is_64k() -> None:
    """Svnapot in both stages: the response size is 64 KiB."""
    w = Walk(SV39, SV39)
    w.map2(0x5_0000, 0x2_0000_0000, 0x9_8760_0000, K64, K64)
    assert w.t(0x5_ABCD) == ok(0x9_8760_ABCD, K64)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("size", [M2, G1])
def test_svnapot_n_at_superpage_level_faults(stage: str, size: int) -> None:
    """Svnapot: N=1 in a leaf above level 0 is reserved -> (guest-)page fault."""
    w, pt = single(stage)
    base = 0x40_0000_0000 >> 12
    pt.map(VA & ~(size - 1), 0, size, raw=pte(base, URWX | A | D, napot=True))
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("nibble", [0b0000, 0b0001, 0b0100, 0b1100, 0b1001, 0b1111])
def test_svnapot_reserved_ppn_low_bits_fault(stage: str, nibble: int) -> None:
    """Svnapot: N=1 with ppn[3:0] != 1000 is a reserved encoding -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, 0, raw=pte(0x9_8760 | nibble, URWX | A | D, napot=True))
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


@pytest.mark.parametrize("stage", STAGES)
def test_svnapot_n_on_non_leaf_faults(stage: str) -> None:
    """Svnapot: N is reserved in a non-leaf PTE -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, PA)
    slot = pt.pte_addr(VA, 1)
    write_raw(pt, slot, read_raw(pt, slot) | N)
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)


# ---------------------------------------------------------------------------
# Svpbmt
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("pbmt", [1, 2])
def test_svpbmt_reported_in_response(stage: str, pbmt: int) -> None:
    """Svpbmt: the leaf's PBMT (1 = NC, 2 = IO) is given to the IO bridge (rsp.pbmt)."""
    w, pt = single(stage)
    pt.map(VA, PA, pbmt=pbmt)
    assert w.t(VA) == ok(PA | 0x678, pbmt=pbmt)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("access", ACCESSES)
def test_svpbmt_3_is_reserved(stage: str, access: Access) -> None:
    """Svpbmt: PBMT=3 is reserved -> (guest-)page fault."""
    w, pt = single(stage)
    pt.map(VA, PA, pbmt=3)
    assert w.t(VA, access) == stage_fault(stage, VA, access)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("pbmt", [1, 2])
def test_svpbmt_bits_reserved_without_capability(stage: str, pbmt: int) -> None:
    """capabilities.Svpbmt=0: PTE bits 62:61 are reserved -> (guest-)page fault."""
    w, pt = single(stage, svpbmt=False)
    pt.map(VA, PA, pbmt=pbmt)
    assert w.t(VA) == stage_fault(stage, VA, Access.READ)
    w2, pt2 = single(stage, svpbmt=False)
    pt2.map(VA, PA)
    assert w2.t(VA) == ok(PA | 0x678)


@pytest.mark.parametrize(
    ("s_pbmt", "g_pbmt", "want"),
    [(0, 0, 0), (1, 0, 1), (0, 2, 2), (1, 2, 1), (2, 1, 2)],
)
def test_svpbmt_first_stage_overrides_g_stage(s_pbmt: int, g_pbmt: int, want: int) -> None:
    """Svpbmt (Priv, two-stage): non-zero first-stage PBMT overrides the G-stage PBMT, which
    applies otherwise; the resolved type is reported (§"Device Translation Completion")."""
    w = Walk(SV39, SV39)
    w.map2(0x1000, GPA, SPA, s_pbmt=s_pbmt, g_pbmt=g_pbmt)
    assert w.t(0x1234) == ok(SPA | 0x234, pbmt=want)


def test_svpbmt_g_stage_pbmt3_is_guest_page_fault_in_two_stage() -> None:
    """Svpbmt: a reserved PBMT=3 in the G-stage leaf of the final GPA -> guest-page fault."""
    w = Walk(SV39, SV39)
    w.map2(0x1000, GPA, SPA, s_pbmt=1, g_pbmt=3)
    assert w.t(0x1234, Access.WRITE) == failed(
        Cause.WRITE_GUEST_PAGE_FAULT, 0x1234, Access.WRITE, GPA | 0x234
    )


# ---------------------------------------------------------------------------
# Two-stage: response fields and guest-page faults with iotval2
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("s_flags", "g_flags", "access", "perms"),
    [
        pytest.param(URWX, URWX, Access.READ, "rwx", id="rwx&rwx"),
        pytest.param(U | R | X, URW, Access.READ, "r", id="rx&rw"),
        pytest.param(URW, URWX, Access.WRITE, "rw", id="rw&rwx"),
        pytest.param(URWX, U | R | X, Access.EXECUTE, "rx", id="rwx&rx"),
        pytest.param(U | X, URWX, Access.EXECUTE, "x", id="x&rwx"),
    ],
)
def test_step20_permissions_are_intersection_of_both_stages(
    s_flags: int, g_flags: int, access: Access, perms: str
) -> None:
    """Steps 17-20: the permissions granted are those of both stages' leaves."""
    w = Walk(SV39, SV39)
    w.map2(0x1000, GPA, SPA, s_flags=s_flags | A | D, g_flags=g_flags | A | D)
    assert w.t(0x1FF8, access) == ok(SPA | 0xFF8, perms=perms)


@pytest.mark.parametrize(
    ("s_flags", "g_flags", "access"),
    [
        pytest.param(URWX, U | R | X, Access.WRITE, id="g-no-W"),
        pytest.param(URWX, URW, Access.EXECUTE, id="g-no-X"),
        pytest.param(URWX, U | X, Access.READ, id="g-no-R"),
    ],
)
def test_step19_g_stage_permission_fault_after_first_stage_success(
    s_flags: int, g_flags: int, access: Access
) -> None:
    """Step 19 / PTW step 5 in the G-stage: final GPA translation without permission ->
    guest-page fault; iotval2 = GPA with bits 1:0 = 0 (not an implicit access)."""
    w = Walk(SV39, SV39)
    w.map2(0x1000, GPA, SPA, s_flags=s_flags | A | D, g_flags=g_flags | A | D)
    assert w.t(0x1567, access) == failed(GPF[access], 0x1567, access, GPA | 0x564)


@pytest.mark.parametrize(
    ("s_size", "g_size", "want"),
    [
        pytest.param(M2, K4, K4, id="2M-over-4K"),
        pytest.param(K4, G1, K4, id="4K-over-1G"),
        pytest.param(G1, M2, M2, id="1G-over-2M"),
        pytest.param(M2, G1, M2, id="2M-over-1G"),
        pytest.param(K64, M2, K64, id="64K-over-2M"),
        pytest.param(M2, K64, K64, id="2M-over-64K"),
    ],
)
def test_step20_size_is_smaller_of_the_two_stages(s_size: int, g_size: int, want: int) -> None:
    """Steps 17-20: the translation's range is the smaller of the two stages' pages."""
    w = Walk(SV39, SV39)
    va = 0x20_0000_0000  # 1 GiB aligned, canonical
    gpa = 0x40_0000_0000
    spa = 0x80_0000_0000
    off = 0x1_2345
    w.st.map((va + off) & ~(s_size - 1), (gpa + off) & ~(s_size - 1), s_size)
    w.g.map((gpa + off) & ~(g_size - 1), (spa + off) & ~(g_size - 1), g_size)
    assert w.t(va + off) == ok(spa + off, want)


@pytest.mark.parametrize("access", ACCESSES)
def test_step19_final_gpa_unmapped_guest_page_fault_iotval2(access: Access) -> None:
    """Step 19: G-stage fault on the final GPA: iotval2[63:2] = GPA[63:2], bits 1:0 = 0."""
    w = Walk(SV39, SV39)
    w.st.map(0x1000, GPA)  # the GPA is not mapped in the G-stage
    iova = 0x1ABF
    assert w.t(iova, access) == failed(GPF[access], iova, access, GPA | 0xABC)


@pytest.mark.parametrize("access", ACCESSES)
def test_step17_implicit_pte_read_unmapped_root_guest_page_fault(access: Access) -> None:
    """Step 17: the G-stage translation of a first-stage PTE address (an implicit read) faults:
    guest-page fault for the original access type, iotval2 = PTE GPA | 1."""
    w = Walk(SV39, SV39)
    root = 0x5000_0000  # not mapped in the G-stage
    w.s.ddt.set_dc(
        DID, tc=w.tc, iohgatp=w.g.satp(GSCID), ta=ta(PSCID), fsc=(SV39 << 60) | root >> 12
    )
    iova = 0x4020_1000  # vpn[2] = 1
    assert w.t(iova, access) == failed(GPF[access], iova, access, root + 8 + 1)


@pytest.mark.parametrize("level", [1, 0])
def test_step17_implicit_pte_read_of_lower_level_table_guest_page_fault(level: int) -> None:
    """Step 17: the leaf/intermediate first-stage table page is not mapped by the G-stage:
    iotval2 = GPA of that PTE | 1."""
    w = Walk(SV39, SV39)
    w.map2(0x0123_4000, GPA, SPA)
    pte_gpa = w.st.pte_addr(0x0123_4000, level)
    w.g.unmap(pte_gpa & ~0xFFF)
    assert w.t(0x0123_4000) == failed(
        Cause.READ_GUEST_PAGE_FAULT, 0x0123_4000, Access.READ, pte_gpa | 1
    )


@pytest.mark.parametrize(
    "g_flags",
    [
        pytest.param(R | W | A | D, id="U0"),
        pytest.param(U | X | A | D, id="no-R"),
    ],
)
def test_step17_implicit_pte_read_needs_user_read_permission(g_flags: int) -> None:
    """Priv: G-stage checks of implicit first-stage PTE reads are user-level reads (U=1, R=1);
    else guest-page fault, iotval2 = PTE GPA | 1, cause for the original (write) access."""
    w = Walk(SV39, SV39)
    w.map2(0x0123_4000, GPA, SPA)
    pte_gpa = w.st.pte_addr(0x0123_4000, 0)
    page = pte_gpa & ~0xFFF
    w.space.back(page, w.space.to_spa(page), flags=g_flags)  # type: ignore[attr-defined]
    assert w.t(0x0123_4000, Access.WRITE) == failed(
        Cause.WRITE_GUEST_PAGE_FAULT, 0x0123_4000, Access.WRITE, pte_gpa | 1
    )


@pytest.mark.parametrize("access", ACCESSES)
def test_step17_ad_update_implicit_write_guest_page_fault(access: Access) -> None:
    """SADE=1, first-stage leaf with A=0: the A/D update is an implicit write whose G-stage
    translation needs W; the table page is mapped without W -> guest-page fault for the
    original access, iotval2 = PTE GPA | 3.  The PTE is not changed."""
    w = Walk(SV39, SV39, tc=TC_SADE | TC_GADE)
    s_pte, _ = w.map2(0x0123_4000, GPA, SPA, s_flags=URWX)
    page = s_pte & ~0xFFF
    w.space.back(page, w.space.to_spa(page), flags=U | R | A | D)  # type: ignore[attr-defined]
    before = w.pte_bytes(w.spa_of(s_pte))
    assert w.t(0x0123_4000, access) == failed(GPF[access], 0x0123_4000, access, s_pte | 3)
    assert w.pte_bytes(w.spa_of(s_pte)) == before == le(pte(GPA >> 12, URWX))


# ---------------------------------------------------------------------------
# A/D bits
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("access", "flags", "after"),
    [
        pytest.param(Access.READ, URWX, URWX | A, id="read-sets-A"),
        pytest.param(Access.EXECUTE, URWX, URWX | A, id="exec-sets-A"),
        pytest.param(Access.WRITE, URWX, URWX | A | D, id="write-sets-AD"),
        pytest.param(Access.WRITE, URWX | A, URWX | A | D, id="write-sets-D"),
        pytest.param(Access.READ, URWX | A, URWX | A, id="read-A-set-D-clear-unchanged"),
    ],
)
def test_ad_update_enabled_sets_bits_in_memory(
    stage: str, access: Access, flags: int, after: int
) -> None:
    """§"IOMMU updating of PTE A and D" with AMO_HWAD and SADE/GADE=1 (PTW step 7): A is set
    on any access, A and D on a write; the PTE in memory holds the new value."""
    w, pt = single(stage, tc=AD_TC[stage])
    leaf = pt.map(VA, PA, flags=flags)
    assert w.t(VA, access) == ok(PA | 0x678)
    assert w.pte_bytes(leaf) == le(pte(PA >> 12, after))


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("access", "flags"),
    [
        pytest.param(Access.READ, URWX | D, id="read-A0"),
        pytest.param(Access.EXECUTE, URWX, id="exec-A0"),
        pytest.param(Access.WRITE, URWX | D, id="write-A0"),
        pytest.param(Access.WRITE, URWX | A, id="write-D0"),
    ],
)
def test_ad_update_disabled_faults_and_memory_unchanged(
    stage: str, access: Access, flags: int
) -> None:
    """§DC.tc SADE/GADE = 0: A=0, or a store with D=0 -> page fault (first stage) or guest-page
    fault (G-stage) for the original access type; memory is not written."""
    w, pt = single(stage)  # tc without SADE/GADE
    leaf = pt.map(VA, PA, flags=flags)
    assert w.t(VA, access) == stage_fault(stage, VA, access)
    assert w.pte_bytes(leaf) == le(pte(PA >> 12, flags))


@pytest.mark.parametrize("stage", STAGES)
def test_ad_update_disabled_read_of_a1_d0_page_succeeds(stage: str) -> None:
    """SADE/GADE = 0: a read needs only A=1."""
    w, pt = single(stage)
    pt.map(VA, PA, flags=URWX | A)
    assert w.t(VA) == ok(PA | 0x678)


@pytest.mark.parametrize("stage", STAGES)
def test_ad_update_not_done_when_permission_check_fails(stage: str) -> None:
    """PTW step 5 precedes step 7: a write to a read-only A=0 page faults and A is not set."""
    w, pt = single(stage, tc=AD_TC[stage])
    leaf = pt.map(VA, PA, flags=U | R | X)
    assert w.t(VA, Access.WRITE) == stage_fault(stage, VA, Access.WRITE)
    assert w.pte_bytes(leaf) == le(pte(PA >> 12, U | R | X))


def test_ad_update_sv32_four_byte_pte() -> None:
    """PTW step 7 with Sv32 (SXL=1): the 4-byte PTE gets A and D."""
    w = Walk(SV32, None, sxl=True, tc=TC_SADE)
    leaf = w.st.map(0x0040_3000, 0x0123_4000, flags=URWX)
    assert w.t(0x0040_3010, Access.WRITE) == ok(0x0123_4010)
    assert w.pte_bytes(leaf, 4) == le(V | URWX | A | D | (0x01234 << 10), 4)


def test_ad_update_final_g_stage_leaf_two_stage() -> None:
    """GADE=1: a write through both stages sets A and D in the G-stage leaf of the final GPA;
    SADE=1 sets them in the first-stage leaf."""
    w = Walk(SV39, SV39, tc=TC_SADE | TC_GADE)
    s_pte, g_pte = w.map2(0x0123_4000, GPA, SPA, s_flags=URWX, g_flags=URWX)
    assert w.t(0x0123_4ABC, Access.WRITE) == ok(SPA | 0xABC)
    assert w.pte_bytes(w.spa_of(s_pte)) == le(pte(GPA >> 12, URWX | A | D))
    assert w.pte_bytes(g_pte) == le(pte(SPA >> 12, URWX | A | D))


def test_ad_update_g_stage_leaf_of_first_stage_table_gets_a_on_pte_read() -> None:
    """GADE=1: the G-stage leaf mapping a first-stage table page gets A when the implicit PTE
    read goes through it (a read: D stays 0)."""
    w = Walk(SV39, SV39, tc=TC_GADE)
    s_pte, _ = w.map2(0x0123_4000, GPA, SPA)
    page = s_pte & ~0xFFF
    spa_page = w.space.to_spa(page)
    w.space.back(page, spa_page, flags=URW)  # type: ignore[attr-defined]
    g_leaf = w.g.pte_addr(page, 0)
    assert w.t(0x0123_4000) == ok(SPA)
    assert w.pte_bytes(g_leaf) == le(pte(spa_page >> 12, URW | A))


def test_ad_update_g_stage_leaf_of_first_stage_table_gets_d_on_ad_write() -> None:
    """SADE=1, GADE=1: the first-stage A update is an implicit write, so the G-stage leaf of
    the table page gets A and D."""
    w = Walk(SV39, SV39, tc=TC_SADE | TC_GADE)
    s_pte, _ = w.map2(0x0123_4000, GPA, SPA, s_flags=URWX)
    page = s_pte & ~0xFFF
    spa_page = w.space.to_spa(page)
    w.space.back(page, spa_page, flags=URW)  # type: ignore[attr-defined]
    g_leaf = w.g.pte_addr(page, 0)
    assert w.t(0x0123_4000) == ok(SPA)
    assert w.pte_bytes(g_leaf) == le(pte(spa_page >> 12, URW | A | D))
    assert w.pte_bytes(w.spa_of(s_pte)) == le(pte(GPA >> 12, URWX | A))


def test_ad_disabled_g_stage_leaf_of_first_stage_table_a0_is_implicit_guest_page_fault() -> None:
    """GADE=0: the G-stage leaf of a first-stage table page has A=0 -> guest-page fault of the
    implicit read (iotval2 = PTE GPA | 1); memory unchanged."""
    w = Walk(SV39, SV39)
    s_pte, _ = w.map2(0x0123_4000, GPA, SPA)
    page = s_pte & ~0xFFF
    spa_page = w.space.to_spa(page)
    w.space.back(page, spa_page, flags=URW)  # type: ignore[attr-defined]
    g_leaf = w.g.pte_addr(page, 0)
    assert w.t(0x0123_4000, Access.EXECUTE) == failed(
        Cause.INSTRUCTION_GUEST_PAGE_FAULT, 0x0123_4000, Access.EXECUTE, s_pte | 1
    )
    assert w.pte_bytes(g_leaf) == le(pte(spa_page >> 12, URW))


# ---------------------------------------------------------------------------
# Access faults and data corruption on PTE reads
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("level", [2, 1, 0])
@pytest.mark.parametrize("access", ACCESSES)
def test_ptw2_pte_access_fault(stage: str, level: int, access: Access) -> None:
    """PTW step 2: a PTE read violating PMA/PMP -> access fault for the original access type
    (1/5/7), for first-stage and G-stage PTEs alike; iotval2 = 0."""
    w, pt = single(stage)
    pt.map(VA, PA)
    w.mem.inject(pt.pte_addr(VA, level), 8, MemoryFault.ACCESS_FAULT)
    assert w.t(VA, access) == failed(AF[access], VA, access)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("level", [2, 1, 0])
@pytest.mark.parametrize("access", ACCESSES)
def test_ptw2_pte_data_corruption(stage: str, level: int, access: Access) -> None:
    """§CAUSE 274: poisoned data on a first- or second-stage PTE read -> "First/second-stage PT
    data corruption"."""
    w, pt = single(stage)
    pt.map(VA, PA)
    w.mem.inject(pt.pte_addr(VA, level), 8, MemoryFault.DATA_CORRUPTION)
    assert w.t(VA, access) == failed(Cause.PT_DATA_CORRUPTION, VA, access)


@pytest.mark.parametrize("access", ACCESSES)
def test_ptw2_two_stage_first_stage_pte_in_guest_memory_access_fault(access: Access) -> None:
    """PTW step 2 in a two-stage walk: the first-stage PTE's SPA faults -> access fault."""
    w = Walk(SV39, SV39)
    s_pte, _ = w.map2(0x0123_4000, GPA, SPA)
    w.mem.inject(w.spa_of(s_pte), 8, MemoryFault.ACCESS_FAULT)
    assert w.t(0x0123_4000, access) == failed(AF[access], 0x0123_4000, access)


@pytest.mark.parametrize("access", ACCESSES)
def test_ptw2_two_stage_g_stage_pte_of_implicit_access_faults(access: Access) -> None:
    """G-stage PTE read while translating a first-stage PTE address violates PMA -> access
    fault for the original access type (not a guest-page fault)."""
    w = Walk(SV39, SV39)
    s_pte, _ = w.map2(0x0123_4000, GPA, SPA)
    w.mem.inject(w.g.pte_addr(s_pte & ~0xFFF, 0), 8, MemoryFault.ACCESS_FAULT)
    assert w.t(0x0123_4000, access) == failed(AF[access], 0x0123_4000, access)


@pytest.mark.parametrize("which", ["first-stage", "g-stage-implicit", "g-stage-final"])
def test_ptw2_two_stage_data_corruption(which: str) -> None:
    """§CAUSE 274 for first-stage PTEs (in guest memory) and G-stage PTEs (of the implicit
    access and of the final GPA)."""
    w = Walk(SV39, SV39)
    s_pte, g_pte = w.map2(0x0123_4000, GPA, SPA)
    addr = {
        "first-stage": w.spa_of(s_pte),
        "g-stage-implicit": w.g.pte_addr(s_pte & ~0xFFF, 0),
        "g-stage-final": g_pte,
    }[which]
    w.mem.inject(addr, 8, MemoryFault.DATA_CORRUPTION)
    assert w.t(0x0123_4000, Access.WRITE) == failed(
        Cause.PT_DATA_CORRUPTION, 0x0123_4000, Access.WRITE
    )


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("access", ACCESSES)
def test_ptw2_pte_beyond_pas_is_access_fault(stage: str, access: Access) -> None:
    """Implicit accesses beyond 2^capabilities.PAS violate PMA: a pointer PTE leading to a table
    at 2^40 with PAS=40 -> access fault for the original access type."""
    w, pt = single(stage, pas=40)
    pt.map(VA, PA)
    write_raw(pt, pt.pte_addr(VA, 2), pte(1 << 28, 0))  # next table at 2^40
    assert w.t(VA, access) == failed(AF[access], VA, access)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("access", ACCESSES)
def test_ptw2_root_beyond_pas_is_access_fault(stage: str, access: Access) -> None:
    """PTW step 2 at the root: an iosatp.PPN / iohgatp.PPN at 2^40 with PAS=40 puts the
    first PTE read beyond PAS -> access fault for the original access type."""
    w, pt = single(stage, pas=40)
    pt.map(VA, PA)
    beyond = 1 << 28  # the page number of 2^40
    if stage == "s":
        satp = (w.st.satp() & ~F.IOSATP.PPN.mask) | beyond
        w.s.ddt.set_dc(DID, tc=w.tc, iohgatp=0, ta=ta(PSCID), fsc=satp)
    else:
        hgatp = (w.g.satp(GSCID) & ~F.IOHGATP.PPN.mask) | beyond
        w.s.ddt.set_dc(DID, tc=w.tc, iohgatp=hgatp, ta=ta(PSCID), fsc=0)
    assert w.t(VA, access) == failed(AF[access], VA, access)


# ---------------------------------------------------------------------------
# Byte order
# ---------------------------------------------------------------------------
BE_PARAMS = rv.IommuParams(be_writable=True)


@pytest.mark.parametrize(
    ("table_big", "sbe"),
    [(False, False), (True, True), (True, False), (False, True)],
    ids=["LE-table-SBE0", "BE-table-SBE1", "BE-table-SBE0", "LE-table-SBE1"],
)
def test_endianness_first_stage_follows_dc_tc_sbe(table_big: bool, sbe: bool) -> None:
    """§DC.tc.SBE: first-stage PTE accesses are big-endian iff SBE=1 (fctl.BE stays 0)."""
    w = Walk(SV39, sbig=table_big, sbe=sbe, params=BE_PARAMS)
    w.st.map(VA, PA)
    want = ok(PA | 0x678) if table_big == sbe else failed(PF[Access.READ], VA, Access.READ)
    assert w.t(VA) == want


@pytest.mark.parametrize(
    ("fctl_be", "table_big"),
    [(False, False), (True, True), (True, False), (False, True)],
    ids=["BE0-LE-table", "BE1-BE-table", "BE1-LE-table", "BE0-BE-table"],
)
def test_endianness_g_stage_follows_fctl_be(fctl_be: bool, table_big: bool) -> None:
    """§fctl.BE: G-stage PTE accesses are big-endian iff fctl.BE=1 (DC.tc.SBE does not apply)."""
    w = Walk(None, SV39, fctl=int(fctl_be), gbig=table_big, params=BE_PARAMS)
    w.g.map(VA, PA)
    want = (
        ok(PA | 0x678)
        if table_big == fctl_be
        else failed(GPF[Access.READ], VA, Access.READ, VA & ~3)
    )
    assert w.t(VA) == want


def test_endianness_two_stage_le_first_stage_over_be_g_stage() -> None:
    """fctl.BE=1 with DC.tc.SBE=0: the first-stage table (in guest memory) is little-endian
    while the G-stage table is big-endian."""
    w = Walk(SV39, SV39, fctl=1, sbig=False, params=BE_PARAMS)
    w.map2(0x0123_4000, GPA, SPA)
    assert w.t(0x0123_4ABC) == ok(SPA | 0xABC)


def test_endianness_ad_update_written_in_sbe_order() -> None:
    """SBE=1 and SADE=1: the A/D update of a first-stage PTE is stored big-endian."""
    w = Walk(SV39, sbig=True, tc=TC_SADE, params=BE_PARAMS)
    leaf = w.st.map(VA, PA, flags=URWX)
    assert w.t(VA, Access.WRITE) == ok(PA | 0x678)
    assert w.pte_bytes(leaf) == be(pte(PA >> 12, URWX | A | D))


def test_endianness_g_stage_ad_update_written_in_fctl_be_order() -> None:
    """fctl.BE=1 and GADE=1: the A/D update of a G-stage PTE is stored big-endian."""
    w = Walk(None, SV39, fctl=1, tc=TC_GADE, params=BE_PARAMS)
    leaf = w.g.map(VA, PA, flags=URWX)
    assert w.t(VA, Access.WRITE) == ok(PA | 0x678)
    assert w.pte_bytes(leaf) == be(pte(PA >> 12, URWX | A | D))


# ---------------------------------------------------------------------------
# Through a process context: privilege, SUM, G
# ---------------------------------------------------------------------------
def pc_walk(
    sum_: bool = False, gstage: bool = False, tc: int = 0
) -> Tuple[System, PageTable, Optional[PageTable]]:
    """DC.tc.PDTV=1 with a PD20 PDT whose PC (ENS=1) holds an Sv39 iosatp (steps 14-16)."""
    s = System()
    g = s.gstage(SV39) if gstage else None
    space = s.guest(g) if g is not None else s.host
    st_ = s.stage1(space, SV39)
    pdt = s.pdt(space)
    pdt.set_pc(PID, fsc=st_.satp(), pscid=0x99, ens=True, sum_=sum_)
    s.ddt.set_dc(
        DID, tc=TC_V | TC_PDTV | tc, iohgatp=g.satp(GSCID) if g is not None else 0, fsc=pdt.pdtp()
    )
    return s, st_, g


@pytest.mark.parametrize("access", ACCESSES)
def test_step16_global_leaf_reports_g_with_process_id(access: Access) -> None:
    """Steps 16-20: a first-stage leaf with G=1 reports g=1 when the request has a process_id."""
    s, st_, _ = pc_walk()
    st_.map(0x1000, 0x7000, flags=URWX | G | A | D)
    st_.map(0x2000, 0x8000, flags=URWX | A | D)
    assert s.t(DID, 0x1010, access, process_id=PID) == ok(0x7010, g=True)
    assert s.t(DID, 0x2010, access, process_id=PID) == ok(0x8010, g=False)


def test_step10_global_leaf_without_process_id_reports_no_g() -> None:
    """Step 10 (PDTV=0, no process_id): the G bit of the leaf is not reported."""
    w = Walk(SV39)
    w.st.map(0x1000, 0x7000, flags=URWX | G | A | D)
    assert w.t(0x1010) == ok(0x7010, g=False)


def test_ptw5_supervisor_request_to_u_page_without_sum_faults() -> None:
    """PTW step 5: a supervisor request (PC.ta.ENS=1) to a U=1 page with SUM=0 -> page fault;
    the record has PV=1, PID and PRIV=1."""
    s, st_, _ = pc_walk(sum_=False)
    st_.map(0x1000, 0x7000, flags=URWX | A | D)
    assert s.t(DID, 0x1010, process_id=PID, priv=True) == failed(
        Cause.READ_PAGE_FAULT, 0x1010, Access.READ, pid=PID, priv=True
    )
    assert s.t(DID, 0x1010, process_id=PID) == ok(0x7010)


def test_ptw5_supervisor_request_to_u_page_with_sum() -> None:
    """PTW step 5 with PC.ta.SUM=1: supervisor reads/writes of U=1 pages are allowed, execute
    is never allowed."""
    s, st_, _ = pc_walk(sum_=True)
    st_.map(0x1000, 0x7000, flags=URWX | A | D)
    assert s.t(DID, 0x1010, Access.READ, process_id=PID, priv=True) == ok(0x7010, priv=True)
    assert s.t(DID, 0x1010, Access.WRITE, process_id=PID, priv=True) == ok(0x7010, priv=True)
    assert s.t(DID, 0x1010, Access.EXECUTE, process_id=PID, priv=True) == failed(
        Cause.INSTRUCTION_PAGE_FAULT, 0x1010, Access.EXECUTE, pid=PID, priv=True
    )


@pytest.mark.parametrize("access", ACCESSES)
def test_ptw5_u0_page_supervisor_ok_user_faults(access: Access) -> None:
    """PTW step 5: a U=0 page is a supervisor page: user requests (priv=0) fault."""
    s, st_, _ = pc_walk()
    st_.map(0x1000, 0x7000, flags=R | W | X | A | D)
    assert s.t(DID, 0x1010, access, process_id=PID, priv=True) == ok(0x7010, priv=True)
    assert s.t(DID, 0x1010, access, process_id=PID) == failed(PF[access], 0x1010, access, pid=PID)


def test_p2iova_g_stage_u_bit_checked_as_user_for_supervisor_request() -> None:
    """§P2IOVA: "When checking the U bit in a second-stage PTE, the transaction is treated as not
    requesting supervisor privilege": a supervisor request through a G-stage leaf with U=0
    -> guest-page fault."""
    s, st_, g = pc_walk(gstage=True)
    assert g is not None
    st_.map(0x1000, GPA, flags=R | W | X | A | D)  # supervisor first-stage page
    g.map(GPA, SPA, flags=R | W | X | A | D)  # U=0 G-stage leaf
    assert s.t(DID, 0x1010, Access.WRITE, process_id=PID, priv=True) == failed(
        Cause.WRITE_GUEST_PAGE_FAULT, 0x1010, Access.WRITE, GPA | 0x10, pid=PID, priv=True
    )
    s2, st2, g2 = pc_walk(gstage=True)
    assert g2 is not None
    st2.map(0x1000, GPA, flags=R | W | X | A | D)
    g2.map(GPA, SPA, flags=URWX | A | D)
    assert s2.t(DID, 0x1010, Access.WRITE, process_id=PID, priv=True) == ok(SPA | 0x10, priv=True)


def test_step16_two_stage_pc_global_leaf_and_sizes() -> None:
    """Steps 14-20 through a PC in guest memory: g from the first-stage leaf, size the smaller
    page, permissions intersected."""
    s, st_, g = pc_walk(gstage=True)
    assert g is not None
    st_.map(0x4000_0000, 0x2_0000_0000, G1, flags=URWX | G | A | D)
    g.map(0x2_0000_0000, 0x3_0000_0000, M2, flags=U | R | X | A | D)
    assert s.t(DID, 0x4001_2345, Access.EXECUTE, process_id=PID) == ok(
        0x3_0001_2345, M2, perms="rx", g=True
    )


# ---------------------------------------------------------------------------
# hypothesis: guest-controlled PTE contents never crash the model
# ---------------------------------------------------------------------------
U64 = (1 << 64) - 1
_HYP_VA = 0x0123_4000
_HYP_GPA = 0x2_0000_0000
_HYP_SPA = 0x9_0000_0000


@st.composite
def _pte_values(draw: Any) -> Optional[int]:
    kind = draw(st.sampled_from(["keep", "random", "plausible"]))
    if kind == "keep":
        return None
    if kind == "random":
        return draw(st.integers(0, U64))  # type: ignore[no-any-return]
    flags = draw(st.integers(0, 0x3FF))
    ppn = draw(
        st.one_of(
            st.integers(0x8_0000, 0x8_0040),  # the allocator's table pages
            st.integers(0x1_0000, 0x1_0010),  # guest table pages (GPA 0x1000_0000...)
            st.sampled_from([_HYP_GPA >> 12, _HYP_SPA >> 12, (1 << 44) - 1]),
            st.integers(0, (1 << 44) - 1),
        )
    )
    hi = draw(st.sampled_from([0, N, 1 << 61, 2 << 61, 3 << 61, 1 << 54, 1 << 59, 3 << 59]))
    return flags | (ppn << 10) | hi  # type: ignore[no-any-return]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(_pte_values(), min_size=9, max_size=9),
    iova=st.one_of(
        st.integers(_HYP_VA, _HYP_VA + 0xFFF),
        st.integers(0, (1 << 39) - 1),
        st.integers(0, U64),
    ),
    access=st.sampled_from(ACCESSES),
    tc=st.sampled_from([0, TC_SADE, TC_GADE, TC_SADE | TC_GADE]),
)
def test_random_ptes_sv39_over_sv39x4_never_crash(
    values: List[Optional[int]], iova: int, access: Access, tc: int
) -> None:
    """Guest-controlled first-stage and G-stage PTEs at every level of a Sv39 + Sv39x4 walk (and
    the G-stage PTEs translating the first-stage root) never make the model raise: the result
    is a Status and any fault cause is a defined Cause."""
    w = Walk(SV39, SV39, tc=tc)
    w.map2(_HYP_VA, _HYP_GPA, _HYP_SPA)
    slots: List[Tuple[Any, int]] = [(w.space, w.st.pte_addr(_HYP_VA, lvl)) for lvl in (2, 1, 0)]
    slots += [(w.s.host, w.g.pte_addr(_HYP_GPA, lvl)) for lvl in (2, 1, 0)]
    slots += [(w.s.host, w.g.pte_addr(w.st.root, lvl)) for lvl in (2, 1, 0)]
    for (space, addr), value in zip(slots, values, strict=True):
        if value is not None:
            space.write_u64(addr, value)
    rsp = w.t(iova, access)
    assert isinstance(rsp.status, rv.Status)
    if rsp.status == rv.Status.SUCCESS:
        assert rsp.fault is None
    else:
        assert rsp.fault is not None
        assert rsp.fault.cause in {int(c) for c in Cause}
        assert rsp.fault.iotval == iova


# ---------------------------------------------------------------------------
# the PTE masks of the walks as signed 64-bit values in the compiled build (paging.signed64)
# ---------------------------------------------------------------------------
def test_signed64_is_signed_in_the_compiled_build_only() -> None:
    from riscv_iommu import paging
    from riscv_iommu._mypyc import compiled

    assert paging._COMPILED is compiled()  # paging.py is one of the compiled modules
    top = 0xFFC0_0000_0000_00FF  # N, PBMT, reserved and low bits
    want = top - (1 << 64) if compiled() else top
    assert paging.signed64(top) == want
    assert want == (-0x3F_FFFF_FFFF_FF01 if compiled() else 0xFFC0_0000_0000_00FF)
    assert paging.signed64(0x7FFF_FFFF_FFFF_FFFF) == 0x7FFF_FFFF_FFFF_FFFF  # bit 63 clear
    assert paging.signed64(0) == 0
    for value in (0, 1, 0xCF, 1 << 63, (1 << 64) - 1, 0x8000_0000_2000_04CF):
        assert value & paging.signed64(top) == value & top


@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_signed64_and_is_the_unsigned_and(pte: int, mask: int) -> None:
    from riscv_iommu.paging import _COMPILED, signed64

    assert pte & signed64(mask) == pte & mask
    if _COMPILED:
        assert -(1 << 63) <= signed64(mask) < (1 << 63)
    else:
        assert signed64(mask) == mask


def test_the_walk_masks_fit_the_compiled_builds_small_ints() -> None:
    # the masks of the walks' hot tests hold bits 54-63; compiled, they are signed and
    # lie in [-2**62, 2**62), the ints the compiled build keeps unboxed; interpreted,
    # they are as they are (CPython's bit operations are faster on positive ints)
    from riscv_iommu.ddt import _V_RSV
    from riscv_iommu.paging import _COMPILED

    io = rv.Iommu(rv.SparseMemory())
    masks = [io.pte_nl_bad, io.pte_ptr_bad, io.dc_tc_fast, _V_RSV] + [m for _, m in io.g_leaf]
    masks += [m for by_sum in io.s_leaf for by_access in by_sum for _, m in by_access]
    for m in masks:
        if _COMPILED:
            assert -(1 << 62) <= m < 0
        else:
            assert (1 << 63) <= m < (1 << 64)
