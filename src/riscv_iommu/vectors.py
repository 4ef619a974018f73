"""Replayable test vectors: a versioned JSON format, the runner that executes it, and replay.

A vector file (``docs/vectors.md``) describes one run of an IOMMU: the
``capabilities`` register, the implementation parameters and the reset
value of ``fctl``; the memory image before the first step; an ordered list
of steps (MMIO writes and reads, memory writes, device requests, command
batches, page requests, ATS invalidation completions, ticks, fault
injection), each with the outputs it must produce; and digests of the
queues' memory at the end.  Nothing in it needs Python to be replayed.

* :class:`Runner` executes steps on the model and returns their outputs in
  the file's JSON form.
* :class:`Recorder` builds a vector file while software (the host toolkit)
  drives the model: every MMIO access, memory write after the build phase
  and message becomes a step whose expected outputs come from the model.
* :func:`load` / :func:`validate` check a file (:class:`VectorError` names
  the JSON path of a malformed field); :func:`replay` re-checks a file
  against the model and returns the field-by-field differences;
  :func:`dumps` writes the canonical text (same document, same bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import __version__
from . import formats as F
from .capabilities import Capabilities, IommuParams
from .iommu import Iommu
from .memory import MemoryAccessError, MemoryFault, SparseMemory
from .registers import REG
from .types import (
    Access,
    FaultRecord,
    InvalidationRequest,
    PageRequest,
    PageRequestGroupResponse,
    Request,
    RequestKind,
    Response,
    Status,
)

__all__ = [
    "FORMAT",
    "VERSION",
    "OPS",
    "VectorError",
    "Runner",
    "Recorder",
    "ReplayResult",
    "load",
    "loads",
    "validate",
    "replay",
    "dumps",
    "memory_image",
]

#: The ``format`` field of every vector file.
FORMAT = "riscv-iommu-vectors"
#: The version of the format this module writes and reads.
VERSION = 1

#: Hook called with the model right after a :class:`Runner` builds it (attach observers here).
ModelHook = Callable[[Iommu], None]

_U64 = (1 << 64) - 1
_HEX_RE = re.compile(r"0x[0-9a-f]+\Z")
_BYTES_RE = re.compile(r"(?:[0-9a-f]{2})+\Z")

_ACCESS_NAMES = {Access.READ: "read", Access.WRITE: "write", Access.EXECUTE: "execute"}
_ACCESS_BY_NAME = {v: k for k, v in _ACCESS_NAMES.items()}
_KIND_NAMES = {
    RequestKind.UNTRANSLATED: "untranslated",
    RequestKind.TRANSLATED: "translated",
    RequestKind.ATS_TRANSLATION: "ats",
}
_KIND_BY_NAME = {v: k for k, v in _KIND_NAMES.items()}
_STATUS_NAMES = {
    Status.SUCCESS: "success",
    Status.UNSUPPORTED_REQUEST: "unsupported_request",
    Status.COMPLETER_ABORT: "completer_abort",
}
_FAULT_NAMES = {
    MemoryFault.ACCESS_FAULT: "access-fault",
    MemoryFault.DATA_CORRUPTION: "data-corruption",
}
_FAULT_BY_NAME = {v: k for k, v in _FAULT_NAMES.items()}

#: Registers read at the end of a run (name -> (offset, size)).
FINAL_REGISTERS: Dict[str, Tuple[int, int]] = {
    "fctl": (REG.FCTL, 4),
    "ddtp": (REG.DDTP, 8),
    "cqb": (REG.CQB, 8),
    "cqh": (REG.CQH, 4),
    "cqt": (REG.CQT, 4),
    "fqb": (REG.FQB, 8),
    "fqh": (REG.FQH, 4),
    "fqt": (REG.FQT, 4),
    "pqb": (REG.PQB, 8),
    "pqh": (REG.PQH, 4),
    "pqt": (REG.PQT, 4),
    "cqcsr": (REG.CQCSR, 4),
    "fqcsr": (REG.FQCSR, 4),
    "pqcsr": (REG.PQCSR, 4),
    "ipsr": (REG.IPSR, 4),
}
#: queue -> (base register, entry size in bytes)
_QUEUES = {"cq": (REG.CQB, 16), "fq": (REG.FQB, F.FAULT_RECORD_SIZE), "pq": (REG.PQB, 16)}


class VectorError(ValueError):
    """A malformed vector file.  ``where`` names the place (JSON path, or file:line:column)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def _param_json(v: Any) -> Any:
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, Mapping):
        return {str(k): int(x) for k, x in sorted(v.items())}
    return int(v)


def hx(value: int) -> str:
    """The file's spelling of a 64-bit value: lower-case hex with ``0x``."""
    return f"{value:#x}"


# --------------------------------------------------------------------------
# model objects <-> JSON
# --------------------------------------------------------------------------
def _fault_json(rec: FaultRecord) -> Dict[str, Any]:
    return {
        "cause": int(rec.cause),
        "ttyp": int(rec.ttyp),
        "iotval": hx(rec.iotval),
        "iotval2": hx(rec.iotval2),
        "device_id": int(rec.device_id),
        "process_id": int(rec.process_id),
        "pv": bool(rec.pv),
        "priv": bool(rec.priv),
    }


def _response_json(rsp: Response) -> Dict[str, Any]:
    return {
        "status": _STATUS_NAMES[Status(rsp.status)],
        "addr": hx(rsp.addr),
        "fault": None if rsp.fault is None else _fault_json(rsp.fault),
        "reported": bool(rsp.reported),
        "r": bool(rsp.r),
        "w": bool(rsp.w),
        "x": bool(rsp.x),
        "u": bool(rsp.u),
        "g": bool(rsp.g),
        "priv": bool(rsp.priv),
        "n": bool(rsp.n),
        "pbmt": int(rsp.pbmt),
        "s": bool(rsp.s),
        "ama": int(rsp.ama),
        "size": hx(rsp.size),
        "is_msi": bool(rsp.is_msi),
        "is_mrif": bool(rsp.is_mrif),
        "mrif_addr": hx(rsp.mrif_addr),
        "notice_addr": hx(rsp.notice_addr),
        "nid": int(rsp.nid),
        "rcid": int(rsp.rcid),
        "mcid": int(rsp.mcid),
        "cxl_io": bool(rsp.cxl_io),
    }


