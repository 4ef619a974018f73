"""The study's experiments, each a list of independent tasks.

A task builds one system (:func:`~riscv_iommu.study.systems.build`), runs
its points and returns plain JSON values; :func:`run_task` is what a worker
process runs, so tasks can run in parallel and still give the same result
in the same order.  Nothing measured here depends on time.

Measurement of a point: a fresh IOMMU with the point's cache capacities over
the system's memory (:meth:`System.fresh_iommu`), ``warmup`` requests with
nothing attached, then ``translations`` requests with a :class:`Probe`
attached; reads per translation come from the probe, hit rates from the
difference of two ``iommu.stats`` snapshots.
"""

from __future__ import annotations

import gc
import sys
from types import BuiltinFunctionType, CodeType, FunctionType, ModuleType
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..capabilities import IommuParams
from ..iommu import Iommu
from .config import CACHES, PAGE_SIZES, StudyConfig
from .probe import Probe, cache_counts, delta, hit_rate
from .systems import System, build
from .workload import Item, seed_of, stream

__all__ = ["Task", "tasks", "run_task", "COLD_STATES", "REBIND_GROUPS"]

#: A task: (experiment, system, argument)
Task = Tuple[str, str, Any]

#: The cache states of the ``cold`` experiment: what each one has cached before
#: the measured translation (of page 1 of PASID 0; page 0 is the warming request).
COLD_STATES: Dict[str, str] = {
    "cold": "every cache empty (the first request of the device)",
    "dirs": "DC and PC cached, IOTLB miss, no G-stage walk cache",
    "dirs+gwalk": "DC, PC and G-stage walk cache warm, IOTLB miss",
    "iotlb-hit": "the same request again: an IOTLB hit",
    "msi": "an MSI write with DC and PC cached (first MSI of the PASID)",
}
#: Request groups of the ``rebind`` experiment.
REBIND_GROUPS = ("pasid", "same_vm", "other_vms")
#: PASIDs per rebind group (each with all its pages): kept well under the IOTLB
_GROUP_PASIDS = 4


def params_for(
    cfg: StudyConfig, sizes: Optional[Dict[str, int]] = None, policy: Optional[str] = None
) -> IommuParams:
    """IommuParams with the config's default capacities, ``sizes`` overriding some."""
    caps = dict(cfg.cache_defaults)
    caps.update(sizes or {})
    kw: Dict[str, Any] = {CACHES[name]: caps[name] for name in CACHES}
    return IommuParams(cache_policy=policy or cfg.policy, **kw)


def tasks(cfg: StudyConfig) -> List[Task]:
    """Every task of the config's experiments, in report order."""
    out: List[Task] = []
    for exp in cfg.experiments:
        for kind in cfg.systems:
            if exp == "caches":
                out += [(exp, kind, policy) for policy in cfg.policies]
            elif exp == "vms":
                counts = cfg.vm_sweep[:1] if kind == "classic-1vm" else cfg.vm_sweep
                out += [(exp, kind, n) for n in counts]
            elif exp == "workloads":
                out += [(exp, kind, ps) for ps in cfg.page_sizes]
            else:
                out.append((exp, kind, None))
    return out


def run_task(cfg_data: Dict[str, Any], task: Task) -> Dict[str, Any]:
    """Run one task (``cfg_data``: :meth:`StudyConfig.as_dict`); JSON values back."""
    cfg = StudyConfig.from_dict(cfg_data)
    exp, kind, arg = task
    runner = _RUNNERS[exp]
    result: Dict[str, Any] = runner(cfg, kind, arg)
    return result


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------
class _Run:
    """Counts of one measured stretch of requests."""

    def __init__(self, io: Iommu) -> None:
        self.io = io
        self.probe = Probe()
        self.faults = 0
        self.n = 0
        self.before = cache_counts(io)

    def send(self, sysm: System, items: Sequence[Item]) -> None:
        tr = self.io.translate
        faults = 0
        reqs = [sysm.request(*it) for it in items]
        self.io.attach(self.probe)
        try:
            for r in reqs:
                if tr(r).fault is not None:
                    faults += 1
        finally:
            self.io.detach(self.probe)
        self.faults += faults
        self.n += len(reqs)

    def result(self) -> Dict[str, Any]:
        d = delta(cache_counts(self.io), self.before)
        return {
            "translations": self.n,
            "reads": self.probe.per(max(self.n, 1)),
            "hit_rate": {c: hit_rate(v) for c, v in d.items()},
            "lookups": {c: v["hits"] + v["misses"] for c, v in d.items()},
            "faults": self.faults,
        }


def _warm(io: Iommu, sysm: System, items: Sequence[Item]) -> int:
    """Send ``items`` with nothing attached; returns the number of faults."""
    tr = io.translate
    return sum(1 for it in items if tr(sysm.request(*it)).fault is not None)


