"""Scenario files: a strict schema, a loader, and a runner (``riscv-iommu run``).

A scenario is a TOML file.  Its top-level tables configure the IOMMU
(``[capabilities]``, ``[params]``, ``[host]``, ``revision``); every
``[[table]]`` entry is an *action*, and the actions run in the order they
appear in the file: VMs, devices, bindings and mappings, then any mix of
requests, page requests, table changes, commands, invalidation recipes,
MMIO writes, injected memory faults, ticks and checks of the queues.
``docs/scenarios.md`` is the language reference.

Everything is checked before anything runs: unknown tables and keys, types
and ranges, names of VMs.  Each error is a :class:`ScenarioError` naming
the file, the line and the field, and saying what was expected.

The runner is a tools-layer client: it builds the scene with the host
toolkit (:class:`~riscv_iommu.host.hypervisor.Hypervisor` and its driver
program the IOMMU through MMIO and memory) and uses the public API only.

Adding a request key or a response expectation is one line in
:data:`REQUEST_FIELDS` or :data:`RESPONSE_FIELDS`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from . import formats as F
from .capabilities import BARE_MODES, Capabilities, IommuParams
from .host.driver import (
    Command,
    DeviceContext,
    DriverError,
    InterruptConfig,
    ats_inval,
    ats_prgr,
    iodir_inval_ddt,
    iodir_inval_pdt,
    iofence_c,
    iotinval_gvma,
    iotinval_vma,
)
from .host.hypervisor import SV39, SV39X4, SV48, SV48X4, Hypervisor, HypervisorError, R, Vm, W, X
from .host.tables import MsiPageTable
from .iommu import REG, Iommu
from .memory import MemoryAccessError, MemoryFault, SparseMemory
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

__all__ = [
    "ScenarioError",
    "Scenario",
    "Action",
    "Runner",
    "Result",
    "Report",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
    "REQUEST_FIELDS",
    "RESPONSE_FIELDS",
    "FAULT_FIELDS",
    "ACTIONS",
    "fault_json",
    "request_json",
    "response_json",
]


# ==========================================================================
# errors
# ==========================================================================
class ScenarioError(ValueError):
    """A malformed scenario: names the file, the line and the field.

    ``str(err)`` is ``"FILE:LINE: FIELD: MESSAGE"``.
    """

    def __init__(self, path: str, line: int, fieldname: str, message: str) -> None:
        super().__init__(f"{path}:{line}: {fieldname}: {message}")
        self.path = path
        self.line = line
        self.field = fieldname
        self.message = message

    def as_dict(self) -> Dict[str, Any]:
        """The error as a JSON object."""
        return {"file": self.path, "line": self.line, "field": self.field, "message": self.message}


class _Bad(Exception):
    """A value that does not fit: ``path`` below the field that raised it."""

    def __init__(self, message: str, path: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _got(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:#x}" if abs(v) > 9 else str(v)
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return type(v).__name__  # pragma: no cover - TOML has no other value types


def _fieldname(base: str, path: Sequence[str]) -> str:
    out = base
    for p in path:
        out += p if p.startswith("[") else ("." + p if out else p)
    return out


# ==========================================================================
# value types of the schema
# ==========================================================================
class Ctx:
    """Parse context: names referenced by the entry being checked."""

    def __init__(self) -> None:
        self.refs: List[Tuple[str, str, Tuple[str, ...]]] = []


class Type:
    """A value type: ``parse`` checks and converts, ``show`` prints."""

    expected = "a value"

    def parse(self, v: Any, ctx: Ctx) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def bad(self, v: Any) -> _Bad:
        return _Bad(f"expected {self.expected}, got {_got(v)}")

    def show(self, v: Any) -> str:
        return str(v)


class Int(Type):
    """An integer in ``[lo, hi]``; shown in hex when ``hexa``."""

    def __init__(self, lo: int, hi: int, what: str = "", hexa: bool = True) -> None:
        self.lo = lo
        self.hi = hi
        self.hexa = hexa
        low = f"{lo:#x}" if hexa and lo > 9 else str(lo)
        bounds = f"{low} to {hi:#x}" if hexa and hi > 9 else f"{lo} to {hi}"
        if hi + 1 & hi == 0 and lo == 0 and hi > 1:
            bounds += f" ({hi.bit_length()} bits)"
        self.expected = f"{what + ': ' if what else ''}an integer {bounds}"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or not self.lo <= v <= self.hi:
            raise self.bad(v)
        return v

    def show(self, v: Any) -> str:
        return f"{v:#x}" if self.hexa and isinstance(v, int) and v > 9 else str(v)


def bits(n: int, what: str = "", hexa: bool = True) -> Int:
    """An unsigned ``n``-bit integer."""
    return Int(0, (1 << n) - 1, what, hexa)


class Bool(Type):
    expected = "true or false"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, bool):
            raise self.bad(v)
        return v


class Str(Type):
    expected = "a non-empty string"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, str) or not v:
            raise self.bad(v)
        return v


class Choice(Type):
    """One of a set of strings (case-insensitive), converted by ``options``."""

    def __init__(self, options: Mapping[str, Any], what: str = "") -> None:
        self.options = {k.lower(): v for k, v in options.items()}
        self.names = list(options)
        listed = ", ".join(repr(k) for k in options)
        self.expected = f"{what + ': ' if what else ''}one of {listed}"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, str) or v.lower() not in self.options:
            raise self.bad(v)
        return self.options[v.lower()]

    def show(self, v: Any) -> str:
        for k, x in self.options.items():
            if x == v:
                return k
        return str(v)  # pragma: no cover - values come from options


class IntIn(Type):
    """One of a few integers."""

    def __init__(self, values: Sequence[int], what: str, hexa: bool = True) -> None:
        self.values = list(values)
        self.hexa = hexa
        shown = ", ".join(self.show(x) for x in values)
        self.expected = f"{what}: one of {shown}"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if isinstance(v, bool) or v not in self.values:
            raise self.bad(v)
        return v

    def show(self, v: Any) -> str:
        return f"{v:#x}" if self.hexa and isinstance(v, int) and v > 9 else str(v)


class RegFields(Type):
    """A table of register field names to values (checked against the register later)."""

    expected = "a table of register fields"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, dict):
            raise self.bad(v)
        for k, x in v.items():
            if isinstance(x, bool) or not isinstance(x, int) or x < 0:
                raise _Bad(f"expected a non-negative integer, got {_got(x)}", (k,))
        return dict(v)


class IntOrChoice(Type):
    """An integer of ``ints``, or a name of ``names``."""

    def __init__(self, ints: Int, names: Mapping[str, int]) -> None:
        self.ints = ints
        self.names = {k.lower(): v for k, v in names.items()}
        self.expected = f"{ints.expected}, or one of {', '.join(repr(k) for k in names)}"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if isinstance(v, str) and v.lower() in self.names:
            return self.names[v.lower()]
        try:
            return self.ints.parse(v, ctx)
        except _Bad:
            raise self.bad(v) from None

    def show(self, v: Any) -> str:
        return self.ints.show(v)


class EnumT(Type):
    """A member of an IntEnum, by value or by name (case-insensitive)."""

    def __init__(self, enum: Any, what: str, describe: Optional[Callable[[Any], str]] = None):
        self.enum = enum
        self.describe = describe
        values = ", ".join(str(int(m)) for m in enum)
        self.expected = f"{what}: one of {values}, or its name (e.g. {list(enum)[0].name!r})"

    def bad(self, v: Any) -> _Bad:
        got = str(v) if isinstance(v, int) and not isinstance(v, bool) else _got(v)
        return _Bad(f"expected {self.expected}, got {got}")

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if isinstance(v, str):
            member = self.enum.__members__.get(v.upper())
            if member is not None:
                return int(member)
        elif isinstance(v, int) and not isinstance(v, bool):
            try:
                return int(self.enum(v))
            except ValueError:
                pass
        raise self.bad(v)

    def show(self, v: Any) -> str:
        m = self.enum(v)  # values come from the schema or from the model: members
        if self.describe is not None:
            return f"{int(m)} {self.describe(m)}"
        return f"{int(m)} {m.name}"


class Ref(Type):
    """The name of something defined earlier in the file (a VM)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.expected = f"the name of a {what} (a string)"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, str) or not v:
            raise self.bad(v)
        ctx.refs.append((self.what, v, ()))
        return v


class ListOf(Type):
    """An array of ``elem``; ``one`` also accepts a single element."""

    def __init__(self, elem: Type, one: bool = False, limit: int = 4096) -> None:
        self.elem = elem
        self.one = one
        self.limit = limit
        self.expected = f"an array of {elem.expected}" + (" (or one)" if one else "")

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, list):
            if self.one:
                return [self.elem.parse(v, ctx)]
            raise self.bad(v)
        if len(v) > self.limit:
            raise _Bad(f"expected at most {self.limit} elements, got {len(v)}")
        out = []
        for i, x in enumerate(v):
            n0 = len(ctx.refs)
            try:
                out.append(self.elem.parse(x, ctx))
            except _Bad as b:
                raise _Bad(b.message, (f"[{i}]",) + b.path) from None
            ctx.refs[n0:] = [(w, name, (f"[{i}]",) + p) for w, name, p in ctx.refs[n0:]]
        return out


class FieldSpec(NamedTuple):
    """One key of a table: its type, whether it must be given, and its words in the docs."""

    type: Type
    doc: str = ""
    required: bool = False


class Table(Type):
    """A table with known keys; unknown keys are errors.  ``check`` sees the parsed
    values for rules between keys."""

    def __init__(
        self,
        keys: Mapping[str, FieldSpec],
        what: str = "a table",
        check: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> None:
        self.keys = dict(keys)
        self.check = check
        self.expected = what

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, dict):
            raise self.bad(v)
        return self.parse_keys(v, ctx, self.keys)

    def parse_keys(
        self, v: Dict[str, Any], ctx: Ctx, keys: Mapping[str, FieldSpec], owner: str = ""
    ) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for k, x in v.items():
            spec = keys.get(k)
            if spec is None:
                raise _Bad(_unknown(k, keys, owner), (k,))
            n0 = len(ctx.refs)
            try:
                out[k] = spec.type.parse(x, ctx)
            except _Bad as b:
                raise _Bad(b.message, (k,) + b.path) from None
            ctx.refs[n0:] = [(w, name, (k,) + p) for w, name, p in ctx.refs[n0:]]
        for k, spec in keys.items():
            if spec.required and k not in out:
                raise _Bad(f"missing; expected {spec.type.expected}", (k,))
        if self.check is not None:
            self.check(out)
        return out


def _unknown(key: str, keys: Iterable[str], owner: str = "") -> str:
    names = sorted(keys)
    near = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    where = f" of {owner}" if owner else ""
    return f"unknown key{where}{hint} (expected one of: {', '.join(names)})"


