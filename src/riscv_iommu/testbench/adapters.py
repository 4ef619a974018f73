"""Memory adapters: the model's memory port over testbench and simulator memories.

The model reaches memory only through a port with ``read(addr, size) -> bytes``
and ``write(addr, data)`` (see :mod:`riscv_iommu.memory`).  cocotbext-axi's
``SparseMemory`` and ``AxiRam`` already have that shape and plug in as they
are.  This module adds:

* :class:`BackdoorMemory`: the port over an HDL memory array reached through
  simulator handles (``reg [63:0] mem [0:N-1]``), word by word, with a write
  shadow for cocotb's deferred writes, X/Z bits read as 0 and an address
  window outside which accesses are access faults;
* :class:`MemoryWindow`: any port limited to an address window (accesses
  outside it are access faults, as a PMA violation would be);
* :func:`logic_to_int`: an HDL value as an int, X/Z bits as 0.

Nothing here imports cocotb at module level; :class:`BackdoorMemory` imports
it lazily, only when it needs the simulation time or an immediate write.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ..memory import MemoryAccessError, MemoryFault

__all__ = ["BackdoorMemory", "MemoryWindow", "logic_to_int"]

# Every 9-state character of an HDL value: 1 and H (weak 1) read as 1, the rest
# (0, L, X, Z, U, W, -) as 0.  X/Z in a page table would otherwise be a guess.
_TO_BITS = str.maketrans("01" + "xXzZuUwWlL-" + "hH", "01" + "0" * 11 + "11")


def logic_to_int(value: Any) -> int:
    """The unsigned value of an HDL signal value; X, Z, U, W and - bits read as 0.

    ``value`` is what a simulator handle's ``.value`` returns: an int, a
    cocotb ``LogicArray`` / ``Logic`` (cocotb 2) or ``BinaryValue`` (cocotb
    1), or anything whose ``str()`` is its binary string, most significant
    bit first.
    """
    if type(value) is int:
        return value
    if not isinstance(value, str):
        try:
            return int(value)  # fully resolved 0/1 values (the common case)
        except (TypeError, ValueError):
            pass
    bits = str(value).translate(_TO_BITS)
    if not bits or bits.strip("01"):
        raise ValueError(f"not an HDL value: {value!r}")
    return int(bits, 2)


def _check_window(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0 or value >> 64:
        raise ValueError(f"{name} {value:#x} is outside the 64-bit physical address space")
    return value


def _sim_time() -> int:
    """The simulation time in simulator steps (cocotb, imported on first use)."""
    from cocotb.simtime import get_sim_time

    return int(get_sim_time("step"))


def _immediate(value: int) -> Any:
    """cocotb's no-delay deposit of ``value`` (cocotb, imported on first use)."""
    from cocotb.handle import Immediate

    return Immediate(value)


class MemoryWindow:
    """A memory port limited to ``[base, base + size)``.

    Accesses that touch anything outside the window raise
    :class:`~riscv_iommu.MemoryAccessError` (access fault): the model reports
    them with the spec's access-fault causes, as it would a PMA violation,
    instead of the port's own error (cocotbext-axi's ``SparseMemory``
    raises ``ValueError`` beyond its size).  Addresses are passed through
    unchanged.
    """

    __slots__ = ("mem", "base", "size", "end")

    def __init__(self, mem: Any, base: int, size: int) -> None:
        if not callable(getattr(mem, "read", None)) or not callable(getattr(mem, "write", None)):
            raise TypeError("mem must have read(addr, size) and write(addr, data) methods")
        self.mem = mem
        self.base = _check_window("base", base)
        self.size = _check_window("size", size)
        if base + size > 1 << 64:
            raise ValueError(f"size {size:#x} at {base:#x} is beyond the 64-bit address space")
        self.end = base + size

    def _check(self, addr: int, size: int) -> None:
        if addr < self.base or addr + size > self.end:
            raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, size)

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at ``addr`` (inside the window)."""
        self._check(addr, size)
        return bytes(self.mem.read(addr, size))

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr`` (inside the window)."""
        self._check(addr, len(data))
        self.mem.write(addr, data)