def measure(io: Iommu, sysm: System, warm: Sequence[Item], items: Sequence[Item]) -> Dict[str, Any]:
    """Warm with ``warm``, then measure ``items``."""
    faults = _warm(io, sysm, warm)
    run = _Run(io)
    run.send(sysm, items)
    res = run.result()
    res["faults"] += faults
    return res


def _workload(cfg: StudyConfig, exp: str, pattern: str) -> Tuple[List[Item], List[Item]]:
    """(warm-up, measured) requests of an experiment: the same for every system."""
    items = stream(
        pattern,
        cfg.pasids,
        cfg.pages,
        cfg.warmup + cfg.translations,
        cfg.msi_fraction,
        seed_of(cfg.seed, exp, pattern, cfg.pasids, cfg.pages),
    )
    return items[: cfg.warmup], items[cfg.warmup :]


def _touched(*streams: Sequence[Item]) -> List[int]:
    return sorted({it[0] for s in streams for it in s})


def _build(cfg: StudyConfig, kind: str, vms: int, bind: List[int], page: str = "") -> System:
    return build(
        kind,
        vms,
        cfg.pasids,
        cfg.pages,
        PAGE_SIZES[page or cfg.page_size],
        params_for(cfg),
        bind=bind,
    )


# ---------------------------------------------------------------------------
# the experiments
# ---------------------------------------------------------------------------
def _cold(cfg: StudyConfig, kind: str, _: Any) -> Dict[str, Any]:
    """Reads of one translation in each state of COLD_STATES (2 VMs, PASIDs 0 and 1)."""
    sysm = build(kind, 2, 2, max(cfg.pages, 2), PAGE_SIZES[cfg.page_size], bind=[0, 1])
    out: Dict[str, Any] = {"system": kind, "states": {}}
    for state in COLD_STATES:
        sizes = {"GWALK": 0} if state == "dirs" else {}
        io = sysm.fresh_iommu(params_for(cfg, sizes))
        warm: List[Item] = {
            "cold": [],
            "dirs": [(0, 0, False)],
            "dirs+gwalk": [(0, 0, False)],
            "iotlb-hit": [(0, 1, False)],
            "msi": [(0, 0, False)],
        }[state]
        item = (0, 0, True) if state == "msi" else (0, 1, False)
        res = measure(io, sysm, warm, [item])
        out["states"][state] = res["reads"]
        out.setdefault("faults", 0)
        out["faults"] += res["faults"]
    return out


def _caches(cfg: StudyConfig, kind: str, policy: str) -> Dict[str, Any]:
    """Reads per translation and hit rate against each cache's capacity."""
    warm, items = _workload(cfg, "caches", cfg.pattern)
    sysm = _build(cfg, kind, cfg.vms, _touched(warm, items))
    points = []
    for cache in cfg.caches:
        for cap in cfg.cache_sweep:
            io = sysm.fresh_iommu(params_for(cfg, {cache: cap}, policy))
            res = measure(io, sysm, warm, items)
            res.update(cache=cache, capacity=cap)
            points.append(res)
    return {"system": kind, "policy": policy, "points": points}


def _vms(cfg: StudyConfig, kind: str, n: int) -> Dict[str, Any]:
    """Hit rates with the config's PASIDs spread over ``n`` VMs."""
    warm, items = _workload(cfg, "vms", cfg.pattern)
    sysm = _build(cfg, kind, n, _touched(warm, items))
    res = measure(sysm.fresh_iommu(params_for(cfg)), sysm, warm, items)
    res.update(system=kind, vms=n)
    return res


def _workloads(cfg: StudyConfig, kind: str, page: str) -> Dict[str, Any]:
    """Reads per translation of each access pattern at one page size."""
    loads = {p: _workload(cfg, "workloads", p) for p in cfg.patterns}
    sysm = _build(cfg, kind, cfg.vms, _touched(*[w + i for w, i in loads.values()]), page)
    points = []
    for pattern, (warm, items) in loads.items():
        res = measure(sysm.fresh_iommu(params_for(cfg)), sysm, warm, items)
        res.update(pattern=pattern)
        points.append(res)
    return {"system": kind, "page_size": page, "points": points}


def _pass(sysm: System, gs: Sequence[int]) -> List[Item]:
    return [(g, p, False) for g in gs for p in range(sysm.pages)]


