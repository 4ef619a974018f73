# ruff: noqa: E501  (the cases are tables of exact messages)
"""Malformed scenario files and command-line arguments: each is a named error with exit
status 2 (file:line:field and what was expected), never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

#: The start of most cases: a VM with RAM and a classic device 1 in it (lines 1-6).
HEAD = (
    '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n'
    '[[device]]\nid = 1\nvm = "A"\n'
)


def cli(*args: str) -> Tuple[int, str, str]:
    from riscv_iommu.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args), stream=out)
        except SystemExit as e:
            rc = int(e.code or 0)
    return rc, out.getvalue(), err.getvalue()


def process(*args: str) -> Tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "riscv_iommu.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


# (name, file text, "LINE: FIELD: MESSAGE" after "riscv-iommu: FILE:")
CASES: List[Tuple[str, str, str]] = [
    (
        "typo_table",
        HEAD + "[[requests]]\naddr = 0\n",
        "7: requests: unknown table or key; did you mean 'request'? (expected one of: title, revision, capabilities, params, host, [[vm]], [[device]], [[detach]], [[bind]], [[unbind]], [[rebind]], [[map]], [[unmap]], [[unmap_ram]], [[dc]], [[write]], [[command]], [[recipe]], [[mmio]], [[inject]], [[tick]], [[ats_completion]], [[request]], [[page_request]], [[check]])",
    ),
    (
        "unknown_key",
        HEAD + "[[request]]\naddr = 0\nexpected = { cause = 13 }\n",
        "9: request[0].expected: unknown key; did you mean 'expect'? (expected one of: access, addr, cxl, data, device, expect, kind, length, no_write, pasid, priv)",
    ),
    (
        "pasid_range",
        HEAD + "[[request]]\naddr = 0\npasid = 0x100000\n",
        "9: request[0].pasid: expected a PASID (process_id): an integer 0 to 0xfffff (20 bits), got 0x100000",
    ),
    (
        "pasid_type",
        HEAD + '[[request]]\naddr = 0\npasid = "1"\n',
        "9: request[0].pasid: expected a PASID (process_id): an integer 0 to 0xfffff (20 bits), got the string '1'",
    ),
    (
        "addr_2_64",
        HEAD + "[[request]]\naddr = 0x1_0000_0000_0000_0000\n",
        "8: request[0].addr: expected an address (an integer 0 to 0xffffffffffffffff) or a table { vm, gpa }, got 0x10000000000000000",
    ),
    (
        "length_string",
        HEAD + '[[request]]\naddr = 0\nlength = "4"\n',
        "9: request[0].length: expected a length in bytes: an integer 1 to 4096, got the string '4'",
    ),
    (
        "length_zero",
        HEAD + "[[request]]\naddr = 0\nlength = 0\n",
        "9: request[0].length: expected a length in bytes: an integer 1 to 4096, got 0",
    ),
    (
        "device_range",
        "[[request]]\ndevice = 0x100_0000\naddr = 0\n",
        "2: request[0].device: expected a device_id: an integer 0 to 0xffffff (24 bits), got 0x1000000",
    ),
    (
        "device_negative",
        "[[request]]\ndevice = -1\naddr = 0\n",
        "2: request[0].device: expected a device_id: an integer 0 to 0xffffff (24 bits), got -1",
    ),
    (
        "cause_not_in_table",
        HEAD + "[[request]]\naddr = 0\nexpect = { cause = 14 }\n",
        "9: request[0].expect.cause: expected a fault cause of the spec's table: one of 1, 4, 5, 6, 7, 12, 13, 15, 20, 21, 23, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, or its name (e.g. 'INSTRUCTION_ACCESS_FAULT'), got 14",
    ),
    (
        "cause_bad_name",
        HEAD + '[[request]]\naddr = 0\nexpect = { cause = "PAGE_FAULT" }\n',
        "9: request[0].expect.cause: expected a fault cause of the spec's table: one of 1, 4, 5, 6, 7, 12, 13, 15, 20, 21, 23, 256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, or its name (e.g. 'INSTRUCTION_ACCESS_FAULT'), got the string 'PAGE_FAULT'",
    ),
    (
        "access",
        HEAD + '[[request]]\naddr = 0\naccess = "jump"\n',
        "9: request[0].access: expected one of 'read', 'write', 'execute', got the string 'jump'",
    ),
    (
        "kind",
        HEAD + '[[request]]\naddr = 0\nkind = "pci"\n',
        "9: request[0].kind: expected one of 'untranslated', 'translated', 'ats', got the string 'pci'",
    ),
    (
        "perms",
        HEAD + '[[map]]\ndevice = 1\npasid = 1\niova = 0\ngpa = 0\nsize = 4096\nperms = "q"\n',
        "13: map[0].perms: expected one of 'r', 'rw', 'rx', 'rwx', got the string 'q'",
    ),
    (
        "revision",
        'revision = "2026"\n',
        "1: revision: expected one of '2024', '2025', got the string '2026'",
    ),
    (
        "cap_unknown",
        "[capabilities]\nats = true\nsv99 = true\n",
        "3: capabilities.sv99: unknown key; did you mean 'sv39'? (expected one of: amo_hwad, amo_mrif, ats, custom, dbg, end, gipc, gipc_bit, hpm, igs, msi_flat, msi_mrif, nl, pas, pd17, pd20, pd8, qosid, s, sv32, sv32x4, sv39, sv39x4, sv48, sv48x4, sv57, sv57x4, svpbmt, svrsw60t59b, t2gpa, version)",
    ),
    (
        "cap_value",
        "[capabilities]\npas = 99\n",
        "2: capabilities.pas: Capabilities.pas must be between 1 and 63",
    ),
    (
        "cap_rule",
        "[capabilities]\nsv39 = false\n",
        "2: capabilities.sv39: Capabilities: when Sv48 is set, Sv39 must be set",
    ),
    (
        "params_negative",
        "[params]\niotlb_size = -1\n",
        "2: params.iotlb_size: expected an integer 0 to 0xffffffffffffffff (64 bits), got -1",
    ),
    (
        "params_value",
        '[params]\ncache_policy = "random"\n',
        '2: params.cache_policy: IommuParams.cache_policy must be "lru" or "fifo"',
    ),
    (
        "params_type",
        '[params]\niotlb_size = "big"\n',
        "2: params.iotlb_size: expected an integer 0 to 0xffffffffffffffff (64 bits), got the string 'big'",
    ),
    (
        "revision_conflict",
        'revision = "2025"\n[params]\ngipc_revision = "2024"\n',
        "3: params.gipc_revision: differs from revision",
    ),
    (
        "host_levels",
        "[host]\nddt_levels = 4\n",
        "2: host.ddt_levels: expected an integer 1 to 3, got 4",
    ),
    (
        "host_unknown",
        "[host]\nendian = 1\n",
        "2: host.endian: unknown key; did you mean 'big_endian'? (expected one of: big_endian, ddt_levels, g_mode, interrupts, ram, s1_mode)",
    ),
    (
        "vm_dup",
        '[[vm]]\nname = "A"\n[[vm]]\nname = "A"\n',
        "4: vm[1].name: a VM named 'A' is already defined",
    ),
    (
        "vm_unknown",
        HEAD + '[[bind]]\ndevice = 1\npasid = 1\nvm = "B"\n',
        "10: bind[0].vm: no VM 'B' defined above this line (VMs: A)",
    ),
    (
        "vm_later",
        '[[device]]\nid = 1\nvm = "A"\n[[vm]]\nname = "A"\n',
        "3: device[0].vm: no VM 'A' defined above this line (VMs: none yet)",
    ),
    ("vm_name_type", "[[vm]]\nname = 7\n", "2: vm[0].name: expected a non-empty string, got 7"),
    (
        "inline_array",
        "request = [{ addr = 0 }]\n",
        "1: request: expected each request as its own [[request]] table (the file's order is the order of the actions)",
    ),
    (
        "top_scalar",
        "request = 5\n",
        "1: request: expected each request as its own [[request]] table (the file's order is the order of the actions)",
    ),
    (
        "syntax",
        '[[vm]\nname = "A"\n',
        "1: syntax: Expected ']]' at the end of an array declaration (at line 1, column 5)",
    ),
    (
        "missing_addr",
        HEAD + "[[request]]\npasid = 1\n",
        "7: request[0].addr: missing; expected an address (an integer 0 to 0xffffffffffffffff) or a table { vm, gpa }",
    ),
    (
        "device_no_vm",
        "[[device]]\nid = 1\n",
        "1: device[0].vm: missing; expected the VM of the device, gipc = true or host = true",
    ),
    (
        "gipc_with_vm",
        '[[vm]]\nname = "A"\n[[device]]\nid = 1\ngipc = true\nvm = "A"\n',
        "6: device[0].vm: not for a GIPC device (its PASIDs name their VMs)",
    ),
    (
        "bool_as_int",
        HEAD + '[[device]]\nid = 2\nvm = "A"\nats = 1\n',
        "10: device[1].ats: expected true or false, got 1",
    ),
    (
        "map_not_ram",
        HEAD + "[[map]]\ndevice = 1\npasid = 1\niova = 0\ngpa = 0x1000\nsize = 0x1000\n",
        "7: map[0]: device 0x1 PASID 1 has no address space",
    ),
    (
        "map_unbound",
        HEAD + "[[map]]\ndevice = 1\npasid = 1\niova = 0\ngpa = 0x8000_0000\nsize = 0x1000\n",
        "7: map[0]: device 0x1 PASID 1 has no address space",
    ),
    (
        "priv_no_pasid",
        HEAD + "[[request]]\naddr = 0\npriv = true\n",
        "9: request[0].priv: priv needs a pasid (privilege is a PASID attribute)",
    ),
    (
        "pr_unaligned",
        HEAD + "[[page_request]]\naddr = 0x1001\n",
        "8: page_request[0].addr: expected a page address (bits 11:0 zero)",
    ),
    (
        "cmd_op",
        '[[command]]\nop = "IOTINVAL.ALL"\n',
        "2: command[0].op: expected op: one of 'IOTINVAL.VMA', 'IOTINVAL.GVMA', 'IOFENCE.C', 'IODIR.INVAL_DDT', 'IODIR.INVAL_PDT', 'ATS.INVAL', 'ATS.PRGR', 'raw', got the string 'IOTINVAL.ALL'",
    ),
    (
        "cmd_no_op",
        "[[command]]\ndevice = 1\n",
        "1: command[0].op: missing; expected op: one of 'IOTINVAL.VMA', 'IOTINVAL.GVMA', 'IOFENCE.C', 'IODIR.INVAL_DDT', 'IODIR.INVAL_PDT', 'ATS.INVAL', 'ATS.PRGR', 'raw'",
    ),
    (
        "cmd_operand",
        '[[command]]\nop = "IOFENCE.C"\ndevice = 1\n',
        "3: command[0].device: unknown key of op 'IOFENCE.C' (expected one of: addr, data, expect, fence, op, pr, pw, wsi)",
    ),
    (
        "cmd_expect",
        '[[command]]\nop = "IOFENCE.C"\nexpect = "done"\n',
        "3: command[0].expect: expected one of 'completed', 'waiting', 'illegal', 'timeout', 'memory_fault', got the string 'done'",
    ),
    (
        "cmd_size",
        HEAD + '[[command]]\nop = "IOTINVAL.VMA"\naddr = 0x1000\nsize = 0x3000\n',
        "10: command[0].size: expected a power of two >= 8 KiB, addr aligned to it",
    ),
    (
        "cmd_ats_size",
        HEAD + '[[command]]\nop = "ATS.INVAL"\ndevice = 1\naddr = 0x1000\nsize = 0x3000\n',
        "11: command[0].size: ATS invalidation size must be a power of two >= 4 KiB, addr aligned",
    ),
    (
        "cmd_fence_addr",
        '[[command]]\nop = "IOFENCE.C"\naddr = 0x1002\n',
        "3: command[0].addr: expected a 4-byte-aligned address",
    ),
    (
        "recipe_name",
        '[[recipe]]\nname = "flush_everything"\n',
        "2: recipe[0].name: expected name: one of 'dc_changed', 'ddt_nonleaf_changed', 'pc_changed', 'pdt_nonleaf_changed', 'first_stage_changed', 'g_stage_changed', 'msi_pte_changed', 'ats_invalidate', got the string 'flush_everything'",
    ),
    (
        "recipe_space",
        HEAD + '[[recipe]]\nname = "pc_changed"\ndevice = 1\npasid = 5\n',
        "10: recipe[0].pasid: device 0x1 PASID 5 has no address space",
    ),
    (
        "mmio_register",
        '[[mmio]]\nregister = "cqcsrx"\nexpect = 0\n',
        "2: mmio[0].register: expected an offset: an integer 0 to 0xffc, or one of 'capabilities', 'fctl', 'ddtp', 'cqb', 'cqh', 'cqt', 'fqb', 'fqh', 'fqt', 'pqb', 'pqh', 'pqt', 'cqcsr', 'fqcsr', 'pqcsr', 'ipsr', 'iocountovf', 'iocountinh', 'iohpmcycles', 'tr_req_iova', 'tr_req_ctl', 'tr_response', 'iommu_qosid', 'icvec', got the string 'cqcsrx'",
    ),
    (
        "mmio_field",
        '[[mmio]]\nregister = "cqcsr"\nfields = { cmd_illegal = 1 }\n',
        "3: mmio[0].fields.cmd_illegal: unknown field of this register (fields: cqen, cie, cqmf, cmd_to, cmd_ill, fence_w_ip, cqon, busy, custom)",
    ),
    (
        "mmio_field_width",
        '[[mmio]]\nregister = "cqcsr"\nset = { cqen = 2 }\n',
        "3: mmio[0].set.cqen: does not fit in 1 bit(s)",
    ),
    (
        "mmio_value_size",
        '[[mmio]]\nregister = "cqcsr"\nvalue = 0x1_0000_0000\n',
        "3: mmio[0].value: does not fit the 4-byte access",
    ),
    (
        "mmio_misaligned",
        "[[mmio]]\nregister = 0x4\nsize = 8\nexpect = 0\n",
        "2: mmio[0].register: not aligned to the 8-byte access",
    ),
    (
        "mmio_set_and_value",
        '[[mmio]]\nregister = "fctl"\nvalue = 0\nset = { BE = 1 }\n',
        "4: mmio[0].set: give only one of value or set",
    ),
    (
        "mmio_no_layout",
        '[[mmio]]\nregister = "cqh"\nfields = { x = 1 }\n',
        "3: mmio[0].fields.x: unknown field of this register (fields: none)",
    ),
    (
        "inject_pte",
        HEAD + '[[inject]]\nfault = "access"\nstructure = "pte"\ndevice = 1\n',
        "7: inject[0].iova: missing, or no address space there",
    ),
    (
        "inject_nothing",
        '[[inject]]\nfault = "access"\n',
        "1: inject[0].structure: missing; give structure, spa or vm+gpa",
    ),
    (
        "inject_fault",
        '[[inject]]\nfault = "flip"\nspa = 0\n',
        "2: inject[0].fault: expected one of 'access', 'corruption', 'datapath', 'clear', got the string 'flip'",
    ),
    (
        "msi_index",
        '[[vm]]\nname = "A"\n[[device]]\nid = 1\nvm = "A"\nmsi = { addr_pattern = 1, entries = 4, ptes = [{ index = 4, mode = "flat", spa = 0x1000 }] }\n',
        "6: device[0].msi.ptes[0].index: beyond the 4 entries",
    ),
    (
        "msi_flat_unaligned",
        '[[vm]]\nname = "A"\n[[device]]\nid = 1\nvm = "A"\nmsi = { addr_pattern = 1, ptes = [{ index = 0, mode = "flat", spa = 0x1010 }] }\n',
        "6: device[0].msi.ptes[0].spa: expected a 4 KiB-aligned address",
    ),
    (
        "msi_mrif_missing",
        '[[vm]]\nname = "A"\n[[device]]\nid = 1\nvm = "A"\nmsi = { addr_pattern = 1, ptes = [{ index = 0, mode = "mrif", mrif = 0x1000 }] }\n',
        "6: device[0].msi.ptes[0].notice: missing; a mrif MSI PTE needs mrif, notice, nid",
    ),
    (
        "expect_gpa_no_vm",
        HEAD + "[[request]]\naddr = 0\nexpect = { gpa = 0x1000 }\n",
        "9: request[0].expect.vm: missing; gpa needs vm (the VM whose GPA the request must reach)",
    ),
    (
        "expect_vm_unknown",
        HEAD + '[[request]]\naddr = 0\n[request.expect]\nvm = "Z"\n',
        "10: request[0].expect.vm: no VM 'Z' defined above this line (VMs: A)",
    ),
    (
        "expect_fault_type",
        HEAD + "[[request]]\naddr = 0\nexpect = { fault = true }\n",
        "9: request[0].expect.fault: expected false, or a table of fault-record fields, got true",
    ),
    (
        "expect_fault_field",
        HEAD + "[[request]]\naddr = 0\nexpect = { fault = { cause = 13, iotval3 = 0 } }\n",
        "9: request[0].expect.fault.iotval3: unknown key; did you mean 'iotval'? (expected one of: cause, device_id, iotval, iotval2, priv, process_id, pv, ttyp)",
    ),
    (
        "tick_zero",
        "[[tick]]\ncycles = 0\n",
        "2: tick[0].cycles: expected an integer 1 to 0x7fffffffffffffff, got 0",
    ),
    (
        "dc_field",
        HEAD + "[[dc]]\ndevice = 1\ntc = { DTX = 1 }\n",
        "9: dc[0].tc.DTX: unknown key; did you mean 'DTF'? (expected one of: DPE, DTF, EN_ATS, EN_PRI, GADE, PDTV, PRPR, SADE, SBE, SXL, T2GPA, V, custom)",
    ),
    (
        "dc_not_attached",
        HEAD + "[[dc]]\ndevice = 2\ntc = { DTF = 1 }\n",
        "8: dc[0].device: device 0x2 is not attached",
    ),
    (
        "ram_too_big",
        '[[vm]]\nname = "A"\nram = [{ gpa = 0, size = 0x8000_0000 }]\n',
        "3: vm[0].ram[0].size: expected a RAM size in bytes (memory is allocated: at most 1 GiB): an integer 0x1000 to 0x40000000, got 0x80000000",
    ),
    (
        "ram_overlap",
        '[[vm]]\nname = "A"\nram = [{ gpa = 0, size = 0x2000 }, { gpa = 0x1000, size = 0x1000 }]\n',
        "3: vm[0].ram[1]: guest RAM overlaps existing RAM",
    ),
    (
        "message_type",
        "[[check]]\nmessages = [{ itag = 1 }]\n",
        "2: check[0].messages[0].type: missing; expected 'invalidation' or 'prg_response'",
    ),
    (
        "message_field",
        '[[check]]\nmessages = [{ type = "prg_response", itag = 1 }]\n',
        "2: check[0].messages[0].itag: unknown key of a prg_response message (expected one of: device_id, pasid, prg_index, response_code, segment)",
    ),
    (
        "write_both",
        '[[write]]\nspa = 0\nvm = "A"\ngpa = 0\nu64 = 1\n',
        "2: write[0].spa: give only one of vm + gpa or spa",
    ),
    ("write_no_value", "[[write]]\nspa = 0\n", "1: write[0].u64: give one of u64 or u32 or text"),
    (
        "check_memory",
        "[[check]]\nmemory = [{ spa = 0 }]\n",
        "2: check[0].memory[0].u64: give one of u64 or u32 or text",
    ),
    (
        "write_not_ram",
        HEAD + '[[write]]\nvm = "A"\ngpa = 0x10\ntext = "x"\n',
        "9: write[0].gpa: GPA 0x10 is not VM A's RAM",
    ),
    (
        "request_no_device",
        "[[request]]\naddr = 0\n",
        "1: request[0].device: missing, and no [[device]] to default to",
    ),
    (
        "page_request_no_device",
        "[[page_request]]\naddr = 0\n",
        "1: page_request[0].device: missing, and no [[device]] to default to",
    ),
    (
        "list_type",
        '[[vm]]\nname = "A"\nram = { gpa = 0, size = 0x1000 }\n',
        "3: vm[0].ram: expected an array of a table { gpa, size, page_size }, got a table",
    ),
    (
        "ats_completion_itag",
        "[[ats_completion]]\ndevice = 1\nitags = [32]\n",
        "3: ats_completion[0].itags[0]: expected an ITAG: an integer 0 to 31 (5 bits), got 0x20",
    ),
    (
        "unknown_space",
        HEAD + '[[command]]\nop = "IOTINVAL.VMA"\nspace = { device = 1, pasid = 3 }\n',
        "9: command[0].space: device 0x1 PASID 3 has no address space",
    ),
    (
        "empty_name",
        '[[vm]]\nname = ""\n',
        "2: vm[0].name: expected a non-empty string, got the string ''",
    ),
    (
        "host_bringup",
        "[capabilities]\npd8 = false\npd17 = false\npd20 = false\n",
        "1: host: the host cannot bring the IOMMU up: the IOMMU supports no process-directory mode",
    ),
    ("title_type", "title = 1\n", "1: title: expected a non-empty string, got 1"),
    (
        "map_gpa_not_ram",
        HEAD
        + "[[bind]]\ndevice = 1\npasid = 1\n[[map]]\ndevice = 1\npasid = 1\niova = 0\ngpa = 0x1000\nsize = 0x1000\n",
        "10: map[0]: MAP of a GPA range that is not the VM's RAM",
    ),
    (
        "inject_beyond",
        '[[inject]]\nfault = "access"\nspa = 0xffff_ffff_ffff_f000\nsize = 0x10000\n',
        "1: inject[0]: the model refused it: size 65536 at 0xfffffffffffff000 is outside the 64-bit physical address space",
    ),
    (
        "gscid_in_use",
        '[[vm]]\nname = "A"\ngscid = 3\n[[vm]]\nname = "B"\ngscid = 3\n',
        "4: vm[1]: GSCID 3 is in use",
    ),
    (
        "subtable_unknown",
        HEAD + '[[request]]\naddr = 0\n[request.expect]\ncause = 13\nstatuss = "success"\n',
        "11: request[0].expect.statuss: unknown key; did you mean 'status'? (expected one of: addr, ama, cause, cxl_io, fault, g, gpa, is_mrif, is_msi, mcid, mrif_addr, n, nid, notice_addr, pbmt, priv, r, rcid, reported, s, size, spa, status, u, vm, w, x)",
    ),
    (
        "dotted_key",
        HEAD + "[[request]]\naddr = 0\nexpect.fault.ttyp = 99\n",
        "9: request[0].expect.fault.ttyp: expected a TTYP: one of 0, 1, 2, 3, 5, 6, 7, 8, 9, or its name (e.g. 'NONE'), got 99",
    ),
    (
        "multiline_array",
        '[[vm]]\nname = "A"\nram = [\n  { gpa = 0, size = 0x1000 },\n  { gpa = 0x1000, size = 3 },\n]\n',
        "3: vm[0].ram[1].size: expected a RAM size in bytes (memory is allocated: at most 1 GiB): an integer 0x1000 to 0x40000000, got 3",
    ),
    ("title_array", "title = [1]\n", "1: title: expected a non-empty string, got an array"),
    (
        "page_size",
        '[[vm]]\nname = "A"\nram = [{ gpa = 0, size = 0x1000, page_size = 0x3000 }]\n',
        "3: vm[0].ram[0].page_size: expected a page size: one of 0x1000, 0x200000, 0x40000000, got 0x3000",
    ),
    (
        "mmio_fields_type",
        '[[mmio]]\nregister = "cqcsr"\nfields = 3\n',
        "3: mmio[0].fields: expected a table of register fields, got 3",
    ),
    (
        "mmio_fields_value",
        '[[mmio]]\nregister = "cqcsr"\nfields = { cqen = true }\n',
        "3: mmio[0].fields.cqen: expected a non-negative integer, got true",
    ),
    (
        "vm_ref_type",
        "[[bind]]\ndevice = 1\npasid = 1\nvm = 5\n",
        "4: bind[0].vm: expected the name of a VM (a string), got 5",
    ),
    (
        "list_limit",
        "[[check]]\nfq = [" + ", ".join(["{}"] * 4097) + "]\n",
        "2: check[0].fq: expected at most 4096 elements, got 4097",
    ),
    (
        "expect_type",
        HEAD + "[[request]]\naddr = 0\nexpect = 5\n",
        "9: request[0].expect: expected a table of expectations, got 5",
    ),
    (
        "write_vm_only",
        '[[vm]]\nname = "A"\n[[write]]\nvm = "A"\nu64 = 1\n',
        "3: write[0].gpa: missing; vm + gpa go together",
    ),
    (
        "cause_and_no_fault",
        HEAD + "[[request]]\naddr = 0\nexpect = { cause = 13, fault = false }\n",
        "9: request[0].expect.fault: a cause with fault = false",
    ),
    (
        "mrif_unaligned",
        '[[vm]]\nname = "A"\n[[device]]\nid = 1\nvm = "A"\nmsi = { addr_pattern = 1, ptes = [{ index = 0, mode = "mrif", mrif = 0x1100, notice = 0, nid = 0 }] }\n',
        "6: device[0].msi.ptes[0].mrif: expected a 512-byte-aligned address",
    ),
    (
        "first_stage_pasids",
        '[[vm]]\nname = "A"\n[[device]]\nid = 1\nvm = "A"\nfirst_stage = false\npasids = true\n',
        "7: device[0].pasids: first_stage = false has no PASIDs",
    ),
    (
        "nested_array_in_action",
        HEAD + "[[request]]\naddr = 0\n[[request.expect]]\ncause = 13\n",
        "9: request[0].expect: expected a table of expectations, got an array",
    ),
    (
        "nested_array_at_root",
        "[[foo.bar]]\nx = 1\n",
        "1: foo: unknown table or key (expected one of: title, revision, capabilities, params, host, [[vm]], [[device]], [[detach]], [[bind]], [[unbind]], [[rebind]], [[map]], [[unmap]], [[unmap_ram]], [[dc]], [[write]], [[command]], [[recipe]], [[mmio]], [[inject]], [[tick]], [[ats_completion]], [[request]], [[page_request]], [[check]])",
    ),
    (
        "msi_without_flat",
        '[capabilities]\nmsi_flat = false\nmsi_mrif = false\n[[vm]]\nname = "A"\n[[device]]\nid = 1\nvm = "A"\nmsi = { addr_pattern = 1 }\n',
        "6: device[0]: MSI fields need extended DCs (capabilities.MSI_FLAT)",
    ),
    (
        "recipe_ats_size",
        HEAD + '[[recipe]]\nname = "ats_invalidate"\ndevice = 1\naddr = 0x1000\nsize = 0x3000\n',
        "11: recipe[0].size: ATS invalidation size must be a power of two >= 4 KiB, addr aligned",
    ),
    (
        "inject_gpa_no_vm",
        '[[inject]]\nfault = "access"\ngpa = 0\n',
        "1: inject[0].vm: missing; gpa needs vm",
    ),
    (
        "inject_g_pte_missing",
        '[[inject]]\nfault = "access"\nstructure = "g_pte"\n',
        "1: inject[0].vm: missing; g_pte needs vm and gpa",
    ),
    (
        "inject_g_pte_not_ram",
        HEAD + '[[inject]]\nfault = "access"\nstructure = "g_pte"\nvm = "A"\ngpa = 0\n',
        "11: inject[0].gpa: GPA 0x0 is not VM A's RAM",
    ),
    (
        "inject_no_device",
        '[[inject]]\nfault = "access"\nstructure = "dc"\n',
        "1: inject[0].device: missing; dc needs device",
    ),
    (
        "inject_not_attached",
        '[[inject]]\nfault = "access"\nstructure = "dc"\ndevice = 9\n',
        "4: inject[0].device: device 0x9 is not attached",
    ),
    (
        "inject_no_msi_table",
        HEAD + '[[inject]]\nfault = "access"\nstructure = "msi_pte"\ndevice = 1\n',
        "10: inject[0].device: the device has no MSI page table",
    ),
    (
        "inject_pc_missing",
        HEAD + '[[inject]]\nfault = "access"\nstructure = "pc"\ndevice = 1\n',
        "7: inject[0].pasid: missing, or the device has no PDT",
    ),
    (
        "inject_pte_unmapped",
        HEAD
        + '[[bind]]\ndevice = 1\npasid = 1\n[[inject]]\nfault = "access"\nstructure = "pte"\ndevice = 1\npasid = 1\niova = 0x1000\n',
        "15: inject[0].iova: IOVA 0x1000 is not mapped",
    ),
    (
        "cap_gipc_bit",
        "[capabilities]\ngipc_bit = 41\n",
        "2: capabilities.gipc_bit: Capabilities.gipc_bit 41 collides with QOSID",
    ),
    # host-owned devices ([[device]] host = true, [host] ram, [[map]] spa)
    (
        "host_with_vm",
        '[[vm]]\nname = "A"\n[[device]]\nid = 2\nhost = true\nvm = "A"\n',
        "6: device[0].vm: not for a host-owned device (a host-owned device belongs to no VM)",
    ),
    (
        "host_with_gipc",
        "[[device]]\nid = 2\nhost = true\ngipc = true\n",
        "4: device[0].gipc: not for a host-owned device (a host-owned device is not a GIPC device)",
    ),
    (
        "host_with_msi",
        "[[device]]\nid = 2\nhost = true\nmsi = { addr_pattern = 0x28000 }\n",
        "4: device[0].msi: not for a host-owned device (DC.iohgatp Bare needs DC.msiptp.MODE Off)",
    ),
    (
        "host_with_t2gpa",
        "[[device]]\nid = 2\nhost = true\nt2gpa = true\n",
        "4: device[0].t2gpa: not for a host-owned device (DC.tc.T2GPA with DC.iohgatp Bare is a misconfigured DC)",
    ),
    (
        "host_pass_through_with_pasids",
        "[[device]]\nid = 2\nhost = true\nfirst_stage = false\npasids = true\n",
        "5: device[0].pasids: first_stage = false has no PASIDs",
    ),
    (
        "host_map_gpa",
        "[[device]]\nid = 2\nhost = true\n[[map]]\ndevice = 2\npasid = 1\niova = 0\ngpa = 0x1000\nsize = 0x1000\n",
        "8: map[0].gpa: expected spa (device 0x2 is host-owned: IOVA -> SPA), got gpa",
    ),
    (
        "vm_map_spa",
        '[[vm]]\nname = "A"\nram = [{ gpa = 0x8000_0000, size = 0x4000 }]\n[[device]]\nid = 1\nvm = "A"\n[[map]]\ndevice = 1\npasid = 1\niova = 0\nspa = 0x1000\nsize = 0x1000\n',
        "11: map[0].spa: expected gpa (device 0x1 is not host-owned: IOVA -> a GPA), got spa",
    ),
    (
        "map_neither",
        "[[device]]\nid = 2\nhost = true\n[[map]]\ndevice = 2\niova = 0\nsize = 0x1000\n",
        "4: map[0].gpa: give one of gpa or spa",
    ),
    (
        "map_both",
        "[[device]]\nid = 2\nhost = true\n[[map]]\ndevice = 2\niova = 0\ngpa = 0\nspa = 0\nsize = 0x1000\n",
        "8: map[0].spa: give only one of gpa or spa",
    ),
    (
        "host_bind_vm",
        '[[vm]]\nname = "A"\n[[device]]\nid = 2\nhost = true\n[[bind]]\ndevice = 2\npasid = 1\nvm = "A"\n',
        "9: bind[0].vm: expected no vm (device 0x2 is host-owned), got 'A'",
    ),
    (
        "host_ram_unaligned",
        "[host]\nram = [{ spa = 0x1000_0800, size = 0x1000 }]\n",
        "2: host.ram[0].spa: expected a page-aligned region, got 0x10000800 + 0x1000",
    ),
    (
        "host_ram_high",
        "[host]\nram = [{ spa = 0x7fff_f000, size = 0x2000 }]\n",
        "2: host.ram[0].size: expected host RAM below 0x80000000 (the host's tables are allocated from there up), got 0x7ffff000 + 0x2000",
    ),
    (
        "host_ram_overlap",
        "[host]\nram = [{ spa = 0x1000_0000, size = 0x2000 }, { spa = 0x1000_1000, size = 0x1000 }]\n",
        "2: host.ram[1]: host RAM overlaps existing RAM",
    ),
    (
        "host_map_not_ram",
        "[host]\nram = [{ spa = 0x1000_0000, size = 0x2000 }]\n[[device]]\nid = 2\nhost = true\npasids = false\n[[map]]\ndevice = 2\niova = 0\nspa = 0x2000_0000\nsize = 0x1000\n",
        "7: map[0]: MAP of an SPA range that is not the host's RAM",
    ),
    (
        "host_rebind",
        '[[vm]]\nname = "A"\n[[device]]\nid = 2\nhost = true\n[[bind]]\ndevice = 2\npasid = 1\n[[rebind]]\ndevice = 2\npasid = 1\nvm = "A"\n',
        "9: rebind[0]: only a GIPC device's PASIDs can move between VMs",
    ),
    (
        "host_map_after_detach",
        "[[device]]\nid = 2\nhost = true\npasids = false\n[[detach]]\ndevice = 2\n[[map]]\ndevice = 2\niova = 0\nspa = 0x1000\nsize = 0x1000\n",
        "7: map[0]: device 0x2 is not attached",
    ),
]


@pytest.mark.parametrize("name,text,message", CASES, ids=[c[0] for c in CASES])
def test_malformed_scenario_is_a_named_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """Each malformed file: exit status 2, exactly this message on stderr, nothing on stdout;
    with --json the same error as an object on stdout."""
    f = tmp_path / f"{name}.toml"
    f.write_text(text)
    rc, out, err = cli("run", str(f))
    assert (rc, out, err) == (2, "", f"riscv-iommu: {f}:{message}\n")
    rc, out, _ = cli("run", "--json", str(f))
    line, field, msg = message.split(": ", 2)
    assert rc == 2
    assert json.loads(out) == {
        "error": {"file": str(f), "line": int(line), "field": field, "message": msg}
    }


def test_explain_checks_the_scenario_too(tmp_path: Path) -> None:
    """explain --scenario with a malformed file: the same error."""
    f = tmp_path / "bad.toml"
    f.write_text(HEAD + "[[request]]\naddr = 0\npasid = 0x100000\n")
    rc, out, err = cli("explain", "--scenario", str(f), "--request", "0")
    assert rc == 2 and out == ""
    assert err == (
        f"riscv-iommu: {f}:9: request[0].pasid: expected a PASID (process_id): "
        "an integer 0 to 0xfffff (20 bits), got 0x100000\n"
    )


def test_missing_unreadable_and_binary_files(tmp_path: Path) -> None:
    """A file that cannot be read is reported with line 0 and the field "file"."""
    rc, _, err = cli("run", "/nonexistent/scenario.toml")
    assert rc == 2
    assert err.startswith("riscv-iommu: /nonexistent/scenario.toml:0: file: [Errno 2]")
    rc, _, err = cli("run", str(tmp_path))
    assert rc == 2 and f"riscv-iommu: {tmp_path}:0: file: [Errno 21]" in err
    b = tmp_path / "b.toml"
    b.write_bytes(b"\xff\xfe[[vm]]")
    rc, _, err = cli("run", str(b))
    assert rc == 2 and err.startswith(f"riscv-iommu: {b}:0: file: 'utf-8' codec")


ARGUMENT_CASES = [
    (
        ["explain", "--pasid", "0x100000"],
        "argument --pasid: expected a PASID, or none: an integer 0 to 0xfffff (20 bits), "
        "got '0x100000'",
    ),
    (
        ["explain", "--pasid", "x"],
        "argument --pasid: expected a PASID, or none: an integer 0 to 0xfffff (20 bits), got 'x'",
    ),
    (
        ["explain", "--device", "0x1000000"],
        "argument --device: expected a device_id: an integer 0 to 0xffffff (24 bits), "
        "got '0x1000000'",
    ),
    (
        ["explain", "--device", "-5"],
        "argument --device: expected a device_id: an integer 0 to 0xffffff (24 bits), got '-5'",
    ),
    (
        ["explain", "--addr", "0x10000000000000000"],
        "argument --addr: expected an address: an integer 0 to 0xffffffffffffffff (64 bits), "
        "got '0x10000000000000000'",
    ),
    (
        ["explain", "--length", "0"],
        "argument --length: expected a length in bytes, 1 to 4096, got '0'",
    ),
    (
        ["explain", "--length", "four"],
        "argument --length: expected a length in bytes, 1 to 4096, got 'four'",
    ),
    (
        ["explain", "--request", "-1"],
        "argument --request: expected a request index 0, 1, 2..., got '-1'",
    ),
    (
        ["explain", "--kind", "weird"],
        "argument --kind: invalid choice: 'weird'",
    ),
    (
        ["explain", "--access", "jump"],
        "argument --access: invalid choice: 'jump'",
    ),
    (
        ["demo", "--revision", "2026"],
        "argument --revision: invalid choice: '2026'",
    ),
    (
        ["bench", "--seconds", "0"],
        "argument --seconds: expected a time in seconds, more than 0 and at most 3600, got '0'",
    ),
    (
        ["bench", "--seconds", "nan"],
        "argument --seconds: expected a time in seconds, more than 0 and at most 3600, got 'nan'",
    ),
    (
        ["frobnicate"],
        "argument COMMAND: invalid choice: 'frobnicate'",
    ),
    (["run"], "the following arguments are required: scenario"),
    (
        ["explain", "--request", "x"],
        "argument --request: expected a request index 0, 1, 2..., got 'x'",
    ),
    (
        ["bench", "--seconds", "abc"],
        "argument --seconds: expected a time in seconds, more than 0 and at most 3600, got 'abc'",
    ),
]


@pytest.mark.parametrize(
    "argv,message", ARGUMENT_CASES, ids=[" ".join(a) for a, _ in ARGUMENT_CASES]
)
def test_bad_arguments_are_named_errors(argv: List[str], message: str) -> None:
    """argparse errors: usage, then "riscv-iommu CMD: error: argument ...: expected ..."."""
    rc, out, err = cli(*argv)
    assert rc == 2 and out == ""
    assert f"error: {message}" in err.splitlines()[-1]
    assert err.startswith("usage: riscv-iommu")


def test_bad_arguments_with_json() -> None:
    """With --json an argument error is also a JSON object on stdout."""
    rc, out, err = cli("explain", "--json", "--device", "0x1000000")
    assert rc == 2
    assert json.loads(out) == {
        "error": {
            "argument": True,
            "message": "argument --device: expected a device_id: an integer 0 to 0xffffff "
            "(24 bits), got '0x1000000'",
        }
    }


def test_explain_argument_rules(tmp_path: Path) -> None:
    """Rules between explain's arguments are named errors too."""
    ex = str(Path(__file__).resolve().parent.parent / "examples" / "gipc.toml")
    rc, _, err = cli("explain", "--request", "0")
    assert (rc, err) == (2, "riscv-iommu: argument --request: needs --scenario FILE\n")
    rc, _, err = cli("explain", "--scenario", ex, "--request", "4")
    assert (rc, err) == (
        2,
        f"riscv-iommu: argument --request: {ex} has 4 [[request]] table(s); expected 0 to 3\n",
    )
    rc, _, err = cli("explain", "--scenario", ex)
    assert (rc, err) == (2, "riscv-iommu: argument --addr: needed without --request\n")
    empty = tmp_path / "empty.toml"
    empty.write_text('title = "nothing"\n')
    rc, _, err = cli("explain", "--scenario", str(empty), "--addr", "0")
    assert (rc, err) == (2, "riscv-iommu: argument --device: needed (the scenario has no device)\n")
    rc, out, _ = cli("bench", "--json", "no-such-case")
    assert rc == 2 and "unknown benchmark case" in json.loads(out)["error"]["message"]


