"""Crashes, unbounded growth and API edges found by fuzzing (issue 9, items 10-12).

* Item 10: a register write never raises (the debug interface's tr_response).
* Item 11: every structure of the model has a bound (QoS IDs of the whole-response
  shortcut, timed-out ITAGs).
* Item 12: API misuse raises TypeError / ValueError naming the argument, on the fast
  path too.
"""

from __future__ import annotations

import sys
import tracemalloc
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from helpers import COMPILED, SV39, TC_EN_ATS, TC_V, System, ta, type_error
from riscv_iommu import formats as F

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE / "sw"), str(_HERE.parent / "benchmarks")]
from bench_soak import Soak  # noqa: E402
from swhelpers import REG, ats_inval, cqcsr, iofence_c, setup_cq, setup_fq, submit  # noqa: E402

RSP = F.TR_RESPONSE
CTL = F.TR_REQ_CTL


# --------------------------------------------------------------------------
# Item 10: the debug interface
# --------------------------------------------------------------------------
def _debug(io: rv.Iommu, iova: int, ctl: int) -> int:
    io.mmio_write(REG.TR_REQ_IOVA, iova)
    io.mmio_write(REG.TR_REQ_CTL, ctl | CTL.Go_Busy.mask)
    assert io.mmio_read(REG.TR_REQ_CTL) & CTL.Go_Busy.mask == 0  # completed
    return int(io.mmio_read(REG.TR_RESPONSE))


def test_debug_bare_mode_iova_at_2_pow_60_does_not_raise() -> None:
    """Issue 9 item 10: in Bare mode, tr_req_iova = 1 << 60 then Go/Busy raised ValueError
    out of mmio_write (tr_response.PPN is 44 bits).  The write returns; tr_response holds
    a well-formed value (no reserved bit set)."""
    io = rv.Iommu(rv.SparseMemory())
    io.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    rsp = _debug(io, 1 << 60, CTL.NW.mask)
    assert rsp & RSP.reserved == 0


def test_debug_ppn_keeps_the_44_bits_of_the_field() -> None:
    """tr_response.PPN is bits 53:10 (44 bits: address bits 55:12).  With capabilities.PAS
    = 63 a Bare-mode address of 2**60 is in range; the register keeps the low 44 bits of
    its NAPOT-encoded PPN (here a 4 KiB range: S = 0)."""
    io = rv.Iommu(
        rv.SparseMemory(),
        capabilities=rv.Capabilities.full(pas=63),
        params=rv.IommuParams(bare_range_size=4096),
    )
    io.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    iova = (1 << 60) | (0xABC << 12)
    assert _debug(io, iova, CTL.NW.mask) == RSP.encode(PPN=0xABC, S=0)


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    mode=st.sampled_from([rv.IommuMode.OFF, rv.IommuMode.BARE, rv.IommuMode.LVL3]),
    iova=st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1 << 60, 0x1000])),
    ctl=st.integers(0, (1 << 64) - 1),
    range_size=st.sampled_from([4096, 1 << 21, 1 << 56]),
    pas=st.sampled_from([34, 56, 63]),
)
def test_debug_interface_writes_never_raise(
    mode: int, iova: int, ctl: int, range_size: int, pas: int
) -> None:
    """Any tr_req_iova / tr_req_ctl values, any mode, any bare_range_size: the writes
    return, Go/Busy reads 0, tr_response has no reserved bit set."""
    s = System(
        caps=rv.Capabilities.full(pas=pas), params=rv.IommuParams(bare_range_size=range_size)
    )
    g = s.stage1(mode=SV39)
    g.map(0x1000, s.page())
    s.ddt.set_dc(0, tc=TC_V, fsc=g.satp())
    io = s.iommu
    io.mmio_write(REG.DDTP, mode if mode != rv.IommuMode.LVL3 else s.ddt.ddtp)
    rsp = _debug(io, iova, ctl & ~(0xFF_FFFF << CTL.DID.lsb))  # device 0
    assert rsp & RSP.reserved == 0


# --------------------------------------------------------------------------
# Item 11: bounded structures
# --------------------------------------------------------------------------
def test_many_devices_do_not_grow_the_model() -> None:
    """Issue 9 item 11: Iommu.qos_of kept one entry per device_id ever translated.  The
    QoS IDs now travel in the whole-response shortcut's entries, which are bounded by
    IommuParams.iotlb_size; 20000 device_ids leave every structure within its capacity."""
    io = rv.Iommu(rv.SparseMemory(), params=rv.IommuParams(iotlb_size=16))
    io.mmio_write(REG.DDTP, rv.IommuMode.BARE)
    io.mmio_write(REG.IOMMU_QOSID, F.IOMMU_QOSID.encode(RCID=3, MCID=4), 4)
    for did in range(20000):
        rsp = io.translate(rv.Request(did, 0x1000))
        assert (rsp.addr, rsp.rcid, rsp.mcid) == (0x1000, 3, 4)
    assert not hasattr(io, "qos_of")
    assert len(io._front) <= 16


