"""The memory port and the default sparse physical memory.

The model reaches memory only through a *port*: any object with

* ``read(addr: int, size: int) -> bytes``
* ``write(addr: int, data: bytes) -> None``

and, optionally, ``cas(addr, expected: bytes, desired: bytes) -> bytes`` (an
atomic compare-and-swap returning the old bytes; used for hardware A/D
updates; without it the model performs read-compare-write).

A port signals that an access failed by raising :class:`MemoryAccessError`
with the :class:`MemoryFault` kind: ``ACCESS_FAULT`` (a PMA/PMP violation,
reported by the model with the spec's access-fault causes) or
``DATA_CORRUPTION`` (poisoned data, reported with the data-corruption
causes).  Any other exception from a port is a bug in the port and
propagates unchanged.
"""

from __future__ import annotations

import enum
from typing import Dict, List, Protocol, Tuple, runtime_checkable

__all__ = ["MemoryFault", "MemoryAccessError", "MemoryPort", "SparseMemory"]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
_PAGE_MASK = PAGE_SIZE - 1
_ADDR_LIMIT = 1 << 64


class MemoryFault(enum.Enum):
    """Kinds of failure an access through the memory port can report."""

    ACCESS_FAULT = "access-fault"
    DATA_CORRUPTION = "data-corruption"


class MemoryAccessError(Exception):
    """Raised by a memory port when an access fails (PMA/PMP fault or poison)."""

    def __init__(self, fault: MemoryFault, addr: int, size: int) -> None:
        super().__init__(f"{fault.value} at {addr:#x} (+{size})")
        self.fault = fault
        self.addr = addr
        self.size = size


@runtime_checkable
class MemoryPort(Protocol):
    """What the model needs of memory."""

    def read(self, addr: int, size: int) -> bytes: ...  # pragma: no cover - protocol

    def write(self, addr: int, data: bytes) -> None: ...  # pragma: no cover - protocol


def _check_range(addr: int, size: int) -> None:
    if not isinstance(addr, int) or isinstance(addr, bool):
        raise TypeError(f"addr must be an int, not {type(addr).__name__}")
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if addr < 0 or addr >= _ADDR_LIMIT:
        raise ValueError(f"addr {addr:#x} is outside the 64-bit physical address space")
    if size < 0 or addr + size > _ADDR_LIMIT:
        raise ValueError(f"size {size} at {addr:#x} is outside the 64-bit physical address space")


class SparseMemory:
    """Sparse 64-bit physical memory: a dict of zero-filled 4 KiB pages.

    Reads of never-written memory return zeros.  ``inject()`` makes every
    access touching a range fail with an access fault or return poisoned
    data (reported as :class:`MemoryAccessError`), until
    ``clear_injections()``.
    """

    __slots__ = ("_pages", "_injections")

    #: Largest ``read`` (bytes): a larger size is API misuse (ValueError), not a
    #: request to build a huge buffer.  The model itself reads at most 64 bytes.
    MAX_READ = 1 << 24

    def __init__(self) -> None:
        self._pages: Dict[int, bytearray] = {}
        self._injections: List[Tuple[int, int, MemoryFault]] = []

    # -- fault injection ---------------------------------------------------
    def inject(self, addr: int, size: int, fault: MemoryFault) -> None:
        """Make every access overlapping ``[addr, addr + size)`` fail with ``fault``."""
        _check_range(addr, size)
        if not isinstance(fault, MemoryFault):
            raise TypeError("fault must be a MemoryFault")
        if size:
            self._injections.append((addr, addr + size, fault))

    def clear_injections(self) -> None:
        """Remove every injected fault."""
        self._injections.clear()

    def _injected(self, addr: int, size: int) -> None:
        end = addr + size
        # access faults take precedence over poison when both overlap
        hit = None
        for lo, hi, fault in self._injections:
            if lo < end and addr < hi:
                if fault is MemoryFault.ACCESS_FAULT:
                    raise MemoryAccessError(fault, addr, size)
                hit = fault
        if hit is not None:
            raise MemoryAccessError(hit, addr, size)

    # -- the port ----------------------------------------------------------
    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at ``addr``."""
        if type(addr) is not int or type(size) is not int:
            _check_range(addr, size)  # raises TypeError naming the argument
        off = addr & _PAGE_MASK
        if self._injections:
            _check_range(addr, size)
            self._injected(addr, size)
        if 0 <= addr < _ADDR_LIMIT and 0 <= size and off + size <= PAGE_SIZE:
            page = self._pages.get(addr >> PAGE_SHIFT)
            if page is None:
                return bytes(size)
            return bytes(page[off : off + size])
        _check_range(addr, size)
        if size > self.MAX_READ:
            raise ValueError(f"size {size} is larger than SparseMemory.MAX_READ ({self.MAX_READ})")
        out = bytearray()
        while size:
            off = addr & _PAGE_MASK
            n = min(size, PAGE_SIZE - off)
            page = self._pages.get(addr >> PAGE_SHIFT)
            out += page[off : off + n] if page is not None else bytes(n)
            addr += n
            size -= n
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr``."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        data = bytes(data)
        _check_range(addr, len(data))
        if self._injections:
            self._injected(addr, len(data))
        pos = 0
        size = len(data)
        while pos < size:
            off = addr & _PAGE_MASK
            n = min(size - pos, PAGE_SIZE - off)
            key = addr >> PAGE_SHIFT
            page = self._pages.get(key)
            if page is None:
                page = self._pages[key] = bytearray(PAGE_SIZE)
            page[off : off + n] = data[pos : pos + n]
            addr += n
            pos += n

    def cas(self, addr: int, expected: bytes, desired: bytes) -> bytes:
        """Atomic compare-and-swap: write ``desired`` if memory holds ``expected``.

        Returns the bytes found (equal to ``expected`` on success).
        """
        if len(expected) != len(desired):
            raise ValueError("expected and desired must have the same length")
        old = self.read(addr, len(expected))
        if old == bytes(expected):
            self.write(addr, desired)
        return old

    # -- conveniences for tests and the host side ---------------------------
    def read_u64(self, addr: int, big_endian: bool = False) -> int:
        """Read a 64-bit integer."""
        return int.from_bytes(self.read(addr, 8), "big" if big_endian else "little")

    def write_u64(self, addr: int, value: int, big_endian: bool = False) -> None:
        """Write a 64-bit integer."""
        self.write(addr, (value & (_ADDR_LIMIT - 1)).to_bytes(8, "big" if big_endian else "little"))

    def read_u32(self, addr: int, big_endian: bool = False) -> int:
        """Read a 32-bit integer."""
        return int.from_bytes(self.read(addr, 4), "big" if big_endian else "little")

    def write_u32(self, addr: int, value: int, big_endian: bool = False) -> None:
        """Write a 32-bit integer."""
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "big" if big_endian else "little"))

    def pages(self) -> List[int]:
        """Page numbers that have been written, sorted."""
        return sorted(self._pages)