class FalseOr(Type):
    """``false`` (the thing must be absent), or a table matching it."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.expected = f"false, or {table.expected}"

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if v is False:
            return False
        if isinstance(v, dict):
            return self.table.parse(v, ctx)
        raise self.bad(v)


class Variant(Table):
    """A table whose allowed keys depend on its ``tag`` key (``op`` of a command)."""

    def __init__(
        self,
        tag: str,
        common: Mapping[str, FieldSpec],
        variants: Mapping[str, Mapping[str, FieldSpec]],
        what: str,
        check: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> None:
        super().__init__(common, what, check)
        self.tag = tag
        self.variants = {k.lower(): dict(v) for k, v in variants.items()}
        self.tag_type = Choice({k: k.lower() for k in variants}, tag)

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if not isinstance(v, dict):  # pragma: no cover - actions are always tables
            raise self.bad(v)
        if self.tag not in v:
            raise _Bad(f"missing; expected {self.tag_type.expected}", (self.tag,))
        try:
            tag = self.tag_type.parse(v[self.tag], ctx)
        except _Bad as b:
            raise _Bad(b.message, (self.tag,)) from None
        keys = {self.tag: FieldSpec(self.tag_type), **self.keys, **self.variants[tag]}
        return self.parse_keys(v, ctx, keys, owner=f"{self.tag} {v[self.tag]!r}")


# ==========================================================================
# the vocabulary
# ==========================================================================
BOOL = Bool()
STR = Str()
ADDR = bits(64, "an address")
DEVICE = bits(24, "a device_id")
PASID = bits(20, "a PASID (process_id)")
GSCID = bits(16, "a GSCID")
PSCID = bits(20, "a PSCID")
U32 = bits(32)
U64 = bits(64)
SIZE = Int(1, 1 << 63, "a size in bytes")
LENGTH = Int(1, 4096, "a length in bytes", hexa=False)
CAUSE = EnumT(Cause, "a fault cause of the spec's table", lambda c: c.description)
TTYP = EnumT(Ttyp, "a TTYP")
STATUS = Choice(
    {
        "success": Status.SUCCESS,
        "unsupported_request": Status.UNSUPPORTED_REQUEST,
        "completer_abort": Status.COMPLETER_ABORT,
    }
)
ACCESS = Choice({"read": Access.READ, "write": Access.WRITE, "execute": Access.EXECUTE})
KIND = Choice(
    {
        "untranslated": RequestKind.UNTRANSLATED,
        "translated": RequestKind.TRANSLATED,
        "ats": RequestKind.ATS_TRANSLATION,
    }
)
PERMS = Choice({"r": R, "rw": R | W, "rx": R | X, "rwx": R | W | X})
PRG_CODE = IntOrChoice(
    Int(0, 15, "a response code", hexa=False),
    {"success": 0, "invalid_request": 1, "response_failure": 15},
)
VM = Ref("VM")
PAGE_SIZE = IntIn([4096, 1 << 21, 1 << 30], "a page size")
RAM_SIZE = Int(0x1000, 1 << 30, "a RAM size in bytes (memory is allocated: at most 1 GiB)")


class GpaOf(NamedTuple):
    """``{ vm = "A", gpa = G }``: the SPA behind VM A's GPA G (resolved when the action runs)."""

    vm: str
    gpa: int


class AddrOrGpa(Type):
    """An address, or ``{ vm, gpa }`` for the SPA behind a VM's GPA."""

    expected = "an address (an integer 0 to 0xffffffffffffffff) or a table { vm, gpa }"

    def __init__(self) -> None:
        self.table = Table(
            {"vm": FieldSpec(VM, required=True), "gpa": FieldSpec(ADDR, required=True)},
            self.expected,
        )

    def parse(self, v: Any, ctx: Ctx) -> Any:
        if isinstance(v, dict):
            t = self.table.parse(v, ctx)
            return GpaOf(t["vm"], t["gpa"])
        try:
            return ADDR.parse(v, ctx)
        except _Bad:
            raise self.bad(v) from None


class ReqField(NamedTuple):
    """A ``[[request]]`` key: its type, the :class:`Request` argument it sets, the default."""

    type: Type
    arg: str
    default: Any
    doc: str


#: ``[[request]]`` keys -> :class:`~riscv_iommu.Request` arguments (one line per field).
REQUEST_FIELDS: Dict[str, ReqField] = {
    "device": ReqField(DEVICE, "device_id", None, "device_id (default: the first [[device]])"),
    "addr": ReqField(AddrOrGpa(), "addr", None, "IOVA, GPA or SPA, or { vm, gpa }"),
    "pasid": ReqField(PASID, "process_id", None, "process_id (PASID); absent: none"),
    "access": ReqField(ACCESS, "access", Access.READ, "read, write (or AMO), execute"),
    "priv": ReqField(BOOL, "priv", False, "supervisor privilege (with a PASID)"),
    "kind": ReqField(KIND, "kind", RequestKind.UNTRANSLATED, "untranslated, translated, ats"),
    "length": ReqField(LENGTH, "length", 4, "bytes accessed, 1 to 4096"),
    "no_write": ReqField(BOOL, "no_write", False, "ATS translation: No Write"),
    "data": ReqField(U32, "data", None, "32-bit write data (MSIs into an MRIF)"),
    "cxl": ReqField(BOOL, "cxl", False, "from a CXL type 1 or type 2 device (ATS CXL.io)"),
}

#: ``expect`` keys of a request compared with a :class:`Response` attribute (one line each).
RESPONSE_FIELDS: Dict[str, Tuple[Type, str]] = {
    "status": (STATUS, "status"),
    "addr": (ADDR, "addr"),
    "reported": (BOOL, "reported"),
    "r": (BOOL, "r"),
    "w": (BOOL, "w"),
    "x": (BOOL, "x"),
    "u": (BOOL, "u"),
    "g": (BOOL, "g"),
    "priv": (BOOL, "priv"),
    "n": (BOOL, "n"),
    "pbmt": (Int(0, 3, "a PBMT value", hexa=False), "pbmt"),
    "s": (BOOL, "s"),
    "ama": (Int(0, 7, "an AMA value", hexa=False), "ama"),
    "size": (SIZE, "size"),
    "is_msi": (BOOL, "is_msi"),
    "is_mrif": (BOOL, "is_mrif"),
    "mrif_addr": (ADDR, "mrif_addr"),
    "notice_addr": (ADDR, "notice_addr"),
    "nid": (bits(11, "an NID", hexa=False), "nid"),
    "rcid": (bits(12, "an RCID", hexa=False), "rcid"),
    "mcid": (bits(12, "an MCID", hexa=False), "mcid"),
    "cxl_io": (BOOL, "cxl_io"),
}

#: Keys of a fault record (``expect.fault`` and ``[[check]] fq``), named as FaultRecord's fields.
FAULT_FIELDS: Dict[str, Type] = {
    "cause": CAUSE,
    "ttyp": TTYP,
    "iotval": U64,
    "iotval2": U64,
    "device_id": DEVICE,
    "process_id": PASID,
    "pv": BOOL,
    "priv": BOOL,
}

#: Keys of a page-request record (``[[check]] pq``), named as PageRequest's fields.
PAGE_REQUEST_FIELDS: Dict[str, Type] = {
    "device_id": DEVICE,
    "addr": ADDR,
    "prg_index": bits(9, "a PRG index"),
    "last": BOOL,
    "read": BOOL,
    "write": BOOL,
    "process_id": PASID,
    "priv": BOOL,
    "exec_req": BOOL,
}

#: Keys of outbound messages (``[[check]] messages``), by ``type``.
MESSAGE_FIELDS: Dict[str, Dict[str, Type]] = {
    "invalidation": {
        "device_id": bits(16, "a Requester ID"),
        "addr": ADDR,
        "s": BOOL,
        "global_": BOOL,
        "pasid": PASID,
        "segment": bits(8, "a segment"),
        "itag": Int(0, 31, "an ITAG", hexa=False),
    },
    "prg_response": {
        "device_id": bits(16, "a Requester ID"),
        "prg_index": bits(9, "a PRG index"),
        "response_code": PRG_CODE,
        "pasid": PASID,
        "segment": bits(8, "a segment"),
    },
}
_MESSAGE_TYPES = {"invalidation": InvalidationRequest, "prg_response": PageRequestGroupResponse}


def _fs(table: Mapping[str, Type]) -> Dict[str, FieldSpec]:
    return {k: FieldSpec(t) for k, t in table.items()}


def _exactly_one(*groups: Sequence[str]) -> Callable[[Dict[str, Any]], None]:
    """Rule: exactly one of the key groups is given (a group is all its keys)."""

    def check(v: Dict[str, Any]) -> None:
        given = [g for g in groups if any(k in v for k in g)]
        names = " or ".join(" + ".join(g) for g in groups)
        if len(given) != 1:
            key = given[1][0] if len(given) > 1 else groups[0][0]
            what = "only one of" if given else "one of"
            raise _Bad(f"give {what} {names}", (key,))
        for k in given[0]:
            if k not in v:
                raise _Bad(f"missing; {' + '.join(given[0])} go together", (k,))

    return check


def _raise(key: str, what: str) -> None:
    raise _Bad(f"give only one of {what}", (key,))


def _all(*checks: Callable[[Dict[str, Any]], None]) -> Callable[[Dict[str, Any]], None]:
    def check(v: Dict[str, Any]) -> None:
        for c in checks:
            c(v)

    return check


# ---- memory locations: a VM's GPA or an SPA -------------------------------
_WHERE = {"vm": FieldSpec(VM, "a VM (with gpa)"), "gpa": FieldSpec(ADDR), "spa": FieldSpec(ADDR)}
_WHERE_RULE = _exactly_one(("vm", "gpa"), ("spa",))
_VALUE_KEYS = {
    "u64": FieldSpec(U64, "a doubleword (byte order of fctl.BE)"),
    "u32": FieldSpec(U32, "a word (byte order of fctl.BE)"),
    "text": FieldSpec(STR, "UTF-8 bytes"),
    "order": FieldSpec(Choice({"little": "little", "big": "big"}), "u64/u32 byte order"),
}
_MEMORY = Table(
    {**_WHERE, **_VALUE_KEYS},
    "a table { vm + gpa | spa, u64 | u32 | text }",
    _all(_WHERE_RULE, _exactly_one(("u64",), ("u32",), ("text",))),
)

# ---- request expectations ---------------------------------------------------
_FAULT_MATCH = Table(_fs(FAULT_FIELDS), "a table of fault-record fields")


def _expect_rule(v: Dict[str, Any]) -> None:
    if "gpa" in v and "vm" not in v:
        raise _Bad("missing; gpa needs vm (the VM whose GPA the request must reach)", ("vm",))
    if "cause" in v and v.get("fault") is False:
        raise _Bad("a cause with fault = false", ("fault",))


_EXPECT = Table(
    {
        "cause": FieldSpec(CAUSE, "the request faults with this cause"),
        "fault": FieldSpec(FalseOr(_FAULT_MATCH), "false: no fault; a table: the record"),
        "vm": FieldSpec(VM, "succeeds and lands in this VM"),
        "gpa": FieldSpec(ADDR, "... at this GPA (default: the request's addr)"),
        "spa": FieldSpec(ADDR, "succeeds at this SPA"),
        **{k: FieldSpec(t) for k, (t, _) in RESPONSE_FIELDS.items()},
    },
    "a table of expectations",
    _expect_rule,
)

