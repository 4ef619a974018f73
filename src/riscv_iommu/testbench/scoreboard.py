"""A scoreboard with the model as the golden reference.

:class:`Scoreboard` gives each stimulus to the model (``expect``), keeps what
the model answered and produced, and compares what the design under test
produced (``check``), field by field, naming each difference by its spec
field.  Four channels, each compared in order:

* ``"response"``: the model's :class:`~riscv_iommu.Response` to each
  ``expect(Request)``; ``check()`` takes the DUT's Response;
* ``"fault"``: the records the model wrote to its fault queue; ``check()``
  takes a :class:`~riscv_iommu.FaultRecord`;
* ``"page_request"``: the records the model wrote to its page-request queue
  (after ``expect(PageRequest)``); ``check()`` takes a
  :class:`~riscv_iommu.PageRequest` (:func:`decode_pq_record` decodes one);
* ``"ats"``: the messages the model sent through ``on_ats_message``;
  ``check()`` takes an InvalidationRequest or a PageRequestGroupResponse.

Queue records are the ones the model really wrote (read back from memory
between the queue tail before and after each model call), so a fault the
queue dropped (queue off, full, ``DC.tc.DTF``) is not expected from the DUT
either.  Everything is synchronous: call it from plain Python, a cocotb
coroutine or a pyuvm component alike.
"""

from __future__ import annotations

from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    Literal,
    Optional,
    Sequence,
    Tuple,
)

from .. import formats as F
from ..registers import REG
from ..types import (
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

if TYPE_CHECKING:  # pragma: no cover
    from ..iommu import Iommu

__all__ = [
    "CHANNELS",
    "Mismatch",
    "Scoreboard",
    "ScoreboardError",
    "brief",
    "decode_pq_record",
    "diff",
]

#: The scoreboard's channels, in report order.
CHANNELS = ("response", "fault", "page_request", "ats")

# attribute -> label: the spec's field name, with the attribute in brackets
# where the two differ (fault record: spec "Fault-queue record"; page-request
# record: spec "Page-request queue record" and its PCIe payload; ATS messages:
# the ATS.INVAL / ATS.PRGR command fields; response: the PCIe completion)
_FAULT_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("cause", "CAUSE"),
    ("ttyp", "TTYP"),
    ("iotval", "iotval"),
    ("iotval2", "iotval2"),
    ("device_id", "DID (device_id)"),
    ("process_id", "PID (process_id)"),
    ("pv", "PV"),
    ("priv", "PRIV"),
)
_PQ_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("device_id", "DID (device_id)"),
    ("process_id", "PID (process_id)"),
    ("priv", "PRIV"),
    ("exec_req", "EXEC (exec_req)"),
    ("addr", "ADDR (addr)"),
    ("prg_index", "PRGI (prg_index)"),
    ("last", "L (last)"),
    ("read", "R (read)"),
    ("write", "W (write)"),
)
_INVAL_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("device_id", "RID (device_id)"),
    ("segment", "DSEG (segment)"),
    ("pasid", "PID (pasid)"),
    ("global_", "G (global_)"),
    ("addr", "ADDR (addr)"),
    ("s", "S"),
    ("itag", "ITAG (itag)"),
)
_PRGR_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("device_id", "RID (device_id)"),
    ("segment", "DSEG (segment)"),
    ("pasid", "PID (pasid)"),
    ("prg_index", "PRGI (prg_index)"),
    ("response_code", "ResponseCode (response_code)"),
)
_RESPONSE_LABELS: Dict[str, str] = {
    "r": "R",
    "w": "W",
    "x": "Exe (x)",
    "u": "U",
    "g": "Global (g)",
    "priv": "Priv",
    "n": "N",
    "pbmt": "PBMT",
    "s": "S",
    "ama": "AMA",
}
#: Response fields compared by default: the completion status, the address
#: of a successful completion, and the ATS completion fields of an ATS
#: translation request.
_ATS_COMPLETION = ("r", "w", "x", "u", "g", "priv", "n", "pbmt", "s", "ama")
_RESPONSE_ATTRS = frozenset(f.name for f in fields(Response))
_ENUMS: Dict[str, type] = {"status": Status, "cause": Cause, "ttyp": Ttyp}