def test_front_cache_hit_carries_the_device_qos_ids() -> None:
    """Repeated translations (answered by the whole-response shortcut) still carry each
    device's DC.ta.RCID / MCID."""
    s = System()
    s1 = s.stage1(mode=SV39)
    page = s.page()
    s1.map(0x1000, page)
    for d, (r, m) in {1: (5, 6), 2: (7, 8)}.items():
        s.ddt.set_dc(d, tc=TC_V, fsc=s1.satp(), ta=ta(pscid=d, rcid=r, mcid=m))
    for _ in range(3):
        for d, qos in {1: (5, 6), 2: (7, 8)}.items():
            rsp = s.t(d, 0x1010)
            assert (rsp.addr, rsp.rcid, rsp.mcid) == (page | 0x10, *qos)
    assert len(s.iommu._front) == 2


def test_timed_out_itags_are_bounded_by_the_itag_count() -> None:
    """Issue 9 item 11: invalidations.timed_out kept every timed-out ITAG until an
    IOFENCE.C.  It is the set of timed-out ITAGs (at most the 32 ITAGs): 100 ATS.INVAL
    commands that each time out on ITAG 0 leave {0}, and the next IOFENCE.C reports the
    timeout once (cmd_to) and clears it."""
    s = System(params=rv.IommuParams(ats_inval_timeout=10))
    s.ddt.set_dc(0x15, tc=TC_V | TC_EN_ATS)
    s.iommu.on_ats_message = lambda msg: None
    setup_fq(s)
    setup_cq(s, log2sz=8)
    for k in range(100):
        submit(s, ats_inval(0x15, addr=k << 12))
        s.iommu.tick(10)
    inv = s.iommu.invalidations
    assert inv.timed_out == {0} and not inv.outstanding
    flag = s.page()
    submit(s, iofence_c(addr=flag, data=1))
    assert cqcsr(s) & F.CQCSR.cmd_to.mask
    assert not inv.timed_out


def test_soak_memory_is_flat() -> None:
    """A short soak (the benchmark is benchmarks/bench_soak.py): random device_ids and
    process_ids (all valid) over a model with small caches, full after the warm-up.
    Traced memory after 6000 more operations grows by less than the caches' own
    fluctuation (entries and their index sets come and go with invalidations); with
    Iommu.qos_of it grew by one entry per device translated (about 240 KiB here)."""
    soak = Soak(
        seed=1,
        params=rv.IommuParams(
            ats_inval_timeout=20_000,
            ddt_cache_size=8,
            pdt_cache_size=16,
            iotlb_size=64,
            msi_cache_size=4,
            gwalk_cache_size=8,
        ),
    )
    soak.run(3000)  # warm-up: fill every cache
    tracemalloc.start()
    try:
        soak.run(100)
        before = tracemalloc.get_traced_memory()[0]
        soak.run(6000)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 128 * 1024, (before, after)


# --------------------------------------------------------------------------
# Item 12: the API edge
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "exc", "name"),
    [
        (lambda io: io.invalidate_ddt("1"), TypeError, "device_id"),
        (lambda io: io.invalidate_ddt(1.0), TypeError, "device_id"),
        pytest.param(
            lambda io: io.invalidate_ddt(True),
            TypeError,
            "device_id",
            marks=pytest.mark.skipif(COMPILED, reason="compiled: a bool arrives as an int"),
        ),
        (lambda io: io.invalidate_ddt(1 << 24), ValueError, "device_id"),
        (lambda io: io.invalidate_ddt(-1), ValueError, "device_id"),
        (lambda io: io.invalidate_pdt(None, 1), TypeError, "device_id"),
        (lambda io: io.invalidate_pdt(1 << 24, 1), ValueError, "device_id"),
        (lambda io: io.invalidate_pdt(1, None), TypeError, "process_id"),
        (lambda io: io.invalidate_pdt(1, Decimal(1)), TypeError, "process_id"),
        (lambda io: io.invalidate_pdt(1, 1 << 20), ValueError, "process_id"),
        (lambda io: io.invalidate_pdt(1, -1), ValueError, "process_id"),
    ],
)
def test_invalidate_arguments_are_checked(
    call: Callable[[rv.Iommu], None], exc: type, name: str
) -> None:
    io = rv.Iommu(rv.SparseMemory())
    with pytest.raises(exc, match=type_error(name) if exc is TypeError else name):
        call(io)