_PR_EXPECT = Table(
    {
        "queued": FieldSpec(BOOL, "true: queued in the PQ, no immediate response"),
        "response": FieldSpec(
            FalseOr(
                Table(
                    {
                        "response_code": FieldSpec(PRG_CODE),
                        "pasid": FieldSpec(PASID),
                        "prg_index": FieldSpec(bits(9)),
                        "device_id": FieldSpec(bits(16)),
                    },
                    "a table of response fields",
                )
            )
        ),
    },
    "a table { queued, response }",
)


def _message_check(v: Dict[str, Any]) -> None:
    kind = v.get("type")
    if kind is None:
        raise _Bad("missing; expected 'invalidation' or 'prg_response'", ("type",))
    for k in v:
        if k != "type" and k not in MESSAGE_FIELDS[kind]:
            raise _Bad(_unknown(k, MESSAGE_FIELDS[kind], f"a {kind} message"), (k,))


_MESSAGE = Table(
    {
        "type": FieldSpec(Choice({k: k for k in MESSAGE_FIELDS})),
        **{k: FieldSpec(t) for m in MESSAGE_FIELDS.values() for k, t in m.items()},
    },
    "a table { type = 'invalidation' | 'prg_response', fields... }",
    _message_check,
)

# ---- MSI page tables ---------------------------------------------------------
_MSI_PTE = Table(
    {
        "index": FieldSpec(bits(12, "an interrupt-file number", hexa=False), required=True),
        "mode": FieldSpec(Choice({"flat": "flat", "mrif": "mrif", "raw": "raw"}), required=True),
        "spa": FieldSpec(ADDR, "flat: the interrupt file's page"),
        "mrif": FieldSpec(ADDR, "mrif: the MRIF's address (512-byte aligned)"),
        "notice": FieldSpec(ADDR, "mrif: the notice MSI address"),
        "nid": FieldSpec(bits(11, "an NID", hexa=False), "mrif: the notice identifier"),
        "pte0": FieldSpec(U64, "raw: first doubleword"),
        "pte1": FieldSpec(U64, "raw: second doubleword"),
    },
    "an MSI PTE { index, mode, ... }",
)


def _msi_pte_rule(v: Dict[str, Any]) -> None:
    need = {"flat": ("spa",), "mrif": ("mrif", "notice", "nid"), "raw": ("pte0",)}[v["mode"]]
    for k in need:
        if k not in v:
            raise _Bad(f"missing; a {v['mode']} MSI PTE needs {', '.join(need)}", (k,))
    if v["mode"] == "flat" and v["spa"] & 0xFFF:
        raise _Bad("expected a 4 KiB-aligned address", ("spa",))
    if v["mode"] == "mrif" and v["mrif"] & 0x1FF:
        raise _Bad("expected a 512-byte-aligned address", ("mrif",))


_MSI_PTE.check = _msi_pte_rule
_MSI = Table(
    {
        "addr_mask": FieldSpec(bits(52), "DC.msi_addr_mask"),
        "addr_pattern": FieldSpec(bits(52), "DC.msi_addr_pattern", required=True),
        "entries": FieldSpec(Int(1, 4096, hexa=False), "size of the MSI page table"),
        "ptes": FieldSpec(ListOf(_MSI_PTE), "the MSI PTEs"),
    },
    "a table { addr_pattern, addr_mask, ptes }",
)

# ---- the actions -------------------------------------------------------------
#: Registers by name for ``[[mmio]]``: offset, size and field layout.
REGISTERS: Dict[str, Tuple[int, int, Optional[F.Layout]]] = {
    "capabilities": (REG.CAPABILITIES, 8, F.CAPABILITIES),
    "fctl": (REG.FCTL, 4, F.FCTL),
    "ddtp": (REG.DDTP, 8, F.DDTP),
    "cqb": (REG.CQB, 8, F.QUEUE_BASE),
    "cqh": (REG.CQH, 4, None),
    "cqt": (REG.CQT, 4, None),
    "fqb": (REG.FQB, 8, F.QUEUE_BASE),
    "fqh": (REG.FQH, 4, None),
    "fqt": (REG.FQT, 4, None),
    "pqb": (REG.PQB, 8, F.QUEUE_BASE),
    "pqh": (REG.PQH, 4, None),
    "pqt": (REG.PQT, 4, None),
    "cqcsr": (REG.CQCSR, 4, F.CQCSR),
    "fqcsr": (REG.FQCSR, 4, F.FQCSR),
    "pqcsr": (REG.PQCSR, 4, F.PQCSR),
    "ipsr": (REG.IPSR, 4, F.IPSR),
    "iocountovf": (REG.IOCOUNTOVF, 4, None),
    "iocountinh": (REG.IOCOUNTINH, 4, None),
    "iohpmcycles": (REG.IOHPMCYCLES, 8, F.IOHPMCYCLES),
    "tr_req_iova": (REG.TR_REQ_IOVA, 8, F.TR_REQ_IOVA),
    "tr_req_ctl": (REG.TR_REQ_CTL, 8, F.TR_REQ_CTL),
    "tr_response": (REG.TR_RESPONSE, 8, F.TR_RESPONSE),
    "iommu_qosid": (REG.IOMMU_QOSID, 4, F.IOMMU_QOSID),
    "icvec": (REG.ICVEC, 8, F.ICVEC),
}
_DC_TC_FIELDS = {name: FieldSpec(bits(f.width)) for name, f in F.DC_TC.fields.items()}


#: host RAM lies below the SPA where the host toolkit's allocator puts its tables
HOST_RAM_END = 0x8000_0000


def _host_ram_rule(v: Dict[str, Any]) -> None:
    spa, size = v["spa"], v["size"]
    if (spa | size) & 0xFFF:
        raise _Bad(f"expected a page-aligned region, got {spa:#x} + {size:#x}", ("spa",))
    if spa + size > HOST_RAM_END:
        raise _Bad(
            f"expected host RAM below {HOST_RAM_END:#x} (the host's tables are allocated "
            f"from there up), got {spa:#x} + {size:#x}",
            ("size",),
        )


def _device_rule(v: Dict[str, Any]) -> None:
    if v.get("host"):
        for k, why in (
            ("vm", "a host-owned device belongs to no VM"),
            ("gipc", "a host-owned device is not a GIPC device"),
            ("msi", "DC.iohgatp Bare needs DC.msiptp.MODE Off"),
            ("t2gpa", "DC.tc.T2GPA with DC.iohgatp Bare is a misconfigured DC"),
        ):
            if k in v:
                raise _Bad(f"not for a host-owned device ({why})", (k,))
    if v.get("gipc"):
        for k in ("vm", "pasids", "first_stage", "msi"):
            if k in v:
                raise _Bad("not for a GIPC device (its PASIDs name their VMs)", (k,))
    elif "vm" not in v and not v.get("host"):
        raise _Bad("missing; expected the VM of the device, gipc = true or host = true", ("vm",))
    if v.get("first_stage") is False and "pasids" in v:
        raise _Bad("first_stage = false has no PASIDs", ("pasids",))


def _request_rule(v: Dict[str, Any]) -> None:
    if v.get("priv") and "pasid" not in v:
        raise _Bad("priv needs a pasid (privilege is a PASID attribute)", ("priv",))


def _page_request_rule(v: Dict[str, Any]) -> None:
    if v["addr"] & 0xFFF:
        raise _Bad("expected a page address (bits 11:0 zero)", ("addr",))