@pytest.mark.parametrize(
    "case",
    ["typo_table", "pasid_range", "addr_2_64", "length_string", "syntax", "map_gpa_not_ram"],
)
def test_as_a_process_no_traceback(tmp_path: Path, case: str) -> None:
    """Run as a real process: exit status 2, the message, and no traceback."""
    _, text, message = next(c for c in CASES if c[0] == case)
    f = tmp_path / "s.toml"
    f.write_text(text)
    rc, out, err = process("run", str(f))
    assert (rc, out, err) == (2, "", f"riscv-iommu: {f}:{message}\n")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "--pasid", "0x100000"],
        ["explain", "--device", "0x1000000"],
        ["explain", "--addr", "0x10000000000000000"],
        ["explain", "--length", "x"],
        ["explain", "--request", "0"],
        ["bench", "--seconds", "-1"],
        ["run", "/nonexistent.toml"],
    ],
)
def test_bad_arguments_as_a_process(argv: List[str]) -> None:
    """Bad arguments as a real process: exit status 2, no traceback."""
    rc, _, err = process(*argv)
    assert rc == 2 and "Traceback" not in err and "riscv-iommu" in err


def test_version() -> None:
    """riscv-iommu --version prints the package version."""
    import riscv_iommu

    rc, out, _ = cli("--version")
    assert (rc, out) == (0, f"riscv-iommu {riscv_iommu.__version__}\n")
    rc, out, _ = process("--version")
    assert (rc, out) == (0, f"riscv-iommu {riscv_iommu.__version__}\n")