def _fmt(attr: str, value: Any) -> str:
    """A field value as the report shows it: enums by name, ints in hex."""
    kind = _ENUMS.get(attr)
    if kind is not None and isinstance(value, int) and not isinstance(value, bool):
        try:
            member = kind(value)
        except ValueError:
            return f"{value:#x}"
        if kind is Status:
            return str(member.name)
        return f"{member.name} ({int(value)})"
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:#x}"
    return repr(value)


def _compare(
    expected: Any, got: Any, fields: Sequence[Tuple[str, str]]
) -> List[Tuple[str, str, str]]:
    out = []
    for attr, label in fields:
        e = getattr(expected, attr)
        g = getattr(got, attr)
        if e != g:
            out.append((label, _fmt(attr, e), _fmt(attr, g)))
    return out


def _response_fields(rsp: Response, req: Optional[Request]) -> Tuple[str, ...]:
    if rsp.status != Status.SUCCESS:
        return ("status",)
    if req is not None and req.kind == RequestKind.ATS_TRANSLATION:
        return ("status", "addr", *_ATS_COMPLETION)
    return ("status", "addr")


def _diff_response(
    expected: Response, got: Response, req: Optional[Request], fields: Optional[Sequence[str]]
) -> List[Tuple[str, str, str]]:
    if fields is None:
        if expected.status != got.status:  # nothing else means anything then
            return [("status", _fmt("status", expected.status), _fmt("status", got.status))]
        names: Sequence[str] = _response_fields(expected, req)
    else:
        names = fields
    out: List[Tuple[str, str, str]] = []
    for attr in names:
        if attr == "fault":
            ef, gf = expected.fault, got.fault
            if ef is None or gf is None:
                if ef is not gf:
                    out.append(("fault", _fmt("fault", ef), _fmt("fault", gf)))
            else:
                out += _compare(ef, gf, _FAULT_FIELDS)
            continue
        e = getattr(expected, attr)
        g = getattr(got, attr)
        if e != g:
            out.append((_RESPONSE_LABELS.get(attr, attr), _fmt(attr, e), _fmt(attr, g)))
    return out


def diff(
    expected: Any,
    got: Any,
    request: Optional[Request] = None,
    fields: Optional[Sequence[str]] = None,
) -> List[str]:
    """The differences between two responses, records or messages, one line each.

    Each line names the spec field: ``"iotval2: expected 0x20000001, got
    0x20000000"``.  An empty list means they match.  For a
    :class:`~riscv_iommu.Response`, ``request`` (the request it answers)
    selects the default fields: ``status``; ``addr`` when the expected status
    is SUCCESS; the ATS completion fields (``R``, ``W``, ``Exe``, ``U``,
    ``Global``, ``Priv``, ``N``, ``PBMT``, ``S``, ``AMA``) for an ATS
    translation request; only ``status`` when the statuses differ.
    ``fields`` names the Response attributes to compare instead (``"fault"``
    compares the fault records field by field).
    """
    if fields is not None:
        fields = _check_fields(fields)
    found = _diff(expected, got, request, fields)
    return [f"{label}: expected {e}, got {g}" for label, e, g in found]


def _check_fields(fields: Sequence[str]) -> Tuple[str, ...]:
    if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
        raise TypeError("fields must be a sequence of Response attribute names")
    bad = [f for f in fields if f not in _RESPONSE_ATTRS]
    if bad:
        raise ValueError(f"fields: {', '.join(bad)} not Response attributes")
    return tuple(fields)


def _diff(
    expected: Any, got: Any, request: Optional[Request], fields: Optional[Sequence[str]]
) -> List[Tuple[str, str, str]]:
    if type(expected) is not type(got):
        return [("type", type(expected).__name__, type(got).__name__)]
    if isinstance(expected, Response):
        return _diff_response(expected, got, request, fields)
    table = _FIELDS_OF.get(type(expected))
    if table is None:
        raise TypeError(f"cannot compare {type(expected).__name__} objects")
    return _compare(expected, got, table)