_ACTION_TABLES: Dict[str, Table] = {
    "vm": Table(
        {
            "name": FieldSpec(STR, "the VM's name", required=True),
            "gscid": FieldSpec(Int(1, 0xFFFF), "its GSCID (default: the next free one)"),
            "g_mode": FieldSpec(Choice({"sv39x4": SV39X4, "sv48x4": SV48X4})),
            "ram": FieldSpec(
                ListOf(
                    Table(
                        {
                            "gpa": FieldSpec(ADDR, required=True),
                            "size": FieldSpec(RAM_SIZE, required=True),
                            "page_size": FieldSpec(PAGE_SIZE),
                        },
                        "a table { gpa, size, page_size }",
                    )
                )
            ),
        },
        "a VM",
    ),
    "device": Table(
        {
            "id": FieldSpec(DEVICE, required=True),
            "vm": FieldSpec(VM, "classic: the VM the whole device belongs to"),
            "gipc": FieldSpec(BOOL, "GIPC: each PASID names its VM"),
            "host": FieldSpec(BOOL, "host-owned: DC.iohgatp Bare, tables and IOVAs at SPAs"),
            "pasids": FieldSpec(BOOL, "classic, host: a PDT (default) or one iosatp table"),
            "first_stage": FieldSpec(BOOL, "classic, host: false = DC.fsc Bare"),
            "ats": FieldSpec(BOOL, "DC.tc.EN_ATS"),
            "pri": FieldSpec(BOOL, "DC.tc.EN_PRI and PRPR"),
            "t2gpa": FieldSpec(BOOL, "DC.tc.T2GPA"),
            "dtf": FieldSpec(BOOL, "DC.tc.DTF"),
            "sade": FieldSpec(BOOL, "DC.tc.SADE"),
            "gade": FieldSpec(BOOL, "DC.tc.GADE"),
            "ats_completion": FieldSpec(Choice({"auto": "auto", "manual": "manual"})),
            "msi": FieldSpec(_MSI, "DC.msiptp and an MSI page table"),
        },
        "a device",
        _device_rule,
    ),
    "detach": Table({"device": FieldSpec(DEVICE, required=True)}, "a detach"),
    "bind": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "pasid": FieldSpec(PASID, required=True),
            "vm": FieldSpec(VM),
        },
        "a bind",
    ),
    "unbind": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "pasid": FieldSpec(PASID, required=True),
            "invalidate": FieldSpec(BOOL),
        },
        "an unbind",
    ),
    "rebind": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "pasid": FieldSpec(PASID, required=True),
            "vm": FieldSpec(VM, required=True),
        },
        "a rebind",
    ),
    "map": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "pasid": FieldSpec(PASID),
            "iova": FieldSpec(ADDR, required=True),
            "gpa": FieldSpec(ADDR, "a VM's device: the GPA the IOVA maps to"),
            "spa": FieldSpec(ADDR, "a host-owned device: the SPA of host RAM"),
            "size": FieldSpec(SIZE, required=True),
            "perms": FieldSpec(PERMS),
        },
        "a map",
        _exactly_one(("gpa",), ("spa",)),
    ),
    "unmap": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "pasid": FieldSpec(PASID),
            "iova": FieldSpec(ADDR, required=True),
            "size": FieldSpec(SIZE, required=True),
            "invalidate": FieldSpec(BOOL),
        },
        "an unmap",
    ),
    "unmap_ram": Table(
        {
            "vm": FieldSpec(VM, required=True),
            "gpa": FieldSpec(ADDR, required=True),
            "invalidate": FieldSpec(BOOL),
        },
        "an unmap_ram",
    ),
    "dc": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "tc": FieldSpec(Table(_DC_TC_FIELDS, "a table of DC.tc fields"), required=True),
            "invalidate": FieldSpec(BOOL),
        },
        "a DC change",
    ),
    "write": Table(
        {**_WHERE, **_VALUE_KEYS},
        "a memory write",
        _all(_WHERE_RULE, _exactly_one(("u64",), ("u32",), ("text",))),
    ),
    "command": Variant(
        "op",
        {
            "fence": FieldSpec(BOOL, "follow with IOFENCE.C and wait (default true)"),
            "expect": FieldSpec(
                Choice(
                    {
                        "completed": "completed",
                        "waiting": "waiting",
                        "illegal": "illegal",
                        "timeout": "timeout",
                        "memory_fault": "memory_fault",
                    }
                )
            ),
        },
        {
            "IOTINVAL.VMA": {
                "vm": FieldSpec(VM, "GV = 1 with the VM's GSCID"),
                "gscid": FieldSpec(GSCID, "GV = 1"),
                "pscid": FieldSpec(PSCID, "PSCV = 1"),
                "space": FieldSpec(
                    Table({"device": FieldSpec(DEVICE, required=True), "pasid": FieldSpec(PASID)}),
                    "PSCV = 1 with that address space's PSCID",
                ),
                "addr": FieldSpec(ADDR, "AV = 1"),
                "size": FieldSpec(SIZE, "S = 1: a NAPOT range of this size"),
            },
            "IOTINVAL.GVMA": {
                "vm": FieldSpec(VM),
                "gscid": FieldSpec(GSCID),
                "addr": FieldSpec(ADDR),
            },
            "IOFENCE.C": {
                "pr": FieldSpec(BOOL),
                "pw": FieldSpec(BOOL),
                "wsi": FieldSpec(BOOL),
                "addr": FieldSpec(ADDR),
                "data": FieldSpec(U32),
            },
            "IODIR.INVAL_DDT": {"device": FieldSpec(DEVICE, "DV = 1")},
            "IODIR.INVAL_PDT": {
                "device": FieldSpec(DEVICE, required=True),
                "pasid": FieldSpec(PASID, required=True),
            },
            "ATS.INVAL": {
                "device": FieldSpec(DEVICE, required=True),
                "pasid": FieldSpec(PASID),
                "addr": FieldSpec(ADDR),
                "size": FieldSpec(SIZE, "a power of two; absent: every address"),
                "global": FieldSpec(BOOL),
            },
            "ATS.PRGR": {
                "device": FieldSpec(DEVICE, required=True),
                "prg_index": FieldSpec(bits(9), required=True),
                "code": FieldSpec(PRG_CODE),
                "pasid": FieldSpec(PASID),
            },
            "raw": {"d0": FieldSpec(U64, required=True), "d1": FieldSpec(U64)},
        },
        "a command",
    ),
    "recipe": Variant(
        "name",
        {},
        {
            "dc_changed": {"device": FieldSpec(DEVICE, required=True)},
            "ddt_nonleaf_changed": {},
            "pc_changed": {
                "device": FieldSpec(DEVICE, required=True),
                "pasid": FieldSpec(PASID, required=True),
            },
            "pdt_nonleaf_changed": {"device": FieldSpec(DEVICE, required=True)},
            "first_stage_changed": {
                "device": FieldSpec(DEVICE, required=True),
                "pasid": FieldSpec(PASID),
                "addr": FieldSpec(ListOf(ADDR, one=True)),
            },
            "g_stage_changed": {
                "vm": FieldSpec(VM, required=True),
                "gpa": FieldSpec(ListOf(ADDR, one=True)),
                "devices": FieldSpec(ListOf(DEVICE, one=True)),
            },
            "msi_pte_changed": {
                "vm": FieldSpec(VM, required=True),
                "addr": FieldSpec(ADDR),
            },
            "ats_invalidate": {
                "device": FieldSpec(DEVICE, required=True),
                "pasid": FieldSpec(PASID),
                "addr": FieldSpec(ADDR),
                "size": FieldSpec(SIZE),
                "global": FieldSpec(BOOL),
            },
        },
        "a recipe",
    ),
    "mmio": Table(
        {
            "register": FieldSpec(
                IntOrChoice(Int(0, 0xFFC, "an offset"), {k: r[0] for k, r in REGISTERS.items()}),
                required=True,
            ),
            "value": FieldSpec(U64, "write this value"),
            "set": FieldSpec(RegFields(), "write these fields (the others 0)"),
            "size": FieldSpec(IntIn([4, 8], "an access size", hexa=False), "access size"),
            "expect": FieldSpec(U64, "then read: the value"),
            "fields": FieldSpec(RegFields(), "then read: these fields"),
        },
        "an MMIO access",
        _all(
            lambda v: None if not ("value" in v and "set" in v) else _raise("set", "value or set"),
        ),
    ),
    "inject": Table(
        {
            "fault": FieldSpec(
                Choice(
                    {
                        "access": MemoryFault.ACCESS_FAULT,
                        "corruption": MemoryFault.DATA_CORRUPTION,
                        "datapath": "datapath",
                        "clear": "clear",
                    }
                ),
                required=True,
            ),
            "structure": FieldSpec(
                Choice({k: k for k in ("dc", "pc", "pte", "g_pte", "msi_pte", "cq", "fq", "pq")})
            ),
            "device": FieldSpec(DEVICE),
            "pasid": FieldSpec(PASID),
            "iova": FieldSpec(ADDR),
            "index": FieldSpec(bits(12, hexa=False)),
            "vm": FieldSpec(VM),
            "gpa": FieldSpec(ADDR),
            "spa": FieldSpec(ADDR),
            "size": FieldSpec(SIZE),
            "count": FieldSpec(Int(1, 1 << 16, hexa=False), "datapath: how many requests"),
        },
        "a fault injection",
    ),
    "tick": Table({"cycles": FieldSpec(Int(1, (1 << 63) - 1), required=True)}, "a tick"),
    "ats_completion": Table(
        {
            "device": FieldSpec(DEVICE, required=True),
            "itags": FieldSpec(ListOf(Int(0, 31, "an ITAG", hexa=False), one=True)),
            "cc": FieldSpec(Int(0, 7, hexa=False)),
        },
        "an invalidation completion",
    ),
    "request": Table(
        {
            **{k: FieldSpec(f.type, f.doc, k == "addr") for k, f in REQUEST_FIELDS.items()},
            "expect": FieldSpec(_EXPECT, "what the response must be"),
        },
        "a request",
        _request_rule,
    ),
    "page_request": Table(
        {
            "device": FieldSpec(DEVICE),
            "addr": FieldSpec(ADDR, required=True),
            "prg_index": FieldSpec(bits(9, "a PRG index")),
            "last": FieldSpec(BOOL),
            "read": FieldSpec(BOOL),
            "write": FieldSpec(BOOL),
            "pasid": FieldSpec(PASID),
            "priv": FieldSpec(BOOL),
            "exec": FieldSpec(BOOL),
            "expect": FieldSpec(_PR_EXPECT),
        },
        "a page request",
        _page_request_rule,
    ),
    "check": Table(
        {
            "fq": FieldSpec(ListOf(_FAULT_MATCH), "the fault records since the last check"),
            "pq": FieldSpec(
                ListOf(Table(_fs(PAGE_REQUEST_FIELDS), "a table of page-request fields"))
            ),
            "messages": FieldSpec(ListOf(_MESSAGE), "outbound ATS messages since the last check"),
            "memory": FieldSpec(ListOf(_MEMORY), "memory contents"),
        },
        "a check",
    ),
}


class ActionSpec(NamedTuple):
    """An action kind: its schema and its words in the docs."""

    table: Table
    doc: str


#: Every ``[[table]]`` a scenario may hold, in the order of the docs.
ACTIONS: Dict[str, ActionSpec] = {
    "vm": ActionSpec(_ACTION_TABLES["vm"], "a VM with its RAM"),
    "device": ActionSpec(_ACTION_TABLES["device"], "attach a device (classic or GIPC)"),
    "detach": ActionSpec(_ACTION_TABLES["detach"], "detach a device"),
    "bind": ActionSpec(_ACTION_TABLES["bind"], "a PASID gets an address space"),
    "unbind": ActionSpec(_ACTION_TABLES["unbind"], "a PASID loses its address space"),
    "rebind": ActionSpec(_ACTION_TABLES["rebind"], "[GIPC] a PASID moves to another VM"),
    "map": ActionSpec(_ACTION_TABLES["map"], "virtio-iommu MAP"),
    "unmap": ActionSpec(_ACTION_TABLES["unmap"], "virtio-iommu UNMAP"),
    "unmap_ram": ActionSpec(_ACTION_TABLES["unmap_ram"], "remove guest RAM (G-stage)"),
    "dc": ActionSpec(_ACTION_TABLES["dc"], "change DC.tc fields"),
    "write": ActionSpec(_ACTION_TABLES["write"], "write memory"),
    "command": ActionSpec(_ACTION_TABLES["command"], "one command on the CQ"),
    "recipe": ActionSpec(_ACTION_TABLES["recipe"], "an invalidation recipe of the guidelines"),
    "mmio": ActionSpec(_ACTION_TABLES["mmio"], "a raw register write and/or read"),
    "inject": ActionSpec(_ACTION_TABLES["inject"], "a memory fault or data-path error"),
    "tick": ActionSpec(_ACTION_TABLES["tick"], "advance time"),
    "ats_completion": ActionSpec(_ACTION_TABLES["ats_completion"], "a device's Inv. Completion"),
    "request": ActionSpec(_ACTION_TABLES["request"], "a device request"),
    "page_request": ActionSpec(_ACTION_TABLES["page_request"], "a PRI Page Request"),
    "check": ActionSpec(_ACTION_TABLES["check"], "check queues, messages, memory"),
}

_CAP_TYPES = {"bool": BOOL, "int": U64}
#: IommuParams fields that are not plain bools and ints
_PARAM_TYPES: Dict[str, Type] = {f.name: STR for f in fields(IommuParams) if f.type == "str"} | {
    "bare_page_sizes": Table(
        {mode: FieldSpec(SIZE) for mode in BARE_MODES},
        "a table of mode name (Sv39, Sv39x4, ...) to the size of a Bare stage",
    )
}
_CONFIG = Table(
    {
        "title": FieldSpec(STR, "what the scenario shows"),
        "revision": FieldSpec(Choice({"2024": "2024", "2025": "2025"}), "GIPC revision"),
        "capabilities": FieldSpec(
            Table(
                {f.name: FieldSpec(_CAP_TYPES[str(f.type)]) for f in fields(Capabilities)},
                "a table of Capabilities fields",
            )
        ),
        "params": FieldSpec(
            Table(
                {
                    f.name: FieldSpec(_PARAM_TYPES.get(f.name) or _CAP_TYPES[str(f.type)])
                    for f in fields(IommuParams)
                },
                "a table of IommuParams fields",
            )
        ),
        "host": FieldSpec(
            Table(
                {
                    "big_endian": FieldSpec(BOOL, "fctl.BE = 1"),
                    "ddt_levels": FieldSpec(Int(1, 3, hexa=False)),
                    "s1_mode": FieldSpec(Choice({"sv39": SV39, "sv48": SV48})),
                    "g_mode": FieldSpec(Choice({"sv39x4": SV39X4, "sv48x4": SV48X4})),
                    "interrupts": FieldSpec(Choice({"none": "none", "msi": "msi", "wsi": "wsi"})),
                    "ram": FieldSpec(
                        ListOf(
                            Table(
                                {
                                    "spa": FieldSpec(ADDR, required=True),
                                    "size": FieldSpec(SIZE, required=True),
                                },
                                "a table { spa, size }",
                                _host_ram_rule,
                            )
                        ),
                        "host RAM that host-owned devices may DMA to",
                    ),
                },
                "a table { big_endian, ddt_levels, s1_mode, g_mode, interrupts, ram }",
            )
        ),
    },
    "a scenario",
)