def request_json(req: Request) -> Dict[str, Any]:
    """A :class:`Request` in the file's form."""
    return {
        "device_id": req.device_id,
        "addr": hx(req.addr),
        "access": _ACCESS_NAMES[Access(req.access)],
        "process_id": req.process_id,
        "priv": bool(req.priv),
        "kind": _KIND_NAMES[RequestKind(req.kind)],
        "length": req.length,
        "no_write": bool(req.no_write),
        "data": None if req.data is None else hx(req.data),
        "cxl": bool(req.cxl),
    }


def _request_obj(d: Mapping[str, Any]) -> Request:
    return Request(
        device_id=d["device_id"],
        addr=int(d["addr"], 16),
        access=_ACCESS_BY_NAME[d["access"]],
        process_id=d["process_id"],
        priv=d["priv"],
        kind=_KIND_BY_NAME[d["kind"]],
        length=d["length"],
        no_write=d["no_write"],
        data=None if d["data"] is None else int(d["data"], 16),
        cxl=d["cxl"],
    )


def page_request_json(msg: PageRequest) -> Dict[str, Any]:
    """A :class:`PageRequest` in the file's form."""
    return {
        "device_id": msg.device_id,
        "addr": hx(msg.addr),
        "prg_index": msg.prg_index,
        "last": bool(msg.last),
        "read": bool(msg.read),
        "write": bool(msg.write),
        "process_id": msg.process_id,
        "priv": bool(msg.priv),
        "exec_req": bool(msg.exec_req),
    }


def _page_request_obj(d: Mapping[str, Any]) -> PageRequest:
    return PageRequest(
        device_id=d["device_id"],
        addr=int(d["addr"], 16),
        prg_index=d["prg_index"],
        last=d["last"],
        read=d["read"],
        write=d["write"],
        process_id=d["process_id"],
        priv=d["priv"],
        exec_req=d["exec_req"],
    )


def _prgr_json(rsp: PageRequestGroupResponse) -> Dict[str, Any]:
    return {
        "type": "prg_response",
        "device_id": rsp.device_id,
        "prg_index": rsp.prg_index,
        "response_code": rsp.response_code,
        "pasid": rsp.pasid,
        "segment": rsp.segment,
    }


def _message_json(msg: Any) -> Dict[str, Any]:
    if isinstance(msg, InvalidationRequest):
        return {
            "type": "invalidation_request",
            "device_id": msg.device_id,
            "addr": hx(msg.addr),
            "s": msg.s,
            "global": msg.global_,
            "pasid": msg.pasid,
            "segment": msg.segment,
            "itag": msg.itag,
        }
    return _prgr_json(msg)


def _pq_json(d0: int, d1: int) -> Dict[str, Any]:
    R, P = F.PQ_RECORD0, F.PQ_PAYLOAD
    pv = bool(R.PV.get(d0))
    return {
        "device_id": R.DID.get(d0),
        "process_id": R.PID.get(d0),
        "pv": pv,
        "priv": bool(R.PRIV.get(d0)),
        "exec_req": bool(R.EXEC.get(d0)),
        "read": bool(P.R.get(d1)),
        "write": bool(P.W.get(d1)),
        "last": bool(P.L.get(d1)),
        "prg_index": P.PRGI.get(d1),
        "addr": hx(P.ADDR.get(d1) << 12),
    }


def _order(big: bool) -> Any:
    return "big" if big else "little"


# --------------------------------------------------------------------------
# the memory image
# --------------------------------------------------------------------------
_NONZERO = re.compile(rb"[^\x00]+")


def memory_image(mem: SparseMemory) -> List[Dict[str, str]]:
    """The non-zero contents of ``mem`` as runs of whole doublewords, in address order.

    Each run lies within one 4 KiB page; doublewords that are zero separate runs.
    """
    runs: List[Dict[str, str]] = []
    pages = mem._pages  # same package: read the pages without the port's injections
    for pn in sorted(pages):
        page = bytes(pages[pn])
        spans: List[List[int]] = []
        for m in _NONZERO.finditer(page):
            lo, hi = m.start() & ~7, (m.end() + 7) & ~7
            if spans and lo <= spans[-1][1]:
                spans[-1][1] = hi
            else:
                spans.append([lo, hi])
        base = pn << 12
        runs += [{"addr": hx(base + lo), "data": page[lo:hi].hex()} for lo, hi in spans]
    return runs


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__  # pragma: no cover - json never produces other types


def _obj(v: Any, where: str) -> Dict[str, Any]:
    if not isinstance(v, dict):
        raise VectorError(where, f"expected an object, got {_type_name(v)}")
    return v


def _arr(v: Any, where: str) -> List[Any]:
    if not isinstance(v, list):
        raise VectorError(where, f"expected an array, got {_type_name(v)}")
    return v


def _keys(
    d: Mapping[str, Any], where: str, required: Sequence[str], optional: Sequence[str] = ()
) -> None:
    for k in required:
        if k not in d:
            raise VectorError(f"{where}.{k}", "missing")
    for k in d:
        if k not in required and k not in optional:
            raise VectorError(f"{where}.{k}", "unknown field")


# value kinds of the schema tables
_HEX = "hex"  # "0x..." string, at most 64 bits
_INT = "int"  # non-negative JSON integer
_BOOL = "bool"
_BYTES = "bytes"  # even-length lower-case hex digits