def test_invalidate_accepts_the_widest_ids() -> None:
    io = rv.Iommu(rv.SparseMemory())
    io.invalidate_ddt((1 << 24) - 1)
    io.invalidate_ddt(None)
    io.invalidate_pdt((1 << 24) - 1, (1 << 20) - 1)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"iotlb_size": None}, "iotlb_size"),
        ({"hpm_counters": 3.0}, "hpm_counters"),
        ({"ddt_cache_size": True}, "ddt_cache_size"),
        ({"bare_range_size": float(1 << 21)}, "bare_range_size"),
        ({"ats_inval_timeout": "0"}, "ats_inval_timeout"),
        ({"cache_policy": 1}, "cache_policy"),
        ({"gipc_revision": 2024}, "gipc_revision"),
        ({"gxl_writable": "yes"}, "gxl_writable"),
        ({"auto_process": 2}, "auto_process"),
        ({"reset_iommu_mode": None}, "reset_iommu_mode"),
    ],
)
def test_iommu_params_field_of_the_wrong_type(kw: Dict[str, Any], name: str) -> None:
    """Issue 9 item 12: IommuParams fields of the wrong type raise TypeError naming them."""
    with pytest.raises(TypeError, match=f"IommuParams.{name}"):
        rv.IommuParams(**kw)


def test_iommu_params_accepts_enums_and_0_1_for_flags() -> None:
    p = rv.IommuParams(reset_iommu_mode=rv.IommuMode.BARE, gxl_writable=1, be_writable=0)
    assert (p.reset_iommu_mode, p.gxl_writable) == (rv.IommuMode.BARE, 1)


@pytest.mark.parametrize(
    ("call", "exc", "name"),
    [
        (lambda: rv.Capabilities.from_raw(0, gipc_bit="44"), TypeError, "gipc_bit"),
        (lambda: rv.Capabilities.from_raw(0, gipc_bit=44.0), TypeError, "gipc_bit"),
        (lambda: rv.Capabilities.from_raw(0, gipc_bit=64), ValueError, "gipc_bit"),
        (lambda: rv.Capabilities.from_raw(0, gipc_bit=-1), ValueError, "gipc_bit"),
        (lambda: rv.Capabilities.from_raw("0"), TypeError, "raw"),
        (lambda: rv.Capabilities.from_raw(None), TypeError, "raw"),
        (lambda: rv.Capabilities(pas="56"), TypeError, "Capabilities.pas"),
        (lambda: rv.Capabilities(igs=None), TypeError, "Capabilities.igs"),
        (lambda: rv.Capabilities(sv39=2), TypeError, "Capabilities.sv39"),
        (lambda: rv.Capabilities(gipc_bit=44.0), TypeError, "Capabilities.gipc_bit"),
    ],
)
def test_capabilities_arguments_are_checked(call: Callable[[], Any], exc: type, name: str) -> None:
    with pytest.raises(exc, match=name):
        call()


@pytest.mark.parametrize("access", [1.0, True, Decimal(1), Fraction(1), [1], {1: 1}])
def test_access_misuse_raises_on_the_fast_path(access: Any) -> None:
    """With the whole-response shortcut holding the request, a misused access still
    raises TypeError naming it (the check precedes every cache)."""
    s = System()
    s1 = s.stage1(mode=SV39)
    s1.map(0x1000, s.page())
    s.ddt.set_dc(1, tc=TC_V, fsc=s1.satp())
    req = rv.Request(1, 0x1000, rv.Access.WRITE)
    for _ in range(2):  # a walk, then cache hits alone: the shortcut is recorded
        assert s.iommu.translate(req).status == rv.Status.SUCCESS
    assert s.iommu._front  # the next identical request is a shortcut hit
    req.access = access
    with pytest.raises(TypeError, match="access"):
        s.iommu.translate(req)
    req.access = 1  # a plain int equal to an Access is accepted
    assert s.iommu.translate(req).w


@pytest.mark.parametrize("size", [1 << 60, (1 << 64) - 0x1000, rv.SparseMemory.MAX_READ + 1])
def test_sparse_memory_read_of_an_absurd_size(size: int) -> None:
    """Issue 9 item 12: SparseMemory.read of an absurd size raises ValueError naming the
    size (instead of building the buffer)."""
    with pytest.raises(ValueError, match="size"):
        rv.SparseMemory().read(0x1000 if size < 1 << 63 else 0, size)


def test_sparse_memory_reads_up_to_max_read() -> None:
    m = rv.SparseMemory()
    m.write(0x2000, b"\x01")
    data = m.read(0x1000, rv.SparseMemory.MAX_READ)
    assert len(data) == rv.SparseMemory.MAX_READ and data[0x1000] == 1
