"""Host side: what software does to an IOMMU (table builders; driver and hypervisor to come)."""

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
    "GuestSpace",
    "HostSpace",
    "MsiPageTable",
    "PageAllocator",
    "PageTable",
    "ProcessDirectory",
    "pte",
]