def _check(v: Any, kind: Any, where: str) -> None:
    """Check one value against a kind: a kind name, ("int", max), ("enum", choices), ("null", kind),
    ("list", kind) or a dict schema."""
    if isinstance(kind, tuple):
        tag = kind[0]
        if tag == "null":
            if v is not None:
                _check(v, kind[1], where)
            return
        if tag == "enum":
            if v not in kind[1]:
                raise VectorError(where, f"expected one of {', '.join(map(repr, kind[1]))}")
            return
        if tag == "list":
            for i, item in enumerate(_arr(v, where)):
                _check(item, kind[1], f"{where}[{i}]")
            return
        # ("int", max)
        _check(v, _INT, where)
        if v > kind[1]:
            raise VectorError(where, f"{v} is out of range (at most {kind[1]})")
        return
    if isinstance(kind, dict):
        d = _obj(v, where)
        _keys(d, where, list(kind))
        for k, sub in kind.items():
            _check(d[k], sub, f"{where}.{k}")
        return
    if kind == _HEX:
        if not isinstance(v, str) or not _HEX_RE.match(v) or int(v, 16) > _U64:
            raise VectorError(where, f'expected a 64-bit hex string like "0x1f", got {v!r}')
    elif kind == _INT:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise VectorError(where, f"expected a non-negative integer, got {_type_name(v)}")
    elif kind == _BOOL:
        if not isinstance(v, bool):
            raise VectorError(where, f"expected true or false, got {_type_name(v)}")
    else:  # _BYTES
        if not isinstance(v, str) or not _BYTES_RE.match(v):
            raise VectorError(where, "expected lower-case hex bytes (an even number of digits)")


_FAULT_SCHEMA = {
    "cause": ("int", 0xFFF),
    "ttyp": ("int", 0x3F),
    "iotval": _HEX,
    "iotval2": _HEX,
    "device_id": ("int", 0xFFFFFF),
    "process_id": ("int", 0xFFFFF),
    "pv": _BOOL,
    "priv": _BOOL,
}
_RESPONSE_SCHEMA = {
    "status": ("enum", tuple(_STATUS_NAMES.values())),
    "addr": _HEX,
    "fault": ("null", _FAULT_SCHEMA),
    "reported": _BOOL,
    "r": _BOOL,
    "w": _BOOL,
    "x": _BOOL,
    "u": _BOOL,
    "g": _BOOL,
    "priv": _BOOL,
    "n": _BOOL,
    "pbmt": ("int", 3),
    "s": _BOOL,
    "ama": ("int", 7),
    "size": _HEX,
    "is_msi": _BOOL,
    "is_mrif": _BOOL,
    "mrif_addr": _HEX,
    "notice_addr": _HEX,
    "nid": ("int", 0x7FF),
    "rcid": ("int", 0xFFF),
    "mcid": ("int", 0xFFF),
    "cxl_io": _BOOL,
}
_REQUEST_SCHEMA = {
    "device_id": ("int", 0xFFFFFF),
    "addr": _HEX,
    "access": ("enum", tuple(_ACCESS_NAMES.values())),
    "process_id": ("null", ("int", 0xFFFFF)),
    "priv": _BOOL,
    "kind": ("enum", tuple(_KIND_NAMES.values())),
    "length": ("int", 1 << 32),
    "no_write": _BOOL,
    "data": ("null", _HEX),
    "cxl": _BOOL,
}
_PAGE_REQUEST_SCHEMA = {
    "device_id": ("int", 0xFFFFFF),
    "addr": _HEX,
    "prg_index": ("int", 0x1FF),
    "last": _BOOL,
    "read": _BOOL,
    "write": _BOOL,
    "process_id": ("null", ("int", 0xFFFFF)),
    "priv": _BOOL,
    "exec_req": _BOOL,
}
_PRGR_SCHEMA = {
    "type": ("enum", ("prg_response",)),
    "device_id": ("int", 0xFFFFFF),
    "prg_index": ("int", 0x1FF),
    "response_code": ("int", 0xF),
    "pasid": ("null", ("int", 0xFFFFF)),
    "segment": ("null", ("int", 0xFF)),
}
_INVAL_SCHEMA = {
    "type": ("enum", ("invalidation_request",)),
    "device_id": ("int", 0xFFFF),
    "addr": _HEX,
    "s": _BOOL,
    "global": _BOOL,
    "pasid": ("null", ("int", 0xFFFFF)),
    "segment": ("null", ("int", 0xFF)),
    "itag": ("int", 31),
}
_PQ_SCHEMA = {
    "device_id": ("int", 0xFFFFFF),
    "process_id": ("int", 0xFFFFF),
    "pv": _BOOL,
    "priv": _BOOL,
    "exec_req": _BOOL,
    "read": _BOOL,
    "write": _BOOL,
    "last": _BOOL,
    "prg_index": ("int", 0x1FF),
    "addr": _HEX,
}
_MEMORY_SCHEMA = {"addr": _HEX, "data": _BYTES}


def _check_message(v: Any, where: str) -> None:
    d = _obj(v, where)
    schema = _INVAL_SCHEMA if d.get("type") == "invalidation_request" else _PRGR_SCHEMA
    _check(d, schema, where)


def _check_memory_run(v: Any, where: str) -> Tuple[int, bytes]:
    _check(v, _MEMORY_SCHEMA, where)
    addr = int(v["addr"], 16)
    data = bytes.fromhex(v["data"])
    if addr + len(data) > _U64 + 1:
        raise VectorError(where, "the bytes run past the 64-bit address space")
    return addr, data


