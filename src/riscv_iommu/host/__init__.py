"""Host side: what software does to an IOMMU.

Table builders (:mod:`.tables`), a driver following the spec's software
guidelines (:mod:`.driver`) and a small hypervisor model (:mod:`.hypervisor`).
They reach the model only through MMIO and memory.
"""

from .driver import Driver, DriverError
from .hypervisor import HostDomain, Hypervisor, HypervisorError, Vm
from .tables import (
    DeviceDirectory,
    GuestSpace,
    HostSpace,
    MsiPageTable,
    PageAllocator,
    PageTable,
    ProcessDirectory,
    pte,
)

__all__ = [
    "DeviceDirectory",
    "Driver",
    "DriverError",
    "HostDomain",
    "Hypervisor",
    "HypervisorError",
    "Vm",
    "GuestSpace",
    "HostSpace",
    "MsiPageTable",
    "PageAllocator",
    "PageTable",
    "ProcessDirectory",
    "pte",
]
