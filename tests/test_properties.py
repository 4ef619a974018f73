"""Whole-model property tests: guest- and device-controlled inputs never crash the model.

Everything in memory (DDT, DC, PDT, PC, first-stage and G-stage page tables, MSI page
tables), the values software writes to ddtp/fctl, and every field of a device request are
outside the IOMMU's control.  Whatever they hold, Iommu.translate must return a Response
(api.md: "every value in a valid request is device-controlled and produces a response,
never an exception"), and a fault must be reported as the spec's fault record describes
(iommu_in_memory_queues.adoc "Fault/Event-Queue (FQ)": CAUSE table, TTYP table, "If the
TTYP is a transaction with an IOVA, the IOVA is reported in iotval", "DID holds the
device_id of the transaction. If PV is 0, then PID and PRIV are 0"), with the response
status of iommu_data_structures.adoc "PCIe ATS translation request handling" (UR for
causes 256-260, Success with R=W=0 for an ATS request's page / guest-page / PDT-not-valid
/ MSI-PTE-not-valid faults, Completer Abort otherwise).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import (
    PD20,
    SV39,
    TC_DPE,
    TC_EN_ATS,
    TC_GADE,
    TC_PDTV,
    TC_SADE,
    TC_V,
    System,
    ta,
)
from riscv_iommu import formats as F
from riscv_iommu.host.tables import GuestSpace, PageTable, ProcessDirectory

Access = rv.Access
Kind = rv.RequestKind
Cause = rv.Cause

HYP = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------
# The spec's tables
# --------------------------------------------------------------------------
#: TTYP table: (transaction, access) -> encoding
TTYP = {
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
#: ATS_FAULTS: Unsupported Request
UR_CAUSES = {256, 257, 258, 259, 260}
#: ATS_FAULTS: Success with R = W = 0, not logged
ATS_NO_ACCESS = {12, 13, 15, 20, 21, 23, 266, 262}
#: CAUSE table
CAUSES = {int(c) for c in Cause}
GUEST_PAGE_FAULTS = {20, 21, 23}


def check_response(req: rv.Request, rsp: rv.Response) -> None:
    """The invariants every response must satisfy, whatever memory holds."""
    assert isinstance(rsp, rv.Response)
    assert type(rsp.status) is rv.Status, rsp
    pid = req.process_id
    f = rsp.fault
    if f is None:
        assert rsp.status == rv.Status.SUCCESS, rsp
        assert not rsp.reported
        if req.kind != Kind.ATS_TRANSLATION:
            # a completed access must be permitted by the translation
            need = {Access.READ: rsp.r, Access.WRITE: rsp.w, Access.EXECUTE: rsp.x}
            assert need[Access(req.access)], (req, rsp)
        return
    assert isinstance(f, rv.FaultRecord)
    assert f.cause in CAUSES, f
    assert f.ttyp == TTYP[(Kind(req.kind), Access(req.access))], (req, f)
    assert f.iotval == req.addr, (req, f)
    assert f.device_id == req.device_id, (req, f)
    assert f.pv == (pid is not None), (req, f)
    assert f.process_id == (pid if pid is not None else 0), (req, f)
    assert f.priv == (bool(req.priv) and pid is not None), (req, f)
    if f.cause not in GUEST_PAGE_FAULTS:
        assert f.iotval2 == 0, f
    else:
        assert 0 <= f.iotval2 < 1 << 64
    if f.cause in UR_CAUSES:
        assert rsp.status == rv.Status.UNSUPPORTED_REQUEST, (req, rsp)
    elif req.kind == Kind.ATS_TRANSLATION and f.cause in ATS_NO_ACCESS:
        assert rsp.status == rv.Status.SUCCESS, (req, rsp)
        assert (rsp.r, rsp.w) == (False, False), rsp
        assert not rsp.reported
    else:
        assert rsp.status == rv.Status.COMPLETER_ABORT, (req, rsp)
    if rsp.status != rv.Status.SUCCESS and Cause(f.cause).reported_if_dtf:
        assert rsp.reported, rsp  # "Reported if DTF is 1? Yes"
    if req.kind != Kind.ATS_TRANSLATION:
        assert f.cause not in (4, 6) or (req.addr & 0xFFF) + req.length > 4096


# --------------------------------------------------------------------------
# Strategies: requests
# --------------------------------------------------------------------------
U64 = (1 << 64) - 1

addrs = st.one_of(
    st.integers(0, U64),
    st.integers(0, (1 << 41) - 1),
    st.integers(0, 0xFFFF_FFFF),
    st.integers(U64 - (1 << 40), U64),  # canonical "negative" addresses
    st.sampled_from([0, 0x1000, 0x8000_0000, 0x4000_0000, 0xFFC, 0x1FF8]),
)


ANY_DEVICE_ID = st.integers(0, (1 << 24) - 1)
ANY_KIND = st.sampled_from(list(Kind))
ANY_PROCESS_ID = st.one_of(st.none(), st.integers(0, 7), st.integers(0, (1 << 20) - 1))


@st.composite
def requests(
    draw: st.DrawFn,
    device_ids: st.SearchStrategy[int] = ANY_DEVICE_ID,
    addr: st.SearchStrategy[int] = addrs,
    process_ids: st.SearchStrategy[Optional[int]] = ANY_PROCESS_ID,
    kinds: st.SearchStrategy[Kind] = ANY_KIND,
) -> rv.Request:
    return rv.Request(
        device_id=draw(device_ids),
        addr=draw(addr),
        access=draw(st.sampled_from(list(Access))),
        process_id=draw(process_ids),
        priv=draw(st.booleans()),
        kind=draw(kinds),
        length=draw(st.one_of(st.sampled_from([1, 4, 8, 64, 4096]), st.integers(0, 1 << 14))),
        no_write=draw(st.booleans()),
        data=draw(st.one_of(st.none(), st.integers(0, 0xFFFF_FFFF))),
    )


# --------------------------------------------------------------------------
# Pool contents: seed-driven generators
# --------------------------------------------------------------------------
# The pool is typed so that random walks go deep: the pointers of each structure point
# mostly at pages holding the next structure, and each page holds (tiled) random
# instances of its structure -- or raw random bytes, zeros, or a random mixture of
# words.  Contents come from a seeded PRNG (cheap, reproducible from the seed hypothesis
# prints), shaped by the spec's field tables.
POOL_BASE = 0x8000_0000  # 16 KiB aligned (G-stage roots)
POOL_PAGES = 28
_P0 = POOL_BASE >> 12
GROOT = [_P0 + 0, _P0 + 16, _P0 + 20]  # 16 KiB aligned: G-stage roots (Sv*x4)
# page-table pages: roots (mostly pointers), middle levels (pointers), leaves (leaf PTEs)
PT_ROOT = [_P0 + k for k in (0, 1, 2, 3, 14, 16, 17, 20)]
PT_MID = [_P0 + k for k in (15, 18)]
PT_LEAF = [_P0 + k for k in (19, 21)]
PT = PT_ROOT + PT_MID + PT_LEAF
DDIR = [_P0 + 4, _P0 + 5]  # non-leaf DDT pages
PDIR = [_P0 + 6, _P0 + 7]  # non-leaf PDT pages
DCS = [_P0 + k for k in range(8, 12)]  # leaf DDT pages (device contexts)
PCS = [_P0 + k for k in range(12, 14)]  # leaf PDT pages (process contexts)
MSI = [_P0 + 22, _P0 + 23]  # MSI page tables
DATA = [_P0 + k for k in range(24, 28)]
U44 = (1 << 44) - 1
STRAY = [1 << 63, 1 << 5, 3 << 54, 1 << 61, 3 << 61, 1 << 59, 1 << 62]
TC = F.DC_TC


class Gen:
    """Structure-shaped random words from a seeded PRNG."""

    def __init__(self, seed: int, ad: bool = True, big: bool = False, gxl: bool = False) -> None:
        self.r = random.Random(seed)
        self.ad = ad  # whether DC.tc.GADE / SADE may be set
        self.big = big  # fctl.BE: DC.tc.SBE usually matches it
        self.gxl = gxl  # fctl.GXL: DC.tc.SXL usually matches it
        #: how often a field is junk rather than well-formed: some pools are mostly
        #: well-formed (deep walks), others mostly garbage
        self.c = self.r.choice([0.001, 0.01, 0.1])

    def junk(self) -> bool:
        return self.r.random() < self.c

    def p(self, prob: float) -> bool:
        return self.r.random() < prob

    def ptr(self, *groups: List[int]) -> int:
        if not self.junk():
            return self.r.choice([p for g in groups for p in g])
        return U44 if self.p(0.3) else self.r.getrandbits(44)

    def stray(self) -> int:
        return self.r.choice(STRAY) if self.junk() else 0

    def valid(self) -> int:
        return 0 if self.junk() else 1

    def any(self) -> int:
        return self.r.getrandbits(64)

    def mode(self, usual: List[int]) -> int:
        return self.r.getrandbits(4) if self.junk() else self.r.choice(usual)

    def id(self, bits: int) -> int:
        return self.r.randrange(4) if self.p(0.7) else self.r.getrandbits(bits)

    def dirent(self, *groups: List[int]) -> int:
        return self.valid() | self.ptr(*groups) << 10 | self.stray()

    def pte(self, pointer: float = 0.5, to: Tuple[List[int], ...] = (PT,)) -> int:
        if self.p(pointer):  # pointer to the next level
            return self.valid() | self.ptr(*to) << 10 | self.stray()
        flags = self.r.choice([0xDF, 0xDF, 0xDF, 0xCF, 0xDB, 0xD7, 0xC3, 0x5F, 0x1F, 0xCB, 0xD3])
        if self.junk():
            flags = self.r.getrandbits(10)
        return flags | self.ptr(PT, DATA) << 10 | self.stray()

    def tc(self) -> int:
        if self.junk():
            return self.r.getrandbits(12) | 1 | self.stray() & ~(1 << 63)
        tc = TC.V.mask
        if self.p(0.5):
            tc |= TC.EN_ATS.mask
            if self.p(0.3):
                tc |= TC.T2GPA.mask
            if self.p(0.3):
                tc |= TC.EN_PRI.mask | (TC.PRPR.mask if self.p(0.5) else 0)
        if self.p(0.5):
            tc |= TC.PDTV.mask | (TC.DPE.mask if self.p(0.3) else 0)
        ad = 0.4 if self.ad else 0.0
        for f, prob in ((TC.DTF, 0.2), (TC.GADE, ad), (TC.SADE, ad)):
            if self.p(prob):
                tc |= f.mask
        if self.big != self.junk():
            tc |= TC.SBE.mask
        if self.gxl != self.junk():
            tc |= TC.SXL.mask
        return tc

    def dc(self) -> Tuple[int, ...]:
        tc = self.tc()
        iohgatp = (
            self.mode([0, 8] if self.gxl else [0, 8, 8, 9, 10]) << 60
            | self.id(16) << 44
            | self.ptr(GROOT)
        )
        if tc & TC.PDTV.mask:
            fsc = self.mode([0, 1, 2, 3, 3]) << 60 | self.ptr(PDIR, PCS)
        else:
            fsc = self.mode([0, 8] if self.gxl else [0, 8, 8, 9, 10]) << 60 | self.ptr(PT_ROOT)
        ta = self.id(20) << 12 | (self.r.getrandbits(24) << 40 if self.p(0.2) else 0)
        if self.junk():
            ta = self.any()
        msiptp = self.mode([0, 1, 1] if iohgatp >> 60 else [0]) << 60 | self.ptr(MSI)
        mask = self.r.getrandbits(52) if self.junk() else self.r.randrange(16)
        pattern = self.r.getrandbits(52) if self.junk() else self.r.randrange(256)
        rsvd = self.any() if self.junk() else 0
        return (tc, iohgatp, ta, fsc, msiptp, mask, pattern, rsvd)

    def pc(self) -> Tuple[int, ...]:
        ta = self.valid() | self.r.getrandbits(2) << 1 | self.id(20) << 12 | self.stray()
        return (ta, self.mode([0, 8, 8, 9, 10]) << 60 | self.ptr(PT_ROOT))

    def msipte(self) -> Tuple[int, ...]:
        m = self.r.choice([3, 3, 3, 1, 1, 0, 2])
        c = 1 if self.junk() else 0
        if m == 1:
            w0 = self.valid() | m << 1 | self.ptr(DATA) << 10 | c << 63  # MRIF address 53:7
            w1 = self.r.getrandbits(10) | self.ptr(DATA) << 10 | self.r.getrandbits(1) << 60
        else:
            w0 = self.valid() | m << 1 | self.ptr(DATA, PT) << 10 | c << 63
            w1 = self.any() if self.p(0.5) else 0
        return (w0 | self.stray(), w1)

    def structure(self, k: int) -> Tuple[int, ...]:
        ppn = _P0 + k
        if ppn in PT:
            if ppn in PT_ROOT:
                how: Tuple[float, Tuple[List[int], ...]] = (0.9, (PT_MID, PT_ROOT))
            elif ppn in PT_MID:
                how = (0.9, (PT_LEAF, PT_MID))
            else:
                how = (0.1, (PT,))
            return tuple(self.pte(*how) for _ in range(self.r.randrange(1, 5)))
        if ppn in DDIR:
            return (self.dirent(DDIR, DCS),)
        if ppn in PDIR:
            return (self.dirent(PDIR, PCS),)
        if ppn in DCS:
            return self.dc()
        if ppn in PCS:
            return self.pc()
        if ppn in MSI:
            return self.msipte()
        return (self.any(),)

    def palette_word(self) -> int:
        f = self.r.choice([self.dirent, self.pte, self.tc, self.any])
        return f(DDIR, DCS, PDIR, PCS) if f == self.dirent else f()


def fill_pool(mem: rv.SparseMemory, seed: int, fctl: int = 0, ad: bool = True) -> None:
    """Fill every pool page from ``seed``, mostly in the byte order of ``fctl.BE``."""
    big = bool(fctl & 1)
    g = Gen(seed, ad, big, bool(fctl & 4))
    for k in range(POOL_PAGES):
        addr = POOL_BASE + 4096 * k
        order: Any = "big" if big != g.p(0.05) else "little"
        kind = "struct" if g.p(0.95 - 2 * g.c) else g.r.choice(["random", "zero", "mixed"])
        if kind == "zero":
            continue
        if kind == "random":
            mem.write(addr, g.r.randbytes(4096))
            continue
        if kind == "mixed":  # each doubleword from a small palette or random
            palette = [g.palette_word() for _ in range(g.r.randrange(1, 6))]
            words = [g.r.choice(palette) if g.p(0.8) else g.any() for _ in range(512)]
        else:  # a structure tiled over the page
            unit = g.structure(k)
            words = list(unit) * (512 // len(unit) + 1)
        mem.write(addr, b"".join(w.to_bytes(8, order) for w in words[:512]))


FLAGS = [
    "sv32",
    "sv39",
    "sv48",
    "sv57",
    "svrsw60t59b",
    "svpbmt",
    "sv32x4",
    "sv39x4",
    "sv48x4",
    "sv57x4",
    "amo_mrif",
    "msi_flat",
    "msi_mrif",
    "amo_hwad",
    "ats",
    "t2gpa",
    "end",
    "hpm",
    "dbg",
    "pd8",
    "pd17",
    "pd20",
    "qosid",
    "nl",
    "s",
    "gipc",
]


@st.composite
def capabilities(draw: st.DrawFn) -> rv.Capabilities:
    # mostly-full IOMMUs: each feature present with probability 7/8
    if draw(st.booleans()):
        return rv.Capabilities.full(gipc=draw(st.booleans()))
    kw: Dict[str, Any] = {f: draw(st.sampled_from([True] * 7 + [False])) for f in FLAGS}
    if kw["sv57"]:
        kw["sv48"] = True
    if kw["sv48"]:
        kw["sv39"] = True
    kw["igs"] = draw(st.sampled_from(list(rv.IGS)))
    kw["pas"] = draw(st.sampled_from([32, 40, 56]))
    return rv.Capabilities(**kw)


@st.composite
def params(draw: st.DrawFn) -> rv.IommuParams:
    return rv.IommuParams(
        ddt_cache_size=draw(st.sampled_from([0, 2, 64])),
        pdt_cache_size=draw(st.sampled_from([0, 2, 256])),
        iotlb_size=draw(st.sampled_from([0, 4, 2048])),
        cache_policy=draw(st.sampled_from(["lru", "fifo"])),
        gxl_writable=draw(st.booleans()),
        be_writable=draw(st.booleans()),
        fault_page_crossing=draw(st.booleans()),
        mrif_by_iommu=draw(st.booleans()),
        device_id_width=draw(st.sampled_from([24, 16, 8])),
        max_iommu_mode=draw(st.sampled_from([1, 2, 3] + [4] * 7)),
        reset_iommu_mode=draw(st.sampled_from([0, 1])),
        gscid_width=draw(st.sampled_from([16, 8])),
        pscid_width=draw(st.sampled_from([20, 10])),
        ats_fills_iotlb=draw(st.booleans()),
        bare_range_size=draw(st.sampled_from([4096, 1 << 21])),
        gipc_revision=draw(st.sampled_from(["2024", "2025"])),
    )


ddtp_values = st.one_of(
    st.builds(
        lambda mode, ppn: F.DDTP.encode(iommu_mode=mode, PPN=ppn),
        st.one_of(st.sampled_from([2, 3, 4]), st.integers(0, 15)),
        st.sampled_from(DDIR + DCS),
    ),
    st.builds(
        lambda mode, ppn: F.DDTP.encode(iommu_mode=mode, PPN=ppn),
        st.sampled_from([2, 3, 4]),
        st.sampled_from(DDIR + DCS),
    ),
    st.integers(0, U64),
)
pool_device_ids = st.one_of(
    st.integers(0, 0x3F), st.integers(0, 0x3F), st.integers(0, 0x7FFF), ANY_DEVICE_ID
)
pool_addrs = st.one_of(
    addrs,
    st.integers(0, (1 << 39) - 1),
    st.builds(lambda p, off: (p << 12) | off, st.sampled_from(DATA + PT), st.integers(0, 0xFFF)),
)
pool_pids = st.one_of(st.none(), st.integers(0, 3), st.integers(0, (1 << 20) - 1))
pool_requests = requests(device_ids=pool_device_ids, addr=pool_addrs, process_ids=pool_pids)
ops = st.lists(
    st.one_of(
        pool_requests.map(lambda r: ("req", r)),
        pool_requests.map(lambda r: ("req", r)),
        pool_requests.map(lambda r: ("req", r)),
        pool_requests.map(lambda r: ("req", r)),
        ddtp_values.map(lambda v: ("ddtp", v)),
        st.integers(0, 0xFFFF_FFFF).map(lambda v: ("fctl", v)),
        st.just(("inval", 0)),
    ),
    min_size=3,
    max_size=16,
)
injections = st.lists(
    st.tuples(
        st.integers(0, POOL_PAGES * 4096 - 1),
        st.integers(1, 256),
        st.sampled_from(list(rv.MemoryFault)),
    ),
    max_size=2,
)


def run_ops(io: rv.Iommu, todo: List[Tuple[str, Any]]) -> List[rv.Response]:
    out = []
    for op, arg in todo:
        if op == "req":
            rsp = io.translate(arg)
            check_response(arg, rsp)
            out.append(rsp)
        elif op == "ddtp":
            io.mmio_write(rv.REG.DDTP, arg)
        elif op == "fctl":
            io.mmio_write(rv.REG.FCTL, arg, 4)
        else:
            io.invalidate_ddt()
    return out


@settings(HYP, max_examples=800)
@given(
    caps=capabilities(),
    prm=params(),
    fctl=st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
    ddtp=ddtp_values,
    seed=st.integers(0, U64),
    inject=injections,
    todo=ops,
)
def test_random_memory_registers_and_requests_never_crash(
    caps: rv.Capabilities,
    prm: rv.IommuParams,
    fctl: int,
    ddtp: int,
    seed: int,
    inject: List[Tuple[int, int, rv.MemoryFault]],
    todo: List[Tuple[str, Any]],
) -> None:
    """Random raw contents everywhere the walks can go (DDT, DC, PDT, PC, first-stage and
    G-stage tables, MSI page table), random ddtp/fctl writes and random requests of every
    kind and access, with and without a process_id."""
    mem = rv.SparseMemory()
    fill_pool(mem, seed, fctl)
    for off, size, fault in inject:
        mem.inject(POOL_BASE + off, size, fault)
    io = rv.Iommu(mem, capabilities=caps, fctl=fctl, params=prm)
    io.mmio_write(rv.REG.DDTP, ddtp)
    run_ops(io, todo)


# --------------------------------------------------------------------------
# Caches are transparent while memory and registers do not change
# --------------------------------------------------------------------------
NO_CACHES = dict(ddt_cache_size=0, pdt_cache_size=0, iotlb_size=0)


@settings(HYP, max_examples=300)
@given(
    caps=capabilities(),
    fctl=st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
    ddtp=st.builds(
        lambda mode, ppn: F.DDTP.encode(iommu_mode=mode, PPN=ppn),
        st.sampled_from([2, 3, 4]),
        st.sampled_from(DDIR + DCS),
    ),
    seed=st.integers(0, U64),
    device_id=st.one_of(st.integers(0, 0x3F), pool_device_ids),
    reqs=st.lists(
        requests(
            device_ids=st.just(0),  # replaced below: one device per example
            addr=st.one_of(st.integers(0, 0x3FFF), pool_addrs),
            process_ids=st.sampled_from([None, None, 0]),
            kinds=st.sampled_from([Kind.UNTRANSLATED] * 4 + list(Kind)),
        ),
        min_size=2,
        max_size=10,
    ),
)
def test_caching_is_transparent_when_nothing_changes(
    caps: rv.Capabilities,
    fctl: int,
    ddtp: int,
    seed: int,
    device_id: int,
    reqs: List[rv.Request],
) -> None:
    """CACHING: an IOMMU may cache DDT/PDT entries and translations, but while memory and
    the registers do not change the cached and uncached IOMMUs answer alike.  (No A/D
    updates: capabilities.AMO_HWAD = 0; one device and one address space per example, so
    no two contexts share a GSCID/PSCID with different tables.)"""
    caps = caps.replace(amo_hwad=False)
    responses = []
    for cache_params in ({}, NO_CACHES):
        mem = rv.SparseMemory()
        fill_pool(mem, seed, fctl, ad=False)
        io = rv.Iommu(mem, capabilities=caps, fctl=fctl, params=rv.IommuParams(**cache_params))
        io.mmio_write(rv.REG.DDTP, ddtp)
        out = []
        for r0 in reqs:
            r = dataclasses.replace(r0, device_id=device_id)
            rsp = io.translate(r)
            check_response(r, rsp)
            out.append(rsp)
        responses.append(out)
    assert responses[0] == responses[1]


# --------------------------------------------------------------------------
# A well-formed two-stage system with one structure overwritten
# --------------------------------------------------------------------------
DEV = 0x1_2345  # PDTV=1 device: DDI[2]=2, DDI[1]=0x48, DDI[0]=5 (extended format)
DEV2 = 0x2_0041  # PDTV=0 device with iosatp
PID = 0x4_5678
IOVA = 0x12_3456_7000
MSI_GPA = 0x2800_2000
GPA = 0x7000_0000


class Scenario:
    """DEV: DC (PDTV, DPE, SADE, GADE, EN_ATS) -> PD20 PDT in guest memory -> PC(PID) and
    PC(0) -> Sv39 first stage in guest memory -> Sv39x4 G-stage; MSI flat table.
    DEV2: DC with iosatp (the same first-stage table) and the same G-stage."""

    def __init__(self, params: rv.IommuParams) -> None:
        s = self.s = System(params=params)
        g = self.g = s.gstage(SV39)
        guest = self.guest = GuestSpace(g, s.alloc)
        s1 = self.s1 = PageTable(guest, SV39, stage="s")
        self.data = s.page()
        guest.back(GPA, self.data)
        s1.map(IOVA, GPA)
        s1.map(0, GPA)  # IOVA 0 for the zero-process
        s1.map(MSI_GPA, MSI_GPA)  # the first stage maps the MSI page 1:1
        self.msi_target = 0x2400_3000
        msipt = self.msipt = s.msipt(4)
        msipt.set_flat(2, self.msi_target)
        pdt = self.pdt = ProcessDirectory(guest, PD20)
        pdt.set_pc(PID, fsc=s1.satp(), pscid=0x77, ens=True, sum_=True)
        pdt.set_pc(0, fsc=s1.satp(), pscid=0x78, ens=True)
        msi = dict(msiptp=msipt.msiptp(), msi_addr_mask=0x3, msi_addr_pattern=MSI_GPA >> 12 & ~0x3)
        tc = TC_V | TC_EN_ATS | TC_SADE | TC_GADE
        s.ddt.set_dc(DEV, tc=tc | TC_PDTV | TC_DPE, iohgatp=g.satp(5), fsc=pdt.pdtp(), **msi)
        s.ddt.set_dc(DEV2, tc=tc, iohgatp=g.satp(5), ta=ta(pscid=0x79), fsc=s1.satp(), **msi)

    def targets(self) -> Dict[str, Tuple[int, int]]:
        """SPA and size of each structure a walk for DEV / DEV2 reads."""
        s, g, guest, s1 = self.s, self.g, self.guest, self.s1
        t = {
            "dc": (s.ddt.dc_addr(DEV), 64),
            "dc2": (s.ddt.dc_addr(DEV2), 64),
            "ddte2": (s.ddt.nonleaf_addr(DEV, 2), 8),
            "ddte1": (s.ddt.nonleaf_addr(DEV, 1), 8),
            "pdte2": (guest.to_spa(self.pdt.nonleaf_addr(PID, 2)), 8),
            "pdte1": (guest.to_spa(self.pdt.nonleaf_addr(PID, 1)), 8),
            "pc": (guest.to_spa(self.pdt.pc_addr(PID)), 16),
            "pc0": (guest.to_spa(self.pdt.pc_addr(0)), 16),
            "msipte": (self.msipt.root + 2 * 16, 16),
        }
        for level in range(3):
            t[f"s1pte{level}"] = (guest.to_spa(s1.pte_addr(IOVA, level)), 8)
            t[f"gpte{level}"] = (g.pte_addr(GPA, level), 8)
            # the G-stage PTEs that translate the first-stage table's own pages
            t[f"gpte_s1root{level}"] = (g.pte_addr(s1.root, level), 8)
        return t


def test_scenario_is_well_formed() -> None:
    """Sanity: before any corruption every path of the scenario translates."""
    sc = Scenario(rv.IommuParams())
    t = sc.s.t
    assert (t(DEV, IOVA | 0x10, process_id=PID).addr) == sc.data | 0x10
    assert (t(DEV, 0x20).addr) == sc.data | 0x20  # DPE: process_id 0
    assert (t(DEV2, IOVA | 0x30, Access.WRITE).addr) == sc.data | 0x30
    rsp = t(DEV2, MSI_GPA | 4, Access.WRITE, length=4)
    assert (rsp.status, rsp.is_msi, rsp.addr) == (rv.Status.SUCCESS, True, sc.msi_target | 4)


mutations = st.one_of(
    st.tuples(st.just("bitflip"), st.lists(st.integers(0, 511), min_size=1, max_size=3)),
    st.tuples(st.just("random"), st.integers(0, 2**32)),
    st.tuples(st.just("zero"), st.just(0)),
    st.tuples(st.just("shaped"), st.integers(0, U64)),
    st.tuples(st.just("inject"), st.sampled_from(list(rv.MemoryFault))),
)
scenario_requests = requests(
    device_ids=st.sampled_from([DEV, DEV, DEV2, DEV2, DEV + 1]),
    addr=st.one_of(
        st.sampled_from([IOVA, IOVA | 0xFF8, 0, 8, MSI_GPA, MSI_GPA | 4, MSI_GPA | 0x10, GPA]),
        addrs,
    ),
    process_ids=st.sampled_from([None, PID, 0, PID + 1, 0xFFFFF]),
)
TARGETS = sorted(Scenario(rv.IommuParams()).targets())


def shaped(target: str, seed: int) -> Tuple[int, ...]:
    g = Gen(seed)
    if target.startswith("dc"):
        return g.dc()
    if target.startswith(("ddte", "pdte")):
        return (g.dirent(DDIR, DCS, PDIR, PCS),)
    if target.startswith("pc"):
        return g.pc()
    if target == "msipte":
        return g.msipte()
    return (g.pte(),)


def corrupt(sc: Scenario, target: str, mutation: Tuple[str, Any]) -> None:
    """Apply one of ``mutations`` to the structure ``target`` of ``sc`` in memory."""
    addr, size = sc.targets()[target]
    mem = sc.s.mem
    kind, arg = mutation
    if kind == "bitflip":
        data = bytearray(mem.read(addr, size))
        for b in arg:
            b %= size * 8
            data[b // 8] ^= 1 << (b % 8)
        mem.write(addr, bytes(data))
    elif kind == "random":
        mem.write(addr, random.Random(arg).randbytes(size))
    elif kind == "zero":
        mem.write(addr, bytes(size))
    elif kind == "shaped":  # random, but shaped like the structure it replaces
        mem.write(addr, b"".join(w.to_bytes(8, "little") for w in shaped(target, arg))[:size])
    else:
        mem.inject(addr, size, arg)


@settings(HYP, max_examples=600)
@given(
    target=st.sampled_from(TARGETS + ["msipte"] * 3),
    mutation=mutations,
    cached=st.booleans(),
    before=st.lists(scenario_requests, max_size=2),
    reqs=st.lists(scenario_requests, min_size=1, max_size=6),
)
def test_one_corrupted_structure_never_crashes(
    target: str,
    mutation: Tuple[str, Any],
    cached: bool,
    before: List[rv.Request],
    reqs: List[rv.Request],
) -> None:
    """Each structure of a working configuration (DDT entries, DC, PDT entries, PC,
    first-stage and G-stage PTEs, MSI PTE) overwritten by random data or bit flips:
    translations of every kind still answer with a well-formed response (with or
    without stale cached copies of the old contents)."""
    sc = Scenario(rv.IommuParams() if cached else rv.IommuParams(**NO_CACHES))
    io = sc.s.iommu
    for r in before:  # may fill caches with the uncorrupted structures
        check_response(r, io.translate(r))
    corrupt(sc, target, mutation)
    for r in reqs + PROBES:
        check_response(r, io.translate(r))


#: One request down each path of the scenario, after every corruption.
PROBES = [
    rv.Request(DEV, IOVA | 0x40, Access.READ, process_id=PID),
    rv.Request(DEV, IOVA | 0x40, Access.WRITE, process_id=PID, priv=True),
    rv.Request(DEV, 0x80, Access.EXECUTE),  # DPE: process_id 0
    rv.Request(DEV, MSI_GPA | 4, Access.WRITE, process_id=PID, length=4, data=7),
    rv.Request(DEV, IOVA, Access.READ, process_id=PID, kind=Kind.ATS_TRANSLATION),
    rv.Request(DEV2, IOVA | 0x80, Access.WRITE),
    rv.Request(DEV2, MSI_GPA | 4, Access.WRITE, length=4, data=7),
    rv.Request(DEV2, MSI_GPA, Access.READ, kind=Kind.TRANSLATED),
    rv.Request(DEV2, IOVA, Access.WRITE, kind=Kind.ATS_TRANSLATION, no_write=True),
]