_FIELDS_OF: Dict[type, Tuple[Tuple[str, str], ...]] = {
    FaultRecord: _FAULT_FIELDS,
    PageRequest: _PQ_FIELDS,
    InvalidationRequest: _INVAL_FIELDS,
    PageRequestGroupResponse: _PRGR_FIELDS,
}
_CHANNEL_OF: Dict[type, str] = {
    Response: "response",
    FaultRecord: "fault",
    PageRequest: "page_request",
    InvalidationRequest: "ats",
    PageRequestGroupResponse: "ats",
}


def brief(item: Any) -> str:
    """A request or PRI message in a few words (``WRITE 0x40000123 device_id 0x42 ...``)."""
    if isinstance(item, Request):
        text = f"{Access(item.access).name} {item.addr:#x} device_id {item.device_id:#x}"
        if item.process_id is not None:
            text += f" process_id {item.process_id:#x}" + (" priv" if item.priv else "")
        if item.kind != RequestKind.UNTRANSLATED:
            text += f" {RequestKind(item.kind).name}"
        return text
    if isinstance(item, PageRequest):
        text = f"page request {item.addr:#x} device_id {item.device_id:#x}"
        if item.process_id is not None:
            text += f" process_id {item.process_id:#x}"
        return text + f" prg_index {item.prg_index:#x}" + (" last" if item.last else "")
    return repr(item)


def _request_of(source: Any) -> Optional[Request]:
    return source if isinstance(source, Request) else None


def decode_pq_record(data: bytes, big_endian: bool = False) -> PageRequest:
    """A 16-byte page-request queue record (spec "Page-request queue record") as a PageRequest.

    ``process_id`` is None when the record's PV is 0 (then PRIV and EXEC are 0 too).
    """
    if len(data) != 16:
        raise ValueError("a page-request queue record is 16 bytes")
    order: Literal["little", "big"] = "big" if big_endian else "little"
    d0 = int.from_bytes(data[0:8], order)
    d1 = int.from_bytes(data[8:16], order)
    R = F.PQ_RECORD0
    P = F.PQ_PAYLOAD
    pv = bool(R.PV.get(d0))
    return PageRequest(
        device_id=R.DID.get(d0),
        addr=P.ADDR.get(d1) << 12,
        prg_index=P.PRGI.get(d1),
        last=bool(P.L.get(d1)),
        read=bool(P.R.get(d1)),
        write=bool(P.W.get(d1)),
        process_id=R.PID.get(d0) if pv else None,
        priv=bool(R.PRIV.get(d0)),
        exec_req=bool(R.EXEC.get(d0)),
    )


@dataclass(slots=True)
class Mismatch:
    """One difference found by the scoreboard.

    ``channel`` and ``index`` (0-based, per channel) locate the transaction;
    ``field`` is the spec field (``"iotval2"``, ``"CAUSE"``, ``"status"``),
    or ``"missing"`` for an expected item that never arrived and
    ``"unexpected"`` for an item nothing was expected for; ``expected`` and
    ``got`` are the values as text; ``item`` is the request or expected
    item the transaction started from; ``detail`` is the text the
    scoreboard's ``detail`` hook attached (e.g. the model's log of that
    request), or "".
    """

    channel: str
    index: int
    field: str
    expected: str
    got: str
    item: Any = None
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.channel} #{self.index}"
        if self.item is not None:
            where += f" [{brief(self.item)}]"
        return f"{where}: {self.field}: expected {self.expected}, got {self.got}"


class ScoreboardError(AssertionError):
    """Raised by a scoreboard on a mismatch (``raise_on_mismatch``) or by ``final_check()``.

    ``mismatches`` holds the mismatches that caused it.  An AssertionError,
    so cocotb and pytest report it as a test failure.
    """

    def __init__(self, message: str, mismatches: Sequence[Mismatch]) -> None:
        super().__init__(message)
        self.mismatches = list(mismatches)


# (expected item, the request or message that produced it)
_Pending = Tuple[Any, Any]