class BackdoorMemory:
    """The model's memory port over an HDL memory array, through simulator handles.

    ``array`` is the handle of an unpacked array of ``word_bytes``-byte words
    (``dut.u_ram.mem`` for ``reg [63:0] mem [0:1023]``): ``array[i].value``
    reads word ``i``, ``array[i].value = v`` writes it.  Word ``first_index``
    holds the bytes at physical address ``base`` (little-endian: byte 0 in
    bits 7:0); the window is ``depth`` words.  Any access touching an address
    outside ``[base, base + depth * word_bytes)`` raises
    :class:`~riscv_iommu.MemoryAccessError` (an access fault for the model).

    * **Word access.** Each access reads or writes whole words, one handle
      access per word (a partial word is read, merged and written back).
    * **Write shadow.** cocotb applies ``handle.value = v`` at the end of the
      current time step, so a read straight after a write would see the old
      value.  Every word written is remembered with the simulation time of
      the write and returned by reads in that same time step; the shadow is
      dropped as soon as time moves on (when the RTL may have written the
      word itself).  ``immediate=True`` writes with cocotb's ``Immediate``
      (no delay) instead; the shadow is kept either way.
    * **X and Z read as 0**, so uninitialised RTL memory reads as zeros,
      like the model's :class:`~riscv_iommu.SparseMemory`.

    ``word_bytes``, ``depth`` and ``first_index`` default to what the handle
    says (``len(array[i])`` bits, ``len(array)``, the lower array bound).
    ``now`` returns the simulation time; it defaults to cocotb's
    ``get_sim_time``.  ``handle_reads`` / ``handle_writes`` count the
    simulator accesses made.
    """

    __slots__ = (
        "array",
        "base",
        "word_bytes",
        "depth",
        "first_index",
        "end",
        "now",
        "immediate",
        "handle_reads",
        "handle_writes",
        "_shadow",
        "_shadow_time",
    )

    def __init__(
        self,
        array: Any,
        base: int = 0,
        word_bytes: Optional[int] = None,
        depth: Optional[int] = None,
        first_index: Optional[int] = None,
        now: Optional[Callable[[], int]] = None,
        immediate: bool = False,
    ) -> None:
        if not callable(getattr(array, "__getitem__", None)):
            raise TypeError("array must be an indexable simulator handle (array[i].value)")
        self.array = array
        self.base = _check_window("base", base)
        if first_index is None:
            left = getattr(array, "left", None)
            right = getattr(array, "right", None)
            first_index = min(left, right) if left is not None and right is not None else 0
        elif isinstance(first_index, bool) or not isinstance(first_index, int):
            raise TypeError(f"first_index must be an int, not {type(first_index).__name__}")
        self.first_index = first_index
        if depth is None:
            depth = len(array)
        self.depth = _check_window("depth", depth)
        if word_bytes is None:
            bits = len(array[first_index])
            if bits % 8:
                raise ValueError(f"array words are {bits} bits wide: give word_bytes")
            word_bytes = bits // 8
        self.word_bytes = _check_window("word_bytes", word_bytes)
        if not self.word_bytes or not self.depth:
            raise ValueError("word_bytes and depth must be positive")
        self.end = base + self.depth * self.word_bytes
        if self.end > 1 << 64:
            raise ValueError("the window is beyond the 64-bit physical address space")
        if now is not None and not callable(now):
            raise TypeError("now must be a callable returning the simulation time")
        self.now: Callable[[], int] = now if now is not None else _sim_time
        self.immediate = bool(immediate)
        self.handle_reads = 0
        self.handle_writes = 0
        # word index -> value written in the time step _shadow_time (bounded by depth)
        self._shadow: Dict[int, int] = {}
        self._shadow_time = -1

    # -- words ---------------------------------------------------------------
    def _shadow_now(self) -> Dict[int, int]:
        """The write shadow of the current time step (dropped when time has moved)."""
        t = self.now()
        if t != self._shadow_time:
            self._shadow.clear()
            self._shadow_time = t
        return self._shadow

    def read_word(self, index: int) -> int:
        """Word ``index`` of the window (0 = the word at ``base``)."""
        v = self._shadow_now().get(index)
        if v is not None:
            return v
        self.handle_reads += 1
        return logic_to_int(self.array[self.first_index + index].value)

    def write_word(self, index: int, value: int) -> None:
        """Write word ``index`` of the window."""
        shadow = self._shadow_now()
        handle = self.array[self.first_index + index]
        self.handle_writes += 1
        handle.value = _immediate(value) if self.immediate else value
        shadow[index] = value

    # -- the port --------------------------------------------------------------
    def _words(self, addr: int, size: int) -> range:
        if addr < self.base or addr + size > self.end:
            raise MemoryAccessError(MemoryFault.ACCESS_FAULT, addr, size)
        wb = self.word_bytes
        off = addr - self.base
        return range(off // wb, (off + size + wb - 1) // wb)

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at ``addr``."""
        words = self._words(addr, size)
        wb = self.word_bytes
        buf = b"".join(self.read_word(i).to_bytes(wb, "little") for i in words)
        off = (addr - self.base) % wb
        return buf[off : off + size]

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr`` (partial words are read, merged and written)."""
        data = bytes(data)
        wb = self.word_bytes
        mask = (1 << (8 * wb)) - 1
        pos = addr - self.base
        for i in self._words(addr, len(data)):
            lo = max(pos, i * wb)
            hi = min(pos + len(data), (i + 1) * wb)
            chunk = data[lo - pos : hi - pos]
            shift = 8 * (lo - i * wb)
            if hi - lo == wb:
                value = int.from_bytes(chunk, "little")
            else:
                field = ((1 << (8 * len(chunk))) - 1) << shift
                old = self.read_word(i)
                value = (old & ~field & mask) | (int.from_bytes(chunk, "little") << shift)
            self.write_word(i, value)
