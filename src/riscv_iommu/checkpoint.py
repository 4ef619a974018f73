"""Checkpoints of the model state (``Iommu.snapshot`` / ``Iommu.restore``) and the
memory overlay ``Iommu.explain`` runs on.

A snapshot copies every attribute that is model state: the Iommu's own
(``STATE``) and every attribute of its components (``COMPONENTS``: interrupts,
queues, HPM, debug interface, ATS invalidation tracker; all but the ``io``
back-reference, so attributes added to a component later are checkpointed
too), the caches with their LRU order and the whole-response shortcut, and
the statistics.  Restoring writes lists and dicts back into the existing
objects: the register map holds references to them.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Dict

if TYPE_CHECKING:  # pragma: no cover
    from .iommu import Iommu

__all__ = [
    "Snapshot",
    "Overlay",
    "take_snapshot",
    "restore_snapshot",
    "STATE",
    "COMPONENTS",
    "NOT_STATE",
]

#: the Iommu attributes that are model state (the rest is configuration, ports or observers)
STATE = (
    "_fctl",
    "be",
    "gxl",
    "g_modes",
    "ddtp_mode",
    "did_bits",
    "ddtp_ppn",
    "iommu_qosid",
    "dtf",
    "qos",
    "_datapath_errors",
)
#: the components whose attributes (all but the back-reference "io") are model state
COMPONENTS = ("intr", "fq", "pq", "cq", "hpm", "dbg", "invalidations")
#: Iommu attributes that are not checkpointed: configuration fixed at construction,
#: the caches and statistics (checkpointed through ioatc and stats), the memory port
#: and its reader, outbound ports, observers, and per-request or per-call scratch
#: values every request or call sets before it reads them
NOT_STATE = frozenset(
    {
        # configuration
        "caps", "params", "pa_limit", "msi_flat", "dc_size", "be_writable", "bare_s",
        "bare_g", "gipc_tc", "tc_reserved", "ta_reserved", "msi_mask_reserved", "pd_modes",
        "s_modes", "_g_modes", "pte_rsv", "pte_nl_rsv", "pte32_nl_rsv", "pc_fmt",
        "max_pid_width", "lru", "_regs", "qos_port", "device_id_width", "qosid",
        "fault_page_crossing", "gscid_width", "pscid_width", "rcid_width", "mcid_width",
        "gxl_writable", "pte_nl_bad", "pte_ptr_bad", "pa_pages", "s_leaf", "g_leaf",
        # caches and statistics (and direct references into them)
        "ioatc", "stats", "iotlb", "gwalk", "_front", "_ddt", "_pdt", "_nreq",
        # the port, outbound ports, observers
        "mem", "rd", "rd_words", "pages", "port_faults", "on_ats_message", "on_wired_interrupt",
        "on_fence", "emit", "_observers", "_tracer", "_tracer_obs",
        # scratch
        "t2gpa", "_in_commands", "_more_commands", "_in_mmio", "_doorbell",
    }
)  # fmt: skip


class Snapshot:
    """The whole model state at one moment (``Iommu.snapshot``): registers, caches and
    shortcuts, queues' internal state, pending ATS invalidations, HPM counters,
    interrupt state, statistics.  Not the memory port's contents.  Opaque;
    snapshots compare equal when the states are equal."""

    __slots__ = ("_state",)

    def __init__(self, state: Dict[str, Any]) -> None:
        self._state = state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self._state == other._state

    __hash__ = None  # type: ignore[assignment]


def _put(obj: Any, name: str, value: Any) -> None:
    """Restore one attribute, keeping list and dict objects (the register map holds them)."""
    cur = getattr(obj, name, None)
    if isinstance(cur, list) and isinstance(value, list):
        cur[:] = copy.deepcopy(value)
    elif isinstance(cur, dict) and isinstance(value, dict):
        cur.clear()
        cur.update(copy.deepcopy(value))
    else:
        setattr(obj, name, copy.deepcopy(value))


class Overlay:
    """A memory port that keeps writes to itself (``Iommu.explain``): reads see them,
    the real port never does.  Writes are probed with a read of the same bytes, so an
    injected access fault on the range faults the write as it would the real one."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.written: Dict[int, int] = {}

    @property
    def qos(self) -> Any:
        return self.port.qos

    @qos.setter
    def qos(self, value: Any) -> None:
        self.port.qos = value

    def read(self, addr: int, size: int) -> bytes:
        data = bytearray(self.port.read(addr, size))
        w = self.written
        if w:
            for k in range(size):
                b = w.get(addr + k)
                if b is not None:
                    data[k] = b
        return bytes(data)

    def write(self, addr: int, data: bytes) -> None:
        self.port.read(addr, len(data))  # the access faults the real write would meet
        for k, b in enumerate(bytes(data)):
            self.written[addr + k] = b

    def cas(self, addr: int, expected: bytes, desired: bytes) -> bytes:
        old = self.read(addr, len(expected))
        if old == bytes(expected):
            self.write(addr, desired)
        return old


def take_snapshot(io: "Iommu") -> Snapshot:
    """The state of ``io`` (see the module doc)."""
    state: Dict[str, Any] = {name: copy.deepcopy(getattr(io, name)) for name in STATE}
    for comp in COMPONENTS:
        obj = getattr(io, comp)
        state[comp] = {k: copy.deepcopy(v) for k, v in vars(obj).items() if k != "io"}
    state["ioatc"] = io.ioatc.state()
    state["faults"] = dict(io.stats.faults)
    state["requests"] = list(io.stats.counts)
    return Snapshot(state)


def restore_snapshot(io: "Iommu", snap: Snapshot) -> None:
    """Put ``io`` back in the state of ``snap``."""
    state = snap._state
    for name in STATE:
        _put(io, name, state[name])
    for comp in COMPONENTS:
        obj = getattr(io, comp)
        for k, v in state[comp].items():
            _put(obj, k, v)
    io.ioatc.set_state(copy.deepcopy(state["ioatc"]))
    _put(io.stats, "faults", state["faults"])
    io.stats.counts[:] = state["requests"]