# ==========================================================================
# locating lines in the TOML text
# ==========================================================================
_BARE = r"[A-Za-z0-9_\-]+"
_QUOTED = r'"[^"]*"|\'[^\']*\''
_DOTTED = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_ARRAY_HDR = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HDR = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")


def _split(dotted: str) -> Tuple[str, ...]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _brackets(line: str) -> int:
    """Open minus closed brackets outside strings and comments."""
    depth = 0
    quote = ""
    for c in line:
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            break
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
    return depth


@dataclass
class Block:
    """A ``[[kind]]`` entry (or the top level, kind ""): its first line and its keys' lines."""

    kind: str
    index: int
    line: int
    keys: Dict[str, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str]) -> int:
        """The line of the longest known prefix of ``path`` (list indices skipped)."""
        parts = [p for p in path if not p.startswith("[")]
        while parts:
            n = self.keys.get(".".join(parts))
            if n is not None:
                return n
            parts.pop()
        return self.line


def scan(text: str) -> Tuple[Block, List[Block]]:
    """The top-level block and every ``[[table]]`` block, with key lines."""
    root = Block("", -1, 1)
    blocks: List[Block] = []
    counts: Dict[str, int] = {}
    cur = root
    prefix: Tuple[str, ...] = ()
    depth = 0
    ml = ""  # the delimiter of an open multi-line string
    for n, line in enumerate(text.splitlines(), 1):
        if ml:
            if ml in line:
                ml = ""
            continue
        if depth > 0:
            depth += _brackets(line)
            continue
        m = _ARRAY_HDR.match(line)
        if m:
            parts = _split(m.group(1))
            if len(parts) == 1:
                idx = counts.get(parts[0], 0)
                counts[parts[0]] = idx + 1
                cur = Block(parts[0], idx, n)
                blocks.append(cur)
                prefix = ()
            elif cur is not root and parts[0] == cur.kind:
                prefix = parts[1:]
                cur.keys.setdefault(".".join(prefix), n)
            else:
                cur, prefix = root, parts
                root.keys.setdefault(".".join(parts), n)
            continue
        m = _TABLE_HDR.match(line)
        if m:
            parts = _split(m.group(1))
            if cur is not root and parts[0] == cur.kind:
                prefix = parts[1:]
            else:
                cur, prefix = root, parts
            cur.keys.setdefault(".".join(prefix), n)
            continue
        m = _KEY.match(line)
        if m:
            path = prefix + _split(m.group(1))
            cur.keys.setdefault(".".join(path), n)
            rest = line[m.end() :]
            for delim in ('"""', "'''"):
                if rest.count(delim) == 1:
                    ml = delim
            depth = max(0, _brackets(rest))
    return root, blocks


# ==========================================================================
# loading
# ==========================================================================
@dataclass
class Action:
    """One ``[[kind]]`` entry, checked: ``values`` holds the converted keys."""

    kind: str
    index: int
    line: int
    values: Dict[str, Any]
    block: Block

    @property
    def name(self) -> str:
        """``kind[index]``, as errors and results name it."""
        return f"{self.kind}[{self.index}]"

    def line_of(self, *path: str) -> int:
        """The line of a key (or of the entry)."""
        return self.block.line_of(path)


@dataclass
class Scenario:
    """A checked scenario: its configuration and its actions in file order."""

    path: str
    config: Dict[str, Any]
    actions: List[Action]
    root: Block

    @property
    def requests(self) -> List[Action]:
        """The ``[[request]]`` actions, in order."""
        return [a for a in self.actions if a.kind == "request"]

    @property
    def first_device(self) -> Optional[int]:
        """The id of the first ``[[device]]``, or None."""
        for a in self.actions:
            if a.kind == "device":
                return int(a.values["id"])
        return None

    def error(self, action: Optional[Action], path: Sequence[str], message: str) -> ScenarioError:
        """A :class:`ScenarioError` at ``path`` of ``action`` (None: the top level)."""
        if action is None:
            return ScenarioError(
                self.path, self.root.line_of(path), _fieldname("", path) or "file", message
            )
        return ScenarioError(
            self.path, action.block.line_of(path), _fieldname(action.name, path), message
        )


