"""riscv-iommu: an executable reference model of the RISC-V IOMMU.

The public API (see ``docs/api.md``) is importable from here::

    import riscv_iommu as rv
    mem = rv.SparseMemory()
    iommu = rv.Iommu(mem, capabilities=rv.Capabilities.full())
    rsp = iommu.translate(rv.Request(device_id=1, addr=0x1000))
"""

from . import trace as trace  # riscv_iommu.trace.Tracer after `import riscv_iommu`
from .capabilities import IGS, Capabilities, IommuMode, IommuParams
from .events import CacheStats, Event, Stats
from .iommu import REG, Iommu, Snapshot
from .memory import MemoryAccessError, MemoryFault, MemoryPort, SparseMemory
from .observers import EventLog, JsonlLog, read_jsonl
from .trace import Explanation
from .types import (
    Access,
    Cause,
    FaultRecord,
    InvalidationRequest,
    PageRequest,
    PageRequestGroupResponse,
    Request,
    RequestKind,
    Response,
    Status,
    Ttyp,
)

__version__ = "0.1.0"

__all__ = [
    "Access",
    "CacheStats",
    "Capabilities",
    "Cause",
    "Event",
    "EventLog",
    "Explanation",
    "FaultRecord",
    "IGS",
    "InvalidationRequest",
    "Iommu",
    "IommuMode",
    "IommuParams",
    "JsonlLog",
    "MemoryAccessError",
    "MemoryFault",
    "MemoryPort",
    "PageRequest",
    "PageRequestGroupResponse",
    "REG",
    "Request",
    "RequestKind",
    "Response",
    "Snapshot",
    "SparseMemory",
    "Stats",
    "Status",
    "Ttyp",
    "__version__",
    "read_jsonl",
]