def _rebind(cfg: StudyConfig, kind: str, _: Any) -> Dict[str, Any]:
    """Bind, rebind and unbind a PASID in a warm system; what each one costs."""
    warm, items = _workload(cfg, "rebind", cfg.pattern)
    n = 1 if kind == "classic-1vm" else cfg.vms
    # PASID 0 (the hottest) in VM 0; its VM's other PASIDs; PASIDs of other VMs
    peers = [g for g in range(n, cfg.pasids, n)][:_GROUP_PASIDS]
    others = [g for g in range(1, cfg.pasids) if g % n][:_GROUP_PASIDS]
    new = -(-cfg.pasids // n) * n  # a PASID not bound yet, in VM 0
    sysm = _build(cfg, kind, cfg.vms, sorted(set(_touched(warm, items) + [0] + peers + others)))
    io = sysm.iommu  # the hypervisor's IOMMU: commands go through its queue
    faults = _warm(io, sysm, warm + items)
    groups: Dict[str, List[int]] = {"pasid": [0], "same_vm": peers, "other_vms": others}
    ops: List[Dict[str, Any]] = []

    def op(name: str, fn: Any, group: Dict[str, List[int]]) -> None:
        nonlocal faults
        bound = {k: v for k, v in group.items() if all(g in sysm.spaces for g in v)}
        everything = [g for gs in bound.values() for g in gs]
        faults += _warm(io, sysm, _pass(sysm, everything))  # every group cached
        before = _group_reads(io, sysm, bound)
        probe = Probe()
        snap = cache_counts(io)
        io.attach(probe)
        try:
            fn()
        finally:
            io.detach(probe)
        dropped = {c: v["invalidations"] for c, v in delta(cache_counts(io), snap).items()}
        after = _group_reads(io, sysm, group)
        ops.append(
            {
                "op": name,
                "commands": probe.commands,
                "command_names": probe.names,
                "dropped": dropped,
                "reads_before": before,
                "reads_after": after,
            }
        )

    op("bind", lambda: sysm.bind(new, 0), {"pasid": [new], **_rest(groups)})
    if kind == "classic":
        if n > 1:
            op("rebind", lambda: sysm.reassign(0, 1), groups)
    elif kind != "classic-1vm" and n > 1:
        op("rebind", lambda: sysm.rebind(0, 1), groups)
    op("unbind", lambda: sysm.unbind(new), _rest(groups))
    return {"system": kind, "vms": n, "ops": ops, "faults": faults}


def _rest(groups: Dict[str, List[int]]) -> Dict[str, List[int]]:
    return {k: v for k, v in groups.items() if k != "pasid"}


def _group_reads(io: Iommu, sysm: System, groups: Dict[str, List[int]]) -> Dict[str, float]:
    """Reads per translation of one pass over each group's pages (in group order)."""
    out: Dict[str, float] = {}
    for name, gs in groups.items():
        run = _Run(io)
        run.send(sysm, _pass(sysm, gs))
        out[name] = run.probe.total() / max(run.n, 1)
    return out


def deep_size(roots: Sequence[Any], stop: Sequence[Any] = ()) -> int:
    """Bytes of every object reachable from ``roots`` (``sys.getsizeof`` each, once),
    not crossing into ``stop`` nor into what the program shares: modules and their
    globals, classes, code, and functions defined at module level."""
    seen = {id(o) for o in stop}
    seen.update(id(m.__dict__) for m in list(sys.modules.values()) if m is not None)
    stack = list(roots)
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, (type, ModuleType, CodeType, BuiltinFunctionType)):
            continue
        if isinstance(o, FunctionType) and "<locals>" not in o.__qualname__:
            continue
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def model_size(io: Iommu, mem: Any) -> int:
    """Bytes of the model's own objects (:func:`deep_size` of ``io``): not the memory
    port ``mem`` nor the observers attached to ``io`` (a coverage collector of the test
    suite, say, which grows with every run)."""
    return deep_size([io], [mem, *io.observers])


def _sizes(cfg: StudyConfig, kind: str, vms: int, pasids: int) -> Dict[str, int]:
    """Bytes of a built system after one request per page, by component: the simulated
    memory (the tables the host wrote), the host toolkit's objects, the model's own."""
    sysm = build(kind, vms, pasids, cfg.pages, PAGE_SIZES[cfg.page_size], params_for(cfg))
    io = sysm.fresh_iommu(params_for(cfg))
    _warm(io, sysm, _pass(sysm, range(pasids)))
    return {
        "simulated memory": deep_size([sysm.mem]),
        "host toolkit": deep_size([sysm.hv], [sysm.mem, sysm.iommu]),
        "model": model_size(io, sysm.mem),
    }


def _memory(cfg: StudyConfig, kind: str, _: Any) -> Dict[str, Any]:
    """Bytes per VM and per PASID: slopes between two sizes of the same system."""
    lo, hi = min(cfg.memory_points), max(cfg.memory_points)

    def slope(a: Dict[str, int], b: Dict[str, int]) -> Dict[str, float]:
        return {c: (b[c] - a[c]) / (hi - lo) for c in a}

    small, many = _sizes(cfg, kind, lo, lo), _sizes(cfg, kind, lo, hi)
    per_vm: Optional[Dict[str, float]] = None
    if kind != "classic-1vm":  # one VM by construction
        per_vm = slope(many, _sizes(cfg, kind, hi, hi))
    return {"system": kind, "sizes": [lo, hi], "per_pasid": slope(small, many), "per_vm": per_vm}


_RUNNERS: Dict[str, Any] = {
    "cold": _cold,
    "caches": _caches,
    "vms": _vms,
    "workloads": _workloads,
    "rebind": _rebind,
    "memory": _memory,
}