#: Outputs every step may have (absent = none): name -> checker
def _check_outputs(expect: Dict[str, Any], where: str, own: Mapping[str, Any]) -> None:
    for k, v in expect.items():
        w = f"{where}.{k}"
        if k in own:
            _check(v, own[k], w)
        elif k == "fq":
            _check(v, ("list", _FAULT_SCHEMA), w)
        elif k == "pq":
            _check(v, ("list", _PQ_SCHEMA), w)
        elif k == "messages":
            for i, m in enumerate(_arr(v, w)):
                _check_message(m, f"{w}[{i}]")
        elif k == "wired":
            for i, pair in enumerate(_arr(v, w)):
                _check(pair, ("list", _INT), f"{w}[{i}]")
                if len(pair) != 2 or pair[0] > 15 or pair[1] > 1:
                    raise VectorError(f"{w}[{i}]", "expected [vector 0..15, level 0 or 1]")
        elif k == "memory":
            for i, run in enumerate(_arr(v, w)):
                _check_memory_run(run, f"{w}[{i}]")
        else:
            raise VectorError(w, "unknown output")


_COMMAND_ENTRY = {"addr": _HEX, "d0": _HEX, "d1": _HEX}

#: op -> (input schema, outputs of its own)
OPS: Dict[str, Tuple[Dict[str, Any], Dict[str, Any]]] = {
    "mmio_write": (
        {"offset": ("int", 0xFFF), "size": ("enum", (4, 8)), "value": _HEX},
        {},
    ),
    "mmio_read": ({"offset": ("int", 0xFFF), "size": ("enum", (4, 8))}, {"value": _HEX}),
    "mem_write": ({"addr": _HEX, "data": _BYTES}, {}),
    "inject": (
        {"addr": _HEX, "size": ("int", 1 << 32), "fault": ("enum", tuple(_FAULT_BY_NAME))},
        {},
    ),
    "clear_injections": ({}, {}),
    "datapath_error": ({"count": ("int", 0xFFFF)}, {}),
    "request": ({"request": _REQUEST_SCHEMA}, {"response": _RESPONSE_SCHEMA}),
    "commands": (
        {"entries": ("list", _COMMAND_ENTRY), "be": _BOOL, "cqt": ("int", 0xFFFFFFFF)},
        {"cqh": ("int", 0xFFFFFFFF), "cqcsr": _HEX},
    ),
    "page_request": ({"message": _PAGE_REQUEST_SCHEMA}, {"response": ("null", _PRGR_SCHEMA)}),
    "invalidation_completion": (
        {"device_id": ("int", 0xFFFFFF), "itag_vector": ("int", 0xFFFFFFFF), "cc": ("int", 7)},
        {"completed": _INT},
    ),
    "tick": ({"cycles": ("int", 1 << 32)}, {}),
    "ats_timeout": ({}, {"timed_out": _INT}),
}

_PARAM_FIELDS: Dict[str, str] = {f.name: str(f.type) for f in fields(IommuParams)}


def _check_header(doc: Dict[str, Any]) -> None:
    if doc.get("format") != FORMAT:
        raise VectorError("format", f"expected {FORMAT!r}, got {doc.get('format')!r}")
    v = doc.get("version")
    if v != VERSION:
        raise VectorError("version", f"this tool reads version {VERSION}, got {v!r}")
    _keys(
        doc,
        "$",
        ("format", "version", "capabilities", "gipc_bit", "params", "fctl", "memory", "steps"),
        ("final", "generator"),
    )
    _check(doc["capabilities"], _HEX, "capabilities")
    _check(doc["gipc_bit"], ("int", 63), "gipc_bit")
    _check(doc["fctl"], _HEX, "fctl")
    if int(doc["fctl"], 16) >> 32:
        raise VectorError("fctl", "fctl is a 32-bit register")
    params = _obj(doc["params"], "params")
    for k, val in params.items():
        kind = _PARAM_FIELDS.get(k)
        if kind is None:
            raise VectorError(f"params.{k}", "unknown parameter")
        if kind.startswith("Mapping"):  # bare_page_sizes: mode name -> size
            for mode, size in _obj(val, f"params.{k}").items():
                _check(size, _INT, f"params.{k}.{mode}")
            continue
        want = {"int": int, "bool": bool, "str": str}[kind]
        if type(val) is not want:
            raise VectorError(f"params.{k}", f"expected a {kind}, got {_type_name(val)}")
    try:
        caps = Capabilities.from_raw(int(doc["capabilities"], 16), gipc_bit=doc["gipc_bit"])
        IommuParams(**params)
    except (TypeError, ValueError) as err:
        raise VectorError("capabilities/params", str(err)) from None
    del caps
    if "generator" in doc:
        _obj(doc["generator"], "generator")