class Scoreboard:
    """Compare a design under test with the model, transaction by transaction.

    ``model`` is the :class:`~riscv_iommu.Iommu` to use as the reference;
    program it as the DUT is programmed (the same MMIO writes, the same
    memory).  The scoreboard chains itself into ``model.on_ats_message``
    (a handler set before still gets every message); set your own handler
    before creating the scoreboard.

    * ``expect(item)`` gives the model a :class:`~riscv_iommu.Request`
      (translated: the response is expected) or a
      :class:`~riscv_iommu.PageRequest` (a PRI message: the queue record or
      the IOMMU's own group response is expected) and returns the model's
      answer.  The fault and page-request records the model writes, and the
      ATS messages it sends, become expected items on their channels.
    * ``check(got)`` takes the DUT's next output on the channel its type
      selects and compares it with the oldest expected item there; returns
      the new mismatches (empty: a match).
    * ``observe()`` is a context manager for model calls made directly
      (``model.invalidation_completion(...)``, ``model.process_commands()``):
      the records the model writes inside it become expected items.

    ``response_fields`` names the Response attributes to compare (default:
    see :func:`diff`).  ``raise_on_mismatch`` makes ``check()`` raise
    :class:`ScoreboardError` at the first mismatch, like a UVM scoreboard
    with ``UVM_ERROR`` as fatal; otherwise mismatches collect and
    ``report()`` / ``final_check()`` show them.  ``detail`` is called with
    the request (or expected item) of each mismatching transaction; its text
    is attached to the mismatch and the report (a log or trace of that
    request).  ``max_pending`` bounds each channel's queue of expected items
    (exceeding it raises ScoreboardError: the DUT's outputs are not being
    checked); ``max_kept`` bounds the mismatches kept for the report (all
    are counted).  ``drain`` makes the scoreboard consume the records it
    collects (it writes ``fqh`` / ``pqh`` up to the tail, as software that read
    them would), so the model's queues never fill in a long test whose
    software does not read them.  ``resync``: when the DUT's item differs
    from the oldest expected one but equals one of the next ``resync``
    expected items exactly, the items before it are reported ``"missing"``
    (the DUT never produced them) and the comparison goes on from there,
    instead of every later item mismatching; 0 compares strictly in order.
    """

    def __init__(
        self,
        model: "Iommu",
        *,
        name: str = "scoreboard",
        response_fields: Optional[Sequence[str]] = None,
        raise_on_mismatch: bool = False,
        detail: Optional[Callable[[Any], object]] = None,
        max_pending: int = 1 << 16,
        max_kept: int = 1000,
        drain: bool = False,
        resync: int = 16,
    ) -> None:
        from ..iommu import Iommu

        if not isinstance(model, Iommu):
            raise TypeError("model must be a riscv_iommu.Iommu")
        if not isinstance(name, str):
            raise TypeError("name must be a str")
        for arg, v, least in (
            ("max_pending", max_pending, 1),
            ("max_kept", max_kept, 1),
            ("resync", resync, 0),
        ):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{arg} must be an int")
            if v < least:
                raise ValueError(f"{arg} must be at least {least}")
        if detail is not None and not callable(detail):
            raise TypeError("detail must be callable")
        self.model = model
        self.name = name
        self.response_fields = None if response_fields is None else _check_fields(response_fields)
        self.raise_on_mismatch = bool(raise_on_mismatch)
        self.detail = detail
        self.max_pending = max_pending
        self.max_kept = max_kept
        self.drain = bool(drain)
        self.resync = resync
        self._pending: Dict[str, Deque[_Pending]] = {c: deque() for c in CHANNELS}
        #: DUT items checked, per channel.
        self.checked: Dict[str, int] = {c: 0 for c in CHANNELS}
        # expected items consumed (matched, mismatched or missing), per channel
        self._taken: Dict[str, int] = {c: 0 for c in CHANNELS}
        #: The first ``max_kept`` mismatches.
        self.mismatches: List[Mismatch] = []
        #: Every mismatch counted.
        self.mismatch_count = 0
        self._source: Any = None  # the stimulus of the model call in progress
        self._chained = model.on_ats_message
        model.on_ats_message = self._on_ats_message

    # -- expected side -------------------------------------------------------
    def _push(self, channel: str, item: Any, source: Any) -> None:
        q = self._pending[channel]
        if len(q) >= self.max_pending:
            raise ScoreboardError(
                f"{self.name}: more than {self.max_pending} expected {channel} items pending: "
                "is the DUT's output on that channel being checked?",
                [],
            )
        q.append((item, source))

    def _on_ats_message(self, msg: Any) -> None:
        self._push("ats", msg, self._source)
        if self._chained is not None:
            self._chained(msg)

    def _queue_state(self, base_reg: int, tail_reg: int) -> Tuple[int, int]:
        m = self.model
        return m.mmio_read(base_reg, 8), m.mmio_read(tail_reg, 4)

    def _collect(
        self, before: Tuple[int, int], after: Tuple[int, int], size: int, channel: str
    ) -> None:
        """Push the records the model wrote between two (base, tail) snapshots."""
        base, tail = after
        if base != before[0] or tail == before[1]:  # none, or reprogrammed inside the call
            return
        entries = 1 << (F.QUEUE_BASE.LOG2SZ_1.get(base) + 1)
        start = F.QUEUE_BASE.PPN.get(base) << 12
        m = self.model
        index = before[1]
        while index != tail:
            data = bytes(m.mem.read(start + index * size, size))
            if channel == "fault":
                rec: Any = FaultRecord.from_bytes(data, m.be)
            else:
                rec = decode_pq_record(data, m.be)
            self._push(channel, rec, self._source)
            index = (index + 1) % entries
        if self.drain:  # software consumed the records: head = tail
            m.mmio_write(REG.FQH if channel == "fault" else REG.PQH, tail, 4)

    @contextmanager
    def observe(self, source: Any = None) -> Iterator[None]:
        """Expect the queue records the model writes inside the ``with`` block.

        ``source`` (the stimulus) is shown with any mismatch on those records.
        """
        fq = self._queue_state(REG.FQB, REG.FQT)
        pq = self._queue_state(REG.PQB, REG.PQT)
        outer = self._source
        self._source = source
        try:
            yield
            self._collect(fq, self._queue_state(REG.FQB, REG.FQT), F.FAULT_RECORD_SIZE, "fault")
            self._collect(pq, self._queue_state(REG.PQB, REG.PQT), 16, "page_request")
        finally:
            self._source = outer

    def expect(self, item: Any) -> Any:
        """Give the model a Request or a PageRequest; return its answer.

        A Request's :class:`~riscv_iommu.Response` is expected on the
        ``"response"`` channel; the records and messages the model produces
        are expected on theirs.  A PageRequest returns what
        ``Iommu.page_request()`` returns.
        """
        if isinstance(item, Request):
            with self.observe(item):
                rsp = self.model.translate(item)
                self._push("response", rsp, item)
            return rsp
        if isinstance(item, PageRequest):
            with self.observe(item):
                return self.model.page_request(item)
        raise TypeError(f"item must be a Request or a PageRequest, not {type(item).__name__}")

    def expect_item(self, item: Any, source: Any = None) -> None:
        """Expect ``item`` (a Response, FaultRecord, PageRequest record or ATS
        message computed elsewhere) on its channel."""
        channel = _CHANNEL_OF.get(type(item))
        if channel is None:
            raise TypeError(f"item: no channel takes {type(item).__name__}")
        self._push(channel, item, source)

    # -- actual side -----------------------------------------------------------
    def check(self, got: Any) -> List[Mismatch]:
        """Compare the DUT's next output with the oldest expected item of its channel.

        ``got`` is a Response, a FaultRecord, a PageRequest (a page-request
        queue record; :func:`decode_pq_record` decodes one from memory), an
        InvalidationRequest or a PageRequestGroupResponse.  Returns the
        mismatches found (empty: a match).
        """
        channel = _CHANNEL_OF.get(type(got))
        if channel is None:
            raise TypeError(
                "got must be a Response, FaultRecord, PageRequest, InvalidationRequest or "
                f"PageRequestGroupResponse, not {type(got).__name__}"
            )
        self.checked[channel] += 1
        q = self._pending[channel]
        if not q:
            index = self._taken[channel]
            found = [self._mismatch(channel, index, "unexpected", "nothing", repr(got), None)]
            self._record(found)
            return found
        fields = self.response_fields
        found = []
        diffs = _diff(q[0][0], got, _request_of(q[0][1]), fields)
        if diffs:
            # resynchronise: if a later expected item matches exactly, the DUT
            # never produced the ones before it
            for k in range(1, min(self.resync, len(q) - 1) + 1):
                item, source = q[k]
                if not _diff(item, got, _request_of(source), fields):
                    for _ in range(k):
                        item, source = q.popleft()
                        index = self._taken[channel]
                        self._taken[channel] = index + 1
                        found.append(
                            self._mismatch(channel, index, "missing", repr(item), "nothing", source)
                        )
                    diffs = []
                    break
        _, source = q.popleft()
        index = self._taken[channel]
        self._taken[channel] = index + 1
        found += [self._mismatch(channel, index, label, e, g, source) for label, e, g in diffs]
        self._record(found)
        return found

    def _mismatch(
        self, channel: str, index: int, field: str, expected: str, got: str, item: Any
    ) -> Mismatch:
        text = ""
        if self.detail is not None and item is not None:
            try:
                text = str(self.detail(item))
            except Exception as exc:  # a broken hook must not hide the mismatch
                text = f"(detail hook failed: {exc!r})"
        return Mismatch(channel, index, field, expected, got, item, text)

    def _record(self, found: List[Mismatch]) -> None:
        if not found:
            return
        self.mismatch_count += len(found)
        room = self.max_kept - len(self.mismatches)
        self.mismatches += found[: max(0, room)]
        if self.raise_on_mismatch:
            raise ScoreboardError(f"{self.name}: " + "; ".join(str(m) for m in found), found)

    # -- results ---------------------------------------------------------------
    def pending(self, channel: Optional[str] = None) -> List[Any]:
        """The expected items not yet checked (of one channel, or all in channel order)."""
        if channel is not None and channel not in self._pending:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
        names = CHANNELS if channel is None else (channel,)
        return [item for c in names for item, _ in self._pending[c]]

    @property
    def passed(self) -> bool:
        """No mismatch so far and nothing pending."""
        return not self.mismatch_count and not any(self._pending.values())

    def report(self) -> str:
        """A readable summary: counts, every kept mismatch, every pending item."""
        total = sum(self.checked.values())
        per = ", ".join(f"{c} {n}" for c, n in self.checked.items() if n)
        pend = sum(len(q) for q in self._pending.values())
        lines = [
            f"{self.name}: {total} checked"
            + (f" ({per})" if per else "")
            + f", {self.mismatch_count} mismatch{'es' if self.mismatch_count != 1 else ''}"
            + f", {pend} pending"
        ]
        for m in self.mismatches:
            lines.append(f"  {m}")
            if m.detail:
                lines += [f"    | {line}" for line in m.detail.splitlines()]
        if self.mismatch_count > len(self.mismatches):
            lines.append(f"  ... {self.mismatch_count - len(self.mismatches)} more not kept")
        for c in CHANNELS:
            for item, _ in self._pending[c]:
                lines.append(f"  pending {c}: {item!r}")
        return "\n".join(lines)

    def final_check(self) -> str:
        """End of test: every expected item still pending becomes a ``"missing"`` mismatch;
        raise :class:`ScoreboardError` with the report if anything mismatched.

        Returns the report when everything matched.
        """
        found = []
        for c in CHANNELS:
            q = self._pending[c]
            index = self._taken[c]
            while q:
                item, source = q.popleft()
                found.append(self._mismatch(c, index, "missing", repr(item), "nothing", source))
                index += 1
            self._taken[c] = index
        self.mismatch_count += len(found)
        self.mismatches += found[: max(0, self.max_kept - len(self.mismatches))]
        text = self.report()
        if self.mismatch_count:
            raise ScoreboardError(text, self.mismatches)
        return text
