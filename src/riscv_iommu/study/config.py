"""What a study run measures: :class:`StudyConfig`, its presets and its checks.

Every field has a range; :meth:`StudyConfig.validate` names the field and the
range when a value is outside it (a :class:`ValueError` the command turns into
a message and exit status 2).  The same config and seed always give the same
result: every random choice comes from :class:`random.Random` seeded from
``seed`` and the point being measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, Tuple

__all__ = [
    "StudyConfig",
    "SYSTEMS",
    "PATTERNS",
    "PAGE_SIZES",
    "CACHES",
    "POLICIES",
    "EXPERIMENTS",
    "PRESETS",
    "MAX_VMS",
    "MAX_PASIDS",
    "MAX_BUFFER",
]

#: The configurations compared (see docs/study-gipc.md for what each one builds).
SYSTEMS: Dict[str, str] = {
    "classic": "one PCIe function per VM (SR-IOV), DC.iohgatp names the VM",
    "classic-1vm": "one function, all PASIDs in one VM",
    "gipc-2024": "GIPC 2024: PC.iohgatp, PDT and first-stage tables at SPAs",
    "gipc-2025": "GIPC 2025: PC.iohgatp, PDT at SPAs, first-stage tables at GPAs",
}
#: Access patterns of the workload.
PATTERNS: Dict[str, str] = {
    "sequential": "each PASID in turn streams through its pages",
    "uniform": "PASID and page uniformly at random",
    "strided": "each PASID in turn, pages with a stride of 7",
    "zipf": "PASID and page Zipf-distributed (s = 1.2): a hot set",
}
#: Page sizes (first-stage and G-stage leaves) by name.
PAGE_SIZES: Dict[str, int] = {"4k": 1 << 12, "2m": 1 << 21, "1g": 1 << 30}
#: The model's caches, as ``iommu.stats`` names them, and their IommuParams field.
CACHES: Dict[str, str] = {
    "DDT": "ddt_cache_size",
    "PDT": "pdt_cache_size",
    "IOTLB": "iotlb_size",
    "MSI": "msi_cache_size",
    "GWALK": "gwalk_cache_size",
}
POLICIES = ("lru", "fifo")
#: The experiments, in report order.
EXPERIMENTS: Dict[str, str] = {
    "cold": "reads of one translation, structure by structure, in four cache states",
    "caches": "reads per translation against each cache's capacity, LRU and FIFO",
    "vms": "hit rate of each cache against the number of VMs sharing the PASIDs",
    "workloads": "reads per translation for each access pattern and page size",
    "rebind": "cost of binding, rebinding and unbinding a PASID",
    "memory": "the model's own memory per VM and per PASID",
}
#: 16-bit GSCIDs: 65,536 VMs.
MAX_VMS = 1 << 16
#: PASIDs of one device (process_id is 20 bits; 0 is not used).
MAX_PASIDS = 1_000_000
#: Largest buffer a PASID maps (pages x page size): the Sv39 IOVA space above 1 GiB.
MAX_BUFFER = 1 << 37


@dataclass(frozen=True)
class StudyConfig:
    """A study: systems, workload, sweeps and experiments.

    The workload: ``pasids`` PASIDs of one device in total, spread round-robin
    over the VMs (``vms``, the value used outside the VM sweep), each with
    ``pages`` pages of ``page_size`` mapped, of which requests touch pages
    following ``pattern``; a fraction ``msi_fraction`` of requests are MSI
    writes to the PASID's VM's interrupt file.  ``warmup`` requests fill the
    caches before ``translations`` requests are measured.
    """

    seed: int = 1
    systems: Tuple[str, ...] = tuple(SYSTEMS)
    experiments: Tuple[str, ...] = tuple(EXPERIMENTS)
    vms: int = 16
    pasids: int = 256
    pages: int = 16
    page_size: str = "4k"
    pattern: str = "zipf"
    msi_fraction: float = 0.05
    translations: int = 3000
    warmup: int = 3000
    #: the VM counts of the ``vms`` experiment
    vm_sweep: Tuple[int, ...] = (1, 4, 16, 64, 256)
    #: capacities of the ``caches`` experiment (each cache in turn, the others at default)
    cache_sweep: Tuple[int, ...] = (0, 4, 16, 64, 256, 1024, 4096)
    caches: Tuple[str, ...] = tuple(CACHES)
    policies: Tuple[str, ...] = POLICIES
    patterns: Tuple[str, ...] = tuple(PATTERNS)
    page_sizes: Tuple[str, ...] = tuple(PAGE_SIZES)
    #: VM counts at which the ``memory`` experiment measures (two or more)
    memory_points: Tuple[int, ...] = (8, 32)
    #: capacities used when a cache is not the one swept (IommuParams defaults)
    cache_defaults: Dict[str, int] = field(
        default_factory=lambda: {"DDT": 64, "PDT": 256, "IOTLB": 2048, "MSI": 64, "GWALK": 256}
    )
    policy: str = "lru"

    def validate(self) -> "StudyConfig":
        """Check every field; raises ValueError naming the field. Returns self."""
        _check_int("seed", self.seed, 0, (1 << 63) - 1)
        _check_names("systems", self.systems, SYSTEMS)
        _check_names("experiments", self.experiments, EXPERIMENTS)
        _check_int("vms", self.vms, 1, MAX_VMS)
        _check_int("pasids", self.pasids, 1, MAX_PASIDS)
        if self.pasids < self.vms:
            raise ValueError(
                f"pasids: {self.pasids} is fewer than vms ({self.vms}): every VM needs a PASID"
            )
        _check_int("pages", self.pages, 1, 4096)
        _check_name("page_size", self.page_size, PAGE_SIZES)
        _check_name("pattern", self.pattern, PATTERNS)
        if not isinstance(self.msi_fraction, (int, float)) or isinstance(self.msi_fraction, bool):
            raise ValueError("msi_fraction: must be a number from 0 to 1")
        if not 0.0 <= float(self.msi_fraction) <= 1.0:
            raise ValueError(f"msi_fraction: {self.msi_fraction} is not within 0..1")
        _check_int("translations", self.translations, 1, 10_000_000)
        _check_int("warmup", self.warmup, 0, 10_000_000)
        if not self.vm_sweep:
            raise ValueError("vm_sweep: needs at least one VM count")
        for v in self.vm_sweep:
            _check_int("vm_sweep", v, 1, MAX_VMS)
            if v > self.pasids:
                raise ValueError(f"vm_sweep: {v} VMs is more than pasids ({self.pasids})")
        if not self.cache_sweep:
            raise ValueError("cache_sweep: needs at least one capacity")
        for c in self.cache_sweep:
            _check_int("cache_sweep", c, 0, 1 << 20)
        _check_names("caches", self.caches, CACHES)
        _check_names("policies", self.policies, {p: p for p in POLICIES})
        _check_name("policy", self.policy, {p: p for p in POLICIES})
        _check_names("patterns", self.patterns, PATTERNS)
        _check_names("page_sizes", self.page_sizes, PAGE_SIZES)
        largest = max(PAGE_SIZES[p] for p in (self.page_size, *self.page_sizes))
        if self.pages * largest > MAX_BUFFER:
            raise ValueError(
                f"pages: {self.pages} pages of {largest >> 20} MiB exceed the "
                f"{MAX_BUFFER >> 30} GiB an Sv39 address space leaves a PASID"
            )
        if len(set(self.memory_points)) < 2:
            raise ValueError("memory_points: needs two different VM counts")
        for v in self.memory_points:
            _check_int("memory_points", v, 1, MAX_VMS)
        if set(self.cache_defaults) != set(CACHES):
            raise ValueError(f"cache_defaults: needs exactly {', '.join(CACHES)}")
        for name, c in self.cache_defaults.items():
            _check_int(f"cache_defaults.{name}", c, 0, 1 << 20)
        return self

    def as_dict(self) -> Dict[str, Any]:
        """The config as JSON values."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "StudyConfig":
        """A config from :meth:`as_dict` output (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a study setting")
        kw: Dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                v = data[f.name]
                kw[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kw).validate()

    def replace(self, **changes: Any) -> "StudyConfig":
        """A copy with some fields changed (validated)."""
        return replace(self, **changes).validate()


def _check_int(name: str, v: Any, lo: int, hi: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name}: {v!r} is not an integer")
    if not lo <= v <= hi:
        raise ValueError(f"{name}: {v} is not within {lo}..{hi}")


def _check_name(name: str, v: Any, allowed: Dict[str, Any]) -> None:
    if v not in allowed:
        raise ValueError(f"{name}: {v!r} is not one of {', '.join(allowed)}")


def _check_names(name: str, values: Any, allowed: Dict[str, Any]) -> None:
    if isinstance(values, str) or not values:
        raise ValueError(f"{name}: needs a list of one or more of {', '.join(allowed)}")
    for v in values:
        _check_name(name, v, allowed)
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: a name is repeated")


#: Named configurations: ``default`` is the sweep of docs/study-gipc.md,
#: ``quick`` a seconds-long smoke run.
PRESETS: Dict[str, StudyConfig] = {
    "default": StudyConfig(),
    "quick": StudyConfig(
        vms=4,
        pasids=16,
        pages=4,
        translations=200,
        warmup=200,
        vm_sweep=(1, 4),
        cache_sweep=(0, 16),
        memory_points=(2, 4),
    ),
}