def _toml_loads(text: str) -> Dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ModuleNotFoundError:
            raise ScenarioError(
                "<python>",
                0,
                "tomli",
                "TOML needs Python 3.11, or tomli on 3.10: pip install -e '.[toml]' "
                "in the checkout",
            ) from None
    data: Dict[str, Any] = tomllib.loads(text)
    return data


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Parse and check a scenario text; raises :class:`ScenarioError`."""
    try:
        data = _toml_loads(text)
    except ValueError as e:  # tomllib.TOMLDecodeError
        msg = str(e)
        m = re.search(r"line (\d+)", msg)
        raise ScenarioError(path, int(m.group(1)) if m else 1, "syntax", msg) from None
    root, blocks = scan(text)
    sc = Scenario(path, {}, [], root)
    config_in: Dict[str, Any] = {}
    for key, value in data.items():
        if key in ACTIONS:
            continue
        if key in _CONFIG.keys:
            config_in[key] = value
            continue
        near = difflib.get_close_matches(key, [*ACTIONS, *_CONFIG.keys], n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        line = next((b.line for b in blocks if b.kind == key), root.line_of((key,)))
        kinds = ", ".join(f"[[{k}]]" for k in ACTIONS)
        tables = ", ".join(_CONFIG.keys)
        raise ScenarioError(
            path,
            line,
            key,
            f"unknown table or key{hint} (expected one of: {tables}, {kinds})",
        )
    try:
        sc.config = _CONFIG.parse_keys(config_in, Ctx(), _CONFIG.keys)
    except _Bad as b:
        raise sc.error(None, b.path, b.message) from None
    by_kind: Dict[str, List[Block]] = {}
    for blk in blocks:
        by_kind.setdefault(blk.kind, []).append(blk)
    entries: List[Tuple[Block, Dict[str, Any]]] = []
    for kind in ACTIONS:
        if kind not in data:
            continue
        got = data[kind]
        found = by_kind.get(kind, [])
        if (
            not isinstance(got, list)
            or not all(isinstance(e, dict) for e in got)
            or len(got) != len(found)
        ):
            line = found[0].line if found else root.line_of((kind,))
            raise ScenarioError(
                path,
                line,
                kind,
                f"expected each {kind} as its own [[{kind}]] table "
                "(the file's order is the order of the actions)",
            )
        entries += list(zip(found, got, strict=True))
    entries.sort(key=lambda e: e[0].line)
    vms: Set[str] = set()
    #: device_id -> host-owned, for the devices attached above the current line
    owners: Dict[int, bool] = {}
    for block, entry in entries:
        spec = ACTIONS[block.kind]
        ctx = Ctx()
        act = Action(block.kind, block.index, block.line, {}, block)
        try:
            act.values = spec.table.parse(entry, ctx)
        except _Bad as b:
            raise sc.error(act, b.path, b.message) from None
        for _what, name, p in ctx.refs:
            if name not in vms:
                defined = ", ".join(sorted(vms)) or "none yet"
                raise sc.error(act, p, f"no VM {name!r} defined above this line (VMs: {defined})")
        if block.kind == "vm":
            name = act.values["name"]
            if name in vms:
                raise sc.error(act, ("name",), f"a VM named {name!r} is already defined")
            vms.add(name)
        _check_owner(sc, act, owners)
        sc.actions.append(act)
    return sc


def _check_owner(sc: Scenario, act: Action, owners: Dict[int, bool]) -> None:
    """Host-owned devices: [[map]] names an SPA (a VM's device a GPA), [[bind]] no VM.

    ``owners`` follows [[device]] and [[detach]] in file order (the order they run in)."""
    v = act.values
    if act.kind == "device":
        owners[v["id"]] = bool(v.get("host"))
    elif act.kind == "detach":
        owners.pop(v["device"], None)
    elif act.kind in ("map", "bind") and v["device"] in owners:
        host = owners[v["device"]]
        did = v["device"]
        if act.kind == "bind":
            if host and "vm" in v:
                raise sc.error(
                    act, ("vm",), f"expected no vm (device {did:#x} is host-owned), got {v['vm']!r}"
                )
        elif host and "gpa" in v:
            raise sc.error(
                act, ("gpa",), f"expected spa (device {did:#x} is host-owned: IOVA -> SPA), got gpa"
            )
        elif not host and "spa" in v:
            raise sc.error(
                act,
                ("spa",),
                f"expected gpa (device {did:#x} is not host-owned: IOVA -> a GPA), got spa",
            )


def load_scenario(path: str) -> Scenario:
    """Read, parse and check a scenario file; errors name the file, line and field."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(path, 0, "file", str(e)) from None
    return parse_scenario(text, path)


# ==========================================================================
# JSON views of the model's objects
# ==========================================================================
def _enum_name(enum: Any, v: int) -> Optional[str]:
    try:
        return str(enum(v).name)
    except ValueError:
        return None


def fault_json(f: Optional[FaultRecord]) -> Optional[Dict[str, Any]]:
    """A fault record as a JSON object (integers, with the cause's and TTYP's names)."""
    if f is None:
        return None
    try:
        desc: Optional[str] = Cause(f.cause).description
    except ValueError:
        desc = None
    return {
        "cause": f.cause,
        "cause_name": _enum_name(Cause, f.cause),
        "description": desc,
        "ttyp": f.ttyp,
        "ttyp_name": _enum_name(Ttyp, f.ttyp),
        "iotval": f.iotval,
        "iotval2": f.iotval2,
        "device_id": f.device_id,
        "process_id": f.process_id,
        "pv": f.pv,
        "priv": f.priv,
    }


def request_json(req: Request) -> Dict[str, Any]:
    """A request as a JSON object."""
    out: Dict[str, Any] = {}
    for fd in fields(req):
        v = getattr(req, fd.name)
        if fd.name == "access":
            v = Access(v).name.lower()
        elif fd.name == "kind":
            v = RequestKind(v).name.lower()
        out[fd.name] = v
    return out


def response_json(rsp: Response) -> Dict[str, Any]:
    """A response as a JSON object, with the full fault record."""
    out: Dict[str, Any] = {}
    for fd in fields(rsp):
        v = getattr(rsp, fd.name)
        if fd.name == "status":
            v = Status(v).name
        elif fd.name == "fault":
            v = fault_json(v)
        out[fd.name] = v
    return out


def _record_json(obj: Any) -> Dict[str, Any]:
    return {fd.name: getattr(obj, fd.name) for fd in fields(obj)}


# ==========================================================================
# running
# ==========================================================================
@dataclass
class Result:
    """The outcome of one action that checks something."""

    action: str
    line: int
    ok: bool
    #: what happened, in words (shown on PASS and FAIL lines)
    summary: str
    #: "FIELD: expected X, got Y" for each expectation that failed
    problems: List[str] = field(default_factory=list)
    #: the same as JSON: request, response, fault records, ...
    data: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """A JSON object."""
        return {
            "action": self.action,
            "line": self.line,
            "ok": self.ok,
            "summary": self.summary,
            "problems": self.problems,
            **self.data,
        }


@dataclass
class Report:
    """Every result of a run."""

    file: str
    results: List[Result] = field(default_factory=list)
    #: set when the run stopped early (the driver could not go on)
    stopped: Optional[str] = None

    @property
    def passed(self) -> int:
        """How many checks held."""
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        """How many checks failed."""
        return len(self.results) - self.passed

    def as_dict(self) -> Dict[str, Any]:
        """A JSON object."""
        return {
            "file": self.file,
            "passed": self.passed,
            "failed": self.failed,
            "stopped": self.stopped,
            "results": [r.as_dict() for r in self.results],
        }


def _fault_text(f: Optional[FaultRecord]) -> str:
    if f is None:
        return "no fault"
    try:
        desc = Cause(f.cause).description
    except ValueError:
        desc = "?"
    ttyp = _enum_name(Ttyp, f.ttyp) or str(f.ttyp)
    pid = f", PASID {f.process_id:#x}" if f.pv else ""
    return (
        f"fault {f.cause} {desc} (TTYP {f.ttyp} {ttyp}, iotval {f.iotval:#x}, "
        f"iotval2 {f.iotval2:#x}, device {f.device_id:#x}{pid}{', priv' if f.priv else ''})"
    )


def _match(
    name: str, types: Mapping[str, Type], want: Mapping[str, Any], got: Any, problems: List[str]
) -> None:
    """Compare the fields of ``want`` with the attributes of ``got``."""
    for k, v in want.items():
        actual = getattr(got, k)
        if v != actual:
            t = types[k]
            problems.append(f"{name}{k}: expected {t.show(v)}, got {t.show(actual)}")


class Runner:
    """Runs a :class:`Scenario`: builds the IOMMU and its host, then each action in order.

    ``on_build(iommu)`` is called once the IOMMU exists, before the host
    programs it (to attach observers, for example).
    """

    def __init__(self, sc: Scenario, on_build: Optional[Callable[[Iommu], None]] = None) -> None:
        self.sc = sc
        cfg = sc.config
        host = cfg.get("host", {})
        caps_kw = dict(cfg.get("capabilities", {}))
        params_kw = dict(cfg.get("params", {}))
        if "revision" in cfg:
            if params_kw.get("gipc_revision", cfg["revision"]) != cfg["revision"]:
                raise sc.error(None, ("params", "gipc_revision"), "differs from revision")
            params_kw["gipc_revision"] = cfg["revision"]
        big = bool(host.get("big_endian", False))
        if big:
            params_kw.setdefault("be_writable", True)
        try:
            caps = Capabilities.full(gipc=True).replace(**caps_kw)
        except ValueError as e:
            raise sc.error(None, ("capabilities", _named(e, caps_kw)), str(e)) from None
        try:
            params = IommuParams(**params_kw)
        except ValueError as e:
            raise sc.error(None, ("params", _named(e, params_kw)), str(e)) from None
        self.iommu = Iommu(SparseMemory(), capabilities=caps, params=params)
        if on_build is not None:
            on_build(self.iommu)
        #: outbound ATS messages since the last [[check]]
        self.messages: List[Any] = []
        #: ITAGs sent to each manual device and not completed
        self.pending: Dict[int, Set[int]] = {}
        self.manual: Set[int] = set()
        self.iommu.on_ats_message = self._ats_message
        interrupts = {"none": None, "msi": InterruptConfig(), "wsi": InterruptConfig(wsi=True)}[
            host.get("interrupts", "none")
        ]
        try:
            self.hv = Hypervisor(
                self.iommu,
                s1_mode=host.get("s1_mode", SV39),
                g_mode=host.get("g_mode", SV39X4),
                ddt_levels=host.get("ddt_levels", 3),
                interrupts=interrupts,
                big_endian=big,
            )
        except (DriverError, HypervisorError) as e:
            raise sc.error(None, ("host",), f"the host cannot bring the IOMMU up: {e}") from None
        for j, r in enumerate(host.get("ram", [])):
            try:
                self.hv.host_domain.add_ram(r["spa"], r["size"])
            except HypervisorError as e:
                raise sc.error(None, ("host", "ram", f"[{j}]"), str(e)) from None
        self.driver = self.hv.driver
        self.mem = self.iommu.mem
        self.vms: Dict[str, Vm] = {}
        #: what software last told the IOMMU each DC is (the "old DC" of dc_changed)
        self.dc_shadow: Dict[int, DeviceContext] = {}
        #: (device, pasid) -> (PSCID, GSCID) of the last address space bound there
        self.spaces: Dict[Tuple[int, Optional[int]], Tuple[int, Optional[int]]] = {}
        #: MSI page tables and targets, per device
        self.msi: Dict[int, MsiPageTable] = {}
        self.msi_targets: Dict[int, str] = {}
        self.report = Report(sc.path)
        self.pos = 0

    # -- outbound messages ----------------------------------------------------
    def _ats_message(self, msg: Any) -> None:
        self.messages.append(msg)
        if isinstance(msg, InvalidationRequest):
            did = ((msg.segment or 0) << 16) | msg.device_id
            if did in self.manual:
                self.pending.setdefault(did, set()).add(msg.itag)
            else:  # a well-behaved device answers at once
                self.iommu.invalidation_completion(did, 1 << msg.itag)

    # -- running ----------------------------------------------------------------
    def run(self, until_request: Optional[int] = None) -> Report:
        """Run every action (or those before request ``until_request``)."""
        seen = 0
        while self.pos < len(self.sc.actions):
            act = self.sc.actions[self.pos]
            if act.kind == "request":
                if seen == until_request:
                    return self.report
                seen += 1
            self.pos += 1
            try:
                getattr(self, "do_" + act.kind)(act)
            except (DriverError, MemoryAccessError) as e:
                if isinstance(e, DriverError):
                    stop = f"the driver stopped: {e}"
                else:  # an injected fault hits software's accesses too
                    stop = f"the host's own memory access failed: {e}"
                self.report.stopped = f"{act.name} (line {act.line}): {stop}"
                self.report.results.append(Result(act.name, act.line, False, stop, [stop]))
                return self.report
            except HypervisorError as e:
                raise self.sc.error(act, (), str(e)) from None
            except (ValueError, TypeError) as e:
                if isinstance(e, ScenarioError):
                    raise
                raise self.sc.error(act, (), f"the model refused it: {e}") from None
        return self.report

    def request_of(self, act: Action) -> Request:
        """The :class:`Request` of a ``[[request]]`` action."""
        v = act.values
        kw = {f.arg: v.get(k, f.default) for k, f in REQUEST_FIELDS.items()}
        if isinstance(kw["addr"], GpaOf):
            kw["addr"] = self._addr_of(act, kw["addr"]._asdict(), ("addr", "gpa"))
        if kw["device_id"] is None:
            first = self.sc.first_device
            if first is None:
                raise self.sc.error(act, ("device",), "missing, and no [[device]] to default to")
            kw["device_id"] = first
        return Request(**kw)

    def _vm(self, name: str) -> Vm:
        return self.vms[name]

    def _pass(self, act: Action, summary: str, problems: List[str], **data: Any) -> None:
        self.report.results.append(
            Result(act.name, act.line, not problems, summary, problems, data)
        )

    # -- where an address lands ------------------------------------------------
    def lands(self, spa: int) -> Optional[Tuple[str, int]]:
        """The VM and GPA of guest RAM at ``spa``, or None."""
        for name, vm in self.vms.items():
            for g, size, _, base in vm.ram:
                if base <= spa < base + size:
                    return name, g + spa - base
        return None

    def where(self, rsp: Response) -> str:
        """Where a successful response's address lands, in words."""
        if rsp.is_msi:
            if rsp.is_mrif:
                return f"MRIF at {rsp.mrif_addr:#x} (notice {rsp.notice_addr:#x}, NID {rsp.nid})"
            return f"interrupt file at {rsp.addr:#x}"
        owner = self.lands(rsp.addr)
        if owner is None:
            if self.hv.host_domain.is_ram(rsp.addr, 1):
                return f"SPA {rsp.addr:#x} = host RAM"
            return f"SPA {rsp.addr:#x} (no VM's RAM)"
        return f"SPA {rsp.addr:#x} = VM {owner[0]} GPA {owner[1]:#x}"

    def describe(self, req: Request, rsp: Response) -> str:
        """A response in words: status, address and where it lands, or the fault."""
        status = Status(rsp.status).name
        if req.kind == RequestKind.ATS_TRANSLATION and rsp.status == Status.SUCCESS:
            perms = "".join(c for c, on in (("r", rsp.r), ("w", rsp.w), ("x", rsp.x)) if on)
            text = f"{status} completion addr {rsp.addr:#x} size {rsp.size:#x} perms {perms or '-'}"
            if rsp.fault is not None:
                text += f", {_fault_text(rsp.fault)}, reported={rsp.reported}"
            return text
        if rsp.fault is not None:
            rep = "reported" if rsp.reported else "not reported"
            return f"{status}, {_fault_text(rsp.fault)}, {rep}"
        return f"{status} {self.where(rsp)}"

    # -- actions: the scene -----------------------------------------------------
    def do_vm(self, act: Action) -> None:
        v = act.values
        vm = self.hv.create_vm(v.get("gscid"), v.get("g_mode"))
        for j, r in enumerate(v.get("ram", [])):
            try:
                vm.map_guest_ram(r["gpa"], r["size"], r.get("page_size", 4096))
            except HypervisorError as e:
                raise self.sc.error(act, ("ram", f"[{j}]"), str(e)) from None
        self.vms[v["name"]] = vm

    def do_device(self, act: Action) -> None:
        v = act.values
        did = v["id"]
        tc = 0
        for key, fname in (("t2gpa", "T2GPA"), ("dtf", "DTF"), ("sade", "SADE"), ("gade", "GADE")):
            if v.get(key):
                tc |= F.DC_TC.fields[fname].mask
        ats, pri = v.get("ats", False), v.get("pri", False)
        if v.get("gipc"):
            self.hv.attach_gipc(did, ats=ats, pri=pri, tc=tc)
        elif v.get("host"):
            self.hv.attach_host(
                did, v.get("pasids", True), ats, pri, v.get("first_stage", True), tc
            )
        else:
            msi = None
            if "msi" in v:
                msi = self._msi_table(act, did, v["msi"])
            self.hv.attach(
                did,
                self._vm(v["vm"]),
                pasids=v.get("pasids", True),
                ats=ats,
                pri=pri,
                first_stage=v.get("first_stage", True),
                tc=tc,
                msi=msi,
            )
        if v.get("pasids") is False:
            sp = self.hv.space(did, None)
            self.spaces[(did, None)] = (sp.pscid, sp.gscid)
        if v.get("ats_completion") == "manual":
            self.manual.add(did)
        else:
            self.manual.discard(did)
        self.dc_shadow[did] = self.driver.read_dc(did)

    def _msi_table(self, act: Action, did: int, m: Dict[str, Any]) -> Tuple[int, int, int]:
        entries = m.get("entries", 256)
        table = MsiPageTable(self.mem, self.hv.alloc, entries, big=self.driver.be)
        for j, p in enumerate(m.get("ptes", [])):
            i = p["index"]
            if i >= entries:
                raise self.sc.error(
                    act, ("msi", "ptes", f"[{j}]", "index"), f"beyond the {entries} entries"
                )
            if p["mode"] == "flat":
                table.set_flat(i, p["spa"])
            elif p["mode"] == "mrif":
                table.set_mrif(i, p["mrif"], p["notice"], p["nid"])
            else:
                table.set_raw(i, p["pte0"], p.get("pte1", 0))
        self.msi[did] = table
        return table.msiptp(), m.get("addr_mask", 0), m["addr_pattern"]

    def do_detach(self, act: Action) -> None:
        self.hv.detach(act.values["device"])
        self.dc_shadow.pop(act.values["device"], None)

    def do_bind(self, act: Action) -> None:
        v = act.values
        vm = self._vm(v["vm"]) if "vm" in v else None
        sp = self.hv.bind_pasid(v["device"], v["pasid"], vm)
        self.spaces[(v["device"], v["pasid"])] = (sp.pscid, sp.gscid)

    def do_unbind(self, act: Action) -> None:
        v = act.values
        self.hv.unbind_pasid(v["device"], v["pasid"], v.get("invalidate", True))

    def do_rebind(self, act: Action) -> None:
        v = act.values
        sp = self.hv.rebind_pasid(v["device"], v["pasid"], self._vm(v["vm"]))
        self.spaces[(v["device"], v["pasid"])] = (sp.pscid, sp.gscid)

    def do_map(self, act: Action) -> None:
        v = act.values
        target = v["gpa"] if "gpa" in v else v["spa"]  # the host's GPAs are SPAs
        self.hv.map(
            v["device"], v.get("pasid"), v["iova"], target, v["size"], v.get("perms", R | W)
        )

    def do_unmap(self, act: Action) -> None:
        v = act.values
        self.hv.unmap(
            v["device"],
            v.get("pasid"),
            v["iova"],
            v["size"],
            v.get("invalidate", True),
        )

    def do_unmap_ram(self, act: Action) -> None:
        v = act.values
        self._vm(v["vm"]).unmap_guest_ram(v["gpa"], v.get("invalidate", True))

    def do_dc(self, act: Action) -> None:
        v = act.values
        did = v["device"]
        if did not in self.hv.devices:
            raise self.sc.error(act, ("device",), f"device {did:#x} is not attached")
        ddt = self.hv.ddt
        tc = self.driver.read_dc(did).tc
        for name, value in v["tc"].items():
            tc = F.DC_TC.fields[name].put(tc, value)
        ddt.space.write_u64(ddt.dc_addr(did), tc, ddt.big)
        if v.get("invalidate", True):
            self._dc_changed(did)

    def _dc_changed(self, did: int) -> None:
        old = self.dc_shadow.get(did) or self.driver.read_dc(did)
        dev = self.hv.devices.get(did)
        gscids = [s.vm.gscid for s in dev.spaces.values()] if dev is not None else []
        self.driver.dc_changed(did, old, gscids, self.hv.gipc_tc)
        self.dc_shadow[did] = self.driver.read_dc(did)

    def _addr_of(self, act: Action, v: Mapping[str, Any], path: Tuple[str, ...] = ("gpa",)) -> int:
        if "spa" in v:
            return int(v["spa"])
        try:
            return self._vm(v["vm"]).spa(v["gpa"])
        except ValueError:
            raise self.sc.error(act, path, f"GPA {v['gpa']:#x} is not VM {v['vm']}'s RAM") from None

    def _bytes_of(self, v: Mapping[str, Any]) -> bytes:
        order: Literal["big", "little"] = v.get("order", "big" if self.driver.be else "little")
        if "u64" in v:
            return int(v["u64"]).to_bytes(8, order)
        if "u32" in v:
            return int(v["u32"]).to_bytes(4, order)
        return str(v["text"]).encode()

    def do_write(self, act: Action) -> None:
        v = act.values
        self.mem.write(self._addr_of(act, v), self._bytes_of(v))

    # -- actions: commands and recipes -------------------------------------------
    def _pscid(self, act: Action, path: Tuple[str, ...], did: int, pasid: Optional[int]) -> int:
        got = self.spaces.get((did, pasid))
        if got is None:
            raise self.sc.error(act, path, f"device {did:#x} PASID {pasid} has no address space")
        return got[0]

    def _gscid(self, v: Mapping[str, Any]) -> Optional[int]:
        if "vm" in v:
            return self._vm(v["vm"]).gscid
        return v.get("gscid")

    def command_of(self, act: Action) -> Command:
        """The command of a ``[[command]]`` action."""
        v = act.values
        op = v["op"]
        if op == "iotinval.vma":
            pscid = v.get("pscid")
            if "space" in v:
                sp = v["space"]
                pscid = self._pscid(act, ("space",), sp["device"], sp.get("pasid"))
            addr = v.get("addr")
            s = "size" in v
            if s:
                size = v["size"]
                if size < 8192 or size & (size - 1) or (addr or 0) % size:
                    raise self.sc.error(
                        act, ("size",), "expected a power of two >= 8 KiB, addr aligned to it"
                    )
                addr = (addr or 0) | ((size >> 1) - 1) & ~0xFFF
            return iotinval_vma(self._gscid(v), pscid, addr, s)
        if op == "iotinval.gvma":
            return iotinval_gvma(self._gscid(v), v.get("addr"))
        if op == "iofence.c":
            if v.get("addr", 0) & 3:
                raise self.sc.error(act, ("addr",), "expected a 4-byte-aligned address")
            return iofence_c(
                v.get("addr"),
                v.get("data", 0),
                v.get("pr", False),
                v.get("pw", False),
                v.get("wsi", False),
            )
        if op == "iodir.inval_ddt":
            return iodir_inval_ddt(v.get("device"))
        if op == "iodir.inval_pdt":
            return iodir_inval_pdt(v["device"], v["pasid"])
        if op == "ats.inval":
            try:
                return ats_inval(
                    v["device"],
                    v.get("pasid"),
                    v.get("addr", 0),
                    v.get("size"),
                    v.get("global", False),
                )
            except ValueError as e:
                raise self.sc.error(act, ("size",), str(e)) from None
        if op == "ats.prgr":
            return ats_prgr(v["device"], v["prg_index"], v.get("code", 0), v.get("pasid"))
        return Command(v["d0"], v.get("d1", 0))

    def do_command(self, act: Action) -> None:
        v = act.values
        cmd = self.command_of(act)
        if not v.get("fence", True):
            self.driver.submit(cmd)
            return
        outcome = "completed"
        try:
            if not self.driver.sync(cmd):
                outcome = "waiting"
        except DriverError as e:
            csr = e.cqcsr or 0
            if csr & F.CQCSR.cmd_ill.mask:
                outcome = "illegal"
            elif csr & F.CQCSR.cmd_to.mask:
                outcome = "timeout"
            elif csr & F.CQCSR.cqmf.mask:  # pragma: no cover - see below
                # the IOMMU cannot read a queue software can write: needs a memory port
                # that fails only the IOMMU's reads (SparseMemory fails both)
                outcome = "memory_fault"
            else:  # pragma: no cover - sync raises only for these three
                raise
            self.driver.clear_cq_errors()
        want = v.get("expect", "completed")
        problems = [] if want == outcome else [f"outcome: expected {want}, got {outcome}"]
        self._pass(act, f"{cmd!r}: {outcome}", problems, command=[cmd.d0, cmd.d1], outcome=outcome)

    def do_recipe(self, act: Action) -> None:
        v = act.values
        d = self.driver
        name = v["name"]
        if name == "dc_changed":
            self._dc_changed(v["device"])
        elif name == "ddt_nonleaf_changed":
            d.ddt_nonleaf_changed()
        elif name == "pc_changed":
            did, pasid = v["device"], v["pasid"]
            pscid = self._pscid(act, ("pasid",), did, pasid)
            d.pc_changed(did, pasid, pscid, self.spaces[(did, pasid)][1])
        elif name == "pdt_nonleaf_changed":
            d.pdt_nonleaf_changed(v["device"])
        elif name == "first_stage_changed":
            did, pasid = v["device"], v.get("pasid")
            pscid = self._pscid(act, ("pasid",), did, pasid)
            gscid = self.spaces[(did, pasid)][1]
            d.first_stage_changed(gscid, pscid, v.get("addr"))
        elif name == "g_stage_changed":
            vm = self._vm(v["vm"])
            d.g_stage_changed(vm.gscid, v.get("gpa"), v.get("devices", ()))
        elif name == "msi_pte_changed":
            d.msi_pte_changed(self._vm(v["vm"]).gscid, v.get("addr"))
        else:  # ats_invalidate
            try:
                d.ats_invalidate(
                    v["device"],
                    v.get("pasid"),
                    v.get("addr", 0),
                    v.get("size"),
                    v.get("global", False),
                )
            except ValueError as e:
                raise self.sc.error(act, ("size",), str(e)) from None

    # -- actions: registers, faults, time ---------------------------------------
    def do_mmio(self, act: Action) -> None:
        v = act.values
        offset = v["register"]
        size, layout = 8, None
        for _name, (off, sz, lay) in REGISTERS.items():
            if off == offset:
                size, layout = sz, lay
        size = v.get("size", size)
        if offset % size:
            raise self.sc.error(act, ("register",), f"not aligned to the {size}-byte access")
        if "set" in v:
            v = dict(v, value=self._reg_fields(act, "set", layout, v["set"], 0))
        if "value" in v:
            if v["value"] >> (8 * size):
                raise self.sc.error(act, ("value",), f"does not fit the {size}-byte access")
            self.iommu.mmio_write(offset, v["value"], size)
        if "expect" not in v and "fields" not in v:
            return
        got = self.iommu.mmio_read(offset, size)
        problems = []
        if "expect" in v and got != v["expect"]:
            problems.append(f"value: expected {v['expect']:#x}, got {got:#x}")
        for name, want in v.get("fields", {}).items():
            fd = self._reg_field(act, "fields", layout, name, want)
            if fd.get(got) != want:
                problems.append(f"{name}: expected {want:#x}, got {fd.get(got):#x}")
        self._pass(act, f"register {offset:#x} = {got:#x}", problems, value=got)

    def _reg_field(
        self, act: Action, key: str, layout: Optional[F.Layout], name: str, value: int
    ) -> F.Field:
        fd = layout.fields.get(name) if layout is not None else None
        if fd is None:
            known = ", ".join(layout.fields) if layout is not None else "none"
            raise self.sc.error(
                act, (key, name), f"unknown field of this register (fields: {known})"
            )
        if value > fd.max:
            raise self.sc.error(act, (key, name), f"does not fit in {fd.width} bit(s)")
        return fd

    def _reg_fields(
        self, act: Action, key: str, layout: Optional[F.Layout], values: Dict[str, int], v: int
    ) -> int:
        for name, x in values.items():
            v = self._reg_field(act, key, layout, name, x).put(v, x)
        return v

    def do_inject(self, act: Action) -> None:
        v = act.values
        fault = v["fault"]
        if fault == "clear":
            self.mem.clear_injections()
            return
        if fault == "datapath":
            self.iommu.inject_datapath_error(v.get("count", 1))
            return
        addr, size = self._target(act, v)
        self.mem.inject(addr, v.get("size", size), fault)

    def _target(self, act: Action, v: Mapping[str, Any]) -> Tuple[int, int]:
        """The SPA range ``[[inject]]`` names: an address or a structure."""
        st = v.get("structure")
        if st is None:
            if "spa" not in v and "gpa" not in v:
                raise self.sc.error(act, ("structure",), "missing; give structure, spa or vm+gpa")
            if "gpa" in v and "vm" not in v:
                raise self.sc.error(act, ("vm",), "missing; gpa needs vm")
            return self._addr_of(act, v), 8
        d = self.driver
        if st in ("cq", "fq", "pq"):
            base, n, es = {
                "cq": (d.cq_base, d.cq_entries, 16),
                "fq": (d.fq_base, d.fq_entries, F.FAULT_RECORD_SIZE),
                "pq": (d.pq_base, d.pq_entries, 16),
            }[st]
            return base, n * es
        if st == "g_pte":
            if "vm" not in v or "gpa" not in v:
                raise self.sc.error(act, ("vm",), "missing; g_pte needs vm and gpa")
            vm = self._vm(v["vm"])
            for g, s, ps, _ in vm.ram:
                if g <= v["gpa"] < g + s:
                    level = {4096: 0, 1 << 21: 1, 1 << 30: 2}[ps]
                    return vm.gstage.pte_addr(v["gpa"], level), 8
            raise self.sc.error(act, ("gpa",), f"GPA {v['gpa']:#x} is not VM {v['vm']}'s RAM")
        if "device" not in v:
            raise self.sc.error(act, ("device",), f"missing; {st} needs device")
        did = v["device"]
        dev = self.hv.devices.get(did)
        if dev is None:
            raise self.sc.error(act, ("device",), f"device {did:#x} is not attached")
        if st == "dc":
            return self.hv.ddt.dc_addr(did), 64 if self.hv.ddt.msi_flat else 32
        if st == "msi_pte":
            table = self.msi.get(did)
            if table is None:
                raise self.sc.error(act, ("device",), "the device has no MSI page table")
            return table.root + 16 * v.get("index", 0), 16
        if st == "pc":
            if dev.pdt is None or "pasid" not in v:
                raise self.sc.error(act, ("pasid",), "missing, or the device has no PDT")
            pdt = dev.pdt
            return pdt.space.to_spa(pdt.pc_addr(v["pasid"])), pdt.pc_size
        # pte: the first-stage leaf of an IOVA
        sp = dev.spaces.get(v.get("pasid"))
        if sp is None or "iova" not in v:
            raise self.sc.error(act, ("iova",), "missing, or no address space there")
        for va, (sz, _, _) in sp.mappings.items():
            if va <= v["iova"] < va + sz:
                level = {4096: 0, 1 << 21: 1, 1 << 30: 2}[sz]
                return sp.table.space.to_spa(sp.table.pte_addr(va, level)), 8
        raise self.sc.error(act, ("iova",), f"IOVA {v['iova']:#x} is not mapped")

    def do_tick(self, act: Action) -> None:
        self.iommu.tick(act.values["cycles"])

    def do_ats_completion(self, act: Action) -> None:
        v = act.values
        did = v["device"]
        itags = v.get("itags")
        if itags is None:
            itags = sorted(self.pending.get(did, ()))
        vector = 0
        for t in itags:
            vector |= 1 << t
            self.pending.get(did, set()).discard(t)
        self.iommu.invalidation_completion(did, vector, v.get("cc", 1))

    # -- actions: requests and checks -------------------------------------------
    def do_request(self, act: Action) -> None:
        req = self.request_of(act)
        rsp = self.iommu.translate(req)
        problems = self.check_response(act, req, rsp)
        data: Dict[str, Any] = {"request": request_json(req), "response": response_json(rsp)}
        if rsp.fault is None and rsp.status == Status.SUCCESS:
            owner = self.lands(rsp.addr) if not rsp.is_msi else None
            data["lands"] = {"vm": owner[0], "gpa": owner[1]} if owner else None
        self._pass(act, self.describe(req, rsp), problems, **data)

    def check_response(self, act: Action, req: Request, rsp: Response) -> List[str]:
        """The failed expectations of a request's response."""
        exp: Dict[str, Any] = act.values.get("expect", {})
        problems: List[str] = []
        fault = exp.get("fault")
        if "cause" in exp:
            got = rsp.fault.cause if rsp.fault is not None else None
            if got != exp["cause"]:
                actual = CAUSE.show(got) if got is not None else "no fault"
                problems.append(f"cause: expected {CAUSE.show(exp['cause'])}, got {actual}")
        implicit = "cause" not in exp and fault is None and exp.get("status", 0) == 0
        if fault is False or (implicit and rsp.fault is not None):
            if rsp.fault is not None:
                problems.append(f"fault: expected none, got {_fault_text(rsp.fault)}")
        elif isinstance(fault, dict):
            if rsp.fault is None:
                problems.append("fault: expected a fault record, got no fault")
            else:
                _match("fault.", FAULT_FIELDS, fault, rsp.fault, problems)
        for k, (t, attr) in RESPONSE_FIELDS.items():
            if k in exp:
                actual = getattr(rsp, attr)
                if actual != exp[k] or isinstance(actual, bool) != isinstance(exp[k], bool):
                    problems.append(f"{k}: expected {t.show(exp[k])}, got {t.show(actual)}")
        if "spa" in exp and (rsp.fault is not None or rsp.addr != exp["spa"]):
            got_where = self.where(rsp) if rsp.fault is None else "a fault"
            problems.append(f"spa: expected {exp['spa']:#x}, got {got_where}")
        if "vm" in exp:
            gpa = exp.get("gpa", req.addr)
            try:
                want: Optional[int] = self._vm(exp["vm"]).spa(gpa)
            except ValueError:
                want = None
            if rsp.fault is not None or rsp.addr != want:
                got_where = self.where(rsp) if rsp.fault is None else "a fault"
                problems.append(
                    f"lands: expected VM {exp['vm']} GPA {gpa:#x}"
                    + (f" (SPA {want:#x})" if want is not None else " (not its RAM)")
                    + f", got {got_where}"
                )
        return problems

    def do_page_request(self, act: Action) -> None:
        v = act.values
        did = v.get("device", self.sc.first_device)
        if did is None:
            raise self.sc.error(act, ("device",), "missing, and no [[device]] to default to")
        msg = PageRequest(
            device_id=did,
            addr=v["addr"],
            prg_index=v.get("prg_index", 0),
            last=v.get("last", False),
            read=v.get("read", True),
            write=v.get("write", False),
            process_id=v.get("pasid"),
            priv=v.get("priv", False),
            exec_req=v.get("exec", False),
        )
        rsp = self.iommu.page_request(msg)
        exp = v.get("expect", {})
        problems: List[str] = []
        if "queued" in exp and exp["queued"] != (rsp is None):
            got = "queued" if rsp is None else f"answered {rsp!r}"
            problems.append(f"queued: expected {str(exp['queued']).lower()}, got {got}")
        want = exp.get("response")
        if want is False and rsp is not None:
            problems.append(f"response: expected none, got {rsp!r}")
        elif isinstance(want, dict):
            if rsp is None:
                problems.append("response: expected a response, got none")
            else:
                types = {
                    "response_code": PRG_CODE,
                    "pasid": PASID,
                    "prg_index": bits(9),
                    "device_id": bits(16),
                }
                _match("response.", types, want, rsp, problems)
        summary = "queued (no immediate response)" if rsp is None else f"answered {rsp!r}"
        self._pass(
            act,
            summary,
            problems,
            page_request=_record_json(msg),
            response=_record_json(rsp) if rsp is not None else None,
        )

    def do_check(self, act: Action) -> None:
        v = act.values
        problems: List[str] = []
        data: Dict[str, Any] = {}
        said = []
        if "fq" in v:
            faults = self.driver.faults()
            data["fq"] = [fault_json(f) for f in faults]
            self._records("fq", FAULT_FIELDS, v["fq"], faults, problems)
            said.append(f"{len(faults)} fault record(s)")
        if "pq" in v:
            got = self.driver.page_requests()
            data["pq"] = [_record_json(p) for p in got]
            self._records("pq", PAGE_REQUEST_FIELDS, v["pq"], got, problems)
            said.append(f"{len(got)} page request(s)")
        if "messages" in v:
            got = self.messages
            self.messages = []
            data["messages"] = [{"type": _message_type(m), **_record_json(m)} for m in got]
            want = v["messages"]
            if len(want) != len(got):
                problems.append(
                    f"messages: expected {len(want)}, got {len(got)}: "
                    + ("; ".join(repr(m) for m in got) or "none")
                )
            for i, (w, m) in enumerate(zip(want, got, strict=False)):
                if w["type"] != _message_type(m):
                    problems.append(f"messages[{i}].type: expected {w['type']}, got {m!r}")
                    continue
                fields_ = {k: x for k, x in w.items() if k != "type"}
                _match(f"messages[{i}].", MESSAGE_FIELDS[w["type"]], fields_, m, problems)
            said.append(f"{len(got)} message(s)")
        for i, mcheck in enumerate(v.get("memory", [])):
            want_b = self._bytes_of(mcheck)
            addr = self._addr_of(act, mcheck)
            got_b = bytes(self.mem.read(addr, len(want_b)))
            if got_b != want_b:
                problems.append(
                    f"memory[{i}]: expected {want_b.hex()} at {addr:#x}, got {got_b.hex()}"
                )
            said.append(f"memory at {addr:#x}")
        self._pass(act, ", ".join(said) or "nothing checked", problems, **data)

    def _records(
        self,
        name: str,
        types: Mapping[str, Type],
        want: List[Dict[str, Any]],
        got: Sequence[Any],
        problems: List[str],
    ) -> None:
        if len(want) != len(got):
            listed = "; ".join(
                _fault_text(r) if isinstance(r, FaultRecord) else repr(r) for r in got
            )
            problems.append(
                f"{name}: expected {len(want)} record(s), got {len(got)}: {listed or 'none'}"
            )
        for i, (w, r) in enumerate(zip(want, got, strict=False)):
            _match(f"{name}[{i}].", types, w, r, problems)


def _message_type(m: Any) -> str:
    for k, t in _MESSAGE_TYPES.items():
        if isinstance(m, t):
            return k
    return type(m).__name__  # pragma: no cover - the IOMMU sends only these two


def _named(err: ValueError, given: Mapping[str, Any]) -> str:
    """The field a Capabilities / IommuParams error names (else the first one given)."""
    m = re.search(r"(?:Capabilities|IommuParams)\.(\w+)", str(err))
    if m and m.group(1) in given:
        return m.group(1)
    for k in given:
        if k.lower() in str(err).lower():
            return k
    return next(iter(given), "")  # pragma: no cover - every message names a field


def run_scenario(path: str, on_build: Optional[Callable[[Iommu], None]] = None) -> Report:
    """Load, check and run a scenario file."""
    return Runner(load_scenario(path), on_build).run()
