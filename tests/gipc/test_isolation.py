"""VM isolation under GIPC: one device, PASIDs bound to different VMs (hypothesis)."""

from __future__ import annotations

from typing import Dict, List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import riscv_iommu as rv
from gipc_helpers import GPA, IOVA, GipcSystem

# a layout: revision, and a list of (pasid, vm) bindings with distinct PASIDs
layouts = st.tuples(
    st.sampled_from([("2024", True), ("2024", False), ("2025", True)]),
    st.dictionaries(
        keys=st.integers(0, (1 << 20) - 1),
        values=st.integers(1, 6),
        min_size=1,
        max_size=8,
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(layout=layouts, probe=st.integers(0, (1 << 20) - 1))
def test_same_iova_reaches_each_vms_own_memory(
    layout: Tuple[Tuple[str, bool], Dict[int, int]], probe: int
) -> None:
    """Each PASID's IOVA lands in its own VM's memory, never another VM's; unbound PASIDs fault."""
    (rev, flat), bindings = layout
    s = GipcSystem(rev, msi_flat=flat)
    widest = s.fmt.pid_width[3]
    spa_of: Dict[int, int] = {}
    memory_of_vm: Dict[int, List[int]] = {}
    for pasid, vm in bindings.items():
        pasid &= (1 << widest) - 1
        if pasid in spa_of:
            continue
        spa = s.bind(pasid, gscid=vm, iova=IOVA, gpa=GPA + (pasid << 12))
        spa_of[pasid] = spa
        memory_of_vm.setdefault(vm, []).append(spa)
    s.device()
    vm_of = {p: v for p, v in bindings.items()}
    for pasid, spa in spa_of.items():
        for access in (rv.Access.READ, rv.Access.WRITE):
            rsp = s.t(3, IOVA | 0x18, access, process_id=pasid)
            assert rsp.status == rv.Status.SUCCESS, rsp
            assert rsp.addr == spa | 0x18
            owner = vm_of[pasid]
            others = {a for v, spas in memory_of_vm.items() if v != owner for a in spas}
            assert rsp.addr & ~0xFFF not in others
    if probe not in spa_of:
        rsp = s.t(3, IOVA, process_id=probe)
        assert rsp.fault is not None
        assert rsp.fault.cause in (
            rv.Cause.PDT_ENTRY_NOT_VALID,
            rv.Cause.TRANSACTION_TYPE_DISALLOWED,
        )
