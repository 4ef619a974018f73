"""Internal control flow: a translation step that stops with a fault."""

from __future__ import annotations

from typing import Final, Optional, Tuple

from .types import Access, Cause

__all__ = ["Fault", "Why", "access_fault", "page_fault", "guest_page_fault"]

#: Why a check failed: (spec section, step, offending field, the rule in words)
Why = Tuple[str, str, str, str]


class Fault(Exception):
    """Raised inside the model when a spec step says "stop and report".

    Never escapes the public API: :meth:`Iommu.translate` turns it into a
    :class:`~riscv_iommu.FaultRecord` in the response.  ``why`` says which
    check failed (section, step, field, rule); the model emits it as a
    failed :class:`~riscv_iommu.events.Check` and ``explain`` prints it.
    """

    __slots__ = ("cause", "iotval2", "why")

    def __init__(self, cause: int, iotval2: int = 0, why: Optional[Why] = None) -> None:
        self.cause = cause
        self.iotval2 = iotval2
        self.why = why


# Cause of each fault family "corresponding to the original access type".
_ACCESS_FAULT: Final = {
    Access.READ: Cause.READ_ACCESS_FAULT,
    Access.WRITE: Cause.WRITE_ACCESS_FAULT,
    Access.EXECUTE: Cause.INSTRUCTION_ACCESS_FAULT,
}
_PAGE_FAULT: Final = {
    Access.READ: Cause.READ_PAGE_FAULT,
    Access.WRITE: Cause.WRITE_PAGE_FAULT,
    Access.EXECUTE: Cause.INSTRUCTION_PAGE_FAULT,
}
_GUEST_PAGE_FAULT: Final = {
    Access.READ: Cause.READ_GUEST_PAGE_FAULT,
    Access.WRITE: Cause.WRITE_GUEST_PAGE_FAULT,
    Access.EXECUTE: Cause.INSTRUCTION_GUEST_PAGE_FAULT,
}


def access_fault(access: int, why: Why) -> Fault:
    """Access fault (1/5/7) for the original access type."""
    return Fault(_ACCESS_FAULT[access], 0, why)  # type: ignore[index]


def page_fault(access: int, why: Why) -> Fault:
    """Page fault (12/13/15) for the original access type."""
    return Fault(_PAGE_FAULT[access], 0, why)  # type: ignore[index]


def guest_page_fault(
    access: int, gpa: int, implicit: bool, implicit_write: bool, why: Why
) -> Fault:
    """Guest-page fault (20/21/23) with ``iotval2`` per the fault-record rules.

    ``iotval2[63:2]`` holds bits 63:2 of the GPA; bit 0 is set for an implicit
    access for first-stage translation (a PTE or, in the base spec, a PDT
    entry); bit 1 is set when that implicit access was a write (A/D update).
    """
    iotval2 = gpa & ~3
    if implicit:
        iotval2 |= 1
        if implicit_write:
            iotval2 |= 2
    return Fault(_GUEST_PAGE_FAULT[access], iotval2, why)  # type: ignore[index]