def _check_final(final: Any) -> None:
    d = _obj(final, "final")
    _keys(d, "final", (), ("registers", "digests"))
    regs = _obj(d.get("registers", {}), "final.registers")
    for name, entry in regs.items():
        w = f"final.registers.{name}"
        _check(entry, {"offset": ("int", 0xFFF), "size": ("enum", (4, 8)), "value": _HEX}, w)
    digests = _obj(d.get("digests", {}), "final.digests")
    for name, entry in digests.items():
        w = f"final.digests.{name}"
        e = _obj(entry, w)
        if name == "image":
            _keys(e, w, ("sha256", "pages"))
            _check(e["pages"], _INT, f"{w}.pages")
        elif name in _QUEUES:
            _keys(e, w, ("addr", "size", "sha256"))
            _check(e["addr"], _HEX, f"{w}.addr")
            _check(e["size"], ("int", 1 << 40), f"{w}.size")
        else:
            raise VectorError(w, "unknown digest (cq, fq, pq or image)")
        if not isinstance(e["sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", e["sha256"]):
            raise VectorError(f"{w}.sha256", "expected 64 lower-case hex digits")


def validate(data: Any) -> Dict[str, Any]:
    """Check a parsed vector document; returns it, or raises :class:`VectorError`."""
    doc = _obj(data, "$")
    _check_header(doc)
    for i, run in enumerate(_arr(doc["memory"], "memory")):
        _check_memory_run(run, f"memory[{i}]")
    for i, step in enumerate(_arr(doc["steps"], "steps")):
        where = f"steps[{i}]"
        s = _obj(step, where)
        op = s.get("op")
        if op not in OPS:
            raise VectorError(f"{where}.op", f"unknown op {op!r} (one of {', '.join(OPS)})")
        inputs, own = OPS[op]
        _keys(s, where, ("op", *inputs), ("expect", "comment"))
        for k, kind in inputs.items():
            _check(s[k], kind, f"{where}.{k}")
        if "expect" in s:
            _check_outputs(_obj(s["expect"], f"{where}.expect"), f"{where}.expect", own)
        if op == "mem_write" or op == "inject":
            addr = int(s["addr"], 16)
            size = len(s["data"]) // 2 if op == "mem_write" else s["size"]
            if addr + size > _U64 + 1:
                raise VectorError(where, "the range runs past the 64-bit address space")
    if "final" in doc:
        _check_final(doc["final"])
    return doc


def loads(text: str, name: str = "<vectors>") -> Dict[str, Any]:
    """Parse and validate vector text; :class:`VectorError` names ``name`` and the place."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise VectorError(f"{name}:{err.lineno}:{err.colno}", f"invalid JSON: {err.msg}") from None
    try:
        return validate(doc)
    except VectorError as err:
        raise VectorError(f"{name}: {err.where}", err.message) from None


def load(path: str) -> Dict[str, Any]:
    """Read and validate a vector file."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise VectorError(path, f"cannot read the file: {err}") from None
    return loads(text, path)


def dumps(doc: Mapping[str, Any]) -> str:
    """The canonical text of a vector document: sorted keys, one memory run or step per line.

    The same document always gives the same bytes.
    """

    def one(v: Any) -> str:
        return json.dumps(v, sort_keys=True, separators=(",", ":"))

    out = ["{"]
    keys = sorted(doc)
    for n, k in enumerate(keys):
        v = doc[k]
        comma = "," if n < len(keys) - 1 else ""
        if k in ("memory", "steps") and isinstance(v, list) and v:
            out.append(f"{one(k)}:[")
            out += [one(item) + ("," if i < len(v) - 1 else "") for i, item in enumerate(v)]
            out.append("]" + comma)
        else:
            out.append(f"{one(k)}:{one(v)}{comma}")
    out.append("}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------
class Runner:
    """A model built from a vector header, executing steps and returning their outputs.

    ``header`` holds ``capabilities``, ``gipc_bit``, ``params`` and ``fctl``
    in the file's form; ``memory`` is the memory (the image is written into
    a new :class:`SparseMemory` when it is a list of runs).  ``on_model`` is
    called with the model once it is built.
    """

    def __init__(
        self,
        header: Mapping[str, Any],
        memory: Any = (),
        on_model: Optional[ModelHook] = None,
    ) -> None:
        if isinstance(memory, SparseMemory):
            self.mem = memory
        else:
            self.mem = SparseMemory()
            for run in memory:
                self.mem.write(int(run["addr"], 16), bytes.fromhex(run["data"]))
        caps = Capabilities.from_raw(int(header["capabilities"], 16), gipc_bit=header["gipc_bit"])
        self.iommu = Iommu(
            self.mem, caps, fctl=int(header["fctl"], 16), params=IommuParams(**header["params"])
        )
        self._messages: List[Any] = []
        self._wired: List[List[int]] = []
        self.iommu.on_ats_message = self._messages.append
        self.iommu.on_wired_interrupt = lambda vec, level: self._wired.append([vec, int(level)])
        if on_model is not None:
            on_model(self.iommu)

    # -- one step ---------------------------------------------------------------
    def execute(
        self, step: Mapping[str, Any], watch: Sequence[Tuple[int, int]] = ()
    ) -> Dict[str, Any]:
        """Run one step; returns its outputs (the ``expect`` object it must have).

        ``watch`` lists (address, size) ranges whose contents after the step
        are returned as ``memory`` outputs.
        """
        io = self.iommu
        fq, pq = io.fq, io.pq
        before = (fq.base, fq.tail, fq.on, pq.base, pq.tail, pq.on)
        self._messages.clear()
        self._wired.clear()
        out = _EXEC[step["op"]](self, step)
        if fq.on and before[2] and fq.base == before[0] and fq.tail != before[1]:
            out["fq"] = [
                _fault_json(
                    FaultRecord.from_bytes(self.mem.read(fq.entry_addr(i % fq.size), 32), io.be)
                )
                for i in range(before[1], before[1] + (fq.tail - before[1]) % fq.size)
            ]
        if pq.on and before[5] and pq.base == before[3] and pq.tail != before[4]:
            recs = []
            for i in range(before[4], before[4] + (pq.tail - before[4]) % pq.size):
                raw = self.mem.read(pq.entry_addr(i % pq.size), 16)
                order = _order(io.be)
                recs.append(
                    _pq_json(int.from_bytes(raw[:8], order), int.from_bytes(raw[8:], order))
                )
            out["pq"] = recs
        if self._messages:
            out["messages"] = [_message_json(m) for m in self._messages]
        if self._wired:
            out["wired"] = [list(w) for w in self._wired]
        if watch:
            out["memory"] = [{"addr": hx(a), "data": self.mem.read(a, n).hex()} for a, n in watch]
        return out

    def _mmio_write(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        self.iommu.mmio_write(s["offset"], int(s["value"], 16), s["size"])
        return {}

    def _mmio_read(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        return {"value": hx(self.iommu.mmio_read(s["offset"], s["size"]))}

    def _mem_write(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        self.mem.write(int(s["addr"], 16), bytes.fromhex(s["data"]))
        return {}

    def _inject(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        self.mem.inject(int(s["addr"], 16), s["size"], _FAULT_BY_NAME[s["fault"]])
        return {}

    def _clear(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        self.mem.clear_injections()
        return {}

    def _datapath(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        self.iommu.inject_datapath_error(s["count"])
        return {}

    def _request(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        return {"response": _response_json(self.iommu.translate(_request_obj(s["request"])))}

    def _commands(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        order = _order(s["be"])
        for e in s["entries"]:
            addr = int(e["addr"], 16)
            self.mem.write(addr, int(e["d0"], 16).to_bytes(8, order))
            self.mem.write(addr + 8, int(e["d1"], 16).to_bytes(8, order))
        io = self.iommu
        io.mmio_write(REG.CQT, s["cqt"], 4)
        return {"cqh": io.mmio_read(REG.CQH, 4), "cqcsr": hx(io.mmio_read(REG.CQCSR, 4))}

    def _page_request(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        rsp = self.iommu.page_request(_page_request_obj(s["message"]))
        return {"response": None if rsp is None else _prgr_json(rsp)}

    def _completion(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        n = self.iommu.invalidation_completion(s["device_id"], s["itag_vector"], s["cc"])
        return {"completed": n}

    def _tick(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        self.iommu.tick(s["cycles"])
        return {}

    def _ats_timeout(self, s: Mapping[str, Any]) -> Dict[str, Any]:
        return {"timed_out": self.iommu.ats_timeout()}

    # -- the end ----------------------------------------------------------------
    def final(
        self, image: Sequence[Mapping[str, str]], want: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        """Registers and digests after the last step (injections removed first).

        ``image`` is the file's initial memory: the ``image`` digest covers
        every 4 KiB page it touches.  ``want`` (a file's ``final``) selects
        the registers (by offset and size) and digests; None gives them all.
        """
        self.mem.clear_injections()
        io = self.iommu
        if want is None:
            reg_list = [(n, off, size) for n, (off, size) in FINAL_REGISTERS.items()]
            names: Sequence[str] = (*_QUEUES, "image")
        else:
            reg_list = [(n, r["offset"], r["size"]) for n, r in want.get("registers", {}).items()]
            names = list(want.get("digests", {}))
        regs = {
            name: {"offset": off, "size": size, "value": hx(io.mmio_read(off, size))}
            for name, off, size in reg_list
        }
        digests: Dict[str, Any] = {}
        for name, (breg, entry) in _QUEUES.items():
            if name not in names:
                continue
            qb = io.mmio_read(breg, 8)
            addr = F.QUEUE_BASE.PPN.get(qb) << 12
            size = (1 << (F.QUEUE_BASE.LOG2SZ_1.get(qb) + 1)) * entry
            digests[name] = {
                "addr": hx(addr),
                "size": size,
                "sha256": hashlib.sha256(self.mem.read(addr, size)).hexdigest(),
            }
        if "image" in names:
            pages = sorted({int(r["addr"], 16) >> 12 for r in image})
            h = hashlib.sha256()
            for pn in pages:
                h.update(self.mem.read(pn << 12, 4096))
            digests["image"] = {"pages": len(pages), "sha256": h.hexdigest()}
        out: Dict[str, Any] = {}
        if want is None or "registers" in want:
            out["registers"] = regs
        if want is None or "digests" in want:
            out["digests"] = digests
        return out


_EXEC: Dict[str, Callable[[Runner, Mapping[str, Any]], Dict[str, Any]]] = {
    "mmio_write": Runner._mmio_write,
    "mmio_read": Runner._mmio_read,
    "mem_write": Runner._mem_write,
    "inject": Runner._inject,
    "clear_injections": Runner._clear,
    "datapath_error": Runner._datapath,
    "request": Runner._request,
    "commands": Runner._commands,
    "page_request": Runner._page_request,
    "invalidation_completion": Runner._completion,
    "tick": Runner._tick,
    "ats_timeout": Runner._ats_timeout,
}


def _watch_of(expect: Mapping[str, Any]) -> List[Tuple[int, int]]:
    return [(int(m["addr"], 16), len(m["data"]) // 2) for m in expect.get("memory", ())]


# --------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------
@dataclass
class ReplayResult:
    """What :func:`replay` found: ``diffs`` holds one line per differing field."""

    steps: int
    diffs: List[str] = field(default_factory=list)
    failed_steps: int = 0

    @property
    def ok(self) -> bool:
        """Whether every expectation matched."""
        return not self.diffs


def _show(v: Any) -> str:
    return "(none)" if v is _ABSENT else json.dumps(v, sort_keys=True)


_ABSENT = object()


def diff(expected: Any, got: Any, path: str) -> List[str]:
    """Field-by-field differences between two JSON values, one line each.

    Values of a validated file have their schema's JSON types, so equal values (the common
    case, checked first) have equal types too; a bool and an integer differ.
    """
    if expected == got and (type(expected) is type(got) or not isinstance(got, (int, float))):
        return []
    if isinstance(expected, dict) and isinstance(got, dict):
        lines: List[str] = []
        for k in sorted(set(expected) | set(got)):
            lines += diff(expected.get(k, _ABSENT), got.get(k, _ABSENT), f"{path}.{k}")
        return lines
    if isinstance(expected, list) and isinstance(got, list):
        lines = []
        for i in range(max(len(expected), len(got))):
            e = expected[i] if i < len(expected) else _ABSENT
            g = got[i] if i < len(got) else _ABSENT
            lines += diff(e, g, f"{path}[{i}]")
        return lines
    return [f"{path}: expected {_show(expected)}, got {_show(got)}"]


def replay(doc: Mapping[str, Any], on_model: Optional[ModelHook] = None) -> ReplayResult:
    """Re-run a validated vector document on the model and compare every output.

    A step without ``expect`` must produce no output.  Raises
    :class:`VectorError` when the model rejects a step's input as API misuse
    (a file the validator accepted but the model cannot take).
    """
    runner = Runner(doc, doc["memory"], on_model)
    result = ReplayResult(steps=len(doc["steps"]))
    for i, step in enumerate(doc["steps"]):
        expect = step.get("expect", {})
        try:
            got = runner.execute(step, _watch_of(expect))
        except (TypeError, ValueError, MemoryAccessError) as err:
            raise VectorError(f"steps[{i}]", f"the step cannot run: {err}") from None
        lines = diff(expect, got, f"steps[{i}] {step['op']}: expect")
        if lines:
            result.failed_steps += 1
            result.diffs += lines
    if "final" in doc:
        want = doc["final"]
        lines = diff(want, runner.final(doc["memory"], want), "final")
        if lines:
            result.failed_steps += 1
            result.diffs += lines
    return result


# --------------------------------------------------------------------------
# recording
# --------------------------------------------------------------------------
class _SoftwareMemory:
    """The memory port software uses while a :class:`Recorder` runs: writes become steps."""

    def __init__(self, rec: "Recorder") -> None:
        self._rec = rec

    def read(self, addr: int, size: int) -> bytes:
        return self._rec._mem.read(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        self._rec._software_write(addr, bytes(data))


class _SoftwareMmio:
    """The IOMMU as software sees it while a :class:`Recorder` runs: its registers, and the
    platform description the host toolkit reads (``caps``, ``params``, the memory port)."""

    def __init__(self, rec: "Recorder") -> None:
        self._rec = rec

    @property
    def caps(self) -> Capabilities:
        return self._rec.iommu.caps

    @property
    def params(self) -> IommuParams:
        return self._rec.iommu.params

    @property
    def mem(self) -> "_SoftwareMemory":
        return self._rec.mem

    def mmio_read(self, offset: int, size: int = 8) -> int:
        return self._rec.mmio_read(offset, size)

    def mmio_write(self, offset: int, value: int, size: int = 8) -> None:
        self._rec.mmio_write(offset, value, size)


class Recorder:
    """Record a vector file while software drives the model.

    Software (the host toolkit's table builders and driver) is given
    :attr:`mem` as its memory port and :attr:`mmio` as the IOMMU's register
    interface.  While :attr:`building` (until :meth:`start`) its memory
    writes build the initial image; MMIO accesses are always steps.
    :meth:`start` freezes the image and moves the run to a fresh model built
    from it (``on_model`` is called with that model), re-running the steps
    so far.  After it, every memory write that changes memory is a
    ``mem_write`` step, and writes into the command queue followed by a
    ``cqt`` write become one ``commands`` step.  The request-side methods
    (:meth:`translate`, :meth:`page_request`, ...) are steps too.
    """

    def __init__(
        self,
        capabilities: Capabilities,
        params: IommuParams,
        fctl: int = 0,
        on_model: Optional[ModelHook] = None,
    ) -> None:
        self.header: Dict[str, Any] = {
            "capabilities": hx(capabilities.raw),
            "gipc_bit": capabilities.gipc_bit,
            "params": {k: _param_json(v) for k, v in asdict(params).items()},
            "fctl": hx(fctl),
        }
        self._on_model = on_model
        self._mem = SparseMemory()
        self.runner = Runner(self.header, self._mem)
        self.building = True
        self.image: List[Dict[str, str]] = []
        self.steps: List[Dict[str, Any]] = []
        self._watches: List[List[Tuple[int, int]]] = []
        self._cq_writes: List[Tuple[int, bytes]] = []
        #: the software's view of memory and registers
        self.mem = _SoftwareMemory(self)
        self.mmio = _SoftwareMmio(self)
        #: outputs of the last step
        self.last: Dict[str, Any] = {}

    @property
    def iommu(self) -> Iommu:
        """The model the run executes on (the one built by :meth:`start` once started)."""
        return self.runner.iommu

    # -- steps ------------------------------------------------------------------
    def step(self, step: Dict[str, Any], watch: Sequence[Tuple[int, int]] = ()) -> Dict[str, Any]:
        """Execute a step, store it with its outputs, and return the outputs.

        Command-queue writes not yet followed by a ``cqt`` write become ``mem_write`` steps
        first, unless the step is a register read (which cannot make the IOMMU read them).
        """
        if self._cq_writes and step["op"] != "mmio_read":
            self._flush_cq_writes()
        return self._step(step, watch)

    def _step(self, step: Dict[str, Any], watch: Sequence[Tuple[int, int]] = ()) -> Dict[str, Any]:
        out = self.runner.execute(step, watch)
        if out:
            step["expect"] = out
        self.steps.append(step)
        self._watches.append(list(watch))
        self.last = out
        return out

    def _flush_cq_writes(self) -> None:
        writes, self._cq_writes = self._cq_writes, []
        for addr, data in writes:
            self._step({"op": "mem_write", "addr": hx(addr), "data": data.hex()})

    def _in_cq(self, addr: int, size: int) -> bool:
        cq = self.iommu.cq
        base = cq.entry_addr(0)
        return base <= addr and addr + size <= base + cq.size * 16

    def _software_write(self, addr: int, data: bytes) -> None:
        if self.building:
            self._mem.write(addr, data)
            return
        if self._in_cq(addr, len(data)):  # a command: becomes part of a commands step
            self._mem.write(addr, data)
            self._cq_writes.append((addr, data))
            return
        if self._mem.read(addr, len(data)) == data:
            return  # a write that changes nothing is not a step
        self._mem.write(addr, data)
        self.step({"op": "mem_write", "addr": hx(addr), "data": data.hex()})

    def mmio_write(self, offset: int, value: int, size: int = 8) -> None:
        """A register write (the ``cqt`` doorbell after command writes: a ``commands`` step)."""
        if offset == REG.CQT and size == 4 and self._cq_writes:
            if self._commands_step(value):
                return
        self.step({"op": "mmio_write", "offset": offset, "size": size, "value": hx(value)})

    def _commands_step(self, cqt: int) -> bool:
        entries: Dict[int, Dict[int, bytes]] = {}
        for addr, data in self._cq_writes:
            if len(data) & 7 or addr & 7:
                return False
            for k in range(0, len(data), 8):  # doublewords of whole entries
                entries.setdefault((addr + k) & ~15, {})[(addr + k) & 8] = data[k : k + 8]
        if any(len(e) != 2 for e in entries.values()):
            return False
        self._cq_writes = []
        be = self.iommu.be
        order = _order(be)
        rows = []
        watch = []
        C0 = F.CMD_IOFENCE0
        for addr in entries:  # in the order software wrote them
            d0 = int.from_bytes(entries[addr][0], order)
            d1 = int.from_bytes(entries[addr][8], order)
            rows.append({"addr": hx(addr), "d0": hx(d0), "d1": hx(d1)})
            if F.CMD.opcode.get(d0) == 2 and C0.AV.get(d0):  # IOFENCE.C writes DATA to ADDR
                target = F.CMD_IOFENCE1.ADDR.get(d1) << 2
                if target + 4 <= self.iommu.pa_limit:
                    watch.append((target, 4))
        self._step({"op": "commands", "entries": rows, "be": be, "cqt": cqt}, watch)
        return True

    def mmio_read(self, offset: int, size: int = 8) -> int:
        """A register read (a step with the value expected)."""
        return int(self.step({"op": "mmio_read", "offset": offset, "size": size})["value"], 16)

    def translate(self, req: Request) -> Dict[str, Any]:
        """A device request; returns the step's outputs (``response``, ``fq``)."""
        return self.step({"op": "request", "request": request_json(req)})

    def page_request(self, msg: PageRequest) -> Dict[str, Any]:
        """A PCIe "Page Request" message."""
        return self.step({"op": "page_request", "message": page_request_json(msg)})

    def invalidation_completion(
        self, device_id: int, itag_vector: int, cc: int = 1, watch: Sequence[Tuple[int, int]] = ()
    ) -> Dict[str, Any]:
        """A PCIe "Invalidation Completion" message."""
        step = {
            "op": "invalidation_completion",
            "device_id": device_id,
            "itag_vector": itag_vector,
            "cc": cc,
        }
        return self.step(step, watch)

    def tick(self, cycles: int, watch: Sequence[Tuple[int, int]] = ()) -> Dict[str, Any]:
        """Advance time."""
        return self.step({"op": "tick", "cycles": cycles}, watch)

    def ats_timeout(self) -> Dict[str, Any]:
        """Time out every outstanding ATS invalidation."""
        return self.step({"op": "ats_timeout"})

    def inject(self, addr: int, size: int, fault: MemoryFault) -> None:
        """Make accesses to a range fail (until :meth:`clear_injections`)."""
        self.step({"op": "inject", "addr": hx(addr), "size": size, "fault": _FAULT_NAMES[fault]})

    def clear_injections(self) -> None:
        """Remove every injected fault."""
        self.step({"op": "clear_injections"})

    def datapath_error(self, count: int = 1) -> None:
        """The next ``count`` requests fail with "Internal data path error"."""
        self.step({"op": "datapath_error", "count": count})

    # -- phases -----------------------------------------------------------------
    def start(self) -> None:
        """End the build phase: freeze the memory image and continue on a model built from it."""
        if not self.building:
            raise RuntimeError("the recorder has already started")
        self.building = False
        self.image = memory_image(self._mem)
        mem = SparseMemory()
        for run in self.image:
            mem.write(int(run["addr"], 16), bytes.fromhex(run["data"]))
        self._mem = mem
        self.runner = Runner(self.header, mem, self._on_model)
        steps, watches = self.steps, self._watches
        self.steps, self._watches = [], []
        for step, watch in zip(steps, watches, strict=True):
            step.pop("expect", None)
            self._step(step, watch)

    def document(self, generator: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The vector document of the run so far (with its final registers and digests)."""
        if self.building:
            self.start()
        if self._cq_writes:
            self._flush_cq_writes()
        doc: Dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            **self.header,
            "memory": self.image,
            "steps": self.steps,
            "final": self.runner.final(self.image),
        }
        gen = {"tool": f"riscv-iommu {__version__}"}
        gen.update(generator or {})
        doc["generator"] = gen
        return doc


# --------------------------------------------------------------------------
# the ``riscv-iommu replay`` command
# --------------------------------------------------------------------------
def add_cli(sub: Any) -> None:
    """Register ``riscv-iommu replay`` on an argparse sub-parser set."""

    def positive(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
        return v

    p = sub.add_parser(
        "replay",
        help="re-check vector files against the model",
        description="Replay vector files (docs/vectors.md) on the model. Exit status 0 when "
        "every expectation matches, 1 with a field-by-field diff when one does not, 2 for a "
        "malformed file.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="vector files")
    p.add_argument(
        "--max-diffs", type=positive, default=50, help="diff lines shown per file (default 50)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: per file its status, steps and differences (or error)",
    )
    p.set_defaults(handler=_cli)


def _cli(args: argparse.Namespace, stream: Any) -> int:
    status = 0
    report: List[Dict[str, Any]] = []
    for path in args.files:
        try:
            doc = load(path)
            result = replay(doc)
        except VectorError as err:
            where = err.where if err.where.startswith(path) else f"{path}: {err.where}"
            print(f"riscv-iommu replay: {where}: {err.message}", file=sys.stderr)
            report.append({"file": path, "status": "malformed", "error": f"{where}: {err.message}"})
            status = 2
            continue
        entry = {
            "file": path,
            "status": "pass" if result.ok else "fail",
            "steps": result.steps,
            "failed_steps": result.failed_steps,
            "diffs": result.diffs,
        }
        report.append(entry)
        if args.json:
            status = max(status, 0 if result.ok else 1)
            continue
        if result.ok:
            print(f"PASS {path}: {result.steps} steps", file=stream)
            continue
        for line in result.diffs[: args.max_diffs]:
            print(f"{path}: {line}", file=stream)
        more = len(result.diffs) - args.max_diffs
        if more > 0:
            print(f"{path}: ... {more} more differences", file=stream)
        print(
            f"FAIL {path}: {result.failed_steps} of {result.steps} steps differ "
            f"({len(result.diffs)} fields)",
            file=stream,
        )
        status = max(status, 1)
    if args.json:
        json.dump({"files": report}, stream, indent=1)
        stream.write("\n")
    return status
